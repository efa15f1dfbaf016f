//! Tests of the device fields (`net`, `console`) and the `[[link]]` tables:
//! resolution, defaults, encoding and every error.

use super::*;

fn images() -> Vec<String> {
    ["hello", "pktgen", "firewall", "sink"]
        .map(String::from)
        .to_vec()
}

fn ok(text: &str) -> Manifest {
    parse(text, "m.toml", &images()).unwrap()
}

fn err(text: &str) -> String {
    parse(text, "m.toml", &images()).unwrap_err().to_string()
}

/// gen (1 port), fw (2 ports), sink (1 port), all pinned to core 1 unless
/// `cores` says otherwise, then `links`.
fn pipeline(cores: &str, links: &str) -> String {
    format!(
        "[run]\ncpus = 2\n\
         [[vm]]\nname = \"gen\"\nimage = \"pktgen\"\nnet = 1\ncores = {cores}\n\
         [[vm]]\nname = \"fw\"\nimage = \"firewall\"\nnet = 2\nconsole = true\ncores = {cores}\n\
         [[vm]]\nname = \"sink\"\nimage = \"sink\"\nnet = 1\ncores = {cores}\n\
         {links}"
    )
}

fn link(a: &str, b: &str, extra: &str) -> String {
    format!("[[link]]\na = \"{a}\"\nb = \"{b}\"\n{extra}")
}

/// A VM end's (VM index, port).
fn vp(end: &LinkEnd) -> (u32, u8) {
    end.port().map_or((u32::MAX, 0), |p| (p.vm, p.port))
}

fn two_links() -> String {
    format!(
        "{}{}",
        link("gen.0", "fw.0", ""),
        link("fw.1", "sink.0", "core = 0\n")
    )
}

#[test]
fn devices_are_read_and_encoded() {
    let m = ok(&pipeline("[1]", ""));
    let ports: Vec<(u8, bool)> = m.vms.iter().map(|v| (v.net_ports, v.console)).collect();
    assert_eq!(ports, [(1, false), (2, true), (1, false)]);
    let bytes = m.encode().unwrap();
    let parsed = manifest::Manifest::parse(&bytes).unwrap();
    assert_eq!(
        parsed.get(1).map(|v| (v.net_ports, v.console)),
        Some((2, true))
    );
    assert_eq!(parsed.link_count(), 0);
    let m = ok("[[vm]]\nname = \"web\"\nimage = \"hello\"\ncount = 2\nnet = 3\nconsole = true\n");
    assert!(m.vms.iter().all(|v| v.net_ports == 3 && v.console));
}

#[test]
fn bad_devices_are_refused() {
    let vm = |extra: &str| format!("[[vm]]\nname = \"a\"\nimage = \"hello\"\n{extra}");
    assert_eq!(
        err(&vm("net = 5\n")),
        "m.toml: vm `a`: manifest vm 0: field `net`: 5 is outside 0..=4"
    );
    assert!(err(&vm("net = 256\n")).starts_with("m.toml:4:"));
    assert!(err(&vm("net = -1\n")).starts_with("m.toml:4:"));
    let e = err(&vm("console = \"virtio\"\n"));
    assert!(e.starts_with("m.toml:4:") && e.contains("bool"), "{e}");
    let e = err(&vm("nets = 1\n"));
    assert!(
        e.contains("unknown field `nets`") && e.contains("`net`"),
        "{e}"
    );
}

#[test]
fn links_resolve_against_vm_names() {
    let m = ok(&pipeline("[1]", &two_links()));
    assert_eq!(m.links.len(), 2);
    let l = &m.links[0];
    assert_eq!((vp(&l.a), vp(&l.b)), ((0, 0), (1, 0)));
    assert_eq!(l.core, DEFAULT_POLL_CORE);
    assert_eq!(l.ends(), "gen.0 <-> fw.0");
    let l = &m.links[1];
    assert_eq!((vp(&l.a), vp(&l.b), l.core), ((1, 1), (2, 0), 0));
    assert_eq!(l.a.to_string(), "fw.1");
    assert_eq!(poll_cores(&m.links, &m.nics), 1);
    m.check_cores(2).unwrap();
    let bytes = m.encode().unwrap();
    let parsed = manifest::Manifest::parse(&bytes).unwrap();
    let specs: Vec<_> = m.links.iter().map(LinkConfig::spec).collect();
    assert_eq!(parsed.links().collect::<Vec<_>>(), specs);
    assert_eq!(parsed.poll_cores(), 1);
}

#[test]
fn links_reach_clones_and_dotted_names() {
    let m = ok(&format!(
        "[run]\ncpus = 3\n\
         [[vm]]\nname = \"web\"\nimage = \"hello\"\ncount = 2\nnet = 1\n\
         [[vm]]\nname = \"lb.v2\"\nimage = \"hello\"\nnet = 2\n{}{}",
        link("web-1.0", "lb.v2.1", "core = 2\n"),
        link("lb.v2.0", "web-0.0", "core = 2\n"),
    ));
    assert_eq!((vp(&m.links[0].a), vp(&m.links[0].b)), ((1, 0), (2, 1)));
    assert_eq!((vp(&m.links[1].a).0, vp(&m.links[1].b).0), (2, 0));
    assert_eq!(m.links[1].ends(), "lb.v2.0 <-> web-0.0");
    m.encode().unwrap();
    m.check_cores(3).unwrap();
}

#[test]
fn link_ends_must_name_a_port() {
    for bad in ["fw", "fw.x", "fw.-1", ".0", "fw.256", "fw.", ""] {
        let e = err(&pipeline("[1]", &link("gen.0", bad, "")));
        assert_eq!(
            e,
            format!(
                "m.toml: link 0 (gen.0 <-> {bad}): field `b`: `{bad}` is not `<vm>.<port>` (a VM name, a dot and a port number, such as `fw.0`) or `nic:<name>`"
            )
        );
    }
}

#[test]
fn unknown_vms_are_named() {
    let e = err(&pipeline(
        "[1]",
        &(link("gen.0", "fw.0", "") + &link("fw.1", "nat.0", "")),
    ));
    assert_eq!(
        e,
        "m.toml: link 1 (fw.1 <-> nat.0): field `b`: no VM named `nat` (VMs: gen, fw, sink)"
    );
    let e = err(&format!(
        "[[vm]]\nname = \"web\"\nimage = \"hello\"\ncount = 3\nnet = 1\n{}",
        link("web.0", "web-1.0", "")
    ));
    assert_eq!(
        e,
        "m.toml: link 0 (web.0 <-> web-1.0): field `a`: `web` is an entry with count = 3: name one of its clones, `web-0` .. `web-2`"
    );
    let e = err(&format!(
        "[[vm]]\nname = \"web\"\nimage = \"hello\"\ncount = 12\nnet = 1\n{}",
        link("web-0.0", "db.0", "")
    ));
    assert!(
        e.ends_with(
            "no VM named `db` (VMs: web-0, web-1, web-2, web-3, web-4, web-5, web-6, web-7, ...)"
        ),
        "{e}"
    );
}

#[test]
fn ports_beyond_net_are_refused() {
    let e = err(&pipeline("[1]", &link("gen.1", "fw.0", "")));
    assert_eq!(
        e,
        "m.toml: link 0 (gen.1 <-> fw.0): field `a`: VM `gen` has 1 net port (0..=0), so it has no port 1"
    );
    let e = err(&pipeline("[1]", &link("gen.0", "fw.2", "")));
    assert!(
        e.ends_with("field `b`: VM `fw` has 2 net ports (0..=1), so it has no port 2"),
        "{e}"
    );
    let e = err(&format!(
        "[[vm]]\nname = \"a\"\nimage = \"hello\"\n[[vm]]\nname = \"b\"\nimage = \"hello\"\nnet = 1\n{}",
        link("b.0", "a.0", "")
    ));
    assert_eq!(
        e,
        "m.toml: link 0 (b.0 <-> a.0): field `b`: VM `a` has no net ports; give it `net = 1` or more"
    );
}

#[test]
fn a_port_joins_one_link() {
    let e = err(&pipeline(
        "[1]",
        &(link("gen.0", "fw.0", "") + &link("fw.1", "gen.0", "")),
    ));
    assert_eq!(
        e,
        "m.toml: link 1 (fw.1 <-> gen.0): field `b`: port `gen.0` is already an end of link 0 (gen.0 <-> fw.0); a port joins one link"
    );
    let e = err(&pipeline(
        "[1]",
        &(link("gen.0", "fw.0", "") + &link("fw.0", "sink.0", "")),
    ));
    assert!(
        e.starts_with(
            "m.toml: link 1 (fw.0 <-> sink.0): field `a`: port `fw.0` is already an end of link 0"
        ),
        "{e}"
    );
    let e = err(&pipeline("[1]", &link("fw.1", "fw.1", "")));
    assert_eq!(
        e,
        "m.toml: link 0 (fw.1 <-> fw.1): field `b`: port `fw.1` is also end `a`: a link joins two different ports"
    );
    // Two ports of one VM may be linked to each other.
    ok(&pipeline("[1]", &link("fw.0", "fw.1", "")));
}

#[test]
fn link_fields_are_checked() {
    let e = err(&pipeline("[1]", &link("gen.0", "fw.0", "core = 64\n")));
    assert_eq!(
        e,
        "m.toml: link 0 (gen.0 <-> fw.0): field `core`: core 64 is outside 0..=63 (a manifest can name 64 cores)"
    );
    let e = err(&pipeline("[1]", &link("gen.0", "fw.0", "core = -1\n")));
    assert!(e.starts_with("m.toml:"), "{e}");
    let e = err(&pipeline("[1]", &link("gen.0", "fw.0", "speed = 10\n")));
    assert!(e.contains("unknown field `speed`"), "{e}");
    let e = err(&pipeline("[1]", "[[link]]\na = \"gen.0\"\n"));
    assert!(e.contains("missing field `b`"), "{e}");
    let e = err(&pipeline("[1]", "[[link]]\na = \"gen.0\"\nb = 1\n"));
    assert!(e.starts_with("m.toml:"), "{e}");
    let e = err(&pipeline("[1]", &link("gen.0", "fw.0", "hold = 5\n")));
    assert_eq!(
        e,
        "m.toml: link 0 (gen.0 <-> fw.0): field `hold`: 5 instructions is outside 10000..=1099511627776 (0 means a stalled receiver's frames are never dropped)"
    );
    let m = ok(&pipeline("[1]", &link("gen.0", "fw.0", "hold = 0\n")));
    assert_eq!(m.links[0].hold, 0);
    let m = ok(&pipeline("[1]", &link("gen.0", "fw.0", "")));
    assert_eq!(m.links[0].hold, vmm_abi::manifest::DEFAULT_LINK_HOLD);
}

#[test]
fn too_many_links_are_refused() {
    let links: String = (0..257)
        .map(|i| link(&format!("v.{i}"), "w.0", ""))
        .collect();
    let e = err(&format!("[[vm]]\nname = \"v\"\nimage = \"hello\"\n{links}"));
    assert_eq!(e, "m.toml: 257 links, at most 256 allowed");
}

#[test]
fn no_vm_may_be_pinned_only_to_polling_cores() {
    let e = err(&pipeline("[0]", &two_links()));
    assert_eq!(
        e,
        "m.toml: vm `gen`: field `cores`: every core it may run on polls links (core 0 polls link 0 (gen.0 <-> fw.0)), and polling cores run no VMs; pin it to another core as well or leave `cores` out"
    );
    // Clones are named by their entry, as for other core errors.
    let e = err(&format!(
        "[[vm]]\nname = \"web\"\nimage = \"hello\"\ncount = 2\nnet = 1\ncores = [2]\n\
         [[vm]]\nname = \"x\"\nimage = \"hello\"\nnet = 1\n\
         [[vm]]\nname = \"y\"\nimage = \"hello\"\nnet = 1\n{}{}",
        link("web-0.0", "web-1.0", "core = 3\n"),
        link("x.0", "y.0", "core = 2\n"),
    ));
    assert!(
        e.starts_with("m.toml: vm `web`: field `cores`: every core it may run on polls links (core 2 polls link 1 (x.0 <-> y.0))"),
        "{e}"
    );
    // A core that polls is fine among others, and unpinned VMs are kept off
    // polling cores by the hypervisor.
    ok(&pipeline("[0, 1]", &two_links()));
    let m = ok(&format!(
        "[[vm]]\nname = \"a\"\nimage = \"hello\"\nnet = 1\n[[vm]]\nname = \"b\"\nimage = \"hello\"\nnet = 1\n{}",
        link("a.0", "b.0", "")
    ));
    m.check_cores(2).unwrap();
}

#[test]
fn polling_cores_must_exist_and_leave_a_core_for_vms() {
    let m = ok(&pipeline("[1]", &link("gen.0", "fw.0", "core = 3\n")));
    assert_eq!(
        m.check_cores(2).unwrap_err().to_string(),
        "m.toml: link 0 (gen.0 <-> fw.0): field `core`: core 3 does not exist: this run has 2 CPUs"
    );
    m.check_cores(4).unwrap();
    let m = ok(&format!(
        "[[vm]]\nname = \"a\"\nimage = \"hello\"\nnet = 1\n[[vm]]\nname = \"b\"\nimage = \"hello\"\nnet = 1\n{}",
        link("a.0", "b.0", "")
    ));
    assert_eq!(
        m.check_cores(1).unwrap_err().to_string(),
        "m.toml: link 0 (a.0 <-> b.0): field `core`: with this run's 1 CPU every core polls links (core 0), so none is left for VMs; add CPUs (`[run] cpus`) or poll on fewer cores"
    );
}
