//! Schemes written outside the crate, checked by the public harness
//! (`lazymm::model::harness`) exactly as a user's own test would: a correct
//! one passes at 8 CPUs, two deliberately wrong ones are rejected with the
//! oracle's messages.

use lazymm::cpu::CpuId;
use lazymm::model::harness::{shuttle_check, ShuttleCheck, ShuttleScheduler};
use lazymm::scheme::{Kernel, LazyMm};

/// Linux's refcount, written against the public traits only: a lazy CPU
/// holds a reference on `mm_count` from `enter_lazy` (user → kernel, and
/// `exit_mm()`) to `leave_lazy` (`finish_task_switch()` once the CPU loaded
/// another mm, or CPU down); kernel → kernel passes it on untouched.
#[derive(Default)]
struct PlainRefcount;

impl<K: Kernel> LazyMm<K> for PlainRefcount {
    const NAME: &'static str = "external/plain-refcount";

    fn enter_lazy(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        k.mmgrab(cpu, mm);
    }

    fn leave_lazy(&self, k: &K, cpu: CpuId, mm: K::Mm, _next: Option<K::Mm>) {
        k.mmdrop(cpu, mm);
    }
}

/// Wrong: lazy CPUs take no reference and nothing shoots them down, so the
/// last `mmput()` frees an mm another CPU still has loaded.
#[derive(Default)]
struct NoGrab;

impl<K: Kernel> LazyMm<K> for NoGrab {
    const NAME: &'static str = "external/no-grab";

    fn enter_lazy(&self, _k: &K, _cpu: CpuId, _mm: K::Mm) {}

    fn leave_lazy(&self, _k: &K, _cpu: CpuId, _mm: K::Mm, _next: Option<K::Mm>) {}
}

/// Wrong: the lazy reference is taken and never given back.
#[derive(Default)]
struct NoDrop;

impl<K: Kernel> LazyMm<K> for NoDrop {
    const NAME: &'static str = "external/no-drop";

    fn enter_lazy(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        k.mmgrab(cpu, mm);
    }

    fn leave_lazy(&self, _k: &K, _cpu: CpuId, _mm: K::Mm, _next: Option<K::Mm>) {}
}

/// The one-call check with the harness's defaults.
#[test]
fn plain_refcount_passes() {
    let reports = shuttle_check(PlainRefcount::default);
    assert_eq!(
        reports.iter().map(|r| r.scheduler).collect::<Vec<_>>(),
        ShuttleCheck::SCHEDULERS,
        "one report per default scheduler, in order"
    );
    for r in &reports {
        eprintln!("shuttle external/plain-refcount: {r}");
        assert_eq!(r.executions, ShuttleCheck::ITERATIONS, "{r}");
        // Every execution switches at least once per operation of the
        // workload's 240+ (minus the exits).
        assert!(r.switches >= 100 * r.executions as u64, "{r}");
    }
}

#[test]
#[should_panic(expected = "use-after-free of mm")]
fn no_grab_is_rejected() {
    shuttle_check(NoGrab::default);
}

#[test]
#[should_panic(expected = "leak: mm")]
fn no_drop_is_rejected() {
    shuttle_check(NoDrop::default);
}

/// The builder: a fixed scenario of one's own, one scheduler.
#[test]
#[should_panic(expected = "use-after-free of mm0")]
fn no_grab_is_rejected_on_a_fixed_scenario() {
    ShuttleCheck::new()
        .scenario(lazymm::model::harness::down_while_lazy())
        .schedulers(&[ShuttleScheduler::Random { seed: 1 }])
        .iterations(100)
        .run(NoGrab::default);
}
