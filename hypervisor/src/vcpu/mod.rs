//! The virtual CPU's state shared by the exit path and the hardware layer: its registers ([`regs`]) and why it stops ([`stop`]).

pub mod regs;
pub mod stop;
