//! The console's output queue: whole lines go in under one lock and a UART drains them a FIFO-load at a time from wherever a core has a moment, so no exit handler ever waits for the UART.
//!
//! Guest lines may fill the queue only up to [`GUEST_RESERVE`] bytes short
//! of full; the rest is kept for the hypervisor's own lines and records,
//! which are never dropped (when even that is full, their writer drains
//! the UART synchronously).

use heapless::Deque;

/// Bytes of console text the queue holds.
pub const QUEUE_BYTES: usize = 16 * 1024;
/// Room kept free of guest lines, for the hypervisor's own.
pub const GUEST_RESERVE: usize = 4 * 1024;
/// Bytes a 16550A's transmit FIFO takes once it reports empty.
pub const UART_FIFO: usize = 16;

/// Pending console bytes, newlines already turned into CR LF.
pub struct OutQueue {
    bytes: Deque<u8, QUEUE_BYTES>,
}

impl Default for OutQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl OutQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        OutQueue {
            bytes: Deque::new(),
        }
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Bytes the queue can still take.
    pub fn free(&self) -> usize {
        QUEUE_BYTES - self.bytes.len()
    }

    /// Bytes `text` takes once queued (each LF becomes CR LF).
    pub fn cost(text: &[u8]) -> usize {
        text.len() + text.iter().filter(|&&b| b == b'\n').count()
    }

    /// Queues `parts` as one guest line (a newline is added) if it fits
    /// without eating into the hypervisor's reserve; `false` (and nothing
    /// queued) otherwise.
    pub fn push_guest_line(&mut self, parts: &[&[u8]]) -> bool {
        let need: usize = parts.iter().map(|p| Self::cost(p)).sum::<usize>() + Self::cost(b"\n");
        if need + GUEST_RESERVE > self.free() {
            return false;
        }
        for p in parts {
            self.push_text(p, &mut |_| {});
        }
        self.push_text(b"\n", &mut |_| {});
        true
    }

    /// Queues hypervisor text; whenever the queue is full, `make_room` is
    /// called to send bytes out (it must pop at least one).
    pub fn push_text(&mut self, text: &[u8], make_room: &mut impl FnMut(&mut Self)) {
        for &b in text {
            if b == b'\n' {
                self.push_byte(b'\r', make_room);
            }
            self.push_byte(b, make_room);
        }
    }

    fn push_byte(&mut self, b: u8, make_room: &mut impl FnMut(&mut Self)) {
        while self.bytes.is_full() {
            let before = self.bytes.len();
            make_room(self);
            if self.bytes.len() == before {
                // Nothing could be sent: drop the oldest byte rather than
                // spin forever (only a broken `make_room` gets here).
                self.bytes.pop_front();
            }
        }
        let _ = self.bytes.push_back(b);
    }

    /// Takes the next byte to send.
    pub fn pop(&mut self) -> Option<u8> {
        self.bytes.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut OutQueue) -> Vec<u8> {
        core::iter::from_fn(|| q.pop()).collect()
    }

    #[test]
    fn lines_go_out_whole_with_crlf() {
        let mut q = OutQueue::new();
        assert!(q.push_guest_line(&[b"web", b" | ", b"hi"]));
        q.push_text(b"@corral done vms=1\n", &mut |_| {});
        assert_eq!(drain(&mut q), b"web | hi\r\n@corral done vms=1\r\n");
    }

    #[test]
    fn guests_never_take_the_reserve_but_the_hypervisor_always_gets_through() {
        let mut q = OutQueue::new();
        let line = [b'x'; 100];
        let mut queued = 0;
        while q.push_guest_line(&[&line]) {
            queued += 1;
        }
        assert!(q.free() >= GUEST_RESERVE, "{} free", q.free());
        assert!(q.free() < GUEST_RESERVE + 102);
        assert_eq!(queued, (QUEUE_BYTES - GUEST_RESERVE) / 102);
        // Hypervisor text beyond the whole queue: the writer drains.
        let mut sent = Vec::new();
        let big = [b'h'; QUEUE_BYTES];
        q.push_text(&big, &mut |q| {
            sent.extend((0..UART_FIFO).filter_map(|_| q.pop()))
        });
        let rest = drain(&mut q);
        assert_eq!(sent.len() + rest.len(), queued * 102 + QUEUE_BYTES);
        assert!(rest.ends_with(b"hhh"));
    }

    proptest::proptest! {
        /// Guest lines are queued whole or not at all, and what comes out
        /// is exactly what went in, in order.
        #[test]
        fn lines_are_whole_and_in_order(lines in proptest::collection::vec(proptest::collection::vec(0x20u8..0x7f, 0..300), 0..200)) {
            let mut q = OutQueue::new();
            let mut want = Vec::new();
            for l in &lines {
                if q.push_guest_line(&[l]) {
                    want.extend_from_slice(l);
                    want.extend_from_slice(b"\r\n");
                }
                proptest::prop_assert!(q.free() >= GUEST_RESERVE);
            }
            proptest::prop_assert_eq!(drain(&mut q), want);
        }
    }
}
