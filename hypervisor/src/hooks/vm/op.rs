//! The pre-decoded program form: each eBPF instruction turned once, when the hook is built, into an [`Op`] whose operands, access size and absolute jump target are resolved, so a run does one dispatch per instruction and no decoding.
//!
//! Decoding is total: any instruction stream, verified or not, decodes,
//! and what cannot run becomes an op that faults when reached
//! ([`Op::Bad`], [`Op::BadJump`]). Every jump target an op holds is
//! forward and inside the program, checked here once; so a run's program
//! counter only grows and every run ends within the program's length,
//! whatever the instructions are. The common instructions of packet
//! filters (moves, adds, the bounds-check and equality jumps, loads by
//! size) have ops of their own; the rest go through the generic
//! arithmetic and comparison of [`super::alu`].

#![forbid(unsafe_code)]

use super::alu;
use crate::hooks::layout::MAP_HANDLE_BASE;
use vmm_abi::hook::Insn;
use vmm_abi::hook::insn::*;

/// A register number, reduced to 0..16 (`r11..=r15` exist only so that
/// any four bits index the register file in bounds).
pub type Reg = u8;

/// One decoded instruction. Jump targets are absolute instruction
/// indices, forward and inside the program. Fields are the instruction's
/// operands under their eBPF names (`dst`, `src`, `off`, `imm`; `base` is
/// a store's address register, `size` its bytes, `op` the opcode's
/// operation bits), so they are not documented one by one.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// An instruction that does not run (its opcode); also the second
    /// slot of `lddw` (code 0), which control never reaches in a
    /// verified program.
    Bad { code: u8 },
    /// A jump out of the program or not forward (its target).
    BadJump { target: i64 },
    /// `dst = imm` (64-bit move of an immediate).
    MovImm { dst: Reg, imm: u64 },
    /// `dst = src`.
    MovReg { dst: Reg, src: Reg },
    /// `dst += imm` (64-bit).
    AddImm { dst: Reg, imm: u64 },
    /// `dst += src` (64-bit).
    AddReg { dst: Reg, src: Reg },
    /// Any other 64-bit operation with an immediate (`op` valid).
    Alu64Imm { op: u8, dst: Reg, imm: u64 },
    /// Any other 64-bit operation on registers (`op` valid).
    Alu64Reg { op: u8, dst: Reg, src: Reg },
    /// A 32-bit operation with an immediate, zero-extended (`op` valid).
    Alu32Imm { op: u8, dst: Reg, imm: u32 },
    /// A 32-bit operation on registers, zero-extended (`op` valid).
    Alu32Reg { op: u8, dst: Reg, src: Reg },
    /// A byte swap (`bits` 16, 32 or 64).
    End { to_be: bool, bits: u8, dst: Reg },
    /// `lddw`: `dst = imm` (a map handle already resolved); skips the
    /// second slot.
    LdImm64 { dst: Reg, imm: u64 },
    /// `goto target`.
    Ja { target: u32 },
    /// `if dst == imm goto target`.
    JeqImm { dst: Reg, imm: u64, target: u32 },
    /// `if dst != imm goto target`.
    JneImm { dst: Reg, imm: u64, target: u32 },
    /// `if dst > src goto target` (unsigned; the packet bounds check).
    JgtReg { dst: Reg, src: Reg, target: u32 },
    /// Any other 64-bit comparison with an immediate (`op` valid).
    Jmp64Imm {
        op: u8,
        dst: Reg,
        imm: u64,
        target: u32,
    },
    /// Any other 64-bit comparison of registers (`op` valid).
    Jmp64Reg {
        op: u8,
        dst: Reg,
        src: Reg,
        target: u32,
    },
    /// A 32-bit comparison with an immediate (`op` valid).
    Jmp32Imm {
        op: u8,
        dst: Reg,
        imm: u32,
        target: u32,
    },
    /// A 32-bit comparison of registers (`op` valid).
    Jmp32Reg {
        op: u8,
        dst: Reg,
        src: Reg,
        target: u32,
    },
    /// `r0 = imm; exit`, fused (two slots; the second keeps its own op).
    Return { imm: u64 },
    /// `dst = src; dst += imm; if dst > end goto target`, fused: clang's
    /// packet bounds check (three slots; the other two keep their own
    /// ops, so a jump into the middle runs them one by one).
    BoundsCheck {
        dst: Reg,
        src: Reg,
        end: Reg,
        imm: i32,
        target: u32,
    },
    /// A helper call.
    Call { id: u32 },
    /// Return `r0`.
    Exit,
    /// `dst = *(u8 *)(src + off)`.
    LdxB { dst: Reg, src: Reg, off: i16 },
    /// `dst = *(u16 *)(src + off)`.
    LdxH { dst: Reg, src: Reg, off: i16 },
    /// `dst = *(u32 *)(src + off)`.
    LdxW { dst: Reg, src: Reg, off: i16 },
    /// `dst = *(u64 *)(src + off)`.
    LdxDw { dst: Reg, src: Reg, off: i16 },
    /// `*(size *)(base + off) = src`.
    Stx {
        size: u8,
        base: Reg,
        src: Reg,
        off: i16,
    },
    /// `*(size *)(base + off) = imm`.
    St {
        size: u8,
        base: Reg,
        off: i16,
        imm: u64,
    },
    /// `lock *(size *)(base + off) += src` (size 4 or 8).
    AtomicAdd {
        size: u8,
        base: Reg,
        src: Reg,
        off: i16,
    },
}

impl Default for Op {
    fn default() -> Self {
        Op::Bad { code: 0 }
    }
}

const _: () = assert!(core::mem::size_of::<Op>() <= 16, "an op stays two words");

/// Decodes `insns` into `out`, one op per instruction slot, then fuses
/// the common sequences ([`Op::Return`], [`Op::BoundsCheck`]); `out`
/// must be at least as long (the ops beyond the program are left alone).
pub fn decode(insns: &[Insn], out: &mut [Op]) {
    decode_unfused(insns, out);
    fuse(out.get_mut(..insns.len()).unwrap_or_default());
}

/// Replaces the first op of each fusable sequence by its fused op; the
/// sequence's other slots keep their ops, so jumps into the middle of
/// it behave as before. Only unfused ops are read (a sequence starts at
/// a plain op and the later slots are never rewritten before they are
/// read).
fn fuse(ops: &mut [Op]) {
    for i in 0..ops.len() {
        let next = |k: usize| ops.get(i + k).copied();
        let fused = match (ops[i], next(1), next(2)) {
            (Op::MovImm { dst: 0, imm }, Some(Op::Exit), _) => Op::Return { imm },
            (
                Op::MovReg { dst, src },
                Some(Op::AddImm { dst: d2, imm }),
                Some(Op::JgtReg {
                    dst: d3,
                    src: end,
                    target,
                }),
            ) if d2 == dst && d3 == dst => match i32::try_from(imm as i64) {
                Ok(imm) => Op::BoundsCheck {
                    dst,
                    src,
                    end,
                    imm,
                    target,
                },
                Err(_) => continue,
            },
            _ => continue,
        };
        ops[i] = fused;
    }
}

/// Decodes `insns` into `out`, one op per instruction slot, nothing
/// fused. The second slot of an `lddw` becomes [`Op::Bad`]: control
/// reaching it is a jump into the middle of an instruction.
pub(super) fn decode_unfused(insns: &[Insn], out: &mut [Op]) {
    let mut pc = 0;
    while let (Some(&insn), Some(slot)) = (insns.get(pc), out.get_mut(pc)) {
        *slot = decode_one(insns, pc, insn);
        pc += 1;
        if matches!(slot, Op::LdImm64 { .. }) {
            if let Some(second) = out.get_mut(pc) {
                *second = Op::Bad { code: 0 };
            }
            pc += 1;
        }
    }
}

/// The op for `insn`, the instruction at `pc` of `insns`.
fn decode_one(insns: &[Insn], pc: usize, insn: Insn) -> Op {
    let bad = Op::Bad { code: insn.code };
    let op = insn.code & OP_MASK;
    let by_reg = insn.code & SOURCE_MASK == BPF_X;
    let (dst, src) = (insn.dst & 0x0f, insn.src & 0x0f);
    let imm64 = i64::from(insn.imm) as u64;
    let jump = |make: &dyn Fn(u32) -> Op| {
        let target = pc as i64 + 1 + i64::from(insn.off);
        match u32::try_from(target) {
            Ok(t) if target > pc as i64 && (t as usize) < insns.len() => make(t),
            _ => Op::BadJump { target },
        }
    };
    match insn.class() {
        BPF_ALU64 => {
            if alu::alu64(op, 0, 1).is_none() {
                return bad;
            }
            match (op, by_reg) {
                (BPF_MOV, false) => Op::MovImm { dst, imm: imm64 },
                (BPF_MOV, true) => Op::MovReg { dst, src },
                (BPF_ADD, false) => Op::AddImm { dst, imm: imm64 },
                (BPF_ADD, true) => Op::AddReg { dst, src },
                (_, false) => Op::Alu64Imm {
                    op,
                    dst,
                    imm: imm64,
                },
                (_, true) => Op::Alu64Reg { op, dst, src },
            }
        }
        BPF_ALU if op == BPF_END => match insn.imm {
            16 | 32 | 64 => Op::End {
                to_be: by_reg,
                bits: insn.imm as u8,
                dst,
            },
            _ => bad,
        },
        BPF_ALU => match (alu::alu32(op, 0, 1), by_reg) {
            (None, _) => bad,
            (Some(_), false) => Op::Alu32Imm {
                op,
                dst,
                imm: insn.imm as u32,
            },
            (Some(_), true) => Op::Alu32Reg { op, dst, src },
        },
        BPF_JMP => match op {
            BPF_EXIT => Op::Exit,
            BPF_CALL => Op::Call {
                id: insn.imm as u32,
            },
            BPF_JA => jump(&|target| Op::Ja { target }),
            _ if alu::jmp64(op, 0, 0).is_none() => bad,
            _ => jump(&|target| match (op, by_reg) {
                (BPF_JEQ, false) => Op::JeqImm {
                    dst,
                    imm: imm64,
                    target,
                },
                (BPF_JNE, false) => Op::JneImm {
                    dst,
                    imm: imm64,
                    target,
                },
                (BPF_JGT, true) => Op::JgtReg { dst, src, target },
                (_, false) => Op::Jmp64Imm {
                    op,
                    dst,
                    imm: imm64,
                    target,
                },
                (_, true) => Op::Jmp64Reg {
                    op,
                    dst,
                    src,
                    target,
                },
            }),
        },
        BPF_JMP32 if alu::jmp32(op, 0, 0).is_none() => bad,
        BPF_JMP32 => jump(&|target| match by_reg {
            false => Op::Jmp32Imm {
                op,
                dst,
                imm: insn.imm as u32,
                target,
            },
            true => Op::Jmp32Reg {
                op,
                dst,
                src,
                target,
            },
        }),
        BPF_LD => match insns.get(pc + 1) {
            Some(second) if insn.code == LDDW => Op::LdImm64 {
                dst,
                imm: match insn.src {
                    BPF_PSEUDO_MAP_FD => MAP_HANDLE_BASE + u64::from(insn.imm as u32),
                    _ => u64::from(insn.imm as u32) | u64::from(second.imm as u32) << 32,
                },
            },
            _ => bad,
        },
        class => memory(class, insn, dst, src, imm64).unwrap_or(bad),
    }
}

/// `LDX`, `ST`, `STX` and atomic add; `None` for another mode or class.
fn memory(class: u8, insn: Insn, dst: Reg, src: Reg, imm: u64) -> Option<Op> {
    let size = access_size(insn.code) as u8;
    let off = insn.off;
    Some(match (class, insn.code & MODE_MASK) {
        (BPF_LDX, BPF_MEM) => match size {
            1 => Op::LdxB { dst, src, off },
            2 => Op::LdxH { dst, src, off },
            4 => Op::LdxW { dst, src, off },
            _ => Op::LdxDw { dst, src, off },
        },
        (BPF_ST, BPF_MEM) => Op::St {
            size,
            base: dst,
            off,
            imm,
        },
        (BPF_STX, BPF_MEM) => Op::Stx {
            size,
            base: dst,
            src,
            off,
        },
        (BPF_STX, BPF_ATOMIC) if insn.imm == i32::from(BPF_ADD) && (size == 4 || size == 8) => {
            Op::AtomicAdd {
                size,
                base: dst,
                src,
                off,
            }
        }
        _ => return None,
    })
}
