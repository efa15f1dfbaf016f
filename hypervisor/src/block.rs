//! Block storage: a disk image held in hypervisor memory (its boot module), read and written by its one VM in whole aligned blocks, every request checked and counted, written blocks remembered for the write-back at the end of the run.
//!
//! The disk is reached through a [`GuestRam`] whose addresses are byte
//! offsets into the image (on the machine, a [`crate::mem::raw::RawRam`]
//! over the module; in tests, a `Vec`). A request is refused, with nothing
//! moved, unless it is whole blocks at a block boundary inside the image
//! (Solo5's tender checks only the bounds; its guest bindings check the
//! alignment, so a Solo5 guest never sees the difference), and unless the
//! guest's buffer lies whole in its memory (writable, for a read).
#![forbid(unsafe_code)]

use crate::mem::access::{Gpa, GuestRam, GuestRead};
use core::fmt;
use vmm_abi::report::BlockFlow;

/// Most bytes one request moves: its copy runs within one exit of the
/// VM's core, so it is kept short (a Solo5 guest moves one block at a
/// time; a virtio-blk driver splits large transfers).
pub const MAX_REQUEST: u64 = 1 << 20;
/// Bytes copied at once between the guest and the disk.
const CHUNK: usize = 512;
/// Bits per word of the written-blocks map.
const WORD_BITS: u64 = u64::BITS as u64;

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// Not whole blocks at a block boundary (or no bytes at all).
    Unaligned {
        /// Its offset.
        offset: u64,
        /// Its length.
        len: u64,
        /// The disk's block size.
        block_size: u32,
    },
    /// Past the end of the image.
    Beyond {
        /// Its offset.
        offset: u64,
        /// Its length.
        len: u64,
        /// The image's bytes.
        capacity: u64,
    },
    /// More than [`MAX_REQUEST`] bytes at once.
    TooLong {
        /// Its length.
        len: u64,
    },
    /// The guest's buffer is not whole in its memory (writable, for a
    /// read): the guest broke the rules, not the request.
    Buffer {
        /// Its guest-physical address.
        gpa: u64,
        /// Its length.
        len: u64,
    },
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BlockError::Unaligned {
                offset,
                len,
                block_size,
            } => write!(
                f,
                "{len} bytes at offset {offset} are not whole blocks of {block_size} bytes at a block boundary"
            ),
            BlockError::Beyond {
                offset,
                len,
                capacity,
            } => write!(
                f,
                "{len} bytes at offset {offset} go past the end of the image ({capacity} bytes)"
            ),
            BlockError::TooLong { len } => write!(
                f,
                "{len} bytes in one request, more than the {MAX_REQUEST} allowed"
            ),
            BlockError::Buffer { gpa, len } => {
                write!(
                    f,
                    "the buffer of {len} bytes at {gpa:#x} is not in the guest's memory"
                )
            }
        }
    }
}

/// Why a disk could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskError {
    /// The image is not the size the manifest says.
    Size {
        /// Bytes of the image found.
        found: u64,
        /// Bytes the manifest says.
        expected: u64,
    },
    /// The written-blocks map has too few words for the image's blocks.
    Map {
        /// Words given.
        words: usize,
        /// Words needed.
        needed: u64,
    },
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DiskError::Size { found, expected } => write!(
                f,
                "its image is {found} bytes, but the manifest says {expected}"
            ),
            DiskError::Map { words, needed } => {
                write!(
                    f,
                    "{words} words for its written-blocks map, {needed} needed"
                )
            }
        }
    }
}

/// Words of the written-blocks map of a disk of `capacity` bytes in blocks
/// of `block_size`.
pub fn map_words(capacity: u64, block_size: u32) -> u64 {
    (capacity / u64::from(block_size.max(1))).div_ceil(WORD_BITS)
}

/// One disk.
pub struct Disk<'d, M> {
    store: M,
    capacity: u64,
    block_size: u32,
    written: &'d mut [u64],
    /// What its VM did with it.
    pub flow: BlockFlow,
}

impl<'d, M: GuestRam> Disk<'d, M> {
    /// A disk over `store` (its bytes: `capacity`, whole blocks of
    /// `block_size`, as the manifest checked), remembering written blocks
    /// in `written` (cleared here).
    pub fn new(
        store: M,
        capacity: u64,
        block_size: u32,
        written: &'d mut [u64],
    ) -> Result<Self, DiskError> {
        if store.size() != capacity {
            return Err(DiskError::Size {
                found: store.size(),
                expected: capacity,
            });
        }
        let needed = map_words(capacity, block_size);
        if (written.len() as u64) < needed {
            return Err(DiskError::Map {
                words: written.len(),
                needed,
            });
        }
        written.fill(0);
        Ok(Disk {
            store,
            capacity,
            block_size,
            written,
            flow: BlockFlow::default(),
        })
    }

    /// Bytes of the image.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes per block.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Whether `len` bytes at `offset` are whole blocks inside the image.
    pub fn check(&self, offset: u64, len: u64) -> Result<(), BlockError> {
        let bs = u64::from(self.block_size);
        if len == 0 || !offset.is_multiple_of(bs) || !len.is_multiple_of(bs) {
            return Err(BlockError::Unaligned {
                offset,
                len,
                block_size: self.block_size,
            });
        }
        if len > MAX_REQUEST {
            return Err(BlockError::TooLong { len });
        }
        if offset
            .checked_add(len)
            .is_none_or(|end| end > self.capacity)
        {
            return Err(BlockError::Beyond {
                offset,
                len,
                capacity: self.capacity,
            });
        }
        Ok(())
    }

    /// Copies `len` bytes at `offset` of the image into the guest's
    /// memory at `gpa`.
    pub fn read(
        &mut self,
        offset: u64,
        len: u64,
        guest: &mut impl GuestRam,
        gpa: u64,
    ) -> Result<(), BlockError> {
        self.refused(self.check(offset, len))?;
        guest
            .check_writable(Gpa(gpa), len)
            .map_err(|_| BlockError::Buffer { gpa, len })?;
        let mut buf = [0u8; CHUNK];
        let mut at = 0;
        while at < len {
            let n = (len - at).min(CHUNK as u64) as usize;
            // Both ranges were checked whole above.
            self.store
                .read(Gpa(offset + at), &mut buf[..n])
                .and_then(|()| guest.write(Gpa(gpa + at), &buf[..n]))
                .map_err(|_| BlockError::Buffer { gpa, len })?;
            at += n as u64;
        }
        self.flow.reads += 1;
        self.flow.bytes_read += len;
        Ok(())
    }

    /// Copies `len` bytes from the guest's memory at `gpa` to `offset` of
    /// the image, and remembers the blocks as written.
    pub fn write(
        &mut self,
        offset: u64,
        len: u64,
        guest: &impl GuestRead,
        gpa: u64,
    ) -> Result<(), BlockError> {
        self.refused(self.check(offset, len))?;
        guest
            .check_readable(Gpa(gpa), len)
            .map_err(|_| BlockError::Buffer { gpa, len })?;
        let mut buf = [0u8; CHUNK];
        let mut at = 0;
        while at < len {
            let n = (len - at).min(CHUNK as u64) as usize;
            guest
                .read(Gpa(gpa + at), &mut buf[..n])
                .and_then(|()| self.store.write(Gpa(offset + at), &buf[..n]))
                .map_err(|_| BlockError::Buffer { gpa, len })?;
            at += n as u64;
        }
        let bs = u64::from(self.block_size);
        for block in offset / bs..(offset + len) / bs {
            if let Some(w) = self.written.get_mut((block / WORD_BITS) as usize) {
                *w |= 1 << (block % WORD_BITS);
            }
        }
        self.flow.writes += 1;
        self.flow.bytes_written += len;
        Ok(())
    }

    /// Counts a refused request.
    fn refused(&mut self, r: Result<(), BlockError>) -> Result<(), BlockError> {
        self.flow.errors += u64::from(r.is_err());
        r
    }

    /// Blocks written so far.
    pub fn dirty(&self) -> u64 {
        self.written.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// The written parts of the image, in order, as runs of whole blocks
    /// (byte offset, bytes).
    pub fn written_runs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let bs = u64::from(self.block_size);
        let blocks = self.capacity / bs;
        let is_written = move |b: u64| {
            self.written
                .get((b / WORD_BITS) as usize)
                .is_some_and(|w| w & (1 << (b % WORD_BITS)) != 0)
        };
        let mut next = 0u64;
        core::iter::from_fn(move || {
            while next < blocks && !is_written(next) {
                next += 1;
            }
            if next >= blocks {
                return None;
            }
            let start = next;
            while next < blocks && is_written(next) {
                next += 1;
            }
            Some((start * bs, (next - start) * bs))
        })
    }

    /// Calls `f` with the image's bytes `offset .. offset + len` in pieces
    /// of at most `piece` bytes (each with its offset), for the write-back.
    pub fn read_out(&self, offset: u64, len: u64, piece: usize, mut f: impl FnMut(u64, &[u8])) {
        let mut buf = [0u8; CHUNK];
        let piece = piece.clamp(1, CHUNK);
        let mut at = 0;
        while at < len {
            let n = ((len - at) as usize).min(piece);
            if self.store.read(Gpa(offset + at), &mut buf[..n]).is_err() {
                return;
            }
            f(offset + at, &buf[..n]);
            at += n as u64;
        }
    }
}

#[cfg(test)]
mod tests;
