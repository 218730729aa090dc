//! A small x86_64 kernel that boots on `qemu-system-x86_64` and uses lazymm
//! through its public API only, as an outside OS would.
//!
//! Layout: `boot.rs` (PVH entry to long mode) and `hw.rs` (serial, exit)
//! are hardware plumbing; `wiring.rs` is the lazymm part an OS developer
//! reads. See README.md for the boot route and the plan.
#![no_std]
#![no_main]

mod boot;
mod cpus;
#[cfg(feature = "bug-variants")]
mod hang;
mod hw;
mod idt;
mod ipi;
mod mm;
mod smp;
mod torture;
mod watchdog;
mod wiring;

use hw::Exit;

/// The 64-bit entry, called by `boot.rs` on the boot CPU.
#[no_mangle]
extern "C" fn kmain() -> ! {
    hw::serial_init();
    kprintln!("lazymm-qemu: boot CPU in long mode");
    smp::init_boot_cpu();
    let want = match boot::arg("cpus") {
        None => Some(wiring::NR_CPUS),
        Some(v) => v.parse::<usize>().ok(),
    };
    let Some(want) = want.filter(|n| (2..=wiring::NR_CPUS).contains(n)) else {
        kprintln!(
            "lazymm-qemu: cpus={}: the torture needs 2 to {} CPUs",
            boot::arg("cpus").unwrap_or(""),
            wiring::NR_CPUS
        );
        kprintln!("FAIL");
        hw::exit(Exit::Failure);
    };
    cpus::set_nr_cpus(want);
    let up = smp::start_aps(want);
    kprintln!(
        "lazymm-qemu: {up} of {want} CPUs up (the schemes sized for {})",
        wiring::NR_CPUS
    );
    let ok = up == want
        && torture::lazy::run_schemes()
        && torture::tlb::run()
        && torture::batched::run()
        && torture::walk::run();
    kprintln!("{}", if ok { "PASS" } else { "FAIL" });
    hw::exit(if ok { Exit::Success } else { Exit::Failure })
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    kprintln!("lazymm-qemu: PANIC: {info}");
    kprintln!("FAIL");
    hw::exit(Exit::Failure)
}
