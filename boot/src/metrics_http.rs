//! `corral stats --prometheus --listen ADDR`: a host's counters served over HTTP for a Prometheus scraper, `GET /metrics` answered from a fresh `stats` of the host each time, every other request refused with its status.

use crate::error::{Error, Result};
use crate::host_cmd::{self, StatsFormat};
use crate::service::HostDir;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// The path a scraper asks for.
pub const METRICS_PATH: &str = "/metrics";
/// Longest request head read (request line and headers).
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its whole request, and to take the
/// answer (the server serves one client at a time).
const CLIENT_TIME: Duration = Duration::from_secs(5);
/// Content type of the Prometheus text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// `GET /metrics` (or `HEAD`; a query string is ignored).
    Metrics {
        /// Only the head is wanted.
        head_only: bool,
    },
    /// Another path (`HEAD`: the head of the answer only).
    NotFound {
        /// Only the head is wanted.
        head_only: bool,
    },
    /// Another method.
    BadMethod,
    /// Not an HTTP/1.x request line.
    Malformed,
}

/// Reads the request line of `head` (the bytes up to the blank line).
pub fn parse_request(head: &[u8]) -> Request {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Request::Malformed;
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::Malformed;
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Request::Malformed;
    }
    let path = target.split('?').next().unwrap_or(target);
    match method {
        "GET" | "HEAD" if path == METRICS_PATH => Request::Metrics {
            head_only: method == "HEAD",
        },
        "GET" | "HEAD" => Request::NotFound {
            head_only: method == "HEAD",
        },
        _ => Request::BadMethod,
    }
}

/// The whole response for `status`, `body` (and its content type).
fn response(status: &str, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// Reads a request head from `stream`: up to the blank line, at most
/// [`MAX_HEAD`] bytes, within [`CLIENT_TIME`] in all (a client sending a
/// byte at a time cannot hold the server longer).
fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    let deadline = Instant::now() + CLIENT_TIME;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while head.len() < MAX_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    head
}

/// Serves `host`'s counters on `addr` until the host is gone; `ready`
/// gets the address actually bound (port 0 picks a free one).
pub fn serve(host: &HostDir, addr: &str, ready: impl FnOnce(std::net::SocketAddr)) -> Result<()> {
    let listener =
        TcpListener::bind(addr).map_err(|e| Error::new(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::new(format!("cannot listen on {addr}: {e}")))?;
    ready(bound);
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else {
            continue;
        };
        let _ = stream.set_write_timeout(Some(CLIENT_TIME));
        let head = read_head(&mut stream);
        let (reply, gone) = match parse_request(&head) {
            Request::Metrics { head_only } => {
                match host_cmd::stats(host, StatsFormat::Prometheus) {
                    Ok(text) => (response("200 OK", CONTENT_TYPE, &text, head_only), None),
                    Err(e) => {
                        let text = format!("host `{}`: {}\n", host.name, e.message());
                        (
                            response("503 Service Unavailable", "text/plain", &text, head_only),
                            Some(e),
                        )
                    }
                }
            }
            Request::NotFound { head_only } => (
                response(
                    "404 Not Found",
                    "text/plain",
                    &format!("only {METRICS_PATH} is served\n"),
                    head_only,
                ),
                None,
            ),
            Request::BadMethod => (
                response(
                    "405 Method Not Allowed",
                    "text/plain",
                    "GET or HEAD only\n",
                    false,
                ),
                None,
            ),
            Request::Malformed => (
                response(
                    "400 Bad Request",
                    "text/plain",
                    "not an HTTP/1.x request\n",
                    false,
                ),
                None,
            ),
        };
        let _ = stream.write_all(&reply);
        // A host that is no longer up will not come back: stop serving.
        if let Some(e) = gone
            && !host.running()
        {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn requests_are_read_as_a_scraper_sends_them() {
        let get = |s: &str| parse_request(s.as_bytes());
        assert_eq!(
            get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Request::Metrics { head_only: false }
        );
        assert_eq!(
            get("HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Request::Metrics { head_only: true }
        );
        assert_eq!(
            get("GET / HTTP/1.1\r\n\r\n"),
            Request::NotFound { head_only: false }
        );
        assert_eq!(
            get("HEAD /x HTTP/1.1\r\n\r\n"),
            Request::NotFound { head_only: true }
        );
        assert_eq!(get("POST /metrics HTTP/1.1\r\n\r\n"), Request::BadMethod);
        for bad in [
            "",
            "GET /metrics",
            "GET /metrics HTTP/2\r\n",
            "GET metrics HTTP/1.1\r\n",
            "GET  /metrics HTTP/1.1\r\n",
            "\u{ff}",
        ] {
            assert_eq!(get(bad), Request::Malformed, "{bad:?}");
        }
        let r = response("200 OK", CONTENT_TYPE, "a 1\n", false);
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 4\r\n"));
        assert!(text.ends_with("\r\n\r\na 1\n"));
        let head = String::from_utf8(response("200 OK", CONTENT_TYPE, "a 1\n", true)).unwrap();
        assert!(head.ends_with("\r\n\r\n"));
    }

    proptest! {
        /// Any bytes: a verdict, never a panic; only a well-formed GET or
        /// HEAD of /metrics is served.
        #[test]
        fn any_bytes_get_a_verdict(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Request::Metrics { .. } = parse_request(&bytes) {
                let line = String::from_utf8_lossy(&bytes);
                prop_assert!(line.starts_with("GET /metrics") || line.starts_with("HEAD /metrics"));
            }
        }
    }
}
