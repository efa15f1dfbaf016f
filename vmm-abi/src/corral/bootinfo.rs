//! The boot info a guest receives: a raw `#[repr(C)]` wire struct written by
//! the hypervisor at [`crate::corral::layout::BOOT_INFO_GPA`] (its address is passed
//! in RDI at entry), and the checked view [`BootInfo`] a guest works with.

use crate::corral::devices::DeviceKind;
use crate::corral::layout::MAX_DEVICES;
use crate::text::{is_printable, is_valid_name, le, unpad};
use core::fmt;
use core::mem::{offset_of, size_of};

/// `"CRLB"`, first field of the raw boot info.
pub const BOOT_INFO_MAGIC: u32 = u32::from_le_bytes(*b"CRLB");
/// Longest VM or image name, in bytes.
pub const NAME_MAX: usize = 32;
/// Longest argument string, in bytes.
pub const ARGS_MAX: usize = 128;

/// The wire form of the boot info, exactly as it lies in guest memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootInfoRaw {
    /// [`BOOT_INFO_MAGIC`].
    pub magic: u32,
    /// [`crate::ABI_VERSION`] of the hypervisor that wrote it.
    pub abi_version: u32,
    /// Index of this VM in the manifest.
    pub vm_index: u32,
    /// Physical core the VM was started on.
    pub core: u32,
    /// Bytes of guest-physical memory, starting at 0.
    pub memory_size: u64,
    /// First byte of the heap (page aligned).
    pub heap_start: u64,
    /// Bytes of heap.
    pub heap_size: u64,
    /// Initial stack pointer's upper bound (top of the stack region).
    pub stack_top: u64,
    /// Bytes used in `name`.
    pub name_len: u32,
    /// Bytes used in `args`.
    pub args_len: u32,
    /// VM name from the manifest, NUL padded.
    pub name: [u8; NAME_MAX],
    /// Argument string from the manifest, NUL padded.
    pub args: [u8; ARGS_MAX],
    /// What sits in each device slot ([`DeviceKind`] as a byte).
    pub devices: [u8; MAX_DEVICES],
}

/// Size of [`BootInfoRaw`] on the wire.
pub const BOOT_INFO_SIZE: usize = 224;
const _: () = assert!(size_of::<BootInfoRaw>() == BOOT_INFO_SIZE);
const _: () = assert!(offset_of!(BootInfoRaw, memory_size) == 16);
const _: () = assert!(offset_of!(BootInfoRaw, name_len) == 48);
const _: () = assert!(offset_of!(BootInfoRaw, name) == 56);
const _: () = assert!(offset_of!(BootInfoRaw, args) == 56 + NAME_MAX);
const _: () = assert!(offset_of!(BootInfoRaw, devices) == 56 + NAME_MAX + ARGS_MAX);

impl BootInfoRaw {
    /// The little-endian bytes of this struct, laid out as `#[repr(C)]`
    /// places it, for a writer that only has a byte view of guest memory.
    pub fn to_bytes(&self) -> [u8; BOOT_INFO_SIZE] {
        let mut b = [0u8; BOOT_INFO_SIZE];
        le::put_u32(&mut b, offset_of!(Self, magic), self.magic);
        le::put_u32(&mut b, offset_of!(Self, abi_version), self.abi_version);
        le::put_u32(&mut b, offset_of!(Self, vm_index), self.vm_index);
        le::put_u32(&mut b, offset_of!(Self, core), self.core);
        le::put_u64(&mut b, offset_of!(Self, memory_size), self.memory_size);
        le::put_u64(&mut b, offset_of!(Self, heap_start), self.heap_start);
        le::put_u64(&mut b, offset_of!(Self, heap_size), self.heap_size);
        le::put_u64(&mut b, offset_of!(Self, stack_top), self.stack_top);
        le::put_u32(&mut b, offset_of!(Self, name_len), self.name_len);
        le::put_u32(&mut b, offset_of!(Self, args_len), self.args_len);
        let n = offset_of!(Self, name);
        b[n..n + NAME_MAX].copy_from_slice(&self.name);
        let a = offset_of!(Self, args);
        b[a..a + ARGS_MAX].copy_from_slice(&self.args);
        let d = offset_of!(Self, devices);
        b[d..d + MAX_DEVICES].copy_from_slice(&self.devices);
        b
    }

    /// Parses the bytes [`BootInfoRaw::to_bytes`] produces.
    pub fn from_bytes(b: &[u8; BOOT_INFO_SIZE]) -> Self {
        let mut name = [0u8; NAME_MAX];
        let n = offset_of!(Self, name);
        name.copy_from_slice(&b[n..n + NAME_MAX]);
        let mut args = [0u8; ARGS_MAX];
        let a = offset_of!(Self, args);
        args.copy_from_slice(&b[a..a + ARGS_MAX]);
        let mut devices = [0u8; MAX_DEVICES];
        let d = offset_of!(Self, devices);
        devices.copy_from_slice(&b[d..d + MAX_DEVICES]);
        BootInfoRaw {
            magic: le::u32_at(b, offset_of!(Self, magic)),
            abi_version: le::u32_at(b, offset_of!(Self, abi_version)),
            vm_index: le::u32_at(b, offset_of!(Self, vm_index)),
            core: le::u32_at(b, offset_of!(Self, core)),
            memory_size: le::u64_at(b, offset_of!(Self, memory_size)),
            heap_start: le::u64_at(b, offset_of!(Self, heap_start)),
            heap_size: le::u64_at(b, offset_of!(Self, heap_size)),
            stack_top: le::u64_at(b, offset_of!(Self, stack_top)),
            name_len: le::u32_at(b, offset_of!(Self, name_len)),
            args_len: le::u32_at(b, offset_of!(Self, args_len)),
            name,
            args,
            devices,
        }
    }
}

/// Why a guest refused its boot info.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// The magic field is wrong: this is not boot info.
    BadMagic(u32),
    /// Written by a hypervisor speaking another ABI version.
    Version {
        /// Version found in the struct.
        found: u32,
    },
    /// A length field is larger than its array.
    Length(&'static str),
    /// A string field holds bytes it may not.
    Text(&'static str),
    /// Heap or stack lie outside guest memory.
    Region(&'static str),
    /// A device slot holds a kind this guest does not know.
    Device {
        /// The slot.
        slot: usize,
        /// The byte found there.
        kind: u8,
    },
}

impl fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootInfoError::BadMagic(m) => write!(f, "boot info magic {m:#x} is wrong"),
            BootInfoError::Version { found } => write!(
                f,
                "boot info ABI version {found}, this guest speaks {}",
                crate::ABI_VERSION
            ),
            BootInfoError::Length(field) => write!(f, "boot info field `{field}` is too long"),
            BootInfoError::Text(field) => write!(f, "boot info field `{field}` is not valid text"),
            BootInfoError::Region(field) => {
                write!(f, "boot info field `{field}` lies outside guest memory")
            }
            BootInfoError::Device { slot, kind } => {
                write!(f, "boot info device slot {slot} holds unknown kind {kind}")
            }
        }
    }
}

/// The checked boot info a guest works with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootInfo<'a> {
    /// Index of this VM in the manifest.
    pub vm_index: u32,
    /// Physical core the VM was started on.
    pub core: u32,
    /// Bytes of guest memory.
    pub memory_size: u64,
    /// First byte of the heap.
    pub heap_start: u64,
    /// Bytes of heap.
    pub heap_size: u64,
    /// Top of the stack.
    pub stack_top: u64,
    /// This VM's name.
    pub name: &'a str,
    /// The argument string the manifest gave this VM.
    pub args: &'a str,
    /// What sits in each device slot (see [`crate::corral::devices`]).
    pub devices: [DeviceKind; MAX_DEVICES],
}

impl<'a> BootInfo<'a> {
    /// Builds boot info for a VM; the hypervisor's side of the contract.
    pub fn to_raw(&self) -> Result<BootInfoRaw, BootInfoError> {
        let mut name = [0u8; NAME_MAX];
        let mut args = [0u8; ARGS_MAX];
        name.get_mut(..self.name.len())
            .ok_or(BootInfoError::Length("name"))?
            .copy_from_slice(self.name.as_bytes());
        args.get_mut(..self.args.len())
            .ok_or(BootInfoError::Length("args"))?
            .copy_from_slice(self.args.as_bytes());
        Ok(BootInfoRaw {
            magic: BOOT_INFO_MAGIC,
            abi_version: crate::ABI_VERSION,
            vm_index: self.vm_index,
            core: self.core,
            memory_size: self.memory_size,
            heap_start: self.heap_start,
            heap_size: self.heap_size,
            stack_top: self.stack_top,
            name_len: self.name.len() as u32,
            args_len: self.args.len() as u32,
            name,
            args,
            devices: self.devices.map(|d| d as u8),
        })
    }

    /// Checks raw boot info and returns the view of it; the guest's side.
    pub fn from_raw(raw: &'a BootInfoRaw) -> Result<Self, BootInfoError> {
        if raw.magic != BOOT_INFO_MAGIC {
            return Err(BootInfoError::BadMagic(raw.magic));
        }
        if raw.abi_version != crate::ABI_VERSION {
            return Err(BootInfoError::Version {
                found: raw.abi_version,
            });
        }
        let name = raw
            .name
            .get(..raw.name_len as usize)
            .ok_or(BootInfoError::Length("name"))?;
        let args = raw
            .args
            .get(..raw.args_len as usize)
            .ok_or(BootInfoError::Length("args"))?;
        if !is_valid_name(name) {
            return Err(BootInfoError::Text("name"));
        }
        if !is_printable(args) {
            return Err(BootInfoError::Text("args"));
        }
        if unpad(&raw.name).map(<[u8]>::len) != Some(name.len()) {
            return Err(BootInfoError::Text("name"));
        }
        let within = |start: u64, len: u64| {
            start
                .checked_add(len)
                .is_some_and(|end| end <= raw.memory_size)
        };
        if !within(raw.heap_start, raw.heap_size) {
            return Err(BootInfoError::Region("heap"));
        }
        if raw.stack_top > raw.memory_size {
            return Err(BootInfoError::Region("stack_top"));
        }
        let mut devices = [DeviceKind::None; MAX_DEVICES];
        for (slot, (&kind, out)) in raw.devices.iter().zip(&mut devices).enumerate() {
            *out = DeviceKind::from_raw(kind).ok_or(BootInfoError::Device { slot, kind })?;
        }
        Ok(BootInfo {
            vm_index: raw.vm_index,
            core: raw.core,
            memory_size: raw.memory_size,
            heap_start: raw.heap_start,
            heap_size: raw.heap_size,
            stack_top: raw.stack_top,
            // Both were checked above to be ASCII.
            name: core::str::from_utf8(name).map_err(|_| BootInfoError::Text("name"))?,
            args: core::str::from_utf8(args).map_err(|_| BootInfoError::Text("args"))?,
            devices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BootInfo<'static> {
        BootInfo {
            vm_index: 3,
            core: 0,
            memory_size: 0x40_0000,
            heap_start: 0x20_0000,
            heap_size: 0x10_0000,
            stack_top: 0x40_0000,
            name: "hello",
            args: "mode=fast n=3",
            devices: crate::corral::devices::slots(1, true).unwrap(),
        }
    }

    #[test]
    fn round_trip_through_bytes() {
        let raw = sample().to_raw().unwrap();
        let back = BootInfoRaw::from_bytes(&raw.to_bytes());
        assert_eq!(back, raw);
        assert_eq!(BootInfo::from_raw(&back).unwrap(), sample());
    }

    #[test]
    fn bytes_follow_repr_c_layout() {
        let raw = sample().to_raw().unwrap();
        let b = raw.to_bytes();
        assert_eq!(&b[0..4], b"CRLB");
        assert_eq!(&b[56..61], b"hello");
        assert_eq!(le::u64_at(&b, 16), 0x40_0000);
    }

    #[test]
    fn rejects_bad_input() {
        let good = sample().to_raw().unwrap();
        let mut r = good;
        r.magic = 0;
        assert!(matches!(
            BootInfo::from_raw(&r),
            Err(BootInfoError::BadMagic(0))
        ));
        let mut r = good;
        r.abi_version = 99;
        assert_eq!(
            BootInfo::from_raw(&r),
            Err(BootInfoError::Version { found: 99 })
        );
        let mut r = good;
        r.name_len = 33;
        assert_eq!(BootInfo::from_raw(&r), Err(BootInfoError::Length("name")));
        let mut r = good;
        r.args_len = 200;
        assert_eq!(BootInfo::from_raw(&r), Err(BootInfoError::Length("args")));
        let mut r = good;
        r.args[0] = b'\n';
        assert_eq!(BootInfo::from_raw(&r), Err(BootInfoError::Text("args")));
        let mut r = good;
        r.heap_size = u64::MAX;
        assert_eq!(BootInfo::from_raw(&r), Err(BootInfoError::Region("heap")));
        let mut r = good;
        r.stack_top = r.memory_size + 1;
        assert_eq!(
            BootInfo::from_raw(&r),
            Err(BootInfoError::Region("stack_top"))
        );
        let mut r = good;
        r.devices[5] = 9;
        assert_eq!(
            BootInfo::from_raw(&r),
            Err(BootInfoError::Device { slot: 5, kind: 9 })
        );
        let long = [b'a'; NAME_MAX + 1];
        let info = BootInfo {
            name: core::str::from_utf8(&long).unwrap(),
            ..sample()
        };
        assert_eq!(info.to_raw(), Err(BootInfoError::Length("name")));
    }
}
