//! The host tool as a client of a control unikernel's HTTP/JSON API (`corral --endpoint URL ps|stop|restart|tune|start|scale|stats|link|logs|hook|events|down`): each control command becomes the API's request, and its JSON answer the same answers the serial line gives, so every command prints as it does there.

use crate::error::{Error, Result};
use crate::service::{Answer, HookAt};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;
use vmm_abi::control::{self, FLOW_LINK, FLOW_NIC, HookOn, Message, NO_CORE};
use vmm_abi::hook::map::MAP_DEF_SIZE;

/// How long one request may take.
const REQUEST_WAIT: Duration = Duration::from_secs(60);

/// The `host:port` of an `http://HOST:PORT` endpoint.
pub fn authority(url: &str) -> Result<&str> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        Error::new(format!(
            "`--endpoint`: `{url}` is not an http:// URL (http://HOST:PORT)"
        ))
    })?;
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') || !host.contains(':') {
        return Err(Error::new(format!(
            "`--endpoint`: `{url}` is not http://HOST:PORT"
        )));
    }
    Ok(host)
}

/// The API request for `msg`: method and path (with its query).
pub fn request_for(msg: &Message<'_>) -> Result<(&'static str, String)> {
    Ok(match *msg {
        Message::List => ("GET", "/v1/vms".into()),
        Message::Stats => ("GET", "/v1/stats".into()),
        Message::Stop { vm } => ("POST", format!("/v1/vms/{vm}/stop")),
        Message::Restart { vm } => ("POST", format!("/v1/vms/{vm}/restart")),
        Message::Start {
            entry,
            name,
            args,
            memory,
        } => {
            let mut query = Vec::new();
            if !name.is_empty() {
                query.push(format!("name={name}"));
            }
            if let Some(a) = args {
                query.push(format!("args={}", percent_encoded(a)));
            }
            if memory != 0 {
                query.push(format!("memory={memory}"));
            }
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            ("POST", format!("/v1/entries/{entry}/start{query}"))
        }
        Message::Scale { entry, count } => {
            ("POST", format!("/v1/entries/{entry}/scale?count={count}"))
        }
        Message::Tune { vm, what, value } => {
            let key = if what == vmm_abi::control::TUNE_SLICE {
                "slice"
            } else {
                "budget"
            };
            ("POST", format!("/v1/vms/{vm}/tune?{key}={value}"))
        }
        Message::Logs { vm, from } => ("GET", format!("/v1/vms/{vm}/logs?from={from}")),
        Message::StartImage {
            image,
            name,
            args,
            memory,
        } => {
            let mut query = format!("name={name}");
            if let Some(a) = args {
                query.push_str(&format!("&args={}", percent_encoded(a)));
            }
            if memory != 0 {
                query.push_str(&format!("&memory={memory}"));
            }
            ("POST", format!("/v1/images/{image}/start?{query}"))
        }
        Message::HookMaps { name } => ("GET", format!("/v1/hooks/{name}")),
        Message::HookDetach { name } => ("DELETE", format!("/v1/hooks/{name}")),
        Message::LinkAttach { a, b } => ("POST", format!("/v1/links?a={a}&b={b}")),
        Message::LinkDetach { a, b } => ("DELETE", format!("/v1/links?a={a}&b={b}")),
        _ => {
            return Err(Error::new(
                "the control API serves ps, stop, restart, tune, start, scale, stats, link, logs and hook; use `--host` for the rest",
            ));
        }
    })
}

/// `text` as a query value: every byte but letters, digits and `-._~` as
/// `%XX` (RFC 3986's unreserved characters stay).
fn percent_encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The status code and body of an HTTP/1.1 response.
pub fn parse_response(raw: &[u8]) -> Result<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| Error::new("the endpoint's answer is not HTTP (no end of head)"))?;
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .filter(|_| head.starts_with("HTTP/1."))
        .ok_or_else(|| Error::new("the endpoint's answer has no HTTP status line"))?;
    Ok((code, body.to_string()))
}

fn number(v: &serde_json::Value, key: &str) -> Result<u64> {
    v[key]
        .as_u64()
        .ok_or_else(|| Error::new(format!("the endpoint's JSON has no number `{key}`")))
}

fn status_of(name: &str) -> Result<u8> {
    control::status_named(name).ok_or_else(|| {
        Error::new(format!(
            "the endpoint's JSON has a VM status `{name}` (running, exited, killed or stopped)"
        ))
    })
}

/// The answers the serial line would give, from the API's JSON answer
/// `body` with status `code` to `msg`.
pub fn answers(msg: &Message<'_>, code: u16, body: &str) -> Result<Vec<Answer>> {
    if code != 200 {
        return Ok(vec![refusal(code, body)]);
    }
    let v: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| Error::new(format!("the endpoint's answer is not JSON ({code}): {e}")))?;
    let mut out = Vec::new();
    match msg {
        Message::List => {
            let rows = v
                .as_array()
                .ok_or_else(|| Error::new("the endpoint's VM list is not an array"))?;
            for r in rows {
                out.push(Answer::Row {
                    vm: number(r, "index")? as u32,
                    name: r["name"].as_str().unwrap_or("?").to_string(),
                    status: status_of(r["status"].as_str().unwrap_or(""))?,
                    core: r["core"].as_u64().map_or(NO_CORE, |c| c as u32),
                    restarts: number(r, "restarts")? as u32,
                    exits: number(r, "exits")?,
                    ran: number(r, "instructions")?,
                });
            }
        }
        Message::Stats => {
            out.push(Answer::Stats {
                free: number(&v, "free_memory")?,
                running: number(&v, "vms_running")? as u32,
                commands: number(&v, "commands")?,
                errors: number(&v, "errors")?,
            });
            for f in v["flows"].as_array().into_iter().flatten() {
                out.push(flow(f)?);
            }
            for c in v["cores"].as_array().into_iter().flatten() {
                out.push(Answer::Core {
                    core: number(c, "core")? as u32,
                    role: number(c, "role")? as u8,
                    vms: number(c, "vms_running")? as u32,
                    counts: [
                        number(c, "exits")?,
                        number(c, "guest_instructions")?,
                        number(c, "busy_instructions")?,
                    ],
                });
            }
        }
        Message::LinkAttach { .. } | Message::LinkDetach { .. } => out.push(flow(&v)?),
        Message::Logs { .. } => {
            out.push(Answer::Head {
                id: number(&v, "id")? as u32,
                next: number(&v, "next")?,
            });
            for l in v["lines"].as_array().into_iter().flatten() {
                out.push(Answer::Line {
                    seq: number(l, "seq")?,
                    text: l["text"].as_str().unwrap_or_default().to_string(),
                });
            }
        }
        Message::HookMaps { .. } | Message::HookDetach { .. } => {
            out.push(hook(&v)?);
            for e in v["entries"].as_array().into_iter().flatten() {
                out.push(Answer::Entry {
                    map: small(e, "map")?,
                    core: number(e, "core")? as u32,
                    key: unhex(e["key"].as_str().unwrap_or_default())?,
                    value: unhex(e["value"].as_str().unwrap_or_default())?,
                });
            }
        }
        _ => {}
    }
    out.push(Answer::Done);
    Ok(out)
}

fn small(o: &serde_json::Value, key: &str) -> Result<u8> {
    u8::try_from(number(o, key)?)
        .map_err(|_| Error::new(format!("the endpoint's `{key}` is not a byte")))
}

/// A hook's row from the API's hook object.
fn hook(v: &serde_json::Value) -> Result<Answer> {
    let on = &v["on"];
    let at = match (on.get("link"), on.get("nic"), on["vm"].as_str()) {
        (Some(_), _, _) => HookAt::Link {
            link: number(on, "link")? as u32,
            dir: small(on, "dir")?,
        },
        (_, Some(_), _) => HookAt::Nic {
            nic: number(on, "nic")? as u32,
            dir: small(on, "dir")?,
        },
        (_, _, Some(vm)) => HookAt::Vm {
            vm: vm.to_string(),
            kind: small(on, "kind")?,
        },
        _ => return Err(Error::new("the endpoint's hook has no place (`on`)")),
    };
    let engine = match v["engine"].as_str() {
        Some(e) if e == control::engine_name(control::ENGINE_COMPILED) => control::ENGINE_COMPILED,
        Some(e) if e == control::engine_name(control::ENGINE_INTERPRETED) => {
            control::ENGINE_INTERPRETED
        }
        _ => {
            return Err(Error::new(
                "the endpoint's hook has no `engine` (`compiled` or `interpreted`)",
            ));
        }
    };
    Ok(Answer::Hook {
        name: v["name"].as_str().unwrap_or("?").to_string(),
        on: at,
        engine,
        counts: [
            number(v, "runs")?,
            number(v, "pass")?,
            number(v, "dropped")?,
            number(v, "faults")?,
            number(v, "instructions")?,
        ],
    })
}

/// The bytes hex digits give (as the API writes keys and values).
fn unhex(text: &str) -> Result<Vec<u8>> {
    let bad = || Error::new(format!("the endpoint's `{text}` is not hex bytes"));
    if !text.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

/// A refusal from the API: its JSON `error`, or (the HTTP server's own
/// refusals of a request it cannot read are text) the text itself.
fn refusal(code: u16, body: &str) -> Answer {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let text = match json.as_ref().and_then(|v| v["error"].as_str()) {
        Some(t) => t.to_string(),
        None if !body.trim().is_empty() => format!("{} ({code})", body.trim()),
        None => format!("the endpoint refused the request ({code})"),
    };
    Answer::Error(text)
}

/// A link's or NIC's counters from the API's flow object.
fn flow(f: &serde_json::Value) -> Result<Answer> {
    let side = |s: &str| -> Result<[u64; 3]> {
        let o = &f[s];
        Ok([
            number(o, "frames")?,
            number(o, "bytes")?,
            number(o, "drops")?,
        ])
    };
    let ([a, b, c], [d, e, g]) = (side("in")?, side("out")?);
    Ok(Answer::Flow {
        kind: if f["kind"] == "link" {
            FLOW_LINK
        } else {
            FLOW_NIC
        },
        index: number(f, "index")? as u32,
        label: f["label"].as_str().unwrap_or("?").to_string(),
        counts: [a, b, c, d, e, g],
    })
}

/// Sends `msg` to the control API at `url`; its answers as the serial
/// line gives them.
pub fn send(url: &str, msg: &Message<'_>) -> Result<Vec<Answer>> {
    let (method, path) = request_for(msg)?;
    let (code, body) = exchange(url, method, &path, &[])?;
    answers(msg, code, &body)
}

/// Uploads image `name` (`bytes`, an ELF file) to the control API at
/// `url` in one request; done, or the refusal.
pub fn upload_image(url: &str, name: &str, bytes: &[u8]) -> Result<Vec<Answer>> {
    let (code, body) = exchange(url, "POST", &format!("/v1/images/{name}"), bytes)?;
    answers(&Message::ImageCommit { name }, code, &body)
}

/// Attaches hook `name` at `on` through the control API at `url` in one
/// request: its map table (`maps`, 16-byte definitions) and instructions
/// (`code`) as the body. The new hook's row (its engine), the row of the
/// hook it replaced if any, and done; or the refusal.
pub fn attach_hook(
    url: &str,
    name: &str,
    on: HookOn<'_>,
    code: &[u8],
    maps: &[u8],
) -> Result<Vec<Answer>> {
    let place = match on {
        HookOn::Link { link, dir } => format!("link={link}&dir={dir}"),
        HookOn::Nic { nic, dir } => format!("nic={nic}&dir={dir}"),
        HookOn::Vm { vm, kind } => format!("vm={vm}&kind={kind}"),
    };
    let mut body = vec![(maps.len() / MAP_DEF_SIZE) as u8];
    body.extend_from_slice(maps);
    body.extend_from_slice(code);
    let (code, text) = exchange(url, "POST", &format!("/v1/hooks/{name}?{place}"), &body)?;
    if code != 200 {
        return Ok(vec![refusal(code, &text)]);
    }
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::new(format!("the endpoint's answer is not JSON ({code}): {e}")))?;
    let mut out = vec![hook(&v["hook"])?];
    if v["replaced"].is_object() {
        out.push(hook(&v["replaced"])?);
    }
    out.push(Answer::Done);
    Ok(out)
}

/// What `GET /v1/events` answered.
#[derive(Debug)]
pub struct Events {
    /// Which log (a control unikernel that restarted keeps another).
    pub boot: u64,
    /// The number of the oldest event kept.
    pub first: u64,
    /// The number after the last one given.
    pub next: u64,
    /// The events, as the host's events file has them.
    pub list: Vec<serde_json::Value>,
}

/// Why [`events`] gave no events.
#[derive(Debug)]
pub enum EventsError {
    /// No answer came from the URL: nothing accepted the connection, or
    /// it broke (or timed out) before a whole answer.
    Unreachable(Error),
    /// An answer came that is not the events: a refusal (its status and
    /// text), or a body that is not the events' JSON.
    Answer(Error),
}

impl EventsError {
    /// What went wrong, either way.
    pub fn into_error(self) -> Error {
        match self {
            EventsError::Unreachable(e) | EventsError::Answer(e) => e,
        }
    }
}

/// The events the API at `url` keeps from number `from` on.
pub fn events(url: &str, from: u64) -> std::result::Result<Events, EventsError> {
    let (code, body) = exchange(url, "GET", &format!("/v1/events?from={from}"), &[])
        .map_err(EventsError::Unreachable)?;
    events_answer(code, &body).map_err(EventsError::Answer)
}

/// The events in an answer of status `code` with `body` to
/// `GET /v1/events`.
fn events_answer(code: u16, body: &str) -> Result<Events> {
    if code != 200 {
        return Err(Error::new(format!(
            "the endpoint refused `GET /v1/events` ({code}): {}",
            body.trim()
        )));
    }
    let v: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| Error::new(format!("the endpoint's events are not JSON: {e}")))?;
    let list = v["events"]
        .as_array()
        .ok_or_else(|| Error::new("the endpoint's events are not an array"))?;
    Ok(Events {
        boot: number(&v, "boot")?,
        first: number(&v, "first")?,
        next: number(&v, "next")?,
        list: list.clone(),
    })
}

/// Ends the run behind the API at `url` (`POST /v1/end`: accepted, then
/// every VM stops, the report is written where the host runs and the
/// machine powers off).
pub fn end(url: &str) -> Result<()> {
    let (code, body) = exchange(url, "POST", "/v1/end", &[])?;
    match code {
        202 => Ok(()),
        _ => Err(Error::new(format!(
            "the endpoint refused `POST /v1/end` ({code}): {}",
            body.trim()
        ))),
    }
}

/// One request to the API at `url` (`body` sent as it is); the status
/// code and the body of the answer.
fn exchange(url: &str, method: &str, path: &str, body: &[u8]) -> Result<(u16, String)> {
    let host = authority(url)?;
    let fail = |e: std::io::Error| Error::new(format!("cannot reach {url}: {e}"));
    let addr = host
        .to_socket_addrs()
        .map_err(fail)?
        .next()
        .ok_or_else(|| Error::new(format!("`--endpoint`: no address for `{host}`")))?;
    let mut s = TcpStream::connect_timeout(&addr, REQUEST_WAIT).map_err(fail)?;
    s.set_read_timeout(Some(REQUEST_WAIT)).map_err(fail)?;
    s.set_write_timeout(Some(REQUEST_WAIT)).map_err(fail)?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .map_err(fail)?;
    s.write_all(body).map_err(fail)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(fail)?;
    parse_response(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_become_requests_and_urls_are_checked() {
        assert_eq!(
            authority("http://127.0.0.1:8081").unwrap(),
            "127.0.0.1:8081"
        );
        assert_eq!(
            authority("http://127.0.0.1:8081/").unwrap(),
            "127.0.0.1:8081"
        );
        for bad in [
            "https://a:1",
            "127.0.0.1:8081",
            "http://",
            "http://a",
            "http://a:1/x",
        ] {
            assert!(authority(bad).is_err(), "{bad}");
        }
        let r = |m| request_for(&m).unwrap();
        assert_eq!(r(Message::List), ("GET", "/v1/vms".into()));
        assert_eq!(
            r(Message::Stop { vm: "web-1" }),
            ("POST", "/v1/vms/web-1/stop".into())
        );
        assert_eq!(
            r(Message::Start {
                entry: "web",
                name: "x",
                args: None,
                memory: 0,
            }),
            ("POST", "/v1/entries/web/start?name=x".into())
        );
        assert_eq!(
            r(Message::Start {
                entry: "web",
                name: "",
                args: Some("port=81 msg=a&b%"),
                memory: 8 << 20,
            }),
            (
                "POST",
                "/v1/entries/web/start?args=port%3D81%20msg%3Da%26b%25&memory=8388608".into()
            )
        );
        assert_eq!(
            r(Message::Start {
                entry: "web",
                name: "",
                args: Some(""),
                memory: 0,
            }),
            ("POST", "/v1/entries/web/start?args=".into())
        );
        assert_eq!(
            r(Message::Scale {
                entry: "web",
                count: 8
            }),
            ("POST", "/v1/entries/web/scale?count=8".into())
        );
        for (what, key) in [
            (vmm_abi::control::TUNE_BUDGET, "budget"),
            (vmm_abi::control::TUNE_SLICE, "slice"),
        ] {
            assert_eq!(
                r(Message::Tune {
                    vm: "web-1",
                    what,
                    value: 20_000
                }),
                ("POST", format!("/v1/vms/web-1/tune?{key}=20000"))
            );
        }
        let (a, b) = (
            vmm_abi::control::Port { vm: "web", port: 0 },
            vmm_abi::control::Port { vm: "db", port: 2 },
        );
        assert_eq!(
            r(Message::LinkAttach { a, b }),
            ("POST", "/v1/links?a=web.0&b=db.2".into())
        );
        assert_eq!(
            r(Message::LinkDetach { a, b }),
            ("DELETE", "/v1/links?a=web.0&b=db.2".into())
        );
        assert_eq!(
            r(Message::Logs {
                vm: "web-1",
                from: 17
            }),
            ("GET", "/v1/vms/web-1/logs?from=17".into())
        );
        assert_eq!(
            r(Message::HookMaps { name: "count" }),
            ("GET", "/v1/hooks/count".into())
        );
        assert_eq!(
            r(Message::HookDetach { name: "count" }),
            ("DELETE", "/v1/hooks/count".into())
        );
        assert_eq!(
            r(Message::StartImage {
                image: "hello-api",
                name: "h",
                args: Some("a b"),
                memory: 1 << 20,
            }),
            (
                "POST",
                "/v1/images/hello-api/start?name=h&args=a%20b&memory=1048576".into()
            )
        );
        assert!(request_for(&Message::End).is_err());
    }

    #[test]
    fn every_request_is_in_the_api_document() {
        let root = crate::cargo_build::workspace_root();
        let doc = std::fs::read_to_string(root.join("images/openapi/control.yaml")).unwrap();
        for path in [
            "/v1/vms:",
            "/v1/vms/{name}:",
            "/v1/vms/{name}/stop:",
            "/v1/vms/{name}/restart:",
            "/v1/vms/{name}/tune:",
            "/v1/entries/{entry}/start:",
            "/v1/entries/{entry}/scale:",
            "/v1/stats:",
            "/v1/links:",
            "/v1/vms/{name}/logs:",
            "/v1/hooks/{name}:",
            "/v1/images/{name}:",
            "/v1/images/{image}/start:",
            "/v1/events:",
            "/v1/end:",
        ] {
            assert!(
                doc.contains(&format!("  {path}\n")),
                "{path} is not documented"
            );
        }
        // start's query parameters.
        for param in ["name", "args", "memory"] {
            assert!(
                doc.contains(&format!("      - name: {param}\n        in: query")),
                "start's `{param}` is not documented"
            );
        }
    }

    #[test]
    fn json_answers_become_the_serial_lines_answers() {
        let (code, body) = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[{\"index\":0,\"name\":\"web-0\",\"status\":\"running\",\"core\":1,\"restarts\":0,\"exits\":3,\"instructions\":9},{\"index\":1,\"name\":\"x\",\"status\":\"killed\",\"core\":null,\"restarts\":2,\"exits\":1,\"instructions\":0}]",
        )
        .unwrap();
        assert_eq!(code, 200);
        let a = answers(&Message::List, code, &body).unwrap();
        assert_eq!(
            a,
            vec![
                Answer::Row {
                    vm: 0,
                    name: "web-0".into(),
                    status: control::VM_RUNNING,
                    core: 1,
                    restarts: 0,
                    exits: 3,
                    ran: 9
                },
                Answer::Row {
                    vm: 1,
                    name: "x".into(),
                    status: control::VM_KILLED,
                    core: NO_CORE,
                    restarts: 2,
                    exits: 1,
                    ran: 0
                },
                Answer::Done
            ]
        );
        let stats = "{\"free_memory\":100,\"vms_running\":2,\"commands\":5,\"errors\":1,\"flows\":[{\"kind\":\"nic\",\"index\":0,\"label\":\"uplink\",\"in\":{\"frames\":1,\"bytes\":2,\"drops\":3},\"out\":{\"frames\":4,\"bytes\":5,\"drops\":6}}]}";
        let a = answers(&Message::Stats, 200, stats).unwrap();
        assert_eq!(
            a[1],
            Answer::Flow {
                kind: FLOW_NIC,
                index: 0,
                label: "uplink".into(),
                counts: [1, 2, 3, 4, 5, 6]
            }
        );
        let made = "{\"kind\":\"link\",\"index\":1,\"label\":\"a.0<->b.0\",\"in\":{\"frames\":7,\"bytes\":8,\"drops\":0},\"out\":{\"frames\":0,\"bytes\":0,\"drops\":0}}";
        let ends = vmm_abi::control::Port { vm: "a", port: 0 };
        let a = answers(&Message::LinkDetach { a: ends, b: ends }, 200, made).unwrap();
        assert_eq!(
            a,
            vec![
                Answer::Flow {
                    kind: FLOW_LINK,
                    index: 1,
                    label: "a.0<->b.0".into(),
                    counts: [7, 8, 0, 0, 0, 0]
                },
                Answer::Done
            ]
        );
        assert!(answers(&Message::LinkAttach { a: ends, b: ends }, 200, "{}").is_err());
        let logs = "{\"id\":12,\"next\":5,\"lines\":[{\"seq\":3,\"text\":\"a\"},{\"seq\":4,\"text\":\"b c\"}]}";
        assert_eq!(
            answers(&Message::Logs { vm: "w", from: 3 }, 200, logs).unwrap(),
            vec![
                Answer::Head { id: 12, next: 5 },
                Answer::Line {
                    seq: 3,
                    text: "a".into()
                },
                Answer::Line {
                    seq: 4,
                    text: "b c".into()
                },
                Answer::Done
            ]
        );
        let hook = "{\"name\":\"count\",\"on\":{\"vm\":\"web\",\"kind\":3},\"engine\":\"interpreted\",\"runs\":9,\"pass\":8,\"dropped\":1,\"faults\":0,\"instructions\":90,\"entries\":[{\"map\":0,\"core\":1,\"key\":\"0a00\",\"value\":\"ff\"}]}";
        assert_eq!(
            answers(&Message::HookMaps { name: "count" }, 200, hook).unwrap(),
            vec![
                Answer::Hook {
                    name: "count".into(),
                    on: HookAt::Vm {
                        vm: "web".into(),
                        kind: 3
                    },
                    engine: control::ENGINE_INTERPRETED,
                    counts: [9, 8, 1, 0, 90]
                },
                Answer::Entry {
                    map: 0,
                    core: 1,
                    key: vec![10, 0],
                    value: vec![255]
                },
                Answer::Done
            ]
        );
        let on_link = hook
            .replace("{\"vm\":\"web\",\"kind\":3}", "{\"link\":2,\"dir\":1}")
            .replace("0a00", "0g");
        assert!(answers(&Message::HookDetach { name: "count" }, 200, &on_link).is_err());
        let on_link = on_link.replace("0g", "00");
        assert!(matches!(
            &answers(&Message::HookDetach { name: "count" }, 200, &on_link).unwrap()[0],
            Answer::Hook {
                on: HookAt::Link { link: 2, dir: 1 },
                ..
            }
        ));
        // A row without a known engine is not one.
        for engine in ["\"engine\":\"jitted\",", ""] {
            let bad = hook.replace("\"engine\":\"interpreted\",", engine);
            let e = answers(&Message::HookMaps { name: "count" }, 200, &bad).unwrap_err();
            assert!(e.to_string().contains("no `engine`"), "{e}");
        }
        let refused = answers(
            &Message::Stop { vm: "w" },
            409,
            "{\"error\":\"w has already ended\"}",
        )
        .unwrap();
        assert_eq!(refused, vec![Answer::Error("w has already ended".into())]);
        // The HTTP server's own refusals are text.
        assert_eq!(
            answers(
                &Message::List,
                413,
                "the body is longer than this request takes\n"
            )
            .unwrap(),
            vec![Answer::Error(
                "the body is longer than this request takes (413)".into()
            )]
        );
        assert!(answers(&Message::List, 200, "not json").is_err());
        let odd = "[{\"index\":0,\"name\":\"a\",\"status\":\"dancing\",\"core\":1,\"restarts\":0,\"exits\":0,\"instructions\":0}]";
        assert!(answers(&Message::List, 200, odd).is_err());
        assert!(parse_response(b"garbage").is_err());
        assert!(parse_response(b"FTP 200\r\n\r\n").is_err());
    }
}
