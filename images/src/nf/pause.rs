//! A receive port that stops taking frames for a while (`pause_after=K pause=T`: after its K-th frame it leaves its receive ring alone for T ticks, then resumes), to show a link's stall policy on a receiver that goes quiet and comes back.

use super::function::FramePort;
use guest_lib::args::{Args, parse_u64};

/// `pause_after=K pause=T` from image arguments: `None` without them.
pub fn plan(args: &str) -> Result<Option<PausePlan>, &'static str> {
    let args = Args::new(args);
    match (args.value("pause_after"), args.value("pause")) {
        (None, None) => Ok(None),
        (Some(k), Some(t)) => match (parse_u64(k), parse_u64(t)) {
            (Some(after), Some(ticks)) if after > 0 => Ok(Some(PausePlan { after, ticks })),
            _ => Err("pause_after= (at least 1) and pause= must be numbers"),
        },
        _ => Err("pause_after= and pause= go together"),
    }
}

/// When to pause and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PausePlan {
    /// Frames to take before the pause.
    pub after: u64,
    /// Ticks the pause lasts.
    pub ticks: u64,
}

/// `port`, pausing once as `plan` says; `clock` gives the time in ticks.
pub struct Pausing<P, C> {
    /// The port.
    pub port: P,
    plan: Option<PausePlan>,
    clock: C,
    got: u64,
    until: Option<u64>,
    /// Frames taken after the pause ended.
    pub after_pause: u64,
}

impl<P, C: FnMut() -> u64> Pausing<P, C> {
    /// `port`, pausing per `plan` (or never).
    pub fn new(port: P, plan: Option<PausePlan>, clock: C) -> Self {
        Pausing {
            port,
            plan,
            clock,
            got: 0,
            until: None,
            after_pause: 0,
        }
    }

    /// Whether the pause is over (or there is none and never was).
    pub fn resumed(&self) -> bool {
        self.plan.is_none() && self.until.is_none()
    }
}

impl<P: FramePort, C: FnMut() -> u64> FramePort for Pausing<P, C> {
    type Error = P::Error;

    fn send(&mut self, frame: &[u8]) -> Result<bool, P::Error> {
        self.port.send(frame)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, P::Error> {
        if let Some(until) = self.until {
            if (self.clock)() < until {
                return Ok(None);
            }
            self.until = None;
        }
        let got = self.port.recv(buf)?;
        if got.is_some() {
            self.got += 1;
            if self.resumed() {
                self.after_pause += 1;
            }
            if let Some(plan) = self.plan.filter(|p| self.got == p.after) {
                self.until = Some((self.clock)().saturating_add(plan.ticks));
                self.plan = None;
            }
        }
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use core::cell::Cell;

    /// A port with `n` frames waiting.
    struct Frames(u32);

    impl FramePort for Frames {
        type Error = ();
        fn send(&mut self, _: &[u8]) -> Result<bool, ()> {
            Ok(true)
        }
        fn recv(&mut self, _: &mut [u8]) -> Result<Option<usize>, ()> {
            if self.0 == 0 {
                return Ok(None);
            }
            self.0 -= 1;
            Ok(Some(60))
        }
    }

    #[test]
    fn pauses_after_k_frames_for_t_ticks_then_takes_the_rest() {
        let now = Cell::new(0u64);
        let plan = PausePlan {
            after: 2,
            ticks: 100,
        };
        let mut p = Pausing::new(Frames(5), Some(plan), || now.get());
        let mut buf = [0u8; 64];
        let mut took = Vec::new();
        for t in [0, 1, 2, 50, 99, 102, 103, 104, 105] {
            now.set(t);
            took.push(p.recv(&mut buf).unwrap().is_some());
        }
        // Two frames at t=0,1; nothing until t=101; then the other three.
        assert_eq!(
            took,
            [true, true, false, false, false, true, true, true, false]
        );
        assert_eq!(p.after_pause, 3);
        assert!(p.resumed());
    }

    #[test]
    fn plans_from_arguments() {
        assert_eq!(plan("count=3"), Ok(None));
        assert_eq!(
            plan("pause_after=5 pause=0x100"),
            Ok(Some(PausePlan {
                after: 5,
                ticks: 0x100
            }))
        );
        assert!(plan("pause_after=5").is_err());
        assert!(plan("pause_after=0 pause=1").is_err());
        assert!(plan("pause_after=x pause=1").is_err());
    }

    #[test]
    fn without_a_plan_it_is_the_port() {
        let mut p = Pausing::new(Frames(2), None, || 0);
        let mut buf = [0u8; 64];
        assert_eq!(p.recv(&mut buf), Ok(Some(60)));
        assert_eq!(p.after_pause, 1);
    }
}
