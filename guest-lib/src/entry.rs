//! The entry path and the [`entry!`](crate::entry!) macro.
//!
//! The hypervisor starts an image at its ELF entry `_start` in 64-bit mode
//! with RDI = the boot info's address and RSP at the top of the stack
//! (aligned as if `_start` had been called). [`entry!`](crate::entry!) emits
//! that `_start`, which runs `start` (bare-metal target only): check the
//! boot info, set up the heap (feature `alloc`), read the TSC and report it
//! with [`main_started`](crate::hypercall::main_started), call the image's
//! function and exit with what it returns.

use crate::BootInfo;

/// An image's main function: gets the checked boot info, returns the exit
/// code.
pub type Main = fn(&BootInfo) -> i32;

/// Declares `main` (a [`Main`]) as this image's main function.
///
/// For the bare-metal target this emits the `_start` entry point; on the
/// host it emits a `fn main` that says the image must be built for
/// `x86_64-unknown-none` and exits with
/// [`exit_code::HOST_RUN`](crate::exit_code::HOST_RUN), so the workspace
/// builds and tests on the host.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// Where the hypervisor starts this image (the one `unsafe` a
        /// well-behaved image has: images `deny(unsafe_code)` and this shim
        /// is allowed it).
        #[cfg(target_os = "none")]
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        extern "C" fn _start(boot_info: *const $crate::BootInfoRaw) -> ! {
            // SAFETY: `_start` is the image's ELF entry point and nothing
            // else calls it: the hypervisor jumps here once, passing the boot
            // info's address in RDI, the first argument.
            unsafe { $crate::entry::start(boot_info, $main) }
        }

        #[cfg(not(target_os = "none"))]
        fn main() {
            let _: $crate::entry::Main = $main;
            ::std::eprintln!("this is a Corral guest image; build it for x86_64-unknown-none");
            ::std::process::exit($crate::exit_code::HOST_RUN);
        }
    };
}

#[cfg(target_os = "none")]
pub use bare_metal::start;

#[cfg(target_os = "none")]
mod bare_metal {
    use super::Main;
    use crate::{BootInfo, BootInfoRaw, exit_code, hypercall};
    use core::fmt;
    use vmm_abi::corral::layout::BOOT_INFO_GPA;

    /// Runs the image: the body of the `_start` that
    /// [`entry!`](crate::entry!) emits.
    ///
    /// # Safety
    ///
    /// Call it once, from the image's entry point, with the boot-info pointer
    /// the hypervisor passed there (RDI).
    #[doc(hidden)]
    pub unsafe fn start(boot_info: *const BootInfoRaw, main: Main) -> ! {
        if boot_info as u64 != BOOT_INFO_GPA {
            refuse(format_args!(
                "boot info pointer {boot_info:p} is not the boot-info page {BOOT_INFO_GPA:#x}"
            ));
        }
        // SAFETY: the caller passes the hypervisor's boot-info pointer, just
        // checked to be the boot-info page of `vmm_abi::corral::layout`. The
        // hypervisor wrote a `BootInfoRaw` there before starting this guest
        // and never changes it, the guest writes nothing below the image (the
        // heap and stack lie above it), the page is identity-mapped, the
        // address is page aligned, and the struct is integers and byte arrays,
        // valid for any bit pattern. So a shared `'static` reference is sound.
        let raw: &'static BootInfoRaw = unsafe { &*boot_info };
        let info = match BootInfo::from_raw(raw) {
            Ok(info) => info,
            Err(e) => refuse(format_args!("{e}")),
        };
        #[cfg(feature = "alloc")]
        if let Err(e) = crate::heap::init(&info) {
            refuse(format_args!("{e}"));
        }
        #[cfg(feature = "virtio-console")]
        if let Some(Err(e)) = crate::virtio::console::init(&info) {
            crate::println!(
                "guest-lib: virtio-console unusable ({e}); printing through the console hypercall"
            );
        }
        let tsc = crate::arch::rdtsc();
        hypercall::main_started(tsc);
        hypercall::exit(main(&info))
    }

    /// Says why the guest cannot start and exits with
    /// [`exit_code::BAD_BOOT_INFO`].
    fn refuse(why: fmt::Arguments<'_>) -> ! {
        #[cfg(feature = "console")]
        crate::println!("guest-lib: cannot start: {why}");
        #[cfg(not(feature = "console"))]
        {
            let _ = why;
            hypercall::console_write(b"guest-lib: cannot start: bad boot info\n");
        }
        hypercall::exit(exit_code::BAD_BOOT_INFO)
    }
}
