//! The link's fast path over raw views: single-descriptor frames and buffers moved with each ring resolved to host memory once per batch.
//!
//! It handles the common case only (one transmit descriptor holding header
//! and frame, one writable receive descriptor, no `avail_event` to keep up)
//! and stops, leaving every index as it was, at the first thing it does not
//! handle or that looks wrong; the general path then carries on
//! and names any fault. Its effects are the same as the general path's,
//! which the tests check against each other.

use super::Direction;
use crate::datapath::policy::{FramePolicy, Verdict};
use crate::devices::virtio::net::NET_HDR_LEN;
use crate::devices::virtio::net::receive_header;
use crate::devices::virtio::queue::{
    AVAIL_ENTRY_SIZE, DESC_SIZE, RING_ENTRIES, RING_IDX, SplitQueue, USED_ELEM_LEN, USED_ELEM_SIZE,
    VIRTQ_DESC_F_WRITE,
};
use crate::mem::access::{Gpa, GuestRead};
use crate::mem::raw::{HostRange, RawRam};
use core::sync::atomic::{Ordering, fence};
use vmm_abi::corral::devices::MAX_FRAME_BYTES;

/// The receive header as two stores: bytes 0..8 and 8..12.
const HEADER_WORDS: (u64, u32) = {
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
/// Bytes of a ring's idx or event field.
const RING_FIELD: u64 = 2;
/// Largest span of a queue's three areas resolved with one lookup.
const MAX_SPAN: u64 = 64 * 1024;

/// Entries the driver has published and the device not read (the avail
/// idx read once per batch). `None` if it jumped (left to the general
/// path, which names it).
fn pending(avail: HostRange<'_>, q: &mut SplitQueue) -> Option<u16> {
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
struct Rings<'a> {
    desc: HostRange<'a>,
    avail: HostRange<'a>,
    used: HostRange<'a>,
}

impl<'a> Rings<'a> {
    /// The queue's three areas: one lookup for the span they share when it
    /// is small (a driver allocates them together), else one each.
    #[inline]
    fn of(q: &SplitQueue, ram: &'a RawRam) -> Option<Self> {
        let l = q.layout;
        let n = u64::from(l.size);
        let areas = [
            (l.desc_table, DESC_SIZE * n, false),
            (
                l.avail_ring,
                RING_ENTRIES + AVAIL_ENTRY_SIZE * n + RING_FIELD,
                false,
            ),
            (
                l.used_ring,
                RING_ENTRIES + USED_ELEM_SIZE * n + RING_FIELD,
                true,
            ),
        ];
        let lo = l.desc_table.min(l.avail_ring).min(l.used_ring);
        let hi = areas
            .iter()
            .map(|&(a, len, _)| a.saturating_add(len))
            .max()
            .unwrap_or(lo);
        if hi - lo <= MAX_SPAN
            && let Some(span) = ram.resolve(lo, hi - lo, true)
        {
            let [d, a, u] = areas.map(|(at, len, write)| span.sub(at - lo, len, write));
            return Some(Rings {
                desc: d?,
                avail: a?,
                used: u?,
            });
        }
        let [d, a, u] = areas.map(|(at, len, write)| ram.resolve(at, len, write));
        Some(Rings {
            desc: d?,
            avail: a?,
            used: u?,
        })
    }

    /// The descriptor named by avail-ring entry `idx`, as (head, addr,
    /// len, flags).
    #[inline]
    fn entry(&self, idx: u16, size: u16) -> Option<(u16, u64, u32, u16)> {
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
    fn set_used(&self, idx: u16, size: u16, head: u16, len: u32) -> Option<()> {
        let slot = u64::from(idx & (size - 1));
        let elem = u64::from(head) | (u64::from(len) << (USED_ELEM_LEN * 8));
        self.used
            .write_u64(RING_ENTRIES + USED_ELEM_SIZE * slot, elem)
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
///
/// It takes as many frames as both rings offer at once, then walks them
/// with one descriptor pair per frame and updates every index and counter
/// once at the end. At the first entry it does not take (a chain, a frame
/// larger than the buffer, anything wrong) it stops before it; the general
/// path then handles (or names) that entry.
pub(super) fn frames<F, B, P: FramePolicy>(
    dir: &mut Direction<F, B>,
    tx: &mut SplitQueue,
    src: &RawRam,
    rq: &mut SplitQueue,
    dst: &RawRam,
    budget: u32,
    policy: &mut P,
) -> (u32, Stop) {
    // Keeping `avail_event` current, a receive buffer kept from an earlier
    // frame, and a policy without a buffer of its own are the general
    // path's job.
    if (tx.event_idx && !tx.no_notify)
        || (rq.event_idx && !rq.no_notify)
        || dir.spare.is_some()
        || (P::INSPECTS && policy.own_buffer().is_none())
    {
        return (0, Stop::General);
    }
    // An idle direction costs one lookup and one idx read.
    if src
        .read_u16(Gpa(tx.layout.avail_ring + RING_IDX))
        .is_ok_and(|idx| idx == tx.last_avail_idx)
    {
        dir.sender_empty = true;
        return (0, Stop::Idle);
    }
    let Some(t) = Rings::of(tx, src) else {
        return (0, Stop::General);
    };
    let tx_ready = match pending(t.avail, tx) {
        Some(0) => {
            dir.sender_empty = true;
            return (0, Stop::Idle);
        }
        Some(n) => n,
        None => return (0, Stop::General),
    };
    let Some(r) = Rings::of(rq, dst) else {
        return (0, Stop::General);
    };
    let rx_ready = match pending(r.avail, rq) {
        Some(0) => return (0, Stop::Idle),
        Some(n) => n,
        None => return (0, Stop::General),
    };
    // Frames taken (`t_done`) and buffers filled (`r_done`): the same
    // without a policy; a frame the policy drops keeps its buffer.
    let tx_limit = u32::from(tx_ready).min(budget) as u16;
    let hdr = u64::from(NET_HDR_LEN);
    let (t_size, r_size) = (tx.layout.size, rq.layout.size);
    let (t_max, r_max) = (tx.limits.max_chain_bytes, rq.limits.max_chain_bytes);
    let mut bytes = 0u64;
    let (mut t_done, mut r_done) = (0u16, 0u16);
    while t_done < tx_limit && r_done < rx_ready {
        let Some((th, t_addr, t_len, t_flags)) =
            t.entry(tx.last_avail_idx.wrapping_add(t_done), t_size)
        else {
            break;
        };
        let Some((rh, r_addr, r_len, r_flags)) =
            r.entry(rq.last_avail_idx.wrapping_add(r_done), r_size)
        else {
            break;
        };
        if t_flags != 0
            || r_flags != VIRTQ_DESC_F_WRITE
            || t_len < NET_HDR_LEN
            || (t_len - NET_HDR_LEN) as usize > MAX_FRAME_BYTES
            || t_len > r_len
            || t_len > t_max
            || r_len > r_max
        {
            break;
        }
        let delivered = if P::INSPECTS {
            match judged(policy, src, (t_addr, t_len), dst, (r_addr, r_len)) {
                Some(v) => v,
                None => break,
            }
        } else {
            let copied = src.copy_behind_prefix(
                (t_addr, t_len.into()),
                dst,
                (r_addr, r_len.into()),
                HEADER_WORDS,
            );
            if copied.is_none() {
                break;
            }
            true
        };
        // The ring ranges were resolved whole and the slots are inside
        // them: these writes do not fail once the checks above passed.
        if t.set_used(tx.used_idx.wrapping_add(t_done), t_size, th, 0)
            .is_none()
        {
            break;
        }
        t_done += 1;
        if !delivered {
            dir.dropped_by_policy += 1;
            continue;
        }
        if r.set_used(rq.used_idx.wrapping_add(r_done), r_size, rh, t_len)
            .is_none()
        {
            break;
        }
        r_done += 1;
        bytes += u64::from(t_len) - hdr;
    }
    tx.last_avail_idx = tx.last_avail_idx.wrapping_add(t_done);
    rq.last_avail_idx = rq.last_avail_idx.wrapping_add(r_done);
    tx.used_idx = tx.used_idx.wrapping_add(t_done);
    rq.used_idx = rq.used_idx.wrapping_add(r_done);
    dir.flow.frames += u64::from(r_done);
    dir.flow.bytes += bytes;
    t.publish(tx);
    r.publish(rq);
    let stop = if t_done == tx_limit || r_done == rx_ready {
        Stop::Idle
    } else {
        Stop::General
    };
    (u32::from(t_done), stop)
}

/// The policy point of the fast path: the frame behind the sender's header
/// is copied into the policy's own buffer (out of the sender's reach) and
/// judged there; a frame that passes is written from that copy, behind the
/// receive header, into the receiver's buffer. `None` (nothing judged) if
/// a buffer is out of place: the general path then names it. `Some(false)`
/// for a frame the policy drops.
fn judged<P: FramePolicy>(
    policy: &mut P,
    src: &RawRam,
    (t_addr, t_len): (u64, u32),
    dst: &RawRam,
    (r_addr, r_len): (u64, u32),
) -> Option<bool> {
    let hdr = u64::from(NET_HDR_LEN);
    let len = (t_len - NET_HDR_LEN) as usize;
    let from = src.resolve(t_addr, t_len.into(), false)?;
    let to = dst.resolve(r_addr, r_len.into(), true)?;
    let own = policy.own_buffer()?.get_mut(..len)?;
    from.read_into(hdr, own)?;
    if policy.judge_own(len) == Verdict::Drop {
        return Some(false);
    }
    let own = policy.own_buffer()?.get(..len)?;
    to.write_u64(0, HEADER_WORDS.0)?;
    to.write_u32(8, HEADER_WORDS.1)?;
    to.write_from(hdr, own)?;
    Some(true)
}
