//! Every scheme on a tiny 2-CPU machine with *real* threads (the std build's
//! atomics and `std::thread`), and the hazard-pointer domain's reader /
//! reclaimer pair, so that Miri (`ci/miri.sh`) sees real concurrency: data
//! races on the oracle's cells (an mm's body is a plain cell that every use
//! reads and the free writes) and the per-CPU words, and weak-memory outcomes
//! of the atomics.
//!
//! Natively these are quick sanity runs; the loom and shuttle suites are what
//! explore the interleavings. Under `--cfg loom` / `--cfg lazymm_shuttle` the
//! machine's atomics belong to the checker and cannot run outside a model, so
//! the file is compiled out there.
//!
//! With the test-only `bug-variants` feature the [`probe`] module adds one
//! ignored test per known-bad variant, for `ci/mutants.sh`'s Miri column;
//! the tests outside it are their controls (same scenarios, correct code).
#![cfg(not(any(loom, lazymm_shuttle)))]

use lazymm::check::model::{Machine, MmId, Op, Scenario};
use lazymm::check::sync::thread::{spawn, Arc};
use lazymm::check::sync::{AtomicUsize, Ordering::Release, UnsafeCell};
use lazymm::cpu::CpuId;
use lazymm::lazy::cached::Cached;
use lazymm::lazy::hazard::HazardLazy;
use lazymm::lazy::loaded::LoadedMm;
use lazymm::lazy::refcount::Refcount;
use lazymm::lazy::shootdown::Shootdown;
use lazymm::lazy::tagged::Tagged;
use lazymm::lazy::LazyMm;
use lazymm::reclaim::hazard::{HazardDomain, ScanContext};

/// How many times each scenario runs: natively a few dozen (the threads then
/// really overlap); under Miri once, its seed varies the schedule
/// (`ci/miri.sh` loops over seeds).
const RUNS: usize = if cfg!(miri) { 1 } else { 20 };

const A: MmId = MmId::new(0);
const B: MmId = MmId::new(1);
use Op::{Exit, Kthread, User};

/// The five 2-CPU scenarios of `tests/loom/common.rs`.
fn scenarios() -> [Scenario; 5] {
    [
        // round_trip_vs_exit: a lazy round trip on cpu0 while cpu1 runs an
        // exit that may be the last mmput.
        Scenario::new(
            1,
            vec![vec![User(A), Kthread, User(A), Exit], vec![User(A), Exit]],
        ),
        // exit_lazy_vs_final_drop: cpu0 stays lazy on its dead mm, then
        // unlazies into another, while cpu1 may make the final drop.
        Scenario::new(
            2,
            vec![vec![User(A), Exit, User(B), Exit], vec![User(A), Exit]],
        ),
        // kthread_transfer: kernel -> kernel hand-over of the lazy mm.
        Scenario::new(1, vec![vec![User(A), Exit, Kthread], vec![User(A), Exit]]),
        // down_while_lazy: cpu0 goes down lazy.
        Scenario::new(1, vec![vec![User(A), Exit], vec![User(A), Exit]]),
        // crossing_drops: final drops needing each other (IPIs both ways).
        Scenario::new(
            2,
            vec![
                vec![User(A), Exit, User(B), Exit],
                vec![User(B), Exit, User(A), Exit],
            ],
        ),
    ]
}

/// Runs every scenario on a machine with the scheme `make()` builds.
fn machine<S>(make: impl Fn() -> S, bug: Option<lazymm::check::model::MachineBug>)
where
    S: LazyMm + Send + Sync + 'static,
{
    for s in scenarios() {
        for _ in 0..RUNS {
            #[allow(unused_mut)]
            let mut m = Machine::new(make(), s.clone());
            #[cfg(feature = "bug-variants")]
            if let Some(b) = bug {
                m = m.with_bug(b);
            }
            #[cfg(not(feature = "bug-variants"))]
            let _ = bug;
            Machine::run(&Arc::new(m));
        }
    }
}

#[test]
fn refcount() {
    machine(Refcount::new, None);
}

#[test]
fn shootdown() {
    machine(Shootdown::new, None);
}

#[test]
fn tagged() {
    machine(Tagged::<2>::new, None);
}

#[test]
fn cached() {
    machine(Cached::<2>::new, None);
}

#[test]
fn hazard_lazy() {
    machine(HazardLazy::<2>::new, None);
}

#[test]
fn hazard_nofence() {
    machine(lazymm::lazy::hazard::HazardLazyNoFence::<2>::new, None);
}

#[test]
fn loaded_mm() {
    machine(LoadedMm::<2>::new, None);
}

#[test]
fn rcu_mm() {
    machine(lazymm::lazy::rcu_mm::RcuMm::<2>::new, None);
}

/// The TLB machine on real threads: a CPU that goes lazy and comes back
/// while the other flushes, reclaims and mprotects.
#[test]
fn tlb_machine() {
    use lazymm::check::model::tlb::{TlbMachine, TlbOp::*, TlbScenario};
    let s = TlbScenario::new(vec![
        vec![User, Use, Kthread, User, Use, Reclaim(1), UnmapFlush],
        vec![User, Flush { freed_tables: true }, Mprotect(1), Ldt, Use],
    ]);
    TlbMachine::run(&Arc::new(TlbMachine::<2>::correct(s)));
}

/// The walker machine on real threads: a walker and a collapser, with the
/// targeted sync and with the RCU-deferred free.
#[test]
fn walk_machine() {
    use lazymm::check::model::walk::{SyncKind, WalkMachine, WalkOp::*, WalkScenario};
    use lazymm::walk::{BeginOrder, FlushDelivery};
    for sync in [SyncKind::Targeted(BeginOrder::StoreMb), SyncKind::Rcu] {
        let s = WalkScenario::new(vec![vec![Walk, Walk, Walk], vec![Collapse, Collapse]]);
        let m = WalkMachine::<2>::with(s, sync, FlushDelivery::NoIpi);
        WalkMachine::run(&Arc::new(m));
    }
}

/// An object a reader protects and a reclaimer frees.
struct Shared {
    domain: HazardDomain<2, 2>,
    src: AtomicUsize,
    payload: UnsafeCell<usize>,
}

// SAFETY: the payload is read under protection and written by the free after
// the scan; Miri reports any pair that is not ordered.
unsafe impl Sync for Shared {}

const OBJ: usize = 0x40;

/// `tests/loom/hazard.rs`'s domain model, several times: the reader
/// try_protects, reads the payload and releases; the reclaimer unpublishes,
/// scans (preemptible, no on_match) and frees (writes the payload).
fn hazard_domain_model(make: impl Fn() -> HazardDomain<2, 2>) {
    for _ in 0..8 {
        let s = Arc::new(Shared {
            domain: make(),
            src: AtomicUsize::new(OBJ),
            payload: UnsafeCell::new(7),
        });
        let r = {
            let s = Arc::clone(&s);
            spawn(move || {
                if let Ok(p) = s.domain.try_protect(CpuId::new(0), &s.src) {
                    assert_eq!(p.addr(), OBJ);
                    // SAFETY: protected (or Miri reports the race).
                    let v = s.payload.with(|v| unsafe { *v });
                    assert_eq!(v, 7, "read a freed object");
                    s.domain.release(p);
                }
            })
        };
        // Let the reader run first at times: Miri switches threads only when
        // the running one yields, blocks or is preempted.
        std::thread::yield_now();
        s.src.store(0, Release);
        s.domain
            .scan(ScanContext::Preemptible, 2, OBJ, None, || {})
            .unwrap();
        // SAFETY: the scan saw no reader (or Miri reports the race).
        s.payload.with_mut(|v| unsafe { *v = 0xdead });
        r.join().unwrap();
    }
}

#[test]
fn hazard_domain() {
    hazard_domain_model(HazardDomain::new);
}

/// Mutation probes for `ci/mutants.sh`'s Miri column: every `bug_<what>`
/// variant of the loom and shuttle suites, on the machine scenarios above or,
/// for the hazard domain's variants, on [`hazard_domain_model`].
///
/// Built only with the test-only `bug-variants` feature, and ignored: each is
/// expected to *fail* — an oracle panic, or a Miri error (a data race on the
/// mm's body is undefined behaviour, which ends the process, so these cannot
/// be `#[should_panic]`). `ci/mutants.sh` runs each by name, alone, under
/// Miri with many seeds, and records whether it failed. Natively they are
/// flaky by nature. A probe ends the process on its first panic (see
/// `exit_on_panic`), so run them one at a time.
#[cfg(feature = "bug-variants")]
mod probe {
    use super::*;
    use lazymm::check::model::MachineBug;

    /// An oracle panic on one CPU thread leaves the others spinning in their
    /// idle loops (real threads have no checker to stop them), so a probe's
    /// first panic prints its message and ends the process.
    fn exit_on_panic() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                default(info);
                std::process::exit(101);
            }));
        });
    }

    fn probe<S>(make: impl Fn() -> S, bug: Option<MachineBug>)
    where
        S: LazyMm + Send + Sync + 'static,
    {
        exit_on_panic();
        machine(make, bug);
    }

    mod refcount {
        use super::*;
        use lazymm::lazy::refcount::{Bug, Refcount};

        #[test]
        #[ignore = "mutation probe: expected to fail; run by ci/mutants.sh under Miri"]
        fn bug_drop_before_last_use() {
            probe(|| Refcount::with_bug(Bug::DropBeforeLastUse), None);
        }

        #[test]
        #[ignore = "mutation probe: expected to fail; run by ci/mutants.sh under Miri"]
        fn bug_transfer_grabs() {
            probe(|| Refcount::with_bug(Bug::TransferGrabs), None);
        }
    }

    mod shootdown {
        use super::*;

        #[test]
        #[ignore = "mutation probe: expected to fail; run by ci/mutants.sh under Miri"]
        fn bug_hotplug_clears_cpumask() {
            probe(Shootdown::new, Some(MachineBug::HotplugClearsCpumask));
        }
    }

    mod tagged {
        use super::*;
        use lazymm::lazy::tagged::{Bug, Options, TaggedV2};

        type T = Tagged<2>;

        const NO_CHECK: Options = Options {
            check_before_cmpxchg: false,
            batch_grab: false,
        };

        /// The options tests/loom/tagged.rs uses for each variant.
        fn variant(bug: Bug) {
            let opts = match bug {
                Bug::UnlazyXchgNoRelease | Bug::CmpxchgFailureRelaxed => NO_CHECK,
                _ => Options::MOCKUP,
            };
            probe(|| T::with_bug(opts, bug), None);
        }

        #[test]
        #[ignore = "mutation probe: expected to fail; run by ci/mutants.sh under Miri"]
        fn bug_rfc_v2_deposit_race() {
            probe(TaggedV2::<2>::new, None);
        }

        #[test]
        #[ignore = "mutation probe: expected to fail; run by ci/mutants.sh under Miri"]
        fn bug_enter_store_relaxed() {
            variant(Bug::EnterStoreRelaxed);
        }

        #[test]
        #[ignore = "mutation probe: expected to fail; run by ci/mutants.sh under Miri"]
        fn bug_no_drop_on_failed_cmpxchg() {
            variant(Bug::NoDropOnFailedCmpxchg);
        }

        #[test]
        #[ignore = "mutation probe: expected to fail; run by ci/mutants.sh under Miri"]
        fn bug_drop_on_successful_cmpxchg() {
            variant(Bug::DropOnSuccessfulCmpxchg);
        }

        #[test]
        #[ignore = "mutation probe: expected to fail; run by ci/mutants.sh under Miri"]
        fn bug_unlazy_store_if_users() {
            variant(Bug::UnlazyStoreIfUsers);
        }

        #[test]
        #[ignore = "mutation probe: expected to fail; run by ci/mutants.sh under Miri"]
        fn bug_unlazy_xchg_no_release() {
            variant(Bug::UnlazyXchgNoRelease);
        }

        #[test]
        #[ignore = "mutation probe: expected to fail; run by ci/mutants.sh under Miri"]
        fn bug_cmpxchg_failure_relaxed() {
            variant(Bug::CmpxchgFailureRelaxed);
        }

        #[test]
        #[ignore = "mutation probe: expected to fail; run by ci/mutants.sh under Miri"]
        fn bug_check_relaxed() {
            variant(Bug::CheckRelaxed);
        }

        /// loom cannot see this one (`loom_blind_cmpxchg_success_relaxed`).
        #[test]
        #[ignore = "mutation probe: expected to fail; run by ci/mutants.sh under Miri"]
        fn bug_cmpxchg_success_relaxed() {
            variant(Bug::CmpxchgSuccessRelaxed);
        }
    }

    mod cached {
        use super::*;
        use lazymm::lazy::cached::Bug;

        #[test]
        #[ignore = "mutation probe: expected to fail; run by ci/mutants.sh under Miri"]
        fn bug_drop_on_leave() {
            probe(|| Cached::<2>::with_bug(Bug::DropOnLeave), None);
        }

        #[test]
        #[ignore = "mutation probe: expected to fail; run by ci/mutants.sh under Miri"]
        fn bug_forget_on_init_mm() {
            probe(|| Cached::<2>::with_bug(Bug::ForgetOnInitMm), None);
        }
    }

    mod loaded {
        use super::*;
        use lazymm::lazy::loaded::Bug;

        #[test]
        #[ignore = "mutation probe: expected to fail; run by ci/mutants.sh under Miri"]
        fn bug_switching_window() {
            probe(|| LoadedMm::<2>::with_bug(Bug::SwitchingWindow), None);
        }
    }

    mod hazard {
        use super::*;
        use lazymm::reclaim::hazard::Bug;

        fn domain(bug: Bug) {
            exit_on_panic();
            hazard_domain_model(|| HazardDomain::with_bug(bug));
        }

        #[test]
        #[ignore = "mutation probe: expected to fail; run by ci/mutants.sh under Miri"]
        fn bug_no_publish_fence() {
            domain(Bug::NoPublishFence);
        }

        #[test]
        #[ignore = "mutation probe: expected to fail; run by ci/mutants.sh under Miri"]
        fn bug_no_scan_fence() {
            domain(Bug::NoScanFence);
        }

        #[test]
        #[ignore = "mutation probe: expected to fail; run by ci/mutants.sh under Miri"]
        fn bug_no_revalidate() {
            domain(Bug::NoRevalidate);
        }

        #[test]
        #[ignore = "mutation probe: expected to fail; run by ci/mutants.sh under Miri"]
        fn bug_scan_no_wait() {
            domain(Bug::ScanNoWait);
        }

        /// As loom's `lazy_without_fences_still_safe`: in the lazy-mm use the
        /// fences are not what keeps the mm alive; expected to *pass*.
        #[test]
        #[ignore = "mutation probe: run by ci/mutants.sh under Miri"]
        fn lazy_without_fences_still_safe() {
            probe(|| HazardLazy::<2>::with_bug(Bug::NoPublishFence), None);
            probe(|| HazardLazy::<2>::with_bug(Bug::NoScanFence), None);
        }
    }
}
