//! The binary manifest: what the host tool turns a TOML manifest into and
//! what the hypervisor reads from a Multiboot2 module. Every field is checked
//! by [`Manifest::parse`]; a bad one is refused with an error that names it.
//!
//! Wire layout (little endian): a [`HEADER_SIZE`]-byte header, `vm_count`
//! VM records of [`RECORD_SIZE`] bytes each, then `link_count` link records
//! of [`LINK_RECORD_SIZE`] bytes each.
//!
//! | header offset | field |
//! |---|---|
//! | 0 | magic [`MANIFEST_MAGIC`] |
//! | 8 | `abi_version` u32 |
//! | 12 | `header_size` u32 |
//! | 16 | `record_size` u32 |
//! | 20 | `vm_count` u32 |
//! | 24 | `flags` u32 (must be 0) |
//! | 28 | `link_count` u32 |
//! | 32 | `timeslice` u64: instructions per scheduling slice, 0 = default |
//!
//! | record offset | field |
//! |---|---|
//! | 0 | `name` \[32\], NUL padded |
//! | 32 | `image` \[32\], NUL padded |
//! | 64 | `args` \[128\], NUL padded |
//! | 192 | `memory` u64, bytes |
//! | 200 | `budget` u64, guest instructions before the VM is stopped; 0 = none |
//! | 208 | `cores` u64: bit N = may run on core N; 0 = not pinned |
//! | 216 | `flags` u32: bit 0 = restart on failure; other bits 0 |
//! | 220 | `restart_limit` u32: most restarts (0 unless restarting) |
//! | 224 | `net` u8: virtio-net ports (0..=[`MAX_NET_PORTS`]) |
//! | 225 | `console` u8: 1 = a virtio-console, 0 = none |
//! | 226 | reserved \[30\] (must be 0) |
//!
//! | link offset | field |
//! |---|---|
//! | 0 | `a_vm` u32: manifest index of one end's VM |
//! | 4 | `b_vm` u32: the other end's VM |
//! | 8 | `a_port` u8, 9 | `b_port` u8: net port numbers on those VMs |
//! | 10 | reserved u16 (must be 0) |
//! | 12 | `core` u32: the core that polls this link; it runs no VMs |

use crate::corral::bootinfo::{ARGS_MAX, NAME_MAX};
use crate::corral::devices::MAX_NET_PORTS;
use crate::corral::layout::{MAX_MEMORY, MIN_MEMORY, PAGE_SIZE};
use crate::text::{is_printable, is_valid_name, le, unpad};
use core::fmt;

/// First eight bytes of a binary manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"CORRALMF";
/// Bytes in the header.
pub const HEADER_SIZE: usize = 40;
/// Bytes in one VM record.
pub const RECORD_SIZE: usize = 256;
/// Bytes in one link record.
pub const LINK_RECORD_SIZE: usize = 24;
/// Most links one manifest may name.
pub const MAX_LINKS: u32 = 256;
/// Most VMs one manifest may name.
pub const MAX_VMS: u32 = 4096;
/// Cores a manifest can name (bits of `cores`); the hypervisor also checks
/// that each named core exists and started.
pub const MAX_CORES: u32 = 64;
/// Most restarts one VM may be given.
pub const MAX_RESTARTS: u32 = 1000;
/// Shortest scheduling slice, in instructions.
pub const MIN_TIMESLICE: u64 = 10_000;
/// Longest scheduling slice, in instructions.
pub const MAX_TIMESLICE: u64 = 1 << 40;
/// Record flag: restart the VM when it ends other than by exiting 0.
const FLAG_RESTART_ON_FAILURE: u32 = 1 << 0;

const R_NAME: usize = 0;
const R_IMAGE: usize = 32;
const R_ARGS: usize = 64;
const R_MEMORY: usize = 192;
const R_BUDGET: usize = 200;
const R_CORES: usize = 208;
const R_FLAGS: usize = 216;
const R_RESTART_LIMIT: usize = 220;
const R_NET: usize = 224;
const R_CONSOLE: usize = 225;
const R_RESERVED: usize = 226;
const H_LINK_COUNT: usize = 28;
const L_A_VM: usize = 0;
const L_B_VM: usize = 4;
const L_A_PORT: usize = 8;
const L_B_PORT: usize = 9;
const L_RESERVED: usize = 10;
const L_CORE: usize = 12;
const L_HOLD: usize = 16;
const H_TIMESLICE: usize = 32;
const _: () = assert!(R_IMAGE == R_NAME + NAME_MAX && R_ARGS == R_IMAGE + NAME_MAX);
const _: () = assert!(R_MEMORY == R_ARGS + ARGS_MAX && R_RESERVED + 30 == RECORD_SIZE);

/// A manifest field, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The header's magic bytes.
    Magic,
    /// The header's ABI version.
    AbiVersion,
    /// The header's size fields or the total length.
    Size,
    /// The VM count.
    VmCount,
    /// A flags word.
    Flags,
    /// Reserved bytes.
    Reserved,
    /// A VM's name.
    Name,
    /// A VM's image name.
    Image,
    /// A VM's argument string.
    Args,
    /// A VM's memory size.
    Memory,
    /// A VM's core set.
    Cores,
    /// A VM's restart policy.
    Restart,
    /// A VM's restart limit.
    RestartLimit,
    /// The scheduling slice.
    Timeslice,
    /// A VM's virtio-net port count.
    Net,
    /// A VM's virtio-console switch.
    Console,
    /// The link count.
    LinkCount,
    /// A link's first end.
    LinkA,
    /// A link's second end.
    LinkB,
    /// A link's polling core.
    LinkCore,
    /// A link's hold time.
    LinkHold,
}

impl Field {
    /// The field's name as the TOML manifest spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Magic => "magic",
            Field::AbiVersion => "abi_version",
            Field::Size => "size",
            Field::VmCount => "vm_count",
            Field::Flags => "flags",
            Field::Reserved => "reserved",
            Field::Name => "name",
            Field::Image => "image",
            Field::Args => "args",
            Field::Memory => "memory",
            Field::Cores => "cores",
            Field::Restart => "restart",
            Field::RestartLimit => "restart_limit",
            Field::Timeslice => "timeslice",
            Field::Net => "net",
            Field::Console => "console",
            Field::LinkCount => "link_count",
            Field::LinkA => "a",
            Field::LinkB => "b",
            Field::LinkCore => "core",
            Field::LinkHold => "hold",
        }
    }
}

/// What is wrong with a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The value is not what it must be.
    Mismatch {
        /// Value found.
        found: u64,
        /// Value required.
        expected: u64,
    },
    /// The value is outside its range.
    OutOfRange {
        /// Value found.
        found: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// The value must be a multiple of this.
    NotMultiple {
        /// Value found.
        found: u64,
        /// Required divisor.
        of: u64,
    },
    /// The text is empty or holds characters it may not.
    BadText,
    /// The text is longer than its field.
    TooLong {
        /// Longest allowed.
        max: u64,
    },
    /// Another VM already has this name.
    Duplicate {
        /// Index of the VM that has it first.
        first: u32,
    },
    /// Must be zero and is not.
    NotZero,
    /// The port is already an end of this earlier link.
    PortTaken {
        /// Index of the link that has it first.
        link: u32,
    },
    /// The VM does not have this net port.
    NoPort {
        /// Net ports the VM has.
        ports: u8,
    },
    /// A VM runs on (is pinned only to) a core that polls links.
    PollCore {
        /// The core.
        core: u32,
    },
}

/// A manifest that cannot be used, and exactly why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// Index of the VM record at fault (of the link record, for the link
    /// fields), or `None` for the header.
    pub vm: Option<u32>,
    /// The field at fault.
    pub field: Field,
    /// What is wrong with it.
    pub problem: Problem,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let link = matches!(
            self.field,
            Field::LinkA | Field::LinkB | Field::LinkCore | Field::LinkHold
        );
        match self.vm {
            Some(i) if link => write!(f, "manifest link {i}: field `{}`: ", self.field.name())?,
            Some(vm) => write!(f, "manifest vm {vm}: field `{}`: ", self.field.name())?,
            None => write!(f, "manifest header: field `{}`: ", self.field.name())?,
        }
        match self.problem {
            Problem::Mismatch { found, expected } => {
                write!(f, "found {found:#x}, expected {expected:#x}")
            }
            Problem::OutOfRange { found, min, max } => {
                write!(f, "{found} is outside {min}..={max}")
            }
            Problem::NotMultiple { found, of } => write!(f, "{found} is not a multiple of {of}"),
            Problem::BadText => write!(
                f,
                "must be non-empty and use only the allowed characters (names: A-Z a-z 0-9 _ . -, starting with a letter or digit, and not `hv`; args: printable ASCII)"
            ),
            Problem::TooLong { max } => write!(f, "longer than {max} bytes"),
            Problem::Duplicate { first } => write!(f, "same name as vm {first}"),
            Problem::NotZero => write!(f, "must be zero"),
            Problem::NoPort { ports } => write!(f, "that VM has {ports} net ports"),
            Problem::PortTaken { link } => write!(f, "port is already an end of link {link}"),
            Problem::PollCore { core } => write!(
                f,
                "core {core} polls links, so no VM may be pinned only to it"
            ),
        }
    }
}

/// One VM as the manifest describes it (the working type; see
/// [`VmSpec::encode`] and [`Manifest::parse`] for the wire form).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmSpec<'a> {
    /// Unique VM name.
    pub name: &'a str,
    /// Name of the image module to boot.
    pub image: &'a str,
    /// Argument string handed to the guest in its boot info.
    pub args: &'a str,
    /// Bytes of guest memory.
    pub memory: u64,
    /// Guest instructions allowed before the VM is stopped (0 = no limit).
    pub budget: u64,
    /// Cores it may run on (bit N = core N); 0 = any (least loaded).
    pub cores: u64,
    /// What happens when it fails.
    pub restart: Restart,
    /// Most restarts (0 with [`Restart::Never`]).
    pub restart_limit: u32,
    /// Its virtio-net ports (0..=[`MAX_NET_PORTS`]).
    pub net_ports: u8,
    /// Whether it has a virtio-console.
    pub console: bool,
}

/// What the hypervisor does when a VM ends other than by exiting with 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Leave it ended.
    Never,
    /// Start it again with fresh memory, up to its restart limit.
    OnFailure,
}

/// One end of a link: a VM's net port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRef {
    /// Manifest index of the VM.
    pub vm: u32,
    /// Its net port.
    pub port: u8,
}

/// Two net ports wired together, and the core that moves their frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkSpec {
    /// One end.
    pub a: PortRef,
    /// The other end.
    pub b: PortRef,
    /// The core that polls both ends' rings (it runs no VMs).
    pub core: u32,
    /// Instructions (TSC ticks) a receiver whose port is up may go without
    /// posting a receive buffer while frames wait for it; after that it
    /// is stalled and frames for it are dropped and counted until it posts
    /// one again. 0: never (frames wait in the sender's ring for good).
    pub hold: u64,
}

/// The hold time of a link whose manifest entry does not set one.
pub const DEFAULT_LINK_HOLD: u64 = 20_000_000;
/// Shortest hold time other than 0 (instructions): below a polling pass it
/// would drop frames of receivers that are merely busy.
pub const MIN_LINK_HOLD: u64 = 10_000;
/// Longest hold time (instructions).
pub const MAX_LINK_HOLD: u64 = 1 << 40;

impl LinkSpec {
    /// The wire record for this link (checked against the VMs by
    /// [`Manifest::parse`]).
    pub fn encode(&self) -> [u8; LINK_RECORD_SIZE] {
        let mut r = [0u8; LINK_RECORD_SIZE];
        le::put_u32(&mut r, L_A_VM, self.a.vm);
        le::put_u32(&mut r, L_B_VM, self.b.vm);
        r[L_A_PORT] = self.a.port;
        r[L_B_PORT] = self.b.port;
        le::put_u32(&mut r, L_CORE, self.core);
        r[L_HOLD..L_HOLD + 8].copy_from_slice(&self.hold.to_le_bytes());
        r
    }

    fn decode(r: &[u8]) -> Self {
        LinkSpec {
            a: PortRef {
                vm: le::u32_at(r, L_A_VM),
                port: r[L_A_PORT],
            },
            b: PortRef {
                vm: le::u32_at(r, L_B_VM),
                port: r[L_B_PORT],
            },
            core: le::u32_at(r, L_CORE),
            hold: u64::from(le::u32_at(r, L_HOLD)) | (u64::from(le::u32_at(r, L_HOLD + 4)) << 32),
        }
    }
}

fn err(vm: Option<u32>, field: Field, problem: Problem) -> ManifestError {
    ManifestError { vm, field, problem }
}

fn text_field(vm: u32, field: Field, raw: &[u8], printable: bool) -> Result<&str, ManifestError> {
    let content = unpad(raw).ok_or(err(Some(vm), field, Problem::BadText))?;
    let ok = if printable {
        is_printable(content)
    } else {
        is_valid_name(content)
    };
    if !ok {
        return Err(err(Some(vm), field, Problem::BadText));
    }
    core::str::from_utf8(content).map_err(|_| err(Some(vm), field, Problem::BadText))
}

impl<'a> VmSpec<'a> {
    /// Checks every field of this VM; `vm` is its index, for the error.
    pub fn validate(&self, vm: u32) -> Result<(), ManifestError> {
        let e = |field, problem| Err(err(Some(vm), field, problem));
        for (field, text, max) in [
            (Field::Name, self.name, NAME_MAX),
            (Field::Image, self.image, NAME_MAX),
            (Field::Args, self.args, ARGS_MAX),
        ] {
            if text.len() > max {
                return e(field, Problem::TooLong { max: max as u64 });
            }
            let ok = if field == Field::Args {
                is_printable(text.as_bytes())
            } else {
                is_valid_name(text.as_bytes())
                    && !(field == Field::Name && text == crate::report::HYPERVISOR_SOURCE)
            };
            if !ok {
                return e(field, Problem::BadText);
            }
        }
        if !(MIN_MEMORY..=MAX_MEMORY).contains(&self.memory) {
            return e(
                Field::Memory,
                Problem::OutOfRange {
                    found: self.memory,
                    min: MIN_MEMORY,
                    max: MAX_MEMORY,
                },
            );
        }
        if !self.memory.is_multiple_of(PAGE_SIZE) {
            return e(
                Field::Memory,
                Problem::NotMultiple {
                    found: self.memory,
                    of: PAGE_SIZE,
                },
            );
        }
        if self.restart_limit > MAX_RESTARTS {
            return e(
                Field::RestartLimit,
                Problem::OutOfRange {
                    found: self.restart_limit.into(),
                    min: 0,
                    max: MAX_RESTARTS.into(),
                },
            );
        }
        if self.net_ports > MAX_NET_PORTS {
            return e(
                Field::Net,
                Problem::OutOfRange {
                    found: self.net_ports.into(),
                    min: 0,
                    max: MAX_NET_PORTS.into(),
                },
            );
        }
        if self.restart == Restart::Never && self.restart_limit != 0 {
            return e(
                Field::RestartLimit,
                Problem::Mismatch {
                    found: self.restart_limit.into(),
                    expected: 0,
                },
            );
        }
        Ok(())
    }

    /// The wire record for this VM, after [`VmSpec::validate`].
    pub fn encode(&self, vm: u32) -> Result<[u8; RECORD_SIZE], ManifestError> {
        self.validate(vm)?;
        let mut r = [0u8; RECORD_SIZE];
        r[R_NAME..R_NAME + self.name.len()].copy_from_slice(self.name.as_bytes());
        r[R_IMAGE..R_IMAGE + self.image.len()].copy_from_slice(self.image.as_bytes());
        r[R_ARGS..R_ARGS + self.args.len()].copy_from_slice(self.args.as_bytes());
        le::put_u64(&mut r, R_MEMORY, self.memory);
        le::put_u64(&mut r, R_BUDGET, self.budget);
        le::put_u64(&mut r, R_CORES, self.cores);
        let flags = match self.restart {
            Restart::Never => 0,
            Restart::OnFailure => FLAG_RESTART_ON_FAILURE,
        };
        le::put_u32(&mut r, R_FLAGS, flags);
        le::put_u32(&mut r, R_RESTART_LIMIT, self.restart_limit);
        r[R_NET] = self.net_ports;
        r[R_CONSOLE] = u8::from(self.console);
        Ok(r)
    }

    fn decode(vm: u32, r: &'a [u8]) -> Result<Self, ManifestError> {
        let flags = le::u32_at(r, R_FLAGS);
        if flags & !FLAG_RESTART_ON_FAILURE != 0 {
            return Err(err(Some(vm), Field::Flags, Problem::NotZero));
        }
        if r[R_RESERVED..RECORD_SIZE].iter().any(|&b| b != 0) {
            return Err(err(Some(vm), Field::Reserved, Problem::NotZero));
        }
        if r[R_CONSOLE] > 1 {
            return Err(err(
                Some(vm),
                Field::Console,
                Problem::OutOfRange {
                    found: r[R_CONSOLE].into(),
                    min: 0,
                    max: 1,
                },
            ));
        }
        let spec = VmSpec {
            name: text_field(vm, Field::Name, &r[R_NAME..R_IMAGE], false)?,
            image: text_field(vm, Field::Image, &r[R_IMAGE..R_ARGS], false)?,
            args: text_field(vm, Field::Args, &r[R_ARGS..R_MEMORY], true)?,
            memory: le::u64_at(r, R_MEMORY),
            budget: le::u64_at(r, R_BUDGET),
            cores: le::u64_at(r, R_CORES),
            restart: if flags & FLAG_RESTART_ON_FAILURE != 0 {
                Restart::OnFailure
            } else {
                Restart::Never
            },
            restart_limit: le::u32_at(r, R_RESTART_LIMIT),
            net_ports: r[R_NET],
            console: r[R_CONSOLE] == 1,
        };
        spec.validate(vm)?;
        Ok(spec)
    }
}

/// Slots of the duplicate-name table: twice the most VMs, so probes stay short.
const NAME_TABLE: usize = 2 * MAX_VMS as usize;
/// An unused slot of that table (record indices are below `MAX_VMS`).
const EMPTY_SLOT: u16 = u16::MAX;
const _: () = assert!(MAX_VMS < EMPTY_SLOT as u32);

/// FNV-1a over a name.
fn name_hash(name: &[u8]) -> usize {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    name.iter()
        .fold(OFFSET, |h, &b| (h ^ u32::from(b)).wrapping_mul(PRIME)) as usize
}

/// The header for a manifest of `vm_count` VM records and `link_count` link
/// records, with scheduling slices of `timeslice` instructions (0 = the
/// hypervisor's default).
pub fn encode_header(vm_count: u32, timeslice: u64, link_count: u32) -> [u8; HEADER_SIZE] {
    let mut h = [0u8; HEADER_SIZE];
    h[0..8].copy_from_slice(&MANIFEST_MAGIC);
    le::put_u32(&mut h, 8, crate::ABI_VERSION);
    le::put_u32(&mut h, 12, HEADER_SIZE as u32);
    le::put_u32(&mut h, 16, RECORD_SIZE as u32);
    le::put_u32(&mut h, 20, vm_count);
    le::put_u32(&mut h, H_LINK_COUNT, link_count);
    le::put_u64(&mut h, H_TIMESLICE, timeslice);
    h
}

/// Checks a scheduling slice (0 = default).
pub fn validate_timeslice(timeslice: u64) -> Result<(), ManifestError> {
    if timeslice != 0 && !(MIN_TIMESLICE..=MAX_TIMESLICE).contains(&timeslice) {
        return Err(err(
            None,
            Field::Timeslice,
            Problem::OutOfRange {
                found: timeslice,
                min: MIN_TIMESLICE,
                max: MAX_TIMESLICE,
            },
        ));
    }
    Ok(())
}

/// A checked binary manifest, borrowing the bytes it was parsed from.
#[derive(Clone, Copy, Debug)]
pub struct Manifest<'a> {
    records: &'a [u8],
    links: &'a [u8],
    timeslice: u64,
    poll_cores: u64,
}

impl<'a> Manifest<'a> {
    /// Checks a whole binary manifest: header, sizes, every VM record, and
    /// that VM names are unique.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ManifestError> {
        let h = |field, problem| Err(err(None, field, problem));
        if bytes.len() < HEADER_SIZE {
            return h(
                Field::Size,
                Problem::Mismatch {
                    found: bytes.len() as u64,
                    expected: HEADER_SIZE as u64,
                },
            );
        }
        if bytes[0..8] != MANIFEST_MAGIC {
            return h(
                Field::Magic,
                Problem::Mismatch {
                    found: u64::from_le_bytes(bytes[0..8].try_into().unwrap_or([0; 8])),
                    expected: u64::from_le_bytes(MANIFEST_MAGIC),
                },
            );
        }
        let version = le::u32_at(bytes, 8);
        if version != crate::ABI_VERSION {
            return h(
                Field::AbiVersion,
                Problem::Mismatch {
                    found: version.into(),
                    expected: crate::ABI_VERSION.into(),
                },
            );
        }
        for (off, want) in [(12, HEADER_SIZE), (16, RECORD_SIZE)] {
            let found = le::u32_at(bytes, off);
            if found as usize != want {
                return h(
                    Field::Size,
                    Problem::Mismatch {
                        found: found.into(),
                        expected: want as u64,
                    },
                );
            }
        }
        let count = le::u32_at(bytes, 20);
        if !(1..=MAX_VMS).contains(&count) {
            return h(
                Field::VmCount,
                Problem::OutOfRange {
                    found: count.into(),
                    min: 1,
                    max: MAX_VMS.into(),
                },
            );
        }
        if le::u32_at(bytes, 24) != 0 {
            return h(Field::Flags, Problem::NotZero);
        }
        let link_count = le::u32_at(bytes, H_LINK_COUNT);
        if link_count > MAX_LINKS {
            return h(
                Field::LinkCount,
                Problem::OutOfRange {
                    found: link_count.into(),
                    min: 0,
                    max: MAX_LINKS.into(),
                },
            );
        }
        let vm_bytes = count as usize * RECORD_SIZE;
        let want_len = HEADER_SIZE + vm_bytes + link_count as usize * LINK_RECORD_SIZE;
        if bytes.len() != want_len {
            return h(
                Field::Size,
                Problem::Mismatch {
                    found: bytes.len() as u64,
                    expected: want_len as u64,
                },
            );
        }
        let timeslice = le::u64_at(bytes, H_TIMESLICE);
        validate_timeslice(timeslice)?;
        let mut manifest = Manifest {
            records: &bytes[HEADER_SIZE..HEADER_SIZE + vm_bytes],
            links: &bytes[HEADER_SIZE + vm_bytes..],
            timeslice,
            poll_cores: 0,
        };
        // Unique names, in O(n): open addressing over record indices.
        let mut seen = [EMPTY_SLOT; NAME_TABLE];
        for (i, vm) in manifest.iter_checked().enumerate() {
            let vm = vm?;
            let mut slot = name_hash(vm.name.as_bytes()) % NAME_TABLE;
            loop {
                let j = seen[slot];
                if j == EMPTY_SLOT {
                    seen[slot] = i as u16;
                    break;
                }
                if manifest.raw_name(usize::from(j)) == vm.name.as_bytes() {
                    return Err(err(
                        Some(i as u32),
                        Field::Name,
                        Problem::Duplicate { first: j.into() },
                    ));
                }
                slot = (slot + 1) % NAME_TABLE;
            }
        }
        manifest.poll_cores = manifest.check_links()?;
        Ok(manifest)
    }

    /// Checks every link against the VMs; returns the cores that poll.
    fn check_links(&self) -> Result<u64, ManifestError> {
        let mut poll_cores = 0u64;
        for (i, r) in self.links.chunks_exact(LINK_RECORD_SIZE).enumerate() {
            let i = i as u32;
            if r[L_RESERVED..L_CORE].iter().any(|&b| b != 0) {
                return Err(err(Some(i), Field::LinkCore, Problem::NotZero));
            }
            let link = LinkSpec::decode(r);
            for (field, end) in [(Field::LinkA, link.a), (Field::LinkB, link.b)] {
                let Some(vm) = self.get(end.vm as usize) else {
                    return Err(err(
                        Some(i),
                        field,
                        Problem::OutOfRange {
                            found: end.vm.into(),
                            min: 0,
                            max: self.len() as u64 - 1,
                        },
                    ));
                };
                if end.port >= vm.net_ports {
                    return Err(err(
                        Some(i),
                        field,
                        Problem::NoPort {
                            ports: vm.net_ports,
                        },
                    ));
                }
            }
            if link.a == link.b {
                return Err(err(Some(i), Field::LinkB, Problem::PortTaken { link: i }));
            }
            for (j, earlier) in self.links().take(i as usize).enumerate() {
                for (field, end) in [(Field::LinkA, link.a), (Field::LinkB, link.b)] {
                    if earlier.a == end || earlier.b == end {
                        return Err(err(Some(i), field, Problem::PortTaken { link: j as u32 }));
                    }
                }
            }
            if link.core >= MAX_CORES {
                return Err(err(
                    Some(i),
                    Field::LinkCore,
                    Problem::OutOfRange {
                        found: link.core.into(),
                        min: 0,
                        max: (MAX_CORES - 1).into(),
                    },
                ));
            }
            if link.hold != 0 && !(MIN_LINK_HOLD..=MAX_LINK_HOLD).contains(&link.hold) {
                return Err(err(
                    Some(i),
                    Field::LinkHold,
                    Problem::OutOfRange {
                        found: link.hold,
                        min: MIN_LINK_HOLD,
                        max: MAX_LINK_HOLD,
                    },
                ));
            }
            poll_cores |= 1 << link.core;
        }
        for (i, vm) in self.iter().enumerate() {
            if vm.cores != 0 && vm.cores & !poll_cores == 0 {
                let core = (vm.cores & poll_cores).trailing_zeros();
                return Err(err(
                    Some(i as u32),
                    Field::Cores,
                    Problem::PollCore { core },
                ));
            }
        }
        Ok(poll_cores)
    }

    /// The links, in manifest order (all checked by [`Manifest::parse`]).
    pub fn links(&self) -> impl Iterator<Item = LinkSpec> + 'a {
        self.links
            .chunks_exact(LINK_RECORD_SIZE)
            .map(LinkSpec::decode)
    }

    /// Number of links.
    pub fn link_count(&self) -> usize {
        self.links.len() / LINK_RECORD_SIZE
    }

    /// The cores that poll links (bit N = core N); they run no VMs.
    pub fn poll_cores(&self) -> u64 {
        self.poll_cores
    }

    /// Instructions per scheduling slice (0 = the hypervisor's default).
    pub fn timeslice(&self) -> u64 {
        self.timeslice
    }

    /// The name bytes of record `i` (which `parse` already checked).
    fn raw_name(&self, i: usize) -> &'a [u8] {
        let field = &self.records[i * RECORD_SIZE + R_NAME..i * RECORD_SIZE + R_IMAGE];
        unpad(field).unwrap_or(field)
    }

    /// Number of VMs.
    pub fn len(&self) -> usize {
        self.records.len() / RECORD_SIZE
    }

    /// Whether there are no VMs (never true for a parsed manifest).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn iter_checked(&self) -> impl Iterator<Item = Result<VmSpec<'a>, ManifestError>> + 'a {
        let records = self.records;
        records
            .chunks_exact(RECORD_SIZE)
            .enumerate()
            .map(|(i, r)| VmSpec::decode(i as u32, r))
    }

    /// The VMs in manifest order (all were checked by [`Manifest::parse`]).
    pub fn iter(&self) -> impl Iterator<Item = VmSpec<'a>> + 'a {
        self.iter_checked().filter_map(Result::ok)
    }

    /// The VM at `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<VmSpec<'a>> {
        let start = index.checked_mul(RECORD_SIZE)?;
        let r = self.records.get(start..start.checked_add(RECORD_SIZE)?)?;
        VmSpec::decode(index as u32, r).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    fn hello(name: &'static str) -> VmSpec<'static> {
        VmSpec {
            name,
            image: "hello",
            args: "",
            memory: 0x20_0000,
            budget: 0,
            cores: 0,
            restart: Restart::Never,
            restart_limit: 0,
            net_ports: 0,
            console: false,
        }
    }

    fn build(vms: &[VmSpec]) -> Vec<u8> {
        build_linked(vms, &[])
    }

    fn build_linked(vms: &[VmSpec], links: &[LinkSpec]) -> Vec<u8> {
        let mut out = encode_header(vms.len() as u32, 0, links.len() as u32).to_vec();
        for (i, vm) in vms.iter().enumerate() {
            out.extend_from_slice(&vm.encode(i as u32).unwrap());
        }
        for l in links {
            out.extend_from_slice(&l.encode());
        }
        out
    }

    fn link(a: (u32, u8), b: (u32, u8), core: u32) -> LinkSpec {
        LinkSpec {
            a: PortRef { vm: a.0, port: a.1 },
            b: PortRef { vm: b.0, port: b.1 },
            core,
            hold: DEFAULT_LINK_HOLD + u64::from(core),
        }
    }

    fn nf(name: &'static str, ports: u8) -> VmSpec<'static> {
        VmSpec {
            net_ports: ports,
            console: true,
            cores: 0b10,
            ..hello(name)
        }
    }

    #[test]
    fn links_round_trip_and_name_poll_cores() {
        let vms = [nf("gen", 1), nf("fw", 2), nf("sink", 1)];
        let links = [link((0, 0), (1, 0), 0), link((1, 1), (2, 0), 2)];
        let bytes = build_linked(&vms, &links);
        let m = Manifest::parse(&bytes).unwrap();
        assert_eq!(m.iter().collect::<Vec<_>>(), vms);
        assert_eq!(m.links().collect::<Vec<_>>(), links);
        assert_eq!(m.link_count(), 2);
        assert_eq!(m.poll_cores(), 0b101);
    }

    #[test]
    fn bad_links_name_link_and_end() {
        let vms = [nf("gen", 1), nf("fw", 2), nf("sink", 1)];
        let check = |links: &[LinkSpec]| {
            let e = Manifest::parse(&build_linked(&vms, links)).unwrap_err();
            (e.vm, e.field, e.problem)
        };
        assert_eq!(
            check(&[link((0, 0), (7, 0), 0)]),
            (
                Some(0),
                Field::LinkB,
                Problem::OutOfRange {
                    found: 7,
                    min: 0,
                    max: 2
                }
            )
        );
        assert_eq!(
            check(&[link((0, 1), (1, 0), 0)]),
            (Some(0), Field::LinkA, Problem::NoPort { ports: 1 })
        );
        assert_eq!(
            check(&[link((0, 0), (1, 0), 0), link((1, 1), (1, 0), 0)]),
            (Some(1), Field::LinkB, Problem::PortTaken { link: 0 })
        );
        assert_eq!(
            check(&[link((1, 0), (1, 0), 0)]),
            (Some(0), Field::LinkB, Problem::PortTaken { link: 0 })
        );
        assert_eq!(check(&[link((0, 0), (1, 0), 64)]).1, Field::LinkCore);
        let short = LinkSpec {
            hold: MIN_LINK_HOLD - 1,
            ..link((0, 0), (1, 0), 0)
        };
        assert_eq!(check(&[short]).1, Field::LinkHold);
        let never = LinkSpec {
            hold: 0,
            ..link((0, 0), (1, 0), 0)
        };
        assert!(
            Manifest::parse(&build_linked(&vms, &[never])).is_ok(),
            "hold 0 (never drop) is allowed"
        );
        // Every VM is pinned to core 1: polling there would leave them no core.
        assert_eq!(
            check(&[link((0, 0), (1, 0), 1)]),
            (Some(0), Field::Cores, Problem::PollCore { core: 1 })
        );
        let mut bytes = build_linked(&vms, &[link((0, 0), (1, 0), 0)]);
        let at = bytes.len() - LINK_RECORD_SIZE + L_RESERVED;
        bytes[at] = 1;
        assert_eq!(Manifest::parse(&bytes).unwrap_err().field, Field::LinkCore);
        let e = ManifestError {
            vm: Some(3),
            field: Field::LinkA,
            problem: Problem::NoPort { ports: 0 },
        };
        assert_eq!(
            std::format!("{e}"),
            "manifest link 3: field `a`: that VM has 0 net ports"
        );
    }

    #[test]
    fn device_fields_are_checked() {
        let mut b = build(&[hello("a")]);
        b[HEADER_SIZE + R_NET] = MAX_NET_PORTS + 1;
        assert_eq!(field_err(&b), (Some(0), Field::Net));
        let mut b = build(&[hello("a")]);
        b[HEADER_SIZE + R_CONSOLE] = 2;
        assert_eq!(field_err(&b), (Some(0), Field::Console));
        let mut b = build(&[hello("a")]);
        le::put_u32(&mut b, H_LINK_COUNT, MAX_LINKS + 1);
        assert_eq!(field_err(&b), (None, Field::LinkCount));
    }

    #[test]
    fn round_trip() {
        let vms = [
            hello("a"),
            VmSpec {
                args: "mode=msr x=1",
                budget: 5,
                cores: 0b1010,
                restart: Restart::OnFailure,
                restart_limit: 3,
                ..hello("b")
            },
        ];
        let bytes = build(&vms);
        let m = Manifest::parse(&bytes).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m.iter().collect::<Vec<_>>(), vms);
        assert_eq!(m.get(1), Some(vms[1]));
        assert_eq!(m.get(2), None);
    }

    fn field_err(bytes: &[u8]) -> (Option<u32>, Field) {
        let e = Manifest::parse(bytes).unwrap_err();
        (e.vm, e.field)
    }

    #[test]
    fn header_errors_name_the_field() {
        let good = build(&[hello("a")]);
        assert_eq!(field_err(&good[..10]), (None, Field::Size));
        let mut b = good.clone();
        b[0] = b'X';
        assert_eq!(field_err(&b), (None, Field::Magic));
        let mut b = good.clone();
        b[8] = 99;
        assert_eq!(field_err(&b), (None, Field::AbiVersion));
        let mut b = good.clone();
        b[16] = 1;
        assert_eq!(field_err(&b), (None, Field::Size));
        let mut b = good.clone();
        le::put_u32(&mut b, 20, 0);
        assert_eq!(field_err(&b), (None, Field::VmCount));
        let mut b = good.clone();
        le::put_u32(&mut b, 20, 2);
        assert_eq!(field_err(&b), (None, Field::Size));
        let mut b = good.clone();
        b.push(0);
        assert_eq!(field_err(&b), (None, Field::Size));
        let mut b = good.clone();
        b[24] = 1;
        assert_eq!(field_err(&b), (None, Field::Flags));
        let mut b = good.clone();
        b[28] = 1;
        assert_eq!(field_err(&b), (None, Field::Size));
        let mut b = good;
        le::put_u64(&mut b, H_TIMESLICE, 5);
        assert_eq!(field_err(&b), (None, Field::Timeslice));
    }

    #[test]
    fn record_errors_name_vm_and_field() {
        let good = build(&[hello("a"), hello("b")]);
        let rec = |i: usize, off: usize| HEADER_SIZE + i * RECORD_SIZE + off;
        type Corrupt<'a> = &'a dyn Fn(&mut Vec<u8>);
        let cases: [(usize, Corrupt, Field); 9] = [
            (R_NAME, &|b| b[rec(1, R_NAME)] = 0, Field::Name),
            (R_NAME, &|b| b[rec(1, R_NAME)] = b'@', Field::Name),
            (R_NAME, &|b| b[rec(1, R_NAME + 5)] = b'z', Field::Name),
            (R_IMAGE, &|b| b[rec(1, R_IMAGE)] = b' ', Field::Image),
            (R_ARGS, &|b| b[rec(1, R_ARGS)] = b'\n', Field::Args),
            (
                R_MEMORY,
                &|b| le::put_u64(b, rec(1, R_MEMORY), 0x20_0001),
                Field::Memory,
            ),
            (
                R_MEMORY,
                &|b| le::put_u64(b, rec(1, R_MEMORY), u64::MAX),
                Field::Memory,
            ),
            (
                R_RESTART_LIMIT,
                &|b| le::put_u32(b, rec(1, R_RESTART_LIMIT), 1),
                Field::RestartLimit,
            ),
            (R_FLAGS, &|b| b[rec(1, R_FLAGS)] = 2, Field::Flags),
        ];
        for (_, corrupt, field) in cases {
            let mut b = good.clone();
            corrupt(&mut b);
            assert_eq!(field_err(&b), (Some(1), field));
        }
        let mut b = good.clone();
        b[rec(1, R_RESERVED + 3)] = 1;
        assert_eq!(field_err(&b), (Some(1), Field::Reserved));
        let mut b = good;
        b[rec(1, R_NAME)] = b'a';
        let e = Manifest::parse(&b).unwrap_err();
        assert_eq!(e.problem, Problem::Duplicate { first: 0 });
    }

    #[test]
    fn many_vms_and_a_late_duplicate() {
        let names: Vec<std::string::String> =
            (0..MAX_VMS).map(|i| std::format!("vm-{i}")).collect();
        let mut vms: Vec<VmSpec> = names
            .iter()
            .map(|n| VmSpec {
                name: n,
                ..hello("x")
            })
            .collect();
        assert_eq!(
            Manifest::parse(&build(&vms)).unwrap().len(),
            MAX_VMS as usize
        );
        vms[4000].name = "vm-17";
        let e = Manifest::parse(&build(&vms)).unwrap_err();
        assert_eq!(
            (e.vm, e.problem),
            (Some(4000), Problem::Duplicate { first: 17 })
        );
    }

    #[test]
    fn encode_refuses_bad_specs() {
        let long = "x".repeat(33);
        let long: &'static str = std::boxed::Box::leak(long.into_boxed_str());
        assert_eq!(hello(long).encode(0).unwrap_err().field, Field::Name);
        // Console lines from a VM named like the hypervisor would pass for its own.
        assert_eq!(hello("hv").encode(0).unwrap_err().field, Field::Name);
        assert!(hello("hv2").encode(0).is_ok());
        let too_small = VmSpec {
            memory: 4096,
            ..hello("a")
        };
        assert_eq!(too_small.encode(0).unwrap_err().field, Field::Memory);
    }

    #[test]
    fn errors_read_well() {
        let e = ManifestError {
            vm: Some(2),
            field: Field::Memory,
            problem: Problem::NotMultiple { found: 5, of: 4096 },
        };
        assert_eq!(
            std::format!("{e}"),
            "manifest vm 2: field `memory`: 5 is not a multiple of 4096"
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1200)) {
            let _ = Manifest::parse(&bytes);
        }

        #[test]
        fn corrupting_one_byte_never_panics(pos in 0usize..(HEADER_SIZE + 2 * RECORD_SIZE), val: u8) {
            let mut b = build(&[hello("a"), hello("b")]);
            b[pos] = val;
            if let Ok(m) = Manifest::parse(&b) {
                for vm in m.iter() {
                    vm.validate(0).unwrap();
                }
            }
        }
    }
}

/// How the boot loader names the Multiboot2 modules the hypervisor reads.
/// The module command line holds one whitespace-separated token saying what
/// the module is; other tokens (such as a path) are ignored.
pub mod modules {
    /// Token of the module that holds the binary manifest.
    pub const MANIFEST_TOKEN: &str = "corral-manifest";
    /// Prefix of the token of an image module: `image=<name>`.
    pub const IMAGE_TOKEN_PREFIX: &str = "image=";

    /// What a module's command line says it is.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum ModuleKind<'a> {
        /// The binary manifest.
        Manifest,
        /// The ELF image with this name.
        Image(&'a str),
        /// Something else (ignored).
        Unknown,
    }

    /// Classifies a module by its command line.
    pub fn classify(cmdline: &str) -> ModuleKind<'_> {
        for token in cmdline.split_ascii_whitespace() {
            if token == MANIFEST_TOKEN {
                return ModuleKind::Manifest;
            }
            if let Some(name) = token.strip_prefix(IMAGE_TOKEN_PREFIX)
                && crate::text::is_valid_name(name.as_bytes())
            {
                return ModuleKind::Image(name);
            }
        }
        ModuleKind::Unknown
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn classify_modules() {
            assert_eq!(classify("corral-manifest"), ModuleKind::Manifest);
            assert_eq!(
                classify("/boot/x.elf image=hello"),
                ModuleKind::Image("hello")
            );
            assert_eq!(classify("image=@bad"), ModuleKind::Unknown);
            assert_eq!(classify(""), ModuleKind::Unknown);
        }
    }
}
