//! A NIC in `owned` mode: it serves exactly one guest port, and the guest's own virtio buffers go into the NIC's descriptors (mediated zero-copy), each checked first; revocation takes them all back before the guest's memory can go to anyone else.
//!
//! Receive: each buffer the guest posts must be one device-writable
//! descriptor with room for the virtio-net header and the largest frame
//! the NIC accepts, and [`ZC_RX_BYTES`] bytes from just behind the header
//! must lie in the guest's writable memory (the most the NIC can ever
//! write there), else the guest broke the rules and its port is blamed.
//! The NIC writes the frame behind the header; when it is done, the
//! header is written and the chain completed with the frame's length. A
//! frame longer than the guest's buffer is not delivered (`drop_size`);
//! one the NIC marked bad neither (the driver counts it).
//!
//! Transmit: a frame must sit in one device-readable descriptor behind its
//! header, wholly in the guest's memory. Its Ethernet header is copied
//! first and checked there (the source must be the port's MAC, else
//! `drop_spoofed`); the NIC sends that copy followed by the rest from the
//! guest's buffer, so what was checked is what goes out.
//!
//! Revocation: when the port goes down, changes its rings (a new
//! generation) or goes away, the NIC is quiesced and every descriptor
//! cleared ([`ZeroCopy::zc_revoke`]) before anything else happens; the
//! held chains are forgotten (the guest's rings are being reset or are
//! gone). [`Owned::holds`] tells the VM's core whether the NIC still holds
//! any of them; after taking the port down it waits until it does not
//! before the guest's memory is freed.
#![forbid(unsafe_code)]

use super::endpoint::{FrameSink, FrameSource, LinkEnd, Receiver};
use super::port::{PortInner, PortState};
use super::rings::{HEADER_WORDS, Pop, Rings};
use super::switch::{ETH_HEADER, MAC_LEN, MAX_WIRE_FRAME};
use crate::devices::virtio::error::RingError;
use crate::devices::virtio::net::{NET_HDR_LEN, receive_header};
use crate::devices::virtio::queue::{
    Chain, Descriptor, Popped, QueueError, SplitQueue, VIRTQ_DESC_F_WRITE,
};
use crate::mem::access::{Gpa, GuestRam, GuestRead};
use crate::mem::raw::RawRam;
use crate::nic::{ETH_HEADER_BYTES, NicError, ZC_RX_BYTES, ZeroCopy};
use vmm_abi::report::NicPortFlow;

/// Buffers of each ring the NIC may hold at once (cookies `0 .. SLOTS`).
pub const SLOTS: usize = 64;
/// Bytes a receive buffer must offer behind the virtio-net header: the
/// longest frame the NIC accepts without long-packet mode (1522 bytes,
/// VLAN-tagged) and its FCS, should the NIC keep it.
pub const MIN_RX_ROOM: u32 = 1522 + 4;
/// Byte offset of the source MAC in an Ethernet header.
const SRC_MAC: usize = MAC_LEN;

/// A guest receive buffer the NIC holds.
#[derive(Clone, Copy)]
struct RxHeld {
    head: u16,
    gpa: u64,
    room: u32,
}

/// A guest frame popped that the NIC had no room for yet.
#[derive(Clone, Copy)]
struct TxPending {
    head: u16,
    header: [u8; ETH_HEADER_BYTES],
    body: u64,
    body_len: u32,
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Buffers completed back to the guest (frames in, frames sent).
    pub moved: u32,
    /// The guest's port broke a rule (its VM is to be stopped).
    pub blamed: Option<RingError>,
}

/// The owned NIC's view of its one port.
#[derive(Default)]
pub struct Owned {
    rx: Slots<RxHeld>,
    tx: Slots<u16>,
    /// A receive chain popped that the NIC had no room for yet.
    rx_pending: Option<RxHeld>,
    /// A checked frame popped that the NIC had no room for yet.
    tx_pending: Option<TxPending>,
    /// The port generation the NIC holds buffers of; `None`: none.
    given_from: Option<u32>,
    /// The port's counters.
    pub flow: NicPortFlow,
    /// The first error the driver answered with (the NIC is then left
    /// alone).
    pub error: Option<NicError>,
    /// Clock ticks spent on each frame's own steps, by kind: a receive
    /// completion or refill, a transmit or its completion, and the publish
    /// or doorbell after them. Not the pass's fixed cost (its revocation
    /// check and ring views), which in lockstep traffic falls on the
    /// completion and the refill together or apart as the guest's ring
    /// writes meet the passes, and so is not repeatable.
    pub busy: Busy,
}

/// Clock ticks an owned NIC's polling core spent on the frames' steps, by
/// kind of step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Busy {
    /// Frames from the wire completed to the guest (and the publishes).
    pub rx_done: Steps,
    /// Receive buffers given to the NIC (and the doorbells).
    pub rx_given: Steps,
    /// Guest frames taken and given to the NIC (and the doorbells).
    pub tx_sent: Steps,
    /// Sent frames completed to the guest (and the publishes).
    pub tx_done: Steps,
}

/// Steps of one kind: how many, and the clock ticks they took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Steps {
    /// Steps taken.
    pub n: u64,
    /// Clock ticks they (and the publish or doorbell after them) took.
    pub ticks: u64,
}

impl Steps {
    /// One more step, of `ticks`.
    #[inline]
    fn add(&mut self, ticks: u64) {
        self.n += 1;
        self.ticks = self.ticks.wrapping_add(ticks);
    }

    /// Ticks of the publish or doorbell that followed steps already
    /// counted.
    #[inline]
    fn more(&mut self, ticks: u64) {
        self.ticks = self.ticks.wrapping_add(ticks);
    }

    /// These steps since `start` (a reading of the same counter).
    pub fn since(&self, start: &Steps) -> Steps {
        Steps {
            n: self.n.wrapping_sub(start.n),
            ticks: self.ticks.wrapping_sub(start.ticks),
        }
    }

    /// What `frames` steps cost at these steps' average (0 if none were
    /// taken).
    pub fn for_frames(&self, frames: u64) -> u64 {
        self.ticks
            .saturating_mul(frames)
            .checked_div(self.n)
            .unwrap_or(0)
    }
}

impl Busy {
    /// Ticks spent on the wire-to-guest steps.
    pub fn rx(&self) -> u64 {
        self.rx_done.ticks.wrapping_add(self.rx_given.ticks)
    }

    /// Ticks spent on the guest-to-wire steps.
    pub fn tx(&self) -> u64 {
        self.tx_sent.ticks.wrapping_add(self.tx_done.ticks)
    }

    /// These counters since `start` (a reading of the same NIC's).
    pub fn since(&self, start: &Busy) -> Busy {
        Busy {
            rx_done: self.rx_done.since(&start.rx_done),
            rx_given: self.rx_given.since(&start.rx_given),
            tx_sent: self.tx_sent.since(&start.tx_sent),
            tx_done: self.tx_done.since(&start.tx_done),
        }
    }

    /// What `rx_frames` frames in and `tx_frames` out cost, each kind of
    /// step at its average over these counters. A window that starts and
    /// ends at frame counts cuts some frames' steps apart (a frame
    /// delivered in the window whose buffer comes back after it, or the
    /// other way round), so it may hold one step of a kind more or fewer
    /// than it has frames; at each kind's average those edges do not move
    /// the sum. (A frame popped and dropped, or one the NIC marked bad,
    /// is a step too; with drops in the window the average is a little
    /// under a delivered frame's.)
    pub fn for_frames(&self, rx_frames: u64, tx_frames: u64) -> (u64, u64) {
        (
            (self.rx_done.for_frames(rx_frames))
                .saturating_add(self.rx_given.for_frames(rx_frames)),
            (self.tx_sent.for_frames(tx_frames)).saturating_add(self.tx_done.for_frames(tx_frames)),
        )
    }
}

/// What the NIC holds of one ring, by cookie (`0 .. SLOTS`), with the
/// free cookies on a stack: finding one costs the same however many the
/// NIC holds.
#[derive(Clone, Copy)]
struct Slots<T> {
    held: [Option<T>; SLOTS],
    /// `free[..n_free]`: every cookie whose `held` is `None`, each once.
    free: [u16; SLOTS],
    n_free: usize,
}

impl<T: Copy> Default for Slots<T> {
    fn default() -> Self {
        let mut free = [0u16; SLOTS];
        // Cookie 0 on top, handed out first.
        for (i, c) in free.iter_mut().enumerate() {
            *c = (SLOTS - 1 - i) as u16;
        }
        Slots {
            held: [None; SLOTS],
            free,
            n_free: SLOTS,
        }
    }
}

impl<T: Copy> Slots<T> {
    /// The cookie [`Slots::hold`] would use next, if any is free.
    #[inline]
    fn next_free(&self) -> Option<u16> {
        let top = self.n_free.checked_sub(1)?;
        self.free.get(top).copied()
    }

    /// Holds `value` under the cookie [`Slots::next_free`] gave.
    #[inline]
    fn hold(&mut self, value: T) {
        if let Some(c) = self.next_free()
            && let Some(slot) = self.held.get_mut(usize::from(c))
        {
            *slot = Some(value);
            self.n_free -= 1;
        }
    }

    /// What `cookie` held, its cookie free again; `None` if it held nothing.
    #[inline]
    fn release(&mut self, cookie: u16) -> Option<T> {
        let value = self.held.get_mut(usize::from(cookie))?.take()?;
        // A cookie is on the stack only while its slot is empty, so the
        // stack has room for it.
        if let Some(top) = self.free.get_mut(self.n_free) {
            *top = cookie;
            self.n_free += 1;
        }
        Some(value)
    }
}

impl Owned {
    /// Whether the NIC holds any of the port's buffers. After the port
    /// went down, the guest's memory may be freed once this is `false`:
    /// a down port is never given to the NIC.
    pub fn holds(&self) -> bool {
        self.given_from.is_some()
    }

    /// Forgets every buffer the NIC held (after a revocation).
    fn forget(&mut self) {
        self.rx = Slots::default();
        self.tx = Slots::default();
        self.rx_pending = None;
        self.tx_pending = None;
        self.given_from = None;
    }

    /// The NIC now holds a buffer of generation `generation`.
    fn hold(&mut self, generation: u32) {
        self.given_from = Some(generation);
    }

    /// One pass over the NIC and the port (`mac` its address): revocation
    /// if the port changed, then receive completions and refills, transmit
    /// completions and new frames, at most `budget` new frames. `clock`
    /// times each half for [`Owned::busy`].
    pub fn pass<Z: ZeroCopy>(
        &mut self,
        nic: &mut Z,
        port: &mut PortInner,
        mac: [u8; MAC_LEN],
        budget: u32,
        clock: &impl Fn() -> u64,
    ) -> Pass {
        if self.error.is_some() {
            return Pass::default();
        }
        match self.pass_inner(nic, port, mac, budget, clock) {
            Ok(pass) => pass,
            Err(Stop::Nic(e)) => {
                // The NIC is left alone from now on; first it is made to
                // let go of the guest's memory, if it still can.
                self.error.get_or_insert(e);
                if nic.zc_revoke().is_ok() {
                    self.forget();
                }
                Pass::default()
            }
            Err(Stop::Guest(e)) => {
                port.blame(e);
                Pass {
                    moved: 0,
                    blamed: Some(e),
                }
            }
        }
    }

    fn pass_inner<Z: ZeroCopy>(
        &mut self,
        nic: &mut Z,
        port: &mut PortInner,
        mac: [u8; MAC_LEN],
        budget: u32,
        clock: &impl Fn() -> u64,
    ) -> Result<Pass, Stop> {
        let generation = port.generation();
        let up = port.state() == PortState::Up;
        if let Some(g) = self.given_from
            && (!up || g != generation)
        {
            nic.zc_revoke()?;
            self.forget();
        }
        if !up {
            return Ok(Pass::default());
        }
        let received = self.receive(nic, port, generation, clock)?;
        let sent = self.transmit(nic, port, mac, budget, generation, clock)?;
        let moved = received + sent;
        Ok(Pass {
            moved,
            blamed: None,
        })
    }

    /// Receive completions, then refills; returns the buffers completed.
    /// Each completion and the publish after them is timed into
    /// `busy.rx_done`, each refill and the doorbell after them into
    /// `busy.rx_given`.
    fn receive<Z: ZeroCopy>(
        &mut self,
        nic: &mut Z,
        port: &mut PortInner,
        generation: u32,
        clock: &impl Fn() -> u64,
    ) -> Result<u32, Stop> {
        let Some((Receiver::Ready(mut sink), _)) = port.sink() else {
            return Ok(0);
        };
        let Some(ring) = sink.raw_ring() else {
            return Ok(0);
        };
        let mut ram = *ring.ram;
        let queue = ring.queue;
        // The rings resolved once for the pass (a copy of the view, so the
        // general path below may still take it mutably).
        let view = ram;
        let rings = Rings::of(queue, &view);
        let mut moved = 0;
        loop {
            let t0 = clock();
            let Some((cookie, len)) = nic.zc_rx_taken()? else {
                break;
            };
            let Some(held) = self.rx.release(cookie) else {
                continue;
            };
            let used = match len {
                Some(len) if len <= held.room => {
                    // One lookup and two stores where the header's bytes
                    // are in one piece (always, for a buffer that was
                    // resolved when it was given), else the general write.
                    let fast = ram
                        .resolve(held.gpa, NET_HDR_LEN.into(), true)
                        .and_then(|r| {
                            r.write_u64(0, HEADER_WORDS.0)?;
                            r.write_u32(8, HEADER_WORDS.1)
                        });
                    if fast.is_none() && ram.write(Gpa(held.gpa), &receive_header()).is_err() {
                        self.flow.drop_fault += 1;
                        return Err(guest(QueueError::BufferNotWritable {
                            addr: held.gpa,
                            len: NET_HDR_LEN,
                        }));
                    }
                    self.flow.rx_frames += 1;
                    self.flow.rx_bytes += u64::from(len);
                    NET_HDR_LEN + len
                }
                Some(_) => {
                    self.flow.drop_size += 1;
                    0
                }
                None => 0,
            };
            add_used(rings.as_ref(), queue, &mut ram, held.head, used)?;
            moved += 1;
            self.busy.rx_done.add(clock().wrapping_sub(t0));
        }
        let t0 = clock();
        publish(rings.as_ref(), queue, &mut ram)?;
        if moved > 0 {
            self.busy.rx_done.more(clock().wrapping_sub(t0));
        }
        // Refill: every buffer the guest posted, while the NIC has room.
        let mut given = false;
        loop {
            let t0 = clock();
            let Some(cookie) = self.rx.next_free() else {
                break;
            };
            let held = match self.rx_pending.take() {
                Some(h) => h,
                None => {
                    let Some((head, desc)) = pop_next(rings.as_ref(), queue, &mut ram)? else {
                        break;
                    };
                    match rx_buffer(head, desc)? {
                        Some(h) => h,
                        None => {
                            // Too small for a frame: back, empty, counted.
                            self.flow.drop_size += 1;
                            queue.add_used(&mut ram, head, 0).map_err(guest)?;
                            queue.publish_used(&mut ram).map_err(guest)?;
                            continue;
                        }
                    }
                }
            };
            let bus = ram
                .resolve(held.gpa + u64::from(NET_HDR_LEN), ZC_RX_BYTES, true)
                .map(|r| r.hpa())
                .ok_or(Stop::Guest(RingError::NicWindowOutside {
                    head: held.head,
                    addr: held.gpa,
                    window: ZC_RX_BYTES,
                }))?;
            if !nic.zc_rx_give(bus, cookie)? {
                self.rx_pending = Some(held);
                break;
            }
            self.rx.hold(held);
            self.hold(generation);
            given = true;
            self.busy.rx_given.add(clock().wrapping_sub(t0));
        }
        let t0 = clock();
        nic.zc_rx_flush();
        if given {
            self.busy.rx_given.more(clock().wrapping_sub(t0));
        }
        Ok(moved)
    }

    /// Transmit completions, then new frames; returns the buffers
    /// completed and the frames taken. Each completion and the publish
    /// after them is timed into `busy.tx_done`, each frame taken and the
    /// doorbell after the frames sent into `busy.tx_sent`.
    fn transmit<Z: ZeroCopy>(
        &mut self,
        nic: &mut Z,
        port: &mut PortInner,
        mac: [u8; MAC_LEN],
        budget: u32,
        generation: u32,
        clock: &impl Fn() -> u64,
    ) -> Result<u32, Stop> {
        let Some(mut source) = port.source() else {
            return Ok(0);
        };
        let Some(ring) = source.raw_ring() else {
            return Ok(0);
        };
        let mut ram = *ring.ram;
        let queue = ring.queue;
        let view = ram;
        let rings = Rings::of(queue, &view);
        let mut moved = 0;
        loop {
            let t0 = clock();
            let Some(cookie) = nic.zc_tx_taken()? else {
                break;
            };
            if let Some(head) = self.tx.release(cookie) {
                add_used(rings.as_ref(), queue, &mut ram, head, 0)?;
                moved += 1;
                self.busy.tx_done.add(clock().wrapping_sub(t0));
            }
        }
        // Frames popped (sent or dropped); the frames given to the NIC (a
        // popped one, or one that waited for room) are the sent count's
        // growth.
        let sent_before = self.flow.tx_frames;
        let mut taken = 0;
        while taken < budget {
            let t0 = clock();
            let Some(cookie) = self.tx.next_free() else {
                break;
            };
            let frame = match self.tx_pending.take() {
                Some(f) => f,
                None => {
                    let Some((head, desc)) = pop_next(rings.as_ref(), queue, &mut ram)? else {
                        break;
                    };
                    taken += 1;
                    let checked = self.checked_frame(head, desc, &ram, mac);
                    self.flow.drop_fault += u64::from(checked.is_err());
                    match checked? {
                        Some(f) => f,
                        None => {
                            add_used(rings.as_ref(), queue, &mut ram, head, 0)?;
                            self.busy.tx_sent.add(clock().wrapping_sub(t0));
                            continue;
                        }
                    }
                }
            };
            if !nic.zc_tx_give(&frame.header, frame.body, frame.body_len, cookie)? {
                // No room: it goes on a later pass, after completions.
                self.tx_pending = Some(frame);
                break;
            }
            self.tx.hold(frame.head);
            self.hold(generation);
            let len = ETH_HEADER + frame.body_len;
            self.flow.tx_frames += 1;
            self.flow.tx_bytes += u64::from(len);
            self.busy.tx_sent.add(clock().wrapping_sub(t0));
        }
        // The doorbell is the sent frames'; the publish the completions'
        // (or, in a pass without any, the frames popped and dropped).
        let t0 = clock();
        nic.zc_tx_flush();
        let t1 = clock();
        publish(rings.as_ref(), queue, &mut ram)?;
        let t2 = clock();
        let (doorbell, published) = (t1.wrapping_sub(t0), t2.wrapping_sub(t1));
        if self.flow.tx_frames != sent_before {
            self.busy.tx_sent.more(doorbell);
        }
        if moved > 0 {
            self.busy.tx_done.more(published);
        } else if taken > 0 {
            self.busy.tx_sent.more(published);
        }
        Ok(moved + taken)
    }

    /// The frame of a transmit chain, checked: `None` (counted) for one the
    /// wire cannot carry or from another MAC; an error for a rule broken.
    fn checked_frame(
        &mut self,
        head: u16,
        desc: Option<Descriptor>,
        ram: &RawRam,
        mac: [u8; MAC_LEN],
    ) -> Result<Option<TxPending>, Stop> {
        let Some((gpa, len)) = tx_frame(head, desc)? else {
            self.flow.drop_size += 1;
            return Ok(None);
        };
        let mut header = [0u8; ETH_HEADER_BYTES];
        let body_len = len - ETH_HEADER;
        let body_gpa = gpa + u64::from(ETH_HEADER);
        // The whole frame in one piece (the common case): one lookup for
        // the header's copy and the body's address.
        if let Some(r) = ram.resolve(gpa, len.into(), false)
            && r.read_into(0, &mut header).is_some()
        {
            if header[SRC_MAC..SRC_MAC + MAC_LEN] != mac {
                self.flow.drop_spoofed += 1;
                return Ok(None);
            }
            return Ok(Some(TxPending {
                head,
                header,
                body: if body_len == 0 {
                    0
                } else {
                    r.hpa() + u64::from(ETH_HEADER)
                },
                body_len,
            }));
        }
        ram.read(Gpa(gpa), &mut header)
            .map_err(|_| guest(QueueError::BufferOutsideMemory { addr: gpa, len }))?;
        if header[SRC_MAC..SRC_MAC + MAC_LEN] != mac {
            self.flow.drop_spoofed += 1;
            return Ok(None);
        }
        let body = if body_len == 0 {
            0
        } else {
            ram.resolve(body_gpa, body_len.into(), false)
                .map(|r| r.hpa())
                .ok_or_else(|| {
                    guest(QueueError::BufferOutsideMemory {
                        addr: body_gpa,
                        len: body_len,
                    })
                })?
        };
        Ok(Some(TxPending {
            head,
            header,
            body,
            body_len,
        }))
    }
}

/// Why a pass stopped.
enum Stop {
    /// The NIC's driver failed (the hypervisor's problem).
    Nic(NicError),
    /// The guest's ring broke a rule.
    Guest(RingError),
}

impl From<NicError> for Stop {
    fn from(e: NicError) -> Self {
        Stop::Nic(e)
    }
}

fn guest(e: QueueError) -> Stop {
    Stop::Guest(RingError::Queue(e))
}

/// The next entry the guest posted, from the resolved `rings` when they
/// take it ([`Rings::pop`], inlined into the pass), else as [`pop_one`]
/// gives it (out of line).
#[inline(always)]
fn pop_next(
    rings: Option<&Rings<'_>>,
    queue: &mut SplitQueue,
    ram: &mut RawRam,
) -> Result<Option<(u16, Option<Descriptor>)>, Stop> {
    if let Some(r) = rings {
        match r.pop(queue, ram) {
            Pop::Empty => return Ok(None),
            Pop::Single(head, desc) => return Ok(Some((head, Some(desc)))),
            Pop::General => {}
        }
    }
    pop_one(queue, ram)
}

/// Adds a used element through the resolved `rings` if there are any,
/// else through the queue (out of line).
#[inline(always)]
fn add_used(
    rings: Option<&Rings<'_>>,
    queue: &mut SplitQueue,
    ram: &mut RawRam,
    head: u16,
    len: u32,
) -> Result<(), Stop> {
    match rings.and_then(|r| r.add_used(queue, head, len)) {
        Some(()) => Ok(()),
        None => add_used_general(queue, ram, head, len),
    }
}

/// [`add_used`] through the queue's own checks.
#[inline(never)]
fn add_used_general(
    queue: &mut SplitQueue,
    ram: &mut RawRam,
    head: u16,
    len: u32,
) -> Result<(), Stop> {
    queue.add_used(ram, head, len).map_err(guest)
}

/// Publishes the used elements added so far.
fn publish(
    rings: Option<&Rings<'_>>,
    queue: &mut SplitQueue,
    ram: &mut RawRam,
) -> Result<(), Stop> {
    match rings {
        Some(r) => {
            r.publish(queue);
            Ok(())
        }
        None => queue.publish_used(ram).map_err(guest),
    }
}

/// The next entry the guest posted: its head, and its descriptor if the
/// chain is one descriptor (a longer chain is popped and checked whole,
/// without its descriptors); `None` if nothing new.
#[inline(never)]
fn pop_one(
    queue: &mut SplitQueue,
    ram: &mut RawRam,
) -> Result<Option<(u16, Option<Descriptor>)>, Stop> {
    match queue.pop_single(ram).map_err(guest)? {
        Popped::Empty => Ok(None),
        Popped::Single { head, desc } => Ok(Some((head, Some(desc)))),
        Popped::Chain => {
            // Rare: the chain is built only here.
            let mut chain = Chain::default();
            if !queue.pop_avail_into(ram, &mut chain).map_err(guest)? {
                return Ok(None);
            }
            Ok(Some((chain.head(), None)))
        }
    }
}

/// The receive buffer an entry offers: one device-writable descriptor
/// with room for the header and [`MIN_RX_ROOM`]; `None` if it is too small
/// (or several descriptors); an error if it is readable (a rule broken).
fn rx_buffer(head: u16, desc: Option<Descriptor>) -> Result<Option<RxHeld>, Stop> {
    let Some(d) = desc else {
        return Ok(None);
    };
    if d.flags & VIRTQ_DESC_F_WRITE == 0 {
        return Err(Stop::Guest(RingError::ReadableInReceive { head }));
    }
    let room = d.len.saturating_sub(NET_HDR_LEN);
    Ok((room >= MIN_RX_ROOM).then_some(RxHeld {
        head,
        gpa: d.addr,
        room,
    }))
}

/// The frame an entry holds: its guest address (behind the header) and
/// length, if it is one device-readable descriptor with a frame the wire
/// carries; `None` otherwise; an error if it is writable.
fn tx_frame(head: u16, desc: Option<Descriptor>) -> Result<Option<(u64, u32)>, Stop> {
    let Some(d) = desc else {
        return Ok(None);
    };
    if d.flags & VIRTQ_DESC_F_WRITE != 0 {
        return Err(Stop::Guest(RingError::WritableInTransmit { head }));
    }
    let len = d.len.saturating_sub(NET_HDR_LEN);
    Ok((ETH_HEADER..=MAX_WIRE_FRAME)
        .contains(&len)
        .then_some((d.addr + u64::from(NET_HDR_LEN), len)))
}

#[cfg(test)]
mod tests;
