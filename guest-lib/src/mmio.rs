//! Loads and stores for device registers that the hypervisor can emulate.
//!
//! Every access to a device page (`vmm_abi::corral::layout::device_gpa`) leaves the
//! guest through an EPT violation, and the hypervisor decodes the faulting
//! instruction; it understands `mov` and `movzx` of 1, 2 and 4 bytes with a
//! register and a memory operand, and stops the guest on anything else. A
//! Rust volatile access does not promise that form (the compiler may fold a
//! volatile load into a `cmp`), so device registers are touched only
//! through these functions, each exactly one such instruction (the 8-byte
//! forms exist for completeness; virtio-mmio registers are 4 bytes wide).
//! With feature `net` or `virtio-console` they are also the MMIO backend of
//! `safe-mmio`, which `virtio-drivers`' MMIO transport uses.
//!
//! Each is also a compiler barrier: memory writes before it in program
//! order are emitted before it (x86 keeps stores in order, so a device sees
//! ring contents written before a notify register).

use crate::arch;

/// Reads the byte register at `src`.
///
/// # Safety
///
/// `src` must be a device register or memory valid for reads that nothing
/// writes concurrently.
#[inline]
pub unsafe fn read_u8(src: *const u8) -> u8 {
    // SAFETY: the caller's guarantee is the wrapper's requirement.
    unsafe { arch::mmio_read_u8(src) }
}

/// Reads the 16-bit register at `src`.
///
/// # Safety
///
/// As [`read_u8`]; `src` is 2-byte aligned.
#[inline]
pub unsafe fn read_u16(src: *const u16) -> u16 {
    // SAFETY: the caller's guarantee is the wrapper's requirement.
    unsafe { arch::mmio_read_u16(src) }
}

/// Reads the 32-bit register at `src`.
///
/// # Safety
///
/// As [`read_u8`]; `src` is 4-byte aligned.
#[inline]
pub unsafe fn read_u32(src: *const u32) -> u32 {
    // SAFETY: the caller's guarantee is the wrapper's requirement.
    unsafe { arch::mmio_read_u32(src) }
}

/// Reads the 64-bit value at `src` (one 8-byte `mov`).
///
/// # Safety
///
/// As [`read_u8`]; `src` is 8-byte aligned.
#[inline]
pub unsafe fn read_u64(src: *const u64) -> u64 {
    // SAFETY: the caller's guarantee is the wrapper's requirement.
    unsafe { arch::mmio_read_u64(src) }
}

/// Writes the byte register at `dst`.
///
/// # Safety
///
/// `dst` must be a device register or memory valid for writes that no Rust
/// reference covers.
#[inline]
pub unsafe fn write_u8(dst: *mut u8, value: u8) {
    // SAFETY: the caller's guarantee is the wrapper's requirement.
    unsafe { arch::mmio_write_u8(dst, value) }
}

/// Writes the 16-bit register at `dst`.
///
/// # Safety
///
/// As [`write_u8`]; `dst` is 2-byte aligned.
#[inline]
pub unsafe fn write_u16(dst: *mut u16, value: u16) {
    // SAFETY: the caller's guarantee is the wrapper's requirement.
    unsafe { arch::mmio_write_u16(dst, value) }
}

/// Writes the 32-bit register at `dst`.
///
/// # Safety
///
/// As [`write_u8`]; `dst` is 4-byte aligned.
#[inline]
pub unsafe fn write_u32(dst: *mut u32, value: u32) {
    // SAFETY: the caller's guarantee is the wrapper's requirement.
    unsafe { arch::mmio_write_u32(dst, value) }
}

/// Writes the 64-bit value at `dst` (one 8-byte `mov`).
///
/// # Safety
///
/// As [`write_u8`]; `dst` is 8-byte aligned.
#[inline]
pub unsafe fn write_u64(dst: *mut u64, value: u64) {
    // SAFETY: the caller's guarantee is the wrapper's requirement.
    unsafe { arch::mmio_write_u64(dst, value) }
}

/// `safe-mmio`'s backend: its `UniqueMmioPointer` reads and writes (what
/// `virtio-drivers`' MMIO transport does) go through the functions above.
#[cfg(any(feature = "net", feature = "virtio-console"))]
mod safe_mmio_backend {
    use safe_mmio::MmioOps;

    /// The functions of this module as `safe-mmio` ops.
    struct CorralMmio;

    impl MmioOps for CorralMmio {
        unsafe fn read_u8(src: *const u8) -> u8 {
            // SAFETY: `safe-mmio` passes a valid, aligned MMIO pointer.
            unsafe { super::read_u8(src) }
        }
        unsafe fn read_u16(src: *const u16) -> u16 {
            // SAFETY: as above.
            unsafe { super::read_u16(src) }
        }
        unsafe fn read_u32(src: *const u32) -> u32 {
            // SAFETY: as above.
            unsafe { super::read_u32(src) }
        }
        unsafe fn read_u64(src: *const u64) -> u64 {
            // SAFETY: as above.
            unsafe { super::read_u64(src) }
        }
        unsafe fn write_u8(dst: *mut u8, value: u8) {
            // SAFETY: as above.
            unsafe { super::write_u8(dst, value) }
        }
        unsafe fn write_u16(dst: *mut u16, value: u16) {
            // SAFETY: as above.
            unsafe { super::write_u16(dst, value) }
        }
        unsafe fn write_u32(dst: *mut u32, value: u32) {
            // SAFETY: as above.
            unsafe { super::write_u32(dst, value) }
        }
        unsafe fn write_u64(dst: *mut u64, value: u64) {
            // SAFETY: as above.
            unsafe { super::write_u64(dst, value) }
        }
    }

    safe_mmio::set_mmio_ops!(CorralMmio);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_width_round_trips_through_memory() {
        let mut word: u64 = 0;
        let p = &raw mut word;
        // SAFETY: `p` points to a live, aligned local that no reference
        // covers while these run.
        unsafe {
            write_u64(p, 0x1122_3344_5566_7788);
            assert_eq!(read_u64(p), 0x1122_3344_5566_7788);
            write_u32(p.cast(), 0xdead_beef);
            assert_eq!(read_u32(p.cast()), 0xdead_beef);
            write_u16(p.cast(), 0xabcd);
            assert_eq!(read_u16(p.cast()), 0xabcd);
            write_u8(p.cast(), 0x5a);
            assert_eq!(read_u8(p.cast()), 0x5a);
        }
        assert_eq!(word, 0x1122_3344_dead_ab5a);
    }
}
