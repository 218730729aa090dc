//! The platform traits as the library consumes them: `CurrentCpu` pins the
//! CPU for a whole lockless walk (`WalkTracker::walk`), and `LocalTlb`
//! receives the local flush that a switch's generation check asks for
//! (`LazyTlb::switch_mm`). One CPU, sequential: the protocols' concurrency
//! is the models' job; this checks the wiring.
#![cfg(not(any(loom, lazymm_shuttle)))]

use lazymm::cpu::{AtomicCpuSet, CpuId, CpuSet};

use lazymm::platform::{CpuPin, CurrentCpu, LocalTlb};
use lazymm::tlb::tlbgen::{LazyTlb, TlbGen};
use lazymm::walk::{BeginOrder, WalkTracker};
use std::cell::Cell;

use lazymm::lazy::MmIndex as Mm;

/// A one-CPU platform that counts local flushes and page-table loads.
#[derive(Default)]
struct Platform {
    flushes: Cell<u32>,
    loads: Cell<u32>,
}

// SAFETY: the test runs on one thread, which is CPU 0 for its whole life.
unsafe impl CurrentCpu for Platform {
    fn pin(&self) -> CpuPin<'_> {
        // SAFETY: see the impl.
        unsafe { CpuPin::new(CpuId::new(0)) }
    }
}

impl LocalTlb for Platform {
    type Mm = Mm;
    fn flush_local(&self, pin: &CpuPin<'_>, mm: Mm) {
        assert_eq!((pin.cpu(), mm), (CpuId::new(0), Mm(0)));
        self.flushes.set(self.flushes.get() + 1);
    }
}

#[test]
fn walk_is_pinned_and_visible_to_a_sync_while_it_runs() {
    let p = Platform::default();
    let t: WalkTracker<1> = WalkTracker::new(BeginOrder::StoreMb);
    let seen = t.walk(&p, Mm(0), || {
        let mut walkers = CpuSet::new();
        t.sync_targets(Mm(0), 1, &mut walkers);
        walkers.contains(CpuId::new(0))
    });
    assert!(seen, "a sync during the walk must see the walker");
    let mut after = CpuSet::new();
    t.sync_targets(Mm(0), 1, &mut after);
    assert!(after.is_empty(), "the walk ended");
}

#[test]
fn switch_mm_flushes_through_the_platform_only_when_the_generation_says_so() {
    let p = Platform::default();
    let lazy: LazyTlb<1> = LazyTlb::new();
    let (gen, mask) = (TlbGen::new(), AtomicCpuSet::<1>::new());
    let pin = p.pin();
    let load = || p.loads.set(p.loads.get() + 1);
    // First load of the mm: no context yet, so a flush.
    let mut local = lazy.switch_mm(&pin, &p, (Mm(0), &gen, &mask), None, load);
    assert_eq!((p.flushes.get(), p.loads.get()), (1, 1));
    // Lazy and back, nothing changed: no flush, no reload.
    lazy.enter_lazy_tlb(pin.cpu());
    local = lazy.switch_mm(&pin, &p, (Mm(0), &gen, &mask), local, load);
    assert_eq!((p.flushes.get(), p.loads.get()), (1, 1));
    // A flush skipped us while lazy (the generation moved on): the unlazy
    // catches up with a local flush, still without a reload.
    lazy.enter_lazy_tlb(pin.cpu());
    gen.inc();
    let caught_up = lazy.switch_mm(&pin, &p, (Mm(0), &gen, &mask), local, load);
    assert_eq!((p.flushes.get(), p.loads.get()), (2, 1));
    assert_eq!(caught_up, Some(gen.read()));
    assert_eq!(lazy.loaded::<Mm>(pin.cpu()), Some(Mm(0)));
}
