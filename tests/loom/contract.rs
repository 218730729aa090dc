//! The kernel's side of the contract (`lazymm::lazy::Kernel`), each
//! ordering weakened in the machine that implements it
//! (`check::model::MachineBug`): the schemes rely on `mmdrop`'s
//! acquire/release (K1, K2), the cpumask's acquire snapshot and release
//! clear (K3, K4) and the shoot-lazy IPI's acknowledgement (K5). Each weakening of K1–K4
//! is a use-after-free that loom's causality check reports; K5's is a pin.

use crate::common::*;
use lazymm::check::model::MachineBug;
use lazymm::lazy::loaded::LoadedMm;
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
}

/// The pin: a relaxed acknowledgement of the shoot-lazy IPI passes the
/// lazy machine, for shootdown and for `loaded_mm` (which IPIs without
/// reading the cpumask again). The machine's wait loop orders what the
/// handler did some other way: the sender sleeps on its doorbell (a mutex
/// the handler takes after acknowledging), and a sender that reads the
/// acknowledgement without sleeping was found by no schedule in the
/// bound. The LKMM twin `shootdown-ipi-ack+relaxed-ack` refutes the
/// weakening on the bare pattern (VERIFICATION.md).
#[test]
fn relaxed_ipi_ack_passes_the_machine() {
    check_machine_bug(
        "contract/relaxed_ipi_ack/shootdown",
        DEFAULT_BOUND,
        Shootdown::new,
        down_while_lazy,
        MachineBug::RelaxedIpiAck,
    );
    check_machine_bug(
        "contract/relaxed_ipi_ack/loaded_mm",
        DEFAULT_BOUND,
        LoadedMm::<2>::new,
        down_while_lazy,
        MachineBug::RelaxedIpiAck,
    );
}
