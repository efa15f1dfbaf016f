//! `hello`: greets with the VM's identity from the boot info and shows that
//! the heap works. With `crash-clone=K`, the VM whose name ends with `-K`
//! triple-faults instead; with `scribble-clone=K` it writes to its own
//! (shared, read-only) code (see `images::hello_plan`), so a fleet can hold
//! one failing clone.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::vec::Vec;
use guest_lib::println;
use images::fault;
use images::hello_plan::{self, Plan};

guest_lib::entry!(hello);

/// Bytes in a KiB.
const KIB: u64 = 1024;
/// How many squares to collect on the heap.
const SQUARES: u64 = 8;
/// Exit code for arguments it cannot use.
const EXIT_BAD_ARGS: i32 = 2;
/// Exit code if execution somehow continues past the triple fault.
const EXIT_SURVIVED: i32 = 1;

fn hello(info: &guest_lib::BootInfo) -> i32 {
    match hello_plan::plan(info.args, info.name) {
        Ok(Plan::Greet) => greet(info),
        Ok(Plan::Crash { clone }) => {
            println!("hello: I am clone {clone}, told to crash: triple-faulting");
            fault::triple_fault();
            println!("hello: survived a triple fault; the hypervisor did not stop me");
            EXIT_SURVIVED
        }
        Ok(Plan::Scribble { clone }) => {
            println!("hello: I am clone {clone}, told to write to my shared code");
            fault::write_own_code();
            println!("hello: wrote to shared code; the hypervisor did not stop me");
            EXIT_SURVIVED
        }
        Err(e) => {
            println!("hello: {e}");
            EXIT_BAD_ARGS
        }
    }
}

fn greet(info: &guest_lib::BootInfo) -> i32 {
    println!(
        "Hello from Corral: vm {} (index {}, core {}), {} KiB",
        info.name,
        info.vm_index,
        info.core,
        info.memory_size / KIB
    );
    let squares: Vec<u64> = (1..=SQUARES).map(|n| n * n).collect();
    let line = format!(
        "heap: {} KiB at {:#x}; squares from the heap: {:?}",
        info.heap_size / KIB,
        info.heap_start,
        squares
    );
    println!("{line}");
    0
}
