//! The kernel side of the toy: its mm, CPUs, IPIs and the lazymm wiring
//! (`Kernel`, the platform traits, and the hook calls in `context_switch`,
//! `exit`, `mmput`, the shoot-lazy handler and CPU down) — the code a kernel
//! developer copies. The scheduler, workload and CLI are in `driver`.

use lazymm::cpu::{CpuId, CpuMask, CpuSet};
use lazymm::lazy::cached::Cached;
use lazymm::lazy::hazard::{HazardLazy, HazardLazyNoFence};
use lazymm::lazy::loaded::LoadedMm;
use lazymm::lazy::refcount::Refcount;
use lazymm::lazy::shootdown::Shootdown;
use lazymm::lazy::switch::{self, CpuMm, SwitchHook, SwitchMm};
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
    /// `current->mm` and `current->active_mm` (`None`: `init_mm`), which
    /// the library's switch sequence reads and writes.
    mm: CpuMm<Mm>,
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
                    mm: CpuMm::BOOT,
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

    /// `context_switch()` to `next`, with `finish_task_switch()`: the
    /// library's switch sequence ([`lazymm::lazy::switch`]).
    fn context_switch(&self, pin: &CpuPin<'_>, next: Curr) {
        let cpu = pin.cpu(); // what every hook of this switch is given
        if self.state(cpu).curr == next {
            return; // picked the running task again
        }
        self.stats.switches.fetch_add(1, Relaxed);
        self.update(cpu, |s| s.curr = next);
        switch::context_switch(&self.scheme, self, cpu, next.mm());
    }

    /// `do_exit()` of the running user task: `exit_mm()`, then `mmput()`.
    fn exit(&self, pin: &CpuPin<'_>) {
        let cpu = pin.cpu();
        assert!(
            matches!(self.state(cpu).curr, Curr::User(_)),
            "{cpu} exits without a user task"
        );
        // exit_mm(): mmgrab_lazy_tlb(); current->mm = NULL. The dead task
        // keeps the mm loaded, lazily, until the next switch.
        let mm = switch::exit_mm(&self.scheme, self, cpu);
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
                panic!(
                    "use-after-free of {mm:?}: freed on {cpu} while {other} still has it loaded"
                );
            }
        }
        if m.freed.swap(true, Relaxed) {
            panic!("double free of {mm:?} on {cpu}");
        }
        self.stats.freed.fetch_add(1, Relaxed);
    }

    /// `sched_force_init_mm()`: the CPU's last switch, to `init_mm`.
    fn cpu_down(&self, pin: &CpuPin<'_>) {
        switch::force_init_mm(&self.scheme, self, pin.cpu());
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
            Call::ShootLazy(mm) => {
                switch::do_shoot_lazy_tlb(&self.scheme, self, pin.cpu(), mm);
            }
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
        // Acquire: pairs with the release clear in load_mm().
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

mod driver;
pub use driver::main;

/// What the library's switch sequence reads and writes: the CPU's
/// [`CpuMm`] and its page-table base.
impl<S: LazyMm> SwitchMm for ToyKernel<S> {
    fn cpu_mm(&self, cpu: CpuId) -> CpuMm<Mm> {
        self.state(cpu).mm
    }

    fn set_cpu_mm(&self, cpu: CpuId, mm: CpuMm<Mm>) {
        self.update(cpu, |s| s.mm = mm);
    }

    fn loaded_mm(&self, cpu: CpuId) -> Option<Mm> {
        self.state(cpu).loaded_mm
    }

    /// `switch_mm_irqs_off()`'s load of `next`'s page tables (`None`: init_mm's).
    fn load_mm(&self, cpu: CpuId, prev: Option<Mm>, next: Option<Mm>) {
        let bit = 1u64 << cpu.index();
        if let Some(n) = next {
            // Relaxed: our task of `next` holds mm_users and drops it only
            // later with a release RMW, so whoever sees mm_users == 0 sees
            // the bit.
            self.use_mm(cpu, n).cpumask.fetch_or(bit, Relaxed);
        }
        // load_new_mm_cr3(): from here the hardware walks `next`, with
        // none of the TLB entries this CPU had before.
        self.update(cpu, |s| s.loaded_mm = next);
        self.flush_local(&self.pin(), next);
        self.touch(cpu);
        if let Some(p) = prev {
            // Release: pairs with mm_cpumask()'s acquire; our last use of
            // `prev` happens before whoever reads the bit clear frees it.
            self.use_mm(cpu, p).cpumask.fetch_and(!bit, Release);
        }
    }

    /// The hardware walks what the CPU has loaded up to the lazy drop.
    fn around_hook(&self, cpu: CpuId, hook: SwitchHook, _mm: Option<Mm>, f: impl FnOnce()) {
        if hook == SwitchHook::LeaveLazy {
            self.touch(cpu);
        }
        f()
    }
}
