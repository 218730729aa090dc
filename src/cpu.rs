//! CPU basics: [`CpuId`], the word-bitmap [`CpuSet`] and its concurrent twin
//! [`AtomicCpuSet`], and cache-padded per-CPU storage [`PerCpu`].
//!
//! Capacities are const generics so that a kernel can put every table in a
//! `static` or in its own per-CPU area without allocating: `CpuSet<W>` holds
//! `W` machine words (the default, [`CPUSET_WORDS`], is 1024 CPUs on 64-bit
//! targets), `PerCpu<T, N>` holds exactly `N` padded slots.
//!
//! Out-of-range CPU ids are a misuse that panics with a message naming the id
//! and the capacity; they never index past a table. [`PerCpu::try_get`]
//! returns `None` instead, for callers that take CPU ids from outside.

use crate::sync::{AtomicUsize, Ordering};

/// Bits per bitmap word.
pub const WORD_BITS: usize = usize::BITS as usize;

/// Default number of words in a CPU set: 1024 CPUs on 64-bit targets.
pub const CPUSET_WORDS: usize = 1024 / WORD_BITS;

/// A logical CPU number, `0..nr_cpus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuId(u32);

impl CpuId {
    /// CPU number `n`. Range checks happen where the id indexes a table.
    #[inline]
    pub const fn new(n: usize) -> Self {
        assert!(n <= u32::MAX as usize, "CPU id does not fit in 32 bits");
        Self(n as u32)
    }

    /// The CPU number.
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl core::fmt::Display for CpuId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "cpu{}", self.0)
    }
}

#[cold]
#[track_caller]
fn out_of_range(cpu: CpuId, cap: usize) -> ! {
    panic!(
        "CPU id {} out of range: this table holds {} CPUs",
        cpu.0, cap
    )
}

/// A plain (non-atomic) set of CPUs: `W` words of bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CpuSet<const W: usize = CPUSET_WORDS> {
    words: [usize; W],
}

impl<const W: usize> Default for CpuSet<W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const W: usize> CpuSet<W> {
    /// How many CPUs the set can hold.
    pub const CAPACITY: usize = W * WORD_BITS;

    /// The empty set.
    #[inline]
    pub const fn new() -> Self {
        Self { words: [0; W] }
    }

    /// The set `{0, 1, .., n-1}`. Panics if `n` exceeds the capacity.
    pub fn first(n: usize) -> Self {
        assert!(
            n <= Self::CAPACITY,
            "{n} CPUs do not fit in a set of {}",
            Self::CAPACITY
        );
        let mut s = Self::new();
        for i in 0..n {
            s.insert(CpuId::new(i));
        }
        s
    }

    #[inline]
    #[track_caller]
    fn split(cpu: CpuId) -> (usize, usize) {
        let i = cpu.index();
        if i >= Self::CAPACITY {
            out_of_range(cpu, Self::CAPACITY)
        }
        (i / WORD_BITS, 1usize << (i % WORD_BITS))
    }

    /// Adds `cpu`; returns whether it was absent. Panics when out of range.
    #[inline]
    #[track_caller]
    pub fn insert(&mut self, cpu: CpuId) -> bool {
        let (w, b) = Self::split(cpu);
        let was = self.words[w] & b != 0;
        self.words[w] |= b;
        !was
    }

    /// Removes `cpu`; returns whether it was present. Panics when out of range.
    #[inline]
    #[track_caller]
    pub fn remove(&mut self, cpu: CpuId) -> bool {
        let (w, b) = Self::split(cpu);
        let was = self.words[w] & b != 0;
        self.words[w] &= !b;
        was
    }

    /// Whether `cpu` is in the set. Panics when out of range.
    #[inline]
    #[track_caller]
    pub fn contains(&self, cpu: CpuId) -> bool {
        let (w, b) = Self::split(cpu);
        self.words[w] & b != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// Number of CPUs in the set.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The CPUs in the set, ascending.
    pub fn iter(&self) -> CpuSetIter<'_, W> {
        CpuSetIter {
            set: self,
            word: 0,
            bits: if W > 0 { self.words[0] } else { 0 },
        }
    }

    /// The raw words.
    pub fn words(&self) -> &[usize; W] {
        &self.words
    }
}

impl<const W: usize> core::fmt::Debug for CpuSet<W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_set()
            .entries(self.iter().map(|c| c.index()))
            .finish()
    }
}

impl<const W: usize> FromIterator<CpuId> for CpuSet<W> {
    fn from_iter<I: IntoIterator<Item = CpuId>>(iter: I) -> Self {
        let mut s = Self::new();
        for c in iter {
            s.insert(c);
        }
        s
    }
}

/// Iterator over a [`CpuSet`].
pub struct CpuSetIter<'a, const W: usize> {
    set: &'a CpuSet<W>,
    word: usize,
    bits: usize,
}

impl<const W: usize> Iterator for CpuSetIter<'_, W> {
    type Item = CpuId;
    fn next(&mut self) -> Option<CpuId> {
        loop {
            if self.bits != 0 {
                let b = self.bits.trailing_zeros() as usize;
                self.bits &= self.bits - 1;
                return Some(CpuId::new(self.word * WORD_BITS + b));
            }
            self.word += 1;
            if self.word >= W {
                return None;
            }
            self.bits = self.set.words[self.word];
        }
    }
}

/// The CPU-set type a kernel hands its schemes ([`Kernel::CpuMask`]): a
/// plain set with room for the kernel's CPUs. [`CpuSet<W>`] is the
/// implementation; a kernel picks `W` for its CPU count
/// (`CpuSet<{ NR_CPUS.div_ceil(64) }>` written out), so a 4-CPU kernel
/// copies one word where 0.1 copied sixteen, and a set too small for
/// [`Kernel::NR_CPUS`] is a compile error in the scheme's hooks.
///
/// [`Kernel::CpuMask`]: crate::lazy::Kernel::CpuMask
/// [`Kernel::NR_CPUS`]: crate::lazy::Kernel::NR_CPUS
pub trait CpuMask: Default + Clone + core::fmt::Debug + Send + Sync {
    /// How many CPUs the set can hold.
    const CAPACITY: usize;
    /// Adds `cpu`; returns whether it was absent. Panics when out of range.
    fn insert(&mut self, cpu: CpuId) -> bool;
    /// Whether `cpu` is in the set. Panics when out of range.
    fn contains(&self, cpu: CpuId) -> bool;
    /// Number of CPUs in the set.
    fn len(&self) -> usize;
    /// Whether the set is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The CPUs in the set, ascending.
    fn iter(&self) -> impl Iterator<Item = CpuId> + '_;
}

impl<const W: usize> CpuMask for CpuSet<W> {
    const CAPACITY: usize = W * WORD_BITS;
    #[inline]
    fn insert(&mut self, cpu: CpuId) -> bool {
        CpuSet::insert(self, cpu)
    }
    #[inline]
    fn contains(&self, cpu: CpuId) -> bool {
        CpuSet::contains(self, cpu)
    }
    #[inline]
    fn len(&self) -> usize {
        CpuSet::len(self)
    }
    #[inline]
    fn iter(&self) -> impl Iterator<Item = CpuId> + '_ {
        CpuSet::iter(self)
    }
}

/// A CPU set that CPUs update concurrently, like Linux's `mm_cpumask`.
///
/// Each bit is set and cleared with a single atomic RMW on its word. A
/// [`snapshot`](Self::snapshot) reads the words one by one: it is not atomic
/// across words, exactly like `for_each_cpu(cpu, mm_cpumask(mm))`, and the
/// protocols that read it say why that is enough.
pub struct AtomicCpuSet<const W: usize = CPUSET_WORDS> {
    words: [AtomicUsize; W],
}

impl<const W: usize> Default for AtomicCpuSet<W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const W: usize> AtomicCpuSet<W> {
    /// How many CPUs the set can hold.
    pub const CAPACITY: usize = W * WORD_BITS;

    crate::const_fn! {
        /// The empty set (`const` outside loom).
        pub fn new() -> Self {
            #[cfg(not(loom))]
            {
                Self { words: [const { AtomicUsize::new(0) }; W] }
            }
            #[cfg(loom)]
            {
                Self { words: core::array::from_fn(|_| AtomicUsize::new(0)) }
            }
        }
    }

    /// Sets `cpu`'s bit with one `fetch_or(order)`; returns whether it was clear.
    #[inline]
    #[track_caller]
    pub fn insert(&self, cpu: CpuId, order: Ordering) -> bool {
        let (w, b) = CpuSet::<W>::split(cpu);
        self.words[w].fetch_or(b, order) & b == 0
    }

    /// Clears `cpu`'s bit with one `fetch_and(order)`; returns whether it was set.
    #[inline]
    #[track_caller]
    pub fn remove(&self, cpu: CpuId, order: Ordering) -> bool {
        let (w, b) = CpuSet::<W>::split(cpu);
        self.words[w].fetch_and(!b, order) & b != 0
    }

    /// Loads `cpu`'s word with `order` and tests its bit.
    #[inline]
    #[track_caller]
    pub fn contains(&self, cpu: CpuId, order: Ordering) -> bool {
        let (w, b) = CpuSet::<W>::split(cpu);
        self.words[w].load(order) & b != 0
    }

    /// Reads the words covering CPUs `0..nr_cpus`, each with `order`.
    ///
    /// Not atomic across words. Panics if `nr_cpus` exceeds the capacity.
    pub fn snapshot(&self, nr_cpus: usize, order: Ordering) -> CpuSet<W> {
        assert!(
            nr_cpus <= Self::CAPACITY,
            "{nr_cpus} CPUs exceed the set's {}",
            Self::CAPACITY
        );
        let mut s = CpuSet::new();
        for (w, word) in self
            .words
            .iter()
            .enumerate()
            .take(nr_cpus.div_ceil(WORD_BITS))
        {
            s.words[w] = word.load(order);
        }
        s
    }
}

impl<const W: usize> core::fmt::Debug for AtomicCpuSet<W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.snapshot(Self::CAPACITY, Ordering::Relaxed).fmt(f)
    }
}

/// The cache-line padding of [`PerCpu`]'s slots (crossbeam-utils'), for
/// [`PerCpu::from_padded`] in a `const` or `static`.
pub use crossbeam_utils::CachePadded;

/// `N` values of `T`, one per CPU, each on its own cache line(s).
///
/// The kernel's `DEFINE_PER_CPU_ALIGNED`: remote CPUs may read (or RMW) a
/// slot, but a CPU's own writes never false-share with its neighbours'.
///
/// In a `static` (per-CPU atomics the same way, outside loom, whose atomics
/// are not `const`):
///
/// ```
/// use lazymm::cpu::{CachePadded, CpuId, PerCpu};
///
/// static APIC_IDS: PerCpu<u32, 4> =
///     PerCpu::from_padded([const { CachePadded::new(0) }; 4]);
///
/// assert_eq!(*APIC_IDS.get(CpuId::new(3)), 0);
/// ```
pub struct PerCpu<T, const N: usize> {
    slots: [CachePadded<T>; N],
}

impl<T, const N: usize> PerCpu<T, N> {
    /// Number of CPUs.
    pub const LEN: usize = N;

    /// Wraps already padded slots (usable in `const` contexts).
    pub const fn from_padded(slots: [CachePadded<T>; N]) -> Self {
        Self { slots }
    }

    /// Builds each slot with `f(cpu)`.
    pub fn from_fn(mut f: impl FnMut(CpuId) -> T) -> Self {
        Self {
            slots: core::array::from_fn(|i| CachePadded::new(f(CpuId::new(i)))),
        }
    }

    /// Number of CPUs.
    #[inline]
    pub const fn len(&self) -> usize {
        N
    }

    /// Whether there are no CPUs.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        N == 0
    }

    /// `cpu`'s slot. Panics (naming the id and the capacity) when out of range.
    #[inline]
    #[track_caller]
    pub fn get(&self, cpu: CpuId) -> &T {
        match self.slots.get(cpu.index()) {
            Some(s) => s,
            None => out_of_range(cpu, N),
        }
    }

    /// `cpu`'s slot, or `None` when out of range.
    #[inline]
    pub fn try_get(&self, cpu: CpuId) -> Option<&T> {
        self.slots.get(cpu.index()).map(|s| &**s)
    }

    /// Every slot with its CPU.
    pub fn iter(&self) -> impl Iterator<Item = (CpuId, &T)> {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| (CpuId::new(i), &**s))
    }
}

impl<T: Default, const N: usize> Default for PerCpu<T, N> {
    fn default() -> Self {
        Self::from_fn(|_| T::default())
    }
}

/// Builds a `[CachePadded<$init>; $n]` array: an inline-`const` repeat outside
/// loom (usable in `const fn`), `array::from_fn` under loom.
#[allow(unused_macros)] // used by the per-CPU schemes
macro_rules! padded_array {
    ($n:expr, $init:expr) => {{
        #[cfg(not(loom))]
        {
            [const { crossbeam_utils::CachePadded::new($init) }; $n]
        }
        #[cfg(loom)]
        {
            core::array::from_fn(|_| crossbeam_utils::CachePadded::new($init))
        }
    }};
}
#[allow(unused_imports)]
pub(crate) use padded_array;

#[cfg(all(test, feature = "std", not(any(loom, lazymm_shuttle))))]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn set_ops_and_iteration() {
        let mut s: CpuSet = CpuSet::new();
        assert!(s.insert(CpuId::new(0)));
        assert!(s.insert(CpuId::new(63)));
        assert!(s.insert(CpuId::new(64)));
        assert!(s.insert(CpuId::new(1023)));
        assert!(!s.insert(CpuId::new(64)));
        assert_eq!(s.len(), 4);
        let v: Vec<usize> = s.iter().map(|c| c.index()).collect();
        assert_eq!(v, [0, 63, 64, 1023]);
        assert!(s.remove(CpuId::new(63)));
        assert!(!s.contains(CpuId::new(63)));
        assert_eq!(CpuSet::<16>::CAPACITY, 1024);
    }

    #[test]
    #[should_panic(expected = "CPU id 1024 out of range")]
    fn set_out_of_range_panics() {
        let mut s: CpuSet = CpuSet::new();
        s.insert(CpuId::new(1024));
    }

    #[test]
    fn atomic_set_snapshot() {
        let s: AtomicCpuSet<2> = AtomicCpuSet::new();
        assert!(s.insert(CpuId::new(3), Ordering::Relaxed));
        assert!(s.insert(CpuId::new(100), Ordering::Relaxed));
        assert!(!s.insert(CpuId::new(3), Ordering::Relaxed));
        assert!(s.contains(CpuId::new(100), Ordering::Relaxed));
        // Only the first word is read for 64 CPUs.
        assert_eq!(s.snapshot(64, Ordering::Relaxed).len(), 1);
        assert_eq!(s.snapshot(128, Ordering::Relaxed).len(), 2);
        assert!(s.remove(CpuId::new(3), Ordering::Relaxed));
        assert!(!s.remove(CpuId::new(3), Ordering::Relaxed));
    }

    /// CPU counts at the word edges, ≡ 1 (mod 64) among them: a word count
    /// rounded down loses the last CPU of 1, 65 and 129.
    #[test]
    fn counts_at_word_edges() {
        let per_cpu: PerCpu<u16, 129> = PerCpu::from_fn(|c| c.index() as u16);
        for n in [1usize, 63, 64, 65, 127, 128, 129] {
            let atomic: AtomicCpuSet<3> = AtomicCpuSet::new();
            for c in 0..n {
                assert!(atomic.insert(CpuId::new(c), Ordering::Relaxed));
            }
            let snap = atomic.snapshot(n, Ordering::Relaxed);
            assert_eq!(snap.len(), n, "snapshot of {n} CPUs");
            assert!(snap.contains(CpuId::new(n - 1)), "{n} CPUs: the last one");
            let plain: CpuSet<3> = (0..n).map(CpuId::new).collect();
            assert_eq!(plain, snap, "{n} CPUs");
            assert_eq!(plain.iter().last(), Some(CpuId::new(n - 1)), "{n} CPUs");
            assert_eq!(*per_cpu.get(CpuId::new(n - 1)), (n - 1) as u16);
        }
    }

    #[test]
    fn per_cpu_is_padded_and_checked() {
        let p: PerCpu<u8, 4> = PerCpu::from_fn(|c| c.index() as u8);
        assert_eq!(*p.get(CpuId::new(2)), 2);
        assert!(p.try_get(CpuId::new(4)).is_none());
        let a = p.get(CpuId::new(0)) as *const u8 as usize;
        let b = p.get(CpuId::new(1)) as *const u8 as usize;
        assert!(b - a >= 64, "slots share a cache line");
    }

    #[test]
    #[should_panic(expected = "CPU id 4 out of range: this table holds 4 CPUs")]
    fn per_cpu_out_of_range_panics() {
        let p: PerCpu<u8, 4> = PerCpu::default();
        p.get(CpuId::new(4));
    }
}
