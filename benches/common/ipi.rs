#![allow(dead_code)] // shared by benches/ipi.rs and compare; each uses a part

//! A real IPI, measured on the machine the benchmark runs on (Linux).
//!
//! * **Broadcast and wait**: `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`
//!   (after `MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED`). The kernel sends
//!   an IPI to every CPU currently running a thread of this process and
//!   waits until each has run its handler. With `k` busy threads pinned to
//!   `k` other CPUs, one call is one IPI round to `k` CPUs — what a
//!   shoot-lazy IPI or a TLB flush IPI costs the sender. With no other
//!   thread running it sends none: the syscall alone, the baseline.
//! * **Targeted, one CPU**: a signal (`pthread_kill`, `SIGUSR1`) to one
//!   busy pinned thread whose handler bumps an atomic the sender spins on.
//!   The IPI is inside (the target is running user code in another CPU),
//!   plus the signal frame, the handler and `sigreturn`: an **upper bound**
//!   on a kernel's targeted IPI, labelled as such wherever it is printed.
//!
//! Shared by `benches/ipi.rs` (criterion) and `compare` (which measures the
//! IPI cost its lifetime model uses in the same run). Linux only; both
//! callers print `SKIP:` with the reason where this returns an error.

use lazymm::check::sync::thread::Arc;
use lazymm::check::sync::{AtomicBool, AtomicUsize, Ordering::*};
use std::time::{Duration, Instant};

/// Which CPUs this process may run on (its affinity mask), in order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity
    // writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Pins the calling thread to `cpu`; false if the kernel refused.
pub fn pin(cpu: usize) -> bool {
    // SAFETY: as in allowed_cpus; CPU_SET writes inside the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

fn membarrier(cmd: libc::c_int) -> libc::c_long {
    // SAFETY: membarrier takes (cmd, flags, cpu_id) and touches no memory
    // of ours.
    unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0, 0) }
}

const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

/// Registers this process for private expedited membarrier.
pub fn membarrier_register() -> Result<(), String> {
    if membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0 {
        return Err(format!(
            "membarrier(REGISTER_PRIVATE_EXPEDITED) refused: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// One `membarrier(PRIVATE_EXPEDITED)`: an IPI to every other CPU running
/// a thread of this process, and the wait for all of them.
#[inline]
pub fn membarrier_expedited() {
    let r = membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    assert_eq!(
        r, 0,
        "membarrier(PRIVATE_EXPEDITED) failed after registering"
    );
}

/// Threads spinning in user space, each pinned to one CPU, until dropped.
pub struct Busy {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Acknowledgements of the signal handler (`SIGUSR1`).
static ACKS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn ack(_sig: libc::c_int) {
    // Release: pairs with the sender's acquire spin.
    ACKS.fetch_add(1, Release);
}

impl Busy {
    /// Starts one busy thread on each of `cpus` and returns once every one
    /// runs pinned there. Err if a pin fails.
    pub fn start(cpus: &[usize]) -> Result<Busy, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let up = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        let threads = cpus
            .iter()
            .map(|&cpu| {
                let (stop, up, failed) = (stop.clone(), up.clone(), failed.clone());
                std::thread::spawn(move || {
                    if !pin(cpu) {
                        failed.store(true, Relaxed);
                    }
                    // Release: pairs with start()'s acquire wait.
                    up.fetch_add(1, Release);
                    // Relaxed: a stop flag; join() orders the rest.
                    while !stop.load(Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        let b = Busy { stop, threads };
        // Acquire: pairs with each thread's release increment.
        while up.load(Acquire) < cpus.len() {
            std::thread::yield_now();
        }
        if failed.load(Relaxed) {
            return Err(format!(
                "could not pin a busy thread to one of CPUs {cpus:?}"
            ));
        }
        Ok(b)
    }

    /// One targeted round trip: `SIGUSR1` to busy thread `i`, spin until
    /// its handler acknowledged.
    pub fn signal_round_trip(&self, i: usize) {
        use std::os::unix::thread::JoinHandleExt;
        // Acquire: pairs with the handler's release increment.
        let before = ACKS.load(Acquire);
        // SAFETY: the thread is alive (joined only in drop) and SIGUSR1 has
        // our handler (install_ack_handler).
        let r = unsafe { libc::pthread_kill(self.threads[i].as_pthread_t(), libc::SIGUSR1) };
        assert_eq!(r, 0, "pthread_kill failed");
        while ACKS.load(Acquire) == before {
            std::hint::spin_loop();
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        for t in self.threads.drain(..) {
            t.join().expect("busy thread");
        }
    }
}

/// Installs the acknowledging `SIGUSR1` handler (once per process).
pub fn install_ack_handler() -> Result<(), String> {
    // SAFETY: a zeroed sigaction with a valid handler address and an empty
    // mask; the handler only does an atomic add (async-signal-safe).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = ack as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = libc::SA_RESTART;
        if libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()) != 0 {
            return Err(format!("sigaction: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// What [`measure`] found, in ns per call.
#[derive(Clone, Copy, Debug)]
pub struct IpiCost {
    /// `membarrier` with no other thread running: the syscall, no IPI.
    pub syscall_ns: f64,
    /// `membarrier` with one busy thread on another CPU: one IPI and wait.
    pub broadcast_1_ns: f64,
    /// A signal round trip to one busy thread (upper bound of a targeted IPI).
    pub signal_ns: f64,
}

impl IpiCost {
    /// The IPI's own cost: a membarrier that IPIs one CPU minus one that
    /// IPIs none (send, the remote handler, the wait for it).
    pub fn ipi_ns(&self) -> f64 {
        (self.broadcast_1_ns - self.syscall_ns).max(0.0)
    }
}

fn per_call(calls: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        f();
    }
    let d: Duration = start.elapsed();
    d.as_nanos() as f64 / f64::from(calls)
}

/// Measures the IPI costs with the calling thread on the first allowed CPU
/// and one busy thread on the second, `calls` calls each (median of 5
/// rounds). Err with the reason where it cannot (one CPU, membarrier
/// refused, pinning refused). The caller's affinity is restored.
pub fn measure(calls: u32) -> Result<IpiCost, String> {
    let cpus = allowed_cpus();
    if cpus.len() < 2 {
        return Err(format!(
            "needs 2 CPUs to send an IPI to another one, this process may use {}",
            cpus.len()
        ));
    }
    membarrier_register()?;
    install_ack_handler()?;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let r = std::thread::scope(|s| {
        s.spawn(|| -> Result<IpiCost, String> {
            if !pin(cpus[0]) {
                return Err(format!(
                    "could not pin the measuring thread to CPU {}",
                    cpus[0]
                ));
            }
            let syscall_ns = median(
                (0..5)
                    .map(|_| per_call(calls, membarrier_expedited))
                    .collect(),
            );
            let busy = Busy::start(&cpus[1..2])?;
            let broadcast_1_ns = median(
                (0..5)
                    .map(|_| per_call(calls, membarrier_expedited))
                    .collect(),
            );
            let signal_ns = median(
                (0..5)
                    .map(|_| per_call(calls, || busy.signal_round_trip(0)))
                    .collect(),
            );
            Ok(IpiCost {
                syscall_ns,
                broadcast_1_ns,
                signal_ns,
            })
        })
        .join()
        .expect("measuring thread")
    });
    r
}
