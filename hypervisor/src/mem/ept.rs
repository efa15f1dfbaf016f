//! Extended page tables (Intel SDM Vol. 3C, 29.3): a 4-level map from
//! guest-physical to host-physical addresses, built over a small
//! [`TableMemory`] trait so the builder is host-tested. A VM's EPT maps only
//! the memory the hypervisor gives it; everything else faults.
#![forbid(unsafe_code)]

use bitflags::bitflags;
use core::fmt;

/// Entries per table.
const ENTRIES: usize = 512;
/// Bits of guest-physical address EPT translates with a 4-level walk.
const GPA_BITS: u32 = 48;
/// Address bits 51:12 of an entry.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// EPT memory type "write-back" (SDM 29.3.7), used in leaves and the EPTP.
const MEMORY_TYPE_WB: u64 = 6;
/// Shift of the memory type in a leaf entry.
const LEAF_MEMORY_TYPE_SHIFT: u64 = 3;
/// EPTP bits 5:3 hold the walk length minus one.
const EPTP_WALK_SHIFT: u64 = 3;
/// A 4-level walk.
const WALK_LEVELS: u64 = 4;
/// 4 KiB.
const PAGE: u64 = 0x1000;
/// 2 MiB.
const LARGE_PAGE: u64 = 0x20_0000;
/// Physical addresses have at most 52 bits (SDM 4.1.4, MAXPHYADDR).
const MAX_PHYSICAL: u64 = 1 << 52;

bitflags! {
    /// Access rights of an EPT mapping (SDM Table 29-6).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct EptPerms: u64 {
        /// Reads allowed.
        const READ = 1 << 0;
        /// Writes allowed.
        const WRITE = 1 << 1;
        /// Instruction fetches allowed.
        const EXECUTE = 1 << 2;
        /// Everything.
        const RWX = Self::READ.bits() | Self::WRITE.bits() | Self::EXECUTE.bits();
        /// Read and execute, no write (shared code).
        const RX = Self::READ.bits() | Self::EXECUTE.bits();
        /// Read and write, no execute (an hvt guest's private memory).
        const RW = Self::READ.bits() | Self::WRITE.bits();
    }
}

/// Bit 7 of a PDE: maps a 2 MiB page.
const LARGE: u64 = 1 << 7;
/// Bit 6 of a leaf: ignore the guest PAT.
const IGNORE_PAT: u64 = 1 << 6;

/// Where EPT tables live: allocation of zeroed 4 KiB tables and access to
/// their entries by value (no reference into a table is ever handed out;
/// an address that is not a live table of this memory is refused).
pub trait TableMemory {
    /// A new zeroed table's host-physical address, or `None` when out of memory.
    fn alloc_table(&mut self) -> Option<u64>;
    /// Returns a table to the pool.
    fn free_table(&mut self, hpa: u64);
    /// Entry `index` of the table at `table`; 0 (not present) if `table` is
    /// not a live table of this memory or `index` is out of range.
    fn entry(&self, table: u64, index: usize) -> u64;
    /// Sets entry `index` of the table at `table`; `false` (and nothing
    /// written) if `table` is not a live table of this memory or `index` is
    /// out of range.
    fn set_entry(&mut self, table: u64, index: usize, value: u64) -> bool;
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EptError {
    /// No memory for a table.
    OutOfMemory,
    /// An address or length is not 4 KiB aligned.
    Misaligned,
    /// The range leaves the 48-bit guest-physical space.
    OutOfRange,
    /// Part of the range is mapped already.
    AlreadyMapped(u64),
    /// An entry points at something that is not a table of this EPT's
    /// memory (a hypervisor bug, reported as one).
    NotATable(u64),
}

impl fmt::Display for EptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EptError::OutOfMemory => write!(f, "out of memory for EPT tables"),
            EptError::Misaligned => write!(f, "EPT mapping is not page aligned"),
            EptError::OutOfRange => write!(f, "EPT mapping beyond 48-bit guest-physical space"),
            EptError::AlreadyMapped(gpa) => write!(f, "guest-physical {gpa:#x} is mapped twice"),
            EptError::NotATable(hpa) => {
                write!(
                    f,
                    "EPT entry points at {hpa:#x}, not an EPT table (hypervisor bug)"
                )
            }
        }
    }
}

/// One VM's EPT hierarchy.
#[derive(Debug)]
pub struct Ept {
    root: u64,
    tables: u64,
    /// The CPU allows 2 MiB EPT pages (IA32_VMX_EPT_VPID_CAP bit 16).
    large_pages: bool,
}

fn index(gpa: u64, level: u64) -> usize {
    ((gpa >> (12 + 9 * level)) & 0x1ff) as usize
}

impl Ept {
    /// An empty hierarchy (nothing mapped); `large_pages` when the CPU
    /// allows 2 MiB EPT pages.
    pub fn new(mem: &mut impl TableMemory, large_pages: bool) -> Result<Self, EptError> {
        let root = mem.alloc_table().ok_or(EptError::OutOfMemory)?;
        Ok(Ept {
            root,
            tables: 1,
            large_pages,
        })
    }

    /// The EPT pointer for the VMCS: write-back, 4-level walk, this root.
    pub fn eptp(&self) -> u64 {
        self.root | ((WALK_LEVELS - 1) << EPTP_WALK_SHIFT) | MEMORY_TYPE_WB
    }

    /// Tables in use (for memory accounting).
    pub fn table_count(&self) -> u64 {
        self.tables
    }

    /// Maps `len` bytes at `gpa` to `hpa` with `perms`, using 2 MiB pages
    /// where both addresses and the remaining length allow it.
    pub fn map(
        &mut self,
        mem: &mut impl TableMemory,
        gpa: u64,
        hpa: u64,
        len: u64,
        perms: EptPerms,
    ) -> Result<(), EptError> {
        if !gpa.is_multiple_of(PAGE) || !hpa.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
            return Err(EptError::Misaligned);
        }
        let end = gpa.checked_add(len).ok_or(EptError::OutOfRange)?;
        if end > 1 << GPA_BITS || hpa.checked_add(len).is_none_or(|e| e > MAX_PHYSICAL) {
            return Err(EptError::OutOfRange);
        }
        let mut off = 0;
        while off < len {
            let (g, h) = (gpa + off, hpa + off);
            let large = self.large_pages
                && g % LARGE_PAGE == 0
                && h % LARGE_PAGE == 0
                && len - off >= LARGE_PAGE;
            let leaf_level = if large { 1 } else { 0 };
            let table = self.walk_create(mem, g, leaf_level)?;
            let i = index(g, leaf_level);
            if mem.entry(table, i) != 0 {
                return Err(EptError::AlreadyMapped(g));
            }
            let leaf = h
                | perms.bits()
                | (MEMORY_TYPE_WB << LEAF_MEMORY_TYPE_SHIFT)
                | IGNORE_PAT
                | if large { LARGE } else { 0 };
            if !mem.set_entry(table, i, leaf) {
                return Err(EptError::NotATable(table));
            }
            off += if large { LARGE_PAGE } else { PAGE };
        }
        Ok(())
    }

    /// The table holding the entry for `gpa` at `leaf_level` (0 = PT,
    /// 1 = PD), creating intermediate tables as needed.
    fn walk_create(
        &mut self,
        mem: &mut impl TableMemory,
        gpa: u64,
        leaf_level: u64,
    ) -> Result<u64, EptError> {
        let mut table = self.root;
        for level in (leaf_level + 1..WALK_LEVELS).rev() {
            let entry = mem.entry(table, index(gpa, level));
            table = if entry == 0 {
                let next = mem.alloc_table().ok_or(EptError::OutOfMemory)?;
                self.tables += 1;
                if !mem.set_entry(table, index(gpa, level), next | EptPerms::RWX.bits()) {
                    mem.free_table(next);
                    self.tables -= 1;
                    return Err(EptError::NotATable(table));
                }
                next
            } else if entry & LARGE != 0 {
                return Err(EptError::AlreadyMapped(gpa));
            } else {
                entry & ADDR_MASK
            };
        }
        Ok(table)
    }

    /// The host-physical address and rights `gpa` maps to, if mapped.
    pub fn translate(&self, mem: &mut impl TableMemory, gpa: u64) -> Option<(u64, EptPerms)> {
        if gpa >= 1 << GPA_BITS {
            return None;
        }
        let mut table = self.root;
        for level in (0..WALK_LEVELS).rev() {
            let entry = mem.entry(table, index(gpa, level));
            if entry & EptPerms::RWX.bits() == 0 {
                return None;
            }
            let leaf = level == 0 || entry & LARGE != 0;
            if leaf {
                let size = PAGE << (9 * level);
                let base = entry & ADDR_MASK & !(size - 1);
                return Some((base + gpa % size, EptPerms::from_bits_truncate(entry)));
            }
            table = entry & ADDR_MASK;
        }
        None
    }

    /// Frees every table of this hierarchy (not the memory it maps).
    pub fn destroy(self, mem: &mut impl TableMemory) {
        fn free_level(mem: &mut impl TableMemory, table: u64, level: u64) {
            if level > 0 {
                for i in 0..ENTRIES {
                    let entry = mem.entry(table, i);
                    if entry & EptPerms::RWX.bits() != 0 && entry & LARGE == 0 {
                        free_level(mem, entry & ADDR_MASK, level - 1);
                    }
                }
            }
            mem.free_table(table);
        }
        free_level(mem, self.root, WALK_LEVELS - 1);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Tables in a hash map, at fake addresses.
    #[derive(Default)]
    pub(crate) struct MockTables {
        pub tables: HashMap<u64, std::boxed::Box<[u64; ENTRIES]>>,
        pub next: u64,
        pub limit: Option<usize>,
    }

    impl TableMemory for MockTables {
        fn alloc_table(&mut self) -> Option<u64> {
            if self.limit.is_some_and(|l| self.tables.len() >= l) {
                return None;
            }
            self.next += PAGE;
            let hpa = 0x1_0000_0000 + self.next;
            self.tables.insert(hpa, std::boxed::Box::new([0; ENTRIES]));
            Some(hpa)
        }
        fn free_table(&mut self, hpa: u64) {
            assert!(self.tables.remove(&hpa).is_some(), "double free {hpa:#x}");
        }
        fn entry(&self, table: u64, index: usize) -> u64 {
            self.tables
                .get(&table)
                .and_then(|t| t.get(index))
                .copied()
                .unwrap_or(0)
        }
        fn set_entry(&mut self, table: u64, index: usize, value: u64) -> bool {
            match self.tables.get_mut(&table).and_then(|t| t.get_mut(index)) {
                Some(e) => {
                    *e = value;
                    true
                }
                None => false,
            }
        }
    }

    #[test]
    fn maps_only_what_was_asked() {
        let mut m = MockTables::default();
        let mut ept = Ept::new(&mut m, true).unwrap();
        ept.map(&mut m, 0, 0x80_0000, 0x20_0000 + 0x3000, EptPerms::RWX)
            .unwrap();
        assert_eq!(ept.translate(&mut m, 0), Some((0x80_0000, EptPerms::RWX)));
        assert_eq!(
            ept.translate(&mut m, 0x1234),
            Some((0x80_1234, EptPerms::RWX))
        );
        assert_eq!(
            ept.translate(&mut m, 0x20_2fff),
            Some((0xa0_2fff, EptPerms::RWX))
        );
        assert_eq!(ept.translate(&mut m, 0x20_3000), None);
        assert_eq!(ept.translate(&mut m, 0x4000_0000), None);
        assert_eq!(ept.translate(&mut m, u64::MAX), None);
        // root, PDPT, PD, one PT for the tail: the 2 MiB head is one large page.
        assert_eq!(ept.table_count(), 4);
        assert_eq!(ept.eptp() & 0xfff, 0x1e);
        ept.destroy(&mut m);
        assert!(m.tables.is_empty());
    }

    #[test]
    fn no_large_pages_without_the_capability() {
        let mut m = MockTables::default();
        let mut ept = Ept::new(&mut m, false).unwrap();
        ept.map(&mut m, 0, 0x80_0000, 0x20_0000, EptPerms::RWX)
            .unwrap();
        // root, PDPT, PD and one full page table: 512 small pages.
        assert_eq!(ept.table_count(), 4);
        assert_eq!(
            ept.translate(&mut m, 0x1f_f123),
            Some((0x9f_f123, EptPerms::RWX))
        );
        ept.destroy(&mut m);
        assert!(m.tables.is_empty());
    }

    #[test]
    fn rejects_bad_requests() {
        let mut m = MockTables::default();
        let mut ept = Ept::new(&mut m, true).unwrap();
        assert_eq!(
            ept.map(&mut m, 1, 0, PAGE, EptPerms::RWX),
            Err(EptError::Misaligned)
        );
        assert_eq!(
            ept.map(&mut m, 1 << GPA_BITS, 0, PAGE, EptPerms::RWX),
            Err(EptError::OutOfRange)
        );
        assert_eq!(
            ept.map(&mut m, 0, MAX_PHYSICAL - PAGE, 2 * PAGE, EptPerms::RWX),
            Err(EptError::OutOfRange)
        );
        ept.map(&mut m, 0x5000, 0x9000, PAGE, EptPerms::RX).unwrap();
        assert_eq!(
            ept.map(&mut m, 0x5000, 0xa000, PAGE, EptPerms::RWX),
            Err(EptError::AlreadyMapped(0x5000))
        );
        assert_eq!(ept.translate(&mut m, 0x5008), Some((0x9008, EptPerms::RX)));
        let mut tight = MockTables {
            limit: Some(2),
            ..Default::default()
        };
        let mut ept = Ept::new(&mut tight, true).unwrap();
        assert_eq!(
            ept.map(&mut tight, 0, 0, PAGE, EptPerms::RWX),
            Err(EptError::OutOfMemory)
        );
    }

    proptest! {
        #[test]
        fn translation_matches_mapping(pages in 1u64..1200, hpa_page in 0u64..4096, probe in 0u64..0x100_0000) {
            let mut m = MockTables::default();
            let mut ept = Ept::new(&mut m, true).unwrap();
            let len = pages * PAGE;
            let hpa = hpa_page * PAGE;
            ept.map(&mut m, 0, hpa, len, EptPerms::RWX).unwrap();
            let got = ept.translate(&mut m, probe);
            if probe < len {
                prop_assert_eq!(got, Some((hpa + probe, EptPerms::RWX)));
            } else {
                prop_assert_eq!(got, None);
            }
            ept.destroy(&mut m);
            prop_assert!(m.tables.is_empty());
        }
    }
}
