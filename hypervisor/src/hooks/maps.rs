//! A hook's maps over one caller-provided byte arena (the hypervisor has no heap): the layout computed from the [`MapDef`]s, array, hash and per-core array operations with Linux's update and delete semantics, and the value windows the interpreter maps into a program's address space.
//!
//! Layout: maps one after another in the arena, each 8-byte aligned. An
//! array map is its values; a per-core array is one copy of the values
//! per core; a hash map is a state byte per slot, then the keys, then the
//! values, with a power-of-two number of slots above `max_entries` (see
//! [`hash`]). Every value occupies a stride of its size rounded up to 8.
//!
//! Concurrency: a `MapSet` is owned by one caller at a time (`&mut`); an
//! atomic add in a program is a read-modify-write of the value. Sharing a
//! map between cores needs the per-core array or a lock around the set in
//! the integration.

#![forbid(unsafe_code)]

mod dump;
mod hash;

#[cfg(test)]
mod tests;

pub use dump::{Dump, Entry};

use core::fmt;
use vmm_abi::hook::MAX_MAPS;
use vmm_abi::hook::map::{
    BPF_ANY, BPF_EXIST, BPF_NOEXIST, E2BIG, EEXIST, EINVAL, ENOENT, MapDef, MapError, MapKind,
};
use vmm_abi::manifest::MAX_CORES;
use vmm_abi::report::{Hex, Record};

/// Why a map set cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapSetError {
    /// More than [`MAX_MAPS`] definitions.
    TooManyMaps(usize),
    /// A definition breaks a limit.
    Def {
        /// Its index.
        index: usize,
        /// What is wrong.
        error: MapError,
    },
    /// No cores, or more than the manifest's limit.
    Cores(u32),
    /// The arena is smaller than [`bytes_needed`].
    ArenaTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
}

impl fmt::Display for MapSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MapSetError::TooManyMaps(n) => write!(f, "{n} maps (at most {MAX_MAPS})"),
            MapSetError::Def { index, error } => write!(f, "map {index}: {error}"),
            MapSetError::Cores(n) => write!(f, "{n} cores (1 to {MAX_CORES})"),
            MapSetError::ArenaTooSmall { needed, got } => {
                write!(f, "map arena of {got} bytes, {needed} needed")
            }
        }
    }
}

/// Why a map operation failed; [`MapOpError::errno`] is what a helper
/// returns (negated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapOpError {
    /// No such key (`ENOENT`).
    NoEntry,
    /// The key exists and `BPF_NOEXIST` was given (`EEXIST`).
    Exists,
    /// An array index out of range, or a full hash map (`E2BIG`).
    Full,
    /// Bad flags, key length, map index or core, or deleting from an
    /// array (`EINVAL`).
    Invalid,
}

impl MapOpError {
    /// The Linux error number.
    pub const fn errno(self) -> u64 {
        match self {
            MapOpError::NoEntry => ENOENT,
            MapOpError::Exists => EEXIST,
            MapOpError::Full => E2BIG,
            MapOpError::Invalid => EINVAL,
        }
    }
}

/// Where one map's pieces lie and how it is shaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    /// Value slots per copy: the entries of an array, the capacity of a hash.
    slots: usize,
    /// Bytes per value slot.
    stride: usize,
    /// Bytes of slot states (hash), 8-aligned.
    state_len: usize,
    /// Bytes of keys (hash), 8-aligned.
    keys_len: usize,
    /// Bytes of values (every copy).
    values_len: usize,
}

fn align8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

impl Layout {
    fn of(def: &MapDef, cores: u32) -> Layout {
        let stride = align8(def.value_size as usize);
        let entries = def.max_entries as usize;
        match def.kind {
            MapKind::Array => Layout {
                slots: entries,
                stride,
                state_len: 0,
                keys_len: 0,
                values_len: entries * stride,
            },
            MapKind::PerCpuArray => Layout {
                slots: entries,
                stride,
                state_len: 0,
                keys_len: 0,
                values_len: entries * stride * cores as usize,
            },
            MapKind::Hash => {
                let slots = hash::capacity(entries);
                Layout {
                    slots,
                    stride,
                    state_len: align8(slots),
                    keys_len: align8(slots * def.key_size as usize),
                    values_len: slots * stride,
                }
            }
        }
    }

    fn total(&self) -> usize {
        self.state_len + self.keys_len + self.values_len
    }
}

fn check(defs: &[MapDef], cores: u32) -> Result<(), MapSetError> {
    if defs.len() > MAX_MAPS {
        return Err(MapSetError::TooManyMaps(defs.len()));
    }
    if cores == 0 || cores > MAX_CORES {
        return Err(MapSetError::Cores(cores));
    }
    for (index, d) in defs.iter().enumerate() {
        d.validate()
            .map_err(|error| MapSetError::Def { index, error })?;
    }
    Ok(())
}

/// Arena bytes a [`MapSet`] of `defs` for `cores` cores needs.
pub fn bytes_needed(defs: &[MapDef], cores: u32) -> Result<usize, MapSetError> {
    check(defs, cores)?;
    Ok(defs.iter().map(|d| Layout::of(d, cores).total()).sum())
}

/// One map: its definition, shape and storage.
struct Map<'a> {
    def: MapDef,
    layout: Layout,
    /// Live entries (hash).
    live: usize,
    /// Slot states (hash): [`hash::EMPTY`] or [`hash::FULL`].
    state: &'a mut [u8],
    keys: &'a mut [u8],
    values: &'a mut [u8],
}

impl Map<'_> {
    /// Byte offset in `values` of `slot`'s value in `cpu`'s copy.
    fn value_at(&self, slot: usize, cpu: u32) -> Option<usize> {
        if slot >= self.layout.slots {
            return None;
        }
        let copy = match self.def.kind {
            MapKind::PerCpuArray => {
                let copies = self.values.len() / (self.layout.slots * self.layout.stride).max(1);
                if cpu as usize >= copies {
                    return None;
                }
                cpu as usize * self.layout.slots * self.layout.stride
            }
            _ => 0,
        };
        Some(copy + slot * self.layout.stride)
    }

    /// The slot of `key`, if present.
    fn find(&self, key: &[u8]) -> Option<usize> {
        if key.len() != self.def.key_size as usize {
            return None;
        }
        match self.def.kind {
            MapKind::Hash => hash::find(self, key),
            MapKind::Array | MapKind::PerCpuArray => {
                let i = u32::from_le_bytes(key.try_into().ok()?) as usize;
                (i < self.layout.slots).then_some(i)
            }
        }
    }

    /// Whether `slot` holds a value a program may address.
    fn occupied(&self, slot: usize) -> bool {
        match self.def.kind {
            MapKind::Hash => self.state.get(slot) == Some(&hash::FULL),
            _ => slot < self.layout.slots,
        }
    }
}

/// The maps of one hook, over one arena.
pub struct MapSet<'a> {
    maps: heapless::Vec<Map<'a>, MAX_MAPS>,
}

impl<'a> MapSet<'a> {
    /// Lays `defs` out over `arena` (at least [`bytes_needed`] bytes; the
    /// rest is left alone) and clears them: arrays zero, hash maps empty.
    pub fn new(defs: &[MapDef], cores: u32, arena: &'a mut [u8]) -> Result<Self, MapSetError> {
        let needed = bytes_needed(defs, cores)?;
        let got = arena.len();
        let Some(mut rest) = arena.get_mut(..needed) else {
            return Err(MapSetError::ArenaTooSmall { needed, got });
        };
        rest.fill(0);
        let mut maps = heapless::Vec::new();
        for def in defs {
            let layout = Layout::of(def, cores);
            let (state, tail) = core::mem::take(&mut rest).split_at_mut(layout.state_len);
            let (keys, tail) = tail.split_at_mut(layout.keys_len);
            let (values, tail) = tail.split_at_mut(layout.values_len);
            rest = tail;
            let map = Map {
                def: *def,
                layout,
                live: 0,
                state,
                keys,
                values,
            };
            if maps.push(map).is_err() {
                return Err(MapSetError::TooManyMaps(defs.len()));
            }
        }
        Ok(MapSet { maps })
    }

    /// Map `map`'s whole value area (tests: the JIT's emulated bus).
    #[cfg(test)]
    pub(crate) fn values_mut(&mut self, map: usize) -> Option<&mut [u8]> {
        self.maps.get_mut(map).map(|m| &mut *m.values)
    }

    /// Number of maps.
    pub fn len(&self) -> usize {
        self.maps.len()
    }

    /// Whether there are no maps.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// Map `map`'s definition.
    pub fn def(&self, map: usize) -> Option<&MapDef> {
        self.maps.get(map).map(|m| &m.def)
    }

    /// Live entries of map `map` (for arrays: their length).
    pub fn entries(&self, map: usize) -> usize {
        self.maps.get(map).map_or(0, |m| match m.def.kind {
            MapKind::Hash => m.live,
            _ => m.layout.slots,
        })
    }

    /// The value of `key` in map `map` (`cpu`'s copy of a per-core array).
    pub fn lookup(&self, map: usize, key: &[u8], cpu: u32) -> Option<&[u8]> {
        let m = self.maps.get(map)?;
        let at = m.value_at(m.find(key)?, cpu)?;
        m.values.get(at..at + m.def.value_size as usize)
    }

    /// The slot of `key` in map `map` if `cpu` has a copy of it, for the
    /// interpreter (which hands the program the slot's window address).
    pub(super) fn slot(&self, map: usize, key: &[u8], cpu: u32) -> Option<usize> {
        let m = self.maps.get(map)?;
        let slot = m.find(key)?;
        m.value_at(slot, cpu).map(|_| slot)
    }

    /// Bytes per value slot of map `map`.
    pub(super) fn stride(&self, map: usize) -> Option<usize> {
        self.maps.get(map).map(|m| m.layout.stride)
    }

    /// `len` bytes at `rel` in map `map`'s value window (`rel / stride` is
    /// the slot, the rest the offset in its value): only inside one
    /// present value of `cpu`'s copy.
    pub(super) fn window(&self, map: usize, rel: usize, len: usize, cpu: u32) -> Option<&[u8]> {
        let m = self.maps.get(map)?;
        let at = Self::window_at(m, rel, len, cpu)?;
        m.values.get(at..at + len)
    }

    /// [`MapSet::window`], writable.
    pub(super) fn window_mut(
        &mut self,
        map: usize,
        rel: usize,
        len: usize,
        cpu: u32,
    ) -> Option<&mut [u8]> {
        let m = self.maps.get_mut(map)?;
        let at = Self::window_at(m, rel, len, cpu)?;
        m.values.get_mut(at..at + len)
    }

    fn window_at(m: &Map<'_>, rel: usize, len: usize, cpu: u32) -> Option<usize> {
        let stride = m.layout.stride;
        let (slot, inner) = (rel.checked_div(stride)?, rel.checked_rem(stride)?);
        if inner + len > m.def.value_size as usize || !m.occupied(slot) {
            return None;
        }
        Some(m.value_at(slot, cpu)? + inner)
    }

    /// Sets `key` to `value` in map `map` (`cpu`'s copy of a per-core
    /// array), as `bpf_map_update_elem` with `flags` (`BPF_ANY`,
    /// `BPF_NOEXIST`, `BPF_EXIST`) does.
    pub fn update(
        &mut self,
        map: usize,
        key: &[u8],
        value: &[u8],
        flags: u64,
        cpu: u32,
    ) -> Result<(), MapOpError> {
        let m = self.maps.get_mut(map).ok_or(MapOpError::Invalid)?;
        if key.len() != m.def.key_size as usize
            || value.len() != m.def.value_size as usize
            || !matches!(flags, BPF_ANY | BPF_NOEXIST | BPF_EXIST)
        {
            return Err(MapOpError::Invalid);
        }
        let slot = match m.def.kind {
            MapKind::Hash => hash::insert(m, key, flags)?,
            MapKind::Array | MapKind::PerCpuArray => {
                let slot = m.find(key).ok_or(MapOpError::Full)?;
                if flags == BPF_NOEXIST {
                    return Err(MapOpError::Exists);
                }
                slot
            }
        };
        let at = m.value_at(slot, cpu).ok_or(MapOpError::Invalid)?;
        let dst = m
            .values
            .get_mut(at..at + value.len())
            .ok_or(MapOpError::Invalid)?;
        dst.copy_from_slice(value);
        Ok(())
    }

    /// Removes `key` from map `map`, as `bpf_map_delete_elem` does (arrays
    /// cannot delete: `EINVAL`).
    pub fn delete(&mut self, map: usize, key: &[u8]) -> Result<(), MapOpError> {
        let m = self.maps.get_mut(map).ok_or(MapOpError::Invalid)?;
        match m.def.kind {
            MapKind::Hash => {
                let slot = m.find(key).ok_or(MapOpError::NoEntry)?;
                hash::remove(m, slot);
                Ok(())
            }
            MapKind::Array | MapKind::PerCpuArray => Err(MapOpError::Invalid),
        }
    }

    /// Every entry of map `map`, for the report: arrays by index (per-core
    /// arrays once per core), hash maps in slot order.
    pub fn dump(&self, map: usize) -> Option<Dump<'_>> {
        let m = self.maps.get(map)?;
        Some(Dump::new(
            m.def,
            m.layout.slots,
            m.layout.stride,
            &m.state[..],
            &m.keys[..],
            &m.values[..],
        ))
    }
}

/// Most `hook-entry` records one map gets in the report (its first
/// entries whose value is not all zero).
pub const MAX_ENTRIES_SHOWN: usize = 32;

/// Gives hook `hook`'s maps to the report: a `hook-map` record per map,
/// each followed by `hook-entry` records for its first
/// [`MAX_ENTRIES_SHOWN`] entries whose value is not all zero (`cores`:
/// the cores its per-core arrays hold a copy for).
pub fn report(hook: u32, maps: &MapSet<'_>, cores: u32, mut record: impl FnMut(&Record<'_>)) {
    for map in 0..maps.len().min(MAX_MAPS) {
        let Some(def) = maps.def(map).copied() else {
            continue;
        };
        let nonzero = || {
            maps.dump(map)
                .into_iter()
                .flatten()
                .filter(|e| e.value.iter().any(|&b| b != 0))
        };
        let count = nonzero().count();
        let shown = count.min(MAX_ENTRIES_SHOWN);
        let entries = match def.kind {
            MapKind::PerCpuArray => maps.entries(map) * cores as usize,
            _ => maps.entries(map),
        };
        record(&Record::HookMap {
            hook,
            map: map as u32,
            kind: def.kind.name(),
            entries: entries as u64,
            nonzero: count as u64,
            shown: shown as u64,
        });
        for e in nonzero().take(shown) {
            record(&Record::HookEntry {
                hook,
                map: map as u32,
                core: e.cpu.unwrap_or(0),
                key: Hex::Bytes(e.key()),
                value: Hex::Bytes(e.value),
            });
        }
    }
}
