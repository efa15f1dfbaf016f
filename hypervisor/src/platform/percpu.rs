//! Per-core constants and counters: one `MAX_CORES` (the manifest's), and the per-core slots every layer indexes by core number.

use core::sync::atomic::{AtomicU64, Ordering};

/// The most cores Corral runs on: the manifest's limit, so a `cores` mask
/// and a core number mean the same everywhere.
pub const MAX_CORES: usize = vmm_abi::manifest::MAX_CORES as usize;

/// One counter per core, written only by its own core.
pub struct PerCore([AtomicU64; MAX_CORES]);

impl PerCore {
    /// All zero.
    pub const fn new() -> Self {
        Self([const { AtomicU64::new(0) }; MAX_CORES])
    }

    /// Core `core`'s value (0 for a core number out of range).
    pub fn get(&self, core: u32) -> u64 {
        self.0
            .get(core as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Sets core `core`'s value (ignored for a core number out of range).
    pub fn set(&self, core: u32, value: u64) {
        if let Some(c) = self.0.get(core as usize) {
            c.store(value, Ordering::Relaxed);
        }
    }

    /// Adds one to core `core`'s value; only that core may call it.
    #[inline]
    pub fn bump(&self, core: u32) {
        if let Some(c) = self.0.get(core as usize) {
            // Only this core writes its counter: no read-modify-write needed.
            c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
    }

    /// The sum over all cores.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

impl Default for PerCore {
    fn default() -> Self {
        Self::new()
    }
}
