//! The hypervisor's own GDT, TSS and IDT. CPU exceptions in the hypervisor
//! are reported on the console (vector, error code, RIP, CR2) and stop the
//! machine; the double-fault handler runs on its own stack (IST 1).

use super::instr::{self, TablePointer};
use core::cell::UnsafeCell;
use core::mem::size_of;

/// Kernel code selector.
pub const CODE_SELECTOR: u16 = 0x08;
/// Kernel data selector.
pub const DATA_SELECTOR: u16 = 0x10;
/// TSS selector.
pub const TSS_SELECTOR: u16 = 0x18;

const GDT_CODE64: u64 = 0x00af_9a00_0000_ffff;
const GDT_DATA: u64 = 0x00cf_9200_0000_ffff;
const TSS_TYPE_AVAILABLE_64: u64 = 0x89;
const IDT_INTERRUPT_GATE: u8 = 0x8e;
const DOUBLE_FAULT_VECTOR: usize = 8;
const DOUBLE_FAULT_IST: u8 = 1;
const IST_STACK_SIZE: usize = 16 * 1024;
const EXCEPTION_VECTORS: usize = 32;

/// 64-bit task-state segment (SDM Vol. 3A, 8.7).
#[repr(C, packed(4))]
#[derive(Clone, Copy)]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}
const _: () = assert!(size_of::<Tss>() == 104);

/// 64-bit IDT gate (SDM Vol. 3A, 6.14.1).
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}
const _: () = assert!(size_of::<Gate>() == 16);

const MISSING: Gate = Gate {
    offset_low: 0,
    selector: 0,
    ist: 0,
    attributes: 0,
    offset_mid: 0,
    offset_high: 0,
    reserved: 0,
};

#[repr(C, align(16))]
struct Tables {
    gdt: [u64; 5],
    tss: Tss,
    idt: [Gate; 256],
    double_fault_stack: [u8; IST_STACK_SIZE],
}

/// The tables of the boot CPU. The CPU reads (and marks the TSS busy in)
/// this memory; Rust code writes it only in [`init`].
struct CpuTables(UnsafeCell<Tables>);

// SAFETY: written only by `init` on the boot CPU before anything else runs;
// afterwards only the CPU itself touches it.
unsafe impl Sync for CpuTables {}

static TABLES: CpuTables = CpuTables(UnsafeCell::new(Tables {
    gdt: [0; 5],
    tss: Tss {
        reserved0: 0,
        rsp: [0; 3],
        reserved1: 0,
        ist: [0; 7],
        reserved2: 0,
        reserved3: 0,
        iomap_base: size_of::<Tss>() as u16,
    },
    idt: [MISSING; 256],
    double_fault_stack: [0; IST_STACK_SIZE],
}));

/// Addresses the VMCS host-state area needs.
#[derive(Clone, Copy, Debug)]
pub struct HostTables {
    /// GDT base.
    pub gdt: u64,
    /// IDT base.
    pub idt: u64,
    /// TSS base.
    pub tss: u64,
}

/// The tables' addresses.
pub fn host_tables() -> HostTables {
    let t = TABLES.0.get();
    // SAFETY: only addresses are taken; nothing is read or written.
    unsafe {
        HostTables {
            gdt: core::ptr::addr_of!((*t).gdt) as u64,
            idt: core::ptr::addr_of!((*t).idt) as u64,
            tss: core::ptr::addr_of!((*t).tss) as u64,
        }
    }
}

fn gate(handler: u64, ist: u8) -> Gate {
    Gate {
        offset_low: handler as u16,
        selector: CODE_SELECTOR,
        ist,
        attributes: IDT_INTERRUPT_GATE,
        offset_mid: (handler >> 16) as u16,
        offset_high: (handler >> 32) as u32,
        reserved: 0,
    }
}

/// Builds and loads the GDT, TSS and IDT. Call once, first thing, on the
/// boot CPU.
pub fn init() {
    // SAFETY: single-threaded start-up: nothing else references TABLES yet.
    let t = unsafe { &mut *TABLES.0.get() };
    let df_top = t.double_fault_stack.as_ptr_range().end as u64 & !0xf;
    t.tss.ist[usize::from(DOUBLE_FAULT_IST) - 1] = df_top;
    let tss = core::ptr::addr_of!(t.tss) as u64;
    let limit = size_of::<Tss>() as u64 - 1;
    t.gdt = [
        0,
        GDT_CODE64,
        GDT_DATA,
        (limit & 0xffff)
            | ((tss & 0xff_ffff) << 16)
            | (TSS_TYPE_AVAILABLE_64 << 40)
            | (((limit >> 16) & 0xf) << 48)
            | (((tss >> 24) & 0xff) << 56),
        tss >> 32,
    ];
    for (vector, &handler) in super::exceptions::STUBS.iter().enumerate() {
        let ist = if vector == DOUBLE_FAULT_VECTOR {
            DOUBLE_FAULT_IST
        } else {
            0
        };
        t.idt[vector] = gate(handler as usize as u64, ist);
    }
    debug_assert_eq!(super::exceptions::STUBS.len(), EXCEPTION_VECTORS);
    let gdt_ptr = TablePointer {
        limit: (size_of::<[u64; 5]>() - 1) as u16,
        base: t.gdt.as_ptr() as u64,
    };
    let idt_ptr = TablePointer {
        limit: (size_of::<[Gate; 256]>() - 1) as u16,
        base: t.idt.as_ptr() as u64,
    };
    // SAFETY: the tables live in a static forever and were just filled with
    // a flat code/data pair, an available TSS and exception gates.
    unsafe {
        instr::load_gdt(&gdt_ptr, CODE_SELECTOR, DATA_SELECTOR);
        instr::load_tr(TSS_SELECTOR);
        instr::load_idt(&idt_ptr);
    }
}
