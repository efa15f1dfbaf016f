//! Operator hooks (eBPF): programs verified by `vmm_abi::hook::verify` run in a lean interpreter ([`vm`]) over a checked virtual address space ([`layout`]), with their maps in a caller-provided arena ([`maps`]).
//!
//! The flow for the integration: decode the program and its map table
//! from the manifest, [`Verified::new`] it (the verifier runs again here,
//! whatever the host tool said), size the maps with
//! [`maps::bytes_needed`] and build a [`maps::MapSet`] over an arena
//! allocated at boot, then per event build the context bytes (for packet
//! hooks [`layout::xdp_md`]) and call [`vm::run`]. Nothing here allocates.
//! [`packet`] does all of that for a packet hook on a link direction.

#![forbid(unsafe_code)]

pub mod jit;
pub mod layout;
pub mod lifecycle;
pub mod maps;
pub mod packet;
pub mod vm;

use vm::HookEnv;
use vm::op::{self, Op};
use vmm_abi::hook::{HookKind, Insn, MapDef, ProgInfo, VerifyError, verify};

/// What a run needs of the machine: the clock (`bpf_ktime_get_ns`) and
/// the core it runs on (`bpf_get_smp_processor_id`, per-core maps).
pub(crate) struct Env {
    pub(crate) clock: fn() -> u64,
    pub(crate) core: u32,
}

impl HookEnv for Env {
    fn ktime_ns(&self) -> u64 {
        (self.clock)()
    }
    fn core(&self) -> u32 {
        self.core
    }
}

/// A program the verifier accepted, with what it learnt about it. The
/// only way to run a program is through one of these.
#[derive(Clone, Copy, Debug)]
pub struct Verified<'p> {
    insns: &'p [Insn],
    info: ProgInfo,
}

impl<'p> Verified<'p> {
    /// Verifies `insns` as a hook of `kind` whose map table is `maps`.
    pub fn new(insns: &'p [Insn], kind: HookKind, maps: &[MapDef]) -> Result<Self, VerifyError> {
        let info = verify(insns, kind, maps)?;
        Ok(Verified { insns, info })
    }

    /// Its instructions.
    pub fn insns(&self) -> &'p [Insn] {
        self.insns
    }

    /// What the verifier learnt.
    pub fn info(&self) -> &ProgInfo {
        &self.info
    }

    /// The hook kind it was verified for.
    pub fn kind(&self) -> HookKind {
        self.info.kind
    }
}

/// A verified program decoded for running ([`vm::op`]): what the
/// interpreter runs. Decoded once, when its hook is built.
#[derive(Clone, Copy, Debug)]
pub struct Program<'p> {
    verified: Verified<'p>,
    ops: &'p [Op],
    /// Its compiled code, if it has been compiled ([`jit`]).
    jit: Option<&'p dyn jit::JitCode>,
}

impl<'p> Program<'p> {
    /// Decodes `verified` into `storage`, which must have room for an op
    /// per instruction slot; `None` if it has not.
    pub fn new(verified: Verified<'p>, storage: &'p mut [Op]) -> Option<Self> {
        let ops = storage.get_mut(..verified.insns.len())?;
        op::decode(verified.insns, ops);
        Some(Program {
            verified,
            ops,
            jit: None,
        })
    }

    /// `verified` with ops decoded elsewhere (tests comparing decodings).
    #[cfg(test)]
    pub(crate) fn from_decoded(verified: Verified<'p>, ops: &'p [Op]) -> Self {
        Program {
            verified,
            ops,
            jit: None,
        }
    }

    /// The same program, run as `code` (compiled from it by [`jit::compile`]).
    pub fn with_jit(self, code: &'p dyn jit::JitCode) -> Self {
        Program {
            jit: Some(code),
            ..self
        }
    }

    /// What runs it, as the control channel numbers it:
    /// `ENGINE_COMPILED` (it has code) or `ENGINE_INTERPRETED`.
    pub fn engine(&self) -> u8 {
        use vmm_abi::control::{ENGINE_COMPILED, ENGINE_INTERPRETED};
        if self.jit.is_some() {
            ENGINE_COMPILED
        } else {
            ENGINE_INTERPRETED
        }
    }

    /// Its compiled code, if any.
    pub fn jit(&self) -> Option<&'p dyn jit::JitCode> {
        self.jit
    }

    /// What the verifier learnt.
    pub fn info(&self) -> &ProgInfo {
        self.verified.info()
    }

    /// The hook kind it was verified for.
    pub fn kind(&self) -> HookKind {
        self.verified.kind()
    }

    /// Its ops, one per instruction slot.
    pub fn ops(&self) -> &'p [Op] {
        self.ops
    }

    /// Whether it has store instructions (a packet hook that may write the
    /// frame gets a copy of its own).
    pub fn stores(&self) -> bool {
        self.ops
            .iter()
            .any(|o| matches!(o, Op::St { .. } | Op::Stx { .. } | Op::AtomicAdd { .. }))
    }
}

/// Memory a hook is built in, allocated by the caller: its maps' arena
/// (at least [`maps::bytes_needed`]) and room for its decoded program
/// (an [`Op`] per instruction slot).
pub struct HookMemory<'t> {
    /// The maps' values and keys.
    pub arena: &'t mut [u8],
    /// The decoded program.
    pub ops: &'t mut [Op],
}

/// Hook memory for tests: `arena` and room for `slots` ops, leaked.
#[cfg(test)]
pub(crate) fn leaked_memory(arena: &'static mut [u8], slots: usize) -> HookMemory<'static> {
    HookMemory {
        arena,
        ops: std::vec![Op::default(); slots].leak(),
    }
}
