//! `corral scale-bench`: brings `images/manifests/scale-bench.toml` up as a service run, scales its entry from 1 to N and back for each size, checks that free memory comes back to the byte, and prints what each VM started at runtime cost (from creation to `main`, and from its core taking the `start` to `main`) per size — flat when starting VMs at runtime costs the same at any fleet size.

use crate::cargo_build::workspace_root;
use crate::error::{Error, Result};
use crate::host_cmd;
use crate::service::HostDir;
use crate::table::{self, Align};
use std::path::PathBuf;
use std::time::Duration;

/// The sizes scaled to by default.
pub const DEFAULT_SIZES: [u32; 4] = [1, 8, 64, 256];
/// The entry scaled.
const ENTRY: &str = "small";
/// The metric the hypervisor records when a VM started at runtime reaches
/// `main` (see `platform::run::START_TO_MAIN`).
const START_TO_MAIN: &str = crate::console::START_TO_MAIN;
/// The metric of instructions from the control core taking the command to
/// its first VM's `main` (see `platform::run::COMMAND_TO_MAIN`).
const COMMAND_TO_MAIN: &str = crate::console::COMMAND_TO_MAIN;

/// The bench's manifest.
pub fn manifest_path() -> PathBuf {
    workspace_root()
        .join("images")
        .join("manifests")
        .join("scale-bench.toml")
}

/// One size's numbers: the VMs started (avg, min, max of each cost).
#[derive(Debug, PartialEq)]
pub struct Step {
    /// The size scaled to.
    pub size: u32,
    /// Instructions from creation to `main`, per VM started: avg, min, max.
    pub boot: (u64, u64, u64),
    /// Instructions from the core taking `start` to `main`: avg, min, max.
    pub start_to_main: (u64, u64, u64),
    /// Instructions from the control core taking the scale command to
    /// its first VM's `main` (`None` for a step that started none).
    pub command_to_main: Option<u64>,
    /// VMs started.
    pub started: usize,
}

fn spread(values: &[u64]) -> (u64, u64, u64) {
    let n = values.len().max(1) as u64;
    let sum: u64 = values.iter().sum();
    (
        sum / n,
        values.iter().copied().min().unwrap_or(0),
        values.iter().copied().max().unwrap_or(0),
    )
}

/// The steps' numbers from the report: the VMs after the manifest's
/// `manifest_vms`, in id order, `size - 1` for each size in turn.
pub fn steps(report: &serde_json::Value, manifest_vms: usize, sizes: &[u32]) -> Result<Vec<Step>> {
    let vms = report["vms"]
        .as_array()
        .ok_or_else(|| Error::new("the report lists no VMs"))?;
    let mut rest = vms.iter().skip(manifest_vms);
    let mut out = Vec::new();
    for &size in sizes {
        let started = size.saturating_sub(1) as usize;
        let step: Vec<&serde_json::Value> = rest.by_ref().take(started).collect();
        if step.len() != started {
            return Err(Error::new(format!(
                "scaling to {size} started {} VMs, the report lists {}",
                started,
                step.len()
            )));
        }
        let number = |v: &serde_json::Value, n: Option<u64>, what: &str| {
            n.ok_or_else(|| {
                Error::new(format!(
                    "VM `{}` has no `{what}` number in the report",
                    v["name"]
                ))
            })
        };
        let boot: Vec<u64> = step
            .iter()
            .map(|v| number(v, v["boot_instructions"].as_u64(), "boot"))
            .collect::<Result<_>>()?;
        let ttm: Vec<u64> = step
            .iter()
            .map(|v| number(v, v["metrics"][START_TO_MAIN].as_u64(), START_TO_MAIN))
            .collect::<Result<_>>()?;
        // The step's one command: its first VM says how long it took.
        let command_to_main = match step.first() {
            None => None,
            Some(v) => Some(number(
                v,
                v["metrics"][COMMAND_TO_MAIN].as_u64(),
                COMMAND_TO_MAIN,
            )?),
        };
        out.push(Step {
            size,
            boot: spread(&boot),
            start_to_main: spread(&ttm),
            command_to_main,
            started,
        });
    }
    Ok(out)
}

/// The printed table.
pub fn lines(steps: &[Step]) -> Vec<String> {
    let mut rows = vec![
        [
            "1 -> N -> 1",
            "started",
            "boot avg",
            "boot min",
            "boot max",
            "start to main avg",
            "min",
            "max",
            "command to first main",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for s in steps.iter().filter(|s| s.started > 0) {
        rows.push(vec![
            s.size.to_string(),
            s.started.to_string(),
            s.boot.0.to_string(),
            s.boot.1.to_string(),
            s.boot.2.to_string(),
            s.start_to_main.0.to_string(),
            s.start_to_main.1.to_string(),
            s.start_to_main.2.to_string(),
            s.command_to_main
                .map_or_else(|| "-".to_string(), |n| n.to_string()),
        ]);
    }
    table::lines(&rows, &[Align::Right; 9])
}

/// Runs the bench with `sizes` (each at least 2: size 1 starts nothing) on
/// host `host`; `run_args` go to the background `corral run`.
pub fn run(sizes: &[u32], host: &str, run_args: &[String]) -> Result<Vec<String>> {
    let host = HostDir::named(host)?;
    let bound = Duration::from_secs(crate::toml_manifest::MAX_TIMEOUT_SECS);
    println!("[scale-bench] bringing host `{}` up", host.name);
    host_cmd::up(&manifest_path(), &host, run_args, bound)?;
    let result = scale_all(&host, sizes);
    let report = host.dir.join("scale-bench-report.json");
    let down = host_cmd::down(&host, Some(&report));
    result?;
    let (_, code) = down?;
    if code != 0 {
        return Err(Error::new(format!(
            "the scale-bench run did not end as expected (exit status {code})"
        )));
    }
    let text = std::fs::read_to_string(&report)
        .map_err(|e| Error::new(format!("cannot read {}: {e}", report.display())))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::new(format!("{}: {e}", report.display())))?;
    Ok(lines(&steps(&value, 1, sizes)?))
}

/// What the console shows when a VM started at runtime reaches `main`
/// (from the hypervisor's record, which is never dropped as guest text
/// may be).
const AT_MAIN: &str = crate::console::AT_MAIN;
/// How long the VMs of one step may take to reach `main`.
const MAIN_BOUND: Duration = Duration::from_secs(600);

/// Waits until the host's console shows `what` `count` times (the lines
/// come from the hypervisor's records, which are never dropped as guest
/// text may be).
fn wait_for(host: &HostDir, what: &str, count: usize) -> Result<()> {
    let start = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(host.console()).unwrap_or_default();
        let seen = text.matches(what).count();
        if seen >= count {
            return Ok(());
        }
        if start.elapsed() > MAIN_BOUND {
            return Err(Error::new(format!(
                "after {} s the console shows `{what}` {seen} of {count} times",
                MAIN_BOUND.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn scale_all(host: &HostDir, sizes: &[u32]) -> Result<()> {
    let free = || host_cmd::free_memory(host);
    // The manifest's VM is created first, so memory is measured with it.
    wait_for(host, &format!("{ENTRY} | -- starting image"), 1)?;
    let mut at_main = 0;
    let before = free()?;
    for &size in sizes {
        println!("[scale-bench] {ENTRY}: 1 -> {size} -> 1");
        host_cmd::scale(host, ENTRY, size)?;
        // Every VM of the step reaches `main` before any is stopped.
        at_main += size.saturating_sub(1) as usize;
        wait_for(host, AT_MAIN, at_main)?;
        host_cmd::scale(host, ENTRY, 1)?;
        let after = free()?;
        if after != before {
            return Err(Error::new(format!(
                "free memory after scaling to {size} and back: {after} bytes, {before} before"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(name: &str, boot: u64, ttm: Option<u64>) -> serde_json::Value {
        let mut v = serde_json::json!({"name": name, "boot_instructions": boot, "metrics": {}});
        if let Some(t) = ttm {
            v["metrics"][START_TO_MAIN] = t.into();
            v["metrics"][COMMAND_TO_MAIN] = (t + 1000).into();
        }
        v
    }

    #[test]
    fn steps_take_the_vms_each_size_started() {
        let report = serde_json::json!({"vms": [
            vm("small", 50, None),
            vm("small-1", 100, Some(150)),
            vm("small-2", 110, Some(160)),
            vm("small-3", 120, Some(300)),
            vm("small-4", 90, Some(140)),
        ]});
        let s = steps(&report, 1, &[3, 3]).unwrap();
        assert_eq!(s[0].boot, (105, 100, 110));
        assert_eq!(s[1].start_to_main, (220, 140, 300));
        // The first VM of each step's command.
        assert_eq!(
            (s[0].command_to_main, s[1].command_to_main),
            (Some(1150), Some(1300))
        );
        assert_eq!(s[1].started, 2);
        let l = lines(&s);
        assert!(l[0].starts_with("1 -> N -> 1  started  boot avg"), "{l:?}");
        assert_eq!(l.len(), 3);
        // Too few VMs, or a VM without its numbers.
        assert!(steps(&report, 1, &[3, 4]).is_err());
        let bad = serde_json::json!({"vms": [vm("small", 1, None), vm("small-1", 1, None)]});
        assert!(
            steps(&bad, 1, &[2])
                .unwrap_err()
                .message()
                .contains("start")
        );
        assert!(manifest_path().is_file());
    }
}
