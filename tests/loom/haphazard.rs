//! The hazard-pointer lazy mm on haphazard (feature `haphazard`) under
//! loom, the library's internals included (haphazard switches its atomics
//! to loom's under `--cfg loom`): the shared scenarios pass; a final drop
//! that does not wait, and one that trusts the reclaim count, are rejected.

use crate::common::*;
use lazymm::lazy::haphazard::{Bug, HaphazardLazy};

/// The library's reclaim adds dozens of loom operations to each final drop
/// (record lists, eight retired-list shards): bound 2 on two CPUs and 1 on
/// three keep the set near a quarter of a minute (three CPUs at bound 2:
/// 312,516 executions, 55 s; the 2-CPU scenarios at 3, up to 729,008
/// executions, 101 s: `ci/deep.sh` runs both through `LAZYMM_LOOM_EXTRA`).
const BOUND: usize = 2;

shared_scenarios!(
    passes,
    "haphazard",
    super::BOUND,
    lazymm::lazy::haphazard::HaphazardLazy::<2>::new,
    1,
    lazymm::lazy::haphazard::HaphazardLazy::<3>::new
);

#[test]
#[should_panic(expected = "use-after-free of mm")]
fn bug_no_wait() {
    check(
        "haphazard/bug_no_wait",
        BOUND,
        || HaphazardLazy::<2>::with_bug(Bug::NoWait),
        exit_lazy_vs_final_drop,
    );
}

#[test]
#[should_panic(expected = "use-after-free of mm")]
fn bug_trust_reclaim_count() {
    check(
        "haphazard/bug_trust_reclaim_count",
        BOUND,
        || HaphazardLazy::<2>::with_bug(Bug::TrustReclaimCount),
        crossing_drops,
    );
}

/// A third CPU reclaims: cpu0 and cpu1 run mm0's two tasks; cpu1 exits and
/// then runs kernel threads lazily on mm0 (uses of mm0 that its `mmput`
/// does not order before the final drop: only its hazard pointer's reset
/// does); cpu2 only runs mm1, whose final drop retires mm1 and reclaims —
/// and may run mm0's deleter for the CPU whose final drop of mm0 waits,
/// handing it over through the scheme's collector. Beyond the standard
/// three-CPU scenario's reach.
fn third_cpu_reclaims() -> lazymm::check::model::Scenario {
    use lazymm::check::model::{MmId, Op::*, Scenario};
    let (a, b) = (MmId::new(0), MmId::new(1));
    Scenario::new(
        2,
        vec![
            vec![User(a), Exit],
            vec![User(a), Exit, Kthread, Kthread],
            vec![User(b), Exit],
        ],
    )
    .named("third_cpu_reclaims")
}

/// Bound 1, as for the standard three-CPU scenario.
const BOUND_3: usize = 1;

#[test]
fn third_cpu_reclaims_passes() {
    check(
        "haphazard/third_cpu_reclaims",
        BOUND_3,
        HaphazardLazy::<3>::new,
        third_cpu_reclaims,
    );
}

/// The pin: the hand-off without release passes the third CPU's model too
/// (see `Bug::RelaxedHandOff` for why).
#[test]
fn bug_relaxed_hand_off_passes_third_cpu() {
    check(
        "haphazard/bug_relaxed_hand_off/third_cpu_reclaims",
        BOUND_3,
        || HaphazardLazy::<3>::with_bug(Bug::RelaxedHandOff),
        third_cpu_reclaims,
    );
}

// ... and the standard scenarios.
shared_scenarios!(
    bug_relaxed_hand_off_passes_standard,
    "haphazard/bug_relaxed_hand_off",
    super::BOUND,
    || lazymm::lazy::haphazard::HaphazardLazy::<2>::with_bug(
        lazymm::lazy::haphazard::Bug::RelaxedHandOff
    ),
    1,
    || lazymm::lazy::haphazard::HaphazardLazy::<3>::with_bug(
        lazymm::lazy::haphazard::Bug::RelaxedHandOff
    )
);
