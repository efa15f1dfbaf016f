//! The run loop every network function shares: frames in on port 0, a function's verdict, frames out on port 1 (or counted by a sink), with exact accounting and back-pressure.

use super::control::parse_end;
use core::fmt;

/// Size of the run loop's frame buffers (a 1514-byte frame fits).
pub const FRAME_BUF_LEN: usize = 2048;
/// Longest metric name a [`MetricName`] holds (the hypervisor's limit).
pub const MAX_METRIC_NAME: usize = 32;

/// One network port: a device the run loop receives frames from and sends
/// frames to, without blocking.
pub trait FramePort {
    /// What a failing device reports.
    type Error;

    /// Queues `frame` for sending. `Ok(false)`: the transmit ring is full,
    /// nothing was queued; try again later.
    fn send(&mut self, frame: &[u8]) -> Result<bool, Self::Error>;

    /// Takes the next received frame into `buf`, returning its length
    /// (at most `buf.len()`), or `None` when none is waiting.
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Self::Error>;
}

/// What happens to a frame that arrived on port 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send it (as the function left it) on port 1; a sink keeps it.
    Pass,
    /// Drop it; the function has counted it under a named reason.
    Drop,
}

/// A network function: decides on each frame from port 0 and keeps named
/// counters. Frames from port 1 are not shown to it (they go back to port 0
/// unchanged), nor is the end-of-stream frame.
pub trait Function {
    /// Decides on `frame` (which it may rewrite in place) and counts it:
    /// every call adds exactly one to one of its counters that partition the
    /// frames it saw (its pass counters and its drop reasons).
    fn ingress(&mut self, frame: &mut [u8]) -> Action;

    /// Calls `emit` with each metric's name and value.
    fn metrics(&self, emit: &mut dyn FnMut(&str, u64));
}

/// The L2 forwarder: passes every frame, in both directions, unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Forward {
    /// Frames passed from port 0 to port 1.
    pub forwarded: u64,
}

impl Function for Forward {
    fn ingress(&mut self, _frame: &mut [u8]) -> Action {
        self.forwarded += 1;
        Action::Pass
    }

    fn metrics(&self, emit: &mut dyn FnMut(&str, u64)) {
        emit("forwarded", self.forwarded);
    }
}

/// A metric name put together without allocating (`drop_` + a rule name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricName {
    bytes: [u8; MAX_METRIC_NAME],
    len: usize,
}

impl MetricName {
    /// `prefix` followed by `suffix`; `None` if longer than
    /// [`MAX_METRIC_NAME`].
    pub fn join(prefix: &str, suffix: &str) -> Option<MetricName> {
        let mut bytes = [0; MAX_METRIC_NAME];
        let len = prefix.len().checked_add(suffix.len())?;
        let (head, tail) = bytes.get_mut(..len)?.split_at_mut(prefix.len());
        head.copy_from_slice(prefix.as_bytes());
        tail.copy_from_slice(suffix.as_bytes());
        Some(MetricName { bytes, len })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // Whole `&str`s were copied in, so this is always valid UTF-8.
        self.bytes
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

/// Counts of one direction of a run. `received = forwarded + dropped +
/// stalled`, exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    /// Frames received (the end-of-stream frame not included).
    pub received: u64,
    /// Frames sent on (for a sink: frames the function kept).
    pub forwarded: u64,
    /// Frames the function dropped.
    pub dropped: u64,
    /// Frames passed but still unsent when the idle wait gave up (at most
    /// one per direction, at the end of the run).
    pub stalled: u64,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndCause {
    /// The end-of-stream frame arrived on port 0 carrying `count`, and was
    /// forwarded on port 1 (a sink just keeps it).
    EndOfStream {
        /// The sender's count of data frames.
        count: u64,
    },
    /// The end-of-stream frame (carrying `count`) arrived, but port 1 did
    /// not take it before the idle wait gave up.
    EndStalled {
        /// The sender's count of data frames.
        count: u64,
    },
    /// The idle wait gave up before the end-of-stream frame arrived.
    IdleTimeout,
}

/// What a run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunEnd {
    /// Port 0 to port 1 (for a sink: the one port).
    pub ingress: Flow,
    /// Port 1 to port 0 (unused by a sink).
    pub egress: Flow,
    /// How the run ended.
    pub end: EndCause,
}

impl RunEnd {
    /// Calls `emit` with each of the run loop's metrics: `ingress_rx`,
    /// `ingress_tx`, `ingress_drop`, `ingress_stalled`, `egress_rx`,
    /// `egress_tx`, `egress_stalled`.
    pub fn metrics(&self, emit: &mut dyn FnMut(&str, u64)) {
        emit("ingress_rx", self.ingress.received);
        emit("ingress_tx", self.ingress.forwarded);
        emit("ingress_drop", self.ingress.dropped);
        emit("ingress_stalled", self.ingress.stalled);
        emit("egress_rx", self.egress.received);
        emit("egress_tx", self.egress.forwarded);
        emit("egress_stalled", self.egress.stalled);
    }
}

/// Why a run stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunError<E> {
    /// A port failed.
    Port {
        /// Which port (0 or 1).
        port: usize,
        /// Its error.
        error: E,
    },
    /// A port claimed to have received more bytes than the buffer holds.
    Oversize {
        /// Which port (0 or 1).
        port: usize,
        /// The length it claimed.
        len: usize,
    },
}

impl<E: fmt::Display> fmt::Display for RunError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Port { port, error } => write!(f, "port {port}: {error}"),
            RunError::Oversize { port, len } => {
                write!(f, "port {port}: received length {len} exceeds the buffer")
            }
        }
    }
}

/// One direction's buffer and the frame in it still waiting to be sent.
struct Slot {
    buf: [u8; FRAME_BUF_LEN],
    pending: Option<usize>,
}

impl Slot {
    const fn new() -> Self {
        Slot {
            buf: [0; FRAME_BUF_LEN],
            pending: None,
        }
    }
}

/// Receives into `buf` from `port` (number `index`), checking the length.
fn recv<P: FramePort>(
    port: &mut P,
    index: usize,
    buf: &mut [u8],
) -> Result<Option<usize>, RunError<P::Error>> {
    match port.recv(buf) {
        Err(error) => Err(RunError::Port { port: index, error }),
        Ok(Some(len)) if len > buf.len() => Err(RunError::Oversize { port: index, len }),
        Ok(got) => Ok(got),
    }
}

/// Tries to send the pending frame of `slot` on `port` (number `index`);
/// true if it went (and the slot is free again).
fn flush<P: FramePort>(
    port: &mut P,
    index: usize,
    slot: &mut Slot,
) -> Result<bool, RunError<P::Error>> {
    let Some(len) = slot.pending else {
        return Ok(false);
    };
    let frame = slot.buf.get(..len).unwrap_or(&[]);
    let sent = port
        .send(frame)
        .map_err(|error| RunError::Port { port: index, error })?;
    if sent {
        slot.pending = None;
    }
    Ok(sent)
}

/// Runs `f` between two ports until the end-of-stream frame has gone
/// through or `idle` gives up.
///
/// Frames from port 0 go to `f`; those it passes are sent on port 1. Frames
/// from port 1 go to port 0 unchanged. The end-of-stream frame from port 0
/// is sent on port 1 after every frame before it, then the run ends (after
/// one last attempt to send a pending port-1 frame). When a transmit ring
/// is full the frame waits, and the port it came from is not read meanwhile,
/// while the other direction keeps moving. `idle` is called whenever
/// nothing moved; it waits for work and returns false when its time-out
/// expired, which ends the run (frames still waiting count as stalled).
pub fn run_function<P, F>(
    ports: &mut [P; 2],
    f: &mut F,
    mut idle: impl FnMut() -> bool,
) -> Result<RunEnd, RunError<P::Error>>
where
    P: FramePort,
    F: Function + ?Sized,
{
    let [p0, p1] = ports;
    let mut ingress = Slot::new();
    let mut egress = Slot::new();
    let mut run = RunEnd {
        ingress: Flow::default(),
        egress: Flow::default(),
        end: EndCause::IdleTimeout,
    };
    let mut end_count = None;
    loop {
        let mut moved = false;

        if ingress.pending.is_none()
            && let Some(len) = recv(p0, 0, &mut ingress.buf)?
        {
            moved = true;
            let frame = ingress.buf.get_mut(..len).unwrap_or_default();
            if let Some(count) = parse_end(frame) {
                end_count = Some(count);
                ingress.pending = Some(len);
            } else {
                run.ingress.received += 1;
                match f.ingress(frame) {
                    Action::Pass => ingress.pending = Some(len),
                    Action::Drop => run.ingress.dropped += 1,
                }
            }
        }
        if flush(p1, 1, &mut ingress)? {
            moved = true;
            if let Some(count) = end_count {
                if egress.pending.is_some() {
                    if flush(p0, 0, &mut egress)? {
                        run.egress.forwarded += 1;
                    } else {
                        run.egress.stalled += 1;
                    }
                }
                run.end = EndCause::EndOfStream { count };
                return Ok(run);
            }
            run.ingress.forwarded += 1;
        }

        if egress.pending.is_none()
            && let Some(len) = recv(p1, 1, &mut egress.buf)?
        {
            moved = true;
            run.egress.received += 1;
            egress.pending = Some(len);
        }
        if flush(p0, 0, &mut egress)? {
            moved = true;
            run.egress.forwarded += 1;
        }

        if !moved && !idle() {
            if egress.pending.is_some() {
                run.egress.stalled += 1;
            }
            match end_count {
                Some(count) => run.end = EndCause::EndStalled { count },
                None if ingress.pending.is_some() => run.ingress.stalled += 1,
                None => {}
            }
            return Ok(run);
        }
    }
}

/// Runs the sink `f` on one port until the end-of-stream frame arrives or
/// `idle` gives up: every other frame goes to `f`, which keeps
/// ([`Action::Pass`], counted as forwarded) or drops it.
pub fn run_sink<P, F>(
    port: &mut P,
    f: &mut F,
    mut idle: impl FnMut() -> bool,
) -> Result<RunEnd, RunError<P::Error>>
where
    P: FramePort,
    F: Function + ?Sized,
{
    let mut buf = [0u8; FRAME_BUF_LEN];
    let mut run = RunEnd {
        ingress: Flow::default(),
        egress: Flow::default(),
        end: EndCause::IdleTimeout,
    };
    loop {
        match recv(port, 0, &mut buf)? {
            Some(len) => {
                let frame = buf.get_mut(..len).unwrap_or_default();
                if let Some(count) = parse_end(frame) {
                    run.end = EndCause::EndOfStream { count };
                    return Ok(run);
                }
                run.ingress.received += 1;
                match f.ingress(frame) {
                    Action::Pass => run.ingress.forwarded += 1,
                    Action::Drop => run.ingress.dropped += 1,
                }
            }
            None => {
                if !idle() {
                    return Ok(run);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
