//! `hello`: greets with the VM's identity from the boot info and shows that
//! the heap works.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::format;
use alloc::vec::Vec;
use guest_lib::println;

guest_lib::entry!(hello);

/// Bytes in a KiB.
const KIB: u64 = 1024;
/// How many squares to collect on the heap.
const SQUARES: u64 = 8;

fn hello(info: &guest_lib::BootInfo) -> i32 {
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
