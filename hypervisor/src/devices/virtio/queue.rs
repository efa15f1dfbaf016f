//! A split virtqueue as the device sees it (virtio 1.2 §2.7): descriptor
//! chains popped from the available ring, used elements pushed to the used
//! ring, and notification suppression both ways (§2.7.7, §2.7.10,
//! `VIRTIO_F_EVENT_IDX`). The rings live in guest memory and are hostile
//! input: every index, address, length and chain is checked, a chain is
//! copied out of guest memory once (so the driver cannot change it under the
//! device), and each way a driver can break the rules has a named
//! [`QueueError`] the hypervisor stops that guest with.

use crate::mem::access::OutOfBounds;
use crate::mem::access::{Barrier, Gpa, GuestRam};
use chain::DescTable;
use core::fmt;

mod chain;
#[cfg(test)]
mod tests;

pub use chain::{Chain, Descriptor};

/// Largest queue size a split virtqueue may have (§2.7).
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// Size of one descriptor, `struct virtq_desc` (§2.7.5).
pub const DESC_SIZE: u64 = 16;

/// The buffer continues in the descriptor named by `next`.
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
/// The buffer is device-writable (otherwise device-readable).
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
/// The buffer is a table of indirect descriptors.
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;

/// In the available ring's `flags`: the driver does not want used-buffer
/// notifications (only without `VIRTIO_F_EVENT_IDX`, §2.7.7).
pub const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;
/// In the used ring's `flags`: the device does not want available-buffer
/// notifications (only without `VIRTIO_F_EVENT_IDX`, §2.7.10).
pub const VIRTQ_USED_F_NO_NOTIFY: u16 = 1;

/// Alignment of the descriptor table (§2.7).
pub const DESC_TABLE_ALIGN: u64 = 16;
/// Alignment of the available ring (§2.7).
pub const AVAIL_RING_ALIGN: u64 = 2;
/// Alignment of the used ring (§2.7).
pub const USED_RING_ALIGN: u64 = 4;

/// Both rings start with `le16 flags; le16 idx;` then their entries.
const RING_FLAGS: u64 = 0;
pub(crate) const RING_IDX: u64 = 2;
pub(crate) const RING_ENTRIES: u64 = 4;
/// Available ring entry: `le16` descriptor head.
pub(crate) const AVAIL_ENTRY_SIZE: u64 = 2;
/// Used ring entry: `struct virtq_used_elem { le32 id; le32 len; }`.
pub(crate) const USED_ELEM_SIZE: u64 = 8;
/// Offset of `len` in a used element (`id` comes first).
pub(crate) const USED_ELEM_LEN: usize = 4;
/// Ring flags, idx and event fields are `le16`.
const RING_FIELD_SIZE: u64 = 2;
/// Each ring ends with a `le16` event field (`used_event` in the available
/// ring, `avail_event` in the used ring); §2.7's size table counts it always.
const RING_EVENT_SIZE: u64 = RING_FIELD_SIZE;

/// Most descriptors one chain may have here, whatever the queue size: the
/// device "MAY have a reasonable limit of descriptors it will allow in a
/// chain" (§2.7.4.1). Popped chains are copied into a [`Chain`] of this
/// capacity.
pub const MAX_CHAIN_DESCRIPTORS: usize = 32;

/// Default cap on a chain's total length: a 64 KiB payload plus room for
/// device headers.
pub const DEFAULT_MAX_CHAIN_BYTES: u32 = 64 * 1024 + 256;

/// The `avail_event` the device writes when it wants no kicks: the driver
/// is asked to notify only when it publishes ring index 0xfffe, i.e. once
/// per 65536 buffers. Any fixed value is crossed once per wrap under the
/// spec's wrapping test (§2.7.10); this one also works with drivers that
/// compare `avail_idx >= avail_event + 1` without wrapping (virtio-drivers
/// 0.13), for which 0xffff would mean "always kick".
pub const AVAIL_EVENT_SUPPRESSED: u16 = 0xfffe;

/// One part of a split virtqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingPart {
    /// The descriptor table (Descriptor Area).
    Descriptors,
    /// The available ring (Driver Area).
    Avail,
    /// The used ring (Device Area).
    Used,
}

impl RingPart {
    /// The part's name in the spec.
    pub fn name(self) -> &'static str {
        match self {
            RingPart::Descriptors => "descriptor table",
            RingPart::Avail => "available ring",
            RingPart::Used => "used ring",
        }
    }
}

/// A way the driver broke the split-virtqueue rules (or set the queue up
/// wrongly). Each stops the guest with its [`Display`](fmt::Display) text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// Queue size zero, not a power of two, or above 32768.
    QueueSizeInvalid {
        /// The size the driver set.
        size: u32,
    },
    /// A ring part does not start at its required alignment.
    RingMisaligned {
        /// Which part.
        ring: RingPart,
        /// Its address.
        addr: u64,
    },
    /// A ring part (or an access to it) is outside guest memory, or the used
    /// ring is not writable by the hypervisor.
    RingOutsideMemory {
        /// Which part.
        ring: RingPart,
        /// Start of the range.
        addr: u64,
        /// Its length.
        len: u64,
    },
    /// A ring part the device must write (the used ring) lies in memory
    /// the guest may read but the hypervisor may not write for it (the
    /// image's shared read-only pages).
    RingNotWritable {
        /// Which part.
        ring: RingPart,
        /// Start of the range.
        addr: u64,
        /// Its length.
        len: u64,
    },
    /// The driver's avail idx moved more than the queue size past the
    /// device's position (buffers it cannot have).
    AvailIndexJump {
        /// The device's last seen avail idx.
        from: u16,
        /// The driver's avail idx.
        to: u16,
    },
    /// A head (from the available ring) or a `next` index is not below the
    /// queue size.
    DescriptorIndexOutOfRange {
        /// The index.
        index: u16,
        /// The queue size.
        size: u16,
    },
    /// A descriptor's buffer leaves guest memory (or wraps the address space).
    BufferOutsideMemory {
        /// Buffer address.
        addr: u64,
        /// Buffer length.
        len: u32,
    },
    /// A device-writable buffer is not memory the hypervisor may write
    /// (shared read-only pages, or spanning regions).
    BufferNotWritable {
        /// Buffer address.
        addr: u64,
        /// Buffer length.
        len: u32,
    },
    /// A chain visits a descriptor twice.
    ChainLoop {
        /// The descriptor reached a second time.
        index: u16,
    },
    /// A chain has more descriptors than the limit (the queue size, or the
    /// configured cap if lower).
    ChainTooLong {
        /// The limit.
        limit: u16,
    },
    /// A chain's buffers add up to more bytes than the limit.
    ChainTooLarge {
        /// The limit.
        limit: u32,
    },
    /// A device-readable descriptor follows a device-writable one (§2.7.4.2).
    WritableBeforeReadable {
        /// The readable descriptor that came too late.
        index: u16,
    },
    /// `VIRTQ_DESC_F_INDIRECT`: indirect descriptors are not supported
    /// (`VIRTIO_F_INDIRECT_DESC` is never offered, §2.7.5.3.1).
    IndirectNotSupported {
        /// The descriptor with the flag.
        index: u16,
    },
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            QueueError::QueueSizeInvalid { size } => {
                write!(f, "queue size {size} is not a power of two from 1 to 32768")
            }
            QueueError::RingMisaligned { ring, addr } => {
                write!(f, "{} at {addr:#x} is misaligned", ring.name())
            }
            QueueError::RingOutsideMemory { ring, addr, len } => write!(
                f,
                "{} access {addr:#x} len {len} is outside guest memory",
                ring.name()
            ),
            QueueError::RingNotWritable { ring, addr, len } => write!(
                f,
                "{} at {addr:#x} len {len} is in read-only memory (the device must write it)",
                ring.name()
            ),
            // Indices are free-running u16s: an idx less than half the
            // range behind the device's went backwards.
            QueueError::AvailIndexJump { from, to } if from.wrapping_sub(to) < HALF_INDEX_RANGE => {
                write!(
                    f,
                    "avail idx went backwards from {from} to {to} (it may only grow)"
                )
            }
            QueueError::AvailIndexJump { from, to } => write!(
                f,
                "avail idx jumped from {from} to {to}, more than the queue size"
            ),
            QueueError::DescriptorIndexOutOfRange { index, size } => {
                write!(f, "descriptor index {index} is not below queue size {size}")
            }
            QueueError::BufferOutsideMemory { addr, len } => {
                write!(f, "buffer {addr:#x} len {len} is outside guest memory")
            }
            QueueError::BufferNotWritable { addr, len } => {
                write!(
                    f,
                    "device-writable buffer {addr:#x} len {len} is not writable"
                )
            }
            QueueError::ChainLoop { index } => {
                write!(f, "descriptor chain loops back to descriptor {index}")
            }
            QueueError::ChainTooLong { limit } => {
                write!(f, "descriptor chain is longer than {limit} descriptors")
            }
            QueueError::ChainTooLarge { limit } => {
                write!(f, "descriptor chain is longer than {limit} bytes")
            }
            QueueError::WritableBeforeReadable { index } => write!(
                f,
                "device-readable descriptor {index} follows a device-writable one"
            ),
            QueueError::IndirectNotSupported { index } => write!(
                f,
                "descriptor {index} is indirect, which was not negotiated"
            ),
        }
    }
}

/// Where the driver put the queue (§4.2.2: QueueNum and the Desc, Driver and
/// Device addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLayout {
    /// Number of descriptors and ring entries.
    pub size: u16,
    /// Guest-physical address of the descriptor table.
    pub desc_table: u64,
    /// Guest-physical address of the available ring.
    pub avail_ring: u64,
    /// Guest-physical address of the used ring.
    pub used_ring: u64,
}

impl QueueLayout {
    /// The three parts with their address, length and alignment (§2.7).
    fn parts(&self) -> [(RingPart, u64, u64, u64); 3] {
        let n = u64::from(self.size);
        [
            (
                RingPart::Descriptors,
                self.desc_table,
                DESC_SIZE * n,
                DESC_TABLE_ALIGN,
            ),
            (
                RingPart::Avail,
                self.avail_ring,
                RING_ENTRIES + AVAIL_ENTRY_SIZE * n + RING_EVENT_SIZE,
                AVAIL_RING_ALIGN,
            ),
            (
                RingPart::Used,
                self.used_ring,
                RING_ENTRIES + USED_ELEM_SIZE * n + RING_EVENT_SIZE,
                USED_RING_ALIGN,
            ),
        ]
    }

    /// Checks the size (a power of two up to 32768), each part's alignment,
    /// and that no part wraps the address space.
    pub fn validate(&self) -> Result<(), QueueError> {
        if !self.size.is_power_of_two() || self.size > MAX_QUEUE_SIZE {
            return Err(QueueError::QueueSizeInvalid {
                size: self.size.into(),
            });
        }
        for (ring, addr, len, align) in self.parts() {
            if !addr.is_multiple_of(align) {
                return Err(QueueError::RingMisaligned { ring, addr });
            }
            if addr.checked_add(len).is_none() {
                return Err(QueueError::RingOutsideMemory { ring, addr, len });
            }
        }
        Ok(())
    }

    /// Checks that every part ends at or below `memory_size` (the guest's
    /// physical address space). Holes and read-only regions are found on
    /// access, or up front by [`SplitQueue::check_rings`].
    pub fn check_within(&self, memory_size: u64) -> Result<(), QueueError> {
        for (ring, addr, len, _) in self.parts() {
            if addr.checked_add(len).is_none_or(|end| end > memory_size) {
                return Err(QueueError::RingOutsideMemory { ring, addr, len });
            }
        }
        Ok(())
    }
}

/// Caps the device puts on chains, below what the spec allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most descriptors in one chain (at most [`MAX_CHAIN_DESCRIPTORS`]; the
    /// queue size caps it further).
    pub max_chain_len: u16,
    /// Most bytes one chain's buffers may add up to.
    pub max_chain_bytes: u32,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            max_chain_len: MAX_CHAIN_DESCRIPTORS as u16,
            max_chain_bytes: DEFAULT_MAX_CHAIN_BYTES,
        }
    }
}

/// What [`SplitQueue::pop_single`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Popped {
    /// Nothing new is available.
    Empty,
    /// A chain of one descriptor, checked and popped.
    Single {
        /// Its index (the used element's id).
        head: u16,
        /// The descriptor.
        desc: Descriptor,
    },
    /// A longer or indirect chain, not popped.
    Chain,
}

/// One split virtqueue, from the device side.
#[derive(Clone, Debug)]
pub struct SplitQueue {
    pub(crate) layout: QueueLayout,
    pub(crate) event_idx: bool,
    pub(crate) limits: QueueLimits,
    /// Next available-ring entry the device will read.
    pub(crate) last_avail_idx: u16,
    /// The driver's avail idx when last read (checked against the jump
    /// rule); re-read only once the device has caught up with it.
    pub(crate) avail_idx_seen: u16,
    /// Next used-ring entry the device will write.
    pub(crate) used_idx: u16,
    /// Used idx last written to the ring.
    pub(crate) published_used: u16,
    /// Used idx when the device last decided whether to interrupt.
    signalled_used: u16,
    pub(crate) no_notify: bool,
    /// The three areas as one span, when they lie close together: worked
    /// out once, for the fast paths' one lookup per batch.
    pub(crate) span: Option<RingSpan>,
}

/// A queue's three areas inside one span of guest memory: the span's
/// start and length, and each area's (offset in the span, length).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingSpan {
    /// Guest-physical start of the span.
    pub lo: u64,
    /// Its length in bytes.
    pub len: u64,
    /// The descriptor table, the available ring, the used ring.
    pub areas: [(u64, u64); 3],
}

/// Bytes of a ring's idx or event field.
const RING_FIELD: u64 = 2;
/// Largest span of a queue's three areas worked out as one.
const MAX_SPAN: u64 = 64 * 1024;

impl QueueLayout {
    /// Where each area is and how long it is: the descriptor table, the
    /// available ring (with `used_event`), the used ring (with
    /// `avail_event`).
    pub fn areas(&self) -> [(u64, u64); 3] {
        let n = u64::from(self.size);
        [
            (self.desc_table, DESC_SIZE * n),
            (
                self.avail_ring,
                RING_ENTRIES + AVAIL_ENTRY_SIZE * n + RING_FIELD,
            ),
            (
                self.used_ring,
                RING_ENTRIES + USED_ELEM_SIZE * n + RING_FIELD,
            ),
        ]
    }

    /// The three areas as one span, if it is at most 64 KiB long (a
    /// driver allocates them together).
    pub fn span(&self) -> Option<RingSpan> {
        let areas = self.areas();
        let lo = areas.iter().map(|a| a.0).min()?;
        let hi = areas
            .iter()
            .map(|&(a, len)| a.checked_add(len))
            .try_fold(lo, |hi, end| end.map(|e| hi.max(e)))?;
        (hi - lo <= MAX_SPAN).then(|| RingSpan {
            lo,
            len: hi - lo,
            areas: areas.map(|(a, len)| (a - lo, len)),
        })
    }
}

/// Half the range of a ring index: how far behind counts as backwards.
const HALF_INDEX_RANGE: u16 = 0x8000;

fn ring_err(ring: RingPart, addr: u64, len: u64) -> impl FnOnce(OutOfBounds) -> QueueError {
    move |_| QueueError::RingOutsideMemory { ring, addr, len }
}

impl SplitQueue {
    /// A queue the driver has just made ready, with both indices at 0.
    /// `event_idx` says whether `VIRTIO_F_EVENT_IDX` was negotiated.
    pub fn new(
        layout: QueueLayout,
        event_idx: bool,
        limits: QueueLimits,
    ) -> Result<Self, QueueError> {
        layout.validate()?;
        Ok(SplitQueue {
            layout,
            event_idx,
            limits,
            last_avail_idx: 0,
            avail_idx_seen: 0,
            used_idx: 0,
            published_used: 0,
            signalled_used: 0,
            no_notify: false,
            span: layout.span(),
        })
    }

    /// Where the rings are.
    pub fn layout(&self) -> &QueueLayout {
        &self.layout
    }

    /// Number of descriptors.
    pub fn size(&self) -> u16 {
        self.layout.size
    }

    /// Whether `VIRTIO_F_EVENT_IDX` is in use.
    pub fn event_idx(&self) -> bool {
        self.event_idx
    }

    /// The next available-ring index the device will read.
    pub fn last_avail_idx(&self) -> u16 {
        self.last_avail_idx
    }

    /// The next used-ring index the device will write.
    pub fn used_idx(&self) -> u16 {
        self.used_idx
    }

    /// Checks that all three parts are in guest memory and the used ring is
    /// writable, so a bad layout is reported before the first buffer.
    pub fn check_rings<M: GuestRam>(&self, mem: &mut M) -> Result<(), QueueError> {
        for (ring, addr, len, _) in self.layout.parts() {
            let ok = if ring == RingPart::Used {
                mem.check_writable(Gpa(addr), len)
            } else {
                mem.check_readable(Gpa(addr), len)
            };
            if ok.is_err() {
                // Readable but not writable: read-only memory, not a hole.
                if ring == RingPart::Used && mem.check_readable(Gpa(addr), len).is_ok() {
                    return Err(QueueError::RingNotWritable { ring, addr, len });
                }
                return Err(QueueError::RingOutsideMemory { ring, addr, len });
            }
        }
        Ok(())
    }

    fn slot(&self, idx: u16) -> u64 {
        u64::from(idx & (self.layout.size - 1))
    }

    fn read_ring_u16<M: GuestRam>(
        &self,
        mem: &M,
        ring: RingPart,
        addr: u64,
    ) -> Result<u16, QueueError> {
        mem.read_u16(Gpa(addr))
            .map_err(ring_err(ring, addr, RING_FIELD_SIZE))
    }

    fn write_ring_u16<M: GuestRam>(
        &self,
        mem: &mut M,
        addr: u64,
        value: u16,
    ) -> Result<(), QueueError> {
        mem.write_u16(Gpa(addr), value)
            .map_err(ring_err(RingPart::Used, addr, RING_FIELD_SIZE))
    }

    /// Address of `used_event`, after the available ring's entries.
    fn used_event_addr(&self) -> u64 {
        self.layout.avail_ring + RING_ENTRIES + AVAIL_ENTRY_SIZE * u64::from(self.layout.size)
    }

    /// Address of `avail_event`, after the used ring's elements.
    fn avail_event_addr(&self) -> u64 {
        self.layout.used_ring + RING_ENTRIES + USED_ELEM_SIZE * u64::from(self.layout.size)
    }

    /// Reads the driver's avail idx and checks it moved at most a queue's
    /// worth past the device.
    fn read_avail_idx<M: GuestRam>(&self, mem: &M) -> Result<u16, QueueError> {
        let idx = self.read_ring_u16(mem, RingPart::Avail, self.layout.avail_ring + RING_IDX)?;
        if idx.wrapping_sub(self.last_avail_idx) > self.layout.size {
            return Err(QueueError::AvailIndexJump {
                from: self.last_avail_idx,
                to: idx,
            });
        }
        Ok(idx)
    }

    /// How many chains the driver has made available that the device has
    /// not popped yet.
    pub fn avail_pending<M: GuestRam>(&self, mem: &M) -> Result<u16, QueueError> {
        // Chains seen at the last read of the idx and not popped yet need no
        // new read.
        if self.avail_idx_seen != self.last_avail_idx {
            return Ok(self.avail_idx_seen.wrapping_sub(self.last_avail_idx));
        }
        Ok(self.read_avail_idx(mem)?.wrapping_sub(self.last_avail_idx))
    }

    /// The next available chain, validated and copied, or `None` if the
    /// driver has made nothing new available. On an error the queue does not
    /// advance (the guest is to be stopped).
    pub fn pop_avail<M: GuestRam>(&mut self, mem: &mut M) -> Result<Option<Chain>, QueueError> {
        let mut chain = Chain::default();
        Ok(self.pop_avail_into(mem, &mut chain)?.then_some(chain))
    }

    /// The data path's pop: the next available chain if it is one direct
    /// descriptor (what a net driver posts per frame), checked as
    /// [`SplitQueue::pop_avail_into`] would check it, without building a
    /// [`Chain`]. A longer or indirect chain is left in place
    /// ([`Popped::Chain`]) for `pop_avail_into`.
    pub fn pop_single<M: GuestRam>(&mut self, mem: &mut M) -> Result<Popped, QueueError> {
        let Some(head) = self.next_head(mem)? else {
            return Ok(Popped::Empty);
        };
        let Some(desc) = self.desc_table().single(mem, head)? else {
            return Ok(Popped::Chain);
        };
        self.advance(mem)?;
        Ok(Popped::Single { head, desc })
    }

    /// The head index in the next available-ring entry, reading the avail
    /// idx again once the device has caught up with it; `None` if the driver
    /// has published nothing new.
    fn next_head<M: GuestRam>(&mut self, mem: &M) -> Result<Option<u16>, QueueError> {
        if self.last_avail_idx == self.avail_idx_seen {
            self.avail_idx_seen = self.read_avail_idx(mem)?;
            if self.last_avail_idx == self.avail_idx_seen {
                return Ok(None);
            }
            // The ring entries and the descriptors they name must be read
            // after the idx that published them (the driver wrote them
            // first, §2.7.13).
            mem.fence(Barrier::Acquire);
        }
        let entry = self.layout.avail_ring
            + RING_ENTRIES
            + AVAIL_ENTRY_SIZE * self.slot(self.last_avail_idx);
        self.read_ring_u16(mem, RingPart::Avail, entry).map(Some)
    }

    /// Puts chain `head` back at the front of the available entries, as if
    /// it had never been taken (a link unmade while it held that receive
    /// buffer for its next frame), if it is the chain popped last (the
    /// caller makes sure it was popped and not yet used); `false`, and
    /// nothing changed, if another was popped since (it cannot go back
    /// then without handing that one out twice).
    pub fn unpop<M: GuestRam>(&mut self, mem: &M, head: u16) -> bool {
        let before = self.last_avail_idx.wrapping_sub(1);
        let entry = self.layout.avail_ring + RING_ENTRIES + AVAIL_ENTRY_SIZE * self.slot(before);
        match self.read_ring_u16(mem, RingPart::Avail, entry) {
            Ok(h) if h == head => {
                self.last_avail_idx = before;
                true
            }
            _ => false,
        }
    }

    /// Consumes the available-ring entry `next_head` read.
    fn advance<M: GuestRam>(&mut self, mem: &mut M) -> Result<(), QueueError> {
        self.last_avail_idx = self.last_avail_idx.wrapping_add(1);
        if self.event_idx && !self.no_notify {
            // Keep asking for a kick at the next new entry (§2.7.10).
            self.write_ring_u16(mem, self.avail_event_addr(), self.last_avail_idx)?;
        }
        Ok(())
    }

    /// [`SplitQueue::pop_avail`] into a chain the caller keeps, so a data
    /// path does not build and move a [`Chain`] per buffer. Returns whether
    /// a chain was popped; when not, or on an error, `chain` holds nothing
    /// of use.
    pub fn pop_avail_into<M: GuestRam>(
        &mut self,
        mem: &mut M,
        chain: &mut Chain,
    ) -> Result<bool, QueueError> {
        let Some(head) = self.next_head(mem)? else {
            return Ok(false);
        };
        self.desc_table().walk(mem, head, chain)?;
        self.advance(mem)?;
        Ok(true)
    }

    /// The descriptor table with the chain caps: the configured limits, the
    /// copy's capacity and the queue size, whichever is lowest.
    fn desc_table(&self) -> DescTable {
        DescTable {
            addr: self.layout.desc_table,
            size: self.layout.size,
            max_len: usize::from(self.limits.max_chain_len)
                .min(MAX_CHAIN_DESCRIPTORS)
                .min(self.layout.size.into()),
            max_bytes: self.limits.max_chain_bytes,
        }
    }

    /// Writes a used element (`head` of a popped chain, `len` bytes written
    /// into it) without publishing it; [`SplitQueue::publish_used`] makes a
    /// batch visible with one idx store.
    pub fn add_used<M: GuestRam>(
        &mut self,
        mem: &mut M,
        head: u16,
        len: u32,
    ) -> Result<(), QueueError> {
        let size = self.layout.size;
        if head >= size {
            return Err(QueueError::DescriptorIndexOutOfRange { index: head, size });
        }
        let addr = self.layout.used_ring + RING_ENTRIES + USED_ELEM_SIZE * self.slot(self.used_idx);
        // One 8-byte store: `id` (u32) in the low half, `len` in the high.
        let elem = u64::from(head) | (u64::from(len) << (USED_ELEM_LEN * 8));
        mem.write_u64(Gpa(addr), elem)
            .map_err(ring_err(RingPart::Used, addr, USED_ELEM_SIZE))?;
        self.used_idx = self.used_idx.wrapping_add(1);
        Ok(())
    }

    /// Publishes the used elements added so far by storing the used idx.
    pub fn publish_used<M: GuestRam>(&mut self, mem: &mut M) -> Result<(), QueueError> {
        if self.published_used == self.used_idx {
            return Ok(());
        }
        // Memory order (§2.7.8): the elements, and the data written into the
        // buffers, must be visible to the driver before the idx that
        // publishes them. The barrier is the memory implementation's.
        mem.fence(Barrier::Release);
        self.write_ring_u16(mem, self.layout.used_ring + RING_IDX, self.used_idx)?;
        self.published_used = self.used_idx;
        Ok(())
    }

    /// Adds one used element and publishes it.
    pub fn push_used<M: GuestRam>(
        &mut self,
        mem: &mut M,
        head: u16,
        len: u32,
    ) -> Result<(), QueueError> {
        self.add_used(mem, head, len)?;
        self.publish_used(mem)
    }

    /// Asks the driver not to kick the device (`true`) or to kick it for
    /// every new buffer (`false`). Without `VIRTIO_F_EVENT_IDX` this sets
    /// `VIRTQ_USED_F_NO_NOTIFY`; with it, `avail_event` is set to
    /// [`AVAIL_EVENT_SUPPRESSED`] or to the next entry (§2.7.10). After
    /// enabling, pop again before going idle: the driver may have published
    /// just before it saw the change.
    pub fn set_no_notify<M: GuestRam>(
        &mut self,
        mem: &mut M,
        no_notify: bool,
    ) -> Result<(), QueueError> {
        self.no_notify = no_notify;
        if self.event_idx {
            let event = if no_notify {
                AVAIL_EVENT_SUPPRESSED
            } else {
                self.last_avail_idx
            };
            self.write_ring_u16(mem, self.avail_event_addr(), event)?;
        } else {
            let flags = if no_notify { VIRTQ_USED_F_NO_NOTIFY } else { 0 };
            self.write_ring_u16(mem, self.layout.used_ring + RING_FLAGS, flags)?;
        }
        if !no_notify {
            // The new setting must be visible before the avail idx is read
            // again, or a kick can be lost.
            mem.fence(Barrier::Full);
        }
        Ok(())
    }

    /// Whether the driver wants a used-buffer notification for what was
    /// published since the last call (§2.7.7): `used_event` crossed with
    /// `VIRTIO_F_EVENT_IDX`, else `VIRTQ_AVAIL_F_NO_INTERRUPT` clear.
    pub fn needs_interrupt<M: GuestRam>(&mut self, mem: &M) -> Result<bool, QueueError> {
        let new = self.published_used;
        let old = core::mem::replace(&mut self.signalled_used, new);
        if new == old {
            return Ok(false);
        }
        // The used idx store must be visible before the driver's suppression
        // field is read, or a needed notification can be lost.
        mem.fence(Barrier::Full);
        if self.event_idx {
            let event = self.read_ring_u16(mem, RingPart::Avail, self.used_event_addr())?;
            // Notify if `event` lies in [old, new) (vring_need_event, §2.7.7).
            Ok(new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old))
        } else {
            let flags =
                self.read_ring_u16(mem, RingPart::Avail, self.layout.avail_ring + RING_FLAGS)?;
            Ok(flags & VIRTQ_AVAIL_F_NO_INTERRUPT == 0)
        }
    }
}
