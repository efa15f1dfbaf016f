//! `spin`: CPU-bound work for scheduling tests. Reports the APIC ID of the
//! core it starts on (`apic_start`), runs `work=N` iterations of integer
//! arithmetic with a progress line after each quarter, then reports the
//! APIC ID it ends on (`apic_end`), the checksum and the elapsed TSC ticks,
//! and exits 0.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use guest_lib::hypercall::{self, InvalidMetricName};
use guest_lib::println;
use guest_lib::time::Instant;
use images::spin_plan::{self, PROGRESS_STEPS, SEED};

guest_lib::entry!(spin);

/// Exit code for arguments it cannot use.
const EXIT_BAD_ARGS: i32 = 2;
/// Exit code when a metric could not be reported.
const EXIT_METRIC_FAILED: i32 = 1;
/// Percent per progress step.
const PERCENT_PER_STEP: u64 = 100 / PROGRESS_STEPS;

fn spin(info: &guest_lib::BootInfo) -> i32 {
    let work = match spin_plan::work(info.args) {
        Ok(work) => work,
        Err(e) => {
            println!("spin: {e}");
            return EXIT_BAD_ARGS;
        }
    };
    let apic_start = hypercall::core_id();
    if let Err(e) = hypercall::metric("apic_start", u64::from(apic_start)) {
        println!("spin: {e}");
        return EXIT_METRIC_FAILED;
    }
    println!("spin: {work} iterations, starting on APIC {apic_start}");
    let exits = spin_plan::exits(info.args);
    let start = Instant::now();
    let mut x = SEED;
    let mut done = 0;
    for n in 1..=PROGRESS_STEPS {
        let end = spin_plan::step_end(work, n);
        if exits {
            for i in done..end {
                x = spin_plan::step(x, i);
                hypercall::null();
            }
        } else {
            x = spin_plan::run(x, done, end);
        }
        done = end;
        println!(
            "spin: {}% ({done} of {work}) on APIC {}",
            n * PERCENT_PER_STEP,
            hypercall::core_id()
        );
    }
    let ticks = start.elapsed_ticks();
    let apic_end = hypercall::core_id();
    if let Err(e) = report(apic_end, x, ticks) {
        println!("spin: {e}");
        return EXIT_METRIC_FAILED;
    }
    println!("spin: done on APIC {apic_end}, checksum {x:#018x}, {ticks} ticks");
    0
}

fn report(apic_end: u32, checksum: u64, ticks: u64) -> Result<(), InvalidMetricName> {
    hypercall::metric("apic_end", u64::from(apic_end))?;
    hypercall::metric("checksum", checksum)?;
    hypercall::metric("elapsed_ticks", ticks)
}
