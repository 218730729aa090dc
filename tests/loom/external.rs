//! Schemes written outside the crate, checked by the public harness
//! (`lazymm::check::model::harness`) exactly as a user's own test would: a correct
//! one passes, two deliberately wrong ones are rejected with the oracle's
//! messages.

use lazymm::check::model::harness::{self, loom_check, loom_check_standard};

#[path = "../external_schemes/mod.rs"]
mod schemes;
use schemes::{NoDrop, NoGrab, PlainRefcount};

/// Every 2-CPU standard scenario at its standard bound: what
/// `loom_check_standard` runs, less the 3-CPU model (below).
#[test]
fn plain_refcount_passes_two_cpu_scenarios() {
    let mut checked = 0;
    for (name, scenario) in harness::standard_scenarios() {
        if scenario.nr_cpus() > 2 {
            continue;
        }
        let bound = harness::standard_bound(&scenario);
        assert_eq!(bound, harness::LOOM_BOUND_2_CPUS);
        let report = loom_check(bound, PlainRefcount::default, scenario);
        eprintln!("loom external/plain-refcount/{name}: {report}");
        assert!(
            report.executions > 1,
            "{name}: loom explored a single interleaving"
        );
        checked += 1;
    }
    assert_eq!(checked, 5, "the five 2-CPU standard scenarios");
}

/// The 3-CPU standard scenario one preemption below its standard bound
/// (`loom_check_standard` runs it at 3: 140,000 executions, ~10 s).
#[test]
fn plain_refcount_passes_three_cpus() {
    let report = loom_check(
        harness::LOOM_BOUND_3_CPUS - 1,
        PlainRefcount::default,
        harness::three_cpus(),
    );
    eprintln!("loom external/plain-refcount/three_cpus: {report}");
    assert!(report.executions > 1, "{report}");
}

/// The one call, on a wrong scheme: rejected on the first standard scenario.
#[test]
#[should_panic(expected = "use-after-free of mm0")]
fn no_grab_is_rejected_by_the_standard_check() {
    loom_check_standard(NoGrab::default);
}

#[test]
#[should_panic(expected = "use-after-free of mm0")]
fn no_grab_is_rejected() {
    loom_check(
        harness::LOOM_BOUND_2_CPUS,
        NoGrab::default,
        harness::down_while_lazy(),
    );
}

/// The panic is the oracle's, from a CPU thread, with the CPU that freed
/// the mm and the one still using it.
#[test]
fn no_grab_message_names_the_cpus() {
    let err = std::panic::catch_unwind(|| {
        loom_check(
            harness::LOOM_BOUND_2_CPUS,
            NoGrab::default,
            harness::down_while_lazy(),
        )
    })
    .expect_err("a scheme without lazy references must be rejected");
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    assert!(
        msg.contains("use-after-free of mm0") && msg.contains("still has it loaded"),
        "unexpected failure: {msg:?}"
    );
    // The report around the oracle's line: scheme, scenario, hook, the mm's
    // recent events, and the command that reruns it (loom is deterministic:
    // the rerun below fails on the same execution with the same line).
    eprintln!("---- the report a user sees ----\n{msg}\n----");
    for part in [
        "scheme:   external/no-grab",
        "scenario: down_while_lazy",
        "hook:     on cpu",
        "mm0's last",
        "mmput (mm_users",
        "frees it",
        "replay:   RUSTFLAGS=\"--cfg loom\" LOOM_LOG=trace cargo test --release -- ",
    ] {
        assert!(msg.contains(part), "no {part:?} in {msg}");
    }
    let again = std::panic::catch_unwind(|| {
        loom_check(
            harness::LOOM_BOUND_2_CPUS,
            NoGrab::default,
            harness::down_while_lazy(),
        )
    })
    .expect_err("the rerun fails too");
    let again = again.downcast_ref::<String>().cloned().unwrap_or_default();
    assert_eq!(again.lines().next(), msg.lines().next(), "same failure");
}

#[test]
#[should_panic(expected = "leak: mm0 was never freed")]
fn no_drop_is_rejected() {
    loom_check(
        harness::LOOM_BOUND_2_CPUS,
        NoDrop::default,
        harness::round_trip_vs_exit(),
    );
}
