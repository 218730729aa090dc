//! `loaded_mm` (Torvalds' no-refcount scheme) under shuttle at 8 CPUs.

use crate::common::*;
use lazymm::lazy::loaded::{Bug, LoadedMm};

#[test]
fn loaded_mm_8_cpus() {
    check_all("loaded_mm", LoadedMm::<8>::new);
}

/// The SWITCHING window is an interleaving bug too: shuttle finds it.
#[test]
#[should_panic(expected = "use-after-free of mm")]
fn bug_switching_window() {
    check_bug(|| LoadedMm::<8>::with_bug(Bug::SwitchingWindow), None);
}
