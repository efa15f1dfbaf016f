//! Map tests: layout and arena checks, array, per-core array and hash semantics (flags, full, delete), the dump, and the hash map against a model under random operations.

#![forbid(unsafe_code)]

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;

const fn def(kind: MapKind, key: u32, value: u32, entries: u32) -> MapDef {
    MapDef {
        kind,
        key_size: key,
        value_size: value,
        max_entries: entries,
    }
}

const ARRAY: MapDef = def(MapKind::Array, 4, 12, 3);
const PERCPU: MapDef = def(MapKind::PerCpuArray, 4, 8, 2);
const HASH: MapDef = def(MapKind::Hash, 2, 4, 5);

fn arena(defs: &[MapDef], cores: u32) -> Vec<u8> {
    vec![0xaa; bytes_needed(defs, cores).unwrap()]
}

#[test]
fn layout_and_arena() {
    // Array: 3 values of stride 16. Per-core: 2 values * 8 * 4 cores.
    // Hash: 8 slots: 8 state bytes, 16 key bytes, 8 * 8 value bytes.
    assert_eq!(bytes_needed(&[ARRAY], 4), Ok(48));
    assert_eq!(bytes_needed(&[PERCPU], 4), Ok(64));
    assert_eq!(bytes_needed(&[HASH], 4), Ok(8 + 16 + 64));
    assert_eq!(bytes_needed(&[ARRAY, PERCPU, HASH], 4), Ok(48 + 64 + 88));
    assert_eq!(bytes_needed(&[ARRAY], 0), Err(MapSetError::Cores(0)));
    let bad = def(MapKind::Hash, 0, 4, 1);
    assert_eq!(
        bytes_needed(&[ARRAY, bad], 1),
        Err(MapSetError::Def {
            index: 1,
            error: MapError::KeySize(0)
        })
    );
    assert_eq!(
        bytes_needed(&[ARRAY; MAX_MAPS + 1], 1),
        Err(MapSetError::TooManyMaps(MAX_MAPS + 1))
    );
    let mut small = [0u8; 47];
    assert_eq!(
        MapSet::new(&[ARRAY], 4, &mut small).err(),
        Some(MapSetError::ArenaTooSmall {
            needed: 48,
            got: 47
        })
    );
}

#[test]
fn array_semantics() {
    let mut mem = arena(&[ARRAY], 1);
    let mut maps = MapSet::new(&[ARRAY], 1, &mut mem).unwrap();
    let k1 = 1u32.to_le_bytes();
    assert_eq!(
        maps.lookup(0, &k1, 0),
        Some(&[0u8; 12][..]),
        "cleared at creation"
    );
    maps.update(0, &k1, &[7; 12], BPF_ANY, 0).unwrap();
    assert_eq!(maps.lookup(0, &k1, 0), Some(&[7u8; 12][..]));
    assert_eq!(
        maps.update(0, &k1, &[1; 12], BPF_NOEXIST, 0),
        Err(MapOpError::Exists)
    );
    maps.update(0, &k1, &[8; 12], BPF_EXIST, 0).unwrap();
    let k3 = 3u32.to_le_bytes();
    assert_eq!(maps.lookup(0, &k3, 0), None);
    assert_eq!(
        maps.update(0, &k3, &[1; 12], BPF_ANY, 0),
        Err(MapOpError::Full)
    );
    assert_eq!(
        maps.update(0, &k1, &[1; 12], 7, 0),
        Err(MapOpError::Invalid)
    );
    assert_eq!(
        maps.update(0, &k1, &[1; 11], BPF_ANY, 0),
        Err(MapOpError::Invalid)
    );
    assert_eq!(maps.delete(0, &k1), Err(MapOpError::Invalid));
    assert_eq!(
        maps.update(1, &k1, &[1; 12], BPF_ANY, 0),
        Err(MapOpError::Invalid)
    );
    assert_eq!(MapOpError::Invalid.errno(), 22);
    let dumped: Vec<(Vec<u8>, Vec<u8>)> = maps
        .dump(0)
        .unwrap()
        .map(|e| (e.key().to_vec(), e.value.to_vec()))
        .collect();
    assert_eq!(dumped.len(), 3);
    assert_eq!(dumped[1], (k1.to_vec(), vec![8; 12]));
}

#[test]
fn per_core_copies() {
    let mut mem = arena(&[PERCPU], 3);
    let mut maps = MapSet::new(&[PERCPU], 3, &mut mem).unwrap();
    let k0 = 0u32.to_le_bytes();
    maps.update(0, &k0, &5u64.to_le_bytes(), BPF_ANY, 2)
        .unwrap();
    assert_eq!(maps.lookup(0, &k0, 2), Some(&5u64.to_le_bytes()[..]));
    assert_eq!(maps.lookup(0, &k0, 0), Some(&[0u8; 8][..]));
    assert_eq!(maps.lookup(0, &k0, 3), None, "no such core");
    assert_eq!(
        maps.update(0, &k0, &[0; 8], BPF_ANY, 3),
        Err(MapOpError::Invalid)
    );
    let cpus: Vec<(Option<u32>, u8)> = maps.dump(0).unwrap().map(|e| (e.cpu, e.value[0])).collect();
    assert_eq!(
        cpus,
        [
            (Some(0), 0),
            (Some(1), 0),
            (Some(2), 5),
            (Some(0), 0),
            (Some(1), 0),
            (Some(2), 0)
        ]
    );
}

#[test]
fn hash_semantics() {
    let mut mem = arena(&[HASH], 1);
    let mut maps = MapSet::new(&[HASH], 1, &mut mem).unwrap();
    assert_eq!(maps.lookup(0, b"ab", 0), None);
    assert_eq!(
        maps.update(0, b"ab", b"1234", BPF_EXIST, 0),
        Err(MapOpError::NoEntry)
    );
    maps.update(0, b"ab", b"1234", BPF_NOEXIST, 0).unwrap();
    assert_eq!(
        maps.update(0, b"ab", b"5678", BPF_NOEXIST, 0),
        Err(MapOpError::Exists)
    );
    maps.update(0, b"ab", b"5678", BPF_ANY, 0).unwrap();
    assert_eq!(maps.lookup(0, b"ab", 0), Some(&b"5678"[..]));
    for k in [b"c0", b"c1", b"c2", b"c3"] {
        maps.update(0, k, b"vvvv", BPF_ANY, 0).unwrap();
    }
    assert_eq!(maps.entries(0), 5);
    assert_eq!(
        maps.update(0, b"zz", b"vvvv", BPF_ANY, 0),
        Err(MapOpError::Full)
    );
    maps.update(0, b"c3", b"wwww", BPF_ANY, 0).unwrap();
    maps.delete(0, b"ab").unwrap();
    assert_eq!(maps.delete(0, b"ab"), Err(MapOpError::NoEntry));
    assert_eq!(maps.lookup(0, b"ab", 0), None);
    maps.update(0, b"zz", b"vvvv", BPF_ANY, 0).unwrap();
    assert_eq!(maps.lookup(0, b"abc", 0), None, "wrong key length");
    let mut keys: Vec<Vec<u8>> = maps.dump(0).unwrap().map(|e| e.key().to_vec()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [b"c0", b"c1", b"c2", b"c3", b"zz"].map(|k| k.to_vec())
    );
}

#[test]
fn maps_do_not_overlap() {
    let defs = [ARRAY, HASH, PERCPU];
    let mut mem = arena(&defs, 2);
    let mut maps = MapSet::new(&defs, 2, &mut mem).unwrap();
    let k = 2u32.to_le_bytes();
    maps.update(0, &k, &[0xff; 12], BPF_ANY, 0).unwrap();
    maps.update(1, b"xy", &[0xee; 4], BPF_ANY, 0).unwrap();
    maps.update(2, &1u32.to_le_bytes(), &[0xdd; 8], BPF_ANY, 1)
        .unwrap();
    assert_eq!(maps.lookup(0, &k, 0), Some(&[0xff; 12][..]));
    assert_eq!(maps.lookup(1, b"xy", 0), Some(&[0xee; 4][..]));
    assert_eq!(maps.lookup(2, &1u32.to_le_bytes(), 1), Some(&[0xdd; 8][..]));
    assert_eq!(maps.dump(0).unwrap().filter(|e| e.value[0] != 0).count(), 1);
}

#[derive(Clone, Debug)]
enum Op {
    Update(u8, u8, u64),
    Delete(u8),
}

proptest! {
    /// The hash map agrees with a model under random updates and deletes
    /// (few distinct keys in a small table, so probe runs collide, wrap
    /// around and shift back).
    #[test]
    fn hash_matches_model(ops in proptest::collection::vec(
        prop_oneof![
            (0u8..24, any::<u8>(), 0u64..4).prop_map(|(k, v, f)| Op::Update(k, v, f)),
            (0u8..24).prop_map(Op::Delete),
        ],
        0..200,
    )) {
        let d = def(MapKind::Hash, 1, 1, 12);
        let mut mem = arena(&[d], 1);
        let mut maps = MapSet::new(&[d], 1, &mut mem).unwrap();
        let mut model: BTreeMap<u8, u8> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Update(k, v, flags) => {
                    let exists = model.contains_key(&k);
                    let expect = match flags {
                        BPF_NOEXIST if exists => Err(MapOpError::Exists),
                        BPF_EXIST if !exists => Err(MapOpError::NoEntry),
                        BPF_ANY | BPF_NOEXIST | BPF_EXIST
                            if !exists && model.len() >= 12 => Err(MapOpError::Full),
                        BPF_ANY | BPF_NOEXIST | BPF_EXIST => Ok(()),
                        _ => Err(MapOpError::Invalid),
                    };
                    prop_assert_eq!(maps.update(0, &[k], &[v], flags, 0), expect);
                    if expect.is_ok() {
                        model.insert(k, v);
                    }
                }
                Op::Delete(k) => {
                    let expect = if model.remove(&k).is_some() { Ok(()) } else { Err(MapOpError::NoEntry) };
                    prop_assert_eq!(maps.delete(0, &[k]), expect);
                }
            }
            for k in 0u8..24 {
                prop_assert_eq!(maps.lookup(0, &[k], 0), model.get(&k).map(core::slice::from_ref));
            }
            prop_assert_eq!(maps.entries(0), model.len());
        }
    }
}
