//! The interpreter: runs a [`Verified`] program over its context, packet, stack and maps in the checked address space of [`crate::hooks::layout`], with an instruction meter; a bad access or a malformed instruction aborts the run with a [`Fault`], never a panic.
//!
//! It trusts the verifier for nothing that matters to the hypervisor:
//! every load and store is translated and bounds-checked, helper
//! arguments are checked again (map handles, key and value memory,
//! helpers allowed for the kind), jumps must land inside the program and
//! go forward, and the meter stops a run after [`METER_LIMIT`]
//! instructions. Registers are indexed modulo 16, so a register number
//! can never index out of bounds. What it does trust the verifier for is
//! only the program's meaning (initialised registers and stack bytes).

#![forbid(unsafe_code)]

mod alu;
#[cfg(test)]
mod fixture;
mod helpers;
mod mem;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use super::Verified;
use super::layout::{CTX_BASE, MAP_HANDLE_BASE, MAX_PACKET, STACK_BASE};
use super::maps::MapSet;
use core::fmt;
use mem::Mem;
use vmm_abi::hook::insn::*;
use vmm_abi::hook::{MAX_INSNS, STACK_SIZE};

/// Most instructions one run executes. A verified program has no back
/// edges, so it runs each instruction at most once and never reaches this.
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
    /// More than [`METER_LIMIT`] instructions.
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
            FaultKind::Meter => write!(f, "more than {METER_LIMIT} instructions"),
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
    prog: &Verified<'_>,
    ctx: &[u8],
    packet: Option<&mut [u8]>,
    maps: &mut MapSet<'_>,
    env: &impl HookEnv,
) -> Outcome {
    run_with_stack(prog, ctx, packet, maps, env, &mut [0; STACK_SIZE])
}

/// Runs `prog` once: `ctx` is its context (the kind's size; read-only),
/// `packet` the frame of a packet hook (read-write; `None` for the other
/// kinds), `maps` its map set (built from the defs it was verified with),
/// `env` the helpers' view of the machine, `stack` its stack: the
/// caller's, which may hold an earlier run's bytes (the verifier proves a
/// program writes every stack byte before it reads it).
pub fn run_with_stack(
    prog: &Verified<'_>,
    ctx: &[u8],
    packet: Option<&mut [u8]>,
    maps: &mut MapSet<'_>,
    env: &impl HookEnv,
    stack: &mut [u8; STACK_SIZE],
) -> Outcome {
    let before = |kind| {
        Outcome::Aborted(Fault {
            insn: 0,
            kind,
            executed: 0,
        })
    };
    let expected = prog.kind().context_size();
    if ctx.len() != expected {
        return before(FaultKind::ContextSize {
            expected,
            got: ctx.len(),
        });
    }
    let packet = packet.unwrap_or(&mut []);
    if packet.len() > MAX_PACKET {
        return before(FaultKind::PacketTooLarge { len: packet.len() });
    }
    let needed = u32::BITS - prog.info().maps_used.leading_zeros();
    if needed as usize > maps.len() {
        return before(FaultKind::MapSet { have: maps.len() });
    }
    let cpu = env.core();
    let mut m = Machine {
        insns: prog.insns(),
        kind: prog.kind(),
        regs: [0; 16],
        mem: Mem {
            ctx,
            stack,
            packet,
            maps,
            cpu,
        },
        redirect: None,
        executed: 0,
    };
    m.regs[1] = CTX_BASE;
    m.regs[10] = STACK_BASE + STACK_SIZE as u64;
    let mut pc = 0;
    loop {
        match m.step(pc, env) {
            Ok(Step::Next(next)) => pc = next,
            Ok(Step::Exit) => {
                return Outcome::Returned {
                    ret: m.regs[0],
                    redirect: m.redirect,
                    executed: m.executed,
                };
            }
            Err(kind) => {
                return Outcome::Aborted(Fault {
                    insn: pc,
                    kind,
                    executed: m.executed,
                });
            }
        }
    }
}

/// Where an instruction sends control.
enum Step {
    Next(usize),
    Exit,
}

/// One run's machine state.
struct Machine<'p, 'r, 'a> {
    insns: &'p [Insn],
    kind: vmm_abi::hook::HookKind,
    /// `r0..=r10`, and five registers no valid program names, so that a
    /// four-bit register number always indexes in bounds.
    regs: [u64; 16],
    mem: Mem<'r, 'a>,
    redirect: Option<u32>,
    executed: u32,
}

impl Machine<'_, '_, '_> {
    #[inline]
    fn reg(&self, r: u8) -> u64 {
        self.regs[usize::from(r & 0x0f)]
    }

    #[inline]
    fn set(&mut self, r: u8, v: u64) {
        self.regs[usize::from(r & 0x0f)] = v;
    }

    /// The target of a jump at `pc`: forward and inside the program.
    #[inline]
    fn target(&self, pc: usize, off: i16) -> Result<usize, FaultKind> {
        let t = pc as i64 + 1 + i64::from(off);
        match usize::try_from(t) {
            Ok(t) if t > pc && t < self.insns.len() => Ok(t),
            _ => Err(FaultKind::Jump { target: t }),
        }
    }

    fn step(&mut self, pc: usize, env: &impl HookEnv) -> Result<Step, FaultKind> {
        let Some(&insn) = self.insns.get(pc) else {
            return Err(FaultKind::Jump { target: pc as i64 });
        };
        self.executed += 1;
        if self.executed > METER_LIMIT {
            return Err(FaultKind::Meter);
        }
        let bad = FaultKind::BadInstruction { code: insn.code };
        let op = insn.code & OP_MASK;
        let by_reg = insn.code & SOURCE_MASK == BPF_X;
        let next = pc + 1;
        match insn.class() {
            BPF_ALU64 => {
                let src = if by_reg {
                    self.reg(insn.src)
                } else {
                    i64::from(insn.imm) as u64
                };
                let v = alu::alu64(op, self.reg(insn.dst), src).ok_or(bad)?;
                self.set(insn.dst, v);
            }
            BPF_ALU => {
                let v = if op == BPF_END {
                    alu::endian(by_reg, insn.imm, self.reg(insn.dst)).ok_or(bad)?
                } else {
                    let src = if by_reg {
                        self.reg(insn.src) as u32
                    } else {
                        insn.imm as u32
                    };
                    u64::from(alu::alu32(op, self.reg(insn.dst) as u32, src).ok_or(bad)?)
                };
                self.set(insn.dst, v);
            }
            BPF_JMP => {
                let b = if by_reg {
                    self.reg(insn.src)
                } else {
                    i64::from(insn.imm) as u64
                };
                return match op {
                    BPF_JA => Ok(Step::Next(self.target(pc, insn.off)?)),
                    BPF_EXIT => Ok(Step::Exit),
                    BPF_CALL => {
                        let r0 = self.call(insn.imm as u32, env)?;
                        self.set(0, r0);
                        Ok(Step::Next(next))
                    }
                    _ if alu::jmp64(op, self.reg(insn.dst), b).ok_or(bad)? => {
                        Ok(Step::Next(self.target(pc, insn.off)?))
                    }
                    _ => Ok(Step::Next(next)),
                };
            }
            BPF_JMP32 => {
                let b = if by_reg {
                    self.reg(insn.src) as u32
                } else {
                    insn.imm as u32
                };
                if alu::jmp32(op, self.reg(insn.dst) as u32, b).ok_or(bad)? {
                    return Ok(Step::Next(self.target(pc, insn.off)?));
                }
            }
            BPF_LD => {
                let second = self
                    .insns
                    .get(next)
                    .filter(|_| insn.code == LDDW)
                    .ok_or(bad)?;
                let v = match insn.src {
                    BPF_PSEUDO_MAP_FD => MAP_HANDLE_BASE + u64::from(insn.imm as u32),
                    _ => u64::from(insn.imm as u32) | u64::from(second.imm as u32) << 32,
                };
                self.set(insn.dst, v);
                return Ok(Step::Next(pc + 2));
            }
            class => self.memory(class, insn)?,
        }
        Ok(Step::Next(next))
    }

    /// `LDX`, `ST`, `STX` and atomic add.
    #[inline(always)]
    fn memory(&mut self, class: u8, insn: Insn) -> Result<(), FaultKind> {
        let size = access_size(insn.code);
        let mode = insn.code & MODE_MASK;
        let base = if class == BPF_LDX { insn.src } else { insn.dst };
        let addr = self.reg(base).wrapping_add(i64::from(insn.off) as u64);
        let load = || FaultKind::Load {
            addr,
            size: size as u8,
        };
        let store = || FaultKind::Store {
            addr,
            size: size as u8,
        };
        match (class, mode) {
            (BPF_LDX, BPF_MEM) => {
                let v = self.mem.load(addr, size).ok_or_else(load)?;
                self.set(insn.dst, v);
            }
            (BPF_ST, BPF_MEM) => {
                let v = i64::from(insn.imm) as u64;
                self.mem.store(addr, size, v).ok_or_else(store)?;
            }
            (BPF_STX, BPF_MEM) => {
                let v = self.reg(insn.src);
                self.mem.store(addr, size, v).ok_or_else(store)?;
            }
            (BPF_STX, BPF_ATOMIC) if insn.imm == i32::from(BPF_ADD) && (size == 4 || size == 8) => {
                // Both checked before either happens: a store that cannot
                // happen faults as a store.
                self.mem.bytes_mut(addr, size).ok_or_else(store)?;
                let old = self.mem.load(addr, size).ok_or_else(load)?;
                let v = old.wrapping_add(self.reg(insn.src));
                self.mem.store(addr, size, v).ok_or_else(store)?;
            }
            _ => return Err(FaultKind::BadInstruction { code: insn.code }),
        }
        Ok(())
    }
}
