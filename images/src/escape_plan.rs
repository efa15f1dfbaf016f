//! The `escape` image's plan: which guest-physical address to touch, and
//! whether to write before reading.
//!
//! Arguments: `write` (write first; the default reads first) and
//! `addr=<number>` (decimal or `0x` hex; the default is the first byte past
//! the guest's memory, `BootInfo::memory_size`).

use core::fmt;
use guest_lib::args::{Arg, Args, parse_u64};

/// Alignment the address needs for a `u64` access.
pub const ACCESS_ALIGN: u64 = core::mem::align_of::<u64>() as u64;

/// What `escape` will do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Guest-physical address of the `u64` to access.
    pub addr: u64,
    /// Write there before reading (otherwise read first).
    pub write_first: bool,
}

/// Arguments `escape` cannot act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError<'a> {
    /// A word it does not know.
    UnknownArg(&'a str),
    /// `addr=` with something that is not a number.
    BadAddress(&'a str),
    /// Address zero: not a test of the hypervisor, and not a valid pointer.
    Null,
    /// An address not aligned for a `u64`.
    Misaligned(u64),
    /// An address inside the guest's own memory: touching it tests nothing
    /// and could corrupt the image itself.
    InsideGuest(u64),
}

impl fmt::Display for PlanError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::UnknownArg(word) => write!(f, "unknown argument `{word}`"),
            PlanError::BadAddress(text) => write!(f, "`{text}` is not an address"),
            PlanError::Null => f.write_str("address 0 is not a useful target"),
            PlanError::Misaligned(addr) => {
                write!(f, "address {addr:#x} is not {ACCESS_ALIGN}-byte aligned")
            }
            PlanError::InsideGuest(addr) => {
                write!(f, "address {addr:#x} is inside this guest's own memory")
            }
        }
    }
}

/// Reads `args`; `memory_size` is the guest's memory size from the boot info.
pub fn plan(args: &str, memory_size: u64) -> Result<Plan, PlanError<'_>> {
    let mut plan = Plan {
        addr: memory_size,
        write_first: false,
    };
    for arg in Args::new(args).iter() {
        match arg {
            Arg::Flag("write") => plan.write_first = true,
            Arg::Pair("addr", text) => {
                plan.addr = parse_u64(text).ok_or(PlanError::BadAddress(text))?;
            }
            Arg::Flag(word) => return Err(PlanError::UnknownArg(word)),
            Arg::Pair(key, _) => return Err(PlanError::UnknownArg(key)),
        }
    }
    if plan.addr == 0 {
        return Err(PlanError::Null);
    }
    if !plan.addr.is_multiple_of(ACCESS_ALIGN) {
        return Err(PlanError::Misaligned(plan.addr));
    }
    if plan.addr < memory_size {
        return Err(PlanError::InsideGuest(plan.addr));
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMORY: u64 = 0x40_0000;

    #[test]
    fn default_reads_just_past_memory() {
        assert_eq!(
            plan("", MEMORY),
            Ok(Plan {
                addr: MEMORY,
                write_first: false
            })
        );
    }

    #[test]
    fn write_and_addr() {
        assert_eq!(
            plan("write addr=0x1000_0000", MEMORY),
            Ok(Plan {
                addr: 0x1000_0000,
                write_first: true
            })
        );
        assert_eq!(
            plan("addr=4194304", MEMORY),
            Ok(Plan {
                addr: MEMORY,
                write_first: false
            })
        );
    }

    #[test]
    fn bad_arguments() {
        assert_eq!(plan("read", MEMORY), Err(PlanError::UnknownArg("read")));
        assert_eq!(plan("x=1", MEMORY), Err(PlanError::UnknownArg("x")));
        assert_eq!(plan("addr=zz", MEMORY), Err(PlanError::BadAddress("zz")));
        assert_eq!(plan("addr=0", MEMORY), Err(PlanError::Null));
        assert_eq!(
            plan("addr=0x40_0004", MEMORY),
            Err(PlanError::Misaligned(0x40_0004))
        );
        assert_eq!(
            plan("addr=0x1000", MEMORY),
            Err(PlanError::InsideGuest(0x1000))
        );
    }
}
