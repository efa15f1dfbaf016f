//! The one guest-memory trait family: [`GuestRead`] (exit handlers: hypercall buffers, instruction bytes, page tables) and [`GuestRam`] (devices: rings and buffers), with the address newtypes and the one range error.
//!
//! Every access copies through a checked range; nothing hands out a
//! reference into memory a running guest can write. Three views implement
//! the family: [`super::guest::GuestMemory`] (safe slices, used at load
//! time and in tests), [`super::raw::RawRam`] (raw host addresses, used
//! while guests run) and the exit handlers' lazily built view in
//! `platform/vm.rs`.
#![forbid(unsafe_code)]

use core::fmt;
use core::sync::atomic::{Ordering, fence};

/// A guest-physical address: what a guest writes in a descriptor, a
/// register or a hypercall argument. Only a view turns it into host memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gpa(pub u64);

impl Gpa {
    /// `self + off`, or `None` past the end of the address space.
    #[inline]
    pub fn checked_add(self, off: u64) -> Option<Gpa> {
        self.0.checked_add(off).map(Gpa)
    }
}

impl fmt::Display for Gpa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A host-physical address (identity-mapped in the hypervisor): where a
/// guest's page really is. Only `platform/` and `mem::raw` dereference one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hpa(pub u64);

impl fmt::Display for Hpa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A guest-physical range that is not (entirely) inside the guest's memory,
/// or that the hypervisor may not write.
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

impl Barrier {
    /// Issues the CPU fence this barrier needs between cores.
    #[inline]
    pub fn issue(self) {
        fence(match self {
            Barrier::Acquire => Ordering::Acquire,
            Barrier::Release => Ordering::Release,
            Barrier::Full => Ordering::SeqCst,
        });
    }
}

/// Checked reads of one guest's memory. Little-endian scalars (x86 guests,
/// virtio 1.2 §2.7 ring fields).
pub trait GuestRead {
    /// Size of the guest-physical address space.
    fn size(&self) -> u64;

    /// Copies `gpa .. gpa + out.len()` into `out`.
    fn read(&self, gpa: Gpa, out: &mut [u8]) -> Result<(), OutOfBounds>;

    /// Checks all of `gpa .. gpa + len`, then passes copies of it to `f` in
    /// order, piece by piece (nothing reaches `f` if the range is bad).
    fn read_chunks(&self, gpa: Gpa, len: u64, f: impl FnMut(&[u8])) -> Result<(), OutOfBounds>;

    /// Whether `gpa .. gpa + len` lies entirely in guest memory.
    fn check_readable(&self, gpa: Gpa, len: u64) -> Result<(), OutOfBounds> {
        self.read_chunks(gpa, len, |_| ())
    }

    /// Reads a little-endian u16.
    fn read_u16(&self, gpa: Gpa) -> Result<u16, OutOfBounds> {
        let mut b = [0; 2];
        self.read(gpa, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads a little-endian u32.
    fn read_u32(&self, gpa: Gpa) -> Result<u32, OutOfBounds> {
        let mut b = [0; 4];
        self.read(gpa, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads a little-endian u64.
    fn read_u64(&self, gpa: Gpa) -> Result<u64, OutOfBounds> {
        let mut b = [0; 8];
        self.read(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// Checked reads and writes of one guest's memory, with the barriers a
/// device needs against a driver on another core.
pub trait GuestRam: GuestRead {
    /// Copies `data` to `gpa`, which must be memory the hypervisor may write.
    fn write(&mut self, gpa: Gpa, data: &[u8]) -> Result<(), OutOfBounds>;

    /// Whether `gpa .. gpa + len` could be written by [`GuestRam::write`].
    fn check_writable(&mut self, gpa: Gpa, len: u64) -> Result<(), OutOfBounds>;

    /// Orders this view's accesses as `barrier` says. The default does
    /// nothing, which is right for a single-threaded mock.
    fn fence(&self, barrier: Barrier) {
        let _ = barrier;
    }

    /// Writes a little-endian u16.
    fn write_u16(&mut self, gpa: Gpa, value: u16) -> Result<(), OutOfBounds> {
        self.write(gpa, &value.to_le_bytes())
    }

    /// Writes a little-endian u32.
    fn write_u32(&mut self, gpa: Gpa, value: u32) -> Result<(), OutOfBounds> {
        self.write(gpa, &value.to_le_bytes())
    }

    /// Writes a little-endian u64.
    fn write_u64(&mut self, gpa: Gpa, value: u64) -> Result<(), OutOfBounds> {
        self.write(gpa, &value.to_le_bytes())
    }
}
