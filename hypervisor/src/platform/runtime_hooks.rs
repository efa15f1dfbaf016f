//! Packet hooks attached, swapped and detached while a service run goes on: the upload's staging memory, each attached hook's frames (name, program, decoded ops, maps) lent by the frame allocator and given back on detach or swap, and the places (`datapath::runtime`) the polling cores read once a pass.
//!
//! Runtime hooks are interpreted: the JIT's code area was sealed
//! read-execute at boot (W^X) and is never made writable again.
//! A hook that leaves its direction (detach, or a swap) prints its `hook`
//! record (and its maps') at once, under its own index: the manifest's
//! hook count plus the order it was attached in, so the end-of-run report
//! has every hook that ran.

use super::instr;
use super::memory::{self, Lent};
use super::net::Net;
use super::serial;
use crate::control::{HookPlace, HookRefusal, HookStat, HookTarget, MapRow, Name};
use crate::hooks::HookMemory;
use crate::hooks::maps::bytes_needed;
use crate::hooks::packet::{BuildError, PacketHook};
use crate::hooks::vm::op::Op;
use heapless::Vec;
use spin::Mutex;
use vmm_abi::hook::insn::INSN_SIZE;
use vmm_abi::hook::{HookKind, Insn, MAX_MAPS, MapDef, verify};
use vmm_abi::manifest::{HookAttach, LinkDir};

/// Hooks a run attaches at runtime, at most (each gets a report index
/// of its own; the host's report reads 64 hooks, the manifest has at
/// most 16).
pub const MAX_RUNTIME_HOOKS: usize = 32;

/// An upload in progress.
struct Staged {
    name: Name,
    link: u32,
    dir: LinkDir,
    defs: Vec<MapDef, MAX_MAPS>,
    insns: &'static mut [Insn],
    lent: Lent,
}

/// A hook attached at runtime, with the frames it was built in.
struct Attached {
    name: Name,
    link: u32,
    dir: LinkDir,
    /// Its name's, program's, ops' and maps' frames.
    lent: [Lent; 4],
}

/// The run's runtime hooks (the control core's alone: every method runs
/// there).
pub struct RuntimeHooks {
    staged: Mutex<Option<Staged>>,
    attached: Mutex<Vec<Attached, MAX_RUNTIME_HOOKS>>,
    /// Hooks attached so far (the next one's report index is the
    /// manifest's hook count plus this).
    count: Mutex<u32>,
}

impl RuntimeHooks {
    /// No runtime hooks yet.
    pub const fn new() -> Self {
        RuntimeHooks {
            staged: Mutex::new(None),
            attached: Mutex::new(Vec::new()),
            count: Mutex::new(0),
        }
    }

    /// What link `link`'s direction `dir` offers a runtime hook.
    pub fn place(&self, net: &Net, link: u32, dir: LinkDir) -> HookPlace {
        if net.has_manifest_hook(link, dir) {
            return HookPlace::Manifest;
        }
        match (net.link_core(link), net.runtime_slot(link, dir)) {
            (None, _) => HookPlace::NoLink,
            (Some(_), None) => HookPlace::Nic,
            (Some(_), Some(_)) => HookPlace::Open,
        }
    }

    /// Begins an upload: room for its instructions.
    pub fn begin(&self, t: &HookTarget<'_>) -> Result<(), HookRefusal> {
        self.abort();
        let (insns, lent) =
            memory::lend_slice(t.insns as usize, Insn::default()).ok_or(HookRefusal::NoMemory)?;
        let mut defs = Vec::new();
        for d in t.maps {
            // At most MAX_MAPS came.
            let _ = defs.push(*d);
        }
        *self.staged.lock() = Some(Staged {
            name: Name::try_from(t.name).unwrap_or_default(),
            link: t.link,
            dir: t.dir,
            defs,
            insns,
            lent,
        });
        Ok(())
    }

    /// Writes instructions from `offset` on (the channel checked they fit).
    pub fn write(&self, offset: u32, bytes: &[u8]) -> Result<(), HookRefusal> {
        let mut staged = self.staged.lock();
        let Some(s) = staged.as_mut() else {
            return Err(HookRefusal::NoUpload);
        };
        let slots = s.insns.iter_mut().skip(offset as usize);
        for (slot, b) in slots.zip(bytes.chunks_exact(INSN_SIZE)) {
            let mut raw = [0; INSN_SIZE];
            raw.copy_from_slice(b);
            *slot = Insn::from_bytes(raw);
        }
        Ok(())
    }

    /// Drops the upload in progress, giving its room back.
    pub fn abort(&self) {
        if let Some(s) = self.staged.lock().take() {
            let Staged { insns, lent, .. } = s;
            let _ = insns;
            // SAFETY: the staged instructions were the only reference into
            // these frames, and they were just dropped.
            unsafe { memory::give_back(lent) };
        }
    }

    /// Verifies the upload and puts its hook on its direction (the hook
    /// there before, if any, taken off: its final counters).
    pub fn commit(&self, net: &Net, manifest_hooks: u32) -> Result<Option<HookStat>, HookRefusal> {
        let Some(s) = self.staged.lock().take() else {
            return Err(HookRefusal::NoUpload);
        };
        let Staged {
            name,
            link,
            dir,
            defs,
            insns,
            lent,
        } = s;
        let refuse = |insns: &'static mut [Insn], lent: Lent, why: HookRefusal| {
            let _ = insns;
            // SAFETY: nothing was built over the instructions: the one
            // reference into these frames was just dropped.
            unsafe { memory::give_back(lent) };
            Err(why)
        };
        let attach = HookAttach::Link { link, dir };
        let (Some(slot), Some(core), Some((from, to))) = (
            net.runtime_slot(link, dir),
            net.link_core(link),
            net.link_ports(link, dir),
        ) else {
            return refuse(insns, lent, HookRefusal::NoLink);
        };
        if let Err(e) = verify(insns, HookKind::Packet, &defs) {
            return refuse(insns, lent, HookRefusal::Build(BuildError::Verify(e)));
        }
        let mut count = self.count.lock();
        let mut attached = self.attached.lock();
        let replaces = attached.iter().position(|a| (a.link, a.dir) == (link, dir));
        if *count as usize >= MAX_RUNTIME_HOOKS {
            let limit = MAX_RUNTIME_HOOKS as u32;
            return refuse(insns, lent, HookRefusal::TooMany { limit });
        }
        let arena_bytes = match bytes_needed(&defs, core + 1) {
            Ok(b) => b,
            Err(e) => return refuse(insns, lent, HookRefusal::Build(BuildError::Maps(e))),
        };
        let parts = (
            memory::lend_slice(name.len(), 0u8),
            memory::lend_slice(insns.len(), Op::default()),
            memory::lend_slice(arena_bytes, 0u8),
        );
        let (Some((name_bytes, name_lent)), Some((ops, ops_lent)), Some((arena, arena_lent))) =
            parts
        else {
            let (a, b, c) = parts;
            for lent in [a.map(|p| p.1), b.map(|p| p.1), c.map(|p| p.1)]
                .into_iter()
                .flatten()
            {
                // SAFETY: these frames were just lent and nothing was
                // built over them.
                unsafe { memory::give_back(lent) };
            }
            return refuse(insns, lent, HookRefusal::NoMemory);
        };
        name_bytes.copy_from_slice(name.as_bytes());
        // The bytes of a checked name: UTF-8.
        let hook_name: &'static str = core::str::from_utf8(name_bytes).unwrap_or("?");
        let index = manifest_hooks + *count;
        let hook = PacketHook::new(
            hook_name,
            attach,
            core,
            insns,
            &defs,
            HookMemory { arena, ops },
            hook_clock,
        );
        let hook = match hook {
            Ok(h) => h.at_index(index),
            Err(e) => {
                // Built over nothing that lives on: every frame goes back.
                for l in [name_lent, ops_lent, arena_lent, lent] {
                    // SAFETY: the hook that was to use these frames was
                    // not built; no reference into them is left.
                    unsafe { memory::give_back(l) };
                }
                return Err(HookRefusal::Build(e));
            }
        };
        hook.set_ports(from, to);
        let old = slot.swap(Some(hook));
        *count += 1;
        let stat = old.map(|h| retire(h));
        if let Some(i) = replaces {
            let gone = attached.swap_remove(i);
            give_back_all(gone);
        }
        // Room: at most one hook per attach, MAX_RUNTIME_HOOKS attaches.
        let _ = attached.push(Attached {
            name: name.clone(),
            link,
            dir,
            lent: [name_lent, lent, ops_lent, arena_lent],
        });
        log::info!(
            "hook {name}: attached at runtime on link {link} {} (core {core}), {} instructions, {} maps, interpreted (the JIT's code area is sealed at boot){}",
            dir.name(),
            insns.len(),
            defs.len(),
            if stat.is_some() {
                ", in place of the hook there"
            } else {
                ""
            }
        );
        Ok(stat)
    }

    /// Takes runtime hook `name` off its direction and gives its memory
    /// back; its final counters.
    pub fn detach(&self, net: &Net, name: &str) -> Result<HookStat, HookRefusal> {
        let mut attached = self.attached.lock();
        let Some(i) = attached.iter().position(|a| a.name == name) else {
            return Err(HookRefusal::NoHook);
        };
        let a = attached.swap_remove(i);
        let old = net.runtime_slot(a.link, a.dir).and_then(|s| s.swap(None));
        let stat = old.map(|h| retire(h));
        log::info!(
            "hook {name}: detached from link {} {}",
            a.link,
            a.dir.name()
        );
        give_back_all(a);
        stat.ok_or(HookRefusal::NoHook)
    }

    /// Runs `f` on runtime hook `name`, if it is attached.
    pub fn with<R>(
        &self,
        net: &Net,
        name: &str,
        f: impl FnOnce(&PacketHook<'_>) -> R,
    ) -> Option<R> {
        let attached = self.attached.lock();
        let a = attached.iter().find(|a| a.name == name)?;
        net.runtime_slot(a.link, a.dir)?.with(f)
    }
}

impl Default for RuntimeHooks {
    fn default() -> Self {
        Self::new()
    }
}

/// A hook leaving its direction: its records now, its counters back.
fn retire(h: PacketHook<'_>) -> HookStat {
    h.report(h.index, serial::record);
    stat_of(&h)
}

/// A hook's counters as the control channel answers them.
pub fn stat_of(h: &PacketHook<'_>) -> HookStat {
    let f = h.flow();
    let (link, dir) = match h.attach {
        HookAttach::Link { link, dir } => (link, dir),
        _ => (0, LinkDir::AToB),
    };
    HookStat {
        name: Name::try_from(h.name).unwrap_or_default(),
        link,
        dir,
        runs: f.runs,
        pass: f.pass,
        dropped: f.dropped(),
        faults: f.faults,
        insns: f.insns,
    }
}

/// The `nth` entry whose value is not all zero among `h`'s maps.
pub fn entry_of(h: &PacketHook<'_>, nth: u32) -> Option<MapRow> {
    let run = h.lock();
    let maps = run.maps();
    let mut entries = (0..maps.len()).flat_map(|m| {
        maps.dump(m)
            .into_iter()
            .flatten()
            .filter(|e| e.value.iter().any(|&b| b != 0))
            .map(move |e| (m, e))
    });
    let (map, e) = entries.nth(nth as usize)?;
    Some(MapRow {
        map: map as u8,
        core: e.cpu.unwrap_or(0),
        key: Vec::from_slice(e.key()).ok()?,
        value: Vec::from_slice(e.value).ok()?,
    })
}

/// Gives a detached hook's frames back.
fn give_back_all(a: Attached) {
    for lent in a.lent {
        // SAFETY: the hook built over these frames was taken out of its
        // place (under the lock its polling core holds for a pass) and
        // dropped: no reference into them is left.
        unsafe { memory::give_back(lent) };
    }
}

/// What `bpf_ktime_get_ns` returns (as for the manifest's hooks).
fn hook_clock() -> u64 {
    instr::rdtsc()
}
