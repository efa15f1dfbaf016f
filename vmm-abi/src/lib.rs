//! The one copy of the contract between the Corral hypervisor, its unikernel
//! guests and its host tools: Corral's guest ABI ([`corral`]: hypercalls,
//! boot info, guest memory layout, device slots), the binary manifest, the
//! run-report records and operator hooks ([`hook`]: eBPF encoding, hook
//! contexts, maps and the verifier).
//!
//! Everything here is plain data and pure functions so that each side (bare
//! metal or host) links the same definitions. The wire formats are versioned
//! by [`ABI_VERSION`]; a reader refuses a version it does not know.
#![no_std]
#![forbid(unsafe_code)]

pub mod control;
pub mod corral;
pub mod hook;
pub mod hvt;
pub mod manifest;
pub mod report;
pub mod text;

/// Version of every wire format in this crate. Bump it on any incompatible
/// change; the hypervisor refuses a manifest and a guest refuses boot info
/// carrying another version.
pub const ABI_VERSION: u32 = 16;

/// The 12-byte vendor signature returned by CPUID leaf
/// [`corral::hypercall::CPUID_LEAF_VENDOR`] in EBX, ECX, EDX.
pub const HYPERVISOR_SIGNATURE: [u8; 12] = *b"CorralCorral";
