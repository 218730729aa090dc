//! Instruction counts of every hot path under callgrind (gungraun): numbers
//! that do not move with the neighbours on a shared machine.
//!
//! Each benchmark runs **one** operation through a `&dyn Fn()` built
//! outside the measurement (gungraun evaluates the `#[bench]` arguments
//! before it starts counting), so every count carries the same call
//! overhead and a scheme's extra instructions over the floor are exact.
//!
//! `ci/instructions.sh` runs it and compares with the recorded counts.

use gungraun::{library_benchmark, library_benchmark_group, main};
use std::hint::black_box;

#[path = "../../common/bare.rs"]
mod bare;
#[path = "../../common/mod.rs"]
mod common;

use bare::{BenchKernel, Floor, Loaded};
use common::Mm;
use lazymm::check::sync::{AtomicUsize, Ordering::Relaxed};
use lazymm::cpu::{AtomicCpuSet, CpuId};
use lazymm::lazy::cached::Cached;
use lazymm::lazy::hazard::{HazardLazy, HazardLazyNoFence};
use lazymm::lazy::loaded::LoadedMm;
use lazymm::lazy::rcu_mm::RcuMm;
use lazymm::lazy::refcount::Refcount;
use lazymm::lazy::shootdown::Shootdown;
use lazymm::lazy::tagged::Tagged;
use lazymm::lazy::LazyMm;
use lazymm::tlb::tlbgen::{LazyTlb, TlbGen};
use lazymm::walk::{BeginOrder, WalkTracker};

type Op = &'static (dyn Fn() + Sync);

fn leak<T>(t: T) -> &'static T {
    Box::leak(Box::new(t))
}

const SLOTS: usize = bare::MAX_THREADS;

/// One same-mm lazy round trip of `S` (as `benches/lazy.rs`).
fn same<S: LazyMm + Default + Sync + 'static>() -> Op {
    let (s, k, l) = (
        leak(S::default()),
        leak(BenchKernel::new(1)),
        leak(Loaded::default()),
    );
    leak(move || bare::round_trip(s, k, l, CpuId::new(0), black_box(Mm(1))))
}

/// One other-mm round trip pair (A -> B -> A) of `S`.
fn other<S: LazyMm + Default + Sync + 'static>() -> Op {
    let (s, k, l) = (
        leak(S::default()),
        leak(BenchKernel::new(1)),
        leak(Loaded::default()),
    );
    leak(move || bare::round_trip_other(s, k, l, CpuId::new(0), black_box(Mm(1)), black_box(Mm(2))))
}

/// One exit (mm_users_zero + final_drop) of `S` at `N` CPU slots, no CPU lazy.
fn exit<S: LazyMm + Default + Sync + 'static, const N: usize>() -> Op {
    let (s, k) = (leak(S::default()), leak(BenchKernel::<N>::new(N)));
    leak(move || {
        s.mm_users_zero(k, CpuId::new(0), black_box(Mm(1)));
        s.final_drop(k, CpuId::new(0), black_box(Mm(1)));
    })
}

/// tlbgen's unlazy into the same mm: `missed` generations behind.
fn unlazy(missed: u64) -> Op {
    let lazy: &LazyTlb<64> = leak(LazyTlb::new());
    let gen = leak(TlbGen::new());
    let mask: &AtomicCpuSet = leak(AtomicCpuSet::new());
    let cpu = CpuId::new(0);
    black_box(lazy.switch_mm_begin(cpu, Mm(0x200), gen, mask, None));
    lazy.switch_mm_end(cpu, Some(Mm(0x200)));
    let now = gen.read();
    leak(move || {
        lazy.enter_lazy_tlb(cpu);
        black_box(lazy.switch_mm_begin(cpu, Mm(0x200), gen, mask, Some(now - missed)));
    })
}

/// A lockless walker's begin + end around nothing.
fn walker(order: BeginOrder) -> Op {
    let t: &WalkTracker<64> = leak(WalkTracker::new(order));
    let word = leak(AtomicUsize::new(0));
    leak(move || {
        t.begin(CpuId::new(0), black_box(Mm(1)));
        black_box(word.load(Relaxed));
        t.end(CpuId::new(0));
    })
}

#[library_benchmark]
#[bench::floor(same::<Floor>())]
#[bench::refcount(same::<Refcount>())]
#[bench::shootdown(same::<Shootdown>())]
#[bench::tagged(same::<Tagged<SLOTS>>())]
#[bench::cached(same::<Cached<SLOTS>>())]
#[bench::hazard(same::<HazardLazy<SLOTS>>())]
#[bench::hazard_nofence(same::<HazardLazyNoFence<SLOTS>>())]
#[bench::loaded_mm(same::<LoadedMm<SLOTS>>())]
#[bench::rcu_mm(same::<RcuMm<SLOTS>>())]
fn round_trip_same_mm(op: Op) {
    op()
}

#[library_benchmark]
#[bench::floor(other::<Floor>())]
#[bench::refcount(other::<Refcount>())]
#[bench::shootdown(other::<Shootdown>())]
#[bench::tagged(other::<Tagged<SLOTS>>())]
#[bench::cached(other::<Cached<SLOTS>>())]
#[bench::hazard(other::<HazardLazy<SLOTS>>())]
#[bench::hazard_nofence(other::<HazardLazyNoFence<SLOTS>>())]
#[bench::loaded_mm(other::<LoadedMm<SLOTS>>())]
#[bench::rcu_mm(other::<RcuMm<SLOTS>>())]
fn round_trip_other_mm(op: Op) {
    op()
}

#[library_benchmark]
#[bench::refcount_64(exit::<Refcount, 64>())]
#[bench::shootdown_64(exit::<Shootdown, 64>())]
#[bench::tagged_64(exit::<Tagged<64>, 64>())]
#[bench::hazard_64(exit::<HazardLazy<64>, 64>())]
#[bench::loaded_mm_64(exit::<LoadedMm<64>, 64>())]
#[bench::rcu_mm_64(exit::<RcuMm<64>, 64>())]
#[bench::shootdown_1024(exit::<Shootdown, 1024>())]
#[bench::tagged_1024(exit::<Tagged<1024>, 1024>())]
#[bench::hazard_1024(exit::<HazardLazy<1024>, 1024>())]
#[bench::loaded_mm_1024(exit::<LoadedMm<1024>, 1024>())]
#[bench::rcu_mm_1024(exit::<RcuMm<1024>, 1024>())]
fn exit_no_cpu_lazy(op: Op) {
    op()
}

#[library_benchmark]
#[bench::up_to_date(unlazy(0))]
#[bench::missed_generation(unlazy(1))]
fn tlb_unlazy_same_mm(op: Op) {
    op()
}

#[library_benchmark]
#[bench::store_mb(walker(BeginOrder::StoreMb))]
#[bench::xchg(walker(BeginOrder::Xchg))]
fn walker_begin_end(op: Op) {
    op()
}

library_benchmark_group!(
    name = hot_paths;
    benchmarks = round_trip_same_mm, round_trip_other_mm, exit_no_cpu_lazy, tlb_unlazy_same_mm, walker_begin_end
);

main!(library_benchmark_groups = hot_paths);
