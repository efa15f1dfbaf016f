//! `badcall`: makes hypercalls and executes instructions a guest must not
//! get away with (an unknown hypercall, bad pointers, MSR and port access);
//! the first one should get it stopped. Arguments: see
//! `images::badcall_plan`.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::arch::asm;
use guest_lib::{hypercall, println};
use images::badcall_plan::{
    APIC_BASE_DEFAULT, BAD_POINTER_LEN, HOST_SERIAL_PORT, IA32_APIC_BASE, POST_CODE_PORT, Step,
    UNKNOWN_HYPERCALL, WRAPPING_POINTER, steps,
};
use vmm_abi::corral::hypercall::Hypercall;

guest_lib::entry!(badcall);

/// Exit code when every step went through: isolation is broken.
const EXIT_SURVIVED: i32 = 1;
/// Exit code for arguments `badcall` cannot act on.
const EXIT_BAD_ARGS: i32 = 2;
/// Byte written to the POST-code port.
const POST_CODE: u8 = 0;

fn badcall(info: &guest_lib::BootInfo) -> i32 {
    let steps = match steps(info.args) {
        Ok(steps) => steps,
        Err(word) => {
            println!("badcall: unknown step `{word}`");
            return EXIT_BAD_ARGS;
        }
    };
    for (i, &step) in steps.iter().enumerate() {
        println!("badcall: step {} of {}: {step}", i + 1, steps.len());
        let result = run(step, info.memory_size);
        println!(
            "badcall: step `{}` went through (result {result:#x})",
            step.word()
        );
    }
    println!("badcall: every step went through; the hypervisor did not stop me");
    EXIT_SURVIVED
}

/// Performs `step`; returns what it produced (a hypercall result, an MSR
/// value, a port byte), or zero for writes.
fn run(step: Step, memory_size: u64) -> u64 {
    let console_write = Hypercall::ConsoleWrite.number();
    match step {
        Step::UnknownHypercall => hypercall::raw(UNKNOWN_HYPERCALL, 0, 0, 0),
        Step::BadPointer => hypercall::raw(console_write, memory_size, BAD_POINTER_LEN, 0),
        Step::WrappingPointer => {
            hypercall::raw(console_write, WRAPPING_POINTER, BAD_POINTER_LEN, 0)
        }
        Step::MsrRead => rdmsr(IA32_APIC_BASE),
        Step::MsrWrite => {
            wrmsr(IA32_APIC_BASE, APIC_BASE_DEFAULT);
            0
        }
        Step::IoRead => u64::from(inb(HOST_SERIAL_PORT)),
        Step::IoWrite => {
            outb(POST_CODE_PORT, POST_CODE);
            0
        }
    }
}

fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: `rdmsr` at CPL0 only writes EDX:EAX (declared outputs) and
    // touches no memory. IA32_APIC_BASE exists on every x86-64 CPU, so even
    // a hypervisor that let the read through would not fault; reading it
    // changes nothing.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi,
            options(nomem, nostack, preserves_flags));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

fn wrmsr(msr: u32, value: u64) {
    // SAFETY: `wrmsr` at CPL0 touches no memory and no register besides its
    // inputs. The value is the architectural default APIC base, which moves
    // nothing the Rust program uses (the APIC page is not Rust memory).
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
            options(nomem, nostack, preserves_flags));
    }
}

fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: `in` at CPL0 reads one byte from an I/O port into AL (the
    // declared output); it touches no memory.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags));
    }
    value
}

fn outb(port: u16, value: u8) {
    // SAFETY: `out` at CPL0 writes one byte to an I/O port; it touches no
    // memory and no register.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags));
    }
}
