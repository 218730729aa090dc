//! `shootdown` (Linux `MMU_LAZY_TLB_SHOOTDOWN`) under loom.

use crate::common::*;
use lazymm::check::model::MachineBug;
use lazymm::lazy::shootdown::Shootdown;

shared_scenarios!(
    passes,
    "shootdown",
    DEFAULT_BOUND,
    lazymm::lazy::shootdown::Shootdown::new,
    THREE_CPU_BOUND,
    lazymm::lazy::shootdown::Shootdown::new
);

#[test]
#[should_panic(expected = "use-after-free of mm0")]
fn bug_hotplug_clears_cpumask() {
    check_machine_bug(
        "shootdown/bug_hotplug_clears_cpumask",
        DEFAULT_BOUND,
        Shootdown::new,
        down_while_lazy,
        MachineBug::HotplugClearsCpumask,
    );
}
