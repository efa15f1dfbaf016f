//! The `badcall` image's steps: each one a thing a guest must not be allowed
//! to do, which gets it stopped.
//!
//! Arguments: step words, run in order ([`Step::word`]); none means
//! [`DEFAULT_STEPS`].

use alloc::vec::Vec;
use core::fmt;
use guest_lib::args::{Arg, Args};
use vmm_abi::corral::hypercall::Hypercall;

/// A hypercall number no ABI version uses.
pub const UNKNOWN_HYPERCALL: u64 = 0xdead;
const _: () = assert!(Hypercall::from_raw(UNKNOWN_HYPERCALL).is_none());
/// Length passed with the bad console pointers.
pub const BAD_POINTER_LEN: u64 = 64;
/// A console pointer whose range wraps around the address space.
pub const WRAPPING_POINTER: u64 = u64::MAX - 8;
/// The IA32_APIC_BASE MSR (Intel SDM vol. 3A, 11.4.4).
pub const IA32_APIC_BASE: u32 = 0x1b;
/// The architectural default APIC base: xAPIC at 0xFEE0_0000, enabled
/// (bit 11). Written by `msr-write`, so that a hypervisor that wrongly let
/// the write through changes as little as possible.
pub const APIC_BASE_DEFAULT: u64 = 0xfee0_0000 | APIC_BASE_GLOBAL_ENABLE;
/// IA32_APIC_BASE bit 11, APIC global enable.
pub const APIC_BASE_GLOBAL_ENABLE: u64 = 1 << 11;
/// COM1, the host's serial console.
pub const HOST_SERIAL_PORT: u16 = 0x3f8;
/// The POST-code diagnostic port.
pub const POST_CODE_PORT: u16 = 0x80;

/// One forbidden action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Hypercall [`UNKNOWN_HYPERCALL`].
    UnknownHypercall,
    /// ConsoleWrite of [`BAD_POINTER_LEN`] bytes starting just past the
    /// guest's memory.
    BadPointer,
    /// ConsoleWrite of [`BAD_POINTER_LEN`] bytes at [`WRAPPING_POINTER`].
    WrappingPointer,
    /// `rdmsr` of [`IA32_APIC_BASE`].
    MsrRead,
    /// `wrmsr` of [`APIC_BASE_DEFAULT`] to [`IA32_APIC_BASE`].
    MsrWrite,
    /// `in` from [`HOST_SERIAL_PORT`].
    IoRead,
    /// `out` to [`POST_CODE_PORT`].
    IoWrite,
}

/// The steps run when no argument names any: an unknown hypercall, a bad
/// pointer, an MSR read, a port read.
pub const DEFAULT_STEPS: [Step; 4] = [
    Step::UnknownHypercall,
    Step::BadPointer,
    Step::MsrRead,
    Step::IoRead,
];

impl Step {
    /// Every step.
    pub const ALL: [Step; 7] = [
        Step::UnknownHypercall,
        Step::BadPointer,
        Step::WrappingPointer,
        Step::MsrRead,
        Step::MsrWrite,
        Step::IoRead,
        Step::IoWrite,
    ];

    /// The argument word that selects this step.
    pub const fn word(self) -> &'static str {
        match self {
            Step::UnknownHypercall => "unknown",
            Step::BadPointer => "badptr",
            Step::WrappingPointer => "wrap",
            Step::MsrRead => "msr",
            Step::MsrWrite => "msr-write",
            Step::IoRead => "io",
            Step::IoWrite => "io-write",
        }
    }

    /// The step this argument word selects.
    pub fn from_word(word: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|step| step.word() == word)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::UnknownHypercall => {
                write!(f, "hypercall with unknown number {UNKNOWN_HYPERCALL:#x}")
            }
            Step::BadPointer => write!(
                f,
                "console write of {BAD_POINTER_LEN} bytes just past guest memory"
            ),
            Step::WrappingPointer => write!(
                f,
                "console write of {BAD_POINTER_LEN} bytes at {WRAPPING_POINTER:#x}, wrapping around"
            ),
            Step::MsrRead => write!(f, "rdmsr IA32_APIC_BASE ({IA32_APIC_BASE:#x})"),
            Step::MsrWrite => write!(
                f,
                "wrmsr IA32_APIC_BASE ({IA32_APIC_BASE:#x}) = {APIC_BASE_DEFAULT:#x}"
            ),
            Step::IoRead => write!(f, "in from port {HOST_SERIAL_PORT:#x} (host serial)"),
            Step::IoWrite => write!(f, "out to port {POST_CODE_PORT:#x}"),
        }
    }
}

/// The steps `args` asks for, in order, or the word it does not know.
pub fn steps(args: &str) -> Result<Vec<Step>, &str> {
    let args = Args::new(args);
    if args.is_empty() {
        return Ok(DEFAULT_STEPS.to_vec());
    }
    args.iter()
        .map(|arg| match arg {
            Arg::Flag(word) => Step::from_word(word).ok_or(word),
            Arg::Pair(key, _) => Err(key),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_arguments_means_the_default_sequence() {
        assert_eq!(steps("").unwrap(), DEFAULT_STEPS);
        assert_eq!(steps("  ").unwrap(), DEFAULT_STEPS);
    }

    #[test]
    fn words_select_steps_in_order() {
        assert_eq!(steps("unknown").unwrap(), [Step::UnknownHypercall]);
        assert_eq!(
            steps("io-write msr-write wrap").unwrap(),
            [Step::IoWrite, Step::MsrWrite, Step::WrappingPointer]
        );
        for step in Step::ALL {
            assert_eq!(Step::from_word(step.word()), Some(step));
        }
    }

    #[test]
    fn unknown_words_are_refused() {
        assert_eq!(steps("msr bogus"), Err("bogus"));
        assert_eq!(steps("io=1"), Err("io"));
    }

    #[test]
    fn wrapping_pointer_wraps() {
        assert!(WRAPPING_POINTER.checked_add(BAD_POINTER_LEN).is_none());
    }
}
