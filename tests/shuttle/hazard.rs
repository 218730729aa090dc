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

/// The fence-free scheme's slot cleared before the CPU loads the next mm
/// (`Bug::ClearBeforeLoad`): the final drop frees an mm a CPU still has
/// loaded.
#[test]
#[should_panic(expected = "still has it loaded")]
fn bug_nofence_clear_before_load() {
    check_bug(
        || {
            lazymm::lazy::hazard::HazardLazyNoFence::<8>::with_bug(
                lazymm::lazy::hazard::Bug::ClearBeforeLoad,
            )
        },
        None,
    );
}
