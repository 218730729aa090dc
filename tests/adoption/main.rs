//! Adoption: an OS-shaped crate (`examples/adoption/os.rs`, shared with the
//! `adoption` example) that uses lazymm only through its
//! public API, with every scheme plugged in by a type parameter and the
//! kernel kept in a `static` (`lazymm::lazymm_static!`) — the pattern the
//! README gives kernel developers, compiled and run in every build:
//!
//! * plain `cargo test`: 4 CPUs on real threads, 64 processes, every scheme,
//!   `mm_struct`s poisoned on free and checked on every use, a leak check;
//! * `RUSTFLAGS="--cfg loom"`: the same kernel code, 2 CPUs and 1 process,
//!   explored by loom (the static is re-created for every execution);
//! * `RUSTFLAGS="--cfg lazymm_shuttle"`: 4 CPUs, 4 processes, PCT.
//!
//! The kernel's own state uses `lazymm::check::sync`'s atomics and
//! `spin_loop`, so the checkers see its wiring (mailboxes, waits, the
//! cpumask) together with the scheme.

#[path = "../../examples/adoption/os.rs"]
mod os;

use lazymm::check::sync::thread::{spawn, Arc};
use lazymm::check::sync::AtomicUsize;
use lazymm::cpu::CpuId;
use lazymm::lazy::LazyMm;
use os::{Mm, Os};

#[cfg(not(any(loom, lazymm_shuttle)))]
mod size {
    pub const CPUS: usize = 4;
    pub const MMS: usize = 64;
}
#[cfg(loom)]
mod size {
    pub const CPUS: usize = 2;
    pub const MMS: usize = 1;
}
#[cfg(all(lazymm_shuttle, not(loom)))]
mod size {
    pub const CPUS: usize = 4;
    pub const MMS: usize = 4;
}
use size::{CPUS, MMS};

type Kernel<S> = Os<S, CPUS, MMS>;

/// Every CPU has a task of every process: it runs it, lends it to a
/// kernel thread and takes it back (a lazy round trip), exits it, and hands
/// the dead task's mm to a kernel thread (kernel -> kernel) before moving
/// on; the next process's task ends that lazy use. CPUs start at different
/// processes so that exits meet lazy CPUs.
fn run_cpu<S: LazyMm>(os: &Kernel<S>, cpu: CpuId, down: &AtomicUsize) {
    for i in 0..MMS {
        // `i + cpu` wrapped to the table (the loom build has one process).
        let p = cpu.index() + i;
        let mm = Some(Mm(if p >= MMS { p - MMS } else { p }));
        os.switch_to(cpu, mm);
        os.switch_to(cpu, None);
        os.switch_to(cpu, mm);
        os.exit(cpu);
        os.switch_to(cpu, None);
    }
    os.cpu_down(cpu, down);
}

/// A CPU's thread. In a plain build a CPU that panics (a check fired)
/// counts as down for everyone, so that the others leave their idle loop
/// and the test reports the panic instead of hanging; under the checkers
/// the checker ends the execution itself.
fn cpu_thread<S: LazyMm>(os: &Kernel<S>, cpu: CpuId, down: &AtomicUsize) {
    #[cfg(not(any(loom, lazymm_shuttle)))]
    {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_cpu(os, cpu, down)));
        if let Err(e) = r {
            down.fetch_add(CPUS, lazymm::check::sync::Ordering::Release);
            std::panic::resume_unwind(e);
        }
    }
    #[cfg(any(loom, lazymm_shuttle))]
    run_cpu(os, cpu, down);
}

/// One boot of the kernel in `os`: all CPUs run, go down, and the teardown
/// checks that every mm was freed exactly once (a second free or a use of
/// a freed one already panicked on the poison).
fn boot_and_run<S: LazyMm + Send + 'static>(os: &'static Kernel<S>) {
    os.boot(&[CPUS; MMS]);
    let down = Arc::new(AtomicUsize::new(0));
    let cpus: Vec<_> = (0..CPUS)
        .map(|c| {
            let down = Arc::clone(&down);
            spawn(move || cpu_thread(os, CpuId::new(c), &down))
        })
        .collect();
    for h in cpus {
        if let Err(e) = h.join() {
            std::panic::resume_unwind(e); // the CPU's own message
        }
    }
    os.finish();
}

/// One test per scheme: a `static` kernel of that scheme, run in the build
/// at hand.
macro_rules! adopt {
    ($test:ident, $scheme:ty, $new:expr) => {
        #[test]
        fn $test() {
            lazymm::lazymm_static! {
                static OS: Kernel<$scheme> = Os::new($new);
            }
            run(|| boot_and_run::<$scheme>(&OS));
        }
    };
}

adopt!(
    refcount,
    lazymm::lazy::refcount::Refcount,
    lazymm::lazy::refcount::Refcount::new()
);
adopt!(
    shootdown,
    lazymm::lazy::shootdown::Shootdown,
    lazymm::lazy::shootdown::Shootdown::new()
);
adopt!(
    tagged,
    lazymm::lazy::tagged::Tagged<CPUS>,
    lazymm::lazy::tagged::Tagged::new()
);
adopt!(
    cached,
    lazymm::lazy::cached::Cached<CPUS>,
    lazymm::lazy::cached::Cached::new()
);
adopt!(
    hazard,
    lazymm::lazy::hazard::HazardLazy<CPUS>,
    lazymm::lazy::hazard::HazardLazy::new()
);
adopt!(
    hazard_nofence,
    lazymm::lazy::hazard::HazardLazyNoFence<CPUS>,
    lazymm::lazy::hazard::HazardLazyNoFence::new()
);
adopt!(
    loaded_mm,
    lazymm::lazy::loaded::LoadedMm<CPUS>,
    lazymm::lazy::loaded::LoadedMm::new()
);
adopt!(
    rcu_mm,
    lazymm::lazy::rcu_mm::RcuMm<CPUS>,
    lazymm::lazy::rcu_mm::RcuMm::new()
);

/// The boot under the build's checker (`harness::explore`): once on real
/// threads in a plain build, every interleaving at bound 2 under loom,
/// 200 PCT schedules under shuttle.
fn run(f: impl Fn() + Send + Sync + 'static) {
    let executions = lazymm::check::model::harness::explore(2, 200, f);
    if cfg!(loom) {
        eprintln!("loom adoption: {executions} executions");
        assert!(executions > 1, "loom explored one interleaving only");
    }
}

#[path = "../external_schemes/mod.rs"]
mod external;

/// The kernel's own checks can fail: a scheme whose lazy CPUs take no
/// reference frees an mm its exiting CPU still has loaded.
#[test]
#[should_panic(expected = "use-after-free of MmIndex(")]
fn a_wrong_scheme_is_caught_by_the_kernel() {
    lazymm::lazymm_static! {
        static OS: Kernel<external::NoGrab> = Os::new(external::NoGrab);
    }
    run(|| boot_and_run::<external::NoGrab>(&OS));
}
