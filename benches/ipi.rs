//! The cost of a real IPI on this machine (criterion group `ipi`), the
//! input the lifetime question needs: "an xchg on every unlazy vs one IPI
//! per exit" (Zijlstra) and "IPIs = scary expensive might not be correct"
//! (Piggin).
//!
//! * `ipi/membarrier/K`: `membarrier(PRIVATE_EXPEDITED)` with `K` busy
//!   threads pinned to `K` other CPUs: one IPI round to `K` CPUs and the
//!   wait for all of them. `K = 0` is the syscall alone (no IPI): the
//!   IPI's own cost is `K = 1` minus `K = 0`.
//! * `ipi/signal_round_trip_upper_bound/1`: a signal to one busy pinned
//!   thread, acknowledged through an atomic: a targeted IPI plus the signal
//!   machinery, an upper bound.
//!
//! `cargo bench --bench ipi`. Linux only; prints `SKIP:` and the reason
//! where membarrier, the signal or pinning is refused, or there is one CPU.

use criterion::{criterion_group, criterion_main, Criterion};

#[cfg(all(target_os = "linux", not(any(loom, lazymm_shuttle))))]
#[path = "common/ipi.rs"]
mod ipi;

#[cfg(all(target_os = "linux", not(any(loom, lazymm_shuttle))))]
fn ipi_group(c: &mut Criterion) {
    use criterion::BenchmarkId;
    let cpus = ipi::allowed_cpus();
    if cpus.len() < 2 {
        println!(
            "SKIP: ipi: needs 2 CPUs, this process may use {}",
            cpus.len()
        );
        return;
    }
    if let Err(e) = ipi::membarrier_register().and_then(|()| ipi::install_ack_handler()) {
        println!("SKIP: ipi: {e}");
        return;
    }
    if !ipi::pin(cpus[0]) {
        println!(
            "SKIP: ipi: could not pin the benchmark thread to CPU {}",
            cpus[0]
        );
        return;
    }
    let mut g = c.benchmark_group("ipi");
    for k in 0..cpus.len() {
        let busy = match ipi::Busy::start(&cpus[1..=k]) {
            Ok(b) => b,
            Err(e) => {
                println!("SKIP: ipi/membarrier/{k}: {e}");
                continue;
            }
        };
        g.bench_with_input(BenchmarkId::new("membarrier", k), &k, |b, _| {
            b.iter(ipi::membarrier_expedited)
        });
        if k == 1 {
            g.bench_with_input(
                BenchmarkId::new("signal_round_trip_upper_bound", 1),
                &1,
                |b, _| b.iter(|| busy.signal_round_trip(0)),
            );
        }
        drop(busy);
    }
    g.finish();
}

#[cfg(not(all(target_os = "linux", not(any(loom, lazymm_shuttle)))))]
fn ipi_group(_c: &mut Criterion) {
    println!("SKIP: ipi: needs Linux (membarrier) and a build without the checkers' cfgs");
}

criterion_group!(benches, ipi_group);
criterion_main!(benches);
