//! Misuse gets a clear error: the `Checked` wrapper on every scheme runs
//! the machine's random workloads without a false alarm, and turns a second
//! `enter_lazy`, a `leave_lazy` without one, and an out-of-range CPU id into
//! documented panics.
#![cfg(not(any(loom, lazymm_shuttle)))]

use lazymm::check::model::{Machine, MmId, Scenario};
use lazymm::check::sync::thread::Arc;
use lazymm::cpu::CpuId;
use lazymm::lazy::cached::Cached;
use lazymm::lazy::checked::Checked;
use lazymm::lazy::hazard::HazardLazy;
use lazymm::lazy::loaded::LoadedMm;
use lazymm::lazy::rcu_mm::RcuMm;
use lazymm::lazy::refcount::Refcount;
use lazymm::lazy::shootdown::Shootdown;
use lazymm::lazy::tagged::Tagged;
use lazymm::lazy::LazyMm;

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
                    lazymm::check::model::Op::User(MmId::new(0)),
                    lazymm::check::model::Op::Exit,
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
