//! Instruction emulation for device-page accesses: the guest's page walk and instruction fetch ([`walk`]), the decoder of the `mov` forms a driver uses ([`decode`]), and one access carried out on a device ([`access`]).
#![forbid(unsafe_code)]

pub mod access;
pub mod decode;
pub mod walk;

pub use access::{MmioFault, emulate};
