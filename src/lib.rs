//! # lazymm
//!
//! The protocols operating systems use to keep an address space (an *mm*)
//! alive while CPUs use it *lazily* — a kernel thread or the idle task keeps
//! the previous task's page tables loaded instead of switching to the
//! kernel's own — written once against an abstract atomics layer and checked
//! by [loom](https://docs.rs/loom) (every interleaving of small machines) and
//! [shuttle](https://docs.rs/shuttle) (random and PCT schedules of big ones).
//!
//! ## Layers
//!
//! * [`sync`] — the atomics layer: loom under `--cfg loom`, shuttle under
//!   `--cfg lazymm_shuttle`, core's atomics otherwise.
//! * [`cpu`] — [`CpuId`](cpu::CpuId), [`CpuSet`](cpu::CpuSet),
//!   [`AtomicCpuSet`](cpu::AtomicCpuSet), [`PerCpu`](cpu::PerCpu).
//! * [`scheme`] — the hooks a scheduler calls ([`LazyMm`](scheme::LazyMm)) and
//!   what a scheme needs from its kernel ([`Kernel`](scheme::Kernel)).
//! * The schemes: [`refcount`] (Linux's default), [`shootdown`] (Piggin's
//!   shoot-lazies), [`tagged`] (Lutomirski's tagged per-CPU word, and its
//!   RFC v2 placement), [`cached`] (van Riel's per-CPU cached reference),
//!   [`hazard`] (Desnoyers' per-CPU hazard pointers, as a domain of their own
//!   and as a lazy-mm scheme), [`loaded`] (Torvalds' "`loaded_mm` is the
//!   truth").
//! * [`model`] (feature `model`) — the simulated machine and its oracle.
//!
//! ## Features
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `std` | yes | links `std` (implies `alloc`); needed by `model`, loom and shuttle |
//! | `alloc` | via `std` | links `alloc`; no protocol allocates |
//! | `model` | yes | the simulated machine ([`model`]) |
//! | `bug-variants` | no | compiles the `bug_<what>` switches into plain builds, for tests; never in a kernel |
//!
//! A kernel depends on the crate with `default-features = false`: the
//! library is then `#![no_std]`, allocation-free, and has no global state.
//!
//! ## cfgs
//!
//! | cfg | effect |
//! |---|---|
//! | `loom` | atomics from loom; `tests/loom` runs (`RUSTFLAGS="--cfg loom" cargo test --release`) |
//! | `lazymm_shuttle` | atomics from shuttle; `tests/shuttle` runs |
//!
//! Both switch the `bug_` variants on. Use a separate `--target-dir` for each
//! so the builds do not thrash (`ci/test.sh` does).
#![no_std]
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod batched;
pub mod bugs;
pub mod cached;
pub mod checked;
pub mod cpu;
pub mod hazard;
pub mod loaded;
pub mod rcu;
pub mod rcu_mm;
pub mod refcount;
pub mod scheme;
pub mod shootdown;
pub mod sync;
pub mod tagged;
pub mod tlbgen;
pub mod walk;

#[cfg(feature = "model")]
pub mod model;
