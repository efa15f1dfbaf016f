//! The tool itself, without the real hypervisor: errors a user meets before
//! anything boots, and the boot pipeline driven by a stand-in hypervisor
//! that prints a fixed console (completion, a refusal, a timeout).

use integration::{manifest, run, scratch, stub_build};

#[test]
fn missing_manifest_is_an_error() {
    let out = run("missing", &manifest("no-such-manifest.toml"), &[]);
    assert_ne!(out.code, 0);
    assert!(
        out.error_text().starts_with("cannot read manifest ")
            && out.error_text().contains("no-such-manifest.toml"),
        "{}",
        out.error_text()
    );
    assert_eq!(out.report["completed"], false);
}

#[test]
fn bad_toml_is_an_error_naming_its_line() {
    let dir = scratch("bad-toml");
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[[vm]]\nname = \"a\"\nimage = hello\n").unwrap();
    let out = run("bad-toml", &path, &[]);
    assert_ne!(out.code, 0);
    assert!(
        out.error_text().contains("bad.toml:3:"),
        "{}",
        out.error_text()
    );
}

#[test]
fn unknown_image_is_an_error_listing_known_images() {
    let dir = scratch("unknown-image");
    let path = dir.join("m.toml");
    std::fs::write(&path, "[[vm]]\nname = \"a\"\nimage = \"nosuch\"\n").unwrap();
    let out = run("unknown-image", &path, &[]);
    assert_ne!(out.code, 0);
    let e = out.error_text();
    assert!(
        e.contains("no image named `nosuch`") && e.contains("known images:") && e.contains("hello"),
        "{e}"
    );
}

const HELLO_CONSOLE: &str = "hv | stand-in hypervisor\n\
@corral hv abi=1 cores=1\n\
@corral vm-start vm=0 name=hello image=hello core=0 memory=2097152\n\
hello | Hello, world\n\
@corral metric vm=0 name=answer value=42\n\
@corral vm-end vm=0 status=exited code=0 boot=1234 exits=vmcall:3,cpuid:1 reason=exited with code 0\n\
@corral done vms=1\n";

#[test]
fn a_complete_run_is_reported() {
    let build = stub_build("complete", HELLO_CONSOLE);
    let out = run(
        "complete",
        &manifest("hello.toml"),
        &["--prebuilt", build.to_str().unwrap(), "--timeout", "60"],
    );
    assert_eq!(out.code, 0, "{}", out.error_text());
    assert_eq!(out.report["completed"], true);
    assert_eq!(out.report["timed_out"], false);
    let hello = out.vm("hello");
    assert_eq!(hello["status"], "exited");
    assert_eq!(hello["exit_code"], 0);
    assert_eq!(hello["boot_instructions"], 1234);
    assert_eq!(hello["exits"]["vmcall"], 3);
    assert_eq!(hello["metrics"]["answer"], 42);
    assert_eq!(hello["ok"], true);
}

#[test]
fn a_fatal_record_is_a_refusal() {
    let build = stub_build(
        "fatal",
        "hv | stand-in hypervisor\n@corral fatal reason=CPU lacks VMX (CPUID.1:ECX.VMX = 0)\n",
    );
    let out = run(
        "fatal",
        &manifest("hello.toml"),
        &["--prebuilt", build.to_str().unwrap(), "--timeout", "60"],
    );
    assert_ne!(out.code, 0);
    assert_eq!(
        out.error_text(),
        "hypervisor refused to run: CPU lacks VMX (CPUID.1:ECX.VMX = 0)"
    );
    assert_eq!(out.report["completed"], false);
    assert_eq!(out.report["fatal"], "CPU lacks VMX (CPUID.1:ECX.VMX = 0)");
    assert_eq!(out.vm("hello")["status"], "running");
}

#[test]
fn the_wall_clock_bound_stops_the_emulator() {
    // The BIOS alone takes several seconds, so one second is never enough.
    let build = stub_build("timeout", HELLO_CONSOLE);
    let out = run(
        "timeout",
        &manifest("hello.toml"),
        &["--prebuilt", build.to_str().unwrap(), "--timeout", "1"],
    );
    assert_ne!(out.code, 0);
    assert!(
        out.error_text().starts_with("timed out after 1 s"),
        "{}",
        out.error_text()
    );
    assert_eq!(out.report["timed_out"], true);
    assert_eq!(out.report["completed"], false);
}
