//! Block device records (section kind 9): a disk image (a boot module named `block=NAME`) held in memory, attached to one VM under the device name its Solo5 manifest declares, with its block size, capacity and whether its writes go back to the host file.

use super::err;
use super::error::{Field, ManifestError, Problem};
use crate::corral::bootinfo::NAME_MAX;
use crate::hvt::MFT_NAME_SIZE;
use crate::text::{is_valid_name, le, unpad};

/// Bytes in one block device record.
pub const BLOCK_RECORD_SIZE: usize = 144;
/// Most block devices one manifest may hold.
pub const MAX_BLOCKS: u32 = 64;
/// Smallest block size (Solo5's, and a disk sector's).
pub const MIN_BLOCK_SIZE: u32 = 512;
/// Largest block size (Solo5's manifest holds it in 16 bits).
pub const MAX_BLOCK_SIZE: u32 = 32768;
/// Largest disk image: 1 GiB (it lives in the machine's memory).
pub const MAX_BLOCK_CAPACITY: u64 = 1 << 30;
/// Flag: the disk's written blocks are written back to its host file at
/// the end of the run.
pub const BLOCK_PERSIST: u8 = 1;
/// Longest device name (Solo5's `[A-Za-z0-9]{1,67}`).
pub const DEVICE_NAME_MAX: usize = MFT_NAME_SIZE - 1;

const B_NAME: usize = 0;
const B_VM: usize = 32;
const B_BLOCK_SIZE: usize = 36;
const B_CAPACITY: usize = 40;
const B_FLAGS: usize = 48;
const B_RESERVED_1: usize = 49;
const B_DEVICE: usize = 64;
const B_RESERVED_2: usize = B_DEVICE + MFT_NAME_SIZE;
const _: () = assert!(B_VM == B_NAME + NAME_MAX);
const _: () = assert!(B_RESERVED_2 + 12 == BLOCK_RECORD_SIZE);

/// One block device as the manifest describes it (the working type; see
/// [`BlockSpec::encode`] and [`super::Manifest::blocks`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockSpec<'a> {
    /// Unique name (the rules of VM names); its boot module is
    /// `block=NAME`.
    pub name: &'a str,
    /// The VM it is attached to (its manifest index).
    pub vm: u32,
    /// The device name in that VM's Solo5 manifest.
    pub device: &'a str,
    /// Bytes per block: a power of two, 512..=32768.
    pub block_size: u32,
    /// Bytes of the disk image: whole blocks, at least one, at most 1 GiB.
    pub capacity: u64,
    /// Written blocks go back to the host file at the end of the run.
    pub persist: bool,
}

/// Whether `name` is a Solo5 device name: `[A-Za-z0-9]{1,67}`.
pub fn is_device_name(name: &[u8]) -> bool {
    !name.is_empty() && name.len() <= DEVICE_NAME_MAX && name.iter().all(u8::is_ascii_alphanumeric)
}

impl<'a> BlockSpec<'a> {
    /// Checks every field of this block device (the VM index against
    /// `vms`); `block` is its index, for the error.
    pub fn validate(&self, block: u32, vms: u32) -> Result<(), ManifestError> {
        let e = |field, problem| Err(err(Some(block), field, problem));
        if self.name.len() > NAME_MAX {
            return e(
                Field::BlockName,
                Problem::TooLong {
                    max: NAME_MAX as u64,
                },
            );
        }
        if !is_valid_name(self.name.as_bytes()) || self.name == crate::report::HYPERVISOR_SOURCE {
            return e(Field::BlockName, Problem::BadText);
        }
        if self.vm >= vms {
            return e(
                Field::BlockVm,
                Problem::NoVm {
                    found: self.vm,
                    vms,
                },
            );
        }
        if !is_device_name(self.device.as_bytes()) {
            return e(Field::BlockDevice, Problem::DeviceName);
        }
        if !self.block_size.is_power_of_two()
            || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&self.block_size)
        {
            return e(
                Field::BlockSize,
                Problem::BlockSize {
                    found: self.block_size,
                },
            );
        }
        if !(u64::from(self.block_size)..=MAX_BLOCK_CAPACITY).contains(&self.capacity) {
            return e(
                Field::BlockCapacity,
                Problem::OutOfRange {
                    found: self.capacity,
                    min: self.block_size.into(),
                    max: MAX_BLOCK_CAPACITY,
                },
            );
        }
        if !self.capacity.is_multiple_of(u64::from(self.block_size)) {
            return e(
                Field::BlockCapacity,
                Problem::NotMultiple {
                    found: self.capacity,
                    of: self.block_size.into(),
                },
            );
        }
        Ok(())
    }

    /// The wire record, after [`BlockSpec::validate`].
    pub fn encode(&self, block: u32, vms: u32) -> Result<[u8; BLOCK_RECORD_SIZE], ManifestError> {
        self.validate(block, vms)?;
        let mut r = [0u8; BLOCK_RECORD_SIZE];
        r[B_NAME..B_NAME + self.name.len()].copy_from_slice(self.name.as_bytes());
        le::put_u32(&mut r, B_VM, self.vm);
        le::put_u32(&mut r, B_BLOCK_SIZE, self.block_size);
        le::put_u64(&mut r, B_CAPACITY, self.capacity);
        r[B_FLAGS] = if self.persist { BLOCK_PERSIST } else { 0 };
        r[B_DEVICE..B_DEVICE + self.device.len()].copy_from_slice(self.device.as_bytes());
        Ok(r)
    }

    pub(super) fn decode(block: u32, r: &'a [u8], vms: u32) -> Result<Self, ManifestError> {
        let e = |field, problem| Err(err(Some(block), field, problem));
        if r[B_RESERVED_1..B_DEVICE].iter().any(|&b| b != 0)
            || r[B_RESERVED_2..BLOCK_RECORD_SIZE].iter().any(|&b| b != 0)
        {
            return e(Field::BlockReserved, Problem::NotZero);
        }
        if r[B_FLAGS] & !BLOCK_PERSIST != 0 {
            return e(
                Field::BlockFlags,
                Problem::UnknownFlags {
                    flags: r[B_FLAGS].into(),
                },
            );
        }
        let text = |from: usize, to: usize, field| {
            unpad(&r[from..to])
                .and_then(|n| core::str::from_utf8(n).ok())
                .ok_or(err(Some(block), field, Problem::BadText))
        };
        let spec = BlockSpec {
            name: text(B_NAME, B_VM, Field::BlockName)?,
            vm: le::u32_at(r, B_VM),
            device: text(B_DEVICE, B_RESERVED_2, Field::BlockDevice)?,
            block_size: le::u32_at(r, B_BLOCK_SIZE),
            capacity: le::u64_at(r, B_CAPACITY),
            persist: r[B_FLAGS] & BLOCK_PERSIST != 0,
        };
        spec.validate(block, vms)?;
        Ok(spec)
    }
}

/// Checks every block record of `records` (whole records, count already
/// in range) against `vms` VMs: each valid, names unique, each VM's device
/// names unique.
pub(super) fn check_blocks(records: &[u8], vms: u32) -> Result<(), ManifestError> {
    let decode = |i: usize, r| BlockSpec::decode(i as u32, r, vms);
    for (i, r) in records.chunks_exact(BLOCK_RECORD_SIZE).enumerate() {
        let b = decode(i, r)?;
        for (j, other) in records.chunks_exact(BLOCK_RECORD_SIZE).take(i).enumerate() {
            // Earlier records were decoded already.
            let Ok(other) = decode(j, other) else {
                continue;
            };
            if other.name == b.name {
                let first = j as u32;
                return Err(err(
                    Some(i as u32),
                    Field::BlockName,
                    Problem::Duplicate { first },
                ));
            }
            if other.vm == b.vm && other.device == b.device {
                let first = j as u32;
                return Err(err(
                    Some(i as u32),
                    Field::BlockDevice,
                    Problem::DuplicateDevice { first },
                ));
            }
        }
    }
    Ok(())
}
