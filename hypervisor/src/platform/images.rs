//! Guest images, loaded once per image: the ELF is checked, and its shared
//! (read-only, page-aligned) segments are copied into frames that every VM
//! of that image maps read-only through its EPT. The manifest's are built
//! on the boot core before any VM starts; an operator's uploads (a service
//! run) are added by the control core, each in a slot written once; both
//! are read-only once there, so every core may use them.

use super::clock;
use super::memory;
use crate::control::{BadImage, ImageRefusal, Name};
use crate::elf::{ElfError, Image, Segment};
use crate::hvt::image::{self as hvt_image, HvtImageError};
use crate::mem::access::{Gpa, GuestRam};
use crate::mem::guest::GuestMemory;
use spin::{Mutex, Once};
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
    /// Frames for its shared segments could not be had (its `error` then
    /// says `Segments`): out of memory, not a bad file.
    short_of_frames: bool,
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

/// Most images an operator may upload in a run (each stays for the run).
pub const MAX_UPLOADED: usize = 8;
/// Uploaded images, each slot written once.
static UPLOADED: [Once<CachedImage>; MAX_UPLOADED] = [const { Once::new() }; MAX_UPLOADED];
/// Their names (the images' `name` points here).
static UPLOADED_NAMES: [Once<Name>; MAX_UPLOADED] = [const { Once::new() }; MAX_UPLOADED];
/// Slots taken.
static UPLOADS: Mutex<usize> = Mutex::new(0);

/// Keeps `file` (frames lent for the rest of the run) as image `name`, if
/// it is an image the hypervisor can run (checked as the manifest's are);
/// why not otherwise, and nothing is kept (the caller gives its frames
/// back).
pub fn add(name: &str, file: &'static [u8]) -> Result<(), ImageRefusal> {
    let mut count = UPLOADS.lock();
    if *count >= MAX_UPLOADED {
        return Err(ImageRefusal::TooMany {
            limit: MAX_UPLOADED as u32,
        });
    }
    let mut image = load("", file);
    if image.short_of_frames {
        return Err(ImageRefusal::NoMemory);
    }
    let why = match (image.error, image.hvt) {
        (Some(e), _) => Some(BadImage::Elf(e)),
        (None, Some(Err(e))) => Some(BadImage::Hvt(e)),
        _ => None,
    };
    if let Some(why) = why {
        // An unusable image holds no frames of its own (`load`).
        return Err(ImageRefusal::Bad(why));
    }
    let slot = *count;
    image.name = UPLOADED_NAMES[slot]
        .call_once(|| Name::try_from(name).unwrap_or_default())
        .as_str();
    UPLOADED[slot].call_once(|| image);
    *count += 1;
    Ok(())
}

/// The images uploaded so far.
fn uploaded() -> impl Iterator<Item = &'static CachedImage> {
    UPLOADED.iter().filter_map(Once::get)
}

/// A Solo5 hvt image: checked as the tender checks it, its read-only
/// segments loaded once to be shared by every VM of it.
fn load_hvt(out: &mut CachedImage) {
    // The wall clock and the TSC's rate, once (the boot core, or the
    // control core for an image uploaded at runtime: a one-time 10 ms
    // calibration inside a `Once`).
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
        short_of_frames: false,
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
            out.short_of_frames = true;
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

/// Bytes of shared image pages, over all images (uploaded ones too).
pub fn shared_total() -> u64 {
    let manifest = TABLE.get().map_or(0, |t| {
        t.images
            .iter()
            .flatten()
            .map(CachedImage::shared_bytes)
            .sum()
    });
    manifest + uploaded().map(CachedImage::shared_bytes).sum::<u64>()
}

/// The loaded image called `name` (the manifest's, or uploaded).
pub fn get(name: &str) -> Option<&'static CachedImage> {
    TABLE
        .get()
        .and_then(|t| t.images.iter().flatten().find(|i| i.name == name))
        .or_else(|| uploaded().find(|i| i.name == name))
}
