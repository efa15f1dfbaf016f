//! Packet hooks end to end (issue 11): an operator's XDP program in C
//! (`images/hooks/drop_port.bpf.c`), named in the manifest, compiled by
//! the tool, verified twice and run on the polling core for every frame
//! pktgen sends to the sink; and a program with a loop, refused before
//! anything is built or booted.

use integration::{assert_exited, flow, manifest, num, refused, run};
use serde_json::Value;

/// The number under `key=` in pktgen's arguments in `hooks.toml`.
fn gen_arg(key: &str) -> u64 {
    let root = integration::root();
    let known = boot::cargo_build::known_images(&root).expect("images crate");
    let m = boot::toml_manifest::load(&manifest("hooks.toml"), &known).expect("hooks.toml");
    let pktgen = m.vms.iter().find(|v| v.name == "gen").expect("VM gen");
    pktgen
        .args
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("pktgen has no `{key}=`"))
        .parse()
        .expect("a number")
}

/// The value of `key` (hex) in map `map` of `hook`, as a number.
fn entry(hook: &Value, map: &str, key: &str) -> Option<u64> {
    hook["maps"][map]["values"]
        .as_array()?
        .iter()
        .find(|e| e["key"] == key)
        .map(|e| num(e, "number"))
}

#[test]
fn a_hook_drops_one_port_and_everything_agrees() {
    let out = run("hooks", &manifest("hooks.toml"), &["--timeout", "600"]);
    out.assert_succeeded();
    out.assert_completed();
    for vm in out.vms() {
        assert_exited(vm, 0);
    }
    let count = gen_arg("count");
    let every = gen_arg("every");
    let denied = count / every;
    assert_eq!(out.metric("gen", "sent"), count);
    assert_eq!(out.metric("gen", "sent_denied"), denied);

    let hooks = out.report["hooks"].as_array().expect("hooks in the report");
    assert_eq!(hooks.len(), 1, "{hooks:#?}");
    let h = &hooks[0];
    assert_eq!(h["name"], "drop-9999");
    assert_eq!(h["kind"], "packet");
    assert_eq!(h["attach"], "link:gen.0->sink.0");
    assert_eq!(h["program"], "drop_port");
    // Every frame pktgen handed over, and its end-of-stream frame (not IP:
    // passed), ran the hook once.
    assert_eq!(num(h, "runs"), count + 1, "{h:#}");
    let v = &h["verdicts"];
    assert_eq!(num(v, "drop"), denied, "{h:#}");
    assert_eq!(num(v, "pass"), count - denied + 1, "{h:#}");
    for k in ["aborted", "faults", "tx", "redirect"] {
        assert_eq!(num(v, k), 0, "{k}: {h:#}");
    }
    assert!(num(h, "instructions") > 10 * count, "{h:#}");

    // The maps: `drops[0]` counted the drops; `ports` counted each
    // destination port (9999 = 0x270f, 7; keys are little-endian u16).
    assert_eq!(entry(h, "drops", "00000000"), Some(denied), "{h:#}");
    assert_eq!(entry(h, "ports", "0f27"), Some(denied), "{h:#}");
    assert_eq!(entry(h, "ports", "0700"), Some(count - denied), "{h:#}");
    assert_eq!(num(&h["maps"]["ports"], "entries"), 2, "{h:#}");

    // The link delivered what the hook passed; the sink got every data
    // frame that passed.
    let link = out.link("gen.0", "sink.0");
    let (frames, _) = flow(link, "ab");
    assert_eq!(frames, count - denied + 1, "{link:#}");
    assert_eq!(out.metric("sink", "received"), count - denied);
    assert_eq!(out.metric("sink", "announced"), count);
}

#[test]
fn a_hook_with_a_loop_is_refused_before_boot() {
    let source = integration::root().join("images/hooks/loop.bpf.c");
    let text = format!(
        "[run]\ncpus = 2\n\
         [[vm]]\nname = \"gen\"\nimage = \"pktgen\"\nnet = 1\ncores = [1]\n\
         [[vm]]\nname = \"sink\"\nimage = \"sink\"\nnet = 1\ncores = [1]\n\
         [[link]]\na = \"gen.0\"\nb = \"sink.0\"\n\
         [[hook]]\nname = \"fw-v6\"\nkind = \"packet\"\nattach = \"link:gen.0->sink.0\"\nsource = \"{}\"\n",
        source.display()
    );
    let e = refused("hook-loop", &text);
    assert!(e.contains("m.toml: hook `fw-v6`: insn "), "{e}");
    assert!(e.contains(": back edge to insn "), "{e}");
    assert!(e.contains(" (loops are not allowed)"), "{e}");
    assert!(e.contains("loop.bpf.c, program `sum_bytes`"), "{e}");
}
