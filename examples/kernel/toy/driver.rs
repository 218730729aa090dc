//! The toy's driver: the scheduler loop, the workload, the CLI and the
//! summary. Nothing here is lazymm wiring.

use super::*;

// ------------------------------------------------------ the scheme --

const SCHEMES: [&str; 8] = lazymm::lazy::SCHEMES;

/// Boots the toy with the scheme named `name` and runs the workload:
/// the kernel type is generic over its scheme (`ToyKernel<S>`), so a
/// kernel that picks its scheme by a type parameter or a build-time
/// option writes exactly this, one arm per scheme it supports.
fn run_named(a: &Args, name: &str) -> Outcome {
    match name {
        "refcount" => run(a, Refcount::new()),
        "shootdown" => run(a, Shootdown::new()),
        "tagged" => run(a, Tagged::<NR_CPUS>::new()),
        "cached" => run(a, Cached::<NR_CPUS>::new()),
        "hazard" => run(a, HazardLazy::<NR_CPUS>::new()),
        "hazard_nofence" => run(a, HazardLazyNoFence::<NR_CPUS>::new()),
        "loaded_mm" => run(a, LoadedMm::<NR_CPUS>::new()),
        "rcu_mm" => run(a, lazymm::lazy::rcu_mm::RcuMm::<NR_CPUS>::new()),
        other => panic!("unknown scheme {other:?}: one of {SCHEMES:?} or all"),
    }
}

// ------------------------------------------------- the scheduler --

/// A runnable task and the time slices it has left.
struct Task {
    curr: Curr,
    slices: u32,
}

/// A CPU's run queue: its kernel threads, at most
/// `RUNNABLE_USER_THREADS` user threads, and the user threads that
/// have not started yet.
struct RunQueue {
    tasks: Vec<Task>,
    backlog: VecDeque<Task>,
    rng: u64,
}

impl RunQueue {
    /// The next task to run; `None` once every user thread exited
    /// (kernel threads alone do not keep the CPU up).
    fn pick_next(&mut self) -> Option<usize> {
        let users = |t: &Vec<Task>| t.iter().filter(|t| t.curr.mm().is_some()).count();
        while users(&self.tasks) < RUNNABLE_USER_THREADS {
            match self.backlog.pop_front() {
                Some(t) => self.tasks.push(t),
                None => break,
            }
        }
        if users(&self.tasks) == 0 {
            return None;
        }
        Some(random(&mut self.rng, self.tasks.len()))
    }
}

/// xorshift64: a number in `0..n`.
fn random(state: &mut u64, n: usize) -> usize {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state % n as u64) as usize
}

/// One CPU: run tasks until its user threads are gone, go down, idle.
/// The CPU it is comes from `k.pin()` (the thread-local its start set),
/// not from an argument.
fn cpu_thread<S: LazyMm>(k: &ToyKernel<S>, mut rq: RunQueue) {
    while let Some(i) = rq.pick_next() {
        // schedule(): preemption off. The pin lives across every hook
        // call of this switch, which all get its CPU; a toy task is
        // pinned to its CPU and runs its slice (and its exit) under it.
        let pin = k.pin();
        k.flush_call_queue(&pin); // schedule() runs with interrupts on
        k.context_switch(&pin, rq.tasks[i].curr);
        k.touch(pin.cpu()); // the task runs
        if rq.tasks[i].curr.mm().is_some() {
            rq.tasks[i].slices -= 1;
            if rq.tasks[i].slices == 0 {
                k.exit(&pin);
                rq.tasks.swap_remove(i);
            }
        }
    }
    let pin = k.pin();
    k.flush_call_queue(&pin);
    k.cpu_down(&pin);
    k.cpus_down.fetch_add(1, Release);
    // Idle: other CPUs may still IPI us until they are all down.
    while k.cpus_down.load(Acquire) < k.cpus.len() {
        k.flush_call_queue(&pin);
        std::thread::yield_now();
    }
}

// ------------------------------------------------------------- main --

struct Args {
    schemes: Vec<&'static str>,
    cpus: usize,
    processes: usize,
    seed: u64,
}

fn args() -> Args {
    let mut a = Args {
        schemes: SCHEMES.to_vec(),
        cpus: 4,
        processes: 50_000,
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        let num = |name: &str, v: String| -> usize {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} needs a number"))
        };
        match flag.as_str() {
            "--scheme" => {
                let v = val("--scheme");
                a.schemes = match SCHEMES.iter().find(|&&s| s == v) {
                    Some(&s) => vec![s],
                    None if v == "all" => SCHEMES.to_vec(),
                    None => panic!("unknown scheme {v:?}: one of {SCHEMES:?} or all"),
                };
            }
            "--cpus" => a.cpus = num("--cpus", val("--cpus")),
            "--processes" => a.processes = num("--processes", val("--processes")),
            "--seed" => a.seed = num("--seed", val("--seed")) as u64,
            "-h" | "--help" => {
                println!("kernel [--scheme NAME|all] [--cpus N] [--processes P] [--seed S]");
                println!("schemes: {}", SCHEMES.join(", "));
                std::process::exit(0);
            }
            other => panic!("unknown flag {other} (try --help)"),
        }
    }
    assert!(
        (1..=NR_CPUS).contains(&a.cpus),
        "--cpus must be 1..={NR_CPUS}"
    );
    a
}

/// The workload: which CPUs each process has a thread on, and each
/// thread's time slices. Every scheme runs the same one.
fn workload(a: &Args) -> (Vec<usize>, Vec<VecDeque<Task>>) {
    let mut rng = a.seed.max(1);
    let mut threads = Vec::with_capacity(a.processes);
    let mut backlogs: Vec<VecDeque<Task>> = (0..a.cpus).map(|_| VecDeque::new()).collect();
    for p in 0..a.processes {
        let home = random(&mut rng, a.cpus);
        let mut n = 0;
        for (c, backlog) in backlogs.iter_mut().enumerate() {
            if c == home || random(&mut rng, 2) == 0 {
                backlog.push_back(Task {
                    curr: Curr::User(Mm(p as u32)),
                    slices: 1 + random(&mut rng, 3) as u32,
                });
                n += 1;
            }
        }
        threads.push(n);
    }
    (threads, backlogs)
}

struct Outcome {
    name: &'static str,
    switches: u64,
    exited: u64,
    ipis: u64,
    sync_ipis: u64,
    tlb_flushes: u64,
    freed: u64,
    time: Duration,
}

/// Boots a kernel with `scheme`, runs the workload on every CPU, takes
/// the CPUs down, and checks that every mm was freed exactly once.
fn run<S: LazyMm>(a: &Args, scheme: S) -> Outcome {
    let (threads, backlogs) = workload(a);
    let k = ToyKernel::boot(scheme, a.cpus, &threads);
    let start = Instant::now();
    let boot = std::sync::Barrier::new(a.cpus);
    std::thread::scope(|s| {
        for (c, backlog) in backlogs.into_iter().enumerate() {
            let (k, boot) = (&k, &boot);
            let rq = RunQueue {
                tasks: (0..KTHREADS_PER_CPU)
                    .map(|n| Task {
                        curr: Curr::Kthread(n),
                        slices: u32::MAX,
                    })
                    .collect(),
                backlog,
                rng: a.seed.max(1) + c as u64,
            };
            s.spawn(move || {
                // Bring-up: this thread is CPU `c` from now on (a kernel
                // sets up the per-CPU area of the CPU it starts).
                THIS_CPU.with(|id| id.set(Some(CpuId::new(c))));
                boot.wait(); // all CPUs come up together
                cpu_thread(k, rq)
            });
        }
    });
    let time = start.elapsed();
    // Hotplug teardown, on the boot CPU once the others are dead. This
    // thread is no toy CPU (`pin()` panics here), so `cpu_dead` must not
    // IPI or serve IPIs; no scheme's does.
    for c in 0..a.cpus {
        k.scheme.cpu_dead(&k, CpuId::new(c));
    }
    // No leak: every mm torn down and freed, no count left over.
    for (i, m) in k.mms.iter().enumerate() {
        let (users, count) = (m.mm_users.load(Relaxed), m.mm_count.load(Relaxed));
        assert!(
            m.freed.load(Relaxed) && users == 0 && count == 0,
            "leak: {:?} was never freed (mm_users {users}, mm_count {count})",
            Mm(i as u32)
        );
    }
    for c in 0..a.cpus {
        assert_eq!(
            k.state(CpuId::new(c)).loaded_mm,
            None,
            "cpu{c} is still on a user mm"
        );
    }
    let st = &k.stats;
    let out = Outcome {
        name: S::NAME,
        switches: st.switches.load(Relaxed),
        exited: st.exited.load(Relaxed),
        ipis: st.ipis.load(Relaxed),
        sync_ipis: st.sync_ipis.load(Relaxed),
        tlb_flushes: st.tlb_flushes.load(Relaxed),
        freed: st.freed.load(Relaxed),
        time,
    };
    assert_eq!(out.exited, a.processes as u64, "every process exits");
    assert_eq!(out.freed, a.processes as u64, "every mm is freed once");
    out
}

pub fn main() {
    let a = args();
    // A kernel panic stops the machine: without this, the other CPUs
    // would wait forever for the one that panicked.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::exit(101);
    }));
    let (threads, _) = workload(&a);
    println!(
        "lazymm toy kernel: {} CPUs (one thread each), {} processes ({} user threads), {} kernel threads per CPU, seed {}\n(the same workload, so the same switches, for every scheme)\n",
        a.cpus,
        a.processes,
        threads.iter().sum::<usize>(),
        KTHREADS_PER_CPU,
        a.seed
    );
    println!(
        "{:<10} {:>9} {:>18} {:>10} {:>10} {:>12} {:>10} {:>9}",
        "scheme",
        "switches",
        "processes exited",
        "shoot IPIs",
        "sync IPIs",
        "TLB flushes",
        "mms freed",
        "time"
    );
    for scheme in &a.schemes {
        let o = run_named(&a, scheme);
        println!(
            "{:<10} {:>9} {:>18} {:>10} {:>10} {:>12} {:>10} {:>9.2?}",
            o.name, o.switches, o.exited, o.ipis, o.sync_ipis, o.tlb_flushes, o.freed, o.time
        );
    }
    println!(
        "\nshoot IPIs: Kernel::shoot_lazies; sync IPIs: IpiSync::ipi_and_wait from exit_mmap();\nTLB flushes: LocalTlb::flush_local at each page-table base change (the toy has no\nTLB: a count standing in for the hardware flush)"
    );
    println!("\nno leak: every mm was torn down and freed exactly once, every count is 0");
}
