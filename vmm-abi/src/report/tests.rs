//! Tests of the report records: every kind printed and parsed back, and
//! malformed lines refused by name, never with a panic.

use super::*;
extern crate std;
use std::string::ToString;

fn round_trip(r: Record<'_>) {
    let line = r.to_string();
    assert_eq!(parse_line(&line), Some(Ok(r)), "{line}");
}

#[test]
fn every_record_round_trips() {
    let mut exits = [0; EXIT_KINDS];
    exits[ExitKind::Vmcall as usize] = 3;
    exits[ExitKind::EptViolation as usize] = 1;
    round_trip(Record::Hypervisor {
        abi: 2,
        cores: 2,
        free: 1 << 28,
    });
    round_trip(Record::VmRestart {
        vm: 3,
        attempt: 2,
        reason: "triple fault at rip 0x1000",
    });
    round_trip(Record::Fatal {
        reason: "CPU lacks VMX (CPUID.1:ECX.VMX = 0)",
    });
    round_trip(Record::VmStart {
        vm: 0,
        name: "hello",
        entry: "hello",
        image: "hello",
        core: 0,
        apic: 0,
        memory: 0x20_0000,
    });
    round_trip(Record::Metric {
        vm: 1,
        name: "hypercall_roundtrip",
        value: 412,
    });
    round_trip(Record::VmEnd {
        vm: 2,
        status: VmStatus::Killed,
        code: -1,
        boot: 0,
        restarts: 2,
        slices: 7,
        private: 1,
        shared: 2,
        overhead: 3,
        exits,
        console: 10,
        console_dropped: 4096,
        reason: "EPT violation: read at 0x200000",
    });
    round_trip(Record::VmProgress {
        vm: 2,
        boot: 52_000,
        restarts: 1,
        slices: 9,
        exits,
        console: 100,
        console_dropped: 0,
    });
    round_trip(Record::VmEnd {
        vm: 2,
        status: VmStatus::Exited,
        code: 0,
        boot: 5,
        restarts: 0,
        slices: 1,
        private: 0,
        shared: 0,
        overhead: 0,
        exits: [0; EXIT_KINDS],
        console: 0,
        console_dropped: 0,
        reason: "",
    });
    round_trip(Record::Done { vms: 4 });
    round_trip(Record::Link {
        link: 1,
        a: PortName {
            vm: "fw.x",
            port: 1,
        },
        b: PortName { vm: "nat", port: 0 },
        core: 0,
        ab: LinkFlow {
            frames: 10,
            bytes: 640,
            drop_peer: 2,
            drop_size: 1,
            drop_stalled: 7,
            stalls: 1,
        },
        ba: LinkFlow::default(),
        busy: 12345,
    });
    round_trip(Record::Nic {
        nic: 0,
        name: "uplink",
        core: 1,
        wire: NicFlow {
            rx_frames: 5,
            drop_unknown: 1,
            ..NicFlow::default()
        },
    });
    round_trip(Record::NicPort {
        nic: 0,
        port: PortName { vm: "web", port: 0 },
        flow: NicPortFlow {
            tx_frames: 3,
            drop_spoofed: 2,
            ..NicPortFlow::default()
        },
    });
    round_trip(Record::Window {
        frames: 1000,
        exits: 3,
        busy: 250_000,
    });
    round_trip(Record::NicWindow {
        nic: 0,
        frames: 256,
        exits: 0,
        rx_busy: 51_200,
        tx_frames: 256,
        tx_busy: 40_960,
    });
    round_trip(Record::Hook {
        hook: 0,
        name: "drop-port",
        link: 0,
        dir: "a->b",
        engine: "compiled",
        flow: HookFlow {
            runs: 10,
            pass: 9,
            drop: 1,
            insns: 300,
            ..HookFlow::default()
        },
    });
    round_trip(Record::HookMap {
        hook: 0,
        map: 1,
        kind: "array",
        entries: 1,
        nonzero: 1,
        shown: 1,
    });
    round_trip(Record::HookEntry {
        hook: 0,
        map: 1,
        core: 0,
        key: Hex::Bytes(&[0, 0, 0, 0]),
        value: Hex::Bytes(&[0xc8, 0, 0, 0, 0, 0, 0, 0]),
    });
    let line = std::format!(
        "{}",
        Record::HookEntry {
            hook: 0,
            map: 0,
            core: 0,
            key: Hex::Bytes(&[0x0f, 0xa0]),
            value: Hex::Bytes(&[]),
        }
    );
    assert_eq!(
        line,
        "@corral hook-entry hook=0 map=0 core=0 key=0fa0 value=-"
    );
    assert!(
        parse_line("@corral hook-entry hook=0 map=0 core=0 key=0fa value=-")
            .unwrap()
            .is_err()
    );
    assert!(
        parse_line("@corral hook-entry hook=0 map=0 core=0 key=zz value=-")
            .unwrap()
            .is_err()
    );
}

#[test]
fn port_names() {
    assert_eq!(
        PortName::parse("web.3.1"),
        Some(PortName {
            vm: "web.3",
            port: 1
        })
    );
    assert_eq!(PortName::parse("web"), None);
    assert_eq!(PortName::parse(".1"), None);
    assert_eq!(PortName::parse("web.x"), None);
    assert_eq!(PortName::parse("web.300"), None);
    let flow = LinkFlow {
        frames: 5,
        bytes: 0,
        drop_peer: 2,
        drop_size: 1,
        drop_stalled: 3,
        stalls: 1,
    };
    assert_eq!(flow.handed(), 11);
}

#[test]
fn ordinary_lines_are_not_records() {
    assert_eq!(parse_line("hello | Hello, world"), None);
    assert_eq!(parse_line("@corralx"), None);
}

#[test]
fn malformed_records_name_the_key() {
    let key = |l: &str| parse_line(l).unwrap().unwrap_err().key;
    assert_eq!(key("@corral nope"), "kind");
    assert_eq!(key("@corral hv abi=x cores=1 free=0"), "abi");
    assert_eq!(key("@corral hv abi=1"), "cores");
    assert_eq!(
        key("@corral hv abi=1 cores=1 free=0 extra=2"),
        "end of line"
    );
    let end = |status: &str, exits: &str| {
        std::format!(
            "@corral vm-end vm=0 status={status} code=0 boot=0 restarts=0 slices=1 private=0 shared=0 overhead=0 exits={exits} console=0 console_dropped=0 reason=x"
        )
    };
    assert!(parse_line(&end("exited", "-")).unwrap().is_ok());
    assert_eq!(key(&end("gone", "-")), "status");
    assert_eq!(key(&end("exited", "warp:1")), "exits");
    assert_eq!(key("@corral done vms="), "vms");
}

#[test]
fn kinds_have_unique_names() {
    for (i, k) in ExitKind::ALL.iter().enumerate() {
        assert_eq!(*k as usize, i);
        assert_eq!(ExitKind::from_name(k.name()), Some(*k));
    }
}

proptest::proptest! {
    #[test]
    fn parse_never_panics(s in "@corral [a-z=0-9 ,:-]{0,80}") {
        let _ = parse_line(&s);
    }
}

/// One record of each kind, and its line as the hypervisor has always
/// printed it (integration tests and the host tool read these lines).
fn golden() -> std::vec::Vec<(Record<'static>, &'static str)> {
    let mut exits = [0; EXIT_KINDS];
    exits[ExitKind::Vmcall as usize] = 3;
    exits[ExitKind::EptViolation as usize] = 1;
    std::vec![
        (
            Record::Hypervisor {
                abi: 5,
                cores: 2,
                free: 268_435_456,
            },
            "@corral hv abi=5 cores=2 free=268435456",
        ),
        (
            Record::Fatal {
                reason: "CPU lacks VMX (CPUID.1:ECX.VMX = 0)",
            },
            "@corral fatal reason=CPU lacks VMX (CPUID.1:ECX.VMX = 0)",
        ),
        (
            Record::VmStart {
                vm: 0,
                name: "hello",
                entry: "hello",
                image: "img",
                core: 1,
                apic: 2,
                memory: 0x20_0000,
            },
            "@corral vm-start vm=0 name=hello entry=hello image=img core=1 apic=2 memory=2097152",
        ),
        (
            Record::VmRestart {
                vm: 3,
                attempt: 2,
                reason: "triple fault at rip 0x1000",
            },
            "@corral vm-restart vm=3 attempt=2 reason=triple fault at rip 0x1000",
        ),
        (
            Record::Metric {
                vm: 1,
                name: "hypercall_roundtrip",
                value: 412,
            },
            "@corral metric vm=1 name=hypercall_roundtrip value=412",
        ),
        (
            Record::VmEnd {
                vm: 2,
                status: VmStatus::Killed,
                code: -1,
                boot: 7,
                restarts: 2,
                slices: 8,
                private: 1,
                shared: 2,
                overhead: 3,
                exits,
                console: 10,
                console_dropped: 4096,
                reason: "EPT violation: read at 0x200000",
            },
            "@corral vm-end vm=2 status=killed code=-1 boot=7 restarts=2 slices=8 private=1 shared=2 overhead=3 exits=vmcall:3,ept_violation:1 console=10 console_dropped=4096 reason=EPT violation: read at 0x200000",
        ),
        (
            Record::VmProgress {
                vm: 2,
                boot: 52_000,
                restarts: 1,
                slices: 9,
                exits: [0; EXIT_KINDS],
                console: 100,
                console_dropped: 0,
            },
            "@corral vm-progress vm=2 boot=52000 restarts=1 slices=9 exits=- console=100 console_dropped=0",
        ),
        (
            Record::Link {
                link: 1,
                a: PortName {
                    vm: "fw.x",
                    port: 1,
                },
                b: PortName { vm: "nat", port: 0 },
                core: 0,
                ab: LinkFlow {
                    frames: 10,
                    bytes: 640,
                    drop_peer: 2,
                    drop_size: 1,
                    drop_stalled: 7,
                    stalls: 1,
                },
                ba: LinkFlow {
                    frames: 4,
                    ..LinkFlow::default()
                },
                busy: 12345,
            },
            "@corral link link=1 a=fw.x.1 b=nat.0 core=0 ab_frames=10 ab_bytes=640 ab_drop_peer=2 ab_drop_size=1 ab_drop_stalled=7 ab_stalls=1 ba_frames=4 ba_bytes=0 ba_drop_peer=0 ba_drop_size=0 ba_drop_stalled=0 ba_stalls=0 busy=12345",
        ),
        (
            Record::Nic {
                nic: 0,
                name: "uplink",
                core: 1,
                wire: NicFlow {
                    rx_frames: 5,
                    rx_bytes: 300,
                    drop_unknown: 1,
                    tx_frames: 2,
                    tx_bytes: 120,
                    ..NicFlow::default()
                },
            },
            "@corral nic nic=0 name=uplink core=1 wire_rx_frames=5 wire_rx_bytes=300 wire_rx_errors=0 wire_drop_unknown=1 wire_drop_runt=0 wire_tx_frames=2 wire_tx_bytes=120 wire_tx_full=0 wire_rx_busy=0 wire_tx_busy=0 wire_drop_hook=0",
        ),
        (
            Record::NicPort {
                nic: 0,
                port: PortName { vm: "web", port: 0 },
                flow: NicPortFlow {
                    rx_frames: 4,
                    rx_bytes: 240,
                    drop_spoofed: 1,
                    ..NicPortFlow::default()
                },
            },
            "@corral nic-port nic=0 port=web.0 flow_rx_frames=4 flow_rx_bytes=240 flow_tx_frames=0 flow_tx_bytes=0 flow_drop_no_buffer=0 flow_drop_size=0 flow_drop_spoofed=1 flow_drop_peer=0 flow_drop_fault=0 flow_drop_hook=0",
        ),
        (
            Record::Hook {
                hook: 0,
                name: "drop-port",
                link: 2,
                dir: "b->a",
                engine: "interpreted",
                flow: HookFlow {
                    runs: 10,
                    pass: 8,
                    drop: 1,
                    faults: 1,
                    insns: 250,
                    ..HookFlow::default()
                },
            },
            "@corral hook hook=0 name=drop-port link=2 dir=b->a engine=interpreted flow_runs=10 flow_pass=8 flow_drop=1 flow_aborted=0 flow_faults=1 flow_tx=0 flow_redirect=0 flow_sent=0 flow_unsent=0 flow_insns=250",
        ),
        (
            Record::VmHook {
                hook: 1,
                name: "twice",
                kind: "restart",
                vm: "crash",
                engine: "compiled",
                flow: VmHookFlow {
                    runs: 3,
                    allow: 2,
                    deny: 1,
                    insns: 30,
                    ..VmHookFlow::default()
                },
            },
            "@corral vm-hook hook=1 name=twice kind=restart vm=crash engine=compiled flow_runs=3 flow_allow=2 flow_deny=1 flow_fail=0 flow_bad=0 flow_faults=0 flow_insns=30",
        ),
        (
            Record::HookMap {
                hook: 0,
                map: 0,
                kind: "hash",
                entries: 3,
                nonzero: 3,
                shown: 3,
            },
            "@corral hook-map hook=0 map=0 kind=hash entries=3 nonzero=3 shown=3",
        ),
        (
            Record::HookEntry {
                hook: 0,
                map: 0,
                core: 0,
                key: Hex::Bytes(&[0x27, 0x0f]),
                value: Hex::Bytes(&[200, 0, 0, 0, 0, 0, 0, 0]),
            },
            "@corral hook-entry hook=0 map=0 core=0 key=270f value=c800000000000000",
        ),
        (
            Record::Window {
                frames: 1000,
                exits: 3,
                busy: 250_000,
            },
            "@corral window frames=1000 exits=3 busy=250000",
        ),
        (
            Record::NicWindow {
                nic: 0,
                frames: 256,
                exits: 1,
                rx_busy: 51_200,
                tx_frames: 256,
                tx_busy: 40_960,
            },
            "@corral nic-window nic=0 frames=256 exits=1 rx_busy=51200 tx_frames=256 tx_busy=40960",
        ),
        (
            Record::Paging {
                exec: 64,
                writable: 1_048_000,
                writable_exec: 0,
            },
            "@corral paging exec=64 writable=1048000 writable_exec=0",
        ),
        (
            Record::Block {
                block: 0,
                name: "disk0",
                vm: 2,
                device: "storage",
                capacity: 65536,
                block_size: 512,
                flow: BlockFlow {
                    reads: 3,
                    writes: 1,
                    bytes_read: 1536,
                    bytes_written: 512,
                    errors: 2,
                },
                dirty: 1,
            },
            "@corral block block=0 name=disk0 vm=2 device=storage capacity=65536 block_size=512 flow_reads=3 flow_writes=1 flow_bytes_read=1536 flow_bytes_written=512 flow_errors=2 dirty=1",
        ),
        (
            Record::BlockData {
                block: 0,
                offset: 512,
                len: 2,
                data: Hex::Bytes(&[0xc0, 0xde]),
            },
            "@corral block-data block=0 offset=512 len=2 data=c0de",
        ),
        (Record::Done { vms: 4 }, "@corral done vms=4"),
    ]
}

#[test]
fn every_kind_prints_its_line_unchanged() {
    let golden = golden();
    let kinds: std::vec::Vec<&str> = golden.iter().map(|(r, _)| r.kind()).collect();
    assert_eq!(kinds, Record::KINDS, "one golden line per kind, in order");
    for (record, line) in golden {
        assert_eq!(record.to_string(), line);
        assert_eq!(parse_line(line), Some(Ok(record)), "{line}");
        assert_eq!(
            parse_line(&std::format!("{line}\r\n")),
            Some(Ok(record)),
            "{line}"
        );
    }
}

#[test]
fn link_counters_are_named_once() {
    assert_eq!(
        LinkFlow::FIELDS,
        [
            "frames",
            "bytes",
            "drop_peer",
            "drop_size",
            "drop_stalled",
            "stalls"
        ]
    );
    let flow = LinkFlow {
        frames: 1,
        bytes: 2,
        drop_peer: 3,
        drop_size: 4,
        drop_stalled: 5,
        stalls: 6,
    };
    assert_eq!(flow.values(), [1, 2, 3, 4, 5, 6]);
    assert_eq!(LinkFlow::from_values(flow.values()), flow);
    assert_eq!((flow.dropped(), flow.handed()), (12, 13));
}

#[test]
fn a_bad_counter_is_named_with_its_direction() {
    let (_, line) = golden().remove(7);
    let bad = line.replace("ba_drop_size=0", "ba_drop_size=x");
    let e = parse_line(&bad).unwrap().unwrap_err();
    assert_eq!((e.key, e.part), ("ba", Some("drop_size")), "{bad}");
    assert_eq!(
        e.to_string(),
        "malformed report record: bad or missing `ba_drop_size`"
    );
    let missing = line.replace(" ab_stalls=1", "");
    let e = parse_line(&missing).unwrap().unwrap_err();
    assert_eq!(
        e.to_string(),
        "malformed report record: bad or missing `ab_stalls`"
    );
    assert_eq!(
        parse_line("@corral done").unwrap().unwrap_err().to_string(),
        "malformed report record: bad or missing `vms`"
    );
}

/// Owned values to build one record of any kind from.
#[derive(Clone, Debug)]
struct Material {
    kind: usize,
    n: [u64; 8],
    words: [std::string::String; 4],
    ports: [u8; 2],
    status: usize,
    exits: ExitCounts,
    reason: std::string::String,
}

/// The record of kind `m.kind` (an index into [`Record::KINDS`]) made of
/// `m`'s values.
fn record(m: &Material) -> Record<'_> {
    let n = |i: usize| m.n[i];
    let flow =
        |at: usize| LinkFlow::from_values([n(at), n(at + 1), n(at + 2), n(at + 3), n(0), n(1)]);
    match m.kind {
        0 => Record::Hypervisor {
            abi: n(0) as u32,
            cores: n(1) as u32,
            free: n(2),
        },
        1 => Record::Fatal { reason: &m.reason },
        2 => Record::VmStart {
            vm: n(0) as u32,
            name: &m.words[0],
            entry: &m.words[0],
            image: &m.words[1],
            core: n(1) as u32,
            apic: n(2) as u32,
            memory: n(3),
        },
        3 => Record::VmRestart {
            vm: n(0) as u32,
            attempt: n(1) as u32,
            reason: &m.reason,
        },
        4 => Record::Metric {
            vm: n(0) as u32,
            name: &m.words[2],
            value: n(1),
        },
        5 => Record::VmEnd {
            vm: n(0) as u32,
            status: [VmStatus::Exited, VmStatus::Killed, VmStatus::Running][m.status],
            code: n(1) as i64,
            boot: n(2),
            restarts: n(3) as u32,
            slices: n(4),
            private: n(5),
            shared: n(6),
            overhead: n(7),
            exits: m.exits,
            console: n(1),
            console_dropped: n(2),
            reason: &m.reason,
        },
        6 => Record::VmProgress {
            vm: n(0) as u32,
            boot: n(1),
            restarts: n(2) as u32,
            slices: n(3),
            exits: m.exits,
            console: n(4),
            console_dropped: n(5),
        },
        7 => Record::Link {
            link: n(0) as u32,
            a: PortName {
                vm: &m.words[0],
                port: m.ports[0],
            },
            b: PortName {
                vm: &m.words[3],
                port: m.ports[1],
            },
            core: n(1) as u32,
            ab: flow(2),
            ba: flow(4),
            busy: n(7),
        },
        8 => Record::Nic {
            nic: n(0) as u32,
            name: &m.words[1],
            core: n(1) as u32,
            wire: NicFlow::from_values(core::array::from_fn(|i| m.n[i % m.n.len()])),
        },
        9 => Record::NicPort {
            nic: n(2) as u32,
            port: PortName {
                vm: &m.words[0],
                port: m.ports[0],
            },
            flow: NicPortFlow::from_values(core::array::from_fn(|i| m.n[i % m.n.len()])),
        },
        10 => Record::Hook {
            hook: n(0) as u32,
            name: &m.words[0],
            link: n(1) as u32,
            dir: &m.words[1],
            engine: &m.words[2],
            flow: HookFlow::from_values(core::array::from_fn(|i| m.n[i % m.n.len()])),
        },
        11 => Record::VmHook {
            hook: n(0) as u32,
            name: &m.words[0],
            kind: &m.words[1],
            vm: &m.words[2],
            engine: &m.words[0],
            flow: VmHookFlow::from_values(core::array::from_fn(|i| m.n[i % m.n.len()])),
        },
        12 => Record::HookMap {
            hook: n(0) as u32,
            map: n(1) as u32,
            kind: &m.words[2],
            entries: n(2),
            nonzero: n(3),
            shown: n(4),
        },
        13 => Record::HookEntry {
            hook: n(0) as u32,
            map: n(1) as u32,
            core: n(2) as u32,
            key: Hex::Bytes(m.words[0].as_bytes()),
            value: Hex::Bytes(m.words[1].as_bytes()),
        },
        14 => Record::Window {
            frames: n(0),
            exits: n(1),
            busy: n(2),
        },
        15 => Record::NicWindow {
            nic: n(0) as u32,
            frames: n(1),
            exits: n(2),
            rx_busy: n(3),
            tx_frames: n(4),
            tx_busy: n(5),
        },
        16 => Record::Paging {
            exec: n(0),
            writable: n(1),
            writable_exec: n(2),
        },
        17 => Record::Block {
            block: n(0) as u32,
            name: &m.words[0],
            vm: n(1) as u32,
            device: &m.words[1],
            capacity: n(2),
            block_size: n(3) as u32,
            flow: BlockFlow::from_values(core::array::from_fn(|i| m.n[i % m.n.len()])),
            dirty: n(4),
        },
        18 => Record::BlockData {
            block: n(0) as u32,
            offset: n(1),
            len: n(2) as u32,
            data: Hex::Bytes(m.words[2].as_bytes()),
        },
        _ => Record::Done { vms: n(0) as u32 },
    }
}

fn material() -> impl proptest::strategy::Strategy<Value = Material> {
    use proptest::prelude::*;
    let number = prop_oneof![0u64..1000, any::<u64>()];
    let count = prop_oneof![Just(0u64), any::<u64>()];
    // Words as the hypervisor prints them: no spaces, never empty.
    let word = "[!-~]{1,12}";
    (
        0..Record::KINDS.len(),
        proptest::array::uniform8(number),
        proptest::array::uniform4(word),
        any::<[u8; 2]>(),
        0usize..3,
        proptest::array::uniform15(count),
        "[ -~]{0,60}",
    )
        .prop_map(|(kind, n, words, ports, status, exits, reason)| Material {
            kind,
            n,
            words,
            ports,
            status,
            exits,
            reason,
        })
}

#[test]
fn the_material_covers_every_kind() {
    let kinds: std::vec::Vec<&str> = (0..Record::KINDS.len())
        .map(|kind| {
            record(&Material {
                kind,
                n: [1; 8],
                words: ["a".into(), "b".into(), "c".into(), "d".into()],
                ports: [0, 1],
                status: 0,
                exits: [0; EXIT_KINDS],
                reason: "r".into(),
            })
            .kind()
        })
        .collect();
    assert_eq!(kinds, Record::KINDS);
}

/// Edits `line` at a char boundary near `at`: removes `cut` chars there and
/// puts `insert` in their place.
fn mutate(line: &str, at: usize, cut: usize, insert: &str) -> std::string::String {
    let chars: std::vec::Vec<char> = line.chars().collect();
    let at = at % (chars.len() + 1);
    let end = (at + cut).min(chars.len());
    let mut out: std::string::String = chars[..at].iter().collect();
    out.push_str(insert);
    out.extend(&chars[end..]);
    out
}

proptest::proptest! {
    #[test]
    fn every_record_prints_and_parses_back(m in material()) {
        let r = record(&m);
        let line = r.to_string();
        proptest::prop_assert!(line.starts_with(RECORD_PREFIX));
        proptest::prop_assert_eq!(parse_line(&line), Some(Ok(r)), "{}", line);
    }

    #[test]
    fn edited_records_never_panic(
        m in material(),
        at in 0usize..400,
        cut in 0usize..4,
        insert in "[ -~]{0,3}|.{0,2}",
    ) {
        let line = mutate(&record(&m).to_string(), at, cut, &insert);
        if let Some(Ok(r)) = parse_line(&line) {
            // Whatever parses prints a line that parses to the same record.
            let again = r.to_string();
            proptest::prop_assert_eq!(parse_line(&again), Some(Ok(r)));
        }
    }

    #[test]
    fn any_text_after_the_prefix_never_panics(s in "@corral .{0,200}") {
        let _ = parse_line(&s);
    }
}
