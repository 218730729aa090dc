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
//! * **round trips, same mm**: every CPU runs a thread of one shared process
//!   and does `R` lazy round trips (user → kernel thread → the same user
//!   mm), then exits. The context-switch hot path, all CPUs on one mm.
//! * **round trips, other mm**: every CPU runs threads of two shared
//!   processes and alternates user A → kernel thread → user B → kernel
//!   thread → user A, `R` round trips in all.
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
    use lazymm::cached::Cached;
    use lazymm::hazard::HazardLazy;
    use lazymm::loaded::LoadedMm;
    use lazymm::model::{Machine, MmId, Op, Scenario, Stats, MAX_CPUS};
    use lazymm::refcount::Refcount;
    use lazymm::scheme::LazyMm;
    use lazymm::shootdown::Shootdown;
    use lazymm::sync::thread::Arc;
    use lazymm::tagged::Tagged;
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

    fn round_trips_other_mm(cpus: usize, r: usize) -> Scenario {
        let (a, b) = (MmId::new(0), MmId::new(1));
        let scripts = (0..cpus)
            .map(|_| {
                let mut s = vec![Op::User(a)];
                for i in 0..r {
                    s.push(Op::Kthread);
                    s.push(Op::User(if i % 2 == 0 { b } else { a }));
                }
                let last = if r % 2 == 0 { a } else { b };
                s.push(Op::Exit);
                s.push(Op::User(if last == a { b } else { a }));
                s.push(Op::Exit);
                s
            })
            .collect();
        Scenario::new(2, scripts)
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
        other_ns: f64,
        other_rmw: f64,
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
        let (t2, st2) = run(make(), round_trips_other_mm(a.threads, a.round_trips));
        let (t, st) = run(make(), exits(a.threads, a.processes));
        let n = st.exits as f64;
        Row {
            name: S::NAME,
            rt_ns,
            rt_rmw,
            other_ns: t2.as_nanos() as f64 * a.threads as f64 / trips,
            other_rmw: st2.shared_rmws as f64 / trips,
            exit_ns: t.as_nanos() as f64 * a.threads as f64 / n,
            exit_rmw: st.shared_rmws as f64 / n,
            exit_ipis: st.ipis as f64 / a.processes as f64,
        }
    }

    pub fn main() {
        let a = args();
        type Measure = fn(&Args) -> Row;
        let schemes: [(&str, Measure); 6] = [
            ("refcount", |a| measure(a, Refcount::new)),
            ("shootdown", |a| measure(a, Shootdown::new)),
            ("tagged", |a| measure(a, Tagged::<MAX_CPUS>::new)),
            ("cached", |a| measure(a, Cached::<MAX_CPUS>::new)),
            ("hazard", |a| measure(a, HazardLazy::<MAX_CPUS>::new)),
            ("loaded_mm", |a| measure(a, LoadedMm::<MAX_CPUS>::new)),
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
        let base = rows[0].rt_ns;
        println!(
            "{:<10} {:>10} {:>9} {:>10} {:>10} {:>10} {:>9} {:>10} {:>9}",
            "scheme",
            "same mm",
            "vs ref",
            "RMWs",
            "other mm",
            "RMWs",
            "ns/exit",
            "RMWs/exit",
            "IPIs/proc"
        );
        println!(
            "{:<10} {:>10} {:>9} {:>10} {:>10} {:>10} {:>9} {:>10} {:>9}",
            "", "ns/trip", "", "/trip", "ns/trip", "/trip", "", "", ""
        );
        for r in &rows {
            println!(
                "{:<10} {:>10.1} {:>8.2}x {:>10.2} {:>10.1} {:>10.2} {:>9.1} {:>10.2} {:>9.2}",
                r.name,
                r.rt_ns,
                r.rt_ns / base,
                r.rt_rmw,
                r.other_ns,
                r.other_rmw,
                r.exit_ns,
                r.exit_rmw,
                r.exit_ipis
            );
        }
        println!(
            "\n(vs ref: ns per same-mm round trip relative to refcount, the upstream default)"
        );
        lifetime(&rows);
        write_csv(&a, &rows);
    }

    /// Zijlstra's question, "an xchg on every unlazy vs one IPI per exit":
    /// a process whose life has K lazy round trips (same mm) costs
    /// `K * trip + exit`. For each pair of schemes, the K above which the one
    /// with the cheaper round trip wins, from the costs measured above.
    fn lifetime(rows: &[Row]) {
        println!("\nlifetime cost: K lazy round trips per process exit; crossover K where the cheaper round trip wins");
        let mut any = false;
        for a in rows {
            for b in rows {
                // a: cheaper round trip, dearer exit than b.
                let (dt, de) = (b.rt_ns - a.rt_ns, a.exit_ns - b.exit_ns);
                if dt > 0.0 && de > 0.0 {
                    any = true;
                    println!(
                        "  {:<10} overtakes {:<10} above K = {:.1} round trips per exit ({:.1} ns dearer exit, {:.1} ns cheaper trip)",
                        a.name,
                        b.name,
                        de / dt,
                        de,
                        dt
                    );
                }
            }
        }
        if !any {
            println!("  none: in this run no scheme with a cheaper round trip has a dearer exit");
        }
    }

    /// Writes the table as CSV to `target/lazymm-compare.csv`.
    fn write_csv(a: &Args, rows: &[Row]) {
        let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        let path = std::path::Path::new(&dir).join("lazymm-compare.csv");
        let mut out = String::from("scheme,cpus,ns_per_trip_same_mm,shared_rmws_per_trip_same_mm,ns_per_trip_other_mm,shared_rmws_per_trip_other_mm,ns_per_exit,shared_rmws_per_exit,ipis_per_process\n");
        for r in rows {
            out += &format!(
                "{},{},{:.2},{:.3},{:.2},{:.3},{:.2},{:.3},{:.3}\n",
                r.name,
                a.threads,
                r.rt_ns,
                r.rt_rmw,
                r.other_ns,
                r.other_rmw,
                r.exit_ns,
                r.exit_rmw,
                r.exit_ipis
            );
        }
        match std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, out)) {
            Ok(()) => println!("\nCSV: {}", path.display()),
            Err(e) => eprintln!("could not write {}: {e}", path.display()),
        }
    }
}
