//! Running the manifest: every VM is assigned to one core for its whole
//! life, and each core runs its VMs round-robin, switching when the VMX
//! preemption timer ends a slice and another VM waits. A VM that fails and
//! may restart goes back into its core's queue and comes back with fresh
//! memory. The boot core waits for every core, then reports `done`.

use super::images;
use super::memory;
use super::net::Net;
use super::percpu::MAX_CORES;
use super::serial;
use super::smp::Core;
use super::vm::{self, VmState};
use super::vmx::VmxShared;
use crate::console::StackStr;
use crate::sched::{self, RunQueue};
use crate::vcpu::slice::SliceEnd;
use crate::vcpu::stop::StopReason;
use core::sync::atomic::{AtomicU32, Ordering};
use vmm_abi::layout::PAGE_SIZE;
use vmm_abi::manifest::{Manifest, Restart};
use vmm_abi::report::{Record, VmStatus};

/// Bytes reserved for one stop reason in a record.
const REASON_BYTES: usize = 200;

/// The run, shared by every core.
pub struct Plan {
    states: *mut VmState,
    count: usize,
    queues: *mut u32,
    /// Per core: offset and length of its queue in `queues`.
    ranges: [(usize, usize); MAX_CORES],
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
}

// SAFETY: `states[i]` is only ever touched by the core VM `i` is assigned
// to (the assignment is fixed before any core starts running VMs), and each
// core's queue slice is disjoint from the others'. Everything else in a
// Plan is read-only after `build`, or atomic.
unsafe impl Sync for Plan {}
// SAFETY: as above; the raw pointers only refer to frames the plan owns.
unsafe impl Send for Plan {}

fn reason_text(r: &StopReason) -> StackStr<REASON_BYTES> {
    StackStr::format(format_args!("{r}"))
}

impl Plan {
    /// Lays out the run: state for every VM (from the frame allocator), the
    /// core of each, and each core's queue in manifest order.
    pub fn build(
        manifest: &Manifest<'static>,
        cores: &'static [Core],
        shared: VmxShared,
    ) -> Result<Plan, &'static str> {
        let count = manifest.len();
        let state_bytes = (count * core::mem::size_of::<VmState>()) as u64;
        let states = memory::alloc_zeroed_pages(state_bytes.div_ceil(PAGE_SIZE))
            .ok_or("no memory for VM state")? as *mut VmState;
        let queue_bytes = (count * core::mem::size_of::<u32>()) as u64;
        let queues = memory::alloc_zeroed_pages(queue_bytes.div_ceil(PAGE_SIZE))
            .ok_or("no memory for run queues")? as *mut u32;
        for (i, spec) in manifest.iter().enumerate() {
            let image = images::get(spec.image).ok_or("an image vanished")?;
            // SAFETY: `states` has room for `count` states (allocated above,
            // suitably aligned as a page); slot `i` is written once here.
            unsafe { states.add(i).write(VmState::new(i as u32, spec, image)) };
        }
        let running = cores.iter().fold(0u64, |m, c| m | (1 << c.index));
        let poll_cores = manifest.poll_cores();
        if poll_cores & !running != 0 {
            return Err(
                "a link is polled by a core that is not running (see the `core` of each link)",
            );
        }
        let vm_running = running & !poll_cores;
        if vm_running == 0 {
            return Err("every running core polls links: none is left to run VMs");
        }
        let mut plan = Plan {
            states,
            count,
            queues,
            ranges: [(0, 0); MAX_CORES],
            cores,
            shared,
            net: Net::build(manifest)?,
            poll_cores,
            vm_cores: vm_running.count_ones(),
            vm_finished: AtomicU32::new(0),
            finished: AtomicU32::new(0),
        };
        sched::assign(
            vm_running,
            count,
            // SAFETY: only the boot core runs now; states are initialised.
            // A pinned VM keeps only its cores that run VMs (the manifest
            // guarantees it names at least one).
            |i| unsafe {
                match (*plan.states.add(i)).spec.cores {
                    0 => 0,
                    m if m & !poll_cores == 0 => m,
                    m => m & !poll_cores,
                }
            },
            // SAFETY: as above.
            |i, core| unsafe { (*plan.states.add(i)).core = core },
        );
        let mut next = 0;
        for c in cores {
            let start = next;
            for i in 0..count {
                // SAFETY: as above; `next` < count because each VM is queued once.
                unsafe {
                    if (*plan.states.add(i)).core == Some(c.index) {
                        plan.queues.add(next).write(i as u32);
                        next += 1;
                    }
                }
            }
            plan.ranges[c.index as usize] = (start, next - start);
        }
        Ok(plan)
    }

    /// The state of VM `i`.
    ///
    /// # Safety
    /// Only the core VM `i` is assigned to may call this (or the boot core
    /// before any core runs VMs), and it may hold one such reference at a time
    /// per VM.
    #[allow(clippy::mut_from_ref)]
    unsafe fn state(&self, i: usize) -> &mut VmState {
        debug_assert!(i < self.count);
        // SAFETY: the caller guarantees exclusive access to slot `i`, which
        // `build` initialised.
        unsafe { &mut *self.states.add(i) }
    }

    /// The cores running VMs.
    pub fn cores(&self) -> &'static [Core] {
        self.cores
    }

    /// Reports the VMs none of whose cores is running (boot core, before
    /// the cores start).
    pub fn report_unplaced(&self) {
        for i in 0..self.count {
            // SAFETY: only the boot core runs, before any core runs VMs.
            let st = unsafe { self.state(i) };
            if st.core.is_none() {
                let text = StackStr::<REASON_BYTES>::format(format_args!(
                    "cannot start: none of its cores ({:#x}) is running",
                    st.spec.cores
                ));
                end(st, VmStatus::Killed, 0, text.as_str());
                self.net.detach(st.index, st.spec.net_ports, true);
            }
        }
    }

    /// Runs this core's VMs until all have ended for good, or, on a core
    /// that polls links, moves frames until every VM core is done.
    pub fn run_core(&self, core: u32) {
        if self.poll_cores & (1 << core) != 0 {
            self.net.poll(core, || {
                self.vm_finished.load(Ordering::Acquire) >= self.vm_cores
            });
            self.finished.fetch_add(1, Ordering::Release);
            return;
        }
        let (start, len) = self.ranges[core as usize];
        // SAFETY: each core's range of queue slots is its own (see `build`).
        let slots = unsafe { core::slice::from_raw_parts_mut(self.queues.add(start), len) };
        let mut queue = RunQueue::full(slots);
        // The VM whose VMCS is current, and the VM whose CPU state (x87/SSE,
        // CR2, KERNEL_GS_BASE) is in the registers; they differ after a VM
        // is destroyed (its VMCS is cleared, its state still in the CPU).
        let mut loaded: Option<u32> = None;
        let mut state_owner: Option<u32> = None;
        // VMs passed over in a row because they still wait for work.
        let mut passed = 0;
        while let Some(i) = queue.pop() {
            serial::pump();
            // SAFETY: VM `i` is in this core's queue, so it is assigned here.
            if !vm::wait_over(unsafe { self.state(i as usize) }, &self.net) {
                queue.push(i);
                passed += 1;
                if passed >= queue.len() {
                    passed = 0;
                    core::hint::spin_loop();
                }
                continue;
            }
            passed = 0;
            // A VM that owes a whole slice or more (its exits ran long past
            // its slices) sits this turn out while others wait, so however
            // long one exit takes, its core-mates get their share.
            {
                // SAFETY: VM `i` is in this core's queue, so it is assigned here.
                let st = unsafe { self.state(i as usize) };
                if !queue.is_empty() && st.cpu.debt >= self.shared.timeslice {
                    st.cpu.debt -= self.shared.timeslice;
                    queue.push(i);
                    continue;
                }
            }
            if state_owner != Some(i)
                && let Some(prev) = state_owner
            {
                // SAFETY: `prev` is assigned to this core (it ran here).
                let prev = unsafe { self.state(prev as usize) };
                if prev.vm.is_some() {
                    prev.save_cpu_state();
                }
            }
            // SAFETY: VM `i` is in this core's queue, so it is assigned here.
            let st = unsafe { self.state(i as usize) };
            // A slice begins whenever the VM gets the core after another one
            // (or after its own restart).
            let ready = if st.vm.is_none() {
                if st.restarts == 0 && st.slices == 0 {
                    start_record(st, self.cores);
                }
                st.slices += 1;
                loaded = Some(i);
                vm::create(st, &self.shared, &self.net).map_err(StopReason::StartFailed)
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
                Ok(()) => vm::run_slice(st, !queue.is_empty(), &self.shared, &self.net, core),
            };
            match end {
                SliceEnd::Preempted | SliceEnd::Waiting => {
                    queue.push(i);
                }
                SliceEnd::Stopped(reason) => {
                    loaded = None;
                    stopped(st, reason, &mut queue, &self.net);
                }
            }
        }
        self.vm_finished.fetch_add(1, Ordering::Release);
        self.finished.fetch_add(1, Ordering::Release);
    }

    /// Prints every link's counters and the steady-state window (boot core,
    /// after [`Plan::wait_all`]).
    pub fn report_links(&self) {
        self.net.report(|vm| {
            // SAFETY: every core has finished; only the boot core runs now.
            unsafe { self.state(vm as usize) }.spec.name
        });
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
        let (mut exited, mut restarts, mut private, mut overhead) = (0, 0u64, 0u64, 0u64);
        for i in 0..self.count {
            // SAFETY: every core has finished; only the boot core runs now.
            let st = unsafe { self.state(i) };
            exited += usize::from(st.ended_ok);
            restarts += u64::from(st.restarts);
            private += st.private_bytes;
            overhead += st.overhead_bytes;
        }
        log::info!(
            "all {} VMs ended: {exited} exited 0, {} did not; {restarts} restarts",
            self.count,
            self.count - exited
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

fn start_record(st: &VmState, cores: &[Core]) {
    let core = st.core.unwrap_or(0);
    let apic = cores
        .iter()
        .find(|c| c.index == core)
        .map_or(0, |c| c.apic_id);
    serial::record(&Record::VmStart {
        vm: st.index,
        name: st.spec.name,
        image: st.spec.image,
        core,
        apic,
        memory: st.spec.memory,
    });
}

/// A run of the VM ended: restart it or report its end.
fn stopped(st: &mut VmState, reason: StopReason, queue: &mut RunQueue<'_>, net: &Net) {
    st.flush_console();
    vm::destroy(st, net);
    let failed = reason != StopReason::Exited(0);
    if failed && st.spec.restart == Restart::OnFailure && st.restarts < st.spec.restart_limit {
        st.restarts += 1;
        serial::record(&Record::VmRestart {
            vm: st.index,
            attempt: st.restarts,
            reason: reason_text(&reason).as_str(),
        });
        if queue.push(st.index) {
            return;
        }
    }
    // It will not run again: frames for its ports are dropped from now on.
    net.detach(st.index, st.spec.net_ports, true);
    let status = if reason.exited() {
        VmStatus::Exited
    } else {
        VmStatus::Killed
    };
    end(st, status, reason.code(), reason_text(&reason).as_str());
}

fn end(st: &mut VmState, status: VmStatus, code: i64, reason: &str) {
    st.ended_ok = status == VmStatus::Exited && code == 0;
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
