//! Links the bare-metal builds of the images with guest-lib's linker scripts:
//! Corral images with `guest.ld` (at `vmm_abi::corral::layout::IMAGE_BASE_GPA`),
//! Solo5 hvt images (the bins named `hvt_*`) with `hvt.ld` (at
//! `vmm_abi::hvt::MIN_LOAD_GPA`, with the Solo5 notes). Host builds (for
//! `cargo test` and `cargo clippy`) link normally.

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = |name: &str| {
        let path = manifest_dir.join("../guest-lib").join(name);
        let path = path
            .canonicalize()
            .unwrap_or_else(|e| panic!("linker script {}: {e}", path.display()));
        println!("cargo:rerun-if-changed={}", path.display());
        path
    };
    let (corral, hvt) = (script("guest.ld"), script("hvt.ld"));
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.toml");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    // Every `[[bin]]` of this package, by name.
    let cargo_toml = std::fs::read_to_string(manifest_dir.join("Cargo.toml"))
        .unwrap_or_else(|e| panic!("images/Cargo.toml: {e}"));
    let mut in_bin = false;
    for line in cargo_toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
            continue;
        }
        let Some(name) = line
            .strip_prefix("name = \"")
            .and_then(|r| r.strip_suffix('"'))
        else {
            continue;
        };
        if !in_bin {
            continue;
        }
        let script = if name.starts_with("hvt_") {
            &hvt
        } else {
            &corral
        };
        println!("cargo:rustc-link-arg-bin={name}=-T{}", script.display());
    }
}
