//! Devices a guest sees: the register bus every device-page access goes through ([`bus`]) and the virtio device models behind it ([`virtio`]).
#![forbid(unsafe_code)]

pub mod bus;
pub mod virtio;
