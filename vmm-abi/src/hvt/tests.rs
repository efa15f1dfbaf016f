//! hvt ABI tests: manifests and notes checked as Solo5's tender checks them, every bad case named, arbitrary bytes never panic.

extern crate std;

use super::*;
use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

fn entry(name: &str, kind: u32) -> Vec<u8> {
    let mut e = vec![0u8; MFT_ENTRY_SIZE];
    e[..name.len()].copy_from_slice(name.as_bytes());
    e[MFT_TYPE..MFT_TYPE + 4].copy_from_slice(&kind.to_le_bytes());
    e
}

fn mft(devices: &[(&str, u32)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&MFT_VERSION.to_le_bytes());
    b.extend_from_slice(&(devices.len() as u32 + 1).to_le_bytes());
    b.extend(entry("", MFT_RESERVED_FIRST));
    for (n, k) in devices {
        b.extend(entry(n, *k));
    }
    b
}

fn note(kind: u32, desc: &[u8], pad: usize) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&6u32.to_le_bytes());
    b.extend_from_slice(&((desc.len() + pad) as u32).to_le_bytes());
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(b"Solo5\0\0\0");
    b.extend(vec![0u8; pad]);
    b.extend_from_slice(desc);
    b
}

#[test]
fn a_manifest_lists_its_devices() {
    let b = mft(&[
        ("service0", MFT_DEV_NET_BASIC),
        ("storage", MFT_DEV_BLOCK_BASIC),
    ]);
    let m = Mft::parse(&b).unwrap();
    assert_eq!(m.entries(), 3);
    let d: Vec<_> = m.devices().collect();
    assert_eq!(
        d[0],
        MftDevice {
            index: 1,
            name: "service0",
            kind: MFT_DEV_NET_BASIC
        }
    );
    assert_eq!(
        d[1],
        MftDevice {
            index: 2,
            name: "storage",
            kind: MFT_DEV_BLOCK_BASIC
        }
    );
    assert_eq!(Mft::parse(&mft(&[])).unwrap().devices().count(), 0);
}

#[test]
fn bad_manifests_are_named() {
    let good = mft(&[("a", MFT_DEV_NET_BASIC)]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (good[..6].to_vec(), "shorter than its header"),
        (
            {
                let mut b = good.clone();
                b[0] = 2;
                b
            },
            "version is not 1",
        ),
        (
            {
                let mut b = good.clone();
                b[4] = 0;
                b
            },
            "entry count outside 1..=64",
        ),
        (
            {
                let mut b = good.clone();
                b[4] = 65;
                b
            },
            "entry count outside 1..=64",
        ),
        (
            {
                let mut b = good.clone();
                b.push(0);
                b
            },
            "size does not match",
        ),
        (
            {
                let mut b = good.clone();
                b[MFT_HEADER] = b'x';
                b
            },
            "not the reserved one",
        ),
        (
            {
                let mut b = good.clone();
                b[MFT_HEADER + MFT_TYPE] = 1;
                b
            },
            "not the reserved one",
        ),
        (
            {
                let mut b = good.clone();
                b[MFT_HEADER + MFT_ENTRY_SIZE + MFT_NAME_SIZE - 1] = b'z';
                b
            },
            "not terminated",
        ),
        (
            {
                let mut b = good.clone();
                b[MFT_HEADER + MFT_ENTRY_SIZE + MFT_ATTACHED] = 1;
                b
            },
            "already attached",
        ),
        (
            {
                let mut b = good.clone();
                b[MFT_HEADER + MFT_ENTRY_SIZE + MFT_TYPE] = 9;
                b
            },
            "unknown device type",
        ),
        (
            {
                let mut b = good.clone();
                b[MFT_HEADER + MFT_ENTRY_SIZE] = 0;
                b
            },
            "empty or not UTF-8",
        ),
    ];
    for (b, want) in cases {
        match Mft::parse(&b) {
            Err(NoteError::Manifest(why)) => {
                assert!(why.text().contains(want), "{why:?} vs {want}")
            }
            other => panic!("{want}: {other:?}"),
        }
    }
}

#[test]
fn notes_are_found_by_owner_and_type_and_checked() {
    let abi = note(
        NOTE_ABI1,
        &[1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        0,
    );
    let d = note_in(&abi, NOTE_ABI1, 0).unwrap().unwrap();
    assert_eq!(check_abi(d), Ok(()));
    assert_eq!(note_in(&abi, NOTE_MFT1, 0), Ok(None));
    let m = mft(&[]);
    let n = note(NOTE_MFT1, &m, MFT1_PAD);
    assert_eq!(note_in(&n, NOTE_MFT1, 3).unwrap().unwrap(), &m[..]);
    // Another owner: not ours.
    let mut other = abi.clone();
    other[12] = b'X';
    assert_eq!(note_in(&other, NOTE_ABI1, 0), Ok(None));
    // A descriptor longer than its segment.
    let mut long = abi.clone();
    long[4] = 200;
    assert_eq!(
        note_in(&long, NOTE_ABI1, 2),
        Err(NoteError::NoteSize { phdr: 2 })
    );
    // An MFT1 descriptor that is all padding (Solo5's buggyelf case).
    let mut tiny = n.clone();
    tiny[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert_eq!(
        note_in(&tiny, NOTE_MFT1, 1),
        Err(NoteError::NoteSize { phdr: 1 })
    );
    assert_eq!(
        check_abi(&[2, 0, 0, 0, 2, 0, 0, 0]),
        Err(NoteError::Target { found: 2 })
    );
    assert_eq!(
        check_abi(&[1, 0, 0, 0, 9, 0, 0, 0]),
        Err(NoteError::Version { found: 9 })
    );
    assert_eq!(
        check_abi(&[1, 0, 0, 0, 0, 0, 0, 0]),
        Err(NoteError::Version { found: 0 })
    );
    assert_eq!(
        check_abi(&[1, 0, 0, 0, 3, 0, 0, 0]),
        Err(NoteError::Version { found: 3 })
    );
    // Solo5 up to 0.7 states version 1: the same calls, a shorter boot info.
    assert_eq!(check_abi(&[1, 0, 0, 0, 1, 0, 0, 0]), Ok(()));
    assert_eq!(check_abi(&[1, 0, 0, 0, 2, 0, 0, 0]), Ok(()));
    assert_eq!(
        std::format!("{}", NoteError::Target { found: 2 }),
        "Executable is not for the solo5-hvt target (ABI target 2)"
    );
    assert_eq!(
        std::format!("{}", NoteError::Version { found: 9 }),
        "Executable requests unsupported ABI version 9"
    );
}

#[test]
fn ports_and_boot_info() {
    assert_eq!(Hypercall::from_port(0x502), Some(Hypercall::Puts));
    assert_eq!(Hypercall::from_port(0x508), Some(Hypercall::Halt));
    for p in [0x500, 0x509, 0x4ff, 0, 0xffff] {
        assert_eq!(Hypercall::from_port(p), None, "{p:#x}");
    }
    let bi = BootInfo {
        mem_size: 4 << 20,
        kernel_end: 0x10_8000,
        cpu_cycle_freq: 100_000_000,
        cmdline: 0x1_00a8,
        mft: 0x1_0038,
        host_features: 0,
        net_ring: 0,
    };
    let b = bi.to_bytes();
    assert_eq!(&b[40..], &[0u8; 16], "no host features, no ring");
    assert_eq!(BootInfo::from_bytes(&b), bi);
    let ring = BootInfo {
        host_features: FEATURE_RING_IO,
        net_ring: 0x3F_3000,
        ..bi
    };
    let b = ring.to_bytes();
    assert_eq!(&b[40..44], &1u32.to_le_bytes());
    assert_eq!(&b[44..48], &[0u8; 4], "guest_features is the guest's");
    assert_eq!(&b[48..], &0x3F_3000u64.to_le_bytes());
    assert_eq!(BootInfo::from_bytes(&b), ring);
}

proptest! {
    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), kind in any::<u32>()) {
        let _ = Mft::parse(&bytes);
        let _ = note_in(&bytes, kind, 0);
        let _ = check_abi(&bytes);
        if let Ok(m) = Mft::parse(&bytes) {
            let _ = m.devices().count();
        }
    }
}
