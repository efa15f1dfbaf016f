//! The firewall function: drops IPv4 frames that match `deny=NAME:FIELD=VALUE` rules, passes everything else, and drops malformed IPv4.

use super::args::{ArgError, parse_ipv4};
use super::function::{Action, Function, MetricName};
use super::packet::{self, ETHERTYPE_IPV4, PROTO_TCP, PROTO_UDP, ParseError};
use core::net::Ipv4Addr;
use guest_lib::args::{Arg, Args, parse_u64};

/// Most rules a firewall holds.
pub const MAX_RULES: usize = 8;
/// Longest rule name.
pub const MAX_NAME_LEN: usize = 20;
/// The argument key of a rule.
pub const DENY_KEY: &str = "deny";
/// Prefix of the per-rule drop metrics.
pub const DROP_PREFIX: &str = "drop_";

/// The header field a rule matches, with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// IPv4 source address (`src=10.0.0.99`).
    Src(Ipv4Addr),
    /// IPv4 destination address (`dst=...`).
    Dst(Ipv4Addr),
    /// UDP or TCP source port (`sport=53`).
    Sport(u16),
    /// UDP or TCP destination port (`dport=9999`).
    Dport(u16),
    /// IPv4 protocol (`proto=udp`, `proto=tcp` or a number).
    Proto(u8),
}

/// A deny rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule<'a> {
    /// Its name, the suffix of its drop metric.
    pub name: &'a str,
    /// What it matches.
    pub field: Field,
}

/// The header fields rules look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol.
    pub proto: u8,
    /// Source and destination ports, for UDP and TCP.
    pub ports: Option<(u16, u16)>,
}

impl Rule<'_> {
    /// Whether the rule matches a frame with these headers (port rules never
    /// match frames without ports).
    pub fn matches(&self, h: &Headers) -> bool {
        match self.field {
            Field::Src(ip) => h.src == ip,
            Field::Dst(ip) => h.dst == ip,
            Field::Sport(port) => h.ports.is_some_and(|(s, _)| s == port),
            Field::Dport(port) => h.ports.is_some_and(|(_, d)| d == port),
            Field::Proto(proto) => h.proto == proto,
        }
    }
}

/// The firewall's decision on a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through: no rule matched, or it is not IPv4 (ARP, control).
    Pass,
    /// Rule number `.0` (the first that matched) denies it.
    Deny(usize),
    /// Malformed IPv4 (or shorter than an Ethernet header): drop. IPv4
    /// fragments are dropped this way too, their ports being unknowable.
    Malformed(ParseError),
}

/// A firewall: its rules and counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Firewall<'a> {
    rules: [Option<Rule<'a>>; MAX_RULES],
    /// Frames passed.
    pub passed: u64,
    /// Frames dropped by each rule.
    pub denied: [u64; MAX_RULES],
    /// Frames dropped as malformed.
    pub malformed: u64,
}

impl<'a> Firewall<'a> {
    /// A firewall with the `deny=` rules of `args` (other words are
    /// ignored), in their order.
    pub fn from_args(args: &'a str) -> Result<Firewall<'a>, ArgError<'a>> {
        let mut rules = [None; MAX_RULES];
        let mut count = 0;
        for arg in Args::new(args).iter() {
            let Arg::Pair(DENY_KEY, value) = arg else {
                continue;
            };
            let rule = parse_rule(value)?;
            if rules
                .iter()
                .flatten()
                .any(|r: &Rule<'_>| r.name == rule.name)
            {
                return Err(ArgError::bad(
                    DENY_KEY,
                    value,
                    "the rule name is used twice",
                ));
            }
            let slot = rules.get_mut(count).ok_or(ArgError::bad(
                DENY_KEY,
                value,
                "too many rules (at most 8)",
            ))?;
            *slot = Some(rule);
            count += 1;
        }
        Ok(Firewall {
            rules,
            passed: 0,
            denied: [0; MAX_RULES],
            malformed: 0,
        })
    }

    /// The rules, in order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule<'a>> {
        self.rules.iter().flatten()
    }

    /// The decision on `frame`.
    pub fn check(&self, frame: &[u8]) -> Verdict {
        match headers(frame) {
            Ok(None) => Verdict::Pass,
            Ok(Some(h)) => self
                .rules()
                .position(|rule| rule.matches(&h))
                .map_or(Verdict::Pass, Verdict::Deny),
            Err(e) => Verdict::Malformed(e),
        }
    }
}

/// The fields rules look at; `None` for frames that are not IPv4.
fn headers(frame: &[u8]) -> Result<Option<Headers>, ParseError> {
    if packet::parse_ethernet(frame)?.ethertype != ETHERTYPE_IPV4 {
        return Ok(None);
    }
    let ip = packet::parse_ipv4(frame)?;
    let ports = match ip.protocol {
        PROTO_UDP => {
            let udp = packet::parse_udp(frame)?;
            Some((udp.src_port, udp.dst_port))
        }
        PROTO_TCP => {
            if ip.is_fragment() {
                return Err(ParseError::Fragment);
            }
            // The shortest TCP header is 20 bytes; its ports open it.
            if ip.payload_len() < 20 {
                return Err(ParseError::BadLength);
            }
            let at = ip.payload_offset();
            match (packet::be16(frame, at), packet::be16(frame, at + 2)) {
                (Some(s), Some(d)) => Some((s, d)),
                _ => return Err(ParseError::Short),
            }
        }
        _ => None,
    };
    Ok(Some(Headers {
        src: ip.src,
        dst: ip.dst,
        proto: ip.protocol,
        ports,
    }))
}

/// Reads the value of a `deny=` word: `NAME:FIELD=VALUE`.
fn parse_rule(value: &str) -> Result<Rule<'_>, ArgError<'_>> {
    let bad = |problem| ArgError::bad(DENY_KEY, value, problem);
    let (name, test) = value
        .split_once(':')
        .ok_or(bad("expected NAME:FIELD=VALUE"))?;
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || !name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
    {
        return Err(bad(
            "the rule name must be 1..=20 letters, digits, `_` or `-`",
        ));
    }
    let (field, text) = test
        .split_once('=')
        .ok_or(bad("expected NAME:FIELD=VALUE"))?;
    let port = || {
        parse_u64(text)
            .and_then(|n| u16::try_from(n).ok())
            .ok_or(bad("the port is not 0..=65535"))
    };
    let address = || parse_ipv4(text).ok_or(bad("the address is not a dotted IPv4 address"));
    let field = match field {
        "src" => Field::Src(address()?),
        "dst" => Field::Dst(address()?),
        "sport" => Field::Sport(port()?),
        "dport" => Field::Dport(port()?),
        "proto" => Field::Proto(match text {
            "udp" => PROTO_UDP,
            "tcp" => PROTO_TCP,
            _ => parse_u64(text)
                .and_then(|n| u8::try_from(n).ok())
                .ok_or(bad("the protocol is not udp, tcp or 0..=255"))?,
        }),
        _ => return Err(bad("the field is not src, dst, sport, dport or proto")),
    };
    Ok(Rule { name, field })
}

impl Function for Firewall<'_> {
    fn ingress(&mut self, frame: &mut [u8]) -> Action {
        match self.check(frame) {
            Verdict::Pass => {
                self.passed += 1;
                Action::Pass
            }
            Verdict::Deny(rule) => {
                if let Some(n) = self.denied.get_mut(rule) {
                    *n += 1;
                }
                Action::Drop
            }
            Verdict::Malformed(_) => {
                self.malformed += 1;
                Action::Drop
            }
        }
    }

    /// `passed`, `drop_<NAME>` for each rule, `drop_malformed`.
    fn metrics(&self, emit: &mut dyn FnMut(&str, u64)) {
        emit("passed", self.passed);
        for (rule, &n) in self.rules().zip(self.denied.iter()) {
            if let Some(name) = MetricName::join(DROP_PREFIX, rule.name) {
                emit(name.as_str(), n);
            }
        }
        emit("drop_malformed", self.malformed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nf::arp::Arp;
    use crate::nf::control::end_frame;
    use crate::nf::packet::{MAX_FRAME_LEN, Tag, UdpSpec, build_udp};
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    fn udp(src: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let spec = UdpSpec {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: src.into(),
            dst_ip: Ipv4Addr::new(10, 0, 0, 2),
            src_port: sport,
            dst_port: dport,
            frame_len: 64,
            tag: Tag { flow: 0, seq: 0 },
        };
        let len = build_udp(&mut buf, &spec).unwrap();
        buf[..len].to_vec()
    }

    #[test]
    fn rules_parse() {
        let fw = Firewall::from_args(
            "x=1 deny=blocked:dport=9999 deny=bad-host:src=10.0.0.99 deny=t_1:proto=tcp \
             deny=p:proto=47 deny=s:sport=0x35 deny=d:dst=1.2.3.4 deny=u:proto=udp",
        )
        .unwrap();
        let rules: Vec<_> = fw.rules().copied().collect();
        assert_eq!(
            rules,
            [
                Rule {
                    name: "blocked",
                    field: Field::Dport(9999)
                },
                Rule {
                    name: "bad-host",
                    field: Field::Src(Ipv4Addr::new(10, 0, 0, 99))
                },
                Rule {
                    name: "t_1",
                    field: Field::Proto(6)
                },
                Rule {
                    name: "p",
                    field: Field::Proto(47)
                },
                Rule {
                    name: "s",
                    field: Field::Sport(53)
                },
                Rule {
                    name: "d",
                    field: Field::Dst(Ipv4Addr::new(1, 2, 3, 4))
                },
                Rule {
                    name: "u",
                    field: Field::Proto(17)
                },
            ]
        );
        assert_eq!(Firewall::from_args("").unwrap().rules().count(), 0);
    }

    #[test]
    fn rule_errors_name_the_word() {
        let long = "deny=abcdefghijklmnopqrstu:dport=1";
        let nine: String = (0..9)
            .map(|i| alloc::format!("deny=r{i}:dport={i} "))
            .collect();
        for (args, word, problem) in [
            ("deny=blocked", "deny=blocked", "NAME:FIELD"),
            ("deny=:dport=1", "deny=:dport=1", "rule name"),
            ("deny=a.b:dport=1", "deny=a.b:dport=1", "rule name"),
            (long, long, "rule name"),
            ("deny=a:dport", "deny=a:dport", "NAME:FIELD"),
            ("deny=a:port=1", "deny=a:port=1", "field"),
            ("deny=a:dport=65536", "deny=a:dport=65536", "port"),
            ("deny=a:sport=-1", "deny=a:sport=-1", "port"),
            ("deny=a:src=10.0.0", "deny=a:src=10.0.0", "address"),
            ("deny=a:dst=", "deny=a:dst=", "address"),
            ("deny=a:proto=icmpx", "deny=a:proto=icmpx", "protocol"),
            ("deny=a:proto=256", "deny=a:proto=256", "protocol"),
            ("deny=a:dport=1 deny=a:dport=2", "deny=a:dport=2", "twice"),
            (&nine, "deny=r8:dport=8", "too many"),
        ] {
            let text = Firewall::from_args(args).unwrap_err().to_string();
            assert!(text.contains(&alloc::format!("`{word}`")), "{text}");
            assert!(text.contains(problem), "{text}");
        }
        let twenty = "deny=abcdefghijklmnopqrst:dport=1";
        assert!(Firewall::from_args(twenty).is_ok());
        let eight: String = (0..8)
            .map(|i| alloc::format!("deny=r{i}:dport={i} "))
            .collect();
        assert_eq!(Firewall::from_args(&eight).unwrap().rules().count(), 8);
    }

    #[test]
    fn verdicts() {
        let fw = Firewall::from_args("deny=blocked:dport=9999 deny=badhost:src=10.0.0.99").unwrap();
        assert_eq!(fw.check(&udp([10, 0, 0, 1], 10000, 7)), Verdict::Pass);
        assert_eq!(fw.check(&udp([10, 0, 0, 1], 10000, 9999)), Verdict::Deny(0));
        assert_eq!(fw.check(&udp([10, 0, 0, 99], 10000, 7)), Verdict::Deny(1));
        // The first matching rule wins.
        assert_eq!(
            fw.check(&udp([10, 0, 0, 99], 10000, 9999)),
            Verdict::Deny(0)
        );
        // Not IPv4: passes.
        assert_eq!(fw.check(&end_frame([2; 6], 1)), Verdict::Pass);
        let arp = Arp::request(
            [2; 6],
            Ipv4Addr::new(10, 0, 0, 99),
            Ipv4Addr::new(10, 0, 0, 2),
        );
        assert_eq!(fw.check(&arp.frame()), Verdict::Pass);
        // Malformed IPv4 and runts: dropped.
        let frame = udp([10, 0, 0, 1], 10000, 7);
        assert_eq!(
            fw.check(&frame[..13]),
            Verdict::Malformed(ParseError::Short)
        );
        for cut in 14..frame.len() {
            assert!(
                matches!(fw.check(&frame[..cut]), Verdict::Malformed(_)),
                "cut {cut}"
            );
        }
        let mut bad_ihl = frame.clone();
        bad_ihl[14] = 0x44;
        assert_eq!(fw.check(&bad_ihl), Verdict::Malformed(ParseError::BadIhl));
        let mut fragment = frame.clone();
        fragment[20] = 0x20;
        assert_eq!(
            fw.check(&fragment),
            Verdict::Malformed(ParseError::Fragment)
        );
    }

    #[test]
    fn tcp_ports_and_protocols() {
        let fw = Firewall::from_args("deny=web:dport=80 deny=gre:proto=47").unwrap();
        let mut tcp = udp([10, 0, 0, 1], 1234, 80);
        tcp[23] = PROTO_TCP;
        assert_eq!(fw.check(&tcp), Verdict::Deny(0));
        // A TCP datagram too short for a TCP header is malformed.
        tcp[17] = 20 + 19;
        assert_eq!(fw.check(&tcp), Verdict::Malformed(ParseError::BadLength));
        let mut gre = udp([10, 0, 0, 1], 1234, 80);
        gre[23] = 47;
        // No ports for GRE: only the protocol rule matches.
        assert_eq!(fw.check(&gre), Verdict::Deny(1));
        gre[23] = 1;
        assert_eq!(fw.check(&gre), Verdict::Pass);
    }

    #[test]
    fn counters_partition_and_metrics() {
        let mut fw = Firewall::from_args("deny=blocked:dport=9999").unwrap();
        let mut frames = [
            udp([10, 0, 0, 1], 1, 7),
            udp([10, 0, 0, 1], 1, 9999),
            udp([10, 0, 0, 1], 1, 9999),
            udp([10, 0, 0, 1], 1, 7)[..30].to_vec(),
            end_frame([2; 6], 3).to_vec(),
        ];
        let actions: Vec<_> = frames.iter_mut().map(|f| fw.ingress(f)).collect();
        assert_eq!(
            actions,
            [
                Action::Pass,
                Action::Drop,
                Action::Drop,
                Action::Drop,
                Action::Pass
            ]
        );
        let mut metrics = Vec::new();
        fw.metrics(&mut |name, value| metrics.push((name.to_string(), value)));
        let expected = [("passed", 2), ("drop_blocked", 2), ("drop_malformed", 1)];
        assert_eq!(metrics, expected.map(|(n, v)| (n.to_string(), v)).to_vec());
    }
}
