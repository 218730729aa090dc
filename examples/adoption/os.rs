//! An OS-shaped user of lazymm, written only against the crate's public,
//! kernel-facing API: the scheme hooks (`lazymm::lazy`), the CPU types
//! (`lazymm::cpu`), and for the atomics and wait loops the kernel wants
//! checked together with the scheme, the facade `lazymm::check::sync` (core's
//! atomics in a plain build, loom's or shuttle's under the checkers).
//!
//! What it has of its own, as a kernel would: an mm table whose entries are
//! poisoned on free and checked on every use, a cpumask per mm, per-CPU
//! `current` / `active_mm` / loaded page tables, and IPI mailboxes with
//! wait. The kernel type is generic over its scheme (`Os<S: LazyMm, ..>`)
//! and `const`-constructible, so a kernel keeps it in a `static`
//! (`lazymm::lazymm_static!`).

use lazymm::check::sync::{spin_loop, AtomicUsize, Ordering::*};
use lazymm::cpu::{CpuId, CpuSet};
use lazymm::lazy::switch::{self, CpuMm, CpuMmWords, SwitchMm};
use lazymm::lazy::{Kernel, LazyMm, MmHandle};

/// What a freed `mm_struct` holds: every use checks for it.
const POISON: usize = 0xdead_beef;

pub use lazymm::lazy::MmIndex as Mm;

/// The fields of `mm_struct` the schemes care about.
pub struct MmStruct {
    users: AtomicUsize,
    count: AtomicUsize,
    /// `mm_cpumask`: bit `c` = CPU `c` may have it loaded.
    cpumask: AtomicUsize,
    /// 0 while live, [`POISON`] once freed.
    poison: AtomicUsize,
}

impl MmStruct {
    lazymm::const_fn! {
        fn new() -> Self {
            Self {
                users: AtomicUsize::new(0),
                count: AtomicUsize::new(1),
                cpumask: AtomicUsize::new(0),
                poison: AtomicUsize::new(0),
            }
        }
    }
}

/// One CPU's state. Only that CPU writes `mm` (its IPI handlers included);
/// the free reads the loaded mm as a check.
pub struct Cpu {
    /// `current->mm`, `active_mm` and the loaded page tables.
    mm: CpuMmWords,
    /// Mailbox: bit `s` = CPU `s` asks us to shoot down the mm in its
    /// `request`.
    pending: AtomicUsize,
    /// This CPU's outgoing shoot-lazy request (an mm word).
    request: AtomicUsize,
}

impl Cpu {
    lazymm::const_fn! {
        fn new() -> Self {
            Self {
                mm: CpuMmWords::new(),
                pending: AtomicUsize::new(0),
                request: AtomicUsize::new(0),
            }
        }
    }
}

/// The kernel: `CPUS` CPUs, `MMS` processes, scheme `S`.
pub struct Os<S, const CPUS: usize, const MMS: usize> {
    scheme: S,
    mms: [MmStruct; MMS],
    cpus: [Cpu; CPUS],
}

impl<S: LazyMm, const CPUS: usize, const MMS: usize> Os<S, CPUS, MMS> {
    lazymm::const_fn! {
        /// A kernel with every CPU idle on its own mm.
        pub fn new(scheme: S) -> Self {
            Self {
                scheme,
                mms: lazymm::array![MmStruct::new(); MMS],
                cpus: lazymm::array![Cpu::new(); CPUS],
            }
        }
    }

    /// Boot: process `p` gets `threads[p]` tasks (its `mm_users`).
    pub fn boot(&self, threads: &[usize; MMS]) {
        for (m, &n) in self.mms.iter().zip(threads) {
            m.users.store(n, Relaxed);
        }
    }

    fn cpu(&self, c: CpuId) -> &Cpu {
        &self.cpus[c.index()]
    }

    /// `cpu` uses `mm`: a freed one is a use-after-free.
    fn use_mm(&self, cpu: CpuId, mm: Mm) -> &MmStruct {
        let m = &self.mms[mm.0];
        assert_ne!(
            m.poison.load(Relaxed),
            POISON,
            "use-after-free of {mm:?} on {cpu}: its mm_struct is poisoned"
        );
        m
    }

    /// The hardware may walk the loaded page tables at any time.
    fn touch(&self, cpu: CpuId) {
        if let Some(mm) = self.cpu(cpu).mm.loaded() {
            self.use_mm(cpu, mm);
        }
    }

    /// `context_switch()` to the task of `next` (`None`: a kernel thread),
    /// through the library's switch sequence.
    pub fn switch_to(&self, cpu: CpuId, next: Option<Mm>) {
        self.serve_ipis(cpu);
        self.touch(cpu);
        switch::context_switch(&self.scheme, self, cpu, next);
        self.touch(cpu);
    }

    /// The running task exits: `exit_mm()` then `mmput()`.
    pub fn exit(&self, cpu: CpuId) {
        let mm = switch::exit_mm(&self.scheme, self, cpu);
        self.serve_ipis(cpu); // interrupts on between exit_mm() and mmput()
        if self.use_mm(cpu, mm).users.fetch_sub(1, AcqRel) == 1 {
            self.scheme.mm_users_zero(self, cpu, mm);
            self.mmdrop(cpu, mm);
        }
    }

    /// CPU down: onto the kernel's own mm, then idle serving IPIs until
    /// `done` CPUs are down.
    pub fn cpu_down(&self, cpu: CpuId, done: &AtomicUsize) {
        self.serve_ipis(cpu);
        switch::force_init_mm(&self.scheme, self, cpu);
        done.fetch_add(1, AcqRel);
        while done.load(Acquire) < CPUS {
            self.serve_ipis(cpu);
            spin_loop();
        }
    }

    /// After every CPU went down: hotplug teardown and the leak check.
    pub fn finish(&self) {
        for c in 0..CPUS {
            self.scheme.cpu_dead(self, CpuId::new(c));
        }
        for (i, m) in self.mms.iter().enumerate() {
            assert_eq!(
                m.poison.load(Relaxed),
                POISON,
                "leak: mm{i} was never freed"
            );
        }
    }
}

impl<S: LazyMm, const CPUS: usize, const MMS: usize> Kernel for Os<S, CPUS, MMS> {
    type Mm = Mm;
    const NR_CPUS: usize = CPUS;
    type CpuMask = CpuSet<1>;

    fn mmgrab(&self, cpu: CpuId, mm: Mm) {
        self.use_mm(cpu, mm).count.fetch_add(1, Relaxed);
    }

    fn mmdrop(&self, cpu: CpuId, mm: Mm) {
        if self.use_mm(cpu, mm).count.fetch_sub(1, AcqRel) == 1 {
            self.scheme.final_drop(self, cpu, mm); // __mmdrop()
            for (c, other) in self.cpus.iter().enumerate() {
                assert_ne!(
                    other.mm.loaded(),
                    Some(mm),
                    "use-after-free of {mm:?}: freed on {cpu} while cpu{c} has it loaded"
                );
            }
            self.mms[mm.0].poison.store(POISON, Release);
        }
    }

    fn mm_users(&self, mm: Mm) -> usize {
        self.mms[mm.0].users.load(Acquire)
    }

    fn mm_cpumask(&self, mm: Mm) -> CpuSet<1> {
        // Acquire: pairs with the release clear in load_mm().
        let bits = self.mms[mm.0].cpumask.load(Acquire);
        (0..CPUS)
            .filter(|c| bits & (1 << c) != 0)
            .map(CpuId::new)
            .collect()
    }

    fn shoot_lazies(&self, cpu: CpuId, cpus: &CpuSet<1>, mm: Mm) {
        // on_each_cpu_mask(cpus, do_shoot_lazy_tlb, mm, wait = 1).
        self.cpu(cpu).request.store(mm.to_word(), Relaxed);
        let bit = 1 << cpu.index();
        for t in cpus.iter().filter(|&t| t != cpu) {
            // Release: publishes the request; pairs with serve_ipis.
            self.cpu(t).pending.fetch_or(bit, Release);
        }
        if cpus.contains(cpu) {
            switch::do_shoot_lazy_tlb(&self.scheme, self, cpu, mm);
        }
        for t in cpus.iter().filter(|&t| t != cpu) {
            // Acquire: pairs with the target's release acknowledgement.
            while self.cpu(t).pending.load(Acquire) & bit != 0 {
                self.serve_ipis(cpu);
                spin_loop();
            }
        }
    }

    fn serve_ipis(&self, cpu: CpuId) {
        // Acquire: pairs with the sender's release fetch_or.
        let mut bits = self.cpu(cpu).pending.load(Acquire);
        while bits != 0 {
            let s = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let mm = Mm::from_word(self.cpus[s].request.load(Relaxed));
            switch::do_shoot_lazy_tlb(&self.scheme, self, cpu, mm);
            // Release: our handler happens before the sender goes on.
            self.cpu(cpu).pending.fetch_and(!(1 << s), Release);
        }
    }
}

/// What the library's switch sequence reads and writes: the per-CPU words
/// and the "CR3 load".
impl<S: LazyMm, const CPUS: usize, const MMS: usize> SwitchMm for Os<S, CPUS, MMS> {
    fn cpu_mm(&self, cpu: CpuId) -> CpuMm<Mm> {
        self.cpu(cpu).mm.get()
    }

    fn set_cpu_mm(&self, cpu: CpuId, st: CpuMm<Mm>) {
        self.cpu(cpu).mm.set(st)
    }

    fn loaded_mm(&self, cpu: CpuId) -> Option<Mm> {
        self.cpu(cpu).mm.loaded()
    }

    fn load_mm(&self, cpu: CpuId, prev: Option<Mm>, next: Option<Mm>) {
        let bit = 1 << cpu.index();
        if let Some(n) = next {
            self.use_mm(cpu, n).cpumask.fetch_or(bit, Relaxed);
        }
        self.cpu(cpu).mm.set_loaded(next); // "CR3 load"
        if let Some(p) = prev {
            // Release: our last use of `prev` before a reader of the bit.
            self.mms[p.0].cpumask.fetch_and(!bit, Release);
        }
    }
}
