//! Map definitions: kind, key and value sizes, capacity, their limits and named errors, the 16-byte wire form, update flags and the error codes map helpers return.

#![forbid(unsafe_code)]

use crate::manifest::MAX_CORES;
use core::fmt;

/// Largest key, in bytes.
pub const MAX_KEY_SIZE: u32 = 64;
/// Largest value, in bytes.
pub const MAX_VALUE_SIZE: u32 = 256;
/// Most entries in one map.
pub const MAX_ENTRIES: u32 = 65536;
/// Most data bytes in one map (keys and values, every core's copy), see
/// [`MapDef::data_bytes`].
pub const MAX_MAP_BYTES: u64 = 1 << 20;
/// The key size of array maps: a `u32` index.
pub const ARRAY_KEY_SIZE: u32 = 4;
/// Bytes in a map definition's wire form.
pub const MAP_DEF_SIZE: usize = 16;

/// `bpf_map_update_elem` flag: create or replace.
pub const BPF_ANY: u64 = 0;
/// `bpf_map_update_elem` flag: create only; an existing key is an error.
pub const BPF_NOEXIST: u64 = 1;
/// `bpf_map_update_elem` flag: replace only; a missing key is an error.
pub const BPF_EXIST: u64 = 2;

/// Helper error (returned negated): no such key.
pub const ENOENT: u64 = 2;
/// Helper error (returned negated): index out of range, or the map is full.
pub const E2BIG: u64 = 7;
/// Helper error (returned negated): the key exists.
pub const EEXIST: u64 = 17;
/// Helper error (returned negated): bad flags, or an operation the map
/// kind has not (deleting from an array).
pub const EINVAL: u64 = 22;

/// A helper's return value for error `errno`: `-errno` as a u64.
pub const fn neg_errno(errno: u64) -> u64 {
    errno.wrapping_neg()
}

/// The kinds of map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapKind {
    /// Fixed entries `0 .. max_entries`, keyed by a `u32` index, all present
    /// from the start (zero). Linux `BPF_MAP_TYPE_ARRAY`.
    Array = 2,
    /// Keys of `key_size` bytes, at most `max_entries` of them, open
    /// addressing with a fixed capacity. Linux `BPF_MAP_TYPE_HASH`.
    Hash = 1,
    /// An array with one copy per core; a program sees its core's copy.
    /// Linux `BPF_MAP_TYPE_PERCPU_ARRAY`.
    PerCpuArray = 6,
}

impl MapKind {
    /// The kind a wire value (the Linux map type number) names.
    pub const fn from_u32(raw: u32) -> Option<Self> {
        Some(match raw {
            1 => MapKind::Hash,
            2 => MapKind::Array,
            6 => MapKind::PerCpuArray,
            _ => return None,
        })
    }

    /// Its name in manifests and messages.
    pub const fn name(self) -> &'static str {
        match self {
            MapKind::Array => "array",
            MapKind::Hash => "hash",
            MapKind::PerCpuArray => "percpu_array",
        }
    }
}

/// One map a program uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MapDef {
    /// Its kind.
    pub kind: MapKind,
    /// Bytes in a key (4 for arrays).
    pub key_size: u32,
    /// Bytes in a value.
    pub value_size: u32,
    /// Most entries (the length of an array).
    pub max_entries: u32,
}

/// What is wrong with a map definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The wire kind is not one this crate knows.
    UnknownKind(u32),
    /// A key of 0 bytes or more than [`MAX_KEY_SIZE`].
    KeySize(u32),
    /// An array's key is not 4 bytes.
    ArrayKeySize(u32),
    /// A value of 0 bytes or more than [`MAX_VALUE_SIZE`].
    ValueSize(u32),
    /// No entries, or more than [`MAX_ENTRIES`].
    Entries(u32),
    /// More than [`MAX_MAP_BYTES`] of data.
    TooLarge(u64),
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MapError::UnknownKind(k) => write!(f, "unknown map kind {k}"),
            MapError::KeySize(n) => write!(f, "key of {n} bytes (1 to {MAX_KEY_SIZE})"),
            MapError::ArrayKeySize(n) => {
                write!(
                    f,
                    "array key of {n} bytes (an array's key is a 4-byte index)"
                )
            }
            MapError::ValueSize(n) => {
                write!(f, "value of {n} bytes (1 to {MAX_VALUE_SIZE})")
            }
            MapError::Entries(n) => write!(f, "{n} entries (1 to {MAX_ENTRIES})"),
            MapError::TooLarge(n) => {
                write!(f, "{n} bytes of keys and values (at most {MAX_MAP_BYTES})")
            }
        }
    }
}

impl MapDef {
    /// Checks the limits.
    pub fn validate(&self) -> Result<(), MapError> {
        if self.key_size == 0 || self.key_size > MAX_KEY_SIZE {
            return Err(MapError::KeySize(self.key_size));
        }
        if self.kind != MapKind::Hash && self.key_size != ARRAY_KEY_SIZE {
            return Err(MapError::ArrayKeySize(self.key_size));
        }
        if self.value_size == 0 || self.value_size > MAX_VALUE_SIZE {
            return Err(MapError::ValueSize(self.value_size));
        }
        if self.max_entries == 0 || self.max_entries > MAX_ENTRIES {
            return Err(MapError::Entries(self.max_entries));
        }
        let bytes = self.data_bytes();
        if bytes > MAX_MAP_BYTES {
            return Err(MapError::TooLarge(bytes));
        }
        Ok(())
    }

    /// The data bytes it holds at most: for a hash map keys and values of
    /// every entry, for an array its values, for a per-core array its
    /// values once per possible core (the manifest's core limit, so a
    /// definition's validity does not depend on the machine).
    pub const fn data_bytes(&self) -> u64 {
        let entries = self.max_entries as u64;
        match self.kind {
            MapKind::Hash => entries * (self.key_size as u64 + self.value_size as u64),
            MapKind::Array => entries * self.value_size as u64,
            MapKind::PerCpuArray => entries * self.value_size as u64 * MAX_CORES as u64,
        }
    }

    /// The wire form: kind (Linux map type), key size, value size, entries,
    /// each a little-endian u32.
    pub fn to_bytes(&self) -> [u8; MAP_DEF_SIZE] {
        let mut b = [0; MAP_DEF_SIZE];
        let words = [
            self.kind as u32,
            self.key_size,
            self.value_size,
            self.max_entries,
        ];
        for (d, w) in b.chunks_exact_mut(4).zip(words) {
            d.copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    /// Decodes and validates the wire form.
    pub fn from_bytes(b: [u8; MAP_DEF_SIZE]) -> Result<Self, MapError> {
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let kind = MapKind::from_u32(word(0)).ok_or(MapError::UnknownKind(word(0)))?;
        let def = MapDef {
            kind,
            key_size: word(4),
            value_size: word(8),
            max_entries: word(12),
        };
        def.validate()?;
        Ok(def)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(kind: MapKind, key: u32, value: u32, entries: u32) -> MapDef {
        MapDef {
            kind,
            key_size: key,
            value_size: value,
            max_entries: entries,
        }
    }

    #[test]
    fn limits() {
        assert_eq!(def(MapKind::Hash, 8, 8, 1024).validate(), Ok(()));
        assert_eq!(
            def(MapKind::Hash, 0, 8, 1).validate(),
            Err(MapError::KeySize(0))
        );
        assert_eq!(
            def(MapKind::Hash, 65, 8, 1).validate(),
            Err(MapError::KeySize(65))
        );
        assert_eq!(
            def(MapKind::Array, 8, 8, 1).validate(),
            Err(MapError::ArrayKeySize(8))
        );
        assert_eq!(
            def(MapKind::Array, 4, 257, 1).validate(),
            Err(MapError::ValueSize(257))
        );
        assert_eq!(
            def(MapKind::Array, 4, 8, 0).validate(),
            Err(MapError::Entries(0))
        );
        assert_eq!(
            def(MapKind::Array, 4, 8, 65537).validate(),
            Err(MapError::Entries(65537))
        );
        assert_eq!(
            def(MapKind::Array, 4, 256, 8192).validate(),
            Err(MapError::TooLarge(2 << 20))
        );
        assert!(def(MapKind::PerCpuArray, 4, 256, 64).validate().is_ok());
        assert!(def(MapKind::PerCpuArray, 4, 256, 65).validate().is_err());
    }

    #[test]
    fn wire_round_trip() {
        let d = def(MapKind::PerCpuArray, 4, 16, 8);
        assert_eq!(MapDef::from_bytes(d.to_bytes()), Ok(d));
        let mut b = d.to_bytes();
        b[0] = 9;
        assert_eq!(MapDef::from_bytes(b), Err(MapError::UnknownKind(9)));
        assert_eq!(neg_errno(ENOENT) as i64, -2);
    }
}
