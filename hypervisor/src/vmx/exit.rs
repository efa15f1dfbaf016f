//! The one VM-exit decoder: raw exit information read from the VMCS becomes
//! a typed [`Exit`] here, once, and the dispatcher matches on that. Basic
//! exit reasons are from Intel SDM Vol. 3D, Appendix C; qualifications from
//! SDM Vol. 3C, 28.2.1.

use vmm_abi::report::ExitKind;

/// Basic exit reasons (SDM Appendix C) Corral names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum ExitReason {
    /// Exception or non-maskable interrupt.
    ExceptionOrNmi = 0,
    /// External interrupt.
    ExternalInterrupt = 1,
    /// Triple fault.
    TripleFault = 2,
    /// INIT signal.
    Init = 3,
    /// Start-up IPI.
    Sipi = 4,
    /// Task switch.
    TaskSwitch = 9,
    /// CPUID.
    Cpuid = 10,
    /// GETSEC.
    Getsec = 11,
    /// HLT.
    Hlt = 12,
    /// INVD.
    Invd = 13,
    /// INVLPG.
    Invlpg = 14,
    /// RDPMC.
    Rdpmc = 15,
    /// RDTSC.
    Rdtsc = 16,
    /// RSM.
    Rsm = 17,
    /// VMCALL.
    Vmcall = 18,
    /// VMCLEAR.
    Vmclear = 19,
    /// VMLAUNCH.
    Vmlaunch = 20,
    /// VMPTRLD.
    Vmptrld = 21,
    /// VMPTRST.
    Vmptrst = 22,
    /// VMREAD.
    Vmread = 23,
    /// VMRESUME.
    Vmresume = 24,
    /// VMWRITE.
    Vmwrite = 25,
    /// VMXOFF.
    Vmxoff = 26,
    /// VMXON.
    Vmxon = 27,
    /// Control-register access.
    CrAccess = 28,
    /// MOV DR.
    DrAccess = 29,
    /// I/O instruction.
    Io = 30,
    /// RDMSR.
    Rdmsr = 31,
    /// WRMSR.
    Wrmsr = 32,
    /// VM-entry failure: invalid guest state.
    InvalidGuestState = 33,
    /// VM-entry failure: MSR loading.
    MsrLoading = 34,
    /// MWAIT.
    Mwait = 36,
    /// Monitor trap flag.
    MonitorTrapFlag = 37,
    /// MONITOR.
    Monitor = 39,
    /// PAUSE.
    Pause = 40,
    /// VM-entry failure: machine-check event.
    MachineCheck = 41,
    /// EPT violation.
    EptViolation = 48,
    /// EPT misconfiguration.
    EptMisconfig = 49,
    /// INVEPT.
    Invept = 50,
    /// RDTSCP.
    Rdtscp = 51,
    /// VMX-preemption timer expired.
    PreemptionTimer = 52,
    /// INVVPID.
    Invvpid = 53,
    /// WBINVD.
    Wbinvd = 54,
    /// XSETBV.
    Xsetbv = 55,
    /// RDRAND.
    Rdrand = 57,
    /// INVPCID.
    Invpcid = 58,
    /// VMFUNC.
    Vmfunc = 59,
    /// RDSEED.
    Rdseed = 61,
    /// XSAVES.
    Xsaves = 63,
    /// XRSTORS.
    Xrstors = 64,
}

impl ExitReason {
    const ALL: [ExitReason; 50] = {
        use ExitReason::*;
        [
            ExceptionOrNmi,
            ExternalInterrupt,
            TripleFault,
            Init,
            Sipi,
            TaskSwitch,
            Cpuid,
            Getsec,
            Hlt,
            Invd,
            Invlpg,
            Rdpmc,
            Rdtsc,
            Rsm,
            Vmcall,
            Vmclear,
            Vmlaunch,
            Vmptrld,
            Vmptrst,
            Vmread,
            Vmresume,
            Vmwrite,
            Vmxoff,
            Vmxon,
            CrAccess,
            DrAccess,
            Io,
            Rdmsr,
            Wrmsr,
            InvalidGuestState,
            MsrLoading,
            Mwait,
            MonitorTrapFlag,
            Monitor,
            Pause,
            MachineCheck,
            EptViolation,
            EptMisconfig,
            Invept,
            Rdtscp,
            PreemptionTimer,
            Invvpid,
            Wbinvd,
            Xsetbv,
            Rdrand,
            Invpcid,
            Vmfunc,
            Rdseed,
            Xsaves,
            Xrstors,
        ]
    };

    /// The instruction, as a guest author would name it, if guests are
    /// denied it on purpose (its exit is enabled or unconditional, and no
    /// guest is given it); `None` for every other reason.
    #[inline]
    pub fn denied_instruction(self) -> Option<&'static str> {
        use ExitReason::*;
        Some(match self {
            DrAccess => "MOV to/from a debug register",
            Rdpmc => "RDPMC",
            Wbinvd => "WBINVD",
            Invd => "INVD",
            Monitor => "MONITOR",
            Mwait => "MWAIT",
            Getsec => "GETSEC",
            Vmclear => "VMCLEAR",
            Vmlaunch => "VMLAUNCH",
            Vmptrld => "VMPTRLD",
            Vmptrst => "VMPTRST",
            Vmread => "VMREAD",
            Vmresume => "VMRESUME",
            Vmwrite => "VMWRITE",
            Vmxoff => "VMXOFF",
            Vmxon => "VMXON",
            Invept => "INVEPT",
            Invvpid => "INVVPID",
            Vmfunc => "VMFUNC",
            _ => return None,
        })
    }

    /// The reason with this basic number, if Corral names it.
    pub fn from_raw(basic: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|r| *r as u16 == basic)
    }
}

/// Bit 31 of the exit-reason field: the exit is a failed VM entry.
const EXIT_REASON_ENTRY_FAILURE: u32 = 1 << 31;
const EXIT_REASON_BASIC_MASK: u32 = 0xffff;

/// Exit information read from the VMCS, before decoding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawExit {
    /// Exit reason field.
    pub reason: u32,
    /// Exit qualification.
    pub qualification: u64,
    /// Guest-physical address (EPT exits only).
    pub guest_physical: u64,
    /// VM-exit interruption information.
    pub interrupt_info: u32,
    /// IDT-vectoring information: the event being delivered when the exit
    /// happened, if bit 31 is set (SDM 25.9.3).
    pub idt_vectoring: u32,
    /// IDT-vectoring error code (meaningful when `idt_vectoring` says so).
    pub idt_vectoring_error: u32,
}

/// Kind of guest memory access (from an EPT-violation qualification).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Data read.
    Read,
    /// Data write.
    Write,
    /// Instruction fetch.
    Fetch,
}

impl Access {
    /// Lower-case word for reports.
    pub fn name(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Fetch => "instruction fetch",
        }
    }
}

/// A decoded VM exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// VMCALL: a hypercall (arguments are in the guest registers).
    Vmcall,
    /// CPUID (leaf in EAX, subleaf in ECX).
    Cpuid,
    /// HLT.
    Hlt,
    /// An access EPT does not allow.
    EptViolation {
        /// Guest-physical address accessed.
        gpa: u64,
        /// What kind of access.
        access: Access,
        /// The access was the instruction's own, to the address it named
        /// (qualification bits 7 and 8), not a walk of the guest's page
        /// tables.
        direct: bool,
    },
    /// An EPT entry is malformed (a hypervisor bug).
    EptMisconfig {
        /// Guest-physical address being translated.
        gpa: u64,
    },
    /// The guest triple-faulted.
    TripleFault,
    /// IN/OUT/INS/OUTS.
    Io {
        /// Port number.
        port: u16,
        /// Access size in bytes.
        size: u8,
        /// IN (true) or OUT (false).
        is_in: bool,
        /// String instruction (INS/OUTS).
        string: bool,
    },
    /// RDMSR (MSR number in ECX).
    MsrRead,
    /// WRMSR (MSR number in ECX).
    MsrWrite,
    /// The preemption timer expired.
    PreemptionTimer,
    /// An external interrupt arrived.
    ExternalInterrupt,
    /// A control-register access the hypervisor owns.
    CrAccess {
        /// Control register number.
        cr: u8,
    },
    /// A non-maskable interrupt meant for the host arrived while the guest
    /// ran (NMI exiting is on); the guest did nothing wrong.
    Nmi,
    /// An exception (or a software interrupt) the guest raised.
    Exception {
        /// Vector number.
        vector: u8,
    },
    /// VM entry failed after the launch instruction (bad guest state).
    EntryFailure {
        /// Basic reason (33, 34 or 41).
        reason: u16,
        /// Exit qualification.
        qualification: u64,
    },
    /// An instruction guests are denied on purpose (debug registers,
    /// performance counters, cache control, MONITOR/MWAIT, every VMX
    /// instruction): the README lists them, and the guest is stopped.
    Denied {
        /// The exit reason, which names the instruction.
        reason: ExitReason,
    },
    /// Any other exit: a named reason Corral does not serve, or a number it
    /// does not know. Either way the guest is stopped.
    Unexpected {
        /// Basic exit reason number.
        reason: u16,
        /// Its name, when known.
        name: Option<ExitReason>,
    },
}

// EPT-violation qualification bits (SDM Table 28-7).
const EPT_QUAL_WRITE: u64 = 1 << 1;
const EPT_QUAL_FETCH: u64 = 1 << 2;
/// EPT-violation qualification: the guest linear address is valid.
const EPT_QUAL_LINEAR_VALID: u64 = 1 << 7;
/// EPT-violation qualification: the access was to the translated linear
/// address (not to a paging-structure entry).
const EPT_QUAL_TRANSLATED: u64 = 1 << 8;
// I/O qualification fields (SDM Table 28-5).
const IO_QUAL_SIZE_MASK: u64 = 0x7;
const IO_QUAL_IN: u64 = 1 << 3;
const IO_QUAL_STRING: u64 = 1 << 4;
const IO_QUAL_PORT_SHIFT: u64 = 16;
// CR-access qualification (SDM Table 28-3).
const CR_QUAL_NUMBER_MASK: u64 = 0xf;
// VM-exit interruption information (SDM 25.9.2).
const INTR_INFO_VECTOR_MASK: u32 = 0xff;
const INTR_INFO_TYPE_SHIFT: u32 = 8;
const INTR_INFO_TYPE_MASK: u32 = 0x7;
/// Interruption type 2: NMI.
const INTR_TYPE_NMI: u32 = 2;

/// Decodes raw exit information.
#[inline]
pub fn decode(raw: &RawExit) -> Exit {
    let basic = (raw.reason & EXIT_REASON_BASIC_MASK) as u16;
    let name = ExitReason::from_raw(basic);
    if raw.reason & EXIT_REASON_ENTRY_FAILURE != 0 {
        return Exit::EntryFailure {
            reason: basic,
            qualification: raw.qualification,
        };
    }
    let q = raw.qualification;
    match name {
        Some(ExitReason::Vmcall) => Exit::Vmcall,
        Some(ExitReason::Cpuid) => Exit::Cpuid,
        Some(ExitReason::Hlt) => Exit::Hlt,
        Some(ExitReason::EptViolation) => Exit::EptViolation {
            gpa: raw.guest_physical,
            access: if q & EPT_QUAL_FETCH != 0 {
                Access::Fetch
            } else if q & EPT_QUAL_WRITE != 0 {
                Access::Write
            } else {
                Access::Read
            },
            direct: q & (EPT_QUAL_LINEAR_VALID | EPT_QUAL_TRANSLATED)
                == EPT_QUAL_LINEAR_VALID | EPT_QUAL_TRANSLATED,
        },
        Some(ExitReason::EptMisconfig) => Exit::EptMisconfig {
            gpa: raw.guest_physical,
        },
        Some(ExitReason::TripleFault) => Exit::TripleFault,
        Some(ExitReason::Io) => Exit::Io {
            port: (q >> IO_QUAL_PORT_SHIFT) as u16,
            size: ((q & IO_QUAL_SIZE_MASK) + 1) as u8,
            is_in: q & IO_QUAL_IN != 0,
            string: q & IO_QUAL_STRING != 0,
        },
        Some(ExitReason::Rdmsr) => Exit::MsrRead,
        Some(ExitReason::Wrmsr) => Exit::MsrWrite,
        Some(ExitReason::PreemptionTimer) => Exit::PreemptionTimer,
        Some(ExitReason::ExternalInterrupt) => Exit::ExternalInterrupt,
        Some(ExitReason::CrAccess) => Exit::CrAccess {
            cr: (q & CR_QUAL_NUMBER_MASK) as u8,
        },
        Some(ExitReason::ExceptionOrNmi)
            if (raw.interrupt_info >> INTR_INFO_TYPE_SHIFT) & INTR_INFO_TYPE_MASK
                == INTR_TYPE_NMI =>
        {
            Exit::Nmi
        }
        Some(ExitReason::ExceptionOrNmi) => Exit::Exception {
            vector: (raw.interrupt_info & INTR_INFO_VECTOR_MASK) as u8,
        },
        Some(
            r @ (ExitReason::InvalidGuestState | ExitReason::MsrLoading | ExitReason::MachineCheck),
        ) => Exit::EntryFailure {
            reason: r as u16,
            qualification: q,
        },
        Some(r) if r.denied_instruction().is_some() => Exit::Denied { reason: r },
        _ => Exit::Unexpected {
            reason: basic,
            name,
        },
    }
}

/// How an event was being delivered (IDT-vectoring interruption type,
/// SDM Table 25-17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// External interrupt.
    ExternalInterrupt,
    /// Non-maskable interrupt.
    Nmi,
    /// Hardware exception (a fault or trap the CPU raised).
    HardwareException,
    /// Software interrupt (`INT n`).
    SoftwareInterrupt,
    /// Privileged software exception (`INT1`).
    PrivilegedSoftwareException,
    /// Software exception (`INT3`, `INTO`).
    SoftwareException,
    /// A type the SDM reserves (1) or that is never delivered through the
    /// IDT (7): never re-delivered.
    Reserved(u8),
}

/// An event whose delivery through the guest's IDT was cut short by the
/// exit (IDT-vectoring information valid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// How it was being delivered.
    pub kind: EventType,
    /// Its vector.
    pub vector: u8,
    /// Its error code, if it pushes one.
    pub error_code: Option<u32>,
}

// IDT-vectoring information fields (SDM 25.9.3).
const VECTORING_VALID: u32 = 1 << 31;
const VECTORING_ERROR_VALID: u32 = 1 << 11;
const INTR_TYPE_EXTERNAL: u32 = 0;
const INTR_TYPE_HARDWARE_EXCEPTION: u32 = 3;
const INTR_TYPE_SOFTWARE_INTERRUPT: u32 = 4;
const INTR_TYPE_PRIVILEGED_SOFTWARE: u32 = 5;
const INTR_TYPE_SOFTWARE_EXCEPTION: u32 = 6;

/// Exception mnemonics by vector (SDM Vol. 3A, Table 6-1).
const EXCEPTION_NAMES: [&str; 22] = [
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "", "#TS", "#NP", "#SS", "#GP",
    "#PF", "", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
];

/// Whether IDT-vectoring information `info` says an event with an error
/// code was being delivered (only then is the error-code field read).
pub fn vectoring_has_error_code(info: u32) -> bool {
    info & (VECTORING_VALID | VECTORING_ERROR_VALID) == VECTORING_VALID | VECTORING_ERROR_VALID
}

/// The event being delivered when the exit happened, if any.
pub fn pending_event(raw: &RawExit) -> Option<Event> {
    let info = raw.idt_vectoring;
    if info & VECTORING_VALID == 0 {
        return None;
    }
    let kind = match (info >> INTR_INFO_TYPE_SHIFT) & INTR_INFO_TYPE_MASK {
        INTR_TYPE_EXTERNAL => EventType::ExternalInterrupt,
        INTR_TYPE_NMI => EventType::Nmi,
        INTR_TYPE_HARDWARE_EXCEPTION => EventType::HardwareException,
        INTR_TYPE_SOFTWARE_INTERRUPT => EventType::SoftwareInterrupt,
        INTR_TYPE_PRIVILEGED_SOFTWARE => EventType::PrivilegedSoftwareException,
        INTR_TYPE_SOFTWARE_EXCEPTION => EventType::SoftwareException,
        other => EventType::Reserved(other as u8),
    };
    Some(Event {
        kind,
        vector: (info & INTR_INFO_VECTOR_MASK) as u8,
        error_code: (info & VECTORING_ERROR_VALID != 0).then_some(raw.idt_vectoring_error),
    })
}

impl Event {
    /// The VM-entry interruption-information value that delivers this
    /// event again (SDM 27.2.4: copy valid bit, type, vector and the
    /// error-code bit; everything else is zero).
    pub fn entry_info(&self) -> u32 {
        let ty = match self.kind {
            EventType::ExternalInterrupt => INTR_TYPE_EXTERNAL,
            EventType::Nmi => INTR_TYPE_NMI,
            EventType::HardwareException => INTR_TYPE_HARDWARE_EXCEPTION,
            EventType::SoftwareInterrupt => INTR_TYPE_SOFTWARE_INTERRUPT,
            EventType::PrivilegedSoftwareException => INTR_TYPE_PRIVILEGED_SOFTWARE,
            EventType::SoftwareException => INTR_TYPE_SOFTWARE_EXCEPTION,
            EventType::Reserved(ty) => u32::from(ty) & INTR_INFO_TYPE_MASK,
        };
        let error = if self.error_code.is_some() {
            VECTORING_ERROR_VALID
        } else {
            0
        };
        VECTORING_VALID | error | (ty << INTR_INFO_TYPE_SHIFT) | u32::from(self.vector)
    }

    /// Whether re-delivery needs the instruction length (software events
    /// restart the `INT` instruction, SDM 27.2.4).
    pub fn needs_instruction_length(&self) -> bool {
        matches!(
            self.kind,
            EventType::SoftwareInterrupt
                | EventType::PrivilegedSoftwareException
                | EventType::SoftwareException
        )
    }
}

impl core::fmt::Display for Event {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let v = self.vector;
        match self.kind {
            EventType::ExternalInterrupt => write!(f, "external interrupt {v}"),
            EventType::Nmi => write!(f, "NMI"),
            EventType::SoftwareInterrupt => write!(f, "software interrupt INT {v:#x}"),
            EventType::Reserved(ty) => write!(f, "an event of reserved type {ty}, vector {v}"),
            EventType::HardwareException
            | EventType::PrivilegedSoftwareException
            | EventType::SoftwareException => {
                match EXCEPTION_NAMES
                    .get(usize::from(v))
                    .filter(|n| !n.is_empty())
                {
                    Some(name) => write!(f, "exception {name} (vector {v})"),
                    None => write!(f, "exception vector {v}"),
                }
            }
        }
    }
}

impl Exit {
    /// The counter this exit is reported under.
    pub fn kind(&self) -> ExitKind {
        match self {
            Exit::Vmcall => ExitKind::Vmcall,
            Exit::Cpuid => ExitKind::Cpuid,
            Exit::Hlt => ExitKind::Hlt,
            Exit::EptViolation { .. } => ExitKind::EptViolation,
            Exit::EptMisconfig { .. } => ExitKind::EptMisconfig,
            Exit::TripleFault => ExitKind::TripleFault,
            Exit::Io { .. } => ExitKind::Io,
            Exit::MsrRead => ExitKind::MsrRead,
            Exit::MsrWrite => ExitKind::MsrWrite,
            Exit::PreemptionTimer => ExitKind::PreemptionTimer,
            Exit::ExternalInterrupt => ExitKind::ExternalInterrupt,
            Exit::CrAccess { .. } => ExitKind::CrAccess,
            Exit::Nmi | Exit::Exception { .. } => ExitKind::Exception,
            Exit::EntryFailure { .. } => ExitKind::EntryFailure,
            Exit::Denied { .. } | Exit::Unexpected { .. } => ExitKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(reason: u32, qualification: u64) -> RawExit {
        RawExit {
            reason,
            qualification,
            ..RawExit::default()
        }
    }

    #[test]
    fn simple_reasons() {
        assert_eq!(decode(&raw(18, 0)), Exit::Vmcall);
        assert_eq!(decode(&raw(10, 0)), Exit::Cpuid);
        assert_eq!(decode(&raw(12, 0)), Exit::Hlt);
        assert_eq!(decode(&raw(2, 0)), Exit::TripleFault);
        assert_eq!(decode(&raw(31, 0)), Exit::MsrRead);
        assert_eq!(decode(&raw(32, 0)), Exit::MsrWrite);
        assert_eq!(decode(&raw(52, 0)), Exit::PreemptionTimer);
        assert_eq!(decode(&raw(1, 0)), Exit::ExternalInterrupt);
        assert_eq!(decode(&raw(28, 0x4)), Exit::CrAccess { cr: 4 });
    }

    #[test]
    fn ept_violation_access_kinds() {
        let ept = |q| {
            decode(&RawExit {
                reason: 48,
                qualification: q,
                guest_physical: 0x20_0000,
                ..RawExit::default()
            })
        };
        assert_eq!(
            ept(0x181),
            Exit::EptViolation {
                gpa: 0x20_0000,
                access: Access::Read,
                direct: true
            }
        );
        assert_eq!(
            ept(0x182),
            Exit::EptViolation {
                gpa: 0x20_0000,
                access: Access::Write,
                direct: true
            }
        );
        assert_eq!(
            ept(0x184),
            Exit::EptViolation {
                gpa: 0x20_0000,
                access: Access::Fetch,
                direct: true
            }
        );
        // A walk of the guest's page tables (bit 8 clear).
        assert_eq!(
            ept(0x81),
            Exit::EptViolation {
                gpa: 0x20_0000,
                access: Access::Read,
                direct: false
            }
        );
    }

    #[test]
    fn io_qualification() {
        // IN AL, DX from port 0x3f8: size-1 = 0, IN, DX operand, port in 31:16.
        assert_eq!(
            decode(&raw(30, (0x3f8 << 16) | 0x8 | 0x40)),
            Exit::Io {
                port: 0x3f8,
                size: 1,
                is_in: true,
                string: false
            }
        );
        // OUTSD to port 0x80.
        assert_eq!(
            decode(&raw(30, (0x80 << 16) | 0x3 | 0x10)),
            Exit::Io {
                port: 0x80,
                size: 4,
                is_in: false,
                string: true
            }
        );
    }

    #[test]
    fn entry_failures_and_unknowns() {
        assert_eq!(
            decode(&raw(0x8000_0021, 0)),
            Exit::EntryFailure {
                reason: 33,
                qualification: 0
            }
        );
        assert_eq!(
            decode(&raw(27, 0)),
            Exit::Denied {
                reason: ExitReason::Vmxon
            }
        );
        assert_eq!(
            decode(&raw(17, 0)),
            Exit::Unexpected {
                reason: 17,
                name: Some(ExitReason::Rsm)
            }
        );
        assert_eq!(
            decode(&raw(0xfff, 0)),
            Exit::Unexpected {
                reason: 0xfff,
                name: None
            }
        );
        assert_eq!(
            decode(&RawExit {
                reason: 0,
                interrupt_info: 0x8000_0b06,
                ..RawExit::default()
            }),
            Exit::Exception { vector: 6 }
        );
        // Type 2 (NMI), vector 2, valid.
        assert_eq!(
            decode(&RawExit {
                reason: 0,
                interrupt_info: 0x8000_0202,
                ..RawExit::default()
            }),
            Exit::Nmi
        );
    }

    #[test]
    fn events_being_delivered() {
        // #PF (hardware exception 14) with error code 2.
        let pf = pending_event(&RawExit {
            idt_vectoring: 0x8000_0b0e,
            idt_vectoring_error: 2,
            ..RawExit::default()
        })
        .expect("valid");
        assert_eq!(
            pf,
            Event {
                kind: EventType::HardwareException,
                vector: 14,
                error_code: Some(2)
            }
        );
        assert_eq!(std::format!("{pf}"), "exception #PF (vector 14)");
        assert_eq!(pf.entry_info(), 0x8000_0b0e);
        assert!(vectoring_has_error_code(0x8000_0b0e));
        assert!(!vectoring_has_error_code(0x0000_0b0e), "not valid");
        assert!(!vectoring_has_error_code(0x8000_0603));
        assert!(!pf.needs_instruction_length());
        // INT3: software exception 3, no error code.
        let bp = pending_event(&RawExit {
            idt_vectoring: 0x8000_0603,
            ..RawExit::default()
        })
        .expect("valid");
        assert_eq!(std::format!("{bp}"), "exception #BP (vector 3)");
        assert!(bp.needs_instruction_length());
        assert_eq!(pending_event(&RawExit::default()), None);
    }

    #[test]
    fn denied_instructions_are_named() {
        for (n, name) in [
            (29, "MOV to/from a debug register"),
            (15, "RDPMC"),
            (54, "WBINVD"),
            (13, "INVD"),
            (39, "MONITOR"),
            (36, "MWAIT"),
            (19, "VMCLEAR"),
            (50, "INVEPT"),
        ] {
            match decode(&raw(n, 0)) {
                Exit::Denied { reason } => assert_eq!(reason.denied_instruction(), Some(name)),
                other => panic!("reason {n}: {other:?}"),
            }
        }
    }

    #[test]
    fn reason_numbers_round_trip() {
        for r in ExitReason::ALL {
            assert_eq!(ExitReason::from_raw(r as u16), Some(r));
        }
        assert_eq!(ExitReason::from_raw(5), None);
    }

    proptest::proptest! {
        #[test]
        fn decode_is_total(reason: u32, qualification: u64, gpa: u64, info: u32) {
            let e = decode(&RawExit { reason, qualification, guest_physical: gpa, interrupt_info: info, idt_vectoring: info, idt_vectoring_error: 0 });
            let _ = e.kind();
        }

        #[test]
        fn vectoring_round_trips(info: u32, error: u32) {
            let raw = RawExit { idt_vectoring: info, idt_vectoring_error: error, ..RawExit::default() };
            match pending_event(&raw) {
                None => proptest::prop_assert_eq!(info & VECTORING_VALID, 0),
                Some(ev) => {
                    let ty = (info >> INTR_INFO_TYPE_SHIFT) & INTR_INFO_TYPE_MASK;
                    let again = ev.entry_info();
                    proptest::prop_assert_eq!(again & 0xff, info & 0xff);
                    proptest::prop_assert_eq!(again & VECTORING_ERROR_VALID, info & VECTORING_ERROR_VALID);
                    // Reserved bits 30:12 are never passed back to the CPU.
                    proptest::prop_assert_eq!(again & 0x7fff_f000, 0);
                    if ty != 1 && ty != 7 {
                        proptest::prop_assert_eq!((again >> 8) & 7, ty);
                    }
                    let _ = std::format!("{ev}");
                }
            }
        }
    }
}
