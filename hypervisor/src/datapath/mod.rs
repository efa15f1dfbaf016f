//! The data path: frames moved across links by a polling core.
#![forbid(unsafe_code)]

pub mod direction;
