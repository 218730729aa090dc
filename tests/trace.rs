//! Real workloads on every CI run, root or not: the recorded windows in
//! `tests/traces/` (from `examples/record`, one per workload of
//! BENCHMARKS.md, plus the ground-truth `synthetic` one) are parsed,
//! reconstructed and replayed through every scheme under the machine's
//! oracle; the synthetic one must match its ground truth exactly.
//! `LAZYMM_TRACE=FILE` adds a fresh recording (`ci/trace.sh` records one
//! where tracefs is usable).
#![cfg(not(any(loom, lazymm_shuttle)))]

use flate2::read::GzDecoder;
use lazymm::check::model::{ReplayPlan, Stats};
use lazymm::check::trace::parse::{parse_line, Line};
use lazymm::check::trace::{parse, truth, Parsed, Story};
use lazymm::lazy::cached::Cached;
use lazymm::lazy::hazard::{HazardLazy, HazardLazyNoFence};
use lazymm::lazy::loaded::LoadedMm;
use lazymm::lazy::rcu_mm::RcuMm;
use lazymm::lazy::refcount::Refcount;
use lazymm::lazy::shootdown::Shootdown;
use lazymm::lazy::tagged::Tagged;
use lazymm::lazy::LazyMm;
use proptest::prelude::*;
use std::io::Read;
use std::path::{Path, PathBuf};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/traces");

fn read(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        GzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        s
    } else {
        String::from_utf8(bytes).expect("UTF-8")
    }
}

/// The committed windows (and `LAZYMM_TRACE`), or a printed skip when the
/// directory is absent (the published package excludes it).
fn traces() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(DIR) {
        Ok(d) => d.flatten().map(|e| e.path()).collect(),
        Err(e) => {
            println!("SKIP: no recorded traces ({DIR}: {e})");
            Vec::new()
        }
    };
    v.retain(|p| p.to_string_lossy().ends_with(".trace.gz"));
    v.sort();
    if let Ok(extra) = std::env::var("LAZYMM_TRACE") {
        v.push(PathBuf::from(extra));
    }
    v
}

fn story(path: &Path) -> (Parsed, Story) {
    let p = parse(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let s = Story::new(&p);
    (p, s)
}

/// Every scheme (the crate's and the library backends) on one plan.
fn replay_all(plan: &ReplayPlan) -> Vec<(&'static str, Stats)> {
    fn one<S: LazyMm + Send + Sync + 'static>(plan: &ReplayPlan, s: S) -> (&'static str, Stats) {
        (S::NAME, plan.run(s))
    }
    let mut v = vec![
        one(plan, Refcount::new()),
        one(plan, Shootdown::new()),
        one(plan, Tagged::<64>::new()),
        one(plan, Cached::<64>::new()),
        one(plan, HazardLazy::<64>::new()),
        one(plan, HazardLazyNoFence::<64>::new()),
        one(plan, LoadedMm::<64>::new()),
        one(plan, RcuMm::<64>::new()),
    ];
    #[cfg(feature = "haphazard")]
    v.push(one(
        plan,
        lazymm::lazy::haphazard::HaphazardLazy::<64>::default(),
    ));
    #[cfg(feature = "epoch")]
    v.push(one(plan, lazymm::lazy::epoch_mm::EpochMm::<64>::default()));
    v
}

#[test]
fn the_committed_workloads_are_there() {
    let names: Vec<String> = traces()
        .iter()
        .filter_map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .collect();
    if names.is_empty() {
        return; // skipped above
    }
    for w in ["synthetic", "idle", "cargo-build", "pingpong", "hackbench"] {
        assert!(
            names.iter().any(|n| n.starts_with(w)),
            "tests/traces lacks the {w} workload: {names:?}"
        );
    }
}

#[test]
fn every_scheme_replays_every_recorded_workload() {
    for path in traces() {
        let (_, s) = story(&path);
        let c = &s.counts;
        assert!(c.switches > 0, "{}: no switches", path.display());
        // The committed recordings know every task; a fresh one on a busy
        // machine may meet a few that lived and died within the recorder's
        // /proc walk (counted, and printed below).
        if !s.lossy() && path.starts_with(DIR) {
            assert_eq!(c.unknown_tasks, 0, "{}: unknown tasks", path.display());
        }
        let plan = ReplayPlan::new(&s).expect("at most 64 CPUs");
        let results = replay_all(&plan);
        assert_eq!(
            results.len(),
            8 + cfg!(feature = "haphazard") as usize + cfg!(feature = "epoch") as usize
        );
        for (name, st) in &results {
            // The machine's switches are the story's, less the user -> user
            // switches within one mm (no mm op), plus the mapping's exits.
            assert!(
                st.switches > 0,
                "{}: {name} replayed no switch",
                path.display()
            );
        }
        // The mapping keeps which CPUs hold an mm when it dies: shootdown
        // IPIs exactly the other CPUs the story found lazy at each death.
        let shoot = &results
            .iter()
            .find(|(n, _)| *n == "shootdown")
            .expect("listed")
            .1;
        assert_eq!(
            shoot.ipis,
            c.lazy_at_death,
            "{}: shootdown's IPIs vs the story's lazy CPUs at death",
            path.display()
        );
        // Refcount never IPIs; every replayed death frees through it.
        let rc = &results
            .iter()
            .find(|(n, _)| *n == "refcount")
            .expect("listed")
            .1;
        assert_eq!(rc.ipis, 0);
        println!(
            "{}: {} switches, {} deaths, {} lazy CPUs at death, {} unknown tasks, replayed by {} schemes",
            path.display(),
            c.switches,
            c.deaths,
            c.lazy_at_death,
            c.unknown_tasks,
            results.len()
        );
    }
}

fn synthetic() -> Option<PathBuf> {
    let committed = Path::new(DIR).join("synthetic.trace.gz");
    committed.exists().then_some(committed)
}

#[test]
fn the_synthetic_workload_matches_its_ground_truth() {
    let mut paths: Vec<PathBuf> = synthetic().into_iter().collect();
    if let Ok(extra) = std::env::var("LAZYMM_TRACE") {
        paths.push(PathBuf::from(extra));
    }
    for path in paths {
        let (p, s) = story(&path);
        if s.lossy() {
            println!("SKIP: {}: events were lost", path.display());
            continue;
        }
        let c = truth::check(&p, &s).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(c.counts.len(), truth::KEYS.len());
        assert!(c.switches.len() >= 2, "the two ping-pong threads report");
        let bad = c.mismatches();
        assert!(bad.is_empty(), "{}: {bad:?}", path.display());
    }
}

/// The check can fail: the same trace without one exit of the workload's
/// tree, or with one switch of a ping-pong thread dropped, is caught.
#[test]
fn the_ground_truth_check_catches_a_lost_event() {
    let Some(path) = synthetic() else {
        println!("SKIP: no committed synthetic trace");
        return;
    };
    let text = read(&path);
    let p = parse(&text).expect("parses");
    let s = Story::new(&p);
    let root = s
        .markers
        .iter()
        .find_map(|(_, m)| m.strip_prefix("lazymm-root pid="))
        .expect("root marker")
        .to_string();
    let exit = format!("sched_process_exit: comm=record pid={root} ");
    let without_exit: String = text
        .lines()
        .filter(|l| !l.contains(&exit))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(
        without_exit.len(),
        text.len(),
        "the root's exit is in the trace"
    );
    let p2 = parse(&without_exit).expect("parses");
    let bad = truth::check(&p2, &Story::new(&p2))
        .expect("markers")
        .mismatches();
    assert!(bad.iter().any(|b| b.starts_with("exits")), "{bad:?}");
    assert!(bad.iter().any(|b| b.starts_with("deaths")), "{bad:?}");
    // One switch away of the first ping-pong thread, gone.
    let (_, csw) = s
        .markers
        .iter()
        .find(|(_, m)| m.starts_with("lazymm-csw"))
        .expect("csw marker");
    let tid = csw
        .split(' ')
        .find_map(|kv| kv.strip_prefix("tid="))
        .expect("tid");
    let needle = format!(" prev_pid={tid} ");
    let mut dropped = false;
    let one_less: String = text
        .lines()
        .filter(|l| {
            let drop = !dropped && l.contains("sched_switch") && l.contains(&needle);
            dropped |= drop;
            !drop
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let p3 = parse(&one_less).expect("parses");
    let bad = truth::check(&p3, &Story::new(&p3))
        .expect("markers")
        .mismatches();
    assert!(
        bad.iter()
            .any(|b| b.starts_with(&format!("switches of tid {tid}"))),
        "{bad:?}"
    );
}

#[test]
fn a_bad_line_is_named_with_what_was_expected() {
    let cases = [
        ("# lazymm-trace 1\n  bash-1 [000] d..2. 5.000001: sched_switch: prev_comm=a prev_pid=x", 2, "sched_switch fields"),
        ("# lazymm-trace 1\n  bash-1 000 d..2. 5.000001: sched_switch:", 2, "'[CPU]'"),
        ("# lazymm-trace 1\n  bash-1 [000] d..2. 5.0x: tlb_flush: pages:1 reason:x (0)", 2, "timestamp"),
        ("# lazymm-trace 1\n# cpus 2\n  bash-1 [003] d..2. 5.000001: tlb_flush: pages:1 reason:x (0)", 3, "below the header"),
        ("# lazymm-trace 2\n", 1, "format version 1"),
        ("  bash-1 [000] d..2. 5.000001: tlb_flush: pages:1 reason:x (0)", 1, "lazymm trace"),
        ("# lazymm-trace 1\n# task 1 x u init", 2, "TID TGID"),
    ];
    for (text, line, expected) in cases {
        let e = parse(text).expect_err(text);
        assert_eq!(e.line, line, "{text}: {e}");
        assert!(e.expected.contains(expected), "{text}: {e}");
    }
}

proptest! {
    /// Noise, truncated and mutated lines never panic the parser, and an
    /// error always names a line of the input.
    #[test]
    fn the_parser_never_panics(
        line in "\\PC{0,120}",
        cut in 0usize..160,
        byte in any::<u8>(),
    ) {
        let _ = parse_line(1, &line);
        let good = "  kworker/0:1-12   [001] d..2. 11714.552469: sched_switch: prev_comm=a b prev_pid=12 prev_prio=120 prev_state=S ==> next_comm=x next_pid=0 next_prio=120";
        let cut = cut.min(good.len());
        let _ = parse_line(2, &good[..cut]);
        let mut bytes = good.as_bytes().to_vec();
        bytes[cut % good.len()] = byte;
        if let Ok(s) = std::str::from_utf8(&bytes) {
            let _ = parse_line(3, s);
        }
        let text = format!("# lazymm-trace 1\n{line}\n{}\n", &good[..cut]);
        if let Err(e) = parse(&text) {
            prop_assert!((1..=3).contains(&e.line));
        }
    }
}

#[test]
fn the_switch_line_parses_with_spaces_in_comm() {
    let l = "  Web Content-77   [001] d..2. 11714.552469: sched_switch: prev_comm=Web Content prev_pid=77 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120";
    match parse_line(9, l).expect("parses") {
        Line::Record(r) => {
            assert_eq!((r.line, r.cpu, r.pid, r.ts), (9, 1, 77, 11_714_552_469_000));
            assert_eq!(
                r.event,
                lazymm::check::trace::Event::Switch {
                    prev_pid: 77,
                    next_pid: 0
                }
            );
        }
        other => panic!("{other:?}"),
    }
}

/// The real-workload scenario rejects bug variants: replayed on the
/// ground-truth trace, refcount's known bugs fail under the oracle
/// (`cargo test --features bug-variants --test trace`, run by ci/test.sh).
#[cfg(feature = "bug-variants")]
#[test]
fn a_recorded_workload_rejects_refcount_bug_variants() {
    use lazymm::lazy::refcount::Bug;
    let Some(path) = synthetic() else {
        println!("SKIP: no committed synthetic trace");
        return;
    };
    let (_, s) = story(&path);
    let plan = ReplayPlan::new(&s).expect("at most 64 CPUs");
    for (bug, expected) in [
        (Bug::DropBeforeLastUse, "use-after-free"),
        (Bug::TransferGrabs, "leak"),
    ] {
        let r = std::panic::catch_unwind(|| plan.run(Refcount::with_bug(bug)));
        let msg = match r {
            Ok(_) => panic!("{bug:?} passed the recorded workload"),
            Err(e) => e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        };
        assert!(msg.contains(expected), "{bug:?}: {msg}");
    }
}

/// Lost events are reported, once: the header's overrun count and
/// `trace_pipe`'s `[LOST]` lines are two reports of the same losses.
#[test]
fn lost_events_mark_the_trace() {
    let text = "# lazymm-trace 1\n# cpus 2\n\
        CPU:1 [LOST 7 EVENTS]\n\
          a-5 [001] d..2. 1.000001: sched_switch: prev_comm=a prev_pid=5 prev_prio=1 prev_state=S ==> next_comm=b next_pid=0 next_prio=1\n\
        # overrun cpu0 0\n# overrun cpu1 7\n";
    let p = parse(text).expect("parses");
    assert!(p.lossy());
    assert_eq!(p.lost, vec![0, 7]);
    let s = Story::new(&p);
    assert!(s.lossy());
    let clean = parse("# lazymm-trace 1\n# overrun cpu0 0\n").expect("parses");
    assert!(!clean.lossy());
}
