//! Operator hooks (eBPF): the instruction encoding ([`insn`]), the hook kinds with their context layouts and return contracts ([`context`]), map definitions ([`map`]) and the one verifier ([`verify`]) that both the host tool and the hypervisor run.
//!
//! A hook is a flat eBPF program in the Linux encoding (what
//! `clang -target bpf` emits), attached at one of four hook points, with a
//! table of map definitions its `lddw src=1` instructions name by index.
//! The host tool verifies a program for early errors; the hypervisor
//! verifies it again before it runs and then runs it in a checked virtual
//! address space, so memory safety never rests on the verifier alone.

#![forbid(unsafe_code)]

pub mod asm;
pub mod context;
pub mod insn;
pub mod map;
pub mod verify;

pub use context::HookKind;
pub use insn::Insn;
pub use map::{MapDef, MapError, MapKind};
pub use verify::{ProgInfo, Rule, VerifyError, verify};

/// Most instructions in one program (an `lddw` counts as two).
pub const MAX_INSNS: usize = 4096;
/// Bytes of stack a program has, below its frame pointer `r10`.
pub const STACK_SIZE: usize = 512;
/// Most maps one program may use.
pub const MAX_MAPS: usize = 16;
