//! The kernel's world beyond the standard six under shuttle: the world
//! scenarios (`harness::world_scenarios`: a preempted task that migrates
//! while its old CPU stays in user mode, a task that migrates while its
//! CPU stays lazy) for every scheme, and the fence-free hazard scheme
//! without its kept-slot clear rejected as a livelock. (The random 8-CPU
//! workloads of every scheme's own file migrate tasks too:
//! `Scenario::random_with_migration`.)

use crate::common::*;
use lazymm::check::model::harness::{preempt_migrate_stay_user, world_scenarios};
use lazymm::check::model::Machine;
use lazymm::check::sync::thread::Arc;
use lazymm::lazy::hazard::{Bug, HazardLazyNoFence};
use lazymm::lazy::LazyMm;

fn world<S: LazyMm + Send + Sync + 'static>(name: &str, make: fn() -> S) {
    for (label, scenario) in world_scenarios() {
        for report in checker(None).scenario(scenario).run(make) {
            eprintln!("shuttle world/{name}/{label}: {report}");
        }
    }
}

#[test]
fn every_scheme_passes() {
    world("refcount", lazymm::lazy::refcount::Refcount::new);
    world("shootdown", lazymm::lazy::shootdown::Shootdown::new);
    world("tagged", lazymm::lazy::tagged::Tagged::<2>::new);
    world("cached", lazymm::lazy::cached::Cached::<2>::new);
    world("hazard", lazymm::lazy::hazard::HazardLazy::<2>::new);
    world("hazard_nofence", HazardLazyNoFence::<2>::new);
    world("loaded_mm", lazymm::lazy::loaded::LoadedMm::<2>::new);
    world("rcu_mm", lazymm::lazy::rcu_mm::RcuMm::<2>::new);
}

#[test]
#[should_panic(expected = "livelock: cpu1 waits in")]
fn bug_hazard_nofence_no_clear_on_switch_away() {
    run_bug(|| {
        let scheme = HazardLazyNoFence::<2>::with_bug(Bug::NoClearOnSwitchAway);
        Machine::run(&Arc::new(Machine::new(scheme, preempt_migrate_stay_user())));
    });
}
