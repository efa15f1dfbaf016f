//! The global allocator (feature `alloc`): `talc` over the heap region the
//! boot info describes, claimed once at boot by the entry path.
//!
//! Guests are single-threaded with interrupts off, so the spin lock around
//! the allocator is never contended; it only makes the static `Sync`.

use core::fmt;
use vmm_abi::corral::layout::STACK_SIZE;

/// Why the heap the boot info describes cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapError {
    /// The heap starts below the end of the loaded image.
    OverlapsImage {
        /// First byte of the heap.
        heap_start: u64,
        /// First byte after the image (its `.bss` included).
        image_end: u64,
    },
    /// The heap reaches into the stack region below `stack_top`.
    OverlapsStack {
        /// First byte after the heap.
        heap_end: u64,
        /// Lowest byte of the stack region.
        stack_bottom: u64,
    },
    /// The allocator could not use the region (too small for its metadata).
    TooSmall(u64),
    /// The heap was already set up.
    AlreadyClaimed,
}

impl fmt::Display for HeapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HeapError::OverlapsImage {
                heap_start,
                image_end,
            } => write!(
                f,
                "heap at {heap_start:#x} overlaps the image, which ends at {image_end:#x}"
            ),
            HeapError::OverlapsStack {
                heap_end,
                stack_bottom,
            } => write!(
                f,
                "heap ending at {heap_end:#x} overlaps the stack, which starts at {stack_bottom:#x}"
            ),
            HeapError::TooSmall(size) => write!(f, "heap of {size} bytes is too small"),
            HeapError::AlreadyClaimed => f.write_str("heap already set up"),
        }
    }
}

/// Checks that the heap `[heap_start, heap_start + heap_size)` lies between
/// the end of the image and the stack region (the [`STACK_SIZE`] bytes below
/// `stack_top`). An empty heap is always acceptable.
///
/// The boot-info check has already placed the heap inside guest memory
/// without overflow; this adds what only the guest knows, where its image
/// ends.
pub fn check_region(
    heap_start: u64,
    heap_size: u64,
    image_end: u64,
    stack_top: u64,
) -> Result<(), HeapError> {
    if heap_size == 0 {
        return Ok(());
    }
    if heap_start < image_end {
        return Err(HeapError::OverlapsImage {
            heap_start,
            image_end,
        });
    }
    let heap_end = heap_start.saturating_add(heap_size);
    let stack_bottom = stack_top.saturating_sub(STACK_SIZE);
    if heap_end > stack_bottom {
        return Err(HeapError::OverlapsStack {
            heap_end,
            stack_bottom,
        });
    }
    Ok(())
}

#[cfg(target_os = "none")]
pub(crate) use bare_metal::init;

#[cfg(target_os = "none")]
mod bare_metal {
    use super::{HeapError, check_region};
    use crate::BootInfo;
    use core::sync::atomic::{AtomicBool, Ordering};
    use talc::{ErrOnOom, Span, Talc, Talck};

    #[global_allocator]
    static ALLOCATOR: Talck<spin::Mutex<()>, ErrOnOom> = Talc::new(ErrOnOom).lock();

    /// Set by the first [`init`]; a region must not be claimed twice.
    static CLAIMED: AtomicBool = AtomicBool::new(false);

    unsafe extern "C" {
        /// First byte after the image, `.bss` included, page aligned; defined
        /// by `guest.ld`. Only its address is used.
        static __corral_image_end: u8;
    }

    /// Hands the heap the boot info describes to the global allocator.
    pub(crate) fn init(info: &BootInfo) -> Result<(), HeapError> {
        let image_end = (&raw const __corral_image_end) as u64;
        check_region(info.heap_start, info.heap_size, image_end, info.stack_top)?;
        if info.heap_size == 0 {
            return Ok(());
        }
        if CLAIMED.swap(true, Ordering::Relaxed) {
            return Err(HeapError::AlreadyClaimed);
        }
        let span = Span::from_base_size(info.heap_start as *mut u8, info.heap_size as usize);
        // SAFETY: talc requires the span to be valid for reads and writes,
        // used by nothing else and not part of another heap. The boot-info
        // check put it inside this guest's memory, which the hypervisor maps
        // read-write and the boot page tables identity-map; `check_region`
        // put it above the image's last byte (so above page 0, the boot info
        // and the page tables, all below `IMAGE_BASE_GPA`) and below the
        // stack; no Rust object lives there; and `CLAIMED` makes this the
        // only claim.
        unsafe { ALLOCATOR.lock().claim(span) }
            .map(drop)
            .map_err(|()| HeapError::TooSmall(info.heap_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 0x10_0000;

    #[test]
    fn heap_between_image_and_stack_is_fine() {
        assert_eq!(check_region(2 * MIB, MIB, 2 * MIB, 4 * MIB), Ok(()));
        let top = 4 * MIB;
        let room = top - STACK_SIZE - 2 * MIB;
        assert_eq!(check_region(2 * MIB, room, 2 * MIB, top), Ok(()));
        assert_eq!(check_region(0, 0, 2 * MIB, top), Ok(()));
    }

    #[test]
    fn overlaps_are_refused() {
        assert_eq!(
            check_region(MIB, MIB, MIB + 0x1000, 4 * MIB),
            Err(HeapError::OverlapsImage {
                heap_start: MIB,
                image_end: MIB + 0x1000
            })
        );
        let top = 4 * MIB;
        assert_eq!(
            check_region(2 * MIB, 2 * MIB, 2 * MIB, top),
            Err(HeapError::OverlapsStack {
                heap_end: 4 * MIB,
                stack_bottom: top - STACK_SIZE
            })
        );
        assert!(check_region(2 * MIB, u64::MAX, 2 * MIB, top).is_err());
        assert!(check_region(2 * MIB, 1, 2 * MIB, 0).is_err());
    }
}
