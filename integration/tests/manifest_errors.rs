//! Mistakes in the issue-3 manifest fields, through the `corral` command:
//! each is refused before anything is built or booted, with a message that
//! names the VM and the field.

use integration::refused;

#[test]
fn a_core_the_run_does_not_have() {
    let e = refused(
        "core-missing",
        "[run]\ncpus = 4\n[[vm]]\nname = \"web\"\nimage = \"hello\"\ncount = 2\ncores = [1, 5]\n",
    );
    assert!(
        e.ends_with("m.toml: vm `web`: field `cores`: core 5 does not exist: this run has 4 CPUs"),
        "{e}"
    );
    let e = refused(
        "core-default-cpus",
        "[[vm]]\nname = \"a\"\nimage = \"hello\"\ncores = [1]\n",
    );
    assert!(
        e.ends_with("core 1 does not exist: this run has 1 CPU"),
        "{e}"
    );
}

#[test]
fn bad_core_lists() {
    let e = refused(
        "cores-empty",
        "[[vm]]\nname = \"a\"\nimage = \"hello\"\ncores = []\n",
    );
    assert!(
        e.contains("vm `a`: field `cores`: the list is empty"),
        "{e}"
    );
    let e = refused(
        "cores-64",
        "[[vm]]\nname = \"a\"\nimage = \"hello\"\ncores = [64]\n",
    );
    assert!(
        e.contains("vm `a`: field `cores`: core 64 is outside 0..=63"),
        "{e}"
    );
}

#[test]
fn clone_names_too_long_after_expansion() {
    let name = "a".repeat(31);
    let e = refused(
        "clone-name",
        &format!("[[vm]]\nname = \"{name}\"\nimage = \"hello\"\ncount = 2\n"),
    );
    assert!(
        e.contains(&format!(
            "vm `{name}`: field `name`: with count = 2 the clone names run up to `{name}-1` (33 bytes), longer than 32"
        )),
        "{e}"
    );
}

#[test]
fn clone_names_that_collide() {
    let e = refused(
        "clone-dup",
        "[[vm]]\nname = \"a\"\nimage = \"hello\"\ncount = 2\n[[vm]]\nname = \"a-0\"\nimage = \"hello\"\n",
    );
    assert!(
        e.contains("vm `a-0`") && e.contains("same name as vm 0"),
        "{e}"
    );
}

#[test]
fn bad_counts() {
    let e = refused(
        "count-0",
        "[[vm]]\nname = \"a\"\nimage = \"hello\"\ncount = 0\n",
    );
    assert!(
        e.contains("vm `a`: field `count`: 0 is outside 1..=4096"),
        "{e}"
    );
}

#[test]
fn restart_limit_without_restarts() {
    let e = refused(
        "restart-limit",
        "[[vm]]\nname = \"a\"\nimage = \"hello\"\nrestart_limit = 2\n",
    );
    assert!(
        e.ends_with("vm `a`: field `restart_limit`: only allowed with `restart = \"on-failure\"`"),
        "{e}"
    );
    let e = refused(
        "restart-never-limit",
        "[[vm]]\nname = \"a\"\nimage = \"hello\"\nrestart = \"never\"\nrestart_limit = 1\n",
    );
    assert!(e.contains("field `restart_limit`"), "{e}");
    let e = refused(
        "restart-limit-high",
        "[[vm]]\nname = \"a\"\nimage = \"hello\"\nrestart = \"on-failure\"\nrestart_limit = 5000\n",
    );
    assert!(
        e.contains("field `restart_limit`: 5000 is outside 0..=1000"),
        "{e}"
    );
    let e = refused(
        "restart-word",
        "[[vm]]\nname = \"a\"\nimage = \"hello\"\nrestart = \"sometimes\"\n",
    );
    assert!(e.contains("m.toml:4:") && e.contains("on-failure"), "{e}");
}

#[test]
fn bad_timeslice() {
    let e = refused(
        "timeslice",
        "[run]\ntimeslice = 100\n[[vm]]\nname = \"a\"\nimage = \"hello\"\n",
    );
    assert!(
        e.ends_with("m.toml: [run] `timeslice`: 100 is outside 10000..=1099511627776 instructions (0 = the hypervisor's default)"),
        "{e}"
    );
}

#[test]
fn bad_clone_expectations() {
    let e = refused(
        "expect-clone-no-count",
        "[[vm]]\nname = \"a\"\nimage = \"hello\"\nexpect_clone = { 0 = \"killed\" }\n",
    );
    assert!(
        e.contains("vm `a`: field `expect_clone`: only allowed with `count`"),
        "{e}"
    );
    let e = refused(
        "expect-clone-range",
        "[[vm]]\nname = \"a\"\nimage = \"hello\"\ncount = 2\nexpect_clone = { 2 = \"killed\" }\n",
    );
    assert!(
        e.contains("`2` is not a clone index of this entry (0..=1)"),
        "{e}"
    );
}
