//! `ctl`: the control API of a running Corral host as HTTP/JSON on net port 0, for a VM the manifest grants `caps = ["control"]`: each request becomes a control-protocol command handed to the hypervisor by hypercall, and its answer a JSON document (documented in `images/openapi/control.yaml`).
//!
//! | request | command | answer |
//! |---|---|---|
//! | `GET /v1/vms` | `list` | `200`, an array of VMs |
//! | `GET /v1/vms/NAME` | `list` | `200`, the VM; `404` |
//! | `POST /v1/vms/NAME/stop` | `stop` | `200 {"done":true}`; `404`, `409 {"error":...}` |
//! | `POST /v1/vms/NAME/restart` | `restart` | as `stop` |
//! | `POST /v1/vms/NAME/tune?budget=N` or `?slice=N` | `tune` | as `stop`; `400` without one number |
//! | `POST /v1/entries/ENTRY/start[?name=N][&args=TEXT][&memory=BYTES]` | `start` (`args` percent-encoded) | as `stop`; `400` for a bad escape or memory |
//! | `POST /v1/entries/ENTRY/scale?count=N` | `scale` | as `stop`; `400` without a count |
//! | `GET /v1/stats` | `stats` | `200`, the host's counters and each link's and NIC's |
//! | `POST /v1/links?a=VM.PORT&b=VM.PORT` | `link attach` | `200`, the new link (as a `stats` flow); `404`, `409`; `400` without both ports |
//! | `DELETE /v1/links?a=VM.PORT&b=VM.PORT` | `link detach` | `200`, the link's final counters; as `POST` |
//! | `GET /v1/vms/NAME/logs[?from=N]` | `logs` | `200`, the VM's id, its next line's number and the lines the hypervisor keeps from line N on; `404` |
//! | `GET /v1/hooks/NAME` | `hook maps` | `200`, a runtime or manifest hook's place, engine, counters and map entries that are not all zero; `404`, `409` |
//! | `DELETE /v1/hooks/NAME` | `hook detach` | `200`, a runtime hook's final counters; as `GET` |
//! | `POST /v1/hooks/NAME?link=L&dir=D` (or `nic=N&dir=D`, `vm=VM&kind=K`), body: a map count byte, 16-byte map definitions, 8-byte instructions | `hook attach` (begin, chunks, commit) | `200 {"name":...,"hook":HOOK,"replaced":HOOK\|null}` (`hook`: the new hook's row, with its engine); `400` for a bad place or body, `409` refused (the verifier's words) |
//! | `POST /v1/images/NAME`, body: the ELF file | image upload (begin, a chunk per 1,000 bytes as they arrive, commit; a body cut short: a commit that drops it) | `200 {"done":true}`; `409` refused |
//! | `POST /v1/images/IMAGE/start?name=VM[&args=TEXT][&memory=BYTES]` | `start --image` | as `stop`; `400` without a name |
//! | `GET /v1/events[?from=N]` | (`watch`, sent once at start) | `200`, the events kept from number N on (VMs started, restarted, ended; their console lines), the log's `boot` (another after a restart), the first number kept and the next; `400`; `503` without a `watch` |
//! | `POST /v1/end` | `end`, once every answer is sent (at most 2,000,000,000 ticks later) | `202 {"ending":true}`: every VM stops, the report is written where the host runs, the machine powers off |
//!
//! A name too long to be a command's is `400`; no answer from the
//! hypervisor within its bound, `503`. The API has no authentication:
//! serve it only where the operator's clients are (slirp's forwards bind
//! 127.0.0.1).
//!
//! Arguments: the HTTP server's (`images::http::server`: `ip=`, `port=`,
//! `conns=`, `requests=`, `idle=`). Exit codes as `httpd`'s. A VM without
//! the capability is stopped by the hypervisor at its first call.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;
use guest_lib::hypercall::{control_recv, control_send, wait_for_work};
use guest_lib::println;
use guest_lib::time::rdtsc;
use images::events::{EventLog, json_str};
use images::http::server::{self, Counters, Handler, Reply};
use images::http::{Method, Status, percent_decoded, query_value};
use vmm_abi::control::{
    self, FLOW_LINK, HookOn, MAX_FRAME, Message, NO_CORE, Next, next_frame, status_name,
};
use vmm_abi::hook::insn::INSN_SIZE;
use vmm_abi::hook::map::MAP_DEF_SIZE;
use vmm_abi::hook::{MAX_INSNS, MAX_MAPS};

guest_lib::entry!(ctl);

/// Ticks a command may take to be answered before the request fails.
const ANSWER_TICKS: u64 = 5_000_000_000;
/// Ticks to wait in the hypervisor between looks for answer bytes.
const POLL_TICKS: u64 = 200_000;
/// Events kept for `GET /v1/events` (the latest; a reader that falls
/// further behind is told how many it missed).
const EVENTS_KEPT: usize = 512;
/// Most bytes the kept events take (a console line escaped may be long).
const EVENTS_BYTES: usize = 256 * 1024;
/// Most events, and most bytes of them, one `GET /v1/events` answer
/// carries (the reader asks again from its `next`).
const EVENTS_PER_ANSWER: usize = 128;
const EVENTS_ANSWER_BYTES: usize = 32 * 1024;
/// Ticks `POST /v1/end` waits for every answer to be sent and
/// acknowledged before it ends the run all the same (a client that stopped
/// reading does not hold it), and how often it tries the `end`.
const END_GRACE_TICKS: u64 = 2_000_000_000;
const END_TRIES: u32 = 3;

/// An answer frame, owned.
enum Got {
    Row {
        vm: u32,
        name: String,
        status: u8,
        core: u32,
        restarts: u32,
        exits: u64,
        ran: u64,
    },
    Stats([u64; 4]),
    Flow {
        kind: u8,
        index: u32,
        label: String,
        counts: [u64; 6],
    },
    Core {
        core: u32,
        role: u8,
        vms: u32,
        counts: [u64; 3],
    },
    Head {
        id: u32,
        next: u64,
    },
    Line {
        seq: u64,
        text: String,
    },
    /// A hook's row: its name, its place as JSON, its engine's name, its
    /// counters (runs, passed, not passed, faults, instructions).
    Hook {
        name: String,
        on: String,
        engine: &'static str,
        counts: [u64; 5],
    },
    Entry {
        map: u8,
        core: u32,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Done,
    Error(String),
}

/// Most body bytes a hook upload carries: its map table (a count byte,
/// 16 bytes per map) and its instructions.
const MAX_HOOK_BODY: u64 = (1 + MAX_MAPS * MAP_DEF_SIZE + MAX_INSNS * INSN_SIZE) as u64;

/// The handler: the next command's sequence number, the answer bytes not
/// yet parsed, and the body of the request being read.
struct Ctl {
    next_seq: u32,
    input: Vec<u8>,
    body: Body,
    /// The sequence number of its `watch`: frames under it are events.
    watch: Option<u32>,
    /// The events kept.
    events: EventLog,
    /// `POST /v1/end` was answered (when, TSC) and `end` tried so many
    /// times: it goes once the answer is out (or after [`END_GRACE_TICKS`]).
    ending: Option<(u64, u32)>,
}

/// The body of the request being read.
enum Body {
    /// None (or one no route takes).
    None,
    /// A hook upload's bytes, kept whole (at most [`MAX_HOOK_BODY`]).
    Hook(Vec<u8>),
    /// An image upload, sent on as it comes: its name, the bytes short of
    /// a whole chunk, the next chunk's offset, and the refusal that stopped
    /// it.
    Image {
        name: String,
        carry: Vec<u8>,
        offset: u32,
        failed: Option<Reply>,
    },
}

impl Ctl {
    /// Sends `msg` and collects its answers up to `done` or `error`. A
    /// command that cannot be a frame (a name too long) is refused here;
    /// its number is used only once the whole frame was taken, so the
    /// channel's sequence never skips.
    fn exchange(&mut self, msg: &Message<'_>) -> Result<Vec<Got>, Fail> {
        let seq = self.next_seq;
        let mut frame = [0u8; MAX_FRAME];
        let n = control::encode(msg, seq, &mut frame).map_err(|e| Fail::Bad(e.to_string()))?;
        let start = rdtsc();
        let timed_out = || rdtsc().wrapping_sub(start) > ANSWER_TICKS;
        let mut sent = 0;
        while sent < n {
            let k = control_send(&frame[sent..n]);
            sent += k;
            if k == 0 {
                if timed_out() {
                    return Err(Fail::Unavailable(
                        "the control channel took no command".into(),
                    ));
                }
                wait_for_work(POLL_TICKS);
            }
        }
        self.next_seq = self.next_seq.wrapping_add(1);
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            if self.take_frames(Some(seq), &mut got) {
                return Ok(got);
            }
            let k = control_recv(&mut buf);
            self.input.extend_from_slice(&buf[..k]);
            if k == 0 {
                if timed_out() {
                    return Err(Fail::Unavailable("no answer from the hypervisor".into()));
                }
                wait_for_work(POLL_TICKS);
            }
        }
    }

    /// Takes every whole frame received so far: events are kept, the
    /// answers to command `seq` go into `got`, anything else (an answer to
    /// a command given up on, bytes that are no frame) is dropped. Whether
    /// `seq`'s last answer (done or an error) came; frames after it wait.
    fn take_frames(&mut self, seq: Option<u32>, got: &mut Vec<Got>) -> bool {
        loop {
            match next_frame(&self.input) {
                Next::NeedMore => return false,
                Next::Bad(_, skip) => {
                    self.input.drain(..skip.min(self.input.len()));
                }
                Next::Frame(f, len) => {
                    let last = matches!(f.msg, Message::Done | Message::Error { .. });
                    let mine = Some(f.seq) == seq;
                    if mine && let Some(g) = owned(&f.msg) {
                        got.push(g);
                    } else if Some(f.seq) == self.watch {
                        self.events.note(&f.msg);
                    }
                    self.input.drain(..len);
                    if mine && last {
                        return true;
                    }
                }
            }
        }
    }
}

impl Ctl {
    /// Takes what the hypervisor sent while no command waited: events are
    /// kept, anything else (an answer to a command given up on) dropped.
    /// Whether anything came.
    fn take_events(&mut self) -> bool {
        let mut buf = [0u8; 2048];
        let mut came = false;
        loop {
            let k = control_recv(&mut buf);
            if k == 0 {
                break;
            }
            came = true;
            self.input.extend_from_slice(&buf[..k]);
        }
        self.take_frames(None, &mut Vec::new());
        came
    }

    /// `GET /v1/events?from=N`: the events kept from number N on (at most
    /// [`EVENTS_PER_ANSWER`] and [`EVENTS_ANSWER_BYTES`]), with the log's
    /// boot, the first number kept and the next; 503 if the hypervisor
    /// took no `watch`.
    fn events(&mut self, query: &str) -> Reply {
        if self.watch.is_none() {
            return error(
                Status::Unavailable,
                "the hypervisor took no `watch` from this VM: no events (see its console)",
            );
        }
        let from = match query_value(query, "from").map(str::parse::<u64>) {
            None => 0,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                return error(
                    Status::BadRequest,
                    "`from` is not an event number (`?from=17`)",
                );
            }
        };
        self.take_events();
        reply(
            Status::Ok,
            self.events
                .answer(from, EVENTS_PER_ANSWER, EVENTS_ANSWER_BYTES),
        )
    }
}

/// Why a command got no answer.
enum Fail {
    /// It cannot be a command (a name too long for a frame): 400.
    Bad(String),
    /// The hypervisor did not take it or answer in time: 503.
    Unavailable(String),
}

impl Fail {
    fn reply(&self) -> Reply {
        match self {
            Fail::Bad(e) => error(Status::BadRequest, e),
            Fail::Unavailable(e) => error(Status::Unavailable, e),
        }
    }
}

fn owned(m: &Message<'_>) -> Option<Got> {
    Some(match *m {
        Message::VmRow {
            vm,
            name,
            status,
            core,
            restarts,
            exits,
            ran,
        } => Got::Row {
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
        } => Got::Stats([free, running.into(), commands, errors]),
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
        } => Got::Flow {
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
        } => Got::Core {
            core,
            role,
            vms,
            counts: [exits, ran, busy],
        },
        Message::LogHead { id, next } => Got::Head { id, next },
        Message::LogLine { seq, text } => Got::Line {
            seq,
            text: text.to_string(),
        },
        Message::HookRow {
            name,
            on,
            engine,
            runs,
            pass,
            dropped,
            faults,
            insns,
        } => {
            let mut place = String::new();
            match on {
                HookOn::Link { link, dir } => {
                    let _ = write!(place, "{{\"link\":{link},\"dir\":{dir}}}");
                }
                HookOn::Nic { nic, dir } => {
                    let _ = write!(place, "{{\"nic\":{nic},\"dir\":{dir}}}");
                }
                HookOn::Vm { vm, kind } => {
                    place.push_str("{\"vm\":");
                    json_str(&mut place, vm);
                    let _ = write!(place, ",\"kind\":{kind}}}");
                }
            }
            Got::Hook {
                name: name.to_string(),
                on: place,
                engine: control::engine_name(engine),
                counts: [runs, pass, dropped, faults, insns],
            }
        }
        Message::MapEntry {
            map,
            core,
            key,
            value,
        } => Got::Entry {
            map,
            core,
            key: key.to_vec(),
            value: value.to_vec(),
        },
        Message::Done => Got::Done,
        Message::Error { text } => Got::Error(text.to_string()),
        _ => return None,
    })
}

/// A hook's row as a JSON object, with the map entries among `got`.
fn hook_json(out: &mut String, row: &Got, got: &[Got]) {
    let Got::Hook {
        name,
        on,
        engine,
        counts,
    } = row
    else {
        return;
    };
    let [runs, pass, dropped, faults, insns] = counts;
    out.push_str("{\"name\":");
    json_str(out, name);
    let _ = write!(
        out,
        ",\"on\":{on},\"engine\":\"{engine}\",\"runs\":{runs},\"pass\":{pass},\"dropped\":{dropped},\"faults\":{faults},\"instructions\":{insns},\"entries\":["
    );
    let entries = got.iter().filter_map(|g| match g {
        Got::Entry {
            map,
            core,
            key,
            value,
        } => Some((map, core, key, value)),
        _ => None,
    });
    for (i, (map, core, key, value)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"map\":{map},\"core\":{core},\"key\":");
        json_hex(out, key);
        out.push_str(",\"value\":");
        json_hex(out, value);
        out.push('}');
    }
    out.push_str("]}");
}

/// `bytes` as lower-case hex, in a JSON string.
fn json_hex(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out.push('"');
}

fn vm_json(out: &mut String, g: &Got) {
    if let Got::Row {
        vm,
        name,
        status,
        core,
        restarts,
        exits,
        ran,
    } = g
    {
        out.push_str("{\"index\":");
        let _ = write!(out, "{vm},\"name\":");
        json_str(out, name);
        let _ = write!(out, ",\"status\":\"{}\",\"core\":", status_name(*status));
        if *core == NO_CORE {
            out.push_str("null");
        } else {
            let _ = write!(out, "{core}");
        }
        let _ = write!(
            out,
            ",\"restarts\":{restarts},\"exits\":{exits},\"instructions\":{ran}}}"
        );
    }
}

fn reply(status: Status, body: String) -> Reply {
    Reply {
        status,
        content_type: "application/json",
        body,
    }
}

fn error(status: Status, text: &str) -> Reply {
    let mut body = String::from("{\"error\":");
    json_str(&mut body, text);
    body.push_str("}\n");
    reply(status, body)
}

/// The reply to a command that answers only done or an error.
fn done_or_error(answers: Result<Vec<Got>, Fail>) -> Reply {
    match answers {
        Err(e) => e.reply(),
        Ok(got) => match got.last() {
            Some(Got::Done) => reply(Status::Ok, "{\"done\":true}\n".into()),
            Some(Got::Error(e))
                if ["no VM named", "no entry named", "no image named"]
                    .iter()
                    .any(|p| e.starts_with(p)) =>
            {
                error(Status::NotFound, e)
            }
            Some(Got::Error(e)) => error(Status::Conflict, e),
            _ => error(Status::Conflict, "the answer ended early"),
        },
    }
}

/// A link's or NIC's counters as a JSON object (a `stats` flow).
fn flow_json(out: &mut String, flow: &Got) {
    let Got::Flow {
        kind,
        index,
        label,
        counts: [inf, inb, ind, outf, outb, outd],
    } = flow
    else {
        return;
    };
    let kind = if *kind == FLOW_LINK { "link" } else { "nic" };
    let _ = write!(out, "{{\"kind\":\"{kind}\",\"index\":{index},\"label\":");
    json_str(out, label);
    let _ = write!(
        out,
        ",\"in\":{{\"frames\":{inf},\"bytes\":{inb},\"drops\":{ind}}},\"out\":{{\"frames\":{outf},\"bytes\":{outb},\"drops\":{outd}}}}}"
    );
}

/// A port named in a query: `VM.PORT`.
fn port_in<'q>(query: &'q str, key: &str) -> Option<control::Port<'q>> {
    let (vm, port) = query_value(query, key)?.rsplit_once('.')?;
    let port = port.parse().ok()?;
    (!vm.is_empty()).then_some(control::Port { vm, port })
}

impl Ctl {
    /// `logs` for `GET /v1/vms/NAME/logs`: which VM holds the name, its
    /// next line's number and the lines kept from `from` on.
    fn logs(&mut self, vm: &str, query: &str) -> Reply {
        let from = match query_value(query, "from").map(str::parse::<u64>) {
            None => 0,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                return error(
                    Status::BadRequest,
                    "`from` is not a line number (`?from=17`)",
                );
            }
        };
        let got = match self.exchange(&Message::Logs { vm, from }) {
            Ok(g) => g,
            Err(e) => return e.reply(),
        };
        let Some(&Got::Head { id, next }) = got.first() else {
            return done_or_error(Ok(got));
        };
        let mut body = String::new();
        let _ = write!(body, "{{\"id\":{id},\"next\":{next},\"lines\":[");
        for (i, g) in got.iter().enumerate() {
            if let Got::Line { seq, text } = g {
                if i > 1 {
                    body.push(',');
                }
                let _ = write!(body, "{{\"seq\":{seq},\"text\":");
                json_str(&mut body, text);
                body.push('}');
            }
        }
        body.push_str("]}\n");
        reply(Status::Ok, body)
    }

    /// `hook maps` (`GET /v1/hooks/NAME`) or `hook detach` (`DELETE`): the
    /// hook's place and counters, with its map entries for `maps`.
    fn hook(&mut self, name: &str, detach: bool) -> Reply {
        let msg = if detach {
            Message::HookDetach { name }
        } else {
            Message::HookMaps { name }
        };
        let got = match self.exchange(&msg) {
            Ok(g) => g,
            Err(e) => return e.reply(),
        };
        let Some(row @ Got::Hook { .. }) = got.first() else {
            return match got.last() {
                Some(Got::Error(e)) if e.starts_with("no hook named") => error(Status::NotFound, e),
                _ => done_or_error(Ok(got)),
            };
        };
        let mut body = String::new();
        hook_json(&mut body, row, &got);
        body.push('\n');
        reply(Status::Ok, body)
    }

    /// `link attach|detach` for `POST|DELETE /v1/links`: the link's
    /// counters (new, or final) as a `stats` flow.
    fn link(&mut self, query: &str, attach: bool) -> Reply {
        let (Some(a), Some(b)) = (port_in(query, "a"), port_in(query, "b")) else {
            return error(
                Status::BadRequest,
                "give both ends as `?a=VM.PORT&b=VM.PORT` (`?a=web.0&b=db.0`)",
            );
        };
        let msg = if attach {
            Message::LinkAttach { a, b }
        } else {
            Message::LinkDetach { a, b }
        };
        let got = match self.exchange(&msg) {
            Ok(g) => g,
            Err(e) => return e.reply(),
        };
        match (got.first(), got.last()) {
            (Some(flow @ Got::Flow { .. }), Some(Got::Done)) => {
                let mut body = String::new();
                flow_json(&mut body, flow);
                body.push('\n');
                reply(Status::Ok, body)
            }
            _ => done_or_error(Ok(got)),
        }
    }

    fn vms(&mut self, one: Option<&str>) -> Reply {
        let got = match self.exchange(&Message::List) {
            Ok(g) => g,
            Err(e) => return e.reply(),
        };
        let rows = got.iter().filter(|g| matches!(g, Got::Row { .. }));
        let mut body = String::new();
        match one {
            None => {
                body.push('[');
                for (i, g) in rows.enumerate() {
                    if i > 0 {
                        body.push(',');
                    }
                    vm_json(&mut body, g);
                }
                body.push_str("]\n");
            }
            Some(name) => {
                let Some(g) = rows
                    .into_iter()
                    .find(|g| matches!(g, Got::Row { name: n, .. } if n == name))
                else {
                    let mut text = String::from("no VM named ");
                    text.push_str(name);
                    return error(Status::NotFound, &text);
                };
                vm_json(&mut body, g);
                body.push('\n');
            }
        }
        reply(Status::Ok, body)
    }

    fn stats(&mut self) -> Reply {
        let got = match self.exchange(&Message::Stats) {
            Ok(g) => g,
            Err(e) => return e.reply(),
        };
        let mut body = String::new();
        let mut flows = String::new();
        let mut cores = String::new();
        for g in &got {
            match g {
                Got::Stats([free, running, commands, errors]) => {
                    let _ = write!(
                        body,
                        "{{\"free_memory\":{free},\"vms_running\":{running},\"commands\":{commands},\"errors\":{errors},\"flows\":["
                    );
                }
                Got::Flow { .. } => {
                    if !flows.is_empty() {
                        flows.push(',');
                    }
                    flow_json(&mut flows, g);
                }
                Got::Core {
                    core,
                    role,
                    vms,
                    counts: [exits, ran, busy],
                } => {
                    if !cores.is_empty() {
                        cores.push(',');
                    }
                    let _ = write!(
                        cores,
                        "{{\"core\":{core},\"role\":{role},\"vms_running\":{vms},\"exits\":{exits},\"guest_instructions\":{ran},\"busy_instructions\":{busy}}}"
                    );
                }
                _ => {}
            }
        }
        if body.is_empty() {
            return error(Status::Conflict, "the hypervisor sent no counters");
        }
        body.push_str(&flows);
        body.push_str("],\"cores\":[");
        body.push_str(&cores);
        body.push_str("]}\n");
        reply(Status::Ok, body)
    }
}

/// A start's `?args=` (percent-decoded into `buf`) and `?memory=` (0:
/// not given), or the `400` a bad one gets. The hypervisor checks the
/// decoded arguments (printable, at most 128 bytes) and the memory's range;
/// what it refuses is a `409` in its words.
fn overrides<'b>(query: &str, buf: &'b mut [u8]) -> Result<(Option<&'b str>, u64), Reply> {
    let args = match query_value(query, "args").map(|v| percent_decoded(v, buf)) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => return Err(error(Status::BadRequest, &alloc::format!("`args`: {e}"))),
    };
    let memory = match query_value(query, "memory").map(str::parse::<u64>) {
        None => 0,
        Some(Ok(m)) if m != 0 => m,
        Some(_) => {
            return Err(error(
                Status::BadRequest,
                "`memory` is not a number of bytes (`?memory=67108864`)",
            ));
        }
    };
    Ok((args, memory))
}

/// A path's parts after the leading `/`.
fn parts(path: &str) -> Vec<&str> {
    path.trim_end_matches('/').split('/').skip(1).collect()
}

/// The refusal in a command's answers, if it was refused.
fn refused(got: Result<Vec<Got>, Fail>) -> Option<Reply> {
    match got {
        Err(e) => Some(e.reply()),
        Ok(g) => match g.last() {
            Some(Got::Done) => None,
            _ => Some(done_or_error(Ok(g))),
        },
    }
}

/// A hook's place from a query: `link=L&dir=D`, `nic=N&dir=D` or
/// `vm=VM&kind=K`.
fn hook_place(query: &str) -> Option<HookOn<'_>> {
    let number = |key| query_value(query, key).and_then(|v| v.parse::<u32>().ok());
    let byte = |key| number(key).and_then(|v| u8::try_from(v).ok());
    match (number("link"), number("nic"), query_value(query, "vm")) {
        (Some(link), None, None) => Some(HookOn::Link {
            link,
            dir: byte("dir")?,
        }),
        (None, Some(nic), None) => Some(HookOn::Nic {
            nic,
            dir: byte("dir")?,
        }),
        (None, None, Some(vm)) => Some(HookOn::Vm {
            vm,
            kind: byte("kind")?,
        }),
        _ => None,
    }
}

impl Ctl {
    /// `hook attach` for `POST /v1/hooks/NAME?PLACE` with the hook's map
    /// table and instructions as the body: begin, chunks, commit; the
    /// hook it replaced, if any.
    fn attach_hook(&mut self, name: &str, query: &str) -> Reply {
        let Some(on) = hook_place(query) else {
            return error(
                Status::BadRequest,
                "give the hook's place: `?link=L&dir=0|1`, `?nic=N&dir=0|1` or `?vm=NAME&kind=2|3|4`",
            );
        };
        let Body::Hook(bytes) = core::mem::replace(&mut self.body, Body::None) else {
            return error(
                Status::BadRequest,
                "send the hook as the body: a map count byte, its 16-byte map definitions, its 8-byte instructions",
            );
        };
        let count = usize::from(bytes.first().copied().unwrap_or(0));
        let maps_end = 1 + count * MAP_DEF_SIZE;
        let (Some(maps), Some(code)) = (bytes.get(1..maps_end), bytes.get(maps_end..)) else {
            return error(Status::BadRequest, "the body ends inside its map table");
        };
        if code.is_empty() || !code.len().is_multiple_of(INSN_SIZE) {
            return error(
                Status::BadRequest,
                "the body's instructions are not whole 8-byte instructions",
            );
        }
        let begin = Message::HookBegin {
            name,
            on,
            insns: (code.len() / INSN_SIZE) as u32,
            maps,
        };
        if let Some(r) = refused(self.exchange(&begin)) {
            return r;
        }
        for (k, bytes) in code.chunks(control::CHUNK_BYTES).enumerate() {
            let offset = (k * control::CHUNK_BYTES / INSN_SIZE) as u32;
            if let Some(r) = refused(self.exchange(&Message::HookChunk { offset, bytes })) {
                return r;
            }
        }
        let got = match self.exchange(&Message::HookCommit { name }) {
            Ok(g) => g,
            Err(e) => return e.reply(),
        };
        if !matches!(got.last(), Some(Got::Done)) {
            return done_or_error(Ok(got));
        }
        // The new hook's row (its engine), then the replaced one's, if any.
        let mut rows = got.iter().filter(|g| matches!(g, Got::Hook { .. }));
        let mut body = String::from("{\"name\":");
        json_str(&mut body, name);
        body.push_str(",\"hook\":");
        match rows.next() {
            Some(g) => hook_json(&mut body, g, &[]),
            None => body.push_str("null"),
        }
        body.push_str(",\"replaced\":");
        match rows.next() {
            Some(g) => hook_json(&mut body, g, &[]),
            None => body.push_str("null"),
        }
        body.push_str("}\n");
        reply(Status::Ok, body)
    }

    /// Sends the whole chunks of an image upload's bytes (all of them, the
    /// last one short, once `last`).
    fn image_chunks(&mut self, last: bool) {
        let Body::Image {
            name,
            mut carry,
            mut offset,
            mut failed,
        } = core::mem::replace(&mut self.body, Body::None)
        else {
            return;
        };
        while failed.is_none()
            && (carry.len() >= control::CHUNK_BYTES || (last && !carry.is_empty()))
        {
            let n = carry.len().min(control::CHUNK_BYTES);
            let msg = Message::ImageChunk {
                offset,
                bytes: &carry[..n],
            };
            failed = refused(self.exchange(&msg));
            carry.drain(..n);
            offset += n as u32;
        }
        self.body = Body::Image {
            name,
            carry,
            offset,
            failed,
        };
    }

    /// `POST /v1/images/NAME` once its body is whole: its last chunk and
    /// the commit.
    fn commit_image(&mut self, name: &str) -> Reply {
        if !matches!(self.body, Body::Image { .. }) {
            return error(
                Status::BadRequest,
                "send the image file (an ELF file, at most 8 MiB) as the body",
            );
        }
        self.image_chunks(true);
        match core::mem::replace(&mut self.body, Body::None) {
            Body::Image {
                failed: Some(r), ..
            } => r,
            _ => done_or_error(self.exchange(&Message::ImageCommit { name })),
        }
    }
}

impl Handler for Ctl {
    fn body_limit(&self, method: Method, path: &str) -> u64 {
        match (method, parts(path).as_slice()) {
            (Method::Post, ["v1", "hooks", _]) => MAX_HOOK_BODY,
            (Method::Post, ["v1", "images", _]) => u64::from(control::MAX_IMAGE_BYTES),
            _ => 0,
        }
    }

    fn body_start(&mut self, _: Method, path: &str, _: &str, len: u64) {
        self.body = match parts(path).as_slice() {
            ["v1", "hooks", _] => Body::Hook(Vec::with_capacity(len as usize)),
            ["v1", "images", name] => {
                // The limit keeps it within u32.
                let bytes = u32::try_from(len).unwrap_or(u32::MAX);
                let failed = refused(self.exchange(&Message::ImageBegin { name, bytes }));
                Body::Image {
                    name: name.to_string(),
                    carry: Vec::new(),
                    offset: 0,
                    failed,
                }
            }
            _ => Body::None,
        };
    }

    fn body(&mut self, piece: &[u8]) {
        match &mut self.body {
            Body::Hook(bytes) => bytes.extend_from_slice(piece),
            Body::Image { carry, failed, .. } => {
                if failed.is_none() {
                    carry.extend_from_slice(piece);
                    self.image_chunks(false);
                }
            }
            Body::None => {}
        }
    }

    fn answer(&mut self, method: Method, path: &str, query: &str, _: &Counters) -> Reply {
        // Another connection's body may be arriving meanwhile: untouched.
        self.route(method, &parts(path), path, query, false)
    }

    fn answer_body(&mut self, method: Method, path: &str, query: &str, _: &Counters) -> Reply {
        let reply = self.route(method, &parts(path), path, query, true);
        // A body no route used is not kept for the next request.
        self.body = Body::None;
        reply
    }

    fn tick(&mut self, drained: &dyn Fn() -> bool) -> bool {
        if let Some((since, tries)) = self.ending
            && (drained() || rdtsc().wrapping_sub(since) > END_GRACE_TICKS)
        {
            // `POST /v1/end`'s answer is out (or had its time): the run
            // ends.
            self.ending = None;
            match self.exchange(&Message::End) {
                Ok(_) => println!("ctl: the run ends (POST /v1/end)"),
                Err(Fail::Bad(e) | Fail::Unavailable(e)) => {
                    println!("ctl: end: {e}");
                    if tries + 1 < END_TRIES {
                        self.ending = Some((since, tries + 1));
                    }
                }
            }
            return true;
        }
        self.take_events()
    }

    fn body_abort(&mut self) {
        // An image begun and not refused is dropped in the hypervisor (its
        // room given back): a commit before its last bytes drops it.
        if let Body::Image {
            name, failed: None, ..
        } = core::mem::replace(&mut self.body, Body::None)
        {
            let _ = self.exchange(&Message::ImageCommit { name: &name });
        }
    }
}

impl Ctl {
    fn route(
        &mut self,
        method: Method,
        parts: &[&str],
        path: &str,
        query: &str,
        with_body: bool,
    ) -> Reply {
        match (method, parts) {
            (Method::Post, ["v1", "hooks", _] | ["v1", "images", _]) if !with_body => error(
                Status::BadRequest,
                "send the hook (a map count byte, 16-byte map definitions, 8-byte instructions) or the image file (an ELF file, at most 8 MiB) as the body",
            ),
            (Method::Post, ["v1", "hooks", name]) => self.attach_hook(name, query),
            (Method::Post, ["v1", "images", name]) => self.commit_image(name),
            (Method::Post, ["v1", "images", image, "start"]) => {
                let Some(name) = query_value(query, "name") else {
                    return error(Status::BadRequest, "give the new VM's name: `?name=VM`");
                };
                let mut buf = [0u8; 255];
                match overrides(query, &mut buf) {
                    Ok((args, memory)) => done_or_error(self.exchange(&Message::StartImage {
                        image,
                        name,
                        args,
                        memory,
                    })),
                    Err(r) => r,
                }
            }
            (Method::Get | Method::Head, ["v1", "events"]) => self.events(query),
            (Method::Post, ["v1", "end"]) => {
                self.ending.get_or_insert((rdtsc(), 0));
                reply(Status::Accepted, "{\"ending\":true}\n".into())
            }
            (Method::Get | Method::Head, ["v1", "vms"]) => self.vms(None),
            (Method::Get | Method::Head, ["v1", "vms", name]) => self.vms(Some(name)),
            (Method::Get | Method::Head, ["v1", "stats"]) => self.stats(),
            (Method::Post, ["v1", "vms", vm, "stop"]) => {
                done_or_error(self.exchange(&Message::Stop { vm }))
            }
            (Method::Post, ["v1", "vms", vm, "restart"]) => {
                done_or_error(self.exchange(&Message::Restart { vm }))
            }
            (Method::Post, ["v1", "vms", vm, "tune"]) => {
                let number = |key| query_value(query, key).map(|v| v.parse::<u64>().ok());
                let setting = match (number("budget"), number("slice")) {
                    (Some(Some(value)), None) => Some((control::TUNE_BUDGET, value)),
                    (None, Some(Some(value))) => Some((control::TUNE_SLICE, value)),
                    _ => None,
                };
                match setting {
                    Some((what, value)) => {
                        done_or_error(self.exchange(&Message::Tune { vm, what, value }))
                    }
                    None => error(
                        Status::BadRequest,
                        "give one setting as a number: `?budget=N` or `?slice=N` (instructions; 0: none, the run's)",
                    ),
                }
            }
            (Method::Post, ["v1", "entries", entry, "start"]) => {
                let name = query_value(query, "name").unwrap_or("");
                let mut buf = [0u8; 255];
                match overrides(query, &mut buf) {
                    Ok((args, memory)) => done_or_error(self.exchange(&Message::Start {
                        entry,
                        name,
                        args,
                        memory,
                    })),
                    Err(r) => r,
                }
            }
            (Method::Post, ["v1", "entries", entry, "scale"]) => {
                match query_value(query, "count").and_then(|c| c.parse::<u32>().ok()) {
                    Some(count) => done_or_error(self.exchange(&Message::Scale { entry, count })),
                    None => error(
                        Status::BadRequest,
                        "`count` is missing from the query or not a number (`?count=8`)",
                    ),
                }
            }
            (Method::Get | Method::Head, ["v1", "vms", vm, "logs"]) => self.logs(vm, query),
            (Method::Get | Method::Head, ["v1", "hooks", name]) => self.hook(name, false),
            (Method::Delete, ["v1", "hooks", name]) => self.hook(name, true),
            (Method::Post, ["v1", "links"]) => self.link(query, true),
            (Method::Delete, ["v1", "links"]) => self.link(query, false),
            (Method::Get | Method::Head, _) | (Method::Post | Method::Delete, _)
                if matches!(
                    parts,
                    ["v1", "vms"]
                        | ["v1", "vms", _]
                        | ["v1", "stats"]
                        | ["v1", "links"]
                        | ["v1", "events"]
                        | ["v1", "end"]
                ) || matches!(parts, ["v1", "hooks", _] | ["v1", "images", _])
                    || matches!(
                        parts,
                        ["v1", "vms", _, _] | ["v1", "entries", _, _] | ["v1", "images", _, _]
                    ) =>
            {
                error(Status::MethodNotAllowed, "not with this method")
            }
            _ => {
                let mut text = String::from("no resource at ");
                text.push_str(path);
                error(Status::NotFound, &text)
            }
        }
    }
}

fn ctl(info: &guest_lib::BootInfo) -> i32 {
    let s = match server::settings(info.args) {
        Ok(s) => s,
        Err(e) => {
            println!("ctl: {e}");
            return server::EXIT_BAD_ARGS;
        }
    };
    let mut handler = Ctl {
        next_seq: 0,
        input: Vec::new(),
        body: Body::None,
        watch: None,
        events: EventLog::new(EVENTS_KEPT, EVENTS_BYTES, rdtsc()),
        ending: None,
    };
    // Its first command, before it serves: a VM without the capability is
    // stopped here, by name, before anyone reaches it.
    match handler.exchange(&Message::List) {
        Ok(got) => println!(
            "ctl: the control channel answers ({} VMs)",
            got.iter().filter(|g| matches!(g, Got::Row { .. })).count()
        ),
        Err(Fail::Bad(e) | Fail::Unavailable(e)) => println!("ctl: the control channel: {e}"),
    }
    // From now on the hypervisor tells it what happens (`GET /v1/events`).
    let seq = handler.next_seq;
    match handler.exchange(&Message::Watch) {
        Ok(got) if matches!(got.last(), Some(Got::Done)) => handler.watch = Some(seq),
        Ok(_) => println!("ctl: the hypervisor refused `watch`: no events"),
        Err(Fail::Bad(e) | Fail::Unavailable(e)) => {
            println!("ctl: watch: {e}");
            // Sent, not answered in time: the hypervisor may have taken
            // it, and its events come under that number.
            if handler.next_seq != seq {
                handler.watch = Some(seq);
            }
        }
    }
    let (code, c) = server::run(info, &s, "ctl", &mut handler);
    println!(
        "ctl: {} requests, {} connections, {} bad, {} not found",
        c.requests, c.connections, c.bad_requests, c.not_found
    );
    let _ = guest_lib::hypercall::metric("requests", c.requests);
    code
}
