//! `bench`: measures the hypercall round trip with `Null` calls and reports
//! it as metrics, in TSC ticks (instructions, under the emulator).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use guest_lib::hypercall::{self, InvalidMetricName};
use guest_lib::println;
use guest_lib::time::Instant;

guest_lib::entry!(bench);

/// Calls made before measuring, to warm caches and the exit path.
const WARMUP_CALLS: u64 = 100;
/// Calls measured.
const MEASURED_CALLS: u64 = 10_000;
/// Scale of the fixed-point metric (hundredths of a tick).
const HUNDREDTHS: u64 = 100;
/// Exit code when the metrics could not be reported.
const EXIT_METRIC_FAILED: i32 = 1;

fn bench(_info: &guest_lib::BootInfo) -> i32 {
    println!("bench: {MEASURED_CALLS} null hypercalls after {WARMUP_CALLS} to warm up");
    for _ in 0..WARMUP_CALLS {
        hypercall::null();
    }
    let start = Instant::now();
    for _ in 0..MEASURED_CALLS {
        hypercall::null();
    }
    let total = start.elapsed_ticks();
    let per_call = total / MEASURED_CALLS;
    let per_call_x100 = total.saturating_mul(HUNDREDTHS) / MEASURED_CALLS;
    if let Err(e) = report(per_call, per_call_x100) {
        println!("bench: {e}");
        return EXIT_METRIC_FAILED;
    }
    println!(
        "bench: {total} ticks for {MEASURED_CALLS} calls, {}.{:02} ticks per round trip",
        per_call_x100 / HUNDREDTHS,
        per_call_x100 % HUNDREDTHS
    );
    0
}

fn report(per_call: u64, per_call_x100: u64) -> Result<(), InvalidMetricName> {
    hypercall::metric("hypercall_roundtrip", per_call)?;
    hypercall::metric("hypercall_roundtrip_x100", per_call_x100)?;
    hypercall::metric("hypercall_iterations", MEASURED_CALLS)
}
