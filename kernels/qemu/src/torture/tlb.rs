//! The TLB torture: the crate's lazy TLB generations (`tlb::tlbgen`)
//! driving real flushes, with QEMU's software TLB as the oracle.
//!
//! One process; every CPU, at random: runs it (the crate's
//! `LazyTlb::switch_mm`: a CR3 load when another mm was loaded, the
//! generation check on unlazy, the local flush it asks for through
//! [`LocalTlb`](lazymm::platform::LocalTlb)) and reads its page; goes lazy
//! (a kernel thread keeps the CR3 and the TLB entries); switches to the
//! kernel's own mm; or, while running the process, *remaps* its page: the
//! page moves to the next of four frames (filled with a new pattern), the
//! generation goes up, `flush_targets` picks the CPUs to IPI (lazy ones
//! skipped), each runs `flush_action` (`invlpg`, or a switch to the
//! kernel's mm), the local CPU `invlpg`s, and then the old frame is
//! poisoned. QEMU keeps a translation until `invlpg` or a CR3 load, so a
//! flush the protocol missed shows as a read of the poison through the
//! stale entry: `CHECK FIRED: tlb:`. `-append "bug=tlb_unlazy_ignores_gen"`
//! (a `bug-variants` build) runs the crate's `bug_unlazy_ignores_gen`.
//!
//! Directed rounds first. *Lazy* rounds: Lutomirski's case (below).
//! *Reader* rounds: a CPU runs the process and keeps reading its page with
//! interrupts on, never calling `switch_mm`, while CPU 0 remaps: the flush
//! IPI meets a CPU in the middle of using the mm, and every read after it
//! must see the new frame through the same CR3 (only the IPI's `invlpg`
//! stands between the reader and the freed frame). The run counts the
//! flush IPIs that met a reader and fails if none did.
//! `bug=tlb_ipi_defers_flush` (the kernel's own handler leaving a running
//! CPU's flush to its next `switch_mm`, whose generation check would catch
//! up) is caught there, and never by the random phase, whose every read
//! follows a `switch_mm` (`tlb_directed=0` runs the random phase alone).

use crate::cpus::nr_cpus;
use crate::watchdog::{self, Wait};
use crate::wiring::{check, Mm, Qemu, NR_CPUS};
use crate::{ipi, kprintln, mm};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use lazymm::cpu::{AtomicCpuSet, CpuId, CpuSet};
use lazymm::platform::CurrentCpu;
use lazymm::tlb::tlbgen::{FlushAction, FlushScope, LazyTlb, TlbGen};
use spin::{Mutex, Once};
use x86_64::instructions::interrupts;

/// Operations per CPU.
const OPS: usize = 3_000;
/// The process (mm slot 0, free once the lazy-mm torture has run).
const P: Mm = Mm(0);

static GEN: TlbGen = TlbGen::new();
static CPUMASK: AtomicCpuSet<1> = AtomicCpuSet::new();
static LAZY: Once<LazyTlb<NR_CPUS>> = Once::new();
/// Each CPU's context generation for P (`None` = 0: never loaded).
#[allow(clippy::declare_interior_mutable_const)] // an array initialiser
const ZERO: AtomicU64 = AtomicU64::new(0);
static LOCAL_GEN: [AtomicU64; NR_CPUS] = [ZERO; NR_CPUS];
/// The remap lock (`mmap_lock` + the PTL) and the frame now mapped.
static REMAP: Mutex<usize> = Mutex::new(0);
/// A pattern per remap: `TAG | n`.
const TAG: u64 = 0x5a5a_0000_0000_0000;
static PATTERN: AtomicU64 = AtomicU64::new(TAG);

static FLUSHES: AtomicUsize = AtomicUsize::new(0);
static IPIS: AtomicUsize = AtomicUsize::new(0);
static SAVED: AtomicUsize = AtomicUsize::new(0);
static CAUGHT_UP: AtomicUsize = AtomicUsize::new(0);
static KEPT: AtomicUsize = AtomicUsize::new(0);
static READS: AtomicUsize = AtomicUsize::new(0);
/// Flush IPIs handled while the CPU was in a reader round's read loop.
static MET_READER: AtomicUsize = AtomicUsize::new(0);
/// Per CPU: inside a reader round's read loop.
#[allow(clippy::declare_interior_mutable_const)] // an array initialiser
const NO: AtomicUsize = AtomicUsize::new(0);
static READING: [AtomicUsize; NR_CPUS] = [NO; NR_CPUS];
/// `bug=tlb_ipi_defers_flush`: a running CPU's flush waits for its next
/// `switch_mm`.
static DEFER_FLUSH: AtomicUsize = AtomicUsize::new(0);

fn lazy() -> &'static LazyTlb<NR_CPUS> {
    LAZY.get().expect("built by run()")
}

fn local_gen(cpu: usize) -> Option<u64> {
    Some(LOCAL_GEN[cpu].load(Relaxed)).filter(|&g| g != 0)
}

/// `switch_mm_irqs_off(.., &init_mm)`.
fn to_init(cpu: CpuId) {
    if lazy().loaded::<Mm>(cpu).is_none() {
        return;
    }
    lazy().switch_mm_begin_init(cpu);
    mm::load_cr3(mm::kernel_pml4());
    lazy().switch_mm_end::<Mm>(cpu, None);
}

/// Runs P on this CPU and reads its page through CR3.
fn run_user(cpu: CpuId) {
    let pin = Qemu.pin();
    let was_lazy = lazy().lazy(cpu);
    let before = local_gen(cpu.index());
    let after = lazy().switch_mm(&pin, &Qemu, (P, &GEN, &CPUMASK), before, || {
        mm::load_cr3(mm::pml4(P.0))
    });
    if was_lazy {
        let n = if after != before { &CAUGHT_UP } else { &KEPT };
        n.fetch_add(1, Relaxed);
    }
    LOCAL_GEN[cpu.index()].store(after.unwrap_or(0), Relaxed);
    let v = mm::read_user();
    READS.fetch_add(1, Relaxed);
    check!(
        v & TAG == TAG,
        "tlb: {cpu} read {v:#x} from the process's page: a freed frame through a stale translation (unlazy: {was_lazy}, its generation {before:?} -> {after:?}, the mm's {})",
        GEN.read()
    );
}

/// The flush IPI's handler (`flush_tlb_func()`): `gen` is the flush's.
fn flush_ipi(cpu: usize, gen: usize, _: usize) {
    let c = CpuId::new(cpu);
    let local = LOCAL_GEN[cpu].load(Relaxed);
    let reading = READING[cpu].load(Relaxed) != 0;
    if reading {
        MET_READER.fetch_add(1, Relaxed);
    }
    match lazy().flush_action(c, FlushScope::Mm(P), Some(gen as u64), local, &GEN) {
        FlushAction::NotLoaded | FlushAction::Nothing | FlushAction::UpToDate => {}
        FlushAction::SwitchToInit => to_init(c),
        FlushAction::Flush { gen } => {
            // The variant: a CPU that runs the process (not lazy) defers
            // the flush to its next switch_mm, whose generation check will
            // see the stale generation and flush then — too late for a
            // task that keeps running.
            if DEFER_FLUSH.load(Relaxed) != 0
                && !lazy().lazy(c)
                && lazy().loaded::<Mm>(c) == Some(P)
            {
                return;
            }
            mm::invlpg_user();
            LOCAL_GEN[cpu].store(gen, Relaxed);
        }
    }
}

/// Moves P's page to the other frame and flushes (the caller runs P).
fn remap(cpu: CpuId) {
    // Serve our own flush IPIs while another CPU remaps (interrupts are
    // off here, and that CPU waits for us).
    let mut wait = Wait::new(cpu.index(), "the remap lock");
    let mut frame = loop {
        if let Some(f) = REMAP.try_lock() {
            break f;
        }
        ipi::serve(cpu.index());
        wait.spin();
    };
    let (old, new) = (*frame, (*frame + 1) % mm::FRAMES_N);
    let pattern = PATTERN.fetch_add(1, Relaxed) + 1;
    mm::fill_frame(new, pattern);
    mm::remap(P.0, new);
    let gen = GEN.inc();
    let mut targets = CpuSet::<1>::new();
    let mask = CPUMASK.snapshot(NR_CPUS, Acquire);
    let saved = lazy().flush_targets(cpu, FlushScope::Mm(P), &mask, false, &mut targets);
    let bits = targets.iter().fold(0u64, |m, t| m | 1 << t.index());
    let sent = ipi::call_many(cpu.index(), bits, flush_ipi, gen as usize, 0);
    mm::invlpg_user();
    LOCAL_GEN[cpu.index()].store(gen, Relaxed);
    // The flush is complete everywhere it had to be: free the old frame.
    mm::fill_frame(old, mm::POISON);
    *frame = new;
    FLUSHES.fetch_add(1, Relaxed);
    IPIS.fetch_add(sent, Relaxed);
    SAVED.fetch_add(saved, Relaxed);
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Every CPU's part: random operations, then off the process.
fn cpu_part(cpu: usize) {
    let c = CpuId::new(cpu);
    let mut rng = 0x2545_f491_4f6c_dd1d ^ (cpu as u64 + 1) << 40;
    interrupts::enable();
    watchdog::stage(cpu, &"tlb", &"random");
    for _ in 0..OPS {
        interrupts::without_interrupts(|| match xorshift(&mut rng) % 8 {
            0..=3 => run_user(c),
            4 | 5 => lazy().enter_lazy_tlb(c),
            6 => to_init(c),
            _ => {
                run_user(c);
                remap(c);
            }
        });
    }
    interrupts::without_interrupts(|| to_init(c));
}

/// The directed round's handshake: which step the lazy CPU may take.
static STEP: AtomicUsize = AtomicUsize::new(0);
/// Directed rounds.
const DIRECTED: usize = 300;

/// Waits until the handshake reached `want` (steps only grow: the next
/// round's CPU may move it on before we look).
fn wait_step(cpu: usize, want: usize) {
    let mut wait = Wait::new(cpu, "the directed round's handshake");
    // Acquire: pairs with the other side's release store.
    while STEP.load(Acquire) < want {
        wait.spin();
    }
}

/// Lutomirski's case, directed: CPU `r % 3 + 1` runs the process and reads
/// its page (a TLB entry), goes lazy; CPU 0 remaps (the flush skips the
/// lazy CPU) and frees the old frame; the lazy CPU comes back into the
/// process through the unlazy fast path and reads the page again: only
/// the generation check stands between it and the freed frame.
fn directed(cpu: usize) {
    let c = CpuId::new(cpu);
    watchdog::stage(cpu, &"tlb", &"directed");
    for r in 0..DIRECTED {
        watchdog::round(cpu, r);
        let lazy_cpu = r % (nr_cpus() - 1) + 1;
        if cpu == lazy_cpu {
            wait_step(cpu, 3 * r + 1);
            interrupts::without_interrupts(|| {
                run_user(c);
                lazy().enter_lazy_tlb(c);
            });
            STEP.store(3 * r + 2, Release);
            wait_step(cpu, 3 * r + 3);
            interrupts::without_interrupts(|| {
                run_user(c);
                to_init(c);
            });
            STEP.store(3 * r + 4, Release);
        } else if cpu == 0 {
            wait_step(cpu, 3 * r + 2);
            interrupts::without_interrupts(|| {
                run_user(c);
                remap(c);
                to_init(c);
            });
            STEP.store(3 * r + 3, Release);
            wait_step(cpu, 3 * r + 4);
        }
    }
}

/// Reader rounds (after the lazy ones on the same handshake counter).
const READERS: usize = 300;

/// Reads P's page through the CR3 the CPU has, with interrupts on (flush
/// IPIs land between reads), checking every value.
fn read_running(c: CpuId, round: usize) {
    let v = mm::read_user();
    READS.fetch_add(1, Relaxed);
    check!(
        v & TAG == TAG,
        "tlb: {c} read {v:#x} while running the process in reader round {round}: a flush IPI met it and the freed frame is still mapped in its TLB"
    );
}

/// The reader rounds: CPU `r % 3 + 1` runs P, reads, and keeps reading
/// without a switch while CPU 0 remaps and flushes; after the remap it
/// reads again through the same CR3, then leaves.
fn directed_readers(cpu: usize) {
    let c = CpuId::new(cpu);
    watchdog::stage(cpu, &"tlb", &"readers");
    let base = 3 * DIRECTED + 1;
    for r in 0..READERS {
        watchdog::round(cpu, r);
        let reader = r % (nr_cpus() - 1) + 1;
        let step = base + 3 * r;
        if cpu == reader {
            wait_step(cpu, step);
            interrupts::without_interrupts(|| run_user(c));
            READING[cpu].store(1, Relaxed);
            STEP.store(step + 1, Release);
            // Read until the remap is done; the flush IPI comes in here.
            let mut wait = Wait::new(cpu, "the reader round's remap");
            // Acquire: pairs with CPU 0's release after its flush.
            while STEP.load(Acquire) < step + 2 {
                read_running(c, r);
                wait.spin();
            }
            read_running(c, r);
            READING[cpu].store(0, Relaxed);
            interrupts::without_interrupts(|| to_init(c));
            STEP.store(step + 3, Release);
        } else if cpu == 0 {
            wait_step(cpu, step + 1);
            interrupts::without_interrupts(|| {
                run_user(c);
                remap(c);
                to_init(c);
            });
            // Release: the remap, its flush and the freed frame's poison
            // happen before the reader's last reads.
            STEP.store(step + 2, Release);
            wait_step(cpu, step + 3);
        }
    }
}

/// Every CPU's part: the directed rounds, then the random torture.
/// `tlb_directed=0` on the command line skips the directed rounds (to
/// measure what the random phase alone catches).
fn cpu_task(cpu: usize) {
    interrupts::enable();
    if super::arg("tlb_directed") != Some("0") {
        directed(cpu);
        directed_readers(cpu);
    }
    cpu_part(cpu);
}

/// Runs the TLB torture; true when no stale translation was read.
pub fn run() -> bool {
    LAZY.call_once(|| match super::arg("bug") {
        #[cfg(feature = "bug-variants")]
        Some("tlb_unlazy_ignores_gen") => {
            kprintln!("lazymm-qemu: tlb: bug variant bug_unlazy_ignores_gen");
            LazyTlb::with_bug(lazymm::tlb::tlbgen::Bug::UnlazyIgnoresGen)
        }
        #[cfg(feature = "bug-variants")]
        Some("tlb_ipi_defers_flush") => {
            kprintln!(
                "lazymm-qemu: tlb: kernel bug: a running CPU defers the flush IPI's invlpg to its next switch_mm"
            );
            DEFER_FLUSH.store(1, Relaxed);
            LazyTlb::new()
        }
        _ => LazyTlb::new(),
    });
    mm::build(P.0, TAG);
    for f in 1..mm::FRAMES_N {
        mm::fill_frame(f, mm::POISON);
    }
    mm::fill_frame(0, TAG);
    mm::remap(P.0, 0);
    STEP.store(1, Release);
    crate::smp::start_on_aps(nr_cpus(), cpu_task);
    cpu_task(0);
    crate::smp::wait_aps(nr_cpus());
    mm::poison(P.0);
    let flushes = FLUSHES.load(Relaxed);
    let (ipis, saved) = (IPIS.load(Relaxed), SAVED.load(Relaxed));
    let met = MET_READER.load(Relaxed);
    kprintln!(
        "lazymm-qemu: tlb: {flushes} flushes, {ipis} IPIs sent, {saved} saved by skipping lazy CPUs, {met} met a CPU reading the page, unlazy: {} caught up by flushing, {} kept their TLB; {} reads, stale reads 0",
        CAUGHT_UP.load(Relaxed),
        KEPT.load(Relaxed),
        READS.load(Relaxed),
    );
    check!(
        met > 0 || super::arg("tlb_directed") == Some("0"),
        "tlb: no flush IPI met a CPU that was reading the page: the reader rounds tested nothing"
    );
    true
}
