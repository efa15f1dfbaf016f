//! Loads a guest's ELF64 image (System V gABI, x86-64 psABI) into its memory.
//! The image is operator input: every header field, offset and size is
//! checked, and segments must lie between [`IMAGE_BASE_GPA`] and the stack.
//! Read-only segments on pages of their own are *shared*: loaded once per
//! image and mapped read-only into every VM of that image; the rest is
//! loaded into each VM's private memory.
#![forbid(unsafe_code)]

use crate::mem::guest::GuestMemory;
use core::fmt;
use vmm_abi::corral::layout::{IMAGE_BASE_GPA, PAGE_SIZE, STACK_SIZE};

const ELF_MAGIC: [u8; 4] = *b"\x7fELF";
const CLASS_64: u8 = 2;
const DATA_LE: u8 = 1;
const TYPE_EXEC: u16 = 2;
const MACHINE_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
/// Most program headers accepted.
pub const MAX_PHDRS: u16 = 64;

/// Why an image cannot be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Not an ELF file, or not 64-bit little-endian x86-64.
    NotElf64,
    /// Not a static executable (`ET_EXEC`).
    NotExecutable,
    /// A header field or offset points outside the file.
    Truncated(&'static str),
    /// Too many program headers, or none loadable.
    Segments,
    /// A segment lies outside the area images may load into.
    SegmentOutOfRange {
        /// Segment start.
        addr: u64,
        /// Segment size in memory.
        size: u64,
    },
    /// A segment's file size exceeds its memory size.
    FileSizeTooLarge,
    /// The entry point is not inside an executable segment.
    BadEntry(u64),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::NotElf64 => write!(f, "not a 64-bit little-endian x86-64 ELF file"),
            ElfError::NotExecutable => write!(f, "ELF file is not a static executable"),
            ElfError::Truncated(what) => write!(f, "ELF {what} lies outside the file"),
            ElfError::Segments => write!(f, "ELF has no loadable segment or too many headers"),
            ElfError::SegmentOutOfRange { addr, size } => write!(
                f,
                "ELF segment at {addr:#x} size {size:#x} is outside the guest's image area"
            ),
            ElfError::FileSizeTooLarge => write!(f, "ELF segment file size exceeds memory size"),
            ElfError::BadEntry(e) => write!(f, "ELF entry {e:#x} is not in an executable segment"),
        }
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from(u32_at(b, off)) | (u64::from(u32_at(b, off + 4)) << 32)
}

/// One loadable segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical load address.
    pub addr: u64,
    /// Bytes in memory.
    pub mem_size: u64,
    /// Offset of its bytes in the file.
    pub file_offset: u64,
    /// Bytes taken from the file (the rest is zeroed).
    pub file_size: u64,
    /// Executable.
    pub exec: bool,
    /// Writable.
    pub writable: bool,
    /// Loaded once and shared read-only between VMs of the image.
    pub shared: bool,
}

impl Segment {
    /// The whole pages the segment touches.
    pub fn pages(&self) -> (u64, u64) {
        (
            self.addr & !(PAGE_SIZE - 1),
            (self.addr + self.mem_size).next_multiple_of(PAGE_SIZE),
        )
    }
}

/// A checked image, ready to load.
#[derive(Debug)]
pub struct Image<'a> {
    file: &'a [u8],
    segments: [Option<Segment>; MAX_PHDRS as usize],
    /// Entry point.
    pub entry: u64,
    /// First page-aligned address after the highest segment.
    pub end: u64,
}

/// One program header, as read from the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramHeader {
    /// Its index in the table.
    pub index: u16,
    /// `p_type`.
    pub kind: u32,
    /// `p_flags`.
    pub flags: u32,
    /// `p_offset`.
    pub offset: u64,
    /// `p_vaddr` (where Solo5's tender loads a segment).
    pub vaddr: u64,
    /// `p_paddr` (where Corral loads one; its images have physical =
    /// virtual).
    pub paddr: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// `p_memsz`.
    pub memsz: u64,
    /// `p_align`.
    pub align: u64,
}

/// `PT_NOTE`.
pub const PT_NOTE_TYPE: u32 = 4;
/// `PT_LOAD`.
pub const PT_LOAD_TYPE: u32 = PT_LOAD;
/// `PF_X`.
pub const PF_EXEC: u32 = PF_X;
/// `PF_W`.
pub const PF_WRITE: u32 = PF_W;

/// The header of a static little-endian x86-64 ELF64 executable, its
/// program-header table checked to lie in the file: what every guest ABI's
/// loader reads first.
#[derive(Clone, Copy, Debug)]
pub struct ElfHeader<'a> {
    file: &'a [u8],
    /// Entry point.
    pub entry: u64,
    phoff: u64,
    phentsize: u16,
    /// Program headers.
    pub phnum: u16,
}

impl<'a> ElfHeader<'a> {
    /// Reads and checks the header of `file`.
    pub fn parse(file: &'a [u8]) -> Result<Self, ElfError> {
        if file.len() < EHDR_SIZE || file[0..4] != ELF_MAGIC {
            return Err(ElfError::NotElf64);
        }
        if file[4] != CLASS_64 || file[5] != DATA_LE || u16_at(file, 18) != MACHINE_X86_64 {
            return Err(ElfError::NotElf64);
        }
        if u16_at(file, 16) != TYPE_EXEC {
            return Err(ElfError::NotExecutable);
        }
        let phoff = u64_at(file, 32);
        let phentsize = u16_at(file, 54);
        let phnum = u16_at(file, 56);
        if phnum == 0 || usize::from(phentsize) < PHDR_SIZE {
            return Err(ElfError::Segments);
        }
        let table_len = u64::from(phnum) * u64::from(phentsize);
        if phoff
            .checked_add(table_len)
            .is_none_or(|e| e > file.len() as u64)
        {
            return Err(ElfError::Truncated("program header table"));
        }
        Ok(ElfHeader {
            file,
            entry: u64_at(file, 24),
            phoff,
            phentsize,
            phnum,
        })
    }

    /// Whether the header is exactly ELF's current version with the
    /// standard header and entry sizes (Solo5's tender insists on it).
    pub fn is_canonical(&self) -> bool {
        const EV_CURRENT: u8 = 1;
        self.file[6] == EV_CURRENT
            && u32_at(self.file, 20) == u32::from(EV_CURRENT)
            && usize::from(u16_at(self.file, 52)) == EHDR_SIZE
            && usize::from(self.phentsize) == PHDR_SIZE
    }

    /// Its program headers, in table order.
    pub fn program_headers(&self) -> impl Iterator<Item = ProgramHeader> + 'a {
        let (file, phoff, size) = (self.file, self.phoff as usize, usize::from(self.phentsize));
        (0..self.phnum).map(move |i| {
            // The whole table lies in the file (checked by `parse`).
            let ph = &file[phoff + usize::from(i) * size..][..PHDR_SIZE];
            ProgramHeader {
                index: i,
                kind: u32_at(ph, 0),
                flags: u32_at(ph, 4),
                offset: u64_at(ph, 8),
                vaddr: u64_at(ph, 16),
                paddr: u64_at(ph, 24),
                filesz: u64_at(ph, 32),
                memsz: u64_at(ph, 40),
                align: u64_at(ph, 48),
            }
        })
    }
}

impl<'a> Image<'a> {
    /// Checks `file` as an image for a guest with `memory` bytes.
    pub fn parse(file: &'a [u8], memory: u64) -> Result<Self, ElfError> {
        let header = ElfHeader::parse(file)?;
        let entry = header.entry;
        if header.phnum > MAX_PHDRS {
            return Err(ElfError::Segments);
        }
        let limit = memory.saturating_sub(STACK_SIZE);
        let mut image = Image {
            file,
            segments: [None; MAX_PHDRS as usize],
            entry,
            end: IMAGE_BASE_GPA,
        };
        let mut entry_ok = false;
        for ph in header.program_headers() {
            if ph.kind != PT_LOAD {
                continue;
            }
            let i = usize::from(ph.index);
            let seg = Segment {
                exec: ph.flags & PF_X != 0,
                writable: ph.flags & PF_W != 0,
                shared: false,
                file_offset: ph.offset,
                addr: ph.paddr,
                file_size: ph.filesz,
                mem_size: ph.memsz,
            };
            if seg.file_size > seg.mem_size {
                return Err(ElfError::FileSizeTooLarge);
            }
            if seg
                .file_offset
                .checked_add(seg.file_size)
                .is_none_or(|e| e > file.len() as u64)
            {
                return Err(ElfError::Truncated("segment"));
            }
            let end = seg.addr.checked_add(seg.mem_size);
            if seg.addr < IMAGE_BASE_GPA || end.is_none_or(|e| e > limit) {
                return Err(ElfError::SegmentOutOfRange {
                    addr: seg.addr,
                    size: seg.mem_size,
                });
            }
            let end = end.unwrap_or(limit);
            if seg.exec && (seg.addr..end).contains(&entry) {
                entry_ok = true;
            }
            image.end = image.end.max(end.next_multiple_of(PAGE_SIZE));
            image.segments[i] = Some(seg);
        }
        if image.segments().next().is_none() {
            return Err(ElfError::Segments);
        }
        // A read-only segment is shared when no other segment touches its pages.
        for i in 0..image.segments.len() {
            let Some(seg) = image.segments[i] else {
                continue;
            };
            let (s, e) = seg.pages();
            let alone = image.segments.iter().enumerate().all(|(j, o)| {
                o.is_none_or(|o| {
                    let (os, oe) = o.pages();
                    i == j || oe <= s || e <= os
                })
            });
            if let Some(seg) = image.segments[i].as_mut() {
                seg.shared = !seg.writable && alone && seg.mem_size > 0;
            }
        }
        if !entry_ok {
            return Err(ElfError::BadEntry(entry));
        }
        Ok(image)
    }

    /// The loadable segments.
    pub fn segments(&self) -> impl Iterator<Item = Segment> + '_ {
        self.segments.iter().flatten().copied()
    }

    /// Copies the segments `pick` selects into `mem`.
    pub fn load_where(
        &self,
        mem: &mut GuestMemory<'_>,
        pick: impl Fn(&Segment) -> bool,
    ) -> Result<(), ElfError> {
        self.segments()
            .filter(|s| pick(s))
            .try_for_each(|s| self.load_segment(&s, mem))
    }

    /// Copies one segment into `mem` and zeroes the rest of it.
    pub fn load_segment(&self, s: &Segment, mem: &mut GuestMemory<'_>) -> Result<(), ElfError> {
        let out_of_range = ElfError::SegmentOutOfRange {
            addr: s.addr,
            size: s.mem_size,
        };
        let dst = mem
            .slice_mut(s.addr, s.mem_size)
            .map_err(|_| out_of_range)?;
        let (data, bss) = dst.split_at_mut(s.file_size as usize);
        let src = s.file_offset as usize;
        data.copy_from_slice(&self.file[src..src + s.file_size as usize]);
        bss.fill(0);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::vec::Vec;

    /// A minimal ELF with one RX segment (code) and one RW segment with bss.
    pub(crate) fn sample_elf() -> Vec<u8> {
        let mut f = std::vec![0u8; 0x2000];
        f[0..4].copy_from_slice(&ELF_MAGIC);
        f[4] = CLASS_64;
        f[5] = DATA_LE;
        f[6] = 1;
        f[16..18].copy_from_slice(&TYPE_EXEC.to_le_bytes());
        f[18..20].copy_from_slice(&MACHINE_X86_64.to_le_bytes());
        f[24..32].copy_from_slice(&0x10_0010u64.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        f[56..58].copy_from_slice(&2u16.to_le_bytes());
        let ph =
            |f: &mut Vec<u8>, i: usize, flags: u32, off: u64, addr: u64, fsz: u64, msz: u64| {
                let p = 64 + i * PHDR_SIZE;
                f[p..p + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
                f[p + 4..p + 8].copy_from_slice(&flags.to_le_bytes());
                f[p + 8..p + 16].copy_from_slice(&off.to_le_bytes());
                f[p + 16..p + 24].copy_from_slice(&addr.to_le_bytes());
                f[p + 24..p + 32].copy_from_slice(&addr.to_le_bytes());
                f[p + 32..p + 40].copy_from_slice(&fsz.to_le_bytes());
                f[p + 40..p + 48].copy_from_slice(&msz.to_le_bytes());
            };
        ph(&mut f, 0, PF_X | 4, 0x1000, 0x10_0000, 0x100, 0x100);
        ph(&mut f, 1, 6, 0x1100, 0x10_1000, 0x10, 0x2000);
        f[0x1000] = 0xcc;
        f[0x1100] = 0xab;
        f
    }

    #[test]
    fn loads_segments_and_zeroes_bss() {
        let f = sample_elf();
        let img = Image::parse(&f, 0x20_0000).unwrap();
        assert_eq!(img.entry, 0x10_0010);
        assert_eq!(img.end, 0x10_3000);
        assert_eq!(img.segments().count(), 2);
        let segs: Vec<_> = img.segments().collect();
        assert!(
            segs[0].shared && !segs[1].shared,
            "code shared, data private"
        );
        assert_eq!(segs[0].pages(), (0x10_0000, 0x10_1000));
        let mut backing = std::vec![0xffu8; 0x20_0000];
        let mut mem = GuestMemory::new(&mut backing);
        img.load_where(&mut mem, |s| !s.shared).unwrap();
        let mut b = [0u8; 1];
        mem.read(0x10_0000, &mut b).unwrap();
        assert_eq!(b, [0xff], "shared part not loaded with the private part");
        mem.read(0x10_1000, &mut b).unwrap();
        assert_eq!(b, [0xab]);
        let mut bss = std::vec![1u8; 0x1ff0];
        mem.read(0x10_1010, &mut bss).unwrap();
        assert!(bss.iter().all(|&b| b == 0));
        img.load_where(&mut mem, |s| s.shared).unwrap();
        mem.read(0x10_0000, &mut b).unwrap();
        assert_eq!(b, [0xcc]);
    }

    #[test]
    fn read_only_segment_sharing_a_page_stays_private() {
        let mut f = sample_elf();
        // Move the data segment onto the code segment's page.
        f[64 + PHDR_SIZE + 16..64 + PHDR_SIZE + 32]
            .copy_from_slice(&[0x10_0800u64.to_le_bytes(), 0x10_0800u64.to_le_bytes()].concat());
        let img = Image::parse(&f, 0x20_0000).unwrap();
        assert!(img.segments().all(|s| !s.shared));
    }

    #[test]
    fn rejects_hostile_images() {
        let good = sample_elf();
        let check = |f: &[u8], mem: u64| Image::parse(f, mem).unwrap_err();
        assert_eq!(check(&good[..10], 0x20_0000), ElfError::NotElf64);
        let mut f = good.clone();
        f[4] = 1;
        assert_eq!(check(&f, 0x20_0000), ElfError::NotElf64);
        let mut f = good.clone();
        f[16] = 3;
        assert_eq!(check(&f, 0x20_0000), ElfError::NotExecutable);
        let mut f = good.clone();
        f[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            check(&f, 0x20_0000),
            ElfError::Truncated("program header table")
        );
        let mut f = good.clone();
        f[64 + 24..64 + 32].copy_from_slice(&0x1000u64.to_le_bytes());
        assert!(matches!(
            check(&f, 0x20_0000),
            ElfError::SegmentOutOfRange { .. }
        ));
        let mut f = good.clone();
        f[64 + 8..64 + 16].copy_from_slice(&0x1_0000u64.to_le_bytes());
        assert_eq!(check(&f, 0x20_0000), ElfError::Truncated("segment"));
        let mut f = good.clone();
        f[64 + 40..64 + 48].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            check(&f, 0x20_0000),
            ElfError::SegmentOutOfRange { .. }
        ));
        let mut f = good.clone();
        f[64 + 32..64 + 40].copy_from_slice(&0x200u64.to_le_bytes());
        assert_eq!(check(&f, 0x20_0000), ElfError::FileSizeTooLarge);
        let mut f = good.clone();
        f[24..32].copy_from_slice(&0x10_1000u64.to_le_bytes());
        assert_eq!(check(&f, 0x20_0000), ElfError::BadEntry(0x10_1000));
        // The data segment would run into the stack of a tiny guest.
        assert!(matches!(
            check(&good, 0x11_0000),
            ElfError::SegmentOutOfRange { .. }
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(pos in 0usize..0x200, val: u8) {
            let mut f = sample_elf();
            f[pos] = val;
            if let Ok(img) = Image::parse(&f, 0x20_0000) {
                let mut backing = std::vec![0u8; 0x20_0000];
                let _ = img.load_where(&mut GuestMemory::new(&mut backing), |s| !s.shared);
                let _ = img.load_where(&mut GuestMemory::new(&mut backing), |s| s.shared);
            }
        }
    }
}
