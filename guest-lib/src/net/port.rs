//! [`NetPort`]: one of the VM's virtio-net ports, found through the boot
//! info and driven over `virtio-drivers`' MMIO transport at the port's
//! device slot.

use super::NetError;
use super::driver::Driver;
use crate::BootInfo;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, Ordering};
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use vmm_abi::corral::devices::DeviceKind;
use vmm_abi::corral::layout::{DEVICE_STRIDE, MAX_DEVICES, device_gpa};

/// One bit per device slot that has a live driver, so no two transports
/// ever drive the same register page.
static OPEN_SLOTS: AtomicU8 = AtomicU8::new(0);
const _: () = assert!(MAX_DEVICES <= u8::BITS as usize);

/// Marks `slot` as driven; `false` if it already was.
fn claim(slot: usize) -> bool {
    let bit = 1u8 << slot;
    OPEN_SLOTS.fetch_or(bit, Ordering::AcqRel) & bit == 0
}

/// Marks `slot` as free again.
fn release(slot: usize) {
    OPEN_SLOTS.fetch_and(!(1u8 << slot), Ordering::AcqRel);
}

/// A virtio-net port in polled mode: the guest polls its rings and the
/// device never interrupts (see the [module docs](super)).
///
/// Receive buffers are all posted when the port opens; transmissions are
/// copied into a fixed pool, so neither path allocates. Dropping the port
/// resets the device and frees its memory.
pub struct NetPort {
    driver: Driver<MmioTransport<'static>>,
    port: usize,
}

impl NetPort {
    /// Opens the `port`th virtio-net port in the boot info.
    pub fn open(info: &BootInfo, port: usize) -> Result<NetPort, NetError> {
        // Net ports come first: port N is in slot N.
        if info.devices.get(port) != Some(&DeviceKind::Net) {
            let ports = info
                .devices
                .iter()
                .take_while(|&&kind| kind == DeviceKind::Net)
                .count();
            return Err(NetError::NoSuchPort { port, ports });
        }
        if !claim(port) {
            return Err(NetError::InUse { port });
        }
        Self::open_claimed(port).inspect_err(|_| release(port))
    }

    /// Opens the port in slot `port`, already claimed.
    fn open_claimed(port: usize) -> Result<NetPort, NetError> {
        let header = device_gpa(port) as usize as *mut VirtIOHeader;
        let header = NonNull::new(header).ok_or(NetError::NoSuchPort { port, ports: 0 })?;
        // SAFETY: the boot info says slot `port` is a virtio-net device, so
        // the hypervisor provides a virtio-mmio register page at its address
        // (page aligned, identity-mapped by the guest page tables, outside
        // guest RAM so it aliases no Rust object) for as long as this VM
        // runs, hence `'static`. `claim` makes this the only transport for
        // the slot until the port is dropped. The transport accesses it with
        // volatile 1-, 2- and 4-byte loads and stores, which the hypervisor
        // emulates.
        let transport = unsafe { MmioTransport::new(header, DEVICE_STRIDE as usize) }
            .map_err(|error| NetError::Mmio { port, error })?;
        Ok(NetPort {
            driver: Driver::new(transport, port)?,
            port,
        })
    }

    /// The port number (also its device slot).
    pub fn port(&self) -> usize {
        self.port
    }

    /// The port's MAC address, as the device reports it
    /// (`vmm_abi::corral::devices::port_mac` of this VM and port).
    pub fn mac(&self) -> [u8; 6] {
        self.driver.mac()
    }

    /// Queues one frame (copied); `Ok(false)` if the transmit ring is full
    /// right now (the caller retries later). Reclaims completed
    /// transmissions first. Frames longer than
    /// [`MAX_FRAME_BYTES`](vmm_abi::corral::devices::MAX_FRAME_BYTES) are refused.
    pub fn send(&mut self, frame: &[u8]) -> Result<bool, NetError> {
        self.driver.send(frame)
    }

    /// The next received frame copied into `buf` (returns its length),
    /// re-posting the receive buffer; `Ok(None)` if none is waiting.
    ///
    /// A frame longer than `buf` is dropped with
    /// [`NetError::FrameTooLong`]; a `buf` of
    /// [`MAX_FRAME_BYTES`](vmm_abi::corral::devices::MAX_FRAME_BYTES) always fits
    /// what a link carries.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, NetError> {
        self.driver.recv(buf)
    }

    /// Whether a received frame is waiting: one read of the used ring, no
    /// VM exit. For spinning before [`Idle::idle`](super::Idle::idle).
    pub fn rx_pending(&self) -> bool {
        self.driver.rx_pending()
    }

    /// Transmit buffers free right now, after reclaiming completed ones;
    /// [`NetPort::send`] queues a frame if this is non-zero.
    pub fn tx_space(&mut self) -> usize {
        self.driver.tx_space()
    }

    /// Transmissions queued and not yet completed by the device.
    pub fn tx_in_flight(&mut self) -> usize {
        self.driver.tx_in_flight()
    }
}

impl Drop for NetPort {
    fn drop(&mut self) {
        // The driver field is dropped (device reset) right after this, with
        // nothing in between that could open the slot again.
        release(self.port);
    }
}
