//! The flow pass: visits the instructions in index order (every jump goes forward), each with the merge of the states that reach it, and checks what each one reads, writes and dereferences.

#![forbid(unsafe_code)]

use super::state::{Kind, Pending, State};
use super::structure::{Halves, target};
use super::{ProgInfo, Rule, VerifyError};
use crate::hook::STACK_SIZE;
use crate::hook::context::HookKind;
use crate::hook::insn::*;
use crate::hook::map::MapDef;

/// Where control goes after an instruction.
enum Next {
    /// To the next instruction.
    Fall,
    /// To the next one and to a jump target.
    Branch(usize),
    /// Only to a jump target.
    Jump(usize),
    /// Nowhere: `exit`.
    Exit,
}

struct Flow<'a> {
    prog: &'a [Insn],
    kind: HookKind,
    maps: &'a [MapDef],
    halves: &'a Halves,
    info: ProgInfo,
}

/// Runs the flow pass over a program the structural pass accepted.
pub(super) fn run(
    prog: &[Insn],
    kind: HookKind,
    maps: &[MapDef],
    halves: &Halves,
) -> Result<ProgInfo, VerifyError> {
    let mut flow = Flow {
        prog,
        kind,
        maps,
        halves,
        info: ProgInfo {
            kind,
            len: prog.len(),
            reachable: 0,
            maps_used: 0,
            helpers_used: 0,
            stack_depth: 0,
        },
    };
    let mut pending = Pending::new();
    let mut cur = Some(State::entry());
    let mut i = 0;
    let mut last = 0;
    while i < prog.len() {
        let err = |rule| VerifyError { insn: i, rule };
        if let Some(joined) = pending.take(i) {
            match &mut cur {
                Some(c) => c.merge(&joined),
                None => cur = Some(joined),
            }
        }
        let width = if prog[i].is_lddw() { 2 } else { 1 };
        if let Some(mut st) = cur.take() {
            flow.info.reachable += 1;
            last = i;
            match flow.step(i, &mut st).map_err(err)? {
                Next::Fall => cur = Some(st),
                Next::Branch(t) => {
                    pending.add(t, st.clone()).map_err(err)?;
                    cur = Some(st);
                }
                Next::Jump(t) => pending.add(t, st).map_err(err)?,
                Next::Exit => {}
            }
        }
        i += width;
    }
    if cur.is_some() {
        return Err(VerifyError {
            insn: last,
            rule: Rule::FallsOffEnd,
        });
    }
    Ok(flow.info)
}

impl Flow<'_> {
    fn step(&mut self, i: usize, st: &mut State) -> Result<Next, Rule> {
        let insn = self.prog[i];
        match insn.class() {
            BPF_ALU | BPF_ALU64 => self.alu(insn, st).map(|()| Next::Fall),
            BPF_JMP | BPF_JMP32 => self.jump(i, insn, st),
            BPF_LD => self.lddw(insn, st).map(|()| Next::Fall),
            BPF_LDX => {
                let k = self.load(insn.src, insn.off, access_size(insn.code), st)?;
                st.set(insn.dst, k);
                Ok(Next::Fall)
            }
            BPF_ST => self
                .store(insn.dst, insn.off, access_size(insn.code), Kind::Scalar, st)
                .map(|()| Next::Fall),
            _ => {
                let size = access_size(insn.code);
                let value = read(st, insn.src)?;
                if insn.code & MODE_MASK == BPF_ATOMIC {
                    // Read-modify-write: the old bytes must be there too.
                    self.load(insn.dst, insn.off, size, st)?;
                    self.store(insn.dst, insn.off, size, Kind::Scalar, st)?;
                } else {
                    self.store(insn.dst, insn.off, size, value, st)?;
                }
                Ok(Next::Fall)
            }
        }
    }

    fn alu(&mut self, insn: Insn, st: &mut State) -> Result<(), Rule> {
        let op = insn.code & OP_MASK;
        let wide = insn.class() == BPF_ALU64;
        let by_reg = insn.code & SOURCE_MASK == BPF_X && op != BPF_END;
        let src = if by_reg {
            read(st, insn.src)?
        } else {
            Kind::Scalar
        };
        if op == BPF_MOV {
            let k = match src {
                k if wide => k,
                Kind::Mixed => Kind::Mixed,
                Kind::Scalar => Kind::Scalar,
                _ => return Err(pointer_rule(insn.src, src)),
            };
            st.set(insn.dst, k);
            return Ok(());
        }
        let dst = read(st, insn.dst)?;
        let k = match dst {
            Kind::Stack(_) | Kind::Ctx(_) => {
                let add = match op {
                    BPF_ADD => i64::from(insn.imm),
                    BPF_SUB => -i64::from(insn.imm),
                    _ => return Err(Rule::PointerArithmetic { reg: insn.dst }),
                };
                if by_reg || !wide {
                    return Err(Rule::PointerArithmetic { reg: insn.dst });
                }
                self.moved(insn.dst, dst, add)?
            }
            Kind::Map(_) | Kind::MaybeNull(_) => return Err(pointer_rule(insn.dst, dst)),
            Kind::Scalar | Kind::Mixed | Kind::Uninit => match src {
                Kind::Scalar if dst == Kind::Scalar => Kind::Scalar,
                Kind::Scalar | Kind::Mixed => Kind::Mixed,
                _ => return Err(pointer_rule(insn.src, src)),
            },
        };
        st.set(insn.dst, k);
        Ok(())
    }

    /// A stack or context pointer moved by `add`, still inside its region.
    fn moved(&self, reg: u8, k: Kind, add: i64) -> Result<Kind, Rule> {
        let (off, lo, hi) = match k {
            Kind::Stack(o) => (i64::from(o) + add, -(STACK_SIZE as i64), 0),
            Kind::Ctx(o) => (i64::from(o) + add, 0, self.kind.context_size() as i64),
            _ => return Err(Rule::PointerArithmetic { reg }),
        };
        if off < lo || off > hi {
            return Err(Rule::PointerOffset { reg, off });
        }
        let off16 = off as i16;
        Ok(match k {
            Kind::Stack(_) => Kind::Stack(off16),
            _ => Kind::Ctx(off16),
        })
    }

    fn jump(&mut self, i: usize, insn: Insn, st: &mut State) -> Result<Next, Rule> {
        let op = insn.code & OP_MASK;
        match op {
            BPF_EXIT => {
                if st.reg(0) == Kind::Uninit {
                    return Err(Rule::R0NotSet);
                }
                Ok(Next::Exit)
            }
            BPF_CALL => self.call(i, insn.imm as u32, st).map(|()| Next::Fall),
            BPF_JA => Ok(Next::Jump(target(self.prog, i, self.halves)?)),
            _ => {
                let dst = read(st, insn.dst)?;
                if insn.code & SOURCE_MASK == BPF_X {
                    read(st, insn.src)?;
                }
                let null_test = insn.class() == BPF_JMP
                    && insn.code & SOURCE_MASK == BPF_K
                    && insn.imm == 0
                    && matches!(op, BPF_JEQ | BPF_JNE);
                if let (true, Kind::MaybeNull(id)) = (null_test, dst) {
                    st.null_checked(id);
                }
                Ok(Next::Branch(target(self.prog, i, self.halves)?))
            }
        }
    }

    fn lddw(&mut self, insn: Insn, st: &mut State) -> Result<(), Rule> {
        let k = if insn.src == BPF_PSEUDO_MAP_FD {
            let index = insn.imm as u32;
            self.info.maps_used |= 1u32.checked_shl(index).unwrap_or(0);
            Kind::Map(index as u8)
        } else {
            Kind::Scalar
        };
        st.set(insn.dst, k);
        Ok(())
    }

    fn call(&mut self, i: usize, id: u32, st: &mut State) -> Result<(), Rule> {
        self.info.helpers_used |= 1u32.checked_shl(id).unwrap_or(0);
        let r0 = match id {
            BPF_FUNC_MAP_LOOKUP_ELEM | BPF_FUNC_MAP_DELETE_ELEM | BPF_FUNC_MAP_UPDATE_ELEM => {
                let def = self.map_arg(st)?;
                self.mem_arg(st, 2, def.key_size, "a pointer to the key")?;
                if id == BPF_FUNC_MAP_UPDATE_ELEM {
                    self.mem_arg(st, 3, def.value_size, "a pointer to the value")?;
                    read(st, 4)?;
                }
                if id == BPF_FUNC_MAP_LOOKUP_ELEM {
                    Kind::MaybeNull(i as u16)
                } else {
                    Kind::Scalar
                }
            }
            BPF_FUNC_REDIRECT => {
                read(st, 1)?;
                read(st, 2)?;
                Kind::Scalar
            }
            _ => Kind::Scalar,
        };
        for r in 1..=5 {
            st.set(r, Kind::Uninit);
        }
        st.set(0, r0);
        Ok(())
    }

    fn map_arg(&self, st: &State) -> Result<MapDef, Rule> {
        match read(st, 1)? {
            Kind::Map(m) => self
                .maps
                .get(usize::from(m))
                .copied()
                .ok_or(Rule::NotMapHandle),
            _ => Err(Rule::NotMapHandle),
        }
    }

    /// A helper's pointer argument in `reg` to `size` bytes it reads.
    fn mem_arg(&mut self, st: &State, reg: u8, size: u32, what: &'static str) -> Result<(), Rule> {
        match read(st, reg)? {
            Kind::Stack(o) => {
                self.stack_read(i64::from(o), 0, size as usize, st)?;
                Ok(())
            }
            Kind::Scalar => Ok(()),
            k @ (Kind::MaybeNull(_) | Kind::Mixed) => Err(pointer_rule(reg, k)),
            _ => Err(Rule::HelperArg { reg, what }),
        }
    }

    /// The stack range `base + off .. + size`, inside the stack.
    fn stack_range(&mut self, base: i64, off: i16, size: usize) -> Result<i64, Rule> {
        let at = base + i64::from(off);
        if at < -(STACK_SIZE as i64) || at + size as i64 > 0 {
            return Err(Rule::StackOutOfRange { off: at, size });
        }
        self.info.stack_depth = self.info.stack_depth.max(at.unsigned_abs() as usize);
        Ok(at)
    }

    fn stack_read(&mut self, base: i64, off: i16, size: usize, st: &State) -> Result<Kind, Rule> {
        let at = self.stack_range(base, off, size)?;
        if let Some(off) = st.first_uninit(at, size) {
            return Err(Rule::UninitStack { off });
        }
        Ok(st.read(at, size))
    }

    /// The kind a load of `size` bytes at `base + off` gives.
    fn load(&mut self, base: u8, off: i16, size: usize, st: &State) -> Result<Kind, Rule> {
        match read(st, base)? {
            Kind::Stack(o) => self.stack_read(i64::from(o), off, size, st),
            Kind::Ctx(o) => {
                let at = i64::from(o) + i64::from(off);
                match self.kind.field_at(at, size) {
                    Some(_) => Ok(Kind::Scalar),
                    None => Err(Rule::ContextField { off: at, size }),
                }
            }
            Kind::Scalar => Ok(Kind::Scalar),
            k => Err(pointer_rule(base, k)),
        }
    }

    /// A store of `size` bytes of kind `value` at `base + off`.
    fn store(
        &mut self,
        base: u8,
        off: i16,
        size: usize,
        value: Kind,
        st: &mut State,
    ) -> Result<(), Rule> {
        match read(st, base)? {
            Kind::Stack(o) => {
                let at = self.stack_range(i64::from(o), off, size)?;
                st.write(at, size, value);
                Ok(())
            }
            Kind::Ctx(_) => Err(Rule::ContextWrite),
            Kind::Scalar => Ok(()),
            k => Err(pointer_rule(base, k)),
        }
    }
}

/// Register `r`'s kind, which must be initialised.
fn read(st: &State, r: u8) -> Result<Kind, Rule> {
    match st.reg(r) {
        Kind::Uninit => Err(Rule::UninitRegister { reg: r }),
        k => Ok(k),
    }
}

/// The rule a value of kind `k` in `reg` breaks where only scalars (or
/// plain pointers) may go.
fn pointer_rule(reg: u8, k: Kind) -> Rule {
    match k {
        Kind::Map(_) => Rule::MapHandleUse { reg },
        Kind::MaybeNull(_) => Rule::MaybeNull { reg },
        Kind::Mixed => Rule::MixedKinds { reg },
        Kind::Uninit => Rule::UninitRegister { reg },
        _ => Rule::PointerArithmetic { reg },
    }
}
