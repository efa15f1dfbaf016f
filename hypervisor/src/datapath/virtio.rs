//! A virtio-net port's queues as link endpoints: its transmit queue is a [`FrameSource`], its receive queue a [`FrameSink`].
//!
//! Frames leave a transmit chain without the 12-byte virtio-net header
//! the driver put in front (its contents are ignored: no offloads are
//! negotiated, §5.1.6.2.2) and enter a receive chain behind the header
//! the device writes ([`receive_header`]). Both work over any checked
//! guest-memory view; over a [`RawRam`] (the polling core's view) they
//! also offer their rings to the fast path.

use super::endpoint::{FrameSink, FrameSource, RawRing};
use crate::devices::virtio::error::RingError;
use crate::devices::virtio::net::{NET_HDR_LEN, receive_header, transmit_frame_len};
use crate::devices::virtio::queue::{Chain, Popped, QueueError, SplitQueue};
use crate::mem::access::{Gpa, GuestRam};
use crate::mem::raw::RingMemory;

/// A port's transmit queue over its guest's memory, for one pass.
pub struct VirtioTx<'a, M> {
    queue: &'a mut SplitQueue,
    mem: &'a mut M,
}

impl<'a, M> VirtioTx<'a, M> {
    /// The transmit queue `queue` in `mem`.
    #[inline]
    pub fn new(queue: &'a mut SplitQueue, mem: &'a mut M) -> Self {
        VirtioTx { queue, mem }
    }
}

/// Pops the next chain of `queue` into `chain`, a single descriptor the
/// cheap way; `false` if there is none.
#[inline]
fn pop<M: GuestRam>(
    queue: &mut SplitQueue,
    mem: &mut M,
    chain: &mut Chain,
) -> Result<bool, QueueError> {
    match queue.pop_single(mem)? {
        Popped::Empty => return Ok(false),
        Popped::Single { head, desc } => chain.set_single(head, desc),
        Popped::Chain => {
            queue.pop_avail_into(mem, chain)?;
        }
    }
    Ok(true)
}

impl<M: RingMemory> FrameSource for VirtioTx<'_, M> {
    type Frame = Chain;

    #[inline]
    fn waiting(&mut self) -> Result<bool, RingError> {
        Ok(self.queue.avail_pending(&*self.mem)? != 0)
    }

    #[inline]
    fn take(&mut self, frame: &mut Chain) -> Result<Option<u32>, RingError> {
        if !pop(self.queue, self.mem, frame)? {
            return Ok(None);
        }
        transmit_frame_len(frame).map(Some)
    }

    #[inline]
    fn read(&self, frame: &Chain, len: u32, f: impl FnMut(&[u8])) -> Result<(), RingError> {
        frame.for_each_readable(&*self.mem, NET_HDR_LEN, len, f)?;
        Ok(())
    }

    #[inline]
    fn complete(&mut self, frame: &Chain) -> Result<(), RingError> {
        // The device writes nothing into transmit buffers.
        Ok(self.queue.add_used(self.mem, frame.head(), 0)?)
    }

    #[inline]
    fn publish(&mut self) -> Result<(), RingError> {
        Ok(self.queue.publish_used(self.mem)?)
    }

    #[inline]
    fn raw_ring(&mut self) -> Option<RawRing<'_>> {
        let ram = self.mem.raw()?;
        Some(RawRing {
            queue: self.queue,
            ram,
        })
    }
}

/// A port's receive queue over its guest's memory, for one pass.
pub struct VirtioRx<'a, M> {
    queue: &'a mut SplitQueue,
    mem: &'a mut M,
}

impl<'a, M> VirtioRx<'a, M> {
    /// The receive queue `queue` in `mem`.
    #[inline]
    pub fn new(queue: &'a mut SplitQueue, mem: &'a mut M) -> Self {
        VirtioRx { queue, mem }
    }
}

impl<M: RingMemory> FrameSink for VirtioRx<'_, M> {
    type Buffer = Chain;

    #[inline]
    fn take(&mut self, buffer: &mut Chain) -> Result<bool, RingError> {
        if !pop(self.queue, self.mem, buffer)? {
            return Ok(false);
        }
        if !buffer.readable().is_empty() {
            return Err(RingError::ReadableInReceive {
                head: buffer.head(),
            });
        }
        Ok(true)
    }

    #[inline]
    fn fits(&self, buffer: &Chain, len: u32) -> bool {
        len.checked_add(NET_HDR_LEN)
            .is_some_and(|need| need <= buffer.writable_len())
    }

    #[inline]
    fn start(&mut self, buffer: &Chain) -> Result<(), RingError> {
        buffer.write_at(self.mem, 0, &receive_header())?;
        Ok(())
    }

    #[inline]
    fn write(&mut self, buffer: &Chain, at: u32, bytes: &[u8]) -> Result<u32, RingError> {
        let n = buffer.write_at(self.mem, NET_HDR_LEN + at, bytes)?;
        Ok(n as u32)
    }

    fn read(&self, buffer: &Chain, at: u32, out: &mut [u8]) -> Result<(), RingError> {
        let mut skip = NET_HDR_LEN.saturating_add(at);
        let mut done = 0;
        for d in buffer.writable() {
            if done == out.len() {
                break;
            }
            if skip >= d.len {
                skip -= d.len;
                continue;
            }
            let n = ((d.len - skip) as usize).min(out.len() - done);
            self.mem
                .read(Gpa(d.addr + u64::from(skip)), &mut out[done..done + n])
                .map_err(|_| QueueError::BufferOutsideMemory {
                    addr: d.addr,
                    len: d.len,
                })?;
            skip = 0;
            done += n;
        }
        if done < out.len() {
            return Err(RingError::ReceiveBufferTooSmall {
                head: buffer.head(),
                need: NET_HDR_LEN
                    .saturating_add(at)
                    .saturating_add(out.len() as u32),
                have: buffer.writable_len(),
            });
        }
        Ok(())
    }

    #[inline]
    fn complete(&mut self, buffer: &Chain, len: u32) -> Result<(), RingError> {
        Ok(self
            .queue
            .add_used(self.mem, buffer.head(), NET_HDR_LEN + len)?)
    }

    #[inline]
    fn publish(&mut self) -> Result<(), RingError> {
        Ok(self.queue.publish_used(self.mem)?)
    }

    #[inline]
    fn raw_ring(&mut self) -> Option<RawRing<'_>> {
        let ram = self.mem.raw()?;
        Some(RawRing {
            queue: self.queue,
            ram,
        })
    }
}
