//! Running the manifest: every VM is assigned to one core for its whole
//! life, and that core owns its state (no other core touches it while VMs
//! run). Each core asks its scheduler (`sched::round_robin`) what to run,
//! switching when the VMX preemption timer ends a slice and another VM
//! waits. A VM that fails and may restart goes back into its core's queue
//! and comes back with fresh memory. The boot core waits for every core,
//! then reports `done`.

use super::images;
use super::instr;
use super::memory;
use super::net::Net;
use super::percpu::MAX_CORES;
use super::runtime_hooks::HookRef;
use super::serial;
use super::service::{self, CONTROL_CORE, ControlPlane, Job, Mail};
use super::smp::Core;
use super::vm::{self, VmState};
use super::vmx::VmxShared;
use crate::console::StackStr;
use crate::control::{Request, Text};
use crate::hooks::lifecycle::restart_decision;
use crate::sched::assign;
use crate::sched::round_robin::RoundRobin;
use crate::sched::{Next, Ran, RunView, Scheduler};
use crate::vcpu::slice::SliceEnd;
use crate::vcpu::stop::StopReason;
use core::sync::atomic::{AtomicU32, Ordering};
use spin::Mutex;
use vmm_abi::control::{NO_CORE, VM_EXITED, VM_KILLED, VM_RUNNING, VM_STOPPED};
use vmm_abi::hook::HookKind;
use vmm_abi::hook::context::RestartCtx;
use vmm_abi::manifest::{Manifest, Restart};
use vmm_abi::report::{OPERATOR_RESTART, Record, VmStatus};

/// The metric of a VM started at runtime: TSC ticks from its core taking
/// the `start` request to the VM's `main`.
pub const START_TO_MAIN: &str = "start_to_main";
/// The metric the first VM a command started reports with it:
/// instructions from the control core taking the command to the VM's
/// `main`.
pub const COMMAND_TO_MAIN: &str = "command_to_main";

/// Bytes reserved for one stop reason in a record.
const REASON_BYTES: usize = 200;

/// The VMs one core owns (in a service run, followed by its places for VMs
/// started at runtime), and its queue of their positions.
struct CoreVms {
    vms: &'static mut [VmState],
    queue: &'static mut [u32],
    /// Its manifest VMs (the first entries of `vms`, queued at the start).
    boot: usize,
}

/// A VM to start at runtime: its id, the manifest VM it copies, its place
/// and the memory set aside for it.
#[derive(Clone, Copy)]
struct Place {
    id: u32,
    template: u32,
    cell: u32,
    reserved: u64,
    /// Guest memory instead of the entry's; 0: the entry's.
    memory: u64,
    /// TSC when the control core took the command (its first VM only).
    command: Option<u64>,
}

/// What VMs that ended in a place since given to another VM add to the
/// summary.
#[derive(Clone, Copy, Default)]
struct Retired {
    exited_ok: usize,
    restarts: u64,
    private: u64,
    overhead: u64,
}

/// The run, shared by every core.
pub struct Plan {
    /// Per core: the VMs it owns. A core holds its own lock for its whole
    /// run (nobody else takes it then); the boot core takes them only
    /// after every core has finished, for the reports.
    owned: [Mutex<Option<CoreVms>>; MAX_CORES],
    /// VMs none of whose cores runs (reported at the start).
    unplaced: Mutex<&'static mut [VmState]>,
    count: usize,
    cores: &'static [Core],
    /// Controls and bitmaps every VM uses.
    pub shared: VmxShared,
    /// Net ports, links and the signals between cores.
    net: Net,
    /// Cores that poll links (bit N = core N); they run no VMs.
    poll_cores: u64,
    /// Running cores that run VMs.
    vm_cores: u32,
    /// Cores that finished their VMs.
    vm_finished: AtomicU32,
    finished: AtomicU32,
    /// A service run's control plane (core 0 serves it).
    control: Option<ControlPlane>,
    /// The manifest (VMs started at runtime copy its entries).
    manifest: Manifest<'static>,
    /// VMs that ended in places since reused.
    retired: Mutex<Retired>,
}

fn reason_text(r: &StopReason) -> StackStr<REASON_BYTES> {
    StackStr::format(format_args!("{r}"))
}

/// A core's VMs as its scheduler sees them.
struct View<'a> {
    vms: &'a mut [VmState],
    net: &'a Net,
}

impl RunView for View<'_> {
    fn ready(&mut self, vm: u32) -> bool {
        self.vms
            .get_mut(vm as usize)
            .is_some_and(|st| vm::wait_over(st, self.net))
    }

    fn debt(&mut self, vm: u32) -> &mut u64 {
        &mut self.vms[vm as usize].cpu.debt
    }
}

const NO_MEMORY: &str = "no memory for VM state";

impl Plan {
    /// Lays out the run: the core of each VM, each core's VMs (their state
    /// in frames that core owns, in manifest order) and its queue.
    pub fn build(
        manifest: &Manifest<'static>,
        cores: &'static [Core],
        shared: VmxShared,
    ) -> Result<Plan, &'static str> {
        let count = manifest.len();
        let running = cores.iter().fold(0u64, |m, c| m | (1 << c.index));
        let poll_cores = manifest.poll_cores();
        let no_vms = poll_cores | manifest.control_cores();
        if poll_cores & !running != 0 {
            return Err(
                "a link or NIC is polled by a core that is not running (see the `core` of each link and NIC)",
            );
        }
        let vm_running = running & !no_vms;
        if vm_running == 0 {
            return Err(
                "every running core polls links or NICs or serves the control channel: none is left to run VMs",
            );
        }
        let placed = memory::leak_slice(count, |_| Ok(None::<u32>), NO_MEMORY)?;
        assign::assign(
            vm_running,
            count,
            // A pinned VM keeps only its cores that run VMs (the manifest
            // guarantees it names at least one).
            |i| match manifest.get(i).map_or(0, |s| s.cores) {
                0 => 0,
                m if m & !no_vms == 0 => m,
                m => m & !no_vms,
            },
            |i, core| placed[i] = core,
        );
        let placed: &[Option<u32>] = placed;
        // A service run's cores that run VMs each get places for VMs
        // started at runtime, after their own.
        let (spare, runtime_places) = if manifest.service() {
            (
                service::RUNTIME_SLOTS,
                ControlPlane::runtime_cells(vm_running),
            )
        } else {
            (0, 0)
        };
        // Manifest indices grouped by core (core 0 first, the unplaced
        // last), so each core's VMs are one run of the state array; a
        // core's places for runtime VMs (`None`) follow its VMs.
        let groups = (0..MAX_CORES as u32).map(Some).chain([None]);
        let mut order = groups.flat_map(|c| {
            let spares = match c {
                Some(core) if vm_running & (1 << core) != 0 => spare,
                _ => 0,
            };
            (0..count)
                .filter(move |&i| placed[i] == c)
                .map(move |i| (Some(i), c))
                .chain((0..spares).map(move |_| (None, c)))
        });
        let first = manifest.get(0).ok_or("the manifest has no VMs")?;
        let first_image = images::get(first.image).ok_or("an image vanished")?;
        let all = memory::leak_slice(
            count + runtime_places,
            |_| {
                let (i, core) = order.next().ok_or("the plan lost a VM")?;
                let Some(i) = i else {
                    // A place no VM holds yet (its fields are replaced
                    // whole when a VM is started in it).
                    let mut st = VmState::new(u32::MAX, first, first_image);
                    st.cell = u32::MAX;
                    st.dormant = true;
                    st.core = core;
                    return Ok(st);
                };
                let spec = manifest.get(i).ok_or("a manifest entry vanished")?;
                let image = images::get(spec.image).ok_or("an image vanished")?;
                let mut st = VmState::new(i as u32, spec, image);
                st.core = placed[i];
                Ok(st)
            },
            NO_MEMORY,
        )?;
        let mut plan = Plan {
            owned: core::array::from_fn(|_| Mutex::new(None)),
            unplaced: Mutex::new(&mut []),
            count,
            cores,
            shared,
            net: {
                super::net::bring_up_nics(manifest)?;
                let core_slots = cores.iter().map(|c| c.index + 1).max().unwrap_or(1);
                Net::build(manifest, core_slots, runtime_places)?
            },
            poll_cores,
            vm_cores: vm_running.count_ones(),
            vm_finished: AtomicU32::new(0),
            finished: AtomicU32::new(0),
            control: None,
            manifest: *manifest,
            retired: Mutex::new(Retired::default()),
        };
        let mut rest = all;
        for (core, slot) in plan.owned.iter_mut().enumerate() {
            let n = rest
                .iter()
                .take_while(|st| st.core == Some(core as u32))
                .count();
            if n == 0 {
                continue;
            }
            let (vms, after) = rest.split_at_mut(n);
            rest = after;
            let boot = vms.iter().filter(|st| !st.dormant).count();
            let queue = memory::leak_slice(n, |k| Ok(k as u32), NO_MEMORY)?;
            *slot.get_mut() = Some(CoreVms { vms, queue, boot });
        }
        *plan.unplaced.get_mut() = rest;
        if manifest.service() {
            let place = |i: usize| placed.get(i).copied().flatten().unwrap_or(NO_CORE);
            let cp = ControlPlane::new(*manifest, vm_running, place)?;
            // The manifest's VMs keep their lines in their places' histories.
            for slot in plan.owned.iter_mut() {
                if let Some(core_vms) = slot.get_mut() {
                    for st in core_vms.vms.iter_mut().filter(|st| !st.dormant) {
                        st.line.keep_in(cp.history(st.cell));
                    }
                }
            }
            plan.control = Some(cp);
        }
        Ok(plan)
    }

    /// The cores running VMs.
    pub fn cores(&self) -> &'static [Core] {
        self.cores
    }

    /// Reports the VMs none of whose cores is running (boot core, before
    /// the cores start).
    pub fn report_unplaced(&self) {
        for st in self.unplaced.lock().iter_mut() {
            let text = StackStr::<REASON_BYTES>::format(format_args!(
                "cannot start: none of its cores ({:#x}) is running",
                st.spec.cores
            ));
            end(
                st,
                VmStatus::Killed,
                0,
                text.as_str(),
                self.control.as_ref(),
            );
            self.net.detach(st.cell, st.spec.net_ports, true);
        }
    }

    /// Runs this core's VMs until all have ended for good, or, on a core
    /// that polls links, moves frames until every VM core is done.
    pub fn run_core(&self, core: u32) {
        if let Some(cp) = self.control.as_ref().filter(|_| core == CONTROL_CORE) {
            self.serve_control(cp, core);
            self.finished.fetch_add(1, Ordering::Release);
            return;
        }
        if self.poll_cores & (1 << core) != 0 {
            self.net.poll(core, || {
                self.vm_finished.load(Ordering::Acquire) >= self.vm_cores
            });
            self.finished.fetch_add(1, Ordering::Release);
            return;
        }
        // This core's own VMs: nobody else takes the lock while it runs.
        if let Some(slot) = self.owned.get(core as usize)
            && let Some(own) = slot.lock().as_mut()
        {
            self.run_vms(own.vms, own.queue, own.boot, core);
        }
        self.vm_finished.fetch_add(1, Ordering::Release);
        self.finished.fetch_add(1, Ordering::Release);
    }

    /// The control core of a service run: serves the control channel (and
    /// polls its links and NICs, if it has any) until the operator ends the
    /// run and every VM core has stopped its VMs, then sends the last
    /// answers.
    fn serve_control(&self, cp: &ControlPlane, core: u32) {
        log::info!("service run: control channel on COM2; waiting for commands");
        let over = || cp.ending() && self.vm_finished.load(Ordering::Acquire) >= self.vm_cores;
        // It polls the links made while the host runs, beside any of the
        // manifest's links and NICs it was given.
        self.net.poll(core, || {
            cp.serve(&self.net);
            over()
        });
        cp.flush(&self.net);
    }

    fn run_vms(&self, vms: &mut [VmState], queue: &mut [u32], boot: usize, core: u32) {
        let mut sched = RoundRobin::with_first(queue, boot, self.shared.timeslice);
        // The VM whose VMCS is current, and the VM whose CPU state (x87/SSE,
        // CR2, KERNEL_GS_BASE) is in the registers; they differ after a VM
        // is destroyed (its VMCS is cleared, its state still in the CPU).
        let mut loaded: Option<u32> = None;
        let mut state_owner: Option<u32> = None;
        loop {
            serial::pump();
            if let Some(cp) = &self.control {
                while let Some(mail) = cp.take_mail(core) {
                    let local = match mail.job {
                        Job::Start { .. } => vms.iter().position(|st| st.dormant),
                        Job::Vm(_) => vms.iter().position(|st| st.index == mail.vm),
                    };
                    // A VM the request destroys (or the place a new one
                    // takes) is neither current nor in the registers any more.
                    let local = local.map(|l| l as u32);
                    if local.is_some() && loaded == local {
                        loaded = None;
                    }
                    if local.is_some() && state_owner == local {
                        state_owner = None;
                    }
                    self.apply(cp, mail, local, vms, &mut sched, core);
                }
                if cp.ending() {
                    // Requests that came with the end are answered, not lost.
                    while let Some(mail) = cp.take_mail(core) {
                        cp.answer(
                            mail.seq,
                            Err(Text::format(format_args!("not carried out: the run ended"))),
                        );
                    }
                    for st in vms.iter_mut() {
                        if !st.dormant && cp.status(st.cell) == VM_RUNNING {
                            self.operator_stop(st, "stopped: the run ended", cp);
                        }
                    }
                    break;
                }
            }
            let (i, others_waiting) = match sched.next(&mut View {
                vms: &mut *vms,
                net: &self.net,
            }) {
                Next::Run { vm, others_waiting } => (vm, others_waiting),
                Next::Idle => {
                    core::hint::spin_loop();
                    continue;
                }
                // A service run's core waits for commands.
                Next::Done if self.control.is_some() => {
                    core::hint::spin_loop();
                    continue;
                }
                Next::Done => break,
            };
            if state_owner != Some(i)
                && let Some(prev) = state_owner
            {
                let prev = &mut vms[prev as usize];
                if prev.vm.is_some() {
                    prev.save_cpu_state();
                }
            }
            let st = &mut vms[i as usize];
            // A slice begins whenever the VM gets the core after another one
            // (or after its own restart).
            let ready = if st.vm.is_none() {
                if st.restarts == 0 && st.slices == 0 {
                    start_record(st, self.cores);
                }
                st.slices += 1;
                loaded = Some(i);
                let made = vm::create(st, &self.shared, &self.net).map_err(StopReason::StartFailed);
                self.release(st);
                made
            } else if loaded != Some(i) {
                st.slices += 1;
                loaded = Some(i);
                vm::load(st)
            } else {
                Ok(())
            };
            if state_owner != Some(i) {
                // A new run starts from the clean state `create` put in place.
                st.restore_cpu_state();
                state_owner = Some(i);
            }
            let end = match ready {
                Err(reason) => SliceEnd::Stopped(reason),
                Ok(()) => vm::run_slice(st, others_waiting, &self.shared, &self.net, core),
            };
            start_to_main(st);
            if let Some(cp) = &self.control {
                cp.set_counters(st.cell, st.cpu.exits.iter().sum(), st.cpu.ran);
            }
            match end {
                SliceEnd::Preempted => {
                    sched.result(i, Ran::Preempted);
                }
                SliceEnd::Waiting => {
                    sched.result(i, Ran::Waiting);
                }
                SliceEnd::Stopped(reason) => {
                    loaded = None;
                    // Its next run starts from a clean state.
                    state_owner = None;
                    let cp = self.control.as_ref();
                    let ended =
                        stopped(st, reason, |ran| sched.result(i, ran), &self.net, core, cp);
                    // A runtime VM's place is free once it has ended.
                    st.dormant = ended && st.cell as usize >= self.count;
                }
            }
        }
    }

    /// Carries out an operator's request on one of this core's VMs (between
    /// slices: none of them is running), at position `local`, and answers it.
    fn apply(
        &self,
        cp: &ControlPlane,
        mail: Mail,
        local: Option<u32>,
        vms: &mut [VmState],
        sched: &mut RoundRobin<'_>,
        core: u32,
    ) {
        let seq = mail.seq;
        match mail.job {
            Job::Start {
                template,
                cell,
                reserved,
                memory,
                command,
            } => {
                let place = Place {
                    id: mail.vm,
                    template,
                    cell,
                    reserved,
                    memory,
                    command,
                };
                self.start(cp, place, local, vms, sched, core, seq);
            }
            Job::Vm(request) => match local.and_then(|l| vms.get_mut(l as usize).map(|st| (l, st))) {
                None => cp.answer(seq, Err(Text::format(format_args!("no such VM")))),
                Some((_, st)) if st.dormant => cp.answer(
                    seq,
                    Err(Text::format(format_args!(
                        "{} has ended, and VMs started at runtime are gone once they end; start another",
                        st.name
                    ))),
                ),
                Some((l, st)) => self.request(cp, request, l, st, sched, core, seq),
            },
        }
    }

    /// A stop, restart or tuning of the VM at position `local`, answered
    /// `seq`.
    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        cp: &ControlPlane,
        request: Request,
        local: u32,
        st: &mut VmState,
        sched: &mut RoundRobin<'_>,
        core: u32,
        seq: u32,
    ) {
        let name = st.name.clone();
        let ended = cp.status(st.cell) != VM_RUNNING;
        let refuse = |text: Text| cp.answer(seq, Err(text));
        match (request, ended) {
            (Request::Stop, true) => refuse(Text::format(format_args!("{name} has already ended"))),
            (Request::Stop, false) => {
                sched.remove(local);
                self.operator_stop(st, "stopped by the operator", cp);
                cp.answer(seq, Ok(()));
            }
            // An ended VM keeps them for its next restart.
            (Request::Budget(budget), _) => {
                // Checked against what it ran at its next slice: a budget
                // it has used up already stops it then.
                st.spec.budget = budget;
                st.line.note(format_args!(
                    "-- budget set by the operator: {budget} instructions (0: none)"
                ));
                cp.answer(seq, Ok(()));
            }
            (Request::Slice(ticks), _) => {
                st.slice = (ticks != 0).then_some(ticks);
                st.line.note(format_args!(
                    "-- slice set by the operator: {ticks} instructions (0: the run's)"
                ));
                cp.answer(seq, Ok(()));
            }
            (Request::Restart, _) => {
                if st.vm.is_some() {
                    st.flush_console();
                    vm::destroy(st, &self.net);
                }
                // Back in the queue if it had left it.
                if ended && !sched.admit(local) {
                    refuse(Text::format(format_args!(
                        "{name}: no room in core {core}'s run queue"
                    )));
                } else {
                    st.restarts += 1;
                    cp.set_restarts(st.cell, st.restarts);
                    st.line.note(format_args!(
                        "-- restarting (restart {}): {OPERATOR_RESTART}",
                        st.restarts
                    ));
                    serial::record(&Record::VmRestart {
                        vm: st.index,
                        attempt: st.restarts,
                        reason: OPERATOR_RESTART,
                    });
                    cp.answer(seq, Ok(()));
                }
            }
        }
    }

    /// Starts a VM in `place` at position `local` (a place no VM holds) of
    /// this core, answered `seq`.
    #[allow(clippy::too_many_arguments)]
    fn start(
        &self,
        cp: &ControlPlane,
        place: Place,
        local: Option<u32>,
        vms: &mut [VmState],
        sched: &mut RoundRobin<'_>,
        core: u32,
        seq: u32,
    ) {
        let fail = |why: Text| {
            cp.release(place.reserved);
            cp.set_status(place.cell, VM_KILLED);
            cp.answer(seq, Err(why));
        };
        let spec = if place.template == service::NO_TEMPLATE {
            cp.spec(place.cell)
        } else {
            self.manifest.get(place.template as usize)
        };
        let image = spec.and_then(|s| images::get(s.image));
        let (Some(spec), Some(image)) = (spec, image) else {
            return fail(Text::format(format_args!("its entry's image is gone")));
        };
        // The control core counts places per core, so one is free.
        let Some((local, slot)) = local.and_then(|l| vms.get_mut(l as usize).map(|s| (l, s)))
        else {
            return fail(Text::format(format_args!("core {core} has no free place")));
        };
        if slot.index != u32::MAX {
            let mut r = self.retired.lock();
            r.exited_ok += usize::from(slot.ended_ok);
            r.restarts += u64::from(slot.restarts);
            r.private += slot.private_bytes;
            r.overhead += slot.overhead_bytes;
        }
        let mut st = VmState::new(place.id, spec, image);
        st.cell = place.cell;
        st.name = cp.name(place.cell);
        // The operator's overrides (checked by the channel), kept across
        // the VM's restarts.
        if place.memory != 0 {
            st.spec.memory = place.memory;
        }
        st.args = cp.args(place.cell);
        // A new VM in the place: its history starts empty.
        let history = cp.history(place.cell);
        if let Some(h) = history {
            h.clear();
        }
        st.line.keep_in(history);
        st.core = Some(core);
        st.reserved = place.reserved;
        st.start_mail_tsc = Some(instr::rdtsc());
        st.command_tsc = place.command;
        *slot = st;
        if !sched.admit(local) {
            slot.dormant = true;
            return fail(Text::format(format_args!(
                "no room in core {core}'s run queue"
            )));
        }
        cp.answer(seq, Ok(()));
    }

    /// Memory set aside for a VM started at runtime goes back to the pool
    /// once it is created (or will not be).
    fn release(&self, st: &mut VmState) {
        if st.reserved > 0
            && let Some(cp) = &self.control
        {
            cp.release(st.reserved);
        }
        st.reserved = 0;
    }

    /// Stops a VM for good at the operator's word (it is not running).
    fn operator_stop(&self, st: &mut VmState, why: &str, cp: &ControlPlane) {
        st.flush_console();
        if st.vm.is_some() {
            vm::destroy(st, &self.net);
        }
        self.release(st);
        self.net.detach(st.cell, st.spec.net_ports, true);
        if st.restarts == 0 && st.slices == 0 {
            // Stopped before it ever ran: the report still hears of it.
            start_record(st, self.cores);
        }
        end(st, VmStatus::Stopped, 0, why, Some(cp));
        // A runtime VM's place is free once it has ended.
        st.dormant = st.cell as usize >= self.count;
    }

    /// Runs `f` on every VM's state (boot core, after [`Plan::wait_all`]:
    /// every core has let go of its VMs).
    fn each_vm(&self, mut f: impl FnMut(&VmState)) {
        for slot in &self.owned {
            if let Some(own) = slot.lock().as_ref() {
                // Places no VM ever held are left out.
                own.vms
                    .iter()
                    .filter(|st| st.index != u32::MAX)
                    .for_each(&mut f);
            }
        }
        self.unplaced.lock().iter().for_each(f);
    }

    /// Prints every link's counters and the steady-state window (boot core,
    /// after [`Plan::wait_all`]).
    pub fn report_links(&self) {
        self.net.report(|vm| {
            let mut name = "?";
            self.each_vm(|st| {
                if st.cell == vm {
                    name = st.spec.name;
                }
            });
            name
        });
        // VM hooks still attached at runtime (those that left were
        // reported then), after the manifest's.
        if let Some(cp) = &self.control {
            super::runtime_hooks::report_vm_hooks(|cell| cp.name(cell));
            // Links made at runtime, named as their VMs are now (one
            // started at runtime by its own name, not its entry's).
            self.net.report_made(|cell| cp.name(cell));
        }
        if self.net.link_count() > 0 {
            let t = self.net.totals();
            log::info!(
                "links: {} frames ({} bytes) delivered, {} dropped (receiver gone), {} dropped (too large), {} dropped (receiver stalled, {} stalls)",
                t.frames,
                t.bytes,
                t.drop_peer,
                t.drop_size,
                t.drop_stalled,
                t.stalls
            );
        }
    }

    /// Waits until every core has finished its VMs.
    pub fn wait_all(&self) {
        while self.finished.load(Ordering::Acquire) < self.cores.len() as u32 {
            serial::pump();
            core::hint::spin_loop();
        }
    }

    /// Prints the end-of-run summary (boot core, after [`Plan::wait_all`]).
    pub fn print_summary(&self) {
        let r = *self.retired.lock();
        let (mut exited, mut restarts, mut private, mut overhead) =
            (r.exited_ok, r.restarts, r.private, r.overhead);
        self.each_vm(|st| {
            exited += usize::from(st.ended_ok);
            restarts += u64::from(st.restarts);
            private += st.private_bytes;
            overhead += st.overhead_bytes;
        });
        let count = self
            .control
            .as_ref()
            .map_or(self.count, |cp| cp.started() as usize);
        log::info!(
            "all {count} VMs ended: {exited} exited 0, {} did not; {restarts} restarts",
            count.saturating_sub(exited)
        );
        log::info!(
            "guest memory: {} KiB private, {} KiB shared (once per image); hypervisor overhead {} KiB",
            private >> 10,
            images::shared_total() >> 10,
            overhead >> 10
        );
    }

    /// VMs in the manifest.
    pub fn count(&self) -> usize {
        self.count
    }
}

/// A VM started at runtime that reached `main`: how long that took on its
/// core, from the `start` request (`start_to_main`, in TSC ticks), and,
/// for the first VM of a command, from the control core taking the
/// command (`command_to_main`: the emulated CPUs' TSCs advance together,
/// one tick per instruction).
fn start_to_main(st: &mut VmState) {
    if let (Some(mail), Some(main)) = (st.start_mail_tsc, st.main_tsc) {
        st.start_mail_tsc = None;
        serial::record(&Record::Metric {
            vm: st.index,
            name: START_TO_MAIN,
            value: main.saturating_sub(mail),
        });
        if let Some(command) = st.command_tsc.take() {
            serial::record(&Record::Metric {
                vm: st.index,
                name: COMMAND_TO_MAIN,
                value: main.saturating_sub(command),
            });
        }
    }
}

fn start_record(st: &VmState, cores: &[Core]) {
    let core = st.core.unwrap_or(0);
    let apic = cores
        .iter()
        .find(|c| c.index == core)
        .map_or(0, |c| c.apic_id);
    st.line.note(format_args!(
        "-- starting image {} on core {core} (APIC {apic}) with {} KiB",
        st.spec.image,
        st.spec.memory >> 10
    ));
    serial::record(&Record::VmStart {
        vm: st.index,
        name: &st.name,
        entry: st.spec.entry,
        image: st.spec.image,
        core,
        apic,
        memory: st.spec.memory,
    });
}

/// A run of the VM ended: restart it (if `requeue` takes it back) or
/// report its end; whether it ended for good.
fn stopped(
    st: &mut VmState,
    reason: StopReason,
    mut requeue: impl FnMut(Ran) -> bool,
    net: &Net,
    core: u32,
    cp: Option<&ControlPlane>,
) -> bool {
    st.flush_console();
    let instructions = st.cpu.ran_this_run();
    vm::destroy(st, net);
    let failed = reason != StopReason::Exited(0);
    // A restart hook, if the VM has one, decides; else the policy.
    let hook = HookRef::of(net, st.cell, HookKind::Restart);
    let ask = || {
        let (status, class) = reason.hook_class();
        let ctx = RestartCtx {
            vm: st.index,
            clone: 0,
            status,
            exit_code: reason.code(),
            reason: class,
            restarts: st.restarts,
            instructions,
        };
        hook.and_then(|h| h.with(|h| h.restart(&ctx, core)))
    };
    let policy = (st.spec.restart == Restart::OnFailure, st.spec.restart_limit);
    if restart_decision(failed, st.restarts, policy, ask) {
        st.restarts += 1;
        let why = reason_text(&reason);
        st.line.note(format_args!(
            "-- restarting (restart {}): {}",
            st.restarts,
            why.as_str()
        ));
        serial::record(&Record::VmRestart {
            vm: st.index,
            attempt: st.restarts,
            reason: why.as_str(),
        });
        if let Some(cp) = cp {
            cp.set_restarts(st.cell, st.restarts);
        }
        if requeue(Ran::Restarting) {
            return false;
        }
    }
    requeue(Ran::Ended);
    // It will not run again: frames for its ports are dropped from now on.
    net.detach(st.cell, st.spec.net_ports, true);
    let status = if reason.exited() {
        VmStatus::Exited
    } else {
        VmStatus::Killed
    };
    end(st, status, reason.code(), reason_text(&reason).as_str(), cp);
    true
}

fn end(st: &mut VmState, status: VmStatus, code: i64, reason: &str, cp: Option<&ControlPlane>) {
    st.ended_ok = status == VmStatus::Exited && code == 0;
    match (status, reason.is_empty()) {
        (VmStatus::Killed, false) => st.line.note(format_args!("-- killed: {reason}")),
        (_, false) => st.line.note(format_args!("-- {reason}")),
        (_, true) => st
            .line
            .note(format_args!("-- {} (code {code})", status.name())),
    }
    if let Some(cp) = cp {
        let row = match status {
            VmStatus::Exited => VM_EXITED,
            VmStatus::Stopped => VM_STOPPED,
            VmStatus::Killed | VmStatus::Running => VM_KILLED,
        };
        cp.set_status(st.cell, row);
    }
    serial::record(&Record::VmEnd {
        vm: st.index,
        status,
        code,
        boot: st.boot_instructions(),
        restarts: st.restarts,
        slices: st.slices,
        private: st.private_bytes,
        shared: st.shared_bytes,
        overhead: st.overhead_bytes,
        exits: st.cpu.exits,
        console: st.console.printed,
        console_dropped: st.console.dropped,
        reason,
    });
}
