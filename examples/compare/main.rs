//! The main job: every implemented lazy-mm scheme side by side on the
//! simulated machine, with real atomics and one real thread per CPU.
//!
//! ```text
//! cargo run --release --example compare [-- --threads N --cpus C --round-trips R
//!                                           --processes P --mix same=70,other=20,exit=10]
//! ```
//!
//! # Workloads
//!
//! Each scheme runs these workloads on a machine of `N` running CPUs
//! (`--threads`, default: the number of cores, at most the machine's cap
//! [`lazymm::check::model::MAX_CPUS`] = 64), one real thread per CPU:
//!
//! * **round trips, same mm**, at every thread count `1..=N` (the thread
//!   scaling): every CPU runs a thread of one shared process and does `R`
//!   lazy round trips (user → kernel thread → the same user mm), then exits.
//!   The context-switch hot path, all CPUs on one mm. The table's "same mm"
//!   column is the `N`-thread point.
//! * **round trips, other mm**: every CPU runs threads of two shared
//!   processes and alternates user A → kernel thread → user B → kernel
//!   thread → user A, `R` round trips in all.
//! * **exits**: `P` processes, each with a thread on every CPU; each CPU runs
//!   its thread, a kernel thread, the thread again, exits it and runs a
//!   kernel thread (lazy on the dead process's mm), process after process.
//!   The final drops race with CPUs still lazy on the mm.
//! * **mix** (`--mix`): `R` operations per CPU drawn in the given shares
//!   (exact counts, shuffled with a fixed seed; the same script on every
//!   CPU, so each process has a thread on every CPU):
//!   - `same`: a lazy round trip back into the current process's mm;
//!   - `other`: a kernel thread, then the CPU's thread of the other of two
//!     live processes (a round trip into another mm);
//!   - `exit`: the current thread exits, a kernel thread runs lazily on the
//!     dead mm, then the thread of a fresh process runs in its place;
//!   - `lazy_exit`: like `exit`, but the CPU idles lazily on the dead mm
//!     until the process's last thread exited (`Op::IdleUntilExited`), so
//!     every final drop meets the CPUs that exited first still lazy on it.
//! * **lazy exits** (always run, also `--mix lazy-exits`):
//!   `same=70,other=20,lazy_exit=10`; reports IPIs per exit and prices them
//!   at the IPI cost measured in the same run (see below).
//!
//! # What is reported
//!
//! Times are wall-clock time of the whole run times the number of CPUs,
//! divided by the operations done: ns per operation per CPU (the CPUs run in
//! parallel). Numbers are end-to-end on the simulated machine — the oracle's
//! checks and the machine's bookkeeping included — so they compare schemes
//! with each other, not with a kernel. `cargo bench` measures the protocol
//! primitives alone. Counts (shared-line RMWs, IPIs) come from the machine's
//! counters.
//!
//! Memory is computed from the types with `core::mem::size_of`, never typed
//! in:
//!
//! * **B/CPU**: bytes each CPU slot adds to the scheme's state,
//!   `size_of::<Scheme<2>>() - size_of::<Scheme<1>>()` for the schemes with a
//!   per-CPU table (a word on its own cache line: the padding is included),
//!   and `0` for a scheme type without a CPU parameter. The whole scheme
//!   struct at `C` slots, `size_of::<Scheme<C>>()`, is in the CSV.
//! * **B/mm**: bytes of the mm fields the scheme's hooks read or write:
//!   `mm_count` (`size_of::<lazymm::check::sync::AtomicUsize>()`, for the schemes
//!   that grab or drop references) and the cpumask (`size_of::<CpuSet<1>>()`
//!   per word, `C` bits rounded up to words, for the schemes whose exit walks
//!   it). Every Linux mm has both fields anyway; no scheme adds one.
//!
//! # CPU slots (`--cpus`)
//!
//! `C` is how many possible CPUs each scheme's per-CPU tables hold (the
//! kernel's `nr_cpu_ids`); the machine runs `N` of them, the others stay
//! offline. hazard and loaded_mm read every slot at each final drop, so their
//! exit cost grows with `C`; tagged and shootdown walk the mm's cpumask,
//! which holds only CPUs that ran the mm. The schemes take `C` as a const
//! generic, so `compare` is compiled for the powers of two 1..=1024 and rounds
//! `C` up to the next one (with a note); 1024 is the capacity of the cpumask
//! type [`lazymm::cpu::CpuSet`] the kernel interface uses, and larger values
//! are clamped to it (with a note). Default: 64, the machine's CPU cap.
//!
//! # Outputs
//!
//! The table, the lazy exits, the measured IPI and the lifetime model
//! (`imp/lifetime.rs`: inputs, crossover K for every pair of schemes,
//! lifetime cost at K = 1..10,000) on stdout; CSVs
//! (`$CARGO_TARGET_DIR/lazymm-compare.csv`, default `target/`, one row per
//! scheme and thread count; `lazymm-lifetime.csv`, one row per scheme, CPU
//! count, lazy share and K); and SVG charts of the thread scaling
//! (`lazymm-compare.svg`) and the lifetime cost against K
//! (`lazymm-lifetime.svg`), drawn with `plotters`.

fn main() {
    // Compiles in every build; the checkers' atomics work only inside a model.
    if lazymm::check::sync::CHECKED {
        eprintln!("compare runs real threads; run it without --cfg loom / --cfg lazymm_shuttle");
        return;
    }
    imp::main();
}

mod imp;
