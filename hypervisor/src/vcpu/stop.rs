//! Why a VM could not start ([`StartError`]) or stopped ([`StopReason`]), each a value with a one-line description for reports; nothing a guest does is a panic.

use crate::elf::ElfError;
use crate::hypercall::HypercallError;
use crate::mem::ept::EptError;
use crate::vmx::exit::{Access, Event, Exit, ExitReason};
use core::fmt;

/// Why a VM could not be started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError {
    /// No contiguous host memory for the guest.
    OutOfMemory {
        /// Bytes asked for.
        bytes: u64,
    },
    /// The image is unusable.
    Image(ElfError),
    /// EPT could not be built.
    Ept(EptError),
    /// The guest's memory is too small for its tables or boot info.
    Layout,
    /// A VMX instruction failed while preparing the VMCS.
    Vmcs(&'static str),
    /// A Solo5 hvt image breaks a rule of the hvt ABI.
    Hvt(crate::hvt::image::HvtImageError),
    /// An hvt guest's net device could not be set up.
    /// (Why is logged when it happens: it cannot ride in a stop reason,
    /// which stays small.)
    HvtNet {
        /// Its name in the guest's Solo5 manifest.
        device: &'static str,
    },
    /// A Corral guest given Solo5 device names for its net ports.
    DeviceNames,
    /// Its devices do not fit the device slots.
    TooManyDevices {
        /// Net ports.
        net: u8,
        /// A virtio-console.
        console: bool,
        /// Disks (block devices).
        disks: u8,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::OutOfMemory { bytes } => {
                write!(f, "no {bytes} bytes of contiguous host memory left")
            }
            StartError::Image(e) => write!(f, "bad image: {e}"),
            StartError::Ept(e) => write!(f, "{e}"),
            StartError::Layout => write!(f, "guest memory too small for its boot layout"),
            StartError::Vmcs(what) => write!(f, "VMCS setup failed: {what}"),
            StartError::Hvt(e) => write!(f, "bad hvt image: {e}"),
            StartError::DeviceNames => write!(
                f,
                "Solo5 device names for net ports (`devices = {{ NAME = \"net:N\" }}`) are for hvt guests, and this image is a Corral guest"
            ),
            StartError::HvtNet { device } => {
                write!(
                    f,
                    "hvt net device '{device}' could not be set up (the log says why)"
                )
            }
            StartError::TooManyDevices {
                net,
                console,
                disks,
            } => write!(
                f,
                "{net} net ports, {} console and {disks} disks do not fit its {} device slots",
                u8::from(*console),
                vmm_abi::corral::layout::MAX_DEVICES
            ),
        }
    }
}

/// Why a VM stopped. Everything but [`StopReason::Exited`] means it was killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The guest called exit.
    Exited(i64),
    /// The VM never ran.
    StartFailed(StartError),
    /// An access EPT does not allow.
    EptViolation {
        /// Address.
        gpa: u64,
        /// Access kind.
        access: Access,
        /// The address is beyond the guest's memory.
        outside: bool,
    },
    /// A hypercall it may not make.
    BadHypercall(HypercallError),
    /// RDMSR/WRMSR of an MSR it was not granted.
    DeniedMsr {
        /// MSR number.
        msr: u32,
        /// WRMSR.
        write: bool,
    },
    /// An I/O port it was not granted.
    DeniedIo {
        /// Port.
        port: u16,
        /// OUT.
        write: bool,
    },
    /// A control-register access it may not make.
    DeniedCr(u8),
    /// A Solo5 hvt guest's port access that is not a good hypercall.
    Hvt(crate::hvt::call::HvtCallError),
    /// The guest triple-faulted.
    TripleFault {
        /// RIP at the fault.
        rip: u64,
    },
    /// An intercepted exception.
    Exception {
        /// Vector.
        vector: u8,
        /// RIP.
        rip: u64,
    },
    /// HLT with interrupts off: nothing could ever wake it.
    Halted,
    /// Its instruction budget ran out.
    BudgetExhausted {
        /// The budget.
        budget: u64,
    },
    /// An instruction guests are denied on purpose.
    DeniedInstruction {
        /// The exit reason naming it.
        reason: ExitReason,
    },
    /// An exit that happened while the CPU was delivering an event through
    /// the guest's IDT (it is never emulated as the instruction's own
    /// access; only benign exits re-deliver the event).
    DuringDelivery {
        /// The exit.
        exit: Exit,
        /// The event whose delivery it interrupted.
        event: Event,
    },
    /// The guest touched a device page while not in 64-bit mode.
    DeviceOutsideLongMode {
        /// The device slot.
        slot: u8,
        /// The mode it was in.
        mode: crate::vmx::mode::CpuMode,
    },
    /// An exit Corral does not serve.
    Unexpected {
        /// Basic exit reason.
        reason: u16,
        /// Its name if known.
        name: Option<ExitReason>,
    },
    /// VM entry failed (bad guest state).
    EntryFailed {
        /// Basic reason.
        reason: u16,
        /// Qualification.
        qualification: u64,
    },
    /// VMLAUNCH/VMRESUME itself failed.
    LaunchFailed {
        /// VM-instruction error number (0 if the VMCS pointer was invalid).
        error: u32,
    },
    /// EPT misconfiguration: a hypervisor bug, reported as one.
    EptMisconfig {
        /// Address.
        gpa: u64,
    },
    /// An access to a device's register page that cannot be carried out.
    Mmio {
        /// The device slot.
        slot: u8,
        /// Why.
        fault: crate::emulate::MmioFault,
    },
    /// A virtqueue of one of its devices broke the rules.
    Ring {
        /// The device slot.
        slot: u8,
        /// What is wrong.
        error: crate::devices::virtio::error::RingError,
    },
    /// A VMX instruction failed while running the VM (a hypervisor bug).
    Internal(&'static str),
    /// Its exit hook denied one of its exits.
    HookDenied {
        /// The hook's name.
        hook: &'static str,
        /// The exit's basic reason.
        reason: u16,
        /// The hypercall number, for a VMCALL exit.
        hypercall: Option<u64>,
    },
}

impl StopReason {
    /// Whether the guest ended on its own (status "exited").
    pub fn exited(&self) -> bool {
        matches!(self, StopReason::Exited(_))
    }

    /// The exit code for the report (0 unless the guest exited with another).
    pub fn code(&self) -> i64 {
        match self {
            StopReason::Exited(c) => *c,
            _ => 0,
        }
    }

    /// How a restart hook sees this stop: its status and reason class
    /// (`vmm_abi::hook::context`'s `STATUS_*` and `REASON_*`).
    pub fn hook_class(&self) -> (u32, u32) {
        use vmm_abi::hook::context::*;
        let reason = match self {
            StopReason::Exited(_) => return (STATUS_EXITED, REASON_NONE),
            StopReason::StartFailed(_) => return (STATUS_START_FAILED, REASON_OTHER),
            StopReason::TripleFault { .. } | StopReason::Exception { .. } => REASON_TRIPLE_FAULT,
            StopReason::EptViolation { .. } | StopReason::DuringDelivery { .. } => {
                REASON_EPT_VIOLATION
            }
            StopReason::BadHypercall(_) | StopReason::Hvt(_) => REASON_BAD_HYPERCALL,
            StopReason::DeniedMsr { .. }
            | StopReason::DeniedIo { .. }
            | StopReason::DeniedCr(_)
            | StopReason::DeniedInstruction { .. } => REASON_DENIED,
            StopReason::DeviceOutsideLongMode { .. }
            | StopReason::Mmio { .. }
            | StopReason::Ring { .. } => REASON_DEVICE,
            StopReason::BudgetExhausted { .. } => REASON_BUDGET,
            StopReason::Halted => REASON_HALTED,
            StopReason::HookDenied { .. } => REASON_HOOK_DENIED,
            StopReason::Unexpected { .. }
            | StopReason::EntryFailed { .. }
            | StopReason::LaunchFailed { .. }
            | StopReason::EptMisconfig { .. }
            | StopReason::Internal(_) => REASON_OTHER,
        };
        (STATUS_STOPPED, reason)
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Exited(code) => write!(f, "exited with code {code}"),
            StopReason::StartFailed(e) => write!(f, "cannot start: {e}"),
            StopReason::EptViolation {
                gpa,
                access,
                outside,
            } => write!(
                f,
                "EPT violation: {} at guest-physical {gpa:#x} ({})",
                access.name(),
                if *outside {
                    "outside its memory"
                } else {
                    "not permitted"
                }
            ),
            StopReason::BadHypercall(e) => write!(f, "bad hypercall: {e}"),
            StopReason::DeniedMsr { msr, write } => write!(
                f,
                "denied MSR {} {msr:#x}",
                if *write { "write" } else { "read" }
            ),
            StopReason::DeniedIo { port, write } => write!(
                f,
                "denied I/O port {} {port:#x}",
                if *write { "write" } else { "read" }
            ),
            StopReason::DeniedCr(cr) => write!(f, "denied access to CR{cr}"),
            StopReason::Hvt(e) => write!(f, "{e}"),
            StopReason::TripleFault { rip } => write!(f, "triple fault at rip {rip:#x}"),
            StopReason::Exception { vector, rip } => {
                write!(f, "exception vector {vector} at rip {rip:#x}")
            }
            StopReason::Halted => {
                write!(f, "halted with interrupts disabled (nothing can wake it)")
            }
            StopReason::BudgetExhausted { budget } => {
                write!(f, "instruction budget of {budget} exhausted")
            }
            StopReason::DeniedInstruction { reason } => write!(
                f,
                "denied instruction {} (exit reason {}): not available to guests",
                reason.denied_instruction().unwrap_or("an instruction"),
                *reason as u16
            ),
            StopReason::DuringDelivery { exit, event } => {
                match exit {
                    Exit::EptViolation { gpa, access, .. } => write!(
                        f,
                        "EPT violation: {} at guest-physical {gpa:#x}",
                        access.name()
                    )?,
                    other => write!(f, "{:?} exit", other.kind())?,
                }
                write!(f, " while delivering {event} through the guest's IDT")
            }
            StopReason::DeviceOutsideLongMode { slot, mode } => write!(
                f,
                "device {slot} register access from {mode}: device registers are emulated for 64-bit code only"
            ),
            StopReason::Unexpected { reason, name } => match name {
                Some(n) => write!(f, "unexpected exit {n:?} (reason {reason})"),
                None => write!(f, "unexpected exit reason {reason}"),
            },
            StopReason::EntryFailed {
                reason,
                qualification,
            } => write!(
                f,
                "VM entry failed: reason {reason}, qualification {qualification:#x}"
            ),
            StopReason::LaunchFailed { error } => {
                write!(f, "VM launch failed: VM-instruction error {error}")
            }
            StopReason::EptMisconfig { gpa } => {
                write!(f, "EPT misconfiguration at {gpa:#x} (hypervisor bug)")
            }
            StopReason::Mmio { slot, fault } => write!(f, "device {slot} register access: {fault}"),
            StopReason::Ring { slot, error } => write!(f, "device {slot} ring: {error}"),
            StopReason::Internal(what) => write!(f, "hypervisor error: {what}"),
            StopReason::HookDenied {
                hook,
                reason,
                hypercall,
            } => match (hypercall, ExitReason::from_raw(*reason)) {
                (Some(n), _) => write!(f, "hook `{hook}` denied hypercall {n}"),
                (None, Some(r)) => write!(f, "hook `{hook}` denied exit {r:?} (reason {reason})"),
                (None, None) => write!(f, "hook `{hook}` denied exit reason {reason}"),
            },
        }
    }
}
