//! `[[link]]` tables: each end (`"<vm>.<port>"`, or `"nic:<name>"` for a
//! NIC) resolved against the VM names (clone names included) and the NICs,
//! and checked the way `vmm_abi::manifest` will check the binary form, but
//! with errors that name the link by its ends and say what to change.

use super::VmConfig;
use super::nics::NicConfig;
use super::raw::RawLink;
use crate::error::{Error, Result};
use std::fmt;
use vmm_abi::manifest::{
    DEFAULT_LINK_HOLD, LinkEndRef, LinkSpec, MAX_CORES, MAX_LINK_HOLD, MAX_LINKS, MIN_LINK_HOLD,
    PortRef,
};
use vmm_abi::report::PortName;

/// The core that polls a link whose table does not say.
pub const DEFAULT_POLL_CORE: u32 = 0;
/// VM names listed in an "unknown VM" error before the list is cut short.
const NAMES_SHOWN: usize = 8;
/// How a link end names a NIC: `nic:<name>`.
pub const NIC_END_PREFIX: &str = "nic:";

/// A VM's net port at one end of a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortEnd {
    /// Manifest index of the VM (clones expanded).
    pub vm: u32,
    /// The VM's name.
    pub vm_name: String,
    /// Its net port.
    pub port: u8,
}

impl fmt::Display for PortEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.vm_name, self.port)
    }
}

/// One end of a link: a VM's net port or a NIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEnd {
    /// A VM's net port.
    Vm(PortEnd),
    /// A NIC, by its index among the NICs and its name.
    Nic {
        /// Index in the manifest's NICs.
        nic: u32,
        /// Its name.
        name: String,
    },
}

impl fmt::Display for LinkEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkEnd::Vm(p) => p.fmt(f),
            LinkEnd::Nic { name, .. } => write!(f, "{NIC_END_PREFIX}{name}"),
        }
    }
}

impl LinkEnd {
    /// The VM port, if this end is one.
    pub fn port(&self) -> Option<&PortEnd> {
        match self {
            LinkEnd::Vm(p) => Some(p),
            LinkEnd::Nic { .. } => None,
        }
    }

    /// The NIC's index, if this end is a NIC.
    pub fn nic(&self) -> Option<u32> {
        match self {
            LinkEnd::Vm(_) => None,
            LinkEnd::Nic { nic, .. } => Some(*nic),
        }
    }

    fn end_ref(&self) -> LinkEndRef {
        match self {
            LinkEnd::Vm(p) => LinkEndRef::Vm(PortRef {
                vm: p.vm,
                port: p.port,
            }),
            LinkEnd::Nic { nic, .. } => LinkEndRef::Nic(*nic),
        }
    }
}

/// One link of the manifest, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// One end (`a` in the manifest).
    pub a: LinkEnd,
    /// The other end (`b`).
    pub b: LinkEnd,
    /// The core that polls both ends' rings; it runs no VMs.
    pub core: u32,
    /// Instructions a receiver may go without posting buffers before it
    /// counts as stalled (0: never).
    pub hold: u64,
    /// The VM end bridges frames of machines behind it (a link to a NIC
    /// only): the NIC's switch learns their addresses.
    pub bridge: bool,
}

impl LinkConfig {
    /// The vmm-abi working type for this link.
    pub fn spec(&self) -> LinkSpec {
        LinkSpec {
            a: self.a.end_ref(),
            b: self.b.end_ref(),
            core: self.core,
            hold: self.hold,
            bridge: self.bridge,
        }
    }

    /// `a <-> b`, as errors and tables show a link.
    pub fn ends(&self) -> String {
        format!("{} <-> {}", self.a, self.b)
    }
}

/// `link N (a <-> b)` as the user wrote the ends.
fn label(index: usize, raw: &RawLink) -> String {
    format!("link {index} ({} <-> {})", raw.a, raw.b)
}

/// The VMs an "unknown VM" error lists.
fn some_names(vms: &[VmConfig]) -> String {
    let mut names: Vec<&str> = vms
        .iter()
        .take(NAMES_SHOWN)
        .map(|v| v.name.as_str())
        .collect();
    if vms.len() > NAMES_SHOWN {
        names.push("...");
    }
    names.join(", ")
}

/// Resolves one end's text against the VMs and NICs; the error says what
/// is wrong.
fn resolve_end(
    text: &str,
    vms: &[VmConfig],
    nics: &[NicConfig],
) -> std::result::Result<LinkEnd, String> {
    if let Some(name) = text.strip_prefix(NIC_END_PREFIX) {
        let Some(index) = nics.iter().position(|n| n.name == name) else {
            let known: Vec<&str> = nics.iter().map(|n| n.name.as_str()).collect();
            return Err(if known.is_empty() {
                format!("no NIC named `{name}` (the manifest has no [[nic]] table)")
            } else {
                format!("no NIC named `{name}` (NICs: {})", known.join(", "))
            });
        };
        return Ok(LinkEnd::Nic {
            nic: index as u32,
            name: name.to_string(),
        });
    }
    let Some(name) = PortName::parse(text) else {
        return Err(format!(
            "`{text}` is not `<vm>.<port>` (a VM name, a dot and a port number, such as `fw.0`) or `nic:<name>`"
        ));
    };
    let Some(index) = vms.iter().position(|v| v.name == name.vm) else {
        let clones: Vec<&VmConfig> = vms
            .iter()
            .filter(|v| v.entry == name.vm && v.clone.is_some())
            .collect();
        return Err(match (clones.first(), clones.last()) {
            (Some(first), Some(last)) => format!(
                "`{}` is an entry with count = {}: name one of its clones, `{}` .. `{}`",
                name.vm,
                clones.len(),
                first.name,
                last.name
            ),
            _ => format!("no VM named `{}` (VMs: {})", name.vm, some_names(vms)),
        });
    };
    let vm = &vms[index];
    if name.port >= vm.net_ports {
        return Err(match vm.net_ports {
            0 => format!(
                "VM `{}` has no net ports; give it `net = {}` or more",
                vm.name,
                u16::from(name.port) + 1
            ),
            n => format!(
                "VM `{}` has {n} net port{} (0..={}), so it has no port {}",
                vm.name,
                if n == 1 { "" } else { "s" },
                n - 1,
                name.port
            ),
        });
    }
    Ok(LinkEnd::Vm(PortEnd {
        vm: index as u32,
        vm_name: vm.name.clone(),
        port: name.port,
    }))
}

/// Resolves and checks every `[[link]]` table against the manifest's VMs
/// (clones expanded) and NICs, then checks that no VM is pinned only to
/// polling cores.
pub(super) fn resolve(
    origin: &str,
    raw: &[RawLink],
    vms: &[VmConfig],
    nics: &[NicConfig],
) -> Result<Vec<LinkConfig>> {
    if raw.len() > MAX_LINKS as usize {
        return Err(Error::new(format!(
            "{origin}: {} links, at most {MAX_LINKS} allowed",
            raw.len()
        )));
    }
    let mut links: Vec<LinkConfig> = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let fail = |field: &str, e: String| {
            Error::new(format!("{origin}: {}: field `{field}`: {e}", label(i, r)))
        };
        let a = resolve_end(&r.a, vms, nics).map_err(|e| fail("a", e))?;
        let b = resolve_end(&r.b, vms, nics).map_err(|e| fail("b", e))?;
        if a.nic().is_some() && b.nic().is_some() {
            return Err(fail(
                "b",
                format!(
                    "`{a}` and `{b}` are both NICs; a link joins a VM's net port to another VM's port or to a NIC"
                ),
            ));
        }
        if a == b {
            return Err(fail(
                "b",
                format!("port `{b}` is also end `a`: a link joins two different ports"),
            ));
        }
        for (field, end, other) in [("a", &a, &b), ("b", &b, &a)] {
            if end.nic().is_some() {
                continue;
            }
            if let Some((j, earlier)) = links
                .iter()
                .enumerate()
                .find(|(_, l)| l.a == *end || l.b == *end)
            {
                let same_nic =
                    other.nic().is_some() && (earlier.a == *other || earlier.b == *other);
                return Err(fail(
                    field,
                    if same_nic {
                        format!(
                            "port `{end}` is already attached to NIC `{}` by link {j} ({}); one link per port and NIC",
                            other.to_string().trim_start_matches(NIC_END_PREFIX),
                            earlier.ends()
                        )
                    } else {
                        format!(
                            "port `{end}` is already an end of link {j} ({}); a port joins one link",
                            earlier.ends()
                        )
                    },
                ));
            }
        }
        let nic = a.nic().or(b.nic()).and_then(|n| nics.get(n as usize));
        let core = r.core.unwrap_or(nic.map_or(DEFAULT_POLL_CORE, |n| n.core));
        if core >= MAX_CORES {
            return Err(fail(
                "core",
                format!(
                    "core {core} is outside 0..={} (a manifest can name {MAX_CORES} cores)",
                    MAX_CORES - 1
                ),
            ));
        }
        if let Some(nic) = nic
            && nic.core != core
        {
            return Err(fail(
                "core",
                format!(
                    "core {core}, but NIC `{}` is polled on core {}, and so is every link to it (leave `core` out to get it)",
                    nic.name, nic.core
                ),
            ));
        }
        let hold = r.hold.unwrap_or(DEFAULT_LINK_HOLD);
        if hold != 0 && !(MIN_LINK_HOLD..=MAX_LINK_HOLD).contains(&hold) {
            return Err(fail(
                "hold",
                format!(
                    "{hold} instructions is outside {MIN_LINK_HOLD}..={MAX_LINK_HOLD} (0 means a stalled receiver's frames are never dropped)"
                ),
            ));
        }
        let bridge = r.bridge.unwrap_or(false);
        if bridge && nic.is_none() {
            return Err(fail(
                "bridge",
                "only a link to a NIC bridges (its VM end forwards frames of machines behind it, and the NIC's switch learns their addresses)".to_string(),
            ));
        }
        links.push(LinkConfig {
            a,
            b,
            core,
            hold,
            bridge,
        });
    }
    check_pinning(origin, vms, &links, nics)?;
    Ok(links)
}

/// The cores that poll `links` or `nics` (bit N = core N).
pub fn poll_cores(links: &[LinkConfig], nics: &[NicConfig]) -> u64 {
    let links = links.iter().fold(0, |m, l| m | 1 << l.core);
    nics.iter().fold(links, |m, n| m | 1 << n.core)
}

/// What polls `core`, for messages: `link N (a <-> b)` or `NIC `x``.
fn poller(core: u32, links: &[LinkConfig], nics: &[NicConfig]) -> String {
    if let Some((i, link)) = links.iter().enumerate().find(|(_, l)| l.core == core) {
        format!("link {i} ({})", link.ends())
    } else if let Some(nic) = nics.iter().find(|n| n.core == core) {
        format!("NIC `{}`", nic.name)
    } else {
        "nothing".to_string()
    }
}

/// A VM pinned only to cores that poll links or NICs could never run.
fn check_pinning(
    origin: &str,
    vms: &[VmConfig],
    links: &[LinkConfig],
    nics: &[NicConfig],
) -> Result<()> {
    let polling = poll_cores(links, nics);
    for vm in vms {
        if vm.cores != 0 && vm.cores & !polling == 0 {
            let core = vm.cores.trailing_zeros();
            return Err(Error::new(format!(
                "{origin}: vm `{}`: field `cores`: every core it may run on polls links (core {core} polls {}), and polling cores run no VMs; pin it to another core as well or leave `cores` out",
                vm.entry,
                poller(core, links, nics)
            )));
        }
    }
    Ok(())
}

/// Checks the links' and NICs' cores against a machine of `cpus` CPUs:
/// each polling core exists, and at least one core is left to run VMs.
pub(super) fn check_cores(
    origin: &str,
    links: &[LinkConfig],
    nics: &[NicConfig],
    cpus: u32,
) -> Result<()> {
    for nic in nics {
        if nic.core >= cpus {
            return Err(Error::new(format!(
                "{origin}: nic `{}`: field `core`: core {} does not exist: this run has {cpus} CPU{}",
                nic.name,
                nic.core,
                if cpus == 1 { "" } else { "s" }
            )));
        }
    }
    for (i, link) in links.iter().enumerate() {
        if link.core >= cpus {
            return Err(Error::new(format!(
                "{origin}: link {i} ({}): field `core`: core {} does not exist: this run has {cpus} CPU{}",
                link.ends(),
                link.core,
                if cpus == 1 { "" } else { "s" }
            )));
        }
    }
    let polling = poll_cores(links, nics);
    let first = match (links.first(), nics.first()) {
        (Some(link), _) => Some(format!("link 0 ({})", link.ends())),
        (None, Some(nic)) => Some(format!("nic `{}`", nic.name)),
        (None, None) => None,
    };
    if let Some(first) = first
        && (0..cpus).all(|c| polling & (1 << c) != 0)
    {
        return Err(Error::new(format!(
            "{origin}: {first}: field `core`: with this run's {cpus} CPU{} every core polls {} ({}), so none is left for VMs; add CPUs (`[run] cpus`) or poll on fewer cores",
            if cpus == 1 { "" } else { "s" },
            if nics.is_empty() {
                "links"
            } else {
                "links or NICs"
            },
            super::mask_cores(polling)
                .iter()
                .map(|c| format!("core {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}
