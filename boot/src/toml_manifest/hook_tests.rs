//! Tests of the `[[hook]]` tables: attach targets resolved to a link
//! direction, programs compiled and loaded, encoding, and every refusal
//! (a program the verifier refuses named by hook, instruction and rule).

use super::*;

fn images() -> Vec<String> {
    ["pktgen", "sink"].map(String::from).to_vec()
}

fn hooks_dir() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../images/hooks")
        .display()
        .to_string()
}

/// gen -> sink over one link, then `hooks`.
fn with_hooks(hooks: &str) -> String {
    format!(
        "[run]\ncpus = 2\n\
         [[vm]]\nname = \"gen\"\nimage = \"pktgen\"\nnet = 1\ncores = [1]\n\
         [[vm]]\nname = \"sink\"\nimage = \"sink\"\nnet = 1\ncores = [1]\n\
         [[link]]\na = \"gen.0\"\nb = \"sink.0\"\n{hooks}"
    )
}

fn hook(name: &str, attach: &str, program: &str) -> String {
    format!("[[hook]]\nname = \"{name}\"\nkind = \"packet\"\nattach = \"{attach}\"\n{program}\n")
}

fn source(file: &str) -> String {
    format!("source = \"{}/{file}\"", hooks_dir())
}

fn err(text: &str) -> String {
    parse(text, "m.toml", &images()).unwrap_err().to_string()
}

#[test]
fn a_packet_hook_is_loaded_and_encoded() {
    let m = parse(
        &with_hooks(&hook(
            "drop",
            "link:sink.0->gen.0",
            &source("drop_port.bpf.c"),
        )),
        "m.toml",
        &images(),
    )
    .unwrap();
    let h = &m.hooks[0];
    assert_eq!((h.link, h.dir), (0, manifest::LinkDir::BToA));
    assert_eq!(h.map_names().collect::<Vec<_>>(), ["drops", "ports"]);
    let bytes = m.encode().unwrap();
    let parsed = manifest::Manifest::parse(&bytes).unwrap();
    let spec = parsed.hooks().next().unwrap();
    assert_eq!(spec.name, "drop");
    assert_eq!(spec.insn_count(), h.program.insns.len());
    assert_eq!(spec.map_count(), 2);
}

#[test]
fn a_loop_is_refused_before_boot() {
    let e = err(&with_hooks(&hook(
        "fw-v6",
        "link:gen.0->sink.0",
        &source("loop.bpf.c"),
    )));
    assert!(e.starts_with("m.toml: hook `fw-v6`: insn "), "{e}");
    assert!(e.contains(": back edge to insn "), "{e}");
    assert!(e.contains("(loops are not allowed) (in "), "{e}");
    assert!(e.ends_with("loop.bpf.c, program `sum_bytes`)"), "{e}");
}

#[test]
fn attach_targets_are_checked() {
    let s = source("drop_port.bpf.c");
    let e = err(&with_hooks(&hook("h", "link:gen.0->fw.0", &s)));
    assert!(
        e.contains(
            "hook `h`: field `attach`: no link joins `gen.0` and `fw.0` (links: gen.0 <-> sink.0)"
        ),
        "{e}"
    );
    let e = err(&with_hooks(&hook("h", "link:a->b", &s)));
    assert!(e.contains("names the direction by end name"), "{e}");
    let e = err(&with_hooks(&hook("h", "link:gen.0", &s)));
    assert!(e.contains("does not say a direction"), "{e}");
    let e = err(&with_hooks(&hook("h", "nic:uplink:rx", &s)));
    assert!(e.contains("hooks on NIC queues are not built yet"), "{e}");
    let two = format!(
        "{}{}",
        hook("h", "link:gen.0->sink.0", &s),
        hook("g", "link:gen.0->sink.0", &s)
    );
    let e = err(&with_hooks(&two));
    assert!(
        e.contains("hook `g`: field `attach`: hook `h` is already attached"),
        "{e}"
    );
}

#[test]
fn kinds_names_and_files_are_checked() {
    let s = source("drop_port.bpf.c");
    let restart = hook("h", "link:gen.0->sink.0", &s).replace("packet", "restart");
    let e = err(&with_hooks(&restart));
    assert!(
        e.contains("field `kind`: `restart` hooks are not built yet"),
        "{e}"
    );
    let e = err(&with_hooks(&hook("-h", "link:gen.0->sink.0", &s)));
    assert!(e.contains("field `name`"), "{e}");
    let e = err(&with_hooks(&hook("h", "link:gen.0->sink.0", "")));
    assert!(e.contains("give exactly one of `source`"), "{e}");
    let e = err(&with_hooks(&hook(
        "h",
        "link:gen.0->sink.0",
        "object = \"/nonexistent.o\"",
    )));
    assert!(
        e.contains("hook `h`: /nonexistent.o: cannot read it"),
        "{e}"
    );
    let picked = format!("{s}\nprogram = \"xdp/other\"");
    let e = err(&with_hooks(&hook("h", "link:gen.0->sink.0", &picked)));
    assert!(
        e.contains("no program `xdp/other` in the object (it has: xdp/drop_port)"),
        "{e}"
    );
}
