//! Cross-CPU calls over real local-APIC IPIs (`smp_call_function_many`
//! with wait): a per-CPU mailbox holds the function, the sender writes the
//! ICR (fixed delivery, [`IPI_VECTOR`]) for each target and waits until
//! every target has run the function and acknowledged.
//!
//! A CPU that waits — for acknowledgements, or for a call of its own to be
//! taken — serves its own mailbox meanwhile, so two CPUs calling each
//! other with interrupts off cannot deadlock. A mailbox goes idle →
//! pending (sender) → running (the target, from the IPI handler or while
//! polling; a compare-exchange, so never both) → idle (the acknowledgement).

use crate::cpus::{self, MAX_CPUS};
use crate::hw::{self, IPI_VECTOR};
use crate::watchdog::Wait;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering::*};

const IDLE: u8 = 0;
const PENDING: u8 = 1;
const RUNNING: u8 = 2;
/// A sender owns the mailbox and is filling it in.
const CLAIMED: u8 = 3;

struct Mailbox {
    state: AtomicU8,
    /// The function, as `fn(usize, usize, usize)` cast to a word; it is
    /// called with the target's CPU index and the two argument words.
    func: AtomicUsize,
    args: [AtomicUsize; 2],
}

#[allow(clippy::declare_interior_mutable_const)] // an array initialiser
const EMPTY: Mailbox = Mailbox {
    state: AtomicU8::new(IDLE),
    func: AtomicUsize::new(0),
    args: [AtomicUsize::new(0), AtomicUsize::new(0)],
};

/// A cross-CPU call: `f(target, a, b)`.
pub type Call = fn(usize, usize, usize);

static MAILBOX: [Mailbox; MAX_CPUS] = [EMPTY; MAX_CPUS];

/// IPIs sent so far, by every CPU.
pub static SENT: AtomicUsize = AtomicUsize::new(0);

/// Runs `cpu`'s pending call, if any (a CPU polling with interrupts off).
pub fn serve(cpu: usize) {
    let m = &MAILBOX[cpu];
    // Acquire: pairs with the sender's release store of PENDING, which
    // follows its store of the function.
    if m.state
        .compare_exchange(PENDING, RUNNING, Acquire, Relaxed)
        .is_ok()
    {
        let f = m.func.load(Relaxed);
        // SAFETY: a sender stored a `Call` here before PENDING.
        let f: Call = unsafe { core::mem::transmute::<usize, Call>(f) };
        f(cpu, m.args[0].load(Relaxed), m.args[1].load(Relaxed));
        // Release: the function's effects happen before the sender's
        // acquire load of IDLE.
        m.state.store(IDLE, Release);
    }
}

/// The IPI handler (called by the IDT stub with interrupts off).
#[no_mangle]
extern "C" fn ipi_handle() {
    serve(cpus::this_cpu());
    // SAFETY: this CPU took an interrupt from its APIC; EOI ends it.
    hw::lapic_with(|a| unsafe { a.end_of_interrupt() });
}

/// The CPU indices of a bit mask.
fn cpus(mask: u64) -> impl Iterator<Item = usize> {
    (0..MAX_CPUS).filter(move |c| mask & (1 << c) != 0)
}

/// Calls `f(target, a, b)` on every CPU of the bit mask `targets` (never
/// `me`) through an IPI each, and returns once all of them have run it.
/// Returns the IPIs sent.
pub fn call_many(me: usize, targets: u64, f: Call, a: usize, b: usize) -> usize {
    let mut sent = 0;
    for t in cpus(targets) {
        assert_ne!(t, me, "call_many: a CPU does not IPI itself");
        let m = &MAILBOX[t];
        // One call per target at a time: claim its mailbox, serving ours
        // while another sender's call is in it. Acquire: pairs with the
        // release store of IDLE that ended that call.
        let mut wait = Wait::new(me, "a target's IPI mailbox to be free");
        while m
            .state
            .compare_exchange(IDLE, CLAIMED, Acquire, Relaxed)
            .is_err()
        {
            serve(me);
            wait.spin();
        }
        m.func.store(f as usize, Relaxed);
        m.args[0].store(a, Relaxed);
        m.args[1].store(b, Relaxed);
        // Release: pairs with the target's acquire compare-exchange.
        m.state.store(PENDING, Release);
        let dest = cpus::apic_dest(t);
        // SAFETY: a fixed IPI to a CPU that has loaded the IDT (it
        // registered its APIC id after `idt::load`).
        hw::lapic_with(|a| unsafe { a.send_ipi(IPI_VECTOR, dest) });
        sent += 1;
    }
    for t in cpus(targets) {
        // Acquire: pairs with the target's release store of IDLE.
        // (A later sender's claim also reads as busy: waiting for it too
        // only delays us.)
        let mut wait = Wait::new(me, "an IPI acknowledgement (call_many)");
        while MAILBOX[t].state.load(Acquire) != IDLE {
            serve(me);
            wait.spin();
        }
    }
    SENT.fetch_add(sent, Relaxed);
    sent
}
