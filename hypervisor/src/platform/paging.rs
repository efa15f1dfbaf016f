//! W^X on the machine: writes the rights [`crate::mem::host_pages`] gives each of the hypervisor's pages into the boot page tables, turns on EFER.NXE and CR0.WP, seals the start-up page once every core is up, and audits the tables.
//!
//! The boot page tables (`boot.s`) are the only page tables the
//! hypervisor runs on, on every core; they are written here only on the
//! boot core, before the other cores start ([`protect`]) and once after
//! they all have ([`seal`]), and each other core flushes its TLB before it
//! runs anything ([`flush`]); while the run goes on, only the JIT area's
//! pages nothing was ever published from are written, by the control core
//! (the boot core) under the area's lock ([`open_jit_tail`],
//! [`seal_jit_tail`]), and a core flushes before it first runs code sealed
//! there since its last flush (`jit::RuntimeCode`).

use super::halt::fatal;
use super::{instr, trampoline};
use crate::mem::host_pages::{self, Audit, LARGE_PAGE, Layout, SMALL_PAGE, SMALL_PAGES};
use raw_cpuid::CpuId;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr3};
use x86_64::registers::model_specific::{Efer, EferFlags};

/// Entries in the boot page directory (4 GiB of 2 MiB pages).
const PD_ENTRIES: usize = 2048;

unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __jit_start: u8;
    static __jit_end: u8;
    static boot_stack_guard: u8;
    static boot_pt0: u8;
    static boot_pd: u8;
}

/// The image's layout from the linker script's symbols.
fn layout() -> Layout {
    // Only the addresses of the linker and boot.s symbols are taken.
    let addr = |p: *const u8| p as u64;
    Layout {
        text: addr(&raw const __text_start)..addr(&raw const __text_end),
        rodata: addr(&raw const __rodata_start)..addr(&raw const __rodata_end),
        guard: addr(&raw const boot_stack_guard),
        trampoline: Some(trampoline::BASE),
        jit: addr(&raw const __jit_start)..addr(&raw const __jit_end),
        jit_code: false,
    }
}

/// Entry `index` of a table of u64 entries at `table`.
fn entry(table: *const u8, index: usize) -> *mut u64 {
    table.cast::<u64>().cast_mut().wrapping_add(index)
}

/// Writes small-page entry `i` for `layout`.
fn write_small(layout: &Layout, i: usize) {
    let table = &raw const boot_pt0;
    if i >= SMALL_PAGES {
        return;
    }
    // Why: `boot_pt0` is boot.s's 4 KiB table of 512 entries (`i` is
    // inside it), in .bss. The boot core writes every entry only while no
    // other core runs (`protect`), and afterwards only the start-up page's
    // (`seal`), which no core uses any more, and the JIT area's
    // (`seal_jit`), which no other core has used yet (they flush their
    // TLBs once the plan is published, before running anything); while
    // the run goes on, the control core writes only the entries of JIT
    // pages nothing was ever published from (`open_jit_tail`,
    // `seal_jit_tail`), whose bytes no core runs, flushing them from its
    // own TLB (another core flushes before it first runs code sealed
    // there, `jit::RuntimeCode`). Every
    // entry keeps its page's identity mapping; the hypervisor's code and
    // stack stay mapped (their rights are read-execute and read-write;
    // `protect` checked they lie in these small pages).
    // SAFETY: an entry of `boot_pt0`, in bounds, written only as argued above.
    unsafe { entry(table, i).write_volatile(host_pages::small_page(i, layout)) };
}

/// Flushes this core's TLB (reloads CR3).
pub fn flush() {
    let (frame, flags) = Cr3::read();
    // SAFETY: the same tables and flags are loaded again; only cached
    // translations are dropped.
    unsafe { Cr3::write(frame, flags) };
}

/// Gives every page its rights, on the boot core before any other core
/// starts: EFER.NXE first (an NX bit without it is a reserved bit), then
/// the entries, a TLB flush, and CR0.WP so read-only binds ring 0.
pub fn protect() {
    let layout = layout();
    // The linker script asserts these; a hypervisor built otherwise must
    // not go on with its code behind no-execute large pages.
    if layout.rodata.end > LARGE_PAGE
        || layout.text.end > LARGE_PAGE
        || layout.guard >= LARGE_PAGE
        || layout.jit.end > LARGE_PAGE
    {
        fatal(
            "W^X: the hypervisor's code, read-only data, JIT area or stack guard lies above 2 MiB",
        );
    }
    let nx = CpuId::with_cpuid_fn(instr::cpuid)
        .get_extended_processor_and_feature_identifiers()
        .is_some_and(|f| f.has_execute_disable());
    if !nx {
        fatal("W^X: this CPU has no execute-disable bit (CPUID 0x80000001 EDX bit 20)");
    }
    // SAFETY: NXE only makes the NX bit of page-table entries meaningful;
    // no entry has it set yet, and the CPU has the feature (checked above).
    unsafe { Efer::update(|f| f.insert(EferFlags::NO_EXECUTE_ENABLE)) };
    for i in 0..SMALL_PAGES {
        write_small(&layout, i);
    }
    let pd = &raw const boot_pd;
    // Entry 0 points at the small-page table; the rest are 2 MiB pages.
    for i in 1..PD_ENTRIES {
        // Why: `boot_pd` is boot.s's directory of 2048 entries; each
        // keeps its identity mapping and becomes read-write, no-execute
        // (no code lives above 2 MiB). Boot core only, others not started.
        // SAFETY: an entry of `boot_pd`, in bounds, boot core only (why: above).
        unsafe { entry(pd, i).write_volatile(host_pages::large_page(i)) };
    }
    flush();
    // SAFETY: write protection only makes ring 0 honour read-only entries;
    // the hypervisor writes none of its code or read-only data.
    unsafe { Cr0::update(|f| f.insert(Cr0Flags::WRITE_PROTECT)) };
}

/// Once every core is up: the start-up page becomes plain data (boot core;
/// each other core flushes its TLB before it runs anything). Only its
/// entry is written: the other cores are using the table.
pub fn seal() {
    let sealed = layout().sealed();
    write_small(&sealed, (trampoline::BASE / SMALL_PAGE) as usize);
    flush();
}

/// Once the JIT has written every compiled hook (boot core, before the
/// plan is published): its code area becomes read-execute; its pages with
/// code are never writable again (the rest may be, for hooks attached at
/// runtime: [`open_jit_tail`]). Only its entries are written; the other cores have not
/// used them and flush their TLBs before running anything. Fatal if any
/// page is then both writable and executable.
pub fn seal_jit() {
    let sealed = layout().sealed().jit_sealed();
    for addr in sealed.jit.clone().step_by(SMALL_PAGE as usize) {
        write_small(&sealed, (addr / SMALL_PAGE) as usize);
    }
    flush();
    let pages = audit();
    if pages.writable_exec != 0 {
        fatal("W^X: a page is writable and executable after the JIT's code area was sealed");
    }
}

/// While the run goes on (the control core, under the JIT area's lock):
/// the JIT pages from `from` (page-aligned) to the area's end, from which
/// no code was ever published (no core runs their bytes), become writable
/// data (never executable) so a hook attached at runtime can be compiled
/// into them. Each entry is flushed from this core's TLB.
pub fn open_jit_tail(from: u64) {
    let open = layout().sealed();
    set_jit_tail(&open, from);
}

/// The pages [`open_jit_tail`] opened become read-execute again, before
/// the code in them is handed to any core. Fatal if any of them is not
/// then as sealed, or any page is both writable and executable.
pub fn seal_jit_tail(from: u64) {
    let sealed = layout().sealed().jit_sealed();
    set_jit_tail(&sealed, from);
    let table = &raw const boot_pt0;
    let jit = sealed.jit.clone();
    let resealed = (from.max(jit.start)..jit.end)
        .step_by(SMALL_PAGE as usize)
        .map(|addr| (addr / SMALL_PAGE) as usize)
        .filter(|&i| i < SMALL_PAGES)
        // SAFETY: a read of boot.s's table, inside its bounds (checked);
        // only this core writes these entries, and it is here.
        .all(|i| unsafe { entry(table, i).read_volatile() } == host_pages::small_page(i, &sealed));
    if !resealed || audit().writable_exec != 0 {
        fatal("W^X: a page is writable and executable after a runtime hook was compiled");
    }
}

/// Writes the entries of the JIT pages from `from` to the area's end for
/// `layout`, each flushed from this core's TLB.
fn set_jit_tail(layout: &Layout, from: u64) {
    let end = layout.jit.end;
    for addr in (from.max(layout.jit.start)..end).step_by(SMALL_PAGE as usize) {
        write_small(layout, (addr / SMALL_PAGE) as usize);
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(addr));
    }
}

/// Counts the mapped pages that are executable, writable, and both.
pub fn audit() -> Audit {
    let (pt, pd) = (&raw const boot_pt0, &raw const boot_pd);
    // Why: reads of boot.s's tables, inside their bounds; after `seal`
    // only the control core writes (JIT entries, `seal_jit_tail`, which
    // calls this on that core, under the JIT area's lock).
    // SAFETY: in-bounds reads of tables only this core writes now (why: above).
    let small = (0..SMALL_PAGES).map(|i| unsafe { entry(pt, i).read_volatile() });
    // SAFETY: as above.
    let large = (1..PD_ENTRIES).map(|i| unsafe { entry(pd, i).read_volatile() });
    host_pages::audit(small, large)
}
