//! Misuse gets a clear error: the `Checked` wrapper on every scheme runs
//! the machine's random workloads without a false alarm, and turns each
//! misuse — enter twice, leave twice, leave with the wrong mm, an
//! out-of-range CPU, a final drop while a CPU is lazy on the mm, a CPU dead
//! while lazy, a lazy mm loaded again after switching away — into the same documented panic
//! for every scheme, the library backends included (the table below, one test
//! per scheme and misuse).
#![cfg(all(
    feature = "epoch",
    feature = "haphazard",
    not(any(loom, lazymm_shuttle))
))]

use lazymm::check::model::{Machine, MmId, Scenario};
use lazymm::check::sync::thread::Arc;
use lazymm::cpu::CpuId;
use lazymm::lazy::cached::Cached;
use lazymm::lazy::checked::Checked;
use lazymm::lazy::epoch_mm::EpochMm;
use lazymm::lazy::haphazard::HaphazardLazy;
use lazymm::lazy::hazard::HazardLazy;
use lazymm::lazy::loaded::LoadedMm;
use lazymm::lazy::rcu_mm::RcuMm;
use lazymm::lazy::refcount::Refcount;
use lazymm::lazy::shootdown::Shootdown;
use lazymm::lazy::tagged::Tagged;
use lazymm::lazy::LazyMm;

fn run_checked<S>(inner: fn() -> S)
where
    S: LazyMm + Send + Sync + 'static,
{
    for seed in 0..20 {
        let m = Arc::new(Machine::new(
            Checked::<S, 4>::new(inner()),
            Scenario::random(seed, 4, 3, 12),
        ));
        Machine::run(&m);
    }
}

#[test]
fn checked_schemes_raise_no_false_alarm() {
    run_checked(Refcount::new);
    run_checked(Shootdown::new);
    run_checked(Tagged::<4>::new);
    run_checked(Cached::<4>::new);
    run_checked(HazardLazy::<4>::new);
    run_checked(lazymm::lazy::hazard::HazardLazyNoFence::<4>::new);
    run_checked(LoadedMm::<4>::new);
    run_checked(RcuMm::<4>::new);
    run_checked(HaphazardLazy::<4>::new);
    run_checked(EpochMm::<4>::new);
}

/// A 2-CPU machine with two mms, for calling the hooks by hand.
fn machine<S: LazyMm + Send + Sync + 'static>(inner: S) -> Machine<Checked<S, 2>> {
    use lazymm::check::model::Op::{Exit, User};
    Machine::new(
        Checked::new(inner),
        Scenario::new(
            2,
            vec![
                vec![User(MmId::new(0)), Exit],
                vec![User(MmId::new(1)), Exit],
            ],
        ),
    )
}

/// The table: one test per scheme and misuse, each the same documented
/// panic of `Checked` (its module docs), with the offending CPU `$cpu`
/// and `$other` the machine's other CPU.
macro_rules! misuse_table {
    ($cpu:expr, $other:expr; $($scheme:ident => $new:expr,)*) => {$(
        mod $scheme {
            use super::*;
            const CPU: CpuId = CpuId::new($cpu);

            #[test]
            #[should_panic(expected = "which is already lazy (entered twice)")]
            fn enter_twice() {
                let m = machine($new);
                m.scheme().mmgrab_lazy_tlb(&m, CPU, MmId::new(0));
                m.scheme().mmgrab_lazy_tlb(&m, CPU, MmId::new(0));
            }

            #[test]
            #[should_panic(expected = "which is not lazy (left twice, or never entered)")]
            fn leave_twice() {
                let m = machine($new);
                let mm = MmId::new(0);
                m.scheme().mmgrab_lazy_tlb(&m, CPU, mm);
                m.scheme().mmdrop_lazy_tlb(&m, CPU, mm, Some(mm));
                m.scheme().mmdrop_lazy_tlb(&m, CPU, mm, Some(mm));
            }

            #[test]
            #[should_panic(expected = "but it is lazy on another mm")]
            fn leave_with_the_wrong_mm() {
                let m = machine($new);
                m.scheme().mmgrab_lazy_tlb(&m, CPU, MmId::new(0));
                m.scheme().mmdrop_lazy_tlb(&m, CPU, MmId::new(1), None);
            }

            #[test]
            #[should_panic(expected = "CPU id 2 out of range")]
            fn cpu_out_of_range() {
                let m = machine($new);
                m.scheme().mmgrab_lazy_tlb(&m, CpuId::new(2), MmId::new(0));
            }

            /// The kernel frees an mm (its `__mmdrop()` runs the final drop)
            /// while a CPU is lazy on it and the scheme's final drop does
            /// not (cannot) take the CPU off: IPIs are delivered on the
            /// spot, and cpu0 never loaded the mm, so nothing switches it.
            #[test]
            #[should_panic(expected = "is still lazy on it at its final drop")]
            fn free_while_lazy() {
                let m = machine($new).with_inline_ipis();
                m.scheme().mmgrab_lazy_tlb(&m, CPU, MmId::new(0));
                m.scheme().final_drop(&m, CpuId::new($other), MmId::new(0));
            }

            /// A lazy CPU switches to another mm (a temporary mm, say) and
            /// back without a new lazy entry: the per-CPU schemes dropped
            /// their hold at the first switch.
            #[test]
            #[should_panic(expected = "again after switching away from it while lazy")]
            fn reload_after_switching_away() {
                let m = machine($new);
                let (a, b) = (MmId::new(0), MmId::new(1));
                m.scheme().mmgrab_lazy_tlb(&m, CPU, a);
                m.scheme().switching_mm(&m, CPU, Some(a), Some(b));
                m.scheme().switched_mm(&m, CPU, Some(a), Some(b));
                m.scheme().switching_mm(&m, CPU, Some(b), Some(a));
            }

            #[test]
            #[should_panic(expected = "which is still lazy on mm0")]
            fn cpu_dead_while_lazy() {
                let m = machine($new);
                m.scheme().mmgrab_lazy_tlb(&m, CPU, MmId::new(0));
                m.scheme().cpu_dead(&m, CPU);
            }
        }
    )*};
}

/// The table with the offending CPU first (cpu0) and last (cpu1 of 2):
/// the per-CPU state's edges.
macro_rules! misuse_tables {
    ($($scheme:ident => $new:expr,)*) => {
        mod first_cpu {
            use super::*;
            misuse_table! { 0, 1; $($scheme => $new,)* }
        }
        mod last_cpu {
            use super::*;
            misuse_table! { 1, 0; $($scheme => $new,)* }
        }
    };
}

misuse_tables! {
    refcount => Refcount::new(),
    shootdown => Shootdown::new(),
    tagged => Tagged::<2>::new(),
    cached => Cached::<2>::new(),
    hazard => HazardLazy::<2>::new(),
    hazard_nofence => lazymm::lazy::hazard::HazardLazyNoFence::<2>::new(),
    loaded_mm => LoadedMm::<2>::new(),
    rcu_mm => RcuMm::<2>::new(),
    haphazard => HaphazardLazy::<2>::new(),
    epoch_mm => EpochMm::<2>::new(),
}
