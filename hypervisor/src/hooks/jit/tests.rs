//! Tests of the JIT: compiled code, run in the x86 emulator (`emu.rs`) against the real runner and the trampolines' Rust side, does what the interpreter does (verdict, fault, instruction count, packet and map bytes), for hand-written programs, every ALU and jump operation on edge operands, and random verified programs.

#![forbid(unsafe_code)]

use super::emu::{self, Bus, Cpu};
use super::*;
use crate::hooks::layout::{PACKET_BASE, xdp_md};
use crate::hooks::maps::MapSet;
use crate::hooks::vm::props::{ALU_OPS, JMP_OPS, MAPS, operand, program};
use crate::hooks::vm::tests::{ENV, TestEnv, maps_for, prog};
use crate::hooks::vm::{self, Fault, FaultKind, Outcome, RunSpace};
use crate::hooks::{Program, Verified};
use core::sync::atomic::{AtomicU32, Ordering};
use proptest::prelude::*;
use std::boxed::Box;
use std::vec;
use std::vec::Vec;
use vmm_abi::hook::asm::*;
use vmm_abi::hook::context::EXIT_CTX_SIZE;
use vmm_abi::hook::insn::*;
use vmm_abi::hook::{HookKind, Insn, MapDef};

const STATE_ADDR: u64 = 0x7e00_0000_0000;
const CODE_BASE: u64 = 0x7c00_0000_0000;
const TRAMP: Trampolines = Trampolines {
    translate: 0x7a00_0000_0000,
    helper: 0x7a00_0000_1000,
};
/// Callee-saved registers (rbx, rbp, r12..r15) and the values they start
/// with: compiled code must give them back.
const SAVED: [usize; 6] = [3, 5, 12, 13, 14, 15];

/// Compiled code run by the emulator, as the hardware layer would run it.
#[derive(Debug)]
pub(crate) struct EmuCode {
    code: Vec<u8>,
    /// Calls of the out-of-line address translation (a region guessed
    /// wrong, or an access outside every region).
    slow: AtomicU32,
}

impl JitCode for EmuCode {
    fn enter(&self, state: &mut JitState, host: &mut dyn JitHost) -> u64 {
        let mut cpu = Cpu::new();
        for r in SAVED {
            cpu.regs[r] = 0x5a5a_0000 + r as u64;
        }
        cpu.regs[7] = STATE_ADDR;
        let mut bus = TestBus {
            state,
            host,
            slow: &self.slow,
        };
        if let Err(e) = emu::run(&self.code, CODE_BASE, 0, &mut cpu, &mut bus, 1_000_000) {
            panic!("compiled code failed in the emulator: {e:?}");
        }
        for r in SAVED {
            assert_eq!(
                cpu.regs[r],
                0x5a5a_0000 + r as u64,
                "register {r} not restored"
            );
        }
        cpu.regs[0]
    }
}

struct TestBus<'s, 'h> {
    state: &'s mut JitState,
    host: &'h mut dyn JitHost,
    slow: &'s AtomicU32,
}

fn state_word(addr: u64, size: usize) -> Option<usize> {
    let off = addr.checked_sub(STATE_ADDR)?;
    (size == 8 && off % 8 == 0 && off < (STATE_WORDS * 8) as u64).then_some((off / 8) as usize)
}

impl Bus for TestBus<'_, '_> {
    fn read(&mut self, addr: u64, size: usize) -> Result<u64, ()> {
        if let Some(i) = state_word(addr, size) {
            return Ok(self.state.get(i));
        }
        self.host.host_read(addr, size).ok_or(())
    }

    fn write(&mut self, addr: u64, size: usize, value: u64) -> Result<(), ()> {
        if let Some(i) = state_word(addr, size) {
            self.state.set(i, value);
            return Ok(());
        }
        self.host.host_write(addr, size, value).ok_or(())
    }

    fn call_out(&mut self, target: u64, cpu: &mut Cpu) -> bool {
        let r = &mut cpu.regs;
        if target == TRAMP.translate {
            assert_eq!(r[7], STATE_ADDR, "translate's first argument is the state");
            self.slow.fetch_add(1, Ordering::Relaxed);
            r[0] = self.host.translate(self.state, r[6], r[2]);
        } else if target == TRAMP.helper {
            assert_eq!(r[9], STATE_ADDR, "helper's sixth argument is the state");
            r[0] = self.host.helper(self.state, [r[7], r[6], r[2], r[1], r[8]]);
        } else {
            return false;
        }
        true
    }
}

/// `v` decoded and compiled for the emulator.
fn compiled(v: Verified<'static>) -> Program<'static> {
    let ops = vec![crate::hooks::Op::default(); v.insns().len()].leak();
    let p = Program::new(v, ops).expect("room");
    p.with_jit(emu_code(&p))
}

/// `p`'s code for the emulator, leaked for the test.
pub(crate) fn emu_code(p: &Program<'_>) -> &'static EmuCode {
    let mut labels = vec![Labels::default(); p.ops().len()];
    let mut out = vec![0u8; 1 << 20];
    let len = compile(p, &TRAMP, &mut labels, &mut out).expect("compiles");
    out.truncate(len);
    Box::leak(Box::new(EmuCode {
        code: out,
        slow: AtomicU32::new(0),
    }))
}

#[test]
fn a_packet_hooks_compiled_code_does_what_its_interpreted_twin_does() {
    use crate::datapath::policy::FramePolicy;
    use crate::hooks::packet::tests::{bouncer, first_byte_verdict, hook, pass_ipv4};
    // First bytes for every branch of both programs: pass, a drop counted
    // in a map (a helper call and a store through its result), a fault (a
    // load from address 0, through the out-of-line path), a send back,
    // unknown verdicts.
    for insns in [first_byte_verdict(), bouncer(), pass_ipv4()] {
        let (jit, int) = (hook(insns.clone()), hook(insns));
        jit.set_ports(0, 1);
        int.set_ports(0, 1);
        assert!(jit.compile_with(|p| Some(emu_code(p))));
        for (i, first) in [2u8, 1, 9, 3, 1, 0, 7, 4].into_iter().enumerate() {
            let len = 6 + 8 * i;
            let mut f: Vec<u8> = (0..len as u8).collect();
            f[0] = first;
            if first == 7 && len > 12 {
                f[12] = 0x86;
            }
            let mut seen = Vec::new();
            for h in [&jit, &int] {
                let mut run = h.lock();
                run.own_buffer().unwrap()[..len].copy_from_slice(&f);
                let verdict = run.judge_own(len);
                let bytes = run.own_buffer().unwrap()[..len].to_vec();
                seen.push((verdict, bytes));
                while run.sends_back() {
                    run.send_back_with(|_| Some(true));
                }
            }
            assert_eq!(seen[0], seen[1], "first byte {first}");
        }
        assert_eq!(jit.flow(), int.flow());
        assert!(jit.flow().runs == 8 && jit.flow().insns > 8);
        // The same records but for the engine each names.
        let maps = |h: &crate::hooks::packet::PacketHook<'_>, engine: &str| {
            let mut out = Vec::new();
            h.report(0, |r| out.push(std::format!("{r:?}")));
            let named = std::format!("engine: \"{engine}\"");
            assert!(out[0].contains(&named), "{}", out[0]);
            out[0] = out[0].replace(&named, "");
            out
        };
        assert_eq!(maps(&jit, "compiled"), maps(&int, "interpreted"));
    }
}

/// Slow-path translations `p`'s code has made so far.
fn slow_calls(p: &Program<'_>) -> u32 {
    let code = std::format!("{:?}", p.jit().unwrap());
    code.split("slow: ")
        .nth(1)
        .and_then(|t| t.trim_end_matches(" }").parse().ok())
        .unwrap()
}

fn interpreted(v: Verified<'static>) -> Program<'static> {
    let ops = vec![crate::hooks::Op::default(); v.insns().len()].leak();
    Program::new(v, ops).expect("room")
}

fn verified(insns: &[Insn], kind: HookKind, maps: &[MapDef]) -> Verified<'static> {
    let insns: &'static [Insn] = insns.to_vec().leak();
    Verified::new(insns, kind, maps).expect("verifies")
}

/// What a packet run left behind.
#[derive(Debug, PartialEq)]
struct After {
    outcome: Outcome,
    frame: Vec<u8>,
    maps: Vec<Vec<u8>>,
}

fn run_packet(p: &Program<'_>, maps_defs: &[MapDef], frame: &[u8]) -> After {
    let mut frame = frame.to_vec();
    let ctx = xdp_md(frame.len(), 1, 0, 2).unwrap().to_bytes();
    let mut maps = maps_for(maps_defs, 2);
    if maps_defs.len() > 1 {
        maps.update(1, &1u32.to_le_bytes(), &[9; 8], 0, 0).unwrap();
    }
    let env = TestEnv { ns: 5, core: 1 };
    let mut space = RunSpace::default();
    let outcome = vm::run_in(p, &ctx, Some(&mut frame), &mut maps, &env, &mut space);
    After {
        outcome,
        frame,
        maps: dump(&mut maps),
    }
}

fn dump(maps: &mut MapSet<'_>) -> Vec<Vec<u8>> {
    (0..maps.len())
        .map(|i| maps.values_mut(i).unwrap().to_vec())
        .collect()
}

/// Both engines on `insns` as a packet hook over `frame`.
fn both(insns: &[Insn], maps: &[MapDef], frame: &[u8]) -> (After, After) {
    let v = verified(insns, HookKind::Packet, maps);
    (
        run_packet(&interpreted(v), maps, frame),
        run_packet(&compiled(v), maps, frame),
    )
}

fn frame64() -> Vec<u8> {
    (0..64u8).collect()
}

#[test]
fn a_filter_answers_as_the_interpreter_does() {
    // The benchmark's hook: drop IPv6, pass the rest.
    let insns = prog(&[&[
        ldx(BPF_W, 2, 1, 4),
        ldx(BPF_W, 1, 1, 0),
        mov64_reg(3, 1),
        alu64_imm(BPF_ADD, 3, 14),
        mov64_imm(0, XDP_DROP as i32),
        jmp_reg(BPF_JGT, 3, 2, 4),
        ldx(BPF_B, 1, 1, 12),
        mov64_imm(0, XDP_DROP as i32),
        jmp_imm(BPF_JEQ, 1, 0x86, 1),
        mov64_imm(0, XDP_PASS as i32),
        exit(),
    ]]);
    let mut ipv6 = frame64();
    ipv6[12] = 0x86;
    for frame in [frame64(), ipv6, vec![0; 10]] {
        let (i, j) = both(&insns, &[], &frame);
        assert_eq!(i, j);
        assert!(matches!(j.outcome, Outcome::Returned { .. }));
    }
    let (_, pass) = both(&insns, &[], &frame64());
    assert!(matches!(
        pass.outcome,
        Outcome::Returned {
            ret: XDP_PASS,
            executed: 11,
            ..
        }
    ));
    // Every access guessed its region: no call out of the code.
    let p = compiled(verified(&insns, HookKind::Packet, &[]));
    run_packet(&p, &[], &frame64());
    assert_eq!(slow_calls(&p), 0);
}

#[test]
fn stores_rewrite_the_frame_and_maps_count() {
    // Rewrite byte 0, count in array map 0 at key 0, return the count.
    let insns = prog(&[
        &[
            mov64_reg(6, 1),
            ldx(BPF_W, 7, 6, 0),
            st(BPF_B, 7, 0, 0x42),
            st(BPF_H, 7, 2, 0x1234),
            st(BPF_W, 10, -4, 0),
        ],
        &ld_map(1, 0),
        &[
            mov64_reg(2, 10),
            alu64_imm(BPF_ADD, 2, -4),
            call(BPF_FUNC_MAP_LOOKUP_ELEM),
            jmp_imm(BPF_JEQ, 0, 0, 4),
            mov64_imm(1, 7),
            atomic_add(BPF_DW, 0, 1, 0),
            ldx(BPF_DW, 0, 0, 0),
            exit(),
            mov64_imm(0, 99),
            exit(),
        ],
    ]);
    let (i, j) = both(&insns, &MAPS, &frame64());
    assert_eq!(i, j);
    assert_eq!(j.frame[0], 0x42);
    assert_eq!(&j.frame[2..4], &0x1234u16.to_le_bytes());
    assert!(matches!(j.outcome, Outcome::Returned { ret: 7, .. }));
}

#[test]
fn faults_are_the_interpreters_faults() {
    // A load past the frame's end, a store into the context, a load far
    // outside every region: each aborts at the same instruction with the
    // same fault and count.
    let past_end = prog(&[&[ldx(BPF_W, 2, 1, 0), ldx(BPF_DW, 0, 2, 60), exit()]]);
    let into_ctx = prog(&[&[mov64_imm(0, 1), stx(BPF_W, 1, 0, 0), exit()]]);
    let nowhere = prog(&[&lddw(2, 0x9999_0000), &[ldx(BPF_B, 0, 2, 0), exit()]]);
    for insns in [&past_end, &into_ctx, &nowhere] {
        let v = Verified::new(insns.clone().leak(), HookKind::Packet, &[]);
        let Ok(v) = v else { continue };
        let (i, j) = (
            run_packet(&interpreted(v), &[], &frame64()),
            run_packet(&compiled(v), &[], &frame64()),
        );
        assert_eq!(i, j);
        assert!(matches!(j.outcome, Outcome::Aborted(_)), "{:?}", j.outcome);
    }
    let v = verified(&past_end, HookKind::Packet, &[]);
    let j = run_packet(&compiled(v), &[], &frame64());
    assert_eq!(
        j.outcome,
        Outcome::Aborted(Fault {
            insn: 1,
            kind: FaultKind::Load {
                addr: PACKET_BASE + 60,
                size: 8
            },
            executed: 2,
        })
    );
}

#[test]
fn redirect_and_helpers_go_through_the_runner() {
    let insns = prog(&[&[
        call(BPF_FUNC_KTIME_GET_NS),
        mov64_reg(6, 0),
        call(BPF_FUNC_GET_SMP_PROCESSOR_ID),
        alu64_reg(BPF_ADD, 6, 0),
        mov64_imm(1, 3),
        mov64_imm(2, 0),
        call(BPF_FUNC_REDIRECT),
        alu64_reg(BPF_ADD, 0, 6),
        exit(),
    ]]);
    let (i, j) = both(&insns, &[], &frame64());
    assert_eq!(i, j);
    // 5 ns + core 1 + XDP_REDIRECT, port 3.
    assert!(matches!(
        j.outcome,
        Outcome::Returned {
            ret: 10,
            redirect: Some(3),
            ..
        }
    ));
}

#[test]
fn every_hook_kind_runs_compiled() {
    // An exit hook reading its context (read-only) and the stack.
    let insns = prog(&[&[
        ldx(BPF_W, 2, 1, 0),
        stx(BPF_DW, 10, 2, -8),
        ldx(BPF_DW, 0, 10, -8),
        alu64_imm(BPF_ADD, 0, 1),
        exit(),
    ]]);
    let v = verified(&insns, HookKind::Exit, &[]);
    let mut ctx = [0u8; EXIT_CTX_SIZE];
    ctx[..4].copy_from_slice(&41u32.to_le_bytes());
    let out = exit_runs(v, &ctx);
    assert_eq!(out[0], out[1]);
    assert!(matches!(out[1], Outcome::Returned { ret: 42, .. }));
}

#[test]
fn context_reads_after_a_jump_stay_inline() {
    // An exit hook reading its context after a branch: the context is the
    // guess for hooks without a packet.
    let insns = prog(&[&[
        mov64_reg(6, 1),
        ldx(BPF_W, 2, 6, 0),
        jmp_imm(BPF_JEQ, 2, 7, 1),
        mov64_imm(2, 1),
        ldx(BPF_DW, 0, 6, 8),
        alu64_reg(BPF_ADD, 0, 2),
        exit(),
    ]]);
    let p = compiled(verified(&insns, HookKind::Exit, &[]));
    let mut maps = maps_for(&[], 1);
    let ctx = [0u8; EXIT_CTX_SIZE];
    let o = vm::run_in(&p, &ctx, None, &mut maps, &ENV, &mut RunSpace::default());
    assert!(matches!(o, Outcome::Returned { ret: 1, .. }), "{o:?}");
    assert_eq!(slow_calls(&p), 0);
}

#[test]
fn context_loads_after_a_join_answer_as_the_interpreter_does() {
    // (clang's form of the benchmark's hook, which overwrites `r1` after
    // reading the context, is `a_filter_answers_as_the_interpreter_does`.)
    use vmm_abi::hook::context::{XDP_DATA, XDP_DATA_END};
    // A join of two paths that both keep `r1` the context (the verifier
    // refuses one where it is the context on one path only): a load
    // through it after the join needs no call either.
    let joined = prog(&[&[
        ldx(BPF_W, 2, 1, XDP_DATA_END as i16),
        ldx(BPF_W, 3, 1, XDP_DATA as i16),
        alu64_reg(BPF_SUB, 2, 3),
        mov64_imm(0, 1),
        jmp_imm(BPF_JNE, 2, 20, 1),
        mov64_imm(0, 2),
        ldx(BPF_W, 4, 1, XDP_DATA_END as i16),
        alu64_reg(BPF_ADD, 0, 4),
        exit(),
    ]]);
    for len in [20, 64] {
        let frame: Vec<u8> = (0..len as u8).collect();
        let (int, jit) = both(&joined, &[], &frame);
        assert_eq!(int, jit);
        let want = PACKET_BASE + len as u64 + if len == 20 { 2 } else { 1 };
        assert!(
            matches!(jit.outcome, Outcome::Returned { ret, .. } if ret == want),
            "{len}: {:?}",
            jit.outcome
        );
    }
    let p = compiled(verified(&joined, HookKind::Packet, &[]));
    run_packet(&p, &[], &frame64());
    assert_eq!(slow_calls(&p), 0);
}

#[test]
fn the_compiler_refuses_what_it_cannot_place() {
    let insns = prog(&[&[mov64_imm(0, 2), exit()]]);
    let v = verified(&insns, HookKind::Packet, &[]);
    let p = interpreted(v);
    let mut labels = vec![Labels::default(); 2];
    assert_eq!(
        compile(&p, &TRAMP, &mut labels, &mut [0u8; 16]),
        Err(JitError::Room(16))
    );
    assert_eq!(
        compile(&p, &TRAMP, &mut labels[..1], &mut [0u8; 4096]),
        Err(JitError::Labels(2))
    );
    assert!(compile(&p, &TRAMP, &mut labels, &mut [0u8; 4096]).is_ok());
}

/// `r2 = a; r3 = b; r2 op= r3 (or imm b); r0 = r2; exit` (or a jump
/// that returns 1 when taken) through both engines.
fn alu_case(op: u8, wide: bool, by_reg: bool, a: u64, b: u64) -> Vec<Insn> {
    let class = if wide { BPF_ALU64 } else { BPF_ALU };
    let body = match (op, by_reg) {
        (BPF_NEG, _) => Insn::new(class | BPF_NEG, 2, 0, 0, 0),
        (_, true) => Insn::new(class | op | BPF_X, 2, 3, 0, 0),
        (_, false) => Insn::new(class | op, 2, 0, 0, b as i32),
    };
    prog(&[&lddw(2, a), &lddw(3, b), &[body, mov64_reg(0, 2), exit()]])
}

fn jmp_case(op: u8, wide: bool, by_reg: bool, a: u64, b: u64) -> Vec<Insn> {
    let class = if wide { BPF_JMP } else { BPF_JMP32 };
    let j = if by_reg {
        Insn::new(class | op | BPF_X, 2, 3, 2, 0)
    } else {
        Insn::new(class | op | BPF_K, 2, 0, 2, b as i32)
    };
    prog(&[
        &lddw(2, a),
        &lddw(3, b),
        &[j, mov64_imm(0, 0), exit(), mov64_imm(0, 1), exit()],
    ])
}

/// Outcomes of exit hook `v` over `ctx`, interpreted then compiled.
fn exit_runs(v: Verified<'static>, ctx: &[u8]) -> [Outcome; 2] {
    [interpreted(v), compiled(v)].map(|p| {
        let mut maps = maps_for(&[], 1);
        vm::run_in(&p, ctx, None, &mut maps, &ENV, &mut RunSpace::default())
    })
}

fn same_in_both(insns: &[Insn]) -> Result<(), TestCaseError> {
    let v = verified(insns, HookKind::Exit, &[]);
    let ctx = [0u8; EXIT_CTX_SIZE];
    let out = exit_runs(v, &ctx);
    prop_assert_eq!(out[0], out[1]);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    /// Every ALU operation, 64- and 32-bit, by register and immediate, on
    /// edge operands (division by 0, shifts by 0 and past the width).
    #[test]
    fn alu_matches_the_interpreter(
        op in proptest::sample::select(&ALU_OPS[..]),
        wide: bool,
        by_reg: bool,
        a in operand(),
        b in operand(),
    ) {
        same_in_both(&alu_case(op, wide, by_reg, a, b))?;
    }

    /// Every conditional jump, 64- and 32-bit, by register and immediate.
    #[test]
    fn jumps_match_the_interpreter(
        op in proptest::sample::select(&JMP_OPS[..]),
        wide: bool,
        by_reg: bool,
        a in operand(),
        b in operand(),
    ) {
        same_in_both(&jmp_case(op, wide, by_reg, a, b))?;
    }

    /// Byte swaps of every width, both directions.
    #[test]
    fn byte_swaps_match_the_interpreter(to_be: bool, w in 0usize..3, a in operand()) {
        let bits = [16, 32, 64][w];
        let code = BPF_ALU | BPF_END | if to_be { BPF_X } else { BPF_K };
        same_in_both(&prog(&[&lddw(4, a), &[Insn::new(code, 4, 0, 0, bits), mov64_reg(0, 4), exit()]]))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Random programs the verifier accepts: the compiled code leaves the
    /// same outcome (value, redirect, count, or fault), frame and maps as
    /// the interpreter.
    #[test]
    fn random_programs_match_the_interpreter(p in program()) {
        if let Ok(v) = Verified::new(p.leak(), HookKind::Packet, &MAPS) {
            let frame = vec![0xabu8; 64];
            let i = run_packet(&interpreted(v), &MAPS, &frame);
            let j = run_packet(&compiled(v), &MAPS, &frame);
            prop_assert_eq!(i, j);
        }
    }
}
