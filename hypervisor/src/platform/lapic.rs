//! The local APIC (SDM Vol. 3A, chapter 11): the calling core's APIC ID and
//! the INIT and start-up IPIs that wake application processors. IPIs are
//! sent in xAPIC mode through the memory-mapped registers, which the
//! hypervisor's identity map of the first 4 GiB covers.

use super::instr;
use core::sync::atomic::{AtomicU64, Ordering};
use raw_cpuid::CpuId;
// IA32_APIC_BASE: the APIC's base address and mode (SDM Vol. 3A, 11.4.4);
// IA32_X2APIC_APICID: the local APIC ID in x2APIC mode (11.12.1).
use x86::msr::{IA32_APIC_BASE, IA32_X2APIC_APICID};
use x86_64::registers::model_specific::ApicBaseFlags;

/// IA32_APIC_BASE bits 12 and up: the physical base of the register page.
const APIC_BASE_ADDRESS: u64 = 0x000f_ffff_ffff_f000;
/// The hypervisor's page tables map this much physical memory 1:1.
const IDENTITY_MAPPED_END: u64 = 1 << 32;
/// Stands for "IA32_APIC_BASE not read yet" (never a real value: its
/// reserved bits are zero).
const NOT_READ: u64 = u64::MAX;

/// xAPIC register offsets from the base (SDM Vol. 3A, table 11-1).
const REG_ID: u64 = 0x20;
const REG_ICR_LOW: u64 = 0x300;
const REG_ICR_HIGH: u64 = 0x310;
/// The xAPIC ID is in bits 31:24 of the ID register.
const ID_SHIFT: u32 = 24;

/// Interrupt command register fields (SDM Vol. 3A, 11.6.1, figure 11-12).
const ICR_DELIVERY_INIT: u32 = 0b101 << 8;
const ICR_DELIVERY_STARTUP: u32 = 0b110 << 8;
/// Delivery status: the previous IPI has not been accepted yet.
const ICR_SEND_PENDING: u32 = 1 << 12;
/// Level "assert" (every delivery mode except INIT level de-assert).
const ICR_LEVEL_ASSERT: u32 = 1 << 14;
/// The destination APIC ID sits in bits 63:56 of the ICR (31:24 of the
/// high half).
const ICR_DESTINATION_SHIFT: u32 = 24;

/// TSC ticks to wait for the APIC to accept an IPI (a handful of bus
/// cycles on hardware; 10 ms even on a 1 GHz TSC).
const SEND_TIMEOUT_TICKS: u64 = 10_000_000;

/// IA32_APIC_BASE as read on the boot core ([`NOT_READ`] until then). All
/// cores use the same register page address.
static APIC_BASE: AtomicU64 = AtomicU64::new(NOT_READ);

fn apic_base_msr() -> u64 {
    let cached = APIC_BASE.load(Ordering::Relaxed);
    if cached != NOT_READ {
        return cached;
    }
    let value = if has_local_apic() {
        // SAFETY: CPUID says the core has a local APIC, so IA32_APIC_BASE
        // exists (SDM Vol. 3A, 11.4.4); reading it has no side effect.
        unsafe { instr::rdmsr(IA32_APIC_BASE) }
    } else {
        0
    };
    APIC_BASE.store(value, Ordering::Relaxed);
    value
}

/// Whether CPUID says this core has a local APIC. Asked once, at boot:
/// kept out of line, so the APIC ID read the `core_id` hypercall inlines
/// stays as small as it was.
#[cold]
fn has_local_apic() -> bool {
    CpuId::with_cpuid_fn(instr::cpuid)
        .get_feature_info()
        .is_some_and(|f| f.has_apic())
}

/// Why the local APIC cannot start other cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// No local APIC, or it is globally disabled.
    Disabled,
    /// The firmware switched it to x2APIC mode, which Corral does not drive.
    X2Apic,
    /// Its registers lie outside the identity-mapped first 4 GiB.
    Unmapped(u64),
}

impl core::fmt::Display for Unusable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Unusable::Disabled => write!(f, "the local APIC is absent or disabled"),
            Unusable::X2Apic => {
                write!(f, "the local APIC is in x2APIC mode (only xAPIC is driven)")
            }
            Unusable::Unmapped(a) => write!(f, "the local APIC registers at {a:#x} are not mapped"),
        }
    }
}

/// IA32_APIC_BASE decoded: its mode bits and the register page.
fn apic_base() -> (ApicBaseFlags, u64) {
    let msr = apic_base_msr();
    (
        ApicBaseFlags::from_bits_truncate(msr),
        msr & APIC_BASE_ADDRESS,
    )
}

/// The physical base of the xAPIC registers, if IPIs can be sent through
/// them.
pub fn xapic_base() -> Result<u64, Unusable> {
    let (mode, base) = apic_base();
    if !mode.contains(ApicBaseFlags::LAPIC_ENABLE) {
        return Err(Unusable::Disabled);
    }
    if mode.contains(ApicBaseFlags::X2APIC_ENABLE) {
        return Err(Unusable::X2Apic);
    }
    if base + REG_ICR_HIGH >= IDENTITY_MAPPED_END {
        return Err(Unusable::Unmapped(base));
    }
    Ok(base)
}

/// Physical address of the xAPIC ID register (the start-up trampoline
/// reads it to check which core it runs on).
pub fn id_register() -> Result<u64, Unusable> {
    xapic_base().map(|base| base + REG_ID)
}

fn read(base: u64, reg: u64) -> u32 {
    // SAFETY: `base` comes from `xapic_base`, so it is the enabled xAPIC's
    // register page below 4 GiB, identity mapped; `reg` is one of the
    // 16-byte aligned register offsets above. Reading ID or ICR has no side
    // effect.
    unsafe { ((base + reg) as *const u32).read_volatile() }
}

fn write(base: u64, reg: u64, value: u32) {
    // SAFETY: as in `read`; only the ICR is written, which sends an IPI
    // the caller chose (INIT or start-up to an application processor).
    unsafe { ((base + reg) as *mut u32).write_volatile(value) };
}

/// The local APIC ID of the calling core (0 without a usable APIC).
pub fn id() -> u32 {
    let (mode, _) = apic_base();
    if !mode.contains(ApicBaseFlags::LAPIC_ENABLE) {
        return 0;
    }
    if mode.contains(ApicBaseFlags::X2APIC_ENABLE) {
        // SAFETY: in x2APIC mode IA32_X2APIC_APICID exists (SDM Vol. 3A,
        // 11.12.1); reading it has no side effect.
        return unsafe { instr::rdmsr(IA32_X2APIC_APICID) } as u32;
    }
    match xapic_base() {
        Ok(base) => read(base, REG_ID) >> ID_SHIFT,
        Err(_) => 0,
    }
}

/// Waits (bounded) until the APIC has accepted the last IPI.
fn wait_idle(base: u64) -> bool {
    let start = instr::rdtsc();
    while read(base, REG_ICR_LOW) & ICR_SEND_PENDING != 0 {
        if instr::rdtsc().wrapping_sub(start) > SEND_TIMEOUT_TICKS {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

fn send(apic_id: u8, command: u32) -> Result<(), &'static str> {
    let base = xapic_base().map_err(|_| "the local APIC cannot send IPIs")?;
    if !wait_idle(base) {
        return Err("the local APIC is still sending an earlier IPI");
    }
    write(
        base,
        REG_ICR_HIGH,
        u32::from(apic_id) << ICR_DESTINATION_SHIFT,
    );
    write(base, REG_ICR_LOW, command);
    if wait_idle(base) {
        Ok(())
    } else {
        Err("the IPI was not accepted")
    }
}

/// Sends INIT to the core with local APIC ID `apic_id`: it resets and
/// waits for a start-up IPI (SDM Vol. 3A, 9.4.4.1). Only INIT "assert" is
/// sent; the level de-assert form is not used since the Pentium 4.
pub fn send_init(apic_id: u8) -> Result<(), &'static str> {
    send(apic_id, ICR_DELIVERY_INIT | ICR_LEVEL_ASSERT)
}

/// Sends a start-up IPI: the core starts in real mode at
/// `vector << 12` (CS = `vector << 8`, IP = 0).
pub fn send_startup(apic_id: u8, vector: u8) -> Result<(), &'static str> {
    send(
        apic_id,
        ICR_DELIVERY_STARTUP | ICR_LEVEL_ASSERT | u32::from(vector),
    )
}
