//! Tests of the `[[nic]]` tables and of links to NICs: defaults, card
//! placement, encoding and every error.

use super::*;

fn images() -> Vec<String> {
    ["hello", "echo"].map(String::from).to_vec()
}

fn ok(text: &str) -> Manifest {
    parse(text, "m.toml", &images()).unwrap()
}

fn err(text: &str) -> String {
    parse(text, "m.toml", &images()).unwrap_err().to_string()
}

/// Two echo VMs (`web` with 2 ports, `db` with 1) pinned to core 1, then
/// `rest`.
fn with(rest: &str) -> String {
    format!(
        "[run]\ncpus = 3\n\
         [[vm]]\nname = \"web\"\nimage = \"echo\"\nnet = 2\ncores = [1]\n\
         [[vm]]\nname = \"db\"\nimage = \"echo\"\nnet = 1\ncores = [1]\n{rest}"
    )
}

fn nic(name: &str, extra: &str) -> String {
    format!("[[nic]]\nname = \"{name}\"\n{extra}")
}

fn link(a: &str, b: &str, extra: &str) -> String {
    format!("[[link]]\na = \"{a}\"\nb = \"{b}\"\n{extra}")
}

#[test]
fn a_nic_gets_defaults_and_a_card() {
    let m = ok(&with(&nic("uplink", "")));
    assert_eq!(
        m.nics,
        vec![NicConfig {
            name: "uplink".into(),
            pci: slot_address(1),
            mac: None,
            mode: vmm_abi::manifest::NicMode::Shared,
            core: DEFAULT_POLL_CORE,
            backend: Backend::Slirp {
                forwards: Vec::new()
            },
            card: 0,
            slot: 1,
        }]
    );
    assert_eq!(m.nics[0].card_mac(), [0x52, 0x54, 0, 0x12, 0x34, 0x50]);
    assert_eq!(m.nics[0].pci.to_string(), "00:02.0");
    m.check_cores(3).unwrap();
}

#[test]
fn every_nic_field_is_read_and_encoded() {
    let m = ok(&with(&format!(
        "{}{}{}{}",
        nic(
            "uplink",
            "pci = \"auto\"\nmac = \"52:54:00:12:34:56\"\nmode = \"shared\"\ncore = 0\nbackend = \"slirp\"\nforward = [\"udp:5555:7\", \"tcp:8080:80\"]\n"
        ),
        nic(
            "lan",
            "pci = \"00:02.0\"\nmode = \"owned\"\ncore = 2\nbackend = \"tap\"\ntap = \"corral0\"\n"
        ),
        link("web.0", "nic:uplink", ""),
        link("nic:lan", "db.0", ""),
    )));
    let (up, lan) = (&m.nics[0], &m.nics[1]);
    // `lan` asked for slot 1, so `uplink` (auto) takes slot 2; cards follow
    // slot order.
    assert_eq!(
        (up.slot, up.card, up.pci.to_string()),
        (2, 1, "00:03.0".into())
    );
    assert_eq!(
        (lan.slot, lan.card, lan.pci.to_string()),
        (1, 0, "00:02.0".into())
    );
    assert_eq!(up.mac, Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
    assert_eq!(
        up.backend,
        Backend::Slirp {
            forwards: vec![
                Forward {
                    proto: Proto::Udp,
                    host: 5555,
                    addr: DEFAULT_FORWARD_GUEST,
                    guest: 7
                },
                Forward {
                    proto: Proto::Tcp,
                    host: 8080,
                    addr: DEFAULT_FORWARD_GUEST,
                    guest: 80
                }
            ]
        }
    );
    assert_eq!(
        lan.backend,
        Backend::Tap {
            device: "corral0".into(),
            netns: None
        }
    );
    assert_eq!(emulator_netns(&m.nics), None);
    assert_eq!(lan.mode, vmm_abi::manifest::NicMode::Owned);
    // Links to NICs are polled on the NIC's core unless they say.
    assert_eq!((m.links[0].core, m.links[1].core), (0, 2));
    assert_eq!(m.links[0].ends(), "web.0 <-> nic:uplink");
    assert_eq!(m.links[1].a.nic(), Some(1));
    assert_eq!(poll_cores(&m.links, &m.nics), 0b101);
    m.check_cores(3).unwrap();
    let bytes = m.encode().unwrap();
    let parsed = manifest::Manifest::parse(&bytes).unwrap();
    let nics: Vec<_> = parsed.nics().collect();
    assert_eq!(nics.len(), 2);
    // The binary manifest carries the concrete address of `auto`.
    assert_eq!(nics[0].pci, vmm_abi::manifest::NicPci::At(slot_address(2)));
    assert_eq!(nics[0].name, "uplink");
    assert_eq!(
        parsed.links().map(|l| l.b).next(),
        Some(vmm_abi::manifest::LinkEndRef::Nic(0))
    );
    assert_eq!(parsed.poll_cores(), 0b101);
}

#[test]
fn bad_nic_fields_are_named() {
    let e = |extra: &str| err(&with(&nic("up", extra)));
    for (extra, want) in [
        (
            "pci = \"0:2.0\"\n",
            "m.toml: nic `up`: field `pci`: `0:2.0` is not `auto` or a PCI address `BB:DD.F` (hexadecimal, device 00..1f, function 0..7, such as `00:02.0`)",
        ),
        (
            "pci = \"00:20.0\"\n",
            "m.toml: nic `up`: field `pci`: `00:20.0` is not `auto` or a PCI address `BB:DD.F` (hexadecimal, device 00..1f, function 0..7, such as `00:02.0`)",
        ),
        (
            "pci = \"00:07.0\"\n",
            "m.toml: nic `up`: field `pci`: `00:07.0`: the emulated machine has e1000 cards only at 00:02.0, 00:03.0, 00:04.0, 00:05.0 (or say `auto`)",
        ),
        (
            "mac = \"52:54:00:12:34\"\n",
            "m.toml: nic `up`: field `mac`: `52:54:00:12:34` is not a MAC `aa:bb:cc:dd:ee:ff` (six hexadecimal bytes, such as `52:54:00:12:34:56`)",
        ),
        (
            "mac = \"01:00:5e:00:00:01\"\n",
            "m.toml: nic `up`: field `mac`: `01:00:5e:00:00:01` is not a unicast MAC (all zero, or the low bit of the first byte set); leave `mac` out for the card's own",
        ),
        (
            "mac = \"00:00:00:00:00:00\"\n",
            "m.toml: nic `up`: field `mac`: `00:00:00:00:00:00` is not a unicast MAC (all zero, or the low bit of the first byte set); leave `mac` out for the card's own",
        ),
        (
            "core = 64\n",
            "m.toml: nic `up`: field `core`: core 64 is outside 0..=63 (a manifest can name 64 cores)",
        ),
        (
            "forward = [\"udp:5555\"]\n",
            "m.toml: nic `up`: field `forward`: `udp:5555` is not `proto:hostport:[guestaddr:]guestport` (such as `udp:5555:7` or `tcp:8080:10.0.2.16:80`)",
        ),
        (
            "forward = [\"sctp:1:2\"]\n",
            "m.toml: nic `up`: field `forward`: `sctp:1:2`: protocol `sctp` is neither udp nor tcp",
        ),
        (
            "forward = [\"udp:0:7\"]\n",
            "m.toml: nic `up`: field `forward`: `udp:0:7`: host port 0 is outside 1..=65535",
        ),
        (
            "forward = [\"tcp:80:65536\"]\n",
            "m.toml: nic `up`: field `forward`: `tcp:80:65536`: guest port 65536 is outside 1..=65535",
        ),
        (
            "forward = [\"udp:5555:7\", \"udp:5555:8\"]\n",
            "m.toml: nic `up`: field `forward`: `udp:5555:8` forwards udp host port 5555 again (already `udp:5555:7`)",
        ),
        (
            "forward = [\"udp:1:1\", \"udp:2:1\", \"udp:3:1\", \"udp:4:1\", \"udp:5:1\", \"udp:6:1\"]\n",
            "m.toml: nic `up`: field `forward`: 6 rules, at most 5 per NIC (Bochs's slirp takes 5)",
        ),
        (
            "tap = \"tap0\"\n",
            "m.toml: nic `up`: field `tap`: only with `backend = \"tap\"` (this NIC uses slirp)",
        ),
        (
            "backend = \"tap\"\n",
            "m.toml: nic `up`: field `tap`: missing: `backend = \"tap\"` needs `tap = \"<device>\"`",
        ),
        (
            "backend = \"tap\"\ntap = \"a,b\"\n",
            "m.toml: nic `up`: field `tap`: `a,b` is not a tap device name (1..=15 of A-Z a-z 0-9 _ . -, not `.` or `..`)",
        ),
        (
            "backend = \"tap\"\ntap = \"..\"\n",
            "m.toml: nic `up`: field `tap`: `..` is not a tap device name (1..=15 of A-Z a-z 0-9 _ . -, not `.` or `..`)",
        ),
        (
            "netns = \"ns\"\n",
            "m.toml: nic `up`: field `netns`: only with `backend = \"tap\"` (it names the network namespace of the tap device; this NIC uses slirp)",
        ),
        (
            "backend = \"slirp\"\nnetns = \"ns\"\nforward = [\"udp:1:1\"]\n",
            "m.toml: nic `up`: field `netns`: only with `backend = \"tap\"` (it names the network namespace of the tap device; this NIC uses slirp)",
        ),
        (
            "backend = \"tap\"\ntap = \"t\"\nnetns = \"\"\n",
            "m.toml: nic `up`: field `netns`: `` is not a network namespace name (1..=15 of A-Z a-z 0-9 _ . -, not `.` or `..`)",
        ),
        (
            "backend = \"tap\"\ntap = \"t\"\nnetns = \"corral-test-12345\"\n",
            "m.toml: nic `up`: field `netns`: `corral-test-12345` is not a network namespace name (1..=15 of A-Z a-z 0-9 _ . -, not `.` or `..`)",
        ),
        (
            "backend = \"tap\"\ntap = \"t\"\nnetns = \"a/b\"\n",
            "m.toml: nic `up`: field `netns`: `a/b` is not a network namespace name (1..=15 of A-Z a-z 0-9 _ . -, not `.` or `..`)",
        ),
        (
            "backend = \"tap\"\ntap = \"t\"\nnetns = \"..\"\n",
            "m.toml: nic `up`: field `netns`: `..` is not a network namespace name (1..=15 of A-Z a-z 0-9 _ . -, not `.` or `..`)",
        ),
        (
            "backend = \"tap\"\ntap = \"t\"\nforward = [\"udp:1:1\"]\n",
            "m.toml: nic `up`: field `forward`: only with the slirp backend (a tap device is reached at its own address)",
        ),
    ] {
        assert_eq!(e(extra), want, "{extra}");
    }
    // A forward may name another guest on slirp's network, not one off it.
    assert_eq!(
        e("forward = [\"tcp:8080:10.0.3.1:80\"]\n"),
        "m.toml: nic `up`: field `forward`: `tcp:8080:10.0.3.1:80`: guest address `10.0.3.1` is not an address on slirp's 10.0.2.0/24"
    );
    ok(&with(&nic("up", "forward = [\"tcp:8080:10.0.2.16:80\"]\n")));
    // Both ports of a forward may be 1 and 65535, and `udp` and `tcp` may
    // share a host port.
    ok(&with(&nic(
        "up",
        "forward = [\"udp:65535:1\", \"tcp:65535:1\"]\n",
    )));
    let e = err(&with(&nic("hv", "")));
    assert!(
        e.starts_with("m.toml: nic `hv`: manifest nic 0: field `name`: must be non-empty"),
        "{e}"
    );
    let e = err(&with(&nic("a b", "")));
    assert!(e.contains("nic `a b`: manifest nic 0: field `name`"), "{e}");
    // TOML-level mistakes name the line.
    for extra in [
        "mode = \"fast\"\n",
        "backend = \"vde\"\n",
        "speed = 10\n",
        "core = -1\n",
    ] {
        let e = err(&with(&nic("up", extra)));
        assert!(e.starts_with("m.toml:"), "{extra}: {e}");
    }
    assert!(err(&with("[[nic]]\npci = \"auto\"\n")).contains("missing field `name`"));
}

#[test]
fn nics_must_differ_and_fit_the_machine() {
    let e = err(&with(&(nic("up", "") + &nic("up", ""))));
    assert_eq!(
        e,
        "m.toml: nic `up`: field `name`: another NIC is named `up`; NIC names are unique"
    );
    let e = err(&with(
        &(nic("a", "pci = \"00:03.0\"\n") + &nic("b", "pci = \"00:03.0\"\n")),
    ));
    assert_eq!(
        e,
        "m.toml: nic `b`: field `pci`: NIC `a` is at 00:03.0 already"
    );
    let e = err(&with(
        &(nic("a", "mac = \"52:54:00:00:00:01\"\n") + &nic("b", "mac = \"52:54:00:00:00:01\"\n")),
    ));
    assert_eq!(
        e,
        "m.toml: nic `b`: field `mac`: NIC `a` has 52:54:00:00:00:01 already"
    );
    let e = err(&with(
        &(nic("a", "forward = [\"tcp:80:80\"]\n") + &nic("b", "forward = [\"tcp:80:8080\"]\n")),
    ));
    assert_eq!(
        e,
        "m.toml: nic `b`: field `forward`: `tcp:80:8080`: NIC `a` forwards tcp host port 80 already"
    );
    let tap = "backend = \"tap\"\ntap = \"t0\"\n";
    let e = err(&with(&(nic("a", tap) + &nic("b", tap))));
    assert_eq!(
        e,
        "m.toml: nic `b`: field `tap`: NIC `a` uses tap device `t0` already"
    );
    // The MAC the tool would give card 1 is taken by another NIC's `mac`.
    let e = err(&with(
        &(nic("a", "mac = \"52:54:00:12:34:51\"\n") + &nic("b", "")),
    ));
    assert_eq!(
        e,
        "m.toml: nic `a`: field `mac`: 52:54:00:12:34:51 is the MAC the tool gives NIC `b` (it sets no `mac`); choose another"
    );
    let five: String = (0..5).map(|i| nic(&format!("n{i}"), "")).collect();
    assert_eq!(
        err(&with(&five)),
        "m.toml: 5 NICs, at most 4 allowed (the emulator has 4 e1000 cards)"
    );
    // Four fit: autos fill the slots around the one asked for.
    let four = nic("a", "") + &nic("b", "pci = \"00:02.0\"\n") + &nic("c", "") + &nic("d", "");
    let m = ok(&with(&four));
    let placed: Vec<(u8, u8)> = m.nics.iter().map(|n| (n.slot, n.card)).collect();
    assert_eq!(placed, [(2, 1), (1, 0), (3, 2), (4, 3)]);
}

#[test]
fn links_to_nics_are_checked() {
    let up = nic("uplink", "core = 2\n");
    let e = err(&with(&(up.clone() + &link("web.0", "nic:upl", ""))));
    assert_eq!(
        e,
        "m.toml: link 0 (web.0 <-> nic:upl): field `b`: no NIC named `upl` (NICs: uplink)"
    );
    let e = err(&with(&link("web.0", "nic:up", "")));
    assert_eq!(
        e,
        "m.toml: link 0 (web.0 <-> nic:up): field `b`: no NIC named `up` (the manifest has no [[nic]] table)"
    );
    let e = err(&with(
        &(up.clone() + &nic("lan", "core = 2\n") + &link("nic:uplink", "nic:lan", "")),
    ));
    assert_eq!(
        e,
        "m.toml: link 0 (nic:uplink <-> nic:lan): field `b`: `nic:uplink` and `nic:lan` are both NICs; a link joins a VM's net port to another VM's port or to a NIC"
    );
    let e = err(&with(
        &(up.clone() + &link("web.0", "nic:uplink", "core = 0\n")),
    ));
    assert_eq!(
        e,
        "m.toml: link 0 (web.0 <-> nic:uplink): field `core`: core 0, but NIC `uplink` is polled on core 2, and so is every link to it (leave `core` out to get it)"
    );
    let e = err(&with(
        &(up.clone() + &link("web.0", "nic:uplink", "") + &link("nic:uplink", "web.0", "")),
    ));
    assert_eq!(
        e,
        "m.toml: link 1 (nic:uplink <-> web.0): field `b`: port `web.0` is already attached to NIC `uplink` by link 0 (web.0 <-> nic:uplink); one link per port and NIC"
    );
    let e = err(&with(
        &(up.clone() + &link("web.0", "db.0", "") + &link("web.0", "nic:uplink", "")),
    ));
    assert!(
        e.ends_with("field `a`: port `web.0` is already an end of link 0 (web.0 <-> db.0); a port joins one link"),
        "{e}"
    );
    // Several VMs on one NIC.
    let m = ok(&with(
        &(up.clone()
            + &link("web.0", "nic:uplink", "")
            + &link("db.0", "nic:uplink", "")
            + &link("web.1", "nic:uplink", "core = 2\n")),
    ));
    assert!(m.links.iter().all(|l| l.core == 2));
    m.encode().unwrap();
    // A link to a NIC may bridge; one between VMs may not.
    let m = ok(&with(
        &(up.clone() + &link("web.0", "nic:uplink", "bridge = true\n")),
    ));
    assert!(m.links[0].bridge && m.links[0].spec().bridge);
    let e = err(&with(&link("web.0", "db.0", "bridge = true\n")));
    assert_eq!(
        e,
        "m.toml: link 0 (web.0 <-> db.0): field `bridge`: only a link to a NIC bridges (its VM end forwards frames of machines behind it, and the NIC's switch learns their addresses)"
    );
    // The old end syntax error now mentions NICs.
    let e = err(&with(&(up + &link("web", "nic:uplink", ""))));
    assert!(e.ends_with("`web` is not `<vm>.<port>` (a VM name, a dot and a port number, such as `fw.0`) or `nic:<name>`"), "{e}");
}

#[test]
fn nic_cores_poll() {
    // Every VM is pinned to core 1; a NIC polled there leaves them none.
    let e = err(&with(&nic("up", "core = 1\n")));
    assert_eq!(
        e,
        "m.toml: vm `web`: field `cores`: every core it may run on polls links (core 1 polls NIC `up`), and polling cores run no VMs; pin it to another core as well or leave `cores` out"
    );
    let m = ok(&with(&nic("up", "core = 5\n")));
    assert_eq!(
        m.check_cores(3).unwrap_err().to_string(),
        "m.toml: nic `up`: field `core`: core 5 does not exist: this run has 3 CPUs"
    );
    let m = ok("[[vm]]\nname = \"a\"\nimage = \"hello\"\n[[nic]]\nname = \"up\"\n");
    assert_eq!(
        m.check_cores(1).unwrap_err().to_string(),
        "m.toml: nic `up`: field `core`: with this run's 1 CPU every core polls links or NICs (core 0), so none is left for VMs; add CPUs (`[run] cpus`) or poll on fewer cores"
    );
    m.check_cores(2).unwrap();
}

#[test]
fn tap_needs_root() {
    let m = ok(&with(&nic("lan", "backend = \"tap\"\ntap = \"corral0\"\n")));
    assert_eq!(
        check_backends("m.toml", &m.nics, false)
            .unwrap_err()
            .to_string(),
        "m.toml: nic `lan`: field `backend`: the tap backend (device `corral0`) needs root, and this tool is not running as root; run it as root or use `backend = \"slirp\"`"
    );
    check_backends("m.toml", &m.nics, true).unwrap();
    let slirp = ok(&with(&nic("up", "")));
    check_backends("m.toml", &slirp.nics, false).unwrap();
    // Whatever this test runs as, the answer is read.
    assert!(running_as_root().is_some());
}

#[test]
fn addresses_and_macs_parse() {
    assert_eq!(parse_pci("00:02.0"), Some(slot_address(1)));
    assert_eq!(
        parse_pci("0a:1f.7").map(|a| a.to_string()),
        Some("0a:1f.7".into())
    );
    for bad in [
        "",
        "00:02",
        "00:02.8",
        "00:2.0",
        "000:02.0",
        "00:02.0.0",
        "g0:02.0",
        "00:20.0",
    ] {
        assert_eq!(parse_pci(bad), None, "{bad}");
    }
    assert_eq!(
        parse_mac("52:54:00:AB:cd:ef"),
        Some([0x52, 0x54, 0, 0xab, 0xcd, 0xef])
    );
    for bad in [
        "",
        "52:54:00:ab:cd",
        "52:54:00:ab:cd:ef:00",
        "5:54:00:ab:cd:ef",
        "52-54-00-ab-cd-ef",
        "+2:54:00:ab:cd:ef",
    ] {
        assert_eq!(parse_mac(bad), None, "{bad}");
    }
    assert_eq!(
        mac_text([0x52, 0x54, 0, 0xab, 0xcd, 0xef]),
        "52:54:00:ab:cd:ef"
    );
    assert_eq!(generated_mac(3), [0x52, 0x54, 0, 0x12, 0x34, 0x53]);
    assert_eq!(slot_address(4).to_string(), "00:05.0");
}

#[test]
fn tap_nics_share_one_namespace() {
    let tap = |dev: &str, ns: Option<&str>| {
        let ns = ns.map_or_else(String::new, |n| format!("netns = \"{n}\"\n"));
        format!("backend = \"tap\"\ntap = \"{dev}\"\n{ns}")
    };
    // Read, at its longest, and every tap NIC names the same one; a slirp
    // NIC beside them names none.
    let m = ok(&with(
        &(nic("a", &tap("t0", Some("corral-t123456.")))
            + &nic("b", &tap("t1", Some("corral-t123456.")))
            + &nic("c", "")),
    ));
    assert_eq!(
        m.nics[0].backend,
        Backend::Tap {
            device: "t0".into(),
            netns: Some("corral-t123456.".into())
        }
    );
    assert_eq!(emulator_netns(&m.nics), Some("corral-t123456."));
    let slirp_first = ok(&with(&(nic("c", "") + &nic("a", &tap("t0", Some("x"))))));
    assert_eq!(emulator_netns(&slirp_first.nics), Some("x"));
    assert_eq!(emulator_netns(&ok(&with(&nic("c", ""))).nics), None);
    ok(&with(
        &(nic("a", &tap("t0", None)) + &nic("b", &tap("t1", None))),
    ));
    for (a, b, want) in [
        (
            Some("ns1"),
            Some("ns2"),
            "m.toml: nic `b`: field `netns`: `ns2`, but tap NIC `a` names `ns1`; the emulator runs in one network namespace, so every tap NIC names the same one or none does",
        ),
        (
            Some("ns1"),
            None,
            "m.toml: nic `b`: field `netns`: left out, but tap NIC `a` names `ns1`; the emulator runs in one network namespace, so every tap NIC names the same one or none does",
        ),
        (
            None,
            Some("ns2"),
            "m.toml: nic `b`: field `netns`: `ns2`, but tap NIC `a` names none; the emulator runs in one network namespace, so every tap NIC names the same one or none does",
        ),
    ] {
        assert_eq!(
            err(&with(&(nic("a", &tap("t0", a)) + &nic("b", &tap("t1", b))))),
            want
        );
    }
}

/// A host with the namespaces and devices a test says.
struct FakeHost {
    namespaces: Vec<&'static str>,
    /// (namespace, device, state)
    devices: Vec<(Option<&'static str>, &'static str, DeviceState)>,
    broken: bool,
}

impl HostNet for FakeHost {
    fn netns_exists(&self, name: &str) -> bool {
        self.namespaces.contains(&name)
    }

    fn device(
        &self,
        netns: Option<&str>,
        device: &str,
    ) -> std::result::Result<DeviceState, String> {
        if self.broken {
            return Err("`ip -d link show dev t0`: permission denied".into());
        }
        Ok(self
            .devices
            .iter()
            .find(|(ns, d, _)| *ns == netns && *d == device)
            .map_or(DeviceState::Missing, |(_, _, s)| s.clone()))
    }
}

#[test]
fn tap_devices_are_looked_for_before_boot() {
    let inside = ok(&with(
        &(nic("up", "") + &nic("lan", "backend = \"tap\"\ntap = \"t0\"\nnetns = \"ns\"\n")),
    ));
    let outside = ok(&with(&nic("lan", "backend = \"tap\"\ntap = \"t0\"\n")));
    let host = |namespaces, devices| FakeHost {
        namespaces,
        devices,
        broken: false,
    };
    let check = |m: &Manifest, h: &FakeHost| {
        check_tap_devices("m.toml", &m.nics, h).map_err(|e| e.to_string())
    };
    // All there.
    let good = host(vec!["ns"], vec![(Some("ns"), "t0", DeviceState::Tap)]);
    check(&inside, &good).unwrap();
    // Slirp NICs need nothing.
    check(&ok(&with(&nic("up", ""))), &host(vec![], vec![])).unwrap();
    assert_eq!(
        check(&inside, &host(vec![], vec![])).unwrap_err(),
        "m.toml: nic `lan`: field `netns`: no network namespace `ns` (/run/netns/ns does not exist); create it with `ip netns add ns` and the tap device in it with `ip -n ns tuntap add dev t0 mode tap`, then give it an address and bring it up (`ip -n ns addr add 10.0.9.1/24 dev t0`, `ip -n ns link set t0 up`)"
    );
    // The device on the host does not count for a namespace.
    assert_eq!(
        check(
            &inside,
            &host(vec!["ns"], vec![(None, "t0", DeviceState::Tap)])
        )
        .unwrap_err(),
        "m.toml: nic `lan`: field `tap`: no device `t0` in network namespace `ns`; create it with `ip -n ns tuntap add dev t0 mode tap`, then give it an address and bring it up (`ip -n ns addr add 10.0.9.1/24 dev t0`, `ip -n ns link set t0 up`)"
    );
    assert_eq!(
        check(&outside, &good).unwrap_err(),
        "m.toml: nic `lan`: field `tap`: no device `t0` in this host's network namespace; create it with `ip tuntap add dev t0 mode tap`, then give it an address and bring it up (`ip addr add 10.0.9.1/24 dev t0`, `ip link set t0 up`)"
    );
    check(
        &outside,
        &host(vec![], vec![(None, "t0", DeviceState::Tap)]),
    )
    .unwrap();
    assert_eq!(
        check(
            &inside,
            &host(
                vec!["ns"],
                vec![(Some("ns"), "t0", DeviceState::Other("veth".into()))]
            )
        )
        .unwrap_err(),
        "m.toml: nic `lan`: field `tap`: `t0` in network namespace `ns` is not a tap device (`ip -n ns -d link show t0`: `veth`); name a tap device (`ip -n ns tuntap add dev NAME mode tap` makes one)"
    );
    let broken = FakeHost {
        broken: true,
        ..host(vec!["ns"], vec![])
    };
    assert_eq!(
        check(&inside, &broken).unwrap_err(),
        "m.toml: nic `lan`: field `tap`: cannot look for device `t0` in network namespace `ns`: `ip -d link show dev t0`: permission denied"
    );
}
