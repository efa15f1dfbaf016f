//! COM2 (the second 16550 UART, port 0x2F8): the service run's control line, polled by the control core (no interrupts), one byte at a time in and a FIFO-load at a time out; COM1 stays the console.

use super::instr::{inb, outb};
use super::serial::{LINE_STATUS_DATA_READY, LINE_STATUS_THR_EMPTY, REG_DATA, REG_LINE_STATUS};
use crate::console::queue::UART_FIFO;

const COM2: u16 = 0x2f8;

/// Sets COM2 up like COM1: 115200 baud, 8N1, FIFOs on and cleared,
/// interrupts off (it is polled).
pub fn init() {
    super::serial::init_port(COM2);
}

fn line_status() -> u8 {
    // SAFETY: COM2 belongs to the hypervisor (guests are denied every port)
    // and only the control core touches it after `init`; reading LSR only
    // reports the UART's state.
    unsafe { inb(COM2 + REG_LINE_STATUS) }
}

/// The next received byte, if one waits.
pub fn read() -> Option<u8> {
    if line_status() & LINE_STATUS_DATA_READY == 0 {
        return None;
    }
    // SAFETY: as in `init`; a byte is waiting, so reading RBR takes it.
    Some(unsafe { inb(COM2 + REG_DATA) })
}

/// Sends up to a FIFO-load from `next` if the transmitter is empty; never
/// waits. Returns the bytes sent.
pub fn send_ready(mut next: impl FnMut() -> Option<u8>) -> usize {
    if line_status() & LINE_STATUS_THR_EMPTY == 0 {
        return 0;
    }
    let mut sent = 0;
    while sent < UART_FIFO {
        let Some(b) = next() else { break };
        // SAFETY: as in `init`; the transmit FIFO was empty, so a
        // FIFO-load fits.
        unsafe { outb(COM2 + REG_DATA, b) };
        sent += 1;
    }
    sent
}
