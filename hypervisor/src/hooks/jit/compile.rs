//! The compiler: a decoded program ([`Op`]s, jumps forward and inside it) to x86-64 in two passes over the same emitter (the first finds every label, the second writes the code with them), instruction counting per straight-line block, inline region checks with out-of-line slow paths, and one fault stub per instruction that can fault.
//!
//! Code layout: prologue (the callee-saved registers the code uses, `r12`
//! = the state, `r1` = the context's address if some instruction reads
//! its value while it is that, `r10` = the stack's end if named; no other
//! register is set: the verifier proves each is written before it is
//! read), one piece per instruction slot in order,
//! the epilogue, then the out-of-line pieces (slow paths and fault
//! stubs). Every branch is `rel32`, so an instruction's length never
//! depends on where its target is and both passes lay the code out
//! identically.

#![forbid(unsafe_code)]

use super::x86::{self, Alu, Asm, Cond, Mem, Reg, Shift};
use super::{
    BPF_REGS, FaultCode, JitError, Trampolines, W_EXECUTED, W_FAULT_AUX, W_FAULT_INSN,
    W_FAULT_KIND, W_HELPER, base_word, lim_word,
};
use crate::hooks::Program;
use crate::hooks::layout::{
    CTX_BASE, PACKET_BASE, REGION_CTX, REGION_PACKET, REGION_SHIFT, REGION_STACK, STACK_BASE,
};
use crate::hooks::vm::op::Op;
use vmm_abi::hook::context::{XDP_DATA, XDP_DATA_META};
use vmm_abi::hook::insn::*;
use vmm_abi::hook::{HookKind, STACK_SIZE};

/// Where one instruction slot's pieces of code are (offsets in the code),
/// and what the block counting needs: scratch the caller provides, one
/// per slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Labels {
    /// The slot's inline code.
    slot: u32,
    /// Its memory access instruction (the slow path returns there).
    access: u32,
    /// Its slow path.
    slow: u32,
    /// Its fault stub.
    fault: u32,
    /// Whether a block starts here.
    leader: bool,
    /// Counted slots after this one in its block (what a fault here
    /// takes back from the block's count).
    after: u32,
    /// Whether `r1` holds the context's address when control reaches
    /// this slot, on every path from the entry ([`plan_ctx`]).
    ctx_r1: bool,
    /// Whether [`plan_ctx`] found a path to this slot.
    reached: bool,
}

impl Labels {
    /// No labels yet (for static scratch).
    pub const EMPTY: Labels = Labels {
        slot: 0,
        access: 0,
        slow: 0,
        fault: 0,
        leader: false,
        after: 0,
        ctx_r1: false,
        reached: false,
    };
}

/// The region an access's base register most likely points into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guess {
    Ctx,
    Stack,
    Packet,
}

impl Guess {
    fn region(self) -> u64 {
        match self {
            Guess::Ctx => REGION_CTX,
            Guess::Stack => REGION_STACK,
            Guess::Packet => REGION_PACKET,
        }
    }
}

fn state(word: usize) -> Mem {
    Mem::Disp(x86::R12, (word * 8) as i32)
}

fn x(r: u8) -> Reg {
    BPF_REGS.get(usize::from(r)).copied().unwrap_or(x86::RAX)
}

/// The registers an op writes and reads (eBPF numbers).
fn regs(op: &Op) -> ([Option<u8>; 1], [Option<u8>; 3]) {
    let w = |d: u8| [Some(d)];
    match *op {
        Op::MovImm { dst, .. } | Op::LdImm64 { dst, .. } => (w(dst), [None; 3]),
        Op::MovReg { dst, src } | Op::AddReg { dst, src } | Op::Alu64Reg { dst, src, .. } => {
            (w(dst), [Some(dst), Some(src), None])
        }
        Op::Alu32Reg { dst, src, .. } => (w(dst), [Some(dst), Some(src), None]),
        Op::AddImm { dst, .. }
        | Op::Alu64Imm { dst, .. }
        | Op::Alu32Imm { dst, .. }
        | Op::End { dst, .. } => (w(dst), [Some(dst), None, None]),
        Op::LdxB { dst, src, .. }
        | Op::LdxH { dst, src, .. }
        | Op::LdxW { dst, src, .. }
        | Op::LdxDw { dst, src, .. } => (w(dst), [Some(src), None, None]),
        Op::JeqImm { dst, .. }
        | Op::JneImm { dst, .. }
        | Op::Jmp64Imm { dst, .. }
        | Op::Jmp32Imm { dst, .. } => ([None], [Some(dst), None, None]),
        Op::JgtReg { dst, src, .. }
        | Op::Jmp64Reg { dst, src, .. }
        | Op::Jmp32Reg { dst, src, .. } => ([None], [Some(dst), Some(src), None]),
        Op::BoundsCheck { dst, src, end, .. } => (w(dst), [Some(src), Some(end), Some(dst)]),
        Op::Return { .. } => (w(0), [None; 3]),
        Op::Stx { base, src, .. } | Op::AtomicAdd { base, src, .. } => {
            ([None], [Some(base), Some(src), None])
        }
        Op::St { base, .. } => ([None], [Some(base), None, None]),
        Op::Call { .. } => (w(0), [Some(1), Some(2), Some(3)]),
        Op::Exit => ([None], [Some(0), None, None]),
        Op::Ja { .. } | Op::Bad { .. } | Op::BadJump { .. } => ([None], [None; 3]),
    }
}

/// The op a slot runs on its own: a fused op's first instruction (the
/// later ones keep their own slots).
fn unfused(op: Op) -> Op {
    match op {
        Op::BoundsCheck { dst, src, .. } => Op::MovReg { dst, src },
        Op::Return { imm } => Op::MovImm { dst: 0, imm },
        other => other,
    }
}

/// The slot a taken jump goes to, if `op` jumps.
fn target(op: &Op) -> Option<usize> {
    match *op {
        Op::Ja { target }
        | Op::JeqImm { target, .. }
        | Op::JneImm { target, .. }
        | Op::JgtReg { target, .. }
        | Op::Jmp64Imm { target, .. }
        | Op::Jmp64Reg { target, .. }
        | Op::Jmp32Imm { target, .. }
        | Op::Jmp32Reg { target, .. } => Some(target as usize),
        _ => None,
    }
}

/// Whether control never goes on to the next slot after `op` (in `kind`).
fn ends_flow(op: &Op, kind: HookKind) -> bool {
    match *op {
        Op::Ja { .. } | Op::Exit | Op::Bad { .. } | Op::BadJump { .. } => true,
        Op::Call { id } => !kind.allows(id),
        _ => false,
    }
}

/// Whether slot `k` of `ops` is the second half of an `lddw` (control
/// passes over it, and it is not counted).
fn lddw_tail(ops: &[Op], k: usize) -> bool {
    k > 0
        && matches!(ops.get(k - 1), Some(Op::LdImm64 { .. }))
        && matches!(ops[k], Op::Bad { code: 0 })
}

/// Compiles `prog` into `out` with `labels` (at least one per
/// instruction slot) as scratch: the code's length. The code calls
/// `tramp`'s functions by absolute address.
pub fn compile(
    prog: &Program<'_>,
    tramp: &Trampolines,
    labels: &mut [Labels],
    out: &mut [u8],
) -> Result<usize, JitError> {
    let ops = prog.ops();
    let n = ops.len();
    let labels = labels.get_mut(..n).ok_or(JitError::Labels(n))?;
    let kind = prog.kind();
    // Every register named must be r0..r10, and r10 never written.
    let mut used = [false; 11];
    for op in ops {
        let (w, r) = regs(op);
        for reg in w.iter().chain(r.iter()).flatten() {
            *used.get_mut(usize::from(*reg)).ok_or(JitError::Registers)? = true;
        }
        if w[0] == Some(10) {
            return Err(JitError::Registers);
        }
    }
    plan_blocks(ops, kind, labels);
    plan_ctx(ops, kind, labels);
    let mut c = Compiler {
        ops,
        kind,
        tramp: *tramp,
        labels,
        used,
        epilogue: 0,
    };
    // `r1` needs its value only if some op reads it as a value while it
    // holds the context's address (every other read of it then is a
    // context load the code makes without it, or comes after a write).
    c.used[1] = (0..n).any(|k| c.reads_ctx_r1(k)) || ops.iter().any(|op| writes(op, 1));
    let room = out.len();
    // Pass 1 lays out; pass 2 writes with the labels pass 1 found.
    for pass in 0..2 {
        let mut asm = Asm::new(&mut *out);
        c.emit(&mut asm);
        if asm.overflowed() {
            return Err(JitError::Room(room));
        }
        if pass == 1 {
            return Ok(asm.pos());
        }
    }
    Err(JitError::Room(room))
}

/// Marks block leaders and counts, for each slot, the counted slots after
/// it in its block.
fn plan_blocks(ops: &[Op], kind: HookKind, labels: &mut [Labels]) {
    let n = ops.len();
    for l in labels.iter_mut() {
        *l = Labels::default();
    }
    if let Some(first) = labels.first_mut() {
        first.leader = true;
    }
    for (k, op) in ops.iter().enumerate() {
        let op = unfused(*op);
        if let Some(t) = target(&op)
            && let Some(l) = labels.get_mut(t)
        {
            l.leader = true;
        }
        if (target(&op).is_some() || ends_flow(&op, kind))
            && let Some(l) = labels.get_mut(k + 1)
        {
            l.leader = true;
        }
    }
    let mut after = 0;
    for k in (0..n).rev() {
        labels[k].after = after;
        let weight = u32::from(!lddw_tail(ops, k));
        after = if labels[k].leader { 0 } else { after + weight };
    }
}

/// Whether `op` (a slot's own op) writes eBPF register `r`; a call
/// clobbers `r1..r5` besides writing `r0`.
fn writes(op: &Op, r: u8) -> bool {
    regs(&unfused(*op)).0[0] == Some(r) || (matches!(op, Op::Call { .. }) && (1..=5).contains(&r))
}

/// Marks the slots `r1` reaches holding the context's address on every
/// path from the entry (control only moves forward, so one pass in order
/// sees every predecessor of a slot before the slot).
fn plan_ctx(ops: &[Op], kind: HookKind, labels: &mut [Labels]) {
    // `reached`: some path seen so far reaches the slot; `ctx_r1`: every
    // such path has `r1` holding the context there.
    for l in labels.iter_mut() {
        (l.reached, l.ctx_r1) = (false, false);
    }
    if let Some(first) = labels.first_mut() {
        (first.reached, first.ctx_r1) = (true, true);
    }
    let join = |labels: &mut [Labels], to: usize, ctx: bool| {
        if let Some(l) = labels.get_mut(to) {
            l.ctx_r1 = if l.reached { l.ctx_r1 && ctx } else { ctx };
            l.reached = true;
        }
    };
    for (k, raw) in ops.iter().enumerate() {
        if !labels[k].reached {
            continue;
        }
        let op = unfused(*raw);
        let out = labels[k].ctx_r1 && !writes(raw, 1);
        if let Some(t) = target(&op) {
            join(labels, t, out);
        }
        if !ends_flow(&op, kind) {
            // An `lddw` falls through over its second half.
            let next = if matches!(op, Op::LdImm64 { .. }) {
                k + 2
            } else {
                k + 1
            };
            join(labels, next, out);
        }
    }
}

struct Compiler<'c, 'p> {
    ops: &'p [Op],
    kind: HookKind,
    tramp: Trampolines,
    labels: &'c mut [Labels],
    used: [bool; 11],
    epilogue: usize,
}

impl Compiler<'_, '_> {
    fn label(&self, k: usize) -> Labels {
        self.labels.get(k).copied().unwrap_or_default()
    }

    fn emit(&mut self, a: &mut Asm<'_>) {
        self.prologue(a);
        let n = self.ops.len();
        let mut guesses = [None; 11];
        for k in 0..n {
            let here = a.pos() as u32;
            if lddw_tail(self.ops, k) {
                // Not reached by falling through (the `lddw` before it
                // falls through to the slot after); a jump here faults.
                self.labels[k].slot = self.labels[k].fault;
                continue;
            }
            self.labels[k].slot = here;
            let l = self.label(k);
            if l.leader {
                // Guesses carry on across blocks: control only moves
                // forward, and a wrong guess costs a call, never safety.
                let count = self.block_count(k);
                a.alu_mi(Alu::Add, state(W_EXECUTED), count as i32);
            }
            if k == 0 {
                guesses[1] = Some(Guess::Ctx);
            }
            let op = unfused(self.ops[k]);
            self.inline(a, k, op, &guesses);
            track(&mut guesses, &op);
        }
        // Running off the end.
        let last_ends = self
            .ops
            .last()
            .is_some_and(|op| ends_flow(&unfused(*op), self.kind));
        if !last_ends {
            self.fault_stub(a, n, FaultCode::Jump, n as i32);
        }
        self.epilogue = a.pos();
        self.epilogue_code(a);
        // Out of line: each slot's slow path and fault stub.
        for k in 0..n {
            let op = unfused(self.ops[k]);
            self.out_of_line(a, k, op);
        }
    }

    /// Counted slots of the block starting at `k`.
    fn block_count(&self, k: usize) -> u32 {
        u32::from(!lddw_tail(self.ops, k)) + self.label(k).after
    }

    /// The callee-saved x86 registers the code uses, in push order: `r12`
    /// (the state) always, the others only for the eBPF registers kept in
    /// them that the program names.
    fn saved(&self) -> ([Reg; 6], usize) {
        let mut out = [x86::R12; 6];
        let mut n = 0;
        for (reg, ebpf) in [
            (x86::RBX, Some(6)),
            (x86::RBP, Some(10)),
            (x86::R12, None),
            (x86::R13, Some(7)),
            (x86::R14, Some(8)),
            (x86::R15, Some(9)),
        ] {
            if ebpf.is_none_or(|r: usize| self.used[r]) {
                out[n] = reg;
                n += 1;
            }
        }
        (out, n)
    }

    /// Bytes below the pushes that keep `rsp` a multiple of 16 in the body
    /// (the System V rule at calls): the return address and the pushes
    /// are `8 * (1 + pushes)` bytes.
    fn pad(&self) -> i32 {
        if self.saved().1.is_multiple_of(2) {
            8
        } else {
            0
        }
    }

    fn prologue(&self, a: &mut Asm<'_>) {
        let (saved, n) = self.saved();
        for r in &saved[..n] {
            a.push(*r);
        }
        if self.pad() != 0 {
            a.alu_ri(true, Alu::Sub, x86::RSP, self.pad());
        }
        a.mov_rr(true, x86::R12, x86::RDI);
        if self.used[1] {
            a.mov_ri(x(1), CTX_BASE);
        }
        if self.used[10] {
            a.mov_ri(x(10), STACK_BASE + STACK_SIZE as u64);
        }
        // No other register needs a value: the verifier proved that a
        // program writes every register before it reads it (the
        // interpreter's zeroes are never seen).
    }

    fn epilogue_code(&self, a: &mut Asm<'_>) {
        if self.pad() != 0 {
            a.alu_ri(true, Alu::Add, x86::RSP, self.pad());
        }
        let (saved, n) = self.saved();
        for r in saved[..n].iter().rev() {
            a.pop(*r);
        }
        a.ret();
    }

    fn slot_target(&self, t: u32) -> usize {
        self.label(t as usize).slot as usize
    }

    fn inline(&mut self, a: &mut Asm<'_>, k: usize, op: Op, guesses: &[Option<Guess>; 11]) {
        let fault = self.label(k).fault as usize;
        match op {
            Op::MovImm { dst, imm } | Op::LdImm64 { dst, imm } => a.mov_ri(x(dst), imm),
            Op::MovReg { dst, src } => {
                if dst != src {
                    a.mov_rr(true, x(dst), x(src));
                }
            }
            Op::AddImm { dst, imm } => alu_imm(a, true, BPF_ADD, x(dst), imm),
            Op::AddReg { dst, src } => alu_reg(a, true, BPF_ADD, x(dst), x(src)),
            Op::Alu64Imm { op, dst, imm } => alu_imm(a, true, op, x(dst), imm),
            Op::Alu64Reg { op, dst, src } => alu_reg(a, true, op, x(dst), x(src)),
            Op::Alu32Imm { op, dst, imm } => alu_imm(a, false, op, x(dst), u64::from(imm)),
            Op::Alu32Reg { op, dst, src } => alu_reg(a, false, op, x(dst), x(src)),
            Op::End { to_be, bits, dst } => endian(a, to_be, bits, x(dst)),
            Op::Ja { target } => a.jmp(self.slot_target(target)),
            Op::JeqImm { dst, imm, target } => {
                self.jump_imm(a, true, BPF_JEQ, dst, imm, target);
            }
            Op::JneImm { dst, imm, target } => {
                self.jump_imm(a, true, BPF_JNE, dst, imm, target);
            }
            Op::JgtReg { dst, src, target } => {
                self.jump_reg(a, true, BPF_JGT, dst, src, target);
            }
            Op::Jmp64Imm {
                op,
                dst,
                imm,
                target,
            } => self.jump_imm(a, true, op, dst, imm, target),
            Op::Jmp64Reg {
                op,
                dst,
                src,
                target,
            } => self.jump_reg(a, true, op, dst, src, target),
            Op::Jmp32Imm {
                op,
                dst,
                imm,
                target,
            } => {
                self.jump_imm(a, false, op, dst, u64::from(imm), target);
            }
            Op::Jmp32Reg {
                op,
                dst,
                src,
                target,
            } => self.jump_reg(a, false, op, dst, src, target),
            Op::Exit => {
                if k + 1 < self.ops.len() || !self.epilogue_follows() {
                    a.jmp(self.epilogue);
                }
            }
            Op::LdxB { dst, src, off } => {
                self.access(a, k, Access::Load(1, dst), src, off, guesses)
            }
            Op::LdxH { dst, src, off } => {
                self.access(a, k, Access::Load(2, dst), src, off, guesses)
            }
            Op::LdxW { dst, src, off } => {
                self.access(a, k, Access::Load(4, dst), src, off, guesses)
            }
            Op::LdxDw { dst, src, off } => {
                self.access(a, k, Access::Load(8, dst), src, off, guesses);
            }
            Op::Stx {
                size,
                base,
                src,
                off,
            } => {
                self.access(a, k, Access::Store(size, src), base, off, guesses);
            }
            Op::St {
                size,
                base,
                off,
                imm,
            } => {
                self.access(a, k, Access::StoreImm(size, imm as i32), base, off, guesses);
            }
            Op::AtomicAdd {
                size,
                base,
                src,
                off,
            } => {
                self.access(a, k, Access::Add(size, src), base, off, guesses);
            }
            Op::Call { id } if self.kind.allows(id) => {
                a.store_imm(8, state(W_HELPER), id as i32);
                a.mov_rr(true, x86::R9, x86::R12);
                a.movabs(x86::R11, self.tramp.helper);
                a.call_r(x86::R11);
                a.alu_mi(Alu::Cmp, state(W_FAULT_KIND), 0);
                a.jcc(Cond::Ne, fault);
            }
            Op::Call { .. } | Op::Bad { .. } | Op::BadJump { .. } => a.jmp(fault),
            Op::BoundsCheck { .. } | Op::Return { .. } => {}
        }
    }

    /// The offset into the context of slot `k`'s `size`-byte load at
    /// `off` from `base`, if `base` is `r1`, `r1` holds the context's
    /// address there on every path ([`plan_ctx`]) and the load lies
    /// inside the context.
    fn proven_ctx(&self, k: usize, base: u8, off: i16, size: u8) -> Option<i32> {
        let end = i64::from(off) + i64::from(size);
        (base == 1 && self.label(k).ctx_r1 && off >= 0 && end <= self.kind.context_size() as i64)
            .then_some(i32::from(off))
    }

    /// Whether slot `k` reads `r1` as a value while it holds the
    /// context's address (not as the base of a context load made
    /// without it).
    fn reads_ctx_r1(&self, k: usize) -> bool {
        let op = unfused(self.ops[k]);
        if !self.label(k).ctx_r1 || !regs(&op).1.contains(&Some(1)) {
            return false;
        }
        let proven = |off: i16, size: u8| self.proven_ctx(k, 1, off, size).is_some();
        !match op {
            Op::LdxB { src: 1, off, .. } => proven(off, 1),
            Op::LdxH { src: 1, off, .. } => proven(off, 2),
            Op::LdxW { src: 1, off, .. } => proven(off, 4),
            Op::LdxDw { src: 1, off, .. } => proven(off, 8),
            _ => false,
        }
    }

    /// The value a packet hook's context always holds at `off` for a
    /// `size`-byte load: `data` and `data_meta` are the packet's base.
    fn ctx_constant(&self, off: i32, size: u8) -> Option<u64> {
        let fixed = off == XDP_DATA as i32 || off == XDP_DATA_META as i32;
        (self.kind == HookKind::Packet && size == 4 && fixed).then_some(PACKET_BASE)
    }

    /// Whether the epilogue comes right after the last slot (no stub for
    /// running off the end in between).
    fn epilogue_follows(&self) -> bool {
        self.ops
            .last()
            .is_some_and(|op| ends_flow(&unfused(*op), self.kind))
    }

    fn jump_imm(&self, a: &mut Asm<'_>, w: bool, op: u8, dst: u8, imm: u64, target: u32) {
        let d = x(dst);
        let imm32 = if w {
            i32::try_from(imm as i64).ok()
        } else {
            Some(imm as u32 as i32)
        };
        match (op, imm32) {
            (BPF_JSET, Some(i)) => a.test_ri(w, d, i),
            (_, Some(i)) => a.alu_ri(w, Alu::Cmp, d, i),
            (BPF_JSET, None) => {
                a.movabs(x86::R11, imm);
                a.test_rr(w, d, x86::R11);
            }
            (_, None) => {
                a.movabs(x86::R11, imm);
                a.alu_rr(w, Alu::Cmp, d, x86::R11);
            }
        }
        a.jcc(cond(op), self.slot_target(target));
    }

    fn jump_reg(&self, a: &mut Asm<'_>, w: bool, op: u8, dst: u8, src: u8, target: u32) {
        if op == BPF_JSET {
            a.test_rr(w, x(dst), x(src));
        } else {
            a.alu_rr(w, Alu::Cmp, x(dst), x(src));
        }
        a.jcc(cond(op), self.slot_target(target));
    }

    /// A load or store: the inline check against the guessed region, then
    /// the access through `r11` (the host address).
    fn access(
        &mut self,
        a: &mut Asm<'_>,
        k: usize,
        what: Access,
        base: u8,
        off: i16,
        guesses: &[Option<Guess>; 11],
    ) {
        // Without a better guess: the packet for packet hooks, the
        // context for the others (they have no packet).
        let fallback = match self.kind {
            HookKind::Packet => Guess::Packet,
            _ => Guess::Ctx,
        };
        let guess = match base {
            10 => Guess::Stack,
            _ => guesses[usize::from(base)].unwrap_or(fallback),
        };
        let l = self.label(k);
        if let Access::Load(size, dst) = what
            && let Some(at) = self.proven_ctx(k, base, off, size)
        {
            // `r1` holds the context's address here on every path: the
            // load is inside the context, known now, so no check; the
            // fields every packet context holds the same are constants.
            self.labels[k].access = a.pos() as u32;
            if let Some(v) = self.ctx_constant(at, size) {
                a.mov_ri(x(dst), v);
                return;
            }
            a.load(8, x86::R11, state(base_word(REGION_CTX as usize)));
            self.labels[k].access = a.pos() as u32;
            a.load(size, x(dst), Mem::Disp(x86::R11, at));
            return;
        }
        // Stores never take the context's inline path: it is read-only.
        if !(what.writes() && guess == Guess::Ctx) {
            let region_base = guess.region() << REGION_SHIFT;
            let disp = i64::from(off) - region_base as i64;
            a.lea(x86::R11, Mem::Disp(x(base), disp as i32));
            a.cmp_rm(
                x86::R11,
                state(lim_word(guess.region() as usize, what.class())),
            );
            a.jcc(Cond::Ae, l.slow as usize);
            a.add_rm(x86::R11, state(base_word(guess.region() as usize)));
        } else {
            a.jmp(l.slow as usize);
        }
        self.labels[k].access = a.pos() as u32;
        let at = Mem::Disp(x86::R11, 0);
        match what {
            Access::Load(size, dst) => a.load(size, x(dst), at),
            Access::Store(size, src) => a.store(size, at, x(src)),
            Access::StoreImm(size, imm) => a.store_imm(size, at, imm),
            Access::Add(size, src) => a.lock_add(size, at, x(src)),
        }
    }

    fn out_of_line(&mut self, a: &mut Asm<'_>, k: usize, op: Op) {
        let (off, base, what) = match op {
            Op::LdxB { dst, src, off } => (off, src, Some(Access::Load(1, dst))),
            Op::LdxH { dst, src, off } => (off, src, Some(Access::Load(2, dst))),
            Op::LdxW { dst, src, off } => (off, src, Some(Access::Load(4, dst))),
            Op::LdxDw { dst, src, off } => (off, src, Some(Access::Load(8, dst))),
            Op::Stx {
                size,
                base,
                src,
                off,
            } => (off, base, Some(Access::Store(size, src))),
            Op::St {
                size,
                base,
                off,
                imm,
            } => (off, base, Some(Access::StoreImm(size, imm as i32))),
            Op::AtomicAdd {
                size,
                base,
                src,
                off,
            } => (off, base, Some(Access::Add(size, src))),
            _ => (0, 0, None),
        };
        if let Some(what) = what {
            self.labels[k].slow = a.pos() as u32;
            let access = self.label(k).access as usize;
            let fault = self.label(k).fault as usize;
            a.lea(x86::R11, Mem::Disp(x(base), i32::from(off)));
            let saved = [x86::RAX, x86::RDI, x86::RSI, x86::RDX, x86::RCX, x86::R8];
            for r in saved {
                a.push(r);
            }
            a.mov_rr(true, x86::RDI, x86::R12);
            a.mov_rr(true, x86::RSI, x86::R11);
            a.mov_ri(x86::RDX, what.size() as u64 | u64::from(what.writes()) << 8);
            a.movabs(x86::R11, self.tramp.translate);
            a.call_r(x86::R11);
            a.mov_rr(true, x86::R11, x86::RAX);
            for r in saved.into_iter().rev() {
                a.pop(r);
            }
            a.test_rr(true, x86::R11, x86::R11);
            a.jcc(Cond::E, fault);
            a.jmp(access);
        }
        // The fault stub: kinds the code knows itself are written here;
        // memory and helper faults were written by the runner.
        match op {
            Op::Call { id } if !self.kind.allows(id) => {
                self.fault_stub(a, k, FaultCode::Helper, id as i32);
            }
            Op::Bad { code } => self.fault_stub(a, k, FaultCode::BadInstruction, i32::from(code)),
            Op::BadJump { target } => self.fault_stub(a, k, FaultCode::Jump, target as i32),
            _ if what.is_some() || matches!(op, Op::Call { .. }) => {
                self.labels[k].fault = a.pos() as u32;
                self.fault_tail(a, k);
            }
            _ => {}
        }
    }

    /// A stub that writes fault `code` (with `aux`) for slot `k` and ends
    /// the run.
    fn fault_stub(&mut self, a: &mut Asm<'_>, k: usize, code: FaultCode, aux: i32) {
        if let Some(l) = self.labels.get_mut(k) {
            l.fault = a.pos() as u32;
        }
        a.store_imm(8, state(W_FAULT_KIND), code as u64 as i32);
        a.store_imm(8, state(W_FAULT_AUX), aux);
        self.fault_tail(a, k);
    }

    /// Records slot `k` as the faulting one, takes back the block's
    /// count for the slots after it, and ends the run.
    fn fault_tail(&self, a: &mut Asm<'_>, k: usize) {
        a.store_imm(8, state(W_FAULT_INSN), k as i32);
        let after = self.label(k).after;
        if k < self.ops.len() && after != 0 {
            a.alu_mi(Alu::Sub, state(W_EXECUTED), after as i32);
        }
        a.jmp(self.epilogue);
    }
}

/// What a memory instruction does.
#[derive(Clone, Copy)]
enum Access {
    /// Load `size` bytes into eBPF register `dst`.
    Load(u8, u8),
    /// Store `size` bytes of a register.
    Store(u8, u8),
    /// Store `size` bytes of an immediate.
    StoreImm(u8, i32),
    /// Atomically add a register.
    Add(u8, u8),
}

impl Access {
    fn size(self) -> u8 {
        match self {
            Access::Load(s, _)
            | Access::Store(s, _)
            | Access::StoreImm(s, _)
            | Access::Add(s, _) => s,
        }
    }

    fn class(self) -> usize {
        match self.size() {
            1 => 0,
            2 => 1,
            4 => 2,
            _ => 3,
        }
    }

    fn writes(self) -> bool {
        !matches!(self, Access::Load(..))
    }
}

/// Updates the region guesses after `op`.
fn track(g: &mut [Option<Guess>; 11], op: &Op) {
    let (w, _) = regs(op);
    let new = match *op {
        Op::MovReg { src, .. } => g.get(usize::from(src)).copied().flatten(),
        Op::AddImm { dst, .. } => g.get(usize::from(dst)).copied().flatten(),
        // `data`, `data_end` and `data_meta` of `xdp_md` are packet
        // addresses.
        Op::LdxW { src, off, .. } if g.get(usize::from(src)) == Some(&Some(Guess::Ctx)) => {
            matches!(off, 0 | 4 | 8).then_some(Guess::Packet)
        }
        _ => None,
    };
    if let Some(d) = w[0]
        && let Some(slot) = g.get_mut(usize::from(d))
    {
        *slot = new;
    }
    if matches!(op, Op::Call { .. }) {
        for slot in g.iter_mut().take(6).skip(1) {
            *slot = None;
        }
    }
}

fn cond(op: u8) -> Cond {
    match op {
        BPF_JEQ => Cond::E,
        BPF_JGT => Cond::A,
        BPF_JGE => Cond::Ae,
        BPF_JSET | BPF_JNE => Cond::Ne,
        BPF_JSGT => Cond::G,
        BPF_JSGE => Cond::Ge,
        BPF_JLT => Cond::B,
        BPF_JLE => Cond::Be,
        BPF_JSLT => Cond::L,
        _ => Cond::Le,
    }
}

fn simple(op: u8) -> Option<Alu> {
    Some(match op {
        BPF_ADD => Alu::Add,
        BPF_SUB => Alu::Sub,
        BPF_AND => Alu::And,
        BPF_OR => Alu::Or,
        BPF_XOR => Alu::Xor,
        _ => return None,
    })
}

fn shift(op: u8) -> Option<Shift> {
    Some(match op {
        BPF_LSH => Shift::Shl,
        BPF_RSH => Shift::Shr,
        BPF_ARSH => Shift::Sar,
        _ => return None,
    })
}

/// `dst op= imm` (`imm` as the op sees it: sign-extended for 64-bit ops,
/// the 32-bit value for 32-bit ones).
fn alu_imm(a: &mut Asm<'_>, w: bool, op: u8, dst: Reg, imm: u64) {
    let imm32 = if w {
        i32::try_from(imm as i64).ok()
    } else {
        Some(imm as u32 as i32)
    };
    match (op, simple(op), shift(op), imm32) {
        (_, Some(alu), _, Some(i)) => a.alu_ri(w, alu, dst, i),
        (BPF_MOV, ..) if w => a.mov_ri(dst, imm),
        (BPF_MOV, ..) => a.mov_ri(dst, u64::from(imm as u32)),
        (_, _, Some(s), _) => {
            let count = (imm & if w { 63 } else { 31 }) as u8;
            if count == 0 {
                // A shift by 0 changes nothing (32-bit: but zero-extends).
                if !w {
                    a.mov_rr(false, dst, dst);
                }
            } else {
                a.shift_ri(w, s, dst, count);
            }
        }
        (BPF_NEG, ..) => a.neg_r(w, dst),
        _ => {
            // Through r11: mul, div, mod, and 64-bit immediates that do
            // not fit 32 bits.
            let v = if w { imm } else { u64::from(imm as u32) };
            a.mov_ri(x86::R11, v);
            alu_reg(a, w, op, dst, x86::R11);
        }
    }
}

/// `dst op= src` on registers (`src` may be `r11`).
fn alu_reg(a: &mut Asm<'_>, w: bool, op: u8, dst: Reg, src: Reg) {
    if let Some(alu) = simple(op) {
        return a.alu_rr(w, alu, dst, src);
    }
    if let Some(s) = shift(op) {
        return shift_reg(a, w, s, dst, src);
    }
    match op {
        BPF_MOV => a.mov_rr(w, dst, src),
        BPF_MUL => a.imul_rr(w, dst, src),
        BPF_NEG => a.neg_r(w, dst),
        BPF_DIV | BPF_MOD => divide(a, w, op == BPF_MOD, dst, src),
        _ => {}
    }
}

/// `dst <<= src` (or `>>=`, arithmetic `>>=`), the count in `cl`.
fn shift_reg(a: &mut Asm<'_>, w: bool, s: Shift, dst: Reg, src: Reg) {
    if dst == x86::RCX {
        // Shift a copy of rcx by the count in cl.
        a.mov_rr(true, x86::R11, x86::RCX);
        if src != x86::RCX {
            a.mov_rr(true, x86::RCX, src);
        }
        a.shift_rcl(w, s, x86::R11);
        a.mov_rr(w, x86::RCX, x86::R11);
    } else {
        a.mov_rr(true, x86::R11, x86::RCX);
        if src != x86::RCX {
            a.mov_rr(true, x86::RCX, src);
        }
        a.shift_rcl(w, s, dst);
        if !w {
            // A 32-bit shift by 0 may leave the upper half: zero it.
            a.mov_rr(false, dst, dst);
        }
        a.mov_rr(true, x86::RCX, x86::R11);
    }
}

/// `dst /= src` or `dst %= src` (unsigned; by 0: quotient 0, remainder
/// the dividend), through `rdx:rax`, both saved.
fn divide(a: &mut Asm<'_>, w: bool, rem: bool, dst: Reg, src: Reg) {
    if src != x86::R11 {
        a.mov_rr(true, x86::R11, src);
    }
    a.push(x86::RAX);
    a.push(x86::RDX);
    a.mov_rr(true, x86::RAX, dst);
    a.test_rr(w, x86::R11, x86::R11);
    let to_zero = a.pos();
    a.jcc(Cond::E, 0);
    a.mov_ri(x86::RDX, 0);
    a.div_r(w, x86::R11);
    a.mov_rr(true, x86::R11, if rem { x86::RDX } else { x86::RAX });
    let to_done = a.pos();
    a.jmp(0);
    let zero = a.pos();
    if rem {
        // The dividend (32-bit: its low half, zero-extended).
        a.mov_rr(w, x86::R11, x86::RAX);
    } else {
        a.mov_ri(x86::R11, 0);
    }
    let done = a.pos();
    a.patch_branch(to_zero, x86::JCC_LEN, zero);
    a.patch_branch(to_done, x86::JMP_LEN, done);
    a.pop(x86::RDX);
    a.pop(x86::RAX);
    a.mov_rr(true, dst, x86::R11);
}

/// `BPF_END`.
fn endian(a: &mut Asm<'_>, to_be: bool, bits: u8, dst: Reg) {
    match (bits, to_be) {
        (16, true) => {
            a.rol16_8(dst);
            a.movzx16_rr(dst, dst);
        }
        (16, false) => a.movzx16_rr(dst, dst),
        (32, true) => a.bswap(false, dst),
        (32, false) => a.mov_rr(false, dst, dst),
        (64, true) => a.bswap(true, dst),
        _ => {}
    }
}
