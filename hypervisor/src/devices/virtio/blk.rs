//! The virtio block device model (virtio 1.2 §5.2): one request queue served against a [`Disk`], every request checked whole before a byte moves.
//!
//! A request is a chain of a device-readable 16-byte header, its data
//! (device-readable for a write, device-writable for a read) and one
//! device-writable status byte, the chain's last writable byte (§5.2.6).
//! The header is read from the chain's first readable bytes wherever the
//! descriptors split them. The data, however many descriptors it spans, is
//! handed to the disk as one range through `Scatter`, so the disk checks
//! the whole request (whole blocks, inside the image, inside the guest's
//! memory) before it copies anything and counts it once. What the disk
//! refuses is answered `VIRTIO_BLK_S_IOERR` with nothing moved; a chain that
//! breaks the driver's rules is a [`BlkError`] the caller stops the guest
//! with.
#![forbid(unsafe_code)]

use super::features::COMMON_FEATURES;
use super::mmio::Device;
use super::queue::{Chain, MAX_CHAIN_DESCRIPTORS, QueueError, SplitQueue};
use crate::block::{BlockError, Disk};
use crate::mem::access::{Barrier, Gpa, GuestRam, GuestRead, OutOfBounds};
use core::fmt;

/// Virtio device ID of a block device (§5.2.1).
pub const VIRTIO_ID_BLOCK: u32 = 2;
/// requestq, the one queue without `VIRTIO_BLK_F_MQ` (§5.2.2).
pub const REQUEST_QUEUE: u16 = 0;
/// Queues of a device without `VIRTIO_BLK_F_MQ` (§5.2.2).
const NUM_QUEUES: u16 = 1;

/// `blk_size` in the configuration space is valid (§5.2.3).
pub const VIRTIO_BLK_F_BLK_SIZE: u64 = 1 << 6;
/// The device takes `VIRTIO_BLK_T_FLUSH` (§5.2.3).
pub const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;

/// Bytes per sector, the unit of `capacity` and of a request's `sector`
/// whatever the block size (§5.2.4, §5.2.6).
pub const SECTOR_SIZE: u64 = 512;

/// `struct virtio_blk_config` (§5.2.4) as far as `blk_size`: `le64
/// capacity` at 0, then `size_max`, `seg_max` and `geometry` (not offered:
/// they read 0), then `le32 blk_size` at 20.
const CONFIG_CAPACITY: usize = 0;
/// Offset of `blk_size`.
const CONFIG_BLK_SIZE: usize = 20;
/// Bytes of the configuration space the device has.
const BLK_CONFIG_LEN: usize = CONFIG_BLK_SIZE + size_of::<u32>();
const _: () = assert!(CONFIG_CAPACITY + size_of::<u64>() <= CONFIG_BLK_SIZE);

/// Request type: read from the disk into the device-writable data (§5.2.6).
pub const VIRTIO_BLK_T_IN: u32 = 0;
/// Request type: write the device-readable data to the disk (§5.2.6).
pub const VIRTIO_BLK_T_OUT: u32 = 1;
/// Request type: make earlier writes durable (§5.2.6).
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
/// Request type: the device ID string into the device-writable data (§5.2.6).
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;

/// Status: the request was carried out (§5.2.6).
pub const VIRTIO_BLK_S_OK: u8 = 0;
/// Status: the request failed (here: the disk refused it, nothing moved).
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
/// Status: the request type is not supported.
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

/// Bytes of a request's header, `struct virtio_blk_req`'s `le32 type; le32
/// reserved; le64 sector;` (§5.2.6).
pub const REQ_HEADER_LEN: u32 = 16;
/// Offset of `type` in the header.
const REQ_TYPE: usize = 0;
/// Offset of `sector` in the header.
const REQ_SECTOR: usize = 8;
const _: () = assert!(REQ_SECTOR + size_of::<u64>() == REQ_HEADER_LEN as usize);
const _: () = assert!(REQ_TYPE + size_of::<u32>() <= REQ_SECTOR);

/// Bytes of the device ID string `VIRTIO_BLK_T_GET_ID` returns, NUL-padded
/// (§5.2.6, `VIRTIO_BLK_ID_BYTES`).
pub const VIRTIO_BLK_ID_BYTES: usize = 20;
/// Bytes of the status field, `u8 status` (§5.2.6).
const STATUS_LEN: u32 = 1;

/// A block device of a disk: what its configuration space and `GET_ID`
/// tell the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlkDevice {
    capacity: u64,
    block_size: u32,
    id: [u8; VIRTIO_BLK_ID_BYTES],
}

impl BlkDevice {
    /// The device of a disk of `capacity` bytes in blocks of `block_size`
    /// bytes, whose ID string is `id` (its first 20 bytes, NUL-padded).
    pub fn new(capacity: u64, block_size: u32, id: &str) -> Self {
        let mut bytes = [0; VIRTIO_BLK_ID_BYTES];
        let n = id.len().min(VIRTIO_BLK_ID_BYTES);
        bytes[..n].copy_from_slice(&id.as_bytes()[..n]);
        BlkDevice {
            capacity,
            block_size,
            id: bytes,
        }
    }

    /// The ID string `GET_ID` returns, for [`serve`].
    pub fn id(&self) -> &[u8; VIRTIO_BLK_ID_BYTES] {
        &self.id
    }

    /// The configuration space's bytes.
    fn config(&self) -> [u8; BLK_CONFIG_LEN] {
        let mut c = [0; BLK_CONFIG_LEN];
        let sectors = self.capacity / SECTOR_SIZE;
        c[CONFIG_CAPACITY..][..size_of::<u64>()].copy_from_slice(&sectors.to_le_bytes());
        c[CONFIG_BLK_SIZE..][..size_of::<u32>()].copy_from_slice(&self.block_size.to_le_bytes());
        c
    }
}

impl Device for BlkDevice {
    fn device_id(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }

    fn features(&self) -> u64 {
        COMMON_FEATURES | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH
    }

    fn num_queues(&self) -> u16 {
        NUM_QUEUES
    }

    fn config_len(&self) -> usize {
        BLK_CONFIG_LEN
    }

    fn read_config(&self, offset: usize, data: &mut [u8]) {
        data.fill(0);
        let config = self.config();
        if let Some(from) = config.get(offset..) {
            let n = from.len().min(data.len());
            data[..n].copy_from_slice(&from[..n]);
        }
    }

    /// The fields here are read-only (`writeback` needs
    /// `VIRTIO_BLK_F_CONFIG_WCE`, not offered): writes are dropped.
    fn write_config(&mut self, _offset: usize, _data: &[u8]) {}
}

/// A chain that breaks the rules a driver must follow (§2.7, §5.2.6). Each
/// stops the guest with its [`Display`](fmt::Display) text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkError {
    /// The chain itself is bad, or one of its buffers is not in the
    /// guest's memory.
    Queue(QueueError),
    /// Fewer device-readable bytes than the request header.
    HeaderTooShort {
        /// The chain's head.
        head: u16,
        /// Its device-readable bytes.
        len: u32,
    },
    /// No device-writable byte for the status.
    NoStatus {
        /// The chain's head.
        head: u16,
    },
    /// Device-readable bytes after the header of a request whose data the
    /// device writes (a read, `GET_ID`).
    ReadableData {
        /// The chain's head.
        head: u16,
        /// The request type.
        kind: u32,
        /// Device-readable bytes after the header.
        len: u32,
    },
    /// Device-writable bytes before the status byte of a write, whose
    /// data the device reads.
    WritableData {
        /// The chain's head.
        head: u16,
        /// Device-writable bytes before the status byte.
        len: u32,
    },
}

impl From<QueueError> for BlkError {
    fn from(e: QueueError) -> Self {
        BlkError::Queue(e)
    }
}

/// A request type's name, for messages.
fn kind_name(kind: u32) -> &'static str {
    match kind {
        VIRTIO_BLK_T_IN => "read",
        VIRTIO_BLK_T_OUT => "write",
        VIRTIO_BLK_T_FLUSH => "flush",
        VIRTIO_BLK_T_GET_ID => "get-id",
        _ => "unsupported",
    }
}

impl fmt::Display for BlkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BlkError::Queue(e) => e.fmt(f),
            BlkError::HeaderTooShort { head, len } => write!(
                f,
                "block request chain {head} has {len} device-readable bytes, less than the {REQ_HEADER_LEN}-byte request header"
            ),
            BlkError::NoStatus { head } => write!(
                f,
                "block request chain {head} has no device-writable byte for its status"
            ),
            BlkError::ReadableData { head, kind, len } => write!(
                f,
                "block {} request chain {head} has {len} device-readable bytes after its header; the device writes this request's data, so its buffers must be device-writable",
                kind_name(kind)
            ),
            BlkError::WritableData { head, len } => write!(
                f,
                "block write request chain {head} has {len} device-writable bytes before its status byte; a write's data must be device-readable"
            ),
        }
    }
}

/// What one [`serve`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Served {
    /// Requests returned to the driver, whatever their status.
    pub requests: u32,
    /// Bytes of data moved between the disk and the guest (reads and
    /// writes carried out; not headers, status bytes or IDs).
    pub bytes: u64,
}

/// Serves every request the driver has made available on `queue` against
/// `disk`, in order, answering `GET_ID` with `id`, and returns them used
/// with one used-idx update. At most one queue's worth is taken per call,
/// so a driver publishing as fast as it is served cannot hold the caller.
/// Whether to interrupt is then [`SplitQueue::needs_interrupt`]. On an
/// error the chain that broke the rules has been taken and nothing of it
/// moved; the guest is to be stopped.
pub fn serve<M: GuestRam, S: GuestRam>(
    queue: &mut SplitQueue,
    mem: &mut M,
    disk: &mut Disk<'_, S>,
    id: &[u8; VIRTIO_BLK_ID_BYTES],
) -> Result<Served, BlkError> {
    let mut done = Served::default();
    let mut chain = Chain::default();
    for _ in 0..queue.size() {
        if !queue.pop_avail_into(mem, &mut chain)? {
            break;
        }
        let answer = serve_one(&chain, mem, disk, id)?;
        queue.add_used(mem, chain.head(), answer.written + STATUS_LEN)?;
        done.requests += 1;
        done.bytes += answer.moved;
    }
    queue.publish_used(mem)?;
    Ok(done)
}

/// A request's header, decoded (`reserved` is ignored).
struct ReqHeader {
    kind: u32,
    sector: u64,
}

impl ReqHeader {
    fn from_bytes(b: &[u8; REQ_HEADER_LEN as usize]) -> Self {
        let mut kind = [0; size_of::<u32>()];
        kind.copy_from_slice(&b[REQ_TYPE..][..size_of::<u32>()]);
        let mut sector = [0; size_of::<u64>()];
        sector.copy_from_slice(&b[REQ_SECTOR..][..size_of::<u64>()]);
        ReqHeader {
            kind: u32::from_le_bytes(kind),
            sector: u64::from_le_bytes(sector),
        }
    }
}

/// How a request was answered.
struct Answer {
    status: u8,
    /// Bytes written into the chain before the status byte.
    written: u32,
    /// Bytes moved between the disk and the guest.
    moved: u64,
}

impl Answer {
    /// An answer that moved and wrote nothing.
    fn status(status: u8) -> Self {
        Answer {
            status,
            written: 0,
            moved: 0,
        }
    }
}

/// Checks one chain against the request rules, carries the request out
/// and writes its status byte.
fn serve_one<M: GuestRam, S: GuestRam>(
    chain: &Chain,
    mem: &mut M,
    disk: &mut Disk<'_, S>,
    id: &[u8; VIRTIO_BLK_ID_BYTES],
) -> Result<Answer, BlkError> {
    let head = chain.head();
    let readable = chain.readable_len();
    if readable < REQ_HEADER_LEN {
        return Err(BlkError::HeaderTooShort {
            head,
            len: readable,
        });
    }
    // The writable part ends with the status byte; what precedes it is
    // the data the device may write.
    let Some(room) = chain.writable_len().checked_sub(STATUS_LEN) else {
        return Err(BlkError::NoStatus { head });
    };
    // Read once: the driver cannot change the request after this.
    let mut raw = [0; REQ_HEADER_LEN as usize];
    chain.read_at(mem, 0, &mut raw)?;
    let header = ReqHeader::from_bytes(&raw);
    let data_in = readable - REQ_HEADER_LEN;
    let answer = match header.kind {
        VIRTIO_BLK_T_IN | VIRTIO_BLK_T_GET_ID if data_in != 0 => {
            return Err(BlkError::ReadableData {
                head,
                kind: header.kind,
                len: data_in,
            });
        }
        VIRTIO_BLK_T_OUT if room != 0 => {
            return Err(BlkError::WritableData { head, len: room });
        }
        VIRTIO_BLK_T_IN => transfer(Direction::Read, chain, mem, disk, header.sector, room)?,
        VIRTIO_BLK_T_OUT => transfer(Direction::Write, chain, mem, disk, header.sector, room)?,
        // Writes go to the image in memory at once: nothing to flush.
        VIRTIO_BLK_T_FLUSH => Answer::status(VIRTIO_BLK_S_OK),
        VIRTIO_BLK_T_GET_ID => {
            let n = id.len().min(room as usize);
            let written = chain.write_at(mem, 0, &id[..n])?;
            Answer {
                status: VIRTIO_BLK_S_OK,
                // At most the 20 bytes of the ID.
                written: written as u32,
                moved: 0,
            }
        }
        _ => Answer::status(VIRTIO_BLK_S_UNSUPP),
    };
    chain.write_at(mem, chain.writable_len() - STATUS_LEN, &[answer.status])?;
    Ok(answer)
}

/// Which way a request's data goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Disk to guest (`VIRTIO_BLK_T_IN`).
    Read,
    /// Guest to disk (`VIRTIO_BLK_T_OUT`).
    Write,
}

/// Carries out a read or a write of the data at `sector`: the readable
/// bytes after the header, or the `room` writable bytes before the status
/// byte. The disk checks the whole request before it moves a byte; a
/// refusal is `VIRTIO_BLK_S_IOERR`.
fn transfer<M: GuestRam, S: GuestRam>(
    dir: Direction,
    chain: &Chain,
    mem: &mut M,
    disk: &mut Disk<'_, S>,
    sector: u64,
    room: u32,
) -> Result<Answer, BlkError> {
    let segments = match dir {
        Direction::Read => Segments::writable(chain, room),
        Direction::Write => Segments::readable(chain, REQ_HEADER_LEN),
    };
    let len = segments.len;
    // A sector past 2^55 is past any image: saturated, the disk refuses it.
    let offset = sector.saturating_mul(SECTOR_SIZE);
    let mut view = Scatter { mem, segments };
    let done = match dir {
        Direction::Read => disk.read(offset, len, &mut view, 0),
        Direction::Write => disk.write(offset, len, &view, 0),
    };
    match done {
        Ok(()) => Ok(Answer {
            status: VIRTIO_BLK_S_OK,
            // The data is inside one chain, whose bytes fit a u32.
            written: if dir == Direction::Read {
                len as u32
            } else {
                0
            },
            moved: len,
        }),
        Err(
            BlockError::Unaligned { .. } | BlockError::Beyond { .. } | BlockError::TooLong { .. },
        ) => Ok(Answer::status(VIRTIO_BLK_S_IOERR)),
        Err(BlockError::Buffer { .. }) => Err(view.culprit(dir).into()),
    }
}

/// A request's data buffers in chain order (guest-physical address,
/// length), without the header before them or the status byte after.
struct Segments {
    list: [(u64, u32); MAX_CHAIN_DESCRIPTORS],
    count: usize,
    /// Their bytes.
    len: u64,
}

impl Segments {
    fn empty() -> Self {
        Segments {
            list: [(0, 0); MAX_CHAIN_DESCRIPTORS],
            count: 0,
            len: 0,
        }
    }

    /// Adds a buffer (empty ones are left out). A chain has at most
    /// [`MAX_CHAIN_DESCRIPTORS`] buffers, one segment each.
    fn push(&mut self, addr: u64, len: u32) {
        if len == 0 {
            return;
        }
        if let Some(slot) = self.list.get_mut(self.count) {
            *slot = (addr, len);
            self.count += 1;
            self.len += u64::from(len);
        }
    }

    /// The readable bytes after the first `skip`.
    fn readable(chain: &Chain, skip: u32) -> Self {
        let mut s = Self::empty();
        let mut skip = skip;
        for d in chain.readable() {
            let cut = skip.min(d.len);
            skip -= cut;
            s.push(d.addr.saturating_add(cut.into()), d.len - cut);
        }
        s
    }

    /// The first `room` writable bytes.
    fn writable(chain: &Chain, room: u32) -> Self {
        let mut s = Self::empty();
        let mut room = room;
        for d in chain.writable() {
            let n = room.min(d.len);
            room -= n;
            s.push(d.addr, n);
        }
        s
    }

    fn iter(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.list[..self.count].iter().copied()
    }

    /// Calls `f` with each piece of the view's range `gpa .. gpa + len`:
    /// its guest-physical address, its offset in the range and its length.
    fn each(
        &self,
        gpa: Gpa,
        len: u64,
        mut f: impl FnMut(Gpa, usize, u64) -> Result<(), OutOfBounds>,
    ) -> Result<(), OutOfBounds> {
        let bad = OutOfBounds { gpa: gpa.0, len };
        let end = gpa
            .0
            .checked_add(len)
            .filter(|&end| end <= self.len)
            .ok_or(bad)?;
        let mut base = 0;
        for (addr, seg_len) in self.iter() {
            let seg_end = base + u64::from(seg_len);
            let (lo, hi) = (gpa.0.max(base), end.min(seg_end));
            if lo < hi {
                let at = Gpa(addr).checked_add(lo - base).ok_or(bad)?;
                f(at, (lo - gpa.0) as usize, hi - lo).map_err(|_| bad)?;
            }
            base = seg_end;
        }
        Ok(())
    }
}

/// A request's data as one guest-physical range `0 .. len` mapped onto its
/// buffers in chain order, so the disk checks and copies a request split
/// over several descriptors as it does one buffer.
struct Scatter<'m, M> {
    mem: &'m mut M,
    segments: Segments,
}

impl<M: GuestRam> Scatter<'_, M> {
    /// The first buffer the guest's memory does not hold (writable, for a
    /// read), named as the queue names it.
    fn culprit(&mut self, dir: Direction) -> QueueError {
        let mem = &mut *self.mem;
        let (addr, len) = self
            .segments
            .iter()
            .find(|&(addr, len)| match dir {
                Direction::Read => mem.check_writable(Gpa(addr), len.into()).is_err(),
                Direction::Write => mem.check_readable(Gpa(addr), len.into()).is_err(),
            })
            .or_else(|| self.segments.iter().next())
            .unwrap_or_default();
        match dir {
            Direction::Read => QueueError::BufferNotWritable { addr, len },
            Direction::Write => QueueError::BufferOutsideMemory { addr, len },
        }
    }
}

impl<M: GuestRead> GuestRead for Scatter<'_, M> {
    fn size(&self) -> u64 {
        self.segments.len
    }

    fn read(&self, gpa: Gpa, out: &mut [u8]) -> Result<(), OutOfBounds> {
        let bad = OutOfBounds {
            gpa: gpa.0,
            len: out.len() as u64,
        };
        self.segments.each(gpa, out.len() as u64, |at, from, n| {
            let piece = out.get_mut(from..from + n as usize).ok_or(bad)?;
            self.mem.read(at, piece)
        })
    }

    fn read_chunks(&self, gpa: Gpa, len: u64, mut f: impl FnMut(&[u8])) -> Result<(), OutOfBounds> {
        self.check_readable(gpa, len)?;
        self.segments
            .each(gpa, len, |at, _, n| self.mem.read_chunks(at, n, &mut f))
    }

    fn check_readable(&self, gpa: Gpa, len: u64) -> Result<(), OutOfBounds> {
        self.segments
            .each(gpa, len, |at, _, n| self.mem.check_readable(at, n))
    }
}

impl<M: GuestRam> GuestRam for Scatter<'_, M> {
    fn write(&mut self, gpa: Gpa, data: &[u8]) -> Result<(), OutOfBounds> {
        let bad = OutOfBounds {
            gpa: gpa.0,
            len: data.len() as u64,
        };
        let mem = &mut *self.mem;
        self.segments.each(gpa, data.len() as u64, |at, from, n| {
            mem.write(at, data.get(from..from + n as usize).ok_or(bad)?)
        })
    }

    fn check_writable(&mut self, gpa: Gpa, len: u64) -> Result<(), OutOfBounds> {
        let mem = &mut *self.mem;
        self.segments
            .each(gpa, len, |at, _, n| mem.check_writable(at, n))
    }

    fn fence(&self, barrier: Barrier) {
        self.mem.fence(barrier);
    }
}

#[cfg(test)]
mod tests;
