//! Batched unmap flushes on QEMU's TLB (`tlb::batched`): Nadav Amit's race.
//!
//! Directed rounds on one process, CPU 0 as the mprotect-style path, CPU 1
//! as reclaim, CPUs 2 and 3 as users that keep running the process:
//!
//! 1. the users read the page (each caches the translation to frame F);
//! 2. reclaim takes the PTL, moves the PTE to a guard frame, records a
//!    pending batched flush (`FlushBatched::set_pending`) and drops the PTL
//!    **without flushing** (the flush comes later, batched);
//! 3. the mprotect path takes the PTL through `PteLock::lock_for_change`,
//!    which runs the pending flush (an `invlpg` IPI to every CPU running
//!    the process, and locally); it finds the PTE already changed, drops
//!    the PTL and returns — and from then on treats F as unreachable
//!    through the page: it writes poison over it;
//! 4. the users read the page again: the guard frame, or, if a stale
//!    translation survived the return, the poison (`CHECK FIRED:
//!    batched:`).
//!
//! `-append "bug=batched_no_flush_pending"` (a `bug-variants` build) runs
//! the crate's `bug_no_flush_pending`: the path before Gorman's 2017 fix.

use crate::watchdog::{self, Wait};
use crate::wiring::{check, Mm, NR_CPUS};
use crate::{ipi, kprintln, mm};
use core::sync::atomic::{AtomicUsize, Ordering::*};
use lazymm::tlb::batched::{FlushBatched, PteLock};
use spin::Once;
use x86_64::instructions::interrupts;

const ROUNDS: usize = 200;
/// The process (mm slot 0, free once the TLB torture has run).
const P: Mm = Mm(0);
/// What the page's frame holds while mapped, and the guard frame.
const LIVE: u64 = 0x1111_0000_0000_0001;
const GUARD: u64 = 0x2222_0000_0000_0002;
/// The frames: 0 = F (mapped, then freed by the mprotect path), 1 = guard.
const F: usize = 0;
const G: usize = 1;

static BATCHED: Once<FlushBatched> = Once::new();
static PTL: PteLock = PteLock::new();
static STEP: AtomicUsize = AtomicUsize::new(0);
static FLUSHES: AtomicUsize = AtomicUsize::new(0);
static IPIS: AtomicUsize = AtomicUsize::new(0);
static READS: AtomicUsize = AtomicUsize::new(0);

/// Waits until the round's handshake reached `want` (steps only grow).
fn wait_step(me: usize, want: usize) {
    let mut wait = Wait::new(me, "the round's handshake");
    // Acquire: pairs with the release store that set the step.
    while STEP.load(Acquire) < want {
        ipi::serve(me);
        wait.spin();
    }
}

fn next(step: usize) {
    // Release: this CPU's page-table and frame writes before the next step.
    STEP.store(step, Release);
}

/// A full flush of P: `invlpg` on every CPU (the users run P), then here.
fn flush_mm(me: usize) {
    let others = ((1u64 << NR_CPUS) - 1) & !(1 << me);
    let n = ipi::call_many(me, others, |_, _, _| mm::invlpg_user(), 0, 0);
    mm::invlpg_user();
    FLUSHES.fetch_add(1, Relaxed);
    IPIS.fetch_add(n, Relaxed);
}

fn read(cpu: usize, round: usize, after_mprotect: bool) {
    let v = mm::read_user();
    READS.fetch_add(1, Relaxed);
    let ok = if after_mprotect {
        v == GUARD
    } else {
        v == LIVE || v == GUARD
    };
    check!(
        ok,
        "batched: cpu{cpu} read {v:#x} in round {round}{}: a stale translation to a freed frame",
        if after_mprotect {
            " after the mprotect path returned"
        } else {
            ""
        }
    );
}

fn cpu_part(cpu: usize) {
    // Everyone runs P: its CR3, no laziness here.
    interrupts::without_interrupts(|| mm::load_cr3(mm::pml4(P.0)));
    watchdog::stage(cpu, &"batched", &"");
    for r in 0..ROUNDS {
        watchdog::round(cpu, r);
        let base = 4 * r;
        match cpu {
            0 => {
                // Set the round up: the page on F, every TLB clean.
                mm::fill_frame(F, LIVE);
                mm::remap(P.0, F);
                interrupts::without_interrupts(|| flush_mm(cpu));
                next(base + 1);
                wait_step(cpu, base + 3);
                // The mprotect path.
                interrupts::without_interrupts(|| {
                    let batched = BATCHED.get().expect("built by run()");
                    PTL.lock_for_change(batched, false, || ipi::serve(cpu), || flush_mm(cpu));
                    // The PTE is already the guard's: nothing of our own to flush.
                    PTL.unlock();
                });
                mm::fill_frame(F, mm::POISON);
                next(base + 4);
            }
            1 => {
                wait_step(cpu, base + 2);
                // Reclaim: clear under the PTL, flush later.
                interrupts::without_interrupts(|| {
                    PTL.lock(|| ipi::serve(cpu));
                    mm::remap(P.0, G);
                    BATCHED.get().expect("built by run()").set_pending();
                    PTL.unlock();
                });
                next(base + 3);
                wait_step(cpu, base + 4);
            }
            _ => {
                wait_step(cpu, base + 1);
                interrupts::without_interrupts(|| read(cpu, r, false));
                if cpu == 2 {
                    // Both users have the translation cached: go on.
                    let mut wait = Wait::new(cpu, "both users' reads");
                    while READS.load(Acquire) < 4 * r + 2 {
                        wait.spin();
                    }
                    next(base + 2);
                }
                wait_step(cpu, base + 4);
                interrupts::without_interrupts(|| read(cpu, r, true));
            }
        }
        // Everyone has done the round before the next one is set up.
        ROUND_DONE.fetch_add(1, AcqRel);
        let mut wait = Wait::new(cpu, "the other CPUs to finish the round");
        while ROUND_DONE.load(Acquire) < NR_CPUS * (r + 1) {
            ipi::serve(cpu);
            wait.spin();
        }
    }
    interrupts::without_interrupts(|| mm::load_cr3(mm::kernel_pml4()));
}

static ROUND_DONE: AtomicUsize = AtomicUsize::new(0);

/// Runs the batched-flush rounds; true when no stale translation was read.
pub fn run() -> bool {
    BATCHED.call_once(|| match super::arg("bug") {
        #[cfg(feature = "bug-variants")]
        Some("batched_no_flush_pending") => {
            kprintln!("lazymm-qemu: batched: bug variant bug_no_flush_pending");
            FlushBatched::with_bug(lazymm::tlb::batched::Bug::NoFlushPending)
        }
        _ => FlushBatched::new(),
    });
    mm::build(P.0, LIVE);
    mm::fill_frame(G, GUARD);
    crate::smp::start_on_aps(NR_CPUS, cpu_part);
    cpu_part(0);
    crate::smp::wait_aps(NR_CPUS);
    mm::poison(P.0);
    kprintln!(
        "lazymm-qemu: batched: {ROUNDS} reclaim-vs-mprotect rounds, {} flushes, {} flush IPIs, {} reads, stale reads 0",
        FLUSHES.load(Relaxed),
        IPIS.load(Relaxed),
        READS.load(Relaxed),
    );
    true
}
