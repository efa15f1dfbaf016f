//! A small x86-64 emulator for host tests only: the oracle that runs the eBPF JIT's machine code (decoded by `iced-x86`) and turns the JIT's bugs into errors.
//!
//! The code runs as a System V function called from Rust: [`run`] pushes a
//! sentinel return address on a stack the emulator owns, starts at the
//! entry point and stops at the `ret` that pops the sentinel. Everything is
//! checked that would go wrong on hardware or that the JIT must never rely
//! on: every fetch is inside the code, every memory access is mapped (the
//! stack at or above `rsp`, as the hypervisor's target has no red zone, or
//! the [`Bus`]), flags that an instruction leaves undefined are never read,
//! a `call` out of the code is made with a 16-byte aligned `rsp` and cannot
//! keep values in caller-saved registers or flags, no division faults, and
//! the callee-saved registers and `rsp` are intact at the final `ret`.
//! Only the instructions a JIT needs are emulated; anything else is
//! [`EmuError::Unsupported`].

#![forbid(unsafe_code)]

use iced_x86::{
    ConditionCode, Decoder, DecoderOptions, Formatter, Instruction, Mnemonic, NasmFormatter,
    OpKind, Register,
};

/// Index of `rax` in [`Cpu::regs`].
pub const RAX: usize = 0;
/// Index of `rcx` in [`Cpu::regs`].
pub const RCX: usize = 1;
/// Index of `rdx` in [`Cpu::regs`].
pub const RDX: usize = 2;
/// Index of `rbx` in [`Cpu::regs`].
pub const RBX: usize = 3;
/// Index of `rsp` in [`Cpu::regs`].
pub const RSP: usize = 4;
/// Index of `rbp` in [`Cpu::regs`].
pub const RBP: usize = 5;
/// Index of `rsi` in [`Cpu::regs`].
pub const RSI: usize = 6;
/// Index of `rdi` in [`Cpu::regs`].
pub const RDI: usize = 7;
/// Index of `r8` in [`Cpu::regs`] (`r9`..`r15` follow).
pub const R8: usize = 8;
/// Index of `r9` in [`Cpu::regs`].
pub const R9: usize = 9;
/// Index of `r10` in [`Cpu::regs`].
pub const R10: usize = 10;
/// Index of `r11` in [`Cpu::regs`].
pub const R11: usize = 11;
/// Index of `r12` in [`Cpu::regs`].
pub const R12: usize = 12;
/// Index of `r13` in [`Cpu::regs`].
pub const R13: usize = 13;
/// Index of `r14` in [`Cpu::regs`].
pub const R14: usize = 14;
/// Index of `r15` in [`Cpu::regs`].
pub const R15: usize = 15;

/// One past the top of the emulator's stack; `rsp` is this (16-byte
/// aligned) before the sentinel return address is pushed.
pub const STACK_TOP: u64 = 0x7fff_0000_0000;
/// Size of the emulator's stack, which spans `STACK_TOP - STACK_SIZE ..
/// STACK_TOP`.
pub const STACK_SIZE: usize = 64 * 1024;
/// The return address [`run`] pushes: the `ret` that pops it ends the run.
pub const RETURN_SENTINEL: u64 = 0x0000_5e47_1e00_0000;
/// Base of the garbage written into the caller-saved registers after a
/// call out (`CLOBBER ^ index`).
pub const CLOBBER: u64 = 0xdead_beef_dead_beef;
/// The byte the stack is filled with when a run starts.
const STACK_FILL: u8 = 0xcc;

/// The registers a call out may clobber (besides `rax`, the result).
const CALLER_SAVED: [usize; 8] = [RCX, RDX, RSI, RDI, R8, R9, R10, R11];
/// The registers a System V function must preserve (besides `rsp`).
const CALLEE_SAVED: [usize; 6] = [RBX, RBP, R12, R13, R14, R15];

/// The status flags a JIT can branch on; `None` is undefined (never
/// written, or left undefined by the last instruction that wrote flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// Carry.
    pub cf: Option<bool>,
    /// Zero.
    pub zf: Option<bool>,
    /// Sign.
    pub sf: Option<bool>,
    /// Overflow.
    pub of: Option<bool>,
    /// Parity (of the low byte of the result).
    pub pf: Option<bool>,
}

impl Flags {
    /// All flags undefined.
    pub const UNDEFINED: Flags = Flags {
        cf: None,
        zf: None,
        sf: None,
        of: None,
        pf: None,
    };
}

/// Register file indexed by x86 register number: 0 rax, 1 rcx, 2 rdx,
/// 3 rbx, 4 rsp, 5 rbp, 6 rsi, 7 rdi, 8..15 r8..r15; and the flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    /// The general-purpose registers (see the `RAX`..`R15` indices).
    pub regs: [u64; 16],
    /// The status flags.
    pub flags: Flags,
}

impl Cpu {
    /// All registers zero, all flags undefined.
    pub fn new() -> Self {
        Cpu {
            regs: [0; 16],
            flags: Flags::UNDEFINED,
        }
    }
}

impl Default for Cpu {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a run stopped before the final `ret`. `rip` is the address of the
/// instruction at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmuError {
    /// The bytes at `rip` are no valid instruction (or run past the code).
    Decode {
        /// Address of the instruction.
        rip: u64,
    },
    /// Control reached `rip`, which is outside the code.
    Fetch {
        /// The address fetched from.
        rip: u64,
    },
    /// A valid instruction the emulator does not do (`text` is its NASM
    /// form), or an unsupported form of one (a segment override, 32-bit
    /// addressing, a misplaced `lock`).
    Unsupported {
        /// Address of the instruction.
        rip: u64,
        /// The instruction, formatted.
        text: String,
    },
    /// An access to memory that is neither the stack (at or above `rsp`:
    /// no red zone) nor mapped by the bus (or a write the bus refused).
    Memory {
        /// Address of the instruction.
        rip: u64,
        /// First byte accessed.
        addr: u64,
        /// Bytes accessed.
        size: usize,
        /// Whether it was a write.
        write: bool,
    },
    /// The run took more than `max_steps` instructions.
    Steps,
    /// A conditional instruction read a flag that is undefined.
    FlagsUndefined {
        /// Address of the instruction.
        rip: u64,
    },
    /// A call out of the code with `rsp` not 16-byte aligned at the call.
    Misaligned {
        /// Address of the `call`.
        rip: u64,
    },
    /// A call out of the code to an address the bus has nothing at.
    CallTarget {
        /// Address of the `call`.
        rip: u64,
        /// Where it called.
        target: u64,
    },
    /// A `div` or `idiv` by zero or whose quotient overflows (#DE).
    Divide {
        /// Address of the instruction.
        rip: u64,
    },
    /// The final `ret` found a callee-saved register (`rbx`, `rbp`,
    /// `r12`..`r15`) changed, or `rsp` not back where the call left it
    /// (popped the sentinel through a `ret imm16`, or from elsewhere).
    CalleeSaved {
        /// Address of the `ret`.
        rip: u64,
        /// The register's index in [`Cpu::regs`].
        reg: usize,
    },
}

/// Memory outside the emulator's stack, and the functions the code calls.
pub trait Bus {
    /// Reads `size` (1, 2, 4 or 8) bytes little-endian at `addr`; Err(()) if unmapped.
    fn read(&mut self, addr: u64, size: usize) -> Result<u64, ()>;
    /// Writes the low `size` bytes of `value` at `addr`; Err(()) if unmapped or read-only.
    fn write(&mut self, addr: u64, size: usize, value: u64) -> Result<(), ()>;
    /// A `call` to `target`, an address outside the code: the bus plays the callee
    /// (System V AMD64 calling convention: args in rdi, rsi, rdx, rcx, r8, r9; result in rax).
    /// Returns false if nothing lives at `target` (the emulator then reports an error).
    fn call_out(&mut self, target: u64, cpu: &mut Cpu) -> bool;
}

/// Runs `code` (loaded at address `base`) from `base + entry` until the `ret` that pops
/// the sentinel return address the emulator pushed first; at most `max_steps` instructions.
///
/// `cpu` holds the arguments on entry and the result on return; its `rsp`
/// is set here: [`STACK_TOP`] `- 8`, just below the pushed
/// [`RETURN_SENTINEL`], as after a real `call`. Returns the number of
/// instructions executed (the final `ret` included).
pub fn run(
    code: &[u8],
    base: u64,
    entry: u64,
    cpu: &mut Cpu,
    bus: &mut impl Bus,
    max_steps: usize,
) -> Result<u64, EmuError> {
    let saved = CALLEE_SAVED.map(|r| cpu.regs[r]);
    let mut rip = base.wrapping_add(entry);
    let mut machine = Machine {
        cpu,
        bus,
        stack: vec![STACK_FILL; STACK_SIZE],
        rip,
        base,
        len: code.len() as u64,
    };
    machine.cpu.regs[RSP] = STACK_TOP;
    machine.push(RETURN_SENTINEL)?;
    let mut decoder = Decoder::with_ip(64, code, base, DecoderOptions::NONE);
    let mut steps = 0u64;
    loop {
        if steps >= max_steps as u64 {
            return Err(EmuError::Steps);
        }
        if !machine.in_code(rip) {
            return Err(EmuError::Fetch { rip });
        }
        decoder.set_ip(rip);
        decoder
            .set_position((rip - base) as usize)
            .map_err(|_| EmuError::Fetch { rip })?;
        let ins = decoder.decode();
        if ins.is_invalid() {
            return Err(EmuError::Decode { rip });
        }
        machine.rip = rip;
        steps += 1;
        match machine.step(&ins)? {
            Flow::Next => rip = ins.next_ip(),
            Flow::Jump(target) => rip = target,
            Flow::Done => {
                for (&reg, &value) in CALLEE_SAVED.iter().zip(&saved) {
                    if machine.cpu.regs[reg] != value {
                        return Err(EmuError::CalleeSaved { rip, reg });
                    }
                }
                if machine.cpu.regs[RSP] != STACK_TOP {
                    return Err(EmuError::CalleeSaved { rip, reg: RSP });
                }
                return Ok(steps);
            }
        }
    }
}

/// What an instruction does to control flow.
enum Flow {
    /// Fall through to the next instruction.
    Next,
    /// Continue at this address.
    Jump(u64),
    /// The final `ret`.
    Done,
}

/// A resolved operand that can be read and written: a register, or
/// memory at an address with a size (the address is computed once, before
/// any register changes).
#[derive(Clone, Copy)]
enum Place {
    Reg(Register),
    Mem(u64, usize),
}

impl Place {
    fn size(self) -> usize {
        match self {
            Place::Reg(r) => r.size(),
            Place::Mem(_, size) => size,
        }
    }
}

/// The state of one run.
struct Machine<'c, 'b, B: Bus> {
    cpu: &'c mut Cpu,
    bus: &'b mut B,
    stack: Vec<u8>,
    /// Address of the instruction being executed (for errors).
    rip: u64,
    base: u64,
    len: u64,
}

/// All ones in the low `size` bytes.
fn mask(size: usize) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    }
}

/// The sign bit of a `size`-byte value.
fn sign_bit(size: usize) -> u64 {
    1u64 << (size * 8 - 1)
}

/// Sign-extends the low `size` bytes of `value`.
fn sext(value: u64, size: usize) -> i64 {
    let shift = 64 - size as u32 * 8;
    ((value << shift) as i64) >> shift
}

/// The full register's index and whether `r` is `ah`/`ch`/`dh`/`bh`, for
/// a general-purpose register.
fn gpr(r: Register) -> Option<(usize, bool)> {
    if !r.is_gpr() {
        return None;
    }
    let index = r.full_register() as usize - Register::RAX as usize;
    Some((
        index,
        matches!(r, Register::AH | Register::CH | Register::DH | Register::BH),
    ))
}

/// `setcc` or `cmovcc`, any condition.
fn is_setcc_or_cmovcc(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Seto | Setno
            | Setb
            | Setae
            | Sete
            | Setne
            | Setbe
            | Seta
            | Sets
            | Setns
            | Setp
            | Setnp
            | Setl
            | Setge
            | Setle
            | Setg
            | Cmovo
            | Cmovno
            | Cmovb
            | Cmovae
            | Cmove
            | Cmovne
            | Cmovbe
            | Cmova
            | Cmovs
            | Cmovns
            | Cmovp
            | Cmovnp
            | Cmovl
            | Cmovge
            | Cmovle
            | Cmovg
    )
}

/// The accumulator and its high half (`rdx` & co.) for an operand size.
fn acc_pair(size: usize) -> (Register, Register) {
    match size {
        1 => (Register::AL, Register::AH),
        2 => (Register::AX, Register::DX),
        4 => (Register::EAX, Register::EDX),
        _ => (Register::RAX, Register::RDX),
    }
}

impl<B: Bus> Machine<'_, '_, B> {
    fn in_code(&self, addr: u64) -> bool {
        addr.wrapping_sub(self.base) < self.len
    }

    fn unsupported(&self, ins: &Instruction) -> EmuError {
        let mut text = String::new();
        NasmFormatter::new().format(ins, &mut text);
        EmuError::Unsupported {
            rip: self.rip,
            text,
        }
    }

    fn mem_err(&self, addr: u64, size: usize, write: bool) -> EmuError {
        EmuError::Memory {
            rip: self.rip,
            addr,
            size,
            write,
        }
    }

    // ---- registers ----

    fn reg(&self, r: Register) -> u64 {
        let Some((index, high)) = gpr(r) else {
            return 0;
        };
        let value = self.cpu.regs[index];
        if high {
            (value >> 8) & 0xff
        } else {
            value & mask(r.size())
        }
    }

    fn set_reg(&mut self, r: Register, value: u64) {
        let Some((index, high)) = gpr(r) else { return };
        let old = self.cpu.regs[index];
        self.cpu.regs[index] = match (r.size(), high) {
            (_, true) => (old & !0xff00) | ((value & 0xff) << 8),
            (1, false) => (old & !0xff) | (value & 0xff),
            (2, _) => (old & !0xffff) | (value & 0xffff),
            (4, _) => value & 0xffff_ffff,
            _ => value,
        };
    }

    // ---- memory ----

    /// Where `size` bytes at `addr` are: `Some(Ok(offset))` in the stack,
    /// `Some(Err(()))` straddling its edge (or wrapping), `None` outside.
    fn stack_offset(addr: u64, size: usize) -> Option<Result<usize, ()>> {
        let bottom = STACK_TOP - STACK_SIZE as u64;
        let Some(end) = addr.checked_add(size as u64) else {
            return Some(Err(()));
        };
        if addr >= bottom && end <= STACK_TOP {
            Some(Ok((addr - bottom) as usize))
        } else if addr < STACK_TOP && end > bottom {
            Some(Err(()))
        } else {
            None
        }
    }

    /// The stack offset of an operand access at `addr`, `Ok(None)` if it
    /// is the bus's. The stack below `rsp` is not the code's: the
    /// hypervisor's target has no red zone (an interrupt may overwrite it).
    fn stack_operand(
        &self,
        addr: u64,
        size: usize,
        write: bool,
    ) -> Result<Option<usize>, EmuError> {
        match Self::stack_offset(addr, size) {
            Some(Ok(off)) if addr >= self.cpu.regs[RSP] => Ok(Some(off)),
            Some(_) => Err(self.mem_err(addr, size, write)),
            None => Ok(None),
        }
    }

    /// The stack offset of the 8-byte slot at `addr` for a push or pop.
    fn stack_slot(&self, addr: u64, write: bool) -> Result<usize, EmuError> {
        match Self::stack_offset(addr, 8) {
            Some(Ok(off)) => Ok(off),
            _ => Err(self.mem_err(addr, 8, write)),
        }
    }

    fn stack_read(&self, off: usize, size: usize) -> u64 {
        let mut bytes = [0u8; 8];
        bytes[..size].copy_from_slice(&self.stack[off..off + size]);
        u64::from_le_bytes(bytes)
    }

    fn stack_write(&mut self, off: usize, size: usize, value: u64) {
        self.stack[off..off + size].copy_from_slice(&value.to_le_bytes()[..size]);
    }

    /// Reads a memory operand: the stack (at or above `rsp`) or the bus.
    fn load(&mut self, addr: u64, size: usize) -> Result<u64, EmuError> {
        if let Some(off) = self.stack_operand(addr, size, false)? {
            return Ok(self.stack_read(off, size));
        }
        match self.bus.read(addr, size) {
            Ok(value) => Ok(value & mask(size)),
            Err(()) => Err(self.mem_err(addr, size, false)),
        }
    }

    /// Writes a memory operand: the stack (at or above `rsp`) or the bus.
    fn store(&mut self, addr: u64, size: usize, value: u64) -> Result<(), EmuError> {
        if let Some(off) = self.stack_operand(addr, size, true)? {
            self.stack_write(off, size, value);
            return Ok(());
        }
        self.bus
            .write(addr, size, value & mask(size))
            .map_err(|()| self.mem_err(addr, size, true))
    }

    /// Pushes on the stack (never the bus).
    fn push(&mut self, value: u64) -> Result<(), EmuError> {
        let rsp = self.cpu.regs[RSP].wrapping_sub(8);
        let off = self.stack_slot(rsp, true)?;
        self.stack_write(off, 8, value);
        self.cpu.regs[RSP] = rsp;
        Ok(())
    }

    /// Pops from the stack (never the bus).
    fn pop(&mut self) -> Result<u64, EmuError> {
        let rsp = self.cpu.regs[RSP];
        let off = self.stack_slot(rsp, false)?;
        self.cpu.regs[RSP] = rsp.wrapping_add(8);
        Ok(self.stack_read(off, 8))
    }

    // ---- operands ----

    /// The effective address of the memory operand: base + index*scale +
    /// displacement, 64-bit addressing only, no segment override.
    fn address(&self, ins: &Instruction) -> Result<u64, EmuError> {
        if ins.has_segment_prefix() {
            return Err(self.unsupported(ins));
        }
        // For RIP-relative operands iced gives the absolute target here.
        let mut addr = ins.memory_displacement64();
        match ins.memory_base() {
            Register::None | Register::RIP => {}
            r if r.is_gpr64() => addr = addr.wrapping_add(self.reg(r)),
            _ => return Err(self.unsupported(ins)),
        }
        match ins.memory_index() {
            Register::None => {}
            r if r.is_gpr64() => {
                let scaled = self
                    .reg(r)
                    .wrapping_mul(u64::from(ins.memory_index_scale()));
                addr = addr.wrapping_add(scaled);
            }
            _ => return Err(self.unsupported(ins)),
        }
        Ok(addr)
    }

    /// Operand `n` as a place (a general-purpose register or memory).
    fn place(&self, ins: &Instruction, n: u32) -> Result<Place, EmuError> {
        match ins.op_kind(n) {
            OpKind::Register if ins.op_register(n).is_gpr() => Ok(Place::Reg(ins.op_register(n))),
            OpKind::Memory => {
                let size = ins.memory_size().size();
                if !matches!(size, 1 | 2 | 4 | 8) {
                    return Err(self.unsupported(ins));
                }
                Ok(Place::Mem(self.address(ins)?, size))
            }
            _ => Err(self.unsupported(ins)),
        }
    }

    /// The size of operand `n` (a place or an immediate).
    fn op_size(&self, ins: &Instruction, n: u32) -> Result<usize, EmuError> {
        Ok(match ins.op_kind(n) {
            OpKind::Immediate8 | OpKind::Immediate8_2nd => 1,
            OpKind::Immediate16 | OpKind::Immediate8to16 => 2,
            OpKind::Immediate32 | OpKind::Immediate8to32 => 4,
            OpKind::Immediate64 | OpKind::Immediate8to64 | OpKind::Immediate32to64 => 8,
            _ => self.place(ins, n)?.size(),
        })
    }

    fn get(&mut self, place: Place) -> Result<u64, EmuError> {
        match place {
            Place::Reg(r) => Ok(self.reg(r)),
            Place::Mem(addr, size) => self.load(addr, size),
        }
    }

    fn put(&mut self, place: Place, value: u64) -> Result<(), EmuError> {
        match place {
            Place::Reg(r) => {
                self.set_reg(r, value);
                Ok(())
            }
            Place::Mem(addr, size) => self.store(addr, size, value),
        }
    }

    /// The value of source operand `n` (immediates sign-extended as
    /// encoded), truncated to `size` bytes.
    fn operand(&mut self, ins: &Instruction, n: u32, size: usize) -> Result<u64, EmuError> {
        let value = match ins.op_kind(n) {
            OpKind::Immediate8
            | OpKind::Immediate8_2nd
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64 => ins.immediate(n),
            _ => {
                let place = self.place(ins, n)?;
                self.get(place)?
            }
        };
        Ok(value & mask(size))
    }

    /// The target of a `jmp`/`call`: a relative branch, a register or memory.
    fn branch_target(&mut self, ins: &Instruction) -> Result<u64, EmuError> {
        match ins.op_kind(0) {
            OpKind::NearBranch64 => Ok(ins.near_branch64()),
            OpKind::Register | OpKind::Memory if self.op_size(ins, 0)? == 8 => {
                self.operand(ins, 0, 8)
            }
            _ => Err(self.unsupported(ins)),
        }
    }

    // ---- flags ----

    fn set_result_flags(&mut self, result: u64, size: usize) {
        let f = &mut self.cpu.flags;
        f.zf = Some(result & mask(size) == 0);
        f.sf = Some(result & sign_bit(size) != 0);
        f.pf = Some((result as u8).count_ones().is_multiple_of(2));
    }

    fn logic_flags(&mut self, result: u64, size: usize) -> u64 {
        self.set_result_flags(result, size);
        self.cpu.flags.cf = Some(false);
        self.cpu.flags.of = Some(false);
        result
    }

    fn add_flags(&mut self, a: u64, b: u64, size: usize) -> u64 {
        let r = a.wrapping_add(b) & mask(size);
        self.set_result_flags(r, size);
        self.cpu.flags.cf = Some(r < a);
        self.cpu.flags.of = Some((a ^ r) & (b ^ r) & sign_bit(size) != 0);
        r
    }

    fn sub_flags(&mut self, a: u64, b: u64, size: usize) -> u64 {
        let r = a.wrapping_sub(b) & mask(size);
        self.set_result_flags(r, size);
        self.cpu.flags.cf = Some(a < b);
        self.cpu.flags.of = Some((a ^ b) & (a ^ r) & sign_bit(size) != 0);
        r
    }

    /// Whether condition `cc` holds; an error if it reads an undefined flag.
    fn condition(&self, cc: ConditionCode) -> Result<bool, EmuError> {
        let f = self.cpu.flags;
        let undefined = EmuError::FlagsUndefined { rip: self.rip };
        let get = |flag: Option<bool>| flag.ok_or(undefined.clone());
        Ok(match cc {
            ConditionCode::o => get(f.of)?,
            ConditionCode::no => !get(f.of)?,
            ConditionCode::b => get(f.cf)?,
            ConditionCode::ae => !get(f.cf)?,
            ConditionCode::e => get(f.zf)?,
            ConditionCode::ne => !get(f.zf)?,
            ConditionCode::be => get(f.cf)? | get(f.zf)?,
            ConditionCode::a => !(get(f.cf)? | get(f.zf)?),
            ConditionCode::s => get(f.sf)?,
            ConditionCode::ns => !get(f.sf)?,
            ConditionCode::p => get(f.pf)?,
            ConditionCode::np => !get(f.pf)?,
            ConditionCode::l => get(f.sf)? != get(f.of)?,
            ConditionCode::ge => get(f.sf)? == get(f.of)?,
            ConditionCode::le => get(f.zf)? | (get(f.sf)? != get(f.of)?),
            ConditionCode::g => !get(f.zf)? & (get(f.sf)? == get(f.of)?),
            _ => return Err(undefined),
        })
    }

    // ---- calls ----

    /// A call to `target` outside the code: the bus plays the callee.
    fn call_out(&mut self, target: u64) -> Result<(), EmuError> {
        if !self.cpu.regs[RSP].is_multiple_of(16) {
            return Err(EmuError::Misaligned { rip: self.rip });
        }
        if !self.bus.call_out(target, self.cpu) {
            return Err(EmuError::CallTarget {
                rip: self.rip,
                target,
            });
        }
        for reg in CALLER_SAVED {
            self.cpu.regs[reg] = CLOBBER ^ reg as u64;
        }
        self.cpu.flags = Flags::UNDEFINED;
        Ok(())
    }

    // ---- execution ----

    /// Executes one decoded instruction.
    fn step(&mut self, ins: &Instruction) -> Result<Flow, EmuError> {
        let m = ins.mnemonic();
        if ins.has_lock_prefix() {
            let lockable = matches!(
                m,
                Mnemonic::Add
                    | Mnemonic::Sub
                    | Mnemonic::And
                    | Mnemonic::Or
                    | Mnemonic::Xor
                    | Mnemonic::Inc
                    | Mnemonic::Dec
                    | Mnemonic::Neg
                    | Mnemonic::Not
                    | Mnemonic::Xchg
                    | Mnemonic::Xadd
                    | Mnemonic::Cmpxchg
            );
            if !lockable || ins.op0_kind() != OpKind::Memory {
                return Err(self.unsupported(ins));
            }
        }
        if ins.is_jcc_short_or_near() {
            return Ok(if self.condition(ins.condition_code())? {
                Flow::Jump(ins.near_branch64())
            } else {
                Flow::Next
            });
        }
        match m {
            Mnemonic::Nop | Mnemonic::Endbr64 => {}
            Mnemonic::Mov => {
                let dst = self.place(ins, 0)?;
                let value = self.operand(ins, 1, dst.size())?;
                self.put(dst, value)?;
            }
            Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd => {
                let dst = self.place(ins, 0)?;
                let src_size = self.op_size(ins, 1)?;
                let mut value = self.operand(ins, 1, src_size)?;
                if m != Mnemonic::Movzx {
                    value = sext(value, src_size) as u64;
                }
                self.put(dst, value)?;
            }
            Mnemonic::Lea => {
                let dst = self.place(ins, 0)?;
                if ins.op1_kind() != OpKind::Memory {
                    return Err(self.unsupported(ins));
                }
                let addr = self.address(ins)?;
                self.put(dst, addr)?;
            }
            Mnemonic::Add
            | Mnemonic::Sub
            | Mnemonic::And
            | Mnemonic::Or
            | Mnemonic::Xor
            | Mnemonic::Cmp
            | Mnemonic::Test => {
                let dst = self.place(ins, 0)?;
                let size = dst.size();
                let a = self.get(dst)?;
                let b = self.operand(ins, 1, size)?;
                let result = match m {
                    Mnemonic::Add => self.add_flags(a, b, size),
                    Mnemonic::Sub | Mnemonic::Cmp => self.sub_flags(a, b, size),
                    Mnemonic::Or => self.logic_flags(a | b, size),
                    Mnemonic::Xor => self.logic_flags(a ^ b, size),
                    _ => self.logic_flags(a & b, size),
                };
                if !matches!(m, Mnemonic::Cmp | Mnemonic::Test) {
                    self.put(dst, result)?;
                }
            }
            Mnemonic::Inc | Mnemonic::Dec => {
                let dst = self.place(ins, 0)?;
                let size = dst.size();
                let a = self.get(dst)?;
                let cf = self.cpu.flags.cf;
                let result = if m == Mnemonic::Inc {
                    self.add_flags(a, 1, size)
                } else {
                    self.sub_flags(a, 1, size)
                };
                self.cpu.flags.cf = cf;
                self.put(dst, result)?;
            }
            Mnemonic::Neg => {
                let dst = self.place(ins, 0)?;
                let size = dst.size();
                let a = self.get(dst)?;
                let result = self.sub_flags(0, a, size);
                self.put(dst, result)?;
            }
            Mnemonic::Not => {
                let dst = self.place(ins, 0)?;
                let a = self.get(dst)?;
                self.put(dst, !a)?;
            }
            Mnemonic::Imul if ins.op_count() >= 2 => {
                let dst = self.place(ins, 0)?;
                let size = dst.size();
                let (a, b) = if ins.op_count() == 2 {
                    (self.get(dst)?, self.operand(ins, 1, size)?)
                } else {
                    (self.operand(ins, 1, size)?, self.operand(ins, 2, size)?)
                };
                self.put(dst, sext(a, size).wrapping_mul(sext(b, size)) as u64)?;
                self.cpu.flags = Flags::UNDEFINED;
            }
            Mnemonic::Mul | Mnemonic::Imul => {
                let size = self.op_size(ins, 0)?;
                let b = self.operand(ins, 0, size)?;
                let (lo, hi) = acc_pair(size);
                let a = self.reg(lo);
                let product = if m == Mnemonic::Mul {
                    u128::from(a) * u128::from(b)
                } else {
                    (i128::from(sext(a, size)) * i128::from(sext(b, size))) as u128
                };
                if size == 1 {
                    self.set_reg(Register::AX, product as u64);
                } else {
                    self.set_reg(lo, product as u64);
                    self.set_reg(hi, (product >> (size * 8)) as u64);
                }
                self.cpu.flags = Flags::UNDEFINED;
            }
            Mnemonic::Div | Mnemonic::Idiv => self.divide(ins)?,
            Mnemonic::Cbw | Mnemonic::Cwde | Mnemonic::Cdqe => {
                let (src, dst, size) = match m {
                    Mnemonic::Cbw => (Register::AL, Register::AX, 1),
                    Mnemonic::Cwde => (Register::AX, Register::EAX, 2),
                    _ => (Register::EAX, Register::RAX, 4),
                };
                let value = sext(self.reg(src), size) as u64;
                self.set_reg(dst, value);
            }
            Mnemonic::Cwd | Mnemonic::Cdq | Mnemonic::Cqo => {
                let size = match m {
                    Mnemonic::Cwd => 2,
                    Mnemonic::Cdq => 4,
                    _ => 8,
                };
                let (lo, hi) = acc_pair(size);
                let negative = self.reg(lo) & sign_bit(size) != 0;
                self.set_reg(hi, if negative { u64::MAX } else { 0 });
            }
            Mnemonic::Shl
            | Mnemonic::Sal
            | Mnemonic::Shr
            | Mnemonic::Sar
            | Mnemonic::Rol
            | Mnemonic::Ror => {
                let dst = self.place(ins, 0)?;
                let size = dst.size();
                let bits = size as u32 * 8;
                let value = self.get(dst)?;
                let count = self.operand(ins, 1, 1)? as u32 & if size == 8 { 63 } else { 31 };
                let result = match m {
                    Mnemonic::Shl | Mnemonic::Sal => value.checked_shl(count).unwrap_or(0),
                    Mnemonic::Shr => value.checked_shr(count).unwrap_or(0),
                    Mnemonic::Sar => (sext(value, size) >> count.min(63)) as u64,
                    _ => {
                        let c = count % bits;
                        let c = if m == Mnemonic::Rol {
                            c
                        } else {
                            (bits - c) % bits
                        };
                        if c == 0 {
                            value
                        } else {
                            (value << c) | (value >> (bits - c))
                        }
                    }
                };
                self.put(dst, result & mask(size))?;
                self.cpu.flags = Flags::UNDEFINED;
            }
            Mnemonic::Bswap => {
                let dst = self.place(ins, 0)?;
                let value = self.get(dst)?;
                let result = match dst.size() {
                    4 => u64::from((value as u32).swap_bytes()),
                    8 => value.swap_bytes(),
                    _ => return Err(self.unsupported(ins)),
                };
                self.put(dst, result)?;
            }
            Mnemonic::Xchg => {
                let (p0, p1) = (self.place(ins, 0)?, self.place(ins, 1)?);
                let (a, b) = (self.get(p0)?, self.get(p1)?);
                self.put(p0, b)?;
                self.put(p1, a)?;
            }
            Mnemonic::Xadd => {
                let (dst, src) = (self.place(ins, 0)?, self.place(ins, 1)?);
                let (d, s) = (self.get(dst)?, self.get(src)?);
                let sum = self.add_flags(d, s, dst.size());
                self.put(src, d)?;
                self.put(dst, sum)?;
            }
            Mnemonic::Cmpxchg => {
                let (dst, src) = (self.place(ins, 0)?, self.place(ins, 1)?);
                let size = dst.size();
                let acc = Place::Reg(acc_pair(size).0);
                let (a, d) = (self.get(acc)?, self.get(dst)?);
                self.sub_flags(a, d, size);
                if a == d {
                    let s = self.get(src)?;
                    self.put(dst, s)?;
                } else {
                    self.put(acc, d)?;
                }
            }
            _ if is_setcc_or_cmovcc(m) => self.conditional_move(ins)?,
            Mnemonic::Jmp => return Ok(Flow::Jump(self.branch_target(ins)?)),
            Mnemonic::Call => {
                let target = self.branch_target(ins)?;
                if self.in_code(target) {
                    self.push(ins.next_ip())?;
                    return Ok(Flow::Jump(target));
                }
                self.call_out(target)?;
            }
            Mnemonic::Ret => {
                let target = self.pop()?;
                if ins.op_count() == 1 {
                    let extra = u64::from(ins.immediate16());
                    self.cpu.regs[RSP] = self.cpu.regs[RSP].wrapping_add(extra);
                }
                if target == RETURN_SENTINEL {
                    return Ok(Flow::Done);
                }
                return Ok(Flow::Jump(target));
            }
            Mnemonic::Push => {
                if self.op_size(ins, 0)? != 8 {
                    return Err(self.unsupported(ins));
                }
                let value = self.operand(ins, 0, 8)?;
                self.push(value)?;
            }
            Mnemonic::Pop => {
                let dst = self.place(ins, 0)?;
                if !matches!(dst, Place::Reg(_)) || dst.size() != 8 {
                    return Err(self.unsupported(ins));
                }
                let value = self.pop()?;
                self.put(dst, value)?;
            }
            _ => return Err(self.unsupported(ins)),
        }
        Ok(Flow::Next)
    }

    /// `setcc` (one operand) and `cmovcc`.
    fn conditional_move(&mut self, ins: &Instruction) -> Result<(), EmuError> {
        let holds = self.condition(ins.condition_code())?;
        let dst = self.place(ins, 0)?;
        if ins.op_count() == 1 {
            return self.put(dst, u64::from(holds));
        }
        // The source is read (and may fault) either way, and a 32-bit
        // cmov writes (zero-extends) its destination either way.
        let source = self.operand(ins, 1, dst.size())?;
        let value = if holds { source } else { self.get(dst)? };
        self.put(dst, value)
    }

    /// `div` and `idiv`: a #DE (divide by zero, quotient overflow) is an error.
    fn divide(&mut self, ins: &Instruction) -> Result<(), EmuError> {
        let size = self.op_size(ins, 0)?;
        let divisor = self.operand(ins, 0, size)?;
        let bits = size as u32 * 8;
        let (lo, hi) = acc_pair(size);
        // The dividend is twice the operand size: ax, dx:ax, edx:eax, rdx:rax.
        let dividend = if size == 1 {
            u128::from(self.reg(Register::AX))
        } else {
            (u128::from(self.reg(hi)) << bits) | u128::from(self.reg(lo))
        };
        let fault = EmuError::Divide { rip: self.rip };
        let (quotient, remainder) = if ins.mnemonic() == Mnemonic::Div {
            let q = dividend
                .checked_div(u128::from(divisor))
                .ok_or(fault.clone())?;
            if q > u128::from(mask(size)) {
                return Err(fault);
            }
            (q as u64, (dividend % u128::from(divisor)) as u64)
        } else {
            let shift = 128 - 2 * bits;
            let dividend = ((dividend << shift) as i128) >> shift;
            let divisor = i128::from(sext(divisor, size));
            let q = dividend.checked_div(divisor).ok_or(fault.clone())?;
            let limit = 1i128 << (bits - 1);
            if q < -limit || q >= limit {
                return Err(fault);
            }
            (q as u64, dividend.checked_rem(divisor).ok_or(fault)? as u64)
        };
        self.set_reg(lo, quotient);
        self.set_reg(hi, remainder);
        self.cpu.flags = Flags::UNDEFINED;
        Ok(())
    }
}

#[cfg(test)]
#[path = "emu_tests.rs"]
mod tests;
