//! Misuse gets a clear error: the `Checked` wrapper on every scheme runs
//! the machine's random workloads without a false alarm, and turns a second
//! `enter_lazy`, a `leave_lazy` without one, and an out-of-range CPU id into
//! documented panics.
#![cfg(not(any(loom, lazymm_shuttle)))]

use lazymm::cached::Cached;
use lazymm::checked::Checked;
use lazymm::cpu::CpuId;
use lazymm::hazard::HazardLazy;
use lazymm::loaded::LoadedMm;
use lazymm::model::{Machine, MmId, Scenario};
use lazymm::rcu_mm::RcuMm;
use lazymm::refcount::Refcount;
use lazymm::scheme::LazyMm;
use lazymm::shootdown::Shootdown;
use lazymm::sync::thread::Arc;
use lazymm::tagged::Tagged;

fn run_checked<S>(inner: fn() -> S)
where
    S: LazyMm + Send + Sync + 'static,
{
    for seed in 0..20 {
        let m = Arc::new(Machine::new(
            Checked::<S, 4>::new(inner()),
            Scenario::random(seed, 4, 3, 12),
        ));
        Machine::run(&m);
    }
}

#[test]
fn checked_schemes_raise_no_false_alarm() {
    run_checked(Refcount::new);
    run_checked(Shootdown::new);
    run_checked(Tagged::<4>::new);
    run_checked(Cached::<4>::new);
    run_checked(HazardLazy::<4>::new);
    run_checked(LoadedMm::<4>::new);
    run_checked(RcuMm::<4>::new);
}

fn machine() -> Machine<Checked<Refcount, 2>> {
    Machine::new(
        Checked::new(Refcount::new()),
        Scenario::new(
            1,
            vec![
                vec![
                    lazymm::model::Op::User(MmId::new(0)),
                    lazymm::model::Op::Exit,
                ],
                vec![],
            ],
        ),
    )
}

#[test]
#[should_panic(expected = "entered twice")]
fn enter_lazy_twice() {
    let m = machine();
    let (cpu, mm) = (CpuId::new(0), MmId::new(0));
    m.scheme().enter_lazy(&m, cpu, mm);
    m.scheme().enter_lazy(&m, cpu, mm);
}

#[test]
#[should_panic(expected = "never entered")]
fn leave_lazy_without_enter() {
    let m = machine();
    m.scheme().leave_lazy(&m, CpuId::new(1), MmId::new(0), None);
}

#[test]
#[should_panic(expected = "not lazy (left twice")]
fn leave_lazy_twice() {
    let m = machine();
    let (cpu, mm) = (CpuId::new(0), MmId::new(0));
    m.scheme().enter_lazy(&m, cpu, mm);
    m.scheme().leave_lazy(&m, cpu, mm, Some(mm));
    m.scheme().leave_lazy(&m, cpu, mm, Some(mm));
}

#[test]
#[should_panic(expected = "out of range")]
fn cpu_out_of_range() {
    let m = machine();
    m.scheme().enter_lazy(&m, CpuId::new(2), MmId::new(0));
}
