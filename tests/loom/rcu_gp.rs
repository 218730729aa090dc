//! A grace-period kthread (the verify-the-world issue): one thread drives
//! the grace periods (`Rcu::advance`), the updater only polls `Rcu::done`
//! for its cookie before it frees, and a reader on another CPU reads the
//! object inside an active period. Every other RCU model here has the
//! waiter drive the grace period itself, so a grace-period end published
//! too weakly (`rcu::Bug::RelaxedGpEnd`) or read too weakly
//! (`rcu::Bug::RelaxedDone`) was never seen: here each is a data race on
//! the object (loom's causality check), and the pins show the waiter-driven
//! walker model passing both. The reader passes a quiescent state between
//! two sections, and in one mode the updater drives too (two drivers
//! racing for the driver lock), so every other ordering of the GP
//! machinery, weakened alone, also fails here (`killed_by_the_kthread_model`).

use crate::common::{check_model, extra_bound};
use lazymm::check::model::walk::{SyncKind, WalkMachine, WalkOp, WalkScenario};
use lazymm::cpu::CpuId;
use lazymm::reclaim::rcu::{Bug, Rcu};
use lazymm::walk::{BeginOrder, FlushDelivery, WalkTracker};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use loom::sync::Arc;
use loom::thread;

/// Preemption bound of the kthread model (three threads).
const BOUND: usize = 2;
/// Rounds the kthread drives and the updater polls before giving up (an
/// updater that gives up frees nothing: that execution proves nothing,
/// the others do). Unbounded spinning would run into loom's branch limit.
const ROUNDS: usize = 6;

/// The reader's CPU; the updater is CPU 1, idle to RCU throughout (it
/// holds nothing it read).
const READER: CpuId = CpuId::new(0);

struct World {
    rcu: Rcu<2>,
    /// 1 while the object is published, 0 once unlinked.
    ptr: AtomicUsize,
    /// The object: the free writes it, a read inside a section reads it.
    obj: UnsafeCell<u64>,
    freed: AtomicBool,
}

/// Whether the updater also calls `Rcu::advance` while it polls (two
/// drivers racing for the driver lock), or only polls `Rcu::done`.
#[derive(Clone, Copy, PartialEq)]
enum Updater {
    Polls,
    AlsoDrives,
}

fn run(rcu: fn() -> Rcu<2>) {
    run_with(rcu, Updater::Polls)
}

fn run_with(rcu: fn() -> Rcu<2>, updater: Updater) {
    run_at(rcu, updater, BOUND)
}

/// The reader: leaves idle, reads in a section, passes a quiescent state,
/// reads in a second section, goes idle. A GP that starts before the
/// unlink is seen must wait for the quiescent state or the idle entry that
/// follows each section that may have read the object.
fn read_section(w: &World) {
    // Relaxed: the object was published before the model; the section is
    // what orders the read before the free.
    if w.ptr.load(Relaxed) == 1 {
        // SAFETY: a read inside the section; loom reports it if the free
        // is not ordered after it.
        let v = w.obj.with(|p| unsafe { *p });
        assert_eq!(v, 7, "the reader saw the freed object");
    }
}

fn run_at(rcu: fn() -> Rcu<2>, updater: Updater, bound: usize) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(bound + extra_bound());
    b.max_branches = 100_000;
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = n.clone();
    b.check(move || {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let w = Arc::new(World {
            rcu: rcu(),
            ptr: AtomicUsize::new(1),
            obj: UnsafeCell::new(7),
            freed: AtomicBool::new(false),
        });
        let reader = {
            let w = w.clone();
            thread::spawn(move || {
                w.rcu.idle_exit(READER);
                read_section(&w);
                w.rcu.quiescent(READER);
                read_section(&w);
                w.rcu.idle_enter(READER);
            })
        };
        let kthread = {
            let w = w.clone();
            thread::spawn(move || {
                // The GP kthread drives until the updater is done.
                for _ in 0..ROUNDS {
                    // Acquire: pairs with the updater's release below.
                    if w.freed.load(Acquire) {
                        break;
                    }
                    w.rcu.advance();
                    thread::yield_now();
                }
            })
        };
        // The updater (the main thread, CPU 1, idle to RCU): unlink, wait
        // by polling only, free.
        w.ptr.store(0, Relaxed);
        let cookie = w.rcu.snap();
        for _ in 0..ROUNDS {
            if updater == Updater::AlsoDrives {
                w.rcu.advance();
            }
            if w.rcu.done(cookie) {
                // SAFETY: the one writer; loom reports a read not ordered
                // before it.
                w.obj.with_mut(|p| unsafe { *p = 0 });
                // Release: ends the kthread's loop.
                w.freed.store(true, Release);
                break;
            }
            thread::yield_now();
        }
        reader.join().unwrap();
        kthread.join().unwrap();
    });
    let mode = match updater {
        Updater::Polls => "kthread",
        Updater::AlsoDrives => "two_drivers",
    };
    eprintln!(
        "loom rcu_gp/{mode}: bound {bound}, {} executions",
        n.load(std::sync::atomic::Ordering::Relaxed)
    );
}

#[test]
fn kthread_drives_waiter_polls() {
    run(Rcu::new);
}

#[test]
#[should_panic(expected = "Causality violation")]
fn bug_relaxed_gp_end() {
    run(|| Rcu::with_bug(Bug::RelaxedGpEnd));
}

#[test]
#[should_panic(expected = "Causality violation")]
fn bug_relaxed_done() {
    run(|| Rcu::with_bug(Bug::RelaxedDone));
}

#[test]
fn two_drivers() {
    run_with(Rcu::new, Updater::AlsoDrives);
}

/// Each ordering of the GP machinery weakened, one at a time: every one
/// is a data race on the object in the kthread model (the acquires and
/// releases) or lets the reader's second section read an unlinked object
/// that the GP did not wait for (the store-buffering barriers).
macro_rules! killed_by_the_kthread_model {
    ($($name:ident: $bug:ident, $updater:ident;)*) => {$(
        #[test]
        #[should_panic(expected = "Causality violation")]
        fn $name() {
            run_with(|| Rcu::with_bug(Bug::$bug), Updater::$updater);
        }
    )*};
}

killed_by_the_kthread_model! {
    bug_no_qs_mb: NoQsMb, Polls;
    bug_relaxed_idle_enter: RelaxedIdleEnter, Polls;
    bug_no_idle_exit_mb: NoIdleExitMb, Polls;
    bug_no_snap_mb: NoSnapMb, Polls;
    bug_no_gp_start_mb: NoGpStartMb, Polls;
    bug_relaxed_snapshot: RelaxedSnapshot, Polls;
    bug_relaxed_end_check: RelaxedEndCheck, Polls;
    bug_relaxed_driver_lock: RelaxedDriverLock, AlsoDrives;
}

/// A relaxed quiescent state needs the GP end check to read exactly the
/// quiescent state's value (not the idle entry's, whose release covers the
/// first section too) and the free to follow before the idle entry: two
/// more preemptions than the others (`kthread_at_bound_4` is the correct
/// machine at that bound).
/// The correct machine at the relaxed quiescent state's bound. Before
/// 2026-12-06 this failed: the GP start stored `gp_seq` relaxed, and an
/// updater whose `done()` read the *next* GP's start freed without
/// synchronizing with the end it counted (`bug_relaxed_gp_start` below).
#[test]
fn kthread_at_bound_4() {
    run_at(Rcu::new, Updater::Polls, BOUND + 2);
}

#[test]
#[should_panic(expected = "Causality violation")]
fn bug_relaxed_gp_start() {
    run_at(
        || Rcu::with_bug(Bug::RelaxedGpStart),
        Updater::Polls,
        BOUND + 1,
    );
}

#[test]
#[should_panic(expected = "Causality violation")]
fn bug_relaxed_qs() {
    run_at(|| Rcu::with_bug(Bug::RelaxedQs), Updater::Polls, BOUND + 2);
}

/// The pin: `snap`'s relaxed read of `gp_seq` passes both GP models (the
/// cookie only picks which GP to wait for; VERIFICATION.md says why).
#[test]
fn relaxed_snap_read_passes() {
    let rcu = || Rcu::with_bug(Bug::RelaxedSnapRead);
    run(rcu);
    run_with(rcu, Updater::AlsoDrives);
}

/// The pins: the walker machine's RCU sync, whose waiter drives the grace
/// period itself, passes both variants.
#[test]
fn bugs_pass_when_the_waiter_drives() {
    for bug in [Bug::RelaxedGpEnd, Bug::RelaxedDone] {
        check_model(
            &format!("rcu_gp/waiter_drives/{bug:?}"),
            3,
            move || {
                WalkMachine::new(
                    WalkScenario::new(vec![
                        vec![WalkOp::Walk, WalkOp::Walk, WalkOp::Walk],
                        vec![WalkOp::Collapse],
                    ]),
                    SyncKind::Rcu,
                    FlushDelivery::NoIpi,
                    WalkTracker::new(BeginOrder::StoreMb),
                    Rcu::with_bug(bug),
                )
            },
            WalkMachine::<3>::run,
        );
    }
}
