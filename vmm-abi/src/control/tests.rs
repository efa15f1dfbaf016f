//! Control protocol tests: every message round-trips, the CRC is zlib's, every malformed frame is refused by name, arbitrary bytes never panic and a stream resynchronises, sessions refuse replays and skips.

extern crate std;

use super::*;
use proptest::prelude::*;
use std::string::ToString;
use std::vec;
use std::vec::Vec;

fn all() -> Vec<Message<'static>> {
    vec![
        Message::List,
        Message::Stop { vm: "web-9" },
        Message::Restart { vm: "db" },
        Message::Scale {
            entry: "web",
            count: 64,
        },
        Message::Start {
            entry: "web",
            name: "",
            args: None,
            memory: 0,
        },
        Message::Start {
            entry: "web",
            name: "web-extra",
            args: Some("port=8080 verbose"),
            memory: 64 << 20,
        },
        Message::Start {
            entry: "web",
            name: "",
            args: Some(""),
            memory: 0,
        },
        Message::CoreRow {
            core: 2,
            role: CORE_VMS | CORE_POLLS,
            vms: 3,
            exits: 1 << 40,
            ran: 12345,
            busy: 0,
        },
        Message::ImageBegin {
            name: "hello2",
            bytes: 123_456,
        },
        Message::ImageChunk {
            offset: 4000,
            bytes: &[0x7f; CHUNK_BYTES],
        },
        Message::ImageChunk {
            offset: 0,
            bytes: b"\x7fELF",
        },
        Message::ImageCommit { name: "hello2" },
        Message::StartImage {
            image: "hello2",
            name: "h-1",
            args: Some("a=1"),
            memory: 1 << 20,
        },
        Message::StartImage {
            image: "hello2",
            name: "h-2",
            args: None,
            memory: 0,
        },
        Message::Tune {
            vm: "web-2",
            what: TUNE_BUDGET,
            value: 5_000_000,
        },
        Message::Tune {
            vm: "web-2",
            what: TUNE_SLICE,
            value: 0,
        },
        Message::LinkAttach {
            a: Port { vm: "gen", port: 0 },
            b: Port {
                vm: "sink-12",
                port: 3,
            },
        },
        Message::LinkDetach {
            a: Port {
                vm: "sink-12",
                port: 3,
            },
            b: Port { vm: "gen", port: 0 },
        },
        Message::Stats,
        Message::Logs {
            vm: "web-3",
            from: 17,
        },
        Message::LogLine {
            seq: 1 << 40,
            text: "heap: 84 KiB",
        },
        Message::LogHead {
            id: 117,
            next: 1 << 33,
        },
        Message::End,
        Message::Done,
        Message::Error {
            text: "no VM named web-9",
        },
        Message::VmRow {
            vm: 3,
            name: "web-3",
            status: 2,
            core: 1,
            restarts: 1,
            exits: 1234,
            ran: 5_000_000,
        },
        Message::HostStats {
            free: 1 << 33,
            running: 7,
            commands: 12,
            errors: 3,
        },
        Message::FlowRow {
            kind: FLOW_LINK,
            index: 2,
            label: "gen.0<->fw.0",
            in_frames: 4000,
            in_bytes: 256_000,
            in_drops: 1,
            out_frames: 0,
            out_bytes: 0,
            out_drops: 0,
        },
        Message::FlowRow {
            kind: FLOW_NIC,
            index: 0,
            label: "uplink",
            in_frames: 3,
            in_bytes: 180,
            in_drops: 0,
            out_frames: 2,
            out_bytes: 120,
            out_drops: 5,
        },
        Message::HookBegin {
            name: "count",
            on: HookOn::Link {
                link: 0,
                dir: DIR_B_TO_A,
            },
            insns: 4096,
            maps: &ARRAY_DEF,
        },
        Message::HookBegin {
            name: "nomaps",
            on: HookOn::Link {
                link: 3,
                dir: DIR_A_TO_B,
            },
            insns: 2,
            maps: &[],
        },
        Message::HookBegin {
            name: "wire",
            on: HookOn::Nic {
                nic: 1,
                dir: NIC_TX,
            },
            insns: 3,
            maps: &[],
        },
        Message::HookBegin {
            name: "guard",
            on: HookOn::Vm {
                vm: "web-2",
                kind: crate::hook::HookKind::Exit as u8,
            },
            insns: 11,
            maps: &ARRAY_DEF,
        },
        Message::HookChunk {
            offset: 125,
            bytes: &[0x95; CHUNK_BYTES],
        },
        Message::HookCommit { name: "count" },
        Message::HookDetach { name: "count" },
        Message::HookMaps { name: "count" },
        Message::HookRow {
            name: "guard",
            on: HookOn::Vm {
                vm: "web-2",
                kind: crate::hook::HookKind::Slice as u8,
            },
            engine: ENGINE_INTERPRETED,
            runs: 3,
            pass: 2,
            dropped: 1,
            faults: 1,
            insns: 33,
        },
        Message::HookRow {
            name: "count",
            on: HookOn::Link {
                link: 0,
                dir: DIR_A_TO_B,
            },
            engine: ENGINE_COMPILED,
            runs: 10,
            pass: 9,
            dropped: 1,
            faults: 0,
            insns: 120,
        },
        Message::MapEntry {
            map: 0,
            core: 1,
            key: &[0, 0, 0, 0],
            value: &[0xff; 256],
        },
        Message::Watch,
        Message::VmEvent {
            vm: 3,
            name: "web-3",
            event: EVENT_ENDED,
            status: VM_KILLED,
            core: 2,
            restarts: 1,
        },
        Message::VmEvent {
            vm: 130,
            name: "web-130",
            event: EVENT_STARTED,
            status: VM_RUNNING,
            core: NO_CORE,
            restarts: 0,
        },
        Message::Console {
            vm: 0,
            name: "web-0",
            seq: 1 << 35,
            text: "hello from web",
        },
    ]
}

/// An array map of one u64.
const ARRAY_DEF: [u8; 16] = [1, 0, 0, 0, 4, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0];

/// A frame of `kind` with `payload` as it is (checksum right).
fn raw_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![MAGIC[0], MAGIC[1], CONTROL_VERSION, kind, 0, 0, 0, 0];
    f.extend((payload.len() as u16).to_le_bytes());
    f.extend_from_slice(payload);
    let crc = crc32(&f).to_le_bytes();
    f.extend(crc);
    f
}

#[test]
fn malformed_hook_messages_are_refused_by_name() {
    let mut buf = [0u8; MAX_FRAME];
    let begin = |dir, maps| Message::HookBegin {
        name: "h",
        on: HookOn::Link { link: 0, dir },
        insns: 1,
        maps,
    };
    let on_vm = |kind| Message::HookBegin {
        name: "h",
        on: HookOn::Vm { vm: "web", kind },
        insns: 1,
        maps: &[],
    };
    let refused = |m: &Message<'_>| {
        matches!(
            encode(m, 0, &mut [0u8; MAX_FRAME]),
            Err(FrameError::Payload { .. })
        )
    };
    assert!(refused(&begin(2, &[])));
    // A packet hook is no VM's; unknown kinds are nobody's.
    for kind in [0, 1, 5, 255] {
        assert!(refused(&on_vm(kind)), "{kind}");
    }
    assert!(!refused(&on_vm(2)));
    assert!(refused(&begin(0, &ARRAY_DEF[..15])));
    let mut bad_kind = ARRAY_DEF;
    bad_kind[0] = 99;
    assert!(refused(&begin(0, &bad_kind)));
    assert!(refused(&Message::HookChunk {
        offset: 0,
        bytes: &[]
    }));
    assert!(refused(&Message::HookChunk {
        offset: 0,
        bytes: &[0; 7]
    }));
    assert!(refused(&Message::HookChunk {
        offset: 0,
        bytes: &[0; CHUNK_BYTES + 8]
    }));
    assert!(refused(&Message::MapEntry {
        map: 0,
        core: 0,
        key: &[0; 65],
        value: &[]
    }));
    assert!(refused(&Message::HookCommit { name: "" }));
    // The reader refuses the same on the wire, naming why.
    let why = |f: &[u8]| match next_frame(f) {
        Next::Bad(FrameError::Payload { why, .. }, skip) => {
            assert_eq!(skip, f.len());
            why
        }
        other => panic!("accepted: {other:?}"),
    };
    let n = encode(&begin(0, &ARRAY_DEF), 0, &mut buf).unwrap();
    let payload = buf[HEADER..n - TRAILER].to_vec();
    let mut p = payload.clone();
    p[2 + 1 + 4] = 7; // the direction
    assert_eq!(why(&raw_frame(9, &p)), BAD_DIR);
    for tag in [0, 4, 255] {
        let mut p = payload.clone();
        p[2] = tag; // the place's tag
        assert_eq!(why(&raw_frame(9, &p)), BAD_HOOK_ON, "{tag}");
    }
    let mut p = payload.clone();
    p[2 + 1 + 4 + 1 + 4] = 2; // two maps, one given
    assert_eq!(why(&raw_frame(9, &p)), "it ends early");
    let mut p = payload.clone();
    p[2 + 1 + 4 + 1 + 4 + 1] = 99; // a map kind nobody knows
    assert_eq!(why(&raw_frame(9, &p)), BAD_MAPS);
    let mut p = payload.clone();
    p.push(0);
    assert_eq!(why(&raw_frame(9, &p)), "bytes after its last field");
    // A NIC queue that is neither rx nor tx, either way.
    let nic = |dir| Message::HookBegin {
        name: "h",
        on: HookOn::Nic { nic: 0, dir },
        insns: 1,
        maps: &[],
    };
    assert!(refused(&nic(2)));
    let n = encode(&nic(NIC_RX), 0, &mut buf).unwrap();
    let mut p = buf[HEADER..n - TRAILER].to_vec();
    p[2 + 1 + 4] = 2; // name (2), tag, the NIC (4), then the queue
    assert_eq!(why(&raw_frame(9, &p)), BAD_NIC_DIR);
    // A VM hook of a kind that is not a VM's, on the wire.
    let n = encode(&on_vm(3), 0, &mut buf).unwrap();
    let mut p = buf[HEADER..n - TRAILER].to_vec();
    p[2 + 1 + 4] = 1; // name (2), tag, the VM's name (4), then the kind
    assert_eq!(why(&raw_frame(9, &p)), BAD_VM_HOOK);
    let mut chunk = 5u32.to_le_bytes().to_vec();
    chunk.extend(3u16.to_le_bytes());
    chunk.extend([1, 2, 3]);
    assert_eq!(why(&raw_frame(10, &chunk)), BAD_CHUNK);
    let mut entry = vec![0u8];
    entry.extend(0u32.to_le_bytes());
    entry.push(4);
    entry.extend([0; 4]);
    entry.extend(300u16.to_le_bytes());
    entry.extend([0; 300]);
    assert_eq!(why(&raw_frame(71, &entry)), BAD_ENTRY);
    assert_eq!(map_defs(&ARRAY_DEF).count(), 1);
    // A hook row's engine is compiled or interpreted, either way.
    let row = |engine| Message::HookRow {
        name: "h",
        on: HookOn::Nic {
            nic: 0,
            dir: NIC_TX,
        },
        engine,
        runs: 1,
        pass: 1,
        dropped: 0,
        faults: 0,
        insns: 2,
    };
    for engine in [2, 255] {
        assert!(refused(&row(engine)), "{engine}");
    }
    let n = encode(&row(ENGINE_INTERPRETED), 0, &mut buf).unwrap();
    let mut p = buf[HEADER..n - TRAILER].to_vec();
    p[2 + 1 + 4 + 1] = 2; // name (2), tag, the NIC (4), the queue, the engine
    assert_eq!(why(&raw_frame(row(0).kind(), &p)), BAD_ENGINE);
    p[2 + 1 + 4 + 1] = ENGINE_INTERPRETED;
    assert!(matches!(
        next_frame(&raw_frame(row(0).kind(), &p)),
        Next::Frame(..)
    ));
}

fn framed(msg: &Message<'_>, seq: u32) -> Vec<u8> {
    let mut out = vec![0u8; MAX_FRAME];
    let n = encode(msg, seq, &mut out).unwrap();
    out.truncate(n);
    out
}

#[test]
fn every_message_round_trips() {
    for (i, m) in all().iter().enumerate() {
        let f = framed(m, i as u32 + 7);
        assert_eq!(
            next_frame(&f),
            Next::Frame(
                Frame {
                    seq: i as u32 + 7,
                    msg: *m
                },
                f.len()
            ),
            "{m:?}"
        );
    }
}

#[test]
fn the_checksum_is_zlibs_crc32() {
    assert_eq!(crc32(b""), 0);
    assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
}

#[test]
fn malformed_frames_are_refused_by_name() {
    let good = framed(&Message::Stop { vm: "web" }, 1);
    // Every truncation needs more bytes; nothing is read as a frame.
    for n in 0..good.len() {
        assert_eq!(next_frame(&good[..n]), Next::NeedMore, "{n} bytes");
    }
    let mut bad = good.clone();
    bad[2] = CONTROL_VERSION - 1;
    assert_eq!(
        next_frame(&bad),
        Next::Bad(
            FrameError::Version {
                found: CONTROL_VERSION - 1
            },
            1
        )
    );
    let mut bad = good.clone();
    bad[8] = 0xff;
    bad[9] = 0xff;
    assert_eq!(
        next_frame(&bad),
        Next::Bad(FrameError::TooLong { len: 0xffff }, 1)
    );
    let mut bad = good.clone();
    bad[11] ^= 1;
    assert!(matches!(
        next_frame(&bad),
        Next::Bad(FrameError::Checksum { .. }, 1)
    ));
    // A valid frame of an unknown kind, and one whose payload lies.
    let mut unknown = good.clone();
    unknown[3] = 200;
    let end = unknown.len() - TRAILER;
    let crc = crc32(&unknown[..end]).to_le_bytes();
    unknown[end..].copy_from_slice(&crc);
    assert_eq!(
        next_frame(&unknown),
        Next::Bad(FrameError::Kind { kind: 200 }, unknown.len())
    );
    let mut lying = good.clone();
    lying[HEADER] = 200; // the name's length runs past the payload
    let crc = crc32(&lying[..end]).to_le_bytes();
    lying[end..].copy_from_slice(&crc);
    let Next::Bad(e, skip) = next_frame(&lying) else {
        panic!("accepted");
    };
    assert_eq!(skip, lying.len());
    assert_eq!(std::format!("{e}"), "message kind 2: it ends early");
    // Garbage before a frame is skipped to the next possible magic.
    let mut stream = b"xyzC".to_vec();
    stream.extend_from_slice(&good);
    assert_eq!(next_frame(&stream), Next::Bad(FrameError::Magic, 3));
    // `CC` there, then no version: one byte on.
    assert_eq!(
        next_frame(&stream[3..]),
        Next::Bad(FrameError::Version { found: b'C' }, 1)
    );
    assert!(matches!(next_frame(&stream[4..]), Next::Frame(_, _)));
    // What the reader would refuse is not written either.
    let mut buf = [0u8; MAX_FRAME];
    assert!(matches!(
        encode(&Message::Stop { vm: "" }, 0, &mut buf),
        Err(FrameError::Payload { kind: 2, .. })
    ));
    assert!(matches!(
        encode(
            &Message::VmRow {
                vm: 0,
                name: "a",
                status: 4,
                core: 0,
                restarts: 0,
                exits: 0,
                ran: 0
            },
            0,
            &mut buf
        ),
        Err(FrameError::Payload { kind: 66, .. })
    ));
    assert!(matches!(
        encode(
            &Message::FlowRow {
                kind: 3,
                index: 0,
                label: "x",
                in_frames: 0,
                in_bytes: 0,
                in_drops: 0,
                out_frames: 0,
                out_bytes: 0,
                out_drops: 0
            },
            0,
            &mut buf
        ),
        Err(FrameError::Payload { kind: 68, .. })
    ));
    // Events: a kind of event or a status out of range, either way.
    let event = |event, status| Message::VmEvent {
        vm: 1,
        name: "a",
        event,
        status,
        core: 0,
        restarts: 0,
    };
    for (e, st, why) in [(0, 0, BAD_EVENT), (4, 0, BAD_EVENT), (1, 4, BAD_STATUS)] {
        assert_eq!(
            encode(&event(e, st), 0, &mut buf),
            Err(FrameError::Payload { kind: 128, why })
        );
        let n = encode(&event(EVENT_STARTED, VM_RUNNING), 7, &mut buf).unwrap();
        let mut bad = buf[..n].to_vec();
        // vm (4), name (1 + 1), then the event and status bytes.
        bad[HEADER + 6] = e;
        bad[HEADER + 7] = st;
        let crc = crc32(&bad[..n - TRAILER]).to_le_bytes();
        bad[n - TRAILER..].copy_from_slice(&crc);
        assert!(
            matches!(next_frame(&bad), Next::Bad(FrameError::Payload { kind: 128, why: w }, _) if w == why),
            "{e} {st}"
        );
    }
    // A setting `tune` does not know, either way.
    let tune = |what| Message::Tune {
        vm: "a",
        what,
        value: 1,
    };
    for what in [0, 3, 255] {
        assert_eq!(
            encode(&tune(what), 0, &mut buf),
            Err(FrameError::Payload {
                kind: K_TUNE,
                why: BAD_SETTING
            })
        );
        let n = encode(&tune(TUNE_SLICE), 7, &mut buf).unwrap();
        let mut bad = buf[..n].to_vec();
        // name (1 + 1), then the setting.
        bad[HEADER + 2] = what;
        let crc = crc32(&bad[..n - TRAILER]).to_le_bytes();
        bad[n - TRAILER..].copy_from_slice(&crc);
        assert!(
            matches!(next_frame(&bad), Next::Bad(FrameError::Payload { kind: K_TUNE, why: w }, _) if w == BAD_SETTING),
            "{what}"
        );
    }
    // Image chunks of no bytes or too many; a start from an image without
    // a name.
    for bytes in [&[][..], &[0u8; CHUNK_BYTES + 1][..]] {
        assert_eq!(
            encode(&Message::ImageChunk { offset: 0, bytes }, 0, &mut buf),
            Err(FrameError::Payload {
                kind: K_IMAGE_CHUNK,
                why: BAD_IMAGE_CHUNK
            })
        );
    }
    let mut chunk = 0u32.to_le_bytes().to_vec();
    chunk.extend(0u16.to_le_bytes());
    assert!(matches!(
        next_frame(&raw_frame(K_IMAGE_CHUNK, &chunk)),
        Next::Bad(
            FrameError::Payload {
                why: BAD_IMAGE_CHUNK,
                ..
            },
            _
        )
    ));
    assert!(
        encode(
            &Message::StartImage {
                image: "i",
                name: "",
                args: None,
                memory: 0
            },
            0,
            &mut buf
        )
        .is_err()
    );
    // A core role with an unknown bit, either way.
    let core = |role| Message::CoreRow {
        core: 0,
        role,
        vms: 0,
        exits: 0,
        ran: 0,
        busy: 0,
    };
    assert_eq!(
        encode(&core(8), 0, &mut buf),
        Err(FrameError::Payload {
            kind: K_CORE_ROW,
            why: BAD_ROLE
        })
    );
    let n = encode(&core(CORE_CONTROL), 7, &mut buf).unwrap();
    let mut bad = buf[..n].to_vec();
    bad[HEADER + 4] = 0x80; // after the core number
    let crc = crc32(&bad[..n - TRAILER]).to_le_bytes();
    bad[n - TRAILER..].copy_from_slice(&crc);
    assert!(matches!(
        next_frame(&bad),
        Next::Bad(FrameError::Payload { why: BAD_ROLE, .. }, _)
    ));
    // `start`'s arguments flag neither 0 nor 1.
    let start = Message::Start {
        entry: "a",
        name: "",
        args: None,
        memory: 0,
    };
    let n = encode(&start, 7, &mut buf).unwrap();
    for flag in [2u8, 255] {
        let mut bad = buf[..n].to_vec();
        // entry (1 + 1), name (1), then the flag.
        bad[HEADER + 3] = flag;
        let crc = crc32(&bad[..n - TRAILER]).to_le_bytes();
        bad[n - TRAILER..].copy_from_slice(&crc);
        assert!(
            matches!(next_frame(&bad), Next::Bad(FrameError::Payload { kind: K_START, why: w }, _) if w == BAD_ARGS_FLAG),
            "{flag}"
        );
    }
    // Too long to encode.
    let long = "x".repeat(300);
    assert_eq!(
        encode(&Message::Error { text: &long }, 0, &mut [0u8; MAX_FRAME]),
        Err(FrameError::NoRoom)
    );
    assert_eq!(
        encode(&Message::List, 0, &mut [0u8; 5]),
        Err(FrameError::NoRoom)
    );
}

#[test]
fn sessions_refuse_replays_and_skips() {
    let mut s = Session::default();
    assert_eq!(s.accept(0), Ok(()));
    assert_eq!(s.accept(1), Ok(()));
    assert_eq!(
        s.accept(1),
        Err(SeqError::Replayed {
            expected: 2,
            found: 1
        })
    );
    assert_eq!(
        s.accept(5),
        Err(SeqError::Skipped {
            expected: 2,
            found: 5
        })
    );
    assert_eq!(s.accept(2), Ok(()));
    assert!(
        std::format!(
            "{}",
            SeqError::Replayed {
                expected: 2,
                found: 1
            }
        )
        .contains("replay")
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_always_make_progress(bytes in proptest::collection::vec(any::<u8>(), 0..2200)) {
        let mut at = 0;
        let mut steps = 0;
        while at < bytes.len() {
            steps += 1;
            prop_assert!(steps <= bytes.len() + 1);
            match next_frame(&bytes[at..]) {
                Next::Frame(_, n) | Next::Bad(_, n) => {
                    prop_assert!(n >= 1);
                    at += n;
                }
                Next::NeedMore => break,
            }
        }
    }

    #[test]
    fn any_single_byte_change_is_caught(i in 0usize..11, at in 0usize..64, flip in 1u8..=255) {
        let msgs = all();
        let f = framed(&msgs[i % msgs.len()], 3);
        let at = at % f.len();
        let mut bad = f.clone();
        bad[at] ^= flip;
        match next_frame(&bad) {
            Next::Frame(fr, _) => prop_assert!(false, "accepted a changed frame: {:?}", fr),
            Next::Bad(..) | Next::NeedMore => {}
        }
    }

    #[test]
    fn frames_in_a_stream_are_all_found(seqs in proptest::collection::vec(any::<u32>(), 1..8), junk in proptest::collection::vec(any::<u8>(), 0..16)) {
        let msgs = all();
        let mut stream = Vec::new();
        for (k, s) in seqs.iter().enumerate() {
            // Junk without the magic's first byte between frames.
            stream.extend(junk.iter().map(|b| if *b == MAGIC[0] { 0 } else { *b }));
            stream.extend(framed(&msgs[k % msgs.len()], *s));
        }
        let mut found = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            match next_frame(&stream[at..]) {
                Next::Frame(f, n) => { found.push(f.seq); at += n; }
                Next::Bad(_, n) => at += n,
                Next::NeedMore => break,
            }
        }
        prop_assert_eq!(found, seqs);
    }
}

#[test]
fn statuses_have_names_and_back() {
    for s in [VM_RUNNING, VM_EXITED, VM_KILLED, VM_STOPPED] {
        assert_eq!(status_named(status_name(s)), Some(s));
    }
    assert_eq!(status_name(VM_STOPPED), "stopped");
    assert_eq!(
        [EVENT_STARTED, EVENT_RESTARTED, EVENT_ENDED].map(event_name),
        ["started", "restarted", "ended"]
    );
    assert_eq!(status_name(9), "?");
    assert_eq!(status_named("?"), None);
    assert_eq!(status_named("dancing"), None);
}

#[test]
fn a_link_command_without_both_ports_whole_is_refused_by_name() {
    // `gen` and its port, then `sink` without its port byte.
    let mut payload = vec![3];
    payload.extend_from_slice(b"gen");
    payload.push(0);
    payload.push(4);
    payload.extend_from_slice(b"sink");
    for kind in [K_LINK_ATTACH, K_LINK_DETACH] {
        assert!(
            matches!(
                next_frame(&raw_frame(kind, &payload)),
                Next::Bad(FrameError::Payload { kind: k, .. }, _) if k == kind
            ),
            "{kind}"
        );
        let mut whole = payload.clone();
        whole.push(1);
        let bytes = raw_frame(kind, &whole);
        let Next::Frame(frame, _) = next_frame(&bytes) else {
            panic!("a whole one is read");
        };
        let (a, b) = (
            Port { vm: "gen", port: 0 },
            Port {
                vm: "sink",
                port: 1,
            },
        );
        let want = if kind == K_LINK_ATTACH {
            Message::LinkAttach { a, b }
        } else {
            Message::LinkDetach { a, b }
        };
        assert_eq!(frame.msg, want);
    }
    let nameless = Message::LinkAttach {
        a: Port { vm: "", port: 0 },
        b: Port { vm: "b", port: 0 },
    };
    assert!(matches!(
        encode(&nameless, 0, &mut [0u8; MAX_FRAME]),
        Err(FrameError::Payload {
            kind: K_LINK_ATTACH,
            ..
        })
    ));
    assert_eq!(Port { vm: "web", port: 2 }.to_string(), "web.2");
}
