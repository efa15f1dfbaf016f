//! The `spin` image's work: a CPU-bound loop of integer arithmetic with a
//! checksum, cut into progress steps.
//!
//! Arguments: `work=N` (optional, decimal or `0x` hex, at least 1): the
//! loop's iterations, [`DEFAULT_WORK`] if not given; `exits` (flag): make a
//! null hypercall every iteration, a guest that exits to the hypervisor all
//! the time (it must still be preempted).

use guest_lib::args::{Args, parse_u64};

/// Iterations when `work=` is not given.
pub const DEFAULT_WORK: u64 = 2_000_000;
/// Progress lines printed over the run (after each quarter).
pub const PROGRESS_STEPS: u64 = 4;
/// Starting value of the checksum.
pub const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// `work=` has a value that is not a positive number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadWork<'a>(pub &'a str);

impl core::fmt::Display for BadWork<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "`work={}` is not a positive number of iterations",
            self.0
        )
    }
}

/// The flag that makes every iteration exit to the hypervisor.
pub const EXITS_FLAG: &str = "exits";

/// Whether `args` asks for an exit every iteration.
pub fn exits(args: &str) -> bool {
    Args::new(args).flag(EXITS_FLAG)
}

/// The iterations asked for by `args`.
pub fn work(args: &str) -> Result<u64, BadWork<'_>> {
    match Args::new(args).value("work") {
        None => Ok(DEFAULT_WORK),
        Some(text) => parse_u64(text).filter(|&n| n > 0).ok_or(BadWork(text)),
    }
}

/// One iteration: an xorshift step of the running value, mixed with the
/// iteration number so no two runs of different lengths agree by chance.
#[inline]
pub fn step(x: u64, i: u64) -> u64 {
    let mut x = x ^ (x << 13);
    x ^= x >> 7;
    x ^= x << 17;
    x.wrapping_add(i)
}

/// Runs iterations `from..to` from the running value `x`.
#[inline]
pub fn run(mut x: u64, from: u64, to: u64) -> u64 {
    for i in from..to {
        x = step(x, i);
    }
    x
}

/// The iteration count at the end of progress step `n` (1..=
/// [`PROGRESS_STEPS`]) of `work` iterations.
pub fn step_end(work: u64, n: u64) -> u64 {
    // u128: `work * n` may not fit in 64 bits.
    (u128::from(work) * u128::from(n) / u128::from(PROGRESS_STEPS)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_flag() {
        assert!(exits("work=5 exits"));
        assert!(!exits("work=5"));
        assert!(!exits("exits=0"));
    }

    #[test]
    fn work_comes_from_the_arguments() {
        assert_eq!(work(""), Ok(DEFAULT_WORK));
        assert_eq!(work("work=5"), Ok(5));
        assert_eq!(work("work=0x10 x"), Ok(16));
        assert_eq!(work("work=3_000_000"), Ok(3_000_000));
        assert_eq!(work("work=0"), Err(BadWork("0")));
        assert_eq!(work("work=lots"), Err(BadWork("lots")));
        assert!(alloc::format!("{}", BadWork("0")).contains("work=0"));
    }

    #[test]
    fn progress_steps_cover_the_work_once() {
        assert_eq!(
            (1..=PROGRESS_STEPS)
                .map(|n| step_end(10, n))
                .collect::<alloc::vec::Vec<_>>(),
            [2, 5, 7, 10]
        );
        assert_eq!(step_end(u64::MAX, PROGRESS_STEPS), u64::MAX);
        assert_eq!(step_end(1, 1), 0);
    }

    #[test]
    fn the_checksum_does_not_depend_on_how_the_work_is_cut() {
        let whole = run(SEED, 0, 1000);
        let mut x = SEED;
        let mut done = 0;
        for n in 1..=PROGRESS_STEPS {
            let end = step_end(1000, n);
            x = run(x, done, end);
            done = end;
        }
        assert_eq!(x, whole);
        assert_ne!(whole, run(SEED, 0, 999));
        assert_ne!(step(0, 0), step(0, 1));
    }
}
