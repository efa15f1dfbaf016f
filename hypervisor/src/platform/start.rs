//! Start-up and the top-level flow: console, CPU tables, boot information,
//! frames, manifest, images, VMX capabilities, the other cores; then every
//! core runs its share of the VMs (`run.rs`), and the boot core reports
//! `done` and powers off when all have ended.

use super::halt::{fatal, fatal_fmt, power_off};
use super::instr::{self, outb};
use super::run::Plan;
use super::{blocks, images, jit, memory, paging, serial, smp, tables, vmx};
use crate::multiboot::{self, BOOTLOADER_MAGIC, BootInformation, Region};
use crate::vmx::caps;
use spin::Once;
use vmm_abi::ABI_VERSION;
use vmm_abi::manifest::Manifest;
use vmm_abi::manifest::modules::{self, ModuleKind};
use vmm_abi::report::Record;

/// Below 1 MiB lie the BIOS data, the EBDA and option ROMs.
const LOW_MEMORY_END: u64 = 0x10_0000;
const PIC1_DATA: u16 = 0x21;
const PIC2_DATA: u16 = 0xa1;
const PIC_MASK_ALL: u8 = 0xff;

unsafe extern "C" {
    static __hypervisor_start: u8;
    static __hypervisor_end: u8;
}

fn mask_legacy_pic() {
    // SAFETY: the 8259 PICs belong to the hypervisor; masking every line
    // keeps legacy interrupts away from the host and the guests.
    unsafe {
        outb(PIC1_DATA, PIC_MASK_ALL);
        outb(PIC2_DATA, PIC_MASK_ALL);
    }
}

fn init_frames(info: &BootInformation<'_>, mbi: Region) {
    for r in info.available() {
        memory::add(*r);
    }
    // Only the addresses of the linker symbols are taken.
    let (start, end) = (
        &raw const __hypervisor_start as u64,
        &raw const __hypervisor_end as u64,
    );
    memory::reserve(Region {
        start: 0,
        end: LOW_MEMORY_END,
    });
    memory::reserve(Region { start, end });
    memory::reserve(mbi);
    for m in info.modules() {
        memory::reserve(m.region);
    }
}

static PLAN: Once<Plan> = Once::new();

/// Entered from the boot assembly in long mode, on the boot stack.
#[unsafe(no_mangle)]
pub extern "C" fn corral_main(magic: u32, mbi: u64) -> ! {
    serial::init();
    serial::init_logger();
    tables::init();
    // W^X before anything else: code read-execute, data never executable.
    paging::protect();
    mask_legacy_pic();
    log::info!(
        "Corral hypervisor {} (ABI {ABI_VERSION})",
        env!("CARGO_PKG_VERSION")
    );
    if magic != BOOTLOADER_MAGIC {
        fatal_fmt(format_args!(
            "not started by a Multiboot2 boot loader (magic {magic:#x})"
        ));
    }
    // SAFETY: a Multiboot2 loader passes the address of its information
    // structure, which starts with its total size (u32) and lies in RAM
    // below 4 GiB (identity mapped).
    let total = u64::from(unsafe { (mbi as *const u32).read() });
    // SAFETY: as above; the structure is `total` bytes long and is reserved
    // from the allocator before any frame is handed out.
    let bytes = unsafe { core::slice::from_raw_parts(mbi as *const u8, total as usize) };
    let info = multiboot::parse(bytes).unwrap_or_else(|e| fatal_fmt(format_args!("{e}")));
    init_frames(
        &info,
        Region {
            start: mbi,
            end: mbi + total,
        },
    );

    let mut manifest_bytes = None;
    for m in info.modules() {
        if modules::classify(m.cmdline) == ModuleKind::Manifest {
            // SAFETY: a module the loader placed in RAM, reserved above.
            manifest_bytes = Some(unsafe { memory::module_bytes(m.region) });
        }
    }
    let Some(manifest_bytes) = manifest_bytes else {
        fatal("no manifest module (one whose command line says `corral-manifest`)")
    };
    let manifest: Manifest<'static> = Manifest::parse(manifest_bytes)
        .and_then(|m| m.check_capability().map(|()| m))
        .unwrap_or_else(|e| fatal_fmt(format_args!("{e}")));
    let image_of = |name: &str| {
        info.modules()
            .find_map(|m| match modules::classify(m.cmdline) {
                ModuleKind::Image(n) if n == name => {
                    // SAFETY: a module the loader placed in RAM, reserved above.
                    Some((n, unsafe { memory::module_bytes(m.region) }))
                }
                _ => None,
            })
    };
    for (i, vm) in manifest.iter().enumerate() {
        if image_of(vm.image).is_none() {
            fatal_fmt(format_args!(
                "manifest vm {i} ('{}'): field `image`: no boot module holds image `{}`",
                vm.name, vm.image
            ));
        }
    }
    blocks::set_up(
        manifest
            .blocks()
            .collect::<heapless::Vec<_, { vmm_abi::manifest::MAX_BLOCKS as usize }>>()
            .into_iter(),
        |name| {
            info.modules()
                .find_map(|m| match modules::classify(m.cmdline) {
                    ModuleKind::Block(n) if n == name => Some(m.region),
                    _ => None,
                })
        },
    );
    if !images::load_all(manifest.iter().map(|v| v.image), image_of) {
        fatal_fmt(format_args!(
            "the manifest uses more than {} images",
            images::MAX_IMAGES
        ));
    }

    let config = caps::check(&vmx::read_caps())
        .unwrap_or_else(|r| fatal_fmt(format_args!("cannot run guests: {r}")));
    let timeslice = match manifest.timeslice() {
        0 => vmx::DEFAULT_TIMESLICE,
        t => t,
    };
    let shared = vmx::setup_shared(config, timeslice)
        .unwrap_or_else(|e| fatal_fmt(format_args!("cannot enable VMX: {e}")));
    let cores = smp::bring_up(&info, ap_main);
    // Every core is up: the start-up page is data from now on.
    paging::seal();
    let pages = paging::audit();
    serial::record(&Record::Paging {
        exec: pages.exec,
        writable: pages.writable,
        writable_exec: pages.writable_exec,
    });
    if pages.writable_exec != 0 {
        fatal_fmt(format_args!(
            "{} pages are both writable and executable after boot",
            pages.writable_exec
        ));
    }
    serial::record(&Record::Hypervisor {
        abi: ABI_VERSION,
        cores: cores.len() as u32,
        free: memory::free_bytes(),
    });
    let plan = Plan::build(&manifest, cores, shared)
        .unwrap_or_else(|e| fatal_fmt(format_args!("cannot plan the run: {e}")));
    // Every hook is compiled: the JIT's code area becomes read-execute
    // before any other core can see a hook (they see the plan below).
    let jit_bytes = jit::seal();
    if jit_bytes != 0 {
        log::info!("JIT: {jit_bytes} bytes of compiled hooks, read-execute");
    }
    // Before the plan is published: application processors start running
    // their VMs as soon as they see it.
    plan.report_unplaced();
    let plan = PLAN.call_once(|| plan);
    vmx::enable_core(&plan.shared)
        .unwrap_or_else(|e| fatal_fmt(format_args!("cannot enable VMX on core 0: {e}")));
    log::info!(
        "running {} VMs on {} cores ({} MiB free)",
        plan.count(),
        plan.cores().len(),
        memory::free_bytes() >> 20
    );
    plan.run_core(0);
    plan.wait_all();
    plan.report_links();
    blocks::report();
    plan.print_summary();
    serial::record(&Record::Done {
        vms: plan.count() as u32,
    });
    power_off()
}

/// Where each application processor goes once it is up: wait for the plan,
/// enter VMX operation, run this core's VMs, then halt.
extern "C" fn ap_main(core: u32) -> ! {
    let plan = loop {
        if let Some(p) = PLAN.get() {
            break p;
        }
        core::hint::spin_loop();
    };
    // The start-up page was sealed before the plan was published; this
    // core may still hold its old (writable, executable) translation.
    paging::flush();
    if let Err(e) = vmx::enable_core(&plan.shared) {
        fatal_fmt(format_args!("cannot enable VMX on core {core}: {e}"));
    }
    plan.run_core(core);
    loop {
        instr::cli();
        instr::hlt();
    }
}
