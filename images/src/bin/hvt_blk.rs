//! A Solo5 hvt unikernel with one block device, `storage`, written with guest-lib's hvt runtime; its command line picks the test: `blk` (every 10th block and the last written and read back, then the requests the ABI refuses: past the end, not whole blocks), `persist` (block 0 must hold the test's pattern; blocks 1 and 3 get new bytes for the host file), `badbuf` (a read into memory the guest does not have: stopped by name).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

guest_lib::hvt_entry!(hvt_main, block = "storage");

#[cfg(target_os = "none")]
use guest_lib::hvt::{block_call, block_device, block_read, block_write, cmdline, puts};
#[cfg(target_os = "none")]
use vmm_abi::hvt::{R_EINVAL, R_OK};

/// The largest block size this test handles.
#[cfg(target_os = "none")]
const MAX_BLOCK: usize = 4096;

/// What block `b` holds once `blk` wrote it.
#[cfg(target_os = "none")]
fn pattern(b: u64, i: usize) -> u8 {
    (b as u8).wrapping_mul(31).wrapping_add(i as u8)
}

#[cfg(target_os = "none")]
fn fail(what: &[u8]) -> i32 {
    puts(b"blk: FAILURE: ");
    puts(what);
    puts(b"\n");
    1
}

#[cfg(target_os = "none")]
fn hvt_main(info: &vmm_abi::hvt::BootInfo) -> i32 {
    let Some(dev) = block_device(info, "storage") else {
        return fail(b"no attached block device `storage`");
    };
    let bs = dev.block_size as usize;
    if bs > MAX_BLOCK || dev.capacity < 4 * dev.block_size {
        return fail(b"unexpected block size or capacity");
    }
    let mut buf = [0u8; MAX_BLOCK];
    let mut back = [0u8; MAX_BLOCK];
    let blocks = dev.capacity / dev.block_size;
    match cmdline(info) {
        "blk" => {
            let mut b = 0;
            while b < blocks {
                for (i, x) in buf[..bs].iter_mut().enumerate() {
                    *x = pattern(b, i);
                }
                let at = b * dev.block_size;
                if block_write(dev.handle, at, &buf[..bs]) != R_OK
                    || block_read(dev.handle, at, &mut back[..bs]) != R_OK
                    || buf[..bs] != back[..bs]
                {
                    return fail(b"a block did not read back as written");
                }
                b = if b + 10 < blocks || b == blocks - 1 {
                    b + 10
                } else {
                    blocks - 1
                };
            }
            let data = back.as_mut_ptr() as u64;
            let bsz = dev.block_size;
            // Refused: past the end, a byte too many or too few, unaligned.
            let bad = [
                (dev.capacity, bsz),
                (0, bsz + 1),
                (0, bsz - 1),
                (bsz - 1, bsz),
                (dev.capacity - bsz, 2 * bsz),
            ];
            for (offset, len) in bad {
                if block_call(false, dev.handle, offset, data, len) != R_EINVAL
                    || block_call(true, dev.handle, offset, data, len) != R_EINVAL
                {
                    return fail(b"a bad request was not refused");
                }
            }
            // Another handle is not a block device.
            if block_call(false, dev.handle + 1, 0, data, bsz) != R_EINVAL {
                return fail(b"a bad handle was not refused");
            }
            puts(b"SUCCESS\n");
            0
        }
        "persist" => {
            if block_read(dev.handle, 0, &mut back[..bs]) != R_OK
                || back[..bs]
                    .iter()
                    .enumerate()
                    .any(|(i, &x)| x != (i % 251) as u8)
            {
                return fail(b"block 0 does not hold the test's pattern");
            }
            for b in [1u64, 3] {
                buf[..bs].fill(0xc0 + b as u8);
                buf[..12].copy_from_slice(b"corral-block");
                if block_write(dev.handle, b * dev.block_size, &buf[..bs]) != R_OK {
                    return fail(b"a write failed");
                }
            }
            puts(b"SUCCESS\n");
            0
        }
        "badbuf" => {
            // 16 GiB: far beyond this guest's memory.
            block_call(false, dev.handle, 0, 0x4_0000_0000, dev.block_size);
            fail(b"a read into memory the guest does not have went through")
        }
        _ => fail(b"unknown test"),
    }
}

#[cfg(not(target_os = "none"))]
fn hvt_main(_: &vmm_abi::hvt::BootInfo) -> i32 {
    0
}
