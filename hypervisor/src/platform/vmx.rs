//! VMX on this CPU: reading the capability MSRs, entering VMX root
//! operation, filling a VMCS for a 64-bit guest (SDM Vol. 3C, chapter 25
//! and 27.2-27.3 for the checks VM entry makes), and the VM entry/exit path.

use super::instr::{self, VmFail, rdmsr, vmwrite};
use super::memory;
use super::tables::{self, CODE_SELECTOR, DATA_SELECTOR, TSS_SELECTOR};
use crate::msr::{self, EFER_LMA, EFER_LME};
use crate::vcpu::regs::GuestRegs;
use crate::vmx::caps::{
    self, BASIC_TRUE_CONTROLS, CPUID_ECX_VMX, ProcBased, ProcBased2, RawCaps, VmxConfig,
};
use crate::vmx::fields::{Control, Guest, Host};
use core::arch::naked_asm;
use core::mem::offset_of;

const CR0_PE: u64 = 1 << 0;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR0_EM: u64 = 1 << 2;
const CR0_TS: u64 = 1 << 3;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const CR4_LA57: u64 = 1 << 12;
/// CR4.VMXE: owned by the hypervisor, hidden from the guest.
const CR4_VMXE: u64 = 1 << 13;
const CR4_SMXE: u64 = 1 << 14;
const CR4_FSGSBASE: u64 = 1 << 16;
const CR4_OSXSAVE: u64 = 1 << 18;
const CR4_PKE: u64 = 1 << 22;
const CR4_CET: u64 = 1 << 23;
/// CR4 bits the hypervisor owns: a guest may not set them (its write exits
/// and it is stopped) because the state they unlock is not switched between
/// VMs (FS/GS base instructions and KERNEL_GS_BASE, XSAVE state, protection
/// keys, shadow stacks) or is the hypervisor's (VMX, SMX, 5-level paging).
const CR4_HOST_OWNED: u64 =
    CR4_VMXE | CR4_SMXE | CR4_LA57 | CR4_FSGSBASE | CR4_OSXSAVE | CR4_PKE | CR4_CET;
/// RFLAGS bit 1 is always set.
const RFLAGS_FIXED: u64 = 1 << 1;
/// DR7 after reset.
const DR7_INIT: u64 = 0x400;
/// The VMCS link pointer when VMCS shadowing is off (SDM 25.4.2).
const VMCS_LINK_NONE: u64 = u64::MAX;
/// Guest segment access rights (SDM 25.4.1): 64-bit code, present, DPL 0,
/// execute/read, accessed, 4 KiB granularity.
const AR_CODE64: u64 = 0xa09b;
/// Data: present, DPL 0, read/write, accessed, 32-bit, 4 KiB granularity.
const AR_DATA: u64 = 0xc093;
/// Busy 64-bit TSS, present.
const AR_TSS_BUSY: u64 = 0x8b;
/// Bit 16 of the access rights: segment unusable.
const AR_UNUSABLE: u64 = 1 << 16;
const GUEST_CODE_SELECTOR: u64 = 0x08;
const GUEST_DATA_SELECTOR: u64 = 0x10;
const GUEST_TSS_SELECTOR: u64 = 0x18;
const FLAT_LIMIT: u64 = 0xffff_ffff;
const TSS_LIMIT: u64 = 0x67;
/// Instructions between preemption-timer exits (the scheduling slice) when
/// the manifest does not say.
pub const DEFAULT_TIMESLICE: u64 = 1_000_000;
/// Instructions between preemption-timer exits of a VM that has its core to
/// itself and no budget: nobody waits for the core, so the timer only
/// bounds how long a stop request (a broken ring) can go unseen.
pub const LONE_TIMESLICE: u64 = 50_000_000;
/// Instructions between timer exits of a VM alone on its core while
/// console text waits: about what a 115200-baud UART needs to send a
/// 16-byte FIFO-load at 100 M instructions per second.
pub const DRAIN_TIMESLICE: u64 = 150_000;

/// Reads the capability MSRs, only those this CPU has.
pub fn read_caps() -> RawCaps {
    let ecx = instr::cpuid(1, 0).ecx;
    let mut raw = RawCaps {
        cpuid_1_ecx: ecx,
        ..RawCaps::default()
    };
    if ecx & CPUID_ECX_VMX == 0 {
        return raw;
    }
    // SAFETY: with CPUID.1:ECX.VMX set, IA32_FEATURE_CONTROL and the basic
    // VMX capability MSRs 0x480-0x489 exist (SDM A.1); the TRUE_* MSRs exist
    // when VMX_BASIC bit 55 says so; PROCBASED_CTLS2 when the primary
    // controls allow secondary controls; EPT_VPID_CAP when EPT may be on.
    unsafe {
        raw.feature_control = rdmsr(msr::IA32_FEATURE_CONTROL);
        raw.basic = rdmsr(msr::IA32_VMX_BASIC);
        let true_msrs = raw.basic & BASIC_TRUE_CONTROLS != 0;
        let pick = |t, plain| if true_msrs { t } else { plain };
        raw.pin = rdmsr(pick(
            msr::IA32_VMX_TRUE_PINBASED_CTLS,
            msr::IA32_VMX_PINBASED_CTLS,
        ));
        raw.proc = rdmsr(pick(
            msr::IA32_VMX_TRUE_PROCBASED_CTLS,
            msr::IA32_VMX_PROCBASED_CTLS,
        ));
        raw.exit = rdmsr(pick(msr::IA32_VMX_TRUE_EXIT_CTLS, msr::IA32_VMX_EXIT_CTLS));
        raw.entry = rdmsr(pick(
            msr::IA32_VMX_TRUE_ENTRY_CTLS,
            msr::IA32_VMX_ENTRY_CTLS,
        ));
        raw.misc = rdmsr(msr::IA32_VMX_MISC);
        raw.cr0_fixed = (
            rdmsr(msr::IA32_VMX_CR0_FIXED0),
            rdmsr(msr::IA32_VMX_CR0_FIXED1),
        );
        raw.cr4_fixed = (
            rdmsr(msr::IA32_VMX_CR4_FIXED0),
            rdmsr(msr::IA32_VMX_CR4_FIXED1),
        );
        if (raw.proc >> 32) as u32 & ProcBased::SECONDARY_CONTROLS.bits() != 0 {
            raw.proc2 = rdmsr(msr::IA32_VMX_PROCBASED_CTLS2);
            if (raw.proc2 >> 32) as u32 & ProcBased2::ENABLE_EPT.bits() != 0 {
                raw.ept_vpid = rdmsr(msr::IA32_VMX_EPT_VPID_CAP);
            }
        }
    }
    raw
}

/// What every core's VMs share: the controls chosen for this CPU model, the
/// deny-all I/O and MSR bitmaps, and the scheduling slice.
pub struct VmxShared {
    /// The controls chosen for this CPU.
    pub config: VmxConfig,
    io_bitmaps: u64,
    msr_bitmap: u64,
    /// Preemption-timer value giving one slice.
    timer: u64,
    /// Preemption-timer value for a VM alone on its core.
    lone_timer: u64,
    /// Preemption-timer value for a VM alone while console text waits.
    drain_timer: u64,
    /// Instructions per slice.
    pub timeslice: u64,
}

impl VmxShared {
    /// The preemption-timer value for a slice: one scheduling slice when
    /// the VM shares its core or has a budget, a long one otherwise.
    /// The preemption-timer value for a slice of `ticks` instructions (a
    /// VM that overran its last slices gets a shorter one).
    pub fn timer_for(&self, ticks: u64) -> u64 {
        (ticks >> self.config.preemption_rate).clamp(1, u64::from(u32::MAX))
    }

    /// While console text waits and no core has fed the UART lately, a VM
    /// alone on its core gets a short one (about as long as the UART takes
    /// to send a FIFO-load), so its core does.
    pub fn timer_value(&self, long: bool, feed_console: bool) -> u64 {
        match (long, feed_console) {
            (_, true) => self.timer.min(self.drain_timer),
            (true, false) => self.lone_timer,
            (false, false) => self.timer,
        }
    }
}

/// Allocates the pages every VM shares; `timeslice` in instructions.
pub fn setup_shared(config: VmxConfig, timeslice: u64) -> Result<VmxShared, &'static str> {
    // I/O bitmaps A and B (2 pages) and the MSR bitmap (1 page): every bit
    // set, so every port and every MSR access exits and is denied.
    let io_bitmaps = memory::alloc_zeroed_pages(2).ok_or("no memory for the I/O bitmaps")?;
    let msr_bitmap = memory::alloc_zeroed_pages(1).ok_or("no memory for the MSR bitmap")?;
    // SAFETY: both allocations were just made here; nothing else refers to
    // them until their addresses go into a VMCS.
    unsafe {
        memory::fill(io_bitmaps, 2 * memory::PAGE, 0xff);
        memory::fill(msr_bitmap, memory::PAGE, 0xff);
    }
    let rate = u32::from(config.preemption_rate);
    Ok(VmxShared {
        config,
        io_bitmaps,
        msr_bitmap,
        timer: (timeslice >> rate).clamp(1, u64::from(u32::MAX)),
        lone_timer: (LONE_TIMESLICE.max(timeslice) >> rate).clamp(1, u64::from(u32::MAX)),
        drain_timer: (DRAIN_TIMESLICE >> rate).clamp(1, u64::from(u32::MAX)),
        timeslice,
    })
}

/// Enters VMX root operation on the calling core (SDM 24.7).
pub fn enable_core(shared: &VmxShared) -> Result<(), &'static str> {
    let config = &shared.config;
    let vmxon_region = memory::alloc_zeroed_pages(1).ok_or("no memory for the VMXON region")?;
    // SAFETY: the VMXON region was just allocated (page aligned) on this
    // core and is not yet handed to the CPU.
    unsafe { memory::write_u32(vmxon_region, config.revision) };
    // SAFETY: we run at CPL 0 on this core. IA32_FEATURE_CONTROL exists on
    // every VMX CPU; it is read on this core (firmware may differ per core)
    // and written only while unlocked. CR0/CR4 get the bits VMX requires
    // (FIXED0/FIXED1), which keep paging and protection on, plus what
    // FXSAVE/FXRSTOR of guest state need (EM and TS clear, OSFXSR set); the
    // hypervisor itself never uses the FPU or SSE. The VMXON region is a
    // fresh page holding the revision id.
    unsafe {
        let control = instr::rdmsr(msr::IA32_FEATURE_CONTROL);
        if control & caps::FEATURE_CONTROL_LOCKED == 0 {
            instr::wrmsr(
                msr::IA32_FEATURE_CONTROL,
                control | caps::FEATURE_CONTROL_LOCKED | caps::FEATURE_CONTROL_VMX_OUTSIDE_SMX,
            );
        } else if control & caps::FEATURE_CONTROL_VMX_OUTSIDE_SMX == 0 {
            return Err("VMX is disabled by firmware on this core");
        }
        instr::write_cr0(config.fix_cr0(instr::read_cr0() & !(CR0_EM | CR0_TS)));
        instr::write_cr4(
            config.fix_cr4(instr::read_cr4() | CR4_VMXE | CR4_OSFXSR | CR4_OSXMMEXCPT),
        );
        instr::vmxon(vmxon_region).map_err(|_| "VMXON failed")?;
    }
    Ok(())
}

/// Where a new guest starts.
pub struct Launch {
    /// EPT pointer.
    pub eptp: u64,
    /// Guest CR3.
    pub cr3: u64,
    /// Entry point.
    pub rip: u64,
    /// Initial stack pointer.
    pub rsp: u64,
    /// A Solo5 hvt guest: SSE enabled (CR4.OSFXSR, OSXMMEXCPT) and the GDT
    /// the hvt ABI puts at `vmm_abi::hvt::GDT_GPA`.
    pub hvt: bool,
}

/// Makes `vmcs` (a fresh page) the current VMCS and fills it for a 64-bit
/// guest. On error the caller frees the page.
pub fn prepare_vmcs(root: &VmxShared, vmcs: u64, l: &Launch) -> Result<(), VmFail> {
    // SAFETY: the VMCS page belongs to this VM, is page aligned, and is not
    // current on any core while its revision is written.
    unsafe { memory::write_u32(vmcs, root.config.revision) };
    let cfg = &root.config;
    let host = tables::host_tables();
    // SAFETY: `vmcs` is a page this VM owns with the revision id; the
    // control values were adjusted against the capability MSRs; the host
    // state is the hypervisor's own (tables, current CR0/3/4 and EFER); the
    // guest state describes a flat 64-bit guest confined by EPT.
    unsafe {
        instr::vmclear(vmcs)?;
        instr::vmptrld(vmcs)?;
        vmwrite(Control::PinBased, cfg.pin.into())?;
        vmwrite(Control::ProcBased, cfg.proc.into())?;
        vmwrite(Control::ProcBased2, cfg.proc2.into())?;
        vmwrite(Control::ExitControls, cfg.exit.into())?;
        vmwrite(Control::EntryControls, cfg.entry.into())?;
        vmwrite(Control::ExceptionBitmap, 0)?;
        vmwrite(Control::PageFaultErrorCodeMask, 0)?;
        vmwrite(Control::PageFaultErrorCodeMatch, 0)?;
        vmwrite(Control::TscOffset, 0)?;
        vmwrite(Control::Cr3TargetCount, 0)?;
        vmwrite(Control::ExitMsrStoreCount, 0)?;
        vmwrite(Control::ExitMsrLoadCount, 0)?;
        vmwrite(Control::EntryMsrLoadCount, 0)?;
        vmwrite(Control::EntryInterruptInfo, 0)?;
        vmwrite(Control::IoBitmapA, root.io_bitmaps)?;
        vmwrite(Control::IoBitmapB, root.io_bitmaps + memory::PAGE)?;
        vmwrite(Control::MsrBitmap, root.msr_bitmap)?;
        vmwrite(Control::EptPointer, l.eptp)?;
        vmwrite(Control::Cr0Mask, 0)?;
        vmwrite(Control::Cr0ReadShadow, 0)?;
        vmwrite(Control::Cr4Mask, CR4_HOST_OWNED)?;
        vmwrite(Control::Cr4ReadShadow, 0)?;

        vmwrite(Host::Cr0, instr::read_cr0())?;
        vmwrite(Host::Cr3, instr::read_cr3())?;
        vmwrite(Host::Cr4, instr::read_cr4())?;
        vmwrite(Host::CsSelector, CODE_SELECTOR.into())?;
        for f in [
            Host::SsSelector,
            Host::DsSelector,
            Host::EsSelector,
            Host::FsSelector,
            Host::GsSelector,
        ] {
            vmwrite(f, DATA_SELECTOR.into())?;
        }
        vmwrite(Host::TrSelector, TSS_SELECTOR.into())?;
        vmwrite(Host::FsBase, 0)?;
        vmwrite(Host::GsBase, 0)?;
        vmwrite(Host::TrBase, host.tss)?;
        vmwrite(Host::GdtrBase, host.gdt)?;
        vmwrite(Host::IdtrBase, host.idt)?;
        vmwrite(Host::SysenterCs, 0)?;
        vmwrite(Host::SysenterEsp, 0)?;
        vmwrite(Host::SysenterEip, 0)?;
        vmwrite(Host::Ia32Efer, rdmsr(msr::IA32_EFER))?;

        vmwrite(
            Guest::Cr0,
            cfg.fix_cr0(CR0_PE | CR0_ET | CR0_NE | CR0_WP | CR0_PG),
        )?;
        vmwrite(Guest::Cr3, l.cr3)?;
        let sse = if l.hvt {
            CR4_OSFXSR | CR4_OSXMMEXCPT
        } else {
            0
        };
        vmwrite(Guest::Cr4, cfg.fix_cr4(CR4_PAE | CR4_VMXE | sse))?;
        vmwrite(Guest::Ia32Efer, EFER_LME | EFER_LMA)?;
        vmwrite(Guest::CsSelector, GUEST_CODE_SELECTOR)?;
        vmwrite(Guest::CsBase, 0)?;
        vmwrite(Guest::CsLimit, FLAT_LIMIT)?;
        vmwrite(Guest::CsAccessRights, AR_CODE64)?;
        for (sel, base, limit, ar) in [
            (
                Guest::SsSelector,
                Guest::SsBase,
                Guest::SsLimit,
                Guest::SsAccessRights,
            ),
            (
                Guest::DsSelector,
                Guest::DsBase,
                Guest::DsLimit,
                Guest::DsAccessRights,
            ),
            (
                Guest::EsSelector,
                Guest::EsBase,
                Guest::EsLimit,
                Guest::EsAccessRights,
            ),
            (
                Guest::FsSelector,
                Guest::FsBase,
                Guest::FsLimit,
                Guest::FsAccessRights,
            ),
            (
                Guest::GsSelector,
                Guest::GsBase,
                Guest::GsLimit,
                Guest::GsAccessRights,
            ),
        ] {
            vmwrite(sel, GUEST_DATA_SELECTOR)?;
            vmwrite(base, 0)?;
            vmwrite(limit, FLAT_LIMIT)?;
            vmwrite(ar, AR_DATA)?;
        }
        vmwrite(Guest::TrSelector, GUEST_TSS_SELECTOR)?;
        vmwrite(Guest::TrBase, 0)?;
        vmwrite(Guest::TrLimit, TSS_LIMIT)?;
        vmwrite(Guest::TrAccessRights, AR_TSS_BUSY)?;
        vmwrite(Guest::LdtrSelector, 0)?;
        vmwrite(Guest::LdtrBase, 0)?;
        vmwrite(Guest::LdtrLimit, 0)?;
        vmwrite(Guest::LdtrAccessRights, AR_UNUSABLE)?;
        // No IDT: any guest exception escalates to a triple fault (an exit)
        // until the guest loads its own.
        let (gdt, gdt_limit) = if l.hvt {
            (vmm_abi::hvt::GDT_GPA, u64::from(vmm_abi::hvt::GDT_LIMIT))
        } else {
            (0, 0)
        };
        vmwrite(Guest::GdtrBase, gdt)?;
        vmwrite(Guest::GdtrLimit, gdt_limit)?;
        vmwrite(Guest::IdtrBase, 0)?;
        vmwrite(Guest::IdtrLimit, 0)?;
        vmwrite(Guest::Dr7, DR7_INIT)?;
        vmwrite(Guest::Rflags, RFLAGS_FIXED)?;
        vmwrite(Guest::Rsp, l.rsp)?;
        vmwrite(Guest::Rip, l.rip)?;
        vmwrite(Guest::VmcsLinkPointer, VMCS_LINK_NONE)?;
        vmwrite(Guest::Ia32Debugctl, 0)?;
        vmwrite(Guest::InterruptibilityState, 0)?;
        vmwrite(Guest::ActivityState, 0)?;
        vmwrite(Guest::PendingDebugExceptions, 0)?;
        vmwrite(Guest::SysenterCs, 0)?;
        vmwrite(Guest::SysenterEsp, 0)?;
        vmwrite(Guest::SysenterEip, 0)?;
        vmwrite(Guest::PreemptionTimerValue, root.timer)?;
    }
    instr::invept_all_contexts()
}

const HOST_RSP: u64 = Host::Rsp as u64;
const HOST_RIP: u64 = Host::Rip as u64;

/// Enters the guest of the current VMCS with `regs` (VMLAUNCH the first
/// time, VMRESUME after) and returns on its next VM exit with the guest's
/// registers saved back into `regs`. Returns 0 after a VM exit, 1 when the
/// VM-entry instruction itself failed (read the VM-instruction error).
///
/// # Safety
/// A VMCS prepared by [`prepare_vmcs`] must be current on this CPU, and
/// `regs` must be valid for reads and writes.
#[unsafe(naked)]
pub unsafe extern "C" fn enter(regs: *mut GuestRegs, launched: u64) -> u64 {
    naked_asm!(
        // Host callee-saved registers, then the regs pointer on top: the
        // exit path finds it at HOST_RSP.
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "push rdi",
        "mov rax, {host_rsp}",
        "vmwrite rax, rsp",
        "jbe 4f",
        "lea rcx, [rip + 5f]",
        "mov rax, {host_rip}",
        "vmwrite rax, rcx",
        "jbe 4f",
        "test rsi, rsi",
        "mov rax, [rdi + {rax}]",
        "mov rbx, [rdi + {rbx}]",
        "mov rcx, [rdi + {rcx}]",
        "mov rdx, [rdi + {rdx}]",
        "mov rsi, [rdi + {rsi}]",
        "mov rbp, [rdi + {rbp}]",
        "mov r8, [rdi + {r8}]",
        "mov r9, [rdi + {r9}]",
        "mov r10, [rdi + {r10}]",
        "mov r11, [rdi + {r11}]",
        "mov r12, [rdi + {r12}]",
        "mov r13, [rdi + {r13}]",
        "mov r14, [rdi + {r14}]",
        "mov r15, [rdi + {r15}]",
        "mov rdi, [rdi + {rdi}]",
        "jnz 3f",
        "vmlaunch",
        "jmp 4f",
        "3:",
        "vmresume",
        // VM entry failed: the guest never ran.
        "4:",
        "pop rdi",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "mov eax, 1",
        "ret",
        // VM exit: RSP = HOST_RSP, guest registers live.
        "5:",
        "push rdi",
        "mov rdi, [rsp + 8]",
        "mov [rdi + {rax}], rax",
        "mov [rdi + {rbx}], rbx",
        "mov [rdi + {rcx}], rcx",
        "mov [rdi + {rdx}], rdx",
        "mov [rdi + {rsi}], rsi",
        "mov [rdi + {rbp}], rbp",
        "mov [rdi + {r8}], r8",
        "mov [rdi + {r9}], r9",
        "mov [rdi + {r10}], r10",
        "mov [rdi + {r11}], r11",
        "mov [rdi + {r12}], r12",
        "mov [rdi + {r13}], r13",
        "mov [rdi + {r14}], r14",
        "mov [rdi + {r15}], r15",
        "pop rax",
        "mov [rdi + {rdi}], rax",
        "pop rdi",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "xor eax, eax",
        "ret",
        host_rsp = const HOST_RSP,
        host_rip = const HOST_RIP,
        rax = const offset_of!(GuestRegs, rax),
        rbx = const offset_of!(GuestRegs, rbx),
        rcx = const offset_of!(GuestRegs, rcx),
        rdx = const offset_of!(GuestRegs, rdx),
        rsi = const offset_of!(GuestRegs, rsi),
        rdi = const offset_of!(GuestRegs, rdi),
        rbp = const offset_of!(GuestRegs, rbp),
        r8 = const offset_of!(GuestRegs, r8),
        r9 = const offset_of!(GuestRegs, r9),
        r10 = const offset_of!(GuestRegs, r10),
        r11 = const offset_of!(GuestRegs, r11),
        r12 = const offset_of!(GuestRegs, r12),
        r13 = const offset_of!(GuestRegs, r13),
        r14 = const offset_of!(GuestRegs, r14),
        r15 = const offset_of!(GuestRegs, r15),
    )
}
