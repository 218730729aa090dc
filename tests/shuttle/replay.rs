//! Failing schedules kept as replay regressions.
//!
//! A shuttle failure prints `failing schedule: "..."`. Save the string under
//! `tests/shuttle/schedules/` and replay it here: the replay reruns the same
//! random workload (it is drawn from shuttle's replayable randomness) under
//! the same interleaving, so the failure reproduces exactly.

use crate::common::checker;
use lazymm::check::model::MachineBug;
use lazymm::lazy::shootdown::Shootdown;

fn schedule(name: &str) -> String {
    format!(
        "{}/tests/shuttle/schedules/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The schedule in which PCT first found the hotplug bug: cpu2 went down
/// lazy on mm1 after clearing itself from the cpumask, and cpu0's final drop
/// freed mm1 without shooting it.
#[test]
#[should_panic(expected = "use-after-free of mm1: freed on cpu0 while cpu2 still has it loaded")]
fn replay_shootdown_bug_hotplug_uaf() {
    // Recorded before random workloads migrated tasks: replayed on the
    // workload it was recorded with.
    shuttle::replay_from_file(
        checker(Some(MachineBug::HotplugClearsCpumask))
            .without_migration()
            .execution(Shootdown::new),
        schedule("shootdown_bug_hotplug_uaf.txt"),
    );
}

/// The same schedule with the fix (CPU down switches to init_mm first)
/// passes: the regression is the bug, not the schedule.
#[test]
fn replay_shootdown_hotplug_fixed() {
    // A schedule replays only against the program that produced it; with
    // the fix the interleaving diverges, which shuttle reports as a
    // mismatch rather than a pass, so run the fixed program under the
    // same scheduler family instead.
    crate::common::check_bug(Shootdown::new, None);
}
