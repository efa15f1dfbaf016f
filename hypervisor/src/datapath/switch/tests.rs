//! Tests of the NIC switch driven by a fake wire and fake guests: delivery by MAC, broadcast, unknown unicast, anti-spoofing, sizes, ports down or gone, a full transmit ring, blame.

use super::*;
use crate::datapath::policy::{FrameCopy, PassAll};
use crate::datapath::port::{Port, PortInner};
use crate::datapath::testing::{FakeWire, Guest, SLOT, frame};
use crate::devices::virtio::testing::MEM_SIZE;
use proptest::prelude::*;
use vmm_abi::corral::devices::port_mac;

const MEMORY: u64 = MEM_SIZE as u64;
const BROADCAST: [u8; 6] = [0xff; 6];

/// Ports of VMs 0.. (port 0 each), and their guests.
struct Ports {
    ports: Vec<Port>,
}

impl Attached for Ports {
    type End = PortInner;
    fn with<R>(&self, i: usize, f: impl FnOnce(&mut PortInner) -> R) -> R {
        self.ports[i].with(f)
    }

    fn index_of(&self, port: u32) -> Option<usize> {
        // Port `i` of the switch is port `i` of the run here.
        (port < self.ports.len() as u32).then_some(port as usize)
    }
}

struct Rig {
    wire: FakeWire,
    guests: Vec<Guest>,
    ports: Ports,
    switch: Switch<crate::devices::virtio::queue::Chain>,
}

impl Rig {
    /// `n` guests, each port up with `posted` receive buffers.
    fn new(n: u32, posted: u32) -> Rig {
        let mut guests = Vec::new();
        let mut ports = Vec::new();
        let mut switch = Switch::default();
        for vm in 0..n {
            let g = Guest::new();
            let p = Port::new(vm, 0, MEMORY);
            p.attach(MEMORY, g.ram);
            p.with(|inner| g.bring_up(inner));
            assert!(switch.attach(port_mac(vm, 0), false));
            guests.push(g);
            ports.push(p);
        }
        for g in &mut guests {
            for _ in 0..posted {
                g.post(SLOT);
            }
        }
        Rig {
            wire: FakeWire::new(64),
            guests,
            ports: Ports { ports },
            switch,
        }
    }

    fn inbound(&mut self) -> (u32, Vec<usize>, Vec<Blame>) {
        self.inbound_with(&mut PassAll)
    }

    fn outbound(&mut self) -> (u32, Vec<usize>, Vec<Blame>) {
        self.outbound_with(&mut PassAll)
    }

    fn inbound_with(&mut self, policy: &mut impl FramePolicy) -> (u32, Vec<usize>, Vec<Blame>) {
        let (mut woken, mut blamed) = (Vec::new(), Vec::new());
        let n = self.switch.inbound(
            &mut self.wire,
            &self.ports,
            64,
            |i| woken.push(i),
            |b| blamed.push(b),
            policy,
        );
        (n, woken, blamed)
    }

    fn outbound_with(&mut self, policy: &mut impl FramePolicy) -> (u32, Vec<usize>, Vec<Blame>) {
        let (mut woken, mut blamed) = (Vec::new(), Vec::new());
        let n = self.switch.outbound(
            &mut self.wire,
            &self.ports,
            64,
            |i| woken.push(i),
            |b| blamed.push(b),
            policy,
        );
        (n, woken, blamed)
    }
}

/// An Ethernet frame from `src` to `dst` of `len` bytes, tagged.
fn eth(dst: [u8; 6], src: [u8; 6], len: usize, tag: u8) -> Vec<u8> {
    let mut f = frame(len, tag);
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f
}

const OUTSIDE: [u8; 6] = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];

#[test]
fn unicast_goes_to_the_port_with_that_mac_only() {
    let mut rig = Rig::new(3, 4);
    let f = eth(port_mac(1, 0), OUTSIDE, 60, 7);
    rig.wire.arrive(f.clone());
    let (n, woken, blamed) = rig.inbound();
    assert_eq!((n, woken, blamed), (1, vec![1], vec![]));
    assert_eq!(rig.guests[1].received(), vec![f]);
    assert!(rig.guests[0].received().is_empty());
    assert!(rig.guests[2].received().is_empty());
    assert_eq!(rig.wire.recycled, vec![0]);
    assert_eq!(rig.wire.rx_flushes, 1);
    assert_eq!(rig.switch.ports[1].flow.rx_frames, 1);
    assert_eq!(rig.switch.ports[1].flow.rx_bytes, 60);
}

#[test]
fn broadcast_and_multicast_go_to_every_port() {
    let mut rig = Rig::new(3, 4);
    let b = eth(BROADCAST, OUTSIDE, 42, 1);
    let m = eth([0x01, 0x00, 0x5e, 0, 0, 1], OUTSIDE, 64, 2);
    rig.wire.arrive(b.clone());
    rig.wire.arrive(m.clone());
    let (n, woken, _) = rig.inbound();
    assert_eq!(n, 2);
    assert_eq!(woken, vec![0, 1, 2, 0, 1, 2]);
    for g in &mut rig.guests {
        assert_eq!(g.received(), vec![b.clone(), m.clone()]);
    }
}

#[test]
fn unknown_unicast_and_runts_are_dropped_and_counted() {
    let mut rig = Rig::new(2, 4);
    rig.wire.arrive(eth([0x02, 0, 0, 0, 0, 9], OUTSIDE, 60, 0));
    rig.wire.arrive(vec![0xff; 10]);
    let (n, woken, _) = rig.inbound();
    assert_eq!((n, woken.len()), (2, 0));
    assert_eq!(rig.switch.wire.drop_unknown, 1);
    assert_eq!(rig.switch.wire.drop_runt, 1);
    assert_eq!(rig.switch.wire.rx_frames, 2);
    assert_eq!(rig.wire.recycled, vec![0, 1], "every slot goes back");
}

#[test]
fn a_port_without_buffers_loses_the_frame_and_the_wire_goes_on() {
    let mut rig = Rig::new(2, 0);
    rig.guests[1].post(SLOT);
    rig.wire.arrive(eth(BROADCAST, OUTSIDE, 60, 3));
    let (n, woken, _) = rig.inbound();
    assert_eq!((n, woken), (1, vec![1]));
    assert_eq!(rig.switch.ports[0].flow.drop_no_buffer, 1);
    assert_eq!(rig.guests[1].received().len(), 1);
}

#[test]
fn a_buffer_too_small_is_kept_for_the_next_frame() {
    let mut rig = Rig::new(1, 0);
    rig.guests[0].post(64);
    rig.wire.arrive(eth(BROADCAST, OUTSIDE, 200, 1));
    let small = eth(BROADCAST, OUTSIDE, 40, 2);
    rig.wire.arrive(small.clone());
    rig.inbound();
    assert_eq!(rig.switch.ports[0].flow.drop_size, 1);
    assert_eq!(rig.guests[0].received(), vec![small]);
    assert_eq!(
        rig.guests[0].posted(),
        0,
        "one buffer served the second frame"
    );
}

#[test]
fn frames_for_a_port_that_is_gone_count_as_drop_peer() {
    let mut rig = Rig::new(2, 4);
    rig.ports.ports[0].detach(true);
    rig.wire.arrive(eth(BROADCAST, OUTSIDE, 60, 3));
    rig.inbound();
    assert_eq!(rig.switch.ports[0].flow.drop_peer, 1);
    assert_eq!(rig.switch.ports[1].flow.rx_frames, 1);
}

#[test]
fn frames_from_a_guest_reach_the_wire_intact() {
    let mut rig = Rig::new(2, 0);
    let a = eth(OUTSIDE, port_mac(0, 0), 60, 1);
    let b = eth(BROADCAST, port_mac(1, 0), 1514, 2);
    rig.guests[0].send(&a);
    rig.guests[1].send(&b);
    let (n, woken, blamed) = rig.outbound();
    assert_eq!((n, woken, blamed), (2, vec![0, 1], vec![]));
    assert_eq!(rig.wire.sent, vec![a, b]);
    assert_eq!(rig.wire.tx_flushes, 1, "one doorbell per pass");
    assert_eq!(rig.guests[0].in_flight(), 0);
    assert_eq!(rig.switch.ports[1].flow.tx_bytes, 1514);
    assert_eq!(
        (rig.switch.wire.tx_frames, rig.switch.wire.tx_bytes),
        (2, 1574)
    );
}

#[test]
fn a_guest_cannot_send_from_another_mac() {
    let mut rig = Rig::new(2, 0);
    rig.guests[0].send(&eth(OUTSIDE, port_mac(1, 0), 60, 1));
    rig.guests[0].send(&eth(OUTSIDE, [0x02, 9, 9, 9, 9, 9], 60, 2));
    let good = eth(OUTSIDE, port_mac(0, 0), 60, 3);
    rig.guests[0].send(&good);
    let (n, _, _) = rig.outbound();
    assert_eq!(n, 3);
    assert_eq!(rig.switch.ports[0].flow.drop_spoofed, 2);
    assert_eq!(rig.wire.sent, vec![good]);
    assert_eq!(rig.guests[0].in_flight(), 0, "dropped frames are completed");
}

#[test]
fn frames_the_wire_cannot_carry_are_dropped() {
    let mut rig = Rig::new(1, 0);
    rig.guests[0].send(&[0x02; 10]);
    rig.guests[0].send(&eth(OUTSIDE, port_mac(0, 0), 1515, 1));
    rig.outbound();
    assert_eq!(rig.switch.ports[0].flow.drop_size, 2);
    assert!(rig.wire.sent.is_empty());
}

#[test]
fn a_full_transmit_ring_leaves_frames_in_the_guest_ring() {
    let mut rig = Rig::new(1, 0);
    rig.wire = FakeWire::new(1);
    for tag in 0..3 {
        rig.guests[0].send(&eth(OUTSIDE, port_mac(0, 0), 60, tag));
    }
    let (n, _, _) = rig.outbound();
    assert_eq!(n, 1);
    assert_eq!(rig.switch.wire.tx_full, 1);
    assert_eq!(rig.guests[0].in_flight(), 2, "two frames still wait");
    rig.wire.tx_free = 8;
    rig.outbound();
    assert_eq!(rig.wire.sent.len(), 3);
}

#[test]
fn a_broken_receive_ring_is_blamed_on_its_port_only() {
    let mut rig = Rig::new(2, 0);
    // A buffer the device may not write: the guest broke the rules.
    rig.guests[0].post_flags(SLOT, 0);
    rig.guests[1].post(SLOT);
    rig.wire.arrive(eth(BROADCAST, OUTSIDE, 60, 1));
    let (_, woken, blamed) = rig.inbound();
    assert_eq!(blamed.len(), 1);
    assert_eq!(blamed[0].0, 0);
    assert_eq!(woken, vec![1]);
    assert_eq!(rig.guests[1].received().len(), 1);
    assert!(rig.ports.ports[0].with(|p| p.fault()).is_some());
    // The frame it lost is counted against it, not the other port.
    assert_eq!(rig.switch.ports[0].flow.drop_fault, 1);
    assert_eq!(rig.switch.ports[1].flow.drop_fault, 0);
    assert_eq!(rig.switch.ports[1].flow.rx_frames, 1);
}

#[test]
fn a_broken_transmit_ring_is_blamed_on_its_port() {
    let mut rig = Rig::new(1, 0);
    rig.guests[0].send_raw(MEMORY + 0x1000, 64, 0);
    let (_, _, blamed) = rig.outbound();
    assert_eq!(blamed.len(), 1);
    assert!(rig.wire.sent.is_empty());
    assert!(rig.ports.ports[0].with(|p| p.fault()).is_some());
    assert_eq!(rig.switch.ports[0].flow.drop_fault, 1);
    assert_eq!(rig.switch.ports[0].flow.tx_frames, 0);
}

/// An address behind a bridging port (a guest past a network function).
const BEHIND: [u8; 6] = [0x02, 0x43, 0x00, 0x00, 0x09, 0x00];

#[test]
fn a_bridging_port_sends_for_machines_behind_it_and_gets_their_frames() {
    let mut rig = Rig::new(2, 4);
    rig.switch.ports[0].bridge = true;
    let out = eth(OUTSIDE, BEHIND, 60, 1);
    rig.guests[0].send(&out);
    rig.outbound();
    assert_eq!(rig.wire.sent, vec![out]);
    assert_eq!(rig.switch.port_for(&BEHIND), Some(0));
    let back = eth(BEHIND, OUTSIDE, 60, 2);
    rig.wire.arrive(back.clone());
    rig.inbound();
    assert_eq!(rig.guests[0].received(), vec![back]);
    assert!(rig.guests[1].received().is_empty());
    assert_eq!(rig.switch.wire.drop_unknown, 0);
}

#[test]
fn a_bridging_port_cannot_take_a_port_or_group_address() {
    let mut rig = Rig::new(2, 4);
    rig.switch.ports[0].bridge = true;
    rig.guests[0].send(&eth(OUTSIDE, port_mac(1, 0), 60, 1));
    rig.guests[0].send(&eth(OUTSIDE, BROADCAST, 60, 2));
    let own = eth(OUTSIDE, port_mac(0, 0), 60, 3);
    rig.guests[0].send(&own);
    // A port that does not bridge learns nothing and may not send for
    // others.
    rig.guests[1].send(&eth(OUTSIDE, BEHIND, 60, 4));
    rig.outbound();
    assert_eq!(rig.wire.sent, vec![own]);
    assert_eq!(rig.switch.ports[0].flow.drop_spoofed, 2);
    assert_eq!(rig.switch.ports[1].flow.drop_spoofed, 1);
    assert_eq!(rig.switch.port_for(&BEHIND), None);
    assert_eq!(rig.switch.port_for(&port_mac(1, 0)), Some(1));
}

#[test]
fn a_learned_address_moves_and_the_oldest_is_forgotten_when_full() {
    let mut rig = Rig::new(2, 0);
    rig.switch.ports[0].bridge = true;
    rig.switch.ports[1].bridge = true;
    rig.guests[0].send(&eth(OUTSIDE, BEHIND, 60, 1));
    rig.outbound();
    rig.guests[1].send(&eth(OUTSIDE, BEHIND, 60, 2));
    rig.outbound();
    assert_eq!(rig.switch.port_for(&BEHIND), Some(1), "it moved");
    rig.wire = FakeWire::new(1000);
    for n in 0..MAX_LEARNED as u8 {
        rig.guests[0].send(&eth(OUTSIDE, [0x02, 0x77, 0, 0, 0, n], 60, n));
        rig.outbound();
    }
    assert_eq!(rig.switch.port_for(&BEHIND), None, "the oldest went");
    assert_eq!(rig.switch.port_for(&[0x02, 0x77, 0, 0, 0, 63]), Some(0));
}

proptest! {
    /// Whatever arrives from the wire, every slot goes back to the NIC,
    /// and every frame is delivered, or dropped and counted, never both.
    #[test]
    fn every_wire_frame_is_accounted_for(
        frames in proptest::collection::vec(
            (0u8..4, proptest::collection::vec(any::<u8>(), 0..200)), 0..40),
        posted in 0u32..8,
    ) {
        let mut rig = Rig::new(2, posted);
        for (kind, mut f) in frames.clone() {
            let dst = match kind {
                0 => BROADCAST,
                1 => port_mac(0, 0),
                2 => port_mac(1, 0),
                _ => [0x02, 1, 2, 3, 4, 5],
            };
            if f.len() >= 6 {
                f[..6].copy_from_slice(&dst);
            }
            rig.wire.arrive(f);
        }
        let mut total = 0;
        loop {
            let (n, _, blamed) = rig.inbound();
            prop_assert!(blamed.is_empty());
            if n == 0 { break; }
            total += n;
        }
        prop_assert_eq!(total as usize, frames.len());
        prop_assert_eq!(rig.wire.recycled.len(), frames.len());
        let w = rig.switch.wire;
        prop_assert_eq!(w.rx_frames as usize, frames.len());
        let mut per_port = 0;
        for (i, p) in rig.switch.ports.iter().enumerate() {
            let f = p.flow;
            prop_assert_eq!(rig.guests[i].received().len() as u64, f.rx_frames);
            per_port += f.rx_frames + f.drop_no_buffer + f.drop_size + f.drop_peer + f.drop_fault;
        }
        // Each frame is a runt, unknown, or counted once per port it was for.
        let expected: u64 = frames.iter().map(|(kind, f)| {
            if f.len() < ETH_HEADER as usize { 0 } else {
                match kind { 0 => 2, 1 | 2 => 1, _ => 0 }
            }
        }).sum();
        prop_assert_eq!(per_port, expected);
    }
}

/// A NIC queue hook in miniature: judges its own copy of each frame and
/// drops every second one.
struct EverySecond {
    buf: Vec<u8>,
    seen: Vec<Vec<u8>>,
}

impl EverySecond {
    fn new() -> Self {
        EverySecond {
            buf: vec![0; 2048],
            seen: Vec::new(),
        }
    }
}

impl FramePolicy for EverySecond {
    const INSPECTS: bool = true;

    fn judge<K: FrameSink>(&mut self, _: &FrameCopy<'_, K>) -> Verdict {
        panic!("a NIC queue hook judges its own copy")
    }

    fn own_buffer(&mut self) -> Option<&mut [u8]> {
        Some(&mut self.buf)
    }

    fn judge_own(&mut self, len: usize) -> Verdict {
        self.seen.push(self.buf[..len].to_vec());
        if self.seen.len().is_multiple_of(2) {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }
}

#[test]
fn a_receive_hook_judges_each_wire_frame_once_before_delivery() {
    let mut rig = Rig::new(2, 4);
    let frames: Vec<_> = (0..4)
        .map(|i| eth(port_mac(0, 0), OUTSIDE, 60 + i, i as u8))
        .collect();
    for f in &frames {
        rig.wire.arrive(f.clone());
    }
    let bcast = eth(BROADCAST, OUTSIDE, 60, 9);
    rig.wire.arrive(bcast.clone());
    let mut hook = EverySecond::new();
    let (n, _, blamed) = rig.inbound_with(&mut hook);
    assert_eq!((n, blamed.len()), (5, 0));
    // It saw every frame once (the broadcast too, once for both ports).
    let mut all = frames.clone();
    all.push(bcast.clone());
    assert_eq!(hook.seen, all);
    assert_eq!(
        rig.guests[0].received(),
        vec![frames[0].clone(), frames[2].clone(), bcast.clone()]
    );
    assert_eq!(rig.guests[1].received(), vec![bcast]);
    assert_eq!(rig.switch.wire.drop_hook, 2);
    assert_eq!(rig.switch.wire.rx_frames, 5);
}

#[test]
fn a_transmit_hook_judges_frames_after_the_spoofing_check() {
    let mut rig = Rig::new(1, 0);
    let frames: Vec<_> = (0..4)
        .map(|i| eth(OUTSIDE, port_mac(0, 0), 60 + i, i as u8))
        .collect();
    rig.guests[0].send(&frames[0]);
    // A spoofed frame is dropped before the hook sees it.
    rig.guests[0].send(&eth(OUTSIDE, [0x02, 9, 9, 9, 9, 9], 60, 7));
    for f in &frames[1..] {
        rig.guests[0].send(f);
    }
    let mut hook = EverySecond::new();
    let (n, _, _) = rig.outbound_with(&mut hook);
    assert_eq!(n, 5);
    assert_eq!(hook.seen, frames);
    assert_eq!(rig.wire.sent, vec![frames[0].clone(), frames[2].clone()]);
    let flow = rig.switch.ports[0].flow;
    assert_eq!(
        (flow.tx_frames, flow.drop_hook, flow.drop_spoofed),
        (2, 2, 1)
    );
}

/// A NIC queue hook that rewrites each frame it passes: its destination
/// becomes `to` and its last byte 0xee.
struct Rewriter {
    buf: Vec<u8>,
    to: [u8; 6],
}

impl FramePolicy for Rewriter {
    const INSPECTS: bool = true;

    fn judge<K: FrameSink>(&mut self, _: &FrameCopy<'_, K>) -> Verdict {
        panic!("a NIC queue hook judges its own copy")
    }

    fn own_buffer(&mut self) -> Option<&mut [u8]> {
        Some(&mut self.buf)
    }

    fn judge_own(&mut self, len: usize) -> Verdict {
        self.buf[..6].copy_from_slice(&self.to);
        self.buf[len - 1] = 0xee;
        Verdict::Pass
    }

    fn rewrote(&self) -> bool {
        true
    }
}

fn rewritten(f: &[u8], to: [u8; 6]) -> Vec<u8> {
    let mut w = f.to_vec();
    w[..6].copy_from_slice(&to);
    *w.last_mut().unwrap() = 0xee;
    w
}

#[test]
fn a_receive_hook_that_rewrites_a_frame_has_it_switched_and_delivered_as_written() {
    let mut rig = Rig::new(2, 4);
    // Addressed to VM 0; the hook sends it to VM 1.
    let f = eth(port_mac(0, 0), OUTSIDE, 60, 3);
    rig.wire.arrive(f.clone());
    let mut hook = Rewriter {
        buf: vec![0; 2048],
        to: port_mac(1, 0),
    };
    let (n, woken, blamed) = rig.inbound_with(&mut hook);
    assert_eq!((n, woken, blamed.len()), (1, vec![1], 0));
    assert!(rig.guests[0].received().is_empty());
    assert_eq!(
        rig.guests[1].received(),
        vec![rewritten(&f, port_mac(1, 0))]
    );
    // The NIC's buffer went back as usual.
    assert_eq!(rig.wire.recycled.len(), 1);
}

#[test]
fn a_transmit_hook_that_rewrites_a_frame_has_it_sent_as_written() {
    let mut rig = Rig::new(1, 0);
    let f = eth(OUTSIDE, port_mac(0, 0), 60, 5);
    rig.guests[0].send(&f);
    let to = [0x02, 1, 2, 3, 4, 5];
    let mut hook = Rewriter {
        buf: vec![0; 2048],
        to,
    };
    let (n, _, _) = rig.outbound_with(&mut hook);
    assert_eq!(n, 1);
    assert_eq!(rig.wire.sent, vec![rewritten(&f, to)]);
    assert_eq!(rig.switch.ports[0].flow.tx_frames, 1);
}

#[test]
fn a_receive_hook_sends_frames_back_onto_the_wire_and_holds_the_rest_in_the_nics_ring() {
    use crate::hooks::packet::BACK_SLOTS;
    use crate::hooks::packet::tests::{bouncer, nic_hook};
    use vmm_abi::manifest::NicDir;
    let mut rig = Rig::new(1, 8);
    // bouncer() sends back frames whose first byte is 1 (XDP_TX).
    let n = BACK_SLOTS + 2;
    let frames: Vec<_> = (0..n)
        .map(|i| {
            let mut f = eth(port_mac(0, 0), OUTSIDE, 60, i as u8);
            f[0] = 1;
            f
        })
        .collect();
    for f in &frames {
        rig.wire.arrive(f.clone());
    }
    let h = nic_hook(NicDir::Rx, bouncer());
    // The hook takes frames until its queue is full; the rest wait.
    let (taken, _, _) = rig.inbound_with(&mut *h.lock());
    assert_eq!(taken, BACK_SLOTS as u32);
    let mut run = h.lock();
    let sent = run.send_back_with(|b| rig.switch.send_raw(&mut rig.wire, b));
    assert_eq!(sent, BACK_SLOTS as u32);
    drop(run);
    WireTx::flush(&mut rig.wire);
    let (taken, _, _) = rig.inbound_with(&mut *h.lock());
    assert_eq!(taken, 2);
    h.lock()
        .send_back_with(|b| rig.switch.send_raw(&mut rig.wire, b));
    WireTx::flush(&mut rig.wire);
    // Every frame went back onto the wire as it came, none to the guest.
    assert_eq!(rig.wire.sent, frames);
    assert!(rig.guests[0].received().is_empty());
    assert_eq!(rig.switch.wire.tx_frames, n as u64);
    assert_eq!(rig.switch.wire.drop_hook, n as u64);
    let f = h.flow();
    assert_eq!((f.tx, f.sent, f.unsent), (n as u64, n as u64, 0));
    // A frame too short for the wire is taken and counted, not sent.
    assert_eq!(rig.switch.send_raw(&mut rig.wire, &[0; 4]), Some(false));
}

#[test]
fn a_receive_hook_redirects_a_frame_to_one_of_the_nics_ports_whatever_its_address() {
    use crate::hooks::packet::tests::{bouncer, nic_hook};
    use vmm_abi::manifest::NicDir;
    let mut rig = Rig::new(2, 4);
    // bouncer(): frames starting with 2 go to the port in byte 1.
    let to = |port: u8, tag: u8| {
        let mut f = eth(port_mac(0, 0), OUTSIDE, 60, tag);
        f[0] = 2;
        f[1] = port;
        f
    };
    let (to_1, to_0, nowhere) = (to(1, 1), to(0, 2), to(9, 3));
    for f in [&to_1, &to_0, &nowhere] {
        rig.wire.arrive(f.clone());
    }
    let h = nic_hook(NicDir::Rx, bouncer());
    let (n, woken, blamed) = rig.inbound_with(&mut *h.lock());
    assert_eq!((n, blamed.len()), (3, 0));
    assert_eq!(woken, [1, 0]);
    assert_eq!(rig.guests[1].received(), vec![to_1]);
    assert_eq!(rig.guests[0].received(), vec![to_0]);
    // The one to a port the NIC does not have: not sent, dropped.
    assert_eq!(rig.switch.wire.drop_hook, 1);
    assert_eq!(rig.switch.ports[1].flow.rx_frames, 1);
    let f = h.flow();
    assert_eq!((f.redirect, f.sent, f.unsent), (3, 2, 1));
    assert!(rig.wire.sent.is_empty());
}

#[test]
fn a_transmit_hook_sends_frames_back_to_the_guest_that_sent_them() {
    use crate::hooks::packet::BACK_SLOTS;
    use crate::hooks::packet::tests::{bouncer, nic_hook};
    use vmm_abi::manifest::NicDir;
    let mut rig = Rig::new(2, 8);
    // bouncer() sends back frames whose first byte is 1 (XDP_TX).
    let n = BACK_SLOTS + 2;
    let frames: Vec<_> = (0..n)
        .map(|i| {
            let mut f = eth(OUTSIDE, port_mac(0, 0), 60, i as u8);
            f[0] = 1;
            f
        })
        .collect();
    for f in &frames {
        rig.guests[0].send(f);
    }
    let h = nic_hook(NicDir::Tx, bouncer());
    // The hook takes frames until its queue is full, which then goes to
    // the sender's receive ring; the rest wait in its transmit ring.
    let (taken, _, blamed) = rig.outbound_with(&mut *h.lock());
    assert_eq!((taken, blamed.len()), (BACK_SLOTS as u32, 0));
    let (taken, _, _) = rig.outbound_with(&mut *h.lock());
    assert_eq!(taken, 2);
    assert_eq!(rig.guests[0].received(), frames);
    assert!(rig.guests[1].received().is_empty());
    assert!(rig.wire.sent.is_empty(), "nothing reached the wire");
    let port = rig.switch.ports[0].flow;
    assert_eq!(
        (port.drop_hook, port.rx_frames, port.tx_frames),
        (n as u64, n as u64, 0)
    );
    let f = h.flow();
    assert_eq!((f.tx, f.sent, f.unsent), (n as u64, n as u64, 0));
}
