//! Multiboot2 boot-information parser (Multiboot2 spec, section 3.6): the
//! memory map and the modules (guest images, the manifest). Works on a byte
//! slice so it is host-tested; every offset is bounds-checked.

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
const MEMORY_AVAILABLE: u32 = 1;

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

    proptest::proptest! {
        #[test]
        fn never_panics(pos in 0usize..200, val: u8) {
            let mut b = sample();
            if pos < b.len() { b[pos] = val; }
            let _ = parse(&b);
        }
    }
}
