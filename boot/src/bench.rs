//! `corral bench`: runs `images/manifests/bench.toml` and prints the
//! deterministic benchmark numbers (emulated instructions) it reports.

use crate::cargo_build::workspace_root;
use crate::error::{Error, Result};
use crate::report::Report;
use std::path::PathBuf;

/// Metric the bench image reports: instructions per null hypercall round trip.
pub const ROUNDTRIP_METRIC: &str = "hypercall_roundtrip";
/// Optional metric: the same in hundredths of an instruction.
pub const ROUNDTRIP_X100_METRIC: &str = "hypercall_roundtrip_x100";
/// Optional metric: how many round trips the average is over.
pub const ITERATIONS_METRIC: &str = "hypercall_iterations";

/// The console benchmark's halves: the quiet VM's neighbour is busy, then
/// a console spammer (`images/manifests/console-bench-<half>.toml`).
pub const CONSOLE_HALVES: [&str; 2] = ["busy", "spam"];
/// The VM the console benchmark measures, and its neighbour.
const QUIET_VM: &str = "quiet";
const NEIGHBOUR_VM: &str = "neighbour";
/// The metric the quiet VM (`spin`) reports: TSC ticks from start to done.
const ELAPSED_METRIC: &str = "elapsed_ticks";

/// The manifest of one console-benchmark half.
pub fn console_manifest(half: &str) -> PathBuf {
    workspace_root()
        .join("images")
        .join("manifests")
        .join(format!("console-bench-{half}.toml"))
}

/// The console benchmark's lines: the quiet VM's slices and instructions
/// to finish beside a busy neighbour and beside a spammer, and what the
/// spammer printed and had dropped.
pub fn console_lines(busy: &Report, spam: &Report) -> Result<Vec<String>> {
    let vm = |r: &Report, name: &str| {
        r.vms
            .iter()
            .find(|v| v.name == name)
            .cloned()
            .ok_or_else(|| Error::new(format!("the console benchmark has no VM `{name}`")))
    };
    let quiet = |r: &Report| -> Result<(u64, u64)> {
        let q = vm(r, QUIET_VM)?;
        let ticks = *q
            .metrics
            .get(ELAPSED_METRIC)
            .ok_or_else(|| Error::new(format!("VM `{QUIET_VM}` reported no `{ELAPSED_METRIC}`")))?;
        Ok((q.slices, ticks))
    };
    let (busy_slices, busy_ticks) = quiet(busy)?;
    let (spam_slices, spam_ticks) = quiet(spam)?;
    let spammer = vm(spam, NEIGHBOUR_VM)?;
    let ratio = spam_ticks as f64 / busy_ticks.max(1) as f64;
    Ok(vec![
        format!(
            "quiet VM beside a busy VM   : {busy_slices} slices, {busy_ticks} instructions to finish"
        ),
        format!(
            "quiet VM beside a spammer   : {spam_slices} slices, {spam_ticks} instructions to finish ({ratio:.3}x); the spammer printed {} bytes, {} dropped",
            spammer.console.bytes, spammer.console.dropped
        ),
    ])
}

/// The Solo5 hvt bench manifest of this workspace.
pub fn solo5_manifest_path() -> PathBuf {
    workspace_root()
        .join("images")
        .join("manifests")
        .join("solo5-bench.toml")
}

/// What the hvt bench guest prints before its numbers.
const SOLO5_MARK: &str = "hvt bench: ";

/// A value in hundredths as `N.NN`.
fn hundredths(v: u64) -> String {
    format!("{}.{:02}", v / 100, v % 100)
}

/// The benchmark lines of a finished `solo5-bench.toml` run: its VM's boot
/// count and memory from the report, its round trips from the line it
/// printed on `console` (the hypervisor's COM1 output).
pub fn solo5_lines(report: &Report, console: &str) -> Result<Vec<String>> {
    let vm = report
        .vms
        .first()
        .ok_or_else(|| Error::new("the hvt bench run has no VM"))?;
    let line = console
        .lines()
        .find_map(|l| l.split_once(SOLO5_MARK).map(|(_, rest)| rest))
        .ok_or_else(|| Error::new(format!("the hvt bench VM printed no `{SOLO5_MARK}` line")))?;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| Error::new(format!("the hvt bench line has no `{name}`: {line}")))
    };
    let (puts, wall) = (field("puts16")?, field("walltime")?);
    let memory = vm
        .memory
        .ok_or_else(|| Error::new("the hvt bench VM's memory is not in the report"))?;
    Ok(vec![
        format!(
            "hvt (Solo5) VM start to first hypercall: {} instructions ({} KiB guest)",
            vm.boot_instructions,
            (memory.private + memory.shared) >> 10
        ),
        format!(
            "hvt per-VM memory           : {} KiB private, {} KiB shared, {} KiB hypervisor overhead",
            memory.private >> 10,
            memory.shared >> 10,
            memory.overhead >> 10
        ),
        format!(
            "hvt puts of 16 bytes        : {} instructions per round trip (average of 1000)",
            hundredths(puts)
        ),
        format!(
            "hvt walltime                : {} instructions per round trip (average of 1000)",
            hundredths(wall)
        ),
    ])
}

/// The bench manifest of this workspace.
pub fn manifest_path() -> PathBuf {
    workspace_root()
        .join("images")
        .join("manifests")
        .join("bench.toml")
}

/// The benchmark lines for a finished bench run's report.
pub fn lines(report: &Report) -> Result<Vec<String>> {
    let bench = report
        .vms
        .iter()
        .find(|v| v.image == "bench")
        .ok_or_else(|| Error::new("the bench manifest has no VM with image `bench`"))?;
    let roundtrip = *bench.metrics.get(ROUNDTRIP_METRIC).ok_or_else(|| {
        Error::new(format!(
            "VM `{}` reported no `{ROUNDTRIP_METRIC}` metric",
            bench.name
        ))
    })?;
    let hello = report
        .vms
        .iter()
        .find(|v| v.image == "hello")
        .ok_or_else(|| Error::new("the bench manifest has no VM with image `hello`"))?;
    if hello.boot_instructions == 0 {
        return Err(Error::new(format!(
            "VM `{}` reported no boot instruction count",
            hello.name
        )));
    }
    let x100 = |v: &crate::report::VmReport| {
        v.metrics
            .get(ROUNDTRIP_X100_METRIC)
            .copied()
            .or_else(|| v.metrics.get(ROUNDTRIP_METRIC).map(|r| r * 100))
    };
    let plain = x100(bench).unwrap_or(roundtrip * 100);
    let roundtrip = match bench.metrics.get(ROUNDTRIP_X100_METRIC) {
        Some(_) => format!("{}.{:02}", plain / 100, plain % 100),
        None => roundtrip.to_string(),
    };
    let over = match bench.metrics.get(ITERATIONS_METRIC) {
        Some(n) => format!("average of {n}, emulated TSC"),
        None => "emulated TSC".to_string(),
    };
    let mut lines = vec![
        format!("null hypercall round trip   : {roundtrip} instructions ({over})"),
        format!(
            "hello VM start to main      : {} instructions",
            hello.boot_instructions
        ),
    ];
    // The same loop in VMs with an exit hook (compiled, interpreted), if
    // the manifest has them.
    for (vm, engine) in [(HOOKED_VM, "JIT"), (INTERPRETED_VM, "interpreter")] {
        let Some(hooked) = report.vms.iter().find(|v| v.name == vm) else {
            continue;
        };
        let with = x100(hooked).ok_or_else(|| {
            Error::new(format!("VM `{vm}` reported no `{ROUNDTRIP_METRIC}` metric"))
        })?;
        let hook = report
            .hooks
            .iter()
            .find(|h| h.attach == format!("vm:{vm}"))
            .ok_or_else(|| Error::new(format!("VM `{vm}` has no exit hook")))?;
        let added = with.saturating_sub(plain);
        lines.push(format!(
            "  with exit hook {} ({engine}) : {}.{:02} instructions (+{}.{:02}; the hook ran {} eBPF instructions per exit)",
            hook.name,
            with / 100,
            with % 100,
            added / 100,
            added % 100,
            crate::report::per(hook.instructions, hook.runs)
        ));
    }
    Ok(lines)
}

/// The VM of the bench manifest that runs the hypercall loop with an exit
/// hook attached (compiled by the JIT).
pub const HOOKED_VM: &str = "bench-hooked";
/// The same with the hook run by the interpreter.
pub const INTERPRETED_VM: &str = "bench-interp";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::Totals;
    use crate::report::VmReport;
    use std::collections::BTreeMap;

    fn vm(name: &str, image: &str, boot: u64, metrics: &[(&str, u64)]) -> VmReport {
        VmReport {
            name: name.into(),
            image: image.into(),
            cores: Vec::new(),
            core: Some(0),
            apic_id: Some(0),
            status: "exited".into(),
            exit_code: Some(0),
            reason: String::new(),
            boot_instructions: boot,
            restarts: 0,
            restart_reasons: Vec::new(),
            slices: 1,
            memory: None,
            exits: BTreeMap::new(),
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            console: Default::default(),
            expect: "exit:0".into(),
            ok: true,
        }
    }

    fn report(vms: Vec<VmReport>) -> Report {
        Report {
            manifest: "bench.toml".into(),
            completed: true,
            fatal: None,
            timed_out: false,
            cpu_model: "corei7_icelake_u".into(),
            cpus: 1,
            cores: Some(1),
            free_memory: None,
            timeslice: 0,
            totals: Totals::default(),
            largest_fleet: BTreeMap::new(),
            error: None,
            run_dir: None,
            vms,
            links: Vec::new(),
            window: None,
            nic_window: None,
            paging: None,
            nics: Vec::new(),
            hooks: Vec::new(),
            blocks: Vec::new(),
        }
    }

    #[test]
    fn console_lines_compare_the_quiet_vm() {
        let busy = report(vec![
            vm("quiet", "spin", 1, &[("elapsed_ticks", 1000)]),
            vm("neighbour", "holes", 1, &[]),
        ]);
        let mut spammer = vm("neighbour", "holes", 1, &[]);
        spammer.console.bytes = 7;
        spammer.console.dropped = 9;
        let spam = report(vec![
            vm("quiet", "spin", 1, &[("elapsed_ticks", 1010)]),
            spammer,
        ]);
        let lines = console_lines(&busy, &spam).unwrap();
        assert!(lines[0].ends_with("1 slices, 1000 instructions to finish"));
        assert!(lines[1].contains("1010 instructions to finish (1.010x)"));
        assert!(lines[1].ends_with("printed 7 bytes, 9 dropped"));
        let no_metric = report(vec![vm("quiet", "spin", 1, &[])]);
        assert!(console_lines(&no_metric, &spam).is_err());
    }

    #[test]
    fn the_hooked_loop_is_compared_with_the_plain_one() {
        let mut r = report(vec![
            vm(
                "bench",
                "bench",
                10,
                &[
                    ("hypercall_roundtrip", 285),
                    ("hypercall_roundtrip_x100", 28_568),
                ],
            ),
            vm("hello", "hello", 56789, &[]),
            vm(
                "bench-hooked",
                "bench",
                10,
                &[
                    ("hypercall_roundtrip", 700),
                    ("hypercall_roundtrip_x100", 70_012),
                ],
            ),
        ]);
        let missing = lines(&r).unwrap_err();
        assert!(
            missing.to_string().contains("has no exit hook"),
            "{missing}"
        );
        r.hooks.push(crate::report::HookReport {
            name: "allow-exits".into(),
            kind: "exit",
            attach: "vm:bench-hooked".into(),
            file: "allow_exits.bpf.c".into(),
            program: "allow_exits".into(),
            engine: Some("compiled".into()),
            runs: 10,
            verdicts: None,
            instructions: 60,
            maps: BTreeMap::new(),
        });
        assert_eq!(
            lines(&r).unwrap()[2],
            "  with exit hook allow-exits (JIT) : 700.12 instructions (+414.44; the hook ran 6.00 eBPF instructions per exit)"
        );
    }

    #[test]
    fn prints_both_numbers() {
        let r = report(vec![
            vm(
                "bench",
                "bench",
                10,
                &[
                    ("hypercall_roundtrip", 1234),
                    ("hypercall_iterations", 10000),
                ],
            ),
            vm("hello", "hello", 56789, &[]),
        ]);
        assert_eq!(
            lines(&r).unwrap(),
            [
                "null hypercall round trip   : 1234 instructions (average of 10000, emulated TSC)",
                "hello VM start to main      : 56789 instructions",
            ]
        );
    }

    #[test]
    fn hundredths_are_shown_when_reported() {
        let r = report(vec![
            vm(
                "bench",
                "bench",
                10,
                &[
                    ("hypercall_roundtrip", 217),
                    ("hypercall_roundtrip_x100", 21705),
                ],
            ),
            vm("hello", "hello", 5, &[]),
        ]);
        assert_eq!(
            lines(&r).unwrap()[0],
            "null hypercall round trip   : 217.05 instructions (emulated TSC)"
        );
    }

    #[test]
    fn missing_numbers_are_errors() {
        let r = report(vec![
            vm("bench", "bench", 10, &[]),
            vm("hello", "hello", 5, &[]),
        ]);
        assert!(
            lines(&r)
                .unwrap_err()
                .to_string()
                .contains("hypercall_roundtrip")
        );
        let r = report(vec![
            vm("bench", "bench", 10, &[("hypercall_roundtrip", 1)]),
            vm("hello", "hello", 0, &[]),
        ]);
        assert!(
            lines(&r)
                .unwrap_err()
                .to_string()
                .contains("boot instruction")
        );
        let r = report(vec![vm("hello", "hello", 5, &[])]);
        assert!(lines(&r).is_err());
    }

    #[test]
    fn the_solo5_numbers_come_from_the_report_and_the_console() {
        let mut hvt = vm("hvt", "hvt_test", 390_358, &[]);
        hvt.memory = Some(crate::outcome::MemoryUse {
            private: 2032 << 10,
            shared: 16 << 10,
            overhead: 22 << 10,
        });
        let r = report(vec![hvt]);
        let console = "hvt | hello\nhvt | hvt bench: puts16=244012 walltime=92815\n";
        assert_eq!(
            solo5_lines(&r, console).unwrap(),
            vec![
                "hvt (Solo5) VM start to first hypercall: 390358 instructions (2048 KiB guest)",
                "hvt per-VM memory           : 2032 KiB private, 16 KiB shared, 22 KiB hypervisor overhead",
                "hvt puts of 16 bytes        : 2440.12 instructions per round trip (average of 1000)",
                "hvt walltime                : 928.15 instructions per round trip (average of 1000)",
            ]
        );
        assert!(solo5_lines(&r, "hvt | nothing\n").is_err());
        assert!(solo5_lines(&r, "hvt | hvt bench: puts16=x walltime=1\n").is_err());
        assert!(solo5_lines(&report(vec![]), console).is_err());
        assert!(solo5_manifest_path().is_file());
    }

    #[test]
    fn the_bench_manifest_exists() {
        assert!(manifest_path().is_file());
    }
}
