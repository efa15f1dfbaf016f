//! `[[hook]]` tables: a name, a kind, where it is attached (a packet
//! hook on `link:<vm>.<port>-><vm>.<port>`, the direction from the first
//! port to the second, or on `nic:<name>:rx|tx`, a shared NIC's frames
//! from or to the wire; a restart, exit or slice hook on `vm:<name>`), and its
//! program: C compiled with clang (`source`) or an object (`object`), with
//! `program` choosing among several, and `engine` (`jit`, the default, or
//! `interpreter`). The program
//! is loaded ([`crate::hook_object`]) and verified here, so a hook the
//! hypervisor would refuse fails before anything is built or booted, the
//! error naming the hook, the instruction and the rule.

use super::VmConfig;
use super::links::LinkConfig;
use super::nics::NicConfig;
use super::raw::{RawEngine, RawHook};
use crate::error::{Error, Result};
use crate::hook_object::{self, HookProgram};
use std::path::{Path, PathBuf};
use vmm_abi::corral::bootinfo::NAME_MAX;
use vmm_abi::hook::{HookKind, MAX_INSNS, MapDef, verify};
use vmm_abi::manifest::{HookAttach, HookSpec, LinkDir, MAX_HOOKS, NicDir, NicMode};

/// How an attach target names one direction of a link.
pub const LINK_ATTACH_PREFIX: &str = "link:";
/// How an attach target names a VM.
pub const VM_ATTACH_PREFIX: &str = "vm:";
/// How an attach target names one direction of a NIC's queue.
pub const NIC_ATTACH_PREFIX: &str = "nic:";

/// The NIC queue direction `attach` names: `nic:NAME:rx` or `nic:NAME:tx`.
pub fn resolve_nic(attach: &str, nics: &[NicConfig]) -> std::result::Result<HookAttach, String> {
    let rest = attach.strip_prefix(NIC_ATTACH_PREFIX).unwrap_or(attach);
    let Some((name, dir)) = rest.rsplit_once(':') else {
        return Err(format!(
            "`{attach}` does not say a direction: write `nic:<name>:rx` (frames from the wire) or `nic:<name>:tx` (frames to it)"
        ));
    };
    let dir = match dir {
        "rx" => NicDir::Rx,
        "tx" => NicDir::Tx,
        other => {
            return Err(format!(
                "`{other}` is not a NIC queue direction: `rx` (frames from the wire) or `tx` (frames to it)"
            ));
        }
    };
    let Some(i) = nics.iter().position(|n| n.name == name) else {
        return Err(format!(
            "no NIC `{name}` (NICs: {})",
            if nics.is_empty() {
                "none".to_string()
            } else {
                nics.iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
    };
    if nics[i].mode == NicMode::Owned {
        return Err(format!(
            "NIC `{name}` is in owned mode: its frames go straight between the NIC and the guest's memory, so there is no copy for a hook to judge; use `mode = \"shared\"`"
        ));
    }
    Ok(HookAttach::Nic { nic: i as u32, dir })
}

/// One hook of the manifest, checked, with its program loaded and verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookConfig {
    /// Unique name.
    pub name: String,
    /// Its kind (packet, restart or exit).
    pub kind: HookKind,
    /// The attach target as written (`link:gen.0->fw.0`, `vm:web`).
    pub attach: String,
    /// The attach target resolved: a link direction or a VM.
    pub target: HookAttach,
    /// The file its program came from (a C source or an object).
    pub file: PathBuf,
    /// The program and its maps.
    pub program: HookProgram,
    /// Whether the interpreter runs it (`engine = "interpreter"`) rather
    /// than the JIT (the default).
    pub interpret: bool,
}

/// A hook's program and maps in their wire forms, for [`HookSpec`].
pub struct HookBytes {
    code: Vec<u8>,
    maps: Vec<u8>,
}

impl HookConfig {
    /// Its program's and maps' wire bytes.
    pub fn bytes(&self) -> HookBytes {
        HookBytes {
            code: self
                .program
                .insns
                .iter()
                .flat_map(|i| i.to_bytes())
                .collect(),
            maps: self
                .program
                .maps
                .iter()
                .flat_map(|(_, d)| d.to_bytes())
                .collect(),
        }
    }

    /// The vmm-abi working type, over `bytes` (from [`HookConfig::bytes`]).
    pub fn spec<'a>(&'a self, bytes: &'a HookBytes) -> HookSpec<'a> {
        HookSpec {
            name: &self.name,
            kind: self.kind,
            attach: self.target,
            code: &bytes.code,
            maps: &bytes.maps,
            interpret: self.interpret,
        }
    }

    /// Its maps' names, in map-table order.
    pub fn map_names(&self) -> impl Iterator<Item = &str> {
        self.program.maps.iter().map(|(n, _)| n.as_str())
    }
}

/// What a slice hook's `attach` starts with to serve every VM on a core:
/// `core:N`.
pub const CORE_ATTACH_PREFIX: &str = "core:";

/// The core `attach` names (`core:N`): a slice hook for every VM that runs
/// there without a slice hook of its own.
fn resolve_core(attach: &str) -> std::result::Result<HookAttach, String> {
    let n = attach.strip_prefix(CORE_ATTACH_PREFIX).unwrap_or(attach);
    let max = vmm_abi::manifest::MAX_CORES - 1;
    match n.parse::<u32>() {
        Ok(core) if core <= max && !n.starts_with('+') && (n == "0" || !n.starts_with('0')) => {
            Ok(HookAttach::Core { core })
        }
        _ => Err(format!(
            "`{attach}`: a core is `core:N` with N a core number 0..={max}"
        )),
    }
}

/// The VM `attach` names (`vm:NAME`), for a hook of `kind`.
fn resolve_vm(
    attach: &str,
    kind: HookKind,
    vms: &[VmConfig],
) -> std::result::Result<HookAttach, String> {
    let Some(name) = attach.strip_prefix(VM_ATTACH_PREFIX) else {
        return Err(format!(
            "{} is attached to a VM: write `vm:<name>`, not `{attach}`",
            hook_object::a_hook(kind)
        ));
    };
    if let Some(i) = vms.iter().position(|v| v.name == name) {
        return Ok(HookAttach::Vm { vm: i as u32 });
    }
    let clones: Vec<&str> = vms
        .iter()
        .filter(|v| {
            v.name
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|v| v.name.as_str())
        .collect();
    Err(match clones.as_slice() {
        [] => format!(
            "no VM `{name}` (VMs: {})",
            vms.iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        [first, .., last] => format!(
            "`{name}` has clones ({first} .. {last}); a hook attaches to one VM: name a clone, such as `vm:{first}`"
        ),
        [only] => format!("`{name}` has one clone: name it, `vm:{only}`"),
    })
}

/// The link and direction `attach` names: `link:X->Y` where X and Y are
/// the two ports of one link.
pub fn resolve_attach(
    attach: &str,
    links: &[LinkConfig],
) -> std::result::Result<(u32, LinkDir), String> {
    let Some(rest) = attach.strip_prefix(LINK_ATTACH_PREFIX) else {
        let kind = attach.split(':').next().unwrap_or(attach);
        return Err(match kind {
            "nic" => "NIC queues are named `nic:<name>:rx` or `nic:<name>:tx`".to_string(),
            "vm" | "core" => format!(
                "`{kind}:` targets are for restart, exit and slice hooks; a packet hook goes on `link:<vm>.<port>-><vm>.<port>`"
            ),
            _ => format!("`{attach}` is not `link:<vm>.<port>-><vm>.<port>`"),
        });
    };
    let Some((from, to)) = rest.split_once("->") else {
        return Err(format!(
            "`{attach}` does not say a direction: write `link:<from port>-><to port>`, such as `link:gen.0->fw.0`"
        ));
    };
    if ["a", "b"].contains(&from) || ["a", "b"].contains(&to) {
        return Err(format!(
            "`{attach}` names the direction by end name; name the ports instead, such as `link:gen.0->fw.0`"
        ));
    }
    for (i, l) in links.iter().enumerate() {
        let (a, b) = (l.a.to_string(), l.b.to_string());
        let dir = if (from, to) == (a.as_str(), b.as_str()) {
            LinkDir::AToB
        } else if (from, to) == (b.as_str(), a.as_str()) {
            LinkDir::BToA
        } else {
            continue;
        };
        if l.a.nic().is_some() || l.b.nic().is_some() {
            return Err(format!(
                "link {i} ({}) has a NIC end; attach the hook to the NIC's queue instead (`nic:<name>:rx` or `nic:<name>:tx`)",
                l.ends()
            ));
        }
        return Ok((i as u32, dir));
    }
    let known: Vec<String> = links.iter().map(LinkConfig::ends).collect();
    Err(if known.is_empty() {
        format!("no link joins `{from}` and `{to}` (the manifest has no [[link]] table)")
    } else {
        format!(
            "no link joins `{from}` and `{to}` (links: {})",
            known.join(", ")
        )
    })
}

/// Resolves, loads and verifies every `[[hook]]` table; paths are relative
/// to `base` (the manifest's directory).
pub(super) fn resolve(
    origin: &str,
    base: &Path,
    raw: &[RawHook],
    (vms, links, nics): (&[VmConfig], &[LinkConfig], &[NicConfig]),
    progress: &dyn Fn(&str),
) -> Result<Vec<HookConfig>> {
    if raw.len() > MAX_HOOKS as usize {
        return Err(Error::new(format!(
            "{origin}: {} hooks, at most {MAX_HOOKS} allowed",
            raw.len()
        )));
    }
    let mut hooks: Vec<HookConfig> = Vec::with_capacity(raw.len());
    for r in raw {
        let fail = |field: &str, e: String| {
            Error::new(format!("{origin}: hook `{}`: field `{field}`: {e}", r.name))
        };
        let name_ok = !r.name.is_empty()
            && r.name.len() <= NAME_MAX
            && r.name.as_bytes()[0].is_ascii_alphanumeric()
            && r.name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if !name_ok {
            return Err(fail(
                "name",
                format!(
                    "must be 1 to {NAME_MAX} of A-Z a-z 0-9 _ . -, starting with a letter or digit"
                ),
            ));
        }
        if hooks.iter().any(|h| h.name == r.name) {
            return Err(fail("name", "another hook has this name".to_string()));
        }
        let kind = match r.kind.as_str() {
            "packet" => HookKind::Packet,
            "restart" => HookKind::Restart,
            "exit" => HookKind::Exit,
            "slice" => HookKind::Slice,
            other => {
                return Err(fail(
                    "kind",
                    format!("`{other}` is not a hook kind (packet, restart, exit, slice)"),
                ));
            }
        };
        let target = match kind {
            HookKind::Packet if r.attach.starts_with(NIC_ATTACH_PREFIX) => {
                resolve_nic(&r.attach, nics)
            }
            HookKind::Packet => {
                resolve_attach(&r.attach, links).map(|(link, dir)| HookAttach::Link { link, dir })
            }
            HookKind::Slice if r.attach.starts_with(CORE_ATTACH_PREFIX) => resolve_core(&r.attach),
            _ => resolve_vm(&r.attach, kind, vms),
        }
        .map_err(|e| fail("attach", e))?;
        if let Some(h) = hooks.iter().find(|h| h.target == target && h.kind == kind) {
            return Err(fail(
                "attach",
                format!(
                    "hook `{}` is already attached to `{}`; one {kind} hook per {}",
                    h.name,
                    h.attach,
                    match target {
                        HookAttach::Link { .. } => "link direction",
                        HookAttach::Nic { .. } => "NIC queue direction",
                        HookAttach::Vm { .. } => "VM",
                        HookAttach::Core { .. } => "core",
                    }
                ),
            ));
        }
        let (file, is_source) = match (&r.source, &r.object) {
            (Some(s), None) => (base.join(s), true),
            (None, Some(o)) => (base.join(o), false),
            _ => {
                return Err(fail(
                    "source",
                    "give exactly one of `source` (a C file clang compiles) and `object` (a BPF ELF object)"
                        .to_string(),
                ));
            }
        };
        let program = hook_object::from_file(
            &r.name,
            &file,
            is_source,
            r.program.as_deref(),
            kind,
            progress,
        )
        .map_err(|e| Error::new(format!("{origin}: hook `{}`: {e}", r.name)))?;
        if program.insns.len() > MAX_INSNS {
            return Err(Error::new(format!(
                "{origin}: hook `{}`: {} instructions, at most {MAX_INSNS} (in {}, program `{}`)",
                r.name,
                program.insns.len(),
                file.display(),
                program.program
            )));
        }
        let defs: Vec<MapDef> = program.maps.iter().map(|(_, d)| *d).collect();
        verify(&program.insns, kind, &defs).map_err(|e| {
            Error::new(format!(
                "{origin}: hook `{}`: {e} (in {}, program `{}`)",
                r.name,
                file.display(),
                program.program
            ))
        })?;
        hooks.push(HookConfig {
            name: r.name.clone(),
            kind,
            attach: r.attach.clone(),
            target,
            file,
            program,
            interpret: r.engine == Some(RawEngine::Interpreter),
        });
    }
    Ok(hooks)
}
