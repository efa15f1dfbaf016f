//! Mistakes in the device fields and `[[link]]` tables, through the `corral`
//! command: each is refused before anything is built or booted, with a
//! message that names the link (or VM) and what is wrong.

use integration::refused;

/// Two hello VMs with net ports (`a` has 1, `b` has 2) on core 1 of a
/// 2-CPU run, then `links`.
fn pair(links: &str) -> String {
    format!(
        "[run]\ncpus = 2\n\
         [[vm]]\nname = \"a\"\nimage = \"hello\"\nnet = 1\ncores = [1]\n\
         [[vm]]\nname = \"b\"\nimage = \"hello\"\nnet = 2\ncores = [1]\n{links}"
    )
}

#[test]
fn a_link_to_an_unknown_vm() {
    let e = refused(
        "link-unknown-vm",
        &pair("[[link]]\na = \"a.0\"\nb = \"c.0\"\n"),
    );
    assert!(
        e.ends_with("m.toml: link 0 (a.0 <-> c.0): field `b`: no VM named `c` (VMs: a, b)"),
        "{e}"
    );
}

#[test]
fn a_port_beyond_the_vms_net() {
    let e = refused(
        "link-no-port",
        &pair("[[link]]\na = \"a.1\"\nb = \"b.0\"\n"),
    );
    assert!(
        e.ends_with(
            "link 0 (a.1 <-> b.0): field `a`: VM `a` has 1 net port (0..=0), so it has no port 1"
        ),
        "{e}"
    );
}

#[test]
fn a_port_in_two_links() {
    let e = refused(
        "link-port-twice",
        &pair("[[link]]\na = \"a.0\"\nb = \"b.0\"\n[[link]]\na = \"b.1\"\nb = \"a.0\"\n"),
    );
    assert!(
        e.ends_with("link 1 (b.1 <-> a.0): field `b`: port `a.0` is already an end of link 0 (a.0 <-> b.0); a port joins one link"),
        "{e}"
    );
}

#[test]
fn a_bad_end() {
    let e = refused("link-syntax", &pair("[[link]]\na = \"a\"\nb = \"b.0\"\n"));
    assert!(
        e.contains("link 0 (a <-> b.0): field `a`: `a` is not `<vm>.<port>`"),
        "{e}"
    );
}

#[test]
fn a_vm_pinned_only_to_a_polling_core() {
    let e = refused(
        "link-poll-pinned",
        &pair("[[link]]\na = \"a.0\"\nb = \"b.0\"\ncore = 1\n"),
    );
    assert!(
        e.ends_with("vm `a`: field `cores`: every core it may run on polls links (core 1 polls link 0 (a.0 <-> b.0)), and polling cores run no VMs; pin it to another core as well or leave `cores` out"),
        "{e}"
    );
}

#[test]
fn polling_cores_the_run_lacks() {
    let e = refused(
        "link-core-missing",
        &pair("[[link]]\na = \"a.0\"\nb = \"b.0\"\ncore = 2\n"),
    );
    assert!(
        e.ends_with(
            "link 0 (a.0 <-> b.0): field `core`: core 2 does not exist: this run has 2 CPUs"
        ),
        "{e}"
    );
    let e = refused(
        "link-no-core-left",
        "[[vm]]\nname = \"a\"\nimage = \"hello\"\nnet = 1\n\
         [[vm]]\nname = \"b\"\nimage = \"hello\"\nnet = 1\n\
         [[link]]\na = \"a.0\"\nb = \"b.0\"\n",
    );
    assert!(
        e.contains("link 0 (a.0 <-> b.0): field `core`: with this run's 1 CPU every core polls links (core 0), so none is left for VMs"),
        "{e}"
    );
}

#[test]
fn too_many_net_ports() {
    let e = refused(
        "net-5",
        "[[vm]]\nname = \"a\"\nimage = \"hello\"\nnet = 5\n",
    );
    assert!(
        e.ends_with("vm `a`: manifest vm 0: field `net`: 5 is outside 0..=4"),
        "{e}"
    );
}
