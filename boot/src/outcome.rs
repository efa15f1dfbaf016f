//! What the hypervisor's report records say happened, accumulated record by
//! record as console lines arrive: per-VM status, exit counts and metrics,
//! and whether the run finished (`done`) or was refused (`fatal`).

use std::collections::BTreeMap;
use vmm_abi::report::{EXIT_KINDS, ExitCounts, ExitKind, Record, VmStatus};

/// One VM as the records describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmOutcome {
    /// A `vm-start` record arrived for it.
    pub started: bool,
    /// Its status: [`VmStatus::Running`] until its `vm-end` record.
    pub status: VmStatus,
    /// Exit code from `vm-end`.
    pub code: i64,
    /// Why it ended, from `vm-end` (empty before).
    pub reason: String,
    /// Instructions from VM creation to the guest's `main`.
    pub boot: u64,
    /// VM exits by kind.
    pub exits: ExitCounts,
    /// Metrics the guest reported, by name.
    pub metrics: BTreeMap<String, u64>,
}

impl Default for VmOutcome {
    fn default() -> Self {
        VmOutcome {
            started: false,
            status: VmStatus::Running,
            code: 0,
            reason: String::new(),
            boot: 0,
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
}

/// The whole run as far as the records tell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOutcome {
    /// ABI version and cores from the `hv` record, once it arrived.
    pub hypervisor: Option<(u32, u32)>,
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
            Record::Hypervisor { abi, cores } => {
                if abi != vmm_abi::ABI_VERSION {
                    self.warnings.push(format!(
                        "hypervisor speaks ABI {abi}, this tool {}",
                        vmm_abi::ABI_VERSION
                    ));
                }
                self.hypervisor = Some((abi, cores));
            }
            Record::Fatal { reason } => self.fatal = Some(reason.to_string()),
            Record::VmStart { vm, .. } => {
                if let Some(v) = self.vm_mut(vm, "vm-start") {
                    v.started = true;
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
                exits,
                reason,
            } => {
                if let Some(v) = self.vm_mut(vm, "vm-end") {
                    v.status = status;
                    v.code = code;
                    v.boot = boot;
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
        feed(&mut run, "@corral hv abi=1 cores=1");
        feed(
            &mut run,
            "@corral vm-start vm=0 name=a image=hello core=0 memory=2097152",
        );
        feed(&mut run, "@corral metric vm=0 name=x value=7");
        feed(
            &mut run,
            "@corral vm-end vm=0 status=exited code=3 boot=99 exits=vmcall:4,cpuid:1 reason=exited with code 3",
        );
        assert!(!run.finished());
        feed(&mut run, "@corral done vms=2");
        assert!(run.finished());
        let a = &run.vms[0];
        assert!(a.started);
        assert_eq!(a.status, VmStatus::Exited);
        assert_eq!(a.exit_code(), Some(3));
        assert_eq!(a.boot, 99);
        assert_eq!(a.exits_total(), 5);
        assert_eq!(a.exit_map().get("vmcall"), Some(&4));
        assert_eq!(a.exit_map().len(), 2);
        assert_eq!(a.metrics.get("x"), Some(&7));
        assert_eq!(run.vms[1].status, VmStatus::Running);
        assert_eq!(run.vms[1].exit_code(), None);
        assert!(run.warnings.is_empty());
    }

    #[test]
    fn bad_indices_and_abi_are_warned_about() {
        let mut run = RunOutcome::new(1);
        feed(&mut run, "@corral hv abi=99 cores=1");
        feed(&mut run, "@corral metric vm=5 name=x value=7");
        assert_eq!(run.warnings.len(), 2);
        feed(&mut run, "@corral fatal reason=CPU lacks VMX");
        assert_eq!(run.fatal.as_deref(), Some("CPU lacks VMX"));
        assert!(run.finished());
    }
}
