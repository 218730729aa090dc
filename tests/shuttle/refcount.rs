//! `refcount` under shuttle at 8 CPUs.

use crate::common::*;
use lazymm::lazy::refcount::{Bug, Refcount};

#[test]
fn refcount_8_cpus() {
    check_all("refcount", Refcount::new);
}

#[test]
#[should_panic(expected = "use-after-free of mm")]
fn bug_drop_before_last_use() {
    check_bug(|| Refcount::with_bug(Bug::DropBeforeLastUse), None);
}

#[test]
#[should_panic(expected = "leak: mm")]
fn bug_transfer_grabs() {
    check_bug(|| Refcount::with_bug(Bug::TransferGrabs), None);
}
