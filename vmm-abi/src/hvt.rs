//! The Solo5 hvt guest ABI, as Corral speaks it beside its own: hypercall ports and argument layouts, the boot info, the application manifest (MFT) and the ELF notes that mark an hvt unikernel, with checked readers for what a guest or an image file gives (facts from Solo5's public headers; no code from there).
//!
//! An hvt guest calls the monitor with a 32-bit `out` to port
//! [`HYPERCALL_PIO_BASE`] + N, EAX holding the guest-physical address of
//! the call's argument struct. It starts in 64-bit mode at its ELF entry
//! with RDI = [`BOOT_INFO_GPA`], on page tables and a GDT the monitor
//! builds in low memory ([`GDT_GPA`], [`PML4_GPA`]). Its ELF carries two
//! notes owned by `Solo5`: `ABI1` (target and version) and `MFT1` (the
//! devices it wants, by name and type).

#![forbid(unsafe_code)]

use core::fmt;

/// Port of hypercall 0; hypercall N is this plus N.
pub const HYPERCALL_PIO_BASE: u16 = 0x500;
/// `walltime`: nanoseconds since the Unix epoch.
pub const HC_WALLTIME: u16 = 1;
/// `puts`: console bytes.
pub const HC_PUTS: u16 = 2;
/// `poll`: wait for devices or a timeout.
pub const HC_POLL: u16 = 3;
/// `block_write`.
pub const HC_BLOCK_WRITE: u16 = 4;
/// `block_read`.
pub const HC_BLOCK_READ: u16 = 5;
/// `net_write`.
pub const HC_NET_WRITE: u16 = 6;
/// `net_read`.
pub const HC_NET_READ: u16 = 7;
/// `halt`: the guest ends with an exit status.
pub const HC_HALT: u16 = 8;
/// One past the last hypercall.
pub const HC_MAX: u16 = 9;
/// The access size of a hypercall `out`, in bytes.
pub const HYPERCALL_SIZE: u8 = 4;

/// Bytes of `struct hvt_hc_walltime` (`nsecs` u64, out).
pub const WALLTIME_SIZE: u64 = 8;
/// Bytes of `struct hvt_hc_puts` (`data` u64, `len` u64).
pub const PUTS_SIZE: u64 = 16;
/// Bytes of `struct hvt_hc_poll` (`timeout_nsecs` u64 in, `ready_set` u64
/// out at 8, `ret` i32 out at 16).
pub const POLL_SIZE: u64 = 24;
/// Offset of `poll`'s `ready_set`.
pub const POLL_READY_SET: u64 = 8;
/// Offset of `poll`'s `ret`.
pub const POLL_RET: u64 = 16;
/// Bytes of `struct hvt_hc_halt` (`cookie` u64, `exit_status` i32 at 8).
pub const HALT_SIZE: u64 = 16;
/// Offset of `halt`'s `exit_status`.
pub const HALT_STATUS: u64 = 8;
/// Most bytes a `halt` cookie points at.
pub const HALT_COOKIE_MAX: u64 = 512;
/// Bytes of `struct hvt_hc_block_write` and `struct hvt_hc_block_read`
/// (`handle` u64, `offset` u64 at 8, `data` u64 at 16, `len` u64 at 24,
/// `ret` i32 out at 32, padding).
pub const BLOCK_SIZE: u64 = 40;
/// Offset of a block call's `offset`.
pub const BLOCK_OFFSET: u64 = 8;
/// Offset of a block call's `data`.
pub const BLOCK_DATA: u64 = 16;
/// Offset of a block call's `len`.
pub const BLOCK_LEN: u64 = 24;
/// Offset of a block call's `ret`.
pub const BLOCK_RET: u64 = 32;
/// Offset of a block device's `capacity` (u64) in its manifest entry.
pub const MFT_BLOCK_CAPACITY: usize = MFT_UNION;
/// Offset of a block device's `block_size` (u16) in its manifest entry.
pub const MFT_BLOCK_SIZE: usize = MFT_UNION + 8;

/// Bytes of `struct hvt_hc_net_write` and `struct hvt_hc_net_read`
/// (`handle` u64, `data` u64 at 8, `len` u64 at 16 — a read's buffer size
/// in, the frame's length out — `ret` i32 out at 24, padding).
pub const NET_SIZE: u64 = 32;
/// Offset of a net call's `data`.
pub const NET_DATA: u64 = 8;
/// Offset of a net call's `len`.
pub const NET_LEN: u64 = 16;
/// Offset of a net call's `ret`.
pub const NET_RET: u64 = 24;
/// Offset of a net device's `mac` (6 bytes) in its manifest entry.
pub const MFT_NET_MAC: usize = MFT_UNION;
/// Bytes of a net device's MAC address.
pub const MAC_LEN: usize = 6;
/// Offset of a net device's `mtu` (u16) in its manifest entry.
pub const MFT_NET_MTU: usize = MFT_UNION + MAC_LEN;

/// The exit status of `solo5_abort()` (and of a trap, a failed assertion,
/// a smashed stack).
pub const EXIT_ABORT: i32 = 255;

/// Result codes (`solo5_result_t`).
pub const R_OK: i32 = 0;
/// Try again.
pub const R_AGAIN: i32 = 1;
/// A bad argument.
pub const R_EINVAL: i32 = 2;
/// Anything else.
pub const R_EUNSPEC: i32 = 3;

/// Where the boot info goes (RDI at entry).
pub const BOOT_INFO_GPA: u64 = 0x1_0000;
/// Offset of the boot info's `host_features` (u32).
pub const BOOT_INFO_HOST_FEATURES: usize = 40;
/// Offset of the boot info's `net_ring` (u64: the shared ring's address,
/// 0 without one).
pub const BOOT_INFO_NET_RING: usize = 48;

/// Host feature: the net devices are served through the shared ring at
/// the boot info's `net_ring` (`HVT_FEATURE_RING_IO`).
pub const FEATURE_RING_IO: u32 = 1 << 0;
/// The port a guest writes (a 32-bit `out`) to wake the host's ring
/// service when the ring's `needs_kick` is set.
pub const RING_KICK_PORT: u16 = 0x600;
/// Entries of the shared ring's submission and commit arrays.
pub const RING_SIZE: u32 = 1024;
/// Bytes a guest's per-slot write buffer holds (writes larger than this
/// go through the `net_write` hypercall).
pub const RING_BUF_SIZE: u64 = 2048;
/// Offset of the guest-written `ent_tail` (u32: entries submitted).
pub const RING_ENT_TAIL: u64 = 0;
/// Offset of the guest-written `com_head` (u32: commits consumed).
pub const RING_COM_HEAD: u64 = 4;
/// Offset of the host-written `ent_head` (u32: entries consumed; its own
/// cache line).
pub const RING_ENT_HEAD: u64 = 64;
/// Offset of the host-written `com_tail` (u32: commits posted).
pub const RING_COM_TAIL: u64 = 68;
/// Offset of the host-written `needs_kick` (u32: 1 while the host waits
/// for a kick).
pub const RING_NEEDS_KICK: u64 = 72;
/// Offset of the submission entries.
pub const RING_ENTRIES: u64 = 128;
/// Bytes of one submission entry: `operation`, `handle` (u32 each),
/// `data` (u64 guest address), `len`, `id` (u32 each), 8 reserved.
pub const RING_ENTRY_SIZE: u64 = 32;
/// Offset of an entry's `handle`.
pub const RING_ENTRY_HANDLE: u64 = 4;
/// Offset of an entry's `data`.
pub const RING_ENTRY_DATA: u64 = 8;
/// Offset of an entry's `len`.
pub const RING_ENTRY_LEN: u64 = 16;
/// Offset of an entry's `id`.
pub const RING_ENTRY_ID: u64 = 20;
/// Offset of the commits.
pub const RING_COMMITS: u64 = RING_ENTRIES + RING_SIZE as u64 * RING_ENTRY_SIZE;
/// Bytes of one commit: `id` (u32), `ret` (i32), `len` (u32), 4
/// reserved.
pub const RING_COMMIT_SIZE: u64 = 16;
/// Offset of a commit's `ret`.
pub const RING_COMMIT_RET: u64 = 4;
/// Offset of a commit's `len`.
pub const RING_COMMIT_LEN: u64 = 8;
/// Bytes of the whole ring.
pub const RING_BYTES: u64 = RING_COMMITS + RING_SIZE as u64 * RING_COMMIT_SIZE;
/// An entry's `operation`: send `len` bytes at `data` (no commit).
pub const RING_OP_NET_WRITE: u32 = 1;
/// An entry's `operation`: receive into `len` bytes at `data` (one commit
/// with `ret` and the frame's length).
pub const RING_OP_NET_READ: u32 = 2;
const _: () = assert!(RING_BYTES == 49_280);
const _: () = assert!(RING_SIZE.is_power_of_two());
/// Bytes of `struct hvt_boot_info` (mem_size, kernel_end, cpu_cycle_freq,
/// cmdline, mft: u64 each; host_features, guest_features: u32 each;
/// net_ring: u64).
pub const BOOT_INFO_SIZE: u64 = 56;
/// Where the GDT goes.
pub const GDT_GPA: u64 = 0x1000;
/// The GDT's limit (three 8-byte descriptors, minus one).
pub const GDT_LIMIT: u16 = 23;
/// The GDT: null, 64-bit code (selector 0x08), data (selector 0x10).
pub const GDT: [u64; 3] = [0, 0x00af_9900_0000_ffff, 0x00cf_9300_0000_ffff];
/// Where the PML4 goes (CR3); the PDPT, four page directories and the
/// first 2 MiB's page table follow, one page each.
pub const PML4_GPA: u64 = 0x2000;
/// The PDPT.
pub const PDPT_GPA: u64 = 0x3000;
/// The first of four page directories (4 GiB of 2 MiB pages).
pub const PD_GPA: u64 = 0x4000;
/// The page table of the first 2 MiB (4 KiB pages).
pub const PT0_GPA: u64 = 0x8000;
/// Below this, pages are not mapped (null page, GDT, page tables).
pub const LOW_UNMAPPED_END: u64 = 0x1_0000;
/// From [`LOW_UNMAPPED_END`] to here, pages are mapped read-only (boot
/// info, manifest copy, command line).
pub const LOW_READ_ONLY_END: u64 = 0x10_0000;
/// The lowest address an hvt image may load at.
pub const MIN_LOAD_GPA: u64 = 0x10_0000;
/// Guest memory is a multiple of this.
pub const MEMORY_ALIGN: u64 = 0x20_0000;
/// Most guest memory (hypercall pointers are 32 bits).
pub const MAX_MEMORY: u64 = 1 << 32;
/// Most bytes of the command line, its NUL included.
pub const CMDLINE_SIZE: u64 = 8192;
/// FS_BASE, which every hvt guest writes at start (its TLS base).
pub const MSR_FS_BASE: u32 = 0xC000_0100;

/// The ELF note owner of both notes.
pub const NOTE_OWNER: &[u8] = b"Solo5\0";
/// `ABI1` note type.
pub const NOTE_ABI1: u32 = 0x3149_4241;
/// `MFT1` note type.
pub const NOTE_MFT1: u32 = 0x3154_464d;
/// ABI target of hvt.
pub const ABI_TARGET_HVT: u32 = 1;
/// The hvt ABI version this side speaks (and guest-lib's images state).
pub const ABI_VERSION: u32 = 2;
/// The oldest hvt ABI version accepted: 1, what Solo5 up to 0.7 states.
/// Its calls and manifest are laid out as version 2's, and its boot info
/// is the first five fields of version 2's (no host features, no net ring
/// address), which Corral writes anyway; so Corral runs both, where each
/// Solo5 tender runs only its own.
pub const ABI_VERSION_MIN: u32 = 1;
/// Bytes of an `ABI1` descriptor (target, version, two reserved u32).
pub const ABI1_SIZE: usize = 16;

/// The MFT version.
pub const MFT_VERSION: u32 = 1;
/// Most manifest entries, the reserved first one included.
pub const MFT_MAX_ENTRIES: u32 = 64;
/// Bytes of a manifest header (version, entries).
pub const MFT_HEADER: usize = 8;
/// Bytes of one manifest entry.
pub const MFT_ENTRY_SIZE: usize = 104;
/// Bytes of an entry's name field, its NUL included.
pub const MFT_NAME_SIZE: usize = 68;
/// Offset of an entry's type.
pub const MFT_TYPE: usize = 68;
/// Offset of an entry's device union (block: capacity u64, block_size u16;
/// net: mac[6], mtu u16).
pub const MFT_UNION: usize = 72;
/// Offset of an entry's `attached` byte.
pub const MFT_ATTACHED: usize = 96;
/// Entry type: a block device.
pub const MFT_DEV_BLOCK_BASIC: u32 = 1;
/// Entry type: a network device.
pub const MFT_DEV_NET_BASIC: u32 = 2;
/// Entry type of the mandatory first entry.
pub const MFT_RESERVED_FIRST: u32 = 1 << 30;
/// Padding between a note's 20-byte header and its `MFT1` manifest.
pub const MFT1_PAD: usize = 4;

/// One hypercall, from its port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hypercall {
    /// `walltime`.
    Walltime,
    /// `puts`.
    Puts,
    /// `poll`.
    Poll,
    /// `block_write`.
    BlockWrite,
    /// `block_read`.
    BlockRead,
    /// `net_write`.
    NetWrite,
    /// `net_read`.
    NetRead,
    /// `halt`.
    Halt,
}

impl Hypercall {
    /// The hypercall on `port`, if it is one.
    pub fn from_port(port: u16) -> Option<Self> {
        Some(match port.checked_sub(HYPERCALL_PIO_BASE)? {
            HC_WALLTIME => Hypercall::Walltime,
            HC_PUTS => Hypercall::Puts,
            HC_POLL => Hypercall::Poll,
            HC_BLOCK_WRITE => Hypercall::BlockWrite,
            HC_BLOCK_READ => Hypercall::BlockRead,
            HC_NET_WRITE => Hypercall::NetWrite,
            HC_NET_READ => Hypercall::NetRead,
            HC_HALT => Hypercall::Halt,
            _ => return None,
        })
    }

    /// Its name in Solo5's headers.
    pub fn name(self) -> &'static str {
        match self {
            Hypercall::Walltime => "walltime",
            Hypercall::Puts => "puts",
            Hypercall::Poll => "poll",
            Hypercall::BlockWrite => "block_write",
            Hypercall::BlockRead => "block_read",
            Hypercall::NetWrite => "net_write",
            Hypercall::NetRead => "net_read",
            Hypercall::Halt => "halt",
        }
    }
}

/// The boot info an hvt guest finds at [`BOOT_INFO_GPA`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootInfo {
    /// Bytes of memory the guest may use.
    pub mem_size: u64,
    /// The end of the loaded image (page aligned).
    pub kernel_end: u64,
    /// TSC ticks per second.
    pub cpu_cycle_freq: u64,
    /// Guest-physical address of the NUL-terminated command line.
    pub cmdline: u64,
    /// Guest-physical address of the manifest copy.
    pub mft: u64,
    /// What the host offers ([`FEATURE_RING_IO`]).
    pub host_features: u32,
    /// Guest-physical address of the shared net ring (0: none).
    pub net_ring: u64,
}

impl BootInfo {
    /// Its wire bytes.
    pub fn to_bytes(&self) -> [u8; BOOT_INFO_SIZE as usize] {
        let mut b = [0u8; BOOT_INFO_SIZE as usize];
        for (i, v) in [
            self.mem_size,
            self.kernel_end,
            self.cpu_cycle_freq,
            self.cmdline,
            self.mft,
        ]
        .into_iter()
        .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        let f = BOOT_INFO_HOST_FEATURES;
        b[f..f + 4].copy_from_slice(&self.host_features.to_le_bytes());
        let r = BOOT_INFO_NET_RING;
        b[r..r + 8].copy_from_slice(&self.net_ring.to_le_bytes());
        b
    }

    /// Reads one from its wire bytes (a guest's view).
    pub fn from_bytes(b: &[u8; BOOT_INFO_SIZE as usize]) -> Self {
        let u = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        BootInfo {
            mem_size: u(0),
            kernel_end: u(1),
            cpu_cycle_freq: u(2),
            cmdline: u(3),
            mft: u(4),
            host_features: u(BOOT_INFO_HOST_FEATURES / 8) as u32,
            net_ring: u(BOOT_INFO_NET_RING / 8),
        }
    }
}

/// Why an hvt image's notes or manifest are refused (the wording follows
/// Solo5's tender where it has one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteError {
    /// No `Solo5` `ABI1` note.
    NoAbi,
    /// The `ABI1` note is not for hvt.
    Target {
        /// The target found.
        found: u32,
    },
    /// The `ABI1` note asks for another ABI version.
    Version {
        /// The version found.
        found: u32,
    },
    /// No `Solo5` `MFT1` note.
    NoManifest,
    /// A note's sizes do not fit its segment.
    NoteSize {
        /// The program header.
        phdr: u16,
    },
    /// The manifest breaks a rule (which one).
    Manifest(MftProblem),
}

/// Which rule of the manifest format a manifest breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MftProblem {
    /// Shorter than its header.
    Short,
    /// A version other than [`MFT_VERSION`].
    Version,
    /// An entry count outside 1..=[`MFT_MAX_ENTRIES`].
    EntryCount,
    /// A size other than its entry count says.
    Size,
    /// An entry name with no terminating NUL.
    Unterminated,
    /// An entry already marked attached.
    Attached,
    /// A first entry other than the reserved one.
    FirstEntry,
    /// A device type other than block or net.
    DeviceType,
    /// An empty or non-UTF-8 device name.
    Name,
}

impl MftProblem {
    /// What it says.
    pub fn text(self) -> &'static str {
        match self {
            MftProblem::Short => "shorter than its header",
            MftProblem::Version => "version is not 1",
            MftProblem::EntryCount => "entry count outside 1..=64",
            MftProblem::Size => "size does not match its entry count",
            MftProblem::Unterminated => "an entry name is not terminated",
            MftProblem::Attached => "an entry is already attached",
            MftProblem::FirstEntry => "the first entry is not the reserved one",
            MftProblem::DeviceType => "an entry has an unknown device type",
            MftProblem::Name => "an entry name is empty or not UTF-8",
        }
    }
}

impl fmt::Display for NoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoteError::NoAbi => write!(f, "No Solo5 ABI information found in executable"),
            NoteError::Target { found } => write!(
                f,
                "Executable is not for the solo5-hvt target (ABI target {found})"
            ),
            NoteError::Version { found } => {
                write!(f, "Executable requests unsupported ABI version {found}")
            }
            NoteError::NoManifest => write!(f, "No Solo5 manifest found in executable"),
            NoteError::NoteSize { phdr } => {
                write!(f, "phdr[{phdr}] note does not fall within valid size")
            }
            NoteError::Manifest(why) => write!(f, "Solo5 manifest is invalid: {}", why.text()),
        }
    }
}

/// A device an hvt manifest declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MftDevice<'a> {
    /// Its index (the guest's handle).
    pub index: u32,
    /// Its name.
    pub name: &'a str,
    /// [`MFT_DEV_BLOCK_BASIC`] or [`MFT_DEV_NET_BASIC`].
    pub kind: u32,
}

/// A checked hvt manifest (the bytes of `struct mft`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mft<'a> {
    bytes: &'a [u8],
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let w = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
}

impl<'a> Mft<'a> {
    /// Checks `bytes` as Solo5's tender does: version, entry count, exact
    /// size, the reserved first entry, terminated names, nothing attached,
    /// and (beyond the tender) known device types and UTF-8 names.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, NoteError> {
        let bad = |why| Err(NoteError::Manifest(why));
        let (Some(version), Some(entries)) = (u32_at(bytes, 0), u32_at(bytes, 4)) else {
            return bad(MftProblem::Short);
        };
        if version != MFT_VERSION {
            return bad(MftProblem::Version);
        }
        if !(1..=MFT_MAX_ENTRIES).contains(&entries) {
            return bad(MftProblem::EntryCount);
        }
        if bytes.len() != MFT_HEADER + entries as usize * MFT_ENTRY_SIZE {
            return bad(MftProblem::Size);
        }
        let mft = Mft { bytes };
        for i in 0..entries {
            let e = mft.entry(i);
            let kind = u32_at(e, MFT_TYPE).unwrap_or(0);
            if e[MFT_NAME_SIZE - 1] != 0 {
                return bad(MftProblem::Unterminated);
            }
            if e[MFT_ATTACHED] != 0 {
                return bad(MftProblem::Attached);
            }
            if i == 0 && (kind != MFT_RESERVED_FIRST || e[0] != 0) {
                return bad(MftProblem::FirstEntry);
            }
            if i > 0 {
                if kind != MFT_DEV_BLOCK_BASIC && kind != MFT_DEV_NET_BASIC {
                    return bad(MftProblem::DeviceType);
                }
                if name_of(e).is_none() {
                    return bad(MftProblem::Name);
                }
            }
        }
        Ok(mft)
    }

    /// Its bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    fn entry(&self, i: u32) -> &'a [u8] {
        let at = MFT_HEADER + i as usize * MFT_ENTRY_SIZE;
        &self.bytes[at..at + MFT_ENTRY_SIZE]
    }

    /// Entries, the reserved first one included.
    pub fn entries(&self) -> u32 {
        ((self.bytes.len() - MFT_HEADER) / MFT_ENTRY_SIZE) as u32
    }

    /// The devices it declares (every entry after the first).
    pub fn devices(&self) -> impl Iterator<Item = MftDevice<'a>> + '_ {
        (1..self.entries()).filter_map(|i| {
            let e = self.entry(i);
            Some(MftDevice {
                index: i,
                name: name_of(e)?,
                kind: u32_at(e, MFT_TYPE)?,
            })
        })
    }
}

fn name_of(e: &[u8]) -> Option<&str> {
    let field = &e[..MFT_NAME_SIZE];
    let len = field.iter().position(|&b| b == 0)?;
    if len == 0 {
        return None;
    }
    core::str::from_utf8(&field[..len]).ok()
}

/// What an hvt image's notes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notes<'a> {
    /// Its manifest.
    pub mft: Mft<'a>,
}

/// Reads one `Solo5` note of type `want` from a PT_NOTE segment's bytes
/// (`phdr` names it in errors): `Ok(None)` if the segment holds another
/// note.
pub fn note_in(seg: &[u8], want: u32, phdr: u16) -> Result<Option<&[u8]>, NoteError> {
    const HEAD: usize = 12;
    const NAME: usize = 8;
    if seg.len() < HEAD + NAME {
        return Ok(None);
    }
    let (Some(namesz), Some(descsz), Some(kind)) = (u32_at(seg, 0), u32_at(seg, 4), u32_at(seg, 8))
    else {
        return Ok(None);
    };
    if namesz as usize != NOTE_OWNER.len() || &seg[HEAD..HEAD + NOTE_OWNER.len()] != NOTE_OWNER {
        return Ok(None);
    }
    if kind != want {
        return Ok(None);
    }
    let pad = if want == NOTE_MFT1 { MFT1_PAD } else { 0 };
    let desc = descsz as usize;
    if desc <= pad || HEAD + NAME + desc > seg.len() {
        return Err(NoteError::NoteSize { phdr });
    }
    Ok(Some(&seg[HEAD + NAME + pad..HEAD + NAME + desc]))
}

/// Checks an `ABI1` descriptor: hvt, version [`ABI_VERSION_MIN`] to
/// [`ABI_VERSION`].
pub fn check_abi(desc: &[u8]) -> Result<(), NoteError> {
    let (Some(target), Some(version)) = (u32_at(desc, 0), u32_at(desc, 4)) else {
        return Err(NoteError::NoAbi);
    };
    if target != ABI_TARGET_HVT {
        return Err(NoteError::Target { found: target });
    }
    if !(ABI_VERSION_MIN..=ABI_VERSION).contains(&version) {
        return Err(NoteError::Version { found: version });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
