//! The one verifier: a structural pass (allow-listed opcodes and fields, jumps forward and in range, `lddw` pairs, helpers per hook kind), then a forward abstract interpretation over the program's DAG (registers and stack bytes written before read, kinds of values, map-handle provenance, stack and context accesses).
//!
//! Since every jump goes forward, instructions are visited once, in index
//! order; the state at a join point is the merge of the states that reach
//! it (a register keeps its kind only if every path agrees; a stack byte
//! is initialised only if every path wrote it).
//!
//! # What it proves
//! - Every instruction is one of the allowed forms with its unused fields
//!   zero and registers `r0..=r10`; at most [`MAX_INSNS`] of them.
//! - Every run ends: no jump goes backwards or to itself, every jump lands
//!   on an instruction (never on the second half of an `lddw`), and no
//!   path runs past the end.
//! - Registers are read only after every path wrote them (`r1` = context,
//!   `r10` = frame pointer at entry; a call sets `r0` and clobbers
//!   `r1..=r5`); `r0` is written before `exit`; `r10` is never written.
//! - Stack accesses through `r10` (or a copy moved by constants) stay in
//!   `[-512, 0)` and read only bytes every path wrote; pointers spilled to
//!   an aligned stack slot keep their kind.
//! - Context accesses are loads of whole fields; the context is never
//!   written.
//! - Map helpers get a map handle from `lddw src=1` in `r1` (and
//!   initialised keys and values when they are on the stack); a lookup's
//!   result is compared with 0 before it is dereferenced; map handles are
//!   never dereferenced.
//! - Helpers are the ones the hook kind allows.
//!
//! # What it does not prove
//! - Packet and map value accesses are in bounds: loads through a
//!   scalar (the packet pointers loaded from the context, map values
//!   after their NULL check, anything computed) are checked by the
//!   interpreter at run time, where an out-of-region access aborts the run.
//!   The verifier does not track ranges or do XDP's `data + n > data_end`
//!   bound proofs.
//! - Alignment of any access.
//! - That a scalar used as an address was ever a pointer (an address
//!   forged by arithmetic is just checked at run time like any other).
//! - Anything about the values computed (division by zero is defined:
//!   the result is 0, or the dividend for modulo).

#![forbid(unsafe_code)]

mod flow;
mod rule;
mod state;
mod structure;
#[cfg(test)]
mod tests;

pub use rule::{MAX_PENDING, Rule};

use super::context::HookKind;
use super::insn::Insn;
use super::map::MapDef;
use super::{MAX_INSNS, MAX_MAPS};
use core::fmt;

/// A broken rule and the instruction that broke it (0 for rules about the
/// whole program).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// Index of the instruction.
    pub insn: usize,
    /// The rule.
    pub rule: Rule,
}

impl fmt::Display for VerifyError {
    /// `insn 7: back edge to insn 3 (loops are not allowed)`; the caller
    /// prefixes ``hook `name`: ``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rule.is_program_wide() {
            write!(f, "{}", self.rule)
        } else {
            write!(f, "insn {}: {}", self.insn, self.rule)
        }
    }
}

/// What the verifier learnt about a program that passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgInfo {
    /// The hook kind it was verified for.
    pub kind: HookKind,
    /// Its instructions (slots, an `lddw` counting two).
    pub len: usize,
    /// Instructions reachable from the entry (an `lddw` counting one): an
    /// upper bound of the instructions one run executes.
    pub reachable: usize,
    /// Bit `i` set: map `i` is named by an `lddw src=1`.
    pub maps_used: u32,
    /// Bit `id` set: helper `id` is called.
    pub helpers_used: u32,
    /// The deepest stack byte accessed through a stack pointer, in bytes
    /// below `r10`.
    pub stack_depth: usize,
}

/// Verifies `prog` for a hook of `kind` whose map table is `maps`.
pub fn verify(prog: &[Insn], kind: HookKind, maps: &[MapDef]) -> Result<ProgInfo, VerifyError> {
    let whole = |rule| VerifyError { insn: 0, rule };
    if prog.is_empty() {
        return Err(whole(Rule::Empty));
    }
    if prog.len() > MAX_INSNS {
        return Err(whole(Rule::TooLong { len: prog.len() }));
    }
    if maps.len() > MAX_MAPS {
        return Err(whole(Rule::TooManyMaps { count: maps.len() }));
    }
    for (index, m) in maps.iter().enumerate() {
        m.validate()
            .map_err(|error| whole(Rule::BadMap { index, error }))?;
    }
    let halves = structure::check(prog, kind, maps)?;
    flow::run(prog, kind, maps, &halves)
}
