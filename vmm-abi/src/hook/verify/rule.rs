//! The rules a program can break, each with the sentence an operator reads after `hook `name`: insn N: `.

#![forbid(unsafe_code)]

use crate::hook::context::HookKind;
use crate::hook::insn::helper_name;
use crate::hook::map::MapError;
use crate::hook::{MAX_INSNS, MAX_MAPS, STACK_SIZE};
use core::fmt;

/// Most jump targets the verifier holds a state for at once (each a few
/// hundred bytes on the verifier's stack). A program that has more
/// forward jumps pending over one stretch of code is refused with
/// [`Rule::TooManyBranches`].
pub const MAX_PENDING: usize = 32;

/// A rule of the verifier, as broken by one instruction (or by the whole
/// program: see [`Rule::is_program_wide`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The program has no instructions.
    Empty,
    /// More than [`MAX_INSNS`] instructions.
    TooLong {
        /// Its length.
        len: usize,
    },
    /// More than [`MAX_MAPS`] maps.
    TooManyMaps {
        /// How many were given.
        count: usize,
    },
    /// A map definition breaks a limit.
    BadMap {
        /// Its index in the map table.
        index: usize,
        /// What is wrong.
        error: MapError,
    },
    /// A register number above 10.
    BadRegister {
        /// The number.
        reg: u8,
    },
    /// An opcode outside the allow-list.
    UnknownOpcode {
        /// The opcode byte.
        code: u8,
    },
    /// A legacy packet load (`LD_ABS`/`LD_IND`).
    LegacyPacketLoad {
        /// The opcode byte.
        code: u8,
    },
    /// A field this instruction does not use is not zero.
    ReservedField {
        /// Which field.
        field: &'static str,
    },
    /// An immediate this instruction does not accept.
    BadImmediate {
        /// What the immediate selects.
        what: &'static str,
        /// Its value.
        imm: i32,
    },
    /// An `lddw` in the last slot, without its second half.
    LddwTruncated,
    /// The second slot of an `lddw` is not `code = dst = src = off = 0`
    /// (and `imm = 0` for a map handle).
    LddwSecondHalf,
    /// A pseudo source (`lddw` or `call` `src`) this verifier does not know.
    UnknownPseudo {
        /// The `src` value.
        src: u8,
    },
    /// A map handle `lddw` names a map the table does not have.
    MapIndex {
        /// The index named.
        index: u32,
        /// Maps in the table.
        maps: usize,
    },
    /// A jump to itself or backwards.
    BackEdge {
        /// The target.
        target: usize,
    },
    /// A jump outside the program.
    JumpOutOfRange {
        /// The target (may be negative).
        target: i64,
    },
    /// A jump into the second slot of an `lddw`.
    JumpIntoLddw {
        /// The target.
        target: usize,
    },
    /// A BPF-to-BPF call.
    BpfToBpfCall,
    /// A call of `bpf_tail_call`.
    TailCall,
    /// A call of a helper this hypervisor does not offer.
    UnknownHelper {
        /// Its number.
        id: u32,
    },
    /// A call of a helper this kind of hook may not use.
    HelperNotAllowed {
        /// Its number.
        helper: u32,
        /// The hook kind.
        kind: HookKind,
    },
    /// A path runs past the last instruction without `exit`.
    FallsOffEnd,
    /// A register read before every path to it wrote it.
    UninitRegister {
        /// The register.
        reg: u8,
    },
    /// `exit` with `r0` not written on every path.
    R0NotSet,
    /// A write to the frame pointer `r10`.
    FramePointerWrite,
    /// A stack access outside `[-512, 0)` below `r10`.
    StackOutOfRange {
        /// Offset of its first byte from `r10`.
        off: i64,
        /// Bytes accessed.
        size: usize,
    },
    /// A stack byte read before every path to it wrote it.
    UninitStack {
        /// Offset of the byte from `r10`.
        off: i64,
    },
    /// Arithmetic on a stack or context pointer other than adding or
    /// subtracting a constant (or a pointer used as an operand).
    PointerArithmetic {
        /// The register holding the pointer.
        reg: u8,
    },
    /// A stack or context pointer moved outside its region.
    PointerOffset {
        /// The register.
        reg: u8,
        /// Its new offset (from `r10`, or from the context's start).
        off: i64,
    },
    /// A map handle dereferenced or used in arithmetic.
    MapHandleUse {
        /// The register.
        reg: u8,
    },
    /// A map helper's `r1` is not a map handle from `lddw src=1`.
    NotMapHandle,
    /// A helper argument of the wrong kind.
    HelperArg {
        /// The argument register.
        reg: u8,
        /// What it must be.
        what: &'static str,
    },
    /// A store to the context.
    ContextWrite,
    /// A context load that is not one whole field.
    ContextField {
        /// Offset from the context's start.
        off: i64,
        /// Bytes loaded.
        size: usize,
    },
    /// A map value that may be NULL dereferenced, used in arithmetic or
    /// passed as a pointer.
    MaybeNull {
        /// The register.
        reg: u8,
    },
    /// A register dereferenced or passed as a pointer whose kind differs
    /// between the paths that reach here.
    MixedKinds {
        /// The register.
        reg: u8,
    },
    /// More than [`MAX_PENDING`] jump targets pending at once.
    TooManyBranches,
}

impl Rule {
    /// Whether the rule is about the whole program rather than one
    /// instruction (its error's `insn` is then 0 and not printed).
    pub const fn is_program_wide(&self) -> bool {
        matches!(
            self,
            Rule::Empty | Rule::TooLong { .. } | Rule::TooManyMaps { .. } | Rule::BadMap { .. }
        )
    }
}

struct Helper(u32);

impl fmt::Display for Helper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match helper_name(self.0) {
            Some(n) => write!(f, "helper {} ({n})", self.0),
            None => write!(f, "helper {}", self.0),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Rule::Empty => f.write_str("the program is empty"),
            Rule::TooLong { len } => {
                write!(f, "{len} instructions (at most {MAX_INSNS})")
            }
            Rule::TooManyMaps { count } => write!(f, "{count} maps (at most {MAX_MAPS})"),
            Rule::BadMap { index, error } => write!(f, "map {index}: {error}"),
            Rule::BadRegister { reg } => write!(f, "register r{reg} does not exist (r0 to r10)"),
            Rule::UnknownOpcode { code } => write!(f, "opcode {code:#04x} is not allowed"),
            Rule::LegacyPacketLoad { code } => write!(
                f,
                "legacy packet load (opcode {code:#04x}) is not allowed; read the packet through ctx->data"
            ),
            Rule::ReservedField { field } => write!(f, "field {field} must be 0"),
            Rule::BadImmediate { what, imm } => write!(f, "{what}: immediate {imm} not allowed"),
            Rule::LddwTruncated => f.write_str("lddw in the last slot has no second half"),
            Rule::LddwSecondHalf => f.write_str("malformed second half of lddw"),
            Rule::UnknownPseudo { src } => write!(f, "unknown pseudo source {src}"),
            Rule::MapIndex { index, maps } => {
                write!(f, "map index {index} out of range ({maps} maps)")
            }
            Rule::BackEdge { target } => {
                write!(f, "back edge to insn {target} (loops are not allowed)")
            }
            Rule::JumpOutOfRange { target } => {
                write!(f, "jump to insn {target}, outside the program")
            }
            Rule::JumpIntoLddw { target } => {
                write!(f, "jump into the second half of lddw at insn {target}")
            }
            Rule::BpfToBpfCall => f.write_str("BPF-to-BPF calls are not allowed"),
            Rule::TailCall => f.write_str("tail calls are not allowed"),
            Rule::UnknownHelper { id } => write!(f, "unknown {}", Helper(id)),
            Rule::HelperNotAllowed { helper, kind } => {
                write!(f, "{} is not allowed in {kind} hooks", Helper(helper))
            }
            Rule::FallsOffEnd => f.write_str("falls off the end of the program without exit"),
            Rule::UninitRegister { reg } => {
                write!(f, "r{reg} is read before it is written on every path")
            }
            Rule::R0NotSet => f.write_str("exit with r0 not written on every path"),
            Rule::FramePointerWrite => f.write_str("r10 (the frame pointer) is read-only"),
            Rule::StackOutOfRange { off, size } => write!(
                f,
                "stack access of {size} bytes at r10{off:+} outside [-{STACK_SIZE}, 0)"
            ),
            Rule::UninitStack { off } => write!(
                f,
                "stack byte at r10{off:+} is read before it is written on every path"
            ),
            Rule::PointerArithmetic { reg } => write!(
                f,
                "r{reg} is a stack or context pointer: only adding a constant is allowed"
            ),
            Rule::PointerOffset { reg, off } => {
                write!(f, "r{reg} moved to offset {off}, outside its region")
            }
            Rule::MapHandleUse { reg } => write!(
                f,
                "r{reg} is a map handle: it can only be passed to map helpers"
            ),
            Rule::NotMapHandle => {
                f.write_str("r1 of a map helper must be a map handle (lddw src=1)")
            }
            Rule::HelperArg { reg, what } => write!(f, "helper argument r{reg} must be {what}"),
            Rule::ContextWrite => f.write_str("the context is read-only"),
            Rule::ContextField { off, size } => {
                write!(
                    f,
                    "context load of {size} bytes at offset {off} is not a field"
                )
            }
            Rule::MaybeNull { reg } => write!(
                f,
                "r{reg} may be NULL (a map lookup's result): compare it with 0 first"
            ),
            Rule::MixedKinds { reg } => write!(
                f,
                "r{reg} holds different kinds of value on different paths"
            ),
            Rule::TooManyBranches => {
                write!(f, "more than {MAX_PENDING} jump targets pending at once")
            }
        }
    }
}
