//! Solo5's own C test unikernels for the hvt tests, built at test time from the Solo5 0.7.2 sources the `solo5-sys` crate carries (cargo downloads it into its registry; nothing of it is committed): the hvt bindings compiled with gcc (as Solo5's own CI on Linux: its TLS test needs gcc), each test's manifest generated with Solo5's `solo5-elftool`, each test linked with Solo5's `solo5_hvt.lds`, as Solo5's own toolchain does.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The crate that carries Solo5's sources, and its version.
const CRATE: &str = "solo5-sys";
const VERSION: &str = "0.1.0";

/// The Solo5 binding sources of the hvt target, as Solo5's build lists
/// them (under `bindings/`).
const HVT_BINDINGS: &[&str] = &[
    "hvt/start.c",
    "cpu_x86_64.c",
    "cpu_vectors_x86_64.S",
    "abort.c",
    "crt.c",
    "printf.c",
    "intr.c",
    "lib.c",
    "mem.c",
    "exit.c",
    "log.c",
    "cmdline.c",
    "tls.c",
    "mft.c",
    "hvt/platform.c",
    "hvt/platform_intr.c",
    "hvt/time.c",
    "hvt/platform_lifecycle.c",
    "hvt/yield.c",
    "hvt/tscclock.c",
    "hvt/console.c",
    "hvt/net.c",
    "hvt/block.c",
];

/// The flags Solo5's toolchain gives gcc for its target (after
/// `-nostdinc -isystem <gcc's own headers>`).
const TARGET_FLAGS: &[&str] = &[
    "-mstack-protector-guard=global",
    "-ffreestanding",
    "-fstack-protector-strong",
    "-std=c11",
    "-O2",
];

/// The further flags of the bindings themselves (no SSE, no red zone).
const BINDING_FLAGS: &[&str] = &[
    "-mno-sse",
    "-mno-mmx",
    "-mno-aes",
    "-mno-avx",
    "-mno-red-zone",
    "-D__SOLO5_BINDINGS__",
    "-DSSP_GUARD_SYMBOL=__stack_chk_guard",
    "-DSSP_FAIL_SYMBOL=__stack_chk_fail",
];

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"),
        PathBuf::from,
    )
}

/// The unpacked crate in cargo's registry, if it is there.
fn unpacked() -> Option<PathBuf> {
    let dirs = fs::read_dir(cargo_home().join("registry/src")).ok()?;
    dirs.flatten()
        .map(|d| d.path().join(format!("{CRATE}-{VERSION}")).join("solo5"))
        .find(|p| p.join("bindings/solo5_hvt.lds").is_file())
}

/// Solo5's source tree: from cargo's registry, fetched there first (by
/// `cargo fetch` of a scratch package depending on the crate) if needed.
pub fn source(scratch: &Path) -> Result<PathBuf, String> {
    if let Some(p) = unpacked() {
        return Ok(p);
    }
    let pkg = scratch.join("solo5-fetch");
    fs::create_dir_all(pkg.join("src")).map_err(|e| e.to_string())?;
    fs::write(
        pkg.join("Cargo.toml"),
        format!(
            "[package]\nname = \"solo5-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[workspace]\n\n[dependencies]\n{CRATE} = \"={VERSION}\"\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    fs::write(pkg.join("src/lib.rs"), "").map_err(|e| e.to_string())?;
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .arg("fetch")
            .arg("--manifest-path")
            .arg(pkg.join("Cargo.toml")),
    )?;
    unpacked().ok_or_else(|| format!("`cargo fetch` did not unpack {CRATE} {VERSION}"))
}

/// Runs `cmd`; its output in the error if it fails.
fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The tools (installed on demand, as clang is for hooks): gcc with the
/// flags that keep the host's C library headers out, `ld` and `objcopy`.
fn tools() -> Result<(PathBuf, Vec<String>, PathBuf, PathBuf), String> {
    let say = |m: &str| eprintln!("solo5 C tests: {m}");
    let get = |program, package| {
        boot::tools::ensure_program(program, package, &say).map_err(|e| e.to_string())
    };
    let gcc = get("gcc", "gcc")?;
    let out = Command::new(&gcc)
        .arg("-print-file-name=include")
        .output()
        .map_err(|e| format!("gcc: {e}"))?;
    let own = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut flags = vec!["-nostdinc".to_string(), "-isystem".to_string(), own];
    flags.extend(TARGET_FLAGS.iter().map(|f| f.to_string()));
    Ok((
        gcc,
        flags,
        get("ld", "binutils")?,
        get("objcopy", "binutils")?,
    ))
}

/// Builds Solo5's test unikernels `names` (such as `test_hello`) for hvt
/// into `out`; returns each one's path, in order.
pub fn build_tests(scratch: &Path, out: &Path, names: &[&str]) -> Result<Vec<PathBuf>, String> {
    let src = source(scratch)?;
    let (cc, target_flags, ld, objcopy) = tools()?;
    let work_dir = out.join("gen");
    fs::create_dir_all(&work_dir).map_err(|e| e.to_string())?;
    fs::write(
        work_dir.join("version.h"),
        format!("#define SOLO5_VERSION \"v0.7.2 ({CRATE} {VERSION})\"\n"),
    )
    .map_err(|e| e.to_string())?;
    let include = src.join("include");
    // The bindings, as one relocatable object exporting Solo5's API only.
    let mut objects = Vec::new();
    for (i, file) in HVT_BINDINGS.iter().enumerate() {
        let o = work_dir.join(format!("binding{i}.o"));
        let mut cc = Command::new(&cc);
        cc.args(&target_flags).args(BINDING_FLAGS);
        if file.ends_with(".S") {
            cc.args(["-DASM_FILE", "-Wa,--noexecstack"]);
        }
        cc.arg("-I").arg(&work_dir).arg("-I").arg(&include);
        run(cc
            .arg("-c")
            .arg(src.join("bindings").join(file))
            .arg("-o")
            .arg(&o))?;
        objects.push(o);
    }
    let bindings = work_dir.join("solo5_hvt.o");
    run(Command::new(&ld)
        .arg("-r")
        .args(&objects)
        .arg("-o")
        .arg(&bindings))?;
    run(Command::new(&objcopy)
        .args(["-w", "-G", "solo5_*", "-G", "_start*"])
        .args(["-G", "__stack_chk_guard", "-G", "__stack_chk_fail"])
        .arg(&bindings))?;
    // Solo5's manifest generator, a host program.
    let elftool = work_dir.join("solo5-elftool");
    run(Command::new(&cc)
        .args(["-std=c11", "-O2", "-I"])
        .arg(&include)
        .arg("-I")
        .arg(&work_dir)
        .arg(src.join("elftool/elftool.c"))
        .arg("-o")
        .arg(&elftool))?;
    let mut built = Vec::new();
    for name in names {
        let dir = src.join("tests").join(name);
        let work = work_dir.join(name);
        fs::create_dir_all(&work).map_err(|e| e.to_string())?;
        let manifest_c = work.join("manifest.c");
        run(Command::new(&elftool)
            .arg("gen-manifest")
            .arg(dir.join("manifest.json"))
            .arg(&manifest_c))?;
        let mut objs = Vec::new();
        for c in [dir.join(format!("{name}.c")), manifest_c] {
            let o = work
                .join(c.file_stem().unwrap_or_default())
                .with_extension("o");
            run(Command::new(&cc)
                .args(&target_flags)
                .arg("-I")
                .arg(&include)
                .arg("-c")
                .arg(&c)
                .arg("-o")
                .arg(&o))?;
            objs.push(o);
        }
        let elf = out.join(format!("{name}.hvt"));
        run(Command::new(&ld)
            .args(["-nostdlib", "-z", "max-page-size=0x1000", "-static", "-T"])
            .arg(src.join("bindings/solo5_hvt.lds"))
            .args(&objs)
            .arg(&bindings)
            .arg("-o")
            .arg(&elf))?;
        built.push(elf);
    }
    Ok(built)
}
