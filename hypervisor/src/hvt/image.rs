//! Checks a Solo5 hvt unikernel's ELF as Solo5's tender does before it boots: the header, the `ABI1` note (hvt, version 2) then the `MFT1` manifest, and each loadable segment with file bytes (at 1 MiB or above, ascending, not overlapping, page aligned, never writable and executable, inside memory).

use vmm_abi::hvt::{self, Mft, NoteError};

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const CLASS_64: u8 = 2;
const DATA_LE: u8 = 1;
const EV_CURRENT: u8 = 1;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
const EHDR_SIZE: u16 = 64;
const PHDR_SIZE: u16 = 56;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PAGE: u64 = 4096;
/// Most loadable segments with file bytes an hvt image may have.
pub const MAX_LOADS: usize = 8;

/// Why an hvt image cannot boot (before it does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HvtImageError {
    /// The ELF header is not a static x86-64 executable's.
    Header(&'static str),
    /// The notes say it is not for this monitor, or its manifest is bad.
    Note(NoteError),
    /// A program header breaks a rule.
    Segment {
        /// Its index.
        phdr: u16,
        /// Which rule.
        why: &'static str,
    },
    /// The entry point is outside `MIN_LOAD_GPA .. memory`.
    Entry(u64),
    /// Guest memory is not a multiple of 2 MiB in 2 MiB ..= 4 GiB.
    Memory(u64),
    /// The manifest declares a device this VM does not attach.
    Unattached {
        /// Its handle.
        index: u32,
    },
    /// The command line (with its NUL) is longer than 8192 bytes.
    Cmdline,
}

impl core::fmt::Display for HvtImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HvtImageError::Header(why) => {
                write!(f, "invalid or unsupported executable ({why})")
            }
            HvtImageError::Note(e) => write!(f, "{e}"),
            HvtImageError::Segment { phdr, why } => {
                write!(f, "invalid executable: phdr[{phdr}] {why}")
            }
            HvtImageError::Entry(e) => write!(
                f,
                "invalid executable: e_entry {e:#x} does not fall within the memory allocation range"
            ),
            HvtImageError::Memory(m) => write!(
                f,
                "hvt guest memory of {m:#x} bytes is not a multiple of 2 MiB between 2 MiB and 4 GiB"
            ),
            HvtImageError::Unattached { index } => write!(
                f,
                "device {index} of the Solo5 manifest is declared but not attached (hvt devices are not built yet)"
            ),
            HvtImageError::Cmdline => {
                write!(f, "Guest command line too long (max=8191 characters)")
            }
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

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let w = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([w[0], w[1]]))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let w = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from(u32_at(b, off)?) | (u64::from(u32_at(b, off + 4)?) << 32))
}

/// One program header's fields.
struct Phdr {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

fn phdrs(file: &[u8]) -> Result<impl Iterator<Item = (u16, Phdr)> + '_, HvtImageError> {
    let bad = |why| Err(HvtImageError::Header(why));
    let Some(ident) = file.get(..16) else {
        return bad("shorter than an ELF header");
    };
    if &ident[..4] != ELF_MAGIC
        || ident[4] != CLASS_64
        || ident[5] != DATA_LE
        || ident[6] != EV_CURRENT
    {
        return bad("not a 64-bit little-endian ELF file");
    }
    let field = |off, what| u16_at(file, off).ok_or(HvtImageError::Header(what));
    if field(16, "no e_type")? != ET_EXEC || field(18, "no e_machine")? != EM_X86_64 {
        return bad("not an x86-64 static executable");
    }
    if u32_at(file, 20) != Some(u32::from(EV_CURRENT)) || field(52, "no e_ehsize")? != EHDR_SIZE {
        return bad("elf header invalid");
    }
    let phoff = u64_at(file, 32).ok_or(HvtImageError::Header("no e_phoff"))?;
    let phnum = field(56, "no e_phnum")?;
    if field(54, "no e_phentsize")? != PHDR_SIZE || phnum == 0 {
        return bad("program headers invalid");
    }
    let end = phoff.checked_add(u64::from(phnum) * u64::from(PHDR_SIZE));
    if end.is_none_or(|e| e > file.len() as u64) {
        return bad("program headers outside the file");
    }
    Ok((0..phnum).filter_map(move |i| {
        let at = phoff as usize + usize::from(i) * usize::from(PHDR_SIZE);
        Some((
            i,
            Phdr {
                kind: u32_at(file, at)?,
                flags: u32_at(file, at + 4)?,
                offset: u64_at(file, at + 8)?,
                vaddr: u64_at(file, at + 16)?,
                filesz: u64_at(file, at + 32)?,
                memsz: u64_at(file, at + 40)?,
                align: u64_at(file, at + 48)?,
            },
        ))
    }))
}

/// The bytes of a segment in the file.
fn bytes_of<'f>(file: &'f [u8], p: &Phdr, i: u16) -> Result<&'f [u8], HvtImageError> {
    let end = p.offset.checked_add(p.filesz);
    match end {
        Some(e) if e <= file.len() as u64 => Ok(&file[p.offset as usize..e as usize]),
        _ => Err(HvtImageError::Segment {
            phdr: i,
            why: "lies outside the file",
        }),
    }
}

/// The descriptor of the first `Solo5` note of type `want`, if any.
fn find_note(file: &[u8], want: u32) -> Result<Option<&[u8]>, HvtImageError> {
    for (i, p) in phdrs(file)? {
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
    let entry = u64_at(file, 24).ok_or(HvtImageError::Header("no e_entry"))?;
    if !(hvt::MIN_LOAD_GPA..memory).contains(&entry) {
        return Err(HvtImageError::Entry(entry));
    }
    let mut loads = [None; MAX_LOADS];
    let (mut count, mut end, mut last_vaddr) = (0, 0u64, 0u64);
    for (i, p) in phdrs(file)? {
        // Empty segments (even at address 0) are skipped, as the tender
        // skips them: guest memory starts zeroed.
        if p.kind != PT_LOAD || p.filesz == 0 {
            continue;
        }
        let bad = |why| Err(HvtImageError::Segment { phdr: i, why });
        if p.vaddr < hvt::MIN_LOAD_GPA {
            return bad("p_vaddr is below 1 MiB");
        }
        if p.vaddr < last_vaddr {
            return bad("is not in ascending order");
        }
        if p.align == 0 || !p.align.is_power_of_two() {
            return bad("p_align is not a power of 2");
        }
        let start = p.vaddr & !(p.align - 1);
        if start < hvt::MIN_LOAD_GPA || start < end {
            return bad("overlaps an earlier segment or the low 1 MiB");
        }
        let file_end = p.vaddr.checked_add(p.filesz);
        if p.vaddr >= memory || file_end.is_none_or(|e| e > memory) {
            return bad("does not fall within the memory allocation range");
        }
        if p.memsz < p.filesz {
            return bad("p_memsz is smaller than p_filesz");
        }
        let seg_end = p
            .vaddr
            .checked_add(p.memsz)
            .and_then(|e| e.checked_add(p.align - 1))
            .map(|e| e & !(p.align - 1));
        let Some(seg_end) = seg_end.filter(|&e| e <= memory) else {
            return bad("does not fall within the memory allocation range");
        };
        if !start.is_multiple_of(PAGE) || !seg_end.is_multiple_of(PAGE) {
            return bad("is not aligned with the architectural page size");
        }
        if p.flags & PF_W != 0 && p.flags & PF_X != 0 {
            return bad("requests WRITE and EXEC permissions");
        }
        bytes_of(file, &p, i)?;
        let Some(slot) = loads.get_mut(count) else {
            return bad("is one loadable segment too many");
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
        return Err(HvtImageError::Header("no loadable segment"));
    }
    Ok(HvtImage {
        entry,
        kernel_end: end,
        mft,
        loads,
    })
}
