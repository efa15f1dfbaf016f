//! The x86-64 instruction forms the JIT emits, encoded into a caller's buffer: moves, loads and stores by size, arithmetic, shifts, compares and branches with 32-bit displacements (so every instruction's length is known before its target is), pushes, pops, calls through a register.
//!
//! Encodings from the Intel SDM volume 2 (REX prefix, ModRM and SIB, the
//! one-byte and `0F` opcode maps). Registers are x86 numbers 0..=15
//! ([`Reg`]); a memory operand is a base register plus a 32-bit
//! displacement, or a base plus an index register ([`Mem`]). The buffer
//! never overflows: an emitter that runs out of room records it and writes
//! nothing more ([`Asm::overflowed`]).

#![forbid(unsafe_code)]

/// An x86-64 general register by number (`rax` = 0 .. `r15` = 15).
pub type Reg = u8;

/// `rax`.
pub const RAX: Reg = 0;
/// `rcx` (shift counts go in `cl`).
pub const RCX: Reg = 1;
/// `rdx`.
pub const RDX: Reg = 2;
/// `rbx`.
pub const RBX: Reg = 3;
/// `rsp`.
pub const RSP: Reg = 4;
/// `rbp`.
pub const RBP: Reg = 5;
/// `rsi`.
pub const RSI: Reg = 6;
/// `rdi`.
pub const RDI: Reg = 7;
/// `r8`.
pub const R8: Reg = 8;
/// `r9`.
pub const R9: Reg = 9;
/// `r10`.
pub const R10: Reg = 10;
/// `r11`.
pub const R11: Reg = 11;
/// `r12`.
pub const R12: Reg = 12;
/// `r13`.
pub const R13: Reg = 13;
/// `r14`.
pub const R14: Reg = 14;
/// `r15`.
pub const R15: Reg = 15;

/// A memory operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mem {
    /// `[base + disp]`.
    Disp(Reg, i32),
    /// `[base + index]` (`index` may not be `rsp`).
    Index(Reg, Reg),
}

/// Arithmetic group-1 operations: the `/digit` of `0x81`/`0x83` and the
/// register form's opcode (`r/m op= reg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alu {
    /// `add`.
    Add,
    /// `or`.
    Or,
    /// `and`.
    And,
    /// `sub`.
    Sub,
    /// `xor`.
    Xor,
    /// `cmp`.
    Cmp,
}

impl Alu {
    fn digit(self) -> u8 {
        match self {
            Alu::Add => 0,
            Alu::Or => 1,
            Alu::And => 4,
            Alu::Sub => 5,
            Alu::Xor => 6,
            Alu::Cmp => 7,
        }
    }

    /// The `r/m op= reg` opcode (`0x01`, `0x09`, ...).
    fn store_form(self) -> u8 {
        (self.digit() << 3) | 0x01
    }
}

/// Shifts: the `/digit` of `0xC1`/`0xD3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shift {
    /// `shl`.
    Shl = 4,
    /// `shr`.
    Shr = 5,
    /// `sar`.
    Sar = 7,
}

/// Condition codes (the low nibble of `Jcc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    /// Below (unsigned `<`).
    B = 0x2,
    /// Above or equal (unsigned `>=`).
    Ae = 0x3,
    /// Equal.
    E = 0x4,
    /// Not equal.
    Ne = 0x5,
    /// Below or equal (unsigned `<=`).
    Be = 0x6,
    /// Above (unsigned `>`).
    A = 0x7,
    /// Less (signed `<`).
    L = 0xc,
    /// Greater or equal (signed `>=`).
    Ge = 0xd,
    /// Less or equal (signed `<=`).
    Le = 0xe,
    /// Greater (signed `>`).
    G = 0xf,
}

/// Bytes a `jcc rel32` takes.
pub const JCC_LEN: usize = 6;
/// Bytes a `jmp rel32` takes.
pub const JMP_LEN: usize = 5;

/// An assembler over a caller's buffer.
pub struct Asm<'b> {
    buf: &'b mut [u8],
    len: usize,
    overflow: bool,
}

impl<'b> Asm<'b> {
    /// Empty, writing into `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Asm {
            buf,
            len: 0,
            overflow: false,
        }
    }

    /// Bytes written so far (the offset of the next instruction).
    pub fn pos(&self) -> usize {
        self.len
    }

    /// Whether an instruction did not fit.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// The bytes written.
    pub fn code(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    fn byte(&mut self, b: u8) {
        match self.buf.get_mut(self.len) {
            Some(slot) if !self.overflow => {
                *slot = b;
                self.len += 1;
            }
            _ => self.overflow = true,
        }
    }

    fn bytes(&mut self, bs: &[u8]) {
        for &b in bs {
            self.byte(b);
        }
    }

    fn imm32(&mut self, v: i32) {
        self.bytes(&v.to_le_bytes());
    }

    /// A REX prefix for `w` (64-bit operand), `reg` (ModRM.reg), `index`
    /// (SIB.index) and `base` (ModRM.rm or SIB.base); written when
    /// needed, or always with `force` (byte registers `spl`..`dil`).
    fn rex(&mut self, w: bool, reg: Reg, index: Reg, base: Reg, force: bool) {
        let r = u8::from(w) << 3 | (reg >> 3 & 1) << 2 | (index >> 3 & 1) << 1 | (base >> 3 & 1);
        if r != 0 || force {
            self.byte(0x40 | r);
        }
    }

    /// ModRM (and SIB and displacement) for register `reg` and operand
    /// `m`.
    fn modrm_mem(&mut self, reg: Reg, m: Mem) {
        let reg = (reg & 7) << 3;
        match m {
            Mem::Disp(base, disp) => {
                // Always a 32-bit displacement: mod 10.
                self.byte(0x80 | reg | (base & 7));
                if base & 7 == RSP {
                    self.byte(0x24);
                }
                self.imm32(disp);
            }
            Mem::Index(base, index) => {
                // mod 00 with a SIB, unless the base is rbp/r13, which
                // needs mod 01 and a zero displacement.
                let needs_disp = base & 7 == RBP;
                self.byte(if needs_disp { 0x44 } else { 0x04 } | reg);
                self.byte(((index & 7) << 3) | (base & 7));
                if needs_disp {
                    self.byte(0);
                }
            }
        }
    }

    fn mem_regs(m: Mem) -> (Reg, Reg) {
        match m {
            Mem::Disp(base, _) => (0, base),
            Mem::Index(base, index) => (index, base),
        }
    }

    /// An instruction `opcode` with a register and a memory operand.
    fn op_mem(&mut self, prefix: Option<u8>, w: bool, opcode: &[u8], reg: Reg, m: Mem, byte: bool) {
        if let Some(p) = prefix {
            self.byte(p);
        }
        let (index, base) = Self::mem_regs(m);
        self.rex(w, reg, index, base, byte && (4..8).contains(&reg));
        self.bytes(opcode);
        self.modrm_mem(reg, m);
    }

    /// An instruction `opcode` with two register operands (`reg` in
    /// ModRM.reg, `rm` in ModRM.rm).
    fn op_rr(&mut self, w: bool, opcode: &[u8], reg: Reg, rm: Reg) {
        self.rex(w, reg, 0, rm, false);
        self.bytes(opcode);
        self.byte(0xc0 | (reg & 7) << 3 | (rm & 7));
    }

    /// `mov dst, src` (64-bit, or 32-bit zero-extending).
    pub fn mov_rr(&mut self, w: bool, dst: Reg, src: Reg) {
        self.op_rr(w, &[0x89], src, dst);
    }

    /// `dst = imm` in the shortest form that gives the 64-bit value.
    pub fn mov_ri(&mut self, dst: Reg, imm: u64) {
        if imm == 0 {
            // xor r32, r32
            self.op_rr(false, &[0x31], dst, dst);
        } else if imm <= u64::from(u32::MAX) {
            self.rex(false, 0, 0, dst, false);
            self.byte(0xb8 | (dst & 7));
            self.imm32(imm as u32 as i32);
        } else if let Ok(v) = i32::try_from(imm as i64) {
            self.rex(true, 0, 0, dst, false);
            self.byte(0xc7);
            self.byte(0xc0 | (dst & 7));
            self.imm32(v);
        } else {
            self.movabs(dst, imm);
        }
    }

    /// `movabs dst, imm64` (always ten bytes).
    pub fn movabs(&mut self, dst: Reg, imm: u64) {
        self.rex(true, 0, 0, dst, false);
        self.byte(0xb8 | (dst & 7));
        self.bytes(&imm.to_le_bytes());
    }

    /// `op dst, src` (register to register).
    pub fn alu_rr(&mut self, w: bool, op: Alu, dst: Reg, src: Reg) {
        self.op_rr(w, &[op.store_form()], src, dst);
    }

    /// `op dst, imm` (`imm` sign-extended to 64 bits for `w`).
    pub fn alu_ri(&mut self, w: bool, op: Alu, dst: Reg, imm: i32) {
        self.rex(w, 0, 0, dst, false);
        if let Ok(b) = i8::try_from(imm) {
            self.byte(0x83);
            self.byte(0xc0 | op.digit() << 3 | (dst & 7));
            self.byte(b as u8);
        } else {
            self.byte(0x81);
            self.byte(0xc0 | op.digit() << 3 | (dst & 7));
            self.imm32(imm);
        }
    }

    /// `op qword [m], imm` (sign-extended).
    pub fn alu_mi(&mut self, op: Alu, m: Mem, imm: i32) {
        let (index, base) = Self::mem_regs(m);
        self.rex(true, 0, index, base, false);
        if let Ok(b) = i8::try_from(imm) {
            self.byte(0x83);
            self.modrm_mem(op.digit(), m);
            self.byte(b as u8);
        } else {
            self.byte(0x81);
            self.modrm_mem(op.digit(), m);
            self.imm32(imm);
        }
    }

    /// `cmp reg, qword [m]`.
    pub fn cmp_rm(&mut self, reg: Reg, m: Mem) {
        self.op_mem(None, true, &[0x3b], reg, m, false);
    }

    /// `add reg, qword [m]`.
    pub fn add_rm(&mut self, reg: Reg, m: Mem) {
        self.op_mem(None, true, &[0x03], reg, m, false);
    }

    /// `test a, b`.
    pub fn test_rr(&mut self, w: bool, a: Reg, b: Reg) {
        self.op_rr(w, &[0x85], b, a);
    }

    /// `test dst, imm` (sign-extended for `w`).
    pub fn test_ri(&mut self, w: bool, dst: Reg, imm: i32) {
        self.rex(w, 0, 0, dst, false);
        self.byte(0xf7);
        self.byte(0xc0 | (dst & 7));
        self.imm32(imm);
    }

    /// `imul dst, src`.
    pub fn imul_rr(&mut self, w: bool, dst: Reg, src: Reg) {
        self.op_rr(w, &[0x0f, 0xaf], dst, src);
    }

    /// `div src` (unsigned: `rdx:rax / src`).
    pub fn div_r(&mut self, w: bool, src: Reg) {
        self.op_rr(w, &[0xf7], 6, src);
    }

    /// `neg dst`.
    pub fn neg_r(&mut self, w: bool, dst: Reg) {
        self.op_rr(w, &[0xf7], 3, dst);
    }

    /// `shift dst, imm`.
    pub fn shift_ri(&mut self, w: bool, s: Shift, dst: Reg, imm: u8) {
        self.op_rr(w, &[0xc1], s as u8, dst);
        self.byte(imm);
    }

    /// `shift dst, cl`.
    pub fn shift_rcl(&mut self, w: bool, s: Shift, dst: Reg) {
        self.op_rr(w, &[0xd3], s as u8, dst);
    }

    /// `bswap dst` (32 or 64 bits).
    pub fn bswap(&mut self, w: bool, dst: Reg) {
        self.rex(w, 0, 0, dst, false);
        self.byte(0x0f);
        self.byte(0xc8 | (dst & 7));
    }

    /// `rol dst16, 8`: swaps the low two bytes.
    pub fn rol16_8(&mut self, dst: Reg) {
        self.byte(0x66);
        self.op_rr(false, &[0xc1], 0, dst);
        self.byte(8);
    }

    /// `movzx dst32, src16`.
    pub fn movzx16_rr(&mut self, dst: Reg, src: Reg) {
        self.op_rr(false, &[0x0f, 0xb7], dst, src);
    }

    /// A load of `size` bytes (1, 2, 4 or 8) at `m` into `dst`,
    /// zero-extended.
    pub fn load(&mut self, size: u8, dst: Reg, m: Mem) {
        match size {
            1 => self.op_mem(None, false, &[0x0f, 0xb6], dst, m, false),
            2 => self.op_mem(None, false, &[0x0f, 0xb7], dst, m, false),
            4 => self.op_mem(None, false, &[0x8b], dst, m, false),
            _ => self.op_mem(None, true, &[0x8b], dst, m, false),
        }
    }

    /// A store of the low `size` bytes (1, 2, 4 or 8) of `src` at `m`.
    pub fn store(&mut self, size: u8, m: Mem, src: Reg) {
        match size {
            1 => self.op_mem(None, false, &[0x88], src, m, true),
            2 => self.op_mem(Some(0x66), false, &[0x89], src, m, false),
            4 => self.op_mem(None, false, &[0x89], src, m, false),
            _ => self.op_mem(None, true, &[0x89], src, m, false),
        }
    }

    /// A store of `size` bytes of `imm` (sign-extended for 8) at `m`.
    pub fn store_imm(&mut self, size: u8, m: Mem, imm: i32) {
        match size {
            1 => {
                self.op_mem(None, false, &[0xc6], 0, m, false);
                self.byte(imm as u8);
            }
            2 => {
                self.op_mem(Some(0x66), false, &[0xc7], 0, m, false);
                self.bytes(&(imm as u16).to_le_bytes());
            }
            4 => {
                self.op_mem(None, false, &[0xc7], 0, m, false);
                self.imm32(imm);
            }
            _ => {
                self.op_mem(None, true, &[0xc7], 0, m, false);
                self.imm32(imm);
            }
        }
    }

    /// `lock add [m], src` (4 or 8 bytes).
    pub fn lock_add(&mut self, size: u8, m: Mem, src: Reg) {
        self.byte(0xf0);
        self.op_mem(None, size == 8, &[0x01], src, m, false);
    }

    /// `lea dst, [m]`.
    pub fn lea(&mut self, dst: Reg, m: Mem) {
        self.op_mem(None, true, &[0x8d], dst, m, false);
    }

    /// `jcc` to offset `target` (rel32).
    pub fn jcc(&mut self, c: Cond, target: usize) {
        let end = self.len + JCC_LEN;
        self.bytes(&[0x0f, 0x80 | c as u8]);
        self.imm32(rel(end, target));
    }

    /// `jmp` to offset `target` (rel32).
    pub fn jmp(&mut self, target: usize) {
        let end = self.len + JMP_LEN;
        self.byte(0xe9);
        self.imm32(rel(end, target));
    }

    /// Points the branch of `len` bytes at `at` (its rel32 last) to
    /// `target`: for branches emitted before their target was known.
    pub fn patch_branch(&mut self, at: usize, len: usize, target: usize) {
        let r = rel(at + len, target).to_le_bytes();
        if let Some(field) = self.buf.get_mut(at + len - 4..at + len) {
            field.copy_from_slice(&r);
        }
    }

    /// `call reg`.
    pub fn call_r(&mut self, r: Reg) {
        self.rex(false, 0, 0, r, false);
        self.byte(0xff);
        self.byte(0xd0 | (r & 7));
    }

    /// `push r`.
    pub fn push(&mut self, r: Reg) {
        self.rex(false, 0, 0, r, false);
        self.byte(0x50 | (r & 7));
    }

    /// `pop r`.
    pub fn pop(&mut self, r: Reg) {
        self.rex(false, 0, 0, r, false);
        self.byte(0x58 | (r & 7));
    }

    /// `ret`.
    pub fn ret(&mut self) {
        self.byte(0xc3);
    }
}

/// The rel32 from the end of a branch at `end` to `target` (offsets in
/// one buffer, so the difference fits: the buffer is far smaller than
/// 2 GiB).
fn rel(end: usize, target: usize) -> i32 {
    (target as i64 - end as i64) as i32
}
