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
use lazymm::lazy::{Kernel, LazyMm};
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

use lazymm::lazy::MmIndex as Mm;

struct MmStruct<const W: usize> {
    users: AtomicUsize,
    count: AtomicUsize,
    cpumask: AtomicCpuSet<W>,
    freed: AtomicUsize,
}

/// A kernel of `N` CPU slots in `W` cpumask words.
struct Wide<S, const N: usize, const W: usize> {
    scheme: S,
    mms: Vec<MmStruct<W>>,
    cpus: Vec<CpuMmWords>,
}

impl<S: LazyMm, const N: usize, const W: usize> Wide<S, N, W> {
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
            cpus: (0..N).map(|_| CpuMmWords::new()).collect(),
        }
    }

    fn use_mm(&self, cpu: CpuId, mm: Mm) -> &MmStruct<W> {
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
            // The sequential driver steps an adoption only after its
            // migration: nothing to do on either side.
            Op::Migrate(_) | Op::Adopt(..) => {}
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

impl<S: LazyMm, const N: usize, const W: usize> Kernel for Wide<S, N, W> {
    type Mm = Mm;
    const NR_CPUS: usize = N;
    type CpuMask = CpuSet<W>;

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

    fn mm_cpumask(&self, mm: Mm) -> CpuSet<W> {
        self.mms[mm.0].cpumask.snapshot(N, Acquire)
    }

    fn shoot_lazies(&self, _cpu: CpuId, cpus: &CpuSet<W>, mm: Mm) {
        // Inline IPIs: each target runs the handler now.
        for t in cpus.iter() {
            switch::do_shoot_lazy_tlb(&self.scheme, self, t, mm);
        }
    }
}

impl<S: LazyMm, const N: usize, const W: usize> SwitchMm for Wide<S, N, W> {
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

/// Runs a random workload of `seed` on the CPUs `online` of an `N`-slot
/// kernel under `scheme`: the scripts of `Scenario::random_with_migration`
/// for five CPUs (tasks preempted, put to sleep and woken on another CPU),
/// CPU i of the scenario being `online[i]`, interleaved one step at a time
/// by the same seed (a CPU that adopts a task waits until it was migrated).
fn run<S: LazyMm, const N: usize, const W: usize>(scheme: S, online: &[usize; 5], seed: u64) {
    let scenario = Scenario::random_with_migration(seed, online.len(), MMS, 6);
    let k = Wide::<S, N, W>::new(scheme, &scenario.tasks_per_mm());
    let mut next = [0usize; 5];
    let mut migrated = std::collections::BTreeSet::new();
    let mut rng = SplitMix(seed ^ 0x5eed);
    loop {
        let ready: Vec<usize> = (0..5)
            .filter(|&i| match scenario.script(i).get(next[i]) {
                None => false,
                Some(&Op::Adopt(mm, from)) => migrated.contains(&(mm, from)),
                Some(_) => true,
            })
            .collect();
        if ready.is_empty() {
            break;
        }
        let i = ready[rng.below(ready.len())];
        let op = scenario.script(i)[next[i]];
        if let Op::Migrate(mm) = op {
            migrated.insert((mm, i));
        }
        k.step(CpuId::new(online[i]), op);
        next[i] += 1;
    }
    for &c in online {
        k.cpu_down(CpuId::new(c));
    }
    k.finish(online);
}

macro_rules! wide {
    ($n:expr, $w:expr, $online:expr; $($name:ident: $make:expr;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
            $(
                #[test]
                fn $name(seed in any::<u64>()) {
                    run::<_, { $n }, { $w }>($make, &$online, seed);
                }
            )*
        }
    };
}

wide! {
    SLOTS, WORDS, WIDE;
    refcount: lazymm::lazy::refcount::Refcount::new();
    shootdown: lazymm::lazy::shootdown::Shootdown::new();
    tagged: lazymm::lazy::tagged::Tagged::<SLOTS>::new();
    cached: lazymm::lazy::cached::Cached::<SLOTS>::new();
    hazard: lazymm::lazy::hazard::HazardLazy::<SLOTS>::new();
    hazard_nofence: lazymm::lazy::hazard::HazardLazyNoFence::<SLOTS>::new();
    loaded_mm: lazymm::lazy::loaded::LoadedMm::<SLOTS>::new();
    rcu_mm: lazymm::lazy::rcu_mm::RcuMm::<SLOTS>::new();
}

/// A kernel of 65 CPUs (65 ≡ 1 mod 64: the second cpumask word holds one
/// CPU, where a word count rounded down loses it), CPU 64 among the online.
mod nr_cpus_65 {
    use super::*;
    const N: usize = 65;
    pub(super) const ONLINE: [usize; 5] = [0, 1, 62, 63, 64];
    wide! {
        N, 2, ONLINE;
        refcount: lazymm::lazy::refcount::Refcount::new();
        shootdown: lazymm::lazy::shootdown::Shootdown::new();
        tagged: lazymm::lazy::tagged::Tagged::<N>::new();
        cached: lazymm::lazy::cached::Cached::<N>::new();
        hazard: lazymm::lazy::hazard::HazardLazy::<N>::new();
        hazard_nofence: lazymm::lazy::hazard::HazardLazyNoFence::<N>::new();
        loaded_mm: lazymm::lazy::loaded::LoadedMm::<N>::new();
        rcu_mm: lazymm::lazy::rcu_mm::RcuMm::<N>::new();
    }
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
        run::<_, SLOTS, WORDS>(
            LoadedMm::<SLOTS>::with_bug(Bug::ScanFirstWordOnly),
            &WIDE,
            seed,
        );
    }
}

/// The same in the 65-CPU kernel: CPU 64 alone in the second word.
#[cfg(feature = "bug-variants")]
#[test]
#[should_panic(expected = "use-after-free of mm")]
fn bug_scan_first_word_only_65() {
    use lazymm::lazy::loaded::{Bug, LoadedMm};
    for seed in 0..64 {
        run::<_, 65, 2>(
            LoadedMm::<65>::with_bug(Bug::ScanFirstWordOnly),
            &nr_cpus_65::ONLINE,
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
        run::<_, SLOTS, WORDS>(
            LoadedMm::<SLOTS>::with_bug(Bug::ScanFirstWordOnly),
            &NARROW,
            seed,
        );
    }
}
