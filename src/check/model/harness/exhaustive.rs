//! The loom side of the harness (`--cfg loom`): exhaustive checks of a
//! scheme on the standard scenarios or one of your own.

use super::{run_machine, standard_bound, standard_scenarios, test_name, MachineSetup};
use crate::check::model::{MachineBug, Scenario};
use crate::lazy::LazyMm;
use crate::sync::shadow::Shadow;
use std::time::{Duration, Instant};
use std::vec::Vec;

/// What a loom check explored (it returns only if every execution passed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoomReport {
    /// The preemption bound explored (`None`: unbounded, from the environment).
    pub preemption_bound: Option<usize>,
    /// Executions (interleavings) explored.
    pub executions: usize,
    /// Final drops deferred out of interrupts-off hooks, over all
    /// executions (0 unless [`LoomCheck::deferred_drops`]).
    pub deferred_drops: usize,
    /// mms freed, over all executions.
    pub frees: usize,
    /// Of those, the ones whose final drop made no shoot-lazies call
    /// ([`Stats::frees_without_shootdown`](crate::check::model::Stats::frees_without_shootdown):
    /// for `rcu_mm`, the frees through a completed grace period).
    pub frees_without_shootdown: usize,
    /// Wall-clock time.
    pub elapsed: Duration,
}

impl core::fmt::Display for LoomReport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "bound {:?}, {} executions, {:.2?}",
            self.preemption_bound, self.executions, self.elapsed
        )?;
        if self.deferred_drops > 0 {
            write!(f, ", {} deferred final drops", self.deferred_drops)?;
        }
        write!(
            f,
            ", {} frees ({} without a shootdown)",
            self.frees, self.frees_without_shootdown
        )?;
        Ok(())
    }
}

/// A loom check with its settings (`LoomCheck::new(bound).run(make, scenario)`).
#[derive(Clone, Debug)]
pub struct LoomCheck {
    preemption_bound: usize,
    max_branches: usize,
    setup: MachineSetup,
    progress: Option<std::string::String>,
}

impl LoomCheck {
    /// Branches loom allows per execution: idle CPUs wait (yielding) while
    /// others work, so paths are long.
    pub const MAX_BRANCHES: usize = 100_000;

    /// A check at `preemption_bound` (unless `LOOM_MAX_PREEMPTIONS` is set).
    pub fn new(preemption_bound: usize) -> Self {
        Self {
            preemption_bound,
            max_branches: Self::MAX_BRANCHES,
            setup: MachineSetup::default(),
            progress: None,
        }
    }

    /// loom's limit on branches per execution (default [`Self::MAX_BRANCHES`]).
    pub fn max_branches(mut self, n: usize) -> Self {
        self.max_branches = n;
        self
    }

    super::machine_setup_setters!();

    /// Prints `label` and the count every 5,000 executions (to stderr).
    pub fn progress(mut self, label: impl Into<std::string::String>) -> Self {
        self.progress = Some(label.into());
        self
    }

    /// Explores every interleaving of `scenario` (within the bound) under
    /// the scheme `make` builds, one fresh scheme and machine per
    /// execution. Panics with the oracle's message on the first failing
    /// execution.
    pub fn run<S, F>(&self, make: F, scenario: Scenario) -> LoomReport
    where
        S: LazyMm + Send + Sync + 'static,
        F: Fn() -> S + Send + Sync + 'static,
    {
        let mut b = crate::sync::checker::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(self.preemption_bound);
        }
        b.max_branches = self.max_branches;
        let preemption_bound = b.preemption_bound;
        let executions = std::sync::Arc::new(Shadow::new(0));
        let counter = std::sync::Arc::clone(&executions);
        let setup = self.setup;
        let deferred = std::sync::Arc::new(Shadow::new(0));
        let deferred_sum = std::sync::Arc::clone(&deferred);
        let frees = std::sync::Arc::new([Shadow::new(0), Shadow::new(0)]);
        let frees_sum = std::sync::Arc::clone(&frees);
        let progress = self.progress.clone();
        let replay = std::format!(
            "RUSTFLAGS=\"--cfg loom\" cargo test --release{} -- {} --exact --nocapture\n            (loom is exhaustive and deterministic: the rerun fails on the same execution; LOOM_LOG=trace before it prints every step of every execution)",
            super::test_target().map_or(std::string::String::new(), |t| std::format!(" --test {t}")),
            test_name()
        );
        let start = Instant::now();
        let max_branches = self.max_branches;
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            b.check(move || {
                let n = counter.add(1) + 1;
                if let Some(label) = &progress {
                    if n % 5000 == 0 {
                        std::eprintln!("  {label}: {n} executions...");
                    }
                }
                let stats = run_machine(make(), scenario.clone(), setup, &replay);
                deferred_sum.add(stats.deferred_drops as usize);
                frees_sum[0].add(stats.frees as usize);
                frees_sum[1].add(stats.frees_without_shootdown as usize);
            })
        }));
        if let Err(payload) = checked {
            branch_limit_hint(payload, max_branches);
        }
        LoomReport {
            preemption_bound,
            executions: executions.get(),
            deferred_drops: deferred.get(),
            frees: frees[0].get(),
            frees_without_shootdown: frees[1].get(),
            elapsed: start.elapsed(),
        }
    }
}

/// Re-raises a failed check's panic; when loom stopped on its branch limit,
/// with what to do about it.
fn branch_limit_hint(payload: std::boxed::Box<dyn core::any::Any + Send>, max: usize) -> ! {
    let msg = payload
        .downcast_ref::<std::string::String>()
        .map(|s| s.as_str())
        .or_else(|| payload.downcast_ref::<&str>().copied());
    match msg {
        Some(m) if m.contains("maximum number of branches") => panic!(
            "{m}\n  lazymm: loom stopped on its branch limit ({max} branches per execution), \
             not on a bug the oracle saw. A wait loop that writes (swap, fetch_add, \
             compare_exchange) on every round adds a branch each round: load first and \
             write only when the load says so, and yield with \
             lazymm::check::sync::spin_loop() between rounds. If the execution is just \
             long, raise the limit: LoomCheck::new(bound).max_branches(n)."
        ),
        _ => std::panic::resume_unwind(payload),
    }
}

/// Explores every interleaving of `scenario`, up to `preemption_bound`
/// preemptions, under the scheme `make` builds; panics with the oracle's
/// message if one fails.
pub fn loom_check<S, F>(preemption_bound: usize, make: F, scenario: Scenario) -> LoomReport
where
    S: LazyMm + Send + Sync + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    LoomCheck::new(preemption_bound).run(make, scenario)
}

/// [`loom_check`] on every standard scenario at its [`standard_bound`], in
/// the order of [`standard_scenarios`]; panics on the first failure.
pub fn loom_check_standard<S, F>(make: F) -> Vec<(&'static str, LoomReport)>
where
    S: LazyMm + Send + Sync + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    let make = std::sync::Arc::new(make);
    standard_scenarios()
        .into_iter()
        .map(|(name, scenario)| {
            let make = std::sync::Arc::clone(&make);
            let bound = standard_bound(&scenario);
            (name, loom_check(bound, move || make(), scenario))
        })
        .collect()
}
