//! Random workloads and the three schedulers every scheme runs under.

use lazymm::model::{Machine, MachineBug, Scenario};
use lazymm::scheme::LazyMm;
use lazymm::sync::thread::Arc;
use rand_core::RngCore;
use shuttle::scheduler::{PctScheduler, RandomScheduler};
use shuttle::{Config, FailurePersistence, Runner};
use std::time::Instant;

pub const CPUS: usize = 8;
pub const MMS: usize = 4;
/// Operations per CPU before the final exits (8 x 30 = 240 at least).
pub const OPS_PER_CPU: usize = 30;

/// Iterations per scheduler: `LAZYMM_SHUTTLE_ITERS`, default 1000.
pub fn iterations() -> usize {
    std::env::var("LAZYMM_SHUTTLE_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

/// One execution: a fresh random workload (drawn from shuttle's own,
/// replayable randomness) run on a fresh machine.
pub fn execution<S>(make: fn() -> S, bug: Option<MachineBug>) -> impl Fn() + Send + Sync + 'static
where
    S: LazyMm<Machine<S>> + Send + Sync + 'static,
{
    move || {
        EXECUTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let seed = shuttle::rand::thread_rng().next_u64();
        let scenario = Scenario::random(seed, CPUS, MMS, OPS_PER_CPU);
        assert!(
            scenario.len() >= 200,
            "workload too short: {}",
            scenario.len()
        );
        let mut m = Machine::new(make(), scenario);
        if let Some(b) = bug {
            m = m.with_bug(b);
        }
        let m = Arc::new(m);
        Machine::run(&m);
        let st = m.stats();
        SWITCHES.fetch_add(st.switches as usize, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Executions run so far (all tests of this binary).
pub static EXECUTIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Context switches run so far.
pub static SWITCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn report(name: &str, what: &str, iters: usize, start: Instant) {
    use std::sync::atomic::Ordering::Relaxed;
    eprintln!(
        "shuttle {name}: {what}, {iters} iterations ({} executions, {} context switches so far), {:.2?}",
        EXECUTIONS.load(Relaxed),
        SWITCHES.load(Relaxed),
        start.elapsed()
    );
}

/// PCT at depths 2 and 3 and the random scheduler, each with a fixed seed.
pub fn check_all<S>(name: &str, make: fn() -> S)
where
    S: LazyMm<Machine<S>> + Send + Sync + 'static,
{
    let iters = iterations();
    for depth in [2, 3] {
        let start = Instant::now();
        let sched = PctScheduler::new_from_seed(pct_seed(depth), depth, iters);
        Runner::new(sched, config()).run(execution(make, None));
        report(name, &format!("pct depth {depth}"), iters, start);
    }
    let start = Instant::now();
    let sched = RandomScheduler::new_from_seed(0x5eed, iters);
    Runner::new(sched, config()).run(execution(make, None));
    report(name, "random", iters, start);
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

/// Fixed PCT seeds, one per depth.
fn pct_seed(depth: usize) -> u64 {
    0x1a2b_0000 + depth as u64
}

/// Runs a known-bad variant under PCT (depth 3) until it fails.
pub fn check_bug<S>(make: fn() -> S, bug: Option<MachineBug>)
where
    S: LazyMm<Machine<S>> + Send + Sync + 'static,
{
    let sched = PctScheduler::new_from_seed(0xbad, 3, iterations());
    Runner::new(sched, config()).run(execution(make, bug));
}
