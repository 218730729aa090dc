//! Which CPU is which: each CPU index's local APIC id, recorded as the CPU
//! comes up, and the running CPU's index. The layer just above `hw`:
//! `ipi`, `smp`, `idt`, `wiring` and the torture ask it, so none of them
//! needs another for it (no import cycle between `idt`, `smp` and `ipi`).

use crate::hw;
use core::sync::atomic::{AtomicU32, Ordering};

/// Most CPUs the kernel brings up (the boot CPU included).
pub const MAX_CPUS: usize = 8;

/// The kernel's CPU count: the one CPU count every scheme is sized by.
pub const NR_CPUS: usize = 4;

/// Each CPU index's APIC id register value (the ICR destination), or
/// `u32::MAX` before the CPU registered.
#[allow(clippy::declare_interior_mutable_const)] // an array initialiser
const NO_ID: AtomicU32 = AtomicU32::new(u32::MAX);
static APIC_IDS: [AtomicU32; MAX_CPUS] = [NO_ID; MAX_CPUS];

/// Records the running CPU as `index`: its IDT is loaded and its APIC on.
pub fn register(index: usize) {
    // Release: pairs with `this_cpu`/`apic_dest`'s acquire loads.
    APIC_IDS[index].store(hw::apic_raw_id(), Ordering::Release);
}

/// The running CPU's index.
pub fn this_cpu() -> usize {
    let id = hw::apic_raw_id();
    APIC_IDS
        .iter()
        .position(|a| a.load(Ordering::Acquire) == id)
        .expect("this CPU registered")
}

/// The ICR destination of CPU `index`.
pub fn apic_dest(index: usize) -> u32 {
    let id = APIC_IDS[index].load(Ordering::Acquire);
    assert_ne!(id, u32::MAX, "cpu{index} is not up");
    id
}
