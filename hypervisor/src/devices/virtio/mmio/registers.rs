//! The virtio-mmio register file (virtio 1.2 §4.2.2): offsets, which way
//! each register may be accessed, and the `Status` and `InterruptStatus`
//! bits. An offset is decoded into a [`Register`] once, then matched on.

use bitflags::bitflags;

/// Register offsets (§4.2.2, table "MMIO Device Register Layout").
pub mod offset {
    /// R: 0x74726976.
    pub const MAGIC_VALUE: u64 = 0x000;
    /// R: 2.
    pub const VERSION: u64 = 0x004;
    /// R: the device type.
    pub const DEVICE_ID: u64 = 0x008;
    /// R.
    pub const VENDOR_ID: u64 = 0x00c;
    /// R: 32 feature bits chosen by `DeviceFeaturesSel`.
    pub const DEVICE_FEATURES: u64 = 0x010;
    /// W.
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    /// W: 32 feature bits chosen by `DriverFeaturesSel`.
    pub const DRIVER_FEATURES: u64 = 0x020;
    /// W.
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    /// W: the queue the queue registers apply to.
    pub const QUEUE_SEL: u64 = 0x030;
    /// R.
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    /// W.
    pub const QUEUE_NUM: u64 = 0x038;
    /// RW.
    pub const QUEUE_READY: u64 = 0x044;
    /// W: the queue index.
    pub const QUEUE_NOTIFY: u64 = 0x050;
    /// R.
    pub const INTERRUPT_STATUS: u64 = 0x060;
    /// W.
    pub const INTERRUPT_ACK: u64 = 0x064;
    /// RW: device status; writing 0 resets.
    pub const STATUS: u64 = 0x070;
    /// W.
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    /// W.
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    /// W.
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    /// W.
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    /// W.
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    /// W.
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    /// W.
    pub const SHM_SEL: u64 = 0x0ac;
    /// R.
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    /// R.
    pub const SHM_LEN_HIGH: u64 = 0x0b4;
    /// R.
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    /// R.
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    /// R.
    pub const CONFIG_GENERATION: u64 = 0x0fc;
}

bitflags! {
    /// The `Status` register (§2.1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct DeviceStatus: u32 {
        /// The guest found the device.
        const ACKNOWLEDGE = 1;
        /// The guest has a driver for it.
        const DRIVER = 2;
        /// The driver is set up; the device may use its queues.
        const DRIVER_OK = 4;
        /// Feature negotiation is complete (kept clear by the device if it
        /// refuses the driver's features).
        const FEATURES_OK = 8;
        /// Set by the device only.
        const DEVICE_NEEDS_RESET = 64;
        /// The driver gave up on the device.
        const FAILED = 128;
    }
}

bitflags! {
    /// The `InterruptStatus` register (§4.2.2).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct InterruptStatus: u32 {
        /// A used buffer notification.
        const USED_BUFFER = 1;
        /// A configuration change notification.
        const CONFIG_CHANGE = 2;
    }
}

/// The registers, decoded from an offset once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Register {
    MagicValue,
    Version,
    DeviceId,
    VendorId,
    DeviceFeatures,
    DeviceFeaturesSel,
    DriverFeatures,
    DriverFeaturesSel,
    QueueSel,
    QueueNumMax,
    QueueNum,
    QueueReady,
    QueueNotify,
    InterruptStatus,
    InterruptAck,
    Status,
    QueueDescLow,
    QueueDescHigh,
    QueueDriverLow,
    QueueDriverHigh,
    QueueDeviceLow,
    QueueDeviceHigh,
    ShmSel,
    ShmLenLow,
    ShmLenHigh,
    ShmBaseLow,
    ShmBaseHigh,
    ConfigGeneration,
}

/// Which way a register may be accessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Direction {
    Read,
    Write,
    ReadWrite,
}

impl Register {
    /// The register at `off`, if any. The legacy registers (GuestPageSize,
    /// QueueAlign, QueuePFN) and QueueReset (`VIRTIO_F_RING_RESET` is never
    /// offered) are not part of this register file.
    pub(super) fn decode(off: u64) -> Option<Register> {
        use Register::*;
        Some(match off {
            offset::MAGIC_VALUE => MagicValue,
            offset::VERSION => Version,
            offset::DEVICE_ID => DeviceId,
            offset::VENDOR_ID => VendorId,
            offset::DEVICE_FEATURES => DeviceFeatures,
            offset::DEVICE_FEATURES_SEL => DeviceFeaturesSel,
            offset::DRIVER_FEATURES => DriverFeatures,
            offset::DRIVER_FEATURES_SEL => DriverFeaturesSel,
            offset::QUEUE_SEL => QueueSel,
            offset::QUEUE_NUM_MAX => QueueNumMax,
            offset::QUEUE_NUM => QueueNum,
            offset::QUEUE_READY => QueueReady,
            offset::QUEUE_NOTIFY => QueueNotify,
            offset::INTERRUPT_STATUS => InterruptStatus,
            offset::INTERRUPT_ACK => InterruptAck,
            offset::STATUS => Status,
            offset::QUEUE_DESC_LOW => QueueDescLow,
            offset::QUEUE_DESC_HIGH => QueueDescHigh,
            offset::QUEUE_DRIVER_LOW => QueueDriverLow,
            offset::QUEUE_DRIVER_HIGH => QueueDriverHigh,
            offset::QUEUE_DEVICE_LOW => QueueDeviceLow,
            offset::QUEUE_DEVICE_HIGH => QueueDeviceHigh,
            offset::SHM_SEL => ShmSel,
            offset::SHM_LEN_LOW => ShmLenLow,
            offset::SHM_LEN_HIGH => ShmLenHigh,
            offset::SHM_BASE_LOW => ShmBaseLow,
            offset::SHM_BASE_HIGH => ShmBaseHigh,
            offset::CONFIG_GENERATION => ConfigGeneration,
            _ => return None,
        })
    }

    pub(super) fn direction(self) -> Direction {
        use Register::*;
        match self {
            MagicValue | Version | DeviceId | VendorId | DeviceFeatures | QueueNumMax
            | InterruptStatus | ShmLenLow | ShmLenHigh | ShmBaseLow | ShmBaseHigh
            | ConfigGeneration => Direction::Read,
            QueueReady | Status => Direction::ReadWrite,
            DeviceFeaturesSel | DriverFeatures | DriverFeaturesSel | QueueSel | QueueNum
            | QueueNotify | InterruptAck | QueueDescLow | QueueDescHigh | QueueDriverLow
            | QueueDriverHigh | QueueDeviceLow | QueueDeviceHigh | ShmSel => Direction::Write,
        }
    }

    fn name(self) -> &'static str {
        use Register::*;
        match self {
            MagicValue => "MagicValue",
            Version => "Version",
            DeviceId => "DeviceID",
            VendorId => "VendorID",
            DeviceFeatures => "DeviceFeatures",
            DeviceFeaturesSel => "DeviceFeaturesSel",
            DriverFeatures => "DriverFeatures",
            DriverFeaturesSel => "DriverFeaturesSel",
            QueueSel => "QueueSel",
            QueueNumMax => "QueueNumMax",
            QueueNum => "QueueNum",
            QueueReady => "QueueReady",
            QueueNotify => "QueueNotify",
            InterruptStatus => "InterruptStatus",
            InterruptAck => "InterruptACK",
            Status => "Status",
            QueueDescLow => "QueueDescLow",
            QueueDescHigh => "QueueDescHigh",
            QueueDriverLow => "QueueDriverLow",
            QueueDriverHigh => "QueueDriverHigh",
            QueueDeviceLow => "QueueDeviceLow",
            QueueDeviceHigh => "QueueDeviceHigh",
            ShmSel => "SHMSel",
            ShmLenLow => "SHMLenLow",
            ShmLenHigh => "SHMLenHigh",
            ShmBaseLow => "SHMBaseLow",
            ShmBaseHigh => "SHMBaseHigh",
            ConfigGeneration => "ConfigGeneration",
        }
    }
}

/// The register name at `off`, for messages.
pub(super) fn name_at(off: u64) -> &'static str {
    Register::decode(off).map_or("?", Register::name)
}
