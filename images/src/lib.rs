//! What Corral's images do, decided from their argument strings (and, for
//! `hello`, its VM name). This is the plain logic of those images, kept apart
//! from the instructions they execute so it can be tested on the host; the
//! images themselves are the binaries in `src/bin/`. `fault` holds the one
//! deliberate triple fault that `crash` and `hello` share.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod badcall_plan;
pub mod escape_plan;
pub mod events;
#[allow(unsafe_code)]
pub mod fault;
pub mod hello_plan;
pub mod http;
pub mod nf;
pub mod spin_plan;
