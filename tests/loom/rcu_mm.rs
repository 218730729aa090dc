//! `rcu_mm` (RCU-deferred mm freeing, correct for idle CPUs) under loom:
//! the shared scenarios pass; treating a lazy CPU as quiescent (van Riel's
//! objection), a grace period one step short and a callback run before its
//! grace period ends are rejected.

use crate::common::*;
use lazymm::check::model::harness::{self, loom_check, LoomCheck};
use lazymm::lazy::rcu_mm::{Bug, RcuMm};
use lazymm::reclaim::rcu;

shared_scenarios!(
    passes,
    "rcu_mm",
    HEAVY_BOUND,
    lazymm::lazy::rcu_mm::RcuMm::<2>::new,
    HEAVY_THREE_CPU_BOUND,
    lazymm::lazy::rcu_mm::RcuMm::<3>::new
);

#[test]
#[should_panic(expected = "use-after-free of mm")]
fn bug_idle_is_quiescent() {
    check(
        "rcu_mm/bug_idle_is_quiescent",
        HEAVY_BOUND,
        || RcuMm::<2>::with_bug(Bug::IdleIsQuiescent),
        exit_lazy_vs_final_drop,
    );
}

#[test]
#[should_panic(expected = "use-after-free of mm")]
fn bug_no_wait() {
    check(
        "rcu_mm/bug_no_wait",
        HEAVY_BOUND,
        || RcuMm::<2>::with_rcu_bug(rcu::Bug::NoWait),
        exit_lazy_vs_final_drop,
    );
}

#[test]
#[should_panic(expected = "use-after-free of mm")]
fn bug_gp_one_short() {
    check(
        "rcu_mm/bug_gp_one_short",
        HEAVY_BOUND,
        || RcuMm::<2>::with_rcu_bug(rcu::Bug::GpOneShort),
        crossing_drops,
    );
}

/// The final drop where a grace period can complete
/// (`harness::final_drop_elsewhere`: the last reference dropped by a kernel
/// thread on the kernel's own mm, after the exiting CPU may have moved on):
/// the explored executions free mm0 both through completed grace periods
/// (no shoot-lazies call) and through the IPI fallback.
#[test]
fn final_drop_elsewhere_frees_through_grace_periods() {
    let report = loom_check(
        HEAVY_BOUND + extra_bound(),
        RcuMm::<2>::new,
        harness::final_drop_elsewhere(),
    );
    eprintln!("loom rcu_mm/final_drop_elsewhere: {report}");
    assert!(
        report.frees_without_shootdown > 0,
        "no free through a completed grace period: {report}"
    );
    assert!(
        report.frees_without_shootdown < report.frees,
        "no free through the IPI fallback: {report}"
    );
}

/// A quiescent state reported before the page-table load: only a free
/// through a completed grace period exposes it, so the standard scenarios
/// pass it (`bug_quiescent_before_load_survives_standard`) and the
/// grace-period scenario rejects it — with the oracle's page-table base
/// visible to loom (`visible_loads`), one preemption above the scheme's
/// bound (found in ~9 s).
#[test]
#[should_panic(expected = "use-after-free of mm0: freed on cpu1 while cpu0 still has it loaded")]
fn bug_quiescent_before_load() {
    LoomCheck::new(HEAVY_BOUND + 1).visible_loads().run(
        || RcuMm::<2>::with_bug(Bug::QuiescentBeforeLoad),
        harness::final_drop_elsewhere(),
    );
}

/// The pin for the sentence above: every 2-CPU standard scenario passes the
/// variant at the standard bound (no free there goes through a completed
/// grace period). ~17 s: run by `ci/deep.sh`.
#[test]
#[ignore = "slow pin (~17 s); ci/deep.sh runs it"]
fn bug_quiescent_before_load_survives_standard() {
    for (name, scenario) in harness::standard_scenarios() {
        if scenario.nr_cpus() > 2 {
            continue;
        }
        let r = loom_check(
            HEAVY_BOUND,
            || RcuMm::<2>::with_bug(Bug::QuiescentBeforeLoad),
            scenario,
        );
        eprintln!("loom rcu_mm/bug_quiescent_before_load/{name}: passes ({r})");
    }
}

/// `Rcu::is_idle` with a relaxed load: the final drop's holdout check
/// skips a CPU it reads idle without its uses before `idle_enter` ordered
/// before the free.
#[test]
#[should_panic(expected = "use-after-free of mm0")]
fn bug_relaxed_is_idle() {
    check(
        "rcu_mm/bug_relaxed_is_idle",
        HEAVY_BOUND,
        || RcuMm::<2>::with_rcu_bug(rcu::Bug::RelaxedIsIdle),
        exit_lazy_vs_final_drop,
    );
}
