//! The haphazard-backed hazard-pointer scheme (feature `haphazard`) on the
//! simulated machine with real threads: random workloads against the
//! oracle, and its bug variants caught there too (`bug-variants`).
#![cfg(all(feature = "haphazard", not(any(loom, lazymm_shuttle))))]

use lazymm::check::model::{Machine, Scenario};
use lazymm::check::sync::thread::Arc;
use lazymm::lazy::haphazard::HaphazardLazy;

#[test]
fn random_workloads_pass_the_oracle() {
    let (mut frees, mut ipis) = (0, 0);
    for seed in 0..200 {
        let cpus = 2 + (seed as usize % 3);
        let scenario = Scenario::random(seed, cpus, 3, 16);
        let m = Arc::new(Machine::new(HaphazardLazy::<4>::new(), scenario));
        Machine::run(&m);
        let s = m.stats();
        frees += s.frees;
        ipis += s.ipis;
    }
    eprintln!("haphazard: {frees} mms freed, {ipis} bounded-wait IPIs");
    assert_eq!(frees, 600, "every mm of every run freed once");
}
