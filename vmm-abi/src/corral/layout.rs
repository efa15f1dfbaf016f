//! Guest-physical memory layout every Corral guest sees. The one place these
//! addresses are defined: the hypervisor builds guests by it, guest-lib's
//! linker script and entry code rely on it.
//!
//! ```text
//! 0x0000_0000  page 0: not present in the guest's page tables (null guard)
//! 0x0000_1000  boot info (BootInfoRaw)
//! 0x0000_2000  guest page tables: PML4, PDPT, 4 page directories, and one
//!              page table for the first 2 MiB (so page 0 can be absent)
//! 0x0001_0000  the image's loadable segments (images link here)
//!    ...       heap (from the end of the image to the stack)
//! top - 64 KiB stack, growing down from the top of guest memory
//! 0x4000_0000  device window: virtio-mmio slot N at DEVICE_BASE_GPA +
//!              N * DEVICE_STRIDE (only the slots the boot info lists exist;
//!              touching any other address there stops the guest)
//! ```

/// Size of a small page and the granularity of guest memory.
pub const PAGE_SIZE: u64 = 0x1000;
/// Guest-physical address of the boot info page.
pub const BOOT_INFO_GPA: u64 = 0x1000;
/// Guest-physical address of the guest's PML4; the PDPT and the page
/// directories follow it page by page.
pub const PAGE_TABLES_GPA: u64 = 0x2000;
/// Number of page-table pages: PML4, PDPT, one directory per GiB mapped and
/// one page table for the first 2 MiB.
pub const PAGE_TABLE_PAGES: u64 = 2 + GUEST_VIRTUAL_GIB + 1;
/// The guest page tables identity-map this many GiB with 2 MiB pages, so a
/// guest can *address* more than it owns; EPT decides what it may touch.
pub const GUEST_VIRTUAL_GIB: u64 = 2;
/// Lowest address an image segment may load at.
pub const IMAGE_BASE_GPA: u64 = 0x1_0000;
/// Stack size reserved at the top of guest memory.
pub const STACK_SIZE: u64 = 0x1_0000;
/// Smallest guest memory the manifest may ask for.
pub const MIN_MEMORY: u64 = 0x4_0000;
/// Largest guest memory the manifest may ask for.
pub const MAX_MEMORY: u64 = 0x4000_0000;

const _: () = assert!(PAGE_TABLES_GPA + PAGE_TABLE_PAGES * PAGE_SIZE <= IMAGE_BASE_GPA);
const _: () = assert!(IMAGE_BASE_GPA + STACK_SIZE < MIN_MEMORY);
/// Guest-physical address of device slot 0 (just above the largest guest
/// memory, inside the range the guest page tables map).
pub const DEVICE_BASE_GPA: u64 = MAX_MEMORY;
/// Bytes between device slots; each slot is one virtio-mmio register page.
pub const DEVICE_STRIDE: u64 = PAGE_SIZE;
/// Device slots a VM can have.
pub const MAX_DEVICES: usize = 8;

/// Guest-physical address of device slot `slot`.
pub const fn device_gpa(slot: usize) -> u64 {
    DEVICE_BASE_GPA + slot as u64 * DEVICE_STRIDE
}

/// The device slot `gpa` falls in, and its offset there, if it lies in the
/// device window.
pub const fn device_slot(gpa: u64) -> Option<(usize, u64)> {
    if gpa < DEVICE_BASE_GPA {
        return None;
    }
    let slot = (gpa - DEVICE_BASE_GPA) / DEVICE_STRIDE;
    if slot >= MAX_DEVICES as u64 {
        return None;
    }
    Some((slot as usize, (gpa - DEVICE_BASE_GPA) % DEVICE_STRIDE))
}

const _: () = assert!(device_gpa(MAX_DEVICES) <= GUEST_VIRTUAL_GIB << 30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_slots() {
        assert_eq!(device_slot(DEVICE_BASE_GPA - 1), None);
        assert_eq!(device_slot(DEVICE_BASE_GPA), Some((0, 0)));
        assert_eq!(device_slot(device_gpa(3) + 0x70), Some((3, 0x70)));
        assert_eq!(device_slot(device_gpa(MAX_DEVICES)), None);
        assert_eq!(device_slot(u64::MAX), None);
    }
}
