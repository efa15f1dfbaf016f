//! What one VM may print: a token bucket filled by the instructions it runs (a burst of [`CONSOLE_BURST`] bytes at most, refilled at [`CONSOLE_RATE`] per million), under one cap for its whole life, with everything over it counted as dropped.
//!
//! The UART is one slow device shared by every VM and the hypervisor's own
//! records (at 115200 baud a byte takes about 10,000 instructions of an
//! emulated 100 M-instruction/s CPU). Tying a VM's allowance to the
//! instructions *it* ran means VMs sharing a core share that core's rate,
//! and a VM that spams gets no more of the console than a quiet one that
//! runs as long. The bucket never holds more than a burst, so a VM that was
//! silent for a long time cannot spend a hoard in one exit: the escaping
//! work one console exit does is bounded by a burst.

/// Console bytes one VM may print over its whole life, restarts included.
pub const CONSOLE_CAP: u64 = 1 << 20;
/// Most bytes a VM may print at once (the bucket's depth).
pub const CONSOLE_BURST: u64 = 4096;
/// Bytes the bucket gains per [`RATE_PERIOD`] instructions the VM runs:
/// with four cores this keeps all guests together under what a 115200-baud
/// UART carries.
pub const CONSOLE_RATE: u64 = 24;
/// Instructions per rate period.
pub const RATE_PERIOD: u64 = 1_000_000;

/// What became of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Print it.
    Print,
    /// Drop it (counted); this is the VM's first drop, worth a warning.
    FirstDrop,
    /// Drop it (counted).
    Drop,
}

/// One VM's console account, kept across its restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsoleQuota {
    /// Bytes printed.
    pub printed: u64,
    /// Bytes dropped.
    pub dropped: u64,
    /// Bytes it may print now.
    tokens: u64,
    /// Instructions run up to the last whole period credited.
    credited: u64,
}

impl Default for ConsoleQuota {
    fn default() -> Self {
        ConsoleQuota {
            printed: 0,
            dropped: 0,
            tokens: CONSOLE_BURST,
            credited: 0,
        }
    }
}

impl ConsoleQuota {
    /// Credits the whole periods run since the last credit (`ran` is the
    /// VM's instructions over its life).
    fn refill(&mut self, ran: u64) {
        let periods = ran.saturating_sub(self.credited) / RATE_PERIOD;
        if periods > 0 {
            self.credited = self
                .credited
                .saturating_add(periods.saturating_mul(RATE_PERIOD));
            self.tokens = self
                .tokens
                .saturating_add(periods.saturating_mul(CONSOLE_RATE))
                .min(CONSOLE_BURST);
        }
    }

    /// The most guest bytes that could be printed now, after `ran`
    /// instructions: a line is charged at least its raw bytes, so bytes
    /// beyond this can be dropped without the work of escaping them.
    pub fn printable(&mut self, ran: u64) -> u64 {
        self.refill(ran);
        self.tokens.min(CONSOLE_CAP.saturating_sub(self.printed))
    }

    /// Decides on a line that takes `len` bytes of console from a VM that
    /// has run `ran` instructions, and counts it as printed or dropped.
    pub fn admit(&mut self, len: u64, ran: u64) -> Admit {
        self.refill(ran);
        let under_cap = self
            .printed
            .checked_add(len)
            .is_some_and(|total| total <= CONSOLE_CAP);
        if len <= self.tokens && under_cap {
            self.tokens -= len;
            self.printed += len;
            Admit::Print
        } else {
            self.drop(len)
        }
    }

    /// Counts `len` bytes as dropped (over the allowance, or the console
    /// had no room for them).
    pub fn drop(&mut self, len: u64) -> Admit {
        let first = self.dropped == 0;
        self.dropped = self.dropped.saturating_add(len);
        if first { Admit::FirstDrop } else { Admit::Drop }
    }

    /// Takes back a line [`ConsoleQuota::admit`] let through that could not
    /// be queued after all: it counts as dropped (its tokens are spent).
    pub fn unprint(&mut self, len: u64) -> Admit {
        self.printed = self.printed.saturating_sub(len);
        self.drop(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mut q = ConsoleQuota::default();
        assert_eq!(q.admit(CONSOLE_BURST, 0), Admit::Print);
        assert_eq!(q.admit(1, 0), Admit::FirstDrop);
        assert_eq!(q.printable(RATE_PERIOD - 1), 0);
        assert_eq!(q.admit(1, RATE_PERIOD - 1), Admit::Drop);
        assert_eq!(q.printable(RATE_PERIOD), CONSOLE_RATE);
        assert_eq!(q.admit(CONSOLE_RATE, RATE_PERIOD), Admit::Print);
        assert_eq!(q.admit(1, RATE_PERIOD), Admit::Drop);
        assert_eq!((q.printed, q.dropped), (CONSOLE_BURST + CONSOLE_RATE, 3));
    }

    #[test]
    fn silence_earns_one_burst_at_most() {
        let mut q = ConsoleQuota::default();
        // A whole life of silence: still one burst, not a hoard.
        assert_eq!(q.admit(CONSOLE_BURST, u64::MAX / 2), Admit::Print);
        assert_eq!(q.admit(1, u64::MAX / 2), Admit::FirstDrop);
        assert_eq!(q.unprint(10), Admit::Drop);
        assert_eq!((q.printed, q.dropped), (CONSOLE_BURST - 10, 11));
    }

    #[test]
    fn the_cap_holds_for_a_whole_life() {
        let mut q = ConsoleQuota::default();
        let mut ran = 0;
        while q.printed + CONSOLE_BURST <= CONSOLE_CAP {
            ran += RATE_PERIOD * (CONSOLE_BURST / CONSOLE_RATE + 1);
            assert_eq!(q.admit(CONSOLE_BURST, ran), Admit::Print);
        }
        ran += RATE_PERIOD * (CONSOLE_BURST / CONSOLE_RATE + 1);
        assert!(q.printed <= CONSOLE_CAP);
        let left = CONSOLE_CAP - q.printed;
        assert_eq!(q.admit(left + 1, ran), Admit::FirstDrop);
    }

    proptest::proptest! {
        /// Every byte offered is either printed or dropped, and what is
        /// printed never exceeds one burst plus what the instructions run
        /// earned.
        #[test]
        fn every_byte_is_accounted_for(lines in proptest::collection::vec((0u64..5000, 0u64..50_000_000), 0..200)) {
            let mut q = ConsoleQuota::default();
            let (mut offered, mut ran) = (0u64, 0u64);
            for (len, more) in lines {
                ran += more;
                offered += len;
                q.admit(len, ran);
                proptest::prop_assert!(q.printed <= CONSOLE_BURST + CONSOLE_RATE * (ran / RATE_PERIOD));
                proptest::prop_assert!(q.printed <= CONSOLE_CAP);
            }
            proptest::prop_assert_eq!(q.printed + q.dropped, offered);
        }
    }
}
