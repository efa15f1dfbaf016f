//! `pktgen`: sends `count=N` tagged UDP frames on port 0 (`flows=`, `size=`, `src_ip=`, `dst_ip=`, `dport=`, `deny_port=P every=K`; `src_mac=` to send them, and the end frame, from another MAC than the port's own, as a guest lying about its address would), then the end-of-stream frame; with `mode=echo` it first resolves `dst_ip` by ARP and keeps at most `window=W` (default 32) datagrams unanswered, exiting 0 only if each got exactly one reply (`mode=ping`: the same with ICMP echo requests, which slirp's gateway answers itself); `idle=N` sets the idle timeout in TSC ticks.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use guest_lib::args::Args;
use guest_lib::net::{Idle, NetError, NetPort};
use guest_lib::println;
use guest_lib::time::Instant;
use images::nf::args::{ArgError, mac_value, number_value};
use images::nf::arp::{ARP_FRAME_LEN, Arp, ArpOp};
use images::nf::control::end_frame;
use images::nf::guest::{
    self, EXIT_BAD_ARGS, EXIT_DEVICE, EXIT_INCOMPLETE, EXIT_OK, Reporter, SPIN_TICKS,
};
use images::nf::packet::{BROADCAST, MAX_FRAME_LEN, Mac};
use images::nf::pktgen::{Generator, Kind, Mode, Plan, ReplyMatcher};

guest_lib::entry!(pktgen);

/// The name the image prints under.
const IMAGE: &str = "pktgen";
/// Unanswered datagrams allowed in echo mode when `window=` is absent.
const DEFAULT_WINDOW: u64 = 32;
/// Largest `window=`.
const MAX_WINDOW: u64 = 1024;
/// ARP requests sent for `dst_ip` before giving up; the idle timeout is
/// shared out between them.
const ARP_TRIES: u64 = 5;

/// What the arguments ask for, beyond the plan.
struct Settings {
    plan: Plan,
    /// The source MAC of one-way frames, if not the port's own.
    src_mac: Option<Mac>,
    idle_ticks: u64,
    window: u64,
}

impl Settings {
    fn from_args(args: &str) -> Result<Settings, ArgError<'_>> {
        let window = number_value(
            &Args::new(args),
            "window",
            1..=MAX_WINDOW,
            "is not a window of 1..=1024 datagrams",
        )?
        .unwrap_or(DEFAULT_WINDOW);
        Ok(Settings {
            src_mac: mac_value(&Args::new(args), "src_mac")?,
            plan: Plan::from_args(args)?,
            idle_ticks: guest::idle_ticks(args)?,
            window,
        })
    }
}

/// Frames `send` accepted, by kind.
#[derive(Default)]
struct Sent {
    allowed: u64,
    denied: u64,
    /// Times `send` found the transmit ring full.
    ring_full: u64,
}

impl Sent {
    fn add(&mut self, kind: Kind) {
        match kind {
            Kind::Allowed => self.allowed += 1,
            Kind::Denied => self.denied += 1,
        }
    }

    fn total(&self) -> u64 {
        self.allowed + self.denied
    }

    fn metrics(&self, plan: &Plan, emit: &mut dyn FnMut(&str, u64)) {
        emit("sent", self.total());
        emit("sent_allowed", self.allowed);
        emit("sent_denied", self.denied);
        emit("planned", plan.count);
        emit("ring_full", self.ring_full);
    }
}

fn pktgen(info: &guest_lib::BootInfo) -> i32 {
    let settings = match Settings::from_args(info.args) {
        Ok(s) => s,
        Err(e) => {
            println!("{IMAGE}: {e}");
            return EXIT_BAD_ARGS;
        }
    };
    let Some(mut port) = guest::open(IMAGE, info, 0) else {
        return EXIT_DEVICE;
    };
    let result = match settings.plan.mode {
        Mode::OneWay => one_way(&mut port, &settings),
        Mode::Echo | Mode::Ping => Echo::new(&mut port, &settings).run(),
    };
    result.unwrap_or_else(|e| {
        println!("{IMAGE}: net port 0: {e}");
        EXIT_DEVICE
    })
}

/// Sends `frame`, waiting while the transmit ring is full; `false` if it
/// stayed full for `idle_ticks`.
fn send_waiting(
    port: &mut NetPort,
    frame: &[u8],
    idle_ticks: u64,
    sent: &mut Sent,
) -> Result<bool, NetError> {
    let mut idle = Idle::new(SPIN_TICKS, idle_ticks);
    loop {
        if port.send(frame)? {
            return Ok(true);
        }
        sent.ring_full += 1;
        if !idle.idle() {
            return Ok(false);
        }
    }
}

/// Sends the end-of-stream frame announcing `sent` frames and waits until
/// every transmission completed; prints what failed.
fn finish(
    port: &mut NetPort,
    src_mac: Mac,
    sent: &mut Sent,
    idle_ticks: u64,
) -> Result<bool, NetError> {
    let end = end_frame(src_mac, sent.total());
    if !send_waiting(port, &end, idle_ticks, sent)? {
        println!("{IMAGE}: the end frame could not be queued within {idle_ticks} idle ticks");
        return Ok(false);
    }
    if !guest::drain(&mut [port], idle_ticks) {
        println!("{IMAGE}: transmissions not completed after {idle_ticks} idle ticks");
        return Ok(false);
    }
    Ok(true)
}

/// One-way mode: every frame of the plan to the broadcast address, then
/// the end frame.
fn one_way(port: &mut NetPort, settings: &Settings) -> Result<i32, NetError> {
    let plan = &settings.plan;
    let src_mac = settings.src_mac.unwrap_or(port.mac());
    let mut generator = Generator::new(*plan, src_mac, BROADCAST);
    let mut sent = Sent::default();
    let mut buf = [0u8; MAX_FRAME_LEN];
    let start = Instant::now();
    let mut complete = true;
    while let Some(len) = generator.next_frame(&mut buf) {
        let seq = generator.produced() - 1;
        if !send_waiting(port, &buf[..len], settings.idle_ticks, &mut sent)? {
            println!(
                "{IMAGE}: transmit ring full for {} idle ticks at frame {seq}",
                settings.idle_ticks
            );
            complete = false;
            break;
        }
        sent.add(plan.kind(seq));
    }
    let ticks = start.elapsed_ticks();
    let finished = finish(port, src_mac, &mut sent, settings.idle_ticks)?;
    let mut reporter = Reporter::new();
    sent.metrics(plan, &mut |n, v| reporter.emit(n, v));
    reporter.emit("send_ticks", ticks);
    reporter.finish(IMAGE);
    println!(
        "{IMAGE}: sent {} of {} frames ({} allowed, {} denied) in {ticks} ticks, ring full {} times",
        sent.total(),
        plan.count,
        sent.allowed,
        sent.denied,
        sent.ring_full
    );
    Ok(if complete && finished {
        EXIT_OK
    } else {
        EXIT_INCOMPLETE
    })
}

/// What one received frame was to the echo client.
enum Received {
    /// Nothing was waiting.
    Nothing,
    /// An ARP reply from `dst_ip`, with its MAC.
    PeerMac(Mac),
    /// Anything else (handled).
    Other,
}

/// Echo mode: ARP for the server, then datagrams within a window, replies
/// matched, ARP requests for `src_ip` answered throughout.
struct Echo<'p> {
    port: &'p mut NetPort,
    mac: Mac,
    plan: Plan,
    idle_ticks: u64,
    window: u64,
    matcher: ReplyMatcher,
    sent: Sent,
    /// An ARP reply the full transmit ring did not take yet.
    arp_reply: Option<[u8; ARP_FRAME_LEN]>,
    arp_requests: u64,
    arp_answered: u64,
    buf: [u8; MAX_FRAME_LEN],
}

impl<'p> Echo<'p> {
    fn new(port: &'p mut NetPort, settings: &Settings) -> Echo<'p> {
        Echo {
            mac: port.mac(),
            port,
            plan: settings.plan,
            idle_ticks: settings.idle_ticks,
            window: settings.window,
            matcher: ReplyMatcher::new(&settings.plan),
            sent: Sent::default(),
            arp_reply: None,
            arp_requests: 0,
            arp_answered: 0,
            buf: [0; MAX_FRAME_LEN],
        }
    }

    fn run(mut self) -> Result<i32, NetError> {
        let start = Instant::now();
        let timed_out = match self.resolve()? {
            Some(peer) => !self.exchange(peer)?,
            None => {
                println!(
                    "{IMAGE}: no ARP reply for {} after {} requests",
                    self.plan.dst_ip, self.arp_requests
                );
                true
            }
        };
        let ticks = start.elapsed_ticks();
        let finished = finish(self.port, self.mac, &mut self.sent, self.idle_ticks)?;
        let m = &self.matcher;
        let mut reporter = Reporter::new();
        self.sent
            .metrics(&self.plan, &mut |n, v| reporter.emit(n, v));
        m.metrics(&mut |n, v| reporter.emit(n, v));
        reporter.emit("arp_requests", self.arp_requests);
        reporter.emit("arp_answered", self.arp_answered);
        reporter.emit("echo_ticks", ticks);
        reporter.finish(IMAGE);
        println!(
            "{IMAGE}: echo: sent {} of {}, replies {} matched, {} duplicate, {} other, in {ticks} ticks",
            self.sent.total(),
            self.plan.count,
            m.matched,
            m.duplicates,
            m.others
        );
        let all_once = m.matched == self.plan.count && m.duplicates == 0;
        if !all_once {
            println!(
                "{IMAGE}: {} datagram(s) got no reply, {} duplicate reply(ies){}",
                self.plan.count - m.matched,
                m.duplicates,
                if timed_out { " (idle timeout)" } else { "" }
            );
        }
        Ok(if all_once && finished {
            EXIT_OK
        } else {
            EXIT_INCOMPLETE
        })
    }

    /// Takes one frame: answers ARP requests for `src_ip`, reports ARP
    /// replies from `dst_ip`, counts the rest with the reply matcher.
    fn receive(&mut self) -> Result<Received, NetError> {
        let Some(len) = self.port.recv(&mut self.buf)? else {
            return Ok(Received::Nothing);
        };
        let frame = self.buf.get(..len).unwrap_or_default();
        let Some(arp) = Arp::parse(frame) else {
            self.matcher.check(frame);
            return Ok(Received::Other);
        };
        if let Some(answer) = arp.answer(self.mac, self.plan.src_ip) {
            self.arp_answered += 1;
            self.arp_reply = Some(answer.frame());
            self.flush_arp_reply()?;
        }
        Ok(match arp.op {
            ArpOp::Reply if arp.sender_ip == self.plan.dst_ip => Received::PeerMac(arp.sender_mac),
            _ => Received::Other,
        })
    }

    /// Sends the pending ARP reply if the ring takes it; true if it went.
    fn flush_arp_reply(&mut self) -> Result<bool, NetError> {
        let Some(frame) = self.arp_reply else {
            return Ok(false);
        };
        let sent = self.port.send(&frame)?;
        if sent {
            self.arp_reply = None;
        }
        Ok(sent)
    }

    /// The echo server's MAC, from an ARP reply to one of up to
    /// [`ARP_TRIES`] requests, each given its share of the idle timeout.
    fn resolve(&mut self) -> Result<Option<Mac>, NetError> {
        let request = Arp::request(self.mac, self.plan.src_ip, self.plan.dst_ip).frame();
        let per_try = (self.idle_ticks / ARP_TRIES).max(1);
        for _ in 0..ARP_TRIES {
            if self.port.send(&request)? {
                self.arp_requests += 1;
            }
            let mut idle = Idle::new(SPIN_TICKS, per_try);
            loop {
                match self.receive()? {
                    Received::PeerMac(mac) => return Ok(Some(mac)),
                    Received::Other => {}
                    Received::Nothing => {
                        if !self.flush_arp_reply()? && !idle.idle() {
                            break;
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// Sends the plan's datagrams to `peer` with at most `window`
    /// unanswered; false if the idle timeout passed before every reply
    /// came.
    fn exchange(&mut self, peer: Mac) -> Result<bool, NetError> {
        let mut generator = Generator::new(self.plan, self.mac, peer);
        let mut frame = [0u8; MAX_FRAME_LEN];
        let mut pending: Option<usize> = None;
        let mut idle = Idle::new(SPIN_TICKS, self.idle_ticks);
        while self.matcher.matched < self.plan.count {
            let mut moved = self.flush_arp_reply()?;
            while self.sent.total() - self.matcher.matched.min(self.sent.total()) < self.window {
                if pending.is_none() {
                    pending = generator.next_frame(&mut frame);
                }
                let Some(len) = pending else { break };
                if !self.port.send(frame.get(..len).unwrap_or_default())? {
                    self.sent.ring_full += 1;
                    break;
                }
                pending = None;
                self.sent.add(self.plan.kind(generator.produced() - 1));
                moved = true;
            }
            while !matches!(self.receive()?, Received::Nothing) {
                moved = true;
            }
            if moved {
                idle.reset();
            } else if !idle.idle() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
