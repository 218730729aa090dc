//! Hardware plumbing: the serial console and QEMU's exit device.

use core::fmt::{self, Write};
use uart_16550::{Config, Uart16550};
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
    let _ = Console.write_fmt(args);
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
