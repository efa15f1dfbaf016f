//! The virtio-console path of `print!` (feature `virtio-console`): when the
//! boot info lists a console, the entry path opens it and formatted output
//! goes through its transmit queue (virtio 1.2 §5.3.6) instead of the
//! `ConsoleWrite` hypercall. Each piece of output is one buffer and one
//! notification (the Corral device drains the queue when notified, so a
//! line still costs one VM exit). If the device cannot be set up, or stops
//! completing buffers, output falls back to the hypercall for good.

use super::{AllocFailed, CorralHal, PageBuf};
use crate::BootInfo;
use core::fmt;
use core::ptr::NonNull;
use virtio_drivers::PAGE_SIZE;
use virtio_drivers::device::common::Feature;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::mmio::{MmioError, MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceStatus, DeviceType, Transport};
use vmm_abi::corral::devices::DeviceKind;
use vmm_abi::corral::layout::{DEVICE_STRIDE, device_gpa};

/// transmitq of port 0 (§5.3.2).
const TRANSMIT_QUEUE: u16 = 1;
/// Ring entries: output is sent one buffer at a time.
const QUEUE_SIZE: usize = 4;
/// Bytes sent per buffer; longer output takes several.
const BUFFER_BYTES: usize = PAGE_SIZE;
/// TSC ticks to wait for the device to use a buffer before giving up on it.
const COMPLETION_TICKS: u64 = 50_000_000;

/// Why the virtio-console is not used.
#[derive(Clone, Debug, PartialEq, Eq)]
// Opening happens only on the entry path, which exists only on the
// bare-metal target; host builds keep the code for tests and lints.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) enum ConsoleError {
    /// The slot's register page is not a usable virtio-mmio header.
    Mmio(MmioError),
    /// The slot holds another kind of virtio device.
    NotConsole(u32),
    /// The device speaks the legacy (version 1) interface.
    Legacy,
    /// The device does not offer `VIRTIO_F_VERSION_1`.
    NoVersion1,
    /// The device did not accept `VIRTIO_F_VERSION_1` alone.
    FeaturesRefused,
    /// The transmit queue is smaller than the driver's ring.
    QueueTooSmall(u32),
    /// No memory for the buffer.
    Alloc(AllocFailed),
    /// `virtio-drivers` reported an error.
    Virtio(virtio_drivers::Error),
    /// The device did not use a buffer within [`COMPLETION_TICKS`].
    Timeout,
}

impl fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsoleError::Mmio(e) => write!(f, "bad virtio-mmio header: {e}"),
            ConsoleError::NotConsole(id) => {
                write!(f, "not a console (virtio device ID {id})")
            }
            ConsoleError::Legacy => f.write_str("legacy (version 1) virtio-mmio device"),
            ConsoleError::NoVersion1 => f.write_str("VIRTIO_F_VERSION_1 not offered"),
            ConsoleError::FeaturesRefused => f.write_str("FEATURES_OK not accepted"),
            ConsoleError::QueueTooSmall(max) => write!(
                f,
                "transmit queue holds {max} entries, the driver needs {QUEUE_SIZE}"
            ),
            ConsoleError::Alloc(e) => write!(f, "allocation of {} bytes failed", e.bytes),
            ConsoleError::Virtio(e) => write!(f, "virtio error: {e}"),
            ConsoleError::Timeout => write!(
                f,
                "the device did not take a buffer within {COMPLETION_TICKS} ticks"
            ),
        }
    }
}

impl From<virtio_drivers::Error> for ConsoleError {
    fn from(e: virtio_drivers::Error) -> Self {
        ConsoleError::Virtio(e)
    }
}

/// A virtio-console driven for output only.
///
/// Field order is drop order: the transport resets the device before the
/// ring and the buffer are freed.
struct VirtioConsole<T: Transport> {
    transport: T,
    tx: VirtQueue<CorralHal, QUEUE_SIZE>,
    buf: PageBuf,
}

impl<T: Transport> VirtioConsole<T> {
    /// Initializes the device (§3.1.1) with its transmit queue.
    #[cfg_attr(not(target_os = "none"), allow(dead_code))]
    fn new(mut transport: T) -> Result<Self, ConsoleError> {
        if transport.device_type() != DeviceType::Console {
            return Err(ConsoleError::NotConsole(transport.device_type() as u32));
        }
        if transport.requires_legacy_layout() {
            return Err(ConsoleError::Legacy);
        }
        if transport.read_device_features() & Feature::VERSION_1.bits() == 0 {
            return Err(ConsoleError::NoVersion1);
        }
        let max = transport.max_queue_size(TRANSMIT_QUEUE);
        if max < QUEUE_SIZE as u32 {
            return Err(ConsoleError::QueueTooSmall(max));
        }
        let buf = PageBuf::zeroed(BUFFER_BYTES).map_err(ConsoleError::Alloc)?;
        debug_assert!(buf.len() >= BUFFER_BYTES);
        transport.begin_init(Feature::VERSION_1);
        if !transport.get_status().contains(DeviceStatus::FEATURES_OK) {
            transport.set_status(DeviceStatus::empty());
            return Err(ConsoleError::FeaturesRefused);
        }
        let tx = VirtQueue::new(&mut transport, TRANSMIT_QUEUE, false, false)?;
        transport.finish_init();
        Ok(VirtioConsole { transport, tx, buf })
    }

    /// Sends `bytes`, one buffer at a time, waiting for each to be used.
    fn write(&mut self, bytes: &[u8]) -> Result<(), ConsoleError> {
        for chunk in bytes.chunks(BUFFER_BYTES) {
            // SAFETY: the buffer is `BUFFER_BYTES` long (at least, it was
            // rounded to pages), owned by this console, and not in flight:
            // every earlier chunk was used and popped before this one.
            let buf =
                unsafe { core::slice::from_raw_parts_mut(self.buf.base().as_ptr(), chunk.len()) };
            buf.copy_from_slice(chunk);
            let out: &[u8] = buf;
            // SAFETY: `out` is not touched until it is popped below, or, on
            // a timeout, ever again (the console is then dropped, which
            // resets the device before the buffer is freed).
            let token = unsafe { self.tx.add(&[out], &mut []) }?;
            if self.tx.should_notify() {
                self.transport.notify(TRANSMIT_QUEUE);
            }
            let start = crate::arch::rdtsc();
            while !self.tx.can_pop() {
                if crate::arch::rdtsc().saturating_sub(start) > COMPLETION_TICKS {
                    return Err(ConsoleError::Timeout);
                }
                core::hint::spin_loop();
            }
            // SAFETY: `out` is the buffer added under `token`.
            unsafe { self.tx.pop_used(token, &[out], &mut []) }?;
        }
        Ok(())
    }
}

/// The console, once opened.
static CONSOLE: spin::Mutex<Option<VirtioConsole<MmioTransport<'static>>>> = spin::Mutex::new(None);

/// Opens the virtio-console the boot info lists, if any: `None` if it lists
/// none, otherwise whether it could be set up. Called once, by the entry
/// path (bare-metal target only).
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn init(info: &BootInfo) -> Option<Result<(), ConsoleError>> {
    let slot = info
        .devices
        .iter()
        .position(|&k| k == DeviceKind::Console)?;
    let mut console = CONSOLE.lock();
    if console.is_some() {
        return Some(Ok(()));
    }
    let header = NonNull::new(device_gpa(slot) as usize as *mut VirtIOHeader)?;
    // SAFETY: the boot info says slot `slot` is a virtio-console, so the
    // hypervisor provides a virtio-mmio register page there (identity-mapped,
    // outside guest RAM) for the VM's whole life, hence `'static`. This is
    // the only transport ever made for it: `CONSOLE` holds it, and a second
    // call finds it there. Accesses are the single `mov`s of
    // `crate::mmio`, which the hypervisor emulates.
    let opened = unsafe { MmioTransport::new(header, DEVICE_STRIDE as usize) }
        .map_err(ConsoleError::Mmio)
        .and_then(VirtioConsole::new);
    Some(opened.map(|c| *console = Some(c)))
}

/// Writes `bytes` to the virtio-console; `false` if there is none (then the
/// caller uses the hypercall). A console that fails is dropped (reset), so
/// later output takes the hypercall.
pub(crate) fn write(bytes: &[u8]) -> bool {
    // Never wait for the lock: a panic while printing must still print.
    let Some(mut console) = CONSOLE.try_lock() else {
        return false;
    };
    let Some(c) = console.as_mut() else {
        return false;
    };
    match c.write(bytes) {
        Ok(()) => true,
        Err(_) => {
            *console = None;
            false
        }
    }
}

#[cfg(test)]
mod tests;
