//! `cached` under shuttle at 8 CPUs.

use crate::common::*;
use lazymm::lazy::cached::{Bug, Cached};

#[test]
fn cached_8_cpus() {
    check_all("cached", Cached::<8>::new);
}

#[test]
#[should_panic(expected = "use-after-free of mm")]
fn bug_drop_on_leave() {
    check_bug(|| Cached::<8>::with_bug(Bug::DropOnLeave), None);
}

#[test]
#[should_panic(expected = "leak: mm")]
fn bug_forget_on_init_mm() {
    check_bug(|| Cached::<8>::with_bug(Bug::ForgetOnInitMm), None);
}
