//! The RCU core sequentially: grace periods wait for active CPUs, skip idle
//! ones, and the callback queue releases items only after their grace
//! period, in order, without allocating.
#![cfg(not(any(loom, lazymm_shuttle)))]

use lazymm::cpu::CpuId;
use lazymm::reclaim::rcu::{Progress, Rcu, RcuQueue};

/// Up to three steps of the machinery (end, start, end), stopping when it
/// waits for a CPU (with every CPU idle it would start and end forever).
fn drive<const N: usize>(rcu: &Rcu<N>) {
    for _ in 0..3 {
        if matches!(rcu.advance(), Progress::Waiting | Progress::Busy) {
            break;
        }
    }
}

#[test]
fn grace_period_waits_for_active_cpus_only() {
    let rcu: Rcu<4> = Rcu::new();
    let (c0, c1) = (CpuId::new(0), CpuId::new(1));
    rcu.idle_exit(c0);
    rcu.idle_exit(c1);
    let cookie = rcu.snap();
    drive(&rcu);
    assert!(
        !rcu.done(cookie),
        "cpu0 and cpu1 have not passed a quiescent state"
    );
    rcu.quiescent(c0);
    drive(&rcu);
    assert!(!rcu.done(cookie), "cpu1 still holds the grace period");
    rcu.idle_enter(c1);
    drive(&rcu);
    assert!(rcu.done(cookie));
    // CPUs 2 and 3 never came online: they never held anything up.
    assert!(rcu.is_idle(CpuId::new(2)));
}

#[test]
fn a_running_grace_period_does_not_count() {
    let rcu: Rcu<2> = Rcu::new();
    let c0 = CpuId::new(0);
    rcu.idle_exit(c0);
    assert_eq!(rcu.advance(), Progress::Started);
    // An update now may have missed that GP's snapshot: the cookie needs
    // the next one.
    let cookie = rcu.snap();
    rcu.quiescent(c0);
    assert_eq!(rcu.advance(), Progress::Ended);
    assert!(!rcu.done(cookie));
    rcu.quiescent(c0);
    drive(&rcu);
    rcu.quiescent(c0);
    drive(&rcu);
    assert!(rcu.done(cookie));
}

#[test]
fn queue_releases_in_order_after_the_grace_period() {
    let rcu: Rcu<1> = Rcu::new();
    let c0 = CpuId::new(0);
    rcu.idle_exit(c0);
    let mut q: RcuQueue<u32, 3> = RcuQueue::new();
    q.push(rcu.snap(), 1).unwrap();
    q.push(rcu.snap(), 2).unwrap();
    assert_eq!(q.pop_ready(&rcu), None, "no grace period yet");
    rcu.quiescent(c0);
    drive(&rcu);
    rcu.quiescent(c0);
    drive(&rcu);
    q.push(rcu.snap(), 3).unwrap();
    assert_eq!(
        q.push(rcu.snap(), 4),
        Err(4),
        "full: the caller waits itself"
    );
    assert_eq!(q.pop_ready(&rcu), Some(1));
    assert_eq!(q.pop_ready(&rcu), Some(2));
    assert_eq!(
        q.pop_ready(&rcu),
        None,
        "3 was queued after that grace period"
    );
    rcu.idle_enter(c0);
    drive(&rcu);
    assert_eq!(q.pop_ready(&rcu), Some(3));
    assert!(q.is_empty());
}

#[test]
#[should_panic(expected = "which is idle")]
fn quiescent_while_idle_is_a_bug() {
    let rcu: Rcu<1> = Rcu::new();
    rcu.quiescent(CpuId::new(0));
}
