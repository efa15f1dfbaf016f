//! Restart, exit and slice hooks on a VM: the program, its maps and its counters, what each answer means ([`RestartAnswer`], [`ExitAnswer`], a slice length), and the restart decision with or without a hook.
//!
//! A restart hook runs when a run of the VM ends other than by exiting 0
//! and answers restart or stay down; an exit hook runs on each of the VM's
//! exits before the handler does (seccomp-style) and answers allow, deny,
//! or, for a hypercall, fail it with an error code. Answers the contract
//! does not know, and runs the interpreter aborted, are counted: a restart
//! hook's leave the decision to the manifest's `restart` policy, an exit
//! hook's deny (the filter fails closed). Nothing a program does stops
//! anything but what its answer says.
//!
//! Concurrency: a hook is shared by the clones of its VM, which may run on
//! several cores; its state sits behind a `spin::Mutex`, held for one run
//! (a bounded number of instructions: programs have no loops).

#![forbid(unsafe_code)]

use super::Env;
use super::jit::JitCode;
use super::maps::MapSet;
use super::packet::BuildError;
use super::vm::{self, Outcome};
use super::{HookMemory, Program, Verified};
use spin::Mutex;
use vmm_abi::hook::context::{
    EXIT_ALLOW, EXIT_DENY, EXIT_FAIL, EXIT_REASON_VMCALL, ExitCtx, RESTART_RESTART,
    RESTART_STAY_DOWN, RestartCtx, SLICE_DEFAULT, SliceCtx,
};
use vmm_abi::hook::{HookKind, Insn, MapDef};
use vmm_abi::manifest::MAX_RESTARTS;
use vmm_abi::report::{Record, VmHookFlow};

/// What a restart hook said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartAnswer {
    /// Restart the VM.
    Restart,
    /// Leave it down.
    StayDown,
    /// No usable answer: the manifest's policy decides.
    Policy,
}

/// What an exit hook said about one exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitAnswer {
    /// Let the handler run.
    Allow,
    /// Stop the VM.
    Deny,
    /// Do not perform the hypercall; the guest gets this code in RAX.
    Fail(u32),
}

/// Whether a run that ended (`failed`: other than by exiting 0) is
/// restarted, given the manifest's policy (`on_failure`, `limit`), the
/// restarts so far and, if a restart hook is attached, its answer (asked
/// only for a failed run). A hook decides on its own within
/// [`MAX_RESTARTS`]; without one, or when it gave no usable answer, the
/// policy does.
pub fn restart_decision(
    failed: bool,
    restarts: u32,
    (on_failure, limit): (bool, u32),
    hook: impl FnOnce() -> Option<RestartAnswer>,
) -> bool {
    if !failed {
        return false;
    }
    let policy = on_failure && restarts < limit;
    match hook() {
        Some(RestartAnswer::Restart) => restarts < MAX_RESTARTS,
        Some(RestartAnswer::StayDown) => false,
        Some(RestartAnswer::Policy) | None => policy,
    }
}

/// What a hook's lock guards.
struct State<'t> {
    prog: Program<'t>,
    maps: MapSet<'t>,
    flow: VmHookFlow,
    /// Cores its per-core maps are sized for.
    cores: u32,
    /// The program's stack and compiled code's state, reused from run
    /// to run.
    space: vm::RunSpace,
    /// Its compiled code, once checked against its maps.
    native: Option<&'t dyn JitCode>,
}

impl State<'_> {
    /// Runs the program over `ctx` on `core`: its return value, or `None`
    /// if the interpreter aborted it (counted).
    fn run(&mut self, ctx: &[u8], core: u32, clock: fn() -> u64) -> Option<u64> {
        self.flow.runs += 1;
        let env = Env {
            clock,
            core: core.min(self.cores.saturating_sub(1)),
        };
        let outcome = match self.native {
            Some(code) => vm::run_checked(
                code,
                self.prog.kind(),
                ctx,
                &mut self.maps,
                &env,
                &mut self.space,
            ),
            None => vm::run_in(&self.prog, ctx, None, &mut self.maps, &env, &mut self.space),
        };
        self.flow.insns += u64::from(outcome.executed());
        match outcome {
            Outcome::Returned { ret, .. } => Some(ret),
            _ => {
                self.flow.faults += 1;
                None
            }
        }
    }
}

/// The `vm` of a hook that serves a core's VMs rather than one VM.
pub const NO_VM: u32 = u32::MAX;

/// A restart, exit or slice hook attached to a VM (or a slice hook
/// attached to a core).
pub struct VmHook<'t> {
    /// Its name.
    pub name: &'t str,
    /// `Restart`, `Exit` or `Slice`.
    pub kind: HookKind,
    /// Manifest index of the VM ([`NO_VM`] for a core's slice hook).
    pub vm: u32,
    /// The core whose VMs it serves (a slice hook on a core), if any.
    pub core: Option<u32>,
    /// Its manifest index (for its records).
    pub index: u32,
    clock: fn() -> u64,
    state: Mutex<State<'t>>,
}

impl<'t> VmHook<'t> {
    /// Builds hook `name` (manifest index `index`) of `kind` on VM `vm`:
    /// `insns` (verified again here) with the map table `defs`, decoded
    /// into `mem.ops`, its maps in `mem.arena` (at least
    /// [`super::maps::bytes_needed`] for `cores` cores); `clock` is what
    /// `bpf_ktime_get_ns` returns.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &'t str,
        index: u32,
        kind: HookKind,
        vm: u32,
        cores: u32,
        insns: &'t [Insn],
        defs: &[MapDef],
        mem: HookMemory<'t>,
        clock: fn() -> u64,
    ) -> Result<Self, BuildError> {
        if !matches!(kind, HookKind::Restart | HookKind::Exit | HookKind::Slice) {
            return Err(BuildError::Kind(kind));
        }
        let verified = Verified::new(insns, kind, defs).map_err(BuildError::Verify)?;
        let prog = super::packet::program(verified, mem.ops)?;
        let maps = MapSet::new(defs, cores.max(1), mem.arena).map_err(BuildError::Maps)?;
        Ok(VmHook {
            name,
            kind,
            vm,
            core: None,
            index,
            clock,
            state: Mutex::new(State {
                prog,
                maps,
                flow: VmHookFlow::default(),
                cores: cores.max(1),
                space: vm::RunSpace::default(),
                native: None,
            }),
        })
    }

    /// Gives the program the code `compile` makes of it, if it makes
    /// any; whether it did (else the interpreter runs it).
    pub fn compile_with(
        &self,
        compile: impl FnOnce(&Program<'t>) -> Option<&'t dyn JitCode>,
    ) -> bool {
        let mut st = self.state.lock();
        match compile(&st.prog) {
            Some(code) => {
                st.prog = st.prog.with_jit(code);
                st.native = vm::checked_code(&st.prog, &st.maps);
                true
            }
            None => false,
        }
    }

    /// What runs it ([`super::Program::engine`]).
    pub fn engine(&self) -> u8 {
        self.state.lock().prog.engine()
    }

    /// The same hook serving core `core`'s VMs instead of one VM.
    pub fn on_core(self, core: u32) -> Self {
        VmHook {
            vm: NO_VM,
            core: Some(core),
            ..self
        }
    }

    /// Asks a restart hook about a run that ended, on `core`.
    pub fn restart(&self, ctx: &RestartCtx, core: u32) -> RestartAnswer {
        let mut st = self.state.lock();
        let answer = match st.run(&ctx.to_bytes(), core, self.clock) {
            Some(RESTART_RESTART) => RestartAnswer::Restart,
            Some(RESTART_STAY_DOWN) => RestartAnswer::StayDown,
            Some(_) => {
                st.flow.bad += 1;
                return RestartAnswer::Policy;
            }
            None => return RestartAnswer::Policy,
        };
        match answer {
            RestartAnswer::Restart => st.flow.allow += 1,
            _ => st.flow.deny += 1,
        }
        answer
    }

    /// Asks an exit hook about one exit, on `core`. Failing is for
    /// hypercalls only; any other answer it does not know denies.
    pub fn filter(&self, ctx: &ExitCtx, core: u32) -> ExitAnswer {
        let mut st = self.state.lock();
        let Some(ret) = st.run(&ctx.to_bytes(), core, self.clock) else {
            return ExitAnswer::Deny;
        };
        let answer = match ret {
            EXIT_ALLOW => ExitAnswer::Allow,
            EXIT_DENY => ExitAnswer::Deny,
            r if r as u32 == EXIT_FAIL && ctx.reason == EXIT_REASON_VMCALL => {
                ExitAnswer::Fail((r >> 32) as u32)
            }
            _ => {
                st.flow.bad += 1;
                return ExitAnswer::Deny;
            }
        };
        match answer {
            ExitAnswer::Allow => st.flow.allow += 1,
            ExitAnswer::Deny => st.flow.deny += 1,
            ExitAnswer::Fail(_) => st.flow.fail += 1,
        }
        answer
    }

    /// Asks a slice hook how long the VM's next slice is, on `core`:
    /// `default` for an answer of 0 or a run the interpreter aborted (the
    /// manifest's slice); an answer outside `range` is clamped into it and
    /// counted (`bad`): the system stays sound whatever the hook says.
    pub fn slice(
        &self,
        ctx: &SliceCtx,
        core: u32,
        default: u64,
        range: core::ops::RangeInclusive<u64>,
    ) -> u64 {
        let mut st = self.state.lock();
        match st.run(&ctx.to_bytes(), core, self.clock) {
            None => default,
            Some(SLICE_DEFAULT) => {
                st.flow.deny += 1;
                default
            }
            Some(ticks) if range.contains(&ticks) => {
                st.flow.allow += 1;
                ticks
            }
            Some(ticks) => {
                st.flow.bad += 1;
                ticks.clamp(*range.start(), *range.end())
            }
        }
    }

    /// Its counters.
    pub fn flow(&self) -> VmHookFlow {
        self.state.lock().flow
    }

    /// Runs `f` on its maps (between runs: the hook's lock is held).
    pub fn with_maps<R>(&self, f: impl FnOnce(&MapSet<'t>) -> R) -> R {
        f(&self.state.lock().maps)
    }

    /// Gives its `vm-hook` record (`vm_name` the VM's name), then a
    /// `hook-map` record per map and `hook-entry` records for its first
    /// [`super::maps::MAX_ENTRIES_SHOWN`] entries whose value is not all
    /// zero.
    pub fn report(&self, vm_name: &str, mut record: impl FnMut(&Record<'_>)) {
        let st = self.state.lock();
        record(&Record::VmHook {
            hook: self.index,
            name: self.name,
            kind: self.kind.name(),
            vm: vm_name,
            engine: vmm_abi::control::engine_name(st.prog.engine()),
            flow: st.flow,
        });
        super::maps::report(self.index, &st.maps, st.cores, record);
    }
}

#[cfg(test)]
mod tests;
