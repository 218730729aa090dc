//! Boot: QEMU's PVH entry (32-bit protected mode, paging off) to 64-bit
//! long mode, then `kmain`.
//!
//! QEMU's `-kernel` loads an ELF that carries a Xen `PHYS32_ENTRY` note and
//! jumps to that address with a flat 32-bit code segment, paging off, and
//! `%ebx` pointing at the `hvm_start_info` (kept for [`cmdline`]). The stub below
//! builds identity page tables for the first 4 GiB (2 MiB pages; the local
//! APIC sits at 0xFEE0_0000), enables PAE and `EFER.LME`, turns paging on,
//! loads a 64-bit GDT and far-jumps to long mode.

core::arch::global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .p2align 2
    .long 4
    .long 4
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long pvh_start

    .section .text.boot, "ax"
    .code32
    .global pvh_start
pvh_start:
    cli
    cld
    mov %ebx, boot_start_info
    mov $boot_stack_top, %esp

    /* 2048 PD entries: 4 GiB in 2 MiB pages (present, writable, PS). */
    mov $boot_pd, %edi
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, (%edi,%ecx,8)
    movl $0, 4(%edi,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jne 1b

    /* PDPT[0..4] -> the four PDs; PML4[0] -> PDPT. */
    mov $boot_pdpt, %edi
    mov $boot_pd, %eax
    or $0x3, %eax
    xor %ecx, %ecx
2:  mov %eax, (%edi,%ecx,8)
    movl $0, 4(%edi,%ecx,8)
    add $4096, %eax
    inc %ecx
    cmp $4, %ecx
    jne 2b
    mov $boot_pml4, %edi
    mov $boot_pdpt, %eax
    or $0x3, %eax
    mov %eax, (%edi)

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
    or $0x80000001, %eax    /* PG | PE */
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $long_mode_entry

    .code64
long_mode_entry:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs
    mov $boot_stack_top, %rsp
    call kmain
3:  hlt
    jmp 3b

    .section .rodata
    .p2align 3
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff    /* 0x10: data */
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .data
    .p2align 3
    .global boot_start_info
boot_start_info: .quad 0

    .section .bss
    .p2align 12
    .global boot_pml4
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4096 * 4
    .p2align 4
boot_stack: .skip 65536
boot_stack_top:
    "#,
    options(att_syntax)
);

extern "C" {
    /// The `hvm_start_info` address QEMU passed in `%ebx`.
    static boot_start_info: u64;
}

/// The kernel command line (QEMU's `-append`), or "" without one.
pub fn cmdline() -> &'static str {
    // SAFETY: written once by the boot stub before any Rust code runs.
    let info = unsafe { boot_start_info } as usize;
    if info == 0 {
        return "";
    }
    // SAFETY: PVH's `hvm_start_info` (identity-mapped, below 4 GiB):
    // magic at 0, `cmdline_paddr` (u64) at offset 24; QEMU writes a
    // NUL-terminated string there that lives as long as the machine.
    unsafe {
        if *(info as *const u32) != 0x336e_c578 {
            return "";
        }
        let p = *((info + 24) as *const u64) as *const core::ffi::c_char;
        if p.is_null() {
            return "";
        }
        core::ffi::CStr::from_ptr(p).to_str().unwrap_or("")
    }
}

/// The value of `key=value` on the command line, if any.
pub fn arg(key: &str) -> Option<&'static str> {
    cmdline()
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}
