//! Guest images, loaded once per image: the ELF is checked, and its shared
//! (read-only, page-aligned) segments are copied into frames that every VM
//! of that image maps read-only through its EPT. Built on the boot core
//! before any VM starts; read-only afterwards, so every core may use it.

use super::clock;
use super::memory;
use crate::elf::{ElfError, Image, Segment};
use crate::hvt::image::{self as hvt_image, HvtImageError};
use crate::mem::access::{Gpa, GuestRam};
use crate::mem::guest::GuestMemory;
use spin::Once;
use vmm_abi::corral::layout::{MAX_MEMORY, PAGE_SIZE};

/// Most distinct images one manifest may use.
pub const MAX_IMAGES: usize = 64;
/// Most shared ranges one image may have.
pub const MAX_SHARED: usize = 4;

/// A read-only range of an image, loaded once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedRange {
    /// Guest-physical start (page aligned).
    pub gpa: u64,
    /// Host-physical start of its frames.
    pub hpa: u64,
    /// Bytes (whole pages).
    pub len: u64,
    /// Instruction fetches allowed (a code segment).
    pub exec: bool,
}

/// One image, ready to be mapped into VMs.
#[derive(Debug)]
pub struct CachedImage {
    /// Image name (the boot module's `image=` token).
    pub name: &'static str,
    /// The ELF file.
    pub file: &'static [u8],
    /// Why the image cannot be used, if it cannot.
    pub error: Option<ElfError>,
    /// For a Solo5 hvt image (it has a Solo5 `ABI1` note): why it cannot be
    /// used, if it cannot (checked again for each VM's memory size).
    pub hvt: Option<Result<(), HvtImageError>>,
    shared: [Option<SharedRange>; MAX_SHARED],
}

impl CachedImage {
    /// Whether `seg` is loaded once here (so a VM must not load it itself).
    pub fn shares(&self, seg: &Segment) -> bool {
        let (start, _) = seg.pages();
        self.shares_page(start)
    }

    /// Whether the segment starting at page `start` is loaded once here.
    pub fn shares_page(&self, start: u64) -> bool {
        self.shared().any(|r| r.gpa == start)
    }

    /// Its shared ranges, by address.
    pub fn shared(&self) -> impl Iterator<Item = SharedRange> + '_ {
        self.shared.iter().flatten().copied()
    }

    /// Bytes shared by every VM of this image.
    pub fn shared_bytes(&self) -> u64 {
        self.shared().map(|r| r.len).sum()
    }
}

struct Table {
    images: [Option<CachedImage>; MAX_IMAGES],
}

static TABLE: Once<Table> = Once::new();

/// A Solo5 hvt image: checked as the tender checks it, its read-only
/// segments loaded once to be shared by every VM of it.
fn load_hvt(out: &mut CachedImage) {
    // The wall clock and the TSC's rate, once, on the boot core.
    let _ = (clock::tsc_hz(), clock::wall_ns());
    let image = match hvt_image::check(out.file, vmm_abi::hvt::MAX_MEMORY) {
        Ok(i) => i,
        Err(e) => {
            out.hvt = Some(Err(e));
            return;
        }
    };
    out.hvt = Some(Ok(()));
    let shareable = image.loads().filter(|l| !l.write).take(MAX_SHARED);
    for (slot, l) in out.shared.iter_mut().zip(shareable) {
        let (start, end) = l.pages;
        let len = end - start;
        let Some(hpa) = memory::alloc_zeroed_pages(len / PAGE_SIZE) else {
            break;
        };
        let mut view = GuestMemory::empty(end);
        // SAFETY: the frames were just allocated for this image and nothing
        // else refers to them yet; the view ends with this iteration.
        let bytes = unsafe { memory::frames_mut(hpa, len) };
        let bytes_of = out
            .file
            .get(l.offset as usize..(l.offset + l.filesz) as usize);
        let loaded = view.add_private(start, bytes).is_ok()
            && bytes_of.is_some_and(|b| GuestRam::write(&mut view, Gpa(l.vaddr), b).is_ok());
        if !loaded {
            memory::free(hpa, len / PAGE_SIZE);
            break;
        }
        *slot = Some(SharedRange {
            gpa: start,
            hpa,
            len,
            exec: l.exec,
        });
    }
}

fn load(name: &'static str, file: &'static [u8]) -> CachedImage {
    let mut out = CachedImage {
        name,
        file,
        error: None,
        hvt: None,
        shared: [None; MAX_SHARED],
    };
    if hvt_image::is_hvt(file) {
        load_hvt(&mut out);
        return out;
    }
    let image = match Image::parse(file, MAX_MEMORY) {
        Ok(i) => i,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    // Shared ranges in address order (VM memory maps are laid out by address).
    let mut candidates = [None; MAX_SHARED];
    for seg in image.segments().filter(|s| s.shared) {
        // Beyond MAX_SHARED read-only segments, the rest stay private: each
        // VM loads every segment not shared here (see `shares`).
        let Some(free) = candidates.iter().position(Option::is_none) else {
            break;
        };
        candidates[free] = Some(seg);
    }
    candidates.sort_unstable_by_key(|c| c.map_or(u64::MAX, |s| s.addr));
    for (slot, seg) in out.shared.iter_mut().zip(candidates.iter().flatten()) {
        let (start, end) = seg.pages();
        let len = end - start;
        let Some(hpa) = memory::alloc_zeroed_pages(len / PAGE_SIZE) else {
            out.error = Some(ElfError::Segments);
            break;
        };
        let mut view = GuestMemory::empty(end);
        // SAFETY: the frames were just allocated for this image and nothing
        // else refers to them yet; the view ends with this iteration.
        let bytes = unsafe { memory::frames_mut(hpa, len) };
        *slot = Some(SharedRange {
            gpa: start,
            hpa,
            len,
            exec: seg.exec,
        });
        if view.add_private(start, bytes).is_err() || image.load_segment(seg, &mut view).is_err() {
            out.error = Some(ElfError::Segments);
            break;
        }
    }
    if out.error.is_some() {
        // An unusable image holds no frames.
        for r in out.shared.iter_mut().filter_map(Option::take) {
            memory::free(r.hpa, r.len / PAGE_SIZE);
        }
    }
    out
}

/// Loads every image `names` yields (each once, first to last) with its
/// bytes from `file_of`. Returns false if there are more than [`MAX_IMAGES`].
pub fn load_all<'m>(
    names: impl Iterator<Item = &'m str>,
    file_of: impl Fn(&str) -> Option<(&'static str, &'static [u8])>,
) -> bool {
    let mut table = Table {
        images: [const { None }; MAX_IMAGES],
    };
    let mut count = 0;
    for name in names {
        if table.images[..count]
            .iter()
            .flatten()
            .any(|i| i.name == name)
        {
            continue;
        }
        let Some((name, file)) = file_of(name) else {
            continue;
        };
        if count == MAX_IMAGES {
            return false;
        }
        table.images[count] = Some(load(name, file));
        count += 1;
    }
    TABLE.call_once(|| table);
    true
}

/// Bytes of shared image pages, over all images.
pub fn shared_total() -> u64 {
    TABLE.get().map_or(0, |t| {
        t.images
            .iter()
            .flatten()
            .map(CachedImage::shared_bytes)
            .sum()
    })
}

/// The loaded image called `name`.
pub fn get(name: &str) -> Option<&'static CachedImage> {
    TABLE
        .get()?
        .images
        .iter()
        .flatten()
        .find(|i| i.name == name)
}
