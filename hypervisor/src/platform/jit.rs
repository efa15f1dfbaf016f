//! The JIT's code area (the image's `.jit` section): hooks compiled into it by the boot core while its pages are data, then sealed read-execute before any other core may run them; hooks attached at runtime compiled by the control core into pages no code was ever in, sealed before they are handed out; entering compiled code, and the two trampolines compiled code calls back through.
//!
//! W^X holds in the page tables throughout: a page is writable only while
//! nothing in it was ever published to any core, and read-execute from
//! before the code in it is; a page that held published code is never
//! written again (a hook attached at runtime starts on a page of its own,
//! and `runtime_next` only grows). Other cores may have cached
//! translations of a runtime hook's pages (speculatively) while they were
//! writable data: each core flushes its TLB, which also serialises it,
//! before it first runs code sealed after its last flush
//! ([`RuntimeCode`], by epoch).

use super::paging;
use super::percpu::PerCore;
use super::runtime_hooks::MAX_RUNTIME_HOOKS;
use super::smp;
use crate::hooks::Program;
use crate::hooks::jit::{
    self, FaultCode, JitCode, JitError, JitHost, JitState, Labels, Trampolines, W_FAULT_AUX,
    W_FAULT_KIND, W_HOST,
};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use spin::{Mutex, Once};
use vmm_abi::hook::MAX_INSNS;
use vmm_abi::manifest::MAX_HOOKS;

unsafe extern "C" {
    static __jit_start: u8;
    static __jit_end: u8;
}

/// Compiled code's alignment in the area.
const CODE_ALIGN: usize = 16;

/// Where a hook compiled at runtime starts: a page of its own.
const PAGE: usize = 4096;

/// The area's state: the next free byte for boot hooks, for runtime hooks
/// (page-aligned, past the boot hooks'; 0 until the first), and the
/// compiler's scratch.
struct Area {
    next: usize,
    runtime_next: usize,
    labels: [Labels; MAX_INSNS],
}

static AREA: Mutex<Area> = Mutex::new(Area {
    next: 0,
    runtime_next: 0,
    labels: [Labels::EMPTY; MAX_INSNS],
});

/// Set once the area is read-execute (its pages with code never writable
/// again).
static SEALED: AtomicBool = AtomicBool::new(false);

/// One compiled program per hook at most.
static CODES: [Once<Code>; MAX_HOOKS as usize] = [const { Once::new() }; MAX_HOOKS as usize];

/// One compiled program per runtime attach at most.
static RUNTIME_CODES: [Once<RuntimeCode>; MAX_RUNTIME_HOOKS] =
    [const { Once::new() }; MAX_RUNTIME_HOOKS];

/// Counts the times pages were sealed for runtime hooks.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Per core, the last [`EPOCH`] its TLB was flushed for.
static FLUSHED: PerCore = PerCore::new();

/// A compiled program in the area: made only by [`install`], so its entry
/// is the first byte of code the compiler wrote from a verified program.
#[derive(Debug)]
pub struct Code {
    entry: u64,
}

/// A program compiled while the run goes on: made only by
/// [`install_runtime`], once its pages were sealed (epoch `epoch`).
#[derive(Debug)]
pub struct RuntimeCode {
    code: Code,
    epoch: u64,
}

impl JitCode for RuntimeCode {
    fn enter(&self, state: &mut JitState, host: &mut dyn JitHost) -> u64 {
        let core = smp::current_core();
        if FLUSHED.get(core) < self.epoch {
            // What this core may have cached of the pages while they were
            // writable data goes, and reloading CR3 serialises it, so it
            // fetches the bytes the control core wrote (every epoch sealed
            // before the flush: read first).
            let now = EPOCH.load(Ordering::Acquire);
            paging::flush();
            FLUSHED.set(core, now);
        }
        self.code.enter(state, host)
    }
}

/// The compiled code's signature: `r12` = the state, `rax` = `r0`.
type Entry = extern "sysv64" fn(*mut JitState) -> u64;

impl JitCode for Code {
    fn enter(&self, state: &mut JitState, host: &mut dyn JitHost) -> u64 {
        if !SEALED.load(Ordering::Acquire) {
            // Never happens: the area is sealed before the plan that runs
            // hooks is published. Fail the run rather than jump to data.
            state.set(W_FAULT_KIND, FaultCode::Jump as u64);
            state.set(W_FAULT_AUX, u64::MAX);
            return 0;
        }
        // The trampolines get the host through a thin pointer to this
        // (fat) reference, alive for the whole call.
        let mut host: &mut dyn JitHost = host;
        state.set(W_HOST, core::ptr::from_mut(&mut host) as u64);
        // Why: `entry` is where `install` (or `install_runtime`) had
        // `jit::compile` write a program's code, inside the area, which is
        // read-execute now (sealed, checked above; a runtime hook's pages
        // sealed before its code was made, and this core's TLB flushed
        // since, `RuntimeCode::enter`) and never written again. The code follows
        // the System V ABI (callee-saved registers restored, stack aligned
        // at its calls), reads and writes only `state`, the regions
        // `state` names (checked inline, else through `translate`) and its
        // own stack, and returns `r0`. Every region is memory the caller
        // holds for the call: the hypervisor's own (`&mut` borrows of the
        // run's context, stack, frame copy and map values) or a guest's
        // frame in place, a `HostRange` resolved whole and writable by the
        // guest's raw view, which outlives the call.
        // SAFETY: the entry of sealed code that keeps the ABI (why: above).
        let f: Entry = unsafe { core::mem::transmute::<*const (), Entry>(self.entry as *const ()) };
        f(state)
    }
}

/// Compiled code's `translate(state, addr, size | write << 8)`.
extern "sysv64" fn translate(state: *mut JitState, addr: u64, size_write: u64) -> u64 {
    // SAFETY: compiled code passes `r12`, the state `Code::enter` handed
    // it; that call is suspended here and nothing else uses the state.
    let state = unsafe { &mut *state };
    let host = state.get(W_HOST) as *mut &mut dyn JitHost;
    // SAFETY: `Code::enter` wrote the address of its local reference to the
    // run's host, which lives for the whole call and is not used meanwhile.
    let host = unsafe { &mut **host };
    host.translate(state, addr, size_write)
}

/// Compiled code's `helper(r1, r2, r3, r4, r5, state)`.
extern "sysv64" fn helper(
    r1: u64,
    r2: u64,
    r3: u64,
    r4: u64,
    r5: u64,
    state: *mut JitState,
) -> u64 {
    // SAFETY: as in `translate`.
    let state = unsafe { &mut *state };
    let host = state.get(W_HOST) as *mut &mut dyn JitHost;
    // SAFETY: as in `translate`.
    let host = unsafe { &mut **host };
    host.helper(state, [r1, r2, r3, r4, r5])
}

/// Compiles `prog` into the area (boot core, before [`seal`]).
pub fn install(prog: &Program<'_>) -> Result<&'static dyn JitCode, JitError> {
    let mut area = AREA.lock();
    let (start, end) = (
        &raw const __jit_start as usize,
        &raw const __jit_end as usize,
    );
    let base = start + area.next;
    if SEALED.load(Ordering::Acquire) || base >= end {
        return Err(JitError::Room(0));
    }
    let Some(slot) = CODES.iter().find(|c| !c.is_completed()) else {
        return Err(JitError::Room(0));
    };
    let tramp = Trampolines {
        translate: translate as *const () as u64,
        helper: helper as *const () as u64,
    };
    let Area { next, labels, .. } = &mut *area;
    // Why: the `.jit` section's bytes from `base` to its end, reserved
    // by the linker script for compiled code and used by nothing else;
    // its pages are writable data until `seal` (not yet: checked above,
    // under the lock `seal` takes too), and only this function writes them.
    // SAFETY: unused `.jit` bytes, writable before `seal`, written only here (why: above).
    let out = unsafe { core::slice::from_raw_parts_mut(base as *mut u8, end - base) };
    let len = jit::compile(prog, &tramp, labels, out)?;
    *next += len.div_ceil(CODE_ALIGN) * CODE_ALIGN;
    Ok(slot.call_once(|| Code { entry: base as u64 }))
}

/// Compiles `prog`, a hook attached while the run goes on (the control
/// core, after [`seal`]), into pages of the area no code was ever in: they
/// are made writable data, written, and read-execute again before the
/// code is returned (to be published to the core that runs it).
pub fn install_runtime(prog: &Program<'_>) -> Result<&'static dyn JitCode, JitError> {
    let mut area = AREA.lock();
    let (start, end) = (
        &raw const __jit_start as usize,
        &raw const __jit_end as usize,
    );
    let first = area.runtime_next.max(area.next.div_ceil(PAGE) * PAGE);
    let base = start + first;
    // Before the boot hooks are sealed, `install` is the one to call.
    if !SEALED.load(Ordering::Acquire) || base >= end {
        return Err(JitError::Room(0));
    }
    let Some(slot) = RUNTIME_CODES.iter().find(|c| !c.is_completed()) else {
        return Err(JitError::Room(0));
    };
    let tramp = Trampolines {
        translate: translate as *const () as u64,
        helper: helper as *const () as u64,
    };
    paging::open_jit_tail(base as u64);
    let labels = &mut area.labels;
    // Why: the `.jit` section's bytes from `base` to its end: reserved
    // by the linker script for compiled code, past every byte of code
    // published so far (the boot hooks' and earlier runtime hooks', each
    // ending before `first`, which starts a page), so no core runs code
    // there or will before it is sealed again; `open_jit_tail` just made
    // these pages writable data (this core's TLB flushed), and only this
    // function writes them, under the area's lock.
    // SAFETY: `.jit` bytes nothing was published from, opened just now, written only here (why: above).
    let out = unsafe { core::slice::from_raw_parts_mut(base as *mut u8, end - base) };
    let compiled = jit::compile(prog, &tramp, labels, out);
    // Read-execute again whatever came of it: nothing written stays
    // writable.
    paging::seal_jit_tail(base as u64);
    let len = compiled?;
    area.runtime_next = first + len.div_ceil(PAGE).max(1) * PAGE;
    let epoch = EPOCH.fetch_add(1, Ordering::AcqRel) + 1;
    Ok(slot.call_once(|| RuntimeCode {
        code: Code { entry: base as u64 },
        epoch,
    }))
}

/// Makes the area read-execute (boot core, after every hook was compiled,
/// before the plan is published): the pages with code never writable
/// again, the rest only for [`install_runtime`]; the bytes used.
pub fn seal() -> usize {
    let area = AREA.lock();
    paging::seal_jit();
    SEALED.store(true, Ordering::Release);
    area.next
}
