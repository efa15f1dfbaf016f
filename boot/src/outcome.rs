//! What the hypervisor's report records say happened, accumulated record by
//! record as console lines arrive: per-VM status, exit counts and metrics,
//! and whether the run finished (`done`) or was refused (`fatal`).

use serde::Serialize;
use std::collections::BTreeMap;
use vmm_abi::report::{EXIT_KINDS, ExitCounts, ExitKind, Record, VmStatus};

/// One VM as the records describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmOutcome {
    /// A `vm-start` record arrived for it.
    pub started: bool,
    /// Core it was put on and that core's local APIC ID, from its latest
    /// `vm-start`.
    pub placement: Option<(u32, u32)>,
    /// Its status: [`VmStatus::Running`] until its `vm-end` record.
    pub status: VmStatus,
    /// Exit code from `vm-end`.
    pub code: i64,
    /// Why it ended, from `vm-end` (empty before).
    pub reason: String,
    /// Instructions from VM creation to the guest's `main` (last run).
    pub boot: u64,
    /// Restarts: from `vm-end`, or the `vm-restart` records seen so far.
    pub restarts: u32,
    /// Why each earlier run ended, from `vm-restart` records.
    pub restart_reasons: Vec<String>,
    /// Times it was scheduled onto its core after another VM ran.
    pub slices: u64,
    /// Memory accounting from `vm-end`, in bytes.
    pub memory: MemoryUse,
    /// VM exits by kind.
    pub exits: ExitCounts,
    /// Metrics the guest reported, by name.
    pub metrics: BTreeMap<String, u64>,
}

/// What one VM cost in memory, in bytes, as its `vm-end` record says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryUse {
    /// Guest memory mapped only into this VM.
    pub private: u64,
    /// Guest memory shared with the other VMs of its image (read-only
    /// segments).
    pub shared: u64,
    /// The hypervisor's own memory for it (VMCS, EPT tables, bookkeeping).
    pub overhead: u64,
}

impl Default for VmOutcome {
    fn default() -> Self {
        VmOutcome {
            started: false,
            placement: None,
            status: VmStatus::Running,
            code: 0,
            reason: String::new(),
            boot: 0,
            restarts: 0,
            restart_reasons: Vec::new(),
            slices: 0,
            memory: MemoryUse::default(),
            exits: [0; EXIT_KINDS],
            metrics: BTreeMap::new(),
        }
    }
}

impl VmOutcome {
    /// All exits, of every kind.
    pub fn exits_total(&self) -> u64 {
        self.exits.iter().sum()
    }

    /// Non-zero exit counts keyed by [`ExitKind::name`].
    pub fn exit_map(&self) -> BTreeMap<String, u64> {
        ExitKind::ALL
            .iter()
            .zip(self.exits)
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.name().to_string(), n))
            .collect()
    }

    /// The exit code if the guest exited by itself.
    pub fn exit_code(&self) -> Option<i64> {
        (self.status == VmStatus::Exited).then_some(self.code)
    }

    /// Whether it has ended for good (a `vm-end` record arrived).
    pub fn ended(&self) -> bool {
        self.status != VmStatus::Running
    }
}

/// What the `hv` record says about the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypervisorInfo {
    /// ABI version it speaks.
    pub abi: u32,
    /// Cores it started.
    pub cores: u32,
    /// Bytes of RAM free for VMs once it was up.
    pub free: u64,
}

/// The whole run as far as the records tell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOutcome {
    /// From the `hv` record, once it arrived.
    pub hypervisor: Option<HypervisorInfo>,
    /// Reason from a `fatal` record.
    pub fatal: Option<String>,
    /// A `done` record arrived.
    pub done: bool,
    /// One entry per manifest VM, in manifest order.
    pub vms: Vec<VmOutcome>,
    /// Records that could not be used (malformed, or naming no such VM).
    pub warnings: Vec<String>,
}

impl RunOutcome {
    /// The state before any record, for a manifest of `vm_count` VMs.
    pub fn new(vm_count: usize) -> Self {
        RunOutcome {
            vms: vec![VmOutcome::default(); vm_count],
            ..RunOutcome::default()
        }
    }

    /// Whether the hypervisor has said its last word (`done` or `fatal`).
    pub fn finished(&self) -> bool {
        self.done || self.fatal.is_some()
    }

    fn vm_mut(&mut self, vm: u32, kind: &str) -> Option<&mut VmOutcome> {
        let count = self.vms.len();
        if (vm as usize) < count {
            self.vms.get_mut(vm as usize)
        } else {
            self.warnings.push(format!(
                "`{kind}` record names vm {vm}, but the manifest has {count}"
            ));
            None
        }
    }

    /// Takes one record into account.
    pub fn apply(&mut self, record: &Record<'_>) {
        match *record {
            Record::Hypervisor { abi, cores, free } => {
                if abi != vmm_abi::ABI_VERSION {
                    self.warnings.push(format!(
                        "hypervisor speaks ABI {abi}, this tool {}",
                        vmm_abi::ABI_VERSION
                    ));
                }
                self.hypervisor = Some(HypervisorInfo { abi, cores, free });
            }
            Record::Fatal { reason } => self.fatal = Some(reason.to_string()),
            Record::VmStart { vm, core, apic, .. } => {
                if let Some(v) = self.vm_mut(vm, "vm-start") {
                    v.started = true;
                    v.placement = Some((core, apic));
                }
            }
            Record::VmRestart {
                vm,
                attempt,
                reason,
            } => {
                if let Some(v) = self.vm_mut(vm, "vm-restart") {
                    v.restarts = v.restarts.max(attempt);
                    v.restart_reasons.push(reason.to_string());
                }
            }
            Record::Metric { vm, name, value } => {
                if let Some(v) = self.vm_mut(vm, "metric") {
                    v.metrics.insert(name.to_string(), value);
                }
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
                reason,
            } => {
                if let Some(v) = self.vm_mut(vm, "vm-end") {
                    v.status = status;
                    v.code = code;
                    v.boot = boot;
                    v.restarts = restarts;
                    v.slices = slices;
                    v.memory = MemoryUse {
                        private,
                        shared,
                        overhead,
                    };
                    v.exits = exits;
                    v.reason = reason.to_string();
                }
            }
            Record::Done { .. } => self.done = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_abi::report::parse_line;

    fn feed(run: &mut RunOutcome, line: &str) {
        run.apply(&parse_line(line).unwrap().unwrap());
    }

    #[test]
    fn records_build_the_outcome() {
        let mut run = RunOutcome::new(2);
        feed(&mut run, "@corral hv abi=2 cores=4 free=264241152");
        feed(
            &mut run,
            "@corral vm-start vm=0 name=a image=hello core=2 apic=4 memory=262144",
        );
        feed(&mut run, "@corral metric vm=0 name=x value=7");
        feed(
            &mut run,
            "@corral vm-restart vm=0 attempt=1 reason=triple fault at rip 0x10003d",
        );
        assert_eq!(run.vms[0].restarts, 1);
        feed(
            &mut run,
            "@corral vm-start vm=0 name=a image=hello core=3 apic=6 memory=262144",
        );
        feed(
            &mut run,
            "@corral vm-end vm=0 status=exited code=3 boot=99 restarts=1 slices=5 private=241664 shared=20480 overhead=24576 exits=vmcall:4,cpuid:1 reason=exited with code 3",
        );
        assert!(!run.finished());
        feed(&mut run, "@corral done vms=2");
        assert!(run.finished());
        assert_eq!(
            run.hypervisor,
            Some(HypervisorInfo {
                abi: 2,
                cores: 4,
                free: 264_241_152
            })
        );
        let a = &run.vms[0];
        assert!(a.started && a.ended());
        assert_eq!(a.placement, Some((3, 6)));
        assert_eq!((a.restarts, a.slices), (1, 5));
        assert_eq!(a.restart_reasons, ["triple fault at rip 0x10003d"]);
        assert_eq!(
            a.memory,
            MemoryUse {
                private: 241_664,
                shared: 20_480,
                overhead: 24_576
            }
        );
        assert_eq!(a.status, VmStatus::Exited);
        assert_eq!(a.exit_code(), Some(3));
        assert_eq!(a.boot, 99);
        assert_eq!(a.exits_total(), 5);
        assert_eq!(a.exit_map().get("vmcall"), Some(&4));
        assert_eq!(a.exit_map().len(), 2);
        assert_eq!(a.metrics.get("x"), Some(&7));
        assert_eq!(run.vms[1].status, VmStatus::Running);
        assert!(!run.vms[1].ended() && run.vms[1].placement.is_none());
        assert_eq!(run.vms[1].exit_code(), None);
        assert!(run.warnings.is_empty());
    }

    #[test]
    fn bad_indices_and_abi_are_warned_about() {
        let mut run = RunOutcome::new(1);
        feed(&mut run, "@corral hv abi=99 cores=1 free=0");
        feed(&mut run, "@corral metric vm=5 name=x value=7");
        feed(&mut run, "@corral vm-restart vm=1 attempt=1 reason=x");
        assert_eq!(run.warnings.len(), 3);
        feed(&mut run, "@corral fatal reason=CPU lacks VMX");
        assert_eq!(run.fatal.as_deref(), Some("CPU lacks VMX"));
        assert!(run.finished());
    }
}
