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
//! [`vmm_abi::layout::IMAGE_BASE_GPA`].
//!
//! # Cargo features
//!
//! Every component beyond the entry path is optional and costs nothing when
//! left out. All three are on by default.
//!
//! | feature | provides |
//! |---|---|
//! | `console` | `print!` and `println!`: formatted output through [`hypercall::console_write`], buffered per call and sent in chunks of at most [`vmm_abi::hypercall::MAX_CONSOLE_WRITE`] bytes; the panic handler and the boot checks print why they stop |
//! | `alloc` | a global allocator (`talc`) over the heap region the boot info describes, so images can use the `alloc` crate |
//! | `time` | `time::rdtsc` and `time::Instant`, time in TSC ticks (one tick per instruction under the emulator) |
//!
//! Always present: [`hypercall`] (the raw `vmcall` and typed wrappers),
//! [`args`] (parsing the manifest's argument string), [`entry!`], and on the
//! bare-metal target the panic handler, which prints `panic: <message>`
//! (with `console`) and exits with [`exit_code::PANIC`].
//!
//! Everything compiles on the host as well, so the workspace can be tested
//! and linted there; the bare-metal-only items (`_start`, the panic handler,
//! the global allocator) exist only when `target_os = "none"`.
#![cfg_attr(not(test), no_std)]

#[cfg(feature = "alloc")]
extern crate alloc;

mod arch;
pub mod args;
#[cfg(feature = "console")]
pub mod console;
pub mod entry;
#[cfg(feature = "alloc")]
pub mod heap;
pub mod hypercall;
mod panic;
#[cfg(feature = "time")]
pub mod time;

/// The checked boot info an image's main function receives.
pub type BootInfo = vmm_abi::bootinfo::BootInfo<'static>;
pub use vmm_abi::bootinfo::BootInfoRaw;

/// Exit codes guest-lib itself ends a guest with.
pub mod exit_code {
    /// The image panicked.
    pub const PANIC: i32 = 101;
    /// The boot info (or the heap it describes) was unusable.
    pub const BAD_BOOT_INFO: i32 = 126;
    /// Exit status of an image binary run on the host by mistake.
    pub const HOST_RUN: i32 = 2;
}
