//! The virtual CPU: its registers ([`regs`]), why it stops ([`stop`]), the hardware it runs on as a trait ([`hw`]), and the exit loop that runs one slice of it ([`slice`]), host-tested against a fake vCPU.
#![forbid(unsafe_code)]

pub mod hw;
pub mod regs;
pub mod slice;
pub mod stop;

#[cfg(test)]
mod tests;
