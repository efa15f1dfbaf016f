//! Test doubles: an e1000 register file with a device model behind it (EEPROM, reset, a receive "wire", synchronous transmit, modelled on Bochs 2.7's behaviour), DMA memory over a `Vec`, and a PCI configuration space.
#![forbid(unsafe_code)]

use super::e1000::regs::*;
use super::pci::{CFG_BAR0, CFG_COMMAND, COMMAND_MASK, COMMAND_MEMORY, PciAddress};
use super::{ConfigSpace, Regs};
use crate::mem::access::{Gpa, GuestRam, GuestRead};
use crate::mem::raw::RawRam;
use crate::mem::raw::testing::over_vec_at;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// Where the tests put the DMA area: above 4 GiB, so RDBAH/TDBAH matter.
pub const DMA_BASE: u64 = 0x1_2340_0000;
/// The EEPROM's MAC.
pub const EEPROM_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/// The device behind the registers.
pub struct Device {
    /// Register values by offset (0 until written).
    pub regs: HashMap<u32, u32>,
    /// EEPROM contents.
    pub eeprom: [u16; 64],
    /// The device's own view of memory (DMA).
    pub ram: RawRam,
    /// Frames transmitted, in order.
    pub sent: Vec<Vec<u8>>,
    /// Frames the wire brought that found no descriptor (or RX disabled).
    pub missed: u64,
    /// Writes to TDT.
    pub tdt_writes: u32,
    /// Writes to RDT.
    pub rdt_writes: u32,
    /// CTRL.RST never clears.
    pub reset_sticks: bool,
    /// EERD never reports DONE.
    pub eeprom_dead: bool,
    /// RCTL.SECRC does not stick (reads back clear), and frames keep their FCS.
    pub secrc_ignored: bool,
    /// The transmitter does nothing on a TDT write.
    pub tx_stalled: bool,
    /// RDH changes on every read (a device that never stops).
    pub rdh_runs: bool,
    /// Bytes of a transmit chain without EOP yet.
    pending: Vec<u8>,
}

impl Device {
    fn reg(&self, r: u32) -> u32 {
        self.regs.get(&r).copied().unwrap_or(0)
    }

    fn set(&mut self, r: u32, v: u32) {
        self.regs.insert(r, v);
    }

    fn read(&mut self, r: u32) -> u32 {
        match r {
            ICR => {
                let v = self.reg(ICR);
                self.set(ICR, 0);
                v
            }
            STATUS => {
                if self.reg(CTRL) & CTRL_SLU != 0 {
                    STATUS_LU
                } else {
                    0
                }
            }
            RDH if self.rdh_runs => {
                let v = self.reg(RDH).wrapping_add(1);
                self.set(RDH, v);
                v
            }
            _ => self.reg(r),
        }
    }

    fn write(&mut self, r: u32, v: u32) {
        match r {
            // Like Bochs: RST clears itself and resets no ring register.
            CTRL if self.reset_sticks => self.set(CTRL, v),
            CTRL => self.set(CTRL, v & !CTRL_RST),
            EERD if v & EERD_START != 0 && !self.eeprom_dead => {
                let word = (v >> EERD_ADDR_SHIFT) & 0xff;
                let data = self.eeprom.get(word as usize).copied().unwrap_or(0xffff);
                self.set(
                    EERD,
                    (u32::from(data) << EERD_DATA_SHIFT) | (word << EERD_ADDR_SHIFT) | EERD_DONE,
                );
            }
            EERD => self.set(EERD, v & !EERD_DONE),
            IMS => self.set(IMS, self.reg(IMS) | v),
            IMC => self.set(IMS, self.reg(IMS) & !v),
            RCTL if self.secrc_ignored => self.set(RCTL, v & !RCTL_SECRC),
            // Like Bochs: only the first 4 receive-address pairs take writes.
            _ if (RAL0 + RA_PAIRS * RA_STRIDE..RAL0 + 16 * RA_STRIDE).contains(&r) => {}
            TDT => {
                self.set(TDT, v);
                self.tdt_writes += 1;
                self.transmit();
            }
            RDT => {
                self.set(RDT, v);
                self.rdt_writes += 1;
            }
            _ => self.set(r, v),
        }
    }

    fn ring(&self, bal: u32, bah: u32, len: u32) -> (u64, u32) {
        let base = u64::from(self.reg(bal)) | (u64::from(self.reg(bah)) << 32);
        (base, self.reg(len) / DESC_BYTES as u32)
    }

    /// Sends TDH..TDT inside the TDT write, as Bochs does.
    fn transmit(&mut self) {
        if self.reg(TCTL) & TCTL_EN == 0 || self.tx_stalled {
            return;
        }
        let (base, n) = self.ring(TDBAL, TDBAH, TDLEN);
        let mut guard = 0;
        while n > 0 && self.reg(TDH) != self.reg(TDT) && guard < n {
            let d = base + u64::from(self.reg(TDH) % n) * DESC_BYTES;
            let addr = self.ram.read_u64(Gpa(d)).unwrap();
            let upper = self.ram.read_u64(Gpa(d + DESC_LENGTH)).unwrap();
            let len = upper as u16;
            let cmd = (upper >> 24) as u8;
            let mut bytes = vec![0; len.into()];
            self.ram.read(Gpa(addr), &mut bytes).unwrap();
            self.pending.extend_from_slice(&bytes);
            if cmd & TXD_CMD_EOP != 0 {
                self.sent.push(std::mem::take(&mut self.pending));
            }
            if cmd & TXD_CMD_RS != 0 {
                self.ram.write(Gpa(d + TXD_STATUS), &[TXD_STAT_DD]).unwrap();
            }
            self.set(TDH, (self.reg(TDH) + 1) % n);
            guard += 1;
        }
    }

    /// Where the next received frame goes: the descriptor at RDH, if the
    /// receiver is on and RDH != RDT.
    fn rx_slot(&mut self) -> Option<u64> {
        let (base, n) = self.ring(RDBAL, RDBAH, RDLEN);
        if self.reg(RCTL) & RCTL_EN == 0 || n == 0 || self.reg(RDH) == self.reg(RDT) {
            self.missed += 1;
            return None;
        }
        let rdh = self.reg(RDH) % n;
        self.set(RDH, (rdh + 1) % n);
        Some(base + u64::from(rdh) * DESC_BYTES)
    }

    /// The wire brings `frame`: into the next descriptor's buffer with
    /// DD|EOP (and 4 FCS bytes unless SECRC). `false` if it was missed.
    pub fn receive(&mut self, frame: &[u8]) -> bool {
        let Some(d) = self.rx_slot() else {
            return false;
        };
        let mut data = frame.to_vec();
        if self.reg(RCTL) & RCTL_SECRC == 0 {
            data.extend_from_slice(&[0xfc; 4]);
        }
        let addr = self.ram.read_u64(Gpa(d)).unwrap();
        self.ram.write(Gpa(addr), &data).unwrap();
        let upper = u64::from(data.len() as u16)
            | (u64::from(RXD_STAT_DD | RXD_STAT_EOP) << ((RXD_STATUS - DESC_LENGTH) * 8));
        self.ram.write_u64(Gpa(d + DESC_LENGTH), upper).unwrap();
        true
    }

    /// The device writes back the next descriptor with any fields it likes
    /// (and no data). `false` if there was no descriptor for it.
    pub fn receive_raw(&mut self, len: u16, status: u8, errors: u8) -> bool {
        let Some(d) = self.rx_slot() else {
            return false;
        };
        self.write_desc(d, len, status, errors);
        true
    }

    /// The device scribbles on receive descriptor `i`, owned or not.
    pub fn scribble(&mut self, i: u32, len: u16, status: u8, errors: u8) {
        let (base, n) = self.ring(RDBAL, RDBAH, RDLEN);
        if n > 0 {
            self.write_desc(base + u64::from(i % n) * DESC_BYTES, len, status, errors);
        }
    }

    fn write_desc(&mut self, d: u64, len: u16, status: u8, errors: u8) {
        let upper = u64::from(len)
            | (u64::from(status) << ((RXD_STATUS - DESC_LENGTH) * 8))
            | (u64::from(errors) << ((RXD_ERRORS - DESC_LENGTH) * 8));
        self.ram.write_u64(Gpa(d + DESC_LENGTH), upper).unwrap();
    }
}

/// The driver's handle on the fake registers.
#[derive(Clone)]
pub struct FakeRegs(pub Rc<RefCell<Device>>);

impl Regs for FakeRegs {
    fn read(&self, reg: u32) -> u32 {
        assert!(reg.is_multiple_of(4), "unaligned register {reg:#x}");
        self.0.borrow_mut().read(reg)
    }

    fn write(&mut self, reg: u32, value: u32) {
        assert!(reg.is_multiple_of(4), "unaligned register {reg:#x}");
        self.0.borrow_mut().write(reg, value);
    }
}

/// A NIC with its memory: `dma` is the driver's view of the area, `device`
/// the model (sharing the memory through its own view).
pub struct FakeNic {
    /// The memory behind both views; not touched while they are used.
    _memory: Box<[u8]>,
    /// The driver's DMA view.
    pub dma: RawRam,
    /// The device.
    pub device: Rc<RefCell<Device>>,
}

impl FakeNic {
    /// A device with `bytes` of DMA memory at [`DMA_BASE`] and garbage in
    /// every register a reset leaves alone.
    pub fn new(bytes: u64) -> Self {
        let mut memory = vec![0u8; bytes as usize].into_boxed_slice();
        let dma = over_vec_at(&mut memory, DMA_BASE);
        let mut eeprom = [0u16; 64];
        for (w, pair) in eeprom.iter_mut().zip(EEPROM_MAC.chunks(2)) {
            *w = u16::from_le_bytes([pair[0], pair[1]]);
        }
        let mut regs = HashMap::new();
        for (r, v) in [
            (IMS, 0xdead_beef),
            (RDBAL, 0x1111_1110),
            (RDBAH, 0x2),
            (RDLEN, 0x80),
            (RDH, 5),
            (RDT, 3),
            (TDBAL, 0x3333_3330),
            (TDBAH, 0x4),
            (TDLEN, 0x100),
            (TDH, 7),
            (TDT, 2),
            (RAL0 + RA_STRIDE, 0x0102_0304),
            (RAH0 + RA_STRIDE, RAH_AV | 0x0506),
        ] {
            regs.insert(r, v);
        }
        for i in 0..MTA_ENTRIES {
            regs.insert(MTA + 4 * i, 0xffff_ffff);
        }
        let device = Device {
            regs,
            eeprom,
            ram: dma,
            sent: Vec::new(),
            missed: 0,
            tdt_writes: 0,
            rdt_writes: 0,
            reset_sticks: false,
            eeprom_dead: false,
            secrc_ignored: false,
            tx_stalled: false,
            rdh_runs: false,
            pending: Vec::new(),
        };
        FakeNic {
            _memory: memory,
            dma,
            device: Rc::new(RefCell::new(device)),
        }
    }

    /// The driver's register handle.
    pub fn regs(&self) -> FakeRegs {
        FakeRegs(self.device.clone())
    }

    /// A register's value as the device holds it.
    pub fn reg(&self, r: u32) -> u32 {
        self.device.borrow().reg(r)
    }
}

/// One function's configuration header and which BAR bits are writable.
#[derive(Clone)]
pub struct FakeFunction {
    /// The 64 dwords of its header.
    pub header: [u32; 64],
    /// Per BAR register: the address bits that take writes.
    pub bar_masks: [u32; 6],
}

impl FakeFunction {
    /// A function with IDs and a header type.
    pub fn new(vendor: u16, device: u16, header_type: u8) -> Self {
        let mut header = [0; 64];
        header[0] = u32::from(vendor) | (u32::from(device) << 16);
        header[3] = u32::from(header_type) << 16;
        FakeFunction {
            header,
            bar_masks: [0; 6],
        }
    }

    /// BAR register `n` holds `value`, and `mask` are its writable address
    /// bits (the high half of a 64-bit BAR is register `n + 1`).
    pub fn bar(mut self, n: usize, value: u32, mask: u32) -> Self {
        self.header[(usize::from(CFG_BAR0) / 4) + n] = value;
        self.bar_masks[n] = mask;
        self
    }
}

/// A configuration space with the functions given; the rest read all
/// ones. Every write is logged with the Command register's memory bit at
/// the time.
#[derive(Default)]
pub struct FakeConfig {
    /// Functions present.
    pub functions: BTreeMap<PciAddress, FakeFunction>,
    /// `(where, offset, value, memory decoding was on)` per write.
    pub writes: Vec<(PciAddress, u8, u32, bool)>,
}

impl ConfigSpace for FakeConfig {
    fn read32(&self, at: PciAddress, offset: u8) -> u32 {
        assert!(offset.is_multiple_of(4));
        self.functions
            .get(&at)
            .map_or(u32::MAX, |f| f.header[usize::from(offset / 4)])
    }

    fn write32(&mut self, at: PciAddress, offset: u8, value: u32) {
        assert!(offset.is_multiple_of(4));
        let Some(f) = self.functions.get_mut(&at) else {
            return;
        };
        let decoding = f.header[usize::from(CFG_COMMAND / 4)] & COMMAND_MEMORY != 0;
        self.writes.push((at, offset, value, decoding));
        let i = usize::from(offset / 4);
        let bar = i.wrapping_sub(usize::from(CFG_BAR0 / 4));
        if bar < 6 {
            // Only the address bits take writes (the probe reads back the mask).
            let mask = f.bar_masks[bar];
            f.header[i] = (f.header[i] & !mask) | (value & mask);
        } else if offset == CFG_COMMAND {
            f.header[i] = value & COMMAND_MASK;
        } else {
            f.header[i] = value;
        }
    }
}
