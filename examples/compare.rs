//! The main job: every implemented lazy-mm scheme side by side on the
//! simulated machine, with real atomics and one real thread per core.
//!
//! ```text
//! cargo run --release --example compare [-- --threads N --round-trips R --processes P]
//! ```
//!
//! Two fixed workloads per scheme, each on `N` CPUs (default: the number of
//! cores):
//!
//! * **round trips**: every CPU runs a thread of one shared process and does
//!   `R` lazy round trips (user → kernel thread → the same user mm), then
//!   exits. This is the context-switch hot path, all CPUs on one mm.
//! * **exits**: `P` processes, each with a thread on every CPU; each CPU runs
//!   its thread, a kernel thread, the thread again, exits it and runs a
//!   kernel thread (lazy on the dead process's mm), process after process.
//!   The final drops race with CPUs still lazy on the mm.
//!
//! Numbers are end-to-end on the simulated machine — the oracle's checks and
//! the machine's bookkeeping included — so they compare schemes with each
//! other, not with a kernel. `cargo bench` measures the protocol primitives
//! alone. Counts (shared-line RMWs, IPIs) come from the machine's counters.

#[cfg(loom)]
fn main() {
    eprintln!("compare runs real threads; build it without `--cfg loom`");
}

#[cfg(not(loom))]
fn main() {
    imp::main();
}

#[cfg(not(loom))]
mod imp {
    use lazymm::model::{Machine, MmId, Op, Scenario, Stats};
    use lazymm::refcount::Refcount;
    use lazymm::scheme::LazyMm;
    use lazymm::shootdown::Shootdown;
    use lazymm::sync::thread::Arc;
    use std::io::Write;
    use std::time::{Duration, Instant};

    struct Args {
        threads: usize,
        round_trips: usize,
        processes: usize,
    }

    fn args() -> Args {
        let mut a = Args {
            threads: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .min(lazymm::model::MAX_CPUS),
            round_trips: 2_000_000,
            processes: 200_000,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut val = |name: &str| -> usize {
                it.next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{name} needs a number"))
            };
            match flag.as_str() {
                "--threads" => a.threads = val("--threads"),
                "--round-trips" => a.round_trips = val("--round-trips"),
                "--processes" => a.processes = val("--processes"),
                "-h" | "--help" => {
                    println!("compare [--threads N] [--round-trips R] [--processes P]");
                    std::process::exit(0);
                }
                other => panic!("unknown flag {other} (try --help)"),
            }
        }
        assert!(
            (1..=lazymm::model::MAX_CPUS).contains(&a.threads),
            "--threads must be 1..=64"
        );
        a
    }

    fn round_trips(cpus: usize, r: usize) -> Scenario {
        let a = MmId::new(0);
        let scripts = (0..cpus)
            .map(|_| {
                let mut s = vec![Op::User(a)];
                for _ in 0..r {
                    s.push(Op::Kthread);
                    s.push(Op::User(a));
                }
                s.push(Op::Exit);
                s
            })
            .collect();
        Scenario::new(1, scripts)
    }

    fn exits(cpus: usize, p: usize) -> Scenario {
        let scripts = (0..cpus)
            .map(|_| {
                let mut s = Vec::with_capacity(4 * p);
                for i in 0..p {
                    let mm = MmId::new(i);
                    s.extend([
                        Op::User(mm),
                        Op::Kthread,
                        Op::User(mm),
                        Op::Exit,
                        Op::Kthread,
                    ]);
                }
                s
            })
            .collect();
        Scenario::new(p, scripts)
    }

    fn run<S: LazyMm<Machine<S>> + Send + Sync + 'static>(
        scheme: S,
        s: Scenario,
    ) -> (Duration, Stats) {
        let m = Arc::new(Machine::new(scheme, s));
        let start = Instant::now();
        Machine::run(&m);
        (start.elapsed(), m.stats())
    }

    struct Row {
        name: &'static str,
        rt_ns: f64,
        rt_rmw: f64,
        exit_ns: f64,
        exit_rmw: f64,
        exit_ipis: f64,
    }

    fn measure<S: LazyMm<Machine<S>> + Send + Sync + 'static>(a: &Args, make: fn() -> S) -> Row {
        let (t, st) = run(make(), round_trips(a.threads, a.round_trips));
        let trips = (a.threads * a.round_trips) as f64;
        // Per CPU and round trip: the CPUs run in parallel.
        let rt_ns = t.as_nanos() as f64 * a.threads as f64 / trips;
        let rt_rmw = st.shared_rmws as f64 / trips;
        let (t, st) = run(make(), exits(a.threads, a.processes));
        let n = st.exits as f64;
        Row {
            name: S::NAME,
            rt_ns,
            rt_rmw,
            exit_ns: t.as_nanos() as f64 * a.threads as f64 / n,
            exit_rmw: st.shared_rmws as f64 / n,
            exit_ipis: st.ipis as f64 / a.processes as f64,
        }
    }

    pub fn main() {
        let a = args();
        type Measure = fn(&Args) -> Row;
        let schemes: [(&str, Measure); 2] = [
            ("refcount", |a| measure(a, Refcount::new)),
            ("shootdown", |a| measure(a, Shootdown::new)),
        ];
        let start = Instant::now();
        let mut rows = Vec::new();
        for (i, (name, f)) in schemes.iter().enumerate() {
            eprint!("\r[{}/{}] {name}...            ", i + 1, schemes.len());
            std::io::stderr().flush().ok();
            rows.push(f(&a));
        }
        eprintln!("\rdone in {:.1?}                    ", start.elapsed());
        println!(
            "lazymm compare: simulated machine, {} CPUs (one thread each), {} round trips per CPU, {} processes",
            a.threads, a.round_trips, a.processes
        );
        println!("end-to-end numbers (oracle included); `cargo bench` has the bare primitives\n");
        println!(
            "{:<10} {:>14} {:>16} {:>10} {:>13} {:>15}",
            "scheme", "ns/round trip", "shared RMWs/trip", "ns/exit", "RMWs/exit", "IPIs/process"
        );
        for r in &rows {
            println!(
                "{:<10} {:>14.1} {:>16.2} {:>10.1} {:>13.2} {:>15.2}",
                r.name, r.rt_ns, r.rt_rmw, r.exit_ns, r.exit_rmw, r.exit_ipis
            );
        }
    }
}
