//! Tests of the generator's plan, frame sequence and reply matcher.

use super::*;
use crate::nf::packet::{ETH_HEADER_LEN, parse_ethernet};
use alloc::string::ToString;
use proptest::prelude::*;

const SRC_MAC: Mac = [2, 0, 0, 0, 0, 1];
const DST_MAC: Mac = [2, 0, 0, 0, 0, 2];

fn plan(args: &str) -> Plan {
    Plan::from_args(args).unwrap()
}

fn frames(plan: Plan) -> Vec<Vec<u8>> {
    let mut g = Generator::new(plan, SRC_MAC, DST_MAC);
    let mut buf = [0u8; MAX_FRAME_LEN];
    let mut out = Vec::new();
    while let Some(len) = g.next_frame(&mut buf) {
        out.push(buf[..len].to_vec());
    }
    assert_eq!(g.next_frame(&mut buf), None);
    out
}

/// What an echo server sends back: addresses and ports swapped.
fn echo(frame: &[u8]) -> Vec<u8> {
    let mut r = frame.to_vec();
    r[0..6].copy_from_slice(&frame[6..12]);
    r[6..12].copy_from_slice(&frame[0..6]);
    let ip = ETH_HEADER_LEN;
    r[ip + 12..ip + 16].copy_from_slice(&frame[ip + 16..ip + 20]);
    r[ip + 16..ip + 20].copy_from_slice(&frame[ip + 12..ip + 16]);
    r[34..36].copy_from_slice(&frame[36..38]);
    r[36..38].copy_from_slice(&frame[34..36]);
    r
}

#[test]
fn defaults_and_full_plans() {
    assert_eq!(
        plan("count=10"),
        Plan {
            count: 10,
            flows: 1,
            size: DEFAULT_SIZE,
            src_ip: DEFAULT_SRC_IP,
            dst_ip: DEFAULT_DST_IP,
            dport: DEFAULT_DPORT,
            deny: None,
            mode: Mode::OneWay,
        }
    );
    assert_eq!(
        plan(
            "count=1000000 flows=64 size=1514 src_ip=10.0.1.1 dst_ip=10.0.2.2 dport=5000 \
             deny_port=9999 every=10 mode=echo"
        ),
        Plan {
            count: 1_000_000,
            flows: 64,
            size: 1514,
            src_ip: Ipv4Addr::new(10, 0, 1, 1),
            dst_ip: Ipv4Addr::new(10, 0, 2, 2),
            dport: 5000,
            deny: Some(DenyEvery {
                port: 9999,
                every: 10
            }),
            mode: Mode::Echo,
        }
    );
    assert_eq!(plan("count=0 size=60 mode=oneway").size, 60);
}

#[test]
fn plan_errors_name_the_word() {
    for (args, text) in [
        ("", "`count=`: is required"),
        ("count=1000001", "`count=1000001`"),
        ("count=-1", "`count=-1`"),
        ("count=1 flows=0", "`flows=0`"),
        ("count=1 flows=65", "`flows=65`"),
        ("count=1 size=59", "`size=59`"),
        ("count=1 size=1515", "`size=1515`"),
        ("count=1 src_ip=10.0.0", "`src_ip=10.0.0`"),
        ("count=1 dst_ip=x", "`dst_ip=x`"),
        ("count=1 dport=65536", "`dport=65536`"),
        ("count=1 deny_port=9", "`every=`: is required"),
        ("count=1 every=9", "`deny_port=`: is required"),
        ("count=1 deny_port=9 every=0", "`every=0`"),
        ("count=1 mode=loop", "`mode=loop`"),
    ] {
        let e = Plan::from_args(args).unwrap_err().to_string();
        assert!(e.contains(text), "{args}: {e}");
    }
}

#[test]
fn frames_follow_the_plan_in_order() {
    let p = plan("count=7 flows=3 size=100 dport=7 deny_port=9999 every=3");
    let all = frames(p);
    assert_eq!(all.len(), 7);
    for (seq, frame) in all.iter().enumerate() {
        let seq = seq as u64;
        assert_eq!(frame.len(), 100);
        let eth = parse_ethernet(frame).unwrap();
        assert_eq!((eth.src, eth.dst), (SRC_MAC, DST_MAC));
        let udp = parse_udp(frame).unwrap();
        assert!(udp.ip.checksum_ok(frame) && udp.checksum_ok(frame));
        let tag = Tag::parse(udp.payload(frame)).unwrap();
        assert_eq!(
            tag,
            Tag {
                flow: (seq % 3) as u32,
                seq
            }
        );
        assert_eq!(udp.src_port, 10_000 + (seq % 3) as u16);
        let denied = seq % 3 == 2;
        assert_eq!(udp.dst_port, if denied { 9999 } else { 7 });
        assert_eq!((udp.ip.src, udp.ip.dst), (DEFAULT_SRC_IP, DEFAULT_DST_IP));
    }
}

#[test]
fn generation_is_deterministic() {
    let p = plan("count=50 flows=4 size=77 deny_port=1 every=7");
    assert_eq!(frames(p), frames(p));
}

#[test]
fn exact_counts_per_kind() {
    let p = plan("count=100 deny_port=9999 every=7");
    assert_eq!(p.expected(Kind::Denied), 14);
    assert_eq!(p.expected(Kind::Allowed), 86);
    let mut g = Generator::new(p, SRC_MAC, DST_MAC);
    let mut buf = [0u8; MAX_FRAME_LEN];
    while g.next_frame(&mut buf).is_some() {}
    assert_eq!(g.produced(), 100);
    assert_eq!(g.produced_of(Kind::Denied), 14);
    assert_eq!(g.produced_of(Kind::Allowed), 86);
    let mut m = Vec::new();
    g.metrics(&mut |n, v| m.push(alloc::format!("{n}={v}")));
    assert_eq!(m, ["sent=100", "sent_allowed=86", "sent_denied=14"]);
    let none = plan("count=5");
    assert_eq!(none.expected(Kind::Denied), 0);
    assert_eq!(none.expected(Kind::Allowed), 5);
}

#[test]
fn replies_are_matched_once() {
    let p = plan("count=130 flows=5 mode=echo deny_port=9 every=4");
    let sent = frames(p);
    let mut m = ReplyMatcher::new(&p);
    // Requests themselves are not replies.
    assert_eq!(m.check(&sent[0]), Reply::Other);
    for frame in &sent {
        assert_eq!(m.check(&echo(frame)), Reply::Matched);
    }
    for frame in sent.iter().step_by(3) {
        assert_eq!(m.check(&echo(frame)), Reply::Duplicate);
    }
    assert_eq!((m.matched, m.duplicates, m.others), (130, 44, 1));
    let mut metrics = Vec::new();
    m.metrics(&mut |n, v| metrics.push(alloc::format!("{n}={v}")));
    assert_eq!(
        metrics,
        ["echo_matched=130", "echo_duplicate=44", "echo_other=1"]
    );
}

#[test]
fn foreign_and_damaged_replies_are_others() {
    let p = plan("count=10 flows=2 mode=echo");
    let reply = echo(&frames(p)[3]);
    let mut m = ReplyMatcher::new(&p);
    // Damaged: payload bit flipped (UDP checksum), truncated.
    let mut flipped = reply.clone();
    flipped[60] ^= 1;
    assert_eq!(m.check(&flipped), Reply::Other);
    for cut in 0..reply.len() {
        assert_eq!(m.check(&reply[..cut]), Reply::Other, "cut {cut}");
    }
    // A reply to frames of another plan: more frames, other flows, other
    // addresses.
    let bigger = plan("count=20 flows=2 mode=echo");
    assert_eq!(m.check(&echo(&frames(bigger)[15])), Reply::Other);
    let flows = plan("count=10 flows=3 mode=echo");
    assert_eq!(m.check(&echo(&frames(flows)[4])), Reply::Other);
    let other_ip = plan("count=10 flows=2 mode=echo dst_ip=10.0.0.3");
    assert_eq!(m.check(&echo(&frames(other_ip)[3])), Reply::Other);
    assert_eq!(m.matched, 0);
    assert_eq!(m.check(&reply), Reply::Matched);
    assert_eq!(m.reply_seq(&reply), Some(3));
}

/// What slirp's gateway sends back for an echo request: addresses
/// swapped, type echo reply, the ICMP checksum updated for the type.
fn pong(frame: &[u8]) -> Vec<u8> {
    let mut r = frame.to_vec();
    r[0..6].copy_from_slice(&frame[6..12]);
    r[6..12].copy_from_slice(&frame[0..6]);
    let ip = ETH_HEADER_LEN;
    r[ip + 12..ip + 16].copy_from_slice(&frame[ip + 16..ip + 20]);
    r[ip + 16..ip + 20].copy_from_slice(&frame[ip + 12..ip + 16]);
    let icmp = ip + 20;
    r[icmp] = ICMP_ECHO_REPLY;
    r[icmp + 2..icmp + 4].copy_from_slice(&[0, 0]);
    let sum = crate::nf::checksum::internet_checksum(&r[icmp..]);
    r[icmp + 2..icmp + 4].copy_from_slice(&sum.to_be_bytes());
    r
}

#[test]
fn ping_plans_send_echo_requests_and_match_their_replies() {
    let p = plan("count=70 flows=3 mode=ping size=98");
    assert_eq!(p.mode, Mode::Ping);
    let sent = frames(p);
    assert_eq!(sent.len(), 70);
    let mut m = ReplyMatcher::new(&p);
    for (seq, frame) in sent.iter().enumerate() {
        assert_eq!(frame.len(), 98);
        let req = parse_icmp_echo(frame).unwrap();
        assert_eq!(req.kind, crate::nf::packet::ICMP_ECHO_REQUEST);
        assert!(req.ip.checksum_ok(frame) && req.checksum_ok(frame));
        assert_eq!(req.id, p.src_port(p.flow(seq as u64)));
        assert_eq!(req.seq, seq as u16);
        // A request is not its own reply; its echo reply matches once.
        assert_eq!(m.check(frame), Reply::Other);
        assert_eq!(m.check(&pong(frame)), Reply::Matched);
        assert_eq!(m.check(&pong(frame)), Reply::Duplicate);
    }
    assert_eq!((m.matched, m.duplicates, m.others), (70, 70, 70));
    // A UDP echo of the same plan is not a ping reply, nor is a damaged,
    // cut or misaddressed one.
    let udp = plan("count=70 flows=3 mode=echo size=98");
    let mut fresh = ReplyMatcher::new(&p);
    assert_eq!(fresh.check(&echo(&frames(udp)[5])), Reply::Other);
    let reply = pong(&sent[5]);
    let mut flipped = reply.clone();
    flipped[60] ^= 1;
    assert_eq!(fresh.check(&flipped), Reply::Other);
    for cut in 0..reply.len() {
        assert_eq!(fresh.check(&reply[..cut]), Reply::Other, "cut {cut}");
    }
    let other_ip = plan("count=70 flows=3 mode=ping size=98 dst_ip=10.0.0.3");
    assert_eq!(fresh.check(&pong(&frames(other_ip)[5])), Reply::Other);
    assert_eq!(fresh.check(&reply), Reply::Matched);
    assert!(Plan::from_args("count=1 mode=pong").is_err());
}

proptest! {
    #[test]
    fn kinds_add_up(count in 0u64..2000, every in 1u64..50, flows in 1u32..=64) {
        let p = Plan {
            count,
            flows,
            deny: Some(DenyEvery { port: 9999, every }),
            ..plan("count=0")
        };
        let denied = (0..count).filter(|&s| p.kind(s) == Kind::Denied).count() as u64;
        prop_assert_eq!(p.expected(Kind::Denied), denied);
        prop_assert_eq!(p.expected(Kind::Allowed), count - denied);
        for seq in 0..count.min(200) {
            prop_assert!(p.flow(seq) < flows);
        }
    }
}
