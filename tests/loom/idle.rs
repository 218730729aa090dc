//! The idle wait of the scenario language (`Op::IdleUntilExited`): the
//! final drop always meets the other CPU lazy on the dying mm. Schemes that
//! IPI lazy CPUs pass; a scheme that counts the idle CPU as done with the
//! mm is rejected.

use crate::common::*;
use lazymm::check::model::harness::exit_meets_idle_lazy;
use lazymm::lazy::rcu_mm::{Bug, RcuMm};

#[test]
fn shootdown_passes() {
    check(
        "idle/shootdown",
        DEFAULT_BOUND,
        lazymm::lazy::shootdown::Shootdown::new,
        exit_meets_idle_lazy,
    );
}

#[test]
fn hazard_nofence_passes() {
    check(
        "idle/hazard_nofence",
        HEAVY_BOUND,
        lazymm::lazy::hazard::HazardLazyNoFence::<2>::new,
        exit_meets_idle_lazy,
    );
}

#[test]
fn rcu_mm_passes() {
    check(
        "idle/rcu_mm",
        HEAVY_BOUND,
        RcuMm::<2>::new,
        exit_meets_idle_lazy,
    );
}

#[test]
#[should_panic(expected = "use-after-free of mm")]
fn bug_rcu_mm_idle_is_quiescent() {
    check(
        "idle/rcu_mm/bug_idle_is_quiescent",
        HEAVY_BOUND,
        || RcuMm::<2>::with_bug(Bug::IdleIsQuiescent),
        exit_meets_idle_lazy,
    );
}
