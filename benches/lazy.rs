//! Criterion benches of the protocol primitives in a production build (no
//! oracle, no counters): each scheme's hooks called the way a kernel calls
//! them, beside the floor (a plain per-CPU store pair).
//!
//! `cargo bench --bench lazy`. Thread scaling uses `iter_custom`: N threads
//! (one CPU slot each), each doing the same fixed number of round trips.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use lazymm::check::sync::Ordering::*;
use lazymm::cpu::{CpuId, PerCpu};
use lazymm::lazy::cached::Cached;
#[cfg(all(feature = "epoch", not(any(loom, lazymm_shuttle))))]
use lazymm::lazy::epoch_mm::EpochMm;
#[cfg(all(feature = "haphazard", not(any(loom, lazymm_shuttle))))]
use lazymm::lazy::haphazard::HaphazardLazy;
use lazymm::lazy::hazard::{HazardLazy, HazardLazyNoFence};
use lazymm::lazy::loaded::LoadedMm;
use lazymm::lazy::rcu_mm::RcuMm;
use lazymm::lazy::refcount::Refcount;
use lazymm::lazy::shootdown::Shootdown;
use lazymm::lazy::tagged::{Options, Tagged};
use lazymm::lazy::{LazyMm, MmHandle};
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

#[path = "common/bare.rs"]
mod bare;
mod common;
use bare::{round_trip, round_trip_other, BenchKernel, Floor, Loaded, MAX_THREADS};
use common::Mm;

const TRIPS_PER_ITER: u64 = 1;

/// Runs `threads` threads; each builds its work with `setup(thread)` (not
/// timed), then all start together; returns the time until the last ends.
fn timed<W: FnOnce()>(
    threads: usize,
    setup: impl Fn(usize) -> W + Send + Sync + 'static,
) -> Duration {
    let setup = Arc::new(setup);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (setup, barrier) = (setup.clone(), barrier.clone());
            std::thread::spawn(move || {
                let work = setup(t);
                barrier.wait();
                work();
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

fn scaled<S: LazyMm + Send + Sync + 'static>(
    threads: usize,
    iters: u64,
    s: Arc<S>,
    other_mm: bool,
) -> Duration {
    let k = Arc::new(BenchKernel::new(threads));
    let loaded: Arc<Loaded> = Arc::new(PerCpu::default());
    timed(threads, move |t| {
        let (k, loaded, s) = (k.clone(), loaded.clone(), s.clone());
        move || {
            let cpu = CpuId::new(t);
            if other_mm {
                // Each call is two round trips; count them as two iterations.
                for _ in 0..iters.div_ceil(2) {
                    round_trip_other(&*s, &k, &loaded, cpu, black_box(Mm(1)), black_box(Mm(2)));
                }
            } else {
                for _ in 0..iters * TRIPS_PER_ITER {
                    round_trip(&*s, &k, &loaded, cpu, black_box(Mm(1)));
                }
            }
        }
    })
}

/// The peers a user would pick instead, one "lazy round trip" each: what
/// it costs to protect an object for the duration of a kernel thread.
#[derive(Clone, Copy)]
enum Peer {
    /// `crossbeam_epoch::pin()` then drop the guard.
    Epoch,
    /// `haphazard`: `protect` then `reset_protection` on a per-thread hazard pointer.
    Haphazard,
    /// `Arc::clone` then drop: a shared counter inc + dec.
    Arc,
}

fn peer_scaled(threads: usize, iters: u64, peer: Peer) -> Duration {
    let shared = Arc::new(7usize);
    let hp_src = Arc::new(haphazard::AtomicPtr::from(Box::new(7usize)));
    timed(threads, move |_| {
        let (shared, hp_src) = (shared.clone(), hp_src.clone());
        let mut hp = haphazard::HazardPointer::new();
        move || {
            for _ in 0..iters {
                match peer {
                    Peer::Epoch => drop(black_box(crossbeam_epoch::pin())),
                    Peer::Haphazard => {
                        black_box(hp_src.safe_load(&mut hp));
                        hp.reset_protection();
                    }
                    Peer::Arc => drop(black_box(Arc::clone(&shared))),
                }
            }
        }
    })
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

fn round_trips(c: &mut Criterion, group: &str, other_mm: bool) {
    let mut g = c.benchmark_group(group);
    for threads in thread_counts() {
        let t = threads;
        g.bench_with_input(BenchmarkId::new("floor", t), &t, |b, &t| {
            b.iter_custom(|n| scaled(t, n, Arc::new(Floor), other_mm))
        });
        g.bench_with_input(BenchmarkId::new("refcount", t), &t, |b, &t| {
            b.iter_custom(|n| scaled(t, n, Arc::new(Refcount::new()), other_mm))
        });
        g.bench_with_input(BenchmarkId::new("shootdown", t), &t, |b, &t| {
            b.iter_custom(|n| scaled(t, n, Arc::new(Shootdown::new()), other_mm))
        });
        g.bench_with_input(BenchmarkId::new("tagged", t), &t, |b, &t| {
            b.iter_custom(|n| scaled(t, n, Arc::new(Tagged::<MAX_THREADS>::new()), other_mm))
        });
        g.bench_with_input(BenchmarkId::new("cached", t), &t, |b, &t| {
            b.iter_custom(|n| scaled(t, n, Arc::new(Cached::<MAX_THREADS>::new()), other_mm))
        });
        g.bench_with_input(BenchmarkId::new("hazard", t), &t, |b, &t| {
            b.iter_custom(|n| scaled(t, n, Arc::new(HazardLazy::<MAX_THREADS>::new()), other_mm))
        });
        g.bench_with_input(BenchmarkId::new("hazard_nofence", t), &t, |b, &t| {
            b.iter_custom(|n| {
                scaled(
                    t,
                    n,
                    Arc::new(HazardLazyNoFence::<MAX_THREADS>::new()),
                    other_mm,
                )
            })
        });
        g.bench_with_input(BenchmarkId::new("loaded_mm", t), &t, |b, &t| {
            b.iter_custom(|n| scaled(t, n, Arc::new(LoadedMm::<MAX_THREADS>::new()), other_mm))
        });
        g.bench_with_input(BenchmarkId::new("rcu_mm", t), &t, |b, &t| {
            b.iter_custom(|n| scaled(t, n, Arc::new(RcuMm::<MAX_THREADS>::new()), other_mm))
        });
        // The library backends, beside the schemes they mirror.
        #[cfg(all(feature = "haphazard", not(any(loom, lazymm_shuttle))))]
        g.bench_with_input(BenchmarkId::new("haphazard", t), &t, |b, &t| {
            b.iter_custom(|n| {
                scaled(
                    t,
                    n,
                    Arc::new(HaphazardLazy::<MAX_THREADS>::new()),
                    other_mm,
                )
            })
        });
        #[cfg(all(feature = "epoch", not(any(loom, lazymm_shuttle))))]
        g.bench_with_input(BenchmarkId::new("epoch_mm", t), &t, |b, &t| {
            b.iter_custom(|n| scaled(t, n, Arc::new(EpochMm::<MAX_THREADS>::new()), other_mm))
        });
        if !other_mm {
            for (name, peer) in [
                ("peer_crossbeam_epoch", Peer::Epoch),
                ("peer_haphazard", Peer::Haphazard),
                ("peer_arc", Peer::Arc),
            ] {
                g.bench_with_input(BenchmarkId::new(name, t), &t, |b, &t| {
                    b.iter_custom(|n| peer_scaled(t, n, peer))
                });
            }
        }
    }
    g.finish();
}

fn lazy_round_trip(c: &mut Criterion) {
    round_trips(c, "lazy_round_trip_same_mm", false);
    round_trips(c, "lazy_round_trip_other_mm", true);
}

/// Lutomirski's exit fixup at 64..1024 CPUs, every CPU in the cpumask (an
/// arch that does not trim it, like arm64's for_each_online_cpu) and a share
/// of them lazy on the mm: the mockup (check + one grab per CPU), without
/// the check, and with the batched grab.
fn exit_fixup(c: &mut Criterion) {
    const CPUS: usize = 1024;
    let mut g = c.benchmark_group("exit_fixup");
    for cpus in [64usize, 256, 1024] {
        for lazy_pct in [0usize, 10] {
            let lazy = cpus * lazy_pct / 100;
            for (name, opts) in [
                ("mockup", Options::MOCKUP),
                (
                    "no_check",
                    Options {
                        check_before_cmpxchg: false,
                        batch_grab: false,
                    },
                ),
                (
                    "batch",
                    Options {
                        check_before_cmpxchg: true,
                        batch_grab: true,
                    },
                ),
            ] {
                let k = BenchKernel::<CPUS>::new(cpus);
                for i in 0..cpus {
                    k.cpumask.insert(CpuId::new(i), Relaxed);
                }
                let t: Box<Tagged<CPUS>> = Box::new(Tagged::with_options(opts));
                let mm = Mm(1);
                let id = BenchmarkId::new(format!("{name}/{lazy_pct}pct_lazy"), cpus);
                g.bench_with_input(id, &cpus, |b, _| {
                    b.iter_batched(
                        || {
                            // The CPUs spread evenly are lazy on the mm (untagged).
                            for i in 0..cpus {
                                let w = if lazy > 0 && i % (cpus / lazy) == 0 {
                                    mm.to_word()
                                } else {
                                    0
                                };
                                t.word(CpuId::new(i)).store(w, Relaxed);
                            }
                        },
                        |_| t.mm_users_zero(&k, CpuId::new(0), black_box(mm)),
                        // PerIteration: the setup re-arms the shared words, so
                        // it must run right before each fixup (adds the
                        // timer's overhead, tens of ns, to every sample).
                        criterion::BatchSize::PerIteration,
                    )
                });
            }
        }
    }
    g.finish();
}

/// The final drop's scheme work when no CPU holds the mm lazily: for
/// shootdown, reading the cpumask and sending no IPI.
fn final_drop(c: &mut Criterion) {
    let mut g = c.benchmark_group("final_drop_none_lazy");
    for cpus in [64usize, 256, 1024] {
        match cpus {
            64 => per_cpu_scans::<64>(&mut g, &BenchKernel::new(cpus)),
            256 => per_cpu_scans::<256>(&mut g, &BenchKernel::new(cpus)),
            _ => per_cpu_scans::<1024>(&mut g, &BenchKernel::new(cpus)),
        }
    }
    g.finish();
}

/// The hazard and loaded_mm final drops read one word per possible CPU.
fn per_cpu_scans<const N: usize>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    k: &BenchKernel<N>,
) {
    g.bench_with_input(BenchmarkId::new("shootdown", N), &N, |b, _| {
        b.iter(|| Shootdown::new().final_drop(k, CpuId::new(0), black_box(Mm(1))))
    });
    g.bench_with_input(BenchmarkId::new("refcount", N), &N, |b, _| {
        b.iter(|| Refcount::new().final_drop(k, CpuId::new(0), black_box(Mm(1))))
    });
    let h: Box<HazardLazy<N>> = Box::new(HazardLazy::new());
    g.bench_with_input(BenchmarkId::new("hazard", N), &N, |b, _| {
        b.iter(|| h.final_drop(k, CpuId::new(0), black_box(Mm(1))))
    });
    let l: Box<LoadedMm<N>> = Box::new(LoadedMm::new());
    g.bench_with_input(BenchmarkId::new("loaded_mm", N), &N, |b, _| {
        b.iter(|| l.final_drop(k, CpuId::new(0), black_box(Mm(1))))
    });
    // rcu_mm: every CPU idle (on the kernel's mm), so the final drop's grace
    // period ends without an IPI: one start and one end of the machinery,
    // each reading one counter per possible CPU.
    let r: Box<RcuMm<N>> = Box::new(RcuMm::new());
    let before = r.grace_periods();
    for _ in 0..1000 {
        r.final_drop(k, CpuId::new(0), Mm(1));
    }
    eprintln!(
        "final_drop_none_lazy/rcu_mm/{N}: {:.2} grace periods per free",
        (r.grace_periods() - before) as f64 / 1000.0
    );
    g.bench_with_input(BenchmarkId::new("rcu_mm", N), &N, |b, _| {
        b.iter(|| r.final_drop(k, CpuId::new(0), black_box(Mm(1))))
    });
    // The library backends: haphazard retires and reclaims (its scan reads
    // every hazard record); crossbeam-epoch defers and pins-and-flushes.
    #[cfg(all(feature = "haphazard", not(any(loom, lazymm_shuttle))))]
    {
        let hp: Box<HaphazardLazy<N>> = Box::new(HaphazardLazy::new());
        g.bench_with_input(BenchmarkId::new("haphazard", N), &N, |b, _| {
            b.iter(|| hp.final_drop(k, CpuId::new(0), black_box(Mm(1))))
        });
    }
    #[cfg(all(feature = "epoch", not(any(loom, lazymm_shuttle))))]
    {
        let e: Box<EpochMm<N>> = Box::new(EpochMm::new());
        g.bench_with_input(BenchmarkId::new("epoch_mm", N), &N, |b, _| {
            b.iter(|| e.final_drop(k, CpuId::new(0), black_box(Mm(1))))
        });
    }
}

/// The peer's exit-to-free: `crossbeam-epoch` defers a destructor, then
/// the thread pins and flushes until it ran (one thread: no other pins
/// hold the epoch back).
fn epoch_defer_to_free(c: &mut Criterion) {
    use std::sync::atomic::AtomicBool;
    let mut g = c.benchmark_group("final_drop_none_lazy");
    let mut flushes = 0u64;
    let mut frees = 0u64;
    g.bench_function("peer_crossbeam_epoch_defer_to_free", |b| {
        b.iter(|| {
            let ran = Arc::new(AtomicBool::new(false));
            let r = ran.clone();
            let guard = crossbeam_epoch::pin();
            guard.defer(move || r.store(true, Relaxed));
            drop(guard);
            while !ran.load(Relaxed) {
                crossbeam_epoch::pin().flush();
                flushes += 1;
            }
            frees += 1;
        })
    });
    eprintln!(
        "final_drop_none_lazy/peer_crossbeam_epoch_defer_to_free: {:.1} pin+flush rounds per free",
        flushes as f64 / frees.max(1) as f64
    );
    g.finish();
}

criterion_group!(
    benches,
    lazy_round_trip,
    exit_fixup,
    final_drop,
    epoch_defer_to_free
);
criterion_main!(benches);
