//! Each core's own GDT, TSS and IDT (one slot per core). CPU exceptions in
//! the hypervisor are reported on the console (vector, error code, RIP, CR2)
//! and stop the machine; the double-fault handler runs on the core's own
//! stack (IST 1). A core's number is the slot its loaded GDT lives in.

use super::instr::{self, TablePointer};
use super::percpu::MAX_CORES;
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
/// Bytes of each core's double-fault stack.
pub const IST_STACK_SIZE: usize = 16 * 1024;
const EXCEPTION_VECTORS: usize = 32;
const GDT_ENTRIES: usize = 5;
const IDT_ENTRIES: usize = 256;
/// The System V ABI keeps stacks 16-byte aligned.
const STACK_ALIGN: u64 = 16;

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

/// A TSS with no stacks and no I/O permission bitmap (its offset points past
/// the end of the segment).
const EMPTY_TSS: Tss = Tss {
    reserved0: 0,
    rsp: [0; 3],
    reserved1: 0,
    ist: [0; 7],
    reserved2: 0,
    reserved3: 0,
    iomap_base: size_of::<Tss>() as u16,
};

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

/// One core's tables. The GDT comes first: its address identifies the slot.
#[repr(C, align(16))]
struct Tables {
    gdt: [u64; GDT_ENTRIES],
    tss: Tss,
    idt: [Gate; IDT_ENTRIES],
}

/// All zero, so the whole array lives in `.bss`; [`load`] fills a slot.
const EMPTY: Tables = Tables {
    gdt: [0; GDT_ENTRIES],
    tss: EMPTY_TSS,
    idt: [MISSING; IDT_ENTRIES],
};

/// Every core's tables, indexed by core number. The CPU reads (and marks
/// the TSS busy in) this memory.
struct Slots([UnsafeCell<Tables>; MAX_CORES]);

// SAFETY: slot `i` is written only by [`load`], which runs on core `i`
// alone, before that core uses the tables and before any other code could
// look at them (the boot core before starting any other core; an
// application processor before it checks in). Afterwards only the CPU
// touches a slot; Rust code only takes addresses.
unsafe impl Sync for Slots {}

static SLOTS: Slots = Slots([const { UnsafeCell::new(EMPTY) }; MAX_CORES]);

/// The boot core's double-fault stack (needed before the frame allocator
/// exists; the other cores get theirs from the allocator).
#[repr(C, align(16))]
struct BootIstStack(UnsafeCell<[u8; IST_STACK_SIZE]>);

// SAFETY: only the CPU writes this memory (as the boot core's double-fault
// stack); Rust code only takes its address.
unsafe impl Sync for BootIstStack {}

static BOOT_IST_STACK: BootIstStack = BootIstStack(UnsafeCell::new([0; IST_STACK_SIZE]));

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

/// The slot whose GDT the calling core has loaded: its core number. Before
/// [`init`] (the boot GDT is loaded) this is 0, the boot core.
pub fn current_slot() -> usize {
    let first = SLOTS.0.as_ptr() as u64;
    let base = instr::sgdt().base;
    let offset = base.wrapping_sub(first);
    let index = (offset / size_of::<Tables>() as u64) as usize;
    if offset.is_multiple_of(size_of::<Tables>() as u64) && index < MAX_CORES {
        index
    } else {
        0
    }
}

/// The calling core's tables' addresses (what its VMCS host state needs).
pub fn host_tables() -> HostTables {
    let t = SLOTS.0[current_slot()].get();
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

fn tss_descriptor(tss: u64) -> [u64; 2] {
    let limit = size_of::<Tss>() as u64 - 1;
    [
        (limit & 0xffff)
            | ((tss & 0xff_ffff) << 16)
            | (TSS_TYPE_AVAILABLE_64 << 40)
            | (((limit >> 16) & 0xf) << 48)
            | (((tss >> 24) & 0xff) << 56),
        tss >> 32,
    ]
}

/// Fills slot `core` and loads it on the calling core.
///
/// # Safety
/// Must run on the core numbered `core`, and no other core may be using
/// or filling that slot; `ist_top` must be the top of a stack of at least
/// [`IST_STACK_SIZE`] bytes this core owns forever.
unsafe fn load(core: usize, ist_top: u64) {
    // SAFETY: the caller guarantees that only this core touches the slot
    // now, so the exclusive reference is unique.
    let t = unsafe { &mut *SLOTS.0[core].get() };
    t.tss = EMPTY_TSS;
    t.tss.ist[usize::from(DOUBLE_FAULT_IST) - 1] = ist_top & !(STACK_ALIGN - 1);
    let [tss_low, tss_high] = tss_descriptor(core::ptr::addr_of!(t.tss) as u64);
    t.gdt = [0, GDT_CODE64, GDT_DATA, tss_low, tss_high];
    t.idt = [MISSING; IDT_ENTRIES];
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
        limit: (size_of::<[u64; GDT_ENTRIES]>() - 1) as u16,
        base: t.gdt.as_ptr() as u64,
    };
    let idt_ptr = TablePointer {
        limit: (size_of::<[Gate; IDT_ENTRIES]>() - 1) as u16,
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

/// Builds and loads the boot core's GDT, TSS and IDT (slot 0). Call once,
/// first thing, on the boot core.
pub fn init() {
    let ist_top = BOOT_IST_STACK.0.get() as u64 + IST_STACK_SIZE as u64;
    // SAFETY: this runs on the boot core before any other core is started,
    // so slot 0 is ours alone; the boot IST stack is a static used only as
    // this core's double-fault stack.
    unsafe { load(0, ist_top) };
}

/// Builds and loads the tables of application processor `core` (slot
/// `core`, 1 ≤ `core` < [`MAX_CORES`]), with its double-fault stack ending
/// at `ist_top`. Returns false (and changes nothing) for a bad number.
///
/// # Safety
/// Must run on the core that will be numbered `core`, while no other core
/// uses slot `core`; `ist_top` is the top of a stack of at least
/// [`IST_STACK_SIZE`] bytes owned by this core forever.
pub unsafe fn init_ap(core: usize, ist_top: u64) -> bool {
    if core == 0 || core >= MAX_CORES {
        return false;
    }
    // SAFETY: forwarded from the caller.
    unsafe { load(core, ist_top) };
    true
}
