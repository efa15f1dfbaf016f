//! `[[link]]` tables: each end (`"<vm>.<port>"`) resolved against the VM
//! names (clone names included) and checked the way `vmm_abi::manifest`
//! will check the binary form, but with errors that name the link by its
//! ends and say what to change.

use super::VmConfig;
use super::raw::RawLink;
use crate::error::{Error, Result};
use std::fmt;
use vmm_abi::manifest::{
    DEFAULT_LINK_HOLD, LinkSpec, MAX_CORES, MAX_LINK_HOLD, MAX_LINKS, MIN_LINK_HOLD, PortRef,
};
use vmm_abi::report::PortName;

/// The core that polls a link whose table does not say.
pub const DEFAULT_POLL_CORE: u32 = 0;
/// VM names listed in an "unknown VM" error before the list is cut short.
const NAMES_SHOWN: usize = 8;

/// One end of a link: a VM's net port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkEnd {
    /// Manifest index of the VM (clones expanded).
    pub vm: u32,
    /// The VM's name.
    pub vm_name: String,
    /// Its net port.
    pub port: u8,
}

impl fmt::Display for LinkEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.vm_name, self.port)
    }
}

impl LinkEnd {
    fn port_ref(&self) -> PortRef {
        PortRef {
            vm: self.vm,
            port: self.port,
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
}

impl LinkConfig {
    /// The vmm-abi working type for this link.
    pub fn spec(&self) -> LinkSpec {
        LinkSpec {
            a: self.a.port_ref(),
            b: self.b.port_ref(),
            core: self.core,
            hold: self.hold,
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

/// Resolves one end's text against the VMs; the error says what is wrong.
fn resolve_end(text: &str, vms: &[VmConfig]) -> std::result::Result<LinkEnd, String> {
    let Some(name) = PortName::parse(text) else {
        return Err(format!(
            "`{text}` is not `<vm>.<port>` (a VM name, a dot and a port number, such as `fw.0`)"
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
    Ok(LinkEnd {
        vm: index as u32,
        vm_name: vm.name.clone(),
        port: name.port,
    })
}

/// Resolves and checks every `[[link]]` table against the manifest's VMs
/// (clones expanded), then checks that no VM is pinned only to polling
/// cores.
pub(super) fn resolve(origin: &str, raw: &[RawLink], vms: &[VmConfig]) -> Result<Vec<LinkConfig>> {
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
        let a = resolve_end(&r.a, vms).map_err(|e| fail("a", e))?;
        let b = resolve_end(&r.b, vms).map_err(|e| fail("b", e))?;
        if a == b {
            return Err(fail(
                "b",
                format!("port `{b}` is also end `a`: a link joins two different ports"),
            ));
        }
        for (field, end) in [("a", &a), ("b", &b)] {
            if let Some((j, earlier)) = links
                .iter()
                .enumerate()
                .find(|(_, l)| l.a == *end || l.b == *end)
            {
                return Err(fail(
                    field,
                    format!(
                        "port `{end}` is already an end of link {j} ({}); a port joins one link",
                        earlier.ends()
                    ),
                ));
            }
        }
        let core = r.core.unwrap_or(DEFAULT_POLL_CORE);
        if core >= MAX_CORES {
            return Err(fail(
                "core",
                format!(
                    "core {core} is outside 0..={} (a manifest can name {MAX_CORES} cores)",
                    MAX_CORES - 1
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
        links.push(LinkConfig { a, b, core, hold });
    }
    check_pinning(origin, vms, &links)?;
    Ok(links)
}

/// The cores that poll `links` (bit N = core N).
pub fn poll_cores(links: &[LinkConfig]) -> u64 {
    links.iter().fold(0, |m, l| m | 1 << l.core)
}

/// A VM pinned only to cores that poll links could never run.
fn check_pinning(origin: &str, vms: &[VmConfig], links: &[LinkConfig]) -> Result<()> {
    let polling = poll_cores(links);
    for vm in vms {
        if vm.cores != 0 && vm.cores & !polling == 0 {
            let core = vm.cores.trailing_zeros();
            let (i, link) = links
                .iter()
                .enumerate()
                .find(|(_, l)| l.core == core)
                .ok_or_else(|| Error::new("internal: a polling core without a link"))?;
            return Err(Error::new(format!(
                "{origin}: vm `{}`: field `cores`: every core it may run on polls links (core {core} polls link {i} ({})), and polling cores run no VMs; pin it to another core as well or leave `cores` out",
                vm.entry,
                link.ends()
            )));
        }
    }
    Ok(())
}

/// Checks the links' cores against a machine of `cpus` CPUs: each polling
/// core exists, and at least one core is left to run VMs.
pub(super) fn check_cores(origin: &str, links: &[LinkConfig], cpus: u32) -> Result<()> {
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
    let polling = poll_cores(links);
    if let Some(link) = links.first()
        && (0..cpus).all(|c| polling & (1 << c) != 0)
    {
        return Err(Error::new(format!(
            "{origin}: link 0 ({}): field `core`: with this run's {cpus} CPU{} every core polls links ({}), so none is left for VMs; add CPUs (`[run] cpus`) or poll on fewer cores",
            link.ends(),
            if cpus == 1 { "" } else { "s" },
            super::mask_cores(polling)
                .iter()
                .map(|c| format!("core {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}
