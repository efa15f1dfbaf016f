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

/// A block device the VM binds to a name of its manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockBinding<'a> {
    /// The device name in the unikernel's manifest.
    pub device: &'a str,
    /// The disk's bytes.
    pub capacity: u64,
    /// Its block size.
    pub block_size: u32,
}

/// A net port the VM binds to a name of its manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetBinding<'a> {
    /// The device name in the unikernel's manifest.
    pub device: &'a str,
    /// The port's MAC address.
    pub mac: [u8; hvt::MAC_LEN],
}

/// Which binding each attached device is: (its handle, the index of its
/// binding in the caller's list).
pub type Attached = heapless::Vec<(u64, usize), { crate::hvt::call::MAX_VM_BLOCKS }>;

/// Each net binding's handle, in the caller's order.
pub type NetHandles = heapless::Vec<u64, { crate::hvt::net::MAX_VM_NETS }>;

/// Matches the VM's bindings to the devices `image`'s manifest declares:
/// every declared device bound, every binding declared, blocks bound to
/// block devices and net ports to net devices. Returns each binding's
/// handle.
pub fn attach(
    image: &HvtImage<'static>,
    blocks: &[BlockBinding<'static>],
    nets: &[NetBinding<'static>],
) -> Result<(Attached, NetHandles), HvtImageError> {
    let declared = |name: &'static str, kind: u32| {
        let d = image.mft.devices().find(|d| d.name == name);
        match d {
            None => Err(HvtImageError::Undeclared { name }),
            Some(d) if d.kind != kind => Err(HvtImageError::WrongKind { name, kind: d.kind }),
            Some(d) => Ok(u64::from(d.index)),
        }
    };
    let mut attached = Attached::new();
    for (i, b) in blocks.iter().enumerate() {
        let handle = declared(b.device, hvt::MFT_DEV_BLOCK_BASIC)?;
        attached
            .push((handle, i))
            .map_err(|_| HvtImageError::TooManyBlocks)?;
    }
    let mut handles = NetHandles::new();
    for n in nets {
        let handle = declared(n.device, hvt::MFT_DEV_NET_BASIC)?;
        handles
            .push(handle)
            .map_err(|_| HvtImageError::TooManyNets)?;
    }
    let bound = |name: &str| {
        blocks.iter().any(|b| b.device == name) || nets.iter().any(|n| n.device == name)
    };
    if let Some(d) = image.mft.devices().find(|d| !bound(d.name)) {
        return Err(HvtImageError::Unattached {
            name: d.name,
            kind: d.kind,
        });
    }
    Ok((attached, handles))
}

/// Builds the guest's memory for `image` from `file` (`mem` zeroed, the
/// segments `skip` says are mapped already left out), with `cmdline`, a
/// TSC of `tsc_hz`, the block devices `blocks` attached (as [`attach`]
/// matched them: `attached`) and the net devices `nets` (with handles
/// `net_handles`). `memory` is what the guest sees (its net devices' rings
/// lie above it); with a shared net `ring` there (see `hvt::ring::place`),
/// the guest's `mem_size` and stack end where the ring starts and the
/// boot info offers it.
#[allow(clippy::too_many_arguments)]
pub fn build(
    mem: &mut impl GuestRam,
    file: &[u8],
    image: &HvtImage<'_>,
    memory: u64,
    ring: Option<u64>,
    cmdline: &str,
    tsc_hz: u64,
    skip: impl Fn(u64) -> bool,
    (blocks, attached): (&[BlockBinding<'_>], &Attached),
    (nets, net_handles): (&[NetBinding<'_>], &NetHandles),
) -> Result<Entry, BuildError> {
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
    // The guest's copy says which devices are attached, and what they are
    // (the tender's fields: capacity and block size for a block device,
    // MAC and MTU for a net device).
    mem.write(Gpa(mft), image.mft.bytes())?;
    let entry = |handle: u64| mft + (hvt::MFT_HEADER as u64) + handle * hvt::MFT_ENTRY_SIZE as u64;
    for &(handle, i) in attached {
        let b = blocks.get(i).ok_or(BuildError::OutOfBounds)?;
        let entry = entry(handle);
        mem.write_u64(Gpa(entry + hvt::MFT_BLOCK_CAPACITY as u64), b.capacity)?;
        mem.write_u16(Gpa(entry + hvt::MFT_BLOCK_SIZE as u64), b.block_size as u16)?;
        mem.write(Gpa(entry + hvt::MFT_ATTACHED as u64), &[1])?;
    }
    for (n, &handle) in nets.iter().zip(net_handles) {
        let entry = entry(handle);
        mem.write(Gpa(entry + hvt::MFT_NET_MAC as u64), &n.mac)?;
        mem.write_u16(Gpa(entry + hvt::MFT_NET_MTU as u64), crate::hvt::net::MTU)?;
        mem.write(Gpa(entry + hvt::MFT_ATTACHED as u64), &[1])?;
    }
    mem.write(Gpa(line), cmdline.as_bytes())?;
    mem.write(Gpa(line + cmdline.len() as u64), &[0])?;
    let mem_size = ring.unwrap_or(memory);
    let info = hvt::BootInfo {
        mem_size,
        kernel_end: image.kernel_end,
        cpu_cycle_freq: tsc_hz,
        cmdline: line,
        mft,
        host_features: if ring.is_some() {
            hvt::FEATURE_RING_IO
        } else {
            0
        },
        net_ring: ring.unwrap_or(0),
    };
    mem.write(Gpa(hvt::BOOT_INFO_GPA), &info.to_bytes())?;
    Ok(Entry {
        rip: image.entry,
        rsp: mem_size - 8,
        rdi: hvt::BOOT_INFO_GPA,
        cr3: hvt::PML4_GPA,
    })
}
