//! Host tests of the virtio-console output path against the fake device of
//! `crate::virtio::fake`, which drains the transmit queue when notified, as
//! the Corral console does.

use super::{ConsoleError, QUEUE_SIZE, VirtioConsole};
use crate::virtio::fake::{FakeTransport, State, VERSION_1};
use std::cell::RefCell;
use std::rc::Rc;
use std::vec::Vec;
use virtio_drivers::transport::{DeviceStatus, DeviceType};

const EVENT_IDX: u64 = 1 << 29;

fn console_state() -> State {
    State {
        device_type: DeviceType::Console,
        features: VERSION_1 | EVENT_IDX,
        drain_on_notify: true,
        ..State::default()
    }
}

type Opened = (
    Result<VirtioConsole<FakeTransport>, ConsoleError>,
    Rc<RefCell<State>>,
);

fn open(state: State) -> Opened {
    let shared = Rc::new(RefCell::new(state));
    (VirtioConsole::new(FakeTransport(shared.clone())), shared)
}

#[test]
fn output_reaches_the_device_in_order() {
    let (console, shared) = open(console_state());
    let mut console = console.unwrap();
    {
        let state = shared.borrow();
        assert!(
            state
                .status
                .contains(DeviceStatus::DRIVER_OK | DeviceStatus::FEATURES_OK)
        );
        assert_eq!(
            state.driver_features, VERSION_1,
            "VERSION_1 and nothing else"
        );
        assert_eq!(state.queues[1].size as usize, QUEUE_SIZE);
    }
    console.write(b"hello\n").unwrap();
    let long: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    console.write(&long).unwrap();
    for _ in 0..100 {
        console.write(b"x").unwrap();
    }
    let state = shared.borrow();
    assert_eq!(state.drained[0], b"hello\n");
    assert_eq!(state.drained[1..4].concat(), long, "4 KiB pieces");
    assert_eq!(state.drained.len(), 4 + 100);
    assert_eq!(
        state.notifies,
        state.drained.len(),
        "one notification per piece"
    );
}

#[test]
fn devices_that_cannot_be_driven_are_refused() {
    let cases = [
        (
            State {
                device_type: DeviceType::Network,
                ..console_state()
            },
            ConsoleError::NotConsole(1),
        ),
        (
            State {
                legacy: true,
                ..console_state()
            },
            ConsoleError::Legacy,
        ),
        (
            State {
                features: EVENT_IDX,
                ..console_state()
            },
            ConsoleError::NoVersion1,
        ),
        (
            State {
                queue_max: 2,
                ..console_state()
            },
            ConsoleError::QueueTooSmall(2),
        ),
        (
            State {
                accept_features: false,
                ..console_state()
            },
            ConsoleError::FeaturesRefused,
        ),
    ];
    for (state, expect) in cases {
        let (console, shared) = open(state);
        assert_eq!(console.err(), Some(expect));
        let state = shared.borrow();
        assert_eq!(state.status, DeviceStatus::empty(), "left reset");
        assert!(!state.queues[1].ready, "no queue was set up");
    }
}

#[test]
fn a_device_that_never_takes_output_times_out() {
    let (console, shared) = open(State {
        drain_on_notify: false,
        ..console_state()
    });
    let mut console = console.unwrap();
    assert_eq!(console.write(b"lost"), Err(ConsoleError::Timeout));
    drop(console);
    assert_eq!(
        shared.borrow().status,
        DeviceStatus::empty(),
        "dropping the console resets the device"
    );
}

#[test]
fn messages_name_the_problem() {
    use std::string::ToString;
    assert_eq!(
        ConsoleError::QueueTooSmall(2).to_string(),
        "transmit queue holds 2 entries, the driver needs 4"
    );
    assert_eq!(
        ConsoleError::FeaturesRefused.to_string(),
        "FEATURES_OK not accepted"
    );
}
