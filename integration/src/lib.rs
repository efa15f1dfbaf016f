//! Helpers for the scenario tests: run the `corral` tool through its library
//! entry point with a JSON report, read the report back, and make stand-in
//! hypervisors for tests of the tool itself.

pub mod stub;

use serde_json::Value;
use std::path::{Path, PathBuf};

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
}

/// Runs `corral run MANIFEST ARGS... --report FILE --quiet` for test `test`
/// and reads the report back.
pub fn run(test: &str, manifest: &Path, args: &[&str]) -> Outcome {
    let dir = scratch(&format!("{test}-report"));
    let report_path = dir.join("report.json");
    let manifest = manifest.to_str().expect("UTF-8 manifest path");
    let report = report_path.to_str().expect("UTF-8 report path");
    let mut all = vec!["run", manifest];
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
    for name in ["hypervisor", "hello", "escape", "badcall", "crash", "bench"] {
        std::fs::write(dir.join(name), &elf).expect("write the stand-in ELF");
    }
    dir
}
