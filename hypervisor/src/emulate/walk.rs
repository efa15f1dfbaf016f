//! Walks a guest's own 4-level page tables (Intel SDM Vol. 3A, 4.5) to turn
//! a guest linear address into a guest-physical one, e.g. to fetch the
//! instruction at the guest's RIP when it touches an MMIO page. The tables
//! are guest memory the guest controls: every entry is read through
//! [`GuestRead`], so a table outside the guest's memory is an error, and
//! the walk is always exactly four levels or fewer (no loop is possible).
//! It assumes the guest is in 64-bit mode with 4-level paging (how Corral
//! starts every guest); a caller must refuse a guest that left it (CR0.PG,
//! EFER.LMA, CR4.LA57 in its VMCS) rather than decode what this returns.

use crate::mem::access::{Gpa, GuestRead};
use core::fmt;

const PRESENT: u64 = 1 << 0;
/// PS: the entry maps a 1 GiB (PDPTE) or 2 MiB (PDE) page.
const PAGE_SIZE_BIT: u64 = 1 << 7;
/// Bits 51:12 of an entry.
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;
/// CR3 bits 51:12 hold the PML4 address.
const CR3_ADDRESS_MASK: u64 = ADDRESS_MASK;
const LEVELS: u32 = 4;
const ENTRY_BYTES: u64 = 8;
/// Bits of a linear address that must all equal bit 47 (canonical form).
const CANONICAL_BITS: u32 = 48;
/// Longest x86 instruction.
pub const MAX_INSTRUCTION: usize = 15;
const SMALL_PAGE: u64 = 0x1000;

/// Why a linear address has no translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// Bits 63:48 are not a sign extension of bit 47.
    NotCanonical(u64),
    /// An entry on the way is not present (level 4 = PML4 … 1 = PT).
    NotPresent {
        /// The address.
        va: u64,
        /// The level whose entry is missing.
        level: u32,
    },
    /// A table (or its entry) lies outside the guest's memory.
    TableOutsideMemory {
        /// Guest-physical address of the entry.
        gpa: u64,
    },
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalkError::NotCanonical(va) => write!(f, "linear address {va:#x} is not canonical"),
            WalkError::NotPresent { va, level } => write!(
                f,
                "linear address {va:#x} is not mapped (level-{level} entry not present)"
            ),
            WalkError::TableOutsideMemory { gpa } => write!(
                f,
                "guest page-table entry at guest-physical {gpa:#x} is outside its memory"
            ),
        }
    }
}

fn canonical(va: u64) -> bool {
    let shift = 64 - CANONICAL_BITS;
    (((va << shift) as i64) >> shift) as u64 == va
}

/// The guest-physical address `va` maps to under the tables at `cr3`.
pub fn translate(mem: &impl GuestRead, cr3: u64, va: u64) -> Result<u64, WalkError> {
    if !canonical(va) {
        return Err(WalkError::NotCanonical(va));
    }
    let mut table = cr3 & CR3_ADDRESS_MASK;
    for level in (1..=LEVELS).rev() {
        let index = (va >> (12 + 9 * (level - 1))) & 0x1ff;
        let gpa = table + index * ENTRY_BYTES;
        let mut raw = [0u8; ENTRY_BYTES as usize];
        mem.read(Gpa(gpa), &mut raw)
            .map_err(|_| WalkError::TableOutsideMemory { gpa })?;
        let entry = u64::from_le_bytes(raw);
        if entry & PRESENT == 0 {
            return Err(WalkError::NotPresent { va, level });
        }
        // A large page at level 3 (1 GiB) or 2 (2 MiB); at level 4 PS is reserved.
        if level == 1 || (entry & PAGE_SIZE_BIT != 0 && (level == 2 || level == 3)) {
            let size = SMALL_PAGE << (9 * (level - 1));
            return Ok((entry & ADDRESS_MASK & !(size - 1)) | (va & (size - 1)));
        }
        table = entry & ADDRESS_MASK;
    }
    Err(WalkError::NotPresent { va, level: 1 })
}

/// Fetches up to [`MAX_INSTRUCTION`] bytes at linear `rip`, page by page,
/// into `out`; returns how many bytes could be read (0 if even the first
/// byte has no translation or lies outside memory).
pub fn fetch_instruction(
    mem: &impl GuestRead,
    cr3: u64,
    rip: u64,
    out: &mut [u8; MAX_INSTRUCTION],
) -> usize {
    let mut got = 0;
    while got < MAX_INSTRUCTION {
        let va = rip.wrapping_add(got as u64);
        let Ok(gpa) = translate(mem, cr3, va) else {
            break;
        };
        let in_page = (SMALL_PAGE - (va & (SMALL_PAGE - 1))) as usize;
        let n = in_page.min(MAX_INSTRUCTION - got);
        if mem.read(Gpa(gpa), &mut out[got..got + n]).is_err() {
            break;
        }
        got += n;
    }
    got
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::guest::GuestMemory;
    use crate::mem::guest_tables;

    fn setup(backing: &mut [u8]) -> (GuestMemory<'_>, u64) {
        let mut mem = GuestMemory::new(backing);
        let cr3 = guest_tables::build(&mut mem).unwrap();
        (mem, cr3)
    }

    fn write_u64(backing: &mut [u8], at: u64, v: u64) {
        backing[at as usize..at as usize + 8].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn identity_tables_translate_to_themselves() {
        let mut backing = std::vec![0u8; 0x4_0000];
        let (mem, cr3) = setup(&mut backing);
        for va in [
            0x1000,
            0x1_0042,
            0x3_ffff,
            0x20_0000,
            0x3fff_ffff,
            0x4000_0000,
        ] {
            assert_eq!(translate(&mem, cr3, va), Ok(va), "{va:#x}");
        }
        assert_eq!(
            translate(&mem, cr3, 0x10),
            Err(WalkError::NotPresent { va: 0x10, level: 1 })
        );
        assert_eq!(
            translate(&mem, cr3, vmm_abi::corral::layout::GUEST_VIRTUAL_GIB << 30),
            Err(WalkError::NotPresent {
                va: vmm_abi::corral::layout::GUEST_VIRTUAL_GIB << 30,
                level: 3
            })
        );
        assert_eq!(
            translate(&mem, cr3, 0x8000_0000_0000),
            Err(WalkError::NotCanonical(0x8000_0000_0000))
        );
        assert_eq!(
            translate(&mem, cr3, 0xffff_8000_0000_0000),
            Err(WalkError::NotPresent {
                va: 0xffff_8000_0000_0000,
                level: 4
            })
        );
    }

    #[test]
    fn hostile_tables_are_errors_not_crashes() {
        let mut backing = std::vec![0u8; 0x4_0000];
        // A PML4 entry pointing far outside guest memory.
        write_u64(&mut backing, 0x2000, 0x7_0000_0000 | PRESENT);
        let mem = GuestMemory::new(&mut backing);
        assert_eq!(
            translate(&mem, 0x2000, 0x1000),
            Err(WalkError::TableOutsideMemory { gpa: 0x7_0000_0000 })
        );
        // CR3 itself outside memory.
        assert!(matches!(
            translate(&mem, 0x9_0000_0000, 0x1000),
            Err(WalkError::TableOutsideMemory { .. })
        ));
    }

    #[test]
    fn one_gib_pages_and_self_referencing_tables() {
        let mut backing = std::vec![0u8; 0x4_0000];
        write_u64(&mut backing, 0x2000, 0x3000 | PRESENT);
        write_u64(&mut backing, 0x3000 + 8, PAGE_SIZE_BIT | PRESENT); // 1 GiB page at 1 GiB -> 0
        // A PML4 slot pointing at the PML4 itself: still four reads at most.
        write_u64(&mut backing, 0x2000 + 8 * 5, 0x2000 | PRESENT);
        let mem = GuestMemory::new(&mut backing);
        assert_eq!(translate(&mem, 0x2000, 0x4000_1234), Ok(0x1234));
        // 5 << 39: PML4[5] -> the PML4 again, read as a PDPT; its entry 0
        // (-> 0x3000) is then read as a page directory, whose entry 0 is empty.
        let recursive = 5u64 << 39;
        assert_eq!(
            translate(&mem, 0x2000, recursive),
            Err(WalkError::NotPresent {
                va: recursive,
                level: 2
            })
        );
    }

    #[test]
    fn fetch_stops_at_an_unmapped_page() {
        let mut backing = std::vec![0u8; 0x4_0000];
        backing[0x3_fff8..0x4_0000].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let (mem, cr3) = setup(&mut backing);
        let mut out = [0u8; MAX_INSTRUCTION];
        // The last 8 bytes of memory, then the page after it is outside memory.
        assert_eq!(fetch_instruction(&mem, cr3, 0x3_fff8, &mut out), 8);
        assert_eq!(out[..8], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            fetch_instruction(&mem, cr3, 0x10, &mut out),
            0,
            "page 0 is unmapped"
        );
        assert_eq!(
            fetch_instruction(&mem, cr3, 0x1_0000, &mut out),
            MAX_INSTRUCTION
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_tables_never_panic(
            entries in proptest::collection::vec(proptest::prelude::any::<u64>(), 16),
            va: u64,
            cr3 in 0u64..0x8000,
        ) {
            let mut backing = std::vec![0u8; 0x8000];
            for (i, e) in entries.iter().enumerate() {
                write_u64(&mut backing, 0x2000 + (i as u64) * 0x200, *e);
            }
            let mem = GuestMemory::new(&mut backing);
            // Whatever the guest wrote, translating must not panic; a result is
            // just a number the caller still bounds-checks before any access.
            let _ = translate(&mem, cr3, va);
            let mut out = [0u8; MAX_INSTRUCTION];
            proptest::prop_assert!(fetch_instruction(&mem, cr3, va, &mut out) <= MAX_INSTRUCTION);
        }
    }
}
