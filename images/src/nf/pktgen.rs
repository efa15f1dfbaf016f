//! The packet generator's plan (from its arguments), its deterministic frame sequence, and the echo-reply matcher.

use super::args::{ArgError, ipv4_value, number_value, port_value};
use super::packet::{
    ICMP_ECHO_REPLY, MAX_FRAME_LEN, MIN_FRAME_LEN, Mac, Tag, UdpSpec, build_icmp_echo, build_udp,
    parse_icmp_echo, parse_udp,
};
use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use guest_lib::args::Args;

/// Most data frames a plan may ask for.
pub const MAX_COUNT: u64 = 1_000_000;
/// Most flows a plan may ask for.
pub const MAX_FLOWS: u32 = 64;
/// Source port of flow 0; flow `i` uses `BASE_SPORT + i`.
pub const BASE_SPORT: u16 = 10_000;
/// Destination port when `dport=` is absent (echo).
pub const DEFAULT_DPORT: u16 = 7;
/// Frame length when `size=` is absent.
pub const DEFAULT_SIZE: usize = 64;
/// Source address when `src_ip=` is absent.
pub const DEFAULT_SRC_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// Destination address when `dst_ip=` is absent.
pub const DEFAULT_DST_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// Whether replies come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Frames go one way, to a sink (`mode=oneway`, the default).
    OneWay,
    /// An echo server returns each datagram with source and destination
    /// swapped (`mode=echo`).
    Echo,
    /// ICMP echo requests instead of datagrams, each answered by an echo
    /// reply (`mode=ping`): slirp's gateway answers them itself, inside
    /// the emulation, so a load through the NIC needs no host client.
    Ping,
}

/// The kind of a data frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Sent to `dport`.
    Allowed,
    /// Sent to `deny_port` (every `every`-th frame), for a firewall to drop.
    Denied,
}

/// Every `every`-th frame goes to `port` instead of `dport`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenyEvery {
    /// The destination port of those frames.
    pub port: u16,
    /// Frames 1-based `every`, `2 × every`, ... are denied ones (≥ 1).
    pub every: u64,
}

/// What the generator sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Data frames (`count=`, required, 0..=[`MAX_COUNT`]).
    pub count: u64,
    /// Flows (`flows=`, 1..=[`MAX_FLOWS`], default 1).
    pub flows: u32,
    /// Frame length in bytes (`size=`, 60..=1514, default 64).
    pub size: usize,
    /// Source address (`src_ip=`).
    pub src_ip: Ipv4Addr,
    /// Destination address (`dst_ip=`).
    pub dst_ip: Ipv4Addr,
    /// Destination port (`dport=`, default 7).
    pub dport: u16,
    /// The denied frames (`deny_port=P every=K`), if any.
    pub deny: Option<DenyEvery>,
    /// One way or echo (`mode=`).
    pub mode: Mode,
}

impl Plan {
    /// Reads a plan from `args` (other words are ignored).
    pub fn from_args(args: &str) -> Result<Plan, ArgError<'_>> {
        let a = Args::new(args);
        let count = number_value(
            &a,
            "count",
            0..=MAX_COUNT,
            "is not a frame count (0..=1000000)",
        )?
        .ok_or(ArgError::missing("count"))?;
        let flows = number_value(&a, "flows", 1..=u64::from(MAX_FLOWS), "is not 1..=64 flows")?
            .map_or(1, |n| n as u32);
        let size = number_value(
            &a,
            "size",
            MIN_FRAME_LEN as u64..=MAX_FRAME_LEN as u64,
            "is not a frame length (60..=1514)",
        )?
        .map_or(DEFAULT_SIZE, |n| n as usize);
        let deny = match (
            port_value(&a, "deny_port")?,
            number_value(&a, "every", 1..=u64::MAX, "is not a positive number")?,
        ) {
            (Some(port), Some(every)) => Some(DenyEvery { port, every }),
            (None, None) => None,
            (Some(_), None) => return Err(ArgError::missing("every")),
            (None, Some(_)) => return Err(ArgError::missing("deny_port")),
        };
        let mode = match a.value("mode") {
            None | Some("oneway") => Mode::OneWay,
            Some("echo") => Mode::Echo,
            Some("ping") => Mode::Ping,
            Some(other) => {
                return Err(ArgError::bad("mode", other, "is not oneway, echo or ping"));
            }
        };
        Ok(Plan {
            count,
            flows,
            size,
            src_ip: ipv4_value(&a, "src_ip")?.unwrap_or(DEFAULT_SRC_IP),
            dst_ip: ipv4_value(&a, "dst_ip")?.unwrap_or(DEFAULT_DST_IP),
            dport: port_value(&a, "dport")?.unwrap_or(DEFAULT_DPORT),
            deny,
            mode,
        })
    }

    /// The flow of frame `seq` (round robin).
    pub fn flow(&self, seq: u64) -> u32 {
        // The remainder is below `flows`, a u32.
        (seq % u64::from(self.flows.max(1))) as u32
    }

    /// The source port of `flow`.
    pub fn src_port(&self, flow: u32) -> u16 {
        BASE_SPORT.wrapping_add(flow as u16)
    }

    /// The kind of frame `seq` (0-based).
    pub fn kind(&self, seq: u64) -> Kind {
        match self.deny {
            Some(d) if seq.checked_rem(d.every) == Some(d.every.wrapping_sub(1)) => Kind::Denied,
            _ => Kind::Allowed,
        }
    }

    /// The destination port of frame `seq`.
    pub fn dst_port(&self, seq: u64) -> u16 {
        match (self.kind(seq), self.deny) {
            (Kind::Denied, Some(d)) => d.port,
            _ => self.dport,
        }
    }

    /// How many of the `count` frames are of `kind`.
    pub fn expected(&self, kind: Kind) -> u64 {
        let denied = self
            .deny
            .map_or(0, |d| self.count.checked_div(d.every).unwrap_or(0));
        match kind {
            Kind::Denied => denied,
            Kind::Allowed => self.count.saturating_sub(denied),
        }
    }
}

/// Produces a plan's frames in order: seq 0, 1, ... over the flows round
/// robin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generator {
    plan: Plan,
    src_mac: Mac,
    dst_mac: Mac,
    next: u64,
    allowed: u64,
    denied: u64,
}

impl Generator {
    /// A generator for `plan`, framing from `src_mac` to `dst_mac`.
    pub const fn new(plan: Plan, src_mac: Mac, dst_mac: Mac) -> Generator {
        Generator {
            plan,
            src_mac,
            dst_mac,
            next: 0,
            allowed: 0,
            denied: 0,
        }
    }

    /// Writes the next frame into `buf` and returns its length; `None` once
    /// all `count` frames were produced.
    pub fn next_frame(&mut self, buf: &mut [u8; MAX_FRAME_LEN]) -> Option<usize> {
        let seq = self.next;
        if seq >= self.plan.count {
            return None;
        }
        let flow = self.plan.flow(seq);
        let spec = UdpSpec {
            src_mac: self.src_mac,
            dst_mac: self.dst_mac,
            src_ip: self.plan.src_ip,
            dst_ip: self.plan.dst_ip,
            src_port: self.plan.src_port(flow),
            dst_port: self.plan.dst_port(seq),
            frame_len: self.plan.size,
            tag: Tag { flow, seq },
        };
        // The plan's size is within the builder's range and the buffer holds
        // the longest frame, so this cannot fail.
        let len = match self.plan.mode {
            Mode::Ping => build_icmp_echo(buf, &spec).ok()?,
            Mode::OneWay | Mode::Echo => build_udp(buf, &spec).ok()?,
        };
        self.next += 1;
        match self.plan.kind(seq) {
            Kind::Allowed => self.allowed += 1,
            Kind::Denied => self.denied += 1,
        }
        Some(len)
    }

    /// Frames produced so far.
    pub const fn produced(&self) -> u64 {
        self.next
    }

    /// Frames of `kind` produced so far.
    pub const fn produced_of(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Allowed => self.allowed,
            Kind::Denied => self.denied,
        }
    }

    /// `sent`, `sent_allowed`, `sent_denied`.
    pub fn metrics(&self, emit: &mut dyn FnMut(&str, u64)) {
        emit("sent", self.next);
        emit("sent_allowed", self.allowed);
        emit("sent_denied", self.denied);
    }
}

/// What an arriving frame is to the echo-reply matcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The first reply to a frame sent.
    Matched,
    /// A reply to a frame already matched.
    Duplicate,
    /// Anything else (not a verified reply to one of the plan's frames).
    Other,
}

/// Counts echo replies by sequence number, each at most once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyMatcher {
    plan: Plan,
    seen: Vec<u64>,
    /// Replies matched.
    pub matched: u64,
    /// Duplicate replies.
    pub duplicates: u64,
    /// Other frames.
    pub others: u64,
}

impl ReplyMatcher {
    /// A matcher for `plan` (allocates one bit per frame, at most
    /// [`MAX_COUNT`] bits, here and never again).
    pub fn new(plan: &Plan) -> ReplyMatcher {
        let words = plan.count.min(MAX_COUNT).div_ceil(64) as usize;
        ReplyMatcher {
            plan: *plan,
            seen: vec![0; words],
            matched: 0,
            duplicates: 0,
            others: 0,
        }
    }

    /// The sequence number `frame` replies to, if it is a verified reply:
    /// checksums right, addresses and ports those of frame `seq` swapped,
    /// tag consistent with the plan.
    pub fn reply_seq(&self, frame: &[u8]) -> Option<u64> {
        if self.plan.mode == Mode::Ping {
            return self.ping_reply_seq(frame);
        }
        let udp = parse_udp(frame).ok()?;
        if !udp.ip.checksum_ok(frame) || !udp.checksum_ok(frame) {
            return None;
        }
        let tag = Tag::parse(udp.payload(frame))?;
        let plan = &self.plan;
        let ok = tag.seq < plan.count
            && tag.flow == plan.flow(tag.seq)
            && udp.ip.src == plan.dst_ip
            && udp.ip.dst == plan.src_ip
            && udp.src_port == plan.dst_port(tag.seq)
            && udp.dst_port == plan.src_port(tag.flow);
        ok.then_some(tag.seq)
    }

    /// [`ReplyMatcher::reply_seq`] of a ping plan: an echo reply with
    /// good checksums, addresses swapped, identifier and sequence number
    /// those of the tagged request.
    fn ping_reply_seq(&self, frame: &[u8]) -> Option<u64> {
        let echo = parse_icmp_echo(frame).ok()?;
        if echo.kind != ICMP_ECHO_REPLY || !echo.ip.checksum_ok(frame) || !echo.checksum_ok(frame) {
            return None;
        }
        let tag = Tag::parse(echo.payload(frame))?;
        let plan = &self.plan;
        let ok = tag.seq < plan.count
            && tag.flow == plan.flow(tag.seq)
            && echo.ip.src == plan.dst_ip
            && echo.ip.dst == plan.src_ip
            && echo.id == plan.src_port(tag.flow)
            && echo.seq == tag.seq as u16;
        ok.then_some(tag.seq)
    }

    /// Classifies and counts `frame`.
    pub fn check(&mut self, frame: &[u8]) -> Reply {
        let reply = match self.reply_seq(frame) {
            None => Reply::Other,
            Some(seq) => {
                let bit = 1u64 << (seq % 64);
                match self.seen.get_mut((seq / 64) as usize) {
                    Some(word) if *word & bit != 0 => Reply::Duplicate,
                    Some(word) => {
                        *word |= bit;
                        Reply::Matched
                    }
                    None => Reply::Other,
                }
            }
        };
        match reply {
            Reply::Matched => self.matched += 1,
            Reply::Duplicate => self.duplicates += 1,
            Reply::Other => self.others += 1,
        }
        reply
    }

    /// `echo_matched`, `echo_duplicate`, `echo_other`.
    pub fn metrics(&self, emit: &mut dyn FnMut(&str, u64)) {
        emit("echo_matched", self.matched);
        emit("echo_duplicate", self.duplicates);
        emit("echo_other", self.others);
    }
}

#[cfg(test)]
mod tests;
