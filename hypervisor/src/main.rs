//! The Corral hypervisor binary: the Multiboot2 entry in assembly, handing
//! over to `hypervisor::platform::start::corral_main`. Built on a host, it only
//! says what it is.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
core::arch::global_asm!(include_str!("platform/boot.s"), options(att_syntax));

#[cfg(target_os = "none")]
pub use hypervisor::platform::start::corral_main;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "the Corral hypervisor is a bare-metal program: `cargo run -p boot -- run MANIFEST` builds and boots it"
    );
    std::process::exit(2);
}
