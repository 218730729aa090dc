//! Criterion benches of the lazy-TLB protocol (`lazymm::tlb::tlbgen`) and the
//! batched-flush word (`lazymm::tlb::batched`), production build.
//!
//! `cargo bench --bench tlb`.
//!
//! * `unlazy`: a kernel thread borrows the mm and the CPU switches back to
//!   the same mm (`enter_lazy_tlb` + `switch_mm_begin`), with the context up to
//!   date (keeps its TLB) and with a generation missed while lazy (must
//!   flush: the protocol's side only; the hardware flush itself — a CR3
//!   reload, hundreds of cycles and the refills — is not in it). Beside it,
//!   the switch in from another mm with the cpumask bit already set (the
//!   `smp_mb()` of `83b0177a6c48`).
//! * `flush_targets`: a flush's `tlb_gen` increment plus its scan of the
//!   cpumask at 64, 256 and 1024 CPUs, every CPU running the mm and a share
//!   of them lazy (0%, 50%, 90%); the IPIs sent and saved are printed.
//! * `batched`: `set_pending` and a `flush_pending` that finds nothing.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use lazymm::check::sync::Ordering::*;
use lazymm::cpu::{AtomicCpuSet, CpuId, CpuSet};
use lazymm::tlb::batched::FlushBatched;
use lazymm::tlb::tlbgen::{FlushScope, LazyTlb, TlbGen};
use std::hint::black_box;

mod common;
use common::Mm;

/// The mm of every flush here (word 0x1000, as before).
const MM: Mm = Mm(0x200);

fn unlazy(c: &mut Criterion) {
    let mut g = c.benchmark_group("unlazy");
    let cpu = CpuId::new(0);
    let lazy: Box<LazyTlb<64>> = Box::new(LazyTlb::new());
    let gen = TlbGen::new();
    let mask: AtomicCpuSet = AtomicCpuSet::new();
    let first = lazy.switch_mm_begin(cpu, MM, &gen, &mask, None);
    black_box(first);
    lazy.switch_mm_end(cpu, Some(MM));
    let now = gen.read();
    g.bench_function("same_mm_up_to_date", |b| {
        b.iter(|| {
            lazy.enter_lazy_tlb(cpu);
            black_box(lazy.switch_mm_begin(cpu, MM, &gen, &mask, Some(now)))
        })
    });
    g.bench_function("same_mm_missed_generation", |b| {
        b.iter(|| {
            lazy.enter_lazy_tlb(cpu);
            black_box(lazy.switch_mm_begin(cpu, MM, &gen, &mask, Some(now - 1)))
        })
    });
    g.bench_function("other_mm_bit_already_set", |b| {
        b.iter(|| {
            lazy.switch_mm_begin_init(cpu);
            lazy.switch_mm_end::<Mm>(cpu, None);
            let s = lazy.switch_mm_begin(cpu, MM, &gen, &mask, Some(now));
            lazy.switch_mm_end(cpu, Some(MM));
            black_box(s)
        })
    });
    g.finish();
}

fn flush_targets(c: &mut Criterion) {
    let mut g = c.benchmark_group("flush_targets");
    for cpus in [64usize, 256, 1024] {
        match cpus {
            64 => targets::<64>(&mut g),
            256 => targets::<256>(&mut g),
            _ => targets::<1024>(&mut g),
        }
    }
    g.finish();
}

fn targets<const N: usize>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
) {
    for lazy_pct in [0usize, 50, 90] {
        let lazy: Box<LazyTlb<N>> = Box::new(LazyTlb::new());
        let gen = TlbGen::new();
        let mask: AtomicCpuSet = AtomicCpuSet::new();
        for c in 0..N {
            let cpu = CpuId::new(c);
            lazy.switch_mm_begin(cpu, MM, &gen, &mask, None);
            lazy.switch_mm_end(cpu, Some(MM));
            if c * 100 < lazy_pct * N {
                lazy.enter_lazy_tlb(cpu);
            }
        }
        let snapshot = mask.snapshot(N, Relaxed);
        let mut probe = CpuSet::new();
        let saved = lazy.flush_targets(
            CpuId::new(0),
            FlushScope::Mm(MM),
            &snapshot,
            false,
            &mut probe,
        );
        eprintln!(
            "flush_targets/{N} CPUs, {lazy_pct}% lazy: {} IPIs sent, {saved} saved by lazy skipping",
            probe.len()
        );
        g.bench_with_input(
            BenchmarkId::new(format!("{lazy_pct}pct_lazy"), N),
            &N,
            |b, _| {
                b.iter(|| {
                    black_box(gen.inc());
                    let m = mask.snapshot(N, Relaxed);
                    let mut t = CpuSet::new();
                    black_box(lazy.flush_targets(
                        CpuId::new(0),
                        FlushScope::Mm(MM),
                        &m,
                        false,
                        &mut t,
                    ));
                    black_box(t.len())
                })
            },
        );
    }
}

fn batched(c: &mut Criterion) {
    let mut g = c.benchmark_group("batched");
    let b = FlushBatched::new();
    g.bench_function("set_pending", |bn| bn.iter(|| b.set_pending()));
    let idle = FlushBatched::new();
    g.bench_function("flush_pending_nothing_pending", |bn| {
        bn.iter(|| black_box(idle.flush_pending(|| unreachable!())))
    });
    g.finish();
}

criterion_group!(benches, unlazy, flush_targets, batched);
criterion_main!(benches);
