//! Schemes written outside the crate, checked by the public harness
//! (`lazymm::check::model::harness`) exactly as a user's own test would: a correct
//! one passes, two deliberately wrong ones are rejected with the oracle's
//! messages.

use lazymm::check::model::harness::{self, loom_check, loom_check_standard};
use lazymm::lazy::LazyMm;

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
        // Where the free ran, and in which hooks.
        "frees it in __mmput() > __mmdrop()",
        "replay:   RUSTFLAGS=\"--cfg loom\" cargo test --release --test loom -- external::",
        "--exact --nocapture",
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

/// One wrong scheme on the standard scenarios at their standard bounds, in
/// order, until two reject it: those two, with the first line of each
/// failure. (The full 9 × 6 matrix is in VERIFICATION.md; running every
/// passing scenario to the end takes ~50 s more.)
struct Matrix(Vec<(&'static str, Vec<(&'static str, String)>)>);

impl schemes::Visit for Matrix {
    fn visit<S: LazyMm + Default + Send + Sync + 'static>(&mut self) {
        let mut caught = Vec::new();
        for (name, scenario) in harness::standard_scenarios() {
            if caught.len() == 2 {
                break;
            }
            let bound = harness::standard_bound(&scenario);
            let r = std::panic::catch_unwind(|| loom_check(bound, S::default, scenario));
            match r {
                Ok(report) => eprintln!("loom {}/{name}: passes ({report})", S::NAME),
                Err(e) => {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    let first = msg.lines().next().unwrap_or_default().to_string();
                    eprintln!("loom {}/{name}: REJECTED: {first}", S::NAME);
                    caught.push((name, first));
                }
            }
        }
        self.0.push((S::NAME, caught));
    }
}

/// The catalogue of wrong external schemes (`tests/external_schemes/`):
/// each is rejected by at least two of the six standard scenarios, with an
/// oracle line (use-after-free, leak, negative count, double free).
#[test]
fn wrong_schemes_are_each_rejected_by_two_standard_scenarios() {
    let mut m = Matrix(Vec::new());
    schemes::for_each_wrong(&mut m);
    assert_eq!(m.0.len(), schemes::WRONG);
    for (scheme, caught) in &m.0 {
        eprintln!(
            "loom {scheme}: rejected by {} (stopping at two): {:?}",
            caught.len(),
            caught.iter().map(|c| c.0).collect::<Vec<_>>()
        );
    }
    for (scheme, caught) in &m.0 {
        assert!(caught.len() >= 2, "{scheme}: rejected only by {caught:?}");
        for (scenario, line) in caught {
            assert!(
                ["use-after-free of", "leak:", "went negative", "double free"]
                    .iter()
                    .any(|p| line.contains(p)),
                "{scheme}/{scenario}: not an oracle failure: {line}"
            );
        }
    }
}

/// The control for `external/lost-update-count`: the same scheme with an
/// RMW passes the scenarios that reject the lost update (two shown here;
/// all six pass, ~50 s, in `ci/deep.sh`'s full loom run).
#[test]
fn rmw_count_passes() {
    for scenario in [harness::down_while_lazy(), harness::kthread_transfer()] {
        let report = loom_check(
            harness::LOOM_BOUND_2_CPUS,
            schemes::RmwCount::default,
            scenario,
        );
        eprintln!("loom external/rmw-count: {report}");
        assert!(report.executions > 1, "{report}");
    }
}
