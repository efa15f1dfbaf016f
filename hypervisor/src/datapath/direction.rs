//! One direction of a link: frames move from a sender's [`FrameSource`] to a receiver's [`FrameSink`], with every frame counted.
//!
//! [`pump`] is the whole data path of the polling core: it takes the
//! sender's frames, copies each into a buffer of the receiver, and
//! completes both, publishing each ring's used idx once per batch. A frame
//! that is too large for the buffer the receiver posted is dropped and
//! counted (`drop_size`), and the receive buffer is kept for the next frame;
//! when the receiver has ended for good, frames are completed and counted
//! as `drop_peer`. When the receiver has no buffer the sender's frames stay
//! in its ring (backpressure): nothing is lost, for the link's hold time.
//! A receiver that has taken nothing for that long while frames waited is
//! stalled ([`stall_policy`]): from then on the frames it cannot take are
//! completed and counted as `drop_stalled`, until it posts a buffer again,
//! when delivery resumes at once. A ring that breaks the rules
//! is a [`LinkFault`] naming the side at fault, so only that guest is
//! stopped.
//!
//! Two virtio rings over raw views go through the fast path first
//! (`direction/fast.rs`); everything it leaves goes through the general
//! path here, the one place a [`FramePolicy`] judges a frame (on the
//! receiver's copy, see [`super::policy`]).

use super::endpoint::{FrameSink, FrameSource, LinkFault, Receiver, Side, receiver, sender};
use super::policy::{FrameCopy, FramePolicy, Verdict};
use crate::devices::virtio::queue::Chain;
use vmm_abi::corral::devices::MAX_FRAME_BYTES;
use vmm_abi::report::LinkFlow;

/// The state one direction keeps between pumps; `F` and `B` are what its
/// source keeps of a frame and its sink of a buffer (descriptor chains,
/// for two virtio ports).
#[derive(Clone, Debug, Default)]
pub struct Direction<F = Chain, B = Chain> {
    /// What this direction did with the frames handed to it.
    pub flow: LinkFlow,
    /// Frames its policy dropped (not in the link record: a packet hook's
    /// drops are in its own `hook` record, so the link's counters sum to
    /// the frames the hook passed).
    pub dropped_by_policy: u64,
    tx: F,
    rx: B,
    /// `rx` holds a receive buffer taken but not filled yet (the frame
    /// before it was dropped), from the receiver's ring of this generation.
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

/// The clock and the hold time of a pump (see [`stall_policy`]).
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

impl<F, B> Direction<F, B> {
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

    /// Takes back the receive buffer kept for the next frame, if any: the
    /// generation of the receiver's ring it came from, and the buffer (its
    /// link is being unmade; the caller gives it back to that ring).
    pub fn take_spare(&mut self) -> Option<(u32, &B)> {
        let generation = self.spare.take()?;
        Some((generation, &self.rx))
    }

    /// Whether a receive buffer is kept for the next frame.
    pub fn keeps_buffer(&self) -> bool {
        self.spare.is_some()
    }
}

/// Moves up to `budget` frames from `src` to the receiver, whose ring is
/// of `rx_generation`, then applies the hold-time policy
/// ([`stall_policy`]) if the receiver is ready; `policy` judges each
/// frame delivered. Returns the frames handed over (delivered or dropped).
///
/// Two virtio rings over raw views take the fast path first (the common
/// case: single-descriptor frames and buffers); the general path takes
/// everything after the first frame the fast path does not, and publishes.
#[inline]
pub fn pump<S: FrameSource, K: FrameSink, P: FramePolicy>(
    dir: &mut Direction<S::Frame, K::Buffer>,
    src: &mut S,
    rx: Receiver<K>,
    rx_generation: u32,
    budget: u32,
    hold: Hold,
    policy: &mut P,
) -> Result<u32, LinkFault> {
    let ready = matches!(rx, Receiver::Ready(..));
    let delivered_before = dir.flow.frames;
    let policy_before = dir.dropped_by_policy;
    let (moved, waiting) = pump_both(dir, src, rx, rx_generation, budget, policy)?;
    if !ready {
        return Ok(moved);
    }
    // Frames its policy took (dropped, or sent back) were not held up
    // either.
    let delivered = dir.flow.frames != delivered_before
        || (P::INSPECTS && dir.dropped_by_policy != policy_before);
    let left = budget - moved;
    Ok(moved + stall_policy(dir, src, delivered, waiting, left, hold)?)
}

/// Moves up to `budget` frames from `src` (a hook's frames going back to
/// their sender) into the receiver, on the general path with no policy,
/// keeping the direction's receive state (its spare buffer) as a pump
/// does. Returns the frames handed over; the caller accounts for them
/// (the direction's counters are its sender's).
pub fn send_back<S: FrameSource, K: FrameSink>(
    dir: &mut Direction<S::Frame, K::Buffer>,
    src: &mut S,
    rx: Receiver<K>,
    rx_generation: u32,
    budget: u32,
) -> Result<u32, LinkFault> {
    general(
        dir,
        src,
        rx,
        rx_generation,
        budget,
        &mut super::policy::PassAll,
    )
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
pub fn stall_policy<S: FrameSource, B>(
    dir: &mut Direction<S::Frame, B>,
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
        None => src.waiting().map_err(sender)?,
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
        match drop_one(dir, src, |f| &mut f.drop_stalled) {
            Ok(true) => dropped += 1,
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    let published = src.publish().map_err(sender);
    result?;
    published?;
    Ok(dropped)
}

/// Completes the sender's next frame without delivering it, counted by
/// `counter`; `false` if there is none.
fn drop_one<S: FrameSource, B>(
    dir: &mut Direction<S::Frame, B>,
    src: &mut S,
    counter: impl FnOnce(&mut LinkFlow) -> &mut u64,
) -> Result<bool, LinkFault> {
    if src.take(&mut dir.tx).map_err(sender)?.is_none() {
        return Ok(false);
    }
    src.complete(&dir.tx).map_err(sender)?;
    *counter(&mut dir.flow) += 1;
    Ok(true)
}

/// The fast path (if both ends offer raw rings and the policy inspects
/// nothing), then the general path; the frames handed over, and whether
/// frames still wait in the sender's ring if the fast path knows.
#[inline]
fn pump_both<S: FrameSource, K: FrameSink, P: FramePolicy>(
    dir: &mut Direction<S::Frame, K::Buffer>,
    src: &mut S,
    mut rx: Receiver<K>,
    rx_generation: u32,
    budget: u32,
    policy: &mut P,
) -> Result<(u32, Option<bool>), LinkFault> {
    dir.check_spare(rx_generation);
    dir.sender_empty = false;
    let (fast, stop) = match &mut rx {
        Receiver::Ready(sink) => match (src.raw_ring(), sink.raw_ring()) {
            (Some(t), Some(r)) => fast::frames(dir, t.queue, t.ram, r.queue, r.ram, budget, policy),
            _ => (0, fast::Stop::General),
        },
        _ => (0, fast::Stop::General),
    };
    match stop {
        // The fast path published what it did; nothing else is pending
        // if it found the sender's ring empty.
        fast::Stop::Idle if dir.sender_empty => return Ok((fast, Some(false))),
        fast::Stop::Idle => return Ok((fast, None)),
        fast::Stop::General => {}
    }
    Ok((
        fast + general(dir, src, rx, rx_generation, budget - fast, policy)?,
        None,
    ))
}

/// The general path: moves up to `budget` frames from `src` to the
/// receiver, whose ring is of `rx_generation`, one call per step. Returns
/// the number of frames handed over (delivered or dropped).
fn general<S: FrameSource, K: FrameSink, P: FramePolicy>(
    dir: &mut Direction<S::Frame, K::Buffer>,
    src: &mut S,
    mut rx: Receiver<K>,
    rx_generation: u32,
    budget: u32,
    policy: &mut P,
) -> Result<u32, LinkFault> {
    dir.check_spare(rx_generation);
    let mut handed = 0;
    let result = loop {
        if handed == budget {
            break Ok(());
        }
        match pump_one(dir, src, &mut rx, rx_generation, policy) {
            Ok(true) => handed += 1,
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    // Publish what was completed, even when one side then broke the rules:
    // the other side's buffers are done with and must be returned.
    let tx_published = src.publish().map_err(sender);
    let rx_published = match &mut rx {
        Receiver::Ready(sink) => sink.publish().map_err(receiver),
        Receiver::Gone => Ok(()),
    };
    result?;
    tx_published?;
    rx_published?;
    Ok(handed)
}

/// Moves one frame; `false` when there is nothing to move (or nowhere to
/// put it yet).
fn pump_one<S: FrameSource, K: FrameSink, P: FramePolicy>(
    dir: &mut Direction<S::Frame, K::Buffer>,
    src: &mut S,
    rx: &mut Receiver<K>,
    rx_generation: u32,
    policy: &mut P,
) -> Result<bool, LinkFault> {
    let Receiver::Ready(sink) = rx else {
        return drop_one(dir, src, |f| &mut f.drop_peer);
    };
    if P::INSPECTS && !policy.room() {
        return Ok(false);
    }
    if dir.spare.is_none() {
        // Check for a frame before taking a buffer, so an idle link does
        // not hold one of the receiver's buffers.
        if !src.waiting().map_err(sender)? {
            return Ok(false);
        }
        if !sink.take(&mut dir.rx).map_err(receiver)? {
            return Ok(false);
        }
        dir.spare = Some(rx_generation);
    }
    let Some(len) = src.take(&mut dir.tx).map_err(sender)? else {
        return Ok(false);
    };
    if len as usize > MAX_FRAME_BYTES || !sink.fits(&dir.rx, len) {
        src.complete(&dir.tx).map_err(sender)?;
        dir.flow.drop_size += 1;
        return Ok(true);
    }
    let copied = copy_frame(src, &dir.tx, sink, &dir.rx, len);
    if let Err(fault) = copied {
        if fault.side == Side::Receiver {
            // The frame is done with on the sender's side; the receiver is
            // to be stopped, so it counts as dropped for its sake.
            src.complete(&dir.tx).map_err(sender)?;
            dir.flow.drop_peer += 1;
        }
        return Err(fault);
    }
    // The policy point: the frame is in the receiver's buffer, out of the
    // sender's reach, and not handed over yet.
    let verdict = if P::INSPECTS {
        policy.judge(&FrameCopy::new(&*sink, &dir.rx, len))
    } else {
        Verdict::Pass
    };
    src.complete(&dir.tx).map_err(sender)?;
    if verdict == Verdict::Drop {
        // The buffer is kept for the next frame, as for a frame too large.
        dir.dropped_by_policy += 1;
        return Ok(true);
    }
    // A policy that changed its copy of the frame (a hook writing the
    // packet): the receiver gets that copy.
    if P::INSPECTS
        && policy.rewrote()
        && let Some(own) = policy.own_buffer().and_then(|o| o.get(..len as usize))
        && let Err(e) = sink.write(&dir.rx, 0, own)
    {
        dir.flow.drop_peer += 1;
        return Err(receiver(e));
    }
    dir.spare = None;
    if let Err(e) = sink.complete(&dir.rx, len) {
        dir.flow.drop_peer += 1;
        return Err(receiver(e));
    }
    dir.flow.frames += 1;
    dir.flow.bytes += u64::from(len);
    Ok(true)
}

/// Writes the `len`-byte frame `frame` of `src` into `buffer` of `sink`.
fn copy_frame<S: FrameSource, K: FrameSink>(
    src: &S,
    frame: &S::Frame,
    sink: &mut K,
    buffer: &K::Buffer,
    len: u32,
) -> Result<(), LinkFault> {
    sink.start(buffer).map_err(receiver)?;
    let mut at = 0;
    let mut written = Ok(());
    src.read(frame, len, |piece| {
        if written.is_ok() {
            match sink.write(buffer, at, piece) {
                Ok(n) => at += n,
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
