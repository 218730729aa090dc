//! The lazymm wiring: what this kernel implements for the crate, and the
//! crate's objects it keeps. This is the part an OS developer copies; the
//! workloads that exercise it are in `torture/`.
//!
//! * The one CPU count, [`NR_CPUS`], sizes every scheme and tracker.
//! * [`Qemu`] is the platform: [`CurrentCpu`] names the running CPU from its
//!   local APIC id, [`IpiSync`] is a real fixed IPI through the local
//!   APIC's ICR to each target with a wait for its acknowledgement
//!   (`crate::ipi`: the kernel's `smp_call_function_many(.., wait)`).
//! * The lazy-mm schemes are plain `static`s: every constructor is `const`
//!   outside the checkers, so `lazymm_static!` is a plain `static` here.

use crate::kprintln;
use lazymm::cpu::{CpuId, CpuMask};
use lazymm::lazy::cached::Cached;
use lazymm::lazy::hazard::HazardLazy;
use lazymm::lazy::loaded::LoadedMm;
use lazymm::lazy::rcu_mm::RcuMm;
use lazymm::lazy::refcount::Refcount;
use lazymm::lazy::shootdown::Shootdown;
use lazymm::lazy::tagged::Tagged;
use lazymm::lazy::{LazyMm, MmHandle};
use lazymm::platform::{CpuPin, CurrentCpu, IpiSync};

/// The kernel's CPU count: the one CPU count every scheme is sized by.
pub const NR_CPUS: usize = 4;

/// The platform the crate's TLB and walker protocols call.
pub struct Qemu;

// SAFETY: `pin` names the CPU it runs on (its APIC id); this kernel never
// migrates a running context (no preemption), and callers that need
// interrupts off around the pin (a lockless walk) turn them off.
unsafe impl CurrentCpu for Qemu {
    fn pin(&self) -> CpuPin<'_> {
        // SAFETY: as above.
        unsafe { CpuPin::new(CpuId::new(crate::smp::this_cpu())) }
    }
}

impl IpiSync for Qemu {
    fn ipi_and_wait(&self, pin: &CpuPin<'_>, targets: &impl CpuMask) {
        let mask = targets.iter().fold(0, |m, c| m | 1 << c.index());
        crate::ipi::call_many(pin.cpu().index(), mask, |_| {});
    }
}

/// An address space, as the crate sees it: the physical address of its
/// top-level page table (non-zero and page-aligned, so bit 0 is free).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mm(pub usize);

impl MmHandle for Mm {
    fn to_word(self) -> usize {
        self.0
    }
    fn from_word(word: usize) -> Self {
        Mm(word)
    }
}

lazymm::lazymm_static! { static REFCOUNT: Refcount = Refcount::new(); }
lazymm::lazymm_static! { static SHOOTDOWN: Shootdown = Shootdown::new(); }
lazymm::lazymm_static! { static TAGGED: Tagged<NR_CPUS> = Tagged::new(); }
lazymm::lazymm_static! { static CACHED: Cached<NR_CPUS> = Cached::new(); }
lazymm::lazymm_static! { static HAZARD: HazardLazy<NR_CPUS> = HazardLazy::new(); }
lazymm::lazymm_static! { static LOADED: LoadedMm<NR_CPUS> = LoadedMm::new(); }
lazymm::lazymm_static! { static RCU_MM: RcuMm<NR_CPUS> = RcuMm::new(); }

fn describe<S: LazyMm>(_: &S) {
    kprintln!(
        "lazymm-qemu: scheme {:<10} {} bytes for {NR_CPUS} CPUs",
        S::NAME,
        core::mem::size_of::<S>()
    );
}

/// Every scheme, built as a `static` in this `no_std` kernel.
pub fn describe_schemes() {
    describe(&REFCOUNT);
    describe(&SHOOTDOWN);
    describe(&TAGGED);
    describe(&CACHED);
    describe(&HAZARD);
    describe(&LOADED);
    describe(&RCU_MM);
}
