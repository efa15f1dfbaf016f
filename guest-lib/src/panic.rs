//! The panic handler of bare-metal images: print the message (with the
//! `console` feature) and exit with [`crate::exit_code::PANIC`].

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    #[cfg(feature = "console")]
    {
        crate::println!("panic: {}", info.message());
        if let Some(location) = info.location() {
            crate::println!("  at {location}");
        }
    }
    #[cfg(not(feature = "console"))]
    let _ = info;
    crate::hypercall::exit(crate::exit_code::PANIC)
}
