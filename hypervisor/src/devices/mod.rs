//! Devices a guest sees: the register bus every device-page access goes through ([`bus`]).
#![forbid(unsafe_code)]

pub mod bus;
