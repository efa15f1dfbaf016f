//! Polled virtio-net ports (feature `net`): [`NetPort`], a driver for the
//! virtio-mmio network devices the boot info lists, built on the
//! `virtio-drivers` crate; [`Idle`], spin-then-wait idling; and the
//! end-of-stream control frame ([`is_end_of_stream`]).
//!
//! # Polled mode
//!
//! A hypervisor core polls the rings of linked ports and moves frames
//! between VMs; the device suppresses kicks and never interrupts. So a
//! guest never relies on interrupts: it polls its used rings (plain memory
//! reads, no VM exit), and when a poll finds nothing it calls
//! [`Idle::idle`], which spins a little and then waits in the hypervisor
//! ([`wait_for_work`](crate::hypercall::wait_for_work)) until a frame
//! arrives or a transmission completes.
//!
//! ```no_run
//! # fn run(info: &guest_lib::BootInfo) -> Result<(), guest_lib::net::NetError> {
//! use guest_lib::net::{Idle, NetPort};
//! use vmm_abi::corral::devices::MAX_FRAME_BYTES;
//! let mut port = NetPort::open(info, 0)?;
//! let mut idle = Idle::new(Idle::DEFAULT_SPIN_TICKS, 1_000_000_000);
//! let mut frame = [0u8; MAX_FRAME_BYTES];
//! loop {
//!     match port.recv(&mut frame)? {
//!         Some(len) => {
//!             idle.reset();
//!             while !port.send(&frame[..len])? {} // ring full: retry
//!         }
//!         None if idle.idle() => {}
//!         None => return Ok(()), // idle timeout
//!     }
//! }
//! # }
//! ```
//!
//! # Memory
//!
//! Each open port takes [`PORT_HEAP_BYTES`] (528 KiB) from the heap: a pool
//! of [`QUEUE_SIZE`] receive buffers of [`RX_BUFFER_BYTES`], all posted at
//! open; a pool of [`QUEUE_SIZE`] transmit buffers of [`TX_BUFFER_BYTES`]
//! that frames are copied into (no allocation per packet); and one page
//! each for the driver and device areas of the two rings. The [`NetPort`]
//! value itself is about 5.6 KiB (the driver's shadow descriptor tables).
//! A VM with two ports needs 1056 KiB of heap for them, so 4 MiB of guest
//! memory leaves plenty for the image and its stack.
//!
//! # Trust
//!
//! Values the device writes (used-ring ids and lengths, configuration) are
//! checked: a device that breaks the ring rules gets a
//! [`NetError::Protocol`], never a panic. Running out of heap is
//! [`NetError::AllocFailed`].

mod control;
mod driver;
mod error;
mod idle;
mod port;
mod slots;
#[cfg(feature = "smoltcp")]
pub mod smoltcp;
#[cfg(test)]
mod tests;

pub use control::{END_ETHERTYPE, END_MAGIC, ETHERNET_HEADER_BYTES, is_end_of_stream};
pub use error::{NetError, Protocol, Refusal};
pub use idle::Idle;
pub use port::NetPort;

use virtio_drivers::PAGE_SIZE;
use vmm_abi::corral::devices::RX_BUFFER_BYTES;

/// Entries in each of a port's two rings, and buffers in each pool. The
/// device allows up to 256; 128 keeps two ports well inside a 4 MiB guest.
pub const QUEUE_SIZE: usize = 128;
/// Bytes of each transmit buffer: the virtio-net header and a full frame,
/// rounded up like the receive buffers.
pub const TX_BUFFER_BYTES: usize = 2048;
/// Pages per ring: one for the descriptor table and available ring, one
/// for the used ring (`virtio-drivers`' modern layout, [`QUEUE_SIZE`]
/// entries).
const RING_PAGES: usize = 2;
/// Rings per port: receive and transmit.
const RINGS_PER_PORT: usize = 2;
/// Heap bytes one open [`NetPort`] holds: both buffer pools and the rings.
pub const PORT_HEAP_BYTES: usize =
    QUEUE_SIZE * (RX_BUFFER_BYTES + TX_BUFFER_BYTES) + RINGS_PER_PORT * RING_PAGES * PAGE_SIZE;

/// Bytes of a split-virtqueue descriptor (virtio 1.2 §2.7.5).
const DESCRIPTOR_BYTES: usize = 16;
/// Bytes of an available-ring entry (§2.7.6).
const AVAIL_ENTRY_BYTES: usize = 2;
/// Bytes of a used-ring element (§2.7.8).
const USED_ELEMENT_BYTES: usize = 8;
/// Bytes of the `flags`, `idx` and event fields of either ring.
const RING_FIELD_BYTES: usize = 6;

const _: () = assert!(QUEUE_SIZE.is_power_of_two() && QUEUE_SIZE <= 256);
// Each ring part fits the one page `RING_PAGES` counts for it.
const _: () = assert!(
    DESCRIPTOR_BYTES * QUEUE_SIZE + RING_FIELD_BYTES + AVAIL_ENTRY_BYTES * QUEUE_SIZE <= PAGE_SIZE
);
const _: () = assert!(RING_FIELD_BYTES + USED_ELEMENT_BYTES * QUEUE_SIZE <= PAGE_SIZE);
