//! Which CPU is which: each CPU index's local APIC id, recorded as the CPU
//! comes up, and the running CPU's index. The layer just above `hw`:
//! `ipi`, `smp`, `idt`, `wiring` and the torture ask it, so none of them
//! needs another for it (no import cycle between `idt`, `smp` and `ipi`).

use crate::hw;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use x86_64::registers::model_specific::GsBase;
use x86_64::VirtAddr;

/// Most CPUs the kernel brings up (the boot CPU included).
pub const MAX_CPUS: usize = 8;

/// The kernel's possible CPUs: the one CPU count every scheme is sized by.
/// The CPUs that run are [`nr_cpus`], 2 to `NR_CPUS`, from the boot
/// argument `cpus=` (the `-smp` count `ci/qemu.sh` boots with).
pub const NR_CPUS: usize = 4;

/// The online CPU count (`nr_cpu_ids`), set once at boot.
static NR_ONLINE: AtomicUsize = AtomicUsize::new(NR_CPUS);

/// The CPUs that run the torture: CPU indices `0..nr_cpus()`.
pub fn nr_cpus() -> usize {
    NR_ONLINE.load(Ordering::Relaxed)
}

/// Sets [`nr_cpus`] before any AP starts a task (the AP loop's start
/// generation orders it before their reads).
pub fn set_nr_cpus(n: usize) {
    assert!((1..=NR_CPUS).contains(&n), "cpus={n} outside 1..={NR_CPUS}");
    NR_ONLINE.store(n, Ordering::Relaxed);
}

/// Each CPU index, at the address its CPU's GS base holds: [`this_cpu`]
/// reads it with one `mov`, where asking the APIC for its id costs a
/// CPUID and an MSR read (each a VM exit under KVM, thousands per second
/// in the walk torture).
static SELF_INDEX: [usize; MAX_CPUS] = {
    let mut a = [0; MAX_CPUS];
    let mut i = 0;
    while i < MAX_CPUS {
        a[i] = i;
        i += 1;
    }
    a
};

/// Each CPU index's APIC id register value (the ICR destination), or
/// `u32::MAX` before the CPU registered.
#[allow(clippy::declare_interior_mutable_const)] // an array initialiser
const NO_ID: AtomicU32 = AtomicU32::new(u32::MAX);
static APIC_IDS: [AtomicU32; MAX_CPUS] = [NO_ID; MAX_CPUS];

/// Records the running CPU as `index`: its IDT is loaded and its APIC on.
pub fn register(index: usize) {
    // Release: pairs with `apic_dest`'s acquire load.
    APIC_IDS[index].store(hw::apic_raw_id(), Ordering::Release);
    // This kernel never runs user code, so nothing swaps GS: the base stays.
    GsBase::write(VirtAddr::from_ptr(&SELF_INDEX[index]));
}

/// The running CPU's index (after its [`register`]).
pub fn this_cpu() -> usize {
    let index: usize;
    // SAFETY: `register` pointed this CPU's GS base at its `SELF_INDEX`
    // entry, a `usize` in a `static`; the read has no other effect.
    unsafe {
        core::arch::asm!(
            "mov {}, gs:[0]",
            out(reg) index,
            options(nostack, readonly, preserves_flags)
        );
    }
    // A GS base not yet set (a fault before `register`) reads address 0.
    assert!(index < MAX_CPUS, "this_cpu() before cpus::register()");
    index
}

/// The ICR destination of CPU `index`.
pub fn apic_dest(index: usize) -> u32 {
    let id = APIC_IDS[index].load(Ordering::Acquire);
    assert_ne!(id, u32::MAX, "cpu{index} is not up");
    id
}
