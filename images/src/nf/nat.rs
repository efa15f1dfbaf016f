//! The source-NAT function: maps each UDP flow's (source address, port) to (`nat_ip`, `port_base` + slot) and patches the checksums incrementally.

use super::args::{ArgError, ipv4_value, number_value};
use super::checksum::{udp_wire_checksum, update16, update32};
use super::function::{Action, Function};
use super::packet::{
    self, ETHERTYPE_IPV4, IPV4_CHECKSUM_AT, IPV4_SRC_AT, Ipv4, ParseError, UDP_CHECKSUM_AT,
};
use core::net::Ipv4Addr;
use guest_lib::args::Args;

/// Number of flows (and so of translated ports) the table holds.
pub const TABLE_SIZE: usize = 256;
/// `port_base` when the argument is absent.
pub const DEFAULT_PORT_BASE: u16 = 20_000;
/// Highest `port_base`: the last slot's port must fit in 16 bits.
pub const MAX_PORT_BASE: u16 = u16::MAX - (TABLE_SIZE as u16 - 1);

/// What the NAT rewrites sources to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatConfig {
    /// The translated source address.
    pub nat_ip: Ipv4Addr,
    /// The translated port of table slot 0.
    pub port_base: u16,
}

impl NatConfig {
    /// Reads `nat_ip=A.B.C.D` (required) and `port_base=N` (optional,
    /// 1..=[`MAX_PORT_BASE`], default [`DEFAULT_PORT_BASE`]).
    pub fn from_args(args: &str) -> Result<NatConfig, ArgError<'_>> {
        let args = Args::new(args);
        let nat_ip = ipv4_value(&args, "nat_ip")?.ok_or(ArgError::missing("nat_ip"))?;
        let port_base = number_value(
            &args,
            "port_base",
            1..=u64::from(MAX_PORT_BASE),
            "is not a port base (1..=65280)",
        )?
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or(DEFAULT_PORT_BASE);
        Ok(NatConfig { nat_ip, port_base })
    }
}

/// Why the NAT drops a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatDrop {
    /// Malformed IPv4 or UDP (or shorter than an Ethernet header).
    Malformed(ParseError),
    /// IPv4 that is not UDP, or a fragment: it cannot be translated.
    Unsupported,
    /// A new flow and the table is full.
    NoPort,
}

/// The NAT's decision on a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatVerdict {
    /// Rewritten to the translated source port `.0`.
    Rewritten(u16),
    /// Not IPv4 (ARP, control): passed unchanged.
    Pass,
    /// Dropped.
    Drop(NatDrop),
}

/// A flow's original source.
type FlowKey = (Ipv4Addr, u16);

/// A source NAT: its flow table and counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nat {
    config: NatConfig,
    table: [Option<FlowKey>; TABLE_SIZE],
    flows: usize,
    /// Frames rewritten and passed.
    pub rewritten: u64,
    /// Frames passed unchanged (not IPv4).
    pub passed: u64,
    /// Frames dropped because the table was full.
    pub no_port: u64,
    /// Frames dropped as malformed.
    pub malformed: u64,
    /// Frames dropped as untranslatable (not UDP, fragments).
    pub unsupported: u64,
}

impl Nat {
    /// An empty NAT.
    pub const fn new(config: NatConfig) -> Nat {
        Nat {
            config,
            table: [None; TABLE_SIZE],
            flows: 0,
            rewritten: 0,
            passed: 0,
            no_port: 0,
            malformed: 0,
            unsupported: 0,
        }
    }

    /// Number of flows in the table.
    pub const fn flows(&self) -> usize {
        self.flows
    }

    /// The table slot of `key`, added if new; `None` if new and the table
    /// is full. Open addressing with linear probing; flows never leave.
    fn slot(&mut self, key: FlowKey) -> Option<usize> {
        let bits = (u64::from(key.0.to_bits()) << 16) | u64::from(key.1);
        // Fibonacci hashing; the top 8 bits index the 256 slots.
        let start = (bits.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize;
        for i in 0..TABLE_SIZE {
            let at = (start + i) % TABLE_SIZE;
            let entry = self.table.get_mut(at)?;
            match entry {
                Some(k) if *k == key => return Some(at),
                Some(_) => {}
                None => {
                    *entry = Some(key);
                    self.flows += 1;
                    return Some(at);
                }
            }
        }
        None
    }

    /// Translates `frame` in place (UDP/IPv4 only; other IPv4 is dropped,
    /// everything else passes unchanged). A UDP checksum of 0 (none) stays
    /// 0; a computed 0 becomes `0xffff`.
    pub fn translate(&mut self, frame: &mut [u8]) -> NatVerdict {
        match packet::parse_ethernet(frame) {
            Err(e) => return NatVerdict::Drop(NatDrop::Malformed(e)),
            Ok(eth) if eth.ethertype != ETHERTYPE_IPV4 => return NatVerdict::Pass,
            Ok(_) => {}
        }
        let udp = match packet::parse_udp(frame) {
            Ok(udp) => udp,
            Err(ParseError::NotUdp | ParseError::Fragment) => {
                return NatVerdict::Drop(NatDrop::Unsupported);
            }
            Err(e) => return NatVerdict::Drop(NatDrop::Malformed(e)),
        };
        let Some(slot) = self.slot((udp.ip.src, udp.src_port)) else {
            return NatVerdict::Drop(NatDrop::NoPort);
        };
        // slot < TABLE_SIZE and port_base <= MAX_PORT_BASE: no overflow.
        let new_port = self.config.port_base.wrapping_add(slot as u16);
        let (old_ip, new_ip) = (udp.ip.src.to_bits(), self.config.nat_ip.to_bits());

        let ip_sum = update32(udp.ip.checksum, old_ip, new_ip);
        let mut udp_sum = udp.checksum;
        if udp_sum != 0 {
            udp_sum = update32(udp_sum, old_ip, new_ip);
            udp_sum = udp_wire_checksum(update16(udp_sum, udp.src_port, new_port));
        }
        let ip_at = Ipv4::OFFSET;
        let l4 = udp.offset();
        // The parse checked that all of these lie inside the frame.
        let written = packet::put(frame, ip_at + IPV4_SRC_AT, &new_ip.to_be_bytes())
            && packet::put(frame, ip_at + IPV4_CHECKSUM_AT, &ip_sum.to_be_bytes())
            && packet::put(frame, l4, &new_port.to_be_bytes())
            && packet::put(frame, l4 + UDP_CHECKSUM_AT, &udp_sum.to_be_bytes());
        if written {
            NatVerdict::Rewritten(new_port)
        } else {
            NatVerdict::Drop(NatDrop::Malformed(ParseError::Short))
        }
    }
}

impl Function for Nat {
    fn ingress(&mut self, frame: &mut [u8]) -> Action {
        let (counter, action) = match self.translate(frame) {
            NatVerdict::Rewritten(_) => (&mut self.rewritten, Action::Pass),
            NatVerdict::Pass => (&mut self.passed, Action::Pass),
            NatVerdict::Drop(NatDrop::NoPort) => (&mut self.no_port, Action::Drop),
            NatVerdict::Drop(NatDrop::Malformed(_)) => (&mut self.malformed, Action::Drop),
            NatVerdict::Drop(NatDrop::Unsupported) => (&mut self.unsupported, Action::Drop),
        };
        *counter += 1;
        action
    }

    /// `rewritten`, `passed`, `drop_no_port`, `drop_malformed`,
    /// `drop_unsupported`.
    fn metrics(&self, emit: &mut dyn FnMut(&str, u64)) {
        emit("rewritten", self.rewritten);
        emit("passed", self.passed);
        emit("drop_no_port", self.no_port);
        emit("drop_malformed", self.malformed);
        emit("drop_unsupported", self.unsupported);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nf::checksum::{internet_checksum, udp_checksum};
    use crate::nf::control::{end_frame, parse_end};
    use crate::nf::packet::{MAX_FRAME_LEN, MIN_UDP_FRAME_LEN, Tag, UdpSpec, build_udp, parse_udp};
    use alloc::string::ToString;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    const NAT_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);

    fn nat() -> Nat {
        Nat::new(NatConfig::from_args("nat_ip=10.1.0.1 port_base=20000").unwrap())
    }

    fn udp(src: Ipv4Addr, sport: u16, len: usize, seq: u64) -> Vec<u8> {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let spec = UdpSpec {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: src,
            dst_ip: Ipv4Addr::new(10, 0, 0, 2),
            src_port: sport,
            dst_port: 7,
            frame_len: len,
            tag: Tag { flow: 1, seq },
        };
        let len = build_udp(&mut buf, &spec).unwrap();
        buf[..len].to_vec()
    }

    /// The UDP checksum a sender would compute for `frame` as it now is.
    fn full_udp_sum(frame: &[u8]) -> u16 {
        let u = parse_udp(frame).unwrap();
        let mut seg = frame[u.segment_range()].to_vec();
        seg[6..8].copy_from_slice(&[0, 0]);
        udp_wire_checksum(udp_checksum(u.ip.src, u.ip.dst, &seg))
    }

    /// The IPv4 header checksum a sender would compute for `frame`.
    fn full_ip_sum(frame: &[u8]) -> u16 {
        let mut header = frame[14..34].to_vec();
        header[10..12].copy_from_slice(&[0, 0]);
        internet_checksum(&header)
    }

    #[test]
    fn config() {
        assert_eq!(
            NatConfig::from_args("nat_ip=10.1.0.1"),
            Ok(NatConfig {
                nat_ip: NAT_IP,
                port_base: DEFAULT_PORT_BASE
            })
        );
        assert_eq!(
            NatConfig::from_args("port_base=65280 nat_ip=10.1.0.1")
                .unwrap()
                .port_base,
            65280
        );
        for (args, text) in [
            ("", "`nat_ip=`: is required"),
            ("nat_ip=10.1.0", "`nat_ip=10.1.0`"),
            ("nat_ip=10.1.0.1 port_base=65281", "`port_base=65281`"),
            ("nat_ip=10.1.0.1 port_base=0", "`port_base=0`"),
            ("nat_ip=10.1.0.1 port_base=x", "`port_base=x`"),
        ] {
            let e = NatConfig::from_args(args).unwrap_err().to_string();
            assert!(e.contains(text), "{e}");
        }
    }

    #[test]
    fn flows_get_stable_ports_and_valid_checksums() {
        let mut nat = nat();
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let mut ports = Vec::new();
        for seq in 0..6 {
            let mut frame = udp(a, 10_000 + (seq % 3) as u16, 64, seq);
            let NatVerdict::Rewritten(port) = nat.translate(&mut frame) else {
                panic!("not rewritten");
            };
            ports.push(port);
            let u = parse_udp(&frame).unwrap();
            assert_eq!((u.ip.src, u.src_port), (NAT_IP, port));
            assert!((20_000..20_256).contains(&port));
            assert!(u.ip.checksum_ok(&frame));
            assert!(u.checksum_ok(&frame));
            assert_eq!(Tag::parse(u.payload(&frame)).unwrap().seq, seq);
        }
        assert_eq!(ports[0..3], ports[3..6]);
        assert_ne!(ports[0], ports[1]);
        assert_ne!(ports[1], ports[2]);
        assert_eq!(nat.flows(), 3);
    }

    #[test]
    fn full_table_drops_new_flows_only() {
        let mut nat = nat();
        let mut ports = Vec::new();
        for i in 0..TABLE_SIZE as u16 {
            let mut frame = udp(Ipv4Addr::new(10, 0, 0, 1), i, 60, 0);
            match nat.translate(&mut frame) {
                NatVerdict::Rewritten(port) => ports.push(port),
                other => panic!("{other:?}"),
            }
        }
        ports.sort_unstable();
        assert_eq!(ports, (20_000..20_256).collect::<Vec<u16>>());
        let mut new = udp(Ipv4Addr::new(10, 0, 0, 2), 0, 60, 0);
        let before = new.clone();
        assert_eq!(nat.translate(&mut new), NatVerdict::Drop(NatDrop::NoPort));
        assert_eq!(new, before);
        let mut old = udp(Ipv4Addr::new(10, 0, 0, 1), 77, 60, 0);
        assert!(matches!(nat.translate(&mut old), NatVerdict::Rewritten(_)));
        assert_eq!(nat.ingress(&mut new), Action::Drop);
        assert_eq!(nat.no_port, 1);
    }

    #[test]
    fn zero_checksum_stays_zero() {
        let mut nat = nat();
        let mut frame = udp(Ipv4Addr::new(10, 0, 0, 1), 5, 64, 0);
        frame[40..42].copy_from_slice(&[0, 0]);
        assert!(matches!(
            nat.translate(&mut frame),
            NatVerdict::Rewritten(_)
        ));
        let u = parse_udp(&frame).unwrap();
        assert_eq!(u.checksum, 0);
        assert!(u.ip.checksum_ok(&frame));
    }

    #[test]
    fn other_frames() {
        let mut nat = nat();
        let mut end = end_frame([2; 6], 9);
        assert_eq!(nat.translate(&mut end), NatVerdict::Pass);
        assert_eq!(parse_end(&end), Some(9));
        let good = udp(Ipv4Addr::new(10, 0, 0, 1), 5, 64, 0);
        let mut tcp = good.clone();
        tcp[23] = 6;
        assert_eq!(
            nat.translate(&mut tcp),
            NatVerdict::Drop(NatDrop::Unsupported)
        );
        let mut fragment = good.clone();
        fragment[21] = 1;
        assert_eq!(
            nat.translate(&mut fragment),
            NatVerdict::Drop(NatDrop::Unsupported)
        );
        for cut in 0..good.len() {
            let mut short = good[..cut].to_vec();
            assert!(
                matches!(
                    nat.translate(&mut short),
                    NatVerdict::Drop(NatDrop::Malformed(_))
                ),
                "cut {cut}"
            );
            assert_eq!(short, good[..cut]);
        }
        assert_eq!(nat.flows(), 0);
    }

    #[test]
    fn metrics() {
        let mut nat = nat();
        let mut frames = [
            udp(Ipv4Addr::new(10, 0, 0, 1), 5, 64, 0),
            end_frame([2; 6], 1).to_vec(),
            udp(Ipv4Addr::new(10, 0, 0, 1), 5, 64, 0)[..20].to_vec(),
        ];
        for f in &mut frames {
            nat.ingress(f);
        }
        let mut m = Vec::new();
        nat.metrics(&mut |n, v| m.push((n.to_string(), v)));
        let names: Vec<_> = m.iter().map(|(n, v)| alloc::format!("{n}={v}")).collect();
        assert_eq!(
            names,
            [
                "rewritten=1",
                "passed=1",
                "drop_no_port=0",
                "drop_malformed=1",
                "drop_unsupported=0"
            ]
        );
    }

    proptest! {
        #[test]
        fn incremental_equals_recomputed(
            src in any::<u32>(),
            sport in any::<u16>(),
            nat_ip in any::<u32>(),
            port_base in 1u16..=MAX_PORT_BASE,
            len in MIN_UDP_FRAME_LEN..=300usize,
            seq in any::<u64>(),
            ttl in any::<u8>(),
        ) {
            let mut frame = udp(Ipv4Addr::from_bits(src), sport, len, seq);
            // Vary the header checksum's starting point through the TTL.
            frame[22] = ttl;
            let sum = full_ip_sum(&frame);
            frame[24..26].copy_from_slice(&sum.to_be_bytes());
            let config = NatConfig { nat_ip: Ipv4Addr::from_bits(nat_ip), port_base };
            let mut nat = Nat::new(config);
            let NatVerdict::Rewritten(port) = nat.translate(&mut frame) else {
                return Err(TestCaseError::fail("not rewritten"));
            };
            prop_assert!((port_base..=port_base + 255).contains(&port));
            let u = parse_udp(&frame).unwrap();
            prop_assert_eq!(u.ip.checksum, full_ip_sum(&frame));
            prop_assert_eq!(u.checksum, full_udp_sum(&frame));
            prop_assert!(u.checksum_ok(&frame));
        }

        #[test]
        fn untranslated_frames_are_untouched(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..120),
            ipv4 in any::<bool>(),
        ) {
            if ipv4 && bytes.len() > 14 {
                bytes[12..15].copy_from_slice(&[0x08, 0x00, 0x45]);
            }
            let before = bytes.clone();
            let mut nat = nat();
            if !matches!(nat.translate(&mut bytes), NatVerdict::Rewritten(_)) {
                prop_assert_eq!(bytes, before);
            }
        }
    }
}
