//! Packet hook tests: every verdict counted once per run, faults counted
//! and dropped, maps reported as records with their nonzero entries.

#![forbid(unsafe_code)]

use super::*;
use crate::hooks::leaked_memory;
use crate::hooks::maps::bytes_needed;
use std::vec;
use std::vec::Vec;
use vmm_abi::hook::MapKind;
use vmm_abi::hook::asm::*;
use vmm_abi::hook::context::{XDP_DATA, XDP_DATA_END};
use vmm_abi::hook::insn::*;
use vmm_abi::manifest::LinkDir;

fn clock() -> u64 {
    42
}

/// Returns the frame's first byte as its verdict, except 9 (which makes
/// it load from address 0: a fault) and 1 (a drop, counted in array map
/// 0 at index 0); an empty frame passes.
pub(crate) fn first_byte_verdict() -> Vec<Insn> {
    let mut p = vec![
        ldx(BPF_W, 2, 1, XDP_DATA as i16),
        ldx(BPF_W, 3, 1, XDP_DATA_END as i16),
        mov64_imm(0, XDP_PASS as i32),
        mov64_reg(4, 2),
        alu64_imm(BPF_ADD, 4, 1),
        jmp_reg(BPF_JGT, 4, 3, 15), // -> exit (21)
        ldx(BPF_B, 6, 2, 0),
        jmp_imm(BPF_JNE, 6, 9, 2),
        mov64_imm(5, 0),
        ldx(BPF_B, 0, 5, 0),       // fault
        jmp_imm(BPF_JNE, 6, 1, 9), // -> mov r0, r6 (20)
        st(BPF_W, 10, -4, 0),
    ];
    p.extend(ld_map(1, 0));
    p.extend([
        mov64_reg(2, 10),
        alu64_imm(BPF_ADD, 2, -4),
        call(BPF_FUNC_MAP_LOOKUP_ELEM),
        jmp_imm(BPF_JEQ, 0, 0, 2),
        mov64_imm(1, 1),
        atomic_add(BPF_DW, 0, 1, 0),
        mov64_reg(0, 6), // 20
        exit(),          // 21
    ]);
    p
}

pub(crate) const COUNTER: MapDef = MapDef {
    kind: MapKind::Array,
    key_size: 4,
    value_size: 8,
    max_entries: 4,
};

/// A hook of `insns` on link 0's a->b direction with the counter map,
/// leaked for the test.
pub(crate) fn hook(insns: Vec<Insn>) -> PacketHook<'static> {
    hook_at(LINK0, insns)
}

/// The same hook on NIC 0's queue in direction `dir`.
pub(crate) fn nic_hook(dir: vmm_abi::manifest::NicDir, insns: Vec<Insn>) -> PacketHook<'static> {
    hook_at(HookAttach::Nic { nic: 0, dir }, insns)
}

fn hook_at(attach: HookAttach, insns: Vec<Insn>) -> PacketHook<'static> {
    let defs = [COUNTER];
    let arena = vec![0u8; bytes_needed(&defs, 1).unwrap()].leak();
    let insns = insns.leak();
    let mem = leaked_memory(arena, insns.len());
    PacketHook::new("h", attach, 0, insns, &defs, mem, clock).unwrap()
}

/// Link 0's a->b direction.
const LINK0: HookAttach = HookAttach::Link {
    link: 0,
    dir: LinkDir::AToB,
};

fn judge(h: &PacketHook<'_>, frame: &[u8]) -> Verdict {
    let mut run = h.lock();
    run.mem.frame[..frame.len()].copy_from_slice(frame);
    run.run(frame.len())
}

#[test]
fn every_verdict_is_counted_once() {
    let h = hook(first_byte_verdict());
    let verdicts: Vec<Verdict> = [2u8, 1, 0, 3, 4, 7, 9, 2, 1]
        .iter()
        .map(|&b| judge(&h, &[b, 0xaa, 0xbb]))
        .collect();
    use Verdict::{Drop, Pass};
    assert_eq!(
        verdicts,
        [Pass, Drop, Drop, Drop, Drop, Drop, Drop, Pass, Drop]
    );
    assert_eq!(judge(&h, &[]), Pass, "an empty frame passes");
    let f = h.flow();
    assert_eq!(
        (
            f.runs, f.pass, f.drop, f.aborted, f.faults, f.tx, f.redirect
        ),
        (10, 3, 2, 2, 1, 1, 1)
    );
    assert_eq!(f.runs, f.pass + f.dropped());
    assert!(f.insns > 10 * 5, "{f:?}");
}

/// Drops frames shorter than an Ethernet header and IPv6 frames (the
/// first byte of the EtherType 0x86), passes the rest: the benchmarks'
/// ten-instruction hook (`images/hooks/pass_ipv4.bpf.c`), written the way
/// clang writes it (the context read through `r1`, which nothing writes).
pub(crate) fn pass_ipv4() -> Vec<Insn> {
    vec![
        ldx(BPF_W, 2, 1, XDP_DATA as i16),
        ldx(BPF_W, 3, 1, XDP_DATA_END as i16),
        mov64_imm(0, XDP_DROP as i32),
        mov64_reg(4, 2),
        alu64_imm(BPF_ADD, 4, 14),
        jmp_reg(BPF_JGT, 4, 3, 3),
        ldx(BPF_B, 2, 2, 12),
        jmp_imm(BPF_JEQ, 2, 0x86, 1),
        mov64_imm(0, XDP_PASS as i32),
        exit(),
    ]
}

/// Returns XDP_TX for frames starting with 1, XDP_REDIRECT to the port
/// in byte 1 for frames starting with 2, XDP_PASS for the rest.
pub(crate) fn bouncer() -> Vec<Insn> {
    vec![
        ldx(BPF_W, 2, 1, XDP_DATA as i16),
        ldx(BPF_W, 3, 1, XDP_DATA_END as i16),
        mov64_imm(0, XDP_PASS as i32),
        mov64_reg(4, 2),
        alu64_imm(BPF_ADD, 4, 2),
        jmp_reg(BPF_JGT, 4, 3, 9), // -> exit
        ldx(BPF_B, 6, 2, 0),
        mov64_imm(0, XDP_TX as i32),
        jmp_imm(BPF_JEQ, 6, 1, 6), // -> exit
        mov64_imm(0, XDP_PASS as i32),
        jmp_imm(BPF_JNE, 6, 2, 4), // -> exit
        ldx(BPF_B, 1, 2, 1),
        mov64_imm(2, 0),
        call(BPF_FUNC_REDIRECT),
        ja(0),
        exit(),
    ]
}

#[test]
fn frames_sent_back_wait_in_the_hooks_queue_and_the_rest_are_unsent() {
    let h = hook(bouncer());
    h.set_ports(3, 4);
    use Verdict::{Drop, Pass};
    // Back to the sender; redirected to the receiver (a pass), to the
    // sender (back), to another port (on, once the poller lets go of the
    // link's ports).
    assert_eq!(judge(&h, &[1, 0, 0xaa]), Drop);
    assert_eq!(judge(&h, &[2, 4, 0xbb]), Pass);
    assert_eq!(judge(&h, &[2, 3, 0xcc]), Drop);
    assert_eq!(judge(&h, &[2, 9, 0xdd]), Drop);
    assert!(h.lock().sends_back());
    // The queue holds BACK_SLOTS frames; later ones are unsent.
    for i in 0..BACK_SLOTS as u8 {
        assert_eq!(judge(&h, &[1, i, 0xee]), Drop);
    }
    let f = h.flow();
    assert_eq!((f.tx, f.redirect, f.sent, f.unsent), (5, 3, 1, 3));
    let mut run = h.lock();
    let drain = |src: &mut BackSource<'_, ()>| {
        let mut got = Vec::new();
        while let Some(len) = src.take(&mut ()).unwrap() {
            src.read(&(), len, |b| got.push(b.to_vec())).unwrap();
            src.complete(&()).unwrap();
        }
        got
    };
    // The sender's frames up to the one going on; then that one alone;
    // then the sender's again.
    assert_eq!(
        drain(&mut run.back_source()),
        [vec![1, 0, 0xaa], vec![2, 3, 0xcc]]
    );
    assert_eq!(run.away(), Some(9));
    assert!(drain(&mut run.away_source(8)).is_empty());
    assert_eq!(drain(&mut run.away_source(9)), [vec![2, 9, 0xdd]]);
    assert_eq!(run.away(), None);
    assert_eq!(drain(&mut run.back_source()), [vec![1, 0, 0xee]]);
    assert!(!run.sends_back());
}

#[test]
fn a_link_hook_without_its_ports_sends_nothing_back() {
    let h = hook(bouncer());
    h.set_ingress(3);
    assert_eq!(judge(&h, &[1, 0, 0]), Verdict::Drop);
    assert_eq!(judge(&h, &[2, 3, 0]), Verdict::Drop);
    let f = h.flow();
    assert_eq!((f.tx, f.redirect, f.sent, f.unsent), (1, 1, 0, 2));
    assert!(!h.lock().sends_back());
}

#[test]
fn the_report_lists_the_counters_and_the_nonzero_entries() {
    let h = hook(first_byte_verdict());
    for _ in 0..5 {
        judge(&h, &[1]);
    }
    judge(&h, &[2]);
    // A drop runs 19 instructions (lookup, add included), a pass 11.
    let mut lines = Vec::new();
    h.report(3, |r| lines.push(std::format!("{r}")));
    assert_eq!(
        lines,
        [
            "@corral hook hook=3 name=h link=0 dir=a->b engine=interpreted flow_runs=6 flow_pass=1 flow_drop=5 flow_aborted=0 flow_faults=0 flow_tx=0 flow_redirect=0 flow_sent=0 flow_unsent=0 flow_insns=106",
            "@corral hook-map hook=3 map=0 kind=array entries=4 nonzero=1 shown=1",
            "@corral hook-entry hook=3 map=0 core=0 key=00000000 value=0500000000000000",
        ]
    );
}

#[test]
fn a_program_the_verifier_refuses_is_not_built() {
    let defs = [COUNTER];
    let arena = vec![0u8; bytes_needed(&defs, 1).unwrap()].leak();
    let looped = vec![mov64_imm(0, 2), ja(-2), exit()].leak();
    let e = PacketHook::new("h", LINK0, 0, looped, &defs, leaked_memory(arena, 3), clock);
    assert!(matches!(e, Err(BuildError::Verify(_))));
    let small = vec![0u8; 8].leak();
    let ok = vec![mov64_imm(0, 2), exit()].leak();
    let e = PacketHook::new("h", LINK0, 0, ok, &defs, leaked_memory(small, 2), clock);
    assert!(matches!(e, Err(BuildError::Maps(_))));
}

#[test]
fn only_programs_that_pass_or_drop_judge_frames_in_place() {
    use crate::hooks::jit::tests::emu_code;
    // Writes the frame's first byte, then passes it.
    let scribble = vec![
        ldx(BPF_W, 2, 1, XDP_DATA as i16),
        st(BPF_B, 2, 0, 0x5a),
        mov64_imm(0, XDP_PASS as i32),
        exit(),
    ];
    // Answers from a register: anything, `XDP_TX` included.
    let from_frame = vec![
        ldx(BPF_W, 2, 1, XDP_DATA as i16),
        ldx(BPF_W, 3, 1, XDP_DATA_END as i16),
        mov64_imm(0, XDP_DROP as i32),
        mov64_reg(4, 2),
        alu64_imm(BPF_ADD, 4, 1),
        jmp_reg(BPF_JGT, 4, 3, 1),
        ldx(BPF_B, 0, 2, 0),
        exit(),
    ];
    let tx = vec![mov64_imm(0, XDP_TX as i32), exit()];
    // Only judges, but with an atomic add (on its stack): compiled code
    // judges in place, the interpreter (which needs the bytes of its own
    // for it) does not.
    let adds = vec![
        st(BPF_DW, 10, -8, 0),
        mov64_imm(2, 1),
        atomic_add(BPF_DW, 10, 2, -8),
        mov64_imm(0, XDP_PASS as i32),
        exit(),
    ];
    // (program, compiled code judges in place, the interpreter does)
    for (insns, in_place, interpreted) in [
        (pass_ipv4(), true, true),
        (scribble, true, true),
        (vec![mov64_imm(0, XDP_ABORTED as i32), exit()], true, true),
        (adds, true, false),
        (tx, false, false),
        (from_frame, false, false),
        // A helper call writes r0.
        (first_byte_verdict(), false, false),
        (bouncer(), false, false),
    ] {
        let h = hook(insns.clone());
        assert_eq!(h.lock().judges_in_place(), interpreted, "{insns:?}");
        assert!(h.compile_with(|p| Some(emu_code(p))));
        assert_eq!(h.lock().judges_in_place(), in_place, "{insns:?}");
    }
}
