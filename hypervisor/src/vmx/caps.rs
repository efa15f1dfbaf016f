//! VMX capability checks and control values (Intel SDM Vol. 3D, Appendix A).
//! The hypervisor reads the capability MSRs into [`RawCaps`]; [`check`]
//! decides, from them alone, whether Corral can run and with which controls.
//! A CPU without what Corral needs gets a [`Refusal`] that says what is missing.

use bitflags::bitflags;
use core::fmt;

bitflags! {
    /// Pin-based VM-execution controls (SDM 25.6.1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct PinBased: u32 {
        /// External interrupts cause VM exits.
        const EXTERNAL_INTERRUPT_EXITING = 1 << 0;
        /// NMIs cause VM exits.
        const NMI_EXITING = 1 << 3;
        /// Activate the VMX-preemption timer.
        const PREEMPTION_TIMER = 1 << 6;
    }

    /// Primary processor-based VM-execution controls (SDM 25.6.2).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ProcBased: u32 {
        /// HLT causes VM exits.
        const HLT_EXITING = 1 << 7;
        /// RDPMC causes VM exits (host counters stay private).
        const RDPMC_EXITING = 1 << 11;
        /// MOV to CR8 causes VM exits (the real TPR stays the host's).
        const CR8_LOAD_EXITING = 1 << 19;
        /// MOV from CR8 causes VM exits.
        const CR8_STORE_EXITING = 1 << 20;
        /// MOV DR causes VM exits (debug registers are not switched per VM).
        const MOV_DR_EXITING = 1 << 23;
        /// MWAIT causes VM exits.
        const MWAIT_EXITING = 1 << 10;
        /// I/O bitmaps decide which port accesses exit.
        const USE_IO_BITMAPS = 1 << 25;
        /// MSR bitmaps decide which MSR accesses exit.
        const USE_MSR_BITMAPS = 1 << 28;
        /// MONITOR causes VM exits.
        const MONITOR_EXITING = 1 << 29;
        /// Use the secondary controls.
        const SECONDARY_CONTROLS = 1 << 31;
    }

    /// Secondary processor-based VM-execution controls (SDM 25.6.2).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ProcBased2: u32 {
        /// Enable EPT.
        const ENABLE_EPT = 1 << 1;
        /// WBINVD causes VM exits (a guest may not flush every core's caches).
        const WBINVD_EXITING = 1 << 6;
        /// Unrestricted guest.
        const UNRESTRICTED_GUEST = 1 << 7;
    }

    /// VM-exit controls (SDM 25.7.1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ExitControls: u32 {
        /// The host runs in 64-bit mode after an exit.
        const HOST_ADDRESS_SPACE_SIZE = 1 << 9;
        /// Acknowledge the interrupt controller on an external-interrupt exit.
        const ACK_INTERRUPT_ON_EXIT = 1 << 15;
        /// Save the guest's IA32_EFER on exit (so the next entry loads what
        /// the guest last had).
        const SAVE_IA32_EFER = 1 << 20;
        /// Load the host's IA32_EFER on exit.
        const LOAD_IA32_EFER = 1 << 21;
    }

    /// VM-entry controls (SDM 25.8.1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct EntryControls: u32 {
        /// The guest runs in IA-32e (64-bit) mode.
        const IA32E_MODE_GUEST = 1 << 9;
        /// Load the guest's IA32_EFER on entry.
        const LOAD_IA32_EFER = 1 << 15;
    }
}

/// CPUID.1:ECX bit 5.
pub const CPUID_ECX_VMX: u32 = 1 << 5;
/// IA32_FEATURE_CONTROL bit 0: the MSR is locked.
pub const FEATURE_CONTROL_LOCKED: u64 = 1 << 0;
/// IA32_FEATURE_CONTROL bit 2: VMXON allowed outside SMX.
pub const FEATURE_CONTROL_VMX_OUTSIDE_SMX: u64 = 1 << 2;
/// IA32_VMX_BASIC bit 55: the TRUE_* control MSRs exist.
pub const BASIC_TRUE_CONTROLS: u64 = 1 << 55;
const BASIC_REVISION_MASK: u64 = 0x7fff_ffff;
const BASIC_MEMORY_TYPE_SHIFT: u64 = 50;
const BASIC_MEMORY_TYPE_MASK: u64 = 0xf;
const MEMORY_TYPE_WB: u64 = 6;
const MISC_PREEMPTION_RATE_MASK: u64 = 0x1f;
/// IA32_VMX_EPT_VPID_CAP bits Corral needs (SDM A.10).
const EPT_CAP_WALK_4: u64 = 1 << 6;
const EPT_CAP_WB: u64 = 1 << 14;
const EPT_CAP_2M_PAGES: u64 = 1 << 16;
const EPT_CAP_INVEPT: u64 = 1 << 20;
const EPT_CAP_INVEPT_ALL: u64 = 1 << 26;

/// The capability MSRs as read from the CPU. Registers the CPU lacks are
/// read as 0 (which allows nothing). `pin`, `proc`, `exit` and `entry` hold
/// the TRUE_* MSRs when [`BASIC_TRUE_CONTROLS`] is set.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCaps {
    /// CPUID.1:ECX.
    pub cpuid_1_ecx: u32,
    /// IA32_FEATURE_CONTROL.
    pub feature_control: u64,
    /// IA32_VMX_BASIC.
    pub basic: u64,
    /// Pin-based controls capability.
    pub pin: u64,
    /// Primary processor-based controls capability.
    pub proc: u64,
    /// Secondary processor-based controls capability.
    pub proc2: u64,
    /// VM-exit controls capability.
    pub exit: u64,
    /// VM-entry controls capability.
    pub entry: u64,
    /// IA32_VMX_MISC.
    pub misc: u64,
    /// IA32_VMX_EPT_VPID_CAP.
    pub ept_vpid: u64,
    /// IA32_VMX_CR0_FIXED0 and FIXED1.
    pub cr0_fixed: (u64, u64),
    /// IA32_VMX_CR4_FIXED0 and FIXED1.
    pub cr4_fixed: (u64, u64),
}

/// Why Corral cannot run on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// CPUID says there is no VMX.
    NoVmx,
    /// Firmware locked IA32_FEATURE_CONTROL with VMX off.
    DisabledByFirmware,
    /// A VM-execution, exit or entry control Corral needs is not allowed.
    MissingControl {
        /// Which control word.
        word: &'static str,
        /// The needed bits that may not be set.
        bits: u32,
    },
    /// EPT lacks a feature Corral needs.
    Ept(&'static str),
    /// VMCS memory type is not write-back.
    VmcsMemoryType(u64),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoVmx => write!(f, "this CPU lacks VMX (CPUID.1:ECX.VMX[bit 5] = 0)"),
            Refusal::DisabledByFirmware => write!(
                f,
                "VMX is disabled by firmware (IA32_FEATURE_CONTROL locked without VMX outside SMX)"
            ),
            Refusal::MissingControl { word, bits } => write!(
                f,
                "this CPU's VMX lacks {} (required {word} control bits {bits:#x})",
                describe(word, *bits)
            ),
            Refusal::Ept(what) => write!(f, "this CPU's EPT lacks {what}"),
            Refusal::VmcsMemoryType(t) => {
                write!(f, "VMCS memory type {t} is not write-back")
            }
        }
    }
}

fn describe(word: &str, bits: u32) -> &'static str {
    match word {
        "secondary" if bits & ProcBased2::ENABLE_EPT.bits() != 0 => "EPT",
        "secondary" => "unrestricted guest",
        "primary" if bits & ProcBased::SECONDARY_CONTROLS.bits() != 0 => {
            "secondary controls (so no EPT)"
        }
        "pin-based" if bits & PinBased::PREEMPTION_TIMER.bits() != 0 => "the preemption timer",
        _ => "a required control",
    }
}

/// What Corral runs with on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmxConfig {
    /// VMCS revision identifier.
    pub revision: u32,
    /// Pin-based controls.
    pub pin: u32,
    /// Primary processor-based controls.
    pub proc: u32,
    /// Secondary processor-based controls.
    pub proc2: u32,
    /// VM-exit controls.
    pub exit: u32,
    /// VM-entry controls.
    pub entry: u32,
    /// The preemption timer counts down once every 2^rate TSC ticks.
    pub preemption_rate: u8,
    /// EPT may map 2 MiB pages.
    pub ept_2m: bool,
    /// CR0 bits that must be 1 / may be 1 in VMX operation.
    pub cr0_fixed: (u64, u64),
    /// CR4 bits that must be 1 / may be 1 in VMX operation.
    pub cr4_fixed: (u64, u64),
}

/// A control word: the bits Corral needs, plus those the CPU forces to 1,
/// or the needed bits the CPU does not allow (SDM A.3: low dword =
/// allowed 0-settings, high dword = allowed 1-settings).
pub fn adjust(word: &'static str, needed: u32, cap: u64) -> Result<u32, Refusal> {
    let must_be_one = cap as u32;
    let may_be_one = (cap >> 32) as u32;
    let missing = needed & !may_be_one;
    if missing != 0 {
        return Err(Refusal::MissingControl {
            word,
            bits: missing,
        });
    }
    Ok(needed | must_be_one)
}

impl VmxConfig {
    /// Applies the fixed-bit rules to a CR0 value.
    pub fn fix_cr0(&self, cr0: u64) -> u64 {
        (cr0 | self.cr0_fixed.0) & self.cr0_fixed.1
    }

    /// Applies the fixed-bit rules to a CR4 value.
    pub fn fix_cr4(&self, cr4: u64) -> u64 {
        (cr4 | self.cr4_fixed.0) & self.cr4_fixed.1
    }
}

/// Decides whether Corral can run, and with which controls.
pub fn check(raw: &RawCaps) -> Result<VmxConfig, Refusal> {
    if raw.cpuid_1_ecx & CPUID_ECX_VMX == 0 {
        return Err(Refusal::NoVmx);
    }
    let locked = raw.feature_control & FEATURE_CONTROL_LOCKED != 0;
    if locked && raw.feature_control & FEATURE_CONTROL_VMX_OUTSIDE_SMX == 0 {
        return Err(Refusal::DisabledByFirmware);
    }
    let mem_type = (raw.basic >> BASIC_MEMORY_TYPE_SHIFT) & BASIC_MEMORY_TYPE_MASK;
    if mem_type != MEMORY_TYPE_WB {
        return Err(Refusal::VmcsMemoryType(mem_type));
    }
    let pin = adjust(
        "pin-based",
        (PinBased::EXTERNAL_INTERRUPT_EXITING | PinBased::NMI_EXITING | PinBased::PREEMPTION_TIMER)
            .bits(),
        raw.pin,
    )?;
    let proc = adjust(
        "primary",
        (ProcBased::HLT_EXITING
            | ProcBased::RDPMC_EXITING
            | ProcBased::CR8_LOAD_EXITING
            | ProcBased::CR8_STORE_EXITING
            | ProcBased::MOV_DR_EXITING
            | ProcBased::MWAIT_EXITING
            | ProcBased::MONITOR_EXITING
            | ProcBased::USE_IO_BITMAPS
            | ProcBased::USE_MSR_BITMAPS
            | ProcBased::SECONDARY_CONTROLS)
            .bits(),
        raw.proc,
    )?;
    let proc2 = adjust(
        "secondary",
        (ProcBased2::ENABLE_EPT | ProcBased2::UNRESTRICTED_GUEST | ProcBased2::WBINVD_EXITING)
            .bits(),
        raw.proc2,
    )?;
    for (bit, what) in [
        (EPT_CAP_WALK_4, "4-level page walks"),
        (EPT_CAP_WB, "the write-back memory type"),
        (EPT_CAP_INVEPT, "INVEPT"),
        (EPT_CAP_INVEPT_ALL, "all-context INVEPT"),
    ] {
        if raw.ept_vpid & bit == 0 {
            return Err(Refusal::Ept(what));
        }
    }
    let exit = adjust(
        "exit",
        (ExitControls::HOST_ADDRESS_SPACE_SIZE
            | ExitControls::ACK_INTERRUPT_ON_EXIT
            | ExitControls::SAVE_IA32_EFER
            | ExitControls::LOAD_IA32_EFER)
            .bits(),
        raw.exit,
    )?;
    let entry = adjust(
        "entry",
        (EntryControls::IA32E_MODE_GUEST | EntryControls::LOAD_IA32_EFER).bits(),
        raw.entry,
    )?;
    Ok(VmxConfig {
        revision: (raw.basic & BASIC_REVISION_MASK) as u32,
        pin,
        proc,
        proc2,
        exit,
        entry,
        preemption_rate: (raw.misc & MISC_PREEMPTION_RATE_MASK) as u8,
        ept_2m: raw.ept_vpid & EPT_CAP_2M_PAGES != 0,
        cr0_fixed: raw.cr0_fixed,
        cr4_fixed: raw.cr4_fixed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_ALLOWED: u64 = 0xffff_ffff_0000_0000;

    /// Roughly what Bochs' corei7_icelake_u reports.
    fn capable() -> RawCaps {
        RawCaps {
            cpuid_1_ecx: CPUID_ECX_VMX,
            feature_control: FEATURE_CONTROL_LOCKED | FEATURE_CONTROL_VMX_OUTSIDE_SMX,
            basic: 0x2b | (MEMORY_TYPE_WB << BASIC_MEMORY_TYPE_SHIFT) | BASIC_TRUE_CONTROLS,
            pin: ALL_ALLOWED | 0x16,
            proc: ALL_ALLOWED | 0x0401_e172,
            proc2: ALL_ALLOWED,
            exit: ALL_ALLOWED | 0x0003_6dff,
            entry: ALL_ALLOWED | 0x11ff,
            misc: 5,
            ept_vpid: EPT_CAP_WALK_4 | EPT_CAP_WB | EPT_CAP_INVEPT | EPT_CAP_INVEPT_ALL,
            cr0_fixed: (0x8000_0021, 0xffff_ffff),
            cr4_fixed: (0x2000, 0x3f_ffff),
        }
    }

    #[test]
    fn capable_cpu_is_accepted_with_forced_bits() {
        let cfg = check(&capable()).unwrap();
        assert_eq!(cfg.revision, 0x2b);
        assert_eq!(cfg.preemption_rate, 5);
        assert!(cfg.pin & PinBased::PREEMPTION_TIMER.bits() != 0);
        assert_eq!(cfg.pin & 0x16, 0x16, "default-1 bits kept");
        assert!(cfg.proc2 & ProcBased2::ENABLE_EPT.bits() != 0);
        assert!(
            !cfg.ept_2m,
            "2 MiB EPT pages only when the capability says so"
        );
        let mut r = capable();
        r.ept_vpid |= EPT_CAP_2M_PAGES;
        assert!(check(&r).unwrap().ept_2m);
        assert_eq!(cfg.fix_cr4(0x20), 0x2020);
        assert_eq!(cfg.fix_cr0(0x10), 0x8000_0031);
    }

    #[test]
    fn each_missing_feature_is_named() {
        let mut r = capable();
        r.cpuid_1_ecx = 0;
        assert_eq!(check(&r), Err(Refusal::NoVmx));
        assert!(std::format!("{}", Refusal::NoVmx).contains("lacks VMX"));

        let mut r = capable();
        r.feature_control = FEATURE_CONTROL_LOCKED;
        assert_eq!(check(&r), Err(Refusal::DisabledByFirmware));

        let mut r = capable();
        r.feature_control = 0;
        assert!(check(&r).is_ok(), "unlocked: each core enables VMX itself");

        let mut r = capable();
        r.proc2 = ALL_ALLOWED & !((ProcBased2::ENABLE_EPT.bits() as u64) << 32);
        let e = check(&r).unwrap_err();
        assert!(std::format!("{e}").contains("lacks EPT"), "{e}");

        let mut r = capable();
        r.proc2 = ALL_ALLOWED & !((ProcBased2::UNRESTRICTED_GUEST.bits() as u64) << 32);
        assert!(std::format!("{}", check(&r).unwrap_err()).contains("unrestricted guest"));

        let mut r = capable();
        r.proc2 = 0;
        r.proc = 0x0401_e172 | (0x7fff_ffffu64 << 32);
        assert!(std::format!("{}", check(&r).unwrap_err()).contains("secondary controls"));

        let mut r = capable();
        r.pin = 0x16 | (0x16u64 << 32);
        assert!(std::format!("{}", check(&r).unwrap_err()).contains("preemption timer"));

        let mut r = capable();
        r.ept_vpid &= !EPT_CAP_INVEPT;
        assert_eq!(check(&r), Err(Refusal::Ept("INVEPT")));

        let mut r = capable();
        r.basic &= !(BASIC_MEMORY_TYPE_MASK << BASIC_MEMORY_TYPE_SHIFT);
        assert_eq!(check(&r), Err(Refusal::VmcsMemoryType(0)));
    }
}
