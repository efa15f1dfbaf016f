//! A packet hook on one direction of a link or of a NIC's queue: the program, its maps and its counters, and the [`FramePolicy`] that runs it on each frame.
//!
//! The pump asks the direction's policy about each frame after copying it
//! into the receiver's buffer ([`crate::datapath::policy`]), out of the
//! sender's reach. On a link's fast path, a program that can only pass
//! or drop ([`only_judges`]) runs on those bytes where they lie
//! ([`FramePolicy::judge_in_place`]): compiled code (the bytes move into
//! the hook's own buffer the first time the code calls back into Rust),
//! or the interpreter if the program's only memory accesses are loads
//! and stores (each through the frame's checked view,
//! [`vm::interpret_in_place`]). The receiver could change the bytes
//! meanwhile, but what it changes only ever reaches itself.
//! Every other program gets the frame copied out of the sender's buffer
//! into the hook's own (out of every guest's reach) and runs (compiled,
//! or interpreted) over that copy, with an `xdp_md` context, so what it
//! sends back is exactly what it left there. Either way the program
//! reaches no memory but the frame, the context, its stack and its maps.
//!
//! Verdicts: `XDP_PASS` delivers the frame; `XDP_DROP`, `XDP_ABORTED`, any
//! value the XDP contract does not know, and an aborted run drop it (the
//! sender's frame completes, the receiver's buffer serves the next one).
//! `XDP_TX` queues the frame to go back (to a link's sender, onto the wire
//! from a NIC's receive queue, to the guest that sent it on a NIC's
//! transmit queue); `XDP_REDIRECT` to a link's receiver passes, to its
//! sender goes back, to any other VM port (from a link, or from a NIC's
//! transmit queue) waits in the same queue until the poller has let go of
//! the link's or NIC's ports and delivers it there ([`HookRun::away`]), on
//! a NIC's receive queue goes to the NIC's port the switch finds; anything
//! else is counted `unsent`. Writes a program makes to
//! the packet are delivered: the program runs on the hook's copy, and a
//! frame that passes is delivered from that copy (or written back over the
//! receiver's buffer) on every path. Every run is counted in exactly one verdict counter
//! ([`HookFlow`]); a fault never stops anything but that run.
//!
//! Concurrency: a hook runs only on its link's polling core, which holds
//! the hook's lock for a whole pump (at most one batch of frames); the boot
//! core takes it once more to report, after every core finished. A
//! `spin::Mutex` around the hook's state (maps included) is therefore
//! enough, and it is never contended while frames move. A hook attached
//! while a service run goes on sits in its direction's
//! [`crate::datapath::runtime::RuntimeSlot`], whose lock the polling core
//! holds for a whole pass, so a swap falls between two passes.

#![forbid(unsafe_code)]

use super::Env;
use super::jit::{JitCode, JitState};
use super::layout::{PACKET_BASE, xdp_md};
use super::maps::{MapSet, MapSetError};
use super::vm::{self, Outcome};
use super::{HookMemory, Program, Verified};
use crate::datapath::endpoint::{FrameSink, FrameSource};
use crate::datapath::policy::{FrameCopy, FramePolicy, Verdict};
use crate::devices::virtio::error::RingError;
use crate::mem::raw::HostRange;
use core::fmt;
use spin::Mutex;
use vmm_abi::corral::devices::MAX_FRAME_BYTES;
use vmm_abi::hook::context::{XDP_DATA_END, XDP_MD_SIZE};
use vmm_abi::hook::insn::{XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX};
use vmm_abi::hook::{HookKind, Insn, MapDef, VerifyError};
use vmm_abi::manifest::{HookAttach, NicDir};
use vmm_abi::report::{HookFlow, Record};

/// Why a hook could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The verifier refused the program (it had passed the manifest's
    /// parse, so this is a hypervisor bug or memory gone bad).
    Verify(VerifyError),
    /// Its maps could not be laid out.
    Maps(MapSetError),
    /// Not a packet hook.
    Kind(HookKind),
    /// The room given for the decoded program is short (ops given, ops
    /// needed).
    Ops {
        /// Ops the room holds.
        have: usize,
        /// Instruction slots of the program.
        need: usize,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Verify(e) => write!(f, "{e}"),
            BuildError::Maps(e) => write!(f, "maps: {e}"),
            BuildError::Kind(k) => write!(f, "a {} hook is not a packet hook", k.name()),
            BuildError::Ops { have, need } => {
                write!(f, "room for {have} decoded instructions, {need} needed")
            }
        }
    }
}

/// Frames a link's hook sends back to the sender (`XDP_TX`, or
/// `XDP_REDIRECT` to the sender's port) or redirects to another port,
/// that wait for the poller to deliver them, at most.
pub const BACK_SLOTS: usize = 4;

/// [`Back::to`] of a frame going back to its sender.
const TO_SENDER: u32 = u32::MAX;

/// A frame going back to its sender, or on to another port.
struct Back {
    /// The port it goes to (a port index as `xdp_md` numbers them), or
    /// [`TO_SENDER`].
    to: u32,
    len: u16,
    bytes: [u8; MAX_FRAME_BYTES],
}

/// A hook's working state: what its lock guards.
pub struct HookRun<'t> {
    prog: Program<'t>,
    /// Its counters.
    pub flow: HookFlow,
    /// The sender's port, `xdp_md.ingress_ifindex`.
    ingress: u32,
    /// The receiver's port, for a hook on a link direction (`None` on a
    /// NIC queue, whose hooks send nothing back yet).
    egress: Option<u32>,
    /// Frames going back to the sender.
    back: heapless::Deque<Back, BACK_SLOTS>,
    /// The NIC queue direction it is on (`None` on a link), from its
    /// attach target: a receive hook's frames sent back go to the wire and
    /// a frame it redirects to that port of the NIC (decided by the
    /// switch); a transmit hook's go back to the guest that sent them.
    nic: Option<NicDir>,
    /// The port a NIC receive hook's last frame was redirected to.
    redirect_to: Option<u32>,
    /// Since when (TSC) the frame at the front of the queue has waited for
    /// a receive buffer of the port it is redirected to.
    away_since: Option<u64>,
    /// Its memory from run to run: the context (`data_end` written for
    /// each frame), the hook's copy of the frame being judged (which the
    /// program runs on: a frame that passes is delivered as the program
    /// left it), its stack and its maps.
    mem: vm::PacketMem<'t>,
    /// Whether the program has store instructions (it may change the
    /// frame).
    stores: bool,
    /// Compiled code's state, reused from run to run.
    jit: JitState,
    /// The program's compiled code, once checked to run over its maps as
    /// a packet hook and to answer only pass or drop ([`only_judges`]):
    /// what judges frames in place when there is some (else the
    /// interpreter may, [`HookRun::interp_in_place`]).
    native: Option<&'t dyn JitCode>,
    /// The interpreter runs the program on frames where they lie (it
    /// answers only pass or drop, [`only_judges`], and its accesses are
    /// plain loads and stores, [`vm::interprets_in_place`]).
    interp_in_place: bool,
}

impl<'t> HookRun<'t> {
    /// Runs the program on the first `len` bytes of the hook's copy of a
    /// frame and counts the verdict.
    #[inline(always)]
    fn run(&mut self, len: usize) -> Verdict {
        if len > MAX_FRAME_BYTES {
            self.flow.runs += 1;
            self.flow.faults += 1;
            return Verdict::Drop;
        }
        self.set_end(len);
        let outcome = vm::run_packet(&self.prog, &mut self.mem, &mut self.jit, len);
        self.flow.runs += 1;
        self.verdict(&outcome, len, None)
    }

    /// Runs the program on `frame` where it lies, in the receiver's
    /// buffer (its compiled code, else the interpreter), and counts the
    /// verdict; `None` (nothing run) for a program that may not run
    /// there.
    #[inline(always)]
    fn run_in_place(&mut self, frame: &HostRange<'_>) -> Option<Verdict> {
        let len = frame.len() as usize;
        if len > MAX_FRAME_BYTES {
            return None;
        }
        let Some(code) = self.native else {
            return self.interpret_in_place(frame, len);
        };
        self.set_end(len);
        let (ret, moved) = vm::enter_in_place(code, &mut self.mem, &mut self.jit, frame);
        self.flow.runs += 1;
        // The common answers of a run that ran alone, counted here; the
        // rest below.
        if !moved
            && vm::in_place_clean(&self.jit)
            && let Some(v) = self.count_clean(ret, vm::in_place_executed(&self.jit))
        {
            return Some(v);
        }
        Some(self.settle_in_place(ret, moved, frame))
    }

    /// [`HookRun::run_in_place`] for a program the interpreter runs on
    /// frames where they lie (`len`: the frame's length, checked); `None`
    /// (nothing run) for one it does not.
    #[inline(always)]
    fn interpret_in_place(&mut self, frame: &HostRange<'_>, len: usize) -> Option<Verdict> {
        if !self.interp_in_place {
            return None;
        }
        self.set_end(len);
        let outcome = vm::interpret_in_place(&self.prog, &mut self.mem, frame);
        self.flow.runs += 1;
        // The common answers counted here, the rest below.
        if let Outcome::Returned { ret, executed, .. } = outcome
            && let Some(v) = self.count_clean(ret, executed.into())
        {
            return Some(v);
        }
        Some(self.verdict(&outcome, len, Some(frame)))
    }

    /// The common answers of a run in place that ended without a fault
    /// (`ret`, after `executed` instructions): a pass or a drop, counted
    /// as [`HookRun::verdict`] counts them; `None` (nothing counted) for
    /// any other answer, which the caller's slower path counts.
    #[inline(always)]
    fn count_clean(&mut self, ret: u64, executed: u64) -> Option<Verdict> {
        let f = &mut self.flow;
        let verdict = match ret {
            XDP_PASS => {
                f.pass += 1;
                Verdict::Pass
            }
            XDP_DROP => {
                f.drop += 1;
                Verdict::Drop
            }
            _ => return None,
        };
        f.insns += executed;
        Some(verdict)
    }

    /// [`HookRun::run_in_place`] for a run that faulted, called back into
    /// Rust or gave another answer: counts and acts on it.
    #[inline(never)]
    fn settle_in_place(&mut self, ret: u64, moved: bool, frame: &HostRange<'_>) -> Verdict {
        let len = (frame.len() as usize).min(MAX_FRAME_BYTES);
        let outcome = vm::in_place_outcome(&mut self.jit, &self.mem, ret, moved);
        let verdict = self.verdict(&outcome, len, (!moved).then_some(frame));
        // Moved to the hook's own buffer during the run: the frame as the
        // program left it is there.
        if verdict == Verdict::Pass
            && moved
            && frame.write_from(0, &self.mem.frame[..len]).is_none()
        {
            return Verdict::Drop;
        }
        verdict
    }

    /// Writes the context's `data_end` for a frame of `len` bytes (at
    /// most `MAX_FRAME_BYTES`, far below what `u32` addresses reach from
    /// `PACKET_BASE`): the only field that changes from frame to frame.
    #[inline(always)]
    fn set_end(&mut self, len: usize) {
        let end = (PACKET_BASE as u32).wrapping_add(len as u32);
        self.mem.ctx[XDP_DATA_END..XDP_DATA_END + 4].copy_from_slice(&end.to_le_bytes());
    }

    /// Counts a run's `outcome` on a `len`-byte frame (in `in_place` if it
    /// is judged where it lies, else in the hook's copy) and acts on it.
    #[inline(always)]
    fn verdict(
        &mut self,
        outcome: &Outcome,
        len: usize,
        in_place: Option<&HostRange<'_>>,
    ) -> Verdict {
        let f = &mut self.flow;
        f.insns += u64::from(outcome.executed());
        let Outcome::Returned { ret, redirect, .. } = *outcome else {
            f.faults += 1;
            return Verdict::Drop;
        };
        match ret {
            XDP_PASS => {
                f.pass += 1;
                return Verdict::Pass;
            }
            XDP_DROP => f.drop += 1,
            XDP_TX => {
                f.tx += 1;
                self.send_back(len, in_place, TO_SENDER);
            }
            XDP_REDIRECT => {
                f.redirect += 1;
                match (redirect, self.egress) {
                    // To the receiver: delivered, as a pass is.
                    (Some(port), Some(to)) if port == to => {
                        f.sent += 1;
                        return Verdict::Pass;
                    }
                    (Some(port), Some(_)) if port == self.ingress => {
                        self.send_back(len, in_place, TO_SENDER)
                    }
                    // Another VM port: on once the link's ports are let go.
                    (Some(port), Some(_)) if port != TO_SENDER => {
                        self.send_back(len, in_place, port)
                    }
                    // A NIC's receive hook: the switch delivers it to that
                    // port of the NIC, if it has one.
                    (Some(port), None) if self.nic == Some(NicDir::Rx) => {
                        self.redirect_to = Some(port)
                    }
                    // A NIC's transmit hook: to a VM port (any), once the
                    // switch has let go of the NIC's ports.
                    (Some(port), None) if self.nic == Some(NicDir::Tx) && port != TO_SENDER => {
                        self.send_back(len, in_place, port)
                    }
                    _ => f.unsent += 1,
                }
            }
            // XDP_ABORTED, and any value the contract does not know.
            _ => f.aborted += 1,
        }
        Verdict::Drop
    }

    /// Queues the frame's `len` bytes (in `in_place`, or else in the
    /// hook's copy) to go back to the sender (`to` [`TO_SENDER`]) or on to
    /// port `to` (a link's hook with room in its queue), else counts them
    /// `unsent`.
    #[inline(never)]
    fn send_back(&mut self, len: usize, in_place: Option<&HostRange<'_>>, to: u32) {
        let mut queued = false;
        if (self.egress.is_some() || self.nic.is_some())
            && len <= MAX_FRAME_BYTES
            && self
                .back
                .push_back(Back {
                    to,
                    len: len as u16,
                    bytes: [0; MAX_FRAME_BYTES],
                })
                .is_ok()
            && let Some(b) = self.back.back_mut()
        {
            let out = &mut b.bytes[..len];
            queued = match in_place {
                Some(frame) => frame.read_into(0, out).is_some(),
                None => {
                    out.copy_from_slice(&self.mem.frame[..len]);
                    true
                }
            };
            if !queued {
                self.back.pop_back();
            }
        }
        if !queued {
            self.flow.unsent += 1;
        }
    }

    /// Whether frames wait to go back to the sender (or on to another
    /// port).
    pub fn sends_back(&self) -> bool {
        !self.back.is_empty()
    }

    /// The port the next waiting frame is redirected to, if it goes to
    /// another port than its sender's (deliver it through
    /// [`HookRun::away_source`], and count it with [`HookRun::count_away`]).
    pub fn away(&self) -> Option<u32> {
        self.back
            .front()
            .map(|b| b.to)
            .filter(|&to| to != TO_SENDER)
    }

    /// How long (TSC ticks, at `now`) the frame at the front has waited
    /// for a receive buffer of its port: 0 the first time it is asked.
    pub fn away_waited(&mut self, now: u64) -> u64 {
        now.wrapping_sub(*self.away_since.get_or_insert(now))
    }

    /// The frame at the front went on, or was given up: the next one has
    /// waited for nothing yet.
    pub fn away_done(&mut self) {
        self.away_since = None;
    }

    /// Frames waiting in its queue.
    pub fn waiting(&self) -> usize {
        self.back.len()
    }

    /// Takes the frame at the front of the queue out (one for another
    /// port that could not be delivered).
    pub fn drop_front(&mut self) {
        self.back.pop_front();
    }

    /// Counts `sent` frames delivered to another port and `unsent` that
    /// could not be.
    pub fn count_away(&mut self, sent: u64, unsent: u64) {
        self.flow.sent += sent;
        self.flow.unsent += unsent;
    }

    /// Hands the frames waiting to go back to `send`, in order, while it
    /// takes them (a NIC's receive hook: onto the wire): `Some(true)` sent,
    /// `Some(false)` could not be (both take the frame; counted `sent` or
    /// `unsent`), `None` not now (the rest wait). Returns frames taken.
    pub fn send_back_with(&mut self, mut send: impl FnMut(&[u8]) -> Option<bool>) -> u32 {
        let mut n = 0;
        // Up to the first frame that goes on to another port.
        while let Some(b) = self.back.front().filter(|b| b.to == TO_SENDER) {
            let Some(sent) = send(b.bytes.get(..usize::from(b.len)).unwrap_or_default()) else {
                break;
            };
            self.back.pop_front();
            if sent {
                self.flow.sent += 1;
            } else {
                self.flow.unsent += 1;
            }
            n += 1;
        }
        n
    }

    /// The frames waiting to go back to the sender, as a frame source
    /// whose frames are completed by taking them out of the queue (`F`:
    /// what the direction delivering them keeps of a frame, unused).
    pub fn back_source<F: Default>(&mut self) -> BackSource<'_, F> {
        BackSource {
            to: TO_SENDER,
            queue: &mut self.back,
            _frame: core::marker::PhantomData,
        }
    }

    /// The waiting frames at the front of the queue that go on to port
    /// `to`, as a frame source like [`HookRun::back_source`]'s.
    pub fn away_source<F: Default>(&mut self, to: u32) -> BackSource<'_, F> {
        BackSource {
            to,
            queue: &mut self.back,
            _frame: core::marker::PhantomData,
        }
    }

    /// Its maps (for the report and tests).
    pub fn maps(&self) -> &MapSet<'t> {
        &self.mem.maps
    }
}

/// A hook's frames going back to the sender, as the source of a pump
/// into the sender's receive queue: never fails, completes a frame by
/// taking it out of the queue.
pub struct BackSource<'q, F> {
    /// Where the frames it gives go: it gives those at the front of the
    /// queue that go there.
    to: u32,
    queue: &'q mut heapless::Deque<Back, BACK_SLOTS>,
    _frame: core::marker::PhantomData<F>,
}

impl<F: Default> FrameSource for BackSource<'_, F> {
    type Frame = F;

    fn waiting(&mut self) -> Result<bool, RingError> {
        Ok(self.queue.front().is_some_and(|b| b.to == self.to))
    }

    fn take(&mut self, _frame: &mut F) -> Result<Option<u32>, RingError> {
        Ok(self
            .queue
            .front()
            .filter(|b| b.to == self.to)
            .map(|b| u32::from(b.len)))
    }

    fn read(&self, _frame: &F, len: u32, mut f: impl FnMut(&[u8])) -> Result<(), RingError> {
        if let Some(b) = self.queue.front() {
            f(b.bytes.get(..len as usize).unwrap_or_default());
        }
        Ok(())
    }

    fn complete(&mut self, _frame: &F) -> Result<(), RingError> {
        self.queue.pop_front();
        Ok(())
    }

    fn publish(&mut self) -> Result<(), RingError> {
        Ok(())
    }
}

impl FramePolicy for HookRun<'_> {
    const INSPECTS: bool = true;

    fn own_buffer(&mut self) -> Option<&mut [u8]> {
        Some(&mut self.mem.frame)
    }

    #[inline(always)]
    fn judge_own(&mut self, len: usize) -> Verdict {
        self.run(len)
    }

    #[inline(always)]
    fn judges_in_place(&self) -> bool {
        self.native.is_some() || self.interp_in_place
    }

    #[inline(always)]
    fn judge_in_place(&mut self, frame: &HostRange<'_>) -> Option<Verdict> {
        self.run_in_place(frame)
    }

    fn rewrote(&self) -> bool {
        self.stores
    }

    fn room(&self) -> bool {
        !self.back.is_full()
    }

    fn drain_back(&mut self, send: &mut dyn FnMut(&[u8]) -> Option<bool>) -> u32 {
        self.send_back_with(send)
    }

    fn take_redirect(&mut self) -> Option<u32> {
        self.redirect_to.take()
    }

    fn redirected(&mut self, delivered: bool) {
        if delivered {
            self.flow.sent += 1;
        } else {
            self.flow.unsent += 1;
        }
    }

    fn judge<K: FrameSink>(&mut self, frame: &FrameCopy<'_, K>) -> Verdict {
        let len = frame.len() as usize;
        let copied = self
            .mem
            .frame
            .get_mut(..len)
            .and_then(|out| frame.read(0, out));
        if copied.is_none() {
            self.flow.runs += 1;
            self.flow.faults += 1;
            return Verdict::Drop;
        }
        self.run(len)
    }
}

/// A packet hook attached to one direction of a link or of a NIC's queue.
pub struct PacketHook<'t> {
    /// Its name.
    pub name: &'t str,
    /// Where it is: a link direction or a NIC queue direction.
    pub attach: HookAttach,
    /// Its manifest index (for its records; 0 until [`PacketHook::at_index`]).
    pub index: u32,
    run: Mutex<HookRun<'t>>,
}

impl<'t> PacketHook<'t> {
    /// Builds hook `name` at `attach` (a link or NIC queue direction),
    /// polled by core `core`: `insns` (verified again here) with the map
    /// table `defs`, decoded into `mem.ops`, its maps in `mem.arena` (at
    /// least [`super::maps::bytes_needed`] for `core + 1` cores); `clock`
    /// is what `bpf_ktime_get_ns` returns.
    pub fn new(
        name: &'t str,
        attach: HookAttach,
        core: u32,
        insns: &'t [Insn],
        defs: &[MapDef],
        mem: HookMemory<'t>,
        clock: fn() -> u64,
    ) -> Result<Self, BuildError> {
        let verified = Verified::new(insns, HookKind::Packet, defs).map_err(BuildError::Verify)?;
        let prog = program(verified, mem.ops)?;
        let maps = MapSet::new(defs, core + 1, mem.arena).map_err(BuildError::Maps)?;
        let interp_in_place = only_judges(prog.ops()) && vm::interprets_in_place(&prog, &maps);
        Ok(PacketHook {
            name,
            attach,
            index: 0,
            run: Mutex::new(HookRun {
                prog,
                flow: HookFlow::default(),
                ingress: 0,
                egress: None,
                back: heapless::Deque::new(),
                nic: match attach {
                    HookAttach::Nic { dir, .. } => Some(dir),
                    _ => None,
                },
                redirect_to: None,
                away_since: None,
                mem: vm::PacketMem::new(context(0), maps, Env { clock, core }),
                stores: prog.stores(),
                jit: JitState::default(),
                native: None,
                interp_in_place,
            }),
        })
    }

    /// The same hook, as manifest hook `index`.
    pub fn at_index(self, index: u32) -> Self {
        PacketHook { index, ..self }
    }

    /// Gives the program the code `compile` makes of it, if it makes
    /// any; whether it did (else the interpreter runs it).
    pub fn compile_with(
        &self,
        compile: impl FnOnce(&Program<'t>) -> Option<&'t dyn JitCode>,
    ) -> bool {
        let mut run = self.run.lock();
        match compile(&run.prog) {
            Some(code) => {
                run.prog = run.prog.with_jit(code);
                run.native = vm::packet_code(&run.prog, &run.mem.maps)
                    .filter(|_| only_judges(run.prog.ops()));
                true
            }
            None => false,
        }
    }

    /// What runs it ([`Program::engine`]).
    pub fn engine(&self) -> u8 {
        self.run.lock().prog.engine()
    }

    /// Sets the port `xdp_md.ingress_ifindex` names (the sender's).
    pub fn set_ingress(&self, port: u32) {
        let mut run = self.run.lock();
        run.ingress = port;
        run.mem.ctx = context(port);
    }

    /// For a hook on a link direction: the sender's and the receiver's
    /// ports (frames can then go back to the sender).
    pub fn set_ports(&self, ingress: u32, egress: u32) {
        self.set_ingress(ingress);
        self.run.lock().egress = Some(egress);
    }

    /// Its working state, locked (its link's polling core, for a pump; the
    /// boot core, to report).
    pub fn lock(&self) -> spin::MutexGuard<'_, HookRun<'t>> {
        self.run.lock()
    }

    /// Its counters.
    pub fn flow(&self) -> HookFlow {
        self.run.lock().flow
    }

    /// Gives its `hook` record, then a `hook-map` record per map followed
    /// by `hook-entry` records for its first [`super::maps::MAX_ENTRIES_SHOWN`] entries
    /// whose value is not all zero; `index` is its manifest index.
    pub fn report(&self, index: u32, mut record: impl FnMut(&Record<'_>)) {
        let run = self.run.lock();
        // A link's index and `a->b`/`b->a`, or a NIC's index and `rx`/`tx`.
        let (place, dir) = match self.attach {
            HookAttach::Link { link, dir } => (link, dir.name()),
            HookAttach::Nic { nic, dir } => (nic, dir.name()),
            HookAttach::Vm { vm: n } | HookAttach::Core { core: n } => (n, "-"),
        };
        record(&Record::Hook {
            hook: index,
            name: self.name,
            link: place,
            dir,
            engine: vmm_abi::control::engine_name(run.prog.engine()),
            flow: run.flow,
        });
        super::maps::report(index, &run.mem.maps, run.mem.env.core + 1, record);
    }
}

/// Whether a program can only answer `XDP_ABORTED`, `XDP_DROP` or
/// `XDP_PASS` (an aborted run drops too): nothing but moves of those
/// constants writes `r0` (a helper call writes it, so a program that calls
/// one does not qualify). Such a program never sends a frame anywhere, so
/// it may judge a frame where its receiver can still change it: whatever
/// the receiver does to it only reaches the receiver.
pub fn only_judges(ops: &[super::Op]) -> bool {
    use super::Op;
    let verdict = |imm: u64| matches!(imm, XDP_ABORTED | XDP_DROP | XDP_PASS);
    ops.iter().all(|op| match *op {
        Op::MovImm { dst: 0, imm } | Op::LdImm64 { dst: 0, imm } => verdict(imm),
        Op::Return { imm } => verdict(imm),
        Op::Call { .. } => false,
        Op::MovReg { dst, .. }
        | Op::AddImm { dst, .. }
        | Op::AddReg { dst, .. }
        | Op::Alu64Imm { dst, .. }
        | Op::Alu64Reg { dst, .. }
        | Op::Alu32Imm { dst, .. }
        | Op::Alu32Reg { dst, .. }
        | Op::End { dst, .. }
        | Op::BoundsCheck { dst, .. }
        | Op::LdxB { dst, .. }
        | Op::LdxH { dst, .. }
        | Op::LdxW { dst, .. }
        | Op::LdxDw { dst, .. } => dst != 0,
        _ => true,
    })
}

/// The context for frames from port `ingress` (`data_end` set per frame).
fn context(ingress: u32) -> [u8; XDP_MD_SIZE] {
    xdp_md(0, ingress, 0, 0).map_or([0; XDP_MD_SIZE], |c| c.to_bytes())
}

/// `verified` decoded into `ops`.
pub(super) fn program<'t>(
    verified: Verified<'t>,
    ops: &'t mut [super::Op],
) -> Result<Program<'t>, BuildError> {
    let (have, need) = (ops.len(), verified.insns().len());
    Program::new(verified, ops).ok_or(BuildError::Ops { have, need })
}

#[cfg(test)]
pub(crate) mod tests;
