//! A context-switch benchmark shaped like will-it-scale's
//! `context_switch1_threads`: pairs of threads of one process ping-pong a
//! byte through two pipes, each thread pinned to its own CPU. Every wake-up
//! and every block is a real context switch of the host kernel: a thread
//! that blocks in `read` leaves its CPU idle, the one it wakes leaves idle.
//! Around them each thread runs the scheme's hooks exactly where a
//! scheduler would: before blocking, the lazy entry of the CPU going idle
//! (`is_lazy` store + `mmgrab_lazy_tlb`); after waking, the unlazy back into
//! the same mm (`loaded_mm` store + `mmdrop_lazy_tlb`).
//!
//! Prints, for 1 .. cores/2 pairs (each thread on its own CPU; one pair on
//! one CPU where there is a single core), round trips per second per pair
//! for no scheme at all and for every scheme, and each scheme's overhead in
//! % against no scheme — the shape of Desnoyers' "+28 % at 192 threads",
//! so a reader with a big machine reruns it unchanged:
//!
//! ```text
//! cargo bench --bench context_switch            # LAZYMM_CS_SECS=0.5 per cell, 3 rounds
//! ```
//!
//! Cells are the median of 3 rounds with the schemes interleaved; on a
//! shared machine differences under a few % are noise (the hooks cost
//! nanoseconds, a pipe round trip microseconds). Linux only.

#[cfg(all(target_os = "linux", not(any(loom, lazymm_shuttle))))]
#[path = "common/bare.rs"]
mod bare;
#[cfg(all(target_os = "linux", not(any(loom, lazymm_shuttle))))]
mod common;
#[cfg(all(target_os = "linux", not(any(loom, lazymm_shuttle))))]
#[path = "common/ipi.rs"]
mod ipi;

#[cfg(all(target_os = "linux", not(any(loom, lazymm_shuttle))))]
mod imp {
    use super::bare::{self, BenchKernel, Floor, Loaded};
    use super::common::Mm;
    use super::ipi;
    use lazymm::check::sync::Ordering::Relaxed;
    use lazymm::cpu::CpuId;
    use lazymm::lazy::cached::Cached;
    use lazymm::lazy::hazard::{HazardLazy, HazardLazyNoFence};
    use lazymm::lazy::loaded::LoadedMm;
    use lazymm::lazy::rcu_mm::RcuMm;
    use lazymm::lazy::refcount::Refcount;
    use lazymm::lazy::shootdown::Shootdown;
    use lazymm::lazy::tagged::Tagged;
    use lazymm::lazy::{LazyMm, MmHandle};
    use std::hint::black_box;
    use std::sync::{Arc, Barrier};
    use std::time::{Duration, Instant};

    const SLOTS: usize = bare::MAX_THREADS;

    /// One pipe: (read end, write end).
    fn pipe() -> (i32, i32) {
        let mut fds = [0i32; 2];
        // SAFETY: pipe writes two descriptors into the array.
        let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
        assert_eq!(r, 0, "pipe: {}", std::io::Error::last_os_error());
        (fds[0], fds[1])
    }

    fn read1(fd: i32) -> u8 {
        let mut b = 0u8;
        // SAFETY: reads one byte into a local.
        let r = unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) };
        assert_eq!(r, 1, "read: {}", std::io::Error::last_os_error());
        b
    }

    /// A ping; [`STOP`] ends the peer's loop.
    const PING: u8 = 0;
    const STOP: u8 = 1;

    fn write1(fd: i32, b: u8) {
        // SAFETY: writes one byte from a local.
        let r = unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
        assert_eq!(r, 1, "write: {}", std::io::Error::last_os_error());
    }

    /// What the scheduler does around a block and a wake-up.
    struct Hooks<'a, S> {
        s: &'a S,
        k: &'a BenchKernel,
        loaded: &'a Loaded,
        cpu: CpuId,
        mm: Mm,
    }

    impl<S: LazyMm> Hooks<'_, S> {
        /// The CPU goes idle: user -> idle task, lazy on the mm.
        #[inline]
        fn block(&self) {
            self.loaded.get(self.cpu).store(0, Relaxed); // is_lazy = true
            self.s.mmgrab_lazy_tlb(self.k, self.cpu, self.mm);
        }
        /// The CPU wakes the thread: idle task -> the same user mm.
        #[inline]
        fn wake(&self) {
            self.loaded.get(self.cpu).store(self.mm.to_word(), Relaxed);
            self.s
                .mmdrop_lazy_tlb(self.k, self.cpu, self.mm, Some(self.mm));
        }
    }

    /// Runs `pairs` ping-pong pairs for about `secs`; returns round trips
    /// per second per pair.
    fn run<S: LazyMm + Send + Sync + 'static>(
        s: Arc<S>,
        pairs: usize,
        cpus: &[usize],
        secs: f64,
    ) -> f64 {
        let k = Arc::new(BenchKernel::new(SLOTS));
        let loaded: Arc<Loaded> = Arc::default();
        let barrier = Arc::new(Barrier::new(2 * pairs + 1));
        let stop = Arc::new(lazymm::check::sync::AtomicBool::new(false));
        let mut handles = Vec::new();
        for p in 0..pairs {
            let (a_r, b_w) = pipe(); // B -> A
            let (b_r, a_w) = pipe(); // A -> B
            for side in 0..2 {
                let cpu = cpus[(2 * p + side) % cpus.len()];
                let (rd, wr) = if side == 0 { (a_r, a_w) } else { (b_r, b_w) };
                let (s, k, loaded, barrier, stop) = (
                    s.clone(),
                    k.clone(),
                    loaded.clone(),
                    barrier.clone(),
                    stop.clone(),
                );
                handles.push(std::thread::spawn(move || {
                    assert!(
                        ipi::pin(cpu),
                        "context_switch: could not pin a thread to CPU {cpu} (an unpinned pair measures the host scheduler's placement)"
                    );
                    let slot = CpuId::new((2 * p + side) % SLOTS);
                    let h = Hooks {
                        s: &*s,
                        k: &k,
                        loaded: &loaded,
                        cpu: slot,
                        mm: black_box(Mm(1)),
                    };
                    loaded.get(slot).store(h.mm.to_word(), Relaxed);
                    barrier.wait();
                    let mut trips = 0u64;
                    if side == 0 {
                        // A starts each round trip; it alone decides to stop.
                        // Relaxed: a stop flag; B follows A's STOP byte.
                        while !stop.load(Relaxed) {
                            write1(wr, PING);
                            h.block();
                            read1(rd);
                            h.wake();
                            trips += 1;
                        }
                        write1(wr, STOP);
                    } else {
                        loop {
                            h.block();
                            let b = read1(rd);
                            h.wake();
                            if b == STOP {
                                break;
                            }
                            write1(wr, PING);
                        }
                    }
                    // SAFETY: each side closes its own two descriptors once.
                    unsafe {
                        libc::close(rd);
                        libc::close(wr);
                    }
                    trips
                }));
            }
        }
        barrier.wait();
        let start = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Relaxed);
        let trips: u64 = handles
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                let t = h.join().expect("ping-pong thread");
                if i % 2 == 0 {
                    t
                } else {
                    0
                }
            })
            .sum();
        trips as f64 / start.elapsed().as_secs_f64() / pairs as f64
    }

    type Runner = fn(usize, &[usize], f64) -> f64;

    fn runner<S: LazyMm + Default + Send + Sync + 'static>() -> Runner {
        |pairs, cpus, secs| run(Arc::new(S::default()), pairs, cpus, secs)
    }

    pub fn main() {
        let cpus = ipi::allowed_cpus();
        if cpus.is_empty() {
            println!("SKIP: context_switch: could not read this process's CPU affinity");
            return;
        }
        let secs: f64 = std::env::var("LAZYMM_CS_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.5);
        let schemes: Vec<(&str, Runner)> = vec![
            ("none", runner::<Floor>()),
            ("refcount", runner::<Refcount>()),
            ("shootdown", runner::<Shootdown>()),
            ("tagged", runner::<Tagged<SLOTS>>()),
            ("cached", runner::<Cached<SLOTS>>()),
            ("hazard", runner::<HazardLazy<SLOTS>>()),
            ("hazard_nofence", runner::<HazardLazyNoFence<SLOTS>>()),
            ("loaded_mm", runner::<LoadedMm<SLOTS>>()),
            ("rcu_mm", runner::<RcuMm<SLOTS>>()),
        ];
        let max_pairs = (cpus.len() / 2).clamp(1, SLOTS / 2);
        let mut pair_counts = vec![1];
        while pair_counts.last().unwrap() * 2 <= max_pairs {
            pair_counts.push(pair_counts.last().unwrap() * 2);
        }
        if *pair_counts.last().unwrap() != max_pairs {
            pair_counts.push(max_pairs);
        }
        println!(
            "context_switch (will-it-scale context_switch1_threads shape): pipe ping-pong pairs, \
             each thread pinned to its own CPU of {} allowed, {secs} s per cell, median of 3 rounds",
            cpus.len()
        );
        println!(
            "{:>5} {:<15} {:>14} {:>12}",
            "pairs", "scheme", "trips/s/pair", "vs none"
        );
        for &pairs in &pair_counts {
            // Warm-up (threads, pipes, frequency), not recorded.
            schemes[0].1(pairs, &cpus, secs);
            let mut cells: Vec<Vec<f64>> = vec![Vec::new(); schemes.len()];
            for _ in 0..3 {
                for (i, (_, f)) in schemes.iter().enumerate() {
                    cells[i].push(f(pairs, &cpus, secs));
                }
            }
            let med: Vec<f64> = cells
                .into_iter()
                .map(|mut v| {
                    v.sort_by(f64::total_cmp);
                    v[1]
                })
                .collect();
            for (i, (name, _)) in schemes.iter().enumerate() {
                println!(
                    "{:>5} {:<15} {:>14.0} {:>+11.1}%",
                    pairs,
                    name,
                    med[i],
                    100.0 * (med[0] / med[i] - 1.0)
                );
            }
        }
        println!("(vs none: time per round trip relative to no scheme; + is slower)");
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // and must not run for seconds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    #[cfg(all(target_os = "linux", not(any(loom, lazymm_shuttle))))]
    imp::main();
    #[cfg(not(all(target_os = "linux", not(any(loom, lazymm_shuttle)))))]
    println!("SKIP: context_switch: needs Linux (pipes, CPU pinning) and a build without the checkers' cfgs");
}
