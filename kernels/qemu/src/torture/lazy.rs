//! The lazy-mm torture, once per scheme, on all CPUs: processes created,
//! their threads run on several CPUs, switched to kernel threads (lazy
//! TLB: the CR3 stays) and back, exiting while other CPUs still hold the mm
//! lazily; at the end every CPU goes down and the kernel checks for leaks.
//!
//! Each round the boot CPU creates [`PROCS`] processes of [`THREADS`]
//! threads, placed on different CPUs (rotating with the round); every CPU
//! then runs its threads in a pseudo-random order, with kernel-thread
//! switches between them, and exits them; a CPU ends the round idle on
//! whatever CR3 it last loaded. The checks are the kernel's own
//! (`wiring.rs`): every use of an mm and every switch checks the mm is not
//! freed and that CR3 is the mm's; every user task reads its process's
//! memory through CR3 and compares it with the process's pattern; every
//! free checks that no CPU still has the tables in CR3, then poisons them.

use crate::cpus::nr_cpus;
use crate::smp::{start_on_aps, wait_aps};
use crate::watchdog::{self, Wait};
use crate::wiring::{Mm, Os, NR_CPUS};
use crate::{kprintln, wiring::check};
use core::sync::atomic::{AtomicUsize, Ordering::*};
use lazymm::cpu::CpuId;
use lazymm::lazy::cached::Cached;
use lazymm::lazy::hazard::{HazardLazy, HazardLazyNoFence};
use lazymm::lazy::loaded::LoadedMm;
use lazymm::lazy::rcu_mm::RcuMm;
use lazymm::lazy::refcount::Refcount;
use lazymm::lazy::shootdown::Shootdown;
use lazymm::lazy::tagged::Tagged;
use lazymm::lazy::{LazyMm, MmHandle};
use x86_64::instructions::interrupts;

const ROUNDS: usize = 40;
const PROCS: usize = 2;
const THREADS: usize = 3;
/// Thread runs per CPU and round (each a switch in, a use, maybe a
/// kernel-thread switch), before the exits.
const RUNS: usize = 8;

/// The kernel under test (an `&Os<S>`), for the APs' task.
static OS: AtomicUsize = AtomicUsize::new(0);
/// The round's processes (mm words).
#[allow(clippy::declare_interior_mutable_const)] // an array initialiser
const NONE: AtomicUsize = AtomicUsize::new(0);
static PROCESSES: [AtomicUsize; PROCS] = [NONE; PROCS];

static BAR_COUNT: AtomicUsize = AtomicUsize::new(0);
static BAR_GEN: AtomicUsize = AtomicUsize::new(0);

/// All CPUs meet here, interrupts on (a CPU waiting here is idle: lazy on
/// its last mm, and takes IPIs).
fn barrier() {
    // Acquire: pairs with the last arriver's release increment.
    let gen = BAR_GEN.load(Acquire);
    if BAR_COUNT.fetch_add(1, AcqRel) == nr_cpus() - 1 {
        BAR_COUNT.store(0, Relaxed);
        // Release: everything before the barrier, for every waiter.
        BAR_GEN.fetch_add(1, Release);
    } else {
        interrupts::enable();
        let mut wait = Wait::new(crate::cpus::this_cpu(), "the other CPUs at the barrier");
        while BAR_GEN.load(Acquire) == gen {
            wait.spin();
        }
    }
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// One CPU's share of a round: its threads of the round's processes.
fn round<S: LazyMm + Sync>(os: &Os<S>, cpu: usize, r: usize) {
    let me = CpuId::new(cpu);
    let mut mine = [Mm(0); PROCS * THREADS];
    let mut n = 0;
    for (j, p) in PROCESSES.iter().enumerate() {
        for k in 0..THREADS {
            if (r + j + k) % nr_cpus() == cpu {
                mine[n] = Mm::from_word(p.load(Relaxed));
                n += 1;
            }
        }
    }
    if n == 0 {
        return;
    }
    let mut rng = 0x9e37_79b9_7f4a_7c15 ^ ((cpu as u64) << 32 | r as u64);
    for _ in 0..RUNS {
        let mm = mine[xorshift(&mut rng) as usize % n];
        interrupts::without_interrupts(|| os.switch_to(me, Some(mm)));
        if xorshift(&mut rng).is_multiple_of(2) {
            interrupts::without_interrupts(|| os.switch_to(me, None));
        }
    }
    for &mm in &mine[..n] {
        interrupts::without_interrupts(|| {
            os.switch_to(me, Some(mm));
            os.exit(me);
        });
    }
    interrupts::without_interrupts(|| os.switch_to(me, None));
}

/// Every CPU's part: the rounds, then down.
fn cpu_part<S: LazyMm + Sync>(cpu: usize) {
    // SAFETY: `run` stored an `&Os<S>` that outlives the task.
    let os = unsafe { &*(OS.load(Acquire) as *const Os<S>) };
    watchdog::stage(cpu, &"lazy", const { &S::NAME });
    for r in 0..ROUNDS {
        watchdog::round(cpu, r);
        barrier();
        if cpu == 0 {
            for (j, p) in PROCESSES.iter().enumerate() {
                let pattern = (r << 8 | j) + 1;
                let mm = os.create(THREADS, pattern);
                check!(
                    mm.is_some(),
                    "lifetime: no free mm slot in round {r} (a leak?)"
                );
                p.store(mm.map_or(0, Mm::to_word), Relaxed);
            }
        }
        barrier();
        round(os, cpu, r);
    }
    barrier();
    interrupts::without_interrupts(|| os.cpu_down(CpuId::new(cpu)));
    barrier();
}

/// Runs the torture on `os` and prints its summary line; true on success.
pub fn run<S: LazyMm + Sync>(os: &Os<S>) -> bool {
    // Release: the kernel's construction before the APs' acquire load.
    OS.store(os as *const Os<S> as usize, Release);
    start_on_aps(nr_cpus(), cpu_part::<S>);
    cpu_part::<S>(0);
    wait_aps(nr_cpus());
    let leaks = os.finish();
    let s = &os.stats;
    kprintln!(
        "lazymm-qemu: {:<10} {} switches, {} lazy entries, {} exits, {} frees, {} CR3 loads, {} shoot-lazy IPIs, stale reads 0, use-after-free 0, leaks {leaks}",
        S::NAME,
        s.switches.load(Relaxed),
        s.lazy_entries.load(Relaxed),
        s.exits.load(Relaxed),
        s.frees.load(Relaxed),
        s.cr3_loads.load(Relaxed),
        s.shoot_ipis.load(Relaxed),
    );
    check!(leaks == 0, "lifetime: {} leaked {leaks} mms", S::NAME);
    true
}

/// Runs the lazy-mm torture with every scheme of the crate, each on a
/// fresh kernel (`bug=refcount_drop_early` on the command line swaps in
/// refcount's `bug_drop_before_last_use` in a `bug-variants` build).
pub fn run_schemes() -> bool {
    #[allow(unused_mut)]
    let mut refcount = Refcount::new();
    #[cfg(feature = "bug-variants")]
    if crate::torture::arg("bug") == Some("refcount_drop_early") {
        kprintln!("lazymm-qemu: refcount: bug variant bug_drop_before_last_use");
        refcount = Refcount::with_bug(lazymm::lazy::refcount::Bug::DropBeforeLastUse);
    }
    #[cfg(feature = "bug-variants")]
    if crate::torture::arg("bug") == Some("final_drop_hangs") {
        kprintln!(
            "lazymm-qemu: shootdown: bug variant final_drop_hangs (the watchdog must name it)"
        );
        return run_on(crate::hang::HangingDrop(Shootdown::new()));
    }
    run_on(refcount)
        && run_on(Shootdown::new())
        && run_on(Tagged::<NR_CPUS>::new())
        && run_on(Cached::<NR_CPUS>::new())
        && run_on(HazardLazy::<NR_CPUS>::new())
        && run_on(HazardLazyNoFence::<NR_CPUS>::new())
        && run_on(LoadedMm::<NR_CPUS>::new())
        && run_on(RcuMm::<NR_CPUS>::new())
}

/// One scheme on a fresh kernel, in a frame of its own. With every `Os`
/// built inline in [`run_schemes`], their per-CPU tables shared one stack
/// frame, and with the eighth scheme the kernel double-faulted at boot
/// (vector 8, the stack-overflow symptom); a frame per scheme does not.
#[inline(never)]
fn run_on<S: LazyMm + Sync>(scheme: S) -> bool {
    run(&Os::new(scheme))
}
