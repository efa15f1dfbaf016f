//! VMX logic that does not touch hardware: VMCS field names, capability
//! checks and control values, and the VM-exit decoder.
#![forbid(unsafe_code)]

pub mod caps;
pub mod exit;
pub mod fields;
pub mod mode;
