//! Misuse without `Checked`: the same seven misuses as `tests/misuse.rs`,
//! on each scheme alone (a debug build, as a kernel is brought up), and
//! which of them the scheme itself stops with a panic. The policy
//! (`lazy::checked`'s docs): a scheme checks only what its own state sees
//! for free; `Checked` is the misuse detector, the same panic for every
//! scheme. This test keeps the docs' "scheme alone" column true: it fails
//! when a scheme starts or stops catching a misuse.
#![cfg(all(
    feature = "epoch",
    feature = "haphazard",
    not(any(loom, lazymm_shuttle))
))]

use lazymm::check::model::{Machine, MmId, Op, Scenario};
use lazymm::cpu::CpuId;
use lazymm::lazy::cached::Cached;
use lazymm::lazy::epoch_mm::EpochMm;
use lazymm::lazy::haphazard::HaphazardLazy;
use lazymm::lazy::hazard::{HazardLazy, HazardLazyNoFence};
use lazymm::lazy::loaded::LoadedMm;
use lazymm::lazy::rcu_mm::RcuMm;
use lazymm::lazy::refcount::Refcount;
use lazymm::lazy::shootdown::Shootdown;
use lazymm::lazy::tagged::Tagged;
use lazymm::lazy::LazyMm;

/// The misuses, in the order of the docs' table.
const MISUSES: [&str; 7] = [
    "enter twice",
    "leave twice",
    "leave with the wrong mm",
    "CPU id out of range",
    "free while lazy",
    "reload after switching away",
    "cpu_dead while lazy",
];

fn machine<S: LazyMm + Send + Sync + 'static>(s: S) -> Machine<S> {
    Machine::new(
        s,
        Scenario::new(
            2,
            vec![
                vec![Op::User(MmId::new(0)), Op::Exit],
                vec![Op::User(MmId::new(1)), Op::Exit],
            ],
        ),
    )
    .with_inline_ipis()
}

/// What a misuse led to on a bare scheme.
enum Outcome {
    /// A panic, with its message.
    Panic(String),
    /// Still waiting after [`HANG`]: the scheme's final drop waits for a
    /// CPU that will never answer (the thread is left spinning).
    Hang,
    /// Nothing: the misuse went through.
    Silent,
}

/// How long an attempt may take before it counts as a hang (each one
/// takes microseconds when it ends).
const HANG: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs misuse `i` on a fresh `make()` on a thread of its own.
fn attempt<S: LazyMm + Send + Sync + 'static>(make: fn() -> S, i: usize) -> Outcome {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(run(make, i));
    });
    match rx.recv_timeout(HANG) {
        Ok(Some(msg)) => Outcome::Panic(msg),
        Ok(None) => Outcome::Silent,
        Err(_) => Outcome::Hang,
    }
}

/// Misuse `i`; the panic message, if any.
fn run<S: LazyMm + Send + Sync + 'static>(make: fn() -> S, i: usize) -> Option<String> {
    let r = std::panic::catch_unwind(move || {
        let m = machine(make());
        let s = m.scheme();
        let (cpu, other) = (CpuId::new(0), CpuId::new(1));
        let (a, b) = (MmId::new(0), MmId::new(1));
        match i {
            0 => {
                s.mmgrab_lazy_tlb(&m, cpu, a);
                s.mmgrab_lazy_tlb(&m, cpu, a);
            }
            1 => {
                s.mmgrab_lazy_tlb(&m, cpu, a);
                s.mmdrop_lazy_tlb(&m, cpu, a, Some(a));
                s.mmdrop_lazy_tlb(&m, cpu, a, Some(a));
            }
            2 => {
                s.mmgrab_lazy_tlb(&m, cpu, a);
                s.mmdrop_lazy_tlb(&m, cpu, b, None);
            }
            3 => s.mmgrab_lazy_tlb(&m, CpuId::new(2), a),
            4 => {
                s.mmgrab_lazy_tlb(&m, cpu, a);
                s.final_drop(&m, other, a);
            }
            5 => {
                s.mmgrab_lazy_tlb(&m, cpu, a);
                s.switching_mm(&m, cpu, Some(a), Some(b));
                s.switched_mm(&m, cpu, Some(a), Some(b));
                s.switching_mm(&m, cpu, Some(b), Some(a));
                s.switched_mm(&m, cpu, Some(b), Some(a));
            }
            _ => {
                s.mmgrab_lazy_tlb(&m, cpu, a);
                s.cpu_dead(&m, cpu);
            }
        }
        // The machine is dropped mid-run: its end checks are not the point.
        std::mem::forget(m);
    });
    r.err().map(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

/// What each misuse leads to on the scheme alone, as a row: '✓' the
/// scheme panics with a message of the crate ("lazymm: ...", or its
/// per-CPU table's "CPU id N out of range"); 'b' a Rust bounds check (an
/// index panic, no message of ours); 'x' the scheme goes on and the
/// machine's oracle then sees the damage (a use-after-free, a negative
/// count: silent corruption in a kernel); 'h' it hangs (a final drop
/// waiting for a CPU that will never answer); '·' nothing happens at all
/// (the misuse is harmless to that scheme, or the kernel's own check — the
/// machine's "this machine has N CPUs" — stopped it first); 'o' any other
/// panic (printed).
fn row<S: LazyMm + Send + Sync + 'static>(make: fn() -> S) -> String {
    const ORACLE: [&str; 4] = ["use-after-free", "went negative", "double free", "leak"];
    (0..MISUSES.len())
        .map(|i| match attempt(make, i) {
            Outcome::Panic(msg)
                if msg.contains("lazymm:") || msg.contains("out of range: this table holds") =>
            {
                '✓'
            }
            Outcome::Panic(msg) if msg.contains("out of range: this machine has") => '·',
            Outcome::Panic(msg) if ORACLE.iter().any(|w| msg.contains(w)) => 'x',
            Outcome::Panic(msg) if msg.contains("index out of bounds") => 'b',
            Outcome::Panic(msg) => {
                println!("{} {}: {msg}", S::NAME, MISUSES[i]);
                'o'
            }
            Outcome::Hang => 'h',
            Outcome::Silent => '·',
        })
        .collect()
}

#[test]
fn what_each_scheme_catches_alone() {
    // Quiet: the misuses' panics are expected.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let rows = [
        ("refcount", row(Refcount::new)),
        ("shootdown", row(Shootdown::new)),
        ("tagged", row(Tagged::<2>::new)),
        ("cached", row(Cached::<2>::new)),
        ("hazard", row(HazardLazy::<2>::new)),
        ("hazard_nofence", row(HazardLazyNoFence::<2>::new)),
        ("loaded_mm", row(LoadedMm::<2>::new)),
        ("rcu_mm", row(RcuMm::<2>::new)),
        ("haphazard", row(HaphazardLazy::<2>::new)),
        ("epoch_mm", row(EpochMm::<2>::new)),
    ];
    std::panic::set_hook(hook);
    println!("misuses: {MISUSES:?}");
    for (name, r) in &rows {
        println!("{name:<15} {r}");
    }
    // The legend is `row`'s; the docs' column (lazy::checked) is this table.
    let expected = [
        ("refcount", "·xx····"),
        ("shootdown", "·······"),
        ("tagged", "✓✓✓✓···"),
        ("cached", "···✓···"),
        ("hazard", "✓✓✓✓h··"),
        ("hazard_nofence", "···✓h··"),
        ("loaded_mm", "·······"),
        ("rcu_mm", "·······"),
        ("haphazard", "···bh··"),
        ("epoch_mm", "✓✓·b···"),
    ];
    for ((name, got), (_, want)) in rows.iter().zip(expected) {
        assert_eq!(
            got, want,
            "{name}: the docs' 'scheme alone' column is out of date"
        );
    }
}
