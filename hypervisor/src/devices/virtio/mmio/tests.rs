//! Tests of the virtio-mmio transport: the handshake virtio-drivers 0.13
//! performs, then every register rule a driver can break, and random
//! accesses.

use super::*;
use crate::devices::virtio::features::COMMON_FEATURES;
use crate::devices::virtio::queue::{QueueError, RingPart};
use crate::devices::virtio::testing::{MmioDriver, QueueAddrs};

/// A device with two queues and 6 bytes of configuration.
struct TestDevice {
    config: [u8; 6],
    resets: u32,
}

const TEST_ID: u32 = 42;
const TEST_FEATURE: u64 = 1 << 3;

impl Device for TestDevice {
    fn device_id(&self) -> u32 {
        TEST_ID
    }
    fn features(&self) -> u64 {
        // Indirect descriptors (bit 28) are claimed but never offered.
        COMMON_FEATURES | TEST_FEATURE | (1 << 28)
    }
    fn num_queues(&self) -> u16 {
        2
    }
    fn config_len(&self) -> usize {
        self.config.len()
    }
    fn read_config(&self, offset: usize, data: &mut [u8]) {
        data.copy_from_slice(&self.config[offset..offset + data.len()]);
    }
    fn write_config(&mut self, offset: usize, data: &[u8]) {
        self.config[offset..offset + data.len()].copy_from_slice(data);
    }
    fn reset(&mut self) {
        self.resets += 1;
    }
}

const MEM: u64 = 0x10_0000;

fn transport() -> Transport<TestDevice> {
    Transport::new(
        TestDevice {
            config: [1, 2, 3, 4, 5, 6],
            resets: 0,
        },
        TransportConfig::new(MEM),
    )
}

fn addrs(base: u64) -> QueueAddrs {
    QueueAddrs {
        desc: base,
        driver: base + 0x1000,
        device: base + 0x2000,
    }
}

#[test]
fn identity_registers() {
    let t = transport();
    assert_eq!(t.read(offset::MAGIC_VALUE, 4), Ok(MAGIC_VALUE));
    assert_eq!(
        t.read(offset::MAGIC_VALUE, 4).unwrap().to_le_bytes(),
        *b"virt"
    );
    assert_eq!(t.read(offset::VERSION, 4), Ok(2));
    assert_eq!(t.read(offset::DEVICE_ID, 4), Ok(TEST_ID));
    assert_eq!(t.read(offset::VENDOR_ID, 4), Ok(VENDOR_ID));
    assert_eq!(t.read(offset::CONFIG_GENERATION, 4), Ok(0));
    assert_eq!(t.read(offset::SHM_LEN_LOW, 4), Ok(u32::MAX));
    assert_eq!(t.read(offset::SHM_BASE_HIGH, 4), Ok(u32::MAX));
}

#[test]
fn full_driver_handshake() {
    let mut t = transport();
    let mut d = MmioDriver::default();
    // What virtio-drivers 0.13 does: probe, begin_init, queues, finish.
    let features = d
        .begin_init(
            &mut t,
            VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | TEST_FEATURE,
        )
        .unwrap();
    assert_eq!(
        features,
        VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | TEST_FEATURE
    );
    assert_eq!(
        d.offered,
        COMMON_FEATURES | TEST_FEATURE,
        "bit 28 not offered"
    );
    assert!(t.status().contains(DeviceStatus::FEATURES_OK));
    assert_eq!(t.negotiated_features(), features);
    d.queue_set(&mut t, 1, 64, addrs(0x1_0000)).unwrap();
    d.queue_set(&mut t, 0, 256, addrs(0x2_0000)).unwrap();
    assert_eq!(d.finish_init(&mut t), Ok(WriteEffect::DriverOk));
    assert!(t.driver_ok());
    let q = t.queue(1).unwrap();
    assert_eq!(q.size(), 64);
    assert!(q.event_idx());
    assert_eq!(q.layout().avail_ring, 0x1_1000);
    assert_eq!(t.queue(0).unwrap().size(), 256);

    assert_eq!(
        t.write(offset::QUEUE_NOTIFY, 4, 1),
        Ok(WriteEffect::Notify(1))
    );
    // Interrupts: set by the device, read and acknowledged by the driver.
    assert_eq!(d.ack_interrupt(&mut t), 0);
    t.signal_used_buffer();
    assert_eq!(d.ack_interrupt(&mut t), 1);
    assert_eq!(t.interrupt_status(), InterruptStatus::empty());

    // Configuration space, any width, generation bumps on change.
    assert_eq!(t.read(CONFIG_OFFSET, 1), Ok(1));
    assert_eq!(t.read(CONFIG_OFFSET + 1, 2), Ok(0x0302));
    assert_eq!(t.read(CONFIG_OFFSET + 2, 4), Ok(0x0605_0403));
    t.write(CONFIG_OFFSET + 5, 1, 0x99).unwrap();
    assert_eq!(t.read(CONFIG_OFFSET + 4, 2), Ok(0x9905));
    t.config_changed();
    assert_eq!(t.read(offset::CONFIG_GENERATION, 4), Ok(1));
    assert_eq!(t.read(offset::INTERRUPT_STATUS, 4), Ok(2));

    // Teardown as virtio-drivers does it, then reset.
    d.queue_unset(&mut t, 1).unwrap();
    assert!(t.queue(1).is_none());
    assert_eq!(
        t.write(offset::QUEUE_NOTIFY, 4, 1),
        Ok(WriteEffect::None),
        "spurious"
    );
    assert_eq!(t.write(offset::STATUS, 4, 0), Ok(WriteEffect::Reset));
    assert_eq!(t.status(), DeviceStatus::empty());
    assert!(t.queue(0).is_none());
    assert_eq!(t.device().resets, 2, "begin_init's reset and this one");
    assert_eq!(t.interrupt_status(), InterruptStatus::empty());
    assert_eq!(t.negotiated_features(), 0);
}

#[test]
fn event_idx_only_when_negotiated() {
    let mut t = transport();
    let mut d = MmioDriver::default();
    d.begin_init(&mut t, VIRTIO_F_VERSION_1).unwrap();
    d.queue_set(&mut t, 0, 8, addrs(0x1_0000)).unwrap();
    assert!(!t.queue(0).unwrap().event_idx());
}

#[test]
fn unoffered_features_are_refused() {
    for (features, why) in [
        (
            VIRTIO_F_VERSION_1 | (1 << 28),
            "indirect descriptors were not offered",
        ),
        (
            VIRTIO_F_VERSION_1 | (1 << 7),
            "a device bit that was not offered",
        ),
        (VIRTIO_F_EVENT_IDX, "VERSION_1 missing"),
    ] {
        let mut t = transport();
        let mut d = MmioDriver::default();
        d.reset_and_acknowledge(&mut t).unwrap();
        d.write_features(&mut t, features).unwrap();
        assert_eq!(
            t.write(offset::STATUS, 4, 0b1011),
            Ok(WriteEffect::FeaturesRejected),
            "{why}"
        );
        assert!(!t.status().contains(DeviceStatus::FEATURES_OK), "{why}");
        assert_eq!(t.read(offset::STATUS, 4), Ok(0b11));
        // Going on regardless is out of order, and no queue can be made.
        assert_eq!(
            d.queue_set(&mut t, 0, 8, addrs(0x1_0000)),
            Err(MmioError::QueueBeforeFeaturesOk { queue: 0 })
        );
        assert_eq!(
            t.write(offset::STATUS, 4, 0b1111),
            Err(MmioError::StatusOutOfOrder { value: 0b1111 })
        );
    }
    // Bits above 63.
    let mut t = transport();
    let mut d = MmioDriver::default();
    d.reset_and_acknowledge(&mut t).unwrap();
    d.write_features(&mut t, VIRTIO_F_VERSION_1).unwrap();
    t.write(offset::DRIVER_FEATURES_SEL, 4, 2).unwrap();
    t.write(offset::DRIVER_FEATURES, 4, 1).unwrap();
    assert_eq!(
        t.write(offset::STATUS, 4, 0b1011),
        Ok(WriteEffect::FeaturesRejected)
    );
}

#[test]
fn features_are_locked_after_features_ok() {
    let mut t = transport();
    MmioDriver::default()
        .begin_init(&mut t, VIRTIO_F_VERSION_1)
        .unwrap();
    assert_eq!(
        t.write(offset::DRIVER_FEATURES, 4, 0),
        Err(MmioError::FeaturesLocked)
    );
}

#[test]
fn queue_num_must_be_a_power_of_two_up_to_max() {
    let mut t = transport();
    let mut d = MmioDriver::default();
    d.begin_init(&mut t, VIRTIO_F_VERSION_1).unwrap();
    t.write(offset::QUEUE_SEL, 4, 0).unwrap();
    for num in [3, 100, 512, 1 << 16] {
        assert_eq!(
            t.write(offset::QUEUE_NUM, 4, num),
            Err(MmioError::QueueNumInvalid {
                queue: 0,
                num,
                max: DEFAULT_QUEUE_NUM_MAX
            })
        );
    }
    // 0 is how a driver clears it; making the queue ready with it is not.
    t.write(offset::QUEUE_NUM, 4, 0).unwrap();
    assert_eq!(
        t.write(offset::QUEUE_READY, 4, 1),
        Err(MmioError::QueueNumInvalid {
            queue: 0,
            num: 0,
            max: DEFAULT_QUEUE_NUM_MAX
        })
    );
    assert_eq!(t.read(offset::QUEUE_READY, 4), Ok(0));
}

#[test]
fn queue_addresses_are_checked_when_made_ready() {
    let cases = [
        (
            QueueAddrs {
                desc: 0x1_0008,
                ..addrs(0x1_0000)
            },
            QueueError::RingMisaligned {
                ring: RingPart::Descriptors,
                addr: 0x1_0008,
            },
        ),
        (
            QueueAddrs {
                driver: 0x1_1001,
                ..addrs(0x1_0000)
            },
            QueueError::RingMisaligned {
                ring: RingPart::Avail,
                addr: 0x1_1001,
            },
        ),
        (
            QueueAddrs {
                device: 0x1_2002,
                ..addrs(0x1_0000)
            },
            QueueError::RingMisaligned {
                ring: RingPart::Used,
                addr: 0x1_2002,
            },
        ),
        (
            QueueAddrs {
                device: MEM - 8,
                ..addrs(0x1_0000)
            },
            QueueError::RingOutsideMemory {
                ring: RingPart::Used,
                addr: MEM - 8,
                len: 70,
            },
        ),
        (
            QueueAddrs {
                desc: u64::MAX - 15,
                ..addrs(0x1_0000)
            },
            QueueError::RingOutsideMemory {
                ring: RingPart::Descriptors,
                addr: u64::MAX - 15,
                len: 128,
            },
        ),
    ];
    for (a, error) in cases {
        let mut t = transport();
        let mut d = MmioDriver::default();
        d.begin_init(&mut t, VIRTIO_F_VERSION_1).unwrap();
        assert_eq!(
            d.queue_set(&mut t, 1, 8, a),
            Err(MmioError::Queue { queue: 1, error })
        );
        assert!(t.queue(1).is_none());
        assert!(!error.to_string().is_empty());
    }
}

#[test]
fn queue_registers_are_fixed_while_ready() {
    let mut t = transport();
    let mut d = MmioDriver::default();
    d.begin_init(&mut t, VIRTIO_F_VERSION_1).unwrap();
    d.queue_set(&mut t, 0, 8, addrs(0x1_0000)).unwrap();
    for reg in [
        offset::QUEUE_NUM,
        offset::QUEUE_DESC_LOW,
        offset::QUEUE_DEVICE_HIGH,
    ] {
        assert_eq!(t.write(reg, 4, 0), Err(MmioError::QueueBusy { queue: 0 }));
    }
    assert_eq!(t.write(offset::QUEUE_READY, 4, 1), Ok(WriteEffect::None));
    assert_eq!(
        t.write(offset::QUEUE_READY, 4, 2),
        Err(MmioError::QueueReadyValue { value: 2 })
    );
}

#[test]
fn turning_a_queue_off_or_on_after_driver_ok_is_reported() {
    let mut t = transport();
    let mut d = MmioDriver::default();
    d.begin_init(&mut t, VIRTIO_F_VERSION_1).unwrap();
    d.queue_set(&mut t, 0, 64, addrs(0x1_0000)).unwrap();
    assert_eq!(d.finish_init(&mut t), Ok(WriteEffect::DriverOk));
    // Before DRIVER_OK a queue change is nothing special; after it, the
    // caller using the queue must hear of it.
    t.write(offset::QUEUE_SEL, 4, 0).unwrap();
    assert_eq!(
        t.write(offset::QUEUE_READY, 4, 0),
        Ok(WriteEffect::QueuesChanged)
    );
    assert!(t.queue(0).is_none());
    // Writing the same value again changes nothing.
    assert_eq!(t.write(offset::QUEUE_READY, 4, 0), Ok(WriteEffect::None));
    t.write(offset::QUEUE_NUM, 4, 32).unwrap();
    assert_eq!(
        t.write(offset::QUEUE_READY, 4, 1),
        Ok(WriteEffect::QueuesChanged)
    );
    assert_eq!(t.queue(0).map(|q| q.size()), Some(32));
}

#[test]
fn queues_the_device_does_not_have() {
    let mut t = transport();
    let mut d = MmioDriver::default();
    d.begin_init(&mut t, VIRTIO_F_VERSION_1).unwrap();
    t.write(offset::QUEUE_SEL, 4, 2).unwrap();
    assert_eq!(t.read(offset::QUEUE_NUM_MAX, 4), Ok(0), "not available");
    assert_eq!(t.read(offset::QUEUE_READY, 4), Ok(0));
    assert_eq!(
        t.write(offset::QUEUE_NUM, 4, 8),
        Err(MmioError::NoSuchQueue { queue: 2 })
    );
    assert_eq!(
        t.write(offset::QUEUE_READY, 4, 1),
        Err(MmioError::NoSuchQueue { queue: 2 })
    );
    assert_eq!(
        t.write(offset::QUEUE_NOTIFY, 4, 0x1_0000),
        Err(MmioError::NoSuchQueue { queue: 0x1_0000 })
    );
    assert_eq!(
        t.write(offset::QUEUE_NOTIFY, 4, 0),
        Ok(WriteEffect::None),
        "not ready"
    );
}

#[test]
fn access_rules() {
    let mut t = transport();
    assert_eq!(
        t.read(offset::STATUS, 2),
        Err(MmioError::BadAccessSize {
            offset: offset::STATUS,
            size: 2
        })
    );
    assert_eq!(
        t.write(offset::STATUS, 1, 1),
        Err(MmioError::BadAccessSize {
            offset: offset::STATUS,
            size: 1
        })
    );
    assert_eq!(
        t.read(offset::MAGIC_VALUE, 8),
        Err(MmioError::BadAccessSize { offset: 0, size: 8 })
    );
    assert_eq!(
        t.read(0x72, 4),
        Err(MmioError::UnalignedAccess { offset: 0x72 })
    );
    for legacy in [0x028, 0x03c, 0x040, 0x0c0, 0x018, 0x0f8] {
        assert_eq!(
            t.read(legacy, 4),
            Err(MmioError::UnknownRegister { offset: legacy })
        );
        assert_eq!(
            t.write(legacy, 4, 1),
            Err(MmioError::UnknownRegister { offset: legacy })
        );
    }
    for wo in [
        offset::DEVICE_FEATURES_SEL,
        offset::DRIVER_FEATURES,
        offset::QUEUE_SEL,
        offset::QUEUE_NUM,
        offset::QUEUE_NOTIFY,
        offset::INTERRUPT_ACK,
        offset::QUEUE_DESC_LOW,
        offset::SHM_SEL,
    ] {
        assert_eq!(
            t.read(wo, 4),
            Err(MmioError::WriteOnlyRegister { offset: wo })
        );
    }
    for ro in [
        offset::MAGIC_VALUE,
        offset::VERSION,
        offset::DEVICE_FEATURES,
        offset::QUEUE_NUM_MAX,
        offset::INTERRUPT_STATUS,
        offset::CONFIG_GENERATION,
    ] {
        assert_eq!(
            t.write(ro, 4, 0),
            Err(MmioError::ReadOnlyRegister { offset: ro })
        );
    }
    let e = t.read(offset::QUEUE_NOTIFY, 4).unwrap_err();
    assert_eq!(e.to_string(), "read of write-only QueueNotify at 0x50");
    // Configuration: 1, 2 or 4 bytes, inside its 6 bytes.
    assert_eq!(
        t.read(CONFIG_OFFSET + 4, 4),
        Err(MmioError::ConfigOutOfRange {
            offset: 0x104,
            size: 4
        })
    );
    assert_eq!(
        t.write(CONFIG_OFFSET + 6, 1, 0),
        Err(MmioError::ConfigOutOfRange {
            offset: 0x106,
            size: 1
        })
    );
    assert_eq!(
        t.read(CONFIG_OFFSET, 3),
        Err(MmioError::BadAccessSize {
            offset: 0x100,
            size: 3
        })
    );
    assert_eq!(
        t.read(u64::MAX - 1, 2),
        Err(MmioError::ConfigOutOfRange {
            offset: u64::MAX - 1,
            size: 2
        })
    );
    assert_eq!(
        t.write(offset::INTERRUPT_ACK, 4, 4),
        Err(MmioError::InterruptAckReserved { value: 4 })
    );
}

#[test]
fn status_rules() {
    let mut t = transport();
    let ack = DeviceStatus::ACKNOWLEDGE.bits();
    let drv = DeviceStatus::DRIVER.bits();
    let fok = DeviceStatus::FEATURES_OK.bits();
    let dok = DeviceStatus::DRIVER_OK.bits();
    assert_eq!(
        t.write(offset::STATUS, 4, 0x10),
        Err(MmioError::StatusBitsInvalid { value: 0x10 })
    );
    assert_eq!(
        t.write(offset::STATUS, 4, 64),
        Err(MmioError::StatusBitsInvalid { value: 64 }),
        "DEVICE_NEEDS_RESET is the device's"
    );
    assert_eq!(
        t.write(offset::STATUS, 4, drv),
        Err(MmioError::StatusOutOfOrder { value: drv })
    );
    assert_eq!(t.write(offset::STATUS, 4, ack), Ok(WriteEffect::None));
    assert_eq!(
        t.write(offset::STATUS, 4, ack | fok),
        Err(MmioError::StatusOutOfOrder { value: ack | fok })
    );
    assert_eq!(t.write(offset::STATUS, 4, ack | drv), Ok(WriteEffect::None));
    assert_eq!(
        t.write(offset::STATUS, 4, ack | drv | dok),
        Err(MmioError::StatusOutOfOrder {
            value: ack | drv | dok
        })
    );
    assert_eq!(
        t.write(offset::STATUS, 4, drv),
        Err(MmioError::StatusBitCleared {
            old: ack | drv,
            new: drv
        })
    );
    // FEATURES_OK and DRIVER_OK together, with good features.
    MmioDriver::default()
        .write_features(&mut t, VIRTIO_F_VERSION_1)
        .unwrap();
    assert_eq!(
        t.write(offset::STATUS, 4, ack | drv | fok | dok),
        Ok(WriteEffect::DriverOk)
    );
    assert_eq!(
        t.write(offset::STATUS, 4, ack | drv | fok | dok | 128),
        Ok(WriteEffect::DriverFailed)
    );
    assert!(!t.driver_ok());
    assert_eq!(t.write(offset::STATUS, 4, 0), Ok(WriteEffect::Reset));
}

proptest::proptest! {
    /// Any sequence of accesses: never a panic, and a queue exists only
    /// inside guest memory with a valid size.
    #[test]
    fn random_accesses_never_panic(
        ops in proptest::collection::vec(
            (proptest::bool::ANY, 0u64..0x120, proptest::sample::select(vec![1u8, 2, 4, 8]),
             proptest::prop_oneof![0u32..16, proptest::num::u32::ANY]),
            0..200,
        )
    ) {
        let mut t = transport();
        for (is_write, off, size, value) in ops {
            let off = if size == 4 { off & !3 } else { off };
            if is_write {
                let _ = t.write(off, size, value).map_err(|e| e.to_string());
            } else {
                let _ = t.read(off, size).map_err(|e| e.to_string());
            }
            for i in 0..2 {
                if let Some(q) = t.queue(i) {
                    proptest::prop_assert!(q.size().is_power_of_two());
                    proptest::prop_assert!(q.layout().check_within(MEM).is_ok());
                }
            }
        }
    }
}
