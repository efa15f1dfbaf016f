//! A guest's memory reached through raw host addresses: the view a device (or a core other than the guest's) uses while the guest runs.
//!
//! Every access is checked against the pieces (guest-physical range, host
//! address, writable or not) and copied through raw pointers, never
//! through Rust references to memory the guest may change at the same
//! time; virtio's barriers order the two sides.

use super::access::{Barrier, Gpa, GuestRam, GuestRead, Hpa, OutOfBounds};
use core::mem::MaybeUninit;

/// Bytes of the prefix [`RawRam::copy_behind_prefix`] writes: a u64 and a
/// u32, two stores (what the prefix means is the caller's business; the
/// data path's is a virtio-net header).
const PREFIX_BYTES: u64 = 12;

/// Most pieces (private or shared ranges) of one guest's memory.
pub const MAX_RAM_PIECES: usize = 9;

/// One guest-physical range of a VM and where it lies in host memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct RamPiece {
    /// Guest-physical start.
    pub gpa: Gpa,
    /// Bytes.
    pub len: u64,
    /// Host-physical (identity-mapped) start.
    pub hpa: Hpa,
    /// The hypervisor may write it (private memory, not shared image pages).
    pub writable: bool,
}

impl RamPiece {
    /// Where `gpa .. gpa + len` lies in host memory, if this piece holds
    /// all of it (and may be written, if `write`).
    #[inline(always)]
    fn place(&self, gpa: u64, len: u64, write: bool) -> Option<u64> {
        (gpa >= self.gpa.0
            && gpa - self.gpa.0 <= self.len
            && len <= self.len - (gpa - self.gpa.0)
            && (self.writable || !write))
            .then(|| self.hpa.0 + (gpa - self.gpa.0))
    }
}

/// A VM's memory seen from another core: raw ranges, checked on every
/// access. Rings and buffers are read and written while the guest runs,
/// as a device does (virtio's barriers order the two sides); all copies
/// go through raw pointers, never through references to guest memory.
#[derive(Clone, Copy, Debug)]
pub struct RawRam {
    pieces: [RamPiece; MAX_RAM_PIECES],
    count: usize,
    /// The largest writable piece, tried first (the heap, where a guest's
    /// rings and buffers are).
    hot: RamPiece,
}

impl RawRam {
    /// A view of the pieces given (at most [`MAX_RAM_PIECES`]; more are
    /// ignored, which only makes accesses there fail).
    ///
    /// # Safety
    /// Each piece's `hpa .. hpa + len` must be memory the caller may read
    /// (and write, if `writable`) through raw pointers for as long as this
    /// view or a copy of it is used, and no Rust reference to it may be
    /// alive meanwhile.
    pub unsafe fn new(pieces: impl Iterator<Item = RamPiece>) -> Self {
        let mut ram = RawRam {
            pieces: [RamPiece::default(); MAX_RAM_PIECES],
            count: 0,
            hot: RamPiece::default(),
        };
        for p in pieces.take(MAX_RAM_PIECES) {
            ram.pieces[ram.count] = p;
            ram.count += 1;
            if p.writable && p.len > ram.hot.len {
                ram.hot = p;
            }
        }
        ram
    }

    /// The host address of `gpa .. gpa + len` if one piece holds it all.
    #[inline]
    fn locate(&self, gpa: u64, len: u64, write: bool) -> Option<u64> {
        if let Some(hpa) = self.hot.place(gpa, len, write) {
            return Some(hpa);
        }
        self.pieces[..self.count]
            .iter()
            .find_map(|p| p.place(gpa, len, write))
    }

    /// [`RawRam::locate`] with its first test (the hot piece) always
    /// inlined, the rest called: for a caller so large that `locate`
    /// itself is no longer inlined into it (a hooked link's per-frame
    /// copy), without changing what other callers inline.
    #[inline(always)]
    fn locate_hot_first(&self, gpa: u64, len: u64, write: bool) -> Option<u64> {
        match self.hot.place(gpa, len, write) {
            Some(hpa) => Some(hpa),
            None => self.locate(gpa, len, write),
        }
    }

    /// The data path's one copy, between two guests' buffers: checks that
    /// `src_gpa .. + src_len` is readable here and `dst_gpa .. + dst_len`
    /// writable in `dst`, then writes `prefix` (a u64 and a u32: 12 bytes)
    /// at the start of the destination and copies the source's bytes after
    /// its first 12 behind it. `None` (nothing written) if a buffer is out
    /// of place or the source's payload does not fit the destination's.
    #[inline]
    pub fn copy_behind_prefix(
        &self,
        (src_gpa, src_len): (u64, u64),
        dst: &RawRam,
        (dst_gpa, dst_len): (u64, u64),
        prefix: (u64, u32),
    ) -> Option<()> {
        let payload = src_len.checked_sub(PREFIX_BYTES)?;
        if payload > dst_len.checked_sub(PREFIX_BYTES)? {
            return None;
        }
        let from = self.locate(src_gpa, src_len, false)?;
        let to = dst.locate(dst_gpa, dst_len, true)?;
        // SAFETY: as in `copy_behind_prefix_at`.
        unsafe { copy_prefixed(from, to, payload, prefix) };
        Some(())
    }

    /// [`RawRam::copy_behind_prefix`], returning the copied bytes' range
    /// in `dst` (writable; where a packet hook judges them in place).
    #[inline(always)]
    pub fn copy_behind_prefix_at<'d>(
        &self,
        (src_gpa, src_len): (u64, u64),
        dst: &'d RawRam,
        (dst_gpa, dst_len): (u64, u64),
        prefix: (u64, u32),
    ) -> Option<HostRange<'d>> {
        let payload = src_len.checked_sub(PREFIX_BYTES)?;
        if payload > dst_len.checked_sub(PREFIX_BYTES)? {
            return None;
        }
        let from = self.locate_hot_first(src_gpa, src_len, false)?;
        let to = dst.locate_hot_first(dst_gpa, dst_len, true)?;
        // SAFETY: `from..+src_len` readable here, `to..+dst_len` writable in `dst` (located above,
        // live per `new`'s contract); the 12-byte prefix and the payload fit both (checked).
        unsafe { copy_prefixed(from, to, payload, prefix) };
        // Inside `dst`'s writable range located above.
        Some(HostRange {
            hpa: to + PREFIX_BYTES,
            len: payload,
            writable: true,
            _view: core::marker::PhantomData,
        })
    }

    /// Calls `f(host address, offset, bytes)` for the pieces of `gpa ..
    /// gpa + len` after checking all of it: on success the pieces cover
    /// offsets `0 .. len` exactly once, in order (`read_chunks` relies on
    /// this); on an error some may have been called.
    fn for_each(
        &self,
        gpa: u64,
        len: u64,
        write: bool,
        mut f: impl FnMut(u64, usize, usize),
    ) -> Result<(), OutOfBounds> {
        let bad = OutOfBounds { gpa, len };
        if let Some(hpa) = self.locate(gpa, len, write) {
            f(hpa, 0, len as usize);
            return Ok(());
        }
        // Spanning pieces: check the whole range first, then copy.
        let mut at = gpa;
        let end = gpa.checked_add(len).ok_or(bad)?;
        while at < end {
            let p = self.pieces[..self.count]
                .iter()
                .find(|p| at >= p.gpa.0 && at - p.gpa.0 < p.len && (p.writable || !write))
                .ok_or(bad)?;
            at = p.gpa.0 + p.len;
        }
        let mut at = gpa;
        while at < end {
            let Some(p) = self.pieces[..self.count]
                .iter()
                .find(|p| at >= p.gpa.0 && at - p.gpa.0 < p.len)
            else {
                return Err(bad);
            };
            let n = (p.gpa.0 + p.len).min(end) - at;
            f(p.hpa.0 + (at - p.gpa.0), (at - gpa) as usize, n as usize);
            at += n;
        }
        Ok(())
    }
}

/// A memory view a ring lives in (a guest's, or a NIC's DMA area), and
/// whether it is the raw view the fast paths need.
pub trait RingMemory: GuestRam {
    /// This view as a [`RawRam`], if it is one.
    #[inline]
    fn raw(&self) -> Option<&RawRam> {
        None
    }
}

impl RingMemory for RawRam {
    #[inline]
    fn raw(&self) -> Option<&RawRam> {
        Some(self)
    }
}

/// Writes `prefix` at `to` and copies `payload` bytes from `from + 12` to
/// `to + 12` (the ranges may overlap: a guest may give both ports one
/// buffer).
///
/// # Safety
/// `from .. from + 12 + payload` must be readable and `to .. to + 12 +
/// payload` writable host memory, both live for the call.
#[inline(always)]
unsafe fn copy_prefixed(from: u64, to: u64, payload: u64, prefix: (u64, u32)) {
    // SAFETY: both ranges are as the caller promises; `copy` allows
    // overlap, and the prefix writes are unaligned-safe.
    unsafe {
        (to as *mut u64).write_unaligned(prefix.0);
        ((to + 8) as *mut u32).write_unaligned(prefix.1);
        core::ptr::copy(
            (from + PREFIX_BYTES) as *const u8,
            (to + PREFIX_BYTES) as *mut u8,
            payload as usize,
        );
    }
}

/// A range of one guest's memory resolved to host memory once (a ring, or
/// a buffer), so a data path indexes it with one bounds check per access
/// instead of a lookup. It borrows the view it came from and cannot
/// outlive it.
#[derive(Clone, Copy, Debug)]
pub struct HostRange<'a> {
    hpa: u64,
    len: u64,
    writable: bool,
    _view: core::marker::PhantomData<&'a RawRam>,
}

impl RawRam {
    /// `gpa .. gpa + len` as one host range, if one piece holds it all (and
    /// it is writable, if `write`).
    #[inline]
    pub fn resolve(&self, gpa: u64, len: u64, write: bool) -> Option<HostRange<'_>> {
        let hpa = self.locate(gpa, len, write)?;
        Some(HostRange {
            hpa,
            len,
            writable: write,
            _view: core::marker::PhantomData,
        })
    }
}

impl<'a> HostRange<'a> {
    /// Its length in bytes.
    #[inline]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it has no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Zeroes it (a writable range only); `None` if it is read-only.
    #[inline]
    pub fn zero(&self) -> Option<()> {
        if !self.writable {
            return None;
        }
        // SAFETY: this range lies in one writable piece of the view it
        // borrows (live for the view's life, the contract of `new`).
        unsafe { core::ptr::write_bytes(self.hpa as *mut u8, 0, self.len as usize) };
        Some(())
    }

    /// Its host-physical start: what a device is given to reach it by DMA.
    #[inline]
    pub fn hpa(&self) -> u64 {
        self.hpa
    }

    /// The part `off .. off + len` of this range (writable only if this
    /// range is and `write` asks for it), if inside.
    #[inline]
    pub fn sub(&self, off: u64, len: u64, write: bool) -> Option<HostRange<'a>> {
        let hpa = self.at(off, len)?;
        if write && !self.writable {
            return None;
        }
        Some(HostRange {
            hpa,
            len,
            writable: write,
            _view: core::marker::PhantomData,
        })
    }

    /// The host address of `off .. off + n`, if inside.
    #[inline]
    fn at(&self, off: u64, n: u64) -> Option<u64> {
        (off <= self.len && n <= self.len - off).then(|| self.hpa + off)
    }

    /// Reads the little-endian u16 at `off`.
    #[inline]
    pub fn read_u16(&self, off: u64) -> Option<u16> {
        let hpa = self.at(off, 2)?;
        // SAFETY: inside this range, which lies in one piece of the view it
        // borrows (readable for the view's life, the contract of `new`).
        Some(unsafe { (hpa as *const u16).read_unaligned() })
    }

    /// Reads the little-endian u32 at `off`.
    #[inline]
    pub fn read_u32(&self, off: u64) -> Option<u32> {
        let hpa = self.at(off, 4)?;
        // SAFETY: as in `read_u16`.
        Some(unsafe { (hpa as *const u32).read_unaligned() })
    }

    /// Reads the little-endian u64 at `off`.
    #[inline]
    pub fn read_u64(&self, off: u64) -> Option<u64> {
        let hpa = self.at(off, 8)?;
        // SAFETY: as in `read_u16`.
        Some(unsafe { (hpa as *const u64).read_unaligned() })
    }

    /// Writes `value` at `off` (a writable range only).
    #[inline]
    pub fn write_u16(&self, off: u64, value: u16) -> Option<()> {
        let hpa = self.at(off, 2).filter(|_| self.writable)?;
        // SAFETY: inside this range, which lies in one writable piece of the
        // view it borrows.
        unsafe { (hpa as *mut u16).write_unaligned(value) };
        Some(())
    }

    /// Writes `value` at `off` (a writable range only).
    #[inline]
    pub fn write_u32(&self, off: u64, value: u32) -> Option<()> {
        let hpa = self.at(off, 4).filter(|_| self.writable)?;
        // SAFETY: as in `write_u16`.
        unsafe { (hpa as *mut u32).write_unaligned(value) };
        Some(())
    }

    /// Copies `out.len()` bytes from `off` into `out` (hypervisor memory:
    /// the guest cannot change the copy).
    #[inline]
    pub fn read_into(&self, off: u64, out: &mut [u8]) -> Option<()> {
        let hpa = self.at(off, out.len() as u64)?;
        // SAFETY: `hpa..+out.len()` is inside this range (one live piece of the view it borrows);
        // `out` is the hypervisor's own memory, which no guest range overlaps.
        unsafe { core::ptr::copy_nonoverlapping(hpa as *const u8, out.as_mut_ptr(), out.len()) };
        Some(())
    }

    /// Copies `data` to `off` (a writable range only).
    #[inline]
    pub fn write_from(&self, off: u64, data: &[u8]) -> Option<()> {
        let hpa = self.at(off, data.len() as u64).filter(|_| self.writable)?;
        // SAFETY: inside this range, which lies in one writable piece of the
        // view it borrows; `data` is the hypervisor's own memory.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), hpa as *mut u8, data.len()) };
        Some(())
    }

    /// Writes `prefix` (a u64 and a u32: 12 bytes) at the start of this
    /// (writable) range and `data` right behind it; `None` (nothing
    /// written) if they do not both fit.
    #[inline]
    pub fn write_prefixed(&self, prefix: (u64, u32), data: &[u8]) -> Option<()> {
        let hpa = self
            .at(0, PREFIX_BYTES.checked_add(data.len() as u64)?)
            .filter(|_| self.writable)?;
        // SAFETY: `hpa..+12+data.len()` is inside this range (one live writable piece, per `new`);
        // `data` is the hypervisor's own memory, which no guest range overlaps.
        unsafe {
            (hpa as *mut u64).write_unaligned(prefix.0);
            ((hpa + 8) as *mut u32).write_unaligned(prefix.1);
            core::ptr::copy_nonoverlapping(
                data.as_ptr(),
                (hpa + PREFIX_BYTES) as *mut u8,
                data.len(),
            );
        }
        Some(())
    }

    /// Copies `len` bytes from `off` of this range to `at` of `dst` (a
    /// writable range); `None` (nothing copied) if either part is outside.
    #[inline]
    pub fn copy_to(&self, off: u64, len: u64, dst: &HostRange<'_>, at: u64) -> Option<()> {
        let from = self.at(off, len)?;
        let to = dst.at(at, len).filter(|_| dst.writable)?;
        // SAFETY: `from..+len` is inside this range, `to..+len` inside writable `dst`, each in one
        // live piece of its view (per `new`); `copy` allows the two to overlap.
        unsafe { core::ptr::copy(from as *const u8, to as *mut u8, len as usize) };
        Some(())
    }

    /// Writes `value` at `off` (a writable range only).
    #[inline]
    pub fn write_u64(&self, off: u64, value: u64) -> Option<()> {
        let hpa = self.at(off, 8).filter(|_| self.writable)?;
        // SAFETY: as in `write_u32`.
        unsafe { (hpa as *mut u64).write_unaligned(value) };
        Some(())
    }
}

/// Generates a fixed-size reader: one bounds check and one unaligned load
/// (x86 is little-endian, as virtio rings are).
macro_rules! scalar_read {
    ($read:ident, $t:ty) => {
        #[inline]
        fn $read(&self, gpa: Gpa) -> Result<$t, OutOfBounds> {
            let gpa = gpa.0;
            let len = core::mem::size_of::<$t>() as u64;
            match self.locate(gpa, len, false) {
                // SAFETY: `locate` found the whole value inside one piece,
                // readable for the life of this view (the contract of `new`).
                Some(hpa) => Ok(unsafe { (hpa as *const $t).read_unaligned() }),
                None => {
                    let mut b = [0u8; core::mem::size_of::<$t>()];
                    GuestRead::read(self, Gpa(gpa), &mut b)?;
                    Ok(<$t>::from_le_bytes(b))
                }
            }
        }
    };
}

/// Generates a fixed-size writer: one bounds check and one unaligned store.
macro_rules! scalar_write {
    ($write:ident, $t:ty) => {
        #[inline]
        fn $write(&mut self, gpa: Gpa, value: $t) -> Result<(), OutOfBounds> {
            let gpa = gpa.0;
            let len = core::mem::size_of::<$t>() as u64;
            match self.locate(gpa, len, true) {
                Some(hpa) => {
                    // SAFETY: `locate` found the whole value inside one writable
                    // piece, live for this view (the contract of `new`).
                    unsafe { (hpa as *mut $t).write_unaligned(value) };
                    Ok(())
                }
                None => GuestRam::write(self, Gpa(gpa), &value.to_le_bytes()),
            }
        }
    };
}

/// Bytes copied at a time by [`GuestRead::read_chunks`].
const BOUNCE_BYTES: usize = 256;

/// Exit handlers and the data path read a VM's memory through its raw view,
/// since a polling core may be writing the VM's rings at the same time:
/// every byte is copied out (through a small bounce buffer for
/// `read_chunks`), so no reference into guest memory is ever made.
impl GuestRead for RawRam {
    scalar_read!(read_u16, u16);
    scalar_read!(read_u32, u32);
    scalar_read!(read_u64, u64);

    fn size(&self) -> u64 {
        self.pieces[..self.count]
            .iter()
            .map(|p| p.gpa.0 + p.len)
            .max()
            .unwrap_or(0)
    }

    #[inline]
    fn check_readable(&self, gpa: Gpa, len: u64) -> Result<(), OutOfBounds> {
        let gpa = gpa.0;
        if self.locate(gpa, len, false).is_some() {
            return Ok(());
        }
        self.for_each(gpa, len, false, |_, _, _| ())
    }

    fn read(&self, gpa: Gpa, out: &mut [u8]) -> Result<(), OutOfBounds> {
        let gpa = gpa.0;
        let dst = out.as_mut_ptr();
        self.for_each(gpa, out.len() as u64, false, |hpa, off, n| {
            // SAFETY: `hpa..+n` lies in one readable piece (checked by `for_each`, live per
            // `new`'s contract); `off + n` is within `out`.
            unsafe { core::ptr::copy_nonoverlapping(hpa as *const u8, dst.add(off), n) }
        })
    }

    // Out of line: inlined into the exit loop (a console write) it costs
    // the null hypercall's path registers it does not use.
    #[inline(never)]
    fn read_chunks(&self, gpa: Gpa, len: u64, mut f: impl FnMut(&[u8])) -> Result<(), OutOfBounds> {
        let gpa = gpa.0;
        self.for_each(gpa, len, false, |_, _, _| ())?;
        // Not zeroed first: every byte handed to `f` was copied in just
        // before (a frame's destination MAC is read this way per frame).
        let mut bounce = [MaybeUninit::<u8>::uninit(); BOUNCE_BYTES];
        let mut at = 0;
        while at < len {
            let n = (len - at).min(BOUNCE_BYTES as u64) as usize;
            let to = bounce.as_mut_ptr().cast::<u8>();
            let mut covered = 0;
            self.for_each(gpa + at, n as u64, false, |hpa, off, k| {
                // Each piece must start where the last ended and stay in
                // the chunk (as `for_each` promises); else nothing is copied
                // and the read fails below.
                if off != covered || k > n - off {
                    covered = usize::MAX;
                    return;
                }
                covered += k;
                // SAFETY: `hpa..+k` lies in one live readable piece (`for_each`, `new`'s contract);
                // `off + k <= n <= BOUNCE_BYTES` (checked above): inside `bounce`, our own stack.
                unsafe { core::ptr::copy_nonoverlapping(hpa as *const u8, to.add(off), k) }
            })?;
            if covered != n {
                return Err(OutOfBounds {
                    gpa: gpa + at,
                    len: n as u64,
                });
            }
            // SAFETY: the pieces were contiguous and covered `n` bytes (both checked above):
            // bytes `0 .. n` of `bounce` are all initialised.
            let chunk = unsafe { core::slice::from_raw_parts(to, n) };
            f(chunk);
            at += n as u64;
        }
        Ok(())
    }
}

impl GuestRam for RawRam {
    scalar_write!(write_u16, u16);
    scalar_write!(write_u32, u32);
    scalar_write!(write_u64, u64);

    fn write(&mut self, gpa: Gpa, data: &[u8]) -> Result<(), OutOfBounds> {
        let gpa = gpa.0;
        let src = data.as_ptr();
        self.for_each(gpa, data.len() as u64, true, |hpa, off, n| {
            // SAFETY: `hpa..+n` lies in one live writable piece (private memory; `for_each`,
            // `new`'s contract); `off + n` is within `data`.
            unsafe { core::ptr::copy_nonoverlapping(src.add(off), hpa as *mut u8, n) }
        })
    }

    fn check_writable(&mut self, gpa: Gpa, len: u64) -> Result<(), OutOfBounds> {
        let gpa = gpa.0;
        self.for_each(gpa, len, true, |_, _, _| ())
    }

    fn fence(&self, barrier: Barrier) {
        barrier.issue();
    }
}

/// Views over test buffers.
#[cfg(test)]
pub mod testing {
    use super::*;

    /// A writable view of all of `v` as guest-physical `0 .. v.len()`.
    /// The caller must not use `v` itself while the view is in use.
    pub fn over_vec(v: &mut [u8]) -> RawRam {
        over_vec_at(v, 0)
    }

    /// As [`over_vec`], with `v` at guest-physical `gpa .. gpa + v.len()`
    /// (a NIC's DMA area at a bus address above 4 GiB, say).
    pub fn over_vec_at(v: &mut [u8], gpa: u64) -> RawRam {
        let piece = RamPiece {
            gpa: Gpa(gpa),
            len: v.len() as u64,
            hpa: Hpa(v.as_mut_ptr() as u64),
            writable: true,
        };
        // SAFETY: the buffer outlives the tests' use of the view, and the
        // tests do not touch it through references while a view is used.
        unsafe { RawRam::new(core::iter::once(piece)) }
    }

    /// As [`over_vec_at`], but as two writable pieces that meet at
    /// `gpa + split` (every byte there, no range across the seam in one
    /// piece).
    pub fn over_vec_split_at(v: &mut [u8], gpa: u64, split: u64) -> RawRam {
        let base = v.as_mut_ptr() as u64;
        let len = v.len() as u64;
        let split = split.min(len);
        let pieces = [
            RamPiece {
                gpa: Gpa(gpa),
                len: split,
                hpa: Hpa(base),
                writable: true,
            },
            RamPiece {
                gpa: Gpa(gpa + split),
                len: len - split,
                hpa: Hpa(base + split),
                writable: true,
            },
        ];
        // SAFETY: as in `over_vec_at`; the two pieces are the buffer's
        // two halves, within it.
        unsafe { RawRam::new(pieces.into_iter()) }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::over_vec;
    use super::*;

    fn split(v: &mut [u8]) -> RawRam {
        // Three pieces: 0..0x100 writable, 0x100..0x200 read-only, 0x200.. writable.
        let base = v.as_mut_ptr() as u64;
        let pieces = [
            RamPiece {
                gpa: Gpa(0),
                len: 0x100,
                hpa: Hpa(base),
                writable: true,
            },
            RamPiece {
                gpa: Gpa(0x100),
                len: 0x100,
                hpa: Hpa(base + 0x100),
                writable: false,
            },
            RamPiece {
                gpa: Gpa(0x200),
                len: 0x200,
                hpa: Hpa(base + 0x200),
                writable: true,
            },
        ];
        // SAFETY: as in `over_vec`.
        unsafe { RawRam::new(pieces.into_iter()) }
    }

    #[test]
    fn host_ranges_check_every_access() {
        let mut v = vec![0u8; 0x400];
        let r = split(&mut v);
        // One piece must hold the whole range.
        assert!(r.resolve(0x10, 0x20, true).is_some());
        assert!(r.resolve(0xf0, 0x20, false).is_none());
        assert!(r.resolve(0x110, 0x20, true).is_none());
        assert!(r.resolve(0x110, 0x20, false).is_some());
        let a = r.resolve(0x200, 0x10, true).unwrap();
        a.write_u64(8, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(a.read_u64(8), Some(0x1122_3344_5566_7788));
        assert_eq!(a.read_u16(14), Some(0x1122));
        a.write_u16(0, 0xbeef).unwrap();
        assert_eq!(a.read_u16(0), Some(0xbeef));
        assert!(a.read_u64(9).is_none());
        assert!(a.write_u16(15, 0).is_none());
        assert!(a.read_u16(u64::MAX).is_none());
        let ro = r.resolve(0x100, 0x10, false).unwrap();
        assert!(ro.write_u64(0, 1).is_none());
        let part = a.sub(8, 8, true).unwrap();
        assert_eq!(part.read_u64(0), Some(0x1122_3344_5566_7788));
        assert!(a.sub(9, 8, false).is_none());
        assert!(ro.sub(0, 4, true).is_none());
        assert!(ro.sub(0, 4, false).is_some());
    }

    #[test]
    fn a_copy_behind_a_header_checks_both_buffers() {
        let mut a = vec![0u8; 0x400];
        let mut b = vec![0u8; 0x400];
        for (i, x) in a.iter_mut().enumerate() {
            *x = i as u8;
        }
        let src = over_vec(&mut a);
        let ro = split(&mut b);
        let hdr = (0x0807_0605_0403_0201, 0x0c0b_0a09);
        let payload = src
            .copy_behind_prefix_at((0x10, 12 + 8), &ro, (0x200, 0x20), hdr)
            .expect("copied");
        // The payload's range: 8 bytes behind the prefix.
        let mut back = [0u8; 8];
        payload.read_into(0, &mut back).unwrap();
        assert_eq!(
            (payload.len(), back),
            (8, [0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23])
        );
        assert!(payload.read_into(1, &mut back).is_none(), "no byte past it");
        let mut out = [0u8; 20];
        ro.read(Gpa(0x200), &mut out).unwrap();
        assert_eq!(out[..12], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(out[12..], [0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23]);
        // Too big for the destination, destination read-only, source short
        // or outside: nothing is written.
        assert!(
            src.copy_behind_prefix((0x10, 12 + 0x21), &ro, (0x200, 0x20 + 12), hdr)
                .is_none()
        );
        assert!(
            src.copy_behind_prefix((0x10, 20), &ro, (0x100, 0x20), hdr)
                .is_none()
        );
        assert!(
            src.copy_behind_prefix((0x10, 11), &ro, (0x200, 0x20), hdr)
                .is_none()
        );
        assert!(
            src.copy_behind_prefix((0x3f8, 20), &ro, (0x200, 0x20), hdr)
                .is_none()
        );
        assert!(
            src.copy_behind_prefix((0x10, 20), &ro, (0x3f0, 0x20), hdr)
                .is_none()
        );
    }

    #[test]
    fn exit_handlers_read_through_copies() {
        let mut v = vec![0u8; 0x400];
        for (i, x) in v.iter_mut().enumerate() {
            *x = i as u8;
        }
        let r = split(&mut v);
        assert_eq!(GuestRead::size(&r), 0x400);
        let mut got = Vec::new();
        let mut pieces = 0;
        GuestRead::read_chunks(&r, Gpa(0x10), 600, |c| {
            pieces += 1;
            got.extend_from_slice(c);
        })
        .unwrap();
        assert_eq!(pieces, 3);
        assert_eq!(got, v[0x10..0x10 + 600]);
        // The whole range is checked before anything reaches `f`.
        let mut called = false;
        assert!(GuestRead::read_chunks(&r, Gpa(0x300), 0x200, |_| called = true).is_err());
        assert!(!called);
        let mut out = [0u8; 4];
        GuestRead::read(&r, Gpa(0x3fc), &mut out).unwrap();
        assert_eq!(out, [0xfc, 0xfd, 0xfe, 0xff]);
    }

    #[test]
    fn reads_and_writes_are_checked() {
        let mut v = vec![0u8; 0x400];
        let mut r = over_vec(&mut v);
        r.write(Gpa(0x10), &[1, 2, 3]).unwrap();
        let mut out = [0u8; 3];
        r.read(Gpa(0x10), &mut out).unwrap();
        assert_eq!(out, [1, 2, 3]);
        assert!(r.read(Gpa(0x3ff), &mut out).is_err());
        assert!(r.write(Gpa(u64::MAX - 1), &[0; 4]).is_err());
        assert!(r.check_writable(Gpa(0), 0x400).is_ok());
        assert!(r.check_writable(Gpa(0), 0x401).is_err());
    }

    #[test]
    fn ranges_may_span_pieces_but_not_write_read_only_ones() {
        let mut v = vec![0u8; 0x400];
        let mut r = split(&mut v);
        // A read across all three pieces.
        let mut out = vec![0u8; 0x300];
        r.read(Gpa(0x80), &mut out).unwrap();
        // In copies (bounce-buffer sized), never a view into the memory.
        let mut copied = Vec::new();
        r.read_chunks(Gpa(0x80), 0x300, |c| {
            assert!(c.len() <= BOUNCE_BYTES);
            copied.extend_from_slice(c);
        })
        .unwrap();
        assert_eq!(copied, out);
        // Writes stay out of the read-only piece, even partly.
        assert!(r.write(Gpa(0xf0), &[0; 0x20]).is_err());
        assert!(r.write(Gpa(0x1f0), &[0; 0x20]).is_err());
        assert!(r.write(Gpa(0x200), &[7; 0x20]).is_ok());
        assert!(r.check_writable(Gpa(0x100), 1).is_err());
        // Beyond the last piece.
        assert!(r.read(Gpa(0x3f0), &mut [0; 0x20]).is_err());
    }
}
