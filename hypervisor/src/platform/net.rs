//! Virtio-net ports and links at run time: each port's device state behind a lock, the polling loop that moves frames across links, and the signals between a polling core and the cores running VMs.
//!
//! A port's [`PortInner`] is touched by two cores: the core its VM runs on
//! (register accesses, creation, teardown) and the core polling its link.
//! Both take the port's lock; the polling core also holds its link's lock,
//! always link first, then port `a`, then port `b`, and a VM's core never
//! takes more than one port lock, so there is no cycle. Guest memory is
//! reached through [`RawRam`], which exists only while the VM does (it is
//! removed under the lock before the frames are freed).
//!
//! Polled mode: a port's queues get `VIRTQ_USED_F_NO_NOTIFY` (or the
//! event-idx equivalent) when the driver sets `DRIVER_OK`, and no
//! interrupt is ever sent; the guest polls its used rings. When a pump
//! moves frames, both VMs' work flags are set, which ends a
//! `wait_for_work` early. When a ring breaks the rules, its port is
//! marked broken (the peer then sees it as gone) and its VM's fault flag
//! is set; the VM's core stops it at its next exit.

use super::instr;
use super::memory;
use super::percpu::PerCore;
use super::serial;
use crate::datapath::direction::{self as link, Direction, Hold, LinkFault, Receiver, Side};
use crate::mem::raw::RawRam;
use crate::virtio::error::RingError;
use crate::virtio::mmio::{Transport, TransportConfig, WriteEffect};
use crate::virtio::net::{NetDevice, RECEIVE_QUEUE, TRANSMIT_QUEUE};
use crate::virtio::queue::QueueError;
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;
use vmm_abi::devices::port_mac;
use vmm_abi::layout::PAGE_SIZE;
use vmm_abi::manifest::{LinkSpec, Manifest};
use vmm_abi::report::{LinkFlow, PortName, Record};

/// Most frames one direction moves per pump, so one busy link cannot
/// starve the others on its polling core.
const BATCH: u32 = 64;
/// A pass that moved fewer frames than this is a small burst: the link
/// waits [`BURST_WAIT`] before its next pass.
const BURST: u32 = BATCH / 2;
/// Instructions a link with a small burst waits before its next pass.
const BURST_WAIT: u64 = 10_000;
/// Links of one polling core whose bursts are paced (the rest, if any, are
/// passed every time).
const MAX_LINKS_PER_CORE: usize = 64;
/// Frames link 0 carries from `a` to `b` before the steady-state window
/// opens (rings filled, every guest past its start-up).
pub const WINDOW_WARMUP: u64 = 256;
/// Frames link 0 carries from `a` to `b` inside the window.
pub const WINDOW_FRAMES: u64 = 1024;
/// Where a port is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortState {
    /// Its VM is not running or its driver is not ready: frames for it wait.
    Down,
    /// Both queues are set up and checked: frames move.
    Up,
    /// Its VM ended for good: frames for it are dropped and counted.
    Gone,
    /// One of its rings broke the rules; its VM is being stopped.
    Broken,
}

/// The device state of one port.
pub struct PortInner {
    /// The virtio-mmio transport and net device.
    pub transport: Transport<NetDevice>,
    ram: Option<RawRam>,
    state: PortState,
    /// Changes whenever the rings may have changed (reset, restart).
    generation: u32,
    fault: Option<RingError>,
}

/// One net port of one VM.
pub struct Port {
    /// Manifest index of its VM.
    pub vm: u32,
    /// Port number on that VM.
    pub port: u8,
    inner: Mutex<PortInner>,
}

/// What a polling core keeps per link.
#[derive(Default)]
struct LinkState {
    ab: Direction,
    ba: Direction,
    busy: u64,
}

/// One link: two ports and the core that polls them.
pub struct Link {
    spec: LinkSpec,
    a: usize,
    b: usize,
    state: Mutex<LinkState>,
}

/// Flags a polling core raises for a VM's core.
#[derive(Default)]
pub struct Signals {
    /// A pump completed buffers of this VM since it last waited.
    pub work: AtomicBool,
    /// One of its rings broke the rules (the port says which).
    pub fault: AtomicBool,
}

/// The steady-state window of link 0.
#[derive(Clone, Copy, Default)]
struct Window {
    start: Option<(u64, u64)>,
    result: Option<(u64, u64)>,
}

/// Every port, link and signal of the run.
pub struct Net {
    ports: &'static [Port],
    /// Per VM: index of its first port.
    first_port: &'static [u32],
    links: &'static [Link],
    signals: &'static [Signals],
    window: Mutex<Window>,
}

/// Exits taken on each core (each core adds only to its own).
static EXITS: PerCore = PerCore::new();

/// Counts one exit on core `core`.
#[inline]
pub fn count_exit(core: u32) {
    EXITS.bump(core);
}

fn total_exits() -> u64 {
    EXITS.total()
}

/// A slice of `n` values made by `init`, in frames that are never freed.
fn alloc_slice<T>(n: usize, mut init: impl FnMut(usize) -> T) -> Option<&'static [T]> {
    if n == 0 {
        return Some(&[]);
    }
    let bytes = (n * core::mem::size_of::<T>()) as u64;
    let base = memory::alloc_zeroed_pages(bytes.div_ceil(PAGE_SIZE))? as *mut T;
    const { assert!(core::mem::align_of::<T>() as u64 <= PAGE_SIZE) };
    for i in 0..n {
        // SAFETY: `base` has room for `n` values of T, is page aligned (at
        // least T's alignment) and is written once per slot here.
        unsafe { base.add(i).write(init(i)) };
    }
    // SAFETY: all `n` slots were initialised above; the frames are never
    // freed or otherwise used, so the slice may live for the whole run.
    Some(unsafe { core::slice::from_raw_parts(base, n) })
}

fn new_port(vm: u32, port: u8, memory: u64) -> Port {
    Port {
        vm,
        port,
        inner: Mutex::new(PortInner {
            transport: Transport::new(
                NetDevice::new(port_mac(vm, port)),
                TransportConfig::new(memory),
            ),
            ram: None,
            state: PortState::Down,
            generation: 0,
            fault: None,
        }),
    }
}

impl Net {
    /// Builds the ports of every VM and the links between them.
    pub fn build(manifest: &Manifest<'static>) -> Result<Net, &'static str> {
        let vms = manifest.len();
        let mut total = 0u32;
        let first_port = alloc_slice(vms, |i| {
            let first = total;
            total += manifest.get(i).map_or(0, |s| u32::from(s.net_ports));
            first
        })
        .ok_or("no memory for the port table")?;
        let mut owner = (0u32, 0u8);
        let ports = alloc_slice(total as usize, |p| {
            while owner.0 as usize + 1 < vms && first_port[owner.0 as usize + 1] as usize <= p {
                owner.0 += 1;
            }
            let vm = owner.0;
            let port = (p - first_port[vm as usize] as usize) as u8;
            let memory = manifest.get(vm as usize).map_or(0, |s| s.memory);
            new_port(vm, port, memory)
        })
        .ok_or("no memory for the ports")?;
        let mut specs_iter = manifest.links();
        let links = alloc_slice(manifest.link_count(), |_| {
            // `Manifest::parse` checked every link against the VMs.
            let spec = specs_iter.next().unwrap_or(LinkSpec {
                a: vmm_abi::manifest::PortRef { vm: 0, port: 0 },
                b: vmm_abi::manifest::PortRef { vm: 0, port: 0 },
                core: 0,
                hold: 0,
            });
            Link {
                spec,
                a: (first_port[spec.a.vm as usize] + u32::from(spec.a.port)) as usize,
                b: (first_port[spec.b.vm as usize] + u32::from(spec.b.port)) as usize,
                state: Mutex::new(LinkState::default()),
            }
        })
        .ok_or("no memory for the links")?;
        let signals =
            alloc_slice(vms, |_| Signals::default()).ok_or("no memory for the VM signals")?;
        Ok(Net {
            ports,
            first_port,
            links,
            signals,
            window: Mutex::new(Window::default()),
        })
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

    /// A VM's run begins: its ports get fresh devices over its memory.
    pub fn attach(&self, vm: u32, ports: u8, memory: u64, ram: RawRam) {
        let signals = self.signals(vm);
        signals.fault.store(false, Ordering::Relaxed);
        signals.work.store(false, Ordering::Relaxed);
        for port in 0..ports {
            if let Some(p) = self.port(vm, port) {
                let mut inner = p.inner.lock();
                inner.transport = Transport::new(
                    NetDevice::new(port_mac(vm, port)),
                    TransportConfig::new(memory),
                );
                inner.ram = Some(ram);
                inner.state = PortState::Down;
                inner.generation = inner.generation.wrapping_add(1);
                inner.fault = None;
            }
        }
    }

    /// A VM's run ended (before its memory is freed): its ports go down,
    /// or away for good.
    pub fn detach(&self, vm: u32, ports: u8, for_good: bool) {
        for port in 0..ports {
            if let Some(p) = self.port(vm, port) {
                let mut inner = p.inner.lock();
                inner.ram = None;
                inner.state = if for_good {
                    PortState::Gone
                } else {
                    PortState::Down
                };
                inner.generation = inner.generation.wrapping_add(1);
            }
        }
    }

    /// The first ring fault recorded on VM `vm`'s ports, as (port, error).
    pub fn fault(&self, vm: u32, ports: u8) -> Option<(u8, RingError)> {
        (0..ports).find_map(|port| {
            let p = self.port(vm, port)?;
            let fault = p.inner.lock().fault;
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
        let p = self.port(vm, port)?;
        Some(f(&mut p.inner.lock()))
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
    pub fn poll(&self, core: u32, finished: impl Fn() -> bool) {
        let first_link_here = self.links.first().is_some_and(|l| l.spec.core == core);
        // When each link may be passed again (the TSC), in link order.
        let mut resume = [0u64; MAX_LINKS_PER_CORE];
        while !finished() {
            let mut moved = 0;
            let now = instr::rdtsc();
            for (i, link) in self
                .links
                .iter()
                .filter(|l| l.spec.core == core)
                .enumerate()
            {
                let slot = resume.get_mut(i);
                if slot.as_ref().is_some_and(|&&mut at| now < at) {
                    continue;
                }
                let n = self.service(link);
                moved += n;
                if let Some(at) = slot {
                    *at = if n < BURST { now + BURST_WAIT } else { 0 };
                }
            }
            if first_link_here && moved > 0 {
                self.track_window(core);
            }
            if moved == 0 {
                // An idle pass: feed the console while nothing moves.
                serial::pump();
                core::hint::spin_loop();
            }
        }
    }

    /// One pass over both directions of `link`; returns frames handed over.
    fn service(&self, link: &Link) -> u32 {
        let mut state = link.state.lock();
        let start = instr::rdtsc();
        let mut a = self.ports[link.a].inner.lock();
        let mut b = self.ports[link.b].inner.lock();
        let st = &mut *state;
        let (va, vb) = (link.spec.a.vm, link.spec.b.vm);
        let hold = Hold {
            now: start,
            ticks: link.spec.hold,
        };
        let stalls = (st.ab.flow.stalls, st.ba.flow.stalls);
        let moved = self.direction(&mut st.ab, hold, (&mut a, va), (&mut b, vb))
            + self.direction(&mut st.ba, hold, (&mut b, vb), (&mut a, va));
        // A first stall of an end is said once; later ones are counted in
        // the `link` record only, so a guest cannot flood the console.
        if st.ab.flow.stalls != stalls.0 && stalls.0 == 0 {
            self.say_stalled(link, "b", hold.ticks);
        }
        if st.ba.flow.stalls != stalls.1 && stalls.1 == 0 {
            self.say_stalled(link, "a", hold.ticks);
        }
        if moved > 0 {
            st.busy += instr::rdtsc().wrapping_sub(start);
        }
        moved
    }

    #[cold]
    fn say_stalled(&self, link: &Link, end: &str, hold: u64) {
        let index = self.links.iter().position(|l| core::ptr::eq(l, link));
        log::warn!(
            "link {}: its end {end} stalled: no receive buffer for {hold} instructions while frames waited; frames for it are dropped (drop_stalled) until it posts one (later stalls of this end are only counted)",
            index.unwrap_or(0),
        );
    }

    /// Pumps `src`'s transmit queue into `dst`'s receive queue.
    fn direction(
        &self,
        dir: &mut Direction,
        hold: Hold,
        (src, src_vm): (&mut PortInner, u32),
        (dst, dst_vm): (&mut PortInner, u32),
    ) -> u32 {
        if src.state != PortState::Up {
            dir.sender_down();
            return 0;
        }
        // Borrowed in place: a view is a few hundred bytes, not worth a copy
        // per pass.
        let (Some(sram), Some(tx)) = (src.ram.as_mut(), src.transport.queue_mut(TRANSMIT_QUEUE))
        else {
            return 0;
        };
        let receiver = match (
            dst.state,
            dst.ram.as_mut(),
            dst.transport.queue_mut(RECEIVE_QUEUE),
        ) {
            (PortState::Up, Some(ram), Some(rq)) => Receiver::Ready(rq, ram),
            (PortState::Gone | PortState::Broken, _, _) => Receiver::Gone,
            _ => return 0,
        };
        let generation = dst.generation;
        match link::pump_raw(dir, tx, sram, receiver, generation, BATCH, hold) {
            Ok(0) => 0,
            Ok(n) => {
                self.wake(src_vm);
                self.wake(dst_vm);
                n
            }
            Err(LinkFault { side, error }) => {
                let (culprit, vm, other) = match side {
                    Side::Sender => (src, src_vm, dst_vm),
                    Side::Receiver => (dst, dst_vm, src_vm),
                };
                culprit.state = PortState::Broken;
                culprit.fault.get_or_insert(error);
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

    fn track_window(&self, core: u32) {
        let Some(link0) = self.links.first() else {
            return;
        };
        let frames = link0.state.lock().ab.flow.frames;
        let mut w = self.window.lock();
        if w.start.is_none() && frames >= WINDOW_WARMUP {
            w.start = Some((total_exits(), self.busy_on(core)));
        } else if let (Some((exits, busy)), None) = (w.start, w.result)
            && frames >= WINDOW_WARMUP + WINDOW_FRAMES
        {
            w.result = Some((
                total_exits().wrapping_sub(exits),
                self.busy_on(core).wrapping_sub(busy),
            ));
        }
    }

    fn busy_on(&self, core: u32) -> u64 {
        self.links
            .iter()
            .filter(|l| l.spec.core == core)
            .map(|l| l.state.lock().busy)
            .sum()
    }

    /// Prints a `link` record per link and the `window` record, if the
    /// window closed (boot core, after every core finished).
    pub fn report(&self, name_of: impl Fn(u32) -> &'static str) {
        for (i, link) in self.links.iter().enumerate() {
            let st = link.state.lock();
            serial::record(&Record::Link {
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
        if let Some((exits, busy)) = self.window.lock().result {
            serial::record(&Record::Window {
                frames: WINDOW_FRAMES,
                exits,
                busy,
            });
        }
    }

    /// Frames and drops of every link, for the summary.
    pub fn totals(&self) -> LinkFlow {
        let mut t = LinkFlow::default();
        for link in self.links {
            let st = link.state.lock();
            for f in [st.ab.flow, st.ba.flow] {
                t.frames += f.frames;
                t.bytes += f.bytes;
                t.drop_peer += f.drop_peer;
                t.drop_size += f.drop_size;
                t.drop_stalled += f.drop_stalled;
                t.stalls += f.stalls;
            }
        }
        t
    }

    /// Number of links.
    pub fn link_count(&self) -> usize {
        self.links.len()
    }
}

/// What a register write did to a port, for its VM's core.
pub enum PortEvent {
    /// Nothing to do.
    None,
    /// The driver is ready but a ring is unusable: stop the VM.
    BadRing(QueueError),
}

impl PortInner {
    /// Applies the effect of a register write: at `DRIVER_OK`, checks both
    /// rings, turns notifications off and brings the port up; at a reset,
    /// takes it down.
    pub fn after_write(&mut self, effect: WriteEffect) -> PortEvent {
        let bring_up = match effect {
            WriteEffect::None | WriteEffect::Notify(_) | WriteEffect::FeaturesRejected => {
                return PortEvent::None;
            }
            WriteEffect::DriverOk | WriteEffect::QueuesChanged => true,
            WriteEffect::Reset | WriteEffect::DriverFailed => false,
        };
        // The rings may have changed: whatever the poller holds from the old
        // ones is void, and frames wait until the new ones check.
        self.generation = self.generation.wrapping_add(1);
        if self.state == PortState::Up {
            self.state = PortState::Down;
        }
        let Some(mut ram) = self.ram.filter(|_| bring_up) else {
            return PortEvent::None;
        };
        for q in [RECEIVE_QUEUE, TRANSMIT_QUEUE] {
            let Some(queue) = self.transport.queue_mut(q) else {
                // A queue the driver did not set up: the port stays down
                // and its peer's frames wait.
                return PortEvent::None;
            };
            if let Err(e) = queue
                .check_rings(&mut ram)
                .and_then(|()| queue.set_no_notify(&mut ram, true))
            {
                return PortEvent::BadRing(e);
            }
        }
        self.state = PortState::Up;
        PortEvent::None
    }
}
