//! `blkcheck`: a Corral guest with a virtio-blk disk (guest-lib's `blk` feature); its arguments pick the test: `check` (every 10th sector and the last written and read back, a request past the end refused, the disk's id), `persist` (sector 0 must hold the test's pattern; sectors 1 and 3 get new bytes for the host file).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use guest_lib::blk::{Disk, SECTOR_SIZE};
use guest_lib::println;

guest_lib::entry!(blkcheck);

/// Exit code when a check fails.
const EXIT_FAILED: i32 = 1;

/// What sector `s` holds once `check` wrote it.
fn pattern(s: u64, i: usize) -> u8 {
    (s as u8).wrapping_mul(37).wrapping_add(i as u8)
}

fn failed(what: &str) -> i32 {
    println!("blkcheck: FAILURE: {what}");
    EXIT_FAILED
}

fn blkcheck(info: &guest_lib::BootInfo) -> i32 {
    let mut disk = match Disk::open(info, 0) {
        Ok(d) => d,
        Err(e) => {
            println!("blkcheck: FAILURE: cannot open disk 0: {e}");
            return EXIT_FAILED;
        }
    };
    let sectors = disk.sectors();
    let mut buf = [0u8; SECTOR_SIZE];
    let mut back = [0u8; SECTOR_SIZE];
    match info.args {
        "check" => {
            let mut s = 0;
            while s < sectors {
                for (i, x) in buf.iter_mut().enumerate() {
                    *x = pattern(s, i);
                }
                if disk.write(s, &buf).is_err() || disk.read(s, &mut back).is_err() || buf != back {
                    return failed("a sector did not read back as written");
                }
                s = if s + 10 < sectors || s == sectors - 1 {
                    s + 10
                } else {
                    sectors - 1
                };
            }
            if disk.read(sectors, &mut back).is_ok() {
                return failed("a read past the end went through");
            }
            match disk.id() {
                Ok((id, n)) if &id[..n] == b"vdisk" => {}
                _ => return failed("the disk's id is not `vdisk`"),
            }
            println!("blkcheck: {sectors} sectors; SUCCESS");
            0
        }
        "persist" => {
            if disk.read(0, &mut back).is_err()
                || back.iter().enumerate().any(|(i, &x)| x != (i % 251) as u8)
            {
                return failed("sector 0 does not hold the test's pattern");
            }
            for s in [1u64, 3] {
                buf.fill(0xd0 + s as u8);
                buf[..12].copy_from_slice(b"corral-vblk!");
                if disk.write(s, &buf).is_err() {
                    return failed("a write failed");
                }
            }
            println!("blkcheck: SUCCESS");
            0
        }
        _ => failed("unknown test (say `check` or `persist`)"),
    }
}
