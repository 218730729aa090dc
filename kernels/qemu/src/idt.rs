//! The interrupt table: the IPI vector and the faults a bug would raise.
//!
//! Stable Rust has no `extern "x86-interrupt"`, so each entry is a small
//! assembly stub: the IPI stub saves the caller-saved registers, calls
//! `ipi::handle` (by its symbol, `ipi_handle`) and returns with `iretq`; a fault stub reports
//! its vector (and CR2 for a page fault) and fails the run. One table, built
//! by the boot CPU and loaded by every CPU (as Linux's `idt_table`).

use crate::hw::{self, Exit, IPI_VECTOR};
use crate::kprintln;
use spin::Once;
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::VirtAddr;

core::arch::global_asm!(
    r#"
    .section .text
    .global ipi_entry
ipi_entry:
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    cld
    call ipi_handle
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    iretq

    .macro fault_stub name, vector
    .global \name
\name:
    mov $\vector, %edi
    mov %rsp, %rsi
    and $-16, %rsp
    call fault_report
    .endm
    fault_stub fault_ud, 6
    fault_stub fault_df, 8
    fault_stub fault_gp, 13
    fault_stub fault_pf, 14
    "#,
    options(att_syntax)
);

extern "C" {
    fn ipi_entry();
    fn fault_ud();
    fn fault_df();
    fn fault_gp();
    fn fault_pf();
}

/// A fault: print what and where, fail the run.
#[no_mangle]
extern "C" fn fault_report(vector: u64, frame: *const u64) -> ! {
    let cr2 = x86_64::registers::control::Cr2::read_raw();
    // SAFETY: `frame` is the stack pointer at the fault: for vectors with an
    // error code the code and then RIP, else RIP; both were pushed by the CPU.
    let rip = unsafe { *frame.add(if matches!(vector, 8 | 13 | 14) { 1 } else { 0 }) };
    kprintln!(
        "lazymm-qemu: FAULT vector {vector} at rip {rip:#x} (cr2 {cr2:#x}) on cpu{}",
        crate::cpus::this_cpu()
    );
    kprintln!("FAIL");
    hw::exit(Exit::Failure)
}

static IDT: Once<InterruptDescriptorTable> = Once::new();

fn build() -> InterruptDescriptorTable {
    let mut idt = InterruptDescriptorTable::new();
    let addr = |f: unsafe extern "C" fn()| VirtAddr::new(f as usize as u64);
    // SAFETY: each stub is a valid handler for its vector: the IPI stub
    // preserves every register the interrupted code may hold and returns
    // with iretq; a fault stub never returns.
    unsafe {
        idt[IPI_VECTOR].set_handler_addr(addr(ipi_entry));
        idt.invalid_opcode.set_handler_addr(addr(fault_ud));
        idt.double_fault.set_handler_addr(addr(fault_df));
        idt.general_protection_fault
            .set_handler_addr(addr(fault_gp));
        idt.page_fault.set_handler_addr(addr(fault_pf));
    }
    idt
}

/// Loads the table on the running CPU (built on first use).
pub fn load() {
    IDT.call_once(build).load();
}
