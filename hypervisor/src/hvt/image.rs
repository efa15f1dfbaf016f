//! Checks a Solo5 hvt unikernel's ELF as Solo5's tender does before it boots: the header, the `ABI1` note (hvt, version 1 or 2) then the `MFT1` manifest, and each loadable segment with file bytes (at 1 MiB or above, ascending, not overlapping, page aligned, never writable and executable, inside memory).

use crate::elf::{
    ElfError, ElfHeader, PF_EXEC as PF_X, PF_WRITE as PF_W, PT_LOAD_TYPE as PT_LOAD,
    PT_NOTE_TYPE as PT_NOTE, ProgramHeader,
};
use vmm_abi::hvt::{self, Mft, NoteError};

const PAGE: u64 = 4096;
/// Most loadable segments with file bytes an hvt image may have.
pub const MAX_LOADS: usize = 8;

/// What is wrong with an ELF header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Not 64-bit little-endian x86-64 ELF.
    NotElf64,
    /// Not a static executable.
    NotExec,
    /// A version or header size other than ELF's.
    Header,
    /// Program headers of the wrong size, or none.
    Phdrs,
    /// Program headers outside the file.
    PhdrsOutside,
    /// No loadable segment with file bytes.
    NoLoad,
}

impl HeaderProblem {
    fn text(self) -> &'static str {
        match self {
            HeaderProblem::NotElf64 => "not a 64-bit little-endian x86-64 ELF file",
            HeaderProblem::NotExec => "not a static executable",
            HeaderProblem::Header => "elf header invalid",
            HeaderProblem::Phdrs => "program headers invalid",
            HeaderProblem::PhdrsOutside => "program headers outside the file",
            HeaderProblem::NoLoad => "no loadable segment",
        }
    }
}

/// Which rule a program header breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentRule {
    /// Its bytes lie outside the file.
    OutsideFile,
    /// It loads below 1 MiB.
    BelowMin,
    /// It comes before an earlier one's address.
    Order,
    /// Its alignment is not a power of 2.
    Align,
    /// It overlaps an earlier one (or the low MiB once aligned).
    Overlap,
    /// It does not fit in guest memory.
    Range,
    /// Its memory size is smaller than its file size.
    MemSize,
    /// It does not start and end on page boundaries.
    PageAlign,
    /// It is writable and executable.
    WriteExec,
    /// One loadable segment more than [`MAX_LOADS`].
    TooMany,
}

impl SegmentRule {
    fn text(self) -> &'static str {
        match self {
            SegmentRule::OutsideFile => "lies outside the file",
            SegmentRule::BelowMin => "p_vaddr is below 1 MiB",
            SegmentRule::Order => "is not in ascending order",
            SegmentRule::Align => "p_align is not a power of 2",
            SegmentRule::Overlap => "overlaps an earlier segment or the low 1 MiB",
            SegmentRule::Range => "does not fall within the memory allocation range",
            SegmentRule::MemSize => "p_memsz is smaller than p_filesz",
            SegmentRule::PageAlign => "is not aligned with the architectural page size",
            SegmentRule::WriteExec => "requests WRITE and EXEC permissions",
            SegmentRule::TooMany => "is one loadable segment too many",
        }
    }
}

/// Why an hvt image cannot boot (before it does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HvtImageError {
    /// The ELF header is not a static x86-64 executable's.
    Header(HeaderProblem),
    /// The notes say it is not for this monitor, or its manifest is bad.
    Note(NoteError),
    /// A program header breaks a rule.
    Segment {
        /// Its index.
        phdr: u16,
        /// Which rule.
        why: SegmentRule,
    },
    /// The entry point is outside `MIN_LOAD_GPA .. memory`.
    Entry(u64),
    /// Guest memory is not a multiple of 2 MiB in 2 MiB ..= 4 GiB.
    Memory(u64),
    /// The manifest declares a device this VM does not attach.
    Unattached {
        /// Its name.
        name: &'static str,
        /// Its type ([`hvt::MFT_DEV_BLOCK_BASIC`] or
        /// [`hvt::MFT_DEV_NET_BASIC`]).
        kind: u32,
    },
    /// The VM binds a device name its manifest does not declare.
    Undeclared {
        /// The name.
        name: &'static str,
    },
    /// The VM binds a block device or net port to a name its manifest
    /// declares as the other type.
    WrongKind {
        /// The name.
        name: &'static str,
        /// The type the manifest declares.
        kind: u32,
    },
    /// More block devices than one VM may have.
    TooManyBlocks,
    /// More net devices than one VM may have.
    TooManyNets,
    /// The command line (with its NUL) is longer than 8192 bytes.
    Cmdline,
    /// The VM was given Corral devices (a `console`, or a net port no
    /// device name binds), which an hvt guest has no driver for.
    CorralDevices,
}

impl core::fmt::Display for HvtImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HvtImageError::Header(why) => {
                write!(f, "invalid or unsupported executable ({})", why.text())
            }
            HvtImageError::Note(e) => write!(f, "{e}"),
            HvtImageError::Segment { phdr, why } => {
                write!(f, "invalid executable: phdr[{phdr}] {}", why.text())
            }
            HvtImageError::Entry(e) => write!(
                f,
                "invalid executable: e_entry {e:#x} does not fall within the memory allocation range"
            ),
            HvtImageError::Memory(m) => write!(
                f,
                "hvt guest memory of {m:#x} bytes is not a multiple of 2 MiB between 2 MiB and 4 GiB"
            ),
            HvtImageError::Unattached { name, kind } if *kind == hvt::MFT_DEV_NET_BASIC => write!(
                f,
                "Device '{name}' of type NET_BASIC declared but not attached (bind it with `net = N` and `devices = {{ {name} = \"net:N\" }}`)"
            ),
            HvtImageError::Unattached { name, .. } => write!(
                f,
                "Device '{name}' of type BLOCK_BASIC declared but not attached (bind it with `devices = {{ {name} = \"block:NAME\" }}`)"
            ),
            HvtImageError::Undeclared { name } => {
                write!(f, "Resource not declared in manifest: '{name}'")
            }
            HvtImageError::WrongKind { name, kind } if *kind == hvt::MFT_DEV_NET_BASIC => write!(
                f,
                "Device '{name}' is NET_BASIC in the Solo5 manifest, but the VM binds a block device to it"
            ),
            HvtImageError::WrongKind { name, .. } => write!(
                f,
                "Device '{name}' is BLOCK_BASIC in the Solo5 manifest, but the VM binds a net port to it"
            ),
            HvtImageError::TooManyNets => write!(
                f,
                "more than {} net devices for one hvt VM",
                crate::hvt::net::MAX_VM_NETS
            ),
            HvtImageError::TooManyBlocks => write!(
                f,
                "more than {} block devices for one VM",
                crate::hvt::call::MAX_VM_BLOCKS
            ),
            HvtImageError::Cmdline => {
                write!(f, "Guest command line too long (max=8191 characters)")
            }
            HvtImageError::CorralDevices => write!(
                f,
                "an hvt guest gets its devices from its Solo5 manifest: `console` is for Corral guests, and each of its `net` ports needs a device name (`devices = {{ NAME = \"net:N\" }}`)"
            ),
        }
    }
}

/// One segment to load: `filesz` bytes from `offset` at `vaddr`; the rest
/// of `memsz` stays zero (guest memory starts zeroed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// Guest-physical (= virtual) address.
    pub vaddr: u64,
    /// File offset.
    pub offset: u64,
    /// Bytes from the file.
    pub filesz: u64,
    /// Bytes in memory.
    pub memsz: u64,
    /// Page-aligned start and end it covers.
    pub pages: (u64, u64),
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
}

/// A checked hvt image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvtImage<'f> {
    /// Entry point.
    pub entry: u64,
    /// End of the highest segment with file bytes (page aligned).
    pub kernel_end: u64,
    /// The manifest.
    pub mft: Mft<'f>,
    loads: [Option<Load>; MAX_LOADS],
}

impl HvtImage<'_> {
    /// Its segments with file bytes, by address.
    pub fn loads(&self) -> impl Iterator<Item = Load> + '_ {
        self.loads.iter().flatten().copied()
    }
}

/// The checked header of `file`, as strict as Solo5's tender.
fn header(file: &[u8]) -> Result<ElfHeader<'_>, HvtImageError> {
    let h = ElfHeader::parse(file).map_err(|e| {
        HvtImageError::Header(match e {
            ElfError::NotElf64 => HeaderProblem::NotElf64,
            ElfError::NotExecutable => HeaderProblem::NotExec,
            ElfError::Truncated(_) => HeaderProblem::PhdrsOutside,
            _ => HeaderProblem::Phdrs,
        })
    })?;
    if !h.is_canonical() {
        return Err(HvtImageError::Header(HeaderProblem::Header));
    }
    Ok(h)
}

/// The bytes of a segment in the file.
fn bytes_of<'f>(file: &'f [u8], p: &ProgramHeader, i: u16) -> Result<&'f [u8], HvtImageError> {
    let end = p.offset.checked_add(p.filesz);
    match end {
        Some(e) if e <= file.len() as u64 => Ok(&file[p.offset as usize..e as usize]),
        _ => Err(HvtImageError::Segment {
            phdr: i,
            why: SegmentRule::OutsideFile,
        }),
    }
}

/// The descriptor of the first `Solo5` note of type `want`, if any.
fn find_note(file: &[u8], want: u32) -> Result<Option<&[u8]>, HvtImageError> {
    for p in header(file)?.program_headers() {
        let i = p.index;
        if p.kind != PT_NOTE {
            continue;
        }
        let seg = bytes_of(file, &p, i)?;
        if let Some(d) = hvt::note_in(seg, want, i).map_err(HvtImageError::Note)? {
            return Ok(Some(d));
        }
    }
    Ok(None)
}

/// Whether `file` says it is a Solo5 unikernel (it has a `Solo5` `ABI1`
/// note, for whatever target or version): it is then checked by these
/// rules and refused by name if it breaks one.
pub fn is_hvt(file: &[u8]) -> bool {
    matches!(find_note(file, hvt::NOTE_ABI1), Ok(Some(_)))
}

/// Checks `file` for a guest of `memory` bytes.
pub fn check(file: &[u8], memory: u64) -> Result<HvtImage<'_>, HvtImageError> {
    if !(hvt::MEMORY_ALIGN..=hvt::MAX_MEMORY).contains(&memory)
        || !memory.is_multiple_of(hvt::MEMORY_ALIGN)
    {
        return Err(HvtImageError::Memory(memory));
    }
    let abi = find_note(file, hvt::NOTE_ABI1)?.ok_or(HvtImageError::Note(NoteError::NoAbi))?;
    hvt::check_abi(abi).map_err(HvtImageError::Note)?;
    let mft = find_note(file, hvt::NOTE_MFT1)?.ok_or(HvtImageError::Note(NoteError::NoManifest))?;
    let mft = Mft::parse(mft).map_err(HvtImageError::Note)?;
    let elf = header(file)?;
    let entry = elf.entry;
    if !(hvt::MIN_LOAD_GPA..memory).contains(&entry) {
        return Err(HvtImageError::Entry(entry));
    }
    let mut loads = [None; MAX_LOADS];
    let (mut count, mut end, mut last_vaddr) = (0, 0u64, 0u64);
    for p in elf.program_headers() {
        let i = p.index;
        // Empty segments (even at address 0) are skipped, as the tender
        // skips them: guest memory starts zeroed.
        if p.kind != PT_LOAD || p.filesz == 0 {
            continue;
        }
        let bad = |why| Err(HvtImageError::Segment { phdr: i, why });
        if p.vaddr < hvt::MIN_LOAD_GPA {
            return bad(SegmentRule::BelowMin);
        }
        if p.vaddr < last_vaddr {
            return bad(SegmentRule::Order);
        }
        if p.align == 0 || !p.align.is_power_of_two() {
            return bad(SegmentRule::Align);
        }
        let start = p.vaddr & !(p.align - 1);
        if start < hvt::MIN_LOAD_GPA || start < end {
            return bad(SegmentRule::Overlap);
        }
        let file_end = p.vaddr.checked_add(p.filesz);
        if p.vaddr >= memory || file_end.is_none_or(|e| e > memory) {
            return bad(SegmentRule::Range);
        }
        if p.memsz < p.filesz {
            return bad(SegmentRule::MemSize);
        }
        let seg_end = p
            .vaddr
            .checked_add(p.memsz)
            .and_then(|e| e.checked_add(p.align - 1))
            .map(|e| e & !(p.align - 1));
        let Some(seg_end) = seg_end.filter(|&e| e <= memory) else {
            return bad(SegmentRule::Range);
        };
        if !start.is_multiple_of(PAGE) || !seg_end.is_multiple_of(PAGE) {
            return bad(SegmentRule::PageAlign);
        }
        if p.flags & PF_W != 0 && p.flags & PF_X != 0 {
            return bad(SegmentRule::WriteExec);
        }
        bytes_of(file, &p, i)?;
        let Some(slot) = loads.get_mut(count) else {
            return bad(SegmentRule::TooMany);
        };
        *slot = Some(Load {
            vaddr: p.vaddr,
            offset: p.offset,
            filesz: p.filesz,
            memsz: p.memsz,
            pages: (start, seg_end),
            write: p.flags & PF_W != 0,
            exec: p.flags & PF_X != 0,
        });
        count += 1;
        end = end.max(seg_end);
        last_vaddr = p.vaddr;
    }
    if count == 0 {
        return Err(HvtImageError::Header(HeaderProblem::NoLoad));
    }
    Ok(HvtImage {
        entry,
        kernel_end: end,
        mft,
        loads,
    })
}
