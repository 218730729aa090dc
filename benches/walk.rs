//! Criterion benches of the lockless-walker protocol (`lazymm::walk`) and
//! the RCU quiescent-state report (`lazymm::reclaim::rcu`), production build.
//!
//! `cargo bench --bench walk`.
//!
//! * `walk_overhead`: a walk (one PMD read, then `PTES` PTE reads) bare —
//!   interrupts off is free here — against the same walk bracketed by
//!   [`WalkTracker::begin`]/[`end`](WalkTracker::end) (store + `smp_mb`, or
//!   one `xchg`), and against an RCU quiescent-state report per walk.
//! * `walk_sync_scan`: the targeted sync's scan of one marker word per
//!   possible CPU (64, 256, 1024) with none or one in eight CPUs walking the
//!   mm. The IPIs it sends — the walkers — are printed beside the
//!   broadcast's `N - 1`; an IPI's cost is the platform's, not measured here.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use lazymm::check::sync::{AtomicUsize, Ordering::*};
use lazymm::cpu::{CpuId, CpuSet};
use lazymm::reclaim::rcu::Rcu;
use lazymm::walk::{BeginOrder, WalkTracker};
use std::hint::black_box;

mod common;
use common::Mm;

/// PTEs read per walk (GUP-fast of 8 pages reads 8 PTEs of one table).
const PTES: usize = 8;

struct Table {
    pmd: AtomicUsize,
    ptes: [AtomicUsize; 64],
}

impl Table {
    fn new() -> Self {
        Self {
            pmd: AtomicUsize::new(0),
            ptes: core::array::from_fn(|i| AtomicUsize::new((i * 4096) | 1)),
        }
    }

    #[inline]
    fn walk(&self) -> usize {
        let base = self.pmd.load(Relaxed);
        let mut acc = 0;
        for i in 0..PTES {
            acc ^= self.ptes[(base + i) & 63].load(Relaxed);
        }
        acc
    }
}

fn walk_overhead(c: &mut Criterion) {
    let mut g = c.benchmark_group("walk_overhead");
    let t = Table::new();
    let cpu = CpuId::new(0);
    g.bench_function("bare", |b| b.iter(|| black_box(t.walk())));
    for (name, order) in [
        ("store_mb", BeginOrder::StoreMb),
        ("xchg", BeginOrder::Xchg),
    ] {
        let tracker: Box<WalkTracker<64>> = Box::new(WalkTracker::new(order));
        g.bench_function(name, |b| {
            b.iter(|| {
                tracker.begin(cpu, black_box(Mm(1)));
                let v = t.walk();
                tracker.end(cpu);
                black_box(v)
            })
        });
    }
    let rcu: Box<Rcu<64>> = Box::new(Rcu::new());
    rcu.idle_exit(cpu);
    g.bench_function("rcu_quiescent", |b| {
        b.iter(|| {
            let v = t.walk();
            rcu.quiescent(cpu);
            black_box(v)
        })
    });
    g.finish();
}

fn walk_sync_scan(c: &mut Criterion) {
    let mut g = c.benchmark_group("walk_sync_scan");
    for cpus in [64usize, 256, 1024] {
        match cpus {
            64 => scan::<64>(&mut g),
            256 => scan::<256>(&mut g),
            _ => scan::<1024>(&mut g),
        }
    }
    g.finish();
}

fn scan<const N: usize>(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    for share in [0usize, 8] {
        let tracker: Box<WalkTracker<N>> = Box::new(WalkTracker::new(BeginOrder::StoreMb));
        let walkers = N.checked_div(share).unwrap_or(0);
        // CPUs 1, 1 + share, ... are inside a walk of the mm.
        for i in 0..walkers {
            tracker.begin(CpuId::new(1 + i * share), Mm(1));
        }
        let mut probe = CpuSet::new();
        tracker.sync_targets(Mm(1), N, &mut probe);
        eprintln!(
            "walk_sync_scan/{N} CPUs, {walkers} walking: targeted sync IPIs {}, broadcast IPIs {}",
            probe.len(),
            N - 1
        );
        let id = format!("targeted_{}_walking", walkers);
        g.bench_with_input(BenchmarkId::new(id, N), &N, |b, _| {
            b.iter(|| {
                let mut t = CpuSet::new();
                tracker.sync_targets(black_box(Mm(1)), N, &mut t);
                black_box(t.len())
            })
        });
    }
}

criterion_group!(benches, walk_overhead, walk_sync_scan);
criterion_main!(benches);
