//! Tests of the link data path over two mock guests' memories.

use super::*;
use crate::datapath::endpoint::LinkFault;
use crate::datapath::policy::PassAll;
use crate::datapath::policy::{FrameCopy, FramePolicy, Verdict};
use crate::datapath::virtio::{VirtioRx, VirtioTx};
use crate::devices::virtio::error::RingError;
use crate::devices::virtio::net::{NET_HDR_LEN, receive_header};
use crate::devices::virtio::queue::{
    QueueError, QueueLimits, SplitQueue, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};
use crate::devices::virtio::testing::{DriverQueue, MEM_SIZE};
use crate::mem::access::{Gpa, GuestRam};
use crate::mem::guest::GuestMemory;
use crate::mem::raw::RawRam;
use crate::mem::raw::testing::over_vec;
use proptest::prelude::*;

const QSIZE: u16 = 16;
const TX_RING: u64 = 0x100;
const RX_RING: u64 = 0x1000;
/// Transmit buffers, one 2 KiB slot per descriptor.
const TX_BUFS: u64 = 0x4000;
/// Receive buffers, one 2 KiB slot per descriptor.
const RX_BUFS: u64 = 0xc000;
const SLOT: u64 = 0x800;

/// Two guests: `a` transmits, `b` receives.
struct Pair {
    a: Vec<u8>,
    b: Vec<u8>,
    tx_drv: DriverQueue,
    rx_drv: DriverQueue,
    tx: SplitQueue,
    rx: SplitQueue,
    dir: Direction,
    next_tx: u16,
    next_rx: u16,
    /// Frames collected from the receiver's used ring so far.
    got: Vec<Vec<u8>>,
    /// Pump through raw views with the fast path, as the polling core does.
    raw: bool,
    /// The clock and hold time pumps see.
    hold: Hold,
}

fn frame(len: usize, tag: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_add(tag)).collect()
}

impl Pair {
    fn new() -> Self {
        let tx_drv = DriverQueue::new(QSIZE, TX_RING);
        let rx_drv = DriverQueue::new(QSIZE, RX_RING);
        let tx = SplitQueue::new(tx_drv.layout(), false, QueueLimits::default()).unwrap();
        let rx = SplitQueue::new(rx_drv.layout(), false, QueueLimits::default()).unwrap();
        Pair {
            a: vec![0; MEM_SIZE],
            b: vec![0; MEM_SIZE],
            tx_drv,
            rx_drv,
            tx,
            rx,
            dir: Direction::default(),
            next_tx: 0,
            next_rx: 0,
            got: Vec::new(),
            raw: false,
            hold: Hold::NEVER,
        }
    }

    /// A pair pumped through raw views (fast path first).
    fn raw() -> Self {
        Pair {
            raw: true,
            ..Pair::new()
        }
    }

    /// The sender queues `data` (after a zeroed header) in one descriptor.
    fn send(&mut self, data: &[u8]) {
        let d = self.next_tx % QSIZE;
        self.next_tx += 1;
        let addr = TX_BUFS + u64::from(d) * SLOT;
        let mut m = GuestMemory::new(&mut self.a);
        m.write(addr, &[0; NET_HDR_LEN as usize]).unwrap();
        m.write(addr + u64::from(NET_HDR_LEN), data).unwrap();
        let len = NET_HDR_LEN + data.len() as u32;
        self.tx_drv.set_desc(&mut m, d, addr, len, 0, 0);
        self.tx_drv.publish(&mut m, d);
    }

    /// The receiver posts a buffer of `len` bytes.
    fn post(&mut self, len: u32) {
        let d = self.next_rx % QSIZE;
        self.next_rx += 1;
        let addr = RX_BUFS + u64::from(d) * SLOT;
        let mut m = GuestMemory::new(&mut self.b);
        self.rx_drv
            .set_desc(&mut m, d, addr, len, VIRTQ_DESC_F_WRITE, 0);
        self.rx_drv.publish(&mut m, d);
    }

    fn pump(&mut self, budget: u32) -> Result<u32, LinkFault> {
        self.pump_gen(budget, 0)
    }

    fn pump_gen(&mut self, budget: u32, generation: u32) -> Result<u32, LinkFault> {
        self.pump_with(budget, generation, &mut PassAll)
    }

    /// One pump through raw views (fast path first) or checked ones (the
    /// general path only), under `policy`.
    fn pump_with<P: FramePolicy>(
        &mut self,
        budget: u32,
        generation: u32,
        policy: &mut P,
    ) -> Result<u32, LinkFault> {
        if self.raw {
            let (mut a, mut b) = (over_vec(&mut self.a), over_vec(&mut self.b));
            return pump(
                &mut self.dir,
                &mut VirtioTx::new(&mut self.tx, &mut a),
                Receiver::Ready(VirtioRx::new(&mut self.rx, &mut b)),
                generation,
                budget,
                self.hold,
                policy,
            );
        }
        let mut a = GuestMemory::new(&mut self.a);
        let mut b = GuestMemory::new(&mut self.b);
        pump(
            &mut self.dir,
            &mut VirtioTx::new(&mut self.tx, &mut a),
            Receiver::Ready(VirtioRx::new(&mut self.rx, &mut b)),
            generation,
            budget,
            self.hold,
            policy,
        )
    }

    fn pump_gone(&mut self) -> Result<u32, LinkFault> {
        let mut a = GuestMemory::new(&mut self.a);
        pump(
            &mut self.dir,
            &mut VirtioTx::new(&mut self.tx, &mut a),
            Receiver::<VirtioRx<'_, GuestMemory>>::Gone,
            0,
            u32::MAX,
            Hold::NEVER,
            &mut PassAll,
        )
    }

    fn tx_used(&mut self) -> u16 {
        self.tx_drv.used_idx(&GuestMemory::new(&mut self.a))
    }

    /// The frames the receiver got so far, in order (header checked).
    fn received(&mut self) -> Vec<Vec<u8>> {
        let m = GuestMemory::new(&mut self.b);
        let n = self.rx_drv.used_idx(&m);
        for i in self.got.len() as u16..n {
            let (id, len) = self.rx_drv.used_elem(&m, i % QSIZE);
            let addr = RX_BUFS + u64::from(id) * SLOT;
            let mut buf = vec![0; len as usize];
            m.read(addr, &mut buf).unwrap();
            assert_eq!(buf[..NET_HDR_LEN as usize], receive_header());
            self.got.push(buf.split_off(NET_HDR_LEN as usize));
        }
        self.got.clone()
    }
}

#[test]
fn frames_cross_with_header_replaced_and_counted() {
    for mut p in [Pair::new(), Pair::raw()] {
        for _ in 0..4 {
            p.post(2048);
        }
        let frames = [frame(64, 1), frame(100, 2), frame(MAX_FRAME_BYTES, 3)];
        for f in &frames {
            p.send(f);
        }
        assert_eq!(p.pump(u32::MAX), Ok(3));
        assert_eq!(p.received(), frames.to_vec());
        assert_eq!(p.tx_used(), 3);
        assert_eq!(
            p.dir.flow,
            LinkFlow {
                frames: 3,
                bytes: 64 + 100 + MAX_FRAME_BYTES as u64,
                drop_peer: 0,
                drop_size: 0,
                drop_stalled: 0,
                stalls: 0
            }
        );
        // Nothing more to do, and no receive buffer taken while idle.
        assert_eq!(p.pump(u32::MAX), Ok(0));
        assert!(p.dir.spare.is_none());
    }
}

#[test]
fn a_stalled_receiver_loses_frames_after_the_hold_and_gets_them_again_at_once() {
    for mut p in [Pair::new(), Pair::raw()] {
        p.hold = Hold {
            now: 0,
            ticks: 1000,
        };
        p.post(2048);
        for i in 0..3 {
            p.send(&frame(60, i));
        }
        // One delivered; two wait for the receiver: the hold time starts
        // with the first pass that delivers none.
        assert_eq!(p.pump(u32::MAX), Ok(1));
        p.hold.now = 10;
        assert_eq!(p.pump(u32::MAX), Ok(0));
        p.hold.now = 1009;
        assert_eq!(p.pump(u32::MAX), Ok(0));
        assert!(!p.dir.stalled());
        assert_eq!(p.tx_used(), 1);
        // The hold time is over: stalled, and both are dropped and counted.
        p.hold.now = 1010;
        assert_eq!(p.pump(u32::MAX), Ok(2));
        assert!(p.dir.stalled());
        assert_eq!((p.dir.flow.drop_stalled, p.dir.flow.stalls), (2, 1));
        assert_eq!(p.tx_used(), 3, "the sender's transmissions complete");
        // While stalled, new frames are dropped at once.
        p.send(&frame(60, 3));
        p.hold.now = 1001;
        assert_eq!(p.pump(u32::MAX), Ok(1));
        assert_eq!(p.dir.flow.drop_stalled, 3);
        // It posts a buffer: delivery resumes with the next frame.
        p.post(2048);
        p.send(&frame(60, 4));
        assert_eq!(p.pump(u32::MAX), Ok(1));
        assert!(!p.dir.stalled());
        assert_eq!(p.received(), vec![frame(60, 0), frame(60, 4)]);
        // A new stretch without buffers gets a whole hold time again.
        p.send(&frame(60, 5));
        p.hold.now = 5000;
        assert_eq!(p.pump(u32::MAX), Ok(0));
        p.hold.now = 5999;
        assert_eq!(p.pump(u32::MAX), Ok(0));
        p.hold.now = 6000;
        assert_eq!(p.pump(u32::MAX), Ok(1));
        assert_eq!((p.dir.flow.drop_stalled, p.dir.flow.stalls), (4, 2));
        // Every frame the sender handed over is accounted for.
        assert_eq!(p.dir.flow.handed(), 6);
        assert_eq!(p.tx_used(), 6);
    }
}

#[test]
fn the_hold_does_not_count_while_the_sender_is_quiet_or_drops_are_off() {
    for mut p in [Pair::new(), Pair::raw()] {
        p.hold = Hold {
            now: 0,
            ticks: 1000,
        };
        // No buffer and nothing to send for a long time: not stalled.
        assert_eq!(p.pump(u32::MAX), Ok(0));
        p.hold.now = 10_000;
        assert_eq!(p.pump(u32::MAX), Ok(0));
        assert!(!p.dir.stalled());
        // A frame now waits a whole hold time from here.
        p.send(&frame(60, 0));
        assert_eq!(p.pump(u32::MAX), Ok(0));
        p.hold.now = 10_999;
        assert_eq!(p.pump(u32::MAX), Ok(0));
        // A restarted receiver (new ring generation) starts over.
        p.hold.now = 11_000;
        assert_eq!(p.pump_gen(u32::MAX, 1), Ok(0));
        assert!(!p.dir.stalled());
    }
    let mut p = Pair::raw();
    p.hold = Hold { now: 0, ticks: 0 };
    p.send(&frame(60, 0));
    assert_eq!(p.pump(u32::MAX), Ok(0));
    p.hold.now = u64::MAX;
    assert_eq!(p.pump(u32::MAX), Ok(0), "hold 0: frames wait for good");
    assert_eq!(p.dir.flow.drop_stalled, 0);
}

#[test]
fn a_receiver_without_buffers_holds_frames_back() {
    for mut p in [Pair::new(), Pair::raw()] {
        p.post(2048);
        for i in 0..3 {
            p.send(&frame(60, i));
        }
        assert_eq!(p.pump(u32::MAX), Ok(1));
        assert_eq!(p.tx_used(), 1);
        assert_eq!(p.pump(u32::MAX), Ok(0));
        p.post(2048);
        p.post(2048);
        assert_eq!(p.pump(u32::MAX), Ok(2));
        assert_eq!(
            p.received(),
            (0..3).map(|i| frame(60, i)).collect::<Vec<_>>()
        );
        assert_eq!(p.dir.flow.frames, 3);
    }
}

#[test]
fn the_budget_bounds_a_pump() {
    for mut p in [Pair::new(), Pair::raw()] {
        for i in 0..5 {
            p.post(2048);
            p.send(&frame(60, i));
        }
        assert_eq!(p.pump(2), Ok(2));
        assert_eq!(p.pump(2), Ok(2));
        assert_eq!(p.pump(2), Ok(1));
        assert_eq!(p.received().len(), 5);
    }
}

#[test]
fn a_frame_too_large_for_the_buffer_is_dropped_and_the_buffer_kept() {
    for mut p in [Pair::new(), Pair::raw()] {
        p.post(100);
        p.send(&frame(200, 0));
        p.send(&frame(50, 1));
        assert_eq!(p.pump(u32::MAX), Ok(2));
        assert_eq!(p.received(), vec![frame(50, 1)]);
        assert_eq!(p.dir.flow.drop_size, 1);
        assert_eq!(p.dir.flow.frames, 1);
        assert_eq!(p.tx_used(), 2);
    }
}

#[test]
fn frames_beyond_an_ethernet_frame_are_dropped() {
    for mut p in [Pair::new(), Pair::raw()] {
        p.post(4096);
        p.send(&frame(MAX_FRAME_BYTES + 1, 0));
        assert_eq!(p.pump(u32::MAX), Ok(1));
        assert_eq!(p.dir.flow.drop_size, 1);
        assert!(p.received().is_empty());
    }
}

#[test]
fn a_gone_receiver_drops_and_completes_every_frame() {
    let mut p = Pair::new();
    for i in 0..4 {
        p.send(&frame(64, i));
    }
    assert_eq!(p.pump_gone(), Ok(4));
    assert_eq!(p.dir.flow.drop_peer, 4);
    assert_eq!(p.tx_used(), 4);
}

#[test]
fn a_bad_transmit_ring_blames_the_sender() {
    for mut p in [Pair::new(), Pair::raw()] {
        p.post(2048);
        {
            let mut m = GuestMemory::new(&mut p.a);
            p.tx_drv.set_desc(&mut m, 0, MEM_SIZE as u64 - 8, 64, 0, 0);
            p.tx_drv.publish(&mut m, 0);
        }
        let fault = p.pump(u32::MAX).unwrap_err();
        assert_eq!(fault.side, Side::Sender);
        assert!(matches!(fault.error, RingError::Queue(_)));
        assert_eq!(p.dir.flow.handed(), 0);
    }
}

#[test]
fn a_descriptor_loop_blames_the_sender() {
    for mut p in [Pair::new(), Pair::raw()] {
        p.post(2048);
        {
            let mut m = GuestMemory::new(&mut p.a);
            p.tx_drv
                .set_desc(&mut m, 0, TX_BUFS, 64, VIRTQ_DESC_F_NEXT, 1);
            p.tx_drv
                .set_desc(&mut m, 1, TX_BUFS, 64, VIRTQ_DESC_F_NEXT, 0);
            p.tx_drv.publish(&mut m, 0);
        }
        let fault = p.pump(u32::MAX).unwrap_err();
        assert_eq!(fault.side, Side::Sender);
        assert!(matches!(
            fault.error,
            RingError::Queue(QueueError::ChainLoop { .. }) | RingError::Queue(_)
        ));
    }
}

#[test]
fn a_readable_receive_buffer_blames_the_receiver() {
    for mut p in [Pair::new(), Pair::raw()] {
        {
            let mut m = GuestMemory::new(&mut p.b);
            p.rx_drv.set_desc(&mut m, 0, RX_BUFS, 2048, 0, 0);
            p.rx_drv.publish(&mut m, 0);
        }
        p.send(&frame(64, 0));
        let fault = p.pump(u32::MAX).unwrap_err();
        assert_eq!(
            fault,
            LinkFault {
                side: Side::Receiver,
                error: RingError::ReadableInReceive { head: 0 }
            }
        );
        // The sender's frame is still queued: it was never taken.
        assert_eq!(p.tx_used(), 0);
    }
}

#[test]
fn a_kept_buffer_of_an_old_generation_is_forgotten() {
    let mut p = Pair::new();
    p.post(100);
    p.send(&frame(200, 0));
    assert_eq!(p.pump_gen(u32::MAX, 1), Ok(1));
    assert_eq!(p.dir.spare, Some(1));
    // The receiver was reset: its kept chain belongs to a ring that is gone.
    p.dir.check_spare(2);
    assert!(p.dir.spare.is_none());
}

proptest! {
    /// Whatever the mix of frame sizes and buffer postings, every frame
    /// handed over is delivered intact or counted as dropped, in order.
    #[test]
    fn every_frame_is_accounted_for(
        steps in proptest::collection::vec((0usize..1600, 0u32..3, 1u32..4), 1..40),
        raw: bool,
    ) {
        let mut p = if raw { Pair::raw() } else { Pair::new() };
        let mut expected = Vec::new();
        let mut sent = 0u16;
        for (i, (len, posts, budget)) in steps.into_iter().enumerate() {
            let in_flight = p.next_tx - p.tx_used();
            if in_flight < QSIZE {
                let f = frame(len, i as u8);
                p.send(&f);
                sent += 1;
                if len <= MAX_FRAME_BYTES {
                    expected.push(f);
                }
            }
            for _ in 0..posts {
                let pending = p.next_rx - (p.received().len() as u16);
                if pending < QSIZE {
                    p.post(2048);
                }
            }
            p.pump(budget).unwrap();
        }
        for _ in 0..QSIZE {
            // Collect before posting, so a buffer is reused only once read.
            if p.next_rx - (p.received().len() as u16) < QSIZE {
                p.post(2048);
            }
            p.pump(u32::MAX).unwrap();
        }
        let flow = p.dir.flow;
        prop_assert_eq!(flow.handed(), u64::from(sent));
        prop_assert_eq!(u64::from(p.tx_used()), u64::from(sent));
        prop_assert_eq!(p.received(), expected);
        prop_assert_eq!(flow.drop_peer, 0);
    }

    /// The fast path over raw views and the general path over checked
    /// views do exactly the same to the rings and the counters.
    #[test]
    fn fast_and_general_paths_agree(
        steps in proptest::collection::vec((0usize..1600, 0u32..3, 1u32..70), 1..40)
    ) {
        let mut pairs = [Pair::new(), Pair::raw()];
        for (i, (len, posts, budget)) in steps.into_iter().enumerate() {
            let mut results = Vec::new();
            for p in &mut pairs {
                if p.next_tx - p.tx_used() < QSIZE {
                    p.send(&frame(len, i as u8));
                }
                for _ in 0..posts {
                    if p.next_rx - (p.received().len() as u16) < QSIZE {
                        p.post(2048);
                    }
                }
                results.push(p.pump(budget));
            }
            prop_assert_eq!(results[0], results[1]);
            let [g, r] = &mut pairs;
            prop_assert_eq!(g.dir.flow, r.dir.flow);
            prop_assert_eq!(g.tx_used(), r.tx_used());
            prop_assert_eq!(g.received(), r.received());
            prop_assert_eq!(g.dir.spare, r.dir.spare);
        }
    }
}

/// The data path over [`RawRam`] views (as the polling core runs it), ring
/// after ring: indices wrap, every frame arrives intact.
#[test]
fn raw_views_carry_many_rings_of_frames() {
    let raw = over_vec;
    let mut p = Pair::new();
    let rounds = 300u64;
    for round in 0..rounds {
        for i in 0..QSIZE {
            p.post(2048);
            p.send(&frame(64, (round as u8).wrapping_add(i as u8)));
        }
        let (mut a, mut b) = (raw(&mut p.a), raw(&mut p.b));
        let moved = pump(
            &mut p.dir,
            &mut VirtioTx::new(&mut p.tx, &mut a),
            Receiver::Ready(VirtioRx::new(&mut p.rx, &mut b)),
            0,
            u32::MAX,
            Hold::NEVER,
            &mut PassAll,
        );
        assert_eq!(moved, Ok(u32::from(QSIZE)));
        let m = GuestMemory::new(&mut p.b);
        let (id, len) = p
            .rx_drv
            .used_elem(&m, (p.rx_drv.used_idx(&m).wrapping_sub(1)) % QSIZE);
        assert_eq!(len, NET_HDR_LEN + 64);
        let mut last = [0u8; 64];
        m.read(
            RX_BUFS + u64::from(id) * SLOT + u64::from(NET_HDR_LEN),
            &mut last,
        )
        .unwrap();
        assert_eq!(
            last.to_vec(),
            frame(64, (round as u8).wrapping_add(QSIZE as u8 - 1))
        );
    }
    assert_eq!(p.dir.flow.frames, rounds * u64::from(QSIZE));
    assert_eq!(p.dir.flow.bytes, rounds * u64::from(QSIZE) * 64);
}

/// A policy that drops frames whose first byte is odd and, while it
/// judges, overwrites the transmit buffer the frame came from (the
/// senders' buffers are used in turn), as a sender racing the hypervisor
/// would.
struct Scribbler {
    sender: RawRam,
    seen: Vec<Vec<u8>>,
}

impl FramePolicy for Scribbler {
    const INSPECTS: bool = true;

    fn judge<K: FrameSink>(&mut self, frame: &FrameCopy<'_, K>) -> Verdict {
        let slot = self.seen.len() as u64 % u64::from(QSIZE);
        self.sender
            .write(Gpa(TX_BUFS + slot * SLOT), &[0xee; SLOT as usize])
            .unwrap();
        let mut bytes = vec![0; frame.len() as usize];
        frame.read(0, &mut bytes).unwrap();
        assert!(frame.read(frame.len(), &mut [0]).is_none(), "past its end");
        assert!(frame.read(u32::MAX, &mut []).is_none());
        let odd = bytes.first().is_some_and(|b| b % 2 == 1);
        self.seen.push(bytes);
        if odd { Verdict::Drop } else { Verdict::Pass }
    }
}

#[test]
fn a_policy_judges_the_receivers_copy_which_the_sender_can_no_longer_change() {
    let mut p = Pair::new();
    let frames: Vec<_> = (0..6).map(|i| frame(60 + i, i as u8)).collect();
    for f in &frames {
        p.send(f);
    }
    for _ in 0..4 {
        p.post(2048);
    }
    let (mut a, mut b) = (over_vec(&mut p.a), over_vec(&mut p.b));
    let mut policy = Scribbler {
        sender: a,
        seen: Vec::new(),
    };
    let moved = pump(
        &mut p.dir,
        &mut VirtioTx::new(&mut p.tx, &mut a),
        Receiver::Ready(VirtioRx::new(&mut p.rx, &mut b)),
        0,
        u32::MAX,
        Hold::NEVER,
        &mut policy,
    );
    assert_eq!(moved, Ok(6));
    // It saw every frame as sent, though the sender overwrote its buffers
    // each time the policy looked.
    assert_eq!(policy.seen, frames);
    // The even ones are delivered intact; the odd ones dropped, each
    // leaving its buffer for the next frame (6 frames, 3 buffers used).
    let even: Vec<_> = frames.iter().step_by(2).cloned().collect();
    assert_eq!(p.received(), even);
    assert_eq!(p.dir.dropped_by_policy, 3);
    assert_eq!(p.dir.flow.frames, 3);
    assert_eq!(p.tx_used(), 6, "every frame completes on the sender's side");
    assert!(p.dir.keeps_buffer(), "the last drop kept its buffer");
}

/// A policy that looks at every frame and passes it.
struct Looker(u32);

impl FramePolicy for Looker {
    const INSPECTS: bool = true;

    fn judge<K: FrameSink>(&mut self, frame: &FrameCopy<'_, K>) -> Verdict {
        assert!(!frame.is_empty());
        self.0 += 1;
        Verdict::Pass
    }
}

#[test]
fn a_policy_that_passes_everything_changes_nothing_and_pass_all_is_never_asked() {
    const { assert!(!PassAll::INSPECTS) };
    let mut plain = Pair::raw();
    let mut looked = Pair::raw();
    let mut looker = Looker(0);
    for (i, len) in [64usize, 1500, 60, 200, 64].into_iter().enumerate() {
        for p in [&mut plain, &mut looked] {
            p.post(2048);
            p.send(&frame(len, i as u8));
        }
        assert_eq!(plain.pump(u32::MAX), Ok(1));
        assert_eq!(looked.pump_with(u32::MAX, 0, &mut looker), Ok(1));
    }
    assert_eq!(looker.0, 5);
    assert_eq!(plain.received(), looked.received());
    assert_eq!(plain.dir.flow, looked.dir.flow);
    assert_eq!(looked.dir.dropped_by_policy, 0);
}

#[test]
fn a_packet_hook_judges_each_frame_and_counts_its_verdicts() {
    use crate::hooks::packet::tests::{first_byte_verdict, hook};
    let h = hook(first_byte_verdict());
    for raw in [false, true] {
        let mut p = if raw { Pair::raw() } else { Pair::new() };
        let frames: Vec<_> = [2u8, 1, 2, 9, 0, 2]
            .iter()
            .map(|&b| {
                let mut f = frame(64, b);
                f[0] = b;
                f
            })
            .collect();
        for f in &frames {
            p.send(f);
        }
        for _ in 0..6 {
            p.post(2048);
        }
        assert_eq!(p.pump_with(u32::MAX, 0, &mut *h.lock()), Ok(6));
        let passed: Vec<_> = frames.iter().filter(|f| f[0] == 2).cloned().collect();
        assert_eq!(p.received(), passed);
        assert_eq!(p.dir.dropped_by_policy, 3);
        assert_eq!(p.tx_used(), 6);
    }
    let f = h.flow();
    assert_eq!(
        (f.runs, f.pass, f.drop, f.faults, f.aborted),
        (12, 6, 2, 2, 2)
    );
}

/// [`Scribbler`] on the fast path: it judges its own copy of each frame
/// while overwriting the sender's buffer, and what passes is delivered from
/// that copy.
struct OwnScribbler {
    sender: RawRam,
    buf: Vec<u8>,
    seen: Vec<Vec<u8>>,
}

impl FramePolicy for OwnScribbler {
    const INSPECTS: bool = true;

    fn judge<K: FrameSink>(&mut self, _frame: &FrameCopy<'_, K>) -> Verdict {
        panic!("the fast path judges its own copy");
    }

    fn own_buffer(&mut self) -> Option<&mut [u8]> {
        Some(&mut self.buf)
    }

    fn judge_own(&mut self, len: usize) -> Verdict {
        let slot = self.seen.len() as u64 % u64::from(QSIZE);
        self.sender
            .write(Gpa(TX_BUFS + slot * SLOT), &[0xee; SLOT as usize])
            .unwrap();
        let bytes = self.buf[..len].to_vec();
        let odd = bytes.first().is_some_and(|b| b % 2 == 1);
        self.seen.push(bytes);
        if odd { Verdict::Drop } else { Verdict::Pass }
    }
}

#[test]
fn the_fast_path_judges_and_delivers_the_policys_own_copy() {
    let mut p = Pair::raw();
    let frames: Vec<_> = (0..6).map(|i| frame(60 + i, i as u8)).collect();
    for f in &frames {
        p.send(f);
    }
    for _ in 0..4 {
        p.post(2048);
    }
    let sender = over_vec(&mut p.a);
    let mut policy = OwnScribbler {
        sender,
        buf: vec![0; vmm_abi::corral::devices::MAX_FRAME_BYTES],
        seen: Vec::new(),
    };
    assert_eq!(p.pump_with(u32::MAX, 0, &mut policy), Ok(6));
    assert_eq!(policy.seen, frames);
    let even: Vec<_> = frames.iter().step_by(2).cloned().collect();
    assert_eq!(p.received(), even, "delivered as judged, not as scribbled");
    assert_eq!(p.dir.dropped_by_policy, 3);
    assert_eq!(p.dir.flow.frames, 3);
    assert_eq!(p.tx_used(), 6);
    // A fourth buffer is left: the drops kept theirs.
    assert!(!p.dir.keeps_buffer(), "the fast path keeps no buffer aside");
}

#[test]
fn a_hook_that_writes_the_frame_has_its_writes_delivered_on_both_paths() {
    use crate::hooks::packet::tests::hook;
    use vmm_abi::hook::asm::{exit, ldx, mov64_imm, st};
    use vmm_abi::hook::context::XDP_DATA;
    use vmm_abi::hook::insn::{BPF_B, BPF_W, XDP_PASS};
    // Overwrites the frame's first byte, then passes it.
    let scribble = vec![
        ldx(BPF_W, 2, 1, XDP_DATA as i16),
        st(BPF_B, 2, 0, 0x5a),
        mov64_imm(0, XDP_PASS as i32),
        exit(),
    ];
    let h = hook(scribble);
    for raw in [false, true] {
        let mut p = if raw { Pair::raw() } else { Pair::new() };
        let f = frame(64, 7);
        p.send(&f);
        p.post(2048);
        assert_eq!(p.pump_with(u32::MAX, 0, &mut *h.lock()), Ok(1));
        let mut written = f.clone();
        written[0] = 0x5a;
        assert_eq!(p.received(), vec![written], "raw path: {raw}");
        // The sender's frame completed once.
        assert_eq!(p.tx_used(), 1);
    }
    assert_eq!(h.flow().pass, 2);
}

#[test]
fn frames_a_hook_sends_back_reach_the_ring_through_the_directions_receive_state() {
    use crate::hooks::packet::tests::{bouncer, hook};
    let h = hook(bouncer());
    h.set_ports(0, 1);
    {
        let mut p = Pair::new();
        // Two frames go back; the receiver has one buffer, then another.
        for tag in [0x11u8, 0x22] {
            let mut run = h.lock();
            let mut f = frame(64, tag);
            f[0] = 1;
            run.own_buffer().unwrap()[..64].copy_from_slice(&f);
            assert_eq!(run.judge_own(64), Verdict::Drop);
        }
        p.post(2048);
        let sent = |p: &mut Pair| {
            let mut run = h.lock();
            let mut b = GuestMemory::new(&mut p.b);
            send_back(
                &mut p.dir,
                &mut run.back_source::<Chain>(),
                Receiver::Ready(VirtioRx::new(&mut p.rx, &mut b)),
                0,
                u32::MAX,
            )
        };
        assert_eq!(sent(&mut p), Ok(1));
        assert!(h.lock().sends_back(), "one waits for a buffer");
        assert_eq!(sent(&mut p), Ok(0));
        p.post(2048);
        assert_eq!(sent(&mut p), Ok(1));
        assert!(!h.lock().sends_back());
        let got = p.received();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0][0], got[0][1], got[1][1]), (1, 0x12, 0x23));
        // Counted as the direction's, which the poller moves to the hook.
        assert_eq!(p.dir.flow.frames, 2);
    }
}

#[test]
fn a_hook_whose_queue_back_is_full_holds_the_senders_frames_none_lost() {
    use crate::hooks::packet::BACK_SLOTS;
    use crate::hooks::packet::tests::{bouncer, hook};
    let h = hook(bouncer());
    h.set_ports(0, 1);
    for raw in [false, true] {
        let mut p = if raw { Pair::raw() } else { Pair::new() };
        let n = BACK_SLOTS + 2;
        for i in 0..n {
            let mut f = frame(64, i as u8);
            f[0] = 1;
            p.send(&f);
        }
        for _ in 0..n {
            p.post(2048);
        }
        // The pump stops once the hook's queue is full; the rest wait in
        // the sender's ring.
        assert_eq!(
            p.pump_with(u32::MAX, 0, &mut *h.lock()),
            Ok(BACK_SLOTS as u32)
        );
        assert_eq!(p.tx_used(), BACK_SLOTS as u16);
        assert_eq!(p.pump_with(u32::MAX, 0, &mut *h.lock()), Ok(0));
        // Once the queue drains, they go on.
        let mut run = h.lock();
        let mut src = run.back_source::<()>();
        while src.take(&mut ()).unwrap().is_some() {
            src.complete(&()).unwrap();
        }
        drop(run);
        assert_eq!(p.pump_with(u32::MAX, 0, &mut *h.lock()), Ok(2));
        assert_eq!(p.tx_used(), n as u16);
        let mut run = h.lock();
        let mut src = run.back_source::<()>();
        while src.take(&mut ()).unwrap().is_some() {
            src.complete(&()).unwrap();
        }
    }
    let f = h.flow();
    assert_eq!((f.tx, f.unsent), (2 * (BACK_SLOTS as u64 + 2), 0));
}

/// A profiling harness (run it under callgrind, see ARCHITECTURE.md): a
/// hooked direction's fast path, frame after frame, interpreted.
#[test]
fn zz_profile_hooked() {
    let h = crate::hooks::packet::tests::hook(crate::hooks::packet::tests::pass_ipv4());
    let mut p = Pair::raw();
    let f = frame(64, 1);
    for _ in 0..2000 {
        for _ in 0..8 {
            p.send(&f);
            p.post(2048);
        }
        assert_eq!(p.pump_with(u32::MAX, 0, &mut *h.lock()), Ok(8));
    }
    assert_eq!(h.flow().pass, 16000);
}

/// The same harness without a hook: the baseline a hook adds to.
#[test]
fn zz_profile_plain() {
    let mut p = Pair::raw();
    let f = frame(64, 1);
    for _ in 0..2000 {
        for _ in 0..8 {
            p.send(&f);
            p.post(2048);
        }
        assert_eq!(p.pump(u32::MAX), Ok(8));
    }
}

/// Compiled code that returns `XDP_PASS` at once (having "run" ten
/// instructions): what the harness below measures is the glue around a
/// compiled hook, which the host cannot run.
#[derive(Debug)]
struct ZzNullCode;

impl crate::hooks::jit::JitCode for ZzNullCode {
    #[inline(never)]
    fn enter(
        &self,
        state: &mut crate::hooks::jit::JitState,
        _host: &mut dyn crate::hooks::jit::JitHost,
    ) -> u64 {
        state.words[crate::hooks::jit::W_EXECUTED] = 10;
        2
    }
}

/// The profiling harness with compiled code (see [`ZzNullCode`]).
#[test]
fn zz_profile_hooked_jit() {
    let h = crate::hooks::packet::tests::hook(crate::hooks::packet::tests::pass_ipv4());
    assert!(h.compile_with(|_| Some(&ZzNullCode)));
    let mut p = Pair::raw();
    let f = frame(64, 1);
    for _ in 0..2000 {
        for _ in 0..8 {
            p.send(&f);
            p.post(2048);
        }
        assert_eq!(p.pump_with(u32::MAX, 0, &mut *h.lock()), Ok(8));
    }
    assert_eq!(h.flow().pass, 16000);
}

#[test]
fn a_hook_whose_code_judges_frames_in_place_does_what_the_interpreter_does() {
    use crate::hooks::jit::tests::emu_code;
    use crate::hooks::packet::tests::{bouncer, first_byte_verdict, hook, pass_ipv4};
    use vmm_abi::hook::asm::{exit, ldx, mov64_imm, st};
    use vmm_abi::hook::context::XDP_DATA;
    use vmm_abi::hook::insn::{BPF_B, BPF_W, XDP_PASS};
    // Writes the frame's second byte, then passes it.
    let scribble = vec![
        ldx(BPF_W, 2, 1, XDP_DATA as i16),
        st(BPF_B, 2, 1, 0x5a),
        mov64_imm(0, XDP_PASS as i32),
        exit(),
    ];
    // First bytes for every branch: pass, a drop counted in a map (a
    // helper call: the frame moves to the hook's buffer mid-run), a fault,
    // a send back, a redirect, unknown verdicts; one IPv6 frame.
    let firsts = [2u8, 1, 9, 3, 0, 7, 4, 1, 2];
    for insns in [first_byte_verdict(), bouncer(), pass_ipv4(), scribble] {
        let mut seen = Vec::new();
        for compiled in [true, false] {
            let h = hook(insns.clone());
            h.set_ports(0, 1);
            if compiled {
                assert!(h.compile_with(|p| Some(emu_code(p))));
            }
            let mut p = Pair::raw();
            let mut back = Vec::new();
            for (i, &first) in firsts.iter().enumerate() {
                let mut f = frame(20 + 4 * i, i as u8);
                f[0] = first;
                f[1] = 1;
                if first == 7 {
                    f[12] = 0x86;
                }
                p.send(&f);
                p.post(2048);
                let mut run = h.lock();
                assert_eq!(p.pump_with(u32::MAX, 0, &mut *run), Ok(1));
                run.send_back_with(|b| {
                    back.push(b.to_vec());
                    Some(true)
                });
            }
            let mut maps = Vec::new();
            h.report(0, |r| maps.push(std::format!("{r:?}")));
            // The same records but for the engine each names.
            let engine = if compiled { "compiled" } else { "interpreted" };
            let named = std::format!("engine: \"{engine}\"");
            assert!(maps[0].contains(&named), "{}", maps[0]);
            maps[0] = maps[0].replace(&named, "");
            seen.push((p.received(), p.tx_used(), p.dir.flow, back, h.flow(), maps));
        }
        assert_eq!(seen[0], seen[1]);
        assert!(seen[0].4.runs == firsts.len() as u64);
    }
}

#[test]
fn a_frame_a_hook_drops_is_wiped_from_the_receivers_buffer() {
    use crate::hooks::jit::tests::emu_code;
    use crate::hooks::packet::tests::{hook, pass_ipv4};
    for compiled in [true, false] {
        let h = hook(pass_ipv4());
        if compiled {
            assert!(h.compile_with(|p| Some(emu_code(p))));
        }
        let mut p = Pair::raw();
        // Too short for an Ethernet header: dropped.
        let f = vec![0xeeu8; 10];
        p.send(&f);
        p.post(2048);
        assert_eq!(p.pump_with(u32::MAX, 0, &mut *h.lock()), Ok(1));
        assert_eq!(h.flow().drop, 1);
        assert!(p.received().is_empty());
        // The buffer the receiver posted holds none of the frame.
        let m = GuestMemory::new(&mut p.b);
        let mut buf = [0u8; 64];
        m.read(RX_BUFS, &mut buf).unwrap();
        assert!(!buf.contains(&0xee), "compiled: {compiled}: {buf:?}");
    }
}

#[test]
fn the_interpreter_judging_frames_in_place_does_what_it_does_on_its_own_copy() {
    use crate::hooks::packet::tests::{hook, pass_ipv4};
    use vmm_abi::hook::asm::{exit, ldx, mov64_imm, st, stx};
    use vmm_abi::hook::context::XDP_DATA;
    use vmm_abi::hook::insn::{BPF_B, BPF_H, BPF_W, XDP_DROP, XDP_PASS};
    // Writes the frame's second byte and a half word at 2, then passes.
    let scribble = vec![
        ldx(BPF_W, 2, 1, XDP_DATA as i16),
        st(BPF_B, 2, 1, 0x5a),
        mov64_imm(3, 0x1234),
        stx(BPF_H, 2, 3, 2),
        mov64_imm(0, XDP_PASS as i32),
        exit(),
    ];
    // Reads byte 40 without a bounds check: faults on shorter frames.
    let unchecked = vec![
        ldx(BPF_W, 2, 1, XDP_DATA as i16),
        ldx(BPF_B, 3, 2, 40),
        mov64_imm(0, XDP_DROP as i32),
        exit(),
    ];
    for insns in [pass_ipv4(), scribble, unchecked] {
        let mut seen = Vec::new();
        // The fast path (in place), then the general path (the hook's copy).
        for raw in [true, false] {
            let h = hook(insns.clone());
            assert!(h.lock().judges_in_place());
            let mut p = if raw { Pair::raw() } else { Pair::new() };
            for (i, len) in [10usize, 14, 40, 41, 64, 1500].into_iter().enumerate() {
                let mut f = frame(len, i as u8);
                if i == 4 {
                    f[12] = 0x86;
                }
                p.send(&f);
                p.post(2048);
                assert_eq!(p.pump_with(u32::MAX, 0, &mut *h.lock()), Ok(1));
            }
            seen.push((p.received(), p.tx_used(), p.dir.flow, h.flow()));
        }
        assert_eq!(seen[0], seen[1], "{insns:?}");
        assert_eq!(seen[0].3.runs, 6);
    }
}
