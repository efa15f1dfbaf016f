//! Hook records (section kind 4) and the two blobs they point into: the
//! hook code (kind 7, one 8-byte eBPF instruction per record) and the hook
//! map definitions (kind 8, one 16-byte [`MapDef`] per record). Records
//! stay fixed-size while programs are not: each hook names its run of
//! instructions and of map definitions, and the runs follow one another in
//! hook order, so every byte of both blobs belongs to exactly one hook.
//!
//! A packet hook is attached to one direction of a link or of a NIC's
//! queue (a NIC in shared mode), a restart, exit or slice hook to a VM.
//!
//! Every hook's program is verified here ([`verify`]) with its map table,
//! so a manifest that parses holds only programs the hypervisor may run
//! (it verifies them again when it builds them).

use super::error::{Field, ManifestError, Problem};
use super::{Manifest, err};
use crate::corral::bootinfo::NAME_MAX;
use crate::hook::insn::INSN_SIZE;
use crate::hook::map::MAP_DEF_SIZE;
use crate::hook::{HookKind, Insn, MAX_INSNS, MAX_MAPS, MapDef, VerifyError, verify};
use crate::text::{is_valid_name, le, unpad};
use core::fmt;

/// Bytes in one hook record.
pub const HOOK_RECORD_SIZE: usize = 64;
/// Most hooks one manifest may name.
pub const MAX_HOOKS: u32 = 16;
/// Most instructions of all hooks together (the hook code section's
/// records).
pub const MAX_HOOK_INSNS: u32 = MAX_HOOKS * MAX_INSNS as u32;
/// Most map definitions of all hooks together.
pub const MAX_HOOK_MAPS: u32 = MAX_HOOKS * MAX_MAPS as u32;

const K_NAME: usize = 0;
const K_KIND: usize = 32;
const K_ATTACH: usize = 33;
const K_DIRECTION: usize = 34;
const K_FLAGS: usize = 35;
const K_TARGET: usize = 36;
const K_INSN_OFFSET: usize = 40;
const K_INSN_COUNT: usize = 44;
const K_MAP_OFFSET: usize = 48;
const K_MAP_COUNT: usize = 52;
const K_RESERVED_2: usize = 56;
/// Flag bit: run the program in the interpreter, not as compiled code.
pub const FLAG_INTERPRET: u8 = 1;
const _: () = assert!(K_KIND == K_NAME + NAME_MAX && K_RESERVED_2 + 8 == HOOK_RECORD_SIZE);

/// Attach kind on the wire: one direction of a link between two VM ports.
const ATTACH_LINK: u8 = 1;
/// Attach kind on the wire: a VM (every clone of it), for restart and exit
/// hooks.
const ATTACH_VM: u8 = 2;
/// Attach kind on the wire: one direction of a NIC's queue (a packet
/// hook); the direction byte is 0 for receive (wire to guests), 1 for
/// transmit.
const ATTACH_NIC: u8 = 3;
/// Attach kind on the wire: a core (a slice hook for every VM that runs
/// there and has no slice hook of its own).
const ATTACH_CORE: u8 = 4;

/// One direction of a NIC's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NicDir {
    /// Frames from the wire to the guests.
    Rx = 0,
    /// Frames from the guests to the wire.
    Tx = 1,
}

impl NicDir {
    /// The direction a wire byte names.
    pub const fn from_u8(raw: u8) -> Option<Self> {
        match raw {
            0 => Some(NicDir::Rx),
            1 => Some(NicDir::Tx),
            _ => None,
        }
    }

    /// `rx` or `tx`, as attach targets and reports write it.
    pub const fn name(self) -> &'static str {
        match self {
            NicDir::Rx => "rx",
            NicDir::Tx => "tx",
        }
    }
}

/// One direction of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkDir {
    /// From end `a` to end `b`.
    AToB = 0,
    /// From end `b` to end `a`.
    BToA = 1,
}

impl LinkDir {
    /// The direction a wire byte names.
    pub const fn from_u8(raw: u8) -> Option<Self> {
        match raw {
            0 => Some(LinkDir::AToB),
            1 => Some(LinkDir::BToA),
            _ => None,
        }
    }

    /// `a->b` or `b->a`, as reports write it.
    pub const fn name(self) -> &'static str {
        match self {
            LinkDir::AToB => "a->b",
            LinkDir::BToA => "b->a",
        }
    }
}

/// Where a hook is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookAttach {
    /// One direction of a link between two VM ports (a packet hook).
    Link {
        /// Manifest index of the link.
        link: u32,
        /// Which direction's frames it judges.
        dir: LinkDir,
    },
    /// A VM, every clone of it (a restart, exit or slice hook).
    Vm {
        /// Manifest index of the VM.
        vm: u32,
    },
    /// One direction of a NIC's queue (a packet hook).
    Nic {
        /// Manifest index of the NIC.
        nic: u32,
        /// Which direction's frames it judges.
        dir: NicDir,
    },
    /// A core: the slice hook of every VM that runs there and has no slice
    /// hook of its own.
    Core {
        /// The core.
        core: u32,
    },
}

impl HookAttach {
    /// Whether a hook of `kind` may be attached here: packet hooks to link
    /// or NIC queue directions, restart, exit and slice hooks to VMs.
    pub const fn fits(&self, kind: HookKind) -> bool {
        matches!(
            (self, kind),
            (
                HookAttach::Link { .. } | HookAttach::Nic { .. },
                HookKind::Packet
            ) | (
                HookAttach::Vm { .. },
                HookKind::Restart | HookKind::Exit | HookKind::Slice
            ) | (HookAttach::Core { .. }, HookKind::Slice)
        )
    }
}

/// One hook as the manifest describes it: a name, a kind, where it is
/// attached, its program and its maps in their wire forms (the working
/// type of both [`super::encode_with_hooks`] and [`Manifest::hooks`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookSpec<'a> {
    /// Unique hook name (the rules of VM names).
    pub name: &'a str,
    /// Its kind.
    pub kind: HookKind,
    /// Where it is attached.
    pub attach: HookAttach,
    /// Its instructions, [`INSN_SIZE`] bytes each ([`Insn::to_bytes`]).
    pub code: &'a [u8],
    /// Its map table, [`MAP_DEF_SIZE`] bytes each ([`MapDef::to_bytes`]).
    pub maps: &'a [u8],
    /// Run by the interpreter rather than compiled ([`FLAG_INTERPRET`]).
    pub interpret: bool,
}

impl<'a> HookSpec<'a> {
    /// Its instructions.
    pub fn insns(&self) -> impl Iterator<Item = Insn> + 'a {
        self.code.chunks_exact(INSN_SIZE).map(|c| {
            let mut b = [0; INSN_SIZE];
            b.copy_from_slice(c);
            Insn::from_bytes(b)
        })
    }

    /// Number of instructions (an `lddw` counts two).
    pub fn insn_count(&self) -> usize {
        self.code.len() / INSN_SIZE
    }

    /// Its map definitions (checked by [`Manifest::parse`]; a definition
    /// that does not decode is left out).
    pub fn map_defs(&self) -> impl Iterator<Item = MapDef> + 'a {
        self.maps.chunks_exact(MAP_DEF_SIZE).filter_map(|c| {
            let mut b = [0; MAP_DEF_SIZE];
            b.copy_from_slice(c);
            MapDef::from_bytes(b).ok()
        })
    }

    /// Number of maps.
    pub fn map_count(&self) -> usize {
        self.maps.len() / MAP_DEF_SIZE
    }

    /// The wire record of hook `hook` whose instructions start at record
    /// `insn_offset` of the code section and whose maps start at record
    /// `map_offset` of the map section.
    pub(super) fn encode(&self, insn_offset: u32, map_offset: u32) -> [u8; HOOK_RECORD_SIZE] {
        let mut r = [0u8; HOOK_RECORD_SIZE];
        let name = self.name.as_bytes();
        let n = name.len().min(NAME_MAX);
        r[K_NAME..K_NAME + n].copy_from_slice(&name[..n]);
        r[K_KIND] = self.kind as u8;
        r[K_FLAGS] = if self.interpret { FLAG_INTERPRET } else { 0 };
        match self.attach {
            HookAttach::Link { link, dir } => {
                r[K_ATTACH] = ATTACH_LINK;
                r[K_DIRECTION] = dir as u8;
                le::put_u32(&mut r, K_TARGET, link);
            }
            HookAttach::Vm { vm } => {
                r[K_ATTACH] = ATTACH_VM;
                le::put_u32(&mut r, K_TARGET, vm);
            }
            HookAttach::Nic { nic, dir } => {
                r[K_ATTACH] = ATTACH_NIC;
                r[K_DIRECTION] = dir as u8;
                le::put_u32(&mut r, K_TARGET, nic);
            }
            HookAttach::Core { core } => {
                r[K_ATTACH] = ATTACH_CORE;
                le::put_u32(&mut r, K_TARGET, core);
            }
        }
        le::put_u32(&mut r, K_INSN_OFFSET, insn_offset);
        le::put_u32(&mut r, K_INSN_COUNT, self.insn_count() as u32);
        le::put_u32(&mut r, K_MAP_OFFSET, map_offset);
        le::put_u32(&mut r, K_MAP_COUNT, self.map_count() as u32);
        r
    }
}

/// A hook's name held by value, so a [`ManifestError`] can name the hook
/// whose program the verifier refused.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HookName {
    bytes: [u8; NAME_MAX],
    len: u8,
}

impl HookName {
    fn new(name: &str) -> Self {
        let mut bytes = [0; NAME_MAX];
        let n = name.len().min(NAME_MAX);
        bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
        HookName {
            bytes,
            len: n as u8,
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        let b = self.bytes.get(..usize::from(self.len)).unwrap_or(&[]);
        core::str::from_utf8(b).unwrap_or("")
    }
}

impl fmt::Debug for HookName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for HookName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hook record as it is on the wire.
struct RawHook<'a> {
    name: &'a [u8],
    kind: u8,
    attach: u8,
    direction: u8,
    target: u32,
    insns: (u32, u32),
    maps: (u32, u32),
    flags: u8,
    reserved: bool,
}

impl<'a> RawHook<'a> {
    fn read(r: &'a [u8]) -> Self {
        RawHook {
            name: &r[K_NAME..K_KIND],
            kind: r[K_KIND],
            attach: r[K_ATTACH],
            direction: r[K_DIRECTION],
            target: le::u32_at(r, K_TARGET),
            insns: (le::u32_at(r, K_INSN_OFFSET), le::u32_at(r, K_INSN_COUNT)),
            maps: (le::u32_at(r, K_MAP_OFFSET), le::u32_at(r, K_MAP_COUNT)),
            flags: r[K_FLAGS],
            reserved: r[K_FLAGS] & !FLAG_INTERPRET != 0
                || r[K_RESERVED_2..].iter().any(|&b| b != 0),
        }
    }
}

/// The run `(offset, count)` of hook `hook` in a blob of `total` records of
/// `size` bytes, which must start at `expected` (where the previous hook's
/// run ended) and hold `min..=max` records.
fn run(
    hook: u32,
    field: Field,
    (offset, count): (u32, u32),
    expected: u32,
    (min, max): (u32, u32),
    blob: &[u8],
    size: usize,
) -> Result<&[u8], ManifestError> {
    let e = |problem| Err(err(Some(hook), field, problem));
    if !(min..=max).contains(&count) {
        return e(Problem::OutOfRange {
            found: count.into(),
            min: min.into(),
            max: max.into(),
        });
    }
    let total = (blob.len() / size) as u32;
    let end = u64::from(offset) + u64::from(count);
    if offset != expected || end > u64::from(total) {
        return e(Problem::HookSpan {
            start: offset,
            count,
            expected,
            total,
        });
    }
    Ok(&blob[offset as usize * size..end as usize * size])
}

impl<'a> HookSpec<'a> {
    /// Reads hook `hook` from record `r`, its runs from `code` and `maps`
    /// (starting where the previous hook's ended: `next`), and checks what
    /// the record and its runs alone decide: name, kind, attach kind and
    /// direction, reserved bytes, runs in place and in range, each map
    /// definition. The program is verified by [`check_program`].
    fn decode(
        hook: u32,
        r: &'a [u8],
        code: &'a [u8],
        maps: &'a [u8],
        next: (u32, u32),
    ) -> Result<Self, ManifestError> {
        let raw = RawHook::read(r);
        let e = |field, problem| Err(err(Some(hook), field, problem));
        let name = unpad(raw.name)
            .filter(|n| is_valid_name(n))
            .and_then(|n| core::str::from_utf8(n).ok());
        let Some(name) = name else {
            return e(Field::HookName, Problem::BadText);
        };
        let kind = match HookKind::from_u32(raw.kind.into()) {
            Some(k) => k,
            _ => return e(Field::HookKind, Problem::HookKind { kind: raw.kind }),
        };
        let (attach, max_direction) = match raw.attach {
            ATTACH_LINK => (
                LinkDir::from_u8(raw.direction).map(|dir| HookAttach::Link {
                    link: raw.target,
                    dir,
                }),
                1,
            ),
            ATTACH_VM => (
                (raw.direction == 0).then_some(HookAttach::Vm { vm: raw.target }),
                0,
            ),
            ATTACH_NIC => (
                NicDir::from_u8(raw.direction).map(|dir| HookAttach::Nic {
                    nic: raw.target,
                    dir,
                }),
                1,
            ),
            ATTACH_CORE => (
                (raw.direction == 0).then_some(HookAttach::Core { core: raw.target }),
                0,
            ),
            _ => return e(Field::HookAttach, Problem::AttachKind { kind: raw.attach }),
        };
        let Some(attach) = attach else {
            return e(
                Field::HookAttach,
                Problem::OutOfRange {
                    found: raw.direction.into(),
                    min: 0,
                    max: max_direction,
                },
            );
        };
        if !attach.fits(kind) {
            return e(
                Field::HookAttach,
                Problem::AttachMismatch {
                    kind: kind as u8,
                    attach: raw.attach,
                },
            );
        }
        if raw.reserved {
            return e(Field::HookReserved, Problem::NotZero);
        }
        let code = run(
            hook,
            Field::HookCode,
            raw.insns,
            next.0,
            (1, MAX_INSNS as u32),
            code,
            INSN_SIZE,
        )?;
        let maps = run(
            hook,
            Field::HookMaps,
            raw.maps,
            next.1,
            (0, MAX_MAPS as u32),
            maps,
            MAP_DEF_SIZE,
        )?;
        for (index, c) in maps.chunks_exact(MAP_DEF_SIZE).enumerate() {
            let mut b = [0; MAP_DEF_SIZE];
            b.copy_from_slice(c);
            if let Err(error) = MapDef::from_bytes(b) {
                return e(
                    Field::HookMaps,
                    Problem::BadMap {
                        index: index as u32,
                        error,
                    },
                );
            }
        }
        Ok(HookSpec {
            name,
            kind,
            attach,
            code,
            maps,
            interpret: raw.flags & FLAG_INTERPRET != 0,
        })
    }
}

/// Runs the verifier over `hook`'s program with its map table. The
/// instructions and maps are decoded into arrays on the stack (about
/// 50 KiB), so this is a function of its own whose frame lives only
/// while it runs.
#[inline(never)]
pub fn check_program(hook: &HookSpec<'_>) -> Result<(), VerifyError> {
    let mut insns = [Insn::new(0, 0, 0, 0, 0); MAX_INSNS];
    let mut defs = [MapDef {
        kind: crate::hook::MapKind::Array,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
    }; MAX_MAPS];
    let n = hook.insn_count().min(MAX_INSNS);
    for (slot, insn) in insns.iter_mut().zip(hook.insns()) {
        *slot = insn;
    }
    let mut m = 0;
    for (slot, def) in defs.iter_mut().zip(hook.map_defs()) {
        *slot = def;
        m += 1;
    }
    verify(&insns[..n], hook.kind, &defs[..m]).map(|_| ())
}

impl<'a> Manifest<'a> {
    /// Checks every hook: its record and runs, a unique name, its target (a
    /// link between two VM ports, at most one hook per direction; a VM, at
    /// most one hook of each kind), and its program (verified). The runs
    /// must cover both blobs exactly.
    pub(super) fn check_hooks(&self) -> Result<(), ManifestError> {
        let mut next = (0u32, 0u32);
        let mut seen: [Option<(&str, HookKind, HookAttach)>; MAX_HOOKS as usize] =
            [None; MAX_HOOKS as usize];
        for (i, r) in self.hooks.chunks_exact(HOOK_RECORD_SIZE).enumerate() {
            let i = i as u32;
            let e = |field, problem| Err(err(Some(i), field, problem));
            let hook = HookSpec::decode(i, r, self.hook_code, self.hook_maps, next)?;
            next = (
                next.0 + hook.insn_count() as u32,
                next.1 + hook.map_count() as u32,
            );
            match hook.attach {
                HookAttach::Link { link, .. } => {
                    let Some(spec) = self.links().nth(link as usize) else {
                        return e(
                            Field::HookTarget,
                            Problem::NoLink {
                                found: link,
                                links: self.link_count() as u32,
                            },
                        );
                    };
                    if spec.a.vm_port().is_none() || spec.b.vm_port().is_none() {
                        return e(Field::HookTarget, Problem::HookOnNic { link });
                    }
                }
                HookAttach::Nic { nic, .. } => {
                    let Some(spec) = self.nic(nic as usize) else {
                        return e(
                            Field::HookTarget,
                            Problem::NoNic {
                                found: nic,
                                nics: self.nic_count() as u32,
                            },
                        );
                    };
                    if spec.mode != super::NicMode::Shared {
                        return e(Field::HookTarget, Problem::HookOnOwnedNic { nic });
                    }
                }
                HookAttach::Core { core } => {
                    if core >= super::MAX_CORES {
                        return e(
                            Field::HookTarget,
                            Problem::OutOfRange {
                                found: core.into(),
                                min: 0,
                                max: (super::MAX_CORES - 1).into(),
                            },
                        );
                    }
                }
                HookAttach::Vm { vm } => {
                    if vm as usize >= self.len() {
                        return e(
                            Field::HookTarget,
                            Problem::NoVm {
                                found: vm,
                                vms: self.len() as u32,
                            },
                        );
                    }
                }
            }
            for (j, earlier) in seen.iter().take(i as usize).enumerate() {
                let Some((name, kind, attach)) = earlier else {
                    continue;
                };
                if *name == hook.name {
                    return e(Field::HookName, Problem::Duplicate { first: j as u32 });
                }
                if (*kind, *attach) == (hook.kind, hook.attach) {
                    return e(Field::HookTarget, Problem::HookAttached { hook: j as u32 });
                }
            }
            if let Some(slot) = seen.get_mut(i as usize) {
                *slot = Some((hook.name, hook.kind, hook.attach));
            }
            if let Err(error) = check_program(&hook) {
                return e(
                    Field::HookCode,
                    Problem::Verify {
                        name: HookName::new(hook.name),
                        error,
                    },
                );
            }
        }
        let totals = (
            (self.hook_code.len() / INSN_SIZE) as u32,
            (self.hook_maps.len() / MAP_DEF_SIZE) as u32,
        );
        for (field, used, total) in [
            (Field::HookCodeCount, next.0, totals.0),
            (Field::HookMapCount, next.1, totals.1),
        ] {
            if used != total {
                return Err(err(
                    None,
                    field,
                    Problem::Mismatch {
                        found: total.into(),
                        expected: used.into(),
                    },
                ));
            }
        }
        Ok(())
    }

    /// The hooks, in manifest order (all checked by [`Manifest::parse`]).
    pub fn hooks(&self) -> impl Iterator<Item = HookSpec<'a>> + 'a {
        let (code, maps) = (self.hook_code, self.hook_maps);
        let mut next = (0u32, 0u32);
        self.hooks
            .chunks_exact(HOOK_RECORD_SIZE)
            .enumerate()
            .map_while(move |(i, r)| {
                let hook = HookSpec::decode(i as u32, r, code, maps, next).ok()?;
                next.0 += hook.insn_count() as u32;
                next.1 += hook.map_count() as u32;
                Some(hook)
            })
    }

    /// Number of hooks.
    pub fn hook_count(&self) -> usize {
        self.hooks.len() / HOOK_RECORD_SIZE
    }
}
