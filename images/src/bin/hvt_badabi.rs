//! A Solo5 hvt unikernel whose ABI note asks for ABI version 9, which no monitor speaks: Corral refuses it before it boots.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

guest_lib::hvt_entry!(hvt_main, abi_target = 1, abi_version = 9);

fn hvt_main(_: &vmm_abi::hvt::BootInfo) -> i32 {
    0
}
