//! A Solo5 hvt unikernel written with guest-lib's hvt runtime (not Corral's ABI): what it does comes from its command line — `Hello_Solo5` (prints the line, SUCCESS), `time`, `globals`, `fpu`, `abort`, `port` (a port outside the hypercalls), `fault` (a store to unmapped memory).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

guest_lib::hvt_entry!(hvt_main);

#[cfg(target_os = "none")]
use core::sync::atomic::{AtomicU32, Ordering};
#[cfg(target_os = "none")]
use guest_lib::hvt::{cmdline, halt, out_port, poke, poll, puts, rdtsc, walltime};

/// 2017-01-01 in nanoseconds since the epoch: a wall clock before it is
/// wrong (Solo5's own time test uses the same bound).
#[cfg(target_os = "none")]
const WALL_2017: u64 = 1_483_228_800 * 1_000_000_000;

#[cfg(target_os = "none")]
static GLOBAL: AtomicU32 = AtomicU32::new(41);

#[cfg(target_os = "none")]
fn success() -> i32 {
    puts(b"SUCCESS\n");
    0
}

#[cfg(target_os = "none")]
fn hvt_main(info: &vmm_abi::hvt::BootInfo) -> i32 {
    let line = cmdline(info);
    match line {
        "Hello_Solo5" => {
            puts(b"Hello, World\nCommand line is: '");
            puts(line.as_bytes());
            puts(b"'\n");
            success()
        }
        "time" => {
            let wall = walltime();
            let t0 = rdtsc();
            poll(1_000_000);
            let t1 = rdtsc();
            if wall < WALL_2017 || t1 <= t0 || info.cpu_cycle_freq == 0 {
                puts(b"time: FAILURE\n");
                return 1;
            }
            success()
        }
        "globals" => {
            if GLOBAL.fetch_add(1, Ordering::Relaxed) != 41 || GLOBAL.load(Ordering::Relaxed) != 42
            {
                return 1;
            }
            success()
        }
        "fpu" => {
            let x = core::hint::black_box(1.5f64);
            let y = x * x + core::hint::black_box(0.25);
            if y != 2.5 {
                return 1;
            }
            success()
        }
        "abort" => {
            puts(b"Solo5: ABORT: requested by the test\n");
            halt(vmm_abi::hvt::EXIT_ABORT)
        }
        "port" => {
            out_port(0x60, 1);
            success()
        }
        "fault" => {
            poke(0x4_0000_0000);
            success()
        }
        _ => {
            puts(b"unknown test: ");
            puts(line.as_bytes());
            puts(b"\n");
            1
        }
    }
}

#[cfg(not(target_os = "none"))]
fn hvt_main(_: &vmm_abi::hvt::BootInfo) -> i32 {
    0
}
