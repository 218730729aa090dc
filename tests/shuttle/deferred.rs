//! Final drops deferred out of interrupts-off hooks (`lazy::deferred`) at
//! 8 CPUs: the schemes that drop references in such hooks, on the default
//! random workloads, with the count of deferred drops shown (and checked to
//! be non-zero, so the path is taken).

use crate::common::*;
use lazymm::check::model::MachineBug;
use lazymm::lazy::LazyMm;

fn deferred<S>(name: &str, make: fn() -> S)
where
    S: LazyMm + Send + Sync + 'static,
{
    let mut total = 0;
    for report in checker(None).deferred_drops().run(make) {
        eprintln!("shuttle {name}/deferred: {report}");
        total += report.deferred_drops;
    }
    assert!(total > 0, "{name}: no final drop was deferred");
}

#[test]
fn refcount_8_cpus() {
    deferred("refcount", lazymm::lazy::refcount::Refcount::new);
}

#[test]
fn tagged_8_cpus() {
    deferred("tagged", lazymm::lazy::tagged::Tagged::<8>::new);
}

#[test]
fn cached_8_cpus() {
    deferred("cached", lazymm::lazy::cached::Cached::<8>::new);
}

#[test]
#[should_panic(expected = "leak: mm")]
fn bug_deferred_lost() {
    checker(Some(MachineBug::DeferredLost))
        .deferred_drops()
        .run(lazymm::lazy::refcount::Refcount::new);
}
