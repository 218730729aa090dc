//! `rcu_mm` under shuttle at 8 CPUs: the random workloads, and a workload
//! with long idle periods — CPUs whose tasks exit and that then idle lazily
//! for many scheduler rounds while the other CPUs' final drops wait for
//! grace periods (and, past the bound, IPI them).

use crate::common::*;
use lazymm::check::model::{MmId, Op, Scenario};
use lazymm::lazy::rcu_mm::{Bug, RcuMm};

/// cpu0..3 each run a task of mm i, exit it and idle lazily on it for 20
/// rounds; cpu4..7 run tasks of all four mms and exit them.
fn long_idle() -> Scenario {
    let mut scripts = Vec::new();
    for i in 0..4 {
        let mut s = vec![Op::User(MmId::new(i)), Op::Exit];
        s.extend([Op::Kthread; 20]);
        scripts.push(s);
    }
    for c in 4..8 {
        let mut s = Vec::new();
        for k in 0..4 {
            s.extend([Op::User(MmId::new((c + k) % 4)), Op::Exit, Op::Kthread]);
        }
        scripts.push(s);
    }
    Scenario::new(4, scripts)
}

#[test]
fn rcu_mm_8_cpus() {
    check_all("rcu_mm", RcuMm::<8>::new);
    for report in checker(None).scenario(long_idle()).run(RcuMm::<8>::new) {
        eprintln!("shuttle rcu_mm/long_idle: {report}");
    }
}

#[test]
#[should_panic(expected = "use-after-free of mm")]
fn bug_idle_is_quiescent() {
    checker(None)
        .scenario(long_idle())
        .run(|| RcuMm::<8>::with_bug(Bug::IdleIsQuiescent));
}

/// Final drops where grace periods can complete, at 8 CPUs: cpu0..3 each
/// run the only task of mm i, exit it and move on to a second mm of their
/// own (4 + i), while cpu4..7, kernel threads on the kernel's own mm, each
/// drop a reference they held on mm i (`Op::MmDrop`). The runs free mms
/// through completed grace periods as well as through the IPI fallback.
fn final_drops_elsewhere() -> Scenario {
    let mut scripts = Vec::new();
    for i in 0..4 {
        scripts.push(vec![
            Op::User(MmId::new(i)),
            Op::Exit,
            Op::User(MmId::new(4 + i)),
            Op::Kthread,
            Op::User(MmId::new(4 + i)),
            Op::Exit,
        ]);
    }
    for i in 0..4 {
        scripts.push(vec![Op::Kthread, Op::Kthread, Op::MmDrop(MmId::new(i))]);
    }
    Scenario::new(8, scripts)
}

#[test]
fn final_drops_elsewhere_free_through_grace_periods() {
    for report in checker(None)
        .scenario(final_drops_elsewhere())
        .run(RcuMm::<8>::new)
    {
        eprintln!("shuttle rcu_mm/final_drops_elsewhere: {report}");
        assert!(report.frees_without_shootdown > 0, "{report}");
        assert!(report.frees_without_shootdown < report.frees, "{report}");
    }
}
