//! # lazymm
//!
//! The protocols operating systems use to keep an address space (an *mm*)
//! alive while CPUs use it *lazily* — a kernel thread or the idle task keeps
//! the previous task's page tables loaded instead of switching to the
//! kernel's own — written once against an abstract atomics layer and checked
//! by [loom](https://docs.rs/loom) (every interleaving of small machines) and
//! [shuttle](https://docs.rs/shuttle) (random and PCT schedules of big ones).
//!
//! ## Layers (the module tree mirrors them; each uses only those below it)
//!
//! * [`lazy`] — the lazy-mm schemes: the hooks a scheduler calls
//!   ([`LazyMm`](lazy::LazyMm)), what a scheme needs from its kernel
//!   ([`Kernel`](lazy::Kernel)), and one module per scheme:
//!   [`refcount`](lazy::refcount) (Linux's default),
//!   [`shootdown`](lazy::shootdown) (Piggin's shoot-lazies),
//!   [`tagged`](lazy::tagged) (Lutomirski's tagged per-CPU word, and its RFC
//!   v2 placement), [`cached`](lazy::cached) (van Riel's per-CPU cached
//!   reference), [`hazard`](lazy::hazard) (Desnoyers' hazard-pointer lazy
//!   mm), [`loaded`](lazy::loaded) (Torvalds' "`loaded_mm` is the truth"),
//!   [`rcu_mm`](lazy::rcu_mm) (RCU-deferred free, correct for idle CPUs);
//!   `haphazard` and `epoch_mm` are the hazard and RCU schemes on the
//!   haphazard and crossbeam-epoch crates (std, default features, loom-checked
//!   with the libraries' internals); [`checked`](lazy::checked) wraps any of
//!   them with the contract checked.
//! * [`tlb`] — TLB coherence: [`tlbgen`](tlb::tlbgen) (lazy TLB generations,
//!   `freed_tables` and LDT IPIs), [`batched`](tlb::batched) (batched unmap
//!   flushes and `flush_tlb_batched_pending()`).
//! * [`walk`] — targeted sync IPIs for lockless page-table walkers.
//! * [`reclaim`] — the reclamation cores those share: per-CPU hazard
//!   pointers ([`reclaim::hazard`]) and a small RCU with idle as an extended
//!   quiescent state ([`reclaim::rcu`]).
//! * [`platform`] — what a kernel provides besides [`Kernel`](lazy::Kernel):
//!   the current CPU as a pin guard, IPIs with wait, the local TLB flush.
//! * [`cpu`] — [`CpuId`](cpu::CpuId), [`CpuSet`](cpu::CpuSet),
//!   [`AtomicCpuSet`](cpu::AtomicCpuSet), [`PerCpu`](cpu::PerCpu).
//! * [`check`] — the checker surface, which a kernel never needs: the
//!   atomics facade ([`check::sync`]: loom under `--cfg loom`, shuttle under
//!   `--cfg lazymm_shuttle`, core's atomics otherwise), the `bug_` switches
//!   ([`check::bugs`]), and (feature `model`) the simulated machines, their
//!   oracles and the harness for schemes of your own (`check::model`; its
//!   `harness::explore` runs your own kernel code under the build's
//!   checker).
//!
//! ## Guide: from "my kernel does Linux-style lazy TLB" to a verified scheme
//!
//! 1. **Do you keep the previous mm loaded in kernel threads?** If every
//!    switch to a kernel thread loads the kernel's own page tables, you need
//!    none of this. If you keep the old mm (saving the CR3 write and the TLB
//!    refill), something must keep that mm alive: pick a scheme.
//! 2. **Pick a scheme** (numbers: BENCHMARKS.md; verdicts: VERIFICATION.md):
//!    * few CPUs, simplest code: [`refcount`](lazy::refcount) — two atomics on the mm's
//!      count per lazy round trip, the line bounces between CPUs;
//!    * you already track which CPUs may hold an mm (a cpumask you never
//!      clear early): [`shootdown`](lazy::shootdown) — nothing on the switch path, one IPI
//!      round per process exit;
//!    * no IPIs at exit, nothing shared on the same-mm round trip:
//!      [`tagged`](lazy::tagged) (one `xchg` on the CPU's own word when the mm changes) or
//!      [`cached`](lazy::cached) (a reference cached per CPU; the mm outlives its users
//!      while a CPU stays lazy on it);
//!    * you already have per-CPU "what is loaded" state: [`loaded`](lazy::loaded) — the
//!      exit reads one word per possible CPU and IPIs those on the mm;
//!    * you have RCU and want frees off the exit path: [`rcu_mm`](lazy::rcu_mm) — lazy
//!      CPUs are not quiescent until they load another mm; the wait is
//!      bounded by an IPI to the holdouts;
//!    * [`hazard`](lazy::hazard) if you have hazard pointers for other objects.
//! 3. **Implement [`Kernel`](lazy::Kernel)** on your kernel object (the one
//!    that owns the mm structs, the per-CPU state and the IPI code):
//!    `mmgrab`/`mmdrop` (references on `mm_count`), `mm_users`,
//!    `mm_cpumask`, `shoot_lazies` (IPI a set, switch the lazy ones to your
//!    own mm, wait), and `serve_ipis` if a waiting CPU must serve its own
//!    mailbox. The [`platform`] traits give the TLB and walker protocols a
//!    pinned CPU, IPIs and local flushes.
//! 4. **Call the switch sequence** ([`lazy::switch`]) from your
//!    `context_switch()`, `exit_mm()`, shoot-lazy IPI handler and CPU down:
//!    it calls the hooks in Linux's order. If you call them yourself: user →
//!    kernel thread `mmgrab_lazy_tlb`; kernel → kernel `transfer_lazy`;
//!    `switching_mm` / `switched_mm` around **every** page-table load of
//!    another mm (user → user, kernel → user, to your own mm in a shootdown
//!    IPI or at CPU down: cached, hazard_nofence, loaded_mm and rcu_mm keep
//!    per-CPU state that only these hooks update); kernel → user, after the
//!    switch, `mmdrop_lazy_tlb`; `exit_mm()` makes the exiting task a lazy user of
//!    its own mm; `mm_users_zero` and `final_drop` from your `mmput` /
//!    `mmdrop`. A lazy CPU that loads another mm has ended its lazy use: it
//!    must not load the lazy mm again without a new `mmgrab_lazy_tlb`
//!    ([`Checked`](lazy::checked::Checked) panics if it does). `examples/kernel/` is a toy kernel doing exactly this, for
//!    every scheme; wrap the scheme in [`lazy::checked::Checked`] while you bring
//!    it up.
//! 5. **TLB coherence**, if you flush remote TLBs by IPI: [`tlbgen`](tlb::tlbgen) gives
//!    lazy CPUs generations instead of IPIs; [`batched`](tlb::batched) if you batch unmap
//!    flushes; [`walk`] if you walk page tables locklessly.
//! 6. **Check your own variant**: implement [`LazyMm`](lazy::LazyMm) and
//!    run it through `check::model::harness` under loom and shuttle
//!    (`tests/loom/external.rs` is the example).
//!
//! ## Example: a kernel generic over its scheme
//!
//! One CPU, one process: the kernel implements [`Kernel`](lazy::Kernel) on
//! the object that owns its mm structs, and
//! [`SwitchMm`](lazy::switch::SwitchMm) (its per-CPU mm state and the
//! page-table load) so that the library's switch sequence
//! ([`lazy::switch`]) calls the scheme's hooks in Linux's order from its
//! `context_switch()` and `exit_mm()`; its own `mmput()` and `mmdrop()`
//! call the last two hooks. The kernel type is generic over the scheme, so
//! picking one is a type parameter (or a cfg on a type alias).
//! `examples/kernel/` is the same on several CPUs with IPIs.
//!
//! The kernel's own state uses the atomics of [`check::sync`] (core's in
//! a plain build), as a kernel does for the state its loom build should see
//! (`examples/adoption/`).
//!
//! ```
//! # if lazymm::check::sync::CHECKED { return; } // checker atomics live only inside a model
//! use lazymm::check::sync::{AtomicBool, AtomicUsize, Ordering::*};
//! use lazymm::cpu::{CpuId, CpuSet};
//! use lazymm::lazy::switch::{self, CpuMm, CpuMmWords, SwitchMm};
//! use lazymm::lazy::{refcount::Refcount, shootdown::Shootdown, Kernel, LazyMm};
//! use lazymm::lazy::MmIndex as Mm; // the kernel's handle: an index into its mm table
//!
//! struct Os<S> {
//!     scheme: S,
//!     users: AtomicUsize, // mm_users of the one mm
//!     count: AtomicUsize, // mm_count
//!     cpu0: CpuMmWords, // CPU 0's current->mm, active_mm and loaded mm
//!     freed: AtomicBool,
//! }
//!
//! impl<S: LazyMm> Kernel for Os<S> {
//!     type Mm = Mm;
//!     const NR_CPUS: usize = 1; // the one CPU count: a scheme sized for fewer fails to build
//!     type CpuMask = CpuSet<1>; // one word: room for 64 CPUs
//!     fn mmgrab(&self, _: CpuId, _: Mm) { self.count.fetch_add(1, Relaxed); }
//!     fn mmdrop(&self, cpu: CpuId, mm: Mm) {
//!         if self.count.fetch_sub(1, AcqRel) == 1 {
//!             self.scheme.final_drop(self, cpu, mm); // __mmdrop()
//!             assert_eq!(self.cpu0.loaded::<Mm>(), None, "freed while loaded");
//!             self.freed.store(true, Relaxed);
//!         }
//!     }
//!     fn mm_users(&self, _: Mm) -> usize { self.users.load(Acquire) }
//!     fn mm_cpumask(&self, mm: Mm) -> CpuSet<1> {
//!         let loaded = self.cpu0.loaded() == Some(mm);
//!         (0..usize::from(loaded)).map(CpuId::new).collect()
//!     }
//!     fn shoot_lazies(&self, cpu: CpuId, cpus: &CpuSet<1>, mm: Mm) {
//!         // on_each_cpu_mask(): the only CPU is the caller, so run it here.
//!         if cpus.contains(cpu) {
//!             switch::do_shoot_lazy_tlb(&self.scheme, self, cpu, mm);
//!         }
//!     }
//! }
//!
//! impl<S: LazyMm> SwitchMm for Os<S> {
//!     fn cpu_mm(&self, _: CpuId) -> CpuMm<Mm> { self.cpu0.get() }
//!     fn set_cpu_mm(&self, _: CpuId, st: CpuMm<Mm>) { self.cpu0.set(st) }
//!     fn loaded_mm(&self, _: CpuId) -> Option<Mm> { self.cpu0.loaded() }
//!     fn load_mm(&self, _: CpuId, _prev: Option<Mm>, next: Option<Mm>) {
//!         self.cpu0.set_loaded(next); // "CR3 load" (and the cpumask bits)
//!     }
//! }
//!
//! impl<S: LazyMm> Os<S> {
//!     fn run(scheme: S) {
//!         let os = Os { scheme, users: AtomicUsize::new(1), count: AtomicUsize::new(1),
//!                       cpu0: CpuMmWords::new(), freed: AtomicBool::new(false) };
//!         let (cpu, mm) = (CpuId::new(0), Mm(0));
//!         switch::context_switch(&os.scheme, &os, cpu, Some(mm)); // idle -> the process's task
//!         switch::context_switch(&os.scheme, &os, cpu, None); // task -> kernel thread: lazy
//!         switch::context_switch(&os.scheme, &os, cpu, Some(mm)); // -> same task: unlazy
//!         switch::exit_mm(&os.scheme, &os, cpu); // lazy on its own mm
//!         if os.users.fetch_sub(1, AcqRel) == 1 { // mmput(): the last user
//!             os.scheme.mm_users_zero(&os, cpu, mm);
//!             os.mmdrop(cpu, mm); // the users' reference on mm_count
//!         }
//!         switch::force_init_mm(&os.scheme, &os, cpu); // schedule() to idle on init_mm
//!         assert!(os.freed.load(Relaxed), "{}: leaked the mm", S::NAME);
//!     }
//! }
//!
//! Os::run(Refcount::new()); // the lazy CPU's reference frees it at mmdrop_lazy_tlb
//! Os::run(Shootdown::new()); // the final drop shoots the lazy CPU off it
//! ```
//!
//! ## Features
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `std` | yes | links `std` (implies `alloc`); needed by `model`, loom and shuttle |
//! | `alloc` | via `std` | links `alloc`; no protocol allocates |
//! | `model` | yes | the simulated machine (`check::model`) |
//! | `bug-variants` | no | compiles the `bug_<what>` switches into plain builds, for tests; never in a kernel |
//! | `epoch` | yes | `lazy::epoch_mm`: RCU-deferred mm freeing on `crossbeam-epoch` (std only) |
//! | `epoch-loom` | no | crossbeam-epoch's `loom` feature, for `RUSTFLAGS="--cfg loom --cfg crossbeam_loom"` |
//! | `haphazard` | yes | `lazy::haphazard`: the hazard-pointer lazy mm on `haphazard` (std only) |
//!
//! A kernel depends on the crate with `default-features = false`: the
//! library is then `#![no_std]`, allocation-free, and has no global state.
//!
//! ## cfgs
//!
//! | cfg | effect |
//! |---|---|
//! | `loom` | atomics from loom; `tests/loom` runs (`RUSTFLAGS="--cfg loom" cargo test`; the dev profile is optimised) |
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

mod bugs;
pub mod check;
pub mod cpu;
pub mod lazy;
pub mod platform;
pub mod reclaim;
mod sync;
pub mod tlb;
pub mod walk;
