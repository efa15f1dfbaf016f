//! Tests of the hook sections: round trips through `encode_with_hooks`,
//! every refusal by name (the verifier's words included), and arbitrary
//! hook sections that must never panic the parser.

use super::*;
extern crate std;
use crate::hook::asm::{call, exit, jmp_imm, ld_map, mov64_imm, st};
use crate::hook::insn::{BPF_JEQ, BPF_W};
use crate::hook::{HookKind, Insn, MapDef, MapKind};
use std::vec::Vec;

fn nf(name: &'static str) -> VmSpec<'static> {
    VmSpec {
        name,
        image: "hello",
        args: "",
        memory: 0x20_0000,
        budget: 0,
        cores: 2,
        restart: Restart::Never,
        restart_limit: 0,
        net_ports: 1,
        console: false,
        control: false,
        entry: name,
    }
}

fn vm_link() -> LinkSpec {
    LinkSpec {
        a: LinkEndRef::Vm(PortRef { vm: 0, port: 0 }),
        b: LinkEndRef::Vm(PortRef { vm: 1, port: 0 }),
        core: 0,
        hold: DEFAULT_LINK_HOLD,
        bridge: false,
    }
}

fn code(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}

/// `return 2` (XDP_PASS).
fn pass() -> Vec<u8> {
    code(&[mov64_imm(0, 2), exit()])
}

/// Looks up index 0 of map 0 and returns 1 (XDP_DROP).
fn uses_map() -> Vec<u8> {
    let [l0, l1] = ld_map(1, 0);
    code(&[
        st(BPF_W, 10, -4, 0),
        mov64_imm(2, 0),
        crate::hook::asm::alu64_imm(crate::hook::insn::BPF_ADD, 2, 0),
        crate::hook::asm::mov64_reg(2, 10),
        crate::hook::asm::alu64_imm(crate::hook::insn::BPF_ADD, 2, -4),
        l0,
        l1,
        call(1),
        mov64_imm(0, 1),
        exit(),
    ])
}

fn array() -> Vec<u8> {
    MapDef {
        kind: MapKind::Array,
        key_size: 4,
        value_size: 8,
        max_entries: 4,
    }
    .to_bytes()
    .to_vec()
}

fn hook<'a>(name: &'a str, dir: LinkDir, code: &'a [u8], maps: &'a [u8]) -> HookSpec<'a> {
    HookSpec {
        name,
        kind: HookKind::Packet,
        attach: HookAttach::Link { link: 0, dir },
        code,
        maps,
        interpret: false,
    }
}

fn encode_hooks(hooks: &[HookSpec<'_>]) -> Result<Vec<u8>, ManifestError> {
    let vms = [nf("a"), nf("b")];
    let links = [vm_link()];
    let mut out = std::vec![0u8; encoded_len_with_hooks(2, 0, 1, hooks)];
    encode_with_hooks(0, &vms, &[], &links, hooks, &mut out)?;
    Ok(out)
}

#[test]
fn round_trip() {
    let (p, m, a) = (pass(), uses_map(), array());
    let hooks = [
        hook("fw", LinkDir::AToB, &p, &[]),
        hook("count", LinkDir::BToA, &m, &a),
    ];
    let bytes = encode_hooks(&hooks).unwrap();
    let parsed = Manifest::parse(&bytes).unwrap();
    assert_eq!(parsed.hook_count(), 2);
    let back: Vec<_> = parsed.hooks().collect();
    assert_eq!(back, hooks);
    assert_eq!(back[1].map_defs().count(), 1);
    assert_eq!(back[1].insns().nth(7), Some(call(1)));
    // Without hooks the bytes are encode's.
    let plain = encode_hooks(&[]).unwrap();
    let mut out = std::vec![0u8; encoded_len(2, 0, 1)];
    encode(0, &[nf("a"), nf("b")], &[], &[vm_link()], &mut out).unwrap();
    assert_eq!(plain, out);
}

#[test]
fn a_loop_is_refused_naming_hook_instruction_and_rule() {
    let looped = code(&[
        mov64_imm(0, 2),
        mov64_imm(1, 0),
        mov64_imm(2, 0),
        mov64_imm(3, 0),
        jmp_imm(BPF_JEQ, 1, 0, -2),
        exit(),
    ]);
    let e = encode_hooks(&[hook("fw-v6", LinkDir::AToB, &looped, &[])]).unwrap_err();
    assert_eq!(e.field, Field::HookCode);
    assert_eq!(
        std::format!("{e}"),
        "manifest: hook `fw-v6`: insn 4: back edge to insn 3 (loops are not allowed)"
    );
}

/// The manifest of one `pass` hook with `f` applied to its record.
fn with_record(f: impl Fn(&mut [u8])) -> Result<(), ManifestError> {
    let p = pass();
    let mut bytes = encode_hooks(&[hook("h", LinkDir::AToB, &p, &[])]).unwrap();
    // Table: VMs, links, hooks, code; the hook record follows the link.
    let at = section::table_end(4) + 2 * RECORD_SIZE + LINK_RECORD_SIZE;
    f(&mut bytes[at..at + HOOK_RECORD_SIZE]);
    Manifest::parse(&bytes).map(|_| ())
}

#[test]
fn every_record_field_is_checked() {
    assert_eq!(with_record(|_| {}), Ok(()));
    let problem = |f: fn(&mut [u8])| with_record(f).unwrap_err();
    let e = problem(|r| r[0] = b'@');
    assert_eq!((e.field, e.problem), (Field::HookName, Problem::BadText));
    // A slice hook on a link direction.
    let e = problem(|r| r[32] = 4);
    assert_eq!(e.problem, Problem::AttachMismatch { kind: 4, attach: 1 });
    let e = problem(|r| r[32] = 5);
    assert_eq!(e.problem, Problem::HookKind { kind: 5 });
    assert!(std::format!("{e}").contains("not one of packet (1)"));
    // A restart hook on a link direction; a packet hook on a VM.
    let e = problem(|r| r[32] = 2);
    assert_eq!(e.problem, Problem::AttachMismatch { kind: 2, attach: 1 });
    let e = problem(|r| r[33] = 2);
    assert_eq!(e.problem, Problem::AttachMismatch { kind: 1, attach: 2 });
    assert!(std::format!("{e}").contains("exit (3) and slice (4) hooks on VMs"));
    // A NIC queue, in a manifest without NICs.
    let e = problem(|r| r[33] = 3);
    assert_eq!(e.problem, Problem::NoNic { found: 0, nics: 0 });
    // A packet hook on a core; a slice hook on a core that cannot exist.
    let e = problem(|r| r[33] = 4);
    assert_eq!(e.problem, Problem::AttachMismatch { kind: 1, attach: 4 });
    assert!(std::format!("{e}").contains("slice hooks also on cores (4)"));
    let e = problem(|r| {
        r[32] = 4;
        r[33] = 4;
        r[34] = 0;
        r[36..40].copy_from_slice(&64u32.to_le_bytes());
    });
    assert_eq!(
        e.problem,
        Problem::OutOfRange {
            found: 64,
            min: 0,
            max: 63
        }
    );
    let e = problem(|r| r[33] = 5);
    assert_eq!(e.problem, Problem::AttachKind { kind: 5 });
    // A VM target has no direction.
    let e = problem(|r| {
        r[32] = 3;
        r[33] = 2;
        r[34] = 1;
    });
    assert_eq!(
        e.problem,
        Problem::OutOfRange {
            found: 1,
            min: 0,
            max: 0
        }
    );
    let e = problem(|r| {
        r[32] = 3;
        r[33] = 2;
        r[36] = 2;
    });
    assert_eq!(e.problem, Problem::NoVm { found: 2, vms: 2 });
    assert_eq!(
        with_record(|r| {
            r[32] = 3;
            r[33] = 2;
            r[36] = 1;
        }),
        Ok(())
    );
    let e = problem(|r| r[34] = 2);
    assert_eq!(e.field, Field::HookAttach);
    // The flags byte: bit 0 (interpret) is known, the others are not.
    assert_eq!(with_record(|r| r[35] = FLAG_INTERPRET), Ok(()));
    let e = problem(|r| r[35] = 2);
    assert_eq!(e.field, Field::HookReserved);
    let e = problem(|r| r[63] = 1);
    assert_eq!(e.field, Field::HookReserved);
    let e = problem(|r| r[36] = 1);
    assert_eq!(e.problem, Problem::NoLink { found: 1, links: 1 });
    assert_eq!(e.place(), Place::Hook(0));
    let e = problem(|r| r[40] = 1);
    assert!(matches!(e.problem, Problem::HookSpan { start: 1, .. }));
    let e = problem(|r| r[44] = 3);
    assert!(matches!(e.problem, Problem::HookSpan { count: 3, .. }));
    let e = problem(|r| r[44] = 0);
    assert_eq!(e.field, Field::HookCode);
    // One instruction of two: the run fits, the program falls off its end.
    let e = problem(|r| r[44] = 1);
    assert!(matches!(e.problem, Problem::Verify { .. }), "{e}");
    let e = problem(|r| r[52] = 17);
    assert_eq!(e.field, Field::HookMaps);
}

#[test]
fn names_targets_and_maps() {
    let p = pass();
    let e = encode_hooks(&[
        hook("h", LinkDir::AToB, &p, &[]),
        hook("h", LinkDir::BToA, &p, &[]),
    ])
    .unwrap_err();
    assert_eq!(e.problem, Problem::Duplicate { first: 0 });
    assert!(std::format!("{e}").ends_with("same name as hook 0"));
    let e = encode_hooks(&[
        hook("h", LinkDir::AToB, &p, &[]),
        hook("g", LinkDir::AToB, &p, &[]),
    ])
    .unwrap_err();
    assert_eq!(e.problem, Problem::HookAttached { hook: 0 });
    let mut bad = array();
    bad[0] = 9;
    let m = uses_map();
    let e = encode_hooks(&[hook("h", LinkDir::AToB, &m, &bad)]).unwrap_err();
    assert!(matches!(e.problem, Problem::BadMap { index: 0, .. }), "{e}");
    // A map the program names but the table lacks: the verifier's rule.
    let e = encode_hooks(&[hook("h", LinkDir::AToB, &m, &[])]).unwrap_err();
    assert!(
        std::format!("{e}").starts_with("manifest: hook `h`: insn 5: "),
        "{e}"
    );
    let e = encode_hooks(&[hook(&"x".repeat(33), LinkDir::AToB, &p, &[])]).unwrap_err();
    assert_eq!(e.field, Field::HookName);
    let e = encode_hooks(&[hook("h", LinkDir::AToB, &p[..7], &[])]).unwrap_err();
    assert_eq!(e.field, Field::HookCode);
}

#[test]
fn a_hook_on_a_nic_link_is_refused() {
    let vms = [nf("a")];
    let nics = [NicSpec {
        name: "up",
        pci: NicPci::Auto,
        mac: None,
        mode: NicMode::Shared,
        core: 0,
    }];
    let links = [LinkSpec {
        a: LinkEndRef::Vm(PortRef { vm: 0, port: 0 }),
        b: LinkEndRef::Nic(0),
        core: 0,
        hold: DEFAULT_LINK_HOLD,
        bridge: false,
    }];
    let p = pass();
    let hooks = [hook("h", LinkDir::AToB, &p, &[])];
    let mut out = std::vec![0u8; encoded_len_with_hooks(1, 1, 1, &hooks)];
    let e = encode_with_hooks(0, &vms, &nics, &links, &hooks, &mut out).unwrap_err();
    assert_eq!(e.problem, Problem::HookOnNic { link: 0 });
    assert!(std::format!("{e}").contains("attach the hook to the NIC's queue instead"));
    // The NIC's queue is the place, in both directions, once each.
    let on_nic = |name, dir| HookSpec {
        name,
        kind: HookKind::Packet,
        attach: HookAttach::Nic { nic: 0, dir },
        code: &p,
        maps: &[],
        interpret: false,
    };
    let hooks = [on_nic("in", NicDir::Rx), on_nic("out", NicDir::Tx)];
    let mut out = std::vec![0u8; encoded_len_with_hooks(1, 1, 1, &hooks)];
    encode_with_hooks(0, &vms, &nics, &links, &hooks, &mut out).unwrap();
    let parsed = Manifest::parse(&out).unwrap();
    assert_eq!(parsed.hooks().collect::<Vec<_>>(), hooks);
    let twice = [on_nic("in", NicDir::Rx), on_nic("again", NicDir::Rx)];
    let mut out = std::vec![0u8; encoded_len_with_hooks(1, 1, 1, &twice)];
    let e = encode_with_hooks(0, &vms, &nics, &links, &twice, &mut out).unwrap_err();
    assert_eq!(e.problem, Problem::HookAttached { hook: 0 });
    // Not on an owned NIC.
    let owned = [NicSpec {
        mode: NicMode::Owned,
        ..nics[0]
    }];
    let one = [on_nic("in", NicDir::Rx)];
    let mut out = std::vec![0u8; encoded_len_with_hooks(1, 1, 1, &one)];
    let e = encode_with_hooks(0, &vms, &owned, &links, &one, &mut out).unwrap_err();
    assert_eq!(e.problem, Problem::HookOnOwnedNic { nic: 0 });
}

/// A valid manifest with hooks, then arbitrary bytes in the hook sections.
fn with_hook_sections() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let (p, m, a) = (pass(), uses_map(), array());
    let base = encode_hooks(&[
        hook("fw", LinkDir::AToB, &p, &[]),
        hook("count", LinkDir::BToA, &m, &a),
    ])
    .unwrap();
    let start = section::table_end(5) + 2 * RECORD_SIZE + LINK_RECORD_SIZE;
    let len = base.len() - start;
    (
        proptest::collection::vec((0..len, any::<u8>()), 1..12),
        any::<bool>(),
    )
        .prop_map(move |(changes, shuffle)| {
            let mut b = base.clone();
            for (at, v) in changes {
                b[start + at] = v;
            }
            if shuffle {
                // Some instruction bytes into a random-looking program.
                let code_at = start + 2 * HOOK_RECORD_SIZE;
                b[code_at + 1] ^= 0x11;
            }
            b
        })
}

proptest::proptest! {
    #[test]
    fn arbitrary_hook_sections_never_panic(bytes in with_hook_sections()) {
        if let Ok(m) = Manifest::parse(&bytes) {
            proptest::prop_assert_eq!(m.hooks().count(), m.hook_count());
            for h in m.hooks() {
                proptest::prop_assert!(check_program(&h).is_ok());
            }
        }
    }

    #[test]
    fn arbitrary_hook_records_never_panic(
        record in proptest::collection::vec(proptest::prelude::any::<u8>(), HOOK_RECORD_SIZE),
        code in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
    ) {
        let vms = [nf("a"), nf("b")];
        let links = [vm_link()];
        let mut data = std::vec::Vec::new();
        for (i, vm) in vms.iter().enumerate() {
            data.extend(vm.encode(i as u32).unwrap());
        }
        data.extend(links[0].encode());
        data.extend(&record);
        let code = &code[..code.len() / 8 * 8];
        data.extend(code);
        let start = section::table_end(4);
        let table = [
            Section { kind: 1, offset: start as u32, count: 2, record_size: RECORD_SIZE as u32 },
            Section { kind: 2, offset: (start + 2 * RECORD_SIZE) as u32, count: 1, record_size: LINK_RECORD_SIZE as u32 },
            Section { kind: 4, offset: (start + 2 * RECORD_SIZE + LINK_RECORD_SIZE) as u32, count: 1, record_size: HOOK_RECORD_SIZE as u32 },
            Section { kind: 7, offset: (start + 2 * RECORD_SIZE + LINK_RECORD_SIZE + HOOK_RECORD_SIZE) as u32, count: (code.len() / 8) as u32, record_size: 8 },
        ];
        let mut bytes = std::vec![0u8; HEADER_SIZE];
        bytes[..8].copy_from_slice(&MANIFEST_MAGIC);
        le::put_u32(&mut bytes, H_ABI_VERSION, crate::ABI_VERSION);
        le::put_u32(&mut bytes, H_HEADER_SIZE, HEADER_SIZE as u32);
        le::put_u32(&mut bytes, H_SECTION_COUNT, 4);
        for s in &table {
            bytes.extend_from_slice(&s.encode());
        }
        bytes.extend(data);
        let _ = Manifest::parse(&bytes);
    }
}

fn on_vm<'a>(name: &'a str, kind: HookKind, vm: u32, code: &'a [u8]) -> HookSpec<'a> {
    HookSpec {
        name,
        kind,
        attach: HookAttach::Vm { vm },
        code,
        maps: &[],
        interpret: false,
    }
}

#[test]
fn restart_and_exit_hooks_go_on_vms_one_of_each_kind() {
    let p = pass();
    let hooks = [
        on_vm("again", HookKind::Restart, 1, &p),
        on_vm("filter", HookKind::Exit, 1, &p),
        on_vm("other", HookKind::Exit, 0, &p),
        on_vm("slices", HookKind::Slice, 0, &p),
        hook("fw", LinkDir::AToB, &p, &[]),
    ];
    let bytes = encode_hooks(&hooks).unwrap();
    let parsed = Manifest::parse(&bytes).unwrap();
    assert_eq!(parsed.hooks().collect::<Vec<_>>(), hooks);
    let e = encode_hooks(&[
        on_vm("a", HookKind::Exit, 1, &p),
        on_vm("b", HookKind::Exit, 1, &p),
    ])
    .unwrap_err();
    assert_eq!(e.problem, Problem::HookAttached { hook: 0 });
    assert!(std::format!("{e}").contains("same kind is attached there already"));
}
