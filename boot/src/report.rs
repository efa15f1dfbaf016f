//! The run report: the JSON written by `--report` and the summary table
//! printed at the end of a run, both built from the manifest and the
//! records the hypervisor printed.

use crate::error::{Error, Result};
use crate::outcome::{RunOutcome, VmOutcome};
use crate::toml_manifest::{Manifest, VmConfig};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One VM in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VmReport {
    /// VM name.
    pub name: String,
    /// Image name.
    pub image: String,
    /// Core it was pinned to.
    pub core: u32,
    /// `exited`, `killed` or `running`.
    pub status: String,
    /// Exit code, when the guest exited by itself.
    pub exit_code: Option<i64>,
    /// Why it ended (empty if it did not).
    pub reason: String,
    /// Instructions from VM creation to the guest's `main`.
    pub boot_instructions: u64,
    /// Non-zero VM-exit counts by kind.
    pub exits: BTreeMap<String, u64>,
    /// Metrics the guest reported.
    pub metrics: BTreeMap<String, u64>,
    /// What the manifest expected.
    pub expect: String,
    /// Whether the VM met the expectation.
    pub ok: bool,
}

impl VmReport {
    /// The report entry for `vm` given what the records said about it.
    pub fn new(vm: &VmConfig, outcome: &VmOutcome) -> Self {
        VmReport {
            name: vm.name.clone(),
            image: vm.image.clone(),
            core: vm.core,
            status: outcome.status.name().to_string(),
            exit_code: outcome.exit_code(),
            reason: outcome.reason.clone(),
            boot_instructions: outcome.boot,
            exits: outcome.exit_map(),
            metrics: outcome.metrics.clone(),
            expect: vm.expect.to_string(),
            ok: vm.expect.is_met(outcome),
        }
    }

    /// All exits of every kind.
    pub fn exits_total(&self) -> u64 {
        self.exits.values().sum()
    }
}

/// The whole run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The manifest file.
    pub manifest: String,
    /// A `done` record arrived: every VM ran to its end.
    pub completed: bool,
    /// The hypervisor's refusal, from a `fatal` record.
    pub fatal: Option<String>,
    /// The emulator was stopped at the wall-clock bound.
    pub timed_out: bool,
    /// Bochs CPU model.
    pub cpu_model: String,
    /// Emulated CPUs.
    pub cpus: u32,
    /// Why the tool failed, if it did (as printed after `corral: error:`).
    pub error: Option<String>,
    /// The staging directory with the ISO inputs and the emulator's logs.
    pub run_dir: Option<String>,
    /// One entry per manifest VM, in manifest order.
    pub vms: Vec<VmReport>,
}

impl Report {
    /// A report for `manifest` with what `outcome` says so far.
    pub fn new(manifest: &Manifest, cpu_model: &str, cpus: u32, outcome: &RunOutcome) -> Self {
        Report {
            manifest: manifest.origin.clone(),
            completed: outcome.done,
            fatal: outcome.fatal.clone(),
            timed_out: false,
            cpu_model: cpu_model.to_string(),
            cpus,
            error: None,
            run_dir: None,
            vms: manifest
                .vms
                .iter()
                .zip(&outcome.vms)
                .map(|(vm, o)| VmReport::new(vm, o))
                .collect(),
        }
    }

    /// A report for a run that stopped before a manifest could be read.
    pub fn unread(manifest: &str, error: &Error) -> Self {
        Report {
            manifest: manifest.to_string(),
            completed: false,
            fatal: None,
            timed_out: false,
            cpu_model: String::new(),
            cpus: 0,
            error: Some(error.message().to_string()),
            run_dir: None,
            vms: Vec::new(),
        }
    }

    /// Whether the run completed and every VM met its expectation.
    pub fn passed(&self) -> bool {
        self.completed && self.error.is_none() && self.vms.iter().all(|v| v.ok)
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Writes the JSON to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_json() + "\n").map_err(|e| {
            Error::new(format!(
                "cannot write the report to {}: {e}",
                path.display()
            ))
        })
    }

    /// The summary table, one row per VM, columns aligned.
    pub fn table(&self) -> String {
        let header = [
            "name",
            "image",
            "core",
            "status",
            "code",
            "boot instr",
            "exits",
            "reason",
            "result",
        ];
        let mut rows: Vec<[String; 9]> = vec![header.map(String::from)];
        for vm in &self.vms {
            rows.push([
                vm.name.clone(),
                vm.image.clone(),
                vm.core.to_string(),
                vm.status.clone(),
                vm.exit_code.map_or("-".to_string(), |c| c.to_string()),
                vm.boot_instructions.to_string(),
                vm.exits_total().to_string(),
                if vm.reason.is_empty() {
                    "-".to_string()
                } else {
                    vm.reason.clone()
                },
                if vm.ok {
                    "OK".to_string()
                } else {
                    format!("FAIL (expected {})", vm.expect)
                },
            ]);
        }
        let mut widths = [0usize; 9];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let numeric = [false, false, true, false, true, true, true, false, false];
        let mut out = String::new();
        for row in &rows {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .zip(numeric)
                .map(|((cell, w), right)| {
                    if right {
                        format!("{cell:>w$}")
                    } else {
                        format!("{cell:<w$}")
                    }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toml_manifest::parse;
    use vmm_abi::report::parse_line;

    fn sample() -> Report {
        let manifest = parse(
            "[[vm]]\nname = \"hello\"\nimage = \"hello\"\n\
             [[vm]]\nname = \"esc\"\nimage = \"escape\"\nexpect = \"killed:EPT violation\"\n\
             [[vm]]\nname = \"late\"\nimage = \"hello\"\n",
            "m.toml",
            &["hello".into(), "escape".into()],
        )
        .unwrap();
        let mut outcome = RunOutcome::new(3);
        for line in [
            "@corral hv abi=1 cores=1",
            "@corral vm-start vm=0 name=hello image=hello core=0 memory=2097152",
            "@corral metric vm=0 name=hypercall_roundtrip value=412",
            "@corral vm-end vm=0 status=exited code=0 boot=18211 exits=vmcall:3,cpuid:1 reason=exited with code 0",
            "@corral vm-end vm=1 status=killed code=-1 boot=100 exits=ept_violation:1 reason=EPT violation: read at guest-physical 0x200000",
        ] {
            outcome.apply(&parse_line(line).unwrap().unwrap());
        }
        Report::new(&manifest, "corei7_icelake_u", 1, &outcome)
    }

    #[test]
    fn json_has_the_agreed_shape() {
        let report = sample();
        let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(v["manifest"], "m.toml");
        assert_eq!(v["completed"], false);
        assert_eq!(v["fatal"], serde_json::Value::Null);
        assert_eq!(v["timed_out"], false);
        assert_eq!(v["cpu_model"], "corei7_icelake_u");
        assert_eq!(v["cpus"], 1);
        let hello = &v["vms"][0];
        assert_eq!(hello["name"], "hello");
        assert_eq!(hello["image"], "hello");
        assert_eq!(hello["core"], 0);
        assert_eq!(hello["status"], "exited");
        assert_eq!(hello["exit_code"], 0);
        assert_eq!(hello["reason"], "exited with code 0");
        assert_eq!(hello["boot_instructions"], 18211);
        assert_eq!(hello["exits"], serde_json::json!({"vmcall": 3, "cpuid": 1}));
        assert_eq!(hello["metrics"]["hypercall_roundtrip"], 412);
        assert_eq!(hello["expect"], "exit:0");
        assert_eq!(hello["ok"], true);
        let esc = &v["vms"][1];
        assert_eq!(esc["status"], "killed");
        assert_eq!(esc["exit_code"], serde_json::Value::Null);
        assert_eq!(esc["ok"], true);
        let late = &v["vms"][2];
        assert_eq!(late["status"], "running");
        assert_eq!(late["exits"], serde_json::json!({}));
        assert_eq!(late["ok"], false);
    }

    #[test]
    fn passing_needs_completion_and_every_expectation() {
        let mut report = sample();
        assert!(!report.passed());
        report.completed = true;
        assert!(!report.passed());
        report.vms.pop();
        assert!(report.passed());
        report.error = Some("x".into());
        assert!(!report.passed());
    }

    #[test]
    fn table_is_aligned() {
        let table = sample().table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0],
            "name   image   core  status   code  boot instr  exits  reason                                          result"
        );
        assert_eq!(
            lines[1],
            "hello  hello      0  exited      0       18211      4  exited with code 0                              OK"
        );
        assert!(lines[3].contains("running") && lines[3].ends_with("FAIL (expected exit:0)"));
    }

    #[test]
    fn unread_reports_carry_the_error() {
        let r = Report::unread("x.toml", &Error::new("cannot read manifest x.toml"));
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["error"], "cannot read manifest x.toml");
        assert_eq!(v["completed"], false);
        assert_eq!(v["vms"], serde_json::json!([]));
    }
}
