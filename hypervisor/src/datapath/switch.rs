//! A NIC's polling core as an L2 switch between the wire and the guest ports attached to it: delivery by destination MAC, anti-spoofing on transmit, every drop counted.
//!
//! The wire is reached through [`WireRx`] and [`WireTx`] (a NIC driver's
//! receive and transmit rings of hypervisor-owned buffers: `shared`
//! mode, one copy each way); each attached guest port is a
//! [`LinkEnd`], the same view of a virtio-net port the links use.
//!
//! - Wire to guests ([`Switch::inbound`]): a broadcast or multicast
//!   frame goes to every attached port that is up, a unicast frame to the
//!   port with that MAC; unknown unicast is dropped and counted. A port
//!   with no receive buffer posted loses the frame (`drop_no_buffer`):
//!   the wire does not wait.
//! - Guests to the wire ([`Switch::outbound`]): a frame whose source MAC
//!   is not its port's own is dropped (`drop_spoofed`), unless the port
//!   bridges (a transparent network function in front of other guests):
//!   it may send from any unicast address that is no other port's own,
//!   and the switch learns those addresses, so frames from the wire for
//!   them go to it; one the wire
//!   cannot carry (shorter than an Ethernet header, longer than
//!   [`MAX_WIRE_FRAME`]) is dropped (`drop_size`). The header checked is
//!   the copy already in the NIC's buffer, so the guest cannot change it
//!   afterwards. When the NIC's transmit ring is full, frames wait in the
//!   guest's ring.
//!
//! A ring that breaks the rules is blamed on its port, as on links; a
//! frame lost with it is counted (`drop_fault`). A hook on the NIC's
//! queue (a [`FramePolicy`] with a buffer of its own) judges each frame
//! from the wire before it is delivered (`drop_hook` on the wire) and each
//! frame to it after the anti-spoofing check (`drop_hook` on the port),
//! on a copy the guests cannot reach.
#![forbid(unsafe_code)]

use super::endpoint::{FrameSink, FrameSource, LinkEnd, Receiver};
use super::policy::{FramePolicy, Verdict};
use crate::devices::virtio::error::RingError;
use crate::mem::raw::HostRange;
use vmm_abi::report::{NicFlow, NicPortFlow};

/// Bytes in a MAC address.
pub const MAC_LEN: usize = 6;
/// Bytes of an Ethernet header (destination, source, type).
pub const ETH_HEADER: u32 = 14;
/// Longest frame the wire carries (a 1500-byte payload, no FCS, no VLAN
/// tag).
pub const MAX_WIRE_FRAME: u32 = 1514;
/// Most guest ports one NIC serves.
pub const MAX_SWITCH_PORTS: usize = 16;
/// Addresses learned behind bridging ports, per NIC (the oldest is
/// forgotten first when the table is full).
pub const MAX_LEARNED: usize = 64;
/// New addresses one port's pass learns (more are learned from their next
/// frames).
const LEARN_PER_PASS: usize = 8;
/// Byte offset of the source MAC in an Ethernet header.
const SRC_MAC: usize = MAC_LEN;
/// The group bit of a MAC's first byte: broadcast or multicast.
const GROUP_BIT: u8 = 0x01;

/// A NIC's receive ring as the switch uses it.
pub trait WireRx {
    /// The next good frame received: its slot and length (without FCS),
    /// or `None`. Bad frames are the driver's to drop and count.
    fn next(&mut self) -> Option<(u16, u32)>;
    /// Calls `f` with bytes `0 .. len` of the frame in `slot`, in order,
    /// in pieces (copies: the buffer is the NIC's memory).
    fn read(&self, slot: u16, len: u32, f: impl FnMut(&[u8]));
    /// Gives `slot` back to the NIC.
    fn recycle(&mut self, slot: u16);
    /// Makes the recycled slots the NIC's again (one register write).
    fn flush(&mut self);
    /// Bytes `0 .. len` of the frame in `slot` as one host range, if the
    /// NIC's memory is a raw view (the one-copy path); `None` otherwise.
    #[inline]
    fn raw(&self, _slot: u16, _len: u32) -> Option<HostRange<'_>> {
        None
    }
}

/// A NIC's transmit ring as the switch uses it.
pub trait WireTx {
    /// A free slot, or `None` while the ring is full. A slot claimed and
    /// not posted is claimed again by the next call (a dropped frame's
    /// slot serves the next one).
    fn claim(&mut self) -> Option<u16>;
    /// Writes `bytes` at byte `at` of the frame in `slot`; returns how
    /// many fitted (the caller keeps `at + bytes.len()` within
    /// [`MAX_WIRE_FRAME`], so all do unless the slot is not what it said).
    fn write(&mut self, slot: u16, at: u32, bytes: &[u8]) -> u32;
    /// Queues the frame of `len` bytes in `slot` for sending.
    fn post(&mut self, slot: u16, len: u32);
    /// Hands the queued frames to the NIC (one register write).
    fn flush(&mut self);
    /// Claimed `slot`'s whole buffer as one writable host range, if the
    /// NIC's memory is a raw view (the one-copy path); `None` otherwise.
    #[inline]
    fn raw(&self, _slot: u16) -> Option<HostRange<'_>> {
        None
    }
}

impl<W: WireRx + ?Sized> WireRx for &mut W {
    fn next(&mut self) -> Option<(u16, u32)> {
        (**self).next()
    }
    fn read(&self, slot: u16, len: u32, f: impl FnMut(&[u8])) {
        (**self).read(slot, len, f);
    }
    fn recycle(&mut self, slot: u16) {
        (**self).recycle(slot);
    }
    fn flush(&mut self) {
        WireRx::flush(&mut **self);
    }
    #[inline]
    fn raw(&self, slot: u16, len: u32) -> Option<HostRange<'_>> {
        WireRx::raw(&**self, slot, len)
    }
}

impl<W: WireTx + ?Sized> WireTx for &mut W {
    fn claim(&mut self) -> Option<u16> {
        (**self).claim()
    }
    fn write(&mut self, slot: u16, at: u32, bytes: &[u8]) -> u32 {
        (**self).write(slot, at, bytes)
    }
    fn post(&mut self, slot: u16, len: u32) {
        (**self).post(slot, len);
    }
    fn flush(&mut self) {
        WireTx::flush(&mut **self);
    }
    #[inline]
    fn raw(&self, slot: u16) -> Option<HostRange<'_>> {
        WireTx::raw(&**self, slot)
    }
}

impl<W: crate::nic::ZeroCopy + ?Sized> crate::nic::ZeroCopy for &mut W {
    fn zc_rx_give(&mut self, bus: u64, cookie: u16) -> Result<bool, crate::nic::NicError> {
        (**self).zc_rx_give(bus, cookie)
    }
    fn zc_rx_taken(&mut self) -> Result<Option<(u16, Option<u32>)>, crate::nic::NicError> {
        (**self).zc_rx_taken()
    }
    fn zc_rx_flush(&mut self) {
        (**self).zc_rx_flush();
    }
    fn zc_tx_give(
        &mut self,
        header: &[u8; crate::nic::ETH_HEADER_BYTES],
        body: u64,
        body_len: u32,
        cookie: u16,
    ) -> Result<bool, crate::nic::NicError> {
        (**self).zc_tx_give(header, body, body_len, cookie)
    }
    fn zc_tx_taken(&mut self) -> Result<Option<u16>, crate::nic::NicError> {
        (**self).zc_tx_taken()
    }
    fn zc_tx_flush(&mut self) {
        (**self).zc_tx_flush();
    }
    fn zc_revoke(&mut self) -> Result<(), crate::nic::NicError> {
        (**self).zc_revoke()
    }
}

/// One attached port as the switch keeps it.
pub struct SwitchPort<B> {
    /// Its MAC: frames to it are delivered, frames from it must carry it.
    pub mac: [u8; MAC_LEN],
    /// It bridges frames of machines behind it (a transparent network
    /// function): it may send from any unicast address but another
    /// port's own, and the switch learns those addresses for it.
    pub bridge: bool,
    /// A receive buffer taken and not filled, and its ring's generation.
    kept: Option<(B, u32)>,
    /// Its counters.
    pub flow: NicPortFlow,
}

impl<B> SwitchPort<B> {
    /// A port with `mac`, nothing counted yet.
    pub fn new(mac: [u8; MAC_LEN], bridge: bool) -> Self {
        SwitchPort {
            mac,
            bridge,
            kept: None,
            flow: NicPortFlow::default(),
        }
    }
}

/// The attached guest ports, each behind whatever lock the caller keeps.
pub trait Attached {
    /// A port's device state.
    type End: LinkEnd;
    /// Runs `f` on port `i`'s device state.
    fn with<R>(&self, i: usize, f: impl FnOnce(&mut Self::End) -> R) -> R;

    /// The switch's index of the port a hook names by `bpf_redirect`'s
    /// numbering (the run's port table), if it is attached here.
    fn index_of(&self, _port: u32) -> Option<usize> {
        None
    }
}

/// A ring that broke the rules: the port (index in the switch) and why.
pub type Blame = (usize, RingError);

/// One NIC's switch state: its ports and the wire's counters.
pub struct Switch<B> {
    /// The attached ports, in attachment order.
    pub ports: heapless::Vec<SwitchPort<B>, MAX_SWITCH_PORTS>,
    /// The wire's counters.
    pub wire: NicFlow,
    /// Addresses seen behind bridging ports, and the port.
    learned: [Option<([u8; MAC_LEN], usize)>; MAX_LEARNED],
    /// Where the next new address goes.
    next_learned: usize,
}

impl<B> Default for Switch<B> {
    fn default() -> Self {
        Switch {
            ports: heapless::Vec::new(),
            wire: NicFlow::default(),
            learned: [None; MAX_LEARNED],
            next_learned: 0,
        }
    }
}

/// Whether port `i` (`mac`, bridging or not) may send from `src`: its own
/// address, or, for a bridging port, any unicast address that is no
/// other port's own.
fn may_send_from<B>(ports: &[SwitchPort<B>], i: usize, src: &[u8]) -> bool {
    let Some(port) = ports.get(i) else {
        return false;
    };
    if src == port.mac {
        return true;
    }
    port.bridge && !is_group(src) && !ports.iter().any(|p| p.mac == src)
}

/// Whether `mac` is a group (broadcast or multicast) address.
pub fn is_group(mac: &[u8]) -> bool {
    mac.first().is_some_and(|b| b & GROUP_BIT != 0)
}

impl<B: Default> Switch<B> {
    /// Attaches a port with `mac` (bridging or not); `false` if the switch
    /// is full.
    pub fn attach(&mut self, mac: [u8; MAC_LEN], bridge: bool) -> bool {
        self.ports.push(SwitchPort::new(mac, bridge)).is_ok()
    }

    /// The port a unicast frame for `dst` goes to: the port with that
    /// address, else the bridging port it was learned behind.
    pub fn port_for(&self, dst: &[u8]) -> Option<usize> {
        self.ports.iter().position(|p| p.mac == dst).or_else(|| {
            self.learned
                .iter()
                .flatten()
                .find(|(mac, _)| mac == dst)
                .map(|&(_, i)| i)
        })
    }

    /// Remembers that `src` is behind port `i` (moving it if it was
    /// behind another; the oldest address is forgotten when full).
    fn learn(&mut self, src: [u8; MAC_LEN], i: usize) {
        if let Some(entry) = self.learned.iter_mut().flatten().find(|(m, _)| *m == src) {
            entry.1 = i;
            return;
        }
        self.learned[self.next_learned] = Some((src, i));
        self.next_learned = (self.next_learned + 1) % MAX_LEARNED;
    }

    /// Moves up to `budget` frames from the wire to the ports; returns
    /// frames taken from the wire, and calls `woken(i)` for each port that
    /// got one and `blamed` for each ring that broke the rules.
    pub fn inbound<W: WireRx, A: Attached, P: FramePolicy>(
        &mut self,
        wire: &mut W,
        ports: &A,
        budget: u32,
        mut woken: impl FnMut(usize),
        mut blamed: impl FnMut(Blame),
        policy: &mut P,
    ) -> u32
    where
        A::End: LinkEnd<Buffer = B>,
    {
        let mut taken = 0;
        while taken < budget {
            // A hook with no room for frames it sends back: the rest wait
            // in the NIC's ring.
            if P::INSPECTS && !policy.room() {
                break;
            }
            let Some((slot, len)) = wire.next() else {
                break;
            };
            taken += 1;
            self.wire.rx_frames += 1;
            self.wire.rx_bytes += u64::from(len);
            let mut dst = [0u8; MAC_LEN];
            let mut got = 0usize;
            // The destination from the raw view when there is one (one
            // load), else in pieces.
            match wire.raw(slot, MAC_LEN as u32) {
                Some(r) if len >= MAC_LEN as u32 => {
                    if r.read_into(0, &mut dst).is_some() {
                        got = MAC_LEN;
                    }
                }
                _ => wire.read(slot, len.min(MAC_LEN as u32), |piece| {
                    let n = piece.len().min(MAC_LEN - got);
                    dst[got..got + n].copy_from_slice(&piece[..n]);
                    got += n;
                }),
            }
            if len < ETH_HEADER || got < MAC_LEN {
                self.wire.drop_runt += 1;
                wire.recycle(slot);
                continue;
            }
            if P::INSPECTS && !judge_wire(wire, slot, len, policy) {
                // Redirected to one of this NIC's ports: delivered from the
                // hook's copy (as it left it) and counted as that port's
                // (delivered, or dropped for its reason); a port not on
                // this NIC is the hook's drop.
                let handled = match policy.take_redirect() {
                    Some(port) => {
                        let own = policy.own_buffer().and_then(|o| o.get(..len as usize));
                        match (ports.index_of(port), own) {
                            (Some(i), Some(own)) => {
                                let before = self.ports.get(i).map(|p| p.flow.rx_frames);
                                let bytes: Bytes<'_, W> = Bytes::Own(own);
                                self.deliver(i, &bytes, len, ports, &mut woken, &mut blamed);
                                let done = self.ports.get(i).map(|p| p.flow.rx_frames) != before;
                                policy.redirected(done);
                                true
                            }
                            _ => {
                                policy.redirected(false);
                                false
                            }
                        }
                    }
                    None => false,
                };
                if !handled {
                    self.wire.drop_hook += 1;
                }
                wire.recycle(slot);
                continue;
            }
            // A hook that changed its copy of the frame: that copy is what
            // is switched (by its own destination) and delivered.
            let rewritten = if P::INSPECTS && policy.rewrote() {
                policy.own_buffer().and_then(|o| o.get(..len as usize))
            } else {
                None
            };
            let bytes = match rewritten {
                Some(own) => {
                    dst.copy_from_slice(&own[..MAC_LEN]);
                    Bytes::Own(own)
                }
                None => Bytes::Wire(&*wire, slot),
            };
            if is_group(&dst) {
                for i in 0..self.ports.len() {
                    self.deliver(i, &bytes, len, ports, &mut woken, &mut blamed);
                }
            } else if let Some(i) = self.port_for(&dst) {
                self.deliver(i, &bytes, len, ports, &mut woken, &mut blamed);
            } else {
                self.wire.drop_unknown += 1;
            }
            wire.recycle(slot);
        }
        if taken > 0 {
            wire.flush();
        }
        taken
    }

    /// Sends `bytes` (a frame a receive hook sends back) onto the wire:
    /// `Some(true)` sent (counted), `Some(false)` not sendable (larger than
    /// a transmit buffer or the wire's frames; the slot is not posted and
    /// serves the next frame), `None` no transmit slot free (it waits for a
    /// later pass).
    pub fn send_raw<W: WireTx>(&mut self, wire: &mut W, bytes: &[u8]) -> Option<bool> {
        let len = u32::try_from(bytes.len()).ok()?;
        if !(ETH_HEADER..=MAX_WIRE_FRAME).contains(&len) {
            return Some(false);
        }
        let slot = wire.claim()?;
        if wire.write(slot, 0, bytes) != len {
            return Some(false);
        }
        wire.post(slot, len);
        self.wire.tx_frames += 1;
        self.wire.tx_bytes += u64::from(len);
        Some(true)
    }

    /// Copies the wire's frame in `slot` into port `i`'s next receive
    /// buffer, if it is up and has one.
    #[allow(clippy::too_many_arguments)]
    fn deliver<W: WireRx, A: Attached>(
        &mut self,
        i: usize,
        bytes: &Bytes<'_, W>,
        len: u32,
        ports: &A,
        woken: &mut impl FnMut(usize),
        blamed: &mut impl FnMut(Blame),
    ) where
        A::End: LinkEnd<Buffer = B>,
    {
        let Some(port) = self.ports.get_mut(i) else {
            return;
        };
        let result = ports.with(i, |end| -> Result<bool, RingError> {
            let Some((receiver, generation)) = end.sink() else {
                // Down: its driver is not ready; the wire does not wait.
                port.flow.drop_no_buffer += 1;
                return Ok(false);
            };
            let mut sink = match receiver {
                Receiver::Ready(sink) => sink,
                Receiver::Gone => {
                    port.flow.drop_peer += 1;
                    return Ok(false);
                }
            };
            if port.kept.is_none()
                && let Some(frame) = bytes.raw(len)
                && let Some(ring) = sink.raw_ring()
            {
                match fast::deliver(ring, frame, len) {
                    Fast::Done => {
                        port.flow.rx_frames += 1;
                        port.flow.rx_bytes += u64::from(len);
                        return Ok(true);
                    }
                    Fast::NoBuffer => {
                        port.flow.drop_no_buffer += 1;
                        return Ok(false);
                    }
                    Fast::General => {}
                }
            }
            let buffer = match port.kept.take() {
                Some((b, g)) if g == generation => b,
                _ => {
                    let mut b = B::default();
                    if !sink.take(&mut b)? {
                        port.flow.drop_no_buffer += 1;
                        return Ok(false);
                    }
                    b
                }
            };
            if !sink.fits(&buffer, len) {
                port.flow.drop_size += 1;
                port.kept = Some((buffer, generation));
                return Ok(false);
            }
            sink.start(&buffer)?;
            let mut at = 0u32;
            let mut short = false;
            let mut failed = None;
            bytes.read(len, |piece| {
                if failed.is_some() || short {
                    return;
                }
                match sink.write(&buffer, at, piece) {
                    Ok(n) => {
                        short = n as usize != piece.len();
                        at += n;
                    }
                    Err(e) => failed = Some(e),
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
            if short || at != len {
                // `fits` said it would: the buffer is not what it said.
                port.flow.drop_size += 1;
                port.kept = Some((buffer, generation));
                return Ok(false);
            }
            sink.complete(&buffer, len)?;
            sink.publish()?;
            port.flow.rx_frames += 1;
            port.flow.rx_bytes += u64::from(len);
            Ok(true)
        });
        match result {
            Ok(true) => woken(i),
            Ok(false) => {}
            Err(e) => {
                // The frame was on its way into this port's ring.
                port.flow.drop_fault += 1;
                ports.with(i, |end| end.blame(e));
                blamed((i, e));
            }
        }
    }

    /// Moves up to `budget` frames from each port to the wire; returns the
    /// frames taken from the ports (sent or dropped).
    pub fn outbound<W: WireTx + WireRx, A: Attached, P: FramePolicy>(
        &mut self,
        wire: &mut W,
        ports: &A,
        budget: u32,
        mut woken: impl FnMut(usize),
        mut blamed: impl FnMut(Blame),
        policy: &mut P,
    ) -> u32
    where
        A::End: LinkEnd<Buffer = B>,
    {
        let mut taken = 0;
        let mut posted = false;
        for i in 0..self.ports.len() {
            let mut full = false;
            // What this pass did, applied to the switch after it.
            let mut flow = NicPortFlow::default();
            let mut in_flight = false;
            let mut learned: heapless::Vec<[u8; MAC_LEN], LEARN_PER_PASS> = heapless::Vec::new();
            let all = &self.ports;
            let result = ports.with(i, |end| -> Result<u32, RingError> {
                let Some(mut source) = end.source() else {
                    return Ok(0);
                };
                let mut n = 0;
                if !P::INSPECTS
                    && !all[i].bridge
                    && let Some(ring) = source.raw_ring()
                {
                    let sent = fast::send(ring, &mut *wire, budget, &all[i].mac, &mut flow);
                    n = sent.taken;
                    posted |= sent.posted;
                    full |= sent.full;
                    if sent.stop != Fast::General {
                        return Ok(n);
                    }
                }
                let mut frame = Default::default();
                while n < budget {
                    // A hook with no room for frames it sends back: the
                    // rest wait in the guest's ring.
                    if P::INSPECTS && !policy.room() {
                        break;
                    }
                    if !source.waiting()? {
                        break;
                    }
                    let Some(slot) = wire.claim() else {
                        full = true;
                        break;
                    };
                    // A frame is waiting: lost to a ring fault if the ring
                    // breaks a rule before it is counted otherwise.
                    in_flight = true;
                    let Some(len) = source.take(&mut frame)? else {
                        in_flight = false;
                        break;
                    };
                    n += 1;
                    if !(ETH_HEADER..=MAX_WIRE_FRAME).contains(&len) {
                        source.complete(&frame)?;
                        in_flight = false;
                        flow.drop_size += 1;
                        continue;
                    }
                    let mut header = [0u8; ETH_HEADER as usize];
                    let mut at = 0u32;
                    // The hook's own copy, made from the same pieces as the
                    // NIC's: what it judges is what is sent.
                    let mut own = if P::INSPECTS {
                        policy.own_buffer()
                    } else {
                        None
                    };
                    let mut own_at = 0usize;
                    source.read(&frame, len, |piece| {
                        let h = (at as usize).min(header.len());
                        let n = piece.len().min(header.len() - h);
                        header[h..h + n].copy_from_slice(&piece[..n]);
                        at += wire.write(slot, at, piece);
                        if let Some(o) = own.as_deref_mut() {
                            let n = piece.len().min(o.len().saturating_sub(own_at));
                            o[own_at..own_at + n].copy_from_slice(&piece[..n]);
                            own_at += n;
                        }
                    })?;
                    source.complete(&frame)?;
                    in_flight = false;
                    let src = &header[SRC_MAC..SRC_MAC + MAC_LEN];
                    if at != len || !may_send_from(all, i, src) {
                        // The slot was not posted: the next frame reuses it.
                        flow.drop_spoofed += u64::from(at == len);
                        flow.drop_size += u64::from(at != len);
                        continue;
                    }
                    if P::INSPECTS
                        && (own_at != len as usize || policy.judge_own(own_at) == Verdict::Drop)
                    {
                        // Not posted: the next frame reuses the slot.
                        flow.drop_hook += 1;
                        continue;
                    }
                    // The hook changed its copy: that copy is what is sent.
                    // The guest's source address was checked above; one the
                    // hook writes is the operator's to answer for (hooks
                    // are the operator's code), and a bridge learns the
                    // guest's.
                    if P::INSPECTS
                        && policy.rewrote()
                        && let Some(o) = policy.own_buffer().and_then(|o| o.get(..len as usize))
                    {
                        wire.write(slot, 0, o);
                    }
                    if all[i].bridge && src != all[i].mac {
                        let mut mac = [0u8; MAC_LEN];
                        mac.copy_from_slice(src);
                        if !learned.contains(&mac) {
                            // More new addresses than this holds are learned
                            // from their next frames.
                            let _ = learned.push(mac);
                        }
                    }
                    wire.post(slot, len);
                    posted = true;
                    flow.tx_frames += 1;
                    flow.tx_bytes += u64::from(len);
                }
                if n > 0 {
                    source.publish()?;
                }
                Ok(n)
            });
            let port = &mut self.ports[i].flow;
            port.tx_frames += flow.tx_frames;
            port.tx_bytes += flow.tx_bytes;
            port.drop_size += flow.drop_size;
            port.drop_spoofed += flow.drop_spoofed;
            port.drop_fault += u64::from(result.is_err() && in_flight);
            port.drop_hook += flow.drop_hook;
            self.wire.tx_frames += flow.tx_frames;
            self.wire.tx_bytes += flow.tx_bytes;
            for mac in learned {
                self.learn(mac, i);
            }
            if full {
                self.wire.tx_full += 1;
            }
            if P::INSPECTS {
                // What the hook sends back (XDP_TX) goes to this guest's
                // receive ring, now that its transmit ring is let go.
                let mut back = |bytes: &[u8]| {
                    let before = self.ports.get(i).map(|p| p.flow.rx_frames);
                    let own: Bytes<'_, W> = Bytes::Own(bytes);
                    self.deliver(i, &own, bytes.len() as u32, ports, &mut woken, &mut blamed);
                    Some(self.ports.get(i).map(|p| p.flow.rx_frames) != before)
                };
                policy.drain_back(&mut back);
            }
            match result {
                Ok(0) => {}
                Ok(n) => {
                    taken += n;
                    woken(i);
                }
                Err(e) => {
                    ports.with(i, |end| end.blame(e));
                    blamed((i, e));
                }
            }
        }
        if posted {
            WireTx::flush(wire);
        }
        taken
    }
}

/// The bytes of a frame from the wire being delivered: in the NIC's
/// buffer, or in a hook's copy that its program changed.
enum Bytes<'a, W> {
    /// The frame in a slot of the NIC's receive ring.
    Wire(&'a W, u16),
    /// A hook's copy.
    Own(&'a [u8]),
}

impl<W: WireRx> Bytes<'_, W> {
    /// All `len` bytes as one host range, for the one-copy path.
    fn raw(&self, len: u32) -> Option<HostRange<'_>> {
        match self {
            Bytes::Wire(wire, slot) => wire.raw(*slot, len),
            Bytes::Own(_) => None,
        }
    }

    /// Calls `f` with bytes `0 .. len` in order, in pieces.
    fn read(&self, len: u32, mut f: impl FnMut(&[u8])) {
        match self {
            Bytes::Wire(wire, slot) => wire.read(*slot, len, f),
            Bytes::Own(own) => f(own.get(..len as usize).unwrap_or(own)),
        }
    }
}

/// Runs `policy` (a NIC queue's hook) on a copy of the wire's frame in
/// `slot` in its own buffer; whether the frame passes. A policy without a
/// buffer of its own, or a frame longer than it, cannot be judged: dropped.
fn judge_wire<W: WireRx, P: FramePolicy>(wire: &W, slot: u16, len: u32, policy: &mut P) -> bool {
    let Some(own) = policy.own_buffer().and_then(|o| o.get_mut(..len as usize)) else {
        return false;
    };
    let mut at = 0usize;
    wire.read(slot, len, |piece| {
        let n = piece.len().min(own.len() - at);
        own[at..at + n].copy_from_slice(&piece[..n]);
        at += n;
    });
    at == len as usize && policy.judge_own(at) == Verdict::Pass
}

mod fast;
use fast::Fast;

#[cfg(test)]
mod tests;
