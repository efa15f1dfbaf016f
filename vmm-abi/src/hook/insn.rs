//! The eBPF instruction in the Linux encoding (RFC 9669): the 8-byte instruction, its opcode fields by name, helper numbers and XDP verdicts.
//!
//! An opcode byte is `class | op | source` for arithmetic and jumps and
//! `class | mode | size` for loads and stores. The numbers are the Linux
//! ones, so an object built against `<linux/bpf.h>` runs unchanged.

#![forbid(unsafe_code)]

// Instruction classes (the low three bits).
/// Class: non-standard loads (`lddw`, legacy packet loads).
pub const BPF_LD: u8 = 0x00;
/// Class: load into a register.
pub const BPF_LDX: u8 = 0x01;
/// Class: store an immediate.
pub const BPF_ST: u8 = 0x02;
/// Class: store a register (and atomic operations).
pub const BPF_STX: u8 = 0x03;
/// Class: 32-bit arithmetic.
pub const BPF_ALU: u8 = 0x04;
/// Class: 64-bit jumps, calls and exit.
pub const BPF_JMP: u8 = 0x05;
/// Class: 32-bit jumps.
pub const BPF_JMP32: u8 = 0x06;
/// Class: 64-bit arithmetic.
pub const BPF_ALU64: u8 = 0x07;
/// Mask of the class bits.
pub const CLASS_MASK: u8 = 0x07;

// Source bit of arithmetic and jumps.
/// Source: the 32-bit immediate.
pub const BPF_K: u8 = 0x00;
/// Source: the `src` register.
pub const BPF_X: u8 = 0x08;
/// Mask of the source bit.
pub const SOURCE_MASK: u8 = 0x08;
/// Mask of the operation bits of arithmetic and jumps.
pub const OP_MASK: u8 = 0xf0;

// Arithmetic operations.
/// `dst += src`.
pub const BPF_ADD: u8 = 0x00;
/// `dst -= src`.
pub const BPF_SUB: u8 = 0x10;
/// `dst *= src`.
pub const BPF_MUL: u8 = 0x20;
/// `dst = src != 0 ? dst / src : 0` (unsigned).
pub const BPF_DIV: u8 = 0x30;
/// `dst |= src`.
pub const BPF_OR: u8 = 0x40;
/// `dst &= src`.
pub const BPF_AND: u8 = 0x50;
/// `dst <<= src` (shift masked to the width).
pub const BPF_LSH: u8 = 0x60;
/// `dst >>= src` (logical, masked).
pub const BPF_RSH: u8 = 0x70;
/// `dst = -dst`.
pub const BPF_NEG: u8 = 0x80;
/// `dst = src != 0 ? dst % src : dst` (unsigned).
pub const BPF_MOD: u8 = 0x90;
/// `dst ^= src`.
pub const BPF_XOR: u8 = 0xa0;
/// `dst = src`.
pub const BPF_MOV: u8 = 0xb0;
/// `dst >>= src` (arithmetic, masked).
pub const BPF_ARSH: u8 = 0xc0;
/// Byte order conversion (class `BPF_ALU` only; `imm` = 16, 32 or 64).
pub const BPF_END: u8 = 0xd0;
/// Byte order conversion to little endian (the source bit of `BPF_END`).
pub const BPF_TO_LE: u8 = 0x00;
/// Byte order conversion to big endian.
pub const BPF_TO_BE: u8 = 0x08;

// Jump operations.
/// Unconditional jump (`BPF_JMP` only).
pub const BPF_JA: u8 = 0x00;
/// Jump if `dst == src`.
pub const BPF_JEQ: u8 = 0x10;
/// Jump if `dst > src` (unsigned).
pub const BPF_JGT: u8 = 0x20;
/// Jump if `dst >= src` (unsigned).
pub const BPF_JGE: u8 = 0x30;
/// Jump if `dst & src != 0`.
pub const BPF_JSET: u8 = 0x40;
/// Jump if `dst != src`.
pub const BPF_JNE: u8 = 0x50;
/// Jump if `dst > src` (signed).
pub const BPF_JSGT: u8 = 0x60;
/// Jump if `dst >= src` (signed).
pub const BPF_JSGE: u8 = 0x70;
/// Call the helper numbered `imm` (`BPF_JMP` only).
pub const BPF_CALL: u8 = 0x80;
/// Return `r0` (`BPF_JMP` only).
pub const BPF_EXIT: u8 = 0x90;
/// Jump if `dst < src` (unsigned).
pub const BPF_JLT: u8 = 0xa0;
/// Jump if `dst <= src` (unsigned).
pub const BPF_JLE: u8 = 0xb0;
/// Jump if `dst < src` (signed).
pub const BPF_JSLT: u8 = 0xc0;
/// Jump if `dst <= src` (signed).
pub const BPF_JSLE: u8 = 0xd0;

// Load and store sizes.
/// Size: 4 bytes.
pub const BPF_W: u8 = 0x00;
/// Size: 2 bytes.
pub const BPF_H: u8 = 0x08;
/// Size: 1 byte.
pub const BPF_B: u8 = 0x10;
/// Size: 8 bytes.
pub const BPF_DW: u8 = 0x18;
/// Mask of the size bits.
pub const SIZE_MASK: u8 = 0x18;

// Load and store modes.
/// Mode: 64-bit immediate (`lddw`, with `BPF_LD | BPF_DW`).
pub const BPF_IMM: u8 = 0x00;
/// Mode: legacy packet load at an absolute offset (refused).
pub const BPF_ABS: u8 = 0x20;
/// Mode: legacy packet load at a register offset (refused).
pub const BPF_IND: u8 = 0x40;
/// Mode: memory at `register + off`.
pub const BPF_MEM: u8 = 0x60;
/// Mode: sign-extending memory load (refused).
pub const BPF_MEMSX: u8 = 0x80;
/// Mode: atomic operation (`BPF_STX` only; the operation is in `imm`).
pub const BPF_ATOMIC: u8 = 0xc0;
/// Mask of the mode bits.
pub const MODE_MASK: u8 = 0xe0;
/// Atomic modifier: also return the old value in `src` (refused).
pub const BPF_FETCH: i32 = 0x01;

/// The `lddw` opcode (`BPF_LD | BPF_IMM | BPF_DW`); two instruction slots.
pub const LDDW: u8 = BPF_LD | BPF_IMM | BPF_DW;
/// `lddw` source: a plain 64-bit immediate.
pub const BPF_PSEUDO_NONE: u8 = 0;
/// `lddw` source: `imm` is the index of a map in the program's map table
/// (what the loader put in place of a map file descriptor).
pub const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `call` source: a BPF-to-BPF call (refused).
pub const BPF_PSEUDO_CALL: u8 = 1;
/// The atomic add opcode on a doubleword (`BPF_STX | BPF_ATOMIC | BPF_DW`).
pub const ATOMIC_DW: u8 = BPF_STX | BPF_ATOMIC | BPF_DW;
/// The atomic add opcode on a word (`BPF_STX | BPF_ATOMIC | BPF_W`).
pub const ATOMIC_W: u8 = BPF_STX | BPF_ATOMIC | BPF_W;
/// The call opcode.
pub const CALL: u8 = BPF_JMP | BPF_CALL;
/// The exit opcode.
pub const EXIT: u8 = BPF_JMP | BPF_EXIT;

/// Number of registers: `r0` .. `r10`.
pub const REGISTERS: u8 = 11;
/// The frame pointer register, read-only.
pub const R10: u8 = 10;

// Helper functions, by their Linux numbers.
/// `void *bpf_map_lookup_elem(map, const void *key)`: the value or NULL.
pub const BPF_FUNC_MAP_LOOKUP_ELEM: u32 = 1;
/// `long bpf_map_update_elem(map, const void *key, const void *value, u64 flags)`.
pub const BPF_FUNC_MAP_UPDATE_ELEM: u32 = 2;
/// `long bpf_map_delete_elem(map, const void *key)`.
pub const BPF_FUNC_MAP_DELETE_ELEM: u32 = 3;
/// `u64 bpf_ktime_get_ns(void)`.
pub const BPF_FUNC_KTIME_GET_NS: u32 = 5;
/// `u32 bpf_get_smp_processor_id(void)`: the hypervisor's core index.
pub const BPF_FUNC_GET_SMP_PROCESSOR_ID: u32 = 8;
/// `long bpf_tail_call(...)` (refused: named so the refusal can say so).
pub const BPF_FUNC_TAIL_CALL: u32 = 12;
/// `long bpf_redirect(u32 ifindex, u64 flags)`: `XDP_REDIRECT` to a port.
pub const BPF_FUNC_REDIRECT: u32 = 23;

/// The name of a helper this crate knows, for messages.
pub const fn helper_name(id: u32) -> Option<&'static str> {
    Some(match id {
        BPF_FUNC_MAP_LOOKUP_ELEM => "map_lookup_elem",
        BPF_FUNC_MAP_UPDATE_ELEM => "map_update_elem",
        BPF_FUNC_MAP_DELETE_ELEM => "map_delete_elem",
        BPF_FUNC_KTIME_GET_NS => "ktime_get_ns",
        BPF_FUNC_GET_SMP_PROCESSOR_ID => "get_smp_processor_id",
        BPF_FUNC_TAIL_CALL => "tail_call",
        BPF_FUNC_REDIRECT => "redirect",
        _ => return None,
    })
}

// XDP verdicts (the packet hook's return values).
/// Drop the frame and count it as an error.
pub const XDP_ABORTED: u64 = 0;
/// Drop the frame.
pub const XDP_DROP: u64 = 1;
/// Deliver the frame.
pub const XDP_PASS: u64 = 2;
/// Send the frame back out of the port it came in on.
pub const XDP_TX: u64 = 3;
/// Send the frame to the port chosen with `bpf_redirect`.
pub const XDP_REDIRECT: u64 = 4;

/// Bytes in one encoded instruction.
pub const INSN_SIZE: usize = 8;

/// One eBPF instruction: `code`, the destination and source registers
/// (four bits each on the wire), a signed 16-bit offset and a signed
/// 32-bit immediate. `lddw` takes two consecutive instructions; the second
/// carries only the upper 32 bits of the immediate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Insn {
    /// The opcode byte.
    pub code: u8,
    /// Destination register (0..=10 in a valid program).
    pub dst: u8,
    /// Source register (0..=10 in a valid program), or a pseudo source.
    pub src: u8,
    /// Signed offset: memory displacement or jump distance.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl Insn {
    /// An instruction from its fields.
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// Decodes the little-endian wire form: code, registers (dst in the low
    /// nibble), offset, immediate.
    pub const fn from_bytes(b: [u8; INSN_SIZE]) -> Self {
        Insn {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// Encodes the little-endian wire form (registers truncated to four
    /// bits each, as the wire has no room for more).
    pub const fn to_bytes(self) -> [u8; INSN_SIZE] {
        let off = self.off.to_le_bytes();
        let imm = self.imm.to_le_bytes();
        [
            self.code,
            (self.dst & 0x0f) | (self.src << 4),
            off[0],
            off[1],
            imm[0],
            imm[1],
            imm[2],
            imm[3],
        ]
    }

    /// The class bits of the opcode.
    pub const fn class(self) -> u8 {
        self.code & CLASS_MASK
    }

    /// Whether this is the first half of an `lddw`.
    pub const fn is_lddw(self) -> bool {
        self.code == LDDW
    }
}

/// Decodes a whole program from its wire bytes into `out`; returns the
/// number of instructions, or `None` if `bytes` is not a whole number of
/// instructions or `out` is too short.
pub fn decode_into(bytes: &[u8], out: &mut [Insn]) -> Option<usize> {
    if !bytes.len().is_multiple_of(INSN_SIZE) {
        return None;
    }
    let n = bytes.len() / INSN_SIZE;
    let out = out.get_mut(..n)?;
    for (slot, chunk) in out.iter_mut().zip(bytes.chunks_exact(INSN_SIZE)) {
        let mut b = [0u8; INSN_SIZE];
        b.copy_from_slice(chunk);
        *slot = Insn::from_bytes(b);
    }
    Some(n)
}

/// The access size in bytes of a load or store opcode's size bits.
pub const fn access_size(code: u8) -> usize {
    match code & SIZE_MASK {
        BPF_W => 4,
        BPF_H => 2,
        BPF_B => 1,
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_bytes() {
        let i = Insn::new(ATOMIC_DW, 1, 2, -8, -1);
        assert_eq!(Insn::from_bytes(i.to_bytes()), i);
        assert_eq!(
            i.to_bytes(),
            [0xdb, 0x21, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn known_opcodes() {
        assert_eq!(BPF_ALU64 | BPF_ADD | BPF_X, 0x0f);
        assert_eq!(BPF_ALU64 | BPF_MOV | BPF_K, 0xb7);
        assert_eq!(LDDW, 0x18);
        assert_eq!(ATOMIC_DW, 0xdb);
        assert_eq!(EXIT, 0x95);
        assert_eq!(CALL, 0x85);
        assert_eq!(BPF_LDX | BPF_MEM | BPF_W, 0x61);
        assert_eq!(BPF_ALU | BPF_END | BPF_TO_BE, 0xdc);
    }

    #[test]
    fn decode_program() {
        let one = Insn::new(EXIT, 0, 0, 0, 0).to_bytes();
        let mut bytes = [0u8; 2 * INSN_SIZE];
        bytes[..INSN_SIZE].copy_from_slice(&one);
        bytes[INSN_SIZE..].copy_from_slice(&one);
        let mut out = [Insn::default(); 4];
        assert_eq!(decode_into(&bytes, &mut out), Some(2));
        assert_eq!(decode_into(&bytes[..7], &mut out), None);
        assert_eq!(decode_into(&bytes, &mut out[..1]), None);
    }
}
