//! Helpers for the scenario tests: run the `corral` tool through its library
//! entry point with a JSON report, read the report back, and make stand-in
//! hypervisors for tests of the tool itself.
//!
//! Scenarios build the hypervisor and images from this workspace. With
//! `CORRAL_PREBUILT=DIR` in the environment they boot `DIR/hypervisor` and
//! `DIR/<image>` instead (the tool's `--prebuilt`), to test another build.

pub mod solo5c;
pub mod stub;

use serde_json::Value;
use std::path::{Path, PathBuf};

/// Environment variable naming a directory of prebuilt ELF files to boot
/// instead of building (see the crate docs).
pub const PREBUILT_ENV: &str = "CORRAL_PREBUILT";

/// The workspace root.
pub fn root() -> PathBuf {
    boot::cargo_build::workspace_root()
}

/// A manifest of `images/manifests/`.
pub fn manifest(name: &str) -> PathBuf {
    root().join("images").join("manifests").join(name)
}

/// A scratch directory for one test (emptied first).
pub fn scratch(test: &str) -> PathBuf {
    let dir = root()
        .join("target")
        .join("corral")
        .join("tests")
        .join(format!("{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test's scratch directory");
    dir
}

/// What one run of the tool did.
#[derive(Debug)]
pub struct Outcome {
    /// The tool's exit status.
    pub code: i32,
    /// The `corral: error:` message, if any.
    pub error: Option<String>,
    /// The JSON report.
    pub report: Value,
}

impl Outcome {
    /// The report entry of VM `name`.
    pub fn vm(&self, name: &str) -> &Value {
        self.report["vms"]
            .as_array()
            .and_then(|vms| vms.iter().find(|v| v["name"] == name))
            .unwrap_or_else(|| panic!("no VM `{name}` in the report: {:#}", self.report))
    }

    /// The error message, or "" if there was none.
    pub fn error_text(&self) -> &str {
        self.error.as_deref().unwrap_or("")
    }

    /// Asserts that the tool exited with status 0, showing its error.
    #[track_caller]
    pub fn assert_succeeded(&self) {
        assert_eq!(self.code, 0, "{}", self.error_text());
    }

    /// Asserts that the run completed (a `done` record arrived), showing
    /// the tool's error.
    #[track_caller]
    pub fn assert_completed(&self) {
        assert_eq!(
            self.report["completed"],
            true,
            "no `done` record: {}",
            self.error_text()
        );
    }

    /// Every VM of the report, in manifest order.
    pub fn vms(&self) -> &[Value] {
        self.report["vms"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_else(|| panic!("no `vms` array in the report: {:#}", self.report))
    }

    /// The VMs whose names start with `prefix` (the clones of a fleet
    /// entry: `prefix` = `"<entry>-"`).
    pub fn vms_named(&self, prefix: &str) -> Vec<&Value> {
        self.vms()
            .iter()
            .filter(|v| v["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
            .collect()
    }

    /// The report entry of the link from port `a` to port `b` (`vm.port`).
    pub fn link(&self, a: &str, b: &str) -> &Value {
        self.links()
            .iter()
            .find(|l| l["a"] == a && l["b"] == b)
            .unwrap_or_else(|| panic!("no link {a} <-> {b} in the report: {:#}", self.report))
    }

    /// Every link of the report, in manifest order.
    pub fn links(&self) -> &[Value] {
        self.report["links"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_else(|| panic!("no `links` array in the report: {:#}", self.report))
    }

    /// Metric `name` of VM `vm`, or a panic naming both.
    pub fn metric(&self, vm: &str, name: &str) -> u64 {
        let v = self.vm(vm);
        v["metrics"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("VM `{vm}` reported no metric `{name}`: {v:#}"))
    }

    /// The sum of VM `vm`'s metrics whose names start with `prefix`.
    pub fn metric_sum(&self, vm: &str, prefix: &str) -> u64 {
        let v = self.vm(vm);
        v["metrics"]
            .as_object()
            .unwrap_or_else(|| panic!("VM `{vm}` has no metrics: {v:#}"))
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, n)| {
                n.as_u64()
                    .unwrap_or_else(|| panic!("{vm}: metric `{name}` is not a number"))
            })
            .sum()
    }

    /// The hypervisor's serial console (COM1) of the run, as the emulator
    /// wrote it to the run directory.
    pub fn console(&self) -> String {
        let dir = self.report["run_dir"]
            .as_str()
            .unwrap_or_else(|| panic!("no run directory in the report: {:#}", self.report));
        let path = Path::new(dir).join("com1.txt");
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// The `nics` entry named `name` of a JSON report.
pub fn nic<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["nics"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == name))
        .unwrap_or_else(|| panic!("no nic `{name}` in the report: {report:#}"))
}

/// The attached port `port` (`vm.port`) of a `nics` entry.
pub fn nic_port<'a>(nic: &'a Value, port: &str) -> &'a Value {
    nic["ports"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["port"] == port))
        .unwrap_or_else(|| panic!("no port `{port}` on {nic:#}"))
}

/// A run of the tool going on in another thread while the test plays a
/// client: [`Background::over`] says whether it has ended,
/// [`Background::finish`] waits for its outcome.
pub struct Background {
    done: std::sync::mpsc::Receiver<()>,
    thread: std::thread::JoinHandle<Outcome>,
}

impl Background {
    /// Starts `corral run MANIFEST ARGS...` for test `test` (see [`run`]).
    pub fn start(test: &'static str, manifest: PathBuf, args: &'static [&'static str]) -> Self {
        let (tx, done) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let out = run(test, &manifest, args);
            let _ = tx.send(());
            out
        });
        Background { done, thread }
    }

    /// Whether the run has ended.
    pub fn over(&self) -> bool {
        !matches!(
            self.done.try_recv(),
            Err(std::sync::mpsc::TryRecvError::Empty)
        )
    }

    /// Waits for the run to end; its outcome.
    pub fn finish(self) -> Outcome {
        self.thread.join().expect("the run's thread")
    }
}

/// One direction of a link in a JSON report (`"ab"` or `"ba"`): frames
/// delivered, and frames handed over (delivered or dropped).
pub fn flow(link: &Value, dir: &str) -> (u64, u64) {
    let f = &link[dir];
    let frames = num(f, "frames");
    (
        frames,
        frames + num(f, "drop_peer") + num(f, "drop_size") + num(f, "drop_stalled"),
    )
}

/// A number of a JSON report, or a panic naming the key and the value.
pub fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is not a number in {v:#}"))
}

/// Asserts that VM entry `vm` of a report exited by itself with `code`.
#[track_caller]
pub fn assert_exited(vm: &Value, code: i64) {
    assert_eq!(vm["status"], "exited", "{vm:#}");
    assert_eq!(vm["exit_code"], code, "{vm:#}");
}

/// Asserts that VM entry `vm` of a report was stopped by the hypervisor
/// with a reason that contains each of `parts`; returns the reason.
#[track_caller]
pub fn assert_killed<'v>(vm: &'v Value, parts: &[&str]) -> &'v str {
    assert_eq!(vm["status"], "killed", "{vm:#}");
    let reason = vm["reason"].as_str().unwrap_or("");
    for part in parts {
        assert!(
            reason.contains(part),
            "{}: `{reason}` lacks `{part}`",
            vm["name"]
        );
    }
    reason
}

/// Writes `text` as `name` in test `test`'s scratch directory; returns its
/// path.
pub fn write_manifest(test: &str, name: &str, text: &str) -> PathBuf {
    let path = scratch(test).join(name);
    std::fs::write(&path, text).expect("write the test manifest");
    path
}

/// Writes `text` as `name` in test `test`'s scratch directory and runs the
/// tool on it without booting anything that the checks stop first.
pub fn run_text(test: &str, name: &str, text: &str, args: &[&str]) -> Outcome {
    run(test, &write_manifest(test, name, text), args)
}

/// Runs `text` as a manifest the tool must refuse before it stages a run
/// (nothing built or booted), and returns the tool's error message.
#[track_caller]
pub fn refused(test: &str, text: &str) -> String {
    let out = run_text(test, "m.toml", text, &[]);
    assert_ne!(out.code, 0, "{test}: accepted");
    assert_eq!(out.report["completed"], false);
    assert!(
        out.report["run_dir"].is_null(),
        "{test}: got as far as staging a run"
    );
    out.error_text().to_string()
}

/// Runs `manifest` with `--timeout timeout` on a stand-in hypervisor that
/// prints `console` (see [`stub_build`]).
pub fn run_stub(test: &str, manifest: &Path, console: &str, timeout: &str) -> Outcome {
    let build = stub_build(test, console);
    let build = build.to_str().expect("UTF-8 build path");
    run(test, manifest, &["--prebuilt", build, "--timeout", timeout])
}

/// Runs `corral run MANIFEST ARGS... --report FILE --quiet` for test `test`
/// and reads the report back.
pub fn run(test: &str, manifest: &Path, args: &[&str]) -> Outcome {
    let dir = scratch(&format!("{test}-report"));
    let report_path = dir.join("report.json");
    let manifest = manifest.to_str().expect("UTF-8 manifest path");
    let report = report_path.to_str().expect("UTF-8 report path");
    let prebuilt = std::env::var(PREBUILT_ENV).ok();
    let mut all = vec!["run", manifest];
    if let Some(dir) = &prebuilt
        && !args.contains(&"--prebuilt")
    {
        all.extend_from_slice(&["--prebuilt", dir]);
    }
    all.extend_from_slice(args);
    all.extend_from_slice(&["--report", report, "--quiet"]);
    let inv = boot::cli::invoke(&all);
    let error = inv.error.map(|e| {
        eprintln!("corral: error: {e}");
        e.to_string()
    });
    let text = std::fs::read_to_string(&report_path)
        .unwrap_or_else(|e| panic!("no report at {}: {e}", report_path.display()));
    let report = serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON report: {e}"));
    Outcome {
        code: inv.code,
        error,
        report,
    }
}

/// A directory with a stand-in hypervisor that prints `console` and with
/// every image the manifests use (copies of it, never booted), for
/// `--prebuilt`.
pub fn stub_build(test: &str, console: &str) -> PathBuf {
    let dir = scratch(&format!("{test}-build"));
    let elf = stub::hypervisor(console);
    for name in [
        "hypervisor",
        "hello",
        "escape",
        "badcall",
        "crash",
        "bench",
        "spin",
        "pktgen",
        "firewall",
        "nat",
        "forward",
        "sink",
        "echo",
        "ringbad",
    ] {
        std::fs::write(dir.join(name), &elf).expect("write the stand-in ELF");
    }
    dir
}
