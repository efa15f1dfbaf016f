//! The firmware's ACPI tables, read in place with the `acpi` crate (no
//! allocation): the MADT's local APIC entries are the machine's cores.

use super::halt;
use crate::console::StackStr;
use crate::multiboot::{RootTable, Rsdp};
use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiError, AcpiHandler, AcpiTables, PhysicalMapping};
use core::fmt;
use core::mem::size_of;
use core::ptr::NonNull;

/// The hypervisor's page tables map this much physical memory 1:1.
const IDENTITY_MAPPED_END: u64 = 1 << 32;
/// `AcpiTables::from_rsdt` revisions: 0 reads an RSDT (32-bit entries),
/// any other an XSDT (64-bit entries).
const REVISION_RSDT: u8 = 0;
const REVISION_XSDT: u8 = 2;
/// MADT local APIC flags (ACPI 6.5, table 5.44): the core can be used.
const LAPIC_ENABLED: u32 = 1 << 0;
/// MADT interrupt controller structure types and their smallest lengths
/// (ACPI 6.5, 5.2.12).
const ENTRY_LOCAL_APIC: u8 = 0;
const ENTRY_LOCAL_APIC_LEN: u8 = 8;
const ENTRY_ADDRESS_OVERRIDE: u8 = 5;
const ENTRY_ADDRESS_OVERRIDE_LEN: u8 = 12;
const ENTRY_LOCAL_X2APIC: u8 = 9;
const ENTRY_LOCAL_X2APIC_LEN: u8 = 16;
/// Every MADT entry starts with its type and length bytes.
const ENTRY_HEADER_LEN: usize = 2;

/// Physical memory is identity mapped, so mapping a table is taking its
/// address. Nothing is ever unmapped.
#[derive(Clone, Copy, Debug)]
struct IdentityMapped;

impl AcpiHandler for IdentityMapped {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        let start = physical_address as u64;
        let inside = start
            .checked_add(size as u64)
            .is_some_and(|end| end <= IDENTITY_MAPPED_END);
        let Some(ptr) = NonNull::new(physical_address as *mut T).filter(|_| inside) else {
            halt::fatal(
                StackStr::<120>::format(format_args!(
                    "ACPI table at {start:#x} ({size} bytes) lies outside the identity-mapped 4 GiB"
                ))
                .as_str(),
            )
        };
        // SAFETY: the range is non-null and inside the identity map, so the
        // pointer is the table's address; the crate only reads it.
        unsafe { PhysicalMapping::new(physical_address, ptr, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// A local APIC the MADT lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalApic {
    /// Its APIC ID.
    pub apic_id: u32,
    /// Whether the firmware says the core is usable.
    pub enabled: bool,
}

/// Why the cores could not be read from ACPI.
#[derive(Debug)]
pub enum Problem {
    /// The RSDP names no root table.
    NoRootTable,
    /// The root table is invalid.
    RootTable(AcpiError),
    /// There is no valid MADT.
    NoMadt,
    /// An MADT entry's length is wrong.
    MalformedMadt,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NoRootTable => write!(f, "the ACPI RSDP names no RSDT or XSDT"),
            Problem::RootTable(e) => write!(f, "the ACPI root table is invalid ({e:?})"),
            Problem::NoMadt => write!(f, "the ACPI tables have no valid MADT"),
            Problem::MalformedMadt => write!(f, "the ACPI MADT has a malformed entry"),
        }
    }
}

/// Checks every MADT entry's length before the crate walks the entries
/// (it trusts them): each must fit in the table, be at least a header long,
/// and hold the whole structure for the types read here.
fn entries_well_formed(table: &[u8]) -> bool {
    let mut off = size_of::<Madt>();
    while off < table.len() {
        let Some(&[ty, len]) = table.get(off..off + ENTRY_HEADER_LEN) else {
            return false;
        };
        let least = match ty {
            ENTRY_LOCAL_APIC => ENTRY_LOCAL_APIC_LEN,
            ENTRY_ADDRESS_OVERRIDE => ENTRY_ADDRESS_OVERRIDE_LEN,
            ENTRY_LOCAL_X2APIC => ENTRY_LOCAL_X2APIC_LEN,
            _ => ENTRY_HEADER_LEN as u8,
        };
        if len < least || off + usize::from(len) > table.len() {
            return false;
        }
        off += usize::from(len);
    }
    true
}

/// Calls `visit` with every local APIC (xAPIC and x2APIC entries) in MADT
/// order; returns the local APIC address the MADT gives.
pub fn local_apics(rsdp: &Rsdp, mut visit: impl FnMut(LocalApic)) -> Result<u64, Problem> {
    let (revision, address) = match rsdp.root_table().ok_or(Problem::NoRootTable)? {
        RootTable::Rsdt(a) => (REVISION_RSDT, a),
        RootTable::Xsdt(a) => (REVISION_XSDT, a),
    };
    // SAFETY: the address comes from an RSDP whose signature and checksums
    // were checked; the handler refuses anything outside the identity map.
    let tables = unsafe { AcpiTables::from_rsdt(IdentityMapped, revision, address as usize) }
        .map_err(Problem::RootTable)?;
    let madt = tables.find_table::<Madt>().map_err(|_| Problem::NoMadt)?;
    // SAFETY: the crate mapped (identity) and checksummed `region_length`
    // bytes at the MADT's address; they stay valid and unchanged while
    // `madt` lives.
    let bytes = unsafe {
        core::slice::from_raw_parts(
            madt.virtual_start().as_ptr().cast::<u8>(),
            madt.region_length(),
        )
    };
    if bytes.len() < size_of::<Madt>() || !entries_well_formed(bytes) {
        return Err(Problem::MalformedMadt);
    }
    let madt = madt.get();
    let mut lapic_address = u64::from(madt.local_apic_address);
    for entry in madt.entries() {
        match entry {
            MadtEntry::LocalApic(e) => visit(LocalApic {
                apic_id: u32::from(e.apic_id),
                enabled: { e.flags } & LAPIC_ENABLED != 0,
            }),
            MadtEntry::LocalX2Apic(e) => visit(LocalApic {
                apic_id: e.x2apic_id,
                enabled: { e.flags } & LAPIC_ENABLED != 0,
            }),
            MadtEntry::LocalApicAddressOverride(e) => lapic_address = e.local_apic_address,
            _ => {}
        }
    }
    Ok(lapic_address)
}
