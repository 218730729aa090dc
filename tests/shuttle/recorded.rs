//! Recorded workloads under shuttle: the first events of each trace in
//! `tests/traces/` (real Linux workloads: a cargo build, hackbench, nginx,
//! PostgreSQL, a ping-pong, an idle machine, the ground-truth workload),
//! mapped to the machine (`ReplayPlan`: one script per recorded CPU), run
//! with the CPUs' scripts racing under shuttle's schedulers for every
//! scheme. `tests/trace.rs` replays the same traces in their recorded
//! order; here the order between CPUs is shuttle's.

use crate::common::*;
use lazymm::check::model::{Machine, ReplayPlan, Scenario};
use lazymm::check::sync::thread::Arc;
use lazymm::check::trace::{parse, Story};
use lazymm::lazy::LazyMm;
use std::io::Read;

/// Events taken from the start of each trace.
const WINDOW: usize = 4_000;

/// Each committed trace's first [`WINDOW`] events as a scenario.
fn windows() -> Vec<(String, Scenario)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/traces");
    let Ok(entries) = std::fs::read_dir(dir) else {
        println!("SKIP: no recorded traces in {dir}");
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".trace.gz"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| {
            let mut text = String::new();
            let file = std::fs::File::open(&path).expect("readable");
            flate2::read::GzDecoder::new(file)
                .read_to_string(&mut text)
                .expect("gzip");
            let mut p = parse(&text).expect("parses");
            p.records.truncate(WINDOW);
            let story = Story::new(&p);
            let plan = ReplayPlan::new(&story)?;
            let name = path.file_name()?.to_string_lossy().into_owned();
            Some((name.clone(), plan.scenario?.named(name)))
        })
        .collect()
}

fn recorded<S: LazyMm + Send + Sync + 'static>(name: &str, make: fn() -> S) {
    let n = (iterations() / 10).max(5);
    for (label, scenario) in windows() {
        for report in checker(None).iterations(n).scenario(scenario).run(make) {
            eprintln!("shuttle recorded/{name}/{label}: {report}");
        }
    }
}

#[test]
fn every_scheme_passes_the_recorded_windows() {
    recorded("refcount", lazymm::lazy::refcount::Refcount::new);
    recorded("shootdown", lazymm::lazy::shootdown::Shootdown::new);
    recorded("tagged", lazymm::lazy::tagged::Tagged::<2>::new);
    recorded("cached", lazymm::lazy::cached::Cached::<2>::new);
    recorded("hazard", lazymm::lazy::hazard::HazardLazy::<2>::new);
    recorded(
        "hazard_nofence",
        lazymm::lazy::hazard::HazardLazyNoFence::<2>::new,
    );
    recorded("loaded_mm", lazymm::lazy::loaded::LoadedMm::<2>::new);
    recorded("rcu_mm", lazymm::lazy::rcu_mm::RcuMm::<2>::new);
}

/// The recorded windows reject a known bug: refcount grabbing on every
/// kernel → kernel switch leaks the mm.
#[test]
#[should_panic(expected = "leak")]
fn bug_refcount_transfer_grabs_on_a_recorded_window() {
    use lazymm::lazy::refcount::{Bug, Refcount};
    let (_, scenario) = windows()
        .into_iter()
        .find(|(n, _)| n.starts_with("synthetic"))
        .expect("the synthetic trace is committed");
    run_bug(move || {
        let m = Machine::new(Refcount::with_bug(Bug::TransferGrabs), scenario.clone());
        Machine::run(&Arc::new(m));
    });
}
