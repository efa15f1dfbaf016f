//! The owned mode's pump against a fake zero-copy NIC that reads and writes the guest's memory by host address: frames both ways without a copy, the checks on every buffer and frame, a full ring, and revocation when the port changes.

use super::*;
use crate::datapath::port::Port;
use crate::datapath::testing::{Guest, frame, reset};
use crate::devices::virtio::testing::MEM_SIZE;
use crate::mem::access::GuestRead;
use std::collections::VecDeque;
use vmm_abi::corral::devices::port_mac;

const MEMORY: u64 = MEM_SIZE as u64;
/// Where the tests' receive buffers go: 2 KiB apart from 0x14000.
const BUFS: u64 = 0x14000;
const BUF: u32 = 0x800;
const OUTSIDE: [u8; 6] = [0x52, 0x55, 10, 0, 2, 2];

/// A NIC that reads and writes the guest through a view by host address.
struct FakeZc {
    bus: RawRam,
    rx: VecDeque<(u64, u16)>,
    rx_done: VecDeque<(u16, Option<u32>)>,
    rx_room: usize,
    tx_room: usize,
    tx_inflight: VecDeque<u16>,
    sent: Vec<Vec<u8>>,
    revokes: u32,
}

impl FakeZc {
    fn new(bus: RawRam) -> Self {
        FakeZc {
            bus,
            rx: VecDeque::new(),
            rx_done: VecDeque::new(),
            rx_room: 63,
            tx_room: 31,
            tx_inflight: VecDeque::new(),
            sent: Vec::new(),
            revokes: 0,
        }
    }

    /// A frame from the wire into the next given buffer; `false` if none.
    fn arrive(&mut self, f: &[u8]) -> bool {
        let Some((bus, cookie)) = self.rx.pop_front() else {
            return false;
        };
        assert!(f.len() as u64 <= ZC_RX_BYTES);
        self.bus.write(Gpa(bus), f).unwrap();
        self.rx_done.push_back((cookie, Some(f.len() as u32)));
        true
    }

    /// The next given buffer comes back marked bad.
    fn arrive_bad(&mut self) {
        let (_, cookie) = self.rx.pop_front().unwrap();
        self.rx_done.push_back((cookie, None));
    }
}

impl ZeroCopy for FakeZc {
    fn zc_rx_give(&mut self, bus: u64, cookie: u16) -> Result<bool, NicError> {
        if self.rx.len() >= self.rx_room {
            return Ok(false);
        }
        // The whole receive window must be the guest's.
        let mut probe = vec![0u8; ZC_RX_BYTES as usize];
        self.bus.read(Gpa(bus), &mut probe).unwrap();
        self.rx.push_back((bus, cookie));
        Ok(true)
    }
    fn zc_rx_taken(&mut self) -> Result<Option<(u16, Option<u32>)>, NicError> {
        Ok(self.rx_done.pop_front())
    }
    fn zc_rx_flush(&mut self) {}
    fn zc_tx_give(
        &mut self,
        header: &[u8; ETH_HEADER_BYTES],
        body: u64,
        body_len: u32,
        cookie: u16,
    ) -> Result<bool, NicError> {
        if self.tx_inflight.len() >= self.tx_room {
            return Ok(false);
        }
        let mut f = header.to_vec();
        let mut rest = vec![0u8; body_len as usize];
        if body_len > 0 {
            self.bus.read(Gpa(body), &mut rest).unwrap();
        }
        f.extend(rest);
        self.sent.push(f);
        self.tx_inflight.push_back(cookie);
        Ok(true)
    }
    fn zc_tx_taken(&mut self) -> Result<Option<u16>, NicError> {
        Ok(self.tx_inflight.pop_front())
    }
    fn zc_tx_flush(&mut self) {}
    fn zc_revoke(&mut self) -> Result<(), NicError> {
        self.rx.clear();
        self.rx_done.clear();
        self.tx_inflight.clear();
        self.revokes += 1;
        Ok(())
    }
}

struct Rig {
    guest: Guest,
    port: Port,
    nic: FakeZc,
    owned: Owned,
}

fn rig(buffers: u64) -> Rig {
    let mut guest = Guest::new();
    let port = Port::new(0, 0, MEMORY);
    port.attach(MEMORY, guest.ram);
    port.with(|p| guest.bring_up(p));
    for k in 0..buffers {
        guest.post_raw(BUFS + k * u64::from(BUF), BUF, VIRTQ_DESC_F_WRITE);
    }
    let nic = FakeZc::new(guest.bus_view());
    Rig {
        guest,
        port,
        nic,
        owned: Owned::default(),
    }
}

impl Rig {
    fn pass(&mut self) -> Pass {
        let (nic, owned) = (&mut self.nic, &mut self.owned);
        // A clock that moves one tick per reading.
        let ticks = core::cell::Cell::new(0u64);
        let clock = || ticks.replace(ticks.get() + 1);
        self.port
            .with(|p| owned.pass(nic, p, port_mac(0, 0), 64, &clock))
    }

    /// Frames in the guest's receive ring: (descriptor, frame bytes).
    fn received(&self) -> Vec<Vec<u8>> {
        self.guest
            .rx_used_entries()
            .into_iter()
            .filter(|&(_, len)| len > 0)
            .map(|(d, len)| {
                let addr = BUFS + u64::from(d) * u64::from(BUF);
                let mut b = vec![0u8; len as usize];
                self.guest.ram.read(Gpa(addr), &mut b).unwrap();
                assert_eq!(b[..NET_HDR_LEN as usize], receive_header());
                b.split_off(NET_HDR_LEN as usize)
            })
            .collect()
    }
}

fn eth(dst: [u8; 6], src: [u8; 6], len: usize, tag: u8) -> Vec<u8> {
    let mut f = frame(len, tag);
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f
}

#[test]
fn the_nic_writes_into_the_guests_buffers_and_reads_its_frames() {
    let mut r = rig(4);
    r.pass();
    assert_eq!(r.nic.rx.len(), 4, "every posted buffer given");
    // The NIC was given each buffer behind its header, by host address.
    let base = r.guest.bus_base();
    assert_eq!(r.nic.rx[0].0, base + BUFS + u64::from(NET_HDR_LEN));
    let a = eth(port_mac(0, 0), OUTSIDE, 60, 1);
    let b = eth([0xff; 6], OUTSIDE, 1514, 2);
    assert!(r.nic.arrive(&a) && r.nic.arrive(&b));
    let out = eth(OUTSIDE, port_mac(0, 0), 300, 3);
    r.guest.send(&out);
    let pass = r.pass();
    assert_eq!(pass.blamed, None);
    assert_eq!(r.received(), vec![a, b]);
    assert_eq!(r.nic.sent, vec![out]);
    assert_eq!(r.owned.flow.rx_frames, 2);
    assert_eq!(r.owned.flow.tx_frames, 1);
    // Sent frames complete when the NIC is done with them.
    assert_eq!(r.guest.in_flight(), 1);
    r.pass();
    assert_eq!(r.guest.in_flight(), 0);
    assert!(r.owned.error.is_none());
    // Each frame's own step took one tick (a reading on each side), and so
    // did each publish or doorbell after work: receive gave 4 buffers and
    // rang (5), then completed 2 frames and published (3); transmit sent
    // one frame, rang and published (3), then completed it and published
    // (2). Idle passes are free.
    let want = Busy {
        rx_done: Steps { n: 2, ticks: 3 },
        rx_given: Steps { n: 4, ticks: 5 },
        tx_sent: Steps { n: 1, ticks: 3 },
        tx_done: Steps { n: 1, ticks: 2 },
    };
    assert_eq!(r.owned.busy, want);
    assert_eq!((want.rx(), want.tx()), (8, 5));
    r.pass();
    assert_eq!(r.owned.busy, want);
}

#[test]
fn a_window_takes_each_kind_of_step_at_its_average() {
    let steps = |n, each| Steps { n, ticks: n * each };
    let at = |c: u64| Busy {
        rx_done: steps(c, 100),
        rx_given: steps(c, 60),
        tx_sent: steps(c, 150),
        tx_done: steps(c, 70),
    };
    // 256 frames each way, but the window's edges caught one refill fewer
    // (a buffer came back after it ended) and one send more: the same cost.
    let mut end = at(300);
    end.rx_given = steps(299, 60);
    end.tx_sent = steps(301, 150);
    let window = end.since(&at(44));
    assert_eq!(window.rx_given.n, 255);
    assert_eq!(window.for_frames(256, 256), (256 * 160, 256 * 220));
    // A plain sum would have moved by a refill and a send.
    assert_eq!(window.rx(), 256 * 160 - 60);
    assert_eq!(window.tx(), 256 * 220 + 150);
    // No steps of a kind add nothing; counters wrap.
    assert_eq!(Busy::default().for_frames(256, 256), (0, 0));
    let wrapped = Steps { n: 2, ticks: 5 }.since(&Steps {
        n: u64::MAX,
        ticks: u64::MAX - 4,
    });
    assert_eq!(wrapped, Steps { n: 3, ticks: 10 });
}

#[test]
fn a_frame_from_another_mac_is_dropped_before_the_nic_sees_it() {
    let mut r = rig(0);
    r.guest.send(&eth(OUTSIDE, [0x02, 9, 9, 9, 9, 9], 60, 1));
    r.guest.send(&[0u8; 10]);
    r.pass();
    assert!(r.nic.sent.is_empty());
    assert_eq!(r.owned.flow.drop_spoofed, 1);
    assert_eq!(r.owned.flow.drop_size, 1);
    assert_eq!(r.guest.in_flight(), 0, "both completed");
}

#[test]
fn small_and_bad_buffers_are_judged() {
    // Too small for the largest frame: back to the guest empty, counted.
    let mut r = rig(0);
    r.guest.post_raw(BUFS, 200, VIRTQ_DESC_F_WRITE);
    r.pass();
    assert_eq!(r.owned.flow.drop_size, 1);
    assert_eq!(r.guest.rx_used_entries(), vec![(0, 0)]);
    assert!(r.nic.rx.is_empty());
    // A buffer the NIC could write past the end of memory: the guest broke
    // the rules and is blamed; the NIC got nothing.
    let mut r = rig(0);
    r.guest
        .post_raw(MEMORY - u64::from(BUF), BUF, VIRTQ_DESC_F_WRITE);
    let pass = r.pass();
    assert!(
        matches!(
            pass.blamed,
            Some(RingError::NicWindowOutside {
                window: ZC_RX_BYTES,
                ..
            })
        ),
        "{pass:?}"
    );
    assert!(r.nic.rx.is_empty());
    assert!(r.port.with(|p| p.fault()).is_some());
    // A receive buffer the device may not write.
    let mut r = rig(0);
    r.guest.post_raw(BUFS, BUF, 0);
    assert!(matches!(
        r.pass().blamed,
        Some(RingError::ReadableInReceive { .. })
    ));
}

#[test]
fn a_frame_longer_than_its_buffer_or_marked_bad_is_not_delivered() {
    let mut r = rig(0);
    r.guest
        .post_raw(BUFS, NET_HDR_LEN + MIN_RX_ROOM, VIRTQ_DESC_F_WRITE);
    r.guest.post_raw(BUFS + 0x800, BUF, VIRTQ_DESC_F_WRITE);
    r.pass();
    assert!(r.nic.arrive(&eth(port_mac(0, 0), OUTSIDE, 1600, 1)));
    r.nic.arrive_bad();
    r.pass();
    assert_eq!(r.owned.flow.drop_size, 1);
    assert_eq!(r.owned.flow.rx_frames, 0);
    assert_eq!(r.guest.rx_used_entries(), vec![(0, 0), (1, 0)]);
}

#[test]
fn a_full_transmit_ring_holds_the_frame_for_later() {
    let mut r = rig(0);
    r.nic.tx_room = 1;
    let frames: Vec<_> = (0..3)
        .map(|t| eth(OUTSIDE, port_mac(0, 0), 64, t))
        .collect();
    for f in &frames {
        r.guest.send(f);
    }
    for _ in 0..6 {
        r.pass();
    }
    assert_eq!(r.nic.sent, frames, "all sent, in order, none dropped");
    assert_eq!(r.guest.in_flight(), 0);
    // Every send is timed once, with the doorbell of each pass that sent
    // (those that sent a frame that had waited too: three), and the first
    // pass's publish (it popped frames and completed none).
    assert_eq!(
        r.owned.busy.tx_sent,
        Steps {
            n: 3,
            ticks: 3 + 3 + 1
        }
    );
    // Each completion with its pass's publish.
    assert_eq!(r.owned.busy.tx_done, Steps { n: 3, ticks: 3 + 3 });
}

#[test]
fn the_nic_lets_go_of_the_guests_memory_when_its_port_changes() {
    let mut r = rig(4);
    r.pass();
    let before = r.port.with(|p| p.generation());
    assert!(r.owned.holds(), "buffers given since the start");
    // The VM ends: its port goes down with a new generation.
    r.port.detach(false);
    let after = r.port.with(|p| p.generation());
    assert_ne!(before, after);
    assert!(r.owned.holds(), "not yet: the NIC still holds buffers");
    r.pass();
    assert_eq!(r.nic.revokes, 1);
    assert!(r.nic.rx.is_empty());
    assert!(!r.owned.holds());
    // Nothing more is given while the port is down, and no second revoke.
    r.pass();
    assert_eq!(r.nic.revokes, 1);
    assert!(!r.owned.holds());
}

#[test]
fn a_driver_reset_revokes_before_the_new_rings_are_used() {
    let mut r = rig(2);
    r.pass();
    r.port.with(reset);
    r.guest.restart_driver();
    r.port.with(|p| r.guest.bring_up(p));
    r.guest.post_raw(BUFS, BUF, VIRTQ_DESC_F_WRITE);
    r.pass();
    assert_eq!(r.nic.revokes, 1);
    assert_eq!(r.nic.rx.len(), 1, "only the new ring's buffer");
}

proptest::proptest! {
    /// The cookie stack against a model: a cookie is handed out only while
    /// nothing holds it, every held value comes back once under its own
    /// cookie, and all `SLOTS` cookies can be held at once.
    #[test]
    fn cookies_are_handed_out_once_until_they_come_back(ops in proptest::collection::vec(0u16..80, 0..400)) {
        let mut slots = Slots::<u32>::default();
        let mut model: std::collections::HashMap<u16, u32> = std::collections::HashMap::new();
        for (n, op) in ops.into_iter().enumerate() {
            let value = n as u32;
            if op < 64 {
                // Give back cookie `op` (or nothing, if it is not held).
                proptest::prop_assert_eq!(slots.release(op), model.remove(&op));
            } else {
                match slots.next_free() {
                    Some(c) => {
                        proptest::prop_assert!(usize::from(c) < SLOTS);
                        proptest::prop_assert!(!model.contains_key(&c));
                        slots.hold(value);
                        model.insert(c, value);
                    }
                    None => proptest::prop_assert_eq!(model.len(), SLOTS),
                }
            }
        }
        // Everything can still be filled up to `SLOTS`.
        while let Some(c) = slots.next_free() {
            proptest::prop_assert!(!model.contains_key(&c));
            slots.hold(0);
            model.insert(c, 0);
        }
        proptest::prop_assert_eq!(model.len(), SLOTS);
    }
}

/// A profiling harness (run it under callgrind, see ARCHITECTURE.md): an
/// owned NIC's pass, a frame each way per pass, twenty buffers posted.
#[test]
fn zz_profile_owned() {
    const POSTED: u64 = 20;
    let mut r = rig(POSTED);
    r.pass();
    let f = eth(port_mac(0, 0), OUTSIDE, 60, 1);
    let out = eth(OUTSIDE, port_mac(0, 0), 60, 2);
    for i in 0..2000u64 {
        assert!(r.nic.arrive(&f));
        r.guest.send(&out);
        assert_eq!(r.pass().blamed, None);
        r.guest.post_raw(
            BUFS + (i % POSTED) * u64::from(BUF),
            BUF,
            VIRTQ_DESC_F_WRITE,
        );
        r.nic.sent.clear();
    }
    assert_eq!(r.owned.flow.rx_frames, 2000);
}
