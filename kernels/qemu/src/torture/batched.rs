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
//!
//! Then [`ROUNDS`] *two-page* rounds: pages X and Y of the process under two
//! page-table locks (split PTLs), one pending word for the mm. Reclaim of X
//! is pending; the mprotect path on X runs the pending flush, and between
//! its flush and its clear of the pending word the users cache Y again and
//! reclaim clears Y (a new pending batch) — Huang Ying's race. The mprotect
//! path on Y must still flush before it returns and frees Y's frame.
//! `bug=batched_bool_flag` runs the crate's `bug_bool_flag` (Gorman's
//! boolean: the clear loses Y's pending flush) and is caught there.

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
/// The frames: 0 = F (mapped, then freed by the mprotect path), 1 = guard,
/// 2 = page Y's frame in the two-page rounds.
const F: usize = 0;
const G: usize = 1;
const FY: usize = 2;
const LIVE_Y: u64 = 0x3333_0000_0000_0003;

static BATCHED: Once<FlushBatched> = Once::new();
static PTL: PteLock = PteLock::new();
/// Page Y's page-table lock (the two-page rounds).
static PTL_Y: PteLock = PteLock::new();
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

/// Reclaim of user page `page`: under its page-table lock, the PTE moves
/// to the guard frame and a batched flush is recorded as pending; no flush.
fn reclaim(cpu: usize, ptl: &PteLock, page: usize) {
    interrupts::without_interrupts(|| {
        ptl.lock(|| ipi::serve(cpu));
        mm::remap_page(P.0, page, G);
        BATCHED.get().expect("built by run()").set_pending();
        ptl.unlock();
    });
}

/// A full flush of P: `invlpg` of both pages on every CPU (the users run
/// P), then here.
fn flush_mm(me: usize) {
    let others = ((1u64 << NR_CPUS) - 1) & !(1 << me);
    let n = ipi::call_many(me, others, |_, _, _| mm::invlpg_user_pages(), 0, 0);
    mm::invlpg_user_pages();
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
                reclaim(cpu, &PTL, 0);
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
    two_pages(cpu);
    interrupts::without_interrupts(|| mm::load_cr3(mm::kernel_pml4()));
}

static ROUND_DONE: AtomicUsize = AtomicUsize::new(0);

/// Reads page `page` (0 = X, 1 = Y) and checks it against what may be
/// mapped: the live frame or the guard, and only the guard once the page's
/// mprotect path returned (`freed`).
fn read_page(cpu: usize, round: usize, page: usize, freed: bool) {
    let v = mm::read_user_page(page);
    READS.fetch_add(1, Relaxed);
    let live = if page == 0 { LIVE } else { LIVE_Y };
    let ok = v == GUARD || (!freed && v == live);
    check!(
        ok,
        "batched: cpu{cpu} read {v:#x} from page {} in two-page round {round}{}: a stale translation to a freed frame",
        if page == 0 { "X" } else { "Y" },
        if freed { " after its mprotect path returned" } else { "" }
    );
}

/// The two-page rounds (module docs): CPU 0 the mprotect path on X, CPU 1
/// reclaim of X and then of Y, CPU 2 the mprotect path on Y and a user,
/// CPU 3 a user.
fn two_pages(cpu: usize) {
    watchdog::stage(cpu, &"batched", &"two pages");
    let batched = BATCHED.get().expect("built by run()");
    let start = 4 * ROUNDS;
    for r in 0..ROUNDS {
        watchdog::round(cpu, r);
        let b = start + 10 * r;
        match cpu {
            0 => {
                mm::fill_frame(F, LIVE);
                mm::fill_frame(FY, LIVE_Y);
                mm::remap_page(P.0, 0, F);
                mm::remap_page(P.0, 1, FY);
                interrupts::without_interrupts(|| flush_mm(cpu));
                next(b + 1);
                wait_step(cpu, b + 3);
                // The mprotect path on X: its pending flush, and inside it,
                // after the flush and before the clear, Y's users and Y's
                // reclaim.
                interrupts::without_interrupts(|| {
                    PTL.lock_for_change(
                        batched,
                        false,
                        || ipi::serve(cpu),
                        || {
                            flush_mm(cpu);
                            next(b + 4);
                            wait_step(cpu, b + 6);
                        },
                    );
                    PTL.unlock();
                });
                mm::fill_frame(F, mm::POISON);
                next(b + 7);
                wait_step(cpu, b + 9);
            }
            1 => {
                wait_step(cpu, b + 2);
                reclaim(cpu, &PTL, 0);
                next(b + 3);
                wait_step(cpu, b + 5);
                // Y's reclaim, while X's flush is between flush and clear.
                reclaim(cpu, &PTL_Y, 1);
                next(b + 6);
                wait_step(cpu, b + 9);
            }
            _ => {
                wait_step(cpu, b + 1);
                interrupts::without_interrupts(|| {
                    read_page(cpu, r, 0, false);
                    read_page(cpu, r, 1, false);
                });
                if cpu == 2 {
                    let mut wait = Wait::new(cpu, "both users' reads");
                    while READ_Y.fetch_add(0, Acquire) < 2 * r + 1 {
                        wait.spin();
                    }
                }
                READ_Y.fetch_add(1, AcqRel);
                if cpu == 2 {
                    next(b + 2);
                }
                // Inside X's flush: cache Y again (the flush dropped it).
                wait_step(cpu, b + 4);
                interrupts::without_interrupts(|| read_page(cpu, r, 1, false));
                let done = CACHED_Y.fetch_add(1, AcqRel) + 1;
                if done == 2 * (r + 1) {
                    next(b + 5);
                }
                wait_step(cpu, b + 7);
                if cpu == 2 {
                    // The mprotect path on Y: it must flush Y's pending batch.
                    interrupts::without_interrupts(|| {
                        PTL_Y.lock_for_change(batched, false, || ipi::serve(cpu), || flush_mm(cpu));
                        PTL_Y.unlock();
                    });
                    mm::fill_frame(FY, mm::POISON);
                    next(b + 8);
                }
                wait_step(cpu, b + 8);
                interrupts::without_interrupts(|| {
                    read_page(cpu, r, 0, true);
                    read_page(cpu, r, 1, true);
                });
                if CHECKED_Y.fetch_add(1, AcqRel) + 1 == 2 * (r + 1) {
                    next(b + 9);
                }
            }
        }
        wait_step(cpu, b + 9);
        // Everyone has done the round before the next one is set up.
        ROUND_DONE.fetch_add(1, AcqRel);
        let mut wait = Wait::new(cpu, "the other CPUs to finish the two-page round");
        while ROUND_DONE.load(Acquire) < NR_CPUS * (ROUNDS + r + 1) {
            ipi::serve(cpu);
            wait.spin();
        }
    }
}

/// The two users' handshakes in the two-page rounds.
static READ_Y: AtomicUsize = AtomicUsize::new(0);
static CACHED_Y: AtomicUsize = AtomicUsize::new(0);
static CHECKED_Y: AtomicUsize = AtomicUsize::new(0);

/// Runs the batched-flush rounds; true when no stale translation was read.
pub fn run() -> bool {
    if crate::cpus::nr_cpus() != NR_CPUS {
        // The roles are four CPUs' (mprotect, reclaim, two users).
        kprintln!(
            "lazymm-qemu: batched: SKIP: the rounds need {NR_CPUS} CPUs, {} online",
            crate::cpus::nr_cpus()
        );
        return true;
    }
    BATCHED.call_once(|| match super::arg("bug") {
        #[cfg(feature = "bug-variants")]
        Some("batched_no_flush_pending") => {
            kprintln!("lazymm-qemu: batched: bug variant bug_no_flush_pending");
            FlushBatched::with_bug(lazymm::tlb::batched::Bug::NoFlushPending)
        }
        #[cfg(feature = "bug-variants")]
        Some("batched_bool_flag") => {
            kprintln!("lazymm-qemu: batched: bug variant bug_bool_flag");
            FlushBatched::with_bug(lazymm::tlb::batched::Bug::BoolFlag)
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
        "lazymm-qemu: batched: {ROUNDS} reclaim-vs-mprotect rounds and {ROUNDS} two-page rounds, {} flushes, {} flush IPIs, {} reads, stale reads 0",
        FLUSHES.load(Relaxed),
        IPIS.load(Relaxed),
        READS.load(Relaxed),
    );
    true
}
