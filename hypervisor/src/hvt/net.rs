//! An hvt guest's NET_BASIC device: the hypervisor plays the virtio driver of one of the VM's net ports on the guest's behalf, with the port's rings and buffers in a reserve at the top of the VM's memory that the guest cannot map, so `net_write`/`net_read` are one copy each and the port joins links, NICs and hooks like any Corral port.
//!
//! Each device owns [`DEVICE_SPAN`] bytes of the reserve: a receive and a
//! transmit queue of [`QUEUE_SIZE`] entries, and one [`BUFFER_BYTES`]
//! buffer per entry. The driver keeps no state of its own: everything it
//! needs is in the rings (which only it and the polling core touch), so a
//! restarted VM starts over from zeroed memory.
//!
//! - Receive: every receive descriptor `i` is buffer `i`, all posted at
//!   start. Frames the polling core completes are taken in used-ring order;
//!   the frames taken so far are `avail.idx - QUEUE_SIZE`, since each taken
//!   buffer is posted again at once.
//! - Transmit: frame `n` goes into slot `n % QUEUE_SIZE` (descriptor and
//!   buffer). The polling core takes transmit chains in ring order and
//!   completes each before the next, so `avail.idx - used.idx` slots are in
//!   flight and the oldest is the next to free.

use crate::devices::virtio::features::VIRTIO_F_VERSION_1;
use crate::devices::virtio::mmio::{DeviceStatus, MmioError, Transport, WriteEffect, offset};
use crate::devices::virtio::net::{NET_HDR_LEN, NetDevice, RECEIVE_QUEUE, TRANSMIT_QUEUE};
use crate::devices::virtio::queue::{
    AVAIL_ENTRY_SIZE, DESC_SIZE, QueueError, RING_ENTRIES, RING_IDX, USED_ELEM_SIZE,
    VIRTQ_DESC_F_WRITE,
};
use crate::mem::access::{Barrier, Gpa, GuestRam, OutOfBounds};
use core::fmt;

/// Bytes at the top of an hvt VM's memory kept for its net devices' rings
/// (not in its boot info's `mem_size`, not mapped in its EPT), as Solo5's
/// tender keeps 2 MiB for its shared ring.
pub const RING_RESERVE: u64 = 2 << 20;
/// Bytes of the reserve one device uses.
pub const DEVICE_SPAN: u64 = 512 << 10;
/// Most net devices one hvt VM may have.
pub const MAX_VM_NETS: usize = (RING_RESERVE / DEVICE_SPAN) as usize;
/// Entries in each queue.
pub const QUEUE_SIZE: u16 = 64;
/// Bytes of each buffer: the virtio-net header and the largest frame.
pub const BUFFER_BYTES: u64 = 2048;
/// The MTU the guest's manifest copy states.
pub const MTU: u16 = 1500;
/// Bytes of an Ethernet header (Solo5's `SOLO5_NET_HLEN`).
pub const ETH_HLEN: u64 = 14;
/// Longest frame a guest may send or receive: MTU plus the Ethernet
/// header.
pub const FRAME_MAX: u64 = MTU as u64 + ETH_HLEN;
/// Bytes a receive descriptor offers: the header and [`FRAME_MAX`], so a
/// longer frame never reaches the guest (its link drops and counts it as
/// too large, as for any receiver) and a buffer of MTU plus header, which
/// Solo5 guests pass, always fits.
const RX_OFFER: u64 = NET_HDR_LEN as u64 + FRAME_MAX;

const HDR: u64 = NET_HDR_LEN as u64;
const Q: u64 = QUEUE_SIZE as u64;
/// Where each part lies in a device's span.
const RX_DESC: u64 = 0;
const RX_AVAIL: u64 = 0x400;
const RX_USED: u64 = 0x800;
const TX_DESC: u64 = 0x1000;
const TX_AVAIL: u64 = 0x1400;
const TX_USED: u64 = 0x1800;
const RX_BUFFERS: u64 = 0x2000;
const TX_BUFFERS: u64 = RX_BUFFERS + Q * BUFFER_BYTES;
/// `le64 addr`, `le32 len`, `le16 flags`, `le16 next` of a descriptor.
const DESC_LEN: u64 = 8;
const DESC_FLAGS: u64 = 12;
/// `le32 id`, `le32 len` of a used element.
const USED_LEN: u64 = 4;
const _: () = assert!(RX_DESC + Q * DESC_SIZE <= RX_AVAIL);
const _: () = assert!(RX_AVAIL + RING_ENTRIES + Q * AVAIL_ENTRY_SIZE + 2 <= RX_USED);
const _: () = assert!(RX_USED + RING_ENTRIES + Q * USED_ELEM_SIZE + 2 <= TX_DESC);
const _: () = assert!(TX_DESC + Q * DESC_SIZE <= TX_AVAIL);
const _: () = assert!(TX_AVAIL + RING_ENTRIES + Q * AVAIL_ENTRY_SIZE + 2 <= TX_USED);
const _: () = assert!(TX_USED + RING_ENTRIES + Q * USED_ELEM_SIZE + 2 <= RX_BUFFERS);
const _: () = assert!(TX_BUFFERS + Q * BUFFER_BYTES <= DEVICE_SPAN);
const _: () = assert!(HDR + FRAME_MAX <= BUFFER_BYTES);
const _: () = assert!(MAX_VM_NETS as u64 * DEVICE_SPAN == RING_RESERVE);
// The manifest allows no more net devices a VM than the reserve holds.
const _: () = assert!(MAX_VM_NETS == vmm_abi::manifest::MAX_VM_NET_DEVICES);

/// Where one device's rings and buffers lie in its VM's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingPlace {
    base: u64,
}

impl RingPlace {
    /// Device `index` of a VM with `memory` bytes (the reserve is its top
    /// [`RING_RESERVE`] bytes), if there is room for it.
    pub fn of(memory: u64, index: usize) -> Option<RingPlace> {
        if index >= MAX_VM_NETS || memory < RING_RESERVE {
            return None;
        }
        Some(RingPlace {
            base: memory - RING_RESERVE + index as u64 * DEVICE_SPAN,
        })
    }

    fn at(self, off: u64) -> Gpa {
        Gpa(self.base + off)
    }

    fn queue(self, q: u16) -> (u64, u64, u64) {
        if q == RECEIVE_QUEUE {
            (RX_DESC, RX_AVAIL, RX_USED)
        } else {
            (TX_DESC, TX_AVAIL, TX_USED)
        }
    }

    fn rx_buffer(self, i: u64) -> Gpa {
        self.at(RX_BUFFERS + i * BUFFER_BYTES)
    }

    fn tx_buffer(self, i: u64) -> Gpa {
        self.at(TX_BUFFERS + i * BUFFER_BYTES)
    }
}

/// Why a net call did not move a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetFail {
    /// Nothing to receive, or no free transmit slot (Solo5's `AGAIN`).
    Again,
    /// A frame longer than [`FRAME_MAX`] to send, or a receive buffer
    /// shorter than the waiting frame (Solo5's `EINVAL`).
    Length {
        /// Bytes of the frame.
        frame: u64,
        /// Bytes the call allowed.
        room: u64,
    },
    /// The guest's buffer or the reserve is not in memory.
    Memory(OutOfBounds),
    /// A used entry the polling core could not have written (a hypervisor
    /// bug; the call fails and the device keeps its state).
    BadUsed {
        /// The entry's descriptor id.
        id: u32,
        /// Its length.
        len: u32,
    },
}

impl From<OutOfBounds> for NetFail {
    fn from(e: OutOfBounds) -> Self {
        NetFail::Memory(e)
    }
}

impl fmt::Display for NetFail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetFail::Again => write!(f, "no frame waiting, or no free transmit slot"),
            NetFail::Length { frame, room } => {
                write!(f, "a frame of {frame} bytes for {room} bytes of room")
            }
            NetFail::Memory(e) => write!(f, "{e}"),
            NetFail::BadUsed { id, len } => {
                write!(f, "receive ring has a used entry id {id} len {len}")
            }
        }
    }
}

/// Why a device could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramError {
    /// The transport refused a register write.
    Register(MmioError),
    /// The device refused `VIRTIO_F_VERSION_1` alone.
    Features,
    /// The reserve is not in memory.
    Memory(OutOfBounds),
    /// The port's rings failed the port's own check.
    Rings(QueueError),
    /// The VM's memory is not attached to the port.
    Detached,
}

impl fmt::Display for ProgramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgramError::Register(e) => write!(f, "setting up the net device: {e}"),
            ProgramError::Features => write!(f, "the net device refused VIRTIO_F_VERSION_1"),
            ProgramError::Memory(e) => write!(f, "the net device's rings: {e}"),
            ProgramError::Rings(e) => write!(f, "the net device's rings: {e}"),
            ProgramError::Detached => write!(f, "the net port has no memory attached"),
        }
    }
}

fn write_desc(
    mem: &mut impl GuestRam,
    table: Gpa,
    i: u64,
    (addr, len, flags): (Gpa, u64, u16),
) -> Result<(), OutOfBounds> {
    let d = table.0 + i * DESC_SIZE;
    mem.write_u64(Gpa(d), addr.0)?;
    mem.write_u32(Gpa(d + DESC_LEN), len as u32)?;
    mem.write_u16(Gpa(d + DESC_FLAGS), flags)
}

/// Puts descriptor `id` in avail entry `at` and publishes it.
fn post(mem: &mut impl GuestRam, avail: Gpa, at: u16, id: u16) -> Result<(), OutOfBounds> {
    let slot = u64::from(at) % Q;
    mem.write_u16(Gpa(avail.0 + RING_ENTRIES + slot * AVAIL_ENTRY_SIZE), id)?;
    mem.fence(Barrier::Release);
    mem.write_u16(Gpa(avail.0 + RING_IDX), at.wrapping_add(1))
}

/// Sets up `t` as a driver would, with its rings at `place` (memory there
/// zeroed): `VIRTIO_F_VERSION_1` only, both queues of [`QUEUE_SIZE`], every
/// receive buffer posted, then `DRIVER_OK`. Returns the last write's
/// effect for the port to act on.
pub fn program(
    t: &mut Transport<NetDevice>,
    mem: &mut impl GuestRam,
    place: RingPlace,
) -> Result<WriteEffect, ProgramError> {
    let mut w = |reg: u64, value: u32| t.write(reg, 4, value).map_err(ProgramError::Register);
    let mut status = DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER;
    w(offset::STATUS, status.bits())?;
    w(offset::DRIVER_FEATURES_SEL, 1)?;
    w(offset::DRIVER_FEATURES, (VIRTIO_F_VERSION_1 >> 32) as u32)?;
    w(offset::DRIVER_FEATURES_SEL, 0)?;
    w(offset::DRIVER_FEATURES, 0)?;
    status |= DeviceStatus::FEATURES_OK;
    if w(offset::STATUS, status.bits())? == WriteEffect::FeaturesRejected {
        return Err(ProgramError::Features);
    }
    for q in [RECEIVE_QUEUE, TRANSMIT_QUEUE] {
        let (desc, avail, used) = place.queue(q);
        w(offset::QUEUE_SEL, q.into())?;
        w(offset::QUEUE_NUM, QUEUE_SIZE.into())?;
        for (low, high, at) in [
            (offset::QUEUE_DESC_LOW, offset::QUEUE_DESC_HIGH, desc),
            (offset::QUEUE_DRIVER_LOW, offset::QUEUE_DRIVER_HIGH, avail),
            (offset::QUEUE_DEVICE_LOW, offset::QUEUE_DEVICE_HIGH, used),
        ] {
            let gpa = place.at(at).0;
            w(low, gpa as u32)?;
            w(high, (gpa >> 32) as u32)?;
        }
        w(offset::QUEUE_READY, 1)?;
    }
    let fill = |mem: &mut _| -> Result<(), OutOfBounds> {
        for i in 0..QUEUE_SIZE {
            let buffer = (place.rx_buffer(i.into()), RX_OFFER, VIRTQ_DESC_F_WRITE);
            write_desc(mem, place.at(RX_DESC), i.into(), buffer)?;
            post(mem, place.at(RX_AVAIL), i, i)?;
        }
        Ok(())
    };
    fill(mem).map_err(ProgramError::Memory)?;
    status |= DeviceStatus::DRIVER_OK;
    w(offset::STATUS, status.bits())
}

/// Sends the `len`-byte frame at `data` (checked to be the guest's by the
/// caller) on the device at `place`.
pub fn send(mem: &mut impl GuestRam, place: RingPlace, data: Gpa, len: u64) -> Result<(), NetFail> {
    if len > FRAME_MAX {
        return Err(NetFail::Length {
            frame: len,
            room: FRAME_MAX,
        });
    }
    let avail = place.at(TX_AVAIL);
    let at = mem.read_u16(Gpa(avail.0 + RING_IDX))?;
    let done = mem.read_u16(Gpa(place.at(TX_USED).0 + RING_IDX))?;
    if u64::from(at.wrapping_sub(done)) >= Q {
        return Err(NetFail::Again);
    }
    let slot = u64::from(at) % Q;
    let buffer = place.tx_buffer(slot);
    let mut frame = [0u8; (HDR + FRAME_MAX) as usize];
    let bytes = &mut frame[..(HDR + len) as usize];
    mem.read(data, &mut bytes[HDR as usize..])?;
    mem.write(buffer, bytes)?;
    write_desc(mem, place.at(TX_DESC), slot, (buffer, HDR + len, 0))?;
    post(mem, avail, at, slot as u16)?;
    Ok(())
}

/// Takes the next received frame of the device at `place` into the
/// `room` bytes at `data` (checked to be the guest's by the caller);
/// returns its length. A frame longer than `room` stays where it is. A
/// buffer the polling core handed back without a frame (a used length
/// shorter than the header: a NIC that refused the buffer or dropped a bad
/// frame into it) is posted again and passed over.
pub fn recv(
    mem: &mut impl GuestRam,
    place: RingPlace,
    data: Gpa,
    room: u64,
) -> Result<u64, NetFail> {
    let avail = place.at(RX_AVAIL);
    let used = place.at(RX_USED);
    // At most a ring's worth of empty buffers before the next frame.
    for _ in 0..=Q {
        let posted = mem.read_u16(Gpa(avail.0 + RING_IDX))?;
        let taken = posted.wrapping_sub(QUEUE_SIZE);
        mem.fence(Barrier::Acquire);
        if mem.read_u16(Gpa(used.0 + RING_IDX))? == taken {
            return Err(NetFail::Again);
        }
        mem.fence(Barrier::Acquire);
        let elem = used.0 + RING_ENTRIES + (u64::from(taken) % Q) * USED_ELEM_SIZE;
        let id = mem.read_u32(Gpa(elem))?;
        let len = mem.read_u32(Gpa(elem + USED_LEN))?;
        if u64::from(id) >= Q || u64::from(len) > HDR + FRAME_MAX {
            return Err(NetFail::BadUsed { id, len });
        }
        let buffer = place.rx_buffer(id.into());
        let again = (buffer, RX_OFFER, VIRTQ_DESC_F_WRITE);
        let Some(frame) = u64::from(len).checked_sub(HDR) else {
            // No frame in it: the buffer goes back to the device.
            write_desc(mem, place.at(RX_DESC), id.into(), again)?;
            post(mem, avail, posted, id as u16)?;
            continue;
        };
        if frame > room {
            return Err(NetFail::Length { frame, room });
        }
        let mut bytes = [0u8; FRAME_MAX as usize];
        let bytes = &mut bytes[..frame as usize];
        mem.read(Gpa(buffer.0 + HDR), bytes)?;
        mem.write(data, bytes)?;
        write_desc(mem, place.at(RX_DESC), id.into(), again)?;
        post(mem, avail, posted, id as u16)?;
        return Ok(frame);
    }
    Err(NetFail::Again)
}

/// Whether a received frame waits on the device at `place`.
pub fn ready(mem: &impl GuestRam, place: RingPlace) -> Result<bool, OutOfBounds> {
    let posted = mem.read_u16(Gpa(place.at(RX_AVAIL).0 + RING_IDX))?;
    let used = mem.read_u16(Gpa(place.at(RX_USED).0 + RING_IDX))?;
    Ok(used != posted.wrapping_sub(QUEUE_SIZE))
}

/// Whether the polling core has taken every frame sent on the device at
/// `place` (its VM may then stop without losing one).
pub fn sent(mem: &impl GuestRam, place: RingPlace) -> Result<bool, OutOfBounds> {
    let posted = mem.read_u16(Gpa(place.at(TX_AVAIL).0 + RING_IDX))?;
    let done = mem.read_u16(Gpa(place.at(TX_USED).0 + RING_IDX))?;
    Ok(posted == done)
}

#[cfg(test)]
pub(crate) mod tests;
