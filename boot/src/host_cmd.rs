//! The commands that manage a running host: `up` (a service run in the background, returning once its hypervisor answers), `ps`, `stop`, `restart`, `logs` and `down` (end the run, wait for its report).

use crate::bochs::LineSplitter;
use crate::cargo_build;
use crate::endpoint::EventsError;
use crate::error::{Error, Result};
use crate::service::{self, Answer, HostDir, status_name};
use crate::table::{self, Align};
use crate::toml_manifest;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vmm_abi::control::{self, FLOW_LINK, FLOW_NIC, Message, NO_CORE};
use vmm_abi::report::CONSOLE_SEPARATOR;

/// How often a waiting command looks again.
const POLL: Duration = Duration::from_millis(100);
/// Requests in a row the events follower may get no answer to before it
/// takes the host behind the endpoint to have ended.
const UNANSWERED_TRIES: u32 = 3;
/// How long `down` waits for the run to write its report and end.
const DOWN_WAIT: Duration = Duration::from_secs(300);
/// The line the run prints before its report.
const REPORT_MARK: &str = "[4/4] report";

/// New lines of a growing file (split by the console's `LineSplitter`).
#[derive(Default)]
struct Follow {
    file: Option<std::fs::File>,
    split: LineSplitter,
}

impl Follow {
    /// The whole lines added since the last call.
    fn lines(&mut self, path: &Path) -> Vec<String> {
        if self.file.is_none() {
            self.file = std::fs::File::open(path).ok();
        }
        let mut bytes = Vec::new();
        let mut out = Vec::new();
        if let Some(f) = &mut self.file
            && f.read_to_end(&mut bytes).is_ok()
        {
            self.split.push(&bytes, &mut |l| {
                out.push(l.trim_end_matches('\r').to_string());
            });
        }
        out
    }
}

/// `corral up MANIFEST`: starts the service run in the background (its
/// output in the host's `console.log`), shows its progress, and returns
/// once the hypervisor answered on its control line.
pub fn up(manifest: &Path, host: &HostDir, run_args: &[String], bound: Duration) -> Result<()> {
    let root = cargo_build::workspace_root();
    let known = cargo_build::known_images(&root)?;
    let checked = toml_manifest::load(manifest, &known)?;
    if !checked.service {
        return Err(Error::new(format!(
            "{}: not a service run: add `mode = \"service\"` to its [run] table (or boot it with `corral run`)",
            checked.origin
        )));
    }
    if host.running() {
        return Err(Error::new(format!(
            "host `{}` is already up; `corral down --host {}` ends it",
            host.name, host.name
        )));
    }
    std::fs::create_dir_all(&host.dir)
        .map_err(|e| Error::new(format!("cannot create {}: {e}", host.dir.display())))?;
    for stale in [host.ready(), host.exit(), host.report()] {
        let _ = std::fs::remove_file(stale);
    }
    // `hook attach` names links as this manifest does.
    let path = std::fs::canonicalize(manifest).unwrap_or_else(|_| manifest.to_path_buf());
    std::fs::write(host.manifest_note(), path.to_string_lossy().as_bytes()).map_err(|e| {
        Error::new(format!(
            "cannot write {}: {e}",
            host.manifest_note().display()
        ))
    })?;
    let log = std::fs::File::create(host.console())
        .map_err(|e| Error::new(format!("cannot create {}: {e}", host.console().display())))?;
    let err = log
        .try_clone()
        .map_err(|e| Error::new(format!("cannot share {}: {e}", host.console().display())))?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::new(format!("cannot find the corral program: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .arg(manifest)
        .arg("--host")
        .arg(&host.name)
        .arg("--report")
        .arg(host.report())
        .args(run_args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        // Its own process group: the terminal's Ctrl-C is not for it.
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::new(format!("cannot start the background run: {e}")))?;
    std::fs::write(host.pid(), child.id().to_string())
        .map_err(|e| Error::new(format!("cannot write {}: {e}", host.pid().display())))?;
    println!(
        "up: starting host `{}` from {} (output in {})",
        host.name,
        checked.origin,
        host.console().display()
    );
    let start = Instant::now();
    let mut follow = Follow::default();
    loop {
        for line in follow.lines(&host.console()) {
            println!("  {line}");
        }
        if host.ready().exists() {
            println!(
                "up: host `{}` is up with {} VMs ({:.1} s); `corral ps --host {}` lists them",
                host.name,
                checked.vms.len(),
                start.elapsed().as_secs_f64(),
                host.name
            );
            return Ok(());
        }
        let ended = child
            .try_wait()
            .map_err(|e| Error::new(format!("cannot wait for the background run: {e}")))?;
        if let Some(status) = ended {
            for line in follow.lines(&host.console()) {
                println!("  {line}");
            }
            return Err(Error::new(format!(
                "the run ended ({status}) before its hypervisor answered; see {}",
                host.console().display()
            )));
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::new(format!(
                "the hypervisor did not answer within {} s; the run was stopped (see {})",
                bound.as_secs(),
                host.console().display()
            )));
        }
        std::thread::sleep(POLL);
    }
}

fn answered(answers: Vec<Answer>) -> Result<Vec<Answer>> {
    match answers.last() {
        Some(Answer::Error(text)) => Err(Error::new(text.clone())),
        _ => Ok(answers),
    }
}

/// `corral ps`: the host's VMs as a table (or JSON).
pub fn ps(host: &HostDir, json: bool) -> Result<String> {
    let answers = answered(service::send(host, &Message::List)?)?;
    let rows: Vec<_> = answers
        .iter()
        .filter_map(|a| match a {
            Answer::Row {
                name,
                status,
                core,
                restarts,
                exits,
                ran,
                ..
            } => Some((name.as_str(), *status, *core, *restarts, *exits, *ran)),
            _ => None,
        })
        .collect();
    if json {
        let list: Vec<_> = rows
            .iter()
            .map(|&(name, status, core, restarts, exits, ran)| {
                serde_json::json!({
                    "name": name,
                    "status": status_name(status),
                    "core": (core != NO_CORE).then_some(core),
                    "restarts": restarts,
                    "exits": exits,
                    "instructions": ran,
                })
            })
            .collect();
        let text = serde_json::to_string_pretty(&serde_json::Value::Array(list))
            .map_err(|e| Error::new(format!("cannot write JSON: {e}")))?;
        return Ok(format!("{text}\n"));
    }
    let mut t: Vec<Vec<String>> = vec![
        ["VM", "STATUS", "CORE", "RESTARTS", "EXITS", "INSTRUCTIONS"]
            .map(str::to_string)
            .to_vec(),
    ];
    for &(name, status, core, restarts, exits, ran) in &rows {
        let core = if core == NO_CORE {
            "-".to_string()
        } else {
            core.to_string()
        };
        t.push(vec![
            name.to_string(),
            status_name(status).to_string(),
            core,
            restarts.to_string(),
            exits.to_string(),
            ran.to_string(),
        ]);
    }
    let running = rows
        .iter()
        .filter(|r| status_name(r.1) == "running")
        .count();
    Ok(format!(
        "{}{} VMs, {running} running (host `{}`)\n",
        table::text(
            &t,
            &[
                Align::Left,
                Align::Left,
                Align::Right,
                Align::Right,
                Align::Right,
                Align::Right
            ]
        ),
        rows.len(),
        host.name
    ))
}

/// How `corral stats` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsFormat {
    /// A readable summary and the VM table.
    Text,
    /// One JSON object.
    Json,
    /// Prometheus text exposition format (what orchestrators scrape).
    Prometheus,
}

/// A host's counters: free bytes, running VMs, commands, errors.
type Numbers = (u64, u32, u64, u64);

/// How `corral stats --watch` refreshes.
#[derive(Clone, Debug, PartialEq)]
pub struct Watch {
    /// Between two refreshes.
    pub every: std::time::Duration,
    /// Refreshes, at most (`None`: until the host is down).
    pub count: Option<u32>,
}

/// `corral stats [--watch] [--output FILE]`: the host's counters in
/// `format`, once or (`watch`) refreshed until the host is down (or
/// `count` times); each refresh written to `out` (the screen cleared first
/// when it is a terminal), or with `file` written to that file whole (a
/// temporary file renamed over it, so a reader never sees half a refresh:
/// what a Prometheus textfile collector reads).
pub fn stats_to(
    host: &HostDir,
    format: StatsFormat,
    watch: Option<&Watch>,
    file: Option<&std::path::Path>,
    out: &mut dyn std::io::Write,
    terminal: bool,
) -> Result<()> {
    let io = |e: std::io::Error| Error::new(format!("cannot write the counters: {e}"));
    let mut refreshes = 0u32;
    loop {
        let text = match stats(host, format) {
            Ok(t) => t,
            // Watching: the host went down, which ends the watch.
            Err(_) if watch.is_some() && refreshes > 0 && !host.running() => {
                writeln!(out, "host `{}` is down", host.name).map_err(io)?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        refreshes += 1;
        match file {
            Some(path) => {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, &text)
                    .and_then(|()| std::fs::rename(&tmp, path))
                    .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))?;
            }
            None => {
                if watch.is_some() && terminal {
                    // Home and clear: the table refreshes in place.
                    write!(out, "\x1b[H\x1b[2J").map_err(io)?;
                }
                if watch.is_some() && format == StatsFormat::Text {
                    writeln!(out, "-- refresh {refreshes}").map_err(io)?;
                }
                out.write_all(text.as_bytes()).map_err(io)?;
                out.flush().map_err(io)?;
            }
        }
        let Some(w) = watch else {
            return Ok(());
        };
        if w.count.is_some_and(|c| refreshes >= c) {
            return Ok(());
        }
        std::thread::sleep(w.every);
    }
}

/// A link's or NIC's counters from `stats`: its kind, label and counts.
type Flow = (u8, String, [u64; 6]);

/// The host's counters, its VMs' rows and its links' and NICs' counters,
/// from `stats` and `list`.
fn host_numbers(host: &HostDir) -> Result<(Numbers, Vec<Answer>, Vec<Flow>)> {
    let (numbers, rows, flows, _) = host_numbers_and_cores(host)?;
    Ok((numbers, rows, flows))
}

/// One core's row of `stats`: its number, roles, running VMs, VM exits,
/// guest instructions and polling instructions.
type CoreStat = (u32, u8, u32, [u64; 3]);

/// The host's counters, its `list` rows, its flows and its cores.
type HostNumbers = (Numbers, Vec<Answer>, Vec<Flow>, Vec<CoreStat>);

/// `host_numbers`, with each core's row.
fn host_numbers_and_cores(host: &HostDir) -> Result<HostNumbers> {
    let stats = answered(service::send(host, &Message::Stats)?)?;
    let cores = stats
        .iter()
        .filter_map(|a| match *a {
            Answer::Core {
                core,
                role,
                vms,
                counts,
            } => Some((core, role, vms, counts)),
            _ => None,
        })
        .collect();
    let flows = stats
        .iter()
        .filter_map(|a| match a {
            Answer::Flow {
                kind,
                label,
                counts,
                ..
            } => Some((*kind, label.clone(), *counts)),
            _ => None,
        })
        .collect();
    let numbers = stats
        .iter()
        .find_map(|a| match *a {
            Answer::Stats {
                free,
                running,
                commands,
                errors,
            } => Some((free, running, commands, errors)),
            _ => None,
        })
        .ok_or_else(|| Error::new("the hypervisor answered `stats` without its counters"))?;
    let rows = answered(service::send(host, &Message::List)?)?;
    Ok((numbers, rows, flows, cores))
}

/// A core's roles in words: `vms+polls+control`.
fn role_names(role: u8) -> String {
    let names: Vec<&str> = [
        (control::CORE_VMS, "vms"),
        (control::CORE_POLLS, "polls"),
        (control::CORE_CONTROL, "control"),
    ]
    .into_iter()
    .filter(|(bit, _)| role & bit != 0)
    .map(|(_, n)| n)
    .collect();
    names.join("+")
}

/// The host's free memory in bytes (its `stats`).
pub fn free_memory(host: &HostDir) -> Result<u64> {
    Ok(host_numbers(host)?.0.0)
}

/// Prometheus label values: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `corral stats`: free memory, running VMs and the control channel's
/// counters, with every VM's row.
pub fn stats(host: &HostDir, format: StatsFormat) -> Result<String> {
    let ((free, running, commands, errors), rows, flows, cores) = host_numbers_and_cores(host)?;
    let of_kind = |k: u8| flows.iter().filter(move |f| f.0 == k);
    /// One VM's row: name, status, restarts, exits, guest instructions.
    type VmStat<'a> = (&'a str, u8, u32, u64, u64);
    let vms: Vec<VmStat<'_>> = rows
        .iter()
        .filter_map(|a| match a {
            Answer::Row {
                name,
                status,
                restarts,
                exits,
                ran,
                ..
            } => Some((name.as_str(), *status, *restarts, *exits, *ran)),
            _ => None,
        })
        .collect();
    Ok(match format {
        StatsFormat::Text => {
            let mut text = format!(
                "host `{}`: {:.1} MiB free, {running} of {} VMs running; control channel: {}, {}\n",
                host.name,
                free as f64 / (1024.0 * 1024.0),
                vms.len(),
                plural(commands, "command"),
                plural(errors, "error"),
            );
            for (kind, label, c) in &flows {
                let (what, one, other) = if *kind == FLOW_LINK {
                    ("link", "a->b", "b->a")
                } else {
                    ("nic", "from the wire", "to the wire")
                };
                text.push_str(&format!(
                    "{what} {label}: {} {one} ({} bytes, {} dropped), {} {other} ({} bytes, {} dropped)\n",
                    plural(c[0], "frame"),
                    c[1],
                    c[2],
                    plural(c[3], "frame"),
                    c[4],
                    c[5]
                ));
            }
            for (core, role, vms, [exits, ran, busy]) in &cores {
                text.push_str(&format!(
                    "core {core} ({}): {} running, {} VM exits, {ran} guest instructions, {busy} polling instructions\n",
                    role_names(*role),
                    plural(u64::from(*vms), "VM"),
                    exits
                ));
            }
            text
        }
        StatsFormat::Json => {
            let vm_list: Vec<_> = vms
                .iter()
                .map(|&(name, status, restarts, exits, ran)| {
                    serde_json::json!({
                        "name": name,
                        "status": status_name(status),
                        "restarts": restarts,
                        "exits": exits,
                        "instructions": ran,
                    })
                })
                .collect();
            let v = serde_json::json!({
                "host": host.name,
                "free_memory": free,
                "vms_running": running,
                "commands": commands,
                "errors": errors,
                "vms": vm_list,
                "links": of_kind(FLOW_LINK).map(|(_, l, c)| serde_json::json!({
                    "link": l,
                    "ab": {"frames": c[0], "bytes": c[1], "dropped": c[2]},
                    "ba": {"frames": c[3], "bytes": c[4], "dropped": c[5]},
                })).collect::<Vec<_>>(),
                "nics": of_kind(FLOW_NIC).map(|(_, l, c)| serde_json::json!({
                    "nic": l,
                    "rx": {"frames": c[0], "bytes": c[1], "dropped": c[2]},
                    "tx": {"frames": c[3], "bytes": c[4], "dropped": c[5]},
                })).collect::<Vec<_>>(),
                "cores": cores.iter().map(|(core, role, vms, [exits, ran, busy])| serde_json::json!({
                    "core": core,
                    "roles": role_names(*role),
                    "vms_running": vms,
                    "exits": exits,
                    "guest_instructions": ran,
                    "busy_instructions": busy,
                })).collect::<Vec<_>>(),
            });
            format!(
                "{}\n",
                serde_json::to_string_pretty(&v)
                    .map_err(|e| Error::new(format!("cannot write JSON: {e}")))?
            )
        }
        StatsFormat::Prometheus => {
            let h = label(&host.name);
            let mut out = String::new();
            let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
                out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
                for (labels, v) in samples {
                    out.push_str(&format!("{name}{{{labels}}} {v}\n"));
                }
            };
            let host_only = |v: u64| vec![(format!("host=\"{h}\""), v)];
            metric(
                "corral_free_memory_bytes",
                "gauge",
                "Memory free for VMs.",
                &host_only(free),
            );
            metric(
                "corral_vms_running",
                "gauge",
                "VMs that have not ended.",
                &host_only(running.into()),
            );
            metric(
                "corral_control_commands_total",
                "counter",
                "Commands the control channel accepted.",
                &host_only(commands),
            );
            metric(
                "corral_control_errors_total",
                "counter",
                "Errors the control channel answered.",
                &host_only(errors),
            );
            let per_vm = |f: &dyn Fn(&VmStat<'_>) -> u64| {
                vms.iter()
                    .map(|v| (format!("host=\"{h}\",vm=\"{}\"", label(v.0)), f(v)))
                    .collect::<Vec<_>>()
            };
            metric(
                "corral_vm_running",
                "gauge",
                "1 while the VM has not ended.",
                &per_vm(&|v| u64::from(status_name(v.1) == "running")),
            );
            metric(
                "corral_vm_restarts_total",
                "counter",
                "Times the VM was restarted.",
                &per_vm(&|v| v.2.into()),
            );
            metric(
                "corral_vm_exits_total",
                "counter",
                "VM exits, all its runs.",
                &per_vm(&|v| v.3),
            );
            metric(
                "corral_vm_instructions_total",
                "counter",
                "Instructions it used (TSC ticks of its runs, its exits' handling included), all its runs.",
                &per_vm(&|v| v.4),
            );
            // Per core (`core="N"`): running VMs, VM exits, guest and
            // polling instructions.
            for (at, name, kind, help) in [
                (
                    None,
                    "corral_core_vms_running",
                    "gauge",
                    "VMs running on the core.",
                ),
                (
                    Some(0),
                    "corral_core_exits_total",
                    "counter",
                    "VM exits the core handled.",
                ),
                (
                    Some(1),
                    "corral_core_guest_instructions_total",
                    "counter",
                    "Instructions of the VMs placed on the core, all their runs.",
                ),
                (
                    Some(2),
                    "corral_core_busy_instructions_total",
                    "counter",
                    "Instructions the core spent polling in passes that moved frames.",
                ),
            ] {
                let samples: Vec<(String, u64)> = cores
                    .iter()
                    .map(|(core, _, vms, c)| {
                        (
                            format!("host=\"{h}\",core=\"{core}\""),
                            at.map_or(u64::from(*vms), |i| c[i]),
                        )
                    })
                    .collect();
                if !samples.is_empty() {
                    metric(name, kind, help, &samples);
                }
            }
            // Per link direction (`dir="ab"|"ba"`) and NIC direction
            // (`dir="rx"|"tx"`): frames, bytes, drops.
            for (kind, key, dirs) in [
                (FLOW_LINK, "link", ["ab", "ba"]),
                (FLOW_NIC, "nic", ["rx", "tx"]),
            ] {
                for (at, what, help) in [
                    (0, "frames_total", "Frames moved"),
                    (1, "bytes_total", "Bytes moved"),
                    (2, "drops_total", "Frames dropped"),
                ] {
                    let h = &h;
                    let samples: Vec<(String, u64)> = of_kind(kind)
                        .flat_map(|(_, l, c)| {
                            dirs.iter().enumerate().map(move |(d, dir)| {
                                (
                                    format!("host=\"{h}\",{key}=\"{}\",dir=\"{dir}\"", label(l)),
                                    c[at + 3 * d],
                                )
                            })
                        })
                        .collect();
                    if !samples.is_empty() {
                        metric(
                            &format!("corral_{key}_{what}"),
                            "counter",
                            &format!("{help}, by direction."),
                            &samples,
                        );
                    }
                }
            }
            out
        }
    })
}

/// `corral stop VM` / `corral restart VM`.
pub fn vm_command(host: &HostDir, vm: &str, restart: bool) -> Result<String> {
    let msg = if restart {
        Message::Restart { vm }
    } else {
        Message::Stop { vm }
    };
    answered(service::send(host, &msg)?)?;
    Ok(format!(
        "{} {vm}\n",
        if restart { "restarted" } else { "stopped" }
    ))
}

/// `corral tune VM [--budget N] [--slice N]`: one command per setting,
/// the budget first.
pub fn tune(host: &HostDir, vm: &str, budget: Option<u64>, slice: Option<u64>) -> Result<String> {
    use vmm_abi::manifest::{MAX_TIMESLICE, MIN_TIMESLICE};
    // Checked here too, so that a refused slice leaves the budget as it
    // was (the hypervisor checks it again).
    if let Some(v) = slice.filter(|&v| v != 0 && !(MIN_TIMESLICE..=MAX_TIMESLICE).contains(&v)) {
        return Err(Error::new(format!(
            "a slice of {v} instructions is outside {MIN_TIMESLICE}..={MAX_TIMESLICE} (0: the run's)"
        )));
    }
    let mut out = String::new();
    for (what, value, name, zero) in [
        (control::TUNE_BUDGET, budget, "budget", "no budget"),
        (control::TUNE_SLICE, slice, "slice", "the run's slice"),
    ] {
        let Some(value) = value else { continue };
        answered(service::send(host, &Message::Tune { vm, what, value })?)?;
        out.push_str(&match value {
            0 => format!("{vm}: {zero}\n"),
            v => format!("{vm}: {name} of {v} instructions\n"),
        });
    }
    Ok(out)
}

/// A port named on the command line: `<vm>.<port>`.
fn port_named(end: &str) -> Result<control::Port<'_>> {
    let bad = || {
        Error::new(format!(
            "`{end}` is not a VM's net port: write <vm>.<port>, e.g. web.0"
        ))
    };
    let (vm, port) = end.rsplit_once('.').ok_or_else(bad)?;
    let port = port.parse::<u8>().map_err(|_| bad())?;
    if vm.is_empty() {
        return Err(bad());
    }
    Ok(control::Port { vm, port })
}

/// `corral link attach|detach A B`: the link made (its number) or unmade
/// (its final counters), as a line or JSON.
pub fn link(host: &HostDir, ends: [&str; 2], attach: bool, json: bool) -> Result<String> {
    let (a, b) = (port_named(ends[0])?, port_named(ends[1])?);
    let msg = if attach {
        Message::LinkAttach { a, b }
    } else {
        Message::LinkDetach { a, b }
    };
    let answers = answered(service::send(host, &msg)?)?;
    let Some((index, label, c)) = answers.iter().find_map(|x| match x {
        Answer::Flow {
            index,
            label,
            counts,
            ..
        } => Some((*index, label, counts)),
        _ => None,
    }) else {
        return Err(Error::new("the host answered without the link's counters"));
    };
    if json {
        let dir = |at: usize| serde_json::json!({"frames": c[at], "bytes": c[at + 1], "dropped": c[at + 2]});
        let v = serde_json::json!({
            "link": index,
            "label": label,
            "made": attach,
            "ab": dir(0),
            "ba": dir(3),
        });
        return Ok(format!("{v:#}\n"));
    }
    Ok(if attach {
        format!("link {index}: {label} made\n")
    } else {
        format!(
            "link {index}: {label} unmade: {} a->b ({} dropped), {} b->a ({} dropped)\n",
            plural(c[0], "frame"),
            c[2],
            plural(c[3], "frame"),
            c[5]
        )
    })
}

/// `n thing` or `n things`.
fn plural(n: u64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// What `corral start` changes from the entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides<'a> {
    /// Arguments instead of the entry's.
    pub args: Option<&'a str>,
    /// Bytes of guest memory instead of the entry's; 0: the entry's.
    pub memory: u64,
}

/// `corral start ENTRY [--name NAME] [--args TEXT] [--memory SIZE]`.
pub fn start(host: &HostDir, entry: &str, name: Option<&str>, o: Overrides<'_>) -> Result<String> {
    // Checked here too, for an error before anything is sent (the
    // hypervisor checks them again).
    if let Some(Err(p)) = o.args.map(vmm_abi::manifest::check_args) {
        return Err(Error::new(format!("`--args`: {p}")));
    }
    let msg = Message::Start {
        entry,
        name: name.unwrap_or(""),
        args: o.args,
        memory: o.memory,
    };
    answered(service::send(host, &msg)?)?;
    let mut with = String::new();
    if let Some(a) = o.args {
        with.push_str(&format!(" with args `{a}`"));
    }
    if o.memory != 0 {
        with.push_str(&format!(
            "{} {} KiB of memory",
            if with.is_empty() { " with" } else { " and" },
            o.memory >> 10
        ));
    }
    Ok(match name {
        Some(n) => format!("started {n} (a copy of {entry}){with}\n"),
        None => format!("started one more VM of {entry}{with} (`corral ps` names it)\n"),
    })
}

/// `corral start --image FILE [--image-name NAME] --name VM [--args TEXT]
/// [--memory SIZE]`: uploads the file in chunks as image NAME (the file's
/// name unless given), which the hypervisor checks and keeps for the run,
/// and starts VM from it.
pub fn start_image(
    host: &HostDir,
    (file, image_name): (&std::path::Path, Option<&str>),
    vm: &str,
    o: Overrides<'_>,
) -> Result<String> {
    if let Some(Err(p)) = o.args.map(vmm_abi::manifest::check_args) {
        return Err(Error::new(format!("`--args`: {p}")));
    }
    let bytes = std::fs::read(file)
        .map_err(|e| Error::new(format!("cannot read image {}: {e}", file.display())))?;
    // A VM name taken is refused before the image is sent (the
    // hypervisor checks again when the VM starts).
    let rows = answered(service::send(host, &Message::List)?)?;
    if rows
        .iter()
        .any(|a| matches!(a, Answer::Row { name, .. } if name == vm))
    {
        return Err(Error::new(format!("a VM named {vm} already exists")));
    }
    let stem = file.file_name().and_then(|n| n.to_str()).unwrap_or("image");
    let name = image_name.unwrap_or(stem);
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|&n| n > 0 && n <= control::MAX_IMAGE_BYTES)
        .ok_or_else(|| {
            Error::new(format!(
                "image {}: {} bytes; 1 to {} can be uploaded",
                file.display(),
                bytes.len(),
                control::MAX_IMAGE_BYTES
            ))
        })?;
    if let Some(url) = &host.endpoint {
        // One request, the file as its body (the API sends it on in
        // chunks).
        answered(crate::endpoint::upload_image(url, name, &bytes)?)?;
    } else {
        answered(service::send(
            host,
            &Message::ImageBegin { name, bytes: len },
        )?)?;
        for (k, chunk) in bytes.chunks(control::CHUNK_BYTES).enumerate() {
            let offset = (k * control::CHUNK_BYTES) as u32;
            answered(service::send(
                host,
                &Message::ImageChunk {
                    offset,
                    bytes: chunk,
                },
            )?)?;
        }
        answered(service::send(host, &Message::ImageCommit { name })?)?;
    }
    let msg = Message::StartImage {
        image: name,
        name: vm,
        args: o.args,
        memory: o.memory,
    };
    answered(service::send(host, &msg)?)?;
    Ok(format!(
        "uploaded image {name} ({len} bytes); started {vm} from it\n"
    ))
}

/// `corral scale ENTRY COUNT`.
pub fn scale(host: &HostDir, entry: &str, count: u32) -> Result<String> {
    answered(service::send(host, &Message::Scale { entry, count })?)?;
    Ok(format!("{entry}: {count} running\n"))
}

/// The lines of `vm` in a run's console output (its prefix stripped).
pub fn vm_lines<'a>(lines: impl Iterator<Item = &'a str>, vm: &str) -> Vec<String> {
    lines
        .filter_map(|l| {
            let (source, text) = l.split_once(CONSOLE_SEPARATOR)?;
            (source.trim() == vm).then(|| text.to_string())
        })
        .collect()
}

/// `corral logs VM [-f]`: what the VM printed (and its starts and ends),
/// following new lines until the run ends with `-f`. While the host is up
/// the lines come from the hypervisor's history of the VM (its latest
/// lines, kept whoever was watching); once it is down, from the run's
/// console output.
pub fn logs(host: &HostDir, vm: &str, follow: bool, out: &mut dyn Write) -> Result<()> {
    // A host behind an endpoint is asked; it is followed until it stops
    // answering.
    if host.running() || host.endpoint.is_some() {
        return logs_from_host(host, vm, follow, out);
    }
    logs_from_console(host, vm, follow, out)
}

/// `logs` from the hypervisor: the lines it keeps of `vm`, then (with
/// `follow`) each new one as it comes, until the host is down.
fn logs_from_host(host: &HostDir, vm: &str, follow: bool, out: &mut dyn Write) -> Result<()> {
    let write = |out: &mut dyn Write, text: &str| {
        writeln!(out, "{text}").map_err(|e| Error::new(format!("cannot write: {e}")))
    };
    // A host behind an endpoint is up as long as it answers.
    let up = || host.endpoint.is_some() || host.running();
    let mut follower = Follower::default();
    let mut asked = false;
    loop {
        let from = follower.from;
        let answers = match service::send(host, &Message::Logs { vm, from }) {
            Ok(a) => answered(a)?,
            // Down while following: what it printed last is in the console
            // (or, behind an endpoint, was shown).
            Err(_) if follow && asked && (host.endpoint.is_some() || !host.running()) => {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        asked = true;
        let (lines, again) = follower.take(vm, &answers);
        for line in &lines {
            write(out, line)?;
        }
        if again {
            continue;
        }
        if !follow || !up() {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
}

/// Where a reader of a VM's lines on the host is: the next line it wants
/// and the VM (by id) whose lines it has read.
#[derive(Debug, Default)]
struct Follower {
    from: u64,
    id: Option<u32>,
}

impl Follower {
    /// The lines to print for one `logs` answer about `vm` (with a notice
    /// where lines are missing), and whether to ask again at once: the
    /// name now belongs to a new VM (a stop and a start, a scale down and
    /// up), whose lines are numbered from its first, so the answer's lines
    /// were picked by the old VM's numbering.
    fn take(&mut self, vm: &str, answers: &[Answer]) -> (Vec<String>, bool) {
        let mut out = Vec::new();
        for a in answers {
            match a {
                Answer::Head { id, next } => {
                    let replaced = self.id.is_some_and(|old| old != *id);
                    let renumbered = self.id == Some(*id) && *next < self.from;
                    self.id = Some(*id);
                    if replaced || renumbered {
                        out.push(format!(
                            "-- `{vm}` is a new VM now (id {id}): its lines from its first"
                        ));
                        self.from = 0;
                        return (out, true);
                    }
                }
                Answer::Line { seq, text } => {
                    if *seq > self.from {
                        out.push(format!(
                            "-- ({} earlier lines are no longer kept)",
                            seq - self.from
                        ));
                    }
                    out.push(text.clone());
                    self.from = seq + 1;
                }
                _ => {}
            }
        }
        (out, false)
    }
}

/// `logs` from the run's console output (the host is down).
fn logs_from_console(host: &HostDir, vm: &str, follow: bool, out: &mut dyn Write) -> Result<()> {
    if !host.console().exists() {
        return Err(Error::new(format!(
            "host `{}` has no console output (start it with `corral up`)",
            host.name
        )));
    }
    let mut f = Follow::default();
    loop {
        let lines = f.lines(&host.console());
        for text in vm_lines(lines.iter().map(String::as_str), vm) {
            writeln!(out, "{text}").map_err(|e| Error::new(format!("cannot write: {e}")))?;
        }
        if !follow || !host.running() {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
}

/// `corral events`: has the hypervisor stream events (once per host) and
/// shows each one filed from now on (with `all`, from the first), until
/// the host is down: readable
/// (`web-3 | started on core 1`, `web-3 | <a line it printed>`) or, with
/// `json`, as filed.
pub fn events(host: &HostDir, json: bool, all: bool, out: &mut dyn Write) -> Result<()> {
    let path = host.events();
    let mut f = Follow::default();
    if !all {
        // What was filed before is not news (skipped before asking, so
        // nothing filed meanwhile is missed).
        f.lines(&path);
    }
    service::watch(host)?;
    loop {
        let running = host.running();
        for line in f.lines(&path) {
            let text = if json {
                line
            } else {
                match serde_json::from_str(&line) {
                    Ok(v) => readable_event(&v),
                    Err(_) => continue,
                }
            };
            writeln!(out, "{text}").map_err(|e| Error::new(format!("cannot write: {e}")))?;
        }
        if !running {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
}

/// `corral --endpoint URL events`: the events the control unikernel kept
/// (with `all`, from the first it keeps; else from now on), then each new
/// one as it comes, until the endpoint stops answering (the host is down).
/// What the reader missed (events no longer kept, a control unikernel
/// that restarted) is said between them (on stderr with `json`).
pub fn events_from_endpoint(url: &str, json: bool, all: bool, out: &mut dyn Write) -> Result<()> {
    let write = |out: &mut dyn Write, text: &str| {
        writeln!(out, "{text}").map_err(|e| Error::new(format!("cannot write: {e}")))
    };
    let note = |out: &mut dyn Write, text: &str| {
        if json {
            eprintln!("{text}");
            Ok(())
        } else {
            write(out, text)
        }
    };
    // Past the last event kept: the first answer says where now is.
    let mut from = if all { 0 } else { u64::MAX };
    let mut boot = None;
    let mut unanswered = 0;
    loop {
        let got = match crate::endpoint::events(url, from) {
            Ok(got) => got,
            // It answered before and now nothing answers: asked again a
            // few times (a connection may break once), then the host is
            // taken to have ended, which ends the watch.
            Err(EventsError::Unreachable(e)) if boot.is_some() => {
                unanswered += 1;
                if unanswered < UNANSWERED_TRIES {
                    std::thread::sleep(POLL);
                    continue;
                }
                note(
                    out,
                    &format!("-- (the endpoint stopped answering, the host has ended: {e})"),
                )?;
                return Ok(());
            }
            // A refusal or an answer that is not the events is an error
            // whenever it comes.
            Err(e) => return Err(e.into_error()),
        };
        unanswered = 0;
        if boot.is_some_and(|b| b != got.boot) {
            // Another log: read from its first event.
            note(
                out,
                "-- (the control unikernel restarted: its events start again)",
            )?;
            boot = Some(got.boot);
            from = 0;
            continue;
        }
        if got.first > from {
            note(
                out,
                &format!(
                    "-- ({} earlier events are no longer kept)",
                    got.first - from
                ),
            )?;
        }
        boot = Some(got.boot);
        for v in &got.list {
            let text = if json {
                v.to_string()
            } else {
                readable_event(v)
            };
            write(out, &text)?;
        }
        from = got.next;
        // More may be kept than one answer carries: asked again at once.
        if got.list.is_empty() {
            std::thread::sleep(POLL);
        }
    }
}

/// An event from the events file as `corral events` shows it.
pub fn readable_event(v: &serde_json::Value) -> String {
    let vm = v["vm"].as_str().unwrap_or("?");
    let what = match v["event"].as_str().unwrap_or("?") {
        "line" => v["text"].as_str().unwrap_or("").to_string(),
        "started" => match v["core"].as_u64() {
            Some(core) => format!("-- started (id {}) on core {core}", v["id"]),
            None => format!("-- started (id {})", v["id"]),
        },
        "restarted" => format!("-- restarted (restart {})", v["restarts"]),
        "ended" => format!("-- ended: {}", v["status"].as_str().unwrap_or("?")),
        other => format!("-- {other}"),
    };
    format!("{vm} | {what}")
}

/// How long `corral down` waits for the exit status of a host that refused
/// its `end` (it may be ending already, through its control API).
const ENDING_WAIT: Duration = Duration::from_secs(30);

/// `corral down`: ends the run (every VM stopped, the report written, the
/// machine off) and returns the run's summary and exit status.
pub fn down(host: &HostDir, report: Option<&Path>) -> Result<(String, i32)> {
    // A run ended another way (`POST /v1/end` to its control unikernel) is
    // not asked again: its status and report are collected.
    let mut refused = match host.exit_status() {
        Some(_) => None,
        None => service::send(host, &Message::End).and_then(answered).err(),
    };
    let start = Instant::now();
    let status = loop {
        if let Some(s) = host.exit_status() {
            break s;
        }
        // A refused `end` waits only as long as a run ending anyway takes
        // to write its status.
        if let Some(e) = refused.take_if(|_| !host.running() || start.elapsed() > ENDING_WAIT) {
            return Err(e);
        }
        if !host.running() {
            return Err(Error::new(format!(
                "host `{}` ended without an exit status; see {}",
                host.name,
                host.console().display()
            )));
        }
        if start.elapsed() > DOWN_WAIT {
            return Err(Error::new(format!(
                "host `{}` did not end within {} s after `end` was accepted",
                host.name,
                DOWN_WAIT.as_secs()
            )));
        }
        std::thread::sleep(POLL);
    };
    if let Some(path) = report {
        std::fs::copy(host.report(), path).map_err(|e| {
            Error::new(format!(
                "cannot copy the report {} to {}: {e}",
                host.report().display(),
                path.display()
            ))
        })?;
    }
    let text = std::fs::read_to_string(host.console()).unwrap_or_default();
    let summary = text
        .split_once(REPORT_MARK)
        .map(|(_, after)| after.split_once('\n').map_or("", |x| x.1).to_string())
        .unwrap_or_default();
    Ok((summary, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake endpoint on 127.0.0.1 that gives `answers` (whole HTTP
    /// responses) to its first connections in turn, then closes; its URL.
    fn fake_endpoint(answers: Vec<String>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for answer in answers {
                let (mut s, _) = listener.accept().unwrap();
                // The whole request first (a GET: its head), so closing
                // leaves nothing unread (which would reset the connection
                // under the answer).
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(answer.as_bytes());
                let _ = s.shutdown(std::net::Shutdown::Write);
            }
        });
        url
    }

    fn http(code: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {code}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn the_endpoint_events_follower_ends_quietly_only_when_the_host_is_gone() {
        let events = |next: u64, list: &str| {
            http(
                "200 OK",
                &format!("{{\"boot\":7,\"first\":0,\"next\":{next},\"events\":[{list}]}}"),
            )
        };
        let started = r#"{"n":0,"vm":"web","event":"started","id":1}"#;
        // Events, then nothing answers any more: the host ended.
        let url = fake_endpoint(vec![events(1, started), events(1, "")]);
        let mut out = Vec::new();
        events_from_endpoint(&url, false, true, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0], "web | -- started (id 1)");
        assert!(
            lines[1].starts_with("-- (the endpoint stopped answering, the host has ended:"),
            "{text}"
        );
        // Events, then a refusal: an error, not an end.
        let url = fake_endpoint(vec![
            events(1, started),
            http("503 Service Unavailable", "no watch"),
        ]);
        let e = events_from_endpoint(&url, true, true, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("(503): no watch"), "{e}");
        // Nothing at all from the start: an error naming the endpoint.
        let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", gone.local_addr().unwrap());
        drop(gone);
        let e = events_from_endpoint(&url, true, true, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("cannot reach"), "{e}");
    }

    #[test]
    fn prometheus_labels_are_escaped() {
        assert_eq!(label("web-1"), "web-1");
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn a_vms_lines_are_found_by_its_prefix() {
        let console = [
            "   web-1 | serving",
            "   web-10 | not this one",
            "      hv | running 3 VMs",
            "   web-1 | -- stopped by the operator",
            "no separator here",
        ];
        assert_eq!(
            vm_lines(console.into_iter(), "web-1"),
            ["serving", "-- stopped by the operator"]
        );
        assert!(vm_lines(console.into_iter(), "web").is_empty());
    }

    #[test]
    fn a_follower_notices_a_new_vm_under_the_name_it_follows() {
        let line = |seq, text: &str| Answer::Line {
            seq,
            text: text.to_string(),
        };
        let head = |id, next| Answer::Head { id, next };
        let mut f = Follower::default();
        let (out, again) = f.take(
            "web-3",
            &[head(7, 3), line(0, "a"), line(1, "b"), line(2, "c")],
        );
        assert_eq!(
            (out, again),
            (vec!["a".into(), "b".into(), "c".into()], false)
        );
        assert_eq!(f.from, 3);
        // Nothing new: nothing printed.
        assert_eq!(f.take("web-3", &[head(7, 3)]), (vec![], false));
        // Lines dropped from the history before they were read: said.
        let (out, _) = f.take("web-3", &[head(7, 9), line(5, "f")]);
        assert_eq!(out, ["-- (2 earlier lines are no longer kept)", "f"]);
        // Scaled down and up again: a new VM with the same name, numbered
        // from 0; its lines are asked for again from its first.
        let (out, again) = f.take("web-3", &[head(12, 2), line(6, "stale")]);
        assert_eq!(
            (out, again),
            (
                vec!["-- `web-3` is a new VM now (id 12): its lines from its first".into()],
                true
            )
        );
        assert_eq!(f.from, 0);
        let (out, again) = f.take("web-3", &[head(12, 2), line(0, "x"), line(1, "y")]);
        assert_eq!((out, again), (vec!["x".into(), "y".into()], false));
    }

    #[test]
    fn follow_reads_only_whole_new_lines() {
        let dir = std::env::temp_dir().join(format!("corral-follow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.log");
        std::fs::write(&path, "a\nb").unwrap();
        let mut f = Follow::default();
        assert_eq!(f.lines(&path), ["a"]);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"c\r\nd\n").unwrap();
        assert_eq!(f.lines(&path), ["bc", "d"]);
        assert!(f.lines(&path).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
