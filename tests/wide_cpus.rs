//! CPU ids at word boundaries: every lazy-mm scheme in a 1,024-slot kernel
//! whose online CPUs are 0, 63, 64, 127 and 1023 — the first and last bit
//! of the first two `CpuSet` words and the last slot — driven by random
//! workloads (proptest seeds) one step at a time, IPIs run inline.
//!
//! The simulated machine has at most 8 CPUs (ids 0..8, one cpumask word),
//! so a scheme that walks its per-CPU state or a cpumask wrongly past the
//! first word passes every loom and shuttle model; this kernel is the
//! configuration that reaches those words. Its oracle is the machine's:
//! a free while any CPU has the mm loaded, a use of a freed mm, a count
//! below zero, or an mm never freed fails with the same lines.
//! `loaded::Bug::ScanFirstWordOnly` (a final drop whose scan stops after 64
//! CPUs) is rejected here and passes with CPU ids below 64 (the pin below).

//!
//! A plain build only: under the checkers the kernel's atomics belong to a
//! checker run, and this kernel is sequential.
#![cfg(not(any(loom, lazymm_shuttle)))]

use lazymm::check::model::{Op, Scenario, SplitMix};
use lazymm::check::sync::{AtomicUsize, Ordering::*};
use lazymm::cpu::{AtomicCpuSet, CpuId, CpuSet};
use lazymm::lazy::switch::{self, CpuMm, CpuMmWords, SwitchMm};
use lazymm::lazy::{Kernel, LazyMm, MmHandle};
use proptest::prelude::*;

/// Slots of the kernel (its `NR_CPUS`), in 16 cpumask words.
const SLOTS: usize = 1024;
const WORDS: usize = SLOTS / 64;
/// The online CPUs: both ends of the first two words, and the last slot.
const WIDE: [usize; 5] = [0, 63, 64, 127, 1023];
/// The same number of CPUs inside the first word (the pin).
#[cfg(feature = "bug-variants")]
const NARROW: [usize; 5] = [0, 1, 2, 3, 4];
const MMS: usize = 3;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Mm(usize);

impl MmHandle for Mm {
    fn to_word(self) -> usize {
        (self.0 + 1) << 1
    }
    fn from_word(w: usize) -> Self {
        Mm((w >> 1) - 1)
    }
}

struct MmStruct {
    users: AtomicUsize,
    count: AtomicUsize,
    cpumask: AtomicCpuSet<WORDS>,
    freed: AtomicUsize,
}

struct Wide<S> {
    scheme: S,
    mms: Vec<MmStruct>,
    cpus: Vec<CpuMmWords>,
}

impl<S: LazyMm> Wide<S> {
    fn new(scheme: S, users: &[usize]) -> Self {
        Self {
            scheme,
            mms: users
                .iter()
                .map(|&u| MmStruct {
                    users: AtomicUsize::new(u),
                    count: AtomicUsize::new(1),
                    cpumask: AtomicCpuSet::new(),
                    freed: AtomicUsize::new(0),
                })
                .collect(),
            cpus: (0..SLOTS).map(|_| CpuMmWords::new()).collect(),
        }
    }

    fn use_mm(&self, cpu: CpuId, mm: Mm) -> &MmStruct {
        let m = &self.mms[mm.0];
        assert_eq!(
            m.freed.load(Relaxed),
            0,
            "use-after-free of mm{}: {cpu} uses it after it was freed",
            mm.0
        );
        m
    }

    fn touch(&self, cpu: CpuId) {
        if let Some(mm) = self.loaded_mm(cpu) {
            self.use_mm(cpu, mm);
        }
    }

    /// One op through the library's switch sequence.
    fn step(&self, cpu: CpuId, op: Op) {
        self.touch(cpu);
        match op {
            Op::Kthread => {
                switch::context_switch(&self.scheme, self, cpu, None);
            }
            Op::User(m) => {
                let mm = Mm(m.index().unwrap());
                switch::context_switch(&self.scheme, self, cpu, Some(mm));
            }
            Op::Exit => {
                let mm = switch::exit_mm(&self.scheme, self, cpu);
                if self.use_mm(cpu, mm).users.fetch_sub(1, AcqRel) == 1 {
                    self.scheme.mm_users_zero(self, cpu, mm);
                    self.mmdrop(cpu, mm);
                }
            }
            op => panic!("scenario error: {op:?} is not modelled here"),
        }
        self.touch(cpu);
    }

    fn cpu_down(&self, cpu: CpuId) {
        switch::force_init_mm(&self.scheme, self, cpu);
    }

    fn finish(&self, online: &[usize]) {
        for &c in online {
            self.scheme.cpu_dead(self, CpuId::new(c));
        }
        for (i, m) in self.mms.iter().enumerate() {
            assert_eq!(m.freed.load(Relaxed), 1, "leak: mm{i} was never freed");
        }
    }
}

impl<S: LazyMm> Kernel for Wide<S> {
    type Mm = Mm;
    const NR_CPUS: usize = SLOTS;
    type CpuMask = CpuSet<WORDS>;

    fn mmgrab(&self, cpu: CpuId, mm: Mm) {
        self.use_mm(cpu, mm).count.fetch_add(1, Relaxed);
    }

    fn mmdrop(&self, cpu: CpuId, mm: Mm) {
        let old = self.use_mm(cpu, mm).count.fetch_sub(1, AcqRel);
        assert_ne!(old, 0, "mm_count of mm{} went negative", mm.0);
        if old == 1 {
            self.scheme.final_drop(self, cpu, mm);
            for (c, other) in self.cpus.iter().enumerate() {
                assert_ne!(
                    other.loaded::<Mm>(),
                    Some(mm),
                    "use-after-free of mm{}: freed on {cpu} while cpu{c} still has it loaded",
                    mm.0
                );
            }
            self.mms[mm.0].freed.fetch_add(1, Relaxed);
        }
    }

    fn mm_users(&self, mm: Mm) -> usize {
        self.mms[mm.0].users.load(Acquire)
    }

    fn mm_cpumask(&self, mm: Mm) -> CpuSet<WORDS> {
        self.mms[mm.0].cpumask.snapshot(SLOTS, Acquire)
    }

    fn shoot_lazies(&self, _cpu: CpuId, cpus: &CpuSet<WORDS>, mm: Mm) {
        // Inline IPIs: each target runs the handler now.
        for t in cpus.iter() {
            switch::do_shoot_lazy_tlb(&self.scheme, self, t, mm);
        }
    }
}

impl<S: LazyMm> SwitchMm for Wide<S> {
    fn cpu_mm(&self, cpu: CpuId) -> CpuMm<Mm> {
        self.cpus[cpu.index()].get()
    }

    fn set_cpu_mm(&self, cpu: CpuId, st: CpuMm<Mm>) {
        self.cpus[cpu.index()].set(st)
    }

    fn loaded_mm(&self, cpu: CpuId) -> Option<Mm> {
        self.cpus[cpu.index()].loaded()
    }

    fn load_mm(&self, cpu: CpuId, prev: Option<Mm>, next: Option<Mm>) {
        if let Some(n) = next {
            self.use_mm(cpu, n).cpumask.insert(cpu, Relaxed);
        }
        self.cpus[cpu.index()].set_loaded(next);
        if let Some(p) = prev {
            // Release: as a kernel's clear after the switch.
            self.mms[p.0].cpumask.remove(cpu, Release);
        }
    }
}

/// Runs a random workload of `seed` on the CPUs `online` under `scheme`:
/// the scripts of `Scenario::random` for five CPUs, CPU i of the scenario
/// being `online[i]`, interleaved one step at a time by the same seed.
fn run<S: LazyMm>(scheme: S, online: &[usize; 5], seed: u64) {
    let scenario = Scenario::random(seed, online.len(), MMS, 6);
    let k = Wide::new(scheme, &scenario.tasks_per_mm());
    let mut next = [0usize; 5];
    let mut rng = SplitMix(seed ^ 0x5eed);
    loop {
        let live: Vec<usize> = (0..5)
            .filter(|&i| next[i] < scenario.script(i).len())
            .collect();
        if live.is_empty() {
            break;
        }
        let i = live[rng.below(live.len())];
        k.step(CpuId::new(online[i]), scenario.script(i)[next[i]]);
        next[i] += 1;
    }
    for &c in online {
        k.cpu_down(CpuId::new(c));
    }
    k.finish(online);
}

macro_rules! wide {
    ($($name:ident: $make:expr;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
            $(
                #[test]
                fn $name(seed in any::<u64>()) {
                    run($make, &WIDE, seed);
                }
            )*
        }
    };
}

wide! {
    refcount: lazymm::lazy::refcount::Refcount::new();
    shootdown: lazymm::lazy::shootdown::Shootdown::new();
    tagged: lazymm::lazy::tagged::Tagged::<SLOTS>::new();
    cached: lazymm::lazy::cached::Cached::<SLOTS>::new();
    hazard: lazymm::lazy::hazard::HazardLazy::<SLOTS>::new();
    hazard_nofence: lazymm::lazy::hazard::HazardLazyNoFence::<SLOTS>::new();
    loaded_mm: lazymm::lazy::loaded::LoadedMm::<SLOTS>::new();
    rcu_mm: lazymm::lazy::rcu_mm::RcuMm::<SLOTS>::new();
}

/// A final drop whose scan stops after 64 CPUs misses the CPUs at 64, 127
/// and 1023: rejected on the wide ids (some of 64 seeds leave one of them
/// lazy on a dying mm).
#[cfg(feature = "bug-variants")]
#[test]
#[should_panic(expected = "use-after-free of mm")]
fn bug_scan_first_word_only() {
    use lazymm::lazy::loaded::{Bug, LoadedMm};
    for seed in 0..64 {
        run(
            LoadedMm::<SLOTS>::with_bug(Bug::ScanFirstWordOnly),
            &WIDE,
            seed,
        );
    }
}

/// The pin: the same variant passes the same 64 workloads on CPU ids
/// 0..5, as it passes every loom and shuttle model (at most 8 CPUs).
#[cfg(feature = "bug-variants")]
#[test]
fn bug_scan_first_word_only_passes_narrow_ids() {
    use lazymm::lazy::loaded::{Bug, LoadedMm};
    for seed in 0..64 {
        run(
            LoadedMm::<SLOTS>::with_bug(Bug::ScanFirstWordOnly),
            &NARROW,
            seed,
        );
    }
}
