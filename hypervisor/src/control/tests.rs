//! Control channel tests against a fake fleet: commands answered under their sequence numbers, long lists streamed as room frees, every malformed, half-sent, replayed or out-of-order frame answered with a named error and the channel still working after it.

extern crate std;

use super::*;
use proptest::prelude::*;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec as StdVec;
use vmm_abi::control::{
    ENGINE_COMPILED, ENGINE_INTERPRETED, Frame, NO_CORE, Port, UNFRAMED, VM_RUNNING, encode,
};
use vmm_abi::manifest::{LinkDir, NicDir};

/// A start or stop as the fake saw it.
#[derive(Debug, PartialEq, Eq)]
struct Changed {
    /// (template, entry, count, first clone, given name).
    starts: (u32, String, u32, u32, Option<String>),
    /// (arguments, memory) instead of the entry's.
    overrides: (Option<String>, u64),
    stops: StdVec<u32>,
    seq: u32,
}

#[derive(Default)]
struct FakeFleet {
    names: StdVec<String>,
    /// Per VM: its entry (`web` unless set) and whether it ended.
    entries: StdVec<String>,
    ended_vms: StdVec<bool>,
    posted: StdVec<(u32, Request, u32)>,
    changed: StdVec<Changed>,
    /// What `change` refuses with, if anything.
    refuse: Option<Refusal>,
    full: bool,
    ended: bool,
    /// Links (and NICs) `stats` reports.
    flows: u32,
    /// Per VM: its console history.
    histories: StdVec<crate::console::history::History>,
    /// Runtime hooks attached, with their maps' entries.
    hooks: StdVec<(HookStat, StdVec<MapRow>)>,
    /// The upload in progress: its target and the bytes written.
    staged: Option<(String, Target, StdVec<u8>)>,
    /// Uploads dropped.
    aborts: u32,
    /// Whether `hook_begin` runs out of memory.
    no_memory: bool,
    /// Console lines waiting to be events, and `watch`es begun.
    events: std::collections::VecDeque<String>,
    watch_starts: u32,
    /// Images kept, the image upload in progress, image uploads dropped.
    images: StdVec<(String, StdVec<u8>)>,
    image_staged: Option<(String, StdVec<u8>)>,
    image_aborts: u32,
    /// Per `change`: whether it started from an image.
    from_image: StdVec<bool>,
    /// Links made (made, ends) as asked, and what the next make or unmake
    /// is refused with.
    links: StdVec<(bool, PortRef, PortRef)>,
    link_refusal: Option<MakeRefusal>,
}

impl FakeFleet {
    fn with(n: usize) -> Self {
        FakeFleet {
            names: (0..n).map(|i| std::format!("web-{i}")).collect(),
            entries: vec!["web".into(); n],
            ended_vms: vec![false; n],
            ..Default::default()
        }
    }

    /// Adds a single VM that is its own entry.
    fn single(mut self, name: &str) -> Self {
        self.names.push(name.into());
        self.entries.push(name.into());
        self.ended_vms.push(false);
        self
    }
}

impl Fleet for FakeFleet {
    fn link_attach(
        &mut self,
        a: PortRef,
        b: PortRef,
        send: &mut dyn FnMut(&Message<'_>),
    ) -> Result<(), MakeRefusal> {
        self.link_refusal.take().map_or(Ok(()), Err)?;
        self.links.push((true, a, b));
        send(&link_row(self.links.len() as u32, 0));
        Ok(())
    }
    fn link_detach(
        &mut self,
        a: PortRef,
        b: PortRef,
        send: &mut dyn FnMut(&Message<'_>),
    ) -> Result<(), MakeRefusal> {
        self.link_refusal.take().map_or(Ok(()), Err)?;
        self.links.push((false, a, b));
        send(&link_row(7, 300));
        Ok(())
    }
    fn watch_start(&mut self) {
        self.watch_starts += 1;
    }
    fn next_event(&mut self, send: &mut dyn FnMut(&Message<'_>)) -> bool {
        let Some(text) = self.events.pop_front() else {
            return false;
        };
        send(&Message::Console {
            vm: 0,
            name: "web-0",
            seq: 0,
            text: &text,
        });
        true
    }
    fn has_image(&self, name: &str) -> bool {
        name == "spin" || self.images.iter().any(|(n, _)| n == name)
    }
    fn image_begin(&mut self, name: &str, bytes: u32) -> Result<(), ImageRefusal> {
        assert!(
            self.image_staged.is_none(),
            "an image upload was left behind"
        );
        if self.no_memory {
            return Err(ImageRefusal::NoMemory);
        }
        self.image_staged = Some((name.into(), vec![0; bytes as usize]));
        Ok(())
    }
    fn image_write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), ImageRefusal> {
        let (_, buf) = self.image_staged.as_mut().ok_or(ImageRefusal::NoUpload)?;
        buf[offset as usize..offset as usize + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }
    fn image_abort(&mut self) {
        self.image_aborts += 1;
        self.image_staged = None;
    }
    fn image_commit(&mut self, committed: &str) -> Result<(), ImageRefusal> {
        let (name, bytes) = self.image_staged.take().ok_or(ImageRefusal::NoUpload)?;
        assert_eq!(name, committed);
        // The fake's check: an ELF file starts with its magic.
        if !bytes.starts_with(b"\x7fELF") {
            return Err(ImageRefusal::Bad(BadImage::Elf(
                crate::elf::ElfError::NotElf64,
            )));
        }
        self.images.push((name, bytes));
        Ok(())
    }
    fn hook_place(&self, on: Target) -> HookPlace {
        // Link 0 between VMs, link 1 to a NIC, link 2's a->b from the
        // manifest; VM 1's restart hook from the manifest.
        match on {
            Target::Link { link, dir } => match (link, dir) {
                (0, _) | (2, LinkDir::BToA) => HookPlace::Open,
                (1, _) => HookPlace::Nic,
                (2, LinkDir::AToB) => HookPlace::Manifest,
                _ => HookPlace::NoLink,
            },
            Target::Vm {
                vm: 1,
                kind: vmm_abi::hook::HookKind::Restart,
            } => HookPlace::Manifest,
            Target::Vm { .. } => HookPlace::Open,
            // NIC 0 shared, NIC 1 owned.
            Target::Nic { nic: 0, .. } => HookPlace::Open,
            Target::Nic { nic: 1, .. } => HookPlace::Owned,
            Target::Nic { .. } => HookPlace::NoLink,
        }
    }
    fn hook_begin(&mut self, t: &HookTarget<'_>) -> Result<(), HookRefusal> {
        assert!(self.staged.is_none(), "an upload was left behind");
        if self.no_memory {
            return Err(HookRefusal::NoMemory);
        }
        self.staged = Some((t.name.into(), t.on, vec![0; t.insns as usize * 8]));
        Ok(())
    }
    fn hook_write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), HookRefusal> {
        let (_, _, buf) = self.staged.as_mut().expect("no upload");
        let at = offset as usize * 8;
        buf[at..at + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }
    fn hook_abort(&mut self) {
        self.aborts += 1;
        self.staged = None;
    }
    fn hook_commit(&mut self) -> Result<(HookStat, Option<HookStat>), HookRefusal> {
        let (name, on, bytes) = self.staged.take().expect("no upload");
        // The fake's verifier: a program whose first byte is 0 is refused
        // as the real one refuses an unknown opcode.
        if bytes[0] == 0 {
            let e = vmm_abi::hook::verify(
                &[vmm_abi::hook::Insn::default()],
                vmm_abi::hook::HookKind::Packet,
                &[],
            )
            .unwrap_err();
            return Err(HookRefusal::Build(
                crate::hooks::packet::BuildError::Verify(e),
            ));
        }
        let old = self
            .hooks
            .iter()
            .position(|(h, _)| h.on == on)
            .map(|i| self.hooks.remove(i).0);
        let vm = match on {
            Target::Vm { vm, .. } => Name::try_from(self.names[vm as usize].as_str()).unwrap(),
            Target::Link { .. } | Target::Nic { .. } => Name::new(),
        };
        let stat = HookStat {
            name: Name::try_from(name.as_str()).unwrap(),
            on,
            vm,
            // The fake's JIT area has room for 125 instructions.
            engine: if bytes.len() <= 125 * 8 {
                ENGINE_COMPILED
            } else {
                ENGINE_INTERPRETED
            },
            runs: 0,
            pass: 0,
            dropped: 0,
            faults: 0,
            insns: bytes.len() as u64 / 8,
        };
        self.hooks.push((stat.clone(), StdVec::new()));
        Ok((stat, old))
    }
    fn hook_detach(&mut self, name: &str) -> Result<HookStat, HookRefusal> {
        let i = self
            .hooks
            .iter()
            .position(|(h, _)| h.name == name)
            .ok_or(HookRefusal::NoHook)?;
        Ok(self.hooks.remove(i).0)
    }
    fn hook_stat(&self, name: &str) -> Option<HookStat> {
        self.hooks
            .iter()
            .find(|(h, _)| h.name == name)
            .map(|(h, _)| h.clone())
    }
    fn hook_entry(&self, name: &str, nth: u32) -> Option<MapRow> {
        let (_, rows) = self.hooks.iter().find(|(h, _)| h.name == name)?;
        rows.get(nth as usize).cloned()
    }
    fn count(&self) -> u32 {
        self.names.len() as u32
    }
    fn row(&self, vm: u32) -> Option<Row> {
        let i = vm as usize;
        self.names.get(i).map(|n| Row {
            name: Name::try_from(n.as_str()).unwrap(),
            entry: Name::try_from(self.entries[i].as_str()).unwrap(),
            status: if self.ended_vms[i] {
                vmm_abi::control::VM_EXITED
            } else {
                VM_RUNNING
            },
            core: if vm == 0 { NO_CORE } else { 1 },
            restarts: vm,
            exits: 0,
            ran: 0,
        })
    }
    fn find(&self, name: &str) -> Option<u32> {
        self.names.iter().position(|n| n == name).map(|i| i as u32)
    }
    fn post(&mut self, vm: u32, request: Request, seq: u32) -> Result<(), Refusal> {
        if self.full {
            return Err(Refusal::MailboxFull { core: 1 });
        }
        self.posted.push((vm, request, seq));
        Ok(())
    }
    fn change(&mut self, starts: &Starts<'_>, stops: &[u32], seq: u32) -> Result<(), Refusal> {
        if let Some(r) = self.refuse {
            return Err(r);
        }
        self.from_image.push(starts.from_image);
        self.changed.push(Changed {
            starts: (
                starts.template,
                starts.entry.into(),
                starts.count,
                starts.first_clone,
                starts.name.map(String::from),
            ),
            overrides: (starts.args.map(String::from), starts.memory),
            stops: stops.to_vec(),
            seq,
        });
        Ok(())
    }
    fn end(&mut self) {
        self.ended = true;
    }
    fn free_bytes(&self) -> u64 {
        4096
    }
    fn flows(&self) -> u32 {
        self.flows
    }
    fn log_line(&self, vm: u32, from: u64) -> Option<crate::console::history::Line> {
        self.histories.get(vm as usize)?.line(from)
    }
    fn log_head(&self, vm: u32) -> (u32, u64) {
        let next = self.histories.get(vm as usize).map_or(0, |h| h.next());
        (vm + 100, next)
    }
    fn flow(&self, i: u32, send: &mut dyn FnMut(&Message<'_>)) {
        let label = std::format!("link{i}");
        send(&Message::FlowRow {
            kind: vmm_abi::control::FLOW_LINK,
            index: i,
            label: &label,
            in_frames: u64::from(i) * 10,
            in_bytes: 0,
            in_drops: 0,
            out_frames: 0,
            out_bytes: 0,
            out_drops: 0,
        });
    }
}

fn frame(msg: &Message<'_>, seq: u32) -> StdVec<u8> {
    let mut out = vec![0u8; MAX_FRAME];
    let n = encode(msg, seq, &mut out).unwrap();
    out.truncate(n);
    out
}

/// An answer as owned values.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Done(u32),
    Error(u32, String),
    Row(u32, u32, String),
    Stats(u32, u64, u32, u64, u64),
    Flow(u32, u32, u64),
    Line(u32, u64, String),
    Head(u32, u32, u64),
    /// seq, name, runs, engine
    Hook(u32, String, u64, u8),
    Entry(u32, u8, StdVec<u8>, StdVec<u8>),
    Event(u32, String),
}

fn send(ch: &mut Channel, fleet: &mut FakeFleet, bytes: &[u8], now: u64) {
    for &b in bytes {
        assert!(ch.wants_input());
        ch.receive(b, now, fleet);
    }
}

/// Everything the channel has written, decoded (the line drained, so a
/// `list` in progress goes on).
fn drain(ch: &mut Channel, fleet: &mut FakeFleet, now: u64) -> StdVec<Got> {
    let mut bytes = StdVec::new();
    loop {
        ch.tick(now, fleet);
        let before = bytes.len();
        while let Some(b) = ch.pop_out() {
            bytes.push(b);
        }
        if bytes.len() == before {
            break;
        }
    }
    let mut got = StdVec::new();
    let mut at = 0;
    while at < bytes.len() {
        match vmm_abi::control::next_frame(&bytes[at..]) {
            Next::Frame(Frame { seq, msg }, len) => {
                got.push(match msg {
                    Message::Done => Got::Done(seq),
                    Message::Error { text } => Got::Error(seq, text.to_string()),
                    Message::VmRow { vm, name, .. } => Got::Row(seq, vm, name.to_string()),
                    Message::HostStats {
                        free,
                        running,
                        commands,
                        errors,
                    } => Got::Stats(seq, free, running, commands, errors),
                    Message::FlowRow {
                        index, in_frames, ..
                    } => Got::Flow(seq, index, in_frames),
                    Message::LogLine { seq: n, text } => Got::Line(seq, n, text.to_string()),
                    Message::LogHead { id, next } => Got::Head(seq, id, next),
                    Message::HookRow {
                        name, runs, engine, ..
                    } => Got::Hook(seq, name.to_string(), runs, engine),
                    Message::MapEntry {
                        map, key, value, ..
                    } => Got::Entry(seq, map, key.to_vec(), value.to_vec()),
                    Message::Console { text, .. } => Got::Event(seq, text.to_string()),
                    other => panic!("unexpected answer {other:?}"),
                });
                at += len;
            }
            other => panic!("the channel wrote a bad frame: {other:?}"),
        }
    }
    got
}

#[test]
fn logs_stream_the_lines_kept_from_the_one_asked_for() {
    let mut fleet = FakeFleet::with(2);
    let mut h = crate::console::history::History::new();
    // More than the history keeps.
    for i in 0..300 {
        h.push(&std::format!("line {i} {}", "x".repeat(40)));
    }
    let first = h.first();
    assert!(first > 0);
    fleet.histories = vec![crate::console::history::History::new(), h];
    let mut ch = Channel::new();
    let logs = |from| Message::Logs { vm: "web-1", from };
    send(&mut ch, &mut fleet, &frame(&logs(0), 0), 1);
    let got = drain(&mut ch, &mut fleet, 1);
    // First which VM answers (its id) and its next line's number, then
    // from the oldest kept (its number says the earlier ones are gone).
    let want: StdVec<_> = [Got::Head(0, 101, 300)]
        .into_iter()
        .chain((first..300).map(|i| Got::Line(0, i, std::format!("line {i} {}", "x".repeat(40)))))
        .chain([Got::Done(0)])
        .collect();
    assert_eq!(got, want);
    // From a later line; past the last, just its head and done; an
    // unknown VM named.
    send(&mut ch, &mut fleet, &frame(&logs(298), 1), 1);
    assert_eq!(drain(&mut ch, &mut fleet, 1).len(), 4);
    send(&mut ch, &mut fleet, &frame(&logs(300), 2), 1);
    assert_eq!(
        drain(&mut ch, &mut fleet, 1),
        [Got::Head(2, 101, 300), Got::Done(2)]
    );
    let nosuch = Message::Logs {
        vm: "web-9",
        from: 0,
    };
    send(&mut ch, &mut fleet, &frame(&nosuch, 3), 1);
    assert_eq!(
        drain(&mut ch, &mut fleet, 1),
        [Got::Error(3, "no VM named web-9".into())]
    );
    // A VM with no history: nothing, then done.
    let empty = Message::Logs {
        vm: "web-0",
        from: 0,
    };
    send(&mut ch, &mut fleet, &frame(&empty, 4), 1);
    assert_eq!(
        drain(&mut ch, &mut fleet, 1),
        [Got::Head(4, 100, 0), Got::Done(4)]
    );
}

#[test]
fn events_follow_a_watch_under_its_number_and_never_ahead_of_an_answer() {
    let mut fleet = FakeFleet::with(300);
    fleet.events = (0..10).map(|i| std::format!("event {i}")).collect();
    let mut ch = Channel::new();
    // Nobody asked: nothing is sent.
    assert_eq!(drain(&mut ch, &mut fleet, 1), []);
    assert_eq!(fleet.events.len(), 10);
    send(&mut ch, &mut fleet, &frame(&Message::Watch, 0), 1);
    let got = drain(&mut ch, &mut fleet, 1);
    assert_eq!(fleet.watch_starts, 1);
    let want: StdVec<_> = [Got::Done(0)]
        .into_iter()
        .chain((0..10).map(|i| Got::Event(0, std::format!("event {i}"))))
        .collect();
    assert_eq!(got, want);
    // A list being answered goes first, whole.
    fleet.events = (10..20).map(|i| std::format!("event {i}")).collect();
    send(&mut ch, &mut fleet, &frame(&Message::List, 1), 1);
    let got = drain(&mut ch, &mut fleet, 1);
    assert_eq!(got.len(), 301 + 10);
    assert_eq!(got[300], Got::Done(1));
    assert_eq!(got[301], Got::Event(0, "event 10".into()));
    // A second watch moves the stream to its number.
    send(&mut ch, &mut fleet, &frame(&Message::Watch, 2), 1);
    fleet.events.push_back("event 20".into());
    assert_eq!(
        drain(&mut ch, &mut fleet, 1),
        [Got::Done(2), Got::Event(2, "event 20".into())]
    );
    assert_eq!(fleet.watch_starts, 2);
    // Events are not commands.
    let ev = Message::Console {
        vm: 0,
        name: "x",
        seq: 0,
        text: "y",
    };
    send(&mut ch, &mut fleet, &frame(&ev, 3), 1);
    assert!(
        matches!(&drain(&mut ch, &mut fleet, 1)[..], [Got::Error(3, t)] if t.starts_with("not a command"))
    );
}

#[test]
fn list_streams_every_row_then_done() {
    // More rows than the output queue holds at once.
    let mut fleet = FakeFleet::with(300);
    let mut ch = Channel::new();
    send(&mut ch, &mut fleet, &frame(&Message::List, 0), 1);
    assert!(!ch.wants_input(), "no input while a list is written");
    let got = drain(&mut ch, &mut fleet, 1);
    assert_eq!(got.len(), 301);
    for (i, g) in got[..300].iter().enumerate() {
        assert_eq!(*g, Got::Row(0, i as u32, std::format!("web-{i}")));
    }
    assert_eq!(got[300], Got::Done(0));
    assert!(ch.wants_input());
    assert_eq!(ch.stats().commands, 1);
}

#[test]
fn stop_and_restart_go_to_the_vms_core_which_answers() {
    let mut fleet = FakeFleet::with(3);
    let mut ch = Channel::new();
    send(
        &mut ch,
        &mut fleet,
        &frame(&Message::Stop { vm: "web-2" }, 0),
        1,
    );
    send(
        &mut ch,
        &mut fleet,
        &frame(&Message::Restart { vm: "web-1" }, 1),
        1,
    );
    assert_eq!(
        fleet.posted,
        vec![(2, Request::Stop, 0), (1, Request::Restart, 1)]
    );
    assert_eq!(drain(&mut ch, &mut fleet, 1), vec![]);
    ch.complete(1, Err("web-1 is being stopped"));
    ch.complete(0, Ok(()));
    assert_eq!(
        drain(&mut ch, &mut fleet, 1),
        vec![Got::Error(1, "web-1 is being stopped".into()), Got::Done(0)]
    );
}

#[test]
fn tuning_goes_to_the_vms_core_and_a_slice_out_of_range_is_refused_by_name() {
    use vmm_abi::control::{TUNE_BUDGET, TUNE_SLICE};
    use vmm_abi::manifest::{MAX_TIMESLICE, MIN_TIMESLICE};
    let mut fleet = FakeFleet::with(3);
    let mut ch = Channel::new();
    let tune = |vm, what, value| Message::Tune { vm, what, value };
    let cmds = [
        tune("web-2", TUNE_BUDGET, 5_000_000),
        tune("web-1", TUNE_SLICE, MIN_TIMESLICE),
        tune("web-0", TUNE_SLICE, 0),
        tune("web-0", TUNE_BUDGET, 0),
        tune("web-1", TUNE_SLICE, MIN_TIMESLICE - 1),
        tune("web-1", TUNE_SLICE, MAX_TIMESLICE + 1),
        tune("web-9", TUNE_BUDGET, 1),
    ];
    for (seq, msg) in cmds.iter().enumerate() {
        send(&mut ch, &mut fleet, &frame(msg, seq as u32), 1);
    }
    assert_eq!(
        fleet.posted,
        vec![
            (2, Request::Budget(5_000_000), 0),
            (1, Request::Slice(MIN_TIMESLICE), 1),
            (0, Request::Slice(0), 2),
            (0, Request::Budget(0), 3),
        ]
    );
    let range = std::format!("is outside {MIN_TIMESLICE}..={MAX_TIMESLICE} (0: the run's)");
    let got = drain(&mut ch, &mut fleet, 1);
    assert_eq!(got.len(), 3, "{got:?}");
    for (g, (seq, what)) in got.iter().zip([
        (
            4,
            std::format!("a slice of {} instructions {range}", MIN_TIMESLICE - 1),
        ),
        (
            5,
            std::format!("a slice of {} instructions {range}", MAX_TIMESLICE + 1),
        ),
        (6, "no VM named web-9".into()),
    ]) {
        assert_eq!(*g, Got::Error(seq, what));
    }
    // The cores answer the four it posted.
    for seq in 0..4 {
        ch.complete(seq, Ok(()));
    }
    assert_eq!(
        drain(&mut ch, &mut fleet, 1),
        (0..4).map(Got::Done).collect::<StdVec<_>>()
    );
}

#[test]
fn refusals_name_the_vm_or_the_reason() {
    let mut fleet = FakeFleet::with(1);
    fleet.entries[0] = "db".into();
    let mut ch = Channel::new();
    send(
        &mut ch,
        &mut fleet,
        &frame(&Message::Stop { vm: "web-9" }, 0),
        1,
    );
    fleet.full = true;
    send(
        &mut ch,
        &mut fleet,
        &frame(&Message::Stop { vm: "web-0" }, 1),
        1,
    );
    send(&mut ch, &mut fleet, &frame(&Message::Done, 2), 1);
    send(
        &mut ch,
        &mut fleet,
        &frame(
            &Message::Scale {
                entry: "web",
                count: 8,
            },
            3,
        ),
        1,
    );
    let got = drain(&mut ch, &mut fleet, 1);
    assert_eq!(got[0], Got::Error(0, "no VM named web-9".into()));
    assert_eq!(
        got[1],
        Got::Error(1, "core 1's mailbox is full; try again".into())
    );
    assert!(matches!(&got[2], Got::Error(2, t) if t.starts_with("not a command")));
    assert_eq!(got[3], Got::Error(3, "no entry named web".into()));
    assert!(fleet.posted.is_empty());
    assert_eq!(ch.stats().errors, 4);
}

#[test]
fn garbage_gets_one_error_and_the_next_frame_still_works() {
    let mut fleet = FakeFleet::with(1);
    let mut ch = Channel::new();
    send(&mut ch, &mut fleet, b"hello, hypervisor\n", 1);
    send(
        &mut ch,
        &mut fleet,
        &frame(&Message::Stop { vm: "web-0" }, 0),
        1,
    );
    let got = drain(&mut ch, &mut fleet, 1);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(matches!(&got[0], Got::Error(UNFRAMED, t) if t.contains("no `CC` magic")));
    assert_eq!(fleet.posted, vec![(0, Request::Stop, 0)]);
}

#[test]
fn corrupt_oversized_and_unknown_frames_are_named() {
    let mut fleet = FakeFleet::with(1);
    let mut ch = Channel::new();
    let mut corrupt = frame(&Message::List, 0);
    corrupt[4] ^= 1;
    let mut oversized = frame(&Message::List, 0);
    oversized[8..10].copy_from_slice(&2000u16.to_le_bytes());
    let mut unknown = frame(&Message::List, 0);
    unknown[3] = 200;
    let crc = vmm_abi::control::crc32(&unknown[..unknown.len() - 4]);
    let at = unknown.len() - 4;
    unknown[at..].copy_from_slice(&crc.to_le_bytes());
    for bad in [&corrupt, &oversized, &unknown] {
        send(&mut ch, &mut fleet, bad, 1);
        let got = drain(&mut ch, &mut fleet, 1);
        // One error for the frame and whatever follows its refused header.
        assert!(
            matches!(&got[..], [Got::Error(UNFRAMED, t)] if t.starts_with("frame refused")),
            "{got:?}"
        );
    }
    // Nothing was accepted: sequence number 0 is still the next.
    send(&mut ch, &mut fleet, &frame(&Message::List, 0), 1);
    assert_eq!(drain(&mut ch, &mut fleet, 1).last(), Some(&Got::Done(0)));
}

#[test]
fn replayed_and_out_of_order_frames_are_refused() {
    let mut fleet = FakeFleet::with(1);
    let mut ch = Channel::new();
    let list = frame(&Message::List, 0);
    send(&mut ch, &mut fleet, &list, 1);
    drain(&mut ch, &mut fleet, 1);
    send(&mut ch, &mut fleet, &list, 1);
    send(&mut ch, &mut fleet, &frame(&Message::List, 5), 1);
    let got = drain(&mut ch, &mut fleet, 1);
    assert!(
        matches!(&got[0], Got::Error(UNFRAMED, t) if t.contains("replay")),
        "{got:?}"
    );
    assert!(
        matches!(&got[1], Got::Error(UNFRAMED, t) if t.contains("out of order")),
        "{got:?}"
    );
    send(&mut ch, &mut fleet, &frame(&Message::List, 1), 1);
    assert_eq!(drain(&mut ch, &mut fleet, 1).last(), Some(&Got::Done(1)));
}

#[test]
fn a_half_sent_frame_is_dropped_after_a_pause() {
    let mut fleet = FakeFleet::with(1);
    let mut ch = Channel::new();
    let list = frame(&Message::List, 0);
    send(&mut ch, &mut fleet, &list[..7], 100);
    assert_eq!(drain(&mut ch, &mut fleet, 100 + PARTIAL_TIMEOUT), vec![]);
    let got = drain(&mut ch, &mut fleet, 101 + PARTIAL_TIMEOUT);
    assert!(
        matches!(&got[..], [Got::Error(UNFRAMED, t)] if t.contains("7 bytes of a frame")),
        "{got:?}"
    );
    send(&mut ch, &mut fleet, &list, 200 + PARTIAL_TIMEOUT);
    assert_eq!(
        drain(&mut ch, &mut fleet, 200 + PARTIAL_TIMEOUT).last(),
        Some(&Got::Done(0))
    );
}

#[test]
fn stats_count_running_vms_commands_and_errors() {
    let mut fleet = FakeFleet::with(3);
    let mut ch = Channel::new();
    send(&mut ch, &mut fleet, b"junk", 1);
    send(&mut ch, &mut fleet, &frame(&Message::List, 0), 1);
    drain(&mut ch, &mut fleet, 1);
    send(&mut ch, &mut fleet, &frame(&Message::Stats, 1), 1);
    let got = drain(&mut ch, &mut fleet, 1);
    // The fake's rows are all running; `list` and `stats` were accepted.
    assert!(got.contains(&Got::Stats(1, 4096, 3, 2, 1)), "{got:?}");
    assert_eq!(got.last(), Some(&Got::Done(1)));
}

#[test]
fn stats_stream_every_link_and_nic_row_as_room_frees() {
    // More rows than the output queue holds at once.
    let mut fleet = FakeFleet {
        flows: 200,
        ..FakeFleet::with(1)
    };
    let mut ch = Channel::new();
    send(&mut ch, &mut fleet, &frame(&Message::Stats, 0), 1);
    assert!(!ch.wants_input(), "no input while rows are still to come");
    let got = drain(&mut ch, &mut fleet, 1);
    assert_eq!(got.first(), Some(&Got::Stats(0, 4096, 1, 1, 0)));
    let flows: StdVec<_> = got
        .iter()
        .filter_map(|g| match *g {
            Got::Flow(_, i, n) => Some((i, n)),
            _ => None,
        })
        .collect();
    assert_eq!(
        flows,
        (0..200)
            .map(|i| (i, u64::from(i) * 10))
            .collect::<StdVec<_>>()
    );
    assert_eq!(got.last(), Some(&Got::Done(0)));
    assert!(ch.wants_input());
}

#[test]
fn a_good_frame_behind_a_bogus_header_is_found_after_the_pause() {
    let mut fleet = FakeFleet::with(1);
    let mut ch = Channel::new();
    // Garbage first: the pause's error is reported all the same.
    send(&mut ch, &mut fleet, b"junk", 1);
    assert_eq!(drain(&mut ch, &mut fleet, 1).len(), 1);
    let mut bogus = frame(&Message::List, 9)[..10].to_vec();
    bogus[8..10].copy_from_slice(&100u16.to_le_bytes());
    send(&mut ch, &mut fleet, &bogus, 1);
    send(
        &mut ch,
        &mut fleet,
        &frame(&Message::Stop { vm: "web-0" }, 0),
        1,
    );
    assert!(drain(&mut ch, &mut fleet, 1).is_empty());
    let got = drain(&mut ch, &mut fleet, 2 + PARTIAL_TIMEOUT);
    assert!(
        matches!(&got[..], [Got::Error(UNFRAMED, t)] if t.contains("skipped")),
        "{got:?}"
    );
    assert_eq!(fleet.posted, vec![(0, Request::Stop, 0)]);
}

#[test]
fn frames_that_arrive_together_are_each_answered_in_order() {
    let mut fleet = FakeFleet::with(2);
    let mut ch = Channel::new();
    // A corrupt header first, so the good frames behind it are taken in
    // one go once it is skipped.
    let mut bytes = frame(&Message::List, 99)[..10].to_vec();
    bytes[3] = 200;
    let n = 80;
    for seq in 0..n {
        bytes.extend(frame(&Message::List, seq));
    }
    let mut now = 1;
    let mut got = StdVec::new();
    let mut at = 0;
    while at < bytes.len() {
        if ch.wants_input() {
            ch.receive(bytes[at], now, &mut fleet);
            at += 1;
        } else {
            got.extend(drain(&mut ch, &mut fleet, now));
        }
        now += 1;
    }
    got.extend(drain(&mut ch, &mut fleet, now));
    let done: StdVec<u32> = got
        .iter()
        .filter_map(|g| match g {
            Got::Done(s) => Some(*s),
            _ => None,
        })
        .collect();
    assert_eq!(
        done,
        (0..n).collect::<StdVec<_>>(),
        "each list done once, in order"
    );
    let rows = got.iter().filter(|g| matches!(g, Got::Row(..))).count();
    assert_eq!(rows, 2 * n as usize);
}

#[test]
fn end_is_answered_and_stops_input() {
    let mut fleet = FakeFleet::with(1);
    let mut ch = Channel::new();
    send(&mut ch, &mut fleet, &frame(&Message::End, 0), 1);
    assert!(fleet.ended && ch.ended() && !ch.wants_input());
    assert_eq!(drain(&mut ch, &mut fleet, 1), vec![Got::Done(0)]);
}

proptest! {
    /// Whatever arrives, the channel answers only well-formed frames and,
    /// after a pause, takes the next good command.
    #[test]
    fn any_bytes_then_a_pause_leave_the_channel_working(
        junk in proptest::collection::vec(any::<u8>(), 0..3000),
    ) {
        let mut fleet = FakeFleet::with(2);
        let mut ch = Channel::new();
        let mut now = 1;
        for &b in &junk {
            if !ch.wants_input() {
                drain(&mut ch, &mut fleet, now);
            }
            ch.receive(b, now, &mut fleet);
            now += 1;
        }
        drain(&mut ch, &mut fleet, now);
        now += PARTIAL_TIMEOUT + 1;
        drain(&mut ch, &mut fleet, now);
        let seq = ch.session.expected();
        send(&mut ch, &mut fleet, &frame(&Message::List, seq), now);
        let got = drain(&mut ch, &mut fleet, now);
        prop_assert_eq!(got.last(), Some(&Got::Done(seq)));
    }
}

fn scale_msg(entry: &str, count: u32) -> Message<'_> {
    Message::Scale { entry, count }
}

#[test]
fn start_copies_an_entry_under_its_next_clone_name_or_a_given_one() {
    let mut fleet = FakeFleet::with(3).single("db");
    // web-1 ended: it still holds its clone number.
    fleet.ended_vms[1] = true;
    let mut ch = Channel::new();
    let start = |entry, name| Message::Start {
        entry,
        name,
        args: None,
        memory: 0,
    };
    send(&mut ch, &mut fleet, &frame(&start("web", ""), 0), 1);
    send(&mut ch, &mut fleet, &frame(&start("db", "db-copy"), 1), 1);
    assert_eq!(
        fleet.changed,
        vec![
            Changed {
                starts: (0, "web".into(), 1, 3, None),
                overrides: (None, 0),
                stops: vec![],
                seq: 0
            },
            Changed {
                starts: (3, "db".into(), 1, 0, Some("db-copy".into())),
                overrides: (None, 0),
                stops: vec![],
                seq: 1
            },
        ]
    );
    // Answered by the cores, not now.
    assert_eq!(drain(&mut ch, &mut fleet, 1), vec![]);
    assert_eq!(ch.stats().commands, 2);
}

#[test]
fn an_image_uploaded_in_chunks_is_kept_and_vms_start_from_it() {
    let mut fleet = FakeFleet::with(1);
    let mut ch = Channel::new();
    let mut seq = 0;
    let mut elf = b"\x7fELF".to_vec();
    elf.extend((0..2500u32).map(|i| i as u8));
    let chunks: StdVec<Message<'_>> = elf
        .chunks(vmm_abi::control::CHUNK_BYTES)
        .enumerate()
        .map(|(k, bytes)| Message::ImageChunk {
            offset: (k * vmm_abi::control::CHUNK_BYTES) as u32,
            bytes,
        })
        .collect();
    let mut msgs = vec![Message::ImageBegin {
        name: "hello2",
        bytes: elf.len() as u32,
    }];
    msgs.extend(chunks.iter().cloned());
    msgs.push(Message::ImageCommit { name: "hello2" });
    let got = exchange(&mut ch, &mut fleet, &mut seq, &msgs);
    assert!(got.iter().all(|g| matches!(g, Got::Done(_))), "{got:?}");
    assert_eq!(fleet.images, [("hello2".into(), elf.clone())]);
    // A VM from it, with its own arguments and memory.
    let start = |image, name, memory| Message::StartImage {
        image,
        name,
        args: Some("x=1"),
        memory,
    };
    exchange(
        &mut ch,
        &mut fleet,
        &mut seq,
        &[start("hello2", "h-1", 2 << 20)],
    );
    assert_eq!(fleet.from_image, [true]);
    let c = &fleet.changed[0];
    assert_eq!(
        (&c.starts.1, c.starts.2, &c.starts.4, &c.overrides),
        (
            &"hello2".to_string(),
            1,
            &Some("h-1".to_string()),
            &(Some("x=1".to_string()), 2 << 20)
        )
    );
    // An image no VM came from yet starts under its first clone name.
    fleet.images.push(("fresh".into(), elf.clone()));
    exchange(
        &mut ch,
        &mut fleet,
        &mut seq,
        &[Message::Start {
            entry: "fresh",
            name: "",
            args: None,
            memory: 0,
        }],
    );
    assert_eq!(fleet.from_image, [true, true]);
    assert_eq!(fleet.changed[1].starts.4, Some("fresh-0".to_string()));
    fleet.images.pop();
    // Refusals, each by name; nothing started, nothing kept.
    macro_rules! refused {
        ($msgs:expr) => {
            refused_by(&mut ch, &mut fleet, &mut seq, $msgs)
        };
    }
    assert_eq!(refused!(&[start("nope", "h-2", 0)]), "no image named nope");
    assert_eq!(
        refused!(&[start("hello2", "web-0", 0)]),
        "a VM named web-0 already exists"
    );
    assert!(refused!(&[start("hello2", "-x", 0)]).contains("is not a VM name"));
    assert!(refused!(&[start("hello2", "h-3", 4096)]).contains("`memory`: 4096 is outside"));
    assert_eq!(
        refused!(&[Message::ImageBegin {
            name: "hello2",
            bytes: 10
        }]),
        "an image named hello2 already exists"
    );
    assert!(
        refused!(&[Message::ImageBegin {
            name: "big",
            bytes: vmm_abi::control::MAX_IMAGE_BYTES + 1
        }])
        .contains("bytes; 1 to")
    );
    let begin = |name| Message::ImageBegin { name, bytes: 8 };
    assert_eq!(
        refused!(&[
            begin("junk"),
            Message::ImageChunk {
                offset: 4,
                bytes: b"abcd"
            }
        ]),
        "image junk: a chunk at byte 4, expected 0: the upload is dropped"
    );
    assert_eq!(
        refused!(&[
            begin("junk"),
            Message::ImageChunk {
                offset: 0,
                bytes: b"123456789"
            }
        ]),
        "image junk: a chunk past its 8 bytes: the upload is dropped"
    );
    assert_eq!(
        refused!(&[
            begin("junk"),
            Message::ImageChunk {
                offset: 0,
                bytes: b"1234"
            },
            Message::ImageCommit { name: "junk" }
        ]),
        "image junk: bytes 4..8 never came: the upload is dropped"
    );
    assert_eq!(
        refused!(&[
            begin("junk"),
            Message::ImageChunk {
                offset: 0,
                bytes: b"12345678"
            },
            Message::ImageCommit { name: "junk" }
        ]),
        "image junk refused: not a 64-bit little-endian x86-64 ELF file"
    );
    assert_eq!(
        refused!(&[Message::ImageCommit { name: "junk" }]),
        "no image upload named junk in progress"
    );
    // The other channel began an upload: this one's next chunk is refused.
    exchange(&mut ch, &mut fleet, &mut seq, &[begin("mine")]);
    fleet.image_staged = None;
    assert_eq!(
        refused!(&[Message::ImageChunk {
            offset: 0,
            bytes: b"1234"
        }]),
        "no image upload in progress"
    );
    assert_eq!(
        refused!(&[Message::ImageCommit { name: "mine" }]),
        "no image upload named mine in progress"
    );
    fleet.no_memory = true;
    assert_eq!(refused!(&[begin("m")]), "not enough memory for image m");
    assert_eq!(fleet.images.len(), 1);
    assert_eq!(fleet.changed.len(), 2);
    assert!(fleet.image_staged.is_none());
}

#[test]
fn start_passes_checked_overrides_and_refuses_bad_ones_by_field() {
    let mut fleet = FakeFleet::with(1);
    let mut ch = Channel::new();
    let start = |args, memory| Message::Start {
        entry: "web",
        name: "",
        args,
        memory,
    };
    send(
        &mut ch,
        &mut fleet,
        &frame(&start(Some("port=81 v"), 8 << 20), 0),
        1,
    );
    send(&mut ch, &mut fleet, &frame(&start(Some(""), 0), 1), 1);
    let overrides: StdVec<_> = fleet.changed.iter().map(|c| c.overrides.clone()).collect();
    assert_eq!(
        overrides,
        vec![
            (Some("port=81 v".into()), 8 << 20),
            (Some(String::new()), 0)
        ]
    );
    let long = "a".repeat(129);
    let cases: [(Option<&str>, u64, &str); 5] = [
        (Some(&long), 0, "start web: `args`: longer than 128 bytes"),
        (Some("tab\there"), 0, "start web: `args`: must be non-empty"),
        (
            None,
            4096,
            "start web: `memory`: 4096 is outside 262144..=1073741824 (bytes)",
        ),
        (None, 1 << 31, "start web: `memory`: 2147483648 is outside"),
        (
            None,
            (8 << 20) + 1,
            "start web: `memory`: 8388609 is not a multiple of 4096",
        ),
    ];
    for (seq, (args, memory, _)) in cases.iter().enumerate() {
        send(
            &mut ch,
            &mut fleet,
            &frame(&start(*args, *memory), 2 + seq as u32),
            1,
        );
    }
    let got = drain(&mut ch, &mut fleet, 1);
    assert_eq!(got.len(), cases.len());
    for (seq, (g, (_, _, want))) in got.iter().zip(&cases).enumerate() {
        assert!(
            matches!(g, Got::Error(s, t) if *s == 2 + seq as u32 && t.starts_with(want)),
            "{g:?} should say {want}"
        );
    }
    // Nothing was started for the refused ones.
    assert_eq!(fleet.changed.len(), 2);
}

#[test]
fn start_refuses_unknown_entries_taken_and_bad_names() {
    let mut fleet = FakeFleet::with(2);
    let mut ch = Channel::new();
    let long = "x".repeat(40);
    let cases: [(&str, &str, &str); 5] = [
        ("db", "", "no entry named db"),
        ("web", "web-1", "a VM named web-1 already exists"),
        ("web", "-bad", "`-bad` is not a VM name"),
        ("web", "hv", "`hv` is not a VM name"),
        ("web", &long, "is not a VM name"),
    ];
    for (seq, (entry, name, _)) in cases.iter().enumerate() {
        let m = Message::Start {
            entry,
            name,
            args: None,
            memory: 0,
        };
        send(&mut ch, &mut fleet, &frame(&m, seq as u32), 1);
    }
    let got = drain(&mut ch, &mut fleet, 1);
    assert_eq!(got.len(), cases.len());
    for (seq, (g, (_, _, want))) in got.iter().zip(&cases).enumerate() {
        assert!(
            matches!(g, Got::Error(s, t) if *s == seq as u32 && t.contains(want)),
            "{g:?} should say {want}"
        );
    }
    assert!(fleet.changed.is_empty());
    // An entry whose next clone name would be too long.
    let entry = "e".repeat(30);
    let mut fleet = FakeFleet::default().single(&std::format!("{entry}-9"));
    fleet.entries[0] = entry.clone();
    let m = Message::Start {
        entry: &entry,
        name: "",
        args: None,
        memory: 0,
    };
    send(&mut ch, &mut fleet, &frame(&m, 5), 1);
    let got = drain(&mut ch, &mut fleet, 1);
    assert!(
        matches!(&got[0], Got::Error(5, t) if t.contains("is longer than 32 bytes")),
        "{got:?}"
    );
}

#[test]
fn scale_starts_the_missing_or_stops_the_newest_and_refusals_say_what_fits() {
    let mut fleet = FakeFleet::with(4);
    fleet.ended_vms[1] = true;
    let mut ch = Channel::new();
    // 3 run (web-0, web-2, web-3): up to 8 starts 5 from clone 4.
    send(&mut ch, &mut fleet, &frame(&scale_msg("web", 8), 0), 1);
    // Down to 1 stops the two newest running.
    send(&mut ch, &mut fleet, &frame(&scale_msg("web", 1), 1), 1);
    // Already 3: done at once.
    send(&mut ch, &mut fleet, &frame(&scale_msg("web", 3), 2), 1);
    assert_eq!(
        fleet.changed,
        vec![
            Changed {
                starts: (0, "web".into(), 5, 4, None),
                overrides: (None, 0),
                stops: vec![],
                seq: 0
            },
            Changed {
                starts: (0, "web".into(), 0, 4, None),
                overrides: (None, 0),
                stops: vec![2, 3],
                seq: 1
            },
        ]
    );
    assert_eq!(drain(&mut ch, &mut fleet, 1), vec![Got::Done(2)]);
    fleet.refuse = Some(Refusal::Memory { fit: 2 });
    send(&mut ch, &mut fleet, &frame(&scale_msg("web", 64), 3), 1);
    fleet.refuse = Some(Refusal::NoRoom { free: 7 });
    send(&mut ch, &mut fleet, &frame(&scale_msg("web", 64), 4), 1);
    fleet.refuse = None;
    send(
        &mut ch,
        &mut fleet,
        &frame(&scale_msg("web", 100_000), 5),
        1,
    );
    send(&mut ch, &mut fleet, &frame(&scale_msg("nope", 1), 6), 1);
    assert_eq!(
        drain(&mut ch, &mut fleet, 1),
        vec![
            Got::Error(
                3,
                "not enough memory for 61 more clones of web: 2 fit".into()
            ),
            Got::Error(
                4,
                "no room for 61 more VMs of web: the run has room for 7 more on its cores".into()
            ),
            Got::Error(
                5,
                "scale web 100000: 3 run; at most 512 VMs start or stop in one command".into()
            ),
            Got::Error(6, "no entry named nope".into()),
        ]
    );
    assert_eq!(fleet.changed.len(), 2, "refused commands change nothing");
}

fn begin<'a>(name: &'a str, link: u32, dir: u8, insns: u32) -> Message<'a> {
    Message::HookBegin {
        name,
        on: HookOn::Link { link, dir },
        insns,
        maps: &[],
    }
}

fn begin_vm<'a>(name: &'a str, vm: &'a str, kind: HookKind, insns: u32) -> Message<'a> {
    Message::HookBegin {
        name,
        on: HookOn::Vm {
            vm,
            kind: kind as u8,
        },
        insns,
        maps: &[],
    }
}

/// `n` instructions whose bytes are all `b`.
fn chunk(offset: u32, n: usize, b: &'static [u8; 1000]) -> Message<'static> {
    Message::HookChunk {
        offset,
        bytes: &b[..n * 8],
    }
}

const GOOD: [u8; 1000] = [0x95; 1000];
const BAD: [u8; 1000] = [0; 1000];

/// Sends `msgs` (the last one refused) and gives the refusal's text.
fn refused_by(
    ch: &mut Channel,
    fleet: &mut FakeFleet,
    seq: &mut u32,
    msgs: &[Message<'_>],
) -> String {
    match exchange(ch, fleet, seq, msgs).last() {
        Some(Got::Error(_, t)) => t.clone(),
        other => panic!("not refused: {other:?}"),
    }
}

/// Sends `msgs` under sequence numbers from `seq` on; every answer.
fn exchange(
    ch: &mut Channel,
    fleet: &mut FakeFleet,
    seq: &mut u32,
    msgs: &[Message<'_>],
) -> StdVec<Got> {
    let mut got = StdVec::new();
    for m in msgs {
        send(ch, fleet, &frame(m, *seq), 1);
        *seq += 1;
        got.extend(drain(ch, fleet, 1));
    }
    got
}

#[test]
fn a_hook_uploaded_in_chunks_attaches_swaps_and_detaches() {
    let mut fleet = FakeFleet::with(1);
    let mut ch = Channel::new();
    let mut seq = 0;
    // 130 instructions: a full chunk of 125, then 5.
    let got = exchange(
        &mut ch,
        &mut fleet,
        &mut seq,
        &[
            begin("count", 0, 0, 130),
            chunk(0, 125, &GOOD),
            chunk(125, 5, &GOOD),
            Message::HookCommit { name: "count" },
        ],
    );
    // The commit answers the new hook's row: too long for the fake's JIT
    // area, it is interpreted.
    assert_eq!(
        got,
        [
            Got::Done(0),
            Got::Done(1),
            Got::Done(2),
            Got::Hook(3, "count".into(), 0, ENGINE_INTERPRETED),
            Got::Done(3)
        ]
    );
    assert_eq!(fleet.hooks.len(), 1);
    assert_eq!(fleet.hooks[0].0.insns, 130);
    // Another upload for the same direction takes its place: the old
    // hook's last counters come back with the answer.
    fleet.hooks[0].0.runs = 42;
    let got = exchange(
        &mut ch,
        &mut fleet,
        &mut seq,
        &[
            begin("count2", 0, 0, 1),
            chunk(0, 1, &GOOD),
            Message::HookCommit { name: "count2" },
        ],
    );
    assert_eq!(
        got,
        [
            Got::Done(4),
            Got::Done(5),
            Got::Hook(6, "count2".into(), 0, ENGINE_COMPILED),
            Got::Hook(6, "count".into(), 42, ENGINE_INTERPRETED),
            Got::Done(6)
        ]
    );
    // Its maps: its row, then each entry, then done.
    fleet.hooks[0].1 = (0..3u8)
        .map(|i| MapRow {
            map: i,
            core: 0,
            key: Vec::from_slice(&[i, 0, 0, 0]).unwrap(),
            value: Vec::from_slice(&[7; 8]).unwrap(),
        })
        .collect();
    let got = exchange(
        &mut ch,
        &mut fleet,
        &mut seq,
        &[Message::HookMaps { name: "count2" }],
    );
    assert_eq!(got.len(), 5);
    assert_eq!(got[0], Got::Hook(7, "count2".into(), 0, ENGINE_COMPILED));
    assert_eq!(got[3], Got::Entry(7, 2, vec![2, 0, 0, 0], vec![7; 8]));
    assert_eq!(got[4], Got::Done(7));
    let got = exchange(
        &mut ch,
        &mut fleet,
        &mut seq,
        &[Message::HookDetach { name: "count2" }],
    );
    assert_eq!(
        got,
        [
            Got::Hook(8, "count2".into(), 0, ENGINE_COMPILED),
            Got::Done(8)
        ]
    );
    assert!(fleet.hooks.is_empty());
    assert_eq!(fleet.aborts, 0);
}

#[test]
fn hook_refusals_are_named_and_leave_nothing_attached() {
    let mut fleet = FakeFleet::with(1);
    let mut ch = Channel::new();
    let mut seq = 0;
    let err = |got: StdVec<Got>| match got.last() {
        Some(Got::Error(_, t)) => t.clone(),
        other => panic!("not refused: {other:?}"),
    };
    // The error text of a command refused (the channel, fleet and
    // sequence numbers are the test's).
    macro_rules! refused {
        ($($m:expr),*) => {
            err(exchange(&mut ch, &mut fleet, &mut seq, &[$($m),*]))
        };
    }
    // Places.
    let e = refused!(begin("h", 3, 1, 2));
    assert_eq!(e, "link 3 has no direction b->a");
    assert!(refused!(begin("h", 1, 0, 2)).contains("NIC end"));
    assert!(refused!(begin("h", 2, 0, 2)).contains("from the manifest"));
    // Counts and names.
    assert!(refused!(begin("h", 0, 0, 0)).contains("1 to 4096"));
    assert!(refused!(begin("h", 0, 0, 4097)).contains("1 to 4096"));
    assert!(refused!(begin("a b", 0, 0, 1)).contains("not a hook name"));
    // Chunks without an upload, out of order, missing, past the end.
    let e = refused!(chunk(0, 1, &GOOD));
    assert!(e.contains("no hook upload in progress"), "{e}");
    let e = refused!(begin("h", 0, 0, 10), chunk(5, 5, &GOOD));
    assert_eq!(
        e,
        "hook `h`: a chunk at instruction 5, expected 0: the upload is dropped, nothing attached"
    );
    // The upload is gone: a commit finds none.
    let e = refused!(Message::HookCommit { name: "h" });
    assert_eq!(e, "no hook upload named h in progress");
    let e = refused!(
        begin("h", 0, 0, 10),
        chunk(0, 5, &GOOD),
        Message::HookCommit { name: "h" }
    );
    assert_eq!(
        e,
        "hook `h`: instructions 5..10 never came: the upload is dropped, nothing attached"
    );
    let e = refused!(begin("h", 0, 0, 4), chunk(0, 5, &GOOD));
    assert!(e.contains("past its 4 instructions"), "{e}");
    // A repeated chunk is out of order too.
    let e = refused!(begin("h", 0, 0, 10), chunk(0, 5, &GOOD), chunk(0, 5, &GOOD));
    assert!(e.contains("at instruction 0, expected 5"), "{e}");
    // The verifier's refusal is passed on.
    let e = refused!(
        begin("h", 0, 0, 1),
        chunk(0, 1, &BAD),
        Message::HookCommit { name: "h" }
    );
    assert!(e.starts_with("program refused: hook `h`: insn 0"), "{e}");
    // Memory.
    fleet.no_memory = true;
    assert_eq!(
        refused!(begin("h", 0, 0, 1)),
        "not enough memory for hook `h`"
    );
    fleet.no_memory = false;
    assert!(fleet.hooks.is_empty(), "nothing attached");
    assert!(fleet.staged.is_none(), "nothing left staged");
    // Detach and maps of an unknown hook.
    let e = refused!(Message::HookDetach { name: "x" });
    assert_eq!(e, "no hook named x");
    let e = refused!(Message::HookMaps { name: "x" });
    assert_eq!(e, "no hook named x");
    // A name used on another direction; a begin drops an unfinished upload.
    exchange(
        &mut ch,
        &mut fleet,
        &mut seq,
        &[
            begin("h", 0, 0, 1),
            chunk(0, 1, &GOOD),
            Message::HookCommit { name: "h" },
        ],
    );
    let e = refused!(begin("h", 2, 1, 1));
    assert_eq!(e, "a hook named h already exists (on link 0 a->b)");
    let aborts = fleet.aborts;
    exchange(
        &mut ch,
        &mut fleet,
        &mut seq,
        &[begin("g", 2, 1, 2), begin("g", 2, 1, 1)],
    );
    assert_eq!(fleet.aborts, aborts + 1);
    // And the channel still works.
    assert_eq!(
        exchange(&mut ch, &mut fleet, &mut seq, &[Message::List]).last(),
        Some(&Got::Done(seq - 1))
    );
}

#[test]
fn a_vm_hook_is_uploaded_swapped_and_detached_by_name_and_refused_where_it_cannot_go() {
    let mut fleet = FakeFleet::with(3);
    let mut ch = Channel::new();
    let mut seq = 0;
    let attach = |name, vm, kind| {
        [
            begin_vm(name, vm, kind, 2),
            chunk(0, 2, &GOOD),
            Message::HookCommit { name },
        ]
    };
    let got = exchange(
        &mut ch,
        &mut fleet,
        &mut seq,
        &attach("guard", "web-2", HookKind::Exit),
    );
    assert_eq!(
        got,
        [
            Got::Done(0),
            Got::Done(1),
            Got::Hook(2, "guard".into(), 0, ENGINE_COMPILED),
            Got::Done(2)
        ]
    );
    assert_eq!(
        fleet.hooks[0].0.on,
        Target::Vm {
            vm: 2,
            kind: HookKind::Exit
        }
    );
    // Its row names the VM and the kind.
    send(
        &mut ch,
        &mut fleet,
        &frame(&Message::HookMaps { name: "guard" }, seq),
        1,
    );
    seq += 1;
    let mut rows = StdVec::new();
    while let Some(b) = ch.pop_out() {
        rows.push(b);
    }
    let Next::Frame(f, _) = control::next_frame(&rows) else {
        panic!("no row");
    };
    assert_eq!(
        f.msg,
        Message::HookRow {
            name: "guard",
            on: HookOn::Vm {
                vm: "web-2",
                kind: HookKind::Exit as u8
            },
            engine: ENGINE_COMPILED,
            runs: 0,
            pass: 0,
            dropped: 0,
            faults: 0,
            insns: 2
        }
    );
    // The same VM and kind: a swap, the new row first, then the old.
    fleet.hooks[0].0.runs = 7;
    let got = exchange(
        &mut ch,
        &mut fleet,
        &mut seq,
        &attach("guard2", "web-2", HookKind::Exit),
    );
    assert_eq!(
        got[2..],
        [
            Got::Hook(seq - 1, "guard2".into(), 0, ENGINE_COMPILED),
            Got::Hook(seq - 1, "guard".into(), 7, ENGINE_COMPILED),
            Got::Done(seq - 1)
        ]
    );
    // Another kind on the same VM is another place.
    exchange(
        &mut ch,
        &mut fleet,
        &mut seq,
        &attach("pace", "web-2", HookKind::Slice),
    );
    assert_eq!(fleet.hooks.len(), 2);
    // Refusals: no such VM, the manifest's hook, a name taken elsewhere.
    macro_rules! refused {
        ($m:expr) => {
            refused_by(&mut ch, &mut fleet, &mut seq, &[$m])
        };
    }
    assert_eq!(
        refused!(begin_vm("x", "web-9", HookKind::Exit, 1)),
        "no VM named web-9"
    );
    assert_eq!(
        refused!(begin_vm("x", "web-1", HookKind::Restart, 1)),
        "web-1's restart hook: its hook comes from the manifest and stays for the run"
    );
    assert_eq!(
        refused!(begin_vm("pace", "web-0", HookKind::Slice, 1)),
        "a hook named pace already exists (on web-2's slice hook)"
    );
    assert_eq!(
        refused!(begin("guard2", 0, 0, 1)),
        "a hook named guard2 already exists (on web-2's exit hook)"
    );
    // A shared NIC's queue takes one; an owned NIC's and a NIC the run
    // does not have are refused by name.
    let nic = |name, nic, dir| Message::HookBegin {
        name,
        on: HookOn::Nic { nic, dir },
        insns: 1,
        maps: &[],
    };
    let got = exchange(
        &mut ch,
        &mut fleet,
        &mut seq,
        &[
            nic("wire", 0, control::NIC_TX),
            chunk(0, 1, &GOOD),
            Message::HookCommit { name: "wire" },
        ],
    );
    assert_eq!(got.last(), Some(&Got::Done(seq - 1)));
    assert_eq!(
        fleet.hooks.last().unwrap().0.on,
        Target::Nic {
            nic: 0,
            dir: NicDir::Tx
        }
    );
    assert_eq!(
        refused!(nic("x", 1, control::NIC_RX)),
        "nic 1 rx: an owned NIC's frames go straight to its one guest, with no hook point"
    );
    assert_eq!(
        refused!(nic("x", 5, control::NIC_RX)),
        "the run has no NIC 5"
    );
    assert_eq!(
        refused!(begin("x", 1, 0, 1)),
        "link 1 has a NIC end: attach the hook to the NIC's queue instead"
    );
    // Detach by name: its final row.
    let got = exchange(
        &mut ch,
        &mut fleet,
        &mut seq,
        &[Message::HookDetach { name: "guard2" }],
    );
    assert_eq!(
        got,
        [
            Got::Hook(seq - 1, "guard2".into(), 0, ENGINE_COMPILED),
            Got::Done(seq - 1)
        ]
    );
    assert_eq!(fleet.hooks.len(), 2);
}

proptest! {
    /// Chunks in any order, with any of them missing: attached only when
    /// every chunk came in order, else refused with nothing attached.
    #[test]
    fn chunks_in_any_order_attach_only_when_whole(order in proptest::collection::vec(0u32..6, 0..8)) {
        let mut fleet = FakeFleet::with(1);
        let mut ch = Channel::new();
        let mut seq = 0;
        exchange(&mut ch, &mut fleet, &mut seq, &[begin("h", 0, 0, 6 * 10)]);
        let mut msgs: StdVec<Message<'_>> = order.iter().map(|&c| chunk(c * 10, 10, &GOOD)).collect();
        msgs.push(Message::HookCommit { name: "h" });
        let got = exchange(&mut ch, &mut fleet, &mut seq, &msgs);
        let whole = order == [0, 1, 2, 3, 4, 5];
        prop_assert_eq!(fleet.hooks.len(), usize::from(whole));
        prop_assert!(fleet.staged.is_none());
        prop_assert_eq!(got.last(), Some(&if whole { Got::Done(seq - 1) } else {
            match got.last() { Some(Got::Error(s, t)) => Got::Error(*s, t.clone()), _ => Got::Done(u32::MAX) }
        }));
    }
}

#[test]
fn a_watcher_is_told_each_vm_start_line_restart_and_end_once_in_order() {
    use vmm_abi::control::{EVENT_ENDED, EVENT_RESTARTED, EVENT_STARTED, VM_EXITED, VM_KILLED};
    let mut h = crate::console::history::History::new();
    let mut seen = Seen::NOBODY;
    let now = |id, status, restarts| PlaceNow {
        id,
        status,
        restarts,
    };
    let vm = |id, event, status, restarts| {
        Some(News::Vm {
            id,
            event,
            status,
            restarts,
        })
    };
    let line = |id, seq: u64, text: &str| {
        Some(News::Line {
            id,
            seq,
            text: heapless::String::try_from(text).unwrap(),
        })
    };
    // A VM appears in the place: started, then its lines, then nothing.
    h.push("-- starting");
    h.push("hello");
    let tell = |seen: &mut Seen, n: PlaceNow, h: &crate::console::history::History| {
        news(seen, n, |from| h.line(from))
    };
    assert_eq!(
        tell(&mut seen, now(7, VM_RUNNING, 0), &h),
        vm(7, EVENT_STARTED, VM_RUNNING, 0)
    );
    assert_eq!(
        tell(&mut seen, now(7, VM_RUNNING, 0), &h),
        line(7, 0, "-- starting")
    );
    assert_eq!(
        tell(&mut seen, now(7, VM_RUNNING, 0), &h),
        line(7, 1, "hello")
    );
    assert_eq!(tell(&mut seen, now(7, VM_RUNNING, 0), &h), None);
    // It ends: its last line first, then the end, once.
    h.push("-- killed");
    assert_eq!(
        tell(&mut seen, now(7, VM_KILLED, 0), &h),
        line(7, 2, "-- killed")
    );
    assert_eq!(
        tell(&mut seen, now(7, VM_KILLED, 0), &h),
        vm(7, EVENT_ENDED, VM_KILLED, 0)
    );
    assert_eq!(tell(&mut seen, now(7, VM_KILLED, 0), &h), None);
    // Restarted (and ended again before anyone looked): a restart, then
    // the end.
    assert_eq!(
        tell(&mut seen, now(7, VM_EXITED, 1), &h),
        vm(7, EVENT_RESTARTED, VM_RUNNING, 1)
    );
    assert_eq!(
        tell(&mut seen, now(7, VM_EXITED, 1), &h),
        vm(7, EVENT_ENDED, VM_EXITED, 1)
    );
    // Lines printed faster than they were told: the gap shows in the
    // numbers (only the kept ones are told).
    for i in 0..400 {
        h.push(&std::format!("spam {i}"));
    }
    let Some(News::Line { seq, .. }) = tell(&mut seen, now(7, VM_EXITED, 1), &h) else {
        panic!("a line");
    };
    assert_eq!(seq, h.first());
    assert!(seq > 3);
    // Another VM in the place (its history cleared): started, from line 0.
    h.clear();
    h.push("new");
    assert_eq!(
        tell(&mut seen, now(9, VM_RUNNING, 0), &h),
        vm(9, EVENT_STARTED, VM_RUNNING, 0)
    );
    assert_eq!(
        tell(&mut seen, now(9, VM_RUNNING, 0), &h),
        line(9, 0, "new")
    );
}

/// A link's row as the fake sends it.
fn link_row(index: u32, frames: u64) -> Message<'static> {
    Message::FlowRow {
        kind: vmm_abi::control::FLOW_LINK,
        index,
        label: "x",
        in_frames: frames,
        in_bytes: 0,
        in_drops: 0,
        out_frames: 0,
        out_bytes: 0,
        out_drops: 0,
    }
}

#[test]
fn links_are_made_and_unmade_between_named_ports_of_running_vms_and_refused_by_name() {
    let mut fleet = FakeFleet::with(3);
    fleet.ended_vms[2] = true;
    let mut ch = Channel::new();
    let mut seq = 0;
    let port = |vm, port| Port { vm, port };
    let attach = |a, b| Message::LinkAttach { a, b };
    let detach = |a, b| Message::LinkDetach { a, b };
    let pr = |vm, port| PortRef { vm, port };
    // Made: the new link's row, then done; unmade: its final row, done.
    let got = exchange(
        &mut ch,
        &mut fleet,
        &mut seq,
        &[
            attach(port("web-0", 1), port("web-1", 0)),
            detach(port("web-1", 0), port("web-0", 1)),
        ],
    );
    assert_eq!(
        got,
        [
            Got::Flow(0, 1, 0),
            Got::Done(0),
            Got::Flow(1, 7, 300),
            Got::Done(1)
        ]
    );
    assert_eq!(
        fleet.links,
        [(true, pr(0, 1), pr(1, 0)), (false, pr(1, 0), pr(0, 1))]
    );
    // Names first: no such VM, a VM that ended (an ended VM's link can
    // still be unmade).
    let refused = |ch: &mut Channel, fleet: &mut FakeFleet, seq: &mut u32, m| {
        refused_by(ch, fleet, seq, &[m])
    };
    assert_eq!(
        refused(
            &mut ch,
            &mut fleet,
            &mut seq,
            attach(port("web-0", 0), port("db", 0))
        ),
        "no VM named db"
    );
    assert_eq!(
        refused(
            &mut ch,
            &mut fleet,
            &mut seq,
            attach(port("web-2", 0), port("web-0", 0))
        ),
        "web-2 has exited: only a running VM's ports are linked"
    );
    let got = exchange(
        &mut ch,
        &mut fleet,
        &mut seq,
        &[detach(port("web-2", 0), port("web-0", 0))],
    );
    assert_eq!(got.last(), Some(&Got::Done(seq - 1)));
    assert_eq!(fleet.links.len(), 3);
    // The data path's refusals, each named.
    let cases = [
        (
            MakeRefusal::NoPort(pr(1, 3)),
            "web-1 has no net port 3 (its manifest entry's `net` says how many)",
        ),
        (
            MakeRefusal::SamePort,
            "web-0.0 and web-1.3 are the same port: a link joins two",
        ),
        (
            MakeRefusal::Linked(pr(0, 0), 4),
            "web-0.0 is linked already (link 4); `corral link detach` unmakes a link made at runtime",
        ),
        (
            MakeRefusal::Full,
            "no room for another link: 16 links made at runtime exist",
        ),
        (
            MakeRefusal::NotService,
            "links are made and unmade in a service run only",
        ),
    ];
    for (r, text) in cases {
        fleet.link_refusal = Some(r);
        assert_eq!(
            refused(
                &mut ch,
                &mut fleet,
                &mut seq,
                attach(port("web-0", 0), port("web-1", 3))
            ),
            text
        );
    }
    fleet.link_refusal = Some(MakeRefusal::NoLink);
    assert_eq!(
        refused(
            &mut ch,
            &mut fleet,
            &mut seq,
            detach(port("web-0", 0), port("web-1", 0))
        ),
        "no link made at runtime joins web-0.0 and web-1.0 (the manifest's links stay for the run)"
    );
    assert_eq!(fleet.links.len(), 3, "nothing made when refused");
    // The channel goes on.
    let got = exchange(&mut ch, &mut fleet, &mut seq, &[Message::List]);
    assert_eq!(got.len(), 4);
}

#[test]
fn the_longest_hook_row_is_the_one_the_answer_room_is_checked_for() {
    let long = "n".repeat(vmm_abi::corral::bootinfo::NAME_MAX);
    let row = Message::HookRow {
        name: &long,
        on: HookOn::Vm {
            vm: &long,
            kind: vmm_abi::hook::HookKind::Exit as u8,
        },
        engine: ENGINE_INTERPRETED,
        runs: u64::MAX,
        pass: u64::MAX,
        dropped: u64::MAX,
        faults: u64::MAX,
        insns: u64::MAX,
    };
    let mut buf = [0u8; MAX_ANSWER];
    assert_eq!(encode(&row, 0, &mut buf), Ok(HOOK_ROW_MAX));
    let done = encode(&Message::Done, 0, &mut buf).unwrap();
    assert!(2 * HOOK_ROW_MAX + done <= MAX_ANSWER);
}
