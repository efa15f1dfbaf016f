//! `escape`: tries to read and write the `u64` just beyond its own memory
//! (or at `addr=`), which the hypervisor's EPT must not map, so the first
//! access gets the guest stopped. Arguments: see `images::escape_plan`.
#![cfg_attr(target_os = "none", no_std, no_main)]

use guest_lib::println;
use images::escape_plan::{Plan, plan};

guest_lib::entry!(escape);

/// Exit code when both accesses went through: isolation is broken.
const EXIT_SURVIVED: i32 = 1;
/// Exit code for arguments `escape` cannot act on.
const EXIT_BAD_ARGS: i32 = 2;
/// The value written ("Corral!!" in ASCII), recognisable if it ever lands.
const MARKER: u64 = u64::from_le_bytes(*b"Corral!!");

fn escape(info: &guest_lib::BootInfo) -> i32 {
    let Plan { addr, write_first } = match plan(info.args, info.memory_size) {
        Ok(plan) => plan,
        Err(e) => {
            println!("escape: {e}");
            return EXIT_BAD_ARGS;
        }
    };
    let order = if write_first {
        "write then read"
    } else {
        "read then write"
    };
    println!(
        "escape: memory ends at {:#x}; will {order} the u64 at guest-physical {addr:#x}",
        info.memory_size
    );
    if write_first {
        write(addr);
        read(addr);
    } else {
        read(addr);
        write(addr);
    }
    println!("escape: both accesses to {addr:#x} went through; the hypervisor did not stop me");
    EXIT_SURVIVED
}

/// Reads the `u64` at `addr`, which `plan` put outside this guest's memory.
fn read(addr: u64) {
    println!("escape: reading {addr:#x}");
    let ptr = addr as *const u64;
    // SAFETY: `plan` checked that `addr` is non-null, aligned for a u64 and
    // at or beyond the end of this guest's memory, so no Rust object lives
    // there and nothing the program uses can be affected. Below 4 GiB the
    // guest page tables map it; the access is meant to leave the guest
    // through an EPT violation (above 4 GiB, a page fault and triple fault).
    let value = unsafe { ptr.read_volatile() };
    println!("escape: read {value:#x} from {addr:#x}");
}

/// Writes [`MARKER`] to the `u64` at `addr`, outside this guest's memory.
fn write(addr: u64) {
    println!("escape: writing {MARKER:#x} to {addr:#x}");
    let ptr = addr as *mut u64;
    // SAFETY: as in `read`: `addr` is non-null, aligned and outside this
    // guest's memory, so the write cannot alter any Rust object; it is meant
    // to be stopped by the hypervisor.
    unsafe { ptr.write_volatile(MARKER) };
    println!("escape: wrote {addr:#x}");
}
