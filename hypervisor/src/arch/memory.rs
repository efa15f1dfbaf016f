//! Physical memory on the machine: the global frame allocator and the few
//! places that turn a physical address into a pointer. The hypervisor's
//! boot page tables identity-map the first 4 GiB, and the allocator only
//! hands out frames below that, so a frame's physical address is its
//! virtual address.

use crate::mem::ept::TableMemory;
use crate::mem::frames::{FRAME_SIZE, FrameAllocator};
use crate::multiboot::Region;
use spin::Mutex;

/// Bytes in a page.
pub const PAGE: u64 = FRAME_SIZE;
/// Bitmap words for 4 GiB of frames.
const FRAME_WORDS: usize = 16 * 1024;

static FRAMES: Mutex<FrameAllocator<FRAME_WORDS>> = Mutex::new(FrameAllocator::new());

/// Adds available RAM.
pub fn add(region: Region) {
    FRAMES.lock().add(region);
}

/// Keeps a range away from the allocator.
pub fn reserve(region: Region) {
    FRAMES.lock().reserve(region);
}

/// Free bytes left.
pub fn free_bytes() -> u64 {
    FRAMES.lock().free_frames() * FRAME_SIZE
}

/// `count` contiguous frames aligned to `align` frames, not zeroed.
pub fn alloc(count: u64, align: u64) -> Option<u64> {
    FRAMES.lock().alloc(count, align)
}

/// Returns frames to the allocator.
pub fn free(addr: u64, count: u64) {
    FRAMES.lock().free(addr, count);
}

/// `count` contiguous zeroed pages.
pub fn alloc_zeroed_pages(count: u64) -> Option<u64> {
    let addr = alloc(count, 1)?;
    // SAFETY: the frames were just allocated: this call owns them and no
    // reference to them exists.
    unsafe { fill(addr, count * PAGE, 0) };
    Some(addr)
}

/// Fills `len` bytes at physical `addr` with `byte`.
///
/// # Safety
/// `addr .. addr + len` must be frames the caller allocated from this
/// allocator and still owns (identity mapped), and no reference to them
/// may be alive: nothing else may read or write them during the call.
pub unsafe fn fill(addr: u64, len: u64, byte: u8) {
    // SAFETY: the caller guarantees the range is owned, mapped and
    // unaliased.
    unsafe { core::ptr::write_bytes(addr as *mut u8, byte, len as usize) };
}

/// Writes a u32 at the start of a page.
///
/// # Safety
/// As for [`fill`], for the 4 bytes at `addr`, which must be 4-byte
/// aligned.
pub unsafe fn write_u32(addr: u64, value: u32) {
    // SAFETY: the caller guarantees an owned, aligned, unaliased word.
    unsafe { (addr as *mut u32).write_volatile(value) };
}

/// The bytes of frames the caller owns.
///
/// # Safety
/// The frames must be allocated from this allocator, owned by the caller,
/// and not referenced elsewhere while the slice lives.
pub unsafe fn frames_mut<'a>(base: u64, len: u64) -> &'a mut [u8] {
    // SAFETY: the caller guarantees exclusive ownership; frames are identity
    // mapped below 4 GiB.
    unsafe { core::slice::from_raw_parts_mut(base as *mut u8, len as usize) }
}

/// The bytes of frames that nobody writes any more (shared image pages).
///
/// # Safety
/// The frames must be allocated from this allocator and never written
/// again while the slice lives.
pub unsafe fn frames<'a>(base: u64, len: u64) -> &'a [u8] {
    // SAFETY: the caller guarantees the frames are immutable from now on.
    unsafe { core::slice::from_raw_parts(base as *const u8, len as usize) }
}

/// The bytes of a boot module.
///
/// # Safety
/// `region` must be a module the loader placed in RAM and that was reserved
/// from the allocator.
pub unsafe fn module_bytes(region: Region) -> &'static [u8] {
    // SAFETY: the caller guarantees the module is reserved RAM below 4 GiB,
    // never written by anyone.
    unsafe {
        core::slice::from_raw_parts(
            region.start as *const u8,
            (region.end - region.start) as usize,
        )
    }
}

/// EPT tables live in frames from the global allocator.
pub struct FrameTables;

impl TableMemory for FrameTables {
    fn alloc_table(&mut self) -> Option<u64> {
        alloc_zeroed_pages(1)
    }

    fn free_table(&mut self, hpa: u64) {
        free(hpa, 1);
    }

    fn table(&mut self, hpa: u64) -> &mut [u64; 512] {
        // SAFETY: `hpa` is a table this allocator handed to one EPT, which
        // the caller (that EPT, borrowed mutably) owns exclusively; it is
        // page aligned and identity mapped.
        unsafe { &mut *(hpa as *mut [u64; 512]) }
    }
}
