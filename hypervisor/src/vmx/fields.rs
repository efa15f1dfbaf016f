//! VMCS fields by name (Intel SDM Vol. 3D, Appendix B). Fields are grouped
//! by class; the read-only exit-information fields get no write accessor.
//! Encodings come from the `x86` crate's `vmx::vmcs` constants; each one's
//! width and type bits are checked by the tests below.

use x86::vmx::vmcs::{control, guest, host, ro};

/// A field the hypervisor may write (and read).
pub trait Writable: Copy {
    /// The VMREAD/VMWRITE encoding.
    fn encoding(self) -> u32;
}

/// A field the hypervisor may read.
pub trait Readable: Copy {
    /// The VMREAD encoding.
    fn encoding(self) -> u32;
}

macro_rules! fields {
    ($(#[$doc:meta])* $name:ident, $kind:literal, { $($(#[$vdoc:meta])* $var:ident = $enc:path => $width:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u32)]
        pub enum $name {
            $($(#[$vdoc])* $var = $enc,)*
        }
        impl $name {
            /// Every field of this class, with its width in bits (64 = natural width too).
            #[cfg(test)]
            pub const ALL: &'static [($name, u32)] = &[$(($name::$var, $width),)*];
            /// SDM encoding type: 0 control, 1 read-only, 2 guest state, 3 host state.
            #[cfg(test)]
            pub const TYPE: u32 = $kind;
        }
        impl Readable for $name {
            fn encoding(self) -> u32 {
                self as u32
            }
        }
    };
}

fields!(
    /// VM-execution, exit and entry control fields.
    Control, 0, {
        /// Virtual-processor identifier (16).
        Vpid = control::VPID => 16,
        /// I/O bitmap A address (64).
        IoBitmapA = control::IO_BITMAP_A_ADDR_FULL => 64,
        /// I/O bitmap B address (64).
        IoBitmapB = control::IO_BITMAP_B_ADDR_FULL => 64,
        /// MSR bitmap address (64).
        MsrBitmap = control::MSR_BITMAPS_ADDR_FULL => 64,
        /// TSC offset (64).
        TscOffset = control::TSC_OFFSET_FULL => 64,
        /// EPT pointer (64).
        EptPointer = control::EPTP_FULL => 64,
        /// Pin-based VM-execution controls (32).
        PinBased = control::PINBASED_EXEC_CONTROLS => 32,
        /// Primary processor-based VM-execution controls (32).
        ProcBased = control::PRIMARY_PROCBASED_EXEC_CONTROLS => 32,
        /// Exception bitmap (32).
        ExceptionBitmap = control::EXCEPTION_BITMAP => 32,
        /// Page-fault error-code mask (32).
        PageFaultErrorCodeMask = control::PAGE_FAULT_ERR_CODE_MASK => 32,
        /// Page-fault error-code match (32).
        PageFaultErrorCodeMatch = control::PAGE_FAULT_ERR_CODE_MATCH => 32,
        /// CR3-target count (32).
        Cr3TargetCount = control::CR3_TARGET_COUNT => 32,
        /// VM-exit controls (32).
        ExitControls = control::VMEXIT_CONTROLS => 32,
        /// VM-exit MSR-store count (32).
        ExitMsrStoreCount = control::VMEXIT_MSR_STORE_COUNT => 32,
        /// VM-exit MSR-load count (32).
        ExitMsrLoadCount = control::VMEXIT_MSR_LOAD_COUNT => 32,
        /// VM-entry controls (32).
        EntryControls = control::VMENTRY_CONTROLS => 32,
        /// VM-entry MSR-load count (32).
        EntryMsrLoadCount = control::VMENTRY_MSR_LOAD_COUNT => 32,
        /// VM-entry interruption-information field (32).
        EntryInterruptInfo = control::VMENTRY_INTERRUPTION_INFO_FIELD => 32,
        /// VM-entry exception error code (32).
        EntryExceptionErrorCode = control::VMENTRY_EXCEPTION_ERR_CODE => 32,
        /// VM-entry instruction length (32).
        EntryInstructionLength = control::VMENTRY_INSTRUCTION_LEN => 32,
        /// Secondary processor-based VM-execution controls (32).
        ProcBased2 = control::SECONDARY_PROCBASED_EXEC_CONTROLS => 32,
        /// CR0 guest/host mask (natural).
        Cr0Mask = control::CR0_GUEST_HOST_MASK => 64,
        /// CR4 guest/host mask (natural).
        Cr4Mask = control::CR4_GUEST_HOST_MASK => 64,
        /// CR0 read shadow (natural).
        Cr0ReadShadow = control::CR0_READ_SHADOW => 64,
        /// CR4 read shadow (natural).
        Cr4ReadShadow = control::CR4_READ_SHADOW => 64,
    }
);

fields!(
    /// Read-only VM-exit information fields.
    ExitInfo, 1, {
        /// Guest-physical address of an EPT violation or misconfiguration (64).
        GuestPhysicalAddress = ro::GUEST_PHYSICAL_ADDR_FULL => 64,
        /// VM-instruction error (32).
        InstructionError = ro::VM_INSTRUCTION_ERROR => 32,
        /// Exit reason (32).
        ExitReason = ro::EXIT_REASON => 32,
        /// VM-exit interruption information (32).
        InterruptInfo = ro::VMEXIT_INTERRUPTION_INFO => 32,
        /// IDT-vectoring information (32).
        IdtVectoringInfo = ro::IDT_VECTORING_INFO => 32,
        /// IDT-vectoring error code (32).
        IdtVectoringErrorCode = ro::IDT_VECTORING_ERR_CODE => 32,
        /// VM-exit instruction length (32).
        InstructionLength = ro::VMEXIT_INSTRUCTION_LEN => 32,
        /// Exit qualification (natural).
        Qualification = ro::EXIT_QUALIFICATION => 64,
        /// Guest linear address (natural).
        GuestLinearAddress = ro::GUEST_LINEAR_ADDR => 64,
    }
);

fields!(
    /// Guest-state fields.
    Guest, 2, {
        /// ES selector (16).
        EsSelector = guest::ES_SELECTOR => 16,
        /// CS selector (16).
        CsSelector = guest::CS_SELECTOR => 16,
        /// SS selector (16).
        SsSelector = guest::SS_SELECTOR => 16,
        /// DS selector (16).
        DsSelector = guest::DS_SELECTOR => 16,
        /// FS selector (16).
        FsSelector = guest::FS_SELECTOR => 16,
        /// GS selector (16).
        GsSelector = guest::GS_SELECTOR => 16,
        /// LDTR selector (16).
        LdtrSelector = guest::LDTR_SELECTOR => 16,
        /// TR selector (16).
        TrSelector = guest::TR_SELECTOR => 16,
        /// VMCS link pointer (64).
        VmcsLinkPointer = guest::LINK_PTR_FULL => 64,
        /// IA32_DEBUGCTL (64).
        Ia32Debugctl = guest::IA32_DEBUGCTL_FULL => 64,
        /// IA32_EFER (64).
        Ia32Efer = guest::IA32_EFER_FULL => 64,
        /// ES limit (32).
        EsLimit = guest::ES_LIMIT => 32,
        /// CS limit (32).
        CsLimit = guest::CS_LIMIT => 32,
        /// SS limit (32).
        SsLimit = guest::SS_LIMIT => 32,
        /// DS limit (32).
        DsLimit = guest::DS_LIMIT => 32,
        /// FS limit (32).
        FsLimit = guest::FS_LIMIT => 32,
        /// GS limit (32).
        GsLimit = guest::GS_LIMIT => 32,
        /// LDTR limit (32).
        LdtrLimit = guest::LDTR_LIMIT => 32,
        /// TR limit (32).
        TrLimit = guest::TR_LIMIT => 32,
        /// GDTR limit (32).
        GdtrLimit = guest::GDTR_LIMIT => 32,
        /// IDTR limit (32).
        IdtrLimit = guest::IDTR_LIMIT => 32,
        /// ES access rights (32).
        EsAccessRights = guest::ES_ACCESS_RIGHTS => 32,
        /// CS access rights (32).
        CsAccessRights = guest::CS_ACCESS_RIGHTS => 32,
        /// SS access rights (32).
        SsAccessRights = guest::SS_ACCESS_RIGHTS => 32,
        /// DS access rights (32).
        DsAccessRights = guest::DS_ACCESS_RIGHTS => 32,
        /// FS access rights (32).
        FsAccessRights = guest::FS_ACCESS_RIGHTS => 32,
        /// GS access rights (32).
        GsAccessRights = guest::GS_ACCESS_RIGHTS => 32,
        /// LDTR access rights (32).
        LdtrAccessRights = guest::LDTR_ACCESS_RIGHTS => 32,
        /// TR access rights (32).
        TrAccessRights = guest::TR_ACCESS_RIGHTS => 32,
        /// Interruptibility state (32).
        InterruptibilityState = guest::INTERRUPTIBILITY_STATE => 32,
        /// Activity state (32).
        ActivityState = guest::ACTIVITY_STATE => 32,
        /// IA32_SYSENTER_CS (32).
        SysenterCs = guest::IA32_SYSENTER_CS => 32,
        /// VMX-preemption timer value (32).
        PreemptionTimerValue = guest::VMX_PREEMPTION_TIMER_VALUE => 32,
        /// CR0 (natural).
        Cr0 = guest::CR0 => 64,
        /// CR3 (natural).
        Cr3 = guest::CR3 => 64,
        /// CR4 (natural).
        Cr4 = guest::CR4 => 64,
        /// ES base (natural).
        EsBase = guest::ES_BASE => 64,
        /// CS base (natural).
        CsBase = guest::CS_BASE => 64,
        /// SS base (natural).
        SsBase = guest::SS_BASE => 64,
        /// DS base (natural).
        DsBase = guest::DS_BASE => 64,
        /// FS base (natural).
        FsBase = guest::FS_BASE => 64,
        /// GS base (natural).
        GsBase = guest::GS_BASE => 64,
        /// LDTR base (natural).
        LdtrBase = guest::LDTR_BASE => 64,
        /// TR base (natural).
        TrBase = guest::TR_BASE => 64,
        /// GDTR base (natural).
        GdtrBase = guest::GDTR_BASE => 64,
        /// IDTR base (natural).
        IdtrBase = guest::IDTR_BASE => 64,
        /// DR7 (natural).
        Dr7 = guest::DR7 => 64,
        /// RSP (natural).
        Rsp = guest::RSP => 64,
        /// RIP (natural).
        Rip = guest::RIP => 64,
        /// RFLAGS (natural).
        Rflags = guest::RFLAGS => 64,
        /// Pending debug exceptions (natural).
        PendingDebugExceptions = guest::PENDING_DBG_EXCEPTIONS => 64,
        /// IA32_SYSENTER_ESP (natural).
        SysenterEsp = guest::IA32_SYSENTER_ESP => 64,
        /// IA32_SYSENTER_EIP (natural).
        SysenterEip = guest::IA32_SYSENTER_EIP => 64,
    }
);

fields!(
    /// Host-state fields (loaded by the CPU on every VM exit).
    Host, 3, {
        /// ES selector (16).
        EsSelector = host::ES_SELECTOR => 16,
        /// CS selector (16).
        CsSelector = host::CS_SELECTOR => 16,
        /// SS selector (16).
        SsSelector = host::SS_SELECTOR => 16,
        /// DS selector (16).
        DsSelector = host::DS_SELECTOR => 16,
        /// FS selector (16).
        FsSelector = host::FS_SELECTOR => 16,
        /// GS selector (16).
        GsSelector = host::GS_SELECTOR => 16,
        /// TR selector (16).
        TrSelector = host::TR_SELECTOR => 16,
        /// IA32_EFER (64).
        Ia32Efer = host::IA32_EFER_FULL => 64,
        /// IA32_SYSENTER_CS (32).
        SysenterCs = host::IA32_SYSENTER_CS => 32,
        /// CR0 (natural).
        Cr0 = host::CR0 => 64,
        /// CR3 (natural).
        Cr3 = host::CR3 => 64,
        /// CR4 (natural).
        Cr4 = host::CR4 => 64,
        /// FS base (natural).
        FsBase = host::FS_BASE => 64,
        /// GS base (natural).
        GsBase = host::GS_BASE => 64,
        /// TR base (natural).
        TrBase = host::TR_BASE => 64,
        /// GDTR base (natural).
        GdtrBase = host::GDTR_BASE => 64,
        /// IDTR base (natural).
        IdtrBase = host::IDTR_BASE => 64,
        /// IA32_SYSENTER_ESP (natural).
        SysenterEsp = host::IA32_SYSENTER_ESP => 64,
        /// IA32_SYSENTER_EIP (natural).
        SysenterEip = host::IA32_SYSENTER_EIP => 64,
        /// RSP (natural).
        Rsp = host::RSP => 64,
        /// RIP (natural).
        Rip = host::RIP => 64,
    }
);

impl Writable for Control {
    fn encoding(self) -> u32 {
        self as u32
    }
}
impl Writable for Guest {
    fn encoding(self) -> u32 {
        self as u32
    }
}
impl Writable for Host {
    fn encoding(self) -> u32 {
        self as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SDM B.1: bits 14:13 width (0 = 16, 1 = 64, 2 = 32, 3 = natural),
    /// bits 11:10 type, bit 0 "high" access (never used here).
    fn check(all: &[(u32, u32)], ty: u32) {
        for &(enc, width) in all {
            assert_eq!((enc >> 10) & 3, ty, "{enc:#x} type");
            assert_eq!(enc & 1, 0, "{enc:#x} high");
            let w = (enc >> 13) & 3;
            let ok = match width {
                16 => w == 0,
                32 => w == 2,
                64 => w == 1 || w == 3,
                _ => false,
            };
            assert!(ok, "{enc:#x} width {width}");
        }
    }

    #[test]
    fn encodings_match_their_class_and_width() {
        let map = |all: &[(u32, u32)]| all.to_vec();
        check(
            &map(&Control::ALL
                .iter()
                .map(|&(f, w)| (f as u32, w))
                .collect::<std::vec::Vec<_>>()),
            Control::TYPE,
        );
        check(
            &map(&ExitInfo::ALL
                .iter()
                .map(|&(f, w)| (f as u32, w))
                .collect::<std::vec::Vec<_>>()),
            ExitInfo::TYPE,
        );
        check(
            &map(&Guest::ALL
                .iter()
                .map(|&(f, w)| (f as u32, w))
                .collect::<std::vec::Vec<_>>()),
            Guest::TYPE,
        );
        check(
            &map(&Host::ALL
                .iter()
                .map(|&(f, w)| (f as u32, w))
                .collect::<std::vec::Vec<_>>()),
            Host::TYPE,
        );
    }
}
