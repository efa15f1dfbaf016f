//! Hostile guests on one core, one after another: each is stopped with the
//! right reason, and a well-behaved guest after them still runs to its end.

use integration::{Outcome, manifest, run};

fn assert_killed(out: &Outcome, name: &str, parts: &[&str]) {
    let vm = out.vm(name);
    assert_eq!(vm["status"], "killed", "{vm:#}");
    let reason = vm["reason"].as_str().unwrap_or("");
    for part in parts {
        assert!(reason.contains(part), "{name}: `{reason}` lacks `{part}`");
    }
    assert_eq!(vm["ok"], true, "{vm:#}");
}

#[test]
fn hostile_guests_are_stopped_and_the_rest_carry_on() {
    let out = run("hostile", &manifest("hostile.toml"), &["--timeout", "300"]);
    assert_eq!(out.report["completed"], true, "{}", out.error_text());
    assert_killed(&out, "escape", &["EPT violation", "0x"]);
    assert_killed(&out, "badcall", &["bad hypercall", "unknown"]);
    assert_killed(&out, "badcall-ptr", &["bad hypercall", "outside"]);
    assert_killed(&out, "badcall-msr", &["MSR"]);
    assert_killed(&out, "badcall-io", &["I/O port"]);
    assert_killed(&out, "crash", &["triple fault"]);
    assert_killed(&out, "hog", &["instruction budget of 2000000 exhausted"]);
    // A clone writing its shared code is stopped; its siblings, which map the
    // very same frames, run before and after it.
    assert_killed(&out, "twin-1", &["EPT violation: write", "not permitted"]);
    for sibling in ["twin-0", "twin-2"] {
        assert_eq!(out.vm(sibling)["status"], "exited", "{sibling}");
        assert_eq!(out.vm(sibling)["exit_code"], 0, "{sibling}");
        assert!(out.vm(sibling)["memory"]["shared"].as_u64().unwrap_or(0) > 0);
    }
    let hello = out.vm("hello");
    assert_eq!(hello["core"], out.vm("escape")["core"]);
    assert_eq!(hello["status"], "exited", "{hello:#}");
    assert_eq!(hello["exit_code"], 0);
    assert_eq!(out.code, 0, "{}", out.error_text());
}
