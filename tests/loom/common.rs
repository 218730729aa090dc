//! The shared loom scenarios and the runner.

use lazymm::model::{Machine, MmId, Op, Scenario};
use lazymm::scheme::LazyMm;
use lazymm::sync::thread::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

pub const A: MmId = MmId::new(0);
pub const B: MmId = MmId::new(1);
use Op::{Exit, Kthread, User};

/// Preemption bound used when `LOOM_MAX_PREEMPTIONS` is not set.
pub const DEFAULT_BOUND: usize = 4;

/// Preemption bound for the three-CPU models.
pub const THREE_CPU_BOUND: usize = 3;

/// Bounds for the schemes with more atomics per switch (hazard, loaded_mm),
/// whose models at the default bounds take minutes.
pub const HEAVY_BOUND: usize = 3;
/// Three-CPU bound for those schemes.
pub const HEAVY_THREE_CPU_BOUND: usize = 2;

/// user → kernel → user (same mm) on cpu0 while cpu1 runs an exit that may
/// be the last `mmput`.
pub fn round_trip_vs_exit() -> Scenario {
    Scenario::new(
        1,
        vec![vec![User(A), Kthread, User(A), Exit], vec![User(A), Exit]],
    )
}

/// cpu0's task exits and stays lazy on its own mm, then unlazies into
/// another mm, while cpu1 runs the exit that may make the final drop.
pub fn exit_lazy_vs_final_drop() -> Scenario {
    Scenario::new(
        2,
        vec![vec![User(A), Exit, User(B), Exit], vec![User(A), Exit]],
    )
}

/// cpu0's dead task hands its lazy mm to a kernel thread (kernel → kernel)
/// while cpu1 runs the exit that may make the final drop.
pub fn kthread_transfer() -> Scenario {
    Scenario::new(1, vec![vec![User(A), Exit, Kthread], vec![User(A), Exit]])
}

/// cpu0 is lazy on its mm at the end of its script (it goes down lazy)
/// while cpu1 runs the exit that may make the final drop.
pub fn down_while_lazy() -> Scenario {
    Scenario::new(1, vec![vec![User(A), Exit], vec![User(A), Exit]])
}

/// Two CPUs that may each make a final drop needing the other: IPIs cross.
pub fn crossing_drops() -> Scenario {
    Scenario::new(
        2,
        vec![
            vec![User(A), Exit, User(B), Exit],
            vec![User(B), Exit, User(A), Exit],
        ],
    )
}

/// Three CPUs: cpu0 round-trips through a kernel thread, cpu1 and cpu2
/// race to the last `mmput`.
pub fn three_cpus() -> Scenario {
    Scenario::new(
        1,
        vec![
            vec![User(A), Kthread, User(A), Exit],
            vec![User(A), Exit],
            vec![User(A), Exit],
        ],
    )
}

/// `LAZYMM_LOOM_EXTRA`: preemptions added to every model's recorded bound
/// (`ci/deep.sh` sets it).
pub fn extra_bound() -> usize {
    std::env::var("LAZYMM_LOOM_EXTRA")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Explores `scenario` under the scheme `make()` builds, at `bound`
/// preemptions (or `LOOM_MAX_PREEMPTIONS`), and prints what it explored.
pub fn check<S>(name: &'static str, bound: usize, make: fn() -> S, scenario: fn() -> Scenario)
where
    S: LazyMm<Machine<S>> + Send + 'static,
{
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(bound + extra_bound());
    }
    // Idle CPUs spin (yielding) while others work: allow long paths.
    b.max_branches = 100_000;
    let bound = b.preemption_bound;
    let execs = std::sync::Arc::new(AtomicUsize::new(0));
    let e = execs.clone();
    let start = Instant::now();
    b.check(move || {
        let n = e.fetch_add(1, Ordering::Relaxed);
        if n % 5000 == 4999 && std::env::var_os("LAZYMM_LOOM_PROGRESS").is_some() {
            eprintln!("  {name}: {} executions...", n + 1);
        }
        let m = Arc::new(Machine::new(make(), scenario()));
        Machine::run(&m);
    });
    eprintln!(
        "loom {name}: bound {:?}, {} executions, {:.2?}",
        bound,
        execs.load(Ordering::Relaxed),
        start.elapsed()
    );
}

/// Like [`check`] for a machine with a bug of its own switched on.
pub fn check_machine_bug<S>(
    name: &str,
    bound: usize,
    make: fn() -> S,
    scenario: fn() -> Scenario,
    bug: lazymm::model::MachineBug,
) where
    S: LazyMm<Machine<S>> + Send + 'static,
{
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(bound + extra_bound());
    }
    // Idle CPUs spin (yielding) while others work: allow long paths.
    b.max_branches = 100_000;
    let start = Instant::now();
    b.check(move || {
        let m = Arc::new(Machine::new(make(), scenario()).with_bug(bug));
        Machine::run(&m);
    });
    eprintln!("loom {name}: {:.2?}", start.elapsed());
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
