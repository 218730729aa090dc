//! Schemes written outside the crate, checked by the public harness
//! (`lazymm::check::model::harness`) exactly as a user's own test would: a correct
//! one passes at 8 CPUs, two deliberately wrong ones are rejected with the
//! oracle's messages.

use lazymm::check::model::harness::{shuttle_check, ShuttleCheck, ShuttleScheduler};

#[path = "../external_schemes/mod.rs"]
mod schemes;
use schemes::{NoDrop, NoGrab, PlainRefcount};

/// The one-call check with the harness's defaults.
#[test]
fn plain_refcount_passes() {
    let reports = shuttle_check(PlainRefcount::default);
    assert_eq!(
        reports.iter().map(|r| r.scheduler).collect::<Vec<_>>(),
        ShuttleCheck::SCHEDULERS,
        "one report per default scheduler, in order"
    );
    for r in &reports {
        eprintln!("shuttle external/plain-refcount: {r}");
        assert_eq!(r.executions, ShuttleCheck::ITERATIONS, "{r}");
        // Every execution switches at least once per operation of the
        // workload's 240+ (minus the exits).
        assert!(r.switches >= 100 * r.executions as u64, "{r}");
    }
}

#[test]
#[should_panic(expected = "use-after-free of mm")]
fn no_grab_is_rejected() {
    shuttle_check(NoGrab::default);
}

#[test]
#[should_panic(expected = "leak: mm")]
fn no_drop_is_rejected() {
    shuttle_check(NoDrop::default);
}

/// The builder: a fixed scenario of one's own, one scheduler.
#[test]
#[should_panic(expected = "use-after-free of mm0")]
fn no_grab_is_rejected_on_a_fixed_scenario() {
    ShuttleCheck::new()
        .scenario(lazymm::check::model::harness::down_while_lazy())
        .schedulers(&[ShuttleScheduler::Random { seed: 1 }])
        .iterations(100)
        .run(NoGrab::default);
}
