//! The run report: the JSON written by `--report` and the summary tables
//! (VMs, links) printed at the end of a run, both built from the manifest
//! and the records the hypervisor printed.

use crate::error::{Error, Result};
use crate::memory::{self, Totals};
use crate::outcome::{
    BlockOutcome, HookOutcome, LinkOutcome, MemoryUse, NicOutcome, NicWindow, Paging, RunOutcome,
    VmOutcome, Window,
};
use crate::table::{self, Align};
use crate::toml_manifest::{BlockConfig, HookConfig};
use crate::toml_manifest::{LinkConfig, Manifest, VmConfig};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::path::Path;
use vmm_abi::hook::HookKind;
use vmm_abi::report::{BlockFlow, HookFlow, LinkFlow, NicFlow, NicPortFlow, VmHookFlow};

/// One VM in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VmReport {
    /// VM name.
    pub name: String,
    /// Image name.
    pub image: String,
    /// Cores the manifest lets it run on (empty: not pinned).
    pub cores: Vec<u32>,
    /// Core the hypervisor put it on (`None` if it never started).
    pub core: Option<u32>,
    /// Local APIC ID of that core.
    pub apic_id: Option<u32>,
    /// `exited`, `killed` or `running`.
    pub status: String,
    /// Exit code, when the guest exited by itself.
    pub exit_code: Option<i64>,
    /// Why it ended (empty if it did not).
    pub reason: String,
    /// Instructions from VM creation to the guest's `main` (last run).
    pub boot_instructions: u64,
    /// Times it was restarted.
    pub restarts: u32,
    /// Why each restarted run ended, in order.
    pub restart_reasons: Vec<String>,
    /// Times it was scheduled onto its core after another VM ran.
    pub slices: u64,
    /// Memory accounting (`None` until it ended).
    pub memory: Option<MemoryUse>,
    /// Non-zero VM-exit counts by kind.
    pub exits: BTreeMap<String, u64>,
    /// Metrics the guest reported.
    pub metrics: BTreeMap<String, u64>,
    /// Console bytes printed and dropped.
    pub console: crate::outcome::ConsoleUse,
    /// What the manifest expected.
    pub expect: String,
    /// Whether the VM met the expectation.
    pub ok: bool,
}

impl VmReport {
    /// The report entry for `vm` given what the records said about it.
    pub fn new(vm: &VmConfig, outcome: &VmOutcome) -> Self {
        VmReport {
            name: vm.name.clone(),
            image: vm.image.clone(),
            cores: vm.core_list(),
            core: outcome.placement.map(|(core, _)| core),
            apic_id: outcome.placement.map(|(_, apic)| apic),
            status: outcome.status.name().to_string(),
            exit_code: outcome.exit_code(),
            reason: outcome.reason.clone(),
            boot_instructions: outcome.boot,
            restarts: outcome.restarts,
            restart_reasons: outcome.restart_reasons.clone(),
            slices: outcome.slices,
            memory: outcome.ended().then_some(outcome.memory),
            exits: outcome.exit_map(),
            metrics: outcome.metrics.clone(),
            console: outcome.console,
            expect: vm.expect.to_string(),
            ok: vm
                .expect
                .is_met(outcome.status, outcome.code, &outcome.reason),
        }
    }

    /// All exits of every kind.
    pub fn exits_total(&self) -> u64 {
        self.exits.values().sum()
    }
}

/// Writes one direction of a link (`None`: no record arrived) as a JSON
/// object whose keys are the counters' names in its record
/// ([`LinkFlow::FIELDS`]), in that order.
fn flow_json<S: Serializer>(flow: &Option<LinkFlow>, s: S) -> std::result::Result<S::Ok, S::Error> {
    let Some(flow) = flow else {
        return s.serialize_none();
    };
    let mut map = s.serialize_map(Some(LinkFlow::FIELDS.len()))?;
    for (name, n) in LinkFlow::FIELDS.iter().zip(flow.values()) {
        map.serialize_entry(name, &n)?;
    }
    map.end()
}

/// One NIC in the report, from its `nic` and `nic-port` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NicReport {
    /// Index in the manifest.
    pub nic: u32,
    /// Its name.
    pub name: String,
    /// The core that polled it.
    pub core: u32,
    /// The wire side's counters (`None` without its `nic` record).
    pub wire: Option<BTreeMap<&'static str, u64>>,
    /// Each attached guest port and its counters.
    pub ports: Vec<NicPortReport>,
}

/// One guest port attached to a NIC, in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NicPortReport {
    /// The port (`vm.port`).
    pub port: String,
    /// Its counters, by name.
    #[serde(flatten)]
    pub flow: BTreeMap<&'static str, u64>,
}

impl NicReport {
    /// The report entry for NIC `index` from what its records said.
    pub fn new(index: usize, o: &NicOutcome) -> Self {
        NicReport {
            nic: index as u32,
            name: o.name.clone(),
            core: o.core,
            wire: o
                .wire
                .map(|w| NicFlow::FIELDS.into_iter().zip(w.values()).collect()),
            ports: o
                .ports
                .iter()
                .map(|(port, f)| NicPortReport {
                    port: port.clone(),
                    flow: NicPortFlow::FIELDS.into_iter().zip(f.values()).collect(),
                })
                .collect(),
        }
    }
}

/// One entry of a hook's map in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookEntryReport {
    /// The core whose copy this is (per-core arrays; 0 otherwise).
    pub core: u32,
    /// The key, as hex bytes (an array's index as a little-endian u32).
    pub key: String,
    /// The value, as hex bytes.
    pub value: String,
    /// The value read as a little-endian number, when it is 1 to 8 bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<u64>,
}

/// One map of a hook in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookMapReport {
    /// `array`, `hash` or `percpu_array`.
    pub kind: String,
    /// Entries present (an array's length).
    pub entries: u64,
    /// Entries whose value is not all zero.
    pub nonzero: u64,
    /// The first nonzero entries (all of them unless `nonzero` is larger).
    pub values: Vec<HookEntryReport>,
}

/// The `file` of a blank disk (`size`, no file) in the report.
pub const BLANK_DISK: &str = "(blank)";

/// One block device in the report: what the manifest says, what its
/// `block` record said, and what went back to its file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockReport {
    /// Its name.
    pub name: String,
    /// The VM it was attached to.
    pub vm: String,
    /// Its device name in that VM's Solo5 manifest.
    pub device: String,
    /// Its host file.
    pub file: String,
    /// Bytes of its image.
    pub capacity: u64,
    /// Bytes per block.
    pub block_size: u32,
    /// Written blocks go back to the file.
    pub persist: bool,
    /// What its VM did, by counter (`None` without its `block` record).
    pub flow: Option<BTreeMap<&'static str, u64>>,
    /// Blocks written during the run.
    pub dirty: u64,
    /// Bytes written back to the file after the run (0 unless it persists).
    pub written_back: u64,
}

impl BlockReport {
    fn new(b: &BlockConfig, manifest: &Manifest, o: Option<&BlockOutcome>) -> Self {
        let o = o.filter(|o| o.name == b.name);
        BlockReport {
            name: b.name.clone(),
            vm: manifest
                .vms
                .get(b.vm as usize)
                .map_or_else(String::new, |v| v.name.clone()),
            device: b.device.clone(),
            file: b
                .file
                .as_ref()
                .map_or_else(|| BLANK_DISK.to_string(), |f| f.display().to_string()),
            capacity: b.capacity,
            block_size: b.block_size,
            persist: b.persist,
            flow: o
                .and_then(|o| o.flow)
                .map(|f| BlockFlow::FIELDS.into_iter().zip(f.values()).collect()),
            dirty: o.map_or(0, |o| o.dirty),
            written_back: 0,
        }
    }
}

/// One hook in the report: what the manifest says, what its records said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookReport {
    /// Its name.
    pub name: String,
    /// `packet`.
    pub kind: &'static str,
    /// Where it was attached, as the manifest writes it.
    pub attach: String,
    /// The file its program came from.
    pub file: String,
    /// Its program's name in the object.
    pub program: String,
    /// What ran it: `compiled` or `interpreted` (`None` without its
    /// record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Frames it ran on (0 without its `hook` record).
    pub runs: u64,
    /// Its verdicts by name (`None` without its `hook` record).
    pub verdicts: Option<BTreeMap<&'static str, u64>>,
    /// eBPF instructions it executed, all runs.
    pub instructions: u64,
    /// Its maps by name.
    pub maps: BTreeMap<String, HookMapReport>,
}

/// The engine a hook's record named, if one came.
fn engine_of(o: &HookOutcome) -> Option<String> {
    Some(o.engine.clone()).filter(|e| !e.is_empty())
}

/// Little-endian bytes of 1 to 8 hex-encoded bytes as a number.
fn hex_number(hex: &str) -> Option<u64> {
    if hex.is_empty() || hex.len() > 16 || !hex.len().is_multiple_of(2) {
        return None;
    }
    let mut n = 0u64;
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        n |= u64::from(byte) << (8 * i);
    }
    Some(n)
}

/// A restart, exit or slice hook's answers by name: a restart hook's
/// `allow` is `restart` and its `deny` `stay_down`; a slice hook's are
/// `set`, `default` and `clamped` (its `bad`); only an exit hook can
/// `fail`.
fn vm_verdicts(kind: HookKind, f: &VmHookFlow) -> BTreeMap<&'static str, u64> {
    let mut v = BTreeMap::new();
    if kind == HookKind::Restart {
        v.insert("restart", f.allow);
        v.insert("stay_down", f.deny);
    } else if kind == HookKind::Slice {
        v.insert("set", f.allow);
        v.insert("default", f.deny);
        v.insert("clamped", f.bad);
        v.insert("faults", f.faults);
        return v;
    } else {
        v.insert("allow", f.allow);
        v.insert("deny", f.deny);
        v.insert("fail", f.fail);
    }
    v.insert("bad", f.bad);
    v.insert("faults", f.faults);
    v
}

impl HookReport {
    /// The report entry for a hook attached at runtime, from its records
    /// alone (its maps named by index, a packet hook's place by link
    /// index, a VM hook's by its VM's name).
    pub fn runtime(o: &HookOutcome) -> Self {
        let flow = o.flow.unwrap_or_default();
        let maps = o
            .maps
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let report = HookMapReport {
                    kind: m.kind.clone(),
                    entries: m.entries,
                    nonzero: m.nonzero,
                    values: m
                        .values
                        .iter()
                        .map(|(core, key, value)| HookEntryReport {
                            core: *core,
                            key: key.clone(),
                            value: value.clone(),
                            number: hex_number(value),
                        })
                        .collect(),
                };
                (i.to_string(), report)
            })
            .collect();
        if let (Some((vm, f)), Some(kind)) = (&o.vm_flow, o.vm_kind) {
            return HookReport {
                name: o.name.clone(),
                kind: kind.name(),
                attach: format!("vm:{vm} (attached at runtime)"),
                file: String::new(),
                program: String::new(),
                engine: engine_of(o),
                runs: f.runs,
                verdicts: Some(vm_verdicts(kind, f)),
                instructions: f.insns,
                maps,
            };
        }
        HookReport {
            name: o.name.clone(),
            kind: HookKind::Packet.name(),
            attach: if matches!(o.dir.as_str(), "rx" | "tx") {
                format!("nic {} {} (attached at runtime)", o.link, o.dir)
            } else {
                format!("link {} {} (attached at runtime)", o.link, o.dir)
            },
            file: String::new(),
            program: String::new(),
            engine: engine_of(o),
            runs: flow.runs,
            verdicts: Some(
                HookFlow::FIELDS
                    .into_iter()
                    .zip(flow.values())
                    .filter(|(k, _)| !matches!(*k, "runs" | "insns"))
                    .collect(),
            ),
            instructions: flow.insns,
            maps,
        }
    }

    /// The report entry for hook `config` from what its records said.
    pub fn new(config: &HookConfig, o: Option<&HookOutcome>) -> Self {
        let flow = o.and_then(|o| o.flow);
        let vm_flow = o.and_then(|o| o.vm_flow.as_ref()).map(|(_, f)| *f);
        let maps = config
            .map_names()
            .enumerate()
            .map(|(i, name)| {
                let m = o.and_then(|o| o.maps.get(i));
                let report = HookMapReport {
                    kind: m.map_or_else(
                        || config.program.maps[i].1.kind.name().to_string(),
                        |m| m.kind.clone(),
                    ),
                    entries: m.map_or(0, |m| m.entries),
                    nonzero: m.map_or(0, |m| m.nonzero),
                    values: m
                        .map(|m| {
                            m.values
                                .iter()
                                .map(|(core, key, value)| HookEntryReport {
                                    core: *core,
                                    key: key.clone(),
                                    value: value.clone(),
                                    number: hex_number(value),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                (name.to_string(), report)
            })
            .collect();
        HookReport {
            name: config.name.clone(),
            kind: config.kind.name(),
            attach: config.attach.clone(),
            file: config.file.display().to_string(),
            program: config.program.program.clone(),
            engine: o.and_then(engine_of),
            runs: flow.map_or(0, |f| f.runs) + vm_flow.map_or(0, |f| f.runs),
            verdicts: match (flow, vm_flow) {
                (Some(f), _) => Some(
                    HookFlow::FIELDS
                        .into_iter()
                        .zip(f.values())
                        .filter(|(k, _)| !matches!(*k, "runs" | "insns"))
                        .collect(),
                ),
                (None, Some(f)) => Some(vm_verdicts(config.kind, &f)),
                (None, None) => None,
            },
            instructions: flow.map_or(0, |f| f.insns) + vm_flow.map_or(0, |f| f.insns),
            maps,
        }
    }
}

/// One link in the report: its ends from the manifest, its counters from
/// its `link` record (`None` if that never arrived).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LinkReport {
    /// Index in the manifest.
    pub link: u32,
    /// End `a` (`vm.port`).
    pub a: String,
    /// End `b`.
    pub b: String,
    /// The core that polls it.
    pub core: u32,
    /// Frames from `a` to `b`.
    #[serde(serialize_with = "flow_json")]
    pub ab: Option<LinkFlow>,
    /// Frames from `b` to `a`.
    #[serde(serialize_with = "flow_json")]
    pub ba: Option<LinkFlow>,
    /// Polling-core instructions spent moving its frames.
    pub busy: Option<u64>,
    /// Made while the host ran (`corral link attach`), not by the
    /// manifest.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub made_at_runtime: bool,
}

impl LinkReport {
    /// The report entry for link `number`, made at runtime.
    pub fn made(number: u32, o: &LinkOutcome) -> Self {
        LinkReport {
            link: number,
            a: o.a.clone(),
            b: o.b.clone(),
            core: o.core,
            ab: Some(o.ab),
            ba: Some(o.ba),
            busy: Some(o.busy),
            made_at_runtime: true,
        }
    }

    /// The report entry for link `index` given its record, if any.
    pub fn new(index: usize, link: &LinkConfig, outcome: Option<&LinkOutcome>) -> Self {
        LinkReport {
            link: index as u32,
            a: link.a.to_string(),
            b: link.b.to_string(),
            core: link.core,
            ab: outcome.map(|o| o.ab),
            ba: outcome.map(|o| o.ba),
            busy: outcome.map(|o| o.busy),
            made_at_runtime: false,
        }
    }

    /// Whether one end is a NIC (its frames are in the NIC's records).
    pub fn to_nic(&self) -> bool {
        [&self.a, &self.b]
            .iter()
            .any(|e| e.starts_with(crate::toml_manifest::NIC_END_PREFIX))
    }

    /// Frames it carried, both directions (0 without a record).
    pub fn frames(&self) -> u64 {
        self.ab.map_or(0, |f| f.frames) + self.ba.map_or(0, |f| f.frames)
    }
}

/// `n / d` with two decimals (rounded to nearest), or `-` if `d` is 0.
pub fn per(n: u64, d: u64) -> String {
    match hundredths_wide(n, d) {
        Some(h) => format!("{}.{:02}", h / 100, h % 100),
        None => "-".to_string(),
    }
}

/// `n / d` in hundredths, rounded to nearest; `None` if `d` is 0 or the
/// result does not fit.
pub fn hundredths(n: u64, d: u64) -> Option<u64> {
    hundredths_wide(n, d).and_then(|h| u64::try_from(h).ok())
}

fn hundredths_wide(n: u64, d: u64) -> Option<u128> {
    let (n, d) = (u128::from(n), u128::from(d));
    (d != 0).then(|| (n * 100 + d / 2) / d)
}

/// The whole run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The manifest file.
    pub manifest: String,
    /// A `done` record arrived: every VM ran to its end.
    pub completed: bool,
    /// The hypervisor's refusal, from a `fatal` record.
    pub fatal: Option<String>,
    /// The emulator was stopped at the wall-clock bound.
    pub timed_out: bool,
    /// Bochs CPU model.
    pub cpu_model: String,
    /// Emulated CPUs.
    pub cpus: u32,
    /// Cores the hypervisor started (from its `hv` record).
    pub cores: Option<u32>,
    /// Bytes of RAM free for VMs once the hypervisor was up.
    pub free_memory: Option<u64>,
    /// Instructions per scheduling slice asked for (0 = default).
    pub timeslice: u64,
    /// Memory totals over the VMs that ended.
    pub totals: Totals,
    /// For each image, how many of its VMs would fit in `free_memory`.
    pub largest_fleet: BTreeMap<String, u64>,
    /// Why the tool failed, if it did (as printed after `corral: error:`).
    pub error: Option<String>,
    /// The staging directory with the ISO inputs and the emulator's logs.
    pub run_dir: Option<String>,
    /// One entry per manifest VM (clones expanded), in manifest order, then
    /// one per VM started at runtime (a service run's `start` and
    /// `scale`), in the order of their ids.
    pub vms: Vec<VmReport>,
    /// One entry per manifest link, in manifest order.
    pub links: Vec<LinkReport>,
    /// The steady-state window of a run with links (`None` without its
    /// record).
    pub window: Option<Window>,
    /// The steady-state window of NIC 0 in a run without links between VMs
    /// (`None` without its record).
    pub nic_window: Option<NicWindow>,
    /// The hypervisor's own pages after boot (W^X; `None` without its
    /// record).
    pub paging: Option<Paging>,
    /// One entry per NIC that reported, by index.
    pub nics: Vec<NicReport>,
    /// One entry per manifest hook, in manifest order.
    pub hooks: Vec<HookReport>,
    /// One entry per block device, in manifest order.
    pub blocks: Vec<BlockReport>,
}

/// The manifest's VMs, then each VM started at runtime as a copy of its
/// entry's first VM under its own name (judged by the entry's
/// expectation), or, started from an image the manifest has no entry of
/// (an uploaded one), as a VM of that image judged as a manifest VM
/// without `expect` is: exit 0.
fn vm_configs<'o>(manifest: &Manifest, outcome: &'o RunOutcome) -> Vec<(VmConfig, &'o VmOutcome)> {
    let mut vms: Vec<_> = manifest.vms.iter().cloned().zip(&outcome.vms).collect();
    for o in outcome.vms.iter().skip(vms.len()) {
        // A VM stopped before it ever ran sent no `vm-start`: it is left out.
        let Some((name, entry, image)) = &o.started_as else {
            continue;
        };
        let vm = match manifest.vms.iter().find(|v| &v.entry == entry) {
            Some(first) => VmConfig {
                name: name.clone(),
                clone: None,
                ..first.clone()
            },
            None => VmConfig {
                name: name.clone(),
                entry: entry.clone(),
                clone: None,
                image: image.clone(),
                image_file: None,
                cores: 0,
                memory: 0,
                args: String::new(),
                budget: 0,
                restart: vmm_abi::manifest::Restart::Never,
                restart_limit: 0,
                net_ports: 0,
                console: false,
                control: false,
                devices: Vec::new(),
                expect: crate::expect::Expectation::default(),
            },
        };
        vms.push((vm, o));
    }
    vms
}

impl Report {
    /// A report for `manifest` with what `outcome` says so far.
    pub fn new(manifest: &Manifest, cpu_model: &str, cpus: u32, outcome: &RunOutcome) -> Self {
        let vms = vm_configs(manifest, outcome);
        let accounted: Vec<(&str, MemoryUse)> = vms
            .iter()
            .map(|(vm, o)| (vm, *o))
            .filter(|(_, o)| o.ended())
            .map(|(vm, o)| (vm.image.as_str(), o.memory))
            .collect();
        let free = outcome.hypervisor.map(|h| h.free);
        Report {
            manifest: manifest.origin.clone(),
            completed: outcome.done,
            fatal: outcome.fatal.clone(),
            timed_out: false,
            cpu_model: cpu_model.to_string(),
            cpus,
            cores: outcome.hypervisor.map(|h| h.cores),
            free_memory: free,
            timeslice: manifest.timeslice,
            totals: memory::totals(&accounted),
            largest_fleet: free
                .map_or_else(BTreeMap::new, |f| memory::largest_fleet(f, &accounted)),
            error: None,
            run_dir: None,
            vms: vms.iter().map(|(vm, o)| VmReport::new(vm, o)).collect(),
            links: manifest
                .links
                .iter()
                .enumerate()
                .map(|(i, l)| LinkReport::new(i, l, outcome.links.get(i).and_then(Option::as_ref)))
                .chain(
                    outcome
                        .made_links
                        .iter()
                        .map(|(&n, o)| LinkReport::made(n, o)),
                )
                .collect(),
            window: outcome.window,
            nic_window: outcome.nic_window,
            paging: outcome.paging,
            nics: outcome
                .nics
                .iter()
                .enumerate()
                .map(|(i, n)| NicReport::new(i, n))
                .collect(),
            hooks: manifest
                .hooks
                .iter()
                .enumerate()
                .map(|(i, h)| HookReport::new(h, outcome.hooks.get(i)))
                .chain(
                    // Hooks attached at runtime (a service run), after the
                    // manifest's, under the indices the hypervisor gave.
                    outcome
                        .hooks
                        .iter()
                        .skip(manifest.hooks.len())
                        .filter(|o| o.flow.is_some() || o.vm_flow.is_some())
                        .map(HookReport::runtime),
                )
                .collect(),
            blocks: manifest
                .blocks
                .iter()
                .enumerate()
                .map(|(i, b)| BlockReport::new(b, manifest, outcome.blocks.get(i)))
                .collect(),
        }
    }

    /// A report for a run that stopped before a manifest could be read.
    pub fn unread(manifest: &str, error: &Error) -> Self {
        Report {
            manifest: manifest.to_string(),
            completed: false,
            fatal: None,
            timed_out: false,
            cpu_model: String::new(),
            cpus: 0,
            cores: None,
            free_memory: None,
            timeslice: 0,
            totals: Totals::default(),
            largest_fleet: BTreeMap::new(),
            error: Some(error.message().to_string()),
            run_dir: None,
            vms: Vec::new(),
            links: Vec::new(),
            window: None,
            nic_window: None,
            paging: None,
            nics: Vec::new(),
            hooks: Vec::new(),
            blocks: Vec::new(),
        }
    }

    /// Whether the run completed and every VM met its expectation.
    pub fn passed(&self) -> bool {
        self.completed && self.error.is_none() && self.vms.iter().all(|v| v.ok)
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Writes the JSON to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_json() + "\n").map_err(|e| {
            Error::new(format!(
                "cannot write the report to {}: {e}",
                path.display()
            ))
        })
    }

    /// The lines printed after the table: VM counts by result and memory.
    pub fn summary(&self) -> Vec<String> {
        let ok = self.vms.iter().filter(|v| v.ok).count();
        let restarts: u32 = self.vms.iter().map(|v| v.restarts).sum();
        let mut lines = vec![format!(
            "{ok} of {} VMs ended as expected{}{}",
            self.vms.len(),
            match self.cores {
                Some(c) => format!(" on {c} core{}", if c == 1 { "" } else { "s" }),
                None => String::new(),
            },
            if restarts > 0 {
                format!(
                    " ({restarts} restart{})",
                    if restarts == 1 { "" } else { "s" }
                )
            } else {
                String::new()
            }
        )];
        lines.extend(memory::summary(
            &self.totals,
            self.free_memory,
            &self.largest_fleet,
        ));
        if let Some(w) = self.window {
            lines.push(format!(
                "window: {} frames on link 0 a->b: {} VM exits ({} per frame), {} polling instructions ({} per frame)",
                w.frames,
                w.exits,
                per(w.exits, w.frames),
                w.busy,
                per(w.busy, w.frames)
            ));
        }
        if let Some(w) = self.nic_window {
            lines.push(format!(
                "nic window: {} frames from the wire: {} VM exits ({} per frame); receive {} polling instructions ({} per frame), transmit {} for {} frames ({} per frame)",
                w.frames,
                w.exits,
                per(w.exits, w.frames),
                w.rx_busy,
                per(w.rx_busy, w.frames),
                w.tx_busy,
                w.tx_frames,
                per(w.tx_busy, w.tx_frames)
            ));
        }
        lines
    }

    /// The links table, one row per link (empty without links): frames
    /// and drops each way, and polling instructions per frame moved.
    pub fn link_table(&self) -> String {
        if self.links.iter().all(LinkReport::to_nic) {
            return String::new();
        }
        let mut rows = vec![
            [
                "link",
                "a",
                "b",
                "core",
                "a->b",
                "drops",
                "b->a",
                "drops",
                "busy",
                "instr/frame",
            ]
            .map(String::from)
            .to_vec(),
        ];
        let dash = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |n| n.to_string());
        // A link to a NIC is counted in the NIC's table.
        for l in self.links.iter().filter(|l| !l.to_nic()) {
            rows.push(vec![
                l.link.to_string(),
                l.a.clone(),
                l.b.clone(),
                l.core.to_string(),
                dash(l.ab.map(|f| f.frames)),
                dash(l.ab.map(|f| f.dropped())),
                dash(l.ba.map(|f| f.frames)),
                dash(l.ba.map(|f| f.dropped())),
                dash(l.busy),
                per(l.busy.unwrap_or(0), l.frames()),
            ]);
        }
        use Align::{Left, Right};
        table::text(
            &rows,
            &[
                Right, Left, Left, Right, Right, Right, Right, Right, Right, Right,
            ],
        )
    }

    /// A line per block device: what its VM did and what went back to its
    /// file (empty without block devices).
    pub fn block_summary(&self) -> String {
        let mut text = String::new();
        for b in &self.blocks {
            let Some(f) = &b.flow else {
                text.push_str(&format!(
                    "block {} (vm {}, device {}): no record (the run ended before its report)\n",
                    b.name, b.vm, b.device
                ));
                continue;
            };
            let back = if b.file == BLANK_DISK {
                "a blank disk, gone with the run".to_string()
            } else if !b.persist {
                "not persistent: the file is unchanged".to_string()
            } else if b.written_back > 0 {
                format!("{} bytes written back to {}", b.written_back, b.file)
            } else {
                format!("nothing written back to {}", b.file)
            };
            let n = |k: &str| f.get(k).copied().unwrap_or(0);
            text.push_str(&format!(
                "block {} (vm {}, device {}): {} reads ({} bytes), {} writes ({} bytes), {} refused, {} blocks written; {back}\n",
                b.name,
                b.vm,
                b.device,
                n("reads"),
                n("bytes_read"),
                n("writes"),
                n("bytes_written"),
                n("errors"),
                b.dirty
            ));
        }
        text
    }

    /// A line per hook: its verdicts and its maps' nonzero entries (empty
    /// without hooks).
    pub fn hook_summary(&self) -> String {
        let mut text = String::new();
        for h in &self.hooks {
            let Some(v) = &h.verdicts else {
                text.push_str(&format!(
                    "hook {} ({}): no record (the run ended before its report)\n",
                    h.name, h.attach
                ));
                continue;
            };
            let get = |k: &str| v.get(k).copied().unwrap_or(0);
            let engine = h
                .engine
                .as_deref()
                .map_or(String::new(), |e| format!(", {e}"));
            if h.kind != "packet" {
                let order: &[&str] = if h.kind == "restart" {
                    &["restart", "stay_down", "bad", "faults"]
                } else if h.kind == "slice" {
                    &["set", "default", "clamped", "faults"]
                } else {
                    &["allow", "deny", "fail", "bad", "faults"]
                };
                let answers: Vec<String> =
                    order.iter().map(|k| format!("{} {k}", get(k))).collect();
                text.push_str(&format!(
                    "hook {} ({}): {} runs: {}; {} instructions ({:.1} per run{})\n",
                    h.name,
                    h.attach,
                    h.runs,
                    answers.join(", "),
                    h.instructions,
                    h.instructions as f64 / h.runs.max(1) as f64,
                    engine,
                ));
            } else {
                text.push_str(&format!(
                "hook {} ({}): {} runs: {} pass, {} drop, {} aborted, {} faults, {} tx, {} redirect, {} sent, {} unsent; {} instructions ({:.1} per run{})\n",
                h.name,
                h.attach,
                h.runs,
                get("pass"),
                get("drop"),
                get("aborted"),
                get("faults"),
                get("tx"),
                get("redirect"),
                get("sent"),
                get("unsent"),
                h.instructions,
                h.instructions as f64 / h.runs.max(1) as f64,
                engine,
            ));
            }
            for (name, m) in &h.maps {
                let shown: Vec<String> = m
                    .values
                    .iter()
                    .map(|e| match e.number {
                        Some(n) => format!("{}={n}", e.key),
                        None => format!("{}={}", e.key, e.value),
                    })
                    .collect();
                let more = if m.nonzero > m.values.len() as u64 {
                    format!(" (+{} more)", m.nonzero - m.values.len() as u64)
                } else {
                    String::new()
                };
                text.push_str(&format!(
                    "  map {name} ({}): {}{more}\n",
                    m.kind,
                    if shown.is_empty() {
                        "all zero".to_string()
                    } else {
                        shown.join(" ")
                    }
                ));
            }
        }
        text
    }

    /// The NICs' tables: a line per NIC for the wire, then a row per
    /// attached port (empty without NICs).
    pub fn nic_table(&self) -> String {
        if self.nics.is_empty() {
            return String::new();
        }
        let mut text = String::new();
        let mut rows = vec![
            [
                "nic",
                "port",
                "from wire",
                "to wire",
                "no buffer",
                "too large",
                "spoofed",
                "gone",
                "ring fault",
                "hook",
            ]
            .map(String::from)
            .to_vec(),
        ];
        let get = |m: &BTreeMap<&'static str, u64>, k: &str| m.get(k).copied().unwrap_or(0);
        for n in &self.nics {
            if let Some(w) = &n.wire {
                text.push_str(&format!(
                    "nic {} (core {}): {} frames in ({} with errors, {} for no port, {} runts, {} dropped by its hook), {} out ({} passes found the ring full)\n",
                    n.name,
                    n.core,
                    get(w, "rx_frames"),
                    get(w, "rx_errors"),
                    get(w, "drop_unknown"),
                    get(w, "drop_runt"),
                    get(w, "drop_hook"),
                    get(w, "tx_frames"),
                    get(w, "tx_full"),
                ));
            }
            for p in &n.ports {
                let f = &p.flow;
                rows.push(vec![
                    n.name.clone(),
                    p.port.clone(),
                    get(f, "rx_frames").to_string(),
                    get(f, "tx_frames").to_string(),
                    get(f, "drop_no_buffer").to_string(),
                    get(f, "drop_size").to_string(),
                    get(f, "drop_spoofed").to_string(),
                    get(f, "drop_peer").to_string(),
                    get(f, "drop_fault").to_string(),
                    get(f, "drop_hook").to_string(),
                ]);
            }
        }
        use Align::{Left, Right};
        text.push_str(&table::text(
            &rows,
            &[
                Left, Left, Right, Right, Right, Right, Right, Right, Right, Right,
            ],
        ));
        text
    }

    /// The summary table, one row per VM, columns aligned.
    pub fn table(&self) -> String {
        use Align::{Left, Right};
        const COLUMNS: [(&str, Align); 11] = [
            ("name", Left),
            ("image", Left),
            ("core", Right),
            ("status", Left),
            ("code", Right),
            ("boot instr", Right),
            ("exits", Right),
            ("slices", Right),
            ("restarts", Right),
            ("reason", Left),
            ("result", Left),
        ];
        let dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
        let mut rows: Vec<[String; 11]> = vec![COLUMNS.map(|(h, _)| h.to_string())];
        for vm in &self.vms {
            rows.push([
                vm.name.clone(),
                vm.image.clone(),
                dash(vm.core.map(|c| c.to_string())),
                vm.status.clone(),
                dash(vm.exit_code.map(|c| c.to_string())),
                vm.boot_instructions.to_string(),
                vm.exits_total().to_string(),
                vm.slices.to_string(),
                vm.restarts.to_string(),
                dash((!vm.reason.is_empty()).then(|| vm.reason.clone())),
                if vm.ok {
                    "OK".to_string()
                } else {
                    format!("FAIL (expected {})", vm.expect)
                },
            ]);
        }
        let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
        table::text(&rows, &COLUMNS.map(|(_, align)| align))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toml_manifest::parse;
    use vmm_abi::report::parse_line;

    fn sample() -> Report {
        let manifest = parse(
            "[run]\ncpus = 4\ntimeslice = 50000\n\
             [[vm]]\nname = \"hello\"\nimage = \"hello\"\ncores = [1, 2]\n\
             [[vm]]\nname = \"esc\"\nimage = \"escape\"\nexpect = \"killed:EPT violation\"\n\
             restart = \"on-failure\"\nrestart_limit = 1\n\
             [[vm]]\nname = \"late\"\nimage = \"hello\"\n",
            "m.toml",
            &["hello".into(), "escape".into()],
        )
        .unwrap();
        let mut outcome = RunOutcome::new(3);
        for line in [
            "@corral hv abi=4 cores=4 free=266338304",
            "@corral vm-start vm=0 name=hello entry=hello image=hello core=2 apic=2 memory=262144",
            "@corral metric vm=0 name=hypercall_roundtrip value=412",
            "@corral vm-end vm=0 status=exited code=0 boot=18211 restarts=0 slices=3 private=241664 shared=20480 overhead=24576 exits=vmcall:3,cpuid:1 console=0 console_dropped=0 reason=exited with code 0",
            "@corral vm-start vm=1 name=esc entry=esc image=escape core=0 apic=0 memory=262144",
            "@corral vm-restart vm=1 attempt=1 reason=EPT violation: read at guest-physical 0x40000",
            "@corral vm-start vm=1 name=esc entry=esc image=escape core=0 apic=0 memory=262144",
            "@corral vm-end vm=1 status=killed code=-1 boot=100 restarts=1 slices=1 private=200704 shared=16384 overhead=20480 exits=ept_violation:2 console=0 console_dropped=0 reason=EPT violation: read at guest-physical 0x40000",
        ] {
            outcome.apply(&parse_line(line).unwrap().unwrap());
        }
        Report::new(&manifest, "corei7_icelake_u", 4, &outcome)
    }

    #[test]
    fn hooks_say_which_engine_ran_them() {
        let manifest = parse(
            "[[vm]]\nname = \"web\"\nimage = \"hello\"\n",
            "m.toml",
            &["hello".into()],
        )
        .unwrap();
        let mut outcome = RunOutcome::new(1);
        for line in [
            "@corral hook hook=0 name=count link=0 dir=a->b engine=compiled flow_runs=4 flow_pass=4 flow_drop=0 flow_aborted=0 flow_faults=0 flow_tx=0 flow_redirect=0 flow_sent=0 flow_unsent=0 flow_insns=40",
            "@corral vm-hook hook=1 name=guard kind=exit vm=web engine=interpreted flow_runs=2 flow_allow=2 flow_deny=0 flow_fail=0 flow_bad=0 flow_faults=0 flow_insns=6",
        ] {
            outcome.apply(&parse_line(line).unwrap().unwrap());
        }
        let report = Report::new(&manifest, "corei7_icelake_u", 1, &outcome);
        let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(v["hooks"][0]["engine"], "compiled", "{v:#}");
        assert_eq!(v["hooks"][1]["engine"], "interpreted", "{v:#}");
        let summary = report.hook_summary();
        let lines: Vec<&str> = summary.lines().collect();
        assert!(
            lines[0].ends_with("40 instructions (10.0 per run, compiled)"),
            "{summary}"
        );
        assert!(
            lines[1].ends_with("6 instructions (3.0 per run, interpreted)"),
            "{summary}"
        );
        // A hook without a record says nothing of an engine.
        let mut silent = report.hooks[0].clone();
        silent.engine = None;
        assert!(
            serde_json::to_value(&silent)
                .unwrap()
                .get("engine")
                .is_none()
        );
    }

    #[test]
    fn json_has_the_agreed_shape() {
        let report = sample();
        let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(v["manifest"], "m.toml");
        assert_eq!(v["completed"], false);
        assert_eq!(v["fatal"], serde_json::Value::Null);
        assert_eq!(v["timed_out"], false);
        assert_eq!(v["cpu_model"], "corei7_icelake_u");
        assert_eq!(v["cpus"], 4);
        assert_eq!(v["cores"], 4);
        assert_eq!(v["free_memory"], 266_338_304);
        assert_eq!(v["timeslice"], 50_000);
        assert_eq!(
            v["totals"],
            serde_json::json!({"vms": 2, "private": 442_368, "shared": 36_864, "overhead": 45_056})
        );
        // hello: (266338304 - 20480) / (241664 + 24576) = 1000.3 -> 1000;
        // escape: (266338304 - 16384) / (200704 + 20480) = 1204.0 -> 1204.
        assert_eq!(
            v["largest_fleet"],
            serde_json::json!({"hello": 1000, "escape": 1204})
        );
        let hello = &v["vms"][0];
        assert_eq!(hello["name"], "hello");
        assert_eq!(hello["image"], "hello");
        assert_eq!(hello["cores"], serde_json::json!([1, 2]));
        assert_eq!(hello["core"], 2);
        assert_eq!(hello["apic_id"], 2);
        assert_eq!(hello["status"], "exited");
        assert_eq!(hello["exit_code"], 0);
        assert_eq!(hello["reason"], "exited with code 0");
        assert_eq!(hello["boot_instructions"], 18211);
        assert_eq!(hello["restarts"], 0);
        assert_eq!(hello["restart_reasons"], serde_json::json!([]));
        assert_eq!(hello["slices"], 3);
        assert_eq!(
            hello["memory"],
            serde_json::json!({"private": 241_664, "shared": 20_480, "overhead": 24_576})
        );
        assert_eq!(hello["exits"], serde_json::json!({"vmcall": 3, "cpuid": 1}));
        assert_eq!(hello["metrics"]["hypercall_roundtrip"], 412);
        assert_eq!(hello["expect"], "exit:0");
        assert_eq!(hello["ok"], true);
        let esc = &v["vms"][1];
        assert_eq!(esc["cores"], serde_json::json!([]));
        assert_eq!(esc["status"], "killed");
        assert_eq!(esc["exit_code"], serde_json::Value::Null);
        assert_eq!(esc["restarts"], 1);
        assert_eq!(
            esc["restart_reasons"],
            serde_json::json!(["EPT violation: read at guest-physical 0x40000"])
        );
        assert_eq!(esc["ok"], true);
        let late = &v["vms"][2];
        assert_eq!(late["status"], "running");
        assert_eq!(late["core"], serde_json::Value::Null);
        assert_eq!(late["apic_id"], serde_json::Value::Null);
        assert_eq!(late["memory"], serde_json::Value::Null);
        assert_eq!(late["exits"], serde_json::json!({}));
        assert_eq!(late["ok"], false);
    }

    #[test]
    fn passing_needs_completion_and_every_expectation() {
        let mut report = sample();
        assert!(!report.passed());
        report.completed = true;
        assert!(!report.passed());
        report.vms.pop();
        assert!(report.passed());
        report.error = Some("x".into());
        assert!(!report.passed());
    }

    #[test]
    fn table_is_aligned() {
        let table = sample().table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0],
            "name   image   core  status   code  boot instr  exits  slices  restarts  reason                                         result"
        );
        assert_eq!(
            lines[1],
            "hello  hello      2  exited      0       18211      4       3         0  exited with code 0                             OK"
        );
        assert!(lines[3].starts_with("late   hello      -  running     -"));
        assert!(lines[3].ends_with("FAIL (expected exit:0)"));
    }

    #[test]
    fn summary_counts_and_memory() {
        let report = sample();
        assert_eq!(
            report.summary(),
            [
                "2 of 3 VMs ended as expected on 4 cores (1 restart)",
                "memory: private 432 KiB, shared 36 KiB, overhead 44 KiB over 2 VMs; largest fleets that fit in 254 MiB: escape 1204, hello 1000",
            ]
        );
    }

    fn linked() -> Report {
        let manifest = parse(
            "[run]\ncpus = 2\n\
             [[vm]]\nname = \"gen\"\nimage = \"hello\"\nnet = 1\n\
             [[vm]]\nname = \"fw\"\nimage = \"hello\"\nnet = 2\n\
             [[vm]]\nname = \"sink\"\nimage = \"hello\"\nnet = 1\n\
             [[link]]\na = \"gen.0\"\nb = \"fw.0\"\n\
             [[link]]\na = \"fw.1\"\nb = \"sink.0\"\n",
            "m.toml",
            &["hello".into()],
        )
        .unwrap();
        let mut outcome = RunOutcome::for_manifest(&manifest);
        for line in [
            "@corral link link=0 a=gen.0 b=fw.0 core=0 ab_frames=1000 ab_bytes=64000 ab_drop_peer=2 ab_drop_size=1 ab_drop_stalled=0 ab_stalls=0 ba_frames=0 ba_bytes=0 ba_drop_peer=0 ba_drop_size=0 ba_drop_stalled=0 ba_stalls=0 busy=250005",
            "@corral window frames=600 exits=3 busy=301000",
        ] {
            outcome.apply(&parse_line(line).unwrap().unwrap());
        }
        assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
        Report::new(&manifest, "corei7_icelake_u", 2, &outcome)
    }

    #[test]
    fn nics_are_reported_from_their_records() {
        let manifest = parse(
            "[[vm]]\nname = \"web\"\nimage = \"hello\"\nnet = 1\n",
            "m.toml",
            &["hello".into()],
        )
        .unwrap();
        let mut outcome = RunOutcome::for_manifest(&manifest);
        for line in [
            "@corral nic nic=0 name=uplink core=1 wire_rx_frames=5 wire_rx_bytes=300 wire_rx_errors=0 wire_drop_unknown=1 wire_drop_runt=0 wire_tx_frames=2 wire_tx_bytes=120 wire_tx_full=0 wire_rx_busy=0 wire_tx_busy=0 wire_drop_hook=0",
            "@corral nic-port nic=0 port=web.0 flow_rx_frames=4 flow_rx_bytes=240 flow_tx_frames=2 flow_tx_bytes=120 flow_drop_no_buffer=0 flow_drop_size=0 flow_drop_spoofed=1 flow_drop_peer=0 flow_drop_fault=0 flow_drop_hook=0",
            "@corral nic-port nic=99 port=web.0 flow_rx_frames=4 flow_rx_bytes=240 flow_tx_frames=2 flow_tx_bytes=120 flow_drop_no_buffer=0 flow_drop_size=0 flow_drop_spoofed=1 flow_drop_peer=0 flow_drop_fault=0 flow_drop_hook=0",
        ] {
            outcome.apply(&parse_line(line).unwrap().unwrap());
        }
        assert_eq!(outcome.warnings.len(), 1, "nic 99 is refused");
        let shown = Report::new(&manifest, "corei7_icelake_u", 1, &outcome).nic_table();
        assert_eq!(
            shown,
            "nic uplink (core 1): 5 frames in (0 with errors, 1 for no port, 0 runts, 0 dropped by its hook), 2 out (0 passes found the ring full)\n\
             nic     port   from wire  to wire  no buffer  too large  spoofed  gone  ring fault  hook\n\
             uplink  web.0          4        2          0          0        1     0           0     0\n"
        );
        let report = Report::new(&manifest, "corei7_icelake_u", 1, &outcome);
        let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(
            v["nics"],
            serde_json::json!([{
                "nic": 0, "name": "uplink", "core": 1,
                "wire": {"rx_frames": 5, "rx_bytes": 300, "rx_errors": 0, "drop_unknown": 1,
                         "drop_runt": 0, "tx_frames": 2, "tx_bytes": 120, "tx_full": 0,
                         "rx_busy": 0, "tx_busy": 0, "drop_hook": 0},
                "ports": [{"port": "web.0", "rx_frames": 4, "rx_bytes": 240, "tx_frames": 2,
                           "tx_bytes": 120, "drop_no_buffer": 0, "drop_size": 0,
                           "drop_spoofed": 1, "drop_peer": 0, "drop_fault": 0,
                           "drop_hook": 0}]
            }])
        );
    }

    #[test]
    fn links_and_the_window_are_reported() {
        let report = linked();
        let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(
            v["links"][0],
            serde_json::json!({
                "link": 0, "a": "gen.0", "b": "fw.0", "core": 0,
                "ab": {"frames": 1000, "bytes": 64000, "drop_peer": 2, "drop_size": 1, "drop_stalled": 0, "stalls": 0},
                "ba": {"frames": 0, "bytes": 0, "drop_peer": 0, "drop_size": 0, "drop_stalled": 0, "stalls": 0},
                "busy": 250_005
            })
        );
        // No record for link 1: its ends, but no counters.
        assert_eq!(
            v["links"][1],
            serde_json::json!({
                "link": 1, "a": "fw.1", "b": "sink.0", "core": 0,
                "ab": null, "ba": null, "busy": null
            })
        );
        assert_eq!(
            v["window"],
            serde_json::json!({"frames": 600, "exits": 3, "busy": 301_000})
        );
        assert_eq!(
            report.summary().last().map(String::as_str),
            Some(
                "window: 600 frames on link 0 a->b: 3 VM exits (0.01 per frame), 301000 polling instructions (501.67 per frame)"
            )
        );
        assert_eq!(
            report.link_table(),
            "link  a      b       core  a->b  drops  b->a  drops    busy  instr/frame\n\
             \x20  0  gen.0  fw.0       0  1000      3     0      0  250005       250.01\n\
             \x20  1  fw.1   sink.0     0     -      -     -      -       -            -\n"
        );
        assert_eq!(sample().link_table(), "");
        assert_eq!(sample().window, None);
    }

    #[test]
    fn ratios_round_to_hundredths() {
        assert_eq!(per(250_005, 1000), "250.01");
        assert_eq!(per(250_004, 1000), "250.00");
        assert_eq!(per(0, 7), "0.00");
        assert_eq!(per(2, 3), "0.67");
        assert_eq!(per(5, 0), "-");
        assert_eq!(per(u64::MAX, 1), format!("{}.00", u64::MAX));
        assert_eq!(hundredths(u64::MAX, 1), None);
        assert_eq!(per(u64::MAX, u64::MAX), "1.00");
    }

    #[test]
    fn unread_reports_carry_the_error() {
        let r = Report::unread("x.toml", &Error::new("cannot read manifest x.toml"));
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["error"], "cannot read manifest x.toml");
        assert_eq!(v["completed"], false);
        assert_eq!(v["vms"], serde_json::json!([]));
        assert_eq!(v["cores"], serde_json::Value::Null);
        assert_eq!(v["totals"]["vms"], 0);
        assert_eq!(r.summary(), ["0 of 0 VMs ended as expected"]);
    }
}
