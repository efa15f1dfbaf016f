//! The tool itself, without the real hypervisor: errors a user meets before
//! anything boots, and the boot pipeline driven by a stand-in hypervisor
//! that prints a fixed console (completion, a refusal, a timeout).

use integration::{assert_exited, manifest, run, run_stub, write_manifest};

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
    let path = write_manifest(
        "bad-toml",
        "bad.toml",
        "[[vm]]\nname = \"a\"\nimage = hello\n",
    );
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
    let path = write_manifest(
        "unknown-image",
        "m.toml",
        "[[vm]]\nname = \"a\"\nimage = \"nosuch\"\n",
    );
    let out = run("unknown-image", &path, &[]);
    assert_ne!(out.code, 0);
    let e = out.error_text();
    assert!(
        e.contains("no image named `nosuch`") && e.contains("known images:") && e.contains("hello"),
        "{e}"
    );
}

const HELLO_CONSOLE: &str = "hv | stand-in hypervisor\n\
@corral hv abi=5 cores=1 free=266338304\n\
@corral vm-start vm=0 name=hello entry=hello image=hello core=0 apic=0 memory=262144\n\
hello | Hello, world\n\
@corral metric vm=0 name=answer value=42\n\
@corral vm-end vm=0 status=exited code=0 boot=1234 restarts=0 slices=1 private=241664 shared=20480 overhead=24576 exits=vmcall:3,cpuid:1 console=0 console_dropped=0 reason=exited with code 0\n\
@corral done vms=1\n";

#[test]
fn a_complete_run_is_reported() {
    let out = run_stub("complete", &manifest("hello.toml"), HELLO_CONSOLE, "60");
    out.assert_succeeded();
    out.assert_completed();
    assert_eq!(out.report["timed_out"], false);
    let hello = out.vm("hello");
    assert_exited(hello, 0);
    assert_eq!(hello["boot_instructions"], 1234);
    assert_eq!(hello["exits"]["vmcall"], 3);
    assert_eq!(hello["metrics"]["answer"], 42);
    assert_eq!(hello["ok"], true);
    assert_eq!(hello["core"], 0);
    assert_eq!(hello["apic_id"], 0);
    assert_eq!(hello["restarts"], 0);
    assert_eq!(hello["slices"], 1);
    assert_eq!(
        hello["memory"],
        serde_json::json!({"private": 241_664, "shared": 20_480, "overhead": 24_576})
    );
    assert_eq!(out.report["cores"], 1);
    assert_eq!(out.report["free_memory"], 266_338_304);
    assert_eq!(
        out.report["totals"],
        serde_json::json!({"vms": 1, "private": 241_664, "shared": 20_480, "overhead": 24_576})
    );
    // (266338304 - 20480) / (241664 + 24576) = 1000.3
    assert_eq!(
        out.report["largest_fleet"],
        serde_json::json!({"hello": 1000})
    );
}

/// A fleet of two with restarts, as a stand-in hypervisor would report it.
const RESTART_CONSOLE: &str = "@corral hv abi=5 cores=1 free=266338304\n\
@corral vm-start vm=0 name=web-0 entry=web image=hello core=0 apic=0 memory=262144\n\
@corral vm-end vm=0 status=exited code=0 boot=10 restarts=0 slices=1 private=4096 shared=8192 overhead=4096 exits=vmcall:3 console=0 console_dropped=0 reason=exited with code 0\n\
@corral vm-start vm=1 name=web-1 entry=web image=hello core=0 apic=0 memory=262144\n\
@corral vm-restart vm=1 attempt=1 reason=triple fault at rip 0x10003d\n\
@corral vm-start vm=1 name=web-1 entry=web image=hello core=0 apic=0 memory=262144\n\
@corral vm-end vm=1 status=killed code=-1 boot=12 restarts=1 slices=2 private=4096 shared=8192 overhead=4096 exits=vmcall:4,triple_fault:2 console=0 console_dropped=0 reason=triple fault at rip 0x10003d\n\
@corral done vms=2\n";

#[test]
fn clones_restarts_and_clone_expectations_are_reported() {
    let manifest = write_manifest(
        "restart-stub",
        "fleet.toml",
        "[[vm]]\nname = \"web\"\nimage = \"hello\"\ncount = 2\n\
         restart = \"on-failure\"\nrestart_limit = 1\n\
         expect_clone = { 1 = \"killed:triple fault\" }\n",
    );
    let out = run_stub("restart-stub", &manifest, RESTART_CONSOLE, "60");
    out.assert_succeeded();
    let crashed = out.vm("web-1");
    assert_eq!(crashed["status"], "killed");
    assert_eq!(crashed["restarts"], 1);
    assert_eq!(
        crashed["restart_reasons"],
        serde_json::json!(["triple fault at rip 0x10003d"])
    );
    assert_eq!(crashed["expect"], "killed:triple fault");
    assert_eq!(crashed["ok"], true);
    assert_eq!(out.vm("web-0")["expect"], "exit:0");
    assert_eq!(out.report["totals"]["shared"], 8192);
    assert_eq!(out.report["totals"]["private"], 8192);
}

#[test]
fn a_fatal_record_is_a_refusal() {
    let out = run_stub(
        "fatal",
        &manifest("hello.toml"),
        "hv | stand-in hypervisor\n@corral fatal reason=CPU lacks VMX (CPUID.1:ECX.VMX = 0)\n",
        "60",
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
    let out = run_stub("timeout", &manifest("hello.toml"), HELLO_CONSOLE, "1");
    assert_ne!(out.code, 0);
    assert!(
        out.error_text().starts_with("timed out after 1 s"),
        "{}",
        out.error_text()
    );
    assert_eq!(out.report["timed_out"], true);
    assert_eq!(out.report["completed"], false);
}

/// Two VMs joined by a link, as a stand-in hypervisor would report them.
const LINK_CONSOLE: &str = "@corral hv abi=5 cores=2 free=266338304\n\
@corral vm-start vm=0 name=a entry=a image=hello core=1 apic=1 memory=262144\n\
@corral vm-start vm=1 name=b entry=b image=hello core=1 apic=1 memory=262144\n\
@corral window frames=100 exits=0 busy=24000\n\
@corral vm-end vm=0 status=exited code=0 boot=10 restarts=0 slices=1 private=4096 shared=8192 overhead=4096 exits=vmcall:3 console=0 console_dropped=0 reason=exited with code 0\n\
@corral vm-end vm=1 status=exited code=0 boot=12 restarts=0 slices=1 private=4096 shared=8192 overhead=4096 exits=vmcall:4 console=0 console_dropped=0 reason=exited with code 0\n\
@corral link link=0 a=a.0 b=b.0 core=0 ab_frames=150 ab_bytes=9600 ab_drop_peer=1 ab_drop_size=2 ab_drop_stalled=0 ab_stalls=0 ba_frames=150 ba_bytes=9600 ba_drop_peer=0 ba_drop_size=0 ba_drop_stalled=0 ba_stalls=0 busy=72000\n\
@corral done vms=2\n";

#[test]
fn links_and_the_window_are_reported() {
    let manifest = write_manifest(
        "link-stub",
        "link.toml",
        "[run]\ncpus = 2\n\
         [[vm]]\nname = \"a\"\nimage = \"hello\"\nnet = 1\ncores = [1]\n\
         [[vm]]\nname = \"b\"\nimage = \"hello\"\nnet = 1\nconsole = true\ncores = [1]\n\
         [[link]]\na = \"a.0\"\nb = \"b.0\"\n",
    );
    let out = run_stub("link-stub", &manifest, LINK_CONSOLE, "120");
    out.assert_succeeded();
    assert_eq!(
        out.report["links"],
        serde_json::json!([{
            "link": 0, "a": "a.0", "b": "b.0", "core": 0,
            "ab": {"frames": 150, "bytes": 9600, "drop_peer": 1, "drop_size": 2, "drop_stalled": 0, "stalls": 0},
            "ba": {"frames": 150, "bytes": 9600, "drop_peer": 0, "drop_size": 0, "drop_stalled": 0, "stalls": 0},
            "busy": 72000
        }])
    );
    assert_eq!(
        out.report["window"],
        serde_json::json!({"frames": 100, "exits": 0, "busy": 24000})
    );
}
