//! The virtio network device model (virtio 1.2 §5.1): one receive and one
//! transmit queue, a MAC address and link status in configuration space, no
//! checksum or segmentation offloads. Frames cross the rings behind the
//! 12-byte `struct virtio_net_hdr` of `VIRTIO_F_VERSION_1` (§5.1.6); the
//! helpers here strip it from transmitted chains and write it in front of
//! received frames, so links only ever move Ethernet frames.

use super::error::RingError;
use super::features::COMMON_FEATURES;
use super::mmio::Device;
use super::queue::Chain;
use crate::mem::access::GuestRam;

/// Virtio device ID of a network card (§5.1.1).
pub const VIRTIO_ID_NET: u32 = 1;
/// The device has a MAC address in configuration space (§5.1.3).
pub const VIRTIO_NET_F_MAC: u64 = 1 << 5;
/// Configuration space has a link status field (§5.1.3).
pub const VIRTIO_NET_F_STATUS: u64 = 1 << 16;
/// `status`: the link is up (§5.1.4).
pub const VIRTIO_NET_S_LINK_UP: u16 = 1;

/// receiveq1 (§5.1.2).
pub const RECEIVE_QUEUE: u16 = 0;
/// transmitq1 (§5.1.2).
pub const TRANSMIT_QUEUE: u16 = 1;
/// No control queue, no multiqueue.
const NUM_QUEUES: u16 = 2;

/// `struct virtio_net_hdr` with `VIRTIO_F_VERSION_1` and without hash
/// reports: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset,
/// num_buffers.
pub const NET_HDR_LEN: u32 = 12;
/// Offset of `le16 num_buffers` in the header.
const HDR_NUM_BUFFERS: usize = 10;
/// A received frame always fills one buffer without `VIRTIO_NET_F_MRG_RXBUF`
/// (§5.1.6.3.2).
const RX_NUM_BUFFERS: u16 = 1;

/// Bytes in a MAC address.
pub const MAC_LEN: usize = 6;
/// `u8 mac[6]` in `struct virtio_net_config`.
const CONFIG_MAC: usize = 0;
/// `le16 status`.
const CONFIG_STATUS: usize = 6;
/// The fields this device has (the rest exist only with features it does
/// not offer).
const NET_CONFIG_LEN: usize = 8;
const _: () = assert!(CONFIG_STATUS == CONFIG_MAC + MAC_LEN && NET_CONFIG_LEN == CONFIG_STATUS + 2);
const _: () = assert!(HDR_NUM_BUFFERS + 2 == NET_HDR_LEN as usize);

/// A network card with a fixed MAC address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetDevice {
    mac: [u8; MAC_LEN],
    link_up: bool,
}

impl NetDevice {
    /// A card with `mac` whose link is up.
    pub fn new(mac: [u8; MAC_LEN]) -> Self {
        NetDevice { mac, link_up: true }
    }

    /// Its MAC address.
    pub fn mac(&self) -> [u8; MAC_LEN] {
        self.mac
    }

    /// Sets the link state; returns whether it changed (then the caller
    /// tells the transport the configuration changed).
    pub fn set_link_up(&mut self, up: bool) -> bool {
        let changed = self.link_up != up;
        self.link_up = up;
        changed
    }

    fn config(&self) -> [u8; NET_CONFIG_LEN] {
        let mut c = [0u8; NET_CONFIG_LEN];
        c[CONFIG_MAC..CONFIG_MAC + MAC_LEN].copy_from_slice(&self.mac);
        let status = if self.link_up {
            VIRTIO_NET_S_LINK_UP
        } else {
            0
        };
        c[CONFIG_STATUS..].copy_from_slice(&status.to_le_bytes());
        c
    }
}

impl Device for NetDevice {
    fn device_id(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn features(&self) -> u64 {
        COMMON_FEATURES | VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS
    }

    fn num_queues(&self) -> u16 {
        NUM_QUEUES
    }

    fn config_len(&self) -> usize {
        NET_CONFIG_LEN
    }

    fn read_config(&self, offset: usize, data: &mut [u8]) {
        let config = self.config();
        if let Some(src) = config.get(offset..offset + data.len()) {
            data.copy_from_slice(src);
        }
    }

    /// Every field is read-only for the driver (§5.1.4.2): writes are
    /// dropped.
    fn write_config(&mut self, _offset: usize, _data: &[u8]) {}
}

/// The length of the frame in a transmit chain (after the header). The
/// header's contents are ignored: with no offloads negotiated there is
/// nothing in it the device may use (§5.1.6.2.2).
pub fn transmit_frame_len(tx: &Chain) -> Result<u32, RingError> {
    let head = tx.head();
    if !tx.writable().is_empty() {
        return Err(RingError::WritableInTransmit { head });
    }
    tx.readable_len()
        .checked_sub(NET_HDR_LEN)
        .ok_or(RingError::TransmitTooShort {
            head,
            len: tx.readable_len(),
        })
}

/// Copies the frame of a transmit chain (header stripped) into `out`;
/// returns its length. The chain's used length is 0: the device writes
/// nothing into transmit buffers.
pub fn read_transmit_frame<M: GuestRam>(
    tx: &Chain,
    mem: &M,
    out: &mut [u8],
) -> Result<usize, RingError> {
    let len = transmit_frame_len(tx)?;
    let max = out.len();
    let out = out
        .get_mut(..len as usize)
        .ok_or(RingError::FrameTooLarge { len, max })?;
    Ok(tx.read_at(mem, NET_HDR_LEN, out)?)
}

/// The header in front of every received frame: no checksum or GSO
/// information, one buffer.
pub const fn receive_header() -> [u8; NET_HDR_LEN as usize] {
    let mut h = [0u8; NET_HDR_LEN as usize];
    let n = RX_NUM_BUFFERS.to_le_bytes();
    h[HDR_NUM_BUFFERS] = n[0];
    h[HDR_NUM_BUFFERS + 1] = n[1];
    h
}

/// Checks that a receive chain can take a frame of `len` bytes.
fn check_receive(rx: &Chain, len: u32) -> Result<(), RingError> {
    let head = rx.head();
    if !rx.readable().is_empty() {
        return Err(RingError::ReadableInReceive { head });
    }
    let need = NET_HDR_LEN + len;
    if rx.writable_len() < need {
        return Err(RingError::ReceiveBufferTooSmall {
            head,
            need,
            have: rx.writable_len(),
        });
    }
    Ok(())
}

/// Writes the header and `frame` into a receive chain; returns the used
/// length to push for it.
pub fn write_receive_frame<M: GuestRam>(
    rx: &Chain,
    mem: &mut M,
    frame: &[u8],
) -> Result<u32, RingError> {
    let len = u32::try_from(frame.len()).map_err(|_| RingError::FrameTooLarge {
        len: u32::MAX,
        max: u32::MAX as usize,
    })?;
    check_receive(rx, len)?;
    rx.write_at(mem, 0, &receive_header())?;
    rx.write_at(mem, NET_HDR_LEN, frame)?;
    Ok(NET_HDR_LEN + len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::features::{
        VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1,
    };
    use crate::devices::virtio::mmio::{CONFIG_OFFSET, Transport, TransportConfig, WriteEffect};
    use crate::devices::virtio::queue::{
        QueueError, QueueLimits, SplitQueue, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
    };
    use crate::devices::virtio::testing::{DriverQueue, MEM_SIZE, MmioDriver};
    use crate::mem::guest::GuestMemory;

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    /// What virtio-drivers 0.13's net driver asks for.
    const DRIVER_FEATURES: u64 = VIRTIO_NET_F_MAC
        | VIRTIO_NET_F_STATUS
        | VIRTIO_F_EVENT_IDX
        | VIRTIO_F_INDIRECT_DESC
        | VIRTIO_F_VERSION_1;

    fn frame(len: usize) -> Vec<u8> {
        (0..len).map(|i| i as u8).collect()
    }

    #[test]
    fn config_space_and_features() {
        let mut t = Transport::new(NetDevice::new(MAC), TransportConfig::new(MEM_SIZE as u64));
        let mut d = MmioDriver::default();
        let features = d.begin_init(&mut t, DRIVER_FEATURES).unwrap();
        assert_eq!(
            features,
            VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | VIRTIO_F_EVENT_IDX | VIRTIO_F_VERSION_1
        );
        // No checksum (bit 0) or TSO/UFO offloads, no mergeable buffers.
        assert_eq!(d.offered & ((1 << 16) - 1) & !VIRTIO_NET_F_MAC, 0);
        let mac: Vec<u8> = (0..6)
            .map(|i| t.read(CONFIG_OFFSET + i, 1).unwrap() as u8)
            .collect();
        assert_eq!(mac, MAC);
        // A 6-byte field read as 4 + 2, then status.
        let low = t.read(CONFIG_OFFSET, 4).unwrap().to_le_bytes();
        let high = t.read(CONFIG_OFFSET + 4, 2).unwrap().to_le_bytes();
        assert_eq!([low[0], low[1], low[2], low[3], high[0], high[1]], MAC);
        assert_eq!(
            t.read(CONFIG_OFFSET + 6, 2),
            Ok(u32::from(VIRTIO_NET_S_LINK_UP))
        );
        assert!(
            t.read(CONFIG_OFFSET + 8, 2).is_err(),
            "no max_virtqueue_pairs"
        );
        t.write(CONFIG_OFFSET, 1, 0xff).unwrap();
        assert_eq!(t.read(CONFIG_OFFSET, 1), Ok(2), "read-only for the driver");

        assert!(t.device_mut().set_link_up(false));
        t.config_changed();
        assert_eq!(t.read(CONFIG_OFFSET + 6, 2), Ok(0));
        assert!(!t.device_mut().set_link_up(false));
    }

    /// One guest: memory, transport and the driver's two queues.
    struct Guest {
        mem: Vec<u8>,
        t: Transport<NetDevice>,
        rx: DriverQueue,
        tx: DriverQueue,
    }

    fn guest(mac: [u8; 6]) -> Guest {
        let mut t = Transport::new(NetDevice::new(mac), TransportConfig::new(MEM_SIZE as u64));
        let mut d = MmioDriver::default();
        d.begin_init(&mut t, DRIVER_FEATURES).unwrap();
        // virtio-drivers sets up transmit first, then receive.
        let tx = DriverQueue::new(16, 0x1000);
        let rx = DriverQueue::new(16, 0x2000);
        d.queue_set(&mut t, TRANSMIT_QUEUE, 16, tx.layout().into())
            .unwrap();
        d.queue_set(&mut t, RECEIVE_QUEUE, 16, rx.layout().into())
            .unwrap();
        assert_eq!(d.finish_init(&mut t), Ok(WriteEffect::DriverOk));
        Guest {
            mem: vec![0; MEM_SIZE],
            t,
            rx,
            tx,
        }
    }

    #[test]
    fn frames_cross_a_link_between_two_guests() {
        let mut a = guest(MAC);
        let mut b = guest([0x02, 0, 0, 0, 0, 0x0b]);
        let payload = frame(60);
        // Guest A sends header and frame as two descriptors (virtio-drivers'
        // `send`), then one with both in one buffer (`transmit_begin`).
        {
            let mut m = GuestMemory::new(&mut a.mem);
            m.write(0x8000, &[0; 12]).unwrap();
            m.write(0x8100, &payload).unwrap();
            a.tx.set_desc(&mut m, 0, 0x8000, 12, VIRTQ_DESC_F_NEXT, 1);
            a.tx.set_desc(&mut m, 1, 0x8100, 60, 0, 0);
            a.tx.publish(&mut m, 0);
            m.write(0x9000, &[0; 12]).unwrap();
            m.write(0x900c, &payload[..42]).unwrap();
            a.tx.set_desc(&mut m, 2, 0x9000, 12 + 42, 0, 0);
            a.tx.publish(&mut m, 2);
        }
        // Guest B posts two 1526-byte receive buffers.
        {
            let mut m = GuestMemory::new(&mut b.mem);
            b.rx.set_desc(&mut m, 0, 0x8000, 1526, VIRTQ_DESC_F_WRITE, 0);
            b.rx.set_desc(&mut m, 1, 0x9000, 1526, VIRTQ_DESC_F_WRITE, 0);
            b.rx.publish(&mut m, 0);
            b.rx.publish(&mut m, 1);
        }
        let mut ma = GuestMemory::new(&mut a.mem);
        let mut mb = GuestMemory::new(&mut b.mem);
        let txq = a.t.queue_mut(TRANSMIT_QUEUE).unwrap();
        let rxq = b.t.queue_mut(RECEIVE_QUEUE).unwrap();
        // The link's data path moves them (a chain and a single buffer).
        let mut dir = crate::datapath::direction::Direction::default();
        let moved = crate::datapath::direction::pump(
            &mut dir,
            &mut crate::datapath::virtio::VirtioTx::new(txq, &mut ma),
            crate::datapath::endpoint::Receiver::Ready(crate::datapath::virtio::VirtioRx::new(
                rxq, &mut mb,
            )),
            0,
            u32::MAX,
            crate::datapath::direction::Hold::NEVER,
            &mut crate::datapath::policy::PassAll,
        );
        assert_eq!(moved, Ok(2));
        assert_eq!(dir.flow.frames, 2);
        assert_eq!(b.rx.used_elem(&mb, 1), (1, 54));
        assert_eq!(a.tx.used_idx(&ma), 2);
        assert_eq!(a.tx.used_elem(&ma, 1), (2, 0));
        assert_eq!(b.rx.used_idx(&mb), 2);
        assert_eq!(b.rx.used_elem(&mb, 0), (0, 72));
        let mut got = [0u8; 72];
        mb.read(0x8000, &mut got).unwrap();
        assert_eq!(got[..12], receive_header());
        assert_eq!(u16::from_le_bytes([got[10], got[11]]), 1, "num_buffers");
        assert_eq!(got[12..], payload[..]);
        mb.read(0x9000 + 12, &mut got[..42]).unwrap();
        assert_eq!(got[..42], payload[..42]);
    }

    #[test]
    fn copy_through_a_buffer_strips_and_adds_the_header() {
        let mut backing = vec![0u8; MEM_SIZE];
        let mut m = GuestMemory::new(&mut backing);
        let mut dq = DriverQueue::new(8, 0x100);
        let mut q = SplitQueue::new(dq.layout(), false, QueueLimits::default()).unwrap();
        let payload = frame(1514);
        m.write(0x4000 + 12, &payload).unwrap();
        dq.set_desc(&mut m, 0, 0x4000, 12 + 1514, 0, 0);
        // A receive chain split in three, header in the first piece.
        dq.set_desc(
            &mut m,
            1,
            0x8000,
            10,
            VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
            2,
        );
        dq.set_desc(
            &mut m,
            2,
            0x9000,
            1000,
            VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
            3,
        );
        dq.set_desc(&mut m, 3, 0xa000, 516, VIRTQ_DESC_F_WRITE, 0);
        dq.publish(&mut m, 0);
        dq.publish(&mut m, 1);
        let tx = q.pop_avail(&mut m).unwrap().unwrap();
        let rx = q.pop_avail(&mut m).unwrap().unwrap();
        let mut buf = [0u8; 2048];
        let n = read_transmit_frame(&tx, &m, &mut buf).unwrap();
        assert_eq!(buf[..n], payload[..]);
        assert_eq!(
            read_transmit_frame(&tx, &m, &mut buf[..100]),
            Err(RingError::FrameTooLarge {
                len: 1514,
                max: 100
            })
        );
        assert_eq!(write_receive_frame(&rx, &mut m, &buf[..n]), Ok(1526));
        let mut hdr = [0u8; 10];
        m.read(0x8000, &mut hdr).unwrap();
        assert_eq!(hdr, receive_header()[..10]);
        // 10 + 1000 bytes before the third piece: 12 of header, 998 of frame.
        let mut out = [0u8; 516];
        m.read(0xa000, &mut out).unwrap();
        assert_eq!(out[..], payload[998..]);
    }

    fn chains(build: impl FnOnce(&mut GuestMemory, &mut DriverQueue)) -> (Vec<u8>, Vec<Chain>) {
        let mut backing = vec![0u8; MEM_SIZE];
        let mut dq = DriverQueue::new(8, 0x100);
        let mut q = SplitQueue::new(dq.layout(), false, QueueLimits::default()).unwrap();
        let mut out = Vec::new();
        {
            let mut m = GuestMemory::new(&mut backing);
            build(&mut m, &mut dq);
            while let Some(c) = q.pop_avail(&mut m).unwrap() {
                out.push(c);
            }
        }
        (backing, out)
    }

    #[test]
    fn malformed_frames_are_named() {
        let (mut backing, c) = chains(|m, dq| {
            dq.set_desc(m, 0, 0x4000, 11, 0, 0);
            dq.set_desc(m, 1, 0x4000, 20, VIRTQ_DESC_F_NEXT, 2);
            dq.set_desc(m, 2, 0x5000, 20, VIRTQ_DESC_F_WRITE, 0);
            dq.set_desc(m, 3, 0x6000, 20, VIRTQ_DESC_F_WRITE, 0);
            for h in [0, 1, 3] {
                dq.publish(m, h);
            }
        });
        let mut m = GuestMemory::new(&mut backing);
        assert_eq!(
            transmit_frame_len(&c[0]),
            Err(RingError::TransmitTooShort { head: 0, len: 11 })
        );
        assert_eq!(
            transmit_frame_len(&c[1]),
            Err(RingError::WritableInTransmit { head: 1 })
        );
        assert_eq!(
            write_receive_frame(&c[1], &mut m, &[0; 4]),
            Err(RingError::ReadableInReceive { head: 1 })
        );
        assert_eq!(
            write_receive_frame(&c[2], &mut m, &[0; 9]),
            Err(RingError::ReceiveBufferTooSmall {
                head: 3,
                need: 21,
                have: 20
            })
        );
        assert_eq!(write_receive_frame(&c[2], &mut m, &[0; 8]), Ok(20));
        for e in [
            RingError::TransmitTooShort { head: 0, len: 11 },
            RingError::Queue(QueueError::ChainLoop { index: 1 }),
        ] {
            assert!(!e.to_string().is_empty());
        }
    }
}
