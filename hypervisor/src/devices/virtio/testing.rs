//! A mock driver for tests: lays a split virtqueue out in a `Vec<u8>`-backed
//! [`GuestMemory`] and plays the driver's side of virtio 1.2 §2.7, and
//! programs a virtio-mmio transport the way virtio-drivers 0.13's
//! `MmioTransport` does (§4.2.3, §3.1.1).

use super::mmio::{
    Device, DeviceStatus, MAGIC_VALUE, MMIO_VERSION, MmioError, Transport, WriteEffect, offset,
};
use super::queue::{DESC_SIZE, QueueLayout};
use crate::mem::guest::GuestMemory;

/// Size of the mock guest memory the tests use.
pub const MEM_SIZE: usize = 0x20000;

/// The driver's view of one queue.
pub struct DriverQueue {
    layout: QueueLayout,
    /// The driver's next avail idx (written to the ring by `publish`).
    pub avail_idx: u16,
}

fn put(m: &mut GuestMemory<'_>, gpa: u64, bytes: &[u8]) {
    m.write(gpa, bytes)
        .expect("mock driver writes inside memory");
}

fn get<const N: usize>(m: &GuestMemory<'_>, gpa: u64) -> [u8; N] {
    let mut b = [0; N];
    m.read(gpa, &mut b)
        .expect("mock driver reads inside memory");
    b
}

impl DriverQueue {
    /// A queue of `size` packed from `base`: descriptor table, then the
    /// available ring, then the used ring at the next 4-byte boundary.
    pub fn new(size: u16, base: u64) -> Self {
        let n = u64::from(size);
        let avail_ring = base + DESC_SIZE * n;
        let used_ring = (avail_ring + 6 + 2 * n).next_multiple_of(4);
        Self::with_layout(QueueLayout {
            size,
            desc_table: base,
            avail_ring,
            used_ring,
        })
    }

    /// A driver for a queue laid out as given.
    pub fn with_layout(layout: QueueLayout) -> Self {
        DriverQueue {
            layout,
            avail_idx: 0,
        }
    }

    /// Where the queue is.
    pub fn layout(&self) -> QueueLayout {
        self.layout
    }

    /// Fills descriptor `index`.
    pub fn set_desc(
        &self,
        m: &mut GuestMemory<'_>,
        index: u16,
        addr: u64,
        len: u32,
        flags: u16,
        next: u16,
    ) {
        let mut raw = [0u8; DESC_SIZE as usize];
        raw[..8].copy_from_slice(&addr.to_le_bytes());
        raw[8..12].copy_from_slice(&len.to_le_bytes());
        raw[12..14].copy_from_slice(&flags.to_le_bytes());
        raw[14..].copy_from_slice(&next.to_le_bytes());
        put(
            m,
            self.layout.desc_table + DESC_SIZE * u64::from(index),
            &raw,
        );
    }

    /// Puts `head` in the next available-ring entry and publishes it.
    pub fn publish(&mut self, m: &mut GuestMemory<'_>, head: u16) {
        let slot = u64::from(self.avail_idx % self.layout.size);
        put(
            m,
            self.layout.avail_ring + 4 + 2 * slot,
            &head.to_le_bytes(),
        );
        self.set_avail_idx(m, self.avail_idx.wrapping_add(1));
    }

    /// Writes the available ring's idx.
    pub fn set_avail_idx(&mut self, m: &mut GuestMemory<'_>, idx: u16) {
        self.avail_idx = idx;
        put(m, self.layout.avail_ring + 2, &idx.to_le_bytes());
    }

    /// Writes the available ring's flags.
    pub fn set_avail_flags(&self, m: &mut GuestMemory<'_>, flags: u16) {
        put(m, self.layout.avail_ring, &flags.to_le_bytes());
    }

    /// Writes `used_event`.
    pub fn set_used_event(&self, m: &mut GuestMemory<'_>, event: u16) {
        let at = self.layout.avail_ring + 4 + 2 * u64::from(self.layout.size);
        put(m, at, &event.to_le_bytes());
    }

    /// The used ring's idx.
    pub fn used_idx(&self, m: &GuestMemory<'_>) -> u16 {
        u16::from_le_bytes(get(m, self.layout.used_ring + 2))
    }

    /// The used ring's flags.
    pub fn used_flags(&self, m: &GuestMemory<'_>) -> u16 {
        u16::from_le_bytes(get(m, self.layout.used_ring))
    }

    /// Used element `slot` as (id, len).
    pub fn used_elem(&self, m: &GuestMemory<'_>, slot: u16) -> (u32, u32) {
        let b: [u8; 8] = get(m, self.layout.used_ring + 4 + 8 * u64::from(slot));
        let [i0, i1, i2, i3, l0, l1, l2, l3] = b;
        (
            u32::from_le_bytes([i0, i1, i2, i3]),
            u32::from_le_bytes([l0, l1, l2, l3]),
        )
    }

    /// `avail_event`, after the used ring's elements.
    pub fn avail_event(&self, m: &GuestMemory<'_>) -> u16 {
        let at = self.layout.used_ring + 4 + 8 * u64::from(self.layout.size);
        u16::from_le_bytes(get(m, at))
    }
}

/// The three addresses a driver gives a queue.
#[derive(Clone, Copy, Debug)]
pub struct QueueAddrs {
    /// Descriptor Area.
    pub desc: u64,
    /// Driver Area (available ring).
    pub driver: u64,
    /// Device Area (used ring).
    pub device: u64,
}

impl From<QueueLayout> for QueueAddrs {
    fn from(l: QueueLayout) -> Self {
        QueueAddrs {
            desc: l.desc_table,
            driver: l.avail_ring,
            device: l.used_ring,
        }
    }
}

/// A driver programming a virtio-mmio window register by register.
#[derive(Default)]
pub struct MmioDriver {
    /// The device features read during `begin_init`.
    pub offered: u64,
}

const ACK_DRIVER: u32 = DeviceStatus::ACKNOWLEDGE.bits() | DeviceStatus::DRIVER.bits();

impl MmioDriver {
    fn w<D: Device>(t: &mut Transport<D>, off: u64, v: u32) -> Result<WriteEffect, MmioError> {
        t.write(off, 4, v)
    }

    /// Probe (magic, device ID, version), reset, then ACKNOWLEDGE | DRIVER
    /// in one write.
    pub fn reset_and_acknowledge<D: Device>(
        &mut self,
        t: &mut Transport<D>,
    ) -> Result<(), MmioError> {
        assert_eq!(t.read(offset::MAGIC_VALUE, 4)?, MAGIC_VALUE);
        assert_ne!(t.read(offset::DEVICE_ID, 4)?, 0);
        assert_eq!(t.read(offset::VERSION, 4)?, MMIO_VERSION);
        assert_eq!(Self::w(t, offset::STATUS, 0)?, WriteEffect::Reset);
        Self::w(t, offset::STATUS, ACK_DRIVER)?;
        Ok(())
    }

    /// Writes both 32-bit feature words.
    pub fn write_features<D: Device>(
        &mut self,
        t: &mut Transport<D>,
        features: u64,
    ) -> Result<(), MmioError> {
        Self::w(t, offset::DRIVER_FEATURES_SEL, 0)?;
        Self::w(t, offset::DRIVER_FEATURES, features as u32)?;
        Self::w(t, offset::DRIVER_FEATURES_SEL, 1)?;
        Self::w(t, offset::DRIVER_FEATURES, (features >> 32) as u32)?;
        Ok(())
    }

    /// Reset, acknowledge, negotiate `supported & offered`, FEATURES_OK.
    pub fn begin_init<D: Device>(
        &mut self,
        t: &mut Transport<D>,
        supported: u64,
    ) -> Result<u64, MmioError> {
        self.reset_and_acknowledge(t)?;
        Self::w(t, offset::DEVICE_FEATURES_SEL, 0)?;
        let low = t.read(offset::DEVICE_FEATURES, 4)?;
        Self::w(t, offset::DEVICE_FEATURES_SEL, 1)?;
        let high = t.read(offset::DEVICE_FEATURES, 4)?;
        self.offered = u64::from(low) | (u64::from(high) << 32);
        let negotiated = self.offered & supported;
        self.write_features(t, negotiated)?;
        Self::w(
            t,
            offset::STATUS,
            ACK_DRIVER | DeviceStatus::FEATURES_OK.bits(),
        )?;
        Ok(negotiated)
    }

    /// Checks the queue is unused and big enough, then sets it up and makes
    /// it ready.
    pub fn queue_set<D: Device>(
        &mut self,
        t: &mut Transport<D>,
        queue: u16,
        size: u32,
        a: QueueAddrs,
    ) -> Result<(), MmioError> {
        Self::w(t, offset::QUEUE_SEL, queue.into())?;
        assert_eq!(t.read(offset::QUEUE_READY, 4)?, 0);
        assert!(t.read(offset::QUEUE_NUM_MAX, 4)? >= size);
        Self::w(t, offset::QUEUE_NUM, size)?;
        Self::w(t, offset::QUEUE_DESC_LOW, a.desc as u32)?;
        Self::w(t, offset::QUEUE_DESC_HIGH, (a.desc >> 32) as u32)?;
        Self::w(t, offset::QUEUE_DRIVER_LOW, a.driver as u32)?;
        Self::w(t, offset::QUEUE_DRIVER_HIGH, (a.driver >> 32) as u32)?;
        Self::w(t, offset::QUEUE_DEVICE_LOW, a.device as u32)?;
        Self::w(t, offset::QUEUE_DEVICE_HIGH, (a.device >> 32) as u32)?;
        Self::w(t, offset::QUEUE_READY, 1)?;
        Ok(())
    }

    /// QueueReady 0, read back, then clear size and addresses.
    pub fn queue_unset<D: Device>(
        &mut self,
        t: &mut Transport<D>,
        queue: u16,
    ) -> Result<(), MmioError> {
        Self::w(t, offset::QUEUE_SEL, queue.into())?;
        Self::w(t, offset::QUEUE_READY, 0)?;
        assert_eq!(t.read(offset::QUEUE_READY, 4)?, 0);
        for reg in [
            offset::QUEUE_NUM,
            offset::QUEUE_DESC_LOW,
            offset::QUEUE_DESC_HIGH,
            offset::QUEUE_DRIVER_LOW,
            offset::QUEUE_DRIVER_HIGH,
            offset::QUEUE_DEVICE_LOW,
            offset::QUEUE_DEVICE_HIGH,
        ] {
            Self::w(t, reg, 0)?;
        }
        Ok(())
    }

    /// Sets DRIVER_OK with everything before it.
    pub fn finish_init<D: Device>(
        &mut self,
        t: &mut Transport<D>,
    ) -> Result<WriteEffect, MmioError> {
        let all = ACK_DRIVER | DeviceStatus::FEATURES_OK.bits() | DeviceStatus::DRIVER_OK.bits();
        Self::w(t, offset::STATUS, all)
    }

    /// Reads InterruptStatus and acknowledges what was set.
    pub fn ack_interrupt<D: Device>(&mut self, t: &mut Transport<D>) -> u32 {
        let pending = t.read(offset::INTERRUPT_STATUS, 4).unwrap();
        if pending != 0 {
            Self::w(t, offset::INTERRUPT_ACK, pending).unwrap();
        }
        pending
    }
}
