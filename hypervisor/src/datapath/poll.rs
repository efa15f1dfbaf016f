//! Every port, link and VM signal of a run, and the polling loop that moves frames across the links: pacing, blame, wakeups, stall notices, counters and the steady-state windows.
//!
//! A polling core runs [`Net::poll`]: for each of its links it locks the
//! link, then port `a`, then port `b` (a VM's core takes one port lock at a
//! time, for its register accesses, so there is no cycle) and pumps both
//! directions, at most [`BATCH`] frames each. When a pump moves frames,
//! both VMs' work flags are set, which ends a `wait_for_work` early. When
//! a ring breaks the rules, its port takes the blame (the peer then sees
//! it as gone) and its VM's fault flag is set; the VM's core stops it at
//! its next exit.
//!
//! What touches the machine comes in through two small traits: [`Tables`]
//! (where the tables live: frames never freed, on the hypervisor) and
//! [`PollEnv`] (the clock, the exit count, what to do on an idle pass,
//! where notices and records go). Tests drive it with fakes of both.

use super::direction::{self, Direction, Hold};
use super::endpoint::{LinkEnd, LinkFault, Receiver, Side};
use super::owned::{Busy, Owned};
use super::policy::PassAll;
use super::port::{Port, PortInner, Signals};
use super::runtime::RuntimeSlot;
use super::switch::{Attached, MAX_SWITCH_PORTS, Switch, WireRx, WireTx};
use crate::devices::virtio::error::RingError;
use crate::devices::virtio::queue::Chain;
use crate::hooks::packet::{BACK_SLOTS, PacketHook};
use crate::hvt::ring::RingShared;
use crate::mem::raw::RawRam;
use crate::nic::ZeroCopy;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use spin::Mutex;
use vmm_abi::corral::devices::port_mac;
use vmm_abi::manifest::{HookAttach, LinkDir, LinkSpec, MAX_NICS, NicDir, NicMode, PortRef};
use vmm_abi::report::{LinkFlow, NicFlow, NicPortFlow, PortName, Record};

/// Most frames one direction moves per pump, so one busy link cannot
/// starve the others on its polling core.
pub const BATCH: u32 = 64;
/// A pass that moved fewer frames than this is a small burst: the link
/// waits [`BURST_WAIT`] before its next pass.
pub const BURST: u32 = BATCH / 2;
/// Instructions a link with a small burst waits before its next pass.
pub const BURST_WAIT: u64 = 10_000;
/// Busy passes (that moved frames) between two calls of
/// [`PollEnv::idle`] anyway.
pub const BUSY_PASSES_PER_IDLE: u32 = 64;
/// Links of one polling core whose bursts are paced (the rest, if any, are
/// passed every time).
pub const MAX_LINKS_PER_CORE: usize = 64;
/// Instructions a frame a link hook redirected to another port waits for
/// that port to be up with a receive buffer before it is given up
/// (`unsent`).
pub const AWAY_HOLD: u64 = 10_000_000;
/// Frames link 0 carries from `a` to `b` before the steady-state window
/// opens (rings filled, every guest past its start-up).
pub const WINDOW_WARMUP: u64 = 256;
/// Frames link 0 carries from `a` to `b` inside the window.
pub const WINDOW_FRAMES: u64 = 1024;
/// In a run without links between VMs: frames from the wire NIC 0 delivers
/// to its ports before its steady-state window opens.
pub const NIC_WINDOW_WARMUP: u64 = 32;
/// Frames from the wire NIC 0 delivers inside its window.
pub const NIC_WINDOW_FRAMES: u64 = 256;

/// Where the data path's tables are made: once, at boot, for the whole run.
pub trait Tables<'t> {
    /// A slice of `n` values made by `init` (in index order), or `None` if
    /// there is no room.
    fn slice<T: 't>(&mut self, n: usize, init: impl FnMut(usize) -> T) -> Option<&'t [T]>;
}

/// What the polling loop needs of the machine it runs on.
pub trait PollEnv {
    /// Now, in TSC ticks (instructions, under the emulator).
    fn now(&self) -> u64;
    /// VM exits taken on every core so far (the window counts them).
    fn exits(&self) -> u64;
    /// A pass moved nothing: a moment to spare (feed the console).
    fn idle(&self);
    /// End `end` (`'a'` or `'b'`) of link `link` was stalled for the first
    /// time: no receive buffer for `hold` ticks while frames waited.
    fn first_stall(&self, link: usize, end: char, hold: u64);
    /// Prints a report record.
    fn record(&self, record: &Record<'_>);
    /// NIC `nic`'s driver failed with `error` (said once; the NIC is left
    /// alone from then on).
    fn nic_failed(&self, nic: usize, error: crate::nic::NicError);
}

/// What a polling core keeps per link.
#[derive(Default)]
struct LinkState {
    ab: Direction,
    ba: Direction,
    busy: u64,
}

/// A link between two VM ports, as this build polls it.
#[derive(Clone, Copy)]
struct VmLink {
    a: PortRef,
    b: PortRef,
    core: u32,
    hold: u64,
}

/// One link: two ports and the core that polls them. A link between a
/// VM port and a NIC is kept in its manifest place (so record indices stay
/// the manifest's) but moves no frames itself: its port is attached to
/// the NIC's switch.
pub struct Link {
    spec: VmLink,
    a: usize,
    b: usize,
    /// The NIC at the other end, for a link to a NIC.
    nic: Option<u32>,
    state: Mutex<LinkState>,
}

impl Link {
    /// Whether this link joins two VM ports (and moves frames itself).
    fn between_vms(&self) -> bool {
        self.nic.is_none()
    }
}

/// One NIC of the run as the data path sees it: the guest ports attached
/// to it and the switch between them and the wire.
pub struct NicSlot<'t> {
    name: &'t str,
    core: u32,
    mode: NicMode,
    /// Indices of the attached ports, in link order.
    ports: heapless::Vec<usize, MAX_SWITCH_PORTS>,
    switch: Mutex<Switch<Chain>>,
    /// The owned mode's pump (its one port).
    owned: Mutex<Owned>,
    /// The NIC holds buffers of its owned port (set under that port's lock).
    holds: AtomicBool,
    /// Its manifest index.
    index: usize,
}

impl NicSlot<'_> {
    /// The core that polls it.
    pub fn core(&self) -> u32 {
        self.core
    }

    /// Its wire's counters (an owned NIC's from its one port's).
    fn wire(&self) -> NicFlow {
        match self.mode {
            NicMode::Owned => {
                let o = self.owned.lock();
                NicFlow {
                    rx_frames: o.flow.rx_frames,
                    rx_bytes: o.flow.rx_bytes,
                    tx_frames: o.flow.tx_frames,
                    tx_bytes: o.flow.tx_bytes,
                    rx_busy: o.busy.rx(),
                    tx_busy: o.busy.tx(),
                    ..NicFlow::default()
                }
            }
            NicMode::Shared => self.switch.lock().wire,
        }
    }

    /// Frames lost on their way in from the wire, and on their way out to
    /// it, for every reason counted (the wire's and its ports').
    fn drops(&self) -> (u64, u64) {
        match self.mode {
            NicMode::Owned => {
                let f = self.owned.lock().flow;
                (
                    f.drop_no_buffer + f.drop_size + f.drop_fault,
                    f.drop_spoofed + f.drop_hook,
                )
            }
            NicMode::Shared => {
                let s = self.switch.lock();
                let w = s.wire;
                let ports = s.ports.iter().map(|p| p.flow);
                let (mut rx, mut tx) = (w.drop_unknown + w.drop_runt + w.drop_hook, 0);
                for f in ports {
                    rx += f.drop_no_buffer + f.drop_peer;
                    tx += f.drop_spoofed + f.drop_hook;
                    // A size or ring-fault drop may be either way; counted in.
                    rx += f.drop_size + f.drop_fault;
                }
                (rx, tx)
            }
        }
    }

    /// Its counters as the steady-state window reads them.
    fn meter(&self) -> NicMeter {
        match self.mode {
            NicMode::Owned => {
                let o = self.owned.lock();
                NicMeter {
                    delivered: o.flow.rx_frames,
                    rx_busy: o.busy.rx(),
                    tx_frames: o.flow.tx_frames,
                    tx_busy: o.busy.tx(),
                    steps: Some(o.busy),
                    exits: 0,
                }
            }
            NicMode::Shared => {
                let s = self.switch.lock();
                NicMeter {
                    delivered: s.ports.iter().map(|p| p.flow.rx_frames).sum(),
                    rx_busy: s.wire.rx_busy,
                    tx_frames: s.wire.tx_frames,
                    tx_busy: s.wire.tx_busy,
                    steps: None,
                    exits: 0,
                }
            }
        }
    }
}

/// What NIC 0's steady-state window counts (at its start, then over it).
#[derive(Clone, Copy, Default)]
struct NicMeter {
    /// Frames from the wire delivered to its ports.
    delivered: u64,
    rx_busy: u64,
    tx_frames: u64,
    tx_busy: u64,
    /// An owned NIC's steps by kind (its busy time is theirs).
    steps: Option<Busy>,
    /// VM exits of every VM.
    exits: u64,
}

impl NicMeter {
    /// The window from `start` to this reading. An owned NIC's busy time
    /// is each kind of step at its average over the window, times the
    /// window's frames ([`Busy::for_frames`]): where its edges cut a
    /// frame's steps apart does not move it.
    fn since(&self, start: &NicMeter) -> NicMeter {
        let delivered = self.delivered.wrapping_sub(start.delivered);
        let tx_frames = self.tx_frames.wrapping_sub(start.tx_frames);
        let (rx_busy, tx_busy) = match (self.steps, start.steps) {
            (Some(now), Some(then)) => now.since(&then).for_frames(delivered, tx_frames),
            _ => (
                self.rx_busy.wrapping_sub(start.rx_busy),
                self.tx_busy.wrapping_sub(start.tx_busy),
            ),
        };
        NicMeter {
            delivered,
            rx_busy,
            tx_frames,
            tx_busy,
            steps: None,
            exits: self.exits.wrapping_sub(start.exits),
        }
    }
}

/// The attached ports of one NIC, as its switch reaches them.
struct NicPorts<'a> {
    ports: &'a [Port],
    list: &'a [usize],
}

impl Attached for NicPorts<'_> {
    type End = PortInner;
    fn with<R>(&self, i: usize, f: impl FnOnce(&mut PortInner) -> R) -> R {
        self.ports[self.list[i]].with(f)
    }

    fn index_of(&self, port: u32) -> Option<usize> {
        self.list.iter().position(|&p| p as u32 == port)
    }
}

/// An owned NIC with other than one guest port linked to it.
pub const NIC_OWNED_ONE_PORT: &str =
    "a NIC in owned mode serves exactly one guest port: link one VM port to it, or use shared mode";

/// Too many guest ports linked to one NIC.
pub const NIC_PORTS_FULL: &str =
    "a NIC has more guest ports linked to it than its switch serves (16)";

/// The steady-state window of link 0.
#[derive(Clone, Copy, Default)]
struct Window {
    start: Option<(u64, u64)>,
    result: Option<(u64, u64)>,
}

/// The steady-state window of NIC 0, in a run without links between VMs.
#[derive(Clone, Copy, Default)]
struct NicWindow {
    start: Option<NicMeter>,
    result: Option<NicMeter>,
}

/// Every port, link and signal of the run.
pub struct Net<'t> {
    ports: &'t [Port],
    /// Per VM: index of its first port.
    first_port: &'t [u32],
    links: &'t [Link],
    nics: &'t [NicSlot<'t>],
    signals: &'t [Signals],
    window: Mutex<Window>,
    nic_window: Mutex<NicWindow>,
    /// The packet hooks, each on one direction of a link between VMs or
    /// of a NIC's queue.
    hooks: &'t [PacketHook<'t>],
    /// Per NIC, the hooks on its receive and transmit queues (looked up
    /// once, when the hooks are attached).
    nic_hooks: [[Option<&'t PacketHook<'t>>; 2]; MAX_NICS as usize],
    /// The Solo5 shared net rings of hvt VMs, each served by one core.
    rings: &'t [RingSlot],
    /// Per link direction (link `i`'s a→b at `2i`, b→a at `2i + 1`), the
    /// place for a hook attached at runtime: service runs only (empty
    /// otherwise, so a batch run pays nothing for it).
    runtime: &'t [RuntimeSlot<'t>],
    /// Places for links made while the host runs (service runs only),
    /// polled by `made_core`.
    made: &'t [LinkPlace],
    made_core: u32,
    /// Links made so far (each numbered after the manifest's links).
    made_count: AtomicU32,
    /// Both directions' counters of the links made and unmade since.
    unmade: Mutex<LinkFlow>,
}

/// An hvt VM's shared net ring and the polling core that serves it.
pub struct RingSlot {
    /// The VM (its manifest index).
    pub vm: u32,
    /// The core that serves it: the one polling the link (or NIC) of the
    /// first of its ports a link reaches.
    pub core: u32,
    /// The ring.
    pub shared: RingShared,
}

impl<'t> Net<'t> {
    /// Builds the ports of `vms` VMs (VM `i` has `vm(i)` = (ports, memory
    /// bytes)) and the `link_count` links `links` (checked against the VMs
    /// already, by the manifest), and the `nic_count` NICs `nics` (name,
    /// polling core, mode) whose links attach guest ports to them, in
    /// `tables`.
    pub fn build(
        tables: &mut impl Tables<'t>,
        vms: usize,
        vm: impl Fn(usize) -> (u8, u64),
        links: impl Iterator<Item = LinkSpec>,
        link_count: usize,
        nics: impl Iterator<Item = (&'t str, u32, NicMode)>,
        nic_count: usize,
    ) -> Result<Self, &'static str> {
        let mut total = 0u32;
        let first_port = tables
            .slice(vms, |i| {
                let first = total;
                total += u32::from(vm(i).0);
                first
            })
            .ok_or("no memory for the port table")?;
        let mut owner = 0u32;
        let ports = tables
            .slice(total as usize, |p| {
                while owner as usize + 1 < vms && first_port[owner as usize + 1] as usize <= p {
                    owner += 1;
                }
                let port = (p - first_port[owner as usize] as usize) as u8;
                Port::new(owner, port, vm(owner as usize).1)
            })
            .ok_or("no memory for the ports")?;
        let mut specs = links;
        let index = |p: PortRef| (first_port[p.vm as usize] + u32::from(p.port)) as usize;
        // Per NIC: the ports linked to it, in link order.
        let mut attached: [heapless::Vec<(usize, PortRef, bool), MAX_SWITCH_PORTS>;
            MAX_NICS as usize] = Default::default();
        let mut overflow = false;
        let links = tables
            .slice(link_count, |_| {
                let none = PortRef { vm: 0, port: 0 };
                let Some(spec) = specs.next() else {
                    return Link {
                        spec: VmLink {
                            a: none,
                            b: none,
                            core: 0,
                            hold: 0,
                        },
                        a: 0,
                        b: 0,
                        nic: None,
                        state: Mutex::new(LinkState::default()),
                    };
                };
                let (a, b, nic) = match (spec.a.vm_port(), spec.b.vm_port()) {
                    (Some(a), Some(b)) => (a, b, None),
                    (Some(p), None) => (p, p, spec.b.nic()),
                    (None, Some(p)) => (p, p, spec.a.nic()),
                    // Refused by the manifest's checks.
                    (None, None) => (none, none, None),
                };
                if let Some(n) = nic {
                    let pushed = attached
                        .get_mut(n as usize)
                        .is_some_and(|list| list.push((index(a), a, spec.bridge)).is_ok());
                    overflow |= !pushed;
                }
                Link {
                    spec: VmLink {
                        a,
                        b,
                        core: spec.core,
                        hold: spec.hold,
                    },
                    a: index(a),
                    b: index(b),
                    nic,
                    state: Mutex::new(LinkState::default()),
                }
            })
            .ok_or("no memory for the links")?;
        if overflow {
            return Err(NIC_PORTS_FULL);
        }
        let mut nic_specs = nics;
        let mut owned_wrong = false;
        let nics = tables
            .slice(nic_count.min(MAX_NICS as usize), |i| {
                let (name, core, mode) = nic_specs.next().unwrap_or(("", 0, NicMode::Shared));
                owned_wrong |= mode == NicMode::Owned && attached[i].len() != 1;
                let mut switch = Switch::default();
                let mut ports = heapless::Vec::new();
                for &(port, p, bridge) in &attached[i] {
                    // Both lists hold at most MAX_SWITCH_PORTS.
                    let _ = ports.push(port);
                    switch.attach(port_mac(p.vm, p.port), bridge);
                }
                NicSlot {
                    name,
                    core,
                    mode,
                    ports,
                    switch: Mutex::new(switch),
                    owned: Mutex::new(Owned::default()),
                    holds: AtomicBool::new(false),
                    index: i,
                }
            })
            .ok_or("no memory for the NICs")?;
        if owned_wrong {
            return Err(NIC_OWNED_ONE_PORT);
        }
        let signals = tables
            .slice(vms, |_| Signals::default())
            .ok_or("no memory for the VM signals")?;
        Ok(Net {
            ports,
            first_port,
            links,
            nics,
            signals,
            window: Mutex::new(Window::default()),
            nic_window: Mutex::new(NicWindow::default()),
            hooks: &[],
            nic_hooks: [[None; 2]; MAX_NICS as usize],
            rings: &[],
            runtime: &[],
            made: &[],
            made_core: 0,
            made_count: AtomicU32::new(0),
            unmade: Mutex::new(LinkFlow::default()),
        })
    }

    /// The core polling port `port` of VM `vm` (its link's, or its NIC's),
    /// if a link reaches it.
    pub fn port_core(&self, vm: u32, port: u8) -> Option<u32> {
        let p = PortRef { vm, port };
        let link = self.links.iter().find(|l| l.spec.a == p || l.spec.b == p)?;
        match link.nic {
            None => Some(link.spec.core),
            Some(n) => self.nics.get(n as usize).map(|nic| nic.core),
        }
    }

    /// Sets the shared net rings of the run's hvt VMs (one per VM at
    /// most, each with the core [`Net::port_core`] gives its first port).
    pub fn set_rings(&mut self, rings: &'t [RingSlot]) {
        self.rings = rings;
    }

    /// VM `vm`'s shared net ring, if it has one.
    pub fn ring(&self, vm: u32) -> Option<&'t RingShared> {
        self.rings.iter().find(|r| r.vm == vm).map(|r| &r.shared)
    }

    /// One pass of `slot`'s ring on its core; returns the requests served.
    /// A ring that broke the rules blames its VM's first port, which stops
    /// the VM at its next exit with the ring's error.
    fn service_ring(&self, slot: &RingSlot, env: &impl PollEnv) -> u32 {
        let Some(pass) = slot.shared.service(env.now(), BATCH) else {
            return 0;
        };
        let served = pass.sent + pass.reads + pass.refused + pass.dropped;
        if let Some(e) = pass.fault {
            if let Some(p) = self.port(slot.vm, 0) {
                p.with(|inner| inner.blame(e));
            }
            self.signals[slot.vm as usize]
                .fault
                .store(true, Ordering::Release);
            self.wake(slot.vm);
        } else if served > 0 {
            self.wake(slot.vm);
        }
        served
    }

    /// Attaches packet hooks (each on a direction of a link between VMs
    /// or of a shared NIC's queue, checked by the manifest); one on a link
    /// sees the sender's port index as `ingress_ifindex`.
    pub fn set_hooks(&mut self, hooks: &'t [PacketHook<'t>]) {
        for h in hooks {
            let (link, dir) = match h.attach {
                HookAttach::Link { link, dir } => (link, dir),
                HookAttach::Nic { nic, dir } => {
                    if let Some(slot) = self.nic_hooks.get_mut(nic as usize) {
                        slot[dir as usize] = Some(h);
                    }
                    continue;
                }
                HookAttach::Vm { .. } | HookAttach::Core { .. } => continue,
            };
            if let Some(link) = self.links.get(link as usize) {
                let (from, to) = match dir {
                    LinkDir::AToB => (link.a, link.b),
                    LinkDir::BToA => (link.b, link.a),
                };
                h.set_ports(from as u32, to as u32);
            }
        }
        self.hooks = hooks;
    }

    /// Gives every link direction and every NIC queue a place for a hook
    /// attached at runtime (a service run): `slots` holds two per link,
    /// then two per NIC.
    pub fn set_runtime(&mut self, slots: &'t [RuntimeSlot<'t>]) {
        self.runtime = slots;
    }

    /// NIC `nic`'s queue `dir`'s place for a runtime hook, if it is a
    /// shared NIC (an owned one has no hook point) and the run has such
    /// places.
    pub fn nic_runtime_slot(&self, nic: u32, dir: NicDir) -> Option<&'t RuntimeSlot<'t>> {
        let n = self.nics.get(nic as usize)?;
        if n.mode != NicMode::Shared {
            return None;
        }
        let at = (self.links.len() + nic as usize) * 2 + dir as usize;
        self.runtime.get(at)
    }

    /// Whether NIC `nic` exists and is owned.
    pub fn nic_owned(&self, nic: u32) -> bool {
        self.nics
            .get(nic as usize)
            .is_some_and(|n| n.mode == NicMode::Owned)
    }

    /// The core polling NIC `nic`.
    pub fn nic_core(&self, nic: u32) -> Option<u32> {
        self.nics.get(nic as usize).map(|n| n.core)
    }

    /// Whether NIC `nic`'s queue `dir` has a hook from the manifest.
    pub fn has_manifest_nic_hook(&self, nic: u32, dir: NicDir) -> bool {
        self.nic_hooks
            .get(nic as usize)
            .is_some_and(|h| h[dir as usize].is_some())
    }

    /// Link `link`'s direction `dir`'s place for a runtime hook, if the
    /// link joins two VMs and the run has such places.
    pub fn runtime_slot(&self, link: u32, dir: LinkDir) -> Option<&'t RuntimeSlot<'t>> {
        let l = self.links.get(link as usize)?;
        if !l.between_vms() {
            return None;
        }
        self.runtime.get(link as usize * 2 + dir as usize)
    }

    /// Whether `link`'s direction `dir` has a hook from the manifest.
    pub fn has_manifest_hook(&self, link: u32, dir: LinkDir) -> bool {
        self.hooks
            .iter()
            .any(|h| h.attach == HookAttach::Link { link, dir })
    }

    /// Link `link`'s sender's and receiver's port indices in direction
    /// `dir` (what its hook's `xdp_md` names).
    pub fn link_ports(&self, link: u32, dir: LinkDir) -> Option<(u32, u32)> {
        let l = self.links.get(link as usize)?;
        Some(match dir {
            LinkDir::AToB => (l.a as u32, l.b as u32),
            LinkDir::BToA => (l.b as u32, l.a as u32),
        })
    }

    /// The core polling link `link`.
    pub fn link_core(&self, link: u32) -> Option<u32> {
        self.links.get(link as usize).map(|l| l.spec.core)
    }

    /// The runtime places of `link`'s two directions, if the run has them.
    #[inline]
    fn runtime_on(&self, link: &Link) -> Option<&'t [RuntimeSlot<'t>]> {
        if self.runtime.is_empty() {
            return None;
        }
        // The link's index from its place in the table (no search).
        let at = (link as *const Link as usize).wrapping_sub(self.links.as_ptr() as usize)
            / core::mem::size_of::<Link>().max(1);
        let first = at.saturating_mul(2);
        self.runtime.get(first..first.saturating_add(2))
    }

    /// The packet hooks.
    pub fn hooks(&self) -> &'t [PacketHook<'t>] {
        self.hooks
    }

    /// The hooks on `link`'s two directions (a→b, b→a).
    fn hooks_on(&self, link: &Link) -> [Option<&'t PacketHook<'t>>; 2] {
        if self.hooks.is_empty() {
            return [None, None];
        }
        let index = self.links.iter().position(|l| core::ptr::eq(l, link));
        let on = |dir| {
            self.hooks.iter().find(|h| match h.attach {
                HookAttach::Link { link, dir: d } => Some(link as usize) == index && d == dir,
                _ => false,
            })
        };
        [on(LinkDir::AToB), on(LinkDir::BToA)]
    }

    /// VM `vm`'s signals.
    pub fn signals(&self, vm: u32) -> &Signals {
        &self.signals[vm as usize]
    }

    /// Port `port` of VM `vm`, if it has one.
    pub fn port(&self, vm: u32, port: u8) -> Option<&Port> {
        let first = *self.first_port.get(vm as usize)?;
        let p = self.ports.get((first + u32::from(port)) as usize)?;
        (p.vm == vm && p.port == port).then_some(p)
    }

    /// A VM's run begins: its signals are cleared and its ports get fresh
    /// devices over its memory.
    pub fn attach(&self, vm: u32, ports: u8, memory: u64, ram: RawRam) {
        let signals = self.signals(vm);
        signals.fault.store(false, Ordering::Relaxed);
        signals.work.store(false, Ordering::Relaxed);
        for port in 0..ports {
            if let Some(p) = self.port(vm, port) {
                p.attach(memory, ram);
            }
        }
    }

    /// A VM's run ended (before its memory is freed): its ports go down,
    /// or away for good.
    pub fn detach(&self, vm: u32, ports: u8, for_good: bool) {
        for port in 0..ports {
            if let Some(p) = self.port(vm, port) {
                p.detach(for_good);
            }
        }
    }

    /// The first ring fault recorded on VM `vm`'s ports, as (port, error).
    pub fn fault(&self, vm: u32, ports: u8) -> Option<(u8, RingError)> {
        (0..ports).find_map(|port| {
            let fault = self.port(vm, port)?.with(|p| p.fault());
            fault.map(|e| (port, e))
        })
    }

    /// Runs `f` on a port's device state (a register access from its VM).
    pub fn with_port<R>(
        &self,
        vm: u32,
        port: u8,
        f: impl FnOnce(&mut PortInner) -> R,
    ) -> Option<R> {
        Some(self.port(vm, port)?.with(f))
    }

    /// Moves frames on `core`'s links until `finished()` says every VM has
    /// ended. Idle passes cost no guest anything: nobody waits on this core.
    ///
    /// Frames move in bursts: a link whose last pass moved fewer than
    /// [`BURST`] frames is passed over until [`BURST_WAIT`] instructions
    /// have gone by, so each pass's fixed cost (locks, ring lookups, the
    /// other direction) is shared by more frames and the guests' ring
    /// indices are read less often. That adds at most `BURST_WAIT`
    /// instructions of latency per link; a full pass is repeated at once.
    ///
    /// `wires` are the NICs this core polls ([`Net::nics_on`]), in manifest
    /// order (`None` for one that is not there): each pass also runs each
    /// NIC's switch both ways.
    pub fn poll<W: WireRx + WireTx + ZeroCopy>(
        &self,
        core: u32,
        env: &impl PollEnv,
        wires: &mut [Option<W>],
        finished: impl Fn() -> bool,
    ) {
        let first_link_here = self
            .links
            .first()
            .is_some_and(|l| l.spec.core == core && l.between_vms());
        // NIC 0's window, if no link between VMs has one.
        let nic_window = self
            .nics
            .first()
            .filter(|n| n.core == core && !self.links.iter().any(Link::between_vms));
        // When each link may be passed again (the TSC), in link order.
        let mut resume = [0u64; MAX_LINKS_PER_CORE];
        let mut busy_passes = 0u32;
        while !finished() {
            let mut moved = 0;
            // Shared rings first: their writes go out with this pass.
            for slot in self.rings.iter().filter(|r| r.core == core) {
                moved += self.service_ring(slot, env);
            }
            for (nic, wire) in self.nics_on(core).zip(wires.iter_mut()) {
                if let Some(wire) = wire {
                    let n = self.service_nic(nic, wire, env);
                    moved += n;
                    if n > 0 && nic_window.is_some_and(|w| core::ptr::eq(w, nic)) {
                        self.track_nic_window(nic, env);
                    }
                }
            }
            let now = env.now();
            for (i, link) in self
                .links
                .iter()
                .filter(|l| l.spec.core == core && l.between_vms())
                .enumerate()
            {
                let slot = resume.get_mut(i);
                if slot.as_ref().is_some_and(|&&mut at| now < at) {
                    continue;
                }
                let n = self.service(link, env);
                moved += n;
                if let Some(at) = slot {
                    *at = if n < BURST { now + BURST_WAIT } else { 0 };
                }
            }
            if core == self.made_core && !self.made.is_empty() {
                moved += self.service_made(env);
            }
            if first_link_here && moved > 0 {
                self.track_window(core, env);
            }
            busy_passes = if moved == 0 {
                0
            } else {
                busy_passes.wrapping_add(1)
            };
            // An idle pass feeds the console; so does every
            // BUSY_PASSES_PER_IDLE-th busy one, so a core that always has
            // frames to move never starves it.
            if moved == 0 || busy_passes.is_multiple_of(BUSY_PASSES_PER_IDLE) {
                env.idle();
            }
        }
    }

    /// Every NIC, in manifest order.
    pub fn nics(&self) -> impl Iterator<Item = &NicSlot<'t>> {
        self.nics.iter()
    }

    /// The NICs `core` polls, in manifest order.
    pub fn nics_on(&self, core: u32) -> impl Iterator<Item = &NicSlot<'t>> {
        self.nics.iter().filter(move |n| n.core == core)
    }

    /// One pass of `nic` both ways (its switch, or its owned port's pump);
    /// returns frames taken.
    fn service_nic<W: WireRx + WireTx + ZeroCopy>(
        &self,
        nic: &NicSlot<'t>,
        wire: &mut W,
        env: &impl PollEnv,
    ) -> u32 {
        if nic.mode == NicMode::Owned {
            return self.service_owned(nic, wire, env);
        }
        let mut switch = nic.switch.lock();
        let ports = NicPorts {
            ports: self.ports,
            list: &nic.ports,
        };
        let vm_of = |i: usize| nic.ports.get(i).map(|&p| self.ports[p].vm);
        let woken = |i: usize| {
            if let Some(vm) = vm_of(i) {
                self.wake(vm);
            }
        };
        let blamed = |(i, _): (usize, RingError)| {
            if let Some(vm) = vm_of(i) {
                self.signals[vm as usize]
                    .fault
                    .store(true, Ordering::Release);
                self.wake(vm);
            }
        };
        let [rx_hook, tx_hook] = self.nic_hooks.get(nic.index).copied().unwrap_or_default();
        // A runtime hook's place is locked for the whole pass (one relaxed
        // load per queue when empty), so a swap falls between passes.
        let runtime = |dir| {
            self.nic_runtime_slot(nic.index as u32, dir)
                .and_then(RuntimeSlot::for_pass)
        };
        let (rr, rt) = if self.runtime.is_empty() {
            (None, None)
        } else {
            (runtime(NicDir::Rx), runtime(NicDir::Tx))
        };
        let rx_hook = rx_hook.or(rr.as_ref().and_then(|g| g.as_ref()));
        let tx_hook = tx_hook.or(rt.as_ref().and_then(|g| g.as_ref()));
        let start = env.now();
        let inbound = match rx_hook {
            None => switch.inbound(wire, &ports, BATCH, woken, blamed, &mut PassAll),
            Some(h) => inbound_hooked(&mut switch, wire, &ports, woken, blamed, h),
        };
        let middle = env.now();
        let mut outbound = match tx_hook {
            None => switch.outbound(wire, &ports, BATCH, woken, blamed, &mut PassAll),
            Some(h) => outbound_hooked(&mut switch, wire, &ports, woken, blamed, h),
        };
        // Frames the transmit hook redirected to VM ports, now that the
        // switch has let go of the NIC's ports.
        if let Some(h) = tx_hook
            && h.lock().away().is_some()
        {
            outbound += self.deliver_away(h, env.now());
        }
        if inbound > 0 {
            switch.wire.rx_busy += middle.wrapping_sub(start);
        }
        if outbound > 0 {
            switch.wire.tx_busy += env.now().wrapping_sub(middle);
        }
        inbound + outbound
    }

    /// One pass of an owned NIC's pump over its one port.
    fn service_owned<Z: ZeroCopy>(
        &self,
        nic: &NicSlot<'t>,
        wire: &mut Z,
        env: &impl PollEnv,
    ) -> u32 {
        let Some(&p) = nic.ports.first() else {
            return 0;
        };
        let port = &self.ports[p];
        let mac = port_mac(port.vm, port.port);
        let mut owned = nic.owned.lock();
        let had_error = owned.error.is_some();
        let pass = port.with(|inner| {
            let pass = owned.pass(wire, inner, mac, BATCH, &|| env.now());
            // Under the port's lock: a VM core that takes the port down
            // next sees what the NIC holds of it.
            nic.holds.store(owned.holds(), Ordering::Release);
            pass
        });
        if let (false, Some(e)) = (had_error, owned.error) {
            env.nic_failed(nic.index, e);
        }
        if pass.blamed.is_some() {
            self.signals[port.vm as usize]
                .fault
                .store(true, Ordering::Release);
            self.wake(port.vm);
        } else if pass.moved > 0 {
            self.wake(port.vm);
        }
        pass.moved
    }

    /// The first driver error an owned NIC's pump met, if any.
    pub fn owned_error(&self, nic: usize) -> Option<crate::nic::NicError> {
        self.nics.get(nic).and_then(|n| n.owned.lock().error)
    }

    /// Whether an owned NIC still holds buffers of one of VM `vm`'s ports
    /// (after they went down, its memory is freed only once this is
    /// `false`; the NIC's polling core revokes them at its next pass).
    pub fn nic_holds(&self, vm: u32) -> bool {
        self.nics.iter().any(|n| {
            n.mode == NicMode::Owned
                && n.ports.iter().any(|&p| self.ports[p].vm == vm)
                && n.holds.load(Ordering::Acquire)
        })
    }

    /// One pass over both directions of `link`; returns frames handed over.
    fn service(&self, link: &Link, env: &impl PollEnv) -> u32 {
        // A run with no hook anywhere and no places for runtime ones (a
        // batch run without hooks) takes the pass with nothing of hooks in
        // it.
        if self.hooks.is_empty() && self.runtime.is_empty() {
            return self.pass(link, env, [None, None]);
        }
        self.service_hooked(link, env)
    }

    /// [`Net::service`] for a run with hooks: the link's manifest hooks,
    /// or its runtime places' hooks, held for the whole pass.
    #[inline(never)]
    fn service_hooked(&self, link: &Link, env: &impl PollEnv) -> u32 {
        let [hab, hba] = self.hooks_on(link);
        // A runtime hook's place is locked for the whole pass (one relaxed
        // load per direction when empty), so a swap falls between passes.
        let (ra, rb) = match self.runtime_on(link) {
            Some([sa, sb]) => (sa.for_pass(), sb.for_pass()),
            _ => (None, None),
        };
        let hab = hab.or(ra.as_ref().and_then(|g| g.as_ref()));
        let hba = hba.or(rb.as_ref().and_then(|g| g.as_ref()));
        let mut moved = self.pass(link, env, [hab, hba]);
        // Frames a hook redirected to another port, now that the link's
        // ports are let go (so no two polling cores ever wait on each
        // other's ports).
        for h in [hab, hba].into_iter().flatten() {
            if h.lock().away().is_some() {
                moved += self.deliver_away(h, env.now());
            }
        }
        moved
    }

    /// Delivers the frames at the front of `hook`'s queue that go on to
    /// other ports than the link's (`XDP_REDIRECT`), each into the next
    /// receive buffer of its port (locked alone), counted `sent`. A port
    /// that is not up yet or has no buffer yet is waited for, at most
    /// [`AWAY_HOLD`] ticks (the frames behind wait in the queue, and when
    /// it is full, in the sender's ring: nothing is lost); a port that is
    /// not there or gone, or then still not ready, or with a buffer too
    /// small, gets nothing (`unsent`). A receive ring that breaks the rules is
    /// blamed on its port. Returns frames delivered.
    #[inline(never)]
    fn deliver_away(&self, hook: &PacketHook<'t>, now: u64) -> u32 {
        let mut run = hook.lock();
        let mut delivered = 0;
        while let Some(to) = run.away() {
            let before = run.waiting();
            let mut sent = false;
            let mut no_buffer = false;
            if let Some(p) = self.ports.get(to as usize) {
                let mut faulted = false;
                p.with(|inner| {
                    // Not up yet (its driver is getting ready, or its VM
                    // restarts): waited for, as a link's receiver is.
                    let Some((receiver, generation)) = inner.sink() else {
                        no_buffer = true;
                        return;
                    };
                    let ready = matches!(receiver, Receiver::Ready(_));
                    let mut dir: Direction<Chain, Chain> = Direction::default();
                    let result = direction::send_back(
                        &mut dir,
                        &mut run.away_source::<Chain>(to),
                        receiver,
                        generation,
                        1,
                    );
                    // A buffer taken for a frame too large goes back to its
                    // ring (the one it handed out last: the port is locked).
                    if let Some((g, buffer)) = dir.take_spare() {
                        inner.give_back_rx(g, buffer);
                    }
                    match result {
                        Ok(_) => {
                            sent = dir.flow.frames == 1;
                            no_buffer = ready && !sent && dir.flow.handed() == 0;
                        }
                        Err(LinkFault { error, .. }) => {
                            inner.blame(error);
                            faulted = true;
                        }
                    }
                });
                if faulted {
                    self.signals[p.vm as usize]
                        .fault
                        .store(true, Ordering::Release);
                }
                if sent || faulted {
                    self.wake(p.vm);
                }
            }
            if no_buffer && run.away_waited(now) < AWAY_HOLD {
                break;
            }
            run.away_done();
            // A frame the port did not take leaves the queue all the same.
            if run.waiting() == before {
                run.drop_front();
            }
            if sent {
                delivered += 1;
                run.count_away(1, 0);
            } else {
                run.count_away(0, 1);
            }
        }
        delivered
    }

    /// One pass over both directions of `link` with the hooks of its a→b
    /// and b→a directions; returns frames handed over.
    #[inline(always)]
    fn pass(
        &self,
        link: &Link,
        env: &impl PollEnv,
        [hab, hba]: [Option<&PacketHook<'t>>; 2],
    ) -> u32 {
        let mut state = link.state.lock();
        let start = env.now();
        let mut a = self.ports[link.a].inner.lock();
        let mut b = self.ports[link.b].inner.lock();
        let st = &mut *state;
        let (va, vb) = (link.spec.a.vm, link.spec.b.vm);
        let hold = Hold {
            now: start,
            ticks: link.spec.hold,
        };
        let stalls = (st.ab.flow.stalls, st.ba.flow.stalls);
        let (mut back_ab, mut back_ba) = (false, false);
        let mut moved = self.direction(
            &mut st.ab,
            hold,
            (&mut *a, va),
            (&mut *b, vb),
            hab,
            &mut back_ab,
        ) + self.direction(
            &mut st.ba,
            hold,
            (&mut *b, vb),
            (&mut *a, va),
            hba,
            &mut back_ba,
        );
        // Frames a hook sends back go through the other direction's
        // receive state into their sender's ring.
        if back_ab && let Some(h) = hab {
            moved += self.send_back(&mut st.ba, h, (&mut *a, va));
        }
        if back_ba && let Some(h) = hba {
            moved += self.send_back(&mut st.ab, h, (&mut *b, vb));
        }
        // A first stall of an end is said once; later ones are counted in
        // the `link` record only, so a guest cannot flood the console.
        if st.ab.flow.stalls != stalls.0 && stalls.0 == 0 {
            self.say_stalled(link, 'b', env);
        }
        if st.ba.flow.stalls != stalls.1 && stalls.1 == 0 {
            self.say_stalled(link, 'a', env);
        }
        if moved > 0 {
            st.busy += env.now().wrapping_sub(start);
        }
        moved
    }

    /// Delivers the frames `hook` sends back into `to`'s receive queue
    /// through `dir` (the link's direction towards `to`, whose spare buffer
    /// it keeps using), counting them on the hook (`sent`, `unsent`), not
    /// on the direction; blames `to` if its ring breaks the rules.
    fn send_back<E: LinkEnd, F: Default>(
        &self,
        dir: &mut Direction<F, E::Buffer>,
        hook: &PacketHook<'t>,
        (to, vm): (&mut E, u32),
    ) -> u32 {
        let mut run = hook.lock();
        if !run.sends_back() {
            return 0;
        }
        let Some((receiver, generation)) = to.sink() else {
            // Not ready yet: the frames wait (new ones are `unsent` while
            // the queue is full).
            return 0;
        };
        let before = dir.flow;
        let result = direction::send_back(
            dir,
            &mut run.back_source::<F>(),
            receiver,
            generation,
            BACK_SLOTS as u32,
        );
        let after = core::mem::replace(&mut dir.flow, before);
        run.flow.sent += after.frames - before.frames;
        run.flow.unsent += after.dropped() - before.dropped();
        drop(run);
        match result {
            Ok(0) => 0,
            Ok(n) => {
                self.wake(vm);
                n
            }
            Err(LinkFault { error, .. }) => {
                to.blame(error);
                self.signals[vm as usize]
                    .fault
                    .store(true, Ordering::Release);
                self.wake(vm);
                0
            }
        }
    }

    #[cold]
    fn say_stalled(&self, link: &Link, end: char, env: &impl PollEnv) {
        let index = self.links.iter().position(|l| core::ptr::eq(l, link));
        env.first_stall(index.unwrap_or(0), end, link.spec.hold);
    }

    /// Pumps `src`'s frames into `dst`, the direction's policy judging
    /// each: its packet hook (locked for the pump) if it has one, else
    /// [`PassAll`] (and the fast path). Wakes both VMs when frames moved;
    /// blames the end at fault when a ring broke the rules.
    fn direction<A: LinkEnd, B: LinkEnd>(
        &self,
        dir: &mut Direction<A::Frame, B::Buffer>,
        hold: Hold,
        (src, src_vm): (&mut A, u32),
        (dst, dst_vm): (&mut B, u32),
        hook: Option<&PacketHook<'t>>,
        back: &mut bool,
    ) -> u32 {
        let pumped = {
            let Some(mut source) = src.source() else {
                dir.sender_down();
                return 0;
            };
            let Some((receiver, generation)) = dst.sink() else {
                return 0;
            };
            match hook {
                None => direction::pump(
                    dir,
                    &mut source,
                    receiver,
                    generation,
                    BATCH,
                    hold,
                    &mut PassAll,
                ),
                Some(h) => {
                    let mut run = h.lock();
                    let pumped = direction::pump(
                        dir,
                        &mut source,
                        receiver,
                        generation,
                        BATCH,
                        hold,
                        &mut *run,
                    );
                    // Frames it sends back, told while its lock is held.
                    *back = run.sends_back();
                    pumped
                }
            }
        };
        match pumped {
            Ok(0) => 0,
            Ok(n) => {
                self.wake(src_vm);
                self.wake(dst_vm);
                n
            }
            Err(LinkFault { side, error }) => {
                let (vm, other) = match side {
                    Side::Sender => {
                        src.blame(error);
                        (src_vm, dst_vm)
                    }
                    Side::Receiver => {
                        dst.blame(error);
                        (dst_vm, src_vm)
                    }
                };
                self.signals[vm as usize]
                    .fault
                    .store(true, Ordering::Release);
                self.wake(vm);
                self.wake(other);
                0
            }
        }
    }

    /// Tells VM `vm` that some of its buffers were completed. Always a
    /// store: skipping it when the flag looks set could let the VM consume
    /// that earlier flag before this batch's used idx is visible, and then
    /// wait with no flag left for this batch.
    fn wake(&self, vm: u32) {
        self.signals[vm as usize]
            .work
            .store(true, Ordering::Release);
    }

    fn track_window(&self, core: u32, env: &impl PollEnv) {
        let Some(link0) = self.links.first() else {
            return;
        };
        let frames = link0.state.lock().ab.flow.frames;
        let mut w = self.window.lock();
        if w.start.is_none() && frames >= WINDOW_WARMUP {
            w.start = Some((env.exits(), self.busy_on(core)));
        } else if let (Some((exits, busy)), None) = (w.start, w.result)
            && frames >= WINDOW_WARMUP + WINDOW_FRAMES
        {
            w.result = Some((
                env.exits().wrapping_sub(exits),
                self.busy_on(core).wrapping_sub(busy),
            ));
        }
    }

    fn track_nic_window(&self, nic: &NicSlot<'t>, env: &impl PollEnv) {
        let mut w = self.nic_window.lock();
        if w.result.is_some() {
            return;
        }
        let now = NicMeter {
            exits: env.exits(),
            ..nic.meter()
        };
        match w.start {
            None if now.delivered >= NIC_WINDOW_WARMUP => w.start = Some(now),
            Some(start) if now.delivered >= start.delivered + NIC_WINDOW_FRAMES => {
                w.result = Some(now.since(&start));
            }
            _ => {}
        }
    }

    fn busy_on(&self, core: u32) -> u64 {
        self.links
            .iter()
            .filter(|l| l.spec.core == core && l.between_vms())
            .map(|l| l.state.lock().busy)
            .sum()
    }

    /// Gives a `link` record per link between VMs, a `nic` record per NIC
    /// (its switch's counters completed by `wire_flow(nic, counters)`,
    /// where the driver adds its own) with a `nic-port` record per
    /// attached port, and the `window` record, if the window closed, to
    /// `env` (boot core, after every core finished).
    pub fn report(
        &self,
        env: &impl PollEnv,
        name_of: impl Fn(u32) -> &'static str,
        wire_flow: impl Fn(usize, NicFlow) -> NicFlow,
    ) {
        for (i, link) in self.links.iter().enumerate() {
            if !link.between_vms() {
                continue;
            }
            let st = link.state.lock();
            env.record(&Record::Link {
                link: i as u32,
                a: PortName {
                    vm: name_of(link.spec.a.vm),
                    port: link.spec.a.port,
                },
                b: PortName {
                    vm: name_of(link.spec.b.vm),
                    port: link.spec.b.port,
                },
                core: link.spec.core,
                ab: st.ab.flow,
                ba: st.ba.flow,
                busy: st.busy,
            });
        }
        for (n, nic) in self.nics.iter().enumerate() {
            // Copies, so no lock is held while `wire_flow` runs.
            let switch_ports: heapless::Vec<NicPortFlow, MAX_SWITCH_PORTS> =
                nic.switch.lock().ports.iter().map(|p| p.flow).collect();
            let owned_flow = nic.owned.lock().flow;
            let flows = |i: usize| match nic.mode {
                NicMode::Owned => owned_flow,
                NicMode::Shared => switch_ports.get(i).copied().unwrap_or_default(),
            };
            let wire = nic.wire();
            env.record(&Record::Nic {
                nic: n as u32,
                name: nic.name,
                core: nic.core,
                wire: wire_flow(n, wire),
            });
            for (i, &p) in nic.ports.iter().enumerate() {
                let port = &self.ports[p];
                env.record(&Record::NicPort {
                    nic: n as u32,
                    port: PortName {
                        vm: name_of(port.vm),
                        port: port.port,
                    },
                    flow: flows(i),
                });
            }
        }
        if let Some((exits, busy)) = self.window.lock().result {
            env.record(&Record::Window {
                frames: WINDOW_FRAMES,
                exits,
                busy,
            });
        }
        if let Some(m) = self.nic_window.lock().result {
            env.record(&Record::NicWindow {
                nic: 0,
                frames: m.delivered,
                exits: m.exits,
                rx_busy: m.rx_busy,
                tx_frames: m.tx_frames,
                tx_busy: m.tx_busy,
            });
        }
    }

    /// Frames and drops of every link (those made while the host ran
    /// too, unmade or not), for the summary.
    pub fn totals(&self) -> LinkFlow {
        let mut t = *self.unmade.lock();
        for link in self.links.iter().filter(|l| l.between_vms()) {
            let st = link.state.lock();
            add_flow(&mut t, &st.ab.flow);
            add_flow(&mut t, &st.ba.flow);
        }
        for k in 0..self.made.len() {
            if let Some(m) = self.made_now(k) {
                add_flow(&mut t, &m.ab);
                add_flow(&mut t, &m.ba);
            }
        }
        t
    }

    /// Number of links.
    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    /// Number of NICs.
    pub fn nic_count(&self) -> usize {
        self.nics.len()
    }

    /// Links between VMs, then NICs, then the places of links made while
    /// the host runs: what a running host's `stats` lists.
    pub fn flow_count(&self) -> usize {
        self.links.iter().filter(|l| l.between_vms()).count() + self.nics.len() + self.made.len()
    }

    /// Flow `i`'s counters now (links between VMs first, then NICs, then
    /// links made at runtime; `None` for an empty place).
    pub fn flow_now(&self, i: usize) -> Option<FlowNow<'t>> {
        let links = self
            .links
            .iter()
            .enumerate()
            .filter(|(_, l)| l.between_vms());
        if let Some((index, link)) = links.clone().nth(i) {
            let st = link.state.lock();
            return Some(FlowNow::Link {
                index: index as u32,
                a: link.spec.a,
                b: link.spec.b,
                ab: st.ab.flow,
                ba: st.ba.flow,
                core: link.spec.core,
                busy: st.busy,
            });
        }
        let n = i - links.count();
        let Some(nic) = self.nics.get(n) else {
            let m = self.made_now(n - self.nics.len())?;
            return Some(FlowNow::Link {
                index: m.number,
                a: m.a,
                b: m.b,
                ab: m.ab,
                ba: m.ba,
                core: m.core,
                busy: m.busy,
            });
        };
        Some(FlowNow::Nic {
            index: n as u32,
            core: nic.core,
            name: nic.name,
            wire: nic.wire(),
            drops: nic.drops(),
        })
    }
}

/// A link's or NIC's counters while the run goes on.
pub enum FlowNow<'t> {
    /// A link between two VM ports.
    Link {
        /// Its manifest index (or, for a link made at runtime, its number).
        index: u32,
        /// Its ends.
        a: PortRef,
        /// Its ends.
        b: PortRef,
        /// `a` to `b`.
        ab: LinkFlow,
        /// `b` to `a`.
        ba: LinkFlow,
        /// The core polling it.
        core: u32,
        /// Instructions that core spent on it in passes that moved frames.
        busy: u64,
    },
    /// A NIC.
    Nic {
        /// Its manifest index.
        index: u32,
        /// The core polling it.
        core: u32,
        /// Its name.
        name: &'t str,
        /// Its wire's counters.
        wire: NicFlow,
        /// Frames lost in from the wire and out to it.
        drops: (u64, u64),
    },
}

/// A shared NIC's receive half with a hook (out of line: a NIC without
/// one keeps its pass as it was): the switch's inbound pump judged by the
/// hook, then the frames it sends back (`XDP_TX`) onto the wire.
#[inline(never)]
fn inbound_hooked<W: WireRx + WireTx>(
    switch: &mut Switch<Chain>,
    wire: &mut W,
    ports: &NicPorts<'_>,
    woken: impl FnMut(usize),
    blamed: impl FnMut((usize, RingError)),
    hook: &PacketHook<'_>,
) -> u32 {
    let mut run = hook.lock();
    let taken = switch.inbound(wire, ports, BATCH, woken, blamed, &mut *run);
    if run.sends_back() {
        run.send_back_with(|bytes| switch.send_raw(wire, bytes));
        WireTx::flush(wire);
    }
    taken
}

/// A shared NIC's transmit half with a hook (out of line, as
/// [`inbound_hooked`]).
#[inline(never)]
fn outbound_hooked<W: WireRx + WireTx>(
    switch: &mut Switch<Chain>,
    wire: &mut W,
    ports: &NicPorts<'_>,
    woken: impl FnMut(usize),
    blamed: impl FnMut((usize, RingError)),
    hook: &PacketHook<'_>,
) -> u32 {
    switch.outbound(wire, ports, BATCH, woken, blamed, &mut *hook.lock())
}

/// Adds `f`'s counters to `t`.
fn add_flow(t: &mut LinkFlow, f: &LinkFlow) {
    t.frames += f.frames;
    t.bytes += f.bytes;
    t.drop_peer += f.drop_peer;
    t.drop_size += f.drop_size;
    t.drop_stalled += f.drop_stalled;
    t.stalls += f.stalls;
}

mod made;
pub use made::{LinkPlace, MAX_MADE_LINKS, MadeLink, MakeRefusal};

#[cfg(test)]
mod tests;
