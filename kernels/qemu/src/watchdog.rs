//! The kernel's watchdog: every wait loop goes through [`Wait`], which
//! counts its rounds. A wait that goes on past the limit fails the boot
//! with one line naming the stuck CPU, the stage it is in and what it
//! waits for, then every CPU's stage (`WATCHDOG: ...`, then `FAIL`),
//! instead of leaving the host's script to notice a silent serial line.
//!
//! The limit is counted in rounds, not time: a busy host slows every
//! virtual CPU alike. The default, 2^32 rounds, is minutes of emulated
//! spinning, far past any wait of a correct run (the longest, a barrier
//! at the end of a round, is thousands of switches); `watchdog=N` on the
//! command line sets it to 2^N (the hung-kernel check in `ci/qemu.sh` uses
//! a small one).

use crate::cpus::NR_CPUS;
use crate::hw::Exit;
use crate::kprintln;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Per CPU: the stage (a static name) it is in, and its round there.
/// Only the CPU writes its own; the watchdog reads them to report
/// (relaxed: nothing is published through them).
static STAGE: [AtomicPtr<&'static str>; NR_CPUS] = [const { AtomicPtr::new(IDLE) }; NR_CPUS];
static DETAIL: [AtomicPtr<&'static str>; NR_CPUS] = [const { AtomicPtr::new(NONE) }; NR_CPUS];
static ROUND: [AtomicUsize; NR_CPUS] = [const { AtomicUsize::new(0) }; NR_CPUS];

const IDLE: *mut &'static str = &"boot" as *const &'static str as *mut _;
const NONE: *mut &'static str = &"" as *const &'static str as *mut _;

/// `cpu` enters `stage` (`detail`: the scheme, or ""), at round 0.
pub fn stage(cpu: usize, stage: &'static &'static str, detail: &'static &'static str) {
    STAGE[cpu].store(stage as *const _ as *mut _, Relaxed);
    DETAIL[cpu].store(detail as *const _ as *mut _, Relaxed);
    ROUND[cpu].store(0, Relaxed);
}

/// `cpu` begins round `r` of its stage.
pub fn round(cpu: usize, r: usize) {
    ROUND[cpu].store(r, Relaxed);
}

/// The limit in rounds (read from the command line once).
static LIMIT: AtomicU64 = AtomicU64::new(0);

/// The limit in rounds: 2^`watchdog` from the command line, 2^32 by default.
pub fn limit() -> u64 {
    match LIMIT.load(Relaxed) {
        0 => {
            let log2 = crate::boot::arg("watchdog")
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(32)
                .min(62);
            LIMIT.store(1 << log2, Relaxed);
            1 << log2
        }
        n => n,
    }
}

fn name(p: &AtomicPtr<&'static str>) -> &'static str {
    // SAFETY: every value stored is a `&'static &'static str` (`stage`, and
    // the initial IDLE / NONE).
    unsafe { *p.load(Relaxed) }
}

/// "lazy/shootdown round 12" for `cpu`.
fn describe(cpu: usize) -> impl core::fmt::Display {
    struct D(usize);
    impl core::fmt::Display for D {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            let (s, d) = (name(&STAGE[self.0]), name(&DETAIL[self.0]));
            write!(f, "{s}")?;
            if !d.is_empty() {
                write!(f, "/{d}")?;
            }
            write!(f, " round {}", ROUND[self.0].load(Relaxed))
        }
    }
    D(cpu)
}

/// A wait loop of `cpu` for `what`: call [`spin`](Self::spin) once per round.
pub struct Wait {
    cpu: usize,
    what: &'static str,
    rounds: u64,
    limit: u64,
}

impl Wait {
    /// A wait of `cpu` for `what` ("cpu2's IPI acknowledgement").
    pub fn new(cpu: usize, what: &'static str) -> Self {
        Self {
            cpu,
            what,
            rounds: 0,
            limit: limit(),
        }
    }

    /// One more round of the wait (a pause instruction); fails the boot
    /// once the limit is reached.
    pub fn spin(&mut self) {
        self.rounds += 1;
        if self.rounds >= self.limit {
            fire(self.cpu, self.what, self.rounds);
        }
        core::hint::spin_loop();
    }
}

/// Names the stuck CPU, its stage and what it waits for, every CPU's
/// stage, and fails the boot.
pub fn fire(cpu: usize, what: &str, rounds: u64) -> ! {
    kprintln!(
        "WATCHDOG: cpu{cpu} stuck in {} waiting for {what} ({rounds} rounds)",
        describe(cpu)
    );
    for c in 0..crate::cpus::nr_cpus() {
        kprintln!("WATCHDOG:   cpu{c}: {}", describe(c));
    }
    kprintln!("FAIL");
    crate::hw::exit(Exit::Failure)
}
