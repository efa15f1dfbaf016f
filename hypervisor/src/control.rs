//! The control channel of a service run: bytes from the operator's line become commands (framed, checksummed and sequence-checked by `vmm_abi::control`), each applied through [`Fleet`] and answered; answers leave as bytes for the line. Host-tested behind `Fleet` with a fake.
//!
//! Nothing a peer sends can stop the hypervisor: a malformed frame is
//! answered with an error naming what is wrong (one error for a run of
//! bytes that are not frames, under `UNFRAMED`), a frame left half-sent for longer than
//! [`PARTIAL_TIMEOUT`] ticks is dropped with an error, a replayed or
//! out-of-order frame is refused. Input is only taken while the answer
//! queue has room for the longest answer, so nothing is ever dropped on
//! the way out; a `list` streams its rows as room frees up.

#![forbid(unsafe_code)]

use crate::console::StackStr;
use crate::datapath::poll::{MAX_MADE_LINKS, MakeRefusal};
use heapless::{Deque, Vec};
use vmm_abi::control::{
    self, DIR_A_TO_B, DIR_B_TO_A, FrameError, HookOn, MAX_FRAME, Message, Next, Port, Session,
    UNFRAMED, next_frame,
};
use vmm_abi::hook::map::{MAX_KEY_SIZE, MAX_VALUE_SIZE};
use vmm_abi::hook::{HookKind, MAX_INSNS, MAX_MAPS, MapDef};
use vmm_abi::manifest::{LinkDir, MAX_TIMESLICE, MIN_TIMESLICE, NicDir, PortRef};

/// Bytes of answers waiting for the line.
pub const OUT_BYTES: usize = 4096;
/// Longest answer frame this side writes (a map entry with the largest
/// key and value; a log line's or an error's 255 bytes are shorter).
pub const MAX_ANSWER: usize = control::HEADER
    + 1
    + 4
    + 1
    + MAX_KEY_SIZE as usize
    + 2
    + MAX_VALUE_SIZE as usize
    + control::TRAILER;
/// Longest `HookRow` frame this side writes: a 32-byte name, a VM place
/// with a 32-byte name (longer than a link's or a NIC's), the engine and
/// five counters.
const HOOK_ROW_MAX: usize = control::HEADER
    + (1 + vmm_abi::corral::bootinfo::NAME_MAX)
    + (1 + 1 + vmm_abi::corral::bootinfo::NAME_MAX + 1)
    + 1
    + 5 * 8
    + control::TRAILER;
// A commit's answer, two rows and its done, fits the room one answer is
// given.
const _: () = assert!(2 * HOOK_ROW_MAX + control::HEADER + control::TRAILER <= MAX_ANSWER);
/// Most map entries one `hook maps` answers (the first whose value is not
/// all zero), so one answer cannot hold the line for long.
pub const MAX_MAP_ROWS: u32 = 256;
/// Most lines one `logs` answers (a VM's history holds at most this
/// many: empty lines), so a VM printing as fast as the line drains cannot
/// keep one answer going.
pub const MAX_LOG_LINES: u32 = crate::console::history::HISTORY_BYTES as u32;
/// Ticks (TSC) a half-received frame may wait for its next byte before it
/// is dropped (about 0.2 s of emulated time at 100 M instructions/s).
pub const PARTIAL_TIMEOUT: u64 = 20_000_000;

/// An answer's error text.
pub type Text = StackStr<200>;
/// A VM's or an entry's name.
pub type Name = heapless::String<{ vmm_abi::corral::bootinfo::NAME_MAX }>;
/// Most VMs one command starts or stops.
pub const MAX_CHANGE: usize = 512;

/// A VM as `list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Its name.
    pub name: Name,
    /// The manifest entry it comes from (its own name, or the `count`
    /// entry's, or the entry it was started from).
    pub entry: Name,
    /// `vmm_abi::control::VM_*`.
    pub status: u8,
    /// Its core (`vmm_abi::control::NO_CORE`: none).
    pub core: u32,
    /// Restarts so far.
    pub restarts: u32,
    /// VM exits so far (all its runs).
    pub exits: u64,
    /// Guest instructions so far (all its runs).
    pub ran: u64,
}

/// What a command asks of a VM's core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Stop it for good (`stop`).
    Stop,
    /// Start it again with fresh memory, running or ended (`restart`).
    Restart,
    /// Give it this budget in instructions from now on (`tune --budget`;
    /// 0: none).
    Budget(u64),
    /// Give it slices of this many instructions from now on (`tune
    /// --slice`; 0: the run's).
    Slice(u64),
}

/// VMs a command starts: `count` more like VM `template` (the first VM of
/// `entry`), named `name` (only with `count` 1) or `<entry>-<n>` from
/// `first_clone` up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Starts<'a> {
    /// The VM whose manifest entry they copy.
    pub template: u32,
    /// That entry's name.
    pub entry: &'a str,
    /// How many.
    pub count: u32,
    /// The first clone number.
    pub first_clone: u32,
    /// A name given by the operator (`count` is then 1).
    pub name: Option<&'a str>,
    /// Arguments instead of the entry's (checked: printable, fits).
    pub args: Option<&'a str>,
    /// Started from the image named `entry` rather than from a manifest
    /// entry (`template` is then unused): 1 MiB of memory unless
    /// `memory` says otherwise, on any core that runs VMs.
    pub from_image: bool,
    /// Bytes of guest memory instead of the entry's (checked: in range,
    /// whole pages); 0: the entry's.
    pub memory: u64,
}

impl Starts<'_> {
    /// The name of the `k`th new VM.
    pub fn name(&self, k: u32) -> Name {
        match self.name {
            Some(n) => Name::try_from(n).unwrap_or_default(),
            None => clone_name(self.entry, self.first_clone.saturating_add(k)),
        }
    }
}

/// `<entry>-<n>`, cut to a name's length (callers check it fits).
pub fn clone_name(entry: &str, n: u32) -> Name {
    let mut s = Name::new();
    let _ = core::fmt::write(&mut s, format_args!("{entry}-{n}"));
    s
}

/// Why a request could not be handed to a VM's core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// None of the VM's cores runs.
    NoCore,
    /// Too many requests are still being carried out.
    Busy {
        /// How many at most.
        limit: u32,
    },
    /// The core's mailbox is full.
    MailboxFull {
        /// The core.
        core: u32,
    },
    /// Not enough memory for the VMs to start.
    Memory {
        /// How many of them fit.
        fit: u32,
    },
    /// No room for more VMs (places in the run or on the entry's cores).
    NoRoom {
        /// How many more fit.
        free: u32,
    },
    /// The entry's VMs cannot be started at runtime.
    Template {
        /// Why.
        why: &'static str,
    },
}

/// Where a runtime hook goes (or is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A packet hook on one direction of a link between VMs.
    Link {
        /// The link's manifest index.
        link: u32,
        /// The direction.
        dir: LinkDir,
    },
    /// A packet hook on one queue of a shared NIC.
    Nic {
        /// The NIC's manifest index.
        nic: u32,
        /// The queue.
        dir: NicDir,
    },
    /// A restart, exit or slice hook on the VM in place `vm`.
    Vm {
        /// The VM's place ([`Fleet::find`]'s number).
        vm: u32,
        /// The hook's kind.
        kind: HookKind,
    },
}

/// A runtime hook's counters, as `hook` answers give them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookStat {
    /// Its name.
    pub name: Name,
    /// Its place.
    pub on: Target,
    /// A VM hook's VM's name (empty for a packet hook).
    pub vm: Name,
    /// What runs it: `ENGINE_COMPILED` or `ENGINE_INTERPRETED`.
    pub engine: u8,
    /// Frames (events) it ran on.
    pub runs: u64,
    /// Frames it passed (a VM hook: exits allowed, restarts granted,
    /// slices answered within the range).
    pub pass: u64,
    /// Frames it did not pass (a VM hook: every other answer).
    pub dropped: u64,
    /// Runs the interpreter aborted.
    pub faults: u64,
    /// Instructions it ran.
    pub insns: u64,
}

/// One entry of one of a hook's maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapRow {
    /// The map's index in the hook's table.
    pub map: u8,
    /// The core whose copy this is (per-core arrays), else 0.
    pub core: u32,
    /// The key's bytes.
    pub key: Vec<u8, { MAX_KEY_SIZE as usize }>,
    /// The value's bytes.
    pub value: Vec<u8, { MAX_VALUE_SIZE as usize }>,
}

/// The hook an upload builds.
#[derive(Clone, Copy, Debug)]
pub struct HookTarget<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its place (and so its kind).
    pub on: Target,
    /// Its instruction count.
    pub insns: u32,
    /// Its map table.
    pub maps: &'a [MapDef],
}

/// Why the fleet refused a hook command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookRefusal {
    /// No memory for its program, its decoded form or its maps.
    NoMemory,
    /// The verifier (or the maps' layout) refused it.
    Build(crate::hooks::packet::BuildError),
    /// The run attached as many hooks at runtime as it reports.
    TooMany {
        /// How many.
        limit: u32,
    },
    /// Its link direction (its VM) is gone, or never was.
    NoLink,
    /// No hook by that name (runtime hooks only).
    NoHook,
    /// The hook comes from the manifest.
    FromManifest,
    /// No upload in progress.
    NoUpload,
}

/// What a hook refusal says about hook `name` (meant for `on`).
fn hook_refusal(r: HookRefusal, name: &str, on: Target) -> Text {
    match r {
        HookRefusal::NoMemory => Text::format(format_args!("not enough memory for hook `{name}`")),
        HookRefusal::Build(e) => Text::format(format_args!("program refused: hook `{name}`: {e}")),
        HookRefusal::TooMany { limit } => Text::format(format_args!(
            "hook `{name}`: the run has attached {limit} hooks at runtime, the most it reports"
        )),
        HookRefusal::NoLink => match on {
            Target::Link { link, dir } => {
                Text::format(format_args!("link {link} has no direction {}", dir.name()))
            }
            Target::Nic { nic, .. } => Text::format(format_args!("no shared NIC {nic}")),
            Target::Vm { .. } => Text::format(format_args!("hook `{name}`: its VM is gone")),
        },
        HookRefusal::NoHook => Text::format(format_args!("no hook named {name}")),
        HookRefusal::FromManifest => Text::format(format_args!(
            "hook {name} comes from the manifest and stays for the run"
        )),
        HookRefusal::NoUpload => Text::format(format_args!("no hook upload in progress")),
    }
}

/// Why an uploaded file is not an image the hypervisor can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadImage {
    /// As a Corral image (an ELF executable).
    Elf(crate::elf::ElfError),
    /// As a Solo5 hvt image.
    Hvt(crate::hvt::image::HvtImageError),
}

impl core::fmt::Display for BadImage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BadImage::Elf(e) => write!(f, "{e}"),
            BadImage::Hvt(e) => write!(f, "{e}"),
        }
    }
}

/// Why the fleet refused an image command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageRefusal {
    /// No memory for its bytes or its shared pages.
    NoMemory,
    /// The run has as many uploaded images as it keeps.
    TooMany {
        /// How many.
        limit: u32,
    },
    /// Not an image the hypervisor can run: why.
    Bad(BadImage),
    /// No upload in progress.
    NoUpload,
}

/// What an image refusal says about image `name`.
fn image_refusal(r: ImageRefusal, name: &str) -> Text {
    match r {
        ImageRefusal::NoMemory => Text::format(format_args!("not enough memory for image {name}")),
        ImageRefusal::TooMany { limit } => Text::format(format_args!(
            "image {name}: the run keeps {limit} uploaded images, the most it can"
        )),
        ImageRefusal::Bad(why) => Text::format(format_args!("image {name} refused: {why}")),
        ImageRefusal::NoUpload => Text::format(format_args!("no image upload in progress")),
    }
}

/// An image upload in progress: its name, length and the bytes that came.
struct ImageUpload {
    name: Name,
    bytes: u32,
    next: u32,
}

/// What a link direction offers a hook attached at runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookPlace {
    /// No such link (or direction).
    NoLink,
    /// A link with a NIC end (its hooks go on the NIC's queue).
    Nic,
    /// An owned NIC's queue (its frames go straight to its one guest).
    Owned,
    /// A hook from the manifest is there (it stays for the run).
    Manifest,
    /// A place for a runtime hook (empty, or with one to swap).
    Open,
}

/// The run as the control channel sees it (the platform's, or a fake).
pub trait Fleet {
    /// VMs in the run.
    fn count(&self) -> u32;
    /// VM `vm`'s row.
    fn row(&self, vm: u32) -> Option<Row>;
    /// The VM named `name`.
    fn find(&self, name: &str) -> Option<u32>;
    /// Hands `request` for `vm` to its core, which answers `seq` through
    /// [`Channel::complete`] once it has carried it out; an error if it
    /// cannot be handed over.
    fn post(&mut self, vm: u32, request: Request, seq: u32) -> Result<(), Refusal>;
    /// Starts `starts` and stops `stops` (VMs) as one command, which each
    /// VM's core carries out and which is answered `seq` once every part
    /// is done. Everything is checked first: nothing starts or stops if
    /// any part cannot be done.
    fn change(&mut self, starts: &Starts<'_>, stops: &[u32], seq: u32) -> Result<(), Refusal>;
    /// Ends the run: every core stops its VMs, the report is written.
    fn end(&mut self);
    /// Bytes of memory free for VMs.
    fn free_bytes(&self) -> u64;
    /// Links and NICs whose counters `stats` reports (links first).
    fn flows(&self) -> u32 {
        0
    }
    /// Calls `send` with flow `i`'s counters now (a
    /// [`Message::FlowRow`]), if it has some.
    fn flow(&self, _i: u32, _send: &mut dyn FnMut(&Message<'_>)) {}
    /// The first console line VM `vm`'s history keeps whose number is
    /// `from` or later, with its number.
    fn log_line(&self, _vm: u32, _from: u64) -> Option<crate::console::history::Line> {
        None
    }
    /// VM `vm`'s id (never given twice in a run) and the number of the
    /// line it prints next.
    fn log_head(&self, vm: u32) -> (u32, u64) {
        (vm, 0)
    }
    /// A `watch` began: what is in each place now is not news.
    fn watch_start(&mut self) {}
    /// Gives the next event (a VM started, restarted or ended; a console
    /// line) to `send`, once; `false` if there is none now.
    fn next_event(&mut self, _send: &mut dyn FnMut(&Message<'_>)) -> bool {
        false
    }
    /// Whether the run has an image named `name` (the manifest's, or one
    /// uploaded).
    fn has_image(&self, _name: &str) -> bool {
        false
    }
    /// Begins an upload of image `name` (checked: a new name) of `bytes`
    /// bytes and sets aside room for it. Any upload not committed before
    /// was aborted.
    fn image_begin(&mut self, _name: &str, _bytes: u32) -> Result<(), ImageRefusal> {
        Err(ImageRefusal::NoMemory)
    }
    /// Writes the upload's bytes from `offset` (in order, within its
    /// length: the channel checked); refused if this channel's upload was
    /// dropped (the other channel began one).
    fn image_write(&mut self, _offset: u32, _bytes: &[u8]) -> Result<(), ImageRefusal> {
        Err(ImageRefusal::NoUpload)
    }
    /// Drops the image upload in progress and gives its room back.
    fn image_abort(&mut self) {}
    /// Checks this channel's whole upload `name` as an image and keeps it
    /// for the run; the upload is over either way.
    fn image_commit(&mut self, _name: &str) -> Result<(), ImageRefusal> {
        Err(ImageRefusal::NoUpload)
    }
    /// What a place offers a runtime hook: a link's direction, or a VM
    /// for a hook of one kind.
    fn hook_place(&self, _on: Target) -> HookPlace {
        HookPlace::NoLink
    }
    /// Begins an upload of `target` (its name and place checked already)
    /// and sets aside room for its instructions; an error names what is
    /// wrong (memory). Any upload not committed before was aborted.
    fn hook_begin(&mut self, _target: &HookTarget<'_>) -> Result<(), HookRefusal> {
        Err(HookRefusal::NoLink)
    }
    /// Writes the upload's instructions from index `offset` (whole
    /// instructions, in order, within its count: the channel checked).
    fn hook_write(&mut self, _offset: u32, _bytes: &[u8]) -> Result<(), HookRefusal> {
        Err(HookRefusal::NoUpload)
    }
    /// Drops the upload in progress and gives its room back.
    fn hook_abort(&mut self) {}
    /// Verifies the whole upload, builds its hook (memory for the decoded
    /// program and its maps) and puts it on its direction, in place of
    /// the runtime hook there. Returns the new hook's row (its engine),
    /// and the final counters of the hook it replaced, if any. The upload
    /// is over either way.
    fn hook_commit(&mut self) -> Result<(HookStat, Option<HookStat>), HookRefusal> {
        Err(HookRefusal::NoUpload)
    }
    /// Takes runtime hook `name` off its direction, gives its memory back;
    /// its final counters.
    fn hook_detach(&mut self, _name: &str) -> Result<HookStat, HookRefusal> {
        Err(HookRefusal::NoHook)
    }
    /// Hook `name`'s counters now, if there is such a hook.
    fn hook_stat(&self, _name: &str) -> Option<HookStat> {
        None
    }
    /// Links ports `a` and `b` (of VMs this fleet has) while the run goes
    /// on and gives the new link's [`Message::FlowRow`] to `send`.
    fn link_attach(
        &mut self,
        _a: PortRef,
        _b: PortRef,
        _send: &mut dyn FnMut(&Message<'_>),
    ) -> Result<(), MakeRefusal> {
        Err(MakeRefusal::NotService)
    }
    /// Unmakes the link made at runtime between `a` and `b` and gives its
    /// final [`Message::FlowRow`] to `send`.
    fn link_detach(
        &mut self,
        _a: PortRef,
        _b: PortRef,
        _send: &mut dyn FnMut(&Message<'_>),
    ) -> Result<(), MakeRefusal> {
        Err(MakeRefusal::NotService)
    }
    /// The `nth` entry (from 0) whose value is not all zero among hook
    /// `name`'s maps, in map then slot order.
    fn hook_entry(&self, _name: &str, _nth: u32) -> Option<MapRow> {
        None
    }
}

/// An upload in progress: the hook's name, its instruction count and
/// how many have come.
struct Upload {
    name: Name,
    on: Target,
    insns: u32,
    next: u32,
}

/// What the channel has seen (for the report).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelStats {
    /// Commands accepted.
    pub commands: u64,
    /// Errors answered (malformed frames, refusals).
    pub errors: u64,
}

/// When a command is answered.
enum Answer {
    /// Here and now.
    Now(Result<(), Text>),
    /// By the VM's core once it has carried it out.
    Later,
    /// Refused: it could not be handed to the VM's core.
    Refused(Text),
}

/// One control channel (a serial line's worth of state).
pub struct Channel {
    input: Vec<u8, MAX_FRAME>,
    /// When the last byte of a partial frame came.
    last_byte: u64,
    session: Session,
    out: Deque<u8, OUT_BYTES>,
    /// A `list` (or a `stats`'s link and NIC rows) being answered: its
    /// sequence number, the next row, and whether the rows are flows.
    listing: Option<(u32, u32, bool)>,
    /// A `logs` being answered: its sequence number, the VM, the next
    /// line wanted, and how many more lines it may send.
    logging: Option<(u32, u32, u64, u32)>,
    /// A `hook maps` being answered: its sequence number, the hook, the
    /// next entry.
    mapping: Option<(u32, Name, u32)>,
    /// A hook upload in progress.
    upload: Option<Upload>,
    /// The image upload in progress, if any.
    image: Option<ImageUpload>,
    /// The sequence number events go under, once a `watch` asked for them.
    watching: Option<u32>,
    /// Inside a run of bytes that are not frames (already answered).
    skipping: bool,
    ended: bool,
    stats: ChannelStats,
}

impl Default for Channel {
    fn default() -> Self {
        Self::new()
    }
}

impl Channel {
    /// A channel expecting sequence number 0.
    pub const fn new() -> Self {
        Channel {
            input: Vec::new(),
            last_byte: 0,
            session: Session::new(),
            out: Deque::new(),
            listing: None,
            logging: None,
            mapping: None,
            upload: None,
            image: None,
            watching: None,
            skipping: false,
            ended: false,
            stats: ChannelStats {
                commands: 0,
                errors: 0,
            },
        }
    }

    /// What it has seen.
    pub fn stats(&self) -> ChannelStats {
        self.stats
    }

    /// Whether an `end` was accepted.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Whether the longest answer still fits the output queue.
    pub fn has_room(&self) -> bool {
        OUT_BYTES - self.out.len() >= MAX_ANSWER
    }

    /// Whether the channel takes another byte now: there is room for its
    /// answer and no `list` is still being written.
    pub fn wants_input(&self) -> bool {
        self.listing.is_none()
            && self.logging.is_none()
            && self.mapping.is_none()
            && self.has_room()
            && !self.ended
    }

    /// The next byte for the line.
    pub fn pop_out(&mut self) -> Option<u8> {
        self.out.pop_front()
    }

    /// Bytes waiting for the line.
    pub fn pending_out(&self) -> usize {
        self.out.len()
    }

    /// A byte from the line at time `now` (call only while
    /// [`Channel::wants_input`]); a whole frame is carried out at once.
    pub fn receive(&mut self, byte: u8, now: u64, fleet: &mut impl Fleet) {
        if self.input.push(byte).is_err() {
            // Cannot happen (no frame is longer than the buffer, and a
            // full one is taken below), but never lose track: start over.
            self.input.clear();
        }
        self.last_byte = now;
        self.take_frames(fleet);
    }

    /// Time passes at `now`: a frame half-sent for too long is dropped,
    /// a `list` being answered goes on, and events go out while the line
    /// has nothing else to carry.
    pub fn tick(&mut self, now: u64, fleet: &mut impl Fleet) {
        self.list_rows(fleet);
        self.events(fleet);
        // Frames that waited for room go on.
        if self.wants_input() {
            self.take_frames(fleet);
        }
        if !self.input.is_empty()
            && now.saturating_sub(self.last_byte) > PARTIAL_TIMEOUT
            && self.wants_input()
        {
            // Not a frame after all (a header whose length never came):
            // skip its first byte and look again, so a good frame caught
            // behind it is still found.
            let have = self.input.len();
            let text = Text::format(format_args!(
                "frame refused: {have} bytes of a frame and then nothing; skipped"
            ));
            // After a pause this is news, whatever came before it.
            self.error(UNFRAMED, text.as_str());
            self.skipping = true;
            self.input.remove(0);
            self.take_frames(fleet);
        }
    }

    /// A core carried out (or refused) command `seq`.
    pub fn complete(&mut self, seq: u32, result: Result<(), &str>) {
        match result {
            Ok(()) => self.answer(seq, &Message::Done),
            Err(text) => self.error(seq, text),
        }
    }

    fn take_frames(&mut self, fleet: &mut impl Fleet) {
        // One frame at a time while its answer has room; the rest waits in
        // the buffer for `tick`.
        while self.wants_input() {
            let used = match next_frame(&self.input) {
                Next::NeedMore => return,
                Next::Frame(_, len) => {
                    self.skipping = false;
                    // The message borrows the bytes: carry it out from a copy.
                    let copy = self.input.clone();
                    if let Next::Frame(frame, _) = next_frame(&copy) {
                        self.command(frame.seq, frame.msg, fleet);
                    }
                    len
                }
                Next::Bad(e, skip) => {
                    // One error for a run of bytes that are not frames: a
                    // refused header, then the rest of what it began.
                    if !(e == FrameError::Magic && self.skipping) {
                        let text = Text::format(format_args!("frame refused: {e}"));
                        self.error(UNFRAMED, text.as_str());
                    }
                    self.skipping = true;
                    skip
                }
            };
            let used = used.min(self.input.len());
            // Keep the bytes after the frame (a short copy: at most one frame).
            let rest = self.input.len() - used;
            self.input.copy_within(used.., 0);
            self.input.truncate(rest);
            if self.input.is_empty() {
                return;
            }
        }
    }

    fn command(&mut self, seq: u32, msg: Message<'_>, fleet: &mut impl Fleet) {
        if let Err(e) = self.session.accept(seq) {
            // Under no command's number: the peer's own command with that
            // number may still be answered.
            let text = Text::format(format_args!("frame refused: {e}"));
            self.error(UNFRAMED, text.as_str());
            return;
        }
        // The VM's core answers once it has carried it out.
        let mut post = |name: &str, request| {
            let Some(vm) = fleet.find(name) else {
                return Answer::Refused(Text::format(format_args!("no VM named {name}")));
            };
            match fleet.post(vm, request, seq) {
                Ok(()) => Answer::Later,
                Err(r) => Answer::Refused(refusal(r, name, 1)),
            }
        };
        let answer = match msg {
            Message::List => {
                self.stats.commands += 1;
                self.listing = Some((seq, 0, false));
                self.list_rows(fleet);
                return;
            }
            Message::End => {
                self.ended = true;
                fleet.end();
                Answer::Now(Ok(()))
            }
            Message::Watch => {
                // From what is new now, under this command's number.
                fleet.watch_start();
                self.watching = Some(seq);
                Answer::Now(Ok(()))
            }
            Message::Logs { vm, from } => match fleet.find(vm) {
                None => Answer::Refused(Text::format(format_args!("no VM named {vm}"))),
                Some(v) => {
                    self.stats.commands += 1;
                    // Which VM answers, first: a follower sees a new one.
                    let (id, next) = fleet.log_head(v);
                    self.answer(seq, &Message::LogHead { id, next });
                    self.logging = Some((seq, v, from, MAX_LOG_LINES));
                    self.list_rows(fleet);
                    return;
                }
            },
            Message::Stop { vm } => post(vm, Request::Stop),
            Message::Restart { vm } => post(vm, Request::Restart),
            Message::Tune { vm, what, value } => match (what, value) {
                (control::TUNE_SLICE, v)
                    if v != 0 && !(MIN_TIMESLICE..=MAX_TIMESLICE).contains(&v) =>
                {
                    Answer::Refused(Text::format(format_args!(
                        "a slice of {v} instructions is outside {MIN_TIMESLICE}..={MAX_TIMESLICE} (0: the run's)"
                    )))
                }
                (control::TUNE_SLICE, v) => post(vm, Request::Slice(v)),
                (control::TUNE_BUDGET, v) => post(vm, Request::Budget(v)),
                // Refused when the frame was read; never reaches here.
                (what, _) => Answer::Refused(Text::format(format_args!("no setting {what}"))),
            },
            Message::Start {
                entry,
                name,
                args,
                memory,
            } => start(fleet, (entry, name), args, memory, seq),
            Message::Scale { entry, count } => scale(fleet, entry, count, seq),
            Message::LinkAttach { a, b } => self.link(fleet, seq, [a, b], true),
            Message::LinkDetach { a, b } => self.link(fleet, seq, [a, b], false),
            Message::Stats => {
                let running = (0..fleet.count())
                    .filter_map(|vm| fleet.row(vm))
                    .filter(|r| r.status == control::VM_RUNNING)
                    .count() as u32;
                self.stats.commands += 1;
                let stats = Message::HostStats {
                    free: fleet.free_bytes(),
                    running,
                    commands: self.stats.commands,
                    errors: self.stats.errors,
                };
                self.answer(seq, &stats);
                // Then each link's and NIC's row, as room frees, and done.
                self.listing = Some((seq, 0, true));
                self.list_rows(fleet);
                return;
            }
            Message::HookBegin {
                name,
                on,
                insns,
                maps,
            } => self.hook_begin(fleet, name, on, insns, maps),
            Message::HookChunk { offset, bytes } => self.hook_chunk(fleet, offset, bytes),
            Message::HookCommit { name } => self.hook_commit(fleet, name, seq),
            Message::HookDetach { name } => match fleet.hook_detach(name) {
                Ok(old) => {
                    self.stats.commands += 1;
                    self.answer(seq, &hook_row(&old));
                    self.answer(seq, &Message::Done);
                    return;
                }
                Err(r) => Answer::Refused(hook_refusal(
                    r,
                    name,
                    Target::Link {
                        link: 0,
                        dir: LinkDir::AToB,
                    },
                )),
            },
            Message::ImageBegin { name, bytes } => self.image_begin(fleet, name, bytes),
            Message::ImageChunk { offset, bytes } => self.image_chunk(fleet, offset, bytes),
            Message::ImageCommit { name } => self.image_commit(fleet, name),
            Message::StartImage {
                image,
                name,
                args,
                memory,
            } => start_image(fleet, (image, name), args, memory, seq),
            Message::HookMaps { name } => match fleet.hook_stat(name) {
                None => Answer::Refused(Text::format(format_args!("no hook named {name}"))),
                Some(stat) => {
                    self.stats.commands += 1;
                    self.answer(seq, &hook_row(&stat));
                    self.mapping = Some((seq, stat.name, 0));
                    self.list_rows(fleet);
                    return;
                }
            },
            Message::Done
            | Message::HookRow { .. }
            | Message::MapEntry { .. }
            | Message::Error { .. }
            | Message::VmRow { .. }
            | Message::HostStats { .. }
            | Message::CoreRow { .. }
            | Message::FlowRow { .. }
            | Message::LogLine { .. }
            | Message::LogHead { .. }
            | Message::VmEvent { .. }
            | Message::Console { .. } => Answer::Now(Err(Text::format(format_args!(
                "not a command: the hypervisor sends this message, it does not take it"
            )))),
        };
        match answer {
            Answer::Now(Ok(())) => {
                self.stats.commands += 1;
                self.answer(seq, &Message::Done);
            }
            Answer::Later => self.stats.commands += 1,
            Answer::Now(Err(t)) | Answer::Refused(t) => self.error(seq, t.as_str()),
        }
    }

    /// `link attach|detach`: the two ends found by name, then made (the
    /// new link's row) or unmade (its final row); done after the row.
    fn link(
        &mut self,
        fleet: &mut impl Fleet,
        seq: u32,
        ends: [Port<'_>; 2],
        attach: bool,
    ) -> Answer {
        let mut refs = [PortRef { vm: 0, port: 0 }; 2];
        for (end, r) in ends.iter().zip(refs.iter_mut()) {
            let Some(vm) = fleet.find(end.vm) else {
                return Answer::Refused(Text::format(format_args!("no VM named {}", end.vm)));
            };
            if let Some(row) = fleet
                .row(vm)
                .filter(|r| attach && r.status != control::VM_RUNNING)
            {
                return Answer::Refused(Text::format(format_args!(
                    "{} has {}: only a running VM's ports are linked",
                    end.vm,
                    ended_as(row.status)
                )));
            }
            *r = PortRef { vm, port: end.port };
        }
        let [a, b] = refs;
        let mut send = |m: &Message<'_>| self.answer(seq, m);
        let done = if attach {
            fleet.link_attach(a, b, &mut send)
        } else {
            fleet.link_detach(a, b, &mut send)
        };
        match done {
            Ok(()) => Answer::Now(Ok(())),
            Err(r) => Answer::Refused(link_refusal(r, ends, refs)),
        }
    }

    /// `hook-begin`: a new upload (any other one is dropped).
    fn hook_begin(
        &mut self,
        fleet: &mut impl Fleet,
        name: &str,
        on: HookOn<'_>,
        insns: u32,
        maps: &[u8],
    ) -> Answer {
        if self.upload.take().is_some() {
            fleet.hook_abort();
        }
        if name.len() > vmm_abi::corral::bootinfo::NAME_MAX
            || !vmm_abi::text::is_valid_name(name.as_bytes())
        {
            return Answer::Refused(Text::format(format_args!(
                "`{name}` is not a hook name (1 to {} letters, digits, `-`, `_` or `.`)",
                vmm_abi::corral::bootinfo::NAME_MAX
            )));
        }
        if insns == 0 || insns as usize > MAX_INSNS {
            return Answer::Refused(Text::format(format_args!(
                "hook `{name}`: {insns} instructions; 1 to {MAX_INSNS} allowed"
            )));
        }
        let mut defs: Vec<MapDef, MAX_MAPS> = Vec::new();
        for d in control::map_defs(maps) {
            // The decoder allowed at most MAX_MAPS.
            let _ = defs.push(d);
        }
        let refused = |t: Text| Answer::Refused(t);
        let on = match on {
            HookOn::Link { link, dir } => Target::Link {
                link,
                dir: match dir {
                    DIR_A_TO_B => LinkDir::AToB,
                    _ => LinkDir::BToA,
                },
            },
            HookOn::Nic { nic, dir } => Target::Nic {
                nic,
                dir: if dir == control::NIC_TX {
                    NicDir::Tx
                } else {
                    NicDir::Rx
                },
            },
            HookOn::Vm { vm, kind } => {
                let Some(place) = fleet.find(vm) else {
                    return refused(Text::format(format_args!("no VM named {vm}")));
                };
                // The decoder let only the VM kinds through.
                let kind = HookKind::ALL
                    .into_iter()
                    .find(|&k| k as u8 == kind)
                    .unwrap_or(HookKind::Exit);
                Target::Vm { vm: place, kind }
            }
        };
        let place = fleet.hook_place(on);
        let place_text = place_name(fleet, on);
        let here = place_text.as_str();
        match (place, on) {
            (HookPlace::Open, _) => {}
            (HookPlace::NoLink, Target::Link { link, dir }) => {
                return refused(Text::format(format_args!(
                    "link {link} has no direction {}",
                    dir.name()
                )));
            }
            (HookPlace::NoLink | HookPlace::Nic | HookPlace::Owned, Target::Vm { .. }) => {
                return refused(Text::format(format_args!("{here}: the VM is gone")));
            }
            (HookPlace::NoLink | HookPlace::Nic, Target::Nic { nic, .. }) => {
                return refused(Text::format(format_args!("the run has no NIC {nic}")));
            }
            (HookPlace::Owned, _) => {
                return refused(Text::format(format_args!(
                    "{here}: an owned NIC's frames go straight to its one guest, with no hook point"
                )));
            }
            (HookPlace::Nic, Target::Link { link, .. }) => {
                return refused(Text::format(format_args!(
                    "link {link} has a NIC end: attach the hook to the NIC's queue instead"
                )));
            }
            (HookPlace::Manifest, _) => {
                return refused(Text::format(format_args!(
                    "{here}: its hook comes from the manifest and stays for the run"
                )));
            }
        }
        // A name may be reused only by the hook that takes its place.
        if let Some(s) = fleet.hook_stat(name)
            && s.on != on
        {
            return refused(Text::format(format_args!(
                "a hook named {name} already exists (on {})",
                place_name(fleet, s.on).as_str()
            )));
        }
        let target = HookTarget {
            name,
            on,
            insns,
            maps: &defs,
        };
        match fleet.hook_begin(&target) {
            Ok(()) => {
                self.upload = Some(Upload {
                    name: Name::try_from(name).unwrap_or_default(),
                    on,
                    insns,
                    next: 0,
                });
                Answer::Now(Ok(()))
            }
            Err(r) => Answer::Refused(hook_refusal(r, name, on)),
        }
    }

    /// `image-begin`: a new image upload (any other one is dropped).
    fn image_begin(&mut self, fleet: &mut impl Fleet, name: &str, bytes: u32) -> Answer {
        if self.image.take().is_some() {
            fleet.image_abort();
        }
        if let Some(a) = bad_name(name, "an image") {
            return a;
        }
        if bytes == 0 || bytes > control::MAX_IMAGE_BYTES {
            return Answer::Refused(Text::format(format_args!(
                "image {name}: {bytes} bytes; 1 to {} allowed",
                control::MAX_IMAGE_BYTES
            )));
        }
        if fleet.has_image(name) {
            return Answer::Refused(Text::format(format_args!(
                "an image named {name} already exists"
            )));
        }
        match fleet.image_begin(name, bytes) {
            Ok(()) => {
                self.image = Some(ImageUpload {
                    name: Name::try_from(name).unwrap_or_default(),
                    bytes,
                    next: 0,
                });
                Answer::Now(Ok(()))
            }
            Err(r) => Answer::Refused(image_refusal(r, name)),
        }
    }

    /// `image-chunk`: the next bytes of the image upload, in order; any
    /// chunk out of place drops the upload.
    fn image_chunk(&mut self, fleet: &mut impl Fleet, offset: u32, bytes: &[u8]) -> Answer {
        let Some(up) = &mut self.image else {
            return Answer::Refused(Text::format(format_args!(
                "no image upload in progress (an image-begin comes first)"
            )));
        };
        let n = bytes.len() as u32;
        let label = Text::format(format_args!("image {}", up.name));
        let refused = misplaced_chunk(
            &label,
            ("byte", "bytes"),
            (offset, n),
            (up.next, up.bytes),
            "",
        );
        if let Some(t) = refused {
            self.image = None;
            fleet.image_abort();
            return Answer::Refused(t);
        }
        match fleet.image_write(offset, bytes) {
            Ok(()) => {
                up.next += n;
                Answer::Now(Ok(()))
            }
            Err(r) => {
                let t = image_refusal(r, &up.name);
                self.image = None;
                Answer::Refused(t)
            }
        }
    }

    /// `image-commit`: the whole upload checked and kept.
    fn image_commit(&mut self, fleet: &mut impl Fleet, name: &str) -> Answer {
        let Some(up) = self.image.take_if(|u| u.name == name) else {
            return Answer::Refused(Text::format(format_args!(
                "no image upload named {name} in progress"
            )));
        };
        if up.next < up.bytes {
            fleet.image_abort();
            return Answer::Refused(Text::format(format_args!(
                "image {name}: bytes {}..{} never came: the upload is dropped",
                up.next, up.bytes
            )));
        }
        match fleet.image_commit(name) {
            Ok(()) => Answer::Now(Ok(())),
            Err(r) => Answer::Refused(image_refusal(r, name)),
        }
    }

    /// `hook-chunk`: the next instructions of the upload, in order; any
    /// chunk out of place drops the upload.
    fn hook_chunk(&mut self, fleet: &mut impl Fleet, offset: u32, bytes: &[u8]) -> Answer {
        let Some(up) = &mut self.upload else {
            return Answer::Refused(Text::format(format_args!(
                "no hook upload in progress (a hook-begin comes first)"
            )));
        };
        let n = (bytes.len() / vmm_abi::hook::insn::INSN_SIZE) as u32;
        let label = Text::format(format_args!("hook `{}`", up.name));
        let refused = misplaced_chunk(
            &label,
            ("instruction", "instructions"),
            (offset, n),
            (up.next, up.insns),
            ", nothing attached",
        );
        if let Some(t) = refused {
            self.upload = None;
            fleet.hook_abort();
            return Answer::Refused(t);
        }
        match fleet.hook_write(offset, bytes) {
            Ok(()) => {
                up.next += n;
                Answer::Now(Ok(()))
            }
            Err(r) => {
                let t = hook_refusal(r, &up.name, up.on);
                self.upload = None;
                fleet.hook_abort();
                Answer::Refused(t)
            }
        }
    }

    /// `hook-commit`: the whole upload verified and attached (answered
    /// with the new hook's row, then the row of the hook it replaced, if
    /// any).
    fn hook_commit(&mut self, fleet: &mut impl Fleet, name: &str, seq: u32) -> Answer {
        let Some(up) = self.upload.take_if(|u| u.name == name) else {
            return Answer::Refused(Text::format(format_args!(
                "no hook upload named {name} in progress"
            )));
        };
        if up.next < up.insns {
            fleet.hook_abort();
            return Answer::Refused(Text::format(format_args!(
                "hook `{name}`: instructions {}..{} never came: the upload is dropped, nothing attached",
                up.next, up.insns
            )));
        }
        match fleet.hook_commit() {
            Ok((new, old)) => {
                // The new hook's row first (its engine), then the row of
                // the hook it replaced, if any (both fit the room one
                // answer is given: see `HOOK_ROW_MAX`).
                self.answer(seq, &hook_row(&new));
                if let Some(old) = old {
                    self.answer(seq, &hook_row(&old));
                }
                Answer::Now(Ok(()))
            }
            Err(r) => Answer::Refused(hook_refusal(r, name, up.on)),
        }
    }

    /// Writes the rows of the `list` (or `stats`, or `logs`) in progress
    /// while there is room, then its `done`.
    fn list_rows(&mut self, fleet: &impl Fleet) {
        while let Some((seq, name, nth)) = self.mapping.take() {
            if !self.has_room() {
                self.mapping = Some((seq, name, nth));
                return;
            }
            match fleet.hook_entry(&name, nth).filter(|_| nth < MAX_MAP_ROWS) {
                None => self.answer(seq, &Message::Done),
                Some(row) => {
                    let entry = Message::MapEntry {
                        map: row.map,
                        core: row.core,
                        key: &row.key,
                        value: &row.value,
                    };
                    self.answer(seq, &entry);
                    self.mapping = Some((seq, name, nth + 1));
                }
            }
        }
        while let Some((seq, vm, from, left)) = self.logging {
            if !self.has_room() {
                return;
            }
            match fleet.log_line(vm, from).filter(|_| left > 0) {
                None => {
                    self.logging = None;
                    self.answer(seq, &Message::Done);
                }
                Some((n, text)) => {
                    let line = Message::LogLine {
                        seq: n,
                        text: &text,
                    };
                    self.answer(seq, &line);
                    self.logging = Some((seq, vm, n + 1, left - 1));
                }
            }
        }
        while let Some((seq, next, flows)) = self.listing {
            if !self.has_room() {
                return;
            }
            let rows = if flows { fleet.flows() } else { fleet.count() };
            if next >= rows {
                self.listing = None;
                self.answer(seq, &Message::Done);
                return;
            }
            if flows {
                fleet.flow(next, &mut |m| self.answer(seq, m));
            } else if let Some(row) = fleet.row(next) {
                self.answer(
                    seq,
                    &Message::VmRow {
                        vm: next,
                        name: &row.name,
                        status: row.status,
                        core: row.core,
                        restarts: row.restarts,
                        exits: row.exits,
                        ran: row.ran,
                    },
                );
            }
            self.listing = Some((seq, next + 1, flows));
        }
    }

    /// One event for the watcher, and only while no answer is being
    /// written or waits to be read (so an event holds a command's answer
    /// back by at most the one frame on the line); the control core ticks
    /// often enough that this is no limit.
    fn events(&mut self, fleet: &mut impl Fleet) {
        let Some(seq) = self.watching else {
            return;
        };
        let busy = self.listing.is_some() || self.logging.is_some() || self.mapping.is_some();
        if busy || self.ended || !self.out.is_empty() || !self.input.is_empty() {
            return;
        }
        fleet.next_event(&mut |m| self.answer(seq, m));
    }

    fn error(&mut self, seq: u32, text: &str) {
        self.stats.errors += 1;
        // Texts are at most 255 bytes on the wire: cut on a char boundary.
        let mut end = text.len().min(255);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.answer(seq, &Message::Error { text: &text[..end] });
    }

    fn answer(&mut self, seq: u32, msg: &Message<'_>) {
        let mut buf = [0u8; MAX_ANSWER];
        // Every answer this side builds fits (names and texts are at most
        // 255 bytes); one that did not would be a bug here, not the peer's.
        if let Ok(n) = control::encode(msg, seq, &mut buf) {
            for &b in &buf[..n] {
                // Room was checked before any input was taken.
                let _ = self.out.push_back(b);
            }
        }
    }
}

/// What a `watch` has been told of a VM place: which VM held it, the
/// number of its next line, its status and restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The VM's id ([`Seen::NOBODY`]'s: none seen).
    pub id: u32,
    /// The number of the next line to tell.
    pub line: u64,
    /// Its status as told (`vmm_abi::control::VM_*`).
    pub status: u8,
    /// Its restarts as told.
    pub restarts: u32,
}

impl Seen {
    /// Nothing seen in the place.
    pub const NOBODY: Seen = Seen {
        id: u32::MAX,
        line: 0,
        status: control::VM_RUNNING,
        restarts: 0,
    };
}

/// A VM place as it is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlaceNow {
    /// The id of the VM that holds it.
    pub id: u32,
    /// Its status (`vmm_abi::control::VM_*`).
    pub status: u8,
    /// Its restarts.
    pub restarts: u32,
}

/// What a place has that its watcher was not told yet.
// Made and sent one at a time, never stored: the line's size is no cost.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum News {
    /// A VM started, restarted or ended (`vmm_abi::control::EVENT_*`).
    Vm {
        /// Its id.
        id: u32,
        /// Which.
        event: u8,
        /// Its status now.
        status: u8,
        /// Its restarts so far.
        restarts: u32,
    },
    /// A line it printed.
    Line {
        /// Its id.
        id: u32,
        /// The line's number.
        seq: u64,
        /// The line.
        text: heapless::String<{ crate::console::history::HISTORY_LINE_MAX }>,
    },
}

/// The first thing a place (`now`, its lines through `line`: the first
/// kept at or after a number) has that its watcher (`seen`) was not told,
/// noted as told: a new VM there, then its lines in order, then a
/// restart or its end. A VM that ended and restarted between two looks is
/// told as restarted (its lines tell the end).
pub fn news(
    seen: &mut Seen,
    now: PlaceNow,
    line: impl FnOnce(u64) -> Option<crate::console::history::Line>,
) -> Option<News> {
    let PlaceNow {
        id,
        status,
        restarts,
    } = now;
    if seen.id != id {
        *seen = Seen {
            id,
            line: 0,
            status: control::VM_RUNNING,
            restarts,
        };
        return Some(News::Vm {
            id,
            event: control::EVENT_STARTED,
            status: control::VM_RUNNING,
            restarts,
        });
    }
    if let Some((seq, text)) = line(seen.line) {
        seen.line = seq + 1;
        return Some(News::Line { id, seq, text });
    }
    if restarts > seen.restarts {
        seen.restarts = restarts;
        seen.status = control::VM_RUNNING;
        return Some(News::Vm {
            id,
            event: control::EVENT_RESTARTED,
            status: control::VM_RUNNING,
            restarts,
        });
    }
    if status != seen.status {
        seen.status = status;
        if status != control::VM_RUNNING {
            return Some(News::Vm {
                id,
                event: control::EVENT_ENDED,
                status,
                restarts,
            });
        }
    }
    None
}

/// The row of a hook's counters.
fn hook_row(s: &HookStat) -> Message<'_> {
    Message::HookRow {
        name: &s.name,
        on: match s.on {
            Target::Link { link, dir } => HookOn::Link {
                link,
                dir: match dir {
                    LinkDir::AToB => DIR_A_TO_B,
                    LinkDir::BToA => DIR_B_TO_A,
                },
            },
            Target::Nic { nic, dir } => HookOn::Nic {
                nic,
                dir: match dir {
                    NicDir::Rx => control::NIC_RX,
                    NicDir::Tx => control::NIC_TX,
                },
            },
            Target::Vm { kind, .. } => HookOn::Vm {
                vm: &s.vm,
                kind: kind as u8,
            },
        },
        engine: s.engine,
        runs: s.runs,
        pass: s.pass,
        dropped: s.dropped,
        faults: s.faults,
        insns: s.insns,
    }
}

/// A hook's place in words: `link 0 a->b`, `web-0's exit hook`.
fn place_name(fleet: &impl Fleet, on: Target) -> Text {
    match on {
        Target::Link { link, dir } => Text::format(format_args!("link {link} {}", dir.name())),
        Target::Nic { nic, dir } => Text::format(format_args!("nic {nic} {}", dir.name())),
        Target::Vm { vm, kind } => match fleet.row(vm) {
            Some(row) => Text::format(format_args!("{}'s {} hook", row.name, kind.name())),
            None => Text::format(format_args!("VM place {vm}'s {} hook", kind.name())),
        },
    }
}

/// What a refusal says, about `what` (a VM, or an entry `wanted` more VMs
/// of which were asked for).
fn refusal(r: Refusal, what: &str, wanted: u64) -> Text {
    match r {
        Refusal::NoCore => Text::format(format_args!("{what} has no running core to run on")),
        Refusal::Busy { limit } => Text::format(format_args!(
            "{limit} commands are still being carried out; try again"
        )),
        Refusal::MailboxFull { core } => {
            Text::format(format_args!("core {core}'s mailbox is full; try again"))
        }
        Refusal::Memory { fit } => Text::format(format_args!(
            "not enough memory for {wanted} more clones of {what}: {fit} fit"
        )),
        Refusal::NoRoom { free } => Text::format(format_args!(
            "no room for {wanted} more VMs of {what}: the run has room for {free} more on its cores"
        )),
        Refusal::Template { why } => Text::format(format_args!("{what}: {why}")),
    }
}

/// How a VM that is not running ended, for a sentence: `exited`, `been
/// stopped`, `been killed`.
fn ended_as(status: u8) -> &'static str {
    match status {
        control::VM_EXITED => "exited",
        control::VM_STOPPED => "been stopped",
        control::VM_KILLED => "been killed",
        _ => "ended",
    }
}

/// Why a link between `ends` (found as `refs`) cannot be made or unmade.
fn link_refusal(r: MakeRefusal, ends: [Port<'_>; 2], refs: [PortRef; 2]) -> Text {
    let name = |p: PortRef| {
        if p == refs[0] { ends[0] } else { ends[1] }
    };
    let [a, b] = ends;
    match r {
        MakeRefusal::NotService => Text::format(format_args!(
            "links are made and unmade in a service run only"
        )),
        MakeRefusal::NoPort(p) => Text::format(format_args!(
            "{} has no net port {} (its manifest entry's `net` says how many)",
            name(p).vm,
            p.port
        )),
        MakeRefusal::SamePort => Text::format(format_args!(
            "{a} and {b} are the same port: a link joins two"
        )),
        MakeRefusal::Linked(p, link) => Text::format(format_args!(
            "{} is linked already (link {link}); `corral link detach` unmakes a link made at runtime",
            name(p)
        )),
        MakeRefusal::Full => Text::format(format_args!(
            "no room for another link: {MAX_MADE_LINKS} links made at runtime exist"
        )),
        MakeRefusal::NoLink => Text::format(format_args!(
            "no link made at runtime joins {a} and {b} (the manifest's links stay for the run)"
        )),
    }
}

/// The entry named `entry`: its first VM and the next free clone number.
fn entry_of(fleet: &impl Fleet, entry: &str) -> Option<(u32, u32)> {
    let mut template = None;
    let mut next = 0u32;
    for vm in 0..fleet.count() {
        let Some(row) = fleet.row(vm) else { continue };
        if row.entry != entry {
            continue;
        }
        template.get_or_insert(vm);
        let n = row
            .name
            .strip_prefix(entry)
            .and_then(|r| r.strip_prefix('-'))
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(n) = n {
            next = next.max(n.saturating_add(1));
        }
    }
    Some((template?, next))
}

fn no_entry(entry: &str) -> Answer {
    Answer::Refused(Text::format(format_args!("no entry named {entry}")))
}

/// A refusal if the clone names of `entry` up to number `last` do not
/// fit a name.
fn clone_names_too_long(entry: &str, last: u32) -> Option<Answer> {
    // `clone_name` cuts what does not fit: the whole name must be there.
    let mut full = StackStr::<64>::new();
    let _ = core::fmt::write(&mut full, format_args!("{entry}-{last}"));
    (full.as_str() != clone_name(entry, last).as_str()).then(|| {
        Answer::Refused(Text::format(format_args!(
            "{entry}: clone {last}'s name `{}` is longer than {} bytes",
            full.as_str(),
            vmm_abi::corral::bootinfo::NAME_MAX
        )))
    })
}

/// Why a chunk of `n` units at `offset` of an upload (`label`: "image x",
/// "hook `x`") cannot be taken, if it cannot: it is not the `next` one, or
/// it runs past the upload's `total` (`unit`s); the upload is then dropped
/// (`dropped` says what else that means).
fn misplaced_chunk(
    label: &Text,
    (unit, units): (&str, &str),
    (offset, n): (u32, u32),
    (next, total): (u32, u32),
    dropped: &str,
) -> Option<Text> {
    let label = label.as_str();
    if offset != next {
        Some(Text::format(format_args!(
            "{label}: a chunk at {unit} {offset}, expected {next}: the upload is dropped{dropped}"
        )))
    } else if offset.saturating_add(n) > total {
        Some(Text::format(format_args!(
            "{label}: a chunk past its {total} {units}: the upload is dropped{dropped}"
        )))
    } else {
        None
    }
}

/// A refusal if `name` is not a name (`what`: "a VM", "an image").
fn bad_name(name: &str, what: &str) -> Option<Answer> {
    let bad = name.len() > vmm_abi::corral::bootinfo::NAME_MAX
        || !vmm_abi::text::is_valid_name(name.as_bytes())
        || name == vmm_abi::report::HYPERVISOR_SOURCE;
    bad.then(|| {
        Answer::Refused(Text::format(format_args!(
            "`{name}` is not {what} name (1 to {} letters, digits, `-`, `_` or `.`; not `{}`)",
            vmm_abi::corral::bootinfo::NAME_MAX,
            vmm_abi::report::HYPERVISOR_SOURCE
        )))
    })
}

/// A refusal if a start's overrides break the manifest's rules.
fn bad_overrides(what: &str, args: Option<&str>, memory: u64) -> Option<Answer> {
    if let Some(Err(p)) = args.map(vmm_abi::manifest::check_args) {
        return Some(Answer::Refused(Text::format(format_args!(
            "start {what}: `args`: {p}"
        ))));
    }
    if memory != 0
        && let Err(p) = vmm_abi::manifest::check_memory(memory)
    {
        return Some(Answer::Refused(Text::format(format_args!(
            "start {what}: `memory`: {p} (bytes)"
        ))));
    }
    None
}

/// `start --image IMAGE --name NAME`: a VM from an image the run has.
fn start_image(
    fleet: &mut impl Fleet,
    (image, name): (&str, &str),
    args: Option<&str>,
    memory: u64,
    seq: u32,
) -> Answer {
    if !fleet.has_image(image) {
        return Answer::Refused(Text::format(format_args!("no image named {image}")));
    }
    if let Some(a) = bad_overrides(image, args, memory).or_else(|| bad_name(name, "a VM")) {
        return a;
    }
    if fleet.find(name).is_some() {
        return Answer::Refused(Text::format(format_args!(
            "a VM named {name} already exists"
        )));
    }
    let starts = Starts {
        template: 0,
        entry: image,
        count: 1,
        first_clone: 0,
        name: Some(name),
        args,
        memory,
        from_image: true,
    };
    match fleet.change(&starts, &[], seq) {
        Ok(()) => Answer::Later,
        Err(r) => Answer::Refused(refusal(r, image, 1)),
    }
}

/// `start ENTRY [NAME]`: one more VM like the entry's, with its own
/// arguments or memory size if given.
fn start(
    fleet: &mut impl Fleet,
    (entry, name): (&str, &str),
    args: Option<&str>,
    memory: u64,
    seq: u32,
) -> Answer {
    let Some((template, next)) = entry_of(fleet, entry) else {
        // An image uploaded at runtime that no VM was started from yet.
        if fleet.has_image(entry) {
            let first = clone_name(entry, 0);
            let name = if name.is_empty() {
                first.as_str()
            } else {
                name
            };
            return start_image(fleet, (entry, name), args, memory, seq);
        }
        return no_entry(entry);
    };
    // The overrides are checked as a manifest's fields are.
    if let Some(a) = bad_overrides(entry, args, memory) {
        return a;
    }
    let given = (!name.is_empty()).then_some(name);
    if let Some(n) = given {
        if let Some(a) = bad_name(n, "a VM") {
            return a;
        }
        if fleet.find(n).is_some() {
            return Answer::Refused(Text::format(format_args!("a VM named {n} already exists")));
        }
    } else if let Some(a) = clone_names_too_long(entry, next) {
        return a;
    }
    let starts = Starts {
        template,
        entry,
        count: 1,
        first_clone: next,
        name: given,
        args,
        memory,
        from_image: false,
    };
    match fleet.change(&starts, &[], seq) {
        Ok(()) => Answer::Later,
        Err(r) => Answer::Refused(refusal(r, entry, 1)),
    }
}

/// `scale ENTRY N`: starts or stops the entry's VMs until `count` run
/// (the newest stop first).
fn scale(fleet: &mut impl Fleet, entry: &str, count: u32, seq: u32) -> Answer {
    let Some((template, next)) = entry_of(fleet, entry) else {
        return no_entry(entry);
    };
    let mut running: Vec<u32, MAX_CHANGE> = Vec::new();
    let mut more = 0usize;
    for vm in 0..fleet.count() {
        let Some(row) = fleet.row(vm) else { continue };
        if row.entry == entry && row.status == control::VM_RUNNING {
            if running.is_full() {
                // Keep the newest MAX_CHANGE: only they may be stopped.
                running.remove(0);
                more += 1;
            }
            let _ = running.push(vm);
        }
    }
    let have = (running.len() + more) as u64;
    let want = u64::from(count);
    let too_many = || {
        Answer::Refused(Text::format(format_args!(
            "scale {entry} {count}: {have} run; at most {MAX_CHANGE} VMs start or stop in one command"
        )))
    };
    if want > have {
        let add = want - have;
        if add > MAX_CHANGE as u64 {
            return too_many();
        }
        if let Some(a) = clone_names_too_long(entry, next.saturating_add(add as u32 - 1)) {
            return a;
        }
        let starts = Starts {
            template,
            entry,
            count: add as u32,
            first_clone: next,
            name: None,
            args: None,
            memory: 0,
            from_image: false,
        };
        match fleet.change(&starts, &[], seq) {
            Ok(()) => Answer::Later,
            Err(r) => Answer::Refused(refusal(r, entry, add)),
        }
    } else if want < have {
        let cut = have - want;
        if cut > running.len() as u64 {
            return too_many();
        }
        let stops = &running[running.len() - cut as usize..];
        let none = Starts {
            template,
            entry,
            count: 0,
            first_clone: next,
            name: None,
            args: None,
            memory: 0,
            from_image: false,
        };
        match fleet.change(&none, stops, seq) {
            Ok(()) => Answer::Later,
            Err(r) => Answer::Refused(refusal(r, entry, 0)),
        }
    } else {
        Answer::Now(Ok(()))
    }
}

#[cfg(test)]
mod tests;
