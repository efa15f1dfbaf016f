//! `crash`: loads an empty IDT and executes `ud2`; the exception cannot be
//! delivered, so the CPU triple-faults and the hypervisor must stop this
//! guest (and only this guest).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use guest_lib::println;
use images::fault;

guest_lib::entry!(crash);

/// Exit code if execution somehow continues past `ud2`.
const EXIT_SURVIVED: i32 = 1;

fn crash(_info: &guest_lib::BootInfo) -> i32 {
    println!("crash: loading an empty IDT and executing ud2; expect a triple fault");
    fault::triple_fault();
    println!("crash: survived ud2 with an empty IDT; the hypervisor did not stop me");
    EXIT_SURVIVED
}
