//! The CPUID a guest sees: the host's answers, filtered. VMX is hidden, the
//! hypervisor-present bit is set, and leaves 0x4000_0000.. name Corral and
//! its ABI version (see `vmm_abi::corral::hypercall::CPUID_LEAF_VENDOR`).
#![forbid(unsafe_code)]

use vmm_abi::corral::hypercall::{CPUID_LEAF_ABI, CPUID_LEAF_VENDOR};
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

const LEAF_MAX: u32 = 0;
const LEAF_FEATURES: u32 = 1;
const LEAF_CACHE: u32 = 2;
const LEAF_CACHE_PARAMS: u32 = 4;
const LEAF_EXTENDED_FEATURES: u32 = 7;
const LEAF_EXT_MAX: u32 = 0x8000_0000;
const LEAF_EXT_FEATURES: u32 = 0x8000_0001;
const LEAF_BRAND_FIRST: u32 = 0x8000_0002;
const LEAF_BRAND_LAST: u32 = 0x8000_0004;
const LEAF_EXT_CACHE: u32 = 0x8000_0006;
const LEAF_ADDRESS_SIZES: u32 = 0x8000_0008;
/// Highest basic leaf guests see: everything above is not offered.
const GUEST_MAX_LEAF: u32 = LEAF_EXTENDED_FEATURES;
/// Highest extended leaf guests see.
const GUEST_MAX_EXT_LEAF: u32 = LEAF_ADDRESS_SIZES;

/// CPUID.1:ECX bits a guest may see: SSE3, PCLMULQDQ, SSSE3, CX16, SSE4.1,
/// SSE4.2, MOVBE, POPCNT, AES, RDRAND. Not offered: VMX, SMX, MONITOR (they
/// would exit), XSAVE/OSXSAVE/AVX/FMA/F16C (XSETBV exits and XSAVE state is
/// not switched between VMs), PCID, x2APIC, TSC-deadline, PDCM, DTES64.
const LEAF1_ECX_ALLOWED: u32 = (1 << 0)
    | (1 << 1)
    | (1 << 9)
    | (1 << 13)
    | (1 << 19)
    | (1 << 20)
    | (1 << 22)
    | (1 << 23)
    | (1 << 25)
    | (1 << 30);
/// CPUID.1:EDX bits a guest may see: FPU, DE, PSE, TSC, PAE, CX8, PGE,
/// CMOV, PAT, PSE-36, CLFLUSH, MMX, FXSR, SSE, SSE2. Not offered: MSR
/// (denied), APIC, MTRR, MCE/MCA, SEP, DS, ACPI, HTT, TM, PBE, VME.
const LEAF1_EDX_ALLOWED: u32 = (1 << 0)
    | (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 6)
    | (1 << 8)
    | (1 << 13)
    | (1 << 15)
    | (1 << 16)
    | (1 << 17)
    | (1 << 19)
    | (1 << 23)
    | (1 << 24)
    | (1 << 25)
    | (1 << 26);
/// CPUID.1:EBX keeps the CLFLUSH line size (bits 15:8) only: no logical
/// processor count, no initial APIC ID of the host.
const LEAF1_EBX_ALLOWED: u32 = 0xff00;
/// CPUID.7.0:EBX: BMI1, SMEP, BMI2, ERMS, ADX, SMAP, CLFLUSHOPT, SHA.
const LEAF7_EBX_ALLOWED: u32 =
    (1 << 3) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 19) | (1 << 20) | (1 << 23) | (1 << 29);
/// CPUID.80000001h:ECX: LAHF/SAHF, LZCNT, PREFETCHW.
const EXT1_ECX_ALLOWED: u32 = (1 << 0) | (1 << 5) | (1 << 8);
/// CPUID.80000001h:EDX: SYSCALL, NX, 1 GiB pages, long mode (not RDTSCP:
/// it is not enabled for guests).
const EXT1_EDX_ALLOWED: u32 = (1 << 11) | (1 << 20) | (1 << 26) | (1 << 29);
/// CPUID.1:ECX bit 31, "running under a hypervisor".
const FEATURE_ECX_HYPERVISOR: u32 = 1 << 31;

fn sig_word(i: usize) -> u32 {
    let s = HYPERVISOR_SIGNATURE;
    u32::from_le_bytes([s[i * 4], s[i * 4 + 1], s[i * 4 + 2], s[i * 4 + 3]])
}

const ZERO: CpuidResult = CpuidResult {
    eax: 0,
    ebx: 0,
    ecx: 0,
    edx: 0,
};

/// What a guest gets for CPUID(`leaf`, `subleaf`), given the host's answer.
/// An allow-list: guests are told only of features that work for them, and
/// nothing that would identify host cores or host performance counters;
/// every leaf not listed reads as zeros.
pub fn filter(leaf: u32, subleaf: u32, host: impl Fn(u32, u32) -> CpuidResult) -> CpuidResult {
    match leaf {
        LEAF_MAX => CpuidResult {
            eax: host(leaf, 0).eax.min(GUEST_MAX_LEAF),
            ..host(leaf, 0)
        },
        LEAF_FEATURES => {
            let r = host(leaf, subleaf);
            CpuidResult {
                eax: r.eax,
                ebx: r.ebx & LEAF1_EBX_ALLOWED,
                ecx: (r.ecx & LEAF1_ECX_ALLOWED) | FEATURE_ECX_HYPERVISOR,
                edx: r.edx & LEAF1_EDX_ALLOWED,
            }
        }
        LEAF_CACHE | LEAF_CACHE_PARAMS => host(leaf, subleaf),
        LEAF_EXTENDED_FEATURES if subleaf == 0 => CpuidResult {
            eax: 0,
            ebx: host(leaf, 0).ebx & LEAF7_EBX_ALLOWED,
            ecx: 0,
            edx: 0,
        },
        CPUID_LEAF_VENDOR => CpuidResult {
            eax: CPUID_LEAF_ABI,
            ebx: sig_word(0),
            ecx: sig_word(1),
            edx: sig_word(2),
        },
        CPUID_LEAF_ABI => CpuidResult {
            eax: ABI_VERSION,
            ..ZERO
        },
        LEAF_EXT_MAX => CpuidResult {
            eax: host(leaf, 0).eax.min(GUEST_MAX_EXT_LEAF),
            ..ZERO
        },
        LEAF_EXT_FEATURES => {
            let r = host(leaf, 0);
            CpuidResult {
                eax: r.eax,
                ebx: 0,
                ecx: r.ecx & EXT1_ECX_ALLOWED,
                edx: r.edx & EXT1_EDX_ALLOWED,
            }
        }
        LEAF_BRAND_FIRST..=LEAF_BRAND_LAST | LEAF_EXT_CACHE | LEAF_ADDRESS_SIZES => {
            host(leaf, subleaf)
        }
        // Other hypervisor leaves and everything not listed: nothing.
        _ => ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(leaf: u32, _: u32) -> CpuidResult {
        CpuidResult {
            eax: leaf,
            ebx: u32::MAX,
            ecx: !FEATURE_ECX_HYPERVISOR,
            edx: u32::MAX,
        }
    }

    const VMX: u32 = 1 << 5;
    const XSAVE: u32 = 1 << 26;
    const OSXSAVE: u32 = 1 << 27;
    const AVX: u32 = 1 << 28;
    const MSR: u32 = 1 << 5;
    const RDTSCP: u32 = 1 << 27;

    #[test]
    fn only_listed_features_show() {
        let r = filter(LEAF_FEATURES, 0, host);
        for bit in [VMX, XSAVE, OSXSAVE, AVX] {
            assert_eq!(r.ecx & bit, 0, "leaf 1 ECX bit {bit:#x}");
        }
        assert_eq!(r.edx & MSR, 0);
        assert_eq!(r.ebx & 0xff00_0000, 0, "no host APIC ID");
        assert_ne!(r.edx & (1 << 25), 0, "SSE stays");
        assert_eq!(filter(LEAF_EXT_FEATURES, 0, host).edx & RDTSCP, 0);
        assert_eq!(filter(0xa, 0, host), ZERO, "no performance monitoring");
        assert_eq!(filter(0xb, 0, host), ZERO, "no topology");
        assert_eq!(filter(0xd, 0, host), ZERO, "no XSAVE state");
        assert_eq!(filter(LEAF_EXTENDED_FEATURES, 1, host), ZERO);
        let big = |l: u32, _: u32| CpuidResult {
            eax: if l == LEAF_MAX { 0x1f } else { 0x8000_0021 },
            ..ZERO
        };
        assert_eq!(filter(LEAF_MAX, 0, big).eax, GUEST_MAX_LEAF);
        assert_eq!(filter(LEAF_EXT_MAX, 0, big).eax, GUEST_MAX_EXT_LEAF);
        assert_eq!(filter(0x8000_0007, 0, host), ZERO);
    }

    #[test]
    fn hides_vmx_and_names_corral() {
        let r = filter(1, 0, host);
        assert_eq!(r.ecx & VMX, 0);
        assert_eq!(r.ecx & FEATURE_ECX_HYPERVISOR, FEATURE_ECX_HYPERVISOR);
        let v = filter(CPUID_LEAF_VENDOR, 0, host);
        let mut sig = [0u8; 12];
        sig[0..4].copy_from_slice(&v.ebx.to_le_bytes());
        sig[4..8].copy_from_slice(&v.ecx.to_le_bytes());
        sig[8..12].copy_from_slice(&v.edx.to_le_bytes());
        assert_eq!(&sig, b"CorralCorral");
        assert_eq!(v.eax, CPUID_LEAF_ABI);
        assert_eq!(filter(CPUID_LEAF_ABI, 0, host).eax, ABI_VERSION);
        assert_eq!(filter(0x4000_0100, 0, host), ZERO);
        assert_eq!(filter(LEAF_BRAND_FIRST, 0, host), host(LEAF_BRAND_FIRST, 0));
    }
}
