//! `cached` (van Riel's per-CPU cached reference) under loom.

use crate::common::*;
use lazymm::lazy::cached::{Bug, Cached};

type C = Cached<3>;

shared_scenarios!(
    passes,
    "cached",
    DEFAULT_BOUND,
    lazymm::lazy::cached::Cached::<3>::new,
    THREE_CPU_BOUND,
    lazymm::lazy::cached::Cached::<3>::new
);

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
