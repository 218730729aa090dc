//! The comparison: CLI, workloads, measurement of every scheme on the
//! simulated machine. The printed and written reports are in `report`.

use lazymm::check::model::{Machine, MmId, Op, Scenario, SplitMix, Stats, MAX_CPUS};
use lazymm::check::sync::thread::Arc;
use lazymm::cpu::CpuSet;
use lazymm::lazy::LazyMm;
use std::collections::HashMap;
use std::io::Write;
use std::mem::size_of;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Most CPU slots: the capacity of the kernel interface's cpumask type.
const MAX_SLOTS: usize = CpuSet::<{ lazymm::cpu::CPUSET_WORDS }>::CAPACITY;

const DEFAULT_ROUND_TRIPS: usize = 2_000_000;
const DEFAULT_PROCESSES: usize = 200_000;

/// The `--help` text, with the limits and defaults filled in.
fn usage() -> String {
    format!(
        "\
usage: compare [--threads N] [--cpus C] [--round-trips R] [--processes P] [--mix SPEC]
               [--ipi-ns NS] [--trace FILE]

  --threads N      running CPUs of the simulated machine, one real thread each
               (1..={MAX_CPUS}, the machine's cap; default: the number of cores).
               The same-mm round trip is measured at every count 1..=N.
  --cpus C         CPU slots of each scheme's per-CPU tables (possible CPUs,
               N..={MAX_SLOTS}; default {MAX_CPUS}). Rounded up to a power of two
               and clamped to {MAX_SLOTS}, with a note. hazard and loaded_mm read
               every slot at each final drop.
  --round-trips R  lazy round trips per CPU in the round-trip workloads, and
               operations per CPU in the mix (default {DEFAULT_ROUND_TRIPS})
  --processes P    processes in the exit workload (default {DEFAULT_PROCESSES})
  --mix SPEC       shares of the mixed workload, KIND=WEIGHT items separated by
               commas, KIND one of same (same-mm round trip), other
               (other-mm round trip), exit (process exit), lazy_exit (an exit
               after which the CPU idles lazily on the dead mm until the
               process's last thread exited); missing kinds weigh 0 (default {});
               `--mix lazy-exits` is same=70,other=20,lazy_exit=10, the mix
               that is always run as well (exits that meet lazy CPUs)
  --ipi-ns NS      the price of one IPI in the lifetime model, in ns, instead
               of measuring it here (membarrier; see benches/ipi.rs)
  --trace FILE     price every scheme on a recorded workload instead (a trace
               of examples/record, plain or .gz): the workload's lazy-mm
               numbers, each scheme replayed on it under the oracle, and its
               cost per second with the unit costs measured in this run
  -h, --help       this text
  (--flag=value works too)

Writes $CARGO_TARGET_DIR/lazymm-compare.csv and lazymm-compare.svg
(CARGO_TARGET_DIR defaults to target).
",
        Mix::DEFAULT.spec()
    )
}

/// The command line, checked.
struct Args {
    threads: usize,
    /// CPU slots the schemes are built with (after rounding and clamping).
    cpus: usize,
    round_trips: usize,
    processes: usize,
    mix: Mix,
    /// `--ipi-ns`: the IPI price as a parameter instead of measured.
    ipi_ns: Option<f64>,
    /// `--trace FILE`: price the schemes on a recorded workload.
    trace: Option<String>,
    /// Notes about adjusted values, printed with the results.
    notes: Vec<String>,
}

/// Prints `msg` and the usage to stderr and exits with status 2.
fn fail(msg: &str) -> ! {
    eprintln!("compare: {msg}\n\n{}", usage());
    std::process::exit(2);
}

fn number(flag: &str, v: Option<String>) -> usize {
    let v = v.unwrap_or_else(|| fail(&format!("{flag} needs a value")));
    v.parse()
        .unwrap_or_else(|_| fail(&format!("{flag}: '{v}' is not a whole number")))
}

fn args() -> Args {
    let mut threads = None;
    let mut cpus = None;
    let mut round_trips = DEFAULT_ROUND_TRIPS;
    let mut processes = DEFAULT_PROCESSES;
    let mut mix = Mix::DEFAULT;
    let mut ipi_ns = None;
    let mut trace = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        // Both `--flag value` and `--flag=value`.
        let (flag, mut inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        let mut value = || inline.take().or_else(|| it.next());
        match flag.as_str() {
            "--threads" => threads = Some(number("--threads", value())),
            "--cpus" => cpus = Some(number("--cpus", value())),
            "--round-trips" => round_trips = number("--round-trips", value()),
            "--processes" => processes = number("--processes", value()),
            "--ipi-ns" => {
                let v = value().unwrap_or_else(|| fail("--ipi-ns needs a value"));
                let ns: f64 = v
                    .parse()
                    .ok()
                    .filter(|x: &f64| x.is_finite() && *x >= 0.0)
                    .unwrap_or_else(|| {
                        fail(&format!("--ipi-ns: '{v}' is not a number of ns >= 0"))
                    });
                ipi_ns = Some(ns);
            }
            "--trace" => {
                trace = Some(value().unwrap_or_else(|| fail("--trace needs a file")));
            }
            "--mix" => {
                let v = value().unwrap_or_else(|| fail("--mix needs a value"));
                mix = Mix::parse(&v).unwrap_or_else(|e| fail(&format!("--mix: {e}")));
            }
            "-h" | "--help" => {
                print!("{}", usage());
                std::process::exit(0);
            }
            other => fail(&format!("unknown argument '{other}'")),
        }
        if inline.is_some() {
            fail(&format!("{flag} takes no value"));
        }
    }
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(MAX_CPUS)
    });
    if !(1..=MAX_CPUS).contains(&threads) {
        fail(&format!(
            "--threads must be 1..={MAX_CPUS} (the simulated machine's cap, \
             lazymm::check::model::MAX_CPUS), got {threads}"
        ));
    }
    if round_trips == 0 {
        fail("--round-trips must be at least 1");
    }
    if processes == 0 {
        fail("--processes must be at least 1");
    }
    let mut notes = Vec::new();
    let asked = cpus.unwrap_or(MAX_CPUS);
    if asked < threads {
        fail(&format!(
            "--cpus {asked} is fewer than the {threads} running CPUs (--threads): \
             every running CPU needs a slot"
        ));
    }
    let mut cpus = asked;
    if cpus > MAX_SLOTS {
        notes.push(format!(
            "--cpus {cpus} clamped to {MAX_SLOTS}, the capacity of lazymm::cpu::CpuSet"
        ));
        cpus = MAX_SLOTS;
    }
    let built = SLOT_CHOICES
        .iter()
        .copied()
        .find(|&n| n >= cpus)
        .expect("MAX_SLOTS is a slot choice");
    if built != cpus {
        notes.push(format!(
            "--cpus {cpus} rounded up to {built}: the schemes are compiled for \
             power-of-two slot counts"
        ));
    }
    Args {
        threads,
        cpus: built,
        round_trips,
        processes,
        mix,
        ipi_ns,
        trace,
        notes,
    }
}

/// The shares of the mixed workload (weights, not necessarily summing to 100).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mix {
    /// Weights of [`Kind::Same`], [`Kind::Other`], [`Kind::Exit`],
    /// [`Kind::LazyExit`].
    w: [u64; 4],
}

/// One operation of the mixed workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Same,
    Other,
    Exit,
    /// An exit after which the CPU idles lazily on the dead mm until the
    /// process's last thread has exited ([`Op::IdleUntilExited`]): Piggin's
    /// "left a lazy mm on another CPU", so every final drop finds the CPUs
    /// that exited before the last one still lazy on the mm.
    LazyExit,
}

const KINDS: [(Kind, &str); 4] = [
    (Kind::Same, "same"),
    (Kind::Other, "other"),
    (Kind::Exit, "exit"),
    (Kind::LazyExit, "lazy_exit"),
];

impl Mix {
    const DEFAULT: Mix = Mix { w: [70, 20, 10, 0] };
    /// The "exits meet lazy CPUs" mix (`--mix lazy-exits`): the default's
    /// shares with every exit a `lazy_exit`.
    const LAZY_EXITS: Mix = Mix { w: [70, 20, 0, 10] };
    /// Largest weight: keeps the arithmetic of [`counts`](Self::counts) small.
    const MAX_WEIGHT: u64 = 1_000_000;

    fn parse(spec: &str) -> Result<Mix, String> {
        if spec.trim() == "lazy-exits" {
            return Ok(Self::LAZY_EXITS);
        }
        let mut w = [None; 4];
        for item in spec.split(',') {
            let item = item.trim();
            let (k, v) = item.split_once('=').ok_or_else(|| {
                format!("'{item}' is not KIND=WEIGHT (KIND one of same, other, exit, lazy_exit)")
            })?;
            let i = KINDS
                .iter()
                .position(|(_, name)| *name == k.trim())
                .ok_or_else(|| {
                    format!(
                        "unknown kind '{}' (use same, other, exit or lazy_exit)",
                        k.trim()
                    )
                })?;
            if w[i].is_some() {
                return Err(format!("'{}' given twice", KINDS[i].1));
            }
            let n: u64 = v.trim().parse().map_err(|_| {
                format!(
                    "weight of {} must be a whole number, got '{}'",
                    KINDS[i].1, v
                )
            })?;
            if n > Self::MAX_WEIGHT {
                return Err(format!(
                    "weight of {} is over {}",
                    KINDS[i].1,
                    Self::MAX_WEIGHT
                ));
            }
            w[i] = Some(n);
        }
        let w = w.map(|x| x.unwrap_or(0));
        if w.iter().sum::<u64>() == 0 {
            return Err("every weight is 0".into());
        }
        Ok(Mix { w })
    }

    /// How many operations of each kind make `ops`: exact shares, the
    /// rounding remainder to the largest fractional parts.
    fn counts(&self, ops: usize) -> [usize; 4] {
        let w = self.w.map(u128::from);
        let sum: u128 = w.iter().sum();
        let total = ops as u128;
        let mut n = w.map(|w| (total * w / sum) as usize);
        let mut rest = ops - n.iter().sum::<usize>();
        let mut by_fraction = [0, 1, 2, 3];
        by_fraction.sort_by_key(|&i| std::cmp::Reverse(total * w[i] % sum));
        for i in by_fraction {
            if rest == 0 {
                break;
            }
            n[i] += 1;
            rest -= 1;
        }
        n
    }

    /// The weights as a `--mix` value: `same=70,other=20,exit=10`.
    fn spec(&self) -> String {
        KINDS
            .iter()
            .zip(self.w)
            .map(|((_, name), w)| format!("{name}={w}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `same=70% other=20% exit=10%` (normalized to percent, one decimal).
    fn describe(&self) -> String {
        let sum: u64 = self.w.iter().sum();
        KINDS
            .iter()
            .zip(self.w)
            .filter(|&(_, w)| w > 0)
            .map(|((_, name), w)| format!("{name}={:.1}%", 100.0 * w as f64 / sum as f64))
            .map(|s| s.replace(".0%", "%"))
            .collect::<Vec<_>>()
            .join(" ")
    }
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

/// The mixed workload (see the module docs): `ops` operations per CPU in
/// `mix`'s shares, shuffled with a fixed seed, the same script on every
/// CPU. Two processes are live on each CPU at a time (slots 0 and 1); an
/// exit replaces the current slot's process with a fresh one.
fn mixed(cpus: usize, ops: usize, mix: &Mix) -> Scenario {
    let counts = mix.counts(ops);
    let mut kinds = Vec::with_capacity(ops);
    for ((kind, _), n) in KINDS.iter().zip(counts) {
        kinds.extend(std::iter::repeat_n(*kind, n));
    }
    let mut rng = SplitMix(0x6c61_7a79_6d6d);
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.below(i + 1));
    }
    // mm numbers in order of first use: (slot, generation) -> mm.
    let mut ids: HashMap<(usize, usize), MmId> = HashMap::new();
    let mut mm = |slot: usize, gen: usize| {
        let next = ids.len();
        *ids.entry((slot, gen)).or_insert_with(|| MmId::new(next))
    };
    let mut script = Vec::with_capacity(2 * ops + counts[2] + 2 * counts[3] + 4);
    let (mut slot, mut gen, mut live) = (0, [0usize; 2], [true, false]);
    script.push(Op::User(mm(0, 0)));
    for k in kinds {
        match k {
            Kind::Same => script.extend([Op::Kthread, Op::User(mm(slot, gen[slot]))]),
            Kind::Other => {
                slot ^= 1;
                live[slot] = true;
                script.extend([Op::Kthread, Op::User(mm(slot, gen[slot]))]);
            }
            Kind::Exit => {
                gen[slot] += 1;
                script.extend([Op::Exit, Op::Kthread, Op::User(mm(slot, gen[slot]))]);
            }
            Kind::LazyExit => {
                let dead = mm(slot, gen[slot]);
                gen[slot] += 1;
                script.extend([
                    Op::Exit,
                    Op::Kthread,
                    Op::IdleUntilExited(dead),
                    Op::User(mm(slot, gen[slot])),
                ]);
            }
        }
    }
    script.push(Op::Exit);
    if live[slot ^ 1] {
        script.extend([Op::User(mm(slot ^ 1, gen[slot ^ 1])), Op::Exit]);
    }
    let nr_mms = ids.len();
    Scenario::new(nr_mms, vec![script; cpus])
}

fn run<S: LazyMm + Send + Sync + 'static>(scheme: S, s: Scenario) -> (Duration, Stats) {
    let m = Arc::new(Machine::new(scheme, s));
    let start = Instant::now();
    Machine::run(&m);
    (start.elapsed(), m.stats())
}

/// ns per operation per CPU: the CPUs run in parallel, so wall time times
/// CPUs over all CPUs' operations.
fn per_op(t: Duration, cpus: usize, ops: f64) -> f64 {
    t.as_nanos() as f64 * cpus as f64 / ops
}

/// One point of the thread scaling: the same-mm round trip at `threads`.
#[derive(Clone, Copy)]
struct Point {
    threads: usize,
    ns: f64,
    rmws: f64,
}

/// What [`measure`] measures for one scheme.
struct Measured {
    name: &'static str,
    /// Same-mm round trip at 1..=N threads.
    sweep: Vec<Point>,
    other_ns: f64,
    other_rmw: f64,
    exit_ns: f64,
    exit_rmw: f64,
    exit_ipis: f64,
    mix_ns: f64,
    mix_rmw: f64,
    /// The `--mix lazy-exits` run: exits, IPIs per exit.
    lx_exits: u64,
    lx_ipis: f64,
    /// `size_of` the scheme struct at the run's CPU slots.
    scheme_bytes: usize,
}

/// Runs every workload of `a` on a fresh `S::default()` (the correct
/// scheme) each time.
fn measure<S: LazyMm + Default + Send + Sync + 'static>(a: &Args) -> Measured {
    let make = S::default;
    let n = a.threads;
    let trips = |t: usize| (t * a.round_trips) as f64;
    let sweep = (1..=n)
        .map(|t| {
            let (d, st) = run(make(), round_trips(t, a.round_trips));
            Point {
                threads: t,
                ns: per_op(d, t, trips(t)),
                rmws: st.shared_rmws as f64 / trips(t),
            }
        })
        .collect();
    let (t2, st2) = run(make(), round_trips_other_mm(n, a.round_trips));
    let (t3, st3) = run(make(), exits(n, a.processes));
    let exits = st3.exits as f64;
    let (t4, st4) = run(make(), mixed(n, a.round_trips, &a.mix));
    let (_, st5) = run(make(), mixed(n, a.round_trips, &Mix::LAZY_EXITS));
    Measured {
        name: S::NAME,
        sweep,
        other_ns: per_op(t2, n, trips(n)),
        other_rmw: st2.shared_rmws as f64 / trips(n),
        exit_ns: per_op(t3, n, exits),
        exit_rmw: st3.shared_rmws as f64 / exits,
        exit_ipis: st3.ipis as f64 / a.processes as f64,
        mix_ns: per_op(t4, n, trips(n)),
        mix_rmw: st4.shared_rmws as f64 / trips(n),
        lx_exits: st5.exits,
        lx_ipis: st5.ipis as f64 / st5.exits.max(1) as f64,
        scheme_bytes: size_of::<S>(),
    }
}

/// A scheme's results and memory.
struct Row {
    m: Measured,
    per_cpu_bytes: Option<usize>,
    per_mm_bytes: usize,
}

impl Row {
    /// The same-mm round trip at `N` threads (the table's column).
    fn rt(&self) -> Point {
        *self.m.sweep.last().expect("at least one thread")
    }
}

pub fn main() {
    let a = args();
    assert_eq!(SLOT_CHOICES.last(), Some(&MAX_SLOTS));
    if let Some(path) = &a.trace {
        std::process::exit(workload::main(&a, path));
    }
    let schemes = schemes(a.cpus);
    let start = Instant::now();
    let mut rows = Vec::new();
    for (i, e) in schemes.iter().enumerate() {
        eprint!("\r[{}/{}] {}...            ", i + 1, schemes.len(), e.name);
        std::io::stderr().flush().ok();
        let m = (e.measure)(&a);
        rows.push(Row {
            m,
            per_cpu_bytes: e.per_cpu_bytes,
            per_mm_bytes: e.mm_fields.iter().map(|f| f.bytes(a.cpus)).sum(),
        });
    }
    eprintln!("\rdone in {:.1?}                    ", start.elapsed());
    for n in &a.notes {
        println!("note: {n}");
    }
    println!(
        "lazymm compare: simulated machine, {} CPUs (one thread each), {} CPU slots per scheme, \
         {} round trips per CPU, {} processes",
        a.threads, a.cpus, a.round_trips, a.processes
    );
    let c = a.mix.counts(a.round_trips);
    println!(
        "mix: {} ({} same-mm round trips, {} other-mm round trips, {} exits per CPU)",
        a.mix.describe(),
        c[0],
        c[1],
        c[2]
    );
    println!("end-to-end numbers (oracle included); `cargo bench` has the bare primitives\n");
    table(&rows);
    scaling(&rows);
    let ipi = lifetime::ipi_price(&a);
    lazy_exit_costs(&rows, &ipi);
    let model = lifetime::report(&ipi);
    tlb_and_walkers(&a);
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let dir = Path::new(&dir);
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("could not create {}: {e}", dir.display());
        return;
    }
    println!();
    write_csv(dir, &a, &rows);
    match write_svg(dir, &a, &rows) {
        Ok(p) => println!("SVG: {}", p.display()),
        Err(e) => eprintln!("could not write the SVG chart: {e}"),
    }
    lifetime::write_files(dir, &model);
}

/// The TLB and walker machines on the same CPUs: flush IPIs sent and
/// saved by lazy skipping, and sync IPIs targeted vs broadcast.
mod lifetime;
mod report;
mod schemes;
mod workload;
use report::*;
use schemes::*;
