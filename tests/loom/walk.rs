//! Lockless page-table walkers and their sync (`lazymm::walk`) on the walker
//! machine (`lazymm::check::model::walk`): every sync kind passes NO-PT-UAF, every
//! `bug_` variant is rejected with the oracle's message.

use crate::common::check_model;
use lazymm::check::model::walk::{SyncKind, WalkMachine, WalkOp, WalkScenario};
use lazymm::reclaim::rcu::{self, Rcu};
use lazymm::walk::{BeginOrder, Bug, FlushDelivery, WalkTracker};
use WalkOp::{Collapse, Walk};

/// Bound of the two-CPU walker models.
const WALK_BOUND: usize = 4;
/// Bound of the RCU models (each walk also reports a quiescent state and
/// drives the grace-period machinery).
const RCU_BOUND: usize = 3;
/// Bound of the three-CPU models (two walkers).
const WALK_THREE_CPU_BOUND: usize = 2;

/// Slots of the walker machines (the scenarios use at most 3 CPUs).
const N: usize = 3;

fn check(name: &str, bound: usize, make: impl Fn() -> WalkMachine<N> + Sync + Send + 'static) {
    check_model(&format!("walk/{name}"), bound, make, WalkMachine::run);
}

/// cpu0 walks once while cpu1 collapses (unlink, flush, sync, free).
fn walk_vs_collapse() -> WalkScenario {
    WalkScenario::new(vec![vec![Walk], vec![Collapse]])
}

/// Two walkers, one collapser.
fn two_walkers() -> WalkScenario {
    WalkScenario::new(vec![vec![Walk], vec![Walk], vec![Collapse]])
}

/// cpu0 walks three times (its quiescent states start grace periods that
/// may be running at the collapse) while cpu1 collapses.
fn walks_vs_collapse() -> WalkScenario {
    WalkScenario::new(vec![vec![Walk, Walk, Walk], vec![Collapse]])
}

fn machine(sync: SyncKind, flush: FlushDelivery, scenario: WalkScenario) -> WalkMachine<N> {
    WalkMachine::with(scenario, sync, flush)
}

fn buggy_tracker(order: BeginOrder, bug: Bug, flush: FlushDelivery) -> WalkMachine<N> {
    WalkMachine::new(
        walk_vs_collapse(),
        SyncKind::Targeted(order),
        flush,
        WalkTracker::with_bug(order, bug),
        Rcu::new(),
    )
}

use FlushDelivery::{IpiToAll, NoIpi};

#[test]
fn targeted_store_mb() {
    check("targeted_store_mb", WALK_BOUND, || {
        machine(
            SyncKind::Targeted(BeginOrder::StoreMb),
            NoIpi,
            walk_vs_collapse(),
        )
    });
}

#[test]
fn targeted_xchg() {
    check("targeted_xchg", WALK_BOUND, || {
        machine(
            SyncKind::Targeted(BeginOrder::Xchg),
            NoIpi,
            walk_vs_collapse(),
        )
    });
}

#[test]
fn targeted_two_walkers() {
    check("targeted_two_walkers", WALK_THREE_CPU_BOUND, || {
        machine(
            SyncKind::Targeted(BeginOrder::StoreMb),
            NoIpi,
            two_walkers(),
        )
    });
}

#[test]
fn broadcast() {
    check("broadcast", WALK_BOUND, || {
        machine(SyncKind::Broadcast, NoIpi, walk_vs_collapse())
    });
}

#[test]
fn rcu_deferred() {
    check("rcu_deferred", RCU_BOUND, || {
        machine(SyncKind::Rcu, NoIpi, walk_vs_collapse())
    });
}

#[test]
fn rcu_grace_periods_in_flight() {
    check("rcu_grace_periods_in_flight", RCU_BOUND, || {
        machine(SyncKind::Rcu, NoIpi, walks_vs_collapse())
    });
}

#[test]
fn skip_sync_after_ipi_flush() {
    check("skip_sync_after_ipi_flush", WALK_BOUND, || {
        machine(
            SyncKind::SkipIfFlushIpid(BeginOrder::StoreMb),
            IpiToAll,
            walk_vs_collapse(),
        )
    });
}

#[test]
fn skip_sync_keeps_sync_without_ipi() {
    check("skip_sync_keeps_sync_without_ipi", WALK_BOUND, || {
        machine(
            SyncKind::SkipIfFlushIpid(BeginOrder::StoreMb),
            NoIpi,
            walk_vs_collapse(),
        )
    });
}

/// Negative control: the IPI flush alone syncs, even with v4's `smp_rmb()`.
#[test]
fn sync_rmb_hidden_by_ipi_flush() {
    check("sync_rmb_hidden_by_ipi_flush", WALK_BOUND, || {
        buggy_tracker(BeginOrder::StoreMb, Bug::SyncRmb, IpiToAll)
    });
}

#[test]
#[should_panic(expected = "use-after-free of page-table page 0")]
fn bug_sync_rmb() {
    check("bug_sync_rmb", WALK_BOUND, || {
        buggy_tracker(BeginOrder::StoreMb, Bug::SyncRmb, NoIpi)
    });
}

#[test]
#[should_panic(expected = "use-after-free of page-table page 0")]
fn bug_no_walker_fence() {
    check("bug_no_walker_fence", WALK_BOUND, || {
        buggy_tracker(BeginOrder::StoreMb, Bug::NoWalkerFence, NoIpi)
    });
}

#[test]
#[should_panic(expected = "use-after-free of page-table page 0")]
fn bug_no_walker_fence_xchg() {
    check("bug_no_walker_fence_xchg", WALK_BOUND, || {
        buggy_tracker(BeginOrder::Xchg, Bug::NoWalkerFence, NoIpi)
    });
}

#[test]
#[should_panic(expected = "use-after-free of page-table page 0")]
fn bug_skip_sync_without_ipi() {
    check("bug_skip_sync_without_ipi", WALK_BOUND, || {
        WalkMachine::new(
            walk_vs_collapse(),
            SyncKind::SkipIfFlushIpid(BeginOrder::StoreMb),
            NoIpi,
            WalkTracker::with_bug(BeginOrder::StoreMb, Bug::SkipSyncWithoutIpi),
            Rcu::new(),
        )
    });
}

#[test]
#[should_panic(expected = "use-after-free of page-table page 0")]
fn bug_rcu_gp_one_short() {
    check("bug_rcu_gp_one_short", RCU_BOUND, || {
        WalkMachine::new(
            walks_vs_collapse(),
            SyncKind::Rcu,
            NoIpi,
            WalkTracker::new(BeginOrder::StoreMb),
            Rcu::with_bug(rcu::Bug::GpOneShort),
        )
    });
}

#[test]
#[should_panic(expected = "use-after-free of page-table page 0")]
fn bug_rcu_no_wait() {
    check("bug_rcu_no_wait", RCU_BOUND, || {
        WalkMachine::new(
            walk_vs_collapse(),
            SyncKind::Rcu,
            NoIpi,
            WalkTracker::new(BeginOrder::StoreMb),
            Rcu::with_bug(rcu::Bug::NoWait),
        )
    });
}

/// A grace period that never ends is no use-after-free but a hang: the
/// machine turns "every CPU waits" into a failing test naming what each
/// CPU waits for, instead of loom's deadlock abort (which ends the test
/// binary without naming anything).
#[test]
fn bug_rcu_never_ends_is_a_named_deadlock() {
    let err = std::panic::catch_unwind(|| {
        check("bug_rcu_never_ends", 1, || {
            WalkMachine::new(
                walk_vs_collapse(),
                SyncKind::Rcu,
                NoIpi,
                WalkTracker::new(BeginOrder::StoreMb),
                Rcu::with_bug(rcu::Bug::NeverEnds),
            )
        })
    })
    .expect_err("a grace period that never ends must fail the check");
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    eprintln!("---- the failure ----\n{msg}\n----");
    for part in [
        "deadlock: no CPU can make progress",
        "waits for a grace period to end",
        "waits for the other CPUs to finish their scripts",
    ] {
        assert!(msg.contains(part), "no {part:?} in {msg:?}");
    }
}

/// cpu0 walks three times while cpu1 collapses twice: the second collapse
/// can free the first page from its callback once a grace period ended.
fn walks_vs_two_collapses() -> WalkScenario {
    WalkScenario::new(vec![vec![Walk, Walk, Walk], vec![Collapse, Collapse]])
}

/// Callback frees over every execution of `rcu_callbacks`: (between
/// collapses, in the `rcu_barrier()`).
static CALLBACK_FREES: [std::sync::atomic::AtomicUsize; 2] =
    [const { std::sync::atomic::AtomicUsize::new(0) }; 2];

fn run_counting_callbacks(m: &lazymm::check::sync::thread::Arc<WalkMachine<N>>) {
    WalkMachine::run(m);
    let s = m.stats();
    assert_eq!(
        s.callback_frees, 2,
        "every unlinked page freed by a callback"
    );
    use std::sync::atomic::Ordering::Relaxed;
    CALLBACK_FREES[0].fetch_add(s.callback_frees_early, Relaxed);
    CALLBACK_FREES[1].fetch_add(s.callback_frees - s.callback_frees_early, Relaxed);
}

/// `call_rcu()`-style frees (`SyncKind::RcuCallback`): the RCU core's
/// orderings with a free that follows `done()` and nothing else, between
/// collapses and in the `rcu_barrier()`; both happen in the explored
/// executions. Bound 2 (8,386 executions, 1 s); at the RCU bound 3 it is
/// 220,453 executions and 30 s (`ci/deep.sh`, `LOOM_MAX_PREEMPTIONS=3`).
#[test]
fn rcu_callbacks() {
    check_model(
        "walk/rcu_callbacks",
        RCU_BOUND - 1,
        || machine(SyncKind::RcuCallback, NoIpi, walks_vs_two_collapses()),
        run_counting_callbacks,
    );
    use std::sync::atomic::Ordering::Relaxed;
    let (early, barrier) = (
        CALLBACK_FREES[0].load(Relaxed),
        CALLBACK_FREES[1].load(Relaxed),
    );
    eprintln!("loom walk/rcu_callbacks: {early} pages freed by callbacks between collapses, {barrier} in rcu_barrier()");
    assert!(early > 0 && barrier > 0, "early {early}, barrier {barrier}");
}

#[test]
#[should_panic(expected = "use-after-free of page-table page")]
fn bug_rcu_callback_gp_one_short() {
    check("bug_rcu_callback_gp_one_short", RCU_BOUND, || {
        WalkMachine::new(
            walks_vs_two_collapses(),
            SyncKind::RcuCallback,
            NoIpi,
            WalkTracker::new(BeginOrder::StoreMb),
            Rcu::with_bug(rcu::Bug::GpOneShort),
        )
    });
}

#[test]
#[should_panic(expected = "use-after-free of page-table page 0")]
fn bug_rcu_callback_no_wait() {
    check("bug_rcu_callback_no_wait", RCU_BOUND, || {
        WalkMachine::new(
            walk_vs_collapse(),
            SyncKind::RcuCallback,
            NoIpi,
            WalkTracker::new(BeginOrder::StoreMb),
            Rcu::with_bug(rcu::Bug::NoWait),
        )
    });
}

/// `walk_vs_collapse` with the roles mirrored: cpu0 collapses, cpu1 (the
/// highest CPU) walks. Every other walker model puts the collapser on the
/// highest CPU, where a scan that stops one CPU short skips only the
/// collapser itself.
fn collapse_vs_walk() -> WalkScenario {
    WalkScenario::new(vec![vec![Collapse], vec![Walk]])
}

#[test]
fn targeted_mirrored() {
    check("targeted_mirrored", WALK_BOUND, || {
        machine(
            SyncKind::Targeted(BeginOrder::StoreMb),
            NoIpi,
            collapse_vs_walk(),
        )
    });
}

#[test]
#[should_panic(expected = "use-after-free of page-table page 0")]
fn bug_sync_skips_last_cpu() {
    check("bug_sync_skips_last_cpu", WALK_BOUND, || {
        buggy_tracker_in(collapse_vs_walk(), Bug::SyncSkipsLastCpu)
    });
}

/// The pin: with the collapser on the highest CPU the same variant passes.
#[test]
fn bug_sync_skips_last_cpu_passes_unmirrored() {
    check("bug_sync_skips_last_cpu/unmirrored", WALK_BOUND, || {
        buggy_tracker_in(walk_vs_collapse(), Bug::SyncSkipsLastCpu)
    });
}

fn buggy_tracker_in(scenario: WalkScenario, bug: Bug) -> WalkMachine<N> {
    WalkMachine::new(
        scenario,
        SyncKind::Targeted(BeginOrder::StoreMb),
        NoIpi,
        WalkTracker::with_bug(BeginOrder::StoreMb, bug),
        Rcu::new(),
    )
}

/// The marker's release clear and the sync's acquire read, each weakened:
/// with no flush IPI to every walker, a sync that reads a walk's end is not
/// ordered after the walk's reads of the page.
#[test]
#[should_panic(expected = "use-after-free of page-table page 0")]
fn bug_relaxed_end() {
    check("bug_relaxed_end", WALK_BOUND, || {
        buggy_tracker(BeginOrder::StoreMb, Bug::RelaxedEnd, NoIpi)
    });
}

#[test]
#[should_panic(expected = "use-after-free of page-table page 0")]
fn bug_relaxed_sync_load() {
    check("bug_relaxed_sync_load", WALK_BOUND, || {
        buggy_tracker(BeginOrder::StoreMb, Bug::RelaxedSyncLoad, NoIpi)
    });
}

/// The pins: with the flush IPI to every walker, both pass (the IPI's
/// acknowledgement orders the walk); and the `xchg` begin's own
/// acquire/release halves are not what its store buffering relies on (the
/// barrier after it is).
#[test]
fn relaxed_end_and_xchg_halves_pass_where_not_relied_on() {
    for (order, bug, flush) in [
        (BeginOrder::StoreMb, Bug::RelaxedEnd, IpiToAll),
        (BeginOrder::StoreMb, Bug::RelaxedSyncLoad, IpiToAll),
        (BeginOrder::Xchg, Bug::RelaxedXchgBegin, NoIpi),
    ] {
        check(&format!("pin/{bug:?}/{flush:?}"), WALK_BOUND, move || {
            buggy_tracker(order, bug, flush)
        });
    }
}
