//! Hardware access, compiled only for the bare-metal target: boot, console,
//! CPU tables, physical memory, VMX, the VM run loop, and PCI with the
//! physical NIC.

mod acpi;
pub mod blocks;
pub mod clock;
mod com2;
pub mod exceptions;
pub mod halt;
pub mod images;
pub mod instr;
pub mod jit;
mod lapic;
pub mod memory;
pub mod net;
pub mod paging;
pub mod pci;
pub mod percpu;
pub mod run;
pub mod runtime_hooks;
pub mod serial;
pub mod service;
pub mod smp;
pub mod start;
pub mod tables;
mod trampoline;
mod vcpu;
pub mod vm;
pub mod vmx;
