//! What one VM may print: a byte allowance that grows with the instructions it has run (a burst, then a rate), under one cap for its whole life, with everything over it counted as dropped.
//!
//! The UART is one slow device shared by every VM and the hypervisor's own
//! records (at 115200 baud a byte takes about 10,000 instructions of an
//! emulated 100 M-instruction/s CPU). Tying a VM's allowance to the
//! instructions *it* ran means VMs sharing a core share that core's rate,
//! and a VM that spams gets no more of the console than a quiet one that
//! runs as long.

/// Console bytes one VM may print over its whole life, restarts included.
pub const CONSOLE_CAP: u64 = 1 << 20;
/// Bytes a VM may print before the rate applies (start-up banners).
pub const CONSOLE_BURST: u64 = 4096;
/// Bytes a VM may print per [`RATE_PERIOD`] instructions it has run, after
/// the burst: with four cores this keeps all guests together under what a
/// 115200-baud UART carries.
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsoleQuota {
    /// Bytes printed.
    pub printed: u64,
    /// Bytes dropped.
    pub dropped: u64,
}

impl ConsoleQuota {
    /// Bytes a VM that has run `ran` instructions may have printed in all.
    pub fn allowance(ran: u64) -> u64 {
        let earned = CONSOLE_RATE.saturating_mul(ran / RATE_PERIOD);
        CONSOLE_BURST.saturating_add(earned).min(CONSOLE_CAP)
    }

    /// Decides on a line of `len` bytes from a VM that has run `ran`
    /// instructions, and counts it as printed or dropped.
    pub fn admit(&mut self, len: u64, ran: u64) -> Admit {
        if self
            .printed
            .checked_add(len)
            .is_some_and(|total| total <= Self::allowance(ran))
        {
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
    /// be queued after all: it counts as dropped.
    pub fn unprint(&mut self, len: u64) -> Admit {
        self.printed = self.printed.saturating_sub(len);
        self.drop(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate_then_cap() {
        let mut q = ConsoleQuota::default();
        assert_eq!(q.admit(CONSOLE_BURST, 0), Admit::Print);
        assert_eq!(q.admit(1, 0), Admit::FirstDrop);
        assert_eq!(q.admit(1, RATE_PERIOD - 1), Admit::Drop);
        assert_eq!(q.admit(CONSOLE_RATE, RATE_PERIOD), Admit::Print);
        assert_eq!(q.admit(1, RATE_PERIOD), Admit::Drop);
        assert_eq!(
            q,
            ConsoleQuota {
                printed: CONSOLE_BURST + CONSOLE_RATE,
                dropped: 3
            }
        );
        // However long it runs, it never prints more than the cap.
        let mut q = ConsoleQuota::default();
        let forever = u64::MAX;
        assert_eq!(q.admit(CONSOLE_CAP, forever), Admit::Print);
        assert_eq!(q.admit(1, forever), Admit::FirstDrop);
        assert_eq!(q.unprint(10), Admit::Drop);
        assert_eq!(q.printed, CONSOLE_CAP - 10);
        assert_eq!(q.dropped, 11);
    }

    proptest::proptest! {
        /// Every byte offered is either printed or dropped, and what is
        /// printed never exceeds the allowance at the time.
        #[test]
        fn every_byte_is_accounted_for(lines in proptest::collection::vec((0u64..5000, 0u64..50_000_000), 0..200)) {
            let mut q = ConsoleQuota::default();
            let (mut offered, mut ran) = (0u64, 0u64);
            for (len, more) in lines {
                ran += more;
                offered += len;
                q.admit(len, ran);
                proptest::prop_assert!(q.printed <= ConsoleQuota::allowance(ran));
            }
            proptest::prop_assert_eq!(q.printed + q.dropped, offered);
        }
    }
}
