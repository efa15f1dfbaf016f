//! The Intel 82540EM (e1000) driver: reset and set-up, and the receive and transmit rings as a polled [`NicDevice`], over [`Regs`] and DMA memory the hypervisor owns (a [`RingMemory`] raw view at bus addresses, one writable piece, see [`super`]).
//!
//! Layout of the DMA area (`base` is its bus address, 128-byte aligned;
//! [`E1000::DMA_BYTES`] long): `N` receive buffers of [`BUF_BYTES`], `N`
//! transmit buffers of [`BUF_BYTES`], then the `N` legacy receive
//! descriptors and the `N` legacy transmit descriptors (16 bytes each).
//! Descriptor `i` of either ring always uses buffer `i`.
//!
//! Nothing the device writes is trusted: a receive descriptor's buffer
//! address is never read back (the driver knows where buffer `i` is, and
//! rewrites the address whenever it gives the descriptor back), its
//! length is bounded by the buffer before anything is copied, and frames
//! with error bits, without EOP (spanning buffers), of length 0 or longer
//! than a buffer are recycled and counted, never returned.
//!
//! Bochs 2.7 quirks the set-up does not rely on: `CTRL.RST` does not reset
//! ring state (every ring register is written after the reset); only
//! RAL/RAH 0..3 take writes (only pair 0 is used, 1..3 are cleared); a
//! chain of non-EOP transmit descriptors is unbounded (in the copy rings
//! every transmit descriptor is a whole frame with EOP; in the
//! caller-buffer rings a frame is at most two descriptors, the second
//! with EOP); a receive length includes the 4-byte FCS unless
//! `RCTL.SECRC` (set, read back, and if the bit does not stick 4 bytes
//! are taken off every length). Bochs transmits inside the
//! TDT write, so [`NicDevice::tx_flush`] returns with the frames sent.
#![forbid(unsafe_code)]

pub mod owned;
pub mod regs;

use super::{MacAddr, NicCounters, NicDevice, NicError, Regs, RxFrame};
use crate::mem::access::{Barrier, Gpa, OutOfBounds};
use crate::mem::raw::{HostRange, RingMemory};
use regs::*;

/// Bytes of each receive and transmit buffer (`RCTL.BSIZE` = 2048).
pub const BUF_BYTES: u32 = 2048;
/// The longest frame the driver transmits: an untagged Ethernet frame
/// without its FCS, which the NIC appends (`IFCS`).
pub const MAX_TX_FRAME: u32 = 1514;
/// Descriptors per ring unless the type says otherwise.
pub const DEFAULT_RING: usize = 64;
/// Reads of CTRL waiting for RST to clear (the SDM asks for 1 µs; Bochs
/// clears it at once).
pub const RESET_POLLS: u32 = 100_000;
/// Reads of EERD waiting for DONE, per word.
pub const EEPROM_POLLS: u32 = 100_000;
/// Reads of a head register waiting for it to stop after its queue is
/// disabled.
pub const QUIESCE_POLLS: u32 = 100_000;
/// Consecutive equal reads of a head register that count as stopped.
pub const QUIESCE_STABLE_READS: u32 = 3;
/// Alignment of the DMA area: RDLEN/TDLEN are multiples of 128 bytes and
/// the rings start the area's descriptor part (SDM 13.4.27).
pub const DMA_ALIGN: u64 = 128;

/// An 82540EM with `N` descriptors per ring (a power of two, 8 ..= 4096),
/// its registers `R` and its DMA memory `M`.
pub struct E1000<R: Regs, M: RingMemory, const N: usize = DEFAULT_RING> {
    regs: R,
    dma: M,
    base: u64,
    mac: MacAddr,
    /// `RCTL.SECRC` did not stick: receive lengths include the FCS.
    fcs_in_length: bool,
    /// The receive descriptor the driver looks at next.
    rx_next: u16,
    /// The frame `rx_peek` returned and nobody recycled yet.
    rx_peeked: Option<RxFrame>,
    /// In the middle of a frame that spans buffers (dropping its pieces).
    rx_discarding: bool,
    /// Descriptors were recycled since RDT was last written.
    rx_dirty: bool,
    /// The transmit slot to claim next (one past the last posted).
    tx_next: u16,
    /// The oldest posted slot not yet seen done.
    tx_clean: u16,
    /// Posted slots not yet seen done.
    tx_in_flight: u16,
    /// `tx_next` is claimed.
    tx_claimed: bool,
    /// Slots were posted since TDT was last written.
    tx_dirty: bool,
    counters: NicCounters,
    /// The caller-buffer rings, when set up for them ([`E1000::new_owned`]).
    zc: Option<owned::Rings<N>>,
}

/// RCTL while receiving: enabled, promiscuous (see `program_filters`),
/// broadcast, 2048-byte buffers, FCS stripped.
const RCTL_RUNNING: u32 = RCTL_EN | RCTL_UPE | RCTL_MPE | RCTL_BAM | RCTL_BSIZE_2048 | RCTL_SECRC;
/// TCTL while transmitting.
const TCTL_RUNNING: u32 = TCTL_EN | TCTL_PSP | TCTL_CT_STANDARD | TCTL_COLD_FULL_DUPLEX;

/// Bytes 8..16 of a transmit descriptor: length and CMD, the rest (CSO,
/// STA, CSS, special) zero.
fn desc_upper(len: u16, cmd: u8) -> u64 {
    u64::from(len) | (u64::from(cmd) << ((TXD_CMD - DESC_LENGTH) * 8))
}

/// The DMA area resolved once for a call that touches it several times
/// (one lookup, then each access checked against the area): descriptor
/// words and buffer bytes by bus address.
struct Area<'a> {
    range: HostRange<'a>,
    base: u64,
}

impl Area<'_> {
    /// A bus address's offset in the area (wrapped below it, so the
    /// range's check refuses it).
    #[inline(always)]
    fn off(&self, at: Gpa) -> u64 {
        at.0.wrapping_sub(self.base)
    }

    #[inline(always)]
    fn read_u32(&self, at: Gpa) -> Result<u32, NicError> {
        self.range.read_u32(self.off(at)).ok_or(outside(at, 4))
    }

    #[inline(always)]
    fn read_u64(&self, at: Gpa) -> Result<u64, NicError> {
        self.range.read_u64(self.off(at)).ok_or(outside(at, 8))
    }

    #[inline(always)]
    fn write_u64(&self, at: Gpa, value: u64) -> Result<(), NicError> {
        self.range
            .write_u64(self.off(at), value)
            .ok_or(outside(at, 8))
    }

    /// Writes descriptor `d`: its address word, then its upper word.
    #[inline(always)]
    fn write_desc(&self, d: Gpa, addr: u64, upper: u64) -> Result<(), NicError> {
        self.write_u64(d, addr)?;
        self.write_u64(Gpa(d.0 + DESC_LENGTH), upper)
    }

    #[inline(always)]
    fn write(&self, at: Gpa, bytes: &[u8]) -> Result<(), NicError> {
        self.range
            .write_from(self.off(at), bytes)
            .ok_or(outside(at, bytes.len() as u64))
    }
}

/// The error of an access outside the DMA area.
#[inline(always)]
fn outside(at: Gpa, len: u64) -> NicError {
    NicError::Dma(OutOfBounds { gpa: at.0, len })
}

impl<R: Regs, M: RingMemory, const N: usize> E1000<R, M, N> {
    const RING_CHECK: () = assert!(N.is_power_of_two() && N >= 8 && N <= 4096);
    /// Bytes of one ring's descriptors.
    const RING_BYTES: u64 = N as u64 * DESC_BYTES;
    /// Offset of the receive descriptors in the DMA area.
    const RX_RING: u64 = 2 * N as u64 * BUF_BYTES as u64;
    /// Offset of the transmit descriptors in the DMA area.
    const TX_RING: u64 = Self::RX_RING + Self::RING_BYTES;
    /// Bytes of DMA memory the driver needs at `base`.
    pub const DMA_BYTES: u64 = Self::TX_RING + Self::RING_BYTES;

    /// Resets and sets up the NIC behind `regs` with its rings in `dma` at
    /// bus address `base` (128-byte aligned, [`Self::DMA_BYTES`] writable
    /// bytes), every interrupt masked, receive and transmit enabled. The
    /// MAC is `mac` if given, else the EEPROM's.
    pub fn new(regs: R, dma: M, base: u64, mac: Option<MacAddr>) -> Result<Self, NicError> {
        Self::set_up(regs, dma, base, mac, false)
    }

    /// As [`E1000::new`], for buffers the caller provides
    /// ([`super::ZeroCopy`]): the receive ring starts empty, and the copy
    /// calls of [`NicDevice`] answer [`NicError::WrongMode`].
    pub fn new_owned(regs: R, dma: M, base: u64, mac: Option<MacAddr>) -> Result<Self, NicError> {
        Self::set_up(regs, dma, base, mac, true)
    }

    fn set_up(
        regs: R,
        dma: M,
        base: u64,
        mac: Option<MacAddr>,
        owned: bool,
    ) -> Result<Self, NicError> {
        let () = Self::RING_CHECK;
        if !base.is_multiple_of(DMA_ALIGN) {
            return Err(NicError::DmaMisaligned { base });
        }
        // Every per-frame call reaches the area as one resolved range
        // (`Area`): it must be the raw view's, one writable piece.
        Self::area(&dma, base)?;
        let mut nic = E1000 {
            regs,
            dma,
            base,
            mac: MacAddr::default(),
            fcs_in_length: false,
            rx_next: 0,
            rx_peeked: None,
            rx_discarding: false,
            rx_dirty: false,
            tx_next: 0,
            tx_clean: 0,
            tx_in_flight: 0,
            tx_claimed: false,
            tx_dirty: false,
            counters: NicCounters::default(),
            zc: owned.then(owned::Rings::default),
        };
        nic.reset()?;
        nic.mac = match mac {
            Some(mac) => mac,
            None => nic.eeprom_mac()?,
        };
        nic.program_filters();
        nic.program_rings()?;
        let ctrl = nic.regs.read(CTRL) & !(CTRL_RST | CTRL_PHY_RST);
        nic.regs.write(CTRL, ctrl | CTRL_SLU | CTRL_ASDE);
        nic.regs.write(TIPG, TIPG_STANDARD);
        nic.regs.write(TCTL, TCTL_RUNNING);
        nic.regs.write(RCTL, RCTL_RUNNING);
        nic.fcs_in_length = nic.regs.read(RCTL) & RCTL_SECRC == 0;
        Ok(nic)
    }

    /// Masks every interrupt, stops both queues and resets the device.
    fn reset(&mut self) -> Result<(), NicError> {
        self.regs.write(IMC, IMC_ALL);
        self.regs.write(RCTL, 0);
        self.regs.write(TCTL, 0);
        let ctrl = self.regs.read(CTRL);
        self.regs.write(CTRL, ctrl | CTRL_RST);
        let mut polls = 0;
        while self.regs.read(CTRL) & CTRL_RST != 0 {
            polls += 1;
            if polls >= RESET_POLLS {
                return Err(NicError::ResetTimeout { polls });
            }
        }
        // The reset may have unmasked causes; mask again and drop any pending.
        self.regs.write(IMC, IMC_ALL);
        let _ = self.regs.read(ICR);
        Ok(())
    }

    /// The Ethernet address in EEPROM words 0..3.
    fn eeprom_mac(&mut self) -> Result<MacAddr, NicError> {
        let mut mac = [0u8; 6];
        for word in 0..EEPROM_MAC_WORDS {
            self.regs
                .write(EERD, EERD_START | (u32::from(word) << EERD_ADDR_SHIFT));
            let mut polls = 0;
            let value = loop {
                let v = self.regs.read(EERD);
                if v & EERD_DONE != 0 {
                    break v;
                }
                polls += 1;
                if polls >= EEPROM_POLLS {
                    return Err(NicError::EepromTimeout { word });
                }
            };
            let data = ((value >> EERD_DATA_SHIFT) as u16).to_le_bytes();
            let at = usize::from(word) * 2;
            mac[at..at + 2].copy_from_slice(&data);
        }
        Ok(MacAddr(mac))
    }

    /// Receive address 0 = our MAC (valid), 1..3 cleared, multicast table
    /// cleared. The receiver runs promiscuous (`RCTL.UPE`/`MPE`, set at
    /// enable): the NIC serves a switch whose guests have MACs of their
    /// own, more than the four receive-address pairs, and the switch
    /// filters by destination itself.
    fn program_filters(&mut self) {
        for n in 1..RA_PAIRS {
            self.regs.write(RAH0 + n * RA_STRIDE, 0);
            self.regs.write(RAL0 + n * RA_STRIDE, 0);
        }
        let [a, b, c, d, e, f] = self.mac.0;
        self.regs.write(RAL0, u32::from_le_bytes([a, b, c, d]));
        self.regs
            .write(RAH0, u32::from_le_bytes([e, f, 0, 0]) | RAH_AV);
        for i in 0..MTA_ENTRIES {
            self.regs.write(MTA + i * 4, 0);
        }
    }

    /// Writes every descriptor and every ring register (whatever the reset
    /// left in them): receive descriptors point at their buffers, all given
    /// to the device but one; transmit descriptors are empty.
    fn program_rings(&mut self) -> Result<(), NicError> {
        if self.zc.is_some() {
            return self.program_empty_rings();
        }
        for i in 0..N as u16 {
            self.rx_give(i)?;
            let d = self.tx_desc(i);
            self.dma.write_u64(d, self.tx_buf(i).0)?;
            self.dma.write_u64(Gpa(d.0 + DESC_LENGTH), 0)?;
        }
        self.dma.fence(Barrier::Release);
        self.point_rings(Self::prev(0).into());
        Ok(())
    }

    /// Points the ring registers at the descriptors, both heads at 0, the
    /// transmit tail at 0 and the receive tail at `rdt`.
    fn point_rings(&mut self, rdt: u32) {
        let rx = self.base + Self::RX_RING;
        let tx = self.base + Self::TX_RING;
        self.regs.write(RDBAL, rx as u32);
        self.regs.write(RDBAH, (rx >> 32) as u32);
        self.regs.write(RDLEN, Self::RING_BYTES as u32);
        self.regs.write(RDH, 0);
        self.regs.write(RDT, rdt);
        self.regs.write(TDBAL, tx as u32);
        self.regs.write(TDBAH, (tx >> 32) as u32);
        self.regs.write(TDLEN, Self::RING_BYTES as u32);
        self.regs.write(TDH, 0);
        self.regs.write(TDT, 0);
    }

    /// Whether the receive lengths include the FCS (`RCTL.SECRC` did not
    /// stick), so the driver takes it off.
    pub fn fcs_in_length(&self) -> bool {
        self.fcs_in_length
    }

    /// The descriptor after `i`.
    fn next(i: u16) -> u16 {
        ((usize::from(i) + 1) % N) as u16
    }

    /// The descriptor before `i`.
    fn prev(i: u16) -> u16 {
        ((usize::from(i) + N - 1) % N) as u16
    }

    fn check(ring: &'static str, index: u16) -> Result<(), NicError> {
        if usize::from(index) < N {
            Ok(())
        } else {
            Err(NicError::BadIndex { ring, index })
        }
    }

    fn rx_buf(&self, i: u16) -> Gpa {
        Gpa(self.base + u64::from(i) * u64::from(BUF_BYTES))
    }

    fn tx_buf(&self, i: u16) -> Gpa {
        Gpa(self.base + (N as u64 + u64::from(i)) * u64::from(BUF_BYTES))
    }

    fn rx_desc(&self, i: u16) -> Gpa {
        Gpa(self.base + Self::RX_RING + u64::from(i) * DESC_BYTES)
    }

    fn tx_desc(&self, i: u16) -> Gpa {
        Gpa(self.base + Self::TX_RING + u64::from(i) * DESC_BYTES)
    }

    /// Readies receive descriptor `i` for the device: its own buffer's
    /// address (whatever the device wrote there), status and length clear.
    fn rx_give(&mut self, i: u16) -> Result<(), NicError> {
        let (d, buf) = (self.rx_desc(i), self.rx_buf(i));
        Self::area(&self.dma, self.base)?.write_desc(d, buf.0, 0)
    }

    /// Recycles the descriptor at `rx_next` and moves past it.
    fn rx_advance(&mut self) -> Result<(), NicError> {
        self.rx_give(self.rx_next)?;
        self.rx_next = Self::next(self.rx_next);
        self.rx_peeked = None;
        self.rx_dirty = true;
        Ok(())
    }

    /// The frame in the descriptor at `rx_next` (done), or `None` after
    /// counting why it is dropped.
    fn rx_judge(&mut self, upper: u64) -> Option<u32> {
        let len = upper as u16;
        let status = (upper >> ((RXD_STATUS - DESC_LENGTH) * 8)) as u8;
        let errors = (upper >> ((RXD_ERRORS - DESC_LENGTH) * 8)) as u8;
        let c = &mut self.counters;
        if status & RXD_STAT_EOP == 0 {
            // A piece of a frame spanning buffers: count the frame once.
            if !self.rx_discarding {
                c.rx_drop_no_eop += 1;
            }
            self.rx_discarding = true;
            return None;
        }
        if self.rx_discarding {
            // The last piece of a spanning frame.
            self.rx_discarding = false;
            return None;
        }
        if errors != 0 {
            c.rx_drop_errors += 1;
            return None;
        }
        let fcs = if self.fcs_in_length { FCS_BYTES } else { 0 };
        let len = u32::from(len).saturating_sub(fcs);
        if len == 0 || len > BUF_BYTES {
            c.rx_drop_length += 1;
            return None;
        }
        Some(len)
    }

    /// Reclaims transmit slots the device is done with (DD).
    fn tx_reclaim(&mut self) -> Result<(), NicError> {
        while self.tx_in_flight > 0 {
            let d = self.tx_desc(self.tx_clean);
            let status = self.dma.read_u32(Gpa(d.0 + TXD_STATUS))? as u8;
            if status & TXD_STAT_DD == 0 {
                break;
            }
            self.tx_clean = Self::next(self.tx_clean);
            self.tx_in_flight -= 1;
        }
        Ok(())
    }

    fn tx_check_claimed(&self, index: u16) -> Result<(), NicError> {
        Self::check("TX", index)?;
        if self.tx_claimed && index == self.tx_next {
            Ok(())
        } else {
            Err(NicError::TxNotClaimed { index })
        }
    }

    /// The DMA area `dma` at `base` as one resolved range (a field
    /// function, so the caller may still change the driver's other
    /// fields while it holds the range).
    #[inline(always)]
    fn area(dma: &M, base: u64) -> Result<Area<'_>, NicError> {
        dma.raw()
            .and_then(|r| r.resolve(base, Self::DMA_BYTES, true))
            .map(|range| Area { range, base })
            .ok_or(outside(Gpa(base), Self::DMA_BYTES))
    }

    /// Waits until `reg` reads the same [`QUIESCE_STABLE_READS`] times in
    /// a row.
    fn wait_stopped(&mut self, reg: u32, name: &'static str) -> Result<(), NicError> {
        let mut last = self.regs.read(reg);
        let mut same = 0;
        for _ in 0..QUIESCE_POLLS {
            let now = self.regs.read(reg);
            if now == last {
                same += 1;
                if same >= QUIESCE_STABLE_READS {
                    return Ok(());
                }
            } else {
                same = 0;
                last = now;
            }
        }
        Err(NicError::QuiesceTimeout { reg: name })
    }
}

impl<R: Regs, M: RingMemory, const N: usize> NicDevice for E1000<R, M, N> {
    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn link_up(&mut self) -> bool {
        self.regs.read(STATUS) & STATUS_LU != 0
    }

    fn counters(&self) -> NicCounters {
        self.counters
    }

    fn rx_peek(&mut self) -> Result<Option<RxFrame>, NicError> {
        if self.zc.is_some() {
            return Err(NicError::WrongMode { call: "rx_peek" });
        }
        if let Some(frame) = self.rx_peeked {
            return Ok(Some(frame));
        }
        // At most one ring's worth of bad frames per call.
        for _ in 0..N {
            let d = self.rx_desc(self.rx_next);
            let area = Self::area(&self.dma, self.base)?;
            let status = area.read_u32(Gpa(d.0 + RXD_STATUS))? as u8;
            if status & RXD_STAT_DD == 0 {
                return Ok(None);
            }
            // The rest of the descriptor after its DD.
            self.dma.fence(Barrier::Acquire);
            let upper = area.read_u64(Gpa(d.0 + DESC_LENGTH))?;
            match self.rx_judge(upper) {
                Some(len) => {
                    let frame = RxFrame {
                        index: self.rx_next,
                        len,
                    };
                    self.counters.rx_frames += 1;
                    self.counters.rx_bytes += u64::from(len);
                    self.rx_peeked = Some(frame);
                    return Ok(Some(frame));
                }
                None => self.rx_advance()?,
            }
        }
        Ok(None)
    }

    fn rx_read(&self, index: u16, len: u32, f: impl FnMut(&[u8])) -> Result<(), NicError> {
        Self::check("RX", index)?;
        if len > BUF_BYTES {
            return Err(NicError::RxReadTooLong {
                len,
                max: BUF_BYTES,
            });
        }
        self.dma.read_chunks(self.rx_buf(index), len.into(), f)?;
        Ok(())
    }

    fn rx_recycle(&mut self, index: u16) -> Result<(), NicError> {
        Self::check("RX", index)?;
        match self.rx_peeked {
            Some(frame) if frame.index == index => self.rx_advance(),
            _ => Err(NicError::RxNotPeeked {
                index,
                expected: self.rx_next,
            }),
        }
    }

    fn rx_flush(&mut self) {
        if self.rx_dirty {
            self.dma.fence(Barrier::Release);
            // The last recycled descriptor stays with the driver, so
            // RDH == RDT always means "no buffer", never "all buffers".
            self.regs.write(RDT, Self::prev(self.rx_next).into());
            self.rx_dirty = false;
        }
    }

    fn tx_claim(&mut self) -> Option<u16> {
        if self.zc.is_some() {
            return None;
        }
        if self.tx_claimed {
            return Some(self.tx_next);
        }
        // One slot always stays empty: TDH == TDT means "nothing to send".
        let full = usize::from(self.tx_in_flight) >= N - 1;
        if full && (self.tx_reclaim().is_err() || usize::from(self.tx_in_flight) >= N - 1) {
            self.counters.tx_ring_full += 1;
            return None;
        }
        self.tx_claimed = true;
        Some(self.tx_next)
    }

    fn tx_write(&mut self, index: u16, at: u32, bytes: &[u8]) -> Result<u32, NicError> {
        self.tx_check_claimed(index)?;
        let room = BUF_BYTES.saturating_sub(at) as usize;
        let n = bytes.len().min(room);
        if n == 0 {
            return Ok(0);
        }
        let to = Gpa(self.tx_buf(index).0 + u64::from(at));
        self.dma.write(to, &bytes[..n])?;
        Ok(n as u32)
    }

    fn tx_post(&mut self, index: u16, len: u32) -> Result<(), NicError> {
        self.tx_check_claimed(index)?;
        if len == 0 || len > MAX_TX_FRAME {
            return Err(NicError::TxLength {
                len,
                max: MAX_TX_FRAME,
            });
        }
        let (d, buf) = (self.tx_desc(index), self.tx_buf(index));
        let area = Self::area(&self.dma, self.base)?;
        let cmd = TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS;
        area.write_desc(d, buf.0, desc_upper(len as u16, cmd))?;
        self.counters.tx_frames += 1;
        self.counters.tx_bytes += u64::from(len);
        self.tx_next = Self::next(self.tx_next);
        self.tx_in_flight += 1;
        self.tx_claimed = false;
        self.tx_dirty = true;
        Ok(())
    }

    #[inline]
    fn rx_raw(&self, index: u16, len: u32) -> Option<HostRange<'_>> {
        if usize::from(index) >= N || len > BUF_BYTES {
            return None;
        }
        self.dma
            .raw()?
            .resolve(self.rx_buf(index).0, len.into(), false)
    }

    #[inline]
    fn tx_raw(&self, index: u16) -> Option<HostRange<'_>> {
        self.tx_check_claimed(index).ok()?;
        self.dma
            .raw()?
            .resolve(self.tx_buf(index).0, BUF_BYTES.into(), true)
    }

    fn tx_flush(&mut self) {
        if self.tx_dirty {
            self.dma.fence(Barrier::Release);
            self.regs.write(TDT, self.tx_next.into());
            self.tx_dirty = false;
        }
    }

    fn quiesce(&mut self) -> Result<(), NicError> {
        let rctl = self.regs.read(RCTL);
        self.regs.write(RCTL, rctl & !RCTL_EN);
        let tctl = self.regs.read(TCTL);
        self.regs.write(TCTL, tctl & !TCTL_EN);
        self.wait_stopped(RDH, "RDH")?;
        self.wait_stopped(TDH, "TDH")
    }
}

#[cfg(test)]
mod tests;
