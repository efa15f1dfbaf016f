//! Host tests of the net driver against the fake virtio device of
//! `crate::virtio::fake`.

use super::driver::{Driver, RECEIVE_QUEUE, TRANSMIT_QUEUE};
use super::{NetError, Protocol, QUEUE_SIZE, Refusal};
use crate::virtio::fake::{Device, FakeTransport, MAC, OFFERED, Shared, State, VERSION_1};
use std::cell::RefCell;
use std::rc::Rc;
use std::vec::Vec;
use virtio_drivers::transport::{DeviceStatus, DeviceType};
use vmm_abi::corral::devices::{MAX_FRAME_BYTES, NET_HEADER_BYTES, RX_BUFFER_BYTES};

fn setup(state: State) -> (Result<Driver<FakeTransport>, NetError>, Device, Shared) {
    let shared = Rc::new(RefCell::new(state));
    let driver = Driver::new(FakeTransport(shared.clone()), 3);
    (driver, Device(shared.clone()), shared)
}

fn open() -> (Driver<FakeTransport>, Device, Shared) {
    let (driver, device, shared) = setup(State::default());
    (driver.expect("the fake device is fine"), device, shared)
}

fn frame(n: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32 ^ n.wrapping_mul(31)) as u8)
        .collect()
}

#[test]
fn open_negotiates_and_posts_every_receive_buffer() {
    let (driver, device, shared) = open();
    assert_eq!(driver.mac(), MAC);
    let state = shared.borrow();
    assert!(state.status.contains(
        DeviceStatus::ACKNOWLEDGE
            | DeviceStatus::DRIVER
            | DeviceStatus::FEATURES_OK
            | DeviceStatus::DRIVER_OK
    ));
    assert_eq!(state.driver_features & !OFFERED, 0, "only offered features");
    assert_ne!(state.driver_features & VERSION_1, 0);
    assert_eq!(state.queues[0].size as usize, QUEUE_SIZE);
    assert_eq!(state.queues[1].size as usize, QUEUE_SIZE);
    assert_eq!(state.notifies, 0, "a suppressing device is never kicked");
    drop(state);
    assert_eq!(usize::from(device.avail_pending(RECEIVE_QUEUE)), QUEUE_SIZE);
    let mut addrs: Vec<u64> = (0..QUEUE_SIZE as u16)
        .map(|i| device.desc(RECEIVE_QUEUE, i).addr)
        .collect();
    addrs.sort_unstable();
    assert!(
        addrs
            .windows(2)
            .all(|w| w[1] - w[0] >= RX_BUFFER_BYTES as u64),
        "receive buffers do not overlap"
    );
}

#[test]
fn frames_are_received_in_order_and_buffers_reposted() {
    let (mut driver, device, _) = open();
    let mut buf = [0u8; MAX_FRAME_BYTES];
    assert_eq!(driver.recv(&mut buf), Ok(None));
    assert!(!driver.rx_pending());
    let frames: Vec<Vec<u8>> = (0..5).map(|n| frame(n, 60 + n as usize * 300)).collect();
    for f in &frames {
        assert!(device.deliver(f));
    }
    assert!(driver.rx_pending());
    for f in &frames {
        let len = driver.recv(&mut buf).unwrap().unwrap();
        assert_eq!(&buf[..len], &f[..]);
    }
    assert_eq!(driver.recv(&mut buf), Ok(None));
    assert_eq!(
        usize::from(device.avail_pending(RECEIVE_QUEUE)),
        QUEUE_SIZE,
        "every buffer is back with the device"
    );
}

#[test]
fn long_runs_wrap_the_ring_indices() {
    let (mut driver, device, shared) = open();
    let mut buf = [0u8; MAX_FRAME_BYTES];
    // More than 2^16 frames each way, in bursts that fill the rings.
    let mut n = 0u32;
    while n < 70_000 {
        for i in 0..QUEUE_SIZE as u32 {
            assert!(device.deliver(&frame(n + i, 64)));
        }
        for i in 0..QUEUE_SIZE as u32 {
            let len = driver.recv(&mut buf).unwrap().unwrap();
            assert_eq!(&buf[..len], &frame(n + i, 64)[..]);
            assert_eq!(driver.send(&buf[..len]), Ok(true));
        }
        for i in 0..QUEUE_SIZE as u32 {
            let sent = device.transmit().unwrap();
            assert_eq!(&sent[NET_HEADER_BYTES..], &frame(n + i, 64)[..]);
        }
        n += QUEUE_SIZE as u32;
    }
    assert_eq!(driver.tx_in_flight(), 0);
    // One kick when the avail index passes the suppressing avail_event
    // (virtio-drivers compares without wrapping), none per packet.
    assert!(shared.borrow().notifies <= 2);
}

#[test]
fn transmit_copies_behind_a_zero_header_and_reports_a_full_ring() {
    let (mut driver, device, _) = open();
    for n in 0..QUEUE_SIZE as u32 {
        assert_eq!(driver.send(&frame(n, 100)), Ok(true), "frame {n}");
    }
    assert_eq!(driver.tx_in_flight(), QUEUE_SIZE);
    assert_eq!(driver.tx_space(), 0);
    assert_eq!(driver.send(&frame(999, 100)), Ok(false), "ring full");
    let first = device.transmit().unwrap();
    assert_eq!(&first[..NET_HEADER_BYTES], &[0u8; NET_HEADER_BYTES]);
    assert_eq!(&first[NET_HEADER_BYTES..], &frame(0, 100)[..]);
    assert_eq!(driver.tx_in_flight(), QUEUE_SIZE - 1);
    assert_eq!(driver.send(&frame(1000, 100)), Ok(true), "room again");
    let mut seen = Vec::new();
    while let Some(bytes) = device.transmit() {
        seen.push(bytes[NET_HEADER_BYTES..].to_vec());
    }
    assert_eq!(seen.len(), QUEUE_SIZE);
    assert_eq!(seen[0], frame(1, 100));
    assert_eq!(seen[QUEUE_SIZE - 1], frame(1000, 100));
    assert_eq!(driver.tx_in_flight(), 0);
    assert_eq!(driver.tx_space(), QUEUE_SIZE);
}

#[test]
fn lengths_are_checked() {
    let (mut driver, device, _) = open();
    assert_eq!(
        driver.send(&[0u8; MAX_FRAME_BYTES + 1]),
        Err(NetError::FrameTooLong {
            len: MAX_FRAME_BYTES + 1,
            max: MAX_FRAME_BYTES
        })
    );
    assert_eq!(driver.send(&[0u8; MAX_FRAME_BYTES]), Ok(true));
    assert_eq!(driver.send(&[]), Ok(true), "a header alone is fine");
    assert_eq!(driver.tx_in_flight(), 2);

    assert!(device.deliver(&frame(1, 200)));
    let mut small = [0u8; 100];
    assert_eq!(
        driver.recv(&mut small),
        Err(NetError::FrameTooLong { len: 200, max: 100 })
    );
    assert!(device.deliver(&frame(2, 50)));
    assert_eq!(driver.recv(&mut small), Ok(Some(50)), "the next one fits");
    assert_eq!(&small[..50], &frame(2, 50)[..]);
    assert_eq!(usize::from(device.avail_pending(RECEIVE_QUEUE)), QUEUE_SIZE);
}

#[test]
fn a_hostile_device_gets_errors_not_panics() {
    let (mut driver, device, _) = open();
    let mut buf = [0u8; MAX_FRAME_BYTES];

    // A used id the driver never made available.
    device.push_used(RECEIVE_QUEUE, 0xffff_0123, 64);
    assert_eq!(
        driver.recv(&mut buf),
        Err(NetError::Protocol(Protocol::UnknownId {
            queue: RECEIVE_QUEUE,
            id: 0x0123
        }))
    );
}

#[test]
fn bad_receive_lengths_are_errors_and_the_buffer_goes_back() {
    for (len, expect) in [
        (
            (RX_BUFFER_BYTES + 1) as u32,
            Protocol::RxLength {
                len: RX_BUFFER_BYTES + 1 - NET_HEADER_BYTES,
                buffer: RX_BUFFER_BYTES,
            },
        ),
        (
            u32::MAX,
            Protocol::RxLength {
                len: u32::MAX as usize - NET_HEADER_BYTES,
                buffer: RX_BUFFER_BYTES,
            },
        ),
        (
            (NET_HEADER_BYTES - 1) as u32,
            Protocol::RxLength {
                len: 0,
                buffer: RX_BUFFER_BYTES,
            },
        ),
    ] {
        let (mut driver, device, _) = open();
        let head = device.pop_avail(RECEIVE_QUEUE).unwrap();
        device.push_used(RECEIVE_QUEUE, head.into(), len);
        let mut buf = [0u8; MAX_FRAME_BYTES];
        assert_eq!(driver.recv(&mut buf), Err(NetError::Protocol(expect)));
        assert_eq!(usize::from(device.avail_pending(RECEIVE_QUEUE)), QUEUE_SIZE);
        assert!(device.deliver(&frame(7, 80)), "the port still works");
        assert_eq!(driver.recv(&mut buf), Ok(Some(80)));
    }
}

#[test]
fn a_transmit_completion_for_an_unknown_chain_is_an_error() {
    let (mut driver, device, _) = open();
    assert_eq!(driver.send(&frame(1, 64)), Ok(true));
    device.push_used(TRANSMIT_QUEUE, 77, 0);
    assert_eq!(
        driver.send(&frame(2, 64)),
        Err(NetError::Protocol(Protocol::UnknownId {
            queue: TRANSMIT_QUEUE,
            id: 77
        }))
    );
    assert_eq!(driver.tx_in_flight(), 1, "nothing was reclaimed by mistake");
}

#[test]
fn devices_that_cannot_be_driven_are_refused_by_step() {
    let cases = [
        (
            State {
                device_type: DeviceType::Console,
                ..State::default()
            },
            Refusal::NotNet { device_id: 3 },
        ),
        (
            State {
                legacy: true,
                ..State::default()
            },
            Refusal::Legacy,
        ),
        (
            State {
                features: OFFERED & !VERSION_1,
                ..State::default()
            },
            Refusal::NoVersion1,
        ),
        (
            State {
                queue_max: 64,
                ..State::default()
            },
            Refusal::QueueTooSmall {
                queue: RECEIVE_QUEUE,
                max: 64,
                need: QUEUE_SIZE,
            },
        ),
    ];
    for (state, step) in cases {
        let (driver, _, shared) = setup(state);
        assert_eq!(driver.err(), Some(NetError::Refused { port: 3, step }));
        assert_eq!(
            shared.borrow().status,
            DeviceStatus::empty(),
            "a refused device is left alone"
        );
    }
}

#[test]
fn dropping_the_driver_unsets_the_queues() {
    let (driver, _, shared) = open();
    drop(driver);
    let state = shared.borrow();
    assert!(!state.queues[0].ready && !state.queues[1].ready);
}
