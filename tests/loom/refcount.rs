//! `refcount` (Linux `MMU_LAZY_TLB_REFCOUNT`) under loom.

use crate::common::*;
use lazymm::lazy::refcount::{Bug, Refcount};

shared_scenarios!(
    passes,
    "refcount",
    DEFAULT_BOUND,
    lazymm::lazy::refcount::Refcount::new,
    THREE_CPU_BOUND,
    lazymm::lazy::refcount::Refcount::new
);

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
