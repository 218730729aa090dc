//! Every type a kernel keeps in a `static` builds in a plain `static`
//! (`const` constructors outside the checkers): each scheme, `Checked<S>`,
//! `PerCpu`, the deferred-drop list, the switch sequence's per-CPU words,
//! the TLB, walker and reclamation state. A constructor that stops being
//! `const` fails this file's build (E0015); the test then uses each one.
#![cfg(not(any(loom, lazymm_shuttle)))]

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use lazymm::cpu::{AtomicCpuSet, CachePadded, CpuId, CpuSet, PerCpu};
use lazymm::lazy::cached::Cached;
use lazymm::lazy::checked::Checked;
use lazymm::lazy::deferred::DeferredDrops;
use lazymm::lazy::hazard::{HazardLazy, HazardLazyNoFence};
use lazymm::lazy::loaded::LoadedMm;
use lazymm::lazy::rcu_mm::RcuMm;
use lazymm::lazy::refcount::Refcount;
use lazymm::lazy::shootdown::Shootdown;
use lazymm::lazy::switch::CpuMmWords;
use lazymm::lazy::tagged::Tagged;
use lazymm::lazy::LazyMm;
use lazymm::reclaim::hazard::HazardDomain;
use lazymm::reclaim::rcu::{Rcu, RcuQueue};
use lazymm::tlb::batched::{FlushBatched, PteLock};
use lazymm::tlb::tlbgen::{LazyTlb, TlbGen};
use lazymm::walk::{BeginOrder, WalkTracker};

const NR_CPUS: usize = 8;

static REFCOUNT: Refcount = Refcount::new();
static SHOOTDOWN: Shootdown = Shootdown::new();
static TAGGED: Tagged<NR_CPUS> = Tagged::new();
static CACHED: Cached<NR_CPUS> = Cached::new();
static HAZARD: HazardLazy<NR_CPUS> = HazardLazy::new();
static HAZARD_NOFENCE: HazardLazyNoFence<NR_CPUS> = HazardLazyNoFence::new();
static LOADED: LoadedMm<NR_CPUS> = LoadedMm::new();
static RCU_MM: RcuMm<NR_CPUS> = RcuMm::new();
static CHECKED: Checked<Tagged<NR_CPUS>, NR_CPUS> = Checked::new(Tagged::new());
static PER_CPU: PerCpu<AtomicUsize, NR_CPUS> =
    PerCpu::from_padded([const { CachePadded::new(AtomicUsize::new(0)) }; NR_CPUS]);
static CPU_MM: [CpuMmWords; NR_CPUS] = [const { CpuMmWords::new() }; NR_CPUS];
static CPUMASK: AtomicCpuSet<1> = AtomicCpuSet::new();
static TLB_GEN: TlbGen = TlbGen::new();
static LAZY_TLB: LazyTlb<NR_CPUS> = LazyTlb::new();
static BATCHED: FlushBatched = FlushBatched::new();
static PTL: PteLock = PteLock::new();
static WALKERS: WalkTracker<NR_CPUS> = WalkTracker::new(BeginOrder::StoreMb);
static DOMAIN: HazardDomain<NR_CPUS, 1> = HazardDomain::new();
static RCU: Rcu<NR_CPUS> = Rcu::new();

use lazymm::lazy::MmIndex as Mm;

#[test]
fn statics_are_usable() {
    // Per-CPU state a kernel keeps in statics (a `static mut` or a per-CPU
    // section holds the `&mut` ones: the deferred list, the RCU queue).
    let mut deferred: DeferredDrops<Mm, 4> = const { DeferredDrops::new() };
    let mut queue: RcuQueue<Mm, 4> = const { RcuQueue::new() };
    deferred.defer(Mm(0)).unwrap();
    assert_eq!(deferred.drain().collect::<Vec<_>>(), [Mm(0)]);
    assert!(queue.push(RCU.snap(), Mm(1)).is_ok());
    assert_eq!(queue.len(), 1);

    let cpu = CpuId::new(NR_CPUS - 1);
    PER_CPU.get(cpu).fetch_add(1, Relaxed);
    assert_eq!(PER_CPU.get(cpu).load(Relaxed), 1);
    CPU_MM[cpu.index()].set_loaded(Some(Mm(2)));
    assert_eq!(CPU_MM[cpu.index()].loaded::<Mm>(), Some(Mm(2)));
    assert!(CPUMASK.insert(cpu, Relaxed));
    assert_eq!(TLB_GEN.inc(), 2);
    assert_eq!(LAZY_TLB.loaded::<Mm>(cpu), None);
    let _ = (&BATCHED, &PTL, &WALKERS, &DOMAIN);
    assert_eq!(
        [
            Refcount::NAME,
            Shootdown::NAME,
            <Tagged<NR_CPUS>>::NAME,
            <Cached<NR_CPUS>>::NAME,
            <HazardLazy<NR_CPUS>>::NAME,
            <HazardLazyNoFence<NR_CPUS>>::NAME,
            <LoadedMm<NR_CPUS>>::NAME,
            <RcuMm<NR_CPUS>>::NAME,
        ],
        lazymm::lazy::SCHEMES
    );
    let _ = (
        &REFCOUNT,
        &SHOOTDOWN,
        &TAGGED,
        &CACHED,
        &HAZARD,
        &HAZARD_NOFENCE,
        &LOADED,
        &RCU_MM,
        &CHECKED,
    );
    let _: CpuSet<1> = CPUMASK.snapshot(NR_CPUS, Relaxed);
}
