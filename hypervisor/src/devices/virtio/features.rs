//! Device-independent feature bits (virtio 1.2 §6, "Reserved Feature Bits")
//! and the ranges §2.2 reserves for device-specific bits.

/// Descriptors may point to tables of descriptors (§2.7.5.3). Never offered.
pub const VIRTIO_F_INDIRECT_DESC: u64 = 1 << 28;
/// `used_event` / `avail_event` notification suppression (§2.7.7, §2.7.10).
pub const VIRTIO_F_EVENT_IDX: u64 = 1 << 29;
/// The device follows this version of the specification, not the legacy
/// interface. Every device offers it and the transport requires it.
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;

/// Bits every Corral device offers.
pub const COMMON_FEATURES: u64 = VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX;

/// Device-specific feature bits 0 to 23 (§2.2).
const DEVICE_SPECIFIC_LOW: u64 = (1 << 24) - 1;
/// Device-specific feature bits 50 to 63 (§2.2; 64 to 127 are not used here).
const DEVICE_SPECIFIC_HIGH: u64 = !((1 << 50) - 1);

/// The bits a device model may offer through the transport: its own
/// device-specific bits plus the device-independent bits the queue code
/// implements. Anything else a model reports (indirect descriptors, packed
/// rings, notification data, ring reset, ...) is not offered.
pub const OFFERABLE_FEATURES: u64 = DEVICE_SPECIFIC_LOW | DEVICE_SPECIFIC_HIGH | COMMON_FEATURES;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offerable_bits_exclude_unimplemented_transport_features() {
        assert_eq!(OFFERABLE_FEATURES & VIRTIO_F_INDIRECT_DESC, 0);
        assert_ne!(OFFERABLE_FEATURES & VIRTIO_F_EVENT_IDX, 0);
        assert_ne!(OFFERABLE_FEATURES & VIRTIO_F_VERSION_1, 0);
        assert_ne!(OFFERABLE_FEATURES & (1 << 23), 0);
        assert_eq!(OFFERABLE_FEATURES & (1 << 24), 0);
        assert_eq!(OFFERABLE_FEATURES & (1 << 34), 0, "packed rings");
        assert_ne!(OFFERABLE_FEATURES & (1 << 63), 0);
    }
}
