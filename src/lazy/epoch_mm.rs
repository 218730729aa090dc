//! RCU-deferred mm freeing on `crossbeam-epoch`, for std users (feature
//! `epoch`): the same idea as [`crate::lazy::rcu_mm`] with the grace periods of a
//! well-kept epoch-based reclamation crate.
//!
//! * **Lazy = pinned.** A CPU entering lazy mode pins the epoch
//!   (`crossbeam_epoch::pin()`) and keeps the guard until its lazy use ends
//!   (`mmdrop_lazy_tlb`, or the shoot-lazy IPI). An idle CPU that still has the
//!   mm loaded is therefore *not* quiescent — van Riel's objection holds by
//!   construction.
//! * **Final drop.** Defers a marker with the epoch; once it has run, every
//!   CPU pinned at that moment has unpinned since, so no lazy user of the mm
//!   is left. The wait is bounded like [`crate::lazy::rcu_mm::RcuMm`]'s: after
//!   [`EpochMm::FLUSHES`] pin-and-flush rounds the final drop sends the
//!   shoot-lazy IPI to the mm's cpumask (which unpins the lazy CPUs of this
//!   mm) and frees once every CPU has acknowledged — as shootdown does.
//!
//! The guards live in a thread-local (a crossbeam-epoch guard is neither
//! `Send` nor `Sync`): each CPU is one thread, as in the simulated machine
//! and in `examples/kernel/`. Not model-checked — crossbeam-epoch's
//! atomics are not loom's — but run on real threads against the machine's
//! oracle (`tests/epoch_mm.rs`). A `no_std` kernel uses [`crate::lazy::rcu_mm`].

use crate::cpu::CpuId;
use crate::lazy::{Kernel, LazyMm};
use crate::sync::{AtomicBool, Ordering};
use core::cell::RefCell;
use std::sync::Arc;

std::thread_local! {
    /// This CPU's guard while it is lazy.
    static LAZY_GUARD: RefCell<Option<crossbeam_epoch::Guard>> = const { RefCell::new(None) };
}

/// RCU-deferred mm freeing on crossbeam-epoch, with a bounded wait.
#[derive(Debug, Default)]
pub struct EpochMm;

impl EpochMm {
    /// Pin-and-flush rounds the final drop tries before it IPIs.
    pub const FLUSHES: usize = 8;

    /// The scheme.
    pub const fn new() -> Self {
        Self
    }

    fn unpin(cpu: CpuId) {
        let g = LAZY_GUARD.with(|g| g.borrow_mut().take());
        assert!(
            g.is_some(),
            "lazymm: {cpu} ends a lazy use it does not have"
        );
    }
}

impl LazyMm for EpochMm {
    const NAME: &'static str = "epoch_mm";

    fn mmgrab_lazy_tlb<K: Kernel>(&self, _k: &K, cpu: CpuId, _mm: K::Mm) {
        crate::lazy::check_sizes::<K, { usize::MAX }>();
        LAZY_GUARD.with(|g| {
            let mut g = g.borrow_mut();
            assert!(
                g.is_none(),
                "lazymm: mmgrab_lazy_tlb on {cpu}, which is already lazy"
            );
            *g = Some(crossbeam_epoch::pin());
        });
    }

    fn mmdrop_lazy_tlb<K: Kernel>(&self, _k: &K, cpu: CpuId, _mm: K::Mm, _next: Option<K::Mm>) {
        Self::unpin(cpu);
    }

    fn lazy_shot<K: Kernel>(&self, _k: &K, cpu: CpuId, _mm: K::Mm) {
        Self::unpin(cpu);
    }

    fn final_drop<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        crate::lazy::check_sizes::<K, { usize::MAX }>();
        let passed = Arc::new(AtomicBool::new(false));
        let p = passed.clone();
        // Release: the destructor runs after every guard pinned now is
        // gone; the flag's acquire load below orders their lazy uses
        // before the free.
        crossbeam_epoch::pin().defer(move || p.store(true, Ordering::Release));
        for _ in 0..Self::FLUSHES {
            crossbeam_epoch::pin().flush();
            if passed.load(Ordering::Acquire) {
                return;
            }
            k.serve_ipis(cpu);
        }
        // Bounded wait: switch the CPUs still lazy on `mm` away.
        let cpus = k.mm_cpumask(mm);
        k.shoot_lazies(cpu, &cpus, mm);
    }
}
