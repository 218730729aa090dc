//! `cached` (van Riel's per-CPU cached reference) under loom.

use crate::common::*;
use lazymm::cached::{Bug, Cached};

type C = Cached<3>;

fn ok() -> C {
    C::new()
}

#[test]
fn round_trip_vs_exit_passes() {
    check(
        "cached/round_trip_vs_exit",
        DEFAULT_BOUND,
        ok,
        round_trip_vs_exit,
    );
}

#[test]
fn exit_lazy_vs_final_drop_passes() {
    check(
        "cached/exit_lazy_vs_final_drop",
        DEFAULT_BOUND,
        ok,
        exit_lazy_vs_final_drop,
    );
}

#[test]
fn kthread_transfer_passes() {
    check(
        "cached/kthread_transfer",
        DEFAULT_BOUND,
        ok,
        kthread_transfer,
    );
}

#[test]
fn down_while_lazy_passes() {
    check("cached/down_while_lazy", DEFAULT_BOUND, ok, down_while_lazy);
}

#[test]
fn crossing_drops_passes() {
    check("cached/crossing_drops", DEFAULT_BOUND, ok, crossing_drops);
}

#[test]
fn three_cpus_passes() {
    check("cached/three_cpus", THREE_CPU_BOUND, ok, three_cpus);
}

#[test]
#[should_panic(expected = "use-after-free of mm0")]
fn bug_drop_on_leave() {
    check(
        "cached/bug_drop_on_leave",
        DEFAULT_BOUND,
        || C::with_bug(Bug::DropOnLeave),
        round_trip_vs_exit,
    );
}

#[test]
#[should_panic(expected = "leak: mm0 was never freed")]
fn bug_forget_on_init_mm() {
    check(
        "cached/bug_forget_on_init_mm",
        DEFAULT_BOUND,
        || C::with_bug(Bug::ForgetOnInitMm),
        down_while_lazy,
    );
}
