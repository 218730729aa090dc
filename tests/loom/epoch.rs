//! `epoch_mm` (RCU-deferred free on crossbeam-epoch) under loom, through
//! crossbeam-epoch's own loom support — its pinning, bags, global queue and
//! epoch advance run on loom's atomics:
//!
//! ```text
//! RUSTFLAGS="--cfg loom --cfg crossbeam_loom" cargo test --features epoch-loom --test loom epoch
//! ```
//!
//! The shared scenarios pass with one pin-and-flush round before the IPI
//! (each round is dozens of loom operations inside crossbeam); a lazy CPU
//! that holds no pin (idle counted as quiescent) is rejected.

use crate::common::*;
use lazymm::lazy::epoch_mm::{Bug, EpochMm};

/// Bound for the two-CPU scenarios (crossbeam's internals multiply the
/// interleavings; `ci/deep.sh` adds one through `LAZYMM_LOOM_EXTRA`).
const BOUND: usize = 2;

shared_scenarios!(
    passes,
    "epoch_mm",
    super::BOUND,
    || lazymm::lazy::epoch_mm::EpochMm::<2>::with_flushes(1),
    1,
    || lazymm::lazy::epoch_mm::EpochMm::<3>::with_flushes(1)
);

#[test]
#[should_panic(expected = "use-after-free of mm")]
fn bug_idle_is_quiescent() {
    check(
        "epoch_mm/bug_idle_is_quiescent",
        BOUND,
        || EpochMm::<2>::with_bug(1, Bug::IdleIsQuiescent),
        exit_lazy_vs_final_drop,
    );
}
