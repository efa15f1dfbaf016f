//! Pinning on 4 cores: a spin guest pinned to each core and one left to the
//! hypervisor. Each guest asks the hypervisor for its core's APIC ID at its
//! start and end (`CoreId`); both must equal the APIC ID the report gives
//! for the VM, and a pinned VM's core is the one the manifest names.

use integration::{assert_exited, manifest, num, run};

#[test]
fn guests_run_on_the_cores_they_are_pinned_to() {
    let out = run("pinning", &manifest("pinning.toml"), &["--timeout", "900"]);
    out.assert_completed();
    assert_eq!(out.report["cores"], 4);
    let mut apic_ids = Vec::new();
    for (name, pinned) in [
        ("pin0", Some(0)),
        ("pin1", Some(1)),
        ("pin2", Some(2)),
        ("pin3", Some(3)),
        ("free", None),
    ] {
        let vm = out.vm(name);
        assert_exited(vm, 0);
        let core = num(vm, "core");
        match pinned {
            Some(c) => {
                assert_eq!(core, c, "{name} runs on core {core}, pinned to {c}");
                assert_eq!(vm["cores"], serde_json::json!([c]));
            }
            None => assert!(core < 4, "{vm:#}"),
        }
        let apic = num(vm, "apic_id");
        let metrics = &vm["metrics"];
        assert_eq!(num(metrics, "apic_start"), apic, "{name}: {vm:#}");
        assert_eq!(num(metrics, "apic_end"), apic, "{name}: {vm:#}");
        if pinned.is_some() {
            apic_ids.push(apic);
        }
    }
    apic_ids.sort_unstable();
    apic_ids.dedup();
    assert_eq!(apic_ids.len(), 4, "four cores, four APIC IDs");
    let checksums: Vec<u64> = out
        .vms()
        .iter()
        .map(|vm| num(&vm["metrics"], "checksum"))
        .collect();
    assert!(
        checksums.windows(2).all(|w| w[0] == w[1]),
        "the same work gives the same checksum on every core: {checksums:?}"
    );
    out.assert_succeeded();
}
