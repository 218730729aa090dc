//! The adoption pattern as a program: an OS-shaped crate (`os.rs`) that
//! uses lazymm only through its public API, with its kernel kept in a
//! `static` of every scheme (`lazymm::lazymm_static!`) and no `#[cfg(loom)]`
//! of its own — so this example compiles in every build, loom's and
//! shuttle's included, and `tests/adoption/` runs the same `os.rs` under
//! loom and shuttle.
//!
//! ```text
//! cargo run --release --example adoption
//! ```
//!
//! Each scheme's kernel boots once: 4 CPUs on real threads, 64 processes,
//! every CPU running a task of every process through a lazy round trip, an
//! exit and a kernel-to-kernel hand-over; every `mm_struct` is poisoned on
//! free and checked on every use, and the teardown checks that each was
//! freed.

mod os;

use lazymm::check::sync::thread::{spawn, Arc};
use lazymm::check::sync::AtomicUsize;
use lazymm::cpu::CpuId;
use lazymm::lazy::cached::Cached;
use lazymm::lazy::hazard::{HazardLazy, HazardLazyNoFence};
use lazymm::lazy::loaded::LoadedMm;
use lazymm::lazy::rcu_mm::RcuMm;
use lazymm::lazy::refcount::Refcount;
use lazymm::lazy::shootdown::Shootdown;
use lazymm::lazy::tagged::Tagged;
use lazymm::lazy::LazyMm;
use os::{Mm, Os};

const CPUS: usize = 4;
const MMS: usize = 64;
type Kernel<S> = Os<S, CPUS, MMS>;

// One static kernel per scheme: `const` constructors outside loom, the
// checker's `lazy_static!` under it — the same lines in every build.
lazymm::lazymm_static! { static REFCOUNT: Kernel<Refcount> = Os::new(Refcount::new()); }
lazymm::lazymm_static! { static SHOOTDOWN: Kernel<Shootdown> = Os::new(Shootdown::new()); }
lazymm::lazymm_static! { static TAGGED: Kernel<Tagged<CPUS>> = Os::new(Tagged::new()); }
lazymm::lazymm_static! { static CACHED: Kernel<Cached<CPUS>> = Os::new(Cached::new()); }
lazymm::lazymm_static! { static HAZARD: Kernel<HazardLazy<CPUS>> = Os::new(HazardLazy::new()); }
lazymm::lazymm_static! { static HAZARD_NOFENCE: Kernel<HazardLazyNoFence<CPUS>> = Os::new(HazardLazyNoFence::new()); }
lazymm::lazymm_static! { static LOADED: Kernel<LoadedMm<CPUS>> = Os::new(LoadedMm::new()); }
lazymm::lazymm_static! { static RCU_MM: Kernel<RcuMm<CPUS>> = Os::new(RcuMm::new()); }

/// Boots `os`, runs every CPU's script, takes the CPUs down, checks the
/// teardown; returns the time it took.
fn boot<S: LazyMm + Send + 'static>(os: &'static Kernel<S>) -> std::time::Duration {
    let start = std::time::Instant::now();
    os.boot(&[CPUS; MMS]);
    let down = Arc::new(AtomicUsize::new(0));
    let cpus: Vec<_> = (0..CPUS)
        .map(|c| {
            let down = Arc::clone(&down);
            spawn(move || {
                let cpu = CpuId::new(c);
                for i in 0..MMS {
                    let mm = Some(Mm((c + i) % MMS));
                    os.switch_to(cpu, mm);
                    os.switch_to(cpu, None);
                    os.switch_to(cpu, mm);
                    os.exit(cpu);
                    os.switch_to(cpu, None);
                }
                os.cpu_down(cpu, &down);
            })
        })
        .collect();
    for h in cpus {
        if let Err(e) = h.join() {
            std::panic::resume_unwind(e);
        }
    }
    os.finish();
    start.elapsed()
}

fn main() {
    if lazymm::check::sync::CHECKED {
        println!(
            "built for a checker: the checkers' atomics work only inside a model; \
             run `cargo test --release --test adoption` with the same RUSTFLAGS"
        );
        return;
    }
    println!("lazymm adoption example: {CPUS} CPUs, {MMS} processes, one static kernel per scheme");
    println!("refcount   {:>9.2?}", boot(&REFCOUNT));
    println!("shootdown  {:>9.2?}", boot(&SHOOTDOWN));
    println!("tagged     {:>9.2?}", boot(&TAGGED));
    println!("cached     {:>9.2?}", boot(&CACHED));
    println!("hazard     {:>9.2?}", boot(&HAZARD));
    println!("hazard_nofence {:>5.2?}", boot(&HAZARD_NOFENCE));
    println!("loaded_mm  {:>9.2?}", boot(&LOADED));
    println!("rcu_mm     {:>9.2?}", boot(&RCU_MM));
    println!("every mm freed exactly once, none used after its free");
}
