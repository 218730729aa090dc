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

fn panic_message(r: std::thread::Result<impl Sized>) -> String {
    let payload = r.err().expect("the check must fail");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .expect("a string panic")
}

/// A failure names the scheme, the scenario, the hook and the mm's recent
/// events, and gives a replay line; replaying that schedule (as the line
/// says, through the harness: no shuttle dependency) fails the same way.
#[test]
fn failure_report_names_everything_and_its_replay_reproduces_it() {
    let check = ShuttleCheck::new()
        .schedulers(&[ShuttleScheduler::Random { seed: 7 }])
        .iterations(200);
    let msg = panic_message(std::panic::catch_unwind(|| check.run(NoGrab::default)));
    eprintln!("---- the report a user sees ----\n{msg}\n----");
    assert!(msg.starts_with("use-after-free of mm"), "{msg}");
    assert!(msg.contains("scheme:   external/no-grab"), "{msg}");
    assert!(msg.contains("scenario: random"), "{msg}");
    assert!(msg.contains("hook:     on cpu"), "{msg}");
    assert!(msg.contains("events, oldest first:"), "{msg}");
    assert!(msg.contains("frees it") || msg.contains("mmput"), "{msg}");
    let replay = msg
        .lines()
        .find_map(|l| l.trim().strip_prefix("replay:   LAZYMM_SHUTTLE_REPLAY="))
        .expect("a replay line with the execution's token");
    let token = replay
        .split_whitespace()
        .next()
        .expect("the token")
        .to_string();
    assert!(token.starts_with("random:0x7:"), "{token}");
    assert!(replay.contains("cargo test --release"), "{replay}");
    let again = panic_message(std::panic::catch_unwind(|| {
        check.replay(NoGrab::default, &token)
    }));
    let first = |m: &str| m.lines().next().unwrap_or("").to_string();
    assert_eq!(first(&again), first(&msg), "the replay fails the same way");
    assert!(again.contains("scheme:   external/no-grab"), "{again}");
}

/// The same for a bug that takes a search to find (the SWITCHING window of
/// `loaded_mm`, CVE-2025-37964's shape): the token names a later iteration,
/// and replaying it reruns the scheduler up to that one and fails the same.
#[test]
fn replay_of_a_later_iteration_reproduces_it() {
    use lazymm::lazy::loaded::{Bug, LoadedMm};
    let check = ShuttleCheck::new()
        .schedulers(&[ShuttleScheduler::Pct {
            depth: 3,
            seed: 0xbad,
        }])
        .iterations(1000);
    let make = || LoadedMm::<8>::with_bug(Bug::SwitchingWindow);
    let msg = panic_message(std::panic::catch_unwind(|| check.run(make)));
    let token = msg
        .lines()
        .find_map(|l| l.trim().strip_prefix("replay:   LAZYMM_SHUTTLE_REPLAY="))
        .and_then(|r| r.split_whitespace().next())
        .expect("a replay token")
        .to_string();
    let iteration: usize = token.rsplit(':').next().unwrap().parse().unwrap();
    eprintln!("shuttle external/replay: {token} (iteration {iteration})");
    let again = panic_message(std::panic::catch_unwind(|| check.replay(make, &token)));
    let first = |m: &str| m.lines().next().unwrap_or("").to_string();
    assert_eq!(first(&again), first(&msg), "the replay fails the same way");
}

/// Every wrong scheme of the catalogue (`tests/external_schemes/`) fails
/// shuttle's default run (8 CPUs, 4 mms, the default schedulers) with an
/// oracle line.
#[test]
fn wrong_schemes_are_each_rejected() {
    struct Rejects(Vec<(&'static str, String)>);
    impl schemes::Visit for Rejects {
        fn visit<S: lazymm::lazy::LazyMm + Default + Send + Sync + 'static>(&mut self) {
            let line = panic_message(std::panic::catch_unwind(|| shuttle_check(S::default)));
            let first = line.lines().next().unwrap_or_default().to_string();
            eprintln!("shuttle {}: REJECTED: {first}", S::NAME);
            self.0.push((S::NAME, first));
        }
    }
    let mut r = Rejects(Vec::new());
    schemes::for_each_wrong(&mut r);
    assert_eq!(r.0.len(), schemes::WRONG);
    for (scheme, line) in &r.0 {
        assert!(
            ["use-after-free of", "leak:", "went negative", "double free"]
                .iter()
                .any(|p| line.contains(p)),
            "{scheme}: not an oracle failure: {line}"
        );
    }
}

/// The control: the lost-update scheme with an RMW passes.
#[test]
fn rmw_count_passes() {
    for r in shuttle_check(schemes::RmwCount::default) {
        eprintln!("shuttle external/rmw-count: {r}");
        assert_eq!(r.executions, ShuttleCheck::ITERATIONS, "{r}");
    }
}
