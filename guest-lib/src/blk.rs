//! A polled virtio-blk driver (feature `blk`): the disks the boot info lists (slots of kind `Block`), on `virtio-drivers`' block driver; each request is one notification, which the hypervisor serves within that exit.
//!
//! Sectors are 512 bytes (virtio's unit); a request must be whole blocks of
//! the disk's block size at a block boundary, or the device answers with an
//! I/O error (returned here as [`BlkError::Virtio`]).

use crate::BootInfo;
use crate::virtio::CorralHal;
use core::fmt;
use core::ptr::NonNull;
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::transport::mmio::{MmioError, MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use vmm_abi::corral::devices::DeviceKind;
use vmm_abi::corral::layout::{DEVICE_STRIDE, device_gpa};

pub use virtio_drivers::device::blk::SECTOR_SIZE;

/// Why a disk cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlkError {
    /// The boot info lists fewer disks.
    NoSuchDisk(usize),
    /// The slot's register page is not a usable virtio-mmio header.
    Mmio(MmioError),
    /// The slot holds another kind of virtio device.
    NotBlock(u32),
    /// `virtio-drivers` reported an error (an I/O error from the device,
    /// for a request the disk refused).
    Virtio(virtio_drivers::Error),
}

impl fmt::Display for BlkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlkError::NoSuchDisk(n) => write!(f, "the boot info lists no disk {n}"),
            BlkError::Mmio(e) => write!(f, "bad virtio-mmio header: {e}"),
            BlkError::NotBlock(id) => write!(f, "not a block device (virtio device ID {id})"),
            BlkError::Virtio(e) => write!(f, "virtio error: {e}"),
        }
    }
}

impl From<virtio_drivers::Error> for BlkError {
    fn from(e: virtio_drivers::Error) -> Self {
        BlkError::Virtio(e)
    }
}

/// One open disk.
pub struct Disk {
    dev: VirtIOBlk<CorralHal, MmioTransport<'static>>,
}

impl Disk {
    /// Opens disk `n` (0 = the first the boot info lists). Open each disk
    /// once: a second open of the same disk resets it under the first.
    pub fn open(info: &BootInfo, n: usize) -> Result<Disk, BlkError> {
        let slot = info
            .devices
            .iter()
            .enumerate()
            .filter(|&(_, &k)| k == DeviceKind::Block)
            .map(|(slot, _)| slot)
            .nth(n)
            .ok_or(BlkError::NoSuchDisk(n))?;
        let header = NonNull::new(device_gpa(slot) as usize as *mut VirtIOHeader)
            .ok_or(BlkError::NoSuchDisk(n))?;
        // SAFETY: the boot info says slot `slot` is a virtio-blk device, so
        // the hypervisor provides a virtio-mmio register page there
        // (identity-mapped, outside guest RAM) for the VM's whole life,
        // hence `'static`; the caller opens each disk once. Accesses are the
        // single `mov`s of `crate::mmio`, which the hypervisor emulates.
        let transport = unsafe { MmioTransport::new(header, DEVICE_STRIDE as usize) }
            .map_err(BlkError::Mmio)?;
        if transport.device_type() != DeviceType::Block {
            return Err(BlkError::NotBlock(transport.device_type() as u32));
        }
        Ok(Disk {
            dev: VirtIOBlk::new(transport)?,
        })
    }

    /// Its size in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.dev.capacity()
    }

    /// Reads `buf.len()` bytes (whole sectors) from `sector` on.
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlkError> {
        Ok(self.dev.read_blocks(sector as usize, buf)?)
    }

    /// Writes `buf` (whole sectors) from `sector` on.
    pub fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlkError> {
        Ok(self.dev.write_blocks(sector as usize, buf)?)
    }

    /// Its identity string (what the hypervisor calls it).
    pub fn id(&mut self) -> Result<([u8; 20], usize), BlkError> {
        let mut id = [0u8; 20];
        let n = self.dev.device_id(&mut id)?;
        Ok((id, n))
    }
}
