//! What Corral's hostile test images do, decided from their argument strings.
//! This is the plain logic of those images, kept apart from the instructions
//! they execute so it can be tested on the host; the images themselves are
//! the binaries in `src/bin/`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod badcall_plan;
pub mod escape_plan;
