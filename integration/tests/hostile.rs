//! Hostile guests on one core, one after another: each is stopped with the
//! right reason, and a well-behaved guest after them still runs to its end.

use integration::{Outcome, assert_exited, assert_killed, manifest, run};

/// VM `name` was stopped for a reason naming each of `parts`, as its
/// manifest entry expects.
fn assert_stopped(out: &Outcome, name: &str, parts: &[&str]) {
    let vm = out.vm(name);
    assert_killed(vm, parts);
    assert_eq!(vm["ok"], true, "{vm:#}");
}

#[test]
fn hostile_guests_are_stopped_and_the_rest_carry_on() {
    let out = run("hostile", &manifest("hostile.toml"), &["--timeout", "300"]);
    out.assert_completed();
    assert_stopped(&out, "escape", &["EPT violation", "0x"]);
    assert_stopped(&out, "badcall", &["bad hypercall", "unknown"]);
    assert_stopped(&out, "badcall-ptr", &["bad hypercall", "outside"]);
    assert_stopped(&out, "badcall-msr", &["MSR"]);
    assert_stopped(&out, "badcall-io", &["I/O port"]);
    assert_stopped(&out, "crash", &["triple fault"]);
    assert_stopped(&out, "hog", &["instruction budget of 2000000 exhausted"]);
    // A clone writing its shared code is stopped; its siblings, which map the
    // very same frames, run before and after it.
    assert_stopped(&out, "twin-1", &["EPT violation: write", "not permitted"]);
    for sibling in ["twin-0", "twin-2"] {
        assert_exited(out.vm(sibling), 0);
        assert!(out.vm(sibling)["memory"]["shared"].as_u64().unwrap_or(0) > 0);
    }
    let hello = out.vm("hello");
    assert_eq!(hello["core"], out.vm("escape")["core"]);
    assert_exited(hello, 0);
    out.assert_succeeded();
}
