//! A grace-period kthread (the verify-the-world issue): one thread drives
//! the grace periods (`Rcu::advance`), the updater only polls `Rcu::done`
//! for its cookie before it frees, and a reader on another CPU reads the
//! object inside an active period. Every other RCU model here has the
//! waiter drive the grace period itself, so a grace-period end published
//! too weakly (`rcu::Bug::RelaxedGpEnd`) or read too weakly
//! (`rcu::Bug::RelaxedDone`) was never seen: here each is a data race on
//! the object (loom's causality check), and the pins show the waiter-driven
//! walker model passing both.

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

fn run(rcu: fn() -> Rcu<2>) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(BOUND + extra_bound());
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
                // Relaxed: the object was published before the model; the
                // section is what orders the read before the free.
                if w.ptr.load(Relaxed) == 1 {
                    // SAFETY: a read inside the section; loom reports it if
                    // the free is not ordered after it.
                    let v = w.obj.with(|p| unsafe { *p });
                    assert_eq!(v, 7, "the reader saw the freed object");
                }
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
    eprintln!(
        "loom rcu_gp/kthread: bound {BOUND}, {} executions",
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
