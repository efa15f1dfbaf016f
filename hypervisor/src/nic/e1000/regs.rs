//! Intel 82540EM register offsets, register bits and descriptor layouts, named as in the PCI/PCI-X Family of Gigabit Ethernet Controllers Software Developer's Manual (8254x SDM, 317453-006), chapter 13 (registers) and section 3.2/3.3 (descriptors).
#![forbid(unsafe_code)]

// Register offsets from BAR0 (SDM table 13-2). Every access is 32 bits wide.

/// Device Control (SDM 13.4.1).
pub const CTRL: u32 = 0x0000;
/// Device Status (SDM 13.4.2).
pub const STATUS: u32 = 0x0008;
/// EEPROM Read (SDM 13.4.4).
pub const EERD: u32 = 0x0014;
/// Interrupt Cause Read (SDM 13.4.17); reading clears it.
pub const ICR: u32 = 0x00C0;
/// Interrupt Mask Set/Read (SDM 13.4.20).
pub const IMS: u32 = 0x00D0;
/// Interrupt Mask Clear (SDM 13.4.21).
pub const IMC: u32 = 0x00D8;
/// Receive Control (SDM 13.4.22).
pub const RCTL: u32 = 0x0100;
/// Transmit Control (SDM 13.4.33).
pub const TCTL: u32 = 0x0400;
/// Transmit Inter Packet Gap (SDM 13.4.34).
pub const TIPG: u32 = 0x0410;
/// Receive Descriptor Base Address Low (SDM 13.4.27).
pub const RDBAL: u32 = 0x2800;
/// Receive Descriptor Base Address High (SDM 13.4.28).
pub const RDBAH: u32 = 0x2804;
/// Receive Descriptor Length in bytes (SDM 13.4.29).
pub const RDLEN: u32 = 0x2808;
/// Receive Descriptor Head (SDM 13.4.30).
pub const RDH: u32 = 0x2810;
/// Receive Descriptor Tail (SDM 13.4.31).
pub const RDT: u32 = 0x2818;
/// Transmit Descriptor Base Address Low (SDM 13.4.38).
pub const TDBAL: u32 = 0x3800;
/// Transmit Descriptor Base Address High (SDM 13.4.39).
pub const TDBAH: u32 = 0x3804;
/// Transmit Descriptor Length in bytes (SDM 13.4.40).
pub const TDLEN: u32 = 0x3808;
/// Transmit Descriptor Head (SDM 13.4.41).
pub const TDH: u32 = 0x3810;
/// Transmit Descriptor Tail (SDM 13.4.42).
pub const TDT: u32 = 0x3818;
/// Multicast Table Array, first of [`MTA_ENTRIES`] words (SDM 13.5.1).
pub const MTA: u32 = 0x5200;
/// Words in the Multicast Table Array.
pub const MTA_ENTRIES: u32 = 128;
/// Receive Address Low 0 (SDM 13.5.2); RAL n is at `RAL0 + n * RA_STRIDE`.
pub const RAL0: u32 = 0x5400;
/// Receive Address High 0 (SDM 13.5.3); RAH n is at `RAH0 + n * RA_STRIDE`.
pub const RAH0: u32 = 0x5404;
/// Bytes between one RAL/RAH pair and the next.
pub const RA_STRIDE: u32 = 8;
/// RAH.AV: the address in this RAL/RAH pair is valid (SDM 13.5.3).
pub const RAH_AV: u32 = 1 << 31;
/// Receive-address pairs the driver programs or clears. The 82540EM has 16;
/// Bochs 2.7 takes writes to the first 4 only.
pub const RA_PAIRS: u32 = 4;

// CTRL bits (SDM table 13-3).

/// CTRL.ASDE: auto-speed detection enable.
pub const CTRL_ASDE: u32 = 1 << 5;
/// CTRL.SLU: set link up.
pub const CTRL_SLU: u32 = 1 << 6;
/// CTRL.RST: device reset; self-clearing.
pub const CTRL_RST: u32 = 1 << 26;
/// CTRL.PHY_RST: PHY reset.
pub const CTRL_PHY_RST: u32 = 1 << 31;

// STATUS bits (SDM table 13-5).

/// STATUS.LU: link up.
pub const STATUS_LU: u32 = 1 << 1;

// EERD fields (SDM 13.4.4, 82540EM layout).

/// EERD.START: start a read.
pub const EERD_START: u32 = 1 << 0;
/// EERD.DONE: the read finished; DATA is valid.
pub const EERD_DONE: u32 = 1 << 4;
/// EERD.ADDR: the word address, bits 15:8.
pub const EERD_ADDR_SHIFT: u32 = 8;
/// EERD.DATA: the word read, bits 31:16.
pub const EERD_DATA_SHIFT: u32 = 16;
/// EEPROM words 0..3 hold the Ethernet address (SDM 5.6.1), low byte first.
pub const EEPROM_MAC_WORDS: u8 = 3;

/// IMC: every interrupt cause bit (SDM table 13-66).
pub const IMC_ALL: u32 = 0xFFFF_FFFF;

// RCTL bits (SDM table 13-67).

/// RCTL.EN: receiver enable.
pub const RCTL_EN: u32 = 1 << 1;
/// RCTL.UPE: unicast promiscuous (every unicast frame passes the filter).
pub const RCTL_UPE: u32 = 1 << 3;
/// RCTL.MPE: multicast promiscuous.
pub const RCTL_MPE: u32 = 1 << 4;
/// RCTL.BAM: broadcast accept mode.
pub const RCTL_BAM: u32 = 1 << 15;
/// RCTL.BSIZE = 00 with RCTL.BSEX = 0: 2048-byte receive buffers.
pub const RCTL_BSIZE_2048: u32 = 0b00 << 16;
/// RCTL.SECRC: strip the Ethernet CRC (FCS) from received frames.
pub const RCTL_SECRC: u32 = 1 << 26;

// TCTL bits and fields (SDM table 13-76).

/// TCTL.EN: transmitter enable.
pub const TCTL_EN: u32 = 1 << 1;
/// TCTL.PSP: pad short packets.
pub const TCTL_PSP: u32 = 1 << 3;
/// TCTL.CT (bits 11:4): collision threshold, 0Fh as the SDM recommends.
pub const TCTL_CT_STANDARD: u32 = 0x0F << 4;
/// TCTL.COLD (bits 21:12): collision distance, 40h for full duplex.
pub const TCTL_COLD_FULL_DUPLEX: u32 = 0x40 << 12;

/// TIPG for the 82540EM on copper (SDM table 13-77): IPGT = 10,
/// IPGR1 = 8 (bits 19:10), IPGR2 = 6 (bits 29:20).
pub const TIPG_STANDARD: u32 = 10 | (8 << 10) | (6 << 20);

// Legacy descriptors: 16 bytes each (SDM 3.2.3 receive, 3.3.3 transmit).

/// Bytes in a legacy receive or transmit descriptor.
pub const DESC_BYTES: u64 = 16;
/// Descriptor field: Buffer Address (u64), both kinds.
pub const DESC_ADDR: u64 = 0;
/// Descriptor field: Length (u16), both kinds.
pub const DESC_LENGTH: u64 = 8;
/// Receive descriptor field: Status (u8).
pub const RXD_STATUS: u64 = 12;
/// Receive descriptor field: Errors (u8).
pub const RXD_ERRORS: u64 = 13;
/// Transmit descriptor field: CMD (u8).
pub const TXD_CMD: u64 = 11;
/// Transmit descriptor field: STA (u8).
pub const TXD_STATUS: u64 = 12;

/// Receive status DD: descriptor done (SDM table 3-2).
pub const RXD_STAT_DD: u8 = 1 << 0;
/// Receive status EOP: end of packet.
pub const RXD_STAT_EOP: u8 = 1 << 1;

/// Transmit CMD.EOP: end of packet (SDM table 3-10).
pub const TXD_CMD_EOP: u8 = 1 << 0;
/// Transmit CMD.IFCS: insert FCS.
pub const TXD_CMD_IFCS: u8 = 1 << 1;
/// Transmit CMD.RS: report status (write back DD).
pub const TXD_CMD_RS: u8 = 1 << 3;
/// Transmit STA.DD: descriptor done (SDM table 3-11).
pub const TXD_STAT_DD: u8 = 1 << 0;

/// Bytes of the Ethernet FCS a receive length may include (without SECRC).
pub const FCS_BYTES: u32 = 4;
