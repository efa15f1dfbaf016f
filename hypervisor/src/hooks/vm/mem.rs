//! The program's memory: every address translated to one region (context, stack, packet, a map value) and bounds-checked there; anything else is no memory at all.

#![forbid(unsafe_code)]

use crate::hooks::layout::*;
use crate::hooks::maps::MapSet;
use crate::mem::raw::HostRange;
use vmm_abi::hook::STACK_SIZE;

/// The regions of one run.
pub(super) struct Mem<'r, 'a> {
    pub ctx: &'r [u8],
    /// The program's stack: the caller's, reused from run to run (the
    /// verifier proves every stack byte is written before it is read, so
    /// nothing of an earlier run can be seen).
    pub stack: &'r mut [u8; STACK_SIZE],
    pub packet: &'r mut [u8],
    /// The frame where it lies in a receiver's buffer, when the program
    /// runs on it there (then `packet` is empty and every packet access
    /// goes through this checked view): loads and stores only, no slice
    /// of it is ever made.
    pub frame: Option<&'r HostRange<'r>>,
    pub maps: &'r mut MapSet<'a>,
    /// The core whose per-core map copies the program sees.
    pub cpu: u32,
}

/// What an address is: its region and the offset in it.
enum Place {
    Ctx(usize),
    Stack(usize),
    Packet(usize),
    /// Map, offset in its value window.
    Map(usize, usize),
}

fn place(addr: u64) -> Option<Place> {
    let off = (addr & ((1 << REGION_SHIFT) - 1)) as usize;
    Some(match addr >> REGION_SHIFT {
        REGION_CTX => Place::Ctx(off),
        REGION_STACK => Place::Stack(off),
        REGION_PACKET => Place::Packet(off),
        REGION_MAPS => Place::Map(off >> MAP_WINDOW_SHIFT, off & ((1 << MAP_WINDOW_SHIFT) - 1)),
        _ => return None,
    })
}

fn range(b: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    b.get(at..at.checked_add(len)?)
}

fn range_mut(b: &mut [u8], at: usize, len: usize) -> Option<&mut [u8]> {
    b.get_mut(at..at.checked_add(len)?)
}

impl Mem<'_, '_> {
    /// The `len` bytes at `addr`, if they lie inside one region. With
    /// [`Mem::frame`] set, never packet bytes (no slice of guest memory
    /// is made): what needs them (helpers, atomic adds) does not run in
    /// place ([`super::interprets_in_place`]).
    #[inline(always)]
    pub fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        match place(addr)? {
            Place::Ctx(o) => range(self.ctx, o, len),
            Place::Stack(o) => range(&self.stack[..], o, len),
            Place::Packet(o) => range(self.packet, o, len),
            Place::Map(m, o) => self.maps.window(m, o, len, self.cpu),
        }
    }

    /// The `len` bytes at `addr`, if they lie inside one writable region
    /// (not the context; not the packet with [`Mem::frame`] set, as for
    /// [`Mem::bytes`]).
    pub fn bytes_mut(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        match place(addr)? {
            Place::Ctx(_) => None,
            Place::Stack(o) => range_mut(&mut self.stack[..], o, len),
            Place::Packet(o) => range_mut(self.packet, o, len),
            Place::Map(m, o) => self.maps.window_mut(m, o, len, self.cpu),
        }
    }

    /// A little-endian load of `N` (1, 2, 4 or 8) bytes: the loads of
    /// the interpreter's hot path, with the context, stack and packet
    /// found without going through [`place`].
    #[inline(always)]
    pub fn load_n<const N: usize>(&self, addr: u64) -> Option<u64> {
        let off = (addr & ((1 << REGION_SHIFT) - 1)) as usize;
        let region: &[u8] = match addr >> REGION_SHIFT {
            REGION_PACKET => match self.frame {
                None => self.packet,
                Some(f) => {
                    let mut le = [0u8; 8];
                    f.read_into(off as u64, le.get_mut(..N)?)?;
                    return Some(u64::from_le_bytes(le));
                }
            },
            REGION_CTX => self.ctx,
            REGION_STACK => &self.stack[..],
            _ => return self.load(addr, N),
        };
        let b: &[u8; N] = region.get(off..)?.first_chunk::<N>()?;
        let mut le = [0u8; 8];
        le.get_mut(..N)?.copy_from_slice(b);
        Some(u64::from_le_bytes(le))
    }

    /// A little-endian load of `size` (1, 2, 4 or 8) bytes.
    #[inline(always)]
    pub fn load(&self, addr: u64, size: usize) -> Option<u64> {
        if let (Some(f), Some(Place::Packet(o))) = (self.frame, place(addr)) {
            let mut le = [0u8; 8];
            f.read_into(o as u64, le.get_mut(..size)?)?;
            return matches!(size, 1 | 2 | 4 | 8).then(|| u64::from_le_bytes(le));
        }
        let b = self.bytes(addr, size)?;
        Some(match *b {
            [x] => u64::from(x),
            [a, b] => u64::from(u16::from_le_bytes([a, b])),
            [a, b, c, d] => u64::from(u32::from_le_bytes([a, b, c, d])),
            [a, b, c, d, e, f, g, h] => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
            _ => return None,
        })
    }

    /// A little-endian store of the low `size` (1, 2, 4 or 8) bytes of `v`.
    #[inline(always)]
    pub fn store(&mut self, addr: u64, size: usize, v: u64) -> Option<()> {
        if let (Some(f), Some(Place::Packet(o))) = (self.frame, place(addr)) {
            return f.write_from(o as u64, v.to_le_bytes().get(..size)?);
        }
        let b = self.bytes_mut(addr, size)?;
        b.copy_from_slice(v.to_le_bytes().get(..size)?);
        Some(())
    }
}
