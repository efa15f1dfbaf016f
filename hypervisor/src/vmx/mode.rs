//! The guest's operating mode, from the VMCS guest-state fields (CR0, EFER, CS access rights, RFLAGS), for code that must refuse anything but 64-bit mode.
//!
//! Device-register emulation decodes the instruction at RIP as 64-bit code
//! and walks 4-level page tables with a zero CS base; both are only right
//! in 64-bit mode (SDM Vol. 3A, 2.2 and 5.2.1: IA-32e mode with CS.L = 1).
//! Every other mode is named, so a stop reason can say which it was.

use core::fmt;

/// CR0.PE: protected mode.
const CR0_PE: u64 = 1 << 0;
/// CR0.PG: paging.
const CR0_PG: u64 = 1 << 31;
/// IA32_EFER.LMA: IA-32e mode active.
const EFER_LMA: u64 = 1 << 10;
/// RFLAGS.VM: virtual-8086 mode.
const RFLAGS_VM: u64 = 1 << 17;
/// Segment access rights (VMCS format, SDM 25.4.1): L, 64-bit code.
const AR_L: u32 = 1 << 13;
/// Segment access rights: D/B, default operand size 32.
const AR_DB: u32 = 1 << 14;

/// A processor mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuMode {
    /// Real-address mode (CR0.PE = 0; an unrestricted guest may be here).
    Real,
    /// Virtual-8086 mode.
    Virtual8086,
    /// Protected mode with a 16-bit code segment.
    Protected16,
    /// Protected mode with a 32-bit code segment.
    Protected32,
    /// IA-32e compatibility mode, 16-bit code segment.
    Compat16,
    /// IA-32e compatibility mode, 32-bit code segment.
    Compat32,
    /// IA-32e 64-bit mode.
    Long64,
}

impl CpuMode {
    /// The mode from the guest's CR0, IA32_EFER, CS access rights and
    /// RFLAGS as the VMCS holds them.
    pub fn of(cr0: u64, efer: u64, cs_access_rights: u32, rflags: u64) -> CpuMode {
        let db = cs_access_rights & AR_DB != 0;
        if cr0 & CR0_PE == 0 {
            CpuMode::Real
        } else if efer & EFER_LMA != 0 && cr0 & CR0_PG != 0 {
            match (cs_access_rights & AR_L != 0, db) {
                (true, _) => CpuMode::Long64,
                (false, true) => CpuMode::Compat32,
                (false, false) => CpuMode::Compat16,
            }
        } else if rflags & RFLAGS_VM != 0 {
            CpuMode::Virtual8086
        } else if db {
            CpuMode::Protected32
        } else {
            CpuMode::Protected16
        }
    }
}

impl fmt::Display for CpuMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CpuMode::Real => "real mode",
            CpuMode::Virtual8086 => "virtual-8086 mode",
            CpuMode::Protected16 => "16-bit protected mode",
            CpuMode::Protected32 => "32-bit protected mode",
            CpuMode::Compat16 => "16-bit compatibility mode",
            CpuMode::Compat32 => "32-bit compatibility mode",
            CpuMode::Long64 => "64-bit mode",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CS access rights of a present, accessed code segment (type 0xb, S).
    const CODE: u32 = 0x9b;

    #[test]
    fn modes_by_control_bits() {
        let long = CR0_PE | CR0_PG;
        assert_eq!(CpuMode::of(long, EFER_LMA, CODE | AR_L, 2), CpuMode::Long64);
        assert_eq!(
            CpuMode::of(long, EFER_LMA, CODE | AR_DB, 2),
            CpuMode::Compat32
        );
        assert_eq!(CpuMode::of(long, EFER_LMA, CODE, 2), CpuMode::Compat16);
        assert_eq!(
            CpuMode::of(CR0_PE, 0, CODE | AR_DB, 2),
            CpuMode::Protected32
        );
        assert_eq!(CpuMode::of(CR0_PE, 0, CODE, 2), CpuMode::Protected16);
        assert_eq!(
            CpuMode::of(CR0_PE, 0, CODE, RFLAGS_VM),
            CpuMode::Virtual8086
        );
        assert_eq!(CpuMode::of(0, 0, CODE | AR_L, 2), CpuMode::Real);
        // L without LMA means nothing (SDM: CS.L is ignored outside IA-32e).
        assert_eq!(
            CpuMode::of(CR0_PE | CR0_PG, 0, CODE | AR_L | AR_DB, 2),
            CpuMode::Protected32
        );
    }

    proptest::proptest! {
        #[test]
        fn only_ia32e_with_cs_l_is_64_bit(cr0: u64, efer: u64, ar: u32, rflags: u64) {
            let long = CpuMode::of(cr0, efer, ar, rflags) == CpuMode::Long64;
            let expect = cr0 & CR0_PE != 0 && cr0 & CR0_PG != 0 && efer & EFER_LMA != 0 && ar & AR_L != 0;
            proptest::prop_assert_eq!(long, expect);
            let _ = std::format!("{}", CpuMode::of(cr0, efer, ar, rflags));
        }
    }
}
