//! The CPUID a guest sees: the host's answers, filtered. VMX is hidden, the
//! hypervisor-present bit is set, and leaves 0x4000_0000.. name Corral and
//! its ABI version (see `vmm_abi::hypercall::CPUID_LEAF_VENDOR`).

use vmm_abi::hypercall::{CPUID_LEAF_ABI, CPUID_LEAF_VENDOR};
use vmm_abi::{ABI_VERSION, HYPERVISOR_SIGNATURE};

/// The four registers CPUID returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidResult {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

const LEAF_FEATURES: u32 = 1;
const LEAF_HYPERVISOR_END: u32 = 0x4fff_ffff;
/// CPUID.1:ECX bit 5, VMX.
const FEATURE_ECX_VMX: u32 = 1 << 5;
/// CPUID.1:ECX bit 6, SMX.
const FEATURE_ECX_SMX: u32 = 1 << 6;
/// CPUID.1:ECX bit 3, MONITOR/MWAIT (not offered: they would exit).
const FEATURE_ECX_MONITOR: u32 = 1 << 3;
/// CPUID.1:ECX bit 31, "running under a hypervisor".
const FEATURE_ECX_HYPERVISOR: u32 = 1 << 31;

fn sig_word(i: usize) -> u32 {
    let s = HYPERVISOR_SIGNATURE;
    u32::from_le_bytes([s[i * 4], s[i * 4 + 1], s[i * 4 + 2], s[i * 4 + 3]])
}

/// What a guest gets for CPUID(`leaf`, `subleaf`), given the host's answer.
pub fn filter(leaf: u32, subleaf: u32, host: impl Fn(u32, u32) -> CpuidResult) -> CpuidResult {
    match leaf {
        LEAF_FEATURES => {
            let mut r = host(leaf, subleaf);
            r.ecx &= !(FEATURE_ECX_VMX | FEATURE_ECX_SMX | FEATURE_ECX_MONITOR);
            r.ecx |= FEATURE_ECX_HYPERVISOR;
            r
        }
        CPUID_LEAF_VENDOR => CpuidResult {
            eax: CPUID_LEAF_ABI,
            ebx: sig_word(0),
            ecx: sig_word(1),
            edx: sig_word(2),
        },
        CPUID_LEAF_ABI => CpuidResult {
            eax: ABI_VERSION,
            ..CpuidResult::default()
        },
        l if (CPUID_LEAF_VENDOR..=LEAF_HYPERVISOR_END).contains(&l) => CpuidResult::default(),
        _ => host(leaf, subleaf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(leaf: u32, _: u32) -> CpuidResult {
        CpuidResult {
            eax: leaf,
            ebx: 1,
            ecx: !FEATURE_ECX_HYPERVISOR,
            edx: 3,
        }
    }

    #[test]
    fn hides_vmx_and_names_corral() {
        let r = filter(1, 0, host);
        assert_eq!(r.ecx & FEATURE_ECX_VMX, 0);
        assert_eq!(r.ecx & FEATURE_ECX_HYPERVISOR, FEATURE_ECX_HYPERVISOR);
        let v = filter(CPUID_LEAF_VENDOR, 0, host);
        let mut sig = [0u8; 12];
        sig[0..4].copy_from_slice(&v.ebx.to_le_bytes());
        sig[4..8].copy_from_slice(&v.ecx.to_le_bytes());
        sig[8..12].copy_from_slice(&v.edx.to_le_bytes());
        assert_eq!(&sig, b"CorralCorral");
        assert_eq!(v.eax, CPUID_LEAF_ABI);
        assert_eq!(filter(CPUID_LEAF_ABI, 0, host).eax, ABI_VERSION);
        assert_eq!(filter(0x4000_0100, 0, host), CpuidResult::default());
        assert_eq!(filter(0, 0, host), host(0, 0));
    }
}
