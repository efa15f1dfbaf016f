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

use crate::emulate::walk::MAX_INSTRUCTION;
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
mod tests;
