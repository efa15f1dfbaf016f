//! `corral nic-bench`: runs `images/manifests/nic-bench.toml` (a host UDP client, Bochs's slirp, the e1000, `echo`) and `nic-bench-burst.toml` (`pktgen` pinging slirp's gateway) in `shared` and `owned` mode with 64- and 1500-byte frames, twice each, and prints the polling core's instructions per frame on the receive and transmit halves and VM exits per frame over the NIC's steady-state window.
//!
//! The client sends one datagram at a time and waits for its echo, so
//! every pass of the NIC's polling core that does work handles exactly one
//! frame each way whatever the host's timing: the numbers are those of a
//! frame that has a pass to itself (no batching), and two runs must print
//! the same. In shared mode they are the receive and transmit halves of
//! those passes; in owned mode, where a frame's work is split over passes
//! (its completion, then the refill when the guest posts the buffer again)
//! that the guest's timing groups differently from run to run, they are
//! the frame's own steps without the pass's fixed cost, each kind of step
//! (completion, refill, send, send completion) at its average over the
//! window times the window's frames: where the window's edges cut a
//! frame's steps apart, which the host's timing decides, does not move
//! them. The emulated TSC counts instructions.
//!
//! The burst load (`pktgen mode=ping`, 32 requests in flight) has no host
//! client: slirp answers each echo request to its gateway inside the
//! emulation while the request is transmitted, so frames reach the
//! polling core several per pass, in a pattern the emulation alone
//! decides: its numbers are per-frame costs *with* batching, and repeat
//! exactly.

use crate::bench_io;
use crate::cargo_build::{target_dir, workspace_root};
use crate::error::{Error, Result};
use crate::iso;
use crate::report::{Report, hundredths, per};
use crate::run::{RunOptions, RunResult, build_once, run};
use crate::table::{self, Align};
use serde::Serialize;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Frame sizes measured (Ethernet frame without FCS), in bytes.
pub const FRAME_SIZES: [u32; 2] = [64, 1500];
/// The NIC modes measured.
pub const MODES: [&str; 2] = ["shared", "owned"];
/// The loads: a host UDP client one datagram at a time, and `pktgen`
/// pinging slirp's gateway with 32 requests in flight.
pub const LOADS: [&str; 2] = ["lockstep", "burst"];
/// Runs of each case; their numbers must be identical.
pub const RUNS: u32 = 2;
/// Bytes of Ethernet, IPv4 and UDP headers in front of a datagram.
pub const HEADERS: u32 = 14 + 20 + 8;
/// Datagrams sent once the server answered: the NIC window's warm-up and
/// its frames (32 + 256, `datapath::poll`), and some to spare.
pub const DATAGRAMS: u32 = 32 + 256 + 16;
/// The word that ends the echo server (its `quit=` argument).
pub const QUIT_WORD: &str = "nic-bench-done";
/// Targets: instructions per 64-byte frame per direction, by mode.
pub const TARGETS: [(&str, u64); 2] = [("owned", 150), ("shared", 350)];
/// The frame size the instruction targets are for.
pub const TARGET_FRAME_SIZE: u32 = 64;
/// How long the client waits for the booting server to answer.
const READY_WITHIN: Duration = Duration::from_secs(600);
/// How long the client waits for one echo once the server answered.
const ECHO_WITHIN: Duration = Duration::from_secs(30);

/// The bench manifest of this workspace.
pub fn manifest_path() -> PathBuf {
    workspace_root()
        .join("images")
        .join("manifests")
        .join("nic-bench.toml")
}

/// The burst load's manifest of this workspace.
pub fn burst_manifest_path() -> PathBuf {
    workspace_root()
        .join("images")
        .join("manifests")
        .join("nic-bench-burst.toml")
}

/// The burst manifest `template` (TOML text) with its one NIC set to
/// `mode`, `size=SIZE` added to the arguments of its `pktgen` VM, and, if
/// given, the run's wall-clock bound.
pub fn with_burst_case(
    template: &str,
    mode: &str,
    size: u32,
    timeout_secs: Option<u64>,
) -> Result<String> {
    let mut table: toml::Table =
        toml::from_str(template).map_err(|e| Error::new(e.message().trim().to_string()))?;
    let nic = match table.get_mut("nic") {
        Some(toml::Value::Array(nics)) if nics.len() == 1 => nics[0].as_table_mut(),
        _ => None,
    }
    .ok_or_else(|| Error::new("the burst manifest needs exactly one [[nic]]"))?;
    nic.insert("mode".into(), toml::Value::String(mode.into()));
    let vm = match table.get_mut("vm") {
        Some(toml::Value::Array(vms)) => vms
            .iter_mut()
            .filter_map(toml::Value::as_table_mut)
            .find(|v| v.get("image").and_then(toml::Value::as_str) == Some("pktgen")),
        _ => None,
    }
    .ok_or_else(|| Error::new("the burst manifest needs a [[vm]] with image = \"pktgen\""))?;
    let args = vm.get("args").and_then(toml::Value::as_str).unwrap_or("");
    if args
        .split_ascii_whitespace()
        .any(|w| w.starts_with("size="))
    {
        return Err(Error::new(
            "the burst manifest's pktgen arguments must not set `size=` (the bench does)",
        ));
    }
    let args = format!("{args} size={size}").trim_start().to_string();
    vm.insert("args".into(), toml::Value::String(args));
    if let Some(secs) = timeout_secs {
        bench_io::set_timeout(&mut table, secs);
    }
    toml::to_string(&table).map_err(|e| Error::new(format!("cannot write the manifest: {e}")))
}

/// The bench manifest `template` (TOML text) with its one NIC set to
/// `mode` and forwarding UDP from host port `port` to the echo port, and,
/// if given, the run's wall-clock bound.
pub fn with_case(
    template: &str,
    mode: &str,
    port: u16,
    timeout_secs: Option<u64>,
) -> Result<String> {
    let mut table: toml::Table =
        toml::from_str(template).map_err(|e| Error::new(e.message().trim().to_string()))?;
    let nics = match table.get_mut("nic") {
        Some(toml::Value::Array(nics)) if nics.len() == 1 => nics,
        _ => return Err(Error::new("the bench manifest needs exactly one [[nic]]")),
    };
    let nic = nics[0]
        .as_table_mut()
        .ok_or_else(|| Error::new("[[nic]] is not a table"))?;
    let echo_port = nic
        .get("forward")
        .and_then(toml::Value::as_array)
        .and_then(|f| f.first())
        .and_then(toml::Value::as_str)
        .and_then(|f| f.rsplit_once(':'))
        .map(|(_, guest)| guest.to_string())
        .ok_or_else(|| Error::new("[[nic]] needs a `forward = [\"udp:HOST:GUEST\"]`"))?;
    nic.insert("mode".into(), toml::Value::String(mode.into()));
    nic.insert(
        "forward".into(),
        toml::Value::Array(vec![toml::Value::String(format!("udp:{port}:{echo_port}"))]),
    );
    if let Some(secs) = timeout_secs {
        bench_io::set_timeout(&mut table, secs);
    }
    toml::to_string(&table).map_err(|e| Error::new(format!("cannot write the manifest: {e}")))
}

/// The payload of datagram `i` for `size`-byte frames: its number, then
/// filler, `size - HEADERS` bytes in all (at least the number).
pub fn payload(i: u32, size: u32) -> Vec<u8> {
    let mut p = format!("{i:08} ").into_bytes();
    let len = (size.saturating_sub(HEADERS) as usize).max(p.len());
    p.resize(len, b'a' + (i % 26) as u8);
    p
}

/// The client: waits until the server at 127.0.0.1:`port` answers a
/// probe, sends [`DATAGRAMS`] datagrams for `size`-byte frames one at a
/// time, each checked when it comes back, then the quit word. Gives up
/// when `over` says the run ended, or at the time bounds.
fn client(port: u16, size: u32, over: &mpsc::Receiver<()>) -> Result<()> {
    let fail = |what: String| Error::new(format!("client: {what}"));
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| fail(format!("bind: {e}")))?;
    let server = ("127.0.0.1", port);
    let ended = || !matches!(over.try_recv(), Err(mpsc::TryRecvError::Empty));
    let probe = b"probe";
    let mut buf = vec![0u8; 2048];
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| fail(e.to_string()))?;
    let start = Instant::now();
    loop {
        if ended() {
            return Err(fail("the run ended before the server answered".into()));
        }
        if start.elapsed() > READY_WITHIN {
            return Err(fail(format!(
                "no answer from 127.0.0.1:{port} within {} s",
                READY_WITHIN.as_secs()
            )));
        }
        sock.send_to(probe, server)
            .map_err(|e| fail(format!("send: {e}")))?;
        if let Ok((n, _)) = sock.recv_from(&mut buf)
            && &buf[..n] == probe
        {
            break;
        }
    }
    sock.set_read_timeout(Some(ECHO_WITHIN))
        .map_err(|e| fail(e.to_string()))?;
    for i in 0..DATAGRAMS {
        let msg = payload(i, size);
        sock.send_to(&msg, server)
            .map_err(|e| fail(format!("send: {e}")))?;
        loop {
            let (n, _) = sock.recv_from(&mut buf).map_err(|e| {
                fail(format!(
                    "datagram {i} of {DATAGRAMS} did not come back: {e}"
                ))
            })?;
            // Late answers to probes may come first.
            if &buf[..n] == probe {
                continue;
            }
            if buf[..n] != msg[..] {
                return Err(fail(format!(
                    "datagram {i} came back changed ({n} bytes, sent {})",
                    msg.len()
                )));
            }
            break;
        }
    }
    sock.send_to(QUIT_WORD.as_bytes(), server)
        .map_err(|e| fail(format!("send: {e}")))?;
    Ok(())
}

/// One run of one case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    /// `lockstep` or `burst`.
    pub load: String,
    /// `shared` or `owned`.
    pub mode: String,
    /// Frame size, bytes.
    pub frame_size: u32,
    /// Which run of this case (1-based).
    pub run: u32,
    /// Frames from the wire delivered in the window.
    pub rx_frames: u64,
    /// Receive-half instructions in the window.
    pub rx_busy: u64,
    /// Frames sent onto the wire in the window.
    pub tx_frames: u64,
    /// Transmit-half instructions in the window.
    pub tx_busy: u64,
    /// VM exits in the window.
    pub exits: u64,
}

impl Row {
    /// The numbers of a passed run's report.
    pub fn from_report(
        load: &str,
        mode: &str,
        frame_size: u32,
        run: u32,
        report: &Report,
    ) -> Result<Self> {
        let w = report.nic_window.ok_or_else(|| {
            Error::new("the run printed no `nic-window` record (too few frames for the warm-up?)")
        })?;
        if w.frames == 0 || w.tx_frames == 0 {
            return Err(Error::new("the NIC window holds no frames"));
        }
        Ok(Row {
            load: load.to_string(),
            mode: mode.to_string(),
            frame_size,
            run,
            rx_frames: w.frames,
            rx_busy: w.rx_busy,
            tx_frames: w.tx_frames,
            tx_busy: w.tx_busy,
            exits: w.exits,
        })
    }

    fn case(&self) -> (String, String, u32) {
        (self.load.clone(), self.mode.clone(), self.frame_size)
    }

    /// What the table prints of this run: exits per frame in hundredths,
    /// instructions per frame each way in whole instructions.
    pub fn printed(&self) -> (u64, u64, u64, u64) {
        (
            self.rx_frames,
            hundredths(self.exits, self.rx_frames).unwrap_or(u64::MAX),
            whole(self.rx_busy, self.rx_frames),
            whole(self.tx_busy, self.tx_frames),
        )
    }

    /// Whether `other` (another run of the same case) printed the same.
    pub fn same_numbers(&self, other: &Row) -> bool {
        self.printed() == other.printed()
    }
}

/// `n / d` rounded to a whole number (`u64::MAX` if `d` is 0).
pub fn whole(n: u64, d: u64) -> u64 {
    hundredths(n, d).map_or(u64::MAX, |h| (h + 50) / 100)
}

/// Each case (`load mode size`) whose runs did not all measure the same.
pub fn unrepeatable(rows: &[Row]) -> Vec<String> {
    let mut cases: Vec<String> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let differs = rows[..i]
            .iter()
            .any(|o| o.case() == r.case() && !o.same_numbers(r));
        let name = format!("{} {} {}", r.load, r.mode, r.frame_size);
        if differs && !cases.contains(&name) {
            cases.push(name);
        }
    }
    cases
}

/// The table and verdicts printed at the end.
pub fn lines(rows: &[Row], setup: &str) -> Vec<String> {
    let header = [
        "load",
        "mode",
        "frame",
        "window",
        "exits/frame",
        "rx instr/frame",
        "tx instr/frame",
        "run",
    ];
    let mut cells = vec![header.map(String::from).to_vec()];
    for r in rows {
        cells.push(vec![
            r.load.clone(),
            r.mode.clone(),
            r.frame_size.to_string(),
            r.rx_frames.to_string(),
            per(r.exits, r.rx_frames),
            whole(r.rx_busy, r.rx_frames).to_string(),
            whole(r.tx_busy, r.tx_frames).to_string(),
            r.run.to_string(),
        ]);
    }
    let mut out = vec![format!(
        "nic bench: {setup}; instructions are emulated TSC ticks of the NIC's polling core over its steady-state window; lockstep: one frame per pass each way (a UDP client on the host through slirp, one datagram at a time), burst: several per pass (pktgen pinging slirp's gateway, 32 requests in flight); shared: the halves of the passes that moved frames, owned: the frames' own steps (completion, refill, send, their doorbells), without the pass's fixed cost, each kind at its average over the window; in whole instructions: the lockstep window's sums differ between runs by a few 5-instruction waits (at most 50 in 300,000) that the host's timing moves in and out of it"
    )];
    let mut align = vec![Align::Left, Align::Left];
    align.extend([Align::Right; 6]);
    out.extend(table::lines(&cells, &align));
    let bad = unrepeatable(rows);
    out.push(if bad.is_empty() {
        format!("repeatable: yes (the {RUNS} runs of each case printed the same numbers)")
    } else {
        format!("repeatable: NO (runs differ for {})", bad.join(", "))
    });
    out.extend(bench_io::exits_verdict(
        rows.iter().map(|r| (r.exits, r.rx_frames)),
        "frame",
    ));
    for (load, (mode, target)) in LOADS
        .iter()
        .flat_map(|l| TARGETS.iter().map(move |t| (*l, *t)))
    {
        let worst = rows
            .iter()
            .filter(|r| r.load == load && r.mode == mode && r.frame_size == TARGET_FRAME_SIZE)
            .flat_map(|r| {
                [
                    hundredths(r.rx_busy, r.rx_frames),
                    hundredths(r.tx_busy, r.tx_frames),
                ]
            })
            .flatten()
            .max();
        if let Some(worst) = worst {
            out.push(format!(
                "target {mode} <= {target} instructions per {TARGET_FRAME_SIZE}-byte frame per direction, {load} load: {} (most: {}.{:02})",
                if worst <= target * 100 { "met" } else { "NOT met" },
                worst / 100,
                worst % 100
            ));
        }
    }
    out
}

/// What the bench measured.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The lines to print.
    pub lines: Vec<String>,
    /// Every run of each case measured the same.
    pub repeatable: bool,
}

/// A UDP port on 127.0.0.1 nobody uses right now, for the forward.
fn free_port() -> Result<u16> {
    let sock = UdpSocket::bind("127.0.0.1:0")
        .map_err(|e| Error::new(format!("cannot find a free UDP port: {e}")))?;
    sock.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::new(format!("cannot find a free UDP port: {e}")))
}

/// One run: the emulator in a thread, the client here.
fn one_run(opts: &RunOptions, size: u32, port: u16) -> (RunResult, Result<()>) {
    let (done_tx, done) = mpsc::channel();
    let opts = opts.clone();
    let runner = std::thread::spawn(move || {
        let result = run(&opts);
        let _ = done_tx.send(());
        result
    });
    let client = client(port, size, &done);
    match runner.join() {
        Ok(result) => (result, client),
        Err(_) => (
            RunResult {
                report: Report::unread("nic-bench", &Error::new("the run's thread panicked")),
                error: Some(Error::new("the run's thread panicked")),
            },
            client,
        ),
    }
}

/// Runs every mode and frame size [`RUNS`] times from one build and
/// returns what to print. `opts` carries the shared options.
pub fn run_bench(opts: &RunOptions) -> Result<Outcome> {
    let template_path = &opts.manifest;
    let template = bench_io::read_template(template_path)?;
    let root = workspace_root();
    let prebuilt = build_once(opts, "nic bench")?;
    let dir = iso::staging_dir(&target_dir(&root).join("runs"), "nic-bench")?;
    println!("nic bench: manifests in {}", dir.display());
    let mut rows = Vec::new();
    let (mut cpu_model, mut cpus) = (String::new(), 0);
    let burst_path = burst_manifest_path();
    let burst = bench_io::read_template(&burst_path)?;
    for load in LOADS {
        for mode in MODES {
            for size in FRAME_SIZES {
                for n in 1..=RUNS {
                    let what = format!("{load} load, {mode} mode, {size}-byte frames, run {n}");
                    let path = dir.join(format!("nic-{load}-{mode}-{size}-{n}.toml"));
                    let one = RunOptions {
                        manifest: path.clone(),
                        report: None,
                        quiet: !opts.verbose,
                        summary_only: true,
                        prebuilt: Some(prebuilt.clone()),
                        ..opts.clone()
                    };
                    let report = if load == "burst" {
                        let text = with_burst_case(&burst, mode, size, opts.timeout_secs)
                            .map_err(|e| Error::new(format!("{}: {e}", burst_path.display())))?;
                        bench_io::write(&path, &text)?;
                        println!("nic bench: {what} of {RUNS} (pktgen pinging slirp's gateway)");
                        bench_io::passed(run(&one), &what)?
                    } else {
                        let port = free_port()?;
                        let text = with_case(&template, mode, port, opts.timeout_secs)
                            .map_err(|e| Error::new(format!("{}: {e}", template_path.display())))?;
                        bench_io::write(&path, &text)?;
                        println!(
                            "nic bench: {what} of {RUNS} ({DATAGRAMS} datagrams through 127.0.0.1:{port})"
                        );
                        let (result, client) = one_run(&one, size, port);
                        // The run's own error first: a client that gave up
                        // because the run failed says less.
                        bench_io::passed(result, &what).and_then(|r| {
                            client.map_err(|e| Error::new(format!("{what}: {e}")))?;
                            Ok(r)
                        })?
                    };
                    rows.push(
                        Row::from_report(load, mode, size, n, &report)
                            .map_err(|e| Error::new(format!("{what}: {e}")))?,
                    );
                    cpu_model.clone_from(&report.cpu_model);
                    cpus = report.cpus;
                }
            }
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

#[cfg(test)]
mod tests;
