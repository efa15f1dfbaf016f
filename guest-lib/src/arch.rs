//! The x86 instructions guest-lib needs, each in one small wrapper: `vmcall`,
//! `rdtsc`, `ud2`, and the `mov` forms for device registers. Guests run at CPL0 in 64-bit mode (see
//! `vmm_abi::corral::layout` and the entry contract), which all of these require or
//! allow.

use core::arch::asm;

/// Executes `vmcall` with the Corral register convention (see
/// [`vmm_abi::corral::hypercall`]): RAX = number, RDI/RSI/RDX = arguments, result in
/// RAX.
#[inline]
pub(crate) fn vmcall(nr: u64, a0: u64, a1: u64, a2: u64) -> u64 {
    let result: u64;
    // SAFETY: `vmcall` exits to the hypervisor, which by the vmm-abi contract
    // preserves every register except RAX (declared as the output here) and
    // either returns or stops this guest. No call of the ABI writes guest
    // memory: ConsoleWrite and Metric only read the buffers they are
    // given (the default asm memory clobber makes earlier writes to them
    // visible), so no Rust object can change behind the compiler's back. The
    // instruction does not touch the stack. Flags are not assumed preserved.
    unsafe {
        asm!(
            "vmcall",
            inlateout("rax") nr => result,
            in("rdi") a0,
            in("rsi") a1,
            in("rdx") a2,
            options(nostack),
        );
    }
    result
}

/// Reads the time-stamp counter.
#[cfg(any(target_os = "none", feature = "time"))]
#[inline]
pub(crate) fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: `rdtsc` only writes EDX:EAX (declared as outputs); it reads no
    // memory, does not touch the stack and leaves the flags alone. It is
    // allowed at CPL0 whatever CR4.TSD says.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Raises an invalid-opcode exception. A Corral guest has no IDT, so this
/// escalates to a triple fault and the hypervisor stops the guest; used only
/// where the hypervisor failed to stop it by other means.
pub(crate) fn invalid_opcode() -> ! {
    // SAFETY: `ud2` touches no memory or registers; it only raises #UD,
    // which without an IDT becomes a triple fault that ends this guest, so
    // control never comes back (`noreturn`).
    unsafe { asm!("ud2", options(noreturn, nomem, nostack)) }
}

// Device-register accesses. Each is exactly one `mov` (or `movzx` for the
// narrow loads) with a register and a memory operand: the forms the
// hypervisor decodes when it emulates an access to a virtio-mmio page. A
// plain volatile access does not guarantee that (the compiler may fold a
// volatile load into `cmp` or `test`, which the hypervisor refuses). No
// `nomem`/`readonly` option: each also orders the compiler's memory
// accesses around it, as a device register access must (ring contents
// written before a notify register is written).

/// Loads the byte at `src` with `movzx r32, byte ptr [src]`.
///
/// # Safety
///
/// `src` must be valid for a one-byte read (a device register, or memory
/// that no one writes concurrently).
#[inline]
pub(crate) unsafe fn mmio_read_u8(src: *const u8) -> u8 {
    let value: u32;
    // SAFETY: the caller guarantees `src` is readable; the instruction
    // writes only the output register and leaves the flags alone.
    unsafe {
        asm!("movzx {v:e}, byte ptr [{src}]", v = out(reg) value, src = in(reg) src,
            options(nostack, preserves_flags));
    }
    value as u8
}

/// Loads the `u16` at `src` with `movzx r32, word ptr [src]`.
///
/// # Safety
///
/// As [`mmio_read_u8`], for two bytes, aligned.
#[inline]
pub(crate) unsafe fn mmio_read_u16(src: *const u16) -> u16 {
    let value: u32;
    // SAFETY: the caller guarantees `src` is readable and aligned; the
    // instruction writes only the output register and leaves the flags alone.
    unsafe {
        asm!("movzx {v:e}, word ptr [{src}]", v = out(reg) value, src = in(reg) src,
            options(nostack, preserves_flags));
    }
    value as u16
}

/// Loads the `u32` at `src` with `mov r32, dword ptr [src]`.
///
/// # Safety
///
/// As [`mmio_read_u8`], for four bytes, aligned.
#[inline]
pub(crate) unsafe fn mmio_read_u32(src: *const u32) -> u32 {
    let value: u32;
    // SAFETY: the caller guarantees `src` is readable and aligned; the
    // instruction writes only the output register and leaves the flags alone.
    unsafe {
        asm!("mov {v:e}, dword ptr [{src}]", v = out(reg) value, src = in(reg) src,
            options(nostack, preserves_flags));
    }
    value
}

/// Loads the `u64` at `src` with `mov r64, qword ptr [src]`.
///
/// # Safety
///
/// As [`mmio_read_u8`], for eight bytes, aligned.
#[inline]
pub(crate) unsafe fn mmio_read_u64(src: *const u64) -> u64 {
    let value: u64;
    // SAFETY: the caller guarantees `src` is readable and aligned; the
    // instruction writes only the output register and leaves the flags alone.
    unsafe {
        asm!("mov {v:r}, qword ptr [{src}]", v = out(reg) value, src = in(reg) src,
            options(nostack, preserves_flags));
    }
    value
}

/// Stores `value` at `dst` with `mov byte ptr [dst], r8`.
///
/// # Safety
///
/// `dst` must be valid for a one-byte write (a device register, or memory
/// no Rust reference covers).
#[inline]
pub(crate) unsafe fn mmio_write_u8(dst: *mut u8, value: u8) {
    // SAFETY: the caller guarantees `dst` is writable; the instruction
    // touches nothing else and leaves the flags alone.
    unsafe {
        asm!("mov byte ptr [{dst}], {v}", dst = in(reg) dst, v = in(reg_byte) value,
            options(nostack, preserves_flags));
    }
}

/// Stores `value` at `dst` with `mov word ptr [dst], r16`.
///
/// # Safety
///
/// As [`mmio_write_u8`], for two bytes, aligned.
#[inline]
pub(crate) unsafe fn mmio_write_u16(dst: *mut u16, value: u16) {
    // SAFETY: the caller guarantees `dst` is writable and aligned; the
    // instruction touches nothing else and leaves the flags alone.
    unsafe {
        asm!("mov word ptr [{dst}], {v:x}", dst = in(reg) dst, v = in(reg) value,
            options(nostack, preserves_flags));
    }
}

/// Stores `value` at `dst` with `mov dword ptr [dst], r32`.
///
/// # Safety
///
/// As [`mmio_write_u8`], for four bytes, aligned.
#[inline]
pub(crate) unsafe fn mmio_write_u32(dst: *mut u32, value: u32) {
    // SAFETY: the caller guarantees `dst` is writable and aligned; the
    // instruction touches nothing else and leaves the flags alone.
    unsafe {
        asm!("mov dword ptr [{dst}], {v:e}", dst = in(reg) dst, v = in(reg) value,
            options(nostack, preserves_flags));
    }
}

/// Stores `value` at `dst` with `mov qword ptr [dst], r64`.
///
/// # Safety
///
/// As [`mmio_write_u8`], for eight bytes, aligned.
#[inline]
pub(crate) unsafe fn mmio_write_u64(dst: *mut u64, value: u64) {
    // SAFETY: the caller guarantees `dst` is writable and aligned; the
    // instruction touches nothing else and leaves the flags alone.
    unsafe {
        asm!("mov qword ptr [{dst}], {v:r}", dst = in(reg) dst, v = in(reg) value,
            options(nostack, preserves_flags));
    }
}
