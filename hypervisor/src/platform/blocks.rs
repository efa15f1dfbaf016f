//! The run's block devices on the machine: each disk image (a boot module `block=NAME`) wrapped as a [`Disk`] at boot, found by its VM at creation, and reported at the end, with the bytes of the blocks written when it persists.

use super::halt::fatal_fmt;
use super::memory;
use super::serial;
use crate::block::{Disk, map_words};
use crate::devices::virtio::blk::BlkDevice;
use crate::devices::virtio::mmio::Transport;
use crate::hvt::call::{HvtDisks, SharedDisk};
use crate::mem::access::{Gpa, Hpa};
use crate::mem::raw::{RamPiece, RawRam};
use crate::multiboot::Region;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Once;
use vmm_abi::manifest::BlockSpec;
use vmm_abi::report::{Hex, Record};

/// Bytes of image per `block-data` record (twice as many hex digits).
const DATA_PIECE: usize = 256;

/// One block device: what the manifest says, its disk, and (for a Corral
/// guest) its virtio-blk registers, set up anew at each run of its VM.
pub struct Block {
    /// Its manifest record.
    pub spec: BlockSpec<'static>,
    /// Its disk.
    pub disk: SharedDisk,
    /// Its virtio-blk device (a Corral guest's; its VM's core only).
    pub dev: spin::Mutex<Option<Transport<BlkDevice>>>,
    /// Its Solo5 handle in its (hvt) VM's manifest, once attached
    /// ([`NO_HANDLE`] before).
    pub handle: AtomicU64,
}

/// The handle of a block device not attached to an hvt guest.
pub const NO_HANDLE: u64 = u64::MAX;

/// The run's block devices as hvt hypercalls reach them.
pub struct MachineDisks;

/// The one [`MachineDisks`].
pub static MACHINE_DISKS: MachineDisks = MachineDisks;

impl HvtDisks for MachineDisks {
    fn disk(&self, vm: u32, handle: u64) -> Option<&SharedDisk> {
        all()
            .iter()
            .find(|b| b.spec.vm == vm && b.handle.load(Ordering::Acquire) == handle)
            .map(|b| &b.disk)
    }

    fn any(&self, vm: u32) -> bool {
        has_blocks(vm)
    }
}

static BLOCKS: Once<&'static [Block]> = Once::new();

/// Sets up every block device of `specs` over its boot module (`module_of`
/// finds a block's module region); a missing or wrongly sized image stops
/// the hypervisor with a record naming the block.
pub fn set_up(
    specs: impl ExactSizeIterator<Item = BlockSpec<'static>> + Clone,
    module_of: impl Fn(&str) -> Option<Region>,
) {
    let mut all = specs.clone();
    let blocks = memory::leak_slice(
        specs.len(),
        |i| {
            let spec = all.next().ok_or(i)?;
            let Some(region) = module_of(spec.name) else {
                fatal_fmt(format_args!(
                    "manifest block {i} ('{}'): no boot module holds its image (`block={}`)",
                    spec.name, spec.name
                ));
            };
            // SAFETY: the module's frames were reserved from the allocator
            // at boot and are never given to a VM or read as an image; this
            // view is the only access to them for the rest of the run (the
            // disk is reached through its lock only).
            let store = unsafe {
                RawRam::new(core::iter::once(RamPiece {
                    gpa: Gpa(0),
                    len: region.end - region.start,
                    hpa: Hpa(region.start),
                    writable: true,
                }))
            };
            let words = map_words(spec.capacity, spec.block_size) as usize;
            let map = memory::leak_slice(words, |_| Ok(0u64), ()).unwrap_or_else(|()| {
                fatal_fmt(format_args!(
                    "manifest block {i} ('{}'): no memory for its written-blocks map",
                    spec.name
                ))
            });
            let disk = Disk::new(store, spec.capacity, spec.block_size, map).unwrap_or_else(|e| {
                fatal_fmt(format_args!("manifest block {i} ('{}'): {e}", spec.name))
            });
            Ok(Block {
                spec,
                disk: spin::Mutex::new(disk),
                dev: spin::Mutex::new(None),
                handle: AtomicU64::new(NO_HANDLE),
            })
        },
        usize::MAX,
    )
    .unwrap_or_else(|i| fatal_fmt(format_args!("no memory for block device {i}")));
    BLOCKS.call_once(|| &*blocks);
}

/// Every block device.
fn all() -> &'static [Block] {
    BLOCKS.get().copied().unwrap_or(&[])
}

/// The block devices of manifest VM `vm`.
pub fn of_vm_blocks(vm: u32) -> impl Iterator<Item = &'static Block> {
    all().iter().filter(move |b| b.spec.vm == vm)
}

/// Whether manifest VM `vm` has block devices (such a VM is not cloned at
/// runtime: a disk serves one VM).
pub fn has_blocks(vm: u32) -> bool {
    all().iter().any(|b| b.spec.vm == vm)
}

/// Prints each block device's counters, and for a persistent one the bytes
/// of every block written (boot core, after every VM ended).
pub fn report() {
    for (i, b) in all().iter().enumerate() {
        let disk = b.disk.lock();
        serial::record(&Record::Block {
            block: i as u32,
            name: b.spec.name,
            vm: b.spec.vm,
            device: b.spec.device,
            capacity: b.spec.capacity,
            block_size: b.spec.block_size,
            flow: disk.flow,
            dirty: disk.dirty(),
        });
        if !b.spec.persist {
            continue;
        }
        for (offset, len) in disk.written_runs() {
            disk.read_out(offset, len, DATA_PIECE, |at, bytes| {
                serial::record(&Record::BlockData {
                    block: i as u32,
                    offset: at,
                    len: bytes.len() as u32,
                    data: Hex::Bytes(bytes),
                });
            });
        }
    }
}
