//! The schemes `compare` measures, at each CPU slot count, with their
//! memory footprints.

use super::{measure, Args, Measured};
use lazymm::check::model::{ReplayPlan, Stats};
use lazymm::check::sync::AtomicUsize;
use lazymm::cpu::{CpuSet, WORD_BITS};
use lazymm::lazy::cached::Cached;
use lazymm::lazy::hazard::{HazardLazy, HazardLazyNoFence};
use lazymm::lazy::loaded::LoadedMm;
use lazymm::lazy::rcu_mm::RcuMm;
use lazymm::lazy::refcount::Refcount;
use lazymm::lazy::shootdown::Shootdown;
use lazymm::lazy::tagged::Tagged;
use lazymm::lazy::LazyMm;
use std::mem::size_of;

/// An mm field a scheme's hooks read or write.
#[derive(Clone, Copy)]
pub(super) enum MmField {
    /// `mm_count`: the scheme grabs or drops references.
    Count,
    /// `mm_cpumask`: the scheme's exit walks it.
    Cpumask,
}

impl MmField {
    pub(super) fn bytes(self, slots: usize) -> usize {
        match self {
            MmField::Count => size_of::<AtomicUsize>(),
            MmField::Cpumask => size_of::<CpuSet<1>>() * slots.div_ceil(WORD_BITS),
        }
    }
}

/// One scheme: how to measure it and its memory, at `C` CPU slots.
pub(super) struct Entry {
    pub(super) name: &'static str,
    pub(super) measure: fn(&Args) -> Measured,
    /// Replays a recorded workload through a fresh scheme (`--trace`).
    pub(super) replay: fn(&ReplayPlan) -> Stats,
    /// Bytes per CPU slot: `size_of` at 2 slots minus at 1; `None` for
    /// the library backends, whose per-CPU state is on the heap.
    pub(super) per_cpu_bytes: Option<usize>,
    pub(super) mm_fields: &'static [MmField],
}

impl Entry {
    /// `S`: the scheme as measured; `A` and `B`: the scheme type at 1 and
    /// 2 CPU slots (the same type for a scheme without a CPU parameter).
    fn new<S, A, B>(mm_fields: &'static [MmField]) -> Self
    where
        S: LazyMm + Default + Send + Sync + 'static,
    {
        Entry {
            name: S::NAME,
            measure: measure::<S>,
            replay: |p| p.run(S::default()),
            per_cpu_bytes: Some(size_of::<B>() - size_of::<A>()),
            mm_fields,
        }
    }

    /// A library backend (haphazard, crossbeam-epoch): per-CPU state on
    /// the heap, not in `size_of`.
    #[allow(dead_code)] // unused in checker builds, where the backends are not built
    fn heap<S>(mm_fields: &'static [MmField]) -> Self
    where
        S: LazyMm + Default + Send + Sync + 'static,
    {
        Entry {
            per_cpu_bytes: None,
            ..Entry::new::<S, S, S>(mm_fields)
        }
    }
}

/// The crate's schemes, then the library backends beside the schemes they
/// mirror (haphazard beside hazard, crossbeam-epoch beside rcu_mm) where
/// the features are on (default) and the build is not a checker's.
fn entries<const C: usize>() -> Vec<Entry> {
    use MmField::*;
    #[allow(unused_mut)]
    let mut v = vec![
        Entry::new::<Refcount, Refcount, Refcount>(&[Count]),
        Entry::new::<Shootdown, Shootdown, Shootdown>(&[Cpumask]),
        Entry::new::<Tagged<C>, Tagged<1>, Tagged<2>>(&[Count, Cpumask]),
        Entry::new::<Cached<C>, Cached<1>, Cached<2>>(&[Count]),
        Entry::new::<HazardLazy<C>, HazardLazy<1>, HazardLazy<2>>(&[]),
        Entry::new::<HazardLazyNoFence<C>, HazardLazyNoFence<1>, HazardLazyNoFence<2>>(&[]),
        Entry::new::<LoadedMm<C>, LoadedMm<1>, LoadedMm<2>>(&[]),
        Entry::new::<RcuMm<C>, RcuMm<1>, RcuMm<2>>(&[Cpumask]),
    ];
    #[cfg(all(feature = "haphazard", not(any(loom, lazymm_shuttle))))]
    v.push(Entry::heap::<lazymm::lazy::haphazard::HaphazardLazy<C>>(&[]));
    #[cfg(all(feature = "epoch", not(any(loom, lazymm_shuttle))))]
    v.push(Entry::heap::<lazymm::lazy::epoch_mm::EpochMm<C>>(&[
        Cpumask,
    ]));
    v
}

macro_rules! slot_choices {
    ($($n:literal),*) => {
        /// The CPU slot counts the schemes are compiled for.
        pub(super) const SLOT_CHOICES: &[usize] = &[$($n),*];

        /// The schemes at `slots` CPU slots (one of [`SLOT_CHOICES`]).
        pub(super) fn schemes(slots: usize) -> Vec<Entry> {
            match slots {
                $($n => entries::<$n>(),)*
                _ => unreachable!("slot count {slots} is not a slot choice"),
            }
        }
    };
}

slot_choices!(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024);
