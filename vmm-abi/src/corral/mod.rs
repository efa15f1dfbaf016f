//! Corral's own guest ABI: hypercalls ([`hypercall`]), boot info ([`bootinfo`]), guest-physical layout ([`layout`]) and device slots ([`devices`]); a second guest ABI (Solo5 hvt) sits beside it as its own module.

pub mod bootinfo;
pub mod devices;
pub mod hypercall;
pub mod layout;
