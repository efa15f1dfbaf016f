//! `hvt_forward`: a Solo5 hvt unikernel forwarding every frame from its NET_BASIC device `service0` to `service1` and back, unchanged, until the end-of-stream frame (Corral's `forward` as a Solo5 guest, on the same run loop); `idle_ms=N` sets how long it waits without traffic (default 20000), `io=hypercall` makes it use the net hypercalls although the monitor offers Solo5's shared ring (`io=ring`, the default, uses the ring when offered). Prints `hvt_forward: received=.. forwarded=.. dropped=.. back=.. stalled=.. end=.. io=ring|hypercall` and exits 0 when the stream ended, 1 when it did not, 2 for bad arguments, 3 for a missing or failing device.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

guest_lib::hvt_net_entry!(hvt_main, net = ["service0", "service1"]);

#[cfg(target_os = "none")]
mod forward {
    use core::cell::Cell;
    use core::fmt::Write;
    use guest_lib::hvt::{
        Puts, cmdline, net_device, net_read, net_write, poll, puts, ring_in_use, use_hypercalls,
        walltime,
    };
    use images::nf::function::{EndCause, Forward, FramePort, run_function};
    use vmm_abi::hvt::{BootInfo, R_AGAIN, R_OK};

    /// Milliseconds without traffic after which it gives up, unless
    /// `idle_ms=N` says otherwise.
    const DEFAULT_IDLE_MS: u64 = 20_000;
    /// Nanoseconds per millisecond.
    const MS: u64 = 1_000_000;

    /// One NET_BASIC device as a port of the run loop; `moved` notes that
    /// a frame went either way.
    struct HvtPort<'a> {
        handle: u64,
        moved: &'a Cell<bool>,
    }

    impl FramePort for HvtPort<'_> {
        type Error = i32;

        fn send(&mut self, frame: &[u8]) -> Result<bool, i32> {
            match net_write(self.handle, frame) {
                R_OK => {
                    self.moved.set(true);
                    Ok(true)
                }
                R_AGAIN => Ok(false),
                ret => Err(ret),
            }
        }

        fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, i32> {
            match net_read(self.handle, buf) {
                Ok(len) => {
                    self.moved.set(true);
                    Ok(Some(len))
                }
                Err(R_AGAIN) => Ok(None),
                Err(ret) => Err(ret),
            }
        }
    }

    /// `idle_ms=N` (N at least 1, else the default) and whether
    /// `io=hypercall` asks for the hypercalls rather than the shared ring.
    fn settings(line: &str) -> Option<(u64, bool)> {
        let (mut ms, mut hypercalls) = (DEFAULT_IDLE_MS, false);
        for word in line.split_ascii_whitespace() {
            match word.split_once('=')? {
                ("idle_ms", value) => ms = value.parse().ok().filter(|&n| n > 0)?,
                ("io", "hypercall") => hypercalls = true,
                ("io", "ring") => hypercalls = false,
                _ => return None,
            }
        }
        Some((ms, hypercalls))
    }

    pub fn main(info: &BootInfo) -> i32 {
        let Some((idle_ms, hypercalls)) = settings(cmdline(info)) else {
            let _ = writeln!(
                Puts,
                "hvt_forward: bad arguments (only idle_ms=N, N >= 1, and io=ring|hypercall)"
            );
            return 2;
        };
        if hypercalls {
            use_hypercalls();
        }
        let io = if ring_in_use() { "ring" } else { "hypercall" };
        let (Some(d0), Some(d1)) = (net_device(info, "service0"), net_device(info, "service1"))
        else {
            puts(b"hvt_forward: NET_BASIC devices service0 and service1 are not both attached\n");
            return 3;
        };
        let moved = Cell::new(false);
        let mut ports = [
            HvtPort {
                handle: d0.handle,
                moved: &moved,
            },
            HvtPort {
                handle: d1.handle,
                moved: &moved,
            },
        ];
        let idle_ns = idle_ms.saturating_mul(MS);
        let mut deadline = walltime().saturating_add(idle_ns);
        // Nothing moved this pass: wait for a frame (or a freed transmit
        // slot, which wakes the VM too) until the deadline, which every
        // frame moved pushes back.
        let idle = || {
            let now = walltime();
            if moved.replace(false) {
                deadline = now.saturating_add(idle_ns);
            }
            if now >= deadline {
                return false;
            }
            poll(deadline - now);
            true
        };
        let run = match run_function(&mut ports, &mut Forward::default(), idle) {
            Ok(run) => run,
            Err(e) => {
                let _ = writeln!(Puts, "hvt_forward: FAILURE: {e}");
                return 3;
            }
        };
        let (end, code) = match run.end {
            EndCause::EndOfStream { .. } => ("stream", 0),
            EndCause::EndStalled { .. } => ("stalled", 1),
            EndCause::IdleTimeout => ("idle", 1),
        };
        let i = &run.ingress;
        let _ = writeln!(
            Puts,
            "hvt_forward: received={} forwarded={} dropped={} back={} stalled={} end={end} io={io}",
            i.received,
            i.forwarded,
            i.dropped,
            run.egress.forwarded,
            i.stalled + run.egress.stalled
        );
        if code == 0 {
            puts(b"SUCCESS\n");
        }
        code
    }
}

#[cfg(target_os = "none")]
fn hvt_main(info: &vmm_abi::hvt::BootInfo) -> i32 {
    forward::main(info)
}

/// On the host the image only says what it is (see `hvt_net_entry!`).
#[cfg(not(target_os = "none"))]
fn hvt_main(_: &vmm_abi::hvt::BootInfo) -> i32 {
    0
}
