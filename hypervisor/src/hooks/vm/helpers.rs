//! Helper calls: arguments checked again at run time (the helper allowed for the hook kind, `r1` a handle of a map in the set, keys and values readable in full), then the map operation or the environment's answer in `r0`.
//!
//! Keys and values are copied out of the program's memory before the map
//! is touched, so a key that lies inside the same map's values is read
//! whole before anything moves.

#![forbid(unsafe_code)]

use super::{FaultKind, HookEnv, Machine};
use crate::hooks::layout::{MAP_BASE, MAP_HANDLE_BASE, MAP_WINDOW_SHIFT};
use vmm_abi::hook::insn::*;
use vmm_abi::hook::map::{MAX_KEY_SIZE, MAX_VALUE_SIZE, neg_errno};

impl Machine<'_, '_> {
    /// Calls helper `id` with `r1..=r5`; its result for `r0`.
    pub(super) fn call<E: HookEnv + ?Sized>(&mut self, id: u32, env: &E) -> Result<u64, FaultKind> {
        if !self.kind.allows(id) {
            return Err(FaultKind::Helper { id });
        }
        match id {
            BPF_FUNC_MAP_LOOKUP_ELEM => {
                let map = self.map_arg()?;
                let mut key = [0; MAX_KEY_SIZE as usize];
                let key = self.copy_arg(self.reg(2), &mut key, self.key_size(map))?;
                let (Some(slot), Some(stride)) = (
                    self.mem.maps.slot(map, key, self.mem.cpu),
                    self.mem.maps.stride(map),
                ) else {
                    return Ok(0);
                };
                Ok(MAP_BASE + ((map as u64) << MAP_WINDOW_SHIFT) + (slot * stride) as u64)
            }
            BPF_FUNC_MAP_UPDATE_ELEM => {
                let map = self.map_arg()?;
                let def = self.mem.maps.def(map).copied();
                let (key_size, value_size) =
                    def.map_or((0, 0), |d| (d.key_size as usize, d.value_size as usize));
                let mut key = [0; MAX_KEY_SIZE as usize];
                let key = self.copy_arg(self.reg(2), &mut key, key_size)?;
                let mut value = [0; MAX_VALUE_SIZE as usize];
                let value = self.copy_arg(self.reg(3), &mut value, value_size)?;
                let flags = self.reg(4);
                let cpu = self.mem.cpu;
                Ok(match self.mem.maps.update(map, key, value, flags, cpu) {
                    Ok(()) => 0,
                    Err(e) => neg_errno(e.errno()),
                })
            }
            BPF_FUNC_MAP_DELETE_ELEM => {
                let map = self.map_arg()?;
                let mut key = [0; MAX_KEY_SIZE as usize];
                let key = self.copy_arg(self.reg(2), &mut key, self.key_size(map))?;
                Ok(match self.mem.maps.delete(map, key) {
                    Ok(()) => 0,
                    Err(e) => neg_errno(e.errno()),
                })
            }
            BPF_FUNC_KTIME_GET_NS => Ok(env.ktime_ns()),
            BPF_FUNC_GET_SMP_PROCESSOR_ID => Ok(u64::from(env.core())),
            BPF_FUNC_REDIRECT => {
                // As Linux: flags must be 0, else the answer is XDP_ABORTED.
                if self.reg(2) != 0 {
                    return Ok(XDP_ABORTED);
                }
                self.redirect = Some(self.reg(1) as u32);
                Ok(XDP_REDIRECT)
            }
            _ => Err(FaultKind::Helper { id }),
        }
    }

    /// The map `r1` is a handle of.
    fn map_arg(&self) -> Result<usize, FaultKind> {
        let value = self.reg(1);
        value
            .checked_sub(MAP_HANDLE_BASE)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < self.mem.maps.len())
            .ok_or(FaultKind::NotMapHandle { value })
    }

    fn key_size(&self, map: usize) -> usize {
        self.mem.maps.def(map).map_or(0, |d| d.key_size as usize)
    }

    /// Copies `len` bytes at `addr` into `buf`; the copy.
    fn copy_arg<'b>(
        &self,
        addr: u64,
        buf: &'b mut [u8],
        len: usize,
    ) -> Result<&'b [u8], FaultKind> {
        let fault = FaultKind::HelperMemory {
            addr,
            len: len as u32,
        };
        let src = self.mem.bytes(addr, len).ok_or(fault)?;
        let dst = buf.get_mut(..len).ok_or(fault)?;
        dst.copy_from_slice(src);
        Ok(dst)
    }
}
