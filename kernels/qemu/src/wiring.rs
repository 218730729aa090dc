//! The lazymm wiring: what this kernel implements for the crate, and the
//! crate's objects it keeps. This is the part an OS developer copies; the
//! workloads that exercise it are in `torture/`.
//!
//! * The one CPU count, [`NR_CPUS`], sizes every scheme and tracker.
//! * [`Qemu`] is the platform: [`CurrentCpu`] names the running CPU from its
//!   local APIC id, [`IpiSync`] is a real fixed IPI through the local
//!   APIC's ICR to each target with a wait for its acknowledgement
//!   (`crate::ipi`: the kernel's `smp_call_function_many(.., wait)`).
//! * [`Os`] is the kernel as the lazy-mm schemes see it ([`Kernel`]): an
//!   `mm_struct` table (users, count, cpumask, a poison word), per-CPU
//!   `curr` / `active_mm` / the loaded CR3, and the scheduler's three
//!   points that call the scheme's hooks: [`Os::switch_to`]
//!   (`context_switch()`), [`Os::exit`] (`exit_mm()` + `mmput()`) and
//!   [`Kernel::mmdrop`] (`__mmdrop()`); the shoot-lazy IPI is a real IPI
//!   ([`Kernel::shoot_lazies`]).
//! * `torture::lazy::run_schemes` runs the torture once per scheme of the crate, each on
//!   a fresh `Os<S>` (the kernel type is generic over its scheme).
//!
//! Every use of an mm checks its poison word, and every free checks that no
//! CPU has the mm's page tables in CR3: the kernel's own use-after-free
//! oracle (`CHECK FIRED: lifetime:`).

use crate::{kprintln, mm};
use core::sync::atomic::{AtomicUsize, Ordering::*};
use lazymm::cpu::{CpuId, CpuMask, CpuSet};
use lazymm::lazy::switch::{self, CpuMm, CpuMmWords, SwitchMm, Switched};
use lazymm::lazy::{Kernel, LazyMm, MmHandle};
use lazymm::platform::{CpuPin, CurrentCpu, IpiSync, LocalTlb};

/// The kernel's CPU count (`cpus::NR_CPUS`), re-exported for the torture.
pub use crate::cpus::NR_CPUS;

/// The platform the crate's TLB and walker protocols call.
pub struct Qemu;

// SAFETY: `pin` names the CPU it runs on (its APIC id); this kernel never
// migrates a running context (no preemption), and callers that need
// interrupts off around the pin (a lockless walk) turn them off.
unsafe impl CurrentCpu for Qemu {
    fn pin(&self) -> CpuPin<'_> {
        // SAFETY: as above.
        unsafe { CpuPin::new(CpuId::new(crate::cpus::this_cpu())) }
    }
}

impl IpiSync for Qemu {
    fn ipi_and_wait(&self, pin: &CpuPin<'_>, targets: &impl CpuMask) {
        let mask = targets.iter().fold(0, |m, c| m | 1 << c.index());
        crate::ipi::call_many(pin.cpu().index(), mask, |_, _, _| {}, 0, 0);
    }
}

impl LocalTlb for Qemu {
    type Mm = Mm;
    /// A CR3 reload: this kernel has no PCIDs, so a reload drops every
    /// non-global entry (the loaded mm's are the only user entries).
    fn flush_local(&self, _pin: &CpuPin<'_>, _mm: Mm) {
        mm::load_cr3(mm::cr3());
    }
}

pub use lazymm::lazy::MmIndex as Mm;

/// What a freed `mm_struct` holds in its poison word.
const POISON: usize = 0xdead_beef;

/// Reports a failed check and ends the run.
macro_rules! check {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            kprintln!("lazymm-qemu: CHECK FIRED: {}", format_args!($($msg)*));
            kprintln!("FAIL");
            crate::hw::exit(crate::hw::Exit::Failure);
        }
    };
}
pub(crate) use check;

/// The fields of `mm_struct` the schemes care about.
pub struct MmStruct {
    users: AtomicUsize,
    count: AtomicUsize,
    /// `mm_cpumask`: bit `c` = CPU `c` may have it loaded.
    cpumask: AtomicUsize,
    /// 0 while live, [`POISON`] once freed (and before first use).
    poison: AtomicUsize,
    /// What the process's memory holds (checked on every use).
    pattern: AtomicUsize,
}

/// One CPU's scheduler state; only that CPU writes it (its IPI handler
/// included), the free reads the loaded mm as a check.
#[derive(Default)]
pub struct PerCpu {
    /// `current->mm`, `active_mm`, and the mm whose PML4 is in CR3 (written
    /// right after each CR3 load and before any hook that could free the
    /// old one).
    mm: CpuMmWords,
    /// Rounds of the scheme's wait loops (its `serve_ipis` calls) since the
    /// CPU's last final drop began: the watchdog's count for a final drop
    /// that waits forever.
    scheme_waits: AtomicUsize,
}

/// Counts for the summary line.
#[derive(Default)]
pub struct Stats {
    pub switches: AtomicUsize,
    pub lazy_entries: AtomicUsize,
    pub exits: AtomicUsize,
    pub shoot_ipis: AtomicUsize,
    pub frees: AtomicUsize,
    pub cr3_loads: AtomicUsize,
}

/// The kernel, for scheme `S`.
pub struct Os<S> {
    pub scheme: S,
    mms: [MmStruct; mm::SLOTS],
    cpus: [PerCpu; NR_CPUS],
    pub stats: Stats,
}

impl<S: LazyMm + Sync> Os<S> {
    /// A kernel with every CPU on its own mm and every slot free.
    pub fn new(scheme: S) -> Self {
        Self {
            scheme,
            mms: core::array::from_fn(|_| MmStruct {
                users: AtomicUsize::new(0),
                count: AtomicUsize::new(0),
                cpumask: AtomicUsize::new(0),
                poison: AtomicUsize::new(POISON),
                pattern: AtomicUsize::new(0),
            }),
            cpus: Default::default(),
            stats: Stats::default(),
        }
    }

    fn cpu(&self, c: CpuId) -> &PerCpu {
        &self.cpus[c.index()]
    }

    /// `fork()`'s new mm in a free slot with `threads` users; `None` when
    /// every slot is live or lazily held.
    pub fn create(&self, threads: usize, pattern: usize) -> Option<Mm> {
        let s = (0..mm::SLOTS).find(|&s| self.mms[s].poison.load(Acquire) == POISON)?;
        let m = &self.mms[s];
        mm::build(s, pattern as u64);
        m.pattern.store(pattern, Relaxed);
        m.users.store(threads, Relaxed);
        m.count.store(1, Relaxed);
        m.cpumask.store(0, Relaxed);
        // Release: the tables and counts before any CPU that finds the mm.
        m.poison.store(0, Release);
        Some(Mm(s))
    }

    /// `cpu` uses `mm`: a freed one is a use-after-free.
    fn use_mm(&self, cpu: CpuId, mm: Mm) -> &MmStruct {
        let m = &self.mms[mm.0];
        check!(
            m.poison.load(Acquire) != POISON,
            "lifetime: {cpu} uses {mm:?}, whose mm_struct is freed"
        );
        m
    }

    /// The CR3 in use must be the mm we think, and not a freed one.
    fn touch(&self, cpu: CpuId) {
        let loaded = self.cpu(cpu).mm.loaded::<Mm>();
        let want = loaded.map_or(mm::kernel_pml4(), |m| mm::pml4(m.0));
        check!(mm::cr3() == want, "{cpu}: CR3 is not the loaded mm's");
        if let Some(m) = loaded {
            self.use_mm(cpu, m);
        }
    }

    /// `context_switch()` to a task of `next` (`None`: a kernel thread),
    /// with interrupts off, through the library's switch sequence. A user
    /// task then reads its memory.
    pub fn switch_to(&self, cpu: CpuId, next: Option<Mm>) {
        self.touch(cpu);
        self.stats.switches.fetch_add(1, Relaxed);
        if let Switched::EnterLazy(_) = switch::context_switch(&self.scheme, self, cpu, next) {
            self.stats.lazy_entries.fetch_add(1, Relaxed);
        }
        if let Some(mm) = next {
            let want = self.use_mm(cpu, mm).pattern.load(Relaxed) as u64;
            let got = mm::read_user();
            check!(
                got == want,
                "tlb: {cpu} read {got:#x} in {mm:?}, whose memory holds {want:#x}"
            );
        }
        self.touch(cpu);
    }

    /// The running task exits: `exit_mm()`, then `mmput()`.
    pub fn exit(&self, cpu: CpuId) {
        let mm = switch::exit_mm(&self.scheme, self, cpu);
        if self.use_mm(cpu, mm).users.fetch_sub(1, AcqRel) == 1 {
            self.stats.exits.fetch_add(1, Relaxed);
            self.scheme.mm_users_zero(self, cpu, mm);
            self.mmdrop(cpu, mm);
        }
    }

    /// CPU down: onto the kernel's own mm, its lazy use dropped.
    pub fn cpu_down(&self, cpu: CpuId) {
        switch::force_init_mm(&self.scheme, self, cpu);
    }

    /// After every CPU went down: hotplug teardown and the leak check.
    /// Returns the leaked mms (0 when every mm was freed).
    pub fn finish(&self) -> usize {
        for c in 0..NR_CPUS {
            self.scheme.cpu_dead(self, CpuId::new(c));
        }
        self.mms
            .iter()
            .filter(|m| m.poison.load(Acquire) != POISON)
            .count()
    }
}

/// The IPI function of [`Kernel::shoot_lazies`]: `os` is an `&Os<S>`.
fn shoot_ipi<S: LazyMm + Sync>(cpu: usize, os: usize, mm: usize) {
    // SAFETY: `shoot_lazies` passes its own `&self` and waits for us.
    let os = unsafe { &*(os as *const Os<S>) };
    switch::do_shoot_lazy_tlb(&os.scheme, os, CpuId::new(cpu), Mm::from_word(mm));
}

impl<S: LazyMm + Sync> Kernel for Os<S> {
    type Mm = Mm;
    const NR_CPUS: usize = NR_CPUS;
    type CpuMask = CpuSet<1>;

    fn mmgrab(&self, cpu: CpuId, mm: Mm) {
        self.use_mm(cpu, mm).count.fetch_add(1, Relaxed);
    }

    fn mmdrop(&self, cpu: CpuId, mm: Mm) {
        if self.use_mm(cpu, mm).count.fetch_sub(1, AcqRel) == 1 {
            self.cpu(cpu).scheme_waits.store(0, Relaxed);
            self.scheme.final_drop(self, cpu, mm); // __mmdrop()
            for (c, other) in self.cpus.iter().enumerate() {
                check!(
                    other.mm.loaded() != Some(mm),
                    "lifetime: {mm:?} freed on {cpu} while cpu{c} still has its page tables in CR3"
                );
            }
            mm::poison(mm.0);
            self.stats.frees.fetch_add(1, Relaxed);
            // Release: the poisoned tables before the slot is found free.
            self.mms[mm.0].poison.store(POISON, Release);
        }
    }

    fn mm_users(&self, mm: Mm) -> usize {
        self.mms[mm.0].users.load(Acquire)
    }

    fn mm_cpumask(&self, mm: Mm) -> CpuSet<1> {
        // Acquire: pairs with the release clear in load_mm().
        let bits = self.mms[mm.0].cpumask.load(Acquire);
        (0..NR_CPUS)
            .filter(|c| bits & (1 << c) != 0)
            .map(CpuId::new)
            .collect()
    }

    fn shoot_lazies(&self, cpu: CpuId, cpus: &CpuSet<1>, mm: Mm) {
        // on_each_cpu_mask(cpus, do_shoot_lazy_tlb, mm, wait = 1).
        let others = cpus
            .iter()
            .filter(|&t| t != cpu)
            .fold(0u64, |m, t| m | 1 << t.index());
        if cpus.contains(cpu) {
            switch::do_shoot_lazy_tlb(&self.scheme, self, cpu, mm);
        }
        let os = self as *const Self as usize;
        let n = crate::ipi::call_many(cpu.index(), others, shoot_ipi::<S>, os, mm.to_word());
        self.stats.shoot_ipis.fetch_add(n, Relaxed);
    }

    /// A round of a scheme's wait loop (a final drop waiting for a CPU):
    /// serve our IPIs, and let the watchdog count the rounds.
    fn serve_ipis(&self, cpu: CpuId) {
        crate::ipi::serve(cpu.index());
        let n = self.cpu(cpu).scheme_waits.fetch_add(1, Relaxed) + 1;
        if n as u64 >= crate::watchdog::limit() {
            crate::watchdog::fire(
                cpu.index(),
                "the scheme's final drop to finish (its wait loop)",
                n as u64,
            );
        }
    }
}

/// What the library's switch sequence reads and writes: the per-CPU words
/// and the CR3 load.
impl<S: LazyMm + Sync> SwitchMm for Os<S> {
    fn cpu_mm(&self, cpu: CpuId) -> CpuMm<Mm> {
        self.cpu(cpu).mm.get()
    }

    fn set_cpu_mm(&self, cpu: CpuId, st: CpuMm<Mm>) {
        self.cpu(cpu).mm.set(st)
    }

    fn loaded_mm(&self, cpu: CpuId) -> Option<Mm> {
        self.cpu(cpu).mm.loaded()
    }

    /// `switch_mm_irqs_off()`'s part: cpumask bit, the CR3 load.
    fn load_mm(&self, cpu: CpuId, prev: Option<Mm>, next: Option<Mm>) {
        let bit = 1 << cpu.index();
        if let Some(n) = next {
            self.use_mm(cpu, n).cpumask.fetch_or(bit, Relaxed);
        }
        mm::load_cr3(next.map_or(mm::kernel_pml4(), |n| mm::pml4(n.0)));
        self.cpu(cpu).mm.set_loaded(next);
        self.stats.cr3_loads.fetch_add(1, Relaxed);
        if let Some(p) = prev {
            // Release: our last use of `prev` before a reader of the bit.
            self.mms[p.0].cpumask.fetch_and(!bit, Release);
        }
    }
}
