//! Solo5 hvt guests beside Corral's own: an hvt ELF is recognised by its `ABI1` note and checked as Solo5's tender checks it (`image`), its starting memory is built the way the hvt ABI describes (`boot`), and its port-I/O hypercalls are carried out against its memory (`call`), its NET_BASIC devices driven as virtio-net drivers of Corral ports (`net`), with Solo5's shared net ring served by a polling core (`ring`). Host-tested; the platform only supplies memory, the clock and the VMCS.
#![forbid(unsafe_code)]

pub mod boot;
pub mod call;
pub mod image;
pub mod net;
pub mod ring;

#[cfg(test)]
mod tests;
