//! Hooks attached, swapped and detached while a service run goes on: the upload's staging memory, each attached hook's frames (program, decoded ops, maps) lent by the frame allocator and given back on detach or swap; packet hooks in the places (`datapath::runtime`) the polling cores read once a pass, a VM's restart, exit and slice hooks in slots (`VmHookSlot`) its core reads under the slot's lock.
//!
//! Runtime hooks are compiled like the manifest's, into pages of the JIT's
//! code area no code was ever in, made read-execute again before the hook
//! is published ([`super::jit::install_runtime`], W^X throughout); a hook
//! the area has no more room for is interpreted (and says so).
//! A VM hook in use is always used under its slot's lock, so the control
//! core takes one out (detach, swap, its VM's place given to another VM)
//! under that lock and gives its frames back at once. Its name lives on in
//! a table written once per attach, so a name a VM's core read (a denied
//! exit names its hook) outlives the hook.
//! A hook that leaves its direction (detach, or a swap) prints its `hook`
//! record (and its maps') at once, under its own index: the manifest's
//! hook count plus the order it was attached in, so the end-of-run report
//! has every hook that ran.

use super::instr;
use super::memory::{self, Lent};
use super::net::Net;
use super::percpu::MAX_CORES;
use super::serial;
use crate::control::{HookPlace, HookRefusal, HookStat, HookTarget, MapRow, Name, Target};
use crate::hooks::HookMemory;
use crate::hooks::lifecycle::VmHook;
use crate::hooks::maps::{MapSet, bytes_needed};
use crate::hooks::packet::{BuildError, PacketHook};
use crate::hooks::vm::op::Op;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use heapless::Vec;
use spin::{Mutex, Once};
use vmm_abi::hook::insn::INSN_SIZE;
use vmm_abi::hook::{HookKind, Insn, MAX_MAPS, MapDef, verify};
use vmm_abi::manifest::{HookAttach, LinkDir};

/// Compiles a hook attached at runtime (through `compile_with`, the hook's
/// own) into the JIT's code area; which engine runs it. One the area has
/// no room for is interpreted, and the log says why.
fn engine(
    name: &str,
    compile_with: impl FnOnce(
        &dyn Fn(&crate::hooks::Program<'static>) -> Option<&'static dyn crate::hooks::jit::JitCode>,
    ) -> bool,
) -> &'static str {
    let compiled = compile_with(&|prog| match super::jit::install_runtime(prog) {
        Ok(code) => Some(code),
        Err(e) => {
            log::warn!("hook {name}: not compiled ({e}); the interpreter runs it");
            None
        }
    });
    if compiled { "compiled" } else { "interpreted" }
}

/// Hooks a run attaches at runtime, at most (each gets a report index
/// of its own; the host's report reads 64 hooks, the manifest has at
/// most 16).
pub const MAX_RUNTIME_HOOKS: usize = 32;

/// An upload in progress.
struct Staged {
    /// The channel whose upload it is (its tag): only it writes, commits
    /// or aborts it; a begin on either channel drops it.
    channel: u32,
    name: Name,
    on: Target,
    defs: Vec<MapDef, MAX_MAPS>,
    insns: &'static mut [Insn],
    lent: Lent,
}

/// A hook attached at runtime, with the frames it was built in.
struct Attached {
    name: Name,
    on: Target,
    /// Its program's, ops' and maps' frames.
    lent: [Lent; 3],
}

/// The owner of a [`VmHookSlot`] nobody owns.
const NO_OWNER: u64 = u64::MAX;

/// The owner tag of VM place `cell`'s hook of `kind`.
fn owner_of(cell: u32, kind: HookKind) -> u64 {
    (u64::from(cell) << 8) | kind as u64
}

/// A VM hook attached at runtime, where the VM's core finds it.
pub struct VmHookSlot {
    /// Whose it is ([`owner_of`]), or [`NO_OWNER`]; written under `hook`'s
    /// lock.
    owner: AtomicU64,
    hook: Mutex<Option<VmHook<'static>>>,
}

impl VmHookSlot {
    const fn new() -> Self {
        VmHookSlot {
            owner: AtomicU64::new(NO_OWNER),
            hook: Mutex::new(None),
        }
    }
}

/// The slots of the VM hooks attached at runtime.
static VM_SLOTS: [VmHookSlot; MAX_RUNTIME_HOOKS] = [const { VmHookSlot::new() }; MAX_RUNTIME_HOOKS];
/// How many slots are owned: 0, the common case, costs a VM's core one
/// load a slice.
static VM_OWNED: AtomicU32 = AtomicU32::new(0);
/// Runtime hooks' names by attach order, each written once a run.
static NAMES: [Once<Name>; MAX_RUNTIME_HOOKS] = [const { Once::new() }; MAX_RUNTIME_HOOKS];

/// A VM's runtime hook of one kind, as its core holds it for a slice.
#[derive(Clone, Copy)]
pub struct VmHookRef {
    slot: &'static VmHookSlot,
    owner: u64,
}

impl VmHookRef {
    /// Runs `f` on the hook under its slot's lock, if it is still the
    /// VM's (the control core may take it out between any two runs).
    pub fn with<R>(&self, f: impl FnOnce(&VmHook<'static>) -> R) -> Option<R> {
        let hook = self.slot.hook.lock();
        if self.slot.owner.load(Ordering::Acquire) != self.owner {
            return None;
        }
        hook.as_ref().map(f)
    }
}

/// A VM's hook of one kind: the manifest's, or one attached at runtime.
#[derive(Clone, Copy)]
pub enum HookRef {
    /// The manifest's (it stays for the run).
    Manifest(&'static VmHook<'static>),
    /// One attached at runtime (it may leave between any two runs).
    Runtime(VmHookRef),
}

impl HookRef {
    /// VM place `cell`'s hook of `kind`: the manifest's, else one attached
    /// at runtime.
    #[inline]
    pub fn of(net: &Net, cell: u32, kind: HookKind) -> Option<HookRef> {
        match net.vm_hook(cell, kind) {
            Some(h) => Some(HookRef::Manifest(h)),
            None => vm_hook(cell, kind).map(HookRef::Runtime),
        }
    }

    /// The slice hook for VM place `cell` on `core`: the VM's own (the
    /// manifest's, else one attached at runtime), else its core's.
    #[inline]
    pub fn slice(net: &Net, cell: u32, core: u32) -> Option<HookRef> {
        HookRef::of(net, cell, HookKind::Slice)
            .or_else(|| net.slice_hook(cell, core).map(HookRef::Manifest))
    }

    /// Runs `f` on the hook, if it is (still) there.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&VmHook<'static>) -> R) -> Option<R> {
        match self {
            HookRef::Manifest(h) => Some(f(h)),
            HookRef::Runtime(r) => r.with(f),
        }
    }
}

/// VM place `cell`'s runtime hook of `kind`, if it has one.
#[inline]
pub fn vm_hook(cell: u32, kind: HookKind) -> Option<VmHookRef> {
    if VM_OWNED.load(Ordering::Acquire) == 0 {
        return None;
    }
    vm_hook_slow(owner_of(cell, kind))
}

#[inline(never)]
fn vm_hook_slow(owner: u64) -> Option<VmHookRef> {
    VM_SLOTS
        .iter()
        .find(|s| s.owner.load(Ordering::Acquire) == owner)
        .map(|slot| VmHookRef { slot, owner })
}

/// Takes the VM hook with owner tag `owner` out of its slot, if there is
/// one.
fn take_vm_hook(owner: u64) -> Option<VmHook<'static>> {
    let slot = VM_SLOTS
        .iter()
        .find(|s| s.owner.load(Ordering::Acquire) == owner)?;
    let mut hook = slot.hook.lock();
    slot.owner.store(NO_OWNER, Ordering::Release);
    VM_OWNED.fetch_sub(1, Ordering::AcqRel);
    hook.take()
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

    /// What a link's direction, or a VM for a hook of one kind, offers a
    /// runtime hook.
    pub fn place(&self, net: &Net, on: Target) -> HookPlace {
        let (link, dir) = match on {
            Target::Link { link, dir } => (link, dir),
            Target::Vm { vm, kind } => {
                return if net.vm_hook(vm, kind).is_some() {
                    HookPlace::Manifest
                } else {
                    HookPlace::Open
                };
            }
            Target::Nic { nic, dir } => {
                return if net.has_manifest_nic_hook(nic, dir) {
                    HookPlace::Manifest
                } else if net.nic_owned(nic) {
                    HookPlace::Owned
                } else if net.nic_runtime_slot(nic, dir).is_some() {
                    HookPlace::Open
                } else {
                    HookPlace::NoLink
                };
            }
        };
        if net.has_manifest_hook(link, dir) {
            return HookPlace::Manifest;
        }
        match (net.link_core(link), net.runtime_slot(link, dir)) {
            (None, _) => HookPlace::NoLink,
            (Some(_), None) => HookPlace::Nic,
            (Some(_), Some(_)) => HookPlace::Open,
        }
    }

    /// Begins channel `channel`'s upload: room for its instructions. Any
    /// upload in progress, either channel's, is dropped.
    pub fn begin(&self, channel: u32, t: &HookTarget<'_>) -> Result<(), HookRefusal> {
        self.drop_staged(|_| true);
        let (insns, lent) =
            memory::lend_slice(t.insns as usize, Insn::default()).ok_or(HookRefusal::NoMemory)?;
        let mut defs = Vec::new();
        for d in t.maps {
            // At most MAX_MAPS came.
            let _ = defs.push(*d);
        }
        *self.staged.lock() = Some(Staged {
            channel,
            name: Name::try_from(t.name).unwrap_or_default(),
            on: t.on,
            defs,
            insns,
            lent,
        });
        Ok(())
    }

    /// Writes instructions of channel `channel`'s upload from `offset` on
    /// (the channel checked they fit); refused if its upload was dropped.
    pub fn write(&self, channel: u32, offset: u32, bytes: &[u8]) -> Result<(), HookRefusal> {
        let mut staged = self.staged.lock();
        let Some(s) = staged.as_mut().filter(|s| s.channel == channel) else {
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

    /// Drops channel `channel`'s upload in progress (not the other
    /// channel's), giving its room back.
    pub fn abort(&self, channel: u32) {
        self.drop_staged(|s| s.channel == channel);
    }

    /// Drops the upload in progress if `which` says so, giving its room
    /// back.
    fn drop_staged(&self, which: impl FnOnce(&Staged) -> bool) {
        let taken = {
            let mut staged = self.staged.lock();
            if staged.as_ref().is_some_and(which) {
                staged.take()
            } else {
                None
            }
        };
        if let Some(s) = taken {
            let Staged { insns, lent, .. } = s;
            let _ = insns;
            // SAFETY: the staged instructions were the only reference into
            // these frames, and they were just dropped.
            unsafe { memory::give_back(lent) };
        }
    }

    /// Verifies the upload and puts its hook in its place (the hook there
    /// before, if any, taken off: its final counters). `vm_name` names a
    /// VM place's VM.
    pub fn commit(
        &self,
        channel: u32,
        net: &Net,
        manifest_hooks: u32,
        vm_name: impl Fn(u32) -> Name,
    ) -> Result<(HookStat, Option<HookStat>), HookRefusal> {
        let Some(s) = self.staged.lock().take_if(|s| s.channel == channel) else {
            return Err(HookRefusal::NoUpload);
        };
        let Staged {
            channel,
            name,
            on,
            defs,
            insns,
            lent,
        } = s;
        let (attach, slot, core, ports) = match on {
            Target::Link { link, dir } => (
                HookAttach::Link { link, dir },
                net.runtime_slot(link, dir),
                net.link_core(link),
                net.link_ports(link, dir),
            ),
            Target::Nic { nic, dir } => (
                HookAttach::Nic { nic, dir },
                net.nic_runtime_slot(nic, dir),
                net.nic_core(nic),
                // A NIC queue's hook names no link ports.
                Some((0, 0)),
            ),
            Target::Vm { vm, kind } => {
                let staged = Staged {
                    channel,
                    name,
                    on,
                    defs,
                    insns,
                    lent,
                };
                return self.commit_vm(staged, (vm, kind), manifest_hooks, vm_name);
            }
        };
        let (Some(slot), Some(core), Some((from, to))) = (slot, core, ports) else {
            return refuse(insns, lent, HookRefusal::NoLink);
        };
        let mut count = self.count.lock();
        let mut attached = self.attached.lock();
        let replaces = attached.iter().position(|a| a.on == on);
        let ((ops, arena), [ops_lent, arena_lent]) =
            match build_room(insns, HookKind::Packet, &defs, core + 1, *count) {
                Ok(room) => room,
                Err(why) => return refuse(insns, lent, why),
            };
        let built = PacketHook::new(
            "",
            attach,
            core,
            insns,
            &defs,
            HookMemory { arena, ops },
            hook_clock,
        );
        let mut hook = match built {
            Ok(h) => h.at_index(manifest_hooks + *count),
            Err(e) => {
                for l in [ops_lent, arena_lent, lent] {
                    // SAFETY: the hook that was to use these frames was
                    // not built; no reference into them is left.
                    unsafe { memory::give_back(l) };
                }
                return Err(HookRefusal::Build(e));
            }
        };
        hook.name = static_name(*count, &name);
        if matches!(on, Target::Link { .. }) {
            hook.set_ports(from, to);
        }
        let engine = engine(&name, |c| hook.compile_with(c));
        let new = stat_of(&hook);
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
            on,
            lent: [lent, ops_lent, arena_lent],
        });
        let (what, n, dir) = match on {
            Target::Nic { nic, dir } => ("nic", nic, dir.name()),
            Target::Link { link, dir } => ("link", link, dir.name()),
            Target::Vm { vm, .. } => ("vm", vm, "-"),
        };
        log::info!(
            "hook {name}: attached at runtime on {what} {n} {dir} (core {core}), {} instructions, {} maps, {engine}{}",
            insns.len(),
            defs.len(),
            if stat.is_some() {
                ", in place of the hook there"
            } else {
                ""
            }
        );
        Ok((new, stat))
    }

    /// Takes runtime hook `name` out of its place and gives its memory
    /// back; its final counters.
    pub fn detach(
        &self,
        net: &Net,
        name: &str,
        vm_name: impl Fn(u32) -> Name,
    ) -> Result<HookStat, HookRefusal> {
        let mut attached = self.attached.lock();
        let Some(i) = attached.iter().position(|a| a.name == name) else {
            return Err(HookRefusal::NoHook);
        };
        let a = attached.swap_remove(i);
        let stat = match a.on {
            Target::Link { link, dir } => {
                let old = net.runtime_slot(link, dir).and_then(|s| s.swap(None));
                log::info!("hook {name}: detached from link {link} {}", dir.name());
                old.map(|h| retire(h))
            }
            Target::Nic { nic, dir } => {
                let old = net.nic_runtime_slot(nic, dir).and_then(|s| s.swap(None));
                log::info!("hook {name}: detached from nic {nic} {}", dir.name());
                old.map(|h| retire(h))
            }
            Target::Vm { vm, kind } => {
                let old = take_vm_hook(owner_of(vm, kind));
                let vm_name = vm_name(vm);
                log::info!(
                    "hook {name}: detached from {}'s {} hook",
                    vm_name.as_str(),
                    kind.name()
                );
                old.map(|h| retire_vm(&h, vm_name))
            }
        };
        give_back_all(a);
        stat.ok_or(HookRefusal::NoHook)
    }

    /// Takes every runtime hook off VM place `cell` (its VM, named
    /// `vm_name`, is gone and the place goes to another VM).
    pub fn detach_vm(&self, cell: u32, vm_name: &Name) {
        // An upload meant for the place's old VM is dropped too: its
        // commit is then refused rather than attached to the new VM.
        self.drop_staged(|s| matches!(s.on, Target::Vm { vm, .. } if vm == cell));
        let mut attached = self.attached.lock();
        while let Some(i) = attached
            .iter()
            .position(|a| matches!(a.on, Target::Vm { vm, .. } if vm == cell))
        {
            let a = attached.swap_remove(i);
            if let Target::Vm { vm, kind } = a.on
                && let Some(h) = take_vm_hook(owner_of(vm, kind))
            {
                log::info!(
                    "hook {}: detached: {}'s place goes to another VM",
                    a.name,
                    vm_name.as_str()
                );
                retire_vm(&h, vm_name.clone());
            }
            give_back_all(a);
        }
    }

    /// Runs `f` on runtime packet hook `name`, if it is attached.
    pub fn with<R>(
        &self,
        net: &Net,
        name: &str,
        f: impl FnOnce(&PacketHook<'_>) -> R,
    ) -> Option<R> {
        let attached = self.attached.lock();
        let a = attached.iter().find(|a| a.name == name)?;
        match a.on {
            Target::Link { link, dir } => net.runtime_slot(link, dir)?.with(f),
            Target::Nic { nic, dir } => net.nic_runtime_slot(nic, dir)?.with(f),
            Target::Vm { .. } => None,
        }
    }

    /// Runs `f` on runtime VM hook `name`, if it is attached.
    pub fn with_vm<R>(&self, name: &str, f: impl FnOnce(&VmHook<'_>) -> R) -> Option<R> {
        let attached = self.attached.lock();
        let a = attached.iter().find(|a| a.name == name)?;
        match a.on {
            Target::Vm { vm, kind } => vm_hook_slow(owner_of(vm, kind))?.with(|h| f(h)),
            Target::Link { .. } | Target::Nic { .. } => None,
        }
    }

    /// Verifies and builds VM hook `staged` for VM place `cell`'s `kind`
    /// and puts it in its slot (in place of the runtime hook there).
    fn commit_vm(
        &self,
        staged: Staged,
        (cell, kind): (u32, HookKind),
        manifest_hooks: u32,
        vm_name: impl Fn(u32) -> Name,
    ) -> Result<(HookStat, Option<HookStat>), HookRefusal> {
        let Staged {
            name,
            on,
            defs,
            insns,
            lent,
            ..
        } = staged;
        let mut count = self.count.lock();
        let mut attached = self.attached.lock();
        let ((ops, arena), [ops_lent, arena_lent]) =
            match build_room(insns, kind, &defs, MAX_CORES as u32, *count) {
                Ok(room) => room,
                Err(why) => return refuse(insns, lent, why),
            };
        let built = VmHook::new(
            "",
            manifest_hooks + *count,
            kind,
            cell,
            MAX_CORES as u32,
            insns,
            &defs,
            HookMemory { arena, ops },
            hook_clock,
        );
        let mut hook = match built {
            Ok(h) => h,
            Err(e) => {
                for l in [ops_lent, arena_lent, lent] {
                    // SAFETY: the hook that was to use these frames was
                    // not built; no reference into them is left.
                    unsafe { memory::give_back(l) };
                }
                return Err(HookRefusal::Build(e));
            }
        };
        // Compiled before the hook it replaces leaves its slot (the VM goes
        // without one for no longer than the swap).
        let engine = engine(&name, |c| hook.compile_with(c));
        let owner = owner_of(cell, kind);
        // Its slot: a free one, or the one of the hook it replaces. Fewer
        // attaches than slots so far (`build_room` checked) means one is
        // there; were none, nothing changes.
        let Some(slot) = VM_SLOTS.iter().find(|s| {
            let o = s.owner.load(Ordering::Acquire);
            o == NO_OWNER || o == owner
        }) else {
            drop(hook);
            for l in [ops_lent, arena_lent, lent] {
                // SAFETY: the hook built over these frames was just
                // dropped without ever being in a slot.
                unsafe { memory::give_back(l) };
            }
            let limit = MAX_RUNTIME_HOOKS as u32;
            return Err(HookRefusal::TooMany { limit });
        };
        let vm = vm_name(cell);
        // The hook it replaces, if any, leaves first (its frames go back
        // once it is out of its slot).
        let stat = take_vm_hook(owner).map(|h| retire_vm(&h, vm.clone()));
        if let Some(i) = attached.iter().position(|a| a.on == on) {
            let gone = attached.swap_remove(i);
            give_back_all(gone);
        }
        hook.name = static_name(*count, &name);
        let new = vm_stat_of(&hook, vm.clone());
        let n_insns = insns.len();
        {
            let mut h = slot.hook.lock();
            *h = Some(hook);
            slot.owner.store(owner, Ordering::Release);
        }
        VM_OWNED.fetch_add(1, Ordering::AcqRel);
        *count += 1;
        let _ = attached.push(Attached {
            name: name.clone(),
            on,
            lent: [lent, ops_lent, arena_lent],
        });
        log::info!(
            "hook {name}: attached at runtime as {}'s {} hook, {n_insns} instructions, {} maps, {engine}{}",
            vm.as_str(),
            kind.name(),
            defs.len(),
            if stat.is_some() {
                ", in place of the hook there"
            } else {
                ""
            }
        );
        Ok((new, stat))
    }
}

impl Default for RuntimeHooks {
    fn default() -> Self {
        Self::new()
    }
}

/// What a hook attached at runtime is built in: checks that `insns`
/// verify as `kind` with `defs` and that the run attached fewer than
/// [`MAX_RUNTIME_HOOKS`] hooks (`count`), then frames for the decoded ops
/// and for the maps (per-core arrays for `cores` cores), or why not
/// (nothing lent then).
#[allow(clippy::type_complexity)]
fn build_room(
    insns: &[Insn],
    kind: HookKind,
    defs: &[MapDef],
    cores: u32,
    count: u32,
) -> Result<((&'static mut [Op], &'static mut [u8]), [Lent; 2]), HookRefusal> {
    verify(insns, kind, defs).map_err(|e| HookRefusal::Build(BuildError::Verify(e)))?;
    if count as usize >= MAX_RUNTIME_HOOKS {
        let limit = MAX_RUNTIME_HOOKS as u32;
        return Err(HookRefusal::TooMany { limit });
    }
    let arena_bytes =
        bytes_needed(defs, cores).map_err(|e| HookRefusal::Build(BuildError::Maps(e)))?;
    match (
        memory::lend_slice(insns.len(), Op::default()),
        memory::lend_slice(arena_bytes, 0u8),
    ) {
        (Some((ops, ops_lent)), Some((arena, arena_lent))) => {
            Ok(((ops, arena), [ops_lent, arena_lent]))
        }
        (a, b) => {
            for lent in [a.map(|p| p.1), b.map(|p| p.1)].into_iter().flatten() {
                // SAFETY: these frames were just lent and nothing was
                // built over them.
                unsafe { memory::give_back(lent) };
            }
            Err(HookRefusal::NoMemory)
        }
    }
}

/// The name of the `count`th hook attached at runtime, in an entry written
/// once (and only for a hook that goes in), so it outlives the hook: a
/// name a core read (a denied exit names its hook) stays valid.
fn static_name(count: u32, name: &Name) -> &'static str {
    NAMES
        .get(count as usize)
        .map_or("?", |n| n.call_once(|| name.clone()).as_str())
}

/// Gives staged instructions' frames back (nothing was built over them)
/// and refuses with `why`.
fn refuse<T>(insns: &'static mut [Insn], lent: Lent, why: HookRefusal) -> Result<T, HookRefusal> {
    let _ = insns;
    // SAFETY: nothing was built over the instructions: the one reference
    // into these frames was just dropped.
    unsafe { memory::give_back(lent) };
    Err(why)
}

/// A hook leaving its direction: its records now, its counters back.
fn retire(h: PacketHook<'_>) -> HookStat {
    h.report(h.index, serial::record);
    stat_of(&h)
}

/// A VM hook leaving its VM (named `vm`): its records now, its counters
/// back.
fn retire_vm(h: &VmHook<'_>, vm: Name) -> HookStat {
    h.report(vm.as_str(), serial::record);
    vm_stat_of(h, vm)
}

/// A VM hook's counters as the control channel answers them (`vm`: its
/// VM's name).
pub fn vm_stat_of(h: &VmHook<'_>, vm: Name) -> HookStat {
    let f = h.flow();
    HookStat {
        name: Name::try_from(h.name).unwrap_or_default(),
        on: Target::Vm {
            vm: h.vm,
            kind: h.kind,
        },
        vm,
        engine: h.engine(),
        runs: f.runs,
        pass: f.allow,
        dropped: f.deny + f.fail + f.bad,
        faults: f.faults,
        insns: f.insns,
    }
}

/// Every VM hook still attached at runtime gives its records (end of the
/// run; `vm_name` names a VM place's VM).
pub fn report_vm_hooks(vm_name: impl Fn(u32) -> Name) {
    for slot in &VM_SLOTS {
        if let Some(h) = slot.hook.lock().as_ref() {
            h.report(vm_name(h.vm).as_str(), serial::record);
        }
    }
}

/// A hook's counters as the control channel answers them.
pub fn stat_of(h: &PacketHook<'_>) -> HookStat {
    let f = h.flow();
    let on = match h.attach {
        HookAttach::Link { link, dir } => Target::Link { link, dir },
        HookAttach::Nic { nic, dir } => Target::Nic { nic, dir },
        _ => Target::Link {
            link: 0,
            dir: LinkDir::AToB,
        },
    };
    HookStat {
        name: Name::try_from(h.name).unwrap_or_default(),
        on,
        vm: Name::new(),
        engine: h.engine(),
        runs: f.runs,
        pass: f.pass,
        dropped: f.dropped(),
        faults: f.faults,
        insns: f.insns,
    }
}

/// The `nth` entry whose value is not all zero among `h`'s maps.
pub fn entry_of(h: &PacketHook<'_>, nth: u32) -> Option<MapRow> {
    map_entry(h.lock().maps(), nth)
}

/// The `nth` entry whose value is not all zero among VM hook `h`'s maps.
pub fn vm_entry_of(h: &VmHook<'_>, nth: u32) -> Option<MapRow> {
    h.with_maps(|maps| map_entry(maps, nth))
}

/// The `nth` entry whose value is not all zero among `maps`.
fn map_entry(maps: &MapSet<'_>, nth: u32) -> Option<MapRow> {
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
        // The hook built over these frames was taken out of its place
        // (under the lock its user holds for a run or a pass) and dropped.
        // SAFETY: so no reference into these frames is left.
        unsafe { memory::give_back(lent) };
    }
}

/// What `bpf_ktime_get_ns` returns (as for the manifest's hooks).
fn hook_clock() -> u64 {
    instr::rdtsc()
}
