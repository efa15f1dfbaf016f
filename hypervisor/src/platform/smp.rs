//! Multiprocessor bring-up: find the cores in the ACPI MADT, start the
//! application processors with INIT-SIPI-SIPI, give each its own stack and
//! CPU tables, and identify the current core.

use super::percpu::MAX_CORES;
use super::trampoline::{self, Launch};
use super::{acpi, halt, instr, lapic, memory, tables};
use crate::multiboot::{BootInformation, Region};
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};
use spin::Once;

/// A core that started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Core {
    /// Corral's core number (0 = the boot core), as manifests name cores.
    pub index: u32,
    /// Its local APIC ID.
    pub apic_id: u32,
}

/// Pages of each application processor's stack (64 KiB).
const AP_STACK_PAGES: u64 = 16;
/// Pages of each application processor's double-fault stack.
const AP_IST_PAGES: u64 = (tables::IST_STACK_SIZE as u64).div_ceil(memory::PAGE);
/// xAPIC IDs are 8 bits; 0xff is the broadcast destination.
const XAPIC_BROADCAST: u32 = 0xff;
/// The boot page tables must be reachable by 32-bit code (CR3 is loaded
/// in protected mode).
const LOW_4_GIB: u64 = 1 << 32;

/// Waits, in TSC ticks (one per instruction under Bochs, about a
/// nanosecond on hardware). SDM Vol. 3A, 9.4.4.1: 10 ms after INIT, then
/// 200 µs after each start-up IPI.
const INIT_SETTLE_TICKS: u64 = 10_000_000;
const SIPI_SETTLE_TICKS: u64 = 200_000;
/// How long a started core has to check in after its second start-up IPI
/// (it runs a few thousand instructions to get there).
const CHECK_IN_TICKS: u64 = 50_000_000;

/// No core is checking in.
const NOBODY: u32 = u32::MAX;
/// The core number of the last application processor that checked in.
static CHECKED_IN: AtomicU32 = AtomicU32::new(NOBODY);

/// The cores that started, the boot core first.
struct Cores {
    list: [Core; MAX_CORES],
    count: usize,
}

impl Cores {
    fn push(&mut self, apic_id: u32) {
        if let Some(slot) = self.list.get_mut(self.count) {
            *slot = Core {
                index: self.count as u32,
                apic_id,
            };
            self.count += 1;
        }
    }

    fn as_slice(&self) -> &[Core] {
        &self.list[..self.count]
    }
}

static CORES: Once<Cores> = Once::new();

/// Starts every core the firmware lists; each application processor enters
/// `ap_main(index)` on its own stack with its own GDT/TSS/IDT loaded. Returns
/// the cores that started, the boot core first. A core that fails to start
/// is reported on the console and left out.
///
/// Call on the boot core, after `tables::init` and after the frame
/// allocator is filled (the stacks come from it). The start-up code is
/// copied to the page at 0x8000, which the allocator never hands out.
/// Later calls return the same cores without starting anything.
pub fn bring_up(info: &BootInformation<'_>, ap_main: extern "C" fn(u32) -> !) -> &'static [Core] {
    CORES.call_once(|| start_all(info, ap_main)).as_slice()
}

/// Corral's number for the core this runs on: the slot of the CPU tables
/// it loaded (one SIDT instruction; VM exits restore the IDTR base from the
/// VMCS host state, which `tables::host_tables` fills per core).
pub fn current_core() -> u32 {
    tables::current_slot() as u32
}

/// The local APIC ID of the core this runs on, read from the local APIC.
pub fn current_apic_id() -> u32 {
    lapic::id()
}

/// The application processors' local APIC IDs, in MADT order.
struct Candidates {
    apic_ids: [u8; MAX_CORES],
    count: usize,
    /// Enabled entries that cannot be started or do not fit.
    skipped: usize,
    /// Physical address of the xAPIC ID register.
    lapic_id_register: u64,
}

/// Why only the boot core runs.
enum BootCoreOnly {
    Lapic(lapic::Unusable),
    Acpi(acpi::Problem),
    Other(&'static str),
}

impl fmt::Display for BootCoreOnly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootCoreOnly::Lapic(e) => write!(f, "{e}"),
            BootCoreOnly::Acpi(e) => write!(f, "{e}"),
            BootCoreOnly::Other(e) => f.write_str(e),
        }
    }
}

fn start_all(info: &BootInformation<'_>, ap_main: extern "C" fn(u32) -> !) -> Cores {
    let boot_apic_id = lapic::id();
    let mut cores = Cores {
        list: [Core {
            index: 0,
            apic_id: 0,
        }; MAX_CORES],
        count: 0,
    };
    cores.push(boot_apic_id);
    match find_application_processors(info, boot_apic_id) {
        Ok(candidates) => start_each(&candidates, &mut cores, ap_main),
        Err(why) => log::warn!("{why}: running on the boot core only"),
    }
    cores
}

/// Reads the MADT and checks everything needed to start other cores.
fn find_application_processors(
    info: &BootInformation<'_>,
    boot_apic_id: u32,
) -> Result<Candidates, BootCoreOnly> {
    let base = lapic::xapic_base().map_err(BootCoreOnly::Lapic)?;
    let lapic_id_register = lapic::id_register().map_err(BootCoreOnly::Lapic)?;
    let rsdp = info.rsdp().ok_or(BootCoreOnly::Other(
        "the boot loader passed no valid ACPI RSDP",
    ))?;
    let mut found = Candidates {
        apic_ids: [0; MAX_CORES],
        count: 0,
        skipped: 0,
        lapic_id_register,
    };
    let mut seen = [false; XAPIC_BROADCAST as usize];
    let madt_base = acpi::local_apics(&rsdp, |entry| {
        if !entry.enabled || entry.apic_id == boot_apic_id {
            return;
        }
        let Ok(id) = u8::try_from(entry.apic_id) else {
            found.skipped += 1;
            return;
        };
        let Some(seen) = seen.get_mut(usize::from(id)) else {
            found.skipped += 1;
            return;
        };
        if *seen {
            return;
        }
        *seen = true;
        // One slot is the boot core's.
        if found.count + 1 < MAX_CORES {
            found.apic_ids[found.count] = id;
            found.count += 1;
        } else {
            found.skipped += 1;
        }
    })
    .map_err(BootCoreOnly::Acpi)?;
    if madt_base != base {
        log::warn!(
            "the MADT puts the local APIC at {madt_base:#x}, IA32_APIC_BASE at {base:#x}: using the latter"
        );
    }
    if found.skipped > 0 {
        log::warn!(
            "{} enabled cores left out (APIC id above {:#x} or more than {MAX_CORES} cores)",
            found.skipped,
            XAPIC_BROADCAST - 1
        );
    }
    if found.count > 0 {
        trampoline_page_free(info).map_err(BootCoreOnly::Other)?;
        if instr::read_cr3() >= LOW_4_GIB {
            return Err(BootCoreOnly::Other("the boot page tables lie above 4 GiB"));
        }
    }
    Ok(found)
}

fn overlaps(a: Region, b: Region) -> bool {
    a.start < b.end && b.start < a.end
}

/// The trampoline page must be RAM and must not hold the boot information
/// or a module.
fn trampoline_page_free(info: &BootInformation<'_>) -> Result<(), &'static str> {
    let page = trampoline::page();
    if !info
        .available()
        .iter()
        .any(|r| r.start <= page.start && page.end <= r.end)
    {
        return Err("the start-up trampoline page is not RAM");
    }
    if overlaps(page, info.location) || info.modules().any(|m| overlaps(page, m.region)) {
        return Err("the start-up trampoline page holds boot information");
    }
    Ok(())
}

/// The stacks of the next core to start (kept for the one after if it
/// fails: a core that did not check in is reset with INIT).
struct Stacks {
    stack_top: u64,
    ist_top: u64,
}

fn alloc_stacks() -> Option<Stacks> {
    let stack = memory::alloc_zeroed_pages(AP_STACK_PAGES)?;
    let Some(ist) = memory::alloc_zeroed_pages(AP_IST_PAGES) else {
        memory::free(stack, AP_STACK_PAGES);
        return None;
    };
    Some(Stacks {
        stack_top: stack + AP_STACK_PAGES * memory::PAGE,
        ist_top: ist + AP_IST_PAGES * memory::PAGE,
    })
}

fn start_each(candidates: &Candidates, cores: &mut Cores, ap_main: extern "C" fn(u32) -> !) {
    if candidates.count == 0 {
        log::info!("the MADT lists no other usable core: running on the boot core only");
        return;
    }
    // SAFETY: `trampoline_page_free` checked that the page is RAM holding
    // neither the boot information nor a module; the frame allocator keeps
    // the first MiB for itself, so nothing else uses it; no core runs the
    // trampoline yet.
    if let Err(why) = unsafe { trampoline::install() } {
        log::warn!("{why}: running on the boot core only");
        return;
    }
    let mut stacks = None;
    for &apic_id in &candidates.apic_ids[..candidates.count] {
        let Some(s) = stacks.take().or_else(alloc_stacks) else {
            log::warn!(
                "no memory for the stacks of the core with APIC id {apic_id}; it and later cores left out"
            );
            break;
        };
        let launch = Launch {
            cr3: instr::read_cr3(),
            stack_top: s.stack_top,
            entry: ap_entry,
            ap_main,
            ist_top: s.ist_top,
            lapic_id_register: candidates.lapic_id_register,
            index: cores.count as u32,
            apic_id: u32::from(apic_id),
        };
        match start_one(&launch) {
            Ok(()) => cores.push(u32::from(apic_id)),
            Err(why) => {
                log::warn!("core with APIC id {apic_id} did not start ({why}); left out");
                // Reset it so it cannot go on later; then its stacks and
                // its core number go to the next core.
                if lapic::send_init(apic_id).is_err() {
                    // It may still run on its stacks: they stay allocated.
                    log::warn!("it could not be reset: no further cores started");
                    break;
                }
                stacks = Some(s);
            }
        }
    }
    if let Some(s) = stacks {
        memory::free(s.stack_top - AP_STACK_PAGES * memory::PAGE, AP_STACK_PAGES);
        memory::free(s.ist_top - AP_IST_PAGES * memory::PAGE, AP_IST_PAGES);
    }
    log::info!("{} of {} cores running", cores.count, candidates.count + 1);
}

/// Spins for `ticks` TSC ticks.
fn spin(ticks: u64) {
    let start = instr::rdtsc();
    while instr::rdtsc().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}

/// Spins until `done` or `ticks` TSC ticks have passed; returns `done()`.
fn spin_until(ticks: u64, done: impl Fn() -> bool) -> bool {
    let start = instr::rdtsc();
    while !done() {
        if instr::rdtsc().wrapping_sub(start) > ticks {
            return done();
        }
        core::hint::spin_loop();
    }
    true
}

/// INIT, then up to two start-up IPIs (SDM Vol. 3A, 9.4.4.1), then waits
/// for the core to check in.
fn start_one(launch: &Launch) -> Result<(), &'static str> {
    let apic_id = launch.apic_id as u8;
    let checked_in = || CHECKED_IN.load(Ordering::Acquire) == launch.index;
    CHECKED_IN.store(NOBODY, Ordering::Relaxed);
    // SAFETY: the trampoline is installed, and no core runs it: the last
    // one started has checked in (it runs Rust code by then) or was reset
    // with INIT.
    unsafe { trampoline::prepare(launch) };
    lapic::send_init(apic_id)?;
    spin(INIT_SETTLE_TICKS);
    for _ in 0..2 {
        lapic::send_startup(apic_id, trampoline::SIPI_VECTOR)?;
        if spin_until(SIPI_SETTLE_TICKS, checked_in) {
            return Ok(());
        }
    }
    if spin_until(CHECK_IN_TICKS, checked_in) {
        Ok(())
    } else {
        Err("no check-in")
    }
}

/// Where an application processor enters Rust from the trampoline, on its
/// own stack, with interrupts off and the boot page tables loaded.
extern "C" fn ap_entry(index: u32, ist_top: u64, ap_main: extern "C" fn(u32) -> !) -> ! {
    // SAFETY: this runs on the core the boot core is starting as `index`,
    // which waits for the check-in below before using slot `index` or the
    // IST stack for anything else; the IST stack was allocated for this
    // core and is never freed once it has checked in.
    if !unsafe { tables::init_ap(index as usize, ist_top) } {
        halt::fatal("an application processor was given a bad core number");
    }
    CHECKED_IN.store(index, Ordering::Release);
    ap_main(index)
}
