//! Instruction builders for hand-written programs and tests: one `const fn` per instruction form, named like the assembler's mnemonics.

#![forbid(unsafe_code)]

use super::insn::*;

/// `dst op= imm` on 64 bits (`BPF_ALU64 | op | BPF_K`).
pub const fn alu64_imm(op: u8, dst: u8, imm: i32) -> Insn {
    Insn::new(BPF_ALU64 | op | BPF_K, dst, 0, 0, imm)
}

/// `dst op= src` on 64 bits (`BPF_ALU64 | op | BPF_X`).
pub const fn alu64_reg(op: u8, dst: u8, src: u8) -> Insn {
    Insn::new(BPF_ALU64 | op | BPF_X, dst, src, 0, 0)
}

/// `dst op= imm` on 32 bits, zero-extended (`BPF_ALU | op | BPF_K`).
pub const fn alu32_imm(op: u8, dst: u8, imm: i32) -> Insn {
    Insn::new(BPF_ALU | op | BPF_K, dst, 0, 0, imm)
}

/// `dst op= src` on 32 bits, zero-extended (`BPF_ALU | op | BPF_X`).
pub const fn alu32_reg(op: u8, dst: u8, src: u8) -> Insn {
    Insn::new(BPF_ALU | op | BPF_X, dst, src, 0, 0)
}

/// `dst = imm` (sign-extended to 64 bits).
pub const fn mov64_imm(dst: u8, imm: i32) -> Insn {
    alu64_imm(BPF_MOV, dst, imm)
}

/// `dst = src`.
pub const fn mov64_reg(dst: u8, src: u8) -> Insn {
    alu64_reg(BPF_MOV, dst, src)
}

/// `dst = -dst` on 64 bits.
pub const fn neg64(dst: u8) -> Insn {
    Insn::new(BPF_ALU64 | BPF_NEG, dst, 0, 0, 0)
}

/// `dst = htobe{bits}(dst)` (`bits` = 16, 32 or 64).
pub const fn be(dst: u8, bits: i32) -> Insn {
    Insn::new(BPF_ALU | BPF_END | BPF_TO_BE, dst, 0, 0, bits)
}

/// `dst = htole{bits}(dst)` (`bits` = 16, 32 or 64).
pub const fn le(dst: u8, bits: i32) -> Insn {
    Insn::new(BPF_ALU | BPF_END | BPF_TO_LE, dst, 0, 0, bits)
}

/// `goto +off`.
pub const fn ja(off: i16) -> Insn {
    Insn::new(BPF_JMP | BPF_JA, 0, 0, off, 0)
}

/// `if dst op imm goto +off` on 64 bits.
pub const fn jmp_imm(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
    Insn::new(BPF_JMP | op | BPF_K, dst, 0, off, imm)
}

/// `if dst op src goto +off` on 64 bits.
pub const fn jmp_reg(op: u8, dst: u8, src: u8, off: i16) -> Insn {
    Insn::new(BPF_JMP | op | BPF_X, dst, src, off, 0)
}

/// `if dst op imm goto +off` on the low 32 bits.
pub const fn jmp32_imm(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
    Insn::new(BPF_JMP32 | op | BPF_K, dst, 0, off, imm)
}

/// `if dst op src goto +off` on the low 32 bits.
pub const fn jmp32_reg(op: u8, dst: u8, src: u8, off: i16) -> Insn {
    Insn::new(BPF_JMP32 | op | BPF_X, dst, src, off, 0)
}

/// `dst = *(size *)(src + off)`.
pub const fn ldx(size: u8, dst: u8, src: u8, off: i16) -> Insn {
    Insn::new(BPF_LDX | BPF_MEM | size, dst, src, off, 0)
}

/// `*(size *)(dst + off) = src`.
pub const fn stx(size: u8, dst: u8, src: u8, off: i16) -> Insn {
    Insn::new(BPF_STX | BPF_MEM | size, dst, src, off, 0)
}

/// `*(size *)(dst + off) = imm`.
pub const fn st(size: u8, dst: u8, off: i16, imm: i32) -> Insn {
    Insn::new(BPF_ST | BPF_MEM | size, dst, 0, off, imm)
}

/// `lock *(size *)(dst + off) += src` (`size` = `BPF_W` or `BPF_DW`).
pub const fn atomic_add(size: u8, dst: u8, src: u8, off: i16) -> Insn {
    Insn::new(BPF_STX | BPF_ATOMIC | size, dst, src, off, BPF_ADD as i32)
}

/// `dst = imm` for a 64-bit immediate: the two slots of `lddw`.
pub const fn lddw(dst: u8, imm: u64) -> [Insn; 2] {
    [
        Insn::new(LDDW, dst, BPF_PSEUDO_NONE, 0, imm as u32 as i32),
        Insn::new(0, 0, 0, 0, (imm >> 32) as u32 as i32),
    ]
}

/// `dst = map[index]`: the map handle `lddw` (`src = BPF_PSEUDO_MAP_FD`).
pub const fn ld_map(dst: u8, index: u32) -> [Insn; 2] {
    [
        Insn::new(LDDW, dst, BPF_PSEUDO_MAP_FD, 0, index as i32),
        Insn::new(0, 0, 0, 0, 0),
    ]
}

/// `call helper`.
pub const fn call(helper: u32) -> Insn {
    Insn::new(CALL, 0, 0, 0, helper as i32)
}

/// `exit`.
pub const fn exit() -> Insn {
    Insn::new(EXIT, 0, 0, 0, 0)
}
