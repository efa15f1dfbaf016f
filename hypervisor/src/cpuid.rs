//! The CPUID a guest sees: the host's answers, filtered. VMX is hidden, the
//! hypervisor-present bit is set, and leaves 0x4000_0000.. name Corral and
//! its ABI version (see `vmm_abi::corral::hypercall::CPUID_LEAF_VENDOR`).
#![forbid(unsafe_code)]

use vmm_abi::corral::hypercall::{CPUID_LEAF_ABI, CPUID_LEAF_VENDOR};
use vmm_abi::{ABI_VERSION, HYPERVISOR_SIGNATURE};

/// The four registers CPUID returns (`raw-cpuid`'s type, which its
/// decoder reads, under the name the hypervisor uses).
pub use raw_cpuid::CpuIdResult as CpuidResult;

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

/// A leaf answered with all four registers zero (hidden or absent).
pub const ZERO: CpuidResult = CpuidResult {
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
    use raw_cpuid::{CpuId, Hypervisor};

    /// An Intel host with every feature bit set (but "running under a
    /// hypervisor"), leaves up to 0x1f and 0x8000_0021, and its leaf number
    /// in EAX of every other leaf.
    fn host(leaf: u32, _: u32) -> CpuidResult {
        let genuine_intel = |i: usize| {
            let s = b"GenuineIntel";
            u32::from_le_bytes([s[i * 4], s[i * 4 + 1], s[i * 4 + 2], s[i * 4 + 3]])
        };
        match leaf {
            LEAF_MAX => CpuidResult {
                eax: 0x1f,
                ebx: genuine_intel(0),
                ecx: genuine_intel(2),
                edx: genuine_intel(1),
            },
            LEAF_EXT_MAX => CpuidResult {
                eax: 0x8000_0021,
                ..ZERO
            },
            _ => CpuidResult {
                eax: leaf,
                ebx: u32::MAX,
                ecx: !FEATURE_ECX_HYPERVISOR,
                edx: u32::MAX,
            },
        }
    }

    /// The guest's CPUID over [`host`], decoded by raw-cpuid.
    fn guest() -> CpuId {
        CpuId::with_cpuid_fn(|leaf, subleaf| filter(leaf, subleaf, host))
    }

    #[test]
    fn only_listed_features_show() {
        let guest = guest();
        let f = guest.get_feature_info().unwrap();
        assert!(!f.has_vmx() && !f.has_xsave() && !f.has_oxsave() && !f.has_avx());
        assert!(!f.has_msr());
        assert_eq!(f.initial_local_apic_id(), 0, "no host APIC ID");
        assert!(f.has_sse(), "SSE stays");
        let ext = guest.get_extended_processor_and_feature_identifiers();
        assert!(!ext.unwrap().has_rdtscp());
        assert_eq!(filter(0xa, 0, host), ZERO, "no performance monitoring");
        assert_eq!(filter(0xb, 0, host), ZERO, "no topology");
        assert_eq!(filter(0xd, 0, host), ZERO, "no XSAVE state");
        assert_eq!(filter(LEAF_EXTENDED_FEATURES, 1, host), ZERO);
        assert_eq!(filter(LEAF_MAX, 0, host).eax, GUEST_MAX_LEAF);
        assert_eq!(filter(LEAF_EXT_MAX, 0, host).eax, GUEST_MAX_EXT_LEAF);
        assert_eq!(filter(0x8000_0007, 0, host), ZERO);
    }

    /// Every feature the allow-lists name reaches the guest, and a sample
    /// of those they leave out does not, each by raw-cpuid's name for it
    /// (so a mask with a wrong bit fails here).
    #[test]
    fn allow_lists_match_their_names() {
        let guest = guest();
        let f = guest.get_feature_info().unwrap();
        let leaf1_ecx = [
            f.has_sse3(),
            f.has_pclmulqdq(),
            f.has_ssse3(),
            f.has_cmpxchg16b(),
            f.has_sse41(),
            f.has_sse42(),
            f.has_movbe(),
            f.has_popcnt(),
            f.has_aesni(),
            f.has_rdrand(),
        ];
        let leaf1_edx = [
            f.has_fpu(),
            f.has_de(),
            f.has_pse(),
            f.has_tsc(),
            f.has_pae(),
            f.has_cmpxchg8b(),
            f.has_pge(),
            f.has_cmov(),
            f.has_pat(),
            f.has_pse36(),
            f.has_clflush(),
            f.has_mmx(),
            f.has_fxsave_fxstor(),
            f.has_sse(),
            f.has_sse2(),
        ];
        let e = guest.get_extended_feature_info().unwrap();
        let leaf7_ebx = [
            e.has_bmi1(),
            e.has_smep(),
            e.has_bmi2(),
            e.has_rep_movsb_stosb(),
            e.has_adx(),
            e.has_smap(),
            e.has_clflushopt(),
            e.has_sha(),
        ];
        let x = guest
            .get_extended_processor_and_feature_identifiers()
            .unwrap();
        let ext1 = [
            x.has_lahf_sahf(),
            x.has_lzcnt(),
            x.has_prefetchw(),
            x.has_syscall_sysret(),
            x.has_execute_disable(),
            x.has_1gib_pages(),
            x.has_64bit_mode(),
        ];
        for (listed, allowed_bits) in [
            (&leaf1_ecx[..], LEAF1_ECX_ALLOWED.count_ones()),
            (&leaf1_edx[..], LEAF1_EDX_ALLOWED.count_ones()),
            (&leaf7_ebx[..], LEAF7_EBX_ALLOWED.count_ones()),
            (
                &ext1[..],
                EXT1_ECX_ALLOWED.count_ones() + EXT1_EDX_ALLOWED.count_ones(),
            ),
        ] {
            assert!(listed.iter().all(|&shown| shown), "{listed:?}");
            assert_eq!(
                listed.len() as u32,
                allowed_bits,
                "a mask allows a bit its list does not name"
            );
        }
        let left_out = [
            f.has_vmx(),
            f.has_smx(),
            f.has_monitor_mwait(),
            f.has_xsave(),
            f.has_oxsave(),
            f.has_avx(),
            f.has_fma(),
            f.has_f16c(),
            f.has_pcid(),
            f.has_x2apic(),
            f.has_tsc_deadline(),
            f.has_pdcm(),
            f.has_msr(),
            f.has_apic(),
            f.has_mtrr(),
            f.has_mce(),
            f.has_mca(),
            f.has_sysenter_sysexit(),
            f.has_ds(),
            f.has_acpi(),
            f.has_htt(),
            f.has_tm(),
            f.has_pbe(),
            f.has_vme(),
            e.has_fsgsbase(),
            e.has_avx2(),
            e.has_invpcid(),
            e.has_rtm(),
            e.has_mpx(),
            e.has_sgx(),
            e.has_avx512f(),
            e.has_pku(),
            x.has_rdtscp(),
        ];
        assert!(left_out.iter().all(|&shown| !shown), "{left_out:?}");
    }

    #[test]
    fn hides_vmx_and_names_corral() {
        let guest = guest();
        let f = guest.get_feature_info().unwrap();
        assert!(!f.has_vmx());
        assert!(f.has_hypervisor());
        let v = filter(CPUID_LEAF_VENDOR, 0, host);
        let Hypervisor::Unknown(ebx, ecx, edx) = guest.get_hypervisor_info().unwrap().identify()
        else {
            panic!("Corral identifies as another hypervisor");
        };
        let mut sig = [0u8; 12];
        sig[0..4].copy_from_slice(&ebx.to_le_bytes());
        sig[4..8].copy_from_slice(&ecx.to_le_bytes());
        sig[8..12].copy_from_slice(&edx.to_le_bytes());
        assert_eq!(&sig, b"CorralCorral");
        assert_eq!(v.eax, CPUID_LEAF_ABI);
        assert_eq!(filter(CPUID_LEAF_ABI, 0, host).eax, ABI_VERSION);
        assert_eq!(filter(0x4000_0100, 0, host), ZERO);
        assert_eq!(filter(LEAF_BRAND_FIRST, 0, host), host(LEAF_BRAND_FIRST, 0));
    }
}
