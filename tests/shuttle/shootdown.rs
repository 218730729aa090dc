//! `shootdown` under shuttle at 8 CPUs.

use crate::common::*;
use lazymm::check::model::MachineBug;
use lazymm::lazy::shootdown::Shootdown;

#[test]
fn shootdown_8_cpus() {
    check_all("shootdown", Shootdown::new);
}

#[test]
#[should_panic(expected = "use-after-free of mm")]
fn bug_hotplug_clears_cpumask() {
    check_bug(Shootdown::new, Some(MachineBug::HotplugClearsCpumask));
}
