//! The workloads that exercise the wiring on the real (emulated) machine,
//! and the boot command line that picks them (`-append "bug=..."`).

pub mod batched;
pub mod lazy;
pub mod tlb;
pub mod walk;

/// The value of `key=value` on the command line, if any.
pub fn arg(key: &str) -> Option<&'static str> {
    crate::boot::cmdline()
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}
