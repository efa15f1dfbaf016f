//! A bounds-checked view of one guest's memory: guest-physical ranges
//! backed by host memory, private (the hypervisor may write them) or shared
//! read-only with other VMs of the same image. Every guest-supplied address
//! and length goes through this type before use; a range must be covered
//! completely by regions, and may span several.
#![forbid(unsafe_code)]

use super::access::{Barrier, Gpa, GuestRam, GuestRead, OutOfBounds};

/// Most regions one view holds.
pub const MAX_REGIONS: usize = 16;

enum Backing<'a> {
    Private(&'a mut [u8]),
    Shared(&'a [u8]),
}

impl Backing<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Private(b) => b,
            Backing::Shared(b) => b,
        }
    }
}

struct Region<'a> {
    gpa: u64,
    backing: Backing<'a>,
}

impl Region<'_> {
    fn end(&self) -> u64 {
        self.gpa + self.backing.bytes().len() as u64
    }
}

/// One guest's memory.
pub struct GuestMemory<'a> {
    regions: [Option<Region<'a>>; MAX_REGIONS],
    count: usize,
    size: u64,
}

impl<'a> GuestMemory<'a> {
    /// A view with no regions, for a guest whose memory spans `0 .. size`.
    pub fn empty(size: u64) -> Self {
        GuestMemory {
            regions: [const { None }; MAX_REGIONS],
            count: 0,
            size,
        }
    }

    /// A view with one private region: `bytes` back `0 .. bytes.len()`.
    pub fn new(bytes: &'a mut [u8]) -> Self {
        let mut m = Self::empty(bytes.len() as u64);
        // One region into an empty view cannot fail.
        let _ = m.add_private(0, bytes);
        m
    }

    fn add(&mut self, gpa: u64, backing: Backing<'a>) -> Result<(), OutOfBounds> {
        let len = backing.bytes().len() as u64;
        let bad = OutOfBounds { gpa, len };
        let end = gpa.checked_add(len).ok_or(bad)?;
        if self.count == MAX_REGIONS || self.regions().any(|r| gpa < r.end() && r.gpa < end) {
            return Err(bad);
        }
        // Keep regions sorted by address.
        let at = self.regions().take_while(|r| r.gpa < gpa).count();
        self.regions[at..=self.count].rotate_right(1);
        self.regions[at] = Some(Region { gpa, backing });
        self.count += 1;
        Ok(())
    }

    /// Adds a region the hypervisor may write (the guest's own memory).
    pub fn add_private(&mut self, gpa: u64, bytes: &'a mut [u8]) -> Result<(), OutOfBounds> {
        self.add(gpa, Backing::Private(bytes))
    }

    /// Adds a region shared read-only with other VMs.
    pub fn add_shared(&mut self, gpa: u64, bytes: &'a [u8]) -> Result<(), OutOfBounds> {
        self.add(gpa, Backing::Shared(bytes))
    }

    fn regions(&self) -> impl Iterator<Item = &Region<'a>> {
        self.regions[..self.count].iter().flatten()
    }

    /// Size of the guest's physical address space (addresses at or above it
    /// are outside its memory).
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether the guest has no memory.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Calls `f` with the pieces of `gpa .. gpa + len` in order, after
    /// checking that regions cover the whole range (nothing is passed to `f`
    /// if they do not).
    pub fn for_each_chunk(
        &self,
        gpa: u64,
        len: u64,
        mut f: impl FnMut(&[u8]),
    ) -> Result<(), OutOfBounds> {
        let bad = OutOfBounds { gpa, len };
        let end = gpa.checked_add(len).ok_or(bad)?;
        if end > self.size {
            return Err(bad);
        }
        let mut at = gpa;
        for r in self.regions() {
            if at >= end {
                break;
            }
            if r.end() <= at {
                continue;
            }
            if r.gpa > at {
                return Err(bad);
            }
            at = r.end().min(end);
        }
        if at < end {
            return Err(bad);
        }
        for r in self.regions() {
            let (s, e) = (gpa.max(r.gpa), end.min(r.end()));
            if s < e {
                f(&r.backing.bytes()[(s - r.gpa) as usize..(e - r.gpa) as usize]);
            }
        }
        Ok(())
    }

    /// Copies `gpa .. gpa + out.len()` into `out`.
    pub fn read(&self, gpa: u64, out: &mut [u8]) -> Result<(), OutOfBounds> {
        let mut filled = 0;
        self.for_each_chunk(gpa, out.len() as u64, |c| {
            out[filled..filled + c.len()].copy_from_slice(c);
            filled += c.len();
        })
    }

    /// The private bytes at `gpa .. gpa + len`, which must lie in one
    /// private region.
    pub fn slice_mut(&mut self, gpa: u64, len: u64) -> Result<&mut [u8], OutOfBounds> {
        let bad = OutOfBounds { gpa, len };
        let end = gpa.checked_add(len).ok_or(bad)?;
        for r in self.regions[..self.count].iter_mut().flatten() {
            let r_end = r.end();
            if let Backing::Private(bytes) = &mut r.backing
                && r.gpa <= gpa
                && end <= r_end
            {
                return Ok(&mut bytes[(gpa - r.gpa) as usize..(end - r.gpa) as usize]);
            }
        }
        Err(bad)
    }

    /// Copies `data` to `gpa` (one private region).
    pub fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), OutOfBounds> {
        self.slice_mut(gpa, data.len() as u64)?
            .copy_from_slice(data);
        Ok(())
    }

    /// Writes a little-endian u64 at `gpa`.
    pub fn write_u64(&mut self, gpa: u64, value: u64) -> Result<(), OutOfBounds> {
        self.write(gpa, &value.to_le_bytes())
    }

    /// Zeroes `gpa .. gpa + len` (one private region).
    pub fn zero(&mut self, gpa: u64, len: u64) -> Result<(), OutOfBounds> {
        self.slice_mut(gpa, len)?.fill(0);
        Ok(())
    }
}

/// Exit handlers and tests read a `GuestMemory` through the trait family.
impl GuestRead for GuestMemory<'_> {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&self, gpa: Gpa, out: &mut [u8]) -> Result<(), OutOfBounds> {
        GuestMemory::read(self, gpa.0, out)
    }

    fn read_chunks(&self, gpa: Gpa, len: u64, f: impl FnMut(&[u8])) -> Result<(), OutOfBounds> {
        self.for_each_chunk(gpa.0, len, f)
    }
}

/// Device models run over a `GuestMemory` in tests and at load time.
impl GuestRam for GuestMemory<'_> {
    fn write(&mut self, gpa: Gpa, data: &[u8]) -> Result<(), OutOfBounds> {
        GuestMemory::write(self, gpa.0, data)
    }

    fn check_writable(&mut self, gpa: Gpa, len: u64) -> Result<(), OutOfBounds> {
        self.slice_mut(gpa.0, len).map(|_| ())
    }

    fn fence(&self, barrier: Barrier) {
        barrier.issue();
    }
}

/// Not a raw view: a ring over it takes the general paths only.
impl crate::mem::raw::RingMemory for GuestMemory<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn bounds_are_checked() {
        let mut backing = [0u8; 64];
        let mut m = GuestMemory::new(&mut backing);
        let mut buf = [0u8; 64];
        assert!(m.read(0, &mut buf).is_ok());
        assert!(m.read(64, &mut []).is_ok());
        assert!(m.read(60, &mut [0; 5]).is_err());
        assert!(m.read(65, &mut []).is_err());
        assert!(m.read(u64::MAX - 1, &mut [0; 4]).is_err());
        assert!(m.for_each_chunk(8, u64::MAX, |_| ()).is_err());
        m.write_u64(56, 0x1122_3344_5566_7788).unwrap();
        let mut one = [0u8; 1];
        m.read(56, &mut one).unwrap();
        assert_eq!(one, [0x88]);
        assert!(m.write_u64(57, 0).is_err());
        m.zero(56, 8).unwrap();
        m.read(56, &mut buf[..8]).unwrap();
        assert_eq!(buf[..8], [0; 8]);
    }

    #[test]
    fn ranges_span_regions_but_not_holes() {
        let mut low = [1u8; 16];
        let shared = [2u8; 16];
        let mut high = [3u8; 16];
        let mut m = GuestMemory::empty(80);
        m.add_private(32, &mut high).unwrap();
        m.add_private(0, &mut low).unwrap();
        m.add_shared(16, &shared).unwrap();
        let mut pieces = Vec::new();
        m.for_each_chunk(12, 24, |c| pieces.push(c.to_vec()))
            .unwrap();
        assert_eq!(pieces, [std::vec![1; 4], std::vec![2; 16], std::vec![3; 4]]);
        // 48..64 is a hole, 64..80 beyond every region.
        let mut called = false;
        assert!(m.for_each_chunk(40, 16, |_| called = true).is_err());
        assert!(!called, "nothing is passed on for a bad range");
        assert!(m.read(70, &mut [0; 2]).is_err());
        // Shared memory is readable but never writable by the hypervisor.
        assert!(m.write(16, &[9]).is_err());
        assert!(
            m.write(14, &[9; 4]).is_err(),
            "a write may not span regions"
        );
        let mut extra = [0u8; 8];
        assert!(m.add_private(30, &mut extra).is_err(), "overlap refused");
    }

    proptest::proptest! {
        #[test]
        fn chunks_cover_exactly_the_range(gpa in 0u64..100, len in 0u64..100) {
            let mut a = [0u8; 30];
            let b = [1u8; 20];
            let mut c = [2u8; 10];
            let mut m = GuestMemory::empty(100);
            m.add_private(0, &mut a).unwrap();
            m.add_shared(30, &b).unwrap();
            m.add_private(60, &mut c).unwrap(); // hole at 50..60, nothing at 70..100
            let mut total = 0u64;
            let r = m.for_each_chunk(gpa, len, |ch| total += ch.len() as u64);
            let end = gpa + len;
            let covered = len == 0 || end <= 50 || (gpa >= 60 && end <= 70);
            if covered {
                proptest::prop_assert!(r.is_ok());
                proptest::prop_assert_eq!(total, len);
            } else {
                proptest::prop_assert!(r.is_err());
                proptest::prop_assert_eq!(total, 0);
            }
        }
    }

    #[test]
    fn little_endian_and_checked() {
        let mut backing = [0u8; 16];
        let mut m = GuestMemory::new(&mut backing);
        m.write_u32(Gpa(4), 0x1122_3344).unwrap();
        m.write_u16(Gpa(8), 0xaabb).unwrap();
        assert_eq!(m.read_u16(Gpa(4)).unwrap(), 0x3344);
        assert_eq!(m.read_u32(Gpa(4)).unwrap(), 0x1122_3344);
        assert_eq!(m.read_u64(Gpa(4)).unwrap(), 0xaabb_1122_3344);
        assert!(m.read_u64(Gpa(9)).is_err());
        assert!(m.write_u16(Gpa(15), 0).is_err());
        assert!(m.check_readable(Gpa(16), 0).is_ok());
        assert!(m.check_readable(Gpa(u64::MAX), 2).is_err());
        assert!(m.check_writable(Gpa(0), 16).is_ok());
        assert!(m.check_writable(Gpa(8), 9).is_err());
        m.fence(Barrier::Full);
    }

    #[test]
    fn shared_memory_is_readable_not_writable() {
        let shared = [7u8; 8];
        let mut m = GuestMemory::empty(8);
        m.add_shared(0, &shared).unwrap();
        assert!(m.check_readable(Gpa(0), 8).is_ok());
        assert!(m.check_writable(Gpa(0), 1).is_err());
    }
}
