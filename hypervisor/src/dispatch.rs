//! The one exit dispatcher: takes an already-decoded [`Exit`] and runs its
//! handler, one function per reason; device-page accesses go to the VM's
//! [`Bus`]. It never touches hardware, so host tests feed it fabricated
//! exits. Anything a guest is not allowed to do stops that guest with a
//! [`StopReason`]; nothing here panics.
#![forbid(unsafe_code)]

use crate::cpuid::{self, CpuidResult};
use crate::devices::bus::{Bus, Effect};
use crate::emulate;
use crate::hvt::{
    self,
    call::{HvtCallError, HvtDone, HvtEnv, PortAccess},
};
use crate::hypercall::{self, Call, Done, Services};
use crate::mem::access::GuestRead;
use crate::vcpu::hw::GuestCpu;
use crate::vcpu::regs::GuestRegs;
use crate::vcpu::stop::StopReason;
use crate::vmx::exit::{Access, Event, EventType, Exit};
use crate::vmx::mode::CpuMode;
use vmm_abi::corral::layout::device_slot;

/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;

/// What the run loop does after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Re-enter the guest at the same RIP.
    Resume,
    /// Re-enter after the exiting instruction.
    Advance,
    /// Re-enter after an emulated instruction of this many bytes (exits
    /// for device accesses carry no instruction length).
    AdvanceBy(u8),
    /// Move past the exiting instruction and give the core to another VM if
    /// one waits (the guest is idle).
    Yield,
    /// Move past the exiting instruction and let the guest wait for work on
    /// its devices for at most this many TSC ticks (RAX then says why it
    /// woke).
    Wait(u64),
    /// Wait the same way without moving past the exiting instruction, so
    /// it runs again (a Solo5 hvt `poll` with nothing ready yet, a
    /// `net_write` waiting for a free transmit slot, a `halt` waiting for
    /// the frames it sent to be taken); every register stays as it was.
    /// The exit, and its exit hook, come again.
    Retry(u64),
    /// Re-enter at the same RIP and deliver this event again: the exit cut
    /// its delivery short for a reason of the host's (SDM 27.2.4).
    Reinject(Event),
    /// Stop the guest.
    Stop(StopReason),
}

/// The state of the vCPU a handler may look at or change.
pub struct Vcpu<'a, M: GuestRead, C: GuestCpu> {
    /// General-purpose registers.
    pub regs: &'a mut GuestRegs,
    /// RIP of the exiting instruction.
    pub rip: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// The guest's memory (a view is built only when a handler needs it).
    pub mem: &'a M,
    /// The event the CPU was delivering through the guest's IDT when the
    /// exit happened (IDT-vectoring information), if any.
    pub delivering: Option<Event>,
    /// Guest state read on demand (mode, CR3) for device accesses.
    pub cpu: &'a mut C,
}

/// What the dispatcher needs from the hypervisor besides the vCPU: the
/// hypercall services, the VM's devices, the real CPUID.
pub trait Host: Services + Bus {
    /// The real CPU's CPUID answer.
    fn host_cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult;

    /// Whether this VM is a Solo5 hvt guest (its port accesses are hvt
    /// hypercalls, and it may set FS_BASE).
    fn is_hvt(&self) -> bool {
        false
    }

    /// What an hvt guest's hypercalls need (`None` for Corral's own
    /// guests).
    fn hvt_env(&mut self) -> Option<HvtEnv> {
        None
    }

    /// Whether the hvt hypercall just handled asked to run again
    /// (`Retry`): the host keeps since when, and says so in the next
    /// [`Host::hvt_env`] (`retrying`), so that the call can give up after
    /// its bound.
    fn hvt_retried(&mut self, _retried: bool) {}
}

/// Handles one decoded exit.
pub fn dispatch<M: GuestRead, C: GuestCpu>(
    exit: &Exit,
    vcpu: &mut Vcpu<'_, M, C>,
    host: &mut impl Host,
) -> Outcome {
    if let Some(event) = vcpu.delivering {
        // The exit interrupted the delivery of an event: the instruction at
        // RIP did not run, so no exit is handled as if it had. Exits that
        // are the host's business re-deliver the event; anything else the
        // guest caused while delivering stops it.
        return match exit {
            Exit::PreemptionTimer | Exit::ExternalInterrupt | Exit::Nmi
                if !matches!(event.kind, EventType::Reserved(_)) =>
            {
                Outcome::Reinject(event)
            }
            _ => Outcome::Stop(StopReason::DuringDelivery { exit: *exit, event }),
        };
    }
    match *exit {
        Exit::Vmcall => on_vmcall(vcpu, host),
        Exit::Cpuid => on_cpuid(vcpu, host),
        Exit::Hlt => on_hlt(vcpu),
        // Only the instruction's own access is emulated; a page walk
        // through a device page stops the guest as an EPT violation.
        Exit::EptViolation {
            gpa,
            access,
            direct: true,
        } if let Some((slot, offset)) = device_slot(gpa)
            && host.has_device(slot) =>
        {
            on_device(vcpu, host, slot, offset, access)
        }
        Exit::EptViolation { gpa, access, .. } => Outcome::Stop(StopReason::EptViolation {
            gpa,
            access,
            outside: gpa >= vcpu.mem.size(),
        }),
        Exit::EptMisconfig { gpa } => Outcome::Stop(StopReason::EptMisconfig { gpa }),
        Exit::TripleFault => Outcome::Stop(StopReason::TripleFault { rip: vcpu.rip }),
        Exit::Io { port, is_in, .. } => on_io(port, is_in),
        Exit::MsrRead => on_msr(vcpu, false),
        Exit::MsrWrite => on_msr(vcpu, true),
        Exit::PreemptionTimer | Exit::ExternalInterrupt | Exit::Nmi => Outcome::Resume,
        Exit::CrAccess { cr } => Outcome::Stop(StopReason::DeniedCr(cr)),
        Exit::Exception { vector } => Outcome::Stop(StopReason::Exception {
            vector,
            rip: vcpu.rip,
        }),
        Exit::EntryFailure {
            reason,
            qualification,
        } => Outcome::Stop(StopReason::EntryFailed {
            reason,
            qualification,
        }),
        Exit::Denied { reason } => Outcome::Stop(StopReason::DeniedInstruction { reason }),
        Exit::Unexpected { reason, name } => Outcome::Stop(StopReason::Unexpected { reason, name }),
    }
}

fn on_vmcall<M: GuestRead, C: GuestCpu>(
    vcpu: &mut Vcpu<'_, M, C>,
    host: &mut impl Host,
) -> Outcome {
    let r = &*vcpu.regs;
    let call = Call {
        nr: r.rax,
        args: [r.rdi, r.rsi, r.rdx],
    };
    match hypercall::handle(call, vcpu.mem, host) {
        Ok(Done::Return(value)) => {
            vcpu.regs.rax = value;
            Outcome::Advance
        }
        Ok(Done::Exit(code)) => Outcome::Stop(StopReason::Exited(code)),
        Ok(Done::Wait(ticks)) => Outcome::Wait(ticks),
        Err(e) => Outcome::Stop(StopReason::BadHypercall(e)),
    }
}

fn on_cpuid<M: GuestRead, C: GuestCpu>(vcpu: &mut Vcpu<'_, M, C>, host: &mut impl Host) -> Outcome {
    let r = cpuid::filter(vcpu.regs.rax as u32, vcpu.regs.rcx as u32, |l, s| {
        host.host_cpuid(l, s)
    });
    vcpu.regs.rax = r.eax.into();
    vcpu.regs.rbx = r.ebx.into();
    vcpu.regs.rcx = r.ecx.into();
    vcpu.regs.rdx = r.edx.into();
    Outcome::Advance
}

fn on_hlt<M: GuestRead, C: GuestCpu>(vcpu: &Vcpu<'_, M, C>) -> Outcome {
    if vcpu.rflags & RFLAGS_IF == 0 {
        Outcome::Stop(StopReason::Halted)
    } else {
        // No interrupt sources are given to guests yet: HLT means "idle",
        // so the core goes to another VM if one waits.
        Outcome::Yield
    }
}

/// An access to device slot `slot`'s register page at `offset`: the
/// instruction at RIP is fetched, decoded and carried out on the device.
fn on_device<M: GuestRead, C: GuestCpu>(
    vcpu: &mut Vcpu<'_, M, C>,
    host: &mut impl Host,
    slot: usize,
    offset: u64,
    access: Access,
) -> Outcome {
    let slot_u8 = slot as u8;
    // The decoder and the page walk speak 64-bit code only.
    match vcpu.cpu.mode(vcpu.rflags) {
        Ok(CpuMode::Long64) => {}
        Ok(mode) => {
            return Outcome::Stop(StopReason::DeviceOutsideLongMode {
                slot: slot_u8,
                mode,
            });
        }
        Err(r) => return Outcome::Stop(r),
    }
    let cr3 = match vcpu.cpu.cr3() {
        Ok(cr3) => cr3,
        Err(r) => return Outcome::Stop(r),
    };
    let (mem, rip, regs) = (vcpu.mem, vcpu.rip, &mut *vcpu.regs);
    let done = host.with_device(slot, |dev| {
        emulate::emulate(mem, cr3, rip, access, regs, offset, dev)
    });
    match done {
        None => Outcome::Stop(StopReason::Internal("a device vanished")),
        Some(Err(fault)) => Outcome::Stop(StopReason::Mmio {
            slot: slot_u8,
            fault,
        }),
        Some(Ok((_, Effect::Fault(error)))) => Outcome::Stop(StopReason::Ring {
            slot: slot_u8,
            error,
        }),
        Some(Ok((len, Effect::None))) => Outcome::AdvanceBy(len),
    }
}

/// A port access or WRMSR of a Solo5 hvt guest that [`dispatch`] denied
/// (`denied`, as for every guest): a hypercall, its TLS base (FS_BASE
/// lives in the VMCS, so it is this VM's alone), or `denied`. Cold, out of
/// line and given plain values (nothing of the exit loop's is made to live
/// in memory for it): Corral's own guests never come here.
#[cold]
#[inline(never)]
pub fn on_hvt(
    exit: Exit,
    regs: &mut GuestRegs,
    cpu: &mut impl GuestCpu,
    host: &mut impl Host,
    denied: Outcome,
) -> Outcome {
    match exit {
        Exit::Io {
            port,
            size,
            is_in,
            string,
        } => {
            let Some(mut env) = host.hvt_env() else {
                return denied;
            };
            let io = PortAccess {
                port,
                size,
                is_in,
                string,
            };
            let done = hvt::call::handle(io, regs.rax as u32, &mut env, |b| host.console(b));
            host.hvt_retried(matches!(done, Ok(HvtDone::Retry(_))));
            match done {
                Ok(HvtDone::Advance) => Outcome::Advance,
                Ok(HvtDone::Retry(ticks)) => Outcome::Retry(ticks),
                Ok(HvtDone::Exit(status)) => Outcome::Stop(StopReason::Exited(status.into())),
                Err(HvtCallError::NotACall { port, write }) => {
                    Outcome::Stop(StopReason::DeniedIo { port, write })
                }
                Err(e) => Outcome::Stop(StopReason::Hvt(e)),
            }
        }
        Exit::MsrWrite if regs.rcx as u32 == vmm_abi::hvt::MSR_FS_BASE => {
            let value = (regs.rdx << 32) | (regs.rax & 0xffff_ffff);
            match cpu.set_fs_base(value) {
                Ok(()) => Outcome::Advance,
                Err(r) => Outcome::Stop(r),
            }
        }
        _ => denied,
    }
}

fn on_io(port: u16, is_in: bool) -> Outcome {
    // The I/O bitmaps deny every port; no grants exist yet.
    Outcome::Stop(StopReason::DeniedIo {
        port,
        write: !is_in,
    })
}

fn on_msr<M: GuestRead, C: GuestCpu>(vcpu: &Vcpu<'_, M, C>, write: bool) -> Outcome {
    // The MSR bitmap denies every MSR; no grants exist yet.
    Outcome::Stop(StopReason::DeniedMsr {
        msr: vcpu.regs.rcx as u32,
        write,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypercall::tests::Recorder;
    use crate::mem::guest::GuestMemory;
    use crate::vmx::exit::{Access, ExitReason};
    use vmm_abi::corral::hypercall::Hypercall;

    impl Bus for Recorder {
        fn has_device(&self, _: usize) -> bool {
            false
        }

        fn with_device<R>(
            &mut self,
            _: usize,
            _: impl FnOnce(&mut dyn crate::devices::bus::BusDevice) -> R,
        ) -> Option<R> {
            None
        }
    }

    /// A guest in 64-bit mode whose CR3 nobody asks for here.
    struct Long64;

    impl GuestCpu for Long64 {
        fn mode(&mut self, _: u64) -> Result<CpuMode, StopReason> {
            Ok(CpuMode::Long64)
        }

        fn cr3(&mut self) -> Result<u64, StopReason> {
            Ok(0)
        }
    }

    impl Host for Recorder {
        fn host_cpuid(&self, leaf: u32, _: u32) -> CpuidResult {
            CpuidResult {
                eax: leaf,
                ebx: 2,
                ecx: 0x20,
                edx: 4,
            }
        }
    }

    fn run(exit: Exit, regs: &mut GuestRegs, rflags: u64) -> (Outcome, Recorder) {
        run_delivering(exit, regs, rflags, None)
    }

    fn run_delivering(
        exit: Exit,
        regs: &mut GuestRegs,
        rflags: u64,
        delivering: Option<Event>,
    ) -> (Outcome, Recorder) {
        let mut backing = std::vec![b'z'; 0x10_0000];
        let mem = GuestMemory::new(&mut backing);
        let mut host = Recorder::default();
        let mut vcpu = Vcpu {
            regs,
            rip: 0x10_0040,
            rflags,
            mem: &mem,
            delivering,
            cpu: &mut Long64,
        };
        let out = dispatch(&exit, &mut vcpu, &mut host);
        (out, host)
    }

    fn stop_text(exit: Exit, regs: &mut GuestRegs) -> std::string::String {
        match run(exit, regs, 2).0 {
            Outcome::Stop(r) => std::format!("{r}"),
            other => panic!("expected a stop, got {other:?}"),
        }
    }

    #[test]
    fn hypercalls_return_and_exit() {
        let mut regs = GuestRegs {
            rax: Hypercall::ConsoleWrite.number(),
            rdi: 0x10,
            rsi: 3,
            ..GuestRegs::default()
        };
        let (out, host) = run(Exit::Vmcall, &mut regs, 2);
        assert_eq!(out, Outcome::Advance);
        assert_eq!(host.console, b"zzz");
        assert_eq!(regs.rax, 0);
        let mut regs = GuestRegs {
            rax: Hypercall::Exit.number(),
            rdi: 7,
            ..GuestRegs::default()
        };
        assert_eq!(
            run(Exit::Vmcall, &mut regs, 2).0,
            Outcome::Stop(StopReason::Exited(7))
        );
    }

    #[test]
    fn a_control_call_without_the_capability_stops_the_guest_by_name() {
        let mut regs = GuestRegs {
            rax: Hypercall::ControlSend.number(),
            rdi: 0x10,
            rsi: 3,
            ..GuestRegs::default()
        };
        assert_eq!(
            run(Exit::Vmcall, &mut regs, 2).0,
            Outcome::Stop(StopReason::BadHypercall(
                hypercall::HypercallError::NotGranted(Hypercall::ControlSend)
            ))
        );
        // Its length is checked first, whoever calls.
        let mut regs = GuestRegs {
            rax: Hypercall::ControlRecv.number(),
            rdi: 0x10,
            rsi: u64::MAX,
            ..GuestRegs::default()
        };
        assert!(matches!(
            run(Exit::Vmcall, &mut regs, 2).0,
            Outcome::Stop(StopReason::BadHypercall(
                hypercall::HypercallError::TooLong { .. }
            ))
        ));
    }

    #[test]
    fn cpuid_is_filtered() {
        let mut regs = GuestRegs {
            rax: 1,
            ..GuestRegs::default()
        };
        assert_eq!(run(Exit::Cpuid, &mut regs, 2).0, Outcome::Advance);
        assert_eq!(regs.rcx & 0x20, 0, "VMX hidden");
        assert_ne!(regs.rcx & (1 << 31), 0, "hypervisor bit");
    }

    #[test]
    fn hostile_exits_stop_with_named_reasons() {
        let mut regs = GuestRegs {
            rax: 0xdead,
            rcx: 0x1b,
            ..GuestRegs::default()
        };
        assert_eq!(
            stop_text(Exit::Vmcall, &mut regs),
            "bad hypercall: unknown number 0xdead"
        );
        assert_eq!(stop_text(Exit::MsrRead, &mut regs), "denied MSR read 0x1b");
        assert_eq!(
            stop_text(Exit::MsrWrite, &mut regs),
            "denied MSR write 0x1b"
        );
        let io = Exit::Io {
            port: 0x3f8,
            size: 1,
            is_in: true,
            string: false,
        };
        assert_eq!(stop_text(io, &mut regs), "denied I/O port read 0x3f8");
        let ept = Exit::EptViolation {
            gpa: 0x10_0000,
            access: Access::Write,
            direct: true,
        };
        assert_eq!(
            stop_text(ept, &mut regs),
            "EPT violation: write at guest-physical 0x100000 (outside its memory)"
        );
        let inside = Exit::EptViolation {
            gpa: 0x1000,
            access: Access::Fetch,
            direct: true,
        };
        assert!(stop_text(inside, &mut regs).ends_with("(not permitted)"));
        assert_eq!(
            stop_text(Exit::TripleFault, &mut regs),
            "triple fault at rip 0x100040"
        );
        assert!(stop_text(Exit::Hlt, &mut regs).starts_with("halted"));
        let vmxon = Exit::Denied {
            reason: ExitReason::Vmxon,
        };
        assert_eq!(
            stop_text(vmxon, &mut regs),
            "denied instruction VMXON (exit reason 27): not available to guests"
        );
        let dr = Exit::Denied {
            reason: ExitReason::DrAccess,
        };
        assert!(stop_text(dr, &mut regs).starts_with("denied instruction MOV to/from a debug"));
    }

    #[test]
    fn exits_during_event_delivery_are_never_handled_as_the_instruction() {
        let pf = Event {
            kind: EventType::HardwareException,
            vector: 14,
            error_code: Some(2),
        };
        // The frame push of a #PF hits a device page: stopped, not emulated.
        let mut regs = GuestRegs::default();
        let ept = Exit::EptViolation {
            gpa: 0x4000_0070,
            access: Access::Write,
            direct: true,
        };
        let (out, host) = run_delivering(ept, &mut regs, 2, Some(pf));
        match out {
            Outcome::Stop(r) => assert_eq!(
                std::format!("{r}"),
                "EPT violation: write at guest-physical 0x40000070 while delivering exception #PF (vector 14) through the guest's IDT"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(regs, GuestRegs::default(), "no register changed");
        assert!(host.console.is_empty());
        // A hypercall number in RAX is not a hypercall while delivering.
        let mut regs = GuestRegs {
            rax: vmm_abi::corral::hypercall::Hypercall::Exit.number(),
            ..GuestRegs::default()
        };
        assert!(matches!(
            run_delivering(Exit::Vmcall, &mut regs, 2, Some(pf)).0,
            Outcome::Stop(StopReason::DuringDelivery { .. })
        ));
        // The host's own exits deliver the event again.
        for benign in [Exit::PreemptionTimer, Exit::ExternalInterrupt, Exit::Nmi] {
            assert_eq!(
                run_delivering(benign, &mut regs, 2, Some(pf)).0,
                Outcome::Reinject(pf)
            );
        }
        // An event type the CPU should never report is not re-delivered.
        let odd = Event {
            kind: EventType::Reserved(7),
            vector: 0,
            error_code: None,
        };
        assert!(matches!(
            run_delivering(Exit::PreemptionTimer, &mut regs, 2, Some(odd)).0,
            Outcome::Stop(StopReason::DuringDelivery { .. })
        ));
    }

    #[test]
    fn benign_exits_resume() {
        let mut regs = GuestRegs::default();
        assert_eq!(run(Exit::PreemptionTimer, &mut regs, 2).0, Outcome::Resume);
        assert_eq!(
            run(Exit::ExternalInterrupt, &mut regs, 2).0,
            Outcome::Resume
        );
        assert_eq!(run(Exit::Hlt, &mut regs, 2 | RFLAGS_IF).0, Outcome::Yield);
        assert_eq!(run(Exit::Nmi, &mut regs, 2).0, Outcome::Resume);
    }
}
