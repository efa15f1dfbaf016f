//! Hypercall handling (the contract is in `vmm_abi::corral::hypercall`). Arguments
//! are guest input: every number, pointer and length is checked against the
//! caller's own memory before use, and a bad one is a [`HypercallError`]
//! that stops the guest.
#![forbid(unsafe_code)]

use crate::mem::access::{Gpa, GuestRead};
use core::fmt;
use vmm_abi::corral::hypercall::{
    Hypercall, MAX_CONSOLE_WRITE, MAX_CONTROL_IO, MAX_METRIC_NAME, MAX_WAIT, RESULT_OK,
    is_valid_metric_name,
};

/// What the hypervisor does for a guest's hypercalls (its console, its
/// metrics, its boot timestamp).
pub trait Services {
    /// The guest wrote console bytes.
    fn console(&mut self, bytes: &[u8]);
    /// The guest reported a benchmark value.
    fn metric(&mut self, name: &str, value: u64);
    /// The guest reached `main`; `tsc` is what it read there.
    fn main_started(&mut self, tsc: u64);
    /// The local APIC ID of the core the guest runs on.
    fn core_id(&self) -> u32;
    /// A control-channel call (its length checked) with the guest buffer
    /// at `gpa`: bytes taken or given, or why the guest is stopped (by
    /// default: it does not hold the control capability). Implementations
    /// keep it out of line: every hypercall's path pays for what is
    /// inlined here.
    fn control(&mut self, call: Hypercall, _gpa: u64, _len: u64) -> Result<u64, HypercallError> {
        Err(HypercallError::NotGranted(call))
    }
}

/// The register arguments of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// RAX.
    pub nr: u64,
    /// RDI, RSI, RDX.
    pub args: [u64; 3],
}

/// What a call leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Done {
    /// Return this value in RAX and continue after the VMCALL.
    Return(u64),
    /// The guest asked to end with this code.
    Exit(i64),
    /// The guest waits for work on its devices for at most this many TSC
    /// ticks (already capped at [`vmm_abi::corral::hypercall::MAX_WAIT`]); the run
    /// loop decides when it continues and what RAX says.
    Wait(u64),
}

/// A call the guest had no right to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HypercallError {
    /// No hypercall has this number.
    UnknownNumber(u64),
    /// A buffer leaves the guest's memory.
    Buffer {
        /// The call.
        call: Hypercall,
        /// Buffer address.
        gpa: u64,
        /// Buffer length.
        len: u64,
    },
    /// A length is above the call's limit.
    TooLong {
        /// The call.
        call: Hypercall,
        /// Length given.
        len: u64,
        /// Limit.
        max: u64,
    },
    /// A metric name is empty or has characters names may not.
    BadMetricName,
    /// A control-channel call from a VM without the control capability.
    NotGranted(Hypercall),
}

impl fmt::Display for HypercallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HypercallError::UnknownNumber(n) => write!(f, "unknown number {n:#x}"),
            HypercallError::Buffer { call, gpa, len } => write!(
                f,
                "{} buffer {gpa:#x} len {len} is outside guest memory",
                call.name()
            ),
            HypercallError::TooLong { call, len, max } => {
                write!(f, "{} length {len} exceeds {max}", call.name())
            }
            HypercallError::BadMetricName => write!(f, "metric name is not a valid name"),
            HypercallError::NotGranted(call) => write!(
                f,
                "{}: the VM does not hold the control capability (caps = [\"control\"] in a service run)",
                call.name()
            ),
        }
    }
}

fn check_len(call: Hypercall, len: u64, max: u64) -> Result<(), HypercallError> {
    if len > max {
        return Err(HypercallError::TooLong { call, len, max });
    }
    Ok(())
}

/// Runs one hypercall for the guest whose memory is `mem` (only looked at
/// by calls that pass buffers).
pub fn handle(
    call: Call,
    mem: &impl GuestRead,
    svc: &mut impl Services,
) -> Result<Done, HypercallError> {
    let [a0, a1, a2] = call.args;
    let which = Hypercall::from_raw(call.nr).ok_or(HypercallError::UnknownNumber(call.nr))?;
    match which {
        Hypercall::Exit => return Ok(Done::Exit(a0 as i64)),
        Hypercall::ConsoleWrite => {
            check_len(which, a1, MAX_CONSOLE_WRITE)?;
            // The whole buffer is checked before any of it reaches the console.
            mem.read_chunks(Gpa(a0), a1, |chunk| svc.console(chunk))
                .map_err(|_| HypercallError::Buffer {
                    call: which,
                    gpa: a0,
                    len: a1,
                })?;
        }
        Hypercall::Null => {}
        Hypercall::MainStarted => svc.main_started(a0),
        Hypercall::CoreId => return Ok(Done::Return(svc.core_id().into())),
        Hypercall::WaitForWork => return Ok(Done::Wait(a0.min(MAX_WAIT))),
        Hypercall::ControlSend | Hypercall::ControlRecv => {
            check_len(which, a1, MAX_CONTROL_IO)?;
            return svc.control(which, a0, a1).map(Done::Return);
        }
        Hypercall::Metric => {
            check_len(which, a1, MAX_METRIC_NAME)?;
            let mut buf = [0u8; MAX_METRIC_NAME as usize];
            let name = &mut buf[..a1 as usize];
            mem.read(Gpa(a0), name)
                .map_err(|_| HypercallError::Buffer {
                    call: which,
                    gpa: a0,
                    len: a1,
                })?;
            let name = &*name;
            if !is_valid_metric_name(name) {
                return Err(HypercallError::BadMetricName);
            }
            let name = core::str::from_utf8(name).map_err(|_| HypercallError::BadMetricName)?;
            svc.metric(name, a2);
        }
    }
    Ok(Done::Return(RESULT_OK))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::mem::guest::GuestMemory;
    use std::string::String;
    use std::vec::Vec;

    #[derive(Default)]
    pub(crate) struct Recorder {
        pub console: Vec<u8>,
        pub metrics: Vec<(String, u64)>,
        pub started: Option<u64>,
    }

    impl Services for Recorder {
        fn console(&mut self, bytes: &[u8]) {
            self.console.extend_from_slice(bytes);
        }
        fn metric(&mut self, name: &str, value: u64) {
            self.metrics.push((name.into(), value));
        }
        fn main_started(&mut self, tsc: u64) {
            self.started = Some(tsc);
        }
        fn core_id(&self) -> u32 {
            7
        }
    }

    fn call(nr: Hypercall, args: [u64; 3]) -> Call {
        Call {
            nr: nr.number(),
            args,
        }
    }

    #[test]
    fn good_calls() {
        let mut backing = std::vec![0u8; 0x1000];
        backing[0x100..0x105].copy_from_slice(b"hello");
        backing[0x200..0x203].copy_from_slice(b"ops");
        let mem = GuestMemory::new(&mut backing);
        let mut r = Recorder::default();
        assert_eq!(
            handle(call(Hypercall::ConsoleWrite, [0x100, 5, 0]), &mem, &mut r),
            Ok(Done::Return(RESULT_OK))
        );
        assert_eq!(r.console, b"hello");
        handle(call(Hypercall::Metric, [0x200, 3, 42]), &mem, &mut r).unwrap();
        assert_eq!(r.metrics, [(String::from("ops"), 42)]);
        handle(call(Hypercall::MainStarted, [77, 0, 0]), &mem, &mut r).unwrap();
        assert_eq!(r.started, Some(77));
        assert_eq!(
            handle(call(Hypercall::Null, [0; 3]), &mem, &mut r),
            Ok(Done::Return(RESULT_OK))
        );
        assert_eq!(
            handle(call(Hypercall::CoreId, [0; 3]), &mem, &mut r),
            Ok(Done::Return(7))
        );
        assert_eq!(
            handle(call(Hypercall::Exit, [u64::MAX, 0, 0]), &mem, &mut r),
            Ok(Done::Exit(-1))
        );
    }

    #[test]
    fn control_calls_go_to_the_host_with_their_length_checked() {
        let mut backing = std::vec![0u8; 0x1000];
        let mem = GuestMemory::new(&mut backing);
        let mut r = Recorder::default();
        for c in [Hypercall::ControlSend, Hypercall::ControlRecv] {
            assert_eq!(
                handle(call(c, [0x100, 64, 0]), &mem, &mut r),
                Err(HypercallError::NotGranted(c))
            );
            assert_eq!(
                handle(call(c, [0x100, MAX_CONTROL_IO + 1, 0]), &mem, &mut r),
                Err(HypercallError::TooLong {
                    call: c,
                    len: MAX_CONTROL_IO + 1,
                    max: MAX_CONTROL_IO
                })
            );
        }
        // A `Done` stays two words: every hypercall's return pays for it.
        assert_eq!(core::mem::size_of::<Done>(), 16);
        let e = HypercallError::NotGranted(Hypercall::ControlSend);
        assert_eq!(
            std::format!("{e}"),
            "control_send: the VM does not hold the control capability (caps = [\"control\"] in a service run)"
        );
    }

    #[test]
    fn hostile_calls_are_refused() {
        let mut backing = std::vec![b'a'; 0x1000];
        let mem = GuestMemory::new(&mut backing);
        let mut r = Recorder::default();
        let h = |c, r: &mut Recorder| handle(c, &mem, r).unwrap_err();
        assert_eq!(
            h(
                Call {
                    nr: 0xdead,
                    args: [0; 3]
                },
                &mut r
            ),
            HypercallError::UnknownNumber(0xdead)
        );
        assert_eq!(
            h(
                Call {
                    nr: u64::MAX,
                    args: [0; 3]
                },
                &mut r
            ),
            HypercallError::UnknownNumber(u64::MAX)
        );
        assert!(matches!(
            h(call(Hypercall::ConsoleWrite, [0x1000, 1, 0]), &mut r),
            HypercallError::Buffer {
                gpa: 0x1000,
                len: 1,
                ..
            }
        ));
        assert!(matches!(
            h(call(Hypercall::ConsoleWrite, [u64::MAX - 8, 64, 0]), &mut r),
            HypercallError::Buffer { .. }
        ));
        assert!(matches!(
            h(
                call(Hypercall::ConsoleWrite, [0, MAX_CONSOLE_WRITE + 1, 0]),
                &mut r
            ),
            HypercallError::TooLong { .. }
        ));
        assert!(matches!(
            h(call(Hypercall::Metric, [0xff0, 0x20, 0]), &mut r),
            HypercallError::Buffer { .. }
        ));
        assert_eq!(
            h(call(Hypercall::Metric, [0, 0, 0]), &mut r),
            HypercallError::BadMetricName
        );
        assert!(
            r.console.is_empty() && r.metrics.is_empty(),
            "nothing leaked through"
        );
        let e = h(call(Hypercall::ConsoleWrite, [0x1000, 64, 0]), &mut r);
        assert_eq!(
            std::format!("{e}"),
            "console_write buffer 0x1000 len 64 is outside guest memory"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_arguments_are_safe(nr in 0u64..8, a0: u64, a1 in proptest::prelude::any::<u64>(), a2: u64) {
            let mut backing = std::vec![b'x'; 0x2000];
            let mem = GuestMemory::new(&mut backing);
            let mut r = Recorder::default();
            let _ = handle(Call { nr, args: [a0, a1, a2] }, &mem, &mut r);
            proptest::prop_assert!(r.console.len() as u64 <= MAX_CONSOLE_WRITE);
        }
    }
}
