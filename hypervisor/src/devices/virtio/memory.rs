//! The guest-memory interface virtqueues are processed through. Ring fields
//! are little-endian (virtio 1.2 §2.7); every access is checked against the
//! guest's own memory by the implementation, [`GuestMemory`] in the
//! hypervisor and a `Vec<u8>` behind it in tests.

use crate::mem::guest::{GuestMemory, OutOfBounds};
use core::sync::atomic::{Ordering, fence};

/// The ordering a [`GuestRam::fence`] call must provide between guest-memory
/// accesses the driver observes concurrently (virtio 1.2 §2.7.13, §2.7.14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Barrier {
    /// Later reads happen after earlier reads (the avail idx before the ring
    /// entries and descriptors it publishes).
    Acquire,
    /// Earlier writes are visible before later writes (used elements before
    /// the used idx that publishes them).
    Release,
    /// Earlier writes are visible before later reads (the used idx before
    /// reading `used_event`; `avail_event` before re-reading the avail idx).
    Full,
}

/// Checked access to one guest's physical memory.
pub trait GuestRam {
    /// Copies `gpa .. gpa + out.len()` into `out`.
    fn read_bytes(&self, gpa: u64, out: &mut [u8]) -> Result<(), OutOfBounds>;
    /// Copies `data` to `gpa`, which must be memory the hypervisor may write.
    fn write_bytes(&mut self, gpa: u64, data: &[u8]) -> Result<(), OutOfBounds>;
    /// Calls `f` with the pieces of `gpa .. gpa + len` in order, after
    /// checking the whole range (nothing reaches `f` if it is bad).
    fn read_chunks(&self, gpa: u64, len: u64, f: impl FnMut(&[u8])) -> Result<(), OutOfBounds>;
    /// Whether `gpa .. gpa + len` could be written by [`GuestRam::write_bytes`].
    fn check_writable(&mut self, gpa: u64, len: u64) -> Result<(), OutOfBounds>;

    /// Orders this view's accesses as `barrier` says. The default does
    /// nothing, which is right for a single-threaded mock.
    fn fence(&self, barrier: Barrier) {
        let _ = barrier;
    }

    /// Whether `gpa .. gpa + len` lies entirely in guest memory.
    fn check_readable(&self, gpa: u64, len: u64) -> Result<(), OutOfBounds> {
        self.read_chunks(gpa, len, |_| ())
    }

    /// Reads a little-endian u16.
    fn read_u16(&self, gpa: u64) -> Result<u16, OutOfBounds> {
        let mut b = [0; 2];
        self.read_bytes(gpa, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads a little-endian u32.
    fn read_u32(&self, gpa: u64) -> Result<u32, OutOfBounds> {
        let mut b = [0; 4];
        self.read_bytes(gpa, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads a little-endian u64.
    fn read_u64(&self, gpa: u64) -> Result<u64, OutOfBounds> {
        let mut b = [0; 8];
        self.read_bytes(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Writes a little-endian u16.
    fn write_u16(&mut self, gpa: u64, value: u16) -> Result<(), OutOfBounds> {
        self.write_bytes(gpa, &value.to_le_bytes())
    }

    /// Writes a little-endian u32.
    fn write_u32(&mut self, gpa: u64, value: u32) -> Result<(), OutOfBounds> {
        self.write_bytes(gpa, &value.to_le_bytes())
    }

    /// Writes a little-endian u64.
    fn write_u64(&mut self, gpa: u64, value: u64) -> Result<(), OutOfBounds> {
        self.write_bytes(gpa, &value.to_le_bytes())
    }
}

impl GuestRam for GuestMemory<'_> {
    fn read_bytes(&self, gpa: u64, out: &mut [u8]) -> Result<(), OutOfBounds> {
        self.read(gpa, out)
    }

    fn write_bytes(&mut self, gpa: u64, data: &[u8]) -> Result<(), OutOfBounds> {
        self.write(gpa, data)
    }

    fn read_chunks(&self, gpa: u64, len: u64, f: impl FnMut(&[u8])) -> Result<(), OutOfBounds> {
        self.for_each_chunk(gpa, len, f)
    }

    fn check_writable(&mut self, gpa: u64, len: u64) -> Result<(), OutOfBounds> {
        self.slice_mut(gpa, len).map(|_| ())
    }

    fn fence(&self, barrier: Barrier) {
        fence(match barrier {
            Barrier::Acquire => Ordering::Acquire,
            Barrier::Release => Ordering::Release,
            Barrier::Full => Ordering::SeqCst,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_endian_and_checked() {
        let mut backing = [0u8; 16];
        let mut m = GuestMemory::new(&mut backing);
        m.write_u32(4, 0x1122_3344).unwrap();
        m.write_u16(8, 0xaabb).unwrap();
        assert_eq!(m.read_u16(4).unwrap(), 0x3344);
        assert_eq!(m.read_u32(4).unwrap(), 0x1122_3344);
        assert_eq!(m.read_u64(4).unwrap(), 0xaabb_1122_3344);
        assert!(m.read_u64(9).is_err());
        assert!(m.write_u16(15, 0).is_err());
        assert!(m.check_readable(16, 0).is_ok());
        assert!(m.check_readable(u64::MAX, 2).is_err());
        assert!(m.check_writable(0, 16).is_ok());
        assert!(m.check_writable(8, 9).is_err());
        m.fence(Barrier::Full);
    }

    #[test]
    fn shared_memory_is_readable_not_writable() {
        let shared = [7u8; 8];
        let mut m = GuestMemory::empty(8);
        m.add_shared(0, &shared).unwrap();
        assert!(m.check_readable(0, 8).is_ok());
        assert!(m.check_writable(0, 1).is_err());
    }
}
