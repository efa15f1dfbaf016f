//! The way down: `fatal` (a console line, a `fatal` record, power off), `power_off`, and the panic handler.

use super::{instr, serial};
use crate::console::StackStr;
use vmm_abi::report::Record;

/// Prints why the hypervisor cannot go on (a console line and a `fatal`
/// record) and stops the machine.
pub fn fatal(reason: &str) -> ! {
    serial::emergency(reason, &Record::Fatal { reason });
    power_off()
}

/// [`fatal`] with a formatted reason.
pub fn fatal_fmt(args: core::fmt::Arguments<'_>) -> ! {
    fatal(StackStr::<240>::format(args).as_str())
}

/// Stops the machine: Bochs' magic breakpoint ends the emulator; on real
/// hardware the core halts with interrupts off.
pub fn power_off() -> ! {
    serial::drain();
    instr::magic_break();
    loop {
        instr::cli();
        instr::hlt();
    }
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fatal_fmt(format_args!("hypervisor panic: {info}"))
}
