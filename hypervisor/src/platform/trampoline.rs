//! The real-mode start-up trampoline for application processors
//! (`trampoline.s`): its page below 1 MiB, the data area it reads there,
//! and copying it into place.

use crate::multiboot::Region;
use core::arch::global_asm;
use core::mem::{offset_of, size_of};
use core::sync::atomic::{Ordering, fence};
use x86_64::structures::gdt::DescriptorFlags;

/// Physical address of the trampoline page. The frame allocator reserves
/// all of the first MiB, so nothing else lives here once the boot loader
/// is gone (`smp` still checks the page is RAM and free).
pub const BASE: u64 = 0x8000;
/// Bytes in the trampoline page.
const PAGE_SIZE: u64 = 0x1000;
/// Where the data area starts in the page; the code must end before it.
const DATA_OFFSET: usize = 0x800;
/// Real-mode code must start below 1 MiB.
const REAL_MODE_LIMIT: u64 = 0x10_0000;
/// The start-up IPI vector: the page number the core starts at.
pub const SIPI_VECTOR: u8 = (BASE / PAGE_SIZE) as u8;

/// The trampoline's own GDT: selectors and descriptors (flat, DPL 0).
const CODE32_SELECTOR: u16 = 0x08;
const DATA_SELECTOR: u16 = 0x10;
const CODE64_SELECTOR: u16 = 0x18;
const GDT_CODE32: u64 = DescriptorFlags::KERNEL_CODE32.bits();
const GDT_DATA: u64 = DescriptorFlags::KERNEL_DATA.bits();
const GDT_CODE64: u64 = DescriptorFlags::KERNEL_CODE64.bits();
const GDT_ENTRIES: usize = 4;
/// Bytes of one GDT descriptor (selector = index * this).
const DESCRIPTOR_SIZE: u16 = 8;

const _: () = assert!(BASE.is_multiple_of(PAGE_SIZE) && BASE + PAGE_SIZE <= REAL_MODE_LIMIT);
const _: () = assert!(DATA_OFFSET + size_of::<Data>() <= PAGE_SIZE as usize);
const _: () = assert!(DATA_OFFSET.is_multiple_of(core::mem::align_of::<Data>()));
const _: () = assert!(
    CODE32_SELECTOR == DESCRIPTOR_SIZE
        && DATA_SELECTOR == 2 * DESCRIPTOR_SIZE
        && CODE64_SELECTOR == 3 * DESCRIPTOR_SIZE
);

/// The data area at `BASE + DATA_OFFSET`, read by `trampoline.s`.
#[repr(C)]
struct Data {
    /// Null, 32-bit code, data, 64-bit code.
    gdt: [u64; GDT_ENTRIES],
    /// The LGDT operand: limit, then the 32-bit linear base in two halves.
    gdt_limit: u16,
    gdt_base_low: u16,
    gdt_base_high: u16,
    reserved: u16,
    /// A far pointer the trampoline fills for its mode-switching jumps.
    far_offset: u32,
    far_selector: u16,
    reserved2: u16,
    /// The boot page tables (below 4 GiB, as 32-bit code loads CR3).
    cr3: u64,
    /// Top of the core's stack.
    stack_top: u64,
    /// The 64-bit entry: `extern "C" fn(index, ist_top, ap_main) -> !`.
    entry: u64,
    /// Passed on to `entry`.
    ap_main: u64,
    /// Passed on to `entry`: top of the core's double-fault stack.
    ist_top: u64,
    /// Physical address of the xAPIC ID register.
    lapic_id_register: u64,
    /// Passed on to `entry`: the core's number.
    index: u32,
    /// The APIC ID of the one core allowed past the check.
    apic_id: u32,
}

global_asm!(
    include_str!("trampoline.s"),
    gdt_pointer = const DATA_OFFSET + offset_of!(Data, gdt_limit),
    far_offset = const DATA_OFFSET + offset_of!(Data, far_offset),
    far_selector = const DATA_OFFSET + offset_of!(Data, far_selector),
    cr3 = const DATA_OFFSET + offset_of!(Data, cr3),
    stack_top = const DATA_OFFSET + offset_of!(Data, stack_top),
    entry = const DATA_OFFSET + offset_of!(Data, entry),
    ap_main = const DATA_OFFSET + offset_of!(Data, ap_main),
    ist_top = const DATA_OFFSET + offset_of!(Data, ist_top),
    lapic_id_register = const DATA_OFFSET + offset_of!(Data, lapic_id_register),
    index = const DATA_OFFSET + offset_of!(Data, index),
    apic_id = const DATA_OFFSET + offset_of!(Data, apic_id),
    code32 = const CODE32_SELECTOR,
    data = const DATA_SELECTOR,
    code64 = const CODE64_SELECTOR,
    options(att_syntax)
);

unsafe extern "C" {
    static corral_ap_trampoline_start: u8;
    static corral_ap_trampoline_end: u8;
}

/// The Rust function an application processor enters, on its own stack,
/// with its core number, the top of its double-fault stack and `ap_main`.
pub type Entry = extern "C" fn(u32, u64, extern "C" fn(u32) -> !) -> !;

/// What one application processor needs to get going.
pub struct Launch {
    /// CR3 to run on (the boot page tables, below 4 GiB).
    pub cr3: u64,
    /// Top of its stack (16-byte aligned).
    pub stack_top: u64,
    /// Where it enters Rust.
    pub entry: Entry,
    /// What `entry` calls once the core is set up.
    pub ap_main: extern "C" fn(u32) -> !,
    /// Top of its double-fault stack.
    pub ist_top: u64,
    /// Physical address of the xAPIC ID register.
    pub lapic_id_register: u64,
    /// Its core number.
    pub index: u32,
    /// Its local APIC ID.
    pub apic_id: u32,
}

/// The page the trampoline occupies.
pub fn page() -> Region {
    Region {
        start: BASE,
        end: BASE + PAGE_SIZE,
    }
}

fn data() -> *mut Data {
    (BASE + DATA_OFFSET as u64) as *mut Data
}

/// Copies the trampoline code into its page. Fails if the code does not
/// fit before the data area.
///
/// # Safety
/// [`page`] must be RAM that nothing else uses (nor will), and no core may
/// be running the trampoline.
pub unsafe fn install() -> Result<(), &'static str> {
    let start = &raw const corral_ap_trampoline_start;
    let len = (&raw const corral_ap_trampoline_end as usize).wrapping_sub(start as usize);
    if len > DATA_OFFSET {
        return Err("the start-up trampoline does not fit in its page");
    }
    // SAFETY: the code is `len` bytes of the hypervisor image; the caller
    // guarantees the page is unused RAM (identity mapped) that nobody else
    // reads or writes; the code ends before the data area.
    unsafe { core::ptr::copy_nonoverlapping(start, BASE as *mut u8, len) };
    fence(Ordering::SeqCst);
    Ok(())
}

/// Writes what the next core to start needs into the data area.
///
/// # Safety
/// [`install`] must have succeeded, and no core may be running the
/// trampoline (the previous one has entered Rust, or was sent INIT).
pub unsafe fn prepare(launch: &Launch) {
    let gdt_base = BASE + (DATA_OFFSET + offset_of!(Data, gdt)) as u64;
    let d = Data {
        gdt: [0, GDT_CODE32, GDT_DATA, GDT_CODE64],
        gdt_limit: (size_of::<[u64; GDT_ENTRIES]>() - 1) as u16,
        gdt_base_low: gdt_base as u16,
        gdt_base_high: (gdt_base >> 16) as u16,
        reserved: 0,
        far_offset: 0,
        far_selector: 0,
        reserved2: 0,
        cr3: launch.cr3,
        stack_top: launch.stack_top,
        entry: launch.entry as usize as u64,
        ap_main: launch.ap_main as usize as u64,
        ist_top: launch.ist_top,
        lapic_id_register: launch.lapic_id_register,
        index: launch.index,
        apic_id: launch.apic_id,
    };
    // SAFETY: the caller guarantees the installed page is ours and that no
    // core reads the data area now; it is aligned for `Data` (8 bytes) and
    // lies inside the page.
    unsafe { data().write_volatile(d) };
    // The data must be in memory before the caller's start-up IPI.
    fence(Ordering::SeqCst);
}
