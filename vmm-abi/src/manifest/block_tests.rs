//! Tests of block device records (section kind 9): encode and parse agree, every field's rule is enforced with its name, and no bytes in a record make the parser panic.

extern crate std;

use super::*;
use proptest::prelude::*;
use std::string::ToString;
use std::vec;
use std::vec::Vec;

fn vm(name: &'static str) -> VmSpec<'static> {
    VmSpec {
        name,
        image: "hvt_blk",
        args: "",
        memory: 0x40_0000,
        budget: 0,
        cores: 0,
        restart: Restart::Never,
        restart_limit: 0,
        net_ports: 0,
        console: false,
        control: false,
        entry: name,
    }
}

fn disk(name: &'static str, vm: u32, device: &'static str) -> BlockSpec<'static> {
    BlockSpec {
        name,
        vm,
        device,
        block_size: 512,
        capacity: 64 * 1024,
        persist: false,
    }
}

fn encode_blocks(blocks: &[BlockSpec<'_>]) -> Result<Vec<u8>, ManifestError> {
    let vms = [vm("a"), vm("b")];
    let mut out = vec![0; encoded_len_full(vms.len(), 0, 0, &[], blocks.len(), 0)];
    encode_full(0, &vms, &[], &[], &[], blocks, &[], &mut out)?;
    Ok(out)
}

#[test]
fn block_records_round_trip() {
    let blocks = [
        disk("disk0", 0, "storage"),
        BlockSpec {
            block_size: 4096,
            capacity: 1 << 20,
            persist: true,
            ..disk("disk1", 1, "storage")
        },
        disk("logs", 0, "logs"),
    ];
    let bytes = encode_blocks(&blocks).unwrap();
    let m = Manifest::parse(&bytes).unwrap();
    assert_eq!(m.blocks().collect::<Vec<_>>(), blocks);
    // Without block devices there is no block section.
    let none = encode_blocks(&[]).unwrap();
    assert_eq!(Manifest::parse(&none).unwrap().blocks().count(), 0);
    assert_eq!(
        none.len() + SECTION_ENTRY_SIZE + 3 * BLOCK_RECORD_SIZE,
        bytes.len()
    );
}

#[test]
fn every_block_rule_is_named() {
    let cases: [(BlockSpec<'static>, &str); 9] = [
        (
            disk("", 0, "storage"),
            "manifest block 0: field `name`: must be non-empty",
        ),
        (
            disk("hv", 0, "storage"),
            "manifest block 0: field `name`: must be non-empty",
        ),
        (
            disk("disk0", 2, "storage"),
            "manifest block 0: field `vm`: no VM 2: the manifest has 2 VMs",
        ),
        (
            disk("disk0", 0, ""),
            "manifest block 0: field `device`: not a Solo5 device name",
        ),
        (
            disk("disk0", 0, "sto-rage"),
            "manifest block 0: field `device`: not a Solo5 device name",
        ),
        (
            BlockSpec {
                block_size: 256,
                ..disk("disk0", 0, "storage")
            },
            "manifest block 0: field `block_size`: 256 is not a power of two from 512 to 32768",
        ),
        (
            BlockSpec {
                block_size: 65536,
                ..disk("disk0", 0, "storage")
            },
            "manifest block 0: field `block_size`: 65536 is not a power of two from 512 to 32768",
        ),
        (
            BlockSpec {
                capacity: 100,
                ..disk("disk0", 0, "storage")
            },
            "manifest block 0: field `capacity`: 100 is outside 512..=1073741824",
        ),
        (
            BlockSpec {
                capacity: 1536 + 100,
                ..disk("disk0", 0, "storage")
            },
            "manifest block 0: field `capacity`: 1636 is not a multiple of 512",
        ),
    ];
    for (spec, text) in cases {
        let e = encode_blocks(&[spec]).unwrap_err();
        assert!(e.to_string().starts_with(text), "{e}\nwanted: {text}");
        assert_eq!(e.place(), Place::Block(0));
    }
    let e = encode_blocks(&[disk("disk0", 0, "storage"), disk("disk0", 1, "storage")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "manifest block 1: field `name`: same name as block 0"
    );
    let e = encode_blocks(&[disk("disk0", 0, "storage"), disk("disk1", 0, "storage")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "manifest block 1: field `device`: the VM already binds this device to block 0"
    );
    let too_many: Vec<_> = (0..=MAX_BLOCKS).map(|_| disk("d", 0, "s")).collect();
    let e = encode_blocks(&too_many).unwrap_err();
    assert_eq!(e.field, Field::BlockCount);
}

/// Where the first block record starts in an encoding of one.
fn record_at(bytes: &[u8]) -> usize {
    bytes.len() - BLOCK_RECORD_SIZE
}

#[test]
fn reserved_bytes_and_unknown_flags_are_refused() {
    let good = encode_blocks(&[disk("disk0", 0, "storage")]).unwrap();
    let at = record_at(&good);
    for (off, field) in [
        (50, Field::BlockReserved),
        (140, Field::BlockReserved),
        (48, Field::BlockFlags),
    ] {
        let mut b = good.clone();
        b[at + off] = 2;
        let e = Manifest::parse(&b).unwrap_err();
        assert_eq!((e.field, e.place()), (field, Place::Block(0)), "{e}");
    }
}

proptest! {
    /// Any bytes in a block record: the parse never panics, and what it
    /// accepts is a valid block device.
    #[test]
    fn any_block_record_parses_or_is_refused_by_name(
        edits in proptest::collection::vec((0usize..BLOCK_RECORD_SIZE, any::<u8>()), 1..12),
    ) {
        let mut b = encode_blocks(&[disk("disk0", 0, "storage")]).unwrap();
        let at = record_at(&b);
        for (off, v) in edits {
            b[at + off] = v;
        }
        match Manifest::parse(&b) {
            Ok(m) => {
                let specs: Vec<_> = m.blocks().collect();
                prop_assert_eq!(specs.len(), 1);
                prop_assert!(specs[0].validate(0, 2).is_ok());
            }
            Err(e) => prop_assert_eq!(e.place(), Place::Block(0), "{}", e),
        }
    }
}
