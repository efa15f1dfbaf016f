//! Corral's unikernel library OS: the code every guest image links to boot,
//! talk to the hypervisor and end.
//!
//! An image is a few lines:
//!
//! ```no_run
//! #![cfg_attr(target_os = "none", no_std, no_main)]
//! guest_lib::entry!(hello);
//! fn hello(info: &guest_lib::BootInfo) -> i32 {
//!     guest_lib::println!("Hello from {}", info.name);
//!     0
//! }
//! ```
//!
//! [`entry!`] provides `_start`, which checks the boot info, sets up the heap,
//! reports [`hypercall::main_started`] and calls the function; its return
//! value becomes the exit code. Images link with `guest.ld` (next to this
//! crate's `Cargo.toml`), which places them at
//! [`vmm_abi::corral::layout::IMAGE_BASE_GPA`].
//!
//! # Cargo features
//!
//! Every component beyond the entry path is optional and costs nothing when
//! left out. `console`, `alloc` and `time` are on by default. All virtio
//! drivers touch device registers only through [`mmio`].
//!
//! | feature | provides |
//! |---|---|
//! | `console` | `print!` and `println!`: formatted output through [`hypercall::console_write`], buffered per call and sent in chunks of at most [`vmm_abi::corral::hypercall::MAX_CONSOLE_WRITE`] bytes; the panic handler and the boot checks print why they stop |
//! | `alloc` | a global allocator (`talc`) over the heap region the boot info describes, so images can use the `alloc` crate |
//! | `time` | `time::rdtsc` and `time::Instant`, time in TSC ticks (one tick per instruction under the emulator) |
//! | `net` (implies `alloc`, `time`) | `net::NetPort`, a polled virtio-net driver on `virtio-drivers` for the ports the boot info lists (fixed buffer pools, no allocation per packet, device values checked); `net::Idle`, spin-then-[`hypercall::wait_for_work`] idling; the end-of-stream control frame (`net::is_end_of_stream`) |
//! | `smoltcp` (implies `net`) | `net::smoltcp::SmoltcpPort`, a `smoltcp::phy::Device` over a `NetPort` that flags the end-of-stream frame; `smoltcp` itself (0.14: Ethernet, IPv4, UDP, `alloc`) re-exported as `guest_lib::smoltcp` |
//! | `virtio-console` (implies `console`, `alloc`, `time`) | `print!` through the virtio-console (one buffer and one notification per piece of output) when the boot info lists one; the console hypercall when it does not, and for good if the device fails |
//!
//! Always present: [`hvt`] (a minimal Solo5 hvt runtime for hvt test
//! images: [`hvt_entry!`], linked with `hvt.ld`), [`hypercall`] (the raw `vmcall` and typed wrappers,
//! [`hypercall::wait_for_work`] among them), [`args`] (parsing the
//! manifest's argument string), [`mmio`] (device-register loads and stores
//! the hypervisor can emulate), [`entry!`], and on the bare-metal target the
//! panic handler, which prints `panic: <message>` (with `console`) and
//! exits with [`exit_code::PANIC`].
//!
//! Everything compiles on the host as well, so the workspace can be tested
//! and linted there; the bare-metal-only items (`_start`, the panic handler,
//! the global allocator) exist only when `target_os = "none"`.
#![cfg_attr(not(test), no_std)]

#[cfg(feature = "alloc")]
extern crate alloc;

mod arch;
pub mod args;
#[cfg(feature = "blk")]
pub mod blk;
#[cfg(feature = "console")]
pub mod console;
pub mod entry;
#[cfg(feature = "alloc")]
pub mod heap;
pub mod hvt;
pub mod hypercall;
pub mod mmio;
#[cfg(feature = "net")]
pub mod net;
mod panic;
#[cfg(feature = "time")]
pub mod time;
#[cfg(any(feature = "net", feature = "virtio-console", feature = "blk"))]
mod virtio;

/// The `smoltcp` crate guest-lib is built with (feature `smoltcp`), so
/// images use exactly the version `net::smoltcp` adapts to.
#[cfg(feature = "smoltcp")]
pub use ::smoltcp;

/// The checked boot info an image's main function receives.
pub type BootInfo = vmm_abi::corral::bootinfo::BootInfo<'static>;
pub use vmm_abi::corral::bootinfo::BootInfoRaw;

/// Exit codes guest-lib itself ends a guest with.
pub mod exit_code {
    /// The image panicked.
    pub const PANIC: i32 = 101;
    /// The boot info (or the heap it describes) was unusable.
    pub const BAD_BOOT_INFO: i32 = 126;
    /// Exit status of an image binary run on the host by mistake.
    pub const HOST_RUN: i32 = 2;
}
