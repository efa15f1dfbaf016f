//! A Solo5 hvt unikernel written with guest-lib's hvt runtime (not Corral's ABI): what it does comes from its command line — `Hello_Solo5` (prints the line, SUCCESS), `time`, `globals`, `fpu`, `abort`, `port` (a port outside the hypercalls), `fault` (a store to unmapped memory, no handlers: a triple fault), `exception` (the same with Solo5's trap handlers: ABORT, status 255), `tls` (FS_BASE set, then read through `fs:`), `quiet` (prints nothing), `bench` (hypercall round trips, printed as `hvt bench: puts16=<hundredths> walltime=<hundredths>`).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

guest_lib::hvt_entry!(hvt_main);

#[cfg(target_os = "none")]
use core::sync::atomic::{AtomicU32, Ordering};
#[cfg(target_os = "none")]
use guest_lib::hvt::{
    cmdline, halt, install_trap_handlers, out_port, poke, poll, puts, rdtsc, read_fs0,
    set_tls_base, walltime,
};

/// 2017-01-01 in nanoseconds since the epoch: a wall clock before it is
/// wrong (Solo5's own time test uses the same bound).
#[cfg(target_os = "none")]
const WALL_2017: u64 = 1_483_228_800 * 1_000_000_000;

#[cfg(target_os = "none")]
static GLOBAL: AtomicU32 = AtomicU32::new(41);

/// What the `tls` test finds through `fs:` once FS_BASE points here.
#[cfg(target_os = "none")]
static TLS_BLOCK: [u64; 2] = [0x7115_0000_5eed_0001, 0];

/// Round trips each bench loop times.
#[cfg(target_os = "none")]
const BENCH_CALLS: u64 = 1000;

/// Writes `v` in decimal.
#[cfg(target_os = "none")]
fn put_u64(v: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    let mut n = v;
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    puts(&buf[at..]);
}

/// TSC ticks per call of `f`, in hundredths, over [`BENCH_CALLS`] calls.
#[cfg(target_os = "none")]
fn per_call(mut f: impl FnMut()) -> u64 {
    let t0 = rdtsc();
    for _ in 0..BENCH_CALLS {
        f();
    }
    (rdtsc() - t0) * 100 / BENCH_CALLS
}

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
        "bench" => {
            // 16 bytes, no newline: the console's line buffer takes them.
            let puts16 = per_call(|| puts(b"corral-hvt-bench"));
            let wall = per_call(|| {
                core::hint::black_box(walltime());
            });
            puts(b"\nhvt bench: puts16=");
            put_u64(puts16);
            puts(b" walltime=");
            put_u64(wall);
            puts(b"\n");
            success()
        }
        "tls" => {
            set_tls_base(TLS_BLOCK.as_ptr() as u64);
            let seen = read_fs0();
            set_tls_base(0);
            if seen != TLS_BLOCK[0] {
                puts(b"tls: FAILURE\n");
                return 1;
            }
            success()
        }
        "quiet" => 0,
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
        "exception" => {
            // Solo5's exception test: the same store, with the trap
            // handlers Solo5's bindings install.
            install_trap_handlers();
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
