//! Tests of a port's life: attach, driver ready, reset, detach (for a restart or for good), blame.

use super::*;
use crate::datapath::testing::{Guest, reset};
use crate::devices::virtio::net::{RECEIVE_QUEUE, TRANSMIT_QUEUE};
use crate::devices::virtio::queue::VIRTQ_USED_F_NO_NOTIFY;
use crate::devices::virtio::testing::MEM_SIZE;
use crate::mem::raw::testing::over_vec;

const MEMORY: u64 = MEM_SIZE as u64;

fn state(p: &Port) -> (PortState, u32) {
    p.with(|i| (i.state(), i.generation()))
}

fn ends(p: &Port) -> (bool, Option<bool>) {
    p.with(|i| {
        let source = i.source().is_some();
        let sink = i.sink().map(|(r, _)| matches!(r, Receiver::Ready(_)));
        (source, sink)
    })
}

#[test]
fn a_port_comes_up_at_driver_ok_when_both_rings_check() {
    let port = Port::new(3, 1, MEMORY);
    assert_eq!(state(&port), (PortState::Down, 0));
    assert_eq!(ends(&port), (false, None), "frames for a new port wait");
    let g = Guest::new();
    port.attach(MEMORY, g.ram);
    let (_, attached) = state(&port);
    assert_eq!(attached, 1, "a fresh run is a new generation");
    assert!(matches!(port.with(|p| g.bring_up(p)), PortEvent::None));
    let (st, generation) = state(&port);
    assert_eq!(st, PortState::Up);
    assert!(generation > attached, "DRIVER_OK voids what was held");
    assert_eq!(ends(&port), (true, Some(true)));
    assert_eq!(
        g.rx_used_flags(),
        VIRTQ_USED_F_NO_NOTIFY,
        "polled: the driver is asked not to kick"
    );
    // Its MAC is its VM's and port's.
    assert_eq!(
        port.with(|p| p.transport.device().mac()),
        vmm_abi::corral::devices::port_mac(3, 1)
    );
}

#[test]
fn a_port_without_memory_or_a_queue_stays_down() {
    // Never attached: the driver gets ready, but there is nothing to check
    // the rings against.
    let g = Guest::new();
    let port = Port::new(0, 0, MEMORY);
    assert!(matches!(port.with(|p| g.bring_up(p)), PortEvent::None));
    assert_eq!(state(&port).0, PortState::Down);
    // Attached, but the driver set up only its transmit queue.
    let port = Port::new(0, 0, MEMORY);
    port.attach(MEMORY, g.ram);
    let event = port.with(|p| g.bring_up_queues(p, &[TRANSMIT_QUEUE]));
    assert!(matches!(event, PortEvent::None));
    assert_eq!(state(&port).0, PortState::Down);
    assert_eq!(ends(&port), (false, None));
    // Only its receive queue: the same.
    let port = Port::new(0, 0, MEMORY);
    port.attach(MEMORY, g.ram);
    port.with(|p| g.bring_up_queues(p, &[RECEIVE_QUEUE]));
    assert_eq!(state(&port).0, PortState::Down);
}

#[test]
fn a_ring_outside_the_guests_memory_is_a_bad_ring_at_driver_ok() {
    // The transport believes in MEM_SIZE bytes, but the VM's memory ends
    // before the receive ring (at 0x2000).
    let mut small = vec![0u8; 0x1800];
    let g = Guest::new();
    let port = Port::new(0, 0, MEMORY);
    port.attach(MEMORY, over_vec(&mut small));
    let event = port.with(|p| g.bring_up(p));
    assert!(matches!(event, PortEvent::BadRing(_)));
    assert_eq!(state(&port).0, PortState::Down, "never up");
    assert_eq!(ends(&port), (false, None));
}

#[test]
fn a_reset_takes_it_down_with_a_new_generation_until_it_is_ready_again() {
    let g = Guest::new();
    let port = Port::new(0, 0, MEMORY);
    port.attach(MEMORY, g.ram);
    port.with(|p| g.bring_up(p));
    let (_, up) = state(&port);
    assert!(matches!(port.with(reset), PortEvent::None));
    assert_eq!(state(&port), (PortState::Down, up + 1));
    assert_eq!(ends(&port), (false, None), "frames for it wait again");
    port.with(|p| g.bring_up(p));
    assert_eq!(state(&port).0, PortState::Up);
    // Writes that change nothing the port acts on leave it alone.
    let before = state(&port);
    let event = port.with(|p| {
        let effect = p.transport.write(offset_of_queue_sel(), 4, 0).unwrap();
        p.after_write(effect)
    });
    assert!(matches!(event, PortEvent::None));
    assert_eq!(state(&port), before);
}

fn offset_of_queue_sel() -> u64 {
    crate::devices::virtio::mmio::offset::QUEUE_SEL
}

#[test]
fn detach_takes_it_down_for_a_restart_or_away_for_good() {
    let g = Guest::new();
    let port = Port::new(0, 0, MEMORY);
    port.attach(MEMORY, g.ram);
    port.with(|p| g.bring_up(p));
    let (_, up) = state(&port);
    // Its VM stopped and will run again: frames for it wait.
    port.detach(false);
    assert_eq!(state(&port), (PortState::Down, up + 1));
    assert_eq!(ends(&port), (false, None));
    // A restart: a fresh device (the driver starts from nothing).
    port.attach(MEMORY, g.ram);
    assert_eq!(
        port.with(|p| p
            .transport
            .read(crate::devices::virtio::mmio::offset::STATUS, 4)),
        Ok(0)
    );
    port.with(|p| g.bring_up(p));
    assert_eq!(state(&port).0, PortState::Up);
    // Its VM ended for good: frames for it are dropped, it sends nothing.
    port.detach(true);
    assert_eq!(state(&port).0, PortState::Gone);
    assert_eq!(ends(&port), (false, Some(false)));
    // A register write after that (none should come) cannot revive it.
    port.with(|p| g.bring_up(p));
    assert_eq!(state(&port).0, PortState::Gone);
}

#[test]
fn the_blamed_port_is_broken_and_keeps_its_first_fault_until_its_next_run() {
    let g = Guest::new();
    let port = Port::new(0, 0, MEMORY);
    port.attach(MEMORY, g.ram);
    port.with(|p| g.bring_up(p));
    let first = RingError::ReadableInReceive { head: 3 };
    port.with(|p| p.blame(first));
    port.with(|p| p.blame(RingError::WritableInTransmit { head: 1 }));
    assert_eq!(state(&port).0, PortState::Broken);
    assert_eq!(port.with(|p| p.fault()), Some(first));
    assert_eq!(
        ends(&port),
        (false, Some(false)),
        "its peer's frames are dropped"
    );
    // Its VM is stopped and restarted: a clean slate.
    port.detach(false);
    port.attach(MEMORY, g.ram);
    assert_eq!(port.with(|p| p.fault()), None);
    port.with(|p| g.bring_up(p));
    assert_eq!(state(&port).0, PortState::Up);
}
