//! `shootdown` (Linux `MMU_LAZY_TLB_SHOOTDOWN`) under loom.

use crate::common::*;
use lazymm::model::MachineBug;
use lazymm::shootdown::Shootdown;

fn ok() -> Shootdown {
    Shootdown::new()
}

#[test]
fn round_trip_vs_exit_passes() {
    check(
        "shootdown/round_trip_vs_exit",
        DEFAULT_BOUND,
        ok,
        round_trip_vs_exit,
    );
}

#[test]
fn exit_lazy_vs_final_drop_passes() {
    check(
        "shootdown/exit_lazy_vs_final_drop",
        DEFAULT_BOUND,
        ok,
        exit_lazy_vs_final_drop,
    );
}

#[test]
fn kthread_transfer_passes() {
    check(
        "shootdown/kthread_transfer",
        DEFAULT_BOUND,
        ok,
        kthread_transfer,
    );
}

#[test]
fn down_while_lazy_passes() {
    check(
        "shootdown/down_while_lazy",
        DEFAULT_BOUND,
        ok,
        down_while_lazy,
    );
}

#[test]
fn crossing_drops_passes() {
    check(
        "shootdown/crossing_drops",
        DEFAULT_BOUND,
        ok,
        crossing_drops,
    );
}

#[test]
fn three_cpus_passes() {
    check("shootdown/three_cpus", THREE_CPU_BOUND, ok, three_cpus);
}

#[test]
#[should_panic(expected = "use-after-free of mm0")]
fn bug_hotplug_clears_cpumask() {
    check_machine_bug(
        "shootdown/bug_hotplug_clears_cpumask",
        DEFAULT_BOUND,
        ok,
        down_while_lazy,
        MachineBug::HotplugClearsCpumask,
    );
}
