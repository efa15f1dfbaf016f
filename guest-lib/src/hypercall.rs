//! Calls into the hypervisor: [`raw`], the one `vmcall` wrapper, and a typed
//! wrapper per call of [`vmm_abi::corral::hypercall::Hypercall`].
//!
//! Pointers passed to the hypervisor are guest-physical addresses, which in a
//! Corral guest equal virtual ones (the boot page tables are an identity map).

use core::fmt;
use vmm_abi::corral::hypercall::{
    Hypercall, MAX_CONSOLE_WRITE, MAX_CONTROL_IO, MAX_WAIT, WAIT_WORK, is_valid_metric_name,
};

/// Makes hypercall `nr` with arguments `a0`, `a1`, `a2` (RDI, RSI, RDX) and
/// returns RAX.
///
/// Nothing is checked: an unknown number or a bad pointer gets this guest
/// stopped by the hypervisor. Images use the typed wrappers below; this is
/// for the hostile test images that probe the hypervisor's checks.
#[inline]
pub fn raw(nr: u64, a0: u64, a1: u64, a2: u64) -> u64 {
    crate::arch::vmcall(nr, a0, a1, a2)
}

/// Ends this guest with `code`. Never returns.
pub fn exit(code: i32) -> ! {
    raw(Hypercall::Exit.number(), i64::from(code) as u64, 0, 0);
    // The hypervisor never resumes a guest after Exit; if it ever did, end
    // the guest the only other way there is.
    crate::arch::invalid_opcode()
}

/// Writes `bytes` to this guest's console, in as many calls as
/// [`MAX_CONSOLE_WRITE`] requires. An empty slice makes no call.
pub fn console_write(bytes: &[u8]) {
    for chunk in bytes.chunks(MAX_CONSOLE_WRITE as usize) {
        raw(
            Hypercall::ConsoleWrite.number(),
            chunk.as_ptr() as u64,
            chunk.len() as u64,
            0,
        );
    }
}

/// Makes the call that does nothing; measures the round trip.
#[inline]
pub fn null() {
    raw(Hypercall::Null.number(), 0, 0, 0);
}

/// Tells the hypervisor the image's main function is about to run, with the
/// TSC read just before; the hypervisor reports the boot cost from it.
pub fn main_started(tsc: u64) {
    raw(Hypercall::MainStarted.number(), tsc, 0, 0);
}

/// The local APIC ID of the physical core this guest is running on right
/// now. A guest that is not pinned, or pinned to several cores, may get
/// another answer later.
pub fn core_id() -> u32 {
    // The hypervisor answers an APIC ID, which fits in 32 bits (x2APIC IDs
    // are 32-bit); the upper half of RAX is zero.
    raw(Hypercall::CoreId.number(), 0, 0, 0) as u32
}

/// Waits until one of this guest's devices has work (a link delivered a
/// frame to one of its receive queues or completed one of its
/// transmissions) or `timeout_ticks` TSC ticks have passed; `true` means
/// work is pending, `false` that the timeout passed.
///
/// Timeouts above [`MAX_WAIT`] are capped there (here, so the hypervisor
/// sees a value it accepts as is). Work that arrived since the previous call
/// makes it return at once, so a guest that found its rings empty and then
/// calls this loses no wakeup. Each call is a VM exit: poll the rings for a
/// while first (see `net::Idle` with feature `net`).
pub fn wait_for_work(timeout_ticks: u64) -> bool {
    raw(
        Hypercall::WaitForWork.number(),
        timeout_ticks.min(MAX_WAIT),
        0,
        0,
    ) == WAIT_WORK
}

/// Hands bytes of control-protocol frames to the hypervisor's control
/// channel (at most [`MAX_CONTROL_IO`] a call); returns how many it took
/// (0 while its input is full). Only a VM granted `caps = ["control"]` may
/// call it: any other is stopped.
pub fn control_send(bytes: &[u8]) -> usize {
    let n = bytes.len().min(MAX_CONTROL_IO as usize);
    raw(
        Hypercall::ControlSend.number(),
        bytes.as_ptr() as u64,
        n as u64,
        0,
    ) as usize
}

/// Takes the control channel's answer and event bytes into `buf` (at most
/// [`MAX_CONTROL_IO`] a call); returns how many it wrote (0: none
/// waiting). Granted VMs only, as [`control_send`].
pub fn control_recv(buf: &mut [u8]) -> usize {
    let n = buf.len().min(MAX_CONTROL_IO as usize);
    let got = raw(
        Hypercall::ControlRecv.number(),
        buf.as_mut_ptr() as u64,
        n as u64,
        0,
    );
    (got as usize).min(n)
}

/// Reports the benchmark value `value` under `name`.
///
/// The name is checked here first (1 to
/// [`MAX_METRIC_NAME`](vmm_abi::corral::hypercall::MAX_METRIC_NAME) bytes of
/// `[A-Za-z0-9_.-]`, starting with a letter or digit), because the
/// hypervisor stops a guest that sends an invalid one.
pub fn metric(name: &str, value: u64) -> Result<(), InvalidMetricName> {
    if !is_valid_metric_name(name.as_bytes()) {
        return Err(InvalidMetricName);
    }
    raw(
        Hypercall::Metric.number(),
        name.as_ptr() as u64,
        name.len() as u64,
        value,
    );
    Ok(())
}

/// A metric name the hypervisor would refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidMetricName;

impl fmt::Display for InvalidMetricName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid metric name")
    }
}
