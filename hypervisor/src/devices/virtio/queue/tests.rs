//! Tests of the split virtqueue against a mock driver in a `Vec<u8>`: a
//! well-behaved driver, notification suppression, each hostile ring with its
//! named error, and a property test over random rings.

use super::*;
use crate::devices::virtio::testing::{DriverQueue, MEM_SIZE};
use crate::mem::guest::GuestMemory;
use proptest::strategy::Strategy as _;

const BUF: u64 = 0x2000;

fn setup(size: u16, event_idx: bool) -> (Vec<u8>, DriverQueue, SplitQueue) {
    let backing = vec![0u8; MEM_SIZE];
    let dq = DriverQueue::new(size, 0x100);
    let q = SplitQueue::new(dq.layout(), event_idx, QueueLimits::default()).unwrap();
    (backing, dq, q)
}

#[test]
fn well_behaved_driver_round_trip() {
    let (mut backing, mut dq, mut q) = setup(8, false);
    let mut m = GuestMemory::new(&mut backing);
    q.check_rings(&mut m).unwrap();
    assert!(q.pop_avail(&mut m).unwrap().is_none());

    // A request: 4 readable bytes then a 2-byte writable tail, from two
    // descriptors.
    m.write(BUF, b"ping").unwrap();
    dq.set_desc(&mut m, 3, BUF, 4, VIRTQ_DESC_F_NEXT, 5);
    dq.set_desc(&mut m, 5, BUF + 0x100, 2, VIRTQ_DESC_F_WRITE, 0);
    dq.publish(&mut m, 3);
    assert_eq!(q.avail_pending(&m).unwrap(), 1);

    let chain = q.pop_avail(&mut m).unwrap().unwrap();
    assert_eq!(chain.head(), 3);
    assert_eq!(chain.descriptors().len(), 2);
    assert_eq!((chain.readable_len(), chain.writable_len()), (4, 2));
    let mut out = [0u8; 8];
    assert_eq!(chain.read_into(&m, &mut out).unwrap(), 4);
    assert_eq!(&out[..4], b"ping");
    assert_eq!(chain.read_at(&m, 2, &mut out).unwrap(), 2);
    assert_eq!(&out[..2], b"ng");
    assert_eq!(chain.write_from(&mut m, b"okay").unwrap(), 2, "clipped");
    let mut tail = [0u8; 2];
    m.read(BUF + 0x100, &mut tail).unwrap();
    assert_eq!(&tail, b"ok");
    assert!(q.pop_avail(&mut m).unwrap().is_none());

    q.push_used(&mut m, chain.head(), 2).unwrap();
    assert_eq!(dq.used_idx(&m), 1);
    assert_eq!(dq.used_elem(&m, 0), (3, 2));
    assert!(q.needs_interrupt(&m).unwrap(), "flags 0: notify");
    assert!(!q.needs_interrupt(&m).unwrap(), "nothing new");
}

#[test]
fn pop_into_reuses_one_chain_and_reads_the_idx_once_per_batch() {
    let (mut backing, mut dq, mut q) = setup(8, false);
    let mut m = GuestMemory::new(&mut backing);
    dq.set_desc(&mut m, 0, BUF, 4, VIRTQ_DESC_F_NEXT, 1);
    dq.set_desc(&mut m, 1, BUF + 0x10, 4, VIRTQ_DESC_F_WRITE, 0);
    dq.set_desc(&mut m, 2, BUF + 0x20, 8, 0, 0);
    dq.publish(&mut m, 0);
    dq.publish(&mut m, 2);
    let mut c = Chain::default();
    assert!(q.pop_avail_into(&mut m, &mut c).unwrap());
    assert_eq!(
        (c.head(), c.descriptors().len(), c.writable_len()),
        (0, 2, 4)
    );
    // The driver scribbles its idx: the batch already read is served from
    // the cached idx, and the scribble is caught once the device catches up.
    dq.set_avail_idx(&mut m, 200);
    assert!(q.pop_avail_into(&mut m, &mut c).unwrap());
    assert_eq!(
        (
            c.head(),
            c.descriptors().len(),
            c.readable_len(),
            c.writable_len()
        ),
        (2, 1, 8, 0)
    );
    assert_eq!(
        q.pop_avail_into(&mut m, &mut c),
        Err(QueueError::AvailIndexJump { from: 2, to: 200 })
    );
}

#[test]
fn indices_wrap_around_the_ring_and_u16() {
    let (mut backing, mut dq, mut q) = setup(4, false);
    let mut m = GuestMemory::new(&mut backing);
    for i in 0..4 {
        dq.set_desc(&mut m, i, BUF + u64::from(i) * 16, 16, 0, 0);
    }
    for round in 0u32..70_000 / 3 {
        for k in 0..3u16 {
            dq.publish(&mut m, ((round as u16).wrapping_add(k)) % 4);
        }
        for _ in 0..3 {
            let c = q.pop_avail(&mut m).unwrap().unwrap();
            q.add_used(&mut m, c.head(), 0).unwrap();
        }
        q.publish_used(&mut m).unwrap();
        assert!(q.pop_avail(&mut m).unwrap().is_none());
    }
    assert_eq!(q.used_idx(), dq.used_idx(&m));
    assert_eq!(q.last_avail_idx(), dq.avail_idx);
}

#[test]
fn batch_publishes_once() {
    let (mut backing, mut dq, mut q) = setup(4, false);
    let mut m = GuestMemory::new(&mut backing);
    dq.set_desc(&mut m, 0, BUF, 1, 0, 0);
    dq.set_desc(&mut m, 1, BUF, 1, 0, 0);
    dq.publish(&mut m, 0);
    dq.publish(&mut m, 1);
    let a = q.pop_avail(&mut m).unwrap().unwrap();
    let b = q.pop_avail(&mut m).unwrap().unwrap();
    q.add_used(&mut m, a.head(), 0).unwrap();
    q.add_used(&mut m, b.head(), 0).unwrap();
    assert_eq!(dq.used_idx(&m), 0, "not published yet");
    q.publish_used(&mut m).unwrap();
    assert_eq!(dq.used_idx(&m), 2);
    assert_eq!(dq.used_elem(&m, 1), (1, 0));
}

#[test]
fn no_notify_without_event_idx_uses_flags() {
    let (mut backing, mut dq, mut q) = setup(4, false);
    let mut m = GuestMemory::new(&mut backing);
    q.set_no_notify(&mut m, true).unwrap();
    assert_eq!(dq.used_flags(&m), VIRTQ_USED_F_NO_NOTIFY);
    q.set_no_notify(&mut m, false).unwrap();
    assert_eq!(dq.used_flags(&m), 0);
    // The driver suppresses interrupts with its own flag.
    dq.set_avail_flags(&mut m, VIRTQ_AVAIL_F_NO_INTERRUPT);
    dq.set_desc(&mut m, 0, BUF, 1, 0, 0);
    dq.publish(&mut m, 0);
    let c = q.pop_avail(&mut m).unwrap().unwrap();
    q.push_used(&mut m, c.head(), 0).unwrap();
    assert!(!q.needs_interrupt(&m).unwrap());
}

/// The driver's check from §2.7.10 (as a spec-following driver does it).
fn spec_driver_kicks(avail_event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(avail_event).wrapping_sub(1) < new.wrapping_sub(old)
}

/// virtio-drivers 0.13's check, which does not wrap.
fn virtio_drivers_kicks(avail_event: u16, new: u16) -> bool {
    new >= avail_event.wrapping_add(1)
}

#[test]
fn event_idx_suppression_means_no_kicks_in_steady_state() {
    let (mut backing, mut dq, mut q) = setup(8, true);
    let mut m = GuestMemory::new(&mut backing);
    q.set_no_notify(&mut m, true).unwrap();
    assert_eq!(dq.avail_event(&m), AVAIL_EVENT_SUPPRESSED);
    assert_eq!(dq.used_flags(&m), 0, "flags stay 0 with event idx");
    for i in 0..8 {
        dq.set_desc(&mut m, i, BUF, 1, 0, 0);
    }
    // 65536 + 3 buffers in batches of 3: count the kicks either driver
    // would send.
    let (mut spec_kicks, mut vd_kicks) = (0, 0);
    let mut sent = 0u32;
    while sent < 65_539 {
        for k in 0..3 {
            let old = dq.avail_idx;
            dq.publish(&mut m, k);
            let ev = dq.avail_event(&m);
            spec_kicks += u32::from(spec_driver_kicks(ev, dq.avail_idx, old));
            vd_kicks += u32::from(virtio_drivers_kicks(ev, dq.avail_idx));
        }
        sent += 3;
        while let Some(c) = q.pop_avail(&mut m).unwrap() {
            q.add_used(&mut m, c.head(), 0).unwrap();
        }
        q.publish_used(&mut m).unwrap();
    }
    assert_eq!(spec_kicks, 1, "once per 65536 buffers");
    assert_eq!(vd_kicks, 1, "once per 65536 buffers");
}

#[test]
fn event_idx_notify_mode_asks_for_the_next_entry() {
    let (mut backing, mut dq, mut q) = setup(8, true);
    let mut m = GuestMemory::new(&mut backing);
    dq.set_desc(&mut m, 0, BUF, 1, 0, 0);
    for _ in 0..5 {
        dq.publish(&mut m, 0);
        let c = q.pop_avail(&mut m).unwrap().unwrap();
        q.push_used(&mut m, c.head(), 0).unwrap();
    }
    q.set_no_notify(&mut m, false).unwrap();
    assert_eq!(dq.avail_event(&m), 5);
    let old = dq.avail_idx;
    dq.publish(&mut m, 0);
    assert!(spec_driver_kicks(dq.avail_event(&m), dq.avail_idx, old));
    assert!(virtio_drivers_kicks(dq.avail_event(&m), dq.avail_idx));
    q.pop_avail(&mut m).unwrap().unwrap();
    assert_eq!(dq.avail_event(&m), 6, "re-armed for the next one");
}

#[test]
fn used_event_decides_interrupts() {
    let (mut backing, mut dq, mut q) = setup(8, true);
    let mut m = GuestMemory::new(&mut backing);
    dq.set_desc(&mut m, 0, BUF, 1, 0, 0);
    fn use_one(m: &mut GuestMemory<'_>, dq: &mut DriverQueue, q: &mut SplitQueue) {
        dq.publish(m, 0);
        let c = q.pop_avail(m).unwrap().unwrap();
        q.push_used(m, c.head(), 0).unwrap();
    }
    // used_event = 0: interrupt once the entry at index 0 is used.
    use_one(&mut m, &mut dq, &mut q);
    assert!(q.needs_interrupt(&m).unwrap());
    // Still 0: no interrupt for the next ones.
    use_one(&mut m, &mut dq, &mut q);
    assert!(!q.needs_interrupt(&m).unwrap());
    // Ask for one when used idx passes 3 (entry 3 written).
    dq.set_used_event(&mut m, 3);
    use_one(&mut m, &mut dq, &mut q);
    assert!(!q.needs_interrupt(&m).unwrap(), "used idx 3: entry 2");
    use_one(&mut m, &mut dq, &mut q);
    use_one(&mut m, &mut dq, &mut q);
    assert!(
        q.needs_interrupt(&m).unwrap(),
        "entries 3 and 4 in one batch"
    );
    // The driver ignores NO_INTERRUPT's meaning under event idx.
    dq.set_avail_flags(&mut m, VIRTQ_AVAIL_F_NO_INTERRUPT);
    dq.set_used_event(&mut m, 5);
    use_one(&mut m, &mut dq, &mut q);
    assert!(q.needs_interrupt(&m).unwrap());
}

fn pop_err(size: u16, build: impl FnOnce(&mut GuestMemory, &mut DriverQueue)) -> QueueError {
    pop_err_with(size, QueueLimits::default(), build)
}

fn pop_err_with(
    size: u16,
    limits: QueueLimits,
    build: impl FnOnce(&mut GuestMemory, &mut DriverQueue),
) -> QueueError {
    let mut backing = vec![0u8; MEM_SIZE];
    let mut dq = DriverQueue::new(size, 0x100);
    let mut q = SplitQueue::new(dq.layout(), false, limits).unwrap();
    let mut m = GuestMemory::new(&mut backing);
    build(&mut m, &mut dq);
    let before = q.last_avail_idx();
    let e = q.pop_avail(&mut m).unwrap_err();
    assert_eq!(q.last_avail_idx(), before, "an error does not advance");
    assert!(!e.to_string().is_empty());
    e
}

#[test]
fn head_index_out_of_range() {
    let e = pop_err(8, |m, dq| dq.publish(m, 8));
    assert_eq!(
        e,
        QueueError::DescriptorIndexOutOfRange { index: 8, size: 8 }
    );
}

#[test]
fn next_index_out_of_range() {
    let e = pop_err(8, |m, dq| {
        dq.set_desc(m, 0, BUF, 4, VIRTQ_DESC_F_NEXT, 0xffff);
        dq.publish(m, 0);
    });
    assert_eq!(
        e,
        QueueError::DescriptorIndexOutOfRange {
            index: 0xffff,
            size: 8
        }
    );
}

#[test]
fn buffer_outside_memory() {
    let end = MEM_SIZE as u64;
    for (addr, len) in [(end, 1), (end - 4, 5), (u64::MAX - 2, 8), (u64::MAX, 1)] {
        let e = pop_err(8, |m, dq| {
            dq.set_desc(m, 1, addr, len, 0, 0);
            dq.publish(m, 1);
        });
        assert_eq!(e, QueueError::BufferOutsideMemory { addr, len });
    }
}

#[test]
fn next_points_to_a_buffer_outside_memory() {
    let e = pop_err(8, |m, dq| {
        dq.set_desc(m, 0, BUF, 4, VIRTQ_DESC_F_NEXT, 1);
        dq.set_desc(m, 1, 1 << 40, 4, 0, 0);
        dq.publish(m, 0);
    });
    assert_eq!(
        e,
        QueueError::BufferOutsideMemory {
            addr: 1 << 40,
            len: 4
        }
    );
}

#[test]
fn descriptor_loop() {
    let e = pop_err(8, |m, dq| {
        dq.set_desc(m, 2, BUF, 4, VIRTQ_DESC_F_NEXT, 6);
        dq.set_desc(m, 6, BUF, 4, VIRTQ_DESC_F_NEXT, 2);
        dq.publish(m, 2);
    });
    assert_eq!(e, QueueError::ChainLoop { index: 2 });
    let e = pop_err(4, |m, dq| {
        dq.set_desc(m, 1, BUF, 4, VIRTQ_DESC_F_NEXT, 1);
        dq.publish(m, 1);
    });
    assert_eq!(e, QueueError::ChainLoop { index: 1 }, "self loop");
}

#[test]
fn chain_through_the_whole_table_then_back_is_a_loop() {
    let e = pop_err(4, |m, dq| {
        for i in 0..4 {
            dq.set_desc(m, i, BUF, 1, VIRTQ_DESC_F_NEXT, (i + 1) % 4);
        }
        dq.publish(m, 0);
    });
    assert_eq!(e, QueueError::ChainLoop { index: 0 });
}

#[test]
fn chain_longer_than_the_limit() {
    // Queue of 64, a straight chain of 33 > MAX_CHAIN_DESCRIPTORS.
    let e = pop_err(64, |m, dq| {
        for i in 0..33 {
            dq.set_desc(m, i, BUF, 1, VIRTQ_DESC_F_NEXT, i + 1);
        }
        dq.set_desc(m, 33, BUF, 1, 0, 0);
        dq.publish(m, 0);
    });
    assert_eq!(e, QueueError::ChainTooLong { limit: 32 });
    // A configured lower limit.
    let limits = QueueLimits {
        max_chain_len: 4,
        ..QueueLimits::default()
    };
    let e = pop_err_with(16, limits, |m, dq| {
        for i in 0..5 {
            dq.set_desc(m, i, BUF, 1, VIRTQ_DESC_F_NEXT, i + 1);
        }
        dq.set_desc(m, 5, BUF, 1, 0, 0);
        dq.publish(m, 0);
    });
    assert_eq!(e, QueueError::ChainTooLong { limit: 4 });
}

#[test]
fn chain_longer_than_the_queue() {
    // Queue of 2: a chain of 3 must revisit a descriptor, which is found
    // as a loop before the size cap.
    let e = pop_err(2, |m, dq| {
        dq.set_desc(m, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1);
        dq.set_desc(m, 1, BUF, 1, VIRTQ_DESC_F_NEXT, 0);
        dq.publish(m, 0);
    });
    assert_eq!(e, QueueError::ChainLoop { index: 0 });
}

#[test]
fn chain_too_many_bytes() {
    let e = pop_err(8, |m, dq| {
        dq.set_desc(m, 0, 0, DEFAULT_MAX_CHAIN_BYTES, VIRTQ_DESC_F_NEXT, 1);
        dq.set_desc(m, 1, 0, 1, 0, 0);
        dq.publish(m, 0);
    });
    assert_eq!(
        e,
        QueueError::ChainTooLarge {
            limit: DEFAULT_MAX_CHAIN_BYTES
        }
    );
    // Lengths near u32::MAX do not overflow the sum.
    let e = pop_err(8, |m, dq| {
        dq.set_desc(m, 0, 0, u32::MAX, VIRTQ_DESC_F_NEXT, 1);
        dq.publish(m, 0);
    });
    assert!(matches!(e, QueueError::ChainTooLarge { .. }));
}

#[test]
fn writable_before_readable() {
    let e = pop_err(8, |m, dq| {
        dq.set_desc(m, 0, BUF, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
        dq.set_desc(m, 1, BUF, 4, 0, 0);
        dq.publish(m, 0);
    });
    assert_eq!(e, QueueError::WritableBeforeReadable { index: 1 });
}

#[test]
fn indirect_is_rejected() {
    let e = pop_err(8, |m, dq| {
        dq.set_desc(m, 0, BUF, 32, VIRTQ_DESC_F_INDIRECT, 0);
        dq.publish(m, 0);
    });
    assert_eq!(e, QueueError::IndirectNotSupported { index: 0 });
}

#[test]
fn avail_index_jump() {
    let e = pop_err(8, |m, dq| dq.set_avail_idx(m, 9));
    assert_eq!(e, QueueError::AvailIndexJump { from: 0, to: 9 });
    let e = pop_err(8, |m, dq| dq.set_avail_idx(m, 0xffff));
    assert_eq!(
        e,
        QueueError::AvailIndexJump {
            from: 0,
            to: 0xffff
        },
        "going back"
    );
    assert_eq!(
        std::format!("{e}"),
        "avail idx went backwards from 0 to 65535 (it may only grow)"
    );
    assert_eq!(
        std::format!("{}", QueueError::AvailIndexJump { from: 0, to: 9 }),
        "avail idx jumped from 0 to 9, more than the queue size"
    );
}

#[test]
fn used_ring_in_read_only_memory_is_named() {
    let mut low = vec![0u8; MEM_SIZE];
    let shared = [0u8; 0x1000];
    let mut m = GuestMemory::empty(MEM_SIZE as u64 + 0x1000);
    m.add_private(0, &mut low).unwrap();
    m.add_shared(MEM_SIZE as u64, &shared).unwrap();
    let layout = QueueLayout {
        size: 8,
        desc_table: 0x100,
        avail_ring: 0x200,
        used_ring: MEM_SIZE as u64,
    };
    let q = SplitQueue::new(layout, false, QueueLimits::default()).unwrap();
    let e = q.check_rings(&mut m).unwrap_err();
    assert_eq!(
        e,
        QueueError::RingNotWritable {
            ring: RingPart::Used,
            addr: MEM_SIZE as u64,
            len: 70
        }
    );
    assert!(std::format!("{e}").contains("read-only memory"));
}

#[test]
fn writable_buffer_in_shared_memory() {
    let mut low = vec![0u8; MEM_SIZE];
    let shared = [0u8; 0x1000];
    let mut m = GuestMemory::empty(MEM_SIZE as u64 + 0x1000);
    m.add_private(0, &mut low).unwrap();
    m.add_shared(MEM_SIZE as u64, &shared).unwrap();
    let mut dq = DriverQueue::new(8, 0x100);
    let mut q = SplitQueue::new(dq.layout(), false, QueueLimits::default()).unwrap();
    let addr = MEM_SIZE as u64;
    dq.set_desc(&mut m, 0, addr, 8, VIRTQ_DESC_F_NEXT, 1);
    dq.set_desc(&mut m, 1, addr, 8, VIRTQ_DESC_F_WRITE, 0);
    dq.publish(&mut m, 0);
    assert_eq!(
        q.pop_avail(&mut m).unwrap_err(),
        QueueError::BufferNotWritable { addr, len: 8 }
    );
}

#[test]
fn rings_outside_memory() {
    let mut backing = vec![0u8; MEM_SIZE];
    let mut m = GuestMemory::new(&mut backing);
    let end = MEM_SIZE as u64;
    let layout = QueueLayout {
        size: 8,
        desc_table: 0x100,
        avail_ring: end - 4,
        used_ring: 0x400,
    };
    let mut q = SplitQueue::new(layout, false, QueueLimits::default()).unwrap();
    assert_eq!(
        layout.check_within(end).unwrap_err(),
        QueueError::RingOutsideMemory {
            ring: RingPart::Avail,
            addr: end - 4,
            len: 22
        }
    );
    assert!(matches!(
        q.check_rings(&mut m).unwrap_err(),
        QueueError::RingOutsideMemory {
            ring: RingPart::Avail,
            ..
        }
    ));
    // Reading the idx at end-2 works; the ring entry at end does not.
    m.write(end - 2, &1u16.to_le_bytes()).unwrap();
    assert!(matches!(
        q.pop_avail(&mut m).unwrap_err(),
        QueueError::RingOutsideMemory {
            ring: RingPart::Avail,
            ..
        }
    ));

    let layout = QueueLayout {
        size: 8,
        desc_table: end - 16,
        avail_ring: 0x200,
        used_ring: 0x400,
    };
    let mut q = SplitQueue::new(layout, false, QueueLimits::default()).unwrap();
    let mut dq = DriverQueue::with_layout(layout);
    dq.publish(&mut m, 3);
    assert_eq!(
        q.pop_avail(&mut m).unwrap_err(),
        QueueError::RingOutsideMemory {
            ring: RingPart::Descriptors,
            addr: end - 16 + 48,
            len: 16
        }
    );

    let layout = QueueLayout {
        size: 8,
        desc_table: 0x100,
        avail_ring: 0x200,
        used_ring: end,
    };
    let mut q = SplitQueue::new(layout, false, QueueLimits::default()).unwrap();
    assert!(matches!(
        q.push_used(&mut m, 0, 0).unwrap_err(),
        QueueError::RingOutsideMemory {
            ring: RingPart::Used,
            ..
        }
    ));
    assert!(q.set_no_notify(&mut m, true).is_err());
}

#[test]
fn layout_validation() {
    let ok = QueueLayout {
        size: 8,
        desc_table: 0x1000,
        avail_ring: 0x1080,
        used_ring: 0x10c0,
    };
    assert!(ok.validate().is_ok());
    for size in [0, 3, 12] {
        assert_eq!(
            QueueLayout { size, ..ok }.validate(),
            Err(QueueError::QueueSizeInvalid { size: size.into() })
        );
    }
    assert!(
        QueueLayout {
            size: MAX_QUEUE_SIZE,
            ..ok
        }
        .validate()
        .is_ok()
    );
    assert_eq!(
        QueueLayout {
            desc_table: 0x1008,
            ..ok
        }
        .validate(),
        Err(QueueError::RingMisaligned {
            ring: RingPart::Descriptors,
            addr: 0x1008
        })
    );
    assert_eq!(
        QueueLayout {
            avail_ring: 0x1081,
            ..ok
        }
        .validate(),
        Err(QueueError::RingMisaligned {
            ring: RingPart::Avail,
            addr: 0x1081
        })
    );
    assert_eq!(
        QueueLayout {
            used_ring: 0x10c2,
            ..ok
        }
        .validate(),
        Err(QueueError::RingMisaligned {
            ring: RingPart::Used,
            addr: 0x10c2
        })
    );
    let top = u64::MAX - 15;
    assert!(matches!(
        QueueLayout {
            desc_table: top,
            ..ok
        }
        .validate(),
        Err(QueueError::RingOutsideMemory { .. })
    ));
}

#[test]
fn push_used_checks_the_head() {
    let (mut backing, _dq, mut q) = setup(8, false);
    let mut m = GuestMemory::new(&mut backing);
    assert_eq!(
        q.push_used(&mut m, 8, 0),
        Err(QueueError::DescriptorIndexOutOfRange { index: 8, size: 8 })
    );
}

#[test]
fn zero_length_and_split_buffers() {
    let (mut backing, mut dq, mut q) = setup(8, false);
    let mut m = GuestMemory::new(&mut backing);
    m.write(BUF, b"abcdef").unwrap();
    dq.set_desc(&mut m, 0, BUF, 2, VIRTQ_DESC_F_NEXT, 1);
    dq.set_desc(&mut m, 1, BUF + 2, 0, VIRTQ_DESC_F_NEXT, 2);
    dq.set_desc(&mut m, 2, BUF + 2, 4, VIRTQ_DESC_F_NEXT, 3);
    dq.set_desc(
        &mut m,
        3,
        BUF + 0x40,
        3,
        VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
        4,
    );
    dq.set_desc(&mut m, 4, BUF + 0x80, 3, VIRTQ_DESC_F_WRITE, 0);
    dq.publish(&mut m, 0);
    let c = q.pop_avail(&mut m).unwrap().unwrap();
    assert_eq!(c.readable().len(), 3);
    assert_eq!(c.writable().len(), 2);
    let mut out = [0u8; 6];
    assert_eq!(c.read_at(&m, 1, &mut out).unwrap(), 5);
    assert_eq!(&out[..5], b"bcdef");
    assert_eq!(c.write_at(&mut m, 2, b"WXYZ").unwrap(), 4);
    let mut a = [0u8; 3];
    m.read(BUF + 0x40, &mut a).unwrap();
    assert_eq!(a[2], b'W');
    m.read(BUF + 0x80, &mut a).unwrap();
    assert_eq!(&a, b"XYZ");
    assert_eq!(c.write_at(&mut m, 6, b"!").unwrap(), 0, "past the end");
}

/// A driver's descriptor as the property test scribbles it: mostly
/// plausible (addresses in or near memory, small lengths, plain flags,
/// `next` inside the table), sometimes anything.
fn arb_desc() -> impl proptest::strategy::Strategy<Value = (u64, u32, u16, u16)> {
    use proptest::prelude::*;
    (
        prop_oneof![6 => 0u64..PROP_MEM as u64 + 64, 1 => proptest::num::u64::ANY],
        prop_oneof![6 => 0u32..300, 1 => proptest::num::u32::ANY],
        prop_oneof![6 => 0u16..4, 1 => 0u16..8],
        prop_oneof![6 => 0u16..NEAR, 1 => proptest::num::u16::ANY],
    )
}

/// Below this, a generated index is taken modulo (queue size + 1): in
/// the table, or just past it.
const NEAR: u16 = 64;

fn near(index: u16, size: u16) -> u16 {
    if index < NEAR {
        index % (size + 1)
    } else {
        index
    }
}

const PROP_MEM: usize = 0x1000;

proptest::proptest! {
    /// Whatever the driver left in its rings and descriptors, popping
    /// never panics, and every chain handed out lies inside guest memory
    /// and within the caps; the helpers and the used ring stay in bounds.
    #[test]
    fn random_rings_never_escape(
        bytes in proptest::collection::vec(proptest::num::u8::ANY, PROP_MEM),
        size_log in 0u32..6,
        event_idx in proptest::bool::ANY,
        descs in proptest::collection::vec(arb_desc(), 32),
        heads in proptest::collection::vec(0u16..NEAR, 32),
        avail_jump in proptest::prop_oneof![7 => proptest::strategy::Just(None), 1 => (0u16..80).prop_map(Some)],
        used_event in proptest::num::u16::ANY,
    ) {
        let size = 1u16 << size_log;
        let mut backing = bytes;
        let mut m = GuestMemory::new(&mut backing);
        let mut dq = DriverQueue::new(size, 0x100);
        for (i, &(addr, len, flags, next)) in descs.iter().enumerate().take(size.into()) {
            dq.set_desc(&mut m, i as u16, addr, len, flags, near(next, size));
        }
        for &h in heads.iter().take(size.into()) {
            dq.publish(&mut m, near(h, size));
        }
        if let Some(idx) = avail_jump {
            dq.set_avail_idx(&mut m, idx);
        }
        dq.set_used_event(&mut m, used_event);
        let mut q = SplitQueue::new(dq.layout(), event_idx, QueueLimits::default()).unwrap();
        q.set_no_notify(&mut m, size_log % 2 == 0).unwrap();
        for _ in 0..2 * u32::from(size) + 2 {
            match q.pop_avail(&mut m) {
                Ok(Some(c)) => {
                    let mut total = 0u64;
                    let mut seen_writable = false;
                    proptest::prop_assert!(c.descriptors().len() <= usize::from(size));
                    proptest::prop_assert!(c.descriptors().len() <= MAX_CHAIN_DESCRIPTORS);
                    for d in c.descriptors() {
                        let end = d.addr.checked_add(u64::from(d.len));
                        proptest::prop_assert!(end.is_some_and(|e| e <= PROP_MEM as u64));
                        proptest::prop_assert!(!d.is_indirect());
                        proptest::prop_assert!(!seen_writable || d.is_writable(), "readable after writable");
                        seen_writable |= d.is_writable();
                        total += u64::from(d.len);
                    }
                    proptest::prop_assert!(total <= u64::from(DEFAULT_MAX_CHAIN_BYTES));
                    let mut out = [0u8; 64];
                    let n = c.read_into(&m, &mut out).unwrap();
                    proptest::prop_assert_eq!(n as u32, c.readable_len().min(64));
                    let n = c.write_from(&mut m, &[0xa5; 64]).unwrap();
                    proptest::prop_assert_eq!(n as u32, c.writable_len().min(64));
                    q.push_used(&mut m, c.head(), n as u32).unwrap();
                    let _ = q.needs_interrupt(&m);
                }
                Ok(None) => break,
                Err(e) => {
                    proptest::prop_assert!(!e.to_string().is_empty());
                    break;
                }
            }
        }
    }
}

#[test]
fn rings_close_together_are_one_span_and_far_apart_are_not() {
    let near = QueueLayout {
        size: 8,
        desc_table: 0x1000,
        avail_ring: 0x1080,
        used_ring: 0x2000,
    };
    let s = near.span().unwrap();
    // The used ring: 4 bytes of flags and idx, 8 elements of 8, avail_event.
    assert_eq!((s.lo, s.len), (0x1000, 0x1000 + 4 + 64 + 2));
    assert_eq!(
        s.areas,
        [(0, 128), (0x80, 4 + 16 + 2), (0x1000, 4 + 64 + 2)]
    );
    let far = QueueLayout {
        used_ring: 0x1000 + 64 * 1024,
        ..near
    };
    assert_eq!(far.span(), None);
    let wraps = QueueLayout {
        used_ring: u64::MAX - 8,
        ..near
    };
    assert_eq!(wraps.span(), None);
}
