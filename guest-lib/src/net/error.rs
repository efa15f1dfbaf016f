//! Why a net port could not be opened or used: [`NetError`], with the step a
//! device refused ([`Refusal`]) and the ring rule a device broke
//! ([`Protocol`]).
#![forbid(unsafe_code)]

use core::fmt;
use virtio_drivers::transport::mmio::MmioError;

/// What goes wrong opening or driving a [`NetPort`](super::NetPort).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetError {
    /// The boot info lists no net port with this number.
    NoSuchPort {
        /// The port asked for.
        port: usize,
        /// How many net ports the boot info lists.
        ports: usize,
    },
    /// The port is already open (one [`NetPort`](super::NetPort) per port).
    InUse {
        /// The port.
        port: usize,
    },
    /// The port's register page is not a usable virtio-mmio header.
    Mmio {
        /// The port.
        port: usize,
        /// What the transport found.
        error: MmioError,
    },
    /// The device cannot be driven: the step of initialization that failed.
    Refused {
        /// The port.
        port: usize,
        /// The step.
        step: Refusal,
    },
    /// The guest's allocator could not provide memory.
    AllocFailed {
        /// Bytes asked for.
        bytes: usize,
    },
    /// A frame longer than the space for it.
    FrameTooLong {
        /// The frame's length.
        len: usize,
        /// The most that fits.
        max: usize,
    },
    /// `virtio-drivers` reported an error.
    Virtio(virtio_drivers::Error),
    /// The device broke the virtqueue rules.
    Protocol(Protocol),
}

/// The initialization step a device failed (virtio 1.2 §3.1.1, §4.2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The slot holds another kind of virtio device.
    NotNet {
        /// The device ID found.
        device_id: u32,
    },
    /// The device speaks the legacy (version 1) virtio-mmio interface.
    Legacy,
    /// The device does not offer `VIRTIO_F_VERSION_1`.
    NoVersion1,
    /// A queue is smaller than the driver's ring.
    QueueTooSmall {
        /// The queue.
        queue: u16,
        /// Its `QueueNumMax`.
        max: u32,
        /// Entries the driver needs.
        need: usize,
    },
}

/// A virtqueue rule the device broke (the ring contents are the device's
/// word and are checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// A used-ring entry names a descriptor chain the driver has not made
    /// available.
    UnknownId {
        /// The queue.
        queue: u16,
        /// The id in the used-ring entry (truncated to 16 bits).
        id: u16,
    },
    /// A used-ring entry of the receive queue reports a length that does
    /// not fit the buffer or is shorter than the virtio-net header.
    RxLength {
        /// The frame length the device reported (after the header), or 0
        /// if it reported less than the header.
        len: usize,
        /// The buffer's size.
        buffer: usize,
    },
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::NoSuchPort { port, ports } => write!(
                f,
                "no virtio-net port {port}: the boot info lists {ports} net port(s)"
            ),
            NetError::InUse { port } => write!(f, "virtio-net port {port} is already open"),
            NetError::Mmio { port, error } => {
                write!(f, "virtio-net port {port}: bad virtio-mmio header: {error}")
            }
            NetError::Refused { port, step } => {
                write!(f, "virtio-net port {port}: device refused: {step}")
            }
            NetError::AllocFailed { bytes } => {
                write!(f, "allocation of {bytes} bytes for a net port failed")
            }
            NetError::FrameTooLong { len, max } => {
                write!(f, "frame of {len} bytes is too long (at most {max})")
            }
            NetError::Virtio(e) => write!(f, "virtio error: {e}"),
            NetError::Protocol(p) => write!(f, "virtio-net device broke the ring protocol: {p}"),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Refusal::NotNet { device_id } => write!(
                f,
                "it is not a network device (virtio device ID {device_id})"
            ),
            Refusal::Legacy => f.write_str("it is a legacy (version 1) virtio-mmio device"),
            Refusal::NoVersion1 => f.write_str("it does not offer VIRTIO_F_VERSION_1"),
            Refusal::QueueTooSmall { queue, max, need } => write!(
                f,
                "queue {queue} holds at most {max} entries, the driver needs {need}"
            ),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Protocol::UnknownId { queue, id } => write!(
                f,
                "queue {queue}: used ring names descriptor {id}, which is not in flight"
            ),
            Protocol::RxLength { len, buffer } => write!(
                f,
                "receive queue: used length {len} does not fit a {buffer}-byte buffer with its header"
            ),
        }
    }
}

impl From<crate::virtio::AllocFailed> for NetError {
    fn from(e: crate::virtio::AllocFailed) -> Self {
        NetError::AllocFailed { bytes: e.bytes }
    }
}

impl From<virtio_drivers::Error> for NetError {
    fn from(e: virtio_drivers::Error) -> Self {
        match e {
            virtio_drivers::Error::DmaError => NetError::AllocFailed {
                bytes: virtio_drivers::PAGE_SIZE,
            },
            e => NetError::Virtio(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn messages_say_what_happened() {
        let cases = [
            (
                NetError::NoSuchPort { port: 2, ports: 1 },
                "no virtio-net port 2: the boot info lists 1 net port(s)",
            ),
            (
                NetError::Refused {
                    port: 0,
                    step: Refusal::NoVersion1,
                },
                "virtio-net port 0: device refused: it does not offer VIRTIO_F_VERSION_1",
            ),
            (
                NetError::Refused {
                    port: 1,
                    step: Refusal::QueueTooSmall {
                        queue: 1,
                        max: 64,
                        need: 128,
                    },
                },
                "virtio-net port 1: device refused: queue 1 holds at most 64 entries, the driver needs 128",
            ),
            (
                NetError::AllocFailed { bytes: 4096 },
                "allocation of 4096 bytes for a net port failed",
            ),
            (
                NetError::FrameTooLong {
                    len: 1600,
                    max: 1514,
                },
                "frame of 1600 bytes is too long (at most 1514)",
            ),
            (
                NetError::Virtio(virtio_drivers::Error::QueueFull),
                "virtio error: Virtqueue is full",
            ),
            (
                NetError::Protocol(Protocol::UnknownId { queue: 0, id: 999 }),
                "virtio-net device broke the ring protocol: queue 0: used ring names descriptor 999, which is not in flight",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
        }
    }

    #[test]
    fn dma_errors_are_allocation_failures() {
        assert!(matches!(
            NetError::from(virtio_drivers::Error::DmaError),
            NetError::AllocFailed { .. }
        ));
    }
}
