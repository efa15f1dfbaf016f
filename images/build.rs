//! Links the bare-metal builds of the images with guest-lib's linker script,
//! which places them at `vmm_abi::corral::layout::IMAGE_BASE_GPA`. Host builds (for
//! `cargo test` and `cargo clippy`) link normally.

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = manifest_dir.join("../guest-lib/guest.ld");
    let script = script
        .canonicalize()
        .unwrap_or_else(|e| panic!("linker script {}: {e}", script.display()));
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    }
}
