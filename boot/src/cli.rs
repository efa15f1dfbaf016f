//! Command-line interface: argument parsing, `--help`, and the entry point
//! shared by the `corral` binary and the integration tests.

use crate::bench;
use crate::error::Error;
use crate::fleet_bench;
use crate::net_bench;
use crate::nic_bench;
use crate::run::{RunOptions, RunResult, run};

/// Usage text for `--help`.
pub const USAGE: &str = "\
corral: build, boot and judge Corral hypervisor runs in the Bochs emulator

Usage:
  corral run MANIFEST.toml [OPTIONS]   boot the VMs of a TOML manifest
  corral bench [OPTIONS]               run images/manifests/bench.toml and print its numbers
  corral fleet-bench [--sizes LIST] [OPTIONS]
                                       boot fleets of LIST hello VMs (default 1,8,64,256) on
                                       1 emulated CPU and print per-VM boot cost and memory
  corral net-bench [OPTIONS]           run the NFV pipeline of images/manifests/nfv-bench.toml
                                       with 64- and 1500-byte frames, twice each, and print
                                       VM exits and polling instructions per packet
  corral nic-bench [OPTIONS]           run images/manifests/nic-bench.toml (a host UDP client,
                                       slirp, the e1000, echo) in shared and owned mode with
                                       64- and 1500-byte frames, twice each, and print the NIC
                                       path's instructions per frame each way and VM exits
  corral --help                        show this text

Options:
  --report FILE       write a JSON run report to FILE (also when the run fails);
                      for fleet-bench, net-bench and nic-bench, the table as JSON
  --cpu-model MODEL   Bochs CPU model (overrides [run] cpu_model; default corei7_icelake_u)
  --cpus N            emulated CPUs (overrides [run] cpus; default 1; not for fleet-bench)
  --timeout SECS      wall-clock bound for the emulator (overrides [run] timeout; default 120)
  --quiet             do not stream the consoles (fleet-bench never does unless --verbose)
  --verbose           also show report records and boot-loader output
  --summary-only      end with the summary lines only, not the table of every VM
  --keep              keep the ISO and its inputs in the run directory
  --prebuilt DIR      skip the build: boot DIR/hypervisor with images DIR/<image>
  --sizes LIST        fleet-bench: comma-separated fleet sizes

Exit status: 0 if the run completed and every VM ended as its `expect` says,
1 if it did not, 2 for a usage error.
";

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

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Help,
    Run(RunOptions),
    Bench(RunOptions),
    FleetBench(RunOptions, Vec<u32>),
    NetBench(RunOptions),
    NicBench(RunOptions),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Run,
    Bench,
    FleetBench,
    NetBench,
    NicBench,
}

fn number<T: std::str::FromStr>(option: &str, value: &str) -> Result<T, Error> {
    value
        .parse()
        .map_err(|_| Error::new(format!("`{option}`: `{value}` is not a whole number")))
}

fn parse(args: &[&str]) -> Result<Command, Error> {
    let Some((&command, rest)) = args.split_first() else {
        return Err(Error::new("no command given (try `corral --help`)"));
    };
    let kind = match command {
        "--help" | "-h" | "help" => return Ok(Command::Help),
        "run" => Kind::Run,
        "bench" => Kind::Bench,
        "fleet-bench" => Kind::FleetBench,
        "net-bench" => Kind::NetBench,
        "nic-bench" => Kind::NicBench,
        other => {
            return Err(Error::new(format!(
                "unknown command `{other}` (try `corral --help`)"
            )));
        }
    };
    let mut opts = RunOptions::default();
    let mut manifest = None;
    let mut sizes = None;
    let mut i = 0;
    while i < rest.len() {
        let arg = rest[i];
        i += 1;
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (arg, None),
        };
        let takes_value = matches!(
            name,
            "--report" | "--cpu-model" | "--cpus" | "--timeout" | "--prebuilt" | "--sizes"
        );
        let value = if takes_value {
            match inline {
                Some(v) => v,
                None => {
                    let v = rest
                        .get(i)
                        .ok_or_else(|| Error::new(format!("`{name}` needs a value")))?;
                    i += 1;
                    v
                }
            }
        } else {
            if inline.is_some() {
                return Err(Error::new(format!("`{name}` takes no value")));
            }
            ""
        };
        match name {
            "--help" | "-h" => return Ok(Command::Help),
            "--report" => opts.report = Some(value.into()),
            "--cpu-model" => opts.cpu_model = Some(value.to_string()),
            "--cpus" if kind != Kind::FleetBench => opts.cpus = Some(number(name, value)?),
            "--timeout" => opts.timeout_secs = Some(number(name, value)?),
            "--quiet" | "-q" => opts.quiet = true,
            "--verbose" | "-v" => opts.verbose = true,
            "--summary-only" => opts.summary_only = true,
            "--keep" => opts.keep = true,
            "--prebuilt" => opts.prebuilt = Some(value.into()),
            "--sizes" if kind == Kind::FleetBench => {
                sizes = Some(fleet_bench::parse_sizes(value)?);
            }
            "--cpus" | "--sizes" => {
                return Err(Error::new(format!(
                    "`{name}` is not an option of `{command}`{}",
                    if name == "--cpus" {
                        " (it always runs on 1 emulated CPU)"
                    } else {
                        ""
                    }
                )));
            }
            _ if name.starts_with('-') && name.len() > 1 => {
                return Err(Error::new(format!(
                    "unknown option `{name}` (try `corral --help`)"
                )));
            }
            _ if manifest.is_none() && kind == Kind::Run => manifest = Some(name),
            _ => return Err(Error::new(format!("unexpected argument `{name}`"))),
        }
    }
    match kind {
        Kind::Run => {}
        Kind::Bench => {
            opts.manifest = bench::manifest_path();
            return Ok(Command::Bench(opts));
        }
        Kind::FleetBench => {
            let sizes = sizes.unwrap_or_else(|| fleet_bench::DEFAULT_SIZES.to_vec());
            return Ok(Command::FleetBench(opts, sizes));
        }
        Kind::NetBench => {
            opts.manifest = net_bench::manifest_path();
            return Ok(Command::NetBench(opts));
        }
        Kind::NicBench => {
            opts.manifest = nic_bench::manifest_path();
            return Ok(Command::NicBench(opts));
        }
    }
    opts.manifest = manifest
        .ok_or_else(|| Error::new("`run` needs a manifest file (corral run MANIFEST.toml)"))?
        .into();
    Ok(Command::Run(opts))
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
    let command = match parse(args) {
        Ok(c) => c,
        Err(e) => {
            return Invocation {
                code: EXIT_USAGE,
                error: Some(e),
                run: None,
            };
        }
    };
    match command {
        Command::Help => {
            print!("{USAGE}");
            Invocation {
                code: 0,
                error: None,
                run: None,
            }
        }
        Command::Run(opts) => finish_run(&opts, run(&opts)),
        Command::Bench(opts) => {
            let mut inv = finish_run(&opts, run(&opts));
            if inv.error.is_none()
                && let Some(result) = &inv.run
            {
                match bench::lines(&result.report).and_then(|mut lines| {
                    lines.extend(console_bench(&opts)?);
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
        Command::NetBench(opts) => repeatable_bench(
            net_bench::run_bench(&opts).map(|o| (o.lines, o.repeatable)),
            "two runs of the same frame size measured different numbers",
        ),
        Command::NicBench(opts) => repeatable_bench(
            nic_bench::run_bench(&opts).map(|o| (o.lines, o.repeatable)),
            "two runs of the same mode and frame size measured different numbers",
        ),
        Command::FleetBench(opts, sizes) => match fleet_bench::run_sizes(&opts, &sizes) {
            Ok(lines) => {
                println!();
                for line in lines {
                    println!("{line}");
                }
                Invocation {
                    code: 0,
                    error: None,
                    run: None,
                }
            }
            Err(e) => Invocation {
                code: EXIT_FAILED,
                error: Some(e),
                run: None,
            },
        },
    }
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

    fn run_opts(args: &[&str]) -> RunOptions {
        match parse(args).unwrap() {
            Command::Run(o)
            | Command::Bench(o)
            | Command::FleetBench(o, _)
            | Command::NetBench(o)
            | Command::NicBench(o) => o,
            Command::Help => panic!("help"),
        }
    }

    fn usage_error(args: &[&str]) -> String {
        parse(args).unwrap_err().to_string()
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
            }
        );
        let b = run_opts(&["bench", "--quiet"]);
        assert!(b.quiet && b.manifest.ends_with("images/manifests/bench.toml"));
    }

    #[test]
    fn fleet_bench_takes_sizes() {
        let Command::FleetBench(o, sizes) = parse(&["fleet-bench"]).unwrap() else {
            panic!("not fleet-bench");
        };
        assert_eq!(sizes, [1, 8, 64, 256]);
        assert_eq!(o.cpus, None);
        let Command::FleetBench(o, sizes) =
            parse(&["fleet-bench", "--sizes", "2,4", "--timeout=50", "--keep"]).unwrap()
        else {
            panic!("not fleet-bench");
        };
        assert_eq!(sizes, [2, 4]);
        assert_eq!((o.timeout_secs, o.keep), (Some(50), true));
        assert!(usage_error(&["fleet-bench", "--sizes", "0"]).contains("`--sizes`"));
        assert!(usage_error(&["fleet-bench", "--cpus", "2"]).contains("1 emulated CPU"));
        assert!(usage_error(&["fleet-bench", "x.toml"]).contains("unexpected argument"));
        assert!(
            usage_error(&["run", "m.toml", "--sizes", "1"])
                .contains("`--sizes` is not an option of `run`")
        );
        assert_eq!(invoke(&["fleet-bench", "--sizes=x"]).code, EXIT_USAGE);
    }

    #[test]
    fn net_bench_runs_its_manifest() {
        let o = run_opts(&[
            "net-bench",
            "--cpus",
            "5",
            "--timeout=900",
            "--report",
            "n.json",
        ]);
        assert!(o.manifest.ends_with("images/manifests/nfv-bench.toml"));
        assert_eq!((o.cpus, o.timeout_secs), (Some(5), Some(900)));
        assert_eq!(o.report, Some("n.json".into()));
        assert!(usage_error(&["net-bench", "x.toml"]).contains("unexpected argument"));
        assert!(
            usage_error(&["net-bench", "--sizes", "64"])
                .contains("`--sizes` is not an option of `net-bench`")
        );
    }

    #[test]
    fn nic_bench_runs_its_manifest() {
        let o = run_opts(&["nic-bench", "--timeout=600", "--report", "n.json"]);
        assert!(o.manifest.ends_with("images/manifests/nic-bench.toml"));
        assert_eq!(o.timeout_secs, Some(600));
        assert_eq!(o.report, Some("n.json".into()));
        assert!(usage_error(&["nic-bench", "x.toml"]).contains("unexpected argument"));
    }

    #[test]
    fn help_is_recognized() {
        assert_eq!(parse(&["--help"]).unwrap(), Command::Help);
        assert_eq!(parse(&["run", "--help"]).unwrap(), Command::Help);
        assert_eq!(invoke(&["--help"]).code, 0);
    }

    #[test]
    fn usage_errors_are_clear() {
        assert!(usage_error(&[]).contains("no command"));
        assert!(usage_error(&["fly"]).contains("unknown command `fly`"));
        assert!(usage_error(&["run"]).contains("needs a manifest"));
        assert!(usage_error(&["run", "m.toml", "--cpus"]).contains("`--cpus` needs a value"));
        assert!(usage_error(&["run", "m.toml", "--cpus", "two"]).contains("not a whole number"));
        assert!(usage_error(&["run", "m.toml", "--timeout=-1"]).contains("not a whole number"));
        assert!(usage_error(&["run", "m.toml", "--frobnicate"]).contains("unknown option"));
        assert!(usage_error(&["run", "m.toml", "--quiet=1"]).contains("takes no value"));
        assert!(usage_error(&["run", "a.toml", "b.toml"]).contains("unexpected argument `b.toml`"));
        assert!(usage_error(&["bench", "x.toml"]).contains("unexpected argument"));
        let inv = invoke(&["run"]);
        assert_eq!(inv.code, EXIT_USAGE);
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
