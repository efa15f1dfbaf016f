//! Decodes the few x86-64 `mov` forms a virtio-mmio driver uses to touch
//! device registers, from the bytes fetched at the guest's RIP after an EPT
//! violation on an MMIO page. The exit already gives the guest-physical
//! address, but the VM-exit instruction-length field is not defined for EPT
//! violations (SDM Vol. 3C, 28.2.5), so the decoder must find the length
//! itself, plus the access size, direction and register or immediate.
//!
//! Encoding rules followed (Intel SDM Vol. 2A): legacy prefixes (2.1.1),
//! ModR/M and SIB addressing forms (2.1.5, Tables 2-2 and 2-3), REX (2.2.1,
//! Table 2-4) and its special cases (2.2.1.2, Table 2-5: r/m or base 100 with
//! REX.B still means SIB, mod 00 r/m 101 with REX.B is still RIP-relative,
//! SIB base 101 with mod 00 still means "no base, disp32"), RIP-relative
//! addressing (2.2.1.6), byte registers SPL..DIL versus AH..BH (3.1.1.1,
//! Table 3-1), the 15-byte limit (2.3.11). Instructions: MOV (opcodes 88,
//! 89, 8A, 8B, C6 /0, C7 /0) and MOVZX (0F B6, 0F B7) in Vol. 2B, chapter 4.
//! Register-write semantics (32-bit results zero-extend, 8- and 16-bit
//! results merge) are SDM Vol. 1, 3.4.1.1.
//!
//! The guest is in 64-bit mode. Anything outside these forms is a named
//! [`DecodeError`], which the caller turns into a stop of that guest:
//! - LOCK, REP/REPNE, FS/GS overrides and the address-size prefix are
//!   refused. The CS/DS/ES/SS overrides (2E/3E/26/36) are accepted and
//!   ignored: in 64-bit mode those segment bases are treated as zero
//!   (Vol. 1, 3.4.2.1), so they change nothing here.
//! - A REX prefix must directly precede the opcode (2.2.1). The hardware
//!   silently ignores a misplaced one; the decoder refuses it instead.
//! - REX.X and REX.B only select address registers, which the decoder does
//!   not compute, so they affect nothing but are accepted.
//! - `66` with a byte-sized form and `66` together with REX.W follow the
//!   hardware: ignored, and REX.W wins, respectively.

use crate::mem::guest_walk::MAX_INSTRUCTION;
use core::fmt;

// Legacy prefixes (SDM Vol. 2A, 2.1.1).
const PREFIX_OPERAND_SIZE: u8 = 0x66;
const PREFIX_ADDRESS_SIZE: u8 = 0x67;
const PREFIX_LOCK: u8 = 0xF0;
const PREFIX_REPNE: u8 = 0xF2;
const PREFIX_REP: u8 = 0xF3;
const PREFIX_SEGMENT_ES: u8 = 0x26;
const PREFIX_SEGMENT_CS: u8 = 0x2E;
const PREFIX_SEGMENT_SS: u8 = 0x36;
const PREFIX_SEGMENT_DS: u8 = 0x3E;
const PREFIX_SEGMENT_FS: u8 = 0x64;
const PREFIX_SEGMENT_GS: u8 = 0x65;

// REX prefix, 0100WRXB (2.2.1, Table 2-4).
const REX_FIXED_BITS: u8 = 0x40;
const REX_FIXED_MASK: u8 = 0xF0;
const REX_W: u8 = 1 << 3;
const REX_R: u8 = 1 << 2;
/// REX.R supplies bit 3 of the ModR/M reg register number.
const REX_R_REG_BIT: u8 = 1 << 3;

// Opcodes (Vol. 2B, MOV and MOVZX).
/// `88 /r`: MOV r/m8, r8.
const MOV_RM8_R8: u8 = 0x88;
/// `89 /r`: MOV r/m16/32/64, r16/32/64.
const MOV_RM_R: u8 = 0x89;
/// `8A /r`: MOV r8, r/m8.
const MOV_R8_RM8: u8 = 0x8A;
/// `8B /r`: MOV r16/32/64, r/m16/32/64.
const MOV_R_RM: u8 = 0x8B;
/// `C6 /0 ib`: MOV r/m8, imm8.
const MOV_RM8_IMM8: u8 = 0xC6;
/// `C7 /0 iw/id`: MOV r/m16, imm16; r/m32, imm32; r/m64, imm32 sign-extended.
const MOV_RM_IMM: u8 = 0xC7;
/// The ModR/M reg value that selects MOV in group 11 (`C6 /0`, `C7 /0`).
const MOV_IMM_EXTENSION: u8 = 0;
/// First byte of the two-byte opcode map.
const TWO_BYTE_ESCAPE: u8 = 0x0F;
/// `0F B6 /r`: MOVZX r16/32/64, r/m8.
const MOVZX_R_RM8: u8 = 0xB6;
/// `0F B7 /r`: MOVZX r32/64, r/m16 (r16 with `66`, a plain 16-bit move).
const MOVZX_R_RM16: u8 = 0xB7;

// ModR/M and SIB (2.1.5, Tables 2-2 and 2-3).
const MODRM_MOD_SHIFT: u8 = 6;
const MODRM_REG_SHIFT: u8 = 3;
const FIELD_MASK: u8 = 0b111;
/// mod 00: memory, no displacement (with the r/m 101 and SIB base 101 cases).
const MOD_INDIRECT: u8 = 0b00;
/// mod 01: memory plus an 8-bit displacement.
const MOD_DISP8: u8 = 0b01;
/// mod 10: memory plus a 32-bit displacement.
const MOD_DISP32: u8 = 0b10;
/// r/m 100 with a memory mod: a SIB byte follows.
const RM_SIB: u8 = 0b100;
/// r/m 101 with mod 00: RIP-relative, disp32 (2.2.1.6).
const RM_RIP_RELATIVE: u8 = 0b101;
/// SIB base 101 with mod 00: no base register, disp32.
const SIB_BASE_NONE: u8 = 0b101;
const DISP8_BYTES: usize = 1;
const DISP32_BYTES: usize = 4;

/// Without a REX prefix, byte-register numbers 4–7 are AH, CH, DH, BH:
/// bits 15:8 of registers 0–3 (Vol. 2A, 3.1.1.1, Table 3-1).
const HIGH_BYTE_FIRST: u8 = 4;
const HIGH_BYTE_END: u8 = 8;
const HIGH_BYTE_SHIFT: u32 = u8::BITS;

/// One byte access or register width.
pub const BYTE: u8 = 1;
/// Two bytes.
pub const WORD: u8 = 2;
/// Four bytes.
pub const DWORD: u8 = 4;
/// Eight bytes.
pub const QWORD: u8 = 8;

/// A general-purpose register operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reg {
    /// Register number 0–15 (RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI,
    /// R8–R15). For a high-byte register this is the register holding it:
    /// 0–3 for AH, CH, DH, BH.
    pub num: u8,
    /// The operand is bits 15:8 of `num` (AH..BH), not its low bits.
    pub high_byte: bool,
}

/// Where a store's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The low `size` bytes of a register (bits 15:8 for AH..BH).
    Reg(Reg),
    /// An immediate, already widened to the access size (sign-extended for
    /// the 64-bit `C7` form).
    Imm(u64),
}

/// What the instruction does with its memory operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read `size` bytes into `reg`, written at `zero_extend_to` bytes
    /// (equal to `size` for MOV, wider for MOVZX).
    Load {
        /// Destination register.
        reg: Reg,
        /// Destination width in bytes.
        zero_extend_to: u8,
    },
    /// Write `size` bytes.
    Store {
        /// The value written.
        src: Source,
    },
}

/// A decoded MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Instruction length in bytes: what RIP advances by.
    pub len: u8,
    /// Memory access size in bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// Load or store, and with what.
    pub op: Op,
}

/// Why the bytes are not one of the supported accesses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// No byte could be fetched.
    Empty,
    /// The fetched bytes end before the instruction does.
    Truncated {
        /// How many bytes were fetched.
        fetched: u8,
    },
    /// A prefix the decoder refuses (LOCK, REP, REPNE, FS, GS, address size).
    UnsupportedPrefix(u8),
    /// A REX prefix followed by another prefix instead of the opcode.
    MisplacedRex(u8),
    /// A one-byte opcode other than 88, 89, 8A, 8B, C6, C7.
    UnsupportedOpcode(u8),
    /// A two-byte opcode `0F xx` other than MOVZX.
    UnsupportedOpcode0F(u8),
    /// `C6` or `C7` with a ModR/M reg other than /0 (not MOV).
    UnsupportedExtension {
        /// The opcode.
        opcode: u8,
        /// The ModR/M reg field.
        ext: u8,
    },
    /// ModR/M mod 11: the operand is a register, not memory.
    RegisterOperand,
    /// The instruction would be longer than 15 bytes.
    TooLong,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Empty => write!(f, "no instruction bytes could be fetched"),
            DecodeError::Truncated { fetched } => write!(
                f,
                "instruction continues past the {fetched} bytes that could be fetched"
            ),
            DecodeError::UnsupportedPrefix(p) => {
                write!(f, "unsupported {} prefix {p:#04x}", prefix_name(*p))
            }
            DecodeError::MisplacedRex(p) => {
                write!(f, "REX prefix {p:#04x} is not directly before the opcode")
            }
            DecodeError::UnsupportedOpcode(op) => write!(f, "unsupported opcode {op:#04x}"),
            DecodeError::UnsupportedOpcode0F(op) => {
                write!(f, "unsupported opcode {TWO_BYTE_ESCAPE:#04x} {op:#04x}")
            }
            DecodeError::UnsupportedExtension { opcode, ext } => {
                write!(f, "unsupported opcode {opcode:#04x} /{ext}")
            }
            DecodeError::RegisterOperand => {
                write!(
                    f,
                    "register operand (ModR/M mod 11) where memory was accessed"
                )
            }
            DecodeError::TooLong => {
                write!(f, "instruction longer than {MAX_INSTRUCTION} bytes")
            }
        }
    }
}

fn prefix_name(p: u8) -> &'static str {
    match p {
        PREFIX_LOCK => "LOCK",
        PREFIX_REPNE => "REPNE",
        PREFIX_REP => "REP",
        PREFIX_SEGMENT_FS => "FS segment-override",
        PREFIX_SEGMENT_GS => "GS segment-override",
        PREFIX_ADDRESS_SIZE => "address-size",
        _ => "unknown",
    }
}

fn is_rex(b: u8) -> bool {
    b & REX_FIXED_MASK == REX_FIXED_BITS
}

fn is_legacy_prefix(b: u8) -> bool {
    matches!(
        b,
        PREFIX_OPERAND_SIZE
            | PREFIX_ADDRESS_SIZE
            | PREFIX_LOCK
            | PREFIX_REPNE
            | PREFIX_REP
            | PREFIX_SEGMENT_ES
            | PREFIX_SEGMENT_CS
            | PREFIX_SEGMENT_SS
            | PREFIX_SEGMENT_DS
            | PREFIX_SEGMENT_FS
            | PREFIX_SEGMENT_GS
    )
}

/// Mask of the low `bytes` bytes of a u64.
fn width_mask(bytes: u8) -> u64 {
    match u32::from(bytes) * u8::BITS {
        bits if bits >= u64::BITS => u64::MAX,
        bits => (1u64 << bits) - 1,
    }
}

/// The supported instruction forms.
#[derive(Clone, Copy)]
enum Form {
    /// 88: byte register to memory.
    StoreReg8,
    /// 89: register to memory.
    StoreReg,
    /// 8A: memory to byte register.
    Load8,
    /// 8B: memory to register.
    Load,
    /// C6 /0: imm8 to memory.
    StoreImm8,
    /// C7 /0: imm16/imm32 to memory.
    StoreImm,
    /// 0F B6: memory byte, zero-extended.
    ZeroExtend8,
    /// 0F B7: memory word, zero-extended.
    ZeroExtend16,
}

/// Reads the fetched bytes in order, never past the 15-byte limit.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// The next `n` bytes. Needing a byte beyond what was fetched is
    /// `Truncated`, unless all 15 were fetched: then the instruction is
    /// `TooLong`.
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos + n;
        let limit = self.bytes.len().min(MAX_INSTRUCTION);
        match self.bytes.get(self.pos..end) {
            Some(s) if end <= limit => {
                self.pos = end;
                Ok(s)
            }
            _ if self.bytes.len() >= MAX_INSTRUCTION => Err(DecodeError::TooLong),
            _ => Err(DecodeError::Truncated {
                fetched: self.bytes.len() as u8,
            }),
        }
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let &[b] = self.take(1)? else {
            return Err(DecodeError::Truncated {
                fetched: self.bytes.len() as u8,
            });
        };
        Ok(b)
    }

    /// A little-endian immediate of `n` bytes (n ≤ 8).
    fn le(&mut self, n: u8) -> Result<u64, DecodeError> {
        Ok(self
            .take(usize::from(n))?
            .iter()
            .rev()
            .fold(0, |acc, &b| (acc << u8::BITS) | u64::from(b)))
    }
}

const fn op_load(reg: Reg, zero_extend_to: u8) -> Op {
    Op::Load {
        reg,
        zero_extend_to,
    }
}

const fn op_store(src: Source) -> Op {
    Op::Store { src }
}

/// What the prefixes selected.
struct Prefixes {
    /// `66` was present.
    operand_size: bool,
    /// The REX prefix, if any.
    rex: Option<u8>,
}

/// Reads the legacy prefixes and an optional REX; returns them and the
/// first opcode byte.
fn prefixes(cur: &mut Cursor<'_>) -> Result<(Prefixes, u8), DecodeError> {
    let mut operand_size = false;
    let mut b = cur.byte()?;
    loop {
        match b {
            PREFIX_OPERAND_SIZE => operand_size = true,
            PREFIX_SEGMENT_ES | PREFIX_SEGMENT_CS | PREFIX_SEGMENT_SS | PREFIX_SEGMENT_DS => {}
            PREFIX_LOCK | PREFIX_REPNE | PREFIX_REP | PREFIX_SEGMENT_FS | PREFIX_SEGMENT_GS
            | PREFIX_ADDRESS_SIZE => return Err(DecodeError::UnsupportedPrefix(b)),
            _ => break,
        }
        b = cur.byte()?;
    }
    let mut rex = None;
    if is_rex(b) {
        let rex_byte = b;
        rex = Some(rex_byte);
        b = cur.byte()?;
        if is_rex(b) || is_legacy_prefix(b) {
            return Err(DecodeError::MisplacedRex(rex_byte));
        }
    }
    Ok((Prefixes { operand_size, rex }, b))
}

/// Consumes the SIB byte and displacement of a memory operand whose ModR/M
/// has `mode` and `rm` (Vol. 2A, Tables 2-2 and 2-3; REX.B does not change
/// these rules, Table 2-5). Mod 11 is a register, not memory.
fn skip_memory_operand(cur: &mut Cursor<'_>, mode: u8, rm: u8) -> Result<(), DecodeError> {
    let mut disp_bytes = match mode {
        MOD_INDIRECT => 0,
        MOD_DISP8 => DISP8_BYTES,
        MOD_DISP32 => DISP32_BYTES,
        _ => return Err(DecodeError::RegisterOperand),
    };
    if rm == RM_SIB {
        let sib = cur.byte()?;
        if mode == MOD_INDIRECT && sib & FIELD_MASK == SIB_BASE_NONE {
            disp_bytes = DISP32_BYTES;
        }
    } else if mode == MOD_INDIRECT && rm == RM_RIP_RELATIVE {
        disp_bytes = DISP32_BYTES;
    }
    cur.take(disp_bytes)?;
    Ok(())
}

/// Decodes the instruction at the start of `bytes` (what was fetched at the
/// guest's RIP: up to 15 bytes, fewer if the fetch ran into unmapped memory;
/// bytes after the instruction are ignored).
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut cur = Cursor { bytes, pos: 0 };

    let (prefixes, b) = prefixes(&mut cur)?;
    let rex_bits = prefixes.rex.unwrap_or(0);

    let form = match b {
        MOV_RM8_R8 => Form::StoreReg8,
        MOV_RM_R => Form::StoreReg,
        MOV_R8_RM8 => Form::Load8,
        MOV_R_RM => Form::Load,
        MOV_RM8_IMM8 => Form::StoreImm8,
        MOV_RM_IMM => Form::StoreImm,
        TWO_BYTE_ESCAPE => match cur.byte()? {
            MOVZX_R_RM8 => Form::ZeroExtend8,
            MOVZX_R_RM16 => Form::ZeroExtend16,
            other => return Err(DecodeError::UnsupportedOpcode0F(other)),
        },
        other => return Err(DecodeError::UnsupportedOpcode(other)),
    };

    let modrm = cur.byte()?;
    let mode = modrm >> MODRM_MOD_SHIFT;
    let reg_field = (modrm >> MODRM_REG_SHIFT) & FIELD_MASK;
    let rm = modrm & FIELD_MASK;
    if matches!(form, Form::StoreImm8 | Form::StoreImm) && reg_field != MOV_IMM_EXTENSION {
        return Err(DecodeError::UnsupportedExtension {
            opcode: b,
            ext: reg_field,
        });
    }
    skip_memory_operand(&mut cur, mode, rm)?;

    // Operand size of the non-byte forms: REX.W wins over 66 (Vol. 1, 3.6.1).
    let wide = if rex_bits & REX_W != 0 {
        QWORD
    } else if prefixes.operand_size {
        WORD
    } else {
        DWORD
    };
    let reg_num = if rex_bits & REX_R != 0 {
        reg_field | REX_R_REG_BIT
    } else {
        reg_field
    };
    let full_reg = Reg {
        num: reg_num,
        high_byte: false,
    };
    let byte_reg = match prefixes.rex {
        None if (HIGH_BYTE_FIRST..HIGH_BYTE_END).contains(&reg_num) => Reg {
            num: reg_num - HIGH_BYTE_FIRST,
            high_byte: true,
        },
        _ => full_reg,
    };

    let (size, op) = match form {
        Form::StoreReg8 => (BYTE, op_store(Source::Reg(byte_reg))),
        Form::StoreReg => (wide, op_store(Source::Reg(full_reg))),
        Form::Load8 => (BYTE, op_load(byte_reg, BYTE)),
        Form::Load => (wide, op_load(full_reg, wide)),
        Form::StoreImm8 => (BYTE, op_store(Source::Imm(cur.le(BYTE)?))),
        Form::StoreImm => {
            // imm16 with 66, otherwise imm32, sign-extended for 64-bit.
            let imm = if wide == WORD {
                cur.le(WORD)?
            } else {
                cur.le(DWORD)?
            };
            let imm = if wide == QWORD {
                imm as u32 as i32 as i64 as u64
            } else {
                imm
            };
            (wide, op_store(Source::Imm(imm)))
        }
        Form::ZeroExtend8 => (BYTE, op_load(full_reg, wide)),
        Form::ZeroExtend16 => (WORD, op_load(full_reg, wide)),
    };

    Ok(Decoded {
        len: cur.pos as u8,
        size,
        op,
    })
}

impl Decoded {
    /// The value a store writes, truncated to `size`; `regs(n)` returns
    /// the full 64-bit value of register `n` (0–15). A load writes nothing
    /// to memory and gives 0.
    pub fn store_value(&self, regs: &impl Fn(u8) -> u64) -> u64 {
        let value = match self.op {
            Op::Load { .. } => 0,
            Op::Store {
                src: Source::Imm(imm),
            } => imm,
            Op::Store {
                src: Source::Reg(reg),
            } if reg.high_byte => regs(reg.num) >> HIGH_BYTE_SHIFT,
            Op::Store {
                src: Source::Reg(reg),
            } => regs(reg.num),
        };
        value & width_mask(self.size)
    }

    /// The new 64-bit value of a load's destination register, given its
    /// `old` value and the `value` read from the device (only its low
    /// `size` bytes count). A 32-bit destination is zero-extended to 64
    /// bits; an 8- or 16-bit destination is merged into the low bits (bits
    /// 15:8 for AH..BH) and the rest of `old` kept. For a store the register
    /// is unchanged: `old`.
    pub fn apply_load(&self, old: u64, value: u64) -> u64 {
        let Op::Load {
            reg,
            zero_extend_to,
        } = self.op
        else {
            return old;
        };
        let value = value & width_mask(self.size);
        if reg.high_byte {
            let field = width_mask(BYTE) << HIGH_BYTE_SHIFT;
            return (old & !field) | (value << HIGH_BYTE_SHIFT);
        }
        match zero_extend_to {
            BYTE | WORD => (old & !width_mask(zero_extend_to)) | value,
            _ => value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const fn load(num: u8, size: u8, len: u8, to: u8) -> Decoded {
        Decoded {
            len,
            size,
            op: Op::Load {
                reg: Reg {
                    num,
                    high_byte: false,
                },
                zero_extend_to: to,
            },
        }
    }

    const fn store(src: Source, size: u8, len: u8) -> Decoded {
        Decoded {
            len,
            size,
            op: Op::Store { src },
        }
    }

    const fn r(num: u8) -> Reg {
        Reg {
            num,
            high_byte: false,
        }
    }

    const fn high(num: u8) -> Reg {
        Reg {
            num,
            high_byte: true,
        }
    }

    /// Real encodings with their meaning (checked against GNU objdump).
    #[rustfmt::skip]
    const KNOWN: &[(&[u8], Decoded)] = &[
        // mov eax, [rdi+0x10]
        (&[0x8b, 0x47, 0x10], load(0, 4, 3, 4)),
        // mov [0x1000], ecx  (SIB: no base, no index)
        (&[0x89, 0x0c, 0x25, 0x00, 0x10, 0x00, 0x00], store(Source::Reg(r(1)), 4, 7)),
        // mov rax, [rip+0x12345678]
        (&[0x48, 0x8b, 0x05, 0x78, 0x56, 0x34, 0x12], load(0, 8, 7, 8)),
        // mov dword [rdi+0x70], 1
        (&[0xc7, 0x47, 0x70, 0x01, 0x00, 0x00, 0x00], store(Source::Imm(1), 4, 7)),
        // mov [rdi+4], ax
        (&[0x66, 0x89, 0x47, 0x04], store(Source::Reg(r(0)), 2, 4)),
        // mov [rdi+1], ah
        (&[0x88, 0x67, 0x01], store(Source::Reg(high(0)), 1, 3)),
        // mov [rdi+1], sil
        (&[0x40, 0x88, 0x77, 0x01], store(Source::Reg(r(6)), 1, 4)),
        // mov [rdi+1], dh  (no REX: 6 means DH)
        (&[0x88, 0x77, 0x01], store(Source::Reg(high(2)), 1, 3)),
        // movzx eax, byte [rdi]
        (&[0x0f, 0xb6, 0x07], load(0, 1, 3, 4)),
        // movzx eax, word [rdi+2]
        (&[0x0f, 0xb7, 0x47, 0x02], load(0, 2, 4, 4)),
        // mov r13d, [rsp+8]
        (&[0x44, 0x8b, 0x6c, 0x24, 0x08], load(13, 4, 5, 4)),
        // mov eax, [r12*4+0]  (REX.X index 100 is r12; no base)
        (&[0x42, 0x8b, 0x04, 0xa5, 0x00, 0x00, 0x00, 0x00], load(0, 4, 8, 4)),
        // mov eax, [r13+0]  (r/m 101 with REX.B needs mod 01)
        (&[0x41, 0x8b, 0x45, 0x00], load(0, 4, 4, 4)),
        // mov eax, [r12]  (r/m 100 with REX.B still has a SIB)
        (&[0x41, 0x8b, 0x04, 0x24], load(0, 4, 4, 4)),
        // mov [r12+0x100], rax
        (&[0x49, 0x89, 0x84, 0x24, 0x00, 0x01, 0x00, 0x00], store(Source::Reg(r(0)), 8, 8)),
        // mov qword [rax+0xf0], -1
        (&[0x48, 0xc7, 0x80, 0xf0, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff],
         store(Source::Imm(u64::MAX), 8, 11)),
        // mov word [rdi], 0x1234
        (&[0x66, 0xc7, 0x07, 0x34, 0x12], store(Source::Imm(0x1234), 2, 5)),
        // mov byte [rdi+5], 0xff
        (&[0xc6, 0x47, 0x05, 0xff], store(Source::Imm(0xff), 1, 4)),
        // mov [rdi+3], r8b
        (&[0x44, 0x88, 0x47, 0x03], store(Source::Reg(r(8)), 1, 4)),
        // mov al, [rdi+2]
        (&[0x8a, 0x47, 0x02], load(0, 1, 3, 1)),
        // mov ah, [rdi+2]
        (&[0x8a, 0x67, 0x02], Decoded { len: 3, size: 1, op: Op::Load { reg: high(0), zero_extend_to: 1 } }),
        // mov spl, [rdi+2]
        (&[0x40, 0x8a, 0x67, 0x02], load(4, 1, 4, 1)),
        // movzx rax, byte [rdi+1]
        (&[0x48, 0x0f, 0xb6, 0x47, 0x01], load(0, 1, 5, 8)),
        // movzx ax, byte [rdi]
        (&[0x66, 0x0f, 0xb6, 0x07], load(0, 1, 4, 2)),
        // movzx esp, byte [rdi]  (destination is never a high byte)
        (&[0x0f, 0xb6, 0x27], load(4, 1, 3, 4)),
        // movzx r15d, word [r12]
        (&[0x45, 0x0f, 0xb7, 0x3c, 0x24], load(15, 2, 5, 4)),
        // ds mov eax, [rdi]
        (&[0x3e, 0x8b, 0x07], load(0, 4, 3, 4)),
        // cs mov [rdi], ax  (segment override before 66)
        (&[0x2e, 0x66, 0x89, 0x07], store(Source::Reg(r(0)), 2, 4)),
        // mov eax, [rcx+rdx*8+0x100]
        (&[0x8b, 0x84, 0xd1, 0x00, 0x01, 0x00, 0x00], load(0, 4, 7, 4)),
        // mov eax, [rcx+rdx*4-4]
        (&[0x8b, 0x44, 0x91, 0xfc], load(0, 4, 4, 4)),
        // mov rax, [rdi]  with 66: REX.W wins
        (&[0x66, 0x48, 0x8b, 0x07], load(0, 8, 4, 8)),
        // mov qword [rdi], 0x7fffffff  with 66: still imm32
        (&[0x66, 0x48, 0xc7, 0x07, 0xff, 0xff, 0xff, 0x7f], store(Source::Imm(0x7fff_ffff), 8, 8)),
        // mov [rdi], eax  with a REX that has no effect
        (&[0x40, 0x89, 0x07], store(Source::Reg(r(0)), 4, 3)),
        // mov byte [rip+0x10], 0x80
        (&[0xc6, 0x05, 0x10, 0x00, 0x00, 0x00, 0x80], store(Source::Imm(0x80), 1, 7)),
        // mov [rbp+0], bl  with 66 (no effect on byte moves)
        (&[0x66, 0x88, 0x5d, 0x00], store(Source::Reg(r(3)), 1, 4)),
    ];

    #[test]
    fn known_encodings() {
        for &(bytes, want) in KNOWN {
            assert_eq!(decode(bytes), Ok(want), "{bytes:02x?}");
            // Trailing bytes (the rest of the fetch) are not part of it.
            let mut fetched = bytes.to_vec();
            fetched.resize(MAX_INSTRUCTION, 0x0f);
            assert_eq!(decode(&fetched), Ok(want), "{bytes:02x?} + tail");
        }
    }

    #[test]
    fn every_short_fetch_is_truncated() {
        for &(bytes, _) in KNOWN {
            assert_eq!(decode(&bytes[..0]), Err(DecodeError::Empty));
            for k in 1..bytes.len() {
                assert_eq!(
                    decode(&bytes[..k]),
                    Err(DecodeError::Truncated { fetched: k as u8 }),
                    "{bytes:02x?} cut at {k}"
                );
            }
        }
    }

    // ---- Exhaustive forms, generated by a small assembler -----------------
    //
    // The expectations come from the instruction tables (one row per form
    // below) and from the number of bytes the assembler emitted, not from the
    // decoder's own logic.

    #[derive(Clone, Copy)]
    enum SizePrefix {
        None,
        OperandSize,
        RexW,
    }

    #[derive(Clone, Copy)]
    enum Role {
        /// ModR/M reg is the source; `byte` if it names a byte register.
        Source { byte: bool },
        /// ModR/M reg is the destination.
        Dest { byte: bool },
        /// ModR/M reg is /0; an immediate of `bytes` follows.
        Imm { bytes: usize },
    }

    struct Row {
        opcode: &'static [u8],
        prefix: SizePrefix,
        role: Role,
        size: u8,
        dest: u8,
    }

    #[rustfmt::skip]
    const ROWS: &[Row] = &[
        // MOV r/m8, r8
        Row { opcode: &[0x88], prefix: SizePrefix::None, role: Role::Source { byte: true }, size: 1, dest: 0 },
        // MOV r/m16, r16; r/m32, r32; r/m64, r64
        Row { opcode: &[0x89], prefix: SizePrefix::OperandSize, role: Role::Source { byte: false }, size: 2, dest: 0 },
        Row { opcode: &[0x89], prefix: SizePrefix::None, role: Role::Source { byte: false }, size: 4, dest: 0 },
        Row { opcode: &[0x89], prefix: SizePrefix::RexW, role: Role::Source { byte: false }, size: 8, dest: 0 },
        // MOV r8, r/m8
        Row { opcode: &[0x8a], prefix: SizePrefix::None, role: Role::Dest { byte: true }, size: 1, dest: 1 },
        // MOV r16, r/m16; r32, r/m32; r64, r/m64
        Row { opcode: &[0x8b], prefix: SizePrefix::OperandSize, role: Role::Dest { byte: false }, size: 2, dest: 2 },
        Row { opcode: &[0x8b], prefix: SizePrefix::None, role: Role::Dest { byte: false }, size: 4, dest: 4 },
        Row { opcode: &[0x8b], prefix: SizePrefix::RexW, role: Role::Dest { byte: false }, size: 8, dest: 8 },
        // MOV r/m8, imm8
        Row { opcode: &[0xc6], prefix: SizePrefix::None, role: Role::Imm { bytes: 1 }, size: 1, dest: 0 },
        // MOV r/m16, imm16; r/m32, imm32; r/m64, imm32
        Row { opcode: &[0xc7], prefix: SizePrefix::OperandSize, role: Role::Imm { bytes: 2 }, size: 2, dest: 0 },
        Row { opcode: &[0xc7], prefix: SizePrefix::None, role: Role::Imm { bytes: 4 }, size: 4, dest: 0 },
        Row { opcode: &[0xc7], prefix: SizePrefix::RexW, role: Role::Imm { bytes: 4 }, size: 8, dest: 0 },
        // MOVZX r16, r/m8; r32, r/m8; r64, r/m8
        Row { opcode: &[0x0f, 0xb6], prefix: SizePrefix::OperandSize, role: Role::Dest { byte: false }, size: 1, dest: 2 },
        Row { opcode: &[0x0f, 0xb6], prefix: SizePrefix::None, role: Role::Dest { byte: false }, size: 1, dest: 4 },
        Row { opcode: &[0x0f, 0xb6], prefix: SizePrefix::RexW, role: Role::Dest { byte: false }, size: 1, dest: 8 },
        // MOVZX r16, r/m16; r32, r/m16; r64, r/m16
        Row { opcode: &[0x0f, 0xb7], prefix: SizePrefix::OperandSize, role: Role::Dest { byte: false }, size: 2, dest: 2 },
        Row { opcode: &[0x0f, 0xb7], prefix: SizePrefix::None, role: Role::Dest { byte: false }, size: 2, dest: 4 },
        Row { opcode: &[0x0f, 0xb7], prefix: SizePrefix::RexW, role: Role::Dest { byte: false }, size: 2, dest: 8 },
    ];

    #[derive(Clone, Copy, Debug)]
    enum Disp {
        None,
        D8(i8),
        D32(i32),
    }

    /// A memory operand as an assembler sees it.
    #[derive(Clone, Copy, Debug)]
    enum Addr {
        /// `[base + index*2^scale + disp]`; `scale` is also emitted when
        /// there is no index (the CPU ignores it then).
        Based {
            base: u8,
            index: Option<u8>,
            scale: u8,
            disp: Disp,
        },
        /// `[index*2^scale + disp32]` or `[disp32]`: SIB with no base.
        NoBase {
            index: Option<u8>,
            scale: u8,
            disp: i32,
        },
        /// `[rip + disp32]`.
        Rip(i32),
    }

    fn all_addresses() -> Vec<Addr> {
        let indexes: Vec<Option<u8>> = core::iter::once(None)
            .chain((0..16).filter(|&i| i != 4).map(Some))
            .collect();
        let mut out = Vec::new();
        for base in 0..16 {
            for &index in &indexes {
                for scale in 0..4 {
                    for disp in [Disp::None, Disp::D8(-0x80), Disp::D32(0x1234_5678)] {
                        out.push(Addr::Based {
                            base,
                            index,
                            scale,
                            disp,
                        });
                    }
                }
            }
        }
        for &index in &indexes {
            for scale in 0..4 {
                out.push(Addr::NoBase {
                    index,
                    scale,
                    disp: -0x1000,
                });
            }
        }
        out.push(Addr::Rip(0x7f00_0000));
        out
    }

    /// Up to 16 bytes of assembled instruction.
    struct Asm {
        buf: [u8; 16],
        len: usize,
    }

    impl Asm {
        fn put(&mut self, bytes: &[u8]) {
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
    }

    /// Assembles `row` with ModR/M reg `reg` (0–15) and memory operand
    /// `addr`; a REX prefix is emitted when needed or when `force_rex`.
    /// Returns the bytes and whether a REX prefix was emitted.
    fn assemble(row: &Row, reg: u8, addr: Addr, force_rex: bool, imm: u64) -> (Asm, bool) {
        const MOD00: u8 = 0b00 << 6;
        const MOD01: u8 = 0b01 << 6;
        const MOD10: u8 = 0b10 << 6;
        let mut rex_w = false;
        let mut out = Asm {
            buf: [0; 16],
            len: 0,
        };
        match row.prefix {
            SizePrefix::None => {}
            SizePrefix::OperandSize => out.put(&[0x66]),
            SizePrefix::RexW => rex_w = true,
        }
        // ModR/M, optional SIB, displacement; and REX.X / REX.B.
        let (mut x, mut b) = (false, false);
        let mut tail = Asm {
            buf: [0; 16],
            len: 0,
        };
        let reg_bits = (reg & 7) << 3;
        match addr {
            Addr::Rip(d) => {
                tail.put(&[MOD00 | reg_bits | 0b101]);
                tail.put(&d.to_le_bytes());
            }
            Addr::NoBase { index, scale, disp } => {
                let idx = index.unwrap_or(0b100);
                x = idx >= 8;
                tail.put(&[
                    MOD00 | reg_bits | 0b100,
                    (scale << 6) | ((idx & 7) << 3) | 0b101,
                ]);
                tail.put(&disp.to_le_bytes());
            }
            Addr::Based {
                base,
                index,
                scale,
                disp,
            } => {
                b = base >= 8;
                // [rbp]/[r13] have no mod-00 form: use disp8 0.
                let disp = match disp {
                    Disp::None if base & 7 == 0b101 => Disp::D8(0),
                    d => d,
                };
                let mode = match disp {
                    Disp::None => MOD00,
                    Disp::D8(_) => MOD01,
                    Disp::D32(_) => MOD10,
                };
                if index.is_some() || base & 7 == 0b100 {
                    let idx = index.unwrap_or(0b100);
                    x = idx >= 8;
                    tail.put(&[
                        mode | reg_bits | 0b100,
                        (scale << 6) | ((idx & 7) << 3) | (base & 7),
                    ]);
                } else {
                    tail.put(&[mode | reg_bits | (base & 7)]);
                }
                match disp {
                    Disp::None => {}
                    Disp::D8(d) => tail.put(&d.to_le_bytes()),
                    Disp::D32(d) => tail.put(&d.to_le_bytes()),
                }
            }
        }
        let r = reg >= 8;
        let rex = force_rex || rex_w || r || x || b;
        if rex {
            out.put(&[0x40
                | (u8::from(rex_w) << 3)
                | (u8::from(r) << 2)
                | (u8::from(x) << 1)
                | u8::from(b)]);
        }
        out.put(row.opcode);
        out.put(&tail.buf[..tail.len]);
        if let Role::Imm { bytes } = row.role {
            out.put(&imm.to_le_bytes()[..bytes]);
        }
        (out, rex)
    }

    /// The register an encoding names, by the byte-register rule.
    fn named_reg(reg: u8, byte: bool, rex: bool) -> Reg {
        if byte && !rex && (4..8).contains(&reg) {
            high(reg - 4)
        } else {
            r(reg)
        }
    }

    /// Decodes every form × register × addressing mode, with and without a
    /// spare REX, fed both exactly and as a full 15-byte fetch.
    fn check_forms(opcode: &[u8]) -> usize {
        let addrs = all_addresses();
        let mut checked = 0;
        for form in ROWS.iter().filter(|f| f.opcode == opcode) {
            let (regs, imms): (&[u8], &[u64]) = match form.role {
                Role::Imm { bytes: 1 } => (&[0], &[0x7f, 0x80]),
                Role::Imm { bytes: 2 } => (&[0], &[0x7ffe, 0x8001]),
                Role::Imm { .. } => (&[0], &[0x7fff_fffe, 0x8000_0001]),
                _ => (
                    &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
                    &[0],
                ),
            };
            for &reg in regs {
                for &imm in imms {
                    for &addr in &addrs {
                        for force_rex in [false, true] {
                            let (asm, rex) = assemble(form, reg, addr, force_rex, imm);
                            let op = match form.role {
                                Role::Source { byte } => Op::Store {
                                    src: Source::Reg(named_reg(reg, byte, rex)),
                                },
                                Role::Dest { byte } => Op::Load {
                                    reg: named_reg(reg, byte, rex),
                                    zero_extend_to: form.dest,
                                },
                                Role::Imm { .. } => {
                                    let value = if form.size == 8 {
                                        imm as u32 as i32 as i64 as u64
                                    } else {
                                        imm
                                    };
                                    Op::Store {
                                        src: Source::Imm(value),
                                    }
                                }
                            };
                            let want = Ok(Decoded {
                                len: asm.len as u8,
                                size: form.size,
                                op,
                            });
                            let exact = &asm.buf[..asm.len];
                            assert_eq!(decode(exact), want, "{exact:02x?} {addr:?}");
                            let mut fetched = [0x8b; MAX_INSTRUCTION];
                            fetched[..asm.len].copy_from_slice(exact);
                            assert_eq!(decode(&fetched), want, "{exact:02x?} + tail");
                            checked += 1;
                        }
                    }
                }
            }
        }
        checked
    }

    #[test]
    fn every_mov_store_from_register() {
        // 88: 16 regs × addressing × REX or not; 89: also × 3 sizes.
        assert_eq!(check_forms(&[0x88]), 16 * all_addresses().len() * 2);
        assert_eq!(check_forms(&[0x89]), 3 * 16 * all_addresses().len() * 2);
    }

    #[test]
    fn every_mov_load_to_register() {
        assert_eq!(check_forms(&[0x8a]), 16 * all_addresses().len() * 2);
        assert_eq!(check_forms(&[0x8b]), 3 * 16 * all_addresses().len() * 2);
    }

    #[test]
    fn every_mov_store_immediate() {
        assert_eq!(check_forms(&[0xc6]), 2 * all_addresses().len() * 2);
        assert_eq!(check_forms(&[0xc7]), 3 * 2 * all_addresses().len() * 2);
    }

    #[test]
    fn every_movzx() {
        assert_eq!(
            check_forms(&[0x0f, 0xb6]),
            3 * 16 * all_addresses().len() * 2
        );
        assert_eq!(
            check_forms(&[0x0f, 0xb7]),
            3 * 16 * all_addresses().len() * 2
        );
    }

    #[test]
    fn ignored_segment_prefixes_in_any_order() {
        let body = [0x89, 0x47, 0x04]; // mov [rdi+4], eax
        for seg in [0x26, 0x2e, 0x36, 0x3e] {
            for bytes in [
                std::vec![seg, 0x89, 0x47, 0x04],
                std::vec![seg, 0x66, 0x89, 0x47, 0x04],
                std::vec![0x66, seg, 0x89, 0x47, 0x04],
                std::vec![seg, seg, 0x48, 0x89, 0x47, 0x04],
            ] {
                let d = decode(&bytes).unwrap();
                assert_eq!(usize::from(d.len), bytes.len(), "{bytes:02x?}");
                assert_eq!(
                    d.op,
                    Op::Store {
                        src: Source::Reg(r(0))
                    }
                );
                let want_size = match bytes[bytes.len() - body.len() - 1] {
                    0x48 => 8,
                    _ if bytes.contains(&0x66) => 2,
                    _ => 4,
                };
                assert_eq!(d.size, want_size, "{bytes:02x?}");
            }
        }
    }

    // ---- Errors -----------------------------------------------------------

    #[test]
    fn refused_prefixes_are_named() {
        for (p, name) in [
            (0xf0, "LOCK"),
            (0xf2, "REPNE"),
            (0xf3, "REP"),
            (0x64, "FS"),
            (0x65, "GS"),
            (0x67, "address-size"),
        ] {
            for bytes in [
                std::vec![p, 0x89, 0x07],
                std::vec![0x66, p, 0x89, 0x07],
                std::vec![0x3e, p, 0x48, 0x89, 0x07],
            ] {
                let e = decode(&bytes).unwrap_err();
                assert_eq!(e, DecodeError::UnsupportedPrefix(p));
                assert!(e.to_string().contains(name), "{e}");
            }
        }
    }

    #[test]
    fn rex_must_directly_precede_the_opcode() {
        for rex in 0x40..=0x4f {
            for next in [
                0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x40, 0x48, 0x4f,
            ] {
                assert_eq!(
                    decode(&[rex, next, 0x8b, 0x07]),
                    Err(DecodeError::MisplacedRex(rex)),
                    "{rex:02x} {next:02x}"
                );
            }
            // Directly before 0F is directly before the opcode.
            assert!(decode(&[rex, 0x0f, 0xb6, 0x07]).is_ok());
        }
    }

    const PREFIXES: [u8; 11] = [
        0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65,
    ];
    const SUPPORTED: [u8; 7] = [0x88, 0x89, 0x8a, 0x8b, 0xc6, 0xc7, 0x0f];

    #[test]
    fn every_other_one_byte_opcode_is_refused() {
        let mut refused = 0;
        for op in 0..=0xffu8 {
            if PREFIXES.contains(&op) || SUPPORTED.contains(&op) || (0x40..=0x4f).contains(&op) {
                continue;
            }
            for bytes in [[op, 0x07, 0, 0, 0, 0], [0x48, op, 0x07, 0, 0, 0]] {
                assert_eq!(decode(&bytes), Err(DecodeError::UnsupportedOpcode(op)));
            }
            refused += 1;
        }
        assert_eq!(refused, 256 - 11 - 7 - 16);
    }

    #[test]
    fn every_other_two_byte_opcode_is_refused() {
        for op in 0..=0xffu8 {
            let got = decode(&[0x0f, op, 0x07, 0, 0, 0, 0]);
            if op == 0xb6 || op == 0xb7 {
                assert!(got.is_ok());
            } else {
                assert_eq!(got, Err(DecodeError::UnsupportedOpcode0F(op)));
            }
        }
    }

    #[test]
    fn group_11_members_other_than_mov_are_refused() {
        for opcode in [0xc6, 0xc7] {
            for modrm in 0..=0xffu8 {
                let ext = (modrm >> 3) & 7;
                let got = decode(&[opcode, modrm, 0, 0, 0, 0, 0, 0, 0, 0]);
                if ext != 0 {
                    assert_eq!(got, Err(DecodeError::UnsupportedExtension { opcode, ext }));
                    assert!(
                        got.unwrap_err()
                            .to_string()
                            .contains(&std::format!("/{ext}"))
                    );
                }
            }
        }
    }

    #[test]
    fn every_register_operand_is_refused() {
        let opcodes: [&[u8]; 8] = [
            &[0x88],
            &[0x89],
            &[0x8a],
            &[0x8b],
            &[0xc6],
            &[0xc7],
            &[0x0f, 0xb6],
            &[0x0f, 0xb7],
        ];
        for opcode in opcodes {
            for modrm in 0xc0..=0xffu8 {
                if (0xc6..=0xc7).contains(&opcode[0]) && modrm & 0x38 != 0 {
                    continue; // not MOV; covered above
                }
                for rex in [None, Some(0x40), Some(0x4f)] {
                    let mut bytes: Vec<u8> = rex.into_iter().collect();
                    bytes.extend_from_slice(opcode);
                    bytes.extend_from_slice(&[modrm, 0, 0, 0, 0]);
                    assert_eq!(
                        decode(&bytes),
                        Err(DecodeError::RegisterOperand),
                        "{bytes:02x?}"
                    );
                }
            }
        }
    }

    #[test]
    fn longer_than_fifteen_bytes() {
        // 14 prefixes + opcode + ModR/M = 16 bytes.
        let mut bytes = [0x66; 16];
        bytes[14] = 0x8b;
        bytes[15] = 0x07;
        assert_eq!(decode(&bytes), Err(DecodeError::TooLong));
        assert_eq!(decode(&bytes[..15]), Err(DecodeError::TooLong));
        // Only 14 fetched: the instruction might still be 16 bytes long, but
        // what is known is that the fetch is short.
        assert_eq!(
            decode(&bytes[..14]),
            Err(DecodeError::Truncated { fetched: 14 })
        );
        // Fifteen prefixes.
        assert_eq!(decode(&[0x3e; 15]), Err(DecodeError::TooLong));
        // 10 prefixes + REX.W + C7 + ModR/M + SIB + disp32 + imm32 = 21 bytes.
        let mut long = std::vec![0x2e; 10];
        long.extend_from_slice(&[0x48, 0xc7, 0x84, 0x24, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(decode(&long), Err(DecodeError::TooLong));
        // Exactly 15 is fine: 4 prefixes + the 11-byte store.
        let mut fifteen = std::vec![0x3e; 4];
        fifteen.extend_from_slice(&[0x48, 0xc7, 0x80, 0xf0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(decode(&fifteen).map(|d| d.len), Ok(15));
    }

    #[test]
    fn every_error_reads_well() {
        let errors = [
            DecodeError::Empty,
            DecodeError::Truncated { fetched: 3 },
            DecodeError::UnsupportedPrefix(0xf0),
            DecodeError::MisplacedRex(0x48),
            DecodeError::UnsupportedOpcode(0x90),
            DecodeError::UnsupportedOpcode0F(0xbe),
            DecodeError::UnsupportedExtension {
                opcode: 0xc7,
                ext: 7,
            },
            DecodeError::RegisterOperand,
            DecodeError::TooLong,
        ];
        let texts: Vec<std::string::String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            texts[1],
            "instruction continues past the 3 bytes that could be fetched"
        );
        assert_eq!(texts[2], "unsupported LOCK prefix 0xf0");
        assert_eq!(texts[5], "unsupported opcode 0x0f 0xbe");
        assert_eq!(texts[6], "unsupported opcode 0xc7 /7");
        assert_eq!(texts[8], "instruction longer than 15 bytes");
        for t in &texts {
            assert!(!t.is_empty() && !t.contains('\n'));
        }
    }

    // ---- Register semantics -----------------------------------------------

    const OLD: u64 = 0x1111_2222_3333_4444;

    fn decoded(bytes: &[u8]) -> Decoded {
        decode(bytes).unwrap()
    }

    #[test]
    fn apply_load_follows_x86_register_writes() {
        #[rustfmt::skip]
        let cases: &[(&[u8], u64, u64)] = &[
            // mov eax, [rdi]: 32-bit writes zero-extend.
            (&[0x8b, 0x07], 0x8765_4321, 0x0000_0000_8765_4321),
            // mov rax, [rdi]
            (&[0x48, 0x8b, 0x07], 0x8765_4321_0fed_cba9, 0x8765_4321_0fed_cba9),
            // mov ax, [rdi]: 16-bit writes merge.
            (&[0x66, 0x8b, 0x07], 0xabcd, 0x1111_2222_3333_abcd),
            // mov al, [rdi]
            (&[0x8a, 0x07], 0xab, 0x1111_2222_3333_44ab),
            // mov ah, [rdi]: bits 15:8.
            (&[0x8a, 0x27], 0xab, 0x1111_2222_3333_ab44),
            // mov spl, [rdi]
            (&[0x40, 0x8a, 0x27], 0xab, 0x1111_2222_3333_44ab),
            // movzx eax, byte [rdi]: zero-extends to 64.
            (&[0x0f, 0xb6, 0x07], 0x80, 0x80),
            // movzx ax, byte [rdi]: a 16-bit destination merges.
            (&[0x66, 0x0f, 0xb6, 0x07], 0x80, 0x1111_2222_3333_0080),
            // movzx rax, word [rdi]
            (&[0x48, 0x0f, 0xb7, 0x07], 0xabcd, 0xabcd),
            // movzx eax, word [rdi]
            (&[0x0f, 0xb7, 0x07], 0xabcd, 0xabcd),
            // Only the low `size` bytes of the device value count.
            (&[0x8b, 0x07], 0xdead_beef_1234_5678, 0x1234_5678),
            (&[0x8a, 0x27], 0xfff1, 0x1111_2222_3333_f144),
            (&[0x0f, 0xb6, 0x07], 0x1ff, 0xff),
        ];
        for &(bytes, value, want) in cases {
            assert_eq!(decoded(bytes).apply_load(OLD, value), want, "{bytes:02x?}");
        }
        // A store leaves the register alone.
        assert_eq!(decoded(&[0x89, 0x07]).apply_load(OLD, 5), OLD);
    }

    #[test]
    fn store_value_takes_the_right_bits() {
        let regs = |n: u8| 0x0102_0304_0506_0700 | u64::from(n) | (u64::from(n) << 56);
        #[rustfmt::skip]
        let cases: &[(&[u8], u64)] = &[
            // mov [rdi], ah: bits 15:8 of rax.
            (&[0x88, 0x27], 0x07),
            // mov [rdi], spl
            (&[0x40, 0x88, 0x27], 0x04),
            // mov [rdi], r9b
            (&[0x44, 0x88, 0x0f], 0x09),
            // mov [rdi], ecx
            (&[0x89, 0x0f], 0x0506_0701),
            // mov [rdi], cx
            (&[0x66, 0x89, 0x0f], 0x0701),
            // mov [rdi], r15
            (&[0x4c, 0x89, 0x3f], 0x0f02_0304_0506_070f),
            // mov qword [rdi], -1 (imm32 sign-extended)
            (&[0x48, 0xc7, 0x07, 0xff, 0xff, 0xff, 0xff], u64::MAX),
            // mov dword [rdi], -1
            (&[0xc7, 0x07, 0xff, 0xff, 0xff, 0xff], 0xffff_ffff),
            // mov word [rdi], 0xfffe
            (&[0x66, 0xc7, 0x07, 0xfe, 0xff], 0xfffe),
            // mov byte [rdi], 0x80
            (&[0xc6, 0x07, 0x80], 0x80),
            // A load writes nothing.
            (&[0x8b, 0x07], 0),
        ];
        for &(bytes, want) in cases {
            assert_eq!(decoded(bytes).store_value(&regs), want, "{bytes:02x?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..24)) {
            match decode(&bytes) {
                Ok(d) => {
                    let len = usize::from(d.len);
                    proptest::prop_assert!(len <= bytes.len() && len <= MAX_INSTRUCTION);
                    proptest::prop_assert!([1, 2, 4, 8].contains(&d.size));
                    // The instruction alone decodes the same; any shorter
                    // fetch of it is truncated.
                    proptest::prop_assert_eq!(decode(&bytes[..len]), Ok(d));
                    for k in 1..len {
                        proptest::prop_assert_eq!(
                            decode(&bytes[..k]),
                            Err(DecodeError::Truncated { fetched: k as u8 })
                        );
                    }
                }
                Err(DecodeError::Truncated { fetched }) => {
                    proptest::prop_assert!(bytes.len() < MAX_INSTRUCTION);
                    proptest::prop_assert_eq!(usize::from(fetched), bytes.len());
                }
                Err(DecodeError::Empty) => proptest::prop_assert!(bytes.is_empty()),
                Err(_) => {}
            }
        }

        #[test]
        fn loads_keep_or_clear_exactly_the_right_bits(
            opcode in 0usize..9,
            old: u64,
            value: u64,
        ) {
            // (encoding, bits written, bits kept from `old`)
            let table: [(&[u8], u64, u64); 9] = [
                (&[0x8a, 0x07], 0xff, !0xff),
                (&[0x8a, 0x27], 0xff00, !0xff00),
                (&[0x66, 0x8b, 0x07], 0xffff, !0xffff),
                (&[0x8b, 0x07], 0xffff_ffff, 0),
                (&[0x48, 0x8b, 0x07], u64::MAX, 0),
                (&[0x0f, 0xb6, 0x07], 0xff, 0),
                (&[0x66, 0x0f, 0xb6, 0x07], 0xff, !0xffff),
                (&[0x0f, 0xb7, 0x07], 0xffff, 0),
                (&[0x48, 0x0f, 0xb7, 0x07], 0xffff, 0),
            ];
            let (bytes, written, kept) = table[opcode];
            let got = decoded(bytes).apply_load(old, value);
            proptest::prop_assert_eq!(got & kept, old & kept);
            let shift = written.trailing_zeros();
            proptest::prop_assert_eq!(got & written, (value << shift) & written);
            proptest::prop_assert_eq!(got & !kept & !written, 0);
        }
    }
}
