//! A guest with a virtio-console prints through it: same text as a guest on the console hypercall, carried by register accesses and a ring instead of hypercalls.

use integration::{assert_exited, manifest, run};
use serde_json::Value;

/// Exits of one kind (0 when the report lists none of that kind).
fn exits(v: &Value, kind: &str) -> u64 {
    v[kind].as_u64().unwrap_or(0)
}

#[test]
fn virtio_console_carries_the_guest_console() {
    let out = run("console", &manifest("console.toml"), &["--timeout", "180"]);
    out.assert_succeeded();
    let console = out.console();
    for vm in ["plain", "vcon"] {
        assert_exited(out.vm(vm), 0);
        let greeting = format!("{vm} | Hello from Corral: vm {vm} ");
        assert!(
            console.contains(&greeting),
            "no `{greeting}` in:\n{console}"
        );
        assert!(
            console.contains(&format!("{vm} | heap: ")),
            "no heap line from {vm}:\n{console}"
        );
    }
    let (plain, vcon) = (&out.vm("plain")["exits"], &out.vm("vcon")["exits"]);
    // The hypercall console: no device, so no register access at all.
    assert_eq!(exits(plain, "ept_violation"), 0, "{plain:#}");
    // The virtio-console: the driver's set-up and one notification per
    // piece of output are register accesses; its text needs no hypercall,
    // so it makes fewer than the guest that prints with them.
    assert!(exits(vcon, "ept_violation") >= 10, "{vcon:#}");
    assert!(
        exits(vcon, "vmcall") < exits(plain, "vmcall"),
        "plain {plain:#} vcon {vcon:#}"
    );
}
