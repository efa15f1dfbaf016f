//! Physical frame allocator: a bitmap over 4 KiB frames (one bit per frame,
//! set = free), filled from the firmware memory map minus what is in use.
//! Allocates runs of contiguous frames first-fit and frees them again, so a
//! stopped VM's memory is reused.

use crate::multiboot::Region;

/// Bytes in a frame.
pub const FRAME_SIZE: u64 = 4096;

/// A frame bitmap over physical addresses `0 .. WORDS * 64 * FRAME_SIZE`.
pub struct FrameAllocator<const WORDS: usize> {
    free: [u64; WORDS],
    free_frames: u64,
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

    fn set(&mut self, frame: u64, free: bool) {
        let (w, b) = ((frame / 64) as usize, frame % 64);
        let was = self.free[w] & (1 << b) != 0;
        if free && !was {
            self.free[w] |= 1 << b;
            self.free_frames += 1;
        } else if !free && was {
            self.free[w] &= !(1 << b);
            self.free_frames -= 1;
        }
    }

    fn is_free(&self, frame: u64) -> bool {
        self.free[(frame / 64) as usize] & (1 << (frame % 64)) != 0
    }

    /// Marks the whole frames inside `region` free.
    pub fn add(&mut self, region: Region) {
        let (s, e) = Self::frames(region, true);
        for f in s..e {
            self.set(f, true);
        }
    }

    /// Marks every frame touching `region` used.
    pub fn reserve(&mut self, region: Region) {
        let (s, e) = Self::frames(region, false);
        for f in s..e {
            self.set(f, false);
        }
    }

    /// Allocates `count` contiguous frames whose first frame number is a
    /// multiple of `align` frames; returns the physical address of the first.
    pub fn alloc(&mut self, count: u64, align: u64) -> Option<u64> {
        if count == 0 || align == 0 {
            return None;
        }
        let total = WORDS as u64 * 64;
        let mut start = 0;
        while start + count <= total {
            // Skip whole used words quickly.
            if self.free[(start / 64) as usize] == 0 {
                start = (start / 64 + 1) * 64;
                start = start.next_multiple_of(align);
                continue;
            }
            match (start..start + count).find(|&f| !self.is_free(f)) {
                None => {
                    for f in start..start + count {
                        self.set(f, false);
                    }
                    return Some(start * FRAME_SIZE);
                }
                Some(used) => start = (used + 1).next_multiple_of(align),
            }
        }
        None
    }

    /// Returns `count` frames starting at `addr` to the free pool.
    pub fn free(&mut self, addr: u64, count: u64) {
        let first = addr / FRAME_SIZE;
        for f in first..(first + count).min(WORDS as u64 * 64) {
            self.set(f, true);
        }
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

    proptest! {
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
