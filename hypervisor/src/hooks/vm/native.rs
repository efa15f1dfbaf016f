//! Running a program's compiled code ([`crate::hooks::jit`]): the run's regions written into the state the code reads, the code entered through the hardware layer's [`JitCode`], and the two things the code asks of Rust ([`Host`]: an address outside its guess, a helper) answered with the interpreter's own memory and helper logic, on a machine made only when asked.

#![forbid(unsafe_code)]

use super::mem::Mem;
use super::{Fault, FaultKind, HookEnv, Machine, Outcome};
use crate::hooks::jit::{
    FaultCode, JitCode, JitHost, JitState, W_EXECUTED, W_FAULT_ADDR, W_FAULT_AUX, W_FAULT_INSN,
    W_FAULT_KIND, W_HELPER,
};
use crate::hooks::layout::{REGION_CTX, REGION_PACKET, REGION_STACK};
use crate::hooks::maps::MapSet;
use vmm_abi::hook::{HookKind, STACK_SIZE};

/// What compiled code reaches of the run while it runs: the run's memory
/// and the environment, from which a machine for the interpreter's own
/// memory and helper code is made only when the code asks (an address
/// outside its guess, a helper call), so a run that asks nothing builds
/// none.
pub struct Host<'r, 'a> {
    kind: HookKind,
    ctx: &'r [u8],
    stack: &'r mut [u8; STACK_SIZE],
    packet: &'r mut [u8],
    maps: &'r mut MapSet<'a>,
    cpu: u32,
    env: &'r dyn HookEnv,
    redirect: Option<u32>,
}

impl<'a> Host<'_, 'a> {
    /// The interpreter's machine over this run's memory (its registers
    /// serve only as helper arguments).
    fn machine(&mut self) -> Machine<'_, 'a> {
        Machine {
            kind: self.kind,
            regs: [0; 16],
            mem: Mem {
                ctx: self.ctx,
                stack: &mut *self.stack,
                packet: &mut *self.packet,
                maps: &mut *self.maps,
                cpu: self.cpu,
            },
            redirect: self.redirect,
        }
    }
}

impl JitHost for Host<'_, '_> {
    fn translate(&mut self, state: &mut JitState, addr: u64, size_write: u64) -> u64 {
        let size = (size_write & 0xff) as usize;
        let write = size_write & 0x100 != 0;
        let mut m = self.machine();
        let found = if write {
            m.mem.bytes_mut(addr, size).map(|b| b.as_mut_ptr() as u64)
        } else {
            m.mem.bytes(addr, size).map(|b| b.as_ptr() as u64)
        };
        found.unwrap_or_else(|| {
            let s = size as u8;
            put_fault(
                state,
                if write {
                    FaultKind::Store { addr, size: s }
                } else {
                    FaultKind::Load { addr, size: s }
                },
            );
            0
        })
    }

    fn helper(&mut self, state: &mut JitState, args: [u64; 5]) -> u64 {
        let id = state.get(W_HELPER) as u32;
        let env = self.env;
        let mut m = self.machine();
        for (i, v) in args.into_iter().enumerate() {
            m.set(i as u8 + 1, v);
        }
        let result = m.call(id, env);
        let redirect = m.redirect;
        self.redirect = redirect;
        match result {
            Ok(r0) => r0,
            Err(kind) => {
                put_fault(state, kind);
                0
            }
        }
    }

    #[cfg(test)]
    fn host_read(&mut self, addr: u64, size: usize) -> Option<u64> {
        let ctx = self.ctx;
        let start = ctx.as_ptr() as u64;
        let b: &[u8] = if addr >= start && addr + size as u64 <= start + ctx.len() as u64 {
            let o = (addr - start) as usize;
            ctx.get(o..o + size)?
        } else {
            self.host_bytes(addr, size)?
        };
        let mut v = [0u8; 8];
        v.get_mut(..size)?.copy_from_slice(b);
        Some(u64::from_le_bytes(v))
    }

    #[cfg(test)]
    fn host_write(&mut self, addr: u64, size: usize, value: u64) -> Option<()> {
        let b = self.host_bytes(addr, size)?;
        b.copy_from_slice(value.to_le_bytes().get(..size)?);
        Some(())
    }
}

impl Host<'_, '_> {
    /// The writable region bytes at host address `addr` .. `+ size`
    /// (tests: the emulator's bus).
    #[cfg(test)]
    fn host_bytes(&mut self, addr: u64, size: usize) -> Option<&mut [u8]> {
        let within = |b: &[u8]| {
            let start = b.as_ptr() as u64;
            (addr >= start && addr + size as u64 <= start + b.len() as u64)
                .then(|| (addr - start) as usize)
        };
        if let Some(o) = within(&self.stack[..]) {
            return self.stack.get_mut(o..o + size);
        }
        if let Some(o) = within(self.packet) {
            return self.packet.get_mut(o..o + size);
        }
        let maps = &mut *self.maps;
        let map =
            (0..maps.len()).find(|&i| maps.values_mut(i).is_some_and(|v| within(v).is_some()))?;
        let values = maps.values_mut(map)?;
        let o = within(values)?;
        values.get_mut(o..o + size)
    }
}

fn put_fault(state: &mut JitState, kind: FaultKind) {
    let (code, addr, aux) = match kind {
        FaultKind::Load { addr, size } => (FaultCode::Load, addr, u64::from(size)),
        FaultKind::Store { addr, size } => (FaultCode::Store, addr, u64::from(size)),
        FaultKind::HelperMemory { addr, len } => (FaultCode::HelperMemory, addr, u64::from(len)),
        FaultKind::NotMapHandle { value } => (FaultCode::NotMapHandle, value, 0),
        FaultKind::Helper { id } => (FaultCode::Helper, 0, u64::from(id)),
        FaultKind::BadInstruction { code } => (FaultCode::BadInstruction, 0, u64::from(code)),
        FaultKind::Jump { target } => (FaultCode::Jump, 0, target as u64),
        // Found before a run starts, never by compiled code.
        _ => (FaultCode::Jump, 0, u64::MAX),
    };
    state.set(W_FAULT_KIND, code as u64);
    state.set(W_FAULT_ADDR, addr);
    state.set(W_FAULT_AUX, aux);
}

/// The fault `state` holds, if any.
fn take_fault(state: &JitState) -> Option<FaultKind> {
    let (addr, aux) = (state.get(W_FAULT_ADDR), state.get(W_FAULT_AUX));
    Some(match state.get(W_FAULT_KIND) {
        0 => return None,
        1 => FaultKind::Load {
            addr,
            size: aux as u8,
        },
        2 => FaultKind::Store {
            addr,
            size: aux as u8,
        },
        3 => FaultKind::HelperMemory {
            addr,
            len: aux as u32,
        },
        4 => FaultKind::NotMapHandle { value: addr },
        5 => FaultKind::Helper { id: aux as u32 },
        6 => FaultKind::BadInstruction { code: aux as u8 },
        _ => FaultKind::Jump { target: aux as i64 },
    })
}

/// Runs `code` over this run's memory with `state` as the block it
/// reads (`prog` checked by the caller).
#[allow(clippy::too_many_arguments)]
pub(super) fn run<'a>(
    code: &dyn JitCode,
    kind: HookKind,
    ctx: &[u8],
    packet: &mut [u8],
    maps: &mut MapSet<'a>,
    env: &dyn HookEnv,
    stack: &mut [u8; STACK_SIZE],
    state: &mut JitState,
) -> Outcome {
    state.set_region(REGION_CTX as usize, ctx.as_ptr() as u64, ctx.len());
    state.set_region(
        REGION_STACK as usize,
        stack.as_mut_ptr() as u64,
        stack.len(),
    );
    state.set_region(
        REGION_PACKET as usize,
        packet.as_mut_ptr() as u64,
        packet.len(),
    );
    state.words[W_EXECUTED] = 0;
    state.words[W_FAULT_KIND] = 0;
    let mut host = Host {
        kind,
        ctx,
        stack,
        packet,
        maps,
        cpu: env.core(),
        env,
        redirect: None,
    };
    let ret = code.enter(state, &mut host);
    let executed = state.words[W_EXECUTED] as u32;
    match take_fault(state) {
        None => Outcome::Returned {
            ret,
            redirect: host.redirect,
            executed,
        },
        Some(kind) => Outcome::Aborted(Fault {
            insn: state.get(W_FAULT_INSN) as usize,
            kind,
            executed,
        }),
    }
}
