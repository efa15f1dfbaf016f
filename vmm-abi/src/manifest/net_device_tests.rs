//! Tests of net device name records (section kind 10): encode and parse agree, every rule is enforced with its record and field named, and no bytes in the records make the parser panic.

extern crate std;

use super::*;
use proptest::prelude::*;
use std::string::ToString;
use std::vec;
use std::vec::Vec;

fn vm(name: &'static str, net_ports: u8) -> VmSpec<'static> {
    VmSpec {
        name,
        image: "hvt_forward",
        args: "",
        memory: 0x80_0000,
        budget: 0,
        cores: 0,
        restart: Restart::Never,
        restart_limit: 0,
        net_ports,
        console: false,
        control: false,
        entry: name,
    }
}

/// VM 0 `a` has two net ports, VM 1 `b` four.
fn vms() -> [VmSpec<'static>; 2] {
    [vm("a", 2), vm("b", 4)]
}

fn net(vm: u32, port: u8, device: &str) -> NetDeviceSpec<'_> {
    NetDeviceSpec { vm, port, device }
}

/// A disk on VM 0 named `storage` in its Solo5 manifest.
fn storage() -> BlockSpec<'static> {
    BlockSpec {
        name: "disk0",
        vm: 0,
        device: "storage",
        block_size: 512,
        capacity: 64 * 1024,
        persist: false,
    }
}

fn encode_with(
    blocks: &[BlockSpec<'_>],
    nets: &[NetDeviceSpec<'_>],
) -> Result<Vec<u8>, ManifestError> {
    let vms = vms();
    let len = encoded_len_full(vms.len(), 0, 0, &[], blocks.len(), nets.len());
    let mut out = vec![0; len];
    encode_full(0, &vms, &[], &[], &[], blocks, nets, &mut out)?;
    Ok(out)
}

fn encode_nets(nets: &[NetDeviceSpec<'_>]) -> Result<Vec<u8>, ManifestError> {
    encode_with(&[storage()], nets)
}

#[test]
fn net_device_records_round_trip() {
    let nets = [
        net(0, 0, "service0"),
        net(0, 1, "service1"),
        net(1, 3, "service0"),
        net(1, 0, "uplink"),
    ];
    let bytes = encode_nets(&nets).unwrap();
    let m = Manifest::parse(&bytes).unwrap();
    assert_eq!(m.net_devices().collect::<Vec<_>>(), nets);
    assert_eq!(m.blocks().collect::<Vec<_>>(), [storage()]);
    // Without net devices there is no net device section.
    let none = encode_nets(&[]).unwrap();
    assert_eq!(Manifest::parse(&none).unwrap().net_devices().count(), 0);
    assert_eq!(
        none.len() + SECTION_ENTRY_SIZE + nets.len() * NET_DEVICE_RECORD_SIZE,
        bytes.len()
    );
    // The longest name Solo5 allows fits.
    let long = "n".repeat(DEVICE_NAME_MAX);
    let bytes = encode_nets(&[net(1, 2, &long)]).unwrap();
    let m = Manifest::parse(&bytes).unwrap();
    assert_eq!(m.net_devices().next().map(|d| d.device), Some(&long[..]));
}

#[test]
fn every_net_device_rule_is_named() {
    let too_long = "n".repeat(DEVICE_NAME_MAX + 1);
    let cases: [(Vec<NetDeviceSpec<'_>>, &str); 11] = [
        (
            vec![net(2, 0, "service0")],
            "manifest net device 0: field `vm`: no VM 2: the manifest has 2 VMs",
        ),
        (
            vec![net(0, 2, "service0")],
            "manifest net device 0: field `port`: that VM has 2 net ports",
        ),
        (
            vec![net(0, 0, "")],
            "manifest net device 0: field `device`: not a Solo5 device name",
        ),
        (
            vec![net(0, 0, "service-0")],
            "manifest net device 0: field `device`: not a Solo5 device name",
        ),
        (
            vec![net(0, 0, &too_long)],
            "manifest net device 0: field `device`: not a Solo5 device name",
        ),
        (
            vec![net(0, 0, "service0"), net(0, 1, "service0")],
            "manifest net device 1: field `device`: the VM already binds this device to net device 0",
        ),
        (
            vec![net(1, 1, "a"), net(0, 0, "b"), net(1, 1, "c")],
            "manifest net device 2: field `port`: net device 0 already names this port of the VM; a port has one device name",
        ),
        (
            vec![net(0, 0, "storage")],
            "manifest net device 0: field `device`: the VM binds this device name to block 0 already; a name is one device",
        ),
        (
            vec![
                net(1, 0, "s0"),
                net(1, 1, "s1"),
                net(0, 0, "s0"),
                net(1, 2, "s2"),
                net(1, 3, "s3"),
                net(1, 0, "s4"),
            ],
            "manifest net device 5: field `vm`: the VM has 4 net devices already, the most one VM may have",
        ),
        (
            vec![net(0, 1, "ok"), net(0, 0, "")],
            "manifest net device 1: field `device`: not a Solo5 device name",
        ),
        (
            vec![net(1, 4, "service0")],
            "manifest net device 0: field `port`: that VM has 4 net ports",
        ),
    ];
    for (nets, text) in &cases {
        let e = encode_nets(nets).unwrap_err();
        assert!(e.to_string().starts_with(text), "{e}\nwanted: {text}");
        assert!(matches!(e.place(), Place::NetDevice(_)), "{e}");
    }
    // The same names and ports on different VMs, and a block name on
    // another VM, are fine.
    let bytes = encode_with(
        &[BlockSpec { vm: 1, ..storage() }],
        &[net(0, 0, "storage"), net(1, 0, "service0"), net(0, 1, "s")],
    )
    .unwrap();
    assert_eq!(Manifest::parse(&bytes).unwrap().net_devices().count(), 3);
    let too_many: Vec<_> = (0..=MAX_NET_DEVICES).map(|_| net(0, 0, "s")).collect();
    let e = encode_nets(&too_many).unwrap_err();
    assert_eq!((e.field, e.place()), (Field::NetDeviceCount, Place::Header));
    assert_eq!(
        e.to_string(),
        "manifest header: field `net_device_count`: 257 is outside 0..=256"
    );
    assert_eq!(net(0, 0, "s").validate(0, &vms()), Ok(()));
    assert_eq!(
        net(0, 2, "s").validate(3, &vms()).unwrap_err().to_string(),
        "manifest net device 3: field `port`: that VM has 2 net ports"
    );
}

/// Where net device record `i` starts in an encoding of `count` of them
/// (the net device section is the last).
fn record_at(bytes: &[u8], count: usize, i: usize) -> usize {
    bytes.len() - (count - i) * NET_DEVICE_RECORD_SIZE
}

#[test]
fn reserved_bytes_and_bad_padding_are_refused() {
    let good = encode_nets(&[net(0, 1, "service0")]).unwrap();
    let at = record_at(&good, 1, 0);
    let name = "service0".len();
    for (off, value, field) in [
        (5, 1, Field::NetDeviceReserved),
        (7, 0x80, Field::NetDeviceReserved),
        (76, 1, Field::NetDeviceReserved),
        (79, 1, Field::NetDeviceReserved),
        // Garbage after the name's terminator.
        (8 + name + 1, b'x', Field::NetDeviceName),
        // Not UTF-8, not a name.
        (8, 0xff, Field::NetDeviceName),
        (4, 2, Field::NetDevicePort),
        (0, 7, Field::NetDeviceVm),
    ] {
        let mut b = good.clone();
        b[at + off] = value;
        let e = Manifest::parse(&b).unwrap_err();
        assert_eq!((e.field, e.place()), (field, Place::NetDevice(0)), "{e}");
    }
    // A name that fills the field, with no terminator: one too long.
    let mut b = good.clone();
    b[at + 8..at + 8 + crate::hvt::MFT_NAME_SIZE].fill(b'n');
    let e = Manifest::parse(&b).unwrap_err();
    assert_eq!(e.problem, Problem::DeviceName);
    // A name one byte longer than it was is still a name.
    let mut b = good.clone();
    b[at + 8 + name] = b'1';
    let m = Manifest::parse(&b).unwrap();
    assert_eq!(m.net_devices().next().map(|d| d.device), Some("service01"));
}

#[test]
fn a_record_size_or_count_that_is_not_the_kinds_is_refused() {
    let good = encode_nets(&[net(0, 1, "service0")]).unwrap();
    // The net device section's entry is the table's third (VMs, blocks).
    let entry = section::table_end(2);
    let mut b = good.clone();
    le::put_u32(&mut b, entry + 12, NET_DEVICE_RECORD_SIZE as u32 + 1);
    let e = Manifest::parse(&b).unwrap_err();
    assert_eq!((e.field, e.vm), (Field::SectionRecordSize, Some(2)));
    let mut b = good;
    le::put_u32(&mut b, entry + 8, MAX_NET_DEVICES + 1);
    let e = Manifest::parse(&b).unwrap_err();
    assert_eq!(
        (e.field, e.place()),
        (Field::NetDeviceCount, Place::Section(2))
    );
}

/// A net device record drawn near the values that matter: VMs 0..3, ports
/// 0..5, a few names (one a block device's), mostly zero reserved bytes.
fn arbitrary_net_record() -> impl Strategy<Value = Vec<u8>> {
    let vm = prop_oneof![4 => 0u32..3, 1 => any::<u32>()];
    let port = prop_oneof![4 => 0u8..5, 1 => any::<u8>()];
    let name = prop_oneof![
        Just(b"service0".to_vec()),
        Just(b"service1".to_vec()),
        Just(b"storage".to_vec()),
        Just(std::vec![b'n'; crate::hvt::MFT_NAME_SIZE]),
        proptest::collection::vec(any::<u8>(), 0..=crate::hvt::MFT_NAME_SIZE),
    ];
    let reserved = prop_oneof![8 => Just(None), 1 => Just(Some(5usize)), 1 => Just(Some(78usize))];
    (vm, port, name, reserved).prop_map(|(vm, port, name, reserved)| {
        let mut r = std::vec![0u8; NET_DEVICE_RECORD_SIZE];
        le::put_u32(&mut r, 0, vm);
        r[4] = port;
        r[8..8 + name.len()].copy_from_slice(&name);
        if let Some(at) = reserved {
            r[at] = 1;
        }
        r
    })
}

proptest! {
    /// Any net device records: the parse never panics; what it accepts
    /// keeps every rule, and what it refuses is refused by a record's name.
    #[test]
    fn any_net_device_records_parse_or_are_refused_by_name(
        records in proptest::collection::vec(arbitrary_net_record(), 1..8),
    ) {
        let count = records.len();
        let mut b = encode_nets(&[net(0, 0, "x")]).unwrap();
        // Room for `count` records: the section grows at the end.
        b.resize(b.len() + (count - 1) * NET_DEVICE_RECORD_SIZE, 0);
        le::put_u32(&mut b, section::table_end(2) + 8, count as u32);
        for (i, r) in records.iter().enumerate() {
            let at = record_at(&b, count, i);
            b[at..at + NET_DEVICE_RECORD_SIZE].copy_from_slice(r);
        }
        match Manifest::parse(&b) {
            Ok(m) => {
                let specs: Vec<_> = m.net_devices().collect();
                prop_assert_eq!(specs.len(), count);
                let vms = vms();
                for (i, d) in specs.iter().enumerate() {
                    prop_assert!(d.validate(i as u32, &vms).is_ok());
                    prop_assert!(!(d.vm == storage().vm && d.device == storage().device));
                    let earlier = &specs[..i];
                    prop_assert!(earlier.iter().all(|o| o.vm != d.vm || (o.port != d.port && o.device != d.device)));
                    prop_assert!(earlier.iter().filter(|o| o.vm == d.vm).count() < MAX_VM_NET_DEVICES);
                }
            }
            Err(e) => {
                let in_range = matches!(e.place(), Place::NetDevice(i) if (i as usize) < count);
                prop_assert!(in_range, "{}", e);
            }
        }
    }

    /// Any edits to one good record: never a panic, and a refusal names it.
    #[test]
    fn editing_a_net_device_record_never_panics(
        edits in proptest::collection::vec((0usize..NET_DEVICE_RECORD_SIZE, any::<u8>()), 1..12),
    ) {
        let mut b = encode_nets(&[net(0, 0, "uplink"), net(1, 3, "service0")]).unwrap();
        let at = record_at(&b, 2, 1);
        for (off, v) in edits {
            b[at + off] = v;
        }
        match Manifest::parse(&b) {
            Ok(m) => {
                let specs: Vec<_> = m.net_devices().collect();
                prop_assert_eq!(specs.len(), 2);
                prop_assert!(specs[1].validate(1, &vms()).is_ok());
            }
            Err(e) => prop_assert_eq!(e.place(), Place::NetDevice(1), "{}", e),
        }
    }
}
