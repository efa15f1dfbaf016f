//! A virtio queue's three areas resolved to host memory once, as the fast paths (a link's, a NIC's) read and write them: avail entries, used elements, the published index.
//!
//! Each reader stops at anything out of place (`None`), leaving the
//! queue's indices as they were; the general path then names the fault.
#![forbid(unsafe_code)]

use crate::devices::virtio::net::receive_header;
use crate::devices::virtio::queue::{
    AVAIL_ENTRY_SIZE, DESC_SIZE, Descriptor, RING_ENTRIES, RING_IDX, SplitQueue, USED_ELEM_LEN,
    USED_ELEM_SIZE,
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

/// Whether a fast path serves the queue: one that does not keep
/// `avail_event` current (it never writes it).
pub(crate) fn served(q: &SplitQueue) -> bool {
    !q.event_idx || q.no_notify
}

/// What [`Rings::pop`] found.
pub(crate) enum Pop {
    /// The driver has published nothing new.
    Empty,
    /// An entry of one plain descriptor (its head and the descriptor),
    /// consumed: its buffer lies in one piece of the view, writable if the
    /// descriptor is.
    Single(u16, Descriptor),
    /// Anything else (a chain, an indirect table, a buffer out of place, an
    /// index that jumped): the entry is left where it is for the general
    /// path, which names any fault.
    General,
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
    /// Always inlined: the switch resolves a port's ring per frame.
    #[inline(always)]
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
    #[inline(always)]
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

    /// Consumes the next available entry of `q` if it is one plain
    /// descriptor whose buffer lies in one piece of `ram` (checked as the
    /// general path checks it: writable if the descriptor is); reads the
    /// avail idx only once the entries seen so far are used up, and keeps
    /// `avail_event` current as the queue's own pop does.
    #[inline]
    pub(crate) fn pop(&self, q: &mut SplitQueue, ram: &RawRam) -> Pop {
        if q.last_avail_idx == q.avail_idx_seen {
            match pending(self.avail, q) {
                Some(0) => return Pop::Empty,
                Some(_) => {}
                None => return Pop::General,
            }
        }
        let Some((head, addr, len, flags)) = self.entry(q.last_avail_idx, q.layout.size) else {
            return Pop::General;
        };
        let d = Descriptor {
            addr,
            len,
            flags,
            next: 0,
        };
        if d.has_next()
            || d.is_indirect()
            || len > q.limits.max_chain_bytes
            || ram.resolve(addr, len.into(), d.is_writable()).is_none()
        {
            return Pop::General;
        }
        let next = q.last_avail_idx.wrapping_add(1);
        if q.event_idx && !q.no_notify {
            // Keep asking for a kick at the next new entry (§2.7.10), as
            // the queue's own pop does.
            let at = RING_ENTRIES + USED_ELEM_SIZE * u64::from(q.layout.size);
            if self.used.write_u16(at, next).is_none() {
                return Pop::General;
            }
        }
        q.last_avail_idx = next;
        Pop::Single(head, d)
    }

    /// Adds used element `head` (`len` bytes written) at `q`'s used idx
    /// and moves the idx on; `None` (nothing changed) if the used ring
    /// does not take it, which does not happen once the rings resolved.
    #[inline]
    pub(crate) fn add_used(&self, q: &mut SplitQueue, head: u16, len: u32) -> Option<()> {
        self.set_used(q.used_idx, q.layout.size, head, len)?;
        q.used_idx = q.used_idx.wrapping_add(1);
        Some(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::testing::Guest;
    use crate::devices::virtio::queue::{
        Popped, QueueLimits, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
    };
    use crate::devices::virtio::testing::MEM_SIZE;
    use proptest::prelude::*;

    /// A posted entry: a plain buffer, a chain's first descriptor, an
    /// indirect one, a buffer past the end of memory, an oversized one.
    fn entry() -> impl Strategy<Value = (u64, u32, u16)> {
        let good =
            (0u64..0x8000, 1u32..0x800).prop_map(|(a, l)| (0x10000 + a, l, VIRTQ_DESC_F_WRITE));
        prop_oneof![
            4 => good,
            1 => Just((0x10000, 64, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT)),
            1 => Just((0x10000, 64, VIRTQ_DESC_F_INDIRECT)),
            1 => Just((MEM_SIZE as u64 - 16, 64, VIRTQ_DESC_F_WRITE)),
            1 => Just((0x10000, 0x10_0000, 0)),
        ]
    }

    proptest! {
        /// Whatever the driver posts, the resolved rings take exactly the
        /// entries the queue would give as one checked descriptor, the same
        /// way, and leave every other entry in place for it.
        #[test]
        fn pop_takes_what_the_queue_would_and_leaves_the_rest(
            posts in proptest::collection::vec(entry(), 0..40),
            event_idx in any::<bool>(),
        ) {
            let mut g = Guest::new();
            let limits = QueueLimits { max_chain_bytes: 0x1000, ..QueueLimits::default() };
            let mut fast = SplitQueue::new(g.rx_layout(), event_idx, limits).unwrap();
            let mut general = SplitQueue::new(g.rx_layout(), event_idx, limits).unwrap();
            let layout = g.rx_layout();
            let avail_event = layout.used_ring + RING_ENTRIES + USED_ELEM_SIZE * u64::from(layout.size);
            for &(addr, len, flags) in &posts {
                g.post_raw(addr, len, flags);
            }
            let view = g.ram;
            let rings = Rings::of(&fast, &view).unwrap();
            for _ in 0..posts.len() + 1 {
                let want = general.pop_single(&mut g.ram);
                match rings.pop(&mut fast, &view) {
                    Pop::Empty => prop_assert_eq!(want, Ok(Popped::Empty)),
                    Pop::Single(head, desc) => {
                        prop_assert_eq!(want, Ok(Popped::Single { head, desc }));
                    }
                    Pop::General => {
                        let taken = matches!(want, Ok(Popped::Single { .. } | Popped::Empty));
                        prop_assert!(!taken, "{:?}", want);
                        // The general path takes the entry from here.
                        let again = fast.pop_single(&mut g.ram);
                        prop_assert_eq!(&again, &want);
                        if let Ok(Popped::Chain) = again {
                            let mut chain = crate::devices::virtio::queue::Chain::default();
                            let a = fast.pop_avail_into(&mut g.ram, &mut chain).is_ok();
                            let b = general.pop_avail_into(&mut g.ram, &mut chain).is_ok();
                            prop_assert_eq!(a, b);
                        }
                    }
                }
                prop_assert_eq!(fast.last_avail_idx, general.last_avail_idx);
                if event_idx {
                    // Both ask for a kick at the next new entry.
                    let asked = crate::mem::access::GuestRead::read_u16(&g.ram, crate::mem::access::Gpa(avail_event)).unwrap();
                    prop_assert_eq!(asked, general.last_avail_idx);
                }
            }
        }
    }

    #[test]
    fn used_elements_go_through_the_rings_and_publish_once() {
        let mut g = Guest::new();
        let mut q = SplitQueue::new(g.rx_layout(), false, QueueLimits::default()).unwrap();
        let d = g.post_raw(0x10000, 256, VIRTQ_DESC_F_WRITE);
        let view = g.ram;
        let rings = Rings::of(&q, &view).unwrap();
        let Pop::Single(head, _) = rings.pop(&mut q, &view) else {
            panic!("a plain buffer is popped");
        };
        assert_eq!(head, d);
        assert!(matches!(rings.pop(&mut q, &view), Pop::Empty));
        rings.add_used(&mut q, head, 77).unwrap();
        assert_eq!(g.rx_used_entries(), vec![], "not published yet");
        rings.publish(&mut q);
        assert_eq!(g.rx_used_entries(), vec![(u32::from(d), 77)]);
        assert_eq!(q.published_used, 1);
    }
}
