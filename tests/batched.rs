//! `batched::FlushBatched` against a one-bit reference ("is a batched flush
//! pending?"), sequentially, with sets arriving during a flush and enough of
//! them to overflow the 15-bit pending count (the kernel's reset to
//! `pending = 1, flushed = 0`).
#![cfg(not(any(loom, lazymm_shuttle)))]

use lazymm::tlb::batched::{FlushBatched, PENDING_LARGE, PENDING_MASK};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    /// `n` reclaims batch a flush.
    Set(u32),
    /// A `flush_tlb_batched_pending()`, during whose flush `n` reclaims on
    /// other PTLs batch more.
    Flush(u32),
}

fn step() -> impl Strategy<Value = Step> {
    let n = prop_oneof![0u32..4, 0u32..(3 * PENDING_LARGE)];
    prop_oneof![n.clone().prop_map(Step::Set), n.prop_map(Step::Flush)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 200 }))]
    #[test]
    fn pending_is_never_lost(steps in proptest::collection::vec(step(), 1..12)) {
        let b = FlushBatched::new();
        let mut pending = false;
        for s in steps {
            match s {
                Step::Set(n) => {
                    for _ in 0..n {
                        b.set_pending();
                    }
                    pending |= n > 0;
                }
                Step::Flush(n) => {
                    let mut ran = false;
                    let flushed = b.flush_pending(|| {
                        ran = true;
                        for _ in 0..n {
                            b.set_pending();
                        }
                    });
                    prop_assert_eq!(flushed, pending, "flushes exactly when one is pending");
                    prop_assert_eq!(flushed, ran);
                    if flushed {
                        // Sets during the flush stay pending; nothing else does.
                        pending = n > 0;
                    }
                }
            }
            prop_assert_eq!(b.is_pending(), pending);
        }
    }
}

#[test]
fn overflow_resets_and_stays_pending() {
    let b = FlushBatched::new();
    for _ in 0..=PENDING_LARGE {
        b.set_pending();
    }
    assert!(b.is_pending());
    assert!(b.flush_pending(|| {}));
    assert!(!b.is_pending());
    // Past PENDING_LARGE the count resets to 1 rather than running into
    // the flushed bits.
    for _ in 0..(2 * PENDING_MASK) {
        b.set_pending();
    }
    assert!(b.is_pending());
    assert!(b.flush_pending(|| {}));
    assert!(!b.is_pending());
    assert!(!b.flush_pending(|| panic!("nothing pending")));
}
