//! The exit loop: runs a VM on its core for one slice — enter, decode the exit, dispatch it, act on the outcome — with its budget, slice length and waits accounted in instructions.
//!
//! Time spent handling exits counts against the slice and the budget, so a
//! guest that exits all the time cannot keep the core (the preemption timer
//! alone restarts at every entry). Everything here goes through [`VcpuHw`],
//! [`Clock`] and [`VmEnv`], so host tests drive it with a fake vCPU.

use super::hw::{Clock, VcpuHw};
use super::regs::GuestRegs;
use super::stop::StopReason;
use crate::dispatch::{self, Host, Outcome, Vcpu};
use crate::hooks::lifecycle::ExitAnswer;
use crate::mem::access::GuestRead;
use crate::vmx::exit::{self, Exit, ExitReason, RawExit};
use vmm_abi::corral::hypercall::{WAIT_TIMEOUT, WAIT_WORK};
use vmm_abi::hook::context::ExitCtx;
use vmm_abi::report::{EXIT_KINDS, ExitCounts};

/// Shortest slice, however much a VM owes: the shortest `timeslice` a
/// manifest may set.
pub const MIN_SLICE: u64 = vmm_abi::manifest::MIN_TIMESLICE;

/// The part of a VM's state the exit loop keeps across slices.
#[derive(Clone, Debug)]
pub struct VcpuState {
    /// General-purpose registers between exits.
    pub regs: GuestRegs,
    /// Ticks this run has used (against its budget), waits included.
    pub used: u64,
    /// Ticks it has run over all runs, exit handling included.
    pub ran: u64,
    /// `ran` when this run began.
    pub run_start: u64,
    /// Ticks it used beyond its slices while sharing its core (an exit that
    /// ended long after the slice did): its next slices are shorter by that
    /// much, so core-mates get their share (deficit round robin).
    pub debt: u64,
    /// Exits by kind, over all runs.
    pub exits: ExitCounts,
    /// It waits for work until this tick (its `wait_for_work` gave the core
    /// to other VMs).
    pub wait_deadline: Option<u64>,
    /// When that wait began: the time it waits is charged to `used`.
    pub wait_started: u64,
    /// The wait is a Solo5 `poll`: it ends with every register as it was
    /// (a Corral wait says in RAX why it ended).
    pub wait_keeps_regs: bool,
    /// Ticks it spent waiting for work, over all runs.
    pub waited: u64,
    /// The basic reason of its last exit.
    pub last_exit: u32,
}

impl Default for VcpuState {
    fn default() -> Self {
        VcpuState {
            regs: GuestRegs::default(),
            used: 0,
            ran: 0,
            run_start: 0,
            debt: 0,
            exits: [0; EXIT_KINDS],
            wait_deadline: None,
            wait_keeps_regs: false,
            wait_started: 0,
            waited: 0,
            last_exit: 0,
        }
    }
}

impl VcpuState {
    /// Ticks this run has run so far, exit handling included.
    pub fn ran_this_run(&self) -> u64 {
        self.ran.wrapping_sub(self.run_start)
    }

    /// Ready for a new run: registers and the run's accounts cleared
    /// (what it ran, owes and its exit counts carry over).
    pub fn new_run(&mut self, regs: GuestRegs) {
        self.regs = regs;
        self.used = 0;
        self.run_start = self.ran;
        self.wait_deadline = None;
    }
}

/// How one slice is to run.
#[derive(Clone, Copy, Debug)]
pub struct SliceParams {
    /// The core's slice length in ticks (before the VM's debt).
    pub timeslice: u64,
    /// The VM's budget in ticks; 0 = none.
    pub budget: u64,
    /// Other VMs wait for this core.
    pub others_waiting: bool,
}

/// How a slice ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceEnd {
    /// Its slice is over (or, alone on its core, the timer gave the run
    /// loop a moment); it runs again when its turn comes.
    Preempted,
    /// It waits for work (until `wait_deadline`) and another VM may run.
    Waiting,
    /// The VM stopped.
    Stopped(StopReason),
}

/// Whether a VM's wait for work is over: what the scheduler asks of a VM
/// that waits, and what a lone waiter polls.
pub trait Wakeups {
    /// Takes the "work arrived" signal (a polling core delivered a frame
    /// or found room).
    fn take_work(&mut self) -> bool;
    /// A polling core flagged a fault on one of the VM's rings.
    fn fault_flagged(&self) -> bool;
}

/// What the exit loop needs from the hypervisor around one VM.
pub trait VmEnv: Host + Clock + Wakeups {
    /// Called after every exit, before it is handled: counts it and gives
    /// the console a moment.
    fn after_exit(&mut self);
    /// The stop for a ring fault a polling core found, if any.
    fn ring_fault(&mut self) -> Option<StopReason>;
    /// Waits on a core nobody else needs until work arrives, a fault is
    /// flagged or `ticks` pass; returns what `wait_for_work` answers.
    fn wait_alone(&mut self, ticks: u64) -> u64;
    /// Whether the core's run loop needs the core back (an operator's
    /// request waits for it): a lone VM's wait then ends its slice.
    fn core_wanted(&mut self) -> bool {
        false
    }
    /// The preemption-timer value for a slice of `ticks`.
    fn timer_for(&self, ticks: u64) -> u64;
    /// The preemption-timer value for a VM alone on its core.
    fn timer_alone(&self, unbudgeted: bool) -> u64;
    /// The name of the VM's exit hook, if it has one: then
    /// [`VmEnv::filter_exit`] is asked about each of its exits.
    fn exit_hook(&self) -> Option<&'static str> {
        None
    }
    /// What the VM's exit hook says about an exit.
    fn filter_exit(&mut self, _ctx: &ExitCtx) -> ExitAnswer {
        ExitAnswer::Allow
    }
}

/// What an exit hook sees of an exit (`exit`, decoded from `raw`): `None`
/// for exits the guest did not cause — the preemption timer, external
/// interrupts and NMIs (the host's), and failed VM entries (the
/// hypervisor's, reported as such) — which it is not asked about.
pub fn exit_context(raw: &RawExit, exit: &Exit, regs: &GuestRegs, rip: u64) -> Option<ExitCtx> {
    if matches!(
        exit,
        Exit::PreemptionTimer | Exit::ExternalInterrupt | Exit::Nmi | Exit::EntryFailure { .. }
    ) {
        return None;
    }
    let basic = (raw.reason & 0xffff) as u16;
    // Compared by number: naming the reason (`ExitReason::from_raw`)
    // searches the whole list, on every exit of a hooked VM.
    let is = |r: ExitReason| basic == r as u16;
    let vmcall = is(ExitReason::Vmcall);
    let ept = is(ExitReason::EptViolation) || is(ExitReason::EptMisconfig);
    match () {
        () if is(ExitReason::PreemptionTimer) || is(ExitReason::ExternalInterrupt) => None,
        () => Some(ExitCtx {
            reason: u32::from(basic),
            qualification: raw.qualification,
            rip,
            hypercall: if vmcall { regs.rax } else { 0 },
            args: if vmcall {
                [regs.rdi, regs.rsi, regs.rdx]
            } else {
                [0; 3]
            },
            gpa: if ept { raw.guest_physical } else { 0 },
        }),
    }
}

/// Runs the VM (its state loaded) until it stops, or its slice is over, it
/// goes idle or waits for work while `others_waiting`. The slice's ticks
/// are added to `ran`; what it used beyond its slice becomes debt.
pub fn run_slice<H: VcpuHw, E: VmEnv, M: GuestRead>(
    hw: &mut H,
    env: &mut E,
    mem: &M,
    st: &mut VcpuState,
    p: SliceParams,
) -> SliceEnd {
    let entered = env.now();
    let end = slice(hw, env, mem, st, p);
    let elapsed = env.now().wrapping_sub(entered);
    st.ran = st.ran.saturating_add(elapsed);
    // What it used beyond its fair share of a shared core is repaid from
    // its next slices; alone, it owes nobody.
    st.debt = if p.others_waiting {
        st.debt.saturating_add(elapsed).saturating_sub(p.timeslice)
    } else {
        0
    };
    end
}

fn slice<H: VcpuHw, E: VmEnv, M: GuestRead>(
    hw: &mut H,
    env: &mut E,
    mem: &M,
    st: &mut VcpuState,
    p: SliceParams,
) -> SliceEnd {
    let budget = p.budget;
    // Waiting for work is charged to the budget too: a wait that ran it
    // out ends here, before the guest runs again.
    if budget != 0 && st.used >= budget {
        return SliceEnd::Stopped(StopReason::BudgetExhausted { budget });
    }
    let timeslice = p.timeslice.saturating_sub(st.debt).max(MIN_SLICE);
    // Alone on its core, it is interrupted now and then (console text may
    // wait for a core to feed the UART even if the guest never exits).
    let timer = if p.others_waiting {
        env.timer_for(timeslice)
    } else {
        env.timer_alone(budget == 0)
    };
    if let Err(r) = hw.set_timer(timer) {
        return SliceEnd::Stopped(r);
    }
    // The clock is only read when something depends on it.
    let timed = budget != 0 || p.others_waiting;
    let exit_hook = env.exit_hook();
    let slice_start = if timed { env.now() } else { 0 };
    let used_before = st.used;
    loop {
        if let Some(r) = env.ring_fault() {
            return SliceEnd::Stopped(r);
        }
        if let Err(r) = hw.enter(&mut st.regs) {
            return SliceEnd::Stopped(r);
        }
        env.after_exit();
        let raw = match hw.exit_info() {
            Ok(raw) => raw,
            Err(r) => return SliceEnd::Stopped(r),
        };
        let exit = exit::decode(&raw);
        st.exits[exit.kind() as usize] += 1;
        st.last_exit = raw.reason;
        let (rip, rflags) = match hw.rip_rflags() {
            Ok(v) => v,
            Err(r) => return SliceEnd::Stopped(r),
        };
        // A hypercall the exit hook failed is skipped (not dispatched).
        let skip = match exit_hook {
            None => false,
            Some(hook) => match ask_exit_hook(env, hook, (&raw, &exit), &mut st.regs, rip) {
                Ok(skip) => skip,
                Err(stop) => return SliceEnd::Stopped(stop),
            },
        };
        let mut vcpu = Vcpu {
            regs: &mut st.regs,
            rip,
            rflags,
            mem,
            delivering: exit::pending_event(&raw),
            cpu: &mut *hw,
        };
        let mut idle = false;
        if skip {
            if hw.skip_instruction(rip).is_err() {
                return SliceEnd::Stopped(StopReason::Internal("advancing guest RIP failed"));
            }
        } else {
            let outcome = match dispatch::dispatch(&exit, &mut vcpu, env) {
                // What every guest is denied may be a Solo5 hvt guest's
                // hypercall or TLS base: asked only then, so the exits of
                // the hot path do not pay for it.
                denied @ Outcome::Stop(
                    StopReason::DeniedIo { .. } | StopReason::DeniedMsr { write: true, .. },
                ) if env.is_hvt() => dispatch::on_hvt(exit, vcpu.regs, vcpu.cpu, env, denied),
                o => o,
            };
            match outcome {
                Outcome::Resume => {}
                Outcome::Reinject(event) => {
                    if let Err(r) = hw.reinject(&event) {
                        return SliceEnd::Stopped(r);
                    }
                }
                Outcome::AdvanceBy(len) => {
                    if let Err(r) = hw.set_rip(rip.wrapping_add(u64::from(len))) {
                        return SliceEnd::Stopped(r);
                    }
                }
                Outcome::Advance | Outcome::Yield | Outcome::Wait(_)
                    if hw.skip_instruction(rip).is_err() =>
                {
                    return SliceEnd::Stopped(StopReason::Internal("advancing guest RIP failed"));
                }
                Outcome::Advance => {}
                Outcome::Yield => idle = true,
                Outcome::Wait(ticks) | Outcome::Retry(ticks) => {
                    // A retried Solo5 call keeps every register: it runs
                    // again, and its answer goes in guest memory.
                    let keep = matches!(outcome, Outcome::Retry(_));
                    st.wait_keeps_regs = keep;
                    let rax = st.regs.rax;
                    if env.take_work() {
                        st.regs.rax = if keep { rax } else { WAIT_WORK };
                    } else if p.others_waiting {
                        let now = env.now();
                        st.used = used_before + now.wrapping_sub(slice_start);
                        // The wait is charged to the budget (see `wait_over`),
                        // so it ends when the budget would.
                        let ticks = within_budget(ticks, budget, st.used);
                        st.wait_deadline = Some(now.saturating_add(ticks));
                        st.wait_started = now;
                        return SliceEnd::Waiting;
                    } else {
                        // A budget bounds the wait too.
                        let used = used_before + env.now().wrapping_sub(slice_start);
                        let woke = env.wait_alone(within_budget(ticks, budget, used));
                        st.regs.rax = if keep { rax } else { woke };
                        // The guest is past its call with its answer in RAX,
                        // so its run goes on from here next slice.
                        if env.core_wanted() {
                            return SliceEnd::Preempted;
                        }
                    }
                }
                Outcome::Stop(reason) => return SliceEnd::Stopped(reason),
            }
        }
        if timed {
            let elapsed = env.now().wrapping_sub(slice_start);
            st.used = used_before + elapsed;
            if budget != 0 && st.used > budget {
                return SliceEnd::Stopped(StopReason::BudgetExhausted { budget });
            }
            let slice_over = elapsed >= timeslice || exit == Exit::PreemptionTimer;
            if p.others_waiting && (idle || slice_over) {
                return SliceEnd::Preempted;
            }
        }
        if exit == Exit::PreemptionTimer && !p.others_waiting {
            // Alone on its core: the slice ends here only so that the run
            // loop gets a moment (progress records); it is scheduled again
            // at once.
            return SliceEnd::Preempted;
        }
    }
}

/// Asks the VM's exit hook `hook` about an exit: `Ok(false)` to let the
/// handler run, `Ok(true)` when the hook failed a hypercall (it is not
/// performed: the guest gets the code in RAX and is advanced past it),
/// `Err` naming the hook when it denied the exit. Out of line: a VM
/// without a hook pays nothing for it.
#[cold]
#[inline(never)]
fn ask_exit_hook<E: VmEnv>(
    env: &mut E,
    hook: &'static str,
    (raw, exit): (&RawExit, &Exit),
    regs: &mut GuestRegs,
    rip: u64,
) -> Result<bool, StopReason> {
    let Some(ctx) = exit_context(raw, exit, regs, rip) else {
        return Ok(false);
    };
    match env.filter_exit(&ctx) {
        ExitAnswer::Allow => Ok(false),
        ExitAnswer::Deny => Err(StopReason::HookDenied {
            hook,
            reason: ctx.reason as u16,
            hypercall: (ctx.reason == u32::from(ExitReason::Vmcall as u16))
                .then_some(ctx.hypercall),
        }),
        ExitAnswer::Fail(code) => {
            regs.rax = u64::from(code);
            Ok(true)
        }
    }
}

/// A wait of `ticks`, cut to what is left of `budget` after `used` (0 = no
/// budget).
pub fn within_budget(ticks: u64, budget: u64, used: u64) -> u64 {
    if budget == 0 {
        ticks
    } else {
        ticks.min(budget.saturating_sub(used))
    }
}

/// Whether a VM that waits for work may run again: work arrived (RAX says
/// so) or its deadline passed (RAX says timeout); a flagged fault also lets
/// it run, to be stopped at once. The time it waited is charged to its
/// budget as if it had held the core.
pub fn wait_over(st: &mut VcpuState, clock: &impl Clock, wakeups: &mut impl Wakeups) -> bool {
    let Some(deadline) = st.wait_deadline else {
        return true;
    };
    let rax = if wakeups.take_work() {
        WAIT_WORK
    } else if wakeups.fault_flagged() || clock.now() >= deadline {
        WAIT_TIMEOUT
    } else {
        return false;
    };
    if !st.wait_keeps_regs {
        st.regs.rax = rax;
    }
    st.wait_deadline = None;
    let waited = clock.now().wrapping_sub(st.wait_started);
    st.used = st.used.saturating_add(waited);
    st.waited = st.waited.saturating_add(waited);
    true
}
