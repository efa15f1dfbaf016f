//! On a CPU without VMX the hypervisor refuses to run, says why, and the
//! tool fails the run.

use integration::{manifest, run};

/// A 64-bit Intel CPU model of Bochs 2.7 without VMX (a Pentium 4 with
/// EM64T; CPUID.1:ECX.VMX = 0, also no 1 GiB pages).
const NO_VMX_MODEL: &str = "p4_prescott_celeron_336";

#[test]
fn a_cpu_without_vmx_is_refused() {
    let out = run(
        "no-vmx",
        &manifest("hello.toml"),
        &["--cpu-model", NO_VMX_MODEL, "--timeout", "120"],
    );
    assert_ne!(out.code, 0);
    assert_eq!(out.report["completed"], false);
    let fatal = out.report["fatal"]
        .as_str()
        .unwrap_or_else(|| panic!("no fatal record ({}): {:#}", out.error_text(), out.report));
    assert!(fatal.contains("VMX"), "{fatal}");
    assert!(out.error_text().starts_with("hypervisor refused to run"));
}
