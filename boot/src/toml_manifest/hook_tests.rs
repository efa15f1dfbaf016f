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
    assert_eq!(
        h.target,
        manifest::HookAttach::Link {
            link: 0,
            dir: manifest::LinkDir::BToA
        }
    );
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
    assert!(e.contains("no NIC `uplink` (NICs: none)"), "{e}");
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
    let slice = hook("h", "link:gen.0->sink.0", &s).replace("packet", "slice");
    let e = err(&with_hooks(&slice));
    assert!(e.contains("a slice hook is attached to a VM"), "{e}");
    let e = err(&with_hooks(
        &hook("h", "link:gen.0->sink.0", &s).replace("packet", "spin"),
    ));
    assert!(e.contains("`spin` is not a hook kind"), "{e}");
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

fn vm_hook(name: &str, kind: &str, attach: &str, file: &str) -> String {
    format!(
        "[[hook]]\nname = \"{name}\"\nkind = \"{kind}\"\nattach = \"{attach}\"\n{}\n",
        source(file)
    )
}

#[test]
fn restart_and_exit_hooks_attach_to_vms() {
    let text = with_hooks(&format!(
        "{}{}",
        vm_hook("twice", "restart", "vm:sink", "restart_twice.bpf.c"),
        vm_hook("filter", "exit", "vm:sink", "deny_hypercall.bpf.c"),
    ));
    let m = parse(&text, "m.toml", &images()).unwrap();
    assert_eq!(m.hooks[0].target, manifest::HookAttach::Vm { vm: 1 });
    assert_eq!(m.hooks[1].kind, vmm_abi::hook::HookKind::Exit);
    let parsed_bytes = m.encode().unwrap();
    let parsed = manifest::Manifest::parse(&parsed_bytes).unwrap();
    let specs: Vec<_> = parsed.hooks().collect();
    assert_eq!(specs[1].attach, manifest::HookAttach::Vm { vm: 1 });
    // One of each kind per VM.
    let e = err(&with_hooks(&format!(
        "{}{}",
        vm_hook("a", "exit", "vm:sink", "deny_hypercall.bpf.c"),
        vm_hook("b", "exit", "vm:sink", "deny_hypercall.bpf.c"),
    )));
    assert!(
        e.contains("hook `b`: field `attach`: hook `a` is already attached to `vm:sink`; one exit hook per VM"),
        "{e}"
    );
    let e = err(&with_hooks(&vm_hook(
        "a",
        "exit",
        "link:gen.0->sink.0",
        "deny_hypercall.bpf.c",
    )));
    assert!(
        e.contains("an exit hook is attached to a VM: write `vm:<name>`"),
        "{e}"
    );
    let e = err(&with_hooks(&vm_hook(
        "a",
        "restart",
        "vm:nobody",
        "restart_twice.bpf.c",
    )));
    assert!(e.contains("no VM `nobody` (VMs: gen, sink)"), "{e}");
    // A packet program is not a restart hook.
    let e = err(&with_hooks(&vm_hook(
        "a",
        "restart",
        "vm:gen",
        "drop_port.bpf.c",
    )));
    assert!(
        e.contains("a restart hook takes a tracepoint program"),
        "{e}"
    );
    let e = err(&with_hooks(&hook(
        "h",
        "vm:gen",
        &source("drop_port.bpf.c"),
    )));
    assert!(e.contains("a packet hook goes on `link:"), "{e}");
}

#[test]
fn a_hook_on_a_cloned_entry_names_one_clone() {
    let text = "[[vm]]\nname = \"web\"\nimage = \"sink\"\ncount = 3\n".to_string()
        + &vm_hook("twice", "restart", "vm:web", "restart_twice.bpf.c");
    let e = err(&text);
    assert!(
        e.contains("`web` has clones (web-0 .. web-2); a hook attaches to one VM: name a clone, such as `vm:web-0`"),
        "{e}"
    );
    let text = "[[vm]]\nname = \"web\"\nimage = \"sink\"\ncount = 3\n".to_string()
        + &vm_hook("twice", "restart", "vm:web-2", "restart_twice.bpf.c");
    let m = parse(&text, "m.toml", &images()).unwrap();
    assert_eq!(m.hooks[0].target, manifest::HookAttach::Vm { vm: 2 });
}

/// echo behind a shared NIC `up` and an owned NIC `own`, then `hooks`.
fn with_nics(hooks: &str) -> String {
    format!(
        "[run]\ncpus = 2\n\
         [[vm]]\nname = \"gen\"\nimage = \"pktgen\"\nnet = 1\ncores = [1]\n\
         [[vm]]\nname = \"sink\"\nimage = \"sink\"\nnet = 1\ncores = [1]\n\
         [[nic]]\nname = \"up\"\n\
         [[nic]]\nname = \"own\"\nmode = \"owned\"\n\
         [[link]]\na = \"gen.0\"\nb = \"nic:up\"\n\
         [[link]]\na = \"sink.0\"\nb = \"nic:own\"\n{hooks}"
    )
}

#[test]
fn packet_hooks_attach_to_a_shared_nics_queue() {
    let s = source("drop_port.bpf.c");
    let m = parse(
        &with_nics(&format!(
            "{}{}",
            hook("in", "nic:up:rx", &s),
            hook("out", "nic:up:tx", &s)
        )),
        "m.toml",
        &images(),
    )
    .unwrap();
    assert_eq!(
        m.hooks[0].target,
        manifest::HookAttach::Nic {
            nic: 0,
            dir: manifest::NicDir::Rx
        }
    );
    assert_eq!(
        m.hooks[1].target,
        manifest::HookAttach::Nic {
            nic: 0,
            dir: manifest::NicDir::Tx
        }
    );
    let bytes = m.encode().unwrap();
    assert_eq!(manifest::Manifest::parse(&bytes).unwrap().hook_count(), 2);
    let e = err(&with_nics(&hook("h", "nic:own:rx", &s)));
    assert!(e.contains("NIC `own` is in owned mode"), "{e}");
    let e = err(&with_nics(&hook("h", "nic:up:sideways", &s)));
    assert!(e.contains("`sideways` is not a NIC queue direction"), "{e}");
    let e = err(&with_nics(&hook("h", "nic:up", &s)));
    assert!(e.contains("does not say a direction"), "{e}");
    let e = err(&with_nics(&hook("h", "nic:down:rx", &s)));
    assert!(e.contains("no NIC `down` (NICs: up, own)"), "{e}");
    let e = err(&with_nics(&hook("h", "link:gen.0->nic:up", &s)));
    assert!(
        e.contains("attach the hook to the NIC's queue instead"),
        "{e}"
    );
    let two = format!(
        "{}{}",
        hook("a", "nic:up:rx", &s),
        hook("b", "nic:up:rx", &s)
    );
    let e = err(&with_nics(&two));
    assert!(e.contains("one packet hook per NIC queue direction"), "{e}");
}

#[test]
fn a_slice_hook_may_serve_a_core() {
    let text = with_hooks(&vm_hook("every", "slice", "core:1", "long_slices.bpf.c"));
    let m = parse(&text, "m.toml", &images()).unwrap();
    assert_eq!(m.hooks[0].target, manifest::HookAttach::Core { core: 1 });
    // It encodes and reads back.
    let bytes = m.encode().unwrap();
    let parsed = vmm_abi::manifest::Manifest::parse(&bytes).unwrap();
    assert_eq!(
        parsed.hooks().next().unwrap().attach,
        manifest::HookAttach::Core { core: 1 }
    );
    assert!(m.check_cores(2).is_ok());
    // A core the run does not have.
    let five = with_hooks(&vm_hook("every", "slice", "core:5", "long_slices.bpf.c"));
    let e = parse(&five, "m.toml", &images())
        .unwrap()
        .check_cores(2)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("hook `every`: field `attach`: core 5 does not exist: this run has 2 CPUs"),
        "{e}"
    );
    for bad in ["core:x", "core:64", "core:01", "core:+1", "core:"] {
        let e = err(&with_hooks(&vm_hook(
            "every",
            "slice",
            bad,
            "long_slices.bpf.c",
        )));
        assert!(
            e.contains("a core is `core:N` with N a core number 0..=63"),
            "{bad}: {e}"
        );
    }
    // Two hooks on one core; a restart hook on a core.
    let two = vm_hook("a", "slice", "core:1", "long_slices.bpf.c")
        + &vm_hook("b", "slice", "core:1", "long_slices.bpf.c");
    let e = err(&with_hooks(&two));
    assert!(e.contains("one slice hook per core"), "{e}");
    let e = err(&with_hooks(&vm_hook(
        "r",
        "restart",
        "core:1",
        "restart_twice.bpf.c",
    )));
    assert!(e.contains("write `vm:<name>`"), "{e}");
}

#[test]
fn the_engine_is_the_jit_unless_the_interpreter_is_asked_for() {
    let with_engine = |engine: &str| {
        with_hooks(&hook(
            "drop",
            "link:gen.0->sink.0",
            &format!("{}\n{engine}", source("drop_port.bpf.c")),
        ))
    };
    let m = parse(&with_engine(""), "m.toml", &images()).unwrap();
    assert!(!m.hooks[0].interpret);
    let m = parse(&with_engine("engine = \"jit\""), "m.toml", &images()).unwrap();
    assert!(!m.hooks[0].interpret);
    let m = parse(
        &with_engine("engine = \"interpreter\""),
        "m.toml",
        &images(),
    )
    .unwrap();
    assert!(m.hooks[0].interpret);
    let bytes = m.hooks[0].bytes();
    assert!(
        m.hooks[0].spec(&bytes).interpret,
        "carried into the binary manifest"
    );
    let e = err(&with_engine("engine = \"fast\""));
    assert!(e.contains("fast") && e.contains("interpreter"), "{e}");
}
