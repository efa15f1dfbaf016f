//! Builds the hypervisor and the guest images with a nested `cargo build`
//! for the bare-metal target, in a target directory of its own so it never
//! waits on the cargo that runs this tool, and finds the images that exist.

use crate::error::{Error, Result};
use crate::tools::RUST_TARGET;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Serializes builds started by parallel runs in one process (cargo would
/// serialize them anyway, with a "waiting for file lock" message).
static BUILDING: Mutex<()> = Mutex::new(());

/// Variables of an outer cargo that would change or confuse the nested
/// build (flags that override `.cargo/config.toml`, another target or
/// target directory, the outer jobserver).
const SCRUBBED_ENV: [&str; 9] = [
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
];

/// The workspace this tool belongs to.
pub fn workspace_root() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// The nested build's target directory.
pub fn target_dir(root: &Path) -> PathBuf {
    root.join("target").join("corral")
}

/// Names of the `images` crate's binaries, in the order its Cargo.toml
/// lists them.
pub fn known_images(root: &Path) -> Result<Vec<String>> {
    let path = root.join("images").join("Cargo.toml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::new(format!("cannot read {}: {e}", path.display())))?;
    images_in(&text).map_err(|e| Error::new(format!("{}: {e}", path.display())))
}

fn images_in(cargo_toml: &str) -> std::result::Result<Vec<String>, String> {
    let value: toml::Table = toml::from_str(cargo_toml).map_err(|e| e.message().to_string())?;
    let bins = match value.get("bin") {
        Some(toml::Value::Array(bins)) => bins,
        Some(_) => return Err("`bin` is not an array of tables".to_string()),
        None => return Ok(Vec::new()),
    };
    bins.iter()
        .map(|b| {
            b.get("name")
                .and_then(toml::Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| "a [[bin]] has no name".to_string())
        })
        .collect()
}

/// Where the built ELF files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifacts {
    dir: PathBuf,
}

impl Artifacts {
    /// Artifacts of the workspace at `root` (built or not).
    pub fn of(root: &Path) -> Self {
        Artifacts::at(&target_dir(root).join(RUST_TARGET).join("release"))
    }

    /// ELF files already built elsewhere: `dir/hypervisor` and `dir/<image>`.
    pub fn at(dir: &Path) -> Self {
        Artifacts {
            dir: dir.to_path_buf(),
        }
    }

    /// The directory holding the ELF files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The hypervisor ELF.
    pub fn hypervisor(&self) -> PathBuf {
        self.dir.join("hypervisor")
    }

    /// An image's ELF.
    pub fn image(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Builds the hypervisor and every image (release, bare-metal target).
pub fn build(root: &Path) -> Result<Artifacts> {
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "build",
        "--release",
        "--target",
        RUST_TARGET,
        "-p",
        "hypervisor",
        "-p",
        "images",
    ])
    .current_dir(root)
    .env("CARGO_TARGET_DIR", target_dir(root));
    for var in SCRUBBED_ENV.iter().filter(|v| **v != "CARGO_TARGET_DIR") {
        cmd.env_remove(var);
    }
    let output = cmd
        .output()
        .map_err(|e| Error::new(format!("cannot run {}: {e}", Path::new(&cargo).display())))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first_error = stderr
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or("see the output above");
        return Err(Error::new(format!(
            "building the hypervisor and images failed: {first_error}"
        ))
        .with_detail(stderr.into_owned()));
    }
    let artifacts = Artifacts::of(root);
    let hv = artifacts.hypervisor();
    if !hv.is_file() {
        return Err(Error::new(format!(
            "the build succeeded but {} is missing",
            hv.display()
        )));
    }
    Ok(artifacts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_come_from_bin_tables() {
        let toml = "[package]\nname = \"images\"\n[[bin]]\nname = \"hello\"\npath = \"a\"\n[[bin]]\nname = \"crash\"\n";
        assert_eq!(images_in(toml).unwrap(), ["hello", "crash"]);
        assert_eq!(images_in("[package]\n").unwrap(), Vec::<String>::new());
        assert!(images_in("[[bin]]\npath = \"x\"\n").is_err());
        assert!(images_in("bin = 3\n").is_err());
        assert!(images_in("[[bin]\n").is_err());
    }

    #[test]
    fn this_workspace_has_hello() {
        let root = workspace_root();
        assert!(root.join("vmm-abi").is_dir());
        assert!(known_images(&root).unwrap().contains(&"hello".to_string()));
    }

    #[test]
    fn artifacts_live_in_the_corral_target_dir() {
        let a = Artifacts::of(Path::new("/w"));
        assert_eq!(
            a.hypervisor(),
            Path::new("/w/target/corral/x86_64-unknown-none/release/hypervisor")
        );
        assert_eq!(
            a.image("hello"),
            Path::new("/w/target/corral/x86_64-unknown-none/release/hello")
        );
        assert_eq!(
            a.dir(),
            Path::new("/w/target/corral/x86_64-unknown-none/release")
        );
    }
}
