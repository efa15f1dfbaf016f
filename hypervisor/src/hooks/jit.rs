//! The eBPF JIT: a verified, decoded program compiled once into x86-64 code that keeps the interpreter's checked address space (every load and store translated and bounds-checked against the run's regions, helpers re-checked in Rust), and the state block the code and its runner share.
//!
//! What the code does per instruction is what [`super::vm`] does: the
//! same registers (`r0..r10` in x86 registers, [`BPF_REGS`]), the same
//! virtual addresses ([`super::layout`]), the same faults, the same count
//! of instructions executed. A load or store is checked inline against
//! the region its base register most likely points into (a guess made at
//! compile time, [`compile`]'s `Guess`); any other address takes an out-of-line
//! path that asks the runner ([`JitHost::translate`]) and
//! faults the run when the answer is no. Helpers are called through the
//! runner too ([`JitHost::helper`]). So the JIT adds no
//! trust: a wrong guess costs a call, never safety.
//!
//! Where the code lives and how it is entered is the hardware layer's
//! business (`platform/jit.rs`, behind [`JitCode`]): written through a
//! writable, non-executable mapping (at boot, or for a hook attached at
//! runtime into pages nothing was ever published from), then made
//! read-execute and never writable again before any other core can run
//! it.

#![forbid(unsafe_code)]

mod compile;
#[cfg(test)]
pub(crate) mod emu;
#[cfg(test)]
pub(crate) mod tests;
pub mod x86;

pub use compile::{Labels, compile};

/// Regions of the virtual address space with a slot in the state's
/// tables (region numbers below this; the layout uses 1 to 4).
pub const REGIONS: usize = 8;
/// Access sizes with a limit of their own: 1, 2, 4 and 8 bytes.
pub const SIZE_CLASSES: usize = 4;

/// Word index of region `r`'s host base address.
pub const fn base_word(region: usize) -> usize {
    region
}

/// Word index of region `r`'s limit for accesses of `class`
/// (`len + 1 - size`, 0 if no such access fits: `offset < limit` is the
/// whole check).
pub const fn lim_word(region: usize, class: usize) -> usize {
    REGIONS + region * SIZE_CLASSES + class
}

/// Word index of the instruction counter.
pub const W_EXECUTED: usize = REGIONS + REGIONS * SIZE_CLASSES;
/// Word index of the fault's kind ([`FaultCode`]; 0: none).
pub const W_FAULT_KIND: usize = W_EXECUTED + 1;
/// Word index of the fault's address or value.
pub const W_FAULT_ADDR: usize = W_EXECUTED + 2;
/// Word index of the fault's size, length, id, opcode or target.
pub const W_FAULT_AUX: usize = W_EXECUTED + 3;
/// Word index of the faulting instruction.
pub const W_FAULT_INSN: usize = W_EXECUTED + 4;
/// Word index of the helper number a call asks for.
pub const W_HELPER: usize = W_EXECUTED + 5;
/// Word index of the runner's host address (for the hardware layer's
/// trampolines).
pub const W_HOST: usize = W_EXECUTED + 6;
/// Word index of region `r`'s length, as its limits were computed for.
pub const fn len_word(region: usize) -> usize {
    W_EXECUTED + 7 + region
}
/// Words in the state.
pub const STATE_WORDS: usize = W_EXECUTED + 7 + REGIONS;

/// The block of words the compiled code reads through `r12`: region
/// bases and limits, the instruction counter, the fault, the helper being
/// called. Only words: its layout is its word indices.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct JitState {
    /// The words, by the indices above.
    pub words: [u64; STATE_WORDS],
}

impl Default for JitState {
    fn default() -> Self {
        JitState {
            words: [0; STATE_WORDS],
        }
    }
}

impl JitState {
    /// Word `i` (0 past the end, which no index here is).
    pub fn get(&self, i: usize) -> u64 {
        self.words.get(i).copied().unwrap_or(0)
    }

    /// Sets word `i`.
    pub fn set(&mut self, i: usize, v: u64) {
        if let Some(w) = self.words.get_mut(i) {
            *w = v;
        }
    }

    /// Region `region` starts at host address `base` and has `len` bytes
    /// (its limits computed again only when its length changed).
    #[inline(always)]
    pub fn set_region(&mut self, region: usize, base: u64, len: usize) {
        self.set(base_word(region), base);
        let len = len as u64;
        if self.get(len_word(region)) != len {
            self.set(len_word(region), len);
            for (class, size) in [1u64, 2, 4, 8].into_iter().enumerate() {
                self.set(lim_word(region, class), (len + 1).saturating_sub(size));
            }
        }
    }
}

/// Fault kinds as the state's [`W_FAULT_KIND`] word carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum FaultCode {
    /// A load outside every region (addr, size).
    Load = 1,
    /// A store outside every writable region (addr, size).
    Store = 2,
    /// A helper's memory argument (addr, len).
    HelperMemory = 3,
    /// Not a map handle (value).
    NotMapHandle = 4,
    /// A helper not available (id).
    Helper = 5,
    /// An instruction that does not run (opcode).
    BadInstruction = 6,
    /// Control reaches a bad target (target).
    Jump = 7,
}

/// What compiled code asks of Rust through the trampolines: an address
/// outside its guessed region translated, a helper called. Answered by the
/// runner ([`crate::hooks::vm::Host`]).
pub trait JitHost {
    /// The host address of `size` bytes (`size_write & 0xff`) at `addr`,
    /// for writing if bit 8 of `size_write` is set; 0, with the fault
    /// written into `state`, if they lie in no region that allows it.
    fn translate(&mut self, state: &mut JitState, addr: u64, size_write: u64) -> u64;

    /// Calls the helper [`W_HELPER`] names with `r1..=r5`: its `r0`, or 0
    /// with the fault written into `state`.
    fn helper(&mut self, state: &mut JitState, args: [u64; 5]) -> u64;

    /// A load at a host address of the run's memory (tests: the
    /// emulator's bus).
    #[cfg(test)]
    fn host_read(&mut self, addr: u64, size: usize) -> Option<u64>;

    /// A store at a host address of the run's writable memory (tests).
    #[cfg(test)]
    fn host_write(&mut self, addr: u64, size: usize, value: u64) -> Option<()>;
}

/// Compiled code the hardware layer made executable: entered with the
/// run's state and the runner's host (which the code reaches only through
/// the trampolines it was compiled against).
pub trait JitCode: Sync + core::fmt::Debug {
    /// Runs the code once; its `r0`.
    fn enter(&self, state: &mut JitState, host: &mut dyn JitHost) -> u64;
}

/// The two functions compiled code calls, by address (System V ABI):
/// `translate(state, addr, size | write << 8) -> host address or 0` and
/// `helper(r1, r2, r3, r4, r5, state) -> r0` (the helper's number in
/// [`W_HELPER`]; a fault in [`W_FAULT_KIND`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trampolines {
    /// The address translation's.
    pub translate: u64,
    /// The helper call's.
    pub helper: u64,
}

/// Why a program was not compiled (it then runs in the interpreter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JitError {
    /// The code area has no room for it (bytes available).
    Room(usize),
    /// The label scratch is shorter than the program (slots).
    Labels(usize),
    /// It names a register the JIT does not map, or writes `r10` (the
    /// verifier refuses both; the interpreter copes).
    Registers,
}

impl core::fmt::Display for JitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            JitError::Room(n) => write!(f, "no room in the code area ({n} bytes left)"),
            JitError::Labels(n) => write!(f, "label scratch for {n} instructions too short"),
            JitError::Registers => write!(f, "a register outside r0..r10, or r10 written"),
        }
    }
}

/// The x86 register holding each eBPF register: `r0` in `rax`, the
/// argument registers `r1..r5` where the System V ABI passes arguments
/// (so a helper call needs no moves), the callee-saved `r6..r9` and the
/// frame pointer `r10` in callee-saved registers. `r9`..`r11` are
/// scratch; `r12` holds the state.
pub const BPF_REGS: [x86::Reg; 11] = [
    x86::RAX,
    x86::RDI,
    x86::RSI,
    x86::RDX,
    x86::RCX,
    x86::R8,
    x86::RBX,
    x86::R13,
    x86::R14,
    x86::R15,
    x86::RBP,
];
