//! The per-frame policy point of a link direction: where a packet hook judges each frame, on the receiver's copy.
//!
//! The pump copies a frame into the receiver's buffer first and asks the
//! direction's [`FramePolicy`] only then, before the buffer is handed to
//! the receiver: the bytes judged are the bytes delivered, and the sender,
//! whose buffer they came from, can no longer change them (it never sees
//! the receiver's memory). A frame the policy drops completes on the
//! sender's side and is counted; the receiver's buffer serves the next
//! frame. A policy that judges a copy of its own and changes it (a packet
//! hook whose program writes the packet, as XDP programs may) says so
//! ([`FramePolicy::rewrote`]), and the frame delivered is its copy: on a
//! link's general path it is written back over the receiver's buffer, on
//! the fast path and the NIC's queues it is the copy delivered or sent.
//!
//! A direction without a hook runs [`PassAll`], which inspects nothing:
//! the pump skips the call at compile time. A policy that inspects frames
//! (a packet hook, `crate::hooks::packet`) is asked on the fast path
//! ([`FramePolicy::judge_in_place`], else [`FramePolicy::judge_own`] on its
//! own copy) and on the general path ([`FramePolicy::judge`]), always
//! about the receiver's copy.

use super::endpoint::FrameSink;
use crate::mem::raw::HostRange;

/// What a policy decided about one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver it.
    Pass,
    /// Drop it: the sender's frame completes, the receiver gets nothing.
    Drop,
}

/// The receiver's copy of a frame, written into its buffer and not yet
/// handed to it: what a policy judges.
pub struct FrameCopy<'a, K: FrameSink> {
    sink: &'a K,
    buffer: &'a K::Buffer,
    len: u32,
}

impl<'a, K: FrameSink> FrameCopy<'a, K> {
    /// The frame of `len` bytes in `buffer` of `sink`.
    pub(super) fn new(sink: &'a K, buffer: &'a K::Buffer, len: u32) -> Self {
        FrameCopy { sink, buffer, len }
    }

    /// Its length in bytes.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies its bytes `at .. at + out.len()` into `out` (a copy checked
    /// against the frame and the receiver's memory, never a reference into
    /// it); `None` if that is not all inside the frame.
    pub fn read(&self, at: u32, out: &mut [u8]) -> Option<()> {
        let n = u32::try_from(out.len()).ok()?;
        if at.checked_add(n)? > self.len {
            return None;
        }
        self.sink.read(self.buffer, at, out).ok()
    }
}

/// A per-frame policy on one direction of a link.
pub trait FramePolicy {
    /// Whether it looks at frames at all. A policy that does not is never
    /// called, and the fast path (which has no policy point) may run.
    const INSPECTS: bool;

    /// Judges the receiver's copy of one frame.
    fn judge<K: FrameSink>(&mut self, frame: &FrameCopy<'_, K>) -> Verdict;

    /// A buffer of the policy's own (at least `MAX_FRAME_BYTES`) the fast
    /// path copies a frame into before [`FramePolicy::judge_own`]; `None`
    /// keeps the policy off the fast path.
    fn own_buffer(&mut self) -> Option<&mut [u8]> {
        None
    }

    /// Whether the fast path should have it judge frames where they lie
    /// in the receiver's buffer ([`FramePolicy::judge_in_place`]) rather
    /// than on its own copy. Only a policy whose verdicts are pass or drop
    /// may: the receiver can change its buffer at any time, so nothing
    /// judged there may go anywhere but to the receiver.
    fn judges_in_place(&self) -> bool {
        false
    }

    /// Judges a frame the fast path has just written into the receiver's
    /// buffer (`frame`: its bytes there, out of the sender's reach, not
    /// handed over yet) where it lies; `None` (nothing judged, nothing
    /// counted) if it cannot after all. A frame that passes is delivered
    /// as it lies (with the policy's changes); one it drops is wiped from
    /// the buffer before the buffer serves the next frame.
    fn judge_in_place(&mut self, _frame: &HostRange<'_>) -> Option<Verdict> {
        None
    }

    /// Judges the first `len` bytes of [`FramePolicy::own_buffer`]. That
    /// copy is the only one: a frame that passes is delivered from it.
    fn judge_own(&mut self, _len: usize) -> Verdict {
        Verdict::Pass
    }

    /// Whether it can judge another frame now. A policy that keeps frames
    /// of its own (a hook's frames going back to their sender) says no
    /// while it has no room: the pump then stops and the frames wait in
    /// the sender's ring, none lost.
    #[inline(always)]
    fn room(&self) -> bool {
        true
    }

    /// The port (as `bpf_redirect` numbers ports) the frame it just
    /// dropped should go to instead, taken (a NIC receive hook's
    /// `XDP_REDIRECT`); `None` for a plain drop.
    fn take_redirect(&mut self) -> Option<u32> {
        None
    }

    /// Whether the frame [`FramePolicy::take_redirect`] named reached its
    /// port (for the policy's counters).
    fn redirected(&mut self, _delivered: bool) {}

    /// Hands the frames it keeps to send back (a NIC transmit hook's
    /// `XDP_TX`: to the sending guest) to `send`, in order, while `send`
    /// takes them (`Some(delivered)`); how many it took.
    fn drain_back(&mut self, _send: &mut dyn FnMut(&[u8]) -> Option<bool>) -> u32 {
        0
    }

    /// Whether the frame it just passed may have been changed in its
    /// [`FramePolicy::own_buffer`] (a hook whose program writes the
    /// packet): the caller then delivers those bytes, not the ones it
    /// judged.
    fn rewrote(&self) -> bool {
        false
    }
}

/// The policy of a direction without a hook: deliver everything, look at
/// nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct PassAll;

impl FramePolicy for PassAll {
    const INSPECTS: bool = false;

    #[inline(always)]
    fn judge<K: FrameSink>(&mut self, _frame: &FrameCopy<'_, K>) -> Verdict {
        Verdict::Pass
    }
}
