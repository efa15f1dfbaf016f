//! What the benches that run a template manifest many times share: reading the template, checking one run's result, writing the JSON table and naming the set-up.

use crate::error::{Error, Result};
use crate::report::Report;
use crate::run::RunResult;
use serde::Serialize;
use std::path::Path;

/// The bench manifest template at `path`.
pub fn read_template(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::new(format!("cannot read manifest {}: {e}", path.display())))
}

/// The report of a run (`what` names it in errors) that passed; an error
/// if it failed or a VM did not end as expected.
pub fn passed(result: RunResult, what: &str) -> Result<Report> {
    if let Some(e) = result.error {
        return Err(Error::new(format!("{what}: {e}")).with_detail(e.detail().unwrap_or("")));
    }
    if !result.report.passed() {
        return Err(Error::new(format!("{what}: the run did not pass")));
    }
    Ok(result.report)
}

#[derive(Serialize)]
struct Table<'a, R> {
    cpu_model: &'a str,
    cpus: u32,
    rows: &'a [R],
    repeatable: bool,
}

/// Writes the bench's `rows` as JSON to `report` (if asked) and returns
/// the set-up its table is headed with (`TEMPLATE on MODEL xCPUS`).
pub fn finish<R: Serialize>(
    report: Option<&Path>,
    template: &Path,
    (cpu_model, cpus): (&str, u32),
    rows: &[R],
    repeatable: bool,
) -> Result<String> {
    if let Some(path) = report {
        let table = Table {
            cpu_model,
            cpus,
            rows,
            repeatable,
        };
        let json = serde_json::to_string_pretty(&table)
            .map_err(|e| Error::new(format!("cannot encode the bench report: {e}")))?;
        write(path, &(json + "\n"))?;
    }
    Ok(format!(
        "{} on {cpu_model} x{cpus}",
        template
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    ))
}

/// The zero-exit target's verdict over runs of (exits, units) counted in
/// their windows: the worst run's exits per `unit` (`frame`, `packet`).
pub fn exits_verdict(runs: impl Iterator<Item = (u64, u64)>, unit: &str) -> Option<String> {
    let (worst, (exits, units)) = runs
        .filter_map(|(e, n)| Some((crate::report::hundredths(e, n)?, (e, n))))
        .max_by_key(|(h, (e, _))| (*h, *e))?;
    Some(format!(
        "target 0.00 VM exits per {unit}: {} (most: {}.{:02}, {exits} exits in {units} {unit}s)",
        if worst == 0 { "met" } else { "NOT met" },
        worst / 100,
        worst % 100,
    ))
}

/// Sets `[run] timeout` of a manifest's TOML `table` to `secs`.
pub fn set_timeout(table: &mut toml::Table, secs: u64) {
    let run = table
        .entry("run")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(run) = run.as_table_mut() {
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        run.insert("timeout".to_string(), toml::Value::Integer(secs));
    }
}

/// Writes `text` to `path`, naming the file in the error.
pub fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text)
        .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))
}
