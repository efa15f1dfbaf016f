//! Deliberate faults for hostile images: a triple fault (load an empty IDT
//! and execute `ud2`; the exception cannot be delivered, so the CPU
//! escalates to a triple fault, which exits to the hypervisor), and a write
//! to the image's own code, which the hypervisor shares read-only between
//! the VMs of an image. Either must stop this guest, and only this guest.

use core::arch::asm;

/// The operand of `lidt`: a 16-bit limit and a 64-bit base (Intel SDM vol.
/// 3A, 6.10).
#[repr(C, packed)]
struct DescriptorTablePointer {
    limit: u16,
    base: u64,
}

/// An IDT with no entries: every exception escalates to a triple fault.
const EMPTY_IDT: DescriptorTablePointer = DescriptorTablePointer { limit: 0, base: 0 };

/// Loads an empty IDT and executes `ud2`. Returns only if the hypervisor
/// wrongly lets the guest go on after the triple fault; callers then report
/// that and exit with a failure code.
pub fn triple_fault() {
    let idt = EMPTY_IDT;
    // SAFETY: `lidt` at CPL0 reads the 10-byte operand (a live local) and
    // only changes how later exceptions are delivered: with a zero limit
    // they all become triple faults, which is the point, and interrupts are
    // off so nothing else is delivered. `ud2` then raises #UD. Neither
    // writes memory or the stack. If the hypervisor wrongly lets execution
    // continue, nothing Rust relies on has changed. (Images run at CPL0;
    // host builds compile this but never call it.)
    unsafe {
        asm!("lidt [{idt}]", "ud2", idt = in(reg) &raw const idt,
            options(readonly, nostack, preserves_flags));
    }
}

/// Writes to this image's own code: reads the first byte of a function and
/// stores the same value back. The code page is shared read-only by every
/// VM of the image, so the store is an EPT violation and the hypervisor must
/// stop this guest. Returns only if it wrongly lets the write through; the
/// byte is unchanged even then.
pub fn write_own_code() {
    let target = write_own_code as *const () as *mut u8;
    // SAFETY: `target` is the first byte of this function, inside the
    // image's loaded code (identity-mapped guest memory, readable). The store
    // writes back the value just read, so even if the hypervisor allowed it
    // no instruction would change; volatile keeps the compiler from removing
    // the "useless" store, which is the whole point.
    unsafe {
        let byte = target.read_volatile();
        target.write_volatile(byte);
    }
}
