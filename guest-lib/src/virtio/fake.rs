//! A fake virtio device for host tests of the drivers: a `virtio-drivers`
//! transport that records where the driver put its rings, and a device side
//! that reads and writes those rings in this process's memory (a host
//! test's "guest-physical" addresses are its pointers, as `CorralHal` maps
//! them).
// Some helpers serve only the net tests.
#![cfg_attr(not(feature = "net"), allow(dead_code))]

use std::cell::RefCell;
use std::rc::Rc;
use std::vec::Vec;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error, PhysAddr};
use vmm_abi::corral::devices::{NET_HEADER_BYTES, RX_BUFFER_BYTES};
use zerocopy::{FromBytes, Immutable, IntoBytes};

pub(crate) const VERSION_1: u64 = 1 << 32;
const EVENT_IDX: u64 = 1 << 29;
const NET_F_MAC: u64 = 1 << 5;
const NET_F_STATUS: u64 = 1 << 16;
/// What the Corral net device offers.
pub(crate) const OFFERED: u64 = VERSION_1 | EVENT_IDX | NET_F_MAC | NET_F_STATUS;
/// The fake net device's MAC address.
pub(crate) const MAC: [u8; 6] = [2, 0x43, 0, 0, 7, 1];
const DESC_F_NEXT: u16 = 1;
pub(crate) const DESC_F_WRITE: u16 = 2;
/// The `avail_event` the Corral device writes to suppress kicks.
const AVAIL_EVENT_SUPPRESSED: u16 = 0xfffe;
/// Offset of `num_buffers` in the virtio-net header.
const HDR_NUM_BUFFERS: usize = 10;
/// The receive and transmit queues of both device kinds (§5.1.2, §5.3.2).
pub(crate) const RECEIVE_QUEUE: u16 = 0;
pub(crate) const TRANSMIT_QUEUE: u16 = 1;
/// Longest chain the fake follows.
const MAX_CHAIN: usize = 256;

/// The device's view of one queue: where the rings are and how far it got.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct QueueState {
    pub(crate) size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    pub(crate) ready: bool,
    last_avail: u16,
    used_idx: u16,
}

/// The fake device's registers and bookkeeping.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) features: u64,
    pub(crate) queue_max: u32,
    pub(crate) device_type: DeviceType,
    pub(crate) legacy: bool,
    /// Whether writing `FEATURES_OK` sticks.
    pub(crate) accept_features: bool,
    pub(crate) status: DeviceStatus,
    pub(crate) driver_features: u64,
    pub(crate) queues: [QueueState; 2],
    pub(crate) notifies: usize,
    /// Whether a notification of the transmit queue drains it at once (as
    /// the Corral console does) into `drained`.
    pub(crate) drain_on_notify: bool,
    pub(crate) drained: Vec<Vec<u8>>,
}

impl Default for State {
    fn default() -> Self {
        State {
            features: OFFERED,
            queue_max: 256,
            device_type: DeviceType::Network,
            legacy: false,
            accept_features: true,
            status: DeviceStatus::empty(),
            driver_features: 0,
            queues: [QueueState::default(); 2],
            notifies: 0,
            drain_on_notify: false,
            drained: Vec::new(),
        }
    }
}

/// The state both halves of the fake share.
pub(crate) type Shared = Rc<RefCell<State>>;

// Raw ring access of the fake device. Every address comes from `queue_set`
// (rings the driver allocated and keeps alive while its queues are set) or
// from a descriptor the driver wrote (a buffer of its pools), plus offsets
// inside those structures; the "device" runs between driver calls, so
// nothing else accesses the memory meanwhile.

fn read16(addr: u64) -> u16 {
    // SAFETY: see above; ring fields are naturally aligned.
    unsafe { (addr as *const u16).read_volatile() }
}

fn write16(addr: u64, value: u16) {
    // SAFETY: see above.
    unsafe { (addr as *mut u16).write_volatile(value) }
}

fn read32(addr: u64) -> u32 {
    // SAFETY: see above.
    unsafe { (addr as *const u32).read_volatile() }
}

fn write32(addr: u64, value: u32) {
    // SAFETY: see above.
    unsafe { (addr as *mut u32).write_volatile(value) }
}

fn read64(addr: u64) -> u64 {
    // SAFETY: see above.
    unsafe { (addr as *const u64).read_volatile() }
}

fn read_bytes(addr: u64, len: usize) -> Vec<u8> {
    // SAFETY: see above; `addr..addr + len` is a buffer a descriptor names.
    unsafe { core::slice::from_raw_parts(addr as *const u8, len) }.to_vec()
}

fn write_bytes(addr: u64, bytes: &[u8]) {
    // SAFETY: see above; the caller checked the descriptor's length.
    unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, bytes.len()) }.copy_from_slice(bytes);
}

/// Ring layout (virtio 1.2 §2.7): descriptor 16 bytes; avail flags, idx,
/// ring of u16, used_event; used flags, idx, ring of (u32 id, u32 len),
/// avail_event.
const DESC_BYTES: u64 = 16;
const RING_HEADER: u64 = 4;
const USED_ELEM: u64 = 8;

/// The driver's half: a `virtio-drivers` transport.
pub(crate) struct FakeTransport(pub(crate) Shared);

impl Transport for FakeTransport {
    fn device_type(&self) -> DeviceType {
        self.0.borrow().device_type
    }
    fn read_device_features(&mut self) -> u64 {
        self.0.borrow().features
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        self.0.borrow_mut().driver_features = driver_features;
    }
    fn max_queue_size(&mut self, _queue: u16) -> u32 {
        self.0.borrow().queue_max
    }
    fn notify(&mut self, queue: u16) {
        let drain = {
            let mut state = self.0.borrow_mut();
            state.notifies += 1;
            state.drain_on_notify && queue == TRANSMIT_QUEUE
        };
        if drain {
            let device = Device(self.0.clone());
            while let Some(bytes) = device.take(TRANSMIT_QUEUE) {
                self.0.borrow_mut().drained.push(bytes);
            }
        }
    }
    fn get_status(&self) -> DeviceStatus {
        self.0.borrow().status
    }
    fn set_status(&mut self, mut status: DeviceStatus) {
        let mut state = self.0.borrow_mut();
        if !state.accept_features {
            status.remove(DeviceStatus::FEATURES_OK);
        }
        state.status = status;
    }
    fn set_guest_page_size(&mut self, _guest_page_size: u32) {}
    fn requires_legacy_layout(&self) -> bool {
        self.0.borrow().legacy
    }
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        let size = size as u16;
        let mut state = self.0.borrow_mut();
        // Like the Corral device: no kicks wanted, from the start.
        if state.driver_features & EVENT_IDX != 0 {
            write16(
                device_area + RING_HEADER + USED_ELEM * u64::from(size),
                AVAIL_EVENT_SUPPRESSED,
            );
        }
        state.queues[usize::from(queue)] = QueueState {
            size,
            desc: descriptors,
            avail: driver_area,
            used: device_area,
            ready: true,
            ..QueueState::default()
        };
    }
    fn queue_unset(&mut self, queue: u16) {
        self.0.borrow_mut().queues[usize::from(queue)] = QueueState::default();
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.0.borrow().queues[usize::from(queue)].ready
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        InterruptStatus::empty()
    }
    fn read_config_generation(&self) -> u32 {
        0
    }
    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, Error> {
        let mut config = [0u8; 8];
        config[..6].copy_from_slice(&MAC);
        config[6..8].copy_from_slice(&1u16.to_le_bytes());
        let bytes = config
            .get(offset..offset + size_of::<T>())
            .ok_or(Error::ConfigSpaceTooSmall)?;
        T::read_from_bytes(bytes).map_err(|_| Error::ConfigSpaceTooSmall)
    }
    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        _offset: usize,
        _value: T,
    ) -> Result<(), Error> {
        Err(Error::Unsupported)
    }
}

impl Drop for FakeTransport {
    fn drop(&mut self) {
        // Like `MmioTransport`: dropping the transport resets the device.
        self.0.borrow_mut().status = DeviceStatus::empty();
    }
}

/// The device's half.
pub(crate) struct Device(pub(crate) Shared);

/// One descriptor as the driver wrote it.
#[derive(Debug)]
pub(crate) struct Desc {
    pub(crate) addr: u64,
    pub(crate) len: u32,
    pub(crate) flags: u16,
    pub(crate) next: u16,
}

impl Device {
    pub(crate) fn queue(&self, q: u16) -> QueueState {
        self.0.borrow().queues[usize::from(q)]
    }

    pub(crate) fn desc(&self, q: u16, index: u16) -> Desc {
        let qs = self.queue(q);
        assert!(index < qs.size, "driver named descriptor {index}");
        let at = qs.desc + DESC_BYTES * u64::from(index);
        Desc {
            addr: read64(at),
            len: read32(at + 8),
            flags: read16(at + 12),
            next: read16(at + 14),
        }
    }

    /// Entries the driver has made available and the device not yet taken.
    pub(crate) fn avail_pending(&self, q: u16) -> u16 {
        let qs = self.queue(q);
        read16(qs.avail + 2).wrapping_sub(qs.last_avail)
    }

    pub(crate) fn pop_avail(&self, q: u16) -> Option<u16> {
        let qs = self.queue(q);
        if read16(qs.avail + 2) == qs.last_avail {
            return None;
        }
        let slot = u64::from(qs.last_avail % qs.size);
        let head = read16(qs.avail + RING_HEADER + 2 * slot);
        self.0.borrow_mut().queues[usize::from(q)].last_avail = qs.last_avail.wrapping_add(1);
        Some(head)
    }

    /// Puts a used element, as a device may, whatever it says.
    pub(crate) fn push_used(&self, q: u16, id: u32, len: u32) {
        let qs = self.queue(q);
        let at = qs.used + RING_HEADER + USED_ELEM * u64::from(qs.used_idx % qs.size);
        write32(at, id);
        write32(at + 4, len);
        let idx = qs.used_idx.wrapping_add(1);
        write16(qs.used + 2, idx);
        self.0.borrow_mut().queues[usize::from(q)].used_idx = idx;
    }

    /// Delivers `frame` into the next receive buffer; `false` if none.
    pub(crate) fn deliver(&self, frame: &[u8]) -> bool {
        let Some(head) = self.pop_avail(RECEIVE_QUEUE) else {
            return false;
        };
        let d = self.desc(RECEIVE_QUEUE, head);
        assert_eq!(d.flags, DESC_F_WRITE, "one device-writable buffer");
        assert_eq!(d.len as usize, RX_BUFFER_BYTES);
        let mut bytes = std::vec![0u8; NET_HEADER_BYTES];
        bytes[HDR_NUM_BUFFERS] = 1;
        bytes.extend_from_slice(frame);
        assert!(bytes.len() <= d.len as usize);
        write_bytes(d.addr, &bytes);
        self.push_used(RECEIVE_QUEUE, head.into(), bytes.len() as u32);
        true
    }

    /// Takes the next transmitted chain (header included) and completes it.
    pub(crate) fn transmit(&self) -> Option<Vec<u8>> {
        self.take(TRANSMIT_QUEUE)
    }

    /// Takes the next chain of queue `q`, reads its (driver-written)
    /// bytes and completes it.
    pub(crate) fn take(&self, q: u16) -> Option<Vec<u8>> {
        let head = self.pop_avail(q)?;
        let mut bytes = Vec::new();
        let mut index = head;
        for _ in 0..MAX_CHAIN {
            let d = self.desc(q, index);
            assert_eq!(d.flags & DESC_F_WRITE, 0, "transmit buffers are read-only");
            bytes.extend(read_bytes(d.addr, d.len as usize));
            if d.flags & DESC_F_NEXT == 0 {
                break;
            }
            index = d.next;
        }
        self.push_used(q, head.into(), 0);
        Some(bytes)
    }
}
