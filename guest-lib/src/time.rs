//! Time from the time-stamp counter, in ticks.
//!
//! Ticks have no fixed length on hardware; inside the emulator one tick is
//! exactly one instruction, which makes measurements repeatable. Report them
//! as ticks (instructions), never converted to seconds.

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    crate::arch::rdtsc()
}

/// A point in time, as a TSC value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    ticks: u64,
}

impl Instant {
    /// Now.
    #[inline]
    pub fn now() -> Self {
        Instant { ticks: rdtsc() }
    }

    /// The instant at TSC value `ticks`.
    pub const fn from_ticks(ticks: u64) -> Self {
        Instant { ticks }
    }

    /// The TSC value of this instant.
    pub const fn ticks(self) -> u64 {
        self.ticks
    }

    /// Ticks from `earlier` to `self`; zero if `earlier` is in fact later.
    pub const fn ticks_since(self, earlier: Instant) -> u64 {
        self.ticks.saturating_sub(earlier.ticks)
    }

    /// Ticks since this instant.
    #[inline]
    pub fn elapsed_ticks(self) -> u64 {
        Instant::now().ticks_since(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_since_saturates() {
        let a = Instant::from_ticks(100);
        let b = Instant::from_ticks(350);
        assert_eq!(b.ticks_since(a), 250);
        assert_eq!(a.ticks_since(b), 0);
        assert_eq!(a.ticks_since(a), 0);
    }

    #[test]
    fn ordering_follows_ticks() {
        assert!(Instant::from_ticks(1) < Instant::from_ticks(2));
        assert_eq!(Instant::from_ticks(7).ticks(), 7);
    }
}
