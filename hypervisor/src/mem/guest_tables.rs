//! Builds the page tables a guest starts with, inside its own memory at
//! [`PAGE_TABLES_GPA`]: an identity map of the first
//! [`GUEST_VIRTUAL_GIB`] GiB (2 MiB pages), with the first 2 MiB mapped by
//! 4 KiB pages so that page 0 is absent and a null dereference faults.
//! The guest may address more than it owns; EPT decides what it can touch.
#![forbid(unsafe_code)]

use super::guest::{GuestMemory, OutOfBounds};
use vmm_abi::corral::layout::{GUEST_VIRTUAL_GIB, PAGE_SIZE, PAGE_TABLES_GPA};

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const HUGE: u64 = 1 << 7;
const ENTRY_BYTES: u64 = 8;
const ENTRIES: u64 = 512;
const TWO_MIB: u64 = 0x20_0000;

/// Fills one table page: entry `i` = `entry(i)`.
fn fill_table(
    mem: &mut GuestMemory<'_>,
    gpa: u64,
    entry: impl Fn(u64) -> u64,
) -> Result<(), OutOfBounds> {
    let page = mem.slice_mut(gpa, PAGE_SIZE)?;
    for (i, slot) in page.chunks_exact_mut(ENTRY_BYTES as usize).enumerate() {
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
    fill_table(mem, pml4, |i| {
        if i == 0 { pdpt | PRESENT | WRITABLE } else { 0 }
    })?;
    fill_table(mem, pdpt, |i| {
        if i < GUEST_VIRTUAL_GIB {
            pd(i) | PRESENT | WRITABLE
        } else {
            0
        }
    })?;
    for gib in 0..GUEST_VIRTUAL_GIB {
        fill_table(mem, pd(gib), |i| {
            let addr = (gib * ENTRIES + i) * TWO_MIB;
            if addr == 0 {
                pt | PRESENT | WRITABLE
            } else {
                addr | PRESENT | WRITABLE | HUGE
            }
        })?;
    }
    fill_table(mem, pt, |i| {
        if i == 0 {
            0
        } else {
            (i * PAGE_SIZE) | PRESENT | WRITABLE
        }
    })?;
    Ok(pml4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_abi::corral::layout::{IMAGE_BASE_GPA, PAGE_TABLE_PAGES};

    fn read(mem: &GuestMemory<'_>, gpa: u64) -> u64 {
        let mut b = [0u8; 8];
        mem.read(gpa, &mut b).unwrap();
        u64::from_le_bytes(b)
    }

    /// Walks the tables like the CPU would.
    fn translate(mem: &GuestMemory<'_>, cr3: u64, va: u64) -> Option<u64> {
        let mut table = cr3;
        for level in (0..4).rev() {
            let e = read(mem, table + ((va >> (12 + 9 * level)) & 0x1ff) * 8);
            if e & PRESENT == 0 {
                return None;
            }
            if level == 0 || e & HUGE != 0 {
                let size = PAGE_SIZE << (9 * level);
                return Some((e & 0x000f_ffff_ffff_f000 & !(size - 1)) + va % size);
            }
            table = e & 0x000f_ffff_ffff_f000;
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
