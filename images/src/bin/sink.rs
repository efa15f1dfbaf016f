//! `sink`: receives frames on port 0 until the end-of-stream frame and verifies and counts them (`received`, `valid`, `checksum_bad`, `malformed`, `nat_ok`, `ignored`, `announced`); `expect_src=A.B.C.D` is the source `nat_ok` counts, `idle=N` the idle timeout in TSC ticks (`end=idle`: that timeout is the normal end, exit 0, for a sink no end-of-stream frame reaches), `pause_after=K pause=T` stops reading for T ticks after the K-th frame.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use guest_lib::println;
use images::nf::guest::{EXIT_BAD_ARGS, serve_sink};
use images::nf::sink::Sink;

guest_lib::entry!(sink);

/// The name the image prints under.
const IMAGE: &str = "sink";

fn sink(info: &guest_lib::BootInfo) -> i32 {
    match Sink::from_args(info.args) {
        Ok(mut s) => serve_sink(IMAGE, info, &mut s),
        Err(e) => {
            println!("{IMAGE}: {e}");
            EXIT_BAD_ARGS
        }
    }
}
