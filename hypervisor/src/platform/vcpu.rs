//! The vCPU over a VMCS: [`VmxVcpu`] implements `vcpu::hw::VcpuHw` with VMREAD/VMWRITE and the entry/exit assembly, for the VM whose VMCS is current on this core.

use super::instr::{self, vmread, vmwrite};
use super::vmx;
use crate::vcpu::hw::{Clock, GuestCpu, VcpuHw};
use crate::vcpu::regs::GuestRegs;
use crate::vcpu::stop::StopReason;
use crate::vmx::exit::{self, Event, ExitReason, RawExit};
use crate::vmx::fields::{Control, ExitInfo, Guest};
use crate::vmx::mode::CpuMode;

/// The basic exit reason: bits 15:0 of the exit-reason field.
const EXIT_REASON_BASIC_MASK: u32 = 0xffff;

/// The vCPU whose VMCS is current on this core.
pub struct VmxVcpu<'a> {
    /// VMLAUNCH was done on this VMCS (the next entry is VMRESUME).
    pub launched: &'a mut bool,
}

/// The TSC.
pub struct Tsc;

impl Clock for Tsc {
    #[inline]
    fn now(&self) -> u64 {
        instr::rdtsc()
    }
}

impl GuestCpu for VmxVcpu<'_> {
    fn mode(&mut self, rflags: u64) -> Result<CpuMode, StopReason> {
        let (Ok(cr0), Ok(efer), Ok(cs_ar)) = (
            vmread(Guest::Cr0),
            vmread(Guest::Ia32Efer),
            vmread(Guest::CsAccessRights),
        ) else {
            return Err(StopReason::Internal("VMREAD of the guest's mode failed"));
        };
        Ok(CpuMode::of(cr0, efer, cs_ar as u32, rflags))
    }

    fn cr3(&mut self) -> Result<u64, StopReason> {
        vmread(Guest::Cr3).map_err(|_| StopReason::Internal("VMREAD of guest CR3 failed"))
    }

    fn set_fs_base(&mut self, base: u64) -> Result<(), StopReason> {
        // A non-canonical base would fail the next VM entry: refuse it here
        // by name, as the CPU would with #GP.
        let sign = base >> 47;
        if sign != 0 && sign != 0x1_ffff {
            return Err(StopReason::Internal(
                "FS_BASE write of a non-canonical address",
            ));
        }
        // SAFETY: this VM's VMCS is current on this core (the exit being
        // handled is its own); FS base is guest state only it uses.
        unsafe { vmwrite(Guest::FsBase, base) }
            .map_err(|_| StopReason::Internal("VMWRITE of guest FS base failed"))
    }
}

impl VcpuHw for VmxVcpu<'_> {
    #[inline]
    fn enter(&mut self, regs: &mut GuestRegs) -> Result<(), StopReason> {
        // SAFETY: this VM's VMCS was prepared by `vm::create` and made
        // current by `vm::load` on this core; `regs` is its live register
        // file.
        let failed = unsafe { vmx::enter(regs, u64::from(*self.launched)) };
        if failed != 0 {
            let error = vmread(ExitInfo::InstructionError).unwrap_or(0) as u32;
            return Err(StopReason::LaunchFailed { error });
        }
        *self.launched = true;
        Ok(())
    }

    #[inline]
    fn exit_info(&mut self) -> Result<RawExit, StopReason> {
        let fail = |_| StopReason::Internal("VMREAD of the exit information failed");
        let reason = vmread(ExitInfo::ExitReason).map_err(fail)? as u32;
        let basic = reason & EXIT_REASON_BASIC_MASK;
        let needs_gpa =
            basic == ExitReason::EptViolation as u32 || basic == ExitReason::EptMisconfig as u32;
        let idt_vectoring = vmread(ExitInfo::IdtVectoringInfo).map_err(fail)? as u32;
        Ok(RawExit {
            reason,
            qualification: vmread(ExitInfo::Qualification).map_err(fail)?,
            guest_physical: if needs_gpa {
                vmread(ExitInfo::GuestPhysicalAddress).map_err(fail)?
            } else {
                0
            },
            interrupt_info: vmread(ExitInfo::InterruptInfo).map_err(fail)? as u32,
            idt_vectoring,
            // The error code means something only when the information says
            // one was pushed: skip the VMREAD on the common path.
            idt_vectoring_error: if exit::vectoring_has_error_code(idt_vectoring) {
                vmread(ExitInfo::IdtVectoringErrorCode).map_err(fail)? as u32
            } else {
                0
            },
        })
    }

    #[inline]
    fn rip_rflags(&mut self) -> Result<(u64, u64), StopReason> {
        match (vmread(Guest::Rip), vmread(Guest::Rflags)) {
            (Ok(rip), Ok(rflags)) => Ok((rip, rflags)),
            _ => Err(StopReason::Internal("VMREAD of guest RIP/RFLAGS failed")),
        }
    }

    #[inline]
    fn set_rip(&mut self, rip: u64) -> Result<(), StopReason> {
        // SAFETY: sets the guest's RIP in its current VMCS; a bad value can
        // only hurt the guest.
        unsafe { vmwrite(Guest::Rip, rip) }
            .map_err(|_| StopReason::Internal("VMWRITE of guest RIP failed"))
    }

    #[inline]
    fn skip_instruction(&mut self, rip: u64) -> Result<(), StopReason> {
        let len = vmread(ExitInfo::InstructionLength)
            .map_err(|_| StopReason::Internal("VMREAD of the instruction length failed"))?;
        self.set_rip(rip.wrapping_add(len))
    }

    fn reinject(&mut self, event: &Event) -> Result<(), StopReason> {
        let fail = |_| StopReason::Internal("VMWRITE of the VM-entry event fields failed");
        // SAFETY: these control fields of the current VMCS only make the next
        // entry deliver an event the guest's own IDT handles; the values come
        // from the CPU's IDT-vectoring fields with reserved bits cleared.
        unsafe {
            if let Some(code) = event.error_code {
                vmwrite(Control::EntryExceptionErrorCode, u64::from(code)).map_err(fail)?;
            }
            if event.needs_instruction_length() {
                let len = vmread(ExitInfo::InstructionLength).map_err(fail)?;
                vmwrite(Control::EntryInstructionLength, len).map_err(fail)?;
            }
            vmwrite(Control::EntryInterruptInfo, u64::from(event.entry_info())).map_err(fail)
        }
    }

    fn set_timer(&mut self, value: u64) -> Result<(), StopReason> {
        // SAFETY: sets this VM's preemption-timer value in its current VMCS.
        unsafe { vmwrite(Guest::PreemptionTimerValue, value) }
            .map_err(|_| StopReason::Internal("VMWRITE of the preemption timer failed"))
    }
}
