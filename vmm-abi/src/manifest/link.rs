//! Link records (section kind 2): two ends — a VM's net port or a NIC —
//! the core that moves their frames and the hold time; and the checks of
//! every link against the VMs and NICs.

use super::error::{Field, ManifestError, Problem};
use super::{MAX_CORES, Manifest, err};
use crate::text::le;

/// Bytes in one link record.
pub const LINK_RECORD_SIZE: usize = 32;
/// Most links one manifest may name.
pub const MAX_LINKS: u32 = 256;
/// The hold time of a link whose manifest entry does not set one.
pub const DEFAULT_LINK_HOLD: u64 = 20_000_000;
/// Shortest hold time other than 0 (instructions): below a polling pass it
/// would drop frames of receivers that are merely busy.
pub const MIN_LINK_HOLD: u64 = 10_000;
/// Longest hold time (instructions).
pub const MAX_LINK_HOLD: u64 = 1 << 40;

pub(super) const L_A: usize = 0;
pub(super) const L_B: usize = 4;
pub(super) const L_A_PORT: usize = 8;
pub(super) const L_B_PORT: usize = 9;
pub(super) const L_A_KIND: usize = 10;
pub(super) const L_B_KIND: usize = 11;
pub(super) const L_CORE: usize = 12;
pub(super) const L_HOLD: usize = 16;
pub(super) const L_FLAGS: usize = 24;
pub(super) const L_RESERVED: usize = 28;
const _: () = assert!(L_HOLD + 8 == L_FLAGS && L_RESERVED + 4 == LINK_RECORD_SIZE);

/// Link flag: the VM end forwards frames of machines behind it (a
/// transparent network function on a link to a NIC): the NIC's switch
/// learns the source addresses it sends from and delivers frames for them
/// to it. Only on a link between a VM port and a NIC.
pub const LINK_FLAG_BRIDGE: u32 = 1 << 0;
/// Every link flag this ABI version knows.
const LINK_FLAGS: u32 = LINK_FLAG_BRIDGE;

/// End kind on the wire: a VM's net port.
const KIND_VM: u8 = 0;
/// End kind on the wire: a NIC.
const KIND_NIC: u8 = 1;

/// A VM's net port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRef {
    /// Manifest index of the VM.
    pub vm: u32,
    /// Its net port.
    pub port: u8,
}

/// One end of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkEndRef {
    /// A VM's net port.
    Vm(PortRef),
    /// The NIC with this index in the NIC section.
    Nic(u32),
}

impl LinkEndRef {
    /// The VM port, if this end is one.
    pub const fn vm_port(self) -> Option<PortRef> {
        match self {
            LinkEndRef::Vm(p) => Some(p),
            LinkEndRef::Nic(_) => None,
        }
    }

    /// The NIC's index, if this end is a NIC.
    pub const fn nic(self) -> Option<u32> {
        match self {
            LinkEndRef::Vm(_) => None,
            LinkEndRef::Nic(n) => Some(n),
        }
    }

    /// The wire fields: index, port, kind.
    const fn wire(self) -> (u32, u8, u8) {
        match self {
            LinkEndRef::Vm(p) => (p.vm, p.port, KIND_VM),
            LinkEndRef::Nic(n) => (n, 0, KIND_NIC),
        }
    }
}

/// Two ends wired together, and the core that moves their frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkSpec {
    /// One end.
    pub a: LinkEndRef,
    /// The other end.
    pub b: LinkEndRef,
    /// The core that polls both ends (it runs no VMs; for a link to a NIC,
    /// the NIC's core).
    pub core: u32,
    /// Instructions (TSC ticks) a receiver whose port is up may go without
    /// posting a receive buffer while frames wait for it; after that it
    /// is stalled and frames for it are dropped and counted until it posts
    /// one again. 0: never (frames wait in the sender's ring for good).
    pub hold: u64,
    /// The VM end bridges frames of machines behind it
    /// ([`LINK_FLAG_BRIDGE`]; only on a link to a NIC).
    pub bridge: bool,
}

/// A link record as it is on the wire, before its ends' kinds are checked.
struct RawLink {
    ends: [(u32, u8, u8); 2],
    core: u32,
    hold: u64,
    flags: u32,
    reserved: u32,
}

impl RawLink {
    fn read(r: &[u8]) -> Self {
        RawLink {
            ends: [
                (le::u32_at(r, L_A), r[L_A_PORT], r[L_A_KIND]),
                (le::u32_at(r, L_B), r[L_B_PORT], r[L_B_KIND]),
            ],
            core: le::u32_at(r, L_CORE),
            hold: le::u64_at(r, L_HOLD),
            flags: le::u32_at(r, L_FLAGS),
            reserved: le::u32_at(r, L_RESERVED),
        }
    }
}

impl LinkSpec {
    /// The wire record for this link (checked against the VMs and NICs by
    /// [`Manifest::parse`]). A NIC end's port byte is written as 0.
    pub fn encode(&self) -> [u8; LINK_RECORD_SIZE] {
        let mut r = [0u8; LINK_RECORD_SIZE];
        let (a, a_port, a_kind) = self.a.wire();
        let (b, b_port, b_kind) = self.b.wire();
        le::put_u32(&mut r, L_A, a);
        le::put_u32(&mut r, L_B, b);
        r[L_A_PORT] = a_port;
        r[L_B_PORT] = b_port;
        r[L_A_KIND] = a_kind;
        r[L_B_KIND] = b_kind;
        le::put_u32(&mut r, L_CORE, self.core);
        le::put_u64(&mut r, L_HOLD, self.hold);
        let flags = if self.bridge { LINK_FLAG_BRIDGE } else { 0 };
        le::put_u32(&mut r, L_FLAGS, flags);
        r
    }

    /// Reads link `link` and checks what the record alone decides: each
    /// end's kind, that a NIC end's port byte is 0, that not both ends are
    /// NICs.
    pub(super) fn decode(link: u32, r: &[u8]) -> Result<Self, ManifestError> {
        let raw = RawLink::read(r);
        let mut ends = [LinkEndRef::Nic(0); 2];
        for (end, ((index, port, kind), field)) in ends
            .iter_mut()
            .zip(raw.ends.into_iter().zip([Field::LinkA, Field::LinkB]))
        {
            *end = match kind {
                KIND_VM => LinkEndRef::Vm(PortRef { vm: index, port }),
                KIND_NIC if port == 0 => LinkEndRef::Nic(index),
                KIND_NIC => return Err(err(Some(link), field, Problem::NicPort { port })),
                _ => return Err(err(Some(link), field, Problem::EndKind { kind })),
            };
        }
        let [a, b] = ends;
        if a.nic().is_some() && b.nic().is_some() {
            return Err(err(Some(link), Field::LinkB, Problem::NicToNic));
        }
        if raw.flags & !LINK_FLAGS != 0 {
            return Err(err(
                Some(link),
                Field::LinkFlags,
                Problem::UnknownFlags {
                    flags: raw.flags & !LINK_FLAGS,
                },
            ));
        }
        let bridge = raw.flags & LINK_FLAG_BRIDGE != 0;
        if bridge && a.nic().is_none() && b.nic().is_none() {
            return Err(err(Some(link), Field::LinkFlags, Problem::BridgeWithoutNic));
        }
        if raw.reserved != 0 {
            return Err(err(Some(link), Field::LinkReserved, Problem::NotZero));
        }
        Ok(LinkSpec {
            a,
            b,
            core: raw.core,
            hold: raw.hold,
            bridge,
        })
    }
}

impl<'a> Manifest<'a> {
    /// Checks every link against the VMs and NICs; returns the cores that
    /// poll links.
    pub(super) fn check_links(&self) -> Result<u64, ManifestError> {
        let mut poll_cores = 0u64;
        for (i, r) in self.links.chunks_exact(LINK_RECORD_SIZE).enumerate() {
            let i = i as u32;
            let e = |field, problem| Err(err(Some(i), field, problem));
            let link = LinkSpec::decode(i, r)?;
            for (field, end) in [(Field::LinkA, link.a), (Field::LinkB, link.b)] {
                self.check_end(i, field, end)?;
            }
            if link.a == link.b {
                return e(Field::LinkB, Problem::PortTaken { link: i });
            }
            for (j, earlier) in self.links().take(i as usize).enumerate() {
                let j = j as u32;
                for (field, end, other) in [
                    (Field::LinkA, link.a, link.b),
                    (Field::LinkB, link.b, link.a),
                ] {
                    if end.nic().is_some() {
                        continue;
                    }
                    let same_nic = |o: LinkEndRef| o.nic().is_some() && o == other;
                    if earlier.a == end && same_nic(earlier.b)
                        || earlier.b == end && same_nic(earlier.a)
                    {
                        return e(field, Problem::NicAttached { link: j });
                    }
                    if earlier.a == end || earlier.b == end {
                        return e(field, Problem::PortTaken { link: j });
                    }
                }
            }
            if link.core >= MAX_CORES {
                return e(
                    Field::LinkCore,
                    Problem::OutOfRange {
                        found: link.core.into(),
                        min: 0,
                        max: (MAX_CORES - 1).into(),
                    },
                );
            }
            if let Some(n) = link.a.nic().or(link.b.nic())
                && let Some(nic) = self.nic(n as usize)
                && nic.core != link.core
            {
                return e(
                    Field::LinkCore,
                    Problem::NicCore {
                        nic: n,
                        core: nic.core,
                    },
                );
            }
            if link.hold != 0 && !(MIN_LINK_HOLD..=MAX_LINK_HOLD).contains(&link.hold) {
                return e(
                    Field::LinkHold,
                    Problem::OutOfRange {
                        found: link.hold,
                        min: MIN_LINK_HOLD,
                        max: MAX_LINK_HOLD,
                    },
                );
            }
            poll_cores |= 1 << link.core;
        }
        Ok(poll_cores)
    }

    /// Checks that one end of link `link` names a VM port or a NIC that
    /// exists.
    fn check_end(&self, link: u32, field: Field, end: LinkEndRef) -> Result<(), ManifestError> {
        match end {
            LinkEndRef::Vm(p) => {
                let Some(vm) = self.get(p.vm as usize) else {
                    return Err(err(
                        Some(link),
                        field,
                        Problem::OutOfRange {
                            found: p.vm.into(),
                            min: 0,
                            max: self.len() as u64 - 1,
                        },
                    ));
                };
                if p.port >= vm.net_ports {
                    return Err(err(
                        Some(link),
                        field,
                        Problem::NoPort {
                            ports: vm.net_ports,
                        },
                    ));
                }
            }
            LinkEndRef::Nic(n) => {
                if n as usize >= self.nic_count() {
                    return Err(err(
                        Some(link),
                        field,
                        Problem::NoNic {
                            found: n,
                            nics: self.nic_count() as u32,
                        },
                    ));
                }
            }
        }
        Ok(())
    }
}
