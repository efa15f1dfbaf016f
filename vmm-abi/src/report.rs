//! Run-report records: the machine-readable lines the hypervisor prints on
//! its console, one per event, and the parser the host tools read them with.
//!
//! A record is one line starting with [`RECORD_PREFIX`], then a kind, then
//! `key=value` fields in a fixed order, separated by single spaces. A
//! `reason=` field, when present, is last and runs to the end of the line.
//! Guest console lines are always prefixed with the VM name by the
//! hypervisor, so a guest can never forge a record.
//!
//! ```text
//! @corral hv abi=2 cores=4 free=264241152
//! @corral vm-start vm=0 name=hello image=hello core=0 apic=0 memory=262144
//! @corral metric vm=0 name=hypercall_roundtrip value=412
//! @corral vm-restart vm=3 attempt=1 reason=triple fault at rip 0x10003d
//! @corral vm-end vm=0 status=exited code=0 boot=18211 restarts=0 slices=1 private=241664 shared=20480 overhead=24576 exits=vmcall:3,cpuid:1 reason=exited with code 0
//! @corral done vms=1
//! @corral fatal reason=CPU lacks VMX
//! ```

use core::fmt;

/// Start of every record line.
pub const RECORD_PREFIX: &str = "@corral ";
/// Separates the source (a VM name, or [`HYPERVISOR_SOURCE`]) from the text
/// on every ordinary console line: `hello | Hello, world`.
pub const CONSOLE_SEPARATOR: &str = " | ";
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
}

impl VmStatus {
    /// The report spelling.
    pub const fn name(self) -> &'static str {
        match self {
            VmStatus::Exited => "exited",
            VmStatus::Killed => "killed",
            VmStatus::Running => "running",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        [VmStatus::Exited, VmStatus::Killed, VmStatus::Running]
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

/// What one direction of a link did with the frames its sender queued.
/// Every frame the sender's ring handed over is in exactly one counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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

impl LinkFlow {
    /// Frames the sender handed over: delivered plus dropped.
    pub const fn handed(&self) -> u64 {
        self.frames + self.drop_peer + self.drop_size + self.drop_stalled
    }
}

/// One report record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// The hypervisor is up: its ABI version, the cores it runs VMs on and
    /// the memory left for VMs.
    Hypervisor {
        /// [`crate::ABI_VERSION`].
        abi: u32,
        /// Cores started.
        cores: u32,
        /// Bytes of RAM free for VMs once the hypervisor is up.
        free: u64,
    },
    /// The hypervisor cannot go on (for example the CPU lacks VMX).
    Fatal {
        /// One line saying why.
        reason: &'a str,
    },
    /// A VM is being created.
    VmStart {
        /// Manifest index.
        vm: u32,
        /// VM name.
        name: &'a str,
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
    VmRestart {
        /// Manifest index.
        vm: u32,
        /// Which restart this is (1 = first).
        attempt: u32,
        /// Why the previous run ended.
        reason: &'a str,
    },
    /// A guest reported a benchmark value.
    Metric {
        /// Manifest index.
        vm: u32,
        /// Metric name.
        name: &'a str,
        /// Value.
        value: u64,
    },
    /// A VM ended.
    VmEnd {
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
        reason: &'a str,
    },
    /// What a VM that is still running has done so far (sent now and then,
    /// so a run cut short by its time bound still reports it).
    VmProgress {
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
    Link {
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
    /// The steady-state window of a run with links: from the moment the
    /// first link had carried a warm-up number of frames from `a` to `b`
    /// until it had carried `frames` more.
    Window {
        /// Frames the first link carried from `a` to `b` in the window.
        frames: u64,
        /// VM exits of every VM in the window.
        exits: u64,
        /// Polling-core instructions spent moving frames, all links.
        busy: u64,
    },
    /// Every VM has ended; the hypervisor is stopping.
    Done {
        /// VMs run.
        vms: u32,
    },
}

struct Exits<'a>(&'a ExitCounts);

impl fmt::Display for Exits<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (kind, &n) in ExitKind::ALL.iter().zip(self.0) {
            if n > 0 {
                if !first {
                    f.write_str(",")?;
                }
                write!(f, "{}:{n}", kind.name())?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

impl fmt::Display for Record<'_> {
    /// The record line, without the trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(RECORD_PREFIX)?;
        match self {
            Record::Hypervisor { abi, cores, free } => {
                write!(f, "hv abi={abi} cores={cores} free={free}")
            }
            Record::Fatal { reason } => write!(f, "fatal reason={reason}"),
            Record::VmStart {
                vm,
                name,
                image,
                core,
                apic,
                memory,
            } => write!(
                f,
                "vm-start vm={vm} name={name} image={image} core={core} apic={apic} memory={memory}"
            ),
            Record::VmRestart {
                vm,
                attempt,
                reason,
            } => write!(f, "vm-restart vm={vm} attempt={attempt} reason={reason}"),
            Record::Metric { vm, name, value } => {
                write!(f, "metric vm={vm} name={name} value={value}")
            }
            Record::VmEnd {
                vm,
                status,
                code,
                boot,
                restarts,
                slices,
                private,
                shared,
                overhead,
                exits,
                console,
                console_dropped,
                reason,
            } => write!(
                f,
                "vm-end vm={vm} status={} code={code} boot={boot} restarts={restarts} slices={slices} private={private} shared={shared} overhead={overhead} exits={} console={console} console_dropped={console_dropped} reason={reason}",
                status.name(),
                Exits(exits)
            ),
            Record::VmProgress {
                vm,
                boot,
                restarts,
                slices,
                exits,
                console,
                console_dropped,
            } => write!(
                f,
                "vm-progress vm={vm} boot={boot} restarts={restarts} slices={slices} exits={} console={console} console_dropped={console_dropped}",
                Exits(exits)
            ),
            Record::Link {
                link,
                a,
                b,
                core,
                ab,
                ba,
                busy,
            } => write!(
                f,
                "link link={link} a={a} b={b} core={core} ab_frames={} ab_bytes={} ab_drop_peer={} ab_drop_size={} ab_drop_stalled={} ab_stalls={} ba_frames={} ba_bytes={} ba_drop_peer={} ba_drop_size={} ba_drop_stalled={} ba_stalls={} busy={busy}",
                ab.frames,
                ab.bytes,
                ab.drop_peer,
                ab.drop_size,
                ab.drop_stalled,
                ab.stalls,
                ba.frames,
                ba.bytes,
                ba.drop_peer,
                ba.drop_size,
                ba.drop_stalled,
                ba.stalls
            ),
            Record::Window {
                frames,
                exits,
                busy,
            } => write!(f, "window frames={frames} exits={exits} busy={busy}"),
            Record::Done { vms } => write!(f, "done vms={vms}"),
        }
    }
}

/// A line that starts like a record but does not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordError {
    /// The key (or `"kind"`) that is missing or malformed.
    pub key: &'static str,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed report record: bad or missing `{}`", self.key)
    }
}

struct Fields<'a> {
    rest: &'a str,
}

impl<'a> Fields<'a> {
    fn text(&mut self, key: &'static str) -> Result<&'a str, RecordError> {
        let bad = RecordError { key };
        let after = self
            .rest
            .strip_prefix(key)
            .and_then(|r| r.strip_prefix('='))
            .ok_or(bad)?;
        let end = after.find(' ').unwrap_or(after.len());
        let (value, rest) = after.split_at(end);
        self.rest = rest.strip_prefix(' ').unwrap_or(rest);
        if value.is_empty() {
            Err(bad)
        } else {
            Ok(value)
        }
    }

    fn num<T: core::str::FromStr>(&mut self, key: &'static str) -> Result<T, RecordError> {
        self.text(key)?.parse().map_err(|_| RecordError { key })
    }

    fn port(&mut self, key: &'static str) -> Result<PortName<'a>, RecordError> {
        PortName::parse(self.text(key)?).ok_or(RecordError { key })
    }

    fn flow(&mut self, keys: [&'static str; 6]) -> Result<LinkFlow, RecordError> {
        Ok(LinkFlow {
            frames: self.num(keys[0])?,
            bytes: self.num(keys[1])?,
            drop_peer: self.num(keys[2])?,
            drop_size: self.num(keys[3])?,
            drop_stalled: self.num(keys[4])?,
            stalls: self.num(keys[5])?,
        })
    }

    fn reason(&mut self) -> Result<&'a str, RecordError> {
        let r = self
            .rest
            .strip_prefix("reason=")
            .ok_or(RecordError { key: "reason" })?;
        self.rest = "";
        Ok(r)
    }

    fn end(&self) -> Result<(), RecordError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(RecordError { key: "end of line" })
        }
    }
}

fn parse_exits(text: &str) -> Result<ExitCounts, RecordError> {
    let bad = RecordError { key: "exits" };
    let mut counts = [0u64; EXIT_KINDS];
    if text == "-" {
        return Ok(counts);
    }
    for item in text.split(',') {
        let (name, n) = item.split_once(':').ok_or(bad)?;
        let kind = ExitKind::from_name(name).ok_or(bad)?;
        counts[kind as usize] = n.parse().map_err(|_| bad)?;
    }
    Ok(counts)
}

/// Parses one console line: `None` if it is not a record (ordinary console
/// text), otherwise the record or why it is malformed.
pub fn parse_line(line: &str) -> Option<Result<Record<'_>, RecordError>> {
    let body = line
        .trim_end_matches(['\r', '\n'])
        .strip_prefix(RECORD_PREFIX)?;
    Some(parse_body(body))
}

fn parse_body(body: &str) -> Result<Record<'_>, RecordError> {
    let (kind, rest) = body.split_once(' ').unwrap_or((body, ""));
    let mut f = Fields { rest };
    let record = match kind {
        "hv" => Record::Hypervisor {
            abi: f.num("abi")?,
            cores: f.num("cores")?,
            free: f.num("free")?,
        },
        "fatal" => Record::Fatal {
            reason: f.reason()?,
        },
        "vm-start" => Record::VmStart {
            vm: f.num("vm")?,
            name: f.text("name")?,
            image: f.text("image")?,
            core: f.num("core")?,
            apic: f.num("apic")?,
            memory: f.num("memory")?,
        },
        "vm-restart" => Record::VmRestart {
            vm: f.num("vm")?,
            attempt: f.num("attempt")?,
            reason: f.reason()?,
        },
        "metric" => Record::Metric {
            vm: f.num("vm")?,
            name: f.text("name")?,
            value: f.num("value")?,
        },
        "vm-end" => Record::VmEnd {
            vm: f.num("vm")?,
            status: VmStatus::from_name(f.text("status")?).ok_or(RecordError { key: "status" })?,
            code: f.num("code")?,
            boot: f.num("boot")?,
            restarts: f.num("restarts")?,
            slices: f.num("slices")?,
            private: f.num("private")?,
            shared: f.num("shared")?,
            overhead: f.num("overhead")?,
            exits: parse_exits(f.text("exits")?)?,
            console: f.num("console")?,
            console_dropped: f.num("console_dropped")?,
            reason: f.reason()?,
        },
        "vm-progress" => Record::VmProgress {
            vm: f.num("vm")?,
            boot: f.num("boot")?,
            restarts: f.num("restarts")?,
            slices: f.num("slices")?,
            exits: parse_exits(f.text("exits")?)?,
            console: f.num("console")?,
            console_dropped: f.num("console_dropped")?,
        },
        "link" => Record::Link {
            link: f.num("link")?,
            a: f.port("a")?,
            b: f.port("b")?,
            core: f.num("core")?,
            ab: f.flow([
                "ab_frames",
                "ab_bytes",
                "ab_drop_peer",
                "ab_drop_size",
                "ab_drop_stalled",
                "ab_stalls",
            ])?,
            ba: f.flow([
                "ba_frames",
                "ba_bytes",
                "ba_drop_peer",
                "ba_drop_size",
                "ba_drop_stalled",
                "ba_stalls",
            ])?,
            busy: f.num("busy")?,
        },
        "window" => Record::Window {
            frames: f.num("frames")?,
            exits: f.num("exits")?,
            busy: f.num("busy")?,
        },
        "done" => Record::Done { vms: f.num("vms")? },
        _ => return Err(RecordError { key: "kind" }),
    };
    f.end()?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;

    fn round_trip(r: Record<'_>) {
        let line = r.to_string();
        assert_eq!(parse_line(&line), Some(Ok(r)), "{line}");
    }

    #[test]
    fn every_record_round_trips() {
        let mut exits = [0; EXIT_KINDS];
        exits[ExitKind::Vmcall as usize] = 3;
        exits[ExitKind::EptViolation as usize] = 1;
        round_trip(Record::Hypervisor {
            abi: 2,
            cores: 2,
            free: 1 << 28,
        });
        round_trip(Record::VmRestart {
            vm: 3,
            attempt: 2,
            reason: "triple fault at rip 0x1000",
        });
        round_trip(Record::Fatal {
            reason: "CPU lacks VMX (CPUID.1:ECX.VMX = 0)",
        });
        round_trip(Record::VmStart {
            vm: 0,
            name: "hello",
            image: "hello",
            core: 0,
            apic: 0,
            memory: 0x20_0000,
        });
        round_trip(Record::Metric {
            vm: 1,
            name: "hypercall_roundtrip",
            value: 412,
        });
        round_trip(Record::VmEnd {
            vm: 2,
            status: VmStatus::Killed,
            code: -1,
            boot: 0,
            restarts: 2,
            slices: 7,
            private: 1,
            shared: 2,
            overhead: 3,
            exits,
            console: 10,
            console_dropped: 4096,
            reason: "EPT violation: read at 0x200000",
        });
        round_trip(Record::VmProgress {
            vm: 2,
            boot: 52_000,
            restarts: 1,
            slices: 9,
            exits,
            console: 100,
            console_dropped: 0,
        });
        round_trip(Record::VmEnd {
            vm: 2,
            status: VmStatus::Exited,
            code: 0,
            boot: 5,
            restarts: 0,
            slices: 1,
            private: 0,
            shared: 0,
            overhead: 0,
            exits: [0; EXIT_KINDS],
            console: 0,
            console_dropped: 0,
            reason: "",
        });
        round_trip(Record::Done { vms: 4 });
        round_trip(Record::Link {
            link: 1,
            a: PortName {
                vm: "fw.x",
                port: 1,
            },
            b: PortName { vm: "nat", port: 0 },
            core: 0,
            ab: LinkFlow {
                frames: 10,
                bytes: 640,
                drop_peer: 2,
                drop_size: 1,
                drop_stalled: 7,
                stalls: 1,
            },
            ba: LinkFlow::default(),
            busy: 12345,
        });
        round_trip(Record::Window {
            frames: 1000,
            exits: 3,
            busy: 250_000,
        });
    }

    #[test]
    fn port_names() {
        assert_eq!(
            PortName::parse("web.3.1"),
            Some(PortName {
                vm: "web.3",
                port: 1
            })
        );
        assert_eq!(PortName::parse("web"), None);
        assert_eq!(PortName::parse(".1"), None);
        assert_eq!(PortName::parse("web.x"), None);
        assert_eq!(PortName::parse("web.300"), None);
        let flow = LinkFlow {
            frames: 5,
            bytes: 0,
            drop_peer: 2,
            drop_size: 1,
            drop_stalled: 3,
            stalls: 1,
        };
        assert_eq!(flow.handed(), 11);
    }

    #[test]
    fn ordinary_lines_are_not_records() {
        assert_eq!(parse_line("hello | Hello, world"), None);
        assert_eq!(parse_line("@corralx"), None);
    }

    #[test]
    fn malformed_records_name_the_key() {
        let key = |l: &str| parse_line(l).unwrap().unwrap_err().key;
        assert_eq!(key("@corral nope"), "kind");
        assert_eq!(key("@corral hv abi=x cores=1 free=0"), "abi");
        assert_eq!(key("@corral hv abi=1"), "cores");
        assert_eq!(
            key("@corral hv abi=1 cores=1 free=0 extra=2"),
            "end of line"
        );
        let end = |status: &str, exits: &str| {
            std::format!(
                "@corral vm-end vm=0 status={status} code=0 boot=0 restarts=0 slices=1 private=0 shared=0 overhead=0 exits={exits} console=0 console_dropped=0 reason=x"
            )
        };
        assert!(parse_line(&end("exited", "-")).unwrap().is_ok());
        assert_eq!(key(&end("gone", "-")), "status");
        assert_eq!(key(&end("exited", "warp:1")), "exits");
        assert_eq!(key("@corral done vms="), "vms");
    }

    #[test]
    fn kinds_have_unique_names() {
        for (i, k) in ExitKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
            assert_eq!(ExitKind::from_name(k.name()), Some(*k));
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "@corral [a-z=0-9 ,:-]{0,80}") {
            let _ = parse_line(&s);
        }
    }
}
