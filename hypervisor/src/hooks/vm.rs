//! The interpreter: runs a [`Program`] (verified, then decoded once into [`op::Op`]s) over its context, packet, stack and maps in the checked address space of [`crate::hooks::layout`]; a bad access or a malformed instruction aborts the run with a [`Fault`], never a panic.
//!
//! It trusts the verifier for nothing that matters to the hypervisor:
//! every load and store is translated and bounds-checked, helper
//! arguments are checked again (map handles, key and value memory,
//! helpers allowed for the kind), and the decoder ([`op`]) gives every
//! jump a target forward and inside the program (anything else faults
//! when reached), so each run executes each op at most once. Registers
//! are indexed modulo 16, so a register number can never index out of
//! bounds. What it does trust the verifier for is only the program's
//! meaning (initialised registers and stack bytes).
//!
//! Cost: one dispatch per op over a dense `match`, operands already in
//! place; loads by size with the region found from the address's top
//! bits ([`mem`]).

#![forbid(unsafe_code)]

mod alu;
#[cfg(test)]
mod fixture;
mod helpers;
mod mem;
mod native;
pub mod op;
#[cfg(test)]
pub(crate) mod props;
#[cfg(test)]
pub(crate) mod tests;

use super::Program;
use super::layout::{CTX_BASE, MAX_PACKET, STACK_BASE};
use super::maps::MapSet;
use crate::hooks::jit::{JitCode, JitState};
use crate::mem::raw::HostRange;
use core::fmt;
use mem::Mem;
pub use native::Host;
pub(crate) use native::PacketMem;
use op::Op;
use vmm_abi::corral::devices::MAX_FRAME_BYTES;
use vmm_abi::hook::context::XDP_MD_SIZE;
use vmm_abi::hook::insn::*;
use vmm_abi::hook::{HookKind, MAX_INSNS, STACK_SIZE};

/// Most instructions one run executes: control only moves forward in a
/// decoded program, so a run executes each op at most once, and a
/// program with more ops than this is refused before it starts.
pub const METER_LIMIT: u32 = MAX_INSNS as u32;

/// What the hypervisor provides to helpers.
pub trait HookEnv {
    /// Nanoseconds since boot (`bpf_ktime_get_ns`).
    fn ktime_ns(&self) -> u64;
    /// The index of the core running the hook (`bpf_get_smp_processor_id`);
    /// it also selects the per-core copies of per-core arrays.
    fn core(&self) -> u32;
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The program returned.
    Returned {
        /// `r0` at `exit`, to be read per the hook kind's return contract.
        ret: u64,
        /// The port the last successful `bpf_redirect` chose (packet hooks;
        /// acted on if `ret` is `XDP_REDIRECT`).
        redirect: Option<u32>,
        /// Instructions executed.
        executed: u32,
    },
    /// The run was aborted; the caller counts it and applies the hook
    /// kind's fallback (for packet hooks: `XDP_ABORTED`).
    Aborted(Fault),
}

impl Outcome {
    /// Instructions executed, either way.
    pub fn executed(&self) -> u32 {
        match self {
            Outcome::Returned { executed, .. } => *executed,
            Outcome::Aborted(f) => f.executed,
        }
    }
}

/// Why a run was aborted, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The instruction (0 for problems found before the first one).
    pub insn: usize,
    /// What went wrong.
    pub kind: FaultKind,
    /// Instructions executed, the faulting one included.
    pub executed: u32,
}

/// What went wrong in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// A load outside every readable region.
    Load {
        /// The address.
        addr: u64,
        /// Bytes.
        size: u8,
    },
    /// A store outside every writable region.
    Store {
        /// The address.
        addr: u64,
        /// Bytes.
        size: u8,
    },
    /// A helper's key or value pointer is not readable for the map's size.
    HelperMemory {
        /// The address.
        addr: u64,
        /// Bytes the helper reads.
        len: u32,
    },
    /// A map helper's `r1` is not a handle of a map in the set.
    NotMapHandle {
        /// The register's value.
        value: u64,
    },
    /// A helper the hook kind may not call, or an unknown one.
    Helper {
        /// Its number.
        id: u32,
    },
    /// An instruction the interpreter does not run.
    BadInstruction {
        /// Its opcode.
        code: u8,
    },
    /// A jump outside the program or not forward, or running off its end.
    Jump {
        /// The target.
        target: i64,
    },
    /// A program of more than [`METER_LIMIT`] instructions (never
    /// verified), refused before it runs.
    Meter,
    /// The context is not the hook kind's size.
    ContextSize {
        /// Bytes the kind's context has.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The packet is larger than the address space's window.
    PacketTooLarge {
        /// Its length.
        len: usize,
    },
    /// The program names more maps than the map set has.
    MapSet {
        /// Maps the set has.
        have: usize,
    },
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FaultKind::Load { addr, size } => {
                write!(f, "load of {size} bytes at {addr:#x} outside every region")
            }
            FaultKind::Store { addr, size } => {
                write!(
                    f,
                    "store of {size} bytes at {addr:#x} outside every writable region"
                )
            }
            FaultKind::HelperMemory { addr, len } => {
                write!(f, "helper argument: {len} bytes at {addr:#x} not readable")
            }
            FaultKind::NotMapHandle { value } => write!(f, "r1 = {value:#x} is not a map handle"),
            FaultKind::Helper { id } => write!(f, "helper {id} not available"),
            FaultKind::BadInstruction { code } => write!(f, "opcode {code:#04x} not runnable"),
            FaultKind::Jump { target } => write!(f, "control reaches insn {target}"),
            FaultKind::Meter => write!(f, "program of more than {METER_LIMIT} instructions"),
            FaultKind::ContextSize { expected, got } => {
                write!(f, "context of {got} bytes, {expected} expected")
            }
            FaultKind::PacketTooLarge { len } => {
                write!(f, "packet of {len} bytes (at most {MAX_PACKET})")
            }
            FaultKind::MapSet { have } => write!(f, "the program needs more than {have} maps"),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "insn {}: {}", self.insn, self.kind)
    }
}

/// [`run_with_stack`] with a fresh, zeroed stack.
pub fn run(
    prog: &Program<'_>,
    ctx: &[u8],
    packet: Option<&mut [u8]>,
    maps: &mut MapSet<'_>,
    env: &impl HookEnv,
) -> Outcome {
    run_with_stack(prog, ctx, packet, maps, env, &mut [0; STACK_SIZE])
}

/// What a run needs besides its inputs, kept by the caller from run to
/// run: the program's stack and the block compiled code reads.
#[derive(Clone, Debug)]
pub struct RunSpace {
    /// The program's stack.
    pub stack: [u8; STACK_SIZE],
    /// Compiled code's state.
    pub jit: JitState,
}

impl Default for RunSpace {
    fn default() -> Self {
        RunSpace {
            stack: [0; STACK_SIZE],
            jit: JitState::default(),
        }
    }
}

/// Runs `prog` once as [`run_with_stack`] does, its compiled code if it
/// has any ([`Program::jit`]), in `space`. The choice is made here, in the
/// caller, so each way is one call with nothing of the other in it.
#[inline(always)]
pub fn run_in<E: HookEnv>(
    prog: &Program<'_>,
    ctx: &[u8],
    packet: Option<&mut [u8]>,
    maps: &mut MapSet<'_>,
    env: &E,
    space: &mut RunSpace,
) -> Outcome {
    match prog.jit() {
        Some(code) => run_compiled(code, prog, ctx, packet, maps, env, space),
        None => run_with_stack(prog, ctx, packet, maps, env, &mut space.stack),
    }
}

/// [`run_in`] for a packet hook over its kept memory `mem` (the frame:
/// its first `len` bytes): compiled code is entered after checking only
/// what the types do not say (the map set's size), through `state`; a
/// program without code is interpreted after the same checks.
#[inline(always)]
pub(crate) fn run_packet(
    prog: &Program<'_>,
    mem: &mut PacketMem<'_>,
    state: &mut JitState,
    len: usize,
) -> Outcome {
    const _: () = assert!(XDP_MD_SIZE == HookKind::Packet.context_size());
    const _: () = assert!(MAX_FRAME_BYTES <= MAX_PACKET);
    if let Some(code) = prog.jit()
        && prog.kind() == HookKind::Packet
        && maps_fit(prog, &mem.maps)
    {
        return native::run_packet(code, mem, state, len);
    }
    interpret_packet(prog, mem, len)
}

/// [`run_packet`] for a program the interpreter runs.
#[inline(never)]
fn interpret_packet(prog: &Program<'_>, mem: &mut PacketMem<'_>, len: usize) -> Outcome {
    let Some(packet) = mem.frame.get_mut(..len) else {
        return before(FaultKind::PacketTooLarge { len });
    };
    let (ctx, maps, env) = (&mem.ctx, &mut mem.maps, &mem.env);
    // The context's size is its type's; a frame fits `MAX_PACKET`.
    if prog.kind() != HookKind::Packet
        || !maps_fit(prog, maps)
        || prog.ops().len() > METER_LIMIT as usize
    {
        return run_with_stack(prog, ctx, Some(packet), maps, env, &mut mem.stack);
    }
    Machine::new(prog, ctx, packet, maps, env, &mut mem.stack).execute(prog.ops(), env)
}

/// Whether the interpreter may run `prog` on a frame where it lies, in a
/// receiver's buffer ([`interpret_in_place`]), over `maps`: a packet
/// program the run checks would take as it is (the map set's size, its
/// length), whose memory accesses are all plain loads and stores (a
/// helper or an atomic add needs the packet as bytes of the hook's own).
pub(crate) fn interprets_in_place(prog: &Program<'_>, maps: &MapSet<'_>) -> bool {
    prog.kind() == HookKind::Packet
        && maps_fit(prog, maps)
        && prog.ops().len() <= METER_LIMIT as usize
        && !prog
            .ops()
            .iter()
            .any(|op| matches!(op, Op::Call { .. } | Op::AtomicAdd { .. }))
}

/// Interprets `prog` (one [`interprets_in_place`] allows over `mem`'s
/// maps) on `frame` where it lies, in a receiver's buffer: every packet
/// load and store goes through the frame's checked view, nothing else of
/// the receiver's memory is reachable, and nothing is copied.
#[inline(never)]
pub(crate) fn interpret_in_place(
    prog: &Program<'_>,
    mem: &mut PacketMem<'_>,
    frame: &HostRange<'_>,
) -> Outcome {
    let (ctx, maps, env) = (&mem.ctx, &mut mem.maps, &mem.env);
    let mut m = Machine::new(prog, ctx, &mut [], maps, env, &mut mem.stack);
    m.mem.frame = Some(frame);
    m.execute_inline(prog.ops(), env)
}

/// `prog`'s compiled code, if it has code that may run as a packet hook's
/// over `maps` (the checks [`enter_in_place`] relies on, made once).
pub(crate) fn packet_code<'p>(prog: &Program<'p>, maps: &MapSet<'_>) -> Option<&'p dyn JitCode> {
    let code = prog.jit()?;
    (prog.kind() == HookKind::Packet && maps_fit(prog, maps)).then_some(code)
}

pub(crate) use native::{enter_in_place, in_place_clean, in_place_executed, in_place_outcome};

/// `prog`'s compiled code, if it has code and `maps` has every map it
/// names (checked once, when the code is given: what [`run_checked`]
/// relies on).
pub(crate) fn checked_code<'p>(prog: &Program<'p>, maps: &MapSet<'_>) -> Option<&'p dyn JitCode> {
    let code = prog.jit()?;
    maps_fit(prog, maps).then_some(code)
}

/// [`run_in`] for a program of `kind` without a packet whose code came
/// from [`checked_code`] over `maps`: only the context's size is checked
/// on the way in.
#[inline]
pub(crate) fn run_checked<E: HookEnv>(
    code: &dyn JitCode,
    kind: HookKind,
    ctx: &[u8],
    maps: &mut MapSet<'_>,
    env: &E,
    space: &mut RunSpace,
) -> Outcome {
    let expected = kind.context_size();
    if ctx.len() != expected {
        return before(FaultKind::ContextSize {
            expected,
            got: ctx.len(),
        });
    }
    let RunSpace { stack, jit } = space;
    native::run(code, kind, ctx, &mut [], maps, env, stack, jit)
}

/// Whether `maps` has every map `prog` names.
#[inline(always)]
fn maps_fit(prog: &Program<'_>, maps: &MapSet<'_>) -> bool {
    let needed = u32::BITS - prog.info().maps_used.leading_zeros();
    needed as usize <= maps.len()
}

/// [`run_in`] for a program with code: no interpreter state on the way.
#[inline(never)]
fn run_compiled(
    code: &dyn JitCode,
    prog: &Program<'_>,
    ctx: &[u8],
    packet: Option<&mut [u8]>,
    maps: &mut MapSet<'_>,
    env: &impl HookEnv,
    space: &mut RunSpace,
) -> Outcome {
    let packet = packet.unwrap_or(&mut []);
    if let Err(kind) = check(prog, ctx, packet, maps) {
        return before(kind);
    }
    let RunSpace { stack, jit } = space;
    native::run(code, prog.kind(), ctx, packet, maps, env, stack, jit)
}

/// Runs `prog` once: `ctx` is its context (the kind's size; read-only;
/// a packet hook's as [`super::layout::xdp_md`] makes it: compiled code
/// takes its `data` and `data_meta` for the constant they always are),
/// `packet` the frame of a packet hook (read-write; `None` for the other
/// kinds), `maps` its map set (built from the defs it was verified with),
/// `env` the helpers' view of the machine, `stack` its stack: the
/// caller's, which may hold an earlier run's bytes (the verifier proves a
/// program writes every stack byte before it reads it).
#[inline(never)]
pub fn run_with_stack(
    prog: &Program<'_>,
    ctx: &[u8],
    packet: Option<&mut [u8]>,
    maps: &mut MapSet<'_>,
    env: &impl HookEnv,
    stack: &mut [u8; STACK_SIZE],
) -> Outcome {
    let packet = packet.unwrap_or(&mut []);
    if let Err(kind) = check(prog, ctx, packet, maps) {
        return before(kind);
    }
    Machine::new(prog, ctx, packet, maps, env, stack).execute(prog.ops(), env)
}

/// A run refused before its first instruction.
fn before(kind: FaultKind) -> Outcome {
    Outcome::Aborted(Fault {
        insn: 0,
        kind,
        executed: 0,
    })
}

/// What must hold before `prog` runs over these inputs.
fn check(
    prog: &Program<'_>,
    ctx: &[u8],
    packet: &[u8],
    maps: &MapSet<'_>,
) -> Result<(), FaultKind> {
    let expected = prog.kind().context_size();
    if ctx.len() != expected {
        return Err(FaultKind::ContextSize {
            expected,
            got: ctx.len(),
        });
    }
    if packet.len() > MAX_PACKET {
        return Err(FaultKind::PacketTooLarge { len: packet.len() });
    }
    if !maps_fit(prog, maps) {
        return Err(FaultKind::MapSet { have: maps.len() });
    }
    // Control only moves forward, so a run executes at most one op per
    // slot; a longer program (never verified) could exceed the meter.
    if prog.ops().len() > METER_LIMIT as usize {
        return Err(FaultKind::Meter);
    }
    Ok(())
}

impl<'r, 'a> Machine<'r, 'a> {
    /// The machine for one run of `prog` (checked by [`check`]).
    #[inline(always)]
    fn new(
        prog: &Program<'_>,
        ctx: &'r [u8],
        packet: &'r mut [u8],
        maps: &'r mut MapSet<'a>,
        env: &impl HookEnv,
        stack: &'r mut [u8; STACK_SIZE],
    ) -> Self {
        let mut regs = [0; 16];
        regs[1] = CTX_BASE;
        regs[10] = STACK_BASE + STACK_SIZE as u64;
        Machine {
            kind: prog.kind(),
            regs,
            mem: Mem {
                ctx,
                stack,
                packet,
                frame: None,
                maps,
                cpu: env.core(),
            },
            redirect: None,
        }
    }
}

/// One run's machine state.
struct Machine<'r, 'a> {
    kind: vmm_abi::hook::HookKind,
    /// `r0..=r10`, and five registers no valid program names, so that a
    /// four-bit register number always indexes in bounds.
    regs: [u64; 16],
    mem: Mem<'r, 'a>,
    redirect: Option<u32>,
}

impl Machine<'_, '_> {
    #[inline(always)]
    fn reg(&self, r: u8) -> u64 {
        self.regs[usize::from(r & 0x0f)]
    }

    #[inline(always)]
    fn set(&mut self, r: u8, v: u64) {
        self.regs[usize::from(r & 0x0f)] = v;
    }

    /// Runs `ops` from the first: one dispatch per op, jump targets taken
    /// as decoded (forward, inside the program: [`op`]), so the program
    /// counter only grows and the run ends within `ops.len()` steps.
    fn execute(&mut self, ops: &[Op], env: &impl HookEnv) -> Outcome {
        self.execute_inline(ops, env)
    }

    /// [`Machine::execute`], inlined into its caller (the hot packet path
    /// gets a copy of its own, its machine's fields kept in registers).
    #[inline(always)]
    fn execute_inline(&mut self, ops: &[Op], env: &impl HookEnv) -> Outcome {
        // The ops from the next one on: the program counter is
        // `ops.len() - rest.len()`, computed only where it is needed.
        let mut rest = ops.iter();
        // Slots passed over by taken jumps, fused ops and `lddw` second
        // halves: the ops executed are the slots up to the current one less
        // these, so only those pay for counting.
        let mut skipped = 0usize;
        let len = ops.len();
        loop {
            let Some(&op) = rest.next() else {
                return Outcome::Aborted(Fault {
                    insn: len,
                    kind: FaultKind::Jump { target: len as i64 },
                    executed: (len - skipped) as u32,
                });
            };
            // Takes a decoded (forward, inside the program) jump.
            macro_rules! take {
                ($target:expr) => {{
                    let t = $target as usize;
                    let next = len - rest.len();
                    skipped += t.saturating_sub(next);
                    rest = ops.get(t..).unwrap_or_default().iter();
                }};
            }
            let bad = |code| FaultKind::BadInstruction { code };
            let r = match op {
                Op::MovImm { dst, imm } => {
                    self.set(dst, imm);
                    continue;
                }
                Op::MovReg { dst, src } => {
                    self.set(dst, self.reg(src));
                    continue;
                }
                Op::AddImm { dst, imm } => {
                    self.set(dst, self.reg(dst).wrapping_add(imm));
                    continue;
                }
                Op::AddReg { dst, src } => {
                    self.set(dst, self.reg(dst).wrapping_add(self.reg(src)));
                    continue;
                }
                Op::LdxB { dst, src, off } => self.ldx::<1>(dst, src, off),
                Op::LdxH { dst, src, off } => self.ldx::<2>(dst, src, off),
                Op::LdxW { dst, src, off } => self.ldx::<4>(dst, src, off),
                Op::LdxDw { dst, src, off } => self.ldx::<8>(dst, src, off),
                Op::JeqImm { dst, imm, target } => {
                    if self.reg(dst) == imm {
                        take!(target);
                    }
                    continue;
                }
                Op::JneImm { dst, imm, target } => {
                    if self.reg(dst) != imm {
                        take!(target);
                    }
                    continue;
                }
                Op::JgtReg { dst, src, target } => {
                    if self.reg(dst) > self.reg(src) {
                        take!(target);
                    }
                    continue;
                }
                Op::Ja { target } => {
                    take!(target);
                    continue;
                }
                Op::Exit => {
                    return Outcome::Returned {
                        ret: self.regs[0],
                        redirect: self.redirect,
                        executed: (len - rest.len() - skipped) as u32,
                    };
                }
                Op::Return { imm } => {
                    // `r0 = imm; exit`: two instructions.
                    self.regs[0] = imm;
                    return Outcome::Returned {
                        ret: imm,
                        redirect: self.redirect,
                        executed: (len - rest.len() + 1 - skipped) as u32,
                    };
                }
                Op::BoundsCheck {
                    dst,
                    src,
                    end,
                    imm,
                    target,
                } => {
                    // `dst = src; dst += imm; if dst > end goto target`:
                    // three instructions, the next two passed over.
                    let v = self.reg(src).wrapping_add(i64::from(imm) as u64);
                    self.set(dst, v);
                    // Past the two ops fused into this one (their slots
                    // stay, for jumps into the middle).
                    let _ = rest.nth(1);
                    if self.reg(dst) > self.reg(end) {
                        take!(target);
                    }
                    continue;
                }
                Op::Alu64Imm { op, dst, imm } => alu::alu64(op, self.reg(dst), imm)
                    .map(|v| self.set(dst, v))
                    .ok_or(bad(BPF_ALU64 | op)),
                Op::Alu64Reg { op, dst, src } => alu::alu64(op, self.reg(dst), self.reg(src))
                    .map(|v| self.set(dst, v))
                    .ok_or(bad(BPF_ALU64 | BPF_X | op)),
                Op::Alu32Imm { op, dst, imm } => alu::alu32(op, self.reg(dst) as u32, imm)
                    .map(|v| self.set(dst, u64::from(v)))
                    .ok_or(bad(BPF_ALU | op)),
                Op::Alu32Reg { op, dst, src } => {
                    alu::alu32(op, self.reg(dst) as u32, self.reg(src) as u32)
                        .map(|v| self.set(dst, u64::from(v)))
                        .ok_or(bad(BPF_ALU | BPF_X | op))
                }
                Op::End { to_be, bits, dst } => alu::endian(to_be, i32::from(bits), self.reg(dst))
                    .map(|v| self.set(dst, v))
                    .ok_or(bad(BPF_ALU | BPF_END)),
                Op::LdImm64 { dst, imm } => {
                    self.set(dst, imm);
                    // Its second slot is not an instruction of its own.
                    let _ = rest.next();
                    skipped += 1;
                    continue;
                }
                Op::Jmp64Imm {
                    op,
                    dst,
                    imm,
                    target,
                } => match alu::jmp64(op, self.reg(dst), imm) {
                    Some(true) => {
                        take!(target);
                        Ok(())
                    }
                    Some(false) => Ok(()),
                    None => Err(bad(BPF_JMP | op)),
                },
                Op::Jmp64Reg {
                    op,
                    dst,
                    src,
                    target,
                } => match alu::jmp64(op, self.reg(dst), self.reg(src)) {
                    Some(true) => {
                        take!(target);
                        Ok(())
                    }
                    Some(false) => Ok(()),
                    None => Err(bad(BPF_JMP | BPF_X | op)),
                },
                Op::Jmp32Imm {
                    op,
                    dst,
                    imm,
                    target,
                } => match alu::jmp32(op, self.reg(dst) as u32, imm) {
                    Some(true) => {
                        take!(target);
                        Ok(())
                    }
                    Some(false) => Ok(()),
                    None => Err(bad(BPF_JMP32 | op)),
                },
                Op::Jmp32Reg {
                    op,
                    dst,
                    src,
                    target,
                } => match alu::jmp32(op, self.reg(dst) as u32, self.reg(src) as u32) {
                    Some(true) => {
                        take!(target);
                        Ok(())
                    }
                    Some(false) => Ok(()),
                    None => Err(bad(BPF_JMP32 | BPF_X | op)),
                },
                Op::Call { id } => self.call(id, env).map(|r0| self.set(0, r0)),
                Op::Stx {
                    size,
                    base,
                    src,
                    off,
                } => self.store(size, base, off, self.reg(src)),
                Op::St {
                    size,
                    base,
                    off,
                    imm,
                } => self.store(size, base, off, imm),
                Op::AtomicAdd {
                    size,
                    base,
                    src,
                    off,
                } => self.atomic_add(size, base, src, off),
                Op::Bad { code } => Err(bad(code)),
                Op::BadJump { target } => Err(FaultKind::Jump { target }),
            };
            if let Err(kind) = r {
                let next = len - rest.len();
                return Outcome::Aborted(Fault {
                    insn: next - 1,
                    kind,
                    executed: (next - skipped) as u32,
                });
            }
        }
    }

    /// `dst = *(N bytes *)(src + off)`.
    #[inline(always)]
    fn ldx<const N: usize>(&mut self, dst: u8, src: u8, off: i16) -> Result<(), FaultKind> {
        let addr = self.reg(src).wrapping_add(i64::from(off) as u64);
        let v = self.mem.load_n::<N>(addr).ok_or(FaultKind::Load {
            addr,
            size: N as u8,
        })?;
        self.set(dst, v);
        Ok(())
    }

    /// `*(size bytes *)(base + off) = v`.
    fn store(&mut self, size: u8, base: u8, off: i16, v: u64) -> Result<(), FaultKind> {
        let addr = self.reg(base).wrapping_add(i64::from(off) as u64);
        self.mem
            .store(addr, usize::from(size), v)
            .ok_or(FaultKind::Store { addr, size })
    }

    /// `lock *(size bytes *)(base + off) += src`.
    fn atomic_add(&mut self, size: u8, base: u8, src: u8, off: i16) -> Result<(), FaultKind> {
        let addr = self.reg(base).wrapping_add(i64::from(off) as u64);
        let n = usize::from(size);
        // Both checked before either happens: a store that cannot happen
        // faults as a store.
        let store = FaultKind::Store { addr, size };
        self.mem.bytes_mut(addr, n).ok_or(store)?;
        let old = self
            .mem
            .load(addr, n)
            .ok_or(FaultKind::Load { addr, size })?;
        let v = old.wrapping_add(self.reg(src));
        self.mem.store(addr, n, v).ok_or(store)
    }
}
