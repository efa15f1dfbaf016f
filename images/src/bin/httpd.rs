//! `httpd`: an HTTP/1.1 server on smoltcp TCP over net port 0: a page at `/`, its counters as JSON at `/stats`, persistent connections, several at once.
//!
//! It announces its address with a gratuitous ARP at start (so a gateway
//! that learns addresses only from ARP, like an emulator's slirp, can
//! reach it), then serves until it has answered `requests` requests (exit
//! 0) or nothing happened for the idle timeout (exit 2). Reports metrics
//! `requests`, `connections` and `bad_requests` before it exits.
//!
//! Arguments (all optional):
//!
//! | word | meaning | default |
//! |---|---|---|
//! | `ip=A.B.C.D/N` | the interface's address and prefix length | `10.0.2.15/24` |
//! | `port=P` | the TCP port (1..=65535) | `80` |
//! | `conns=N` | connections served at once (1..=16) | `4` |
//! | `requests=N` | answer N requests, then exit 0 (0: never) | `0` |
//! | `idle=T` | TSC ticks without any traffic before giving up (0: never) | 20,000,000,000 |
//!
//! Exit codes: 0 after `requests` answers, 2 for unusable arguments or the
//! idle timeout, 3 when port 0 cannot be opened or the address not set.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;
use core::net::Ipv4Addr;
use guest_lib::args::{Args, parse_u64};
use guest_lib::hypercall::wait_for_work;
use guest_lib::net::NetPort;
use guest_lib::net::smoltcp::{SmoltcpPort, TICKS_PER_MICROSECOND, now};
use guest_lib::println;
use guest_lib::smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use guest_lib::smoltcp::socket::tcp;
use guest_lib::smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};
use guest_lib::time::rdtsc;
use images::http::{self, MAX_HEAD, Method, Status};
use images::nf::args::parse_cidr;

guest_lib::entry!(httpd);

const EXIT_DONE: i32 = 0;
const EXIT_BAD_ARGS: i32 = 2;
const EXIT_IDLE: i32 = 2;
const EXIT_NET: i32 = 3;

const NET_PORT: usize = 0;
const DEFAULT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const DEFAULT_PREFIX: u8 = 24;
const DEFAULT_PORT: u16 = 80;
const DEFAULT_CONNS: u64 = 4;
const MAX_CONNS: u64 = 16;
const DEFAULT_IDLE_TICKS: u64 = 20_000_000_000;
/// Bytes of each socket's receive and send buffers.
const SOCKET_BYTES: usize = 8192;
/// Longest wait in the hypervisor between polls while idle (TCP timers
/// need the interface polled now and then).
const MAX_WAIT_TICKS: u64 = 10_000_000;
/// Ticks of polling without waiting after the last work.
const SPIN_TICKS: u64 = 5_000;
/// Ticks to let the last answers leave after the request count is reached.
const DRAIN_TICKS: u64 = 500_000_000;

struct Settings {
    ip: Ipv4Addr,
    prefix: u8,
    port: u16,
    conns: usize,
    requests: u64,
    idle_ticks: u64,
}

fn settings(text: &str) -> Result<Settings, String> {
    let args = Args::new(text);
    let mut s = Settings {
        ip: DEFAULT_IP,
        prefix: DEFAULT_PREFIX,
        port: DEFAULT_PORT,
        conns: DEFAULT_CONNS as usize,
        requests: 0,
        idle_ticks: DEFAULT_IDLE_TICKS,
    };
    if let Some(value) = args.value("ip") {
        (s.ip, s.prefix) =
            parse_cidr(value).map_err(|problem| alloc::format!("`ip={value}`: {problem}"))?;
    }
    if let Some(value) = args.value("port") {
        s.port = parse_u64(value)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0)
            .ok_or_else(|| alloc::format!("`port={value}`: must be a TCP port, 1..=65535"))?;
    }
    if let Some(value) = args.value("conns") {
        s.conns = parse_u64(value)
            .filter(|n| (1..=MAX_CONNS).contains(n))
            .ok_or_else(|| alloc::format!("`conns={value}`: must be 1..={MAX_CONNS}"))?
            as usize;
    }
    for (key, field) in [("requests", &mut s.requests), ("idle", &mut s.idle_ticks)] {
        if let Some(value) = args.value(key) {
            *field = parse_u64(value)
                .ok_or_else(|| alloc::format!("`{key}={value}`: must be a number"))?;
        }
    }
    Ok(s)
}

/// What the server counted.
#[derive(Default)]
struct Counters {
    requests: u64,
    connections: u64,
    bad_requests: u64,
    not_found: u64,
    bytes_sent: u64,
}

/// One connection slot: its socket and what is pending on it.
struct Conn {
    handle: SocketHandle,
    input: Vec<u8>,
    output: Vec<u8>,
    counted: bool,
    closing: bool,
}

/// The answer to `request`, appended to `out`.
fn answer(
    out: &mut Vec<u8>,
    method: Method,
    path: &str,
    keep_alive: bool,
    c: &mut Counters,
    name: &str,
) {
    let mut body = String::new();
    let (status, content_type) = match path {
        "/" | "/index.html" => {
            let _ = write!(
                body,
                "<!doctype html>\n<html><head><title>Corral</title></head><body><h1>Hello from {name}</h1><p>An HTTP server in a Corral unikernel.</p></body></html>\n"
            );
            (Status::Ok, "text/html")
        }
        "/stats" => {
            let _ = writeln!(
                body,
                "{{\"vm\":\"{name}\",\"requests\":{},\"connections\":{},\"bad_requests\":{},\"not_found\":{},\"bytes_sent\":{}}}",
                c.requests, c.connections, c.bad_requests, c.not_found, c.bytes_sent
            );
            (Status::Ok, "application/json")
        }
        _ => {
            c.not_found += 1;
            let _ = writeln!(body, "no page at {path}");
            (Status::NotFound, "text/plain")
        }
    };
    push_response(
        out,
        status,
        content_type,
        &body,
        method == Method::Head,
        keep_alive,
    );
}

fn push_response(
    out: &mut Vec<u8>,
    status: Status,
    content_type: &str,
    body: &str,
    head_only: bool,
    keep_alive: bool,
) {
    let mut head = String::new();
    let _ = http::write_head(&mut head, status, content_type, body.len(), keep_alive);
    out.extend_from_slice(head.as_bytes());
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
}

/// Serves one connection slot for one pass; whether anything happened.
fn serve(
    conn: &mut Conn,
    socket: &mut tcp::Socket<'_>,
    port: u16,
    c: &mut Counters,
    name: &str,
) -> bool {
    let mut work = false;
    if !socket.is_open() {
        // Closed (or in TIME-WAIT): listen again for the next client.
        conn.input.clear();
        conn.output.clear();
        conn.counted = false;
        conn.closing = false;
        if socket.listen(port).is_err() {
            return false;
        }
    }
    if socket.is_active() && !conn.counted && socket.state() != tcp::State::Listen {
        conn.counted = true;
        c.connections += 1;
        work = true;
    }
    while socket.can_recv() && conn.input.len() < MAX_HEAD && !conn.closing {
        let room = MAX_HEAD - conn.input.len();
        let mut chunk = [0u8; 512];
        let want = room.min(chunk.len());
        match socket.recv_slice(&mut chunk[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                conn.input.extend_from_slice(&chunk[..n]);
                work = true;
            }
        }
    }
    // Answer every complete request (pipelined ones too), in order.
    while !conn.closing && conn.output.len() < SOCKET_BYTES {
        match http::parse_request(&conn.input) {
            Ok(None) => break,
            Ok(Some(r)) => {
                c.requests += 1;
                let (method, keep) = (r.method, r.keep_alive);
                let path = String::from(r.path);
                conn.input.drain(..r.head_len);
                answer(&mut conn.output, method, &path, keep, c, name);
                conn.closing = !keep;
                work = true;
            }
            Err(e) => {
                c.bad_requests += 1;
                let mut body = String::new();
                let _ = writeln!(body, "{e}");
                push_response(
                    &mut conn.output,
                    e.status(),
                    "text/plain",
                    &body,
                    false,
                    false,
                );
                conn.input.clear();
                conn.closing = true;
                work = true;
            }
        }
    }
    if !conn.output.is_empty()
        && socket.can_send()
        && let Ok(n) = socket.send_slice(&conn.output)
    {
        conn.output.drain(..n);
        c.bytes_sent += n as u64;
        work |= n > 0;
    }
    // The client closed its side: finish once our answers are out.
    let peer_done = !socket.may_recv() && socket.state() == tcp::State::CloseWait;
    if conn.output.is_empty() && (conn.closing || peer_done) && socket.may_send() {
        socket.close();
        work = true;
    }
    work
}

fn httpd(info: &guest_lib::BootInfo) -> i32 {
    let s = match settings(info.args) {
        Ok(s) => s,
        Err(e) => {
            println!("httpd: {e}");
            return EXIT_BAD_ARGS;
        }
    };
    let port = match NetPort::open(info, NET_PORT) {
        Ok(port) => port,
        Err(e) => {
            println!("httpd: {e}");
            return EXIT_NET;
        }
    };
    let mut dev = SmoltcpPort::new(port);
    let mac = dev.mac();
    let mut config = Config::new(EthernetAddress(mac).into());
    config.random_seed = rdtsc() ^ u64::from(info.vm_index);
    let mut iface = Interface::new(config, &mut dev, now());
    let mut added = false;
    iface.update_ip_addrs(|addrs| {
        added = addrs
            .push(IpCidr::new(IpAddress::Ipv4(s.ip), s.prefix))
            .is_ok();
    });
    if !added {
        println!("httpd: cannot set address {}/{}", s.ip, s.prefix);
        return EXIT_NET;
    }
    let mut sockets = SocketSet::new(Vec::new());
    let mut conns = Vec::new();
    for _ in 0..s.conns {
        let socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; SOCKET_BYTES]),
            tcp::SocketBuffer::new(vec![0; SOCKET_BYTES]),
        );
        conns.push(Conn {
            handle: sockets.add(socket),
            input: Vec::new(),
            output: Vec::new(),
            counted: false,
            closing: false,
        });
    }
    if let Err(e) = dev.announce(s.ip) {
        println!("httpd: gratuitous ARP: {e}");
    }
    println!(
        "httpd: serving http://{}:{}/ ({} connections at once), mac {:02x?}",
        s.ip, s.port, s.conns, mac
    );

    let mut c = Counters::default();
    let mut last_work = rdtsc();
    let mut done_at: Option<u64> = None;
    let code = loop {
        let received = dev.stats().received;
        iface.poll(now(), &mut dev, &mut sockets);
        let mut work = dev.stats().received != received;
        for conn in &mut conns {
            let socket = sockets.get_mut::<tcp::Socket>(conn.handle);
            work |= serve(conn, socket, s.port, &mut c, info.name);
        }
        if let Some(e) = dev.take_error() {
            println!("httpd: port {NET_PORT}: {e}");
        }
        let t = rdtsc();
        if work {
            last_work = t;
        }
        if s.requests != 0 && c.requests >= s.requests {
            let since = *done_at.get_or_insert(t);
            let drained = conns.iter().all(|conn| {
                let socket = sockets.get::<tcp::Socket>(conn.handle);
                conn.output.is_empty() && socket.send_queue() == 0
            });
            if drained || t.wrapping_sub(since) > DRAIN_TICKS {
                println!("httpd: answered {} requests", c.requests);
                break EXIT_DONE;
            }
        }
        if s.idle_ticks != 0 && t.wrapping_sub(last_work) > s.idle_ticks {
            println!("httpd: no traffic for {} ticks; giving up", s.idle_ticks);
            break EXIT_IDLE;
        }
        if !work && t.wrapping_sub(last_work) > SPIN_TICKS {
            let delay = iface
                .poll_delay(now(), &sockets)
                .map_or(MAX_WAIT_TICKS, |d| {
                    d.total_micros().saturating_mul(TICKS_PER_MICROSECOND)
                });
            if delay > 0 {
                wait_for_work(delay.min(MAX_WAIT_TICKS));
            }
        }
    };
    println!(
        "httpd: {} requests, {} connections, {} bad, {} not found, {} bytes sent",
        c.requests, c.connections, c.bad_requests, c.not_found, c.bytes_sent
    );
    for (name, value) in [
        ("requests", c.requests),
        ("connections", c.connections),
        ("bad_requests", c.bad_requests),
    ] {
        // The names are valid metric names, so this cannot fail.
        let _ = guest_lib::hypercall::metric(name, value);
    }
    code
}
