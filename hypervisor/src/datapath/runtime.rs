//! A place for a packet hook attached while a service run goes on (one per link direction and per shared NIC queue), swapped atomically at a pass boundary.
//!
//! The link's polling core reads the slot's `armed` flag once per pass
//! (one relaxed load) and, only if it is set, takes the slot's lock for
//! the whole pass (the pump and the frames its hook sends back). The
//! control core puts a hook in or takes it out under the same lock, so a
//! swap happens between two passes: every frame is judged by exactly one
//! hook, the old or the new, never by both and never by neither. A
//! direction whose slot is empty pays that one load and nothing else; a
//! run that is not a service run has no slots at all.

#![forbid(unsafe_code)]

use crate::hooks::packet::PacketHook;
use core::sync::atomic::{AtomicBool, Ordering};
use spin::{Mutex, MutexGuard};

/// One link direction's place for a hook attached at runtime.
pub struct RuntimeSlot<'t> {
    /// Whether a hook is in the slot (a hint read without the lock; the
    /// lock's content decides).
    armed: AtomicBool,
    hook: Mutex<Option<PacketHook<'t>>>,
}

impl Default for RuntimeSlot<'_> {
    fn default() -> Self {
        RuntimeSlot {
            armed: AtomicBool::new(false),
            hook: Mutex::new(None),
        }
    }
}

impl<'t> RuntimeSlot<'t> {
    /// Puts `hook` in the slot (or empties it), once the polling core's
    /// pass is over; the hook it held, if any.
    pub fn swap(&self, hook: Option<PacketHook<'t>>) -> Option<PacketHook<'t>> {
        let mut held = self.hook.lock();
        let armed = hook.is_some();
        let old = core::mem::replace(&mut *held, hook);
        // Under the lock: the poller that sees the flag set finds the
        // hook (or, racing a detach, an empty slot it then skips).
        self.armed.store(armed, Ordering::Relaxed);
        old
    }

    /// The slot's lock for one pass, if a hook is in it (the polling core).
    #[inline]
    pub fn for_pass(&self) -> Option<MutexGuard<'_, Option<PacketHook<'t>>>> {
        if !self.armed.load(Ordering::Relaxed) {
            return None;
        }
        Some(self.hook.lock())
    }

    /// Runs `f` on the hook in the slot, if any (the control core: its
    /// counters and maps, between two passes).
    pub fn with<R>(&self, f: impl FnOnce(&PacketHook<'t>) -> R) -> Option<R> {
        self.hook.lock().as_ref().map(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::leaked_memory;
    use vmm_abi::hook::Insn;
    use vmm_abi::hook::asm;
    use vmm_abi::manifest::{HookAttach, LinkDir};

    fn pass_all() -> PacketHook<'static> {
        let insns: &'static [Insn] = std::vec![asm::mov64_imm(0, 2), asm::exit()].leak();
        PacketHook::new(
            "p",
            HookAttach::Link {
                link: 0,
                dir: LinkDir::AToB,
            },
            0,
            insns,
            &[],
            leaked_memory(std::vec![].leak(), insns.len()),
            || 0,
        )
        .unwrap()
    }

    #[test]
    fn a_slot_is_armed_only_while_it_holds_a_hook() {
        let slot = RuntimeSlot::default();
        assert!(slot.for_pass().is_none());
        assert!(slot.swap(Some(pass_all())).is_none());
        assert!(slot.for_pass().is_some_and(|g| g.is_some()));
        assert_eq!(slot.with(|h| h.name), Some("p"));
        let old = slot.swap(Some(pass_all().at_index(3)));
        assert_eq!(old.map(|h| h.index), Some(0));
        assert_eq!(slot.swap(None).map(|h| h.index), Some(3));
        assert!(slot.for_pass().is_none());
        assert!(slot.with(|h| h.index).is_none());
    }
}
