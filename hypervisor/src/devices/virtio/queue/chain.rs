//! Descriptor chains (virtio 1.2 §2.7.5): the walk that follows a chain
//! from its head through the descriptor table, checking every step, and the
//! validated copy it produces, with helpers that move bytes in and out of
//! its buffers through guest memory.

use super::{
    DESC_SIZE, MAX_CHAIN_DESCRIPTORS, QueueError, RingPart, VIRTQ_DESC_F_INDIRECT,
    VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};
use crate::mem::access::{Gpa, GuestRam};

const DESC_ADDR: usize = 0;
const DESC_LEN: usize = 8;
const DESC_FLAGS: usize = 12;
const DESC_NEXT: usize = 14;
// The fields tile the 16 bytes, so `field` never leaves them.
const _: () = assert!(DESC_ADDR == 0 && DESC_LEN == DESC_ADDR + 8 && DESC_FLAGS == DESC_LEN + 4);
const _: () = assert!(DESC_NEXT == DESC_FLAGS + 2 && DESC_SIZE as usize == DESC_NEXT + 2);

/// The `N` bytes of a descriptor at `at`.
fn field<const N: usize>(b: &[u8; DESC_SIZE as usize], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

/// One descriptor, decoded from its 16 little-endian bytes (§2.7.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// Guest-physical address of the buffer.
    pub addr: u64,
    /// Its length in bytes.
    pub len: u32,
    /// `VIRTQ_DESC_F_*` bits.
    pub flags: u16,
    /// The next descriptor's index, if `VIRTQ_DESC_F_NEXT` is set.
    pub next: u16,
}

impl Descriptor {
    /// Decodes the wire form.
    pub fn from_bytes(b: &[u8; DESC_SIZE as usize]) -> Self {
        Descriptor {
            addr: u64::from_le_bytes(field(b, DESC_ADDR)),
            len: u32::from_le_bytes(field(b, DESC_LEN)),
            flags: u16::from_le_bytes(field(b, DESC_FLAGS)),
            next: u16::from_le_bytes(field(b, DESC_NEXT)),
        }
    }

    /// Whether the device may write the buffer (otherwise it only reads it).
    pub fn is_writable(&self) -> bool {
        self.flags & VIRTQ_DESC_F_WRITE != 0
    }

    /// Whether the chain continues at `next`.
    pub fn has_next(&self) -> bool {
        self.flags & VIRTQ_DESC_F_NEXT != 0
    }

    /// Whether the buffer is a table of indirect descriptors.
    pub fn is_indirect(&self) -> bool {
        self.flags & VIRTQ_DESC_F_INDIRECT != 0
    }
}

/// A descriptor chain popped from the available ring: a validated copy of
/// its descriptors, device-readable ones first. Its buffers were inside
/// guest memory (and the writable ones writable) when it was popped. The
/// default value is an empty chain to pop into with
/// [`SplitQueue::pop_avail_into`](super::SplitQueue::pop_avail_into).
#[derive(Clone, Debug)]
pub struct Chain {
    head: u16,
    descs: [Descriptor; MAX_CHAIN_DESCRIPTORS],
    indices: [u16; MAX_CHAIN_DESCRIPTORS],
    count: usize,
    readable_count: usize,
    readable_len: u32,
    writable_len: u32,
}

impl Default for Chain {
    fn default() -> Self {
        Chain {
            head: 0,
            descs: [Descriptor::default(); MAX_CHAIN_DESCRIPTORS],
            indices: [0; MAX_CHAIN_DESCRIPTORS],
            count: 0,
            readable_count: 0,
            readable_len: 0,
            writable_len: 0,
        }
    }
}

impl Chain {
    /// Empties the chain for a walk from `head`.
    fn restart(&mut self, head: u16) {
        self.head = head;
        self.count = 0;
        self.readable_count = 0;
        self.readable_len = 0;
        self.writable_len = 0;
    }

    /// Makes the chain the single descriptor `d` at index `head` (one that
    /// [`SplitQueue::pop_single`](super::SplitQueue::pop_single) checked).
    pub fn set_single(&mut self, head: u16, d: Descriptor) {
        self.head = head;
        self.descs[0] = d;
        self.indices[0] = head;
        self.count = 1;
        if d.is_writable() {
            self.readable_count = 0;
            self.readable_len = 0;
            self.writable_len = d.len;
        } else {
            self.readable_count = 1;
            self.readable_len = d.len;
            self.writable_len = 0;
        }
    }

    /// Index of the head descriptor: what
    /// [`SplitQueue::push_used`](super::SplitQueue::push_used) returns to the
    /// driver.
    pub fn head(&self) -> u16 {
        self.head
    }

    /// All descriptors in chain order.
    pub fn descriptors(&self) -> &[Descriptor] {
        &self.descs[..self.count]
    }

    /// The device-readable descriptors (they come first).
    pub fn readable(&self) -> &[Descriptor] {
        &self.descs[..self.readable_count]
    }

    /// The device-writable descriptors.
    pub fn writable(&self) -> &[Descriptor] {
        &self.descs[self.readable_count..self.count]
    }

    /// Total bytes of the readable buffers.
    pub fn readable_len(&self) -> u32 {
        self.readable_len
    }

    /// Total bytes of the writable buffers.
    pub fn writable_len(&self) -> u32 {
        self.writable_len
    }

    /// Calls `f` with the guest memory of readable bytes `offset .. offset +
    /// len` (clipped to the readable part) in order; returns how many bytes
    /// were passed.
    pub fn for_each_readable<M: GuestRam>(
        &self,
        mem: &M,
        offset: u32,
        len: u32,
        mut f: impl FnMut(&[u8]),
    ) -> Result<u32, QueueError> {
        let mut skip = offset;
        let mut left = len;
        let mut done = 0;
        for d in self.readable() {
            if left == 0 {
                break;
            }
            if skip >= d.len {
                skip -= d.len;
                continue;
            }
            let n = (d.len - skip).min(left);
            let gpa = d.addr + u64::from(skip);
            mem.read_chunks(Gpa(gpa), n.into(), &mut f).map_err(|_| {
                QueueError::BufferOutsideMemory {
                    addr: d.addr,
                    len: d.len,
                }
            })?;
            skip = 0;
            left -= n;
            done += n;
        }
        Ok(done)
    }

    /// Copies readable bytes from `offset` on into `out`; returns how many
    /// (less than `out.len()` if the readable part ends first).
    pub fn read_at<M: GuestRam>(
        &self,
        mem: &M,
        offset: u32,
        out: &mut [u8],
    ) -> Result<usize, QueueError> {
        let want = u32::try_from(out.len()).unwrap_or(u32::MAX);
        let mut filled = 0;
        self.for_each_readable(mem, offset, want, |piece| {
            out[filled..filled + piece.len()].copy_from_slice(piece);
            filled += piece.len();
        })?;
        Ok(filled)
    }

    /// Copies the readable part into `out`; returns the bytes copied.
    pub fn read_into<M: GuestRam>(&self, mem: &M, out: &mut [u8]) -> Result<usize, QueueError> {
        self.read_at(mem, 0, out)
    }

    /// Writes `data` into the writable part starting `offset` bytes into it;
    /// returns the bytes written (less than `data.len()` if the writable
    /// part ends first).
    pub fn write_at<M: GuestRam>(
        &self,
        mem: &mut M,
        offset: u32,
        data: &[u8],
    ) -> Result<usize, QueueError> {
        let mut skip = offset;
        let mut written = 0;
        for d in self.writable() {
            if written == data.len() {
                break;
            }
            if skip >= d.len {
                skip -= d.len;
                continue;
            }
            let room = (d.len - skip) as usize;
            let n = room.min(data.len() - written);
            mem.write(Gpa(d.addr + u64::from(skip)), &data[written..written + n])
                .map_err(|_| QueueError::BufferNotWritable {
                    addr: d.addr,
                    len: d.len,
                })?;
            skip = 0;
            written += n;
        }
        Ok(written)
    }

    /// Writes `data` at the start of the writable part; returns the bytes
    /// written.
    pub fn write_from<M: GuestRam>(&self, mem: &mut M, data: &[u8]) -> Result<usize, QueueError> {
        self.write_at(mem, 0, data)
    }
}

/// The descriptor table a chain is walked in, and how far a chain may go.
pub(super) struct DescTable {
    /// Guest-physical address of the table.
    pub addr: u64,
    /// Number of descriptors (the queue size).
    pub size: u16,
    /// Most descriptors in one chain.
    pub max_len: usize,
    /// Most bytes in one chain.
    pub max_bytes: u32,
}

/// Checks that a descriptor's buffer lies in guest memory, and that the
/// hypervisor may write it if the device is to.
fn check_buffer<M: GuestRam>(mem: &mut M, d: &Descriptor) -> Result<(), QueueError> {
    let (addr, len) = (d.addr, d.len);
    mem.check_readable(Gpa(addr), len.into())
        .map_err(|_| QueueError::BufferOutsideMemory { addr, len })?;
    if d.is_writable() {
        mem.check_writable(Gpa(addr), len.into())
            .map_err(|_| QueueError::BufferNotWritable { addr, len })?;
    }
    Ok(())
}

impl DescTable {
    pub(super) fn read<M: GuestRam>(&self, mem: &M, index: u16) -> Result<Descriptor, QueueError> {
        let addr = self.addr + DESC_SIZE * u64::from(index);
        let bad = |_| QueueError::RingOutsideMemory {
            ring: RingPart::Descriptors,
            addr,
            len: DESC_SIZE,
        };
        // Two 8-byte loads: the address, then length, flags and next.
        let buf = mem.read_u64(Gpa(addr + DESC_ADDR as u64)).map_err(bad)?;
        let rest = mem.read_u64(Gpa(addr + DESC_LEN as u64)).map_err(bad)?;
        let bits = |at: usize| rest >> ((at - DESC_LEN) * 8);
        Ok(Descriptor {
            addr: buf,
            len: bits(DESC_LEN) as u32,
            flags: bits(DESC_FLAGS) as u16,
            next: bits(DESC_NEXT) as u16,
        })
    }

    /// Descriptor `head` if it is a whole chain by itself (no `NEXT`, not
    /// indirect), checked as [`DescTable::walk`] checks every descriptor;
    /// `None` if it starts a longer chain or is indirect (the walk handles
    /// and names those).
    pub(super) fn single<M: GuestRam>(
        &self,
        mem: &mut M,
        head: u16,
    ) -> Result<Option<Descriptor>, QueueError> {
        if head >= self.size {
            return Err(QueueError::DescriptorIndexOutOfRange {
                index: head,
                size: self.size,
            });
        }
        let d = self.read(mem, head)?;
        if d.has_next() || d.is_indirect() {
            return Ok(None);
        }
        if d.len > self.max_bytes {
            return Err(QueueError::ChainTooLarge {
                limit: self.max_bytes,
            });
        }
        check_buffer(mem, &d)?;
        Ok(Some(d))
    }

    /// Follows the chain from `head`, checking each step, into `chain` (whose
    /// contents are unspecified after an error).
    pub(super) fn walk<M: GuestRam>(
        &self,
        mem: &mut M,
        head: u16,
        chain: &mut Chain,
    ) -> Result<(), QueueError> {
        let size = self.size;
        let cap = self.max_len;
        // The common case first: a chain of one descriptor (what a net
        // driver posts per frame), checked exactly as the loop below would.
        if cap > 0
            && let Some(d) = self.single(mem, head)?
        {
            chain.set_single(head, d);
            return Ok(());
        }
        chain.restart(head);
        let mut total = 0u64;
        let mut index = head;
        loop {
            if index >= size {
                return Err(QueueError::DescriptorIndexOutOfRange { index, size });
            }
            if chain.indices[..chain.count].contains(&index) {
                return Err(QueueError::ChainLoop { index });
            }
            if chain.count == cap {
                return Err(QueueError::ChainTooLong { limit: cap as u16 });
            }
            let d = self.read(mem, index)?;
            if d.is_indirect() {
                return Err(QueueError::IndirectNotSupported { index });
            }
            total += u64::from(d.len);
            if total > u64::from(self.max_bytes) {
                return Err(QueueError::ChainTooLarge {
                    limit: self.max_bytes,
                });
            }
            check_buffer(mem, &d)?;
            let len = d.len;
            if d.is_writable() {
                chain.writable_len += len;
            } else {
                if chain.readable_count != chain.count {
                    return Err(QueueError::WritableBeforeReadable { index });
                }
                chain.readable_count += 1;
                chain.readable_len += len;
            }
            chain.descs[chain.count] = d;
            chain.indices[chain.count] = index;
            chain.count += 1;
            if !d.has_next() {
                return Ok(());
            }
            index = d.next;
        }
    }
}
