//! The verifier's abstract state at one instruction: each register's kind of value, which stack bytes are initialised and the kinds of pointers spilled to stack slots; the merge at join points; the table of states waiting at jump targets.

#![forbid(unsafe_code)]

use super::rule::{MAX_PENDING, Rule};
use crate::hook::STACK_SIZE;
use crate::hook::insn::REGISTERS;

/// The kind of value a register (or a spilled stack slot) holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Not written on every path.
    Uninit,
    /// A number (or an address the interpreter checks at run time: packet
    /// pointers, map values after their NULL check).
    Scalar,
    /// The context pointer plus an offset.
    Ctx(i16),
    /// The frame pointer plus an offset (in `-512..=0`).
    Stack(i16),
    /// A map handle (the map's index).
    Map(u8),
    /// A map lookup's result not yet compared with 0 (the lookup's insn).
    MaybeNull(u16),
    /// Initialised, but of different kinds on different paths.
    Mixed,
}

impl Kind {
    fn merge(self, other: Kind) -> Kind {
        match (self, other) {
            (a, b) if a == b => a,
            (Kind::Uninit, _) | (_, Kind::Uninit) => Kind::Uninit,
            _ => Kind::Mixed,
        }
    }
}

/// Eight-byte stack slots.
pub(super) const SLOTS: usize = STACK_SIZE / 8;
const INIT_WORDS: usize = STACK_SIZE / 64;

/// The abstract state before one instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct State {
    /// Kinds of `r0..=r10`.
    pub regs: [Kind; REGISTERS as usize],
    /// Initialised stack bytes, bit `i` for byte `r10 - 512 + i`.
    init: [u64; INIT_WORDS],
    /// Kind of the value in each aligned 8-byte slot (slot `i` at
    /// `r10 - 512 + 8 i`); meaningful where all 8 bytes are initialised
    /// and written whole, else [`Kind::Scalar`].
    slots: [Kind; SLOTS],
}

impl State {
    /// The state at entry: `r1` the context, `r10` the frame pointer.
    pub(super) fn entry() -> Self {
        let mut regs = [Kind::Uninit; REGISTERS as usize];
        regs[1] = Kind::Ctx(0);
        regs[10] = Kind::Stack(0);
        State {
            regs,
            init: [0; INIT_WORDS],
            slots: [Kind::Scalar; SLOTS],
        }
    }

    /// The state where paths `self` and `other` join.
    pub(super) fn merge(&mut self, other: &State) {
        for (a, b) in self.regs.iter_mut().zip(other.regs) {
            *a = a.merge(b);
        }
        for (a, b) in self.init.iter_mut().zip(other.init) {
            *a &= b;
        }
        for (a, b) in self.slots.iter_mut().zip(other.slots) {
            *a = a.merge(b);
        }
    }

    /// Register `r`'s kind (an out-of-range number reads as uninitialised;
    /// the structural pass refused those already).
    pub(super) fn reg(&self, r: u8) -> Kind {
        self.regs
            .get(usize::from(r))
            .copied()
            .unwrap_or(Kind::Uninit)
    }

    /// Sets register `r`'s kind.
    pub(super) fn set(&mut self, r: u8, k: Kind) {
        if let Some(slot) = self.regs.get_mut(usize::from(r)) {
            *slot = k;
        }
    }

    /// Index into the stack of the byte at `off` from `r10` (`-512..0`).
    fn byte(off: i64) -> Option<usize> {
        usize::try_from(off + STACK_SIZE as i64)
            .ok()
            .filter(|&b| b < STACK_SIZE)
    }

    /// The first uninitialised byte of `off .. off + size`, if any.
    pub(super) fn first_uninit(&self, off: i64, size: usize) -> Option<i64> {
        (off..off + size as i64)
            .find(|&o| Self::byte(o).is_none_or(|b| self.init[b / 64] & (1u64 << (b % 64)) == 0))
    }

    /// Marks `off .. off + size` written with a value of kind `k`: an
    /// aligned 8-byte write keeps `k` for its slot, any other write makes
    /// the slots it touches scalars.
    pub(super) fn write(&mut self, off: i64, size: usize, k: Kind) {
        for o in off..off + size as i64 {
            if let Some(b) = Self::byte(o) {
                self.init[b / 64] |= 1u64 << (b % 64);
                self.slots[b / 8] = Kind::Scalar;
            }
        }
        if size == 8
            && off % 8 == 0
            && let Some(b) = Self::byte(off)
        {
            self.slots[b / 8] = k;
        }
    }

    /// The kind a load of `off .. off + size` gives: a spilled kind for a
    /// whole aligned slot, else a scalar.
    pub(super) fn read(&self, off: i64, size: usize) -> Kind {
        match Self::byte(off) {
            Some(b) if size == 8 && off % 8 == 0 => self.slots[b / 8],
            _ => Kind::Scalar,
        }
    }

    /// After `if rX == 0` / `!= 0` on a lookup's result: every copy of it
    /// is a scalar on both paths (NULL on one, a checked value on the other).
    pub(super) fn null_checked(&mut self, id: u16) {
        for k in self.regs.iter_mut().chain(self.slots.iter_mut()) {
            if *k == Kind::MaybeNull(id) {
                *k = Kind::Scalar;
            }
        }
    }
}

/// States waiting at jump targets not reached yet.
pub(super) struct Pending {
    at: [Option<(usize, State)>; MAX_PENDING],
}

impl Pending {
    pub(super) fn new() -> Self {
        Pending {
            at: [const { None }; MAX_PENDING],
        }
    }

    /// Adds a path reaching `target` with `state`.
    pub(super) fn add(&mut self, target: usize, state: State) -> Result<(), Rule> {
        if let Some((_, s)) = self.at.iter_mut().flatten().find(|(t, _)| *t == target) {
            s.merge(&state);
            return Ok(());
        }
        let free = self
            .at
            .iter_mut()
            .find(|e| e.is_none())
            .ok_or(Rule::TooManyBranches)?;
        *free = Some((target, state));
        Ok(())
    }

    /// The merged state of the jumps to `target`, removed from the table.
    pub(super) fn take(&mut self, target: usize) -> Option<State> {
        let e = self
            .at
            .iter_mut()
            .find(|e| matches!(e, Some((t, _)) if *t == target))?;
        e.take().map(|(_, s)| s)
    }
}
