//! `httpd`: an HTTP/1.1 server on smoltcp TCP over net port 0: a page at `/`, its counters as JSON at `/stats`, persistent connections, several at once.
//!
//! The server loop is `images::http::server` (shared with `ctl`): it
//! announces its address with a gratuitous ARP at start, then serves until
//! it has answered `requests` requests (exit 0) or nothing happened for
//! the idle timeout (exit 2). Reports metrics `requests`, `connections`
//! and `bad_requests` before it exits.
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
use core::fmt::Write;
use guest_lib::println;
use images::http::server::{self, Counters, Handler, Reply};
use images::http::{Method, Status};

guest_lib::entry!(httpd);

/// The page and the counters.
struct Pages<'a> {
    name: &'a str,
}

impl Handler for Pages<'_> {
    fn answer(&mut self, method: Method, path: &str, _query: &str, c: &Counters) -> Reply {
        let name = self.name;
        let mut body = String::new();
        if matches!(method, Method::Post | Method::Delete) {
            let _ = writeln!(body, "only GET and HEAD are served here");
            return Reply {
                status: Status::MethodNotAllowed,
                content_type: "text/plain",
                body,
            };
        }
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
                let _ = writeln!(body, "no page at {path}");
                (Status::NotFound, "text/plain")
            }
        };
        Reply {
            status,
            content_type,
            body,
        }
    }
}

fn httpd(info: &guest_lib::BootInfo) -> i32 {
    let s = match server::settings(info.args) {
        Ok(s) => s,
        Err(e) => {
            println!("httpd: {e}");
            return server::EXIT_BAD_ARGS;
        }
    };
    let (code, c) = server::run(info, &s, "httpd", &mut Pages { name: info.name });
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
