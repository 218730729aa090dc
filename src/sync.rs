//! The abstract atomics layer: the only file in the crate that names `loom`,
//! `shuttle` or `core::sync::atomic`.
//!
//! Every protocol is written once against the names exported here. Which
//! implementation they resolve to is decided by a cfg:
//!
//! | build | cfg | backend |
//! |---|---|---|
//! | `RUSTFLAGS="--cfg loom" cargo test` | `loom` | [`loom`](https://docs.rs/loom) 0.7: exhaustive C11 interleavings |
//! | `RUSTFLAGS="--cfg lazymm_shuttle" cargo test --test shuttle` | `lazymm_shuttle` (and not `loom`) | [`shuttle`](https://docs.rs/shuttle): randomized / PCT schedules of big machines |
//! | anything else (benches, kernels) | — | `core::sync::atomic`, real hardware |
//!
//! `loom` keeps its conventional name because that is the command users type;
//! shuttle uses the namespaced `lazymm_shuttle` so that it never flips the
//! shuttle paths of other crates in the dependency graph.
//!
//! # Kernel mapping
//!
//! | here | Linux |
//! |---|---|
//! | [`smp_mb()`] = `fence(SeqCst)` | `smp_mb()` |
//! | `load(Acquire)` / `store(Release)` | `smp_load_acquire` / `smp_store_release` |
//! | `Relaxed` load / store | `READ_ONCE` / `WRITE_ONCE` |
//! | `swap` / `compare_exchange` + [`smp_mb()`] on both sides | `xchg` / `cmpxchg` (fully ordered) |
//!
//! Full barriers are always written as `fence(SeqCst)`, never as SeqCst
//! accesses: loom treats SeqCst loads and stores as AcqRel, and the Linux
//! kernel memory model has no SeqCst accesses at all.
//!
//! # Oracle bookkeeping
//!
//! [`shadow`] holds atomics that the checkers do **not** see. The simulated
//! machine's oracle uses them to record ground truth ("which CPU has which mm
//! loaded right now", "how many times was this mm freed") in the order the
//! checker actually scheduled the steps. They never synchronize anything and
//! protocol code must not use them.

#[cfg(all(loom, not(feature = "std")))]
compile_error!("`--cfg loom` needs the `std` feature (loom is std-only)");
#[cfg(all(lazymm_shuttle, not(feature = "std")))]
compile_error!("`--cfg lazymm_shuttle` needs the `std` feature (shuttle is std-only)");

#[cfg(loom)]
mod imp {
    pub use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

    /// A busy-wait hint; under loom it yields so the model makes progress.
    #[inline]
    pub fn spin_loop() {
        loom::thread::yield_now();
    }

    pub use loom::cell::UnsafeCell;

    /// True when atomics are checker-instrumented and `new` is not `const`.
    pub const CHECKED: bool = true;

    /// Threads and shared ownership for the simulated machine.
    pub mod thread {
        pub use loom::sync::{Arc, Condvar, Mutex};
        pub use loom::thread::{spawn, JoinHandle};
        /// Per-thread storage: loom's, one per model thread and execution.
        pub use loom::thread_local;
    }

    #[doc(hidden)]
    pub use loom::lazy_static as __checker_lazy_static;
}

#[cfg(all(lazymm_shuttle, not(loom)))]
mod imp {
    pub use shuttle::sync::atomic::{
        fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };

    /// A busy-wait hint; under shuttle it yields to the scheduler.
    #[inline]
    pub fn spin_loop() {
        shuttle::hint::spin_loop();
    }

    pub use super::plain_cell::UnsafeCell;

    /// True when atomics are checker-instrumented.
    pub const CHECKED: bool = true;

    /// Threads and shared ownership for the simulated machine.
    pub mod thread {
        pub use shuttle::sync::{Arc, Condvar, Mutex};
        pub use shuttle::thread::{spawn, JoinHandle};
        /// Per-thread storage: shuttle's, one per task and execution.
        pub use shuttle::thread_local;
    }

    #[doc(hidden)]
    pub use shuttle::lazy_static as __checker_lazy_static;
}

#[cfg(not(any(loom, lazymm_shuttle)))]
mod imp {
    pub use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

    /// A busy-wait hint (`cpu_relax()`).
    #[inline]
    pub fn spin_loop() {
        core::hint::spin_loop();
    }

    pub use super::plain_cell::UnsafeCell;

    /// True when atomics are checker-instrumented.
    pub const CHECKED: bool = false;

    /// Threads and shared ownership for the simulated machine.
    #[cfg(feature = "std")]
    pub mod thread {
        extern crate std;
        pub use std::sync::{Arc, Condvar, Mutex};
        pub use std::thread::{spawn, JoinHandle};
        /// Per-thread storage.
        pub use std::thread_local;
    }
}

pub use imp::*;

/// The checkers' drivers, for `model::harness` (so that this file stays the
/// only one naming loom and shuttle): loom's model builder.
#[cfg(loom)]
pub(crate) mod checker {
    pub use loom::model::Builder;
}

/// The checkers' drivers, for `model::harness`: shuttle's runner, config,
/// schedulers and randomness.
#[cfg(lazymm_shuttle)]
pub(crate) mod checker {
    pub use shuttle::{rand, scheduler, Config, Runner};
}

/// Stand-ins for the checkers' drivers in a documentation build, so that
/// `cargo doc` renders `LoomCheck`, `ShuttleCheck` and their reports (the
/// harness's checker side is compiled only under `--cfg loom` /
/// `--cfg lazymm_shuttle` otherwise). Never compiled into anything that
/// runs: rustdoc only type-checks it.
#[cfg(all(doc, not(any(loom, lazymm_shuttle))))]
pub(crate) mod checker {
    const WHY: &str =
        "lazymm: the checkers' drivers exist only under --cfg loom / --cfg lazymm_shuttle";

    /// loom's `model::Builder` (under `--cfg loom`).
    #[derive(Debug, Default)]
    pub struct Builder {
        pub preemption_bound: Option<usize>,
        pub max_branches: usize,
    }
    impl Builder {
        pub fn new() -> Self {
            Self::default()
        }
        pub fn check<F: Fn() + Sync + Send + 'static>(&self, _f: F) {
            unreachable!("{WHY}")
        }
    }

    /// shuttle's `Config` (under `--cfg lazymm_shuttle`).
    #[derive(Clone, Debug, Default)]
    pub struct Config;

    /// shuttle's `Runner`.
    pub struct Runner;
    impl Runner {
        pub fn new<S>(_scheduler: S, _config: Config) -> Self {
            Runner
        }
        pub fn run<F: Fn() + Send + Sync + 'static>(self, _f: F) -> usize {
            unreachable!("{WHY}")
        }
    }

    /// shuttle's schedulers.
    pub mod scheduler {
        pub struct PctScheduler;
        impl PctScheduler {
            pub fn new_from_seed(_seed: u64, _depth: usize, _iterations: usize) -> Self {
                PctScheduler
            }
        }
        pub struct RandomScheduler;
        impl RandomScheduler {
            pub fn new_from_seed(_seed: u64, _iterations: usize) -> Self {
                RandomScheduler
            }
        }
    }

    /// shuttle's randomness.
    pub mod rand {
        pub trait RngCore {
            fn next_u64(&mut self) -> u64;
        }
        pub struct ThreadRng;
        impl RngCore for ThreadRng {
            fn next_u64(&mut self) -> u64 {
                unreachable!("{}", super::WHY)
            }
        }
        pub fn thread_rng() -> ThreadRng {
            ThreadRng
        }
    }
}

/// `smp_mb()`: a full barrier, `fence(SeqCst)`.
///
/// loom models SeqCst fences exactly (it does not model SeqCst accesses), so
/// every store-buffering handshake in the crate is written with this.
#[inline]
pub fn smp_mb() {
    fence(Ordering::SeqCst);
}

/// `smp_mb__after_atomic()`: the barrier a kernel places after an RMW that it
/// relies on being fully ordered.
///
/// Under the checkers and Miri (and on non-x86 hardware) this is
/// `fence(SeqCst)`. On x86_64 every locked RMW is already a full barrier, so —
/// as Linux does — it becomes a compiler fence there. That is a hardware
/// argument, not a C11 one: in the C11 model an AcqRel RMW does not order a
/// later load before an earlier store, and Miri's weak-memory emulation (C11)
/// duly found the resulting store-buffering outcome in the TLB machine when
/// it ran the x86 form; so Miri, like loom, checks the fence form.
#[inline]
pub fn smp_mb_after_atomic() {
    #[cfg(all(target_arch = "x86_64", not(any(loom, lazymm_shuttle, miri))))]
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
    #[cfg(not(all(target_arch = "x86_64", not(any(loom, lazymm_shuttle, miri)))))]
    fence(Ordering::SeqCst);
}

/// A `static` of lazymm types (a scheme, or a kernel object built from the
/// atomics of [`crate::check::sync`]) that compiles in every build.
///
/// Outside the checkers it is a plain `static`: the initializer must be a
/// constant expression, and every constructor of the crate is a `const fn`
/// there. Under `--cfg loom` and `--cfg lazymm_shuttle` the checkers'
/// atomics cannot be built in a constant, and a plain `static` would carry
/// state from one execution into the next; there the macro is the checker's
/// `lazy_static!`, initialised on first use in each execution and dropped
/// at its end. Use the static through method calls or `&NAME` where a
/// reference to its type is expected (both work in both builds).
///
/// ```
/// use lazymm::lazy::refcount::Refcount;
/// lazymm::lazymm_static! {
///     /// The kernel's lazy-mm scheme, picked at build time.
///     pub static SCHEME: Refcount = Refcount::new();
/// }
/// fn scheme() -> &'static Refcount {
///     &SCHEME
/// }
/// # let _ = scheme;
/// ```
///
/// Which constructors are `const`: all of them outside loom; under loom
/// none that builds an atomic (they are plain `fn`s there). Under shuttle
/// they stay `const`, but a plain `static` would keep its state across
/// executions, hence the macro.
#[macro_export]
macro_rules! lazymm_static {
    ($(#[$m:meta])* static $n:ident : $t:ty = $e:expr ;) => {
        $crate::__lazymm_static!(($(#[$m])*) () $n, $t, $e);
    };
    ($(#[$m:meta])* pub static $n:ident : $t:ty = $e:expr ;) => {
        $crate::__lazymm_static!(($(#[$m])*) (pub) $n, $t, $e);
    };
    ($(#[$m:meta])* pub ($($v:tt)+) static $n:ident : $t:ty = $e:expr ;) => {
        $crate::__lazymm_static!(($(#[$m])*) (pub ($($v)+)) $n, $t, $e);
    };
}

#[cfg(not(any(loom, lazymm_shuttle)))]
#[doc(hidden)]
#[macro_export]
macro_rules! __lazymm_static {
    (($($m:tt)*) ($($v:tt)*) $n:ident, $t:ty, $e:expr) => {
        $($m)* $($v)* static $n: $t = $e;
    };
}

#[cfg(any(loom, lazymm_shuttle))]
#[doc(hidden)]
#[macro_export]
macro_rules! __lazymm_static {
    (($($m:tt)*) ($($v:tt)*) $n:ident, $t:ty, $e:expr) => {
        $crate::check::sync::__checker_lazy_static! {
            $($m)* $($v)* static ref $n: $t = $e;
        }
    };
}

/// A function that is `const fn` outside loom and a plain `fn` under loom
/// (whose atomics cannot be built in a constant): how the crate writes its
/// constructors, and how a kernel writes its own so that one constructor
/// serves its `static`s ([`lazymm_static!`]) in every build. (The example
/// is compiled, not run: under loom an atomic exists only inside a model.)
///
/// ```no_run
/// use lazymm::check::sync::AtomicUsize;
/// pub struct PerMm {
///     count: AtomicUsize,
/// }
/// impl PerMm {
///     lazymm::const_fn! {
///         /// One reference.
///         pub fn new() -> Self {
///             Self { count: AtomicUsize::new(1) }
///         }
///     }
/// }
/// # let _ = PerMm::new().count;
/// ```
#[cfg(not(loom))]
#[macro_export]
macro_rules! const_fn {
    ($(#[$attr:meta])* $vis:vis fn $name:ident $($rest:tt)*) => {
        $(#[$attr])* $vis const fn $name $($rest)*
    };
}

/// See the other build's definition: under loom a plain `fn`.
#[cfg(loom)]
#[macro_export]
macro_rules! const_fn {
    ($(#[$attr:meta])* $vis:vis fn $name:ident $($rest:tt)*) => {
        $(#[$attr])* $vis fn $name $($rest)*
    };
}

/// `[expr; N]` for a non-`Copy` `expr` (an atomic, a struct of atomics) in
/// a [`const_fn!`]: `[const { expr }; N]` outside loom, `core::array::from_fn`
/// under loom.
#[cfg(not(loom))]
#[macro_export]
macro_rules! array {
    ($e:expr; $n:expr) => {
        [const { $e }; $n]
    };
}

/// See the other build's definition: under loom `core::array::from_fn`.
#[cfg(loom)]
#[macro_export]
macro_rules! array {
    ($e:expr; $n:expr) => {
        ::core::array::from_fn(|_| $e)
    };
}

#[cfg(not(loom))]
mod plain_cell {
    /// An `UnsafeCell` with loom's `with` / `with_mut` interface.
    ///
    /// Under loom the crate uses `loom::cell::UnsafeCell`, which reports an
    /// access that is not ordered by happens-before with a conflicting one as
    /// a "Causality violation".
    #[derive(Debug, Default)]
    #[repr(transparent)]
    pub struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        /// Wraps `value`.
        #[inline]
        pub const fn new(value: T) -> Self {
            Self(core::cell::UnsafeCell::new(value))
        }

        /// Reads through a raw pointer; the caller guarantees no concurrent writer.
        #[inline]
        pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Writes through a raw pointer; the caller guarantees exclusive access.
        #[inline]
        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

/// Oracle bookkeeping that no checker sees (see the module docs).
///
/// Under loom and shuttle every simulated thread runs on one OS thread, so
/// these plain atomics record the order in which the checker scheduled the
/// steps. They are `Relaxed` on purpose: they carry facts, not synchronization.
/// Only the simulated machines (feature `model`) keep any.
#[cfg(feature = "model")]
pub(crate) mod shadow {
    use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    /// An uninstrumented counter / word for the oracle.
    #[derive(Debug, Default)]
    pub struct Shadow(AtomicUsize);

    impl Shadow {
        /// A word holding `v`.
        pub const fn new(v: usize) -> Self {
            Self(AtomicUsize::new(v))
        }
        /// Reads the word.
        #[inline]
        pub fn get(&self) -> usize {
            self.0.load(Relaxed)
        }
        /// Writes the word.
        #[inline]
        pub fn set(&self, v: usize) {
            self.0.store(v, Relaxed)
        }
        /// Adds `v`, returning the old value.
        #[inline]
        pub fn add(&self, v: usize) -> usize {
            self.0.fetch_add(v, Relaxed)
        }
    }

    /// The last `cap` entries pushed, for failure messages (uninstrumented,
    /// like [`Shadow`]; a plain mutex that no checker sees and that is never
    /// held across a checker's scheduling point).
    #[cfg(feature = "std")]
    #[derive(Debug)]
    pub struct Log<T> {
        cap: usize,
        items: std::sync::Mutex<std::collections::VecDeque<T>>,
    }

    #[cfg(feature = "std")]
    impl<T: Clone> Log<T> {
        /// An empty log keeping the last `cap` entries.
        pub fn new(cap: usize) -> Self {
            Self {
                cap,
                items: std::sync::Mutex::new(std::collections::VecDeque::with_capacity(cap)),
            }
        }
        /// Appends `item`, forgetting the oldest beyond `cap`.
        pub fn push(&self, item: T) {
            let mut q = self.items.lock().unwrap_or_else(|e| e.into_inner());
            if q.len() == self.cap {
                q.pop_front();
            }
            q.push_back(item);
        }
        /// The entries, oldest first.
        pub fn snapshot(&self) -> std::vec::Vec<T> {
            let q = self.items.lock().unwrap_or_else(|e| e.into_inner());
            q.iter().cloned().collect()
        }
    }
}
