//! The `[[block]]` tables (disk images from host files, their block size, whether writes go back to the file) and the `devices` bindings that attach them to VMs: every mistake named with its file, block or VM and field.

use super::VmConfig;
use super::devices::{BLOCK_DEVICE_PREFIX, BlockBinding, binding_error};
use super::raw::RawBlock;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use vmm_abi::manifest::{BlockSpec, MIN_BLOCK_SIZE};

/// Most disks one VM may have (the hypervisor's limit for an hvt guest; a
/// Corral guest's also share its 8 device slots with its net ports and
/// console).
pub const MAX_VM_DISKS: usize = 8;

/// One block device, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockConfig {
    /// Its name (its boot module is `block=NAME`).
    pub name: String,
    /// The host file holding the disk image; `None` for a blank disk
    /// (zeros, `size` bytes, gone after the run).
    pub file: Option<PathBuf>,
    /// Bytes per block.
    pub block_size: u32,
    /// Bytes of the image (the file's size when the manifest was read).
    pub capacity: u64,
    /// Whether written blocks go back to the file after the run.
    pub persist: bool,
    /// The VM it is attached to (its index).
    pub vm: u32,
    /// Its device name in that VM's Solo5 manifest.
    pub device: String,
}

impl BlockConfig {
    /// The vmm-abi working type.
    pub fn spec(&self) -> BlockSpec<'_> {
        BlockSpec {
            name: &self.name,
            vm: self.vm,
            device: &self.device,
            block_size: self.block_size,
            capacity: self.capacity,
            persist: self.persist,
        }
    }
}

/// Checks the `[[block]]` tables (files relative to `base`) and binds each
/// to the one VM whose `devices` name it (`bindings`, already checked).
pub(super) fn resolve(
    origin: &str,
    base: &Path,
    raw: &[RawBlock],
    vms: &[VmConfig],
    bindings: &[BlockBinding],
) -> Result<Vec<BlockConfig>> {
    let mut blocks: Vec<BlockConfig> = Vec::with_capacity(raw.len());
    for b in raw {
        let e = |field: &str, why: String| {
            Error::new(format!(
                "{origin}: block `{}`: field `{field}`: {why}",
                b.name
            ))
        };
        if blocks.iter().any(|o| o.name == b.name) {
            return Err(e(
                "name",
                "a block device with this name exists already".into(),
            ));
        }
        let persist = b.persist.unwrap_or(false);
        let (file, capacity) = match (&b.file, &b.size) {
            (Some(f), None) => {
                let file = base.join(f);
                match std::fs::metadata(&file) {
                    Ok(m) if m.is_file() => (Some(file), m.len()),
                    Ok(_) => return Err(e("file", format!("`{}` is not a file", file.display()))),
                    Err(why) => {
                        return Err(e(
                            "file",
                            format!("cannot read `{}`: {why}", file.display()),
                        ));
                    }
                }
            }
            (None, Some(size)) if persist => {
                return Err(e(
                    "persist",
                    format!(
                        "a blank disk ({} bytes, no `file`) has nowhere to persist to",
                        size.0
                    ),
                ));
            }
            (None, Some(size)) => (None, size.0),
            (Some(_), Some(_)) => {
                return Err(e(
                    "size",
                    "give `file` (a disk image) or `size` (a blank disk), not both".into(),
                ));
            }
            (None, None) => {
                return Err(e(
                    "file",
                    "give `file` (a disk image) or `size` (a blank disk)".into(),
                ));
            }
        };
        blocks.push(BlockConfig {
            name: b.name.clone(),
            file,
            block_size: b.block_size.unwrap_or(MIN_BLOCK_SIZE),
            capacity,
            persist,
            vm: u32::MAX,
            device: String::new(),
        });
    }
    for binding in bindings {
        let BlockBinding {
            vm,
            entry,
            device,
            block,
        } = binding;
        let target = format!("{BLOCK_DEVICE_PREFIX}{block}");
        let e = |why: &str| binding_error(origin, entry, device, &target, why);
        let Some(b) = blocks.iter_mut().find(|b| &b.name == block) else {
            return Err(e(&format!("no [[block]] named `{block}`")));
        };
        if let Some(other) = vms.get(b.vm as usize) {
            return Err(e(&format!(
                "block `{block}` is attached to vm `{}` already; a disk serves one VM",
                other.name
            )));
        }
        b.vm = *vm;
        b.device.clone_from(device);
    }
    // Two disks over one file would each write back their own copy.
    for (i, b) in blocks.iter().enumerate() {
        let Some(real) = b.file.as_ref().and_then(|f| std::fs::canonicalize(f).ok()) else {
            continue;
        };
        let same = blocks[..i].iter().find(|o| {
            (o.persist || b.persist)
                && o.file.as_ref().and_then(|f| std::fs::canonicalize(f).ok()) == Some(real.clone())
        });
        if let Some(o) = same {
            return Err(Error::new(format!(
                "{origin}: block `{}`: field `file`: block `{}` has the same file, and one of them persists: each would write back its own copy",
                b.name, o.name
            )));
        }
    }
    for (i, vm) in vms.iter().enumerate() {
        let disks = blocks.iter().filter(|b| b.vm == i as u32).count();
        if disks > MAX_VM_DISKS {
            return Err(Error::new(format!(
                "{origin}: vm `{}`: field `devices`: {disks} disks, at most {MAX_VM_DISKS} per VM",
                vm.entry
            )));
        }
    }
    for (i, b) in blocks.iter().enumerate() {
        if b.vm == u32::MAX {
            return Err(Error::new(format!(
                "{origin}: block `{}`: no VM binds it (add `devices = {{ NAME = \"{BLOCK_DEVICE_PREFIX}{}\" }}` to a [[vm]])",
                b.name, b.name
            )));
        }
        b.spec()
            .validate(i as u32, vms.len() as u32)
            .map_err(|err| Error::new(format!("{origin}: block `{}`: {err}", b.name)))?;
    }
    Ok(blocks)
}
