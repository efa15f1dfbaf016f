//! Tests of the `devices` table's net bindings (`net:N`): a Solo5 guest's net ports named beside its disks, encoded and read back, and every mistake named with its VM and binding.

use super::*;
use vmm_abi::manifest::{MAX_VM_NET_DEVICES, NetDeviceSpec};

fn images() -> Vec<String> {
    ["hello", "hvt_forward"].map(String::from).to_vec()
}

fn ok(text: &str) -> Manifest {
    parse(text, "m.toml", &images()).unwrap()
}

fn err(text: &str) -> String {
    parse(text, "m.toml", &images()).unwrap_err().to_string()
}

/// An hvt VM `app` with `net` ports and the `devices` table `devices`.
fn app(net: u8, devices: &str) -> String {
    format!(
        "[[vm]]\nname = \"app\"\nimage = \"hvt_forward\"\nmemory = \"8M\"\nnet = {net}\ndevices = {{ {devices} }}\n"
    )
}

#[test]
fn net_and_block_devices_encode_and_read_back() {
    let m = ok(&format!(
        "[[vm]]\nname = \"gen\"\nimage = \"hello\"\nnet = 1\n\
         [[block]]\nname = \"disk0\"\nsize = \"64K\"\n\
         {}\
         [[vm]]\nname = \"gen2\"\nimage = \"hello\"\nnet = 1\n\
         [[link]]\na = \"gen.0\"\nb = \"app.1\"\n\
         [[link]]\na = \"gen2.0\"\nb = \"app.0\"\n",
        app(
            2,
            "service1 = \"net:1\", storage = \"block:disk0\", service0 = \"net:0\""
        )
    ));
    let named = |port: u8, device: &str| NetDeviceConfig {
        vm: 1,
        port,
        device: device.into(),
    };
    // In name order, as the table holds them.
    assert_eq!(
        m.net_devices,
        vec![named(0, "service0"), named(1, "service1")]
    );
    assert_eq!(
        (m.blocks.len(), m.blocks[0].vm, m.blocks[0].device.as_str()),
        (1, 1, "storage")
    );
    let bytes = m.encode().unwrap();
    let parsed = vmm_abi::manifest::Manifest::parse(&bytes).unwrap();
    assert_eq!(
        parsed.net_devices().collect::<Vec<_>>(),
        vec![
            NetDeviceSpec {
                vm: 1,
                port: 0,
                device: "service0"
            },
            NetDeviceSpec {
                vm: 1,
                port: 1,
                device: "service1"
            },
        ]
    );
    assert_eq!(
        parsed.blocks().collect::<Vec<_>>(),
        vec![m.blocks[0].spec()]
    );
    // Without names there is no net device record.
    let plain = ok(&app(2, ""));
    assert!(plain.net_devices.is_empty());
    let bytes = plain.encode().unwrap();
    let parsed = vmm_abi::manifest::Manifest::parse(&bytes).unwrap();
    assert_eq!(parsed.net_devices().count(), 0);
}

#[test]
fn every_net_binding_mistake_is_named() {
    let at = |binding: &str| format!("m.toml: vm `app`: field `devices`: `{binding}`: ");
    let not_a_number = "not a port number: say `net:N` with N the VM's net port, from 0";
    let ports = |n: u32, k: &str| {
        format!("port {n} does not exist: the VM has {k} (`net = K` gives a VM ports 0 to K-1)")
    };
    let cases: Vec<(String, String)> = vec![
        (
            app(2, "service0 = \"net:x\""),
            at("service0 = \"net:x\"") + not_a_number,
        ),
        (
            app(2, "service0 = \"net:\""),
            at("service0 = \"net:\"") + not_a_number,
        ),
        (
            app(2, "service0 = \"net:+1\""),
            at("service0 = \"net:+1\"") + not_a_number,
        ),
        (
            app(2, "service0 = \"net:-1\""),
            at("service0 = \"net:-1\"") + not_a_number,
        ),
        (
            app(2, "service0 = \"net:5\""),
            at("service0 = \"net:5\"") + &ports(5, "2 net ports"),
        ),
        (
            app(2, "service0 = \"net:2\""),
            at("service0 = \"net:2\"") + &ports(2, "2 net ports"),
        ),
        (
            app(1, "service0 = \"net:1\""),
            at("service0 = \"net:1\"") + &ports(1, "1 net port"),
        ),
        (
            app(0, "service0 = \"net:0\""),
            at("service0 = \"net:0\"") + &ports(0, "0 net ports"),
        ),
        (
            app(2, "service0 = \"net:300\""),
            at("service0 = \"net:300\"") + &ports(300, "2 net ports"),
        ),
        (
            app(2, "a = \"net:0\", b = \"net:0\"")
                + "[[vm]]\nname = \"peer\"\nimage = \"hello\"\nnet = 1\n\
                   [[link]]\na = \"peer.0\"\nb = \"app.0\"\n",
            at("b = \"net:0\"") + "port 0 is named `a` already; a net port has one device name",
        ),
        (
            app(
                4,
                "s0 = \"net:0\", s1 = \"net:1\", s2 = \"net:2\", s3 = \"net:3\", s4 = \"net:0\"",
            ),
            format!(
                "m.toml: vm `app`: field `devices`: 5 net devices, at most {MAX_VM_NET_DEVICES} per VM"
            ),
        ),
        (
            app(2, "\"service-0\" = \"net:0\""),
            at("service-0 = \"net:0\"") + "a Solo5 device name is 1 to 67 letters and digits",
        ),
        (
            app(2, "service0 = \"tap:0\""),
            at("service0 = \"tap:0\"")
                + "say `block:NAME` for a [[block]], `net:N` for the VM's net port N or `nic:NAME` for a port linked to a [[nic]]",
        ),
        (
            app(2, "service0 = \"nic:0\""),
            at("service0 = \"nic:0\"")
                + "no NIC named `0` (the manifest has no [[nic]] table)",
        ),
        (
            app(2, "service0 = \"nic:wan\"") + "[[nic]]\nname = \"uplink\"\n",
            at("service0 = \"nic:wan\"") + "no NIC named `wan` (NICs: uplink)",
        ),
        (
            app(1, "service0 = \"nic:uplink\"")
                + "[[nic]]\nname = \"uplink\"\nmode = \"owned\"\n",
            at("service0 = \"net:1\"")
                + "port 1 is linked to NIC `uplink` in `owned` mode; a Solo5 net device needs a `shared` NIC",
        ),
        (
            app(4, "service0 = \"nic:uplink\"") + "[[nic]]\nname = \"uplink\"\n",
            at("service0 = \"nic:uplink\"")
                + "the VM would need net port 4 for it, and a VM has at most 4",
        ),
        (
            app(2, "service0 = \"net:1\""),
            at("service0 = \"net:1\"")
                + "port 1 is not linked: add a `[[link]]` with `app.1` as an end",
        ),
        (
            app(2, "service0 = \"net:0\"") + "count = 2\n",
            "m.toml: vm `app`: field `devices`: not allowed with `count`: a named device belongs to one VM"
                .to_string(),
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        assert_eq!(&err(text), want, "case {i}");
    }
}

#[test]
fn a_device_bound_to_a_nic_gets_its_own_port_linked_to_it() {
    let m = ok(
        &(app(1, "a = \"nic:uplink\", b = \"net:0\", c = \"nic:uplink\"")
            + "[[vm]]\nname = \"gen\"\nimage = \"hello\"\nnet = 1\n\
           [[link]]\na = \"gen.0\"\nb = \"app.0\"\n\
           [[nic]]\nname = \"uplink\"\n"),
    );
    // Ports after the VM's own, in the order of the device names.
    assert_eq!(m.vms[0].net_ports, 3);
    let named: Vec<(u8, &str)> = m
        .net_devices
        .iter()
        .map(|d| (d.port, d.device.as_str()))
        .collect();
    assert_eq!(named, [(1, "a"), (0, "b"), (2, "c")]);
    // Each is linked to the NIC, after the links written out.
    let ends: Vec<(LinkEnd, LinkEnd)> =
        m.links.iter().map(|l| (l.a.clone(), l.b.clone())).collect();
    assert_eq!(ends.len(), 3);
    for (i, port) in [(1, 1u8), (2, 2)] {
        let LinkEnd::Vm(p) = &ends[i].0 else {
            panic!("link {i}: {:?}", ends[i]);
        };
        assert_eq!((p.vm, p.port), (0, port));
        assert!(matches!(&ends[i].1, LinkEnd::Nic { name, .. } if name == "uplink"));
    }
}
