//! Tests of `[[block]]` tables and the `devices` that bind them: files read relative to the manifest, blank disks, every mistake named with its block or VM and field.

use super::*;

fn images() -> Vec<String> {
    ["hello", "hvt_blk"].map(String::from).to_vec()
}

/// Writes `text` (and a disk image `disk.img` of `disk` bytes) into a
/// fresh directory; the manifest's path.
fn dir_with(test: &str, text: &str, disk: usize) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("corral-block-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("disk.img"), vec![0u8; disk]).unwrap();
    let m = dir.join("m.toml");
    std::fs::write(&m, text).unwrap();
    m
}

fn load_ok(test: &str, text: &str, disk: usize) -> Manifest {
    load(&dir_with(test, text, disk), &images()).unwrap()
}

fn load_err(test: &str, text: &str, disk: usize) -> String {
    let m = dir_with(test, text, disk);
    load(&m, &images())
        .unwrap_err()
        .to_string()
        .replace(&m.display().to_string(), "m.toml")
}

const VM: &str = "[[vm]]\nname = \"app\"\nimage = \"hvt_blk\"\nmemory = \"4M\"\n";

#[test]
fn a_disk_file_next_to_the_manifest_binds_to_its_vm() {
    let m = load_ok(
        "ok",
        &format!(
            "[[block]]\nname = \"disk0\"\nfile = \"disk.img\"\nblock_size = 4096\npersist = true\n\
             [[block]]\nname = \"tmp\"\nsize = \"64K\"\n\
             {VM}devices = {{ storage = \"block:disk0\", scratch = \"block:tmp\" }}\n"
        ),
        8192,
    );
    assert_eq!(m.blocks.len(), 2);
    let b = &m.blocks[0];
    assert_eq!(
        (
            b.name.as_str(),
            b.capacity,
            b.block_size,
            b.persist,
            b.vm,
            b.device.as_str()
        ),
        ("disk0", 8192, 4096, true, 0, "storage")
    );
    assert!(b.file.as_ref().unwrap().ends_with("disk.img"));
    let t = &m.blocks[1];
    assert_eq!(
        (t.file.is_none(), t.capacity, t.block_size),
        (true, 65536, 512)
    );
    // It encodes, and the encoding reads back as the same devices.
    let bytes = m.encode().unwrap();
    let parsed = vmm_abi::manifest::Manifest::parse(&bytes).unwrap();
    let specs: Vec<_> = parsed.blocks().collect();
    assert_eq!(specs, vec![b.spec(), t.spec()]);
    assert_eq!(m.disks().len(), 2);
}

#[test]
fn every_block_mistake_is_named() {
    let block = "[[block]]\nname = \"disk0\"\nfile = \"disk.img\"\n";
    let bind = "devices = { storage = \"block:disk0\" }\n";
    let cases: Vec<(String, usize, &str)> = vec![
        (
            format!("{VM}{bind}"),
            4096,
            "vm `app`: field `devices`: `storage = \"block:disk0\"`: no [[block]] named `disk0`",
        ),
        (
            format!("{block}{VM}"),
            4096,
            "block `disk0`: no VM binds it",
        ),
        (
            format!("{block}{VM}devices = {{ storage = \"disk:disk0\" }}\n"),
            4096,
            "vm `app`: field `devices`: `storage = \"disk:disk0\"`: say `block:NAME` for a [[block]], `net:N` for the VM's net port N or `nic:NAME` for a port linked to a [[nic]]",
        ),
        (
            format!("{block}{VM}devices = {{ \"sto-rage\" = \"block:disk0\" }}\n"),
            4096,
            "a Solo5 device name is 1 to 67 letters and digits",
        ),
        (
            format!("{block}{VM}{bind}[[vm]]\nname = \"b\"\nimage = \"hvt_blk\"\n{bind}"),
            4096,
            "vm `b`: field `devices`: `storage = \"block:disk0\"`: block `disk0` is attached to vm `app` already; a disk serves one VM",
        ),
        (
            format!("{VM}count = 2\n{bind}{block}"),
            4096,
            "vm `app`: field `devices`: not allowed with `count`: a named device belongs to one VM",
        ),
        (
            format!("[[block]]\nname = \"disk0\"\nfile = \"nope.img\"\n{VM}{bind}"),
            4096,
            "block `disk0`: field `file`: cannot read",
        ),
        (
            format!("[[block]]\nname = \"disk0\"\n{VM}{bind}"),
            4096,
            "block `disk0`: field `file`: give `file` (a disk image) or `size` (a blank disk)",
        ),
        (
            format!("[[block]]\nname = \"disk0\"\nsize = \"8K\"\npersist = true\n{VM}{bind}"),
            4096,
            "block `disk0`: field `persist`: a blank disk (8192 bytes, no `file`) has nowhere to persist to",
        ),
        (
            format!("{block}block_size = 1000\n{VM}{bind}"),
            4096,
            "block `disk0`: manifest block 0: field `block_size`: 1000 is not a power of two from 512 to 32768",
        ),
        (
            format!("{block}{VM}{bind}"),
            1000,
            "block `disk0`: manifest block 0: field `capacity`: 1000 is not a multiple of 512",
        ),
        (
            format!("{block}{VM}{bind}"),
            0,
            "block `disk0`: manifest block 0: field `capacity`: 0 is outside 512..=1073741824",
        ),
        (
            format!("{block}{block}{VM}{bind}"),
            4096,
            "block `disk0`: field `name`: a block device with this name exists already",
        ),
        (
            format!(
                "{block}persist = true\n[[block]]\nname = \"again\"\nfile = \"./disk.img\"\n{VM}devices = {{ storage = \"block:disk0\", other = \"block:again\" }}\n"
            ),
            4096,
            "block `again`: field `file`: block `disk0` has the same file, and one of them persists",
        ),
        (
            format!(
                "{}{VM}devices = {{ {} }}\n",
                (0..9)
                    .map(|i| format!("[[block]]\nname = \"d{i}\"\nsize = \"4K\"\n"))
                    .collect::<String>(),
                (0..9)
                    .map(|i| format!("s{i} = \"block:d{i}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            4096,
            "vm `app`: field `devices`: 9 disks, at most 8 per VM",
        ),
    ];
    for (i, (text, disk, want)) in cases.iter().enumerate() {
        let e = load_err(&format!("bad{i}"), text, *disk);
        assert!(e.contains(want), "case {i}: {e}\nwanted: {want}");
    }
}
