//! Targeted sync IPIs for lockless page-table walkers (Lance Yang, 2025–26;
//! review by Peter Zijlstra and David Hildenbrand).
//!
//! # The problem
//!
//! GUP-fast walks an mm's page tables with interrupts off and no lock. A
//! page-table page that is unlinked (khugepaged collapse, hugetlb PMD
//! unshare) may be freed only once no walker can still be reading it. Since
//! a walker runs with interrupts off, an IPI sent *after the unlink* that has
//! been acknowledged proves that every walk that could have seen the old
//! entry has finished (`tlb_remove_table_sync_one()`: an empty broadcast IPI
//! to every CPU, with wait). That broadcast is what this module narrows.
//!
//! # The protocol ([`WalkTracker`])
//!
//! Each CPU has a word: the mm it is walking locklessly, or 0.
//!
//! ```text
//! walk begin  (irqs off):  W active[cpu] = mm ; smp_mb()      (or a fully ordered xchg)
//! walk        :            R pmd ; R page-table page ...
//! walk end    :            smp_store_release(active[cpu], 0) ; irqs on
//! sync(mm)    (after the unlink W pmd = new):
//!                          smp_mb() ; for each cpu: R active[cpu] == mm -> IPI it, wait
//! free the page
//! forbidden:  walker reads the old pmd  AND  sync reads active[cpu] == 0
//! ```
//!
//! That is the store-buffering shape, so **both** sides need a full barrier
//! (Peter Zijlstra's review: the `smp_rmb()` of v4 "is not how memory
//! barriers work"). A walker whose marker the sync saw gets an IPI, which it
//! serves only once its interrupts are back on — after its walk; a walker
//! whose marker the sync missed must, by the barriers, read the new pmd. The
//! release store at walk end is not needed for the IPI case (the IPI is
//! served after it) but orders a walk that the sync sees *ending* before the
//! free: the sync's load of 0 then acquires the walk.
//!
//! Evidence (`tests/loom/walk.rs`, the walker machine of
//! `lazymm::check::model::walk`): targeted, broadcast, RCU-deferred and "the flush already
//! IPI'd" syncs pass; `bug_sync_rmb` ([`Bug::SyncRmb`]), `bug_no_walker_fence`
//! ([`Bug::NoWalkerFence`]) and `bug_skip_sync_without_ipi`
//! ([`Bug::SkipSyncWithoutIpi`]) fail with the oracle's
//! "use-after-free of page-table page" message: 2 CPUs, and two walkers
//! and a collapser (VERIFICATION.md has the bounds and counts).
//!
//! # Cost
//!
//! A walk pays a store to its own line plus a full barrier (or one `xchg`),
//! and a release store: the series measured +3% on GUP-fast. The sync reads
//! one word per possible CPU and IPIs only the walkers of that mm.
//! `benches/lazy.rs` group `walk` measures both against a bare walk and a
//! broadcast.
//!
//! # Skipping the sync (v7)
//!
//! When the TLB flush that follows the unlink was itself delivered by IPI to
//! every CPU that may walk the mm, the sync is redundant:
//! [`WalkTracker::sync_needed`] says so. A flush done by hardware broadcast (INVLPGB,
//! arm64 TLBI) or a paravirt hypercall interrupts nobody, so the sync must
//! stay — the bug variant that skips it anyway is rejected.
//!
//! Source: the "targeted sync IPIs for lockless page-table walkers" series
//! (LKML, v1–v7) and Linux `mm/gup.c` (GUP-fast).

use crate::bugs::BugSwitch;
use crate::cpu::{CpuId, CpuSet, PerCpu};
use crate::lazy::MmHandle;
use crate::sync::{fence, smp_mb, smp_mb_after_atomic, AtomicUsize, Ordering::*};

/// Known-bad variants of the walker protocol.
#[cfg_attr(not(lazymm_bugs), doc(hidden))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// The sync side runs `smp_rmb()` (an acquire fence) instead of a full
    /// barrier before reading the markers (v4's pairing).
    SyncRmb,
    /// Walk begin stores the marker with no full barrier after it.
    NoWalkerFence,
    /// [`WalkTracker::sync_needed`] skips the sync even when the flush did not IPI every
    /// walker (a hardware-broadcast or paravirt flush).
    SkipSyncWithoutIpi,
    /// The sync's scan stops one CPU short (`cpu < nr_cpus - 1`): the
    /// highest CPU is never IPI'd. Harmless whenever the collapsing CPU is
    /// the highest (it removes itself anyway), as in every loom model
    /// before the roles were mirrored (`tests/loom/walk.rs`
    /// `collapse_vs_walk`).
    SyncSkipsLastCpu,
    /// Walk end clears the marker with `Relaxed`.
    RelaxedEnd,
    /// The sync reads the markers with `Relaxed`.
    RelaxedSyncLoad,
    /// The `xchg` begin's RMW is `Relaxed` (its barrier after it kept).
    RelaxedXchgBegin,
}

/// How [`WalkTracker::begin`] orders the marker before the walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeginOrder {
    /// `WRITE_ONCE` then `smp_mb()` (the series).
    StoreMb,
    /// A fully ordered `xchg` (Peter Zijlstra's suggestion): on x86 one
    /// locked instruction instead of a store and an `mfence`.
    Xchg,
}

/// How the TLB flush after an unlink reached the other CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushDelivery {
    /// By IPI to every CPU that may walk the mm (native x86 with
    /// `freed_tables`): walkers had to turn interrupts on to take it.
    IpiToAll,
    /// By hardware broadcast or hypercall: no CPU was interrupted.
    NoIpi,
}

/// The per-CPU "walking this mm locklessly" markers of `N` CPUs.
pub struct WalkTracker<const N: usize> {
    active: PerCpu<AtomicUsize, N>,
    order: BeginOrder,
    bug: BugSwitch<Bug>,
}

impl<const N: usize> WalkTracker<N> {
    crate::const_fn! {
        /// No CPU walking.
        pub fn new(order: BeginOrder) -> Self {
            Self {
                active: PerCpu::from_padded(crate::cpu::padded_array!(N, AtomicUsize::new(0))),
                order,
                bug: BugSwitch::off(),
            }
        }
    }

    /// The tracker with a known bug switched on (checker builds only).
    #[cfg(lazymm_bugs)]
    pub fn with_bug(order: BeginOrder, bug: Bug) -> Self {
        let mut t = Self::new(order);
        t.bug = BugSwitch::on(bug);
        t
    }

    /// Whether a sync is still needed after a flush delivered as `delivery`
    /// (`tlb_table_flush_implies_ipi_broadcast()` of v7).
    pub fn sync_needed(&self, delivery: FlushDelivery) -> bool {
        if self.bug.is(Bug::SkipSyncWithoutIpi) {
            return false;
        }
        delivery == FlushDelivery::NoIpi
    }

    /// How walk begin is ordered.
    pub fn order(&self) -> BeginOrder {
        self.order
    }

    /// `pt_walk_lockless_start()`: `cpu`, with interrupts off, starts walking
    /// `mm`'s page tables. Every page-table read after it is covered.
    ///
    /// # Panics
    /// If `cpu` is already walking (nested walks are not supported), or out
    /// of range. With [`BeginOrder::StoreMb`] the nesting check is a debug
    /// assertion.
    #[inline]
    pub fn begin<M: MmHandle>(&self, cpu: CpuId, mm: M) {
        let slot = self.active.get(cpu);
        let word = mm.to_word();
        match self.order {
            BeginOrder::StoreMb => {
                debug_assert_eq!(slot.load(Relaxed), 0, "nested lockless walk on {cpu}");
                // Relaxed + full barrier: pairs with the sync's full barrier
                // (store buffering, module docs).
                slot.store(word, Relaxed);
                self.bug.fence_unless(Bug::NoWalkerFence, smp_mb);
            }
            BeginOrder::Xchg => {
                // AcqRel RMW + smp_mb_after_atomic (a compiler fence on x86,
                // where xchg is a full barrier): pairs with the sync's full
                // barrier.
                let old = slot.swap(word, self.bug.weaken(Bug::RelaxedXchgBegin, AcqRel));
                self.bug
                    .fence_unless(Bug::NoWalkerFence, smp_mb_after_atomic);
                assert_eq!(old, 0, "nested lockless walk on {cpu}");
            }
        }
    }

    /// `pt_walk_lockless_end()`: `cpu` finished its walk (interrupts still
    /// off; turn them on after this).
    #[inline]
    pub fn end(&self, cpu: CpuId) {
        let slot = self.active.get(cpu);
        debug_assert_ne!(slot.load(Relaxed), 0, "walk end on {cpu} without a begin");
        // Release: pairs with the sync's acquire load; a sync that reads 0
        // here has the whole walk happen before it.
        slot.store(0, self.bug.weaken(Bug::RelaxedEnd, Release));
    }

    /// A whole lockless walk on the running CPU: pins it through the
    /// platform (`local_irq_save()` + the CPU number), runs
    /// [`begin`](Self::begin), `walk`, then [`end`](Self::end). The pin is
    /// held across the walk, so the CPU cannot change under it.
    pub fn walk<M: MmHandle, C: crate::platform::CurrentCpu, R>(
        &self,
        platform: &C,
        mm: M,
        walk: impl FnOnce() -> R,
    ) -> R {
        let pin = platform.pin();
        self.begin(pin.cpu(), mm);
        let r = walk();
        self.end(pin.cpu());
        r
    }

    /// The CPUs walking `mm` now, to IPI and wait for before freeing a
    /// page-table page of `mm` that the caller already unlinked. Set into
    /// `out` (which the caller clears); `nr_cpus` bounds the scan.
    pub fn sync_targets<M: MmHandle>(&self, mm: M, nr_cpus: usize, out: &mut CpuSet) {
        if self.bug.is(Bug::SyncRmb) {
            fence(Acquire);
        } else {
            // Full barrier: orders the unlink before the marker loads; pairs
            // with walk begin's barrier (store buffering).
            smp_mb();
        }
        let word = mm.to_word();
        let scanned = if self.bug.is(Bug::SyncSkipsLastCpu) {
            nr_cpus.saturating_sub(1) // BUG: off by one
        } else {
            nr_cpus
        };
        for (cpu, slot) in self.active.iter().take(scanned) {
            // Acquire: pairs with walk end's release store.
            if slot.load(self.bug.weaken(Bug::RelaxedSyncLoad, Acquire)) == word {
                out.insert(cpu);
            }
        }
    }

    /// [`sync`](Self::sync) on a pinned CPU through the platform's IPI.
    pub fn sync_pinned<M: MmHandle, P: crate::platform::IpiSync>(
        &self,
        platform: &P,
        pin: &crate::platform::CpuPin<'_>,
        mm: M,
        nr_cpus: usize,
    ) -> usize {
        self.sync(pin.cpu(), mm, nr_cpus, |t| platform.ipi_and_wait(pin, t))
    }

    /// `tlb_remove_table_sync_mm()`: computes the walkers of `mm` (other
    /// than `me`) and calls `ipi_and_wait` with them if there are any
    /// (the platform sends an empty IPI to each and waits for it to run).
    /// Returns how many CPUs were interrupted.
    pub fn sync<M: MmHandle>(
        &self,
        me: CpuId,
        mm: M,
        nr_cpus: usize,
        ipi_and_wait: impl FnOnce(&CpuSet),
    ) -> usize {
        let mut t = CpuSet::new();
        self.sync_targets(mm, nr_cpus, &mut t);
        t.remove(me);
        let n = t.len();
        if n != 0 {
            ipi_and_wait(&t);
        }
        n
    }
}
