//! A service run driven the way a user drives it: the real `corral` binary brings a host up in Bochs, lists, stops and restarts VMs, hostile bytes are written to its control line, and `corral down` writes a report that accounts for every VM.

use boot::service::{self, Answer, HostDir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use vmm_abi::control::{self, Message};

fn corral(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(args)
        .output()
        .expect("cannot start corral");
    eprintln!(
        "$ corral {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Ends the host if the test stops before `down`.
struct Host(String);

impl Drop for Host {
    fn drop(&mut self) {
        let Ok(h) = HostDir::named(&self.0) else {
            return;
        };
        if h.running() {
            let _ = corral(&["down", "--host", &self.0]);
        }
    }
}

/// `corral stats --prometheus --listen` running beside the test.
struct Scraped {
    child: std::process::Child,
    url: String,
}

impl Scraped {
    /// Starts it on a free loopback port; its URL from its first line.
    fn start(host: &str) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
            .args([
                "stats",
                "--host",
                host,
                "--prometheus",
                "--listen",
                "127.0.0.1:0",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("cannot start corral stats --listen");
        let mut line = String::new();
        let out = child.stdout.take().expect("its stdout");
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("its first line");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_string();
        Scraped { child, url }
    }

    /// Whether it has ended by itself within 10 s.
    fn ended(&mut self) -> bool {
        for _ in 0..100 {
            if self.child.try_wait().ok().flatten().is_some() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Scraped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl` GET of `url`: (status code, body).
fn get(curl: &Path, url: &str) -> (u16, String) {
    let out = Command::new(curl)
        .args(["-s", "-m", "10", "-w", "\n%{http_code}", url])
        .output()
        .expect("cannot run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/manifests/service.toml")
}

fn frame(msg: &Message<'_>, seq: u32) -> Vec<u8> {
    let mut out = vec![0u8; control::MAX_FRAME];
    let n = control::encode(msg, seq, &mut out).unwrap();
    out.truncate(n);
    out
}

/// Writes `bytes` to the control line; expects `n` errors back, each
/// containing its part of `texts`.
fn hostile(host: &HostDir, bytes: &[u8], texts: &[&str]) -> u32 {
    let (next, got) = service::send_raw(host, bytes, texts.len() as u32).unwrap();
    assert_eq!(got.len(), texts.len(), "{got:?}");
    for ((_, answer), want) in got.iter().zip(texts) {
        assert!(
            matches!(answer, Answer::Error(t) if t.contains(want)),
            "wanted an error containing {want:?}, got {answer:?}"
        );
    }
    next
}

/// The host's free memory, from `corral stats --json`.
fn free_memory(host: &str) -> u64 {
    let out = corral(&["stats", "--host", host, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["free_memory"].as_u64().unwrap()
}

/// Waits (at most 60 s) until `vm` has `status` after `restarts` restarts.
fn wait_for(host: &str, vm: &str, status: &str, restarts: u64) {
    for _ in 0..600 {
        let out = corral(&["ps", "--host", host, "--json"]);
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let row = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == vm)
            .unwrap()
            .clone();
        if row["status"] == status && row["restarts"] == restarts {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{vm} did not become {status} after {restarts} restarts within 60 s");
}

#[test]
fn a_service_run_is_managed_at_runtime() {
    let name = format!("svc{}", std::process::id());
    let guard = Host(name.clone());
    let m = manifest();
    let up = corral(&[
        "up",
        m.to_str().unwrap(),
        "--host",
        &name,
        "--timeout",
        "900",
    ]);
    assert!(up.status.success(), "up failed: {}", stderr(&up));
    assert!(stdout(&up).contains(&format!("host `{name}` is up with 6 VMs")));
    let host = HostDir::named(&name).unwrap();

    // A second `up` of the same host is refused.
    let again = corral(&["up", m.to_str().unwrap(), "--host", &name]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("is already up"));

    // Events from here on: the hypervisor streams them once asked (then
    // `corral events --all` shows every one since, until the host is
    // down).
    service::watch(&host).unwrap();
    let events_out = host.dir.join("events-test.jsonl");
    let mut watcher = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["events", "--json", "--all", "--host", &name])
        .stdout(std::fs::File::create(&events_out).unwrap())
        .spawn()
        .expect("cannot start corral events");

    let ps = corral(&["ps", "--host", &name, "--json"]);
    assert!(ps.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&ps.stdout).unwrap();
    let names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web-0", "web-1", "web-2", "idle", "once", "big"]);
    for r in &rows.as_array().unwrap()[..3] {
        assert_eq!(r["status"], "running");
        assert_eq!(r["core"], 1, "core 0 serves the control line");
    }

    // A VM's run that ends gives back exactly what it took.
    wait_for(&name, "once", "exited", 0);
    let free0 = free_memory(&name);
    assert!(
        corral(&["restart", "once", "--host", &name])
            .status
            .success()
    );
    wait_for(&name, "once", "exited", 1);
    assert_eq!(
        free_memory(&name),
        free0,
        "free memory after a restart cycle"
    );

    assert!(corral(&["stop", "web-1", "--host", &name]).status.success());
    // Alone on its core and waiting with no timeout: its core still takes
    // the request.
    assert!(corral(&["stop", "idle", "--host", &name]).status.success());
    // Back, and waiting again when the run ends: `down` must reach it too.
    assert!(
        corral(&["restart", "idle", "--host", &name])
            .status
            .success()
    );
    assert!(free_memory(&name) > free0, "a stopped VM's memory is free");
    let prom = stdout(&corral(&["stats", "--host", &name, "--prometheus"]));
    for want in [
        "# TYPE corral_free_memory_bytes gauge\n",
        &format!("corral_vm_running{{host=\"{name}\",vm=\"web-1\"}} 0\n"),
        &format!("corral_vm_running{{host=\"{name}\",vm=\"web-0\"}} 1\n"),
        &format!("corral_vm_restarts_total{{host=\"{name}\",vm=\"once\"}} 1\n"),
    ] {
        assert!(prom.contains(want), "missing {want:?} in\n{prom}");
    }
    // Per-VM work: a VM that ran has exits and instructions counted.
    for metric in ["corral_vm_exits_total", "corral_vm_instructions_total"] {
        let key = format!("{metric}{{host=\"{name}\",vm=\"web-0\"}} ");
        let n: u64 = prom
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in\n{prom}"));
        assert!(n > 0, "{key}{n}");
    }
    // The same counters served to a scraper: `curl` (a real client) gets
    // them over HTTP, and anything but /metrics is refused.
    let mut server = Scraped::start(&name);
    let curl = boot::tools::ensure_program("curl", "curl", &|m| eprintln!("service test: {m}"))
        .expect("curl is needed to scrape the metrics");
    for _ in 0..2 {
        let (code, body) = get(&curl, &server.url);
        assert_eq!(code, 200, "{body}");
        assert!(
            body.contains(&format!(
                "corral_vm_running{{host=\"{name}\",vm=\"web-0\"}} 1\n"
            )),
            "{body}"
        );
    }
    let other = server.url.replace("/metrics", "/other");
    assert_eq!(get(&curl, &other).0, 404);
    let twice = corral(&["stop", "web-1", "--host", &name]);
    assert_eq!(twice.status.code(), Some(1));
    assert!(stderr(&twice).contains("web-1 has already ended"));
    let nosuch = corral(&["stop", "web-9", "--host", &name]);
    assert!(stderr(&nosuch).contains("no VM named web-9"));
    // Tuning: a slice out of range and an unknown VM are refused by
    // name; a budget it has used up stops it at its next slice; an ended
    // VM keeps what it is given for its next restart.
    let bad = corral(&["tune", "web-0", "--slice", "5", "--host", &name]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("a slice of 5 instructions is outside 10000.."),
        "{}",
        stderr(&bad)
    );
    let nosuch = corral(&["tune", "web-9", "--budget", "1", "--host", &name]);
    assert!(stderr(&nosuch).contains("no VM named web-9"));
    let slice = corral(&["tune", "web-0", "--slice", "200000", "--host", &name]);
    assert!(slice.status.success(), "{}", stderr(&slice));
    assert_eq!(stdout(&slice), "web-0: slice of 200000 instructions\n");
    let budget = corral(&["tune", "web-0", "--budget", "1", "--host", &name]);
    assert!(budget.status.success(), "{}", stderr(&budget));
    wait_for(&name, "web-0", "killed", 0);
    let logs = stdout(&corral(&["logs", "web-0", "--host", &name]));
    assert!(
        logs.contains("budget set by the operator: 1 instructions"),
        "{logs}"
    );
    let unlimited = corral(&[
        "tune", "web-0", "--budget", "0", "--slice", "0", "--host", &name,
    ]);
    assert!(unlimited.status.success(), "{}", stderr(&unlimited));
    assert_eq!(
        stdout(&unlimited),
        "web-0: no budget\nweb-0: the run's slice\n"
    );
    assert!(
        corral(&["restart", "web-0", "--host", &name])
            .status
            .success()
    );
    wait_for(&name, "web-0", "running", 1);
    // A stop right after a restart: both carried out, in order.
    for (cmd, vm) in [("restart", "web-2"), ("stop", "web-2")] {
        assert!(corral(&[cmd, vm, "--host", &name]).status.success());
    }
    assert!(
        corral(&["restart", "once", "--host", &name])
            .status
            .success()
    );

    // Hostile bytes on the line: each answered by name, none stops it.
    hostile(&host, b"GET / HTTP/1.1\r\n\r\n", &["no `CC` magic"]);
    let list = frame(&Message::List, 0);
    hostile(&host, &list[..8], &["8 bytes of a frame and then nothing"]);
    let mut corrupt = list.clone();
    corrupt[12] ^= 0xff;
    hostile(&host, &corrupt, &["checksum"]);
    let mut long = list[..10].to_vec();
    long[8..10].copy_from_slice(&2000u16.to_le_bytes());
    hostile(&host, &long, &["payload of 2000 bytes"]);
    let (next, _) = service::send_raw(&host, &[], 0).unwrap();
    hostile(&host, &frame(&Message::List, next - 1), &["replay"]);
    hostile(&host, &frame(&Message::List, next + 5), &["out of order"]);

    let ps = corral(&["ps", "--host", &name]);
    let table = stdout(&ps);
    assert!(ps.status.success(), "{}", stderr(&ps));
    assert!(table.contains("web-1  stopped"), "{table}");
    assert!(table.contains("6 VMs, 3 running"), "{table}");

    wait_for(&name, "once", "exited", 2);
    let logs = corral(&["logs", "once", "--host", &name]);
    let text = stdout(&logs);
    assert_eq!(text.matches("Hello from Corral").count(), 3, "{text}");
    assert_eq!(text.matches("-- exited with code 0").count(), 3, "{text}");
    assert!(
        text.contains("-- restarting (restart 2): restarted by the operator"),
        "{text}"
    );
    // The lines come from the hypervisor's history of the VM, not from the
    // console output the tool keeps: with that file out of the way, the
    // same lines.
    let console = host.console();
    let aside = console.with_extension("aside");
    std::fs::rename(&console, &aside).unwrap();
    let again = stdout(&corral(&["logs", "once", "--host", &name]));
    std::fs::rename(&aside, &console).unwrap();
    assert_eq!(again, text);

    // Scaling at runtime: web-0 alone runs of `web`; up to 8 starts 7
    // more (web-3 .. web-9) on web's core, back to 1 stops them, and the
    // memory comes back exactly, twice (the second time in reused places).
    wait_for(&name, "once", "exited", 2);
    let free1 = free_memory(&name);
    let started = |vms: &serde_json::Value| -> Vec<String> {
        vms.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "running")
            .map(|r| r["name"].as_str().unwrap().to_string())
            .filter(|n| n.starts_with("web-"))
            .collect()
    };
    let ps_json = || -> serde_json::Value {
        serde_json::from_slice(&corral(&["ps", "--host", &name, "--json"]).stdout).unwrap()
    };
    for round in 0..2u32 {
        let up8 = corral(&["scale", "web", "8", "--host", &name]);
        assert!(up8.status.success(), "{}", stderr(&up8));
        assert_eq!(stdout(&up8), "web: 8 running\n");
        let rows = ps_json();
        let running = started(&rows);
        let first = 3 + 7 * round;
        let mut want = vec!["web-0".to_string()];
        want.extend((first..first + 7).map(|i| format!("web-{i}")));
        assert_eq!(running, want, "round {round}");
        for r in rows.as_array().unwrap() {
            if running.contains(&r["name"].as_str().unwrap().to_string()) {
                assert_eq!(r["core"], 1, "web is pinned to core 1");
            }
        }
        let down1 = corral(&["scale", "web", "1", "--host", &name]);
        assert!(down1.status.success(), "{}", stderr(&down1));
        assert_eq!(started(&ps_json()), ["web-0"]);
        assert_eq!(
            free_memory(&name),
            free1,
            "free memory after scale round {round}"
        );
    }
    // One more under a chosen name, and one under the next clone name.
    let extra = corral(&["start", "web", "--name", "web-extra", "--host", &name]);
    assert!(extra.status.success(), "{}", stderr(&extra));
    assert_eq!(stdout(&extra), "started web-extra (a copy of web)\n");
    assert!(corral(&["start", "web", "--host", &name]).status.success());
    assert_eq!(started(&ps_json()), ["web-0", "web-extra", "web-17"]);
    // Refusals: named, and nothing half-created.
    for (args, want) in [
        (vec!["start", "nope"], "no entry named nope"),
        (
            vec!["start", "web", "--name", "web-0"],
            "a VM named web-0 already exists",
        ),
        (
            vec!["start", "web", "--name", "bad/name"],
            "`bad/name` is not a VM name",
        ),
        (
            vec!["scale", "web", "100000"],
            "at most 512 VMs start or stop in one command",
        ),
        (vec!["scale", "web", "400"], "more on its cores"),
        (
            vec!["scale", "big", "12"],
            "not enough memory for 11 more clones of big:",
        ),
    ] {
        let mut a = args.clone();
        a.extend(["--host", &name]);
        let out = corral(&a);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(started(&ps_json()), ["web-0", "web-extra", "web-17"]);
    // Overrides: a copy of `once` in 1 MiB greets with that size; a
    // `web` with its own arguments does the work they say; bad ones are
    // refused by field before anything is sent.
    let big = corral(&[
        "start", "once", "--name", "once-1m", "--memory", "1M", "--host", &name,
    ]);
    assert!(big.status.success(), "{}", stderr(&big));
    assert_eq!(
        stdout(&big),
        "started once-1m (a copy of once) with 1024 KiB of memory\n"
    );
    let odd = corral(&[
        "start",
        "web",
        "--name",
        "web-args",
        "--args",
        "work=999999999999",
        "--host",
        &name,
    ]);
    assert!(odd.status.success(), "{}", stderr(&odd));
    assert_eq!(
        stdout(&odd),
        "started web-args (a copy of web) with args `work=999999999999`\n"
    );
    wait_for(&name, "once-1m", "exited", 0);
    wait_for_line(&name, "web-args", "spin: 999999999999 iterations");
    assert!(
        corral(&["stop", "web-args", "--host", &name])
            .status
            .success()
    );
    let logs = stdout(&corral(&["logs", "once-1m", "--host", &name]));
    assert!(logs.contains("with 1024 KiB"), "{logs}");
    assert!(logs.contains("Hello from Corral: vm once-1m ("), "{logs}");
    assert!(logs.contains("), 1024 KiB"), "{logs}");
    for (args, code, want) in [
        (
            vec!["start", "once", "--memory", "4K"],
            2,
            "4096 is outside 262144..=1073741824",
        ),
        (
            vec!["start", "once", "--memory", "1M+1"],
            2,
            "`1M+1` is not a size",
        ),
        (
            vec!["start", "once", "--args", "tab\there"],
            1,
            "`--args`: must be non-empty and use only the allowed characters",
        ),
    ] {
        let mut a = args.clone();
        a.extend(["--host", &name]);
        let out = corral(&a);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    let vms_started = 6 + 14 + 2 + 2;

    let report = host.dir.join("down-report.json");
    let down = corral(&[
        "down",
        "--host",
        &name,
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(down.status.success(), "{}", stderr(&down));
    // The host is down: the scraper is told so, and the server ends.
    let (code, body) = get(&curl, &server.url);
    assert_eq!(code, 503, "{body}");
    assert!(
        server.ended(),
        "the metrics server kept running after `down`"
    );
    drop(guard);
    // `corral events` ended with the host, having shown what happened.
    let mut waited = 0;
    while watcher.try_wait().unwrap().is_none() {
        assert!(waited < 100, "corral events kept running after `down`");
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
    }
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&events_out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let at = |from: usize, what: &dyn Fn(&serde_json::Value) -> bool| {
        from + events[from..]
            .iter()
            .position(what)
            .unwrap_or_else(|| panic!("an event is missing after #{from} in {events:#?}"))
    };
    let is = |e: &serde_json::Value, event: &str, vm: &str| e["event"] == event && e["vm"] == vm;
    // `once` restarted by the operator: the restart, its lines, its end.
    let restarted = at(0, &|e| is(e, "restarted", "once") && e["restarts"] == 1);
    let hello = at(restarted, &|e| {
        is(e, "line", "once") && e["text"].as_str().unwrap().starts_with("Hello from Corral")
    });
    at(hello, &|e| {
        is(e, "ended", "once") && e["status"] == "exited"
    });
    at(0, &|e| is(e, "ended", "web-1") && e["status"] == "stopped");
    // A VM started by `scale`: started on web's core, printed its start
    // note, stopped by the scale down.
    let web3 = at(0, &|e| is(e, "started", "web-3") && e["core"] == 1);
    let note = at(web3, &|e| {
        is(e, "line", "web-3") && e["text"].as_str().unwrap().starts_with("-- starting image")
    });
    at(note, &|e| {
        is(e, "ended", "web-3") && e["status"] == "stopped"
    });
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["completed"], true);
    // Every VM ever started is in the report, judged by its entry.
    assert_eq!(r["vms"].as_array().unwrap().len(), vms_started);
    assert_eq!(r["vms"][6]["name"], "web-3");
    assert_eq!(r["vms"][6]["status"], "stopped");
    assert_eq!(r["vms"][6]["reason"], "stopped by the operator");
    assert_eq!(r["vms"][6]["ok"], true);
    let vm = |n: &str| report_vm(&r, n);
    assert_eq!(vm("web-1")["status"], "stopped");
    assert_eq!(vm("web-1")["reason"], "stopped by the operator");
    assert_eq!(vm("idle")["status"], "stopped");
    assert_eq!(vm("idle")["reason"], "stopped: the run ended");
    assert_eq!(vm("idle")["restarts"], 1);
    assert_eq!(vm("web-0")["status"], "stopped");
    assert_eq!(vm("web-0")["reason"], "stopped: the run ended");
    assert_eq!(vm("web-2")["reason"], "stopped by the operator");
    assert_eq!(vm("web-2")["restarts"], 1);
    assert_eq!(vm("web-0")["restarts"], 1);
    assert_eq!(vm("once")["status"], "exited");
    assert_eq!(vm("once")["restarts"], 2);
    let m = &vm("once-1m")["memory"];
    assert_eq!(
        m["private"].as_u64().unwrap() + m["shared"].as_u64().unwrap(),
        1 << 20,
        "{m}"
    );
    assert_eq!(vm("web-args")["status"], "stopped");
    assert!(!host.running());
}

/// Waits until VM `vm`'s logs on `host` hold `text` (60 s at most).
fn wait_for_line(host: &str, vm: &str, text: &str) {
    for _ in 0..600 {
        if stdout(&corral(&["logs", vm, "--host", host])).contains(text) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{vm} did not print {text:?} within 60 s");
}

/// VM `name`'s entry in report `r`.
fn report_vm(r: &serde_json::Value, name: &str) -> serde_json::Value {
    r["vms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no VM {name} in the report: {r:#}"))
        .clone()
}

/// Brings host `name` up from the manifest `toml` (written to a scratch
/// directory as `file`, with the timeout `timeout`); the directory.
fn up_with(name: &str, file: &str, toml: &str, timeout: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("corral-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let m = dir.join(file);
    std::fs::write(&m, toml).unwrap();
    let up = corral(&[
        "up",
        m.to_str().unwrap(),
        "--host",
        name,
        "--timeout",
        timeout,
    ]);
    assert!(up.status.success(), "up failed: {}", stderr(&up));
    dir
}

/// `corral down` of host `name` (its guard dropped after), with its
/// report in `dir`; the report.
fn down_with_report(name: &str, guard: Host, dir: &Path) -> serde_json::Value {
    let report = dir.join("report.json");
    let down = corral(&["down", "--host", name, "--report", report.to_str().unwrap()]);
    assert!(down.status.success(), "{}", stderr(&down));
    drop(guard);
    serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap()
}

#[test]
fn a_running_hosts_links_are_counted_while_it_runs() {
    let name = format!("lnk{}", std::process::id());
    let guard = Host(name.clone());
    let dir = up_with(
        &name,
        "links.toml",
        r#"
[run]
cpus = 2
timeout = 600
mode = "service"

[[vm]]
name = "gen"
image = "pktgen"
net = 1
cores = [1]
memory = "4M"
args = "count=300 flows=2 size=64"

[[vm]]
name = "sink"
image = "sink"
net = 1
cores = [1]
memory = "4M"

[[link]]
a = "gen.0"
b = "sink.0"
core = 0
"#,
        "600",
    );
    wait_for(&name, "gen", "exited", 0);
    wait_for(&name, "sink", "exited", 0);
    // The link's counters, read while the host runs.
    let out = corral(&["stats", "--host", &name, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let link = &v["links"][0];
    assert_eq!(link["link"], "gen.0<->sink.0", "{v:#}");
    let ab = link["ab"]["frames"].as_u64().unwrap();
    assert!(ab >= 300, "{v:#}");
    assert_eq!(link["ab"]["dropped"], 0, "{v:#}");
    let prom = stdout(&corral(&["stats", "--host", &name, "--prometheus"]));
    let want = format!(
        "corral_link_frames_total{{host=\"{name}\",link=\"gen.0<->sink.0\",dir=\"ab\"}} {ab}\n"
    );
    assert!(prom.contains(&want), "missing {want:?} in\n{prom}");
    let text = stdout(&corral(&["stats", "--host", &name]));
    assert!(
        text.contains(&format!("link gen.0<->sink.0: {ab} frames a->b")),
        "{text}"
    );
    // Per core: core 0 serves the line and polls the link, core 1 ran both
    // VMs (ended now), all their exits and instructions counted there.
    let cores = v["cores"].as_array().unwrap();
    assert_eq!(cores.len(), 2, "{v:#}");
    assert_eq!(
        (&cores[0]["core"], &cores[0]["roles"]),
        (&0.into(), &"polls+control".into()),
        "{v:#}"
    );
    assert!(cores[0]["busy_instructions"].as_u64().unwrap() > 0, "{v:#}");
    assert_eq!(cores[0]["exits"], 0, "{v:#}");
    assert_eq!(
        (
            &cores[1]["core"],
            &cores[1]["roles"],
            &cores[1]["vms_running"]
        ),
        (&1.into(), &"vms".into(), &0.into()),
        "{v:#}"
    );
    let vms = v["vms"].as_array().unwrap();
    let sum = |key: &str| vms.iter().map(|m| m[key].as_u64().unwrap()).sum::<u64>();
    let exits = cores[1]["exits"].as_u64().unwrap();
    assert!(exits >= sum("exits") && sum("exits") > 0, "{v:#}");
    assert_eq!(
        cores[1]["guest_instructions"].as_u64(),
        Some(sum("instructions")),
        "{v:#}"
    );
    assert_eq!(cores[1]["busy_instructions"], 0, "{v:#}");
    assert!(
        prom.contains(&format!(
            "corral_core_vms_running{{host=\"{name}\",core=\"1\"}} 0\n"
        )),
        "{prom}"
    );
    assert!(text.contains("core 1 (vms): 0 VMs running, "), "{text}");
    // Refreshed: two tables; to a file: the Prometheus text, whole.
    let watched = corral(&[
        "stats", "--host", &name, "--watch", "--every", "0.2", "--count", "2",
    ]);
    assert!(watched.status.success(), "{}", stderr(&watched));
    let w = stdout(&watched);
    assert_eq!(w.matches("-- refresh ").count(), 2, "{w}");
    assert_eq!(w.matches(&format!("host `{name}`: ")).count(), 2, "{w}");
    let file = dir.join("metrics.prom");
    let o = corral(&[
        "stats",
        "--host",
        &name,
        "--prometheus",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains(&want), "{written}");
    // The report after `down` says the same.
    let r = down_with_report(&name, guard, &dir);
    assert_eq!(r["links"][0]["ab"]["frames"].as_u64(), Some(ab), "{r:#}");
}

/// The names of `host`'s VMs with `status`, in `ps` order.
fn with_status(host: &str, status: &str) -> Vec<String> {
    let out = corral(&["ps", "--host", host, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == status)
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

/// The host's free memory once every running VM has run (a VM's memory is
/// taken at its first slice; until then only its start's reservation is).
fn settled_free_memory(host: &str) -> u64 {
    for _ in 0..600 {
        let out = corral(&["ps", "--host", host, "--json"]);
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let waiting = rows
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["status"] == "running" && r["instructions"] == 0);
        if !waiting {
            return free_memory(host);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("VMs of {host} did not all run within 60 s");
}

#[test]
fn a_hundred_vms_come_and_go_while_the_others_run() {
    let name = format!("hun{}", std::process::id());
    let guard = Host(name.clone());
    let dir = up_with(
        &name,
        "hundred.toml",
        r#"
[run]
cpus = 3
timeout = 900
mode = "service"

[[vm]]
name = "pool"
cores = [1]
count = 1
net = 1
image = "spin"
args = "work=1000000000000"
expect = "stopped"

[[vm]]
name = "fleet"
cores = [2]
count = 8
image = "spin"
args = "work=1000000000000"
expect = "stopped"
"#,
        "900",
    );
    let free0 = settled_free_memory(&name);
    let pool = |range: std::ops::Range<u32>| -> Vec<String> {
        range.map(|i| format!("pool-{i}")).collect()
    };
    let fleet = |range: std::ops::Range<u32>| -> Vec<String> {
        range.map(|i| format!("fleet-{i}")).collect()
    };

    // 100 VMs started at runtime beside the 9 of the manifest.
    let out = corral(&["scale", "pool", "101", "--host", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "pool: 101 running\n");
    let mut all = pool(0..1);
    all.extend(fleet(0..8));
    all.extend(pool(1..101));
    assert_eq!(with_status(&name, "running"), all);

    // 50 of them stopped, one command each.
    for vm in pool(1..51) {
        let out = corral(&["stop", &vm, "--host", &name]);
        assert!(out.status.success(), "{vm}: {}", stderr(&out));
    }
    assert_eq!(with_status(&name, "stopped"), pool(1..51));
    // 10 restarted with fresh memory: what they free, they take again.
    let before = settled_free_memory(&name);
    for vm in pool(51..61) {
        let out = corral(&["restart", &vm, "--host", &name]);
        assert!(out.status.success(), "{vm}: {}", stderr(&out));
    }
    for vm in pool(51..61) {
        wait_for(&name, &vm, "running", 1);
    }
    // Each has run again (so has its memory again): its instructions, all
    // its runs, grow.
    let instructions = || -> Vec<u64> {
        let out = corral(&["ps", "--host", &name, "--json"]);
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        pool(51..61)
            .iter()
            .map(|vm| {
                let row = rows.as_array().unwrap().iter().find(|r| r["name"] == *vm);
                row.and_then(|r| r["instructions"].as_u64()).unwrap()
            })
            .collect()
    };
    let then = instructions();
    let mut grown = false;
    for _ in 0..600 {
        grown = instructions().iter().zip(&then).all(|(now, was)| now > was);
        if grown {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(grown, "the restarted VMs did not all run again within 60 s");
    assert_eq!(
        settled_free_memory(&name),
        before,
        "free memory after 10 restarts"
    );
    // A link made between two of the pool's runtime VMs while the rest
    // run, and unmade: it takes no memory.
    let link = |verb: &str, a: &str, b: &str| {
        let out = corral(&["link", verb, a, b, "--host", &name]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(
        link("attach", "pool-61.0", "pool-62.0"),
        "link 0: pool-61.0<->pool-62.0 made\n"
    );
    assert!(
        link("detach", "pool-62.0", "pool-61.0")
            .starts_with("link 0: pool-61.0<->pool-62.0 unmade: ")
    );
    assert_eq!(
        settled_free_memory(&name),
        before,
        "free memory after a link"
    );

    // The manifest's fleet scaled 8 -> 64 -> 8 while the pool runs, twice:
    // its memory comes back to the byte each time.
    for round in 0..2 {
        let out = corral(&["scale", "fleet", "64", "--host", &name]);
        assert!(out.status.success(), "{}", stderr(&out));
        let running = with_status(&name, "running");
        assert_eq!(
            running.iter().filter(|n| n.starts_with("fleet-")).count(),
            64,
            "round {round}"
        );
        assert_eq!(
            running.iter().filter(|n| n.starts_with("pool-")).count(),
            51,
            "round {round}: the pool kept running"
        );
        let out = corral(&["scale", "fleet", "8", "--host", &name]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            settled_free_memory(&name),
            before,
            "free memory after round {round}"
        );
    }

    // The pool back to its one manifest VM: every runtime VM's memory is
    // free again, exactly what the host had before the first start.
    let out = corral(&["scale", "pool", "1", "--host", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut left = pool(0..1);
    left.extend(fleet(0..8));
    assert_eq!(with_status(&name, "running"), left);
    assert_eq!(
        settled_free_memory(&name),
        free0,
        "free memory after the pool"
    );

    let r = down_with_report(&name, guard, &dir);
    assert_eq!(r["completed"], true);
    // Every VM ever started: the manifest's 9, the pool's 100, the fleet's
    // 56 twice.
    let vms = r["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 9 + 100 + 2 * 56, "{:#?}", vms.len());
    assert_eq!(r["links"][0]["made_at_runtime"], true, "{:#}", r["links"]);
    for v in vms {
        let n = v["name"].as_str().unwrap();
        assert_eq!(v["status"], "stopped", "{v:#}");
        assert_eq!(v["ok"], true, "{v:#}");
        let by_operator = n != "pool-0" && !fleet(0..8).iter().any(|f| f == n);
        let want = if by_operator {
            "stopped by the operator"
        } else {
            "stopped: the run ended"
        };
        assert_eq!(v["reason"], want, "{v:#}");
        let restarted = pool(51..61).iter().any(|p| p == n);
        assert_eq!(v["restarts"], u64::from(restarted), "{v:#}");
    }
}

/// Waits (at most `secs` s) until `host`'s VM `vm` has `status`.
fn wait_long(host: &str, vm: &str, status: &str, secs: u64) {
    let start = std::time::Instant::now();
    while start.elapsed().as_secs() < secs {
        let out = corral(&["ps", "--host", host, "--json"]);
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if rows
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == vm && r["status"] == status)
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("{vm} did not become {status} within {secs} s");
}

/// `corral hook maps NAME --json` of `host`: the hook's runs and the
/// number in its first map entry.
fn hook_counts(host: &str, name: &str) -> (u64, u64) {
    let out = corral(&["hook", "maps", name, "--host", host, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = v["hook"]["runs"].as_u64().unwrap();
    let counted = v["entries"][0]["number"].as_u64().unwrap_or(0);
    (runs, counted)
}

/// The runs a `hook NAME: link 0 a->b: N runs, ...` line gives.
fn runs_in(text: &str, name: &str) -> u64 {
    let at = text
        .find(&format!("hook {name}: link 0 a->b: "))
        .unwrap_or_else(|| panic!("no counters of {name} in {text:?}"));
    let rest = &text[at..];
    let rest = &rest[rest.find(": ").unwrap() + 2..];
    let rest = &rest[rest.find(": ").unwrap() + 2..];
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn a_packet_hook_is_swapped_on_a_live_link_without_losing_or_recounting_a_frame() {
    use boot::hook_cmd;
    use vmm_abi::control::HookOn;
    use vmm_abi::hook::asm;
    const FRAMES: u64 = 300_000;
    let name = format!("hk{}", std::process::id());
    let guard = Host(name.clone());
    let dir = up_with(
        &name,
        "hooks.toml",
        &format!(
            r#"
[run]
cpus = 2
timeout = 900
mode = "service"

[[vm]]
name = "gen"
image = "pktgen"
net = 1
cores = [1]
memory = "4M"
args = "count={FRAMES} flows=2 size=64"

[[vm]]
name = "sink"
image = "sink"
net = 1
cores = [1]
memory = "4M"

[[link]]
a = "gen.0"
b = "sink.0"
core = 0
"#
        ),
        "900",
    );
    let host = HostDir::named(&name).unwrap();
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/hooks");
    let count = hooks.join("count_pass.bpf.c");
    let count = count.to_str().unwrap();
    let attach = |hook: &str, target: &str, source: &str| {
        corral(&[
            "hook", "attach", hook, "--host", &name, "--attach", target, "--source", source,
        ])
    };
    // Once frames move, both VMs are built: what is free then must be
    // free again once every hook is gone.
    let start = std::time::Instant::now();
    loop {
        let out = corral(&["stats", "--host", &name, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if v["links"][0]["ab"]["frames"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(start.elapsed().as_secs() < 120, "no frame moved: {v:#}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let free = free_memory(&name);
    // Refused before anything is uploaded: the host tool's verifier, a
    // link the manifest does not have.
    let loop_c = hooks.join("loop.bpf.c");
    let o = attach("bad", "link:gen.0->sink.0", loop_c.to_str().unwrap());
    fails_with(&o, "program refused: hook `bad`: insn");
    fails_with(&o, "back edge");
    fails_with(&attach("x", "link:sink.0->nope.0", count), "no link joins");
    // Refused by the hypervisor: its own verifier, a direction the link
    // does not have, chunks out of order or missing; nothing attached.
    let bytes = |insns: &[vmm_abi::hook::Insn]| -> Vec<u8> {
        insns.iter().flat_map(|i| i.to_bytes()).collect()
    };
    let looping = bytes(&[asm::mov64_imm(0, 2), asm::ja(-2), asm::exit()]);
    let on = |link, dir| HookOn::Link { link, dir };
    hook_cmd::upload(&host, "evil", on(0, control::DIR_A_TO_B), &looping, &[]).unwrap();
    let e = hook_cmd::upload_commit(&host, "evil")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("program refused: hook `evil`: insn 1: back edge"),
        "{e}"
    );
    let e = hook_cmd::upload(&host, "evil", on(7, control::DIR_B_TO_A), &looping, &[]).unwrap_err();
    assert_eq!(e.to_string(), "link 7 has no direction b->a");
    let long: Vec<_> = (0..200)
        .map(|_| asm::mov64_imm(0, 2))
        .chain([asm::exit()])
        .collect();
    let long = bytes(&long);
    let send = |m: &Message<'_>| service::send(&host, m).unwrap();
    let last_error = |answers: Vec<Answer>| match answers.last() {
        Some(Answer::Error(t)) => t.clone(),
        other => panic!("not refused: {other:?}"),
    };
    let begin = Message::HookBegin {
        name: "evil",
        on: on(0, control::DIR_A_TO_B),
        insns: 201,
        maps: &[],
    };
    assert_eq!(send(&begin), [Answer::Done]);
    let late = Message::HookChunk {
        offset: 125,
        bytes: &long[1000..],
    };
    assert!(last_error(send(&late)).contains("a chunk at instruction 125, expected 0"));
    assert_eq!(send(&begin), [Answer::Done]);
    let first = Message::HookChunk {
        offset: 0,
        bytes: &long[..1000],
    };
    assert_eq!(send(&first), [Answer::Done]);
    let e = last_error(send(&Message::HookCommit { name: "evil" }));
    assert!(e.contains("instructions 125..201 never came"), "{e}");
    let o = corral(&["hook", "maps", "evil", "--host", &name]);
    fails_with(&o, "no hook named evil");
    fails_with(
        &corral(&["hook", "detach", "nope", "--host", &name]),
        "no hook named nope",
    );
    // The stream is flowing: attach a counting hook, see it count.
    let o = attach("count-a", "link:gen.0->sink.0", count);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("hook count-a: attached on link:gen.0->sink.0 (link "),
        "{}",
        stdout(&o)
    );
    // Compiled as it was attached: the answer says so, and so does the
    // hypervisor's console.
    assert!(stdout(&o).ends_with(" maps, compiled\n"), "{}", stdout(&o));
    let console = HostDir::named(&name).unwrap().console();
    let attached_line = || {
        std::fs::read_to_string(&console)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains("hook count-a: attached at runtime"))
            .map(str::to_string)
    };
    let start = std::time::Instant::now();
    let line = loop {
        if let Some(l) = attached_line() {
            break l;
        }
        assert!(start.elapsed().as_secs() < 60, "no attach line for count-a");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(line.contains(" maps, compiled"), "{line}");
    let start = std::time::Instant::now();
    while hook_counts(&name, "count-a").0 == 0 {
        assert!(start.elapsed().as_secs() < 120, "count-a never ran");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Its name is taken, even on the other direction.
    fails_with(
        &attach("count-a", "link:sink.0->gen.0", count),
        "a hook named count-a already exists (on link 0 a->b)",
    );
    // Swap: attaching to the same direction replaces it between passes;
    // the old hook's last counters come back.
    let o = attach("count-b", "link:gen.0->sink.0", count);
    assert!(o.status.success(), "{}", stderr(&o));
    let a_runs = runs_in(&stdout(&o), "count-a");
    assert!(a_runs > 0);
    fails_with(
        &corral(&["hook", "maps", "count-a", "--host", &name]),
        "no hook named count-a",
    );
    let start = std::time::Instant::now();
    while hook_counts(&name, "count-b").0 == 0 {
        assert!(start.elapsed().as_secs() < 120, "count-b never ran");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let o = corral(&["hook", "detach", "count-b", "--host", &name, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let detached: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let b_runs = detached["runs"].as_u64().unwrap();
    assert!(b_runs > 0);
    // Every frame the uploads and hooks took was given back.
    assert_eq!(free_memory(&name), free);
    // The stream finishes with no hook; the host was alive throughout.
    wait_long(&name, "gen", "exited", 600);
    wait_long(&name, "sink", "exited", 600);
    let r = down_with_report(&name, guard, &dir);
    let metric = |vm: &str, m: &str| {
        r["vms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == vm)
            .unwrap()["metrics"][m]
            .as_u64()
            .unwrap()
    };
    assert_eq!(metric("gen", "sent"), FRAMES, "{r:#}");
    assert_eq!(metric("sink", "received"), FRAMES, "{r:#}");
    let ab = &r["links"][0]["ab"];
    // Every frame and the end-of-stream frame delivered, none dropped.
    assert_eq!(ab["frames"].as_u64(), Some(FRAMES + 1), "{r:#}");
    for d in ["drop_peer", "drop_size", "drop_stalled"] {
        assert_eq!(ab[d], 0, "{r:#}");
    }
    let hooks: Vec<_> = r["hooks"].as_array().unwrap().iter().collect();
    let names: Vec<_> = hooks.iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["count-a", "count-b"], "{r:#}");
    let mut total = 0;
    for (h, want) in hooks.iter().zip([a_runs, b_runs]) {
        let runs = h["runs"].as_u64().unwrap();
        assert_eq!(
            runs, want,
            "the counters answered are the final ones: {h:#}"
        );
        assert_eq!(h["verdicts"]["pass"].as_u64(), Some(runs), "{h:#}");
        assert_eq!(
            h["maps"]["0"]["values"][0]["number"].as_u64(),
            Some(runs),
            "{h:#}"
        );
        total += runs;
    }
    // No frame judged twice: the hooks' runs together are at most the
    // frames the link carried.
    assert!(
        total <= FRAMES + 1,
        "{total} runs for {} frames",
        FRAMES + 1
    );
}

/// `curl -X POST` of `url` (no body): (status code, body).
fn post(curl: &Path, url: &str) -> (u16, String) {
    send_with(curl, "POST", url)
}

/// `curl -X POST` of `url` with the file `body` as the request's body:
/// (status code, body).
fn post_file(curl: &Path, url: &str, body: &Path) -> (u16, String) {
    let data = format!("@{}", body.display());
    let out = Command::new(curl)
        .args([
            "-s",
            "-m",
            "60",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/octet-stream",
        ])
        .args(["--data-binary", &data, "-w", "\n%{http_code}", url])
        .output()
        .expect("cannot run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// `curl -X METHOD` of `url` (no body): (status code, body).
fn send_with(curl: &Path, method: &str, url: &str) -> (u16, String) {
    let out = Command::new(curl)
        .args(["-s", "-m", "30", "-X", method, "-w", "\n%{http_code}", url])
        .output()
        .expect("cannot run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A TCP port on 127.0.0.1 nobody listens on right now.
fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_control_unikernel_serves_the_api_over_http() {
    let name = format!("ctl{}", std::process::id());
    let guard = Host(name.clone());
    let port = free_tcp_port();
    let dir = up_with(
        &name,
        "ctl.toml",
        &format!(
            r#"
[run]
cpus = 3
timeout = 900
mode = "service"

[[vm]]
name = "ctl"
image = "ctl"
net = 1
cores = [1]
memory = "4M"
caps = ["control"]
args = "idle=0"
expect = "stopped"

[[vm]]
name = "web"
image = "spin"
count = 2
net = 1
cores = [2]
args = "work=1000000000000"
expect = "stopped"

# Not granted the capability: stopped by name at its first control call.
[[vm]]
name = "rogue"
image = "ctl"
cores = [2]
memory = "4M"
expect = "killed:control capability"

[[nic]]
name = "uplink"
core = 0
forward = ["tcp:{port}:80"]

[[link]]
a = "ctl.0"
b = "nic:uplink"
"#
        ),
        "900",
    );
    let curl = boot::tools::ensure_program("curl", "curl", &|m| eprintln!("service test: {m}"))
        .expect("curl is needed to reach the control API");
    let url = format!("http://127.0.0.1:{port}");
    // The API answers once the unikernel is up behind the NIC.
    let mut vms = (0, String::new());
    for _ in 0..60 {
        vms = get(&curl, &format!("{url}/v1/vms"));
        if vms.0 == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    assert_eq!(vms.0, 200, "{}", vms.1);
    // The rogue is stopped at its first control call, once its core runs
    // it (the serial line says when).
    wait_for(&name, "rogue", "killed", 0);
    let vms = get(&curl, &format!("{url}/v1/vms"));
    assert_eq!(vms.0, 200, "{}", vms.1);
    let list: serde_json::Value = serde_json::from_str(&vms.1).unwrap();
    let status = |list: &serde_json::Value, vm: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == vm)
            .map(|r| r["status"].as_str().unwrap().to_string())
    };
    assert_eq!(
        status(&list, "web-0").as_deref(),
        Some("running"),
        "{list:#}"
    );
    assert_eq!(status(&list, "ctl").as_deref(), Some("running"), "{list:#}");
    assert_eq!(
        status(&list, "rogue").as_deref(),
        Some("killed"),
        "{list:#}"
    );
    // One VM, the counters.
    let (code, one) = get(&curl, &format!("{url}/v1/vms/web-1"));
    assert_eq!(code, 200, "{one}");
    assert!(one.contains("\"name\":\"web-1\""), "{one}");
    assert_eq!(get(&curl, &format!("{url}/v1/vms/nosuch")).0, 404);
    let (code, stats) = get(&curl, &format!("{url}/v1/stats"));
    assert_eq!(code, 200, "{stats}");
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert!(stats["free_memory"].as_u64().unwrap() > 0, "{stats:#}");
    assert_eq!(stats["flows"][0]["label"], "uplink", "{stats:#}");
    // Core 0 serves the line and polls the NIC (roles 4 and 2); core 2
    // runs VMs (1).
    assert_eq!(
        (&stats["cores"][0]["core"], &stats["cores"][0]["role"]),
        (&0.into(), &6.into()),
        "{stats:#}"
    );
    let vm_core = stats["cores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["core"] == 2)
        .unwrap_or_else(|| panic!("no core 2 in {stats:#}"));
    assert_eq!(vm_core["role"], 1, "{stats:#}");
    assert!(vm_core["vms_running"].as_u64().unwrap() >= 2, "{stats:#}");
    // Commands: scale up, stop one, refusals named with their status.
    let (code, body) = post(&curl, &format!("{url}/v1/entries/web/scale?count=3"));
    assert_eq!((code, body.trim()), (200, "{\"done\":true}"));
    let (code, body) = post(&curl, &format!("{url}/v1/vms/web-1/stop"));
    assert_eq!(code, 200, "{body}");
    let (code, body) = post(&curl, &format!("{url}/v1/vms/web-1/stop"));
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("web-1 has already ended"), "{body}");
    let (code, body) = post(&curl, &format!("{url}/v1/vms/nosuch/stop"));
    assert_eq!(code, 404, "{body}");
    assert_eq!(post(&curl, &format!("{url}/v1/entries/web/scale")).0, 400);
    // Tuning: one setting as a number, else 400; out of range, 409.
    let (code, body) = post(&curl, &format!("{url}/v1/vms/web-0/tune?slice=200000"));
    assert_eq!((code, body.trim()), (200, "{\"done\":true}"));
    for bad in ["", "?slice=x", "?budget=1&slice=2"] {
        let (code, body) = post(&curl, &format!("{url}/v1/vms/web-0/tune{bad}"));
        assert_eq!(code, 400, "{bad}: {body}");
    }
    let (code, body) = post(&curl, &format!("{url}/v1/vms/web-0/tune?slice=5"));
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains("a slice of 5 instructions is outside"),
        "{body}"
    );
    // Start with overrides: a `web` told another amount of work says so
    // as it starts; a bad escape or memory is 400, memory out of range the
    // hypervisor's 409.
    let (code, body) = post(
        &curl,
        &format!(
            "{url}/v1/entries/web/start?name=web-other&args=work%3D999999999999&memory=2097152"
        ),
    );
    assert_eq!((code, body.trim()), (200, "{\"done\":true}"));
    wait_for_line(&name, "web-other", "spin: 999999999999 iterations");
    for bad in ["?args=work%3", "?args=%zz", "?memory=x", "?memory=0"] {
        let (code, body) = post(&curl, &format!("{url}/v1/entries/web/start{bad}"));
        assert_eq!(code, 400, "{bad}: {body}");
    }
    let (code, body) = post(&curl, &format!("{url}/v1/entries/web/start?memory=4096"));
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("`memory`: 4096 is outside"), "{body}");
    let api_start = corral(&[
        "--endpoint",
        &url,
        "start",
        "web",
        "--name",
        "web-api",
        "--args",
        "work=999999999998 x=a&b",
    ]);
    assert!(api_start.status.success(), "{}", stderr(&api_start));
    assert_eq!(
        stdout(&api_start),
        "started web-api (a copy of web) with args `work=999999999998 x=a&b`\n"
    );
    wait_for_line(&name, "web-api", "spin: 999999999998 iterations");
    for vm in ["web-other", "web-api"] {
        let (code, body) = post(&curl, &format!("{url}/v1/vms/{vm}/stop"));
        assert_eq!(code, 200, "{vm}: {body}");
    }
    // The control unikernel was told all of it (it watches from its
    // start): web-other's start, its line, its end, in that order.
    let events_of = |vm: &str| -> Vec<serde_json::Value> {
        let mut all = Vec::new();
        let mut from = 0;
        loop {
            let (code, body) = get(&curl, &format!("{url}/v1/events?from={from}"));
            assert_eq!(code, 200, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let list = v["events"].as_array().unwrap().clone();
            assert_eq!(v["first"], 0, "no event went unkept yet: {v:#}");
            from = v["next"].as_u64().unwrap();
            if list.is_empty() {
                return all
                    .into_iter()
                    .filter(|e: &serde_json::Value| e["vm"] == vm)
                    .collect();
            }
            all.extend(list);
        }
    };
    let mut seen = Vec::new();
    for _ in 0..60 {
        seen = events_of("web-other");
        if seen.iter().any(|e| e["event"] == "ended") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    let kinds: Vec<&str> = seen.iter().map(|e| e["event"].as_str().unwrap()).collect();
    let at = |kind: &str| kinds.iter().position(|k| *k == kind);
    let line = seen.iter().position(|e| {
        e["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("spin: 999999999999 iterations"))
    });
    assert!(
        at("started") < line && line < at("ended") && at("started").is_some(),
        "{seen:#?}"
    );
    let ended = &seen[at("ended").unwrap()];
    assert_eq!(ended["status"], "stopped", "{seen:#?}");
    assert_eq!(get(&curl, &format!("{url}/v1/events?from=x")).0, 400);
    // A name no command can carry is refused by the API, which goes on.
    let long = "x".repeat(300);
    assert_eq!(post(&curl, &format!("{url}/v1/vms/{long}/stop")).0, 400);
    assert_eq!(get(&curl, &format!("{url}/v1/vms/web-0")).0, 200);
    assert_eq!(get(&curl, &format!("{url}/v2/other")).0, 404);
    // The same host through the tool: the API (`--endpoint`) and the serial
    // line agree.
    let ps = corral(&["--endpoint", &url, "ps", "--json"]);
    assert!(ps.status.success(), "{}", stderr(&ps));
    let via_api: serde_json::Value = serde_json::from_slice(&ps.stdout).unwrap();
    assert_eq!(
        status(&via_api, "web-2").as_deref(),
        Some("running"),
        "{via_api:#}"
    );
    assert_eq!(
        status(&via_api, "web-1").as_deref(),
        Some("stopped"),
        "{via_api:#}"
    );
    let tune = corral(&["--endpoint", &url, "tune", "web-0", "--slice", "0"]);
    assert!(tune.status.success(), "{}", stderr(&tune));
    assert_eq!(stdout(&tune), "web-0: the run's slice\n");
    let restart = corral(&["--endpoint", &url, "restart", "web-1"]);
    assert!(restart.status.success(), "{}", stderr(&restart));
    assert_eq!(stdout(&restart), "restarted web-1\n");
    // Links through the API: made between two running VMs' ports (the
    // manifest's one link to the NIC is link 0), refused by name, unmade
    // through the tool.
    let (code, body) = post(&curl, &format!("{url}/v1/links?a=web-0.0&b=web-2.0"));
    assert_eq!(code, 200, "{body}");
    let made: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&made["kind"], &made["index"], &made["label"]),
        (&"link".into(), &1.into(), &"web-0.0<->web-2.0".into()),
        "{made:#}"
    );
    let (code, body) = post(&curl, &format!("{url}/v1/links?a=ctl.0&b=web-1.0"));
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("ctl.0 is linked already (link 0)"), "{body}");
    assert_eq!(post(&curl, &format!("{url}/v1/links?a=web-0.0")).0, 400);
    let (code, body) = send_with(
        &curl,
        "DELETE",
        &format!("{url}/v1/links?a=web-1.0&b=web-2.0"),
    );
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains("no link made at runtime joins web-1.0 and web-2.0"),
        "{body}"
    );
    let gone = corral(&["--endpoint", &url, "link", "detach", "web-2.0", "web-0.0"]);
    assert!(gone.status.success(), "{}", stderr(&gone));
    assert_eq!(
        stdout(&gone),
        "link 1: web-0.0<->web-2.0 unmade: 0 frames a->b (0 dropped), 0 frames b->a (0 dropped)\n"
    );
    // A VM's lines and a hook, through the API and the tool: web-api's
    // first line; an exit hook attached over the serial line, read through
    // the endpoint, detached with curl (then no more).
    let (code, body) = get(&curl, &format!("{url}/v1/vms/web-api/logs"));
    assert_eq!(code, 200, "{body}");
    let logs: serde_json::Value = serde_json::from_str(&body).unwrap();
    let lines = logs["lines"].as_array().unwrap();
    assert!(
        lines.iter().any(|l| l["text"]
            .as_str()
            .unwrap()
            .contains("spin: 999999999998 iterations")),
        "{logs:#}"
    );
    assert!(
        lines
            .windows(2)
            .all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()),
        "{logs:#}"
    );
    assert!(logs["next"].as_u64().unwrap() >= 1, "{logs:#}");
    assert_eq!(get(&curl, &format!("{url}/v1/vms/nosuch/logs")).0, 404);
    assert_eq!(
        get(&curl, &format!("{url}/v1/vms/web-0/logs?from=x")).0,
        400
    );
    let via = corral(&["--endpoint", &url, "logs", "web-api"]);
    assert!(via.status.success(), "{}", stderr(&via));
    assert!(
        stdout(&via).contains("spin: 999999999998 iterations"),
        "{}",
        stdout(&via)
    );
    let a = attach_hook(&name, ("allow", "exit"), "vm:web-0", "allow_exits.bpf.c");
    assert!(a.status.success(), "{}", stderr(&a));
    let maps = corral(&["--endpoint", &url, "hook", "maps", "allow", "--json"]);
    assert!(maps.status.success(), "{}", stderr(&maps));
    let m: serde_json::Value = serde_json::from_slice(&maps.stdout).unwrap();
    let h = &m["hook"];
    assert_eq!(
        (&h["name"], &h["vm"], &h["kind"]),
        (&"allow".into(), &"web-0".into(), &"exit".into()),
        "{m:#}"
    );
    let (code, body) = send_with(&curl, "DELETE", &format!("{url}/v1/hooks/allow"));
    assert_eq!(code, 200, "{body}");
    let gone: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&gone["name"], &gone["on"]),
        (
            &"allow".into(),
            &serde_json::json!({"vm": "web-0", "kind": 3})
        ),
        "{gone:#}"
    );
    assert!(
        gone["runs"].as_u64().unwrap() >= h["runs"].as_u64().unwrap(),
        "{gone:#}"
    );
    let (code, body) = send_with(&curl, "DELETE", &format!("{url}/v1/hooks/allow"));
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("no hook named allow"), "{body}");
    // Hooks attached through the API (the program as the request's body):
    // on a VM, and on the NIC's receive queue (found among `stats`' NICs);
    // a body that is no hook, or too long, refused; detached again.
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/hooks");
    let via_api = |hook: &str, kind: &str, at: &str, file: &str| {
        let source = hooks.join(file);
        corral(&[
            "--endpoint",
            &url,
            "hook",
            "attach",
            hook,
            "--kind",
            kind,
            "--attach",
            at,
            "--source",
            source.to_str().unwrap(),
        ])
    };
    // An upload begun on the serial line is dropped when the API begins
    // one, and that channel cannot go on with the API's: its next chunk is
    // refused.
    let line = HostDir::named(&name).unwrap();
    let (next, _) = service::send_raw(&line, &[], 0).unwrap();
    let begin = Message::HookBegin {
        name: "serial-up",
        on: control::HookOn::Vm {
            vm: "web-0",
            kind: 3,
        },
        insns: 2,
        maps: &[],
    };
    let (_, got) = service::send_raw(&line, &frame(&begin, next), 1).unwrap();
    assert!(matches!(got[..], [(_, Answer::Done)]), "{got:?}");
    let a = via_api("allow-api", "exit", "vm:web-0", "allow_exits.bpf.c");
    assert!(a.status.success(), "{}", stderr(&a));
    let chunk = Message::HookChunk {
        offset: 0,
        bytes: &[0u8; 16],
    };
    hostile(
        &line,
        &frame(&chunk, next + 1),
        &["no hook upload in progress"],
    );
    assert!(
        stdout(&a).starts_with("hook allow-api: attached on vm:web-0 (web-0's exit hook): "),
        "{}",
        stdout(&a)
    );
    let a = via_api("drop-api", "packet", "nic:uplink:rx", "drop_port.bpf.c");
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(stdout(&a).contains("(nic 0 rx)"), "{}", stdout(&a));
    let a = via_api("x", "packet", "nic:nope:rx", "drop_port.bpf.c");
    assert!(
        stderr(&a).contains("the host has no NIC named nope"),
        "{}",
        stderr(&a)
    );
    let junk = dir.join("junk.bin");
    std::fs::write(&junk, [0u8, 1, 2]).unwrap();
    let (code, body) = post_file(&curl, &format!("{url}/v1/hooks/j?vm=web-0&kind=3"), &junk);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not whole 8-byte instructions"), "{body}");
    let big = dir.join("big.bin");
    std::fs::write(&big, vec![0u8; 40_000]).unwrap();
    let (code, body) = post_file(&curl, &format!("{url}/v1/hooks/j?vm=web-0&kind=3"), &big);
    assert_eq!(code, 413, "{body}");
    for hook in ["allow-api", "drop-api"] {
        let d = corral(&["--endpoint", &url, "hook", "detach", hook]);
        assert!(d.status.success(), "{hook}: {}", stderr(&d));
    }
    // An image uploaded through the API (the file as the body, sent on in
    // chunks as it arrives) and a VM started from it; a file that is no
    // image refused with the hypervisor's words.
    let root = boot::cargo_build::workspace_root();
    let hello = boot::cargo_build::Artifacts::of(&root).image("hello");
    let up = corral(&[
        "--endpoint",
        &url,
        "start",
        "--image",
        hello.to_str().unwrap(),
        "--image-name",
        "hello-api",
        "--name",
        "h-api",
    ]);
    assert!(up.status.success(), "{}", stderr(&up));
    assert!(
        stdout(&up).starts_with("uploaded image hello-api ("),
        "{}",
        stdout(&up)
    );
    wait_for(&name, "h-api", "exited", 0);
    // An upload whose client goes away before its last byte is dropped
    // in the hypervisor: the room it set aside is free again, and there
    // is no image by its name.
    let api_free = || {
        let (code, body) = get(&curl, &format!("{url}/v1/stats"));
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["free_memory"]
            .as_u64()
            .unwrap()
    };
    let before = api_free();
    {
        use std::io::Write;
        let mut cut = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
        let head = "POST /v1/images/cut HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n";
        cut.write_all(head.as_bytes()).unwrap();
        cut.write_all(&std::fs::read(&hello).unwrap()[..3000])
            .unwrap();
        // Room set aside for it while it comes.
        let mut taken = false;
        for _ in 0..30 {
            if api_free() < before {
                taken = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        assert!(taken, "the upload never began");
    }
    let mut after = 0;
    for _ in 0..30 {
        after = api_free();
        if after == before {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    assert_eq!(after, before, "the cut upload's room was not given back");
    let (code, body) = post(&curl, &format!("{url}/v1/images/cut/start?name=c"));
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("no image named cut"), "{body}");
    let (code, body) = post_file(&curl, &format!("{url}/v1/images/junk"), &junk);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("image junk refused"), "{body}");
    assert_eq!(
        post(&curl, &format!("{url}/v1/images/hello-api/start")).0,
        400
    );
    let refused = corral(&["--endpoint", &url, "stop", "nosuch"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("no VM named nosuch"),
        "{}",
        stderr(&refused)
    );
    let not_served = corral(&["--endpoint", &url, "down", "--report", "r.json"]);
    assert_eq!(not_served.status.code(), Some(2));
    let rows = with_status(&name, "running");
    for vm in ["ctl", "web-0", "web-1", "web-2"] {
        assert!(rows.contains(&vm.to_string()), "{rows:?}");
    }
    // Events through the tool (`--all`: from the first kept), followed
    // until the endpoint goes away; the run ended through the API, and
    // `corral down` on the host then collects its status and report.
    // (Into a file: a pipe nobody reads while it runs could fill.)
    let followed_path = dir.join("events-followed.jsonl");
    let mut follower = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["--endpoint", &url, "events", "--all", "--json"])
        .stdout(std::fs::File::create(&followed_path).unwrap())
        .spawn()
        .unwrap();
    // The follower has caught up (h-api's end is among what it showed)
    // before the run ends.
    let followed = || {
        std::fs::read_to_string(&followed_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .collect::<Vec<_>>()
    };
    let mut caught_up = false;
    for _ in 0..60 {
        if followed()
            .iter()
            .any(|e| e["vm"] == "h-api" && e["event"] == "ended")
        {
            caught_up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    assert!(caught_up, "the follower never showed h-api's end");
    let down = corral(&["--endpoint", &url, "down"]);
    assert!(down.status.success(), "{}", stderr(&down));
    assert!(
        stdout(&down).contains("is ending: its VMs stop"),
        "{}",
        stdout(&down)
    );
    let start = std::time::Instant::now();
    while follower.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(240) {
            let _ = follower.kill();
            panic!("`corral --endpoint events` did not end when the host did");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(follower.wait().unwrap().success());
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&followed_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let h_api: Vec<&str> = events
        .iter()
        .filter(|e| e["vm"] == "h-api" && e["event"] != "line")
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(h_api, ["started", "ended"], "{events:#?}");
    let r = down_with_report(&name, guard, &dir);
    let vm = |n: &str| report_vm(&r, n);
    assert_eq!(vm("rogue")["status"], "killed", "{r:#}");
    assert!(
        vm("rogue")["reason"]
            .as_str()
            .unwrap()
            .contains("control_send: the VM does not hold the control capability"),
        "{r:#}"
    );
    assert_eq!(vm("rogue")["ok"], true);
    assert_eq!(vm("web-1")["restarts"], 1, "{r:#}");
}

/// `corral hook attach HOOK --kind KIND --attach TARGET --source FILE` on
/// `host`, FILE one of `images/hooks/`.
fn attach_hook(host: &str, (hook, kind): (&str, &str), target: &str, file: &str) -> Output {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../images/hooks")
        .join(file);
    corral(&[
        "hook",
        "attach",
        hook,
        "--host",
        host,
        "--kind",
        kind,
        "--attach",
        target,
        "--source",
        source.to_str().unwrap(),
    ])
}

/// Asserts that `o` failed and said `text`.
fn fails_with(o: &Output, text: &str) {
    assert!(!o.status.success(), "not refused");
    assert!(stderr(o).contains(text), "{text:?} not in {}", stderr(o));
}

/// `corral hook maps NAME --json` of `host`, whole.
fn hook_json(host: &str, name: &str) -> serde_json::Value {
    let out = corral(&["hook", "maps", name, "--host", host, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_vms_hooks_come_and_go_and_vms_start_from_an_image_uploaded_while_it_runs() {
    let name = format!("vmh{}", std::process::id());
    let guard = Host(name.clone());
    let dir = up_with(
        &name,
        "vm-hooks.toml",
        r#"
[run]
cpus = 2
timeout = 900
mode = "service"

# Reports a metric (hypercall 4) at its end, then exits 0.
[[vm]]
name = "quiet"
image = "spin"
cores = [1]
args = "work=20000"
expect = "exit:0"

[[vm]]
name = "crash"
image = "crash"
cores = [1]
expect = "killed:triple fault"

[[vm]]
name = "web"
image = "spin"
cores = [1]
args = "work=1000000000000"
expect = "stopped"
"#,
        "900",
    );
    let attach = |hook: &str, kind: &str, target: &str, file: &str| {
        attach_hook(&name, (hook, kind), target, file)
    };
    wait_for(&name, "quiet", "exited", 0);
    wait_for(&name, "crash", "killed", 0);
    let free0 = free_memory(&name);

    // Refused by name before anything is attached.
    let deny = "deny_hypercall.bpf.c";
    fails_with(
        &attach("g", "exit", "link:quiet.0->web.0", deny),
        "exit hooks go on a VM: `vm:NAME`",
    );
    fails_with(
        &attach("g", "packet", "vm:quiet", "count_pass.bpf.c"),
        "a packet hook goes on `link:",
    );
    fails_with(
        &attach("g", "exit", "vm:nosuch", deny),
        "no VM named nosuch",
    );
    fails_with(
        &attach("g", "restart", "vm:quiet", deny),
        "program refused: hook `g`: insn",
    );

    // An exit hook that denies the metric hypercall: the VM's next run is
    // stopped by the hook's name; the hook counted what it allowed.
    let a = attach("no-metrics", "exit", "vm:quiet", deny);
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(
        stdout(&a).starts_with("hook no-metrics: attached on vm:quiet (quiet's exit hook): "),
        "{}",
        stdout(&a)
    );
    assert!(
        corral(&["restart", "quiet", "--host", &name])
            .status
            .success()
    );
    wait_for(&name, "quiet", "killed", 1);
    let logs = stdout(&corral(&["logs", "quiet", "--host", &name]));
    assert!(
        logs.contains("hook `no-metrics` denied hypercall 4"),
        "{logs}"
    );
    let v = hook_json(&name, "no-metrics");
    assert_eq!(v["hook"]["vm"], "quiet", "{v:#}");
    assert_eq!(v["hook"]["kind"], "exit", "{v:#}");
    assert_eq!(v["hook"]["dropped"], 1, "the one deny: {v:#}");
    let runs = v["hook"]["runs"].as_u64().unwrap();
    assert_eq!(v["hook"]["pass"].as_u64().unwrap() + 1, runs, "{v:#}");
    let counted: u64 = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["number"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, runs - 1, "every allowed exit counted: {v:#}");

    // A swap: a hook that allows every exit takes its place; the old one's
    // final counters come back, and the next run ends as it should.
    let a = attach("allow-all", "exit", "vm:quiet", "allow_exits.bpf.c");
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(
        stdout(&a).contains(&format!(
            "in place of hook no-metrics: quiet's exit hook: {runs} runs, {} allowed, 1 other answers",
            runs - 1
        )),
        "{}",
        stdout(&a)
    );
    assert!(
        corral(&["restart", "quiet", "--host", &name])
            .status
            .success()
    );
    wait_for(&name, "quiet", "exited", 2);
    let d = corral(&["hook", "detach", "allow-all", "--host", &name]);
    assert!(d.status.success(), "{}", stderr(&d));
    let text = stdout(&d);
    assert!(
        text.contains("hook allow-all: quiet's exit hook: "),
        "{text}"
    );
    assert!(
        text.contains(" allowed, 0 other answers, 0 faults"),
        "{text}"
    );
    fails_with(
        &corral(&["hook", "maps", "no-metrics", "--host", &name]),
        "no hook named no-metrics",
    );

    // A restart hook on a VM that has ended: its next run triple-faults
    // and is restarted once more by the hook (restarts < 2), then left
    // down.
    let a = attach("twice", "restart", "vm:crash", "restart_twice.bpf.c");
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(
        corral(&["restart", "crash", "--host", &name])
            .status
            .success()
    );
    wait_for(&name, "crash", "killed", 2);
    let v = hook_json(&name, "twice");
    assert_eq!(
        (
            &v["hook"]["runs"],
            &v["hook"]["pass"],
            &v["hook"]["dropped"]
        ),
        (&2.into(), &1.into(), &1.into()),
        "{v:#}"
    );
    assert_eq!(v["entries"][0]["number"], 2, "two triple faults: {v:#}");

    // A slice hook on a running VM: it is asked at the VM's next slices.
    let a = attach("pace", "slice", "vm:web", "long_slices.bpf.c");
    assert!(a.status.success(), "{}", stderr(&a));
    let start = std::time::Instant::now();
    while hook_json(&name, "pace")["hook"]["runs"].as_u64().unwrap() == 0 {
        assert!(start.elapsed().as_secs() < 120, "the slice hook never ran");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for hook in ["twice", "pace"] {
        let d = corral(&["hook", "detach", hook, "--host", &name]);
        assert!(d.status.success(), "{}", stderr(&d));
    }
    assert_eq!(free_memory(&name), free0, "every hook's memory is back");
    // One left attached: the report has it too.
    let a = attach("pace-2", "slice", "vm:web", "long_slices.bpf.c");
    assert!(a.status.success(), "{}", stderr(&a));

    // A VM from an image file sent over the control line (the `hello`
    // ELF, uploaded as `hello-up`): it greets with its own name and
    // memory; a copy of it starts under the image's name; a second upload
    // under that name, and a file that is no image, are refused by name.
    let root = boot::cargo_build::workspace_root();
    let hello = boot::cargo_build::Artifacts::of(&root).image("hello");
    let hello = hello.to_str().unwrap();
    let up = corral(&[
        "start",
        "--image",
        hello,
        "--image-name",
        "hello-up",
        "--name",
        "up-1",
        "--memory",
        "2M",
        "--host",
        &name,
    ]);
    assert!(up.status.success(), "{}", stderr(&up));
    assert!(
        stdout(&up).starts_with("uploaded image hello-up (")
            && stdout(&up).ends_with("; started up-1 from it\n"),
        "{}",
        stdout(&up)
    );
    wait_for(&name, "up-1", "exited", 0);
    let logs = stdout(&corral(&["logs", "up-1", "--host", &name]));
    assert!(logs.contains("Hello from Corral: vm up-1 ("), "{logs}");
    assert!(logs.contains("), 2048 KiB"), "{logs}");
    let copy = corral(&["start", "hello-up", "--name", "up-2", "--host", &name]);
    assert!(copy.status.success(), "{}", stderr(&copy));
    wait_for(&name, "up-2", "exited", 0);
    let logs = stdout(&corral(&["logs", "up-2", "--host", &name]));
    assert!(logs.contains("Hello from Corral: vm up-2 ("), "{logs}");
    let again = corral(&[
        "start",
        "--image",
        hello,
        "--image-name",
        "hello-up",
        "--name",
        "up-3",
        "--host",
        &name,
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("an image named hello-up already exists"),
        "{}",
        stderr(&again)
    );
    let junk = dir.join("vm-hooks.toml");
    let bad = corral(&[
        "start",
        "--image",
        junk.to_str().unwrap(),
        "--name",
        "up-4",
        "--host",
        &name,
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad)
            .contains("image vm-hooks.toml refused: not a 64-bit little-endian x86-64 ELF file"),
        "{}",
        stderr(&bad)
    );

    let r = down_with_report(&name, guard, &dir);
    assert_eq!(r["completed"], true);
    for v in r["vms"].as_array().unwrap() {
        assert_eq!(v["ok"], true, "{v:#}");
    }
    for vm in ["up-1", "up-2"] {
        let v = report_vm(&r, vm);
        assert_eq!(
            (&v["image"], &v["status"]),
            (&"hello-up".into(), &"exited".into())
        );
    }
    let hook = |n: &str| {
        r["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == n)
            .unwrap_or_else(|| panic!("no hook {n} in {:#}", r["hooks"]))
            .clone()
    };
    let h = hook("no-metrics");
    assert_eq!(h["kind"], "exit");
    assert_eq!(h["attach"], "vm:quiet (attached at runtime)");
    assert_eq!(h["verdicts"]["deny"], 1, "{h:#}");
    let h = hook("twice");
    assert_eq!(
        (&h["verdicts"]["restart"], &h["verdicts"]["stay_down"]),
        (&1.into(), &1.into()),
        "{h:#}"
    );
    assert_eq!(hook("allow-all")["verdicts"]["deny"], 0);
    assert!(hook("pace")["runs"].as_u64().unwrap() > 0);
    assert_eq!(hook("pace-2")["kind"], "slice");
    assert_eq!(hook("pace-2")["attach"], "vm:web (attached at runtime)");
}

#[test]
fn a_packet_hook_is_attached_to_a_shared_nics_queues_while_real_udp_traffic_runs() {
    use std::net::UdpSocket;
    use std::time::Duration;
    let name = format!("nh{}", std::process::id());
    let guard = Host(name.clone());
    let free_udp = || {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (echo_port, denied_port) = (free_udp(), free_udp());
    let dir = up_with(
        &name,
        "nic-hooks.toml",
        &format!(
            r#"
[run]
cpus = 2
timeout = 900
mode = "service"

[[vm]]
name = "echo"
image = "echo"
memory = "4M"
net = 1
cores = [1]
args = "ip=10.0.2.15/24 port=7 idle=100000000000"
expect = "stopped"

[[nic]]
name = "uplink"
core = 0
forward = ["udp:{echo_port}:7", "udp:{denied_port}:9999"]

[[link]]
a = "echo.0"
b = "nic:uplink"
"#
        ),
        "900",
    );
    let attach = |hook: &str, kind: &str, target: &str, file: &str| {
        attach_hook(&name, (hook, kind), target, file)
    };
    // A UDP client on the host: the echo server answers once it is up.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 2048];
    let mut ready = false;
    for _ in 0..90 {
        sock.send_to(b"probe", ("127.0.0.1", echo_port)).unwrap();
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            assert_eq!(&buf[..n], b"probe");
            ready = true;
            break;
        }
    }
    assert!(ready, "the echo server never answered");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut next_echo = || loop {
        let (n, _) = sock.recv_from(&mut buf).expect("an echo");
        if &buf[..n] != b"probe" {
            return buf[..n].to_vec();
        }
    };
    let free0 = free_memory(&name);

    fails_with(
        &attach("x", "exit", "nic:uplink:rx", "drop_port.bpf.c"),
        "exit hooks go on a VM",
    );
    fails_with(
        &attach("x", "packet", "nic:nope:rx", "drop_port.bpf.c"),
        "no NIC `nope`",
    );
    // A hook on the NIC's receive queue drops one port before the guest
    // sees it; the other port's datagrams are echoed, every one.
    let a = attach("drop-9999", "packet", "nic:uplink:rx", "drop_port.bpf.c");
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(
        stdout(&a).starts_with("hook drop-9999: attached on nic:uplink:rx (nic 0 rx): "),
        "{}",
        stdout(&a)
    );
    const DENIED: u64 = 5;
    for i in 0..DENIED {
        sock.send_to(format!("denied {i}").as_bytes(), ("127.0.0.1", denied_port))
            .unwrap();
    }
    for i in 0..10 {
        let msg = format!("datagram {i}");
        sock.send_to(msg.as_bytes(), ("127.0.0.1", echo_port))
            .unwrap();
        assert_eq!(next_echo(), msg.as_bytes(), "datagram {i}");
    }
    let v = hook_json(&name, "drop-9999");
    assert_eq!(
        (&v["hook"]["nic"], &v["hook"]["dir"]),
        (&0.into(), &"rx".into()),
        "{v:#}"
    );
    assert_eq!(v["hook"]["dropped"], DENIED, "{v:#}");
    let denied = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["map"] == 1 && e["key"] == "0f27")
        .unwrap_or_else(|| panic!("port 9999 not counted: {v:#}"));
    assert_eq!(denied["number"], DENIED, "{v:#}");
    let d = corral(&["hook", "detach", "drop-9999", "--host", &name]);
    assert!(d.status.success(), "{}", stderr(&d));
    assert!(
        stdout(&d).contains(&format!(" {DENIED} not passed, 0 faults"))
            && stdout(&d).contains("hook drop-9999: nic 0 rx: "),
        "{}",
        stdout(&d)
    );
    assert_eq!(free_memory(&name), free0, "the hook's memory is back");
    // One on the transmit queue counts the echoes going out; it stays
    // attached, and the report has both.
    let a = attach("count-tx", "packet", "nic:uplink:tx", "count_pass.bpf.c");
    assert!(a.status.success(), "{}", stderr(&a));
    for i in 0..3 {
        let msg = format!("counted {i}");
        sock.send_to(msg.as_bytes(), ("127.0.0.1", echo_port))
            .unwrap();
        assert_eq!(next_echo(), msg.as_bytes());
    }
    let v = hook_json(&name, "count-tx");
    let runs = v["hook"]["runs"].as_u64().unwrap();
    assert!(runs >= 3, "{v:#}");
    assert_eq!(v["hook"]["pass"], runs, "{v:#}");

    let r = down_with_report(&name, guard, &dir);
    assert_eq!(r["completed"], true);
    let hook = |n: &str| {
        r["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == n)
            .unwrap_or_else(|| panic!("no hook {n} in {:#}", r["hooks"]))
            .clone()
    };
    let h = hook("drop-9999");
    assert_eq!(h["attach"], "nic 0 rx (attached at runtime)");
    assert_eq!(h["verdicts"]["drop"], DENIED, "{h:#}");
    let h = hook("count-tx");
    assert_eq!(h["attach"], "nic 0 tx (attached at runtime)");
    assert!(h["runs"].as_u64().unwrap() >= runs, "{h:#}");
    let uplink = r["nics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "uplink")
        .unwrap()
        .clone();
    assert_eq!(uplink["wire"]["drop_hook"], DENIED, "{uplink:#}");
}

#[test]
fn links_are_made_and_unmade_while_the_host_runs_for_its_vms_and_those_started_at_runtime() {
    let name = format!("mk{}", std::process::id());
    let guard = Host(name.clone());
    // Two VMs with a net port each and no link: pktgen's frames wait in
    // its ring until one is made (both wait far longer than this takes).
    let dir = up_with(
        &name,
        "made.toml",
        r#"
[run]
cpus = 2
timeout = 600
mode = "service"

[[vm]]
name = "gen"
image = "pktgen"
net = 1
cores = [1]
memory = "4M"
args = "count=300 flows=2 size=64 idle=20000000000"

[[vm]]
name = "sink"
image = "sink"
net = 1
cores = [1]
memory = "4M"
args = "idle=20000000000"

# Waits for an end frame that never comes: runs until the host is down.
[[vm]]
name = "peer"
image = "sink"
net = 1
cores = [1]
memory = "4M"
args = "idle=200000000000"
expect = "stopped"
"#,
        "600",
    );
    let link = |verb: &str, a: &str, b: &str, json: bool| {
        let mut args = vec!["link", verb, a, b, "--host", &name];
        if json {
            args.push("--json");
        }
        corral(&args)
    };
    // Refused, each by name, nothing made.
    fails_with(
        &link("attach", "gen.0", "gen.0", false),
        "gen.0 and gen.0 are the same port",
    );
    fails_with(
        &link("attach", "gen.0", "nope.0", false),
        "no VM named nope",
    );
    fails_with(
        &link("attach", "gen.1", "sink.0", false),
        "gen has no net port 1",
    );
    fails_with(
        &link("attach", "gen", "sink.0", false),
        "`gen` is not a VM's net port",
    );
    fails_with(
        &link("detach", "gen.0", "sink.0", false),
        "no link made at runtime joins gen.0 and sink.0",
    );
    // A port is on one link at a time.
    let made = link("attach", "sink.0", "peer.0", false);
    assert_eq!(
        stdout(&made),
        "link 0: sink.0<->peer.0 made\n",
        "{}",
        stderr(&made)
    );
    fails_with(
        &link("attach", "gen.0", "sink.0", false),
        "sink.0 is linked already (link 0)",
    );
    let gone = link("detach", "peer.0", "sink.0", false);
    assert!(gone.status.success(), "{}", stderr(&gone));
    assert!(
        stdout(&gone).starts_with("link 0: sink.0<->peer.0 unmade: "),
        "{}",
        stdout(&gone)
    );
    let made = link("attach", "gen.0", "sink.0", false);
    assert!(made.status.success(), "{}", stderr(&made));
    assert_eq!(stdout(&made), "link 1: gen.0<->sink.0 made\n");
    // The frames flow: the sink saw every one and the end frame.
    wait_for(&name, "gen", "exited", 0);
    wait_for(&name, "sink", "exited", 0);
    let out = corral(&["stats", "--host", &name, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = &v["links"][0];
    assert_eq!(row["link"], "gen.0<->sink.0", "{v:#}");
    let ab = row["ab"]["frames"].as_u64().unwrap();
    assert!(ab > 300, "300 frames and the end frame: {v:#}");
    assert_eq!(row["ab"]["dropped"], 0, "{v:#}");
    // Unmade (a link of VMs that ended can be): its final counters.
    let gone = link("detach", "sink.0", "gen.0", true);
    assert!(gone.status.success(), "{}", stderr(&gone));
    let g: serde_json::Value = serde_json::from_slice(&gone.stdout).unwrap();
    assert_eq!(
        (&g["link"], &g["label"], &g["made"]),
        (&1.into(), &"gen.0<->sink.0".into(), &false.into()),
        "{g:#}"
    );
    assert_eq!(g["ab"]["frames"].as_u64(), Some(ab), "{g:#}");
    let out = corral(&["stats", "--host", &name, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["links"], serde_json::json!([]), "{v:#}");
    // VMs started at runtime have their entries' ports: linked, the next
    // number.
    for (entry, vm, args) in [
        ("sink", "sink2", "idle=20000000000"),
        ("gen", "gen2", "count=50 size=64 idle=20000000000"),
    ] {
        let o = corral(&[
            "start", entry, "--name", vm, "--args", args, "--host", &name,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let made = link("attach", "gen2.0", "sink2.0", false);
    assert!(made.status.success(), "{}", stderr(&made));
    assert_eq!(stdout(&made), "link 2: gen2.0<->sink2.0 made\n");
    wait_for(&name, "gen2", "exited", 0);
    wait_for(&name, "sink2", "exited", 0);
    // The report has the three links made at runtime, two unmade.
    let r = down_with_report(&name, guard, &dir);
    let links = r["links"].as_array().unwrap();
    assert_eq!(links.len(), 3, "{r:#}");
    let at = |i: usize, key: &str| links[i][key].clone();
    assert_eq!(
        (at(1, "link"), at(1, "a"), at(1, "made_at_runtime")),
        (1.into(), "gen.0".into(), true.into()),
        "{r:#}"
    );
    assert_eq!(links[1]["ab"]["frames"].as_u64(), Some(ab), "{r:#}");
    assert_eq!(
        (at(2, "link"), at(2, "b")),
        (2.into(), "sink2.0".into()),
        "{r:#}"
    );
    assert!(links[2]["ab"]["frames"].as_u64().unwrap() > 50, "{r:#}");
    for vm in ["gen", "sink", "gen2", "sink2"] {
        let v = report_vm(&r, vm);
        assert_eq!(
            (&v["status"], &v["ok"]),
            (&"exited".into(), &true.into()),
            "{v:#}"
        );
    }
}
