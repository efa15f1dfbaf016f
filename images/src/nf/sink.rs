//! The sink function: verifies each IPv4 data frame (header and UDP checksums, payload tag) and counts what it got.

use super::args::{ArgError, ipv4_value};
use super::function::{Action, Function};
use super::packet::{self, ETHERTYPE_IPV4, ParseError, Tag};
use core::net::Ipv4Addr;
use guest_lib::args::Args;

/// What the sink makes of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// A well-formed test frame with both checksums right; `nat_ok` when its
    /// source is the expected (translated) address.
    Valid {
        /// The tag it carried.
        tag: Tag,
        /// Whether the source address is the expected one.
        nat_ok: bool,
    },
    /// Well-formed UDP/IPv4 with a wrong IPv4 header or UDP checksum.
    ChecksumBad,
    /// Malformed IPv4 or UDP, another IPv4 protocol, or no payload tag.
    Malformed(Option<ParseError>),
    /// Not IPv4 (ARP, ...): not a data frame.
    Ignored,
}

/// A sink's expectation and counters. `received = valid + checksum_bad +
/// malformed`; `ignored` frames are not received data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sink {
    expect_src: Option<Ipv4Addr>,
    /// Data frames received (every frame but the ignored ones).
    pub received: u64,
    /// Frames that verified.
    pub valid: u64,
    /// Frames with a wrong checksum.
    pub checksum_bad: u64,
    /// Malformed frames.
    pub malformed: u64,
    /// Valid frames from the expected source.
    pub nat_ok: u64,
    /// Frames that were not IPv4.
    pub ignored: u64,
}

impl Sink {
    /// A sink expecting frames from `expect_src` (for `nat_ok`), if given.
    pub const fn new(expect_src: Option<Ipv4Addr>) -> Sink {
        Sink {
            expect_src,
            received: 0,
            valid: 0,
            checksum_bad: 0,
            malformed: 0,
            nat_ok: 0,
            ignored: 0,
        }
    }

    /// A sink configured by `expect_src=A.B.C.D` (optional).
    pub fn from_args(args: &str) -> Result<Sink, ArgError<'_>> {
        Ok(Sink::new(ipv4_value(&Args::new(args), "expect_src")?))
    }

    /// What `frame` is.
    pub fn check(&self, frame: &[u8]) -> Check {
        match packet::ethertype(frame) {
            None => return Check::Malformed(Some(ParseError::Short)),
            Some(ETHERTYPE_IPV4) => {}
            Some(_) => return Check::Ignored,
        }
        let udp = match packet::parse_udp(frame) {
            Ok(udp) => udp,
            Err(e) => return Check::Malformed(Some(e)),
        };
        if !udp.ip.checksum_ok(frame) || !udp.checksum_ok(frame) {
            return Check::ChecksumBad;
        }
        match Tag::parse(udp.payload(frame)) {
            Some(tag) => Check::Valid {
                tag,
                nat_ok: self.expect_src == Some(udp.ip.src),
            },
            None => Check::Malformed(None),
        }
    }
}

impl Function for Sink {
    /// Counts the frame and keeps it ([`Action::Pass`]) whatever it is.
    fn ingress(&mut self, frame: &mut [u8]) -> Action {
        let check = self.check(frame);
        if check != Check::Ignored {
            self.received += 1;
        }
        match check {
            Check::Valid { nat_ok, .. } => {
                self.valid += 1;
                self.nat_ok += u64::from(nat_ok);
            }
            Check::ChecksumBad => self.checksum_bad += 1,
            Check::Malformed(_) => self.malformed += 1,
            Check::Ignored => self.ignored += 1,
        }
        Action::Pass
    }

    /// `received`, `valid`, `checksum_bad`, `malformed`, `nat_ok`,
    /// `ignored`.
    fn metrics(&self, emit: &mut dyn FnMut(&str, u64)) {
        emit("received", self.received);
        emit("valid", self.valid);
        emit("checksum_bad", self.checksum_bad);
        emit("malformed", self.malformed);
        emit("nat_ok", self.nat_ok);
        emit("ignored", self.ignored);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nf::arp::Arp;
    use crate::nf::packet::{MAX_FRAME_LEN, UdpSpec, build_udp};
    use alloc::string::ToString;
    use alloc::vec::Vec;

    fn udp(src: Ipv4Addr) -> Vec<u8> {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let spec = UdpSpec {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: src,
            dst_ip: Ipv4Addr::new(10, 0, 0, 2),
            src_port: 20_000,
            dst_port: 7,
            frame_len: 100,
            tag: Tag { flow: 2, seq: 40 },
        };
        let len = build_udp(&mut buf, &spec).unwrap();
        buf[..len].to_vec()
    }

    #[test]
    fn checks() {
        let nat_ip = Ipv4Addr::new(10, 1, 0, 1);
        let sink = Sink::from_args("expect_src=10.1.0.1").unwrap();
        let tag = Tag { flow: 2, seq: 40 };
        assert_eq!(sink.check(&udp(nat_ip)), Check::Valid { tag, nat_ok: true });
        let other = udp(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(sink.check(&other), Check::Valid { tag, nat_ok: false });
        let plain = Sink::from_args("").unwrap();
        assert_eq!(
            plain.check(&udp(nat_ip)),
            Check::Valid { tag, nat_ok: false }
        );

        let mut bad_ip = other.clone();
        bad_ip[22] ^= 1; // TTL
        assert_eq!(sink.check(&bad_ip), Check::ChecksumBad);
        let mut bad_udp = other.clone();
        bad_udp[99] ^= 0x80; // last payload byte
        assert_eq!(sink.check(&bad_udp), Check::ChecksumBad);
        let mut no_tag = other.clone();
        no_tag[42] = b'X';
        no_tag[40..42].copy_from_slice(&[0, 0]); // no UDP checksum
        assert_eq!(sink.check(&no_tag), Check::Malformed(None));
        for cut in 0..other.len() {
            assert!(
                matches!(sink.check(&other[..cut]), Check::Malformed(Some(_))),
                "{cut}"
            );
        }
        let arp = Arp::request([2; 6], nat_ip, nat_ip).frame();
        assert_eq!(sink.check(&arp), Check::Ignored);
        assert!(
            Sink::from_args("expect_src=1.2.3")
                .unwrap_err()
                .to_string()
                .contains("expect_src")
        );
    }

    #[test]
    fn counters() {
        let mut sink = Sink::from_args("expect_src=10.1.0.1").unwrap();
        let good = udp(Ipv4Addr::new(10, 1, 0, 1));
        let mut bad = good.clone();
        bad[50] ^= 4;
        let mut frames = [
            good.clone(),
            good.clone(),
            udp(Ipv4Addr::new(10, 0, 0, 1)),
            bad,
            good[..10].to_vec(),
            Arp::request([2; 6], [1, 1, 1, 1].into(), [1, 1, 1, 2].into())
                .frame()
                .to_vec(),
        ];
        for f in &mut frames {
            assert_eq!(sink.ingress(f), Action::Pass);
        }
        let mut m = Vec::new();
        sink.metrics(&mut |n, v| m.push(alloc::format!("{n}={v}")));
        assert_eq!(
            m,
            [
                "received=5",
                "valid=3",
                "checksum_bad=1",
                "malformed=1",
                "nat_ok=2",
                "ignored=1"
            ]
        );
    }
}
