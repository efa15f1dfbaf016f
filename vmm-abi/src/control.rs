//! The control protocol of a running host (issue 12's first part): framed, versioned, checksummed messages — commands, answers and events — declared once here, transport-agnostic, with named errors for every malformed frame and a session that refuses replayed or out-of-order ones.
//!
//! A frame is, little-endian: the magic `CC`, the protocol version, the
//! message kind, a sequence number (u32), the payload length (u16, at most
//! [`MAX_PAYLOAD`]), the payload, and a CRC-32 (IEEE) of everything before
//! it. Text in a payload is a length byte and that many UTF-8 bytes.
//! [`next_frame`] reads one frame from the front of a byte stream: a frame,
//! "need more bytes", or an error with how many bytes to skip so a reader
//! on a serial line finds the next frame (nothing here can panic on any
//! input). [`Session`] checks the sequence numbers of one direction.
//!
//! A hook is attached at runtime in several commands, as a program of up
//! to 4096 instructions does not fit one frame: [`Message::HookBegin`]
//! (name, place ([`HookOn`]: a link direction or a shared NIC's queue for
//! a packet hook, a VM for a restart, exit or slice hook), instruction
//! count, map table), then
//! [`Message::HookChunk`]s of at most [`CHUNK_BYTES`] in order, then
//! [`Message::HookCommit`]; each is answered. A chunk out of order, or a
//! commit before every instruction came, drops the upload (nothing is
//! attached). [`Message::HookDetach`] and [`Message::HookMaps`] answer with
//! a [`Message::HookRow`] (and [`Message::MapEntry`] rows).

#![forbid(unsafe_code)]

use crate::hook::insn::INSN_SIZE;
use crate::hook::map::{MAP_DEF_SIZE, MAX_KEY_SIZE, MAX_VALUE_SIZE};
use crate::hook::{MAX_MAPS, MapDef};
use core::fmt;

/// The first two bytes of every frame.
pub const MAGIC: [u8; 2] = *b"CC";
/// The protocol version this crate speaks.
pub const CONTROL_VERSION: u8 = 10;
/// Bytes before the payload.
pub const HEADER: usize = 10;
/// Bytes after it (the CRC-32).
pub const TRAILER: usize = 4;
/// Most payload bytes in one frame.
pub const MAX_PAYLOAD: usize = 1024;
/// Most bytes of one frame.
pub const MAX_FRAME: usize = HEADER + MAX_PAYLOAD + TRAILER;

/// A VM row's status: created or waiting to be (it has not ended).
pub const VM_RUNNING: u8 = 0;
/// A VM row's status: it exited (its code in the report).
pub const VM_EXITED: u8 = 1;
/// A VM row's status: the hypervisor stopped it (a fault, its budget).
pub const VM_KILLED: u8 = 2;
/// A VM row's status: the operator stopped it.
pub const VM_STOPPED: u8 = 3;
/// The name of a `VM_*` status (`running`, `exited`, `killed`,
/// `stopped`), `?` for any other value.
pub const fn status_name(status: u8) -> &'static str {
    match status {
        VM_RUNNING => "running",
        VM_EXITED => "exited",
        VM_KILLED => "killed",
        VM_STOPPED => "stopped",
        _ => "?",
    }
}

/// The `VM_*` status named `name` (what [`status_name`] gives), if any.
pub fn status_named(name: &str) -> Option<u8> {
    [VM_RUNNING, VM_EXITED, VM_KILLED, VM_STOPPED]
        .into_iter()
        .find(|&s| status_name(s) == name)
}

/// The sequence number of an error about bytes that were not a frame (or
/// not a whole one): no command's, so no answer is mistaken for another's.
pub const UNFRAMED: u32 = u32::MAX;
/// A VM row's core when none of its cores runs.
pub const NO_CORE: u32 = u32::MAX;
/// A [`Message::FlowRow`] of a link.
pub const FLOW_LINK: u8 = 1;
/// A [`Message::FlowRow`] of a NIC.
pub const FLOW_NIC: u8 = 2;
/// Most instruction bytes one [`Message::HookChunk`] carries (a whole
/// number of instructions that leaves room for the offset and length).
pub const CHUNK_BYTES: usize = 1000;
/// Most bytes of an image uploaded at runtime ([`Message::ImageBegin`]).
pub const MAX_IMAGE_BYTES: u32 = 8 << 20;
/// A [`Message::VmEvent`]: a VM started (from the manifest's restart or
/// a `start`/`scale`, in a place seen empty or held by another VM).
pub const EVENT_STARTED: u8 = 1;
/// A [`Message::VmEvent`]: a VM started again (its restarts went up).
pub const EVENT_RESTARTED: u8 = 2;
/// A [`Message::VmEvent`]: a VM ended (its status is no longer running).
pub const EVENT_ENDED: u8 = 3;

/// An `EVENT_*`'s name as the events files and APIs give it (`started`,
/// `restarted`, `ended`; the frame's decoder admits no other value).
pub fn event_name(event: u8) -> &'static str {
    match event {
        EVENT_STARTED => "started",
        EVENT_RESTARTED => "restarted",
        _ => "ended",
    }
}
/// A hook direction: the link's `a` to `b`.
pub const DIR_A_TO_B: u8 = 0;
/// A hook direction: the link's `b` to `a`.
pub const DIR_B_TO_A: u8 = 1;
const BAD_DIR: &str = "a direction other than 0 (a->b) or 1 (b->a)";
const BAD_MAPS: &str = "map definitions that are not whole, valid 16-byte records (at most 16)";
const BAD_CHUNK: &str = "instruction bytes that are not 1 to 125 whole 8-byte instructions";
const BAD_ENTRY: &str = "a map entry whose key or value is longer than a map's";
const BAD_FLOW: &str = "flow kind is neither 1 (a link) nor 2 (a NIC)";
const BAD_EVENT: &str = "an event other than 1 (started), 2 (restarted) or 3 (ended)";
const BAD_SETTING: &str = "a setting other than 1 (budget) or 2 (slice)";
const BAD_ARGS_FLAG: &str = "an arguments flag other than 0 (none) or 1 (given)";
const BAD_HOOK_ON: &str =
    "a hook place other than 1 (a link direction), 2 (a VM) or 3 (a NIC queue)";
const BAD_NIC_DIR: &str = "a NIC queue other than 0 (rx) or 1 (tx)";
const BAD_ENGINE: &str = "an engine other than 0 (compiled) or 1 (interpreted)";
const BAD_IMAGE_CHUNK: &str = "image bytes that are not 1 to 1000 bytes";
const BAD_VM_HOOK: &str = "a VM hook kind other than 2 (restart), 3 (exit) or 4 (slice)";

/// [`HookOn`]'s tag on the wire: a link direction.
const ON_LINK: u8 = 1;
/// [`HookOn`]'s tag on the wire: a VM.
const ON_VM: u8 = 2;
/// [`HookOn`]'s tag on the wire: a NIC queue.
const ON_NIC: u8 = 3;
/// [`HookOn::Nic`]'s queue: frames from the wire to the guests.
pub const NIC_RX: u8 = 0;
/// [`HookOn::Nic`]'s queue: frames from the guests to the wire.
pub const NIC_TX: u8 = 1;
/// [`Message::HookRow`]'s engine: the hook runs as code the JIT compiled.
pub const ENGINE_COMPILED: u8 = 0;
/// [`Message::HookRow`]'s engine: the interpreter runs the hook (asked for
/// in the manifest, or the JIT's code area had no room left).
pub const ENGINE_INTERPRETED: u8 = 1;

/// An engine's name: `compiled` or `interpreted`.
pub const fn engine_name(engine: u8) -> &'static str {
    match engine {
        ENGINE_COMPILED => "compiled",
        _ => "interpreted",
    }
}

/// A VM's net port, named: `web.0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port<'a> {
    /// The VM's name.
    pub vm: &'a str,
    /// Its port number.
    pub port: u8,
}

impl fmt::Display for Port<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.vm, self.port)
    }
}

/// Where a hook attached at runtime goes (or is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookOn<'a> {
    /// A packet hook on one direction of a link between VMs.
    Link {
        /// The link's manifest index.
        link: u32,
        /// [`DIR_A_TO_B`] or [`DIR_B_TO_A`].
        dir: u8,
    },
    /// A packet hook on one queue of a shared NIC.
    Nic {
        /// The NIC's manifest index.
        nic: u32,
        /// [`NIC_RX`] or [`NIC_TX`].
        dir: u8,
    },
    /// A restart, exit or slice hook on one VM (kept across its restarts).
    Vm {
        /// The VM's name.
        vm: &'a str,
        /// Its kind: [`crate::hook::HookKind`]'s number (2 restart, 3
        /// exit, 4 slice).
        kind: u8,
    },
}

/// Whether `kind` is a VM hook's kind number.
fn vm_hook_kind(kind: u8) -> bool {
    use crate::hook::HookKind;
    [HookKind::Restart, HookKind::Exit, HookKind::Slice]
        .iter()
        .any(|&k| k as u8 == kind)
}
const BAD_STATUS: &str =
    "a VM status other than 0 (running), 1 (exited), 2 (killed) or 3 (stopped)";

/// [`Message::Tune`]'s setting: the VM's budget, the instructions it may
/// run in all (0: no budget); past it, it is stopped as a manifest budget
/// stops it.
pub const TUNE_BUDGET: u8 = 1;
/// [`Message::Tune`]'s setting: the VM's scheduling slice, in instructions
/// (0: the run's; else within the manifest's `timeslice` range). A slice
/// hook on the VM still decides its slices.
pub const TUNE_SLICE: u8 = 2;

const K_LIST: u8 = 1;
const K_STOP: u8 = 2;
const K_RESTART: u8 = 3;
const K_SCALE: u8 = 4;
const K_STATS: u8 = 5;
const K_END: u8 = 6;
const K_START: u8 = 7;
const K_LOGS: u8 = 8;
const K_HOOK_BEGIN: u8 = 9;
const K_HOOK_CHUNK: u8 = 10;
const K_HOOK_COMMIT: u8 = 11;
const K_HOOK_DETACH: u8 = 12;
const K_HOOK_MAPS: u8 = 13;
const K_WATCH: u8 = 14;
const K_TUNE: u8 = 15;
const K_IMAGE_BEGIN: u8 = 16;
const K_IMAGE_CHUNK: u8 = 17;
const K_IMAGE_COMMIT: u8 = 18;
const K_START_IMAGE: u8 = 19;
const K_LINK_ATTACH: u8 = 20;
const K_LINK_DETACH: u8 = 21;
const K_DONE: u8 = 64;
const K_ERROR: u8 = 65;
const K_VM_ROW: u8 = 66;
const K_HOST_STATS: u8 = 67;
const K_FLOW_ROW: u8 = 68;
const K_LOG_LINE: u8 = 69;
const K_HOOK_ROW: u8 = 70;
const K_MAP_ENTRY: u8 = 71;
const K_LOG_HEAD: u8 = 72;
const K_CORE_ROW: u8 = 73;

/// A [`Message::CoreRow`]'s role: the core runs VMs.
pub const CORE_VMS: u8 = 1;
/// A [`Message::CoreRow`]'s role: the core polls links or NICs.
pub const CORE_POLLS: u8 = 2;
/// A [`Message::CoreRow`]'s role: the core serves the control channel.
pub const CORE_CONTROL: u8 = 4;
const BAD_ROLE: &str = "a core role with bits other than 1 (VMs), 2 (polls) and 4 (control)";
const K_VM_EVENT: u8 = 128;
const K_CONSOLE: u8 = 129;

/// One message. Commands go from the operator to the hypervisor; every
/// command gets [`Message::Done`] or [`Message::Error`] back (after any
/// rows it asked for), under the command's sequence number; events come
/// unasked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// Command: list the VMs (answered with a [`Message::VmRow`] each).
    List,
    /// Command: stop a VM.
    Stop {
        /// Its name.
        vm: &'a str,
    },
    /// Command: restart a VM with fresh memory.
    Restart {
        /// Its name.
        vm: &'a str,
    },
    /// Command: scale a manifest entry to `count` clones.
    Scale {
        /// The entry's name.
        entry: &'a str,
        /// Clones wanted.
        count: u32,
    },
    /// Command: start one more VM from a manifest entry (a single VM's
    /// entry or a `count` entry), like its clones.
    Start {
        /// The entry's name.
        entry: &'a str,
        /// The new VM's name; empty: the entry's next clone name
        /// (`<entry>-<n>`).
        name: &'a str,
        /// Arguments instead of the entry's (`None`: the entry's; the
        /// hypervisor checks them as the manifest's).
        args: Option<&'a str>,
        /// Bytes of guest memory instead of the entry's (0: the entry's).
        memory: u64,
    },
    /// Command: begin uploading image `name` of `bytes` bytes (an ELF
    /// file, a Corral or Solo5 hvt unikernel), which VMs can then be
    /// started from ([`Message::StartImage`]); its bytes follow in
    /// [`Message::ImageChunk`]s, then [`Message::ImageCommit`] checks and
    /// keeps it for the run. An `ImageBegin` drops any upload not yet
    /// committed.
    ImageBegin {
        /// The image's name (unique among the run's images).
        name: &'a str,
        /// Its length, at most [`MAX_IMAGE_BYTES`].
        bytes: u32,
    },
    /// Command: the next bytes of the image upload in progress.
    ImageChunk {
        /// The byte offset of the first byte here (chunks come in order).
        offset: u32,
        /// 1 to [`CHUNK_BYTES`] bytes.
        bytes: &'a [u8],
    },
    /// Command: check the whole upload and keep it as image `name`.
    ImageCommit {
        /// The upload's name.
        name: &'a str,
    },
    /// Command: start a VM from an image (one the run has, or one
    /// uploaded), on any core that runs VMs.
    StartImage {
        /// The image's name.
        image: &'a str,
        /// The new VM's name.
        name: &'a str,
        /// Its arguments (`None`: none).
        args: Option<&'a str>,
        /// Bytes of guest memory (0: 1 MiB).
        memory: u64,
    },
    /// Command: change a VM's budget or slice ([`TUNE_BUDGET`],
    /// [`TUNE_SLICE`]) from now on, kept across its restarts.
    Tune {
        /// The VM's name.
        vm: &'a str,
        /// Which setting.
        what: u8,
        /// Its new value, in instructions (0: none for the budget, the
        /// run's default for the slice).
        value: u64,
    },
    /// Command: link two VMs' net ports, neither linked yet, while the
    /// host runs (answered with the new link's [`Message::FlowRow`]).
    LinkAttach {
        /// One end.
        a: Port<'a>,
        /// The other.
        b: Port<'a>,
    },
    /// Command: unmake the link made at runtime between two ports, in
    /// either order (answered with its final [`Message::FlowRow`]).
    LinkDetach {
        /// One end.
        a: Port<'a>,
        /// The other.
        b: Port<'a>,
    },
    /// Command: counters of every VM, link and NIC.
    Stats,
    /// Command: the console lines the hypervisor keeps of a VM, from line
    /// `from` on (answered with a [`Message::LogLine`] each).
    Logs {
        /// The VM's name.
        vm: &'a str,
        /// The first line wanted (lines are numbered from the VM's first,
        /// per place).
        from: u64,
    },
    /// Command: begin uploading hook `name` for its place: a packet hook
    /// for one direction of a link between VMs, or a VM's restart, exit
    /// or slice hook (its instructions follow in [`Message::HookChunk`]s,
    /// then [`Message::HookCommit`] attaches it; a place that has a
    /// runtime hook gets the new one instead, a swap). A `HookBegin` drops
    /// any upload not yet committed.
    HookBegin {
        /// The hook's name (unique among the run's hooks).
        name: &'a str,
        /// Its place (and so its kind).
        on: HookOn<'a>,
        /// Instructions the program has (8 bytes each).
        insns: u32,
        /// Its map table: 16-byte [`crate::hook::MapDef`] records.
        maps: &'a [u8],
    },
    /// Command: the next instructions of the upload in progress.
    HookChunk {
        /// The index of the first instruction here (chunks come in order).
        offset: u32,
        /// Whole 8-byte instructions, at most [`CHUNK_BYTES`].
        bytes: &'a [u8],
    },
    /// Command: verify and attach the upload in progress, named `name`
    /// (answered with the new hook's [`Message::HookRow`], which says its
    /// engine, then the row of the hook it replaced, if any).
    HookCommit {
        /// The upload's name.
        name: &'a str,
    },
    /// Command: detach the runtime hook `name` (answered with its final
    /// [`Message::HookRow`]).
    HookDetach {
        /// Its name.
        name: &'a str,
    },
    /// Command: a hook's counters and maps (a [`Message::HookRow`], then a
    /// [`Message::MapEntry`] per entry whose value is not all zero).
    HookMaps {
        /// Its name.
        name: &'a str,
    },
    /// Command: stream events under this command's sequence number from
    /// now on ([`Message::VmEvent`]s and [`Message::Console`] lines),
    /// after its [`Message::Done`]; a later `Watch` moves the stream to
    /// its own number and starts again from what is new then.
    Watch,
    /// Command: end the run (write the report, power off).
    End,
    /// Answer: the command was carried out.
    Done,
    /// Answer: it was not, and why (`no VM named web-9`).
    Error {
        /// What went wrong.
        text: &'a str,
    },
    /// Answer row: one VM.
    VmRow {
        /// Its index.
        vm: u32,
        /// Its name.
        name: &'a str,
        /// Its state: [`VM_RUNNING`], [`VM_EXITED`], [`VM_KILLED`] or
        /// [`VM_STOPPED`].
        status: u8,
        /// The core it runs on ([`NO_CORE`]: none).
        core: u32,
        /// Restarts so far.
        restarts: u32,
        /// VM exits so far (all its runs).
        exits: u64,
        /// Guest instructions (TSC ticks in the guest) so far (all runs).
        ran: u64,
    },
    /// Answer to `stats`: the host's counters.
    HostStats {
        /// Bytes of memory free for VMs.
        free: u64,
        /// VMs that have not ended.
        running: u32,
        /// Commands the control channel accepted.
        commands: u64,
        /// Errors it answered.
        errors: u64,
    },
    /// Answer to `stats`, after [`Message::HostStats`]: one link's or
    /// NIC's counters now.
    FlowRow {
        /// [`FLOW_LINK`] or [`FLOW_NIC`].
        kind: u8,
        /// Its manifest index.
        index: u32,
        /// A link's ends (`vm.port<->vm.port`) or a NIC's name.
        label: &'a str,
        /// Frames one way: a link's `a` to `b`, a NIC's from the wire.
        in_frames: u64,
        /// Their bytes.
        in_bytes: u64,
        /// Frames lost that way: a link direction's every reason; a NIC's
        /// frames from the wire no port took (unknown destination, runt,
        /// hook) and each port's losses while delivering (no buffer, gone)
        /// or whose direction its counters do not tell (too large, ring
        /// fault), one per port for a broadcast.
        in_drops: u64,
        /// Frames the other way: `b` to `a`, to the wire.
        out_frames: u64,
        /// Their bytes.
        out_bytes: u64,
        /// Frames lost that way: a link direction's every reason; a NIC's
        /// frames its ports sent that were spoofed or dropped by a hook.
        out_drops: u64,
    },
    /// Answer row to `logs`, before its lines: which VM holds the name now
    /// (its id, never given twice in a run: a follower whose VM was
    /// replaced by a new one of the same name sees it change) and the
    /// number its next line will have.
    LogHead {
        /// The VM's id (its report id).
        id: u32,
        /// The number of the line it prints next.
        next: u64,
    },
    /// Answer row to `logs`: one line the VM printed.
    LogLine {
        /// Its number (a gap after the `from` asked for: older lines
        /// are no longer kept).
        seq: u64,
        /// The line.
        text: &'a str,
    },
    /// Answer row to `stats`, after the link and NIC rows: one core's
    /// roles and counters.
    CoreRow {
        /// The core's number.
        core: u32,
        /// [`CORE_VMS`], [`CORE_POLLS`] and [`CORE_CONTROL`], or'ed.
        role: u8,
        /// VMs running on it now.
        vms: u32,
        /// VM exits it handled (all its VMs, all their runs).
        exits: u64,
        /// Guest instructions of the VMs placed on it now, all their runs.
        ran: u64,
        /// Instructions it spent polling in passes that moved frames.
        busy: u64,
    },
    /// Answer row: a runtime hook's counters.
    HookRow {
        /// Its name.
        name: &'a str,
        /// Its place.
        on: HookOn<'a>,
        /// What runs it: [`ENGINE_COMPILED`] or [`ENGINE_INTERPRETED`].
        engine: u8,
        /// Frames (events) it ran on.
        runs: u64,
        /// Frames it passed (a VM hook: exits allowed, restarts granted,
        /// slices answered within the range).
        pass: u64,
        /// Frames it did not pass, every other verdict and fault (a VM
        /// hook: every other answer).
        dropped: u64,
        /// Runs the interpreter aborted.
        faults: u64,
        /// Instructions it ran.
        insns: u64,
    },
    /// Answer row to `hook maps`: one entry of one of a hook's maps.
    MapEntry {
        /// The map's index in the hook's map table.
        map: u8,
        /// The core whose copy this is (per-core arrays), else 0.
        core: u32,
        /// The key's bytes (an array's index as a little-endian u32).
        key: &'a [u8],
        /// The value's bytes.
        value: &'a [u8],
    },
    /// Event: a VM started, started again or ended.
    VmEvent {
        /// Its id (its report id, never given twice in a run).
        vm: u32,
        /// Its name.
        name: &'a str,
        /// [`EVENT_STARTED`], [`EVENT_RESTARTED`] or [`EVENT_ENDED`].
        event: u8,
        /// Its status now (a `VM_*`).
        status: u8,
        /// Its core ([`NO_CORE`]: none).
        core: u32,
        /// Its restarts so far.
        restarts: u32,
    },
    /// Event: a line a VM printed (or a start, restart or end note the
    /// hypervisor kept with its lines).
    Console {
        /// Its id.
        vm: u32,
        /// Its name.
        name: &'a str,
        /// The line's number (from the VM's first; a gap: lines were
        /// printed faster than the line could carry them, and only the
        /// latest are kept).
        seq: u64,
        /// The line.
        text: &'a str,
    },
}

impl Message<'_> {
    fn kind(&self) -> u8 {
        match self {
            Message::List => K_LIST,
            Message::Stop { .. } => K_STOP,
            Message::Restart { .. } => K_RESTART,
            Message::Scale { .. } => K_SCALE,
            Message::Start { .. } => K_START,
            Message::Tune { .. } => K_TUNE,
            Message::ImageBegin { .. } => K_IMAGE_BEGIN,
            Message::ImageChunk { .. } => K_IMAGE_CHUNK,
            Message::ImageCommit { .. } => K_IMAGE_COMMIT,
            Message::StartImage { .. } => K_START_IMAGE,
            Message::LinkAttach { .. } => K_LINK_ATTACH,
            Message::LinkDetach { .. } => K_LINK_DETACH,
            Message::Stats => K_STATS,
            Message::Logs { .. } => K_LOGS,
            Message::LogLine { .. } => K_LOG_LINE,
            Message::LogHead { .. } => K_LOG_HEAD,
            Message::End => K_END,
            Message::Watch => K_WATCH,
            Message::HookBegin { .. } => K_HOOK_BEGIN,
            Message::HookChunk { .. } => K_HOOK_CHUNK,
            Message::HookCommit { .. } => K_HOOK_COMMIT,
            Message::HookDetach { .. } => K_HOOK_DETACH,
            Message::HookMaps { .. } => K_HOOK_MAPS,
            Message::HookRow { .. } => K_HOOK_ROW,
            Message::MapEntry { .. } => K_MAP_ENTRY,
            Message::Done => K_DONE,
            Message::Error { .. } => K_ERROR,
            Message::VmRow { .. } => K_VM_ROW,
            Message::HostStats { .. } => K_HOST_STATS,
            Message::CoreRow { .. } => K_CORE_ROW,
            Message::FlowRow { .. } => K_FLOW_ROW,
            Message::VmEvent { .. } => K_VM_EVENT,
            Message::Console { .. } => K_CONSOLE,
        }
    }
}

/// Why bytes are not a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The first bytes are not [`MAGIC`].
    Magic,
    /// A protocol version this side does not speak.
    Version {
        /// The version found.
        found: u8,
    },
    /// A payload longer than [`MAX_PAYLOAD`].
    TooLong {
        /// The length found.
        len: u16,
    },
    /// The CRC-32 does not match.
    Checksum {
        /// What the frame says.
        found: u32,
        /// What its bytes give.
        computed: u32,
    },
    /// A message kind this side does not know.
    Kind {
        /// The kind found.
        kind: u8,
    },
    /// The payload does not hold what its kind says.
    Payload {
        /// The kind.
        kind: u8,
        /// What is wrong.
        why: &'static str,
    },
    /// A message does not fit the buffer (encoding) or [`MAX_PAYLOAD`].
    NoRoom,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Magic => write!(f, "not a control frame (no `CC` magic)"),
            FrameError::Version { found } => write!(
                f,
                "control protocol version {found}; this side speaks {CONTROL_VERSION}"
            ),
            FrameError::TooLong { len } => {
                write!(f, "payload of {len} bytes, at most {MAX_PAYLOAD}")
            }
            FrameError::Checksum { found, computed } => write!(
                f,
                "checksum {found:#010x} does not match the frame's {computed:#010x}"
            ),
            FrameError::Kind { kind } => write!(f, "unknown message kind {kind}"),
            FrameError::Payload { kind, why } => write!(f, "message kind {kind}: {why}"),
            FrameError::NoRoom => write!(f, "the message does not fit a frame"),
        }
    }
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

/// Writes payload bytes, refusing to run past the end.
struct Writer<'b> {
    out: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) -> Result<(), FrameError> {
        let end = self.at.checked_add(b.len()).ok_or(FrameError::NoRoom)?;
        self.out
            .get_mut(self.at..end)
            .ok_or(FrameError::NoRoom)?
            .copy_from_slice(b);
        self.at = end;
        Ok(())
    }

    fn text(&mut self, t: &str) -> Result<(), FrameError> {
        let len = u8::try_from(t.len()).map_err(|_| FrameError::NoRoom)?;
        self.bytes(&[len])?;
        self.bytes(t.as_bytes())
    }

    /// Optional arguments: a flag byte, then the text if given.
    fn args(&mut self, args: Option<&str>) -> Result<(), FrameError> {
        match args {
            Some(a) => {
                self.bytes(&[1])?;
                self.text(a)
            }
            None => self.bytes(&[0]),
        }
    }

    /// A hook's place: its tag, then a link and direction or a VM's name
    /// and a hook kind.
    fn hook_on(&mut self, on: HookOn<'_>, kind: u8) -> Result<(), FrameError> {
        let bad = |why| FrameError::Payload { kind, why };
        match on {
            HookOn::Link { link, dir } => {
                if dir > DIR_B_TO_A {
                    return Err(bad(BAD_DIR));
                }
                self.bytes(&[ON_LINK])?;
                self.bytes(&link.to_le_bytes())?;
                self.bytes(&[dir])
            }
            HookOn::Nic { nic, dir } => {
                if dir > NIC_TX {
                    return Err(bad(BAD_NIC_DIR));
                }
                self.bytes(&[ON_NIC])?;
                self.bytes(&nic.to_le_bytes())?;
                self.bytes(&[dir])
            }
            HookOn::Vm { vm, kind: hook } => {
                if !vm_hook_kind(hook) {
                    return Err(bad(BAD_VM_HOOK));
                }
                self.bytes(&[ON_VM])?;
                self.name(vm, kind)?;
                self.bytes(&[hook])
            }
        }
    }

    /// A name: text that may not be empty (what the reader refuses is
    /// never written).
    fn name(&mut self, t: &str, kind: u8) -> Result<(), FrameError> {
        if t.is_empty() {
            return Err(FrameError::Payload {
                kind,
                why: "an empty name",
            });
        }
        self.text(t)
    }
}

/// Encodes `msg` with sequence number `seq` into `out`; returns the
/// frame's length.
pub fn encode(msg: &Message<'_>, seq: u32, out: &mut [u8]) -> Result<usize, FrameError> {
    let mut w = Writer { out, at: HEADER };
    let kind = msg.kind();
    match *msg {
        Message::List | Message::Stats | Message::End | Message::Watch | Message::Done => {}
        Message::Stop { vm } | Message::Restart { vm } => w.name(vm, kind)?,
        Message::HookCommit { name }
        | Message::HookDetach { name }
        | Message::HookMaps { name }
        | Message::ImageCommit { name } => w.name(name, kind)?,
        Message::ImageBegin { name, bytes } => {
            w.name(name, kind)?;
            w.bytes(&bytes.to_le_bytes())?;
        }
        Message::ImageChunk { offset, bytes } => {
            if !image_chunk_ok(bytes) {
                return Err(FrameError::Payload {
                    kind,
                    why: BAD_IMAGE_CHUNK,
                });
            }
            w.bytes(&offset.to_le_bytes())?;
            w.bytes(&(bytes.len() as u16).to_le_bytes())?;
            w.bytes(bytes)?;
        }
        Message::StartImage {
            image,
            name,
            args,
            memory,
        } => {
            w.name(image, kind)?;
            w.name(name, kind)?;
            w.args(args)?;
            w.bytes(&memory.to_le_bytes())?;
        }
        Message::HookBegin {
            name,
            on,
            insns,
            maps,
        } => {
            if !maps_ok(maps) {
                return Err(FrameError::Payload {
                    kind,
                    why: BAD_MAPS,
                });
            }
            w.name(name, kind)?;
            w.hook_on(on, kind)?;
            w.bytes(&insns.to_le_bytes())?;
            w.bytes(&[(maps.len() / MAP_DEF_SIZE) as u8])?;
            w.bytes(maps)?;
        }
        Message::HookChunk { offset, bytes } => {
            if !chunk_ok(bytes) {
                return Err(FrameError::Payload {
                    kind,
                    why: BAD_CHUNK,
                });
            }
            w.bytes(&offset.to_le_bytes())?;
            w.bytes(&(bytes.len() as u16).to_le_bytes())?;
            w.bytes(bytes)?;
        }
        Message::HookRow {
            name,
            on,
            engine,
            runs,
            pass,
            dropped,
            faults,
            insns,
        } => {
            if engine > ENGINE_INTERPRETED {
                return Err(FrameError::Payload {
                    kind,
                    why: BAD_ENGINE,
                });
            }
            w.name(name, kind)?;
            w.hook_on(on, kind)?;
            w.bytes(&[engine])?;
            for n in [runs, pass, dropped, faults, insns] {
                w.bytes(&n.to_le_bytes())?;
            }
        }
        Message::MapEntry {
            map,
            core,
            key,
            value,
        } => {
            if !entry_ok(key, value) {
                return Err(FrameError::Payload {
                    kind,
                    why: BAD_ENTRY,
                });
            }
            w.bytes(&[map])?;
            w.bytes(&core.to_le_bytes())?;
            w.bytes(&[key.len() as u8])?;
            w.bytes(key)?;
            w.bytes(&(value.len() as u16).to_le_bytes())?;
            w.bytes(value)?;
        }
        Message::Scale { entry, count } => {
            w.name(entry, kind)?;
            w.bytes(&count.to_le_bytes())?;
        }
        Message::LinkAttach { a, b } | Message::LinkDetach { a, b } => {
            for p in [a, b] {
                w.name(p.vm, kind)?;
                w.bytes(&[p.port])?;
            }
        }
        Message::Start {
            entry,
            name,
            args,
            memory,
        } => {
            w.name(entry, kind)?;
            w.text(name)?;
            w.args(args)?;
            w.bytes(&memory.to_le_bytes())?;
        }
        Message::Tune { vm, what, value } => {
            if !matches!(what, TUNE_BUDGET | TUNE_SLICE) {
                return Err(FrameError::Payload {
                    kind,
                    why: BAD_SETTING,
                });
            }
            w.name(vm, kind)?;
            w.bytes(&[what])?;
            w.bytes(&value.to_le_bytes())?;
        }
        Message::Logs { vm, from } => {
            w.name(vm, kind)?;
            w.bytes(&from.to_le_bytes())?;
        }
        Message::LogLine { seq, text } => {
            w.bytes(&seq.to_le_bytes())?;
            w.text(text)?;
        }
        Message::LogHead { id, next } => {
            w.bytes(&id.to_le_bytes())?;
            w.bytes(&next.to_le_bytes())?;
        }
        Message::Error { text } => w.text(text)?,
        Message::VmRow {
            vm,
            name,
            status,
            core,
            restarts,
            exits,
            ran,
        } => {
            if status > VM_STOPPED {
                return Err(FrameError::Payload {
                    kind,
                    why: BAD_STATUS,
                });
            }
            w.bytes(&vm.to_le_bytes())?;
            w.name(name, kind)?;
            w.bytes(&[status])?;
            w.bytes(&core.to_le_bytes())?;
            w.bytes(&restarts.to_le_bytes())?;
            w.bytes(&exits.to_le_bytes())?;
            w.bytes(&ran.to_le_bytes())?;
        }
        Message::CoreRow {
            core,
            role,
            vms,
            exits,
            ran,
            busy,
        } => {
            if role & !(CORE_VMS | CORE_POLLS | CORE_CONTROL) != 0 {
                return Err(FrameError::Payload {
                    kind,
                    why: BAD_ROLE,
                });
            }
            w.bytes(&core.to_le_bytes())?;
            w.bytes(&[role])?;
            w.bytes(&vms.to_le_bytes())?;
            for n in [exits, ran, busy] {
                w.bytes(&n.to_le_bytes())?;
            }
        }
        Message::HostStats {
            free,
            running,
            commands,
            errors,
        } => {
            w.bytes(&free.to_le_bytes())?;
            w.bytes(&running.to_le_bytes())?;
            w.bytes(&commands.to_le_bytes())?;
            w.bytes(&errors.to_le_bytes())?;
        }
        Message::FlowRow {
            kind: flow,
            index,
            label,
            in_frames,
            in_bytes,
            in_drops,
            out_frames,
            out_bytes,
            out_drops,
        } => {
            if flow != FLOW_LINK && flow != FLOW_NIC {
                return Err(FrameError::Payload {
                    kind,
                    why: BAD_FLOW,
                });
            }
            w.bytes(&[flow])?;
            w.bytes(&index.to_le_bytes())?;
            w.text(label)?;
            for n in [
                in_frames, in_bytes, in_drops, out_frames, out_bytes, out_drops,
            ] {
                w.bytes(&n.to_le_bytes())?;
            }
        }
        Message::VmEvent {
            vm,
            name,
            event,
            status,
            core,
            restarts,
        } => {
            if !(EVENT_STARTED..=EVENT_ENDED).contains(&event) {
                return Err(FrameError::Payload {
                    kind,
                    why: BAD_EVENT,
                });
            }
            if status > VM_STOPPED {
                return Err(FrameError::Payload {
                    kind,
                    why: BAD_STATUS,
                });
            }
            w.bytes(&vm.to_le_bytes())?;
            w.name(name, kind)?;
            w.bytes(&[event, status])?;
            w.bytes(&core.to_le_bytes())?;
            w.bytes(&restarts.to_le_bytes())?;
        }
        Message::Console {
            vm,
            name,
            seq,
            text,
        } => {
            w.bytes(&vm.to_le_bytes())?;
            w.name(name, kind)?;
            w.bytes(&seq.to_le_bytes())?;
            w.text(text)?;
        }
    }
    let payload = w.at - HEADER;
    if payload > MAX_PAYLOAD {
        return Err(FrameError::NoRoom);
    }
    let end = w.at;
    let out = w.out;
    let header = out.get_mut(..HEADER).ok_or(FrameError::NoRoom)?;
    header[0..2].copy_from_slice(&MAGIC);
    header[2] = CONTROL_VERSION;
    header[3] = msg.kind();
    header[4..8].copy_from_slice(&seq.to_le_bytes());
    header[8..10].copy_from_slice(&(payload as u16).to_le_bytes());
    let crc = crc32(&out[..end]);
    let tail = out.get_mut(end..end + TRAILER).ok_or(FrameError::NoRoom)?;
    tail.copy_from_slice(&crc.to_le_bytes());
    Ok(end + TRAILER)
}

/// Whether `maps` is a map table a hook may have: whole, valid records,
/// at most [`MAX_MAPS`].
fn maps_ok(maps: &[u8]) -> bool {
    maps.len().is_multiple_of(MAP_DEF_SIZE)
        && maps.len() / MAP_DEF_SIZE <= MAX_MAPS
        && maps.chunks_exact(MAP_DEF_SIZE).all(|c| {
            let mut b = [0; MAP_DEF_SIZE];
            b.copy_from_slice(c);
            MapDef::from_bytes(b).is_ok()
        })
}

/// Whether `bytes` is a chunk of whole instructions that fits.
fn image_chunk_ok(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.len() <= CHUNK_BYTES
}

fn chunk_ok(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.len() <= CHUNK_BYTES && bytes.len().is_multiple_of(INSN_SIZE)
}

/// Whether a map entry's key and value fit a map's.
fn entry_ok(key: &[u8], value: &[u8]) -> bool {
    key.len() <= MAX_KEY_SIZE as usize && value.len() <= MAX_VALUE_SIZE as usize
}

/// The map definitions of a [`Message::HookBegin`]'s `maps` (records that
/// do not decode are left out; the decoder refuses frames with any).
pub fn map_defs(maps: &[u8]) -> impl Iterator<Item = MapDef> + '_ {
    maps.chunks_exact(MAP_DEF_SIZE).filter_map(|c| {
        let mut b = [0; MAP_DEF_SIZE];
        b.copy_from_slice(c);
        MapDef::from_bytes(b).ok()
    })
}

/// Reads payload fields, refusing to run past the end.
struct Reader<'a> {
    bytes: &'a [u8],
    kind: u8,
}

impl<'a> Reader<'a> {
    fn bad(&self, why: &'static str) -> FrameError {
        FrameError::Payload {
            kind: self.kind,
            why,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.bytes.len() < n {
            return Err(self.bad("it ends early"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, FrameError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn dir(&mut self) -> Result<u8, FrameError> {
        let d = self.take(1)?[0];
        if d > DIR_B_TO_A {
            return Err(self.bad(BAD_DIR));
        }
        Ok(d)
    }

    fn args(&mut self) -> Result<Option<&'a str>, FrameError> {
        match self.take(1)?[0] {
            0 => Ok(None),
            1 => Ok(Some(self.text()?)),
            _ => Err(self.bad(BAD_ARGS_FLAG)),
        }
    }

    fn hook_on(&mut self) -> Result<HookOn<'a>, FrameError> {
        match self.take(1)?[0] {
            ON_LINK => Ok(HookOn::Link {
                link: self.u32()?,
                dir: self.dir()?,
            }),
            ON_NIC => {
                let nic = self.u32()?;
                let dir = self.take(1)?[0];
                if dir > NIC_TX {
                    return Err(self.bad(BAD_NIC_DIR));
                }
                Ok(HookOn::Nic { nic, dir })
            }
            ON_VM => {
                let vm = self.name()?;
                let kind = self.take(1)?[0];
                if !vm_hook_kind(kind) {
                    return Err(self.bad(BAD_VM_HOOK));
                }
                Ok(HookOn::Vm { vm, kind })
            }
            _ => Err(self.bad(BAD_HOOK_ON)),
        }
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        let b = self.take(8)?;
        let mut v = [0; 8];
        v.copy_from_slice(b);
        Ok(u64::from_le_bytes(v))
    }

    fn text(&mut self) -> Result<&'a str, FrameError> {
        let len = self.take(1)?[0];
        let b = self.take(usize::from(len))?;
        core::str::from_utf8(b).map_err(|_| self.bad("text that is not UTF-8"))
    }

    fn name(&mut self) -> Result<&'a str, FrameError> {
        let t = self.text()?;
        if t.is_empty() {
            return Err(self.bad("an empty name"));
        }
        Ok(t)
    }

    fn done(self) -> Result<(), FrameError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.bad("bytes after its last field"))
        }
    }
}

/// A frame read from a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Its sequence number.
    pub seq: u32,
    /// Its message.
    pub msg: Message<'a>,
}

/// What the front of a byte stream holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// A whole frame, `len` bytes long.
    Frame(Frame<'a>, usize),
    /// The start of a frame: more bytes are needed.
    NeedMore,
    /// Not a frame: skip `skip` bytes (at least 1) and look again.
    Bad(FrameError, usize),
}

/// Reads the frame at the front of `bytes`.
pub fn next_frame(bytes: &[u8]) -> Next<'_> {
    if bytes.is_empty() {
        return Next::NeedMore;
    }
    // Resynchronise on the magic: skip to the next byte that could start it.
    let magic_ok = bytes.iter().zip(MAGIC).all(|(&b, m)| b == m);
    if !magic_ok {
        let skip = bytes
            .iter()
            .skip(1)
            .position(|&b| b == MAGIC[0])
            .map_or(bytes.len(), |p| p + 1);
        return Next::Bad(FrameError::Magic, skip);
    }
    if bytes.len() < HEADER {
        return Next::NeedMore;
    }
    if bytes[2] != CONTROL_VERSION {
        return Next::Bad(FrameError::Version { found: bytes[2] }, 1);
    }
    let len = u16::from_le_bytes([bytes[8], bytes[9]]);
    if usize::from(len) > MAX_PAYLOAD {
        return Next::Bad(FrameError::TooLong { len }, 1);
    }
    let end = HEADER + usize::from(len);
    if bytes.len() < end + TRAILER {
        return Next::NeedMore;
    }
    let found = u32::from_le_bytes([bytes[end], bytes[end + 1], bytes[end + 2], bytes[end + 3]]);
    let computed = crc32(&bytes[..end]);
    if found != computed {
        return Next::Bad(FrameError::Checksum { found, computed }, 1);
    }
    let seq = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    match decode_payload(bytes[3], &bytes[HEADER..end]) {
        Ok(msg) => Next::Frame(Frame { seq, msg }, end + TRAILER),
        // A whole, intact frame whose content is wrong: skip all of it.
        Err(e) => Next::Bad(e, end + TRAILER),
    }
}

fn decode_payload(kind: u8, payload: &[u8]) -> Result<Message<'_>, FrameError> {
    let mut r = Reader {
        bytes: payload,
        kind,
    };
    let msg = match kind {
        K_LIST => Message::List,
        K_STATS => Message::Stats,
        K_END => Message::End,
        K_WATCH => Message::Watch,
        K_DONE => Message::Done,
        K_STOP => Message::Stop { vm: r.name()? },
        K_RESTART => Message::Restart { vm: r.name()? },
        K_SCALE => Message::Scale {
            entry: r.name()?,
            count: r.u32()?,
        },
        K_START => {
            let entry = r.name()?;
            let name = r.text()?;
            let args = r.args()?;
            Message::Start {
                entry,
                name,
                args,
                memory: r.u64()?,
            }
        }
        K_START_IMAGE => {
            let image = r.name()?;
            let name = r.name()?;
            let args = r.args()?;
            Message::StartImage {
                image,
                name,
                args,
                memory: r.u64()?,
            }
        }
        K_IMAGE_BEGIN => Message::ImageBegin {
            name: r.name()?,
            bytes: r.u32()?,
        },
        K_IMAGE_CHUNK => {
            let offset = r.u32()?;
            let len = r.u16()?;
            let bytes = r.take(usize::from(len))?;
            if !image_chunk_ok(bytes) {
                return Err(r.bad(BAD_IMAGE_CHUNK));
            }
            Message::ImageChunk { offset, bytes }
        }
        K_IMAGE_COMMIT => Message::ImageCommit { name: r.name()? },
        K_LINK_ATTACH | K_LINK_DETACH => {
            let mut port = || -> Result<Port<'_>, FrameError> {
                let vm = r.name()?;
                Ok(Port {
                    vm,
                    port: r.take(1)?[0],
                })
            };
            let (a, b) = (port()?, port()?);
            if kind == K_LINK_ATTACH {
                Message::LinkAttach { a, b }
            } else {
                Message::LinkDetach { a, b }
            }
        }
        K_TUNE => {
            let vm = r.name()?;
            let what = r.take(1)?[0];
            if !matches!(what, TUNE_BUDGET | TUNE_SLICE) {
                return Err(r.bad(BAD_SETTING));
            }
            Message::Tune {
                vm,
                what,
                value: r.u64()?,
            }
        }
        K_LOGS => Message::Logs {
            vm: r.name()?,
            from: r.u64()?,
        },
        K_HOOK_COMMIT => Message::HookCommit { name: r.name()? },
        K_HOOK_DETACH => Message::HookDetach { name: r.name()? },
        K_HOOK_MAPS => Message::HookMaps { name: r.name()? },
        K_HOOK_BEGIN => {
            let name = r.name()?;
            let on = r.hook_on()?;
            let insns = r.u32()?;
            let count = r.take(1)?[0];
            let maps = r.take(usize::from(count) * MAP_DEF_SIZE)?;
            if !maps_ok(maps) {
                return Err(r.bad(BAD_MAPS));
            }
            Message::HookBegin {
                name,
                on,
                insns,
                maps,
            }
        }
        K_HOOK_CHUNK => {
            let offset = r.u32()?;
            let len = r.u16()?;
            let bytes = r.take(usize::from(len))?;
            if !chunk_ok(bytes) {
                return Err(r.bad(BAD_CHUNK));
            }
            Message::HookChunk { offset, bytes }
        }
        K_HOOK_ROW => Message::HookRow {
            name: r.name()?,
            on: r.hook_on()?,
            engine: match r.take(1)?[0] {
                e @ (ENGINE_COMPILED | ENGINE_INTERPRETED) => e,
                _ => return Err(r.bad(BAD_ENGINE)),
            },
            runs: r.u64()?,
            pass: r.u64()?,
            dropped: r.u64()?,
            faults: r.u64()?,
            insns: r.u64()?,
        },
        K_MAP_ENTRY => {
            let map = r.take(1)?[0];
            let core = r.u32()?;
            let klen = r.take(1)?[0];
            let key = r.take(usize::from(klen))?;
            let vlen = r.u16()?;
            let value = r.take(usize::from(vlen))?;
            if !entry_ok(key, value) {
                return Err(r.bad(BAD_ENTRY));
            }
            Message::MapEntry {
                map,
                core,
                key,
                value,
            }
        }
        K_LOG_LINE => Message::LogLine {
            seq: r.u64()?,
            text: r.text()?,
        },
        K_LOG_HEAD => Message::LogHead {
            id: r.u32()?,
            next: r.u64()?,
        },
        K_ERROR => Message::Error { text: r.text()? },
        K_VM_ROW => {
            let vm = r.u32()?;
            let name = r.name()?;
            let status = r.take(1)?[0];
            if status > VM_STOPPED {
                return Err(r.bad(BAD_STATUS));
            }
            Message::VmRow {
                vm,
                name,
                status,
                core: r.u32()?,
                restarts: r.u32()?,
                exits: r.u64()?,
                ran: r.u64()?,
            }
        }
        K_CORE_ROW => {
            let core = r.u32()?;
            let role = r.take(1)?[0];
            if role & !(CORE_VMS | CORE_POLLS | CORE_CONTROL) != 0 {
                return Err(r.bad(BAD_ROLE));
            }
            Message::CoreRow {
                core,
                role,
                vms: r.u32()?,
                exits: r.u64()?,
                ran: r.u64()?,
                busy: r.u64()?,
            }
        }
        K_HOST_STATS => Message::HostStats {
            free: r.u64()?,
            running: r.u32()?,
            commands: r.u64()?,
            errors: r.u64()?,
        },
        K_FLOW_ROW => {
            let flow = r.take(1)?[0];
            if flow != FLOW_LINK && flow != FLOW_NIC {
                return Err(r.bad(BAD_FLOW));
            }
            Message::FlowRow {
                kind: flow,
                index: r.u32()?,
                label: r.text()?,
                in_frames: r.u64()?,
                in_bytes: r.u64()?,
                in_drops: r.u64()?,
                out_frames: r.u64()?,
                out_bytes: r.u64()?,
                out_drops: r.u64()?,
            }
        }
        K_VM_EVENT => {
            let vm = r.u32()?;
            let name = r.name()?;
            let event = r.take(1)?[0];
            if !(EVENT_STARTED..=EVENT_ENDED).contains(&event) {
                return Err(r.bad(BAD_EVENT));
            }
            let status = r.take(1)?[0];
            if status > VM_STOPPED {
                return Err(r.bad(BAD_STATUS));
            }
            Message::VmEvent {
                vm,
                name,
                event,
                status,
                core: r.u32()?,
                restarts: r.u32()?,
            }
        }
        K_CONSOLE => Message::Console {
            vm: r.u32()?,
            name: r.name()?,
            seq: r.u64()?,
            text: r.text()?,
        },
        _ => return Err(FrameError::Kind { kind }),
    };
    r.done()?;
    Ok(msg)
}

/// Why a session refused a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqError {
    /// A sequence number already seen (a replay).
    Replayed {
        /// The next one expected.
        expected: u32,
        /// The one found.
        found: u32,
    },
    /// A sequence number beyond the next (frames in between were lost or
    /// reordered).
    Skipped {
        /// The next one expected.
        expected: u32,
        /// The one found.
        found: u32,
    },
}

impl fmt::Display for SeqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeqError::Replayed { expected, found } => write!(
                f,
                "frame {found} was already seen (expected {expected}): refused as a replay"
            ),
            SeqError::Skipped { expected, found } => write!(
                f,
                "frame {found} came before frame {expected}: refused as out of order"
            ),
        }
    }
}

/// One direction of a connection: sequence numbers must go up by one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Session {
    next: u32,
}

impl Session {
    /// A session expecting sequence number 0.
    pub const fn new() -> Self {
        Session { next: 0 }
    }

    /// The sequence number it expects next.
    pub fn expected(&self) -> u32 {
        self.next
    }

    /// Accepts `seq` if it is the next one.
    pub fn accept(&mut self, seq: u32) -> Result<(), SeqError> {
        let (expected, found) = (self.next, seq);
        // Within half the number space behind is a replay, ahead a skip.
        match found.wrapping_sub(expected) {
            0 => {
                self.next = self.next.wrapping_add(1);
                Ok(())
            }
            d if d < 1 << 31 => Err(SeqError::Skipped { expected, found }),
            _ => Err(SeqError::Replayed { expected, found }),
        }
    }
}

#[cfg(test)]
mod tests;
