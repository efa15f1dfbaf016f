//! `forward`: an L2 forwarder passing every frame from port 0 to port 1 and back, unchanged, until the end-of-stream frame; `idle=N` sets the idle timeout in TSC ticks.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use images::nf::function::Forward;
use images::nf::guest::serve_function;

guest_lib::entry!(forward);

fn forward(info: &guest_lib::BootInfo) -> i32 {
    serve_function("forward", info, &mut Forward::default())
}
