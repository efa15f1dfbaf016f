//! Paravirtual virtio devices (virtio 1.2): split virtqueues read from guest
//! memory (`queue`, §2.7), the virtio-mmio transport a guest programs
//! (`mmio`, §4.2), and the device models behind it (`net` §5.1, `blk`
//! §5.2, `console` §5.3). Everything here is plain logic over the [`crate::mem::access::GuestRam`]
//! trait; the hypervisor wires it to EPT-violation exits and to its cores.
#![forbid(unsafe_code)]

pub mod blk;
pub mod console;
pub mod error;
pub mod features;
pub mod mmio;
pub mod net;
pub mod queue;

#[cfg(test)]
pub(crate) mod testing;
