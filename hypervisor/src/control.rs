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
use heapless::{Deque, Vec};
use vmm_abi::control::{self, FrameError, MAX_FRAME, Message, Next, Session, UNFRAMED, next_frame};

/// Bytes of answers waiting for the line.
pub const OUT_BYTES: usize = 4096;
/// Longest answer frame this side writes (an error of 255 bytes).
pub const MAX_ANSWER: usize = control::HEADER + 1 + 255 + control::TRAILER;
/// Ticks (TSC) a half-received frame may wait for its next byte before it
/// is dropped (about 0.2 s of emulated time at 100 M instructions/s).
pub const PARTIAL_TIMEOUT: u64 = 20_000_000;

/// An answer's error text.
pub type Text = StackStr<200>;

/// A VM as `list` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row<'a> {
    /// Its name.
    pub name: &'a str,
    /// `vmm_abi::control::VM_*`.
    pub status: u8,
    /// Its core (`vmm_abi::control::NO_CORE`: none).
    pub core: u32,
    /// Restarts so far.
    pub restarts: u32,
}

/// What a command asks of a VM's core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Stop it for good (`stop`).
    Stop,
    /// Start it again with fresh memory, running or ended (`restart`).
    Restart,
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
}

/// The run as the control channel sees it (the platform's, or a fake).
pub trait Fleet {
    /// VMs in the run.
    fn count(&self) -> u32;
    /// VM `vm`'s row.
    fn row(&self, vm: u32) -> Option<Row<'_>>;
    /// The VM named `name`.
    fn find(&self, name: &str) -> Option<u32>;
    /// Hands `request` for `vm` to its core, which answers `seq` through
    /// [`Channel::complete`] once it has carried it out; an error if it
    /// cannot be handed over.
    fn post(&mut self, vm: u32, request: Request, seq: u32) -> Result<(), Refusal>;
    /// Ends the run: every core stops its VMs, the report is written.
    fn end(&mut self);
    /// Bytes of memory free for VMs.
    fn free_bytes(&self) -> u64;
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
    /// A `list` being answered: its sequence number and the next VM.
    listing: Option<(u32, u32)>,
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
        self.listing.is_none() && self.has_room() && !self.ended
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
    /// and a `list` being answered goes on.
    pub fn tick(&mut self, now: u64, fleet: &mut impl Fleet) {
        self.list_rows(fleet);
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
                Err(Refusal::NoCore) => Answer::Refused(Text::format(format_args!(
                    "{name} has no running core to run on"
                ))),
                Err(Refusal::Busy { limit }) => Answer::Refused(Text::format(format_args!(
                    "{limit} commands are still being carried out; try again"
                ))),
                Err(Refusal::MailboxFull { core }) => Answer::Refused(Text::format(format_args!(
                    "core {core}'s mailbox is full; try again"
                ))),
            }
        };
        let answer = match msg {
            Message::List => {
                self.stats.commands += 1;
                self.listing = Some((seq, 0));
                self.list_rows(fleet);
                return;
            }
            Message::End => {
                self.ended = true;
                fleet.end();
                Answer::Now(Ok(()))
            }
            Message::Stop { vm } => post(vm, Request::Stop),
            Message::Restart { vm } => post(vm, Request::Restart),
            Message::Scale { entry, .. } => Answer::Now(Err(Text::format(format_args!(
                "scale {entry}: not supported yet by this hypervisor (its VMs come from the manifest)"
            )))),
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
                self.answer(seq, &Message::Done);
                return;
            }
            Message::Done
            | Message::Error { .. }
            | Message::VmRow { .. }
            | Message::HostStats { .. }
            | Message::VmEnded { .. }
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

    /// Writes the rows of the `list` in progress while there is room, then
    /// its `done`.
    fn list_rows(&mut self, fleet: &impl Fleet) {
        while let Some((seq, next)) = self.listing {
            if !self.has_room() {
                return;
            }
            if next >= fleet.count() {
                self.listing = None;
                self.answer(seq, &Message::Done);
                return;
            }
            if let Some(row) = fleet.row(next) {
                self.answer(
                    seq,
                    &Message::VmRow {
                        vm: next,
                        name: row.name,
                        status: row.status,
                        core: row.core,
                        restarts: row.restarts,
                    },
                );
            }
            self.listing = Some((seq, next + 1));
        }
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

#[cfg(test)]
mod tests;
