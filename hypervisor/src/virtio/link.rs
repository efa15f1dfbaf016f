//! One direction of a link: frames move from a sender's transmit queue to a receiver's receive queue, with every frame counted.
//!
//! [`pump`] is the whole data path of the polling core: it pops transmit
//! chains, copies each frame (header replaced) into a receive chain, and
//! completes both, publishing each ring's used idx once per batch. A frame
//! that is too large for the buffer the receiver posted is dropped and
//! counted (`drop_size`), and the receive chain is kept for the next frame;
//! when the receiver has ended for good, frames are completed and counted
//! as `drop_peer`. When the receiver has no buffer the sender's frames stay
//! in its ring (backpressure): nothing is lost. A ring that breaks the rules
//! is a [`LinkFault`] naming the side at fault, so only that guest is
//! stopped.

use super::memory::GuestRam;
use super::net::{NET_HDR_LEN, NetError, receive_header, transmit_frame_len};
use super::queue::{Chain, Descriptor, Popped, QueueError, SplitQueue, VIRTQ_DESC_F_WRITE};
use crate::mem::raw::RawRam;
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
    pub error: NetError,
}

fn sender(error: impl Into<NetError>) -> LinkFault {
    LinkFault {
        side: Side::Sender,
        error: error.into(),
    }
}

fn receiver(error: impl Into<NetError>) -> LinkFault {
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

/// A receive buffer popped but not filled yet (the frame before it was
/// dropped as too large, or no frame came), from the receiver's ring of
/// generation `generation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spare {
    /// One descriptor (the common case): head, buffer and its length.
    Single {
        head: u16,
        addr: u64,
        len: u32,
        generation: u32,
    },
    /// A longer chain, kept in `Direction::rx`.
    Chain { generation: u32 },
}

impl Spare {
    fn generation(self) -> u32 {
        match self {
            Spare::Single { generation, .. } | Spare::Chain { generation } => generation,
        }
    }
}

/// The state one direction keeps between pumps.
#[derive(Clone, Debug, Default)]
pub struct Direction {
    /// What this direction did with the frames handed to it.
    pub flow: LinkFlow,
    tx: Chain,
    rx: Chain,
    spare: Option<Spare>,
}

impl Direction {
    /// Forgets a receive buffer kept from an earlier pump unless it came
    /// from the receiver's ring of `generation` (a reset or restart gives
    /// the receiver a new generation; its old buffers mean nothing then).
    fn check_spare(&mut self, generation: u32) {
        if self.spare.is_some_and(|s| s.generation() != generation) {
            self.spare = None;
        }
    }
}

/// The receive header as two stores: bytes 0..8 and 8..12.
const HEADER_WORDS: (u64, u32) = {
    let h = receive_header();
    (
        u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]),
        u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
    )
};

/// [`pump`] for the polling core's raw views: the fast path takes the
/// common case (single-descriptor frames and buffers), the general path
/// everything after the first frame it does not take, and publishes.
pub fn pump_raw(
    dir: &mut Direction,
    tx: &mut SplitQueue,
    src: &mut RawRam,
    mut rx: Receiver<'_, RawRam>,
    rx_generation: u32,
    budget: u32,
) -> Result<u32, LinkFault> {
    dir.check_spare(rx_generation);
    let (fast, stop) = match &mut rx {
        Receiver::Ready(rq, dst) => fast::frames(dir, tx, src, rq, dst, budget),
        Receiver::Gone => (0, fast::Stop::General),
    };
    if stop == fast::Stop::Idle {
        // The fast path published what it did; nothing else is pending.
        return Ok(fast);
    }
    Ok(fast + pump(dir, tx, src, rx, rx_generation, budget - fast)?)
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
        if !tx.pop_avail_into(src, &mut dir.tx).map_err(sender)? {
            return Ok(false);
        }
        transmit_frame_len(&dir.tx).map_err(sender)?;
        tx.add_used(src, dir.tx.head(), 0).map_err(sender)?;
        dir.flow.drop_peer += 1;
        return Ok(true);
    };
    let spare = match dir.spare {
        Some(spare) => spare,
        None => {
            // Check for a frame before taking a buffer, so an idle link does
            // not hold one of the receiver's buffers.
            if tx.avail_pending(src).map_err(sender)? == 0 {
                return Ok(false);
            }
            let spare = match rq.pop_single(*dst).map_err(receiver)? {
                Popped::Empty => return Ok(false),
                Popped::Single { head, desc } if desc.is_writable() => Spare::Single {
                    head,
                    addr: desc.addr,
                    len: desc.len,
                    generation: rx_generation,
                },
                Popped::Single { head, .. } => {
                    return Err(receiver(NetError::ReadableInReceive { head }));
                }
                Popped::Chain => {
                    rq.pop_avail_into(*dst, &mut dir.rx).map_err(receiver)?;
                    if !dir.rx.readable().is_empty() {
                        return Err(receiver(NetError::ReadableInReceive {
                            head: dir.rx.head(),
                        }));
                    }
                    Spare::Chain {
                        generation: rx_generation,
                    }
                }
            };
            dir.spare = Some(spare);
            spare
        }
    };
    // The frame: one descriptor holding header and frame (the common
    // case), or a chain.
    let (tx_head, tx_single) = match tx.pop_single(src).map_err(sender)? {
        Popped::Empty => return Ok(false),
        Popped::Single { head, desc } => {
            dir.tx.set_single(head, desc);
            (head, Some(desc.addr))
        }
        Popped::Chain => {
            tx.pop_avail_into(src, &mut dir.tx).map_err(sender)?;
            (dir.tx.head(), None)
        }
    };
    let len = transmit_frame_len(&dir.tx).map_err(sender)?;
    let room = match spare {
        Spare::Single { len, .. } => len,
        Spare::Chain { .. } => dir.rx.writable_len(),
    };
    if len as usize > MAX_FRAME_BYTES || NET_HDR_LEN + len > room {
        tx.add_used(src, tx_head, 0).map_err(sender)?;
        dir.flow.drop_size += 1;
        return Ok(true);
    }
    let (rx_head, copied) = match (tx_single, spare) {
        (Some(tx_addr), Spare::Single { head, addr, .. }) => {
            (head, copy_single(src, tx_addr, &mut **dst, addr, len))
        }
        (
            None,
            Spare::Single {
                head,
                addr,
                len: rx_len,
                ..
            },
        ) => {
            let desc = Descriptor {
                addr,
                len: rx_len,
                flags: VIRTQ_DESC_F_WRITE,
                next: 0,
            };
            dir.rx.set_single(head, desc);
            (head, copy_frame(&dir.tx, src, &dir.rx, &mut **dst, len))
        }
        (_, Spare::Chain { .. }) => (
            dir.rx.head(),
            copy_frame(&dir.tx, src, &dir.rx, &mut **dst, len),
        ),
    };
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

/// The header and the frame between two single buffers (both checked when
/// popped: the frame lies in the sender's memory, and header plus frame fit
/// the receiver's writable buffer).
fn copy_single<S: GuestRam, D: GuestRam>(
    src: &S,
    tx_addr: u64,
    dst: &mut D,
    rx_addr: u64,
    len: u32,
) -> Result<(), LinkFault> {
    let (lo, hi) = HEADER_WORDS;
    let hdr = u64::from(NET_HDR_LEN);
    let rx_bad = |_| {
        receiver(QueueError::BufferNotWritable {
            addr: rx_addr,
            len: NET_HDR_LEN + len,
        })
    };
    dst.write_u64(rx_addr, lo).map_err(rx_bad)?;
    dst.write_u32(rx_addr + 8, hi).map_err(rx_bad)?;
    let mut at = rx_addr + hdr;
    let mut written = Ok(());
    src.read_chunks(tx_addr + hdr, len.into(), |piece| {
        if written.is_ok() {
            written = dst.write_bytes(at, piece);
            at += piece.len() as u64;
        }
    })
    .map_err(|_| {
        sender(QueueError::BufferOutsideMemory {
            addr: tx_addr,
            len: NET_HDR_LEN + len,
        })
    })?;
    written.map_err(rx_bad)
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
