//! The kernel's side of the contract (`lazymm::lazy::Kernel`), each
//! ordering weakened in the machine that implements it
//! (`check::model::MachineBug`): the schemes rely on `mmdrop`'s
//! acquire/release (K1, K2), the cpumask's acquire snapshot and release
//! clear (K3, K4) and the shoot-lazy IPI's acknowledgement (K5). Each weakening
//! is a use-after-free that loom's causality check reports.

use crate::common::*;
use lazymm::check::model::MachineBug;
use lazymm::lazy::refcount::Refcount;
use lazymm::lazy::shootdown::Shootdown;

macro_rules! contract {
    ($($name:ident: $bug:ident, $scheme:expr, $scenario:ident;)*) => {$(
        #[test]
        #[should_panic(expected = "use-after-free of mm0")]
        fn $name() {
            check_machine_bug(
                concat!("contract/", stringify!($name)),
                DEFAULT_BOUND,
                $scheme,
                $scenario,
                MachineBug::$bug,
            );
        }
    )*};
}

contract! {
    bug_mmdrop_no_release: MmdropNoRelease, Refcount::new, down_while_lazy;
    bug_mmdrop_no_acquire: MmdropNoAcquire, Refcount::new, down_while_lazy;
    bug_relaxed_cpumask_snapshot: RelaxedCpumaskSnapshot, Shootdown::new, exit_lazy_vs_final_drop;
    bug_relaxed_cpumask_clear: RelaxedCpumaskClear, Shootdown::new, exit_lazy_vs_final_drop;
    // The IPI'd CPU must use the mm while lazy after the last mmput (the
    // kernel thread's step walks it): `down_while_lazy`, where the CPU
    // only idles, passes this variant.
    bug_relaxed_ipi_ack: RelaxedIpiAck, Shootdown::new, exit_lazy_vs_final_drop;
}
