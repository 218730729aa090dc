//! Application processors: INIT-SIPI-SIPI, a real-mode trampoline to long
//! mode, one stack per CPU, each CPU's local APIC.
//!
//! The trampoline is assembled into the kernel image and copied to
//! [`TRAMPOLINE`] (below 1 MiB, where a SIPI can start a CPU: vector
//! `0x08` = page 0x8000). It switches the AP to protected mode, loads the
//! boot CPU's page tables, enables long mode and jumps to `ap_long_mode` in
//! the kernel, which takes the next CPU index with `lock xadd`, points the
//! stack at that CPU's slot of `ap_stacks` and calls [`ap_main`]. The
//! trampoline's GDT has the boot GDT's layout (0x08: 64-bit code, 0x10:
//! data), so an IDT built on any CPU is valid on all of them.

use crate::cpus::{self, MAX_CPUS};
use crate::hw;
use crate::kprintln;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Where the trampoline runs (page 8: SIPI vector 0x08).
const TRAMPOLINE: usize = 0x8000;

core::arch::global_asm!(
    r#"
    .set TRAMP_BASE, 0x8000
    .section .text.trampoline, "ax"
    .global ap_tramp_start
    .global ap_tramp_end
    .code16
ap_tramp_start:
    cli
    cld
    xor %ax, %ax
    mov %ax, %ds
    lgdtl (tramp_gdt_ptr - ap_tramp_start + TRAMP_BASE)
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x18, $(tramp_pm - ap_tramp_start + TRAMP_BASE)

    .code32
tramp_pm:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x20, %eax          /* PAE */
    mov %eax, %cr4
    mov $0xC0000080, %ecx   /* EFER */
    rdmsr
    or $0x100, %eax         /* LME */
    wrmsr
    mov %cr0, %eax
    or $0x80000000, %eax    /* PG */
    mov %eax, %cr0
    ljmp $0x08, $ap_long_mode

    .p2align 3
tramp_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code (as the boot GDT) */
    .quad 0x00cf92000000ffff    /* 0x10: data */
    .quad 0x00cf9a000000ffff    /* 0x18: 32-bit code, trampoline only */
tramp_gdt_end:
tramp_gdt_ptr:
    .word tramp_gdt_end - tramp_gdt - 1
    .long tramp_gdt - ap_tramp_start + TRAMP_BASE
ap_tramp_end:

    .section .text
    .code64
ap_long_mode:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $1, %eax
    lock xadd %eax, ap_next_index(%rip)
    cmp ${max}, %eax
    jae 2f
    mov %eax, %edi
    mov %rax, %rcx
    add $1, %rcx
    shl $16, %rcx
    lea ap_stacks(%rip), %rsp
    add %rcx, %rsp
    call ap_main
2:  cli
    hlt
    jmp 2b

    .section .data
    .p2align 2
ap_next_index: .long 1

    .section .bss
    .p2align 12
ap_stacks: .skip 65536 * {max}
    "#,
    max = const MAX_CPUS,
    options(att_syntax)
);

extern "C" {
    static ap_tramp_start: u8;
    static ap_tramp_end: u8;
}

/// CPUs that reached [`ap_main`] (the boot CPU counts itself).
static ONLINE: AtomicUsize = AtomicUsize::new(1);

/// The task the APs run next (a `fn(usize)` as a word), its generation,
/// and how many APs finished the current one.
static TASK: AtomicUsize = AtomicUsize::new(0);
static TASK_GEN: AtomicUsize = AtomicUsize::new(0);
static TASK_DONE: AtomicUsize = AtomicUsize::new(0);

/// Starts `task(index)` on every AP (`1..cpus`) and returns at once; the
/// APs halt between tasks, so an empty IPI wakes them.
pub fn start_on_aps(cpus: usize, task: fn(usize)) {
    TASK_DONE.store(0, Ordering::Relaxed);
    TASK.store(task as usize, Ordering::Relaxed);
    // Release: pairs with the APs' acquire load of the generation; the
    // task word is published with it.
    TASK_GEN.fetch_add(1, Ordering::Release);
    let aps = ((1u64 << cpus) - 1) & !1;
    crate::ipi::call_many(0, aps, |_, _, _| {}, 0, 0);
}

/// Waits until every AP (`1..cpus`) finished the task [`start_on_aps`] gave.
pub fn wait_aps(cpus: usize) {
    // Acquire: pairs with each AP's release increment after its task.
    let mut wait = crate::watchdog::Wait::new(0, "the APs to finish their task (wait_aps)");
    while TASK_DONE.load(Ordering::Acquire) < cpus - 1 {
        wait.spin();
    }
}

/// An AP's life after bring-up: halt with interrupts on, run each new task.
fn ap_loop(index: usize) -> ! {
    let mut seen = 0;
    loop {
        // Interrupts off from the check to the `sti; hlt` pair, so the wake
        // IPI cannot slip in between and leave us halted on a new task.
        x86_64::instructions::interrupts::disable();
        // Acquire: pairs with `start_on_aps`'s release increment.
        let gen = TASK_GEN.load(Ordering::Acquire);
        if gen == seen {
            x86_64::instructions::interrupts::enable_and_hlt();
            continue;
        }
        seen = gen;
        // SAFETY: `start_on_aps` stored a `fn(usize)` before the generation.
        let task: fn(usize) =
            unsafe { core::mem::transmute::<usize, fn(usize)>(TASK.load(Ordering::Relaxed)) };
        // A task starts with interrupts on, as a kernel thread does.
        x86_64::instructions::interrupts::enable();
        task(index);
        // Release: the task's effects happen before `wait_aps` returns.
        TASK_DONE.fetch_add(1, Ordering::Release);
    }
}

/// Sets up the boot CPU as CPU 0 (its APIC and IDT).
pub fn init_boot_cpu() {
    hw::mask_legacy_pic();
    hw::lapic_init();
    crate::idt::load();
    cpus::register(0);
}

/// A busy wait of about `n` pause loops (QEMU's TCG needs no real delay
/// between INIT and SIPI; the loop stands in for the 10 ms / 200 µs).
fn spin(n: usize) {
    for _ in 0..n {
        core::hint::spin_loop();
    }
}

/// Starts every application processor and waits for `expected` CPUs in all
/// (the boot CPU included). Returns how many came up.
pub fn start_aps(expected: usize) -> usize {
    // SAFETY: the trampoline's bytes lie between the two symbols in the
    // kernel image; the page at TRAMPOLINE is conventional memory below
    // 1 MiB that nothing else uses.
    unsafe {
        let start = &raw const ap_tramp_start;
        let len = (&raw const ap_tramp_end as usize) - (start as usize);
        core::ptr::copy_nonoverlapping(start, TRAMPOLINE as *mut u8, len);
    }
    hw::lapic_with(|apic| {
        // SAFETY: INIT then two SIPIs to all-but-self is the MP start-up
        // sequence; the trampoline is in place.
        unsafe {
            apic.send_init_ipi_all();
            spin(100_000);
            apic.send_sipi_all((TRAMPOLINE >> 12) as u8);
            spin(10_000);
            apic.send_sipi_all((TRAMPOLINE >> 12) as u8);
        }
    });
    for _ in 0..2_000 {
        // Acquire: pairs with each AP's release increment.
        if ONLINE.load(Ordering::Acquire) >= expected {
            break;
        }
        spin(100_000);
    }
    ONLINE.load(Ordering::Acquire)
}

/// The 64-bit entry of an application processor, on its own stack.
#[no_mangle]
extern "C" fn ap_main(index: usize) -> ! {
    hw::lapic_init();
    crate::idt::load();
    cpus::register(index);
    kprintln!(
        "lazymm-qemu: cpu{index} up (local APIC id {})",
        hw::apic_id()
    );
    // Release: the boot CPU's acquire load sees this CPU's setup.
    ONLINE.fetch_add(1, Ordering::Release);
    ap_loop(index)
}
