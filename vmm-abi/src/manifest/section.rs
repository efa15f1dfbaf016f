//! The manifest's section table: one entry per kind of record (VMs, links,
//! NICs, hooks, devices, and the kinds to come), each saying where its
//! records are, how many and how large; and the checks that place every
//! section before a record is read.

use super::error::{Field, ManifestError, Problem};
use super::{
    HEADER_SIZE, HOOK_RECORD_SIZE, LINK_RECORD_SIZE, MAX_HOOK_INSNS, MAX_HOOK_MAPS, MAX_HOOKS,
    MAX_LINKS, MAX_NICS, MAX_VMS, NIC_RECORD_SIZE, RECORD_SIZE, err,
};
use crate::hook::insn::INSN_SIZE;
use crate::hook::map::MAP_DEF_SIZE;
use crate::text::le;
use core::ops::Range;

/// Bytes in one section table entry.
pub const SECTION_ENTRY_SIZE: usize = 16;
/// Most entries a section table may have. Each known kind appears at most
/// once, so this only bounds the work a hostile table can cause; it leaves
/// room for the kinds to come without a change to the header.
pub const MAX_SECTIONS: u32 = 16;

const S_KIND: usize = 0;
const S_OFFSET: usize = 4;
const S_COUNT: usize = 8;
const S_RECORD_SIZE: usize = 12;
const _: () = assert!(S_RECORD_SIZE + 4 == SECTION_ENTRY_SIZE);

/// The kinds of section this ABI version knows. Numbers 5 and 6 are set
/// aside for capability grants and guest ABIs; a new kind is a new variant
/// (and an [`crate::ABI_VERSION`] bump), never a new header field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum SectionKind {
    /// VM records ([`super::RECORD_SIZE`] bytes each); exactly one such
    /// section, with at least one VM.
    Vms = 1,
    /// Link records ([`super::LINK_RECORD_SIZE`] bytes each); optional.
    Links = 2,
    /// Physical NIC records ([`super::NIC_RECORD_SIZE`] bytes each);
    /// optional.
    Nics = 3,
    /// Hook records ([`super::HOOK_RECORD_SIZE`] bytes each); optional.
    Hooks = 4,
    /// The hooks' instructions, one 8-byte eBPF instruction per record,
    /// each hook's run after the previous one's; present with hooks.
    HookCode = 7,
    /// The hooks' map definitions, one 16-byte definition per record, each
    /// hook's run after the previous one's; present when a hook has maps.
    HookMaps = 8,
    /// Block device records ([`super::BLOCK_RECORD_SIZE`] bytes each);
    /// optional.
    Blocks = 9,
    /// Net device name records ([`super::NET_DEVICE_RECORD_SIZE`] bytes
    /// each); optional.
    NetDevices = 10,
}

/// Number of [`SectionKind`]s.
pub const SECTION_KINDS: usize = 8;

impl SectionKind {
    /// Every kind, in number order.
    pub const ALL: [SectionKind; SECTION_KINDS] = [
        SectionKind::Vms,
        SectionKind::Links,
        SectionKind::Nics,
        SectionKind::Hooks,
        SectionKind::HookCode,
        SectionKind::HookMaps,
        SectionKind::Blocks,
        SectionKind::NetDevices,
    ];

    /// The kind with this wire number.
    pub const fn from_u32(kind: u32) -> Option<Self> {
        match kind {
            1 => Some(SectionKind::Vms),
            2 => Some(SectionKind::Links),
            3 => Some(SectionKind::Nics),
            4 => Some(SectionKind::Hooks),
            7 => Some(SectionKind::HookCode),
            8 => Some(SectionKind::HookMaps),
            9 => Some(SectionKind::Blocks),
            10 => Some(SectionKind::NetDevices),
            _ => None,
        }
    }

    /// The kind's name in messages.
    pub const fn name(self) -> &'static str {
        match self {
            SectionKind::Vms => "vms",
            SectionKind::Links => "links",
            SectionKind::Nics => "nics",
            SectionKind::Hooks => "hooks",
            SectionKind::HookCode => "hook code",
            SectionKind::HookMaps => "hook maps",
            SectionKind::Blocks => "blocks",
            SectionKind::NetDevices => "net devices",
        }
    }

    /// Bytes in one record of this kind.
    pub const fn record_size(self) -> usize {
        match self {
            SectionKind::Vms => RECORD_SIZE,
            SectionKind::Links => LINK_RECORD_SIZE,
            SectionKind::Nics => NIC_RECORD_SIZE,
            SectionKind::Hooks => HOOK_RECORD_SIZE,
            SectionKind::HookCode => INSN_SIZE,
            SectionKind::HookMaps => MAP_DEF_SIZE,
            SectionKind::Blocks => super::BLOCK_RECORD_SIZE,
            SectionKind::NetDevices => super::NET_DEVICE_RECORD_SIZE,
        }
    }

    /// The fewest and most records a section of this kind may hold, and
    /// the field an error about the count names.
    pub const fn counts(self) -> (u32, u32, Field) {
        match self {
            SectionKind::Vms => (1, MAX_VMS, Field::VmCount),
            SectionKind::Links => (0, MAX_LINKS, Field::LinkCount),
            SectionKind::Nics => (0, MAX_NICS, Field::NicCount),
            SectionKind::Hooks => (0, MAX_HOOKS, Field::HookCount),
            SectionKind::HookCode => (0, MAX_HOOK_INSNS, Field::HookCodeCount),
            SectionKind::HookMaps => (0, MAX_HOOK_MAPS, Field::HookMapCount),
            SectionKind::Blocks => (0, super::MAX_BLOCKS, Field::BlockCount),
            SectionKind::NetDevices => (0, super::MAX_NET_DEVICES, Field::NetDeviceCount),
        }
    }

    /// Its place in [`SectionKind::ALL`].
    const fn index(self) -> usize {
        match self {
            SectionKind::Vms => 0,
            SectionKind::Links => 1,
            SectionKind::Nics => 2,
            SectionKind::Hooks => 3,
            SectionKind::HookCode => 4,
            SectionKind::HookMaps => 5,
            SectionKind::Blocks => 6,
            SectionKind::NetDevices => 7,
        }
    }
}

/// One section table entry, as it is on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    /// Its kind's number ([`SectionKind`]).
    pub kind: u32,
    /// Byte offset of its first record from the start of the manifest.
    pub offset: u32,
    /// Number of records.
    pub count: u32,
    /// Bytes per record.
    pub record_size: u32,
}

impl Section {
    /// The wire entry.
    pub fn encode(&self) -> [u8; SECTION_ENTRY_SIZE] {
        let mut e = [0u8; SECTION_ENTRY_SIZE];
        le::put_u32(&mut e, S_KIND, self.kind);
        le::put_u32(&mut e, S_OFFSET, self.offset);
        le::put_u32(&mut e, S_COUNT, self.count);
        le::put_u32(&mut e, S_RECORD_SIZE, self.record_size);
        e
    }

    /// Reads an entry from the first [`SECTION_ENTRY_SIZE`] bytes of `e`
    /// (the caller checked there are that many).
    fn decode(e: &[u8]) -> Self {
        Section {
            kind: le::u32_at(e, S_KIND),
            offset: le::u32_at(e, S_OFFSET),
            count: le::u32_at(e, S_COUNT),
            record_size: le::u32_at(e, S_RECORD_SIZE),
        }
    }

    /// Its bytes, start and end (never overflows: both factors are `u32`).
    fn span(&self) -> (u64, u64) {
        let start = u64::from(self.offset);
        (
            start,
            start + u64::from(self.count) * u64::from(self.record_size),
        )
    }
}

/// Where each known kind's records are, once the table is checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Located {
    ranges: [Option<Range<usize>>; SECTION_KINDS],
}

impl Located {
    /// The byte range of `kind`'s records (empty if it has no section).
    pub(super) fn range(&self, kind: SectionKind) -> Range<usize> {
        self.ranges[kind.index()].clone().unwrap_or(0..0)
    }
}

/// The first byte after a table of `count` entries.
pub(super) const fn table_end(count: u32) -> usize {
    HEADER_SIZE + count as usize * SECTION_ENTRY_SIZE
}

/// Checks the `count` entries of the section table of `bytes` (the header
/// is already checked, `count` is within 1..=[`MAX_SECTIONS`]): each kind
/// known and present at most once, its record size and count right, its
/// bytes after the table, inside the manifest and shared with no other
/// section; a VM section present; and no byte after the table unclaimed.
pub(super) fn locate(bytes: &[u8], count: u32) -> Result<Located, ManifestError> {
    let data = table_end(count);
    let len = bytes.len();
    if len < data {
        return Err(err(
            None,
            Field::Size,
            Problem::Mismatch {
                found: len as u64,
                expected: data as u64,
            },
        ));
    }
    let mut located = Located::default();
    let mut first_of = [None::<u32>; SECTION_KINDS];
    let mut spans = [(0u64, 0u64); MAX_SECTIONS as usize];
    for i in 0..count {
        let e = |field, problem| Err(err(Some(i), field, problem));
        let at = table_end(i);
        let s = Section::decode(&bytes[at..at + SECTION_ENTRY_SIZE]);
        let Some(kind) = SectionKind::from_u32(s.kind) else {
            return e(Field::SectionKind, Problem::UnknownSection { kind: s.kind });
        };
        if let Some(first) = first_of[kind.index()] {
            return e(Field::SectionKind, Problem::DuplicateSection { first });
        }
        if s.record_size as usize != kind.record_size() {
            return e(
                Field::SectionRecordSize,
                Problem::RecordSize {
                    found: s.record_size,
                    expected: kind.record_size() as u32,
                },
            );
        }
        let (min, max, field) = kind.counts();
        if !(min..=max).contains(&s.count) {
            return e(
                field,
                Problem::OutOfRange {
                    found: s.count.into(),
                    min: min.into(),
                    max: max.into(),
                },
            );
        }
        let (start, end) = s.span();
        if start < data as u64 || end > len as u64 {
            return e(
                Field::SectionOffset,
                Problem::OutOfBounds {
                    start,
                    end,
                    min: data as u64,
                    max: len as u64,
                },
            );
        }
        let earlier = &spans[..i as usize];
        if let Some(j) = earlier.iter().position(|&(s, e)| start < e && s < end) {
            return e(Field::SectionOffset, Problem::Overlap { section: j as u32 });
        }
        spans[i as usize] = (start, end);
        first_of[kind.index()] = Some(i);
        // Both ends are within `len`, so they fit a usize.
        located.ranges[kind.index()] = Some(start as usize..end as usize);
    }
    if located.ranges[SectionKind::Vms.index()].is_none() {
        return Err(err(
            None,
            Field::VmCount,
            Problem::OutOfRange {
                found: 0,
                min: 1,
                max: MAX_VMS.into(),
            },
        ));
    }
    let spans = &spans[..count as usize];
    // Sections do not overlap, so following them from the table's end
    // either reaches the end of the manifest or stops at unclaimed bytes.
    let mut pos = data as u64;
    while let Some(&(_, end)) = spans.iter().find(|&&(s, e)| s == pos && e > s) {
        pos = end;
    }
    if pos < len as u64 {
        let end = spans
            .iter()
            .map(|&(s, _)| s)
            .filter(|&s| s > pos)
            .min()
            .unwrap_or(len as u64);
        return Err(err(
            None,
            Field::Size,
            Problem::Unclaimed { start: pos, end },
        ));
    }
    Ok(located)
}
