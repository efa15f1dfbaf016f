//! The polled virtio-net driver behind [`NetPort`](super::NetPort), generic
//! over the `virtio-drivers` transport so host tests can drive it against a
//! fake device: `VirtIONetRaw` for the rings, a fixed pool of receive
//! buffers (all posted at open) and one of transmit buffers (no allocation
//! per packet), and the checks that keep a misbehaving device from making
//! the guest panic.

use super::slots::Slots;
use super::{NetError, Protocol, QUEUE_SIZE, Refusal, TX_BUFFER_BYTES};
use crate::virtio::{CorralHal, PageBuf};
use core::ptr::NonNull;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::{DeviceType, Transport};
use vmm_abi::corral::devices::{MAX_FRAME_BYTES, NET_HEADER_BYTES, RX_BUFFER_BYTES};

/// `VIRTIO_F_VERSION_1` (virtio 1.2 §6): the modern interface and the
/// 12-byte net header.
const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// receiveq1 (virtio 1.2 §5.1.2).
pub(crate) const RECEIVE_QUEUE: u16 = 0;
/// transmitq1 (virtio 1.2 §5.1.2).
pub(crate) const TRANSMIT_QUEUE: u16 = 1;

const _: () = assert!(NET_HEADER_BYTES + MAX_FRAME_BYTES <= TX_BUFFER_BYTES);
const _: () = assert!(NET_HEADER_BYTES + MAX_FRAME_BYTES <= RX_BUFFER_BYTES);
const _: () = assert!(TX_BUFFER_BYTES <= u16::MAX as usize);

/// A pool of `QUEUE_SIZE` equal packet buffers in one page-aligned
/// allocation. The device reads and writes the buffers it was handed while
/// they are in flight, so the pool hands out raw pointers only; the driver
/// makes short-lived slices of buffers the device does not own.
struct Pool {
    mem: PageBuf,
    buffer_bytes: usize,
}

impl Pool {
    fn new(buffer_bytes: usize) -> Result<Self, NetError> {
        let bytes = buffer_bytes
            .checked_mul(QUEUE_SIZE)
            .ok_or(NetError::AllocFailed { bytes: usize::MAX })?;
        Ok(Pool {
            mem: PageBuf::zeroed(bytes)?,
            buffer_bytes,
        })
    }

    /// The first byte of buffer `slot` (`slot < QUEUE_SIZE`).
    fn buffer(&self, slot: usize) -> NonNull<u8> {
        debug_assert!(slot < QUEUE_SIZE);
        let offset = (slot % QUEUE_SIZE) * self.buffer_bytes;
        debug_assert!(offset + self.buffer_bytes <= self.mem.len());
        // SAFETY: `offset + buffer_bytes` is within the allocation of
        // `QUEUE_SIZE * buffer_bytes` bytes (the slot is reduced modulo
        // `QUEUE_SIZE`), so the result stays inside it and is non-null.
        unsafe { self.mem.base().add(offset) }
    }
}

/// One virtio-net device driven in polled mode.
///
/// Field order is drop order: the device is reset (and stops using the
/// rings and buffers) before the pools are freed.
pub(crate) struct Driver<T: Transport> {
    dev: VirtIONetRaw<CorralHal, T, QUEUE_SIZE>,
    rx_pool: Pool,
    tx_pool: Pool,
    rx: Slots<QUEUE_SIZE>,
    tx: Slots<QUEUE_SIZE>,
    /// Bytes queued in each transmit slot (header included).
    tx_len: [u16; QUEUE_SIZE],
}

impl<T: Transport> Driver<T> {
    /// Initializes the device behind `transport` (port number `port`, for
    /// errors) and posts every receive buffer.
    pub(crate) fn new(mut transport: T, port: usize) -> Result<Self, NetError> {
        let refuse = |step| NetError::Refused { port, step };
        if transport.device_type() != DeviceType::Network {
            return Err(refuse(Refusal::NotNet {
                device_id: transport.device_type() as u32,
            }));
        }
        if transport.requires_legacy_layout() {
            return Err(refuse(Refusal::Legacy));
        }
        // Checked before `VirtIONetRaw::new` starts the status sequence: a
        // device that rejected the features would stop the guest when the
        // driver went on to set up queues (§3.1.1 step 6 is not checked by
        // `virtio-drivers`). What `virtio-drivers` then negotiates is a
        // subset of what is offered and includes VERSION_1.
        if transport.read_device_features() & VIRTIO_F_VERSION_1 == 0 {
            return Err(refuse(Refusal::NoVersion1));
        }
        for queue in [RECEIVE_QUEUE, TRANSMIT_QUEUE] {
            let max = transport.max_queue_size(queue);
            if max < QUEUE_SIZE as u32 {
                return Err(refuse(Refusal::QueueTooSmall {
                    queue,
                    max,
                    need: QUEUE_SIZE,
                }));
            }
        }
        // The pools first: running out of memory leaves the device untouched.
        let rx_pool = Pool::new(RX_BUFFER_BYTES)?;
        let tx_pool = Pool::new(TX_BUFFER_BYTES)?;
        let mut dev = VirtIONetRaw::new(transport)?;
        dev.disable_interrupts();
        let mut driver = Driver {
            dev,
            rx_pool,
            tx_pool,
            rx: Slots::new(),
            tx: Slots::new(),
            tx_len: [0; QUEUE_SIZE],
        };
        for slot in 0..QUEUE_SIZE {
            driver.post_rx(slot)?;
        }
        Ok(driver)
    }

    /// The device's MAC address (from its configuration space).
    pub(crate) fn mac(&self) -> [u8; 6] {
        self.dev.mac_address()
    }

    /// Hands receive buffer `slot` to the device.
    fn post_rx(&mut self, slot: usize) -> Result<(), NetError> {
        let ptr = self.rx_pool.buffer(slot);
        // SAFETY: buffer `slot` lies in the receive pool (see
        // `Pool::buffer`), is `RX_BUFFER_BYTES` long, and is not in flight
        // (callers post a slot only at open or after popping it), so neither
        // the device nor any other slice uses it while this one exists.
        let buf = unsafe { core::slice::from_raw_parts_mut(ptr.as_ptr(), RX_BUFFER_BYTES) };
        // SAFETY: the buffer lives as long as the pool, which outlives the
        // device (field order), and the driver touches it again only after
        // the device returned it in the used ring.
        let token = unsafe { self.dev.receive_begin(buf) }?;
        if self.rx.bind(token, slot) {
            Ok(())
        } else {
            Err(NetError::Protocol(Protocol::UnknownId {
                queue: RECEIVE_QUEUE,
                id: token,
            }))
        }
    }

    /// Whether a received frame is waiting (one read of the used ring).
    pub(crate) fn rx_pending(&self) -> bool {
        self.dev.poll_receive().is_some()
    }

    /// Copies the next received frame into `out`; see
    /// [`NetPort::recv`](super::NetPort::recv).
    pub(crate) fn recv(&mut self, out: &mut [u8]) -> Result<Option<usize>, NetError> {
        let Some(token) = self.dev.poll_receive() else {
            return Ok(None);
        };
        let Some(slot) = self.rx.lookup(token) else {
            return Err(NetError::Protocol(Protocol::UnknownId {
                queue: RECEIVE_QUEUE,
                id: token,
            }));
        };
        let ptr = self.rx_pool.buffer(slot);
        // SAFETY: the slice is the buffer posted under `token` (the slot map
        // says so), which `receive_complete` requires; `receive_complete`
        // only pops it if the used ring still names `token`, and touches no
        // data.
        let done = unsafe {
            self.dev.receive_complete(
                token,
                core::slice::from_raw_parts_mut(ptr.as_ptr(), RX_BUFFER_BYTES),
            )
        };
        let (header, len) = match done {
            Ok(lengths) => lengths,
            // The chain was popped, but the used length was shorter than
            // the header: the buffer is the driver's again.
            Err(virtio_drivers::Error::IoError) => {
                self.rx.unbind(token);
                self.post_rx(slot)?;
                return Err(NetError::Protocol(Protocol::RxLength {
                    len: 0,
                    buffer: RX_BUFFER_BYTES,
                }));
            }
            // Nothing was popped (the used ring changed under us).
            Err(e) => return Err(e.into()),
        };
        self.rx.unbind(token);
        let result = match header.checked_add(len) {
            Some(end) if end <= RX_BUFFER_BYTES => match out.get_mut(..len) {
                Some(dst) => {
                    // SAFETY: the device returned the buffer (popped above)
                    // and it is not posted again until after this copy, so
                    // nothing writes it; `header..end` lies within it.
                    let frame =
                        unsafe { core::slice::from_raw_parts(ptr.as_ptr().add(header), len) };
                    dst.copy_from_slice(frame);
                    Ok(Some(len))
                }
                None => Err(NetError::FrameTooLong {
                    len,
                    max: out.len(),
                }),
            },
            _ => Err(NetError::Protocol(Protocol::RxLength {
                len,
                buffer: RX_BUFFER_BYTES,
            })),
        };
        self.post_rx(slot)?;
        result
    }

    /// Returns completed transmit buffers to the free pool.
    fn reclaim(&mut self) -> Result<(), NetError> {
        // At most one pass over the ring, whatever the device keeps adding.
        for _ in 0..QUEUE_SIZE {
            let Some(token) = self.dev.poll_transmit() else {
                return Ok(());
            };
            let Some(slot) = self.tx.lookup(token) else {
                return Err(NetError::Protocol(Protocol::UnknownId {
                    queue: TRANSMIT_QUEUE,
                    id: token,
                }));
            };
            let ptr = self.tx_pool.buffer(slot);
            let len = usize::from(self.tx_len[slot]);
            // SAFETY: the slice is the buffer queued under `token`, with the
            // length it was queued with, as `transmit_complete` requires.
            // The device only read it and has completed it (or, if the used
            // ring changed under us, nothing is popped and an error
            // returned).
            unsafe {
                self.dev
                    .transmit_complete(token, core::slice::from_raw_parts(ptr.as_ptr(), len))
            }?;
            self.tx.unbind(token);
            self.tx.release(slot);
        }
        Ok(())
    }

    /// Queues a copy of `frame`; see [`NetPort::send`](super::NetPort::send).
    pub(crate) fn send(&mut self, frame: &[u8]) -> Result<bool, NetError> {
        if frame.len() > MAX_FRAME_BYTES {
            return Err(NetError::FrameTooLong {
                len: frame.len(),
                max: MAX_FRAME_BYTES,
            });
        }
        self.reclaim()?;
        let Some(slot) = self.tx.take_free() else {
            return Ok(false);
        };
        let ptr = self.tx_pool.buffer(slot);
        // SAFETY: buffer `slot` was free, so the device does not hold it and
        // no other slice of it exists; it is `TX_BUFFER_BYTES` long.
        let buf = unsafe { core::slice::from_raw_parts_mut(ptr.as_ptr(), TX_BUFFER_BYTES) };
        let queued = match self.dev.fill_buffer_header(buf) {
            Ok(header) => match buf.get_mut(header..header + frame.len()) {
                Some(body) => {
                    body.copy_from_slice(frame);
                    Ok(header + frame.len())
                }
                None => Err(NetError::FrameTooLong {
                    len: frame.len(),
                    max: TX_BUFFER_BYTES - header,
                }),
            },
            Err(e) => Err(e.into()),
        };
        let len = match queued {
            Ok(len) => len,
            Err(e) => {
                self.tx.release(slot);
                return Err(e);
            }
        };
        // SAFETY: the buffer stays in the pool, which outlives the device
        // (field order), and is not touched until `reclaim` finds it in the
        // used ring.
        match unsafe { self.dev.transmit_begin(&buf[..len]) } {
            Ok(token) if self.tx.bind(token, slot) => {
                // `len` <= TX_BUFFER_BYTES, which fits in u16 (asserted).
                self.tx_len[slot] = len as u16;
                Ok(true)
            }
            Ok(token) => Err(NetError::Protocol(Protocol::UnknownId {
                queue: TRANSMIT_QUEUE,
                id: token,
            })),
            Err(virtio_drivers::Error::QueueFull) => {
                self.tx.release(slot);
                Ok(false)
            }
            Err(e) => {
                self.tx.release(slot);
                Err(e.into())
            }
        }
    }

    /// Transmit buffers free right now (after reclaiming completed ones); a
    /// [`Driver::send`] succeeds if this is non-zero.
    pub(crate) fn tx_space(&mut self) -> usize {
        // A device error leaves its entries in flight; the next `send`
        // reports it.
        let _ = self.reclaim();
        self.tx.free()
    }

    /// Transmissions queued and not yet completed.
    pub(crate) fn tx_in_flight(&mut self) -> usize {
        let _ = self.reclaim();
        self.tx.bound()
    }
}
