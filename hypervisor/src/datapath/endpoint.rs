//! The two ends of a link direction as traits: a [`FrameSource`] hands frames over, a [`FrameSink`] takes them; a [`LinkEnd`] is one port of a link that gives either.
//!
//! A virtio-net port implements them today ([`super::virtio`]); a NIC
//! queue implements them next, and the poller ([`super::poll`]) and one
//! direction's pump ([`super::direction`]) work with it unchanged. Frames
//! are Ethernet frames: whatever header a device puts in front of them in
//! its buffers (virtio-net's) is the endpoint's own business.
//!
//! Every method that touches a ring answers with a [`RingError`] on
//! behalf of that ring's owner; the pump turns it into a [`LinkFault`]
//! that names the side at fault, so only that end is taken out.

use crate::devices::virtio::error::RingError;
use crate::devices::virtio::queue::SplitQueue;
use crate::mem::raw::RawRam;

/// Where the frames of one direction come from: a transmit queue.
pub trait FrameSource {
    /// A frame taken from the ring and not completed yet (for virtio, its
    /// descriptor chain). The direction keeps one between calls.
    type Frame: Default;

    /// Whether a frame waits, without taking it.
    fn waiting(&mut self) -> Result<bool, RingError>;

    /// Takes the next frame into `frame`; its length in bytes, or `None`
    /// if there is none.
    fn take(&mut self, frame: &mut Self::Frame) -> Result<Option<u32>, RingError>;

    /// Calls `f` with bytes `0 .. len` of `frame` in order, in pieces (the
    /// sender may change them meanwhile: they are copies or checked views,
    /// never a promise).
    fn read(&self, frame: &Self::Frame, len: u32, f: impl FnMut(&[u8])) -> Result<(), RingError>;

    /// Gives `frame` back to the sender, done with (delivered or dropped).
    fn complete(&mut self, frame: &Self::Frame) -> Result<(), RingError>;

    /// Makes what was completed visible to the sender.
    fn publish(&mut self) -> Result<(), RingError>;

    /// The split virtqueue over a raw view behind this source, if it is
    /// one: the fast path moves frames between two such rings with one
    /// copy each and no call per frame. Other endpoints keep the default.
    #[inline]
    fn raw_ring(&mut self) -> Option<RawRing<'_>> {
        None
    }
}

/// Where the frames of one direction go: a receive queue.
pub trait FrameSink {
    /// A buffer taken from the ring and not completed yet (for virtio, its
    /// descriptor chain). The direction keeps one between calls, so a
    /// buffer taken for a frame that was then dropped serves the next.
    type Buffer: Default;

    /// Takes the receiver's next buffer into `buffer`; `false` if it has
    /// posted none.
    fn take(&mut self, buffer: &mut Self::Buffer) -> Result<bool, RingError>;

    /// Whether a frame of `len` bytes fits `buffer`.
    fn fits(&self, buffer: &Self::Buffer, len: u32) -> bool;

    /// Readies `buffer` for a frame (writes the device's header, if any).
    fn start(&mut self, buffer: &Self::Buffer) -> Result<(), RingError>;

    /// Writes `bytes` at byte `at` of the frame in `buffer`; returns how
    /// many fitted.
    fn write(&mut self, buffer: &Self::Buffer, at: u32, bytes: &[u8]) -> Result<u32, RingError>;

    /// Reads back byte `at` on of the frame written into `buffer` (the
    /// receiver's copy, for a policy to judge).
    fn read(&self, buffer: &Self::Buffer, at: u32, out: &mut [u8]) -> Result<(), RingError>;

    /// Hands `buffer`, holding a frame of `len` bytes, to the receiver.
    fn complete(&mut self, buffer: &Self::Buffer, len: u32) -> Result<(), RingError>;

    /// Makes what was completed visible to the receiver.
    fn publish(&mut self) -> Result<(), RingError>;

    /// As [`FrameSource::raw_ring`].
    #[inline]
    fn raw_ring(&mut self) -> Option<RawRing<'_>> {
        None
    }
}

/// A split virtqueue and the raw view of its guest's memory: what the
/// fast path takes from each end.
pub struct RawRing<'a> {
    /// The queue's device-side state.
    pub queue: &'a mut SplitQueue,
    /// Its guest's memory.
    pub ram: &'a RawRam,
}

/// The receiving end of one pump.
pub enum Receiver<K> {
    /// A ready receive queue.
    Ready(K),
    /// The receiver ended for good: frames are dropped and counted.
    Gone,
}

/// One port of a link, as the poller sees it: it sends through a
/// [`FrameSource`], receives through a [`FrameSink`], and takes the blame
/// when one of its rings breaks the rules.
pub trait LinkEnd {
    /// What its source keeps of a frame between calls.
    type Frame: Default;
    /// What its sink keeps of a buffer between calls.
    type Buffer: Default;
    /// Its transmit side for one pass.
    type Source<'a>: FrameSource<Frame = Self::Frame>
    where
        Self: 'a;
    /// Its receive side for one pass.
    type Sink<'a>: FrameSink<Buffer = Self::Buffer>
    where
        Self: 'a;

    /// Its transmit side, if it is up (else nothing of it waits on the
    /// link).
    fn source(&mut self) -> Option<Self::Source<'_>>;

    /// Its receive side with the generation of its ring (which changes
    /// whenever the ring may have, so a kept buffer of an older one is
    /// forgotten), or `None` while frames for it must wait.
    fn sink(&mut self) -> Option<(Receiver<Self::Sink<'_>>, u32)>;

    /// One of its rings broke the rules: it is taken out (frames for it
    /// are dropped from now on) and the first such `error` is kept for its
    /// owner.
    fn blame(&mut self, error: RingError);
}

/// Which end of a direction broke the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The end whose frames are taken.
    Sender,
    /// The end whose buffers are filled.
    Receiver,
}

/// A ring that broke the rules, and whose it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkFault {
    /// The side at fault.
    pub side: Side,
    /// What is wrong.
    pub error: RingError,
}

/// The sender's fault.
pub(super) fn sender(error: impl Into<RingError>) -> LinkFault {
    LinkFault {
        side: Side::Sender,
        error: error.into(),
    }
}

/// The receiver's fault.
pub(super) fn receiver(error: impl Into<RingError>) -> LinkFault {
    LinkFault {
        side: Side::Receiver,
        error: error.into(),
    }
}
