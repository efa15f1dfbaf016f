//! The hypervisor console: COM1 (16550 UART), one lock for whole lines, the
//! `log` backend (`hv | ...` lines) and the report-record printer.

use super::instr::{inb, outb};
use core::fmt::{self, Write};
use spin::Mutex;
use vmm_abi::report::{CONSOLE_SEPARATOR, HYPERVISOR_SOURCE, Record};

const COM1: u16 = 0x3f8;
const REG_DATA: u16 = 0;
const REG_INTERRUPT_ENABLE: u16 = 1;
const REG_FIFO_CONTROL: u16 = 2;
const REG_LINE_CONTROL: u16 = 3;
const REG_MODEM_CONTROL: u16 = 4;
const REG_LINE_STATUS: u16 = 5;
const LINE_CONTROL_DLAB: u8 = 0x80;
const LINE_CONTROL_8N1: u8 = 0x03;
const FIFO_ENABLE_CLEAR: u8 = 0xc7;
const MODEM_DTR_RTS_OUT2: u8 = 0x0b;
const LINE_STATUS_THR_EMPTY: u8 = 0x20;
const LINE_STATUS_TRANSMITTER_EMPTY: u8 = 0x40;
/// Divisor for 115200 baud.
const DIVISOR_115200: u8 = 1;

struct Uart;

impl Uart {
    fn put(&mut self, byte: u8) {
        // SAFETY: COM1 belongs to the hypervisor (guests are denied all ports).
        unsafe {
            while inb(COM1 + REG_LINE_STATUS) & LINE_STATUS_THR_EMPTY == 0 {}
            outb(COM1 + REG_DATA, byte);
        }
    }
}

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}

static UART: Mutex<Uart> = Mutex::new(Uart);

/// Programs COM1 for 115200 8N1.
pub fn init() {
    // SAFETY: COM1 belongs to the hypervisor; this is the standard 16550
    // set-up sequence.
    unsafe {
        outb(COM1 + REG_INTERRUPT_ENABLE, 0);
        outb(COM1 + REG_LINE_CONTROL, LINE_CONTROL_DLAB);
        outb(COM1 + REG_DATA, DIVISOR_115200);
        outb(COM1 + REG_INTERRUPT_ENABLE, 0);
        outb(COM1 + REG_LINE_CONTROL, LINE_CONTROL_8N1);
        outb(COM1 + REG_FIFO_CONTROL, FIFO_ENABLE_CLEAR);
        outb(COM1 + REG_MODEM_CONTROL, MODEM_DTR_RTS_OUT2);
    }
}

/// Waits until every byte written so far has left the UART (so a power-off
/// right after cannot cut the last line short).
pub fn drain() {
    let _guard = UART.lock();
    // SAFETY: COM1 belongs to the hypervisor; reading LSR has no side effect.
    while unsafe { inb(COM1 + REG_LINE_STATUS) } & LINE_STATUS_TRANSMITTER_EMPTY == 0 {}
}

/// Prints one console line `source | text`.
pub fn line(source: &str, text: fmt::Arguments<'_>) {
    let mut u = UART.lock();
    let _ = writeln!(u, "{source}{CONSOLE_SEPARATOR}{text}");
}

/// Prints one report record.
pub fn record(r: &Record<'_>) {
    let mut u = UART.lock();
    let _ = writeln!(u, "{r}");
}

/// Prints a line and a record on the way down (a fatal error): takes the
/// console lock if it can, and writes without it if it cannot (the core
/// that failed may hold it), so a fatal error is always reported.
pub fn emergency(text: &str, r: &Record<'_>) {
    let mut unlocked = Uart;
    let mut guard = UART.try_lock();
    let out: &mut dyn Write = match guard.as_deref_mut() {
        Some(u) => u,
        None => &mut unlocked,
    };
    let _ = writeln!(out, "{HYPERVISOR_SOURCE}{CONSOLE_SEPARATOR}ERROR: {text}");
    let _ = writeln!(out, "{r}");
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, r: &log::Record<'_>) {
        match r.level() {
            log::Level::Error | log::Level::Warn => line(
                HYPERVISOR_SOURCE,
                format_args!("{}: {}", r.level(), r.args()),
            ),
            _ => line(HYPERVISOR_SOURCE, *r.args()),
        }
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Installs the serial console as the `log` backend.
pub fn init_logger() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}
