//! Multiboot2 boot-information parser (Multiboot2 spec, section 3.6): the
//! memory map, the modules (guest images, the manifest) and the copy of the
//! ACPI RSDP. Works on a byte slice so it is host-tested; every offset is
//! bounds-checked.
#![forbid(unsafe_code)]

use core::fmt;

/// Value of EAX when a Multiboot2 loader enters the kernel.
pub const BOOTLOADER_MAGIC: u32 = 0x36d7_6289;
/// Most modules kept.
pub const MAX_MODULES: usize = 64;
/// Most memory-map entries kept.
pub const MAX_REGIONS: usize = 64;

const TAG_END: u32 = 0;
const TAG_MODULE: u32 = 3;
const TAG_MEMORY_MAP: u32 = 6;
/// A copy of the ACPI 1.0 RSDP.
const TAG_ACPI_OLD: u32 = 14;
/// A copy of the ACPI 2.0+ RSDP.
const TAG_ACPI_NEW: u32 = 15;
const MEMORY_AVAILABLE: u32 = 1;
/// Where a tag's body starts (after its type and size).
const TAG_HEADER: usize = 8;

/// RSDP layout (ACPI 6.5, 5.2.5.3): the ACPI 1.0 part, then the 2.0 part.
const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";
const RSDP_REVISION: usize = 15;
const RSDP_RSDT_ADDRESS: usize = 16;
const RSDP_LENGTH: usize = 20;
const RSDP_XSDT_ADDRESS: usize = 24;
/// Bytes covered by the ACPI 1.0 checksum.
const RSDP_V1_SIZE: usize = 20;
/// Smallest ACPI 2.0+ RSDP (covered by the extended checksum).
const RSDP_V2_SIZE: usize = 36;

/// A physical memory range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// A boot module: its physical extent and command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module<'a> {
    /// Physical extent.
    pub region: Region,
    /// Command line as given to the loader.
    pub cmdline: &'a str,
}

/// What the boot loader's copy of the ACPI RSDP says: where the root table
/// of the ACPI tables is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rsdp {
    /// The RSDP revision (0 for ACPI 1.0, 2 and above for ACPI 2.0+).
    pub revision: u8,
    /// Physical address of the RSDT (32-bit entries).
    pub rsdt_address: u32,
    /// Physical address of the XSDT (64-bit entries); ACPI 2.0+ only.
    pub xsdt_address: Option<u64>,
}

/// Which root table to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootTable {
    /// The RSDT at this physical address.
    Rsdt(u64),
    /// The XSDT at this physical address.
    Xsdt(u64),
}

impl Rsdp {
    /// The XSDT when the RSDP names one, otherwise the RSDT; `None` when
    /// it names neither.
    pub fn root_table(&self) -> Option<RootTable> {
        match (self.xsdt_address, self.rsdt_address) {
            (Some(x), _) if x != 0 => Some(RootTable::Xsdt(x)),
            (_, 0) => None,
            (_, r) => Some(RootTable::Rsdt(u64::from(r))),
        }
    }
}

/// Parses an RSDP copy: the body of tag 14 (`extended` false: only the
/// ACPI 1.0 part is read) or 15 (`extended` true: the ACPI 2.0+ part too,
/// when the revision has one). `None` when the signature or a checksum is
/// wrong: the firmware's tables are then not to be trusted, though the rest
/// of the boot information is.
fn parse_rsdp(body: &[u8], extended: bool) -> Option<Rsdp> {
    let v1 = body.get(..RSDP_V1_SIZE)?;
    if &v1[..RSDP_SIGNATURE.len()] != RSDP_SIGNATURE || checksum(v1) != 0 {
        return None;
    }
    let revision = v1[RSDP_REVISION];
    let rsdt_address = u32_at(v1, RSDP_RSDT_ADDRESS).ok()?;
    if revision == 0 || !extended {
        return Some(Rsdp {
            revision,
            rsdt_address,
            xsdt_address: None,
        });
    }
    let length = u32_at(body, RSDP_LENGTH).ok()? as usize;
    if length < RSDP_V2_SIZE {
        return None;
    }
    let full = body.get(..length)?;
    if checksum(full) != 0 {
        return None;
    }
    Some(Rsdp {
        revision,
        rsdt_address,
        xsdt_address: Some(u64_at(full, RSDP_XSDT_ADDRESS).ok()?),
    })
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b))
}

/// What the kernel needs from the boot information.
#[derive(Debug)]
pub struct BootInformation<'a> {
    /// Available RAM.
    pub available: [Region; MAX_REGIONS],
    /// Entries used in `available`.
    pub available_count: usize,
    /// Modules, in order.
    pub modules: [Option<Module<'a>>; MAX_MODULES],
    /// Total size of the information structure itself.
    pub total_size: u64,
    /// Where the information structure lies (its address is that of the
    /// slice given to [`parse`]): module command lines point into it.
    pub location: Region,
    /// The valid ACPI 1.0 RSDP copy (tag 14), if the loader passed one.
    pub rsdp_v1: Option<Rsdp>,
    /// The valid ACPI 2.0+ RSDP copy (tag 15), if the loader passed one.
    pub rsdp_v2: Option<Rsdp>,
}

/// Why the boot information cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mb2Error {
    /// The structure is shorter than its header says, or a tag overruns it.
    Truncated,
    /// A tag's fields are inconsistent.
    BadTag(u32),
    /// More modules or regions than this kernel keeps.
    TooMany,
    /// No memory map tag.
    NoMemoryMap,
}

impl fmt::Display for Mb2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mb2Error::Truncated => write!(f, "multiboot2 information is truncated"),
            Mb2Error::BadTag(t) => write!(f, "multiboot2 tag type {t} is malformed"),
            Mb2Error::TooMany => write!(f, "too many multiboot2 modules or memory regions"),
            Mb2Error::NoMemoryMap => write!(f, "multiboot2 information has no memory map"),
        }
    }
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, Mb2Error> {
    let s = b.get(off..off + 4).ok_or(Mb2Error::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, Mb2Error> {
    Ok(u64::from(u32_at(b, off)?) | (u64::from(u32_at(b, off + 4)?) << 32))
}

/// Parses the information structure; `bytes` starts at its first byte and
/// must hold at least its `total_size`.
pub fn parse(bytes: &[u8]) -> Result<BootInformation<'_>, Mb2Error> {
    let total = u32_at(bytes, 0)? as usize;
    let bytes = bytes.get(..total).ok_or(Mb2Error::Truncated)?;
    let mut info = BootInformation {
        available: [Region::default(); MAX_REGIONS],
        available_count: 0,
        modules: [None; MAX_MODULES],
        total_size: total as u64,
        location: Region {
            start: bytes.as_ptr() as u64,
            end: bytes.as_ptr() as u64 + total as u64,
        },
        rsdp_v1: None,
        rsdp_v2: None,
    };
    let mut module_count = 0;
    let mut saw_map = false;
    let mut off = 8;
    loop {
        let ty = u32_at(bytes, off)?;
        let size = u32_at(bytes, off + 4)? as usize;
        if size < 8 {
            return Err(Mb2Error::BadTag(ty));
        }
        let tag = bytes.get(off..off + size).ok_or(Mb2Error::Truncated)?;
        match ty {
            TAG_END => break,
            TAG_MODULE => {
                if size < 16 {
                    return Err(Mb2Error::BadTag(ty));
                }
                let start = u64::from(u32_at(tag, 8)?);
                let end = u64::from(u32_at(tag, 12)?);
                if end < start {
                    return Err(Mb2Error::BadTag(ty));
                }
                let text = &tag[16..];
                let text = &text[..text.iter().position(|&c| c == 0).unwrap_or(text.len())];
                let cmdline = core::str::from_utf8(text).map_err(|_| Mb2Error::BadTag(ty))?;
                let slot = info
                    .modules
                    .get_mut(module_count)
                    .ok_or(Mb2Error::TooMany)?;
                *slot = Some(Module {
                    region: Region { start, end },
                    cmdline,
                });
                module_count += 1;
            }
            TAG_MEMORY_MAP => {
                saw_map = true;
                let entry_size = u32_at(tag, 8)? as usize;
                if entry_size < 24 {
                    return Err(Mb2Error::BadTag(ty));
                }
                let mut e = 16;
                while e + entry_size <= size {
                    let base = u64_at(tag, e)?;
                    let len = u64_at(tag, e + 8)?;
                    if u32_at(tag, e + 16)? == MEMORY_AVAILABLE && len > 0 {
                        let slot = info
                            .available
                            .get_mut(info.available_count)
                            .ok_or(Mb2Error::TooMany)?;
                        *slot = Region {
                            start: base,
                            end: base.saturating_add(len),
                        };
                        info.available_count += 1;
                    }
                    e += entry_size;
                }
            }
            TAG_ACPI_OLD | TAG_ACPI_NEW => {
                let body = &tag[TAG_HEADER..];
                let needed = if ty == TAG_ACPI_OLD {
                    RSDP_V1_SIZE
                } else {
                    RSDP_V2_SIZE
                };
                if body.len() < needed {
                    return Err(Mb2Error::BadTag(ty));
                }
                let rsdp = parse_rsdp(body, ty == TAG_ACPI_NEW);
                if ty == TAG_ACPI_OLD {
                    info.rsdp_v1 = rsdp;
                } else {
                    info.rsdp_v2 = rsdp;
                }
            }
            _ => {}
        }
        off = off
            .checked_add(size.next_multiple_of(8))
            .ok_or(Mb2Error::Truncated)?;
    }
    if !saw_map {
        return Err(Mb2Error::NoMemoryMap);
    }
    Ok(info)
}

impl<'a> BootInformation<'a> {
    /// The modules, in order.
    pub fn modules(&self) -> impl Iterator<Item = Module<'a>> + '_ {
        self.modules.iter().map_while(|m| *m)
    }

    /// The available RAM regions.
    pub fn available(&self) -> &[Region] {
        &self.available[..self.available_count]
    }

    /// The ACPI RSDP to use: the 2.0+ copy if valid, else the 1.0 copy.
    pub fn rsdp(&self) -> Option<Rsdp> {
        self.rsdp_v2.or(self.rsdp_v1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    fn tag(out: &mut Vec<u8>, ty: u32, body: &[u8]) {
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&((8 + body.len()) as u32).to_le_bytes());
        out.extend_from_slice(body);
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
    }

    fn sample() -> Vec<u8> {
        let mut out = std::vec![0u8; 8];
        let mut m = Vec::new();
        m.extend_from_slice(&0x20_0000u32.to_le_bytes());
        m.extend_from_slice(&0x20_1000u32.to_le_bytes());
        m.extend_from_slice(b"image=hello\0");
        tag(&mut out, TAG_MODULE, &m);
        let mut mm = Vec::new();
        mm.extend_from_slice(&24u32.to_le_bytes());
        mm.extend_from_slice(&0u32.to_le_bytes());
        for (base, len, ty) in [
            (0u64, 0x9f000u64, 1u32),
            (0xf0000, 0x10000, 2),
            (0x10_0000, 0xff0_0000, 1),
        ] {
            mm.extend_from_slice(&base.to_le_bytes());
            mm.extend_from_slice(&len.to_le_bytes());
            mm.extend_from_slice(&ty.to_le_bytes());
            mm.extend_from_slice(&0u32.to_le_bytes());
        }
        tag(&mut out, TAG_MEMORY_MAP, &mm);
        tag(&mut out, TAG_END, &[]);
        let len = out.len() as u32;
        out[0..4].copy_from_slice(&len.to_le_bytes());
        out
    }

    #[test]
    fn parses_modules_and_memory() {
        let b = sample();
        let info = parse(&b).unwrap();
        assert_eq!(info.location.start, b.as_ptr() as u64);
        assert_eq!(info.location.end - info.location.start, b.len() as u64);
        let mods: Vec<_> = info.modules().collect();
        assert_eq!(mods.len(), 1);
        assert_eq!(mods[0].cmdline, "image=hello");
        assert_eq!(
            mods[0].region,
            Region {
                start: 0x20_0000,
                end: 0x20_1000
            }
        );
        assert_eq!(info.available().len(), 2);
        assert_eq!(
            info.available()[1],
            Region {
                start: 0x10_0000,
                end: 0x1000_0000
            }
        );
    }

    #[test]
    fn rejects_malformed() {
        let b = sample();
        assert_eq!(parse(&b[..4]).unwrap_err(), Mb2Error::Truncated);
        assert_eq!(parse(&b[..b.len() - 8]).unwrap_err(), Mb2Error::Truncated);
        let mut bad = b.clone();
        bad[12..16].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(parse(&bad).unwrap_err(), Mb2Error::BadTag(TAG_MODULE));
        let mut no_map = std::vec![0u8; 8];
        tag(&mut no_map, TAG_END, &[]);
        let len = no_map.len() as u32;
        no_map[0..4].copy_from_slice(&len.to_le_bytes());
        assert_eq!(parse(&no_map).unwrap_err(), Mb2Error::NoMemoryMap);
    }

    /// An RSDP with valid checksums: revision 0 (20 bytes) or 2 (36 bytes).
    fn rsdp(revision: u8, rsdt: u32, xsdt: u64) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(RSDP_SIGNATURE);
        r.push(0);
        r.extend_from_slice(b"BOCHS ");
        r.push(revision);
        r.extend_from_slice(&rsdt.to_le_bytes());
        r[8] = 0u8.wrapping_sub(checksum(&r));
        if revision >= 2 {
            r.extend_from_slice(&(RSDP_V2_SIZE as u32).to_le_bytes());
            r.extend_from_slice(&xsdt.to_le_bytes());
            r.extend_from_slice(&[0; 4]);
            r[32] = 0u8.wrapping_sub(checksum(&r));
        }
        r
    }

    /// `sample()` with extra tags before the end tag.
    fn with_tags(tags: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut out = sample();
        out.truncate(out.len() - 8);
        for (ty, body) in tags {
            tag(&mut out, *ty, body);
        }
        tag(&mut out, TAG_END, &[]);
        let len = out.len() as u32;
        out[0..4].copy_from_slice(&len.to_le_bytes());
        out
    }

    #[test]
    fn no_acpi_tags_means_no_rsdp() {
        let b = sample();
        assert_eq!(parse(&b).unwrap().rsdp(), None);
    }

    #[test]
    fn parses_acpi_1_rsdp() {
        let b = with_tags(&[(TAG_ACPI_OLD, rsdp(0, 0x0fff_0000, 0))]);
        let r = parse(&b).unwrap().rsdp().unwrap();
        assert_eq!(
            r,
            Rsdp {
                revision: 0,
                rsdt_address: 0x0fff_0000,
                xsdt_address: None
            }
        );
        assert_eq!(r.root_table(), Some(RootTable::Rsdt(0x0fff_0000)));
    }

    #[test]
    fn prefers_acpi_2_rsdp_and_its_xsdt() {
        let b = with_tags(&[
            (TAG_ACPI_OLD, rsdp(0, 0x1000, 0)),
            (TAG_ACPI_NEW, rsdp(2, 0x1000, 0x2000)),
        ]);
        let info = parse(&b).unwrap();
        assert_eq!(
            info.rsdp_v1.unwrap().root_table(),
            Some(RootTable::Rsdt(0x1000))
        );
        let r = info.rsdp().unwrap();
        assert_eq!(r.revision, 2);
        assert_eq!(r.root_table(), Some(RootTable::Xsdt(0x2000)));
    }

    #[test]
    fn acpi_2_rsdp_without_xsdt_falls_back_to_rsdt() {
        let b = with_tags(&[(TAG_ACPI_NEW, rsdp(2, 0x1000, 0))]);
        let r = parse(&b).unwrap().rsdp().unwrap();
        assert_eq!(r.root_table(), Some(RootTable::Rsdt(0x1000)));
    }

    #[test]
    fn acpi_1_tag_reads_only_the_1_0_part() {
        // Some loaders copy only 20 bytes of a revision-2 RSDP into tag 14.
        let mut v2 = rsdp(2, 0x1000, 0x2000);
        v2.truncate(RSDP_V1_SIZE);
        let b = with_tags(&[(TAG_ACPI_OLD, v2)]);
        let r = parse(&b).unwrap().rsdp().unwrap();
        assert_eq!(r.root_table(), Some(RootTable::Rsdt(0x1000)));
    }

    #[test]
    fn bad_rsdp_is_ignored() {
        let mut bad_sum = rsdp(0, 0x1000, 0);
        bad_sum[8] ^= 1;
        let mut bad_sig = rsdp(0, 0x1000, 0);
        bad_sig[0] = b'X';
        let mut bad_ext = rsdp(2, 0x1000, 0x2000);
        bad_ext[32] ^= 1;
        let mut long = rsdp(2, 0x1000, 0x2000);
        long[RSDP_LENGTH..RSDP_LENGTH + 4].copy_from_slice(&100u32.to_le_bytes());
        for (ty, body) in [
            (TAG_ACPI_OLD, bad_sum),
            (TAG_ACPI_OLD, bad_sig),
            (TAG_ACPI_NEW, bad_ext),
            (TAG_ACPI_NEW, long),
        ] {
            let b = with_tags(&[(ty, body)]);
            let info = parse(&b).unwrap();
            assert_eq!(info.rsdp(), None);
            assert_eq!(info.modules().count(), 1);
        }
    }

    #[test]
    fn short_rsdp_tag_is_malformed() {
        let b = with_tags(&[(TAG_ACPI_OLD, rsdp(0, 0x1000, 0)[..19].to_vec())]);
        assert_eq!(parse(&b).unwrap_err(), Mb2Error::BadTag(TAG_ACPI_OLD));
        let b = with_tags(&[(TAG_ACPI_NEW, rsdp(0, 0x1000, 0))]);
        assert_eq!(parse(&b).unwrap_err(), Mb2Error::BadTag(TAG_ACPI_NEW));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(pos in 0usize..200, val: u8) {
            let mut b = sample();
            if pos < b.len() { b[pos] = val; }
            let _ = parse(&b);
        }

        #[test]
        fn rsdp_tags_never_panic(pos in 0usize..300, val: u8, revision in 0u8..4) {
            let mut b = with_tags(&[
                (TAG_ACPI_OLD, rsdp(0, 0x1000, 0)),
                (TAG_ACPI_NEW, rsdp(revision, 0x1000, 0x2000)),
            ]);
            if pos < b.len() { b[pos] = val; }
            let _ = parse(&b);
        }
    }
}
