//! The harness's shuttle checks (`lazymm::check::model::harness`) with the suite's
//! environment: iterations and failing-schedule persistence.

use lazymm::check::model::harness::{ShuttleCheck, ShuttleScheduler};
use lazymm::check::model::MachineBug;
use lazymm::lazy::LazyMm;
use shuttle::{Config, FailurePersistence};

/// Iterations per scheduler: `LAZYMM_SHUTTLE_ITERS`, default 1000.
pub fn iterations() -> usize {
    std::env::var("LAZYMM_SHUTTLE_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ShuttleCheck::ITERATIONS)
}

/// The harness's default check (8 CPUs, 4 mms, random workloads of 240+
/// operations) with the suite's iterations and config, and `bug` switched on
/// in the machine.
pub fn checker(bug: Option<MachineBug>) -> ShuttleCheck {
    let c = ShuttleCheck::new()
        .iterations(iterations())
        .config(config());
    match bug {
        Some(b) => c.machine_bug(b),
        None => c,
    }
}

/// PCT at depths 2 and 3 and the random scheduler, each with a fixed seed.
pub fn check_all<S>(name: &str, make: fn() -> S)
where
    S: LazyMm + Send + Sync + 'static,
{
    for report in checker(None).run(make) {
        eprintln!("shuttle {name}: {report}");
    }
}

/// Shuttle's config: failing schedules are printed, or written to files in
/// `LAZYMM_SHUTTLE_SCHEDULE_DIR` when it is set (for `replay.rs`).
pub fn config() -> Config {
    let mut c = Config::default();
    if let Some(dir) = std::env::var_os("LAZYMM_SHUTTLE_SCHEDULE_DIR") {
        c.failure_persistence = FailurePersistence::File(Some(dir.into()));
    }
    c
}

/// Runs a known-bad variant under PCT (depth 3) until it fails.
pub fn check_bug<S>(make: fn() -> S, bug: Option<MachineBug>)
where
    S: LazyMm + Send + Sync + 'static,
{
    checker(bug)
        .schedulers(&[ShuttleScheduler::Pct {
            depth: 3,
            seed: 0xbad,
        }])
        .run(make);
}

/// A focused machine (TLB, walkers) under PCT depth 2, PCT depth 3 and the
/// random scheduler, fixed seeds, [`iterations`] each: `body` is one
/// execution. Prints "shuttle `label`: scheduler, iterations, time".
pub fn run_schedulers(label: &str, body: impl Fn() + Send + Sync + 'static) {
    use shuttle::scheduler::{PctScheduler, RandomScheduler};
    use shuttle::Runner;
    let body = std::sync::Arc::new(body);
    let n = iterations();
    for (sched, seed) in [("pct2", 2u64), ("pct3", 3), ("random", 0x5eed)] {
        let b = body.clone();
        let one = move || b();
        let start = std::time::Instant::now();
        match sched {
            "random" => Runner::new(RandomScheduler::new_from_seed(seed, n), config()).run(one),
            _ => Runner::new(
                PctScheduler::new_from_seed(seed, seed as usize, n),
                config(),
            )
            .run(one),
        };
        eprintln!(
            "shuttle {label}: {sched}, {n} iterations, {:.2?}",
            start.elapsed()
        );
    }
}

/// A known-bad variant of a focused machine under PCT (depth 3) until it
/// fails (the same scheduler as [`check_bug`]).
pub fn run_bug(body: impl Fn() + Send + Sync + 'static) {
    use shuttle::scheduler::PctScheduler;
    shuttle::Runner::new(
        PctScheduler::new_from_seed(0xbad, 3, iterations()),
        config(),
    )
    .run(body);
}
