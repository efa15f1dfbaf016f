//! Physical frame allocator: a bitmap over 4 KiB frames (one bit per frame,
//! set = free), filled from the firmware memory map minus what is in use.
//! Allocates runs of contiguous frames first-fit and frees them again, so a
//! stopped VM's memory is reused.
#![forbid(unsafe_code)]

use crate::multiboot::Region;

/// Bytes in a frame.
pub const FRAME_SIZE: u64 = 4096;

/// A frame bitmap over physical addresses `0 .. WORDS * 64 * FRAME_SIZE`.
pub struct FrameAllocator<const WORDS: usize> {
    free: [u64; WORDS],
    free_frames: u64,
    /// No frame below this one is free: searches start here, so filling
    /// memory from the bottom costs O(1) per allocation, not a scan over
    /// everything already handed out.
    first_free: u64,
}

impl<const WORDS: usize> Default for FrameAllocator<WORDS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const WORDS: usize> FrameAllocator<WORDS> {
    /// An allocator with no free frames.
    pub const fn new() -> Self {
        FrameAllocator {
            free: [0; WORDS],
            free_frames: 0,
            first_free: 0,
        }
    }

    /// Highest physical address (exclusive) this allocator can track.
    pub const fn limit() -> u64 {
        (WORDS as u64) * 64 * FRAME_SIZE
    }

    /// Free frames left.
    pub fn free_frames(&self) -> u64 {
        self.free_frames
    }

    fn frames(region: Region, inward: bool) -> (u64, u64) {
        let end = region.end.min(Self::limit());
        let (s, e) = if inward {
            (region.start.div_ceil(FRAME_SIZE), end / FRAME_SIZE)
        } else {
            (region.start / FRAME_SIZE, end.div_ceil(FRAME_SIZE))
        };
        (s, e.max(s))
    }

    /// Marks frames `start .. end` free or used, a word at a time.
    fn set_range(&mut self, start: u64, end: u64, free: bool) {
        let mut f = start;
        while f < end {
            let (w, bit) = ((f / 64) as usize, f % 64);
            let n = (64 - bit).min(end - f);
            let mask = if n == 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << bit
            };
            let before = u64::from(self.free[w].count_ones());
            if free {
                self.free[w] |= mask;
            } else {
                self.free[w] &= !mask;
            }
            let after = u64::from(self.free[w].count_ones());
            self.free_frames = self.free_frames + after - before;
            f += n;
        }
    }

    /// The first frame in `from .. limit` whose bit equals `free`, or
    /// `limit` (at most the end of the bitmap) if there is none. Looks at no
    /// word beyond the one holding `limit`.
    fn next(&self, from: u64, limit: u64, free: bool) -> u64 {
        let limit = limit.min(WORDS as u64 * 64);
        if from >= limit {
            return limit;
        }
        let word = |w: usize| if free { self.free[w] } else { !self.free[w] };
        let last = ((limit - 1) / 64) as usize;
        let mut w = (from / 64) as usize;
        let mut bits = word(w) & (u64::MAX << (from % 64));
        while bits == 0 {
            if w == last {
                return limit;
            }
            w += 1;
            bits = word(w);
        }
        (w as u64 * 64 + u64::from(bits.trailing_zeros())).min(limit)
    }

    /// Marks the whole frames inside `region` free.
    pub fn add(&mut self, region: Region) {
        let (s, e) = Self::frames(region, true);
        self.set_range(s, e, true);
        self.first_free = self.first_free.min(s);
    }

    /// Marks every frame touching `region` used.
    pub fn reserve(&mut self, region: Region) {
        let (s, e) = Self::frames(region, false);
        self.set_range(s, e, false);
    }

    /// Allocates `count` contiguous frames whose first frame number is a
    /// multiple of `align` frames; returns the physical address of the first.
    /// First fit, scanning the bitmap a word (64 frames) at a time.
    pub fn alloc(&mut self, count: u64, align: u64) -> Option<u64> {
        if count == 0 || align == 0 {
            return None;
        }
        let total = WORDS as u64 * 64;
        self.first_free = self.next(self.first_free, total, true);
        let first = self.first_free;
        let mut start = first;
        loop {
            start = self.next(start, total, true).next_multiple_of(align);
            let end = start.checked_add(count)?;
            if end > total {
                return None;
            }
            let used = self.next(start, end, false);
            if used >= end {
                self.set_range(start, end, false);
                if start == first {
                    self.first_free = end;
                }
                return Some(start * FRAME_SIZE);
            }
            start = used + 1;
        }
    }

    /// Returns `count` frames starting at `addr` to the free pool.
    pub fn free(&mut self, addr: u64, count: u64) {
        let first = addr / FRAME_SIZE;
        let end = first.saturating_add(count).min(WORDS as u64 * 64);
        self.set_range(first.min(end), end, true);
        self.first_free = self.first_free.min(first);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Small = FrameAllocator<4>; // 256 frames = 1 MiB

    fn region(start: u64, end: u64) -> Region {
        Region { start, end }
    }

    #[test]
    fn add_rounds_inward_reserve_outward() {
        let mut a = Small::new();
        a.add(region(0x800, 0x5800));
        assert_eq!(a.free_frames(), 4); // frames 1..5
        a.reserve(region(0x1fff, 0x2001));
        assert_eq!(a.free_frames(), 2); // frames 1 and 2 gone
        assert_eq!(a.alloc(2, 1), Some(0x3000));
        assert_eq!(a.alloc(1, 1), None);
    }

    #[test]
    fn contiguous_and_aligned() {
        let mut a = Small::new();
        a.add(region(0, Small::limit()));
        a.reserve(region(0x3000, 0x4000));
        assert_eq!(a.alloc(4, 1), Some(0x4000));
        assert_eq!(a.alloc(1, 16), Some(0));
        assert_eq!(a.alloc(1, 16), Some(0x10000));
        a.free(0x4000, 4);
        // Frames 1 and 2 are free but frame 3 is reserved: first fit is 4.
        assert_eq!(a.alloc(3, 1), Some(0x4000));
        assert_eq!(a.alloc(300, 1), None);
        assert_eq!(a.alloc(0, 1), None);
    }

    #[test]
    fn ignores_memory_above_limit() {
        let mut a = Small::new();
        a.add(region(Small::limit() - 0x1000, u64::MAX));
        assert_eq!(a.free_frames(), 1);
    }

    /// Naive first fit over one bool per frame: the reference model.
    fn model_alloc(free: &mut [bool], count: u64, align: u64) -> Option<u64> {
        let n = free.len() as u64;
        let mut s = 0;
        while s + count <= n {
            if (s..s + count).all(|f| free[f as usize]) {
                (s..s + count).for_each(|f| free[f as usize] = false);
                return Some(s * FRAME_SIZE);
            }
            s += align;
        }
        None
    }

    proptest! {
        #[test]
        fn matches_a_naive_first_fit(
            ops in proptest::collection::vec((1u64..80, 1u64..4, proptest::bool::ANY), 1..60),
            reserved in proptest::collection::vec(0u64..256, 0..20),
        ) {
            let mut a = Small::new();
            a.add(region(0, Small::limit()));
            let mut model = [true; 256];
            for f in reserved {
                a.reserve(region(f * FRAME_SIZE, f * FRAME_SIZE + 1));
                model[f as usize] = false;
            }
            let mut live: std::vec::Vec<(u64, u64)> = std::vec::Vec::new();
            for (count, align_log, free_one) in ops {
                if free_one && !live.is_empty() {
                    let (addr, n) = live.remove(0);
                    a.free(addr, n);
                    (addr / FRAME_SIZE..addr / FRAME_SIZE + n).for_each(|f| model[f as usize] = true);
                } else {
                    let align = 1 << (align_log - 1);
                    let got = a.alloc(count, align);
                    prop_assert_eq!(got, model_alloc(&mut model, count, align));
                    if let Some(addr) = got {
                        live.push((addr, count));
                    }
                }
                prop_assert_eq!(a.free_frames(), model.iter().filter(|&&f| f).count() as u64);
            }
        }

        #[test]
        fn allocations_never_overlap(sizes in proptest::collection::vec(1u64..20, 1..30)) {
            let mut a = Small::new();
            a.add(region(0, Small::limit()));
            let mut got: std::vec::Vec<(u64, u64)> = std::vec::Vec::new();
            for n in sizes {
                if let Some(addr) = a.alloc(n, 1) {
                    let end = addr + n * FRAME_SIZE;
                    for &(s, e) in &got {
                        prop_assert!(end <= s || addr >= e);
                    }
                    got.push((addr, end));
                }
            }
            let used: u64 = got.iter().map(|(s, e)| (e - s) / FRAME_SIZE).sum();
            prop_assert_eq!(a.free_frames(), 256 - used);
        }
    }
}
