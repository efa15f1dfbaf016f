//! A bounds-checked view of one guest's memory: guest-physical addresses
//! `0 .. len` backed by one contiguous host range. Every guest-supplied
//! address and length goes through [`GuestMemory::slice`] before use.

use core::fmt;

/// A guest-physical range that is not inside the guest's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds {
    /// Start of the range.
    pub gpa: u64,
    /// Its length.
    pub len: u64,
}

impl fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "guest-physical {:#x} len {} is outside guest memory",
            self.gpa, self.len
        )
    }
}

/// One guest's memory.
pub struct GuestMemory<'a> {
    bytes: &'a mut [u8],
}

impl<'a> GuestMemory<'a> {
    /// A view over `bytes`, which back guest-physical `0 .. bytes.len()`.
    pub fn new(bytes: &'a mut [u8]) -> Self {
        GuestMemory { bytes }
    }

    /// Bytes of guest memory.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether the guest has no memory.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn range(&self, gpa: u64, len: u64) -> Result<core::ops::Range<usize>, OutOfBounds> {
        let end = gpa.checked_add(len).ok_or(OutOfBounds { gpa, len })?;
        if end > self.len() {
            return Err(OutOfBounds { gpa, len });
        }
        Ok(gpa as usize..end as usize)
    }

    /// The guest bytes at `gpa .. gpa + len`.
    pub fn slice(&self, gpa: u64, len: u64) -> Result<&[u8], OutOfBounds> {
        let r = self.range(gpa, len)?;
        Ok(&self.bytes[r])
    }

    /// The guest bytes at `gpa .. gpa + len`, writable.
    pub fn slice_mut(&mut self, gpa: u64, len: u64) -> Result<&mut [u8], OutOfBounds> {
        let r = self.range(gpa, len)?;
        Ok(&mut self.bytes[r])
    }

    /// Copies `data` to `gpa`.
    pub fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), OutOfBounds> {
        self.slice_mut(gpa, data.len() as u64)?
            .copy_from_slice(data);
        Ok(())
    }

    /// Writes a little-endian u64 at `gpa`.
    pub fn write_u64(&mut self, gpa: u64, value: u64) -> Result<(), OutOfBounds> {
        self.write(gpa, &value.to_le_bytes())
    }

    /// Zeroes `gpa .. gpa + len`.
    pub fn zero(&mut self, gpa: u64, len: u64) -> Result<(), OutOfBounds> {
        self.slice_mut(gpa, len)?.fill(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        let mut backing = [0u8; 64];
        let mut m = GuestMemory::new(&mut backing);
        assert_eq!(m.slice(0, 64).unwrap().len(), 64);
        assert_eq!(m.slice(64, 0).unwrap().len(), 0);
        assert!(m.slice(60, 5).is_err());
        assert!(m.slice(65, 0).is_err());
        assert!(m.slice(u64::MAX - 1, 4).is_err());
        assert!(m.slice(8, u64::MAX).is_err());
        m.write_u64(56, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(m.slice(56, 1).unwrap(), &[0x88]);
        assert!(m.write_u64(57, 0).is_err());
        m.zero(56, 8).unwrap();
        assert_eq!(m.slice(56, 8).unwrap(), &[0; 8]);
    }
}
