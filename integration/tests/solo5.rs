//! Solo5 hvt unikernels (written here from the hvt ABI, and Solo5's own C tests built from its sources) boot beside Corral's own and are judged the way Solo5's own tests judge them: exit status, and SUCCESS or ABORT on their console; bad images are refused before boot, bad port accesses stop the guest by name, and a fleet of hvt clones shares the image's read-only pages.

use integration::{Outcome, PREBUILT_ENV, assert_exited, flow, manifest, num, root, run, scratch};
use std::path::PathBuf;

/// The lines VM `vm` printed (its console prefix stripped).
fn lines(out: &Outcome, vm: &str) -> Vec<String> {
    let prefix = format!("{vm} | ");
    out.console()
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

#[test]
fn hvt_guests_run_beside_corral_guests() {
    let out = run("solo5", &manifest("solo5.toml"), &["--timeout", "300"]);
    out.assert_succeeded();
    out.assert_completed();
    for vm in [
        "hello", "time", "globals", "fpu", "tls", "fleet-0", "fleet-3",
    ] {
        assert_exited(out.vm(vm), 0);
        assert!(
            lines(&out, vm).iter().any(|l| l == "SUCCESS"),
            "{vm} printed no SUCCESS: {:?}",
            lines(&out, vm)
        );
    }
    assert!(lines(&out, "hello").contains(&"Command line is: 'Hello_Solo5'".to_string()));
    // Solo5's quiet test: nothing but the monitor's own start and end.
    assert_exited(out.vm("quiet"), 0);
    let quiet = lines(&out, "quiet");
    assert!(quiet.iter().all(|l| l.starts_with("-- ")), "{quiet:?}");
    assert_eq!(out.vm("quiet")["console"]["bytes"], 0);
    // solo5_abort(): status 255 and ABORT on its console.
    assert_exited(out.vm("abort"), 255);
    assert!(lines(&out, "abort").iter().any(|l| l.contains("ABORT")));
    // Solo5's exception test: the guest's own handler takes the page
    // fault (a write to 16 GiB) and aborts, its trap frame the halt cookie.
    assert_exited(out.vm("exception"), 255);
    let trap = lines(&out, "exception");
    assert!(
        trap.iter()
            .any(|l| l.starts_with("Solo5: trap: type=#PF ec=0x0000000000000002")),
        "{trap:?}"
    );
    assert!(
        trap.iter()
            .any(|l| l == "Solo5: trap: cr2=0x0000000400000000"),
        "{trap:?}"
    );
    assert!(trap.iter().any(|l| l.contains("ABORT")), "{trap:?}");
    // Stopped by name, or refused before boot.
    for (vm, reason) in [
        ("port", "denied I/O port write 0x60"),
        ("fault", "triple fault"),
        ("badabi", "Executable requests unsupported ABI version 9"),
        ("oddmem", "is not a multiple of 2 MiB"),
        (
            "withnet",
            "`console` is for Corral guests, and each of its `net` ports needs a device name",
        ),
    ] {
        let v = out.vm(vm);
        assert_eq!(v["status"], "killed", "{v:#}");
        assert!(v["reason"].as_str().unwrap_or("").contains(reason), "{v:#}");
    }
    // Refused images never ran.
    assert_eq!(out.vm("badabi")["exits"]["io"].as_u64().unwrap_or(0), 0);
    // Corral's own guest beside them.
    assert_exited(out.vm("corral"), 0);
    // hvt hypercalls are port writes (no vmcall), and an hvt guest's
    // first one marks its `main`.
    let hello = out.vm("hello");
    assert!(hello["exits"]["io"].as_u64().unwrap_or(0) >= 4, "{hello:#}");
    assert_eq!(
        hello["exits"]["vmcall"].as_u64().unwrap_or(0),
        0,
        "{hello:#}"
    );
    assert!(
        hello["boot_instructions"].as_u64().unwrap_or(0) > 0,
        "{hello:#}"
    );
    // Solo5's block test, with 512- and 4096-byte blocks: every 10th block
    // and the last written and read back, the bad requests refused.
    for (vm, disk, blocks) in [("blk", "scratch", 128), ("blk4k", "scratch4k", 16)] {
        assert_exited(out.vm(vm), 0);
        assert!(lines(&out, vm).iter().any(|l| l == "SUCCESS"), "{vm}");
        let b = block(&out, disk);
        assert_eq!(b["vm"], vm);
        let written = (0..blocks).step_by(10).count() as u64 + u64::from((blocks - 1) % 10 != 0);
        assert_eq!(num(&b["flow"], "writes"), written, "{b:#}");
        assert_eq!(num(&b["flow"], "reads"), written, "{b:#}");
        assert_eq!(num(b, "dirty"), written, "{b:#}");
        // Five bad requests each way; the bad handle never reaches a disk.
        assert_eq!(num(&b["flow"], "errors"), 10, "{b:#}");
        assert_eq!(b["file"], "(blank)");
        assert_eq!(num(b, "written_back"), 0);
    }
    for (vm, reason) in [
        (
            "badbuf",
            "hvt block_read: Invalid guest access: gpa=0x400000000, sz=512",
        ),
        (
            "nodisk",
            "Device 'storage' of type BLOCK_BASIC declared but not attached",
        ),
        ("undeclared", "Resource not declared in manifest: 'storage'"),
    ] {
        let v = out.vm(vm);
        assert_eq!(v["status"], "killed", "{v:#}");
        assert!(v["reason"].as_str().unwrap_or("").contains(reason), "{v:#}");
    }
    assert_eq!(num(&block(&out, "small")["flow"], "reads"), 0);
    // Corral's own guest reaches a disk as virtio-blk: every 10th sector
    // and the last (64 of 512 bytes), one request past the end refused.
    assert_exited(out.vm("vblk"), 0);
    assert!(
        lines(&out, "vblk")
            .iter()
            .any(|l| l == "blkcheck: 64 sectors; SUCCESS")
    );
    let v = block(&out, "corraldisk");
    assert_eq!(v["vm"], "vblk");
    assert_eq!(num(&v["flow"], "writes"), 8, "{v:#}");
    assert_eq!(num(&v["flow"], "errors"), 1, "{v:#}");
    // The fleet's clones map the image's text and rodata from one copy.
    let shared: Vec<u64> = (0..4)
        .map(|i| {
            out.vm(&format!("fleet-{i}"))["memory"]["shared"]
                .as_u64()
                .unwrap_or(0)
        })
        .collect();
    assert!(
        shared[0] > 0 && shared.iter().all(|&s| s == shared[0]),
        "{shared:?}"
    );
}

/// The report entry of block device `name`.
fn block<'a>(out: &'a Outcome, name: &str) -> &'a serde_json::Value {
    out.report["blocks"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["name"] == name))
        .unwrap_or_else(|| panic!("no block `{name}` in the report: {:#}", out.report))
}

/// Bytes of block `b` of a 512-byte-block image as the persist test
/// writes them (block 0: the pattern the guest checks).
fn image_bytes(blocks: usize) -> Vec<u8> {
    (0..blocks * 512).map(|i| (i % 512 % 251) as u8).collect()
}

#[test]
fn a_disk_persists_to_its_file_only_when_asked() {
    let dir = scratch("solo5-persist");
    let (kept, scratched) = (dir.join("kept.img"), dir.join("scratched.img"));
    let before = image_bytes(16);
    std::fs::write(&kept, &before).unwrap();
    std::fs::write(&scratched, &before).unwrap();
    let vkept = dir.join("vkept.img");
    std::fs::write(&vkept, &before).unwrap();
    let m = dir.join("persist.toml");
    std::fs::write(
        &m,
        r#"
[[block]]
name = "kept"
file = "kept.img"
persist = true

[[block]]
name = "scratched"
file = "scratched.img"

[[vm]]
name = "keeper"
image = "hvt_blk"
args = "persist"
memory = "4M"
devices = { storage = "block:kept" }

[[vm]]
name = "forgetter"
image = "hvt_blk"
args = "persist"
memory = "4M"
devices = { storage = "block:scratched" }

[[block]]
name = "vkept"
file = "vkept.img"
persist = true

[[vm]]
name = "vkeeper"
image = "blkcheck"
args = "persist"
devices = { vdisk = "block:vkept" }
"#,
    )
    .unwrap();
    let out = run("solo5-persist", &m, &["--timeout", "180"]);
    out.assert_succeeded();
    for vm in ["keeper", "forgetter", "vkeeper"] {
        assert_exited(out.vm(vm), 0);
    }
    // Blocks 1 and 3 went back to the persistent disks' files, nothing
    // else: the hvt guest's and the Corral (virtio-blk) guest's.
    for (file, tag, fill) in [
        (&kept, b"corral-block", 0xc0u8),
        (&vkept, b"corral-vblk!", 0xd0),
    ] {
        let after = std::fs::read(file).unwrap();
        assert_eq!(after.len(), before.len());
        for (b, (new, old)) in after.chunks(512).zip(before.chunks(512)).enumerate() {
            if b == 1 || b == 3 {
                assert_eq!(&new[..12], tag, "block {b}");
                assert!(new[12..].iter().all(|&x| x == fill + b as u8), "block {b}");
            } else {
                assert_eq!(new, old, "block {b} changed");
            }
        }
    }
    let k = block(&out, "kept");
    assert_eq!(
        (num(k, "dirty"), num(k, "written_back")),
        (2, 1024),
        "{k:#}"
    );
    assert_eq!(k["persist"], true);
    // The other wrote the same, and its file is as it was.
    assert_eq!(std::fs::read(&scratched).unwrap(), before);
    let s = block(&out, "scratched");
    assert_eq!((num(s, "dirty"), num(s, "written_back")), (2, 0), "{s:#}");
}

#[test]
fn an_hvt_unikernel_is_booted_from_its_file() {
    // The built hvt_test, copied where a user keeps their own `app.hvt`.
    let built = std::env::var(PREBUILT_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            root()
                .join("target")
                .join("corral")
                .join("x86_64-unknown-none")
                .join("release")
        });
    let first = run(
        "solo5-file-build",
        &manifest("hello.toml"),
        &["--timeout", "180"],
    );
    first.assert_succeeded();
    let dir = scratch("solo5-file");
    std::fs::copy(built.join("hvt_test"), dir.join("app.hvt")).expect("copy the built hvt image");
    let m = dir.join("app.toml");
    std::fs::write(
        &m,
        "[[vm]]\nname = \"app\"\nimage = { elf = \"app.hvt\" }\nargs = \"Hello_Solo5\"\nmemory = \"4M\"\n",
    )
    .unwrap();
    let out = run("solo5-file", &m, &["--timeout", "180"]);
    out.assert_succeeded();
    let app = out.vm("app");
    assert_exited(app, 0);
    assert_eq!(app["image"], "file-app", "{app:#}");
    assert!(lines(&out, "app").iter().any(|l| l == "SUCCESS"));
}

#[test]
fn an_hvt_forwarder_moves_every_frame_between_corral_guests() {
    let out = run(
        "solo5-net",
        &manifest("solo5-net.toml"),
        &["--timeout", "600"],
    );
    out.assert_succeeded();
    out.assert_completed();
    for vm in ["gen", "fwd", "fwd2", "sink"] {
        assert_exited(out.vm(vm), 0);
    }
    // pktgen's 600 frames went through both unikernels, all of them, then
    // the end-of-stream frame: through the shared ring of the first, the
    // net_read and net_write hypercalls of the second.
    assert_eq!(out.metric("gen", "sent"), 600);
    for (vm, io) in [("fwd", "ring"), ("fwd2", "hypercall")] {
        let want = format!(
            "hvt_forward: received=600 forwarded=600 dropped=0 back=0 stalled=0 end=stream io={io}"
        );
        assert!(lines(&out, vm).contains(&want), "{:?}", lines(&out, vm));
        assert!(lines(&out, vm).iter().any(|l| l == "SUCCESS"));
    }
    // The ring's frames cost its VM no exit each: its I/O exits (its polls
    // and console lines) are a fraction of the frames it forwarded, where
    // the hypercall forwarder took at least one per frame each way.
    let io_exits = |vm: &str| out.vm(vm)["exits"]["io"].as_u64().unwrap_or(0);
    assert!(io_exits("fwd") < 120, "fwd: {} I/O exits", io_exits("fwd"));
    assert!(
        io_exits("fwd2") >= 1200,
        "fwd2: {} I/O exits",
        io_exits("fwd2")
    );
    assert_eq!(out.metric("sink", "received"), 600);
    // Every hop carried the 600 and the end frame, dropped none, and
    // nothing came back.
    for (a, b) in [
        ("gen.0", "fwd.0"),
        ("fwd.1", "fwd2.0"),
        ("fwd2.1", "sink.0"),
    ] {
        let l = out.link(a, b);
        assert_eq!(flow(l, "ab"), (601, 601), "{l:#}");
        assert_eq!(flow(l, "ba"), (0, 0), "{l:#}");
    }
    // Binding mistakes stop the VM before boot, by name.
    for (vm, reason) in [
        (
            "halfbound",
            "Device 'service1' of type NET_BASIC declared but not attached",
        ),
        ("undeclared", "Resource not declared in manifest: 'uplink'"),
        ("unnamed", "each of its `net` ports needs a device name"),
    ] {
        let v = out.vm(vm);
        assert_eq!(v["status"], "killed", "{v:#}");
        assert!(v["reason"].as_str().unwrap_or("").contains(reason), "{v:#}");
        assert_eq!(v["exits"]["io"].as_u64().unwrap_or(0), 0, "{v:#}");
    }
    // A net_write reaching from the memory the guest may use into its
    // shared ring stops it by name, as a hypercall or as a ring request,
    // and nothing reached its link.
    for (vm, reason) in [
        (
            "hostile",
            "hvt net_write: Invalid guest access: gpa=0x3f2ff0, sz=60",
        ),
        (
            "hostilering",
            "device 0 ring: hvt shared ring entry 0: net_write: Invalid guest access: gpa=0x3f2ff0, sz=60",
        ),
    ] {
        let v = out.vm(vm);
        assert_eq!(v["status"], "killed", "{v:#}");
        assert_eq!(v["reason"], reason, "{v:#}");
        assert!(!lines(&out, vm).iter().any(|l| l.contains("FAILURE")));
    }
    let l = out.link("hostile.0", "hostilering.0");
    assert_eq!((flow(l, "ab"), flow(l, "ba")), ((0, 0), (0, 0)), "{l:#}");
}

/// Solo5's own test unikernels this test builds and runs, with what
/// Solo5's `tests.bats` expects of each under `solo5-hvt`: (test, command
/// line, how it ends, a console line it must print). `tests.bats` wants
/// `test_xnow` (a write to its code) and `test_wnox` (a call into its data)
/// stopped by the tender with a translation fault; Corral stops them at the
/// EPT violation, by name.
const SOLO5_TESTS: &[(&str, &str, &str, &str)] = &[
    ("test_hello", "Hello_Solo5", "exit:0", "SUCCESS"),
    ("test_quiet", "--solo5:quiet", "exit:0", "SUCCESS"),
    ("test_globals", "", "exit:0", "SUCCESS"),
    ("test_fpu", "", "exit:0", "SUCCESS"),
    ("test_time", "", "exit:0", "SUCCESS"),
    ("test_tls", "", "exit:0", "SUCCESS"),
    ("test_ssp", "", "exit:255", "ABORT"),
    ("test_exception", "", "exit:255", "ABORT"),
    ("test_zeropage", "", "exit:255", "ABORT"),
    ("test_notls", "", "exit:255", "ABORT"),
    ("test_blk", "", "exit:0", "SUCCESS"),
    (
        "test_xnow",
        "",
        "killed:EPT violation: write at guest-physical",
        "**** Solo5 standalone test_xnow ****",
    ),
    (
        "test_wnox",
        "",
        "killed:EPT violation: instruction fetch at guest-physical",
        "**** Solo5 standalone test_wnox ****",
    ),
];

#[test]
fn solo5s_own_c_test_unikernels_pass_as_under_solo5_hvt() {
    let dir = scratch("solo5-c");
    let names: Vec<&str> = SOLO5_TESTS.iter().map(|t| t.0).collect();
    let elfs = integration::solo5c::build_tests(&dir, &dir, &names)
        .unwrap_or_else(|e| panic!("building Solo5's tests: {e}"));
    let mut text = String::from("[run]\ncpus = 1\ntimeout = 600\n");
    for ((name, args, status, _), elf) in SOLO5_TESTS.iter().zip(&elfs) {
        let vm = name.trim_start_matches("test_");
        text += &format!(
            "[[vm]]\nname = \"{vm}\"\nimage = {{ elf = \"{}\" }}\nmemory = \"4M\"\nargs = \"{args}\"\nexpect = \"{status}\"\n",
            elf.display()
        );
        if *name == "test_blk" {
            text += "devices = { storage = \"block:cdisk\" }\n";
        }
    }
    text += "[[block]]\nname = \"cdisk\"\nsize = \"64K\"\n";
    let manifest = dir.join("solo5-c.toml");
    std::fs::write(&manifest, text).unwrap();
    let out = run("solo5-c", &manifest, &["--timeout", "600"]);
    out.assert_succeeded();
    out.assert_completed();
    for (name, _, status, line) in SOLO5_TESTS {
        let vm = name.trim_start_matches("test_");
        let v = out.vm(vm);
        match status.split_once(':') {
            Some(("exit", code)) => assert_exited(v, code.parse().unwrap()),
            _ => {
                assert_eq!(v["status"], "killed", "{v:#}");
                let reason = status.trim_start_matches("killed:");
                assert!(v["reason"].as_str().unwrap_or("").contains(reason), "{v:#}");
            }
        }
        let printed = lines(&out, vm);
        assert!(
            printed.iter().any(|l| l.contains(line)),
            "{vm} printed no {line}: {printed:?}"
        );
        assert!(
            !printed.iter().any(|l| l.contains("FAILURE")),
            "{vm}: {printed:?}"
        );
        // Solo5's banner, unless told to be quiet.
        let banner = printed.iter().any(|l| l.starts_with("Solo5:"));
        assert_eq!(banner, *name != "test_quiet", "{vm}: {printed:?}");
    }
    assert!(lines(&out, "hello").contains(&"Command line is: 'Hello_Solo5'".to_string()));
    // Its disk took whole blocks and refused the rest, as the tender does.
    let disk = block(&out, "cdisk");
    let flow = &disk["flow"];
    assert!(num(flow, "writes") > 0, "{disk:#}");
    assert_eq!(num(flow, "reads"), num(flow, "writes"), "{disk:#}");
    assert!(num(flow, "errors") > 0, "the bad requests: {disk:#}");
}
