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
