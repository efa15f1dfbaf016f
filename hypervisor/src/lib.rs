//! Corral, a bare-metal VT-x/EPT hypervisor for unikernel guests.
//!
//! The crate is split by what can be tested on a development host. The
//! modules at the top (memory, ELF, VMX logic, exit dispatch, hypercalls)
//! are plain Rust with no hardware access and are unit-tested on the host;
//! `arch` (compiled only for `x86_64-unknown-none`) holds the boot code,
//! the privileged-instruction wrappers and the VMX run loop.
#![cfg_attr(not(test), no_std)]

pub mod console;
pub mod cpuid;
pub mod datapath;
pub mod dispatch;
pub mod elf;
pub mod hypercall;
pub mod mem;
pub mod mmio;
pub mod msr;
pub mod multiboot;
#[cfg(target_os = "none")]
pub mod platform;
pub mod sched;
pub mod vcpu;
pub mod virtio;
pub mod vmx;
