//! Solo5 hvt unikernels (written here from the hvt ABI) boot beside Corral's own and are judged the way Solo5's own tests judge them: exit status, and SUCCESS or ABORT on their console; bad images are refused before boot, bad port accesses stop the guest by name, and a fleet of hvt clones shares the image's read-only pages.

use integration::{Outcome, assert_exited, manifest, run};

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
    for vm in ["hello", "time", "globals", "fpu", "fleet-0", "fleet-3"] {
        assert_exited(out.vm(vm), 0);
        assert!(
            lines(&out, vm).iter().any(|l| l == "SUCCESS"),
            "{vm} printed no SUCCESS: {:?}",
            lines(&out, vm)
        );
    }
    assert!(lines(&out, "hello").contains(&"Command line is: 'Hello_Solo5'".to_string()));
    // solo5_abort(): status 255 and ABORT on its console.
    assert_exited(out.vm("abort"), 255);
    assert!(lines(&out, "abort").iter().any(|l| l.contains("ABORT")));
    // Stopped by name, or refused before boot.
    for (vm, reason) in [
        ("port", "denied I/O port write 0x60"),
        ("fault", "triple fault"),
        ("badabi", "Executable requests unsupported ABI version 9"),
        ("oddmem", "is not a multiple of 2 MiB"),
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
