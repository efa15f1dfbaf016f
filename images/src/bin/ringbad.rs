//! `ringbad`: a hostile guest that drives net port 0 by hand (virtio 1.2
//! §4.2.3 and §3.1.1, rings in its own memory) and then publishes a corrupt
//! transmit ring, which the hypervisor must answer by stopping it with a
//! named reason while its link peer carries on.
//!
//! Arguments: `mode=oob` (a descriptor whose buffer starts at the end of
//! guest memory), `mode=loop` (two descriptors chained to each other with
//! `NEXT`), or `mode=idx` (the available index jumps ahead by more than the
//! queue size); `mode=rxwin` posts a receive buffer that ends just inside
//! guest memory, too close to its end for the 2 KiB a NIC may write behind
//! its header (a link takes it; an owned NIC must refuse it and stop the
//! guest); or `mode=mute`, a silent receiver: the port comes up but no
//! receive buffer is ever posted, and it exits 0 after `survive` ticks
//! (its link peer must not be stalled by it for good); `kick` also writes `QueueNotify` after publishing (by
//! default it relies on the polling core, as polled mode intends);
//! `survive=T` is how many TSC ticks to wait for the stop (default
//! 2,000,000,000). Exit codes: 1 if it is still running after that (the
//! hypervisor did not stop it), 2 for unusable arguments, 3 if the device
//! would not set up.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::alloc::{alloc_zeroed, dealloc};
use core::alloc::Layout;
use core::mem::offset_of;
use core::sync::atomic::{Ordering, fence};
use guest_lib::args::{Args, parse_u64};
use guest_lib::hypercall::wait_for_work;
use guest_lib::println;
use guest_lib::time::Instant;
use guest_lib::{BootInfo, mmio};
use vmm_abi::corral::devices::{DeviceKind, NET_HEADER_BYTES};
use vmm_abi::corral::layout::device_gpa;

guest_lib::entry!(ringbad);

/// Exit code when the hypervisor let the corrupt ring pass.
const EXIT_SURVIVED: i32 = 1;
/// Exit code for unusable arguments.
const EXIT_BAD_ARGS: i32 = 2;
/// Exit code when the device cannot be set up.
const EXIT_NO_DEVICE: i32 = 3;
/// Default ticks to wait for the hypervisor to act.
const DEFAULT_SURVIVE_TICKS: u64 = 2_000_000_000;
/// Ticks per `WaitForWork` call while waiting.
const WAIT_TICKS: u64 = 10_000_000;

/// The net port driven (slot 0).
const PORT: usize = 0;

/// virtio-mmio register offsets (virtio 1.2 §4.2.2), all 32-bit.
mod reg {
    pub const MAGIC_VALUE: usize = 0x000;
    pub const VERSION: usize = 0x004;
    pub const DEVICE_ID: usize = 0x008;
    pub const DEVICE_FEATURES: usize = 0x010;
    pub const DEVICE_FEATURES_SEL: usize = 0x014;
    pub const DRIVER_FEATURES: usize = 0x020;
    pub const DRIVER_FEATURES_SEL: usize = 0x024;
    pub const QUEUE_SEL: usize = 0x030;
    pub const QUEUE_NUM_MAX: usize = 0x034;
    pub const QUEUE_NUM: usize = 0x038;
    pub const QUEUE_READY: usize = 0x044;
    pub const QUEUE_NOTIFY: usize = 0x050;
    pub const STATUS: usize = 0x070;
    pub const QUEUE_DESC_LOW: usize = 0x080;
    pub const QUEUE_DESC_HIGH: usize = 0x084;
    pub const QUEUE_DRIVER_LOW: usize = 0x090;
    pub const QUEUE_DRIVER_HIGH: usize = 0x094;
    pub const QUEUE_DEVICE_LOW: usize = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: usize = 0x0a4;
}

/// Device status bits (virtio 1.2 §2.1).
mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
}

/// `MagicValue`: "virt".
const MAGIC_VALUE: u32 = u32::from_le_bytes(*b"virt");
/// `Version` of the modern interface.
const MMIO_VERSION: u32 = 2;
/// Virtio device ID of a network card.
const DEVICE_ID_NET: u32 = 1;
/// `VIRTIO_F_VERSION_1` is bit 32: bit 0 of feature word 1.
const VERSION_1_WORD: u32 = 1;
const VERSION_1_BIT: u32 = 1;
/// `VIRTQ_DESC_F_NEXT` (§2.7.5).
const DESC_F_NEXT: u16 = 1;
/// `VIRTQ_DESC_F_WRITE` (§2.7.5): the device writes the buffer.
const DESC_F_WRITE: u16 = 2;
/// Bytes of the `rxwin` receive buffer: room for a full frame behind the
/// header, but less than the header plus a NIC's 2 KiB write window.
const RX_WINDOW_BUFFER: u32 = 1600;
/// receiveq1 and transmitq1 (§5.1.2).
const RECEIVE_QUEUE: u32 = 0;
const TRANSMIT_QUEUE: u32 = 1;
/// Bits in a 32-bit register half of a 64-bit address.
const HALF_BITS: u32 = 32;

/// Entries in each ring this guest sets up.
const QUEUE_SIZE: usize = 16;
/// Bytes of the frame each valid descriptor carries (header included).
const BUFFER_BYTES: u32 = 64;

/// A split-virtqueue descriptor (§2.7.5).
#[repr(C)]
#[derive(Clone, Copy)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

/// The available ring (§2.7.6).
#[repr(C)]
struct Avail {
    flags: u16,
    idx: u16,
    ring: [u16; QUEUE_SIZE],
    used_event: u16,
}

/// A used-ring element (§2.7.8).
#[repr(C)]
struct UsedElem {
    id: u32,
    len: u32,
}

/// The used ring (§2.7.8).
#[repr(C)]
struct Used {
    flags: u16,
    idx: u16,
    ring: [UsedElem; QUEUE_SIZE],
    avail_event: u16,
}

/// One queue's rings and a packet buffer, on a page of their own.
#[repr(C, align(4096))]
struct QueueMem {
    desc: [Desc; QUEUE_SIZE],
    avail: Avail,
    used: Used,
    buffer: [u8; 2 * BUFFER_BYTES as usize],
}

// Alignments of §2.7 (descriptor table 16, available ring 2, used ring 4)
// and a header in front of the frame.
const _: () = assert!(offset_of!(QueueMem, desc) % 16 == 0);
const _: () = assert!(offset_of!(QueueMem, avail) % 2 == 0);
const _: () = assert!(offset_of!(QueueMem, used) % 4 == 0);
const _: () = assert!(size_of::<QueueMem>() <= 4096);
const _: () = assert!(BUFFER_BYTES as usize > NET_HEADER_BYTES);

/// How to corrupt the transmit ring.
#[derive(Clone, Copy)]
enum Mode {
    OutOfBounds,
    Loop,
    IndexJump,
    RxWindow,
    Mute,
}

impl Mode {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "oob" => Mode::OutOfBounds,
            "loop" => Mode::Loop,
            "idx" => Mode::IndexJump,
            "rxwin" => Mode::RxWindow,
            "mute" => Mode::Mute,
            _ => return None,
        })
    }
}

/// The register page of a device slot.
struct Regs {
    base: usize,
}

impl Regs {
    fn read(&self, offset: usize) -> u32 {
        // SAFETY: `base` is the register page of a device slot the boot
        // info lists (checked in `ringbad`), identity-mapped and outside
        // guest RAM; `offset` is one of the aligned register offsets of
        // `reg`. The hypervisor emulates the single `mov` this is.
        unsafe { mmio::read_u32((self.base + offset) as *const u32) }
    }

    fn write(&self, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { mmio::write_u32((self.base + offset) as *mut u32, value) }
    }

    fn write_addr(&self, low: usize, high: usize, addr: u64) {
        self.write(low, addr as u32);
        self.write(high, (addr >> HALF_BITS) as u32);
    }
}

fn ringbad(info: &BootInfo) -> i32 {
    let args = Args::new(info.args);
    let Some(mode) = args.value("mode").and_then(Mode::parse) else {
        println!("ringbad: needs mode=oob, mode=loop, mode=idx, mode=rxwin or mode=mute");
        return EXIT_BAD_ARGS;
    };
    let survive = match args.value("survive").map(parse_u64) {
        None => DEFAULT_SURVIVE_TICKS,
        Some(Some(ticks)) => ticks,
        Some(None) => {
            println!("ringbad: survive= must be a number of ticks");
            return EXIT_BAD_ARGS;
        }
    };
    if info.devices[PORT] != DeviceKind::Net {
        println!("ringbad: the boot info lists no net port {PORT}");
        return EXIT_NO_DEVICE;
    }
    let regs = Regs {
        base: device_gpa(PORT) as usize,
    };
    let Some([rx, tx]) = set_up(&regs) else {
        return EXIT_NO_DEVICE;
    };
    if let Mode::Mute = mode {
        println!("ringbad: port up; posting no receive buffer for {survive} ticks");
        let start = Instant::now();
        while start.elapsed_ticks() < survive {
            wait_for_work(WAIT_TICKS);
        }
        println!("ringbad: silent receiver done");
        return 0;
    }

    let ring = if let Mode::RxWindow = mode { rx } else { tx };
    corrupt(ring, mode, info.memory_size);
    println!(
        "ringbad: published a corrupt ring ({}); waiting to be stopped",
        name(mode)
    );
    if args.flag("kick") {
        regs.write(reg::QUEUE_NOTIFY, TRANSMIT_QUEUE);
    }
    let start = Instant::now();
    while start.elapsed_ticks() < survive {
        wait_for_work(WAIT_TICKS);
    }
    println!("ringbad: still running {survive} ticks later; the hypervisor did not stop me");
    EXIT_SURVIVED
}

fn name(mode: Mode) -> &'static str {
    match mode {
        Mode::OutOfBounds => "descriptor buffer outside guest memory",
        Mode::Loop => "descriptor chain loop",
        Mode::IndexJump => "available index beyond the queue size",
        Mode::RxWindow => "receive buffer too close to the end of memory for a NIC",
        Mode::Mute => "no receive buffers",
    }
}

/// Initializes the device (§3.1.1 through §4.2.3.2) with both queues in
/// fresh pages; the queues' memory, or `None` after saying why not.
fn set_up(regs: &Regs) -> Option<[*mut QueueMem; 2]> {
    let magic = regs.read(reg::MAGIC_VALUE);
    let version = regs.read(reg::VERSION);
    let device = regs.read(reg::DEVICE_ID);
    if magic != MAGIC_VALUE || version != MMIO_VERSION || device != DEVICE_ID_NET {
        println!(
            "ringbad: slot {PORT}: magic {magic:#x}, version {version}, device {device}: not a modern virtio-net device"
        );
        return None;
    }
    regs.write(reg::STATUS, 0);
    regs.write(reg::STATUS, status::ACKNOWLEDGE);
    regs.write(reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    regs.write(reg::DEVICE_FEATURES_SEL, VERSION_1_WORD);
    if regs.read(reg::DEVICE_FEATURES) & VERSION_1_BIT == 0 {
        println!("ringbad: the device does not offer VIRTIO_F_VERSION_1");
        return None;
    }
    regs.write(reg::DRIVER_FEATURES_SEL, 0);
    regs.write(reg::DRIVER_FEATURES, 0);
    regs.write(reg::DRIVER_FEATURES_SEL, VERSION_1_WORD);
    regs.write(reg::DRIVER_FEATURES, VERSION_1_BIT);
    let features_ok = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
    regs.write(reg::STATUS, features_ok);
    if regs.read(reg::STATUS) & status::FEATURES_OK == 0 {
        println!("ringbad: the device refused VIRTIO_F_VERSION_1 alone");
        return None;
    }
    let mut queues = [core::ptr::null_mut(); 2];
    for (queue, mem) in [RECEIVE_QUEUE, TRANSMIT_QUEUE].into_iter().zip(&mut queues) {
        *mem = set_up_queue(regs, queue)?;
    }
    regs.write(reg::STATUS, features_ok | status::DRIVER_OK);
    println!("ringbad: port {PORT} is up with {QUEUE_SIZE}-entry rings");
    Some(queues)
}

/// Sets up `queue` (§4.2.3.2) on a zeroed page of its own.
fn set_up_queue(regs: &Regs, queue: u32) -> Option<*mut QueueMem> {
    regs.write(reg::QUEUE_SEL, queue);
    let max = regs.read(reg::QUEUE_NUM_MAX);
    if regs.read(reg::QUEUE_READY) != 0 || (max as usize) < QUEUE_SIZE {
        println!("ringbad: queue {queue} is busy or holds only {max} entries");
        return None;
    }
    let layout = Layout::new::<QueueMem>();
    // SAFETY: `QueueMem` has a non-zero size.
    let mem = unsafe { alloc_zeroed(layout) }.cast::<QueueMem>();
    if mem.is_null() {
        println!("ringbad: no memory for queue {queue}");
        return None;
    }
    regs.write(reg::QUEUE_NUM, QUEUE_SIZE as u32);
    let base = mem as usize as u64;
    regs.write_addr(
        reg::QUEUE_DESC_LOW,
        reg::QUEUE_DESC_HIGH,
        base + offset_of!(QueueMem, desc) as u64,
    );
    regs.write_addr(
        reg::QUEUE_DRIVER_LOW,
        reg::QUEUE_DRIVER_HIGH,
        base + offset_of!(QueueMem, avail) as u64,
    );
    regs.write_addr(
        reg::QUEUE_DEVICE_LOW,
        reg::QUEUE_DEVICE_HIGH,
        base + offset_of!(QueueMem, used) as u64,
    );
    regs.write(reg::QUEUE_READY, 1);
    if regs.read(reg::QUEUE_READY) != 1 {
        println!("ringbad: queue {queue} did not become ready");
        // SAFETY: allocated above with `layout`; the device did not take it.
        unsafe { dealloc(mem.cast(), layout) };
        return None;
    }
    Some(mem)
}

/// Writes the corrupt descriptors of `mode` into the queue `tx` and publishes them.
/// Addresses are guest-physical, which equal virtual ones (identity map).
///
/// Every access to `tx` here is sound for the same reasons: `tx` is the
/// zeroed, live allocation from `set_up_queue`, never freed; no Rust
/// reference to it exists; the device only reads the descriptor table and
/// available ring written here and writes the used ring, which is not
/// read; and the allocation has `QueueMem`'s alignment.
fn corrupt(tx: *mut QueueMem, mode: Mode, memory_size: u64) {
    let buffer = tx as usize as u64 + offset_of!(QueueMem, buffer) as u64;
    let (descs, published): (&[Desc], u16) = match mode {
        Mode::OutOfBounds => (
            &[Desc {
                addr: memory_size,
                len: BUFFER_BYTES,
                flags: 0,
                next: 0,
            }],
            1,
        ),
        Mode::Loop => (
            &[
                Desc {
                    addr: buffer,
                    len: BUFFER_BYTES,
                    flags: DESC_F_NEXT,
                    next: 1,
                },
                Desc {
                    addr: buffer + u64::from(BUFFER_BYTES),
                    len: BUFFER_BYTES,
                    flags: DESC_F_NEXT,
                    next: 0,
                },
            ],
            1,
        ),
        Mode::IndexJump => (
            &[Desc {
                addr: buffer,
                len: BUFFER_BYTES,
                flags: 0,
                next: 0,
            }],
            QUEUE_SIZE as u16 + 1,
        ),
        Mode::RxWindow => (
            &[Desc {
                addr: memory_size - u64::from(RX_WINDOW_BUFFER),
                len: RX_WINDOW_BUFFER,
                flags: DESC_F_WRITE,
                next: 0,
            }],
            1,
        ),
        Mode::Mute => (&[], 0),
    };
    for (i, desc) in descs.iter().enumerate() {
        // SAFETY: see the function's doc; `i` < 2 <= QUEUE_SIZE.
        unsafe { (&raw mut (*tx).desc[i]).write_volatile(*desc) };
    }
    // Every available entry names descriptor 0 (the ring is zeroed), so
    // only the index needs writing: after the descriptors (§2.7.13).
    fence(Ordering::SeqCst);
    // SAFETY: see the function's doc.
    unsafe { (&raw mut (*tx).avail.idx).write_volatile(published) };
    fence(Ordering::SeqCst);
}
