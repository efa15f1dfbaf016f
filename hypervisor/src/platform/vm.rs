//! One VM: its state across runs ([`VmState`]), its creation (private
//! memory, the image's shared read-only pages, boot info, guest page tables,
//! EPT, VMCS), a run slice (the exit loop of `vcpu::slice` over this VM's
//! VMCS, devices and signals), and its teardown, which returns every frame
//! it held.

use super::blocks;
use super::clock;
use super::images::{CachedImage, SharedRange};
use super::instr;
use super::memory::{self, FrameTables};
use super::net::{self, Net, PortEvent};
use super::percpu::PerCore;
use super::runtime_hooks::{self, HookRef};
use super::serial;
use super::service;
use super::smp;
use super::vcpu::{Tsc, VmxVcpu};
use super::vmx::{self, Launch, VmxShared};
use crate::console::LineBuffer;
use crate::console::quota::{
    Admit, CONSOLE_BURST, CONSOLE_CAP, CONSOLE_RATE, ConsoleQuota, RATE_PERIOD,
};
use crate::control::Name;
use crate::cpuid::CpuidResult;
use crate::devices::bus::{Bus, BusDevice, Effect};
use crate::devices::virtio::blk::{self as vblk, BlkDevice};
use crate::devices::virtio::console::{self as vconsole, ConsoleDevice};
use crate::devices::virtio::error::RingError;
use crate::devices::virtio::mmio::{MmioError, Transport, TransportConfig, WriteEffect};
use crate::dispatch::Host;
use crate::elf::Image;
use crate::hooks::lifecycle::{ExitAnswer, VmHook};
use crate::hvt::boot as hvt_boot;
use crate::hvt::call::{HvtEnv, HvtNets, MAX_VM_BLOCKS, RETRY_LIMIT_SECONDS, SharedDisk};
use crate::hvt::image as hvt_image;
use crate::hvt::net::{self as hvt_net, MAX_VM_NETS, ProgramError, RING_RESERVE, RingPlace};
use crate::hvt::ring as hvt_ring;
use crate::hypercall::Services;
use crate::mem::access::{Gpa, GuestRead, Hpa, OutOfBounds};
use crate::mem::ept::{Ept, EptPerms};
use crate::mem::guest::GuestMemory;
use crate::mem::guest_tables;
use crate::mem::raw::{RamPiece, RawRam};
use crate::msr;
use crate::vcpu::hw::Clock;
use crate::vcpu::regs::GuestRegs;
use crate::vcpu::slice::{self, SliceEnd, SliceParams, VcpuState, VmEnv, Wakeups};
use crate::vcpu::stop::{StartError, StopReason};
use core::sync::atomic::Ordering;
use vmm_abi::corral::bootinfo::BootInfo;
use vmm_abi::corral::devices::port_mac;
use vmm_abi::corral::devices::{self, DeviceKind};
use vmm_abi::corral::hypercall::{WAIT_TIMEOUT, WAIT_WORK};
use vmm_abi::corral::layout::{BOOT_INFO_GPA, PAGE_SIZE, STACK_SIZE};
use vmm_abi::hook::HookKind;
use vmm_abi::hook::context::{ExitCtx, SliceCtx};
use vmm_abi::manifest::VmSpec;
use vmm_abi::manifest::{MAX_TIMESLICE, MIN_TIMESLICE};
use vmm_abi::report::{CONSOLE_SEPARATOR, Record};

/// Metric records one VM may emit over its whole life (restarts included).
const METRIC_LIMIT: u32 = 64;
/// Least time (TSC) between two `vm-progress` records of one VM.
const PROGRESS_EVERY: u64 = 50_000_000;
/// Least time (TSC) between two `vm-progress` records from one core, so a
/// core with many VMs never fills the console with them.
const PROGRESS_CORE_GAP: u64 = 20_000_000;
/// When each core last sent a `vm-progress` record (only that core writes
/// its entry).
static CORE_PROGRESS: PerCore = PerCore::new();
/// Bytes a console line ends with on the wire (CR LF).
const LINE_END_BYTES: usize = 2;
/// x87 control word after FNINIT.
const FCW_INIT: u16 = 0x037f;
/// MXCSR at reset: all exceptions masked.
const MXCSR_INIT: u32 = 0x1f80;
/// Offsets in the FXSAVE area (SDM Vol. 1, Table 10-2).
const FX_FCW: usize = 0;
const FX_MXCSR: usize = 24;
/// SysV: a function is entered with RSP 8 below a 16-byte boundary.
const ENTRY_STACK_BIAS: u64 = 8;
/// Most pieces (private or shared ranges) in one guest's memory map.
const MAX_PIECES: usize = 2 * super::images::MAX_SHARED + 1;

/// A guest-physical range and what backs it.
#[derive(Clone, Copy, Debug)]
struct Piece {
    gpa: u64,
    len: u64,
    /// `None`: private, at this offset into the private frames;
    /// `Some`: the image's shared range.
    shared: Option<SharedRange>,
    offset: u64,
}

/// The hardware resources of a VM that exists.
pub struct Vm {
    private_base: u64,
    private_len: u64,
    pieces: [Option<Piece>; MAX_PIECES],
    ept: Option<Ept>,
    vmcs: Option<u64>,
}

/// Everything the hypervisor keeps about one manifest VM, across restarts.
/// Only the core the VM is assigned to ever touches it.
pub struct VmState {
    /// Its id in the report: its manifest index, or for a VM started at
    /// runtime a number counted on from the last (never given twice).
    pub index: u32,
    /// Its place: the manifest index, or a place for VMs started at runtime
    /// (after the manifest's); its ports and signals are the place's.
    pub cell: u32,
    /// Its name (the manifest's, or the one it was started under).
    pub name: Name,
    /// A place for VMs started at runtime that holds none now (it never
    /// did, or its VM has ended).
    pub dormant: bool,
    /// Memory set aside for it until it is created (VMs started at runtime).
    pub reserved: u64,
    /// TSC when its core took the `start` request (VMs started at runtime,
    /// until it reaches `main`).
    pub start_mail_tsc: Option<u64>,
    /// TSC when the control core took the command that started it (the
    /// first VM a command started at runtime, until it reaches `main`).
    pub command_tsc: Option<u64>,
    /// Manifest entry (for a VM started at runtime, the one it copies).
    pub spec: VmSpec<'static>,
    /// Its image.
    pub image: &'static CachedImage,
    /// Core it runs on, if one of its cores is running.
    pub core: Option<u32>,
    /// Resources while it exists.
    pub vm: Option<Vm>,
    /// Registers, budget and slice accounts, exit counts, waits.
    pub cpu: VcpuState,
    /// VMLAUNCH done on the current VMCS.
    pub launched: bool,
    /// Times restarted.
    pub restarts: u32,
    /// Times scheduled onto its core after another VM.
    pub slices: u64,
    /// Its slice length set by the operator (`tune --slice`), instead of
    /// the run's; kept across restarts.
    pub slice: Option<u64>,
    /// Arguments it was started with instead of its entry's (`corral
    /// start --args`); kept across restarts.
    pub args: Option<super::service::Args>,
    /// Pending console text.
    pub line: LineBuffer,
    /// TSC the guest reported at `main` (this run).
    pub main_tsc: Option<u64>,
    /// TSC when this run's creation began.
    pub created_tsc: u64,
    /// Bytes of private guest memory (last run).
    pub private_bytes: u64,
    /// Bytes of shared guest memory mapped (last run).
    pub shared_bytes: u64,
    /// Hypervisor bytes for it (last run).
    pub overhead_bytes: u64,
    /// It ended for good by exiting with 0.
    pub ended_ok: bool,
    /// Its x87/MMX/SSE registers while another VM has the core.
    pub fx: instr::FxArea,
    /// Its CR2 while another VM has the core.
    pub cr2: u64,
    /// Its IA32_KERNEL_GS_BASE while another VM has the core.
    pub kernel_gs_base: u64,
    /// Its console account (all runs: the cap does not reset on restart).
    pub console: ConsoleQuota,
    /// Metrics it reported (all runs).
    pub metrics: u32,
    /// TSC of its last `vm-progress` record, and what it had done then
    /// (slices plus exits), so an idle VM sends none.
    pub progress_at: (u64, u64),
    /// Its virtio-console, if the manifest gave it one (this run).
    pub console_dev: Option<Transport<ConsoleDevice>>,
    /// A Corral guest's virtio-blk disks, in slot order (this run): each
    /// disk keeps its device's registers itself, so a VM without disks
    /// carries only this list.
    pub disks: heapless::Vec<&'static blocks::Block, MAX_VM_BLOCKS>,
    /// An hvt guest's net devices (this run): handles and ring places.
    pub hvt_nets: HvtNets,
    /// Bytes of memory the guest sees (an hvt guest with net devices sees
    /// all but the reserve their rings live in).
    pub visible: u64,
    /// TSC when an hvt guest's current hypercall first asked to run again
    /// (`Retry`), so that the call can give up after its bound.
    pub hvt_retry_since: Option<u64>,
    /// Where an hvt guest's shared net ring lies (this run), if it was
    /// offered one: the end of the memory it may use.
    pub hvt_ring: Option<u64>,
}

/// The x87/SSE state a new VM starts with (as after FNINIT, MXCSR at reset).
fn clean_fx() -> instr::FxArea {
    let mut fx = instr::FxArea([0; 512]);
    fx.0[FX_FCW..FX_FCW + 2].copy_from_slice(&FCW_INIT.to_le_bytes());
    fx.0[FX_MXCSR..FX_MXCSR + 4].copy_from_slice(&MXCSR_INIT.to_le_bytes());
    fx
}

impl VmState {
    /// A VM that has not started.
    pub fn new(index: u32, spec: VmSpec<'static>, image: &'static CachedImage) -> Self {
        VmState {
            index,
            cell: index,
            name: Name::try_from(spec.name).unwrap_or_default(),
            dormant: false,
            reserved: 0,
            start_mail_tsc: None,
            command_tsc: None,
            spec,
            image,
            core: None,
            vm: None,
            cpu: VcpuState::default(),
            launched: false,
            restarts: 0,
            slices: 0,
            slice: None,
            args: None,
            line: LineBuffer::new(),
            main_tsc: None,
            created_tsc: 0,
            private_bytes: 0,
            shared_bytes: 0,
            overhead_bytes: 0,
            ended_ok: false,
            fx: clean_fx(),
            cr2: 0,
            kernel_gs_base: 0,
            console: ConsoleQuota::default(),
            metrics: 0,
            progress_at: (0, 0),
            console_dev: None,
            disks: heapless::Vec::new(),
            hvt_nets: HvtNets::new(),
            visible: spec.memory,
            hvt_retry_since: None,
            hvt_ring: None,
        }
    }

    /// What sits in each of its device slots (its disks as `create` set
    /// them up).
    pub fn device_slots(&self) -> [DeviceKind; vmm_abi::corral::layout::MAX_DEVICES] {
        devices::slots_with_disks(self.spec.net_ports, self.spec.console, self.disks.len())
            .unwrap_or([DeviceKind::None; vmm_abi::corral::layout::MAX_DEVICES])
    }

    /// Saves the guest CPU state the VMCS does not hold (x87/SSE, CR2,
    /// KERNEL_GS_BASE) before another VM gets this core.
    pub fn save_cpu_state(&mut self) {
        instr::fxsave(&mut self.fx);
        self.cr2 = instr::read_cr2();
        // SAFETY: IA32_KERNEL_GS_BASE exists on every 64-bit CPU.
        self.kernel_gs_base = unsafe { instr::rdmsr(msr::IA32_KERNEL_GS_BASE) };
    }

    /// Puts this VM's CPU state back (or the clean state of a new run), so
    /// nothing of the VM that ran before leaks into it.
    pub fn restore_cpu_state(&self) {
        instr::fxrstor(&self.fx);
        // CR2 and IA32_KERNEL_GS_BASE are guest-visible scratch state the
        // hypervisor itself never uses (it runs without SWAPGS and reports
        // its own page faults from the exception frame first).
        // SAFETY: so writing the VM's values changes nothing of ours.
        unsafe {
            instr::write_cr2(self.cr2);
            instr::wrmsr(msr::IA32_KERNEL_GS_BASE, self.kernel_gs_base);
        }
    }

    /// Instructions from the start of this run's creation to its `main`.
    pub fn boot_instructions(&self) -> u64 {
        self.main_tsc
            .map_or(0, |t| t.saturating_sub(self.created_tsc))
    }

    /// Prints what is left of the guest's console line.
    pub fn flush_console(&mut self) {
        let (name, ran, quota) = (self.name.as_str(), self.cpu.ran, &mut self.console);
        let history = self.line.history();
        self.line.flush(&mut |l| {
            if guest_line(name, l, quota, ran)
                && let Some(h) = history
            {
                h.push(l);
            }
        });
    }

    /// Sends a `vm-progress` record if it did something since its last one
    /// and neither it nor its core `core` sent one lately, so a run cut
    /// short by its time bound still reports what each VM did.
    pub fn maybe_progress(&mut self, core: u32) {
        let now = instr::rdtsc();
        let done = self.slices + self.cpu.exits.iter().sum::<u64>();
        let (last, last_done) = self.progress_at;
        if done == last_done
            || now.wrapping_sub(last) < PROGRESS_EVERY
            || now.wrapping_sub(CORE_PROGRESS.get(core)) < PROGRESS_CORE_GAP
        {
            return;
        }
        self.progress_at = (now, done);
        CORE_PROGRESS.set(core, now);
        serial::record(&Record::VmProgress {
            vm: self.index,
            boot: self.boot_instructions(),
            restarts: self.restarts,
            slices: self.slices,
            exits: self.cpu.exits,
            console: self.console.printed,
            console_dropped: self.console.dropped,
        });
    }
}

/// One finished guest console line: printed if the VM's allowance and the
/// console's room let it (`true`), else dropped and counted (said once per
/// VM).
fn guest_line(name: &str, text: &str, quota: &mut ConsoleQuota, ran: u64) -> bool {
    // Charged for what it takes of the console: prefix, text and CR LF.
    let len = (name.len() + CONSOLE_SEPARATOR.len() + text.len() + LINE_END_BYTES) as u64;
    let verdict = match quota.admit(len, ran) {
        Admit::Print if serial::guest_line(name, text) => return true,
        Admit::Print => quota.unprint(len),
        other => other,
    };
    if verdict == Admit::FirstDrop {
        log::warn!(
            "{name}: console output beyond its allowance ({CONSOLE_BURST} bytes, then {CONSOLE_RATE} per {RATE_PERIOD} instructions it runs, {CONSOLE_CAP} in all) or while the console is full is dropped and counted"
        );
    }
    false
}

/// A running guest's console, metrics and `main` report: what its
/// hypercalls and its virtio-console write to.
struct GuestOut<'a> {
    index: u32,
    name: &'a str,
    line: &'a mut LineBuffer,
    main_tsc: &'a mut Option<u64>,
    console: &'a mut ConsoleQuota,
    metrics: &'a mut u32,
    /// `ran` when this slice began, and the TSC then.
    ran_before: u64,
    entered: u64,
}

impl Services for GuestOut<'_> {
    fn console(&mut self, bytes: &[u8]) {
        // Escaping and queueing happen here, in its exit, on its time; the
        // UART is fed later by whichever core has a moment.
        let ran = self
            .ran_before
            .saturating_add(instr::rdtsc().wrapping_sub(self.entered));
        let (name, quota) = (self.name, &mut *self.console);
        // Only what its bucket could still print is worth escaping: a line
        // is charged at least its raw bytes, so the rest is dropped as is,
        // and one exit never escapes more than a burst.
        let printable = usize::try_from(quota.printable(ran)).unwrap_or(usize::MAX);
        let (now, beyond) = bytes.split_at(bytes.len().min(printable));
        if printable == 0 {
            // Whatever line was being assembled cannot be printed either.
            let pending = self.line.discard() as u64;
            quota.drop(pending);
        }
        // A service run keeps the lines printed for `corral logs` too.
        let history = self.line.history();
        self.line.push(now, &mut |l| {
            if guest_line(name, l, quota, ran)
                && let Some(h) = history
            {
                h.push(l);
            }
        });
        if !beyond.is_empty() {
            quota.drop(beyond.len() as u64);
        }
    }

    fn metric(&mut self, name: &str, value: u64) {
        *self.metrics = self.metrics.saturating_add(1);
        if *self.metrics > METRIC_LIMIT {
            if *self.metrics == METRIC_LIMIT + 1 {
                log::warn!(
                    "{}: more than {METRIC_LIMIT} metrics; the rest are dropped",
                    self.name
                );
            }
            return;
        }
        serial::record(&Record::Metric {
            vm: self.index,
            name,
            value,
        });
    }

    fn main_started(&mut self, _guest_tsc: u64) {
        // The host's clock at this exit, not the value the guest claims: the
        // same counter (no TSC offsetting), but not the guest's to choose.
        self.main_tsc.get_or_insert_with(instr::rdtsc);
    }

    fn core_id(&self) -> u32 {
        smp::current_apic_id()
    }
}

/// Everything the exit loop reaches around one running guest: its
/// console, its devices (the bus), its signals from the polling cores,
/// the clock and the core's console feeding.
struct VmHost<'a> {
    out: GuestOut<'a>,
    index: u32,
    core: u32,
    ports: u8,
    slots: [DeviceKind; vmm_abi::corral::layout::MAX_DEVICES],
    net: &'a Net,
    signals: &'a net::Signals,
    console_dev: Option<&'a mut Transport<ConsoleDevice>>,
    vm: &'a Vm,
    shared: &'a VmxShared,
    /// The VM's exit hook from the manifest, if it has one. Else one
    /// attached at runtime is asked about each exit of a slice that began
    /// with it (looked up at each exit: one swapped in answers at once, one
    /// detached no more; one attached to a VM with none is asked from its
    /// next slice on, and a deny names the hook there when the slice
    /// began).
    exit_hook: Option<&'static VmHook<'static>>,
    /// A Solo5 hvt guest.
    hvt: bool,
    /// An hvt guest's net devices, and the memory it sees.
    hvt_nets: (&'a HvtNets, u64),
    /// Since when its current hypercall asks to run again.
    hvt_retry_since: &'a mut Option<u64>,
    /// Its virtio-blk disks (a Corral guest's), and the slot of the first.
    disks: (&'a [&'static blocks::Block], usize),
}

impl Services for VmHost<'_> {
    fn console(&mut self, bytes: &[u8]) {
        self.out.console(bytes);
    }

    // Out of line: inlined into the exit loop it would cost every
    // hypercall (register pressure).
    #[inline(never)]
    fn control(
        &mut self,
        call: vmm_abi::corral::hypercall::Hypercall,
        gpa: u64,
        len: u64,
    ) -> Result<u64, crate::hypercall::HypercallError> {
        service::control_call(self.index, call, gpa, len, &mut self.vm.raw_ram())
    }

    fn metric(&mut self, name: &str, value: u64) {
        self.out.metric(name, value);
    }

    fn main_started(&mut self, guest_tsc: u64) {
        self.out.main_started(guest_tsc);
    }

    fn core_id(&self) -> u32 {
        self.out.core_id()
    }
}

impl Host for VmHost<'_> {
    fn host_cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult {
        instr::cpuid(leaf, subleaf)
    }

    fn is_hvt(&self) -> bool {
        self.hvt
    }

    fn hvt_env(&mut self) -> Option<HvtEnv> {
        if !self.hvt {
            return None;
        }
        // Its first hypercall is an hvt guest's `main` for the boot count.
        self.out.main_started(0);
        Some(HvtEnv {
            ram: self.vm.raw_ram(),
            memory: self.hvt_nets.1,
            nets: self.hvt_nets.0.clone(),
            wall_ns: clock::wall_ns(),
            tsc_hz: clock::tsc_hz(),
            vm: self.index,
            disks: &blocks::MACHINE_DISKS,
            retrying: self
                .hvt_retry_since
                .map_or(0, |t| instr::rdtsc().wrapping_sub(t)),
            // Looked up per call rather than kept here: a field more in
            // this struct cost every exit of every VM 4 instructions
            // (measured), the lookup costs an hvt call about 20.
            ring: self
                .net
                .ring(self.index)
                .filter(|_| !self.hvt_nets.0.is_empty()),
        })
    }

    fn hvt_retried(&mut self, retried: bool) {
        *self.hvt_retry_since = if retried {
            Some(self.hvt_retry_since.unwrap_or_else(instr::rdtsc))
        } else {
            None
        };
    }
}

impl Bus for VmHost<'_> {
    fn has_device(&self, slot: usize) -> bool {
        self.slots
            .get(slot)
            .is_some_and(|kind| *kind != DeviceKind::None)
    }

    fn with_device<R>(
        &mut self,
        slot: usize,
        f: impl FnOnce(&mut dyn BusDevice) -> R,
    ) -> Option<R> {
        match *self.slots.get(slot)? {
            DeviceKind::Net => self
                .net
                .with_port(self.index, slot as u8, |port| f(&mut NetRegs { port })),
            DeviceKind::Console => {
                let dev = self.console_dev.as_deref_mut()?;
                Some(f(&mut ConsoleRegs {
                    dev,
                    ram: self.vm.raw_ram(),
                    out: &mut self.out,
                }))
            }
            DeviceKind::Block => {
                let b = *self.disks.0.get(slot.checked_sub(self.disks.1)?)?;
                let mut dev = b.dev.lock();
                Some(f(&mut DiskRegs {
                    dev: dev.as_mut()?,
                    disk: &b.disk,
                    ram: self.vm.raw_ram(),
                }))
            }
            DeviceKind::None => None,
        }
    }
}

impl Clock for VmHost<'_> {
    #[inline]
    fn now(&self) -> u64 {
        instr::rdtsc()
    }
}

impl Wakeups for VmHost<'_> {
    #[inline]
    fn take_work(&mut self) -> bool {
        self.signals.work.swap(false, Ordering::Acquire)
    }

    #[inline]
    fn fault_flagged(&self) -> bool {
        self.signals.fault.load(Ordering::Relaxed)
    }
}

/// The name of VM place `cell`'s exit hook attached at runtime, if it has
/// one now.
fn runtime_exit_name(cell: u32) -> Option<&'static str> {
    runtime_hooks::vm_hook(cell, HookKind::Exit)?.with(|h| h.name)
}

/// What VM place `cell`'s exit hook attached at runtime says about an
/// exit: allow if it has none now. Out of line: the manifest's hooks do
/// not pay for it.
#[cold]
#[inline(never)]
fn runtime_filter(cell: u32, ctx: &ExitCtx, core: u32) -> ExitAnswer {
    runtime_hooks::vm_hook(cell, HookKind::Exit)
        .and_then(|r| r.with(|h| h.filter(ctx, core)))
        .unwrap_or(ExitAnswer::Allow)
}

impl VmEnv for VmHost<'_> {
    #[inline]
    fn exit_hook(&self) -> Option<&'static str> {
        match self.exit_hook {
            Some(h) => Some(h.name),
            None => runtime_exit_name(self.index),
        }
    }

    fn filter_exit(&mut self, ctx: &ExitCtx) -> ExitAnswer {
        match self.exit_hook {
            Some(h) => h.filter(ctx, self.core),
            None => runtime_filter(self.index, ctx, self.core),
        }
    }

    #[inline]
    fn after_exit(&mut self) {
        net::count_exit(self.core);
        serial::pump();
    }

    #[inline]
    fn ring_fault(&mut self) -> Option<StopReason> {
        if !self.signals.fault.load(Ordering::Acquire) {
            return None;
        }
        let (slot, error) = self.net.fault(self.index, self.ports)?;
        Some(StopReason::Ring { slot, error })
    }

    fn wait_alone(&mut self, ticks: u64) -> u64 {
        let deadline = instr::rdtsc().saturating_add(ticks);
        loop {
            if self.take_work() {
                return WAIT_WORK;
            }
            // An operator's request for this core ends the wait early, and
            // the slice with it (`core_wanted`).
            if self.fault_flagged() || instr::rdtsc() >= deadline || self.core_wanted() {
                return WAIT_TIMEOUT;
            }
            serial::pump();
            core::hint::spin_loop();
        }
    }

    fn core_wanted(&mut self) -> bool {
        super::service::mail_waiting(self.core)
    }

    fn timer_for(&self, ticks: u64) -> u64 {
        self.shared.timer_for(ticks)
    }

    fn timer_alone(&self, unbudgeted: bool) -> u64 {
        self.shared.timer_value(unbudgeted, serial::needs_feeding())
    }
}

impl Vm {
    /// The guest's memory as slices, for building the VM (exit handlers use
    /// the raw view instead: see `VmMemory`).
    ///
    /// # Safety
    /// The guest must not be running, no polling core may reach its memory
    /// (its ports are not attached), and no other view of this VM's memory
    /// may be alive while the returned one is.
    unsafe fn memory(&self, size: u64) -> GuestMemory<'_> {
        let mut view = GuestMemory::empty(size);
        for p in self.pieces.iter().flatten() {
            // Pieces were laid out without overlap and within MAX_REGIONS, so
            // adding them cannot fail.
            let _ = match p.shared {
                // SAFETY: the VM owns its private frames; the caller
                // guarantees nothing else views them now.
                None => view.add_private(p.gpa, unsafe {
                    memory::frames_mut(self.private_base + p.offset, p.len)
                }),
                // SAFETY: shared image frames are never written after load.
                Some(s) => view.add_shared(p.gpa, unsafe { memory::frames(s.hpa, s.len) }),
            };
        }
        view
    }

    /// The guest's memory as another core (or a device) reaches it.
    fn raw_ram(&self) -> RawRam {
        // The pieces are this VM's frames (private: its own allocation;
        // shared: the image's read-only frames, never written), which stay
        // allocated until `destroy`, and every copy of this view is dropped
        // before then (ports are detached first).
        // SAFETY: so the view's ranges are live memory while it exists.
        unsafe {
            RawRam::new(self.pieces.iter().flatten().map(|p| match p.shared {
                None => RamPiece {
                    gpa: Gpa(p.gpa),
                    len: p.len,
                    hpa: Hpa(self.private_base + p.offset),
                    writable: true,
                },
                Some(s) => RamPiece {
                    gpa: Gpa(p.gpa),
                    len: p.len,
                    hpa: Hpa(s.hpa),
                    writable: false,
                },
            }))
        }
    }

    fn destroy(self) {
        if let Some(vmcs) = self.vmcs {
            // SAFETY: the VMCS belongs to this VM; clearing it makes it no
            // longer current before its page is reused.
            if unsafe { instr::vmclear(vmcs) }.is_ok() {
                memory::free(vmcs, 1);
            } else {
                // The CPU may still write cached VMCS data back to this page:
                // better to lose 4 KiB than to hand it to another VM.
                log::warn!("VMCLEAR of a stopped VM's VMCS failed; its page is not reused");
            }
        }
        if let Some(ept) = self.ept {
            ept.destroy(&mut FrameTables);
        }
        memory::free(self.private_base, self.private_len / PAGE_SIZE);
    }
}

/// Bytes of private memory a VM of `memory` bytes booting `image` takes.
pub fn private_bytes(memory: u64, image: &CachedImage) -> Option<u64> {
    layout(memory, image.shared()).map(|(_, private)| private)
}

/// Lays out guest-physical `0 .. size`: the image's shared ranges, and
/// private pieces in the gaps, packed into one private allocation.
fn layout(
    size: u64,
    shared: impl Iterator<Item = SharedRange>,
) -> Option<([Option<Piece>; MAX_PIECES], u64)> {
    let mut pieces = [None; MAX_PIECES];
    let mut n = 0;
    let mut at = 0;
    let mut offset = 0;
    let mut push = |p: Piece, n: &mut usize| -> Option<()> {
        *pieces.get_mut(*n)? = Some(p);
        *n += 1;
        Some(())
    };
    for s in shared {
        if s.gpa < at || s.gpa + s.len > size {
            return None;
        }
        if s.gpa > at {
            push(
                Piece {
                    gpa: at,
                    len: s.gpa - at,
                    shared: None,
                    offset,
                },
                &mut n,
            )?;
            offset += s.gpa - at;
        }
        push(
            Piece {
                gpa: s.gpa,
                len: s.len,
                shared: Some(s),
                offset: 0,
            },
            &mut n,
        )?;
        at = s.gpa + s.len;
    }
    if at < size {
        push(
            Piece {
                gpa: at,
                len: size - at,
                shared: None,
                offset,
            },
            &mut n,
        )?;
        offset += size - at;
    }
    Some((pieces, offset))
}

/// Creates the VM's resources for a fresh run and makes its VMCS current.
pub fn create(st: &mut VmState, shared: &VmxShared, net: &Net) -> Result<(), StartError> {
    st.created_tsc = instr::rdtsc();
    st.main_tsc = None;
    st.launched = false;
    st.fx = clean_fx();
    st.cr2 = 0;
    st.kernel_gs_base = 0;
    st.cpu.new_run(GuestRegs {
        rdi: BOOT_INFO_GPA,
        ..GuestRegs::default()
    });
    if let Some(e) = st.image.error {
        return Err(StartError::Image(e));
    }
    let size = st.spec.memory;
    // An hvt guest's net ports, each named for a NET_BASIC device of its
    // Solo5 manifest; their rings go in a reserve at the top of memory.
    let mut names = heapless::Vec::<_, MAX_VM_NETS>::new();
    for d in net.device_names(st.index) {
        names
            .push(d)
            .map_err(|_| StartError::Hvt(hvt_image::HvtImageError::TooManyNets))?;
    }
    st.hvt_nets.clear();
    if st.image.hvt.is_none() && !names.is_empty() {
        return Err(StartError::DeviceNames);
    }
    st.visible = if names.is_empty() {
        size
    } else {
        size.saturating_sub(RING_RESERVE)
    };
    // A Solo5 hvt image is checked for this VM's memory before any is taken.
    let file = st.image.file;
    let unnamed = (0..st.spec.net_ports).any(|p| !names.iter().any(|d| d.port == p));
    let hvt_image = match st.image.hvt {
        None => None,
        Some(Err(e)) => return Err(StartError::Hvt(e)),
        Some(Ok(())) if unnamed || st.spec.console => {
            return Err(StartError::Hvt(hvt_image::HvtImageError::CorralDevices));
        }
        Some(Ok(())) => Some(hvt_image::check(file, st.visible).map_err(StartError::Hvt)?),
    };
    // An hvt guest with net devices is offered Solo5's shared net ring in
    // the last pages it sees (if its image ends below them), its polling
    // core serving it.
    st.hvt_ring = match &hvt_image {
        Some(img) if !names.is_empty() && net.ring(st.cell).is_some() => {
            hvt_ring::place(st.visible).filter(|&at| img.kernel_end <= at)
        }
        _ => None,
    };
    // Its block devices: an hvt guest's reached by hypercalls, a Corral
    // guest's as virtio-blk slots, in the order of their device names.
    let mut bound = heapless::Vec::<&'static blocks::Block, MAX_VM_BLOCKS>::new();
    for b in blocks::of_vm_blocks(st.index) {
        bound
            .push(b)
            .map_err(|_| StartError::Hvt(hvt_image::HvtImageError::TooManyBlocks))?;
    }
    bound.sort_unstable_by(|a, b| a.spec.device.cmp(b.spec.device));
    let disks = if hvt_image.is_some() { 0 } else { bound.len() };
    let devices = devices::slots_with_disks(st.spec.net_ports, st.spec.console, disks).ok_or(
        StartError::TooManyDevices {
            net: st.spec.net_ports,
            console: st.spec.console,
            disks: disks as u8,
        },
    )?;
    let (pieces, private_len) = layout(size, st.image.shared()).ok_or(StartError::Layout)?;
    let private_base = memory::alloc(private_len / PAGE_SIZE, 1)
        .ok_or(StartError::OutOfMemory { bytes: private_len })?;
    let vm = st.vm.insert(Vm {
        private_base,
        private_len,
        pieces,
        ept: None,
        vmcs: None,
    });
    // SAFETY: the VM's private frames were just allocated for it; no view
    // of them exists yet (the one below is made after this).
    unsafe { memory::fill(private_base, private_len, 0) };
    // SAFETY: the VM has not run yet, its ports are attached only at the end
    // of `create` (after this view's last use), and this is the only view.
    let mut mem = unsafe { vm.memory(size) };
    let cached = st.image;
    let mut net_handles = hvt_boot::NetHandles::new();
    // W^X for an hvt guest: its private memory is not executable when all
    // its code lies in shared read-only pages (as when sharing succeeds).
    let mut private = EptPerms::RWX;
    let (cr3, rip, rsp) = if let Some(img) = hvt_image {
        let bindings: heapless::Vec<_, MAX_VM_BLOCKS> = bound
            .iter()
            .map(|b| hvt_boot::BlockBinding {
                device: b.spec.device,
                capacity: b.spec.capacity,
                block_size: b.spec.block_size,
            })
            .collect();
        let nets: heapless::Vec<_, MAX_VM_NETS> = names
            .iter()
            .map(|d| hvt_boot::NetBinding {
                device: d.device,
                mac: port_mac(st.cell, d.port),
            })
            .collect();
        let (attached, handles) =
            hvt_boot::attach(&img, &bindings, &nets).map_err(StartError::Hvt)?;
        net_handles = handles;
        if img
            .loads()
            .filter(|l| l.exec)
            .all(|l| cached.shares_page(l.pages.0))
        {
            private = EptPerms::RW;
        } else {
            log::warn!(
                "vm {}: code of its image could not be shared; its private memory stays executable",
                st.index
            );
        }
        for &(handle, i) in &attached {
            if let Some(b) = bound.get(i) {
                b.handle.store(handle, Ordering::Release);
            }
        }
        let e = hvt_boot::build(
            &mut mem,
            file,
            &img,
            st.visible,
            st.hvt_ring,
            st.args.as_deref().unwrap_or(st.spec.args),
            clock::tsc_hz(),
            |page| cached.shares_page(page),
            (&bindings, &attached),
            (&nets, &net_handles),
        )
        .map_err(|e| match e {
            hvt_boot::BuildError::Image(i) => StartError::Hvt(i),
            hvt_boot::BuildError::OutOfBounds => StartError::Layout,
        })?;
        st.cpu.regs.rdi = e.rdi;
        (e.cr3, e.rip, e.rsp)
    } else {
        let image = Image::parse(file, size).map_err(StartError::Image)?;
        image
            .load_where(&mut mem, |seg| !cached.shares(seg))
            .map_err(StartError::Image)?;
        let cr3 = guest_tables::build(&mut mem).map_err(|_| StartError::Layout)?;
        let info = BootInfo {
            vm_index: st.index,
            core: st.core.unwrap_or(0),
            memory_size: size,
            heap_start: image.end,
            heap_size: (size - STACK_SIZE).saturating_sub(image.end),
            stack_top: size,
            name: &st.name,
            args: st.args.as_deref().unwrap_or(st.spec.args),
            devices,
        };
        let raw = info.to_raw().map_err(|_| StartError::Layout)?;
        mem.write(BOOT_INFO_GPA, &raw.to_bytes())
            .map_err(|_| StartError::Layout)?;
        (cr3, image.entry, size - ENTRY_STACK_BIAS)
    };

    let ept = vm
        .ept
        .insert(Ept::new(&mut FrameTables, shared.config.ept_2m).map_err(StartError::Ept)?);
    // The guest sees its visible memory only: an hvt guest's net rings
    // above it are the hypervisor's to write.
    for p in vm.pieces.iter().flatten().filter(|p| p.gpa < st.visible) {
        let (hpa, perms) = match p.shared {
            None => (private_base + p.offset, private),
            Some(s) if s.exec => (s.hpa, EptPerms::RX),
            Some(s) => (s.hpa, EptPerms::READ),
        };
        let len = p.len.min(st.visible - p.gpa);
        ept.map(&mut FrameTables, p.gpa, hpa, len, perms)
            .map_err(StartError::Ept)?;
    }
    let eptp = ept.eptp();
    let tables = ept.table_count();
    let vmcs = memory::alloc_zeroed_pages(1).ok_or(StartError::OutOfMemory { bytes: PAGE_SIZE })?;
    vm.vmcs = Some(vmcs);
    net.attach(st.cell, st.spec.net_ports, size, vm.raw_ram());
    // The hypervisor drives each of an hvt guest's ports as its virtio
    // driver, with rings and buffers in the reserve.
    for (i, (d, &handle)) in names.iter().zip(&net_handles).enumerate() {
        let place = RingPlace::of(size, i).ok_or(StartError::Layout)?;
        let program = |inner: &mut net::PortInner| {
            let effect = inner
                .drive(|t, ram| hvt_net::program(t, ram, place))
                .ok_or(ProgramError::Detached)??;
            match inner.after_write(effect) {
                PortEvent::None => Ok(()),
                PortEvent::BadRing(e) => Err(ProgramError::Rings(e)),
            }
        };
        net.with_port(st.cell, d.port, program)
            .ok_or(StartError::Layout)?
            .map_err(|error| {
                log::error!("vm {}: hvt net device '{}': {error}", st.index, d.device);
                StartError::HvtNet { device: d.device }
            })?;
        // At most MAX_VM_NETS names, so as many places.
        let _ = st.hvt_nets.push((handle, place));
    }
    if let (Some(gpa), Some(ring)) = (st.hvt_ring, net.ring(st.cell)) {
        let patience = clock::tsc_hz().saturating_mul(RETRY_LIMIT_SECONDS);
        ring.attach(vm.raw_ram(), gpa, st.hvt_nets.clone(), patience);
    }
    st.console_dev = st
        .spec
        .console
        .then(|| Transport::new(ConsoleDevice, TransportConfig::new(size)));
    st.disks.clear();
    for &b in &bound[..disks] {
        // A fresh device for this run, kept with its disk.
        let dev = BlkDevice::new(b.spec.capacity, b.spec.block_size, b.spec.device);
        *b.dev.lock() = Some(Transport::new(dev, TransportConfig::new(size)));
        // `bound` and `disks` hold at most as many.
        let _ = st.disks.push(b);
    }
    st.private_bytes = private_len;
    st.shared_bytes = size - private_len;
    st.overhead_bytes = (1 + tables) * PAGE_SIZE + core::mem::size_of::<VmState>() as u64;
    let launch = Launch {
        eptp,
        cr3,
        rip,
        rsp,
        hvt: cached.hvt.is_some(),
    };
    vmx::prepare_vmcs(shared, vmcs, &launch).map_err(|_| StartError::Vmcs("VMCS field write"))?;
    if st.spec.control {
        // A fresh control channel for this run of the holder.
        service::hold_control(st.cell, true);
    }
    Ok(())
}

/// Frees the VM's resources (after a stop or a failed creation); its net
/// ports go down first, so no polling core touches the memory after.
pub fn destroy(st: &mut VmState, net: &Net) {
    if st.spec.control {
        service::hold_control(st.cell, false);
    }
    let free = net.detach(st.cell, st.spec.net_ports, false);
    st.console_dev = None;
    st.cpu.wait_deadline = None;
    if let Some(vm) = st.vm.take() {
        // If a NIC may still write its memory, `vm` is dropped without
        // `destroy`: its frames never go back to the allocator.
        if free {
            vm.destroy();
        }
    }
}

/// Makes the VM's VMCS current on this core.
pub fn load(st: &VmState) -> Result<(), StopReason> {
    let vmcs = st.vm.as_ref().and_then(|v| v.vmcs);
    let vmcs = vmcs.ok_or(StopReason::Internal("VM has no VMCS"))?;
    // SAFETY: the VMCS belongs to this VM, which is assigned to this core
    // and was never current on another core.
    unsafe { instr::vmptrld(vmcs) }.map_err(|_| StopReason::Internal("VMPTRLD failed"))
}

/// A VM's memory for its exit handlers: read through its raw view (built
/// only when a handler reads), because a polling core may be writing the
/// VM's rings at the same time.
struct VmMemory<'v> {
    vm: &'v Vm,
    size: u64,
}

impl GuestRead for VmMemory<'_> {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&self, gpa: Gpa, out: &mut [u8]) -> Result<(), OutOfBounds> {
        GuestRead::read(&self.vm.raw_ram(), gpa, out)
    }

    fn read_chunks(&self, gpa: Gpa, len: u64, f: impl FnMut(&[u8])) -> Result<(), OutOfBounds> {
        GuestRead::read_chunks(&self.vm.raw_ram(), gpa, len, f)
    }
}

/// A net port's registers, for one emulated access.
struct NetRegs<'a> {
    port: &'a mut net::PortInner,
}

impl BusDevice for NetRegs<'_> {
    fn read(&mut self, offset: u64, size: u8) -> Result<u32, MmioError> {
        self.port.transport.read(offset, size)
    }

    fn write(&mut self, offset: u64, size: u8, value: u32) -> Result<Effect, MmioError> {
        let effect = self.port.transport.write(offset, size, value)?;
        Ok(match self.port.after_write(effect) {
            PortEvent::None => Effect::None,
            PortEvent::BadRing(e) => Effect::Fault(RingError::Queue(e)),
        })
    }
}

/// The virtio-console's registers, for one emulated access; its output
/// goes to the VM's console like `console_write`.
struct ConsoleRegs<'a, 'o> {
    dev: &'a mut Transport<ConsoleDevice>,
    ram: RawRam,
    out: &'a mut GuestOut<'o>,
}

impl BusDevice for ConsoleRegs<'_, '_> {
    fn read(&mut self, offset: u64, size: u8) -> Result<u32, MmioError> {
        self.dev.read(offset, size)
    }

    fn write(&mut self, offset: u64, size: u8, value: u32) -> Result<Effect, MmioError> {
        let effect = self.dev.write(offset, size, value)?;
        let mut ram = self.ram;
        let result: Result<(), RingError> = match effect {
            WriteEffect::DriverOk => (0..2u16).try_for_each(|q| match self.dev.queue_mut(q) {
                Some(queue) => queue.check_rings(&mut ram).map_err(RingError::Queue),
                None => Ok(()),
            }),
            WriteEffect::Notify(q) if q == vconsole::TRANSMIT_QUEUE => {
                match self.dev.queue_mut(q) {
                    Some(queue) => {
                        let out = &mut *self.out;
                        vconsole::drain_transmit(queue, &mut ram, |bytes| out.console(bytes))
                            .map(|_| ())
                    }
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        };
        Ok(result.map_or_else(Effect::Fault, |()| Effect::None))
    }
}

/// A virtio-blk device's registers: a notification serves its queue
/// against its disk on the spot (the VM's own core, within the exit).
struct DiskRegs<'a> {
    dev: &'a mut Transport<BlkDevice>,
    disk: &'a SharedDisk,
    ram: RawRam,
}

impl BusDevice for DiskRegs<'_> {
    fn read(&mut self, offset: u64, size: u8) -> Result<u32, MmioError> {
        self.dev.read(offset, size)
    }

    fn write(&mut self, offset: u64, size: u8, value: u32) -> Result<Effect, MmioError> {
        let effect = self.dev.write(offset, size, value)?;
        let mut ram = self.ram;
        let id = *self.dev.device().id();
        let result: Result<(), RingError> = match (effect, self.dev.queue_mut(vblk::REQUEST_QUEUE))
        {
            (WriteEffect::DriverOk, Some(queue)) => {
                queue.check_rings(&mut ram).map_err(RingError::Queue)
            }
            (WriteEffect::Notify(q), Some(queue)) if q == vblk::REQUEST_QUEUE => {
                let mut disk = self.disk.lock();
                vblk::serve(queue, &mut ram, &mut disk, &id)
                    .map(|_| ())
                    .map_err(RingError::Block)
            }
            _ => Ok(()),
        };
        Ok(result.map_or_else(Effect::Fault, |()| Effect::None))
    }
}

/// The length of the VM's next slice on `core`: what its slice hook says
/// (the VM's own, from the manifest or attached at runtime, else its
/// core's), else its own slice or the run's. Out of line, so the exit
/// loop is not built around it.
#[inline(never)]
fn timeslice(st: &VmState, shared: &VmxShared, net: &Net, core: u32) -> u64 {
    match HookRef::slice(net, st.cell, core) {
        None => st.slice.unwrap_or(shared.timeslice),
        Some(hook) => {
            let ctx = SliceCtx {
                vm: st.index,
                core,
                slices: st.slices,
                used: st.cpu.ran,
                waited: st.cpu.waited,
                last_exit: st.cpu.last_exit & 0xffff,
            };
            let default = st.slice.unwrap_or(shared.timeslice);
            hook.with(|h| h.slice(&ctx, core, default, MIN_TIMESLICE..=MAX_TIMESLICE))
                .unwrap_or(default)
        }
    }
}

/// Runs one slice of the VM (its VMCS current, its CPU state loaded) with
/// the exit loop of `vcpu::slice`; see there.
pub fn run_slice(
    st: &mut VmState,
    others_waiting: bool,
    shared: &VmxShared,
    net: &Net,
    core: u32,
) -> SliceEnd {
    let Some(vm) = st.vm.as_ref() else {
        return SliceEnd::Stopped(StopReason::Internal("VM does not exist"));
    };
    // All of its memory, an hvt guest's ring reserve included: only an
    // EPT violation's "inside memory" reads this for an hvt guest (its
    // hypercalls check against what it sees, `HvtEnv::memory`), and taking
    // `st.visible` here cost every exit 4 instructions (measured).
    let mem = VmMemory {
        vm,
        size: st.spec.memory,
    };
    // A slice hook, the VM's own or else its core's, says how long this
    // slice is.
    let timeslice = timeslice(st, shared, net, core);
    let mut env = VmHost {
        index: st.cell,
        core,
        ports: st.spec.net_ports,
        // An hvt guest reaches its devices by hypercall only.
        slots: if st.image.hvt.is_some() {
            [DeviceKind::None; vmm_abi::corral::layout::MAX_DEVICES]
        } else {
            st.device_slots()
        },
        net,
        signals: net.signals(st.cell),
        console_dev: st.console_dev.as_mut(),
        vm,
        shared,
        exit_hook: net.vm_hook(st.cell, HookKind::Exit),
        hvt: st.image.hvt.is_some(),
        hvt_nets: (&st.hvt_nets, st.hvt_ring.unwrap_or(st.visible)),
        hvt_retry_since: &mut st.hvt_retry_since,
        disks: (
            &st.disks,
            usize::from(st.spec.net_ports) + usize::from(st.spec.console),
        ),
        out: GuestOut {
            index: st.index,
            name: &st.name,
            line: &mut st.line,
            main_tsc: &mut st.main_tsc,
            console: &mut st.console,
            metrics: &mut st.metrics,
            ran_before: st.cpu.ran,
            entered: instr::rdtsc(),
        },
    };
    let mut hw = VmxVcpu {
        launched: &mut st.launched,
    };
    let params = SliceParams {
        timeslice,
        budget: st.spec.budget,
        others_waiting,
    };
    let end = slice::run_slice(&mut hw, &mut env, &mem, &mut st.cpu, params);
    st.maybe_progress(core);
    end
}

/// Whether a VM that waits for work may run again (see
/// `vcpu::slice::wait_over`).
pub fn wait_over(st: &mut VmState, net: &Net) -> bool {
    if st.cpu.wait_deadline.is_none() {
        return true;
    }
    let mut signals = Signals(net.signals(st.cell));
    slice::wait_over(&mut st.cpu, &Tsc, &mut signals)
}

/// A VM's signals from the polling cores, as the scheduler's wait check
/// reads them.
struct Signals<'a>(&'a net::Signals);

impl Wakeups for Signals<'_> {
    fn take_work(&mut self) -> bool {
        self.0.work.swap(false, Ordering::Acquire)
    }

    fn fault_flagged(&self) -> bool {
        self.0.fault.load(Ordering::Relaxed)
    }
}
