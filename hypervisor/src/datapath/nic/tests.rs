//! The switch over the real e1000 driver and the fake device modelled on Bochs: frames from the wire reach guests' virtio rings and guests' frames reach the wire, with the driver's drops in the counters.

use super::*;
use crate::datapath::policy::PassAll;
use crate::datapath::port::{Port, PortInner};
use crate::datapath::switch::{Attached, Switch};
use crate::datapath::testing::{Guest, SLOT, frame};
use crate::devices::virtio::queue::Chain;
use crate::devices::virtio::testing::MEM_SIZE;
use crate::mem::raw::RawRam;
use crate::nic::e1000::E1000;
use crate::nic::fake::{DMA_BASE, EEPROM_MAC, FakeNic, FakeRegs};
use vmm_abi::corral::devices::port_mac;

type Nic = E1000<FakeRegs, RawRam, 8>;

struct Ports(Vec<Port>);

impl Attached for Ports {
    type End = PortInner;
    fn with<R>(&self, i: usize, f: impl FnOnce(&mut PortInner) -> R) -> R {
        self.0[i].with(f)
    }
}

fn eth(dst: [u8; 6], src: [u8; 6], len: usize, tag: u8) -> Vec<u8> {
    let mut f = frame(len, tag);
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f
}

struct Rig {
    fake: FakeNic,
    wire: Wire<Nic>,
    switch: Switch<Chain>,
    guests: Vec<Guest>,
    ports: Ports,
}

fn rig(vms: u32) -> Rig {
    let fake = FakeNic::new(Nic::DMA_BYTES);
    let nic = Nic::new(fake.regs(), fake.dma, DMA_BASE, None).unwrap();
    let mut switch = Switch::default();
    let mut guests = Vec::new();
    let mut ports = Vec::new();
    for vm in 0..vms {
        let mut g = Guest::new();
        let p = Port::new(vm, 0, MEM_SIZE as u64);
        p.attach(MEM_SIZE as u64, g.ram);
        p.with(|inner| g.bring_up(inner));
        for _ in 0..16 {
            g.post(SLOT);
        }
        assert!(switch.attach(port_mac(vm, 0), false));
        guests.push(g);
        ports.push(p);
    }
    Rig {
        fake,
        wire: Wire::new(nic),
        switch,
        guests,
        ports: Ports(ports),
    }
}

impl Rig {
    fn pass(&mut self) -> (u32, u32) {
        let i = self.switch.inbound(
            &mut self.wire,
            &self.ports,
            64,
            |_| {},
            |b| panic!("{b:?}"),
            &mut PassAll,
        );
        let o = self.switch.outbound(
            &mut self.wire,
            &self.ports,
            64,
            |_| {},
            |b| panic!("{b:?}"),
            &mut PassAll,
        );
        (i, o)
    }
}

#[test]
fn frames_cross_between_the_wire_and_the_guests() {
    let mut r = rig(2);
    let outside = [0x52, 0x55, 10, 0, 2, 2];
    let to_1 = eth(port_mac(1, 0), outside, 98, 1);
    let bcast = eth([0xff; 6], outside, 60, 2);
    assert!(r.fake.device.borrow_mut().receive(&to_1));
    assert!(r.fake.device.borrow_mut().receive(&bcast));
    let from_0 = eth(outside, port_mac(0, 0), 1514, 3);
    r.guests[0].send(&from_0);
    assert_eq!(r.pass(), (2, 1));
    assert_eq!(r.guests[0].received(), vec![bcast.clone()]);
    assert_eq!(r.guests[1].received(), vec![to_1, bcast]);
    assert_eq!(r.fake.device.borrow().sent, vec![from_0]);
    assert!(r.wire.error.is_none());
    let flow = r.wire.flow(r.switch.wire);
    assert_eq!((flow.rx_frames, flow.tx_frames, flow.rx_errors), (2, 1, 0));
    assert_eq!(r.wire.nic.mac().0, EEPROM_MAC);
}

#[test]
fn the_wire_keeps_going_for_many_ring_lengths() {
    let mut r = rig(1);
    let outside = [0x52, 0x55, 10, 0, 2, 2];
    let mut want = Vec::new();
    let mut sent = Vec::new();
    for n in 0..40u8 {
        let f = eth(port_mac(0, 0), outside, 60 + usize::from(n), n);
        assert!(r.fake.device.borrow_mut().receive(&f));
        want.push(f);
        let g = eth(outside, port_mac(0, 0), 64, n);
        r.guests[0].send(&g);
        sent.push(g);
        r.pass();
        r.guests[0].post(SLOT);
    }
    assert_eq!(r.guests[0].received(), want);
    assert_eq!(r.fake.device.borrow().sent, sent);
    assert_eq!(r.fake.device.borrow().missed, 0);
}

#[test]
fn frames_the_nic_marks_bad_are_counted_not_delivered() {
    let mut r = rig(1);
    // A frame with an error bit set, then a good one.
    assert!(r.fake.device.borrow_mut().receive_raw(64, 0x03, 0x01));
    let good = eth(port_mac(0, 0), [0x52, 0x55, 10, 0, 2, 2], 60, 9);
    assert!(r.fake.device.borrow_mut().receive(&good));
    r.pass();
    assert_eq!(r.guests[0].received(), vec![good]);
    assert_eq!(r.wire.flow(r.switch.wire).rx_errors, 1);
}
