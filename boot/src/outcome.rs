//! What the hypervisor's report records say happened, accumulated record by
//! record as console lines arrive: per-VM status, exit counts and metrics,
//! per-link counters and the steady-state window, and whether the run
//! finished (`done`) or was refused (`fatal`).

use crate::toml_manifest::Manifest;
use serde::Serialize;
use std::collections::BTreeMap;
use vmm_abi::report::{
    BlockFlow, EXIT_KINDS, ExitCounts, ExitKind, HookFlow, LinkFlow, NicFlow, NicPortFlow, Record,
    VmHookFlow, VmStatus,
};

/// One VM as the records describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmOutcome {
    /// A `vm-start` record arrived for it.
    pub started: bool,
    /// Core it was put on and that core's local APIC ID, from its latest
    /// `vm-start`.
    pub placement: Option<(u32, u32)>,
    /// Its status: [`VmStatus::Running`] until its `vm-end` record.
    pub status: VmStatus,
    /// Exit code from `vm-end`.
    pub code: i64,
    /// Why it ended, from `vm-end` (empty before).
    pub reason: String,
    /// Instructions from VM creation to the guest's `main` (last run).
    pub boot: u64,
    /// Restarts: from `vm-end`, or the `vm-restart` records seen so far.
    pub restarts: u32,
    /// Why each earlier run ended, from `vm-restart` records.
    pub restart_reasons: Vec<String>,
    /// Times it was scheduled onto its core after another VM ran.
    pub slices: u64,
    /// Memory accounting from `vm-end`, in bytes.
    pub memory: MemoryUse,
    /// VM exits by kind.
    pub exits: ExitCounts,
    /// Metrics the guest reported, by name.
    pub metrics: BTreeMap<String, u64>,
    /// Console bytes printed and dropped (all runs).
    pub console: ConsoleUse,
    /// Its name, entry and image, from its `vm-start` (what names a VM
    /// started at runtime, which the manifest does not list).
    pub started_as: Option<(String, String, String)>,
}

/// A VM's console output, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConsoleUse {
    /// Bytes printed.
    pub bytes: u64,
    /// Bytes dropped (over its rate or cap, or the console was full).
    pub dropped: u64,
}

/// What one VM cost in memory, in bytes, as its `vm-end` record says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryUse {
    /// Guest memory mapped only into this VM.
    pub private: u64,
    /// Guest memory shared with the other VMs of its image (read-only
    /// segments).
    pub shared: u64,
    /// The hypervisor's own memory for it (VMCS, EPT tables, bookkeeping).
    pub overhead: u64,
}

impl Default for VmOutcome {
    fn default() -> Self {
        VmOutcome {
            started: false,
            placement: None,
            status: VmStatus::Running,
            code: 0,
            reason: String::new(),
            boot: 0,
            restarts: 0,
            restart_reasons: Vec::new(),
            console: ConsoleUse::default(),
            slices: 0,
            memory: MemoryUse::default(),
            exits: [0; EXIT_KINDS],
            metrics: BTreeMap::new(),
            started_as: None,
        }
    }
}

impl VmOutcome {
    /// All exits, of every kind.
    pub fn exits_total(&self) -> u64 {
        self.exits.iter().sum()
    }

    /// Non-zero exit counts keyed by [`ExitKind::name`].
    pub fn exit_map(&self) -> BTreeMap<String, u64> {
        ExitKind::ALL
            .iter()
            .zip(self.exits)
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.name().to_string(), n))
            .collect()
    }

    /// The exit code if the guest exited by itself.
    pub fn exit_code(&self) -> Option<i64> {
        (self.status == VmStatus::Exited).then_some(self.code)
    }

    /// Whether it has ended for good (a `vm-end` record arrived).
    pub fn ended(&self) -> bool {
        self.status != VmStatus::Running
    }
}

/// What the `hv` record says about the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypervisorInfo {
    /// ABI version it speaks.
    pub abi: u32,
    /// Cores it started.
    pub cores: u32,
    /// Bytes of RAM free for VMs once it was up.
    pub free: u64,
}

/// A link's counters, from its `link` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkOutcome {
    /// End `a` as the record names it (`vm.port`).
    pub a: String,
    /// End `b`.
    pub b: String,
    /// The core that polled it.
    pub core: u32,
    /// Frames from `a` to `b`.
    pub ab: LinkFlow,
    /// Frames from `b` to `a`.
    pub ba: LinkFlow,
    /// Polling-core instructions spent moving its frames.
    pub busy: u64,
}

/// Most NICs a record may name (more is a malformed record).
const MAX_NIC_RECORDS: u32 = 64;

/// A NIC's counters, from its `nic` and `nic-port` records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NicOutcome {
    /// Its name, from its `nic` record (empty before).
    pub name: String,
    /// The core that polled it.
    pub core: u32,
    /// The wire side, once its `nic` record arrived.
    pub wire: Option<NicFlow>,
    /// Each attached guest port (`vm.port`) and what it did, in record
    /// order.
    pub ports: Vec<(String, NicPortFlow)>,
}

/// Most hooks a record may name (more is a malformed record).
const MAX_HOOK_RECORDS: u32 = 64;
/// Most maps of one hook a record may name.
const MAX_HOOK_MAP_RECORDS: u32 = 64;

/// One map of a hook, from its `hook-map` and `hook-entry` records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookMapOutcome {
    /// `array`, `hash` or `percpu_array` (empty until its `hook-map`).
    pub kind: String,
    /// Entries present.
    pub entries: u64,
    /// Entries whose value is not all zero.
    pub nonzero: u64,
    /// Entries the report shows (the first nonzero ones).
    pub shown: u64,
    /// Those entries: (core, key hex, value hex), in record order.
    pub values: Vec<(u32, String, String)>,
}

/// A packet hook's counters and maps, from its `hook`, `hook-map` and
/// `hook-entry` records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookOutcome {
    /// Its name, from its `hook` record (empty before).
    pub name: String,
    /// The link and direction it judged (`a->b`).
    pub link: u32,
    /// `a->b` or `b->a`.
    pub dir: String,
    /// What ran it (`compiled` or `interpreted`), from its `hook` or
    /// `vm-hook` record (empty before).
    pub engine: String,
    /// Its counters, once its `hook` record arrived (a packet hook).
    pub flow: Option<HookFlow>,
    /// Its counters, once its `vm-hook` record arrived (a restart, exit or
    /// slice hook), with the VM it is attached to.
    pub vm_flow: Option<(String, VmHookFlow)>,
    /// A VM hook's kind, from its `vm-hook` record.
    pub vm_kind: Option<vmm_abi::hook::HookKind>,
    /// Its maps, by index in its map table.
    pub maps: Vec<HookMapOutcome>,
}

/// The steady-state window of a run with links, from the `window` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Frames link 0 carried from `a` to `b` in the window.
    pub frames: u64,
    /// VM exits of every VM in the window.
    pub exits: u64,
    /// Polling-core instructions spent moving frames in the window, all links.
    pub busy: u64,
}

/// The steady-state window of NIC 0 in a run without links between VMs,
/// from the `nic-window` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct NicWindow {
    /// Frames from the wire delivered to its ports in the window.
    pub frames: u64,
    /// VM exits of every VM in the window.
    pub exits: u64,
    /// Polling instructions spent on receive halves in the window.
    pub rx_busy: u64,
    /// Frames sent onto the wire in the window.
    pub tx_frames: u64,
    /// Polling instructions spent on transmit halves in the window.
    pub tx_busy: u64,
}

/// The hypervisor's own pages after boot (W^X), from the `paging` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Paging {
    /// Executable 4 KiB pages.
    pub exec: u64,
    /// Writable 4 KiB pages.
    pub writable: u64,
    /// Pages both writable and executable (0 is W^X).
    pub writable_exec: u64,
}

/// A block device at the end of the run, from its `block` record and the
/// written bytes of its `block-data` records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockOutcome {
    /// Its name (empty until its `block` record arrived).
    pub name: String,
    /// The VM it was attached to.
    pub vm: u32,
    /// Its device name in that VM's Solo5 manifest.
    pub device: String,
    /// Bytes of its image.
    pub capacity: u64,
    /// Bytes per block.
    pub block_size: u32,
    /// What its VM did with it.
    pub flow: Option<BlockFlow>,
    /// Blocks written during the run.
    pub dirty: u64,
    /// Written bytes, in the order they came: (offset, bytes).
    pub data: Vec<(u64, Vec<u8>)>,
}

/// Most block devices a record may name.
const MAX_BLOCK_RECORDS: u32 = vmm_abi::manifest::MAX_BLOCKS;

/// The whole run as far as the records tell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOutcome {
    /// From the `hv` record, once it arrived.
    pub hypervisor: Option<HypervisorInfo>,
    /// Reason from a `fatal` record.
    pub fatal: Option<String>,
    /// A `done` record arrived.
    pub done: bool,
    /// One entry per manifest VM, in manifest order.
    pub vms: Vec<VmOutcome>,
    /// One entry per manifest link, in manifest order: `None` until its
    /// `link` record arrived.
    pub links: Vec<Option<LinkOutcome>>,
    /// The ends of each manifest link (`vm.port`), to check records against.
    link_ends: Vec<(String, String)>,
    /// Links made while a service run ran, by number (numbered after the
    /// manifest's), from their `link` records.
    pub made_links: BTreeMap<u32, LinkOutcome>,
    /// From the `window` record, once it arrived.
    pub window: Option<Window>,
    /// From the `nic-window` record, once it arrived.
    pub nic_window: Option<NicWindow>,
    /// From the `paging` record, once it arrived.
    pub paging: Option<Paging>,
    /// From `nic` and `nic-port` records, by NIC index.
    pub nics: Vec<NicOutcome>,
    /// From `hook`, `hook-map` and `hook-entry` records, by hook index.
    pub hooks: Vec<HookOutcome>,
    /// From `block` and `block-data` records, by block index.
    pub blocks: Vec<BlockOutcome>,
    /// Records that could not be used (malformed, or naming no such VM).
    pub warnings: Vec<String>,
}

/// Most VMs a run may start beyond its manifest's, as records go (a record
/// naming a VM further on is refused with a warning).
const MAX_RUNTIME_VMS: usize = 1 << 20;
/// Most links made at runtime a report keeps (a record naming more is
/// refused with a warning).
const MAX_MADE_LINK_RECORDS: usize = 1 << 16;

impl RunOutcome {
    /// The state before any record, for a manifest of `vm_count` VMs.
    pub fn new(vm_count: usize) -> Self {
        RunOutcome {
            vms: vec![VmOutcome::default(); vm_count],
            ..RunOutcome::default()
        }
    }

    /// The state before any record, for `manifest`'s VMs and links.
    pub fn for_manifest(manifest: &Manifest) -> Self {
        RunOutcome::new(manifest.vms.len()).with_links(
            manifest
                .links
                .iter()
                .map(|l| (l.a.to_string(), l.b.to_string()))
                .collect(),
        )
    }

    /// The same outcome for a manifest whose links join these ends
    /// (`vm.port`, in manifest order); `link` records are checked against
    /// them.
    pub fn with_links(mut self, ends: Vec<(String, String)>) -> Self {
        self.links = vec![None; ends.len()];
        self.link_ends = ends;
        self
    }

    /// Whether the hypervisor has said its last word (`done` or `fatal`).
    pub fn finished(&self) -> bool {
        self.done || self.fatal.is_some()
    }

    fn vm_mut(&mut self, vm: u32, kind: &str) -> Option<&mut VmOutcome> {
        let count = self.vms.len();
        if (vm as usize) < count {
            self.vms.get_mut(vm as usize)
        } else {
            self.warnings.push(format!(
                "`{kind}` record names vm {vm}, but the manifest has {count}"
            ));
            None
        }
    }

    fn nic_mut(&mut self, nic: u32, kind: &str) -> Option<&mut NicOutcome> {
        if nic >= MAX_NIC_RECORDS {
            self.warnings.push(format!(
                "`{kind}` record names nic {nic}, beyond the {MAX_NIC_RECORDS} a run can have"
            ));
            return None;
        }
        let i = nic as usize;
        if self.nics.len() <= i {
            self.nics.resize(i + 1, NicOutcome::default());
        }
        self.nics.get_mut(i)
    }

    fn block_mut(&mut self, block: u32, kind: &str) -> Option<&mut BlockOutcome> {
        if block >= MAX_BLOCK_RECORDS {
            self.warnings.push(format!(
                "`{kind}` record names block {block}, beyond the {MAX_BLOCK_RECORDS} a run can have"
            ));
            return None;
        }
        let i = block as usize;
        if self.blocks.len() <= i {
            self.blocks.resize(i + 1, BlockOutcome::default());
        }
        self.blocks.get_mut(i)
    }

    fn hook_mut(&mut self, hook: u32, kind: &str) -> Option<&mut HookOutcome> {
        if hook >= MAX_HOOK_RECORDS {
            self.warnings.push(format!(
                "`{kind}` record names hook {hook}, beyond the {MAX_HOOK_RECORDS} a run can have"
            ));
            return None;
        }
        let i = hook as usize;
        if self.hooks.len() <= i {
            self.hooks.resize(i + 1, HookOutcome::default());
        }
        self.hooks.get_mut(i)
    }

    fn hook_map_mut(&mut self, hook: u32, map: u32, kind: &str) -> Option<&mut HookMapOutcome> {
        if map >= MAX_HOOK_MAP_RECORDS {
            self.warnings.push(format!(
                "`{kind}` record names map {map} of hook {hook}, beyond the {MAX_HOOK_MAP_RECORDS} a hook can have"
            ));
            return None;
        }
        let h = self.hook_mut(hook, kind)?;
        let i = map as usize;
        if h.maps.len() <= i {
            h.maps.resize(i + 1, HookMapOutcome::default());
        }
        h.maps.get_mut(i)
    }

    /// Takes one record into account.
    pub fn apply(&mut self, record: &Record<'_>) {
        let kind = record.kind();
        match *record {
            Record::Hypervisor { abi, cores, free } => {
                if abi != vmm_abi::ABI_VERSION {
                    self.warnings.push(format!(
                        "hypervisor speaks ABI {abi}, this tool {}",
                        vmm_abi::ABI_VERSION
                    ));
                }
                self.hypervisor = Some(HypervisorInfo { abi, cores, free });
            }
            Record::Fatal { reason } => self.fatal = Some(reason.to_string()),
            Record::VmStart {
                vm,
                core,
                apic,
                name,
                entry,
                image,
                ..
            } => {
                // A VM started at runtime (ids go on from the manifest's)
                // gets its entry here.
                let i = vm as usize;
                if i >= self.vms.len() && i < self.vms.len() + MAX_RUNTIME_VMS {
                    self.vms.resize(i + 1, VmOutcome::default());
                }
                if let Some(v) = self.vm_mut(vm, kind) {
                    v.started = true;
                    v.placement = Some((core, apic));
                    v.started_as = Some((name.to_string(), entry.to_string(), image.to_string()));
                }
            }
            Record::VmRestart {
                vm,
                attempt,
                reason,
            } => {
                if let Some(v) = self.vm_mut(vm, kind) {
                    v.restarts = v.restarts.max(attempt);
                    v.restart_reasons.push(reason.to_string());
                }
            }
            Record::Metric { vm, name, value } => {
                if let Some(v) = self.vm_mut(vm, kind) {
                    v.metrics.insert(name.to_string(), value);
                }
            }
            Record::VmEnd {
                vm,
                status,
                code,
                boot,
                restarts,
                slices,
                private,
                shared,
                overhead,
                exits,
                console,
                console_dropped,
                reason,
            } => {
                if let Some(v) = self.vm_mut(vm, kind) {
                    v.console = ConsoleUse {
                        bytes: console,
                        dropped: console_dropped,
                    };
                    v.status = status;
                    v.code = code;
                    v.boot = boot;
                    v.restarts = restarts;
                    v.slices = slices;
                    v.memory = MemoryUse {
                        private,
                        shared,
                        overhead,
                    };
                    v.exits = exits;
                    v.reason = reason.to_string();
                }
            }
            Record::VmProgress {
                vm,
                boot,
                restarts,
                slices,
                exits,
                console,
                console_dropped,
            } => {
                // Only a VM still running takes it: what it did so far, in
                // case the run ends before it does.
                if let Some(v) = self.vm_mut(vm, kind)
                    && !v.ended()
                {
                    v.boot = boot;
                    v.restarts = v.restarts.max(restarts);
                    v.slices = slices;
                    v.exits = exits;
                    v.console = ConsoleUse {
                        bytes: console,
                        dropped: console_dropped,
                    };
                }
            }
            Record::Link {
                link,
                a,
                b,
                core,
                ab,
                ba,
                busy,
            } => {
                let (a, b) = (a.to_string(), b.to_string());
                let made = LinkOutcome {
                    a: a.clone(),
                    b: b.clone(),
                    core,
                    ab,
                    ba,
                    busy,
                };
                let Some(slot) = self.links.get_mut(link as usize) else {
                    // A link made while the host ran.
                    if self.made_links.len() >= MAX_MADE_LINK_RECORDS
                        && !self.made_links.contains_key(&link)
                    {
                        self.warnings.push(format!(
                            "`{kind}` record names link {link}: more than {MAX_MADE_LINK_RECORDS} links made at runtime"
                        ));
                        return;
                    }
                    self.made_links.insert(link, made);
                    return;
                };
                *slot = Some(made);
                if let Some((want_a, want_b)) = self.link_ends.get(link as usize)
                    && (want_a != &a || want_b != &b)
                {
                    self.warnings.push(format!(
                        "`{kind}` record for link {link} joins {a} <-> {b}, but the manifest says {want_a} <-> {want_b}"
                    ));
                }
            }
            Record::Nic {
                nic,
                name,
                core,
                wire,
            } => {
                if let Some(n) = self.nic_mut(nic, kind) {
                    n.name = name.to_string();
                    n.core = core;
                    n.wire = Some(wire);
                }
            }
            Record::NicPort { nic, port, flow } => {
                if let Some(n) = self.nic_mut(nic, kind) {
                    n.ports.push((port.to_string(), flow));
                }
            }
            Record::Hook {
                hook,
                name,
                link,
                dir,
                engine,
                flow,
            } => {
                if let Some(h) = self.hook_mut(hook, kind) {
                    h.name = name.to_string();
                    h.link = link;
                    h.dir = dir.to_string();
                    h.engine = engine.to_string();
                    h.flow = Some(flow);
                }
            }
            Record::VmHook {
                hook,
                name,
                kind: hook_kind,
                vm,
                engine,
                flow,
            } => {
                if let Some(h) = self.hook_mut(hook, kind) {
                    h.name = name.to_string();
                    h.engine = engine.to_string();
                    h.vm_flow = Some((vm.to_string(), flow));
                    h.vm_kind = vmm_abi::hook::HookKind::ALL
                        .into_iter()
                        .find(|k| k.name() == hook_kind);
                }
            }
            Record::HookMap {
                hook,
                map,
                kind: map_kind,
                entries,
                nonzero,
                shown,
            } => {
                if let Some(m) = self.hook_map_mut(hook, map, kind) {
                    m.kind = map_kind.to_string();
                    m.entries = entries;
                    m.nonzero = nonzero;
                    m.shown = shown;
                }
            }
            Record::HookEntry {
                hook,
                map,
                core,
                key,
                value,
            } => {
                if let Some(m) = self.hook_map_mut(hook, map, kind) {
                    m.values.push((core, key.to_string(), value.to_string()));
                }
            }
            Record::Window {
                frames,
                exits,
                busy,
            } => {
                self.window = Some(Window {
                    frames,
                    exits,
                    busy,
                });
            }
            Record::NicWindow {
                nic: _,
                frames,
                exits,
                rx_busy,
                tx_frames,
                tx_busy,
            } => {
                self.nic_window = Some(NicWindow {
                    frames,
                    exits,
                    rx_busy,
                    tx_frames,
                    tx_busy,
                });
            }
            Record::Paging {
                exec,
                writable,
                writable_exec,
            } => {
                self.paging = Some(Paging {
                    exec,
                    writable,
                    writable_exec,
                });
            }
            Record::Block {
                block,
                name,
                vm,
                device,
                capacity,
                block_size,
                flow,
                dirty,
            } => {
                if let Some(b) = self.block_mut(block, kind) {
                    b.name = name.to_string();
                    b.vm = vm;
                    b.device = device.to_string();
                    b.capacity = capacity;
                    b.block_size = block_size;
                    b.flow = Some(flow);
                    b.dirty = dirty;
                }
            }
            Record::BlockData {
                block,
                offset,
                len,
                data,
            } => {
                let bytes: Vec<u8> = data.bytes().collect();
                if bytes.len() == len as usize {
                    if let Some(b) = self.block_mut(block, kind) {
                        b.data.push((offset, bytes));
                    }
                } else {
                    self.warnings.push(format!(
                        "`{kind}` record for block {block} at offset {offset}: `data` is not {len} bytes"
                    ));
                }
            }
            Record::Done { .. } => self.done = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_abi::report::parse_line;

    fn feed(run: &mut RunOutcome, line: &str) {
        run.apply(&parse_line(line).unwrap().unwrap());
    }

    #[test]
    fn a_vm_that_never_ended_keeps_what_it_did() {
        let mut run = RunOutcome::new(1);
        feed(
            &mut run,
            "@corral vm-start vm=0 name=a entry=a image=spin core=0 apic=0 memory=262144",
        );
        feed(
            &mut run,
            "@corral vm-progress vm=0 boot=52000 restarts=1 slices=40 exits=vmcall:9,preemption_timer:30 console=300 console_dropped=7",
        );
        let a = &run.vms[0];
        assert_eq!(a.status, VmStatus::Running);
        assert_eq!((a.boot, a.slices, a.restarts), (52_000, 40, 1));
        assert_eq!(a.exits_total(), 39);
        assert_eq!(
            a.console,
            ConsoleUse {
                bytes: 300,
                dropped: 7
            }
        );
        // Its end wins over any progress record that comes after.
        feed(
            &mut run,
            "@corral vm-end vm=0 status=killed code=0 boot=52000 restarts=1 slices=41 private=0 shared=0 overhead=0 exits=vmcall:10 console=310 console_dropped=7 reason=instruction budget of 5 exhausted",
        );
        feed(
            &mut run,
            "@corral vm-progress vm=0 boot=1 restarts=0 slices=1 exits=vmcall:1 console=0 console_dropped=0",
        );
        let a = &run.vms[0];
        assert_eq!((a.slices, a.exits_total(), a.console.bytes), (41, 10, 310));
        assert!(run.warnings.is_empty());
    }

    #[test]
    fn records_build_the_outcome() {
        let mut run = RunOutcome::new(2);
        let abi = vmm_abi::ABI_VERSION;
        feed(
            &mut run,
            &format!("@corral hv abi={abi} cores=4 free=264241152"),
        );
        feed(
            &mut run,
            "@corral vm-start vm=0 name=a entry=a image=hello core=2 apic=4 memory=262144",
        );
        feed(&mut run, "@corral metric vm=0 name=x value=7");
        feed(
            &mut run,
            "@corral vm-restart vm=0 attempt=1 reason=triple fault at rip 0x10003d",
        );
        assert_eq!(run.vms[0].restarts, 1);
        feed(
            &mut run,
            "@corral vm-start vm=0 name=a entry=a image=hello core=3 apic=6 memory=262144",
        );
        feed(
            &mut run,
            "@corral vm-end vm=0 status=exited code=3 boot=99 restarts=1 slices=5 private=241664 shared=20480 overhead=24576 exits=vmcall:4,cpuid:1 console=0 console_dropped=0 reason=exited with code 3",
        );
        assert!(!run.finished());
        feed(&mut run, "@corral done vms=2");
        assert!(run.finished());
        assert_eq!(
            run.hypervisor,
            Some(HypervisorInfo {
                abi,
                cores: 4,
                free: 264_241_152
            })
        );
        let a = &run.vms[0];
        assert!(a.started && a.ended());
        assert_eq!(a.placement, Some((3, 6)));
        assert_eq!((a.restarts, a.slices), (1, 5));
        assert_eq!(a.restart_reasons, ["triple fault at rip 0x10003d"]);
        assert_eq!(
            a.memory,
            MemoryUse {
                private: 241_664,
                shared: 20_480,
                overhead: 24_576
            }
        );
        assert_eq!(a.status, VmStatus::Exited);
        assert_eq!(a.exit_code(), Some(3));
        assert_eq!(a.boot, 99);
        assert_eq!(a.exits_total(), 5);
        assert_eq!(a.exit_map().get("vmcall"), Some(&4));
        assert_eq!(a.exit_map().len(), 2);
        assert_eq!(a.metrics.get("x"), Some(&7));
        assert_eq!(run.vms[1].status, VmStatus::Running);
        assert!(!run.vms[1].ended() && run.vms[1].placement.is_none());
        assert_eq!(run.vms[1].exit_code(), None);
        assert!(run.warnings.is_empty());
    }

    #[test]
    fn bad_indices_and_abi_are_warned_about() {
        let mut run = RunOutcome::new(1);
        feed(&mut run, "@corral hv abi=99 cores=1 free=0");
        feed(&mut run, "@corral metric vm=5 name=x value=7");
        feed(&mut run, "@corral vm-restart vm=1 attempt=1 reason=x");
        assert_eq!(run.warnings.len(), 3);
        feed(&mut run, "@corral fatal reason=CPU lacks VMX");
        assert_eq!(run.fatal.as_deref(), Some("CPU lacks VMX"));
        assert!(run.finished());
    }

    const LINK0: &str = "@corral link link=0 a=gen.0 b=fw.0 core=0 ab_frames=90 ab_bytes=5760 ab_drop_peer=4 ab_drop_size=6 ab_drop_stalled=0 ab_stalls=0 ba_frames=3 ba_bytes=192 ba_drop_peer=0 ba_drop_size=1 ba_drop_stalled=0 ba_stalls=0 busy=27900";

    #[test]
    fn links_and_the_window_are_recorded() {
        let ends = vec![
            ("gen.0".to_string(), "fw.0".to_string()),
            ("fw.1".to_string(), "sink.0".to_string()),
        ];
        let mut run = RunOutcome::new(3).with_links(ends);
        assert_eq!(run.links, [None, None]);
        feed(&mut run, LINK0);
        feed(&mut run, "@corral window frames=50 exits=2 busy=15000");
        let link = run.links[0].as_ref().unwrap();
        assert_eq!(
            (link.a.as_str(), link.b.as_str(), link.core),
            ("gen.0", "fw.0", 0)
        );
        assert_eq!(
            link.ab,
            LinkFlow {
                frames: 90,
                bytes: 5760,
                drop_peer: 4,
                drop_size: 6,
                drop_stalled: 0,
                stalls: 0
            }
        );
        assert_eq!(link.ba.handed(), 4);
        assert_eq!(link.busy, 27_900);
        assert_eq!(run.links[1], None);
        assert_eq!(
            run.window,
            Some(Window {
                frames: 50,
                exits: 2,
                busy: 15_000
            })
        );
        assert!(run.warnings.is_empty(), "{:?}", run.warnings);
    }

    #[test]
    fn link_records_beyond_the_manifests_are_links_made_at_runtime() {
        let mut run = RunOutcome::new(2);
        feed(&mut run, LINK0);
        feed(&mut run, &LINK0.replace("link=0", "link=3"));
        assert!(run.warnings.is_empty(), "{:?}", run.warnings);
        assert_eq!(run.made_links.keys().copied().collect::<Vec<_>>(), [0, 3]);
        assert_eq!(run.made_links[&3].ab.frames, 90);
        // A bound on what a hypervisor can make the report keep.
        for n in 4..(MAX_MADE_LINK_RECORDS as u32 + 3) {
            feed(&mut run, &LINK0.replace("link=0", &format!("link={n}")));
        }
        assert_eq!(run.made_links.len(), MAX_MADE_LINK_RECORDS);
        assert_eq!(run.warnings.len(), 1, "{:?}", run.warnings);
        assert!(run.warnings[0].contains("more than 65536 links made at runtime"));
    }

    #[test]
    fn link_records_that_disagree_with_the_manifest_are_warned_about() {
        let mut run =
            RunOutcome::new(2).with_links(vec![("gen.1".to_string(), "fw.0".to_string())]);
        feed(&mut run, LINK0);
        assert_eq!(
            run.warnings,
            ["`link` record for link 0 joins gen.0 <-> fw.0, but the manifest says gen.1 <-> fw.0"]
        );
        assert!(run.links[0].is_some());
    }
}
