//! NIC records (section kind 3): a physical NIC the hypervisor drives and
//! polls, its PCI address (or "the next one found"), its MAC, its data mode
//! and the core that polls it. Links reach a NIC by its index in this
//! section (see [`super::LinkEndRef`]).

use super::error::{Field, ManifestError, Problem};
use super::{MAX_CORES, err};
use crate::corral::bootinfo::NAME_MAX;
use crate::text::{is_valid_name, le, unpad};
use core::fmt;

/// Bytes in one NIC record.
pub const NIC_RECORD_SIZE: usize = 64;
/// Most NICs one manifest may name (Bochs emulates up to four e1000 cards).
pub const MAX_NICS: u32 = 4;
/// The `pci` value meaning "the n-th supported NIC found in bus order that
/// no other record names", n counting only the records that say this.
pub const NIC_PCI_AUTO: u32 = u32::MAX;

const N_NAME: usize = 0;
const N_PCI: usize = 32;
const N_MAC: usize = 36;
const N_MODE: usize = 42;
const N_RESERVED_1: usize = 43;
const N_CORE: usize = 44;
const N_RESERVED_2: usize = 48;
const _: () = assert!(N_PCI == N_NAME + NAME_MAX && N_MODE == N_MAC + 6);
const _: () = assert!(N_RESERVED_2 + 16 == NIC_RECORD_SIZE);

/// A PCI function's address on the configuration bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    /// Bus number.
    pub bus: u8,
    /// Device number (0..=31).
    pub device: u8,
    /// Function number (0..=7).
    pub function: u8,
}

impl PciAddress {
    /// Largest device number.
    pub const MAX_DEVICE: u8 = 31;
    /// Largest function number.
    pub const MAX_FUNCTION: u8 = 7;

    /// The wire form: `bus << 16 | device << 8 | function`.
    pub const fn to_u32(self) -> u32 {
        (self.bus as u32) << 16 | (self.device as u32) << 8 | self.function as u32
    }

    /// The address a wire value names, if it names one (top byte zero,
    /// device and function in range).
    pub const fn from_u32(raw: u32) -> Option<Self> {
        let [function, device, bus, top] = raw.to_le_bytes();
        if top != 0 || device > Self::MAX_DEVICE || function > Self::MAX_FUNCTION {
            return None;
        }
        Some(PciAddress {
            bus,
            device,
            function,
        })
    }

    /// Whether device and function are in range.
    pub const fn is_valid(self) -> bool {
        self.device <= Self::MAX_DEVICE && self.function <= Self::MAX_FUNCTION
    }
}

impl fmt::Display for PciAddress {
    /// `bb:dd.f` in hexadecimal, as `lspci` writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x}:{:02x}.{:x}",
            self.bus, self.device, self.function
        )
    }
}

/// Which NIC a record means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicPci {
    /// The n-th supported NIC found in bus order that no record names by
    /// address (n counts the `Auto` records before this one).
    Auto,
    /// The NIC at this address.
    At(PciAddress),
}

impl NicPci {
    /// The wire form ([`NIC_PCI_AUTO`] or the address).
    pub const fn to_u32(self) -> u32 {
        match self {
            NicPci::Auto => NIC_PCI_AUTO,
            NicPci::At(a) => a.to_u32(),
        }
    }
}

/// How guests' frames reach the NIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum NicMode {
    /// Copy mode: hypervisor-owned DMA buffers, one copy each way; several
    /// guests may share the NIC.
    Shared = 1,
    /// Mediated zero-copy: the NIC's descriptors point into the one
    /// guest's checked buffers.
    Owned = 2,
}

impl NicMode {
    /// The mode with this wire number.
    pub const fn from_u8(mode: u8) -> Option<Self> {
        match mode {
            1 => Some(NicMode::Shared),
            2 => Some(NicMode::Owned),
            _ => None,
        }
    }

    /// Its name in manifests and messages.
    pub const fn name(self) -> &'static str {
        match self {
            NicMode::Shared => "shared",
            NicMode::Owned => "owned",
        }
    }
}

/// One NIC as the manifest describes it (the working type; see
/// [`NicSpec::encode`] and [`super::Manifest::parse`] for the wire form).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NicSpec<'a> {
    /// Unique NIC name (the rules of VM names).
    pub name: &'a str,
    /// Which NIC.
    pub pci: NicPci,
    /// The MAC to program; `None`: the NIC's own, from its EEPROM.
    pub mac: Option<[u8; 6]>,
    /// How frames reach it.
    pub mode: NicMode,
    /// The core that polls it (and every link to it); it runs no VMs.
    pub core: u32,
}

/// Whether a MAC is a unicast address (the group bit, the low bit of its
/// first byte, clear).
pub const fn is_unicast(mac: [u8; 6]) -> bool {
    mac[0] & 1 == 0
}

impl<'a> NicSpec<'a> {
    /// Checks every field of this NIC; `nic` is its index, for the error.
    pub fn validate(&self, nic: u32) -> Result<(), ManifestError> {
        let e = |field, problem| Err(err(Some(nic), field, problem));
        if self.name.len() > NAME_MAX {
            return e(
                Field::NicName,
                Problem::TooLong {
                    max: NAME_MAX as u64,
                },
            );
        }
        if !is_valid_name(self.name.as_bytes()) || self.name == crate::report::HYPERVISOR_SOURCE {
            return e(Field::NicName, Problem::BadText);
        }
        if let NicPci::At(a) = self.pci
            && !a.is_valid()
        {
            return e(Field::NicPci, Problem::BadPci { found: a.to_u32() });
        }
        if let Some(mac) = self.mac
            && (mac == [0; 6] || !is_unicast(mac))
        {
            return e(Field::NicMac, Problem::NotUnicast);
        }
        if self.core >= MAX_CORES {
            return e(
                Field::NicCore,
                Problem::OutOfRange {
                    found: self.core.into(),
                    min: 0,
                    max: (MAX_CORES - 1).into(),
                },
            );
        }
        Ok(())
    }

    /// The wire record for this NIC, after [`NicSpec::validate`].
    pub fn encode(&self, nic: u32) -> Result<[u8; NIC_RECORD_SIZE], ManifestError> {
        self.validate(nic)?;
        let mut r = [0u8; NIC_RECORD_SIZE];
        r[N_NAME..N_NAME + self.name.len()].copy_from_slice(self.name.as_bytes());
        le::put_u32(&mut r, N_PCI, self.pci.to_u32());
        r[N_MAC..N_MAC + 6].copy_from_slice(&self.mac.unwrap_or([0; 6]));
        r[N_MODE] = self.mode as u8;
        le::put_u32(&mut r, N_CORE, self.core);
        Ok(r)
    }

    pub(super) fn decode(nic: u32, r: &'a [u8]) -> Result<Self, ManifestError> {
        let e = |field, problem| Err(err(Some(nic), field, problem));
        if r[N_RESERVED_1] != 0 || r[N_RESERVED_2..NIC_RECORD_SIZE].iter().any(|&b| b != 0) {
            return e(Field::NicReserved, Problem::NotZero);
        }
        let name = unpad(&r[N_NAME..N_PCI])
            .filter(|n| is_valid_name(n))
            .and_then(|n| core::str::from_utf8(n).ok())
            .ok_or(err(Some(nic), Field::NicName, Problem::BadText))?;
        let raw_pci = le::u32_at(r, N_PCI);
        let pci = if raw_pci == NIC_PCI_AUTO {
            NicPci::Auto
        } else {
            match PciAddress::from_u32(raw_pci) {
                Some(a) => NicPci::At(a),
                None => return e(Field::NicPci, Problem::BadPci { found: raw_pci }),
            }
        };
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&r[N_MAC..N_MAC + 6]);
        let Some(mode) = NicMode::from_u8(r[N_MODE]) else {
            return e(
                Field::NicMode,
                Problem::OutOfRange {
                    found: r[N_MODE].into(),
                    min: NicMode::Shared as u64,
                    max: NicMode::Owned as u64,
                },
            );
        };
        let spec = NicSpec {
            name,
            pci,
            mac: (mac != [0; 6]).then_some(mac),
            mode,
            core: le::u32_at(r, N_CORE),
        };
        spec.validate(nic)?;
        Ok(spec)
    }
}

/// Checks every NIC record of `records` (whole records, count already in
/// range): each valid, names unique, addresses unique. Returns the cores
/// that poll them.
pub(super) fn check_nics(records: &[u8]) -> Result<u64, ManifestError> {
    let mut cores = 0u64;
    for (i, r) in records.chunks_exact(NIC_RECORD_SIZE).enumerate() {
        let nic = NicSpec::decode(i as u32, r)?;
        let earlier = records.chunks_exact(NIC_RECORD_SIZE).take(i);
        for (j, other) in earlier.enumerate() {
            // Earlier records were decoded already.
            let Ok(other) = NicSpec::decode(j as u32, other) else {
                continue;
            };
            if other.name == nic.name {
                return Err(err(
                    Some(i as u32),
                    Field::NicName,
                    Problem::Duplicate { first: j as u32 },
                ));
            }
            if let (NicPci::At(a), NicPci::At(b)) = (nic.pci, other.pci)
                && a == b
            {
                return Err(err(
                    Some(i as u32),
                    Field::NicPci,
                    Problem::DuplicatePci { first: j as u32 },
                ));
            }
        }
        cores |= 1 << nic.core;
    }
    Ok(cores)
}
