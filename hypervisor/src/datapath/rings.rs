//! A virtio queue's three areas resolved to host memory once, as the fast paths (a link's, a NIC's) read and write them: avail entries, used elements, the published index.
//!
//! Each reader stops at anything out of place (`None`), leaving the
//! queue's indices as they were; the general path then names the fault.
#![forbid(unsafe_code)]

use crate::devices::virtio::net::receive_header;
use crate::devices::virtio::queue::{
    AVAIL_ENTRY_SIZE, DESC_SIZE, RING_ENTRIES, RING_IDX, SplitQueue, USED_ELEM_LEN, USED_ELEM_SIZE,
};
use crate::mem::raw::{HostRange, RawRam};
use core::sync::atomic::{Ordering, fence};

/// The receive header as two stores: bytes 0..8 and 8..12.
pub(crate) const HEADER_WORDS: (u64, u32) = {
    let h = receive_header();
    (
        u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]),
        u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
    )
};

/// Offset of the length/flags/next word in a descriptor.
const DESC_REST: u64 = 8;
/// Bit position of `flags` in that word.
const DESC_FLAGS_SHIFT: u32 = 32;

/// Entries the driver has published and the device not read (the avail
/// idx read once per batch). `None` if it jumped (left to the general
/// path, which names it).
pub(crate) fn pending(avail: HostRange<'_>, q: &mut SplitQueue) -> Option<u16> {
    let idx = avail.read_u16(RING_IDX)?;
    if idx.wrapping_sub(q.last_avail_idx) > q.layout.size {
        return None;
    }
    q.avail_idx_seen = idx;
    // Entries and descriptors are read after the idx (§2.7.13).
    fence(Ordering::Acquire);
    Some(idx.wrapping_sub(q.last_avail_idx))
}

/// One queue's three areas, resolved.
pub(crate) struct Rings<'a> {
    pub(crate) desc: HostRange<'a>,
    pub(crate) avail: HostRange<'a>,
    pub(crate) used: HostRange<'a>,
}

impl<'a> Rings<'a> {
    /// The queue's three areas: one lookup for the span they share when it
    /// is small (worked out when the queue was set up), else one each.
    #[inline]
    pub(crate) fn of(q: &SplitQueue, ram: &'a RawRam) -> Option<Self> {
        if let Some(s) = q.span
            && let Some(span) = ram.resolve(s.lo, s.len, true)
        {
            let [(d, dl), (a, al), (u, ul)] = s.areas;
            return Some(Rings {
                desc: span.sub(d, dl, false)?,
                avail: span.sub(a, al, false)?,
                used: span.sub(u, ul, true)?,
            });
        }
        let [(d, dl), (a, al), (u, ul)] = q.layout.areas();
        Some(Rings {
            desc: ram.resolve(d, dl, false)?,
            avail: ram.resolve(a, al, false)?,
            used: ram.resolve(u, ul, true)?,
        })
    }

    /// The descriptor named by avail-ring entry `idx`, as (head, addr,
    /// len, flags).
    #[inline]
    pub(crate) fn entry(&self, idx: u16, size: u16) -> Option<(u16, u64, u32, u16)> {
        let slot = u64::from(idx & (size - 1));
        let head = self
            .avail
            .read_u16(RING_ENTRIES + AVAIL_ENTRY_SIZE * slot)?;
        if head >= size {
            return None;
        }
        let at = DESC_SIZE * u64::from(head);
        let addr = self.desc.read_u64(at)?;
        let rest = self.desc.read_u64(at + DESC_REST)?;
        Some((head, addr, rest as u32, (rest >> DESC_FLAGS_SHIFT) as u16))
    }

    /// Writes used element `idx`: `head`, with `len` bytes written.
    #[inline]
    pub(crate) fn set_used(&self, idx: u16, size: u16, head: u16, len: u32) -> Option<()> {
        let slot = u64::from(idx & (size - 1));
        let elem = u64::from(head) | (u64::from(len) << (USED_ELEM_LEN * 8));
        self.used
            .write_u64(RING_ENTRIES + USED_ELEM_SIZE * slot, elem)
    }

    /// Makes the used elements written so far visible to the driver: the
    /// elements (and buffer contents) before the idx (§2.7.8).
    pub(crate) fn publish(&self, q: &mut SplitQueue) {
        if q.published_used != q.used_idx {
            fence(Ordering::Release);
            if self.used.write_u16(RING_IDX, q.used_idx).is_some() {
                q.published_used = q.used_idx;
            }
        }
    }
}
