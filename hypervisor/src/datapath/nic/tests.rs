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
use proptest::prelude::*;
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

/// The NIC with its raw views hidden: the switch takes its general path
/// every time.
struct Hidden<'a>(&'a mut Wire<Nic>);

impl WireRx for Hidden<'_> {
    fn next(&mut self) -> Option<(u16, u32)> {
        WireRx::next(self.0)
    }
    fn read(&self, slot: u16, len: u32, f: impl FnMut(&[u8])) {
        WireRx::read(&*self.0, slot, len, f);
    }
    fn recycle(&mut self, slot: u16) {
        WireRx::recycle(self.0, slot);
    }
    fn flush(&mut self) {
        WireRx::flush(self.0);
    }
}

impl WireTx for Hidden<'_> {
    fn claim(&mut self) -> Option<u16> {
        WireTx::claim(self.0)
    }
    fn write(&mut self, slot: u16, at: u32, bytes: &[u8]) -> u32 {
        WireTx::write(self.0, slot, at, bytes)
    }
    fn post(&mut self, slot: u16, len: u32) {
        WireTx::post(self.0, slot, len);
    }
    fn flush(&mut self) {
        WireTx::flush(self.0);
    }
}

impl Rig {
    /// A pass on the general path only.
    fn general_pass(&mut self) -> (u32, u32) {
        let mut hidden = Hidden(&mut self.wire);
        let i = self.switch.inbound(
            &mut hidden,
            &self.ports,
            64,
            |_| {},
            |b| panic!("{b:?}"),
            &mut PassAll,
        );
        let o = self.switch.outbound(
            &mut hidden,
            &self.ports,
            64,
            |_| {},
            |b| panic!("{b:?}"),
            &mut PassAll,
        );
        (i, o)
    }

    /// Everything a guest, the wire or the report can see.
    #[allow(clippy::type_complexity)]
    fn seen(
        &mut self,
    ) -> (
        Vec<Vec<Vec<u8>>>,
        Vec<Vec<(u32, u32)>>,
        Vec<Vec<u8>>,
        String,
    ) {
        let got = self.guests.iter_mut().map(Guest::received).collect();
        let used = self.guests.iter().map(Guest::rx_used_entries).collect();
        let sent = self.fake.device.borrow().sent.clone();
        let flows: Vec<_> = self.switch.ports.iter().map(|p| p.flow).collect();
        let counters = format!("{flows:?} {:?} {:?}", self.switch.wire, self.wire.error);
        (got, used, sent, counters)
    }
}

#[test]
fn the_nic_offers_raw_views_of_its_buffers_only_where_they_are() {
    let mut r = rig(1);
    assert!(WireTx::raw(&r.wire, 0).is_none(), "no slot is claimed yet");
    let slot = WireTx::claim(&mut r.wire).unwrap();
    assert!(WireTx::raw(&r.wire, slot).is_some());
    assert!(
        WireTx::raw(&r.wire, slot + 1).is_none(),
        "not the claimed slot"
    );
    assert!(WireRx::raw(&r.wire, 0, 64).is_some());
    assert!(
        WireRx::raw(&r.wire, 0, 4096).is_none(),
        "longer than a buffer"
    );
    assert!(WireRx::raw(&r.wire, 8, 64).is_none(), "no such descriptor");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any mix of frames from the wire (to a port, broadcast, unknown,
    /// runts, too long for a buffer), frames from guests (their own
    /// source or a spoofed one, good and bad lengths), buffers posted
    /// (big enough or not) and passes gives the same frames, used
    /// entries, sent frames and counters on the one-copy path as on the
    /// general path.
    #[test]
    fn the_one_copy_path_does_what_the_general_path_does(
        steps in proptest::collection::vec((0u8..5, 0u8..4, 0usize..300), 1..60),
    ) {
        let (mut fast, mut general) = (rig(2), rig(2));
        let outside = [0x52, 0x55, 10, 0, 2, 2];
        for (n, &(what, who, len)) in steps.iter().enumerate() {
            let tag = n as u8;
            let port = u32::from(who % 2);
            for r in [&mut fast, &mut general] {
                match what {
                    0 => {
                        let dst = match who {
                            0 | 1 => port_mac(port, 0),
                            2 => [0xff; 6],
                            _ => [0x02, 0, 0, 0, 0, 0x99],
                        };
                        let mut f = eth(dst, outside, len.max(14), tag);
                        f.truncate(len.max(1));
                        r.fake.device.borrow_mut().receive(&f);
                    }
                    1 => {
                        let src = if who < 3 { port_mac(port, 0) } else { port_mac(1 - port, 0) };
                        let mut f = eth(outside, src, len.clamp(14, 244), tag);
                        f.truncate(if who == 2 { len.min(13) } else { f.len() });
                        r.guests[port as usize].send(&f);
                    }
                    2 => r.guests[port as usize].post(if who == 3 { 32 } else { SLOT }),
                    _ => {}
                }
            }
            if what >= 3 {
                prop_assert_eq!(fast.pass(), general.general_pass());
            }
        }
        prop_assert_eq!(fast.pass(), general.general_pass());
        prop_assert_eq!(fast.seen(), general.seen());
    }
}

#[test]
fn zz_profile_inbound() {
    let mut r = rig(1);
    let outside = [0x52, 0x55, 10, 0, 2, 2];
    let f = eth(port_mac(0, 0), outside, 64, 1);
    let g = eth(outside, port_mac(0, 0), 64, 1);
    for _ in 0..2000 {
        assert!(r.fake.device.borrow_mut().receive(&f));
        r.guests[0].send(&g);
        r.pass();
        r.guests[0].post(SLOT);
    }
}
