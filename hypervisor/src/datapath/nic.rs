//! A NIC as the switch's wire: any [`NicDevice`] behind [`WireRx`] and [`WireTx`], its first error kept for the report.
//!
//! The driver's errors here are the hypervisor's own (a descriptor index
//! it did not peek, a write past a buffer), never a guest's: the switch
//! then sees no frame or a short one, which it drops and counts, and the
//! first error is kept so the run says what went wrong.
#![forbid(unsafe_code)]

use super::switch::{WireRx, WireTx};
use crate::mem::raw::HostRange;
use crate::nic::{ETH_HEADER_BYTES, NicDevice, NicError, ZeroCopy};
use vmm_abi::report::NicFlow;

/// A NIC driven by the switch.
pub struct Wire<N> {
    /// The driver.
    pub nic: N,
    /// The first error the driver answered with.
    pub error: Option<NicError>,
}

impl<N: NicDevice> Wire<N> {
    /// Wraps a driver that is set up.
    pub fn new(nic: N) -> Self {
        Wire { nic, error: None }
    }

    fn keep(&mut self, e: NicError) {
        self.error.get_or_insert(e);
    }

    /// Adds the driver's own receive drops to the switch's counters.
    pub fn flow(&self, mut switch: NicFlow) -> NicFlow {
        let c = self.nic.counters();
        switch.rx_errors = c.rx_drop_errors + c.rx_drop_no_eop + c.rx_drop_length;
        switch
    }
}

impl<N: NicDevice> WireRx for Wire<N> {
    fn next(&mut self) -> Option<(u16, u32)> {
        match self.nic.rx_peek() {
            Ok(frame) => frame.map(|f| (f.index, f.len)),
            Err(e) => {
                self.keep(e);
                None
            }
        }
    }

    fn read(&self, slot: u16, len: u32, f: impl FnMut(&[u8])) {
        // A failed read gives fewer bytes than `len`: the switch drops the
        // frame as short.
        let _ = self.nic.rx_read(slot, len, f);
    }

    fn recycle(&mut self, slot: u16) {
        if let Err(e) = self.nic.rx_recycle(slot) {
            self.keep(e);
        }
    }

    fn flush(&mut self) {
        self.nic.rx_flush();
    }

    #[inline]
    fn raw(&self, slot: u16, len: u32) -> Option<HostRange<'_>> {
        self.nic.rx_raw(slot, len)
    }
}

impl<N: NicDevice> WireTx for Wire<N> {
    fn claim(&mut self) -> Option<u16> {
        self.nic.tx_claim()
    }

    fn write(&mut self, slot: u16, at: u32, bytes: &[u8]) -> u32 {
        match self.nic.tx_write(slot, at, bytes) {
            Ok(n) => n,
            Err(e) => {
                self.keep(e);
                0
            }
        }
    }

    fn post(&mut self, slot: u16, len: u32) {
        if let Err(e) = self.nic.tx_post(slot, len) {
            self.keep(e);
        }
    }

    fn flush(&mut self) {
        self.nic.tx_flush();
    }

    #[inline]
    fn raw(&self, slot: u16) -> Option<HostRange<'_>> {
        self.nic.tx_raw(slot)
    }
}

/// The owned mode reaches the driver's caller-buffer rings through the
/// same wrapper (its errors are the owned pump's to keep).
impl<N: ZeroCopy> ZeroCopy for Wire<N> {
    fn zc_rx_give(&mut self, bus: u64, cookie: u16) -> Result<bool, NicError> {
        self.nic.zc_rx_give(bus, cookie)
    }
    fn zc_rx_taken(&mut self) -> Result<Option<(u16, Option<u32>)>, NicError> {
        self.nic.zc_rx_taken()
    }
    fn zc_rx_flush(&mut self) {
        self.nic.zc_rx_flush();
    }
    fn zc_tx_give(
        &mut self,
        header: &[u8; ETH_HEADER_BYTES],
        body: u64,
        body_len: u32,
        cookie: u16,
    ) -> Result<bool, NicError> {
        self.nic.zc_tx_give(header, body, body_len, cookie)
    }
    fn zc_tx_taken(&mut self) -> Result<Option<u16>, NicError> {
        self.nic.zc_tx_taken()
    }
    fn zc_tx_flush(&mut self) {
        self.nic.zc_tx_flush();
    }
    fn zc_revoke(&mut self) -> Result<(), NicError> {
        self.nic.zc_revoke()
    }
}

#[cfg(test)]
mod tests;
