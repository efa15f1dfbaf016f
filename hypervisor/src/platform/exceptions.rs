//! Hypervisor exception entry stubs and the report they lead to. Any CPU
//! exception in the hypervisor is a bug: it is printed (vector, name, core,
//! error code, RIP, CR2) as a console line and a `fatal` record, and the
//! machine stops. Every core's IDT points at the same stubs.

use super::instr;
use crate::console::StackStr;
use core::arch::naked_asm;

/// Stack contents when the common handler runs.
#[repr(C)]
struct Frame {
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
}

const NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 error",
    "alignment check",
    "machine check",
    "SIMD error",
    "virtualization",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security",
    "reserved",
];

extern "C" fn report(frame: &Frame) -> ! {
    let name = NAMES
        .get(frame.vector as usize)
        .copied()
        .unwrap_or("unknown");
    let text = StackStr::<200>::format(format_args!(
        "CPU exception {} ({name}) in the hypervisor on core {}: error {:#x}, rip {:#x}, cs {:#x}, rflags {:#x}, cr2 {:#x}",
        frame.vector,
        super::smp::current_core(),
        frame.error,
        frame.rip,
        frame.cs,
        frame.rflags,
        instr::read_cr2()
    ));
    super::halt::fatal(text.as_str())
}

#[unsafe(naked)]
extern "C" fn common() {
    naked_asm!(
        "mov rdi, rsp",
        "and rsp, -16",
        "call {report}",
        "ud2",
        report = sym report,
    )
}

macro_rules! stub {
    ($name:ident, $vector:literal, error_code) => {
        #[unsafe(naked)]
        extern "C" fn $name() {
            naked_asm!(concat!("push ", $vector), "jmp {c}", c = sym common)
        }
    };
    ($name:ident, $vector:literal) => {
        #[unsafe(naked)]
        extern "C" fn $name() {
            naked_asm!("push 0", concat!("push ", $vector), "jmp {c}", c = sym common)
        }
    };
}

stub!(v0, 0);
stub!(v1, 1);
stub!(v2, 2);
stub!(v3, 3);
stub!(v4, 4);
stub!(v5, 5);
stub!(v6, 6);
stub!(v7, 7);
stub!(v8, 8, error_code);
stub!(v9, 9);
stub!(v10, 10, error_code);
stub!(v11, 11, error_code);
stub!(v12, 12, error_code);
stub!(v13, 13, error_code);
stub!(v14, 14, error_code);
stub!(v15, 15);
stub!(v16, 16);
stub!(v17, 17, error_code);
stub!(v18, 18);
stub!(v19, 19);
stub!(v20, 20);
stub!(v21, 21, error_code);
stub!(v22, 22);
stub!(v23, 23);
stub!(v24, 24);
stub!(v25, 25);
stub!(v26, 26);
stub!(v27, 27);
stub!(v28, 28);
stub!(v29, 29, error_code);
stub!(v30, 30, error_code);
stub!(v31, 31);

/// Entry stubs for vectors 0..32, in order.
pub static STUBS: [extern "C" fn(); 32] = [
    v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15, v16, v17, v18, v19, v20,
    v21, v22, v23, v24, v25, v26, v27, v28, v29, v30, v31,
];
