//! Each core's own GDT, TSS and IDT (one slot per core). CPU exceptions in
//! the hypervisor are reported on the console (vector, error code, RIP, CR2)
//! and stop the machine; the double-fault handler runs on the core's own
//! stack (IST 1). A core's number is the slot its loaded IDT lives in.
//! The tables are the `x86_64` crate's types, loaded with its instructions.

use super::percpu::MAX_CORES;
use core::cell::UnsafeCell;
use core::mem::{MaybeUninit, size_of};
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, FS, GS, SS, Segment};
use x86_64::instructions::tables::{load_tss, sgdt, sidt};
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;

/// Kernel code selector.
pub const CODE_SELECTOR: u16 = 0x08;
/// Kernel data selector.
pub const DATA_SELECTOR: u16 = 0x10;
/// TSS selector.
pub const TSS_SELECTOR: u16 = 0x18;

/// The double fault's stack: IST 1 (index 0 of the TSS's stack table).
const DOUBLE_FAULT_IST_INDEX: u16 = 0;
/// Bytes of each core's double-fault stack.
pub const IST_STACK_SIZE: usize = 16 * 1024;
/// Null, code, data and the two halves of the TSS descriptor.
const GDT_ENTRIES: usize = 5;
/// The System V ABI keeps stacks 16-byte aligned.
const STACK_ALIGN: u64 = 16;

/// One core's tables. The IDT comes first: its address (what SIDT
/// returns) identifies the slot.
#[repr(C, align(16))]
struct Tables {
    idt: InterruptDescriptorTable,
    gdt: GlobalDescriptorTable<GDT_ENTRIES>,
    tss: TaskStateSegment,
}

/// Every core's tables, indexed by core number; a slot is filled by [`load`]
/// on its core (until then it is zeros, so the whole array lives in
/// `.bss`). The CPU reads this memory and marks the TSS busy in the GDT
/// (whose entries the `x86_64` crate keeps as atomics for that reason).
struct Slots([UnsafeCell<MaybeUninit<Tables>>; MAX_CORES]);

// SAFETY: slot `i` is written only by [`load`], which runs on core `i`
// alone, before that core uses the tables and before any other code could
// look at them (the boot core before starting any other core; an
// application processor before it checks in). Afterwards only the CPU
// touches a slot; Rust code only takes addresses.
unsafe impl Sync for Slots {}

static SLOTS: Slots = Slots([const { UnsafeCell::new(MaybeUninit::zeroed()) }; MAX_CORES]);

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

/// The slot whose IDT the calling core has loaded: its core number. Before
/// [`init`] (no IDT of ours is loaded) this is 0, the boot core.
pub fn current_slot() -> usize {
    let first = SLOTS.0.as_ptr() as u64;
    let base = sidt().base.as_u64();
    let offset = base.wrapping_sub(first);
    let index = (offset / size_of::<Tables>() as u64) as usize;
    if offset.is_multiple_of(size_of::<Tables>() as u64) && index < MAX_CORES {
        index
    } else {
        0
    }
}

/// The calling core's tables' addresses (what its VMCS host state needs):
/// the GDT it has loaded, and its slot's IDT and TSS.
pub fn host_tables() -> HostTables {
    let t = SLOTS.0[current_slot()].get().cast::<Tables>();
    // SAFETY: only addresses inside the slot are computed; nothing is read
    // or written, so it does not matter whether the slot is filled yet.
    let (idt, tss) = unsafe { (&raw const (*t).idt as u64, &raw const (*t).tss as u64) };
    HostTables {
        gdt: sgdt().base.as_u64(),
        idt,
        tss,
    }
}

// [`load`] appends code, data and TSS descriptors in this order: they
// land at the selectors the VMCS host state names (checked at build time,
// with a placeholder for the TSS's two entries).
const _: () = {
    let mut gdt = GlobalDescriptorTable::<GDT_ENTRIES>::empty();
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    let tss = gdt.append(Descriptor::SystemSegment(0, 0));
    assert!(code.0 == CODE_SELECTOR && data.0 == DATA_SELECTOR && tss.0 == TSS_SELECTOR);
};

/// Fills slot `core` and loads it on the calling core.
///
/// # Safety
/// Must run on the core numbered `core`, and no other core may be using
/// or filling that slot; `ist_top` must be the top of a stack of at least
/// [`IST_STACK_SIZE`] bytes this core owns forever.
unsafe fn load(core: usize, ist_top: u64) {
    let mut tss = TaskStateSegment::new();
    tss.interrupt_stack_table[usize::from(DOUBLE_FAULT_IST_INDEX)] =
        VirtAddr::new(ist_top & !(STACK_ALIGN - 1));
    // SAFETY: the caller guarantees that only this core touches the slot
    // now, so the exclusive reference is unique; the whole slot is written
    // before it is used.
    let t = unsafe {
        (*SLOTS.0[core].get()).write(Tables {
            idt: InterruptDescriptorTable::new(),
            gdt: GlobalDescriptorTable::empty(),
            tss,
        })
    };
    // SAFETY: the TSS lives in a static for ever, so the descriptor's base
    // stays valid.
    let tss_descriptor = unsafe { Descriptor::tss_segment_unchecked(&raw const t.tss) };
    let code = t.gdt.append(Descriptor::kernel_code_segment());
    let data = t.gdt.append(Descriptor::kernel_data_segment());
    let tss = t.gdt.append(tss_descriptor);
    // SAFETY: the exception stubs are the hypervisor's entry points in the
    // code segment `code` of this GDT; IST index 0 is the double-fault
    // stack just set in this core's TSS.
    unsafe { super::exceptions::install(&mut t.idt, code, DOUBLE_FAULT_IST_INDEX) };
    // SAFETY: the tables live in a static forever and were just filled with
    // a flat code/data pair, an available TSS and exception gates; the far
    // return in `CS::set_reg` reloads CS with the same flat 64-bit code
    // segment the boot GDT had at that selector.
    unsafe {
        t.gdt.load_unsafe();
        CS::set_reg(code);
        DS::set_reg(data);
        ES::set_reg(data);
        SS::set_reg(data);
        FS::set_reg(data);
        GS::set_reg(data);
        load_tss(tss);
        t.idt.load_unsafe();
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
