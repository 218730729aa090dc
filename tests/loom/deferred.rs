//! Final drops deferred out of interrupts-off hooks (`lazy::deferred`, the
//! `mmdrop_sched()` shape) under loom: the standard scenarios on a machine
//! that defers every final drop reached inside an interrupts-off hook to the
//! CPU's next interrupts-enabled point. Only the schemes that drop
//! references in such hooks (refcount and tagged in `mmdrop_lazy_tlb`, cached in
//! `switched_mm` and `mmdrop_lazy_tlb`) ever defer; each test also checks that some
//! execution did, so the deferred path is known to be taken.

use crate::common::*;
use lazymm::check::model::harness::{standard_bound, standard_scenarios};
use lazymm::check::model::MachineBug;
use lazymm::lazy::LazyMm;

/// Every standard scenario with deferred drops; returns the deferred drops
/// over all executions.
fn deferred<S>(name: &str, make: fn() -> S) -> usize
where
    S: LazyMm + Send + Sync + 'static,
{
    let mut total = 0;
    for (scenario, s) in standard_scenarios() {
        let label = format!("{name}/deferred/{scenario}");
        let report = loom_check(&label, standard_bound(&s))
            .deferred_drops()
            .run(make, s);
        eprintln!("loom {label}: {report}");
        total += report.deferred_drops;
    }
    assert!(total > 0, "{name}: no final drop was deferred");
    total
}

#[test]
fn refcount_passes() {
    deferred("refcount", lazymm::lazy::refcount::Refcount::new);
}

#[test]
fn tagged_passes() {
    deferred("tagged", lazymm::lazy::tagged::Tagged::<3>::new);
}

#[test]
fn cached_passes() {
    deferred("cached", lazymm::lazy::cached::Cached::<3>::new);
}

/// The check sees deferred drops: a drain that loses its list leaks.
#[test]
#[should_panic(expected = "leak: mm0 was never freed")]
fn bug_deferred_lost() {
    let report = loom_check("refcount/bug_deferred_lost", DEFAULT_BOUND)
        .deferred_drops()
        .machine_bug(MachineBug::DeferredLost)
        .run(
            lazymm::lazy::refcount::Refcount::new,
            exit_lazy_vs_final_drop(),
        );
    eprintln!("loom refcount/bug_deferred_lost: {report}");
}
