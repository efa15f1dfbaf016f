//! Tests of the shared run loop with mock ports: ordering, back-pressure and exact accounting.

use super::*;
use crate::nf::control::end_frame;
use crate::nf::firewall::Firewall;
use crate::nf::packet::{MAX_FRAME_LEN, Tag, UdpSpec, build_udp};
use crate::nf::sink::Sink;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use proptest::prelude::*;

/// A port with a queue of frames to receive and a transmit ring that
/// refuses sends while `busy` says so.
#[derive(Default)]
struct MockPort {
    rx: VecDeque<Vec<u8>>,
    sent: Vec<Vec<u8>>,
    /// Per send attempt: whether the ring is full; cycled. Empty: never.
    busy: Vec<bool>,
    attempts: usize,
    fail_recv: bool,
    claim_len: Option<usize>,
}

#[derive(Debug, PartialEq, Eq)]
struct Broken;

impl FramePort for MockPort {
    type Error = Broken;

    fn send(&mut self, frame: &[u8]) -> Result<bool, Broken> {
        let full = !self.busy.is_empty() && self.busy[self.attempts % self.busy.len()];
        self.attempts += 1;
        if !full {
            self.sent.push(frame.to_vec());
        }
        Ok(!full)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Broken> {
        if self.fail_recv {
            return Err(Broken);
        }
        if let Some(len) = self.claim_len {
            return Ok(Some(len));
        }
        Ok(self.rx.pop_front().map(|f| {
            buf[..f.len()].copy_from_slice(&f);
            f.len()
        }))
    }
}

fn udp(dport: u16, seq: u64) -> Vec<u8> {
    let mut buf = [0u8; MAX_FRAME_LEN];
    let spec = UdpSpec {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        src_ip: Ipv4Addr::new(10, 0, 0, 1),
        dst_ip: Ipv4Addr::new(10, 0, 0, 2),
        src_port: 10_000,
        dst_port: dport,
        frame_len: 64,
        tag: Tag { flow: 0, seq },
    };
    let len = build_udp(&mut buf, &spec).unwrap();
    buf[..len].to_vec()
}

fn ports(rx0: Vec<Vec<u8>>, rx1: Vec<Vec<u8>>) -> [MockPort; 2] {
    [
        MockPort {
            rx: rx0.into(),
            ..MockPort::default()
        },
        MockPort {
            rx: rx1.into(),
            ..MockPort::default()
        },
    ]
}

#[test]
fn forwarder_moves_both_ways_then_ends() {
    let end = end_frame([2; 6], 3).to_vec();
    let ingress = [udp(1, 0), udp(1, 1), udp(1, 2)];
    let mut rx0 = ingress.to_vec();
    rx0.push(end.clone());
    let mut p = ports(rx0, alloc::vec![udp(2, 9)]);
    let mut f = Forward::default();
    let run = run_function(&mut p, &mut f, || true).unwrap();
    assert_eq!(run.end, EndCause::EndOfStream { count: 3 });
    let mut expected = ingress.to_vec();
    expected.push(end);
    assert_eq!(p[1].sent, expected);
    assert_eq!(p[0].sent, [udp(2, 9)]);
    assert_eq!(f.forwarded, 3);
    assert_eq!(
        run.ingress,
        Flow {
            received: 3,
            forwarded: 3,
            dropped: 0,
            stalled: 0
        }
    );
    assert_eq!(run.egress.received, 1);
    assert_eq!(run.egress.forwarded, 1);
}

#[test]
fn full_rings_hold_frames_back_without_loss() {
    let data: Vec<_> = (0..20)
        .map(|i| udp(if i % 4 == 0 { 9999 } else { 7 }, i))
        .collect();
    let mut rx0 = data.clone();
    rx0.push(end_frame([2; 6], 20).to_vec());
    let mut p = ports(rx0, (0..5).map(|i| udp(8, 100 + i)).collect());
    p[1].busy = alloc::vec![true, true, false];
    p[0].busy = alloc::vec![true, false];
    let mut fw = Firewall::from_args("deny=blocked:dport=9999").unwrap();
    let mut idles = 0;
    let run = run_function(&mut p, &mut fw, || {
        idles += 1;
        true
    })
    .unwrap();
    assert!(idles > 0);
    assert_eq!(run.end, EndCause::EndOfStream { count: 20 });
    let passed: Vec<_> = data.iter().filter(|f| f[37] != 0x0f).cloned().collect();
    assert_eq!(p[1].sent[..passed.len()], passed[..]);
    assert_eq!(p[1].sent.len(), 16);
    assert_eq!(fw.passed, 15);
    assert_eq!(fw.denied[0], 5);
    assert_eq!(run.ingress.received, 20);
    assert_eq!(run.ingress.forwarded, 15);
    assert_eq!(run.ingress.dropped, 5);
    assert_eq!(p[0].sent.len(), 5);
}

#[test]
fn idle_timeout_counts_stalled_frames() {
    let mut p = ports(alloc::vec![udp(1, 0), udp(1, 1)], alloc::vec![udp(2, 0)]);
    p[0].busy = alloc::vec![true];
    p[1].busy = alloc::vec![true];
    let mut calls = 0;
    let run = run_function(&mut p, &mut Forward::default(), || {
        calls += 1;
        calls < 3
    })
    .unwrap();
    assert_eq!(run.end, EndCause::IdleTimeout);
    assert_eq!(
        run.ingress,
        Flow {
            received: 1,
            forwarded: 0,
            dropped: 0,
            stalled: 1
        }
    );
    assert_eq!(run.egress.stalled, 1);
    // The second frame was never taken from port 0.
    assert_eq!(p[0].rx.len(), 1);
}

#[test]
fn end_frame_that_cannot_be_sent() {
    let mut p = ports(alloc::vec![end_frame([2; 6], 0).to_vec()], Vec::new());
    p[1].busy = alloc::vec![true];
    let mut calls = 0;
    let run = run_function(&mut p, &mut Forward::default(), || {
        calls += 1;
        calls < 5
    })
    .unwrap();
    assert_eq!(run.end, EndCause::EndStalled { count: 0 });
    assert_eq!(run.ingress, Flow::default());
}

#[test]
fn quiet_ports_end_by_idle_timeout() {
    let mut p = ports(Vec::new(), Vec::new());
    let run = run_function(&mut p, &mut Forward::default(), || false).unwrap();
    assert_eq!(run.end, EndCause::IdleTimeout);
    assert_eq!(run.ingress, Flow::default());
}

#[test]
fn port_errors_stop_the_run() {
    let mut p = ports(Vec::new(), Vec::new());
    p[1].fail_recv = true;
    assert_eq!(
        run_function(&mut p, &mut Forward::default(), || true),
        Err(RunError::Port {
            port: 1,
            error: Broken
        })
    );
    let mut p = ports(Vec::new(), Vec::new());
    p[0].claim_len = Some(FRAME_BUF_LEN + 1);
    let e = run_function(&mut p, &mut Forward::default(), || true).unwrap_err();
    assert_eq!(
        e,
        RunError::Oversize {
            port: 0,
            len: FRAME_BUF_LEN + 1
        }
    );
    let mut one = MockPort {
        fail_recv: true,
        ..MockPort::default()
    };
    assert!(run_sink(&mut one, &mut Sink::new(None), || true).is_err());
}

#[test]
fn sink_counts_until_the_end() {
    let mut port = MockPort {
        rx: alloc::vec![
            udp(7, 0),
            udp(7, 1)[..20].to_vec(),
            end_frame([2; 6], 2).to_vec(),
            udp(7, 3)
        ]
        .into(),
        ..MockPort::default()
    };
    let mut sink = Sink::new(None);
    let run = run_sink(&mut port, &mut sink, || true).unwrap();
    assert_eq!(run.end, EndCause::EndOfStream { count: 2 });
    assert_eq!((sink.received, sink.valid, sink.malformed), (2, 1, 1));
    assert_eq!(run.ingress.received, 2);
    assert_eq!(run.ingress.forwarded, 2);
    assert_eq!(port.rx.len(), 1);
    let mut quiet = MockPort::default();
    let run = run_sink(&mut quiet, &mut sink, || false).unwrap();
    assert_eq!(run.end, EndCause::IdleTimeout);
}

#[test]
fn metric_names() {
    let name = MetricName::join("drop_", "abcdefghijklmnopqrst").unwrap();
    assert_eq!(name.as_str(), "drop_abcdefghijklmnopqrst");
    assert!(MetricName::join("drop_", "abcdefghijklmnopqrstuvwxyz0").is_some());
    assert!(MetricName::join("drop_", "abcdefghijklmnopqrstuvwxyz01").is_none());
    let run = RunEnd {
        ingress: Flow::default(),
        egress: Flow::default(),
        end: EndCause::IdleTimeout,
    };
    let mut names = Vec::new();
    run.metrics(&mut |n, _| names.push(n.to_owned()));
    assert_eq!(names.len(), 7);
    let e: RunError<&str> = RunError::Port {
        port: 1,
        error: "gone",
    };
    assert_eq!(alloc::format!("{e}"), "port 1: gone");
}

/// A frame for the property test: data for a rule, data to pass, ARP,
/// garbage of any length, or a truncated datagram.
fn any_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0u64..1000).prop_map(|s| udp(9999, s)),
        (0u64..1000).prop_map(|s| udp(7, s)),
        Just(
            crate::nf::arp::Arp::request([2; 6], [10, 0, 0, 1].into(), [10, 0, 0, 2].into())
                .frame()
                .to_vec()
        ),
        proptest::collection::vec(any::<u8>(), 0..80),
        (0usize..64).prop_map(|cut| udp(7, 1)[..cut].to_vec()),
    ]
}

proptest! {
    #[test]
    fn accounting_is_exact(
        frames in proptest::collection::vec(any_frame(), 0..60),
        back in proptest::collection::vec(any_frame(), 0..10),
        busy0 in proptest::collection::vec(any::<bool>(), 0..5),
        busy1 in proptest::collection::vec(any::<bool>(), 0..5),
        with_end in any::<bool>(),
    ) {
        // Random garbage could happen to be an end frame; keep it out.
        let data: Vec<_> = frames
            .into_iter()
            .filter(|f| crate::nf::control::parse_end(f).is_none())
            .collect();
        let back: Vec<_> = back
            .into_iter()
            .filter(|f| crate::nf::control::parse_end(f).is_none())
            .collect();
        let mut rx0 = data.clone();
        if with_end {
            rx0.push(end_frame([2; 6], data.len() as u64).to_vec());
        }
        let mut p = ports(rx0, back.clone());
        p[0].busy = busy0.clone();
        p[1].busy = busy1.clone();
        let mut fw = Firewall::from_args("deny=blocked:dport=9999").unwrap();
        // Busy patterns that are all `true` never drain: let idle give up.
        let mut calls = 0;
        let run = run_function(&mut p, &mut fw, || {
            calls += 1;
            calls < 1000
        })
        .unwrap();

        let i = run.ingress;
        prop_assert_eq!(i.received, i.forwarded + i.dropped + i.stalled);
        prop_assert_eq!(i.dropped, fw.denied[0] + fw.malformed);
        prop_assert_eq!(fw.passed, i.forwarded + i.stalled);
        prop_assert_eq!(i.received, fw.passed + fw.denied[0] + fw.malformed);
        let e = run.egress;
        prop_assert_eq!(e.received, e.forwarded + e.stalled);
        prop_assert_eq!(e.dropped, 0);

        // What was sent is exactly, in order, what was passed (and, on
        // port 0, what came back), unchanged.
        let passed: Vec<_> = data
            .iter()
            .filter(|f| fw.check(f) == crate::nf::firewall::Verdict::Pass)
            .cloned()
            .collect();
        let forwarded = i.forwarded as usize;
        prop_assert_eq!(&p[1].sent[..forwarded], &passed[..forwarded]);
        prop_assert_eq!(&p[0].sent[..], &back[..p[0].sent.len()]);

        let drains = |b: &Vec<bool>| b.iter().any(|full| !full) || b.is_empty();
        if with_end && drains(&busy0) && drains(&busy1) {
            prop_assert_eq!(run.end, EndCause::EndOfStream { count: data.len() as u64 });
            prop_assert_eq!(i.received, data.len() as u64);
            prop_assert_eq!(i.stalled, 0);
            prop_assert_eq!(p[1].sent.len(), forwarded + 1);
            let last = p[1].sent.last().and_then(|f| crate::nf::control::parse_end(f));
            prop_assert_eq!(last, Some(data.len() as u64));
        }
        if !with_end {
            prop_assert_eq!(run.end, EndCause::IdleTimeout);
        }
    }
}
