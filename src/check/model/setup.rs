//! The machine's settings and accessors: the builder methods that switch
//! on its options (a machine bug, inline IPIs, deferred final drops,
//! checker-visible loads, the replay line) and what drivers read back.

#[cfg(lazymm_bugs)]
use super::MachineBug;
use super::{Machine, Scenario};
#[cfg(lazymm_bugs)]
use crate::bugs::BugSwitch;
use crate::lazy::LazyMm;

impl<S: LazyMm + Send + Sync + 'static> Machine<S> {
    /// The scheme's name.
    pub fn scheme_name(&self) -> &'static str {
        S::NAME
    }

    /// Switches on a known bug of the machine's own kernel code.
    #[cfg(lazymm_bugs)]
    pub fn with_bug(mut self, bug: MachineBug) -> Self {
        self.bug = BugSwitch::on(bug);
        self
    }

    /// Runs IPI handlers directly on the target CPU's state instead of
    /// through mailboxes: for driving the machine from one thread with
    /// [`step`](Self::step).
    pub fn with_inline_ipis(mut self) -> Self {
        self.inline_ipis = true;
        self
    }

    /// The line a failure report prints to replay the failure (the harness
    /// sets the checker's rerun command here).
    pub fn with_replay(mut self, line: impl Into<std::string::String>) -> Self {
        self.replay = Some(line.into());
        self
    }

    /// Defers a final drop reached inside an interrupts-off hook (the
    /// `lazy` module's table) to the CPU's next interrupts-enabled point, as
    /// a kernel using [`DeferredDrops`](crate::lazy::deferred::DeferredDrops)
    /// (`mmdrop_sched()`) does.
    pub fn with_deferred_drops(mut self) -> Self {
        self.defer_drops = true;
        self
    }

    /// Makes the oracle's copy of each CPU's page-table base a checker
    /// atomic (relaxed), so that loom's partial-order reduction explores a
    /// free's check of it against the CPU's page-table load. As a plain
    /// shadow value (the default) it is invisible to loom, which then never
    /// preempts a CPU between a scheme hook and its load unless something
    /// else conflicts there: cheaper (2–5× fewer executions), and enough
    /// where the schemes order every free after the load. A scheme whose
    /// hook makes promises *before* the load (an RCU quiescent state, a
    /// published word) needs it: `rcu_mm`'s `bug_quiescent_before_load` is
    /// found only so.
    pub fn with_visible_loads(mut self) -> Self {
        self.visible_loads = true;
        self
    }

    /// The scenario the machine runs.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The scheme.
    pub fn scheme(&self) -> &S {
        &self.scheme
    }

    /// Number of CPUs.
    pub fn nr_cpus(&self) -> usize {
        self.cpus.len()
    }
}
