//! Corral, a bare-metal VT-x/EPT hypervisor for unikernel guests.
//!
//! The crate is split by what can be tested on a development host. Every
//! module but `platform` is plain Rust with no hardware access, unit-tested
//! on the host, and `forbid(unsafe_code)`; `platform` (compiled only for
//! `x86_64-unknown-none`) holds the boot code, the privileged-instruction
//! wrappers, the VMCS-backed vCPU and the per-core run loop. The only other
//! `unsafe` is `mem::raw`, the one raw view of guest memory.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod block;
pub mod console;
pub mod control;
pub mod cpuid;
pub mod datapath;
pub mod devices;
pub mod dispatch;
pub mod elf;
pub mod emulate;
pub mod hooks;
pub mod hvt;
pub mod hypercall;
pub mod mem;
pub mod msr;
pub mod multiboot;
pub mod nic;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod platform;
pub mod rtc;
pub mod sched;
pub mod vcpu;
pub mod vmx;
