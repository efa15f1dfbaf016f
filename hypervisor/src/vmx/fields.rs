//! VMCS fields by name (Intel SDM Vol. 3D, Appendix B). Fields are grouped
//! by class; the read-only exit-information fields get no write accessor.
//! Each encoding's width and type bits are checked by the tests below.

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
    ($(#[$doc:meta])* $name:ident, $kind:literal, { $($(#[$vdoc:meta])* $var:ident = $enc:literal / $width:literal,)* }) => {
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
        Vpid = 0x0000 / 16,
        /// I/O bitmap A address (64).
        IoBitmapA = 0x2000 / 64,
        /// I/O bitmap B address (64).
        IoBitmapB = 0x2002 / 64,
        /// MSR bitmap address (64).
        MsrBitmap = 0x2004 / 64,
        /// TSC offset (64).
        TscOffset = 0x2010 / 64,
        /// EPT pointer (64).
        EptPointer = 0x201a / 64,
        /// Pin-based VM-execution controls (32).
        PinBased = 0x4000 / 32,
        /// Primary processor-based VM-execution controls (32).
        ProcBased = 0x4002 / 32,
        /// Exception bitmap (32).
        ExceptionBitmap = 0x4004 / 32,
        /// Page-fault error-code mask (32).
        PageFaultErrorCodeMask = 0x4006 / 32,
        /// Page-fault error-code match (32).
        PageFaultErrorCodeMatch = 0x4008 / 32,
        /// CR3-target count (32).
        Cr3TargetCount = 0x400a / 32,
        /// VM-exit controls (32).
        ExitControls = 0x400c / 32,
        /// VM-exit MSR-store count (32).
        ExitMsrStoreCount = 0x400e / 32,
        /// VM-exit MSR-load count (32).
        ExitMsrLoadCount = 0x4010 / 32,
        /// VM-entry controls (32).
        EntryControls = 0x4012 / 32,
        /// VM-entry MSR-load count (32).
        EntryMsrLoadCount = 0x4014 / 32,
        /// VM-entry interruption-information field (32).
        EntryInterruptInfo = 0x4016 / 32,
        /// VM-entry exception error code (32).
        EntryExceptionErrorCode = 0x4018 / 32,
        /// VM-entry instruction length (32).
        EntryInstructionLength = 0x401a / 32,
        /// Secondary processor-based VM-execution controls (32).
        ProcBased2 = 0x401e / 32,
        /// CR0 guest/host mask (natural).
        Cr0Mask = 0x6000 / 64,
        /// CR4 guest/host mask (natural).
        Cr4Mask = 0x6002 / 64,
        /// CR0 read shadow (natural).
        Cr0ReadShadow = 0x6004 / 64,
        /// CR4 read shadow (natural).
        Cr4ReadShadow = 0x6006 / 64,
    }
);

fields!(
    /// Read-only VM-exit information fields.
    ExitInfo, 1, {
        /// Guest-physical address of an EPT violation or misconfiguration (64).
        GuestPhysicalAddress = 0x2400 / 64,
        /// VM-instruction error (32).
        InstructionError = 0x4400 / 32,
        /// Exit reason (32).
        ExitReason = 0x4402 / 32,
        /// VM-exit interruption information (32).
        InterruptInfo = 0x4404 / 32,
        /// IDT-vectoring information (32).
        IdtVectoringInfo = 0x4408 / 32,
        /// IDT-vectoring error code (32).
        IdtVectoringErrorCode = 0x440a / 32,
        /// VM-exit instruction length (32).
        InstructionLength = 0x440c / 32,
        /// Exit qualification (natural).
        Qualification = 0x6400 / 64,
        /// Guest linear address (natural).
        GuestLinearAddress = 0x640a / 64,
    }
);

fields!(
    /// Guest-state fields.
    Guest, 2, {
        /// ES selector (16).
        EsSelector = 0x0800 / 16,
        /// CS selector (16).
        CsSelector = 0x0802 / 16,
        /// SS selector (16).
        SsSelector = 0x0804 / 16,
        /// DS selector (16).
        DsSelector = 0x0806 / 16,
        /// FS selector (16).
        FsSelector = 0x0808 / 16,
        /// GS selector (16).
        GsSelector = 0x080a / 16,
        /// LDTR selector (16).
        LdtrSelector = 0x080c / 16,
        /// TR selector (16).
        TrSelector = 0x080e / 16,
        /// VMCS link pointer (64).
        VmcsLinkPointer = 0x2800 / 64,
        /// IA32_DEBUGCTL (64).
        Ia32Debugctl = 0x2802 / 64,
        /// IA32_EFER (64).
        Ia32Efer = 0x2806 / 64,
        /// ES limit (32).
        EsLimit = 0x4800 / 32,
        /// CS limit (32).
        CsLimit = 0x4802 / 32,
        /// SS limit (32).
        SsLimit = 0x4804 / 32,
        /// DS limit (32).
        DsLimit = 0x4806 / 32,
        /// FS limit (32).
        FsLimit = 0x4808 / 32,
        /// GS limit (32).
        GsLimit = 0x480a / 32,
        /// LDTR limit (32).
        LdtrLimit = 0x480c / 32,
        /// TR limit (32).
        TrLimit = 0x480e / 32,
        /// GDTR limit (32).
        GdtrLimit = 0x4810 / 32,
        /// IDTR limit (32).
        IdtrLimit = 0x4812 / 32,
        /// ES access rights (32).
        EsAccessRights = 0x4814 / 32,
        /// CS access rights (32).
        CsAccessRights = 0x4816 / 32,
        /// SS access rights (32).
        SsAccessRights = 0x4818 / 32,
        /// DS access rights (32).
        DsAccessRights = 0x481a / 32,
        /// FS access rights (32).
        FsAccessRights = 0x481c / 32,
        /// GS access rights (32).
        GsAccessRights = 0x481e / 32,
        /// LDTR access rights (32).
        LdtrAccessRights = 0x4820 / 32,
        /// TR access rights (32).
        TrAccessRights = 0x4822 / 32,
        /// Interruptibility state (32).
        InterruptibilityState = 0x4824 / 32,
        /// Activity state (32).
        ActivityState = 0x4826 / 32,
        /// IA32_SYSENTER_CS (32).
        SysenterCs = 0x482a / 32,
        /// VMX-preemption timer value (32).
        PreemptionTimerValue = 0x482e / 32,
        /// CR0 (natural).
        Cr0 = 0x6800 / 64,
        /// CR3 (natural).
        Cr3 = 0x6802 / 64,
        /// CR4 (natural).
        Cr4 = 0x6804 / 64,
        /// ES base (natural).
        EsBase = 0x6806 / 64,
        /// CS base (natural).
        CsBase = 0x6808 / 64,
        /// SS base (natural).
        SsBase = 0x680a / 64,
        /// DS base (natural).
        DsBase = 0x680c / 64,
        /// FS base (natural).
        FsBase = 0x680e / 64,
        /// GS base (natural).
        GsBase = 0x6810 / 64,
        /// LDTR base (natural).
        LdtrBase = 0x6812 / 64,
        /// TR base (natural).
        TrBase = 0x6814 / 64,
        /// GDTR base (natural).
        GdtrBase = 0x6816 / 64,
        /// IDTR base (natural).
        IdtrBase = 0x6818 / 64,
        /// DR7 (natural).
        Dr7 = 0x681a / 64,
        /// RSP (natural).
        Rsp = 0x681c / 64,
        /// RIP (natural).
        Rip = 0x681e / 64,
        /// RFLAGS (natural).
        Rflags = 0x6820 / 64,
        /// Pending debug exceptions (natural).
        PendingDebugExceptions = 0x6822 / 64,
        /// IA32_SYSENTER_ESP (natural).
        SysenterEsp = 0x6824 / 64,
        /// IA32_SYSENTER_EIP (natural).
        SysenterEip = 0x6826 / 64,
    }
);

fields!(
    /// Host-state fields (loaded by the CPU on every VM exit).
    Host, 3, {
        /// ES selector (16).
        EsSelector = 0x0c00 / 16,
        /// CS selector (16).
        CsSelector = 0x0c02 / 16,
        /// SS selector (16).
        SsSelector = 0x0c04 / 16,
        /// DS selector (16).
        DsSelector = 0x0c06 / 16,
        /// FS selector (16).
        FsSelector = 0x0c08 / 16,
        /// GS selector (16).
        GsSelector = 0x0c0a / 16,
        /// TR selector (16).
        TrSelector = 0x0c0c / 16,
        /// IA32_EFER (64).
        Ia32Efer = 0x2c02 / 64,
        /// IA32_SYSENTER_CS (32).
        SysenterCs = 0x4c00 / 32,
        /// CR0 (natural).
        Cr0 = 0x6c00 / 64,
        /// CR3 (natural).
        Cr3 = 0x6c02 / 64,
        /// CR4 (natural).
        Cr4 = 0x6c04 / 64,
        /// FS base (natural).
        FsBase = 0x6c06 / 64,
        /// GS base (natural).
        GsBase = 0x6c08 / 64,
        /// TR base (natural).
        TrBase = 0x6c0a / 64,
        /// GDTR base (natural).
        GdtrBase = 0x6c0c / 64,
        /// IDTR base (natural).
        IdtrBase = 0x6c0e / 64,
        /// IA32_SYSENTER_ESP (natural).
        SysenterEsp = 0x6c10 / 64,
        /// IA32_SYSENTER_EIP (natural).
        SysenterEip = 0x6c12 / 64,
        /// RSP (natural).
        Rsp = 0x6c14 / 64,
        /// RIP (natural).
        Rip = 0x6c16 / 64,
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
