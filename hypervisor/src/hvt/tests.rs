//! hvt tests: images checked by the tender's rules with every refusal named, the starting memory laid out as the ABI says, every hypercall carried out or refused by name, and arbitrary images and calls never panicking.

extern crate std;

use super::boot::{self, Attached, BlockBinding, BuildError, Entry, NetBinding, NetHandles};
use super::call::{self, HvtCallError, HvtDisks, HvtDone, HvtEnv, NoDisks, PortAccess, SharedDisk};
use super::image::{self, HeaderProblem, HvtImageError, SegmentRule};
use crate::mem::access::{Gpa, GuestRead};
use crate::mem::guest::GuestMemory;
use crate::mem::raw::testing::over_vec;
use proptest::prelude::*;
use std::vec;
use std::vec::Vec;
use vmm_abi::hvt::{self, Hypercall, NoteError};

const MIB: u64 = 1 << 20;
const PF_R: u32 = 4;
const PF_W: u32 = 2;
const PF_X: u32 = 1;

/// A program header to write: (type, flags, vaddr, file bytes, memsz, align).
#[derive(Clone)]
struct Seg {
    kind: u32,
    flags: u32,
    vaddr: u64,
    data: Vec<u8>,
    memsz: u64,
    align: u64,
}

fn load(flags: u32, vaddr: u64, data: Vec<u8>, memsz: u64) -> Seg {
    Seg {
        kind: 1,
        flags,
        vaddr,
        data,
        memsz,
        align: 0x1000,
    }
}

fn note(kind: u32, desc: &[u8], pad: usize) -> Seg {
    let mut b = Vec::new();
    b.extend_from_slice(&6u32.to_le_bytes());
    b.extend_from_slice(&((desc.len() + pad) as u32).to_le_bytes());
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(b"Solo5\0\0\0");
    b.extend(vec![0u8; pad]);
    b.extend_from_slice(desc);
    let len = b.len() as u64;
    Seg {
        kind: 4,
        flags: PF_R,
        vaddr: 0,
        data: b,
        memsz: len,
        align: 4,
    }
}

fn abi_note(target: u32, version: u32) -> Seg {
    let mut d = Vec::new();
    for v in [target, version, 0, 0] {
        d.extend_from_slice(&v.to_le_bytes());
    }
    note(hvt::NOTE_ABI1, &d, 0)
}

fn mft_bytes(devices: &[(&str, u32)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&(devices.len() as u32 + 1).to_le_bytes());
    let entry = |name: &str, kind: u32| {
        let mut e = vec![0u8; hvt::MFT_ENTRY_SIZE];
        e[..name.len()].copy_from_slice(name.as_bytes());
        e[hvt::MFT_TYPE..hvt::MFT_TYPE + 4].copy_from_slice(&kind.to_le_bytes());
        e
    };
    b.extend(entry("", hvt::MFT_RESERVED_FIRST));
    for (n, k) in devices {
        b.extend(entry(n, *k));
    }
    b
}

fn mft_note(devices: &[(&str, u32)]) -> Seg {
    note(hvt::NOTE_MFT1, &mft_bytes(devices), hvt::MFT1_PAD)
}

/// An ELF with `segs`, entry `entry`.
fn elf(entry: u64, segs: &[Seg]) -> Vec<u8> {
    let phoff = 64u64;
    let mut data_at = phoff + 56 * segs.len() as u64;
    let mut f = vec![0u8; data_at as usize];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes());
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..32].copy_from_slice(&entry.to_le_bytes());
    f[32..40].copy_from_slice(&phoff.to_le_bytes());
    f[52..54].copy_from_slice(&64u16.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
    for (i, s) in segs.iter().enumerate() {
        let at = (phoff + 56 * i as u64) as usize;
        let offset = if s.data.is_empty() { 0 } else { data_at };
        let ph = &mut f[at..at + 56];
        ph[0..4].copy_from_slice(&s.kind.to_le_bytes());
        ph[4..8].copy_from_slice(&s.flags.to_le_bytes());
        ph[8..16].copy_from_slice(&offset.to_le_bytes());
        ph[16..24].copy_from_slice(&s.vaddr.to_le_bytes());
        ph[24..32].copy_from_slice(&s.vaddr.to_le_bytes());
        ph[32..40].copy_from_slice(&(s.data.len() as u64).to_le_bytes());
        ph[40..48].copy_from_slice(&s.memsz.to_le_bytes());
        ph[48..56].copy_from_slice(&s.align.to_le_bytes());
        data_at += s.data.len() as u64;
    }
    for s in segs {
        f.extend_from_slice(&s.data);
    }
    f
}

fn text() -> Seg {
    load(PF_R | PF_X, MIB, vec![0x90; 0x1800], 0x1800)
}

fn data() -> Seg {
    load(PF_R | PF_W, MIB + 0x2000, vec![7; 16], 0x3000)
}

fn good() -> Vec<u8> {
    elf(
        MIB + 0x20,
        &[
            text(),
            data(),
            // An empty segment at address 0 (an empty .tdata) is skipped.
            load(PF_R, 0, vec![], 0),
            abi_note(1, 2),
            mft_note(&[]),
        ],
    )
}

#[test]
fn a_good_image_is_checked_and_described() {
    let f = good();
    assert!(image::is_hvt(&f));
    let img = image::check(&f, 4 * MIB).unwrap();
    assert_eq!(img.entry, MIB + 0x20);
    assert_eq!(img.kernel_end, MIB + 0x5000);
    let loads: Vec<_> = img.loads().collect();
    assert_eq!(loads.len(), 2);
    assert!(loads[0].exec && !loads[0].write);
    assert!(loads[1].write && !loads[1].exec);
    assert_eq!(loads[1].pages, (MIB + 0x2000, MIB + 0x5000));
    assert_eq!(img.mft.devices().count(), 0);
}

#[test]
fn every_bad_image_is_refused_by_name() {
    let notes = || vec![abi_note(1, 2), mft_note(&[])];
    let with = |segs: Vec<Seg>| {
        let mut all = segs;
        all.extend(notes());
        elf(MIB, &all)
    };
    let seg = |phdr, why| HvtImageError::Segment { phdr, why };
    let cases: Vec<(Vec<u8>, u64, HvtImageError)> = vec![
        (
            elf(MIB, &[text(), abi_note(2, 2), mft_note(&[])]),
            4 * MIB,
            HvtImageError::Note(NoteError::Target { found: 2 }),
        ),
        (
            elf(MIB, &[text(), abi_note(1, 9), mft_note(&[])]),
            4 * MIB,
            HvtImageError::Note(NoteError::Version { found: 9 }),
        ),
        (
            elf(MIB, &[text(), mft_note(&[])]),
            4 * MIB,
            HvtImageError::Note(NoteError::NoAbi),
        ),
        (
            elf(MIB, &[text(), abi_note(1, 2)]),
            4 * MIB,
            HvtImageError::Note(NoteError::NoManifest),
        ),
        (
            with(vec![load(PF_R | PF_X, 0x8_0000, vec![1; 16], 16)]),
            4 * MIB,
            seg(0, SegmentRule::BelowMin),
        ),
        (
            with(vec![load(PF_R | PF_W | PF_X, MIB, vec![1; 16], 16)]),
            4 * MIB,
            seg(0, SegmentRule::WriteExec),
        ),
        (
            with(vec![data(), text()]),
            4 * MIB,
            seg(1, SegmentRule::Order),
        ),
        (
            with(vec![text(), load(PF_R, MIB + 0x1000, vec![1; 16], 16)]),
            4 * MIB,
            seg(1, SegmentRule::Overlap),
        ),
        (
            with(vec![load(
                PF_R | PF_X,
                3 * MIB + 0xff000,
                vec![1; 16],
                0x2000,
            )]),
            4 * MIB,
            seg(0, SegmentRule::Range),
        ),
        (
            with(vec![load(PF_R, MIB, vec![1; 32], 16)]),
            4 * MIB,
            seg(0, SegmentRule::MemSize),
        ),
        (
            with(vec![Seg { align: 3, ..text() }]),
            4 * MIB,
            seg(0, SegmentRule::Align),
        ),
        (
            with(vec![Seg {
                align: 16,
                memsz: 0x1808,
                ..text()
            }]),
            4 * MIB,
            seg(0, SegmentRule::PageAlign),
        ),
        (
            elf(0x1000, &[text(), abi_note(1, 2), mft_note(&[])]),
            4 * MIB,
            HvtImageError::Entry(0x1000),
        ),
        (good(), 3 * MIB, HvtImageError::Memory(3 * MIB)),
        (good(), 8 << 30, HvtImageError::Memory(8 << 30)),
        (
            {
                let mut f = good();
                f[18] = 3;
                f
            },
            4 * MIB,
            HvtImageError::Header(HeaderProblem::NotElf64),
        ),
        (
            {
                let mut f = good();
                f[16] = 3;
                f
            },
            4 * MIB,
            HvtImageError::Header(HeaderProblem::NotExec),
        ),
        (
            {
                // An e_version other than EV_CURRENT.
                let mut f = good();
                f[20] = 2;
                f
            },
            4 * MIB,
            HvtImageError::Header(HeaderProblem::Header),
        ),
    ];
    for (i, (f, mem, want)) in cases.iter().enumerate() {
        assert_eq!(image::check(f, *mem).unwrap_err(), *want, "case {i}");
    }
    // The tender's words where it has them.
    assert_eq!(
        std::format!("{}", seg(3, SegmentRule::WriteExec)),
        "invalid executable: phdr[3] requests WRITE and EXEC permissions"
    );
    // A Corral image has no Solo5 note.
    assert!(!image::is_hvt(&elf(0x1_0000, &[text()])));
}

#[test]
fn the_starting_memory_follows_the_abi() {
    let f = good();
    let memory = 4 * MIB;
    let img = image::check(&f, memory).unwrap();
    let mut backing = vec![0u8; memory as usize];
    let mut mem = GuestMemory::empty(memory);
    mem.add_private(0, &mut backing).unwrap();
    let e = boot::build(
        &mut mem,
        &f,
        &img,
        memory,
        None,
        "Hello_Solo5",
        100_000_000,
        |_| false,
        (&[], &Attached::new()),
        (&[], &NetHandles::new()),
    )
    .unwrap();
    assert_eq!(
        e,
        Entry {
            rip: MIB + 0x20,
            rsp: memory - 8,
            rdi: hvt::BOOT_INFO_GPA,
            cr3: hvt::PML4_GPA
        }
    );
    let q = |gpa: u64| mem.read_u64(Gpa(gpa)).unwrap();
    assert_eq!(q(hvt::GDT_GPA + 8), hvt::GDT[1]);
    assert_eq!(q(hvt::PML4_GPA), hvt::PDPT_GPA | 3);
    assert_eq!(q(hvt::PDPT_GPA + 8), (hvt::PD_GPA + 0x1000) | 3);
    assert_eq!(q(hvt::PD_GPA), hvt::PT0_GPA | 3);
    // 2 MiB pages above the first, up to the end of memory only.
    assert_eq!(q(hvt::PD_GPA + 8), (2 * MIB) | 0x83);
    assert_eq!(q(hvt::PD_GPA + 16), 0);
    // Null page and low pages absent, boot data read-only, then writable.
    assert_eq!(q(hvt::PT0_GPA), 0);
    assert_eq!(q(hvt::PT0_GPA + 8 * 0xf), 0);
    assert_eq!(q(hvt::PT0_GPA + 8 * 0x10), 0x1_0000 | 1);
    assert_eq!(q(hvt::PT0_GPA + 8 * 0x100), 0x10_0000 | 3);
    let mut raw = [0u8; hvt::BOOT_INFO_SIZE as usize];
    GuestRead::read(&mem, Gpa(hvt::BOOT_INFO_GPA), &mut raw).unwrap();
    let bi = hvt::BootInfo::from_bytes(&raw);
    assert_eq!(bi.mem_size, memory);
    assert_eq!(bi.kernel_end, MIB + 0x5000);
    assert_eq!(bi.cpu_cycle_freq, 100_000_000);
    assert_eq!(bi.mft, 0x1_0038);
    assert_eq!(bi.cmdline, 0x1_0038 + 8 + 104);
    let mut line = [0u8; 12];
    GuestRead::read(&mem, Gpa(bi.cmdline), &mut line).unwrap();
    assert_eq!(&line, b"Hello_Solo5\0");
    // The segments: text and data from the file, the rest zero.
    assert_eq!(mem.read_u64(Gpa(MIB)).unwrap(), 0x9090_9090_9090_9090);
    assert_eq!(
        mem.read_u64(Gpa(MIB + 0x2000)).unwrap(),
        0x0707_0707_0707_0707
    );
    assert_eq!(mem.read_u64(Gpa(MIB + 0x2010)).unwrap(), 0);
    assert_eq!((bi.host_features, bi.net_ring), (0, 0), "no ring");
}

#[test]
fn a_shared_ring_ends_the_guests_memory_and_is_offered_in_the_boot_info() {
    let f = good();
    let memory = 4 * MIB;
    let ring = crate::hvt::ring::place(memory).unwrap();
    let img = image::check(&f, memory).unwrap();
    let mut backing = vec![0u8; memory as usize];
    let mut mem = GuestMemory::empty(memory);
    mem.add_private(0, &mut backing).unwrap();
    let e = boot::build(
        &mut mem,
        &f,
        &img,
        memory,
        Some(ring),
        "",
        1,
        |_| false,
        (&[], &Attached::new()),
        (&[], &NetHandles::new()),
    )
    .unwrap();
    assert_eq!(e.rsp, ring - 8, "the stack ends below the ring");
    let mut raw = [0u8; hvt::BOOT_INFO_SIZE as usize];
    GuestRead::read(&mem, Gpa(hvt::BOOT_INFO_GPA), &mut raw).unwrap();
    let bi = hvt::BootInfo::from_bytes(&raw);
    assert_eq!(bi.mem_size, ring);
    assert_eq!(bi.host_features, hvt::FEATURE_RING_IO);
    assert_eq!(bi.net_ring, ring);
    // The guest's tables still map the ring (the last 2 MiB page).
    let q = |gpa: u64| mem.read_u64(Gpa(gpa)).unwrap();
    assert_eq!(q(hvt::PD_GPA + 8), (2 * MIB) | 0x83);
}

#[test]
fn unattached_devices_and_long_command_lines_are_refused() {
    let f = elf(
        MIB,
        &[
            text(),
            abi_note(1, 2),
            mft_note(&[("service0", hvt::MFT_DEV_NET_BASIC)]),
        ],
    );
    let f: &'static [u8] = f.leak();
    let img = image::check(f, 4 * MIB).unwrap();
    let e = boot::attach(&img, &[], &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Device 'service0' of type NET_BASIC declared but not attached (bind it with `net = N` and `devices = { service0 = \"net:N\" }`)"
    );
    let e = boot::attach(&img, &[binding("service0", 4096)], &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Device 'service0' is NET_BASIC in the Solo5 manifest, but the VM binds a block device to it"
    );
    let mut backing = vec![0u8; 4 * MIB as usize];
    let mut mem = GuestMemory::empty(4 * MIB);
    mem.add_private(0, &mut backing).unwrap();
    let f = good();
    let f: &'static [u8] = f.leak();
    let img = image::check(f, 4 * MIB).unwrap();
    let e = boot::attach(&img, &[binding("storage", 4096)], &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Resource not declared in manifest: 'storage'"
    );
    let long = "x".repeat(8192);
    assert_eq!(
        boot::build(
            &mut mem,
            f,
            &img,
            4 * MIB,
            None,
            &long,
            1,
            |_| false,
            (&[], &Attached::new()),
            (&[], &NetHandles::new())
        ),
        Err(BuildError::Image(HvtImageError::Cmdline))
    );
}

fn binding(device: &'static str, capacity: u64) -> BlockBinding<'static> {
    BlockBinding {
        device,
        capacity,
        block_size: 512,
    }
}

#[test]
fn block_devices_are_attached_in_the_guests_copy_of_its_manifest() {
    let f = elf(
        MIB,
        &[
            text(),
            abi_note(1, 2),
            mft_note(&[
                ("disk", hvt::MFT_DEV_BLOCK_BASIC),
                ("logs", hvt::MFT_DEV_BLOCK_BASIC),
            ]),
        ],
    );
    let f: &'static [u8] = f.leak();
    let img = image::check(f, 4 * MIB).unwrap();
    let e = boot::attach(&img, &[binding("disk", 8192)], &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Device 'logs' of type BLOCK_BASIC declared but not attached (bind it with `devices = { logs = \"block:NAME\" }`)"
    );
    let bindings = [binding("logs", 4096), binding("disk", 8192)];
    let (attached, _) = boot::attach(&img, &bindings, &[]).unwrap();
    assert_eq!(attached.as_slice(), &[(2, 0), (1, 1)]);
    let mut backing = vec![0u8; 4 * MIB as usize];
    let mut mem = GuestMemory::empty(4 * MIB);
    mem.add_private(0, &mut backing).unwrap();
    boot::build(
        &mut mem,
        f,
        &img,
        4 * MIB,
        None,
        "",
        1,
        |_| false,
        (&bindings, &attached),
        (&[], &NetHandles::new()),
    )
    .unwrap();
    let mft = hvt::BOOT_INFO_GPA + hvt::BOOT_INFO_SIZE;
    let entry = |i: u64| mft + hvt::MFT_HEADER as u64 + i * hvt::MFT_ENTRY_SIZE as u64;
    for (handle, capacity) in [(1, 8192), (2, 4096)] {
        let e = entry(handle);
        assert_eq!(
            mem.read_u64(Gpa(e + hvt::MFT_BLOCK_CAPACITY as u64))
                .unwrap(),
            capacity
        );
        assert_eq!(
            mem.read_u16(Gpa(e + hvt::MFT_BLOCK_SIZE as u64)).unwrap(),
            512
        );
        let mut attached = [0u8];
        GuestRead::read(&mem, Gpa(e + hvt::MFT_ATTACHED as u64), &mut attached).unwrap();
        assert_eq!(attached, [1]);
    }
}

const MEM: usize = 64 * 1024;

fn out(port: u16) -> PortAccess {
    PortAccess {
        port,
        size: 4,
        is_in: false,
        string: false,
    }
}

fn port(c: u16) -> u16 {
    hvt::HYPERCALL_PIO_BASE + c
}

fn call(backing: &mut [u8], io: PortAccess, eax: u32) -> (Result<HvtDone, HvtCallError>, Vec<u8>) {
    let mut env = HvtEnv {
        ram: over_vec(backing),
        wall_ns: 1_700_000_000_000_000_000,
        tsc_hz: 100_000_000,
        memory: backing.len() as u64,
        nets: Default::default(),
        vm: 0,
        disks: &NoDisks,
        retrying: 0,
        ring: None,
    };
    let mut printed = Vec::new();
    let r = call::handle(io, eax, &mut env, |b| printed.extend_from_slice(b));
    (r, printed)
}

fn put(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn hypercalls_do_what_the_abi_says() {
    let mut b = vec![0u8; MEM];
    b[0x2000..0x2005].copy_from_slice(b"hello");
    put(&mut b, 0x1000, 0x2000);
    put(&mut b, 0x1008, 5);
    let (r, printed) = call(&mut b, out(port(hvt::HC_PUTS)), 0x1000);
    assert_eq!(
        (r, printed.as_slice()),
        (Ok(HvtDone::Advance), &b"hello"[..])
    );

    let (r, _) = call(&mut b, out(port(hvt::HC_WALLTIME)), 0x3000);
    assert_eq!(r, Ok(HvtDone::Advance));
    assert_eq!(
        b[0x3000..0x3008],
        1_700_000_000_000_000_000u64.to_le_bytes()
    );

    put(&mut b, 0x4000, 2_000_000); // 2 ms
    put(&mut b, 0x4008, u64::MAX);
    b[0x4010] = 9;
    let (r, _) = call(&mut b, out(port(hvt::HC_POLL)), 0x4000);
    assert_eq!(r, Ok(HvtDone::Retry(200_000)));
    assert_eq!(b[0x4008..0x4014], [0u8; 12], "nothing ready, ret 0");

    put(&mut b, 0x5000, 0);
    b[0x5008..0x500c].copy_from_slice(&255i32.to_le_bytes());
    assert_eq!(
        call(&mut b, out(port(hvt::HC_HALT)), 0x5000).0,
        Ok(HvtDone::Exit(255))
    );
    // A cookie must lie in memory.
    put(&mut b, 0x5000, (MEM - 100) as u64);
    assert_eq!(
        call(&mut b, out(port(hvt::HC_HALT)), 0x5000).0,
        Err(HvtCallError::Buffer {
            call: Hypercall::Halt,
            gpa: (MEM - 100) as u64,
            len: 512
        })
    );
}

#[test]
fn bad_calls_stop_the_guest_by_name() {
    let mut b = vec![0u8; MEM];
    let end = MEM as u64;
    // A struct that ends exactly at the end of memory is refused, as the
    // tender refuses it.
    assert_eq!(
        call(&mut b, out(port(hvt::HC_WALLTIME)), (end - 8) as u32).0,
        Err(HvtCallError::Buffer {
            call: Hypercall::Walltime,
            gpa: end - 8,
            len: 8
        })
    );
    assert!(
        call(&mut b, out(port(hvt::HC_WALLTIME)), (end - 9) as u32)
            .0
            .is_ok()
    );
    // A puts buffer outside memory.
    put(&mut b, 0x1000, end - 4);
    put(&mut b, 0x1008, 16);
    assert_eq!(
        call(&mut b, out(port(hvt::HC_PUTS)), 0x1000).0,
        Err(HvtCallError::Buffer {
            call: Hypercall::Puts,
            gpa: end - 4,
            len: 16
        })
    );
    for (io, want) in [
        (
            out(0x60),
            HvtCallError::NotACall {
                port: 0x60,
                write: true,
            },
        ),
        (
            out(0x500),
            HvtCallError::NotACall {
                port: 0x500,
                write: true,
            },
        ),
        (
            PortAccess {
                size: 2,
                ..out(port(hvt::HC_PUTS))
            },
            HvtCallError::Access(PortAccess {
                size: 2,
                ..out(port(hvt::HC_PUTS))
            }),
        ),
        (
            PortAccess {
                is_in: true,
                ..out(port(hvt::HC_PUTS))
            },
            HvtCallError::Access(PortAccess {
                is_in: true,
                ..out(port(hvt::HC_PUTS))
            }),
        ),
        (
            out(port(hvt::HC_NET_WRITE)),
            HvtCallError::NoDevice {
                call: Hypercall::NetWrite,
            },
        ),
        (
            out(port(hvt::HC_BLOCK_READ)),
            HvtCallError::NoDevice {
                call: Hypercall::BlockRead,
            },
        ),
    ] {
        assert_eq!(call(&mut b, io, 0x1000).0, Err(want));
    }
    assert_eq!(
        std::format!(
            "{}",
            HvtCallError::NoDevice {
                call: Hypercall::NetWrite
            }
        ),
        "Invalid guest hypercall: net_write (no such device is attached)"
    );
}

proptest! {
    #[test]
    fn any_image_bytes_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..16), cut in any::<usize>()) {
        let mut f = good();
        for (at, v) in edits {
            let i = at % f.len();
            f[i] = v;
        }
        f.truncate(cut % (f.len() + 1));
        let _ = image::is_hvt(&f);
        let _ = image::check(&f, 4 * MIB);
    }

    #[test]
    fn any_call_never_panics(p in 0x4f0u16..0x520, size in 0u8..9, is_in in any::<bool>(), eax in any::<u32>(), words in proptest::collection::vec(any::<u64>(), 8)) {
        let mut b = vec![0u8; MEM];
        let at = (eax as usize) % (MEM - 64);
        for (i, w) in words.iter().enumerate() {
            put(&mut b, at / 8 * 8 + (i * 8) % 64, *w);
        }
        let io = PortAccess { port: p, size, is_in, string: false };
        let _ = call(&mut b, io, eax);
    }
}

/// Stop reasons travel through every exit's outcome: hvt errors must not
/// make them larger than they were before hvt guests (40 bytes).
#[test]
fn hvt_errors_keep_stop_reasons_small() {
    assert!(core::mem::size_of::<crate::vcpu::stop::StopReason>() <= 40);
    assert!(core::mem::size_of::<crate::dispatch::Outcome>() <= 40);
}

#[test]
fn a_huge_puts_reads_no_more_than_a_whole_runs_console() {
    // Guest memory larger than the cap, and a puts of all of it.
    let mut b = vec![b'x'; (call::PUTS_MAX as usize) * 2];
    let len = b.len() as u64 - 0x1000;
    put(&mut b, 0, 0x800);
    put(&mut b, 8, len - 0x800);
    let (r, printed) = call(&mut b, out(port(hvt::HC_PUTS)), 0);
    assert_eq!(r, Ok(HvtDone::Advance));
    assert_eq!(printed.len() as u64, call::PUTS_MAX);
}

/// A disk of `blocks` blocks of 512 bytes, each byte its offset's low
/// byte, kept for the rest of the test run.
fn leaked_disk(blocks: u64) -> &'static SharedDisk {
    let image: &'static mut [u8] = (0..blocks * 512)
        .map(|i| i as u8)
        .collect::<Vec<_>>()
        .leak();
    let map: &'static mut [u64] = vec![0u64; 1].leak();
    let store = over_vec(image);
    let disk = crate::block::Disk::new(store, blocks * 512, 512, map).unwrap();
    Box::leak(Box::new(spin::Mutex::new(disk)))
}

/// A block call's argument struct at 0x1000: handle, offset, data, len.
fn block_args(b: &mut [u8], handle: u64, offset: u64, data: u64, len: u64) {
    put(b, 0x1000, handle);
    put(b, 0x1008, offset);
    put(b, 0x1010, data);
    put(b, 0x1018, len);
    put(b, 0x1020, 0xffff_ffff);
}

fn ret(b: &[u8]) -> i32 {
    i32::from_le_bytes(b[0x1020..0x1024].try_into().unwrap())
}

/// VM 7's disks by handle, for the tests.
struct TestDisks(Vec<(u64, &'static SharedDisk)>);

impl HvtDisks for TestDisks {
    fn disk(&self, vm: u32, handle: u64) -> Option<&SharedDisk> {
        self.0
            .iter()
            .find(|&&(h, _)| vm == 7 && h == handle)
            .map(|&(_, d)| d)
    }
    fn any(&self, vm: u32) -> bool {
        vm == 7 && !self.0.is_empty()
    }
}

fn block_call(
    b: &mut [u8],
    call_no: u16,
    disks: &'static dyn HvtDisks,
) -> Result<HvtDone, HvtCallError> {
    let mut env = HvtEnv {
        memory: b.len() as u64,
        nets: Default::default(),
        ram: over_vec(b),
        wall_ns: 0,
        tsc_hz: 1,
        vm: 7,
        disks,
        retrying: 0,
        ring: None,
    };
    call::handle(out(port(call_no)), 0x1000, &mut env, |_| {})
}

#[test]
fn block_calls_move_whole_blocks_and_refuse_the_rest() {
    let disk = leaked_disk(8);
    let blocks: &'static TestDisks = Box::leak(Box::new(TestDisks(vec![(2, disk)])));
    let mut b = vec![0u8; MEM];
    // Write block 3 from 0x4000, read it back into 0x6000.
    b[0x4000..0x4200].fill(0xee);
    block_args(&mut b, 2, 1536, 0x4000, 512);
    assert_eq!(
        block_call(&mut b, hvt::HC_BLOCK_WRITE, blocks),
        Ok(HvtDone::Advance)
    );
    assert_eq!(ret(&b), hvt::R_OK);
    block_args(&mut b, 2, 1024, 0x6000, 1024);
    assert_eq!(
        block_call(&mut b, hvt::HC_BLOCK_READ, blocks),
        Ok(HvtDone::Advance)
    );
    assert_eq!(ret(&b), hvt::R_OK);
    assert_eq!(
        b[0x6000..0x6200],
        (1024u32..1536).map(|i| i as u8).collect::<Vec<_>>()[..]
    );
    assert!(b[0x6200..0x6400].iter().all(|&x| x == 0xee));
    // Refused with EINVAL, nothing moved: another handle, not whole
    // blocks, past the end.
    for (handle, offset, len) in [
        (1, 0, 512),
        (0, 0, 512),
        (2, 1, 512),
        (2, 0, 100),
        (2, 4096, 512),
    ] {
        b[0x6000..0x6400].fill(0x11);
        block_args(&mut b, handle, offset, 0x6000, len);
        assert_eq!(
            block_call(&mut b, hvt::HC_BLOCK_READ, blocks),
            Ok(HvtDone::Advance)
        );
        assert_eq!(ret(&b), hvt::R_EINVAL, "{handle} {offset} {len}");
        assert!(b[0x6000..0x6400].iter().all(|&x| x == 0x11));
    }
    // A buffer outside memory stops the guest by name.
    block_args(&mut b, 2, 0, MEM as u64 - 256, 512);
    assert_eq!(
        block_call(&mut b, hvt::HC_BLOCK_WRITE, blocks),
        Err(HvtCallError::Buffer {
            call: Hypercall::BlockWrite,
            gpa: MEM as u64 - 256,
            len: 512
        })
    );
    // The argument struct itself must be inside memory.
    let mut env = HvtEnv {
        memory: b.len() as u64,
        nets: Default::default(),
        ram: over_vec(&mut b),
        wall_ns: 0,
        tsc_hz: 1,
        vm: 7,
        disks: blocks,
        retrying: 0,
        ring: None,
    };
    let r = call::handle(
        out(port(hvt::HC_BLOCK_READ)),
        MEM as u32 - 16,
        &mut env,
        |_| {},
    );
    assert!(
        matches!(r, Err(HvtCallError::Buffer { len: 40, .. })),
        "{r:?}"
    );
    let d = disk.lock();
    assert_eq!((d.flow.reads, d.flow.writes, d.flow.errors), (1, 1, 3));
    assert_eq!(d.written_runs().collect::<Vec<_>>(), vec![(1536, 512)]);
    drop(d);
    // A VM with no block device: the call itself is invalid.
    block_args(&mut b, 1, 0, 0x6000, 512);
    let e = block_call(&mut b, hvt::HC_BLOCK_READ, &NoDisks).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Invalid guest hypercall: block_read (no such device is attached)"
    );
}

#[test]
fn net_devices_are_attached_with_their_mac_and_mtu() {
    let f = elf(
        MIB,
        &[
            text(),
            abi_note(1, 2),
            mft_note(&[
                ("service0", hvt::MFT_DEV_NET_BASIC),
                ("disk", hvt::MFT_DEV_BLOCK_BASIC),
                ("service1", hvt::MFT_DEV_NET_BASIC),
            ]),
        ],
    );
    let f: &'static [u8] = f.leak();
    let img = image::check(f, 4 * MIB).unwrap();
    let net = |device, last| NetBinding {
        device,
        mac: [2, 0, 0, 0, 0, last],
    };
    let blocks = [binding("disk", 4096)];
    // A net port bound to a block device's name, and the other way round.
    let e = boot::attach(&img, &blocks, &[net("disk", 1)]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Device 'disk' is BLOCK_BASIC in the Solo5 manifest, but the VM binds a net port to it"
    );
    let e = boot::attach(&img, &[binding("service0", 512)], &[]).unwrap_err();
    assert_eq!(
        e,
        HvtImageError::WrongKind {
            name: "service0",
            kind: hvt::MFT_DEV_NET_BASIC
        }
    );
    let e = boot::attach(&img, &blocks, &[net("service9", 1)]).unwrap_err();
    assert_eq!(e, HvtImageError::Undeclared { name: "service9" });
    let e = boot::attach(&img, &blocks, &[net("service1", 1)]).unwrap_err();
    assert_eq!(
        e,
        HvtImageError::Unattached {
            name: "service0",
            kind: hvt::MFT_DEV_NET_BASIC
        }
    );
    let nets = [net("service1", 7), net("service0", 5)];
    let (attached, handles) = boot::attach(&img, &blocks, &nets).unwrap();
    assert_eq!(attached.as_slice(), &[(2, 0)]);
    assert_eq!(handles.as_slice(), &[3, 1]);
    let mut backing = vec![0u8; 4 * MIB as usize];
    let mut mem = GuestMemory::empty(4 * MIB);
    mem.add_private(0, &mut backing).unwrap();
    let e = boot::build(
        &mut mem,
        f,
        &img,
        2 * MIB,
        None,
        "",
        1,
        |_| false,
        (&blocks, &attached),
        (&nets, &handles),
    )
    .unwrap();
    // The guest sees the memory it was given, its stack below its top.
    assert_eq!(e.rsp, 2 * MIB - 8);
    let mut info = [0u8; hvt::BOOT_INFO_SIZE as usize];
    GuestRead::read(&mem, Gpa(hvt::BOOT_INFO_GPA), &mut info).unwrap();
    assert_eq!(hvt::BootInfo::from_bytes(&info).mem_size, 2 * MIB);
    let mft = hvt::BOOT_INFO_GPA + hvt::BOOT_INFO_SIZE;
    let entry = |i: u64| mft + hvt::MFT_HEADER as u64 + i * hvt::MFT_ENTRY_SIZE as u64;
    for (handle, last) in [(1, 5), (3, 7)] {
        let e = entry(handle);
        let mut mac = [0u8; hvt::MAC_LEN];
        GuestRead::read(&mem, Gpa(e + hvt::MFT_NET_MAC as u64), &mut mac).unwrap();
        assert_eq!(mac, [2, 0, 0, 0, 0, last]);
        assert_eq!(
            mem.read_u16(Gpa(e + hvt::MFT_NET_MTU as u64)).unwrap(),
            crate::hvt::net::MTU
        );
        let mut attached = [0u8];
        GuestRead::read(&mem, Gpa(e + hvt::MFT_ATTACHED as u64), &mut attached).unwrap();
        assert_eq!(attached, [1]);
    }
}
