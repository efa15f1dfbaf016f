//! `nat`: source NAT from port 0 to port 1, rewriting each UDP flow's source to `nat_ip=A.B.C.D` (required) and a port from `port_base=N` (default 20000) on, until the end-of-stream frame; frames from port 1 go back unchanged; `idle=N` sets the idle timeout in TSC ticks.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use guest_lib::println;
use images::nf::guest::{EXIT_BAD_ARGS, serve_function};
use images::nf::nat::{Nat, NatConfig};

guest_lib::entry!(nat);

/// The name the image prints under.
const IMAGE: &str = "nat";

fn nat(info: &guest_lib::BootInfo) -> i32 {
    match NatConfig::from_args(info.args) {
        Ok(config) => serve_function(IMAGE, info, &mut Nat::new(config)),
        Err(e) => {
            println!("{IMAGE}: {e}");
            EXIT_BAD_ARGS
        }
    }
}
