//! [`Idle`]: what a polling guest does when a poll found nothing: spin
//! (the caller re-checks its rings, no VM exit) for a while, then wait in
//! the hypervisor with [`wait_for_work`], and give up after a long stretch
//! without work so an image never hangs.

use crate::hypercall::wait_for_work;
use crate::time::rdtsc;

/// Spin-then-wait idling for a polling loop.
///
/// ```no_run
/// # fn poll() -> bool { true }
/// use guest_lib::net::Idle;
/// let mut idle = Idle::new(Idle::DEFAULT_SPIN_TICKS, 1_000_000_000);
/// loop {
///     if poll() {
///         idle.reset();
///     } else if !idle.idle() {
///         break; // no work for a billion ticks
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Idle {
    spin_ticks: u64,
    idle_timeout: u64,
    /// TSC when the current idle stretch began; `None` while working.
    since: Option<u64>,
}

/// What one [`Idle::idle`] call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Pause briefly and let the caller poll again.
    Spin,
    /// Wait in the hypervisor for at most this many ticks.
    Wait(u64),
    /// The idle timeout has passed.
    Expired,
}

impl Idle {
    /// A spin phase of a few thousand ticks: long enough to catch a frame
    /// already on its way, short next to the cost of a VM exit pair.
    pub const DEFAULT_SPIN_TICKS: u64 = 5_000;

    /// Spins for `spin_ticks` after work was last seen, then waits; gives up
    /// once `idle_timeout` ticks passed without work.
    pub const fn new(spin_ticks: u64, idle_timeout: u64) -> Self {
        Idle {
            spin_ticks,
            idle_timeout,
            since: None,
        }
    }

    /// Call when a poll found nothing. Spins (returns at once, after a pause
    /// hint, so the caller polls again) for the first `spin_ticks` of an
    /// idle stretch, then calls [`wait_for_work`] with the rest of the
    /// timeout. `false` once `idle_timeout` ticks passed with no work at
    /// all (until [`Idle::reset`]).
    pub fn idle(&mut self) -> bool {
        match self.step(rdtsc()) {
            Step::Spin => {
                core::hint::spin_loop();
                true
            }
            Step::Wait(ticks) => {
                wait_for_work(ticks);
                true
            }
            Step::Expired => false,
        }
    }

    /// Call when a poll found work: the next idle stretch starts afresh.
    pub fn reset(&mut self) {
        self.since = None;
    }

    /// Ticks the current idle stretch has lasted at TSC `now` (0 while
    /// working).
    pub fn idle_ticks(&self, now: u64) -> u64 {
        self.since.map_or(0, |since| now.saturating_sub(since))
    }

    /// The decision at TSC `now`.
    fn step(&mut self, now: u64) -> Step {
        let since = *self.since.get_or_insert(now);
        let idle_for = now.saturating_sub(since);
        if idle_for >= self.idle_timeout {
            Step::Expired
        } else if idle_for < self.spin_ticks {
            Step::Spin
        } else {
            Step::Wait(self.idle_timeout - idle_for)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spins_then_waits_then_expires() {
        let mut idle = Idle::new(100, 1000);
        assert_eq!(idle.step(5000), Step::Spin);
        assert_eq!(idle.step(5099), Step::Spin);
        assert_eq!(idle.step(5100), Step::Wait(900));
        assert_eq!(idle.step(5700), Step::Wait(300));
        assert_eq!(idle.idle_ticks(5700), 700);
        assert_eq!(idle.step(6000), Step::Expired);
        assert_eq!(idle.step(9000), Step::Expired, "stays expired");
    }

    #[test]
    fn reset_starts_a_new_stretch() {
        let mut idle = Idle::new(100, 1000);
        assert_eq!(idle.step(0), Step::Spin);
        assert_eq!(idle.step(500), Step::Wait(500));
        idle.reset();
        assert_eq!(idle.idle_ticks(700), 0);
        assert_eq!(idle.step(700), Step::Spin);
        assert_eq!(idle.step(1600), Step::Wait(100));
    }

    #[test]
    fn odd_settings_do_not_misbehave() {
        let mut never_spin = Idle::new(0, 10);
        assert_eq!(never_spin.step(1), Step::Wait(10));
        let mut no_patience = Idle::new(100, 0);
        assert_eq!(no_patience.step(1), Step::Expired);
        let mut clock_back = Idle::new(10, 100);
        assert_eq!(clock_back.step(50), Step::Spin);
        assert_eq!(
            clock_back.step(20),
            Step::Spin,
            "a TSC going back counts as no time"
        );
    }
}
