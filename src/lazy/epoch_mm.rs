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
//!   ([`EpochMm::with_flushes`] sets the rounds; the loom models use 1.)
//!
//! Each scheme owns its own `crossbeam_epoch::Collector` (not the global
//! one: two machines, or two loom executions, never share grace periods)
//! and one registered `LocalHandle` per CPU, created on the CPU's first
//! hook. A handle and its guard are neither `Send` nor `Sync`; each CPU's
//! pair is used through a flag that makes each use exclusive (a hook runs
//! on the CPU it names; the flag turns a violation into a panic).
//!
//! **Context.** The hooks of one CPU must not nest (an IPI handler calling
//! `lazy_shot` inside another hook of this scheme panics with a message
//! saying so); the simulated machine serves IPIs only between hooks.
//!
//! # Checked by loom, through crossbeam-epoch's own loom support
//!
//! crossbeam-epoch 0.9 switches its atomics (and crossbeam-utils') to
//! loom's under `--cfg crossbeam_loom` with its `loom` feature, which this
//! crate's `epoch-loom` feature turns on:
//!
//! ```text
//! RUSTFLAGS="--cfg loom --cfg crossbeam_loom" cargo test --features epoch-loom --test loom epoch
//! ```
//!
//! runs this scheme *and crossbeam-epoch's internals* (pinning, bags,
//! the global queue, epoch advance) through the shared machine scenarios
//! (`tests/loom/epoch.rs`), with a collector per execution. What that does
//! not cover: crossbeam's `default_collector()` (not used here), the
//! thread-local handles of `crossbeam_epoch::pin()` (not used here), and
//! more than loom's four threads. The idle problem shows on it as on
//! [`crate::lazy::rcu_mm`]: `bug_idle_is_quiescent` (a lazy CPU holds no
//! pin, as if idle were quiescent) is rejected with "use-after-free of
//! mm". Under shuttle crossbeam keeps `std` atomics, which shuttle does not
//! schedule, so the scheme is not built there; the std build runs it on
//! real threads against the oracle (`tests/backends.rs`). A `no_std` kernel
//! uses [`crate::lazy::rcu_mm`]: crossbeam-epoch allocates (bags, the
//! deferred closure) and its collector is not `const`.

use super::owned::CpuOwned;
use crate::bugs::BugSwitch;
use crate::cpu::CpuId;
use crate::lazy::{Kernel, LazyMm};
use crate::sync::{AtomicBool, Ordering::*};
use crossbeam_epoch::{Collector, Guard, LocalHandle};
use crossbeam_utils::CachePadded;
use std::boxed::Box;
use std::sync::Arc;

/// Known-bad variants of the scheme.
#[cfg_attr(not(lazymm_bugs), doc(hidden))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// A lazy CPU holds no pin: idle counts as quiescent (van Riel's
    /// objection to the naive RCU free).
    IdleIsQuiescent,
}

/// One CPU's guard while it is lazy and its registration (registered on
/// first use). The guard is dropped first: it points into the handle's
/// record.
type Slot = (Option<Guard>, Option<LocalHandle>);

/// RCU-deferred mm freeing on crossbeam-epoch, with a bounded wait, on `N`
/// CPUs.
pub struct EpochMm<const N: usize> {
    // Dropped before `collector` (whose last handle then frees it).
    // One cache line each: CPUs touch only their own slot on the hot path.
    slots: Box<[CachePadded<CpuOwned<Slot>>]>,
    collector: Collector,
    flushes: usize,
    bug: BugSwitch<Bug>,
}

// SAFETY: the non-`Send`/`Sync` parts are the per-CPU handles and guards,
// each used only through its `CpuOwned` (one user at a time,
// acquire/release handover); crossbeam's collector is `Send + Sync`.
unsafe impl<const N: usize> Sync for EpochMm<N> {}
// SAFETY: as above.
unsafe impl<const N: usize> Send for EpochMm<N> {}

impl<const N: usize> Default for EpochMm<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> EpochMm<N> {
    /// Pin-and-flush rounds the final drop tries before it IPIs.
    pub const FLUSHES: usize = 8;

    /// The scheme: its own collector, no CPU lazy.
    pub fn new() -> Self {
        Self::with_flushes(Self::FLUSHES)
    }

    /// The scheme with `flushes` pin-and-flush rounds before the IPI.
    pub fn with_flushes(flushes: usize) -> Self {
        Self::build(flushes, BugSwitch::off())
    }

    /// The scheme with a bug switched on (checker builds only).
    #[cfg(lazymm_bugs)]
    pub fn with_bug(flushes: usize, bug: Bug) -> Self {
        Self::build(flushes, BugSwitch::on(bug))
    }

    fn build(flushes: usize, bug: BugSwitch<Bug>) -> Self {
        let slots = (0..N)
            .map(|_| CachePadded::new(CpuOwned::new((None, None))))
            .collect();
        Self {
            slots,
            collector: Collector::new(),
            flushes,
            bug,
        }
    }

    /// Runs `f` on `cpu`'s handle (registered on first use) and guard slot.
    fn with_cpu<R>(&self, cpu: CpuId, f: impl FnOnce(&LocalHandle, &mut Option<Guard>) -> R) -> R {
        self.slots[cpu.index()].with(cpu, "epoch_mm handle", |(guard, handle)| {
            f(
                handle.get_or_insert_with(|| self.collector.register()),
                guard,
            )
        })
    }

    fn unpin(&self, cpu: CpuId) {
        if self.bug.is(Bug::IdleIsQuiescent) {
            return;
        }
        let g = self.with_cpu(cpu, |_, g| g.take());
        assert!(
            g.is_some(),
            "lazymm: {cpu} ends a lazy use it does not have"
        );
    }
}

impl<const N: usize> LazyMm for EpochMm<N> {
    const NAME: &'static str = "epoch_mm";
    const CPUS: usize = N;

    fn mmgrab_lazy_tlb<K: Kernel>(&self, _k: &K, cpu: CpuId, _mm: K::Mm) {
        crate::lazy::check_sizes::<K, N>();
        if self.bug.is(Bug::IdleIsQuiescent) {
            return;
        }
        self.with_cpu(cpu, |h, g| {
            assert!(
                g.is_none(),
                "lazymm: mmgrab_lazy_tlb on {cpu}, which is already lazy"
            );
            *g = Some(h.pin());
        });
    }

    fn mmdrop_lazy_tlb<K: Kernel>(&self, _k: &K, cpu: CpuId, _mm: K::Mm, _next: Option<K::Mm>) {
        self.unpin(cpu);
    }

    fn lazy_shot<K: Kernel>(&self, _k: &K, cpu: CpuId, _mm: K::Mm) {
        self.unpin(cpu);
    }

    fn final_drop<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        crate::lazy::check_sizes::<K, N>();
        let passed = Arc::new(AtomicBool::new(false));
        let p = passed.clone();
        self.with_cpu(cpu, |h, _| {
            // Release: the closure runs after every guard pinned now is
            // gone; pairs with the acquire load below, which orders their
            // lazy uses before the free.
            h.pin().defer(move || p.store(true, Release));
        });
        for _ in 0..self.flushes {
            self.with_cpu(cpu, |h, _| h.pin().flush());
            if passed.load(Acquire) {
                return;
            }
            k.serve_ipis(cpu);
        }
        // Bounded wait: switch the CPUs still lazy on `mm` away.
        let cpus = k.mm_cpumask(mm);
        k.shoot_lazies(cpu, &cpus, mm);
    }
}

impl<const N: usize> core::fmt::Debug for EpochMm<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EpochMm")
            .field("cpus", &N)
            .field("flushes", &self.flushes)
            .finish()
    }
}
