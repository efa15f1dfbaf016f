//! HTTP/1.1 for `httpd` and `ctl`: the request-head parser (bytes from the network, so every malformed input is an answer, never a panic), the response writer, and the server loop both run (`server`).
//!
//! Only what a small server needs: `GET`, `HEAD`, `POST` and `DELETE`
//! (whose arguments come in the query string), a body only where the
//! handler takes one (`Content-Length`, up to the handler's limit; no
//! chunked transfer coding), persistent connections by HTTP/1.1's
//! default or `Connection: keep-alive` on HTTP/1.0, `Connection: close`.
#![forbid(unsafe_code)]

use core::fmt::{self, Write};

pub mod server;

/// Largest request head (request line and headers) the server reads.
pub const MAX_HEAD: usize = 4096;
/// Most header lines one request may have.
pub const MAX_HEADERS: usize = 64;

/// A request method the server serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`: the status line, headers and body.
    Get,
    /// `HEAD`: as `GET`, without the body.
    Head,
    /// `POST` (its arguments in the query; a body where the handler
    /// takes one).
    Post,
    /// `DELETE` (its arguments in the query).
    Delete,
}

/// A complete, well-formed request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// Its method.
    pub method: Method,
    /// The path asked for (the request target up to any `?`).
    pub path: &'a str,
    /// The query (after the `?`; empty without one).
    pub query: &'a str,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
    /// Bytes of the head, the blank line included: where its body (or
    /// the next request, pipelined) starts.
    pub head_len: usize,
    /// Bytes of its body (`Content-Length`; 0 without one).
    pub body_len: u64,
}

/// Why a request cannot be served; each maps to a status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The head is not HTTP: 400.
    BadRequest(&'static str),
    /// A method other than `GET` or `HEAD`: 405.
    MethodNotAllowed,
    /// The request announces a body where none is taken, or in a way the
    /// server does not read (chunked): answered 400.
    HasBody,
    /// The body is longer than the handler takes for this request: 413.
    BodyTooLarge,
    /// The head is longer than [`MAX_HEAD`] or has more than
    /// [`MAX_HEADERS`] lines: 431.
    HeadTooLarge,
    /// An HTTP version other than 1.0 or 1.1: 505.
    VersionNotSupported,
}

impl HttpError {
    /// The status this error is answered with.
    pub const fn status(self) -> Status {
        match self {
            HttpError::BadRequest(_) | HttpError::HasBody => Status::BadRequest,
            HttpError::MethodNotAllowed => Status::MethodNotAllowed,
            HttpError::BodyTooLarge => Status::PayloadTooLarge,
            HttpError::HeadTooLarge => Status::HeadTooLarge,
            HttpError::VersionNotSupported => Status::VersionNotSupported,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadRequest(why) => write!(f, "bad request: {why}"),
            HttpError::MethodNotAllowed => f.write_str("only GET, HEAD, POST and DELETE are read"),
            HttpError::HasBody => f.write_str("this request takes no body (and no chunked one)"),
            HttpError::BodyTooLarge => f.write_str("the body is longer than this request takes"),
            HttpError::HeadTooLarge => write!(
                f,
                "request head longer than {MAX_HEAD} bytes or {MAX_HEADERS} header lines"
            ),
            HttpError::VersionNotSupported => f.write_str("only HTTP/1.0 and HTTP/1.1"),
        }
    }
}

/// A response status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 200.
    Ok,
    /// 202: taken, carried out after the answer.
    Accepted,
    /// 400.
    BadRequest,
    /// 404.
    NotFound,
    /// 409: the request was understood and refused (the state does not
    /// allow it).
    Conflict,
    /// 405.
    MethodNotAllowed,
    /// 413.
    PayloadTooLarge,
    /// 431.
    HeadTooLarge,
    /// 503: the server could not get its answer (from whoever serves it).
    Unavailable,
    /// 505.
    VersionNotSupported,
}

impl Status {
    /// Its code and reason phrase.
    pub const fn line(self) -> (u16, &'static str) {
        match self {
            Status::Ok => (200, "OK"),
            Status::Accepted => (202, "Accepted"),
            Status::BadRequest => (400, "Bad Request"),
            Status::NotFound => (404, "Not Found"),
            Status::Conflict => (409, "Conflict"),
            Status::MethodNotAllowed => (405, "Method Not Allowed"),
            Status::PayloadTooLarge => (413, "Payload Too Large"),
            Status::HeadTooLarge => (431, "Request Header Fields Too Large"),
            Status::Unavailable => (503, "Service Unavailable"),
            Status::VersionNotSupported => (505, "HTTP Version Not Supported"),
        }
    }
}

/// The end of a request head.
const HEAD_END: &[u8] = b"\r\n\r\n";

/// Parses the request head at the start of `buf`: `Ok(None)` while it is
/// incomplete (read more), the request once the blank line has arrived,
/// or why it cannot be served (answer, then close).
pub fn parse_request(buf: &[u8]) -> Result<Option<Request<'_>>, HttpError> {
    let Some(end) = buf.windows(HEAD_END.len()).position(|w| w == HEAD_END) else {
        return if buf.len() >= MAX_HEAD {
            Err(HttpError::HeadTooLarge)
        } else {
            Ok(None)
        };
    };
    let head_len = end + HEAD_END.len();
    if head_len > MAX_HEAD {
        return Err(HttpError::HeadTooLarge);
    }
    let head = core::str::from_utf8(&buf[..end])
        .map_err(|_| HttpError::BadRequest("the head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequest(
            "the request line is not `METHOD TARGET VERSION`",
        ));
    };
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "DELETE" => Method::Delete,
        m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => {
            return Err(HttpError::MethodNotAllowed);
        }
        _ => return Err(HttpError::BadRequest("the method is not a token")),
    };
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.starts_with("HTTP/") => return Err(HttpError::VersionNotSupported),
        _ => return Err(HttpError::BadRequest("the version is not HTTP/x.y")),
    };
    if !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(HttpError::BadRequest("the target is not an absolute path"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut body_len = None;
    for (n, line) in lines.enumerate() {
        if n >= MAX_HEADERS {
            return Err(HttpError::HeadTooLarge);
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(HttpError::BadRequest("a header line has no `:`"));
        };
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(HttpError::BadRequest(
                "a header name is empty or has spaces",
            ));
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            // Digits only (no sign, no list): RFC 9110 8.6; two that
            // differ are refused as request smuggling would need them.
            let n = (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
                .then(|| value.parse::<u64>().ok())
                .flatten()
                .ok_or(HttpError::BadRequest(
                    "Content-Length is not a number of bytes",
                ))?;
            if body_len.is_some_and(|b| b != n) {
                return Err(HttpError::BadRequest("two Content-Length headers differ"));
            }
            body_len = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::HasBody);
        }
    }
    Ok(Some(Request {
        method,
        path,
        query,
        keep_alive,
        head_len,
        body_len: body_len.unwrap_or(0),
    }))
}

/// The value of `key` in a query (`a=1&b=2`), if it is there.
pub fn query_value<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Why a query value could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A `%` not followed by two hex digits, at this byte of the value.
    BadEscape(usize),
    /// The decoded text is longer than the buffer (its length).
    TooLong(usize),
    /// The decoded bytes are not UTF-8.
    NotUtf8,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadEscape(at) => {
                write!(f, "byte {at}: `%` must be followed by two hex digits")
            }
            DecodeError::TooLong(max) => write!(f, "longer than {max} bytes once decoded"),
            DecodeError::NotUtf8 => write!(f, "not UTF-8 once decoded"),
        }
    }
}

/// A query value with its `%XX` escapes (and `+` for a space) decoded
/// into `out`.
pub fn percent_decoded<'o>(value: &str, out: &'o mut [u8]) -> Result<&'o str, DecodeError> {
    let bytes = value.as_bytes();
    let hex = |b: u8| char::from(b).to_digit(16);
    let (mut i, mut n) = (0, 0);
    while i < bytes.len() {
        let b = match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex);
                let lo = bytes.get(i + 2).copied().and_then(hex);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(DecodeError::BadEscape(i));
                };
                i += 3;
                (hi * 16 + lo) as u8
            }
            b'+' => {
                i += 1;
                b' '
            }
            b => {
                i += 1;
                b
            }
        };
        let max = out.len();
        *out.get_mut(n).ok_or(DecodeError::TooLong(max))? = b;
        n += 1;
    }
    core::str::from_utf8(&out[..n]).map_err(|_| DecodeError::NotUtf8)
}

/// Writes a response head for a body of `body_len` bytes of
/// `content_type` to `out`.
pub fn write_head(
    out: &mut impl Write,
    status: Status,
    content_type: &str,
    body_len: usize,
    keep_alive: bool,
) -> fmt::Result {
    let (code, reason) = status.line();
    let connection = if keep_alive { "keep-alive" } else { "close" };
    write!(
        out,
        "HTTP/1.1 {code} {reason}\r\nServer: corral-httpd\r\nContent-Type: {content_type}\r\nContent-Length: {body_len}\r\nConnection: {connection}\r\n\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_simple_get_is_parsed() {
        let r = parse_request(b"GET /stats?x=1 HTTP/1.1\r\nHost: a\r\n\r\nGET")
            .unwrap()
            .unwrap();
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path, "/stats");
        assert_eq!(r.query, "x=1");
        assert!(r.keep_alive);
        assert_eq!(r.head_len, 36);
    }

    #[test]
    fn a_post_without_a_body_is_parsed_with_its_query() {
        let r = parse_request(
            b"POST /v1/entries/web/scale?count=8 HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.method, Method::Post);
        assert_eq!((r.path, r.query), ("/v1/entries/web/scale", "count=8"));
        let r = parse_request(b"POST /v1 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
            .unwrap()
            .unwrap();
        assert_eq!((r.head_len, r.body_len), (40, 2));
        for bad in ["-1", "1,1", "x", "", "99999999999999999999999"] {
            let head = alloc::format!("POST /v1 HTTP/1.1\r\nContent-Length: {bad}\r\n\r\n");
            assert!(
                matches!(
                    parse_request(head.as_bytes()),
                    Err(HttpError::BadRequest(_))
                ),
                "{bad}"
            );
        }
        let twice = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert!(matches!(
            parse_request(twice),
            Err(HttpError::BadRequest(_))
        ));
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse_request(chunked), Err(HttpError::HasBody));
        let d = parse_request(b"DELETE /v1/links?a=x.0&b=y.1 HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((d.method, d.query), (Method::Delete, "a=x.0&b=y.1"));
        assert_eq!(
            parse_request(b"PUT /v1 HTTP/1.1\r\n\r\n"),
            Err(HttpError::MethodNotAllowed)
        );
        assert_eq!(query_value("a=1&count=8&name=x", "count"), Some("8"));
        assert_eq!(query_value("a=1&count=8", "name"), None);
        assert_eq!(query_value("", "name"), None);
    }

    #[test]
    fn an_incomplete_head_asks_for_more() {
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHost"), Ok(None));
        assert_eq!(parse_request(b""), Ok(None));
    }

    #[test]
    fn connection_headers_decide_keep_alive() {
        let p = |s: &str| parse_request(s.as_bytes()).unwrap().unwrap().keep_alive;
        assert!(!p("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!p("GET / HTTP/1.0\r\n\r\n"));
        assert!(p("GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n"));
        assert!(p("HEAD / HTTP/1.1\r\n\r\n"));
    }

    #[test]
    fn every_bad_head_gets_its_status() {
        let e = |s: &[u8]| parse_request(s).unwrap_err().status();
        assert_eq!(e(b"PUT / HTTP/1.1\r\n\r\n"), Status::MethodNotAllowed);
        assert_eq!(e(b"get / HTTP/1.1\r\n\r\n"), Status::BadRequest);
        assert_eq!(e(b"GET / HTTP/2.0\r\n\r\n"), Status::VersionNotSupported);
        assert_eq!(e(b"GET / FTP\r\n\r\n"), Status::BadRequest);
        assert_eq!(e(b"GET x HTTP/1.1\r\n\r\n"), Status::BadRequest);
        assert_eq!(e(b"GET / HTTP/1.1 x\r\n\r\n"), Status::BadRequest);
        assert_eq!(e(b"GET / HTTP/1.1\r\nno colon\r\n\r\n"), Status::BadRequest);
        assert_eq!(
            e(b"GET / HTTP/1.1\r\nContent-Length: x5\r\n\r\nhello"),
            Status::BadRequest
        );
        assert_eq!(
            e(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(HttpError::BodyTooLarge.status(), Status::PayloadTooLarge);
        assert_eq!(Status::PayloadTooLarge.line(), (413, "Payload Too Large"));
        assert_eq!(e(b"GET /\xff HTTP/1.1\r\n\r\n"), Status::BadRequest);
        assert_eq!(e(&[b'a'; MAX_HEAD]), Status::HeadTooLarge);
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "a: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(e(many.as_bytes()), Status::HeadTooLarge);
    }

    #[test]
    fn the_head_names_length_and_connection() {
        let mut s = String::new();
        write_head(&mut s, Status::NotFound, "text/plain", 9, false).unwrap();
        assert_eq!(
            s,
            "HTTP/1.1 404 Not Found\r\nServer: corral-httpd\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn query_values_are_percent_decoded_and_bad_escapes_named() {
        let mut buf = [0u8; 16];
        assert_eq!(percent_decoded("a%3Db%20c+d", &mut buf), Ok("a=b c d"));
        assert_eq!(percent_decoded("%25%2b", &mut buf), Ok("%+"));
        assert_eq!(percent_decoded("", &mut buf), Ok(""));
        for (bad, at) in [("%", 0), ("a%2", 1), ("%zz", 0), ("ab%4g", 2)] {
            assert_eq!(
                percent_decoded(bad, &mut buf),
                Err(DecodeError::BadEscape(at))
            );
        }
        assert_eq!(
            percent_decoded(&"x".repeat(17), &mut buf),
            Err(DecodeError::TooLong(16))
        );
        assert_eq!(percent_decoded("%ff", &mut buf), Err(DecodeError::NotUtf8));
    }

    proptest! {
        /// Any text survives escaping (every byte as `%XX`, or as itself
        /// when unreserved) and decoding; any value decodes or is refused,
        /// never panics.
        #[test]
        fn percent_decoding_round_trips_and_never_panics(
            text in "[ -~]{0,40}",
            raw in "\\PC{0,40}",
            escape in proptest::collection::vec(any::<bool>(), 40),
        ) {
            let mut encoded = alloc::string::String::new();
            for (b, e) in text.bytes().zip(escape.iter().cycle()) {
                if *e || !(b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
                    let _ = write!(encoded, "%{b:02x}");
                } else {
                    encoded.push(char::from(b));
                }
            }
            let mut buf = [0u8; 64];
            prop_assert_eq!(percent_decoded(&encoded, &mut buf), Ok(text.as_str()));
            let mut small = [0u8; 8];
            let _ = percent_decoded(&raw, &mut small);
        }

        /// Any bytes: an answer, never a panic, and a parsed request never
        /// claims more bytes than it was given.
        #[test]
        fn any_bytes_are_answered(buf in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(Some(r)) = parse_request(&buf) {
                prop_assert!(r.head_len <= buf.len());
                prop_assert!(r.path.starts_with('/'));
            // A body length is whatever digits said, nothing else.
            prop_assert!(r.body_len == 0 || buf.windows(15).any(|w| w.eq_ignore_ascii_case(b"content-length:")));
            }
        }

        /// Well-formed requests with arbitrary paths and headers parse.
        #[test]
        fn well_formed_requests_parse(
            path in "/[a-z0-9/._-]{0,40}",
            headers in proptest::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,30}"), 0..10),
        ) {
            let mut text = format!("GET {path} HTTP/1.1\r\n");
            for (n, v) in &headers {
                let lower = n.to_ascii_lowercase();
                if ["connection", "content-length", "transfer-encoding"].contains(&lower.as_str()) {
                    continue;
                }
                text.push_str(&format!("{n}: {v}\r\n"));
            }
            text.push_str("\r\n");
            let r = parse_request(text.as_bytes()).unwrap().unwrap();
            prop_assert_eq!(r.path, path.as_str());
            prop_assert_eq!(r.head_len, text.len());
            prop_assert!(r.keep_alive);
        }
    }
}
