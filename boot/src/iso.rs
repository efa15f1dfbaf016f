//! Packs a run's bootable ISO: a unique staging directory holding the
//! hypervisor, the binary manifest and each image as Multiboot2 modules, a
//! headless grub.cfg, and `grub-mkrescue` to make the ISO from them.

use crate::cargo_build::Artifacts;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use vmm_abi::manifest::modules::{BLOCK_TOKEN_PREFIX, IMAGE_TOKEN_PREFIX, MANIFEST_TOKEN};

/// Hypervisor path inside the ISO.
pub const HYPERVISOR_PATH: &str = "/boot/hypervisor.elf";
/// Binary manifest path inside the ISO.
pub const MANIFEST_PATH: &str = "/boot/manifest.bin";

static NEXT_RUN: AtomicU32 = AtomicU32::new(0);

/// Path of an image inside the ISO.
pub fn image_path(image: &str) -> String {
    format!("/images/{image}.elf")
}

/// Where a block device's disk image goes on the ISO.
pub fn disk_path(block: &str) -> String {
    format!("/disks/{block}.img")
}

/// The grub.cfg that boots the hypervisor with the manifest, `images` and
/// the block devices' disk images (`disks`, by name) as modules, talking on
/// the serial port.
pub fn grub_cfg(images: &[&str], disks: &[&str]) -> String {
    let mut cfg = String::from(
        "set timeout=0\n\
         serial --unit=0 --speed=115200\n\
         terminal_input serial console\n\
         terminal_output serial console\n\
         menuentry \"corral\" {\n",
    );
    cfg.push_str(&format!("  multiboot2 {HYPERVISOR_PATH}\n"));
    cfg.push_str(&format!("  module2 {MANIFEST_PATH} {MANIFEST_TOKEN}\n"));
    for image in images {
        cfg.push_str(&format!(
            "  module2 {} {IMAGE_TOKEN_PREFIX}{image}\n",
            image_path(image)
        ));
    }
    for disk in disks {
        cfg.push_str(&format!(
            "  module2 {} {BLOCK_TOKEN_PREFIX}{disk}\n",
            disk_path(disk)
        ));
    }
    cfg.push_str("  boot\n}\n");
    cfg
}

/// A new, empty staging directory `<runs>/<stem>-<pid>-<n>`.
pub fn staging_dir(runs: &Path, stem: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(runs)
        .map_err(|e| Error::new(format!("cannot create {}: {e}", runs.display())))?;
    loop {
        let n = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
        let dir = runs.join(format!("{stem}-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Error::new(format!("cannot create {}: {e}", dir.display())));
            }
        }
    }
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::new(format!("cannot create {}: {e}", parent.display())))?;
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| Error::new(format!("cannot copy {}: {e}", from.display())))
}

fn inside(root: &Path, iso_path: &str) -> PathBuf {
    root.join(iso_path.trim_start_matches('/'))
}

/// Fills `<dir>/iso/` and makes `<dir>/corral.iso`; returns the ISO path.
pub fn pack(
    dir: &Path,
    artifacts: &Artifacts,
    manifest: &[u8],
    images: &[&str],
    file_of: impl Fn(&str) -> Option<PathBuf>,
    disks: &[(&str, Option<&Path>, u64)],
) -> Result<PathBuf> {
    let root = dir.join("iso");
    copy(&artifacts.hypervisor(), &inside(&root, HYPERVISOR_PATH))?;
    for image in images {
        // An image given by path, or one the build made.
        let elf = file_of(image).unwrap_or_else(|| artifacts.image(image));
        if !elf.is_file() {
            return Err(Error::new(format!(
                "image `{image}` was not built: {} is missing",
                elf.display()
            )));
        }
        copy(&elf, &inside(&root, &image_path(image)))?;
    }
    let write = |iso_path: &str, bytes: &[u8]| {
        let path = inside(&root, iso_path);
        std::fs::create_dir_all(path.parent().unwrap_or(&root))
            .and_then(|()| std::fs::write(&path, bytes))
            .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))
    };
    for &(name, file, bytes) in disks {
        let to = inside(&root, &disk_path(name));
        match file {
            Some(file) => copy(file, &to)?,
            // A blank disk: zeros.
            None => std::fs::create_dir_all(to.parent().unwrap_or(&root))
                .and_then(|()| std::fs::File::create(&to))
                .and_then(|f| f.set_len(bytes))
                .map_err(|e| Error::new(format!("cannot write {}: {e}", to.display())))?,
        }
    }
    let names: Vec<&str> = disks.iter().map(|d| d.0).collect();
    write(MANIFEST_PATH, manifest)?;
    write("/boot/grub/grub.cfg", grub_cfg(images, &names).as_bytes())?;
    let iso = dir.join("corral.iso");
    let output = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(&iso)
        .arg(&root)
        .output()
        .map_err(|e| Error::new(format!("cannot run grub-mkrescue: {e}")))?;
    if !output.status.success() || !iso.is_file() {
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        return Err(
            Error::new(format!("grub-mkrescue failed ({})", output.status)).with_detail(text),
        );
    }
    Ok(iso)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_cfg_boots_the_hypervisor_with_modules() {
        assert_eq!(
            grub_cfg(&["hello", "escape"], &["disk0"]),
            "set timeout=0\n\
             serial --unit=0 --speed=115200\n\
             terminal_input serial console\n\
             terminal_output serial console\n\
             menuentry \"corral\" {\n  \
               multiboot2 /boot/hypervisor.elf\n  \
               module2 /boot/manifest.bin corral-manifest\n  \
               module2 /images/hello.elf image=hello\n  \
               module2 /images/escape.elf image=escape\n  \
               module2 /disks/disk0.img block=disk0\n  \
               boot\n\
             }\n"
        );
    }

    #[test]
    fn module_tokens_classify_as_vmm_abi_expects() {
        use vmm_abi::manifest::modules::{ModuleKind, classify};
        let cfg = grub_cfg(&["hello"], &["disk0"]);
        let modules: Vec<&str> = cfg
            .lines()
            .filter_map(|l| l.trim().strip_prefix("module2 "))
            .collect();
        assert_eq!(classify(modules[0]), ModuleKind::Manifest);
        assert_eq!(classify(modules[1]), ModuleKind::Image("hello"));
        assert_eq!(classify(modules[2]), ModuleKind::Block("disk0"));
    }

    #[test]
    fn staging_dirs_are_unique() {
        let runs = std::env::temp_dir().join(format!("corral-stage-{}", std::process::id()));
        let a = staging_dir(&runs, "m").unwrap();
        let b = staging_dir(&runs, "m").unwrap();
        assert_ne!(a, b);
        assert!(a.is_dir() && b.is_dir());
        std::fs::remove_dir_all(&runs).unwrap();
    }
}
