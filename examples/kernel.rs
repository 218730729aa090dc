//! A toy kernel that adopts lazymm: the code a kernel developer writes around
//! a scheme, against the crate's public API only (`lazymm::lazy`,
//! `lazymm::platform`, `lazymm::cpu` and the schemes; not the simulated
//! machine of `lazymm::check::model`).
//!
//! ```text
//! cargo run --release --example kernel [-- --scheme NAME|all --cpus N --processes P --seed S]
//! ```
//!
//! `NAME` is one of refcount, shootdown, tagged, cached, hazard, loaded_mm;
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
//! 3. **The hook calls** ([`LazyMm`](lazymm::lazy::LazyMm)) in its scheduler, in this order:
//!
//! ```text
//! context_switch(prev, next)
//!   next is a kernel thread (no mm of its own; it borrows active_mm):
//!     prev was a user task             enter_lazy(active_mm)
//!     prev had no mm either            transfer_lazy(active_mm)
//!   next is a user task:
//!     switch_mm_irqs_off(active_mm -> next->mm), if they differ:
//!                                      switching_mm(prev_mm, next_mm)
//!                                      set our bit in next_mm's cpumask
//!                                      load next_mm's page tables, flush_local(next_mm)
//!                                      clear our bit in prev_mm's cpumask (release)
//!                                      switch_mm(prev_mm, next_mm)
//!     finish_task_switch(), prev had no mm and active_mm was a user mm:
//!                                      leave_lazy(old active_mm, Some(next_mm))
//! exit of a user task
//!   exit_mm()                          enter_lazy(mm): the dying task keeps its mm loaded
//!   (interrupts on: serve IPIs)
//!   mmput(): mm_users -= 1 (AcqRel); at 0, __mmput():
//!                                      mm_users_zero(mm); exit_mmap(); mmdrop(mm)
//!   exit_mmap(), free_pgtables():      ipi_and_wait(mm's cpumask but us), then tear down
//! mmdrop(): mm_count -= 1 (AcqRel); at 0, __mmdrop():
//!                                      final_drop(mm); free the mm
//! shoot-lazy IPI, on a CPU whose active_mm is mm:
//!                                      switch_mm_irqs_off(mm -> init_mm) as above; lazy_shot(mm)
//! CPU down, sched_force_init_mm():     switch_mm_irqs_off(active_mm -> init_mm); leave_lazy(mm, None)
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
//! mm's cpumask *before* calling the scheme's `switch_mm` hook, because a
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

#[cfg(any(loom, lazymm_shuttle))]
fn main() {
    eprintln!(
        "the toy kernel runs real threads; build it without --cfg loom / --cfg lazymm_shuttle"
    );
}

#[cfg(not(any(loom, lazymm_shuttle)))]
fn main() {
    toy::main();
}

#[cfg(not(any(loom, lazymm_shuttle)))]
mod toy {
    use lazymm::cpu::{CpuId, CpuMask, CpuSet};
    use lazymm::lazy::cached::Cached;
    use lazymm::lazy::hazard::HazardLazy;
    use lazymm::lazy::loaded::LoadedMm;
    use lazymm::lazy::refcount::Refcount;
    use lazymm::lazy::shootdown::Shootdown;
    use lazymm::lazy::tagged::Tagged;
    use lazymm::lazy::{Kernel, LazyMm, MmHandle};
    use lazymm::platform::{CpuPin, CurrentCpu, IpiSync, LocalTlb};
    use std::cell::Cell;
    use std::collections::VecDeque;
    use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// Most CPUs the toy boots; the per-CPU schemes are sized for it.
    const NR_CPUS: usize = 16;

    /// Kernel threads per CPU (they never exit).
    const KTHREADS_PER_CPU: usize = 4;

    /// User threads a CPU runs at a time; the others wait in its backlog.
    const RUNNABLE_USER_THREADS: usize = 2;

    // ---------------------------------------------------------- the mm --

    /// The kernel's `mm_struct`: the fields the lifetime schemes care about.
    struct MmStruct {
        /// Real users: the threads of the process. At 0 the address space
        /// is torn down (`exit_mmap()`).
        mm_users: AtomicUsize,
        /// References to this struct: one for all users together, plus the
        /// scheme's own. At 0 the struct is freed.
        mm_count: AtomicUsize,
        /// `mm_cpumask()`: bit `c` set = CPU `c` may have this mm loaded.
        cpumask: AtomicU64,
        /// `exit_mmap()` ran.
        torn_down: AtomicBool,
        /// `__mmdrop()` freed it (the toy keeps the memory and checks this
        /// flag on every use instead).
        freed: AtomicBool,
    }

    /// The kernel's mm handle: an index into its table of `mm_struct`s.
    #[derive(Clone, Copy, PartialEq, Eq)]
    struct Mm(u32);

    impl Mm {
        fn index(self) -> usize {
            self.0 as usize
        }
    }

    impl MmHandle for Mm {
        fn to_word(self) -> usize {
            // Non-zero, bit 0 clear (a scheme may keep a tag there).
            (self.index() + 1) << 1
        }
        fn from_word(word: usize) -> Self {
            Mm(((word >> 1) - 1) as u32)
        }
    }

    impl std::fmt::Debug for Mm {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "mm{}", self.0)
        }
    }

    // -------------------------------------------------------- the CPUs --

    /// What a CPU runs.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Curr {
        /// This CPU's thread of the process that owns `mm` (one per
        /// process and CPU; threads are pinned).
        User(Mm),
        /// Kernel thread number `n` of this CPU.
        Kthread(usize),
        /// A task that ran `exit_mm()` and was not switched out yet.
        Dead,
    }

    impl Curr {
        /// `task->mm`.
        fn mm(self) -> Option<Mm> {
            match self {
                Curr::User(mm) => Some(mm),
                Curr::Kthread(_) | Curr::Dead => None,
            }
        }
    }

    /// A CPU's scheduler state. Its own thread (IPI handlers included)
    /// writes it; another CPU only reads `loaded_mm` in the free-time
    /// check. The mutex is never held across a call.
    #[derive(Clone, Copy, Debug)]
    struct CpuState {
        curr: Curr,
        /// `current->active_mm` (`None`: `init_mm`).
        active_mm: Option<Mm>,
        /// What the page-table base register points at (`None`: `init_mm`).
        loaded_mm: Option<Mm>,
    }

    /// What an IPI asks its target to run.
    #[derive(Clone, Copy, Debug)]
    enum Call {
        /// Nothing (`tlb_remove_table_smp_sync()`): taking the interrupt is
        /// the point ([`IpiSync`]).
        Sync,
        /// `do_shoot_lazy_tlb(mm)` ([`Kernel::shoot_lazies`]).
        ShootLazy(Mm),
    }

    /// A request in a CPU's mailbox.
    struct Ipi {
        from: CpuId,
        call: Call,
    }

    struct Cpu {
        state: Mutex<CpuState>,
        /// Pending IPIs (a kernel has per-CPU `call_single_data` instead).
        mailbox: Mutex<Vec<Ipi>>,
        /// Acknowledgements this CPU still waits for.
        acks_pending: AtomicUsize,
    }

    #[derive(Default)]
    struct Stats {
        switches: AtomicU64,
        exited: AtomicU64,
        /// Shoot-lazy IPIs sent to other CPUs.
        ipis: AtomicU64,
        /// Empty IPIs sent to other CPUs ([`IpiSync`]).
        sync_ipis: AtomicU64,
        /// Local TLB flushes ([`LocalTlb`]; the toy only counts them).
        tlb_flushes: AtomicU64,
        freed: AtomicU64,
    }

    thread_local! {
        /// The CPU this thread is: set once when a CPU thread starts, before
        /// it runs any kernel code, and never changed (`None` off the CPU
        /// threads). A real kernel reads the CPU number from its per-CPU area
        /// (`smp_processor_id()`) with preemption disabled; a toy CPU *is*
        /// its thread, so nothing it runs can migrate to another CPU.
        static THIS_CPU: Cell<Option<CpuId>> = const { Cell::new(None) };
    }

    // ------------------------------------------------------ the scheme --

    const SCHEMES: [&str; 6] = [
        "refcount",
        "shootdown",
        "tagged",
        "cached",
        "hazard",
        "loaded_mm",
    ];

    /// Boots the toy with the scheme named `name` and runs the workload:
    /// the kernel type is generic over its scheme (`ToyKernel<S>`), so a
    /// kernel that picks its scheme by a type parameter or a build-time
    /// option writes exactly this, one arm per scheme it supports.
    fn run_named(a: &Args, name: &str) -> Outcome {
        match name {
            "refcount" => run(a, Refcount::new()),
            "shootdown" => run(a, Shootdown::new()),
            "tagged" => run(a, Tagged::<NR_CPUS>::new()),
            "cached" => run(a, Cached::<NR_CPUS>::new()),
            "hazard" => run(a, HazardLazy::<NR_CPUS>::new()),
            "loaded_mm" => run(a, LoadedMm::<NR_CPUS>::new()),
            other => panic!("unknown scheme {other:?}: one of {SCHEMES:?} or all"),
        }
    }

    // ------------------------------------------------------ the kernel --

    /// The kernel, generic over its lazy-mm scheme `S`: `Kernel` for
    /// `ToyKernel<S>` needs no bound that mentions `ToyKernel` again.
    struct ToyKernel<S> {
        scheme: S,
        /// Every process's `mm_struct`, allocated at boot.
        mms: Vec<MmStruct>,
        cpus: Vec<Cpu>,
        /// CPUs that went down (the idle loop waits for all of them).
        cpus_down: AtomicUsize,
        stats: Stats,
    }

    impl<S: LazyMm> ToyKernel<S> {
        /// A kernel with `threads[p]` threads in process `p`, all CPUs idle
        /// on `init_mm`.
        fn boot(scheme: S, nr_cpus: usize, threads: &[usize]) -> Self {
            let mms = threads
                .iter()
                .map(|&n| MmStruct {
                    mm_users: AtomicUsize::new(n),
                    mm_count: AtomicUsize::new(1),
                    cpumask: AtomicU64::new(0),
                    torn_down: AtomicBool::new(false),
                    freed: AtomicBool::new(false),
                })
                .collect();
            let cpus = (0..nr_cpus)
                .map(|_| Cpu {
                    state: Mutex::new(CpuState {
                        curr: Curr::Kthread(0),
                        active_mm: None,
                        loaded_mm: None,
                    }),
                    mailbox: Mutex::new(Vec::new()),
                    acks_pending: AtomicUsize::new(0),
                })
                .collect();
            Self {
                scheme,
                mms,
                cpus,
                cpus_down: AtomicUsize::new(0),
                stats: Stats::default(),
            }
        }

        fn cpu(&self, cpu: CpuId) -> &Cpu {
            &self.cpus[cpu.index()]
        }

        fn state(&self, cpu: CpuId) -> CpuState {
            *self.cpu(cpu).state.lock().unwrap()
        }

        fn update(&self, cpu: CpuId, f: impl FnOnce(&mut CpuState)) {
            f(&mut self.cpu(cpu).state.lock().unwrap())
        }

        /// `cpu` uses `mm`: panics if it was freed.
        #[track_caller]
        fn use_mm(&self, cpu: CpuId, mm: Mm) -> &MmStruct {
            let m = &self.mms[mm.index()];
            if m.freed.load(Relaxed) {
                panic!("use-after-free of {mm:?}: {cpu} uses it after it was freed");
            }
            m
        }

        /// The hardware may walk the loaded page tables at any time.
        fn touch(&self, cpu: CpuId) {
            if let Some(mm) = self.state(cpu).loaded_mm {
                self.use_mm(cpu, mm);
            }
        }

        /// `context_switch()` to `next`, with `finish_task_switch()`.
        fn context_switch(&self, pin: &CpuPin<'_>, next: Curr) {
            let cpu = pin.cpu(); // what every hook of this switch is given
            let prev = self.state(cpu);
            if prev.curr == next {
                return; // picked the running task again
            }
            self.stats.switches.fetch_add(1, Relaxed);
            match next.mm() {
                None => {
                    // A kernel thread borrows the mm the CPU has.
                    self.update(cpu, |s| s.curr = next);
                    let Some(mm) = prev.active_mm else {
                        return; // on init_mm: nothing to track
                    };
                    if prev.curr.mm().is_some() {
                        // user -> kernel: enter_lazy_tlb(), mmgrab_lazy_tlb().
                        self.scheme.enter_lazy(self, cpu, mm);
                    } else {
                        // kernel -> kernel: the lazy use passes on.
                        self.scheme.transfer_lazy(self, cpu, mm);
                    }
                }
                Some(mm) => {
                    self.switch_mm(pin, Some(mm));
                    self.update(cpu, |s| {
                        s.curr = next;
                        s.active_mm = Some(mm);
                    });
                    // finish_task_switch(): kernel -> user ends the lazy use
                    // (mmdrop_lazy_tlb()); it may be an unlazy into the same mm.
                    if prev.curr.mm().is_none() {
                        if let Some(old) = prev.active_mm {
                            self.touch(cpu);
                            self.scheme.leave_lazy(self, cpu, old, Some(mm));
                        }
                    }
                }
            }
        }

        /// `switch_mm_irqs_off()`: load `next`'s page tables (`None`: init_mm's).
        fn switch_mm(&self, pin: &CpuPin<'_>, next: Option<Mm>) {
            let cpu = pin.cpu();
            let prev = self.state(cpu).loaded_mm;
            if prev == next {
                return;
            }
            let bit = 1u64 << cpu.index();
            self.scheme.switching_mm(self, cpu, prev, next);
            if let Some(n) = next {
                // Relaxed: our task of `next` holds mm_users and drops it only
                // later with a release RMW, so whoever sees mm_users == 0 sees
                // the bit.
                self.use_mm(cpu, n).cpumask.fetch_or(bit, Relaxed);
            }
            // load_new_mm_cr3(): from here the hardware walks `next`, with
            // none of the TLB entries this CPU had before.
            self.update(cpu, |s| s.loaded_mm = next);
            self.flush_local(pin, next);
            self.touch(cpu);
            if let Some(p) = prev {
                // Release: pairs with mm_cpumask()'s acquire; our last use of
                // `prev` happens before whoever reads the bit clear frees it.
                self.use_mm(cpu, p).cpumask.fetch_and(!bit, Release);
            }
            // Last: the scheme may drop its last reference to `prev` here.
            self.scheme.switch_mm(self, cpu, prev, next);
        }

        /// `do_exit()` of the running user task: `exit_mm()`, then `mmput()`.
        fn exit(&self, pin: &CpuPin<'_>) {
            let cpu = pin.cpu();
            let Curr::User(mm) = self.state(cpu).curr else {
                panic!("{cpu} exits without a user task");
            };
            // exit_mm(): mmgrab_lazy_tlb(); current->mm = NULL. The dead task
            // keeps the mm loaded, lazily, until the next switch.
            self.scheme.enter_lazy(self, cpu, mm);
            self.update(cpu, |s| s.curr = Curr::Dead);
            self.flush_call_queue(pin); // interrupts are on between the two
            self.touch(cpu);
            self.mmput(pin, mm);
        }

        fn mmput(&self, pin: &CpuPin<'_>, mm: Mm) {
            let cpu = pin.cpu();
            // Release: this thread's uses happen before the teardown;
            // acquire on the last one, so the teardown happens after all.
            if self.use_mm(cpu, mm).mm_users.fetch_sub(1, AcqRel) == 1 {
                // __mmput()
                self.scheme.mm_users_zero(self, cpu, mm);
                self.exit_mmap(pin, mm);
                self.stats.exited.fetch_add(1, Relaxed);
                self.mmdrop(cpu, mm); // the users' reference
            }
        }

        /// `exit_mmap()`: unmap everything and free the page tables. Before
        /// `free_pgtables()` gives a page-table page back, a kernel that does
        /// not free page tables by RCU waits out the lockless walkers
        /// (GUP-fast, which walks its own loaded `current->mm` with
        /// interrupts off) with an empty IPI, `tlb_remove_table_sync_one()`.
        /// Linux broadcasts it to every other CPU; the toy sends it to the
        /// other CPUs of the mm's cpumask, the ones that may have it loaded.
        fn exit_mmap(&self, pin: &CpuPin<'_>, mm: Mm) {
            let mut cpus = self.mm_cpumask(mm);
            cpus.remove(pin.cpu());
            if !cpus.is_empty() {
                self.ipi_and_wait(pin, &cpus);
            }
            self.use_mm(pin.cpu(), mm).torn_down.store(true, Relaxed);
        }

        /// `__mmdrop()`: `mm_count` reached 0.
        fn free_mm(&self, cpu: CpuId, mm: Mm) {
            self.scheme.final_drop(self, cpu, mm);
            let m = self.use_mm(cpu, mm);
            assert!(
                m.torn_down.load(Relaxed),
                "use-after-free of {mm:?}: freed on {cpu} while it still has users"
            );
            for c in 0..self.cpus.len() {
                let other = CpuId::new(c);
                if self.state(other).loaded_mm == Some(mm) {
                    panic!("use-after-free of {mm:?}: freed on {cpu} while {other} still has it loaded");
                }
            }
            if m.freed.swap(true, Relaxed) {
                panic!("double free of {mm:?} on {cpu}");
            }
            self.stats.freed.fetch_add(1, Relaxed);
        }

        /// `do_shoot_lazy_tlb()`: the shoot-lazy IPI handler.
        fn do_shoot_lazy_tlb(&self, pin: &CpuPin<'_>, mm: Mm) {
            let cpu = pin.cpu();
            let st = self.state(cpu);
            if st.active_mm != Some(mm) {
                return; // left it meanwhile
            }
            assert_ne!(
                st.curr.mm(),
                Some(mm),
                "shootdown of {mm:?} on {cpu}, which runs one of its threads"
            );
            self.switch_mm(pin, None);
            self.update(cpu, |s| s.active_mm = None);
            self.scheme.lazy_shot(self, cpu, mm);
        }

        /// `sched_force_init_mm()`: the CPU's last switch, to `init_mm`.
        fn cpu_down(&self, pin: &CpuPin<'_>) {
            let cpu = pin.cpu();
            let st = self.state(cpu);
            assert_eq!(st.curr.mm(), None, "{cpu} goes down running a user thread");
            self.switch_mm(pin, None);
            self.update(cpu, |s| s.active_mm = None);
            if let Some(mm) = st.active_mm {
                self.scheme.leave_lazy(self, cpu, mm, None);
            }
        }

        // ------------------------------------------------------ IPIs --

        /// `smp_call_function_many_cond(targets, call, wait = 1)`, the one
        /// IPI path of the toy: queues `call` in the mailbox of every CPU of
        /// `targets` but ours, runs it here if `targets` has us, and returns
        /// once every other target has run it and acknowledged, serving our
        /// own IPIs while we wait (two CPUs calling each other must not
        /// deadlock). Returns the number of IPIs sent.
        fn call_many(&self, pin: &CpuPin<'_>, targets: &impl CpuMask, call: Call) -> u64 {
            let cpu = pin.cpu();
            let me = self.cpu(cpu);
            assert_eq!(
                me.acks_pending.load(Relaxed),
                0,
                "nested IPI call on {cpu}: {call:?}"
            );
            let remote: Vec<CpuId> = targets.iter().filter(|&c| c != cpu).collect();
            me.acks_pending.store(remote.len(), Relaxed);
            for &t in &remote {
                // The mailbox lock publishes the request.
                self.cpu(t)
                    .mailbox
                    .lock()
                    .unwrap()
                    .push(Ipi { from: cpu, call });
            }
            if targets.contains(cpu) {
                self.run_call(pin, call); // the local call
            }
            // Acquire: pairs with each handler's release acknowledgement, so
            // what the handler did (a switch away from an mm) happens before
            // whatever we do next (free it).
            while me.acks_pending.load(Acquire) != 0 {
                self.flush_call_queue(pin);
                // cpu_relax(); the toy's CPUs may share host cores.
                std::thread::yield_now();
            }
            remote.len() as u64
        }

        /// The handler of an IPI (or the local call).
        fn run_call(&self, pin: &CpuPin<'_>, call: Call) {
            match call {
                Call::Sync => {}
                Call::ShootLazy(mm) => self.do_shoot_lazy_tlb(pin, mm),
            }
        }

        /// `flush_smp_call_function_queue()`: runs the requests pending in
        /// our mailbox and acknowledges each (the IPI interrupt handler).
        fn flush_call_queue(&self, pin: &CpuPin<'_>) {
            let mail = std::mem::take(&mut *self.cpu(pin.cpu()).mailbox.lock().unwrap());
            for ipi in mail {
                self.run_call(pin, ipi.call);
                // Release: the acknowledgement; what the handler did happens
                // before whatever the sender does next.
                self.cpu(ipi.from).acks_pending.fetch_sub(1, Release);
            }
        }

        /// A pin for `cpu`, which a scheme names as the CPU it calls from:
        /// `get_cpu()` again (pins nest), checked against the CPU we run on.
        #[track_caller]
        fn pin_as(&self, cpu: CpuId) -> CpuPin<'_> {
            let pin = self.pin();
            assert_eq!(pin.cpu(), cpu, "a call for {cpu} runs on {}", pin.cpu());
            pin
        }
    }

    // SAFETY: a CPU of the toy is one std thread, which sets `THIS_CPU` to
    // its own id before it runs any kernel code and never changes it; the
    // toy never runs a CPU's code on another thread (a task, an IPI handler
    // and every hook run on their CPU's thread), and it runs one kernel at a
    // time. So the id read here is the CPU the caller runs on, and the
    // caller cannot migrate while the pin lives. Off a CPU thread (no id),
    // `pin` panics instead of naming a CPU.
    unsafe impl<S: LazyMm> CurrentCpu for ToyKernel<S> {
        fn pin(&self) -> CpuPin<'_> {
            // get_cpu(): a kernel disables preemption and reads
            // smp_processor_id() from its per-CPU area.
            let cpu = THIS_CPU
                .with(Cell::get)
                .expect("CurrentCpu::pin off a CPU thread of the toy kernel");
            assert!(
                cpu.index() < self.cpus.len(),
                "{cpu} is not a CPU of this kernel"
            );
            // SAFETY: `cpu` is the CPU this thread is, for its whole life
            // (see the impl above): we run on it and cannot leave it.
            unsafe { CpuPin::new(cpu) }
        }
    }

    impl<S: LazyMm> IpiSync for ToyKernel<S> {
        fn ipi_and_wait(&self, pin: &CpuPin<'_>, targets: &impl CpuMask) {
            // smp_call_function_many(targets, tlb_remove_table_smp_sync,
            // NULL, wait = 1): an empty request through the same mailboxes as
            // the shoot-lazy IPI. Our own CPU is never sent one (and the
            // empty local call does nothing).
            let sent = self.call_many(pin, targets, Call::Sync);
            self.stats.sync_ipis.fetch_add(sent, Relaxed);
        }
    }

    /// The toy has no TLB: `flush_local` stands in for the hardware flush a
    /// kernel does when it loads another page-table base (the CR3 write of
    /// a CPU without ASIDs) and only counts it, after checking that the mm
    /// still exists (`None`: `init_mm`).
    impl<S: LazyMm> LocalTlb for ToyKernel<S> {
        type Mm = Option<Mm>;

        fn flush_local(&self, pin: &CpuPin<'_>, mm: Option<Mm>) {
            if let Some(mm) = mm {
                self.use_mm(pin.cpu(), mm);
            }
            self.stats.tlb_flushes.fetch_add(1, Relaxed);
        }
    }

    impl<S: LazyMm> Kernel for ToyKernel<S> {
        type Mm = Mm;
        /// The one CPU count: the schemes are `Tagged<NR_CPUS>` etc.; one
        /// sized for fewer CPUs fails to compile.
        const NR_CPUS: usize = NR_CPUS;
        /// One word: the toy has at most 64 CPUs.
        type CpuMask = CpuSet<1>;

        fn mmgrab(&self, cpu: CpuId, mm: Mm) {
            // atomic_inc(): the caller holds a reference, no ordering needed.
            let old = self.use_mm(cpu, mm).mm_count.fetch_add(1, Relaxed);
            assert!(
                old > 0,
                "use-after-free of {mm:?}: mmgrab on {cpu} at mm_count 0"
            );
        }

        fn mmdrop(&self, cpu: CpuId, mm: Mm) {
            // atomic_dec_and_test(): release, so that our uses happen before
            // the free; acquire on the last one, so the free happens after all.
            let old = self.use_mm(cpu, mm).mm_count.fetch_sub(1, AcqRel);
            assert!(old > 0, "mm_count of {mm:?} went negative");
            if old == 1 {
                self.free_mm(cpu, mm);
            }
        }

        fn mm_users(&self, mm: Mm) -> usize {
            // Acquire: pairs with mmput()'s release decrement.
            self.mms[mm.index()].mm_users.load(Acquire)
        }

        fn mm_cpumask(&self, mm: Mm) -> CpuSet<1> {
            // Acquire: pairs with the release clear in switch_mm().
            let bits = self.mms[mm.index()].cpumask.load(Acquire);
            (0..self.cpus.len())
                .filter(|c| bits & (1 << c) != 0)
                .map(CpuId::new)
                .collect()
        }

        fn shoot_lazies(&self, cpu: CpuId, cpus: &CpuSet<1>, mm: Mm) {
            // on_each_cpu_mask(cpus, do_shoot_lazy_tlb, mm, wait = 1).
            let pin = self.pin_as(cpu);
            let sent = self.call_many(&pin, cpus, Call::ShootLazy(mm));
            self.stats.ipis.fetch_add(sent, Relaxed);
        }

        fn serve_ipis(&self, cpu: CpuId) {
            self.flush_call_queue(&self.pin_as(cpu));
        }
    }

    // ------------------------------------------------- the scheduler --

    /// A runnable task and the time slices it has left.
    struct Task {
        curr: Curr,
        slices: u32,
    }

    /// A CPU's run queue: its kernel threads, at most
    /// `RUNNABLE_USER_THREADS` user threads, and the user threads that
    /// have not started yet.
    struct RunQueue {
        tasks: Vec<Task>,
        backlog: VecDeque<Task>,
        rng: u64,
    }

    impl RunQueue {
        /// The next task to run; `None` once every user thread exited
        /// (kernel threads alone do not keep the CPU up).
        fn pick_next(&mut self) -> Option<usize> {
            let users = |t: &Vec<Task>| t.iter().filter(|t| t.curr.mm().is_some()).count();
            while users(&self.tasks) < RUNNABLE_USER_THREADS {
                match self.backlog.pop_front() {
                    Some(t) => self.tasks.push(t),
                    None => break,
                }
            }
            if users(&self.tasks) == 0 {
                return None;
            }
            Some(random(&mut self.rng, self.tasks.len()))
        }
    }

    /// xorshift64: a number in `0..n`.
    fn random(state: &mut u64, n: usize) -> usize {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        (*state % n as u64) as usize
    }

    /// One CPU: run tasks until its user threads are gone, go down, idle.
    /// The CPU it is comes from `k.pin()` (the thread-local its start set),
    /// not from an argument.
    fn cpu_thread<S: LazyMm>(k: &ToyKernel<S>, mut rq: RunQueue) {
        while let Some(i) = rq.pick_next() {
            // schedule(): preemption off. The pin lives across every hook
            // call of this switch, which all get its CPU; a toy task is
            // pinned to its CPU and runs its slice (and its exit) under it.
            let pin = k.pin();
            k.flush_call_queue(&pin); // schedule() runs with interrupts on
            k.context_switch(&pin, rq.tasks[i].curr);
            k.touch(pin.cpu()); // the task runs
            if rq.tasks[i].curr.mm().is_some() {
                rq.tasks[i].slices -= 1;
                if rq.tasks[i].slices == 0 {
                    k.exit(&pin);
                    rq.tasks.swap_remove(i);
                }
            }
        }
        let pin = k.pin();
        k.flush_call_queue(&pin);
        k.cpu_down(&pin);
        k.cpus_down.fetch_add(1, Release);
        // Idle: other CPUs may still IPI us until they are all down.
        while k.cpus_down.load(Acquire) < k.cpus.len() {
            k.flush_call_queue(&pin);
            std::thread::yield_now();
        }
    }

    // ------------------------------------------------------------- main --

    struct Args {
        schemes: Vec<&'static str>,
        cpus: usize,
        processes: usize,
        seed: u64,
    }

    fn args() -> Args {
        let mut a = Args {
            schemes: SCHEMES.to_vec(),
            cpus: 4,
            processes: 50_000,
            seed: 1,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut val = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
            let num = |name: &str, v: String| -> usize {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name} needs a number"))
            };
            match flag.as_str() {
                "--scheme" => {
                    let v = val("--scheme");
                    a.schemes = match SCHEMES.iter().find(|&&s| s == v) {
                        Some(&s) => vec![s],
                        None if v == "all" => SCHEMES.to_vec(),
                        None => panic!("unknown scheme {v:?}: one of {SCHEMES:?} or all"),
                    };
                }
                "--cpus" => a.cpus = num("--cpus", val("--cpus")),
                "--processes" => a.processes = num("--processes", val("--processes")),
                "--seed" => a.seed = num("--seed", val("--seed")) as u64,
                "-h" | "--help" => {
                    println!("kernel [--scheme NAME|all] [--cpus N] [--processes P] [--seed S]");
                    println!("schemes: {}", SCHEMES.join(", "));
                    std::process::exit(0);
                }
                other => panic!("unknown flag {other} (try --help)"),
            }
        }
        assert!(
            (1..=NR_CPUS).contains(&a.cpus),
            "--cpus must be 1..={NR_CPUS}"
        );
        a
    }

    /// The workload: which CPUs each process has a thread on, and each
    /// thread's time slices. Every scheme runs the same one.
    fn workload(a: &Args) -> (Vec<usize>, Vec<VecDeque<Task>>) {
        let mut rng = a.seed.max(1);
        let mut threads = Vec::with_capacity(a.processes);
        let mut backlogs: Vec<VecDeque<Task>> = (0..a.cpus).map(|_| VecDeque::new()).collect();
        for p in 0..a.processes {
            let home = random(&mut rng, a.cpus);
            let mut n = 0;
            for (c, backlog) in backlogs.iter_mut().enumerate() {
                if c == home || random(&mut rng, 2) == 0 {
                    backlog.push_back(Task {
                        curr: Curr::User(Mm(p as u32)),
                        slices: 1 + random(&mut rng, 3) as u32,
                    });
                    n += 1;
                }
            }
            threads.push(n);
        }
        (threads, backlogs)
    }

    struct Outcome {
        name: &'static str,
        switches: u64,
        exited: u64,
        ipis: u64,
        sync_ipis: u64,
        tlb_flushes: u64,
        freed: u64,
        time: Duration,
    }

    /// Boots a kernel with `scheme`, runs the workload on every CPU, takes
    /// the CPUs down, and checks that every mm was freed exactly once.
    fn run<S: LazyMm>(a: &Args, scheme: S) -> Outcome {
        let (threads, backlogs) = workload(a);
        let k = ToyKernel::boot(scheme, a.cpus, &threads);
        let start = Instant::now();
        let boot = std::sync::Barrier::new(a.cpus);
        std::thread::scope(|s| {
            for (c, backlog) in backlogs.into_iter().enumerate() {
                let (k, boot) = (&k, &boot);
                let rq = RunQueue {
                    tasks: (0..KTHREADS_PER_CPU)
                        .map(|n| Task {
                            curr: Curr::Kthread(n),
                            slices: u32::MAX,
                        })
                        .collect(),
                    backlog,
                    rng: a.seed.max(1) + c as u64,
                };
                s.spawn(move || {
                    // Bring-up: this thread is CPU `c` from now on (a kernel
                    // sets up the per-CPU area of the CPU it starts).
                    THIS_CPU.with(|id| id.set(Some(CpuId::new(c))));
                    boot.wait(); // all CPUs come up together
                    cpu_thread(k, rq)
                });
            }
        });
        let time = start.elapsed();
        // Hotplug teardown, on the boot CPU once the others are dead. This
        // thread is no toy CPU (`pin()` panics here), so `cpu_dead` must not
        // IPI or serve IPIs; no scheme's does.
        for c in 0..a.cpus {
            k.scheme.cpu_dead(&k, CpuId::new(c));
        }
        // No leak: every mm torn down and freed, no count left over.
        for (i, m) in k.mms.iter().enumerate() {
            let (users, count) = (m.mm_users.load(Relaxed), m.mm_count.load(Relaxed));
            assert!(
                m.freed.load(Relaxed) && users == 0 && count == 0,
                "leak: {:?} was never freed (mm_users {users}, mm_count {count})",
                Mm(i as u32)
            );
        }
        for c in 0..a.cpus {
            assert_eq!(
                k.state(CpuId::new(c)).loaded_mm,
                None,
                "cpu{c} is still on a user mm"
            );
        }
        let st = &k.stats;
        let out = Outcome {
            name: S::NAME,
            switches: st.switches.load(Relaxed),
            exited: st.exited.load(Relaxed),
            ipis: st.ipis.load(Relaxed),
            sync_ipis: st.sync_ipis.load(Relaxed),
            tlb_flushes: st.tlb_flushes.load(Relaxed),
            freed: st.freed.load(Relaxed),
            time,
        };
        assert_eq!(out.exited, a.processes as u64, "every process exits");
        assert_eq!(out.freed, a.processes as u64, "every mm is freed once");
        out
    }

    pub fn main() {
        let a = args();
        // A kernel panic stops the machine: without this, the other CPUs
        // would wait forever for the one that panicked.
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            report(info);
            std::process::exit(101);
        }));
        let (threads, _) = workload(&a);
        println!(
            "lazymm toy kernel: {} CPUs (one thread each), {} processes ({} user threads), {} kernel threads per CPU, seed {}\n(the same workload, so the same switches, for every scheme)\n",
            a.cpus,
            a.processes,
            threads.iter().sum::<usize>(),
            KTHREADS_PER_CPU,
            a.seed
        );
        println!(
            "{:<10} {:>9} {:>18} {:>10} {:>10} {:>12} {:>10} {:>9}",
            "scheme",
            "switches",
            "processes exited",
            "shoot IPIs",
            "sync IPIs",
            "TLB flushes",
            "mms freed",
            "time"
        );
        for scheme in &a.schemes {
            let o = run_named(&a, scheme);
            println!(
                "{:<10} {:>9} {:>18} {:>10} {:>10} {:>12} {:>10} {:>9.2?}",
                o.name, o.switches, o.exited, o.ipis, o.sync_ipis, o.tlb_flushes, o.freed, o.time
            );
        }
        println!(
            "\nshoot IPIs: Kernel::shoot_lazies; sync IPIs: IpiSync::ipi_and_wait from exit_mmap();\nTLB flushes: LocalTlb::flush_local at each page-table base change (the toy has no\nTLB: a count standing in for the hardware flush)"
        );
        println!("\nno leak: every mm was torn down and freed exactly once, every count is 0");
    }
}
