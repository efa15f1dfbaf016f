//! The one error type for a device's rings (net and console alike): the queue's own checks, chains pointing the wrong way, frames that do not fit; a guest whose ring has one is stopped with it.

use super::net::NET_HDR_LEN;
use super::queue::QueueError;
use core::fmt;

/// What is wrong with a ring or a buffer on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The chain itself is bad.
    Queue(QueueError),
    /// A transmit chain shorter than the header.
    TransmitTooShort {
        /// The chain's head.
        head: u16,
        /// Its readable length.
        len: u32,
    },
    /// A device-writable buffer in a transmit chain.
    WritableInTransmit {
        /// The chain's head.
        head: u16,
    },
    /// A device-readable buffer in a receive chain.
    ReadableInReceive {
        /// The chain's head.
        head: u16,
    },
    /// A receive chain too small for the header and the frame (the frame is
    /// dropped; this is a counter, not a reason to stop the guest).
    ReceiveBufferTooSmall {
        /// The chain's head.
        head: u16,
        /// Bytes needed.
        need: u32,
        /// Bytes the chain has.
        have: u32,
    },
    /// The frame does not fit the caller's buffer.
    FrameTooLarge {
        /// Frame length.
        len: u32,
        /// Room.
        max: usize,
    },
    /// A receive buffer on an owned NIC whose window (the bytes the NIC
    /// may write behind the header) leaves the guest's writable memory.
    NicWindowOutside {
        /// The chain's head.
        head: u16,
        /// The buffer's guest-physical address.
        addr: u64,
        /// Bytes the NIC may write behind the header.
        window: u64,
    },
    /// A virtio-blk request chain that breaks the rules.
    Block(super::blk::BlkError),
    /// A request in an hvt guest's shared net ring names a buffer not
    /// inside its memory (or not writable, for a read).
    HvtRingBuffer {
        /// The request's slot in the ring.
        entry: u16,
        /// A `net_write` (else a `net_read`).
        write: bool,
        /// The buffer's address.
        gpa: u64,
        /// Its bytes.
        len: u32,
    },
    /// An hvt guest's shared net ring claims more requests than it holds.
    HvtRingIndices {
        /// Requests the host consumed.
        head: u32,
        /// Requests the guest says it submitted.
        tail: u32,
    },
    /// An hvt guest's shared net ring could not be read or written (its
    /// memory is not all there: a hypervisor bug).
    HvtRingMemory {
        /// The ring's address.
        gpa: u64,
    },
}

impl From<super::blk::BlkError> for RingError {
    fn from(e: super::blk::BlkError) -> Self {
        RingError::Block(e)
    }
}

impl From<QueueError> for RingError {
    fn from(e: QueueError) -> Self {
        RingError::Queue(e)
    }
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RingError::Queue(e) => e.fmt(f),
            RingError::Block(e) => e.fmt(f),
            RingError::TransmitTooShort { head, len } => write!(
                f,
                "transmit chain {head} has {len} bytes, less than the {NET_HDR_LEN}-byte header"
            ),
            RingError::WritableInTransmit { head } => {
                write!(f, "transmit chain {head} has a device-writable buffer")
            }
            RingError::ReadableInReceive { head } => {
                write!(f, "receive chain {head} has a device-readable buffer")
            }
            RingError::ReceiveBufferTooSmall { head, need, have } => {
                write!(f, "receive chain {head} has {have} bytes, {need} needed")
            }
            RingError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes does not fit {max}")
            }
            RingError::HvtRingBuffer {
                entry,
                write,
                gpa,
                len,
            } => {
                let call = if write { "net_write" } else { "net_read" };
                write!(
                    f,
                    "hvt shared ring entry {entry}: {call}: Invalid guest access: gpa={gpa:#x}, sz={len}"
                )
            }
            RingError::HvtRingIndices { head, tail } => write!(
                f,
                "hvt shared ring: {} requests submitted (tail {tail}, head {head}), more than its {}",
                tail.wrapping_sub(head),
                vmm_abi::hvt::RING_SIZE
            ),
            RingError::HvtRingMemory { gpa } => {
                write!(
                    f,
                    "hvt shared ring at {gpa:#x} is not in the guest's memory"
                )
            }
            RingError::NicWindowOutside { head, addr, window } => write!(
                f,
                "receive chain {head} at {addr:#x}: the NIC may write {window} bytes behind its {NET_HDR_LEN}-byte header, beyond the guest's writable memory"
            ),
        }
    }
}
