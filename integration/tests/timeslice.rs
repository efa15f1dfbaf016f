//! Time slicing: two CPU-bound spin guests pinned to the one core, with
//! slices of a million instructions. Both finish, each was scheduled several
//! times and preempted by the VMX preemption timer, and their progress lines
//! interleave on the console.

use integration::{assert_exited, manifest, num, run};

/// Console lines of `vm` that report progress, by position in `console`.
fn progress_lines(console: &str, vm: &str) -> Vec<usize> {
    let prefix = format!("{vm} | spin: ");
    console
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with(&prefix) && l.contains("% ("))
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn two_cpu_bound_guests_share_one_core() {
    let out = run(
        "timeslice",
        &manifest("timeslice.toml"),
        &["--timeout", "600"],
    );
    out.assert_completed();
    assert_eq!(out.report["timeslice"], 1_000_000);
    for name in ["spin-a", "spin-b"] {
        let vm = out.vm(name);
        assert_exited(vm, 0);
        assert_eq!(vm["core"], 0, "{vm:#}");
        assert!(num(vm, "slices") >= 2, "{name} was scheduled once: {vm:#}");
        assert!(
            num(&vm["exits"], "preemption_timer") >= 1,
            "{name} was never preempted: {vm:#}"
        );
    }
    assert_eq!(
        out.vm("spin-a")["metrics"]["checksum"],
        out.vm("spin-b")["metrics"]["checksum"]
    );
    let console = out.console();
    let a = progress_lines(&console, "spin-a");
    let b = progress_lines(&console, "spin-b");
    assert_eq!((a.len(), b.len()), (4, 4), "progress lines:\n{console}");
    // Neither finished before the other made progress.
    assert!(
        a[0] < b[3] && b[0] < a[3],
        "progress did not interleave (spin-a at lines {a:?}, spin-b at {b:?})"
    );
    // A guest that exits all the time never lets the preemption timer fire,
    // yet it is still made to share the core (its slices end by the clock).
    let busy = out.vm("spin-exits");
    assert_eq!(busy["status"], "exited", "{busy:#}");
    assert!(
        num(busy, "slices") >= 2,
        "spin-exits kept the core: {busy:#}"
    );
    assert!(num(&busy["exits"], "vmcall") >= 20_000, "{busy:#}");
    out.assert_succeeded();
}
