//! Tests of the stackless UDP echo: ARP answered only for its address, datagrams turned around with both checksums still right, everything else ignored, and any bytes at all handled without a panic.

use super::*;
use crate::nf::arp::ArpOp;
use crate::nf::packet::{MIN_FRAME_LEN, Tag, UdpSpec, build_udp};
use proptest::prelude::*;

const ME: Echo = Echo {
    mac: [2, 0, 0, 0, 0, 9],
    ip: Ipv4Addr::new(10, 0, 2, 15),
    port: 7,
};
const PEER_MAC: Mac = [0x52, 0x55, 10, 0, 2, 2];
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

fn datagram(dst_ip: Ipv4Addr, dst_port: u16, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; 1514];
    let spec = UdpSpec {
        src_mac: PEER_MAC,
        dst_mac: ME.mac,
        src_ip: PEER_IP,
        dst_ip,
        src_port: 40_000,
        dst_port,
        frame_len: len,
        tag: Tag { flow: 1, seq: 5 },
    };
    let n = build_udp(&mut buf, &spec).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn arp_requests_for_its_address_are_answered() {
    let mut who_has = Arp::request(PEER_MAC, PEER_IP, ME.ip).frame();
    let Answer::Arp(reply) = ME.answer(&mut who_has, None) else {
        panic!("no ARP reply");
    };
    let reply = Arp::parse(&reply).unwrap();
    assert_eq!(reply.op, ArpOp::Reply);
    assert_eq!((reply.sender_mac, reply.sender_ip), (ME.mac, ME.ip));
    assert_eq!((reply.target_mac, reply.target_ip), (PEER_MAC, PEER_IP));
    let mut other = Arp::request(PEER_MAC, PEER_IP, Ipv4Addr::new(10, 0, 2, 16)).frame();
    assert_eq!(ME.answer(&mut other, None), Answer::Ignore);
    // Its announcement is a request for its own address, from itself.
    let a = Arp::parse(&ME.announcement()).unwrap();
    assert_eq!(a.op, ArpOp::Request);
    assert_eq!(
        (a.sender_ip, a.target_ip, a.sender_mac),
        (ME.ip, ME.ip, ME.mac)
    );
}

#[test]
fn a_datagram_goes_back_with_both_checksums_right() {
    let sent = datagram(ME.ip, ME.port, 100);
    let mut f = sent.clone();
    assert_eq!(
        ME.answer(&mut f, Some(b"bye")),
        Answer::Echo {
            len: 100,
            quit: false
        }
    );
    let back = parse_udp(&f).unwrap();
    assert_eq!((back.ip.src, back.ip.dst), (ME.ip, PEER_IP));
    assert_eq!((back.src_port, back.dst_port), (ME.port, 40_000));
    assert!(back.ip.checksum_ok(&f) && back.checksum_ok(&f));
    assert_eq!(&f[..6], &PEER_MAC);
    assert_eq!(&f[6..12], &ME.mac);
    assert_eq!(back.payload(&f), parse_udp(&sent).unwrap().payload(&sent));
}

#[test]
fn the_quit_word_is_echoed_and_recognised() {
    let mut f = datagram(ME.ip, ME.port, MIN_FRAME_LEN);
    let word = parse_udp(&f).unwrap().payload(&f).to_vec();
    let Answer::Echo { quit, .. } = ME.answer(&mut f, Some(&word)) else {
        panic!("not echoed");
    };
    assert!(quit);
}

#[test]
fn padding_is_not_echoed() {
    // A short datagram padded to the Ethernet minimum goes back unpadded.
    let mut f = datagram(ME.ip, ME.port, 42 + 16);
    f.extend_from_slice(&[0xee; 6]);
    let Answer::Echo { len, .. } = ME.answer(&mut f, None) else {
        panic!("not echoed");
    };
    assert_eq!(len, 58);
}

#[test]
fn other_addresses_ports_and_broken_datagrams_are_ignored() {
    let mut cases = vec![
        datagram(Ipv4Addr::new(10, 0, 2, 16), ME.port, 80),
        datagram(ME.ip, 8, 80),
    ];
    let mut bad_udp = datagram(ME.ip, ME.port, 80);
    bad_udp[60] ^= 0xff;
    cases.push(bad_udp);
    let mut bad_ip = datagram(ME.ip, ME.port, 80);
    bad_ip[ETH_HEADER_LEN + 8] ^= 1;
    cases.push(bad_ip);
    cases.push(vec![]);
    cases.push(vec![0xff; 13]);
    for (i, mut f) in cases.into_iter().enumerate() {
        let before = f.clone();
        assert_eq!(ME.answer(&mut f, None), Answer::Ignore, "case {i}");
        assert_eq!(f, before, "case {i}: an ignored frame is left as it was");
    }
}

proptest! {
    /// Any bytes: no panic; an echo is a datagram from its address and port
    /// whose checksums hold.
    #[test]
    fn any_frame_is_answered_safely(mut f in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Answer::Echo { len, .. } = ME.answer(&mut f, None) {
            let back = parse_udp(&f[..len]).unwrap();
            prop_assert_eq!((back.ip.src, back.src_port), (ME.ip, ME.port));
            prop_assert!(back.ip.checksum_ok(&f) && back.checksum_ok(&f));
        }
    }

    /// Real datagrams of any size and port: echoed exactly when addressed
    /// to its port.
    #[test]
    fn datagrams_are_echoed_when_addressed_to_it(len in 58usize..=1514, port in any::<u16>()) {
        let mut f = datagram(ME.ip, port, len);
        let answer = ME.answer(&mut f, None);
        if port == ME.port {
            prop_assert_eq!(answer, Answer::Echo { len, quit: false });
        } else {
            prop_assert_eq!(answer, Answer::Ignore);
        }
    }
}
