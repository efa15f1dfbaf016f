//! Iterating a map's entries for the report: `(key bytes, value bytes)`, with the core for per-core arrays.

#![forbid(unsafe_code)]

use super::hash::FULL;
use vmm_abi::hook::map::{MAX_KEY_SIZE, MapDef, MapKind};

/// One entry of a map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'m> {
    key: [u8; MAX_KEY_SIZE as usize],
    key_len: usize,
    /// The core whose copy this is (per-core arrays only).
    pub cpu: Option<u32>,
    /// The value's bytes.
    pub value: &'m [u8],
}

impl Entry<'_> {
    /// The key's bytes (an array's index as a little-endian u32).
    pub fn key(&self) -> &[u8] {
        self.key.get(..self.key_len).unwrap_or(&[])
    }
}

/// The entries of one map, in slot order (per-core arrays: every core's
/// copy of index 0, then of index 1, ...).
pub struct Dump<'m> {
    def: MapDef,
    slots: usize,
    stride: usize,
    state: &'m [u8],
    keys: &'m [u8],
    values: &'m [u8],
    /// Next position: slot (times copies for per-core arrays).
    pos: usize,
}

impl<'m> Dump<'m> {
    pub(super) fn new(
        def: MapDef,
        slots: usize,
        stride: usize,
        state: &'m [u8],
        keys: &'m [u8],
        values: &'m [u8],
    ) -> Self {
        Dump {
            def,
            slots,
            stride,
            state,
            keys,
            values,
            pos: 0,
        }
    }

    fn copies(&self) -> usize {
        match self.def.kind {
            MapKind::PerCpuArray => self.values.len() / (self.slots * self.stride).max(1),
            _ => 1,
        }
    }

    fn value(&self, slot: usize, copy: usize) -> Option<&'m [u8]> {
        let at = (copy * self.slots + slot) * self.stride;
        self.values.get(at..at + self.def.value_size as usize)
    }
}

impl<'m> Iterator for Dump<'m> {
    type Item = Entry<'m>;

    fn next(&mut self) -> Option<Entry<'m>> {
        let copies = self.copies();
        while self.pos < self.slots * copies {
            let (slot, copy) = (self.pos / copies, self.pos % copies);
            self.pos += 1;
            let mut key = [0; MAX_KEY_SIZE as usize];
            let key_len = self.def.key_size as usize;
            let cpu = match self.def.kind {
                MapKind::Hash => {
                    if self.state.get(slot) != Some(&FULL) {
                        continue;
                    }
                    let k = self.keys.get(slot * key_len..(slot + 1) * key_len)?;
                    key.get_mut(..key_len)?.copy_from_slice(k);
                    None
                }
                MapKind::Array => {
                    key[..4].copy_from_slice(&(slot as u32).to_le_bytes());
                    None
                }
                MapKind::PerCpuArray => {
                    key[..4].copy_from_slice(&(slot as u32).to_le_bytes());
                    Some(copy as u32)
                }
            };
            return Some(Entry {
                key,
                key_len,
                cpu,
                value: self.value(slot, copy)?,
            });
        }
        None
    }
}
