//! The data path on the machine: [`crate::datapath`]'s ports and links in frames that are never freed, polled with the TSC as clock, idle passes feeding the console, records and notices on the serial line.
//!
//! Everything else (port states, the poll loop, pacing, blame, signals,
//! the window) is host-tested logic in `datapath/`; this file only gives
//! it the machine's memory, clock and console, and counts exits per core.

use super::instr;
use super::jit;
use super::memory;
use super::pci::{self, MachineE1000};
use super::percpu::PerCore;
use super::serial;
use crate::control::Name;
use crate::datapath::nic::Wire;
use crate::datapath::poll::{self, PollEnv, Tables};
use crate::datapath::runtime::RuntimeSlot;
use crate::devices::virtio::error::RingError;
use crate::hooks::jit::JitCode;
use crate::hooks::lifecycle::{NO_VM, VmHook};
use crate::hooks::maps::bytes_needed;
use crate::hooks::packet::PacketHook;
use crate::hooks::vm::op::Op;
use crate::hooks::{HookMemory, Program};
use crate::hvt::ring::RingShared;
use crate::mem::raw::RawRam;
use crate::nic::MacAddr;
use crate::nic::pci::{PciAddress, Wanted, resolve};
use spin::Mutex;
use vmm_abi::corral::devices::MAX_NET_PORTS;
use vmm_abi::hook::{HookKind, Insn, MAX_MAPS, MapDef, MapKind};
use vmm_abi::manifest::{
    HookAttach, HookSpec, LinkDir, MAX_NICS, Manifest, NetDeviceSpec, NicDir, NicMode, NicPci,
    PortRef,
};
use vmm_abi::report::{LinkFlow, Record};

/// The run's NICs, by manifest index: set up on the boot core, then each
/// locked by its polling core for the whole run (nobody else touches it
/// until the boot core reports, after every core finished).
static WIRES: [Mutex<Option<Wire<MachineE1000>>>; MAX_NICS as usize] =
    [const { Mutex::new(None) }; MAX_NICS as usize];

/// A NIC the manifest names cannot be used; the details are logged.
const NIC_UNUSABLE: &str = "a NIC of the manifest cannot be used (see the line above)";

/// Finds and sets up every NIC of `manifest` (boot core, before any core
/// polls): each gets the 82540EM its `pci` names (or, for `auto`, the
/// next free one in bus order), its MAC, and is left to its polling core.
pub fn bring_up_nics(manifest: &Manifest<'static>) -> Result<(), &'static str> {
    let count = manifest.nic_count().min(MAX_NICS as usize);
    if count == 0 {
        return Ok(());
    }
    let found = pci::supported();
    let mut wanted = [Wanted::Auto; MAX_NICS as usize];
    for (w, spec) in wanted.iter_mut().zip(manifest.nics()) {
        if let NicPci::At(a) = spec.pci {
            *w = PciAddress::new(a.bus, a.device, a.function).map_or(Wanted::Auto, Wanted::At);
        }
    }
    let mut at = [None; MAX_NICS as usize];
    if let Err((i, e)) = resolve(&found, &wanted[..count], &mut at[..count]) {
        let name = manifest.nic(i).map_or("?", |n| n.name);
        log::error!("nic {name}: {e}");
        return Err(NIC_UNUSABLE);
    }
    for (i, spec) in manifest.nics().take(count).enumerate() {
        let Some(addr) = at[i] else {
            return Err(NIC_UNUSABLE);
        };
        let owned = spec.mode == NicMode::Owned;
        match pci::probe_at(addr, spec.mac.map(MacAddr), owned) {
            Ok(nic) => {
                log::info!(
                    "nic {}: at {addr}, {} mode, polled by core {}",
                    spec.name,
                    spec.mode.name(),
                    spec.core
                );
                *WIRES[i].lock() = Some(Wire::new(nic));
            }
            Err(e) => {
                log::error!("nic {} at {addr}: {e}", spec.name);
                return Err(NIC_UNUSABLE);
            }
        }
    }
    Ok(())
}

pub use crate::datapath::port::{Port, PortEvent, PortInner, PortState, Signals};

/// Instructions a VM's core waits for an owned NIC to let go of the VM's
/// buffers (a polling pass takes far fewer).
const REVOKE_WAIT: u64 = 2_000_000_000;

/// Exits taken on each core (each core adds only to its own).
static EXITS: PerCore = PerCore::new();

/// Counts one exit on core `core`.
#[inline]
pub fn count_exit(core: u32) {
    EXITS.bump(core);
}

/// The VM exits core `core` handled so far.
pub fn exits_on(core: u32) -> u64 {
    EXITS.get(core)
}

/// Tables in frames that are never freed.
struct FrameTables;

impl Tables<'static> for FrameTables {
    fn slice<T: 'static>(
        &mut self,
        n: usize,
        mut init: impl FnMut(usize) -> T,
    ) -> Option<&'static [T]> {
        let made = memory::leak_slice(n, |i| Ok::<T, ()>(init(i)), ());
        made.ok().map(|s| &*s)
    }
}

/// The machine under the polling loop: the TSC, the per-core exit
/// counters, the serial console.
struct Machine;

impl PollEnv for Machine {
    #[inline]
    fn now(&self) -> u64 {
        instr::rdtsc()
    }

    fn exits(&self) -> u64 {
        EXITS.total()
    }

    #[inline]
    fn idle(&self) {
        // An idle pass: feed the console while nothing moves.
        serial::pump();
        core::hint::spin_loop();
    }

    #[cold]
    fn first_stall(&self, link: usize, end: char, hold: u64) {
        log::warn!(
            "link {link}: its end {end} stalled: no receive buffer for {hold} instructions while frames waited; frames for it are dropped (drop_stalled) until it posts one (later stalls of this end are only counted)",
        );
    }

    fn record(&self, record: &Record<'_>) {
        serial::record(record);
    }

    #[cold]
    fn nic_failed(&self, nic: usize, error: crate::nic::NicError) {
        log::error!("nic {nic}: the driver failed: {error}; the NIC is left alone from now on");
    }
}

/// No memory for a hook's program, maps or table.
const HOOK_MEMORY: &str = "no memory for the hooks";
/// A hook could not be built (the details are logged).
const HOOK_UNUSABLE: &str = "a hook of the manifest cannot be built (see the line above)";

/// What `bpf_ktime_get_ns` returns: the TSC (under the emulator, one tick
/// per instruction; not calibrated to nanoseconds).
fn hook_clock() -> u64 {
    instr::rdtsc()
}

/// A hook's program copied into frames never freed, room for its
/// decoded form, its map table and an arena for its maps (sized for
/// `cores` cores); `None` (logged) if it cannot be built.
struct HookParts {
    insns: &'static [Insn],
    ops: &'static mut [Op],
    defs: [MapDef; MAX_MAPS],
    count: usize,
    arena: &'static mut [u8],
}

impl HookParts {
    fn new(spec: &HookSpec<'static>, cores: u32) -> Result<Self, &'static str> {
        let mut code = spec.insns();
        let insns = memory::leak_slice(
            spec.insn_count(),
            |_| code.next().ok_or(HOOK_UNUSABLE),
            HOOK_MEMORY,
        )?;
        let mut defs = [MapDef {
            kind: MapKind::Array,
            key_size: 4,
            value_size: 4,
            max_entries: 1,
        }; MAX_MAPS];
        let mut count = 0;
        for (slot, def) in defs.iter_mut().zip(spec.map_defs()) {
            *slot = def;
            count += 1;
        }
        let bytes = bytes_needed(&defs[..count], cores).map_err(|e| hook_failed(spec, &e))?;
        let arena = memory::leak_slice(bytes, |_| Ok(0u8), HOOK_MEMORY)?;
        let ops = memory::leak_slice(insns.len(), |_| Ok(Op::default()), HOOK_MEMORY)?;
        Ok(HookParts {
            insns,
            ops,
            defs,
            count,
            arena,
        })
    }
}

/// Compiles `spec`'s program into the JIT's code area unless the
/// manifest asks for the interpreter (or it does not fit, which is
/// logged): which engine runs it.
fn engine(
    spec: &HookSpec<'_>,
    compile_with: impl FnOnce(&dyn Fn(&Program<'static>) -> Option<&'static dyn JitCode>) -> bool,
) -> &'static str {
    if spec.interpret {
        return "interpreted";
    }
    let compiled = compile_with(&|prog| match jit::install(prog) {
        Ok(code) => Some(code),
        Err(e) => {
            log::warn!(
                "hook {}: not compiled ({e}); the interpreter runs it",
                spec.name
            );
            None
        }
    });
    if compiled { "compiled" } else { "interpreted" }
}

#[cold]
fn hook_failed(spec: &HookSpec<'_>, what: &dyn core::fmt::Display) -> &'static str {
    log::error!("hook {}: {what}", spec.name);
    HOOK_UNUSABLE
}

/// Builds every packet hook of `manifest` (boot core, before any core
/// polls), on a link or a NIC queue: its program verified again, its maps
/// in an arena of their own (per-core arrays sized for cores up to its
/// polling core, the only core it runs on).
fn build_packet_hooks(
    manifest: &Manifest<'static>,
) -> Result<&'static [PacketHook<'static>], &'static str> {
    let packet =
        |h: &HookSpec<'_>| matches!(h.attach, HookAttach::Link { .. } | HookAttach::Nic { .. });
    let count = manifest.hooks().filter(packet).count();
    let mut specs = manifest
        .hooks()
        .enumerate()
        .filter(|(_, h)| packet(h))
        .map(|(i, h)| (i as u32, h));
    let hooks = memory::leak_slice(
        count,
        |_| {
            let (index, spec) = specs.next().ok_or(HOOK_UNUSABLE)?;
            // The core that polls its link or NIC, the only core it runs on.
            let core = match spec.attach {
                HookAttach::Link { link, .. } => {
                    manifest.links().nth(link as usize).map_or(0, |l| l.core)
                }
                HookAttach::Nic { nic, .. } => manifest.nic(nic as usize).map_or(0, |n| n.core),
                HookAttach::Vm { .. } | HookAttach::Core { .. } => 0,
            };
            let parts = HookParts::new(&spec, core + 1)?;
            let defs = &parts.defs[..parts.count];
            let hook = PacketHook::new(
                spec.name,
                spec.attach,
                core,
                parts.insns,
                defs,
                HookMemory {
                    arena: parts.arena,
                    ops: parts.ops,
                },
                hook_clock,
            )
            .map_err(|e| hook_failed(&spec, &e))?
            .at_index(index);
            let engine = engine(&spec, |c| hook.compile_with(c));
            log::info!(
                "hook {}: {} instructions, {} maps, on {:?} (core {core}), {engine}",
                spec.name,
                spec.insn_count(),
                parts.count,
                spec.attach
            );
            Ok(hook)
        },
        HOOK_MEMORY,
    )?;
    Ok(hooks)
}

/// Builds every restart and exit hook of `manifest` (boot core): as
/// [`build_packet_hooks`], with per-core arrays for `cores` cores (the
/// VM's clones may run on any of them).
fn build_vm_hooks(
    manifest: &Manifest<'static>,
    cores: u32,
) -> Result<&'static [VmHook<'static>], &'static str> {
    let count = manifest
        .hooks()
        .filter(|h| matches!(h.attach, HookAttach::Vm { .. } | HookAttach::Core { .. }))
        .count();
    let mut specs = manifest
        .hooks()
        .enumerate()
        .filter_map(|(i, h)| match h.attach {
            HookAttach::Vm { vm } => Some((i as u32, h, vm, None)),
            HookAttach::Core { core } => Some((i as u32, h, NO_VM, Some(core))),
            HookAttach::Link { .. } | HookAttach::Nic { .. } => None,
        });
    let hooks = memory::leak_slice(
        count,
        |_| {
            let (index, spec, vm, core) = specs.next().ok_or(HOOK_UNUSABLE)?;
            let parts = HookParts::new(&spec, cores)?;
            let defs = &parts.defs[..parts.count];
            let hook = VmHook::new(
                spec.name,
                index,
                spec.kind,
                vm,
                cores,
                parts.insns,
                defs,
                HookMemory {
                    arena: parts.arena,
                    ops: parts.ops,
                },
                hook_clock,
            )
            .map_err(|e| hook_failed(&spec, &e))?;
            let hook = match core {
                Some(c) => hook.on_core(c),
                None => hook,
            };
            let engine = engine(&spec, |c| hook.compile_with(c));
            log::info!(
                "hook {}: {} hook, {} instructions, {} maps, on {} {}, {engine}",
                spec.name,
                spec.kind.name(),
                spec.insn_count(),
                parts.count,
                if core.is_some() { "core" } else { "vm" },
                match core {
                    Some(c) => CoreLabel::of(c),
                    None => CoreLabel::name(manifest.get(vm as usize).map_or("?", |v| v.name)),
                }
            );
            Ok(hook)
        },
        HOOK_MEMORY,
    )?;
    Ok(hooks)
}

/// Every port, link and signal of the run ([`poll::Net`] on the machine),
/// the restart and exit hooks of its VMs, and the manifest (for the Solo5
/// names of hvt VMs' ports).
pub struct Net(
    poll::Net<'static>,
    &'static [VmHook<'static>],
    Manifest<'static>,
);

impl Net {
    /// Builds the ports of every VM, the links between them, the packet
    /// hooks on them and the VMs' restart and exit hooks (per-core maps
    /// for `cores` cores).
    pub fn build(
        manifest: &Manifest<'static>,
        cores: u32,
        runtime_places: usize,
    ) -> Result<Net, &'static str> {
        // Places for VMs started at runtime come after the manifest's VMs.
        let mut net = poll::Net::build(
            &mut FrameTables,
            manifest.len() + runtime_places,
            // A place for a VM started at runtime has every port a VM may
            // have (its memory is set when a VM is created there).
            |i| {
                manifest
                    .get(i)
                    .map_or((MAX_NET_PORTS, 0), |s| (s.net_ports, s.memory))
            },
            manifest.links(),
            manifest.link_count(),
            manifest.nics().map(|n| (n.name, n.core, n.mode)),
            manifest.nic_count(),
        )?;
        net.set_hooks(build_packet_hooks(manifest)?);
        if manifest.service() {
            // Two places per link, then two per NIC, for hooks attached at
            // runtime.
            let places = (manifest.link_count() + manifest.nic_count()) * 2;
            let slots = FrameTables
                .slice(places, |_| RuntimeSlot::default())
                .ok_or("no memory for the runtime hook places")?;
            net.set_runtime(slots);
            // Places for links made while the host runs, polled by the
            // control core.
            let places = FrameTables
                .slice(poll::MAX_MADE_LINKS, |_| poll::LinkPlace::default())
                .ok_or("no memory for the places of links made at runtime")?;
            net.set_made(places, super::service::CONTROL_CORE);
        }
        // A shared net ring per hvt VM with net devices, served by the core
        // polling the first of its named ports that a link reaches. A VM no
        // link reaches gets none (no core would serve it, and its guest
        // would wait on it for ever): it keeps to the hypercalls.
        let first_named = |i: usize, vm: u32| !manifest.net_devices().take(i).any(|e| e.vm == vm);
        let served_by = |vm: u32| {
            manifest
                .net_devices()
                .filter(|d| d.vm == vm)
                .find_map(|d| net.port_core(vm, d.port))
        };
        let ring_vms = || {
            manifest
                .net_devices()
                .enumerate()
                .filter(move |&(i, d)| first_named(i, d.vm))
                .filter_map(|(_, d)| Some((d.vm, served_by(d.vm)?)))
        };
        let mut vms = ring_vms();
        let rings = FrameTables
            .slice(ring_vms().count(), |_| {
                let (vm, core) = vms.next().unwrap_or((u32::MAX, 0));
                poll::RingSlot {
                    vm,
                    core,
                    shared: RingShared::default(),
                }
            })
            .ok_or("no memory for the shared net rings")?;
        net.set_rings(rings);
        Ok(Net(net, build_vm_hooks(manifest, cores)?, *manifest))
    }

    /// Link `link`'s direction `dir`'s place for a runtime hook.
    pub fn runtime_slot(&self, link: u32, dir: LinkDir) -> Option<&'static RuntimeSlot<'static>> {
        self.0.runtime_slot(link, dir)
    }

    /// Whether a manifest hook is on `link`'s direction `dir`.
    pub fn has_manifest_hook(&self, link: u32, dir: LinkDir) -> bool {
        self.0.has_manifest_hook(link, dir)
    }

    /// NIC `nic`'s queue `dir`'s place for a runtime hook (a shared NIC).
    pub fn nic_runtime_slot(&self, nic: u32, dir: NicDir) -> Option<&'static RuntimeSlot<'static>> {
        self.0.nic_runtime_slot(nic, dir)
    }

    /// Whether NIC `nic` exists and is owned.
    pub fn nic_owned(&self, nic: u32) -> bool {
        self.0.nic_owned(nic)
    }

    /// The core polling NIC `nic`.
    pub fn nic_core(&self, nic: u32) -> Option<u32> {
        self.0.nic_core(nic)
    }

    /// Whether a manifest hook is on NIC `nic`'s queue `dir`.
    pub fn has_manifest_nic_hook(&self, nic: u32, dir: NicDir) -> bool {
        self.0.has_manifest_nic_hook(nic, dir)
    }

    /// The core polling link `link`.
    pub fn link_core(&self, link: u32) -> Option<u32> {
        self.0.link_core(link)
    }

    /// Link `link`'s sender's and receiver's ports in direction `dir`.
    pub fn link_ports(&self, link: u32, dir: LinkDir) -> Option<(u32, u32)> {
        self.0.link_ports(link, dir)
    }

    /// The manifest's packet hooks.
    pub fn packet_hooks(&self) -> &'static [PacketHook<'static>] {
        self.0.hooks()
    }

    /// The manifest's restart, exit and slice hooks.
    pub fn vm_hooks(&self) -> &'static [VmHook<'static>] {
        self.1
    }

    /// VM `vm`'s shared net ring, if it is an hvt VM with net devices.
    pub fn ring(&self, vm: u32) -> Option<&'static RingShared> {
        self.0.ring(vm)
    }

    /// The Solo5 device names manifest VM `vm` gives its net ports.
    pub fn device_names(&self, vm: u32) -> impl Iterator<Item = NetDeviceSpec<'static>> {
        self.2.net_devices().filter(move |d| d.vm == vm)
    }

    /// VM `vm`'s hook of `kind` (restart or exit), if it has one.
    pub fn vm_hook(&self, vm: u32, kind: HookKind) -> Option<&'static VmHook<'static>> {
        self.1.iter().find(|h| h.vm == vm && h.kind == kind)
    }

    /// The slice hook for VM `vm` on `core`: its own, else its core's.
    pub fn slice_hook(&self, vm: u32, core: u32) -> Option<&'static VmHook<'static>> {
        self.vm_hook(vm, HookKind::Slice).or_else(|| {
            self.1
                .iter()
                .find(|h| h.core == Some(core) && h.kind == HookKind::Slice)
        })
    }

    /// VM `vm`'s signals.
    pub fn signals(&self, vm: u32) -> &Signals {
        self.0.signals(vm)
    }

    /// Port `port` of VM `vm`, if it has one.
    pub fn port(&self, vm: u32, port: u8) -> Option<&Port> {
        self.0.port(vm, port)
    }

    /// A VM's run begins: its ports get fresh devices over its memory.
    pub fn attach(&self, vm: u32, ports: u8, memory: u64, ram: RawRam) {
        self.0.attach(vm, ports, memory, ram);
    }

    /// A VM's run ended (before its memory is freed): its ports go down,
    /// or away for good.
    /// Returns whether the VM's memory may be freed: `false` if an owned
    /// NIC still holds its buffers after [`REVOKE_WAIT`] instructions (a
    /// NIC that cannot be stopped), and then the memory must be kept out
    /// of the allocator for the rest of the run.
    pub fn detach(&self, vm: u32, ports: u8, for_good: bool) -> bool {
        // Its shared ring first: its polling core stops serving it.
        if let Some((dropped, refused)) = self.0.ring(vm).and_then(RingShared::detach)
            && dropped + refused > 0
        {
            log::warn!(
                "vm {vm}: its shared net ring dropped {dropped} writes that waited {} s for a transmit slot and refused {refused} requests (unknown device or operation, frame too long)",
                crate::hvt::call::RETRY_LIMIT_SECONDS
            );
        }
        self.0.detach(vm, ports, for_good);
        // An owned NIC may still hold the VM's buffers: its polling core
        // revokes them at its next pass (the ports are down now, so none
        // are given again). Only then may the memory go to anyone else.
        let start = instr::rdtsc();
        while self.0.nic_holds(vm) {
            if instr::rdtsc().wrapping_sub(start) > REVOKE_WAIT {
                log::error!(
                    "vm {vm}: an owned NIC still holds its buffers after {REVOKE_WAIT} instructions; its memory is kept out of use for the rest of the run"
                );
                return false;
            }
            serial::pump();
            core::hint::spin_loop();
        }
        true
    }

    /// The first ring fault recorded on VM `vm`'s ports, as (port, error).
    pub fn fault(&self, vm: u32, ports: u8) -> Option<(u8, RingError)> {
        self.0.fault(vm, ports)
    }

    /// Runs `f` on a port's device state (a register access from its VM).
    pub fn with_port<R>(
        &self,
        vm: u32,
        port: u8,
        f: impl FnOnce(&mut PortInner) -> R,
    ) -> Option<R> {
        self.0.with_port(vm, port, f)
    }

    /// Moves frames on `core`'s links until `finished()` says every VM has
    /// ended (see [`poll::Net::poll`]).
    pub fn poll(&self, core: u32, finished: impl Fn() -> bool) {
        // This core's NICs, locked for the whole run (only it polls them).
        let mut guards: heapless::Vec<_, { MAX_NICS as usize }> = heapless::Vec::new();
        for (slot, nic) in WIRES.iter().zip(self.0.nics()) {
            if nic.core() == core {
                // At most MAX_NICS guards.
                let _ = guards.push(slot.lock());
            }
        }
        let mut wires: heapless::Vec<Option<&mut Wire<MachineE1000>>, { MAX_NICS as usize }> =
            heapless::Vec::new();
        for guard in guards.iter_mut() {
            let _ = wires.push(guard.as_mut());
        }
        self.0.poll(core, &Machine, &mut wires, finished);
    }

    /// Prints a `link` record per link and the `window` record, if the
    /// window closed (boot core, after every core finished).
    pub fn report(&self, name_of: impl Fn(u32) -> &'static str) {
        for n in 0..self.0.nic_count() {
            let wire_error = WIRES
                .get(n)
                .and_then(|w| w.lock().as_ref().and_then(|w| w.error));
            if let Some(e) = wire_error.or(self.0.owned_error(n)) {
                log::error!("nic {n}: the driver answered with an error: {e}");
            }
        }
        self.0.report(&Machine, &name_of, |n, flow| {
            let wire = WIRES.get(n).map(|w| w.lock());
            match wire.as_deref() {
                Some(Some(w)) => w.flow(flow),
                _ => flow,
            }
        });
        for hook in self.1 {
            let label = match hook.core {
                Some(c) => CoreLabel::of(c),
                None => CoreLabel::name(name_of(hook.vm)),
            };
            hook.report(label.as_str(), serial::record);
            let f = hook.flow();
            log::info!(
                "hook {}: {} runs: {} allow, {} deny, {} fail, {} bad answers, {} faults, {} instructions",
                hook.name,
                f.runs,
                f.allow,
                f.deny,
                f.fail,
                f.bad,
                f.faults,
                f.insns
            );
        }
        // Hooks still attached at runtime (those that left were reported
        // then), after the manifest's.
        for link in 0..self.0.link_count() as u32 {
            for dir in [LinkDir::AToB, LinkDir::BToA] {
                if let Some(slot) = self.0.runtime_slot(link, dir) {
                    slot.with(|h| h.report(h.index, serial::record));
                }
            }
        }
        for nic in 0..self.0.nic_count() as u32 {
            for dir in [NicDir::Rx, NicDir::Tx] {
                if let Some(slot) = self.0.nic_runtime_slot(nic, dir) {
                    slot.with(|h| h.report(h.index, serial::record));
                }
            }
        }
        for hook in self.0.hooks() {
            hook.report(hook.index, serial::record);
            let f = hook.flow();
            log::info!(
                "hook {}: {} runs: {} pass, {} not passed ({} drop, {} aborted, {} faults, {} tx, {} redirect; {} sent, {} unsent), {} instructions",
                hook.name,
                f.runs,
                f.pass,
                f.dropped(),
                f.drop,
                f.aborted,
                f.faults,
                f.tx,
                f.redirect,
                f.sent,
                f.unsent,
                f.insns
            );
        }
    }

    /// Frames and drops of every link, for the summary.
    pub fn totals(&self) -> LinkFlow {
        self.0.totals()
    }

    /// Number of links.
    pub fn link_count(&self) -> usize {
        self.0.link_count()
    }

    /// Links between VMs, then NICs: the rows of a running host's `stats`.
    pub fn flow_count(&self) -> usize {
        self.0.flow_count()
    }

    /// Row `i` of those, now.
    pub fn flow_now(&self, i: usize) -> Option<poll::FlowNow<'static>> {
        self.0.flow_now(i)
    }

    /// Links two VMs' free ports while the host runs (control core); the
    /// new link, its counters at zero.
    pub fn make_link(&self, a: PortRef, b: PortRef) -> Result<poll::MadeLink, poll::MakeRefusal> {
        let number = self.0.make_link(a, b)?;
        self.0.made_link(number).ok_or(poll::MakeRefusal::NoLink)
    }

    /// Unmakes a link made at runtime (control core) and prints its
    /// `link` record, its VMs named by `names`; its final counters.
    pub fn unmake_link(
        &self,
        a: PortRef,
        b: PortRef,
        names: impl Fn(u32) -> Name,
    ) -> Result<poll::MadeLink, poll::MakeRefusal> {
        let gone = self.0.unmake_link(a, b)?;
        record_made(&gone, &names);
        if gone.kept_buffers > 0 {
            log::warn!(
                "link {}: {} receive buffers it kept could not go back to their rings (a redirect took later ones); they stay taken until the guest resets its ring",
                gone.number,
                gone.kept_buffers
            );
        }
        Ok(gone)
    }

    /// Prints the `link` record of every link made at runtime that is
    /// still there, its VMs named by `names` (boot core, at the end).
    pub fn report_made(&self, names: impl Fn(u32) -> Name) {
        for k in 0..poll::MAX_MADE_LINKS {
            if let Some(m) = self.0.made_now(k) {
                record_made(&m, &names);
            }
        }
    }

    /// Unmakes the links made at runtime that reach VM `vm` (its place
    /// goes to a new VM; control core), printing each one's record.
    pub fn unmake_links_of(&self, vm: u32, names: impl Fn(u32) -> Name) {
        self.0.unmake_links_of(vm, |gone| {
            log::info!(
                "link {}: unmade, as its VM's place goes to a new VM",
                gone.number
            );
            record_made(&gone, &names);
        });
    }
}

/// Prints the `link` record of a link made at runtime, now unmade.
fn record_made(gone: &poll::MadeLink, names: &impl Fn(u32) -> Name) {
    let (na, nb) = (names(gone.a.vm), names(gone.b.vm));
    let name_of = |vm| {
        if vm == gone.a.vm {
            na.as_str()
        } else {
            nb.as_str()
        }
    };
    serial::record(&gone.record(&name_of));
}

/// What a VM hook is attached to, as records and logs name it: a VM's
/// name, or `core:N`.
struct CoreLabel(heapless::String<{ vmm_abi::corral::bootinfo::NAME_MAX + 8 }>);

impl CoreLabel {
    fn of(core: u32) -> Self {
        let mut s = heapless::String::new();
        // "core:" and at most ten digits fit.
        let _ = core::fmt::Write::write_fmt(&mut s, format_args!("core:{core}"));
        CoreLabel(s)
    }

    fn name(name: &str) -> Self {
        let mut s = heapless::String::new();
        let _ = s.push_str(name);
        CoreLabel(s)
    }

    fn as_str(&self) -> &str {
        &self.0
    }
}

impl core::fmt::Display for CoreLabel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}
