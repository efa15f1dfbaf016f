//! A service run on the host: each named host's directory, the relay between the emulator's COM2 (a TCP connection Bochs makes at start) and the `corral` commands (a Unix socket in that directory), and the client side those commands use.
//!
//! The relay is the only peer of the hypervisor's control channel, so it
//! owns the command sequence numbers: a client sends one command frame
//! (its sequence number is ignored), the relay numbers it, writes it to
//! COM2 and streams back every answer under that number until `done` or
//! `error`. A client may also write raw bytes to the line (the hostile
//! channel tests do) and read a given number of answers back.

use crate::cargo_build::{target_dir, workspace_root};
use crate::error::{Error, Result};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};
use vmm_abi::control::{self, HookOn, Message, Next, next_frame};

/// The host name when none is given.
pub const DEFAULT_HOST: &str = "default";
/// How long a command waits for its answer from the hypervisor.
pub const ANSWER_WAIT: Duration = Duration::from_secs(60);
/// How long a client may take to send its request.
const CLIENT_WAIT: Duration = Duration::from_secs(5);
/// How often the relay looks for a new connection or a stop.
const POLL: Duration = Duration::from_millis(10);

const REQ_COMMAND: u8 = b'C';
const REQ_RAW: u8 = b'R';
/// A request to the relay: make sure the hypervisor streams events (the
/// relay appends them to the host's `events.jsonl`).
const REQ_WATCH: u8 = b'W';

/// A named host's files (under `target/corral/hosts/NAME`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostDir {
    /// The host's name (for a host reached through a control unikernel,
    /// its API's URL).
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// The URL of the control API commands go to instead of the relay
    /// (`--endpoint`), if any.
    pub endpoint: Option<String>,
}

impl HostDir {
    /// The directory of host `name` (checked: letters, digits, `-`, `_`).
    pub fn named(name: &str) -> Result<Self> {
        let ok = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(Error::new(format!(
                "`--host`: `{name}` is not a host name (1 to 32 letters, digits, `-` or `_`)"
            )));
        }
        Ok(HostDir {
            name: name.to_string(),
            dir: target_dir(&workspace_root()).join("hosts").join(name),
            endpoint: None,
        })
    }

    /// A host reached through the control API at `url` (a control
    /// unikernel's, `--endpoint`): commands go there, not to a relay.
    pub fn endpoint(url: &str) -> Result<Self> {
        crate::endpoint::authority(url)?;
        Ok(HostDir {
            name: url.to_string(),
            // No files: the host is not this machine's (`running` is false).
            dir: PathBuf::from("/nonexistent/corral-endpoint"),
            endpoint: Some(url.to_string()),
        })
    }

    /// The relay's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }
    /// Written once the hypervisor answered its first command.
    pub fn ready(&self) -> PathBuf {
        self.dir.join("ready")
    }
    /// The background run's output (build, consoles, summary).
    pub fn console(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    /// The background run's process id.
    pub fn pid(&self) -> PathBuf {
        self.dir.join("pid")
    }
    /// The background run's JSON report.
    pub fn report(&self) -> PathBuf {
        self.dir.join("report.json")
    }
    /// The background run's exit status, written when it ends.
    pub fn exit(&self) -> PathBuf {
        self.dir.join("exit")
    }
    /// The path of the manifest the host was brought up from (written by
    /// `up`; `hook attach` resolves its targets against it).
    pub fn manifest_note(&self) -> PathBuf {
        self.dir.join("manifest")
    }
    /// The events the hypervisor streamed since the first `corral
    /// events` (a JSON object a line).
    pub fn events(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }
    /// Answers nobody asked for (to a client that went away).
    pub fn control_log(&self) -> PathBuf {
        self.dir.join("control.log")
    }

    /// The background run's exit status, once it has ended.
    pub fn exit_status(&self) -> Option<i32> {
        std::fs::read_to_string(self.exit())
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Whether the host's run is still going: its process exists and has
    /// not written its exit status.
    pub fn running(&self) -> bool {
        let pid = std::fs::read_to_string(self.pid()).unwrap_or_default();
        let alive = !pid.trim().is_empty() && Path::new("/proc").join(pid.trim()).exists();
        alive && self.exit_status().is_none()
    }
}

/// Where a runtime hook is, as the host answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookAt {
    /// A packet hook on a link's direction.
    Link {
        /// The link's manifest index.
        link: u32,
        /// `control::DIR_A_TO_B` or `control::DIR_B_TO_A`.
        dir: u8,
    },
    /// A packet hook on a shared NIC's queue.
    Nic {
        /// The NIC's manifest index.
        nic: u32,
        /// `control::NIC_RX` or `control::NIC_TX`.
        dir: u8,
    },
    /// A VM's restart, exit or slice hook.
    Vm {
        /// The VM's name.
        vm: String,
        /// Its kind's number (`vmm_abi::hook::HookKind`).
        kind: u8,
    },
}

/// An answer, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The command was carried out.
    Done,
    /// It was not: why.
    Error(String),
    /// A VM of a `list`.
    Row {
        /// Manifest index.
        vm: u32,
        /// Name.
        name: String,
        /// `control::VM_*`.
        status: u8,
        /// Core (`control::NO_CORE`: none).
        core: u32,
        /// Restarts.
        restarts: u32,
        /// VM exits so far.
        exits: u64,
        /// Guest instructions so far.
        ran: u64,
    },
    /// The host's counters (`stats`).
    Stats {
        /// Bytes free for VMs.
        free: u64,
        /// VMs that have not ended.
        running: u32,
        /// Commands accepted.
        commands: u64,
        /// Errors answered.
        errors: u64,
    },
    /// A link's or NIC's counters (`stats`, after `Stats`).
    Flow {
        /// `control::FLOW_LINK` or `control::FLOW_NIC`.
        kind: u8,
        /// Manifest index.
        index: u32,
        /// A link's ends or a NIC's name.
        label: String,
        /// Frames, bytes and drops one way (a link's a to b, a NIC's in
        /// from the wire), then the other.
        counts: [u64; 6],
    },
    /// A core's roles and counters (`stats`, after the flows).
    Core {
        /// Its number.
        core: u32,
        /// `control::CORE_VMS`, `CORE_POLLS`, `CORE_CONTROL`, or'ed.
        role: u8,
        /// VMs running on it.
        vms: u32,
        /// VM exits, guest instructions, polling instructions.
        counts: [u64; 3],
    },
    /// Which VM a `logs` answer is about (its id, never given twice in a
    /// run) and the number of its next line.
    Head {
        /// The VM's id.
        id: u32,
        /// Its next line's number.
        next: u64,
    },
    /// A console line a VM printed (`logs`), with its number.
    Line {
        /// Its number among the VM's lines.
        seq: u64,
        /// The line.
        text: String,
    },
    /// A runtime hook's counters (`hook maps`, `hook detach`, a swap).
    Hook {
        /// Its name.
        name: String,
        /// Its place.
        on: HookAt,
        /// What runs it (`vmm_abi::control::ENGINE_*`).
        engine: u8,
        /// Runs, passed, not passed, faults, instructions.
        counts: [u64; 5],
    },
    /// One entry of a hook's map (`hook maps`).
    Entry {
        /// The map's index in the hook's table.
        map: u8,
        /// The core whose copy it is (per-core arrays), else 0.
        core: u32,
        /// The key's bytes.
        key: Vec<u8>,
        /// The value's bytes.
        value: Vec<u8>,
    },
    /// An event: a VM started, restarted or ended.
    Vm {
        /// Its id.
        id: u32,
        /// Its name.
        name: String,
        /// `control::EVENT_*`.
        event: u8,
        /// Its status (`control::VM_*`).
        status: u8,
        /// Its core (`control::NO_CORE`: none).
        core: u32,
        /// Its restarts so far.
        restarts: u32,
    },
    /// An event: a console line a VM printed.
    Console {
        /// Its id.
        id: u32,
        /// Its name.
        name: String,
        /// The line's number among the VM's.
        seq: u64,
        /// The line.
        text: String,
    },
    /// Anything else the hypervisor sent.
    Other(String),
}

impl Answer {
    fn of(msg: &Message<'_>) -> Self {
        match *msg {
            Message::Done => Answer::Done,
            Message::Error { text } => Answer::Error(text.to_string()),
            Message::VmRow {
                vm,
                name,
                status,
                core,
                restarts,
                exits,
                ran,
            } => Answer::Row {
                vm,
                name: name.to_string(),
                status,
                core,
                restarts,
                exits,
                ran,
            },
            Message::HostStats {
                free,
                running,
                commands,
                errors,
            } => Answer::Stats {
                free,
                running,
                commands,
                errors,
            },
            Message::FlowRow {
                kind,
                index,
                label,
                in_frames,
                in_bytes,
                in_drops,
                out_frames,
                out_bytes,
                out_drops,
            } => Answer::Flow {
                kind,
                index,
                label: label.to_string(),
                counts: [
                    in_frames, in_bytes, in_drops, out_frames, out_bytes, out_drops,
                ],
            },
            Message::CoreRow {
                core,
                role,
                vms,
                exits,
                ran,
                busy,
            } => Answer::Core {
                core,
                role,
                vms,
                counts: [exits, ran, busy],
            },
            Message::LogLine { seq, text } => Answer::Line {
                seq,
                text: text.to_string(),
            },
            Message::LogHead { id, next } => Answer::Head { id, next },
            Message::HookRow {
                name,
                on,
                engine,
                runs,
                pass,
                dropped,
                faults,
                insns,
            } => Answer::Hook {
                name: name.to_string(),
                on: match on {
                    HookOn::Link { link, dir } => HookAt::Link { link, dir },
                    HookOn::Nic { nic, dir } => HookAt::Nic { nic, dir },
                    HookOn::Vm { vm, kind } => HookAt::Vm {
                        vm: vm.to_string(),
                        kind,
                    },
                },
                engine,
                counts: [runs, pass, dropped, faults, insns],
            },
            Message::MapEntry {
                map,
                core,
                key,
                value,
            } => Answer::Entry {
                map,
                core,
                key: key.to_vec(),
                value: value.to_vec(),
            },
            Message::VmEvent {
                vm,
                name,
                event,
                status,
                core,
                restarts,
            } => Answer::Vm {
                id: vm,
                name: name.to_string(),
                event,
                status,
                core,
                restarts,
            },
            Message::Console {
                vm,
                name,
                seq,
                text,
            } => Answer::Console {
                id: vm,
                name: name.to_string(),
                seq,
                text: text.to_string(),
            },
            other => Answer::Other(format!("{other:?}")),
        }
    }

    /// Whether it ends a command's answers.
    pub fn is_last(&self) -> bool {
        matches!(self, Answer::Done | Answer::Error(_))
    }
}

pub use vmm_abi::control::status_name;

/// Frames read from a byte stream, one at a time.
#[derive(Default)]
struct Frames {
    buf: Vec<u8>,
}

impl Frames {
    /// Adds bytes; returns every whole frame now complete, as
    /// (sequence number, answer); bytes that are not frames are skipped.
    fn push(&mut self, bytes: &[u8]) -> Vec<(u32, Answer)> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            match next_frame(&self.buf) {
                Next::NeedMore => break,
                Next::Frame(f, len) => {
                    out.push((f.seq, Answer::of(&f.msg)));
                    self.buf.drain(..len);
                }
                Next::Bad(_, skip) => {
                    self.buf.drain(..skip.min(self.buf.len()));
                }
            }
        }
        out
    }
}

fn frame(msg: &Message<'_>, seq: u32) -> Result<Vec<u8>> {
    let mut out = vec![0u8; control::MAX_FRAME];
    let n = control::encode(msg, seq, &mut out)
        .map_err(|e| Error::new(format!("cannot encode the command: {e}")))?;
    out.truncate(n);
    Ok(out)
}

/// The relay of one service run: listening for the emulator's COM2 and
/// for commands until dropped.
pub struct Relay {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Relay {
    /// Listens on 127.0.0.1 (a free port, for COM2) and on the host's
    /// socket; serves in a thread of its own.
    pub fn start(host: &HostDir) -> Result<Self> {
        std::fs::create_dir_all(&host.dir)
            .map_err(|e| Error::new(format!("cannot create {}: {e}", host.dir.display())))?;
        let tcp = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| Error::new(format!("cannot listen on 127.0.0.1 for COM2: {e}")))?;
        let port = tcp
            .local_addr()
            .map_err(|e| Error::new(format!("cannot read the COM2 port: {e}")))?
            .port();
        for stale in [host.socket(), host.ready(), host.exit(), host.control_log()] {
            let _ = std::fs::remove_file(stale);
        }
        let unix = UnixListener::bind(host.socket()).map_err(|e| {
            Error::new(format!("cannot listen on {}: {e}", host.socket().display()))
        })?;
        for l in [&tcp as &dyn SetNonblocking, &unix] {
            l.nonblocking()?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let host = host.clone();
        thread::spawn(move || serve(&host, &tcp, &unix, &flag));
        Ok(Relay { port, stop })
    }

    /// The TCP port COM2 connects to.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

trait SetNonblocking {
    fn nonblocking(&self) -> Result<()>;
}

impl SetNonblocking for TcpListener {
    fn nonblocking(&self) -> Result<()> {
        self.set_nonblocking(true)
            .map_err(|e| Error::new(format!("cannot set up the COM2 listener: {e}")))
    }
}

impl SetNonblocking for UnixListener {
    fn nonblocking(&self) -> Result<()> {
        self.set_nonblocking(true)
            .map_err(|e| Error::new(format!("cannot set up the control socket: {e}")))
    }
}

/// The relay's thread: waits for the emulator, checks the channel with a
/// `list`, marks the host ready, then serves one client at a time.
fn serve(host: &HostDir, tcp: &TcpListener, unix: &UnixListener, stop: &AtomicBool) {
    // An emulator that dies while it starts is started again by the run,
    // and connects again: wait for one whose hypervisor answers.
    let mut relay = loop {
        let Some(line) = accept_line(tcp, host, stop) else {
            return;
        };
        let mut relay = line;
        if let Ok(a) = relay.command(&Message::List, &mut |_| {}, stop)
            && a.last() == Some(&Answer::Done)
        {
            let _ = std::fs::write(host.ready(), "");
            break relay;
        }
        if stop.load(Ordering::Acquire) {
            return;
        }
    };
    relay.wait = ANSWER_WAIT;
    while !stop.load(Ordering::Acquire) {
        match unix.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                let _ = relay.client(client, stop);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                relay.drain();
                thread::sleep(POLL);
            }
            Err(_) => return,
        }
    }
}

/// An event as a line of the host's events file: `{"event": "started" |
/// "restarted" | "ended", "vm", "id", "status", "core", "restarts"}` or
/// `{"event": "line", "vm", "id", "seq", "text"}`; `None` for an answer
/// that is not an event.
pub fn event_json(a: &Answer) -> Option<serde_json::Value> {
    Some(match a {
        Answer::Vm {
            id,
            name,
            event,
            status,
            core,
            restarts,
        } => serde_json::json!({
            "event": control::event_name(*event),
            "vm": name,
            "id": id,
            "status": status_name(*status),
            "core": (*core != control::NO_CORE).then_some(*core),
            "restarts": restarts,
        }),
        Answer::Console {
            id,
            name,
            seq,
            text,
        } => serde_json::json!({
            "event": "line",
            "vm": name,
            "id": id,
            "seq": seq,
            "text": text,
        }),
        _ => return None,
    })
}

/// Asks host `host`'s relay to have the hypervisor stream events into
/// the host's events file (once; later calls find it done).
pub fn watch(host: &HostDir) -> Result<()> {
    let reply = exchange(host, &[REQ_WATCH])?;
    match Frames::default().push(&reply).pop() {
        Some((_, Answer::Done)) => Ok(()),
        Some((_, Answer::Error(e))) => Err(Error::new(e)),
        _ => Err(Error::new(format!(
            "host `{}` closed the connection before answering",
            host.name
        ))),
    }
}

/// The emulator's next COM2 connection, as a fresh line (sequence numbers
/// from 0, as a freshly booted hypervisor expects).
fn accept_line(tcp: &TcpListener, host: &HostDir, stop: &AtomicBool) -> Option<Line> {
    let line = loop {
        if stop.load(Ordering::Acquire) {
            return None;
        }
        match tcp.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(_) => return None,
        }
    };
    let _ = line.set_nonblocking(false);
    let reader = line.try_clone().ok()?;
    let (tx, answers) = mpsc::channel();
    thread::spawn(move || read_line(reader, &tx));
    Some(Line {
        out: line,
        answers,
        next_seq: 0,
        log: host.control_log(),
        events: host.events(),
        watch: None,
        // The first answer comes once the hypervisor has booted and its
        // control core serves the line: wait as long as the run lasts.
        wait: Duration::from_secs(crate::toml_manifest::MAX_TIMEOUT_SECS),
    })
}

/// Reads COM2's bytes and passes each whole frame on.
fn read_line(mut s: TcpStream, tx: &mpsc::Sender<(u32, Answer)>) {
    let mut frames = Frames::default();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                for f in frames.push(&buf[..n]) {
                    if tx.send(f).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// The relay's end of the control line.
struct Line {
    out: TcpStream,
    answers: Receiver<(u32, Answer)>,
    next_seq: u32,
    log: PathBuf,
    /// The host's events file, and the `watch` whose number events come
    /// under once one was answered.
    events: PathBuf,
    watch: Option<u32>,
    /// How long an answer may take.
    wait: Duration,
}

impl Line {
    /// Sends `msg` under the next sequence number and passes each answer
    /// to `each` until the last; returns them all.
    fn command(
        &mut self,
        msg: &Message<'_>,
        each: &mut dyn FnMut(&Answer),
        stop: &AtomicBool,
    ) -> Result<Vec<Answer>> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        // Answers nobody waits for any more (to raw bytes) are not this
        // command's.
        while let Ok((s, a)) = self.answers.try_recv() {
            self.note(s, &a);
        }
        self.write(&frame(msg, seq)?)?;
        let mut got = Vec::new();
        let start = Instant::now();
        loop {
            let (s, a) = self.next_answer(start, stop)?;
            if s != seq {
                self.note(s, &a);
                continue;
            }
            each(&a);
            let last = a.is_last();
            got.push(a);
            if last {
                return Ok(got);
            }
        }
    }

    fn next_answer(&mut self, start: Instant, stop: &AtomicBool) -> Result<(u32, Answer)> {
        loop {
            if stop.load(Ordering::Acquire) {
                return Err(Error::new("the run ended"));
            }
            let left = self.wait.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(Error::new(format!(
                    "no answer from the hypervisor within {} s",
                    self.wait.as_secs()
                )));
            }
            match self
                .answers
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(a) => return Ok(a),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::new("the emulator closed the control line"));
                }
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| Error::new(format!("cannot write to the control line: {e}")))
    }

    fn note(&self, seq: u32, a: &Answer) {
        let event = event_json(a).filter(|_| self.watch == Some(seq));
        let (path, text) = match event {
            Some(json) => (&self.events, json.to_string()),
            None => (&self.log, format!("{seq}: {a:?}")),
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{text}");
        }
    }

    /// Files what came on the line while no command waited (events).
    fn drain(&self) {
        while let Ok((s, a)) = self.answers.try_recv() {
            self.note(s, &a);
        }
    }

    /// Makes the hypervisor stream events (once per line).
    fn watch(&mut self, stop: &AtomicBool) -> Result<()> {
        if self.watch.is_some() {
            return Ok(());
        }
        let seq = self.next_seq;
        let got = self.command(&Message::Watch, &mut |_| {}, stop)?;
        match got.last() {
            Some(Answer::Done) => {
                self.watch = Some(seq);
                Ok(())
            }
            Some(Answer::Error(e)) => Err(Error::new(e.clone())),
            _ => Err(Error::new("the hypervisor did not answer `watch`")),
        }
    }

    /// Serves one client: a command, or raw bytes and a number of answers.
    fn client(&mut self, mut c: UnixStream, stop: &AtomicBool) -> Result<()> {
        // A client that never finishes its request does not hold the line.
        c.set_read_timeout(Some(CLIENT_WAIT))
            .map_err(|e| Error::new(format!("cannot set up the client: {e}")))?;
        let mut req = Vec::new();
        c.read_to_end(&mut req)
            .map_err(|e| Error::new(format!("cannot read the request: {e}")))?;
        let send = |c: &mut UnixStream, seq: u32, a: &Answer| {
            let bytes = encode_answer(a, seq);
            let _ = c.write_all(&bytes);
        };
        match req.split_first() {
            Some((&REQ_COMMAND, rest)) => {
                let Next::Frame(f, _) = next_frame(rest) else {
                    send(&mut c, 0, &Answer::Error("not a command frame".into()));
                    return Ok(());
                };
                let result = self.command(&f.msg, &mut |a| send(&mut c, 0, a), stop);
                if let Err(e) = result {
                    send(&mut c, 0, &Answer::Error(format!("relay: {e}")));
                }
            }
            Some((&REQ_WATCH, [])) => match self.watch(stop) {
                Ok(()) => send(&mut c, 0, &Answer::Done),
                Err(e) => send(&mut c, 0, &Answer::Error(format!("relay: {e}"))),
            },
            Some((&REQ_RAW, rest)) if rest.len() >= 4 => {
                let want = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                let _ = c.write_all(&self.next_seq.to_le_bytes());
                self.write(&rest[4..])?;
                // A whole frame among the bytes under the number the relay
                // would give next is the next one the line takes: the
                // relay numbers on after it, so its own commands are not
                // refused as replays (a frame numbered otherwise is refused
                // by the line and moves nothing).
                let mut at = 0;
                while at < rest.len() - 4 {
                    match next_frame(&rest[4 + at..]) {
                        Next::Frame(f, len) => {
                            if f.seq == self.next_seq {
                                self.next_seq = f.seq.wrapping_add(1);
                            }
                            at += len;
                        }
                        Next::Bad(_, skip) => at += skip.max(1),
                        Next::NeedMore => break,
                    }
                }
                let start = Instant::now();
                let mut got = 0;
                while got < want {
                    match self.next_answer(start, stop) {
                        // Events are filed, not answers to these bytes.
                        Ok((seq, a)) if self.watch == Some(seq) => self.note(seq, &a),
                        Ok((seq, a)) => {
                            send(&mut c, seq, &a);
                            got += 1;
                        }
                        Err(e) => {
                            send(&mut c, 0, &Answer::Error(format!("relay: {e}")));
                            break;
                        }
                    }
                }
            }
            _ => send(
                &mut c,
                0,
                &Answer::Error("relay: an unknown request".into()),
            ),
        }
        Ok(())
    }
}

fn encode_answer(a: &Answer, seq: u32) -> Vec<u8> {
    let msg = match a {
        Answer::Done => Message::Done,
        Answer::Error(t) | Answer::Other(t) => Message::Error { text: t },
        Answer::Row {
            vm,
            name,
            status,
            core,
            restarts,
            exits,
            ran,
        } => Message::VmRow {
            vm: *vm,
            name,
            status: *status,
            core: *core,
            restarts: *restarts,
            exits: *exits,
            ran: *ran,
        },
        Answer::Line { seq, text } => Message::LogLine { seq: *seq, text },
        Answer::Vm {
            id,
            name,
            event,
            status,
            core,
            restarts,
        } => Message::VmEvent {
            vm: *id,
            name,
            event: *event,
            status: *status,
            core: *core,
            restarts: *restarts,
        },
        Answer::Console {
            id,
            name,
            seq,
            text,
        } => Message::Console {
            vm: *id,
            name,
            seq: *seq,
            text,
        },
        Answer::Head { id, next } => Message::LogHead {
            id: *id,
            next: *next,
        },
        Answer::Hook {
            name,
            on,
            engine,
            counts: [runs, pass, dropped, faults, insns],
        } => Message::HookRow {
            name,
            on: match on {
                HookAt::Link { link, dir } => HookOn::Link {
                    link: *link,
                    dir: *dir,
                },
                HookAt::Nic { nic, dir } => HookOn::Nic {
                    nic: *nic,
                    dir: *dir,
                },
                HookAt::Vm { vm, kind } => HookOn::Vm { vm, kind: *kind },
            },
            engine: *engine,
            runs: *runs,
            pass: *pass,
            dropped: *dropped,
            faults: *faults,
            insns: *insns,
        },
        Answer::Entry {
            map,
            core,
            key,
            value,
        } => Message::MapEntry {
            map: *map,
            core: *core,
            key,
            value,
        },
        Answer::Stats {
            free,
            running,
            commands,
            errors,
        } => Message::HostStats {
            free: *free,
            running: *running,
            commands: *commands,
            errors: *errors,
        },
        Answer::Core {
            core,
            role,
            vms,
            counts: [exits, ran, busy],
        } => Message::CoreRow {
            core: *core,
            role: *role,
            vms: *vms,
            exits: *exits,
            ran: *ran,
            busy: *busy,
        },
        Answer::Flow {
            kind,
            index,
            label,
            counts:
                [
                    in_frames,
                    in_bytes,
                    in_drops,
                    out_frames,
                    out_bytes,
                    out_drops,
                ],
        } => Message::FlowRow {
            kind: *kind,
            index: *index,
            label,
            in_frames: *in_frames,
            in_bytes: *in_bytes,
            in_drops: *in_drops,
            out_frames: *out_frames,
            out_bytes: *out_bytes,
            out_drops: *out_drops,
        },
    };
    frame(&msg, seq).unwrap_or_default()
}

fn connect(host: &HostDir) -> Result<UnixStream> {
    if !host.running() {
        return Err(Error::new(format!(
            "host `{}` is not up (start it with `corral up MANIFEST --host {}`)",
            host.name, host.name
        )));
    }
    UnixStream::connect(host.socket()).map_err(|e| {
        Error::new(format!(
            "cannot reach host `{}` at {}: {e}",
            host.name,
            host.socket().display()
        ))
    })
}

fn exchange(host: &HostDir, request: &[u8]) -> Result<Vec<u8>> {
    let mut s = connect(host)?;
    s.write_all(request)
        .and_then(|()| s.shutdown(std::net::Shutdown::Write))
        .map_err(|e| Error::new(format!("cannot send to host `{}`: {e}", host.name)))?;
    let mut reply = Vec::new();
    s.set_read_timeout(Some(ANSWER_WAIT + Duration::from_secs(5)))
        .and_then(|()| s.read_to_end(&mut reply))
        .map_err(|e| Error::new(format!("no answer from host `{}`: {e}", host.name)))?;
    Ok(reply)
}

/// Sends `msg` to host `host`'s hypervisor; its answers, the last one
/// `Done` or `Error`.
pub fn send(host: &HostDir, msg: &Message<'_>) -> Result<Vec<Answer>> {
    if let Some(url) = &host.endpoint {
        return crate::endpoint::send(url, msg);
    }
    let mut req = vec![REQ_COMMAND];
    req.extend(frame(msg, 0)?);
    let reply = exchange(host, &req)?;
    let got: Vec<Answer> = Frames::default()
        .push(&reply)
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    if !got.last().is_some_and(Answer::is_last) {
        return Err(Error::new(format!(
            "host `{}` closed the connection before the answer was complete",
            host.name
        )));
    }
    Ok(got)
}

/// Writes `bytes` as they are to host `host`'s control line and reads
/// `answers` answers back: the sequence number the relay would use next,
/// and each answer with its sequence number.
pub fn send_raw(host: &HostDir, bytes: &[u8], answers: u32) -> Result<(u32, Vec<(u32, Answer)>)> {
    let mut req = vec![REQ_RAW];
    req.extend(answers.to_le_bytes());
    req.extend(bytes);
    let reply = exchange(host, &req)?;
    if reply.len() < 4 {
        return Err(Error::new(format!(
            "host `{}` closed the connection without an answer",
            host.name
        )));
    }
    let next = u32::from_le_bytes([reply[0], reply[1], reply[2], reply[3]]);
    Ok((next, Frames::default().push(&reply[4..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_checked() {
        assert!(
            HostDir::named("lab-1")
                .unwrap()
                .dir
                .ends_with("hosts/lab-1")
        );
        for bad in ["", "a/b", "..", "x y", &"n".repeat(33)] {
            let e = HostDir::named(bad).unwrap_err().to_string();
            assert!(e.contains("is not a host name"), "{e}");
        }
    }

    #[test]
    fn frames_split_across_reads_and_junk_between_them() {
        let mut f = Frames::default();
        let a = frame(&Message::Done, 3).unwrap();
        let b = frame(
            &Message::Error {
                text: "no VM named x",
            },
            4,
        )
        .unwrap();
        let mut bytes = a.clone();
        bytes.extend(b"junk");
        bytes.extend(&b);
        let (head, tail) = bytes.split_at(5);
        assert_eq!(f.push(head), vec![]);
        assert_eq!(
            f.push(tail),
            vec![
                (3, Answer::Done),
                (4, Answer::Error("no VM named x".into()))
            ]
        );
    }

    #[test]
    fn answers_survive_the_relay_encoding() {
        let row = Answer::Row {
            vm: 2,
            name: "web-2".into(),
            status: control::VM_STOPPED,
            core: 1,
            restarts: 4,
            exits: 77,
            ran: 1 << 40,
        };
        let stats = Answer::Stats {
            free: 1 << 30,
            running: 2,
            commands: 9,
            errors: 1,
        };
        let flow = Answer::Flow {
            kind: control::FLOW_NIC,
            index: 0,
            label: "uplink".into(),
            counts: [1, 2, 3, 4, 5, 6],
        };
        let started = Answer::Vm {
            id: 130,
            name: "web-130".into(),
            event: control::EVENT_STARTED,
            status: control::VM_RUNNING,
            core: 2,
            restarts: 0,
        };
        let line = Answer::Console {
            id: 130,
            name: "web-130".into(),
            seq: 3,
            text: "hello \"there\"".into(),
        };
        let core = Answer::Core {
            core: 1,
            role: control::CORE_VMS | control::CORE_POLLS,
            vms: 3,
            counts: [10, 20, 30],
        };
        for a in [
            row,
            stats,
            flow,
            core,
            started.clone(),
            line.clone(),
            Answer::Done,
            Answer::Error("x".into()),
        ] {
            let bytes = encode_answer(&a, 9);
            assert_eq!(Frames::default().push(&bytes), vec![(9, a)]);
        }
        assert_eq!(status_name(control::VM_STOPPED), "stopped");
        // Events as the events file holds them, and as `corral events`
        // shows them.
        let v = event_json(&started).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"event": "started", "vm": "web-130", "id": 130,
                "status": "running", "core": 2, "restarts": 0})
        );
        assert_eq!(
            crate::host_cmd::readable_event(&v),
            "web-130 | -- started (id 130) on core 2"
        );
        let v = event_json(&line).unwrap();
        assert_eq!(v["text"], "hello \"there\"");
        assert_eq!(
            crate::host_cmd::readable_event(&v),
            "web-130 | hello \"there\""
        );
        let ended = Answer::Vm {
            id: 4,
            name: "db".into(),
            event: control::EVENT_ENDED,
            status: control::VM_KILLED,
            core: control::NO_CORE,
            restarts: 2,
        };
        let v = event_json(&ended).unwrap();
        assert_eq!(v["core"], serde_json::Value::Null);
        assert_eq!(crate::host_cmd::readable_event(&v), "db | -- ended: killed");
        assert_eq!(event_json(&Answer::Done), None);
    }
}
