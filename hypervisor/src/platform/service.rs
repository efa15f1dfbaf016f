//! A service run's control plane on the machine: the control core serves COM2, and the VM port of the VM holding the control capability, each through a `control::Channel`; commands reach the core that owns a VM through that core's mailbox, which it drains between slices (no core touches another's VM state, no lock is held across a VM entry); each VM's status is published in atomics the `list` answer reads.

use super::com2;
use super::images;
use super::instr::rdtsc;
use super::memory::{self, Lent};
use super::net::Net;
use super::percpu::MAX_CORES;
use super::runtime_hooks::{self, RuntimeHooks};
use super::vm;
use crate::console::history::{Line, SharedHistory};
use crate::control::{
    Channel, Fleet, HookPlace, HookRefusal, HookStat, HookTarget, ImageRefusal, MapRow, Name, News,
    PlaceNow, Refusal, Request, Row, Seen, Starts, Target, Text, news,
};
use crate::datapath::poll::{FlowNow, MakeRefusal};
use crate::hooks::lifecycle::VmHook;
use crate::hypercall::HypercallError;
use crate::mem::access::{Gpa, GuestRam, GuestRead};
use crate::mem::raw::RawRam;
use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use heapless::Deque;
use spin::Mutex;
use vmm_abi::control::{
    CORE_CONTROL, CORE_POLLS, CORE_VMS, EVENT_ENDED, FLOW_LINK, FLOW_NIC, Message, NO_CORE,
    VM_RUNNING,
};
use vmm_abi::corral::bootinfo::NAME_MAX;
use vmm_abi::corral::hypercall::{Hypercall, MAX_CONTROL_IO};
use vmm_abi::manifest::{HookAttach, Manifest, PortRef, Restart, VmSpec};
use vmm_abi::report::LinkFlow;

/// Requests one core's mailbox holds (a whole `scale` of
/// [`crate::control::MAX_CHANGE`] VMs fits).
const MAILBOX: usize = 512;
/// Commands handed to cores and not yet answered, at most (so their
/// answers always have room).
const IN_FLIGHT: usize = 32;
/// Ticks the control core keeps sending after the run ended, at most
/// (the last answers: about 5 s of emulated time).
const FLUSH_TICKS: u64 = 500_000_000;
/// The core that serves the control channel of a service run (and polls
/// the links made while it runs).
pub const CONTROL_CORE: u32 = 0;
/// Places for VMs started at runtime, per core that runs VMs.
pub const RUNTIME_SLOTS: usize = 256;
/// Hypervisor memory counted per VM started at runtime beside its private
/// memory (VMCS, EPT tables and bookkeeping measure about 24 KiB for a
/// small VM; this is a bound, so a start that is accepted has the memory).
const VM_OVERHEAD: u64 = 64 << 10;

/// Bytes a control-capable VM may have handed over and the control core
/// not yet read.
const PORT_IN: usize = 4096;
/// Bytes of answers and events waiting for that VM to take them.
const PORT_OUT: usize = 8192;
/// Marks the sequence numbers of commands from the VM's channel among the
/// cores' answers (the serial line's are below it).
const VM_TAG: u32 = 1 << 31;
/// The bits of such a number that carry the holder count it was sent under
/// (its low 7 bits), so an answer to a holder that has since restarted is
/// dropped, never given to the next one.
const VM_EPOCH_BITS: u32 = 0x7f << 24;
/// The bits that carry the VM channel's own sequence number (a holder that
/// sends more than 2^24 commands in one run sees its later answers go to
/// earlier numbers: a `ctl` counts from 0 at each start).
const VM_SEQ_BITS: u32 = (1 << 24) - 1;

/// The tag of commands from the VM port's channel under holder count
/// `epoch`.
fn vm_tag(epoch: u32) -> u32 {
    VM_TAG | ((epoch << 24) & VM_EPOCH_BITS)
}

/// The control channel of the VM that holds the control capability: the
/// bytes its hypercalls hand over and take, its place, and a count of
/// holders, so the control core starts a fresh channel (sequence numbers
/// from 0) for each.
pub struct VmPort {
    holder: AtomicU32,
    epoch: AtomicU32,
    input: Mutex<Deque<u8, PORT_IN>>,
    output: Mutex<Deque<u8, PORT_OUT>>,
}

/// The one VM port (one VM holds the capability at a time).
pub static VM_PORT: VmPort = VmPort {
    holder: AtomicU32::new(u32::MAX),
    epoch: AtomicU32::new(0),
    input: Mutex::new(Deque::new()),
    output: Mutex::new(Deque::new()),
};

/// The VM in place `cell` (which holds the control capability) was created
/// (`held`) or destroyed: the port is its, fresh, or nobody's.
pub fn hold_control(cell: u32, held: bool) {
    let p = &VM_PORT;
    if !held && p.holder.load(Ordering::Acquire) != cell {
        return;
    }
    // Under both locks: the control core, which checks the count under
    // each of them, never moves a byte between an old holder and a new.
    let mut input = p.input.lock();
    let mut out = p.output.lock();
    p.holder
        .store(if held { cell } else { u32::MAX }, Ordering::Release);
    input.clear();
    out.clear();
    p.epoch.fetch_add(1, Ordering::AcqRel);
}

/// A control hypercall of the VM in place `cell`, whose memory is `ram`:
/// bytes taken from its buffer, or answer bytes written into it.
pub fn control_call(
    cell: u32,
    call: Hypercall,
    gpa: u64,
    len: u64,
    ram: &mut RawRam,
) -> Result<u64, HypercallError> {
    let p = &VM_PORT;
    if p.holder.load(Ordering::Acquire) != cell {
        return Err(HypercallError::NotGranted(call));
    }
    let outside = HypercallError::Buffer { call, gpa, len };
    let mut buf = [0u8; MAX_CONTROL_IO as usize];
    let n = (len as usize).min(buf.len());
    if call == Hypercall::ControlSend {
        ram.read(Gpa(gpa), &mut buf[..n]).map_err(|_| outside)?;
        let mut input = p.input.lock();
        let room = input.capacity() - input.len();
        let take = n.min(room);
        for &b in &buf[..take] {
            // Room was counted above.
            let _ = input.push_back(b);
        }
        return Ok(take as u64);
    }
    // Checked before anything is taken, so no byte is lost to a bad buffer.
    ram.check_writable(Gpa(gpa), n as u64)
        .map_err(|_| outside)?;
    let mut out = p.output.lock();
    let mut got = 0;
    while got < n {
        let Some(b) = out.pop_front() else { break };
        buf[got] = b;
        got += 1;
    }
    drop(out);
    ram.write(Gpa(gpa), &buf[..got]).map_err(|_| outside)?;
    Ok(got as u64)
}

/// The control core's side of the VM port: its channel, and the holder
/// count it was started for.
struct VmChannel {
    channel: Channel,
    epoch: u32,
}

/// The control core's channel for the VM port (a static: a channel's
/// buffers are kilobytes, and the run's state is built on a stack).
static VM_CHANNEL: Mutex<VmChannel> = Mutex::new(VmChannel {
    channel: Channel::new(),
    epoch: 0,
});

/// Per core: requests wait in its mailbox (read without the lock by a
/// core spinning for a lone VM's wait, which then gives the run loop a
/// moment).
static MAIL_WAITING: [AtomicBool; MAX_CORES] = [const { AtomicBool::new(false) }; MAX_CORES];

/// Whether requests wait for `core`.
#[inline]
pub fn mail_waiting(core: u32) -> bool {
    MAIL_WAITING
        .get(core as usize)
        .is_some_and(|f| f.load(Ordering::Relaxed))
}

/// One place for a VM as the control plane sees it: which VM holds it, its
/// names and core (written by the control core), its status (written by
/// its core). A manifest VM keeps its place; a place for VMs started at
/// runtime is given again once its VM has ended.
pub struct VmCell {
    /// Its core, or [`NO_CORE`].
    core: AtomicU32,
    /// The VM's id in the report (its manifest index, or a number counted
    /// on from there for VMs started at runtime: never given twice).
    id: AtomicU32,
    /// Whether a VM holds it (always, for a manifest VM's).
    used: AtomicBool,
    status: AtomicU8,
    restarts: AtomicU32,
    /// VM exits and guest instructions so far, as its core last wrote
    /// them (after each slice).
    exits: AtomicU64,
    ran: AtomicU64,
    /// Its name and entry.
    names: Mutex<(Name, Name)>,
    /// The console lines its VM printed lately (`corral logs`).
    history: SharedHistory,
    /// What each watcher ([`WATCHERS`]: the serial line's, the control
    /// VM's) was told of this place (the control core's).
    seen: Mutex<[Seen; WATCHERS]>,
    /// Arguments a VM started at runtime was given instead of its entry's
    /// (written by the control core before the start is mailed).
    args: Mutex<Option<Args>>,
    /// The spec of a VM started from an image rather than an entry
    /// (written by the control core before the start is mailed).
    spec: Mutex<Option<VmSpec<'static>>>,
}

/// A VM's arguments given at runtime.
pub type Args = heapless::String<{ vmm_abi::corral::bootinfo::ARGS_MAX }>;

impl VmCell {
    fn new(core: u32, id: u32, used: bool, name: &str, entry: &str) -> Self {
        VmCell {
            core: AtomicU32::new(core),
            id: AtomicU32::new(id),
            used: AtomicBool::new(used),
            status: AtomicU8::new(VM_RUNNING),
            restarts: AtomicU32::new(0),
            exits: AtomicU64::new(0),
            ran: AtomicU64::new(0),
            history: SharedHistory::new(),
            seen: Mutex::new([Seen::NOBODY; WATCHERS]),
            args: Mutex::new(None),
            spec: Mutex::new(None),
            names: Mutex::new((
                Name::try_from(name).unwrap_or_default(),
                Name::try_from(entry).unwrap_or_default(),
            )),
        }
    }
}

/// What a mail asks of a core.
#[derive(Clone, Copy, Debug)]
pub enum Job {
    /// A request on a VM it runs.
    Vm(Request),
    /// Start a VM like manifest VM `template` in place `cell`.
    Start {
        /// The manifest VM it copies.
        template: u32,
        /// Its place.
        cell: u32,
        /// Memory set aside for it until it is created.
        reserved: u64,
        /// Bytes of guest memory instead of the entry's; 0: the entry's.
        memory: u64,
        /// For the command's first VM: TSC when the control core took the
        /// command (its frame read), so that VM reports how long the
        /// command took to reach its `main` (one record per command: a
        /// record costs the console's time).
        command: Option<u64>,
    },
}

/// A request in a core's mailbox.
#[derive(Clone, Copy, Debug)]
pub struct Mail {
    /// The VM's id.
    pub vm: u32,
    /// What to do.
    pub job: Job,
    /// The command's sequence number, for the answer.
    pub seq: u32,
}

/// A command handed to cores: answered once `left` parts are done.
struct Group {
    seq: u32,
    left: u32,
    error: Option<Text>,
}

/// The control plane of a service run.
pub struct ControlPlane {
    manifest: Manifest<'static>,
    cells: &'static [VmCell],
    /// Cores that run VMs (bit N = core N).
    vm_cores: u64,
    /// Per core that may run VMs (by index), its mailbox.
    mail: &'static [Mutex<Deque<Mail, MAILBOX>>],
    groups: Mutex<heapless::Vec<Group, IN_FLIGHT>>,
    answers: Mutex<Deque<(u32, Result<(), Text>), IN_FLIGHT>>,
    ending: AtomicBool,
    channel: Mutex<Channel>,
    /// The next id of a VM started at runtime.
    next_id: AtomicU32,
    /// Memory promised to VMs started but not yet created.
    reserved: AtomicU64,
    /// Packet hooks attached at runtime.
    hooks: RuntimeHooks,
    /// The image upload in progress: the channel's tag it comes from, its
    /// name, its bytes so far and the frames they are in (one at a time:
    /// a channel's begin drops the other's, whose next chunk is refused).
    image_up: Mutex<Option<Staged>>,
    /// Per watcher, the place its next event is looked for first.
    watch_next: [AtomicU32; WATCHERS],
    /// Counts changes of a place a watcher is told of (a start, a status,
    /// a restart; lines count in `history::lines_added`), and per watcher
    /// the sum of both when a look through every place found nothing: it
    /// looks again only once the sum moved.
    changes: AtomicU64,
    quiet: [AtomicU64; WATCHERS],
    /// Per watcher, ends it was not told of before their places were
    /// given to new VMs (told first). Out of line: the control plane sits
    /// in the run's plan, which the boot core builds on its stack.
    late: &'static [Mutex<Deque<Late, LATE_ENDS>>],
}

/// Watchers of a run's events: the serial line's (the relay files them
/// for `corral events`) and the control VM's (`ctl` keeps them for
/// `GET /v1/events`), each told everything once, in order, on its own.
const WATCHERS: usize = 2;

/// An end a watcher is still to be told of: the VM's id, name, status,
/// core and restarts.
type Late = (u32, Name, u8, u32, u32);

/// Ends kept for a watcher whose places were reused before it was told
/// (a `scale` stops at most this many more is told from the places).
const LATE_ENDS: usize = 64;

impl ControlPlane {
    /// Places for VMs started at runtime when `vm_cores` cores run VMs.
    pub fn runtime_cells(vm_cores: u64) -> usize {
        RUNTIME_SLOTS * vm_cores.count_ones() as usize
    }

    /// The control plane over `manifest`'s VMs, on the cores `place` says
    /// (or [`NO_CORE`]; asked for each VM in manifest order), with
    /// [`ControlPlane::runtime_cells`] more places for VMs started at
    /// runtime on `vm_cores`; sets COM2 up.
    pub fn new(
        manifest: Manifest<'static>,
        vm_cores: u64,
        place: impl Fn(usize) -> u32,
    ) -> Result<Self, &'static str> {
        let count = manifest.len();
        let cells = memory::leak_slice(
            count + Self::runtime_cells(vm_cores),
            |i| {
                Ok(match manifest.get(i) {
                    Some(spec) => VmCell::new(place(i), i as u32, true, spec.name, spec.entry),
                    None => VmCell::new(NO_CORE, u32::MAX, false, "", ""),
                })
            },
            "no memory for the control plane",
        )?;
        // Mailboxes up to the highest core that runs VMs (they are large).
        let mail = memory::leak_slice(
            64 - vm_cores.leading_zeros() as usize,
            |_| Ok(Mutex::new(Deque::new())),
            "no memory for the cores' mailboxes",
        )?;
        let late = memory::leak_slice(
            WATCHERS,
            |_| Ok(Mutex::new(Deque::new())),
            "no memory for the control plane",
        )?;
        com2::init();
        Ok(ControlPlane {
            manifest,
            cells,
            vm_cores,
            mail,
            groups: Mutex::new(heapless::Vec::new()),
            answers: Mutex::new(Deque::new()),
            ending: AtomicBool::new(false),
            channel: Mutex::new(Channel::new()),
            next_id: AtomicU32::new(count as u32),
            reserved: AtomicU64::new(0),
            hooks: RuntimeHooks::new(),
            image_up: Mutex::new(None),
            watch_next: [const { AtomicU32::new(0) }; WATCHERS],
            changes: AtomicU64::new(0),
            quiet: [const { AtomicU64::new(u64::MAX) }; WATCHERS],
            late,
        })
    }

    /// VMs started so far, from the manifest and at runtime.
    pub fn started(&self) -> u32 {
        self.next_id.load(Ordering::Acquire)
    }

    /// Memory set aside for a VM that has now been created (or never will).
    pub fn release(&self, bytes: u64) {
        let _ = self
            .reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                Some(r.saturating_sub(bytes))
            });
    }

    /// Place `cell`'s console history (its VM adds the lines it prints).
    pub fn history(&self, cell: u32) -> Option<&'static SharedHistory> {
        self.cells.get(cell as usize).map(|c| &c.history)
    }

    /// The arguments place `cell`'s VM was started with instead of its
    /// entry's, if any.
    pub fn args(&self, cell: u32) -> Option<Args> {
        self.cells
            .get(cell as usize)
            .and_then(|c| c.args.lock().clone())
    }

    /// The spec place `cell`'s VM was started from, if it came from an
    /// image rather than a manifest entry.
    pub fn spec(&self, cell: u32) -> Option<VmSpec<'static>> {
        self.cells.get(cell as usize).and_then(|c| *c.spec.lock())
    }

    /// The net ports of the VM in place `cell`: its manifest entry's (an
    /// image's VM has none).
    fn net_ports(&self, cell: u32) -> u8 {
        if let Some(spec) = self.manifest.get(cell as usize) {
            return spec.net_ports;
        }
        let Some(c) = self.cells.get(cell as usize) else {
            return 0;
        };
        if let Some(spec) = *c.spec.lock() {
            return spec.net_ports;
        }
        let entry = c.names.lock().1.clone();
        (0..self.manifest.len())
            .filter_map(|i| self.manifest.get(i))
            .find(|s| s.entry == entry.as_str())
            .map_or(0, |s| s.net_ports)
    }

    /// Place `cell`'s name.
    pub fn name(&self, cell: u32) -> Name {
        self.cells
            .get(cell as usize)
            .map(|c| c.names.lock().0.clone())
            .unwrap_or_default()
    }

    /// Whether the operator ended the run.
    pub fn ending(&self) -> bool {
        self.ending.load(Ordering::Acquire)
    }

    /// The next request for `core`'s VMs (its own core only).
    pub fn take_mail(&self, core: u32) -> Option<Mail> {
        let mut q = self.mail.get(core as usize)?.lock();
        let mail = q.pop_front();
        if q.is_empty()
            && let Some(f) = MAIL_WAITING.get(core as usize)
        {
            f.store(false, Ordering::Relaxed);
        }
        mail
    }

    /// A core carried out (or refused) its part of command `seq`; the
    /// command is answered once every part is done (with the first error).
    pub fn answer(&self, seq: u32, result: Result<(), Text>) {
        let mut groups = self.groups.lock();
        let Some(at) = groups.iter().position(|g| g.seq == seq) else {
            return;
        };
        let g = &mut groups[at];
        g.left = g.left.saturating_sub(1);
        if let Err(t) = result
            && g.error.is_none()
        {
            g.error = Some(t);
        }
        if g.left == 0 {
            let g = groups.swap_remove(at);
            // At most IN_FLIGHT groups exist, so there is room.
            let _ = self
                .answers
                .lock()
                .push_back((g.seq, g.error.map_or(Ok(()), Err)));
        }
    }

    /// The VM in place `cell` ended: `status` is a `VM_*`.
    pub fn set_status(&self, cell: u32, status: u8) {
        if let Some(c) = self.cells.get(cell as usize) {
            c.status.store(status, Ordering::Release);
            self.changes.fetch_add(1, Ordering::Release);
        }
    }

    /// What a watcher that found nothing new compares: every change of a
    /// place and every line added so far.
    fn news_key(&self) -> u64 {
        self.changes
            .load(Ordering::Acquire)
            .wrapping_add(crate::console::history::lines_added())
    }

    /// The VM in place `cell` restarted (`restarts` times so far); it runs
    /// again.
    pub fn set_restarts(&self, cell: u32, restarts: u32) {
        if let Some(c) = self.cells.get(cell as usize) {
            c.restarts.store(restarts, Ordering::Release);
            c.status.store(VM_RUNNING, Ordering::Release);
            self.changes.fetch_add(1, Ordering::Release);
        }
    }

    /// What the VM in place `cell` has done so far (its core, after a
    /// slice): VM exits and guest instructions.
    pub fn set_counters(&self, cell: u32, exits: u64, ran: u64) {
        if let Some(c) = self.cells.get(cell as usize) {
            c.exits.store(exits, Ordering::Relaxed);
            c.ran.store(ran, Ordering::Relaxed);
        }
    }

    /// The status (`VM_*`) of the VM in place `cell`.
    pub fn status(&self, cell: u32) -> u8 {
        self.cells
            .get(cell as usize)
            .map_or(VM_RUNNING, |c| c.status.load(Ordering::Acquire))
    }

    /// One pass of the control core: answers from cores, bytes in, time,
    /// bytes out. Never waits. `net` is read for `stats`.
    pub fn serve(&self, net: &Net) {
        let Some(mut ch) = self.channel.try_lock() else {
            return;
        };
        let Some(mut vm) = VM_CHANNEL.try_lock() else {
            return;
        };
        // A new holder of the port: a fresh channel.
        let epoch = VM_PORT.epoch.load(Ordering::Acquire);
        if vm.epoch != epoch {
            *vm = VmChannel {
                channel: Channel::new(),
                epoch,
            };
        }
        // The cores' answers, each to its channel, in order; one whose
        // channel has no room waits without holding the other's back, and
        // one to a holder that has since restarted is dropped.
        let tag = vm_tag(vm.epoch);
        let waiting: heapless::Vec<(u32, Result<(), Text>), IN_FLIGHT> =
            core::iter::from_fn(|| self.answers.lock().pop_front()).collect();
        let mut kept: heapless::Vec<(u32, Result<(), Text>), IN_FLIGHT> = heapless::Vec::new();
        for (seq, result) in waiting {
            let result_ref = result.as_ref().map(|_| ()).map_err(|t| t.as_str());
            let delivered = if seq & VM_TAG == 0 {
                ch.has_room() && {
                    ch.complete(seq, result_ref);
                    true
                }
            } else if seq & (VM_TAG | VM_EPOCH_BITS) != tag {
                true
            } else {
                vm.channel.has_room() && {
                    vm.channel.complete(seq & VM_SEQ_BITS, result_ref);
                    true
                }
            };
            if !delivered {
                // At most IN_FLIGHT were taken out.
                let _ = kept.push((seq, result));
            }
        }
        {
            let mut answers = self.answers.lock();
            for a in kept.into_iter().rev() {
                // Room: these came out of it, and only groups (at most
                // IN_FLIGHT with these) add to it.
                let _ = answers.push_front(a);
            }
        }
        let mut fleet = Machine(self, net, 0);
        while ch.wants_input() {
            let Some(b) = com2::read() else { break };
            ch.receive(b, rdtsc(), &mut fleet);
        }
        ch.tick(rdtsc(), &mut fleet);
        com2::send_ready(|| ch.pop_out());
        // The VM's channel: its bytes in (only its holder's), answers out
        // while they fit.
        let mut fleet = Machine(self, net, tag);
        while vm.channel.wants_input() {
            let b = {
                let mut input = VM_PORT.input.lock();
                if VM_PORT.epoch.load(Ordering::Acquire) != vm.epoch {
                    break;
                }
                input.pop_front()
            };
            let Some(b) = b else { break };
            vm.channel.receive(b, rdtsc(), &mut fleet);
        }
        vm.channel.tick(rdtsc(), &mut fleet);
        let mut out = VM_PORT.output.lock();
        // Not into a newer holder's port.
        if VM_PORT.epoch.load(Ordering::Acquire) == vm.epoch {
            while !out.is_full() {
                let Some(b) = vm.channel.pop_out() else { break };
                let _ = out.push_back(b);
            }
        }
    }

    /// After the run ended: sends what is left (every core's answers and
    /// the `end`'s), for at most [`FLUSH_TICKS`].
    pub fn flush(&self, net: &Net) {
        let start = rdtsc();
        loop {
            self.serve(net);
            let idle = self.groups.lock().is_empty()
                && self.answers.lock().is_empty()
                && self.channel.lock().pending_out() == 0;
            if idle || rdtsc().wrapping_sub(start) > FLUSH_TICKS {
                return;
            }
            core::hint::spin_loop();
        }
    }
}

/// The run as the channel sees it (its places, and its links and NICs).
/// The run as a channel sees it: the control plane, the data path, and the
/// tag its commands' sequence numbers carry among the cores' answers (0
/// for the serial line's, [`VM_TAG`] for the VM port's).
struct Machine<'a>(&'a ControlPlane, &'a Net, u32);

impl Machine<'_> {
    /// A link's row for `stats` and `link attach|detach`: its ends by
    /// their VMs' names, its counters each way.
    fn link_row(
        &self,
        index: u32,
        (a, b): (PortRef, PortRef),
        (ab, ba): (LinkFlow, LinkFlow),
        send: &mut dyn FnMut(&Message<'_>),
    ) {
        let mut label: heapless::String<{ 2 * (NAME_MAX + 4) + 3 }> = heapless::String::new();
        // Names are at most NAME_MAX bytes: the label fits.
        let _ = write!(
            label,
            "{}.{}<->{}.{}",
            self.0.name(a.vm),
            a.port,
            self.0.name(b.vm),
            b.port
        );
        send(&Message::FlowRow {
            kind: FLOW_LINK,
            index,
            label: &label,
            in_frames: ab.frames,
            in_bytes: ab.bytes,
            in_drops: ab.dropped(),
            out_frames: ba.frames,
            out_bytes: ba.bytes,
            out_drops: ba.dropped(),
        });
    }
}

impl Machine<'_> {
    /// Each core's roles (`CORE_*`; 0: none): VMs, polling, the control
    /// channel (core 0).
    fn roles(&self) -> [u8; MAX_CORES] {
        let mut roles = [0u8; MAX_CORES];
        for (c, r) in roles.iter_mut().enumerate() {
            if self.0.vm_cores & (1 << c) != 0 {
                *r |= CORE_VMS;
            }
        }
        roles[0] |= CORE_CONTROL;
        for i in 0..self.1.flow_count() {
            let core = match self.1.flow_now(i) {
                Some(FlowNow::Link { core, .. } | FlowNow::Nic { core, .. }) => core,
                None => continue,
            };
            if let Some(r) = roles.get_mut(core as usize) {
                *r |= CORE_POLLS;
            }
        }
        roles
    }

    /// The `k`th core with a role: its row of `stats`.
    fn core_row(&self, k: u32, send: &mut dyn FnMut(&Message<'_>)) {
        let roles = self.roles();
        let Some((core, &role)) = roles
            .iter()
            .enumerate()
            .filter(|(_, r)| **r != 0)
            .nth(k as usize)
        else {
            return;
        };
        let core = core as u32;
        let (mut vms, mut ran) = (0u32, 0u64);
        for c in self.0.cells {
            if c.used.load(Ordering::Acquire) && c.core.load(Ordering::Acquire) == core {
                ran += c.ran.load(Ordering::Relaxed);
                if c.status.load(Ordering::Acquire) == VM_RUNNING {
                    vms += 1;
                }
            }
        }
        let mut busy = 0u64;
        for i in 0..self.1.flow_count() {
            busy += match self.1.flow_now(i) {
                Some(FlowNow::Link { core: c, busy, .. }) if c == core => busy,
                Some(FlowNow::Nic { core: c, wire, .. }) if c == core => {
                    wire.rx_busy + wire.tx_busy
                }
                _ => 0,
            };
        }
        send(&Message::CoreRow {
            core,
            role,
            vms,
            exits: super::net::exits_on(core),
            ran,
            busy,
        });
    }

    /// This channel's watcher: 0 for the serial line's, 1 for the VM's.
    fn watcher(&self) -> usize {
        usize::from(self.2 != 0)
    }

    /// Command `seq` of this channel as the cores' answers carry it.
    fn tagged(&self, seq: u32) -> u32 {
        if self.2 == 0 {
            seq
        } else {
            (seq & VM_SEQ_BITS) | self.2
        }
    }

    /// Hands `mails` (each with its core) to their cores as one command
    /// answered `seq`: all or, if a mailbox lacks room, none; `commit` runs
    /// once it is sure they go, before any does.
    fn send(
        &self,
        mails: impl Iterator<Item = (u32, Mail)> + Clone,
        seq: u32,
        commit: impl FnOnce(),
    ) -> Result<(), Refusal> {
        let cp = self.0;
        let mut groups = cp.groups.lock();
        if groups.is_full() {
            return Err(Refusal::Busy {
                limit: IN_FLIGHT as u32,
            });
        }
        // Room first (only this core posts, so it stays).
        let mut want = [0usize; MAX_CORES];
        for (core, _) in mails.clone() {
            let slot = want.get_mut(core as usize).ok_or(Refusal::NoCore)?;
            *slot += 1;
        }
        for (core, n) in want.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            let Some(q) = cp.mail.get(core) else {
                return Err(Refusal::NoCore);
            };
            if q.lock().len() + n > MAILBOX {
                return Err(Refusal::MailboxFull { core: core as u32 });
            }
        }
        let left = want.iter().sum::<usize>() as u32;
        commit();
        if left == 0 {
            let _ = cp.answers.lock().push_back((seq, Ok(())));
            return Ok(());
        }
        let _ = groups.push(Group {
            seq,
            left,
            error: None,
        });
        drop(groups);
        for (core, mail) in mails {
            // Room was checked above.
            if let Some(q) = cp.mail.get(core as usize) {
                let _ = q.lock().push_back(mail);
            }
            if let Some(f) = MAIL_WAITING.get(core as usize) {
                f.store(true, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// The cores VM `template`'s entry may start VMs on, each with the
    /// places it has left for VMs started at runtime.
    fn room(&self, cores: u64) -> [u32; MAX_CORES] {
        let cp = self.0;
        let allowed = match cores & cp.vm_cores {
            0 => cp.vm_cores,
            m => m,
        };
        let mut room = [0u32; MAX_CORES];
        for (core, r) in room.iter_mut().enumerate() {
            if allowed & (1 << core) != 0 {
                *r = RUNTIME_SLOTS as u32;
            }
        }
        let first_runtime = cp.manifest.len();
        for c in &cp.cells[first_runtime..] {
            if c.used.load(Ordering::Acquire) && c.status.load(Ordering::Acquire) == VM_RUNNING {
                let core = c.core.load(Ordering::Acquire) as usize;
                if let Some(r) = room.get_mut(core) {
                    *r = r.saturating_sub(1);
                }
            }
        }
        room
    }
}

/// An image upload: its channel's tag, its name, its bytes, their frames.
type Staged = (u32, Name, &'static mut [u8], Lent);

/// Gives an image upload's frames back, if there is one.
fn drop_staged(staged: Option<Staged>) {
    if let Some((_, _, buf, lent)) = staged {
        let _ = buf;
        // SAFETY: the staged bytes were the only reference into these
        // frames, and they were just dropped.
        unsafe { memory::give_back(lent) };
    }
}

/// A VM's start from a job's template that is no manifest entry's: its
/// spec is its place's ([`ControlPlane::spec`]).
pub const NO_TEMPLATE: u32 = u32::MAX;

/// Guest memory of a VM started from an image unless the start says.
pub const IMAGE_MEMORY: u64 = 1 << 20;

/// The spec of a VM started from image `image` (with `memory` bytes, 0:
/// [`IMAGE_MEMORY`]) on any of `cores`: no budget, no restarts, no
/// devices.
fn image_spec(image: &'static str, memory: u64, cores: u64) -> VmSpec<'static> {
    VmSpec {
        name: image,
        image,
        args: "",
        memory: if memory == 0 { IMAGE_MEMORY } else { memory },
        budget: 0,
        cores,
        restart: Restart::Never,
        restart_limit: 0,
        net_ports: 0,
        console: false,
        control: false,
        entry: image,
    }
}

impl Fleet for Machine<'_> {
    fn has_image(&self, name: &str) -> bool {
        images::get(name).is_some()
    }

    fn image_begin(&mut self, name: &str, bytes: u32) -> Result<(), ImageRefusal> {
        // Either channel's upload in progress is dropped.
        drop_staged(self.0.image_up.lock().take());
        let (buf, lent) = memory::lend_slice(bytes as usize, 0u8).ok_or(ImageRefusal::NoMemory)?;
        let name = Name::try_from(name).unwrap_or_default();
        *self.0.image_up.lock() = Some((self.2, name, buf, lent));
        Ok(())
    }

    fn image_write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), ImageRefusal> {
        let mut staged = self.0.image_up.lock();
        let to = staged
            .as_mut()
            .filter(|s| s.0 == self.2)
            .and_then(|s| s.2.get_mut(offset as usize..offset as usize + bytes.len()))
            .ok_or(ImageRefusal::NoUpload)?;
        to.copy_from_slice(bytes);
        Ok(())
    }

    fn image_abort(&mut self) {
        let mut staged = self.0.image_up.lock();
        // Only this channel's own upload.
        if staged.as_ref().is_some_and(|s| s.0 == self.2) {
            drop_staged(staged.take());
        }
    }

    fn image_commit(&mut self, name: &str) -> Result<(), ImageRefusal> {
        let mut staged = self.0.image_up.lock();
        if !staged
            .as_ref()
            .is_some_and(|s| s.0 == self.2 && s.1 == name)
        {
            return Err(ImageRefusal::NoUpload);
        }
        let Some((_, name, buf, lent)) = staged.take() else {
            return Err(ImageRefusal::NoUpload);
        };
        drop(staged);
        let file: &'static [u8] = buf;
        match images::add(&name, file) {
            Ok(()) => {
                log::info!(
                    "image {name}: uploaded, {} bytes, kept for the run",
                    file.len()
                );
                Ok(())
            }
            Err(why) => {
                let _ = file;
                // The image was refused and kept nothing over the bytes (an
                // unusable image holds no frames and is not stored).
                // SAFETY: the one reference into these frames was dropped.
                unsafe { memory::give_back(lent) };
                Err(why)
            }
        }
    }

    fn count(&self) -> u32 {
        self.0.cells.len() as u32
    }

    fn flows(&self) -> u32 {
        // The links and NICs, then a row per core with a role.
        self.1.flow_count() as u32 + self.roles().iter().filter(|&&r| r != 0).count() as u32
    }

    fn log_line(&self, vm: u32, from: u64) -> Option<Line> {
        self.0.cells.get(vm as usize)?.history.line(from)
    }

    fn log_head(&self, vm: u32) -> (u32, u64) {
        self.0.cells.get(vm as usize).map_or((vm, 0), |c| {
            (c.id.load(Ordering::Acquire), c.history.next())
        })
    }

    fn link_attach(
        &mut self,
        a: PortRef,
        b: PortRef,
        send: &mut dyn FnMut(&Message<'_>),
    ) -> Result<(), MakeRefusal> {
        // A place for VMs started at runtime has every port a VM may have;
        // its VM, only its entry's.
        for p in [a, b] {
            if p.port >= self.0.net_ports(p.vm) {
                return Err(MakeRefusal::NoPort(p));
            }
        }
        let m = self.1.make_link(a, b)?;
        log::info!(
            "link {}: {}.{} <-> {}.{} made, polled by core {}",
            m.number,
            self.0.name(a.vm),
            a.port,
            self.0.name(b.vm),
            b.port,
            m.core
        );
        self.link_row(m.number, (m.a, m.b), (m.ab, m.ba), send);
        Ok(())
    }

    fn link_detach(
        &mut self,
        a: PortRef,
        b: PortRef,
        send: &mut dyn FnMut(&Message<'_>),
    ) -> Result<(), MakeRefusal> {
        let m = self.1.unmake_link(a, b, |vm| self.0.name(vm))?;
        log::info!(
            "link {}: {}.{} <-> {}.{} unmade after {} frames a->b, {} b->a",
            m.number,
            self.0.name(m.a.vm),
            m.a.port,
            self.0.name(m.b.vm),
            m.b.port,
            m.ab.frames,
            m.ba.frames
        );
        self.link_row(m.number, (m.a, m.b), (m.ab, m.ba), send);
        Ok(())
    }

    fn flow(&self, i: u32, send: &mut dyn FnMut(&Message<'_>)) {
        let flows = self.1.flow_count() as u32;
        if i >= flows {
            return self.core_row(i - flows, send);
        }
        match self.1.flow_now(i as usize) {
            None => {}
            Some(FlowNow::Link {
                index,
                a,
                b,
                ab,
                ba,
                ..
            }) => self.link_row(index, (a, b), (ab, ba), send),
            Some(FlowNow::Nic {
                index,
                name,
                wire,
                drops,
                ..
            }) => send(&Message::FlowRow {
                kind: FLOW_NIC,
                index,
                label: name,
                in_frames: wire.rx_frames,
                in_bytes: wire.rx_bytes,
                in_drops: drops.0,
                out_frames: wire.tx_frames,
                out_bytes: wire.tx_bytes,
                out_drops: drops.1,
            }),
        }
    }

    fn row(&self, vm: u32) -> Option<Row> {
        let cell = self.0.cells.get(vm as usize)?;
        if !cell.used.load(Ordering::Acquire) {
            return None;
        }
        let (name, entry) = cell.names.lock().clone();
        Some(Row {
            name,
            entry,
            status: cell.status.load(Ordering::Acquire),
            core: cell.core.load(Ordering::Acquire),
            restarts: cell.restarts.load(Ordering::Acquire),
            exits: cell.exits.load(Ordering::Relaxed),
            ran: cell.ran.load(Ordering::Relaxed),
        })
    }

    fn find(&self, name: &str) -> Option<u32> {
        self.0
            .cells
            .iter()
            .position(|c| c.used.load(Ordering::Acquire) && c.names.lock().0 == name)
            .map(|i| i as u32)
    }

    fn post(&mut self, vm: u32, request: Request, seq: u32) -> Result<(), Refusal> {
        let seq = self.tagged(seq);
        let cell = self.0.cells.get(vm as usize).ok_or(Refusal::NoCore)?;
        let core = cell.core.load(Ordering::Acquire);
        if core == NO_CORE {
            return Err(Refusal::NoCore);
        }
        let mail = Mail {
            vm: cell.id.load(Ordering::Acquire),
            job: Job::Vm(request),
            seq,
        };
        self.send(core::iter::once((core, mail)), seq, || {})
    }

    fn change(&mut self, starts: &Starts<'_>, stops: &[u32], seq: u32) -> Result<(), Refusal> {
        let command = rdtsc();
        let seq = self.tagged(seq);
        let cp = self.0;
        // A manifest entry's spec, or an image's: one named by the start,
        // or that of the VM started from an image that `start ENTRY`
        // copies.
        let (spec, from_image) = if starts.from_image {
            let image = images::get(starts.entry).ok_or(Refusal::Template {
                why: "no such image",
            })?;
            (image_spec(image.name, starts.memory, cp.vm_cores), true)
        } else {
            match cp.manifest.get(starts.template as usize) {
                Some(spec) => (spec, false),
                None => (cp.spec(starts.template).ok_or(Refusal::NoCore)?, true),
            }
        };
        // Every start checked before anything is done.
        let mut cores = [NO_CORE; crate::control::MAX_CHANGE];
        let mut places = [0u32; crate::control::MAX_CHANGE];
        let n = starts.count as usize;
        let mut cost = 0;
        if n > 0 {
            if spec.control {
                return Err(Refusal::Template {
                    why: "its VM holds the control capability, which one VM holds",
                });
            }
            if !from_image && super::blocks::has_blocks(starts.template) {
                return Err(Refusal::Template {
                    why: "its VM has block devices, and a disk serves one VM",
                });
            }
            let image = images::get(spec.image).ok_or(Refusal::Template {
                why: "its image is not loaded",
            })?;
            if n > cores.len() {
                return Err(Refusal::NoRoom {
                    free: cores.len() as u32,
                });
            }
            // Places: a core with room (the least loaded), and a free cell.
            let mut room = self.room(spec.cores);
            let free_room: u32 = room.iter().sum();
            let mut cell_iter = (cp.manifest.len()..cp.cells.len()).filter(|&i| {
                let c = &cp.cells[i];
                !c.used.load(Ordering::Acquire) || c.status.load(Ordering::Acquire) != VM_RUNNING
            });
            for k in 0..n {
                let best = (0..MAX_CORES)
                    .filter(|&c| room[c] > 0)
                    .max_by_key(|&c| (room[c], core::cmp::Reverse(c)));
                let (Some(core), Some(cell)) = (best, cell_iter.next()) else {
                    return Err(Refusal::NoRoom {
                        free: free_room.min(k as u32),
                    });
                };
                room[core] -= 1;
                cores[k] = core as u32;
                places[k] = cell as u32;
            }
            let memory = if starts.memory == 0 {
                spec.memory
            } else {
                starts.memory
            };
            cost = vm::private_bytes(memory, image).ok_or(Refusal::Template {
                why: "its memory does not hold its image",
            })? + VM_OVERHEAD;
            let free = memory::free_bytes().saturating_sub(cp.reserved.load(Ordering::Acquire));
            let fit = free / cost;
            if fit < n as u64 {
                return Err(Refusal::Memory { fit: fit as u32 });
            }
        }
        let stop_mail = |&vm: &u32| {
            let cell = cp.cells.get(vm as usize)?;
            let core = cell.core.load(Ordering::Acquire);
            (core != NO_CORE).then(|| {
                (
                    core,
                    Mail {
                        vm: cell.id.load(Ordering::Acquire),
                        job: Job::Vm(Request::Stop),
                        seq,
                    },
                )
            })
        };
        let first_id = cp.next_id.load(Ordering::Acquire);
        let start_mail = |k: usize| {
            (
                cores[k],
                Mail {
                    vm: first_id + k as u32,
                    job: Job::Start {
                        template: if from_image {
                            NO_TEMPLATE
                        } else {
                            starts.template
                        },
                        cell: places[k],
                        reserved: cost,
                        memory: starts.memory,
                        command: (k == 0).then_some(command),
                    },
                    seq,
                },
            )
        };
        let mails = stops
            .iter()
            .filter_map(stop_mail)
            .chain((0..n).map(start_mail));
        // The places are taken before the mails go (a core reads them).
        let net = self.1;
        let commit = || {
            let entry = Name::try_from(starts.entry).unwrap_or_default();
            for (k, (&p, &core)) in places[..n].iter().zip(&cores[..n]).enumerate() {
                let c = &cp.cells[p as usize];
                // An end a watcher was not told of yet is kept for it.
                let seen = *c.seen.lock();
                let status = c.status.load(Ordering::Acquire);
                for (w, seen) in seen.iter().enumerate() {
                    if c.used.load(Ordering::Acquire)
                        && seen.id == c.id.load(Ordering::Acquire)
                        && seen.status == VM_RUNNING
                        && status != VM_RUNNING
                    {
                        let Some(late) = cp.late.get(w) else { continue };
                        let _ = late.lock().push_back((
                            seen.id,
                            c.names.lock().0.clone(),
                            status,
                            c.core.load(Ordering::Acquire),
                            c.restarts.load(Ordering::Acquire),
                        ));
                    }
                }
                // The place's old VM's runtime hooks and links are not
                // the new one's.
                if c.used.load(Ordering::Acquire) {
                    let old = c.names.lock().0.clone();
                    cp.hooks.detach_vm(p, &old);
                    net.unmake_links_of(p, |vm| cp.name(vm));
                }
                // The place's old lines are not the new VM's (a watcher
                // reads them under the id stored below).
                c.history.clear();
                *c.names.lock() = (starts.name(k as u32), entry.clone());
                // Checked by the channel: printable, at most ARGS_MAX bytes.
                *c.args.lock() = starts.args.and_then(|a| Args::try_from(a).ok());
                *c.spec.lock() = from_image.then_some(spec);
                c.core.store(core, Ordering::Release);
                c.id.store(first_id + k as u32, Ordering::Release);
                c.restarts.store(0, Ordering::Release);
                c.exits.store(0, Ordering::Relaxed);
                c.ran.store(0, Ordering::Relaxed);
                c.status.store(VM_RUNNING, Ordering::Release);
                c.used.store(true, Ordering::Release);
            }
            cp.next_id.fetch_add(n as u32, Ordering::AcqRel);
            cp.reserved.fetch_add(cost * n as u64, Ordering::AcqRel);
            cp.changes.fetch_add(1, Ordering::Release);
        };
        self.send(mails, seq, commit)
    }

    fn hook_place(&self, on: Target) -> HookPlace {
        self.0.hooks.place(self.1, on)
    }

    fn hook_begin(&mut self, target: &HookTarget<'_>) -> Result<(), HookRefusal> {
        self.0.hooks.begin(self.2, target)
    }

    fn hook_write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), HookRefusal> {
        self.0.hooks.write(self.2, offset, bytes)
    }

    fn hook_abort(&mut self) {
        self.0.hooks.abort(self.2);
    }

    fn hook_commit(&mut self) -> Result<(HookStat, Option<HookStat>), HookRefusal> {
        let manifest_hooks = self.0.manifest.hooks().count() as u32;
        self.0
            .hooks
            .commit(self.2, self.1, manifest_hooks, |cell| self.0.name(cell))
    }

    fn hook_detach(&mut self, name: &str) -> Result<HookStat, HookRefusal> {
        let manifest = self.1.packet_hooks().iter().any(|h| h.name == name)
            || self.1.vm_hooks().iter().any(|h| h.name == name);
        if manifest {
            return Err(HookRefusal::FromManifest);
        }
        self.0.hooks.detach(self.1, name, |cell| self.0.name(cell))
    }

    fn hook_stat(&self, name: &str) -> Option<HookStat> {
        let manifest = self.1.packet_hooks().iter().find(|h| {
            h.name == name && matches!(h.attach, HookAttach::Link { .. } | HookAttach::Nic { .. })
        });
        // A manifest VM hook's row names its VM, or for a core's slice
        // hook the core (`core-N`).
        let vm_name = |h: &VmHook<'_>| match h.core {
            Some(c) => {
                let mut n = Name::new();
                let _ = write!(n, "core-{c}");
                n
            }
            None => self.0.name(h.vm),
        };
        let manifest_vm = self.1.vm_hooks().iter().find(|h| h.name == name);
        match (manifest, manifest_vm) {
            (Some(h), _) => Some(runtime_hooks::stat_of(h)),
            (None, Some(h)) => Some(runtime_hooks::vm_stat_of(h, vm_name(h))),
            (None, None) => self
                .0
                .hooks
                .with(self.1, name, runtime_hooks::stat_of)
                .or_else(|| {
                    self.0
                        .hooks
                        .with_vm(name, |h| runtime_hooks::vm_stat_of(h, self.0.name(h.vm)))
                }),
        }
    }

    fn hook_entry(&self, name: &str, nth: u32) -> Option<MapRow> {
        let manifest = self.1.packet_hooks().iter().find(|h| h.name == name);
        if let Some(h) = self.1.vm_hooks().iter().find(|h| h.name == name) {
            return runtime_hooks::vm_entry_of(h, nth);
        }
        match manifest {
            Some(h) => runtime_hooks::entry_of(h, nth),
            None => match self
                .0
                .hooks
                .with(self.1, name, |h| runtime_hooks::entry_of(h, nth))
            {
                Some(row) => row,
                None => self
                    .0
                    .hooks
                    .with_vm(name, |h| runtime_hooks::vm_entry_of(h, nth))?,
            },
        }
    }

    fn end(&mut self) {
        self.0.ending.store(true, Ordering::Release);
        // Every core's run loop must see it, even one spinning in a lone
        // VM's wait.
        for f in &MAIL_WAITING {
            f.store(true, Ordering::Relaxed);
        }
    }

    fn free_bytes(&self) -> u64 {
        memory::free_bytes()
    }

    fn watch_start(&mut self) {
        let w = self.watcher();
        if let Some(late) = self.0.late.get(w) {
            late.lock().clear();
        }
        self.0.quiet[w].store(u64::MAX, Ordering::Relaxed);
        for c in self.0.cells {
            let used = c.used.load(Ordering::Acquire);
            c.seen.lock()[w] = Seen {
                id: if used {
                    c.id.load(Ordering::Acquire)
                } else {
                    Seen::NOBODY.id
                },
                line: c.history.next(),
                status: c.status.load(Ordering::Acquire),
                restarts: c.restarts.load(Ordering::Acquire),
            };
        }
    }

    fn next_event(&mut self, send: &mut dyn FnMut(&Message<'_>)) -> bool {
        let w = self.watcher();
        let late = self.0.late.get(w).and_then(|l| l.lock().pop_front());
        if let Some((id, name, status, core, restarts)) = late {
            send(&Message::VmEvent {
                vm: id,
                name: &name,
                event: EVENT_ENDED,
                status,
                core,
                restarts,
            });
            return true;
        }
        // Nothing changed since a look through every place found nothing:
        // none again (the control core passes here often).
        let key = self.0.news_key();
        if self.0.quiet[w].load(Ordering::Relaxed) == key {
            return false;
        }
        let cells = self.0.cells;
        let start = self.0.watch_next[w].load(Ordering::Relaxed) as usize;
        for k in 0..cells.len() {
            let i = (start + k) % cells.len();
            let c = &cells[i];
            if !c.used.load(Ordering::Acquire) {
                continue;
            }
            let now = PlaceNow {
                id: c.id.load(Ordering::Acquire),
                status: c.status.load(Ordering::Acquire),
                restarts: c.restarts.load(Ordering::Acquire),
            };
            let event = news(&mut c.seen.lock()[w], now, |from| c.history.line(from));
            if let Some(event) = event {
                let name = c.names.lock().0.clone();
                match event {
                    News::Vm {
                        id,
                        event,
                        status,
                        restarts,
                    } => send(&Message::VmEvent {
                        vm: id,
                        name: &name,
                        event,
                        status,
                        core: c.core.load(Ordering::Acquire),
                        restarts,
                    }),
                    News::Line { id, seq, text } => send(&Message::Console {
                        vm: id,
                        name: &name,
                        seq,
                        text: &text,
                    }),
                }
                // Round robin: a VM that prints a lot does not hold the
                // others' events back.
                self.0.watch_next[w].store(((i + 1) % cells.len()) as u32, Ordering::Relaxed);
                return true;
            }
        }
        self.0.quiet[w].store(key, Ordering::Relaxed);
        false
    }
}
