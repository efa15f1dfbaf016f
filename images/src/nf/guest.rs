//! Bare-metal glue the network-function images share: virtio-net ports as run-loop [`FramePort`]s, idling that restarts whenever work happens, the `idle=` argument, metric reporting, draining transmissions, and the whole main of a two-port function or a sink.

use super::args::{ArgError, number_value};
use super::function::{EndCause, FramePort, Function, RunEnd, RunError, run_function, run_sink};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use core::cell::Cell;
use core::fmt::Write;
use guest_lib::args::Args;
use guest_lib::net::{Idle, NetError, NetPort};
use guest_lib::{BootInfo, hypercall, println};

/// TSC ticks an idle loop polls its rings before it waits in the hypervisor.
pub const SPIN_TICKS: u64 = 20_000;
/// TSC ticks without any work after which an image gives up (roughly 8 to
/// 20 seconds of emulation); `idle=N` overrides it.
pub const DEFAULT_IDLE_TICKS: u64 = 400_000_000;
/// The argument that overrides [`DEFAULT_IDLE_TICKS`].
pub const IDLE_KEY: &str = "idle";
/// Most metrics an image reports; further ones are counted, not sent.
pub const MAX_METRICS: usize = 60;

/// Exit code: the stream ended and everything was delivered.
pub const EXIT_OK: i32 = 0;
/// Exit code: the run did not complete (idle timeout, a stalled end frame,
/// transmissions never completed, missing echo replies).
pub const EXIT_INCOMPLETE: i32 = 1;
/// Exit code: unusable arguments.
pub const EXIT_BAD_ARGS: i32 = 2;
/// Exit code: a net port could not be opened or failed.
pub const EXIT_DEVICE: i32 = 3;

/// The idle timeout in TSC ticks: `idle=N` (at least 1), else
/// [`DEFAULT_IDLE_TICKS`].
pub fn idle_ticks(args: &str) -> Result<u64, ArgError<'_>> {
    Ok(number_value(
        &Args::new(args),
        IDLE_KEY,
        1..=u64::MAX,
        "is not a positive number of TSC ticks",
    )?
    .unwrap_or(DEFAULT_IDLE_TICKS))
}

/// The argument word that makes the idle timeout the normal end of a run:
/// `end=idle`, for a function at the wire, where no end-of-stream frame
/// ever comes (a host's clients cannot send one).
pub const END_KEY: &str = "end";
/// The value of [`END_KEY`] that ends a run by its idle timeout.
pub const END_ON_IDLE: &str = "idle";

/// Whether the idle timeout ends the run normally (`end=idle`); an error
/// for any other `end=` value.
pub fn ends_on_idle(args: &str) -> Result<bool, ArgError<'_>> {
    match Args::new(args).value(END_KEY) {
        None => Ok(false),
        Some(END_ON_IDLE) => Ok(true),
        Some(other) => Err(ArgError::bad(
            END_KEY,
            other,
            "must be `idle` (the idle timeout then ends the run with exit 0)",
        )),
    }
}

/// Counts the work the ports of a run did (frames received or queued), so
/// the idle timeout restarts after each stretch of work.
#[derive(Debug, Default)]
pub struct Activity(Cell<u64>);

impl Activity {
    /// A counter at zero.
    pub const fn new() -> Self {
        Activity(Cell::new(0))
    }

    /// Records one unit of work.
    pub fn bump(&self) {
        self.0.set(self.0.get().wrapping_add(1));
    }

    /// Work recorded so far.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A port that records every frame it received or queued in an
/// [`Activity`].
#[derive(Debug)]
pub struct Watched<'a, P> {
    /// The port.
    pub port: P,
    activity: &'a Activity,
}

impl<'a, P> Watched<'a, P> {
    /// `port`, recording its work in `activity`.
    pub const fn new(port: P, activity: &'a Activity) -> Self {
        Watched { port, activity }
    }
}

impl<P: FramePort> FramePort for Watched<'_, P> {
    type Error = P::Error;

    fn send(&mut self, frame: &[u8]) -> Result<bool, P::Error> {
        let sent = self.port.send(frame)?;
        if sent {
            self.activity.bump();
        }
        Ok(sent)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, P::Error> {
        let got = self.port.recv(buf)?;
        if got.is_some() {
            self.activity.bump();
        }
        Ok(got)
    }
}

impl<P: FramePort + ?Sized> FramePort for Box<P> {
    type Error = P::Error;

    fn send(&mut self, frame: &[u8]) -> Result<bool, P::Error> {
        P::send(self, frame)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, P::Error> {
        P::recv(self, buf)
    }
}

impl FramePort for NetPort {
    type Error = NetError;

    fn send(&mut self, frame: &[u8]) -> Result<bool, NetError> {
        NetPort::send(self, frame)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, NetError> {
        NetPort::recv(self, buf)
    }
}

/// [`Idle`] that starts a new idle stretch whenever an [`Activity`] moved
/// since the last call.
#[derive(Debug)]
pub struct Waiter<'a> {
    idle: Idle,
    activity: &'a Activity,
    seen: u64,
}

impl<'a> Waiter<'a> {
    /// Spins [`SPIN_TICKS`], then waits; gives up after `idle_ticks` without
    /// work in `activity`.
    pub fn new(idle_ticks: u64, activity: &'a Activity) -> Self {
        Waiter {
            idle: Idle::new(SPIN_TICKS, idle_ticks),
            activity,
            seen: activity.get(),
        }
    }

    /// Call when a pass found nothing to do; `false` once the idle timeout
    /// passed without work.
    pub fn wait(&mut self) -> bool {
        let now = self.activity.get();
        if now != self.seen {
            self.seen = now;
            self.idle.reset();
        }
        self.idle.idle()
    }
}

/// Reports metrics through the metric hypercall, at most [`MAX_METRICS`].
#[derive(Debug, Default)]
pub struct Reporter {
    /// Metrics reported.
    pub reported: usize,
    /// Metrics left out (over the limit or refused).
    pub left_out: usize,
}

impl Reporter {
    /// A reporter that has sent nothing.
    pub const fn new() -> Self {
        Reporter {
            reported: 0,
            left_out: 0,
        }
    }

    /// Reports `value` under `name` (unless over the limit).
    pub fn emit(&mut self, name: &str, value: u64) {
        if self.reported >= MAX_METRICS {
            self.left_out += 1;
        } else if hypercall::metric(name, value).is_ok() {
            self.reported += 1;
        } else {
            self.left_out += 1;
        }
    }

    /// Prints how many metrics were left out, if any.
    pub fn finish(&self, image: &str) {
        if self.left_out > 0 {
            println!(
                "{image}: {} metric(s) left out (limit {MAX_METRICS} or invalid name)",
                self.left_out
            );
        }
    }
}

/// `name=value` pairs, space separated, for a summary line.
pub fn pairs(metrics: impl FnOnce(&mut dyn FnMut(&str, u64))) -> String {
    let mut line = String::new();
    metrics(&mut |name, value| {
        let sep = if line.is_empty() { "" } else { " " };
        // Writing to a `String` cannot fail.
        let _ = write!(line, "{sep}{name}={value}");
    });
    line
}

/// Waits until every transmission queued on `ports` has completed (the
/// link took the frames), restarting the idle timeout whenever one did;
/// `false` if `idle_ticks` passed without progress.
pub fn drain(ports: &mut [&mut NetPort], idle_ticks: u64) -> bool {
    let mut idle = Idle::new(SPIN_TICKS, idle_ticks);
    let mut last = usize::MAX;
    loop {
        let in_flight: usize = ports.iter_mut().map(|p| p.tx_in_flight()).sum();
        if in_flight == 0 {
            return true;
        }
        if in_flight < last {
            last = in_flight;
            idle.reset();
        }
        if !idle.idle() {
            return false;
        }
    }
}

/// Opens net port `port` on the heap, printing why it could not be opened.
///
/// A [`NetPort`] is several KiB and opening one takes much of the 64 KiB
/// stack, so this stays out of line (its frame is gone once it returns) and
/// the port lives on the heap, where moving it costs nothing.
#[inline(never)]
pub fn open(image: &str, info: &BootInfo, port: usize) -> Option<Box<NetPort>> {
    match NetPort::open(info, port) {
        Ok(p) => Some(Box::new(p)),
        Err(e) => {
            println!("{image}: cannot open net port {port}: {e}");
            None
        }
    }
}

/// Reports the run's metrics (the function's first, then the run loop's
/// when `run_metrics`, then `announced`, the count the end frame carried)
/// and prints the one-line summary.
fn report_run<F: Function + ?Sized>(image: &str, f: &F, run: &RunEnd, run_metrics: bool) {
    let mut reporter = Reporter::new();
    f.metrics(&mut |name, value| reporter.emit(name, value));
    if run_metrics {
        run.metrics(&mut |name, value| reporter.emit(name, value));
    }
    let (end, announced) = match run.end {
        EndCause::EndOfStream { count } => ("end of stream", Some(count)),
        EndCause::EndStalled { count } => ("end frame stalled", Some(count)),
        EndCause::IdleTimeout => ("idle timeout, no end frame", None),
    };
    if let Some(count) = announced {
        reporter.emit("announced", count);
    }
    reporter.finish(image);
    let inner = pairs(|emit| f.metrics(emit));
    let announced = announced.map_or(String::new(), |n| format!(" ({n} announced)"));
    let i = &run.ingress;
    if run_metrics {
        println!(
            "{image}: {end}{announced}: in {} out {} dropped {} back {}; {inner}",
            i.received, i.forwarded, i.dropped, run.egress.forwarded
        );
    } else {
        println!("{image}: {end}{announced}: {} frames; {inner}", i.received);
    }
}

/// The exit code of a run that returned, after draining `ports` if the
/// stream ended; prints why when it is not [`EXIT_OK`].
fn finish_run(
    image: &str,
    run: &RunEnd,
    ports: &mut [&mut NetPort],
    idle_ticks: u64,
    end_on_idle: bool,
) -> i32 {
    match run.end {
        EndCause::EndOfStream { .. } => {
            if drain(ports, idle_ticks) {
                EXIT_OK
            } else {
                println!(
                    "{image}: transmissions (the end frame among them) not completed after {idle_ticks} idle ticks"
                );
                EXIT_INCOMPLETE
            }
        }
        EndCause::EndStalled { .. } => {
            println!("{image}: the end frame could not be sent within {idle_ticks} idle ticks");
            EXIT_INCOMPLETE
        }
        EndCause::IdleTimeout if end_on_idle => {
            println!("{image}: no traffic for {idle_ticks} ticks: the end (end=idle)");
            if drain(ports, idle_ticks) {
                EXIT_OK
            } else {
                println!("{image}: transmissions not completed after {idle_ticks} idle ticks");
                EXIT_INCOMPLETE
            }
        }
        EndCause::IdleTimeout => {
            println!("{image}: no end-of-stream frame within {idle_ticks} idle ticks");
            EXIT_INCOMPLETE
        }
    }
}

/// Reports the function's metrics and prints why a run failed.
fn run_failed<F: Function + ?Sized>(image: &str, f: &F, error: &RunError<NetError>) -> i32 {
    let mut reporter = Reporter::new();
    f.metrics(&mut |name, value| reporter.emit(name, value));
    reporter.finish(image);
    println!("{image}: {error}");
    EXIT_DEVICE
}

/// The main of a two-port function image: `f` between port 0 (in) and
/// port 1 (out) until the end-of-stream frame went through, then metrics,
/// a summary line, and the exit code once port transmissions completed.
pub fn serve_function<F: Function + ?Sized>(image: &str, info: &BootInfo, f: &mut F) -> i32 {
    let (idle_ticks, end_on_idle) =
        match idle_ticks(info.args).and_then(|t| Ok((t, ends_on_idle(info.args)?))) {
            Ok(both) => both,
            Err(e) => {
                println!("{image}: {e}");
                return EXIT_BAD_ARGS;
            }
        };
    let (Some(p0), Some(p1)) = (open(image, info, 0), open(image, info, 1)) else {
        return EXIT_DEVICE;
    };
    let activity = Activity::new();
    let mut ports = [Watched::new(p0, &activity), Watched::new(p1, &activity)];
    let mut waiter = Waiter::new(idle_ticks, &activity);
    let result = run_function(&mut ports, f, || waiter.wait());
    match result {
        Ok(run) => {
            report_run(image, f, &run, true);
            let [w0, w1] = &mut ports;
            finish_run(
                image,
                &run,
                &mut [&mut *w0.port, &mut *w1.port],
                idle_ticks,
                end_on_idle,
            )
        }
        Err(error) => run_failed(image, f, &error),
    }
}

/// The main of a sink image: `f` on port 0 until the end-of-stream frame,
/// then metrics, a summary line and the exit code.
pub fn serve_sink<F: Function + ?Sized>(image: &str, info: &BootInfo, f: &mut F) -> i32 {
    let (idle_ticks, end_on_idle) =
        match idle_ticks(info.args).and_then(|t| Ok((t, ends_on_idle(info.args)?))) {
            Ok(settings) => settings,
            Err(e) => {
                println!("{image}: {e}");
                return EXIT_BAD_ARGS;
            }
        };
    let pause = match super::pause::plan(info.args) {
        Ok(p) => p,
        Err(e) => {
            println!("{image}: {e}");
            return EXIT_BAD_ARGS;
        }
    };
    let Some(port) = open(image, info, 0) else {
        return EXIT_DEVICE;
    };
    let activity = Activity::new();
    let mut port =
        super::pause::Pausing::new(Watched::new(port, &activity), pause, guest_lib::time::rdtsc);
    let mut waiter = Waiter::new(idle_ticks, &activity);
    let result = run_sink(&mut port, f, || waiter.wait());
    if pause.is_some() && guest_lib::hypercall::metric("after_pause", port.after_pause).is_err() {
        return EXIT_BAD_ARGS;
    }
    match result {
        Ok(run) => {
            report_run(image, f, &run, false);
            finish_run(
                image,
                &run,
                &mut [&mut *port.port.port],
                idle_ticks,
                end_on_idle,
            )
        }
        Err(error) => run_failed(image, f, &error),
    }
}

#[cfg(test)]
mod end_tests {
    use super::*;

    #[test]
    fn end_idle_is_the_only_end_word() {
        assert_eq!(ends_on_idle("deny=a:dport=1"), Ok(false));
        assert_eq!(ends_on_idle("end=idle idle=5"), Ok(true));
        assert!(ends_on_idle("end=never").is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A port that takes every frame and delivers a fixed list.
    struct Fake {
        sent: Vec<Vec<u8>>,
        incoming: Vec<Vec<u8>>,
        full: bool,
    }

    impl FramePort for Fake {
        type Error = ();

        fn send(&mut self, frame: &[u8]) -> Result<bool, ()> {
            if self.full {
                return Ok(false);
            }
            self.sent.push(frame.to_vec());
            Ok(true)
        }

        fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, ()> {
            Ok(self.incoming.pop().map(|f| {
                buf[..f.len()].copy_from_slice(&f);
                f.len()
            }))
        }
    }

    #[test]
    fn watched_counts_only_work() {
        let activity = Activity::new();
        let fake = Fake {
            sent: Vec::new(),
            incoming: alloc::vec![alloc::vec![1, 2, 3]],
            full: false,
        };
        let mut port = Watched::new(fake, &activity);
        let mut buf = [0u8; 8];
        assert_eq!(port.recv(&mut buf), Ok(Some(3)));
        assert_eq!(activity.get(), 1);
        assert_eq!(port.recv(&mut buf), Ok(None));
        assert_eq!(activity.get(), 1, "an empty poll is no work");
        assert_eq!(port.send(&[9]), Ok(true));
        assert_eq!(activity.get(), 2);
        port.port.full = true;
        assert_eq!(port.send(&[9]), Ok(false));
        assert_eq!(activity.get(), 2, "a full ring is no work");
        assert_eq!(port.port.sent, alloc::vec![alloc::vec![9]]);
    }

    #[test]
    fn idle_argument() {
        assert_eq!(idle_ticks(""), Ok(DEFAULT_IDLE_TICKS));
        assert_eq!(idle_ticks("count=5 idle=0x100"), Ok(0x100));
        assert!(idle_ticks("idle=0").is_err());
        assert!(idle_ticks("idle=soon").is_err());
    }

    #[test]
    fn summary_pairs() {
        let line = pairs(|emit| {
            emit("passed", 3);
            emit("drop_blocked", 1);
        });
        assert_eq!(line, "passed=3 drop_blocked=1");
        assert_eq!(pairs(|_| {}), "");
    }
}
