//! 64 hello clones across 4 cores: 16 pinned to core 0, 16 to cores 1-2 and
//! 32 placed by the hypervisor. All exit 0 where they were allowed to run,
//! each on a core whose APIC ID the report gives consistently, and the
//! memory totals add up.

use integration::{Outcome, assert_exited, manifest, num, run};
use serde_json::Value;
use std::collections::BTreeMap;

const CPUS: u64 = 4;
const VM_MEMORY: u64 = 256 << 10;

fn core(vm: &Value) -> u64 {
    num(vm, "core")
}

/// Checks that every VM's APIC ID is the one of its core: one APIC ID per
/// core, different cores different IDs.
fn assert_apic_ids_match_cores(out: &Outcome) {
    let mut apic_of: BTreeMap<u64, u64> = BTreeMap::new();
    for vm in out.vms() {
        let apic = num(vm, "apic_id");
        let first = *apic_of.entry(core(vm)).or_insert(apic);
        assert_eq!(
            apic,
            first,
            "{}: APIC ID {apic} on core {}, other VMs there had {first}",
            vm["name"],
            core(vm)
        );
    }
    let mut ids: Vec<u64> = apic_of.values().copied().collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        apic_of.len(),
        "cores share an APIC ID: {apic_of:?}"
    );
}

fn assert_totals_add_up(out: &Outcome) {
    let r = &out.report;
    let totals = &r["totals"];
    let vms = out.vms();
    assert_eq!(num(totals, "vms"), vms.len() as u64);
    let sum = |key: &str| vms.iter().map(|v| num(&v["memory"], key)).sum::<u64>();
    assert_eq!(num(totals, "private"), sum("private"));
    assert_eq!(num(totals, "overhead"), sum("overhead"));
    let shared_max = vms.iter().map(|v| num(&v["memory"], "shared")).max();
    assert_eq!(
        Some(num(totals, "shared")),
        shared_max,
        "one image: shared once"
    );
    for vm in vms {
        let m = &vm["memory"];
        assert!(num(m, "shared") > 0, "clones share read-only pages: {vm:#}");
        assert!(num(m, "private") > 0 && num(m, "overhead") > 0, "{vm:#}");
        assert!(
            num(m, "private") + num(m, "shared") <= VM_MEMORY,
            "more guest memory than the manifest gives: {vm:#}"
        );
    }
    let free = num(r, "free_memory");
    let per_vm = (num(totals, "private") + num(totals, "overhead")) / vms.len() as u64;
    let fleet = num(&r["largest_fleet"], "hello");
    assert!(
        fleet >= vms.len() as u64,
        "the fleet that ran must fit: {fleet}"
    );
    let expected = (free - num(totals, "shared")) / per_vm;
    assert!(
        fleet.abs_diff(expected) <= 1,
        "largest fleet {fleet}, free {free} / {per_vm} per VM gives {expected}"
    );
}

#[test]
fn sixty_four_clones_on_four_cores() {
    let out = run("fleet", &manifest("fleet.toml"), &["--timeout", "900"]);
    out.assert_completed();
    assert_eq!(out.report["cores"], CPUS);
    assert_eq!(out.vms().len(), 64);
    for vm in out.vms() {
        assert_exited(vm, 0);
        assert!(core(vm) < CPUS, "{vm:#}");
    }
    let on_core0 = out.vms_named("core0-");
    let on_core12 = out.vms_named("core12-");
    let anywhere = out.vms_named("any-");
    assert_eq!(
        (on_core0.len(), on_core12.len(), anywhere.len()),
        (16, 16, 32)
    );
    for vm in on_core0 {
        assert_eq!(core(vm), 0, "pinned to [0]: {vm:#}");
    }
    for vm in on_core12 {
        assert!([1, 2].contains(&core(vm)), "pinned to [1, 2]: {vm:#}");
    }
    // Nothing is pinned to core 3, so it is the least-loaded core when the
    // unpinned VMs are placed: some of them must land there.
    assert!(
        anywhere.iter().any(|vm| core(vm) == 3),
        "no unpinned VM went to the idle core 3"
    );
    assert_apic_ids_match_cores(&out);
    assert_totals_add_up(&out);
    out.assert_succeeded();
}
