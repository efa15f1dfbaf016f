//! The binary manifest: what the host tool turns a TOML manifest into and
//! what the hypervisor reads from a Multiboot2 module. Every field is checked
//! by [`Manifest::parse`]; a bad one is refused with an error that names it.
//!
//! Wire layout (little endian): a [`HEADER_SIZE`]-byte header, a table of
//! `section_count` entries of [`SECTION_ENTRY_SIZE`] bytes, then the
//! sections' records. Each kind of record has a section of its own (VMs,
//! links, NICs, hooks, block devices and net device names today, with the
//! hooks' code and map definitions in two blob sections of fixed-size
//! records; capability grants and guest ABIs will be kinds of their own),
//! so a new kind is a new table entry and never widens the header. Every byte after the table belongs to exactly
//! one section; [`encode`] writes the sections in table order.
//!
//! | header offset | field |
//! |---|---|
//! | 0 | magic [`MANIFEST_MAGIC`] |
//! | 8 | `abi_version` u32 |
//! | 12 | `header_size` u32 (= [`HEADER_SIZE`]) |
//! | 16 | `section_count` u32: table entries (1..=[`MAX_SECTIONS`]) |
//! | 20 | `flags` u32: bit 0 = [`FLAG_SERVICE`] (the host keeps running and takes commands on its control channel; core 0 is its control core and runs no VMs); other bits 0 |
//! | 24 | `timeslice` u64: instructions per scheduling slice, 0 = default |
//!
//! | section entry offset | field |
//! |---|---|
//! | 0 | `kind` u32: [`SectionKind`]: 1 = VMs (exactly one section), 2 = links, 3 = NICs, 4 = hooks, 7 = hook code, 8 = hook maps, 9 = block devices, 10 = net device names (at most one each); 5, 6 set aside for grants, guest ABIs; any other is refused |
//! | 4 | `offset` u32: first byte of its records, from the start of the manifest, at or after the end of the table |
//! | 8 | `count` u32: records (VMs 1..=[`MAX_VMS`], links 0..=[`MAX_LINKS`], NICs 0..=[`MAX_NICS`], hooks 0..=[`MAX_HOOKS`], hook code 0..=[`MAX_HOOK_INSNS`], hook maps 0..=[`MAX_HOOK_MAPS`], block devices 0..=[`MAX_BLOCKS`], net device names 0..=[`MAX_NET_DEVICES`]) |
//! | 12 | `record_size` u32: bytes per record, its kind's ([`RECORD_SIZE`], [`LINK_RECORD_SIZE`], [`NIC_RECORD_SIZE`], [`HOOK_RECORD_SIZE`], 8 = one eBPF instruction, 16 = one [`crate::hook::MapDef`], [`BLOCK_RECORD_SIZE`], [`NET_DEVICE_RECORD_SIZE`]) |
//!
//! | VM record offset | field |
//! |---|---|
//! | 0 | `name` \[32\], NUL padded |
//! | 32 | `image` \[32\], NUL padded |
//! | 64 | `args` \[128\], NUL padded |
//! | 192 | `memory` u64, bytes |
//! | 200 | `budget` u64, guest instructions before the VM is stopped; 0 = none |
//! | 208 | `cores` u64: bit N = may run on core N; 0 = not pinned |
//! | 216 | `flags` u32: bit 0 = restart on failure; bit 1 = [`FLAG_CAP_CONTROL`]; other bits 0 |
//! | 220 | `restart_limit` u32: most restarts (0 unless restarting) |
//! | 224 | `net` u8: virtio-net ports (0..=[`MAX_NET_PORTS`]) |
//! | 225 | `console` u8: 1 = a virtio-console, 0 = none |
//! | 226 | `entry_len` u8: 0, or the length of the `[[vm]]` entry's name this VM is a clone of (`name` is then the entry's name, `-`, and more) |
//! | 227 | reserved \[29\] (must be 0) |
//!
//! | link record offset | field |
//! |---|---|
//! | 0 | `a_vm` u32: one end: the manifest index of its VM, or of its NIC in the NIC section (`a_kind` says which) |
//! | 4 | `b_vm` u32: the other end, the same way |
//! | 8 | `a_port` u8, 9 | `b_port` u8: net port numbers on those VMs (0 for a NIC end) |
//! | 10 | `a_kind` u8, 11 | `b_kind` u8: 0 = a VM's net port, 1 = a NIC; not both ends NICs |
//! | 12 | `core` u32: the core that polls this link; it runs no VMs; a link to a NIC is polled on the NIC's core |
//! | 16 | `hold` u64: [`LinkSpec::hold`] (0 or [`MIN_LINK_HOLD`]..=[`MAX_LINK_HOLD`]) |
//! | 24 | `flags` u32: bit 0 = [`LINK_FLAG_BRIDGE`] (the VM end bridges frames of machines behind it; only on a link to a NIC); other bits 0 |
//! | 28 | reserved u32 (must be 0) |
//!
//! | NIC record offset | field |
//! |---|---|
//! | 0 | `name` \[32\], NUL padded (the rules of VM names; unique among NICs) |
//! | 32 | `pci` u32: `bus << 16 \| device << 8 \| function` (device 0..=31, function 0..=7; unique), or [`NIC_PCI_AUTO`]: the n-th supported NIC found in bus order that no record names by address |
//! | 36 | `mac` \[6\]: all zero = the NIC's own (from its EEPROM); else unicast (low bit of byte 0 clear) |
//! | 42 | `mode` u8: [`NicMode`]: 1 = shared (copy), 2 = owned (mediated zero-copy) |
//! | 43 | reserved u8 (must be 0) |
//! | 44 | `core` u32: the core that polls the NIC (< [`MAX_CORES`]); it runs no VMs |
//! | 48 | reserved \[16\] (must be 0) |
//!
//! | hook record offset | field |
//! |---|---|
//! | 0 | `name` \[32\], NUL padded (the rules of VM names; unique among hooks) |
//! | 32 | `kind` u8: [`crate::hook::HookKind`]: 1 = packet, 2 = restart, 3 = exit, 4 = slice |
//! | 33 | `attach` u8: 1 = one direction of a link between two VM ports, 2 = a VM (restart, exit, slice hooks), 3 = one direction of a shared NIC's queue, 4 = a core (a slice hook for every VM there without its own); `target` is the link's, VM's or NIC's index, or the core |
//! | 34 | `direction` u8: [`LinkDir`]: 0 = a->b, 1 = b->a; at most one hook per link direction |
//! | 35 | reserved u8 (must be 0) |
//! | 36 | `target` u32: see `attach` |
//! | 40 | `insn_offset` u32, 44 `insn_count` u32 (1..=4096): its run of the hook code section (kind 7), starting where the previous hook's run ended |
//! | 48 | `map_offset` u32, 52 `map_count` u32 (0..=16): its run of the hook map section (kind 8), the same way; `lddw src=1 imm=i` names the run's map `i` |
//! | 56 | reserved \[8\] (must be 0) |
//!
//! | block record offset (section kind 9) | field |
//! |---|---|
//! | 0 | `name` \[32\], NUL padded (the rules of VM names; unique among block devices); its disk image is the boot module `block=NAME` |
//! | 32 | `vm` u32: the VM it is attached to (its index; one VM per disk) |
//! | 36 | `block_size` u32: a power of two, [`MIN_BLOCK_SIZE`]..=[`MAX_BLOCK_SIZE`] |
//! | 40 | `capacity` u64: the image's bytes, whole blocks, at least one, at most [`MAX_BLOCK_CAPACITY`] |
//! | 48 | `flags` u8: [`BLOCK_PERSIST`] (written blocks go back to the host file); other bits must be 0 |
//! | 49 | reserved \[15\] (must be 0) |
//! | 64 | `device` \[68\], NUL padded: its name in the VM's Solo5 manifest (1..=67 letters and digits; unique per VM) |
//! | 132 | reserved \[12\] (must be 0) |
//!
//! | net device record offset (section kind 10) | field |
//! |---|---|
//! | 0 | `vm` u32: the VM whose net port it names (its index) |
//! | 4 | `port` u8: that VM's net port (below its `net`; the port links and NICs reach) |
//! | 5 | reserved \[3\] (must be 0) |
//! | 8 | `device` \[68\], NUL padded: the port's NET_BASIC device name in the VM's Solo5 manifest (1..=67 letters and digits) |
//! | 76 | reserved \[4\] (must be 0) |
//!
//! Per VM a net device record's device name and port are each named once,
//! the name is none of its block devices' names, and there are at most
//! [`MAX_VM_NET_DEVICES`] records.
//!
//! Hook code records are eBPF instructions in the Linux encoding
//! ([`crate::hook::Insn::to_bytes`]); hook map records are
//! [`crate::hook::MapDef::to_bytes`]. The hooks' runs cover both sections
//! exactly, and every program is verified ([`crate::hook::verify`]) with its
//! map table when the manifest is parsed.

mod block;
#[cfg(test)]
mod block_tests;
mod error;
mod hook;
#[cfg(test)]
mod hook_tests;
mod link;
mod net_device;
#[cfg(test)]
mod net_device_tests;
mod nic;
mod section;
#[cfg(test)]
mod tests;

pub use block::{
    BLOCK_PERSIST, BLOCK_RECORD_SIZE, BlockSpec, DEVICE_NAME_MAX, MAX_BLOCK_CAPACITY,
    MAX_BLOCK_SIZE, MAX_BLOCKS, MIN_BLOCK_SIZE, is_device_name,
};
pub use error::{Field, ManifestError, Place, Problem};
pub use hook::{
    FLAG_INTERPRET, HOOK_RECORD_SIZE, HookAttach, HookName, HookSpec, LinkDir, MAX_HOOK_INSNS,
    MAX_HOOK_MAPS, MAX_HOOKS, NicDir, check_program,
};
pub use link::{
    DEFAULT_LINK_HOLD, LINK_FLAG_BRIDGE, LINK_RECORD_SIZE, LinkEndRef, LinkSpec, MAX_LINK_HOLD,
    MAX_LINKS, MIN_LINK_HOLD, PortRef,
};
pub use net_device::{MAX_NET_DEVICES, MAX_VM_NET_DEVICES, NET_DEVICE_RECORD_SIZE, NetDeviceSpec};
pub use nic::{
    MAX_NICS, NIC_PCI_AUTO, NIC_RECORD_SIZE, NicMode, NicPci, NicSpec, PciAddress, is_unicast,
};
pub use section::{MAX_SECTIONS, SECTION_ENTRY_SIZE, SECTION_KINDS, Section, SectionKind};

use crate::corral::bootinfo::{ARGS_MAX, NAME_MAX};
use crate::corral::devices::MAX_NET_PORTS;
use crate::corral::layout::{MAX_MEMORY, MIN_MEMORY, PAGE_SIZE};
use crate::text::{is_printable, is_valid_name, le, unpad};

/// First eight bytes of a binary manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"CORRALMF";
/// Bytes in the header.
pub const HEADER_SIZE: usize = 32;
/// Bytes in one VM record.
pub const RECORD_SIZE: usize = 256;
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
/// Header flag: a service run. The hypervisor keeps running when its VMs
/// end and takes commands (`crate::control`) until told to end; core 0
/// serves the control channel and runs no VMs.
pub const FLAG_SERVICE: u32 = 1 << 0;
/// Record flag: restart the VM when it ends other than by exiting 0.
const FLAG_RESTART_ON_FAILURE: u32 = 1 << 0;
/// A VM flag: the VM holds the control capability (`caps = ["control"]`):
/// it may submit control commands and take their answers and events by
/// hypercall ([`crate::corral::hypercall::Hypercall::ControlSend`]); only
/// in a service run.
pub const FLAG_CAP_CONTROL: u32 = 1 << 1;

const H_MAGIC: usize = 0;
const H_ABI_VERSION: usize = 8;
const H_HEADER_SIZE: usize = 12;
const H_SECTION_COUNT: usize = 16;
const H_FLAGS: usize = 20;
const H_TIMESLICE: usize = 24;
const _: () = assert!(H_TIMESLICE + 8 == HEADER_SIZE);
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
const R_ENTRY_LEN: usize = 226;
const R_RESERVED: usize = 227;
const _: () = assert!(R_IMAGE == R_NAME + NAME_MAX && R_ARGS == R_IMAGE + NAME_MAX);
const _: () = assert!(R_MEMORY == R_ARGS + ARGS_MAX && R_RESERVED + 29 == RECORD_SIZE);

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
    /// Whether it holds the control capability ([`FLAG_CAP_CONTROL`]).
    pub control: bool,
    /// The manifest entry it comes from: its own name, or for a clone of a
    /// `count` entry that entry's name (`name` is then `<entry>-<more>`).
    pub entry: &'a str,
}

/// What the hypervisor does when a VM ends other than by exiting with 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Leave it ended.
    Never,
    /// Start it again with fresh memory, up to its restart limit.
    OnFailure,
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

/// Checks a VM's arguments as a manifest's are checked: at most
/// [`ARGS_MAX`] bytes of printable ASCII.
pub fn check_args(args: &str) -> Result<(), Problem> {
    if args.len() > ARGS_MAX {
        return Err(Problem::TooLong {
            max: ARGS_MAX as u64,
        });
    }
    if !is_printable(args.as_bytes()) {
        return Err(Problem::BadText);
    }
    Ok(())
}

/// Checks a VM's memory size (bytes) as a manifest's is checked: within
/// [`MIN_MEMORY`]..=[`MAX_MEMORY`], whole pages.
pub fn check_memory(memory: u64) -> Result<(), Problem> {
    if !(MIN_MEMORY..=MAX_MEMORY).contains(&memory) {
        return Err(Problem::OutOfRange {
            found: memory,
            min: MIN_MEMORY,
            max: MAX_MEMORY,
        });
    }
    if !memory.is_multiple_of(PAGE_SIZE) {
        return Err(Problem::NotMultiple {
            found: memory,
            of: PAGE_SIZE,
        });
    }
    Ok(())
}

impl<'a> VmSpec<'a> {
    /// Checks every field of this VM; `vm` is its index, for the error.
    pub fn validate(&self, vm: u32) -> Result<(), ManifestError> {
        let e = |field, problem| Err(err(Some(vm), field, problem));
        for (field, text) in [(Field::Name, self.name), (Field::Image, self.image)] {
            if text.len() > NAME_MAX {
                return e(
                    field,
                    Problem::TooLong {
                        max: NAME_MAX as u64,
                    },
                );
            }
            if !is_valid_name(text.as_bytes())
                || (field == Field::Name && text == crate::report::HYPERVISOR_SOURCE)
            {
                return e(field, Problem::BadText);
            }
        }
        if let Err(p) = check_args(self.args) {
            return e(Field::Args, p);
        }
        if let Err(p) = check_memory(self.memory) {
            return e(Field::Memory, p);
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
        let clone_of = |e: &str| {
            self.name.len() > e.len()
                && self.name.starts_with(e)
                && self.name.as_bytes()[e.len()] == b'-'
                && !e.is_empty()
        };
        if self.entry != self.name && !clone_of(self.entry) {
            return e(Field::Entry, Problem::BadText);
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
        } | if self.control { FLAG_CAP_CONTROL } else { 0 };
        le::put_u32(&mut r, R_FLAGS, flags);
        le::put_u32(&mut r, R_RESTART_LIMIT, self.restart_limit);
        r[R_NET] = self.net_ports;
        r[R_CONSOLE] = u8::from(self.console);
        if self.entry != self.name {
            // Below NAME_MAX: validated as a strict prefix of the name.
            r[R_ENTRY_LEN] = self.entry.len() as u8;
        }
        Ok(r)
    }

    fn decode(vm: u32, r: &'a [u8]) -> Result<Self, ManifestError> {
        let flags = le::u32_at(r, R_FLAGS);
        if flags & !(FLAG_RESTART_ON_FAILURE | FLAG_CAP_CONTROL) != 0 {
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
        let name = text_field(vm, Field::Name, &r[R_NAME..R_IMAGE], false)?;
        let entry = match usize::from(r[R_ENTRY_LEN]) {
            0 => name,
            n => name
                .get(..n)
                .ok_or(err(Some(vm), Field::Entry, Problem::BadText))?,
        };
        let spec = VmSpec {
            name,
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
            control: flags & FLAG_CAP_CONTROL != 0,
            entry,
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

/// Bytes of the manifest [`encode`] writes for `vm_count` VMs, `nic_count`
/// NICs and `link_count` links: header, section table (a link section only
/// with links, a NIC section only with NICs), VM records, link records, NIC
/// records.
pub const fn encoded_len(vm_count: usize, nic_count: usize, link_count: usize) -> usize {
    let sections = 1 + (link_count > 0) as u32 + (nic_count > 0) as u32;
    section::table_end(sections)
        + vm_count * RECORD_SIZE
        + link_count * LINK_RECORD_SIZE
        + nic_count * NIC_RECORD_SIZE
}

/// Bytes of the manifest [`encode_with_hooks`] writes: [`encoded_len`]
/// plus the hook records, their code and their map definitions, each
/// section only when it has records.
pub fn encoded_len_with_hooks(
    vm_count: usize,
    nic_count: usize,
    link_count: usize,
    hooks: &[HookSpec<'_>],
) -> usize {
    let code: usize = hooks.iter().map(|h| h.code.len()).sum();
    let maps: usize = hooks.iter().map(|h| h.maps.len()).sum();
    let extra_sections = [hooks.len(), code, maps].iter().filter(|&&n| n > 0).count();
    encoded_len(vm_count, nic_count, link_count)
        + extra_sections * SECTION_ENTRY_SIZE
        + hooks.len() * HOOK_RECORD_SIZE
        + code
        + maps
}

/// Writes the binary manifest of `vms`, `nics` and `links` with scheduling
/// slices of `timeslice` instructions (0 = the hypervisor's default) into
/// `out`, which must be [`encoded_len`] bytes long. Every VM, every NIC and
/// the slice are checked first, and the result is parsed before it is
/// returned, so what this writes [`Manifest::parse`] accepts; an error
/// names what is wrong as the parser would.
pub fn encode(
    timeslice: u64,
    vms: &[VmSpec<'_>],
    nics: &[NicSpec<'_>],
    links: &[LinkSpec],
    out: &mut [u8],
) -> Result<(), ManifestError> {
    encode_with_hooks(timeslice, vms, nics, links, &[], out)
}

/// Marks an encoded manifest as a service run ([`FLAG_SERVICE`]) and
/// checks it again (a VM pinned only to core 0 is refused then).
pub fn mark_service(out: &mut [u8]) -> Result<(), ManifestError> {
    if out.len() < HEADER_SIZE {
        return Err(err(
            None,
            Field::Size,
            Problem::Mismatch {
                found: out.len() as u64,
                expected: HEADER_SIZE as u64,
            },
        ));
    }
    let flags = le::u32_at(out, H_FLAGS) | FLAG_SERVICE;
    le::put_u32(out, H_FLAGS, flags);
    Manifest::parse(out).map(|_| ())
}

/// Bytes of the manifest [`encode_full`] writes: [`encoded_len_with_hooks`]
/// plus the block records and the net device records (each a section only
/// when there are some).
pub fn encoded_len_full(
    vm_count: usize,
    nic_count: usize,
    link_count: usize,
    hooks: &[HookSpec<'_>],
    block_count: usize,
    net_device_count: usize,
) -> usize {
    encoded_len_with_hooks(vm_count, nic_count, link_count, hooks)
        + usize::from(block_count > 0) * SECTION_ENTRY_SIZE
        + block_count * BLOCK_RECORD_SIZE
        + usize::from(net_device_count > 0) * SECTION_ENTRY_SIZE
        + net_device_count * NET_DEVICE_RECORD_SIZE
}

/// [`encode`] with hooks: `out` must be [`encoded_len_with_hooks`] bytes
/// long. Each hook's name, code and map bytes are checked first (an error
/// names the hook by index); its program is verified by the parse that
/// ends this, so a refused program comes back as the verifier's
/// [`Problem::Verify`].
pub fn encode_with_hooks(
    timeslice: u64,
    vms: &[VmSpec<'_>],
    nics: &[NicSpec<'_>],
    links: &[LinkSpec],
    hooks: &[HookSpec<'_>],
    out: &mut [u8],
) -> Result<(), ManifestError> {
    encode_full(timeslice, vms, nics, links, hooks, &[], &[], out)
}

/// [`encode_with_hooks`] with block devices and net device names: `out`
/// must be [`encoded_len_full`] bytes long.
#[allow(clippy::too_many_arguments)]
pub fn encode_full(
    timeslice: u64,
    vms: &[VmSpec<'_>],
    nics: &[NicSpec<'_>],
    links: &[LinkSpec],
    hooks: &[HookSpec<'_>],
    blocks: &[BlockSpec<'_>],
    net_devices: &[NetDeviceSpec<'_>],
    out: &mut [u8],
) -> Result<(), ManifestError> {
    let h = |field, problem| Err(err(None, field, problem));
    for (i, hook) in hooks.iter().enumerate() {
        let e = |field, problem| Err(err(Some(i as u32), field, problem));
        if hook.name.len() > NAME_MAX {
            return e(
                Field::HookName,
                Problem::TooLong {
                    max: NAME_MAX as u64,
                },
            );
        }
        if !is_valid_name(hook.name.as_bytes()) {
            return e(Field::HookName, Problem::BadText);
        }
        for (field, bytes, size, max) in [
            (Field::HookCode, hook.code, 8, crate::hook::MAX_INSNS),
            (Field::HookMaps, hook.maps, 16, crate::hook::MAX_MAPS),
        ] {
            if !bytes.len().is_multiple_of(size) || bytes.len() / size > max {
                return e(
                    field,
                    Problem::OutOfRange {
                        found: (bytes.len() / size) as u64,
                        min: 0,
                        max: max as u64,
                    },
                );
            }
        }
    }
    let code_bytes: usize = hooks.iter().map(|h| h.code.len()).sum();
    let map_bytes: usize = hooks.iter().map(|h| h.maps.len()).sum();
    let counts = [
        (SectionKind::Vms, vms.len()),
        (SectionKind::Links, links.len()),
        (SectionKind::Nics, nics.len()),
        (SectionKind::Hooks, hooks.len()),
        (SectionKind::HookCode, code_bytes / 8),
        (SectionKind::HookMaps, map_bytes / 16),
        (SectionKind::Blocks, blocks.len()),
        (SectionKind::NetDevices, net_devices.len()),
    ];
    for (kind, count) in counts {
        let (min, max, field) = kind.counts();
        if !(min as usize..=max as usize).contains(&count) {
            return h(
                field,
                Problem::OutOfRange {
                    found: count as u64,
                    min: min.into(),
                    max: max.into(),
                },
            );
        }
    }
    validate_timeslice(timeslice)?;
    let want = encoded_len_full(
        vms.len(),
        nics.len(),
        links.len(),
        hooks,
        blocks.len(),
        net_devices.len(),
    );
    if out.len() != want {
        return h(
            Field::Size,
            Problem::Mismatch {
                found: out.len() as u64,
                expected: want as u64,
            },
        );
    }
    // The counts are checked above, so the manifest is about 1 MiB at
    // most and every count and offset fits a u32. Sections in kind order,
    // VMs always, the others only when they have records.
    let present = counts
        .iter()
        .filter(|&&(kind, count)| kind == SectionKind::Vms || count > 0);
    let sections = present.clone().count() as u32;
    let mut at = section::table_end(sections);
    out.fill(0);
    out[H_MAGIC..H_MAGIC + 8].copy_from_slice(&MANIFEST_MAGIC);
    le::put_u32(out, H_ABI_VERSION, crate::ABI_VERSION);
    le::put_u32(out, H_HEADER_SIZE, HEADER_SIZE as u32);
    le::put_u32(out, H_SECTION_COUNT, sections);
    le::put_u64(out, H_TIMESLICE, timeslice);
    for (i, &(kind, count)) in present.enumerate() {
        let entry = Section {
            kind: kind as u32,
            offset: at as u32,
            count: count as u32,
            record_size: kind.record_size() as u32,
        };
        let e = section::table_end(i as u32);
        out[e..e + SECTION_ENTRY_SIZE].copy_from_slice(&entry.encode());
        let size = kind.record_size();
        let records = out[at..at + count * size].chunks_exact_mut(size);
        match kind {
            SectionKind::Vms => {
                for (i, (vm, r)) in vms.iter().zip(records).enumerate() {
                    r.copy_from_slice(&vm.encode(i as u32)?);
                }
            }
            SectionKind::Links => {
                for (link, r) in links.iter().zip(records) {
                    r.copy_from_slice(&link.encode());
                }
            }
            SectionKind::Nics => {
                for (i, (nic, r)) in nics.iter().zip(records).enumerate() {
                    r.copy_from_slice(&nic.encode(i as u32)?);
                }
            }
            SectionKind::Hooks => {
                let mut next = (0u32, 0u32);
                for (hook, r) in hooks.iter().zip(records) {
                    r.copy_from_slice(&hook.encode(next.0, next.1));
                    next.0 += hook.insn_count() as u32;
                    next.1 += hook.map_count() as u32;
                }
            }
            SectionKind::Blocks => {
                for (i, (b, r)) in blocks.iter().zip(records).enumerate() {
                    r.copy_from_slice(&b.encode(i as u32, vms.len() as u32)?);
                }
            }
            SectionKind::NetDevices => {
                for (i, (d, r)) in net_devices.iter().zip(records).enumerate() {
                    r.copy_from_slice(&d.encode(i as u32, vms)?);
                }
            }
            SectionKind::HookCode | SectionKind::HookMaps => {
                let mut blob = out[at..at + count * size].iter_mut();
                for hook in hooks {
                    let bytes = if kind == SectionKind::HookCode {
                        hook.code
                    } else {
                        hook.maps
                    };
                    // `bytes` first: zip stops on it without taking
                    // another byte of the blob.
                    for (&b, d) in bytes.iter().zip(blob.by_ref()) {
                        *d = b;
                    }
                }
            }
        }
        at += count * size;
    }
    Manifest::parse(out).map(|_| ())
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
    nics: &'a [u8],
    hooks: &'a [u8],
    hook_code: &'a [u8],
    hook_maps: &'a [u8],
    blocks: &'a [u8],
    net_devices: &'a [u8],
    timeslice: u64,
    poll_cores: u64,
    service: bool,
}

impl<'a> Manifest<'a> {
    /// Checks a whole binary manifest: header, section table, every VM
    /// record, that VM names are unique, every NIC (names and addresses
    /// unique), every link against both, every hook (its record, its
    /// link, its program verified with its maps), every block device and
    /// every net device name.
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
        if bytes[H_MAGIC..H_MAGIC + 8] != MANIFEST_MAGIC {
            return h(
                Field::Magic,
                Problem::Mismatch {
                    found: le::u64_at(bytes, H_MAGIC),
                    expected: u64::from_le_bytes(MANIFEST_MAGIC),
                },
            );
        }
        let version = le::u32_at(bytes, H_ABI_VERSION);
        if version != crate::ABI_VERSION {
            return h(
                Field::AbiVersion,
                Problem::Mismatch {
                    found: version.into(),
                    expected: crate::ABI_VERSION.into(),
                },
            );
        }
        let header_size = le::u32_at(bytes, H_HEADER_SIZE);
        if header_size as usize != HEADER_SIZE {
            return h(
                Field::Size,
                Problem::Mismatch {
                    found: header_size.into(),
                    expected: HEADER_SIZE as u64,
                },
            );
        }
        let flags = le::u32_at(bytes, H_FLAGS);
        if flags & !FLAG_SERVICE != 0 {
            return h(Field::Flags, Problem::NotZero);
        }
        let count = le::u32_at(bytes, H_SECTION_COUNT);
        if !(1..=MAX_SECTIONS).contains(&count) {
            return h(
                Field::SectionCount,
                Problem::OutOfRange {
                    found: count.into(),
                    min: 1,
                    max: MAX_SECTIONS.into(),
                },
            );
        }
        let timeslice = le::u64_at(bytes, H_TIMESLICE);
        validate_timeslice(timeslice)?;
        let sections = section::locate(bytes, count)?;
        let mut manifest = Manifest {
            records: &bytes[sections.range(SectionKind::Vms)],
            links: &bytes[sections.range(SectionKind::Links)],
            nics: &bytes[sections.range(SectionKind::Nics)],
            hooks: &bytes[sections.range(SectionKind::Hooks)],
            hook_code: &bytes[sections.range(SectionKind::HookCode)],
            hook_maps: &bytes[sections.range(SectionKind::HookMaps)],
            blocks: &bytes[sections.range(SectionKind::Blocks)],
            net_devices: &bytes[sections.range(SectionKind::NetDevices)],
            timeslice,
            poll_cores: 0,
            service: flags & FLAG_SERVICE != 0,
        };
        // Unique names, in O(n): open addressing over record indices.
        let mut seen = [EMPTY_SLOT; NAME_TABLE];
        let mut holder: Option<u32> = None;
        for (i, vm) in manifest.iter_checked().enumerate() {
            let vm = vm?;
            if vm.control {
                // One holder (a service run is checked by
                // `check_capability`: the host tool marks a manifest as
                // one after encoding it).
                if holder.is_some() {
                    return Err(err(
                        Some(i as u32),
                        Field::Flags,
                        Problem::Capability { holder },
                    ));
                }
                holder = Some(i as u32);
            }
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
        let nic_cores = nic::check_nics(manifest.nics)?;
        manifest.poll_cores = nic_cores | manifest.check_links()?;
        manifest.check_pinning()?;
        manifest.check_hooks()?;
        block::check_blocks(manifest.blocks, manifest.len() as u32)?;
        net_device::check_net_devices(&manifest)?;
        Ok(manifest)
    }

    /// Refuses the control capability outside a service run (the channel
    /// its holder drives exists only there); the hypervisor checks it
    /// after [`Manifest::parse`], before it runs anything.
    pub fn check_capability(&self) -> Result<(), ManifestError> {
        match self.iter().position(|vm| vm.control) {
            Some(i) if !self.service => Err(err(
                Some(i as u32),
                Field::Flags,
                Problem::Capability { holder: None },
            )),
            _ => Ok(()),
        }
    }

    /// The net device names, in manifest order (checked by
    /// [`Manifest::parse`]).
    pub fn net_devices(&self) -> impl Iterator<Item = NetDeviceSpec<'a>> + 'a {
        let m = *self;
        let vms = self.len() as u32;
        self.net_devices
            .chunks_exact(NET_DEVICE_RECORD_SIZE)
            .enumerate()
            .filter_map(move |(i, r)| {
                NetDeviceSpec::decode(i as u32, r, vms, |vm| m.net_ports(vm)).ok()
            })
    }

    /// The net ports of VM `vm` (0 if there is no such VM), from its
    /// record's `net` byte.
    fn net_ports(&self, vm: u32) -> u8 {
        (vm as usize)
            .checked_mul(RECORD_SIZE)
            .and_then(|at| at.checked_add(R_NET))
            .and_then(|at| self.records.get(at))
            .copied()
            .unwrap_or(0)
    }

    /// The block devices, in manifest order (checked by [`Manifest::parse`]).
    pub fn blocks(&self) -> impl Iterator<Item = BlockSpec<'a>> + 'a {
        let vms = self.len() as u32;
        self.blocks
            .chunks_exact(BLOCK_RECORD_SIZE)
            .enumerate()
            .filter_map(move |(i, r)| BlockSpec::decode(i as u32, r, vms).ok())
    }

    /// A VM pinned only to cores that poll links or NICs (or, in a service
    /// run, the control core) could never run.
    fn check_pinning(&self) -> Result<(), ManifestError> {
        let no_vms = self.poll_cores | self.control_cores();
        for (i, vm) in self.iter().enumerate() {
            if vm.cores != 0 && vm.cores & !no_vms == 0 {
                let core = (vm.cores & no_vms).trailing_zeros();
                return Err(err(
                    Some(i as u32),
                    Field::Cores,
                    Problem::PollCore { core },
                ));
            }
        }
        Ok(())
    }

    /// The links, in manifest order (all checked by [`Manifest::parse`]).
    pub fn links(&self) -> impl Iterator<Item = LinkSpec> + 'a {
        self.links
            .chunks_exact(LINK_RECORD_SIZE)
            .enumerate()
            .filter_map(|(i, r)| LinkSpec::decode(i as u32, r).ok())
    }

    /// Number of links.
    pub fn link_count(&self) -> usize {
        self.links.len() / LINK_RECORD_SIZE
    }

    /// The NICs, in manifest order (all checked by [`Manifest::parse`]); a
    /// link's [`LinkEndRef::Nic`] is an index into this order.
    pub fn nics(&self) -> impl Iterator<Item = NicSpec<'a>> + 'a {
        self.nics
            .chunks_exact(NIC_RECORD_SIZE)
            .enumerate()
            .filter_map(|(i, r)| NicSpec::decode(i as u32, r).ok())
    }

    /// Number of NICs.
    pub fn nic_count(&self) -> usize {
        self.nics.len() / NIC_RECORD_SIZE
    }

    /// The NIC at `index`, if there is one.
    pub fn nic(&self, index: usize) -> Option<NicSpec<'a>> {
        let start = index.checked_mul(NIC_RECORD_SIZE)?;
        let r = self.nics.get(start..start.checked_add(NIC_RECORD_SIZE)?)?;
        NicSpec::decode(index as u32, r).ok()
    }

    /// The cores that poll links or NICs (bit N = core N); they run no VMs.
    pub fn poll_cores(&self) -> u64 {
        self.poll_cores
    }

    /// Whether this is a service run ([`FLAG_SERVICE`]).
    pub fn service(&self) -> bool {
        self.service
    }

    /// The cores that serve the control channel (bit N = core N): core 0
    /// in a service run, none otherwise. They run no VMs.
    pub fn control_cores(&self) -> u64 {
        u64::from(self.service)
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

/// How the boot loader names the Multiboot2 modules the hypervisor reads.
/// The module command line holds one whitespace-separated token saying what
/// the module is; other tokens (such as a path) are ignored.
pub mod modules {
    /// Token of the module that holds the binary manifest.
    pub const MANIFEST_TOKEN: &str = "corral-manifest";
    /// Prefix of the token of an image module: `image=<name>`.
    pub const IMAGE_TOKEN_PREFIX: &str = "image=";
    /// Prefix of the token of a block device's disk image: `block=<name>`.
    pub const BLOCK_TOKEN_PREFIX: &str = "block=";

    /// What a module's command line says it is.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum ModuleKind<'a> {
        /// The binary manifest.
        Manifest,
        /// The ELF image with this name.
        Image(&'a str),
        /// The disk image of the block device with this name.
        Block(&'a str),
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
            if let Some(name) = token.strip_prefix(BLOCK_TOKEN_PREFIX)
                && crate::text::is_valid_name(name.as_bytes())
            {
                return ModuleKind::Block(name);
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
            assert_eq!(
                classify("/disks/disk0.img block=disk0"),
                ModuleKind::Block("disk0")
            );
            assert_eq!(classify("block="), ModuleKind::Unknown);
            assert_eq!(classify(""), ModuleKind::Unknown);
        }
    }
}
