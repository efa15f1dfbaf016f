//! Physical memory on the machine: the global frame allocator and the few
//! places that turn a physical address into a pointer. The hypervisor's
//! boot page tables identity-map the first 4 GiB, and the allocator only
//! hands out frames below that, so a frame's physical address is its
//! virtual address.

use crate::mem::ept::TableMemory;
use crate::mem::frames::{FRAME_SIZE, FrameAllocator};
use crate::multiboot::Region;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

/// Bytes in a page.
pub const PAGE: u64 = FRAME_SIZE;
/// The boot page tables map physical memory 1:1 up to here (`boot.s`).
pub const IDENTITY_MAPPED_END: u64 = 1 << 32;
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

/// `n` values made by `init`, moved into frames that are never freed and
/// returned as the caller's own slice for the rest of the run (tables built
/// once at boot). `no_memory` if memory ran out; the first error of `init`
/// abandons the frames (they are never read).
pub fn leak_slice<T, E>(
    n: usize,
    mut init: impl FnMut(usize) -> Result<T, E>,
    no_memory: E,
) -> Result<&'static mut [T], E> {
    if n == 0 {
        return Ok(&mut []);
    }
    const { assert!(core::mem::align_of::<T>() as u64 <= PAGE) };
    let Some(bytes) = n.checked_mul(core::mem::size_of::<T>()) else {
        return Err(no_memory);
    };
    let Some(base) = alloc_zeroed_pages((bytes as u64).div_ceil(PAGE)) else {
        return Err(no_memory);
    };
    let base = base as *mut T;
    for i in 0..n {
        let value = init(i)?;
        // SAFETY: `base` has room for `n` values of T, is page aligned (at
        // least T's alignment) and is written once per slot here.
        unsafe { base.add(i).write(value) };
    }
    // SAFETY: all `n` slots were initialised above; the frames were just
    // allocated, so no other reference to them exists, and they are never
    // freed, so the slice may live for the whole run.
    Ok(unsafe { core::slice::from_raw_parts_mut(base, n) })
}

/// Frames lent by [`lend_slice`], until [`give_back`] returns them.
#[derive(Debug)]
pub struct Lent {
    addr: u64,
    frames: u64,
}

/// `n` copies of `value` in frames of their own, as a slice the caller
/// uses until it gives the frames back with [`give_back`] (memory taken
/// and returned while the run goes on, such as a hook attached at
/// runtime); `None` if memory ran out.
pub fn lend_slice<T: Copy>(n: usize, value: T) -> Option<(&'static mut [T], Lent)> {
    const { assert!(core::mem::align_of::<T>() as u64 <= PAGE) };
    let bytes = n.max(1).checked_mul(core::mem::size_of::<T>().max(1))?;
    let frames = (bytes as u64).div_ceil(PAGE);
    let addr = alloc_zeroed_pages(frames)?;
    let base = addr as *mut T;
    for i in 0..n {
        // SAFETY: the frames were just allocated for `n` values of T, page
        // aligned (at least T's alignment); each slot is written once.
        unsafe { base.add(i).write(value) };
    }
    // SAFETY: all `n` slots were initialised above and the frames are the
    // caller's alone until it gives them back (whose contract says no
    // reference into them may be left then).
    let slice = unsafe { core::slice::from_raw_parts_mut(base, n) };
    Some((slice, Lent { addr, frames }))
}

/// Returns frames lent by [`lend_slice`].
///
/// # Safety
/// No reference into the slice [`lend_slice`] gave for `lent` (nor into
/// anything built over it) may be alive or used again.
pub unsafe fn give_back(lent: Lent) {
    free(lent.addr, lent.frames);
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

/// Frames that hold EPT tables (bit N = frame N): the only frames
/// [`FrameTables`] reads or writes entries of.
static EPT_TABLE_FRAMES: [AtomicU64; FRAME_WORDS] = [const { AtomicU64::new(0) }; FRAME_WORDS];
/// Entries in an EPT table.
const TABLE_ENTRIES: usize = 512;

/// The word and bit of `hpa`'s frame in [`EPT_TABLE_FRAMES`], if it is a
/// page-aligned address below 4 GiB.
fn table_bit(hpa: u64) -> Option<(&'static AtomicU64, u64)> {
    if !hpa.is_multiple_of(PAGE) {
        return None;
    }
    let frame = hpa / PAGE;
    let word = EPT_TABLE_FRAMES.get(usize::try_from(frame / 64).ok()?)?;
    Some((word, 1 << (frame % 64)))
}

/// Whether `hpa` is a live EPT table frame.
fn is_table(hpa: u64) -> bool {
    table_bit(hpa).is_some_and(|(word, bit)| word.load(Ordering::Acquire) & bit != 0)
}

/// EPT tables live in frames from the global allocator, marked as tables
/// while they are: entries are read and written by value, only in marked
/// frames, and no Rust reference into one ever exists (the CPU is their
/// only other reader).
pub struct FrameTables;

impl TableMemory for FrameTables {
    fn alloc_table(&mut self) -> Option<u64> {
        let hpa = alloc_zeroed_pages(1)?;
        match table_bit(hpa) {
            Some((word, bit)) => {
                word.fetch_or(bit, Ordering::Release);
                Some(hpa)
            }
            None => {
                free(hpa, 1);
                None
            }
        }
    }

    fn free_table(&mut self, hpa: u64) {
        let was_table = table_bit(hpa)
            .is_some_and(|(word, bit)| word.fetch_and(!bit, Ordering::AcqRel) & bit != 0);
        if was_table {
            free(hpa, 1);
        } else {
            log::error!("refused to free {hpa:#x} as an EPT table: it is not one (hypervisor bug)");
        }
    }

    fn entry(&self, table: u64, index: usize) -> u64 {
        if index >= TABLE_ENTRIES || !is_table(table) {
            return 0;
        }
        // SAFETY: `table` is a live EPT table frame (marked above, page
        // aligned, identity mapped below 4 GiB) and `index` is inside it;
        // entries are only ever accessed by value, so no reference aliases
        // this read.
        unsafe { (table as *const u64).add(index).read_volatile() }
    }

    fn set_entry(&mut self, table: u64, index: usize, value: u64) -> bool {
        if index >= TABLE_ENTRIES || !is_table(table) {
            return false;
        }
        // SAFETY: as in `entry`; the frame belongs to the EPT that is
        // borrowed mutably by the caller, and is only written by value.
        unsafe { (table as *mut u64).add(index).write_volatile(value) };
        true
    }
}
