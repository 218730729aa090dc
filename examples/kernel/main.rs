//! A toy kernel that adopts lazymm: the code a kernel developer writes around
//! a scheme, against the crate's public API only (`lazymm::lazy`,
//! `lazymm::platform`, `lazymm::cpu` and the schemes; not the simulated
//! machine of `lazymm::check::model`).
//!
//! ```text
//! cargo run --release --example kernel [-- --scheme NAME|all --cpus N --processes P --seed S]
//! ```
//!
//! `NAME` is one of refcount, shootdown, tagged, cached, hazard, hazard_nofence, loaded_mm,
//! rcu_mm;
//! `all` (the default) runs each in turn. Every CPU is a std thread with a
//! run queue of user threads (of a few processes at a time) and kernel
//! threads; it switches between them and exits the user threads; the last
//! thread of a process takes its mm through `mm_users` = 0 and the final
//! `mmdrop()`. Per scheme it prints the switches done, processes exited,
//! IPIs sent (shoot-lazy and sync), local TLB flushes and mms freed, and
//! asserts that every mm was freed exactly once.
//!
//! # What a kernel implements
//!
//! 1. **An mm handle** ([`MmHandle`](lazymm::lazy::MmHandle)): a `Copy` handle whose word is non-zero
//!    with bit 0 clear. A kernel with pointers uses
//!    `lazymm::lazy::MmPtr<MmStruct>`; the toy indexes a table (`Mm`).
//! 2. **[`Kernel`](lazymm::lazy::Kernel)**, what a scheme needs from the kernel:
//!    * `mmgrab`: `mm_count += 1`, relaxed (the caller holds a reference);
//!    * `mmdrop`: `mm_count -= 1`, AcqRel; at 0 `__mmdrop()` calls the
//!      scheme's `final_drop` and then frees the mm;
//!    * `mm_users`: an acquire load;
//!    * `mm_cpumask`: an acquire snapshot. A CPU sets its bit before it
//!      loads an mm and clears it (release) only after it loaded another;
//!    * `shoot_lazies`: `on_each_cpu_mask(cpus, do_shoot_lazy_tlb, mm,
//!      wait = 1)` — the handler switches a CPU that is lazy on `mm` to the
//!      kernel's own mm and calls the scheme's `lazy_shot`; the caller runs
//!      it locally if it is in `cpus`, and waits for every acknowledgement
//!      while serving its own IPIs (two CPUs shooting at each other must not
//!      deadlock);
//!    * `serve_ipis`: run the pending IPI handlers (a scheme that waits
//!      calls it).
//! 3. **[`SwitchMm`](lazymm::lazy::switch::SwitchMm)**: the CPU's
//!    `current->mm` / `active_mm` (`cpu_mm`, `set_cpu_mm`), its loaded mm,
//!    and the page-table load (`load_mm`: cpumask bit, load, clear the old
//!    bit with release). Its scheduler then calls the library's switch
//!    sequence (`lazymm::lazy::switch::{context_switch, exit_mm,
//!    do_shoot_lazy_tlb, force_init_mm}`), which makes the hook calls
//!    ([`LazyMm`](lazymm::lazy::LazyMm)) in this order:
//!
//! ```text
//! context_switch(prev, next)
//!   next is a kernel thread (no mm of its own; it borrows active_mm):
//!     prev was a user task             mmgrab_lazy_tlb(active_mm)
//!     prev had no mm either            transfer_lazy(active_mm)
//!   next is a user task:
//!     switch_mm_irqs_off(active_mm -> next->mm), if they differ:
//!                                      switching_mm(prev_mm, next_mm)
//!                                      set our bit in next_mm's cpumask
//!                                      load next_mm's page tables, flush_local(next_mm)
//!                                      clear our bit in prev_mm's cpumask (release)
//!                                      switched_mm(prev_mm, next_mm)
//!     finish_task_switch(), prev had no mm and active_mm was a user mm:
//!                                      mmdrop_lazy_tlb(old active_mm, Some(next_mm))
//! exit of a user task
//!   exit_mm()                          mmgrab_lazy_tlb(mm): the dying task keeps its mm loaded
//!   (interrupts on: serve IPIs)
//!   mmput(): mm_users -= 1 (AcqRel); at 0, __mmput():
//!                                      mm_users_zero(mm); exit_mmap(); mmdrop(mm)
//!   exit_mmap(), free_pgtables():      ipi_and_wait(mm's cpumask but us), then tear down
//! mmdrop(): mm_count -= 1 (AcqRel); at 0, __mmdrop():
//!                                      final_drop(mm); free the mm
//! shoot-lazy IPI, on a CPU whose active_mm is mm:
//!                                      switch_mm_irqs_off(mm -> init_mm) as above; lazy_shot(mm)
//! CPU down, sched_force_init_mm():     switch_mm_irqs_off(active_mm -> init_mm); mmdrop_lazy_tlb(mm, None)
//! after the CPU died (on another CPU): cpu_dead(cpu)
//! ```
//!
//! No hook is called for the kernel's own mm (`init_mm`, `None` here): it is
//! never freed. The hooks run with preemption off: the scheduler holds a
//! `CpuPin` across the hook calls of a switch and passes its CPU to them.
//! The toy serves IPIs only at the top of its scheduler loop, between
//! `exit_mm()` and `mmput()`, while it waits for acknowledgements, and in its
//! idle loop.
//!
//! One choice the toy makes on purpose: it clears its bit in the previous
//! mm's cpumask *before* calling the scheme's `switched_mm` hook, because a
//! scheme may drop its last reference to the previous mm there (`cached`
//! does), after which that mm's memory is gone.
//!
//! The toy keeps every `mm_struct` in a table and marks it freed instead of
//! giving the memory back, and checks that flag on every use: a lifetime bug
//! in a scheme panics with "use-after-free" instead of reading freed memory.
//!
//! # Platform traits
//!
//! What the toy implements on `ToyKernel`, and what any kernel implements:
//!
//! * `lazymm::lazy::Kernel`: the references, `mm_users`, the cpumask and
//!   the shoot-lazy IPI that a scheme calls (above).
//! * `lazymm::platform::CurrentCpu`: `pin()` returns a `CpuPin` naming the
//!   running CPU, which cannot migrate while it lives; the toy reads a
//!   thread-local CPU id that each CPU thread sets when it starts, where a
//!   kernel reads its per-CPU area (`smp_processor_id()` with preemption
//!   disabled).
//! * `lazymm::platform::IpiSync`: an empty IPI to a set of CPUs, waiting for
//!   each to take it; the toy queues an empty request in each target's
//!   mailbox, with the same code as its shoot-lazy IPI, and sends one from
//!   `exit_mmap()`.
//! * `lazymm::platform::LocalTlb`: a flush of this CPU's TLB entries of an
//!   mm; the toy has no TLB, so it only counts one flush at every page-table
//!   base change, as a stand-in for the hardware flush.

fn main() {
    // The toy compiles in every build (no `#[cfg(loom)]` of its own), but
    // the checkers' atomics inside the schemes work only inside a model.
    if lazymm::check::sync::CHECKED {
        eprintln!(
            "the toy kernel runs real threads; run it without --cfg loom / --cfg lazymm_shuttle"
        );
        return;
    }
    toy::main();
}

mod toy;
