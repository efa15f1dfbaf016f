//! Hypercall numbers and the register calling convention.
//!
//! A guest calls the hypervisor with `VMCALL`:
//!
//! | register | meaning |
//! |---|---|
//! | RAX | hypercall number ([`Hypercall`]) |
//! | RDI, RSI, RDX | arguments 0, 1, 2 |
//! | RAX (on return) | result; [`RESULT_OK`] unless the call says otherwise |
//!
//! All other registers are preserved. A call with an unknown number, or with
//! a pointer/length pair that leaves the caller's memory, is a protocol
//! violation: the hypervisor stops that guest and reports why. Guests never
//! need to probe, because the boot info carries the ABI version.

/// CPUID leaf answering the hypervisor signature
/// ([`crate::HYPERVISOR_SIGNATURE`]) in EBX, ECX, EDX and the highest
/// hypervisor leaf in EAX.
pub const CPUID_LEAF_VENDOR: u32 = 0x4000_0000;
/// CPUID leaf answering [`crate::ABI_VERSION`] in EAX.
pub const CPUID_LEAF_ABI: u32 = 0x4000_0001;

/// Result of a call that succeeded.
pub const RESULT_OK: u64 = 0;
/// Largest buffer one [`Hypercall::ConsoleWrite`] may pass.
pub const MAX_CONSOLE_WRITE: u64 = 4096;
/// Largest metric name one [`Hypercall::Metric`] may pass.
pub const MAX_METRIC_NAME: u64 = 32;

/// The hypercalls, by number (RAX).
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hypercall {
    /// End this guest. RDI: exit code (as `i64`). Does not return.
    Exit = 0,
    /// Write bytes to this guest's console. RDI: guest-physical address,
    /// RSI: length (at most [`MAX_CONSOLE_WRITE`]).
    ConsoleWrite = 1,
    /// Do nothing and return [`RESULT_OK`]; measures the round trip.
    Null = 2,
    /// The guest reached the first line of `main`. RDI: the TSC it read there;
    /// the hypervisor reports the boot cost from it.
    MainStarted = 3,
    /// Report a named benchmark value. RDI: name address, RSI: name length
    /// (1..=[`MAX_METRIC_NAME`], a valid name), RDX: value.
    Metric = 4,
    /// Returns the local APIC ID of the physical core the guest runs on.
    CoreId = 5,
    /// The guest has nothing to do until one of its devices has work: wait
    /// until a link delivers a frame to one of its receive queues or
    /// completes one of its transmissions, or until RDI TSC ticks have
    /// passed (at most [`MAX_WAIT`]; larger values are capped). Returns
    /// [`WAIT_WORK`] or [`WAIT_TIMEOUT`]. Work that arrived since the
    /// previous call returns at once, so no wakeup is lost between a guest
    /// finding its rings empty and calling this. Other VMs on the core run
    /// meanwhile.
    WaitForWork = 6,
    /// Hand bytes of control-protocol frames (`crate::control`) to the
    /// hypervisor's control channel: RDI address, RSI length (at most
    /// [`MAX_CONTROL_IO`]). Returns how many bytes it took (0 while its
    /// input is full: try again later). Only a VM the manifest granted
    /// the control capability may call it; any other is stopped.
    ControlSend = 7,
    /// Take the control channel's answers and events: RDI address, RSI
    /// room (at most [`MAX_CONTROL_IO`]). Returns how many bytes it
    /// wrote (0: none waiting). Granted VMs only, as
    /// [`Hypercall::ControlSend`].
    ControlRecv = 8,
}

/// Largest buffer one [`Hypercall::ControlSend`] or
/// [`Hypercall::ControlRecv`] may pass.
pub const MAX_CONTROL_IO: u64 = 2048;

/// [`Hypercall::WaitForWork`] returned because work is pending.
pub const WAIT_WORK: u64 = 1;
/// [`Hypercall::WaitForWork`] returned because its timeout passed.
pub const WAIT_TIMEOUT: u64 = 0;
/// Longest wait one [`Hypercall::WaitForWork`] may ask for, in TSC ticks.
pub const MAX_WAIT: u64 = 1 << 40;

impl Hypercall {
    /// Every hypercall, in number order.
    pub const ALL: [Hypercall; 9] = [
        Hypercall::Exit,
        Hypercall::ConsoleWrite,
        Hypercall::Null,
        Hypercall::MainStarted,
        Hypercall::Metric,
        Hypercall::CoreId,
        Hypercall::WaitForWork,
        Hypercall::ControlSend,
        Hypercall::ControlRecv,
    ];

    /// The call with this number, if there is one.
    pub const fn from_raw(nr: u64) -> Option<Self> {
        Some(match nr {
            0 => Hypercall::Exit,
            1 => Hypercall::ConsoleWrite,
            2 => Hypercall::Null,
            3 => Hypercall::MainStarted,
            4 => Hypercall::Metric,
            5 => Hypercall::CoreId,
            6 => Hypercall::WaitForWork,
            7 => Hypercall::ControlSend,
            8 => Hypercall::ControlRecv,
            _ => return None,
        })
    }

    /// The number passed in RAX.
    pub const fn number(self) -> u64 {
        self as u64
    }

    /// A short name for logs and reports.
    pub const fn name(self) -> &'static str {
        match self {
            Hypercall::Exit => "exit",
            Hypercall::ConsoleWrite => "console_write",
            Hypercall::Null => "null",
            Hypercall::MainStarted => "main_started",
            Hypercall::Metric => "metric",
            Hypercall::CoreId => "core_id",
            Hypercall::WaitForWork => "wait_for_work",
            Hypercall::ControlSend => "control_send",
            Hypercall::ControlRecv => "control_recv",
        }
    }
}

/// Whether `name` is acceptable as a metric name.
pub fn is_valid_metric_name(name: &[u8]) -> bool {
    name.len() as u64 <= MAX_METRIC_NAME && crate::text::is_valid_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for (i, call) in Hypercall::ALL.iter().enumerate() {
            assert_eq!(call.number(), i as u64);
            assert_eq!(Hypercall::from_raw(call.number()), Some(*call));
        }
        assert_eq!(Hypercall::from_raw(Hypercall::ALL.len() as u64), None);
        assert_eq!(Hypercall::from_raw(u64::MAX), None);
    }

    #[test]
    fn metric_names() {
        assert!(is_valid_metric_name(b"hypercall_roundtrip"));
        assert!(!is_valid_metric_name(b""));
        assert!(!is_valid_metric_name(&[b'a'; 33]));
        assert!(!is_valid_metric_name(b"x y"));
    }
}
