//! Arithmetic and comparison semantics (RFC 9669): wrapping arithmetic, shifts masked to the width, 32-bit operations zero-extended, division by zero giving 0 and modulo by zero keeping the dividend, byte swaps for the little-endian BPF target.

#![forbid(unsafe_code)]

use vmm_abi::hook::insn::*;

/// A 64-bit arithmetic operation `op` (the opcode's operation bits) on
/// `dst` and `src`; `None` for an operation that does not exist.
#[inline]
pub(super) fn alu64(op: u8, dst: u64, src: u64) -> Option<u64> {
    Some(match op {
        BPF_ADD => dst.wrapping_add(src),
        BPF_SUB => dst.wrapping_sub(src),
        BPF_MUL => dst.wrapping_mul(src),
        BPF_DIV => dst.checked_div(src).unwrap_or(0),
        BPF_OR => dst | src,
        BPF_AND => dst & src,
        BPF_LSH => dst << (src & 63),
        BPF_RSH => dst >> (src & 63),
        BPF_NEG => dst.wrapping_neg(),
        BPF_MOD => dst.checked_rem(src).unwrap_or(dst),
        BPF_XOR => dst ^ src,
        BPF_MOV => src,
        BPF_ARSH => ((dst as i64) >> (src & 63)) as u64,
        _ => return None,
    })
}

/// A 32-bit arithmetic operation on the low halves; the caller
/// zero-extends the result.
#[inline]
pub(super) fn alu32(op: u8, dst: u32, src: u32) -> Option<u32> {
    Some(match op {
        BPF_ADD => dst.wrapping_add(src),
        BPF_SUB => dst.wrapping_sub(src),
        BPF_MUL => dst.wrapping_mul(src),
        BPF_DIV => dst.checked_div(src).unwrap_or(0),
        BPF_OR => dst | src,
        BPF_AND => dst & src,
        BPF_LSH => dst << (src & 31),
        BPF_RSH => dst >> (src & 31),
        BPF_NEG => dst.wrapping_neg(),
        BPF_MOD => dst.checked_rem(src).unwrap_or(dst),
        BPF_XOR => dst ^ src,
        BPF_MOV => src,
        BPF_ARSH => ((dst as i32) >> (src & 31)) as u32,
        _ => return None,
    })
}

/// `BPF_END`: the low `bits` of `v` converted to big endian (`to_be`, a
/// swap on this little-endian target) or little endian (a truncation),
/// zero-extended.
#[inline]
pub(super) fn endian(to_be: bool, bits: i32, v: u64) -> Option<u64> {
    Some(match (bits, to_be) {
        (16, true) => u64::from((v as u16).swap_bytes()),
        (16, false) => u64::from(v as u16),
        (32, true) => u64::from((v as u32).swap_bytes()),
        (32, false) => u64::from(v as u32),
        (64, true) => v.swap_bytes(),
        (64, false) => v,
        _ => return None,
    })
}

/// Whether a 64-bit conditional jump `op` is taken.
#[inline]
pub(super) fn jmp64(op: u8, a: u64, b: u64) -> Option<bool> {
    let (sa, sb) = (a as i64, b as i64);
    Some(match op {
        BPF_JEQ => a == b,
        BPF_JGT => a > b,
        BPF_JGE => a >= b,
        BPF_JSET => a & b != 0,
        BPF_JNE => a != b,
        BPF_JSGT => sa > sb,
        BPF_JSGE => sa >= sb,
        BPF_JLT => a < b,
        BPF_JLE => a <= b,
        BPF_JSLT => sa < sb,
        BPF_JSLE => sa <= sb,
        _ => return None,
    })
}

/// Whether a 32-bit conditional jump `op` is taken (low halves compared).
#[inline]
pub(super) fn jmp32(op: u8, a: u32, b: u32) -> Option<bool> {
    let (sa, sb) = (a as i32, b as i32);
    Some(match op {
        BPF_JEQ => a == b,
        BPF_JGT => a > b,
        BPF_JGE => a >= b,
        BPF_JSET => a & b != 0,
        BPF_JNE => a != b,
        BPF_JSGT => sa > sb,
        BPF_JSGE => sa >= sb,
        BPF_JLT => a < b,
        BPF_JLE => a <= b,
        BPF_JSLT => sa < sb,
        BPF_JSLE => sa <= sb,
        _ => return None,
    })
}
