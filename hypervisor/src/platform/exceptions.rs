//! Hypervisor exception entry stubs and the report they lead to. Any CPU
//! exception in the hypervisor is a bug: it is printed (vector, name, core,
//! error code, RIP, CR2) as a console line and a `fatal` record, and the
//! machine stops. Every core's IDT (the `x86_64` crate's table, filled by
//! [`install`]) points at the same stubs.

use super::instr;
use crate::console::StackStr;
use core::arch::naked_asm;
use x86_64::VirtAddr;
use x86_64::structures::gdt::SegmentSelector;
use x86_64::structures::idt::InterruptDescriptorTable;

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

/// A stub's address, as an IDT gate takes it.
fn entry(stub: extern "C" fn()) -> VirtAddr {
    VirtAddr::new(stub as usize as u64)
}

/// Defines one entry stub per exception: it pushes a zero where the CPU
/// pushes no error code, then the vector, and joins [`common`].
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

/// The stubs, each named after its `InterruptDescriptorTable` field, and
/// [`install`], which points every field at its stub.
macro_rules! exceptions {
    ($($vector:literal $field:ident $($error:ident)?;)*) => {
        $(stub!($field, $vector $(, $error)?);)*

        /// Points each architectural exception vector of `idt` at its stub,
        /// in code segment `code`; the double fault switches to the TSS
        /// stack `double_fault_stack`. Vectors the CPU never raises (9, the
        /// coprocessor segment overrun of the 386, and the reserved 15,
        /// 22-27 and 31) have no field to fill and stay absent.
        ///
        /// # Safety
        /// `code` must be the hypervisor's 64-bit code segment in the GDT
        /// that is loaded whenever `idt` is, and `double_fault_stack` an
        /// index of a stack set in that GDT's TSS.
        pub unsafe fn install(
            idt: &mut InterruptDescriptorTable,
            code: SegmentSelector,
            double_fault_stack: u16,
        ) {
            $(
                // SAFETY: the stub is a hypervisor function that never
                // returns into the interrupted code (it reports and stops);
                // the caller vouches for `code`.
                unsafe {
                    idt.$field
                        .set_handler_addr(entry($field))
                        .set_code_selector(code);
                }
            )*
            // SAFETY: the caller vouches for the stack index; a double fault
            // then runs on a stack of its own even if the stack overflowed.
            unsafe {
                idt.double_fault
                    .set_handler_addr(entry(double_fault))
                    .set_code_selector(code)
                    .set_stack_index(double_fault_stack);
            }
        }
    };
}

exceptions! {
    0 divide_error;
    1 debug;
    2 non_maskable_interrupt;
    3 breakpoint;
    4 overflow;
    5 bound_range_exceeded;
    6 invalid_opcode;
    7 device_not_available;
    10 invalid_tss error_code;
    11 segment_not_present error_code;
    12 stack_segment_fault error_code;
    13 general_protection_fault error_code;
    14 page_fault error_code;
    16 x87_floating_point;
    17 alignment_check error_code;
    18 machine_check;
    19 simd_floating_point;
    20 virtualization;
    21 cp_protection_exception error_code;
    28 hv_injection_exception;
    29 vmm_communication_exception error_code;
    30 security_exception error_code;
}
stub!(double_fault, 8, error_code);
