//! One VM from creation to its end: host memory, image, boot info, guest
//! page tables, EPT and VMCS; then the run loop (enter, decode the exit
//! once, dispatch once, repeat) until the guest exits or is stopped; then
//! every frame it held goes back to the allocator.

use super::instr::{self, vmread, vmwrite};
use super::memory::{self, FrameTables};
use super::serial;
use super::vmx::{self, Launch, VmxRoot};
use crate::console::LineBuffer;
use crate::cpuid::CpuidResult;
use crate::dispatch::{self, GuestRegs, Host, Outcome, StartError, StopReason, Vcpu};
use crate::elf::Image;
use crate::hypercall::Services;
use crate::mem::ept::{Ept, EptPerms};
use crate::mem::guest_tables;
use crate::vmx::exit::{self, RawExit};
use crate::vmx::fields::{ExitInfo, Guest};
use vmm_abi::bootinfo::BootInfo;
use vmm_abi::layout::{BOOT_INFO_GPA, STACK_SIZE};
use vmm_abi::manifest::VmSpec;
use vmm_abi::report::{EXIT_KINDS, ExitCounts, Record};

/// Frames per 2 MiB: guest memory is 2 MiB aligned when possible so EPT
/// can map it with large pages.
const LARGE_PAGE_FRAMES: u64 = 512;
/// Exit reasons whose qualification the decoder needs.
const EPT_VIOLATION: u32 = 48;
const EPT_MISCONFIG: u32 = 49;
/// SysV: a function is entered with RSP 8 below a 16-byte boundary.
const ENTRY_STACK_BIAS: u64 = 8;

/// How a VM ended.
pub struct VmOutcome {
    /// Why it stopped.
    pub reason: StopReason,
    /// Instructions from the start of creation to the guest's `main`.
    pub boot: u64,
    /// Exits by kind.
    pub exits: ExitCounts,
}

/// The hypervisor's services for one running guest.
struct VmHost<'a> {
    index: u32,
    name: &'a str,
    line: LineBuffer,
    main_tsc: Option<u64>,
}

impl Services for VmHost<'_> {
    fn console(&mut self, bytes: &[u8]) {
        let name = self.name;
        self.line
            .push(bytes, &mut |l| serial::line(name, format_args!("{l}")));
    }

    fn metric(&mut self, name: &str, value: u64) {
        serial::record(&Record::Metric {
            vm: self.index,
            name,
            value,
        });
    }

    fn main_started(&mut self, tsc: u64) {
        self.main_tsc.get_or_insert(tsc);
    }
}

impl Host for VmHost<'_> {
    fn host_cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult {
        instr::cpuid(leaf, subleaf)
    }
}

/// What a VM holds.
struct Vm {
    mem_base: u64,
    mem_len: u64,
    ept: Option<Ept>,
    vmcs: Option<u64>,
}

impl Vm {
    fn prepare(
        &mut self,
        root: &VmxRoot,
        index: u32,
        spec: &VmSpec<'_>,
        image: &[u8],
    ) -> Result<(), StartError> {
        memory::fill(self.mem_base, self.mem_len, 0);
        // SAFETY: the frames were just allocated for this VM alone and no
        // other view of them exists; this one ends with this function.
        let mut mem = unsafe { memory::guest_memory(self.mem_base, self.mem_len) };
        let image = Image::parse(image, self.mem_len).map_err(StartError::Image)?;
        image.load(&mut mem).map_err(StartError::Image)?;
        let cr3 = guest_tables::build(&mut mem).map_err(|_| StartError::Layout)?;
        let stack_top = self.mem_len;
        let heap_start = image.end;
        let info = BootInfo {
            vm_index: index,
            core: spec.core,
            memory_size: self.mem_len,
            heap_start,
            heap_size: (stack_top - STACK_SIZE).saturating_sub(heap_start),
            stack_top,
            name: spec.name,
            args: spec.args,
        };
        let raw = info.to_raw().map_err(|_| StartError::Layout)?;
        mem.write(BOOT_INFO_GPA, &raw.to_bytes())
            .map_err(|_| StartError::Layout)?;

        let ept = self
            .ept
            .insert(Ept::new(&mut FrameTables).map_err(StartError::Ept)?);
        ept.map(
            &mut FrameTables,
            0,
            self.mem_base,
            self.mem_len,
            EptPerms::RWX,
        )
        .map_err(StartError::Ept)?;
        let eptp = ept.eptp();
        let vmcs = memory::alloc_zeroed_pages(1).ok_or(StartError::OutOfMemory {
            bytes: memory::PAGE,
        })?;
        self.vmcs = Some(vmcs);
        let launch = Launch {
            eptp,
            cr3,
            rip: image.entry,
            rsp: stack_top - ENTRY_STACK_BIAS,
        };
        vmx::prepare_vmcs(root, vmcs, &launch).map_err(|_| StartError::Vmcs("VMCS field write"))
    }

    fn destroy(self) {
        if let Some(vmcs) = self.vmcs {
            // SAFETY: the VMCS belongs to this VM; clearing it makes it no
            // longer current before its page is reused.
            let _ = unsafe { instr::vmclear(vmcs) };
            memory::free(vmcs, 1);
        }
        if let Some(ept) = self.ept {
            ept.destroy(&mut FrameTables);
        }
        memory::free(self.mem_base, self.mem_len / memory::PAGE);
    }

    fn run_loop(&self, host: &mut VmHost<'_>, exits: &mut ExitCounts, budget: u64) -> StopReason {
        let mut regs = GuestRegs {
            rdi: BOOT_INFO_GPA,
            ..GuestRegs::default()
        };
        let started = instr::rdtsc();
        let mut launched = false;
        loop {
            // SAFETY: this VM's VMCS was prepared and made current by
            // `prepare`; `regs` is a live local.
            let failed = unsafe { vmx::enter(&mut regs, u64::from(launched)) };
            if failed != 0 {
                let error = vmread(ExitInfo::InstructionError).unwrap_or(0) as u32;
                return StopReason::LaunchFailed { error };
            }
            launched = true;
            let Ok(raw) = read_exit() else {
                return StopReason::Internal("VMREAD of the exit information failed");
            };
            let exit = exit::decode(&raw);
            exits[exit.kind() as usize] += 1;
            let (Ok(rip), Ok(rflags)) = (vmread(Guest::Rip), vmread(Guest::Rflags)) else {
                return StopReason::Internal("VMREAD of guest RIP/RFLAGS failed");
            };
            // SAFETY: this VM's frames, owned by it; the guest is not running
            // while the view lives (it ends before the next entry).
            let mem = unsafe { memory::guest_memory(self.mem_base, self.mem_len) };
            let mut vcpu = Vcpu {
                regs: &mut regs,
                rip,
                rflags,
                mem: &mem,
            };
            match dispatch::dispatch(&exit, &mut vcpu, host) {
                Outcome::Resume => {}
                Outcome::Advance => {
                    let Ok(len) = vmread(ExitInfo::InstructionLength) else {
                        return StopReason::Internal("VMREAD of the instruction length failed");
                    };
                    // SAFETY: moves the guest past the instruction it exited on.
                    if unsafe { vmwrite(Guest::Rip, rip.wrapping_add(len)) }.is_err() {
                        return StopReason::Internal("VMWRITE of guest RIP failed");
                    }
                }
                Outcome::Stop(reason) => return reason,
            }
            if budget != 0 && instr::rdtsc().wrapping_sub(started) > budget {
                return StopReason::BudgetExhausted { budget };
            }
        }
    }
}

fn read_exit() -> Result<RawExit, instr::VmFail> {
    let reason = vmread(ExitInfo::ExitReason)? as u32;
    let basic = reason & 0xffff;
    let needs_gpa = basic == EPT_VIOLATION || basic == EPT_MISCONFIG;
    Ok(RawExit {
        reason,
        qualification: vmread(ExitInfo::Qualification)?,
        guest_physical: if needs_gpa {
            vmread(ExitInfo::GuestPhysicalAddress)?
        } else {
            0
        },
        interrupt_info: vmread(ExitInfo::InterruptInfo)? as u32,
    })
}

/// Creates, runs and destroys one VM; returns how it ended.
pub fn run(root: &VmxRoot, index: u32, spec: &VmSpec<'_>, image: &[u8]) -> VmOutcome {
    let start = instr::rdtsc();
    let mut host = VmHost {
        index,
        name: spec.name,
        line: LineBuffer::new(),
        main_tsc: None,
    };
    let mut exits = [0; EXIT_KINDS];
    let pages = spec.memory / memory::PAGE;
    let base = memory::alloc(pages, LARGE_PAGE_FRAMES).or_else(|| memory::alloc(pages, 1));
    let reason = match base {
        None => StopReason::StartFailed(StartError::OutOfMemory { bytes: spec.memory }),
        Some(mem_base) => {
            let mut vm = Vm {
                mem_base,
                mem_len: spec.memory,
                ept: None,
                vmcs: None,
            };
            let reason = match vm.prepare(root, index, spec, image) {
                Ok(()) => vm.run_loop(&mut host, &mut exits, spec.budget),
                Err(e) => StopReason::StartFailed(e),
            };
            vm.destroy();
            reason
        }
    };
    let name = spec.name;
    host.line
        .flush(&mut |l| serial::line(name, format_args!("{l}")));
    VmOutcome {
        reason,
        boot: host.main_tsc.map_or(0, |t| t.saturating_sub(start)),
        exits,
    }
}
