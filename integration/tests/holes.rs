//! Five holes a hostile guest tried, closed (`holes.toml`, `stall.toml`,
//! `spam.toml`): each guest is stopped with the reason that names what it
//! tried (or its peer proceeds), every other VM ends as expected, and the
//! hypervisor finishes the run.

use integration::{assert_exited, assert_killed, flow, manifest, num, run};

#[test]
fn hostile_cpu_tricks_are_stopped_by_name() {
    let out = run("holes", &manifest("holes.toml"), &["--timeout", "300"]);
    out.assert_succeeded();
    out.assert_completed();
    for (vm, reason) in [
        // Waiting for work on a shared core is charged to the budget, and
        // the waiter does not outlive its core-mates.
        ("waiter", "instruction budget of 5000000 exhausted"),
        (
            "compat16",
            "device 0 register access from 16-bit compatibility mode: device registers are emulated for 64-bit code only",
        ),
        (
            "compat32",
            "device 0 register access from 32-bit compatibility mode: device registers are emulated for 64-bit code only",
        ),
        // The fault frame's push is not the faulting store: nothing is
        // written to the device, the exception is not skipped.
        (
            "pfpush",
            "EPT violation: write at guest-physical 0x400000f8 while delivering exception #PF (vector 14) through the guest's IDT",
        ),
        (
            "idtdev",
            "EPT violation: read at guest-physical 0x40000030 while delivering exception #BP (vector 3) through the guest's IDT",
        ),
        (
            "rdpmc",
            "denied instruction RDPMC (exit reason 15): not available to guests",
        ),
        (
            "movdr",
            "denied instruction MOV to/from a debug register (exit reason 29): not available to guests",
        ),
        (
            "wbinvd",
            "denied instruction WBINVD (exit reason 54): not available to guests",
        ),
    ] {
        let v = out.vm(vm);
        assert_eq!(assert_killed(v, &[]), reason, "{v:#}");
    }
    assert_exited(out.vm("hello"), 0);
}

#[test]
fn stalled_receivers_do_not_stall_their_senders() {
    let out = run("stall", &manifest("stall.toml"), &["--timeout", "600"]);
    out.assert_succeeded();
    out.assert_completed();
    for vm in ["mute", "gen-mute", "pause", "gen-pause"] {
        assert_exited(out.vm(vm), 0);
    }
    // A receiver that never posts a buffer: every frame its sender handed
    // over (and the end frame) was dropped as stalled, once.
    let mute = out.link("gen-mute.0", "mute.0");
    let (delivered, handed) = flow(mute, "ab");
    assert_eq!(delivered, 0, "{mute:#}");
    assert_eq!(handed, out.metric("gen-mute", "sent") + 1, "{mute:#}");
    assert_eq!(num(&mute["ab"], "drop_stalled"), handed, "{mute:#}");
    assert_eq!(num(&mute["ab"], "stalls"), 1, "{mute:#}");
    // A receiver that stops, then reads again: what was sent while it was
    // stalled is dropped and counted, what came after arrives.
    let pause = out.link("gen-pause.0", "pause.0");
    let (delivered, handed) = flow(pause, "ab");
    assert_eq!(handed, out.metric("gen-pause", "sent") + 1, "{pause:#}");
    assert!(num(&pause["ab"], "drop_stalled") > 0, "{pause:#}");
    assert!(num(&pause["ab"], "stalls") >= 1, "{pause:#}");
    let received = out.metric("pause", "received");
    assert_eq!(
        delivered,
        received + 1,
        "the end frame arrived too: {pause:#}"
    );
    assert!(
        out.metric("pause", "after_pause") > 1,
        "frames arrived after the receiver resumed"
    );
}

#[test]
fn a_console_spammer_gets_its_share_and_no_more() {
    let out = run("spam", &manifest("spam.toml"), &["--timeout", "300"]);
    out.assert_succeeded();
    out.assert_completed();
    let spammer = out.vm("spammer");
    assert_exited(spammer, 1);
    assert_eq!(spammer["restarts"], 2, "{spammer:#}");
    let console = &spammer["console"];
    // One allowance over all three runs: a fresh 4 KiB burst per run
    // would have printed at least 12 KiB.
    assert!(num(console, "bytes") < 3 * 4096, "{console:#}");
    assert!(num(console, "dropped") > 1_000_000, "{console:#}");
    for vm in ["quiet", "hello"] {
        let v = out.vm(vm);
        assert_exited(v, 0);
        assert_eq!(num(&v["console"], "dropped"), 0, "{vm}: {v:#}");
    }
    assert!(
        out.console().contains("hello | Hello from Corral"),
        "hello's lines got through"
    );
}

#[test]
fn a_run_cut_short_reports_what_its_running_vms_did() {
    // Far more work than the time bound allows: the run is cut short with
    // `spin` still running, and the report carries its progress records
    // (one every 50 M instructions it runs; the bound leaves room for many,
    // since the last may be cut off mid-line).
    let manifest = "[run]\ncpus = 1\n\n[[vm]]\nname = \"long\"\nimage = \"spin\"\nargs = \"work=100000000000\"\nexpect = \"exit:0\"\n";
    let out = integration::run_text("cut-short", "cut.toml", manifest, &["--timeout", "60"]);
    assert_ne!(out.code, 0, "the run cannot have met its expectation");
    assert_eq!(out.report["timed_out"], true, "{:#}", out.report);
    let long = out.vm("long");
    assert_eq!(long["status"], "running", "{long:#}");
    assert!(num(long, "boot_instructions") > 0, "{long:#}");
    assert!(num(long, "slices") >= 1, "{long:#}");
    let exits: u64 = long["exits"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum());
    assert!(exits > 0, "{long:#}");
}
