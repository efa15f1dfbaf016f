//! What guest-lib's virtio drivers (features `net` and `virtio-console`)
//! share: the `virtio-drivers` HAL for Corral guests and page-aligned DMA
//! memory.

mod hal;

#[cfg(feature = "virtio-console")]
pub(crate) mod console;
#[cfg(test)]
pub(crate) mod fake;

pub(crate) use hal::{AllocFailed, CorralHal, PageBuf};
