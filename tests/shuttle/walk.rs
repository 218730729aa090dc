//! Lockless walkers and collapses (`lazymm::walk`, `lazymm::check::model::walk`)
//! under shuttle at 8 CPUs: seven walkers, one CPU collapsing again and
//! again, for every sync kind; and the known-bad variants, which PCT finds.

use crate::common::{run_bug, run_schedulers};
use lazymm::check::model::walk::{SyncKind, WalkMachine, WalkOp, WalkScenario};
use lazymm::check::sync::thread::Arc;
use lazymm::reclaim::rcu::{self, Rcu};
use lazymm::walk::{BeginOrder, Bug, FlushDelivery, WalkTracker};

const CPUS: usize = 8;
const WALKS: usize = 12;
const COLLAPSES: usize = 6;

fn scenario() -> WalkScenario {
    let mut scripts = vec![vec![WalkOp::Collapse; COLLAPSES]];
    scripts.extend((1..CPUS).map(|_| vec![WalkOp::Walk; WALKS]));
    WalkScenario::new(scripts)
}

fn run(name: &str, make: fn() -> WalkMachine<CPUS>) {
    run_schedulers(&format!("walk/{name}"), move || {
        let m = Arc::new(make());
        WalkMachine::run(&m);
        let s = m.stats();
        assert_eq!(s.walks, (CPUS - 1) * WALKS);
        assert_eq!(s.collapses, COLLAPSES);
    });
}

fn bug(make: fn() -> WalkMachine<CPUS>) {
    run_bug(move || WalkMachine::run(&Arc::new(make())));
}

use FlushDelivery::{IpiToAll, NoIpi};

#[test]
fn targeted_8_cpus() {
    run("targeted", || {
        WalkMachine::with(scenario(), SyncKind::Targeted(BeginOrder::StoreMb), NoIpi)
    });
    run("targeted_xchg", || {
        WalkMachine::with(scenario(), SyncKind::Targeted(BeginOrder::Xchg), NoIpi)
    });
}

#[test]
fn baselines_8_cpus() {
    run("broadcast", || {
        WalkMachine::with(scenario(), SyncKind::Broadcast, NoIpi)
    });
    run("rcu", || {
        WalkMachine::with(scenario(), SyncKind::Rcu, NoIpi)
    });
    run("rcu_callbacks", || {
        WalkMachine::with(scenario(), SyncKind::RcuCallback, NoIpi)
    });
    run("skip_after_ipi_flush", || {
        WalkMachine::with(
            scenario(),
            SyncKind::SkipIfFlushIpid(BeginOrder::StoreMb),
            IpiToAll,
        )
    });
}

#[test]
#[should_panic(expected = "use-after-free of page-table page")]
fn bug_skip_sync_without_ipi() {
    bug(|| {
        WalkMachine::new(
            scenario(),
            SyncKind::SkipIfFlushIpid(BeginOrder::StoreMb),
            NoIpi,
            WalkTracker::with_bug(BeginOrder::StoreMb, Bug::SkipSyncWithoutIpi),
            Rcu::new(),
        )
    });
}

#[test]
#[should_panic(expected = "use-after-free of page-table page")]
fn bug_rcu_no_wait() {
    bug(|| {
        WalkMachine::new(
            scenario(),
            SyncKind::Rcu,
            NoIpi,
            WalkTracker::new(BeginOrder::StoreMb),
            Rcu::with_bug(rcu::Bug::NoWait),
        )
    });
}

/// A grace period that never ends: a failing test whose line names what
/// each of the 8 CPUs waits for, not shuttle's own deadlock report.
#[test]
#[should_panic(
    expected = "deadlock: no CPU can make progress (every CPU waits, and no IPI or event can wake one):\n    cpu0 waits for a grace period to end"
)]
fn bug_rcu_never_ends_is_a_named_deadlock() {
    bug(|| {
        WalkMachine::new(
            scenario(),
            SyncKind::Rcu,
            NoIpi,
            WalkTracker::new(BeginOrder::StoreMb),
            Rcu::with_bug(rcu::Bug::NeverEnds),
        )
    });
}

#[test]
#[should_panic(expected = "use-after-free of page-table page")]
fn bug_rcu_callback_no_wait() {
    bug(|| {
        WalkMachine::new(
            scenario(),
            SyncKind::RcuCallback,
            NoIpi,
            WalkTracker::new(BeginOrder::StoreMb),
            Rcu::with_bug(rcu::Bug::NoWait),
        )
    });
}

/// The collapser is cpu0 here, so shuttle always caught a scan one CPU
/// short (loom only since its mirrored model).
#[test]
#[should_panic(expected = "use-after-free of page-table page")]
fn bug_sync_skips_last_cpu() {
    bug(|| {
        WalkMachine::new(
            scenario(),
            SyncKind::Targeted(BeginOrder::StoreMb),
            NoIpi,
            WalkTracker::with_bug(BeginOrder::StoreMb, Bug::SyncSkipsLastCpu),
            Rcu::new(),
        )
    });
}
