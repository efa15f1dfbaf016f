//! Hostile rings (`ringbad.toml`): a guest that publishes a corrupt
//! transmit ring is stopped with a reason naming the ring problem, its link
//! peer ends normally with every frame it sent accounted for, and the
//! hypervisor finishes the run.

use integration::{assert_exited, assert_killed, flow, manifest, run};

#[test]
fn corrupt_rings_stop_only_their_guest() {
    let out = run("ringbad", &manifest("ringbad.toml"), &["--timeout", "900"]);
    out.assert_succeeded();
    out.assert_completed();
    for (mode, problem) in [
        ("oob", "is outside guest memory"),
        ("loop", "descriptor chain loops back to descriptor"),
        ("idx", "avail idx jumped from"),
    ] {
        let reason = assert_killed(out.vm(&format!("bad-{mode}")), &[problem]);
        assert!(
            reason.starts_with("device 0 ring: "),
            "{mode}: `{reason}` does not name a ring"
        );
        let peer_name = format!("peer-{mode}");
        assert_exited(out.vm(&peer_name), 0);
        // Every frame the peer sent (and its end-of-stream frame) was
        // handed over: delivered before the stop, or dropped after it.
        let link = out.link(&format!("bad-{mode}.0"), &format!("{peer_name}.0"));
        let (_, handed) = flow(link, "ba");
        assert_eq!(handed, out.metric(&peer_name, "sent") + 1, "{link:#}");
    }
}
