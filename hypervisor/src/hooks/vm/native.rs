//! Running a program's compiled code ([`crate::hooks::jit`]): the run's regions written into the state the code reads, the code entered through the hardware layer's [`JitCode`], and the two things the code asks of Rust ([`Host`]: an address outside its guess, a helper) answered with the interpreter's own memory and helper logic, on a machine made only when asked.

#![forbid(unsafe_code)]

use super::mem::Mem;
use super::{Fault, FaultKind, HookEnv, Machine, Outcome};
use crate::hooks::Env;
use crate::hooks::jit::{
    FaultCode, JitCode, JitHost, JitState, W_EXECUTED, W_FAULT_ADDR, W_FAULT_AUX, W_FAULT_INSN,
    W_FAULT_KIND, W_HELPER, base_word,
};
use crate::hooks::layout::{REGION_CTX, REGION_PACKET, REGION_STACK};
use crate::hooks::maps::MapSet;
use crate::mem::raw::HostRange;
use vmm_abi::corral::devices::MAX_FRAME_BYTES;
use vmm_abi::hook::context::XDP_MD_SIZE;
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
                frame: None,
                maps: &mut *self.maps,
                cpu: self.cpu,
            },
            redirect: self.redirect,
        }
    }
}

/// `translate` over `m`'s memory: the host address of `size_write`'s
/// bytes at `addr`, or 0 with the fault put in `state`.
fn translate_in(m: &mut Machine<'_, '_>, state: &mut JitState, addr: u64, size_write: u64) -> u64 {
    let size = (size_write & 0xff) as usize;
    let write = size_write & 0x100 != 0;
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

/// A helper call with `m`'s memory: `r0`, or 0 with the fault put in
/// `state`; `m.redirect` holds what `bpf_redirect` chose.
fn helper_in(
    m: &mut Machine<'_, '_>,
    env: &dyn HookEnv,
    state: &mut JitState,
    args: [u64; 5],
) -> u64 {
    let id = state.get(W_HELPER) as u32;
    for (i, v) in args.into_iter().enumerate() {
        m.set(i as u8 + 1, v);
    }
    match m.call(id, env) {
        Ok(r0) => r0,
        Err(kind) => {
            put_fault(state, kind);
            0
        }
    }
}

/// Test bus access: the bytes at host address `addr .. + size` of the
/// context (reads only), the stack, the packet or a map's values.
#[cfg(test)]
fn host_bytes_in<'m>(
    stack: &'m mut [u8],
    packet: &'m mut [u8],
    maps: &'m mut MapSet<'_>,
    addr: u64,
    size: usize,
) -> Option<&'m mut [u8]> {
    let within = |b: &[u8]| {
        let start = b.as_ptr() as u64;
        (addr >= start && addr + size as u64 <= start + b.len() as u64)
            .then(|| (addr - start) as usize)
    };
    if let Some(o) = within(stack) {
        return stack.get_mut(o..o + size);
    }
    if let Some(o) = within(packet) {
        return packet.get_mut(o..o + size);
    }
    let map = (0..maps.len()).find(|&i| maps.values_mut(i).is_some_and(|v| within(v).is_some()))?;
    let values = maps.values_mut(map)?;
    let o = within(values)?;
    values.get_mut(o..o + size)
}

/// Test bus read of `size` bytes at `addr`: the context, or
/// [`host_bytes_in`].
#[cfg(test)]
fn host_read_in(
    ctx: &[u8],
    bytes: impl FnOnce() -> Option<u64>,
    addr: u64,
    size: usize,
) -> Option<u64> {
    let start = ctx.as_ptr() as u64;
    if addr >= start && addr + size as u64 <= start + ctx.len() as u64 {
        let o = (addr - start) as usize;
        let mut v = [0u8; 8];
        v.get_mut(..size)?.copy_from_slice(ctx.get(o..o + size)?);
        return Some(u64::from_le_bytes(v));
    }
    bytes()
}

/// `value`'s low `size` bytes into `b`, little-endian.
#[cfg(test)]
fn put_le(b: Option<&mut [u8]>, size: usize, value: u64) -> Option<()> {
    b?.copy_from_slice(value.to_le_bytes().get(..size)?);
    Some(())
}

/// `b`'s bytes as a little-endian value.
#[cfg(test)]
fn get_le(b: Option<&mut [u8]>, size: usize) -> Option<u64> {
    let mut v = [0u8; 8];
    v.get_mut(..size)?.copy_from_slice(b?);
    Some(u64::from_le_bytes(v))
}

impl JitHost for Host<'_, '_> {
    fn translate(&mut self, state: &mut JitState, addr: u64, size_write: u64) -> u64 {
        translate_in(&mut self.machine(), state, addr, size_write)
    }

    fn helper(&mut self, state: &mut JitState, args: [u64; 5]) -> u64 {
        let env = self.env;
        let mut m = self.machine();
        let r0 = helper_in(&mut m, env, state, args);
        self.redirect = m.redirect;
        r0
    }

    #[cfg(test)]
    fn host_read(&mut self, addr: u64, size: usize) -> Option<u64> {
        let (stack, packet, maps) = (&mut self.stack[..], &mut *self.packet, &mut *self.maps);
        host_read_in(
            self.ctx,
            || get_le(host_bytes_in(stack, packet, maps, addr, size), size),
            addr,
            size,
        )
    }

    #[cfg(test)]
    fn host_write(&mut self, addr: u64, size: usize, value: u64) -> Option<()> {
        let b = host_bytes_in(&mut self.stack[..], self.packet, self.maps, addr, size);
        put_le(b, size, value)
    }
}

/// A packet hook's memory, kept from run to run: its `xdp_md` (only
/// `data_end` changes from frame to frame), its copy of the frame being
/// judged, its stack, its maps. Compiled code's callbacks reach it as it
/// is ([`JitHost`]), so a run builds nothing on the way in.
pub(crate) struct PacketMem<'a> {
    /// The context.
    pub ctx: [u8; XDP_MD_SIZE],
    /// The frame buffer (the packet is its first `len` bytes).
    pub frame: [u8; MAX_FRAME_BYTES],
    /// The program's stack.
    pub stack: [u8; STACK_SIZE],
    /// Its maps.
    pub maps: MapSet<'a>,
    /// What helpers see of the machine.
    pub env: Env,
    /// Bytes of the frame being judged.
    len: usize,
    /// What the run's `bpf_redirect` chose.
    redirect: Option<u32>,
}

impl<'a> PacketMem<'a> {
    /// The memory of a hook with maps `maps` in `env`, its context `ctx`.
    pub fn new(ctx: [u8; XDP_MD_SIZE], maps: MapSet<'a>, env: Env) -> Self {
        PacketMem {
            ctx,
            frame: [0; MAX_FRAME_BYTES],
            stack: [0; STACK_SIZE],
            maps,
            env,
            len: 0,
            redirect: None,
        }
    }

    fn machine(&mut self) -> Machine<'_, 'a> {
        let len = self.len.min(MAX_FRAME_BYTES);
        Machine {
            kind: HookKind::Packet,
            regs: [0; 16],
            mem: Mem {
                ctx: &self.ctx,
                stack: &mut self.stack,
                packet: &mut self.frame[..len],
                frame: None,
                maps: &mut self.maps,
                cpu: self.env.core,
            },
            redirect: self.redirect,
        }
    }
}

impl JitHost for PacketMem<'_> {
    fn translate(&mut self, state: &mut JitState, addr: u64, size_write: u64) -> u64 {
        translate_in(&mut self.machine(), state, addr, size_write)
    }

    fn helper(&mut self, state: &mut JitState, args: [u64; 5]) -> u64 {
        let env = Env {
            clock: self.env.clock,
            core: self.env.core,
        };
        let mut m = self.machine();
        let r0 = helper_in(&mut m, &env, state, args);
        self.redirect = m.redirect;
        r0
    }

    #[cfg(test)]
    fn host_read(&mut self, addr: u64, size: usize) -> Option<u64> {
        let len = self.len.min(MAX_FRAME_BYTES);
        let (stack, packet, maps) = (&mut self.stack[..], &mut self.frame[..len], &mut self.maps);
        host_read_in(
            &self.ctx,
            || get_le(host_bytes_in(stack, packet, maps, addr, size), size),
            addr,
            size,
        )
    }

    #[cfg(test)]
    fn host_write(&mut self, addr: u64, size: usize, value: u64) -> Option<()> {
        let len = self.len.min(MAX_FRAME_BYTES);
        let b = host_bytes_in(
            &mut self.stack[..],
            &mut self.frame[..len],
            &mut self.maps,
            addr,
            size,
        );
        put_le(b, size, value)
    }
}

/// Runs `code` (a packet hook's, checked by the caller against `mem`'s
/// maps) over the first `len` bytes of `mem`'s frame with `state` as the
/// block it reads.
#[inline(always)]
pub(crate) fn run_packet(
    code: &dyn JitCode,
    mem: &mut PacketMem<'_>,
    state: &mut JitState,
    len: usize,
) -> Outcome {
    let len = len.min(MAX_FRAME_BYTES);
    mem.len = len;
    mem.redirect = None;
    regions(mem, state);
    state.set_region(REGION_PACKET as usize, mem.frame.as_mut_ptr() as u64, len);
    state.words[W_EXECUTED] = 0;
    state.words[W_FAULT_KIND] = 0;
    let ret = code.enter(state, mem);
    finish(state, ret, mem.redirect)
}

/// A packet hook's memory while its compiled code runs on a frame where
/// the fast path wrote it, in the receiver's buffer (`frame`; the
/// packet region names it), until the code asks Rust for anything (an
/// address outside its guess, a helper): the frame is then copied into
/// `mem`'s own buffer, the region moved there, and the rest of the run
/// (the interpreter's memory code included) works on that copy.
struct InPlace<'m, 'a, 'f> {
    mem: &'m mut PacketMem<'a>,
    frame: Option<&'m HostRange<'f>>,
    /// The frame's length (at most `MAX_FRAME_BYTES`).
    len: usize,
}

impl InPlace<'_, '_, '_> {
    /// Moves the frame into `mem`'s own buffer (once) and the packet
    /// region with it; what `mem` keeps of a run (its frame's length, the
    /// redirect chosen) starts there, at the run's first callback (a run
    /// that makes none keeps nothing there).
    fn own(&mut self, state: &mut JitState) {
        if let Some(frame) = self.frame.take() {
            let len = self.len;
            self.mem.len = len;
            self.mem.redirect = None;
            let own = &mut self.mem.frame[..len];
            if frame.read_into(0, own).is_none() {
                own.fill(0);
            }
            state.set_region(REGION_PACKET as usize, own.as_mut_ptr() as u64, len);
        }
    }
}

impl JitHost for InPlace<'_, '_, '_> {
    fn translate(&mut self, state: &mut JitState, addr: u64, size_write: u64) -> u64 {
        self.own(state);
        self.mem.translate(state, addr, size_write)
    }

    fn helper(&mut self, state: &mut JitState, args: [u64; 5]) -> u64 {
        self.own(state);
        self.mem.helper(state, args)
    }

    #[cfg(test)]
    fn host_read(&mut self, addr: u64, size: usize) -> Option<u64> {
        match self.frame {
            Some(f) if addr >= f.hpa() && addr + size as u64 <= f.hpa() + f.len() => {
                let mut v = [0u8; 8];
                f.read_into(addr - f.hpa(), v.get_mut(..size)?)?;
                Some(u64::from_le_bytes(v))
            }
            _ => self.mem.host_read(addr, size),
        }
    }

    #[cfg(test)]
    fn host_write(&mut self, addr: u64, size: usize, value: u64) -> Option<()> {
        match self.frame {
            Some(f) if addr >= f.hpa() && addr + size as u64 <= f.hpa() + f.len() => {
                f.write_from(addr - f.hpa(), value.to_le_bytes().get(..size)?)
            }
            _ => self.mem.host_write(addr, size, value),
        }
    }
}

/// Enters `code` (a packet hook's, checked by the caller against `mem`'s
/// maps) on `frame` where it lies, in a receiver's buffer (see
/// [`InPlace`]): `r0`, and whether the frame was moved into `mem`'s own
/// buffer during the run (its bytes, with the program's changes, are
/// then there and no longer in `frame`). The state then holds the run's
/// count and its fault, if any: [`in_place_outcome`] reads them; a run
/// without a fault that the caller settles itself needs only
/// [`in_place_clean`] and [`in_place_executed`].
#[inline(always)]
pub(crate) fn enter_in_place(
    code: &dyn JitCode,
    mem: &mut PacketMem<'_>,
    state: &mut JitState,
    frame: &HostRange<'_>,
) -> (u64, bool) {
    let len = (frame.len() as usize).min(MAX_FRAME_BYTES);
    regions(mem, state);
    state.set_region(REGION_PACKET as usize, frame.hpa(), len);
    // The fault word is 0 here: every run that set it had its outcome
    // read ([`in_place_outcome`] clears it).
    state.words[W_EXECUTED] = 0;
    let mut host = InPlace {
        mem,
        frame: Some(frame),
        len,
    };
    let ret = code.enter(state, &mut host);
    (ret, host.frame.is_none())
}

/// Whether the run [`enter_in_place`] just made ended without a fault.
#[inline(always)]
pub(crate) fn in_place_clean(state: &JitState) -> bool {
    state.words[W_FAULT_KIND] == 0
}

/// Instructions the run [`enter_in_place`] just made executed.
#[inline(always)]
pub(crate) fn in_place_executed(state: &JitState) -> u64 {
    state.words[W_EXECUTED]
}

/// The outcome of the run [`enter_in_place`] just made, which returned
/// `ret` and `moved` the frame or not (its fault cleared, as [`finish`]
/// does).
pub(crate) fn in_place_outcome(
    state: &mut JitState,
    mem: &PacketMem<'_>,
    ret: u64,
    moved: bool,
) -> Outcome {
    // Only a run that called back into Rust (and so moved the frame) can
    // have had `bpf_redirect` choose a port.
    let redirect = if moved { mem.redirect } else { None };
    finish(state, ret, redirect)
}

/// Points the context's and the stack's regions at `mem`'s, unless they
/// are there from the last run (they move only with `mem`).
#[inline(always)]
fn regions(mem: &mut PacketMem<'_>, state: &mut JitState) {
    let ctx = mem.ctx.as_ptr() as u64;
    if state.get(base_word(REGION_CTX as usize)) != ctx {
        state.set_region(REGION_CTX as usize, ctx, XDP_MD_SIZE);
        state.set_region(
            REGION_STACK as usize,
            mem.stack.as_mut_ptr() as u64,
            STACK_SIZE,
        );
    }
}

/// The outcome `state` says a run that returned `ret` had; its fault, if
/// any, is cleared (so the fault word is 0 whenever no run is going on).
#[inline(always)]
fn finish(state: &mut JitState, ret: u64, redirect: Option<u32>) -> Outcome {
    let executed = state.words[W_EXECUTED] as u32;
    let fault = take_fault(state);
    state.words[W_FAULT_KIND] = 0;
    match fault {
        None => Outcome::Returned {
            ret,
            redirect,
            executed,
        },
        Some(kind) => Outcome::Aborted(Fault {
            insn: state.get(W_FAULT_INSN) as usize,
            kind,
            executed,
        }),
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
    finish(state, ret, host.redirect)
}
