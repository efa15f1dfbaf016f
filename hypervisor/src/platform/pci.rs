//! PCI and the physical NIC on the machine: configuration space through ports 0xCF8/0xCFC, an e1000's registers as 32-bit MMIO over its BAR0, its DMA area in frames from the allocator, [`supported`], which lists the 82540EMs, and [`probe_at`], which enables one and sets it up.
//!
//! `platform/net.rs` finds the NICs ([`supported`]) and sets each up
//! ([`probe_at`]) once, on the boot core; each NIC's polling core then
//! owns it.

use super::instr;
use super::memory::{self, IDENTITY_MAPPED_END, PAGE};
use crate::mem::access::{Gpa, Hpa};
use crate::mem::raw::{RamPiece, RawRam};
use crate::nic::e1000::E1000;
use crate::nic::pci::{self, ID_82540EM, MemoryBar, PciAddress, PciError};
use crate::nic::{ConfigSpace, MacAddr, NicDevice, NicError, Regs};
use spin::Mutex;

/// CONFIG_ADDRESS: selects the dword CONFIG_DATA reaches (PCI 3.0,
/// 3.2.2.3.2, configuration mechanism #1).
const CONFIG_ADDRESS: u16 = 0xCF8;
/// CONFIG_DATA: the selected dword.
const CONFIG_DATA: u16 = 0xCFC;
/// CONFIG_ADDRESS bit 31: enable the configuration cycle.
const CONFIG_ENABLE: u32 = 1 << 31;
/// CONFIG_ADDRESS fields: bus (23:16), device (15:11), function (10:8),
/// register (7:2).
const CONFIG_BUS_SHIFT: u32 = 16;
const CONFIG_DEV_SHIFT: u32 = 11;
const CONFIG_FUNC_SHIFT: u32 = 8;
const CONFIG_REGISTER_MASK: u32 = 0xFC;

/// The address/data pair is one shared selector: one access at a time.
static CONFIG_PORTS: Mutex<()> = Mutex::new(());

/// Configuration space through the legacy I/O ports.
pub struct PortConfigSpace;

fn config_address(at: PciAddress, offset: u8) -> u32 {
    CONFIG_ENABLE
        | (u32::from(at.bus()) << CONFIG_BUS_SHIFT)
        | (u32::from(at.dev()) << CONFIG_DEV_SHIFT)
        | (u32::from(at.func()) << CONFIG_FUNC_SHIFT)
        | (u32::from(offset) & CONFIG_REGISTER_MASK)
}

impl ConfigSpace for PortConfigSpace {
    fn read32(&self, at: PciAddress, offset: u8) -> u32 {
        let _ports = CONFIG_PORTS.lock();
        // SAFETY: 0xCF8/0xCFC are the host bridge's configuration ports,
        // which only this module uses (under the lock above); selecting and
        // reading a configuration dword touches no memory.
        unsafe {
            instr::outl(CONFIG_ADDRESS, config_address(at, offset));
            instr::inl(CONFIG_DATA)
        }
    }

    fn write32(&mut self, at: PciAddress, offset: u8, value: u32) {
        let _ports = CONFIG_PORTS.lock();
        // SAFETY: as in `read32`. The writes `nic::pci` makes (a BAR's size
        // probe and restore, the Command register) change how a device
        // decodes addresses and whether it may DMA; it is only enabled for
        // DMA once its driver owns the memory it will be given.
        unsafe {
            instr::outl(CONFIG_ADDRESS, config_address(at, offset));
            instr::outl(CONFIG_DATA, value);
        }
    }
}

/// A device's registers in its memory BAR, reached through the identity
/// map as aligned 32-bit volatile accesses. Accesses outside the BAR or
/// unaligned ones are refused (reads answer all ones).
pub struct MmioRegs {
    base: u64,
    size: u64,
}

impl MmioRegs {
    /// The registers of `bar` (of `at`), which must lie below
    /// [`IDENTITY_MAPPED_END`].
    pub fn new(at: PciAddress, bar: MemoryBar) -> Result<Self, PciError> {
        bar.check_below(at, IDENTITY_MAPPED_END)?;
        Ok(MmioRegs {
            base: bar.base,
            size: bar.size,
        })
    }

    /// The address of register `reg`, if it is an aligned dword inside the BAR.
    fn at(&self, reg: u32) -> Option<*mut u32> {
        let reg = u64::from(reg);
        (reg.is_multiple_of(4) && reg + 4 <= self.size).then(|| (self.base + reg) as *mut u32)
    }
}

impl Regs for MmioRegs {
    fn read(&self, reg: u32) -> u32 {
        match self.at(reg) {
            // SAFETY: the dword lies inside the device's BAR (checked by
            // `at`), which is below 4 GiB and so identity mapped (checked in
            // `new`); it is device memory, never a frame the allocator hands
            // out, and no Rust reference to it exists. Aligned 32-bit
            // volatile access, the only width the e1000 takes.
            Some(p) => unsafe { p.read_volatile() },
            None => {
                log::error!("refused an MMIO read at {reg:#x} (hypervisor bug)");
                u32::MAX
            }
        }
    }

    fn write(&mut self, reg: u32, value: u32) {
        match self.at(reg) {
            // SAFETY: as in `read`. A register write can make the device
            // DMA, but only into the ring addresses its driver programmed:
            // frames it owns (see `dma_area`).
            Some(p) => unsafe { p.write_volatile(value) },
            None => log::error!("refused an MMIO write at {reg:#x} (hypervisor bug)"),
        }
    }
}

/// `bytes` of zeroed DMA memory as a raw view whose addresses are
/// physical (`gpa == hpa`), with its physical address. The frames are
/// never freed: a NIC may write them until it is reset, and a NIC lives
/// for the whole run.
pub fn dma_area(bytes: u64) -> Option<(RawRam, u64)> {
    let len = bytes.div_ceil(PAGE) * PAGE;
    let base = memory::alloc_zeroed_pages(len / PAGE)?;
    let piece = RamPiece {
        gpa: Gpa(base),
        len,
        hpa: Hpa(base),
        writable: true,
    };
    // SAFETY: the frames were just allocated (identity mapped below 4 GiB,
    // as every frame the allocator hands out) and are never freed, so they
    // stay readable and writable for as long as the view lives; no Rust
    // reference to them is ever made (only the NIC and this view touch them).
    let ram = unsafe { RawRam::new(core::iter::once(piece)) };
    Some((ram, base))
}

/// The machine's e1000: MMIO registers, DMA memory from the allocator,
/// the default ring size.
pub type MachineE1000 = E1000<MmioRegs, RawRam>;

/// Most supported NICs one scan lists.
pub const MAX_FOUND: usize = 8;

/// Every 82540EM (8086:100E) on the machine, in bus order (at most
/// [`MAX_FOUND`]).
pub fn supported() -> heapless::Vec<PciAddress, MAX_FOUND> {
    let mut found = heapless::Vec::new();
    pci::for_each_function(&PortConfigSpace, |at, id| {
        if id == ID_82540EM && found.push(at).is_err() {
            return core::ops::ControlFlow::Break(());
        }
        core::ops::ControlFlow::Continue(())
    });
    found
}

/// Enables the 82540EM at `at` (memory decoding and bus mastering, INTx
/// off) and sets it up, with `mac` or the MAC in its EEPROM, for its own
/// buffers or (`owned`) for buffers its caller gives. An error names what
/// failed (the DMA area is then abandoned, never freed).
pub fn probe_at(
    at: PciAddress,
    mac: Option<MacAddr>,
    owned: bool,
) -> Result<MachineE1000, NicError> {
    let mut cs = PortConfigSpace;
    let bar = pci::memory_bar0(&mut cs, at)?;
    let regs = MmioRegs::new(at, bar)?;
    let bytes = MachineE1000::DMA_BYTES;
    let (dma, base) = dma_area(bytes).ok_or(NicError::NoDmaMemory { bytes })?;
    pci::enable_memory_and_dma(&mut cs, at);
    let mut nic = if owned {
        E1000::new_owned(regs, dma, base, mac)?
    } else {
        E1000::new(regs, dma, base, mac)?
    };
    log::info!(
        "nic {at}: 82540EM, BAR0 {:#x} (+{:#x}), MAC {}, link {}",
        bar.base,
        bar.size,
        nic.mac(),
        if nic.link_up() { "up" } else { "down" }
    );
    Ok(nic)
}
