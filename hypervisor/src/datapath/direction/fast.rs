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
use crate::datapath::rings::{HEADER_WORDS, Rings, pending};
use crate::devices::virtio::net::NET_HDR_LEN;
use crate::devices::virtio::queue::{RING_IDX, SplitQueue, VIRTQ_DESC_F_WRITE};
use crate::mem::access::{Gpa, GuestRead};
use crate::mem::raw::RawRam;
use vmm_abi::corral::devices::MAX_FRAME_BYTES;

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
        if P::INSPECTS && !policy.room() {
            break;
        }
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

/// The policy point of the fast path. A policy that judges frames in
/// place (a program that can only pass or drop, compiled or interpreted,
/// so nothing the receiver does to its buffer can leave it) gets the frame copied behind
/// the receive header into the receiver's buffer, as without a policy,
/// and judges it there; a frame it drops is wiped from the buffer, which
/// serves the next frame. Any other policy gets the frame copied out of
/// the sender's buffer into its own (out of every guest's reach), judges
/// it there, and a frame that passes is written from that copy behind the
/// receive header into the receiver's buffer. `None` (nothing judged) if a
/// buffer is out of place: the general path then names it. `Some(false)`
/// for a frame the policy drops.
#[inline(always)]
fn judged<P: FramePolicy>(
    policy: &mut P,
    src: &RawRam,
    (t_addr, t_len): (u64, u32),
    dst: &RawRam,
    (r_addr, r_len): (u64, u32),
) -> Option<bool> {
    if policy.judges_in_place() {
        let frame = src.copy_behind_prefix_at(
            (t_addr, t_len.into()),
            dst,
            (r_addr, r_len.into()),
            HEADER_WORDS,
        )?;
        // Judged, the frame is handed over or dropped (`frame` is one
        // writable range of the receiver's: wiping it cannot fail).
        let passed = policy.judge_in_place(&frame)? == Verdict::Pass;
        if !passed {
            frame.zero();
        }
        return Some(passed);
    }
    let hdr = u64::from(NET_HDR_LEN);
    let len = (t_len - NET_HDR_LEN) as usize;
    let from = src.resolve(t_addr, t_len.into(), false)?;
    let to = dst.resolve(r_addr, r_len.into(), true)?;
    from.read_into(hdr, policy.own_buffer()?.get_mut(..len)?)?;
    if policy.judge_own(len) == Verdict::Drop {
        return Some(false);
    }
    // `to` was resolved whole and writable for a frame of this length:
    // this write does not fail once the checks above passed.
    Some(
        policy
            .own_buffer()
            .and_then(|own| to.write_prefixed(HEADER_WORDS, own.get(..len)?))
            .is_some(),
    )
}
