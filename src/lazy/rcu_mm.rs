//! RCU-deferred mm freeing that is correct for idle CPUs (Wilcox and van
//! Riel, December 2020, in the replies to Lutomirski's lazy-mm mockup).
//!
//! # The idea, and why the naive form is wrong
//!
//! Lazy CPUs take no reference (as with [`crate::lazy::shootdown`]); the mm is
//! freed one RCU grace period after its last reference. Matthew Wilcox's
//! suggestion; Rik van Riel's objection: RCU counts an idle CPU as
//! quiescent, yet an idle CPU *still has the mm loaded* — its page-table
//! base points at it, and the hardware may walk it. Treating idle (or any
//! lazy period) as quiescent frees the mm under that CPU:
//! `bug_idle_is_quiescent` ([`Bug::IdleIsQuiescent`]), rejected by loom with
//! "use-after-free of mm...".
//!
//! # The correct scheme ([`RcuMm`])
//!
//! A dedicated RCU domain ([`Rcu`]) whose quiescent states are *loads of
//! another page-table base*, not context switches:
//!
//! * `switched_mm` from one user mm to another: a quiescent state (the old mm
//!   is no longer loaded);
//! * `switched_mm` to the kernel's own mm (shot, CPU down): an extended
//!   quiescent state; back to a user mm: leaves it;
//! * entering or leaving lazy mode, and idling lazily: **nothing** — a CPU
//!   that holds an mm lazily is not quiescent until it loads another.
//!
//! The final drop takes a grace-period cookie and drives the machinery. A
//! CPU that idles lazily for a long time would stall the grace period
//! forever, so the wait is **bounded**: after [`RcuMm::POLLS`] advances of
//! the machinery without the grace period ending, the CPUs of the mm's
//! cpumask that are still active (not in an extended quiescent state) get
//! the shoot-lazy IPI, which switches the ones lazy on this mm to the
//! kernel's own mm; once they acknowledge, the mm is freed.
//!
//! **Bound.** An mm waits for at most `POLLS` advances of the grace-period
//! machinery plus one IPI round to the active CPUs of its cpumask —
//! independent of how long any CPU idles. When grace periods complete on
//! their own (CPUs switch mms), no IPI is sent at all.
//!
//! **Orderings.** Each CPU's quiescent state is a release RMW followed by a
//! full barrier; the grace period's start is a full barrier and acquire
//! reads (the store-buffering pair of [`crate::reclaim::rcu`]). A CPU cannot load a
//! dead mm again (no task holds it), so after the cookie only CPUs that
//! loaded it before matter: either they pass a quiescent state (release,
//! acquired by the GP end, acquired by [`Rcu::done`]) or they are IPI'd
//! (release acknowledgement, acquired by the sender).
//!
//! **Free from a callback.** A kernel would not wait in `__mmdrop()`; it
//! queues the mm with its cookie ([`crate::reclaim::rcu::RcuQueue`]) and frees it
//! when the grace period ends. The simulated machine frees synchronously
//! after the final-drop hook, so [`RcuMm`] waits there — the bound above is
//! the same.
//!
//! For std users, `epoch_mm` (feature `epoch`) is the same scheme with
//! crossbeam-epoch's grace periods: a lazy CPU holds a pinned guard.
//!
//! Evidence: the six shared machine scenarios pass at preemption bound 3
//! (2 CPUs) and 2 (3 CPUs), and one deeper in `ci/deep.sh` (VERIFICATION.md
//! has the counts); the variants below fail with "use-after-free of mm".
//!
//! Variants: `bug_idle_is_quiescent`, and the grace-period machinery's
//! `bug_gp_one_short` and `bug_no_wait` (a callback run before its grace
//! period ends) through `RcuMm::with_rcu_bug` (checker builds).

use crate::bugs::BugSwitch;
use crate::cpu::{CpuId, CpuMask};
use crate::lazy::{Kernel, LazyMm};
use crate::reclaim::rcu::Rcu;

/// Known-bad variants of the scheme.
#[cfg_attr(not(lazymm_bugs), doc(hidden))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// RCU's usual rule: a lazy (idle, kernel-thread) CPU is quiescent.
    IdleIsQuiescent,
    /// A switch from one user mm to another reports its quiescent state in
    /// `switching_mm`, before the page-table load, while the CPU still has
    /// the old mm loaded. Harmless on the IPI fallback (the shoot-lazy IPI
    /// waits for the switch to finish); a use-after-free only when a grace
    /// period completes on that report and the free follows it — which the
    /// standard scenarios never produce and `harness::final_drop_elsewhere`
    /// does.
    QuiescentBeforeLoad,
}

/// RCU-deferred mm freeing with a bounded wait, on `N` CPUs.
pub struct RcuMm<const N: usize> {
    rcu: Rcu<N>,
    bug: BugSwitch<Bug>,
}

impl<const N: usize> Default for RcuMm<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RcuMm<N> {
    /// Advances of the grace-period machinery the final drop tries before
    /// it IPIs the CPUs still holding the grace period up.
    pub const POLLS: usize = 4;

    crate::const_fn! {
        /// The scheme, every CPU in an extended quiescent state (on the
        /// kernel's own mm).
        pub fn new() -> Self {
            Self { rcu: Rcu::new(), bug: BugSwitch::off() }
        }
    }

    /// The scheme with a bug of its own switched on (checker builds only).
    #[cfg(lazymm_bugs)]
    pub fn with_bug(bug: Bug) -> Self {
        Self {
            rcu: Rcu::new(),
            bug: BugSwitch::on(bug),
        }
    }

    /// The scheme over grace-period machinery with a bug switched on.
    #[cfg(lazymm_bugs)]
    pub fn with_rcu_bug(bug: crate::reclaim::rcu::Bug) -> Self {
        Self {
            rcu: Rcu::with_bug(bug),
            bug: BugSwitch::off(),
        }
    }

    /// Grace periods completed so far.
    pub fn grace_periods(&self) -> usize {
        self.rcu.completed()
    }
}

impl<const N: usize> LazyMm for RcuMm<N> {
    const NAME: &'static str = "rcu_mm";
    const CPUS: usize = N;

    fn mmgrab_lazy_tlb<K: Kernel>(&self, _k: &K, cpu: CpuId, _mm: K::Mm) {
        crate::lazy::check_sizes::<K, N>();
        if self.bug.is(Bug::IdleIsQuiescent) && !self.rcu.is_idle(cpu) {
            self.rcu.idle_enter(cpu);
        }
    }

    fn mmdrop_lazy_tlb<K: Kernel>(&self, _k: &K, cpu: CpuId, mm: K::Mm, next: Option<K::Mm>) {
        // Correct scheme: nothing (the mm stays loaded, or `switched_mm`
        // already reported the load of another one).
        if self.bug.is(Bug::IdleIsQuiescent) && next == Some(mm) && self.rcu.is_idle(cpu) {
            self.rcu.idle_exit(cpu);
        }
    }

    fn switching_mm<K: Kernel>(
        &self,
        _k: &K,
        cpu: CpuId,
        prev: Option<K::Mm>,
        next: Option<K::Mm>,
    ) {
        if self.bug.is(Bug::QuiescentBeforeLoad) && prev.is_some() && next.is_some() {
            // BUG: quiescent while `prev` is still loaded.
            self.rcu.quiescent(cpu);
        }
    }

    fn switched_mm<K: Kernel>(&self, _k: &K, cpu: CpuId, prev: Option<K::Mm>, next: Option<K::Mm>) {
        let idle = self.rcu.is_idle(cpu);
        if self.bug.is(Bug::QuiescentBeforeLoad) && prev.is_some() && !idle && next.is_some() {
            return; // reported in switching_mm
        }
        match next {
            None if !idle => self.rcu.idle_enter(cpu),
            None => {}
            Some(_) if idle => self.rcu.idle_exit(cpu),
            Some(_) => self.rcu.quiescent(cpu),
        }
    }

    fn final_drop<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        crate::lazy::check_sizes::<K, N>();
        let cookie = self.rcu.snap();
        for _ in 0..Self::POLLS {
            k.serve_ipis(cpu);
            self.rcu.advance();
            if self.rcu.done(cookie) {
                return;
            }
        }
        // Bounded wait: IPI the CPUs of the cpumask still active (the
        // acquire snapshot pairs with a leaving CPU's release clear).
        let mut holdouts = K::CpuMask::default();
        k.for_each_mm_cpu(mm, |c| {
            if c.index() < N && !self.rcu.is_idle(c) {
                holdouts.insert(c);
            }
        });
        k.shoot_lazies(cpu, &holdouts, mm);
    }
}
