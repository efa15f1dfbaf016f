//! `crash`: loads an empty IDT and executes `ud2`; the exception cannot be
//! delivered, so the CPU triple-faults and the hypervisor must stop this
//! guest (and only this guest).
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::arch::asm;
use guest_lib::println;

guest_lib::entry!(crash);

/// Exit code if execution somehow continues past `ud2`.
const EXIT_SURVIVED: i32 = 1;

/// The operand of `lidt`: a 16-bit limit and a 64-bit base (Intel SDM vol.
/// 3A, 6.10).
#[repr(C, packed)]
struct DescriptorTablePointer {
    limit: u16,
    base: u64,
}

/// An IDT with no entries: every exception escalates to a triple fault.
const EMPTY_IDT: DescriptorTablePointer = DescriptorTablePointer { limit: 0, base: 0 };

fn crash(_info: &guest_lib::BootInfo) -> i32 {
    println!("crash: loading an empty IDT and executing ud2; expect a triple fault");
    let idt = EMPTY_IDT;
    // SAFETY: `lidt` at CPL0 reads the 10-byte operand (a live local) and
    // only changes how later exceptions are delivered: with a zero limit
    // they all become triple faults, which is the point, and interrupts are
    // off so nothing else is delivered. `ud2` then raises #UD. Neither
    // writes memory or the stack. If the hypervisor wrongly lets execution
    // continue, nothing Rust relies on has changed.
    unsafe {
        asm!("lidt [{idt}]", "ud2", idt = in(reg) &raw const idt,
            options(readonly, nostack, preserves_flags));
    }
    println!("crash: survived ud2 with an empty IDT; the hypervisor did not stop me");
    EXIT_SURVIVED
}
