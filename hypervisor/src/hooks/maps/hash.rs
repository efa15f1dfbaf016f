//! The hash map: open addressing with linear probing over a power-of-two number of slots (at least a third more than `max_entries`, so a probe always meets an empty slot), FNV-1a hashing, and deletion by backward shift (no tombstones, so probe lengths do not grow with churn).
//!
//! A value keeps its slot while it lives; a deletion may move a later
//! entry of the same probe run into the freed slot, so a pointer a
//! program still holds to a deleted value may then see another entry's
//! value (never memory outside the map's values).

#![forbid(unsafe_code)]

use super::{Map, MapOpError};
use vmm_abi::hook::map::{BPF_EXIST, BPF_NOEXIST};

/// Slot state: free.
pub(super) const EMPTY: u8 = 0;
/// Slot state: holds an entry.
pub(super) const FULL: u8 = 1;

/// Slots for `entries` entries: a power of two above `entries * 4 / 3`.
pub(super) fn capacity(entries: usize) -> usize {
    (entries + entries / 3 + 1).next_power_of_two()
}

/// 64-bit FNV-1a.
fn fnv1a(key: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    key.iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

fn home(m: &Map<'_>, key: &[u8]) -> usize {
    (fnv1a(key) as usize) & (m.layout.slots.saturating_sub(1))
}

fn key_of<'m>(m: &'m Map<'_>, slot: usize) -> &'m [u8] {
    let k = m.def.key_size as usize;
    m.keys.get(slot * k..slot * k + k).unwrap_or(&[])
}

/// Where `key` is: `Ok(slot)` if present, else `Err(first empty slot of
/// its probe run)` (`None` only if the table has no empty slot, which the
/// capacity rules out).
fn probe(m: &Map<'_>, key: &[u8]) -> Result<usize, Option<usize>> {
    let mask = m.layout.slots.saturating_sub(1);
    let mut i = home(m, key);
    for _ in 0..m.layout.slots {
        match m.state.get(i) {
            Some(&FULL) if key_of(m, i) == key => return Ok(i),
            Some(&FULL) => {}
            _ => return Err(Some(i)),
        }
        i = (i + 1) & mask;
    }
    Err(None)
}

/// The slot of `key`, if present.
pub(super) fn find(m: &Map<'_>, key: &[u8]) -> Option<usize> {
    probe(m, key).ok()
}

/// The slot `key`'s value goes to, claiming a free one if `key` is new.
pub(super) fn insert(m: &mut Map<'_>, key: &[u8], flags: u64) -> Result<usize, MapOpError> {
    match probe(m, key) {
        Ok(_) if flags == BPF_NOEXIST => Err(MapOpError::Exists),
        Ok(slot) => Ok(slot),
        Err(_) if flags == BPF_EXIST => Err(MapOpError::NoEntry),
        Err(_) if m.live >= m.def.max_entries as usize => Err(MapOpError::Full),
        Err(None) => Err(MapOpError::Full),
        Err(Some(slot)) => {
            let k = m.def.key_size as usize;
            let dst = m
                .keys
                .get_mut(slot * k..slot * k + k)
                .ok_or(MapOpError::Invalid)?;
            dst.copy_from_slice(key);
            if let Some(s) = m.state.get_mut(slot) {
                *s = FULL;
            }
            m.live += 1;
            Ok(slot)
        }
    }
}

/// Empties `slot` and shifts later entries of its probe run back so every
/// entry stays reachable from its home slot (Knuth's algorithm R).
pub(super) fn remove(m: &mut Map<'_>, slot: usize) {
    let mask = m.layout.slots.saturating_sub(1);
    let (k, stride) = (m.def.key_size as usize, m.layout.stride);
    let mut hole = slot;
    if let Some(s) = m.state.get_mut(hole) {
        *s = EMPTY;
    }
    m.live = m.live.saturating_sub(1);
    let mut j = hole;
    for _ in 0..m.layout.slots {
        j = (j + 1) & mask;
        if m.state.get(j) != Some(&FULL) {
            break;
        }
        let h = home(m, key_of(m, j));
        // The entry at j stays if its home lies cyclically in (hole, j].
        let stays = if hole <= j {
            hole < h && h <= j
        } else {
            hole < h || h <= j
        };
        if stays {
            continue;
        }
        move_back(m.keys, j * k, hole * k, k);
        move_back(m.values, j * stride, hole * stride, stride);
        if let Some(s) = m.state.get_mut(hole) {
            *s = FULL;
        }
        if let Some(s) = m.state.get_mut(j) {
            *s = EMPTY;
        }
        hole = j;
    }
    // A freed value reads as zero if it is claimed again.
    if let Some(v) = m.values.get_mut(hole * stride..hole * stride + stride) {
        v.fill(0);
    }
}

/// Copies `len` bytes at `from` to `to` inside `buf` if both fit.
fn move_back(buf: &mut [u8], from: usize, to: usize, len: usize) {
    if from.max(to).saturating_add(len) <= buf.len() {
        buf.copy_within(from..from + len, to);
    }
}
