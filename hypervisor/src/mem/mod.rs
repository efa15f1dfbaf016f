//! Memory: physical frames, EPT, guest memory views and guest page tables.

pub mod access;
pub mod ept;
pub mod frames;
pub mod guest;
pub mod guest_tables;
pub mod host_pages;
#[allow(unsafe_code)]
pub mod raw;
