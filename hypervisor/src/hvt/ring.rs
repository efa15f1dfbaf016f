//! Solo5's shared net ring (`HVT_FEATURE_RING_IO`) served from a polling core: the guest queues `net_write` and `net_read` requests in a ring in its own memory and never exits for them; [`serve`] takes its requests in order and carries each out on the device's rings in the reserve (`net`), posting a commit for every read.
//!
//! The ring (layout in `vmm_abi::hvt`, `RING_*`) lies in the last pages
//! below the reserve; the guest's `mem_size` ends where it starts ([`place`]),
//! so no buffer of a request may point into it. Writes are fire and
//! forget: one whose device has no free transmit slot waits in the ring
//! (and every request behind it, for any device: the ring is served in
//! order, as the guest queued it) until the peer takes frames, or is
//! dropped and counted once the caller says it waited long enough. Reads are
//! answered at once, with `AGAIN` when nothing waits (the guest spins on
//! the commit). A request naming a buffer outside the guest's memory, or
//! indices that claim more requests than the ring holds, stop the guest
//! by name, as the tender stops on a bad guest address.

use crate::devices::virtio::error::RingError;
use crate::hvt::call::{HvtNets, inside};
use crate::hvt::net::{self, NetFail, RingPlace};
use crate::mem::access::{Barrier, Gpa, GuestRam, OutOfBounds};
use crate::mem::raw::RawRam;
use vmm_abi::hvt::{
    self, RING_BYTES, RING_COM_HEAD, RING_COM_TAIL, RING_COMMIT_LEN, RING_COMMIT_RET,
    RING_COMMIT_SIZE, RING_COMMITS, RING_ENT_HEAD, RING_ENT_TAIL, RING_ENTRIES, RING_ENTRY_DATA,
    RING_ENTRY_HANDLE, RING_ENTRY_ID, RING_ENTRY_LEN, RING_ENTRY_SIZE, RING_OP_NET_READ,
    RING_OP_NET_WRITE, RING_SIZE,
};

/// Bytes of a page: the ring starts on one.
const PAGE: u64 = 0x1000;
/// The lowest place a ring may start (as the tender: below this there is
/// not memory enough for a guest beside it).
const RING_MIN_GPA: u64 = 0x20_0000;

/// Where the shared ring of a guest that sees `visible` bytes goes: the
/// last whole pages that hold it. The guest's `mem_size` (and stack top)
/// is this address. `None` if the guest would keep less than 2 MiB.
pub fn place(visible: u64) -> Option<u64> {
    let at = visible.checked_sub(RING_BYTES)? & !(PAGE - 1);
    (at >= RING_MIN_GPA).then_some(at)
}

/// Why [`serve`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// No request waits.
    Empty,
    /// A write waits for a transmit slot of its device.
    Full,
    /// The read's commit has no room: the guest has not consumed the
    /// commits it was given.
    CommitsFull,
    /// `budget` requests were served; more may wait.
    Budget,
}

/// What one [`serve`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pass {
    /// Frames sent (writes placed on a transmit ring).
    pub sent: u32,
    /// Reads answered on one of the guest's devices (a frame, `AGAIN`,
    /// or `EINVAL` for a buffer shorter than the frame waiting).
    pub reads: u32,
    /// Of them, reads that got a frame.
    pub received: u32,
    /// Requests refused: an unknown operation or handle, a frame longer
    /// than the device carries (writes have no answer to give; reads are
    /// answered `EINVAL`).
    pub refused: u32,
    /// Writes dropped for want of a transmit slot (`drop_full`).
    pub dropped: u32,
    /// Why it stopped.
    pub stop: Stop,
    /// The guest broke the ring's rules: it is to be stopped with this.
    pub fault: Option<RingError>,
}

impl Pass {
    fn new() -> Pass {
        Pass {
            sent: 0,
            reads: 0,
            received: 0,
            refused: 0,
            dropped: 0,
            stop: Stop::Empty,
            fault: None,
        }
    }
}

/// One request as the guest wrote it.
#[derive(Clone, Copy, Debug)]
struct Request {
    op: u32,
    handle: u32,
    data: u64,
    len: u32,
    id: u32,
}

fn read_request(mem: &impl GuestRam, at: u64) -> Result<Request, OutOfBounds> {
    Ok(Request {
        op: mem.read_u32(Gpa(at))?,
        handle: mem.read_u32(Gpa(at + RING_ENTRY_HANDLE))?,
        data: mem.read_u64(Gpa(at + RING_ENTRY_DATA))?,
        len: mem.read_u32(Gpa(at + RING_ENTRY_LEN))?,
        id: mem.read_u32(Gpa(at + RING_ENTRY_ID))?,
    })
}

/// Whether requests wait in the ring at `gpa` (the guest's memory can be
/// read).
pub fn pending(mem: &impl GuestRam, gpa: u64) -> Result<bool, OutOfBounds> {
    let tail = mem.read_u32(Gpa(gpa + RING_ENT_TAIL))?;
    let head = mem.read_u32(Gpa(gpa + RING_ENT_HEAD))?;
    Ok(head != tail)
}

/// Serves at most `budget` requests of the ring at `ring` (also the
/// guest's `mem_size`: every buffer lies strictly below it) in order, each
/// on the device of `nets` (Solo5 handle, rings) it names. With `drop_full`, a
/// write whose device has no free transmit slot is dropped and counted
/// rather than waited for.
pub fn serve(
    mem: &mut impl GuestRam,
    ring: u64,
    nets: &[(u64, RingPlace)],
    budget: u32,
    drop_full: bool,
) -> Pass {
    let mut pass = Pass::new();
    let fail = |mut pass: Pass, e: RingError| {
        pass.fault = Some(e);
        pass
    };
    let at = |off: u64| Gpa(ring + off);
    let indices = (|| {
        let tail = mem.read_u32(at(RING_ENT_TAIL))?;
        let head = mem.read_u32(at(RING_ENT_HEAD))?;
        let com_head = mem.read_u32(at(RING_COM_HEAD))?;
        let com_tail = mem.read_u32(at(RING_COM_TAIL))?;
        Ok::<_, OutOfBounds>((tail, head, com_head, com_tail))
    })();
    let Ok((tail, mut head, com_head, mut com_tail)) = indices else {
        return fail(pass, RingError::HvtRingMemory { gpa: ring });
    };
    if tail.wrapping_sub(head) > RING_SIZE {
        return fail(pass, RingError::HvtRingIndices { head, tail });
    }
    // Entries up to `tail` are the guest's to have written before it
    // moved `tail`.
    mem.fence(Barrier::Acquire);
    let mut served = 0;
    while head != tail {
        if served == budget {
            pass.stop = Stop::Budget;
            break;
        }
        let slot = head % RING_SIZE;
        let Ok(req) = read_request(mem, ring + RING_ENTRIES + u64::from(slot) * RING_ENTRY_SIZE)
        else {
            return fail(pass, RingError::HvtRingMemory { gpa: ring });
        };
        let device = nets
            .iter()
            .find(|(h, _)| *h == u64::from(req.handle))
            .map(|&(_, p)| p);
        let len = u64::from(req.len);
        let bad_buffer = RingError::HvtRingBuffer {
            entry: slot as u16,
            write: req.op == RING_OP_NET_WRITE,
            gpa: req.data,
            len: req.len,
        };
        match (req.op, device) {
            (RING_OP_NET_WRITE, Some(place)) => {
                if !inside(req.data, len, ring) {
                    return fail(pass, bad_buffer);
                }
                match net::send(mem, place, Gpa(req.data), len) {
                    Ok(()) => pass.sent += 1,
                    Err(NetFail::Again) if drop_full => pass.dropped += 1,
                    Err(NetFail::Again) => {
                        pass.stop = Stop::Full;
                        break;
                    }
                    Err(NetFail::Memory(_)) => return fail(pass, bad_buffer),
                    Err(NetFail::Length { .. } | NetFail::BadUsed { .. }) => pass.refused += 1,
                }
            }
            (RING_OP_NET_READ, _) => {
                if com_tail.wrapping_sub(com_head) >= RING_SIZE {
                    pass.stop = Stop::CommitsFull;
                    break;
                }
                let (ret, got) = match device {
                    None => {
                        pass.refused += 1;
                        (hvt::R_EINVAL, 0)
                    }
                    Some(_) if !inside(req.data, len, ring) => {
                        return fail(pass, bad_buffer);
                    }
                    Some(place) => match net::recv(mem, place, Gpa(req.data), len) {
                        Ok(n) => {
                            pass.received += 1;
                            (hvt::R_OK, n as u32)
                        }
                        Err(NetFail::Again) => (hvt::R_AGAIN, 0),
                        Err(NetFail::Length { .. }) => (hvt::R_EINVAL, 0),
                        Err(NetFail::BadUsed { .. }) => (hvt::R_EUNSPEC, 0),
                        Err(NetFail::Memory(_)) => return fail(pass, bad_buffer),
                    },
                };
                let c = ring + RING_COMMITS + u64::from(com_tail % RING_SIZE) * RING_COMMIT_SIZE;
                let commit = mem
                    .write_u32(Gpa(c), req.id)
                    .and_then(|()| mem.write_u32(Gpa(c + RING_COMMIT_RET), ret as u32))
                    .and_then(|()| mem.write_u32(Gpa(c + RING_COMMIT_LEN), got));
                if commit.is_err() {
                    return fail(pass, RingError::HvtRingMemory { gpa: ring });
                }
                pass.reads += u32::from(device.is_some());
                com_tail = com_tail.wrapping_add(1);
                // The commit is whole before the guest sees it, and the
                // request is consumed with it.
                mem.fence(Barrier::Release);
                let published = mem
                    .write_u32(at(RING_COM_TAIL), com_tail)
                    .and_then(|()| mem.write_u32(at(RING_ENT_HEAD), head.wrapping_add(1)));
                if published.is_err() {
                    return fail(pass, RingError::HvtRingMemory { gpa: ring });
                }
            }
            // A write naming no device of the guest, or an operation that
            // does not exist: nothing to do and nobody to tell.
            _ => pass.refused += 1,
        }
        head = head.wrapping_add(1);
        served += 1;
    }
    mem.fence(Barrier::Release);
    if mem.write_u32(at(RING_ENT_HEAD), head).is_err() {
        return fail(pass, RingError::HvtRingMemory { gpa: ring });
    }
    pass
}

/// A guest's ring while it runs, as its polling core serves it.
pub struct Live {
    /// The guest's memory.
    ram: RawRam,
    /// The ring's address.
    ring: u64,
    nets: HvtNets,
    /// TSC ticks a write may wait for a transmit slot before it is
    /// dropped (a peer that never takes frames must not stall the ring,
    /// and the reads behind the write, for ever).
    patience: u64,
    /// Since when the first waiting write has waited.
    full_since: Option<u64>,
    /// Writes dropped after waiting `patience`, this run.
    pub dropped: u64,
    /// The guest broke the ring's rules: it is being stopped, and the ring
    /// is served no more (so nothing it queued goes out twice).
    faulted: bool,
    /// Requests refused, this run.
    pub refused: u64,
}

/// One hvt VM's shared ring, reached by its VM's core and by the polling
/// core that serves it. Its lock is also the driver lock of the VM's net
/// devices: the VM's own `net_write`/`net_read` hypercalls drive the same
/// rings in the reserve, so they take it too. Nothing else is locked
/// while it is held, and it is never held across a VM entry.
#[derive(Default)]
pub struct RingShared {
    live: spin::Mutex<Option<Live>>,
}

impl RingShared {
    /// The VM's run begins with a ring at `ring` over `ram`, serving
    /// `nets`; writes wait at most `patience` ticks for a slot.
    pub fn attach(&self, ram: RawRam, ring: u64, nets: HvtNets, patience: u64) {
        *self.live.lock() = Some(Live {
            ram,
            ring,
            nets,
            patience,
            full_since: None,
            dropped: 0,
            refused: 0,
            faulted: false,
        });
    }

    /// The VM's run ended (before its memory is freed): nobody touches
    /// the ring any more. Returns (dropped, refused) of the run.
    pub fn detach(&self) -> Option<(u64, u64)> {
        self.live
            .lock()
            .take()
            .map(|live| (live.dropped, live.refused))
    }

    /// Holds the VM's net devices for one driver call of its own core.
    pub fn driver(&self) -> spin::MutexGuard<'_, Option<Live>> {
        self.live.lock()
    }

    /// The ring's address, while attached.
    pub fn gpa(&self) -> Option<u64> {
        self.live.lock().as_ref().map(|l| l.ring)
    }

    /// Serves at most `budget` requests at TSC `now`; `None` if the ring
    /// is not attached or its VM's core is driving the devices right now
    /// (the next pass serves it).
    pub fn service(&self, now: u64, budget: u32) -> Option<Pass> {
        let mut guard = self.live.try_lock()?;
        let live = guard.as_mut().filter(|l| !l.faulted)?;
        let drop_full = live
            .full_since
            .is_some_and(|t| now.wrapping_sub(t) >= live.patience);
        let pass = serve(&mut live.ram, live.ring, &live.nets, budget, drop_full);
        live.full_since = match pass.stop {
            Stop::Full => Some(live.full_since.unwrap_or(now)),
            _ => None,
        };
        live.dropped += u64::from(pass.dropped);
        live.refused += u64::from(pass.refused);
        live.faulted = pass.fault.is_some();
        Some(pass)
    }
}

#[cfg(test)]
mod tests;
