//! The virtio-mmio transport, version 2 ("modern") register file (virtio 1.2
//! §4.2.2, initialization §4.2.3 and §3.1.1). The hypervisor decodes a guest's
//! access to the device's window into `read(offset, size)` or
//! `write(offset, size, value)`; every value the driver sets is checked, and a
//! driver that breaks the register rules gets a named [`MmioError`]. Device
//! models ([`Device`]) only see their configuration space.

use super::features::{OFFERABLE_FEATURES, VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1};
use super::queue::{MAX_QUEUE_SIZE, QueueLayout, QueueLimits, SplitQueue};
use registers::{Direction, Register};

mod error;
mod registers;
#[cfg(test)]
mod tests;

pub use error::MmioError;
pub use registers::{DeviceStatus, InterruptStatus, offset};

/// `MagicValue`: "virt" in little-endian.
pub const MAGIC_VALUE: u32 = 0x7472_6976;
/// `Version` of the modern (non-legacy) interface.
pub const MMIO_VERSION: u32 = 2;
/// `VendorID` Corral devices report ("CRRL").
pub const VENDOR_ID: u32 = u32::from_le_bytes(*b"CRRL");
/// Where the device-specific configuration space starts.
pub const CONFIG_OFFSET: u64 = 0x100;
/// Size of one device's MMIO window (registers plus configuration space).
pub const MMIO_REGION_SIZE: u64 = 0x200;
/// Most queues one transport holds.
pub const MAX_QUEUES: usize = 4;
/// Default `QueueNumMax`.
pub const DEFAULT_QUEUE_NUM_MAX: u16 = 256;

/// Width of every control register access (§4.2.2.2).
const REGISTER_BYTES: u8 = 4;
/// Widths a configuration-space access may have (8-, 16- and 32-bit fields;
/// 64-bit fields are read as two 32-bit halves, §4.2.2.2).
const CONFIG_ACCESS_BYTES: [u8; 3] = [1, 2, 4];
/// Bits in one 32-bit half of a 64-bit value (feature words, queue addresses).
const HALF_BITS: u32 = 32;
/// `SHMLen*` and `SHMBase*` of a region that does not exist: all ones.
const SHM_ABSENT: u32 = u32::MAX;

/// A device model behind the transport: its identity, features, queue count
/// and configuration space. Offsets passed in are inside `0 ..
/// config_len()`; the transport rejects anything else.
pub trait Device {
    /// Virtio device ID (§5: 1 network, 3 console, ...).
    fn device_id(&self) -> u32;
    /// Feature bits offered (device-specific and device-independent).
    fn features(&self) -> u64;
    /// Number of virtqueues.
    fn num_queues(&self) -> u16;
    /// Size of the configuration space in bytes.
    fn config_len(&self) -> usize;
    /// Reads configuration bytes at `offset`.
    fn read_config(&self, offset: usize, data: &mut [u8]);
    /// The driver writes configuration bytes at `offset`.
    fn write_config(&mut self, offset: usize, data: &[u8]);
    /// The driver reset the device.
    fn reset(&mut self) {}
}

/// What a write asks of the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteEffect {
    /// Nothing.
    None,
    /// New buffers in this ready queue (sent after `DRIVER_OK` only).
    Notify(u16),
    /// The driver reset the device (status 0): queues are gone.
    Reset,
    /// The driver set `DRIVER_OK`: the ready queues may be used (a caller
    /// with the guest's memory at hand can check them first with
    /// [`SplitQueue::check_rings`]).
    DriverOk,
    /// The driver asked for features the device refused (unoffered bits or
    /// no `VIRTIO_F_VERSION_1`); `FEATURES_OK` stays clear.
    FeaturesRejected,
    /// The driver set `FAILED`.
    DriverFailed,
    /// After `DRIVER_OK`, the driver turned a queue off or on: a caller
    /// that uses the queues must stop, and check them again before it
    /// goes on.
    QueuesChanged,
}

/// The transport's settings, chosen by the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// Size of the guest's physical address space: rings must end below it.
    pub memory_size: u64,
    /// `QueueNumMax` for every queue.
    pub queue_num_max: u16,
    /// Chain caps for the queues.
    pub limits: QueueLimits,
}

impl TransportConfig {
    /// Defaults for a guest whose memory spans `0 .. memory_size`.
    pub fn new(memory_size: u64) -> Self {
        TransportConfig {
            memory_size,
            queue_num_max: DEFAULT_QUEUE_NUM_MAX,
            limits: QueueLimits::default(),
        }
    }
}

/// The per-queue registers and, once ready, the queue.
#[derive(Clone, Debug, Default)]
struct QueueRegs {
    num: u32,
    desc: u64,
    driver: u64,
    device: u64,
    queue: Option<SplitQueue>,
}

/// Replaces the low or high 32 bits of `reg`.
fn set_half(reg: &mut u64, high: bool, value: u32) {
    let shift = if high { HALF_BITS } else { 0 };
    *reg = (*reg & !(u64::from(u32::MAX) << shift)) | (u64::from(value) << shift);
}

/// One virtio-mmio device: the register state and the device model.
pub struct Transport<D: Device> {
    device: D,
    config: TransportConfig,
    num_queues: u16,
    status: DeviceStatus,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    /// A nonzero feature word above bit 63 was written.
    driver_features_beyond: bool,
    queue_sel: u32,
    queues: [QueueRegs; MAX_QUEUES],
    interrupt_status: InterruptStatus,
    config_generation: u32,
}

impl<D: Device> Transport<D> {
    /// A device just after reset.
    pub fn new(device: D, config: TransportConfig) -> Self {
        let config = TransportConfig {
            queue_num_max: config.queue_num_max.min(MAX_QUEUE_SIZE),
            ..config
        };
        let num_queues = device.num_queues().min(MAX_QUEUES as u16);
        Transport {
            device,
            config,
            num_queues,
            status: DeviceStatus::empty(),
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            driver_features_beyond: false,
            queue_sel: 0,
            queues: core::array::from_fn(|_| QueueRegs::default()),
            interrupt_status: InterruptStatus::empty(),
            config_generation: 0,
        }
    }

    /// The device model.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device model, mutably.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The `Status` register.
    pub fn status(&self) -> DeviceStatus {
        self.status
    }

    /// Whether the driver set `DRIVER_OK` (and has not failed).
    pub fn driver_ok(&self) -> bool {
        self.status.contains(DeviceStatus::DRIVER_OK) && !self.status.contains(DeviceStatus::FAILED)
    }

    /// The features both sides agreed on (0 before `FEATURES_OK`).
    pub fn negotiated_features(&self) -> u64 {
        if self.status.contains(DeviceStatus::FEATURES_OK) {
            self.driver_features
        } else {
            0
        }
    }

    /// What the device offers: the model's bits the transport can honour.
    pub fn offered_features(&self) -> u64 {
        self.device.features() & OFFERABLE_FEATURES
    }

    /// Queue `index`, if the driver made it ready.
    pub fn queue(&self, index: u16) -> Option<&SplitQueue> {
        self.queues.get(usize::from(index))?.queue.as_ref()
    }

    /// Queue `index`, mutably, if the driver made it ready.
    pub fn queue_mut(&mut self, index: u16) -> Option<&mut SplitQueue> {
        self.queues.get_mut(usize::from(index))?.queue.as_mut()
    }

    /// The `InterruptStatus` register.
    pub fn interrupt_status(&self) -> InterruptStatus {
        self.interrupt_status
    }

    /// Records a used-buffer notification in `InterruptStatus` (delivering
    /// the interrupt is the caller's business).
    pub fn signal_used_buffer(&mut self) {
        self.interrupt_status.insert(InterruptStatus::USED_BUFFER);
    }

    /// The device model changed its configuration: a new generation and a
    /// configuration change notification.
    pub fn config_changed(&mut self) {
        self.config_generation = self.config_generation.wrapping_add(1);
        self.interrupt_status.insert(InterruptStatus::CONFIG_CHANGE);
    }

    fn reset(&mut self) {
        self.status = DeviceStatus::empty();
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.driver_features_beyond = false;
        self.queue_sel = 0;
        self.queues = core::array::from_fn(|_| QueueRegs::default());
        self.interrupt_status = InterruptStatus::empty();
        self.device.reset();
    }

    /// Checks a control-register access and decodes its register.
    fn register(offset: u64, size: u8) -> Result<Register, MmioError> {
        if size != REGISTER_BYTES {
            return Err(MmioError::BadAccessSize { offset, size });
        }
        if !offset.is_multiple_of(u64::from(REGISTER_BYTES)) {
            return Err(MmioError::UnalignedAccess { offset });
        }
        Register::decode(offset).ok_or(MmioError::UnknownRegister { offset })
    }

    /// The configuration-space range of an access, checked.
    fn config_range(&self, offset: u64, size: u8) -> Result<(usize, usize), MmioError> {
        if !CONFIG_ACCESS_BYTES.contains(&size) {
            return Err(MmioError::BadAccessSize { offset, size });
        }
        let limit = (self.device.config_len() as u64).min(MMIO_REGION_SIZE - CONFIG_OFFSET);
        let start = offset - CONFIG_OFFSET;
        if start + u64::from(size) > limit {
            return Err(MmioError::ConfigOutOfRange { offset, size });
        }
        Ok((start as usize, usize::from(size)))
    }

    /// The selected queue's index, if the device has it.
    fn selected(&self) -> Option<u16> {
        u16::try_from(self.queue_sel)
            .ok()
            .filter(|&q| q < self.num_queues)
    }

    /// The guest reads `size` bytes at `offset` in the device's window.
    pub fn read(&self, offset: u64, size: u8) -> Result<u32, MmioError> {
        if offset >= CONFIG_OFFSET {
            let (start, len) = self.config_range(offset, size)?;
            let mut bytes = [0u8; REGISTER_BYTES as usize];
            self.device.read_config(start, &mut bytes[..len]);
            return Ok(u32::from_le_bytes(bytes));
        }
        let reg = Self::register(offset, size)?;
        if reg.direction() == Direction::Write {
            return Err(MmioError::WriteOnlyRegister { offset });
        }
        let queue = self.selected().map(|q| &self.queues[usize::from(q)]);
        Ok(match reg {
            Register::MagicValue => MAGIC_VALUE,
            Register::Version => MMIO_VERSION,
            Register::DeviceId => self.device.device_id(),
            Register::VendorId => VENDOR_ID,
            Register::DeviceFeatures => match self.device_features_sel {
                0 => self.offered_features() as u32,
                1 => (self.offered_features() >> HALF_BITS) as u32,
                _ => 0,
            },
            Register::QueueNumMax => queue.map_or(0, |_| self.config.queue_num_max.into()),
            Register::QueueReady => queue.map_or(0, |q| u32::from(q.queue.is_some())),
            Register::InterruptStatus => self.interrupt_status.bits(),
            Register::Status => self.status.bits(),
            Register::ShmLenLow
            | Register::ShmLenHigh
            | Register::ShmBaseLow
            | Register::ShmBaseHigh => SHM_ABSENT,
            Register::ConfigGeneration => self.config_generation,
            // Write-only registers were refused above.
            _ => return Err(MmioError::WriteOnlyRegister { offset }),
        })
    }

    /// The guest writes the low `size` bytes of `value` at `offset` in the
    /// device's window.
    pub fn write(&mut self, offset: u64, size: u8, value: u32) -> Result<WriteEffect, MmioError> {
        if offset >= CONFIG_OFFSET {
            let (start, len) = self.config_range(offset, size)?;
            self.device.write_config(start, &value.to_le_bytes()[..len]);
            return Ok(WriteEffect::None);
        }
        let reg = Self::register(offset, size)?;
        if reg.direction() == Direction::Read {
            return Err(MmioError::ReadOnlyRegister { offset });
        }
        match reg {
            Register::DeviceFeaturesSel => self.device_features_sel = value,
            Register::DriverFeaturesSel => self.driver_features_sel = value,
            Register::DriverFeatures => self.write_driver_features(value)?,
            Register::QueueSel => self.queue_sel = value,
            Register::QueueNum => {
                let max = self.config.queue_num_max;
                let (queue, regs) = self.idle_queue()?;
                if value != 0 && (!value.is_power_of_two() || value > u32::from(max)) {
                    return Err(MmioError::QueueNumInvalid {
                        queue,
                        num: value,
                        max,
                    });
                }
                regs.num = value;
            }
            Register::QueueDescLow | Register::QueueDescHigh => {
                let high = reg == Register::QueueDescHigh;
                set_half(&mut self.idle_queue()?.1.desc, high, value);
            }
            Register::QueueDriverLow | Register::QueueDriverHigh => {
                let high = reg == Register::QueueDriverHigh;
                set_half(&mut self.idle_queue()?.1.driver, high, value);
            }
            Register::QueueDeviceLow | Register::QueueDeviceHigh => {
                let high = reg == Register::QueueDeviceHigh;
                set_half(&mut self.idle_queue()?.1.device, high, value);
            }
            Register::QueueReady => {
                let before = self
                    .selected()
                    .map(|q| self.queues[usize::from(q)].queue.is_some());
                self.write_queue_ready(value)?;
                let after = self
                    .selected()
                    .map(|q| self.queues[usize::from(q)].queue.is_some());
                if self.driver_ok() && before != after {
                    return Ok(WriteEffect::QueuesChanged);
                }
            }
            Register::QueueNotify => return self.notify(value),
            Register::InterruptAck => {
                if value & !InterruptStatus::all().bits() != 0 {
                    return Err(MmioError::InterruptAckReserved { value });
                }
                self.interrupt_status
                    .remove(InterruptStatus::from_bits_truncate(value));
            }
            Register::Status => return self.write_status(value),
            // No shared memory regions: the selection is ignored.
            Register::ShmSel => {}
            // Read-only registers were refused above.
            _ => return Err(MmioError::ReadOnlyRegister { offset }),
        }
        Ok(WriteEffect::None)
    }

    /// The selected queue, which must exist and not be ready.
    fn idle_queue(&mut self) -> Result<(u16, &mut QueueRegs), MmioError> {
        let queue = self.selected().ok_or(MmioError::NoSuchQueue {
            queue: self.queue_sel,
        })?;
        let regs = &mut self.queues[usize::from(queue)];
        if regs.queue.is_some() {
            return Err(MmioError::QueueBusy { queue });
        }
        Ok((queue, regs))
    }

    fn write_driver_features(&mut self, value: u32) -> Result<(), MmioError> {
        if self.status.contains(DeviceStatus::FEATURES_OK) {
            return Err(MmioError::FeaturesLocked);
        }
        match self.driver_features_sel {
            0 => set_half(&mut self.driver_features, false, value),
            1 => set_half(&mut self.driver_features, true, value),
            _ => self.driver_features_beyond |= value != 0,
        }
        Ok(())
    }

    /// Whether the driver's features can be accepted: only offered bits,
    /// and `VIRTIO_F_VERSION_1` among them.
    fn features_acceptable(&self) -> bool {
        !self.driver_features_beyond
            && self.driver_features & !self.offered_features() == 0
            && self.driver_features & VIRTIO_F_VERSION_1 != 0
    }

    fn write_queue_ready(&mut self, value: u32) -> Result<(), MmioError> {
        let queue = self.selected().ok_or(MmioError::NoSuchQueue {
            queue: self.queue_sel,
        })?;
        let regs = &mut self.queues[usize::from(queue)];
        match value {
            0 => {
                regs.queue = None;
                return Ok(());
            }
            1 if regs.queue.is_some() => return Ok(()),
            1 => {}
            _ => return Err(MmioError::QueueReadyValue { value }),
        }
        if !self.status.contains(DeviceStatus::FEATURES_OK) {
            return Err(MmioError::QueueBeforeFeaturesOk { queue });
        }
        let max = self.config.queue_num_max;
        let num = regs.num;
        if num == 0 || !num.is_power_of_two() || num > u32::from(max) {
            return Err(MmioError::QueueNumInvalid { queue, num, max });
        }
        let layout = QueueLayout {
            size: num as u16,
            desc_table: regs.desc,
            avail_ring: regs.driver,
            used_ring: regs.device,
        };
        let event_idx = self.driver_features & VIRTIO_F_EVENT_IDX != 0;
        let split = SplitQueue::new(layout, event_idx, self.config.limits)
            .and_then(|q| layout.check_within(self.config.memory_size).map(|()| q))
            .map_err(|error| MmioError::Queue { queue, error })?;
        regs.queue = Some(split);
        Ok(())
    }

    fn notify(&self, value: u32) -> Result<WriteEffect, MmioError> {
        let queue = u16::try_from(value)
            .ok()
            .filter(|&q| q < self.num_queues)
            .ok_or(MmioError::NoSuchQueue { queue: value })?;
        // Before DRIVER_OK the device may not use its queues (§2.1.2); a
        // notification for a queue that is not ready is spurious (§2.7.10).
        if self.driver_ok() && self.queues[usize::from(queue)].queue.is_some() {
            Ok(WriteEffect::Notify(queue))
        } else {
            Ok(WriteEffect::None)
        }
    }

    fn write_status(&mut self, value: u32) -> Result<WriteEffect, MmioError> {
        if value == 0 {
            self.reset();
            return Ok(WriteEffect::Reset);
        }
        let new = DeviceStatus::from_bits(value)
            .filter(|s| !s.contains(DeviceStatus::DEVICE_NEEDS_RESET))
            .ok_or(MmioError::StatusBitsInvalid { value })?;
        let old = self.status;
        if !new.contains(old) {
            return Err(MmioError::StatusBitCleared {
                old: old.bits(),
                new: value,
            });
        }
        let added = new.difference(old);
        if added.contains(DeviceStatus::FAILED) {
            self.status = new;
            return Ok(WriteEffect::DriverFailed);
        }
        let needs = [
            (DeviceStatus::DRIVER, DeviceStatus::ACKNOWLEDGE),
            (DeviceStatus::FEATURES_OK, DeviceStatus::DRIVER),
            (DeviceStatus::DRIVER_OK, DeviceStatus::FEATURES_OK),
        ];
        if needs
            .iter()
            .any(|&(bit, before)| new.contains(bit) && !new.contains(before))
        {
            return Err(MmioError::StatusOutOfOrder { value });
        }
        if added.contains(DeviceStatus::FEATURES_OK) && !self.features_acceptable() {
            if new.contains(DeviceStatus::DRIVER_OK) {
                return Err(MmioError::StatusOutOfOrder { value });
            }
            self.status = new.difference(DeviceStatus::FEATURES_OK);
            return Ok(WriteEffect::FeaturesRejected);
        }
        self.status = new;
        if added.contains(DeviceStatus::DRIVER_OK) {
            return Ok(WriteEffect::DriverOk);
        }
        Ok(WriteEffect::None)
    }
}
