//! The hazard-pointer lazy-mm scheme (Desnoyers 2024), on the
//! per-CPU hazard domain of [`crate::reclaim::hazard`].
//!
//! # Protocol
//!
//! * enter lazy: full fence, publish the mm in this CPU's slot (existence is
//!   guaranteed: the CPU's user task still holds `mm_users`);
//! * leave lazy: full fence, clear the slot (the fence-free variant below
//!   keeps it instead, until the CPU loads another mm);
//! * final drop (`__mmdrop()`): scan for the mm with an `on_match` that IPIs
//!   the CPU, which switches to the kernel's own mm and clears its slot.
//!
//! Only CPUs whose slot holds the mm get an IPI (shootdown IPIs the whole
//! cpumask), but every possible CPU's slot is read. The publish happens
//! before the owner's `mm_users` drop (a release RMW) and so before the
//! final drop: in this use the two full fences are not needed for the mm's
//! existence — the machine models pass without them — and Linux keeps them
//! for membarrier. They are needed in the general domain, where the reader
//! does not hold a reference (`tests/loom/hazard.rs`).
//!
//! # Two variants
//!
//! * [`HazardLazy`] (`HazardLazy<N, true>`, the default): Desnoyers'
//!   design as posted, a full barrier before the publish and before the
//!   clear. The faithful one; 19x the floor on a round trip on x86 (two
//!   `mfence`s), see BENCHMARKS.md.
//! * [`HazardLazyNoFence`] (`HazardLazy<N, false>`): no barrier of its own
//!   on the switch path. What orders each step instead:
//!   - the publish ([`HazardDomain::publish`]) happens before the final
//!     drop's scan because the CPU's user task still holds `mm_users` when
//!     the CPU publishes (at this lazy entry, or at an earlier one whose
//!     slot was kept since): that reference is dropped later with a release
//!     RMW (by `exit_mm()` on this CPU, or by the task after the scheduler
//!     moved it elsewhere — the runqueue lock orders the two CPUs), and the
//!     final drop runs after the last drop's acquire;
//!   - the clear is a release store, paired with the scan's acquire loads:
//!     this CPU's uses of the mm — up to the page-table load that replaced
//!     it, after which the CPU no longer uses it — happen before the scan
//!     sees the slot empty
//!     (`bug_nofence_relaxed_clear`, a relaxed clear, is the use-after-free
//!     loom finds without the barrier in front of it);
//!   - the publish is a release store too: the scan may read the CPU's
//!     *next* lazy mm in the slot, and only a release store carries the
//!     earlier clear's ordering along (`bug_nofence_relaxed_publish`);
//!   - the scan keeps its `smp_mb()` (the final drop is rare).
//!
//!   - the slot is **kept across an unlazy into the same mm** (van Riel's
//!     caching, [`crate::lazy::cached`], applied to the slot): a CPU that
//!     goes lazy on the mm its slot already holds stores nothing, and
//!     leaving lazy stores nothing. The slot is cleared (release) in
//!     [`switched_mm`](LazyMm::switched_mm), after the CPU loaded another
//!     mm — never before the load (`Bug::ClearBeforeLoad`: the scan frees
//!     the mm while the CPU still has it loaded) — and, as a safety net for
//!     a kernel path that loads another mm without the hooks, in
//!     `mmdrop_lazy_tlb` when the CPU leaves lazy for another mm. So a slot
//!     holding the mm means the CPU has it loaded, as a user or lazily; at
//!     the final drop no user task of the mm is left, so every CPU the scan
//!     finds is lazy on it, as before: the IPIs are the same ones.
//!
//!     That needs two things of the kernel (crate docs, step 4): the hooks
//!     around **every** load of another mm, user → user included (a slot
//!     left holding an mm the CPU no longer runs makes that mm's final drop
//!     wait for the CPU's next switch), and no reload of a lazy mm after
//!     switching away from it without a new `mmgrab_lazy_tlb` (the slot
//!     was cleared at the first switch; [`Checked`](crate::lazy::checked::Checked)
//!     panics). The clear in `switched_mm` is the only one that helps when a
//!     live task whose mm the slot kept is preempted by a task of another
//!     mm, then migrates and dies on another CPU while this one stays in
//!     user mode: without it the final drop waits for this CPU forever
//!     (`Bug::NoClearOnSwitchAway`, a livelock the machine reports in the
//!     preemption and migration scenarios).
//!
//!   On the same-mm round trip (the common one) it is one load of the
//!   CPU's own slot and no store: the floor's `is_lazy` stores and a
//!   compare. No search and no misuse check (entering twice, leaving
//!   without entering): those are
//!   [`Checked`](crate::lazy::checked::Checked)'s, as for `loaded_mm`:
//!   wrap the scheme while bringing a kernel up.
//!
//!   The one thing the barriers also gave Linux, membarrier's ordering of
//!   user accesses around a switch, a kernel gets from its scheduler's own
//!   full barrier (`smp_mb__after_spinlock()` in `__schedule()`), not from
//!   this scheme. The same loom and shuttle scenarios check both variants.
//!
//! Source: Mathieu Desnoyers' "sched: Hazard pointers for lazy mm" RFC
//! series (v1–v3, 2024) and its LKML review.

use crate::bugs::BugSwitch;
use crate::cpu::{CpuId, CpuMask};
use crate::lazy::{Kernel, LazyMm, MmHandle};
use crate::reclaim::hazard::{Bug as DomainBug, HazardDomain, ScanContext};

/// The known-bad variants of [`HazardLazy`]: its domain's
/// ([`crate::reclaim::hazard::Bug`], through [`Bug::Domain`] or `From`),
/// and the fence-free switch's own.
#[cfg_attr(not(lazymm_bugs), doc(hidden))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// A known bug of the hazard domain.
    Domain(DomainBug),
    /// [`HazardLazyNoFence`](crate::lazy::hazard::HazardLazyNoFence) clears
    /// its slot in `switching_mm()`, before the CPU loads the next mm,
    /// instead of in `switched_mm()` after: a final drop's scan can read the
    /// slot empty and free the mm while the CPU still has it loaded. (The
    /// models reach it with a lazy CPU leaving for another mm; a slot kept
    /// across an unlazy cannot race a final drop there, its task still
    /// holding `mm_users`.)
    ClearBeforeLoad,
    /// [`HazardLazyNoFence`](crate::lazy::hazard::HazardLazyNoFence) does
    /// not clear a kept slot in `switched_mm()` when the CPU switches away
    /// from the mm, only when it leaves lazy for another mm
    /// (`mmdrop_lazy_tlb`'s safety net). A live task preempted by a task of
    /// another mm leaves the slot holding its mm; if the task then migrates
    /// and the mm dies elsewhere, the final drop's scan waits for a CPU
    /// that stays in user mode: a livelock, which only the preemption and
    /// migration scenarios reach (`harness::preempt_migrate_stay_user`).
    NoClearOnSwitchAway,
}

impl From<DomainBug> for Bug {
    fn from(b: DomainBug) -> Self {
        Bug::Domain(b)
    }
}
use crate::sync::smp_mb;

/// The hazard-pointer lazy-mm scheme (Desnoyers 2024): one slot per CPU
/// holds the CPU's lazy mm (the fence-free variant: or the mm it kept
/// across an unlazy); the final drop scans and IPIs the holders.
///
/// `FENCED` (default `true`): Desnoyers' two `smp_mb()` on the switch path;
/// `false` is [`HazardLazyNoFence`] (module docs).
pub struct HazardLazy<const N: usize, const FENCED: bool = true> {
    domain: HazardDomain<N, 1>,
    bug: BugSwitch<Bug>,
}

/// [`HazardLazy`] without its own barriers on the switch path (module
/// docs: what orders the publish and the clear instead).
pub type HazardLazyNoFence<const N: usize> = HazardLazy<N, false>;

impl<const N: usize, const FENCED: bool> Default for HazardLazy<N, FENCED> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize, const FENCED: bool> HazardLazy<N, FENCED> {
    crate::const_fn! {
        /// No CPU lazy.
        pub fn new() -> Self {
            Self {
                domain: HazardDomain::new(),
                bug: BugSwitch::off(),
            }
        }
    }

    /// The scheme with a known bug switched on: its domain's, or its own.
    #[cfg(lazymm_bugs)]
    pub fn with_bug(bug: impl Into<Bug>) -> Self {
        match bug.into() {
            Bug::Domain(b) => Self {
                domain: HazardDomain::with_bug(b),
                bug: BugSwitch::off(),
            },
            own => Self {
                domain: HazardDomain::new(),
                bug: BugSwitch::on(own),
            },
        }
    }

    /// The domain.
    pub fn domain(&self) -> &HazardDomain<N, 1> {
        &self.domain
    }

    /// The fence-free variant's switch: `cpu` now has `next` loaded, so a
    /// slot kept for another mm is cleared. A release store (`unpublish`):
    /// this CPU's uses of the old mm, up to and including the page-table
    /// load that replaced it, happen before a scan that reads the slot empty.
    #[inline]
    fn clear_kept<M: MmHandle>(&self, cpu: CpuId, next: Option<M>) {
        let kept = self.domain.owned(cpu, 0);
        if kept != 0 && kept != next.map_or(0, MmHandle::to_word) {
            self.domain.unpublish(cpu, 0);
        }
    }
}

impl<const N: usize, const FENCED: bool> LazyMm for HazardLazy<N, FENCED> {
    const NAME: &'static str = if FENCED { "hazard" } else { "hazard_nofence" };
    const CPUS: usize = N;

    #[inline]
    fn mmgrab_lazy_tlb<K: Kernel>(&self, _k: &K, cpu: CpuId, mm: K::Mm) {
        crate::lazy::check_sizes::<K, N>();
        // mmgrab_lazy_tlb(): smp_mb(); publish. "Only a single lazy mm per
        // CPU": a full slot is a misuse.
        if FENCED && !self.domain.bug().is(DomainBug::NoPublishFence) {
            // Pairs with the scan's smp_mb() (membarrier in Linux; see the
            // module docs for why existence does not need it).
            smp_mb();
        }
        if FENCED {
            // protect() = publish + smp_mb() (pairs with the scan's).
            if let Err(e) = self.domain.protect(cpu, mm.to_word()) {
                panic!("lazymm: mmgrab_lazy_tlb on {cpu}: {e:?} (already lazy?)");
            }
            // The slot is the record; mmdrop_lazy_tlb clears it.
        } else if self.domain.owned(cpu, 0) != mm.to_word() {
            // The CPU's one slot, no search and no check (module docs: the
            // misuse checks are `Checked`'s); ordered before the final
            // drop's scan by the task's later release drop of mm_users.
            // A slot that already holds `mm` was kept across an unlazy into
            // it and has protected the mm since: nothing to store.
            self.domain.publish(cpu, 0, mm.to_word());
        }
    }

    #[inline]
    fn mmdrop_lazy_tlb<K: Kernel>(&self, _k: &K, cpu: CpuId, mm: K::Mm, next: Option<K::Mm>) {
        // mmdrop_lazy_tlb(): smp_mb(); clear the slot.
        if FENCED {
            // Pairs with the scan's smp_mb() (membarrier in Linux).
            smp_mb();
        }
        if FENCED {
            if !self.domain.clear(cpu, mm.to_word()) {
                panic!("lazymm: mmdrop_lazy_tlb on {cpu}, which is not lazy on {mm:?}");
            }
        } else if next != Some(mm) && self.domain.owned(cpu, 0) == mm.to_word() {
            // The fence-free variant keeps its slot across an unlazy into
            // the same mm; switched_mm cleared it if the CPU loaded another
            // mm through the hooks. This catches a path that did not (CPU
            // down straight to the kernel's mm): the CPU has loaded `next`,
            // so the release clear is after its last use (module docs).
            self.domain.unpublish(cpu, 0);
        }
    }

    #[inline]
    fn switching_mm<K: Kernel>(
        &self,
        _k: &K,
        cpu: CpuId,
        _prev: Option<K::Mm>,
        next: Option<K::Mm>,
    ) {
        if !FENCED && self.bug.is(Bug::ClearBeforeLoad) {
            // BUG: the CPU still has the kept mm loaded.
            self.clear_kept(cpu, next);
        }
    }

    #[inline]
    fn switched_mm<K: Kernel>(
        &self,
        _k: &K,
        cpu: CpuId,
        _prev: Option<K::Mm>,
        next: Option<K::Mm>,
    ) {
        let bug = self.bug;
        if !FENCED && !bug.is(Bug::ClearBeforeLoad) && !bug.is(Bug::NoClearOnSwitchAway) {
            self.clear_kept(cpu, next);
        }
    }

    fn lazy_shot<K: Kernel>(&self, _k: &K, cpu: CpuId, mm: K::Mm) {
        // do_shoot_lazy_tlb(): the CPU switched to the kernel's mm; clear.
        self.domain.clear(cpu, mm.to_word());
    }

    fn final_drop<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        crate::lazy::check_sizes::<K, N>();
        // cleanup_lazy_tlbs() -> hazptr_scan(..., retire_lazy_mm_hp): a
        // targeted IPI to each holder; the scan waits for its slot to clear.
        let mut shoot = |c: CpuId| {
            let mut one = K::CpuMask::default();
            one.insert(c);
            k.shoot_lazies(cpu, &one, mm);
        };
        self.domain
            .scan(
                ScanContext::Preemptible,
                N,
                mm.to_word(),
                Some(&mut shoot),
                || k.serve_ipis(cpu),
            )
            .expect("preemptible scan");
    }
}
