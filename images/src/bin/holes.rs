//! `holes`: a hostile guest that tries the five ways around Corral's promises its issue names, one per `mode=`, and a noisy neighbour for the console benchmark.
//!
//! - `wait`: calls `wait_for_work(u64::MAX)` forever; its budget must still
//!   stop it, on a shared core too.
//! - `compat16`, `compat32`: loads its own GDT, switches to a 16- or 32-bit
//!   compatibility-mode code segment and stores to device slot 0 (the
//!   16-bit store is `89 06 04 01`, `mov [0x104], ax` through a data
//!   segment based at the device page); device accesses are only emulated
//!   for 64-bit code.
//! - `pfpush`: points RSP into device page 0 and makes a page fault, so the
//!   CPU pushes the fault's frame onto the device page; that push must not
//!   be emulated as the faulting instruction's store.
//! - `idtdev`: loads an IDT based at device page 0 and executes `int3`.
//! - `rdpmc`, `movdr`, `wbinvd`: instructions guests are denied on purpose
//!   (a performance counter, debug register 7, a cache flush).
//! - `spam`: `count=N` console writes of 4 KiB of bytes that all need
//!   escaping, then exits with `code=` (default 0).
//! - `busy`: `count=N` rounds of arithmetic, no output, exits 0.
//!
//! The hostile modes need a device in slot 0 (`console = true` will do).
//! Exit codes: 1 if the hypervisor let the attempt through, 2 for unusable
//! arguments.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::arch::{asm, global_asm};
use guest_lib::args::{Args, parse_u64};
use guest_lib::hypercall::{console_write, metric, wait_for_work};
use guest_lib::{BootInfo, println};
use vmm_abi::corral::devices::DeviceKind;
use vmm_abi::corral::layout::device_gpa;

guest_lib::entry!(holes);

/// Exit code when the hypervisor let the attempt through.
const EXIT_SURVIVED: i32 = 1;
/// Exit code for unusable arguments.
const EXIT_BAD_ARGS: i32 = 2;

/// Bytes per `spam` console write.
const SPAM_BYTES: usize = 4096;
/// A byte the console must escape (`\x01`, four bytes out).
const SPAM_BYTE: u8 = 0x01;

/// Offset of the virtio-mmio `Status` register in a device page.
const STATUS_REGISTER: u64 = 0x70;
/// Where `pfpush` puts RSP: the fault frame lands just below, in the page.
const PUSH_OFFSET: u64 = 0x100;
/// A linear address the guest's page tables do not map (they cover the
/// first 2 GiB): a store there is a page fault.
const UNMAPPED: u64 = 0x1_0000_0000;

// GDT selectors of this guest's own table.
const SEL_CODE64: u16 = 0x08;
const SEL_CODE32: u64 = 0x10;
const SEL_CODE16: u64 = 0x18;
const SEL_DATA_FLAT: u64 = 0x20;
const SEL_DATA_DEVICE: u64 = 0x28;
/// Entries in that table.
const GDT_ENTRIES: usize = 6;

// Descriptor bits (SDM Vol. 3A, 3.4.5): access bytes with the accessed bit
// already set, so loading a selector never writes the table.
const ACCESS_CODE: u8 = 0x9b;
const ACCESS_DATA: u8 = 0x93;
const FLAG_GRANULARITY: u8 = 0x8;
const FLAG_DB32: u8 = 0x4;
const FLAG_LONG: u8 = 0x2;
/// A 64-bit interrupt gate, present, DPL 0 (SDM Vol. 3A, 6.14.1).
const GATE_INTERRUPT: u64 = 0x8e;
/// Vector of a page fault.
const VECTOR_PF: usize = 14;

/// A flat 64-bit code segment.
const CODE64: u64 = descriptor(0, 0xf_ffff, ACCESS_CODE, FLAG_GRANULARITY | FLAG_LONG);

/// A segment descriptor.
const fn descriptor(base: u32, limit: u32, access: u8, flags: u8) -> u64 {
    (limit as u64 & 0xffff)
        | ((base as u64 & 0xff_ffff) << 16)
        | ((access as u64) << 40)
        | (((limit as u64 >> 16) & 0xf) << 48)
        | ((flags as u64 & 0xf) << 52)
        | ((base as u64 >> 24) << 56)
}

/// The operand of `lgdt`/`lidt`.
#[repr(C, packed)]
struct TablePointer {
    limit: u16,
    base: u64,
}

// The compatibility-mode code, as bytes so the assembler cannot pick
// another encoding: a store to the device page, then a jump to itself
// (where a hypervisor that mis-emulated the store would leave it).
global_asm!(
    ".pushsection .text.holes_compat, \"ax\"",
    ".balign 16",
    ".global holes_compat16",
    "holes_compat16:",
    // mov [0x104], ax (16-bit addressing, DS = the device page)
    ".byte 0x89, 0x06, 0x04, 0x01",
    ".byte 0xeb, 0xfe",
    ".balign 16",
    ".global holes_compat32",
    "holes_compat32:",
    // mov [esi], eax
    ".byte 0x89, 0x06",
    ".byte 0xeb, 0xfe",
    ".popsection",
);

unsafe extern "C" {
    static holes_compat16: u8;
    static holes_compat32: u8;
}

fn holes(info: &BootInfo) -> i32 {
    let args = Args::new(info.args);
    let count = match args.value("count").map(parse_u64) {
        None => 1,
        Some(Some(n)) => n,
        Some(None) => {
            println!("holes: count= must be a number");
            return EXIT_BAD_ARGS;
        }
    };
    let code = match args.value("code").map(parse_u64) {
        None => 0,
        Some(Some(c)) => c as i32,
        Some(None) => {
            println!("holes: code= must be a number");
            return EXIT_BAD_ARGS;
        }
    };
    let mode = args.value("mode").unwrap_or("");
    let device = matches!(mode, "compat16" | "compat32" | "pfpush" | "idtdev");
    if device && info.devices[0] == DeviceKind::None {
        println!("holes: mode={mode} needs a device in slot 0 (console = true)");
        return EXIT_BAD_ARGS;
    }
    match mode {
        "wait" => wait_forever(),
        "compat16" => compat(true),
        "compat32" => compat(false),
        "pfpush" => fault_frame_on_device(),
        "idtdev" => idt_on_device(),
        "rdpmc" | "movdr" | "wbinvd" => denied(mode),
        "spam" => return spam(count, code),
        "busy" => return busy(count),
        _ => {
            println!(
                "holes: needs mode=wait, compat16, compat32, pfpush, idtdev, rdpmc, movdr, wbinvd, spam or busy"
            );
            return EXIT_BAD_ARGS;
        }
    }
    println!("holes: mode={mode} went through; the hypervisor did not stop me");
    EXIT_SURVIVED
}

/// Waits for work that never comes, for ever.
fn wait_forever() {
    println!("holes: waiting for work with no timeout, for ever");
    loop {
        wait_for_work(u64::MAX);
    }
}

/// Switches to a compatibility-mode code segment (16- or 32-bit) and
/// stores to device page 0 from there. Never returns if the hypervisor
/// does its job.
fn compat(sixteen: bool) {
    let dev = device_gpa(0);
    let stub16 = &raw const holes_compat16 as u64;
    let stub32 = &raw const holes_compat32 as u64;
    let gdt: [u64; GDT_ENTRIES] = [
        0,
        CODE64,
        descriptor(0, 0xf_ffff, ACCESS_CODE, FLAG_GRANULARITY | FLAG_DB32),
        // 16-bit code based at the stub, so IP 0 is its first byte.
        descriptor(stub16 as u32, 0xffff, ACCESS_CODE, 0),
        descriptor(0, 0xf_ffff, ACCESS_DATA, FLAG_GRANULARITY | FLAG_DB32),
        // 16-bit data based at the device page.
        descriptor(dev as u32, 0xffff, ACCESS_DATA, 0),
    ];
    let pointer = TablePointer {
        limit: (GDT_ENTRIES * 8 - 1) as u16,
        base: &raw const gdt as u64,
    };
    let (selector, target, data) = if sixteen {
        (SEL_CODE16, 0, SEL_DATA_DEVICE)
    } else {
        (SEL_CODE32, stub32, SEL_DATA_FLAT)
    };
    println!(
        "holes: switching to {}-bit compatibility mode to store to device page {dev:#x}",
        if sixteen { 16 } else { 32 }
    );
    // SAFETY: loads this guest's own GDT (a live local the CPU only reads:
    // every descriptor already has its accessed bit), loads DS with one of
    // its data segments and far-returns into one of the stubs above, which
    // store to the device page and then spin. Nothing Rust relies on is
    // touched, and control never comes back here.
    unsafe {
        asm!(
            "lgdt [{gdtr}]",
            "mov ds, {data:e}",
            "push {sel}",
            "push {target}",
            "retfq",
            gdtr = in(reg) &raw const pointer,
            data = in(reg) data,
            sel = in(reg) selector,
            target = in(reg) target,
            in("rsi") dev + STATUS_REGISTER,
            in("eax") 0u32,
            options(noreturn),
        );
    }
}

/// Never runs: the page-fault handler of `pfpush`'s IDT.
extern "C" fn never_handled() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Loads a GDT and an IDT with a page-fault gate (through its 64-bit code
/// segment), points RSP into device page 0 and stores to an unmapped
/// address: delivering the page fault pushes its frame onto the device
/// page.
fn fault_frame_on_device() {
    let dev = device_gpa(0);
    let gdt: [u64; 2] = [0, CODE64];
    let gdtr = TablePointer {
        limit: (core::mem::size_of_val(&gdt) - 1) as u16,
        base: &raw const gdt as u64,
    };
    let cs = SEL_CODE64;
    let handler = never_handled as *const () as u64;
    let mut idt = [0u64; 2 * (VECTOR_PF + 1)];
    idt[2 * VECTOR_PF] = (handler & 0xffff)
        | (u64::from(cs) << 16)
        | (GATE_INTERRUPT << 40)
        | (((handler >> 16) & 0xffff) << 48);
    idt[2 * VECTOR_PF + 1] = handler >> 32;
    let pointer = TablePointer {
        limit: (core::mem::size_of_val(&idt) - 1) as u16,
        base: &raw const idt as u64,
    };
    println!(
        "holes: page fault with RSP at {:#x} (device page)",
        dev + PUSH_OFFSET
    );
    // SAFETY: loads a GDT and an IDT (live locals the CPU only reads; the
    // code descriptor is already marked accessed) whose page-
    // fault gate is valid, moves RSP into the device page and stores to an
    // address the guest's tables do not map. The fault's delivery pushes
    // onto the device page, which exits to the hypervisor; control never
    // comes back here.
    unsafe {
        asm!(
            "lgdt [{gdtr}]",
            "lidt [{idtr}]",
            "mov rsp, {sp}",
            "mov dword ptr [{bad}], eax",
            "2: jmp 2b",
            gdtr = in(reg) &raw const gdtr,
            idtr = in(reg) &raw const pointer,
            sp = in(reg) dev + PUSH_OFFSET,
            bad = in(reg) UNMAPPED,
            in("eax") 0u32,
            options(noreturn),
        );
    }
}

/// Loads an IDT based at device page 0 and executes `int3`: the CPU reads
/// the gate from the device page.
fn idt_on_device() {
    let dev = device_gpa(0);
    let pointer = TablePointer {
        limit: 0xfff,
        base: dev,
    };
    println!("holes: int3 with the IDT at {dev:#x} (device page)");
    // SAFETY: `lidt` reads the 10-byte operand (a live local); `int3` then
    // makes the CPU read its gate from the device page, which exits to the
    // hypervisor. Nothing in memory changes.
    unsafe {
        asm!(
            "lidt [{idtr}]",
            "int3",
            idtr = in(reg) &raw const pointer,
            options(nostack),
        );
    }
}

/// Executes one instruction guests are denied.
fn denied(mode: &str) {
    println!("holes: executing a denied instruction ({mode})");
    // SAFETY: each is a CPL0 instruction that touches no memory: RDPMC
    // reads counter 0 into EDX:EAX, MOV from DR7 reads a register, WBINVD
    // writes back caches (harmless to this guest's data). The hypervisor
    // is meant to stop the guest at each; if it does not, nothing Rust
    // relies on changed.
    unsafe {
        match mode {
            "rdpmc" => asm!("rdpmc", in("ecx") 0u32, out("eax") _, out("edx") _,
                options(nomem, nostack, preserves_flags)),
            "movdr" => asm!("mov {0}, dr7", out(reg) _, options(nomem, nostack, preserves_flags)),
            _ => asm!("wbinvd", options(nostack, preserves_flags)),
        }
    }
}

/// Writes `count` blocks of bytes that all need escaping; exits `code`.
fn spam(count: u64, code: i32) -> i32 {
    let block = [SPAM_BYTE; SPAM_BYTES];
    for _ in 0..count {
        console_write(&block);
    }
    code
}

/// `count` rounds of arithmetic with no output.
fn busy(count: u64) -> i32 {
    let mut x: u64 = 1;
    for i in 0..count {
        x = core::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
    }
    match metric("busy_checksum", x & 0xffff) {
        Ok(()) => 0,
        Err(_) => EXIT_BAD_ARGS,
    }
}
