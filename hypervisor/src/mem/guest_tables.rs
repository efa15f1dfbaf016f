//! Builds the page tables a guest starts with, inside its own memory at
//! [`PAGE_TABLES_GPA`]: an identity map of the first
//! [`GUEST_VIRTUAL_GIB`] GiB (2 MiB pages), with the first 2 MiB mapped by
//! 4 KiB pages so that page 0 is absent and a null dereference faults.
//! The guest may address more than it owns; EPT decides what it can touch.
#![forbid(unsafe_code)]

use super::access::OutOfBounds;
use super::guest::GuestMemory;
use core::mem::size_of;
use vmm_abi::corral::layout::{GUEST_VIRTUAL_GIB, PAGE_SIZE, PAGE_TABLES_GPA};
use x86_64::structures::paging::page_table::PageTableEntry;
use x86_64::structures::paging::{PageSize, PageTableFlags, Size1GiB, Size2MiB};

/// A table entry's bits for a writable next-level table or 4 KiB page.
const PRESENT_WRITABLE: u64 = PageTableFlags::PRESENT
    .union(PageTableFlags::WRITABLE)
    .bits();
/// A writable 2 MiB page.
const PRESENT_WRITABLE_HUGE: u64 = PRESENT_WRITABLE | PageTableFlags::HUGE_PAGE.bits();
const ENTRY_BYTES: usize = size_of::<PageTableEntry>();

/// Fills one table page: entry `i` = `entry(i)`.
fn fill_table(
    mem: &mut GuestMemory<'_>,
    gpa: u64,
    entry: impl Fn(u64) -> u64,
) -> Result<(), OutOfBounds> {
    let page = mem.slice_mut(gpa, PAGE_SIZE)?;
    for (i, slot) in page.chunks_exact_mut(ENTRY_BYTES).enumerate() {
        slot.copy_from_slice(&entry(i as u64).to_le_bytes());
    }
    Ok(())
}

/// Writes the tables and returns the guest CR3 value.
pub fn build(mem: &mut GuestMemory<'_>) -> Result<u64, OutOfBounds> {
    let pml4 = PAGE_TABLES_GPA;
    let pdpt = pml4 + PAGE_SIZE;
    let pd = |gib: u64| pdpt + PAGE_SIZE * (1 + gib);
    let pt = pd(GUEST_VIRTUAL_GIB);
    fill_table(mem, pml4, |i| match i {
        0 => pdpt | PRESENT_WRITABLE,
        _ => 0,
    })?;
    fill_table(mem, pdpt, |i| {
        if i < GUEST_VIRTUAL_GIB {
            pd(i) | PRESENT_WRITABLE
        } else {
            0
        }
    })?;
    for gib in 0..GUEST_VIRTUAL_GIB {
        fill_table(mem, pd(gib), |i| {
            let addr = gib * Size1GiB::SIZE + i * Size2MiB::SIZE;
            if addr == 0 {
                pt | PRESENT_WRITABLE
            } else {
                addr | PRESENT_WRITABLE_HUGE
            }
        })?;
    }
    fill_table(mem, pt, |i| match i {
        0 => 0,
        _ => (i * PAGE_SIZE) | PRESENT_WRITABLE,
    })?;
    Ok(pml4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_abi::corral::layout::{IMAGE_BASE_GPA, PAGE_TABLE_PAGES};
    use x86_64::structures::paging::page_table::PageTableLevel;
    use x86_64::{PhysAddr, VirtAddr};

    fn read(mem: &GuestMemory<'_>, gpa: u64) -> u64 {
        let mut b = [0u8; 8];
        mem.read(gpa, &mut b).unwrap();
        u64::from_le_bytes(b)
    }

    /// Walks the tables like the CPU would.
    fn translate(mem: &GuestMemory<'_>, cr3: u64, va: u64) -> Option<u64> {
        let mut table = cr3;
        let mut level = Some(PageTableLevel::Four);
        while let Some(l) = level {
            let index = u64::from(VirtAddr::new(va).page_table_index(l));
            let e = read(mem, table + index * ENTRY_BYTES as u64);
            let flags = PageTableFlags::from_bits_truncate(e);
            if !flags.contains(PageTableFlags::PRESENT) {
                return None;
            }
            let size = l.entry_address_space_alignment();
            if l == PageTableLevel::One || flags.contains(PageTableFlags::HUGE_PAGE) {
                return Some(PhysAddr::new_truncate(e).align_down(size).as_u64() + va % size);
            }
            table = PhysAddr::new_truncate(e).align_down(PAGE_SIZE).as_u64();
            level = l.next_lower_level();
        }
        None
    }

    #[test]
    fn identity_map_with_null_guard() {
        let mut backing = std::vec![0u8; 0x20_0000];
        let mut mem = GuestMemory::new(&mut backing);
        let cr3 = build(&mut mem).unwrap();
        const { assert!(PAGE_TABLES_GPA + PAGE_TABLE_PAGES * PAGE_SIZE <= IMAGE_BASE_GPA) };
        assert_eq!(translate(&mem, cr3, 0), None);
        assert_eq!(translate(&mem, cr3, 0xfff), None);
        for va in [
            0x1000,
            0x10_0123,
            0x1f_ffff,
            0x20_0000,
            0x3fff_f000,
            0x3fff_fff8,
        ] {
            assert_eq!(translate(&mem, cr3, va), Some(va), "{va:#x}");
        }
        assert_eq!(translate(&mem, cr3, GUEST_VIRTUAL_GIB << 30), None);
    }

    #[test]
    fn too_small_memory_is_an_error() {
        let mut backing = std::vec![0u8; 0x4000];
        assert!(build(&mut GuestMemory::new(&mut backing)).is_err());
    }
}
