//! What a driver can do wrong through the virtio-mmio registers (virtio 1.2
//! §4.2.2.2 and §3.1.1), each with the text the guest is stopped with.

use super::registers::name_at;
use crate::devices::virtio::queue::QueueError;
use core::fmt;

/// A register access or value that breaks the virtio-mmio rules. Each stops
/// the guest with its [`Display`](fmt::Display) text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioError {
    /// A register access not 4 bytes wide, or a configuration access not 1,
    /// 2 or 4 bytes wide.
    BadAccessSize {
        /// Offset in the window.
        offset: u64,
        /// Bytes accessed.
        size: u8,
    },
    /// A register access not at a multiple of 4.
    UnalignedAccess {
        /// Offset in the window.
        offset: u64,
    },
    /// No register at this offset (reserved, legacy-only or unsupported).
    UnknownRegister {
        /// Offset in the window.
        offset: u64,
    },
    /// A read of a write-only register.
    WriteOnlyRegister {
        /// Offset in the window.
        offset: u64,
    },
    /// A write to a read-only register.
    ReadOnlyRegister {
        /// Offset in the window.
        offset: u64,
    },
    /// A configuration access beyond the device's configuration space.
    ConfigOutOfRange {
        /// Offset in the window.
        offset: u64,
        /// Bytes accessed.
        size: u8,
    },
    /// A queue register written, or a notification sent, for a queue the
    /// device does not have.
    NoSuchQueue {
        /// The queue index.
        queue: u32,
    },
    /// `QueueNum` zero (when made ready), not a power of two, or above
    /// `QueueNumMax`.
    QueueNumInvalid {
        /// The queue.
        queue: u16,
        /// The value written.
        num: u32,
        /// `QueueNumMax`.
        max: u16,
    },
    /// `QueueNum` or a queue address written while `QueueReady` is 1
    /// (§4.2.2.2).
    QueueBusy {
        /// The queue.
        queue: u16,
    },
    /// `QueueReady` written with something other than 0 or 1.
    QueueReadyValue {
        /// The value written.
        value: u32,
    },
    /// `QueueReady` set to 1 before `FEATURES_OK` was accepted.
    QueueBeforeFeaturesOk {
        /// The queue.
        queue: u16,
    },
    /// The queue the driver made ready is invalid.
    Queue {
        /// The queue.
        queue: u16,
        /// What is wrong with it.
        error: QueueError,
    },
    /// `Status` written with undefined bits or `DEVICE_NEEDS_RESET`.
    StatusBitsInvalid {
        /// The value written.
        value: u32,
    },
    /// `Status` written without a bit that was set (only 0 may clear).
    StatusBitCleared {
        /// Status before.
        old: u32,
        /// The value written.
        new: u32,
    },
    /// `Status` bits set out of order (§3.1.1): DRIVER without ACKNOWLEDGE,
    /// FEATURES_OK without DRIVER, DRIVER_OK without accepted FEATURES_OK.
    StatusOutOfOrder {
        /// The value written.
        value: u32,
    },
    /// `DriverFeatures` written after `FEATURES_OK`.
    FeaturesLocked,
    /// `InterruptACK` written with undefined bits.
    InterruptAckReserved {
        /// The value written.
        value: u32,
    },
}

impl fmt::Display for MmioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MmioError::BadAccessSize { offset, size } => write!(
                f,
                "{size}-byte access at {offset:#x}: registers take 4 bytes, configuration 1, 2 or 4"
            ),
            MmioError::UnalignedAccess { offset } => {
                write!(f, "unaligned register access at {offset:#x}")
            }
            MmioError::UnknownRegister { offset } => write!(f, "no register at {offset:#x}"),
            MmioError::WriteOnlyRegister { offset } => {
                write!(f, "read of write-only {} at {offset:#x}", name_at(offset))
            }
            MmioError::ReadOnlyRegister { offset } => {
                write!(f, "write to read-only {} at {offset:#x}", name_at(offset))
            }
            MmioError::ConfigOutOfRange { offset, size } => write!(
                f,
                "{size}-byte configuration access at {offset:#x} is beyond the configuration space"
            ),
            MmioError::NoSuchQueue { queue } => write!(f, "queue {queue} does not exist"),
            MmioError::QueueNumInvalid { queue, num, max } => write!(
                f,
                "queue {queue} size {num} is not a power of two from 1 to {max}"
            ),
            MmioError::QueueBusy { queue } => {
                write!(f, "queue {queue} set up while QueueReady is 1")
            }
            MmioError::QueueReadyValue { value } => {
                write!(f, "QueueReady written with {value} (0 or 1 only)")
            }
            MmioError::QueueBeforeFeaturesOk { queue } => {
                write!(
                    f,
                    "queue {queue} made ready before FEATURES_OK was accepted"
                )
            }
            MmioError::Queue { queue, error } => write!(f, "queue {queue}: {error}"),
            MmioError::StatusBitsInvalid { value } => {
                write!(f, "status {value:#x} has bits the driver may not set")
            }
            MmioError::StatusBitCleared { old, new } => {
                write!(f, "status {new:#x} clears bits of {old:#x}")
            }
            MmioError::StatusOutOfOrder { value } => {
                write!(f, "status {value:#x} sets bits out of order")
            }
            MmioError::FeaturesLocked => write!(f, "DriverFeatures written after FEATURES_OK"),
            MmioError::InterruptAckReserved { value } => {
                write!(f, "InterruptACK {value:#x} has undefined bits")
            }
        }
    }
}
