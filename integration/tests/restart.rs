//! Restarts: in a fleet of 4 hello clones on one core, clone 1 triple-faults
//! every time. With `restart = "on-failure"` and a limit of 2 it runs three
//! times and ends killed; its siblings exit 0.

use integration::{assert_exited, assert_killed, manifest, num, run};

#[test]
fn a_crashing_clone_restarts_up_to_its_limit() {
    let out = run("restart", &manifest("restart.toml"), &["--timeout", "600"]);
    out.assert_completed();
    let crashed = out.vm("web-1");
    assert_killed(crashed, &["triple fault"]);
    assert_eq!(num(crashed, "restarts"), 2, "{crashed:#}");
    let reasons = crashed["restart_reasons"]
        .as_array()
        .expect("restart reasons");
    assert_eq!(reasons.len(), 2, "{crashed:#}");
    assert!(
        reasons
            .iter()
            .all(|r| r.as_str().is_some_and(|r| r.contains("triple fault"))),
        "{crashed:#}"
    );
    for name in ["web-0", "web-2", "web-3"] {
        let vm = out.vm(name);
        assert_exited(vm, 0);
        assert_eq!(num(vm, "restarts"), 0, "{vm:#}");
    }
    out.assert_succeeded();
}
