//! One direction of a link: frames move from a sender's transmit queue to a receiver's receive queue, with every frame counted.
//!
//! [`pump`] is the whole data path of the polling core: it pops transmit
//! chains, copies each frame (header replaced) into a receive chain, and
//! completes both, publishing each ring's used idx once per batch. A frame
//! that is too large for the buffer the receiver posted is dropped and
//! counted (`drop_size`), and the receive chain is kept for the next frame;
//! when the receiver has ended for good, frames are completed and counted
//! as `drop_peer`. When the receiver has no buffer the sender's frames stay
//! in its ring (backpressure): nothing is lost, for the link's hold time.
//! A receiver that has taken nothing for that long while frames waited is
//! stalled ([`pump_raw`]): from then on the frames it cannot take are
//! completed and counted as `drop_stalled`, until it posts a buffer again,
//! when delivery resumes at once. A ring that breaks the rules
//! is a [`LinkFault`] naming the side at fault, so only that guest is
//! stopped.

use crate::mem::raw::RawRam;
use crate::virtio::error::RingError;
use crate::virtio::memory::GuestRam;
use crate::virtio::net::{NET_HDR_LEN, receive_header, transmit_frame_len};
use crate::virtio::queue::{Chain, Popped, SplitQueue};
use vmm_abi::devices::MAX_FRAME_BYTES;
use vmm_abi::report::LinkFlow;

/// Which end of a direction broke the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The guest whose transmit queue is read.
    Sender,
    /// The guest whose receive queue is filled.
    Receiver,
}

/// A ring that broke the rules, and whose it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkFault {
    /// The side at fault.
    pub side: Side,
    /// What is wrong.
    pub error: RingError,
}

fn sender(error: impl Into<RingError>) -> LinkFault {
    LinkFault {
        side: Side::Sender,
        error: error.into(),
    }
}

fn receiver(error: impl Into<RingError>) -> LinkFault {
    LinkFault {
        side: Side::Receiver,
        error: error.into(),
    }
}

/// The receiving end of a pump.
pub enum Receiver<'a, D: GuestRam> {
    /// A ready receive queue and its guest's memory.
    Ready(&'a mut SplitQueue, &'a mut D),
    /// The receiver ended for good: frames are dropped and counted.
    Gone,
}

/// The state one direction keeps between pumps.
#[derive(Clone, Debug, Default)]
pub struct Direction {
    /// What this direction did with the frames handed to it.
    pub flow: LinkFlow,
    tx: Chain,
    rx: Chain,
    /// `rx` holds a receive chain popped but not filled yet (the frame
    /// before it was dropped as too large), from the receiver's ring of
    /// this generation.
    spare: Option<u32>,
    /// The receiver's ring generation the stall state below belongs to.
    stall_generation: Option<u32>,
    /// Since when (TSC) frames have waited with the receiver taking none.
    blocked_since: Option<u64>,
    /// The receiver is stalled: frames it cannot take are dropped.
    stalled: bool,
    /// The fast path's last call found the sender's ring empty.
    sender_empty: bool,
}

/// The clock and the hold time of a pump (see [`pump_raw`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hold {
    /// Now (TSC).
    pub now: u64,
    /// Ticks a receiver may take nothing while frames wait before it is
    /// stalled; 0 = never.
    pub ticks: u64,
}

impl Hold {
    /// A pump that never declares a receiver stalled.
    pub const NEVER: Hold = Hold { now: 0, ticks: 0 };
}

impl Direction {
    /// Forgets a receive buffer kept from an earlier pump unless it came
    /// from the receiver's ring of `generation` (a reset or restart gives
    /// the receiver a new generation; its old buffers mean nothing then).
    fn check_spare(&mut self, generation: u32) {
        if self.spare.is_some_and(|g| g != generation) {
            self.spare = None;
        }
        if self.stall_generation != Some(generation) {
            // A new ring (reset or restart) gets a fresh hold time.
            self.stall_generation = Some(generation);
            self.blocked_since = None;
            self.stalled = false;
        }
    }

    /// The sender is not up (not started, restarting, or reset): nothing
    /// of its waits, so the receiver holds nobody up.
    pub fn sender_down(&mut self) {
        self.blocked_since = None;
    }

    /// Whether the receiver is stalled now.
    pub fn stalled(&self) -> bool {
        self.stalled
    }
}

/// [`pump`] for the polling core's raw views: the fast path takes the
/// common case (single-descriptor frames and buffers), the general path
/// everything after the first frame it does not take, and publishes; then
/// the stall policy ([`stall_policy`]) runs.
pub fn pump_raw(
    dir: &mut Direction,
    tx: &mut SplitQueue,
    src: &mut RawRam,
    rx: Receiver<'_, RawRam>,
    rx_generation: u32,
    budget: u32,
    hold: Hold,
) -> Result<u32, LinkFault> {
    let ready = matches!(rx, Receiver::Ready(..));
    let delivered_before = dir.flow.frames;
    let (moved, waiting) = pump_both(dir, tx, src, rx, rx_generation, budget)?;
    if !ready {
        return Ok(moved);
    }
    let delivered = dir.flow.frames != delivered_before;
    let left = budget - moved;
    Ok(moved + stall_policy(dir, tx, src, delivered, waiting, left, hold)?)
}

/// The hold-time policy, after a pump to a ready receiver that `delivered`
/// frames or not, with `budget` frames left: a receiver that took frames
/// is not stalled; one that took none while frames waited for `hold.ticks`
/// (counted from the first pass after its last delivery that found frames
/// waiting and no buffer)
/// becomes stalled, and then waiting frames (up to `budget`) are completed
/// and counted as `drop_stalled`. Returns the frames dropped.
///
/// `waiting` says whether frames wait in the sender's ring, when the pump
/// already knows (the fast path saw it), so no index is read again.
pub fn stall_policy<S: GuestRam>(
    dir: &mut Direction,
    tx: &mut SplitQueue,
    src: &mut S,
    delivered: bool,
    waiting: Option<bool>,
    budget: u32,
    hold: Hold,
) -> Result<u32, LinkFault> {
    if delivered {
        // It took frames: not stalled. If more wait, their hold time starts
        // with the next pass that delivers none (the busy path reads no
        // extra index for this).
        dir.blocked_since = None;
        dir.stalled = false;
        return Ok(0);
    }
    if budget == 0 {
        return Ok(0);
    }
    let waiting = match waiting {
        Some(w) => w,
        None => tx.avail_pending(src).map_err(sender)? != 0,
    };
    if !waiting {
        // Nothing waits: the receiver is not holding anyone up (a stalled
        // one stays stalled until it posts a buffer).
        dir.blocked_since = None;
        return Ok(0);
    }
    let since = *dir.blocked_since.get_or_insert(hold.now);
    if !dir.stalled {
        if hold.ticks == 0 || hold.now.wrapping_sub(since) < hold.ticks {
            return Ok(0);
        }
        dir.stalled = true;
        dir.flow.stalls += 1;
    }
    let mut dropped = 0;
    let result = loop {
        if dropped == budget {
            break Ok(());
        }
        match drop_one(dir, tx, src, |f| &mut f.drop_stalled) {
            Ok(true) => dropped += 1,
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    let published = tx.publish_used(src).map_err(sender);
    result?;
    published?;
    Ok(dropped)
}

/// Completes the sender's next frame without delivering it, counted by
/// `counter`; `false` if there is none.
fn drop_one<S: GuestRam>(
    dir: &mut Direction,
    tx: &mut SplitQueue,
    src: &mut S,
    counter: impl FnOnce(&mut LinkFlow) -> &mut u64,
) -> Result<bool, LinkFault> {
    if !tx.pop_avail_into(src, &mut dir.tx).map_err(sender)? {
        return Ok(false);
    }
    transmit_frame_len(&dir.tx).map_err(sender)?;
    tx.add_used(src, dir.tx.head(), 0).map_err(sender)?;
    *counter(&mut dir.flow) += 1;
    Ok(true)
}

/// The fast path, then the general path; the frames handed over, and
/// whether frames still wait in the sender's ring if the fast path knows.
fn pump_both(
    dir: &mut Direction,
    tx: &mut SplitQueue,
    src: &mut RawRam,
    mut rx: Receiver<'_, RawRam>,
    rx_generation: u32,
    budget: u32,
) -> Result<(u32, Option<bool>), LinkFault> {
    dir.check_spare(rx_generation);
    dir.sender_empty = false;
    let (fast, stop) = match &mut rx {
        Receiver::Ready(rq, dst) => fast::frames(dir, tx, src, rq, dst, budget),
        Receiver::Gone => (0, fast::Stop::General),
    };
    match stop {
        // The fast path published what it did; nothing else is pending
        // if it found the sender's ring empty.
        fast::Stop::Idle if dir.sender_empty => return Ok((fast, Some(false))),
        fast::Stop::Idle => return Ok((fast, None)),
        fast::Stop::General => {}
    }
    Ok((
        fast + pump(dir, tx, src, rx, rx_generation, budget - fast)?,
        None,
    ))
}

/// Moves up to `budget` frames from `tx` (in `src`) to the receiver; the
/// receiver's ring is of `rx_generation`. Returns the number of frames
/// handed over (delivered or dropped).
pub fn pump<S: GuestRam, D: GuestRam>(
    dir: &mut Direction,
    tx: &mut SplitQueue,
    src: &mut S,
    mut rx: Receiver<'_, D>,
    rx_generation: u32,
    budget: u32,
) -> Result<u32, LinkFault> {
    dir.check_spare(rx_generation);
    let mut handed = 0;
    let result = loop {
        if handed == budget {
            break Ok(());
        }
        match pump_one(dir, tx, src, &mut rx, rx_generation) {
            Ok(true) => handed += 1,
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    // Publish what was completed, even when one side then broke the rules:
    // the other side's buffers are done with and must be returned.
    let tx_published = tx.publish_used(src).map_err(sender);
    let rx_published = match &mut rx {
        Receiver::Ready(q, mem) => q.publish_used(*mem).map_err(receiver),
        Receiver::Gone => Ok(()),
    };
    result?;
    tx_published?;
    rx_published?;
    Ok(handed)
}

/// Moves one frame; `false` when there is nothing to move (or nowhere to
/// put it yet).
fn pump_one<S: GuestRam, D: GuestRam>(
    dir: &mut Direction,
    tx: &mut SplitQueue,
    src: &mut S,
    rx: &mut Receiver<'_, D>,
    rx_generation: u32,
) -> Result<bool, LinkFault> {
    let Receiver::Ready(rq, dst) = rx else {
        return drop_one(dir, tx, src, |f| &mut f.drop_peer);
    };
    if dir.spare.is_none() {
        // Check for a frame before taking a buffer, so an idle link does
        // not hold one of the receiver's buffers.
        if tx.avail_pending(src).map_err(sender)? == 0 {
            return Ok(false);
        }
        match rq.pop_single(*dst).map_err(receiver)? {
            Popped::Empty => return Ok(false),
            Popped::Single { head, desc } => dir.rx.set_single(head, desc),
            Popped::Chain => {
                rq.pop_avail_into(*dst, &mut dir.rx).map_err(receiver)?;
            }
        }
        if !dir.rx.readable().is_empty() {
            return Err(receiver(RingError::ReadableInReceive {
                head: dir.rx.head(),
            }));
        }
        dir.spare = Some(rx_generation);
    }
    // The frame: one descriptor holding header and frame (the common
    // case), or a chain.
    match tx.pop_single(src).map_err(sender)? {
        Popped::Empty => return Ok(false),
        Popped::Single { head, desc } => dir.tx.set_single(head, desc),
        Popped::Chain => {
            tx.pop_avail_into(src, &mut dir.tx).map_err(sender)?;
        }
    }
    let tx_head = dir.tx.head();
    let len = transmit_frame_len(&dir.tx).map_err(sender)?;
    if len as usize > MAX_FRAME_BYTES || NET_HDR_LEN + len > dir.rx.writable_len() {
        tx.add_used(src, tx_head, 0).map_err(sender)?;
        dir.flow.drop_size += 1;
        return Ok(true);
    }
    let rx_head = dir.rx.head();
    let copied = copy_frame(&dir.tx, src, &dir.rx, &mut **dst, len);
    if let Err(fault) = copied {
        if fault.side == Side::Receiver {
            // The frame is done with on the sender's side; the receiver is
            // to be stopped, so it counts as dropped for its sake.
            tx.add_used(src, tx_head, 0).map_err(sender)?;
            dir.flow.drop_peer += 1;
        }
        return Err(fault);
    }
    tx.add_used(src, tx_head, 0).map_err(sender)?;
    dir.spare = None;
    if let Err(e) = rq.add_used(*dst, rx_head, NET_HDR_LEN + len) {
        dir.flow.drop_peer += 1;
        return Err(receiver(e));
    }
    dir.flow.frames += 1;
    dir.flow.bytes += u64::from(len);
    Ok(true)
}

/// Writes the receive header and the `len`-byte frame of `tx` into `rx`.
fn copy_frame<S: GuestRam, D: GuestRam>(
    tx: &Chain,
    src: &S,
    rx: &Chain,
    dst: &mut D,
    len: u32,
) -> Result<(), LinkFault> {
    rx.write_at(dst, 0, &receive_header()).map_err(receiver)?;
    let mut at = NET_HDR_LEN;
    let mut written = Ok(());
    tx.for_each_readable(src, NET_HDR_LEN, len, |piece| {
        if written.is_ok() {
            match rx.write_at(dst, at, piece) {
                Ok(n) => at += n as u32,
                Err(e) => written = Err(e),
            }
        }
    })
    .map_err(sender)?;
    written.map_err(receiver)
}

mod fast;
#[cfg(test)]
mod tests;
