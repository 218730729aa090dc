//! `epoch_mm` (feature `epoch`) on the simulated machine with real threads:
//! random workloads against the oracle.
#![cfg(all(feature = "epoch", not(any(loom, lazymm_shuttle))))]

use lazymm::check::model::{Machine, Scenario};
use lazymm::check::sync::thread::Arc;
use lazymm::lazy::epoch_mm::EpochMm;

#[test]
fn random_workloads_pass_the_oracle() {
    let (mut frees, mut ipis) = (0, 0);
    for seed in 0..200 {
        let cpus = 2 + (seed as usize % 3);
        let scenario = Scenario::random(seed, cpus, 3, 16);
        let m = Arc::new(Machine::new(EpochMm::<4>::new(), scenario));
        Machine::run(&m);
        let s = m.stats();
        frees += s.frees;
        ipis += s.ipis;
    }
    eprintln!("epoch_mm: {frees} mms freed, {ipis} bounded-wait IPIs");
    assert_eq!(frees, 600, "every mm of every run freed once");
}
