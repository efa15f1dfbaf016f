//! The device bus: one register interface ([`BusDevice`]) for every device a guest reaches through a device page, looked up by slot ([`Bus`]).
//!
//! A device page is absent from the guest's EPT, so every access to it is
//! an EPT violation; the one dispatcher (`crate::dispatch`) decodes the
//! instruction and asks the VM's [`Bus`] for the device in that slot. A
//! device answers reads, takes writes, and says what a write asks of the
//! hypervisor as an [`Effect`]. New device kinds (a NIC queue's doorbell,
//! a block device, a second ABI's devices) plug in here.

use crate::devices::virtio::error::RingError;
use crate::devices::virtio::mmio::MmioError;

/// What a register write asks of the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing more.
    None,
    /// The device found one of its rings broken: the VM stops, and the
    /// stop names the slot and the error.
    Fault(RingError),
}

/// A device's register page as the emulation sees it.
pub trait BusDevice {
    /// Reads `size` bytes at `offset` in the page.
    fn read(&mut self, offset: u64, size: u8) -> Result<u32, MmioError>;
    /// Writes the low `size` bytes of `value` at `offset` in the page.
    fn write(&mut self, offset: u64, size: u8, value: u32) -> Result<Effect, MmioError>;
}

/// A VM's devices by slot.
pub trait Bus {
    /// Whether slot `slot` holds a device (an access to an empty slot's
    /// page is an EPT violation like any other).
    fn has_device(&self, slot: usize) -> bool;
    /// Runs `f` on the device in slot `slot`; `None` if there is none.
    fn with_device<R>(&mut self, slot: usize, f: impl FnOnce(&mut dyn BusDevice) -> R)
    -> Option<R>;
}

/// A bus with no devices.
pub struct NoDevices;

impl Bus for NoDevices {
    fn has_device(&self, _: usize) -> bool {
        false
    }

    fn with_device<R>(&mut self, _: usize, _: impl FnOnce(&mut dyn BusDevice) -> R) -> Option<R> {
        None
    }
}
