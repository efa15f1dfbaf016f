//! Fake guests and a fake wire for the data path's tests: memory reached only through a raw view (as the polling core reaches it), a driver that posts frames and buffers on its two rings, and the register writes that bring a port up.

use super::port::{PortEvent, PortInner};
use crate::devices::virtio::features::VIRTIO_F_VERSION_1;
use crate::devices::virtio::mmio::{WriteEffect, offset};
use crate::devices::virtio::net::{NET_HDR_LEN, RECEIVE_QUEUE, TRANSMIT_QUEUE, receive_header};
use crate::devices::virtio::queue::{DESC_SIZE, QueueLayout, VIRTQ_DESC_F_WRITE};
use crate::devices::virtio::testing::{DriverQueue, MEM_SIZE, MmioDriver};
use crate::mem::access::{Gpa, GuestRam, GuestRead};
use crate::mem::raw::RawRam;
use crate::mem::raw::testing::{over_vec, over_vec_at};
use std::collections::VecDeque;

/// Entries of each fake ring.
pub const QSIZE: u16 = 128;
/// The transmit ring (the receive ring follows a page later).
const TX_RING: u64 = 0x1000;
const RX_RING: u64 = 0x2000;
/// Transmit buffers, one slot per descriptor.
const TX_BUFS: u64 = 0x4000;
/// Receive buffers, one slot per descriptor.
const RX_BUFS: u64 = 0xc000;
/// Bytes of a buffer slot.
pub const SLOT: u32 = 0x100;

/// `len` bytes tagged with `tag`.
pub fn frame(len: usize, tag: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_add(tag)).collect()
}

/// One guest's side of a port: its memory and its driver's two rings.
pub struct Guest {
    /// Owns the memory the view reaches; never touched otherwise.
    _mem: Vec<u8>,
    /// The only way to its memory, for the guest and the port alike.
    pub ram: RawRam,
    tx: QueueLayout,
    rx: QueueLayout,
    tx_avail: u16,
    rx_avail: u16,
    /// Frames read from the receive ring so far.
    got: Vec<Vec<u8>>,
}

impl Default for Guest {
    fn default() -> Self {
        Guest::new()
    }
}

impl Guest {
    /// A guest with zeroed memory and rings not set up yet.
    pub fn new() -> Self {
        let mut mem = vec![0u8; MEM_SIZE];
        let ram = over_vec(&mut mem);
        Guest {
            _mem: mem,
            ram,
            tx: DriverQueue::new(QSIZE, TX_RING).layout(),
            rx: DriverQueue::new(QSIZE, RX_RING).layout(),
            tx_avail: 0,
            rx_avail: 0,
            got: Vec::new(),
        }
    }

    fn set_desc(&mut self, ring: QueueLayout, index: u16, addr: u64, len: u32, flags: u16) {
        let at = ring.desc_table + DESC_SIZE * u64::from(index);
        self.ram.write_u64(Gpa(at), addr).unwrap();
        self.ram.write_u32(Gpa(at + 8), len).unwrap();
        self.ram.write_u16(Gpa(at + 12), flags).unwrap();
        self.ram.write_u16(Gpa(at + 14), 0).unwrap();
    }

    fn publish(&mut self, ring: QueueLayout, avail: u16, head: u16) {
        let slot = u64::from(avail % ring.size);
        self.ram
            .write_u16(Gpa(ring.avail_ring + 4 + 2 * slot), head)
            .unwrap();
        self.ram
            .write_u16(Gpa(ring.avail_ring + 2), avail.wrapping_add(1))
            .unwrap();
    }

    /// Queues `data` behind a zeroed header in one descriptor.
    pub fn send(&mut self, data: &[u8]) {
        let d = self.tx_avail % QSIZE;
        let addr = TX_BUFS + u64::from(d) * u64::from(SLOT);
        self.ram
            .write(Gpa(addr), &[0; NET_HDR_LEN as usize])
            .unwrap();
        self.ram
            .write(Gpa(addr + u64::from(NET_HDR_LEN)), data)
            .unwrap();
        self.set_desc(self.tx, d, addr, NET_HDR_LEN + data.len() as u32, 0);
        self.publish(self.tx, self.tx_avail, d);
        self.tx_avail = self.tx_avail.wrapping_add(1);
    }

    /// Queues one descriptor of `len` bytes at `addr` (anything, good or
    /// bad) with `flags`.
    pub fn send_raw(&mut self, addr: u64, len: u32, flags: u16) {
        let d = self.tx_avail % QSIZE;
        self.set_desc(self.tx, d, addr, len, flags);
        self.publish(self.tx, self.tx_avail, d);
        self.tx_avail = self.tx_avail.wrapping_add(1);
    }

    /// Posts a receive buffer of `len` bytes (at most [`SLOT`]).
    pub fn post(&mut self, len: u32) {
        self.post_flags(len, VIRTQ_DESC_F_WRITE);
    }

    /// Posts a receive buffer with `flags` (a readable one breaks the
    /// rules).
    pub fn post_flags(&mut self, len: u32, flags: u16) {
        let d = self.rx_avail % QSIZE;
        let addr = RX_BUFS + u64::from(d) * u64::from(SLOT);
        self.set_desc(self.rx, d, addr, len, flags);
        self.publish(self.rx, self.rx_avail, d);
        self.rx_avail = self.rx_avail.wrapping_add(1);
    }

    /// Posts one receive descriptor of `len` bytes at `addr` with `flags`
    /// (anything, good or bad); its descriptor index.
    pub fn post_raw(&mut self, addr: u64, len: u32, flags: u16) -> u16 {
        let d = self.rx_avail % QSIZE;
        self.set_desc(self.rx, d, addr, len, flags);
        self.publish(self.rx, self.rx_avail, d);
        self.rx_avail = self.rx_avail.wrapping_add(1);
        d
    }

    /// The receive ring's layout (for a device-side queue of its own).
    pub fn rx_layout(&self) -> QueueLayout {
        self.rx
    }

    /// The receive ring's used entries so far: (descriptor, length).
    pub fn rx_used_entries(&self) -> Vec<(u32, u32)> {
        (0..self.rx_used())
            .map(|i| {
                let at = self.rx.used_ring + 4 + 8 * u64::from(i % QSIZE);
                (
                    self.ram.read_u32(Gpa(at)).unwrap(),
                    self.ram.read_u32(Gpa(at + 4)).unwrap(),
                )
            })
            .collect()
    }

    /// A view of this guest's memory addressed by host address (as a
    /// NIC's DMA reaches it): guest-physical `g` is at `bus_base() + g`.
    pub fn bus_view(&mut self) -> RawRam {
        let base = self.bus_base();
        over_vec_at(&mut self._mem, base)
    }

    /// The host address of guest-physical 0.
    pub fn bus_base(&self) -> u64 {
        self._mem.as_ptr() as u64
    }

    /// The driver starts over after a reset: zeroed rings, indices at 0,
    /// nothing received yet.
    pub fn restart_driver(&mut self) {
        self.ram.write(Gpa(TX_RING), &[0; 0x2000]).unwrap();
        self.tx_avail = 0;
        self.rx_avail = 0;
        self.got.clear();
    }

    /// Frames sent and not completed by the device yet.
    pub fn in_flight(&self) -> u16 {
        self.tx_avail.wrapping_sub(self.tx_used())
    }

    /// Buffers posted and not filled yet.
    pub fn posted(&self) -> u16 {
        self.rx_avail.wrapping_sub(self.rx_used())
    }

    /// The transmit ring's used idx: frames the device completed.
    pub fn tx_used(&self) -> u16 {
        self.ram.read_u16(Gpa(self.tx.used_ring + 2)).unwrap()
    }

    /// The receive ring's used idx: buffers the device filled.
    pub fn rx_used(&self) -> u16 {
        self.ram.read_u16(Gpa(self.rx.used_ring + 2)).unwrap()
    }

    /// The receive ring's used flags (`VIRTQ_USED_F_NO_NOTIFY` when the
    /// device polls).
    pub fn rx_used_flags(&self) -> u16 {
        self.ram.read_u16(Gpa(self.rx.used_ring)).unwrap()
    }

    /// Every frame received so far, in order, each header checked.
    pub fn received(&mut self) -> Vec<Vec<u8>> {
        let n = self.rx_used();
        for i in self.got.len() as u16..n {
            let at = self.rx.used_ring + 4 + 8 * u64::from(i % QSIZE);
            let id = self.ram.read_u32(Gpa(at)).unwrap();
            let len = self.ram.read_u32(Gpa(at + 4)).unwrap();
            let addr = RX_BUFS + u64::from(id) * u64::from(SLOT);
            let mut buf = vec![0; len as usize];
            self.ram.read(Gpa(addr), &mut buf).unwrap();
            assert_eq!(buf[..NET_HDR_LEN as usize], receive_header());
            self.got.push(buf.split_off(NET_HDR_LEN as usize));
        }
        self.got.clone()
    }

    /// Brings `port` up as a driver does: negotiates, sets both queues,
    /// then `DRIVER_OK`, whose effect is applied to the port (the writes
    /// before it change nothing a port acts on but its generation); what
    /// the port said.
    pub fn bring_up(&self, port: &mut PortInner) -> PortEvent {
        self.bring_up_queues(port, &[TRANSMIT_QUEUE, RECEIVE_QUEUE])
    }

    /// As [`Guest::bring_up`], setting only `queues`.
    pub fn bring_up_queues(&self, port: &mut PortInner, queues: &[u16]) -> PortEvent {
        let mut d = MmioDriver::default();
        d.begin_init(&mut port.transport, VIRTIO_F_VERSION_1)
            .unwrap();
        for &q in queues {
            let layout = if q == TRANSMIT_QUEUE {
                self.tx
            } else {
                self.rx
            };
            d.queue_set(&mut port.transport, q, QSIZE.into(), layout.into())
                .unwrap();
        }
        let effect = d.finish_init(&mut port.transport).unwrap();
        assert_eq!(effect, WriteEffect::DriverOk);
        port.after_write(effect)
    }
}

/// The driver resets its device: writes 0 to `Status`.
pub fn reset(port: &mut PortInner) -> PortEvent {
    let effect = port.transport.write(offset::STATUS, 4, 0).unwrap();
    assert_eq!(effect, WriteEffect::Reset);
    port.after_write(effect)
}

/// The wire, faked: frames waiting in receive slots, transmit slots.
#[derive(Default)]
pub struct FakeWire {
    /// Frames waiting in the receive ring: slot and bytes.
    pub rx: VecDeque<(u16, Vec<u8>)>,
    /// Every frame that arrived, by slot.
    pub slots: Vec<Vec<u8>>,
    /// Slots given back, in order.
    pub recycled: Vec<u16>,
    /// Receive doorbells.
    pub rx_flushes: u32,
    /// Frames the transmit ring still takes.
    pub tx_free: usize,
    /// The slot claimed and not posted.
    pub claimed: Option<u16>,
    /// Transmit buffers.
    pub tx_bufs: Vec<Vec<u8>>,
    /// Frames posted, not flushed yet.
    pub posted: Vec<Vec<u8>>,
    /// Frames on the wire, in order.
    pub sent: Vec<Vec<u8>>,
    /// Transmit doorbells.
    pub tx_flushes: u32,
}

impl FakeWire {
    /// A wire with room for `tx_free` frames to be sent.
    pub fn new(tx_free: usize) -> Self {
        FakeWire {
            tx_free,
            tx_bufs: vec![vec![0; crate::datapath::switch::MAX_WIRE_FRAME as usize]; 4],
            ..FakeWire::default()
        }
    }

    /// `f` arrives from the wire.
    pub fn arrive(&mut self, f: Vec<u8>) {
        let slot = self.slots.len() as u16;
        self.slots.push(f.clone());
        self.rx.push_back((slot, f));
    }
}

impl crate::datapath::switch::WireRx for FakeWire {
    fn next(&mut self) -> Option<(u16, u32)> {
        let (slot, f) = self.rx.pop_front()?;
        Some((slot, f.len() as u32))
    }

    fn read(&self, slot: u16, len: u32, mut f: impl FnMut(&[u8])) {
        // In pieces of 5, as a driver's bounce buffer would.
        for piece in self.slots[slot as usize][..len as usize].chunks(5) {
            f(piece);
        }
    }

    fn recycle(&mut self, slot: u16) {
        self.recycled.push(slot);
    }

    fn flush(&mut self) {
        self.rx_flushes += 1;
    }
}

impl crate::datapath::switch::WireTx for FakeWire {
    fn claim(&mut self) -> Option<u16> {
        if let Some(s) = self.claimed {
            return Some(s);
        }
        if self.tx_free == 0 {
            return None;
        }
        self.tx_free -= 1;
        let s = (self.posted.len() % 4) as u16;
        self.claimed = Some(s);
        Some(s)
    }

    fn write(&mut self, slot: u16, at: u32, bytes: &[u8]) -> u32 {
        assert_eq!(self.claimed, Some(slot), "write to an unclaimed slot");
        let at = at as usize;
        self.tx_bufs[slot as usize][at..at + bytes.len()].copy_from_slice(bytes);
        bytes.len() as u32
    }

    fn post(&mut self, slot: u16, len: u32) {
        assert_eq!(self.claimed.take(), Some(slot), "post of an unclaimed slot");
        self.posted
            .push(self.tx_bufs[slot as usize][..len as usize].to_vec());
    }

    fn flush(&mut self) {
        self.tx_flushes += 1;
        self.sent.append(&mut self.posted);
    }
}

/// The fake wire has no caller-buffer rings (it stands for a NIC in shared
/// mode): every call answers [`crate::nic::NicError::WrongMode`].
impl crate::nic::ZeroCopy for FakeWire {
    fn zc_rx_give(&mut self, _: u64, _: u16) -> Result<bool, crate::nic::NicError> {
        Err(crate::nic::NicError::WrongMode { call: "zc_rx_give" })
    }
    fn zc_rx_taken(&mut self) -> Result<Option<(u16, Option<u32>)>, crate::nic::NicError> {
        Err(crate::nic::NicError::WrongMode {
            call: "zc_rx_taken",
        })
    }
    fn zc_rx_flush(&mut self) {}
    fn zc_tx_give(
        &mut self,
        _: &[u8; crate::nic::ETH_HEADER_BYTES],
        _: u64,
        _: u32,
        _: u16,
    ) -> Result<bool, crate::nic::NicError> {
        Err(crate::nic::NicError::WrongMode { call: "zc_tx_give" })
    }
    fn zc_tx_taken(&mut self) -> Result<Option<u16>, crate::nic::NicError> {
        Err(crate::nic::NicError::WrongMode {
            call: "zc_tx_taken",
        })
    }
    fn zc_tx_flush(&mut self) {}
    fn zc_revoke(&mut self) -> Result<(), crate::nic::NicError> {
        Err(crate::nic::NicError::WrongMode { call: "zc_revoke" })
    }
}
