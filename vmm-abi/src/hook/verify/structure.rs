//! The structural pass: each instruction on its own against the allow-list (opcode, fields that must be zero, registers, immediates, helpers for the hook kind), `lddw` pairs, and every jump forward, in range and not into an `lddw`'s second half.

#![forbid(unsafe_code)]

use super::{Rule, VerifyError};
use crate::hook::MAX_INSNS;
use crate::hook::context::HookKind;
use crate::hook::insn::*;
use crate::hook::map::MapDef;

/// The slots that are second halves of an `lddw` (a bit per slot).
pub(super) struct Halves([u64; MAX_INSNS / 64]);

impl Halves {
    /// Whether slot `i` is the second half of an `lddw`.
    pub(super) fn contains(&self, i: usize) -> bool {
        self.0
            .get(i / 64)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    fn insert(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1u64 << (i % 64);
        }
    }
}

/// Checks every instruction; returns the `lddw` second halves.
pub(super) fn check(prog: &[Insn], kind: HookKind, maps: &[MapDef]) -> Result<Halves, VerifyError> {
    let mut halves = Halves([0; MAX_INSNS / 64]);
    let mut i = 0;
    while i < prog.len() {
        if prog[i].is_lddw() {
            halves.insert(i + 1);
            i += 1;
        }
        i += 1;
    }
    let mut i = 0;
    while i < prog.len() {
        let err = |rule| VerifyError { insn: i, rule };
        one(prog, i, kind, maps, &halves).map_err(err)?;
        i += if prog[i].is_lddw() { 2 } else { 1 };
    }
    Ok(halves)
}

fn reg(r: u8) -> Result<(), Rule> {
    if r < REGISTERS {
        Ok(())
    } else {
        Err(Rule::BadRegister { reg: r })
    }
}

fn zero(v: i64, field: &'static str) -> Result<(), Rule> {
    if v == 0 {
        Ok(())
    } else {
        Err(Rule::ReservedField { field })
    }
}

/// A register the instruction writes: it exists and is not `r10`.
fn written(r: u8) -> Result<(), Rule> {
    reg(r)?;
    if r == R10 {
        return Err(Rule::FramePointerWrite);
    }
    Ok(())
}

fn one(
    prog: &[Insn],
    i: usize,
    kind: HookKind,
    maps: &[MapDef],
    halves: &Halves,
) -> Result<(), Rule> {
    let insn = prog[i];
    let code = insn.code;
    match insn.class() {
        BPF_ALU | BPF_ALU64 => alu(insn),
        BPF_JMP | BPF_JMP32 => jump(prog, i, kind, halves),
        BPF_LD => ld(prog, i, maps),
        BPF_LDX => {
            if code & MODE_MASK != BPF_MEM {
                return Err(Rule::UnknownOpcode { code });
            }
            written(insn.dst)?;
            reg(insn.src)?;
            zero(insn.imm.into(), "imm")
        }
        BPF_ST => {
            if code & MODE_MASK != BPF_MEM {
                return Err(Rule::UnknownOpcode { code });
            }
            reg(insn.dst)?;
            zero(insn.src.into(), "src")
        }
        _ => {
            // BPF_STX
            reg(insn.dst)?;
            reg(insn.src)?;
            match code & MODE_MASK {
                BPF_MEM => zero(insn.imm.into(), "imm"),
                BPF_ATOMIC if code == ATOMIC_DW || code == ATOMIC_W => {
                    if insn.imm != i32::from(BPF_ADD) {
                        return Err(Rule::BadImmediate {
                            what: "atomic operation (only add)",
                            imm: insn.imm,
                        });
                    }
                    Ok(())
                }
                _ => Err(Rule::UnknownOpcode { code }),
            }
        }
    }
}

fn alu(insn: Insn) -> Result<(), Rule> {
    let code = insn.code;
    let op = code & OP_MASK;
    let unknown = Err(Rule::UnknownOpcode { code });
    match op {
        BPF_NEG => {
            if code & SOURCE_MASK != BPF_K {
                return unknown;
            }
            zero(insn.src.into(), "src")?;
            zero(insn.imm.into(), "imm")?;
        }
        BPF_END => {
            if insn.class() != BPF_ALU {
                return unknown;
            }
            zero(insn.src.into(), "src")?;
            if !matches!(insn.imm, 16 | 32 | 64) {
                return Err(Rule::BadImmediate {
                    what: "byte swap width (16, 32 or 64)",
                    imm: insn.imm,
                });
            }
        }
        BPF_ADD | BPF_SUB | BPF_MUL | BPF_DIV | BPF_OR | BPF_AND | BPF_LSH | BPF_RSH | BPF_MOD
        | BPF_XOR | BPF_MOV | BPF_ARSH => {
            if code & SOURCE_MASK == BPF_X {
                reg(insn.src)?;
                zero(insn.imm.into(), "imm")?;
            } else {
                zero(insn.src.into(), "src")?;
            }
        }
        _ => return unknown,
    }
    written(insn.dst)?;
    // Signed division and sign-extending moves (cpu v4) put a nonzero
    // value here; they are not supported.
    zero(insn.off.into(), "off")
}

fn jump(prog: &[Insn], i: usize, kind: HookKind, halves: &Halves) -> Result<(), Rule> {
    let insn = prog[i];
    let code = insn.code;
    let op = code & OP_MASK;
    let jmp64 = insn.class() == BPF_JMP;
    let unknown = Err(Rule::UnknownOpcode { code });
    match op {
        BPF_CALL | BPF_EXIT | BPF_JA if !jmp64 || code & SOURCE_MASK != BPF_K => unknown,
        BPF_CALL => {
            zero(insn.dst.into(), "dst")?;
            zero(insn.off.into(), "off")?;
            match insn.src {
                0 => {}
                BPF_PSEUDO_CALL => return Err(Rule::BpfToBpfCall),
                src => return Err(Rule::UnknownPseudo { src }),
            }
            let id = insn.imm as u32;
            if id == BPF_FUNC_TAIL_CALL {
                return Err(Rule::TailCall);
            }
            if helper_name(id).is_none() {
                return Err(Rule::UnknownHelper { id });
            }
            if !kind.allows(id) {
                return Err(Rule::HelperNotAllowed { helper: id, kind });
            }
            Ok(())
        }
        BPF_EXIT => {
            zero(insn.dst.into(), "dst")?;
            zero(insn.src.into(), "src")?;
            zero(insn.off.into(), "off")?;
            zero(insn.imm.into(), "imm")
        }
        BPF_JA => {
            zero(insn.dst.into(), "dst")?;
            zero(insn.src.into(), "src")?;
            zero(insn.imm.into(), "imm")?;
            target(prog, i, halves).map(|_| ())
        }
        BPF_JEQ | BPF_JGT | BPF_JGE | BPF_JSET | BPF_JNE | BPF_JSGT | BPF_JSGE | BPF_JLT
        | BPF_JLE | BPF_JSLT | BPF_JSLE => {
            reg(insn.dst)?;
            if code & SOURCE_MASK == BPF_X {
                reg(insn.src)?;
                zero(insn.imm.into(), "imm")?;
            } else {
                zero(insn.src.into(), "src")?;
            }
            target(prog, i, halves).map(|_| ())
        }
        _ => unknown,
    }
}

/// The target of the jump at `i`: forward, inside, not an `lddw` half.
pub(super) fn target(prog: &[Insn], i: usize, halves: &Halves) -> Result<usize, Rule> {
    let t = i as i64 + 1 + i64::from(prog[i].off);
    if t <= i as i64 {
        // `t` is in 0..=i here unless it is negative.
        return Err(match usize::try_from(t) {
            Ok(target) => Rule::BackEdge { target },
            Err(_) => Rule::JumpOutOfRange { target: t },
        });
    }
    let target = t as usize;
    if target >= prog.len() {
        return Err(Rule::JumpOutOfRange { target: t });
    }
    if halves.contains(target) {
        return Err(Rule::JumpIntoLddw { target });
    }
    Ok(target)
}

fn ld(prog: &[Insn], i: usize, maps: &[MapDef]) -> Result<(), Rule> {
    let insn = prog[i];
    let code = insn.code;
    match code & MODE_MASK {
        BPF_ABS | BPF_IND => return Err(Rule::LegacyPacketLoad { code }),
        _ if code != LDDW => return Err(Rule::UnknownOpcode { code }),
        _ => {}
    }
    let Some(&second) = prog.get(i + 1) else {
        return Err(Rule::LddwTruncated);
    };
    if second.code != 0 || second.dst != 0 || second.src != 0 || second.off != 0 {
        return Err(Rule::LddwSecondHalf);
    }
    written(insn.dst)?;
    zero(insn.off.into(), "off")?;
    match insn.src {
        BPF_PSEUDO_NONE => Ok(()),
        BPF_PSEUDO_MAP_FD => {
            if second.imm != 0 {
                return Err(Rule::LddwSecondHalf);
            }
            let index = insn.imm as u32;
            if index as usize >= maps.len() {
                return Err(Rule::MapIndex {
                    index,
                    maps: maps.len(),
                });
            }
            Ok(())
        }
        src => Err(Rule::UnknownPseudo { src }),
    }
}
