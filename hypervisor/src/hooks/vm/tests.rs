//! Interpreter tests: an XDP-style filter over real frames with an array counter, hash map update/lookup/delete, a restart policy, helpers, and every fault (out-of-region accesses, stale map values, a read-only context, malformed programs the verifier would have refused).

#![forbid(unsafe_code)]

use super::*;
use crate::hooks::Verified;
use crate::hooks::layout::MAP_HANDLE_BASE;
use crate::hooks::layout::{PACKET_BASE, xdp_md};
use crate::hooks::maps::bytes_needed;
use std::vec;
use std::vec::Vec;
use vmm_abi::hook::HookKind;
use vmm_abi::hook::asm::*;
use vmm_abi::hook::context::*;
use vmm_abi::hook::map::{EEXIST, MapDef, MapKind, neg_errno};

pub(crate) struct TestEnv {
    pub ns: u64,
    pub core: u32,
}

impl HookEnv for TestEnv {
    fn ktime_ns(&self) -> u64 {
        self.ns
    }
    fn core(&self) -> u32 {
        self.core
    }
}

pub(crate) const ENV: TestEnv = TestEnv { ns: 1234, core: 0 };

/// Decodes `p` (verified or [`unchecked`]) and runs it with a fresh stack.
pub(super) fn run(
    p: &Verified<'_>,
    ctx: &[u8],
    packet: Option<&mut [u8]>,
    maps: &mut MapSet<'_>,
    env: &impl HookEnv,
) -> Outcome {
    let mut ops = vec![Op::default(); p.insns().len()];
    let prog = Program::new(*p, &mut ops).expect("room for every slot");
    super::run(&prog, ctx, packet, maps, env)
}

pub(crate) fn prog(parts: &[&[Insn]]) -> Vec<Insn> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

/// A map set over a leaked arena (tests only).
pub(crate) fn maps_for(defs: &[MapDef], cores: u32) -> MapSet<'static> {
    let arena = vec![0u8; bytes_needed(defs, cores).unwrap()].leak();
    MapSet::new(defs, cores, arena).unwrap()
}

/// A program that did not go through the verifier, to test the
/// interpreter's own checks.
pub(crate) fn unchecked(insns: &[Insn], kind: HookKind) -> Verified<'_> {
    Verified {
        insns,
        info: vmm_abi::hook::ProgInfo {
            kind,
            len: insns.len(),
            reachable: insns.len(),
            maps_used: 0,
            helpers_used: 0,
            stack_depth: 0,
        },
    }
}

fn ret(o: Outcome) -> u64 {
    match o {
        Outcome::Returned { ret, .. } => ret,
        Outcome::Aborted(f) => panic!("aborted: {f}"),
    }
}

fn fault(o: Outcome) -> Fault {
    match o {
        Outcome::Aborted(f) => f,
        o => panic!("not aborted: {o:?}"),
    }
}

// ------------------------------------------------------------ XDP filter

const COUNTER: MapDef = MapDef {
    kind: MapKind::Array,
    key_size: 4,
    value_size: 8,
    max_entries: 1,
};

/// Drops UDP to port 9 (Ethernet, IPv4 without options) and counts the
/// drops in array map 0 with an atomic add; passes everything else.
fn udp_filter() -> Vec<Insn> {
    let pass = 24;
    let to_pass = |at: usize| (pass - at - 1) as i16;
    prog(&[
        &[
            ldx(BPF_W, 2, 1, XDP_DATA as i16),
            ldx(BPF_W, 3, 1, XDP_DATA_END as i16),
            mov64_imm(0, XDP_PASS as i32),
            mov64_reg(4, 2),
            alu64_imm(BPF_ADD, 4, 38),
            jmp_reg(BPF_JGT, 4, 3, to_pass(5)),
            ldx(BPF_H, 4, 2, 12),
            jmp_imm(BPF_JNE, 4, 0x0008, to_pass(7)), // htons(ETH_P_IP)
            ldx(BPF_B, 4, 2, 23),
            jmp_imm(BPF_JNE, 4, 17, to_pass(9)), // IPPROTO_UDP
            ldx(BPF_H, 4, 2, 36),
            be(4, 16),
            jmp_imm(BPF_JNE, 4, 9, to_pass(12)),
            st(BPF_W, 10, -4, 0),
        ],
        &ld_map(1, 0),
        &[
            mov64_reg(2, 10),
            alu64_imm(BPF_ADD, 2, -4),
            call(BPF_FUNC_MAP_LOOKUP_ELEM),
            jmp_imm(BPF_JEQ, 0, 0, 2),
            mov64_imm(1, 1),
            atomic_add(BPF_DW, 0, 1, 0),
            mov64_imm(0, XDP_DROP as i32),
            exit(),
            exit(), // 24: pass
        ],
    ])
}

fn frame(proto: u8, dst_port: u16, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(42)];
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[23] = proto;
    f[36..38].copy_from_slice(&dst_port.to_be_bytes());
    f.truncate(len);
    f
}

fn filter(p: &Verified<'_>, maps: &mut MapSet<'_>, mut f: Vec<u8>) -> Outcome {
    let ctx = xdp_md(f.len(), 1, 0, 2).unwrap().to_bytes();
    run(p, &ctx, Some(&mut f), maps, &ENV)
}

fn drops(maps: &MapSet<'_>) -> u64 {
    let v = maps.lookup(0, &0u32.to_le_bytes(), 0).unwrap();
    u64::from_le_bytes(v.try_into().unwrap())
}

#[test]
fn udp_filter_drops_one_port_and_counts() {
    let insns = udp_filter();
    let p = Verified::new(&insns, HookKind::Packet, &[COUNTER]).unwrap();
    let mut maps = maps_for(&[COUNTER], 1);
    let o = filter(&p, &mut maps, frame(17, 9, 64));
    assert_eq!(ret(o), XDP_DROP);
    assert!(o.executed() as usize <= p.info().reachable);
    assert_eq!(ret(filter(&p, &mut maps, frame(17, 9, 60))), XDP_DROP);
    assert_eq!(drops(&maps), 2);
    for f in [
        frame(17, 53, 64),
        frame(6, 9, 64),
        frame(17, 9, 37),
        frame(17, 9, 0),
    ] {
        assert_eq!(ret(filter(&p, &mut maps, f)), XDP_PASS);
    }
    assert_eq!(drops(&maps), 2);
    let mut non_ip = frame(17, 9, 64);
    non_ip[12] = 0x86;
    assert_eq!(ret(filter(&p, &mut maps, non_ip)), XDP_PASS);
    let dump: Vec<_> = maps.dump(0).unwrap().map(|e| e.value.to_vec()).collect();
    assert_eq!(dump, [2u64.to_le_bytes().to_vec()]);
}

#[test]
fn packet_reads_past_data_end_abort() {
    // Reads byte 100 of the frame without comparing with data_end.
    let insns = [ldx(BPF_W, 2, 1, 0), ldx(BPF_B, 0, 2, 100), exit()];
    let p = Verified::new(&insns, HookKind::Packet, &[]).unwrap();
    let mut maps = maps_for(&[], 1);
    let f = fault(filter(&p, &mut maps, frame(17, 9, 64)));
    assert_eq!(
        f,
        Fault {
            insn: 1,
            kind: FaultKind::Load {
                addr: PACKET_BASE + 100,
                size: 1
            },
            executed: 2
        }
    );
    assert_eq!(
        f.to_string(),
        "insn 1: load of 1 bytes at 0x30000064 outside every region"
    );
    assert_eq!(ret(filter(&p, &mut maps, frame(17, 9, 101))), 0);
}

#[test]
fn packet_is_writable_context_is_not() {
    // Rewrites the first byte, then tries to write the context through a
    // scalar copy of its address.
    let insns = prog(&[
        &[ldx(BPF_W, 2, 1, 0), st(BPF_B, 2, 0, 0x77)],
        &lddw(3, CTX_BASE),
        &[st(BPF_W, 3, 0, 0), mov64_imm(0, 2), exit()],
    ]);
    let p = Verified::new(&insns, HookKind::Packet, &[]).unwrap();
    let mut maps = maps_for(&[], 1);
    let mut f = frame(17, 9, 64);
    let ctx = xdp_md(f.len(), 0, 0, 0).unwrap().to_bytes();
    let fl = fault(run(&p, &ctx, Some(&mut f), &mut maps, &ENV));
    assert_eq!(fl.insn, 4);
    assert!(matches!(
        fl.kind,
        FaultKind::Store {
            addr: CTX_BASE,
            size: 4
        }
    ));
    assert_eq!(f[0], 0x77);
}

// ------------------------------------------------------------ maps

const HASH: MapDef = MapDef {
    kind: MapKind::Hash,
    key_size: 8,
    value_size: 16,
    max_entries: 8,
};

/// `r2 = r10 + off`.
const fn stack_ptr(reg: u8, off: i32) -> [Insn; 2] {
    [mov64_reg(reg, 10), alu64_imm(BPF_ADD, reg, off)]
}

/// Key 42 at r10-8, value (7, 0) at r10-24: update, lookup and read,
/// delete, look up again (must be NULL); returns the value read.
fn hash_program() -> Vec<Insn> {
    prog(&[
        &[
            st(BPF_DW, 10, -8, 42),
            st(BPF_DW, 10, -24, 7),
            st(BPF_DW, 10, -16, 0),
        ],
        &ld_map(1, 0),
        &stack_ptr(2, -8),
        &stack_ptr(3, -24),
        &[mov64_imm(4, 0), call(BPF_FUNC_MAP_UPDATE_ELEM)],
        &ld_map(1, 0),
        &stack_ptr(2, -8),
        &[
            call(BPF_FUNC_MAP_LOOKUP_ELEM),
            jmp_imm(BPF_JNE, 0, 0, 2),
            mov64_imm(0, 99),
            exit(),
            ldx(BPF_DW, 6, 0, 0),
        ],
        &ld_map(1, 0),
        &stack_ptr(2, -8),
        &[call(BPF_FUNC_MAP_DELETE_ELEM)],
        &ld_map(1, 0),
        &stack_ptr(2, -8),
        &[
            call(BPF_FUNC_MAP_LOOKUP_ELEM),
            jmp_imm(BPF_JEQ, 0, 0, 2),
            mov64_imm(0, 98),
            exit(),
            mov64_reg(0, 6),
            exit(),
        ],
    ])
}

#[test]
fn hash_update_lookup_delete() {
    let insns = hash_program();
    let p = Verified::new(&insns, HookKind::Exit, &[HASH]).unwrap();
    let mut maps = maps_for(&[HASH], 1);
    let ctx = ExitCtx::default().to_bytes();
    assert_eq!(ret(run(&p, &ctx, None, &mut maps, &ENV)), 7);
    assert_eq!(maps.entries(0), 0);
    assert_eq!(ret(run(&p, &ctx, None, &mut maps, &ENV)), 7);
}

#[test]
fn update_flags_and_errors_reach_the_program() {
    // update(key 1, value 1, BPF_NOEXIST), returning its result.
    let insns = prog(&[
        &[
            st(BPF_DW, 10, -8, 1),
            st(BPF_DW, 10, -24, 1),
            st(BPF_DW, 10, -16, 1),
        ],
        &ld_map(1, 0),
        &stack_ptr(2, -8),
        &stack_ptr(3, -24),
        &[mov64_imm(4, 1), call(BPF_FUNC_MAP_UPDATE_ELEM), exit()],
    ]);
    let p = Verified::new(&insns, HookKind::Slice, &[HASH]).unwrap();
    let mut maps = maps_for(&[HASH], 1);
    let ctx = SliceCtx::default().to_bytes();
    assert_eq!(ret(run(&p, &ctx, None, &mut maps, &ENV)), 0);
    assert_eq!(ret(run(&p, &ctx, None, &mut maps, &ENV)), neg_errno(EEXIST));
    let mut value = [0u8; 16];
    value[..8].copy_from_slice(&1u64.to_le_bytes());
    value[8..].copy_from_slice(&1u64.to_le_bytes());
    assert_eq!(maps.lookup(0, &1u64.to_le_bytes(), 0), Some(&value[..]));
}

#[test]
fn stale_and_oversized_map_value_accesses_abort() {
    // lookup; delete; load through the old pointer.
    let insns = prog(&[
        &[st(BPF_DW, 10, -8, 5)],
        &ld_map(1, 0),
        &stack_ptr(2, -8),
        &[
            call(BPF_FUNC_MAP_LOOKUP_ELEM),
            jmp_imm(BPF_JNE, 0, 0, 1),
            exit(),
        ],
        &[mov64_reg(6, 0)],
        &ld_map(1, 0),
        &stack_ptr(2, -8),
        &[call(BPF_FUNC_MAP_DELETE_ELEM), ldx(BPF_DW, 0, 6, 0), exit()],
    ]);
    let p = Verified::new(&insns, HookKind::Exit, &[HASH]).unwrap();
    let mut maps = maps_for(&[HASH], 1);
    maps.update(0, &5u64.to_le_bytes(), &[3; 16], 0, 0).unwrap();
    let ctx = ExitCtx::default().to_bytes();
    let f = fault(run(&p, &ctx, None, &mut maps, &ENV));
    assert_eq!(f.insn, insns.len() - 2);
    assert!(matches!(f.kind, FaultKind::Load { .. }));

    // A 12-byte value in a 16-byte stride: bytes 12..16 are not the value.
    let wide = MapDef {
        kind: MapKind::Array,
        key_size: 4,
        value_size: 12,
        max_entries: 2,
    };
    let insns = prog(&[
        &[st(BPF_W, 10, -4, 0)],
        &ld_map(1, 0),
        &stack_ptr(2, -4),
        &[
            call(BPF_FUNC_MAP_LOOKUP_ELEM),
            jmp_imm(BPF_JNE, 0, 0, 1),
            exit(),
            ldx(BPF_W, 1, 0, 8),
            ldx(BPF_W, 0, 0, 12),
            exit(),
        ],
    ]);
    let p = Verified::new(&insns, HookKind::Exit, &[wide]).unwrap();
    let mut maps = maps_for(&[wide], 1);
    let f = fault(run(&p, &ctx, None, &mut maps, &ENV));
    assert_eq!(f.insn, insns.len() - 2);
}

#[test]
fn per_core_array_sees_its_core() {
    let percpu = MapDef {
        kind: MapKind::PerCpuArray,
        key_size: 4,
        value_size: 8,
        max_entries: 1,
    };
    // *value += smp_processor_id() + 1
    let insns = prog(&[
        &[
            call(BPF_FUNC_GET_SMP_PROCESSOR_ID),
            mov64_reg(6, 0),
            st(BPF_W, 10, -4, 0),
        ],
        &ld_map(1, 0),
        &stack_ptr(2, -4),
        &[
            call(BPF_FUNC_MAP_LOOKUP_ELEM),
            jmp_imm(BPF_JEQ, 0, 0, 2),
            alu64_imm(BPF_ADD, 6, 1),
            atomic_add(BPF_DW, 0, 6, 0),
            mov64_imm(0, 0),
            exit(),
        ],
    ]);
    let p = Verified::new(&insns, HookKind::Slice, &[percpu]).unwrap();
    let mut maps = maps_for(&[percpu], 2);
    let ctx = SliceCtx::default().to_bytes();
    for core in [0, 1, 1] {
        ret(run(&p, &ctx, None, &mut maps, &TestEnv { ns: 0, core }));
    }
    let key = 0u32.to_le_bytes();
    assert_eq!(maps.lookup(0, &key, 0), Some(&1u64.to_le_bytes()[..]));
    assert_eq!(maps.lookup(0, &key, 1), Some(&4u64.to_le_bytes()[..]));
    // A core the set has no copy for gets NULL.
    assert_eq!(
        ret(run(&p, &ctx, None, &mut maps, &TestEnv { ns: 0, core: 5 })),
        0
    );
}

// ------------------------------------------------------------ other kinds

/// Allows exactly two restarts after a triple fault, none otherwise.
fn restart_policy() -> Vec<Insn> {
    vec![
        ldx(BPF_W, 2, 1, RESTART_REASON as i16),
        mov64_imm(0, RESTART_STAY_DOWN as i32),
        jmp_imm(BPF_JNE, 2, REASON_TRIPLE_FAULT as i32, 3),
        ldx(BPF_W, 3, 1, RESTART_RESTARTS as i16),
        jmp_imm(BPF_JGE, 3, 2, 1),
        mov64_imm(0, RESTART_RESTART as i32),
        exit(),
    ]
}

#[test]
fn restart_policy_allows_two() {
    let insns = restart_policy();
    let p = Verified::new(&insns, HookKind::Restart, &[]).unwrap();
    let mut maps = maps_for(&[], 1);
    let answer = |reason, restarts| {
        let ctx = RestartCtx {
            status: STATUS_STOPPED,
            reason,
            restarts,
            ..Default::default()
        };
        ret(run(&p, &ctx.to_bytes(), None, &mut maps_for(&[], 1), &ENV))
    };
    assert_eq!(answer(REASON_TRIPLE_FAULT, 0), RESTART_RESTART);
    assert_eq!(answer(REASON_TRIPLE_FAULT, 1), RESTART_RESTART);
    assert_eq!(answer(REASON_TRIPLE_FAULT, 2), RESTART_STAY_DOWN);
    assert_eq!(answer(REASON_EPT_VIOLATION, 0), RESTART_STAY_DOWN);
    // The wrong context size is refused before the first instruction.
    let f = fault(run(&p, &[0; 24], None, &mut maps, &ENV));
    assert_eq!(
        f.kind,
        FaultKind::ContextSize {
            expected: 40,
            got: 24
        }
    );
}

#[test]
fn helpers_answer_from_the_environment() {
    let insns = [
        call(BPF_FUNC_KTIME_GET_NS),
        mov64_reg(6, 0),
        call(BPF_FUNC_GET_SMP_PROCESSOR_ID),
        alu64_reg(BPF_ADD, 0, 6),
        exit(),
    ];
    let p = Verified::new(&insns, HookKind::Exit, &[]).unwrap();
    let ctx = ExitCtx::default().to_bytes();
    let env = TestEnv { ns: 1000, core: 3 };
    assert_eq!(ret(run(&p, &ctx, None, &mut maps_for(&[], 1), &env)), 1003);
}

#[test]
fn redirect_records_the_port() {
    let insns = |flags| {
        [
            mov64_imm(1, 5),
            mov64_imm(2, flags),
            call(BPF_FUNC_REDIRECT),
            exit(),
        ]
    };
    let ok = insns(0);
    let p = Verified::new(&ok, HookKind::Packet, &[]).unwrap();
    let mut f = frame(17, 9, 64);
    let ctx = xdp_md(64, 0, 0, 0).unwrap().to_bytes();
    let o = run(&p, &ctx, Some(&mut f), &mut maps_for(&[], 1), &ENV);
    assert!(matches!(
        o,
        Outcome::Returned {
            ret: XDP_REDIRECT,
            redirect: Some(5),
            ..
        }
    ));
    let bad = insns(1);
    let p = Verified::new(&bad, HookKind::Packet, &[]).unwrap();
    let o = run(&p, &ctx, Some(&mut f), &mut maps_for(&[], 1), &ENV);
    assert!(matches!(
        o,
        Outcome::Returned {
            ret: XDP_ABORTED,
            redirect: None,
            ..
        }
    ));
}

#[test]
fn forged_stack_addresses_read_zeroes() {
    let insns = prog(&[&lddw(2, STACK_BASE + 8), &[ldx(BPF_DW, 0, 2, 0), exit()]]);
    let p = Verified::new(&insns, HookKind::Exit, &[]).unwrap();
    let ctx = ExitCtx::default().to_bytes();
    assert_eq!(ret(run(&p, &ctx, None, &mut maps_for(&[], 1), &ENV)), 0);
}

// ------------------------------------------------------------ the interpreter's own checks

fn run_unchecked(insns: &[Insn], kind: HookKind) -> Outcome {
    let ctx = vec![0u8; kind.context_size()];
    run(
        &unchecked(insns, kind),
        &ctx,
        None,
        &mut maps_for(&[], 1),
        &ENV,
    )
}

#[test]
fn unverified_programs_abort_cleanly() {
    let k = HookKind::Exit;
    let f = fault(run_unchecked(&[mov64_imm(0, 0), ja(-2)], k));
    assert_eq!((f.insn, f.kind), (1, FaultKind::Jump { target: 0 }));
    let f = fault(run_unchecked(&[mov64_imm(0, 0)], k));
    assert_eq!(f.kind, FaultKind::Jump { target: 1 });
    let f = fault(run_unchecked(&[Insn::new(0xff, 0, 0, 0, 0)], k));
    assert_eq!(f.kind, FaultKind::BadInstruction { code: 0xff });
    let mut p = prog(&[&ld_map(1, 7), &[call(BPF_FUNC_MAP_LOOKUP_ELEM), exit()]]);
    let f = fault(run_unchecked(&p, k));
    assert_eq!(
        f.kind,
        FaultKind::NotMapHandle {
            value: MAP_HANDLE_BASE + 7
        }
    );
    p[2] = call(BPF_FUNC_REDIRECT);
    assert_eq!(
        fault(run_unchecked(&p, k)).kind,
        FaultKind::Helper {
            id: BPF_FUNC_REDIRECT
        }
    );
    // Registers above r10 and writes to r10 cannot break anything.
    let p = [
        mov64_imm(15, 1),
        mov64_imm(10, 0),
        ldx(BPF_DW, 0, 10, -8),
        exit(),
    ];
    assert!(matches!(
        fault(run_unchecked(&p, k)).kind,
        FaultKind::Load { addr, .. } if addr == (-8i64) as u64
    ));
    let long = vec![mov64_imm(0, 0); METER_LIMIT as usize + 10];
    let f = fault(run_unchecked(&long, k));
    assert_eq!((f.kind, f.executed), (FaultKind::Meter, 0));
}

#[test]
fn map_set_must_cover_the_program() {
    let insns = udp_filter();
    let p = Verified::new(&insns, HookKind::Packet, &[COUNTER]).unwrap();
    let mut empty = maps_for(&[], 1);
    let f = fault(filter(&p, &mut empty, frame(17, 9, 64)));
    assert_eq!(f.kind, FaultKind::MapSet { have: 0 });
    let ctx = xdp_md(0, 0, 0, 0).unwrap().to_bytes();
    let mut huge = vec![0u8; MAX_PACKET + 1];
    let f = fault(run(
        &p,
        &ctx,
        Some(&mut huge),
        &mut maps_for(&[COUNTER], 1),
        &ENV,
    ));
    assert_eq!(
        f.kind,
        FaultKind::PacketTooLarge {
            len: MAX_PACKET + 1
        }
    );
}

// ------------------------------------------------------------ clang's output

#[test]
fn clang_compiled_xdp_program_verifies_and_runs() {
    let ports = MapDef {
        kind: MapKind::Hash,
        key_size: 2,
        value_size: 8,
        max_entries: 64,
    };
    let mut insns = [Insn::default(); 61];
    let n = decode_into(&super::fixture::CLANG_XDP, &mut insns).unwrap();
    let p = Verified::new(&insns[..n], HookKind::Packet, &[COUNTER, ports]).unwrap();
    let mut maps = maps_for(&[COUNTER, ports], 1);
    for (port, verdict) in [(9, XDP_DROP), (53, XDP_PASS), (9, XDP_DROP), (9, XDP_DROP)] {
        assert_eq!(ret(filter(&p, &mut maps, frame(17, port, 64))), verdict);
    }
    assert_eq!(ret(filter(&p, &mut maps, frame(17, 9, 40))), XDP_PASS);
    assert_eq!(drops(&maps), 3);
    let seen = |port: u16| {
        let v = maps.lookup(1, &port.to_le_bytes(), 0)?;
        Some(u64::from_le_bytes(v.try_into().ok()?))
    };
    assert_eq!((seen(9), seen(53), seen(80)), (Some(3), Some(1), None));
}
