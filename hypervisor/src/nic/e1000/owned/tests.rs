//! The caller-buffer rings against the fake device: receive into given buffers in order, bad frames, full rings, two-descriptor transmit with the header from the driver's copy, revocation leaving no caller address behind, and the two modes kept apart.

use super::*;
use crate::mem::access::{GuestRam, GuestRead};
use crate::mem::raw::RawRam;
use crate::nic::fake::{DMA_BASE, FakeNic, FakeRegs};
use crate::nic::{NicDevice, NicError};

const N: usize = 8;
type Nic = E1000<FakeRegs, RawRam, N>;

fn setup() -> (FakeNic, Nic) {
    let fake = FakeNic::new(Nic::DMA_BYTES);
    let nic = Nic::new_owned(fake.regs(), fake.dma, DMA_BASE, None).unwrap();
    (fake, nic)
}

/// A "caller's buffer": the `i`-th 2048 bytes of the DMA area (the owned
/// mode does not use the copy mode's receive buffers).
fn caller_buf(i: u64) -> u64 {
    DMA_BASE + i * 2048
}

fn frame(n: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7) ^ n).collect()
}

#[test]
fn frames_land_in_the_given_buffers_in_order() {
    let (fake, mut nic) = setup();
    assert_eq!(fake.reg(RDT), 0, "no buffer until one is given");
    for (i, cookie) in [(0, 10), (1, 11), (2, 12)] {
        assert!(nic.zc_rx_give(caller_buf(i), cookie).unwrap());
    }
    nic.zc_rx_flush();
    assert_eq!(fake.reg(RDT), 3);
    let (a, b) = (frame(1, 60), frame(2, 1514));
    assert!(fake.device.borrow_mut().receive(&a));
    assert!(fake.device.borrow_mut().receive(&b));
    assert_eq!(nic.zc_rx_taken().unwrap(), Some((10, Some(60))));
    assert_eq!(nic.zc_rx_taken().unwrap(), Some((11, Some(1514))));
    assert_eq!(nic.zc_rx_taken().unwrap(), None);
    let mut got = vec![0; 1514];
    fake.dma.read(Gpa(caller_buf(1)), &mut got).unwrap();
    assert_eq!(got, b);
    // The taken descriptors no longer hold the caller's addresses.
    assert_eq!(fake.dma.read_u64(nic.rx_desc(0)).unwrap(), 0);
    assert_eq!(fake.dma.read_u64(nic.rx_desc(1)).unwrap(), 0);
}

#[test]
fn a_bad_frame_gives_its_buffer_back_empty_and_is_counted() {
    let (fake, mut nic) = setup();
    assert!(nic.zc_rx_give(caller_buf(0), 5).unwrap());
    nic.zc_rx_flush();
    assert!(
        fake.device
            .borrow_mut()
            .receive_raw(64, RXD_STAT_DD | RXD_STAT_EOP, 0x01)
    );
    assert_eq!(nic.zc_rx_taken().unwrap(), Some((5, None)));
    assert_eq!(nic.counters().rx_drop_errors, 1);
}

#[test]
fn the_receive_ring_takes_at_most_n_minus_one_buffers() {
    let (fake, mut nic) = setup();
    for i in 0..N as u64 - 1 {
        assert!(nic.zc_rx_give(caller_buf(i % 4), i as u16).unwrap());
    }
    assert!(!nic.zc_rx_give(caller_buf(0), 99).unwrap());
    nic.zc_rx_flush();
    // Wrapping: take them all back and give again, round after round.
    for round in 0..3u8 {
        for _ in 0..N - 1 {
            assert!(fake.device.borrow_mut().receive(&frame(round, 64)));
        }
        for _ in 0..N - 1 {
            assert!(nic.zc_rx_taken().unwrap().is_some());
        }
        for i in 0..N as u64 - 1 {
            assert!(nic.zc_rx_give(caller_buf(i % 4), i as u16).unwrap());
        }
        nic.zc_rx_flush();
    }
    assert_eq!(fake.device.borrow().missed, 0);
}

#[test]
fn a_frame_goes_out_as_the_header_copy_then_the_body() {
    let (mut fake, mut nic) = setup();
    let f = frame(3, 300);
    let body = caller_buf(1);
    fake.dma.write(Gpa(body), &f[14..]).unwrap();
    let header: [u8; 14] = f[..14].try_into().unwrap();
    assert!(nic.zc_tx_give(&header, body, 286, 40).unwrap());
    let short: [u8; 14] = frame(4, 14).try_into().unwrap();
    assert!(nic.zc_tx_give(&short, 0, 0, 41).unwrap());
    assert!(
        fake.device.borrow().sent.is_empty(),
        "nothing before the flush"
    );
    nic.zc_tx_flush();
    assert_eq!(fake.device.borrow().sent, vec![f, short.to_vec()]);
    assert_eq!(nic.zc_tx_taken().unwrap(), Some(40));
    assert_eq!(nic.zc_tx_taken().unwrap(), Some(41));
    assert_eq!(nic.zc_tx_taken().unwrap(), None);
    assert_eq!(
        nic.zc_tx_give(&short, body, 1501, 1),
        Err(NicError::TxLength {
            len: 1515,
            max: 1514
        })
    );
}

#[test]
fn a_full_transmit_ring_refuses_until_frames_are_taken() {
    let (fake, mut nic) = setup();
    fake.device.borrow_mut().tx_stalled = true;
    let h = [0u8; 14];
    for c in 0..3 {
        assert!(nic.zc_tx_give(&h, caller_buf(1), 50, c).unwrap());
    }
    // Six slots in flight; one more two-slot frame would make 8 > N - 1.
    assert!(!nic.zc_tx_give(&h, caller_buf(1), 50, 3).unwrap());
    assert!(
        nic.zc_tx_give(&h, 0, 0, 3).unwrap(),
        "a header-only frame fits"
    );
    nic.zc_tx_flush();
    assert_eq!(nic.zc_tx_taken().unwrap(), None, "the device sent nothing");
    assert_eq!(nic.counters().tx_ring_full, 1);
}

#[test]
fn revocation_leaves_no_caller_address_and_empty_rings() {
    let (fake, mut nic) = setup();
    for i in 0..4 {
        assert!(nic.zc_rx_give(caller_buf(i), i as u16).unwrap());
    }
    nic.zc_rx_flush();
    fake.device.borrow_mut().tx_stalled = true;
    assert!(nic.zc_tx_give(&[1; 14], caller_buf(2), 100, 9).unwrap());
    nic.zc_tx_flush();
    nic.zc_revoke().unwrap();
    for i in 0..N as u16 {
        for d in [nic.rx_desc(i), nic.tx_desc(i)] {
            assert_eq!(fake.dma.read_u64(d).unwrap(), 0, "descriptor {i}");
        }
    }
    // The device owns nothing: tails on heads (which stayed put).
    assert_eq!(fake.reg(RDT), fake.reg(RDH));
    assert_eq!(fake.reg(TDT), fake.reg(TDH));
    assert_ne!(fake.reg(RCTL) & RCTL_EN, 0, "receiving again");
    assert_ne!(fake.reg(TCTL) & TCTL_EN, 0, "transmitting again");
    assert_eq!(nic.zc_rx_taken().unwrap(), None);
    assert_eq!(nic.zc_tx_taken().unwrap(), None);
    // A frame now finds no buffer: it is missed, never written anywhere.
    assert!(!fake.device.borrow_mut().receive(&frame(1, 60)));
    // And the rings work again.
    fake.device.borrow_mut().tx_stalled = false;
    assert!(nic.zc_rx_give(caller_buf(3), 7).unwrap());
    nic.zc_rx_flush();
    assert!(fake.device.borrow_mut().receive(&frame(2, 60)));
    assert_eq!(nic.zc_rx_taken().unwrap(), Some((7, Some(60))));
}

#[test]
fn the_two_modes_are_kept_apart() {
    let (_fake, mut owned) = setup();
    assert_eq!(
        owned.rx_peek(),
        Err(NicError::WrongMode { call: "rx_peek" })
    );
    assert_eq!(owned.tx_claim(), None);
    let fake = FakeNic::new(Nic::DMA_BYTES);
    let mut copy = Nic::new(fake.regs(), fake.dma, DMA_BASE, None).unwrap();
    assert_eq!(
        copy.zc_rx_give(caller_buf(0), 0),
        Err(NicError::WrongMode { call: "zc_rx_give" })
    );
    assert_eq!(
        copy.zc_revoke(),
        Err(NicError::WrongMode { call: "zc_revoke" })
    );
}
