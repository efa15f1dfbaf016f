//! Restart and exit hook tests: each answer counted once per run and mapped to what it means, bad answers and aborted runs falling back as the contract says, the restart decision with and without a hook.

#![forbid(unsafe_code)]

use super::*;
use crate::hooks::leaked_memory;
use crate::hooks::maps::bytes_needed;
use std::vec;
use std::vec::Vec;
use vmm_abi::hook::asm::*;
use vmm_abi::hook::context::{
    EXIT_HYPERCALL, REASON_TRIPLE_FAULT, RESTART_REASON, RESTART_RESTARTS, exit_fail,
};
use vmm_abi::hook::insn::*;

fn clock() -> u64 {
    7
}

/// Restarts a triple fault while fewer than two restarts were made; any
/// other stop stays down.
fn twice_for_triple_faults() -> Vec<Insn> {
    vec![
        ldx(BPF_W, 2, 1, RESTART_REASON as i16),
        jmp_imm(BPF_JNE, 2, REASON_TRIPLE_FAULT as i32, 4),
        ldx(BPF_W, 2, 1, RESTART_RESTARTS as i16),
        jmp_imm(BPF_JGE, 2, 2, 2),
        mov64_imm(0, RESTART_RESTART as i32),
        exit(),
        mov64_imm(0, RESTART_STAY_DOWN as i32),
        exit(),
    ]
}

fn build(kind: HookKind, insns: &'static [Insn]) -> VmHook<'static> {
    let arena = vec![0u8; bytes_needed(&[], 2).unwrap()].leak();
    VmHook::new(
        "h",
        3,
        kind,
        1,
        2,
        insns,
        &[],
        leaked_memory(arena, insns.len()),
        clock,
    )
    .unwrap()
}

fn restart_ctx(reason: u32, restarts: u32) -> RestartCtx {
    RestartCtx {
        vm: 1,
        status: vmm_abi::hook::context::STATUS_STOPPED,
        reason,
        restarts,
        ..RestartCtx::default()
    }
}

#[test]
fn a_restart_hook_answers_per_stop() {
    let h = build(HookKind::Restart, twice_for_triple_faults().leak());
    let tf = REASON_TRIPLE_FAULT;
    assert_eq!(h.restart(&restart_ctx(tf, 0), 0), RestartAnswer::Restart);
    assert_eq!(h.restart(&restart_ctx(tf, 1), 1), RestartAnswer::Restart);
    assert_eq!(h.restart(&restart_ctx(tf, 2), 0), RestartAnswer::StayDown);
    assert_eq!(
        h.restart(&restart_ctx(tf + 1, 0), 0),
        RestartAnswer::StayDown
    );
    let f = h.flow();
    assert_eq!((f.runs, f.allow, f.deny, f.bad, f.faults), (4, 2, 2, 0, 0));
    assert!(f.insns >= 4 * 4, "{f:?}");
}

#[test]
fn a_restart_hook_without_a_usable_answer_leaves_it_to_the_policy() {
    let h = build(HookKind::Restart, vec![mov64_imm(0, 7), exit()].leak());
    assert_eq!(h.restart(&restart_ctx(1, 0), 0), RestartAnswer::Policy);
    // A load outside every region: the run is aborted.
    let h2 = build(
        HookKind::Restart,
        vec![mov64_imm(2, 0), ldx(BPF_W, 0, 2, 0), exit()].leak(),
    );
    assert_eq!(h2.restart(&restart_ctx(1, 0), 0), RestartAnswer::Policy);
    assert_eq!((h.flow().bad, h.flow().runs), (1, 1));
    assert_eq!((h2.flow().faults, h2.flow().bad), (1, 0));
}

#[test]
fn the_restart_decision() {
    let never = || -> Option<RestartAnswer> { panic!("asked about a run that exited 0") };
    assert!(!restart_decision(false, 0, (true, 5), never));
    // No hook: the policy and its limit.
    assert!(restart_decision(true, 4, (true, 5), || None));
    assert!(!restart_decision(true, 5, (true, 5), || None));
    assert!(!restart_decision(true, 0, (false, 0), || None));
    // A hook decides on its own, beyond the policy, within MAX_RESTARTS.
    assert!(restart_decision(true, 9, (false, 0), || Some(
        RestartAnswer::Restart
    )));
    assert!(!restart_decision(true, MAX_RESTARTS, (false, 0), || {
        Some(RestartAnswer::Restart)
    }));
    assert!(!restart_decision(true, 0, (true, 5), || Some(
        RestartAnswer::StayDown
    )));
    assert!(restart_decision(true, 0, (true, 5), || Some(
        RestartAnswer::Policy
    )));
}

/// Fails hypercall 9 with code 22 and denies hypercall 4; allows the rest.
fn hypercall_filter() -> Vec<Insn> {
    let mut p = vec![
        ldx(BPF_DW, 2, 1, EXIT_HYPERCALL as i16),
        jmp_imm(BPF_JEQ, 2, 9, 5),
        jmp_imm(BPF_JEQ, 2, 4, 2),
        mov64_imm(0, EXIT_ALLOW as i32),
        exit(),
        mov64_imm(0, EXIT_DENY as i32),
        exit(),
    ];
    p.extend(lddw(0, exit_fail(22)));
    p.push(exit());
    p
}

fn vmcall(number: u64) -> ExitCtx {
    ExitCtx {
        reason: EXIT_REASON_VMCALL,
        hypercall: number,
        ..ExitCtx::default()
    }
}

#[test]
fn an_exit_hook_allows_denies_and_fails_hypercalls() {
    let h = build(HookKind::Exit, hypercall_filter().leak());
    assert_eq!(h.filter(&vmcall(1), 0), ExitAnswer::Allow);
    assert_eq!(h.filter(&vmcall(4), 0), ExitAnswer::Deny);
    assert_eq!(h.filter(&vmcall(9), 1), ExitAnswer::Fail(22));
    // Failing is for hypercalls only: on another exit it is a bad answer,
    // and a bad answer denies.
    let cpuid = ExitCtx {
        reason: vmm_abi::hook::context::EXIT_REASON_CPUID,
        hypercall: 9,
        ..ExitCtx::default()
    };
    assert_eq!(h.filter(&cpuid, 0), ExitAnswer::Deny);
    let f = h.flow();
    assert_eq!(
        (f.runs, f.allow, f.deny, f.fail, f.bad, f.faults),
        (4, 1, 1, 1, 1, 0)
    );
    // An aborted run denies too (the filter fails closed).
    let broken = build(
        HookKind::Exit,
        vec![mov64_imm(2, 0), ldx(BPF_W, 0, 2, 0), exit()].leak(),
    );
    assert_eq!(broken.filter(&vmcall(1), 0), ExitAnswer::Deny);
    assert_eq!(broken.flow().faults, 1);
}

#[test]
fn only_restart_and_exit_hooks_are_built_here_and_they_report() {
    let arena = vec![0u8; 0].leak();
    let insns = vec![mov64_imm(0, 0), exit()].leak();
    assert!(matches!(
        VmHook::new(
            "p",
            0,
            HookKind::Packet,
            0,
            1,
            insns,
            &[],
            leaked_memory(arena, insns.len()),
            clock,
        ),
        Err(BuildError::Kind(HookKind::Packet))
    ));
    let h = build(HookKind::Exit, insns);
    h.filter(&vmcall(1), 0);
    let mut lines = Vec::new();
    h.report("web", |r| lines.push(std::format!("{r}")));
    assert_eq!(
        lines,
        [
            "@corral vm-hook hook=3 name=h kind=exit vm=web engine=interpreted flow_runs=1 flow_allow=1 flow_deny=0 flow_fail=0 flow_bad=0 flow_faults=0 flow_insns=2"
        ]
    );
}

#[test]
fn a_slice_hook_sets_clamps_or_defers_to_the_default() {
    use vmm_abi::hook::context::SLICE_USED;
    // Returns the VM's instructions used so far as the slice length.
    let h = build(
        HookKind::Slice,
        vec![ldx(BPF_DW, 0, 1, SLICE_USED as i16), exit()].leak(),
    );
    let ask = |used| {
        let ctx = SliceCtx {
            used,
            ..SliceCtx::default()
        };
        h.slice(&ctx, 0, 5_000, 1_000..=9_000)
    };
    assert_eq!(ask(0), 5_000, "0 means the manifest's slice");
    assert_eq!(ask(2_000), 2_000);
    assert_eq!(ask(20_000), 9_000, "clamped into the range");
    assert_eq!(ask(10), 1_000);
    let f = h.flow();
    assert_eq!((f.runs, f.allow, f.deny, f.bad), (4, 1, 1, 2));
    // A run the interpreter aborts gives the default.
    let broken = build(
        HookKind::Slice,
        vec![mov64_imm(2, 0), ldx(BPF_W, 0, 2, 0), exit()].leak(),
    );
    assert_eq!(
        broken.slice(&SliceCtx::default(), 0, 5_000, 1_000..=9_000),
        5_000
    );
    assert_eq!(broken.flow().faults, 1);
}

#[test]
fn compiled_vm_hooks_answer_as_their_interpreted_twins() {
    use crate::hooks::jit::tests::emu_code;
    let exits = [
        vmcall(1),
        vmcall(4),
        vmcall(9),
        ExitCtx {
            reason: vmm_abi::hook::context::EXIT_REASON_CPUID,
            hypercall: 9,
            ..ExitCtx::default()
        },
    ];
    let broken = vec![mov64_imm(2, 0), ldx(BPF_W, 0, 2, 0), exit()];
    for insns in [hypercall_filter(), broken.clone()] {
        let insns: &'static [Insn] = insns.leak();
        let (jit, int) = (build(HookKind::Exit, insns), build(HookKind::Exit, insns));
        assert!(jit.compile_with(|p| Some(emu_code(p))));
        for (i, ctx) in exits.iter().enumerate() {
            let core = i as u32 % 2;
            assert_eq!(jit.filter(ctx, core), int.filter(ctx, core), "{ctx:?}");
        }
        assert_eq!(jit.flow(), int.flow());
    }
    let tf = REASON_TRIPLE_FAULT;
    let insns: &'static [Insn] = twice_for_triple_faults().leak();
    let (jit, int) = (
        build(HookKind::Restart, insns),
        build(HookKind::Restart, insns),
    );
    assert!(jit.compile_with(|p| Some(emu_code(p))));
    for (reason, restarts) in [(tf, 0), (tf, 1), (tf, 2), (tf + 1, 0)] {
        let ctx = restart_ctx(reason, restarts);
        assert_eq!(jit.restart(&ctx, 0), int.restart(&ctx, 0));
    }
    assert_eq!(jit.flow(), int.flow());
    assert_eq!(jit.flow().runs, 4);
}
