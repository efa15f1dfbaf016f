//! The switch's one-copy path between the NIC's buffers and a guest's virtio ring, both raw views: a frame copied once, the ring resolved once.
//!
//! Like a link's fast path it takes the common case only (one writable
//! receive descriptor, one transmit descriptor holding header and frame,
//! no `avail_event` to keep up) and hands anything else, untouched, to the
//! general path, which names any fault; the tests check both do the same.

use super::{ETH_HEADER, MAC_LEN, MAX_WIRE_FRAME, SRC_MAC, WireTx};
use crate::datapath::endpoint::RawRing;
use crate::datapath::rings::{HEADER_WORDS, Rings, pending, served};
use crate::devices::virtio::net::NET_HDR_LEN;
use crate::devices::virtio::queue::VIRTQ_DESC_F_WRITE;
use crate::mem::raw::HostRange;
use vmm_abi::report::NicPortFlow;

/// What the one-copy path did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fast {
    /// Done: a frame delivered (receive), or as many sent as there were
    /// (transmit).
    Done,
    /// The port has no receive buffer posted.
    NoBuffer,
    /// Left to the general path, nothing changed for the entry it stopped
    /// at.
    General,
}

/// Delivers the wire's frame (`frame`, `len` bytes) into the next receive
/// buffer of `ring`: the receive header, then the frame, one copy.
pub(super) fn deliver(ring: RawRing<'_>, frame: HostRange<'_>, len: u32) -> Fast {
    let (q, ram) = (ring.queue, ring.ram);
    if !served(q) {
        return Fast::General;
    }
    let Some(r) = Rings::of(q, ram) else {
        return Fast::General;
    };
    match pending(r.avail, q) {
        Some(0) => return Fast::NoBuffer,
        Some(_) => {}
        None => return Fast::General,
    }
    let size = q.layout.size;
    let Some((head, addr, r_len, flags)) = r.entry(q.last_avail_idx, size) else {
        return Fast::General;
    };
    let need = NET_HDR_LEN.saturating_add(len);
    if flags != VIRTQ_DESC_F_WRITE || r_len < need || r_len > q.limits.max_chain_bytes {
        return Fast::General;
    }
    let hdr = u64::from(NET_HDR_LEN);
    let copied = ram.resolve(addr, need.into(), true).and_then(|to| {
        to.write_u64(0, HEADER_WORDS.0)?;
        to.write_u32(8, HEADER_WORDS.1)?;
        frame.copy_to(0, len.into(), &to, hdr)
    });
    // The used slot is inside the ring resolved whole: it does not fail
    // once the ring resolved.
    if copied.is_none() || r.set_used(q.used_idx, size, head, need).is_none() {
        return Fast::General;
    }
    q.last_avail_idx = q.last_avail_idx.wrapping_add(1);
    q.used_idx = q.used_idx.wrapping_add(1);
    r.publish(q);
    Fast::Done
}

/// What one port's transmit pass on the one-copy path did.
pub(super) struct Sent {
    /// Frames taken from the guest's ring (sent or dropped).
    pub taken: u32,
    /// A frame was posted to the NIC.
    pub posted: bool,
    /// The NIC's transmit ring was full.
    pub full: bool,
    /// Why it stopped.
    pub stop: Fast,
}

/// Sends up to `budget` frames from `ring` (a port whose frames must come
/// from `mac`) to the wire: each copied once, from behind the guest's
/// header into a claimed slot, its source checked on the NIC's copy; a
/// spoofed frame is completed and counted, its slot not posted.
pub(super) fn send<W: WireTx>(
    ring: RawRing<'_>,
    wire: &mut W,
    budget: u32,
    mac: &[u8; MAC_LEN],
    flow: &mut NicPortFlow,
) -> Sent {
    let mut out = Sent {
        taken: 0,
        posted: false,
        full: false,
        stop: Fast::General,
    };
    let (q, ram) = (ring.queue, ring.ram);
    if !served(q) {
        return out;
    }
    let Some(t) = Rings::of(q, ram) else {
        return out;
    };
    let ready = match pending(t.avail, q) {
        Some(n) => u32::from(n).min(budget) as u16,
        None => return out,
    };
    let size = q.layout.size;
    let hdr = u64::from(NET_HDR_LEN);
    let mut done = 0u16;
    out.stop = Fast::Done;
    while done < ready {
        let Some((head, addr, t_len, flags)) = t.entry(q.last_avail_idx.wrapping_add(done), size)
        else {
            out.stop = Fast::General;
            break;
        };
        let len = t_len.wrapping_sub(NET_HDR_LEN);
        if flags != 0
            || t_len < NET_HDR_LEN
            || t_len > q.limits.max_chain_bytes
            || !(ETH_HEADER..=MAX_WIRE_FRAME).contains(&len)
        {
            out.stop = Fast::General;
            break;
        }
        let Some(slot) = wire.claim() else {
            out.full = true;
            break;
        };
        let mut src = [0u8; MAC_LEN];
        let copied = wire.raw(slot).and_then(|to| {
            let from = ram.resolve(addr.checked_add(hdr)?, len.into(), false)?;
            from.copy_to(0, len.into(), &to, 0)?;
            // The source is read from the NIC's copy: what is checked is
            // what is sent.
            to.read_into(SRC_MAC as u64, &mut src)
        });
        if copied.is_none()
            || t.set_used(q.used_idx.wrapping_add(done), size, head, 0)
                .is_none()
        {
            // The claimed slot serves the general path's next frame.
            out.stop = Fast::General;
            break;
        }
        done += 1;
        if src != *mac {
            // Not posted: the next frame reuses the slot.
            flow.drop_spoofed += 1;
            continue;
        }
        wire.post(slot, len);
        out.posted = true;
        flow.tx_frames += 1;
        flow.tx_bytes += u64::from(len);
    }
    q.last_avail_idx = q.last_avail_idx.wrapping_add(done);
    q.used_idx = q.used_idx.wrapping_add(done);
    t.publish(q);
    out.taken = u32::from(done);
    out
}
