//! Hardware access, compiled only for the bare-metal target: boot, console,
//! CPU tables, physical memory, VMX, and the VM run loop.

pub mod exceptions;
pub mod instr;
pub mod memory;
pub mod serial;
pub mod start;
pub mod tables;
pub mod vm;
pub mod vmx;
