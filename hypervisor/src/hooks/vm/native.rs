//! Running a program's compiled code ([`crate::hooks::jit`]): the run's regions written into the state the code reads, the code entered through the hardware layer's [`JitCode`], and the two things the code asks of Rust ([`Host`]: an address outside its guess, a helper) answered with the interpreter's own memory and helper logic.

#![forbid(unsafe_code)]

use super::{Fault, FaultKind, HookEnv, Machine, Outcome};
use crate::hooks::jit::{
    FaultCode, JitCode, JitState, W_EXECUTED, W_FAULT_ADDR, W_FAULT_AUX, W_FAULT_INSN,
    W_FAULT_KIND, W_HELPER,
};
use crate::hooks::layout::{REGION_CTX, REGION_PACKET, REGION_STACK};

/// What compiled code reaches of the run while it runs: the interpreter's
/// machine (its memory and helpers; its registers serve only as helper
/// arguments) and the environment.
pub struct Host<'h, 'r, 'a> {
    m: &'h mut Machine<'r, 'a>,
    env: &'h dyn HookEnv,
}

impl Host<'_, '_, '_> {
    /// The host address of `size` bytes (`size_write & 0xff`) at `addr`,
    /// for writing if bit 8 of `size_write` is set; 0, with the fault
    /// written into `state`, if they lie in no region that allows it.
    pub fn translate(&mut self, state: &mut JitState, addr: u64, size_write: u64) -> u64 {
        let size = (size_write & 0xff) as usize;
        let found = if size_write & 0x100 != 0 {
            self.m
                .mem
                .bytes_mut(addr, size)
                .map(|b| b.as_mut_ptr() as u64)
        } else {
            self.m.mem.bytes(addr, size).map(|b| b.as_ptr() as u64)
        };
        found.unwrap_or_else(|| {
            let s = size as u8;
            put_fault(
                state,
                if size_write & 0x100 != 0 {
                    FaultKind::Store { addr, size: s }
                } else {
                    FaultKind::Load { addr, size: s }
                },
            );
            0
        })
    }

    /// Calls the helper [`W_HELPER`] names with `r1..=r5`: its `r0`, or 0
    /// with the fault written into `state`.
    pub fn helper(&mut self, state: &mut JitState, args: [u64; 5]) -> u64 {
        for (i, v) in args.into_iter().enumerate() {
            self.m.set(i as u8 + 1, v);
        }
        let id = state.get(W_HELPER) as u32;
        match self.m.call(id, self.env) {
            Ok(r0) => r0,
            Err(kind) => {
                put_fault(state, kind);
                0
            }
        }
    }

    /// The writable region bytes at host address `addr` .. `+ size`
    /// (tests: the emulator's bus).
    #[cfg(test)]
    fn host_bytes(&mut self, addr: u64, size: usize) -> Option<&mut [u8]> {
        let mem = &mut self.m.mem;
        let within = |b: &[u8]| {
            let start = b.as_ptr() as u64;
            (addr >= start && addr + size as u64 <= start + b.len() as u64)
                .then(|| (addr - start) as usize)
        };
        if let Some(o) = within(&mem.stack[..]) {
            return mem.stack.get_mut(o..o + size);
        }
        if let Some(o) = within(mem.packet) {
            return mem.packet.get_mut(o..o + size);
        }
        let map = (0..mem.maps.len())
            .find(|&i| mem.maps.values_mut(i).is_some_and(|v| within(v).is_some()))?;
        let values = mem.maps.values_mut(map)?;
        let o = within(values)?;
        values.get_mut(o..o + size)
    }

    /// A load of `size` bytes at host address `addr` (tests).
    #[cfg(test)]
    pub(crate) fn host_read(&mut self, addr: u64, size: usize) -> Option<u64> {
        let ctx = self.m.mem.ctx;
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

    /// A store of `size` bytes at host address `addr` (tests).
    #[cfg(test)]
    pub(crate) fn host_write(&mut self, addr: u64, size: usize, value: u64) -> Option<()> {
        let b = self.host_bytes(addr, size)?;
        b.copy_from_slice(value.to_le_bytes().get(..size)?);
        Some(())
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

/// Runs `code` over `m`'s memory with `state` as the block it reads.
pub(super) fn run(
    code: &dyn JitCode,
    m: &mut Machine<'_, '_>,
    env: &dyn HookEnv,
    state: &mut JitState,
) -> Outcome {
    state.set_region(
        REGION_CTX as usize,
        m.mem.ctx.as_ptr() as u64,
        m.mem.ctx.len(),
    );
    state.set_region(
        REGION_STACK as usize,
        m.mem.stack.as_mut_ptr() as u64,
        m.mem.stack.len(),
    );
    state.set_region(
        REGION_PACKET as usize,
        m.mem.packet.as_mut_ptr() as u64,
        m.mem.packet.len(),
    );
    state.words[W_EXECUTED] = 0;
    state.words[W_FAULT_KIND] = 0;
    let mut host = Host { m, env };
    let ret = code.enter(state, &mut host);
    let executed = state.words[W_EXECUTED] as u32;
    match take_fault(state) {
        None => Outcome::Returned {
            ret,
            redirect: host.m.redirect,
            executed,
        },
        Some(kind) => Outcome::Aborted(Fault {
            insn: state.get(W_FAULT_INSN) as usize,
            kind,
            executed,
        }),
    }
}
