//! Run-report records: the machine-readable lines the hypervisor prints on
//! its console, one per event, and the parser the host tools read them with.
//!
//! A record is one line starting with [`RECORD_PREFIX`], then a kind, then
//! `key=value` fields in a fixed order, separated by single spaces. A
//! `reason=` field, when present, is last and runs to the end of the line.
//! Each record is declared once, in [`Record`]'s declaration below: its kind
//! and its fields in line order, each field's key being its name; the
//! printer (`Display`), the parser ([`parse_line`]) and the names
//! ([`Record::KINDS`], [`Record::kind`], [`LinkFlow::FIELDS`]) are generated
//! from it (`wire.rs`).
//! Guest console lines are always prefixed with the VM name by the
//! hypervisor, so a guest can never forge a record.
//!
//! ```text
//! @corral hv abi=2 cores=4 free=264241152
//! @corral vm-start vm=0 name=hello entry=hello image=hello core=0 apic=0 memory=262144
//! @corral metric vm=0 name=hypercall_roundtrip value=412
//! @corral vm-restart vm=3 attempt=1 reason=triple fault at rip 0x10003d
//! @corral vm-end vm=0 status=exited code=0 boot=18211 restarts=0 slices=1 private=241664 shared=20480 overhead=24576 exits=vmcall:3,cpuid:1 console=27 console_dropped=0 reason=exited with code 0
//! @corral done vms=1
//! @corral fatal reason=CPU lacks VMX
//! ```

#[cfg(test)]
mod tests;
mod wire;

pub use wire::RecordError;

use core::fmt;
use wire::{Rest, counters, records};

/// Start of every record line.
pub const RECORD_PREFIX: &str = "@corral ";
/// Separates the source (a VM name, or [`HYPERVISOR_SOURCE`]) from the text
/// on every ordinary console line: `hello | Hello, world`.
pub const CONSOLE_SEPARATOR: &str = " | ";
/// The reason of a `vm-restart` record the operator asked for (a service
/// run's `restart`), which no restart policy or limit applies to.
pub const OPERATOR_RESTART: &str = "restarted by the operator";
/// Source name of the hypervisor's own console lines.
pub const HYPERVISOR_SOURCE: &str = "hv";

/// VM-exit kinds as counted in reports. The hypervisor's exit decoder maps
/// each decoded exit to one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// VMCALL (a hypercall).
    Vmcall,
    /// CPUID.
    Cpuid,
    /// HLT.
    Hlt,
    /// EPT violation (an access outside what EPT maps, or an MMIO access).
    EptViolation,
    /// EPT misconfiguration (a hypervisor bug, reported as such).
    EptMisconfig,
    /// Triple fault.
    TripleFault,
    /// I/O port access.
    Io,
    /// RDMSR.
    MsrRead,
    /// WRMSR.
    MsrWrite,
    /// VMX preemption timer expired.
    PreemptionTimer,
    /// An external interrupt arrived while the guest ran.
    ExternalInterrupt,
    /// A control-register access the hypervisor owns.
    CrAccess,
    /// An exception or NMI the hypervisor intercepts.
    Exception,
    /// A VM-entry failure.
    EntryFailure,
    /// Any other exit reason.
    Other,
}

/// Number of [`ExitKind`]s.
pub const EXIT_KINDS: usize = 15;

/// Per-kind exit counters, indexed by `ExitKind as usize`.
pub type ExitCounts = [u64; EXIT_KINDS];

impl ExitKind {
    /// Every kind, in index order.
    pub const ALL: [ExitKind; EXIT_KINDS] = [
        ExitKind::Vmcall,
        ExitKind::Cpuid,
        ExitKind::Hlt,
        ExitKind::EptViolation,
        ExitKind::EptMisconfig,
        ExitKind::TripleFault,
        ExitKind::Io,
        ExitKind::MsrRead,
        ExitKind::MsrWrite,
        ExitKind::PreemptionTimer,
        ExitKind::ExternalInterrupt,
        ExitKind::CrAccess,
        ExitKind::Exception,
        ExitKind::EntryFailure,
        ExitKind::Other,
    ];

    /// The name used as a key in reports.
    pub const fn name(self) -> &'static str {
        match self {
            ExitKind::Vmcall => "vmcall",
            ExitKind::Cpuid => "cpuid",
            ExitKind::Hlt => "hlt",
            ExitKind::EptViolation => "ept_violation",
            ExitKind::EptMisconfig => "ept_misconfig",
            ExitKind::TripleFault => "triple_fault",
            ExitKind::Io => "io",
            ExitKind::MsrRead => "msr_read",
            ExitKind::MsrWrite => "msr_write",
            ExitKind::PreemptionTimer => "preemption_timer",
            ExitKind::ExternalInterrupt => "external_interrupt",
            ExitKind::CrAccess => "cr_access",
            ExitKind::Exception => "exception",
            ExitKind::EntryFailure => "entry_failure",
            ExitKind::Other => "other",
        }
    }

    /// The kind with this report name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// How a VM ended, or that it had not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmStatus {
    /// The guest called exit.
    Exited,
    /// The hypervisor stopped the guest (see the reason).
    Killed,
    /// Still running when the report was made.
    Running,
    /// The operator stopped it (a service run's `stop`, or its end).
    Stopped,
}

impl VmStatus {
    /// The report spelling.
    pub const fn name(self) -> &'static str {
        match self {
            VmStatus::Exited => "exited",
            VmStatus::Killed => "killed",
            VmStatus::Running => "running",
            VmStatus::Stopped => "stopped",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        [
            VmStatus::Exited,
            VmStatus::Killed,
            VmStatus::Running,
            VmStatus::Stopped,
        ]
        .into_iter()
        .find(|v| v.name() == s)
    }
}

/// One end of a link as reports name it: `vm.port` (`fw.1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortName<'a> {
    /// The VM's name.
    pub vm: &'a str,
    /// Its net port.
    pub port: u8,
}

impl fmt::Display for PortName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.vm, self.port)
    }
}

impl<'a> PortName<'a> {
    /// Parses `vm.port`, splitting at the last `.` (VM names may hold dots).
    pub fn parse(text: &'a str) -> Option<Self> {
        let (vm, port) = text.rsplit_once('.')?;
        if vm.is_empty() {
            return None;
        }
        Some(PortName {
            vm,
            port: port.parse().ok()?,
        })
    }
}

counters! {
    /// What one direction of a link did with the frames its sender queued.
    /// Every frame the sender's ring handed over is in exactly one counter.
    pub struct LinkFlow {
        /// Frames delivered into the receiver's ring.
        pub frames: u64,
        /// Bytes of those frames (Ethernet frame, without the virtio header).
        pub bytes: u64,
        /// Frames dropped because the receiver had ended for good.
        pub drop_peer: u64,
        /// Frames dropped because they were larger than the receive buffer the
        /// receiver posted (or than a maximum Ethernet frame).
        pub drop_size: u64,
        /// Frames dropped because the receiver was stalled: its port was up
        /// but it had posted no receive buffer for the link's hold time.
        pub drop_stalled: u64,
        /// Times the receiver was declared stalled (each ends when it posts a
        /// buffer again).
        pub stalls: u64,
    }
}

impl LinkFlow {
    /// Frames dropped, for any reason.
    pub const fn dropped(&self) -> u64 {
        self.drop_peer + self.drop_size + self.drop_stalled
    }

    /// Frames the sender handed over: delivered plus dropped.
    pub const fn handed(&self) -> u64 {
        self.frames + self.dropped()
    }
}

counters! {
    /// What a NIC's polling core did on the wire side. Every frame the NIC
    /// received is in `rx_frames` or `rx_errors`; every good one is then
    /// delivered to at least one port, or in `drop_unknown`, `drop_runt` or
    /// `drop_hook`.
    pub struct NicFlow {
        /// Good frames received from the wire.
        pub rx_frames: u64,
        /// Bytes of those frames (without FCS).
        pub rx_bytes: u64,
        /// Frames the NIC received with errors, spanning buffers, or longer
        /// than a buffer: dropped by the driver.
        pub rx_errors: u64,
        /// Unicast frames for no attached port's MAC.
        pub drop_unknown: u64,
        /// Frames shorter than an Ethernet header.
        pub drop_runt: u64,
        /// Frames sent onto the wire.
        pub tx_frames: u64,
        /// Bytes of those frames.
        pub tx_bytes: u64,
        /// Passes that found the transmit ring full while frames waited.
        pub tx_full: u64,
        /// Polling-core instructions (TSC ticks) spent on the receive half
        /// of the passes whose receive half did work (took frames from the
        /// wire, or gave the NIC buffers): what `corral nic-bench` divides
        /// by `rx_frames`.
        pub rx_busy: u64,
        /// The same for the transmit half (took frames from guests, or
        /// completed sent ones), divided by `tx_frames`.
        pub tx_busy: u64,
        /// Good frames from the wire the NIC's receive hook did not pass
        /// (dropped, or sent back onto the wire: the hook's `tx`, counted in
        /// `tx_frames` once sent).
        pub drop_hook: u64,
    }
}

counters! {
    /// What a block device's VM did with it. Requests refused (`errors`)
    /// moved no bytes.
    pub struct BlockFlow {
        /// Read requests carried out.
        pub reads: u64,
        /// Write requests carried out.
        pub writes: u64,
        /// Bytes read.
        pub bytes_read: u64,
        /// Bytes written.
        pub bytes_written: u64,
        /// Requests refused: not whole aligned blocks, or past the end.
        pub errors: u64,
    }
}

counters! {
    /// What one guest port attached to a NIC did through it.
    pub struct NicPortFlow {
        /// Frames from the wire delivered into its receive ring.
        pub rx_frames: u64,
        /// Bytes of those frames.
        pub rx_bytes: u64,
        /// Frames it sent that went onto the wire.
        pub tx_frames: u64,
        /// Bytes of those frames.
        pub tx_bytes: u64,
        /// Frames for it lost because its port was down or had no receive
        /// buffer posted (the wire does not wait).
        pub drop_no_buffer: u64,
        /// Frames for it larger than its buffer, or frames it sent that the
        /// wire cannot carry.
        pub drop_size: u64,
        /// Frames it sent from a MAC other than its own.
        pub drop_spoofed: u64,
        /// Frames for it after it ended for good.
        pub drop_peer: u64,
        /// Frames lost because its ring broke a rule while they moved (the
        /// port is blamed and its VM stopped).
        pub drop_fault: u64,
        /// Frames it sent that the NIC's transmit hook dropped.
        pub drop_hook: u64,
    }
}

counters! {
    /// What a packet hook did with the frames it judged. Every run is in
    /// exactly one of the verdict counters.
    pub struct HookFlow {
        /// Frames the program ran on.
        pub runs: u64,
        /// Runs that returned `XDP_PASS`: the frame was delivered.
        pub pass: u64,
        /// Runs that returned `XDP_DROP`: the frame was dropped.
        pub drop: u64,
        /// Runs that returned `XDP_ABORTED` or a value the XDP contract does
        /// not know: the frame was dropped.
        pub aborted: u64,
        /// Runs the interpreter aborted (an access outside every region, a
        /// helper refused): counted, the frame dropped, nothing else stops.
        pub faults: u64,
        /// Runs that returned `XDP_TX`: the frame goes back to its sender
        /// (a link's hook; `sent` or `unsent`).
        pub tx: u64,
        /// Runs that returned `XDP_REDIRECT`: the frame goes to the port
        /// `bpf_redirect` chose (the receiver: delivered as for `XDP_PASS`
        /// and counted in `sent`; the sender: as `XDP_TX`; any other port:
        /// `unsent`).
        pub redirect: u64,
        /// `XDP_TX` and `XDP_REDIRECT` frames delivered to their port.
        pub sent: u64,
        /// `XDP_TX` and `XDP_REDIRECT` frames not delivered: the hook's
        /// queue full, the port down, without a buffer for the link's hold
        /// time or too small, a port the hook cannot reach (another link's,
        /// a NIC queue's hook).
        pub unsent: u64,
        /// eBPF instructions executed, all runs.
        pub insns: u64,
    }
}

counters! {
    /// What a restart or an exit hook answered. Every run is in exactly one
    /// of `allow`, `deny`, `fail`, `bad` and `faults`. For a restart hook,
    /// `allow` is "restart it" and `deny` "leave it down"; `fail` is an exit
    /// hook's "fail this hypercall with an error code".
    pub struct VmHookFlow {
        /// Events the program ran on.
        pub runs: u64,
        /// Runs that allowed (the exit's handler ran; the VM restarted).
        pub allow: u64,
        /// Runs that denied (the VM was stopped; it stayed down).
        pub deny: u64,
        /// Runs that failed a hypercall with an error code (exit hooks).
        pub fail: u64,
        /// Runs that returned a value the contract does not know: an exit
        /// hook's counts as a deny (fails closed), a restart hook's leaves
        /// the decision to the manifest's policy.
        pub bad: u64,
        /// Runs the interpreter aborted: counted as `bad`'s fallback too.
        pub faults: u64,
        /// eBPF instructions executed, all runs.
        pub insns: u64,
    }
}

impl HookFlow {
    /// Frames the hook did not pass on its direction, for any reason
    /// (dropped, or sent back or elsewhere).
    pub const fn dropped(&self) -> u64 {
        self.drop + self.aborted + self.faults + self.tx + self.redirect
    }
}

/// Bytes written as lowercase hexadecimal, two digits a byte (a map key or
/// value in a report). The hypervisor prints bytes; the parser gives back
/// the checked text (an even number of hex digits, or `-` for none).
#[derive(Clone, Copy, Debug)]
pub enum Hex<'a> {
    /// The bytes (what a printer is handed).
    Bytes(&'a [u8]),
    /// Their hex digits (what the parser returns).
    Text(&'a str),
}

impl Hex<'_> {
    /// The bytes, decoded.
    pub fn bytes(&self) -> impl Iterator<Item = u8> + '_ {
        let (bytes, text): (&[u8], &[u8]) = match self {
            Hex::Bytes(b) => (b, &[]),
            Hex::Text(t) if *t == "-" => (&[], &[]),
            Hex::Text(t) => (&[], t.as_bytes()),
        };
        let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        bytes.iter().copied().chain(
            text.chunks_exact(2)
                .map(move |p| digit(p[0]) << 4 | digit(p[1])),
        )
    }
}

impl PartialEq for Hex<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes().eq(other.bytes())
    }
}

impl Eq for Hex<'_> {}

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for b in self.bytes() {
            write!(f, "{b:02x}")?;
            any = true;
        }
        if !any {
            f.write_str("-")?;
        }
        Ok(())
    }
}

records! {
    /// One report record.
    pub enum Record<'a> {
        /// The hypervisor is up: its ABI version, the cores it runs VMs on and
        /// the memory left for VMs.
        Hypervisor = "hv" {
            /// [`crate::ABI_VERSION`].
            abi: u32,
            /// Cores started.
            cores: u32,
            /// Bytes of RAM free for VMs once the hypervisor is up.
            free: u64,
        },
        /// The hypervisor cannot go on (for example the CPU lacks VMX).
        Fatal = "fatal" {
            /// One line saying why.
            reason: &'a str as Rest,
        },
        /// A VM is being created.
        VmStart = "vm-start" {
            /// Manifest index (or, for a VM started at runtime, a number
            /// counted on from the last).
            vm: u32,
            /// VM name.
            name: &'a str,
            /// The manifest entry it comes from (a runtime VM's, the one it
            /// copies).
            entry: &'a str,
            /// Image name.
            image: &'a str,
            /// Core it runs on.
            core: u32,
            /// Local APIC ID of that core.
            apic: u32,
            /// Guest memory in bytes.
            memory: u64,
        },
        /// A VM failed and is being started again.
        VmRestart = "vm-restart" {
            /// Manifest index.
            vm: u32,
            /// Which restart this is (1 = first).
            attempt: u32,
            /// Why the previous run ended.
            reason: &'a str as Rest,
        },
        /// A guest reported a benchmark value.
        Metric = "metric" {
            /// Manifest index.
            vm: u32,
            /// Metric name.
            name: &'a str,
            /// Value.
            value: u64,
        },
        /// A VM ended.
        VmEnd = "vm-end" {
            /// Manifest index.
            vm: u32,
            /// How it ended.
            status: VmStatus,
            /// Exit code (0 unless the guest exited with another).
            code: i64,
            /// Instructions from the start of VM creation to the guest's first
            /// line of `main` (0 if it never got there), for its last run.
            boot: u64,
            /// Times it was restarted.
            restarts: u32,
            /// Scheduling slices it ran (entries onto its core after another VM).
            slices: u64,
            /// Bytes of guest memory private to it.
            private: u64,
            /// Bytes of guest memory shared with VMs of the same image.
            shared: u64,
            /// Hypervisor bytes spent on it (VMCS, EPT tables, bookkeeping).
            overhead: u64,
            /// VM exits by kind (all runs).
            exits: ExitCounts,
            /// Console bytes it printed (all runs).
            console: u64,
            /// Console bytes dropped: over its rate or its cap, or while the
            /// console was full (all runs).
            console_dropped: u64,
            /// Why it ended, in words.
            reason: &'a str as Rest,
        },
        /// What a VM that is still running has done so far (sent now and then,
        /// so a run cut short by its time bound still reports it).
        VmProgress = "vm-progress" {
            /// Manifest index.
            vm: u32,
            /// As in `vm-end`, for its current run.
            boot: u64,
            /// Times it was restarted so far.
            restarts: u32,
            /// Scheduling slices so far.
            slices: u64,
            /// VM exits by kind so far.
            exits: ExitCounts,
            /// Console bytes printed so far.
            console: u64,
            /// Console bytes dropped so far.
            console_dropped: u64,
        },
        /// A link's counters at the end of the run.
        Link = "link" {
            /// Manifest index of the link.
            link: u32,
            /// Its first end.
            a: PortName<'a>,
            /// Its second end.
            b: PortName<'a>,
            /// The core that polled it.
            core: u32,
            /// Frames from `a` to `b`.
            ab: LinkFlow,
            /// Frames from `b` to `a`.
            ba: LinkFlow,
            /// Instructions (TSC ticks) the polling core spent moving this
            /// link's frames: the passes that moved at least one frame, not
            /// the idle checks of empty rings.
            busy: u64,
        },
        /// A NIC's counters at the end of the run.
        Nic = "nic" {
            /// Manifest index of the NIC.
            nic: u32,
            /// Its name.
            name: &'a str,
            /// The core that polled it.
            core: u32,
            /// What it did.
            wire: NicFlow,
        },
        /// One guest port attached to a NIC: its counters at the end of the
        /// run.
        NicPort = "nic-port" {
            /// Manifest index of the NIC.
            nic: u32,
            /// The guest port.
            port: PortName<'a>,
            /// What it did through the NIC.
            flow: NicPortFlow,
        },
        /// A packet hook's counters at the end of the run.
        Hook = "hook" {
            /// Manifest index of the hook.
            hook: u32,
            /// Its name.
            name: &'a str,
            /// The link it is attached to.
            link: u32,
            /// The direction it judges: `a->b` or `b->a`.
            dir: &'a str,
            /// What ran it: `compiled` (the JIT's code) or `interpreted`.
            engine: &'a str,
            /// What it did.
            flow: HookFlow,
        },
        /// A restart or exit hook's counters at the end of the run.
        VmHook = "vm-hook" {
            /// Manifest index of the hook.
            hook: u32,
            /// Its name.
            name: &'a str,
            /// `restart` or `exit`.
            kind: &'a str,
            /// The VM it is attached to.
            vm: &'a str,
            /// What ran it: `compiled` (the JIT's code) or `interpreted`.
            engine: &'a str,
            /// What it answered.
            flow: VmHookFlow,
        },
        /// One map of a hook at the end of the run: its kind, its entries,
        /// and how many `hook-entry` records follow for it.
        HookMap = "hook-map" {
            /// Manifest index of the hook.
            hook: u32,
            /// Index in the hook's map table.
            map: u32,
            /// `array`, `hash` or `percpu_array`.
            kind: &'a str,
            /// Entries present (a hash map's keys; an array's length, per
            /// core for a per-core array).
            entries: u64,
            /// Entries whose value is not all zero.
            nonzero: u64,
            /// `hook-entry` records that follow (the first nonzero entries,
            /// at most a bounded number).
            shown: u64,
        },
        /// One entry of a hook's map whose value is not all zero.
        HookEntry = "hook-entry" {
            /// Manifest index of the hook.
            hook: u32,
            /// Index in the hook's map table.
            map: u32,
            /// The core whose copy this is (per-core arrays), else 0.
            core: u32,
            /// The key (an array's index as a little-endian u32).
            key: Hex<'a>,
            /// The value.
            value: Hex<'a>,
        },
        /// The steady-state window of a run with links: from the moment the
        /// first link had carried a warm-up number of frames from `a` to `b`
        /// until it had carried `frames` more.
        Window = "window" {
            /// Frames the first link carried from `a` to `b` in the window.
            frames: u64,
            /// VM exits of every VM in the window.
            exits: u64,
            /// Polling-core instructions spent moving frames, all links.
            busy: u64,
        },
        /// The steady-state window of the first NIC in a run without links
        /// between VMs: from the moment its ports had been delivered a
        /// warm-up number of frames from the wire until `frames` more.
        NicWindow = "nic-window" {
            /// Manifest index of the NIC.
            nic: u32,
            /// Frames from the wire delivered to its ports in the window.
            frames: u64,
            /// VM exits of every VM in the window.
            exits: u64,
            /// The NIC's `rx_busy` spent in the window.
            rx_busy: u64,
            /// Frames it sent onto the wire in the window.
            tx_frames: u64,
            /// The NIC's `tx_busy` spent in the window.
            tx_busy: u64,
        },
        /// The hypervisor's own pages once every core is up (W^X), in
        /// 4 KiB pages: `writable_exec` must be 0.
        Paging = "paging" {
            /// Executable pages (its code).
            exec: u64,
            /// Writable pages.
            writable: u64,
            /// Pages both writable and executable.
            writable_exec: u64,
        },
        /// A block device's counters at the end of the run.
        Block = "block" {
            /// Manifest index of the block device.
            block: u32,
            /// Its name.
            name: &'a str,
            /// Manifest index of the VM it was attached to.
            vm: u32,
            /// Its device name in that VM's Solo5 manifest.
            device: &'a str,
            /// Bytes of its image.
            capacity: u64,
            /// Bytes per block.
            block_size: u32,
            /// What it did.
            flow: BlockFlow,
            /// Blocks written during the run (whose bytes follow in
            /// `block-data` records when it persists).
            dirty: u64,
        },
        /// Written bytes of a persistent block device, for the host tool to
        /// write back to its file: `len` bytes at `offset`.
        BlockData = "block-data" {
            /// Manifest index of the block device.
            block: u32,
            /// Byte offset in the image.
            offset: u64,
            /// Bytes.
            len: u32,
            /// The bytes.
            data: Hex<'a>,
        },
        /// Every VM has ended; the hypervisor is stopping.
        Done = "done" {
            /// VMs run.
            vms: u32,
        },
    }
}

/// Parses one console line: `None` if it is not a record (ordinary console
/// text), otherwise the record or why it is malformed.
pub fn parse_line(line: &str) -> Option<Result<Record<'_>, RecordError>> {
    let body = line
        .trim_end_matches(['\r', '\n'])
        .strip_prefix(RECORD_PREFIX)?;
    Some(Record::parse_body(body))
}
