//! `corral net-bench`: runs the NFV pipeline of `images/manifests/nfv-bench.toml`
//! once per frame size and run, with the generator's frame size rewritten
//! in its arguments, and prints VM exits per packet in the steady-state
//! window and polling instructions per packet on each link. The emulated
//! TSC counts instructions, so every run of a size must give the same
//! numbers; the bench fails if two do not.

use crate::bench_io;
use crate::cargo_build::{target_dir, workspace_root};
use crate::error::{Error, Result};
use crate::iso;
use crate::report::{Report, hundredths, per};
use crate::run::{RunOptions, build_once, run};
use crate::table::{self, Align};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Frame sizes measured, in bytes.
pub const FRAME_SIZES: [u32; 2] = [64, 1500];
/// Runs of each frame size; their numbers must be identical.
pub const RUNS: u32 = 2;
/// The image whose arguments get the frame size.
pub const GENERATOR_IMAGE: &str = "pktgen";
/// The generator's argument that sets the frame size (`size=64`).
pub const SIZE_KEY: &str = "size";
/// The generator's metric: data frames it sent.
pub const SENT_METRIC: &str = "sent";
/// Target: polling instructions per 64-byte packet on each link, below this.
pub const TARGET_INSTRUCTIONS: u64 = 300;
/// The frame size the instruction target is for.
pub const TARGET_FRAME_SIZE: u32 = 64;
/// The packet hook the hooked runs put on the first link's a→b direction:
/// an 11-instruction XDP program (`images/hooks/pass_ipv4.bpf.c`).
pub const HOOK_FILE: &str = "pass_ipv4.bpf.c";
/// Its name in the hooked runs' manifests, compiled by the JIT.
pub const HOOK_NAME: &str = "pass-ipv4";
/// Its name in the runs where the interpreter runs it.
pub const HOOK_NAME_INTERPRETED: &str = "pass-ipv4-interp";
/// Target: instructions a hook run by the interpreter adds per 64-byte
/// packet on its link, at most.
pub const TARGET_HOOK_ADDED: u64 = 300;
/// Target: instructions a hook the JIT compiled adds per 64-byte packet
/// on its link, at most.
pub const TARGET_JIT_ADDED: u64 = 60;

/// The bench manifest of this workspace.
pub fn manifest_path() -> PathBuf {
    workspace_root()
        .join("images")
        .join("manifests")
        .join("nfv-bench.toml")
}

/// `args` with its `size=` word set to `size` (added if it has none).
fn with_size_word(args: &str, size: u32) -> String {
    let word = format!("{SIZE_KEY}={size}");
    let mut found = false;
    let mut words: Vec<String> = args
        .split_ascii_whitespace()
        .map(|w| match w.split_once('=') {
            Some((key, _)) if key == SIZE_KEY => {
                found = true;
                word.clone()
            }
            _ => w.to_string(),
        })
        .collect();
    if !found {
        words.push(word);
    }
    words.join(" ")
}

/// The hook source the hooked runs use.
pub fn hook_source() -> PathBuf {
    workspace_root()
        .join("images")
        .join("hooks")
        .join(HOOK_FILE)
}

/// Manifest text `text` with a packet hook `name` (C source `source`)
/// on its first link's direction from `a` to `b`, run by the interpreter
/// if `interpret` (else compiled).
pub fn with_hook(text: &str, name: &str, source: &Path, interpret: bool) -> Result<String> {
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| Error::new(e.message().trim().to_string()))?;
    let link = table
        .get("link")
        .and_then(toml::Value::as_array)
        .and_then(|l| l.first())
        .and_then(toml::Value::as_table)
        .ok_or_else(|| Error::new("no [[link]] to put the hook on"))?;
    let end = |k: &str| {
        link.get(k)
            .and_then(toml::Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Error::new(format!("the first [[link]] has no `{k}`")))
    };
    let attach = format!("link:{}->{}", end("a")?, end("b")?);
    let mut hook = toml::Table::new();
    for (k, v) in [
        ("name", name.to_string()),
        ("kind", "packet".to_string()),
        ("attach", attach),
        ("source", source.display().to_string()),
    ] {
        hook.insert(k.to_string(), toml::Value::String(v));
    }
    if interpret {
        hook.insert(
            "engine".to_string(),
            toml::Value::String("interpreter".to_string()),
        );
    }
    table.insert(
        "hook".to_string(),
        toml::Value::Array(vec![toml::Value::Table(hook)]),
    );
    toml::to_string(&table).map_err(|e| Error::new(format!("cannot write the manifest: {e}")))
}

/// The bench manifest `template` (TOML text) with every generator VM's
/// frame size set to `size` and, if given, the run's wall-clock bound set.
pub fn with_frame_size(template: &str, size: u32, timeout_secs: Option<u64>) -> Result<String> {
    let mut table: toml::Table =
        toml::from_str(template).map_err(|e| Error::new(e.message().trim().to_string()))?;
    let mut generators = 0;
    if let Some(toml::Value::Array(vms)) = table.get_mut("vm") {
        for vm in vms.iter_mut().filter_map(toml::Value::as_table_mut) {
            if vm.get("image").and_then(toml::Value::as_str) != Some(GENERATOR_IMAGE) {
                continue;
            }
            let args = vm.get("args").and_then(toml::Value::as_str).unwrap_or("");
            let args = with_size_word(args, size);
            vm.insert("args".to_string(), toml::Value::String(args));
            generators += 1;
        }
    }
    if generators == 0 {
        return Err(Error::new(format!(
            "no [[vm]] with image `{GENERATOR_IMAGE}` to give the frame size to"
        )));
    }
    if let Some(secs) = timeout_secs {
        bench_io::set_timeout(&mut table, secs);
    }
    toml::to_string(&table).map_err(|e| Error::new(format!("cannot write the manifest: {e}")))
}

/// What one link cost over a whole run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LinkCost {
    /// `a <-> b`.
    pub link: String,
    /// Frames it carried, both directions.
    pub frames: u64,
    /// Polling-core instructions spent moving them.
    pub busy: u64,
}

/// One run of one frame size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    /// Frame size asked of the generator, in bytes.
    pub frame_size: u32,
    /// Which run of this size (1-based).
    pub run: u32,
    /// Data frames the generator sent (its `sent` metric).
    pub packets: u64,
    /// Frames in the steady-state window.
    pub window_frames: u64,
    /// VM exits of all VMs in the window.
    pub window_exits: u64,
    /// Polling instructions of all links in the window.
    pub window_busy: u64,
    /// Each link's cost over the run, in manifest order.
    pub links: Vec<LinkCost>,
    /// The hook on the first link's a→b direction, if the run had one:
    /// its name and the interpreter instructions it executed per run.
    pub hook: Option<(String, String)>,
}

impl Row {
    /// The numbers of a passed run's report.
    pub fn from_report(frame_size: u32, run: u32, report: &Report) -> Result<Self> {
        let window = report.window.ok_or_else(|| {
            Error::new("the run printed no `window` record (too few frames for the warm-up?)")
        })?;
        if window.frames == 0 {
            return Err(Error::new("the window holds no frames"));
        }
        let mut links = Vec::with_capacity(report.links.len());
        for l in &report.links {
            let (Some(busy), Some(_), Some(_)) = (l.busy, l.ab, l.ba) else {
                return Err(Error::new(format!(
                    "link {} ({} <-> {}) printed no `link` record",
                    l.link, l.a, l.b
                )));
            };
            links.push(LinkCost {
                link: format!("{} <-> {}", l.a, l.b),
                frames: l.frames(),
                busy,
            });
        }
        if report.links.is_empty() {
            return Err(Error::new("the bench manifest has no links"));
        }
        let packets = report
            .vms
            .iter()
            .filter(|v| v.image == GENERATOR_IMAGE)
            .map(|v| {
                v.metrics.get(SENT_METRIC).copied().ok_or_else(|| {
                    Error::new(format!(
                        "VM `{}` reported no `{SENT_METRIC}` metric",
                        v.name
                    ))
                })
            })
            .sum::<Result<u64>>()?;
        let hook = report
            .hooks
            .first()
            .map(|h| (h.name.clone(), per(h.instructions, h.runs)));
        Ok(Row {
            frame_size,
            run,
            packets,
            window_frames: window.frames,
            window_exits: window.exits,
            window_busy: window.busy,
            links,
            hook,
        })
    }

    /// Whether `other` (another run of the same size) measured the same.
    pub fn same_numbers(&self, other: &Row) -> bool {
        Row {
            run: 0,
            ..self.clone()
        } == Row {
            run: 0,
            ..other.clone()
        }
    }
}

/// Each frame size whose runs did not all measure the same.
pub fn unrepeatable(rows: &[Row]) -> Vec<u32> {
    let mut sizes: Vec<u32> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let differs = rows[..i].iter().any(|o| {
            (o.frame_size, o.hook.as_ref().map(|h| &h.0))
                == (r.frame_size, r.hook.as_ref().map(|h| &h.0))
                && !o.same_numbers(r)
        });
        if differs && !sizes.contains(&r.frame_size) {
            sizes.push(r.frame_size);
        }
    }
    sizes
}

/// The table and verdicts printed at the end.
pub fn lines(rows: &[Row], setup: &str) -> Vec<String> {
    let mut header = vec![
        "frame".to_string(),
        "packets".to_string(),
        "window".to_string(),
        "exits/packet".to_string(),
    ];
    if let Some(first) = rows.first() {
        header.extend(
            first
                .links
                .iter()
                .map(|l| format!("{} instr/packet", l.link)),
        );
    }
    header.push("run".to_string());
    let mut cells = vec![header];
    for r in rows {
        let frame = match &r.hook {
            Some((name, _)) => format!("{} +{name}", r.frame_size),
            None => r.frame_size.to_string(),
        };
        let mut row = vec![
            frame,
            r.packets.to_string(),
            r.window_frames.to_string(),
            per(r.window_exits, r.window_frames),
        ];
        row.extend(r.links.iter().map(|l| per(l.busy, l.frames)));
        row.push(r.run.to_string());
        cells.push(row);
    }
    let columns = cells.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = vec![format!(
        "net bench: {setup}; instructions are emulated TSC ticks; exits/packet over the steady-state window, instr/packet = polling instructions / frames the link moved over the run"
    )];
    out.extend(table::lines(&cells, &vec![Align::Right; columns]));
    let bad = unrepeatable(rows);
    out.push(if bad.is_empty() {
        format!("repeatable: yes (the {RUNS} runs of each frame size measured exactly the same)")
    } else {
        format!(
            "repeatable: NO (runs differ for frame size {})",
            bad.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    // The data path's target, judged on the runs without a hook (a hook
    // slower than the guests' pace makes them wait; the table shows it).
    out.extend(bench_io::exits_verdict(
        rows.iter()
            .filter(|r| r.hook.is_none())
            .map(|r| (r.window_exits, r.window_frames)),
        "packet",
    ));
    let worst_link = rows
        .iter()
        .filter(|r| r.frame_size == TARGET_FRAME_SIZE && r.hook.is_none())
        .flat_map(|r| &r.links)
        .filter_map(|l| hundredths(l.busy, l.frames))
        .max();
    if let Some(worst) = worst_link {
        out.push(format!(
            "target < {TARGET_INSTRUCTIONS} instructions per {TARGET_FRAME_SIZE}-byte packet per link: {} (most: {}.{:02})",
            if worst < TARGET_INSTRUCTIONS * 100 {
                "met"
            } else {
                "NOT met"
            },
            worst / 100,
            worst % 100
        ));
    }
    out.extend(hook_lines(rows));
    out
}

/// The hooked runs' verdict: what the hook added per packet on its link
/// (link 0), against the unhooked runs of the same frame size.
fn hook_lines(rows: &[Row]) -> Vec<String> {
    let link0 = |r: &Row| r.links.first().and_then(|l| hundredths(l.busy, l.frames));
    let mut out = Vec::new();
    for hooked in rows.iter().filter(|r| r.hook.is_some() && r.run == 1) {
        let plain = rows
            .iter()
            .find(|r| r.hook.is_none() && r.frame_size == hooked.frame_size);
        let (Some((name, per_run)), Some(with), Some(without)) =
            (hooked.hook.as_ref(), link0(hooked), plain.and_then(link0))
        else {
            continue;
        };
        let added = with.saturating_sub(without);
        let link = hooked.links.first().map_or("", |l| l.link.as_str());
        let (engine, goal) = if name == HOOK_NAME_INTERPRETED {
            ("interpreter", TARGET_HOOK_ADDED)
        } else {
            ("JIT", TARGET_JIT_ADDED)
        };
        let target = if hooked.frame_size == TARGET_FRAME_SIZE {
            format!(
                "; target {engine} <= {goal} added: {}",
                if added <= goal * 100 {
                    "met"
                } else {
                    "NOT met"
                }
            )
        } else {
            String::new()
        };
        out.push(format!(
            "hook {name} ({engine}) on {link} ({per_run} eBPF instructions per run): +{}.{:02} instructions per {}-byte packet on its link{target}",
            added / 100,
            added % 100,
            hooked.frame_size
        ));
    }
    out
}

/// What the bench measured.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The lines to print.
    pub lines: Vec<String>,
    /// Every run of each size measured the same.
    pub repeatable: bool,
}

/// Runs every frame size [`RUNS`] times from one build and returns what to
/// print. `opts` carries the shared options (`--timeout`, `--cpu-model`,
/// `--cpus`, `--prebuilt`, `--keep`, `--verbose`, `--report`).
pub fn run_bench(opts: &RunOptions) -> Result<Outcome> {
    let template_path = &opts.manifest;
    let template = bench_io::read_template(template_path)?;
    let root = workspace_root();
    let prebuilt = build_once(opts, "net bench")?;
    let dir = iso::staging_dir(&target_dir(&root).join("runs"), "net-bench")?;
    println!("net bench: manifests in {}", dir.display());
    let mut rows = Vec::new();
    let (mut cpu_model, mut cpus) = (String::new(), 0);
    for size in FRAME_SIZES {
        let text = with_frame_size(&template, size, opts.timeout_secs)
            .map_err(|e| Error::new(format!("{}: {e}", template_path.display())))?;
        let path = dir.join(format!("nfv-{size}.toml"));
        bench_io::write(&path, &text)?;
        for n in 1..=RUNS {
            println!("net bench: {size}-byte frames, run {n} of {RUNS}");
            let (row, report) = measured(opts, &prebuilt, &path, (size, n), "")?;
            rows.push(row);
            cpu_model.clone_from(&report.cpu_model);
            cpus = report.cpus;
        }
    }
    // The same pipeline with a packet hook on link 0's a→b direction, at
    // the target frame size: compiled, then interpreted.
    for (name, interpret) in [(HOOK_NAME, false), (HOOK_NAME_INTERPRETED, true)] {
        let hooked = with_frame_size(&template, TARGET_FRAME_SIZE, opts.timeout_secs)
            .and_then(|text| with_hook(&text, name, &hook_source(), interpret))
            .map_err(|e| Error::new(format!("{}: {e}", template_path.display())))?;
        let path = dir.join(format!("nfv-{TARGET_FRAME_SIZE}-{name}.toml"));
        bench_io::write(&path, &hooked)?;
        for n in 1..=RUNS {
            println!(
                "net bench: {TARGET_FRAME_SIZE}-byte frames with hook {name} on link 0, run {n} of {RUNS}"
            );
            let (row, _) = measured(
                opts,
                &prebuilt,
                &path,
                (TARGET_FRAME_SIZE, n),
                " with the hook",
            )?;
            rows.push(row);
        }
    }
    let repeatable = unrepeatable(&rows).is_empty();
    let setup = bench_io::finish(
        opts.report.as_deref(),
        template_path,
        (&cpu_model, cpus),
        &rows,
        repeatable,
    )?;
    Ok(Outcome {
        lines: lines(&rows, &setup),
        repeatable,
    })
}

/// Runs the manifest at `path` once (run `n` of `size`-byte frames,
/// `note` saying what else is special) from the build in `prebuilt`; its
/// row and report.
fn measured(
    opts: &RunOptions,
    prebuilt: &Path,
    path: &Path,
    (size, n): (u32, u32),
    note: &str,
) -> Result<(Row, Report)> {
    let one = RunOptions {
        manifest: path.to_path_buf(),
        report: None,
        quiet: !opts.verbose,
        summary_only: true,
        prebuilt: Some(prebuilt.to_path_buf()),
        ..opts.clone()
    };
    let what = format!("{size}-byte frames{note}, run {n}");
    let report = bench_io::passed(run(&one), &what)?;
    let row = Row::from_report(size, n, &report).map_err(|e| Error::new(format!("{what}: {e}")))?;
    Ok((row, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::RunOutcome;
    use crate::toml_manifest::parse;
    use vmm_abi::report::parse_line;

    const TEMPLATE: &str = "[run]\ncpus = 3\n\
        [[vm]]\nname = \"gen\"\nimage = \"pktgen\"\nnet = 1\ncores = [1]\nargs = \"count=100 size=64 rate=0\"\n\
        [[vm]]\nname = \"sink\"\nimage = \"sink\"\nnet = 1\ncores = [2]\n\
        [[link]]\na = \"gen.0\"\nb = \"sink.0\"\n";

    fn images() -> Vec<String> {
        vec!["pktgen".to_string(), "sink".to_string()]
    }

    #[test]
    fn the_size_is_rewritten_or_added() {
        assert_eq!(
            with_size_word("count=1 size=64 x", 1500),
            "count=1 size=1500 x"
        );
        assert_eq!(with_size_word("", 64), "size=64");
        assert_eq!(with_size_word("sizes=3", 64), "sizes=3 size=64");
        let text = with_frame_size(TEMPLATE, 1500, Some(77)).unwrap();
        let m = parse(&text, "g.toml", &images()).unwrap();
        assert_eq!(m.vms[0].args, "count=100 size=1500 rate=0");
        assert_eq!(m.vms[1].args, "");
        assert_eq!(m.run.timeout_secs, 77);
        assert_eq!(m.run.cpus, 3);
        assert_eq!(m.links.len(), 1);
        let text = with_frame_size(TEMPLATE, 64, None).unwrap();
        assert_eq!(
            parse(&text, "g.toml", &images()).unwrap().run.timeout_secs,
            120
        );
    }

    #[test]
    fn templates_without_a_generator_are_refused() {
        let e = with_frame_size("[[vm]]\nname = \"a\"\nimage = \"hello\"\n", 64, None);
        assert!(e.unwrap_err().to_string().contains("image `pktgen`"));
        assert!(with_frame_size("[[vm]\n", 64, None).is_err());
    }

    const SENT: &str = "@corral metric vm=0 name=sent value=1000";

    fn report(records: &[&str]) -> Report {
        let m = parse(TEMPLATE, "g.toml", &images()).unwrap();
        let mut outcome = RunOutcome::for_manifest(&m);
        for line in records {
            outcome.apply(&parse_line(line).unwrap().unwrap());
        }
        Report::new(&m, "corei7_icelake_u", 3, &outcome)
    }

    const LINK: &str = "@corral link link=0 a=gen.0 b=sink.0 core=0 ab_frames=1000 ab_bytes=64000 ab_drop_peer=0 ab_drop_size=0 ab_drop_stalled=0 ab_stalls=0 ba_frames=2 ba_bytes=120 ba_drop_peer=0 ba_drop_size=0 ba_drop_stalled=0 ba_stalls=0 busy=255000";
    const WINDOW: &str = "@corral window frames=500 exits=0 busy=120000";

    #[test]
    fn rows_come_from_reports() {
        let r = Row::from_report(64, 1, &report(&[SENT, LINK, WINDOW])).unwrap();
        assert_eq!(
            r,
            Row {
                frame_size: 64,
                run: 1,
                packets: 1000,
                window_frames: 500,
                window_exits: 0,
                window_busy: 120_000,
                links: vec![LinkCost {
                    link: "gen.0 <-> sink.0".into(),
                    frames: 1002,
                    busy: 255_000
                }],
                hook: None,
            }
        );
        let e = Row::from_report(64, 1, &report(&[LINK, WINDOW])).unwrap_err();
        assert!(
            e.to_string().contains("VM `gen` reported no `sent` metric"),
            "{e}"
        );
        let e = Row::from_report(64, 1, &report(&[SENT, LINK])).unwrap_err();
        assert!(e.to_string().contains("no `window` record"), "{e}");
        let e = Row::from_report(64, 1, &report(&[SENT, WINDOW])).unwrap_err();
        assert!(
            e.to_string()
                .contains("link 0 (gen.0 <-> sink.0) printed no `link` record"),
            "{e}"
        );
        let e = Row::from_report(
            64,
            1,
            &report(&[SENT, LINK, "@corral window frames=0 exits=0 busy=0"]),
        );
        assert!(e.unwrap_err().to_string().contains("no frames"));
    }

    fn row(size: u32, run: u32, exits: u64, busy: u64) -> Row {
        Row {
            frame_size: size,
            run,
            packets: 1000,
            window_frames: 500,
            window_exits: exits,
            window_busy: 0,
            links: vec![LinkCost {
                link: "gen.0 <-> sink.0".into(),
                frames: 1000,
                busy,
            }],
            hook: None,
        }
    }

    #[test]
    fn a_hooked_run_is_compared_with_the_plain_one() {
        let hooked = |run, busy| Row {
            hook: Some(("pass-ipv4".to_string(), "9.00".to_string())),
            ..row(64, run, 0, busy)
        };
        let interpreted = |run, busy| Row {
            hook: Some((HOOK_NAME_INTERPRETED.to_string(), "9.00".to_string())),
            // A hook slower than the guests' pace makes them wait.
            ..row(64, run, 7, busy)
        };
        let rows = [
            row(64, 1, 0, 250_000),
            row(64, 2, 0, 250_000),
            hooked(1, 290_500),
            hooked(2, 290_500),
            interpreted(1, 600_000),
            interpreted(2, 600_000),
        ];
        assert!(unrepeatable(&rows).is_empty(), "hooked and plain are apart");
        let out = lines(&rows, "x");
        assert!(
            out[4].trim_start().starts_with("64 +pass-ipv4 "),
            "{out:#?}"
        );
        let n = out.len();
        assert_eq!(
            out[n - 2],
            "hook pass-ipv4 (JIT) on gen.0 <-> sink.0 (9.00 eBPF instructions per run): +40.50 instructions per 64-byte packet on its link; target JIT <= 60 added: met"
        );
        assert_eq!(
            out[n - 1],
            "hook pass-ipv4-interp (interpreter) on gen.0 <-> sink.0 (9.00 eBPF instructions per run): +350.00 instructions per 64-byte packet on its link; target interpreter <= 300 added: NOT met"
        );
        // The plain targets are judged on plain runs only.
        assert!(
            out.iter()
                .any(|l| l.ends_with("per link: met (most: 250.00)")),
            "{out:#?}"
        );
        assert!(
            out.iter()
                .any(|l| l.starts_with("target 0.00 VM exits per packet: met (most: 0.00")),
            "{out:#?}"
        );
        let differ = [hooked(1, 290_500), hooked(2, 290_501)];
        assert_eq!(unrepeatable(&differ), [64]);
    }

    #[test]
    fn the_hook_goes_on_the_first_links_first_direction() {
        let text = with_hook(TEMPLATE, "h", Path::new("/x/pass.bpf.c"), false).unwrap();
        let m: toml::Table = toml::from_str(&text).unwrap();
        let hook = &m["hook"].as_array().unwrap()[0];
        assert_eq!(hook["attach"].as_str(), Some("link:gen.0->sink.0"));
        assert_eq!(hook["kind"].as_str(), Some("packet"));
        assert_eq!(hook["source"].as_str(), Some("/x/pass.bpf.c"));
        assert!(hook.get("engine").is_none(), "compiled by default");
        let text = with_hook(TEMPLATE, "h", Path::new("/x/pass.bpf.c"), true).unwrap();
        let m: toml::Table = toml::from_str(&text).unwrap();
        let hook = &m["hook"].as_array().unwrap()[0];
        assert_eq!(hook["engine"].as_str(), Some("interpreter"));
        assert!(with_hook("[[vm]]\nname = \"a\"\n", "h", Path::new("x"), false).is_err());
        assert!(hook_source().exists());
    }

    #[test]
    fn runs_must_agree() {
        let same = [row(64, 1, 0, 250_000), row(64, 2, 0, 250_000)];
        assert!(unrepeatable(&same).is_empty());
        let differ = [
            row(64, 1, 0, 250_000),
            row(64, 2, 0, 250_001),
            row(1500, 1, 0, 9),
            row(1500, 2, 1, 9),
        ];
        assert_eq!(unrepeatable(&differ), [64, 1500]);
        let out = lines(&differ, "x");
        assert!(
            out.iter()
                .any(|l| l == "repeatable: NO (runs differ for frame size 64, 1500)")
        );
    }

    #[test]
    fn the_table_and_verdicts() {
        let rows = [
            row(64, 1, 0, 250_004),
            row(64, 2, 0, 250_004),
            row(1500, 1, 0, 400_000),
            row(1500, 2, 0, 400_000),
        ];
        let out = lines(&rows, "nfv-bench.toml on corei7_icelake_u x3");
        assert!(out[0].starts_with("net bench: nfv-bench.toml on corei7_icelake_u x3; "));
        assert_eq!(
            out[1],
            "frame  packets  window  exits/packet  gen.0 <-> sink.0 instr/packet  run"
        );
        assert_eq!(
            out[2],
            "   64     1000     500          0.00                         250.00    1"
        );
        assert_eq!(
            out[5],
            " 1500     1000     500          0.00                         400.00    2"
        );
        assert_eq!(
            &out[6..],
            [
                "repeatable: yes (the 2 runs of each frame size measured exactly the same)",
                "target 0.00 VM exits per packet: met (most: 0.00, 0 exits in 500 packets)",
                "target < 300 instructions per 64-byte packet per link: met (most: 250.00)",
            ]
        );
        let out = lines(&[row(64, 1, 5, 300_000)], "x");
        assert_eq!(
            &out[3..],
            [
                "repeatable: yes (the 2 runs of each frame size measured exactly the same)",
                "target 0.00 VM exits per packet: NOT met (most: 0.01, 5 exits in 500 packets)",
                "target < 300 instructions per 64-byte packet per link: NOT met (most: 300.00)",
            ]
        );
    }

    #[test]
    fn the_bench_manifest_takes_every_size() {
        let path = manifest_path();
        assert!(path.ends_with("images/manifests/nfv-bench.toml"));
        let root = workspace_root();
        let known = crate::cargo_build::known_images(&root).unwrap();
        let template = std::fs::read_to_string(&path).unwrap();
        for size in FRAME_SIZES {
            let text = with_frame_size(&template, size, None).unwrap();
            let m = parse(&text, "nfv-bench.toml", &known).unwrap();
            m.encode().unwrap();
            m.check_cores(m.run.cpus).unwrap();
            let generator = m.vms.iter().find(|v| v.image == GENERATOR_IMAGE).unwrap();
            assert!(
                generator
                    .args
                    .split_ascii_whitespace()
                    .any(|w| w == format!("size={size}")),
                "{}",
                generator.args
            );
            assert!(!m.links.is_empty());
        }
    }
}
