//! Tests of the shared-ring service against the real hvt net driver, transport and split queues: writes out in order, reads answered with commits, a full transmit ring holding requests (or dropping them when told), bad requests refused or stopped by name, and property tests of interleavings and of hostile ring contents.

use super::*;
use crate::devices::virtio::mmio::{Transport, TransportConfig, WriteEffect};
use crate::devices::virtio::net::NetDevice;
use crate::hvt::call::{self, HvtCallError, HvtDone, HvtEnv, NoDisks, PortAccess};
use crate::hvt::net::tests::{device_give, device_take};
use crate::hvt::net::{QUEUE_SIZE, RING_RESERVE, program};
use crate::mem::access::GuestRead;
use crate::mem::raw::RawRam;
use crate::mem::raw::testing::over_vec;
use proptest::prelude::*;
use std::collections::VecDeque;

const MIB: u64 = 1 << 20;
const MEMORY: u64 = 6 * MIB;
const VISIBLE: u64 = MEMORY - RING_RESERVE;
/// The guest's frame buffers: slot `i` at `GUEST_BUF + i * 2048`.
const GUEST_BUF: u64 = 0x10_0000;
/// The Solo5 handle of the one device.
const HANDLE: u32 = 1;

struct Rig {
    _backing: Vec<u8>,
    mem: RawRam,
    t: Transport<NetDevice>,
    /// The ring's address (the guest's `mem_size`).
    ring: u64,
    nets: Vec<(u64, RingPlace)>,
    /// The guest's next request id.
    id: u32,
}

fn rig() -> Rig {
    let mut backing = vec![0u8; MEMORY as usize];
    let mut mem = over_vec(&mut backing);
    let mut t = Transport::new(
        NetDevice::new([2, 0, 0, 0, 0, 1]),
        TransportConfig::new(MEMORY),
    );
    let place = RingPlace::of(MEMORY, 0).unwrap();
    assert_eq!(
        program(&mut t, &mut mem, place).unwrap(),
        WriteEffect::DriverOk
    );
    let gpa = super::place(VISIBLE).unwrap();
    Rig {
        _backing: backing,
        mem,
        t,
        ring: gpa,
        nets: vec![(u64::from(HANDLE), place)],
        id: 0,
    }
}

fn frame(n: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 ^ n) as u8).collect()
}

impl Rig {
    fn word(&self, off: u64) -> u32 {
        self.mem.read_u32(Gpa(self.ring + off)).unwrap()
    }

    fn set_word(&mut self, off: u64, v: u32) {
        self.mem.write_u32(Gpa(self.ring + off), v).unwrap();
    }

    /// The guest queues a request (as Solo5's bindings do).
    fn submit(&mut self, op: u32, handle: u32, data: u64, len: u32) {
        let tail = self.word(RING_ENT_TAIL);
        let e = self.ring + RING_ENTRIES + u64::from(tail % RING_SIZE) * RING_ENTRY_SIZE;
        self.mem.write_u32(Gpa(e), op).unwrap();
        self.mem
            .write_u32(Gpa(e + RING_ENTRY_HANDLE), handle)
            .unwrap();
        self.mem.write_u64(Gpa(e + RING_ENTRY_DATA), data).unwrap();
        self.mem.write_u32(Gpa(e + RING_ENTRY_LEN), len).unwrap();
        self.mem.write_u32(Gpa(e + RING_ENTRY_ID), self.id).unwrap();
        self.id += 1;
        self.set_word(RING_ENT_TAIL, tail.wrapping_add(1));
    }

    /// The guest queues frame `f` from its buffer slot `slot`.
    fn write(&mut self, slot: u64, f: &[u8]) {
        let at = GUEST_BUF + slot * 2048;
        self.mem.write(Gpa(at), f).unwrap();
        self.submit(RING_OP_NET_WRITE, HANDLE, at, f.len() as u32);
    }

    /// The guest's next commit, consumed: (id, ret, len).
    fn commit(&mut self) -> Option<(u32, i32, u32)> {
        let head = self.word(RING_COM_HEAD);
        if head == self.word(RING_COM_TAIL) {
            return None;
        }
        let c = RING_COMMITS + u64::from(head % RING_SIZE) * RING_COMMIT_SIZE;
        let got = (
            self.word(c),
            self.word(c + RING_COMMIT_RET) as i32,
            self.word(c + RING_COMMIT_LEN),
        );
        self.set_word(RING_COM_HEAD, head.wrapping_add(1));
        Some(got)
    }

    fn serve(&mut self, budget: u32, drop_full: bool) -> Pass {
        serve(&mut self.mem, self.ring, &self.nets, budget, drop_full)
    }

    /// The polling core takes one transmitted frame, if any.
    fn device_take(&mut self) -> Option<Vec<u8>> {
        device_take(&mut self.t, &mut self.mem)
    }

    /// The polling core delivers `f`; false when no receive buffer is
    /// posted.
    fn device_give(&mut self, f: &[u8]) -> bool {
        device_give(&mut self.t, &mut self.mem, f)
    }

    fn guest_bytes(&self, at: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.mem.read(Gpa(at), &mut out).unwrap();
        out
    }
}

#[test]
fn the_ring_takes_the_last_whole_pages_below_the_reserve() {
    assert_eq!(place(4 * MIB), Some(0x3F_3000));
    assert_eq!(place(4 * MIB).unwrap() % PAGE, 0);
    assert!(place(4 * MIB).unwrap() + RING_BYTES <= 4 * MIB);
    // A guest would keep less than 2 MiB: no ring.
    assert_eq!(place(2 * MIB), None);
    assert_eq!(place(RING_BYTES - 1), None);
}

#[test]
fn writes_go_out_in_order_and_reads_are_answered_with_commits() {
    let mut r = rig();
    assert!(!pending(&r.mem, r.ring).unwrap());
    for i in 0..3 {
        r.write(i, &frame(i, 60 + i as usize));
    }
    assert!(pending(&r.mem, r.ring).unwrap());
    let pass = r.serve(64, false);
    assert_eq!((pass.sent, pass.stop, pass.fault), (3, Stop::Empty, None));
    assert!(!pending(&r.mem, r.ring).unwrap());
    assert_eq!(r.word(RING_ENT_HEAD), 3);
    for i in 0..3 {
        assert_eq!(r.device_take().unwrap(), frame(i, 60 + i as usize));
    }
    assert_eq!(r.device_take(), None);
    // Writes get no commit.
    assert_eq!(r.commit(), None);

    // A read with nothing waiting is answered AGAIN at once.
    let buf = GUEST_BUF + 10 * 2048;
    r.submit(RING_OP_NET_READ, HANDLE, buf, 1514);
    let pass = r.serve(64, false);
    assert_eq!((pass.reads, pass.received), (1, 0));
    assert_eq!(r.commit(), Some((3, hvt::R_AGAIN, 0)));
    // A frame waiting is copied into the read's buffer.
    assert!(r.device_give(&frame(9, 100)));
    r.submit(RING_OP_NET_READ, HANDLE, buf, 1514);
    let pass = r.serve(64, false);
    assert_eq!((pass.reads, pass.received), (1, 1));
    assert_eq!(r.commit(), Some((4, hvt::R_OK, 100)));
    assert_eq!(r.guest_bytes(buf, 100), frame(9, 100));
    assert_eq!(r.commit(), None);
}

#[test]
fn a_full_transmit_ring_holds_the_requests_until_a_slot_is_free() {
    let mut r = rig();
    let n = u64::from(QUEUE_SIZE) + 5;
    for i in 0..n {
        r.write(i, &frame(i, 64));
    }
    // A read behind the writes waits its turn.
    r.submit(RING_OP_NET_READ, HANDLE, GUEST_BUF + 200 * 2048, 1514);
    let pass = r.serve(1000, false);
    assert_eq!((pass.sent, pass.stop), (u32::from(QUEUE_SIZE), Stop::Full));
    assert_eq!(r.commit(), None, "the read waits behind the writes");
    assert_eq!(r.word(RING_ENT_HEAD), u32::from(QUEUE_SIZE));
    // The peer takes two: two more go out, the rest still wait.
    for i in 0..2 {
        assert_eq!(r.device_take().unwrap(), frame(i, 64));
    }
    assert_eq!(r.serve(1000, false).sent, 2);
    let mut taken = 2;
    while let Some(f) = r.device_take() {
        assert_eq!(f, frame(taken, 64));
        taken += 1;
    }
    let pass = r.serve(1000, false);
    assert_eq!((pass.sent, pass.reads, pass.stop), (3, 1, Stop::Empty));
    while let Some(f) = r.device_take() {
        assert_eq!(f, frame(taken, 64));
        taken += 1;
    }
    assert_eq!(taken, n, "every frame went out, in order, once");
    assert_eq!(r.commit(), Some((n as u32, hvt::R_AGAIN, 0)));
}

#[test]
fn writes_that_waited_long_enough_are_dropped_and_counted() {
    let mut r = rig();
    let n = u64::from(QUEUE_SIZE) + 5;
    for i in 0..n {
        r.write(i, &frame(i, 64));
    }
    let pass = r.serve(1000, true);
    assert_eq!((pass.sent, pass.dropped), (u32::from(QUEUE_SIZE), 5));
    assert_eq!(pass.stop, Stop::Empty);
    assert!(!pending(&r.mem, r.ring).unwrap());
}

#[test]
fn a_buffer_outside_the_guests_memory_stops_it_by_name_and_moves_nothing() {
    for (op, data, len) in [
        // Across the start of the ring.
        (RING_OP_NET_WRITE, 0x3F_2FF0, 60),
        // In the reserve.
        (RING_OP_NET_WRITE, VISIBLE + 0x100, 60),
        (RING_OP_NET_READ, 0x3F_2FF0, 1514),
        // Wrapping around.
        (RING_OP_NET_READ, u64::MAX - 10, 1514),
    ] {
        let mut r = rig();
        r.write(0, &frame(0, 60));
        r.submit(op, HANDLE, data, len);
        let pass = r.serve(64, false);
        let error = pass.fault.expect("stopped");
        assert_eq!(
            error,
            RingError::HvtRingBuffer {
                entry: 1,
                write: op == RING_OP_NET_WRITE,
                gpa: data,
                len
            }
        );
        let call = if op == RING_OP_NET_WRITE {
            "net_write"
        } else {
            "net_read"
        };
        assert_eq!(
            error.to_string(),
            format!(
                "hvt shared ring entry 1: {call}: Invalid guest access: gpa={data:#x}, sz={len}"
            )
        );
        // The good write before it went out; the bad request moved nothing.
        assert_eq!(r.device_take().unwrap(), frame(0, 60));
        assert_eq!(r.device_take(), None);
        assert_eq!(r.commit(), None);
    }
}

#[test]
fn a_ring_that_broke_the_rules_is_served_no_more() {
    let mut r = rig();
    let shared = RingShared::default();
    shared.attach(r.mem, r.ring, r.nets.iter().copied().collect(), 1);
    r.write(0, &frame(0, 60));
    r.submit(RING_OP_NET_WRITE, HANDLE, VISIBLE + 0x100, 60);
    let pass = shared.service(0, 64).unwrap();
    assert!(pass.fault.is_some());
    assert_eq!(pass.sent, 1);
    // Later passes leave it alone: the good frame before the bad request
    // goes out once.
    assert_eq!(shared.service(1, 64), None);
    assert_eq!(r.device_take().unwrap(), frame(0, 60));
    assert_eq!(r.device_take(), None);
}

#[test]
fn indices_claiming_more_than_the_ring_stop_the_guest() {
    let mut r = rig();
    r.set_word(RING_ENT_TAIL, RING_SIZE + 1);
    let pass = r.serve(64, false);
    assert_eq!(
        pass.fault,
        Some(RingError::HvtRingIndices {
            head: 0,
            tail: RING_SIZE + 1
        })
    );
    assert!(
        pass.fault
            .unwrap()
            .to_string()
            .contains("1025 requests submitted")
    );
    assert_eq!(r.device_take(), None);
    // Exactly a ring's worth is fine (and wraps).
    let mut r = rig();
    r.set_word(RING_ENT_HEAD, u32::MAX - 1);
    r.set_word(RING_ENT_TAIL, u32::MAX - 1);
    for i in 0..4 {
        r.write(i, &frame(i, 60));
    }
    assert_eq!(r.serve(64, false).sent, 4);
    assert_eq!(r.word(RING_ENT_HEAD), 2);
}

#[test]
fn unknown_handles_and_operations_are_refused_and_counted() {
    let mut r = rig();
    r.submit(RING_OP_NET_WRITE, 7, GUEST_BUF, 60);
    r.submit(99, HANDLE, GUEST_BUF, 60);
    r.submit(RING_OP_NET_READ, 7, GUEST_BUF, 1514);
    // Longer than the device carries.
    r.submit(RING_OP_NET_WRITE, HANDLE, GUEST_BUF, 1515);
    // A read buffer shorter than the waiting frame: EINVAL, the frame
    // stays for a longer one.
    assert!(r.device_give(&frame(3, 200)));
    r.submit(RING_OP_NET_READ, HANDLE, GUEST_BUF, 100);
    r.submit(RING_OP_NET_READ, HANDLE, GUEST_BUF, 1514);
    let pass = r.serve(64, false);
    assert_eq!(
        (pass.sent, pass.refused, pass.reads, pass.received),
        (0, 4, 2, 1)
    );
    assert_eq!(r.commit(), Some((2, hvt::R_EINVAL, 0)));
    assert_eq!(r.commit(), Some((4, hvt::R_EINVAL, 0)));
    assert_eq!(r.commit(), Some((5, hvt::R_OK, 200)));
    assert_eq!(r.device_take(), None);
}

#[test]
fn a_pass_serves_at_most_its_budget_and_commits_wait_for_room() {
    let mut r = rig();
    for i in 0..10 {
        r.write(i, &frame(i, 60));
    }
    let pass = r.serve(4, false);
    assert_eq!((pass.sent, pass.stop), (4, Stop::Budget));
    assert_eq!(r.serve(100, false).sent, 6);
    // A guest that never consumes its commits: reads wait.
    let mut r = rig();
    r.set_word(RING_COM_TAIL, RING_SIZE);
    r.submit(RING_OP_NET_READ, HANDLE, GUEST_BUF, 1514);
    let pass = r.serve(64, false);
    assert_eq!((pass.reads, pass.stop), (0, Stop::CommitsFull));
    assert!(pending(&r.mem, r.ring).unwrap());
}

impl Rig {
    /// Port access `port` (`size` bytes, an `out`) by the rig's guest, its
    /// ring attached or not; a halt's struct at [`GUEST_BUF`].
    fn io(&mut self, port: u16, size: u8, attached: bool) -> Result<HvtDone, HvtCallError> {
        let shared: &'static RingShared = Box::leak(Box::default());
        if attached {
            shared.attach(self.mem, self.ring, self.nets.iter().copied().collect(), 1);
        }
        let mut env = HvtEnv {
            ram: self.mem,
            memory: self.ring,
            nets: self.nets.iter().copied().collect(),
            wall_ns: 0,
            tsc_hz: 1_000_000_000,
            vm: 0,
            disks: &NoDisks,
            retrying: 0,
            ring: attached.then_some(shared),
        };
        let io = PortAccess {
            port,
            size,
            is_in: false,
            string: false,
        };
        call::handle(io, GUEST_BUF as u32, &mut env, |_| {})
    }
}

#[test]
fn a_kick_is_accepted_only_from_a_guest_with_a_ring() {
    let mut r = rig();
    assert_eq!(r.io(hvt::RING_KICK_PORT, 4, true), Ok(HvtDone::Advance));
    assert!(matches!(
        r.io(hvt::RING_KICK_PORT, 1, true),
        Err(HvtCallError::Access(_))
    ));
    assert_eq!(
        r.io(hvt::RING_KICK_PORT, 4, false),
        Err(HvtCallError::NotACall {
            port: hvt::RING_KICK_PORT,
            write: true
        })
    );
}

#[test]
fn a_halt_waits_for_the_requests_still_in_the_ring() {
    let mut r = rig();
    r.mem.write_u64(Gpa(GUEST_BUF), 0).unwrap();
    r.mem
        .write_u32(Gpa(GUEST_BUF + hvt::HALT_STATUS), 7)
        .unwrap();
    let halt = hvt::HYPERCALL_PIO_BASE + hvt::HC_HALT;
    r.write(1, &frame(1, 60));
    assert!(matches!(r.io(halt, 4, true), Ok(HvtDone::Retry(_))));
    assert_eq!(r.serve(64, false).sent, 1);
    // Served, but not yet taken by the peer: still on its way.
    assert!(matches!(r.io(halt, 4, true), Ok(HvtDone::Retry(_))));
    assert_eq!(r.device_take().unwrap(), frame(1, 60));
    assert_eq!(r.io(halt, 4, true), Ok(HvtDone::Exit(7)));
}

/// One step of a random interleaving.
#[derive(Clone, Debug)]
enum Step {
    /// The guest queues a frame of this length.
    Write(usize),
    /// The guest queues a read.
    Read,
    /// The polling core serves the ring.
    Serve(u32),
    /// The peer takes a frame.
    Take,
    /// The peer delivers a frame of this length.
    Give(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (14usize..1515).prop_map(Step::Write),
        Just(Step::Read),
        (1u32..80).prop_map(Step::Serve),
        Just(Step::Take),
        (14usize..1515).prop_map(Step::Give),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the order, every frame the guest writes reaches the peer
    /// once and in order, and every frame the peer gives reaches the
    /// guest's reads once and in order.
    #[test]
    fn no_frame_is_lost_duplicated_or_reordered(steps in proptest::collection::vec(step(), 0..300)) {
        let mut r = rig();
        let (mut written, mut outbound) = (0u64, VecDeque::new());
        let (mut given, mut inbound) = (0u64, VecDeque::new());
        // Reads submitted and not answered, by id, with their buffer.
        let mut reads: VecDeque<(u32, u64)> = VecDeque::new();
        let mut submitted = 0u32;
        let serve = |r: &mut Rig, budget, inbound: &mut VecDeque<Vec<u8>>, reads: &mut VecDeque<(u32, u64)>| {
            let pass = r.serve(budget, false);
            prop_assert_eq!(pass.fault, None);
            prop_assert_eq!(pass.refused, 0);
            while let Some((id, ret, len)) = r.commit() {
                let (want, buf) = reads.pop_front().expect("a commit for a read");
                prop_assert_eq!(id, want);
                if ret == hvt::R_OK {
                    let f = inbound.pop_front().expect("a frame was given");
                    prop_assert_eq!(r.guest_bytes(buf, len as usize), f);
                } else {
                    prop_assert_eq!(ret, hvt::R_AGAIN);
                }
            }
            Ok(())
        };
        for s in steps {
            // The guest never has more than the ring in flight.
            let in_flight = r.word(RING_ENT_TAIL).wrapping_sub(r.word(RING_ENT_HEAD));
            match s {
                Step::Write(len) if in_flight < RING_SIZE - 1 => {
                    let f = frame(written, len);
                    r.write(u64::from(submitted % 512), &f);
                    submitted += 1;
                    outbound.push_back(f);
                    written += 1;
                }
                Step::Read if in_flight < RING_SIZE - 1 => {
                    let buf = GUEST_BUF + 512 * 2048 + u64::from(submitted % 64) * 2048;
                    reads.push_back((r.id, buf));
                    r.submit(RING_OP_NET_READ, HANDLE, buf, 1514);
                    submitted += 1;
                }
                Step::Write(_) | Step::Read => {}
                Step::Serve(budget) => serve(&mut r, budget, &mut inbound, &mut reads)?,
                Step::Take => {
                    if let Some(f) = r.device_take() {
                        prop_assert_eq!(Some(f), outbound.pop_front());
                    }
                }
                Step::Give(len) => {
                    let f = frame(given ^ 0x55, len);
                    if r.device_give(&f) {
                        inbound.push_back(f);
                        given += 1;
                    }
                }
            }
        }
        // Drain: everything written reaches the peer.
        for _ in 0..1000 {
            serve(&mut r, 1000, &mut inbound, &mut reads)?;
            while let Some(f) = r.device_take() {
                prop_assert_eq!(Some(f), outbound.pop_front());
            }
            if outbound.is_empty() && !pending(&r.mem, r.ring).unwrap() {
                break;
            }
        }
        prop_assert!(outbound.is_empty());
        prop_assert!(reads.is_empty());
    }

    /// Whatever a hostile guest writes into its ring, the service never
    /// panics, writes nothing outside the guest's memory but the reserve's
    /// rings, and either serves or stops it by name.
    #[test]
    fn any_ring_contents_are_served_or_stopped_by_name(
        words in proptest::collection::vec((0u64..256, any::<u32>()), 0..64),
        tail in any::<u32>(),
        head in any::<u32>(),
    ) {
        let mut r = rig();
        for (at, v) in words {
            let off = RING_ENTRIES + at * 4;
            r.set_word(off, v);
        }
        r.set_word(RING_ENT_HEAD, head);
        r.set_word(RING_ENT_TAIL, tail);
        let pass = r.serve(64, false);
        let served = pass.sent + pass.reads + pass.refused + pass.dropped;
        prop_assert!(served <= 64);
        if pass.fault.is_none() {
            prop_assert!(tail.wrapping_sub(head) <= RING_SIZE);
        }
    }
}
