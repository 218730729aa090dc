//! Hardware plumbing: the serial console, QEMU's exit device, the local
//! APIC.

use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::{Config, Uart16550};
use x2apic::lapic::{xapic_base, LocalApic, LocalApicBuilder};
use x86_64::instructions::port::Port;

/// COM1.
const COM1: u16 = 0x3F8;

/// The `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`):
/// writing `v` ends QEMU with status `(v << 1) | 1`.
const DEBUG_EXIT: u16 = 0xF4;

/// What the kernel tells `ci/qemu.sh`: 33 for success, 35 for failure.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Exit {
    Success = 0x10,
    Failure = 0x11,
}

/// Initialises COM1 (call once, on the boot CPU, before any print).
pub fn serial_init() {
    // SAFETY: COM1 is a 16550 UART on QEMU's PC machine; only this module
    // touches its ports.
    let mut uart = unsafe { Uart16550::new_port(COM1) }.expect("COM1");
    uart.init(Config::default()).expect("COM1 init");
}

/// One CPU prints at a time.
static CONSOLE: Mutex<()> = Mutex::new(());

struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // SAFETY: as in `serial_init`; a fresh handle per write keeps no
        // state (the UART is already initialised).
        let mut uart = unsafe { Uart16550::new_port(COM1) }.map_err(|_| fmt::Error)?;
        uart.send_bytes_exact(s.as_bytes());
        Ok(())
    }
}

/// Writes to the serial console.
pub fn print(args: fmt::Arguments<'_>) {
    let _guard = CONSOLE.lock();
    let _ = Console.write_fmt(args);
}

/// Vectors of the local APIC's own interrupts (the timer stays off).
const TIMER_VECTOR: usize = 0x30;
const ERROR_VECTOR: usize = 0x31;
const SPURIOUS_VECTOR: usize = 0xFF;

/// A handle to the running CPU's local APIC (xAPIC MMIO at the base
/// `IA32_APIC_BASE` names, identity-mapped; x2APIC MSRs where the CPU has
/// them). The handle is `!Send`: it reaches the APIC of the CPU it runs on.
fn lapic() -> LocalApic {
    LocalApicBuilder::new()
        .timer_vector(TIMER_VECTOR)
        .error_vector(ERROR_VECTOR)
        .spurious_vector(SPURIOUS_VECTOR)
        // SAFETY: reading IA32_APIC_BASE has no side effect.
        .set_xapic_base(unsafe { xapic_base() })
        .build()
        .expect("local APIC")
}

/// Masks every line of the legacy 8259 PICs (the firmware left the PIT's
/// IRQ 0 at vector 8, where it would look like a double fault): this
/// kernel takes interrupts from the local APIC only.
pub fn mask_legacy_pic() {
    // SAFETY: the 8259s' data ports; writing 0xFF masks all their lines.
    unsafe {
        Port::<u8>::new(0x21).write(0xFF);
        Port::<u8>::new(0xA1).write(0xFF);
    }
}

/// Enables this CPU's local APIC (its timer off). Once per CPU.
pub fn lapic_init() {
    let mut apic = lapic();
    // SAFETY: the APIC's registers are mapped (first 4 GiB identity) and
    // this CPU owns its APIC.
    unsafe {
        apic.enable();
        apic.disable_timer();
    }
}

/// Runs `f` with this CPU's local APIC (enabled by [`lapic_init`]).
pub fn lapic_with<R>(f: impl FnOnce(&mut LocalApic) -> R) -> R {
    f(&mut lapic())
}

/// This CPU's APIC id register as the ICR wants it for a destination
/// (xAPIC: the id in bits 24..32; x2APIC: the whole 32-bit id).
pub fn apic_raw_id() -> u32 {
    // SAFETY: a read of this CPU's own APIC id register.
    lapic_with(|a| unsafe { a.id() })
}

/// This CPU's local APIC id.
pub fn apic_id() -> u32 {
    let raw = apic_raw_id();
    // xAPIC keeps the id in bits 24..32 of the register; x2APIC in all 32.
    if raw > 0xFF {
        raw >> 24
    } else {
        raw
    }
}

/// Ends the QEMU run with `code`.
pub fn exit(code: Exit) -> ! {
    // SAFETY: the debug-exit device exists on the command line ci/qemu.sh
    // uses; on a machine without it the write is ignored and we halt.
    unsafe { Port::<u32>::new(DEBUG_EXIT).write(code as u32) };
    loop {
        x86_64::instructions::hlt();
    }
}

/// `print!` to the serial console.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => { $crate::hw::print(format_args!($($arg)*)) };
}

/// `println!` to the serial console.
#[macro_export]
macro_rules! kprintln {
    () => { $crate::kprint!("\n") };
    ($($arg:tt)*) => { $crate::hw::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// The vector of the kernel's IPI (`CALL_FUNCTION_VECTOR`).
pub const IPI_VECTOR: u8 = 0xF0;
