//! Physical NICs driven by the hypervisor: PCI enumeration ([`pci`]), the Intel 82540EM driver ([`e1000`]), and the small traits they run over, so the ring logic is host-tested against fakes and only `platform/pci.rs` touches hardware.
//!
//! The seams:
//! - [`Regs`]: a NIC's register file, 32-bit accesses only (Bochs's e1000
//!   refuses other widths).
//! - DMA memory: the driver's rings and buffers live in memory the NIC
//!   reads and writes concurrently, so it is reached only by copies: through
//!   [`crate::mem::access::GuestRam`], and on the per-frame calls through
//!   the area resolved once as a [`crate::mem::raw::HostRange`] (one
//!   writable piece of the raw view, which set-up checks), each access
//!   checked by offset. For DMA the "guest-physical" address
//!   of that trait is the **bus (host-physical) address** the NIC is given:
//!   the hardware layer wraps frames it allocated in a
//!   [`crate::mem::raw::RawRam`] whose piece has `gpa == hpa`; tests use a
//!   `Vec` behind the same type. Nothing ever holds a Rust reference into
//!   it.
//! - [`ConfigSpace`]: PCI configuration space, dword accesses.
//! - [`NicDevice`]: what the data path drives (a receive queue and a
//!   transmit queue, polled); another NIC (virtio-net-pci, igb) implements
//!   the same trait.
//! - [`ZeroCopy`]: the same rings with buffers the caller provides (the
//!   `owned` mode's mediated zero-copy: a guest's checked buffers), and
//!   the revocation that takes every such buffer back.
#![forbid(unsafe_code)]

pub mod e1000;
pub mod pci;

#[cfg(test)]
pub(crate) mod fake;

use crate::mem::access::OutOfBounds;
use crate::mem::raw::HostRange;
use core::fmt;
use pci::PciAddress;

/// A NIC's memory-mapped registers, by byte offset from its BAR. Only
/// aligned 32-bit accesses.
pub trait Regs {
    /// Reads the register at byte offset `reg`.
    fn read(&self, reg: u32) -> u32;
    /// Writes the register at byte offset `reg`.
    fn write(&mut self, reg: u32, value: u32);
}

/// PCI configuration space (PCI Local Bus 3.0, 3.2.2.3.2): aligned dwords
/// of one function's 256-byte header.
pub trait ConfigSpace {
    /// Reads the dword at `offset` (a multiple of 4) of function `at`.
    fn read32(&self, at: PciAddress, offset: u8) -> u32;
    /// Writes the dword at `offset` (a multiple of 4) of function `at`.
    fn write32(&mut self, at: PciAddress, offset: u8, value: u32);
}

/// An Ethernet (MAC) address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A received frame waiting in the receive ring: its descriptor and its
/// length in bytes (at most the ring's buffer size, never 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxFrame {
    /// Its receive descriptor.
    pub index: u16,
    /// Its length in bytes, without the FCS.
    pub len: u32,
}

/// What a NIC counted since it was set up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicCounters {
    /// Frames received and handed to the caller.
    pub rx_frames: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Received frames dropped because the descriptor had error bits set.
    pub rx_drop_errors: u64,
    /// Received frames dropped because they spanned several buffers (no
    /// EOP on a descriptor).
    pub rx_drop_no_eop: u64,
    /// Received frames dropped for their length: 0 (or only an FCS), or
    /// more than a buffer holds.
    pub rx_drop_length: u64,
    /// Frames posted for transmission.
    pub tx_frames: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Times the transmit ring had no free slot when one was asked for.
    pub tx_ring_full: u64,
}

/// A NIC as a polling core drives it: one receive and one transmit queue,
/// interrupts masked. Indices are descriptor numbers the NIC handed out;
/// every method checks them, and nothing the device writes can make one
/// panic or reach outside the buffer of a descriptor.
pub trait NicDevice {
    /// Its Ethernet address (the one its receive filter accepts).
    fn mac(&self) -> MacAddr;

    /// Whether the link is up (reads the device).
    fn link_up(&mut self) -> bool;

    /// What it counted.
    fn counters(&self) -> NicCounters;

    /// The next received frame, without taking it: the same frame until it
    /// is recycled. Bad frames met on the way are recycled and counted.
    fn rx_peek(&mut self) -> Result<Option<RxFrame>, NicError>;

    /// Calls `f` with bytes `0 .. len` of receive buffer `index` in order,
    /// in copies (never a reference into DMA memory).
    fn rx_read(&self, index: u16, len: u32, f: impl FnMut(&[u8])) -> Result<(), NicError>;

    /// Gives the peeked frame's descriptor back to the device (visible to
    /// it at the next [`NicDevice::rx_flush`]). Frames are recycled in
    /// order: `index` must be the one [`NicDevice::rx_peek`] returned.
    fn rx_recycle(&mut self, index: u16) -> Result<(), NicError>;

    /// Hands every recycled descriptor back to the device at once.
    fn rx_flush(&mut self);

    /// A transmit slot to fill, or `None` when the ring is full. The same
    /// slot until it is posted.
    fn tx_claim(&mut self) -> Option<u16>;

    /// Writes `bytes` at byte `at` of claimed slot `index`'s buffer;
    /// returns how many fitted.
    fn tx_write(&mut self, index: u16, at: u32, bytes: &[u8]) -> Result<u32, NicError>;

    /// Queues claimed slot `index`, holding a frame of `len` bytes, for
    /// transmission at the next [`NicDevice::tx_flush`].
    fn tx_post(&mut self, index: u16, len: u32) -> Result<(), NicError>;

    /// Tells the device about every posted frame at once.
    fn tx_flush(&mut self);

    /// Stops receive and transmit and waits until the device no longer
    /// touches the rings (before their memory is given to anyone else).
    fn quiesce(&mut self) -> Result<(), NicError>;

    /// Bytes `0 .. len` of receive buffer `index` as one host range, for
    /// the switch's one-copy path: `None` unless the DMA memory is a raw
    /// view and `index`/`len` fit a buffer (the caller then uses
    /// [`NicDevice::rx_read`]).
    #[inline]
    fn rx_raw(&self, _index: u16, _len: u32) -> Option<HostRange<'_>> {
        None
    }

    /// Claimed transmit slot `index`'s whole buffer as one writable host
    /// range, for the switch's one-copy path: `None` unless the DMA memory
    /// is a raw view and `index` is the claimed slot.
    #[inline]
    fn tx_raw(&self, _index: u16) -> Option<HostRange<'_>> {
        None
    }
}

/// Bytes of an Ethernet header (destination, source, type): what a
/// [`ZeroCopy`] transmit copies into the hypervisor's own memory.
pub const ETH_HEADER_BYTES: usize = 14;
/// The most bytes the device may write into a receive buffer the caller
/// gives ([`ZeroCopy::zc_rx_give`]): its receive buffer size. The caller
/// gives only buffers with this many writable bytes at the address, all
/// in memory their owner may have written.
pub const ZC_RX_BYTES: u64 = 2048;

/// A NIC's rings with buffers the caller provides (`owned` mode): the
/// device reads and writes them by bus address, so the caller checks each
/// before giving it and gets it back only through
/// [`ZeroCopy::zc_rx_taken`], [`ZeroCopy::zc_tx_taken`] or
/// [`ZeroCopy::zc_revoke`]. A `cookie` names a buffer to its caller.
pub trait ZeroCopy {
    /// Gives the device a receive buffer at bus address `bus`
    /// ([`ZC_RX_BYTES`] writable bytes there); `false` while the ring is
    /// full.
    fn zc_rx_give(&mut self, bus: u64, cookie: u16) -> Result<bool, NicError>;
    /// The oldest given receive buffer the device is done with: its cookie
    /// and the frame's length, or `None` for a frame the device marked bad
    /// (the buffer holds nothing useful; counted).
    fn zc_rx_taken(&mut self) -> Result<Option<(u16, Option<u32>)>, NicError>;
    /// Hands the given receive buffers to the device (one register write).
    fn zc_rx_flush(&mut self);
    /// Queues a frame: its Ethernet `header`, copied into the
    /// hypervisor's memory so what was checked is what is sent, then
    /// `body_len` bytes at bus address `body`; `false` while the ring lacks
    /// room.
    fn zc_tx_give(
        &mut self,
        header: &[u8; ETH_HEADER_BYTES],
        body: u64,
        body_len: u32,
        cookie: u16,
    ) -> Result<bool, NicError>;
    /// The next frame the device has finished sending: its cookie.
    fn zc_tx_taken(&mut self) -> Result<Option<u16>, NicError>;
    /// Hands the queued frames to the device (one register write).
    fn zc_tx_flush(&mut self);
    /// Stops the device and takes every buffer back: when it returns, no
    /// descriptor holds a caller's address and the device touches none of
    /// them; it then runs again with empty rings. Outstanding cookies are
    /// never returned.
    fn zc_revoke(&mut self) -> Result<(), NicError>;
}

/// What went wrong with a NIC: each names the register, descriptor or
/// field involved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicError {
    /// CTRL.RST was still set after this many reads.
    ResetTimeout {
        /// Reads made.
        polls: u32,
    },
    /// EERD.DONE never came for an EEPROM word.
    EepromTimeout {
        /// The word asked for.
        word: u8,
    },
    /// A queue's head kept moving (or never reached its tail) after the
    /// queue was disabled.
    QuiesceTimeout {
        /// The head register's name.
        reg: &'static str,
    },
    /// The DMA memory given does not cover the rings and buffers.
    Dma(OutOfBounds),
    /// No memory left for the rings and buffers.
    NoDmaMemory {
        /// Bytes asked for.
        bytes: u64,
    },
    /// The DMA area's bus address is not aligned as the rings need.
    DmaMisaligned {
        /// Its bus address.
        base: u64,
    },
    /// A descriptor index the ring does not have.
    BadIndex {
        /// `"RX"` or `"TX"`.
        ring: &'static str,
        /// The index given.
        index: u16,
    },
    /// A receive descriptor recycled out of order (or never peeked).
    RxNotPeeked {
        /// The index given.
        index: u16,
        /// The descriptor the ring is at.
        expected: u16,
    },
    /// A receive read longer than a buffer.
    RxReadTooLong {
        /// Bytes asked for.
        len: u32,
        /// Buffer size.
        max: u32,
    },
    /// A transmit slot used without being claimed.
    TxNotClaimed {
        /// The index given.
        index: u16,
    },
    /// A transmit length of 0 or over the largest frame.
    TxLength {
        /// Bytes asked for.
        len: u32,
        /// The most allowed.
        max: u32,
    },
    /// A PCI problem while finding or enabling the device.
    Pci(pci::PciError),
    /// A call of the other mode's interface (copy calls on a NIC set up
    /// for caller buffers, or the reverse).
    WrongMode {
        /// The call.
        call: &'static str,
    },
}

impl From<OutOfBounds> for NicError {
    fn from(e: OutOfBounds) -> Self {
        NicError::Dma(e)
    }
}

impl From<pci::PciError> for NicError {
    fn from(e: pci::PciError) -> Self {
        NicError::Pci(e)
    }
}

impl fmt::Display for NicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NicError::ResetTimeout { polls } => {
                write!(f, "CTRL.RST still set after {polls} reads")
            }
            NicError::EepromTimeout { word } => {
                write!(f, "EERD.DONE never set reading EEPROM word {word}")
            }
            NicError::QuiesceTimeout { reg } => {
                write!(f, "{reg} still moving after the queue was disabled")
            }
            NicError::Dma(e) => write!(f, "DMA memory: {e}"),
            NicError::NoDmaMemory { bytes } => {
                write!(f, "no memory for {bytes} bytes of rings and buffers")
            }
            NicError::DmaMisaligned { base } => {
                write!(f, "DMA area at {base:#x} is not aligned for RDBAL/TDBAL")
            }
            NicError::BadIndex { ring, index } => {
                write!(f, "{ring} descriptor {index} is outside the ring")
            }
            NicError::RxNotPeeked { index, expected } => write!(
                f,
                "RX descriptor {index} recycled, but the ring is at descriptor {expected}"
            ),
            NicError::RxReadTooLong { len, max } => {
                write!(f, "RX read of {len} bytes from a {max}-byte buffer")
            }
            NicError::TxNotClaimed { index } => {
                write!(f, "TX descriptor {index} used without being claimed")
            }
            NicError::TxLength { len, max } => {
                write!(f, "TX descriptor length {len} (must be 1 ..= {max})")
            }
            NicError::Pci(e) => write!(f, "PCI: {e}"),
            NicError::WrongMode { call } => {
                write!(
                    f,
                    "{call} is not for this NIC's mode (copy or caller buffers)"
                )
            }
        }
    }
}
