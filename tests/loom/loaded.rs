//! `loaded_mm` (Torvalds: no refcount, `loaded_mm` is the truth) under loom.

use crate::common::*;
use lazymm::loaded::{Bug, LoadedMm};

type L = LoadedMm<3>;

/// Two-CPU models use a two-slot scheme: every slot the final drop reads is
/// a loom atomic, and an unused third one only multiplies executions.
fn ok() -> LoadedMm<2> {
    LoadedMm::new()
}

fn ok3() -> L {
    L::new()
}

#[test]
fn round_trip_vs_exit_passes() {
    check(
        "loaded_mm/round_trip_vs_exit",
        HEAVY_BOUND,
        ok,
        round_trip_vs_exit,
    );
}

#[test]
fn exit_lazy_vs_final_drop_passes() {
    check(
        "loaded_mm/exit_lazy_vs_final_drop",
        HEAVY_BOUND,
        ok,
        exit_lazy_vs_final_drop,
    );
}

#[test]
fn kthread_transfer_passes() {
    check(
        "loaded_mm/kthread_transfer",
        HEAVY_BOUND,
        ok,
        kthread_transfer,
    );
}

#[test]
fn down_while_lazy_passes() {
    check(
        "loaded_mm/down_while_lazy",
        HEAVY_BOUND,
        ok,
        down_while_lazy,
    );
}

#[test]
fn crossing_drops_passes() {
    check("loaded_mm/crossing_drops", HEAVY_BOUND, ok, crossing_drops);
}

#[test]
fn three_cpus_passes() {
    check(
        "loaded_mm/three_cpus",
        HEAVY_THREE_CPU_BOUND,
        ok3,
        three_cpus,
    );
}

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
