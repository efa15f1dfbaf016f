//! The HTTP/1.1 server loop `httpd` and `ctl` share: smoltcp TCP over net port 0, several connections at once, persistent and pipelined requests, each answered by a [`Handler`], which may take a request's body piece by piece as it arrives.
//!
//! It announces its address with a gratuitous ARP at start (so a gateway
//! that learns addresses only from ARP, like an emulator's slirp, can
//! reach it), then serves until it has answered `requests` requests (exit
//! 0) or nothing happened for the idle timeout (exit 2).

use super::{MAX_HEAD, Method, Status};
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
use guest_lib::smoltcp::iface::{SocketHandle, SocketSet};
use guest_lib::smoltcp::socket::tcp;
use guest_lib::time::rdtsc;

use crate::nf::args::parse_cidr;

/// Exit code after `requests` answers.
pub const EXIT_DONE: i32 = 0;
/// Exit code for unusable arguments.
pub const EXIT_BAD_ARGS: i32 = 2;
/// Exit code after the idle timeout.
pub const EXIT_IDLE: i32 = 2;
/// Exit code when the port or the address cannot be set up.
pub const EXIT_NET: i32 = 3;

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

/// The server's arguments: `ip=A.B.C.D/N` (default 10.0.2.15/24),
/// `port=P` (80), `conns=N` (1..=16, 4), `requests=N` (0: never stop),
/// `idle=T` (TSC ticks, 20,000,000,000; 0: never).
pub struct Settings {
    ip: Ipv4Addr,
    prefix: u8,
    port: u16,
    conns: usize,
    requests: u64,
    idle_ticks: u64,
}

/// Reads the server's arguments from `text` (other words are ignored).
pub fn settings(text: &str) -> Result<Settings, String> {
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
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    /// Requests answered.
    pub requests: u64,
    /// Connections accepted.
    pub connections: u64,
    /// Requests that were not HTTP it reads.
    pub bad_requests: u64,
    /// Requests for nothing it has.
    pub not_found: u64,
    /// Bytes it sent.
    pub bytes_sent: u64,
}

/// One answer: its status, content type and body.
pub struct Reply {
    /// The status.
    pub status: Status,
    /// `text/html`, `application/json`, ...
    pub content_type: &'static str,
    /// The body (not sent for `HEAD`).
    pub body: String,
}

/// What a server answers.
pub trait Handler {
    /// The answer to `method path?query`, a request without a body;
    /// `counters` so far.
    fn answer(&mut self, method: Method, path: &str, query: &str, counters: &Counters) -> Reply;
    /// The answer to a request whose body came whole (through
    /// [`Handler::body_start`] and [`Handler::body`]).
    fn answer_body(&mut self, method: Method, path: &str, query: &str, c: &Counters) -> Reply {
        self.answer(method, path, query, c)
    }
    /// The body begun will not come whole: its connection closed, or it
    /// stopped sending for [`BODY_IDLE_TICKS`] (and was closed).
    fn body_abort(&mut self) {}
    /// The most body bytes `method path` may carry (0, the default: none).
    /// A request with a longer body is answered 413 (400 if it takes none)
    /// and its connection closed.
    fn body_limit(&self, _method: Method, _path: &str) -> u64 {
        0
    }
    /// A body of `len` bytes (1 up to [`Handler::body_limit`]) begins for
    /// `method path?query`; its bytes follow through [`Handler::body`],
    /// in order, then [`Handler::answer`] is asked.
    fn body_start(&mut self, _method: Method, _path: &str, _query: &str, _len: u64) {}
    /// The next bytes of the body begun.
    fn body(&mut self, _piece: &[u8]) {}
    /// Once a pass of the server loop, after the connections were served:
    /// `drained` says whether every answer was sent and acknowledged.
    /// Whether it did work (the loop does not wait then).
    fn tick(&mut self, _drained: &dyn Fn() -> bool) -> bool {
        false
    }
}

/// TSC ticks a request body may go without a byte before its connection
/// is closed (so one stalled client cannot hold the one body the handler
/// takes at a time).
pub const BODY_IDLE_TICKS: u64 = 2_000_000_000;

/// A request whose body is still arriving: what its answer needs.
struct Pending {
    method: Method,
    path: String,
    query: String,
    keep_alive: bool,
    /// Body bytes still to come.
    left: u64,
    /// When its last bytes came (TSC).
    last: u64,
}

/// One connection slot: its socket and what is pending on it.
struct Conn {
    handle: SocketHandle,
    input: Vec<u8>,
    output: Vec<u8>,
    counted: bool,
    closing: bool,
    /// The request whose body is arriving, if one is.
    pending: Option<Pending>,
}

/// Queues `reply` to a `method` request on `conn` (closing it after,
/// unless `keep_alive`).
fn respond(conn: &mut Conn, c: &mut Counters, reply: &Reply, method: Method, keep_alive: bool) {
    if reply.status == Status::NotFound {
        c.not_found += 1;
    }
    push_response(&mut conn.output, reply, method == Method::Head, keep_alive);
    conn.closing = !keep_alive;
}

/// Answers a request the server cannot read with `e`'s status and closes
/// the connection (what follows on it is not read).
fn refuse(conn: &mut Conn, c: &mut Counters, e: super::HttpError) {
    c.bad_requests += 1;
    let mut body = String::new();
    let _ = writeln!(body, "{e}");
    let reply = Reply {
        status: e.status(),
        content_type: "text/plain",
        body,
    };
    push_response(&mut conn.output, &reply, false, false);
    conn.input.clear();
    conn.closing = true;
}

fn push_response(out: &mut Vec<u8>, reply: &Reply, head_only: bool, keep_alive: bool) {
    let mut head = String::new();
    let _ = super::write_head(
        &mut head,
        reply.status,
        reply.content_type,
        reply.body.len(),
        keep_alive,
    );
    out.extend_from_slice(head.as_bytes());
    if !head_only {
        out.extend_from_slice(reply.body.as_bytes());
    }
}

/// Serves one connection slot for one pass; whether anything happened.
/// `body_busy`: some connection's request body is arriving (the handler
/// takes one at a time).
fn serve(
    conn: &mut Conn,
    socket: &mut tcp::Socket<'_>,
    (port, body_busy): (u16, &mut bool),
    c: &mut Counters,
    handler: &mut impl Handler,
) -> bool {
    let mut work = false;
    if !socket.is_open() {
        // Closed (or in TIME-WAIT): listen again for the next client.
        conn.input.clear();
        conn.output.clear();
        conn.counted = false;
        conn.closing = false;
        // A body cut short: the handler's next body begins afresh.
        if conn.pending.take().is_some() {
            *body_busy = false;
            handler.body_abort();
        }
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
        // A body arriving goes to the handler as it comes; its answer once
        // it is whole.
        if let Some(p) = conn.pending.as_mut() {
            let n = conn
                .input
                .len()
                .min(usize::try_from(p.left).unwrap_or(usize::MAX));
            let now = rdtsc();
            if n > 0 {
                handler.body(&conn.input[..n]);
                conn.input.drain(..n);
                p.left -= n as u64;
                p.last = now;
                work = true;
            }
            if p.left > 0 {
                if now.wrapping_sub(p.last) > BODY_IDLE_TICKS {
                    // Stalled: closed, so the next body can come.
                    conn.pending = None;
                    *body_busy = false;
                    handler.body_abort();
                    conn.input.clear();
                    socket.abort();
                    work = true;
                }
                break;
            }
            let Some(p) = conn.pending.take() else {
                break;
            };
            *body_busy = false;
            c.requests += 1;
            let reply = handler.answer_body(p.method, &p.path, &p.query, c);
            respond(conn, c, &reply, p.method, p.keep_alive);
            continue;
        }
        match super::parse_request(&conn.input) {
            Ok(None) => break,
            // One body at a time (the handler keeps one): another
            // connection's waits, unread, until it is whole.
            Ok(Some(r)) if r.body_len > 0 && *body_busy => break,
            Ok(Some(r)) if r.body_len > 0 => {
                let limit = handler.body_limit(r.method, r.path);
                if r.body_len > limit {
                    let e = if limit == 0 {
                        super::HttpError::HasBody
                    } else {
                        super::HttpError::BodyTooLarge
                    };
                    refuse(conn, c, e);
                    work = true;
                    continue;
                }
                // Counted once answered (so `requests=N` waits for it).
                *body_busy = true;
                handler.body_start(r.method, r.path, r.query, r.body_len);
                conn.pending = Some(Pending {
                    method: r.method,
                    path: r.path.into(),
                    query: r.query.into(),
                    keep_alive: r.keep_alive,
                    left: r.body_len,
                    last: rdtsc(),
                });
                conn.input.drain(..r.head_len);
                work = true;
            }
            Ok(Some(r)) => {
                c.requests += 1;
                let (method, keep) = (r.method, r.keep_alive);
                let reply = handler.answer(method, r.path, r.query, c);
                conn.input.drain(..r.head_len);
                respond(conn, c, &reply, method, keep);
                work = true;
            }
            Err(e) => {
                refuse(conn, c, e);
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

/// Whether every answer queued on `conns` was sent and acknowledged.
fn drained(conns: &[Conn], sockets: &SocketSet<'_>) -> bool {
    conns.iter().all(|conn| {
        let socket = sockets.get::<tcp::Socket>(conn.handle);
        conn.output.is_empty() && socket.send_queue() == 0
    })
}

/// Runs the server `tag` (its name in console lines) with settings `s`
/// over net port 0 until it is done; its exit code and counters.
pub fn run(
    info: &guest_lib::BootInfo,
    s: &Settings,
    tag: &str,
    handler: &mut impl Handler,
) -> (i32, Counters) {
    let mut c = Counters::default();
    let port = match NetPort::open(info, NET_PORT) {
        Ok(port) => port,
        Err(e) => {
            println!("{tag}: {e}");
            return (EXIT_NET, c);
        }
    };
    let mut dev = SmoltcpPort::new(port);
    let mac = dev.mac();
    let Some(mut iface) = dev.interface(u64::from(info.vm_index), s.ip, s.prefix) else {
        println!("{tag}: cannot set address {}/{}", s.ip, s.prefix);
        return (EXIT_NET, c);
    };
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
            pending: None,
        });
    }
    if let Err(e) = dev.announce(s.ip) {
        println!("{tag}: gratuitous ARP: {e}");
    }
    println!(
        "{tag}: serving http://{}:{}/ ({} connections at once), mac {:02x?}",
        s.ip, s.port, s.conns, mac
    );

    let mut last_work = rdtsc();
    let mut done_at: Option<u64> = None;
    let mut body_busy = false;
    let code = loop {
        let received = dev.stats().received;
        iface.poll(now(), &mut dev, &mut sockets);
        let mut work = dev.stats().received != received;
        for conn in &mut conns {
            let socket = sockets.get_mut::<tcp::Socket>(conn.handle);
            work |= serve(conn, socket, (s.port, &mut body_busy), &mut c, handler);
        }
        work |= handler.tick(&|| drained(&conns, &sockets));
        if let Some(e) = dev.take_error() {
            println!("{tag}: port {NET_PORT}: {e}");
        }
        let t = rdtsc();
        if work {
            last_work = t;
        }
        if s.requests != 0 && c.requests >= s.requests {
            let since = *done_at.get_or_insert(t);
            if drained(&conns, &sockets) || t.wrapping_sub(since) > DRAIN_TICKS {
                println!("{tag}: answered {} requests", c.requests);
                break EXIT_DONE;
            }
        }
        if s.idle_ticks != 0 && t.wrapping_sub(last_work) > s.idle_ticks {
            println!("{tag}: no traffic for {} ticks; giving up", s.idle_ticks);
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
    (code, c)
}
