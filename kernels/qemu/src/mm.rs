//! Address spaces in hardware: a pool of page-table pages, one PML4 per
//! process sharing the kernel half, CR3 loads, and the process's memory.
//!
//! Every process slot has five 4 KiB pages: PML4, PDPT, PD, PT and one data
//! frame. PML4[0] is the boot CPU's entry (the identity map of the first
//! 4 GiB, where the kernel lives: the shared kernel half); PML4[1] maps the
//! process's data frame at [`USER_VA`]. The kernel's own address space
//! (`init_mm`) is the boot PML4. Freeing a slot writes [`POISON`] over its
//! data frame and clears its PTE: a CPU that still runs on that CR3 reads
//! the poison through a stale TLB entry, or faults walking the tables.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::PhysFrame;
use x86_64::PhysAddr;

/// Process slots (address spaces alive or lazily held at once).
pub const SLOTS: usize = 8;
/// Where each process's data frame is mapped (PML4 index 1).
pub const USER_VA: u64 = 1 << 39;
/// What a freed data frame holds.
pub const POISON: u64 = 0xdead_dead_dead_dead;

const PRESENT_WRITABLE: u64 = 0x3;

#[repr(C, align(4096))]
struct Page([AtomicU64; 512]);

#[allow(clippy::declare_interior_mutable_const)] // array initialisers
const ZERO: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const PAGE: Page = Page([ZERO; 512]);
#[allow(clippy::declare_interior_mutable_const)]
#[allow(clippy::large_const_arrays)] // an initialiser, used once
const SLOT: [Page; 5] = [PAGE; 5];

/// `[PML4, PDPT, PD, PT, data]` per slot (identity-mapped: virtual =
/// physical).
static POOL: [[Page; 5]; SLOTS] = [SLOT; SLOTS];

extern "C" {
    /// The boot page tables (`boot.rs`): the kernel's own address space.
    static boot_pml4: [u64; 512];
}

fn phys(p: &Page) -> u64 {
    p as *const Page as u64
}

/// The kernel's own PML4 (`init_mm`'s page tables).
pub fn kernel_pml4() -> u64 {
    &raw const boot_pml4 as u64
}

/// The PML4 of slot `s`.
pub fn pml4(s: usize) -> u64 {
    phys(&POOL[s][0])
}

/// Builds slot `s`'s page tables with its data frame full of `pattern`.
pub fn build(s: usize, pattern: u64) {
    let [l4, l3, l2, l1, data] = &POOL[s];
    for w in &data.0 {
        w.store(pattern, Relaxed);
    }
    for p in [l4, l3, l2, l1] {
        for e in &p.0 {
            e.store(0, Relaxed);
        }
    }
    // SAFETY: boot_pml4[0] is written once by the boot stub, before any of
    // this runs.
    l4.0[0].store(unsafe { boot_pml4[0] }, Relaxed);
    l4.0[1].store(phys(l3) | PRESENT_WRITABLE, Relaxed);
    l3.0[0].store(phys(l2) | PRESENT_WRITABLE, Relaxed);
    l2.0[0].store(phys(l1) | PRESENT_WRITABLE, Relaxed);
    l1.0[0].store(phys(data) | PRESENT_WRITABLE, Relaxed);
}

/// More data frames, for the TLB torture's remaps (it cycles through
/// them, so a stale translation points at a poisoned one until the cycle
/// comes back).
pub const FRAMES_N: usize = 4;
static FRAMES: [Page; FRAMES_N] = [PAGE; FRAMES_N];

/// Fills extra frame `f` with `v`.
pub fn fill_frame(f: usize, v: u64) {
    for w in &FRAMES[f].0 {
        w.store(v, Relaxed);
    }
}

/// Points slot `s`'s user page at extra frame `f` (the PTE write of an
/// mprotect/migration-style change; the caller flushes).
pub fn remap(s: usize, f: usize) {
    remap_page(s, 0, f);
}

/// Points slot `s`'s user page `page` (0 at [`USER_VA`], 1 the page after
/// it, under another page-table lock in the batched torture) at extra frame
/// `f`; the caller flushes.
pub fn remap_page(s: usize, page: usize, f: usize) {
    POOL[s][3].0[page].store(phys(&FRAMES[f]) | PRESENT_WRITABLE, Relaxed);
}

/// `invlpg` of the user page on this CPU.
pub fn invlpg_user() {
    x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(USER_VA));
}

/// `invlpg` of both user pages on this CPU.
pub fn invlpg_user_pages() {
    for page in 0..2 {
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(USER_VA + 4096 * page));
    }
}

/// Reads the first word of user page `page` through the loaded CR3.
pub fn read_user_page(page: usize) -> u64 {
    // SAFETY: called only with a process's CR3 loaded whose PT maps the
    // page (the batched torture maps both).
    unsafe { core::ptr::read_volatile((USER_VA + 4096 * page as u64) as *const u64) }
}

/// Frees slot `s`: poisons its data frame, unmaps it.
pub fn poison(s: usize) {
    for w in &POOL[s][4].0 {
        w.store(POISON, Relaxed);
    }
    POOL[s][3].0[0].store(0, Relaxed);
    POOL[s][3].0[1].store(0, Relaxed);
}

/// Loads `pml4` into CR3 (a full flush of the non-global TLB entries).
pub fn load_cr3(pml4: u64) {
    let frame = PhysFrame::from_start_address(PhysAddr::new(pml4)).expect("page-aligned PML4");
    // SAFETY: every PML4 this kernel loads maps the kernel half (PML4[0]
    // is the boot entry), so the running code and stack stay mapped.
    unsafe { Cr3::write(frame, Cr3Flags::empty()) };
}

/// The PML4 in CR3 now.
pub fn cr3() -> u64 {
    Cr3::read().0.start_address().as_u64()
}

/// Reads the first word of the process memory through the loaded CR3.
pub fn read_user() -> u64 {
    // SAFETY: called only with a process's CR3 loaded, which maps USER_VA
    // (a freed one faults, which the IDT reports as a failure).
    unsafe { core::ptr::read_volatile(USER_VA as *const u64) }
}
