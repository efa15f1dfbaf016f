//! Command-line interface (clap's derive API): the commands, their options and `--help`, and the entry point shared by the `corral` binary and the integration tests.

use crate::bench;
use crate::error::Error;
use crate::fleet_bench;
use crate::host_cmd;
use crate::net_bench;
use crate::nic_bench;
use crate::run::{RunOptions, RunResult, run};
use crate::scale_bench;
use crate::service::{DEFAULT_HOST, HostDir};
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
/// Exit status of a run that failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit status of a usage error.
pub const EXIT_USAGE: i32 = 2;

/// What a command did: its exit status and, if it failed, why.
#[derive(Debug)]
pub struct Invocation {
    /// Process exit status.
    pub code: i32,
    /// The error printed as `corral: error: ...`.
    pub error: Option<Error>,
    /// The run's result, for `run` and `bench` once a run was attempted.
    pub run: Option<RunResult>,
}

const EXIT_TEXT: &str = "\
Exit status: 0 if the run completed and every VM ended as its `expect` says,
1 if it did not (or a command was refused), 2 for a usage error.";

/// The `corral` command line.
#[derive(Debug, Parser)]
#[command(
    name = "corral",
    version,
    about = "corral: build, boot and judge Corral hypervisor runs in the Bochs emulator, and manage running hosts",
    after_help = EXIT_TEXT
)]
struct Cli {
    /// Reach the host through a control unikernel's HTTP API at URL
    /// (http://HOST:PORT) instead of its serial line (ps, stop, restart,
    /// start, scale, stats)
    #[arg(long, global = true, value_name = "URL")]
    endpoint: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

/// The host a command names: through `endpoint`'s API if given, else by
/// name through its relay.
fn target(host: &HostArg, endpoint: &Option<String>) -> crate::error::Result<HostDir> {
    match endpoint {
        Some(url) => HostDir::endpoint(url),
        None => HostDir::named(&host.host),
    }
}

/// How the emulated machine boots (every command that boots one).
#[derive(Clone, Debug, Default, Args)]
struct Boot {
    /// Bochs CPU model (overrides [run] cpu_model; default corei7_icelake_u)
    #[arg(long, value_name = "MODEL")]
    cpu_model: Option<String>,
    /// Wall-clock bound for the emulator in seconds (overrides [run] timeout; default 120)
    #[arg(long = "timeout", value_name = "SECS")]
    timeout_secs: Option<u64>,
    /// Do not stream the consoles (fleet-bench never does unless --verbose)
    #[arg(short, long)]
    quiet: bool,
    /// Also show report records and boot-loader output
    #[arg(short, long)]
    verbose: bool,
    /// End with the summary lines only, not the table of every VM
    #[arg(long)]
    summary_only: bool,
    /// Keep the ISO and its inputs in the run directory
    #[arg(long)]
    keep: bool,
    /// Skip the build: boot DIR/hypervisor with images DIR/<image>
    #[arg(long, value_name = "DIR")]
    prebuilt: Option<PathBuf>,
}

/// Emulated CPUs (not for fleet-bench, which always runs on 1).
#[derive(Clone, Debug, Default, Args)]
struct Cpus {
    /// Emulated CPUs (overrides [run] cpus; default 1)
    #[arg(long, value_name = "N")]
    cpus: Option<u32>,
}

/// The JSON report.
#[derive(Clone, Debug, Default, Args)]
struct ReportArg {
    /// Write a JSON run report to FILE (also when the run fails); for the
    /// benches, their table as JSON
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

/// A booting command's options: the machine, its CPUs, the report.
#[derive(Clone, Debug, Default, Args)]
struct Machine {
    #[command(flatten)]
    boot: Boot,
    #[command(flatten)]
    cpus: Cpus,
    #[command(flatten)]
    report: ReportArg,
}

/// Which running host.
#[derive(Clone, Debug, Args)]
struct HostArg {
    /// The host's name (several can be up at once)
    #[arg(long, value_name = "NAME", default_value = DEFAULT_HOST)]
    host: String,
}

/// `corral link ...`.
#[derive(Debug, Subcommand)]
enum LinkCmd {
    /// Link two running VMs' net ports while the host runs (neither
    /// linked yet); the control core polls the new link
    Attach {
        /// One end: `<vm>.<port>`
        a: String,
        /// The other end: `<vm>.<port>`
        b: String,
        /// The new link as JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        host: HostArg,
    },
    /// Unmake a link made at runtime; prints its final counters (frames
    /// not taken yet wait in their senders' rings)
    Detach {
        /// One end: `<vm>.<port>`
        a: String,
        /// The other end: `<vm>.<port>`
        b: String,
        /// Its final counters as JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        host: HostArg,
    },
}

/// `corral hook ...`.
#[derive(Debug, Subcommand)]
enum HookCmd {
    /// Attach a hook to a running host: a packet hook to a link direction,
    /// or a restart, exit or slice hook to a VM (compiled as it is
    /// attached, or interpreted once the JIT's area is full: the console
    /// says which); attaching where a runtime hook is swaps it, atomically
    /// between two runs
    Attach {
        /// The hook's name (unique on the host)
        name: String,
        /// Where: `link:<vm>.<port>-><vm>.<port>` or `nic:<name>:rx|tx`,
        /// named as in the manifest the host was brought up from, or
        /// `vm:<name>` (any of its VMs, those started at runtime too)
        #[arg(long, value_name = "TARGET")]
        attach: String,
        /// The hook's kind: packet (on a link), or restart, exit or slice
        /// (on a VM)
        #[arg(long, default_value = "packet", value_parser = hook_kind)]
        kind: vmm_abi::hook::HookKind,
        /// A C file clang compiles
        #[arg(
            long,
            value_name = "FILE",
            conflicts_with = "object",
            required_unless_present = "object"
        )]
        source: Option<PathBuf>,
        /// A BPF ELF object
        #[arg(long, value_name = "FILE")]
        object: Option<PathBuf>,
        /// The program in the object (if it has several)
        #[arg(long, value_name = "NAME")]
        program: Option<String>,
        #[command(flatten)]
        host: HostArg,
    },
    /// Detach a hook attached at runtime; prints its final counters
    Detach {
        /// The hook's name
        name: String,
        /// As JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        host: HostArg,
    },
    /// A hook's counters and the entries of its maps that are not all zero
    Maps {
        /// The hook's name
        name: String,
        /// As JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        host: HostArg,
    },
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Boot the VMs of a TOML manifest and judge the run
    Run {
        /// The TOML manifest
        manifest: PathBuf,
        #[command(flatten)]
        machine: Machine,
        /// A service run's host name (what `corral up` passes)
        #[arg(long, value_name = "NAME")]
        host: Option<String>,
    },
    /// Run images/manifests/bench.toml and print its numbers
    Bench(Machine),
    /// Boot fleets of hello VMs on 1 emulated CPU and print per-VM boot cost and memory
    FleetBench {
        /// Comma-separated fleet sizes (default 1,8,64,256)
        #[arg(long, value_name = "LIST", value_parser = sizes)]
        sizes: Option<SizeList>,
        #[command(flatten)]
        boot: Boot,
        #[command(flatten)]
        report: ReportArg,
    },
    /// Bring images/manifests/scale-bench.toml up as a service run, scale
    /// its VM from 1 to N and back for each size, and print what each VM
    /// started at runtime cost
    ScaleBench {
        /// Comma-separated sizes (default 1,8,64,256; size 1 starts nothing)
        #[arg(long, value_name = "LIST", value_parser = sizes)]
        sizes: Option<SizeList>,
        #[command(flatten)]
        boot: Boot,
    },
    /// Run the NFV pipeline of images/manifests/nfv-bench.toml with 64- and
    /// 1500-byte frames, twice each, and print VM exits and polling
    /// instructions per packet
    NetBench(Machine),
    /// Run images/manifests/nic-bench.toml (a host UDP client, slirp, the
    /// e1000, echo) in shared and owned mode and print the NIC path's
    /// instructions per frame each way and VM exits
    NicBench(Machine),
    /// Boot a service-run manifest in the background; returns once its
    /// hypervisor answers on its control line
    Up {
        /// The TOML manifest (with `mode = "service"` in its [run] table)
        manifest: PathBuf,
        #[command(flatten)]
        host: HostArg,
        #[command(flatten)]
        boot: Boot,
        #[command(flatten)]
        cpus: Cpus,
    },
    /// List a running host's VMs
    Ps {
        #[command(flatten)]
        host: HostArg,
        /// JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show a running host's counters: free memory, running VMs, the
    /// control channel's commands and errors, each VM's restarts
    Stats {
        #[command(flatten)]
        host: HostArg,
        /// JSON instead of text
        #[arg(long, conflicts_with = "prometheus")]
        json: bool,
        /// Prometheus text exposition format (labels `host` and `vm`)
        #[arg(long)]
        prometheus: bool,
        /// With --prometheus: serve the counters over HTTP at
        /// http://ADDR/metrics (each request asks the host afresh) until the
        /// host is down, e.g. 127.0.0.1:9464 (port 0: any free port)
        #[arg(long, value_name = "ADDR", requires = "prometheus")]
        listen: Option<String>,
        /// Refresh until the host is down (a live table on a terminal)
        #[arg(long, conflicts_with = "listen")]
        watch: bool,
        /// With --watch: seconds between refreshes
        #[arg(long, value_name = "SECS", default_value = "2", requires = "watch", value_parser = seconds)]
        every: std::time::Duration,
        /// With --watch: stop after N refreshes
        #[arg(long, value_name = "N", requires = "watch")]
        count: Option<u32>,
        /// Write the counters to FILE (whole, replaced at each refresh)
        /// instead of the screen, e.g. for a Prometheus textfile collector
        #[arg(long, value_name = "FILE", conflicts_with = "listen")]
        output: Option<PathBuf>,
    },
    /// Stop a VM for good
    Stop {
        /// The VM's name
        vm: String,
        #[command(flatten)]
        host: HostArg,
    },
    /// Restart a VM with fresh memory (running, or ended)
    Restart {
        /// The VM's name
        vm: String,
        #[command(flatten)]
        host: HostArg,
    },
    /// Change a VM's budget or slice from now on (kept across its
    /// restarts)
    #[command(group(clap::ArgGroup::new("setting").required(true).multiple(true)))]
    Tune {
        /// The VM's name
        vm: String,
        /// Instructions it may run in all, counted from its start (0: no
        /// budget); past them it is stopped
        #[arg(long, group = "setting")]
        budget: Option<u64>,
        /// Instructions per scheduling slice (0: the run's)
        #[arg(long, group = "setting")]
        slice: Option<u64>,
        #[command(flatten)]
        host: HostArg,
    },
    /// Start one more VM from a manifest entry, like its clones (named
    /// `<entry>-<next number>` unless --name is given), or from an image
    /// file uploaded to the host (`--image FILE --name NAME`)
    Start {
        /// The manifest entry (a `[[vm]]` name, or an uploaded image's
        /// name: a copy of the first VM started from it)
        #[arg(required_unless_present = "image")]
        entry: Option<String>,
        /// An image file (a Corral or Solo5 hvt unikernel ELF) to upload
        /// and start a VM from: 1 MiB of memory unless --memory says, no
        /// budget, no restarts, no devices, on any core that runs VMs
        #[arg(long, value_name = "FILE", conflicts_with = "entry", requires = "name")]
        image: Option<PathBuf>,
        /// The uploaded image's name on the host (default: the file's name)
        #[arg(long, value_name = "NAME", requires = "image")]
        image_name: Option<String>,
        /// The new VM's name
        #[arg(long)]
        name: Option<String>,
        /// Its arguments instead of the entry's (printable ASCII, at most
        /// 128 bytes; `--args ""` for none)
        #[arg(long)]
        args: Option<String>,
        /// Its guest memory instead of the entry's (`64M`, `512K`, bytes)
        #[arg(long, value_parser = memory_size)]
        memory: Option<u64>,
        #[command(flatten)]
        host: HostArg,
    },
    /// Start or stop an entry's VMs until COUNT of them run (the newest
    /// stop first)
    Scale {
        /// The manifest entry (a `[[vm]]` name)
        entry: String,
        /// How many of its VMs should run
        count: u32,
        #[command(flatten)]
        host: HostArg,
    },
    /// Attach, detach or read a packet hook on a running host's link
    #[command(subcommand)]
    Hook(HookCmd),
    /// Link or unlink two VMs' net ports on a running host
    #[command(subcommand)]
    Link(LinkCmd),
    /// Show what a VM printed
    Logs {
        /// The VM's name
        vm: String,
        #[command(flatten)]
        host: HostArg,
        /// Keep showing new lines until the run ends
        #[arg(short, long)]
        follow: bool,
    },
    /// Show what happens on a running host as it happens: VMs starting,
    /// restarting and ending, and every line they print, until it is down
    Events {
        #[command(flatten)]
        host: HostArg,
        /// One JSON object a line
        #[arg(long)]
        json: bool,
        /// First the events filed before (since the host's first `corral
        /// events`)
        #[arg(long)]
        all: bool,
    },
    /// End a running host: stop every VM, write the report, power off
    Down {
        #[command(flatten)]
        host: HostArg,
        /// Copy the run's JSON report to FILE
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
    },
    /// Print a shell completion script
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

/// Fleet sizes: one value (`1,8,64`), not a repeated option (an alias, so
/// clap takes it as one value).
type SizeList = Vec<u32>;

fn hook_kind(text: &str) -> Result<vmm_abi::hook::HookKind, String> {
    vmm_abi::hook::HookKind::ALL
        .into_iter()
        .find(|k| k.name() == text)
        .ok_or_else(|| format!("`{text}` is not a hook kind (packet, restart, exit or slice)"))
}

fn seconds(text: &str) -> Result<std::time::Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && (0.1..=3600.0).contains(s))
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(|| format!("`{text}` is not a number of seconds from 0.1 to 3600"))
}

fn memory_size(text: &str) -> Result<u64, String> {
    let bytes = crate::toml_manifest::parse_size(text)
        .ok_or_else(|| format!("`{text}` is not a size (`64M`, `512K`, bytes)"))?;
    vmm_abi::manifest::check_memory(bytes).map_err(|p| p.to_string())?;
    Ok(bytes)
}

fn sizes(text: &str) -> Result<SizeList, String> {
    fleet_bench::parse_sizes(text).map_err(|e| e.to_string())
}

fn options(manifest: PathBuf, m: Machine) -> RunOptions {
    let Machine { boot, cpus, report } = m;
    RunOptions {
        manifest,
        report: report.report,
        cpu_model: boot.cpu_model,
        cpus: cpus.cpus,
        timeout_secs: boot.timeout_secs,
        quiet: boot.quiet,
        verbose: boot.verbose,
        summary_only: boot.summary_only,
        keep: boot.keep,
        prebuilt: boot.prebuilt,
        host: None,
    }
}

/// The options `up` passes on to the background `corral run`.
fn background_args(boot: &Boot, cpus: &Cpus) -> Vec<String> {
    let mut args = Vec::new();
    let mut value = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            args.push(name.to_string());
            args.push(v);
        }
    };
    value("--cpu-model", boot.cpu_model.clone());
    value("--timeout", boot.timeout_secs.map(|t| t.to_string()));
    value("--cpus", cpus.cpus.map(|c| c.to_string()));
    value(
        "--prebuilt",
        boot.prebuilt.as_ref().map(|p| p.display().to_string()),
    );
    for (flag, on) in [
        ("--verbose", boot.verbose),
        ("--summary-only", boot.summary_only),
        ("--keep", boot.keep),
    ] {
        if on {
            args.push(flag.to_string());
        }
    }
    args
}

fn finish_run(opts: &RunOptions, result: RunResult) -> Invocation {
    if let Some(path) = &opts.report
        && let Err(e) = result.report.write(path)
    {
        return Invocation {
            code: EXIT_FAILED,
            error: Some(e),
            run: Some(result),
        };
    }
    Invocation {
        code: if result.passed() { 0 } else { EXIT_FAILED },
        error: result.error.clone(),
        run: Some(result),
    }
}

/// Runs both halves of the console benchmark (a quiet VM beside a busy
/// one, then beside a spammer) and returns its lines.
fn console_bench(opts: &RunOptions) -> crate::error::Result<Vec<String>> {
    let mut reports = Vec::new();
    for half in bench::CONSOLE_HALVES {
        let half_opts = RunOptions {
            manifest: bench::console_manifest(half),
            report: None,
            ..opts.clone()
        };
        let result = run(&half_opts);
        if let Some(e) = result.error.clone() {
            return Err(e);
        }
        if !result.passed() {
            return Err(Error::new(format!(
                "the console benchmark's {half} half did not end as expected"
            )));
        }
        reports.push(result.report);
    }
    bench::console_lines(&reports[0], &reports[1])
}

/// Runs the command `args` (without the program name) and says what it did;
/// prints progress and consoles, but not the final error line.
pub fn invoke(args: &[&str]) -> Invocation {
    let cli = match Cli::try_parse_from(std::iter::once("corral").chain(args.iter().copied())) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                print!("{e}");
                return done(0, None);
            }
            // clap's text without its `error: ` (ours adds `corral: error: `).
            let text = e.render().to_string();
            let text = text.trim_end().trim_start_matches("error: ").to_string();
            return done(EXIT_USAGE, Some(Error::new(text)));
        }
    };
    let endpoint = cli.endpoint;
    let through_api = matches!(
        cli.command,
        Cmd::Ps { .. }
            | Cmd::Stop { .. }
            | Cmd::Restart { .. }
            | Cmd::Tune { .. }
            | Cmd::Start { .. }
            | Cmd::Scale { .. }
            | Cmd::Link(_)
            | Cmd::Logs { .. }
            | Cmd::Hook(_)
            | Cmd::Stats { listen: None, .. }
            | Cmd::Events { .. }
            | Cmd::Down { report: None, .. }
    );
    if endpoint.is_some() && !through_api {
        return done(
            EXIT_USAGE,
            Some(Error::new(
                "`--endpoint` serves ps, stop, restart, tune, start, scale, link, logs, hook, events, down (without --report: the report is written where the host runs) and stats (without --listen)",
            )),
        );
    }
    match cli.command {
        Cmd::Run {
            manifest,
            machine,
            host,
        } => {
            let opts = RunOptions {
                host: host.clone(),
                ..options(manifest, machine)
            };
            let inv = finish_run(&opts, run(&opts));
            // `down` waits for this: the report is written, the run is over.
            if let Some(Ok(h)) = host.as_deref().map(HostDir::named) {
                let _ = std::fs::write(h.exit(), inv.code.to_string());
            }
            inv
        }
        Cmd::Bench(m) => {
            let opts = options(bench::manifest_path(), m);
            bench_command(&opts)
        }
        Cmd::NetBench(m) => {
            let opts = options(net_bench::manifest_path(), m);
            repeatable_bench(
                net_bench::run_bench(&opts).map(|o| (o.lines, o.repeatable)),
                "two runs of the same frame size measured different numbers",
            )
        }
        Cmd::NicBench(m) => {
            let opts = options(nic_bench::manifest_path(), m);
            repeatable_bench(
                nic_bench::run_bench(&opts).map(|o| (o.lines, o.repeatable)),
                "two runs of the same mode and frame size measured different numbers",
            )
        }
        Cmd::ScaleBench { sizes, boot } => {
            let sizes = sizes.unwrap_or_else(|| scale_bench::DEFAULT_SIZES.to_vec());
            let args = background_args(&boot, &Cpus::default());
            let host = format!("scale-bench-{}", std::process::id());
            bench_lines(scale_bench::run(&sizes, &host, &args))
        }
        Cmd::FleetBench {
            sizes,
            boot,
            report,
        } => {
            let opts = options(
                PathBuf::new(),
                Machine {
                    boot,
                    cpus: Cpus::default(),
                    report,
                },
            );
            let sizes = sizes.unwrap_or_else(|| fleet_bench::DEFAULT_SIZES.to_vec());
            bench_lines(fleet_bench::run_sizes(&opts, &sizes))
        }
        Cmd::Up {
            manifest,
            host,
            boot,
            cpus,
        } => {
            let bound = Duration::from_secs(
                boot.timeout_secs
                    .unwrap_or(crate::toml_manifest::MAX_TIMEOUT_SECS),
            );
            let args = background_args(&boot, &cpus);
            outcome(
                HostDir::named(&host.host)
                    .and_then(|h| host_cmd::up(&manifest, &h, &args, bound))
                    .map(|()| String::new()),
            )
        }
        Cmd::Ps { host, json } => {
            outcome(target(&host, &endpoint).and_then(|h| host_cmd::ps(&h, json)))
        }
        Cmd::Stats {
            host,
            prometheus: true,
            listen: Some(addr),
            ..
        } => outcome(HostDir::named(&host.host).and_then(|h| {
            crate::metrics_http::serve(&h, &addr, |bound| {
                println!(
                    "serving the counters of host `{}` on http://{bound}{}",
                    h.name,
                    crate::metrics_http::METRICS_PATH
                );
                let _ = std::io::Write::flush(&mut std::io::stdout());
            })
            .map(|()| String::new())
        })),
        Cmd::Stats {
            host,
            json,
            prometheus,
            watch,
            every,
            count,
            output,
            ..
        } => {
            let format = match (json, prometheus) {
                (true, _) => host_cmd::StatsFormat::Json,
                (_, true) => host_cmd::StatsFormat::Prometheus,
                _ => host_cmd::StatsFormat::Text,
            };
            let watch = watch.then_some(host_cmd::Watch { every, count });
            outcome(target(&host, &endpoint).and_then(|h| {
                let mut out = std::io::stdout();
                let terminal = std::io::IsTerminal::is_terminal(&out);
                host_cmd::stats_to(
                    &h,
                    format,
                    watch.as_ref(),
                    output.as_deref(),
                    &mut out,
                    terminal,
                )
                .map(|()| String::new())
            }))
        }
        Cmd::Stop { vm, host } => {
            outcome(target(&host, &endpoint).and_then(|h| host_cmd::vm_command(&h, &vm, false)))
        }
        Cmd::Restart { vm, host } => {
            outcome(target(&host, &endpoint).and_then(|h| host_cmd::vm_command(&h, &vm, true)))
        }
        Cmd::Tune {
            vm,
            budget,
            slice,
            host,
        } => outcome(target(&host, &endpoint).and_then(|h| host_cmd::tune(&h, &vm, budget, slice))),
        Cmd::Start {
            entry,
            image,
            image_name,
            name,
            args,
            memory,
            host,
        } => outcome(target(&host, &endpoint).and_then(|h| {
            let overrides = host_cmd::Overrides {
                args: args.as_deref(),
                memory: memory.unwrap_or(0),
            };
            match (&entry, &image, &name) {
                (_, Some(file), Some(vm)) => {
                    host_cmd::start_image(&h, (file, image_name.as_deref()), vm, overrides)
                }
                (Some(entry), _, _) => host_cmd::start(&h, entry, name.as_deref(), overrides),
                _ => Err(Error::new("give an entry, or --image FILE --name NAME")),
            }
        })),
        Cmd::Scale { entry, count, host } => {
            outcome(target(&host, &endpoint).and_then(|h| host_cmd::scale(&h, &entry, count)))
        }
        Cmd::Hook(cmd) => outcome(hook(cmd, &endpoint)),
        Cmd::Link(cmd) => outcome(match cmd {
            LinkCmd::Attach { a, b, json, host } => {
                target(&host, &endpoint).and_then(|h| host_cmd::link(&h, [&a, &b], true, json))
            }
            LinkCmd::Detach { a, b, json, host } => {
                target(&host, &endpoint).and_then(|h| host_cmd::link(&h, [&a, &b], false, json))
            }
        }),
        Cmd::Logs { vm, host, follow } => outcome(target(&host, &endpoint).and_then(|h| {
            host_cmd::logs(&h, &vm, follow, &mut std::io::stdout()).map(|()| String::new())
        })),
        Cmd::Events { json, all, .. } if let Some(url) = &endpoint => outcome(
            host_cmd::events_from_endpoint(url, json, all, &mut std::io::stdout())
                .map(|()| String::new()),
        ),
        Cmd::Events { host, json, all } => outcome(HostDir::named(&host.host).and_then(|h| {
            host_cmd::events(&h, json, all, &mut std::io::stdout()).map(|()| String::new())
        })),
        Cmd::Down { .. } if let Some(url) = &endpoint => outcome(crate::endpoint::end(url).map(|()| {
            format!(
                "the host behind {url} is ending: its VMs stop, its report is written where it runs, it powers off\n"
            )
        })),
        Cmd::Down { host, report } => {
            match HostDir::named(&host.host).and_then(|h| host_cmd::down(&h, report.as_deref())) {
                Ok((summary, status)) => {
                    print!("{summary}");
                    let error = (status != 0).then(|| {
                        Error::new(format!(
                            "the run of host `{}` ended with status {status} (not every VM ended as expected)",
                            host.host
                        ))
                    });
                    done(status, error)
                }
                Err(e) => done(EXIT_FAILED, Some(e)),
            }
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "corral", &mut std::io::stdout());
            done(0, None)
        }
    }
}

fn done(code: i32, error: Option<Error>) -> Invocation {
    Invocation {
        code,
        error,
        run: None,
    }
}

/// A host command's output printed, or its error.
/// Carries out a `corral hook` command.
fn hook(cmd: HookCmd, endpoint: &Option<String>) -> crate::error::Result<String> {
    use crate::hook_cmd::{self, Program};
    match cmd {
        HookCmd::Attach {
            name,
            attach,
            kind,
            source,
            object,
            program,
            host,
        } => {
            let from = match (&source, &object) {
                (Some(s), _) => Program::Source(s),
                (None, Some(o)) => Program::Object(o),
                (None, None) => {
                    return Err(Error::new("give --source FILE or --object FILE"));
                }
            };
            let h = target(&host, endpoint)?;
            hook_cmd::attach(&h, (&name, kind), &attach, from, program.as_deref())
        }
        HookCmd::Detach { name, json, host } => {
            hook_cmd::detach(&target(&host, endpoint)?, &name, json)
        }
        HookCmd::Maps { name, json, host } => {
            hook_cmd::maps(&target(&host, endpoint)?, &name, json)
        }
    }
}

fn outcome(result: crate::error::Result<String>) -> Invocation {
    match result {
        Ok(text) => {
            print!("{text}");
            done(0, None)
        }
        Err(e) => done(EXIT_FAILED, Some(e)),
    }
}

/// Runs the Solo5 hvt bench and returns its lines.
fn solo5_bench(opts: &RunOptions) -> crate::error::Result<Vec<String>> {
    let hvt_opts = RunOptions {
        manifest: bench::solo5_manifest_path(),
        report: None,
        ..opts.clone()
    };
    let result = run(&hvt_opts);
    if let Some(e) = result.error.clone() {
        return Err(e);
    }
    if !result.passed() {
        return Err(Error::new("the hvt bench did not end as expected"));
    }
    let dir = result
        .report
        .run_dir
        .as_deref()
        .ok_or_else(|| Error::new("the hvt bench run left no run directory"))?;
    let path = std::path::Path::new(dir).join("com1.txt");
    let console = std::fs::read(&path)
        .map_err(|e| Error::new(format!("cannot read {}: {e}", path.display())))?;
    bench::solo5_lines(&result.report, &String::from_utf8_lossy(&console))
}

fn bench_command(opts: &RunOptions) -> Invocation {
    let mut inv = finish_run(opts, run(opts));
    if inv.error.is_none()
        && let Some(result) = &inv.run
    {
        match bench::lines(&result.report).and_then(|mut lines| {
            lines.extend(console_bench(opts)?);
            lines.extend(solo5_bench(opts)?);
            Ok(lines)
        }) {
            Ok(lines) => {
                println!();
                for line in lines {
                    println!("{line}");
                }
            }
            Err(e) => {
                inv.code = EXIT_FAILED;
                inv.error = Some(e);
            }
        }
    }
    inv
}

/// The `corral` command: runs `args` (without the program name), prints any
/// error as `corral: error: ...` on standard error, returns the exit status.
pub fn run_args(args: &[&str]) -> i32 {
    let inv = invoke(args);
    if let Some(e) = &inv.error {
        if let Some(detail) = e.detail() {
            eprintln!("{}", detail.trim_end());
        }
        eprintln!("corral: error: {e}");
    }
    inv.code
}

/// Prints a bench's lines; it failed if its runs did not repeat
/// (`differ` says how).
/// A benchmark's lines printed after a blank line, or its error.
fn bench_lines(result: Result<Vec<String>, Error>) -> Invocation {
    match result {
        Ok(lines) => {
            println!();
            for line in lines {
                println!("{line}");
            }
            done(0, None)
        }
        Err(e) => done(EXIT_FAILED, Some(e)),
    }
}

fn repeatable_bench(result: Result<(Vec<String>, bool), Error>, differ: &str) -> Invocation {
    match result {
        Ok((lines, repeatable)) => {
            println!();
            for line in &lines {
                println!("{line}");
            }
            let error = (!repeatable).then(|| Error::new(differ));
            Invocation {
                code: if error.is_some() { EXIT_FAILED } else { 0 },
                error,
                run: None,
            }
        }
        Err(e) => Invocation {
            code: EXIT_FAILED,
            error: Some(e),
            run: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn parse(args: &[&str]) -> Result<Cmd, String> {
        Cli::try_parse_from(std::iter::once("corral").chain(args.iter().copied()))
            .map(|c| c.command)
            .map_err(|e| e.to_string())
    }

    fn run_opts(args: &[&str]) -> RunOptions {
        match parse(args).unwrap() {
            Cmd::Run {
                manifest,
                machine,
                host,
            } => RunOptions {
                host,
                ..options(manifest, machine)
            },
            Cmd::Bench(m) | Cmd::NetBench(m) => options(PathBuf::new(), m),
            other => panic!("not a run: {other:?}"),
        }
    }

    fn usage_error(args: &[&str]) -> String {
        parse(args).unwrap_err()
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_every_option() {
        let o = run_opts(&[
            "run",
            "m.toml",
            "--report",
            "r.json",
            "--cpu-model=corei7_skylake_x",
            "--cpus",
            "2",
            "--timeout",
            "30",
            "--quiet",
            "--verbose",
            "--keep",
            "--summary-only",
            "--prebuilt",
            "/b",
            "--host",
            "lab",
        ]);
        assert_eq!(
            o,
            RunOptions {
                manifest: PathBuf::from("m.toml"),
                report: Some("r.json".into()),
                cpu_model: Some("corei7_skylake_x".into()),
                cpus: Some(2),
                timeout_secs: Some(30),
                quiet: true,
                verbose: true,
                summary_only: true,
                keep: true,
                prebuilt: Some("/b".into()),
                host: Some("lab".into()),
            }
        );
        assert!(run_opts(&["bench", "-q"]).quiet);
    }

    #[test]
    fn stats_watches_and_writes_files() {
        let Cmd::Stats {
            watch,
            every,
            count,
            output,
            ..
        } = parse(&[
            "stats", "--watch", "--every", "0.5", "--count", "3", "--output", "m.prom",
        ])
        .unwrap()
        else {
            panic!("not stats");
        };
        assert_eq!(
            (watch, every, count, output),
            (
                true,
                std::time::Duration::from_millis(500),
                Some(3),
                Some(PathBuf::from("m.prom"))
            )
        );
        let Cmd::Stats { watch, every, .. } = parse(&["stats"]).unwrap() else {
            panic!("not stats");
        };
        assert_eq!((watch, every), (false, std::time::Duration::from_secs(2)));
        for (args, want) in [
            (&["stats", "--count", "2"][..], "--watch"),
            (
                &["stats", "--watch", "--every", "0"][..],
                "not a number of seconds",
            ),
            (
                &["stats", "--watch", "--every", "nan"][..],
                "not a number of seconds",
            ),
            (
                &["stats", "--prometheus", "--listen", "x:1", "--watch"][..],
                "cannot be used with",
            ),
        ] {
            let e = usage_error(args);
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }

    #[test]
    fn fleet_bench_takes_sizes() {
        let Cmd::FleetBench { sizes, boot, .. } = parse(&["fleet-bench"]).unwrap() else {
            panic!("not fleet-bench");
        };
        assert_eq!((sizes, boot.keep), (None, false));
        let Cmd::FleetBench { sizes, boot, .. } =
            parse(&["fleet-bench", "--sizes", "2,4", "--timeout=50", "--keep"]).unwrap()
        else {
            panic!("not fleet-bench");
        };
        assert_eq!(sizes, Some(vec![2, 4]));
        assert_eq!((boot.timeout_secs, boot.keep), (Some(50), true));
        assert!(usage_error(&["fleet-bench", "--sizes", "0"]).contains("--sizes"));
        assert!(usage_error(&["fleet-bench", "--cpus", "2"]).contains("--cpus"));
        assert!(usage_error(&["fleet-bench", "x.toml"]).contains("unexpected argument"));
        assert!(usage_error(&["run", "m.toml", "--sizes", "1"]).contains("--sizes"));
        assert_eq!(invoke(&["fleet-bench", "--sizes=x"]).code, EXIT_USAGE);
    }

    #[test]
    fn host_commands_take_a_host() {
        let Cmd::Ps { host, json } = parse(&["ps"]).unwrap() else {
            panic!("not ps");
        };
        assert_eq!((host.host.as_str(), json), (DEFAULT_HOST, false));
        let Cmd::Stop { vm, host } = parse(&["stop", "web-1", "--host", "lab"]).unwrap() else {
            panic!("not stop");
        };
        assert_eq!((vm.as_str(), host.host.as_str()), ("web-1", "lab"));
        let Cmd::Tune {
            vm, budget, slice, ..
        } = parse(&["tune", "web-1", "--budget", "5000000"]).unwrap()
        else {
            panic!("not tune");
        };
        assert_eq!(
            (vm.as_str(), budget, slice),
            ("web-1", Some(5_000_000), None)
        );
        assert!(parse(&["tune", "web-1"]).is_err(), "tune needs a setting");
        let Cmd::Logs { follow, .. } = parse(&["logs", "web-1", "-f"]).unwrap() else {
            panic!("not logs");
        };
        assert!(follow);
        let Cmd::Up {
            manifest,
            boot,
            cpus,
            ..
        } = parse(&["up", "s.toml", "--cpus", "3", "--timeout", "90", "--keep"]).unwrap()
        else {
            panic!("not up");
        };
        assert_eq!(manifest, PathBuf::from("s.toml"));
        assert_eq!(
            background_args(&boot, &cpus),
            ["--timeout", "90", "--cpus", "3", "--keep"]
        );
        assert!(usage_error(&["stop"]).contains("<VM>"));
        assert!(usage_error(&["up", "s.toml", "--report", "r"]).contains("--report"));
        let inv = invoke(&["ps", "--host", "no/such"]);
        assert_eq!(inv.code, EXIT_FAILED);
        assert!(inv.error.unwrap().to_string().contains("not a host name"));
        let inv = invoke(&["ps", "--host", "never-started-here"]);
        assert!(inv.error.unwrap().to_string().contains("is not up"));
    }

    #[test]
    fn help_and_version_are_recognized() {
        assert_eq!(invoke(&["--help"]).code, 0);
        assert_eq!(invoke(&["run", "--help"]).code, 0);
        assert_eq!(invoke(&["--version"]).code, 0);
        assert_eq!(invoke(&["completions", "bash"]).code, 0);
    }

    #[test]
    fn usage_errors_are_clear() {
        assert!(usage_error(&[]).contains("Usage"));
        assert!(usage_error(&["fly"]).contains("unrecognized subcommand 'fly'"));
        assert!(usage_error(&["run"]).contains("<MANIFEST>"));
        assert!(usage_error(&["run", "m.toml", "--cpus"]).contains("--cpus"));
        assert!(usage_error(&["run", "m.toml", "--cpus", "two"]).contains("invalid digit"));
        assert!(usage_error(&["run", "m.toml", "--timeout=-1"]).contains("--timeout"));
        assert!(usage_error(&["run", "m.toml", "--frobnicate"]).contains("--frobnicate"));
        assert!(usage_error(&["run", "a.toml", "b.toml"]).contains("'b.toml'"));
        assert!(usage_error(&["bench", "x.toml"]).contains("unexpected argument"));
        let inv = invoke(&["run"]);
        assert_eq!(inv.code, EXIT_USAGE);
        assert!(!inv.error.unwrap().to_string().starts_with("error:"));
    }

    #[test]
    fn run_errors_come_back_with_a_report() {
        let dir = std::env::temp_dir().join(format!("corral-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let report = dir.join("r.json");
        let report_arg = report.to_str().unwrap();
        let inv = invoke(&[
            "run",
            "/nonexistent/m.toml",
            "--report",
            report_arg,
            "--quiet",
        ]);
        assert_eq!(inv.code, EXIT_FAILED);
        assert!(
            inv.error
                .unwrap()
                .to_string()
                .contains("cannot read manifest")
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(json["completed"], false);
        assert!(
            json["error"]
                .as_str()
                .unwrap()
                .contains("cannot read manifest")
        );

        let bad_cpu = dir.join("cpu.toml");
        std::fs::write(
            &bad_cpu,
            "[[vm]]\nname = \"a\"\nimage = \"hello\"\ncores = [1]\n",
        )
        .unwrap();
        let inv = invoke(&["run", bad_cpu.to_str().unwrap(), "--quiet"]);
        assert!(
            inv.error
                .unwrap()
                .to_string()
                .ends_with("vm `a`: field `cores`: core 1 does not exist: this run has 1 CPU")
        );
        let inv = invoke(&["run", bad_cpu.to_str().unwrap(), "--cpu-model", "z80"]);
        assert!(
            inv.error
                .unwrap()
                .to_string()
                .contains("no CPU model `z80`")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
