//! The kernel's world beyond the standard six (`harness::world_scenarios`):
//! a live user task preempted by a task of another mm (user → user) that
//! then migrates and dies on another CPU while its old CPU stays in user
//! mode, and a task that migrates while its CPU stays lazy on its mm.
//! Every scheme passes both; `HazardLazyNoFence` without its kept-slot
//! clear on the switch away (`Bug::NoClearOnSwitchAway`) is rejected as a
//! livelock by the first, and passes the standard six (the pin).

use crate::common::*;
use lazymm::check::model::harness::{migrate_while_lazy, preempt_migrate_stay_user};
use lazymm::lazy::hazard::{Bug, HazardLazyNoFence};

/// Both world scenarios as tests of one scheme, named "world/`$label`/<scenario>".
macro_rules! world_scenarios {
    ($module:ident, $label:expr, $bound:expr, $make:expr) => {
        mod $module {
            use super::*;
            #[test]
            fn preempt_migrate_stay_user() {
                check(
                    concat!("world/", $label, "/preempt_migrate_stay_user"),
                    $bound,
                    $make,
                    super::preempt_migrate_stay_user,
                );
            }
            #[test]
            fn migrate_while_lazy() {
                check(
                    concat!("world/", $label, "/migrate_while_lazy"),
                    $bound,
                    $make,
                    super::migrate_while_lazy,
                );
            }
        }
    };
}

world_scenarios!(
    refcount,
    "refcount",
    DEFAULT_BOUND,
    lazymm::lazy::refcount::Refcount::new
);
world_scenarios!(
    shootdown,
    "shootdown",
    DEFAULT_BOUND,
    lazymm::lazy::shootdown::Shootdown::new
);
world_scenarios!(
    tagged,
    "tagged",
    DEFAULT_BOUND,
    lazymm::lazy::tagged::Tagged::<2>::new
);
world_scenarios!(
    cached,
    "cached",
    DEFAULT_BOUND,
    lazymm::lazy::cached::Cached::<2>::new
);
world_scenarios!(
    hazard,
    "hazard",
    HEAVY_BOUND,
    lazymm::lazy::hazard::HazardLazy::<2>::new
);
world_scenarios!(
    hazard_nofence,
    "hazard_nofence",
    HEAVY_BOUND,
    HazardLazyNoFence::<2>::new
);
world_scenarios!(
    loaded_mm,
    "loaded_mm",
    HEAVY_BOUND,
    lazymm::lazy::loaded::LoadedMm::<2>::new
);
world_scenarios!(
    rcu_mm,
    "rcu_mm",
    HEAVY_BOUND,
    lazymm::lazy::rcu_mm::RcuMm::<2>::new
);
#[cfg(feature = "haphazard")]
world_scenarios!(
    haphazard,
    "haphazard",
    2,
    lazymm::lazy::haphazard::HaphazardLazy::<2>::new
);

fn no_clear_on_switch_away() -> HazardLazyNoFence<3> {
    HazardLazyNoFence::with_bug(Bug::NoClearOnSwitchAway)
}

/// The kept slot left behind by the preemption makes the migrated task's
/// final drop wait for a CPU that stays in user mode.
#[test]
#[should_panic(expected = "livelock: cpu1 waits in")]
fn bug_hazard_nofence_no_clear_on_switch_away() {
    check(
        "world/hazard_nofence/bug_no_clear_on_switch_away",
        HEAVY_BOUND,
        no_clear_on_switch_away,
        preempt_migrate_stay_user,
    );
}

// The pin: the standard six pass with the bug (every CPU there later goes
// lazy or down, which clears the slot).
shared_scenarios!(
    bug_no_clear_on_switch_away_passes_standard,
    "world/hazard_nofence/bug_no_clear_on_switch_away",
    HEAVY_BOUND,
    super::no_clear_on_switch_away,
    HEAVY_THREE_CPU_BOUND,
    super::no_clear_on_switch_away
);
