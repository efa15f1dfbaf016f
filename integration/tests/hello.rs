//! The hello guest boots, prints and exits with code 0 on two CPU models, on a hypervisor that maps no page both writable and executable (W^X).

use integration::{Outcome, assert_exited, manifest, run};

fn assert_hello_ran(out: &Outcome) {
    out.assert_succeeded();
    out.assert_completed();
    let hello = out.vm("hello");
    assert_exited(hello, 0);
    assert!(
        hello["boot_instructions"].as_u64().unwrap_or(0) > 0,
        "{hello:#}"
    );
    assert!(
        hello["exits"]["vmcall"].as_u64().unwrap_or(0) > 0,
        "{hello:#}"
    );
    // W^X: once every core is up, the hypervisor's code is its only
    // executable memory (tens of pages) and nothing is both writable and
    // executable.
    let paging = &out.report["paging"];
    assert_eq!(paging["writable_exec"], 0, "{paging:#}");
    let exec = paging["exec"].as_u64().unwrap_or(0);
    assert!((1..1024).contains(&exec), "{paging:#}");
    assert!(
        paging["writable"].as_u64().unwrap_or(0) > 1 << 19,
        "{paging:#}"
    );
}

#[test]
fn hello_on_icelake() {
    let out = run(
        "hello-icelake",
        &manifest("hello.toml"),
        &["--timeout", "180"],
    );
    assert_eq!(out.report["cpu_model"], "corei7_icelake_u");
    assert_hello_ran(&out);
}

#[test]
fn hello_on_skylake_x() {
    let out = run(
        "hello-skylake",
        &manifest("hello.toml"),
        &["--cpu-model", "corei7_skylake_x", "--timeout", "180"],
    );
    assert_eq!(out.report["cpu_model"], "corei7_skylake_x");
    assert_hello_ran(&out);
}
