//! `loaded_mm` (Torvalds: no refcount, `loaded_mm` is the truth) under loom.

use crate::common::*;
use lazymm::lazy::loaded::{Bug, LoadedMm};

// Two-CPU models use a two-slot scheme (see tests/loom/hazard.rs).
shared_scenarios!(
    passes,
    "loaded_mm",
    HEAVY_BOUND,
    lazymm::lazy::loaded::LoadedMm::<2>::new,
    HEAVY_THREE_CPU_BOUND,
    lazymm::lazy::loaded::LoadedMm::<3>::new
);

/// CVE-2025-37964's shape: SWITCHING read as "not this mm".
#[test]
#[should_panic(expected = "use-after-free of mm0")]
fn bug_switching_window() {
    check(
        "loaded_mm/bug_switching_window",
        HEAVY_BOUND,
        || LoadedMm::<2>::with_bug(Bug::SwitchingWindow),
        exit_lazy_vs_final_drop,
    );
}
