//! The virtio console device model (virtio 1.2 §5.3), minimal: port 0's
//! receive and transmit queues, no size, multiport or emergency write. What
//! the guest transmits is drained into a byte sink (the hypervisor's
//! per-VM console).

use super::error::RingError;
use super::features::COMMON_FEATURES;
use super::mmio::Device;
use super::queue::SplitQueue;
use crate::mem::access::GuestRam;

/// Virtio device ID of a console (§5.3.1).
pub const VIRTIO_ID_CONSOLE: u32 = 3;
/// receiveq(port0) (§5.3.2).
pub const RECEIVE_QUEUE: u16 = 0;
/// transmitq(port0) (§5.3.2).
pub const TRANSMIT_QUEUE: u16 = 1;
/// Only port 0's queues exist without `VIRTIO_CONSOLE_F_MULTIPORT`.
const NUM_QUEUES: u16 = 2;
/// `struct virtio_console_config`: two le16 size fields, le32
/// max_nr_ports, le32 emerg_wr. None is valid without the features that
/// enable them, so all read as 0 and writes are dropped.
const CONSOLE_CONFIG_LEN: usize = 12;

/// The console device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsoleDevice;

impl Device for ConsoleDevice {
    fn device_id(&self) -> u32 {
        VIRTIO_ID_CONSOLE
    }

    fn features(&self) -> u64 {
        COMMON_FEATURES
    }

    fn num_queues(&self) -> u16 {
        NUM_QUEUES
    }

    fn config_len(&self) -> usize {
        CONSOLE_CONFIG_LEN
    }

    fn read_config(&self, _offset: usize, data: &mut [u8]) {
        data.fill(0);
    }

    fn write_config(&mut self, _offset: usize, _data: &[u8]) {}
}

/// What one drain moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Chains returned to the driver.
    pub chains: u32,
    /// Bytes passed to the sink.
    pub bytes: u64,
}

/// Passes every chain the driver made available on the transmit queue to
/// `sink`, in order, and returns them used (length 0: the device writes
/// nothing) with one used-idx update. At most one queue's worth is taken per
/// call, so a driver publishing as fast as it is drained cannot hold the
/// caller. Whether to interrupt is then [`SplitQueue::needs_interrupt`].
pub fn drain_transmit<M: GuestRam>(
    queue: &mut SplitQueue,
    mem: &mut M,
    mut sink: impl FnMut(&[u8]),
) -> Result<Drained, RingError> {
    let mut done = Drained::default();
    for _ in 0..queue.size() {
        let Some(chain) = queue.pop_avail(mem)? else {
            break;
        };
        if !chain.writable().is_empty() {
            return Err(RingError::WritableInTransmit { head: chain.head() });
        }
        let n = chain.for_each_readable(mem, 0, chain.readable_len(), &mut sink)?;
        queue.add_used(mem, chain.head(), 0)?;
        done.chains += 1;
        done.bytes += u64::from(n);
    }
    queue.publish_used(mem)?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::features::{
        VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1,
    };
    use crate::devices::virtio::mmio::{
        CONFIG_OFFSET, Transport, TransportConfig, WriteEffect, offset,
    };
    use crate::devices::virtio::queue::{
        QueueError, QueueLimits, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
    };
    use crate::devices::virtio::testing::{DriverQueue, MEM_SIZE, MmioDriver};
    use crate::mem::guest::GuestMemory;

    /// virtio-drivers 0.13's console asks for event idx, indirect
    /// descriptors, SIZE (bit 0), EMERG_WRITE (bit 2) and VERSION_1.
    const DRIVER_FEATURES: u64 =
        VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC | 1 | 4 | VIRTIO_F_VERSION_1;

    #[test]
    fn guest_output_reaches_the_sink() {
        let mut backing = vec![0u8; MEM_SIZE];
        let mut t = Transport::new(ConsoleDevice, TransportConfig::new(MEM_SIZE as u64));
        let mut d = MmioDriver::default();
        assert_eq!(
            d.begin_init(&mut t, DRIVER_FEATURES),
            Ok(VIRTIO_F_EVENT_IDX | VIRTIO_F_VERSION_1)
        );
        let rx = DriverQueue::new(2, 0x1000);
        let mut tx = DriverQueue::new(2, 0x2000);
        d.queue_set(&mut t, RECEIVE_QUEUE, 2, rx.layout().into())
            .unwrap();
        d.queue_set(&mut t, TRANSMIT_QUEUE, 2, tx.layout().into())
            .unwrap();
        assert_eq!(d.finish_init(&mut t), Ok(WriteEffect::DriverOk));
        assert_eq!(t.read(CONFIG_OFFSET + 4, 4), Ok(0), "max_nr_ports");

        let mut m = GuestMemory::new(&mut backing);
        let q = t.queue_mut(TRANSMIT_QUEUE).unwrap();
        q.set_no_notify(&mut m, true).unwrap();
        let mut out = Vec::new();
        for part in [&b"hello, "[..], b"world\n"] {
            m.write(0x8000, part).unwrap();
            tx.set_desc(&mut m, 0, 0x8000, part.len() as u32, 0, 0);
            tx.publish(&mut m, 0);
            let got = drain_transmit(q, &mut m, |b| out.extend_from_slice(b)).unwrap();
            assert_eq!(
                got,
                Drained {
                    chains: 1,
                    bytes: part.len() as u64
                }
            );
            assert!(
                q.needs_interrupt(&m).unwrap(),
                "used_event 0 after pop_used"
            );
            let used = tx.used_idx(&m);
            tx.set_used_event(&mut m, used);
        }
        assert_eq!(out, b"hello, world\n");
        assert_eq!(tx.used_elem(&m, 1), (0, 0));
        // A chain of two buffers, and nothing left afterwards.
        m.write(0x8000, b"ab").unwrap();
        m.write(0x9000, b"cd").unwrap();
        tx.set_desc(&mut m, 0, 0x8000, 2, VIRTQ_DESC_F_NEXT, 1);
        tx.set_desc(&mut m, 1, 0x9000, 2, 0, 0);
        tx.publish(&mut m, 0);
        out.clear();
        drain_transmit(q, &mut m, |b| out.extend_from_slice(b)).unwrap();
        assert_eq!(out, b"abcd");
        assert_eq!(
            drain_transmit(q, &mut m, |_| panic!("nothing to drain")),
            Ok(Drained::default())
        );
        assert_eq!(
            t.write(offset::QUEUE_NOTIFY, 4, u32::from(TRANSMIT_QUEUE)),
            Ok(WriteEffect::Notify(1))
        );
    }

    #[test]
    fn writable_transmit_buffer_is_refused() {
        let mut backing = vec![0u8; MEM_SIZE];
        let mut m = GuestMemory::new(&mut backing);
        let mut tx = DriverQueue::new(4, 0x100);
        let mut q = SplitQueue::new(tx.layout(), false, QueueLimits::default()).unwrap();
        tx.set_desc(&mut m, 0, 0x8000, 2, VIRTQ_DESC_F_WRITE, 0);
        tx.publish(&mut m, 0);
        let e = drain_transmit(&mut q, &mut m, |_| ()).unwrap_err();
        assert_eq!(e, RingError::WritableInTransmit { head: 0 });
        assert!(!e.to_string().is_empty());
        tx.set_desc(&mut m, 1, u64::MAX, 2, 0, 0);
        tx.publish(&mut m, 1);
        assert!(matches!(
            drain_transmit(&mut q, &mut m, |_| ()),
            Err(RingError::Queue(QueueError::BufferOutsideMemory { .. }))
        ));
    }

    #[test]
    fn a_drain_takes_at_most_one_queue_worth() {
        let mut backing = vec![0u8; MEM_SIZE];
        let mut m = GuestMemory::new(&mut backing);
        let mut tx = DriverQueue::new(4, 0x100);
        let mut q = SplitQueue::new(tx.layout(), false, QueueLimits::default()).unwrap();
        tx.set_desc(&mut m, 0, 0x8000, 1, 0, 0);
        for _ in 0..4 {
            tx.publish(&mut m, 0);
        }
        let got = drain_transmit(&mut q, &mut m, |_| ()).unwrap();
        assert_eq!(got.chains, 4);
        assert_eq!(tx.used_idx(&m), 4);
    }
}
