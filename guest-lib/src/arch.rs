//! The x86 instructions guest-lib needs, each in one small wrapper: `vmcall`,
//! `rdtsc` and `ud2`. Guests run at CPL0 in 64-bit mode (see
//! `vmm_abi::layout` and the entry contract), which all of these require or
//! allow.

use core::arch::asm;

/// Executes `vmcall` with the Corral register convention (see
/// [`vmm_abi::hypercall`]): RAX = number, RDI/RSI/RDX = arguments, result in
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
