//! Litmus calibration of the checker: the shapes the protocols rest on.
//!
//! # Purpose
//!
//! Every protocol in the crate is argued by reducing it to a handful of
//! litmus shapes (store buffering, message passing, use-before-free) and is
//! written against [`lazymm::check::sync`]. This file runs those shapes, through the
//! same atomics layer, under loom and checks that loom gives each one the
//! verdict the Linux kernel memory model (LKMM, `tools/memory-model`, herd7)
//! gives it. It catches
//!
//! * a wrong mapping in `sync.rs` (for example `smp_mb()` quietly becoming a
//!   compiler fence, an `AcqRel` fence or a SeqCst *access* under loom), which
//!   would turn every "the protocol passes" result into a vacuous one, and
//! * a checker regression (a loom upgrade that stops exploring weak outcomes,
//!   or starts forbidding ones C11 and LKMM allow).
//!
//! # How verdicts are asserted
//!
//! Each test runs a tiny model (two spawned threads, `main` joins them) with
//! a preemption bound of 3, records every execution's outcome in a std
//! `HashSet` shared with the model closure (std types, since the set outlives
//! the executions), and asserts on the whole set after `loom::model` returns:
//!
//! * **allowed** (herd7 "Sometimes"): the weak outcome is in the set, i.e.
//!   loom reaches it in at least one execution;
//! * **forbidden** (herd7 "Never"): the weak outcome is never in the set.
//!
//! Every test also asserts the full set, so a checker that stops exploring
//! the sequentially consistent outcomes fails too. The use-before-free pair
//! is asserted through loom's `UnsafeCell` causality check instead.
//!
//! # Tests
//!
//! | test | herd7 shape | LKMM | loom must |
//! |---|---|---|---|
//! | [`sb_relaxed_allowed`] | `SB+poonceonces` | Sometimes | observe (0,0) |
//! | [`sb_fences_forbidden`] | `SB+fencembonceonces` (in-tree) | Never | not observe (0,0) |
//! | [`sb_one_fence_allowed`] | `SB+fencembonceonce+poonceonce` (herd naming; not in-tree) | Sometimes | observe (0,0) |
//! | [`sb_seqcst_accesses_loom_limitation`] | — (C11: forbidden) | no SeqCst accesses | observe (0,0): checker-limitation pin |
//! | [`mp_release_acquire_forbidden`] | `MP+pooncerelease+poacquireonce` | Never | not observe (1,0) |
//! | [`mp_relaxed_flag_allowed`] | `MP+poonceonce+poacquireonce` | Sometimes | observe (1,0) |
//! | [`use_before_free_ordered`] | reclaim half of `RCU+sync+free`; `LB+poacquireonce+pooncerelease` | Never | find no causality violation |
//! | [`use_before_free_relaxed_done_races`] | same, done flag `WRITE_ONCE` | data race | panic "Causality violation" |
//! | [`sb_rmw_not_a_fence_allowed`] | SB, store side an AcqRel RMW (kernel `xchg_{acquire,release,relaxed}`) | Sometimes | observe (0,0) |
//! | [`sb_rmw_plus_mb_forbidden`] | SB, RMW + `smp_mb()` (crate's `xchg` mapping) | Never | not observe (0,0) |
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom litmus`.

use lazymm::check::sync::thread::{spawn, Arc};
use lazymm::check::sync::{fence, smp_mb, AtomicUsize, Ordering, UnsafeCell};
use std::collections::HashSet;
use std::time::Instant;
use Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};

/// The outcomes `(r0, r1)` seen across all executions of one model.
type Outcomes = HashSet<(usize, usize)>;

/// Every outcome of two binary reads.
const ALL: [(usize, usize); 4] = [(0, 0), (0, 1), (1, 0), (1, 1)];

/// Runs `body` under loom (preemption bound 3) and returns the set of
/// outcomes it produced.
fn explore(name: &str, body: fn() -> (usize, usize)) -> Outcomes {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Outcomes::new()));
    let execs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut b = loom::model::Builder::new();
    // Fixed on purpose (not `LOOM_MAX_PREEMPTIONS`): the calibration must
    // not change with the deep-run knob.
    b.preemption_bound = Some(3);
    let (s, e) = (seen.clone(), execs.clone());
    let start = Instant::now();
    b.check(move || {
        e.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let outcome = body();
        s.lock().unwrap().insert(outcome);
    });
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let mut sorted: Vec<_> = seen.iter().copied().collect();
    sorted.sort_unstable();
    eprintln!(
        "loom litmus/{name}: {} executions, outcomes {sorted:?}, {:.2?}",
        execs.load(std::sync::atomic::Ordering::Relaxed),
        start.elapsed()
    );
    seen
}

/// `ALL` without `weak`.
fn all_but(weak: (usize, usize)) -> Outcomes {
    ALL.into_iter().filter(|&o| o != weak).collect()
}

/// Asserts an "allowed" verdict: `weak` observed, and every other outcome too.
fn assert_allowed(seen: &Outcomes, weak: (usize, usize), expected: &[(usize, usize)]) {
    assert!(
        seen.contains(&weak),
        "weak outcome {weak:?} is allowed but loom never observed it: {seen:?}"
    );
    assert_eq!(*seen, expected.iter().copied().collect::<Outcomes>());
}

/// Asserts a "forbidden" verdict: `weak` never observed, every other outcome
/// in `expected` observed.
fn assert_forbidden(seen: &Outcomes, weak: (usize, usize), expected: &Outcomes) {
    assert!(
        !seen.contains(&weak),
        "weak outcome {weak:?} is forbidden but loom observed it: {seen:?}"
    );
    assert_eq!(seen, expected);
}

/// One side of a store-buffering test: writes `mine`, reads `other`.
type SbSide = fn(mine: &AtomicUsize, other: &AtomicUsize) -> usize;

/// Store buffering: P0 runs `p0(x, y)`, P1 runs `p1(y, x)`; the outcome is
/// `(P0's read of y, P1's read of x)`.
fn sb(p0: SbSide, p1: SbSide) -> (usize, usize) {
    let x = Arc::new(AtomicUsize::new(0));
    let y = Arc::new(AtomicUsize::new(0));
    let (x0, y0) = (x.clone(), y.clone());
    let t0 = spawn(move || p0(&x0, &y0));
    let t1 = spawn(move || p1(&y, &x));
    (t0.join().unwrap(), t1.join().unwrap())
}

/// `WRITE_ONCE(*mine, 1); r = READ_ONCE(*other);`
fn sb_po(mine: &AtomicUsize, other: &AtomicUsize) -> usize {
    mine.store(1, Relaxed);
    other.load(Relaxed)
}

/// `WRITE_ONCE(*mine, 1); smp_mb(); r = READ_ONCE(*other);`
fn sb_mb(mine: &AtomicUsize, other: &AtomicUsize) -> usize {
    mine.store(1, Relaxed);
    // smp_mb(): pairs with the other side's smp_mb(); of the two SeqCst
    // fences, the later one's read must see the earlier one's store.
    smp_mb();
    other.load(Relaxed)
}

/// `SB+poonceonces`: store buffering with `WRITE_ONCE`/`READ_ONCE` and no
/// barrier. LKMM: **Sometimes** — (0,0) is allowed.
///
/// The negative control for every SB handshake in the crate: without a full
/// barrier on each side a CPU may miss the other's store, so loom must be
/// able to reach (0,0) here or the forbidden verdicts below prove nothing.
#[test]
fn sb_relaxed_allowed() {
    let seen = explore("sb_relaxed", || sb(sb_po, sb_po));
    assert_allowed(&seen, (0, 0), &ALL);
}

/// `SB+fencembonceonces`: store buffering with `smp_mb()` (here
/// `fence(SeqCst)`) between the store and the load on both sides.
/// LKMM: **Never** — (0,0) is forbidden.
///
/// The skeleton of hazard-pointer publish/scan (`hazard`: the reader writes
/// its slot, `smp_mb()`, re-validates the source; the reclaimer unpublishes,
/// `smp_mb()`, scans the slots), lazy-TLB `tlb_gen` vs `loaded_mm` /
/// `mm_cpumask`, and page-table-walker sync: one side writes its slot then
/// reads the other's state, the other writes the state then reads the slots.
/// If this fails, `smp_mb()` is mis-mapped.
#[test]
fn sb_fences_forbidden() {
    let seen = explore("sb_fences", || sb(sb_mb, sb_mb));
    assert_forbidden(&seen, (0, 0), &all_but((0, 0)));
}

/// `SB+fencembonceonce+poonceonce`: store buffering with `smp_mb()` on one
/// side only. LKMM: **Sometimes** — (0,0) is allowed.
///
/// The "missing barrier on either side" bug class: a full barrier orders
/// nothing unless the other side has one too. loom must report (0,0).
#[test]
fn sb_one_fence_allowed() {
    let seen = explore("sb_one_fence", || sb(sb_mb, sb_po));
    assert_allowed(&seen, (0, 0), &ALL);
}

/// **Checker-limitation pin, not an LKMM verdict.** Store buffering where
/// the "barrier" is SeqCst accesses (`store(SeqCst)` then `load(SeqCst)`)
/// instead of `fence(SeqCst)`.
///
/// C11 forbids (0,0) here (the SeqCst total order), but loom 0.7 treats
/// SeqCst loads and stores as AcqRel (loom issue #180), so it *does* reach
/// (0,0): a false alarm. LKMM has no SeqCst accesses at all. This is why the
/// crate writes every full barrier as `fence(SeqCst)` ([`smp_mb()`]) and
/// never relies on SeqCst accesses. If loom starts modelling SeqCst accesses
/// this test fails: then update it (assert (0,0) forbidden) and the note in
/// `sync.rs`.
#[test]
fn sb_seqcst_accesses_loom_limitation() {
    fn side(mine: &AtomicUsize, other: &AtomicUsize) -> usize {
        // SeqCst store: meant to pair with the other side's SeqCst load
        // (loom models it as Release).
        mine.store(1, SeqCst);
        // SeqCst load: meant to pair with the other side's SeqCst store
        // (loom models it as Acquire).
        other.load(SeqCst)
    }
    let seen = explore("sb_seqcst_accesses", || sb(side, side));
    assert!(
        seen.contains(&(0, 0)),
        "loom no longer reaches (0,0) with SeqCst accesses: it now models \
         them; update this pin and sync.rs ({seen:?})"
    );
    assert_eq!(seen, ALL.into_iter().collect());
}

/// Message passing: P0 runs `writer(data, flag)`, P1 runs
/// `reader(data, flag)` which returns `(flag, data)` as read.
fn mp(
    writer: fn(data: &AtomicUsize, flag: &AtomicUsize),
    reader: fn(data: &AtomicUsize, flag: &AtomicUsize) -> (usize, usize),
) -> (usize, usize) {
    let data = Arc::new(AtomicUsize::new(0));
    let flag = Arc::new(AtomicUsize::new(0));
    let (d0, f0) = (data.clone(), flag.clone());
    let t0 = spawn(move || writer(&d0, &f0));
    let t1 = spawn(move || reader(&data, &flag));
    t0.join().unwrap();
    t1.join().unwrap()
}

/// `r0 = smp_load_acquire(flag); r1 = READ_ONCE(*data);`
fn mp_reader_acquire(data: &AtomicUsize, flag: &AtomicUsize) -> (usize, usize) {
    // Acquire: pairs with the writer's flag store (release in the correct
    // test); if it reads 1, the data store is visible.
    let f = flag.load(Acquire);
    (f, data.load(Relaxed))
}

/// `MP+pooncerelease+poacquireonce`: `WRITE_ONCE(data); smp_store_release(flag)`
/// vs `smp_load_acquire(flag); READ_ONCE(data)`. LKMM: **Never** — the
/// reader seeing flag=1 but data=0 is forbidden.
///
/// The publication half of every handoff in the crate: mmput's release
/// decrement vs the final dropper's acquire, `switch_mm` clearing
/// `mm_cpumask` (release) vs the shootdown's acquire snapshot, the IPI
/// request/acknowledge words, and `tagged`'s release xchg vs the fixup's
/// acquire.
#[test]
fn mp_release_acquire_forbidden() {
    fn writer(data: &AtomicUsize, flag: &AtomicUsize) {
        data.store(1, Relaxed);
        // Release: pairs with the reader's acquire load of flag.
        flag.store(1, Release);
    }
    let seen = explore("mp_release_acquire", || mp(writer, mp_reader_acquire));
    assert_forbidden(&seen, (1, 0), &all_but((1, 0)));
}

/// `MP+poonceonce+poacquireonce`: as above but the flag store is a plain
/// `WRITE_ONCE`. LKMM: **Sometimes** — (flag=1, data=0) is allowed (the two
/// writes are unordered; same verdict as in-tree `MP+poonceonces`).
///
/// The "release dropped from the publishing side" bug class (e.g. the
/// `tagged` RFC's `xchg_relaxed` / `UnlazyXchgNoRelease`): an acquire reader
/// alone orders nothing.
#[test]
fn mp_relaxed_flag_allowed() {
    fn writer(data: &AtomicUsize, flag: &AtomicUsize) {
        data.store(1, Relaxed);
        flag.store(1, Relaxed);
    }
    let seen = explore("mp_relaxed_flag", || mp(writer, mp_reader_acquire));
    assert_allowed(&seen, (1, 0), &ALL);
}

/// The pointer / grace-period words and the object they guard.
struct Rcu {
    /// The published pointer (0 = NULL, 1 = the object).
    ptr: AtomicUsize,
    /// The reader's "I am done with the object" word (a one-reader grace
    /// period).
    done: AtomicUsize,
    /// The object's body; the free is modelled as a write to it.
    payload: UnsafeCell<usize>,
}

// SAFETY: `payload` is only touched through loom's `UnsafeCell`, whose
// causality check is exactly what these tests exercise.
unsafe impl Sync for Rcu {}

/// The object's contents while live.
const LIVE: usize = 42;
/// What the free writes over it.
const POISON: usize = 0xdead;

/// Use-before-free. P0 (updater): initialise the object, publish it
/// (release), unpublish it, and — if the grace period has elapsed (the
/// reader's `done` word read with acquire) — free it (write the payload).
/// P1 (reader): read the pointer (acquire), read the payload if non-NULL,
/// then set `done` with `done_ord`. Outcome: `(reader saw the object,
/// updater freed it)`.
fn use_before_free(done_ord: Ordering) -> (usize, usize) {
    let rcu = Arc::new(Rcu {
        ptr: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        payload: UnsafeCell::new(0),
    });
    let r = rcu.clone();
    let updater = spawn(move || {
        // SAFETY: not yet published; loom checks there is no reader.
        r.payload.with_mut(|p| unsafe { *p = LIVE });
        // Release (rcu_assign_pointer): pairs with the reader's acquire load
        // of ptr, so a reader that sees 1 sees the initialised payload.
        r.ptr.store(1, Release);
        // RCU_INIT_POINTER(ptr, NULL): unpublishing needs no ordering.
        r.ptr.store(0, Relaxed);
        // Acquire (the grace period's end): pairs with the reader's release
        // store of done, so the reader's payload read happens before the free.
        if r.done.load(Acquire) == 1 {
            // SAFETY: the free; loom checks the reader's use happened before.
            r.payload.with_mut(|p| unsafe { *p = POISON });
            1
        } else {
            0
        }
    });
    let reader = spawn(move || {
        // Acquire (rcu_dereference): pairs with the updater's release publish.
        let saw = rcu.ptr.load(Acquire);
        if saw == 1 {
            // SAFETY: loom checks this read against the init and the free.
            let v = rcu.payload.with(|p| unsafe { *p });
            assert_eq!(v, LIVE, "reader saw a freed object");
        }
        // `done_ord` (Release in the correct test): pairs with the updater's
        // acquire load of done, ordering the payload read before the free.
        rcu.done.store(1, done_ord);
        saw
    });
    let freed = updater.join().unwrap();
    (reader.join().unwrap(), freed)
}

/// The reclaim half of `RCU+sync+free` ("use must happen-before free"): the
/// grace period is a release `done` store by the reader paired with an
/// acquire load by the updater before it frees. With the payload accesses
/// this is herd7's `LB+poacquireonce+pooncerelease` (in-tree): the reader's
/// use reading the free's write is **Never**. loom must find no causality
/// violation, and all four (saw, freed) outcomes must occur.
///
/// Relied on by every scheme's final drop: each lazy user's last use of the
/// mm must happen before the free (refcount's release `mmdrop` vs the final
/// dropper's acquire, `tagged`'s release clear of `lazy_mm` vs the fixup's
/// acquire, `shootdown`'s IPI acknowledgement).
#[test]
fn use_before_free_ordered() {
    let seen = explore("use_before_free_ordered", || use_before_free(Release));
    assert_eq!(seen, ALL.into_iter().collect());
}

/// As [`use_before_free_ordered`] with the reader's `done` store a plain
/// `WRITE_ONCE`. LKMM: the free is no longer ordered after the reader's
/// plain payload read — a data race (herd7 flags it; the reader could see
/// the poisoned object). loom must report it as a causality violation (the
/// `refcount` `DropBeforeLastUse` / `tagged` `UnlazyXchgNoRelease` bug class).
#[test]
#[should_panic(expected = "Causality violation")]
fn use_before_free_relaxed_done_races() {
    explore("use_before_free_relaxed_done", || use_before_free(Relaxed));
}

/// SB where the store side is an AcqRel RMW (`swap` on P0, `fetch_add` on
/// P1) followed by a plain `READ_ONCE` of the other location. C11:
/// **allowed** — an RMW's acquire/release orders it only with accesses that
/// synchronise through *its* location; it is no fence for the later load of
/// another location. LKMM gives the same verdict for the `_acquire` /
/// `_release` / `_relaxed` RMW variants (Sometimes); only the unsuffixed,
/// fully ordered `xchg()` / `atomic_add_return()` forbid (0,0).
///
/// This is why the crate writes `smp_mb()` next to every RMW the kernel
/// treats as fully ordered (see [`sb_rmw_plus_mb_forbidden`]).
#[test]
fn sb_rmw_not_a_fence_allowed() {
    fn p0(mine: &AtomicUsize, other: &AtomicUsize) -> usize {
        // AcqRel swap: pairs with nothing on `other`; orders only accesses
        // that synchronise through `mine`.
        mine.swap(1, AcqRel);
        other.load(Relaxed)
    }
    fn p1(mine: &AtomicUsize, other: &AtomicUsize) -> usize {
        // AcqRel fetch_add: as P0's swap, no fence for the load below.
        mine.fetch_add(1, AcqRel);
        other.load(Relaxed)
    }
    let seen = explore("sb_rmw_not_a_fence", || sb(p0, p1));
    assert_allowed(&seen, (0, 0), &ALL);
}

/// SB with the crate's mapping of a fully ordered kernel RMW: the RMW
/// followed by `smp_mb()` (`fence(SeqCst)`, as `smp_mb__after_atomic()` is
/// under the checkers) on both sides. LKMM (`xchg()` /
/// `atomic_add_return()`, fully ordered): **Never** — (0,0) forbidden.
#[test]
fn sb_rmw_plus_mb_forbidden() {
    fn p0(mine: &AtomicUsize, other: &AtomicUsize) -> usize {
        // AcqRel swap: the RMW itself; the fence below supplies the full
        // ordering.
        mine.swap(1, AcqRel);
        // smp_mb() after the RMW: pairs with P1's fence (SB).
        fence(SeqCst);
        other.load(Relaxed)
    }
    fn p1(mine: &AtomicUsize, other: &AtomicUsize) -> usize {
        // AcqRel fetch_add: as P0's swap.
        mine.fetch_add(1, AcqRel);
        // smp_mb() after the RMW: pairs with P0's fence (SB).
        smp_mb();
        other.load(Relaxed)
    }
    let seen = explore("sb_rmw_plus_mb", || sb(p0, p1));
    assert_forbidden(&seen, (0, 0), &all_but((0, 0)));
}
