//! The `virtio-drivers` [`Hal`] for Corral guests, and [`PageBuf`], the
//! page-aligned zeroed memory the rings and buffers live in.
//!
//! A Corral guest's page tables identity-map its memory, so a buffer's
//! guest-physical address (what the device is given) is its virtual address;
//! there is no IOMMU to program and nothing to copy, so sharing a buffer with
//! the device is only naming its address. DMA pages come from the global
//! allocator; running out of them is an error the drivers return, never a
//! panic.
use alloc::alloc::{alloc_zeroed, dealloc};
use core::alloc::Layout;
use core::ptr::NonNull;
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

/// The global allocator could not provide this many bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AllocFailed {
    /// Bytes asked for.
    pub(crate) bytes: usize,
}

/// Page-aligned, zeroed memory from the global allocator, freed on drop.
/// Used for the virtqueue rings (through [`CorralHal`]) and the buffers.
pub(crate) struct PageBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: a `PageBuf` owns its allocation outright (nothing else points
// into it except a device the owner handed buffers to), so moving it to
// another thread moves that ownership; Corral guests have one thread.
unsafe impl Send for PageBuf {}

impl PageBuf {
    /// `bytes` (rounded up to whole pages, at least one) of zeroed memory,
    /// page aligned.
    pub(crate) fn zeroed(bytes: usize) -> Result<Self, AllocFailed> {
        let failed = AllocFailed { bytes };
        let rounded = bytes
            .max(1)
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(failed)?;
        let layout = Layout::from_size_align(rounded, PAGE_SIZE).map_err(|_| failed)?;
        // SAFETY: `layout` has a non-zero size (at least one page).
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or(failed)?;
        Ok(PageBuf { ptr, layout })
    }

    /// The first byte.
    pub(crate) fn base(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Bytes owned (a whole number of pages).
    pub(crate) fn len(&self) -> usize {
        self.layout.size()
    }

    /// Gives up ownership without freeing; [`PageBuf::from_raw`] takes it
    /// back.
    fn into_raw(self) -> NonNull<u8> {
        let ptr = self.ptr;
        core::mem::forget(self);
        ptr
    }

    /// Takes back memory [`PageBuf::into_raw`] gave up.
    ///
    /// # Safety
    ///
    /// `ptr` must come from `into_raw` of a `PageBuf` of `pages` pages, not
    /// yet taken back.
    unsafe fn from_raw(ptr: NonNull<u8>, pages: usize) -> Option<Self> {
        let size = pages.checked_mul(PAGE_SIZE)?;
        let layout = Layout::from_size_align(size, PAGE_SIZE).ok()?;
        Some(PageBuf { ptr, layout })
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` was returned by `alloc_zeroed` with exactly `layout`
        // (in `zeroed`, or rebuilt from the same page count in `from_raw`)
        // and is freed only here, once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// The guest address of `ptr`, which is also its guest-physical address
/// (identity mapping).
fn phys(ptr: *const u8) -> PhysAddr {
    ptr as usize as PhysAddr
}

/// The [`Hal`] of Corral guests: identity-mapped memory, no IOMMU.
pub(crate) struct CorralHal;

// SAFETY: `dma_alloc` returns memory from the global allocator that is
// page aligned, zeroed, valid for the requested pages and owned by nobody
// else until `dma_dealloc` frees it (each allocation is a fresh `PageBuf`
// whose ownership passes to the caller); on failure it returns physical
// address 0, which `Dma::new` treats as an error. `mmio_phys_to_virt` and
// `share` return identity mappings, which is what a Corral guest's page
// tables are.
unsafe impl Hal for CorralHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let Some(bytes) = pages.checked_mul(PAGE_SIZE).filter(|&b| b > 0) else {
            return (0, NonNull::dangling());
        };
        match PageBuf::zeroed(bytes) {
            // A non-zero whole number of pages is not rounded: the buffer
            // has exactly `pages` pages, as `dma_dealloc` will assume.
            Ok(buf) => {
                let ptr = buf.into_raw();
                (phys(ptr.as_ptr()), ptr)
            }
            Err(_) => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: the caller passes the pointer and page count `dma_alloc`
        // returned, not yet freed; `dma_alloc` obtained it from
        // `PageBuf::into_raw` of a buffer of exactly `pages` pages.
        match unsafe { PageBuf::from_raw(vaddr, pages) } {
            Some(buf) => {
                drop(buf);
                0
            }
            // Unreachable for the sizes `dma_alloc` accepted; leak rather
            // than free with a wrong layout.
            None => -1,
        }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        // Identity mapping. Only the PCI transport calls this; Corral
        // devices are virtio-mmio at addresses the boot info gives.
        NonNull::new(paddr as usize as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        phys(buffer.as_ptr().cast::<u8>())
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {
        // Nothing was mapped or copied by `share`.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_bufs_are_aligned_zeroed_and_rounded() {
        let buf = PageBuf::zeroed(100).unwrap();
        assert_eq!(buf.len(), PAGE_SIZE);
        assert_eq!(buf.base().as_ptr() as usize % PAGE_SIZE, 0);
        // SAFETY: the buffer owns `len()` initialised (zeroed) bytes.
        let bytes = unsafe { core::slice::from_raw_parts(buf.base().as_ptr(), buf.len()) };
        assert!(bytes.iter().all(|&b| b == 0));
        assert_eq!(PageBuf::zeroed(0).unwrap().len(), PAGE_SIZE);
        assert_eq!(PageBuf::zeroed(PAGE_SIZE + 1).unwrap().len(), 2 * PAGE_SIZE);
    }

    #[test]
    fn impossible_sizes_are_errors_not_panics() {
        assert_eq!(
            PageBuf::zeroed(usize::MAX).err(),
            Some(AllocFailed { bytes: usize::MAX })
        );
        let (paddr, _) = CorralHal::dma_alloc(usize::MAX, BufferDirection::Both);
        assert_eq!(paddr, 0);
    }

    #[test]
    fn dma_round_trip() {
        let (paddr, vaddr) = CorralHal::dma_alloc(2, BufferDirection::Both);
        assert_ne!(paddr, 0);
        assert_eq!(paddr, vaddr.as_ptr() as u64);
        // SAFETY: the pointer and page count are what `dma_alloc` returned.
        assert_eq!(unsafe { CorralHal::dma_dealloc(paddr, vaddr, 2) }, 0);
    }
}
