//! `firewall`: drops frames from port 0 that match a `deny=NAME:FIELD=VALUE` rule (up to 8) and passes the rest to port 1 (frames from port 1 go back unchanged) until the end-of-stream frame; `idle=N` sets the idle timeout in TSC ticks, and `end=idle` makes that timeout the normal end (exit 0) for a firewall at the wire, where no end-of-stream frame comes.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use guest_lib::println;
use images::nf::firewall::Firewall;
use images::nf::guest::{EXIT_BAD_ARGS, serve_function};

guest_lib::entry!(firewall);

/// The name the image prints under.
const IMAGE: &str = "firewall";

fn firewall(info: &guest_lib::BootInfo) -> i32 {
    match Firewall::from_args(info.args) {
        Ok(mut f) => serve_function(IMAGE, info, &mut f),
        Err(e) => {
            println!("{IMAGE}: {e}");
            EXIT_BAD_ARGS
        }
    }
}
