//! The `run` pipeline: read the manifest, make sure the tools are there,
//! build, pack the ISO, boot it in Bochs while streaming the consoles, and
//! judge the run from the hypervisor's records.

use crate::bochs::{self, Finish, Machine, RunFiles};
use crate::bochs_nics::Card;
use crate::cargo_build::{self, Artifacts, target_dir};
use crate::console::{Line, Renderer, classify, sanitize};
use crate::error::{Error, Result};
use crate::iso;
use crate::netns;
use crate::outcome::RunOutcome;
use crate::report::Report;
use crate::service::{DEFAULT_HOST, HostDir, Relay};
use crate::toml_manifest::{self, Manifest, RunSettings};
use crate::tools;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Lines of the emulator's log shown when it fails.
const LOG_TAIL_LINES: usize = 15;

/// What to run and how.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// The TOML manifest.
    pub manifest: PathBuf,
    /// Where to write the JSON report.
    pub report: Option<PathBuf>,
    /// Overrides `[run] cpu_model`.
    pub cpu_model: Option<String>,
    /// Overrides `[run] cpus`.
    pub cpus: Option<u32>,
    /// Overrides `[run] timeout`.
    pub timeout_secs: Option<u64>,
    /// Do not stream the consoles.
    pub quiet: bool,
    /// Show report records and boot-loader output too.
    pub verbose: bool,
    /// Print only the summary lines at the end, not the per-VM table.
    pub summary_only: bool,
    /// Keep the ISO and its inputs after the run.
    pub keep: bool,
    /// Skip the build and boot `DIR/hypervisor` with images `DIR/<image>`.
    pub prebuilt: Option<PathBuf>,
    /// A service run's host name (`corral up --host`); `None`: the default.
    pub host: Option<String>,
}

/// A finished (or failed) run: the report, as far as known, and the error
/// that made it fail.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The report; its `error` holds the error's message.
    pub report: Report,
    /// Why the run failed, if it did.
    pub error: Option<Error>,
}

impl RunResult {
    fn failed(report: Report, error: Error) -> Self {
        let mut report = report;
        report.error = Some(error.message().to_string());
        RunResult {
            report,
            error: Some(error),
        }
    }

    /// Whether the run completed and every VM met its expectation.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.report.passed()
    }
}

fn progress(text: &str) {
    println!("{text}");
}

fn detail(text: &str) {
    println!("      {text}");
}

/// The manifest's settings with the command line's overrides, checked.
pub fn settings(manifest: &Manifest, opts: &RunOptions) -> Result<RunSettings> {
    let mut s = manifest.run.clone();
    if let Some(model) = &opts.cpu_model {
        s.cpu_model = model.clone();
    }
    if let Some(cpus) = opts.cpus {
        s.cpus = cpus;
    }
    if let Some(t) = opts.timeout_secs {
        s.timeout_secs = t;
    }
    s.check()
        .map_err(|e| Error::new(format!("{}: {e}", manifest.origin)))?;
    manifest.check_cores(s.cpus)?;
    if manifest
        .nics
        .iter()
        .any(|n| matches!(n.backend, toml_manifest::Backend::Tap { .. }))
    {
        let root = toml_manifest::running_as_root().unwrap_or(false);
        toml_manifest::check_backends(&manifest.origin, &manifest.nics, root)?;
        // The namespace and the tap devices must be there before the
        // emulator starts (Bochs would make a tap device of its own, with
        // no address, and `ip netns exec` cannot enter a missing namespace).
        tools::ensure_program(netns::IP, netns::IP_PACKAGE, &detail)?;
        toml_manifest::check_tap_devices(&manifest.origin, &manifest.nics, &netns::Host)?;
    }
    Ok(s)
}

/// For tools that boot several manifests from one build: the directory
/// of `--prebuilt`, or that of a fresh build of the hypervisor and images
/// (`who` names the tool in its progress lines).
pub fn build_once(opts: &RunOptions, who: &str) -> Result<PathBuf> {
    if let Some(dir) = &opts.prebuilt {
        return Ok(dir.clone());
    }
    let root = cargo_build::workspace_root();
    println!("{who}: building the hypervisor and images once for every run");
    let note = |text: &str| println!("      {text}");
    tools::ensure_emulator(&note)?;
    tools::ensure_rust_target(&root, &note)?;
    Ok(cargo_build::build(&root)?.dir().to_path_buf())
}

/// Runs a manifest from start to end. Never panics on bad input: every
/// failure is in the result.
pub fn run(opts: &RunOptions) -> RunResult {
    let origin = opts.manifest.display().to_string();
    let root = cargo_build::workspace_root();
    let loaded = cargo_build::known_images(&root)
        .and_then(|known| toml_manifest::load(&opts.manifest, &known));
    let manifest = match loaded {
        Ok(m) => m,
        Err(e) => return RunResult::failed(Report::unread(&origin, &e), e),
    };
    let settings = match settings(&manifest, opts) {
        Ok(s) => s,
        Err(e) => {
            let s = &manifest.run;
            let report = Report::new(
                &manifest,
                &s.cpu_model,
                s.cpus,
                &RunOutcome::for_manifest(&manifest),
            );
            return RunResult::failed(report, e);
        }
    };
    run_manifest(&root, &manifest, &settings, opts)
}

fn run_manifest(
    root: &Path,
    manifest: &Manifest,
    settings: &RunSettings,
    opts: &RunOptions,
) -> RunResult {
    let mut outcome = RunOutcome::for_manifest(manifest);
    let mut report = Report::new(manifest, &settings.cpu_model, settings.cpus, &outcome);
    let (dir, iso) = match prepare(root, manifest, opts.prebuilt.as_deref()) {
        Ok(staged) => staged,
        Err(e) => return RunResult::failed(report, e),
    };
    report.run_dir = Some(dir.display().to_string());
    let booted = boot(manifest, settings, opts, &dir, iso, &mut outcome);
    if !opts.keep {
        let _ = std::fs::remove_dir_all(dir.join("iso"));
        let _ = std::fs::remove_file(dir.join("corral.iso"));
    }
    let booted = match booted {
        Ok(b) => b,
        Err(e) => return RunResult::failed(report, e),
    };

    progress(&format!(
        "[4/4] report (emulator ran {:.1} s)",
        booted.finish.elapsed.as_secs_f64()
    ));
    for warning in &outcome.warnings {
        detail(&format!("warning: {warning}"));
    }
    if outcome.finished()
        && let Some(status) = booted.finish.status.filter(|s| !s.success())
    {
        detail(&format!(
            "warning: the emulator exited with {status} after the last record"
        ));
    }
    if booted.finish.stopped_after_finish {
        detail("warning: the emulator did not power off after the last record; it was stopped");
    }
    let mut report = Report {
        timed_out: booted.finish.timed_out,
        run_dir: report.run_dir,
        ..Report::new(manifest, &settings.cpu_model, settings.cpus, &outcome)
    };
    let written = crate::write_back::write_back(&manifest.blocks, &outcome);
    if let Ok(bytes) = &written {
        for (b, n) in report.blocks.iter_mut().zip(bytes) {
            b.written_back = *n;
        }
    }
    if !opts.summary_only {
        print!("{}", report.table());
    }
    print!("{}", report.link_table());
    print!("{}", report.nic_table());
    print!("{}", report.hook_summary());
    print!("{}", report.block_summary());
    for line in report.summary() {
        println!("{line}");
    }
    // What went wrong with the run comes first; a disk not written back
    // because of it is a detail of it.
    let judged = judge(&outcome, &booted, &report, settings.timeout_secs);
    match (judged, written) {
        (Some(e), Err(w)) => {
            detail(&format!("warning: {}", w.message()));
            RunResult::failed(report, e)
        }
        (Some(e), Ok(_)) | (None, Err(e)) => RunResult::failed(report, e),
        (None, Ok(_)) => RunResult {
            report,
            error: None,
        },
    }
}

/// Steps 1 and 2: tools, build, staging directory and ISO.
fn prepare(
    root: &Path,
    manifest: &Manifest,
    prebuilt: Option<&Path>,
) -> Result<(PathBuf, PathBuf)> {
    let binary = manifest.encode()?;
    let artifacts = match prebuilt {
        Some(dir) => {
            progress(&format!(
                "[1/4] using prebuilt ELF files in {}",
                dir.display()
            ));
            tools::ensure_emulator(&detail)?;
            let artifacts = Artifacts::at(dir);
            if !artifacts.hypervisor().is_file() {
                return Err(Error::new(format!(
                    "no hypervisor at {}",
                    artifacts.hypervisor().display()
                )));
            }
            artifacts
        }
        None => {
            progress("[1/4] building hypervisor and images");
            tools::ensure_emulator(&detail)?;
            tools::ensure_rust_target(root, &detail)?;
            cargo_build::build(root)?
        }
    };
    progress("[2/4] packing ISO");
    let stem = Path::new(&manifest.origin)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".to_string());
    let dir = iso::staging_dir(&target_dir(root).join("runs"), &stem)?;
    let iso = iso::pack(
        &dir,
        &artifacts,
        &binary,
        &manifest.images(),
        |name| manifest.image_file(name).map(Path::to_path_buf),
        &manifest.disks(),
    )?;
    Ok((dir, iso))
}

/// Times the emulator is started when it dies before the machine prints
/// anything (a start-up crash of Bochs, not of anything it runs).
const EMULATOR_START_ATTEMPTS: u32 = 3;

/// What the emulator run left behind.
struct Booted {
    finish: Finish,
    /// The last non-blank console line that was not a record.
    last_line: String,
    /// Bochs's log file.
    log: PathBuf,
    /// Bochs's standard error.
    stderr: PathBuf,
}

/// Step 3: boots the ISO, streams the consoles and feeds the records to
/// `outcome`.
fn boot(
    manifest: &Manifest,
    settings: &RunSettings,
    opts: &RunOptions,
    dir: &Path,
    iso: PathBuf,
    outcome: &mut RunOutcome,
) -> Result<Booted> {
    progress(&format!(
        "[3/4] booting in Bochs (cpu {} x{}, bound {} s{})",
        settings.cpu_model,
        settings.cpus,
        settings.timeout_secs,
        toml_manifest::emulator_netns(&manifest.nics)
            .map_or_else(String::new, |ns| format!(", network namespace {ns}"))
    ));
    let machine = Machine {
        cpu_model: settings.cpu_model.clone(),
        cpus: settings.cpus,
        memory_mib: settings.memory_mib,
        iso,
        com1: dir.join("com1.txt"),
        log: dir.join("bochs.log"),
        cards: Card::for_nics(&manifest.nics, dir),
        netns: toml_manifest::emulator_netns(&manifest.nics).map(str::to_string),
        com2: None,
    };
    // A service run's control line: the relay listens before the emulator
    // starts, and lives as long as it runs.
    let mut machine = machine;
    let _relay = if manifest.service {
        let host = HostDir::named(opts.host.as_deref().unwrap_or(DEFAULT_HOST))?;
        let relay = Relay::start(&host)?;
        std::fs::write(host.pid(), std::process::id().to_string())
            .map_err(|e| Error::new(format!("cannot write {}: {e}", host.pid().display())))?;
        machine.com2 = Some(relay.port());
        detail(&format!(
            "service run: host `{}`; control line on 127.0.0.1:{} (corral ps --host {})",
            host.name,
            relay.port(),
            host.name
        ));
        Some(relay)
    } else {
        None
    };
    let names = manifest.vms.iter().map(|v| v.name.clone()).collect();
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let limits = manifest.vms.iter().map(|v| v.restart_limit).collect();
    let mut renderer = Renderer::new(names, manifest.name_width(), colour, opts.verbose)
        .with_restart_limits(limits)
        .with_restart_hooks(manifest.restart_hooks());
    let mut last_line = String::new();
    let files = RunFiles::in_dir(dir);
    let bound = Duration::from_secs(settings.timeout_secs);
    let mut attempt = 1;
    let finish = loop {
        let finish = bochs::run(&machine, &files, bound, &mut |raw| {
            let clean = sanitize(raw);
            let line = classify(&clean);
            match &line {
                Line::Record(Ok(record)) => outcome.apply(record),
                Line::Blank => {}
                _ => last_line.clone_from(&clean),
            }
            if !opts.quiet
                && let Some(text) = renderer.render(&clean, &line)
            {
                println!("{text}");
            }
            outcome.finished()
        })?;
        // Bochs's headless display (RFB) occasionally crashes or fails to
        // find a port while it starts, when several emulators start at
        // once. Before the machine has printed a single byte nothing of the
        // run has happened, so it is started again (and said so).
        let silent = std::fs::metadata(&machine.com1).is_ok_and(|m| m.len() == 0);
        let crashed = finish.status.is_some_and(|s| !s.success());
        if !(silent && crashed && !finish.timed_out && attempt < EMULATOR_START_ATTEMPTS) {
            break finish;
        }
        let status = finish.status.map_or_else(String::new, |s| s.to_string());
        eprintln!(
            "corral: the emulator stopped ({status}) before the machine printed anything; starting it again (attempt {} of {EMULATOR_START_ATTEMPTS})",
            attempt + 1
        );
        attempt += 1;
    };
    Ok(Booted {
        finish,
        last_line,
        log: machine.log,
        stderr: files.stderr,
    })
}

fn shown(last_line: &str) -> String {
    if last_line.is_empty() {
        "no console output".to_string()
    } else {
        format!("last console line: {last_line}")
    }
}

/// Why the run failed, if it did.
fn judge(
    outcome: &RunOutcome,
    booted: &Booted,
    report: &Report,
    timeout_secs: u64,
) -> Option<Error> {
    if let Some(reason) = &outcome.fatal {
        return Some(Error::new(format!("hypervisor refused to run: {reason}")));
    }
    if !outcome.done {
        let last = shown(&booted.last_line);
        if booted.finish.timed_out {
            return Some(Error::new(format!(
                "timed out after {timeout_secs} s ({last})"
            )));
        }
        let status = booted
            .finish
            .status
            .map_or_else(|| "was stopped".to_string(), |s| s.to_string());
        let mut log = bochs::tail(&booted.log, LOG_TAIL_LINES);
        let stderr = bochs::tail(&booted.stderr, LOG_TAIL_LINES);
        if !stderr.is_empty() {
            log = format!("{log}\n{stderr}");
        }
        return Some(
            Error::new(format!(
                "the emulator stopped ({status}) before the run completed ({last})"
            ))
            .with_detail(format!("tail of {}:\n{log}", booted.log.display())),
        );
    }
    let failed: Vec<&str> = report
        .vms
        .iter()
        .filter(|v| !v.ok)
        .map(|v| v.name.as_str())
        .collect();
    if failed.is_empty() {
        None
    } else {
        Some(Error::new(format!(
            "{} of {} VMs did not end as expected: {}",
            failed.len(),
            report.vms.len(),
            failed.join(", ")
        )))
    }
}
