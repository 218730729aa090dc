//! `tagged` (all three option sets) under shuttle at 8 CPUs.

use crate::common::*;
use lazymm::lazy::tagged::{Bug, Options, Tagged};

type T = Tagged<8>;

#[test]
fn tagged_mockup_8_cpus() {
    check_all("tagged/mockup", T::new);
}

#[test]
fn tagged_no_check_8_cpus() {
    check_all("tagged/no_check", || {
        T::with_options(Options {
            check_before_cmpxchg: false,
            batch_grab: false,
        })
    });
}

#[test]
fn tagged_batch_8_cpus() {
    check_all("tagged/batch", || {
        T::with_options(Options {
            check_before_cmpxchg: true,
            batch_grab: true,
        })
    });
}

#[test]
#[should_panic(expected = "mm")]
fn bug_drop_on_successful_cmpxchg() {
    check_bug(
        || T::with_bug(Options::MOCKUP, Bug::DropOnSuccessfulCmpxchg),
        None,
    );
}

// `bug_no_drop_on_failed_cmpxchg` and `bug_unlazy_store_if_users` need a
// preemption inside a two-instruction window (check..cmpxchg, load..store);
// 1,000 PCT runs of 240-step workloads do not hit it, loom kills both (see
// tests/loom/tagged.rs). Shuttle is for scale, loom for windows like these.
