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

/// The two orderings of the scheme weakened: a CPU that switched away is
/// skipped by the final drop, with its last use not ordered before the
/// free.
#[test]
#[should_panic(expected = "use-after-free of mm0")]
fn bug_relaxed_switched_store() {
    check(
        "loaded_mm/bug_relaxed_switched_store",
        HEAVY_BOUND,
        || LoadedMm::<2>::with_bug(Bug::RelaxedSwitchedStore),
        exit_lazy_vs_final_drop,
    );
}

#[test]
#[should_panic(expected = "use-after-free of mm0")]
fn bug_relaxed_scan_load() {
    check(
        "loaded_mm/bug_relaxed_scan_load",
        HEAVY_BOUND,
        || LoadedMm::<2>::with_bug(Bug::RelaxedScanLoad),
        exit_lazy_vs_final_drop,
    );
}
