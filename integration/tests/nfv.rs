//! The NFV pipeline of `nfv.toml` (pktgen -> firewall -> nat -> sink, one
//! link per hop, polled on core 0, VMs on core 1): every frame pktgen sent
//! is accounted for exactly, by the guests' counters and the links' alike.

use integration::{Outcome, assert_exited, flow, manifest, num, run};
use serde_json::Value;

/// Frames the pipeline carries besides pktgen's data: its end-of-stream
/// frame, which every function passes on once the data is through.
const END_FRAMES: u64 = 1;
/// Length of the end-of-stream frame (the Ethernet minimum).
const END_FRAME_LEN: u64 = 60;

/// The number under `key=` in the argument string of VM `name` of the
/// manifest (so the test follows the manifest's settings).
fn arg(name: &str, key: &str) -> String {
    let root = integration::root();
    let known = boot::cargo_build::known_images(&root).expect("images crate");
    let m = boot::toml_manifest::load(&manifest("nfv.toml"), &known).expect("nfv.toml");
    let vm = m
        .vms
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no VM `{name}` in nfv.toml"));
    vm.args
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("VM `{name}` has no `{key}=` argument"))
        .to_string()
}

fn arg_num(name: &str, key: &str) -> u64 {
    let text = arg(name, key);
    text.parse()
        .unwrap_or_else(|_| panic!("`{key}={text}` of `{name}` is not a number"))
}

/// Checks that link `a -> b` carried, from `a` to `b`, exactly what the
/// upstream VM sent on (`handed`) and what the downstream VM received
/// (`received`), both without the end-of-stream frame, and nothing the
/// other way.
fn assert_hop(out: &Outcome, a: &str, b: &str, handed: u64, received: u64) -> Value {
    let link = out.link(a, b).clone();
    let (frames, all) = flow(&link, "ab");
    assert_eq!(
        all,
        handed + END_FRAMES,
        "{a} -> {b}: frames handed over: {link:#}"
    );
    assert_eq!(
        frames,
        received + END_FRAMES,
        "{a} -> {b}: frames delivered: {link:#}"
    );
    assert_eq!(flow(&link, "ba"), (0, 0), "{b} -> {a}: {link:#}");
    assert_eq!(link["core"], 0, "{link:#}");
    assert!(
        num(&link, "busy") > 0,
        "{a} -> {b}: no polling work: {link:#}"
    );
    link
}

#[test]
fn every_frame_is_accounted_for() {
    let out = run("nfv", &manifest("nfv.toml"), &["--timeout", "900"]);
    out.assert_succeeded();
    out.assert_completed();
    for vm in out.vms() {
        assert_exited(vm, 0);
        assert_eq!(vm["core"], 1, "VMs run on core 1, core 0 polls: {vm:#}");
    }

    // What pktgen sent: the whole plan, every `every`-th frame to the port
    // the firewall denies.
    let count = arg_num("gen", "count");
    let every = arg_num("gen", "every");
    let sent = out.metric("gen", "sent");
    assert_eq!(sent, count);
    assert_eq!(out.metric("gen", "sent_denied"), count / every);
    assert_eq!(out.metric("gen", "sent_allowed"), count - count / every);

    // The deny rule hit exactly the denied frames, nothing was malformed.
    assert_eq!(out.metric("fw", "drop_blocked"), count / every);
    assert_eq!(out.metric("fw", "drop_malformed"), 0);

    // Every function saw the end of the stream with pktgen's count, and
    // nothing was left unsent or came back.
    for vm in ["fw", "nat", "sink"] {
        assert_eq!(out.metric(vm, "announced"), sent, "{vm}");
    }
    for vm in ["fw", "nat"] {
        assert_eq!(out.metric(vm, "ingress_stalled"), 0, "{vm}");
        assert_eq!(out.metric(vm, "egress_rx"), 0, "{vm}");
        let rx = out.metric(vm, "ingress_rx");
        let tx = out.metric(vm, "ingress_tx");
        assert_eq!(rx, tx + out.metric(vm, "ingress_drop"), "{vm}");
        assert_eq!(
            out.metric(vm, "ingress_drop"),
            out.metric_sum(vm, "drop_"),
            "{vm}"
        );
    }

    // Each link carried exactly what its upstream sent on and its
    // downstream received (plus the end-of-stream frame).
    let l0 = assert_hop(&out, "gen.0", "fw.0", sent, out.metric("fw", "ingress_rx"));
    let l1 = assert_hop(
        &out,
        "fw.1",
        "nat.0",
        out.metric("fw", "ingress_tx"),
        out.metric("nat", "ingress_rx"),
    );
    let sink_rx = out.metric("sink", "received");
    let l2 = assert_hop(
        &out,
        "nat.1",
        "sink.0",
        out.metric("nat", "ingress_tx"),
        sink_rx + out.metric("sink", "ignored"),
    );
    assert_eq!(out.links().len(), 3);

    // The whole pipeline: sent = received + dropped by a function + dropped
    // by a link.
    let link_drops: u64 = [&l0, &l1, &l2]
        .iter()
        .map(|l| {
            let (frames, all) = flow(l, "ab");
            all - frames
        })
        .sum();
    assert_eq!(
        sent,
        sink_rx + out.metric_sum("fw", "drop_") + out.metric_sum("nat", "drop_") + link_drops
    );

    // Every frame is pktgen's size (the end frame is the Ethernet minimum).
    let size = arg_num("gen", "size");
    for l in [&l0, &l1, &l2] {
        let (frames, _) = flow(l, "ab");
        assert_eq!(
            num(&l["ab"], "bytes"),
            (frames - END_FRAMES) * size + END_FRAME_LEN,
            "{l:#}"
        );
    }

    // The NAT rewrote every frame the sink got, and they all verified.
    assert_eq!(out.metric("nat", "rewritten"), sink_rx);
    assert_eq!(out.metric("sink", "nat_ok"), sink_rx);
    assert_eq!(out.metric("sink", "valid"), sink_rx);
    assert_eq!(out.metric("sink", "checksum_bad"), 0);
    assert_eq!(out.metric("sink", "malformed"), 0);
    assert_eq!(arg("sink", "expect_src"), arg("nat", "nat_ip"));

    // The steady-state window lies within link 0's traffic.
    let window = &out.report["window"];
    let (l0_frames, _) = flow(&l0, "ab");
    assert!(
        num(window, "frames") > 0 && num(window, "frames") < l0_frames,
        "{window:#}"
    );
    assert!(num(window, "busy") > 0, "{window:#}");
}
