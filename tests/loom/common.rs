//! The shared loom scenarios and the runner.

pub use lazymm::check::model::harness::LoomCheck;
use lazymm::check::model::harness::{LOOM_BOUND_2_CPUS, LOOM_BOUND_3_CPUS};
use lazymm::check::model::Scenario;
use lazymm::lazy::LazyMm;

/// The standard scenarios (`lazymm::check::model::harness`), as the tests name them.
pub use lazymm::check::model::harness::{
    crossing_drops, down_while_lazy, exit_lazy_vs_final_drop, kthread_transfer, round_trip_vs_exit,
    three_cpus,
};

/// Preemption bound used when `LOOM_MAX_PREEMPTIONS` is not set.
pub const DEFAULT_BOUND: usize = LOOM_BOUND_2_CPUS;

/// Preemption bound for the three-CPU models.
pub const THREE_CPU_BOUND: usize = LOOM_BOUND_3_CPUS;

/// Bounds for the schemes with more atomics per switch (hazard, loaded_mm),
/// whose models at the default bounds take minutes.
pub const HEAVY_BOUND: usize = 3;
/// Three-CPU bound for those schemes.
pub const HEAVY_THREE_CPU_BOUND: usize = 2;

/// `LAZYMM_LOOM_EXTRA`: preemptions added to every model's recorded bound
/// (`ci/deep.sh` sets it).
pub fn extra_bound() -> usize {
    std::env::var("LAZYMM_LOOM_EXTRA")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The harness's loom check at `bound` (plus `LAZYMM_LOOM_EXTRA`), printing
/// progress every 5,000 executions when `LAZYMM_LOOM_PROGRESS` is set.
pub fn loom_check(name: &str, bound: usize) -> LoomCheck {
    let c = LoomCheck::new(bound + extra_bound());
    if std::env::var_os("LAZYMM_LOOM_PROGRESS").is_some() {
        c.progress(name)
    } else {
        c
    }
}

/// Explores `scenario` under the scheme `make()` builds, at `bound`
/// preemptions (or `LOOM_MAX_PREEMPTIONS`), and prints what it explored.
pub fn check<S>(name: &'static str, bound: usize, make: fn() -> S, scenario: fn() -> Scenario)
where
    S: LazyMm + Send + Sync + 'static,
{
    let report = loom_check(name, bound).run(make, scenario());
    eprintln!("loom {name}: {report}");
}

/// Like [`check`] for a machine with a bug of its own switched on.
pub fn check_machine_bug<S>(
    name: &str,
    bound: usize,
    make: fn() -> S,
    scenario: fn() -> Scenario,
    bug: lazymm::check::model::MachineBug,
) where
    S: LazyMm + Send + Sync + 'static,
{
    let report = loom_check(name, bound)
        .machine_bug(bug)
        .run(make, scenario());
    eprintln!("loom {name}: {report}");
}

/// The six shared scenarios as tests of one scheme: a module `$module`
/// whose tests run `$make2` on the 2-CPU scenarios at `$bound2` and `$make3`
/// on the 3-CPU one at `$bound3`, named "`$label`/<scenario>" in the output.
macro_rules! shared_scenarios {
    ($module:ident, $label:expr, $bound2:expr, $make2:expr, $bound3:expr, $make3:expr) => {
        mod $module {
            use crate::common::*;
            #[test]
            fn round_trip_vs_exit() {
                check(
                    concat!($label, "/round_trip_vs_exit"),
                    $bound2,
                    $make2,
                    crate::common::round_trip_vs_exit,
                );
            }
            #[test]
            fn exit_lazy_vs_final_drop() {
                check(
                    concat!($label, "/exit_lazy_vs_final_drop"),
                    $bound2,
                    $make2,
                    crate::common::exit_lazy_vs_final_drop,
                );
            }
            #[test]
            fn kthread_transfer() {
                check(
                    concat!($label, "/kthread_transfer"),
                    $bound2,
                    $make2,
                    crate::common::kthread_transfer,
                );
            }
            #[test]
            fn down_while_lazy() {
                check(
                    concat!($label, "/down_while_lazy"),
                    $bound2,
                    $make2,
                    crate::common::down_while_lazy,
                );
            }
            #[test]
            fn crossing_drops() {
                check(
                    concat!($label, "/crossing_drops"),
                    $bound2,
                    $make2,
                    crate::common::crossing_drops,
                );
            }
            #[test]
            fn three_cpus() {
                check(
                    concat!($label, "/three_cpus"),
                    $bound3,
                    $make3,
                    crate::common::three_cpus,
                );
            }
        }
    };
}

/// Explores a focused machine (TLB, walkers) under loom at `bound`
/// preemptions (plus `LAZYMM_LOOM_EXTRA`, or `LOOM_MAX_PREEMPTIONS`): each
/// execution builds one with `make` and runs it with `run`. Prints "loom
/// `label`: bound, executions, time".
pub fn check_model<M: Send + Sync + 'static>(
    label: &str,
    bound: usize,
    make: impl Fn() -> M + Send + Sync + 'static,
    run: fn(&lazymm::check::sync::thread::Arc<M>),
) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(bound + extra_bound());
    }
    b.max_branches = 100_000;
    let bound = b.preemption_bound;
    let execs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let e = execs.clone();
    let start = std::time::Instant::now();
    b.check(move || {
        e.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        run(&lazymm::check::sync::thread::Arc::new(make()));
    });
    eprintln!(
        "loom {label}: bound {:?}, {} executions, {:.2?}",
        bound,
        execs.load(std::sync::atomic::Ordering::Relaxed),
        start.elapsed()
    );
}
