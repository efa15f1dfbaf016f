//! The e1000's rings with buffers the caller provides ([`ZeroCopy`], the `owned` mode): receive descriptors point at the caller's buffers, transmit frames are a hypervisor copy of the Ethernet header plus the caller's body, and revocation takes every descriptor back.
//!
//! Receive: descriptors `rx_head .. rx_tail` are the device's (at most
//! `N - 1`, so `RDH == RDT` means none); each carries its caller's cookie.
//! A descriptor comes back in order once the device set DD, judged as in
//! the copy mode (errors, no EOP, bad length → `None`, counted).
//!
//! Transmit: a frame takes one or two descriptors: the header, copied into
//! the driver's own buffer of its first slot, then the body at the
//! caller's address with EOP. Every descriptor asks for status (RS) and at
//! most `N - 1` are in flight; a frame's cookie sits on its last slot.
//! Chains are never longer than two and always end in EOP.
//!
//! Revocation disables both queues, waits until their heads stop, moves
//! the tails onto the heads (the device then owns no descriptor), clears
//! every descriptor, then enables the queues again with empty rings that
//! start where the heads are: from then on no descriptor holds a caller's
//! address, and the device never met a cleared descriptor it owned.
#![forbid(unsafe_code)]

use super::regs::*;
use super::{BUF_BYTES, E1000, MAX_TX_FRAME, RCTL_RUNNING, TCTL_RUNNING, desc_upper};
use crate::mem::access::{Barrier, Gpa};
use crate::mem::raw::RingMemory;
use crate::nic::{ETH_HEADER_BYTES, NicError, Regs, ZeroCopy};

/// Marks a transmit slot that is not the last of its frame.
const NO_COOKIE: u16 = u16::MAX;

/// The caller-buffer rings of a driver set up for them; `call` named in
/// the error of one set up for copies. (A field function: the caller may
/// hold the DMA area meanwhile.)
#[inline(always)]
fn rings_of<'z, const N: usize>(
    zc: &'z mut Option<Rings<N>>,
    call: &'static str,
) -> Result<&'z mut Rings<N>, NicError> {
    zc.as_mut().ok_or(NicError::WrongMode { call })
}

/// The caller-buffer rings' state.
pub struct Rings<const N: usize> {
    rx_head: u16,
    rx_tail: u16,
    rx_given: u16,
    rx_dirty: bool,
    rx_cookie: [u16; N],
    tx_head: u16,
    tx_tail: u16,
    tx_used: u16,
    tx_dirty: bool,
    tx_cookie: [u16; N],
}

impl<const N: usize> Default for Rings<N> {
    fn default() -> Self {
        Rings {
            rx_head: 0,
            rx_tail: 0,
            rx_given: 0,
            rx_dirty: false,
            rx_cookie: [NO_COOKIE; N],
            tx_head: 0,
            tx_tail: 0,
            tx_used: 0,
            tx_dirty: false,
            tx_cookie: [NO_COOKIE; N],
        }
    }
}

impl<R: Regs, M: RingMemory, const N: usize> E1000<R, M, N> {
    /// Clears every descriptor of both rings and points the rings'
    /// registers at them, empty (`RDH == RDT`, `TDH == TDT`).
    pub(super) fn program_empty_rings(&mut self) -> Result<(), NicError> {
        self.clear_descriptors()?;
        self.point_rings(0);
        Ok(())
    }

    /// Clears every descriptor of both rings (no address left in any).
    fn clear_descriptors(&mut self) -> Result<(), NicError> {
        for i in 0..N as u16 {
            for d in [self.rx_desc(i), self.tx_desc(i)] {
                self.dma.write_u64(d, 0)?;
                self.dma.write_u64(Gpa(d.0 + DESC_LENGTH), 0)?;
            }
        }
        self.dma.fence(Barrier::Release);
        Ok(())
    }

    fn rings(&mut self, call: &'static str) -> Result<&mut Rings<N>, NicError> {
        rings_of(&mut self.zc, call)
    }
}

/// The caller-buffer calls: each resolves the DMA area once
/// ([`E1000::area`]) and reads and writes descriptors through it.
impl<R: Regs, M: RingMemory, const N: usize> ZeroCopy for E1000<R, M, N> {
    fn zc_rx_give(&mut self, bus: u64, cookie: u16) -> Result<bool, NicError> {
        let d0 = self.rx_desc(0);
        let z = rings_of(&mut self.zc, "zc_rx_give")?;
        let area = Self::area(&self.dma, self.base)?;
        if usize::from(z.rx_given) >= N - 1 {
            return Ok(false);
        }
        let i = z.rx_tail;
        let d = Gpa(d0.0 + u64::from(i) * DESC_BYTES);
        area.write_desc(d, bus, 0)?;
        z.rx_cookie[usize::from(i)] = cookie;
        z.rx_tail = Self::next(i);
        z.rx_given += 1;
        z.rx_dirty = true;
        Ok(true)
    }

    fn zc_rx_taken(&mut self) -> Result<Option<(u16, Option<u32>)>, NicError> {
        let d0 = self.rx_desc(0);
        let z = rings_of(&mut self.zc, "zc_rx_taken")?;
        if z.rx_given == 0 {
            return Ok(None);
        }
        let i = z.rx_head;
        let area = Self::area(&self.dma, self.base)?;
        let d = Gpa(d0.0 + u64::from(i) * DESC_BYTES);
        let status = area.read_u32(Gpa(d.0 + RXD_STATUS))? as u8;
        if status & RXD_STAT_DD == 0 {
            return Ok(None);
        }
        self.dma.fence(Barrier::Acquire);
        let upper = area.read_u64(Gpa(d.0 + DESC_LENGTH))?;
        // The caller's address is not left behind in a descriptor it no
        // longer owns.
        area.write_desc(d, 0, 0)?;
        let len = self.rx_judge(upper);
        if let Some(len) = len {
            self.counters.rx_frames += 1;
            self.counters.rx_bytes += u64::from(len);
        }
        let z = rings_of(&mut self.zc, "zc_rx_taken")?;
        let cookie = z.rx_cookie[usize::from(i)];
        z.rx_head = Self::next(i);
        z.rx_given -= 1;
        Ok(Some((cookie, len)))
    }

    fn zc_rx_flush(&mut self) {
        let Some(z) = self.zc.as_mut() else {
            return;
        };
        if z.rx_dirty {
            z.rx_dirty = false;
            let tail = z.rx_tail;
            self.dma.fence(Barrier::Release);
            self.regs.write(RDT, tail.into());
        }
    }

    fn zc_tx_give(
        &mut self,
        header: &[u8; ETH_HEADER_BYTES],
        body: u64,
        body_len: u32,
        cookie: u16,
    ) -> Result<bool, NicError> {
        let len = ETH_HEADER_BYTES as u32 + body_len;
        if len > MAX_TX_FRAME {
            return Err(NicError::TxLength {
                len,
                max: MAX_TX_FRAME,
            });
        }
        let slots: u16 = if body_len == 0 { 1 } else { 2 };
        let (d0, buf0) = (self.tx_desc(0), self.tx_buf(0));
        let z = rings_of(&mut self.zc, "zc_tx_give")?;
        // Reclaim is the caller's (`zc_tx_taken`); a full ring waits.
        if usize::from(z.tx_used + slots) > N - 1 {
            self.counters.tx_ring_full += 1;
            return Ok(false);
        }
        let first = z.tx_tail;
        let last = if slots == 1 { first } else { Self::next(first) };
        let area = Self::area(&self.dma, self.base)?;
        let desc = |i: u16| Gpa(d0.0 + u64::from(i) * DESC_BYTES);
        let copy = Gpa(buf0.0 + u64::from(first) * u64::from(BUF_BYTES));
        area.write(copy, header)?;
        let end = TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS;
        let head_len = ETH_HEADER_BYTES as u16;
        if slots == 1 {
            area.write_desc(desc(first), copy.0, desc_upper(head_len, end))?;
        } else {
            let more = TXD_CMD_IFCS | TXD_CMD_RS;
            area.write_desc(desc(first), copy.0, desc_upper(head_len, more))?;
            // `len` <= MAX_TX_FRAME, so the body fits a u16.
            area.write_desc(desc(last), body, desc_upper(body_len as u16, end))?;
        }
        z.tx_cookie[usize::from(first)] = NO_COOKIE;
        z.tx_cookie[usize::from(last)] = cookie;
        z.tx_tail = Self::next(last);
        z.tx_used += slots;
        z.tx_dirty = true;
        self.counters.tx_frames += 1;
        self.counters.tx_bytes += u64::from(len);
        Ok(true)
    }

    fn zc_tx_taken(&mut self) -> Result<Option<u16>, NicError> {
        let d0 = self.tx_desc(0);
        rings_of(&mut self.zc, "zc_tx_taken")?;
        let area = Self::area(&self.dma, self.base)?;
        loop {
            let z = rings_of(&mut self.zc, "zc_tx_taken")?;
            if z.tx_used == 0 {
                return Ok(None);
            }
            let i = z.tx_head;
            let d = Gpa(d0.0 + u64::from(i) * DESC_BYTES);
            let status = area.read_u32(Gpa(d.0 + TXD_STATUS))? as u8;
            if status & TXD_STAT_DD == 0 {
                return Ok(None);
            }
            area.write_desc(d, 0, 0)?;
            let cookie = z.tx_cookie[usize::from(i)];
            z.tx_cookie[usize::from(i)] = NO_COOKIE;
            z.tx_head = Self::next(i);
            z.tx_used -= 1;
            if cookie != NO_COOKIE {
                return Ok(Some(cookie));
            }
        }
    }

    fn zc_tx_flush(&mut self) {
        let Some(z) = self.zc.as_mut() else {
            return;
        };
        if z.tx_dirty {
            z.tx_dirty = false;
            let tail = z.tx_tail;
            self.dma.fence(Barrier::Release);
            self.regs.write(TDT, tail.into());
        }
    }

    fn zc_revoke(&mut self) -> Result<(), NicError> {
        self.rings("zc_revoke")?;
        self.regs.write(RCTL, RCTL_RUNNING & !RCTL_EN);
        self.regs.write(TCTL, TCTL_RUNNING & !TCTL_EN);
        self.wait_stopped(RDH, "RDH")?;
        self.wait_stopped(TDH, "TDH")?;
        // The device gets no descriptor before any is cleared: tails meet
        // the heads (a device that receives while disabled then finds no
        // buffer rather than a cleared descriptor, which Bochs would walk
        // the whole ring over). The heads stay where they are.
        let (rdh, tdh) = (self.regs.read(RDH), self.regs.read(TDH));
        self.regs.write(RDT, rdh);
        self.regs.write(TDT, tdh);
        self.clear_descriptors()?;
        let at = |head: u32| (head as usize % N) as u16;
        self.zc = Some(Rings {
            rx_head: at(rdh),
            rx_tail: at(rdh),
            tx_head: at(tdh),
            tx_tail: at(tdh),
            ..Rings::default()
        });
        self.rx_discarding = false;
        self.regs.write(TCTL, TCTL_RUNNING);
        self.regs.write(RCTL, RCTL_RUNNING);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
