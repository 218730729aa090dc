//! `refcount` (Linux `MMU_LAZY_TLB_REFCOUNT`) under loom.

use crate::common::*;
use lazymm::refcount::{Bug, Refcount};

fn ok() -> Refcount {
    Refcount::new()
}

#[test]
fn round_trip_vs_exit_passes() {
    check(
        "refcount/round_trip_vs_exit",
        DEFAULT_BOUND,
        ok,
        round_trip_vs_exit,
    );
}

#[test]
fn exit_lazy_vs_final_drop_passes() {
    check(
        "refcount/exit_lazy_vs_final_drop",
        DEFAULT_BOUND,
        ok,
        exit_lazy_vs_final_drop,
    );
}

#[test]
fn kthread_transfer_passes() {
    check(
        "refcount/kthread_transfer",
        DEFAULT_BOUND,
        ok,
        kthread_transfer,
    );
}

#[test]
fn crossing_drops_passes() {
    check("refcount/crossing_drops", DEFAULT_BOUND, ok, crossing_drops);
}

#[test]
fn three_cpus_passes() {
    check("refcount/three_cpus", THREE_CPU_BOUND, ok, three_cpus);
}

#[test]
#[should_panic(expected = "use-after-free of mm0")]
fn bug_drop_before_last_use() {
    check(
        "refcount/bug_drop_before_last_use",
        DEFAULT_BOUND,
        || Refcount::with_bug(Bug::DropBeforeLastUse),
        down_while_lazy,
    );
}

#[test]
#[should_panic(expected = "leak: mm0 was never freed")]
fn bug_transfer_grabs() {
    check(
        "refcount/bug_transfer_grabs",
        DEFAULT_BOUND,
        || Refcount::with_bug(Bug::TransferGrabs),
        kthread_transfer,
    );
}
