//! The lazymm wiring: what an OS adds to its scheduler to use the crate.
//!
//! Step 1 (boot and print): the crate links into a `no_std` kernel with
//! `default-features = false`, and its schemes can be built as plain
//! `static`s (every constructor is `const` outside the checkers).

use crate::kprintln;
use lazymm::lazy::cached::Cached;
use lazymm::lazy::hazard::HazardLazy;
use lazymm::lazy::loaded::LoadedMm;
use lazymm::lazy::rcu_mm::RcuMm;
use lazymm::lazy::refcount::Refcount;
use lazymm::lazy::shootdown::Shootdown;
use lazymm::lazy::tagged::Tagged;
use lazymm::lazy::LazyMm;

/// The kernel's CPU count: the one CPU count every scheme is sized by.
pub const NR_CPUS: usize = 4;

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

/// Runs what this step of the kernel does; true when every check passed.
pub fn run() -> bool {
    describe(&REFCOUNT);
    describe(&SHOOTDOWN);
    describe(&TAGGED);
    describe(&CACHED);
    describe(&HAZARD);
    describe(&LOADED);
    describe(&RCU_MM);
    true
}
