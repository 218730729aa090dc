//! The workloads that exercise the wiring on the real (emulated) machine,
//! and the boot command line that picks them (`-append "bug=..."`).

pub mod batched;
pub mod lazy;
pub mod tlb;
pub mod walk;

pub use crate::boot::arg;
