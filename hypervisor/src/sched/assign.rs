//! Core assignment: which core each VM runs on for its whole life (no migration); pinned VMs go to the least loaded of the cores they name, the others to the least loaded running core.

use super::MAX_CORES;

/// Assigns VMs `0..n` to running cores. `mask_of(i)` is VM `i`'s core mask
/// (0 = any core); `place(i, core)` receives its core, or `None` when none
/// of the cores it names is running. Pinned VMs are placed first, in order,
/// then the rest, so unpinned VMs fill around the pinned load. Ties go to
/// the lowest core number. Cost: O(n × cores).
pub fn assign(
    running: u64,
    n: usize,
    mask_of: impl Fn(usize) -> u64,
    mut place: impl FnMut(usize, Option<u32>),
) {
    let mut load = [0u64; MAX_CORES];
    let pick = |allowed: u64, load: &mut [u64; MAX_CORES]| {
        let best = (0..MAX_CORES)
            .filter(|&c| allowed & running & (1 << c) != 0)
            .min_by_key(|&c| (load[c], c))?;
        load[best] += 1;
        Some(best as u32)
    };
    for pinned_pass in [true, false] {
        for i in 0..n {
            let mask = mask_of(i);
            if (mask != 0) == pinned_pass {
                let allowed = if mask == 0 { u64::MAX } else { mask };
                place(i, pick(allowed, &mut load));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn run(running: u64, masks: &[u64]) -> Vec<Option<u32>> {
        let mut out = std::vec![None; masks.len()];
        assign(running, masks.len(), |i| masks[i], |i, c| out[i] = c);
        out
    }

    #[test]
    fn pinned_stay_pinned_and_others_balance() {
        // 4 cores; two VMs pinned to core 0, one to {1,2}, three unpinned.
        let got = run(0b1111, &[0b1, 0b1, 0b110, 0, 0, 0]);
        assert_eq!(got[0], Some(0));
        assert_eq!(got[1], Some(0));
        assert_eq!(got[2], Some(1));
        // Unpinned go to the least loaded: 2, 3, then 1 (tie with 2, 3 broken low).
        assert_eq!(&got[3..], &[Some(2), Some(3), Some(1)]);
    }

    #[test]
    fn cores_not_running_are_never_used() {
        let got = run(0b0101, &[0b10, 0b110, 0, 0]);
        assert_eq!(got[0], None, "core 1 is not running");
        assert_eq!(got[1], Some(2));
        assert_eq!(&got[2..], &[Some(0), Some(0)]);
    }

    proptest::proptest! {
        #[test]
        fn assignment_respects_masks_and_balances(
            running in 1u64..16,
            masks in proptest::collection::vec(0u64..16, 0..64),
        ) {
            let got = run(running, &masks);
            let mut load = [0usize; 4];
            for (m, c) in masks.iter().zip(&got) {
                let allowed = if *m == 0 { 0xf } else { *m };
                match c {
                    Some(c) => {
                        proptest::prop_assert!(allowed & running & (1 << c) != 0);
                        load[*c as usize] += 1;
                    }
                    None => proptest::prop_assert_eq!(allowed & running, 0),
                }
            }
            // With only unpinned VMs the load is even (within one).
            if masks.iter().all(|&m| m == 0) {
                let used: Vec<_> = (0..4).filter(|c| running & (1 << c) != 0).map(|c| load[c]).collect();
                let (lo, hi) = (used.iter().min().unwrap(), used.iter().max().unwrap());
                proptest::prop_assert!(hi - lo <= 1);
            }
        }
    }
}
