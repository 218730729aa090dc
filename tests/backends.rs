//! The library backends (`haphazard`, `epoch_mm`; default features) on the
//! simulated machine with real threads: random workloads against the
//! oracle. Their loom models are `tests/loom/haphazard.rs` and
//! `tests/loom/epoch.rs`.
#![cfg(all(
    feature = "haphazard",
    feature = "epoch",
    not(any(loom, lazymm_shuttle))
))]

use lazymm::check::model::{Machine, Scenario};
use lazymm::check::sync::thread::Arc;
use lazymm::lazy::epoch_mm::EpochMm;
use lazymm::lazy::haphazard::HaphazardLazy;
use lazymm::lazy::LazyMm;

/// 200 random workloads on 2..4 CPUs, 3 mms each: every mm freed once.
fn random_workloads_pass_the_oracle<S: LazyMm + Send + Sync + 'static>(make: fn() -> S) {
    let (mut frees, mut ipis) = (0, 0);
    for seed in 0..200 {
        let cpus = 2 + (seed as usize % 3);
        let m = Arc::new(Machine::new(make(), Scenario::random(seed, cpus, 3, 16)));
        Machine::run(&m);
        let s = m.stats();
        frees += s.frees;
        ipis += s.ipis;
    }
    eprintln!("{}: {frees} mms freed, {ipis} bounded-wait IPIs", S::NAME);
    assert_eq!(frees, 600, "every mm of every run freed once");
}

#[test]
fn haphazard_passes_the_oracle() {
    random_workloads_pass_the_oracle(HaphazardLazy::<4>::new);
}

#[test]
fn epoch_mm_passes_the_oracle() {
    random_workloads_pass_the_oracle(EpochMm::<4>::new);
}
