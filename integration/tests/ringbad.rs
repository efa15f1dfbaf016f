//! Hostile rings (`ringbad.toml`): a guest that publishes a corrupt
//! transmit ring is stopped with a reason naming the ring problem, its link
//! peer ends normally with every frame it sent accounted for, and the
//! hypervisor finishes the run.

use integration::{flow, manifest, run};

#[test]
fn corrupt_rings_stop_only_their_guest() {
    let out = run("ringbad", &manifest("ringbad.toml"), &["--timeout", "900"]);
    assert_eq!(out.code, 0, "{}", out.error_text());
    assert_eq!(out.report["completed"], true, "no `done` record");
    for (mode, problem) in [
        ("oob", "is outside guest memory"),
        ("loop", "descriptor chain loops back to descriptor"),
        ("idx", "avail idx jumped from"),
    ] {
        let bad = out.vm(&format!("bad-{mode}"));
        assert_eq!(bad["status"], "killed", "{bad:#}");
        let reason = bad["reason"].as_str().unwrap_or("");
        assert!(
            reason.starts_with("device 0 ring: ") && reason.contains(problem),
            "{mode}: `{reason}` does not name `{problem}`"
        );
        let peer_name = format!("peer-{mode}");
        let peer = out.vm(&peer_name);
        assert_eq!(peer["status"], "exited", "{peer:#}");
        assert_eq!(peer["exit_code"], 0, "{peer:#}");
        // Every frame the peer sent (and its end-of-stream frame) was
        // handed over: delivered before the stop, or dropped after it.
        let link = out.link(&format!("bad-{mode}.0"), &format!("{peer_name}.0"));
        let (_, handed) = flow(link, "ba");
        assert_eq!(handed, out.metric(&peer_name, "sent") + 1, "{link:#}");
    }
}
