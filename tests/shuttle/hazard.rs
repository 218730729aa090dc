//! `hazard` (Desnoyers' hazard-pointer lazy mm) under shuttle at 8 CPUs.

use crate::common::*;
use lazymm::lazy::hazard::HazardLazy;

#[test]
fn hazard_8_cpus() {
    check_all("hazard", HazardLazy::<8>::new);
}

#[test]
fn hazard_nofence_8_cpus() {
    check_all(
        "hazard_nofence",
        lazymm::lazy::hazard::HazardLazyNoFence::<8>::new,
    );
}
