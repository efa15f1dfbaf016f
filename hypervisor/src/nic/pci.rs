//! PCI enumeration over [`ConfigSpace`]: function addresses (`00:02.0`), finding a device by vendor and device ID, sizing and checking a memory BAR, and enabling memory decoding and bus mastering with INTx off (PCI Local Bus 3.0, chapter 6).
//!
//! Enumeration is brute force over every bus number (0 ..= 255), every
//! device and, where function 0 says it is multi-function, every function:
//! it needs no bridge walking and finds devices behind bridges the
//! firmware numbered. A missing function reads all ones.
#![forbid(unsafe_code)]

use super::ConfigSpace;
use core::fmt;
use core::ops::ControlFlow;
use core::str::FromStr;

// Configuration header offsets (PCI 3.0, figure 6-1), dword aligned.

/// Vendor ID (bits 15:0) and Device ID (bits 31:16).
pub const CFG_ID: u8 = 0x00;
/// Command (bits 15:0) and Status (bits 31:16).
pub const CFG_COMMAND: u8 = 0x04;
/// Cache line size, latency timer, Header Type (bits 23:16), BIST.
pub const CFG_HEADER: u8 = 0x0C;
/// Base Address Register 0 (BAR1 follows at +4).
pub const CFG_BAR0: u8 = 0x10;

/// Vendor ID read from a function that does not exist.
pub const VENDOR_NONE: u16 = 0xFFFF;
/// Header Type bit 7: the device has more than one function.
pub const HEADER_MULTI_FUNCTION: u32 = 1 << 23;

/// Command bit 1: Memory Space enable.
pub const COMMAND_MEMORY: u32 = 1 << 1;
/// Command bit 2: Bus Master enable (the device may DMA).
pub const COMMAND_BUS_MASTER: u32 = 1 << 2;
/// Command bit 10: Interrupt Disable (INTx# not asserted).
pub const COMMAND_INTX_DISABLE: u32 = 1 << 10;
/// The Command half of the Command/Status dword (Status bits are
/// write-one-to-clear, so they are written as 0).
pub const COMMAND_MASK: u32 = 0xFFFF;

/// BAR bit 0: I/O space (1) or memory space (0) (PCI 3.0, 6.2.5.1).
pub const BAR_IO: u32 = 1 << 0;
/// BAR bits 2:1: memory type.
pub const BAR_TYPE_MASK: u32 = 0b11 << 1;
/// Memory type 00: 32-bit address.
pub const BAR_TYPE_32: u32 = 0b00 << 1;
/// Memory type 10: 64-bit address (the next BAR holds the high half).
pub const BAR_TYPE_64: u32 = 0b10 << 1;
/// BAR bit 3: prefetchable.
pub const BAR_PREFETCHABLE: u32 = 1 << 3;
/// The address bits of a memory BAR.
pub const BAR_MEM_ADDR_MASK: u32 = !0xF;
/// What a BAR is written with to learn its size.
pub const BAR_SIZE_PROBE: u32 = 0xFFFF_FFFF;

/// Devices per bus.
pub const DEVICES: u8 = 32;
/// Functions per device.
pub const FUNCTIONS: u8 = 8;

/// A PCI vendor and device ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciId {
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
}

/// Intel's vendor ID.
pub const VENDOR_INTEL: u16 = 0x8086;
/// Intel 82540EM (desktop), what Bochs and QEMU emulate: the one the
/// driver supports. Its relatives 82545EM (100F) and 82543GC (1004) are
/// not matched.
pub const ID_82540EM: PciId = PciId {
    vendor: VENDOR_INTEL,
    device: 0x100E,
};

/// Where a function sits: bus, device (0..32), function (0..8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    bus: u8,
    dev: u8,
    func: u8,
}

impl PciAddress {
    /// The address, if `dev` and `func` are in range.
    pub const fn new(bus: u8, dev: u8, func: u8) -> Option<Self> {
        if dev < DEVICES && func < FUNCTIONS {
            Some(PciAddress { bus, dev, func })
        } else {
            None
        }
    }

    /// Bus number.
    pub const fn bus(self) -> u8 {
        self.bus
    }

    /// Device number (0..32).
    pub const fn dev(self) -> u8 {
        self.dev
    }

    /// Function number (0..8).
    pub const fn func(self) -> u8 {
        self.func
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.dev, self.func)
    }
}

/// Why a `bus:dev.func` string is not a PCI address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciAddressError {
    /// Not of the form `BB:DD.F` (hexadecimal bus and device of one or two
    /// digits, one function digit).
    Syntax,
    /// Device number 32 or more.
    Device(u8),
    /// Function number 8 or more.
    Function(u8),
}

impl fmt::Display for PciAddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PciAddressError::Syntax => {
                write!(f, "a PCI address is bus:device.function, like 00:02.0")
            }
            PciAddressError::Device(d) => write!(f, "PCI device {d:#x} is not below 0x20"),
            PciAddressError::Function(n) => write!(f, "PCI function {n} is not below 8"),
        }
    }
}

/// One or two hexadecimal digits.
fn hex_byte(s: &str) -> Result<u8, PciAddressError> {
    if s.is_empty() || s.len() > 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PciAddressError::Syntax);
    }
    u8::from_str_radix(s, 16).map_err(|_| PciAddressError::Syntax)
}

impl FromStr for PciAddress {
    type Err = PciAddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (bus, rest) = s.split_once(':').ok_or(PciAddressError::Syntax)?;
        let (dev, func) = rest.split_once('.').ok_or(PciAddressError::Syntax)?;
        let (bus, dev) = (hex_byte(bus)?, hex_byte(dev)?);
        if func.len() != 1 || !func.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PciAddressError::Syntax);
        }
        let func = func.as_bytes()[0] - b'0';
        if dev >= DEVICES {
            return Err(PciAddressError::Device(dev));
        }
        if func >= FUNCTIONS {
            return Err(PciAddressError::Function(func));
        }
        Ok(PciAddress { bus, dev, func })
    }
}

/// What is wrong with a device's PCI set-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciError {
    /// BAR0 is an I/O BAR, not memory.
    BarIsIo {
        /// The function.
        at: PciAddress,
    },
    /// BAR0 has the reserved memory type (bits 2:1 = 01 or 11).
    BarReservedType {
        /// The function.
        at: PciAddress,
        /// Bits 2:1.
        ty: u8,
    },
    /// BAR0 reads back no address bits when probed: not implemented.
    BarNotImplemented {
        /// The function.
        at: PciAddress,
    },
    /// BAR0 holds address 0: the firmware did not place it.
    BarUnassigned {
        /// The function.
        at: PciAddress,
    },
    /// BAR0 is not below the limit the hypervisor maps.
    BarAboveLimit {
        /// The function.
        at: PciAddress,
        /// BAR0's address.
        base: u64,
        /// Its size.
        size: u64,
        /// The first address not mapped.
        limit: u64,
    },
}

impl fmt::Display for PciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PciError::BarIsIo { at } => write!(f, "{at} BAR0 is an I/O BAR, not memory"),
            PciError::BarReservedType { at, ty } => {
                write!(f, "{at} BAR0 has the reserved memory type {ty:#b}")
            }
            PciError::BarNotImplemented { at } => {
                write!(f, "{at} BAR0 is not implemented (no size bits)")
            }
            PciError::BarUnassigned { at } => write!(f, "{at} BAR0 was never assigned an address"),
            PciError::BarAboveLimit {
                at,
                base,
                size,
                limit,
            } => write!(
                f,
                "{at} BAR0 at {base:#x} (+{size:#x}) is not below {limit:#x}, which the hypervisor maps"
            ),
        }
    }
}

/// Calls `f` for every function present, in address order, until it
/// breaks.
pub fn for_each_function(
    cs: &impl ConfigSpace,
    mut f: impl FnMut(PciAddress, PciId) -> ControlFlow<()>,
) {
    for bus in 0..=u8::MAX {
        for dev in 0..DEVICES {
            let func0 = PciAddress { bus, dev, func: 0 };
            let Some(id) = read_id(cs, func0) else {
                continue;
            };
            if f(func0, id).is_break() {
                return;
            }
            if cs.read32(func0, CFG_HEADER) & HEADER_MULTI_FUNCTION == 0 {
                continue;
            }
            for func in 1..FUNCTIONS {
                let at = PciAddress { bus, dev, func };
                if let Some(id) = read_id(cs, at)
                    && f(at, id).is_break()
                {
                    return;
                }
            }
        }
    }
}

/// The function's IDs, or `None` if nothing answers there.
fn read_id(cs: &impl ConfigSpace, at: PciAddress) -> Option<PciId> {
    let v = cs.read32(at, CFG_ID);
    let vendor = v as u16;
    (vendor != VENDOR_NONE).then_some(PciId {
        vendor,
        device: (v >> 16) as u16,
    })
}

/// The first function with ID `want`.
pub fn find(cs: &impl ConfigSpace, want: PciId) -> Option<PciAddress> {
    let mut found = None;
    for_each_function(cs, |at, id| {
        if id == want {
            found = Some(at);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

/// A memory BAR: where the firmware placed it, and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBar {
    /// Its physical address.
    pub base: u64,
    /// Its size in bytes (a power of two).
    pub size: u64,
    /// A 64-bit BAR (using the next BAR register too).
    pub is_64: bool,
    /// Prefetchable.
    pub prefetchable: bool,
}

impl MemoryBar {
    /// Checks that the whole BAR lies below `limit` (what the hypervisor
    /// identity-maps).
    pub fn check_below(&self, at: PciAddress, limit: u64) -> Result<(), PciError> {
        match self.base.checked_add(self.size) {
            Some(end) if end <= limit => Ok(()),
            _ => Err(PciError::BarAboveLimit {
                at,
                base: self.base,
                size: self.size,
                limit,
            }),
        }
    }
}

/// Reads and sizes BAR0 of `at`, which must be a memory BAR. Memory
/// decoding is off while the BAR holds the probe value, then the Command
/// register and the BAR are restored.
pub fn memory_bar0(cs: &mut impl ConfigSpace, at: PciAddress) -> Result<MemoryBar, PciError> {
    let low = cs.read32(at, CFG_BAR0);
    if low & BAR_IO != 0 {
        return Err(PciError::BarIsIo { at });
    }
    let is_64 = match low & BAR_TYPE_MASK {
        BAR_TYPE_32 => false,
        BAR_TYPE_64 => true,
        ty => {
            return Err(PciError::BarReservedType {
                at,
                ty: (ty >> 1) as u8,
            });
        }
    };
    let high_reg = CFG_BAR0 + 4;
    let high = if is_64 { cs.read32(at, high_reg) } else { 0 };

    let command = cs.read32(at, CFG_COMMAND) & COMMAND_MASK;
    cs.write32(at, CFG_COMMAND, command & !COMMAND_MEMORY);
    cs.write32(at, CFG_BAR0, BAR_SIZE_PROBE);
    let low_mask = cs.read32(at, CFG_BAR0) & BAR_MEM_ADDR_MASK;
    cs.write32(at, CFG_BAR0, low);
    let high_mask = if is_64 {
        cs.write32(at, high_reg, BAR_SIZE_PROBE);
        let m = cs.read32(at, high_reg);
        cs.write32(at, high_reg, high);
        m
    } else {
        // A 32-bit BAR decodes nothing above 4 GiB.
        u32::MAX
    };
    cs.write32(at, CFG_COMMAND, command);

    let mask = (u64::from(high_mask) << 32) | u64::from(low_mask);
    if low_mask == 0 && (!is_64 || high_mask == 0) {
        return Err(PciError::BarNotImplemented { at });
    }
    let size = (!mask).wrapping_add(1);
    let base = (u64::from(high) << 32) | u64::from(low & BAR_MEM_ADDR_MASK);
    if base == 0 {
        return Err(PciError::BarUnassigned { at });
    }
    Ok(MemoryBar {
        base,
        size,
        is_64,
        prefetchable: low & BAR_PREFETCHABLE != 0,
    })
}

/// Lets `at` decode its memory BARs and master the bus (DMA), with INTx
/// disabled (the hypervisor polls).
pub fn enable_memory_and_dma(cs: &mut impl ConfigSpace, at: PciAddress) {
    let command = cs.read32(at, CFG_COMMAND) & COMMAND_MASK;
    cs.write32(
        at,
        CFG_COMMAND,
        command | COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE,
    );
}

/// What a manifest asks of one NIC's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wanted {
    /// The next supported NIC in bus order that no other NIC names.
    Auto,
    /// The NIC at this address.
    At(PciAddress),
}

/// Why a NIC cannot be given the device it asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// No supported NIC at the address it names.
    NotThere(PciAddress),
    /// Every supported NIC found is taken by others.
    NoneLeft {
        /// Supported NICs found in all.
        found: usize,
    },
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::NotThere(at) => write!(f, "no supported NIC at {at}"),
            ResolveError::NoneLeft { found } => write!(
                f,
                "`auto` found no free supported NIC ({found} found, all taken)"
            ),
        }
    }
}

/// Gives each wanted NIC (in manifest order) one of the devices `found`
/// (supported NICs, in bus order): an address named explicitly gets that
/// device; each `Auto` gets the first device in bus order that no
/// explicit address names and no earlier `Auto` took. `out[i]` is NIC
/// `i`'s; the first NIC that cannot be served is the error, with its
/// index.
pub fn resolve(
    found: &[PciAddress],
    wanted: &[Wanted],
    out: &mut [Option<PciAddress>],
) -> Result<(), (usize, ResolveError)> {
    let named = |at: &PciAddress| wanted.contains(&Wanted::At(*at));
    let mut free = found.iter().filter(|at| !named(at));
    for (i, (w, slot)) in wanted.iter().zip(out.iter_mut()).enumerate() {
        *slot = Some(match *w {
            Wanted::At(at) if found.contains(&at) => at,
            Wanted::At(at) => return Err((i, ResolveError::NotThere(at))),
            Wanted::Auto => *free
                .next()
                .ok_or((i, ResolveError::NoneLeft { found: found.len() }))?,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
