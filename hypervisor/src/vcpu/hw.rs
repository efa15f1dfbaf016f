//! What the exit loop needs from the hardware, as traits: the vCPU ([`VcpuHw`], implemented over a VMCS by `platform::vmx`) and the clock ([`Clock`]); host tests implement them with fakes.

use super::regs::GuestRegs;
use super::stop::StopReason;
use crate::vmx::exit::{Event, RawExit};
use crate::vmx::mode::CpuMode;

/// Guest state the dispatcher reads only when a handler needs it (each
/// read is a VMREAD on hardware).
pub trait GuestCpu {
    /// The guest's processor mode, given its RFLAGS.
    fn mode(&mut self, rflags: u64) -> Result<CpuMode, StopReason>;
    /// The guest's CR3 (the root of its page tables).
    fn cr3(&mut self) -> Result<u64, StopReason>;
    /// Sets the guest's FS base (a Solo5 hvt guest's TLS base).
    fn set_fs_base(&mut self, base: u64) -> Result<(), StopReason> {
        let _ = base;
        Err(StopReason::Internal("this vCPU cannot set FS_BASE"))
    }
}

/// One virtual CPU whose state is loaded (its VMCS current on this core).
pub trait VcpuHw: GuestCpu {
    /// Runs the guest until its next exit; `regs` are loaded before and
    /// saved after. A failed entry is `StopReason::LaunchFailed`.
    fn enter(&mut self, regs: &mut GuestRegs) -> Result<(), StopReason>;
    /// The exit's information fields.
    fn exit_info(&mut self) -> Result<RawExit, StopReason>;
    /// RIP and RFLAGS at the exit.
    fn rip_rflags(&mut self) -> Result<(u64, u64), StopReason>;
    /// Sets RIP.
    fn set_rip(&mut self, rip: u64) -> Result<(), StopReason>;
    /// Moves RIP from `rip` past the exiting instruction (its length is in
    /// the exit information).
    fn skip_instruction(&mut self, rip: u64) -> Result<(), StopReason>;
    /// Has the next entry deliver `event` again (SDM 27.2.4).
    fn reinject(&mut self, event: &Event) -> Result<(), StopReason>;
    /// Sets the preemption timer for the next entries.
    fn set_timer(&mut self, value: u64) -> Result<(), StopReason>;
}

/// The instruction clock (the TSC on hardware).
pub trait Clock {
    /// Now, in ticks.
    fn now(&self) -> u64;
}
