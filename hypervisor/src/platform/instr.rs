//! Every privileged instruction the hypervisor executes (but the
//! descriptor-table loads in `tables.rs`), each in a small wrapper that
//! states its contract: port I/O, MSRs, control registers, HLT and CLI
//! through the `x86_64` crate, CPUID through `raw-cpuid`, the rest (RDTSC,
//! FXSAVE/FXRSTOR, the CR2 write, VMX) written here. Invariant for the whole
//! module: the caller runs at CPL 0 in 64-bit mode with the hypervisor's
//! identity map; the VMX wrappers also need VMX root operation (after
//! [`vmxon`]). VMX wrappers capture the VMfail flags in the same `asm!`
//! block as the instruction (SDM 31.2).

use crate::cpuid::CpuidResult;
use crate::vmx::fields::{Readable, Writable};
use core::arch::asm;
use x86_64::registers::control::{Cr0, Cr2, Cr3, Cr4};
use x86_64::registers::model_specific::Msr;
use x86_64::structures::port::{PortRead, PortWrite};

/// A failed VMX instruction (SDM 31.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmFail {
    /// VMfailInvalid: no current VMCS (CF = 1).
    Invalid,
    /// VMfailValid: the error number is in the VM-instruction error field (ZF = 1).
    Valid,
}

fn vm_result(cf: u8, zf: u8) -> Result<(), VmFail> {
    match (cf, zf) {
        (0, 0) => Ok(()),
        (0, _) => Err(VmFail::Valid),
        _ => Err(VmFail::Invalid),
    }
}

/// Writes a byte to an I/O port.
///
/// # Safety
/// The port must be one the hypervisor owns (the serial port, the PIC);
/// writing it must not break memory safety.
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller guarantees the port is ours; OUT touches no memory.
    unsafe { u8::write_to_port(port, value) };
}

/// Reads a byte from an I/O port.
///
/// # Safety
/// As for [`outb`].
pub unsafe fn inb(port: u16) -> u8 {
    // SAFETY: the caller guarantees the port is ours; IN touches no memory.
    unsafe { u8::read_from_port(port) }
}

/// Writes a dword to an I/O port.
///
/// # Safety
/// As for [`outb`] (PCI configuration space: 0xCF8/0xCFC).
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: the caller guarantees the port is ours; OUT touches no memory.
    unsafe { u32::write_to_port(port, value) };
}

/// Reads a dword from an I/O port.
///
/// # Safety
/// As for [`outb`].
pub unsafe fn inl(port: u16) -> u32 {
    // SAFETY: the caller guarantees the port is ours; IN touches no memory.
    unsafe { u32::read_from_port(port) }
}

/// Reads an MSR.
///
/// # Safety
/// The MSR must exist on this CPU (otherwise RDMSR raises #GP).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    // SAFETY: the caller guarantees the MSR exists; RDMSR touches no memory.
    unsafe { Msr::new(msr).read() }
}

/// Writes an MSR.
///
/// # Safety
/// The MSR must exist and the value must be valid and keep the hypervisor's
/// own state (paging, EFER) consistent.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller guarantees the write is valid and harmless to us.
    unsafe { Msr::new(msr).write(value) };
}

/// Reads CR0.
pub fn read_cr0() -> u64 {
    Cr0::read_raw()
}

/// Reads CR3: the page-table base and the PWT/PCD bits, as the VMCS host
/// state takes it.
pub fn read_cr3() -> u64 {
    let (frame, low_bits) = Cr3::read_raw();
    frame.start_address().as_u64() | u64::from(low_bits)
}

/// Reads CR4.
pub fn read_cr4() -> u64 {
    Cr4::read_raw()
}

/// Writes CR0.
///
/// # Safety
/// The value must keep protection, paging and caching as the hypervisor
/// relies on (only VMX fixed bits are changed by the caller).
pub unsafe fn write_cr0(v: u64) {
    // SAFETY: the caller guarantees the new value keeps our environment intact.
    unsafe { Cr0::write_raw(v) };
}

/// Writes CR4.
///
/// # Safety
/// As for [`write_cr0`].
pub unsafe fn write_cr4(v: u64) {
    // SAFETY: the caller guarantees the new value keeps our environment intact.
    unsafe { Cr4::write_raw(v) };
}

/// Executes CPUID (through raw-cpuid's reader, which also decodes the
/// answers for the host feature checks).
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    raw_cpuid::native_cpuid::cpuid_count(leaf, subleaf)
}

/// Reads the time-stamp counter (one tick per instruction under Bochs).
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the counter.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Reads CR2 (the faulting address of the last page fault).
pub fn read_cr2() -> u64 {
    Cr2::read_raw()
}

/// Writes CR2 (the `x86_64` crate only reads it).
///
/// # Safety
/// CR2 only records page-fault addresses; the caller must not rely on its
/// old value afterwards.
pub unsafe fn write_cr2(v: u64) {
    // SAFETY: CR2 is a plain register the CPU writes on page faults; the
    // hypervisor never reads it except to report its own faults.
    unsafe { asm!("mov cr2, {}", in(reg) v, options(nomem, nostack, preserves_flags)) };
}

/// The 512-byte FXSAVE area (x87, MMX, SSE state), 16-byte aligned.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub struct FxArea(pub [u8; 512]);

/// Saves the x87/MMX/SSE state into `area` (FXSAVE64).
pub fn fxsave(area: &mut FxArea) {
    // SAFETY: `area` is a valid, 16-byte aligned 512-byte buffer; CR0.EM and
    // CR0.TS are clear and CR4.OSFXSR set on every core (`vmx::enable_core`).
    unsafe {
        asm!("fxsave64 [{}]", in(reg) area.0.as_mut_ptr(), options(nostack, preserves_flags))
    };
}

/// Loads the x87/MMX/SSE state from `area` (FXRSTOR64).
pub fn fxrstor(area: &FxArea) {
    // SAFETY: as for `fxsave`; `area` holds a state produced by FXSAVE or the
    // clean template (valid MXCSR, so no #GP).
    unsafe { asm!("fxrstor64 [{}]", in(reg) area.0.as_ptr(), options(nostack, preserves_flags)) };
}

/// Enters VMX root operation with the VMXON region at physical `region`.
///
/// # Safety
/// `region` must be a 4 KiB-aligned page holding the VMCS revision id,
/// owned by this CPU forever; CR0/CR4 must satisfy the VMX fixed bits.
pub unsafe fn vmxon(region: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: the caller guarantees the region and control-register state.
    unsafe {
        asm!("vmxon [{r}]", "setc {cf}", "setz {zf}", r = in(reg) &region, cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack))
    };
    vm_result(cf, zf)
}

/// VMCLEAR: flushes the VMCS at physical `vmcs` and marks it clear.
///
/// # Safety
/// `vmcs` must be a VMCS region owned by the caller.
pub unsafe fn vmclear(vmcs: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: the caller guarantees the region is a VMCS it owns.
    unsafe {
        asm!("vmclear [{r}]", "setc {cf}", "setz {zf}", r = in(reg) &vmcs, cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack))
    };
    vm_result(cf, zf)
}

/// VMPTRLD: makes the VMCS at physical `vmcs` current.
///
/// # Safety
/// `vmcs` must be a VMCS region owned by the caller, with its revision id.
pub unsafe fn vmptrld(vmcs: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: the caller guarantees the region is a VMCS it owns.
    unsafe {
        asm!("vmptrld [{r}]", "setc {cf}", "setz {zf}", r = in(reg) &vmcs, cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack))
    };
    vm_result(cf, zf)
}

/// Reads a field of the current VMCS.
pub fn vmread(field: impl Readable) -> Result<u64, VmFail> {
    let (value, cf, zf): (u64, u8, u8);
    // SAFETY: VMREAD only reads the current VMCS into a register; outside VMX
    // operation or without a current VMCS it fails (reported) or raises #UD,
    // which the module invariant rules out.
    unsafe {
        asm!("vmread {v}, {f}", "setc {cf}", "setz {zf}", f = in(reg) u64::from(field.encoding()), v = out(reg) value, cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nomem, nostack))
    };
    vm_result(cf, zf).map(|()| value)
}

/// Writes a field of the current VMCS.
///
/// # Safety
/// The value must be one the hypervisor means the CPU to use; host-state
/// and control fields decide what runs after the next VM exit.
pub unsafe fn vmwrite(field: impl Writable, value: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: the caller vouches for the value; VMWRITE only changes the VMCS.
    unsafe {
        asm!("vmwrite {f}, {v}", "setc {cf}", "setz {zf}", f = in(reg) u64::from(field.encoding()), v = in(reg) value, cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack))
    };
    vm_result(cf, zf)
}

/// INVEPT type 2: invalidate EPT-derived mappings for all EPTPs.
pub fn invept_all_contexts() -> Result<(), VmFail> {
    const ALL_CONTEXTS: u64 = 2;
    let descriptor = [0u64; 2];
    let (cf, zf): (u8, u8);
    // SAFETY: INVEPT only drops cached translations (capability checked
    // before VMX is enabled); the descriptor is a valid 16-byte operand.
    unsafe {
        asm!("invept {t}, [{d}]", "setc {cf}", "setz {zf}", t = in(reg) ALL_CONTEXTS, d = in(reg) &descriptor, cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack))
    };
    vm_result(cf, zf)
}

/// Halts until the next interrupt (with interrupts off: forever).
pub fn hlt() {
    x86_64::instructions::hlt();
}

/// Disables interrupts (the hypervisor runs with them off; this keeps it so).
pub fn cli() {
    x86_64::instructions::interrupts::disable();
}

/// `xchg bx, bx`: Bochs' magic breakpoint (its debugger then quits with
/// status 0); a no-op on real hardware.
pub fn magic_break() {
    x86_64::instructions::bochs_breakpoint();
}
