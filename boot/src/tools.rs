//! Makes sure the external tools a run needs are present: the emulator,
//! GRUB's ISO maker and its helpers (installed with apt-get if missing) and
//! the bare-metal Rust target (added with rustup if missing).

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// Programs a run calls.
pub const PROGRAMS: [&str; 4] = ["bochs-bin", "grub-mkrescue", "xorriso", "mformat"];
/// Files the Debian packages put in place that a run needs besides them:
/// the emulator's firmware and GRUB's BIOS boot modules.
pub const FILES: [&str; 3] = [
    "/usr/share/bochs/BIOS-bochs-latest",
    "/usr/share/bochs/VGABIOS-lgpl-latest",
    "/usr/lib/grub/i386-pc/cdboot.img",
];
/// Debian packages that provide them.
pub const PACKAGES: [&str; 7] = [
    "bochs",
    "bochsbios",
    "vgabios",
    "grub-pc-bin",
    "grub-common",
    "xorriso",
    "mtools",
];
/// The Rust target the hypervisor and images are built for.
pub const RUST_TARGET: &str = "x86_64-unknown-none";

/// Set once the emulator and ISO tools were found, so later runs in the same
/// process skip the check; the lock also keeps parallel runs from installing
/// twice.
static EMULATOR_CHECKED: Mutex<bool> = Mutex::new(false);
/// Set once the Rust target was found or added.
static TARGET_CHECKED: Mutex<bool> = Mutex::new(false);

/// Finds `program` in `PATH`.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// What is missing, by program or file name.
pub fn missing() -> Vec<String> {
    let programs = PROGRAMS
        .iter()
        .filter(|p| find_in_path(p).is_none())
        .map(|p| p.to_string());
    let files = FILES
        .iter()
        .filter(|f| !Path::new(f).exists())
        .map(|f| f.to_string());
    programs.chain(files).collect()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn last_line(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stderr);
    let line = text.lines().rev().find(|l| !l.trim().is_empty());
    line.map_or_else(|| format!("exit status {}", output.status), str::to_string)
}

/// One apt-get at a time in this process (tests run in threads).
static APT: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// Tries of an apt-get another apt-get (another process) holds the lock of.
const LOCKED_TRIES: u32 = 120;

/// Runs apt-get, waiting while another apt-get holds its lock (`update`
/// does not honour `DPkg::Lock::Timeout`).
fn apt_get(root: bool, args: &[&str]) -> std::result::Result<(), (String, String)> {
    let _one = APT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut tries = 0;
    loop {
        match apt_get_once(root, args) {
            Err((_, detail)) if detail.contains("Unable to lock") && tries < LOCKED_TRIES => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

fn apt_get_once(root: bool, args: &[&str]) -> std::result::Result<(), (String, String)> {
    let mut cmd = if root {
        Command::new("apt-get")
    } else {
        let mut c = Command::new("sudo");
        c.arg("-n").arg("apt-get");
        c
    };
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    let shown = format!("apt-get {}", args.join(" "));
    match cmd.output() {
        Err(e) => Err((format!("cannot run {shown}: {e}"), String::new())),
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err((
            format!("{shown}: {}", last_line(&o)),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )),
    }
}

fn install(progress: &dyn Fn(&str)) -> Result<()> {
    let root = is_root();
    progress(&format!(
        "installing {} with apt-get{}",
        PACKAGES.join(" "),
        if root { "" } else { " (sudo -n)" }
    ));
    let fail = |(why, detail): (String, String)| {
        Error::new(format!(
            "the emulator is missing and could not be installed: {why}"
        ))
        .with_detail(detail)
    };
    apt_get(root, &["update"]).map_err(fail)?;
    let mut args = vec!["install", "-y", "-o", "DPkg::Lock::Timeout=600"];
    args.extend(PACKAGES);
    apt_get(root, &args).map_err(fail)?;
    let still = missing();
    if still.is_empty() {
        Ok(())
    } else {
        Err(Error::new(format!(
            "the emulator is missing and could not be installed: still missing after apt-get: {}",
            still.join(", ")
        )))
    }
}

fn add_rust_target(workspace: &Path, progress: &dyn Fn(&str)) -> Result<()> {
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(workspace)
        .output();
    // Without rustup the toolchain is managed some other way; the build
    // itself will say if the target is missing.
    let Ok(listed) = listed else { return Ok(()) };
    if !listed.status.success()
        || String::from_utf8_lossy(&listed.stdout)
            .lines()
            .any(|l| l.trim() == RUST_TARGET)
    {
        return Ok(());
    }
    progress(&format!("adding the Rust target {RUST_TARGET} with rustup"));
    let added = Command::new("rustup")
        .args(["target", "add", RUST_TARGET])
        .current_dir(workspace)
        .output()
        .map_err(|e| Error::new(format!("cannot run rustup: {e}")))?;
    if added.status.success() {
        Ok(())
    } else {
        Err(Error::new(format!(
            "cannot add the Rust target {RUST_TARGET}: {}",
            last_line(&added)
        ))
        .with_detail(String::from_utf8_lossy(&added.stderr)))
    }
}

/// Makes sure the emulator and the ISO tools are there, installing what is
/// missing; `progress` is told about each installation.
pub fn ensure_emulator(progress: &dyn Fn(&str)) -> Result<()> {
    let mut checked = EMULATOR_CHECKED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if *checked {
        return Ok(());
    }
    let absent = missing();
    if !absent.is_empty() {
        progress(&format!("missing: {}", absent.join(", ")));
        install(progress)?;
    }
    *checked = true;
    Ok(())
}

/// Makes sure the toolchain of the workspace at `workspace` has the
/// bare-metal target, adding it with rustup if not.
pub fn ensure_rust_target(workspace: &Path, progress: &dyn Fn(&str)) -> Result<()> {
    let mut checked = TARGET_CHECKED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !*checked {
        add_rust_target(workspace, progress)?;
        *checked = true;
    }
    Ok(())
}

/// Makes sure `program` is in `PATH`, installing Debian package `package`
/// with apt-get if not (host clients the scenario tests use, like `curl`;
/// clang for hooks). Returns its path.
pub fn ensure_program(program: &str, package: &str, progress: &dyn Fn(&str)) -> Result<PathBuf> {
    if let Some(path) = find_in_path(program) {
        return Ok(path);
    }
    let root = is_root();
    progress(&format!(
        "{program} is missing: installing {package} with apt-get{}",
        if root { "" } else { " (sudo -n)" }
    ));
    let fail = |(why, detail): (String, String)| {
        Error::new(format!(
            "{program} is missing and could not be installed: {why}"
        ))
        .with_detail(detail)
    };
    apt_get(root, &["update"]).map_err(fail)?;
    if let Some(path) = find_in_path(program) {
        // Another thread installed it meanwhile.
        return Ok(path);
    }
    apt_get(
        root,
        &["install", "-y", "-o", "DPkg::Lock::Timeout=600", package],
    )
    .map_err(fail)?;
    find_in_path(program).ok_or_else(|| {
        Error::new(format!(
            "{program} is missing and could not be installed: not in PATH after installing {package}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_in_path() {
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("no-such-program-corral").is_none());
    }

    #[test]
    fn a_program_in_path_needs_no_installing() {
        let said = std::cell::Cell::new(false);
        let path = ensure_program("sh", "dash", &|_| said.set(true)).unwrap();
        assert!(path.ends_with("sh"));
        assert!(!said.get(), "nothing to install, nothing said");
    }

    #[test]
    fn packages_cover_programs() {
        assert!(PACKAGES.contains(&"bochs") && PACKAGES.contains(&"mtools"));
        assert_eq!(PROGRAMS.len(), 4);
    }
}
