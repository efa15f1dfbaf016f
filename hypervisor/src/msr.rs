//! Model-specific register numbers the hypervisor uses (Intel SDM Vol. 4), taken from the `x86` crate under the names Corral uses.
#![forbid(unsafe_code)]

/// IA32_FEATURE_CONTROL: lock and VMX-enable bits set by firmware.
pub const IA32_FEATURE_CONTROL: u32 = x86::msr::IA32_FEATURE_CONTROL;
/// IA32_SYSENTER_CS.
pub const IA32_SYSENTER_CS: u32 = x86::msr::IA32_SYSENTER_CS;
/// IA32_SYSENTER_ESP.
pub const IA32_SYSENTER_ESP: u32 = x86::msr::IA32_SYSENTER_ESP;
/// IA32_SYSENTER_EIP.
pub const IA32_SYSENTER_EIP: u32 = x86::msr::IA32_SYSENTER_EIP;
/// IA32_VMX_BASIC: VMCS revision, size, memory type, TRUE-controls support.
pub const IA32_VMX_BASIC: u32 = x86::msr::IA32_VMX_BASIC;
/// IA32_VMX_PINBASED_CTLS.
pub const IA32_VMX_PINBASED_CTLS: u32 = x86::msr::IA32_VMX_PINBASED_CTLS;
/// IA32_VMX_PROCBASED_CTLS.
pub const IA32_VMX_PROCBASED_CTLS: u32 = x86::msr::IA32_VMX_PROCBASED_CTLS;
/// IA32_VMX_EXIT_CTLS.
pub const IA32_VMX_EXIT_CTLS: u32 = x86::msr::IA32_VMX_EXIT_CTLS;
/// IA32_VMX_ENTRY_CTLS.
pub const IA32_VMX_ENTRY_CTLS: u32 = x86::msr::IA32_VMX_ENTRY_CTLS;
/// IA32_VMX_MISC: preemption-timer rate and more.
pub const IA32_VMX_MISC: u32 = x86::msr::IA32_VMX_MISC;
/// IA32_VMX_CR0_FIXED0.
pub const IA32_VMX_CR0_FIXED0: u32 = x86::msr::IA32_VMX_CR0_FIXED0;
/// IA32_VMX_CR0_FIXED1.
pub const IA32_VMX_CR0_FIXED1: u32 = x86::msr::IA32_VMX_CR0_FIXED1;
/// IA32_VMX_CR4_FIXED0.
pub const IA32_VMX_CR4_FIXED0: u32 = x86::msr::IA32_VMX_CR4_FIXED0;
/// IA32_VMX_CR4_FIXED1.
pub const IA32_VMX_CR4_FIXED1: u32 = x86::msr::IA32_VMX_CR4_FIXED1;
/// IA32_VMX_PROCBASED_CTLS2.
pub const IA32_VMX_PROCBASED_CTLS2: u32 = x86::msr::IA32_VMX_PROCBASED_CTLS2;
/// IA32_VMX_EPT_VPID_CAP.
pub const IA32_VMX_EPT_VPID_CAP: u32 = x86::msr::IA32_VMX_EPT_VPID_CAP;
/// IA32_VMX_TRUE_PINBASED_CTLS.
pub const IA32_VMX_TRUE_PINBASED_CTLS: u32 = x86::msr::IA32_VMX_TRUE_PINBASED_CTLS;
/// IA32_VMX_TRUE_PROCBASED_CTLS.
pub const IA32_VMX_TRUE_PROCBASED_CTLS: u32 = x86::msr::IA32_VMX_TRUE_PROCBASED_CTLS;
/// IA32_VMX_TRUE_EXIT_CTLS.
pub const IA32_VMX_TRUE_EXIT_CTLS: u32 = x86::msr::IA32_VMX_TRUE_EXIT_CTLS;
/// IA32_VMX_TRUE_ENTRY_CTLS.
pub const IA32_VMX_TRUE_ENTRY_CTLS: u32 = x86::msr::IA32_VMX_TRUE_ENTRY_CTLS;
/// IA32_EFER.
pub const IA32_EFER: u32 = x86::msr::IA32_EFER;
/// IA32_FS_BASE.
pub const IA32_FS_BASE: u32 = x86::msr::IA32_FS_BASE;
/// IA32_GS_BASE.
pub const IA32_GS_BASE: u32 = x86::msr::IA32_GS_BASE;
/// IA32_KERNEL_GS_BASE: what SWAPGS exchanges GS base with.
pub const IA32_KERNEL_GS_BASE: u32 = x86::msr::IA32_KERNEL_GSBASE;

/// IA32_EFER.LME: long mode enable.
pub const EFER_LME: u64 = 1 << 8;
/// IA32_EFER.LMA: long mode active.
pub const EFER_LMA: u64 = 1 << 10;
