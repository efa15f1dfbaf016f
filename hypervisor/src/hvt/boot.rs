//! Builds an hvt guest's starting memory: its segments from the file, and in the low MiB the GDT, the identity page tables (null page and low pages absent, boot data read-only, 2 MiB pages above), the boot info, the manifest copy and the command line.

use super::image::{HvtImage, HvtImageError};
use crate::mem::access::{Gpa, GuestRam, OutOfBounds};
use vmm_abi::hvt;

const PRESENT: u64 = 1;
const WRITABLE: u64 = 2;
const HUGE: u64 = 0x80;
const PAGE: u64 = 4096;
const ENTRIES: u64 = 512;
/// Page directories: 4 GiB of 2 MiB pages.
const PDS: u64 = 4;

/// What the guest starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// RIP.
    pub rip: u64,
    /// RSP (an 8-byte slot below the top of memory).
    pub rsp: u64,
    /// RDI (the boot info).
    pub rdi: u64,
    /// CR3.
    pub cr3: u64,
}

/// Why the starting memory could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The image breaks a rule.
    Image(HvtImageError),
    /// A write fell outside guest memory (cannot happen after the checks).
    OutOfBounds,
}

impl From<OutOfBounds> for BuildError {
    fn from(_: OutOfBounds) -> Self {
        BuildError::OutOfBounds
    }
}

/// The page-table entry of the 4 KiB page at `addr` in the first 2 MiB.
fn low_page(addr: u64) -> u64 {
    if addr < hvt::LOW_UNMAPPED_END {
        0
    } else if addr < hvt::LOW_READ_ONLY_END {
        addr | PRESENT
    } else {
        addr | PRESENT | WRITABLE
    }
}

/// Writes the GDT and the page tables of a guest of `memory` bytes.
pub fn tables(mem: &mut impl GuestRam, memory: u64) -> Result<(), OutOfBounds> {
    for (i, d) in hvt::GDT.iter().enumerate() {
        mem.write_u64(Gpa(hvt::GDT_GPA + 8 * i as u64), *d)?;
    }
    mem.write_u64(Gpa(hvt::PML4_GPA), hvt::PDPT_GPA | PRESENT | WRITABLE)?;
    for i in 0..PDS {
        mem.write_u64(
            Gpa(hvt::PDPT_GPA + 8 * i),
            (hvt::PD_GPA + i * PAGE) | PRESENT | WRITABLE,
        )?;
    }
    mem.write_u64(Gpa(hvt::PD_GPA), hvt::PT0_GPA | PRESENT | WRITABLE)?;
    let huge = hvt::MEMORY_ALIGN;
    for i in 1..(memory / huge).min(PDS * ENTRIES) {
        mem.write_u64(
            Gpa(hvt::PD_GPA + 8 * i),
            (i * huge) | PRESENT | WRITABLE | HUGE,
        )?;
    }
    for p in 0..ENTRIES {
        mem.write_u64(Gpa(hvt::PT0_GPA + 8 * p), low_page(p * PAGE))?;
    }
    Ok(())
}

/// Builds the guest's memory for `image` from `file` (`mem` zeroed, the
/// segments `skip` says are mapped already left out), with `cmdline` and a
/// TSC of `tsc_hz`.
pub fn build(
    mem: &mut impl GuestRam,
    file: &[u8],
    image: &HvtImage<'_>,
    memory: u64,
    cmdline: &str,
    tsc_hz: u64,
    skip: impl Fn(u64) -> bool,
) -> Result<Entry, BuildError> {
    if let Some(d) = image.mft.devices().next() {
        return Err(BuildError::Image(HvtImageError::Unattached {
            index: d.index,
        }));
    }
    if cmdline.len() as u64 >= hvt::CMDLINE_SIZE {
        return Err(BuildError::Image(HvtImageError::Cmdline));
    }
    for l in image.loads().filter(|l| !skip(l.pages.0)) {
        // The checks bounded both ranges.
        let bytes = file
            .get(l.offset as usize..(l.offset + l.filesz) as usize)
            .ok_or(BuildError::OutOfBounds)?;
        mem.write(Gpa(l.vaddr), bytes)?;
    }
    tables(mem, memory)?;
    let mft = hvt::BOOT_INFO_GPA + hvt::BOOT_INFO_SIZE;
    let line = mft + image.mft.bytes().len() as u64;
    // Devices would be marked attached in this copy; there are none.
    mem.write(Gpa(mft), image.mft.bytes())?;
    mem.write(Gpa(line), cmdline.as_bytes())?;
    mem.write(Gpa(line + cmdline.len() as u64), &[0])?;
    let info = hvt::BootInfo {
        mem_size: memory,
        kernel_end: image.kernel_end,
        cpu_cycle_freq: tsc_hz,
        cmdline: line,
        mft,
    };
    mem.write(Gpa(hvt::BOOT_INFO_GPA), &info.to_bytes())?;
    Ok(Entry {
        rip: image.entry,
        rsp: memory - 8,
        rdi: hvt::BOOT_INFO_GPA,
        cr3: hvt::PML4_GPA,
    })
}
