//! The link's fast path over raw views: single-descriptor frames and buffers moved with each ring resolved to host memory once per batch.
//!
//! It handles the common case only (one transmit descriptor holding header
//! and frame, one writable receive descriptor, no `avail_event` to keep up)
//! and stops, leaving every index as it was, at the first thing it does not
//! handle or that looks wrong; the general [`super::pump`] then carries on
//! and names any fault. Its effects are the same as the general path's,
//! which the tests check against each other.

use super::{Direction, Spare, header_words};
use crate::mem::raw::{HostRange, RawRam};
use crate::virtio::net::NET_HDR_LEN;
use crate::virtio::queue::{
    AVAIL_ENTRY_SIZE, DESC_SIZE, RING_ENTRIES, RING_IDX, SplitQueue, USED_ELEM_LEN, USED_ELEM_SIZE,
    VIRTQ_DESC_F_WRITE,
};
use core::sync::atomic::{Ordering, fence};
use vmm_abi::devices::MAX_FRAME_BYTES;

/// Offset of the length/flags/next word in a descriptor.
const DESC_REST: u64 = 8;
/// Bit position of `flags` in that word.
const DESC_FLAGS_SHIFT: u32 = 32;
/// Bytes of a ring's idx or event field.
const RING_FIELD: u64 = 2;

/// Reads the avail idx into the queue's view; whether it shows new
/// entries. `None` if it jumped (left to the general path, which names it).
fn has_new(avail: HostRange<'_>, q: &mut SplitQueue) -> Option<bool> {
    let idx = avail.read_u16(RING_IDX)?;
    if idx.wrapping_sub(q.last_avail_idx) > q.layout.size {
        return None;
    }
    q.avail_idx_seen = idx;
    // Entries and descriptors are read after the idx (§2.7.13).
    fence(Ordering::Acquire);
    Some(idx != q.last_avail_idx)
}

/// A queue's available ring, resolved.
fn avail_ring<'a>(q: &SplitQueue, ram: &'a RawRam) -> Option<HostRange<'a>> {
    let n = u64::from(q.layout.size);
    ram.resolve(
        q.layout.avail_ring,
        RING_ENTRIES + AVAIL_ENTRY_SIZE * n + RING_FIELD,
        false,
    )
}

/// One queue's three areas, resolved.
struct Rings<'a> {
    desc: HostRange<'a>,
    avail: HostRange<'a>,
    used: HostRange<'a>,
}

impl<'a> Rings<'a> {
    /// The queue's areas, with its available ring already resolved.
    fn of(q: &SplitQueue, ram: &'a RawRam, avail: HostRange<'a>) -> Option<Self> {
        let l = q.layout;
        let n = u64::from(l.size);
        Some(Rings {
            desc: ram.resolve(l.desc_table, DESC_SIZE * n, false)?,
            avail,
            used: ram.resolve(
                l.used_ring,
                RING_ENTRIES + USED_ELEM_SIZE * n + RING_FIELD,
                true,
            )?,
        })
    }

    /// Whether the driver has published entries the device has not read.
    fn has_avail(&self, q: &mut SplitQueue) -> Option<bool> {
        if q.last_avail_idx != q.avail_idx_seen {
            return Some(true);
        }
        has_new(self.avail, q)
    }

    /// The next available descriptor, as (head, addr, len, flags), without
    /// popping it.
    fn peek(&self, q: &SplitQueue) -> Option<(u16, u64, u32, u16)> {
        let slot = u64::from(q.last_avail_idx & (q.layout.size - 1));
        let head = self
            .avail
            .read_u16(RING_ENTRIES + AVAIL_ENTRY_SIZE * slot)?;
        if head >= q.layout.size {
            return None;
        }
        let at = DESC_SIZE * u64::from(head);
        let addr = self.desc.read_u64(at)?;
        let rest = self.desc.read_u64(at + DESC_REST)?;
        Some((head, addr, rest as u32, (rest >> DESC_FLAGS_SHIFT) as u16))
    }

    /// Makes the used elements written so far visible to the driver: the
    /// elements (and buffer contents) before the idx (§2.7.8).
    fn publish(&self, q: &mut SplitQueue) {
        if q.published_used != q.used_idx {
            fence(Ordering::Release);
            if self.used.write_u16(RING_IDX, q.used_idx).is_some() {
                q.published_used = q.used_idx;
            }
        }
    }

    /// Writes the used element for `head` (`len` bytes written) and counts
    /// it; published later by the general path.
    fn push_used(&self, q: &mut SplitQueue, head: u16, len: u32) -> Option<()> {
        let slot = u64::from(q.used_idx & (q.layout.size - 1));
        let elem = u64::from(head) | (u64::from(len) << (USED_ELEM_LEN * 8));
        self.used
            .write_u64(RING_ENTRIES + USED_ELEM_SIZE * slot, elem)?;
        q.used_idx = q.used_idx.wrapping_add(1);
        Some(())
    }
}

/// Why the fast path stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// The budget is used up, or the sender or the receiver has nothing
    /// more right now: nothing is left for the general path but publishing.
    Idle,
    /// Something the general path must handle (or name) comes next.
    General,
}

/// Moves up to `budget` frames on the fast path; returns how many it
/// handed over and why it stopped (with nothing half done).
pub(super) fn frames(
    dir: &mut Direction,
    tx: &mut SplitQueue,
    src: &RawRam,
    rq: &mut SplitQueue,
    dst: &RawRam,
    rx_generation: u32,
    budget: u32,
) -> (u32, Stop) {
    // Keeping `avail_event` current is the general path's job.
    if (tx.event_idx && !tx.no_notify) || (rq.event_idx && !rq.no_notify) {
        return (0, Stop::General);
    }
    // An idle direction costs one lookup and one idx read.
    let Some(tx_avail) = avail_ring(tx, src) else {
        return (0, Stop::General);
    };
    if tx.last_avail_idx == tx.avail_idx_seen {
        match has_new(tx_avail, tx) {
            Some(true) => {}
            Some(false) => return (0, Stop::Idle),
            None => return (0, Stop::General),
        }
    }
    let rx_avail = avail_ring(rq, dst);
    let (Some(t), Some(r)) = (
        Rings::of(tx, src, tx_avail),
        rx_avail.and_then(|a| Rings::of(rq, dst, a)),
    ) else {
        return (0, Stop::General);
    };
    let (hdr_lo, hdr_hi) = header_words();
    let hdr = u64::from(NET_HDR_LEN);
    let mut handed = 0;
    let mut stop = Stop::General;
    while handed < budget {
        match t.has_avail(tx) {
            Some(true) => {}
            Some(false) => {
                stop = Stop::Idle;
                break;
            }
            None => break,
        }
        // A receive buffer: the one kept from before, or the next posted
        // (popped here, kept as the spare only if no frame fills it now).
        let (rx_head, rx_len, rx_buf, fresh) = match dir.spare {
            Some(Spare::Single {
                head, addr, len, ..
            }) => {
                let Some(buf) = dst.resolve(addr, len.into(), true) else {
                    break;
                };
                (head, len, buf, false)
            }
            Some(Spare::Chain { .. }) => break,
            None => {
                match r.has_avail(rq) {
                    Some(true) => {}
                    Some(false) => {
                        stop = Stop::Idle;
                        break;
                    }
                    None => break,
                }
                let Some((head, addr, len, flags)) = r.peek(rq) else {
                    break;
                };
                if flags != VIRTQ_DESC_F_WRITE || len > rq.limits.max_chain_bytes {
                    break;
                }
                let Some(buf) = dst.resolve(addr, len.into(), true) else {
                    break;
                };
                rq.last_avail_idx = rq.last_avail_idx.wrapping_add(1);
                (head, len, buf, true)
            }
        };
        // Keeps a freshly popped buffer for the next frame.
        let keep = |dir: &mut Direction| {
            if fresh {
                dir.spare = Some(Spare::Single {
                    head: rx_head,
                    addr: rx_buf.guest_addr(),
                    len: rx_len,
                    generation: rx_generation,
                });
            }
        };
        // The frame: one readable descriptor, header first.
        let Some((head, addr, len, flags)) = t.peek(tx) else {
            keep(dir);
            break;
        };
        let tx_buf = match src.resolve(addr, len.into(), false) {
            Some(buf) if flags == 0 && len >= NET_HDR_LEN && len <= tx.limits.max_chain_bytes => {
                buf
            }
            _ => {
                keep(dir);
                break;
            }
        };
        let frame = len - NET_HDR_LEN;
        if frame as usize > MAX_FRAME_BYTES || len > rx_len {
            keep(dir);
            if t.push_used(tx, head, 0).is_none() {
                break;
            }
            tx.last_avail_idx = tx.last_avail_idx.wrapping_add(1);
            dir.flow.drop_size += 1;
            handed += 1;
            continue;
        }
        // Bounds were checked by `resolve` (len fits both buffers), so these
        // cannot fail; if one did, the general path would redo the frame.
        let copied = rx_buf
            .write_u64(0, hdr_lo)
            .and_then(|()| rx_buf.write_u32(8, hdr_hi))
            .and_then(|()| tx_buf.copy_to(hdr, &rx_buf, hdr, frame.into()));
        if copied.is_none() || t.push_used(tx, head, 0).is_none() {
            keep(dir);
            break;
        }
        tx.last_avail_idx = tx.last_avail_idx.wrapping_add(1);
        if r.push_used(rq, rx_head, len).is_none() {
            // The used ring was resolved writable above; this cannot happen.
            // Count the frame as the general path would for a receiver fault.
            dir.flow.drop_peer += 1;
            handed += 1;
            break;
        }
        dir.spare = None;
        dir.flow.frames += 1;
        dir.flow.bytes += u64::from(frame);
        handed += 1;
    }
    if handed == budget {
        stop = Stop::Idle;
    }
    t.publish(tx);
    r.publish(rq);
    (handed, stop)
}
