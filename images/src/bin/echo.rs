//! `echo`: a UDP echo server on smoltcp over net port 0. It answers ARP
//! (smoltcp does) and sends every datagram it receives on its port back to
//! where it came from, until the end-of-stream control frame arrives (exit
//! 0) or nothing arrives for the idle timeout (exit 2). Reports metric
//! `echoed` (datagrams echoed) before it exits.
//!
//! Arguments (all optional):
//!
//! | word | meaning | default |
//! |---|---|---|
//! | `ip=A.B.C.D/N` | the interface's address and prefix length | `10.0.0.2/24` |
//! | `port=P` | the UDP port to echo on (1..=65535) | `7` |
//! | `idle=T` | TSC ticks without any traffic before giving up | 2,000,000,000 |
//! | `spin=T` | ticks to keep polling before waiting in the hypervisor | 5,000 |
//! | `quit=WORD` | a datagram holding exactly WORD is echoed and then ends the server like the end-of-stream frame (for clients that cannot send raw frames, e.g. from the host through a NAT) | none |
//! | `crash_after=N` | triple-fault after echoing N datagrams (a server that fails in the middle of traffic, for restart tests) | never |
//! | `announce=0` | do not send a gratuitous ARP for its address at start | sent |
//!
//! Exit codes: 0 after the end-of-stream frame (once the echoes queued
//! before it have left), 2 for unusable arguments or the idle timeout, 3
//! when port 0 cannot be opened or the echo socket cannot be set up.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv4Addr;
use guest_lib::args::{Args, parse_u64};
use guest_lib::net::smoltcp::{SmoltcpPort, now};
use guest_lib::net::{Idle, NetPort};
use guest_lib::println;
use guest_lib::smoltcp::iface::SocketSet;
use guest_lib::smoltcp::socket::udp::{self, PacketMetadata};
use guest_lib::time::Instant;
use images::nf::args::parse_cidr;

guest_lib::entry!(echo);

/// Exit code after the end-of-stream frame.
const EXIT_DONE: i32 = 0;
/// Exit code for unusable arguments.
const EXIT_BAD_ARGS: i32 = 2;
/// Exit code when no traffic arrived for the idle timeout.
const EXIT_IDLE: i32 = 2;
/// Exit code when the port or the socket cannot be set up.
const EXIT_NET: i32 = 3;

/// The net port echo serves.
const NET_PORT: usize = 0;
/// Default interface address.
const DEFAULT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Default prefix length.
const DEFAULT_PREFIX: u8 = 24;
/// Default UDP port (the echo service).
const DEFAULT_PORT: u16 = 7;
/// Default idle timeout, ticks.
const DEFAULT_IDLE_TICKS: u64 = 2_000_000_000;
/// Largest UDP payload in one 1500-byte IPv4 packet.
const MAX_DATAGRAM: usize = 1472;
/// Datagrams each socket buffer holds.
const SOCKET_PACKETS: usize = 64;
/// Payload bytes each socket buffer holds.
const SOCKET_BYTES: usize = SOCKET_PACKETS * MAX_DATAGRAM;
/// Ticks after the end-of-stream frame to let queued echoes leave.
const DRAIN_TICKS: u64 = 200_000_000;

/// What the arguments ask for.
struct Settings<'a> {
    quit: Option<&'a str>,
    crash_after: Option<u64>,
    ip: Ipv4Addr,
    prefix: u8,
    port: u16,
    idle_ticks: u64,
    spin_ticks: u64,
    announce: bool,
}

/// An argument word echo cannot use.
struct BadArg<'a> {
    key: &'static str,
    value: &'a str,
    problem: &'static str,
}

impl fmt::Display for BadArg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}={}`: {}", self.key, self.value, self.problem)
    }
}

fn settings(text: &str) -> Result<Settings<'_>, BadArg<'_>> {
    let args = Args::new(text);
    let mut s = Settings {
        quit: args.value("quit"),
        crash_after: None,
        ip: DEFAULT_IP,
        prefix: DEFAULT_PREFIX,
        port: DEFAULT_PORT,
        idle_ticks: DEFAULT_IDLE_TICKS,
        spin_ticks: Idle::DEFAULT_SPIN_TICKS,
        announce: true,
    };
    if let Some(value) = args.value("announce") {
        s.announce = match value {
            "0" => false,
            "1" => true,
            _ => {
                return Err(BadArg {
                    key: "announce",
                    value,
                    problem: "must be 0 or 1",
                });
            }
        };
    }
    if let Some(value) = args.value("ip") {
        let bad = |problem| BadArg {
            key: "ip",
            value,
            problem,
        };
        (s.ip, s.prefix) = parse_cidr(value).map_err(bad)?;
    }
    if let Some(value) = args.value("port") {
        s.port = parse_u64(value)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0)
            .ok_or(BadArg {
                key: "port",
                value,
                problem: "must be a UDP port, 1..=65535",
            })?;
    }
    if let Some(value) = args.value("crash_after") {
        s.crash_after = Some(parse_u64(value).ok_or(BadArg {
            key: "crash_after",
            value,
            problem: "must be a number of datagrams",
        })?);
    }
    for (key, field) in [("idle", &mut s.idle_ticks), ("spin", &mut s.spin_ticks)] {
        if let Some(value) = args.value(key) {
            *field = parse_u64(value).ok_or(BadArg {
                key,
                value,
                problem: "must be a number of ticks",
            })?;
        }
    }
    Ok(s)
}

fn echo(info: &guest_lib::BootInfo) -> i32 {
    let s = match settings(info.args) {
        Ok(s) => s,
        Err(e) => {
            println!("echo: {e}");
            return EXIT_BAD_ARGS;
        }
    };
    let port = match NetPort::open(info, NET_PORT) {
        Ok(port) => port,
        Err(e) => {
            println!("echo: {e}");
            return EXIT_NET;
        }
    };
    let mut dev = SmoltcpPort::new(port);
    let mac = dev.mac();
    let iface = dev.interface(u64::from(info.vm_index), s.ip, s.prefix);
    let socket_buffer = || {
        udp::PacketBuffer::new(
            vec![PacketMetadata::EMPTY; SOCKET_PACKETS],
            vec![0; SOCKET_BYTES],
        )
    };
    let mut socket = udp::Socket::new(socket_buffer(), socket_buffer());
    let (Some(mut iface), Ok(())) = (iface, socket.bind(s.port)) else {
        println!(
            "echo: cannot listen on {}/{} port {}",
            s.ip, s.prefix, s.port
        );
        return EXIT_NET;
    };
    let mut sockets = SocketSet::new(Vec::new());
    let handle = sockets.add(socket);
    println!(
        "echo: listening on {}/{} udp port {}, mac {:02x?}",
        s.ip, s.prefix, s.port, mac
    );

    // Gateways that learn addresses only from ARP (slirp) can then reach
    // this server before it has spoken; a full ring only loses the hint.
    if s.announce
        && let Err(e) = dev.announce(s.ip)
    {
        println!("echo: gratuitous ARP: {e}");
    }

    let mut idle = Idle::new(s.spin_ticks, s.idle_ticks);
    let mut datagram = [0u8; MAX_DATAGRAM];
    let mut echoed: u64 = 0;
    let mut end_seen: Option<Instant> = None;
    let mut quit = false;
    let code = loop {
        let received = dev.stats().received;
        iface.poll(now(), &mut dev, &mut sockets);
        // Fail once the echoes so far have left (crash_after).
        if s.crash_after.is_some_and(|n| echoed >= n)
            && sockets.get::<udp::Socket>(handle).send_queue() == 0
            && dev.port().tx_in_flight() == 0
        {
            println!("echo: crashing after {echoed} datagrams (crash_after)");
            images::fault::triple_fault();
        }
        let socket = sockets.get_mut::<udp::Socket>(handle);
        let mut work = dev.stats().received != received;
        while socket.can_recv() && socket.can_send() {
            let Ok((len, meta)) = socket.recv_slice(&mut datagram) else {
                break;
            };
            // `can_send` said there is room; a datagram that still does not
            // fit is dropped, as UDP may.
            if socket.send_slice(&datagram[..len], meta).is_ok() {
                echoed += 1;
            }
            quit |= s.quit.is_some_and(|w| w.as_bytes() == &datagram[..len]);
            work = true;
        }

        if let Some(e) = dev.take_error() {
            println!("echo: port {NET_PORT}: {e}");
        }
        if dev.end_of_stream() || quit {
            let since = *end_seen.get_or_insert_with(|| {
                let what = if quit {
                    "quit datagram"
                } else {
                    "end of stream"
                };
                println!("echo: {what} after {echoed} datagrams");
                Instant::now()
            });
            let drained =
                !socket.can_recv() && socket.send_queue() == 0 && dev.port().tx_in_flight() == 0;
            if drained {
                break EXIT_DONE;
            }
            if since.elapsed_ticks() > DRAIN_TICKS {
                println!("echo: echoes still queued {DRAIN_TICKS} ticks after the end; exiting");
                break EXIT_DONE;
            }
        }
        if work {
            idle.reset();
        } else if !idle.idle() {
            if end_seen.is_some() {
                println!("echo: echoes still queued when the idle timeout passed; exiting");
                break EXIT_DONE;
            }
            println!(
                "echo: no traffic for {} ticks and no end-of-stream frame; giving up",
                s.idle_ticks
            );
            break EXIT_IDLE;
        }
    };
    let stats = dev.stats();
    println!(
        "echo: echoed {echoed} datagrams; frames received {}, sent {}, dropped {}, errors {}",
        stats.received, stats.sent, stats.dropped, stats.errors
    );
    // The name is a valid metric name, so this cannot fail.
    let _ = guest_lib::hypercall::metric("echoed", echoed);
    code
}
