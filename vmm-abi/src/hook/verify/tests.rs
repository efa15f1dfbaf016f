//! Verifier tests: hostile programs each refused by its own rule, programs that pass (with spills, joins and NULL checks), messages, and random instruction streams that must never panic it.

#![forbid(unsafe_code)]

extern crate std;

use super::*;
use crate::hook::asm::*;
use crate::hook::context::{REASON_TRIPLE_FAULT, RESTART_REASON, RESTART_RESTARTS, XDP_DATA};
use crate::hook::insn::*;
use crate::hook::map::{MapError, MapKind};
use std::format;
use std::string::ToString;
use std::vec::Vec;

const ARRAY: MapDef = MapDef {
    kind: MapKind::Array,
    key_size: 4,
    value_size: 8,
    max_entries: 4,
};
const HASH: MapDef = MapDef {
    kind: MapKind::Hash,
    key_size: 8,
    value_size: 16,
    max_entries: 64,
};

/// Flattens instructions and `lddw` pairs into a program.
fn prog(parts: &[&[Insn]]) -> Vec<Insn> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

fn check(p: &[Insn], maps: &[MapDef]) -> Result<ProgInfo, VerifyError> {
    verify(p, HookKind::Packet, maps)
}

fn refused(p: &[Insn], maps: &[MapDef]) -> VerifyError {
    match check(p, maps) {
        Err(e) => e,
        Ok(info) => panic!("accepted: {info:?}"),
    }
}

fn rule(p: &[Insn]) -> Rule {
    refused(p, &[ARRAY]).rule
}

const RET0: [Insn; 2] = [mov64_imm(0, 0), exit()];

#[test]
fn trivial_program_passes() {
    let info = check(&RET0, &[]).unwrap();
    assert_eq!(info.reachable, 2);
    assert_eq!(info.len, 2);
}

// ------------------------------------------------------------ hostile

#[test]
fn empty() {
    assert_eq!(rule(&[]), Rule::Empty);
}

#[test]
fn too_long() {
    let mut p = std::vec![mov64_imm(0, 0); MAX_INSNS];
    p.push(exit());
    assert_eq!(rule(&p), Rule::TooLong { len: MAX_INSNS + 1 });
    p.truncate(MAX_INSNS - 1);
    p.push(exit());
    assert!(check(&p, &[]).is_ok(), "exactly the limit passes");
}

#[test]
fn too_many_maps() {
    let maps = [ARRAY; MAX_MAPS + 1];
    assert_eq!(refused(&RET0, &maps).rule, Rule::TooManyMaps { count: 17 });
}

#[test]
fn bad_map_definition() {
    let bad = MapDef {
        key_size: 0,
        ..HASH
    };
    let e = refused(&RET0, &[ARRAY, bad]);
    assert_eq!(
        e.rule,
        Rule::BadMap {
            index: 1,
            error: MapError::KeySize(0)
        }
    );
    assert_eq!(e.to_string(), "map 1: key of 0 bytes (1 to 64)");
}

#[test]
fn register_above_ten() {
    assert_eq!(
        rule(&[mov64_imm(11, 0), exit()]),
        Rule::BadRegister { reg: 11 }
    );
    assert_eq!(
        rule(&[mov64_reg(0, 15), exit()]),
        Rule::BadRegister { reg: 15 }
    );
}

#[test]
fn unknown_opcode() {
    let e = refused(&[Insn::new(0xe7, 0, 0, 0, 0), exit()], &[]);
    assert_eq!(e.rule, Rule::UnknownOpcode { code: 0xe7 });
    assert_eq!(e.to_string(), "insn 0: opcode 0xe7 is not allowed");
    // Byte swap is an ALU (32-bit class) operation only; ALU64 END is v4 bswap.
    assert_eq!(
        rule(&[Insn::new(BPF_ALU64 | BPF_END, 0, 0, 0, 16), exit()]),
        Rule::UnknownOpcode {
            code: BPF_ALU64 | BPF_END
        }
    );
    // Sign-extending loads, 32-bit unconditional jumps, NEG by register.
    for code in [
        BPF_LDX | BPF_MEMSX | BPF_W,
        BPF_JMP32 | BPF_JA,
        BPF_ALU64 | BPF_NEG | BPF_X,
    ] {
        assert_eq!(
            rule(&[Insn::new(code, 0, 0, 0, 0), exit()]),
            Rule::UnknownOpcode { code }
        );
    }
}

#[test]
fn legacy_packet_loads() {
    for code in [BPF_LD | BPF_ABS | BPF_W, BPF_LD | BPF_IND | BPF_B] {
        assert_eq!(
            rule(&[Insn::new(code, 0, 0, 0, 12), exit()]),
            Rule::LegacyPacketLoad { code }
        );
    }
}

#[test]
fn reserved_fields() {
    assert_eq!(
        rule(&[Insn::new(BPF_ALU64 | BPF_MOV | BPF_K, 0, 3, 0, 1), exit()]),
        Rule::ReservedField { field: "src" }
    );
    // Signed division (off = 1) is a cpu-v4 instruction.
    assert_eq!(
        rule(&[Insn::new(BPF_ALU64 | BPF_DIV | BPF_K, 0, 0, 1, 3), exit()]),
        Rule::ReservedField { field: "off" }
    );
    assert_eq!(
        rule(&[mov64_imm(0, 0), Insn::new(EXIT, 0, 0, 0, 1)]),
        Rule::ReservedField { field: "imm" }
    );
}

#[test]
fn bad_immediates() {
    assert_eq!(
        rule(&[mov64_imm(0, 1), be(0, 24), exit()]),
        Rule::BadImmediate {
            what: "byte swap width (16, 32 or 64)",
            imm: 24
        }
    );
    let mut or = atomic_add(BPF_DW, 10, 0, -8);
    or.imm = i32::from(BPF_OR);
    assert!(matches!(
        rule(&[mov64_imm(0, 0), or, exit()]),
        Rule::BadImmediate { imm: 0x40, .. }
    ));
}

#[test]
fn lddw_truncated() {
    let [first, _] = lddw(0, 1);
    assert_eq!(rule(&[mov64_imm(0, 0), exit(), first]), Rule::LddwTruncated);
}

#[test]
fn lddw_second_half_malformed() {
    let [first, mut second] = lddw(0, 1);
    second.code = EXIT;
    assert_eq!(rule(&[first, second, exit()]), Rule::LddwSecondHalf);
}

#[test]
fn unknown_pseudo_source() {
    let [mut first, second] = lddw(0, 0);
    first.src = 2; // BPF_PSEUDO_MAP_VALUE: not supported
    assert_eq!(
        rule(&[first, second, exit()]),
        Rule::UnknownPseudo { src: 2 }
    );
}

#[test]
fn map_index_out_of_range() {
    let p = prog(&[&ld_map(1, 1), &RET0]);
    let e = refused(&p, &[ARRAY]);
    assert_eq!(e.rule, Rule::MapIndex { index: 1, maps: 1 });
    assert_eq!(e.to_string(), "insn 0: map index 1 out of range (1 maps)");
}

#[test]
fn back_edge() {
    let mut p = std::vec![mov64_imm(0, 0); 7];
    p.push(ja(-5)); // insn 7 → 3
    p.push(exit());
    let e = refused(&p, &[]);
    assert_eq!(
        e,
        VerifyError {
            insn: 7,
            rule: Rule::BackEdge { target: 3 }
        }
    );
    assert_eq!(
        e.to_string(),
        "insn 7: back edge to insn 3 (loops are not allowed)"
    );
    // A jump to itself is a back edge too.
    assert_eq!(
        rule(&[mov64_imm(0, 0), jmp_imm(BPF_JEQ, 0, 0, -1), exit()]),
        Rule::BackEdge { target: 1 }
    );
}

#[test]
fn jump_out_of_range() {
    assert_eq!(
        rule(&[mov64_imm(0, 0), ja(5), exit()]),
        Rule::JumpOutOfRange { target: 7 }
    );
    assert_eq!(
        rule(&[mov64_imm(0, 0), ja(-3), exit()]),
        Rule::JumpOutOfRange { target: -1 }
    );
}

#[test]
fn jump_into_lddw() {
    let p = prog(&[&[ja(1)], &lddw(0, 7), &[exit()]]);
    assert_eq!(rule(&p), Rule::JumpIntoLddw { target: 2 });
}

#[test]
fn bpf_to_bpf_call() {
    let c = Insn::new(CALL, 0, BPF_PSEUDO_CALL, 0, 1);
    assert_eq!(rule(&[c, exit()]), Rule::BpfToBpfCall);
}

#[test]
fn tail_call() {
    assert_eq!(rule(&[call(BPF_FUNC_TAIL_CALL), exit()]), Rule::TailCall);
}

#[test]
fn unknown_helper() {
    assert_eq!(rule(&[call(99), exit()]), Rule::UnknownHelper { id: 99 });
}

#[test]
fn helper_not_allowed_for_kind() {
    let p = [
        mov64_imm(1, 1),
        mov64_imm(2, 0),
        call(BPF_FUNC_REDIRECT),
        exit(),
    ];
    assert!(verify(&p, HookKind::Packet, &[]).is_ok());
    let e = verify(&p, HookKind::Exit, &[]).unwrap_err();
    assert_eq!(
        e.rule,
        Rule::HelperNotAllowed {
            helper: BPF_FUNC_REDIRECT,
            kind: HookKind::Exit
        }
    );
    assert_eq!(
        e.to_string(),
        "insn 2: helper 23 (redirect) is not allowed in exit hooks"
    );
}

#[test]
fn falls_off_the_end() {
    assert_eq!(
        refused(&[mov64_imm(0, 0)], &[]),
        VerifyError {
            insn: 0,
            rule: Rule::FallsOffEnd
        }
    );
    // Through a conditional jump's fall-through path.
    assert_eq!(
        refused(
            &[
                mov64_imm(0, 0),
                jmp_imm(BPF_JEQ, 1, 0, 1),
                exit(),
                mov64_imm(0, 1)
            ],
            &[]
        ),
        VerifyError {
            insn: 3,
            rule: Rule::FallsOffEnd
        }
    );
}

#[test]
fn uninitialised_register() {
    assert_eq!(
        rule(&[mov64_reg(0, 2), exit()]),
        Rule::UninitRegister { reg: 2 }
    );
    // Written on one path only.
    let p = [
        jmp_imm(BPF_JEQ, 1, 0, 1),
        mov64_imm(3, 1),
        mov64_reg(0, 3),
        exit(),
    ];
    assert_eq!(rule(&p), Rule::UninitRegister { reg: 3 });
    // Clobbered by a call.
    let p = [call(BPF_FUNC_KTIME_GET_NS), mov64_reg(0, 1), exit()];
    assert_eq!(rule(&p), Rule::UninitRegister { reg: 1 });
}

#[test]
fn uninitialised_stack() {
    let p = [ldx(BPF_DW, 0, 10, -8), exit()];
    assert_eq!(rule(&p), Rule::UninitStack { off: -8 });
    // Partly written: bytes -8..-4 written, the load reads -8..0.
    let p = [st(BPF_W, 10, -8, 1), ldx(BPF_DW, 0, 10, -8), exit()];
    assert_eq!(rule(&p), Rule::UninitStack { off: -4 });
    // Written on one path only.
    let p = [
        jmp_imm(BPF_JEQ, 1, 0, 1),
        st(BPF_DW, 10, -8, 1),
        ldx(BPF_DW, 0, 10, -8),
        exit(),
    ];
    assert_eq!(rule(&p), Rule::UninitStack { off: -8 });
}

#[test]
fn stack_out_of_range() {
    let p = [stx(BPF_DW, 10, 1, -520), mov64_imm(0, 0), exit()];
    assert_eq!(rule(&p), Rule::StackOutOfRange { off: -520, size: 8 });
    // Crossing the frame pointer.
    let p = [st(BPF_W, 10, -2, 0), mov64_imm(0, 0), exit()];
    let e = refused(&p, &[]);
    assert_eq!(e.rule, Rule::StackOutOfRange { off: -2, size: 4 });
    assert_eq!(
        e.to_string(),
        "insn 0: stack access of 4 bytes at r10-2 outside [-512, 0)"
    );
}

#[test]
fn frame_pointer_write() {
    assert_eq!(rule(&[mov64_imm(10, 0), exit()]), Rule::FramePointerWrite);
    assert_eq!(
        rule(&[ldx(BPF_W, 10, 1, 0), exit()]),
        Rule::FramePointerWrite
    );
}

#[test]
fn r0_not_set_at_exit() {
    assert_eq!(rule(&[exit()]), Rule::R0NotSet);
    let p = [jmp_imm(BPF_JEQ, 1, 0, 1), mov64_imm(0, 0), exit()];
    assert_eq!(rule(&p), Rule::R0NotSet);
}

#[test]
fn pointer_arithmetic() {
    let p = [
        mov64_reg(2, 10),
        alu64_imm(BPF_MUL, 2, 2),
        mov64_imm(0, 0),
        exit(),
    ];
    assert_eq!(rule(&p), Rule::PointerArithmetic { reg: 2 });
    // A variable offset on the stack pointer.
    let p = [
        mov64_imm(3, 8),
        mov64_reg(2, 10),
        alu64_reg(BPF_ADD, 2, 3),
        mov64_imm(0, 0),
        exit(),
    ];
    assert_eq!(rule(&p), Rule::PointerArithmetic { reg: 2 });
    // Truncating the context pointer.
    let p = [alu32_imm(BPF_ADD, 1, 4), mov64_imm(0, 0), exit()];
    assert_eq!(rule(&p), Rule::PointerArithmetic { reg: 1 });
}

#[test]
fn pointer_moved_outside_region() {
    let p = [
        mov64_reg(2, 10),
        alu64_imm(BPF_ADD, 2, -600),
        mov64_imm(0, 0),
        exit(),
    ];
    assert_eq!(rule(&p), Rule::PointerOffset { reg: 2, off: -600 });
    let p = [alu64_imm(BPF_ADD, 1, 25), mov64_imm(0, 0), exit()];
    assert_eq!(rule(&p), Rule::PointerOffset { reg: 1, off: 25 });
}

#[test]
fn map_handle_dereferenced() {
    let p = prog(&[&ld_map(1, 0), &[ldx(BPF_DW, 0, 1, 0), exit()]]);
    assert_eq!(rule(&p), Rule::MapHandleUse { reg: 1 });
    let p = prog(&[
        &ld_map(1, 0),
        &[alu64_imm(BPF_ADD, 1, 8), mov64_imm(0, 0), exit()],
    ]);
    assert_eq!(rule(&p), Rule::MapHandleUse { reg: 1 });
}

/// `*(u32 *)(r10 - 4) = 0; r2 = r10 - 4`: a key on the stack.
const KEY: [Insn; 3] = [
    st(BPF_W, 10, -4, 0),
    mov64_reg(2, 10),
    alu64_imm(BPF_ADD, 2, -4),
];

#[test]
fn map_helper_without_map_handle() {
    let p = prog(&[
        &KEY,
        &[mov64_imm(1, 0), call(BPF_FUNC_MAP_LOOKUP_ELEM), exit()],
    ]);
    let e = refused(&p, &[ARRAY]);
    assert_eq!(e.rule, Rule::NotMapHandle);
    assert_eq!(e.insn, 4);
    // A handle spilled and reloaded keeps its kind; one that went through
    // arithmetic would not.
    let p = prog(&[
        &ld_map(6, 0),
        &[stx(BPF_DW, 10, 6, -16)],
        &KEY,
        &[
            ldx(BPF_DW, 1, 10, -16),
            call(BPF_FUNC_MAP_LOOKUP_ELEM),
            exit(),
        ],
    ]);
    assert!(check(&p, &[ARRAY]).is_ok());
}

#[test]
fn helper_argument_kind() {
    let p = prog(&[
        &[mov64_reg(6, 1)],
        &ld_map(1, 0),
        &[mov64_reg(2, 6), call(BPF_FUNC_MAP_LOOKUP_ELEM), exit()],
    ]);
    assert_eq!(
        rule(&p),
        Rule::HelperArg {
            reg: 2,
            what: "a pointer to the key"
        }
    );
}

#[test]
fn helper_reads_uninitialised_key() {
    let p = prog(&[
        &ld_map(1, 0),
        &[mov64_reg(2, 10), alu64_imm(BPF_ADD, 2, -4)],
        &[call(BPF_FUNC_MAP_LOOKUP_ELEM), exit()],
    ]);
    assert_eq!(rule(&p), Rule::UninitStack { off: -4 });
}

#[test]
fn context_store() {
    let p = [st(BPF_W, 1, 0, 0), mov64_imm(0, 0), exit()];
    assert_eq!(rule(&p), Rule::ContextWrite);
    let p = [
        mov64_imm(2, 1),
        atomic_add(BPF_W, 1, 2, 4),
        mov64_imm(0, 0),
        exit(),
    ];
    assert_eq!(rule(&p), Rule::ContextWrite);
}

#[test]
fn context_load_at_bad_offset() {
    let p = [ldx(BPF_W, 0, 1, 2), exit()];
    let e = refused(&p, &[]);
    assert_eq!(e.rule, Rule::ContextField { off: 2, size: 4 });
    assert_eq!(
        e.to_string(),
        "insn 0: context load of 4 bytes at offset 2 is not a field"
    );
    // Wrong size, past the end, and the restart context's padding.
    assert_eq!(
        rule(&[ldx(BPF_DW, 0, 1, 0), exit()]),
        Rule::ContextField { off: 0, size: 8 }
    );
    assert_eq!(
        rule(&[ldx(BPF_W, 0, 1, 24), exit()]),
        Rule::ContextField { off: 24, size: 4 }
    );
    let e = verify(&[ldx(BPF_W, 0, 1, 12), exit()], HookKind::Restart, &[]).unwrap_err();
    assert_eq!(e.rule, Rule::ContextField { off: 12, size: 4 });
}

/// A lookup in map 0 with a zero u32 key; the result in r0.
fn lookup() -> Vec<Insn> {
    prog(&[&KEY, &ld_map(1, 0), &[call(BPF_FUNC_MAP_LOOKUP_ELEM)]])
}

#[test]
fn maybe_null_dereferenced() {
    let p = prog(&[&lookup(), &[ldx(BPF_DW, 0, 0, 0), exit()]]);
    assert_eq!(rule(&p), Rule::MaybeNull { reg: 0 });
    let p = prog(&[&lookup(), &[alu64_imm(BPF_ADD, 0, 8), exit()]]);
    assert_eq!(rule(&p), Rule::MaybeNull { reg: 0 });
}

#[test]
fn null_check_covers_copies() {
    // r6 = r0; if r0 == 0 goto out; *(u64 *)r6 += 1 (through the copy).
    let p = prog(&[
        &lookup(),
        &[
            mov64_reg(6, 0),
            jmp_imm(BPF_JEQ, 0, 0, 2),
            mov64_imm(1, 1),
            atomic_add(BPF_DW, 6, 1, 0),
        ],
        &RET0,
    ]);
    let info = check(&p, &[ARRAY]).unwrap();
    assert_eq!(info.maps_used, 1);
    assert_eq!(info.helpers_used, 1 << BPF_FUNC_MAP_LOOKUP_ELEM);
    assert_eq!(info.stack_depth, 4);
}

#[test]
fn mixed_kinds_at_join() {
    let p = [
        mov64_reg(2, 10),
        jmp_imm(BPF_JEQ, 1, 0, 1),
        mov64_reg(2, 1),
        ldx(BPF_DW, 0, 2, -8),
        exit(),
    ];
    assert_eq!(rule(&p), Rule::MixedKinds { reg: 2 });
}

/// `n` conditional jumps, each to its own target after all of them.
fn branches(n: usize) -> Vec<Insn> {
    // Insn j jumps to 2n + j.
    let mut p: Vec<Insn> = (0..n)
        .map(|j| jmp_imm(BPF_JEQ, 1, j as i32, (2 * n - 1) as i16))
        .collect();
    p.resize(3 * n, mov64_imm(0, 0));
    p.push(exit());
    p
}

#[test]
fn too_many_pending_branches() {
    assert_eq!(
        refused(&branches(MAX_PENDING + 1), &[]),
        VerifyError {
            insn: MAX_PENDING,
            rule: Rule::TooManyBranches
        }
    );
    assert!(check(&branches(MAX_PENDING), &[]).is_ok());
}

// ------------------------------------------------------------ passing

#[test]
fn restart_policy_passes() {
    let p = [
        ldx(BPF_W, 2, 1, RESTART_REASON as i16),
        mov64_imm(0, 0),
        jmp_imm(BPF_JNE, 2, REASON_TRIPLE_FAULT as i32, 3),
        ldx(BPF_W, 3, 1, RESTART_RESTARTS as i16),
        jmp_imm(BPF_JGE, 3, 2, 1),
        mov64_imm(0, 1),
        exit(),
    ];
    assert!(verify(&p, HookKind::Restart, &[]).is_ok());
    // The same loads are not fields of a packet context.
    assert!(verify(&p, HookKind::Packet, &[]).is_err());
}

#[test]
fn hash_map_program_passes() {
    // key (8 bytes) at r10-8, value (16 bytes) at r10-24.
    let p = prog(&[
        &[
            st(BPF_DW, 10, -8, 42),
            st(BPF_DW, 10, -24, 7),
            st(BPF_DW, 10, -16, 0),
        ],
        &ld_map(1, 0),
        &[
            mov64_reg(2, 10),
            alu64_imm(BPF_ADD, 2, -8),
            mov64_reg(3, 10),
            alu64_imm(BPF_ADD, 3, -24),
            mov64_imm(4, 0),
            call(BPF_FUNC_MAP_UPDATE_ELEM),
        ],
        &ld_map(1, 0),
        &[
            mov64_reg(2, 10),
            alu64_imm(BPF_ADD, 2, -8),
            call(BPF_FUNC_MAP_DELETE_ELEM),
        ],
        &RET0,
    ]);
    let info = check(&p, &[HASH]).unwrap();
    assert_eq!(info.stack_depth, 24);
    // The value is 16 bytes: with only 8 written the update reads garbage.
    let mut short = p.clone();
    short[2] = mov64_imm(0, 0);
    assert_eq!(
        refused(&short, &[HASH]).rule,
        Rule::UninitStack { off: -16 }
    );
}

#[test]
fn packet_pointers_are_runtime_checked_scalars() {
    let p = [
        ldx(BPF_W, 2, 1, XDP_DATA as i16),
        ldx(BPF_B, 0, 2, 100),
        exit(),
    ];
    assert!(check(&p, &[]).is_ok());
}

#[test]
fn unreachable_code_is_not_flowed() {
    // The instruction after exit is never reached; it only has to be well formed.
    let p = [mov64_imm(0, 0), exit(), mov64_reg(0, 7), exit()];
    assert_eq!(check(&p, &[]).unwrap().reachable, 2);
}

#[test]
fn messages_name_insn_and_rule() {
    let e = VerifyError {
        insn: 3,
        rule: Rule::UninitRegister { reg: 4 },
    };
    assert_eq!(
        format!("{e}"),
        "insn 3: r4 is read before it is written on every path"
    );
    assert_eq!(
        VerifyError {
            insn: 0,
            rule: Rule::Empty
        }
        .to_string(),
        "the program is empty"
    );
}

// ------------------------------------------------------------ properties

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Opcodes the verifier allows, plus a few it refuses.
    const CODES: &[u8] = &[
        0x07, 0x0f, 0x17, 0x1f, 0x27, 0x2f, 0x37, 0x3f, 0x47, 0x4f, 0x57, 0x5f, 0x67, 0x6f, 0x77,
        0x7f, 0x87, 0x97, 0x9f, 0xa7, 0xaf, 0xb7, 0xbf, 0xc7, 0xcf, 0x04, 0x0c, 0x34, 0x3c, 0x94,
        0x9c, 0xb4, 0xbc, 0xd4, 0xdc, 0x05, 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x45, 0x55, 0x5d, 0x65,
        0xa5, 0xb5, 0xc5, 0xd5, 0x16, 0x1e, 0x56, 0x85, 0x95, 0x18, 0x61, 0x69, 0x71, 0x79, 0x62,
        0x6a, 0x72, 0x7a, 0x63, 0x6b, 0x73, 0x7b, 0xc3, 0xdb, 0x20, 0x28, 0x30, 0x40, 0xff, 0x00,
    ];

    fn insn() -> impl Strategy<Value = Insn> {
        (
            prop_oneof![proptest::sample::select(CODES), any::<u8>()],
            0u8..12,
            0u8..12,
            prop_oneof![-4i16..8, any::<i16>(), -520i16..0],
            prop_oneof![0i32..3, -16i32..32, any::<i32>(), Just(16), Just(64)],
        )
            .prop_map(|(code, dst, src, off, imm)| Insn::new(code, dst, src, off, imm))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any instruction stream: a verdict, never a panic.
        #[test]
        fn never_panics(p in proptest::collection::vec(insn(), 0..64), kind in 1u32..5) {
            let kind = HookKind::from_u32(kind).unwrap();
            let _ = verify(&p, kind, &[ARRAY, HASH]);
        }

        /// Wire bytes decode to instructions the verifier judges without panicking.
        #[test]
        fn bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut out = [Insn::default(); 64];
            if let Some(n) = decode_into(&bytes, &mut out) {
                let _ = verify(&out[..n], HookKind::Packet, &[HASH]);
            }
        }
    }
}

/// The verifier runs on a hypervisor core's stack (64 KiB at boot): its
/// table of pending states must stay small.
#[test]
fn verifier_state_fits_a_small_stack() {
    let state = core::mem::size_of::<super::state::State>();
    let pending = core::mem::size_of::<super::state::Pending>();
    assert!(state <= 400, "{state} bytes per state");
    assert!(pending <= 16 * 1024, "{pending} bytes of pending states");
}
