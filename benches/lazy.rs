//! Criterion benches of the protocol primitives in a production build (no
//! oracle, no counters): each scheme's hooks called the way a kernel calls
//! them, beside the floor (a plain per-CPU store pair).
//!
//! `cargo bench --bench lazy`. Thread scaling uses `iter_custom`: N threads
//! (one CPU slot each), each doing the same fixed number of round trips.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use lazymm::cpu::{AtomicCpuSet, CpuId, CpuSet, PerCpu};
use lazymm::refcount::Refcount;
use lazymm::scheme::{Kernel, LazyMm, MmHandle};
use lazymm::shootdown::Shootdown;
use lazymm::sync::{AtomicUsize, Ordering::*};
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// A bench "mm": a pointer-like handle (the address of a static-ish struct).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Mm(usize);

impl MmHandle for Mm {
    fn to_word(self) -> usize {
        self.0 << 3
    }
    fn from_word(w: usize) -> Self {
        Mm(w >> 3)
    }
}

/// The least a kernel does: counts on the mm, a cpumask, per-CPU loaded_mm.
struct BenchKernel {
    count: AtomicUsize,
    cpumask: AtomicCpuSet,
    nr_cpus: usize,
}

impl BenchKernel {
    fn new(nr_cpus: usize) -> Self {
        Self {
            count: AtomicUsize::new(1),
            cpumask: AtomicCpuSet::new(),
            nr_cpus,
        }
    }
}

impl Kernel for BenchKernel {
    type Mm = Mm;
    #[inline]
    fn mmgrab(&self, _cpu: CpuId, _mm: Mm) {
        self.count.fetch_add(1, Relaxed);
    }
    #[inline]
    fn mmdrop(&self, _cpu: CpuId, _mm: Mm) {
        // The final drop never happens in these loops (the users' ref stays).
        self.count.fetch_sub(1, AcqRel);
    }
    fn mm_users(&self, _mm: Mm) -> usize {
        1
    }
    fn mm_cpumask(&self, _mm: Mm) -> CpuSet {
        self.cpumask.snapshot(self.nr_cpus, Acquire)
    }
    fn shoot_lazies(&self, _cpu: CpuId, cpus: &CpuSet, _mm: Mm) {
        black_box(cpus.len());
    }
}

const TRIPS_PER_ITER: u64 = 1;
const MAX_THREADS: usize = 64;

/// Per-CPU `loaded_mm` words: the floor's stores.
type Loaded = PerCpu<AtomicUsize, MAX_THREADS>;

/// One lazy round trip: enter lazy (user -> kernel thread) and leave it
/// (kernel thread -> the same user mm), around the per-CPU stores every
/// kernel does anyway.
#[inline]
fn round_trip<S: LazyMm<BenchKernel>>(s: &S, k: &BenchKernel, loaded: &Loaded, cpu: CpuId, mm: Mm) {
    let slot = loaded.get(cpu);
    slot.store(0, Relaxed); // is_lazy = true
    s.enter_lazy(k, cpu, mm);
    slot.store(mm.to_word(), Relaxed); // is_lazy = false
    s.leave_lazy(k, cpu, mm, Some(mm));
}

/// The floor: the plain per-CPU store pair alone.
struct Floor;
impl LazyMm<BenchKernel> for Floor {
    const NAME: &'static str = "floor";
    #[inline]
    fn enter_lazy(&self, _k: &BenchKernel, _cpu: CpuId, _mm: Mm) {}
    #[inline]
    fn leave_lazy(&self, _k: &BenchKernel, _cpu: CpuId, _mm: Mm, _next: Option<Mm>) {}
}

fn scaled<S: LazyMm<BenchKernel> + Send + Sync + 'static>(
    threads: usize,
    iters: u64,
    s: Arc<S>,
) -> Duration {
    let k = Arc::new(BenchKernel::new(threads));
    let loaded: Arc<Loaded> = Arc::new(PerCpu::default());
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (k, loaded, barrier, s) = (k.clone(), loaded.clone(), barrier.clone(), s.clone());
            std::thread::spawn(move || {
                let cpu = CpuId::new(t);
                barrier.wait();
                for _ in 0..iters * TRIPS_PER_ITER {
                    round_trip(&*s, &k, &loaded, cpu, black_box(Mm(1)));
                }
                barrier.wait();
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    barrier.wait();
    let t = start.elapsed();
    for h in handles {
        h.join().unwrap();
    }
    t
}

fn thread_counts() -> Vec<usize> {
    let n = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(MAX_THREADS);
    let mut v = vec![1];
    while *v.last().unwrap() * 2 <= n {
        v.push(v.last().unwrap() * 2);
    }
    if *v.last().unwrap() != n {
        v.push(n);
    }
    v
}

fn lazy_round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("lazy_round_trip_same_mm");
    for threads in thread_counts() {
        g.bench_with_input(BenchmarkId::new("floor", threads), &threads, |b, &t| {
            b.iter_custom(|iters| scaled(t, iters, Arc::new(Floor)))
        });
        g.bench_with_input(BenchmarkId::new("refcount", threads), &threads, |b, &t| {
            b.iter_custom(|iters| scaled(t, iters, Arc::new(Refcount::new())))
        });
        g.bench_with_input(BenchmarkId::new("shootdown", threads), &threads, |b, &t| {
            b.iter_custom(|iters| scaled(t, iters, Arc::new(Shootdown::new())))
        });
    }
    g.finish();
}

/// The final drop's scheme work when no CPU holds the mm lazily: for
/// shootdown, reading the cpumask and sending no IPI.
fn final_drop(c: &mut Criterion) {
    let mut g = c.benchmark_group("final_drop_none_lazy");
    for cpus in [64usize, 256, 1024] {
        let k = BenchKernel::new(cpus);
        g.bench_with_input(BenchmarkId::new("shootdown", cpus), &cpus, |b, _| {
            b.iter(|| Shootdown::new().final_drop(&k, CpuId::new(0), black_box(Mm(1))))
        });
        g.bench_with_input(BenchmarkId::new("refcount", cpus), &cpus, |b, _| {
            b.iter(|| Refcount::new().final_drop(&k, CpuId::new(0), black_box(Mm(1))))
        });
    }
    g.finish();
}

criterion_group!(benches, lazy_round_trip, final_drop);
criterion_main!(benches);
