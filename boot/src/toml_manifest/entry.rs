//! One `[[vm]]` entry turned into the VMs it stands for: the core list
//! becomes a bitmask, `count = N` becomes N clones `<name>-0` ...
//! `<name>-<N-1>`, the restart policy gets its default limit, and each clone
//! gets its expectation (`expect`, or its own from `expect_clone`). Every
//! clone gets the entry's devices (`net`, `console`).

use super::VmConfig;
use super::raw::{RawImage, RawRestart, RawVm};
use crate::error::{Error, Result};
use crate::expect::Expectation;
use std::collections::BTreeMap;
use std::path::Path;
use vmm_abi::corral::bootinfo::NAME_MAX;
use vmm_abi::manifest::{MAX_CORES, MAX_VMS, Restart};

/// Guest memory when an entry does not say, in bytes.
pub const DEFAULT_VM_MEMORY: u64 = 256 << 10;
/// Restart limit when `restart = "on-failure"` does not give one.
pub const DEFAULT_RESTART_LIMIT: u32 = 3;

/// The bitmask for a `cores` list: bit N set for core N.
pub fn cores_mask(cores: &[u32]) -> std::result::Result<u64, String> {
    if cores.is_empty() {
        return Err(
            "the list is empty; leave `cores` out to let the hypervisor choose a core".to_string(),
        );
    }
    let mut mask = 0u64;
    for &core in cores {
        if core >= MAX_CORES {
            return Err(format!(
                "core {core} is outside 0..={} (a manifest can name {MAX_CORES} cores)",
                MAX_CORES - 1
            ));
        }
        let bit = 1u64 << core;
        if mask & bit != 0 {
            return Err(format!("core {core} is listed twice"));
        }
        mask |= bit;
    }
    Ok(mask)
}

/// The cores of a bitmask, lowest first.
pub fn mask_cores(mask: u64) -> Vec<u32> {
    (0..u64::BITS).filter(|c| mask & (1 << c) != 0).collect()
}

/// The name of clone `index` of entry `name`.
pub fn clone_name(name: &str, index: u32) -> String {
    format!("{name}-{index}")
}

/// Clone index → expectation, from an `expect_clone` table of an entry with
/// `count` clones.
fn clone_expectations(
    table: &BTreeMap<String, String>,
    count: u32,
) -> std::result::Result<BTreeMap<u32, Expectation>, String> {
    let mut out = BTreeMap::new();
    for (key, text) in table {
        let index = key
            .parse::<u32>()
            .ok()
            .filter(|i| *i < count && key == &i.to_string())
            .ok_or_else(|| {
                format!(
                    "`{key}` is not a clone index of this entry (0..={})",
                    count - 1
                )
            })?;
        let expect = Expectation::parse(text).map_err(|e| format!("clone {index}: {e}"))?;
        out.insert(index, expect);
    }
    Ok(out)
}

/// The VMs of one entry, `vm_count_before` VMs after the manifest's start.
/// The module name of an image from a file: its file name's stem, kept to
/// the characters of a name (others become `_`), marked as a file's so it
/// never stands for an image of the `images` crate.
pub fn file_image_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let kept: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(NAME_MAX - FILE_IMAGE_PREFIX.len())
        .collect();
    format!("{FILE_IMAGE_PREFIX}{kept}")
}

/// The capability that lets a VM drive the control channel by hypercall.
pub const CAP_CONTROL: &str = "control";

/// What a file's image name starts with.
pub const FILE_IMAGE_PREFIX: &str = "file-";

pub(super) fn expand(origin: &str, raw: RawVm, vm_count_before: usize) -> Result<Vec<VmConfig>> {
    let entry = raw.name;
    let field_err = |field: &str, e: String| {
        Error::new(format!("{origin}: vm `{entry}`: field `{field}`: {e}"))
    };
    let (image, image_file) = match raw.image {
        RawImage::Name(n) => (n, None),
        RawImage::File(f) => {
            // Relative to the manifest's directory.
            let base = Path::new(origin).parent().unwrap_or(Path::new("."));
            let path = base.join(&f.elf);
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => {}
                Ok(_) => {
                    return Err(field_err(
                        "image",
                        format!("`{}` is not a file", path.display()),
                    ));
                }
                Err(e) => {
                    return Err(field_err(
                        "image",
                        format!("cannot read `{}`: {e}", path.display()),
                    ));
                }
            }
            (file_image_name(&path), Some(path))
        }
    };
    let cores = match &raw.cores {
        None => 0,
        Some(list) => cores_mask(list).map_err(|e| field_err("cores", e))?,
    };
    let (restart, restart_limit) = match (raw.restart, raw.restart_limit) {
        (None | Some(RawRestart::Never), None) => (Restart::Never, 0),
        (None | Some(RawRestart::Never), Some(_)) => {
            return Err(field_err(
                "restart_limit",
                "only allowed with `restart = \"on-failure\"`".to_string(),
            ));
        }
        (Some(RawRestart::OnFailure), limit) => {
            (Restart::OnFailure, limit.unwrap_or(DEFAULT_RESTART_LIMIT))
        }
    };
    let expect = match &raw.expect {
        None => Expectation::default(),
        Some(text) => Expectation::parse(text).map_err(|e| field_err("expect", e))?,
    };
    let remaining = MAX_VMS as usize - vm_count_before.min(MAX_VMS as usize);
    let clones = match raw.count {
        None => None,
        Some(n) if n == 0 || n as usize > remaining => {
            return Err(field_err(
                "count",
                format!(
                    "{n} is outside 1..={remaining} (a manifest runs at most {MAX_VMS} VMs in all)"
                ),
            ));
        }
        Some(n) => Some(n),
    };
    let per_clone = match (&raw.expect_clone, clones) {
        (None, _) => BTreeMap::new(),
        (Some(_), None) => {
            return Err(field_err(
                "expect_clone",
                "only allowed with `count` (it sets the expectation of single clones)".to_string(),
            ));
        }
        (Some(table), Some(n)) => {
            clone_expectations(table, n).map_err(|e| field_err("expect_clone", e))?
        }
    };
    if let Some(n) = clones {
        let longest = clone_name(&entry, n - 1);
        if longest.len() > NAME_MAX {
            return Err(field_err(
                "name",
                format!(
                    "with count = {n} the clone names run up to `{longest}` ({} bytes), longer than {NAME_MAX}",
                    longest.len()
                ),
            ));
        }
    }
    let mut control = false;
    for cap in &raw.caps {
        match cap.as_str() {
            CAP_CONTROL => control = true,
            other => {
                return Err(field_err(
                    "caps",
                    format!("unknown capability `{other}` (known: `{CAP_CONTROL}`)"),
                ));
            }
        }
    }
    if control && clones.is_some() {
        return Err(field_err(
            "caps",
            format!(
                "`{CAP_CONTROL}` is not allowed with `count`: one VM holds the control channel"
            ),
        ));
    }
    let devices: Vec<(String, String)> = raw.devices.unwrap_or_default().into_iter().collect();
    if clones.is_some() && !devices.is_empty() {
        return Err(field_err(
            "devices",
            "not allowed with `count`: a named device belongs to one VM".to_string(),
        ));
    }
    let base = VmConfig {
        name: entry.clone(),
        entry: entry.clone(),
        clone: None,
        image,
        image_file,
        cores,
        memory: raw.memory.map_or(DEFAULT_VM_MEMORY, |m| m.0),
        args: raw.args,
        budget: raw.budget,
        restart,
        restart_limit,
        net_ports: raw.net,
        console: raw.console,
        control,
        devices,
        expect,
    };
    Ok(match clones {
        None => vec![base],
        Some(n) => (0..n)
            .map(|i| VmConfig {
                name: clone_name(&entry, i),
                clone: Some(i),
                expect: per_clone.get(&i).unwrap_or(&base.expect).clone(),
                ..base.clone()
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_lists_become_masks() {
        assert_eq!(cores_mask(&[0]), Ok(1));
        assert_eq!(cores_mask(&[1, 2]), Ok(0b110));
        assert_eq!(cores_mask(&[63]), Ok(1 << 63));
        assert!(cores_mask(&[]).unwrap_err().contains("empty"));
        assert!(cores_mask(&[64]).unwrap_err().contains("outside 0..=63"));
        assert!(cores_mask(&[1, 1]).unwrap_err().contains("twice"));
        assert_eq!(mask_cores(0b110), [1, 2]);
        assert_eq!(mask_cores(0), Vec::<u32>::new());
        assert_eq!(mask_cores(1 << 63), [63]);
    }

    #[test]
    fn clone_indices_must_be_plain_and_in_range() {
        let table = |k: &str| BTreeMap::from([(k.to_string(), "killed".to_string())]);
        assert!(clone_expectations(&table("1"), 4).is_ok());
        for bad in ["4", "-1", "01", "x", "", " 1"] {
            let e = clone_expectations(&table(bad), 4).unwrap_err();
            assert!(
                e.contains("not a clone index") && e.contains("0..=3"),
                "{bad}: {e}"
            );
        }
        let e = clone_expectations(&BTreeMap::from([("2".to_string(), "dead".to_string())]), 4)
            .unwrap_err();
        assert!(e.starts_with("clone 2: ") && e.contains("exit:N"), "{e}");
    }
}
