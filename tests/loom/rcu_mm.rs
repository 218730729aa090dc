//! `rcu_mm` (RCU-deferred mm freeing, correct for idle CPUs) under loom:
//! the shared scenarios pass; treating a lazy CPU as quiescent (van Riel's
//! objection), a grace period one step short and a callback run before its
//! grace period ends are rejected.

use crate::common::*;
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
