//! Lockless page-table walkers against page-table frees, with the crate's
//! [`WalkTracker`] and real sync IPIs (`tlb_remove_table_sync_mm()`).
//!
//! The APs walk a page-table page (512 entries) with interrupts off, as
//! GUP-fast does, bracketed by the tracker's begin/end. The boot CPU
//! "collapses": it links a fresh page, asks the tracker which CPUs are
//! inside a walk, IPIs them and waits (through [`Qemu`]'s [`IpiSync`]: they
//! take the IPI only once their walk is over), then frees the old page by
//! writing a poison pattern over it. A walker that reads the poison read a
//! freed page-table page: the check that fires. With the kernel feature
//! `bug-variants` and `-append "bug=walk_skip_sync"`, the tracker's
//! `bug_skip_sync_without_ipi` skips the sync after a flush that sent no
//! IPI, and the walkers catch the free.
//!
//! [`IpiSync`]: lazymm::platform::IpiSync

use crate::cpus::nr_cpus;
use crate::kprintln;
use crate::wiring::{Mm, Qemu, NR_CPUS};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use lazymm::platform::CurrentCpu;
use lazymm::walk::{BeginOrder, FlushDelivery, WalkTracker};
use spin::Once;
use x86_64::instructions::interrupts;

const ENTRIES: usize = 512;
const VALID: u64 = 0x0000_0000_0020_0067;
const POISON: u64 = 0xdead_beef_dead_beef;
/// Collapses per run, at least; the run goes on until the walkers have
/// made [`MIN_WALKS`] walks (so a variant that frees early meets many
/// walks) and stops early once a check fired.
const ROUNDS: usize = 2_000;
const MIN_WALKS: usize = 100_000;
const MAX_ROUNDS: usize = 1_000_000;
/// The mm the walkers walk (a made-up page-table address; never loaded).
const MM: Mm = Mm(0x20_0000);

#[allow(clippy::declare_interior_mutable_const)] // an array initialiser
const ENTRY: AtomicU64 = AtomicU64::new(VALID);
#[allow(clippy::declare_interior_mutable_const)]
const PAGE: [AtomicU64; ENTRIES] = [ENTRY; ENTRIES];
static PAGES: [[AtomicU64; ENTRIES]; 2] = [PAGE; 2];
static LIVE: AtomicUsize = AtomicUsize::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static WALKS: AtomicUsize = AtomicUsize::new(0);
static FREED_READS: AtomicUsize = AtomicUsize::new(0);
static TRACKER: Once<WalkTracker<NR_CPUS>> = Once::new();

fn tracker() -> &'static WalkTracker<NR_CPUS> {
    TRACKER.get().expect("tracker built by run()")
}

/// An AP's task: walk until the collapser stops.
fn walker(cpu: usize) {
    crate::watchdog::stage(cpu, &"walk", &"walker");
    while !STOP.load(Relaxed) {
        let freed = interrupts::without_interrupts(|| {
            tracker().walk(&Qemu, MM, || {
                // Acquire: pairs with the collapser's release link.
                let page = &PAGES[LIVE.load(Acquire)];
                page.iter().any(|e| e.load(Relaxed) == POISON)
            })
        });
        if freed {
            FREED_READS.fetch_add(1, Relaxed);
        }
        WALKS.fetch_add(1, Relaxed);
    }
}

fn fill(page: usize, v: u64) {
    for e in &PAGES[page] {
        e.store(v, Relaxed);
    }
}

/// Runs the walker torture; true when no walker read a freed page.
pub fn run() -> bool {
    let tracker = TRACKER.call_once(|| match super::arg("bug") {
        #[cfg(feature = "bug-variants")]
        Some("walk_skip_sync") => {
            kprintln!("lazymm-qemu: walk: bug variant bug_skip_sync_without_ipi");
            WalkTracker::with_bug(BeginOrder::StoreMb, lazymm::walk::Bug::SkipSyncWithoutIpi)
        }
        _ => WalkTracker::new(BeginOrder::StoreMb),
    });
    crate::smp::start_on_aps(nr_cpus(), walker);
    crate::watchdog::stage(0, &"walk", &"collapser");
    let (mut synced, mut ipis, mut rounds) = (0, 0, 0);
    while (rounds < ROUNDS || WALKS.load(Relaxed) < MIN_WALKS)
        && rounds < MAX_ROUNDS
        && FREED_READS.load(Relaxed) == 0
    {
        rounds += 1;
        let old = LIVE.load(Relaxed);
        let new = 1 - old;
        fill(new, VALID);
        // Release: the new page's entries before the link.
        LIVE.store(new, Release);
        // The flush after an unlink went by hardware broadcast here (no
        // IPI reached the walkers), so the sync is needed.
        if tracker.sync_needed(FlushDelivery::NoIpi) {
            let pin = Qemu.pin();
            ipis += tracker.sync_pinned(&Qemu, &pin, MM, NR_CPUS);
            synced += 1;
        }
        fill(old, POISON);
    }
    STOP.store(true, Relaxed);
    crate::smp::wait_aps(nr_cpus());
    let freed = FREED_READS.load(Relaxed);
    kprintln!(
        "lazymm-qemu: walk: {rounds} page-table frees, {synced} syncs, {ipis} sync IPIs, {} walks on {} CPUs, freed-page reads = {freed}",
        WALKS.load(Relaxed),
        nr_cpus() - 1
    );
    if freed != 0 {
        kprintln!(
            "lazymm-qemu: CHECK FIRED: walk: a walker read a freed page-table page ({freed} walks)"
        );
    }
    freed == 0
}
