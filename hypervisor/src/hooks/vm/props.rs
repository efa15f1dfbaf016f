//! Property tests of the interpreter: ALU and jump semantics against a reference written the obvious way, random programs that pass the verifier always end (returned or aborted, never a panic), and arbitrary unverified instruction streams never panic it either.

#![forbid(unsafe_code)]

use super::tests::{ENV, maps_for, prog, run, unchecked};
use super::*;
use crate::hooks::Verified;
use crate::hooks::layout::{MAP_BASE, PACKET_BASE, xdp_md};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use std::vec::Vec;
use vmm_abi::hook::HookKind;
use vmm_abi::hook::asm::*;
use vmm_abi::hook::map::{MapDef, MapKind};

// ------------------------------------------------------------ reference

/// The reference result of `dst op src` (`wide`: 64-bit, else 32-bit with
/// the result zero-extended), written independently of `alu.rs` (which
/// uses `checked_div`; here the spec's wording is spelled out).
#[allow(clippy::manual_checked_ops)]
fn reference_alu(op: u8, wide: bool, a: u64, b: u64) -> u64 {
    if wide {
        match op {
            BPF_ADD => a.wrapping_add(b),
            BPF_SUB => a.wrapping_sub(b),
            BPF_MUL => a.wrapping_mul(b),
            BPF_DIV => {
                if b == 0 {
                    0
                } else {
                    a / b
                }
            }
            BPF_MOD => {
                if b == 0 {
                    a
                } else {
                    a % b
                }
            }
            BPF_OR => a | b,
            BPF_AND => a & b,
            BPF_XOR => a ^ b,
            BPF_LSH => a.wrapping_shl(b as u32),
            BPF_RSH => a.wrapping_shr(b as u32),
            BPF_ARSH => (a as i64).wrapping_shr(b as u32) as u64,
            BPF_NEG => 0u64.wrapping_sub(a),
            BPF_MOV => b,
            _ => unreachable!(),
        }
    } else {
        let (a, b) = (a as u32, b as u32);
        u64::from(match op {
            BPF_ADD => a.wrapping_add(b),
            BPF_SUB => a.wrapping_sub(b),
            BPF_MUL => a.wrapping_mul(b),
            BPF_DIV => {
                if b == 0 {
                    0
                } else {
                    a / b
                }
            }
            BPF_MOD => {
                if b == 0 {
                    a
                } else {
                    a % b
                }
            }
            BPF_OR => a | b,
            BPF_AND => a & b,
            BPF_XOR => a ^ b,
            BPF_LSH => a.wrapping_shl(b),
            BPF_RSH => a.wrapping_shr(b),
            BPF_ARSH => (a as i32).wrapping_shr(b) as u32,
            BPF_NEG => 0u32.wrapping_sub(a),
            BPF_MOV => b,
            _ => unreachable!(),
        })
    }
}

/// The reference byte order conversion on a little-endian BPF target.
fn reference_end(to_be: bool, bits: i32, a: u64) -> u64 {
    let bytes = a.to_le_bytes();
    let n = (bits / 8) as usize;
    let mut out = [0u8; 8];
    for i in 0..n {
        out[i] = if to_be { bytes[n - 1 - i] } else { bytes[i] };
    }
    u64::from_le_bytes(out)
}

/// The reference outcome of a conditional jump.
fn reference_jmp(op: u8, wide: bool, a: u64, b: u64) -> bool {
    let (ua, ub, sa, sb) = if wide {
        (a as u128, b as u128, a as i64 as i128, b as i64 as i128)
    } else {
        (
            a as u32 as u128,
            b as u32 as u128,
            a as u32 as i32 as i128,
            b as u32 as i32 as i128,
        )
    };
    match op {
        BPF_JEQ => ua == ub,
        BPF_JNE => ua != ub,
        BPF_JGT => ua > ub,
        BPF_JGE => ua >= ub,
        BPF_JLT => ua < ub,
        BPF_JLE => ua <= ub,
        BPF_JSET => ua & ub != 0,
        BPF_JSGT => sa > sb,
        BPF_JSGE => sa >= sb,
        BPF_JSLT => sa < sb,
        BPF_JSLE => sa <= sb,
        _ => unreachable!(),
    }
}

pub(crate) const ALU_OPS: [u8; 13] = [
    BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_NEG, BPF_MOD,
    BPF_XOR, BPF_MOV, BPF_ARSH,
];
pub(crate) const JMP_OPS: [u8; 11] = [
    BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT, BPF_JSGE, BPF_JLT, BPF_JLE, BPF_JSLT,
    BPF_JSLE,
];

/// Interesting operands: small, edge and random values.
pub(crate) fn operand() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(i64::MIN as u64),
        Just(0xffff_ffff),
        Just(0x8000_0000),
        0u64..70,
        any::<u64>(),
    ]
}

fn exec(insns: &[Insn]) -> u64 {
    let p = Verified::new(insns, HookKind::Exit, &[]).expect("verifies");
    let ctx = [0u8; vmm_abi::hook::context::EXIT_CTX_SIZE];
    match run(&p, &ctx, None, &mut maps_for(&[], 1), &ENV) {
        Outcome::Returned { ret, .. } => ret,
        Outcome::Aborted(f) => panic!("aborted: {f}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Every ALU64/ALU32 operation, by register and by immediate.
    #[test]
    fn alu_matches_reference(
        op in proptest::sample::select(&ALU_OPS[..]),
        wide: bool,
        by_reg: bool,
        a in operand(),
        b in operand(),
    ) {
        let imm = b as i32;
        let insn = match (op, wide, by_reg) {
            (BPF_NEG, true, _) => Insn::new(BPF_ALU64 | BPF_NEG, 0, 0, 0, 0),
            (BPF_NEG, false, _) => Insn::new(BPF_ALU | BPF_NEG, 0, 0, 0, 0),
            (_, true, true) => alu64_reg(op, 0, 1),
            (_, true, false) => alu64_imm(op, 0, imm),
            (_, false, true) => alu32_reg(op, 0, 1),
            (_, false, false) => alu32_imm(op, 0, imm),
        };
        // An immediate is sign-extended for 64-bit operations.
        let src = match (by_reg, wide) {
            (true, _) => b,
            (false, true) => i64::from(imm) as u64,
            (false, false) => u64::from(imm as u32),
        };
        let p = prog(&[&lddw(0, a), &lddw(1, b), &[insn, exit()]]);
        prop_assert_eq!(exec(&p), reference_alu(op, wide, a, src));
    }

    /// Byte order conversions of every width.
    #[test]
    fn end_matches_reference(to_be: bool, w in 0usize..3, a in operand()) {
        let bits = [16, 32, 64][w];
        let insn = if to_be { be(0, bits) } else { le(0, bits) };
        let p = prog(&[&lddw(0, a), &[insn, exit()]]);
        prop_assert_eq!(exec(&p), reference_end(to_be, bits, a));
    }

    /// Every conditional jump, 64 and 32 bits, by register and immediate.
    #[test]
    fn jumps_match_reference(
        op in proptest::sample::select(&JMP_OPS[..]),
        wide: bool,
        by_reg: bool,
        a in operand(),
        b in operand(),
    ) {
        let imm = b as i32;
        let jump = match (wide, by_reg) {
            (true, true) => jmp_reg(op, 2, 3, 1),
            (true, false) => jmp_imm(op, 2, imm, 1),
            (false, true) => jmp32_reg(op, 2, 3, 1),
            (false, false) => jmp32_imm(op, 2, imm, 1),
        };
        let src = if by_reg { b } else { i64::from(imm) as u64 };
        let p = prog(&[
            &lddw(2, a),
            &lddw(3, b),
            &[mov64_imm(0, 0), jump, exit(), mov64_imm(0, 1), exit()],
        ]);
        prop_assert_eq!(exec(&p) == 1, reference_jmp(op, wide, a, src));
    }
}

#[test]
fn division_by_zero_is_defined() {
    let run1 = |insn: Insn| exec(&prog(&[&lddw(0, 0xffff_ffff_0000_0007), &[insn, exit()]]));
    assert_eq!(run1(alu64_imm(BPF_DIV, 0, 0)), 0);
    assert_eq!(run1(alu64_imm(BPF_MOD, 0, 0)), 0xffff_ffff_0000_0007);
    assert_eq!(run1(alu32_imm(BPF_DIV, 0, 0)), 0);
    // 32-bit modulo by zero keeps the low half, zero-extended.
    assert_eq!(run1(alu32_imm(BPF_MOD, 0, 0)), 7);
    // Shifts are masked: 64-bit by 65 is by 1, 32-bit by 33 is by 1.
    assert_eq!(run1(alu64_imm(BPF_RSH, 0, 65)), 0x7fff_ffff_8000_0003);
    assert_eq!(run1(alu32_imm(BPF_LSH, 0, 33)), 14);
}

// ------------------------------------------------------------ random programs

pub(crate) const MAPS: [MapDef; 2] = [
    MapDef {
        kind: MapKind::Array,
        key_size: 4,
        value_size: 16,
        max_entries: 4,
    },
    MapDef {
        kind: MapKind::Hash,
        key_size: 4,
        value_size: 8,
        max_entries: 8,
    },
];

/// Registers the random body uses (r1 stays the context, r9 a copy of it).
const POOL: [u8; 8] = [0, 2, 3, 4, 5, 6, 7, 8];

fn reg() -> impl Strategy<Value = u8> {
    proptest::sample::select(&POOL[..])
}

fn size() -> impl Strategy<Value = u8> {
    proptest::sample::select(&[BPF_B, BPF_H, BPF_W, BPF_DW][..])
}

/// Values a register starts with: numbers and addresses near every region.
fn start_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..16,
        (0u64..80).prop_map(|o| PACKET_BASE + o),
        (0u64..600).prop_map(|o| STACK_BASE + o),
        (0u64..40).prop_map(|o| CTX_BASE + o),
        (0u64..80).prop_map(|o| MAP_BASE + o),
        (0u64..80).prop_map(|o| MAP_BASE + (1 << 24) + o),
        any::<u64>(),
    ]
}

/// One piece of a random body; jumps carry a raw distance fixed up later.
fn piece() -> impl Strategy<Value = Vec<Insn>> {
    let alu = (
        proptest::sample::select(&ALU_OPS[..]),
        any::<bool>(),
        any::<bool>(),
        reg(),
        reg(),
        any::<i32>(),
    )
        .prop_map(|(op, wide, by_reg, d, s, imm)| {
            let class = if wide { BPF_ALU64 } else { BPF_ALU };
            let insn = match (op, by_reg) {
                (BPF_NEG, _) => Insn::new(class | BPF_NEG, d, 0, 0, 0),
                (_, true) => Insn::new(class | op | BPF_X, d, s, 0, 0),
                (_, false) => Insn::new(class | op, d, 0, 0, imm),
            };
            std::vec![insn]
        });
    let jump = (
        proptest::sample::select(&JMP_OPS[..]),
        any::<bool>(),
        any::<bool>(),
        reg(),
        reg(),
        -8i32..8,
        0i16..12,
    )
        .prop_map(|(op, wide, by_reg, d, s, imm, dist)| {
            let class = if wide { BPF_JMP } else { BPF_JMP32 };
            std::vec![if by_reg {
                Insn::new(class | op | BPF_X, d, s, dist, 0)
            } else {
                Insn::new(class | op | BPF_K, d, 0, dist, imm)
            }]
        });
    let stack = (size(), reg(), 1i16..9, any::<bool>()).prop_map(|(sz, r, slot, load)| {
        let off = -8 * slot;
        std::vec![if load {
            ldx(sz, r, 10, off)
        } else {
            stx(sz, 10, r, off)
        }]
    });
    let ctx = (reg(), 0usize..6).prop_map(|(r, f)| std::vec![ldx(BPF_W, r, 9, (4 * f) as i16)]);
    let scalar_mem =
        (size(), reg(), reg(), -16i16..64, 0u8..4).prop_map(|(sz, a, v, off, kind)| {
            std::vec![match kind {
                0 => ldx(sz, v, a, off),
                1 => stx(sz, a, v, off),
                2 => st(sz, a, off, 0x55),
                _ => atomic_add(if sz == BPF_DW { BPF_DW } else { BPF_W }, a, v, off),
            }]
        });
    let map_op = (0u32..2, 0i32..6, reg()).prop_map(|(m, key, into)| {
        prog(&[
            &[st(BPF_W, 10, -4, key)],
            &ld_map(1, m),
            &[
                mov64_reg(2, 10),
                alu64_imm(BPF_ADD, 2, -4),
                call(BPF_FUNC_MAP_LOOKUP_ELEM),
            ],
            &[jmp_imm(BPF_JEQ, 0, 0, 1), ldx(BPF_W, into, 0, 0)],
            // Calls clobber r1..r5: give them values again.
            &[
                mov64_reg(1, 9),
                mov64_imm(2, 1),
                mov64_imm(3, 2),
                mov64_imm(4, 3),
                mov64_imm(5, 4),
            ],
        ])
    });
    prop_oneof![
        4 => alu,
        3 => jump,
        2 => stack,
        1 => ctx,
        2 => scalar_mem,
        1 => map_op,
    ]
}

/// A random packet-hook program: every pool register and 64 stack bytes
/// initialised, a random body, `exit`; jumps fixed up to land in range.
pub(crate) fn program() -> impl Strategy<Value = Vec<Insn>> {
    (
        proptest::collection::vec(start_value(), POOL.len()),
        proptest::collection::vec(piece(), 0..30),
    )
        .prop_map(|(starts, body)| {
            let mut p = std::vec![mov64_reg(9, 1)];
            for (&r, &v) in POOL.iter().zip(&starts) {
                p.extend(lddw(r, v));
            }
            for slot in 1..=8 {
                p.push(stx(BPF_DW, 10, POOL[slot % POOL.len()], -8 * slot as i16));
            }
            let body_start = p.len();
            p.extend(body.into_iter().flatten());
            p.push(exit());
            let end = p.len() - 1;
            for (i, insn) in p.iter_mut().enumerate().take(end).skip(body_start) {
                let op = insn.code & OP_MASK;
                let jump = matches!(insn.class(), BPF_JMP | BPF_JMP32);
                if jump && op != BPF_CALL && op != BPF_EXIT {
                    let room = (end - i) as i16; // targets i+1 ..= end
                    insn.off = insn.off.rem_euclid(room);
                }
            }
            p
        })
}

fn run_on_frame(p: &Verified<'_>) -> Outcome {
    let mut frame = std::vec![0xabu8; 64];
    let ctx = xdp_md(frame.len(), 1, 0, 2).unwrap().to_bytes();
    let mut maps = maps_for(&MAPS, 2);
    maps.update(1, &1u32.to_le_bytes(), &[9; 8], 0, 0).unwrap();
    run(
        p,
        &ctx,
        Some(&mut frame),
        &mut maps,
        &super::tests::TestEnv { ns: 5, core: 1 },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    /// A random program the verifier accepts runs to an end: it returns or
    /// aborts, executes each instruction at most once, and never panics.
    #[test]
    fn verified_programs_always_end(p in program()) {
        if let Ok(v) = Verified::new(&p, HookKind::Packet, &MAPS) {
            let o = run_on_frame(&v);
            prop_assert!(o.executed() as usize <= v.info().reachable);
        }
    }

    /// Any instruction stream, unverified: the interpreter still never
    /// panics and stops within the meter.
    #[test]
    fn unverified_streams_never_panic(
        raw in proptest::collection::vec((any::<u8>(), 0u8..16, 0u8..16, -4i16..16, any::<i32>()), 1..80),
        kind in 1u32..5,
    ) {
        let insns: Vec<Insn> = raw.into_iter().map(|(c, d, s, o, i)| Insn::new(c, d, s, o, i)).collect();
        let kind = HookKind::from_u32(kind).unwrap();
        let ctx = std::vec![0u8; kind.context_size()];
        let mut frame = [0u8; 64];
        let mut maps = maps_for(&MAPS, 1);
        let o = run(&unchecked(&insns, kind), &ctx, Some(&mut frame), &mut maps, &ENV);
        prop_assert!(o.executed() <= METER_LIMIT + 1);
    }
}

/// The generator is useful: most of its programs pass the verifier, and
/// both ends (returned and aborted) occur.
#[test]
fn random_programs_mostly_verify() {
    let mut runner = TestRunner::deterministic();
    let strategy = program();
    let (mut accepted, mut returned, mut aborted) = (0, 0, 0);
    for _ in 0..400 {
        let p = strategy.new_tree(&mut runner).unwrap().current();
        if let Ok(v) = Verified::new(&p, HookKind::Packet, &MAPS) {
            accepted += 1;
            match run_on_frame(&v) {
                Outcome::Returned { .. } => returned += 1,
                Outcome::Aborted(_) => aborted += 1,
            }
        }
    }
    assert!(accepted >= 200, "only {accepted} of 400 verified");
    assert!(
        returned > 20 && aborted > 20,
        "{returned} returned, {aborted} aborted"
    );
}

/// Runs `insns` decoded with or without fusion.
fn run_decoded(insns: &[Insn], fused: bool) -> Outcome {
    let v = unchecked(insns, HookKind::Packet);
    let mut ops = std::vec![super::op::Op::default(); insns.len()];
    if fused {
        super::op::decode(insns, &mut ops);
    } else {
        super::op::decode_unfused(insns, &mut ops);
    }
    let prog = crate::hooks::Program::from_decoded(v, &ops);
    let mut frame = std::vec![0x45u8; 40];
    let ctx = xdp_md(frame.len(), 1, 0, 2).unwrap().to_bytes();
    let mut maps = maps_for(&MAPS, 2);
    super::run(&prog, &ctx, Some(&mut frame), &mut maps, &ENV)
}

/// Clang's packet bounds check and a constant return, the sequences the
/// decoder fuses, with jumps that may land in their middle.
fn fusable() -> impl Strategy<Value = Vec<Insn>> {
    let piece = prop_oneof![
        (0u8..4, 0u8..4, -8i32..80, 0u8..4, 0i16..6).prop_map(|(d, s, k, e, off)| std::vec![
            mov64_reg(d, s),
            alu64_imm(BPF_ADD, d, k),
            jmp_reg(BPF_JGT, d, e, off),
        ]),
        (0i32..4).prop_map(|k| std::vec![mov64_imm(0, k), exit()]),
        (0u8..4, 0i16..3).prop_map(|(r, off)| std::vec![jmp_imm(BPF_JNE, r, 0, off)]),
        (0u8..4, 0i16..40).prop_map(|(r, off)| std::vec![ldx(BPF_B, r, 2, off)]),
    ];
    proptest::collection::vec(piece, 1..10).prop_map(|ps| {
        let mut p = std::vec![
            ldx(BPF_W, 2, 1, 0),
            ldx(BPF_W, 3, 1, 4),
            mov64_imm(0, 0),
            mov64_imm(1, 0),
        ];
        p.extend(ps.into_iter().flatten());
        p.push(exit());
        p
    })
}

proptest! {
    /// Fusion changes nothing a program can observe: the same return
    /// value, instruction count and fault (where and why), for programs
    /// full of fusable sequences and jumps into them.
    #[test]
    fn fused_ops_behave_as_the_instructions_they_replace(p in fusable()) {
        prop_assert_eq!(run_decoded(&p, true), run_decoded(&p, false));
    }
}
