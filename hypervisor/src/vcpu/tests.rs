//! The exit loop driven by a fake vCPU: a script of fabricated exits, a clock that moves a fixed amount per entry, and a fake bus — budget, slices, waits, device accesses and stop reasons.

use super::hw::{Clock, GuestCpu, VcpuHw};
use super::regs::GuestRegs;
use super::slice::{
    MIN_SLICE, SliceEnd, SliceParams, VcpuState, VmEnv, Wakeups, run_slice, wait_over,
};
use super::stop::StopReason;
use crate::cpuid::CpuidResult;
use crate::devices::bus::{Bus, BusDevice, Effect};
use crate::devices::virtio::error::RingError;
use crate::devices::virtio::mmio::MmioError;
use crate::devices::virtio::queue::QueueError;
use crate::dispatch::Host;
use crate::hooks::lifecycle::ExitAnswer;
use crate::hypercall::Services;
use crate::mem::guest::GuestMemory;
use crate::mem::guest_tables;
use crate::vmx::exit::{Event, EventType, ExitReason, RawExit};
use crate::vmx::mode::CpuMode;
use core::cell::Cell;
use std::collections::VecDeque;
use std::vec::Vec;
use vmm_abi::corral::hypercall::{Hypercall, WAIT_TIMEOUT, WAIT_WORK};
use vmm_abi::corral::layout::{IMAGE_BASE_GPA, device_gpa};
use vmm_abi::hook::context::ExitCtx;
use vmm_abi::report::ExitKind;

/// EPT-violation qualification: a data write (SDM table 28-7).
const QUAL_WRITE: u64 = 1 << 1;
/// EPT-violation qualification: guest linear address valid, and the access
/// was to the translated address (not a page-table walk).
const QUAL_DIRECT: u64 = (1 << 7) | (1 << 8);
/// IDT-vectoring information: valid, hardware exception, vector 14 (#PF),
/// error code pushed (SDM 25.9.3).
const VECTORING_PAGE_FAULT: u32 = (1 << 31) | (3 << 8) | (1 << 11) | 14;
/// A guest instruction's length as the fake exit information says.
const INSN_LEN: u64 = 3;
/// The guest's RIP at every exit.
const RIP: u64 = IMAGE_BASE_GPA;
/// Ticks one trip through the guest takes on the fake clock.
const TICKS_PER_ENTRY: u64 = MIN_SLICE;

fn raw(reason: ExitReason) -> RawExit {
    RawExit {
        reason: reason as u32,
        qualification: 0,
        guest_physical: 0,
        interrupt_info: 0,
        idt_vectoring: 0,
        idt_vectoring_error: 0,
    }
}

/// What the guest does at one entry: an exit, with the registers it set.
#[derive(Clone, Copy)]
struct Step {
    exit: RawExit,
    regs: Option<GuestRegs>,
}

fn hypercall(nr: Hypercall, rdi: u64) -> Step {
    Step {
        exit: raw(ExitReason::Vmcall),
        regs: Some(GuestRegs {
            rax: nr.number(),
            rdi,
            ..GuestRegs::default()
        }),
    }
}

fn bare(reason: ExitReason) -> Step {
    Step {
        exit: raw(reason),
        regs: None,
    }
}

/// A vCPU whose guest follows a script; the clock moves at each entry.
struct FakeCpu<'c> {
    script: VecDeque<Step>,
    clock: &'c Cell<u64>,
    rip: u64,
    mode: CpuMode,
    cr3: u64,
    timers: Vec<u64>,
    reinjected: Vec<Event>,
    entries: u32,
    fail_entry: Option<u32>,
    fs_base: Option<u64>,
}

impl<'c> FakeCpu<'c> {
    fn new(clock: &'c Cell<u64>, script: impl IntoIterator<Item = Step>) -> Self {
        FakeCpu {
            script: script.into_iter().collect(),
            clock,
            rip: RIP,
            mode: CpuMode::Long64,
            cr3: 0,
            timers: Vec::new(),
            reinjected: Vec::new(),
            entries: 0,
            fail_entry: None,
            fs_base: None,
        }
    }
}

impl GuestCpu for FakeCpu<'_> {
    fn mode(&mut self, _: u64) -> Result<CpuMode, StopReason> {
        Ok(self.mode)
    }

    fn cr3(&mut self) -> Result<u64, StopReason> {
        Ok(self.cr3)
    }

    fn set_fs_base(&mut self, base: u64) -> Result<(), StopReason> {
        self.fs_base = Some(base);
        Ok(())
    }
}

impl VcpuHw for FakeCpu<'_> {
    fn enter(&mut self, regs: &mut GuestRegs) -> Result<(), StopReason> {
        if let Some(error) = self.fail_entry {
            return Err(StopReason::LaunchFailed { error });
        }
        self.entries += 1;
        self.clock.set(self.clock.get() + TICKS_PER_ENTRY);
        // A script that runs out is a test bug: the guest "exits" forever.
        let step = self
            .script
            .front()
            .copied()
            .unwrap_or_else(|| bare(ExitReason::Hlt));
        if let Some(r) = step.regs {
            *regs = r;
        }
        Ok(())
    }

    fn exit_info(&mut self) -> Result<RawExit, StopReason> {
        self.script
            .pop_front()
            .map(|s| s.exit)
            .ok_or(StopReason::Internal("the script ran out"))
    }

    fn rip_rflags(&mut self) -> Result<(u64, u64), StopReason> {
        // RFLAGS.IF set, bit 1 always set.
        Ok((self.rip, 0x202))
    }

    fn set_rip(&mut self, rip: u64) -> Result<(), StopReason> {
        self.rip = rip;
        Ok(())
    }

    fn skip_instruction(&mut self, rip: u64) -> Result<(), StopReason> {
        self.rip = rip + INSN_LEN;
        Ok(())
    }

    fn reinject(&mut self, event: &Event) -> Result<(), StopReason> {
        self.reinjected.push(*event);
        Ok(())
    }

    fn set_timer(&mut self, value: u64) -> Result<(), StopReason> {
        self.timers.push(value);
        Ok(())
    }
}

/// A device register page that answers reads with `value` and records
/// writes; `fault` makes every write report a broken ring.
#[derive(Default)]
struct FakeDevice {
    value: u32,
    writes: Vec<(u64, u8, u32)>,
    fault: Option<RingError>,
}

impl BusDevice for FakeDevice {
    fn read(&mut self, _: u64, _: u8) -> Result<u32, MmioError> {
        Ok(self.value)
    }

    fn write(&mut self, offset: u64, size: u8, value: u32) -> Result<Effect, MmioError> {
        self.writes.push((offset, size, value));
        Ok(self.fault.map_or(Effect::None, Effect::Fault))
    }
}

/// The hypervisor around the VM: a clock shared with the vCPU, signals, a
/// one-device bus in slot 0, and records of what the loop asked for.
struct FakeEnv<'c> {
    clock: &'c Cell<u64>,
    work: bool,
    fault: Option<StopReason>,
    device: FakeDevice,
    console: Vec<u8>,
    exits_seen: u32,
    waited: Vec<u64>,
    /// An exit hook: what it answers, and every context it was shown.
    filter: Option<fn(&ExitCtx) -> ExitAnswer>,
    filtered: Vec<ExitCtx>,
    /// The run loop wants the core back (an operator's request).
    wanted: bool,
    /// A Solo5 hvt guest's memory, if the VM is one.
    hvt: Option<Vec<u8>>,
    /// Its net devices.
    hvt_nets: crate::hvt::call::HvtNets,
    /// What each hvt hypercall said of running again.
    retried: Vec<bool>,
}

impl<'c> FakeEnv<'c> {
    fn new(clock: &'c Cell<u64>) -> Self {
        FakeEnv {
            clock,
            work: false,
            fault: None,
            device: FakeDevice::default(),
            console: Vec::new(),
            exits_seen: 0,
            waited: Vec::new(),
            filter: None,
            filtered: Vec::new(),
            wanted: false,
            hvt: None,
            hvt_nets: Default::default(),
            retried: Vec::new(),
        }
    }
}

impl Services for FakeEnv<'_> {
    fn console(&mut self, bytes: &[u8]) {
        self.console.extend_from_slice(bytes);
    }
    fn metric(&mut self, _: &str, _: u64) {}
    fn main_started(&mut self, _: u64) {}
    fn core_id(&self) -> u32 {
        0
    }
}

impl Bus for FakeEnv<'_> {
    fn has_device(&self, slot: usize) -> bool {
        slot == 0
    }

    fn with_device<R>(
        &mut self,
        slot: usize,
        f: impl FnOnce(&mut dyn BusDevice) -> R,
    ) -> Option<R> {
        (slot == 0).then(|| f(&mut self.device))
    }
}

impl Host for FakeEnv<'_> {
    fn host_cpuid(&self, _: u32, _: u32) -> CpuidResult {
        crate::cpuid::ZERO
    }

    fn is_hvt(&self) -> bool {
        self.hvt.is_some()
    }

    fn hvt_env(&mut self) -> Option<crate::hvt::call::HvtEnv> {
        let ram = crate::mem::raw::testing::over_vec(self.hvt.as_mut()?);
        Some(crate::hvt::call::HvtEnv {
            memory: crate::mem::access::GuestRead::size(&ram),
            nets: self.hvt_nets.clone(),
            ram,
            wall_ns: 1_800_000_000_000_000_000,
            tsc_hz: 1_000_000,
            vm: 0,
            disks: &crate::hvt::call::NoDisks,
            retrying: 0,
            ring: None,
        })
    }

    fn hvt_retried(&mut self, retried: bool) {
        self.retried.push(retried);
    }
}

impl Clock for FakeEnv<'_> {
    fn now(&self) -> u64 {
        self.clock.get()
    }
}

impl Wakeups for FakeEnv<'_> {
    fn take_work(&mut self) -> bool {
        core::mem::take(&mut self.work)
    }

    fn fault_flagged(&self) -> bool {
        self.fault.is_some()
    }
}

/// Timer values the fake hands out, so tests can tell which was asked.
const ALONE_TIMER: u64 = 1 << 40;
const UNBUDGETED_ALONE_TIMER: u64 = 1 << 41;

impl VmEnv for FakeEnv<'_> {
    fn after_exit(&mut self) {
        self.exits_seen += 1;
    }

    fn ring_fault(&mut self) -> Option<StopReason> {
        self.fault
    }

    fn wait_alone(&mut self, ticks: u64) -> u64 {
        self.waited.push(ticks);
        self.clock.set(self.clock.get() + ticks);
        WAIT_TIMEOUT
    }

    fn core_wanted(&mut self) -> bool {
        self.wanted
    }

    fn timer_for(&self, ticks: u64) -> u64 {
        ticks
    }

    fn timer_alone(&self, unbudgeted: bool) -> u64 {
        if unbudgeted {
            UNBUDGETED_ALONE_TIMER
        } else {
            ALONE_TIMER
        }
    }

    fn exit_hook(&self) -> Option<&'static str> {
        self.filter.map(|_| "filter")
    }

    fn filter_exit(&mut self, ctx: &ExitCtx) -> ExitAnswer {
        self.filtered.push(*ctx);
        self.filter.map_or(ExitAnswer::Allow, |f| f(ctx))
    }
}

const MEM: usize = 0x4_0000;

/// Guest memory with identity page tables and `code` at RIP.
fn memory<'a>(backing: &'a mut [u8], code: &[u8]) -> (GuestMemory<'a>, u64) {
    let mut mem = GuestMemory::new(backing);
    let cr3 = guest_tables::build(&mut mem).unwrap();
    mem.write(RIP, code).unwrap();
    (mem, cr3)
}

fn params(timeslice: u64, budget: u64, others_waiting: bool) -> SliceParams {
    SliceParams {
        timeslice,
        budget,
        others_waiting,
    }
}

/// Runs one slice of `script`; returns the end, the vCPU and the env.
fn run(
    script: impl IntoIterator<Item = Step>,
    st: &mut VcpuState,
    p: SliceParams,
    setup: impl FnOnce(&mut FakeCpu<'_>, &mut FakeEnv<'_>),
    check: impl FnOnce(&FakeCpu<'_>, &FakeEnv<'_>),
) -> SliceEnd {
    let clock = Cell::new(0);
    let mut backing = vec![0u8; MEM];
    // mov eax, [rdi] (a 4-byte device read) / mov [rdi], esi (a write)
    let (mem, cr3) = memory(&mut backing, &[0x8b, 0x07]);
    let mut cpu = FakeCpu::new(&clock, script);
    cpu.cr3 = cr3;
    let mut env = FakeEnv::new(&clock);
    setup(&mut cpu, &mut env);
    let end = run_slice(&mut cpu, &mut env, &mem, st, p);
    check(&cpu, &env);
    end
}

fn nulls(n: usize) -> Vec<Step> {
    (0..n).map(|_| hypercall(Hypercall::Null, 0)).collect()
}

#[test]
fn a_budget_stops_the_guest_on_the_exit_that_crossed_it() {
    let mut st = VcpuState::default();
    let end = run(
        nulls(100),
        &mut st,
        params(1 << 30, 5 * TICKS_PER_ENTRY + 1, false),
        |_, _| {},
        |cpu, env| {
            // Five entries fit in the budget; the sixth crosses it.
            assert_eq!(cpu.entries, 6);
            assert_eq!(env.exits_seen, 6);
            assert_eq!(cpu.timers, [ALONE_TIMER], "budgeted and alone");
            assert_eq!(
                cpu.rip,
                RIP + 6 * INSN_LEN,
                "each null call was advanced past"
            );
        },
    );
    assert_eq!(
        end,
        SliceEnd::Stopped(StopReason::BudgetExhausted {
            budget: 5 * TICKS_PER_ENTRY + 1
        })
    );
    assert_eq!(st.used, 6 * TICKS_PER_ENTRY);
    assert_eq!(st.exits[ExitKind::Vmcall as usize], 6);
    // A spent budget ends the next slice before the guest runs.
    let end = run(
        nulls(1),
        &mut st,
        params(1 << 30, 5 * TICKS_PER_ENTRY + 1, false),
        |_, _| {},
        |cpu, _| {
            assert_eq!(cpu.entries, 0);
        },
    );
    assert!(matches!(
        end,
        SliceEnd::Stopped(StopReason::BudgetExhausted { .. })
    ));
}

#[test]
fn a_shared_core_preempts_at_the_slice_end_and_debt_shortens_the_next() {
    let mut st = VcpuState::default();
    let slice = 3 * TICKS_PER_ENTRY;
    let end = run(
        nulls(100),
        &mut st,
        params(slice, 0, true),
        |_, _| {},
        |cpu, _| {
            assert_eq!(cpu.entries, 3);
            assert_eq!(cpu.timers, [slice], "the timer is set for the whole slice");
        },
    );
    assert_eq!(end, SliceEnd::Preempted);
    assert_eq!(st.ran, slice);
    assert_eq!(st.debt, 0, "it used exactly its slice");
    // An exit that runs long (the timer fires, but the handler took 2.5
    // slices) leaves debt, and the next slice is shorter by it.
    st.debt = 2 * TICKS_PER_ENTRY;
    let end = run(
        nulls(100),
        &mut st,
        params(slice, 0, true),
        |_, _| {},
        |cpu, _| {
            assert_eq!(cpu.timers, [slice - 2 * TICKS_PER_ENTRY]);
            assert_eq!(cpu.entries, 1);
        },
    );
    assert_eq!(end, SliceEnd::Preempted);
    assert_eq!(st.debt, 0, "the debt was repaid by the short slice");
    // Debt never shrinks a slice below the minimum.
    st.debt = u64::MAX;
    run(
        nulls(100),
        &mut st,
        params(slice, 0, true),
        |_, _| {},
        |cpu, _| {
            assert_eq!(cpu.timers, [MIN_SLICE]);
        },
    );
    // Alone on a core nobody owes anything.
    let end = run(
        [
            hypercall(Hypercall::Null, 0),
            bare(ExitReason::PreemptionTimer),
        ],
        &mut st,
        params(slice, 0, false),
        |_, _| {},
        |cpu, _| assert_eq!(cpu.timers, [UNBUDGETED_ALONE_TIMER]),
    );
    assert_eq!(
        end,
        SliceEnd::Preempted,
        "the timer gives a lone VM's core a moment"
    );
    assert_eq!(st.debt, 0);
}

#[test]
fn an_idle_guest_gives_a_shared_core_away_but_keeps_a_lone_one() {
    let mut st = VcpuState::default();
    let end = run(
        [bare(ExitReason::Hlt)],
        &mut st,
        params(1 << 30, 0, true),
        |_, _| {},
        |cpu, _| {
            assert_eq!(cpu.rip, RIP + INSN_LEN, "HLT is advanced past");
        },
    );
    assert_eq!(end, SliceEnd::Preempted);
    let end = run(
        [bare(ExitReason::Hlt), hypercall(Hypercall::Exit, 4)],
        &mut st,
        params(1 << 30, 0, false),
        |_, _| {},
        |cpu, _| assert_eq!(cpu.entries, 2),
    );
    assert_eq!(end, SliceEnd::Stopped(StopReason::Exited(4)));
}

#[test]
fn a_wait_on_a_shared_core_yields_until_work_or_the_deadline() {
    let mut st = VcpuState::default();
    let budget = 100 * TICKS_PER_ENTRY;
    let end = run(
        [hypercall(Hypercall::WaitForWork, 1_000_000)],
        &mut st,
        params(1 << 30, budget, true),
        |_, _| {},
        |_, _| {},
    );
    assert_eq!(end, SliceEnd::Waiting);
    // The wait is cut to what is left of the budget.
    assert_eq!(st.wait_deadline, Some(budget));
    assert_eq!(st.wait_started, TICKS_PER_ENTRY);
    let clock = Cell::new(50 * TICKS_PER_ENTRY);
    let mut env = FakeEnv::new(&clock);
    assert!(
        !wait_over(&mut st, &env, &mut FakeEnv::new(&clock)),
        "nothing yet"
    );
    env.work = true;
    let mut signals = FakeEnv::new(&clock);
    signals.work = true;
    assert!(wait_over(&mut st, &env, &mut signals));
    assert_eq!(st.regs.rax, WAIT_WORK);
    assert_eq!(st.wait_deadline, None);
    assert_eq!(
        st.used,
        50 * TICKS_PER_ENTRY,
        "the wait is charged to the budget"
    );
    // Past the deadline it times out; a flagged fault ends it at once.
    st.wait_deadline = Some(10);
    assert!(wait_over(&mut st, &env, &mut FakeEnv::new(&clock)));
    assert_eq!(st.regs.rax, WAIT_TIMEOUT);
    st.wait_deadline = Some(u64::MAX);
    let mut faulty = FakeEnv::new(&clock);
    faulty.fault = Some(StopReason::Halted);
    assert!(wait_over(&mut st, &env, &mut faulty));
    assert_eq!(st.regs.rax, WAIT_TIMEOUT);
}

#[test]
fn a_wait_with_work_pending_returns_at_once_and_a_lone_wait_is_bounded() {
    let mut st = VcpuState::default();
    let end = run(
        [
            hypercall(Hypercall::WaitForWork, 500),
            bare(ExitReason::Hlt),
        ],
        &mut st,
        params(1 << 30, 0, true),
        |_, env| env.work = true,
        |cpu, env| {
            assert_eq!(cpu.entries, 2, "the guest ran on without yielding");
            assert!(env.waited.is_empty());
        },
    );
    assert_eq!(end, SliceEnd::Preempted, "it yielded at the HLT");
    assert_eq!(st.regs.rax, WAIT_WORK);
    let mut st = VcpuState::default();
    let budget = 10 * TICKS_PER_ENTRY;
    let end = run(
        [
            hypercall(Hypercall::WaitForWork, 1 << 40),
            hypercall(Hypercall::Null, 0),
        ],
        &mut st,
        params(1 << 30, budget, false),
        |_, _| {},
        |_, env| {
            assert_eq!(
                env.waited,
                [budget - TICKS_PER_ENTRY],
                "bounded by the budget"
            )
        },
    );
    assert_eq!(
        end,
        SliceEnd::Stopped(StopReason::BudgetExhausted { budget })
    );
}

#[test]
fn a_lone_wait_gives_the_core_back_when_the_run_loop_wants_it() {
    let mut st = VcpuState::default();
    let end = run(
        [
            hypercall(Hypercall::WaitForWork, 1 << 40),
            hypercall(Hypercall::Null, 0),
        ],
        &mut st,
        params(1 << 30, 0, false),
        |_, env| env.wanted = true,
        |cpu, env| {
            assert_eq!(cpu.entries, 1, "not entered again after the wait");
            assert_eq!(env.waited.len(), 1);
        },
    );
    assert_eq!(end, SliceEnd::Preempted);
    assert_eq!(st.regs.rax, WAIT_TIMEOUT, "the guest sees its wait end");
}

fn device_write() -> Step {
    let mut exit = raw(ExitReason::EptViolation);
    exit.qualification = QUAL_WRITE | QUAL_DIRECT;
    exit.guest_physical = device_gpa(0) + 0x70;
    Step {
        exit,
        regs: Some(GuestRegs {
            rsi: 0xabcd,
            rdi: device_gpa(0) + 0x70,
            ..GuestRegs::default()
        }),
    }
}

#[test]
fn device_accesses_go_through_the_bus_and_advance_by_the_decoded_length() {
    let mut st = VcpuState::default();
    let clock = Cell::new(0);
    let mut backing = vec![0u8; MEM];
    // mov [rdi], esi
    let (mem, cr3) = memory(&mut backing, &[0x89, 0x37]);
    let mut cpu = FakeCpu::new(&clock, [device_write(), hypercall(Hypercall::Exit, 0)]);
    cpu.cr3 = cr3;
    let mut env = FakeEnv::new(&clock);
    let end = run_slice(&mut cpu, &mut env, &mem, &mut st, params(1 << 30, 0, false));
    assert_eq!(end, SliceEnd::Stopped(StopReason::Exited(0)));
    assert_eq!(env.device.writes, [(0x70, 4, 0xabcd)]);
    // Past the 2-byte store (the exit call is not advanced past).
    assert_eq!(cpu.rip, RIP + 2);
    assert_eq!(st.exits[ExitKind::EptViolation as usize], 1);
}

#[test]
fn device_faults_stop_the_guest_by_name() {
    let ring = RingError::Queue(QueueError::QueueSizeInvalid { size: 3 });
    let mut st = VcpuState::default();
    let end = run(
        [device_write()],
        &mut st,
        params(1 << 30, 0, false),
        |cpu, env| {
            env.device.fault = Some(ring);
            // mov [rdi], esi is written below by `run`'s code; use it.
            cpu.mode = CpuMode::Long64;
        },
        |_, _| {},
    );
    // `run` placed a load at RIP while the exit says write: a mismatch.
    assert!(
        matches!(end, SliceEnd::Stopped(StopReason::Mmio { slot: 0, .. })),
        "{end:?}"
    );
    // The right instruction, a device that reports a broken ring.
    let clock = Cell::new(0);
    let mut backing = vec![0u8; MEM];
    let (mem, cr3) = memory(&mut backing, &[0x89, 0x37]);
    let mut cpu = FakeCpu::new(&clock, [device_write()]);
    cpu.cr3 = cr3;
    let mut env = FakeEnv::new(&clock);
    env.device.fault = Some(ring);
    let end = run_slice(&mut cpu, &mut env, &mem, &mut st, params(1 << 30, 0, false));
    assert_eq!(
        end,
        SliceEnd::Stopped(StopReason::Ring {
            slot: 0,
            error: ring
        })
    );
    // Outside 64-bit mode no device access is emulated.
    let end = run(
        [device_write()],
        &mut st,
        params(1 << 30, 0, false),
        |cpu, _| {
            cpu.mode = CpuMode::Compat32;
        },
        |_, env| assert!(env.device.writes.is_empty()),
    );
    assert_eq!(
        end,
        SliceEnd::Stopped(StopReason::DeviceOutsideLongMode {
            slot: 0,
            mode: CpuMode::Compat32
        })
    );
}

#[test]
fn hardware_and_guest_failures_become_named_stops() {
    let mut st = VcpuState::default();
    let end = run(
        nulls(1),
        &mut st,
        params(1 << 30, 0, false),
        |cpu, _| {
            cpu.fail_entry = Some(7);
        },
        |_, _| {},
    );
    assert_eq!(
        end,
        SliceEnd::Stopped(StopReason::LaunchFailed { error: 7 })
    );
    let end = run(
        [bare(ExitReason::Rdpmc)],
        &mut st,
        params(1 << 30, 0, false),
        |_, _| {},
        |_, _| {},
    );
    assert!(matches!(
        end,
        SliceEnd::Stopped(StopReason::DeniedInstruction { .. })
    ));
    // A polling core's fault report stops the VM before it enters again.
    let end = run(
        nulls(5),
        &mut st,
        params(1 << 30, 0, false),
        |_, env| {
            env.fault = Some(StopReason::Halted);
        },
        |cpu, _| assert_eq!(cpu.entries, 0),
    );
    assert_eq!(end, SliceEnd::Stopped(StopReason::Halted));
}

#[test]
fn an_exit_during_event_delivery_reinjects_or_stops() {
    let mut st = VcpuState::default();
    let mut timer = raw(ExitReason::PreemptionTimer);
    timer.idt_vectoring = VECTORING_PAGE_FAULT;
    timer.idt_vectoring_error = 2;
    let end = run(
        [
            Step {
                exit: timer,
                regs: None,
            },
            hypercall(Hypercall::Exit, 0),
        ],
        &mut st,
        params(1 << 30, 0, true),
        |_, _| {},
        |cpu, _| {
            assert_eq!(cpu.reinjected.len(), 1);
            let e = cpu.reinjected[0];
            assert_eq!(
                (e.kind, e.vector, e.error_code),
                (EventType::HardwareException, 14, Some(2))
            );
            assert_eq!(cpu.rip, RIP, "nothing was advanced");
        },
    );
    assert_eq!(end, SliceEnd::Preempted);
    let mut write = device_write();
    write.exit.idt_vectoring = VECTORING_PAGE_FAULT;
    let end = run(
        [write],
        &mut st,
        params(1 << 30, 0, false),
        |_, _| {},
        |_, env| {
            assert!(env.device.writes.is_empty(), "not the instruction's access");
        },
    );
    assert!(
        matches!(end, SliceEnd::Stopped(StopReason::DuringDelivery { .. })),
        "{end:?}"
    );
}

/// Fails a hypercall whose first argument is 1 with code 22, denies one
/// whose first argument is 2, allows everything else.
fn by_first_argument(ctx: &ExitCtx) -> ExitAnswer {
    match ctx.args[0] {
        1 => ExitAnswer::Fail(22),
        2 => ExitAnswer::Deny,
        _ => ExitAnswer::Allow,
    }
}

#[test]
fn an_exit_hook_sees_the_guests_exits_and_allows_fails_or_denies() {
    let mut st = VcpuState::default();
    let end = run(
        [
            hypercall(Hypercall::Null, 0),
            hypercall(Hypercall::Null, 1),
            bare(ExitReason::PreemptionTimer),
        ],
        &mut st,
        params(1_000_000, 0, false),
        |_, env| env.filter = Some(by_first_argument),
        |cpu, env| {
            // Both hypercalls were shown, the timer (the hypervisor's own
            // exit) was not; both advanced past the VMCALL.
            assert_eq!(env.filtered.len(), 2);
            assert_eq!(env.filtered[1].reason, ExitReason::Vmcall as u32);
            assert_eq!(env.filtered[1].hypercall, Hypercall::Null.number());
            assert_eq!(env.filtered[1].args, [1, 0, 0]);
            assert_eq!(env.filtered[1].rip, RIP + INSN_LEN);
            assert_eq!(cpu.rip, RIP + 2 * INSN_LEN);
        },
    );
    assert_eq!(end, SliceEnd::Preempted);
    // The failed hypercall was not performed: the guest got the code.
    assert_eq!(st.regs.rax, 22);
    let end = run(
        [hypercall(Hypercall::Null, 2)],
        &mut st,
        params(1_000_000, 0, false),
        |_, env| env.filter = Some(by_first_argument),
        |_, _| {},
    );
    let SliceEnd::Stopped(reason) = end else {
        panic!("{end:?}");
    };
    assert_eq!(
        reason,
        StopReason::HookDenied {
            hook: "filter",
            reason: ExitReason::Vmcall as u16,
            hypercall: Some(Hypercall::Null.number()),
        }
    );
    assert_eq!(
        std::format!("{reason}"),
        std::format!(
            "hook `filter` denied hypercall {}",
            Hypercall::Null.number()
        )
    );
    // A host NMI is not the guest's doing: the hook is not asked about it
    // (a hook that denies everything would otherwise stop the VM).
    let mut nmi = raw(ExitReason::ExceptionOrNmi);
    nmi.interrupt_info = (1 << 31) | (2 << 8) | 2; // valid, type NMI, vector 2
    let end = run(
        [
            Step {
                exit: nmi,
                regs: None,
            },
            bare(ExitReason::PreemptionTimer),
        ],
        &mut VcpuState::default(),
        params(1_000_000, 0, false),
        |_, env| env.filter = Some(|_| ExitAnswer::Deny),
        |_, env| assert!(env.filtered.is_empty(), "{:?}", env.filtered),
    );
    assert_eq!(end, SliceEnd::Preempted);
    // Without a hook nothing is asked.
    let end = run(
        nulls(2),
        &mut VcpuState::default(),
        params(1_000_000, 0, false),
        |_, _| {},
        |_, env| assert!(env.filtered.is_empty()),
    );
    assert!(!matches!(
        end,
        SliceEnd::Stopped(StopReason::HookDenied { .. })
    ));
}

/// An `out` of 32 bits to `port` with EAX = `eax` (and RBX marked, to see
/// that registers are kept).
fn out32(port: u16, eax: u64) -> Step {
    let mut exit = raw(ExitReason::Io);
    // Size 4 (encoded as 3), OUT, not a string (SDM table 28-5).
    exit.qualification = (u64::from(port) << 16) | 3;
    Step {
        exit,
        regs: Some(GuestRegs {
            rax: eax,
            rbx: 0x5eed,
            ..GuestRegs::default()
        }),
    }
}

fn hvt_env(clock: &Cell<u64>) -> FakeEnv<'_> {
    let mut env = FakeEnv::new(clock);
    let mut m = std::vec![0u8; 0x1_0000];
    // puts: 5 bytes at 0x2000; halt: status 7 at 0x3000 + 8; poll: 2 ms.
    m[0x2000..0x2005].copy_from_slice(b"hello");
    m[0x1000..0x1008].copy_from_slice(&0x2000u64.to_le_bytes());
    m[0x1008..0x1010].copy_from_slice(&5u64.to_le_bytes());
    m[0x3008..0x300c].copy_from_slice(&7i32.to_le_bytes());
    m[0x4000..0x4008].copy_from_slice(&2_000_000u64.to_le_bytes());
    env.hvt = Some(m);
    env
}

#[test]
fn an_hvt_guests_port_hypercalls_are_served_and_corral_guests_still_denied() {
    let clock = Cell::new(0);
    let mut backing = std::vec![0u8; MEM];
    let (mem, _) = memory(&mut backing, &[]);
    let script = [out32(0x502, 0x1000), out32(0x508, 0x3000)];
    let mut cpu = FakeCpu::new(&clock, script);
    let mut env = hvt_env(&clock);
    let mut st = VcpuState::default();
    let end = run_slice(&mut cpu, &mut env, &mem, &mut st, params(1 << 30, 0, false));
    assert_eq!(end, SliceEnd::Stopped(StopReason::Exited(7)));
    assert_eq!(env.console, b"hello");
    assert_eq!(cpu.rip, RIP + INSN_LEN, "past the puts, not past the halt");
    // A Corral guest's port access is denied as it always was.
    let mut cpu = FakeCpu::new(&clock, [out32(0x502, 0x1000)]);
    let mut env = FakeEnv::new(&clock);
    let end = run_slice(
        &mut cpu,
        &mut env,
        &mem,
        &mut VcpuState::default(),
        params(1 << 30, 0, false),
    );
    assert_eq!(
        end,
        SliceEnd::Stopped(StopReason::DeniedIo {
            port: 0x502,
            write: true
        })
    );
    // An hvt guest's port outside the hypercalls, and a wrong size.
    let mut cpu = FakeCpu::new(&clock, [out32(0x60, 0)]);
    let mut env = hvt_env(&clock);
    let end = run_slice(
        &mut cpu,
        &mut env,
        &mem,
        &mut VcpuState::default(),
        params(1 << 30, 0, false),
    );
    assert_eq!(
        end,
        SliceEnd::Stopped(StopReason::DeniedIo {
            port: 0x60,
            write: true
        })
    );
    let mut byte = out32(0x502, 0x1000);
    byte.exit.qualification &= !7;
    let mut cpu = FakeCpu::new(&clock, [byte]);
    let mut env = hvt_env(&clock);
    let end = run_slice(
        &mut cpu,
        &mut env,
        &mem,
        &mut VcpuState::default(),
        params(1 << 30, 0, false),
    );
    assert!(
        matches!(end, SliceEnd::Stopped(StopReason::Hvt(_))),
        "{end:?}"
    );
}

#[test]
fn an_hvt_poll_waits_and_keeps_every_register() {
    let clock = Cell::new(0);
    let mut backing = std::vec![0u8; MEM];
    let (mem, _) = memory(&mut backing, &[]);
    // Alone on its core: the wait is spun here, then the guest halts.
    let mut cpu = FakeCpu::new(&clock, [out32(0x503, 0x4000), out32(0x508, 0x3000)]);
    let mut env = hvt_env(&clock);
    let mut st = VcpuState::default();
    let end = run_slice(&mut cpu, &mut env, &mem, &mut st, params(1 << 30, 0, false));
    assert_eq!(end, SliceEnd::Stopped(StopReason::Exited(7)));
    // 2 ms at 1 MHz.
    assert_eq!(env.waited, [2000]);
    // With others waiting it gives the core away; when the wait ends RAX is
    // still the guest's (a Corral wait would have put its answer there).
    let mut cpu = FakeCpu::new(&clock, [out32(0x503, 0x4000)]);
    let mut env = hvt_env(&clock);
    let mut st = VcpuState::default();
    let end = run_slice(&mut cpu, &mut env, &mem, &mut st, params(1 << 30, 0, true));
    assert_eq!(end, SliceEnd::Waiting);
    assert_eq!((st.regs.rax, st.regs.rbx), (0x4000, 0x5eed));
    clock.set(clock.get() + 10_000);
    assert!(wait_over(&mut st, &env, &mut env_wakeups()));
    assert_eq!(st.regs.rax, 0x4000, "the wait kept RAX");
}

/// Wakeups with nothing flagged.
fn env_wakeups() -> impl Wakeups {
    struct Quiet;
    impl Wakeups for Quiet {
        fn take_work(&mut self) -> bool {
            false
        }
        fn fault_flagged(&self) -> bool {
            false
        }
    }
    Quiet
}

#[test]
fn an_hvt_guest_sets_its_tls_base_and_no_other_msr() {
    let clock = Cell::new(0);
    let mut backing = std::vec![0u8; MEM];
    let (mem, _) = memory(&mut backing, &[]);
    let wrmsr = |msr: u64, value: u64| Step {
        exit: raw(ExitReason::Wrmsr),
        regs: Some(GuestRegs {
            rcx: msr,
            rax: value & 0xffff_ffff,
            rdx: value >> 32,
            ..GuestRegs::default()
        }),
    };
    let script = [wrmsr(0xC000_0100, 0x1_2345_6789), wrmsr(0xC000_0101, 1)];
    let mut cpu = FakeCpu::new(&clock, script);
    let mut env = hvt_env(&clock);
    let end = run_slice(
        &mut cpu,
        &mut env,
        &mem,
        &mut VcpuState::default(),
        params(1 << 30, 0, false),
    );
    assert_eq!(cpu.fs_base, Some(0x1_2345_6789));
    assert_eq!(
        end,
        SliceEnd::Stopped(StopReason::DeniedMsr {
            msr: 0xC000_0101,
            write: true
        })
    );
    // A Corral guest may not set FS_BASE.
    let mut cpu = FakeCpu::new(&clock, [wrmsr(0xC000_0100, 5)]);
    let mut env = FakeEnv::new(&clock);
    let end = run_slice(
        &mut cpu,
        &mut env,
        &mem,
        &mut VcpuState::default(),
        params(1 << 30, 0, false),
    );
    assert_eq!(cpu.fs_base, None);
    assert_eq!(
        end,
        SliceEnd::Stopped(StopReason::DeniedMsr {
            msr: 0xC000_0100,
            write: true
        })
    );
}

#[test]
fn an_hvt_halt_with_frames_in_flight_waits_and_runs_again() {
    use crate::hvt::net::{self, RING_RESERVE, RingPlace};
    use crate::mem::access::Gpa;
    let clock = Cell::new(0);
    let mut backing = std::vec![0u8; MEM];
    let (mem, _) = memory(&mut backing, &[]);
    let mut env = hvt_env(&clock);
    // 2 MiB the guest sees, its net device's rings above; one frame sent
    // and not yet taken by a polling core.
    let size = 2 * RING_RESERVE;
    let m = env.hvt.as_mut().unwrap();
    m.resize(size as usize, 0);
    let place = RingPlace::of(size, 0).unwrap();
    let mut ram = crate::mem::raw::testing::over_vec(m);
    net::send(&mut ram, place, Gpa(0x2000), 60).unwrap();
    env.hvt_nets.push((1, place)).unwrap();
    let mut cpu = FakeCpu::new(&clock, [out32(0x508, 0x3000)]);
    let mut st = VcpuState::default();
    let end = run_slice(&mut cpu, &mut env, &mem, &mut st, params(1 << 30, 0, true));
    // It gives the core away without moving past its `out`, every
    // register kept, so the halt runs again when it wakes.
    assert_eq!(end, SliceEnd::Waiting);
    assert_eq!(cpu.rip, RIP, "the halt runs again");
    assert_eq!((st.regs.rax, st.regs.rbx), (0x3000, 0x5eed));
    assert!(st.wait_deadline.is_some());
    // The host is told, so the call can give up after its bound.
    assert_eq!(env.retried, [true]);
}
