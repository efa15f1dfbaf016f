//! The e1000 driver against the fake device: set-up, receive and transmit rings (wrapping, full, bad descriptors), quiesce, and property tests of the receive path against a device that writes anything.

use super::*;
use crate::mem::access::{GuestRam, GuestRead};
use crate::mem::raw::RawRam;
use crate::nic::fake::{DMA_BASE, EEPROM_MAC, FakeNic, FakeRegs};
use crate::nic::{MacAddr, NicDevice, NicError};

const N: usize = 8;
type Nic = E1000<FakeRegs, RawRam, N>;

fn setup() -> (FakeNic, Nic) {
    let fake = FakeNic::new(Nic::DMA_BYTES);
    let nic = Nic::new(fake.regs(), fake.dma, DMA_BASE, None).unwrap();
    (fake, nic)
}

/// A frame whose bytes say which frame it is.
fn frame(n: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32 ^ n.wrapping_mul(31)) as u8)
        .collect()
}

/// Takes every waiting frame, recycles each, flushes once.
fn drain(nic: &mut Nic) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while let Some(f) = nic.rx_peek().unwrap() {
        assert!(f.len >= 1 && f.len <= BUF_BYTES);
        let mut bytes = Vec::new();
        nic.rx_read(f.index, f.len, |c| bytes.extend_from_slice(c))
            .unwrap();
        assert_eq!(bytes.len(), f.len as usize);
        got.push(bytes);
        nic.rx_recycle(f.index).unwrap();
    }
    nic.rx_flush();
    got
}

fn send(nic: &mut Nic, bytes: &[u8]) -> Result<(), NicError> {
    let i = nic.tx_claim().expect("a free transmit slot");
    assert_eq!(nic.tx_write(i, 0, bytes)?, bytes.len() as u32);
    nic.tx_post(i, bytes.len() as u32)
}

#[test]
fn set_up_programs_every_register_even_after_garbage() {
    let (fake, nic) = setup();
    assert_eq!(fake.reg(IMS), 0, "every interrupt masked");
    assert_eq!(nic.mac(), MacAddr(EEPROM_MAC));
    assert_eq!(fake.reg(RAL0), u32::from_le_bytes([0x52, 0x54, 0x00, 0x12]));
    assert_eq!(fake.reg(RAH0), 0x5634 | RAH_AV);
    for n in 1..RA_PAIRS {
        assert_eq!(fake.reg(RAL0 + n * RA_STRIDE), 0);
        assert_eq!(fake.reg(RAH0 + n * RA_STRIDE), 0);
    }
    for i in 0..MTA_ENTRIES {
        assert_eq!(fake.reg(MTA + 4 * i), 0);
    }
    let ctrl = fake.reg(CTRL);
    assert_eq!(ctrl & (CTRL_SLU | CTRL_ASDE), CTRL_SLU | CTRL_ASDE);
    assert_eq!(ctrl & (CTRL_RST | CTRL_PHY_RST), 0);
    assert_eq!(
        fake.reg(RCTL),
        RCTL_EN | RCTL_UPE | RCTL_MPE | RCTL_BAM | RCTL_BSIZE_2048 | RCTL_SECRC
    );
    assert_eq!(
        fake.reg(TCTL),
        TCTL_EN | TCTL_PSP | TCTL_CT_STANDARD | TCTL_COLD_FULL_DUPLEX
    );
    assert_eq!(fake.reg(TIPG), TIPG_STANDARD);
    // The reset left the garbage; the driver wrote every ring register.
    let rx = DMA_BASE + Nic::RX_RING;
    let tx = DMA_BASE + Nic::TX_RING;
    assert_eq!(fake.reg(RDBAL), rx as u32);
    assert_eq!(fake.reg(RDBAH), (rx >> 32) as u32);
    assert_eq!(fake.reg(RDLEN), (N * 16) as u32);
    assert_eq!(fake.reg(RDH), 0);
    assert_eq!(fake.reg(RDT), N as u32 - 1);
    assert_eq!(fake.reg(TDBAL), tx as u32);
    assert_eq!(fake.reg(TDBAH), (tx >> 32) as u32);
    assert_eq!(fake.reg(TDLEN), (N * 16) as u32);
    assert_eq!(fake.reg(TDH), 0);
    assert_eq!(fake.reg(TDT), 0);
    // Receive descriptors point at their own buffers, status clear.
    for i in 0..N as u16 {
        let d = nic.rx_desc(i);
        assert_eq!(fake.dma.read_u64(d).unwrap(), nic.rx_buf(i).0);
        assert_eq!(fake.dma.read_u64(Gpa(d.0 + 8)).unwrap(), 0);
    }
    assert!(!nic.fcs_in_length());
    assert_eq!(nic.counters(), NicCounters::default());
}

#[test]
fn a_given_mac_wins_over_the_eeprom() {
    let fake = FakeNic::new(Nic::DMA_BYTES);
    fake.device.borrow_mut().eeprom_dead = true;
    let mac = MacAddr([0x02, 0, 0, 0, 0, 7]);
    let nic = Nic::new(fake.regs(), fake.dma, DMA_BASE, Some(mac)).unwrap();
    assert_eq!(nic.mac(), mac);
    assert_eq!(fake.reg(RAL0), 0x0000_0002);
    assert_eq!(fake.reg(RAH0), 0x0700 | RAH_AV);
    assert_eq!(mac.to_string(), "02:00:00:00:00:07");
}

#[test]
fn a_device_that_does_not_answer_is_a_named_error() {
    let fake = FakeNic::new(Nic::DMA_BYTES);
    fake.device.borrow_mut().reset_sticks = true;
    let e = Nic::new(fake.regs(), fake.dma, DMA_BASE, None)
        .err()
        .unwrap();
    assert_eq!(e, NicError::ResetTimeout { polls: RESET_POLLS });
    assert!(e.to_string().contains("CTRL.RST"));

    let fake = FakeNic::new(Nic::DMA_BYTES);
    fake.device.borrow_mut().eeprom_dead = true;
    let e = Nic::new(fake.regs(), fake.dma, DMA_BASE, None)
        .err()
        .unwrap();
    assert_eq!(e, NicError::EepromTimeout { word: 0 });
    assert!(e.to_string().contains("EERD.DONE"));
}

#[test]
fn dma_memory_must_hold_the_rings() {
    let fake = FakeNic::new(Nic::DMA_BYTES - 1);
    let e = Nic::new(fake.regs(), fake.dma, DMA_BASE, None)
        .err()
        .unwrap();
    assert!(matches!(e, NicError::Dma(_)), "{e}");
    let fake = FakeNic::new(Nic::DMA_BYTES + 64);
    let e = Nic::new(fake.regs(), fake.dma, DMA_BASE + 16, None)
        .err()
        .unwrap();
    assert_eq!(
        e,
        NicError::DmaMisaligned {
            base: DMA_BASE + 16
        }
    );
    // The default ring fits in 65 pages.
    const { assert!(E1000::<FakeRegs, RawRam>::DMA_BYTES <= 65 * 4096) };
}

#[test]
fn dma_memory_in_two_pieces_is_refused_for_either_mode() {
    // Every byte is there and writable, but the per-frame calls need the
    // area as one piece: set-up says so rather than every later call.
    for owned in [false, true] {
        let fake = FakeNic::new(Nic::DMA_BYTES);
        let mut memory = vec![0u8; Nic::DMA_BYTES as usize];
        let split = crate::mem::raw::testing::over_vec_split_at(&mut memory, DMA_BASE, 4096);
        let e = if owned {
            Nic::new_owned(fake.regs(), split, DMA_BASE, None)
        } else {
            Nic::new(fake.regs(), split, DMA_BASE, None)
        }
        .err()
        .unwrap();
        assert!(matches!(e, NicError::Dma(_)), "{e}");
    }
}

#[test]
fn link_status_comes_from_status_lu() {
    let (fake, mut nic) = setup();
    assert!(nic.link_up());
    let ctrl = fake.reg(CTRL);
    fake.device.borrow_mut().regs.insert(CTRL, ctrl & !CTRL_SLU);
    assert!(!nic.link_up());
}

#[test]
fn frames_arrive_in_order_while_the_ring_wraps() {
    let (fake, mut nic) = setup();
    let mut sent = Vec::new();
    let mut got = Vec::new();
    // Batches of 1..N-1 frames, about six times round the ring.
    for round in 0..20u32 {
        let batch = 1 + round as usize % (N - 1);
        for k in 0..batch {
            let f = frame(round * 100 + k as u32, 60 + 97 * k % 1400);
            assert!(fake.device.borrow_mut().receive(&f));
            sent.push(f);
        }
        got.extend(drain(&mut nic));
    }
    assert_eq!(got, sent);
    let c = nic.counters();
    assert_eq!(c.rx_frames, sent.len() as u64);
    assert_eq!(c.rx_bytes, sent.iter().map(|f| f.len() as u64).sum::<u64>());
    assert_eq!(fake.device.borrow().missed, 0);
    // One RDT write per flush that recycled something (plus the set-up's).
    assert_eq!(fake.device.borrow().rdt_writes, 1 + 20);
}

#[test]
fn a_full_receive_ring_makes_the_device_drop() {
    let (fake, mut nic) = setup();
    // N - 1 descriptors are the device's; the last frame finds none.
    for k in 0..N as u32 {
        let took = fake.device.borrow_mut().receive(&frame(k, 64));
        assert_eq!(took, k < N as u32 - 1);
    }
    assert_eq!(fake.device.borrow().missed, 1);
    // Peeking twice gives the same frame, counted once.
    let a = nic.rx_peek().unwrap().unwrap();
    assert_eq!(nic.rx_peek().unwrap(), Some(a));
    assert_eq!(nic.counters().rx_frames, 1);
    // Recycled but not flushed: the device still has no descriptor.
    nic.rx_recycle(a.index).unwrap();
    assert!(!fake.device.borrow_mut().receive(&frame(99, 64)));
    nic.rx_flush();
    assert!(fake.device.borrow_mut().receive(&frame(100, 64)));
    let got = drain(&mut nic);
    assert_eq!(got.len(), N - 1);
    assert_eq!(got.last().unwrap(), &frame(100, 64));
}

#[test]
fn bad_descriptors_are_dropped_and_counted() {
    let (fake, mut nic) = setup();
    let ok = DD_EOP;
    {
        let mut d = fake.device.borrow_mut();
        assert!(d.receive_raw(60, ok, 0x01)); // CE
        assert!(d.receive_raw(0, ok, 0)); // empty
        assert!(d.receive_raw(BUF_BYTES as u16 + 1, ok, 0)); // longer than a buffer
        assert!(d.receive(&frame(1, 100)));
        // A frame spanning three buffers: pieces without EOP, then its end.
        assert!(d.receive_raw(2048, RXD_STAT_DD, 0));
        assert!(d.receive_raw(2048, RXD_STAT_DD, 0));
        assert!(d.receive_raw(100, ok, 0));
    }
    let got = drain(&mut nic);
    assert_eq!(got, vec![frame(1, 100)]);
    {
        let mut d = fake.device.borrow_mut();
        assert!(d.receive(&frame(2, 1514)));
        assert!(d.receive_raw(40, ok, 0x80)); // RXE
        assert!(d.receive(&frame(3, 60)));
        assert!(d.receive_raw(u16::MAX, ok, 0));
    }
    let got = drain(&mut nic);
    assert_eq!(got, vec![frame(2, 1514), frame(3, 60)]);
    let c = nic.counters();
    assert_eq!(c.rx_drop_errors, 2);
    assert_eq!(c.rx_drop_length, 3);
    assert_eq!(c.rx_drop_no_eop, 1);
    assert_eq!(c.rx_frames, 3);
    // Every descriptor was given back: the ring is empty and whole.
    assert_eq!(fake.reg(RDT), u32::from(Nic::prev(nic.rx_next)));
}

const DD_EOP: u8 = RXD_STAT_DD | RXD_STAT_EOP;

#[test]
fn a_ring_full_of_bad_frames_takes_bounded_work() {
    let (fake, mut nic) = setup();
    for i in 0..N as u32 {
        fake.device.borrow_mut().scribble(i, 60, DD_EOP, 0xff);
    }
    // One call looks at most N descriptors, and every one is dropped.
    assert_eq!(nic.rx_peek().unwrap(), None);
    assert_eq!(nic.counters().rx_drop_errors, N as u64);
}

#[test]
fn the_fcs_is_taken_off_when_secrc_does_not_stick() {
    let fake = FakeNic::new(Nic::DMA_BYTES);
    fake.device.borrow_mut().secrc_ignored = true;
    let mut nic = Nic::new(fake.regs(), fake.dma, DMA_BASE, None).unwrap();
    assert!(nic.fcs_in_length());
    {
        let mut d = fake.device.borrow_mut();
        assert!(d.receive(&frame(5, 60)));
        // Only an FCS: nothing left.
        assert!(d.receive_raw(4, DD_EOP, 0));
        assert!(d.receive(&frame(6, 2044)));
    }
    assert_eq!(drain(&mut nic), vec![frame(5, 60), frame(6, 2044)]);
    assert_eq!(nic.counters().rx_drop_length, 1);
}

#[test]
fn a_device_rewriting_buffer_addresses_changes_nothing() {
    let (fake, mut nic) = setup();
    assert!(fake.device.borrow_mut().receive(&frame(7, 64)));
    // The device writes a foreign address into the done descriptor.
    let d = nic.rx_desc(0);
    let mut view = fake.dma;
    view.write_u64(d, 0xdead_0000).unwrap();
    assert_eq!(drain(&mut nic), vec![frame(7, 64)]);
    assert_eq!(fake.dma.read_u64(d).unwrap(), nic.rx_buf(0).0);
}

#[test]
fn receive_misuse_is_a_named_error() {
    let (fake, mut nic) = setup();
    assert!(fake.device.borrow_mut().receive(&frame(1, 64)));
    assert!(fake.device.borrow_mut().receive(&frame(2, 64)));
    let f = nic.rx_peek().unwrap().unwrap();
    assert_eq!(
        nic.rx_recycle(f.index + 1),
        Err(NicError::RxNotPeeked {
            index: f.index + 1,
            expected: f.index
        })
    );
    assert_eq!(
        nic.rx_recycle(N as u16),
        Err(NicError::BadIndex {
            ring: "RX",
            index: N as u16
        })
    );
    assert_eq!(
        nic.rx_read(0, BUF_BYTES + 1, |_| ()),
        Err(NicError::RxReadTooLong {
            len: BUF_BYTES + 1,
            max: BUF_BYTES
        })
    );
    assert!(nic.rx_read(N as u16, 1, |_| ()).is_err());
    nic.rx_recycle(f.index).unwrap();
    // Recycled already: not again.
    assert!(nic.rx_recycle(f.index).is_err());
    for e in [
        NicError::RxNotPeeked {
            index: 1,
            expected: 0,
        },
        NicError::BadIndex {
            ring: "TX",
            index: 9,
        },
        NicError::QuiesceTimeout { reg: "RDH" },
    ] {
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn transmitted_frames_arrive_intact_across_wraps() {
    let (fake, mut nic) = setup();
    let mut want = Vec::new();
    for round in 0..10u32 {
        let batch = 1 + round as usize % (N - 1);
        for k in 0..batch {
            let f = frame(
                round * 50 + k as u32,
                14 + (211 * k + round as usize) % 1500,
            );
            send(&mut nic, &f).unwrap();
            want.push(f);
        }
        nic.tx_flush();
        // Nothing posted since: no TDT write.
        nic.tx_flush();
    }
    assert_eq!(fake.device.borrow().sent, want);
    assert_eq!(fake.device.borrow().tdt_writes, 1 + 10);
    let c = nic.counters();
    assert_eq!(c.tx_frames, want.len() as u64);
    assert_eq!(c.tx_bytes, want.iter().map(|f| f.len() as u64).sum::<u64>());
    assert_eq!(c.tx_ring_full, 0);
}

#[test]
fn a_frame_written_in_pieces_is_sent_whole() {
    let (fake, mut nic) = setup();
    let f = frame(3, 1514);
    let i = nic.tx_claim().unwrap();
    // Claimed until posted.
    assert_eq!(nic.tx_claim(), Some(i));
    for (k, piece) in f.chunks(100).enumerate() {
        assert_eq!(
            nic.tx_write(i, (k * 100) as u32, piece).unwrap(),
            piece.len() as u32
        );
    }
    nic.tx_post(i, f.len() as u32).unwrap();
    nic.tx_flush();
    assert_eq!(fake.device.borrow().sent, vec![f]);
}

#[test]
fn a_full_transmit_ring_is_counted_and_recovers() {
    let (fake, mut nic) = setup();
    fake.device.borrow_mut().tx_stalled = true;
    for k in 0..N as u32 - 1 {
        send(&mut nic, &frame(k, 60)).unwrap();
        nic.tx_flush();
    }
    assert_eq!(nic.tx_claim(), None);
    assert_eq!(nic.tx_claim(), None);
    assert_eq!(nic.counters().tx_ring_full, 2);
    assert!(fake.device.borrow().sent.is_empty());
    // The device catches up at the next TDT write; the slots come back.
    fake.device.borrow_mut().tx_stalled = false;
    let tdt = fake.reg(TDT);
    FakeRegs(fake.device.clone()).write(TDT, tdt);
    assert_eq!(fake.device.borrow().sent.len(), N - 1);
    for k in 0..N as u32 - 1 {
        send(&mut nic, &frame(100 + k, 60)).unwrap();
    }
    nic.tx_flush();
    assert_eq!(fake.device.borrow().sent.len(), 2 * (N - 1));
}

#[test]
fn transmit_misuse_is_a_named_error() {
    let (fake, mut nic) = setup();
    assert_eq!(nic.tx_post(0, 60), Err(NicError::TxNotClaimed { index: 0 }));
    assert_eq!(
        nic.tx_write(0, 0, &[1]),
        Err(NicError::TxNotClaimed { index: 0 })
    );
    let i = nic.tx_claim().unwrap();
    assert_eq!(
        nic.tx_post(i + 1, 60),
        Err(NicError::TxNotClaimed { index: i + 1 })
    );
    assert_eq!(
        nic.tx_post(N as u16, 60),
        Err(NicError::BadIndex {
            ring: "TX",
            index: N as u16
        })
    );
    let max = MAX_TX_FRAME;
    assert_eq!(
        nic.tx_post(i, max + 1),
        Err(NicError::TxLength { len: max + 1, max })
    );
    assert_eq!(nic.tx_post(i, 0), Err(NicError::TxLength { len: 0, max }));
    // Writes past the buffer are cut, never out of it.
    assert_eq!(nic.tx_write(i, BUF_BYTES - 2, &[9; 10]).unwrap(), 2);
    assert_eq!(nic.tx_write(i, u32::MAX, &[9; 10]).unwrap(), 0);
    // Still claimed after the refusals.
    send(&mut nic, &frame(1, 60)).unwrap();
    nic.tx_flush();
    assert_eq!(fake.device.borrow().sent, vec![frame(1, 60)]);
    assert_eq!(nic.counters().tx_frames, 1);
}

#[test]
fn quiesce_stops_both_queues() {
    let (fake, mut nic) = setup();
    assert!(fake.device.borrow_mut().receive(&frame(1, 60)));
    nic.quiesce().unwrap();
    assert_eq!(fake.reg(RCTL) & RCTL_EN, 0);
    assert_eq!(fake.reg(TCTL) & TCTL_EN, 0);
    assert!(!fake.device.borrow_mut().receive(&frame(2, 60)));
    send(&mut nic, &frame(3, 60)).unwrap();
    nic.tx_flush();
    assert!(fake.device.borrow().sent.is_empty());
    // What arrived before is still there to read.
    assert_eq!(drain(&mut nic), vec![frame(1, 60)]);

    let (fake, mut nic) = setup();
    fake.device.borrow_mut().rdh_runs = true;
    assert_eq!(nic.quiesce(), Err(NicError::QuiesceTimeout { reg: "RDH" }));
}

#[test]
fn the_default_ring_works_too() {
    let fake = FakeNic::new(E1000::<FakeRegs, RawRam>::DMA_BYTES);
    let mut nic = E1000::<FakeRegs, RawRam>::new(fake.regs(), fake.dma, DMA_BASE, None).unwrap();
    assert_eq!(fake.reg(RDLEN), 64 * 16);
    for k in 0..200 {
        assert!(fake.device.borrow_mut().receive(&frame(k, 64)));
        let f = nic.rx_peek().unwrap().unwrap();
        nic.rx_recycle(f.index).unwrap();
        nic.rx_flush();
        let i = nic.tx_claim().unwrap();
        nic.tx_write(i, 0, &frame(k, 64)).unwrap();
        nic.tx_post(i, 64).unwrap();
        nic.tx_flush();
    }
    assert_eq!(nic.counters().rx_frames, 200);
    assert_eq!(fake.device.borrow().sent.len(), 200);
}

/// What the device does in one step of a property test.
#[derive(Clone, Debug)]
enum Step {
    /// A good frame from the wire.
    Wire(u16),
    /// The next descriptor written back with any fields.
    Raw(u16, u8, u8),
    /// Any descriptor scribbled on, owned or not.
    Scribble(u32, u16, u8, u8),
    /// The driver takes up to this many frames and flushes.
    Take(u8),
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        (1u16..=1514).prop_map(Step::Wire),
        (any::<u16>(), any::<u8>(), any::<u8>()).prop_map(|(l, s, e)| Step::Raw(l, s, e)),
        (any::<u32>(), any::<u16>(), any::<u8>(), any::<u8>())
            .prop_map(|(i, l, s, e)| Step::Scribble(i, l, s, e)),
        (0u8..12).prop_map(Step::Take),
    ]
}

proptest::proptest! {
    /// Whatever the device writes in the receive descriptors, the receive
    /// path never panics and every frame it yields lies inside its own
    /// buffer (each buffer is filled with its index; the device writes no
    /// data in these steps but good frames, which are the same fill).
    #[test]
    fn any_receive_descriptor_is_handled(steps in proptest::collection::vec(step(), 1..80)) {
        let (fake, mut nic) = setup();
        let mut view = fake.dma;
        for i in 0..N as u16 {
            view.write(nic.rx_buf(i), &[i as u8; BUF_BYTES as usize]).unwrap();
        }
        for s in steps {
            match s {
                Step::Wire(len) => {
                    let rdh = fake.reg(RDH) as u8;
                    let _ = fake.device.borrow_mut().receive(&vec![rdh; len.into()]);
                }
                Step::Raw(len, status, errors) => {
                    let _ = fake.device.borrow_mut().receive_raw(len, status, errors);
                }
                Step::Scribble(i, len, status, errors) => {
                    fake.device.borrow_mut().scribble(i, len, status, errors);
                }
                Step::Take(k) => {
                    for _ in 0..k {
                        let Some(f) = nic.rx_peek().unwrap() else { break };
                        proptest::prop_assert!(usize::from(f.index) < N);
                        proptest::prop_assert!(f.len >= 1 && f.len <= BUF_BYTES);
                        let mut n = 0u32;
                        let mut inside = true;
                        nic.rx_read(f.index, f.len, |c| {
                            n += c.len() as u32;
                            inside &= c.iter().all(|&b| b == f.index as u8);
                        }).unwrap();
                        proptest::prop_assert_eq!(n, f.len);
                        proptest::prop_assert!(inside);
                        nic.rx_recycle(f.index).unwrap();
                    }
                    nic.rx_flush();
                }
            }
        }
        let c = nic.counters();
        proptest::prop_assert!(c.rx_bytes <= c.rx_frames * u64::from(BUF_BYTES));
        // The driver's tail is always the descriptor before its next one.
        let rdt = fake.reg(RDT);
        proptest::prop_assert!(rdt < N as u32);
    }
}
