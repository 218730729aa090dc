//! The idle wait (`Op::IdleUntilExited`) under shuttle at 8 CPUs: 4
//! processes, each with a thread on every CPU; every CPU exits its thread
//! and idles lazily on the dead mm until the last one exited, so each
//! final drop meets 7 lazy CPUs.

use crate::common::*;
use lazymm::check::model::{Machine, MmId, Op, Scenario};
use lazymm::check::sync::thread::Arc;
use lazymm::lazy::rcu_mm::{Bug, RcuMm};
use lazymm::lazy::LazyMm;

fn scenario() -> Scenario {
    let script: Vec<Op> = (0..4)
        .flat_map(|i| {
            let mm = MmId::new(i);
            [Op::User(mm), Op::Exit, Op::IdleUntilExited(mm)]
        })
        .collect();
    Scenario::new(4, vec![script; 8]).named("exit_meets_idle_lazy_8")
}

fn body<S: LazyMm + Send + Sync + 'static>(make: fn() -> S) -> impl Fn() + Send + Sync + 'static {
    move || Machine::run(&Arc::new(Machine::new(make(), scenario())))
}

#[test]
fn idle_lazy_8_cpus_pass() {
    run_schedulers(
        "idle/shootdown",
        body(lazymm::lazy::shootdown::Shootdown::new),
    );
    run_schedulers(
        "idle/hazard_nofence",
        body(lazymm::lazy::hazard::HazardLazyNoFence::<8>::new),
    );
    run_schedulers("idle/rcu_mm", body(RcuMm::<8>::new));
}

#[test]
#[should_panic(expected = "use-after-free of mm")]
fn bug_rcu_mm_idle_is_quiescent() {
    run_bug(body(|| RcuMm::<8>::with_bug(Bug::IdleIsQuiescent)));
}
