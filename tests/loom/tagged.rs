//! `tagged` (Lutomirski's tagged per-CPU word) and `tagged-v2` under loom:
//! every shared scenario for each choice of the mockup's options, and every
//! known-bad variant. See the module docs of `lazymm::lazy::tagged` for what each
//! test answers.

use crate::common::*;
use lazymm::lazy::tagged::{Bug, Options, Tagged, TaggedV2};

type T = Tagged<3>;

const NO_CHECK: Options = Options {
    check_before_cmpxchg: false,
    batch_grab: false,
};
const BATCH: Options = Options {
    check_before_cmpxchg: true,
    batch_grab: true,
};

fn mockup() -> T {
    T::new()
}
fn no_check() -> T {
    T::with_options(NO_CHECK)
}
fn batch() -> T {
    T::with_options(BATCH)
}

shared_scenarios!(
    mockup_passes,
    "tagged/mockup",
    DEFAULT_BOUND,
    super::mockup,
    THREE_CPU_BOUND,
    super::mockup
);
shared_scenarios!(
    no_check_passes,
    "tagged/no_check",
    DEFAULT_BOUND,
    super::no_check,
    THREE_CPU_BOUND,
    super::no_check
);
shared_scenarios!(
    batch_passes,
    "tagged/batch",
    DEFAULT_BOUND,
    super::batch,
    THREE_CPU_BOUND,
    super::batch
);

/// The RFC v2 placement is rejected: a delayed fixup displaces the
/// reference that protects the CPU's next lazy mm and drops it.
#[test]
#[should_panic(expected = "use-after-free of mm1: freed on cpu0 while cpu0 still has it loaded")]
fn bug_rfc_v2_deposit_race() {
    check(
        "tagged-v2/bug_rfc_v2_deposit_race",
        DEFAULT_BOUND,
        TaggedV2::<3>::new,
        exit_lazy_vs_final_drop,
    );
}

/// (a): the enter-lazy store must be a release (see the module docs).
#[test]
#[should_panic(expected = "use-after-free of mm0")]
fn bug_enter_store_relaxed() {
    check(
        "tagged/bug_enter_store_relaxed",
        DEFAULT_BOUND,
        || T::with_bug(Options::MOCKUP, Bug::EnterStoreRelaxed),
        exit_lazy_vs_final_drop,
    );
}

#[test]
#[should_panic(expected = "leak: mm0 was never freed")]
fn bug_no_drop_on_failed_cmpxchg() {
    check(
        "tagged/bug_no_drop_on_failed_cmpxchg",
        DEFAULT_BOUND,
        || T::with_bug(Options::MOCKUP, Bug::NoDropOnFailedCmpxchg),
        exit_lazy_vs_final_drop,
    );
}

#[test]
#[should_panic(expected = "use-after-free of mm0")]
fn bug_drop_on_successful_cmpxchg() {
    check(
        "tagged/bug_drop_on_successful_cmpxchg",
        DEFAULT_BOUND,
        || T::with_bug(Options::MOCKUP, Bug::DropOnSuccessfulCmpxchg),
        down_while_lazy,
    );
}

/// (c): a plain unlazy whenever `mm_users > 0` loses a fixup's tag.
#[test]
#[should_panic(expected = "leak: mm0 was never freed")]
fn bug_unlazy_store_if_users() {
    check(
        "tagged/bug_unlazy_store_if_users",
        DEFAULT_BOUND,
        || T::with_bug(Options::MOCKUP, Bug::UnlazyStoreIfUsers),
        down_while_lazy,
    );
}

/// (a): the unlazy xchg one step weaker than AcqRel on the release side.
#[test]
#[should_panic(expected = "use-after-free of mm0")]
fn bug_unlazy_xchg_no_release() {
    check(
        "tagged/bug_unlazy_xchg_no_release",
        DEFAULT_BOUND,
        || T::with_bug(NO_CHECK, Bug::UnlazyXchgNoRelease),
        exit_lazy_vs_final_drop,
    );
}

/// (a): the fixup cmpxchg's failure ordering one step weaker than acquire.
#[test]
#[should_panic(expected = "use-after-free of mm0")]
fn bug_cmpxchg_failure_relaxed() {
    check(
        "tagged/bug_cmpxchg_failure_relaxed",
        DEFAULT_BOUND,
        || T::with_bug(NO_CHECK, Bug::CmpxchgFailureRelaxed),
        exit_lazy_vs_final_drop,
    );
}

/// (b): if the check is kept, it must be an acquire load.
#[test]
#[should_panic(expected = "use-after-free of mm0")]
fn bug_check_relaxed() {
    check(
        "tagged/bug_check_relaxed",
        DEFAULT_BOUND,
        || T::with_bug(Options::MOCKUP, Bug::CheckRelaxed),
        exit_lazy_vs_final_drop,
    );
}

/// (a), the checker's limit: a relaxed successful cmpxchg breaks the message
/// passing of the grab on `mm_count` (wrong in C11 and LKMM), but loom runs
/// RMWs on one location in the order it schedules them and cannot show it.
/// This pins that blindness: if a loom upgrade starts rejecting the
/// variant, this test fails and the docs must be updated.
#[test]
fn loom_blind_cmpxchg_success_relaxed() {
    check(
        "tagged/loom_blind_cmpxchg_success_relaxed",
        DEFAULT_BOUND,
        || T::with_bug(Options::MOCKUP, Bug::CmpxchgSuccessRelaxed),
        exit_lazy_vs_final_drop,
    );
}
