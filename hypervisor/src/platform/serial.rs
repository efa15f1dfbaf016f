//! The hypervisor console: COM1 (16550 UART) fed from one queue of whole lines (hypervisor lines and records, and guest lines a VM's allowance let through), drained without waiting by whichever core has a moment; the `log` backend (`hv | ...` lines) and the report-record printer.

use super::instr::{inb, outb, rdtsc};
use crate::console::queue::{OutQueue, UART_FIFO};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use spin::Mutex;
use vmm_abi::report::{CONSOLE_SEPARATOR, HYPERVISOR_SOURCE, Record};

const COM1: u16 = 0x3f8;
// 16550 registers (offsets from the port base) and bits; COM2 uses them too.
pub(super) const REG_DATA: u16 = 0;
const REG_INTERRUPT_ENABLE: u16 = 1;
const REG_FIFO_CONTROL: u16 = 2;
const REG_LINE_CONTROL: u16 = 3;
const REG_MODEM_CONTROL: u16 = 4;
pub(super) const REG_LINE_STATUS: u16 = 5;
const LINE_CONTROL_DLAB: u8 = 0x80;
const LINE_CONTROL_8N1: u8 = 0x03;
const FIFO_ENABLE_CLEAR: u8 = 0xc7;
const MODEM_DTR_RTS_OUT2: u8 = 0x0b;
pub(super) const LINE_STATUS_DATA_READY: u8 = 0x01;
pub(super) const LINE_STATUS_THR_EMPTY: u8 = 0x20;
const LINE_STATUS_TRANSMITTER_EMPTY: u8 = 0x40;
/// Divisor for 115200 baud.
const DIVISOR_115200: u8 = 1;

/// COM1 itself: a byte goes out only when the transmitter has room.
struct Uart;

impl Uart {
    /// Whether the transmit holding register (and with the FIFO on, the
    /// whole transmit FIFO) is empty.
    fn ready() -> bool {
        // SAFETY: COM1 belongs to the hypervisor (guests are denied all
        // ports); reading LSR has no side effect on transmission.
        unsafe { inb(COM1 + REG_LINE_STATUS) & LINE_STATUS_THR_EMPTY != 0 }
    }

    fn send(byte: u8) {
        // SAFETY: as above; the caller saw the transmitter ready.
        unsafe { outb(COM1 + REG_DATA, byte) }
    }

    /// Sends up to a FIFO-load from `q` if the transmitter is empty; never
    /// waits. Returns the bytes sent.
    fn send_ready(q: &mut OutQueue) -> usize {
        if !Self::ready() {
            return 0;
        }
        let mut sent = 0;
        while sent < UART_FIFO {
            let Some(b) = q.pop() else { break };
            Self::send(b);
            sent += 1;
        }
        sent
    }

    /// Waits for the transmitter, then sends one byte.
    fn send_one(byte: u8) {
        while !Self::ready() {
            core::hint::spin_loop();
        }
        Self::send(byte);
    }

    /// Waits for the transmitter, then sends a FIFO-load from `q`.
    fn send_waiting(q: &mut OutQueue) {
        while !Self::ready() {
            core::hint::spin_loop();
        }
        Self::send_ready(q);
    }
}

/// Console text waiting for the UART (see [`crate::console::queue`]).
static QUEUE: Mutex<OutQueue> = Mutex::new(OutQueue::new());
/// Bytes in [`QUEUE`], readable without its lock (a hint: updated under it).
static PENDING: AtomicUsize = AtomicUsize::new(0);
/// TSC before which [`pump`] does not ask the UART again.
static NEXT_TRY: AtomicU64 = AtomicU64::new(0);
/// Instructions a 115200-baud UART takes to send a 16-byte FIFO-load at
/// 100 M instructions per second (10 bits per byte): about 139,000.
const FIFO_TICKS: u64 = 120_000;
/// Instructions before asking again a UART that had no room.
const RETRY_TICKS: u64 = 10_000;
/// Attempts `drain` makes at the queue's lock before it gives up on it
/// (another core sends at most a FIFO-load while holding it).
const DRAIN_LOCK_TRIES: u32 = 10_000_000;

/// Writes hypervisor text into the queue, draining the UART when full.
struct QueueWriter<'a>(&'a mut OutQueue);

impl Write for QueueWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.push_text(s.as_bytes(), &mut Uart::send_waiting);
        Ok(())
    }
}

/// Runs `f` on the queue, then sends what the UART takes now.
fn with_queue(f: impl FnOnce(&mut OutQueue)) {
    let mut q = QUEUE.lock();
    f(&mut q);
    Uart::send_ready(&mut q);
    PENDING.store(q.len(), Ordering::Relaxed);
}

/// Programs COM1 for 115200 8N1 with its FIFOs on.
pub fn init() {
    init_port(COM1);
}

/// Sets up the 16550 at `base`: 115200 baud, 8N1, FIFOs on and cleared,
/// interrupts off (COM1 here, COM2 in `com2`).
pub(super) fn init_port(base: u16) {
    // SAFETY: the serial ports belong to the hypervisor (guests are denied
    // every port) and each is set up once, by the boot core, before anyone
    // else uses it; this is the standard 16550 set-up sequence.
    unsafe {
        outb(base + REG_INTERRUPT_ENABLE, 0);
        outb(base + REG_LINE_CONTROL, LINE_CONTROL_DLAB);
        outb(base + REG_DATA, DIVISOR_115200);
        outb(base + REG_INTERRUPT_ENABLE, 0);
        outb(base + REG_LINE_CONTROL, LINE_CONTROL_8N1);
        outb(base + REG_FIFO_CONTROL, FIFO_ENABLE_CLEAR);
        outb(base + REG_MODEM_CONTROL, MODEM_DTR_RTS_OUT2);
    }
}

/// Whether console text waits for the UART.
#[inline]
pub fn pending() -> bool {
    PENDING.load(Ordering::Relaxed) != 0
}

/// Whether console text waits and no core has fed the UART for a while
/// (a core running a lone VM then asks for timer exits to feed it).
#[inline]
pub fn needs_feeding() -> bool {
    pending() && rdtsc() > NEXT_TRY.load(Ordering::Relaxed).saturating_add(FIFO_TICKS)
}

/// Moves a FIFO-load of waiting text to the UART if it has room; never
/// waits (for the lock or the UART). Cores call it when they have a
/// moment: between slices, after exits, in idle loops. Once a FIFO-load
/// went out, the UART is not asked again until it can have sent it, so a
/// call in between costs a load and a clock read.
#[inline]
pub fn pump() {
    if !pending() || rdtsc() < NEXT_TRY.load(Ordering::Relaxed) {
        return;
    }
    if let Some(mut q) = QUEUE.try_lock() {
        let sent = Uart::send_ready(&mut q);
        PENDING.store(q.len(), Ordering::Relaxed);
        let wait = if sent == 0 { RETRY_TICKS } else { FIFO_TICKS };
        NEXT_TRY.store(rdtsc().saturating_add(wait), Ordering::Relaxed);
    }
}

/// Sends everything queued and waits until it has left the UART (so a
/// power-off right after cannot cut the last line short). If the queue's
/// lock cannot be had (a core failed while holding it: the fatal path
/// wrote straight to the UART instead), it only waits for the UART.
pub fn drain() {
    let mut tries = 0u32;
    let mut guard = QUEUE.try_lock();
    while guard.is_none() && tries < DRAIN_LOCK_TRIES {
        core::hint::spin_loop();
        tries += 1;
        guard = QUEUE.try_lock();
    }
    if let Some(mut q) = guard {
        while !q.is_empty() {
            Uart::send_waiting(&mut q);
        }
        PENDING.store(0, Ordering::Relaxed);
    }
    // SAFETY: COM1 belongs to the hypervisor; reading LSR has no side effect.
    while unsafe { inb(COM1 + REG_LINE_STATUS) } & LINE_STATUS_TRANSMITTER_EMPTY == 0 {}
}

/// Queues one hypervisor console line `source | text`.
pub fn line(source: &str, text: fmt::Arguments<'_>) {
    with_queue(|q| {
        let _ = writeln!(QueueWriter(q), "{source}{CONSOLE_SEPARATOR}{text}");
    });
}

/// Queues one guest console line `vm | text` if the console has room for
/// it without eating into the hypervisor's reserve; `false` if not (the
/// caller counts it as dropped).
pub fn guest_line(vm: &str, text: &str) -> bool {
    let mut queued = false;
    with_queue(|q| {
        queued = q.push_guest_line(&[vm.as_bytes(), CONSOLE_SEPARATOR.as_bytes(), text.as_bytes()]);
    });
    queued
}

/// Queues one report record.
pub fn record(r: &Record<'_>) {
    with_queue(|q| {
        let _ = writeln!(QueueWriter(q), "{r}");
    });
}

/// Prints a line and a record on the way down (a fatal error): takes the
/// console lock if it can (sending what waits first, then these), and
/// writes straight to the UART without it if it cannot (the core that
/// failed may hold it), so a fatal error is always reported.
pub fn emergency(text: &str, r: &Record<'_>) {
    /// Straight to the UART, a byte at a time (no queue: this may run on
    /// an exception stack while another core holds the queue).
    struct Direct;
    impl Write for Direct {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for b in s.bytes() {
                if b == b'\n' {
                    Uart::send_one(b'\r');
                }
                Uart::send_one(b);
            }
            Ok(())
        }
    }
    match QUEUE.try_lock() {
        Some(mut q) => {
            let _ = writeln!(
                QueueWriter(&mut q),
                "{HYPERVISOR_SOURCE}{CONSOLE_SEPARATOR}ERROR: {text}"
            );
            let _ = writeln!(QueueWriter(&mut q), "{r}");
            while !q.is_empty() {
                Uart::send_waiting(&mut q);
            }
            PENDING.store(0, Ordering::Relaxed);
        }
        None => {
            let _ = writeln!(
                Direct,
                "{HYPERVISOR_SOURCE}{CONSOLE_SEPARATOR}ERROR: {text}"
            );
            let _ = writeln!(Direct, "{r}");
        }
    }
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
