//! The hypervisor's own page rights (W^X): which of its identity-mapped pages are code (read-only, executable), read-only data, or writable data (never executable), as page-table entries, and an audit that counts any page both writable and executable.
//!
//! The boot page tables map the first 4 GiB 1:1: the first 2 MiB in
//! 4 KiB pages (the hypervisor's image, loaded at 1 MiB, and low memory),
//! the rest in 2 MiB pages. [`small_page`] and [`large_page`] give each
//! entry its rights from the image's [`Layout`]; the hardware layer writes
//! them, turns on EFER.NXE and CR0.WP (so the rights bind the hypervisor
//! itself) and publishes [`audit`]'s counts. The one exception is the
//! application processors' start-up page, which they run in real mode and
//! then with paging on, and which the boot core rewrites for each of them:
//! it is writable and executable while cores come up, and only then
//! ([`Layout::sealed`]) plain data like the rest of low memory. The JIT's
//! code area is data while the boot core writes compiled hooks into it
//! and code once it is sealed ([`Layout::jit_sealed`]), before any other
//! core may run it; its pages no code was published from go back to data
//! while the control core compiles a hook attached at runtime into them,
//! and are sealed again before that hook is published.

#![forbid(unsafe_code)]

use core::ops::Range;
use x86_64::structures::paging::PageTableFlags;

/// Bytes in a small page.
pub const SMALL_PAGE: u64 = 4096;
/// Bytes in a large page.
pub const LARGE_PAGE: u64 = 2 << 20;
/// Small pages the first large page is split into.
pub const SMALL_PAGES: usize = (LARGE_PAGE / SMALL_PAGE) as usize;

/// Where the hypervisor's image keeps what (page-aligned ranges, from the
/// linker script's symbols).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Code: the boot section and `.text`.
    pub text: Range<u64>,
    /// Read-only data.
    pub rodata: Range<u64>,
    /// The guard page below the boot stack: left unmapped.
    pub guard: u64,
    /// The application processors' start-up page, while it is in use.
    pub trampoline: Option<u64>,
    /// The JIT's code area: written as data at boot, then code
    /// (`jit_code`), never both.
    pub jit: Range<u64>,
    /// Whether the JIT's code area has been sealed (read-execute).
    pub jit_code: bool,
}

impl Layout {
    /// The same layout once every core is up: the start-up page is data.
    pub fn sealed(&self) -> Layout {
        Layout {
            trampoline: None,
            ..self.clone()
        }
    }

    /// The same layout with the JIT's code area sealed: read-execute.
    pub fn jit_sealed(&self) -> Layout {
        Layout {
            jit_code: true,
            ..self.clone()
        }
    }
}

/// What a page may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rights {
    /// Not mapped.
    None,
    /// Read and execute.
    Code,
    /// Read only.
    ReadOnly,
    /// Read and write, never execute.
    Data,
    /// Read, write and execute: only the start-up page, while cores start.
    StartUp,
}

impl Rights {
    /// The page-table flags for these rights (`huge` for a 2 MiB entry).
    pub fn flags(self, huge: bool) -> PageTableFlags {
        let p = PageTableFlags::PRESENT;
        let flags = match self {
            Rights::None => return PageTableFlags::empty(),
            Rights::Code => p,
            Rights::ReadOnly => p | PageTableFlags::NO_EXECUTE,
            Rights::Data => p | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE,
            Rights::StartUp => p | PageTableFlags::WRITABLE,
        };
        if huge {
            flags | PageTableFlags::HUGE_PAGE
        } else {
            flags
        }
    }
}

/// The rights of the 4 KiB page at `addr` (below 2 MiB).
pub fn rights(addr: u64, layout: &Layout) -> Rights {
    if addr == layout.guard {
        Rights::None
    } else if layout.text.contains(&addr) {
        Rights::Code
    } else if layout.rodata.contains(&addr) {
        Rights::ReadOnly
    } else if layout.trampoline == Some(addr) {
        Rights::StartUp
    } else if layout.jit.contains(&addr) && layout.jit_code {
        Rights::Code
    } else {
        Rights::Data
    }
}

/// The page-table entry of small page `index` (of the first 2 MiB).
pub fn small_page(index: usize, layout: &Layout) -> u64 {
    let addr = index as u64 * SMALL_PAGE;
    match rights(addr, layout) {
        Rights::None => 0,
        r => addr | r.flags(false).bits(),
    }
}

/// The page-directory entry of large page `index` (2 MiB and up: RAM the
/// allocator hands out, device registers): data, never executable.
pub fn large_page(index: usize) -> u64 {
    (index as u64 * LARGE_PAGE) | Rights::Data.flags(true).bits()
}

/// What an audit of the page tables found, in 4 KiB pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    /// Executable pages.
    pub exec: u64,
    /// Writable pages.
    pub writable: u64,
    /// Pages both writable and executable (0 once every core is up).
    pub writable_exec: u64,
}

impl Audit {
    /// Adds one mapped entry covering `pages` 4 KiB pages.
    pub fn add(&mut self, entry: u64, pages: u64) {
        let f = PageTableFlags::from_bits_truncate(entry);
        if !f.contains(PageTableFlags::PRESENT) {
            return;
        }
        let exec = !f.contains(PageTableFlags::NO_EXECUTE);
        let writable = f.contains(PageTableFlags::WRITABLE);
        self.exec += u64::from(exec) * pages;
        self.writable += u64::from(writable) * pages;
        self.writable_exec += u64::from(exec && writable) * pages;
    }
}

/// Audits a whole set of entries: the small pages, then the large ones.
pub fn audit(small: impl IntoIterator<Item = u64>, large: impl IntoIterator<Item = u64>) -> Audit {
    let mut a = Audit::default();
    for e in small {
        a.add(e, 1);
    }
    for e in large {
        a.add(e, LARGE_PAGE / SMALL_PAGE);
    }
    a
}

#[cfg(test)]
mod tests;
