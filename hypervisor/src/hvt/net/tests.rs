//! Tests of the hvt net driver against the real virtio-mmio transport and split queues playing the polling core's side: set-up, frames both ways in order, full and empty rings, lengths, and a property test of random interleavings (no frame lost, duplicated or reordered).

use super::*;
use crate::devices::virtio::mmio::TransportConfig;
use crate::devices::virtio::net::{read_transmit_frame, write_receive_frame};
use crate::hvt::call::{self, HvtCallError, HvtDone, HvtEnv, NoDisks, PortAccess};
use crate::mem::access::GuestRead;
use crate::mem::raw::RawRam;
use crate::mem::raw::testing::over_vec;
use proptest::prelude::*;
use std::collections::VecDeque;
use vmm_abi::hvt::{self, Hypercall};

const MIB: u64 = 1 << 20;
const MEMORY: u64 = 4 * MIB;
/// Where the guest keeps its frames in these tests.
const GUEST_BUF: u64 = 0x10_0000;

struct Rig {
    /// The VM's memory (`mem` points into it; its heap buffer never moves).
    _backing: Vec<u8>,
    mem: RawRam,
    t: Transport<NetDevice>,
    place: RingPlace,
}

fn rig() -> Rig {
    let mut backing = vec![0u8; MEMORY as usize];
    let mut mem = over_vec(&mut backing);
    let mut t = Transport::new(
        NetDevice::new([2, 0, 0, 0, 0, 1]),
        TransportConfig::new(MEMORY),
    );
    let place = RingPlace::of(MEMORY, 1).unwrap();
    let effect = program(&mut t, &mut mem, place).unwrap();
    assert_eq!(effect, WriteEffect::DriverOk);
    Rig {
        _backing: backing,
        mem,
        t,
        place,
    }
}

fn frame(n: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 ^ n) as u8).collect()
}

impl Rig {
    /// The guest sends `f` (written at its buffer first).
    fn send(&mut self, f: &[u8]) -> Result<(), NetFail> {
        self.mem.write(Gpa(GUEST_BUF), f).unwrap();
        send(&mut self.mem, self.place, Gpa(GUEST_BUF), f.len() as u64)
    }

    /// The guest receives into `room` bytes.
    fn recv(&mut self, room: u64) -> Result<Vec<u8>, NetFail> {
        let n = recv(&mut self.mem, self.place, Gpa(GUEST_BUF), room)?;
        let mut out = vec![0; n as usize];
        self.mem.read(Gpa(GUEST_BUF), &mut out).unwrap();
        Ok(out)
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
}

/// The polling core's side of device `t` over `mem`: takes one transmitted
/// frame, if any.
pub(crate) fn device_take(t: &mut Transport<NetDevice>, mem: &mut RawRam) -> Option<Vec<u8>> {
    let q = t.queue_mut(TRANSMIT_QUEUE).unwrap();
    let chain = q.pop_avail(mem).unwrap()?;
    let mut out = [0u8; 4096];
    let n = read_transmit_frame(&chain, mem, &mut out).unwrap();
    q.push_used(mem, chain.head(), 0).unwrap();
    Some(out[..n].to_vec())
}

/// The polling core's side of device `t` over `mem`: delivers `f`; false
/// when no receive buffer is posted.
pub(crate) fn device_give(t: &mut Transport<NetDevice>, mem: &mut RawRam, f: &[u8]) -> bool {
    let q = t.queue_mut(RECEIVE_QUEUE).unwrap();
    let Some(chain) = q.pop_avail(mem).unwrap() else {
        return false;
    };
    let used = write_receive_frame(&chain, mem, f).unwrap();
    q.push_used(mem, chain.head(), used).unwrap();
    true
}

#[test]
fn the_device_is_set_up_as_a_driver_would_and_its_rings_check() {
    let mut r = rig();
    assert!(r.t.driver_ok());
    for q in [RECEIVE_QUEUE, TRANSMIT_QUEUE] {
        let queue = r.t.queue(q).unwrap();
        assert_eq!(queue.size(), QUEUE_SIZE);
        queue.check_rings(&mut r.mem).unwrap();
    }
    // Every receive buffer is posted; nothing is there to transmit.
    let rx = r.t.queue(RECEIVE_QUEUE).unwrap();
    assert_eq!(rx.avail_pending(&r.mem).unwrap(), QUEUE_SIZE);
    assert!(!ready(&r.mem, r.place).unwrap());
    assert_eq!(r.device_take(), None);
    // The rings lie in the device's span of the reserve.
    let layout = *r.t.queue(TRANSMIT_QUEUE).unwrap().layout();
    let span = MEMORY - RING_RESERVE + DEVICE_SPAN..MEMORY - RING_RESERVE + 2 * DEVICE_SPAN;
    assert!(span.contains(&layout.desc_table) && span.contains(&layout.used_ring));
}

#[test]
fn places_are_only_in_the_reserve() {
    assert_eq!(RingPlace::of(MEMORY, MAX_VM_NETS), None);
    assert_eq!(RingPlace::of(RING_RESERVE - 1, 0), None);
    assert_eq!(
        RingPlace::of(MEMORY, 0).unwrap().base,
        MEMORY - RING_RESERVE
    );
}

#[test]
fn frames_go_out_in_order_and_slots_are_reused_once_done() {
    let mut r = rig();
    assert!(sent(&r.mem, r.place).unwrap());
    r.send(&frame(1, 60)).unwrap();
    assert!(!sent(&r.mem, r.place).unwrap(), "a frame in flight");
    assert_eq!(r.device_take().unwrap(), frame(1, 60));
    assert!(sent(&r.mem, r.place).unwrap());
    for round in 0..3u64 {
        for i in 0..Q {
            r.send(&frame(round * Q + i, 60 + i as usize)).unwrap();
        }
        // All slots are in flight: the next one has to wait.
        assert_eq!(r.send(&frame(0, 60)), Err(NetFail::Again));
        for i in 0..Q {
            assert_eq!(
                r.device_take().unwrap(),
                frame(round * Q + i, 60 + i as usize)
            );
        }
        assert_eq!(r.device_take(), None);
    }
}

#[test]
fn frames_come_in_in_order_and_buffers_are_posted_again() {
    let mut r = rig();
    assert_eq!(r.recv(2048), Err(NetFail::Again));
    for round in 0..3u64 {
        for i in 0..Q {
            assert!(r.device_give(&frame(round + i, 64 + i as usize)));
        }
        // Every buffer is full until the guest takes one.
        assert!(!r.device_give(&frame(0, 64)));
        assert!(ready(&r.mem, r.place).unwrap());
        for i in 0..Q {
            assert_eq!(r.recv(2048).unwrap(), frame(round + i, 64 + i as usize));
        }
        assert!(!ready(&r.mem, r.place).unwrap());
        assert_eq!(r.recv(2048), Err(NetFail::Again));
    }
}

#[test]
fn lengths_are_checked_and_nothing_is_lost_by_a_short_buffer() {
    let mut r = rig();
    let big = frame(7, FRAME_MAX as usize);
    r.send(&big).unwrap();
    assert_eq!(r.device_take().unwrap(), big);
    assert_eq!(
        r.send(&frame(0, FRAME_MAX as usize + 1)),
        Err(NetFail::Length {
            frame: FRAME_MAX + 1,
            room: FRAME_MAX
        })
    );
    assert_eq!(r.device_take(), None);
    assert!(r.device_give(&big));
    assert_eq!(
        r.recv(100),
        Err(NetFail::Length {
            frame: FRAME_MAX,
            room: 100
        })
    );
    // The frame waits for a buffer that fits.
    assert_eq!(r.recv(FRAME_MAX).unwrap(), big);
    // An empty frame to send is a frame too (the datapath judges it).
    r.send(&[]).unwrap();
    assert_eq!(r.device_take().unwrap(), Vec::<u8>::new());
}

#[test]
fn a_guest_buffer_outside_memory_is_refused_before_anything_moves() {
    let mut r = rig();
    let e = send(&mut r.mem, r.place, Gpa(MEMORY - 10), 60);
    assert!(matches!(e, Err(NetFail::Memory(_))));
    assert_eq!(r.device_take(), None);
    assert!(r.device_give(&frame(1, 60)));
    let e = recv(&mut r.mem, r.place, Gpa(MEMORY - 10), 2048);
    assert!(matches!(e, Err(NetFail::Memory(_))));
    // The frame is still there.
    assert_eq!(r.recv(2048).unwrap(), frame(1, 60));
}

#[test]
fn a_used_entry_the_device_could_not_have_written_fails_the_call() {
    let mut r = rig();
    assert!(r.device_give(&frame(1, 60)));
    let used = r.t.queue(RECEIVE_QUEUE).unwrap().layout().used_ring;
    r.mem
        .write(Gpa(used + RING_ENTRIES), &500u32.to_le_bytes())
        .unwrap();
    assert_eq!(
        r.recv(2048),
        Err(NetFail::BadUsed {
            id: 500,
            len: HDR as u32 + 60
        })
    );
}

#[test]
fn a_buffer_handed_back_without_a_frame_is_posted_again_and_passed_over() {
    let mut r = rig();
    // The polling core hands two buffers back empty (a NIC that refused
    // them), then delivers a frame.
    let q = r.t.queue_mut(RECEIVE_QUEUE).unwrap();
    for _ in 0..2 {
        let chain = q.pop_avail(&mut r.mem).unwrap().unwrap();
        q.push_used(&mut r.mem, chain.head(), 0).unwrap();
    }
    assert!(ready(&r.mem, r.place).unwrap());
    assert!(r.device_give(&frame(3, 80)));
    assert_eq!(r.recv(2048).unwrap(), frame(3, 80));
    assert_eq!(r.recv(2048), Err(NetFail::Again));
    // Both empty buffers and the frame's are posted again.
    let avail = r.t.queue(RECEIVE_QUEUE).unwrap().layout().avail_ring;
    let idx = r.mem.read_u16(Gpa(avail + RING_IDX)).unwrap();
    assert_eq!(idx, QUEUE_SIZE + 3);
    // Only empty buffers waiting: nothing to read.
    let q = r.t.queue_mut(RECEIVE_QUEUE).unwrap();
    let chain = q.pop_avail(&mut r.mem).unwrap().unwrap();
    q.push_used(&mut r.mem, chain.head(), 5).unwrap();
    assert_eq!(r.recv(2048), Err(NetFail::Again));
}

#[test]
fn the_ring_indices_wrap_without_losing_a_frame() {
    let mut r = rig();
    // Past 65,536 frames each way, one at a time and a full ring at a time.
    for n in 0..70_000u64 {
        let f = frame(n, 60 + (n % 7) as usize);
        r.send(&f).unwrap();
        assert_eq!(r.device_take().unwrap(), f);
        assert!(r.device_give(&f));
        assert_eq!(r.recv(2048).unwrap(), f);
    }
    for round in 0..3u64 {
        for i in 0..u64::from(QUEUE_SIZE) {
            r.send(&frame(round * 100 + i, 64)).unwrap();
        }
        assert_eq!(r.send(&frame(0, 64)), Err(NetFail::Again));
        for i in 0..u64::from(QUEUE_SIZE) {
            assert_eq!(r.device_take().unwrap(), frame(round * 100 + i, 64));
        }
    }
}

#[derive(Clone, Debug)]
enum Step {
    Send(usize),
    Recv,
    Take,
    Give(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..=FRAME_MAX as usize).prop_map(Step::Send),
        Just(Step::Recv),
        Just(Step::Take),
        (0..=FRAME_MAX as usize).prop_map(Step::Give),
    ]
}

proptest! {
    /// Any interleaving of guest calls and polling-core moves delivers
    /// every frame once, in order, and refuses only when a ring is full
    /// or empty.
    #[test]
    fn no_frame_is_lost_duplicated_or_reordered(steps in proptest::collection::vec(step(), 0..400)) {
        let mut r = rig();
        let (mut out_flight, mut in_flight) = (VecDeque::new(), VecDeque::new());
        for (n, s) in steps.into_iter().enumerate() {
            match s {
                Step::Send(len) => {
                    let f = frame(n as u64, len);
                    match r.send(&f) {
                        Ok(()) => out_flight.push_back(f),
                        Err(e) => {
                            prop_assert_eq!(e, NetFail::Again);
                            prop_assert_eq!(out_flight.len() as u64, Q);
                        }
                    }
                }
                Step::Take => prop_assert_eq!(r.device_take(), out_flight.pop_front()),
                Step::Give(len) => {
                    let f = frame(n as u64, len);
                    if r.device_give(&f) {
                        in_flight.push_back(f);
                    } else {
                        prop_assert_eq!(in_flight.len() as u64, Q);
                    }
                }
                Step::Recv => {
                    prop_assert_eq!(ready(&r.mem, r.place).unwrap(), !in_flight.is_empty());
                    match r.recv(FRAME_MAX) {
                        Ok(f) => prop_assert_eq!(Some(f), in_flight.pop_front()),
                        Err(e) => {
                            prop_assert_eq!(e, NetFail::Again);
                            prop_assert!(in_flight.is_empty());
                        }
                    }
                }
            }
        }
    }
}

/// Memory the guest sees in the hypercall tests (the reserve above).
const VISIBLE: u64 = MEMORY - RING_RESERVE;
/// Where the hypercall tests put their argument struct.
const ARG: u64 = 0x1000;
/// The rig's device's Solo5 handle in the hypercall tests.
const HANDLE: u64 = 1;

impl Rig {
    /// Makes hypercall `c` with the argument struct at [`ARG`], as the
    /// guest of a VM whose only net device is the rig's.
    fn call(&mut self, c: u16) -> Result<HvtDone, HvtCallError> {
        self.call_retrying(c, 0)
    }

    /// [`Rig::call`] of a call that has asked to run again for `retrying`
    /// TSC ticks.
    fn call_retrying(&mut self, c: u16, retrying: u64) -> Result<HvtDone, HvtCallError> {
        self.call_at(c, ARG, retrying)
    }

    /// Hypercall `c` with its argument struct at `at`.
    fn call_at(&mut self, c: u16, at: u64, retrying: u64) -> Result<HvtDone, HvtCallError> {
        let mut env = HvtEnv {
            ram: self.mem,
            memory: VISIBLE,
            nets: [(HANDLE, self.place)].into_iter().collect(),
            wall_ns: 0,
            tsc_hz: 1_000_000_000,
            vm: 0,
            disks: &NoDisks,
            retrying,
            ring: None,
        };
        let io = PortAccess {
            port: hvt::HYPERCALL_PIO_BASE + c,
            size: hvt::HYPERCALL_SIZE,
            is_in: false,
            string: false,
        };
        call::handle(io, at as u32, &mut env, |_| {})
    }

    /// A net call's struct: handle, data, len.
    fn net_arg(&mut self, handle: u64, data: u64, len: u64) {
        for (off, v) in [
            (0, handle),
            (hvt::NET_DATA, data),
            (hvt::NET_LEN, len),
            (hvt::NET_RET, u64::MAX),
        ] {
            self.mem.write_u64(Gpa(ARG + off), v).unwrap();
        }
    }

    fn word(&self, off: u64) -> u64 {
        self.mem.read_u64(Gpa(ARG + off)).unwrap()
    }

    fn ret(&self) -> i32 {
        self.mem.read_u32(Gpa(ARG + hvt::NET_RET)).unwrap() as i32
    }
}

#[test]
fn net_hypercalls_move_frames_through_the_ports_rings() {
    let mut r = rig();
    let f = frame(3, 60);
    r.mem.write(Gpa(GUEST_BUF), &f).unwrap();
    r.net_arg(HANDLE, GUEST_BUF, 60);
    assert_eq!(r.call(hvt::HC_NET_WRITE), Ok(HvtDone::Advance));
    assert_eq!(r.ret(), hvt::R_OK);
    assert_eq!(r.device_take().unwrap(), f);
    // Nothing to read: AGAIN, and a poll sleeps with nothing ready.
    r.net_arg(HANDLE, GUEST_BUF, 2048);
    assert_eq!(r.call(hvt::HC_NET_READ), Ok(HvtDone::Advance));
    assert_eq!(r.ret(), hvt::R_AGAIN);
    r.mem.write_u64(Gpa(ARG), 1_000).unwrap();
    assert_eq!(r.call(hvt::HC_POLL), Ok(HvtDone::Retry(1_000)));
    // Run again once its timeout has passed: it returns, nothing ready.
    assert_eq!(r.call_retrying(hvt::HC_POLL, 1_000), Ok(HvtDone::Advance));
    assert_eq!(r.word(hvt::POLL_READY_SET), 0);
    // Part of it passed: it waits for the rest.
    assert_eq!(r.call_retrying(hvt::HC_POLL, 400), Ok(HvtDone::Retry(600)));
    // A zero timeout never waits.
    r.mem.write_u64(Gpa(ARG), 0).unwrap();
    assert_eq!(r.call(hvt::HC_POLL), Ok(HvtDone::Advance));
    r.mem.write_u64(Gpa(ARG), 1_000).unwrap();
    assert_eq!(r.word(hvt::POLL_READY_SET), 0);
    // A frame arrives: the poll says which device, and the read takes it.
    let g = frame(9, 1514);
    assert!(r.device_give(&g));
    assert_eq!(r.call(hvt::HC_POLL), Ok(HvtDone::Advance));
    assert_eq!(r.word(hvt::POLL_READY_SET), 1 << HANDLE);
    assert_eq!(r.mem.read_u32(Gpa(ARG + hvt::POLL_RET)).unwrap(), 1);
    r.net_arg(HANDLE, GUEST_BUF, 100);
    assert_eq!(r.call(hvt::HC_NET_READ), Ok(HvtDone::Advance));
    assert_eq!(r.ret(), hvt::R_EINVAL, "a buffer too short for the frame");
    r.net_arg(HANDLE, GUEST_BUF, 2048);
    assert_eq!(r.call(hvt::HC_NET_READ), Ok(HvtDone::Advance));
    assert_eq!((r.ret(), r.word(hvt::NET_LEN)), (hvt::R_OK, 1514));
    let mut got = vec![0u8; 1514];
    r.mem.read(Gpa(GUEST_BUF), &mut got).unwrap();
    assert_eq!(got, g);
    // A halt waits until every frame sent is taken, then ends the guest.
    r.mem.write(Gpa(GUEST_BUF), &f).unwrap();
    r.net_arg(HANDLE, GUEST_BUF, 60);
    assert_eq!(r.call(hvt::HC_NET_WRITE), Ok(HvtDone::Advance));
    r.mem.write_u64(Gpa(ARG), 0).unwrap();
    r.mem.write_u64(Gpa(ARG + hvt::HALT_STATUS), 7).unwrap();
    assert_eq!(r.call(hvt::HC_HALT), Ok(HvtDone::Retry(1_000_000)));
    assert_eq!(r.device_take().unwrap(), f);
    assert_eq!(r.call(hvt::HC_HALT), Ok(HvtDone::Exit(7)));
}

#[test]
fn a_call_that_waited_its_bound_gives_up() {
    let mut r = rig();
    let second = 1_000_000_000;
    let limit = call::RETRY_LIMIT_SECONDS * second;
    r.mem.write(Gpa(GUEST_BUF), &frame(1, 60)).unwrap();
    r.net_arg(HANDLE, GUEST_BUF, 60);
    for _ in 0..QUEUE_SIZE {
        assert_eq!(r.call(hvt::HC_NET_WRITE), Ok(HvtDone::Advance));
    }
    // Nobody takes frames: the write waits, up to its bound, then fails.
    assert!(matches!(
        r.call_retrying(hvt::HC_NET_WRITE, limit - 1),
        Ok(HvtDone::Retry(_))
    ));
    assert_eq!(
        r.call_retrying(hvt::HC_NET_WRITE, limit),
        Ok(HvtDone::Advance)
    );
    assert_eq!(r.ret(), hvt::R_EUNSPEC);
    // The same for a halt with frames in flight: it ends the guest.
    r.mem.write_u64(Gpa(ARG), 0).unwrap();
    r.mem.write_u64(Gpa(ARG + hvt::HALT_STATUS), 3).unwrap();
    assert!(matches!(
        r.call_retrying(hvt::HC_HALT, limit - 1),
        Ok(HvtDone::Retry(_))
    ));
    assert_eq!(r.call_retrying(hvt::HC_HALT, limit), Ok(HvtDone::Exit(3)));
}

#[test]
fn bad_net_hypercalls_are_refused_by_name_and_move_nothing() {
    let mut r = rig();
    // Another handle (a block device's, or none) is refused.
    for handle in [0, 2, u64::MAX] {
        r.net_arg(handle, GUEST_BUF, 60);
        assert_eq!(r.call(hvt::HC_NET_WRITE), Ok(HvtDone::Advance));
        assert_eq!(r.ret(), hvt::R_EINVAL);
    }
    // A frame longer than the MTU allows.
    r.net_arg(HANDLE, GUEST_BUF, FRAME_MAX + 1);
    assert_eq!(r.call(hvt::HC_NET_WRITE), Ok(HvtDone::Advance));
    assert_eq!(r.ret(), hvt::R_EINVAL);
    assert_eq!(r.device_take(), None);
    // A buffer reaching into the reserve, or past memory, stops the guest.
    for (data, len) in [
        (VISIBLE - 10, 60),
        (VISIBLE + 4096, 60),
        (GUEST_BUF, u64::MAX),
    ] {
        r.net_arg(HANDLE, data, len);
        for c in [hvt::HC_NET_WRITE, hvt::HC_NET_READ] {
            let call = Hypercall::from_port(hvt::HYPERCALL_PIO_BASE + c).unwrap();
            let e = r.call(c).unwrap_err();
            assert_eq!(
                e,
                HvtCallError::Buffer {
                    call,
                    gpa: data,
                    len
                }
            );
        }
    }
    assert_eq!(r.device_take(), None);
    // The argument struct itself must be inside the visible memory.
    assert_eq!(
        r.call_at(hvt::HC_NET_WRITE, VISIBLE - 8, 0),
        Err(HvtCallError::Buffer {
            call: Hypercall::NetWrite,
            gpa: VISIBLE - 8,
            len: hvt::NET_SIZE
        })
    );
    // On a full transmit ring the write waits (a millisecond at most before it
    // looks again) until the polling core takes a frame.
    r.net_arg(HANDLE, GUEST_BUF, 60);
    for _ in 0..QUEUE_SIZE {
        assert_eq!(r.call(hvt::HC_NET_WRITE), Ok(HvtDone::Advance));
        assert_eq!(r.ret(), hvt::R_OK);
    }
    r.net_arg(HANDLE, GUEST_BUF, 60);
    assert_eq!(r.call(hvt::HC_NET_WRITE), Ok(HvtDone::Retry(1_000_000)));
    assert_eq!(r.ret() as u32, u32::MAX, "no answer yet");
    assert!(r.device_take().is_some());
    assert_eq!(r.call(hvt::HC_NET_WRITE), Ok(HvtDone::Advance));
    assert_eq!(r.ret(), hvt::R_OK);
}

#[test]
fn a_frame_longer_than_the_mtu_allows_never_reaches_the_guest() {
    let mut r = rig();
    let q = r.t.queue_mut(RECEIVE_QUEUE).unwrap();
    let chain = q.pop_avail(&mut r.mem).unwrap().unwrap();
    // The buffer offers the header and 1514 bytes, no more: the polling
    // core refuses the longer frame (and its link counts it).
    let long = frame(1, FRAME_MAX as usize + 1);
    assert!(write_receive_frame(&chain, &mut r.mem, &long).is_err());
    let fits = frame(2, FRAME_MAX as usize);
    let used = write_receive_frame(&chain, &mut r.mem, &fits).unwrap();
    q.push_used(&mut r.mem, chain.head(), used).unwrap();
    assert_eq!(r.recv(FRAME_MAX).unwrap(), fits);
}

proptest! {
    /// Net hypercalls with any arguments never panic: each moves a frame,
    /// answers a Solo5 result, or stops the guest naming a buffer that is
    /// not inside the memory it sees.
    #[test]
    fn any_net_call_is_answered_or_stopped_by_name(
        calls in proptest::collection::vec(
            (
                prop_oneof![
                    Just(hvt::HC_NET_WRITE),
                    Just(hvt::HC_NET_READ),
                    Just(hvt::HC_POLL)
                ],
                prop_oneof![Just(HANDLE), any::<u64>()],
                prop_oneof![Just(GUEST_BUF), VISIBLE - 64..VISIBLE + 64, any::<u64>()],
                prop_oneof![0..=FRAME_MAX + 2, any::<u64>()],
                any::<bool>(),
            ),
            1..40,
        )
    ) {
        let mut r = rig();
        for (c, handle, data, len, give) in calls {
            if give {
                r.device_give(&frame(len, 64));
            }
            r.net_arg(handle, data, len);
            match r.call(c) {
                Ok(_) => {}
                Err(HvtCallError::Buffer { gpa, len, .. }) => {
                    prop_assert!(gpa >= VISIBLE || gpa.checked_add(len).is_none_or(|end| end >= VISIBLE));
                }
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
            let _ = r.device_take();
        }
    }
}
