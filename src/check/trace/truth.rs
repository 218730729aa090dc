//! Ground truth: a workload that knows its own numbers writes them into the
//! trace (`trace_marker`), and the story must recover them exactly.
//!
//! The markers (`examples/record`'s `synthetic` workload writes them):
//!
//! * `lazymm-root pid=P` — the workload's process; its descendants (tasks it
//!   or they create, through forks, threads, vforks and execs) form the
//!   tree whose events are counted from this marker on;
//! * `lazymm-expect forks=F threads=T vforks=V execs=E exits=X births=B
//!   deaths=D` — what the tree does;
//! * `lazymm-csw tid=X switches=N` — thread `X` had been switched away from
//!   its CPU `N` times (`getrusage(RUSAGE_THREAD)`: voluntary plus
//!   involuntary switches) when it wrote the marker. The workload reads the
//!   count on both sides of the write and writes again until the two agree,
//!   so no switch falls between the count and the marker.

use super::parse::{Event, Parsed, CLONE_THREAD, CLONE_VM};
use super::story::Story;
use std::collections::BTreeSet;
use std::format;
use std::string::String;
use std::vec::Vec;

/// The keys of the `lazymm-expect` marker, in order.
pub const KEYS: [&str; 7] = [
    "forks", "threads", "vforks", "execs", "exits", "births", "deaths",
];

/// What the check compared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compared {
    /// `(key, expected, found)` for each of [`KEYS`].
    pub counts: Vec<(&'static str, u64, u64)>,
    /// `(tid, expected, found)` for each `lazymm-csw` marker.
    pub switches: Vec<(i32, u64, u64)>,
}

impl Compared {
    /// The lines that differ; empty when the story is exact.
    pub fn mismatches(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .counts
            .iter()
            .filter(|(_, e, f)| e != f)
            .map(|(k, e, f)| format!("{k}: the workload made {e}, the story has {f}"))
            .collect();
        v.extend(
            self.switches
                .iter()
                .filter(|(_, e, f)| e != f)
                .map(|(t, e, f)| {
                    format!("switches of tid {t}: getrusage says {e}, the trace has {f}")
                }),
        );
        v
    }
}

fn value(text: &str, key: &str) -> Option<u64> {
    text.split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// Compares the ground-truth markers of `p` with `story`. `Err` when the
/// trace has no `lazymm-root` and `lazymm-expect` markers.
pub fn check(p: &Parsed, story: &Story) -> Result<Compared, String> {
    let root = story
        .markers
        .iter()
        .find_map(|(r, m)| Some((r.line, r.ts, value(m.strip_prefix("lazymm-root ")?, "pid")?)))
        .ok_or("no 'lazymm-root pid=P' marker: not a ground-truth trace")?;
    let expect = story
        .markers
        .iter()
        .find_map(|(_, m)| m.strip_prefix("lazymm-expect "))
        .ok_or("no 'lazymm-expect ...' marker: not a ground-truth trace")?;
    let (from, since, root) = (root.0, root.1, root.2 as i32);
    let mut tree = BTreeSet::from([root]);
    let mut n = [0u64; 7];
    for r in p.records.iter().filter(|r| r.line > from) {
        match r.event {
            Event::NewTask { pid, clone_flags } if tree.contains(&r.pid) => {
                tree.insert(pid);
                let i = match (clone_flags & CLONE_VM != 0, clone_flags & CLONE_THREAD != 0) {
                    (false, _) => 0,
                    (true, true) => 1,
                    (true, false) => 2,
                };
                n[i] += 1;
            }
            Event::Exec { pid, old_pid } if tree.contains(&old_pid) => {
                tree.insert(pid);
                n[3] += 1;
            }
            Event::Exit { pid, .. } if tree.contains(&pid) => n[4] += 1,
            _ => {}
        }
    }
    n[5] = story
        .mms
        .iter()
        .filter(|m| m.born && m.born_at > since && tree.contains(&m.born_by))
        .count() as u64;
    n[6] = story
        .mms
        .iter()
        .filter(|m| m.death.is_some_and(|(t, _)| t > since) && tree.contains(&m.died_by))
        .count() as u64;
    let mut c = Compared::default();
    for (i, key) in KEYS.iter().enumerate() {
        let e = value(expect, key).ok_or_else(|| format!("the expect marker lacks '{key}='"))?;
        c.counts.push((key, e, n[i]));
    }
    for (r, m) in &story.markers {
        if let Some(rest) = m.strip_prefix("lazymm-csw ") {
            let tid = value(rest, "tid").ok_or("a csw marker without tid=")? as i32;
            let e = value(rest, "switches").ok_or("a csw marker without switches=")?;
            c.switches
                .push((tid, e, Story::switches_away(p, tid, r.line)));
        }
    }
    Ok(c)
}
