//! Tests of the emulator: snippets assembled with iced's `CodeAssembler`, checked against Rust's own arithmetic.

use std::sync::OnceLock;

use iced_x86::code_asm::*;
use iced_x86::{Code, IcedError, Instruction, Register};
use proptest::prelude::*;

use super::*;

/// Where the test code is loaded.
const BASE: u64 = 0x40_0000;
/// The test bus's memory: `MEM_SIZE` bytes at `MEM`, the last
/// `READ_ONLY` of them read-only.
const MEM: u64 = 0x10_0000;
const MEM_SIZE: usize = 0x1000;
const READ_ONLY: usize = 0x100;
/// The one function the test bus plays: returns `rdi + rsi`.
const HELPER: u64 = 0x50_0000;

type Asm = CodeAssembler;

/// Memory and a helper; records the helper's arguments.
struct TestBus {
    mem: Vec<u8>,
    calls: Vec<[u64; 6]>,
}

impl TestBus {
    fn new() -> Self {
        TestBus {
            mem: vec![0; MEM_SIZE],
            calls: Vec::new(),
        }
    }

    fn offset(addr: u64, size: usize) -> Result<usize, ()> {
        let off = addr.checked_sub(MEM).ok_or(())? as usize;
        if off + size <= MEM_SIZE {
            Ok(off)
        } else {
            Err(())
        }
    }

    fn u64_at(&self, off: usize) -> u64 {
        u64::from_le_bytes(self.mem[off..off + 8].try_into().unwrap())
    }
}

impl Bus for TestBus {
    fn read(&mut self, addr: u64, size: usize) -> Result<u64, ()> {
        let off = Self::offset(addr, size)?;
        let mut bytes = [0u8; 8];
        bytes[..size].copy_from_slice(&self.mem[off..off + size]);
        Ok(u64::from_le_bytes(bytes))
    }

    fn write(&mut self, addr: u64, size: usize, value: u64) -> Result<(), ()> {
        let off = Self::offset(addr, size)?;
        if off + size > MEM_SIZE - READ_ONLY {
            return Err(());
        }
        self.mem[off..off + size].copy_from_slice(&value.to_le_bytes()[..size]);
        Ok(())
    }

    fn call_out(&mut self, target: u64, cpu: &mut Cpu) -> bool {
        if target != HELPER {
            return false;
        }
        let r = &cpu.regs;
        self.calls
            .push([r[RDI], r[RSI], r[RDX], r[RCX], r[R8], r[R9]]);
        cpu.regs[RAX] = r[RDI].wrapping_add(r[RSI]);
        true
    }
}

/// Assembles a snippet at [`BASE`].
fn asm(f: impl FnOnce(&mut Asm) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    f(&mut a).unwrap();
    a.assemble(BASE).unwrap()
}

/// Runs `code` from its start with a generous step limit.
fn exec(code: &[u8], cpu: &mut Cpu, bus: &mut TestBus) -> Result<u64, EmuError> {
    run(code, BASE, 0, cpu, bus, 10_000)
}

/// A CPU with `rdi` and `rsi` set (the first two arguments).
fn args(a: u64, b: u64) -> Cpu {
    let mut cpu = Cpu::new();
    cpu.regs[RDI] = a;
    cpu.regs[RSI] = b;
    cpu
}

/// Adds one instruction by its code (for forms the assembler does not pick).
fn raw(a: &mut Asm, ins: Result<Instruction, IcedError>) -> Result<(), IcedError> {
    a.add_instruction(ins?)
}

/// The flags a result leaves, with CF and OF given.
fn flags_of(result: u64, bits: u32, cf: bool, of: bool) -> Flags {
    Flags {
        cf: Some(cf),
        zf: Some(result == 0),
        sf: Some(result >> (bits - 1) & 1 == 1),
        of: Some(of),
        pf: Some((result as u8).count_ones().is_multiple_of(2)),
    }
}

#[test]
fn moves_and_zero_extension() {
    let code = asm(|a| {
        a.mov(rax, -1i64)?;
        a.mov(eax, 5u32)?; // 32-bit write: upper half zeroed
        a.mov(rcx, u64::MAX)?;
        a.mov(cl, 0x12u32)?; // 8-bit write: the rest kept
        a.mov(rdx, u64::MAX)?;
        a.mov(dx, 0x1234u32)?;
        a.mov(r8, 0x7fff_0000_0000_1111u64)?;
        a.mov(ah, 0x7fu32)?; // rax = 0x7f05
        raw(
            a,
            Instruction::with2(Code::Mov_rm64_imm32, Register::R9, -2i32),
        )?;
        a.mov(r10d, r8d)?;
        a.lea(r11, qword_ptr(rdi + rsi * 4 + 8))?;
        a.lea(esi, ptr(rdi - 1))?; // rdi = 0: the 32-bit lea wraps and zero-extends
        a.movzx(edi, cl)?;
        a.ret()
    });
    let mut cpu = args(0, 3);
    let mut bus = TestBus::new();
    assert_eq!(exec(&code, &mut cpu, &mut bus), Ok(14));
    assert_eq!(cpu.regs[RAX], 0x7f05);
    assert_eq!(cpu.regs[RCX], 0xffff_ffff_ffff_ff12);
    assert_eq!(cpu.regs[RDX], 0xffff_ffff_ffff_1234);
    assert_eq!(cpu.regs[R9], (-2i64) as u64);
    assert_eq!(cpu.regs[R10], 0x1111);
    assert_eq!(cpu.regs[R11], 20);
    assert_eq!(cpu.regs[RSI], 0xffff_ffff);
    assert_eq!(cpu.regs[RDI], 0x12);
    // Nothing above wrote flags.
    assert_eq!(cpu.flags, Flags::UNDEFINED);
}

#[test]
fn thirty_two_bit_arithmetic_zero_extends() {
    let code = asm(|a| {
        a.add(edi, esi)?;
        a.sub(edx, 1)?;
        a.xor(ecx, ecx)?;
        a.neg(r8d)?;
        a.imul_2(r9d, r9d)?;
        a.imul_3(r10, r10, -3)?;
        a.ret()
    });
    let mut cpu = args(0xffff_ffff_0000_0001, 0xffff_ffff);
    cpu.regs[RDX] = 0xaaaa_aaaa_0000_0000;
    cpu.regs[RCX] = u64::MAX;
    cpu.regs[R8] = 0x1_0000_0001;
    cpu.regs[R9] = 0x1_0001_0001;
    cpu.regs[R10] = 7;
    exec(&code, &mut cpu, &mut TestBus::new()).unwrap();
    assert_eq!(cpu.regs[RDI], 0);
    assert_eq!(cpu.regs[RDX], 0xffff_ffff);
    assert_eq!(cpu.regs[RCX], 0);
    assert_eq!(cpu.regs[R8], 0xffff_ffff);
    assert_eq!(cpu.regs[R9], 0x0002_0001);
    assert_eq!(cpu.regs[R10], (-21i64) as u64);
}

/// The ALU operations checked against Rust, by name, 64- and 32-bit:
/// `op rdi, rsi; ret`.
fn alu_programs() -> &'static Vec<(&'static str, bool, Vec<u8>)> {
    static PROGRAMS: OnceLock<Vec<(&'static str, bool, Vec<u8>)>> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        let mut out = Vec::new();
        for wide in [true, false] {
            for name in [
                "add", "sub", "and", "or", "xor", "cmp", "test", "neg", "inc", "dec",
            ] {
                let code = asm(|a| {
                    let (d, s) = (rdi, rsi);
                    let (d32, s32) = (edi, esi);
                    match (name, wide) {
                        ("add", true) => a.add(d, s)?,
                        ("add", false) => a.add(d32, s32)?,
                        ("sub", true) => a.sub(d, s)?,
                        ("sub", false) => a.sub(d32, s32)?,
                        ("and", true) => a.and(d, s)?,
                        ("and", false) => a.and(d32, s32)?,
                        ("or", true) => a.or(d, s)?,
                        ("or", false) => a.or(d32, s32)?,
                        ("xor", true) => a.xor(d, s)?,
                        ("xor", false) => a.xor(d32, s32)?,
                        ("cmp", true) => a.cmp(d, s)?,
                        ("cmp", false) => a.cmp(d32, s32)?,
                        ("test", true) => a.test(d, s)?,
                        ("test", false) => a.test(d32, s32)?,
                        ("neg", true) => a.neg(d)?,
                        ("neg", false) => a.neg(d32)?,
                        ("inc", true) => a.inc(d)?,
                        ("inc", false) => a.inc(d32)?,
                        ("dec", true) => a.dec(d)?,
                        _ => a.dec(d32)?,
                    }
                    a.ret()
                });
                out.push((name, wide, code));
            }
        }
        out
    })
}

/// The result (`rdi` after) and flags of an ALU operation, computed with
/// Rust's own arithmetic. `cf_before` is what inc/dec keep.
fn alu_model(name: &str, wide: bool, a: u64, b: u64, cf_before: Option<bool>) -> (u64, Flags) {
    macro_rules! model {
        ($u:ty, $i:ty) => {{
            let (x, y) = (a as $u, b as $u);
            let (r, cf, of) = match name {
                "add" => {
                    let (r, c) = x.overflowing_add(y);
                    (r, c, (x as $i).overflowing_add(y as $i).1)
                }
                "sub" | "cmp" => {
                    let (r, c) = x.overflowing_sub(y);
                    (r, c, (x as $i).overflowing_sub(y as $i).1)
                }
                "and" | "test" => (x & y, false, false),
                "or" => (x | y, false, false),
                "xor" => (x ^ y, false, false),
                "neg" => (x.wrapping_neg(), x != 0, (x as $i).overflowing_neg().1),
                "inc" => (x.wrapping_add(1), false, (x as $i).overflowing_add(1).1),
                _ => (x.wrapping_sub(1), false, (x as $i).overflowing_sub(1).1),
            };
            let mut flags = flags_of(r as u64, <$u>::BITS, cf, of);
            if matches!(name, "inc" | "dec") {
                flags.cf = cf_before;
            }
            let written = if matches!(name, "cmp" | "test") {
                a
            } else {
                r as u64
            };
            (written, flags)
        }};
    }
    if wide {
        model!(u64, i64)
    } else {
        model!(u32, i32)
    }
}

fn check_alu(a: u64, b: u64) {
    for (name, wide, code) in alu_programs() {
        for cf_before in [None, Some(true)] {
            let mut cpu = args(a, b);
            cpu.flags.cf = cf_before;
            exec(code, &mut cpu, &mut TestBus::new()).unwrap();
            let (result, flags) = alu_model(name, *wide, a, b, cf_before);
            let what = format!("{name} wide={wide} {a:#x} {b:#x}");
            assert_eq!(cpu.regs[RDI], result, "{what}");
            assert_eq!(cpu.flags, flags, "{what}");
            assert_eq!(cpu.regs[RSI], b, "{what}");
        }
    }
}

/// Values where flags change: zero, signs, carries, 32-bit edges.
const EDGES: [u64; 12] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    i64::MAX as u64,
    i64::MIN as u64,
    u64::MAX,
];

#[test]
fn alu_flags_on_edges() {
    for a in EDGES {
        for b in EDGES {
            check_alu(a, b);
        }
    }
}

/// One program per condition: `cmp rdi, rsi` (or the 32-bit form);
/// `jcc` to `mov eax, 1`, else `eax = 0`. With what Rust says it should do.
type Cond = (
    &'static str,
    fn(&mut Asm, CodeLabel) -> Result<(), IcedError>,
);

const CONDITIONS: [Cond; 16] = [
    ("o", |a, l| a.jo(l)),
    ("no", |a, l| a.jno(l)),
    ("b", |a, l| a.jb(l)),
    ("ae", |a, l| a.jae(l)),
    ("e", |a, l| a.je(l)),
    ("ne", |a, l| a.jne(l)),
    ("be", |a, l| a.jbe(l)),
    ("a", |a, l| a.ja(l)),
    ("s", |a, l| a.js(l)),
    ("ns", |a, l| a.jns(l)),
    ("p", |a, l| a.jp(l)),
    ("np", |a, l| a.jnp(l)),
    ("l", |a, l| a.jl(l)),
    ("ge", |a, l| a.jge(l)),
    ("le", |a, l| a.jle(l)),
    ("g", |a, l| a.jg(l)),
];

fn jcc_programs() -> &'static Vec<(&'static str, bool, Vec<u8>)> {
    static PROGRAMS: OnceLock<Vec<(&'static str, bool, Vec<u8>)>> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        let mut out = Vec::new();
        for wide in [true, false] {
            for (name, jcc) in CONDITIONS {
                let code = asm(|a| {
                    let mut taken = a.create_label();
                    if wide {
                        a.cmp(rdi, rsi)?
                    } else {
                        a.cmp(edi, esi)?
                    }
                    jcc(a, taken)?;
                    a.xor(eax, eax)?;
                    a.ret()?;
                    a.set_label(&mut taken)?;
                    a.mov(eax, 1u32)?;
                    a.ret()
                });
                out.push((name, wide, code));
            }
        }
        out
    })
}

/// Whether condition `name` holds after `cmp a, b`, by Rust comparisons.
fn jcc_model(name: &str, wide: bool, a: u64, b: u64) -> bool {
    let (ua, ub, sa, sb, diff, overflow) = if wide {
        let (sa, sb) = (a as i64, b as i64);
        (
            a,
            b,
            sa,
            sb,
            a.wrapping_sub(b),
            sa.checked_sub(sb).is_none(),
        )
    } else {
        let (ua, ub) = (a as u32, b as u32);
        let (sa, sb) = (ua as i32, ub as i32);
        let diff = ua.wrapping_sub(ub) as i32 as i64 as u64;
        (
            u64::from(ua),
            u64::from(ub),
            i64::from(sa),
            i64::from(sb),
            diff,
            sa.checked_sub(sb).is_none(),
        )
    };
    let negative = (diff as i64) < 0;
    let parity = (diff as u8).count_ones().is_multiple_of(2);
    match name {
        "o" => overflow,
        "no" => !overflow,
        "b" => ua < ub,
        "ae" => ua >= ub,
        "e" => ua == ub,
        "ne" => ua != ub,
        "be" => ua <= ub,
        "a" => ua > ub,
        "s" => negative,
        "ns" => !negative,
        "p" => parity,
        "np" => !parity,
        "l" => sa < sb,
        "ge" => sa >= sb,
        "le" => sa <= sb,
        "g" => sa > sb,
        _ => unreachable!(),
    }
}

fn check_jcc(a: u64, b: u64) {
    for (name, wide, code) in jcc_programs() {
        let mut cpu = args(a, b);
        let steps = exec(code, &mut cpu, &mut TestBus::new()).unwrap();
        let expected = jcc_model(name, *wide, a, b);
        assert_eq!(
            cpu.regs[RAX],
            u64::from(expected),
            "j{name} wide={wide} {a:#x} {b:#x}"
        );
        assert_eq!(steps, 4);
    }
}

#[test]
fn jcc_on_edges() {
    for a in EDGES {
        for b in EDGES {
            check_jcc(a, b);
        }
    }
}

#[test]
fn setcc_and_cmov() {
    let code = asm(|a| {
        a.cmp(rdi, rsi)?;
        a.setl(al)?;
        a.setb(cl)?;
        a.mov(rdx, u64::MAX)?;
        a.cmovb(edx, esi)?; // not taken, but the 32-bit cmov still zero-extends
        a.cmovl(r8, rsi)?; // taken
        a.ret()
    });
    let mut cpu = args(u64::MAX, 1); // -1 < 1 signed, above unsigned
    cpu.regs[RAX] = 0xff00;
    exec(&code, &mut cpu, &mut TestBus::new()).unwrap();
    assert_eq!(cpu.regs[RAX], 0xff01);
    assert_eq!(cpu.regs[RCX], 0);
    assert_eq!(cpu.regs[RDX], 0xffff_ffff);
    assert_eq!(cpu.regs[R8], 1);
}

#[test]
fn memory_through_the_bus() {
    let code = asm(|a| {
        a.mov(rax, 0x1122_3344_5566_7788u64)?;
        a.mov(qword_ptr(r12), rax)?;
        a.mov(dword_ptr(r12 + 8), eax)?;
        a.mov(word_ptr(r12 + 0x10), ax)?;
        a.mov(byte_ptr(r12 + 0x18), al)?;
        a.mov(qword_ptr(r12 + 0x20), -2)?;
        a.mov(dword_ptr(r12 + 0x28), 0x8000_0000u32)?;
        a.mov(word_ptr(r12 + 0x30), 0xbeefu32)?;
        a.mov(byte_ptr(r12 + 0x38), 0x7fu32)?;
        a.add(qword_ptr(r12 + 0x40), 3)?;
        a.add(dword_ptr(r12 + 0x44), 0x1234_5678)?;
        a.lock().add(qword_ptr(r12 + 0x48), rax)?;
        a.lock().add(dword_ptr(r12 + 0x50), eax)?;
        a.sub(qword_ptr(r12 + r10 * 8 + 0x58), 1)?; // r10 = 1: [MEM+0x60]
        a.movzx(ecx, byte_ptr(r12 + 0x18))?;
        a.movzx(rdx, word_ptr(r12 + 0x30))?;
        a.mov(esi, dword_ptr(r12 + 8))?;
        a.movsxd(rdi, dword_ptr(r12 + 0x28))?;
        a.movsx(r8, byte_ptr(r12 + 0x20))?;
        a.mov(r9, qword_ptr(r12 + 0x40))?;
        a.cmp(r11, qword_ptr(r12 + 0x80))?;
        a.sete(al)?;
        a.ret()
    });
    let mut bus = TestBus::new();
    bus.mem[0x80..0x88].copy_from_slice(&77u64.to_le_bytes());
    bus.mem[0x48..0x50].copy_from_slice(&1u64.to_le_bytes());
    let mut cpu = Cpu::new();
    cpu.regs[R12] = MEM;
    cpu.regs[R10] = 1;
    cpu.regs[R11] = 77;
    exec(&code, &mut cpu, &mut bus).unwrap();
    assert_eq!(bus.u64_at(0), 0x1122_3344_5566_7788);
    assert_eq!(bus.u64_at(8), 0x5566_7788);
    assert_eq!(bus.u64_at(0x10), 0x7788);
    assert_eq!(bus.u64_at(0x18), 0x88);
    assert_eq!(bus.u64_at(0x20), (-2i64) as u64);
    assert_eq!(bus.u64_at(0x28), 0x8000_0000);
    assert_eq!(bus.u64_at(0x30), 0xbeef);
    assert_eq!(bus.u64_at(0x38), 0x7f);
    assert_eq!(bus.u64_at(0x40), 0x1234_5678_0000_0003);
    assert_eq!(bus.u64_at(0x48), 0x1122_3344_5566_7789);
    assert_eq!(bus.u64_at(0x50), 0x5566_7788);
    assert_eq!(bus.u64_at(0x60), u64::MAX);
    assert_eq!(cpu.regs[RCX], 0x88);
    assert_eq!(cpu.regs[RDX], 0xbeef);
    assert_eq!(cpu.regs[RSI], 0x5566_7788);
    assert_eq!(cpu.regs[RDI], 0xffff_ffff_8000_0000);
    assert_eq!(cpu.regs[R8], (-2i64) as u64);
    assert_eq!(cpu.regs[R9], 0x1234_5678_0000_0003);
    assert_eq!(cpu.regs[RAX] & 0xff, 1);
}

#[test]
fn bad_memory_is_an_error() {
    let load = asm(|a| {
        a.mov(rax, qword_ptr(rdi + 4))?;
        a.ret()
    });
    let store = asm(|a| {
        a.nop()?;
        a.mov(dword_ptr(rdi), esi)?;
        a.ret()
    });
    let mut bus = TestBus::new();
    let unmapped = 0xdead_0000;
    assert_eq!(
        exec(&load, &mut args(unmapped, 0), &mut bus),
        Err(EmuError::Memory {
            rip: BASE,
            addr: unmapped + 4,
            size: 8,
            write: false
        })
    );
    // Straddling the end of the bus's memory.
    let end = MEM + MEM_SIZE as u64;
    assert_eq!(
        exec(&load, &mut args(end - 8, 0), &mut bus),
        Err(EmuError::Memory {
            rip: BASE,
            addr: end - 4,
            size: 8,
            write: false
        })
    );
    // Read-only memory reads but does not write.
    let ro = end - 16;
    assert!(exec(&load, &mut args(ro, 0), &mut bus).is_ok());
    assert_eq!(
        exec(&store, &mut args(ro, 0), &mut bus),
        Err(EmuError::Memory {
            rip: BASE + 1,
            addr: ro,
            size: 4,
            write: true
        })
    );
    // Straddling the top of the stack.
    assert!(matches!(
        exec(&load, &mut args(STACK_TOP - 8, 0), &mut bus),
        Err(EmuError::Memory { addr, .. }) if addr == STACK_TOP - 4
    ));
    // A segment override is not plain memory.
    let segment = asm(|a| {
        a.mov(rax, qword_ptr(rdi).fs())?;
        a.ret()
    });
    assert!(matches!(
        exec(&segment, &mut args(MEM, 0), &mut bus),
        Err(EmuError::Unsupported { rip: BASE, .. })
    ));
}

#[test]
fn the_stack() {
    let code = asm(|a| {
        a.mov(r8, rsp)?;
        a.mov(r9, qword_ptr(rsp))?; // the sentinel
        a.push(rbp)?;
        a.mov(rbp, rsp)?;
        a.sub(rsp, 16)?;
        a.mov(qword_ptr(rbp - 8), rdi)?;
        a.mov(dword_ptr(rsp), esi)?;
        a.push(-5)?;
        a.push(qword_ptr(rbp - 8))?;
        a.pop(rcx)?;
        a.pop(rdx)?;
        a.mov(rax, qword_ptr(rbp - 8))?;
        a.add(eax, dword_ptr(rsp))?;
        a.mov(rsp, rbp)?;
        a.pop(rbp)?;
        a.ret()
    });
    let mut cpu = args(40, 2);
    cpu.regs[RBP] = 0x1234;
    exec(&code, &mut cpu, &mut TestBus::new()).unwrap();
    assert_eq!(cpu.regs[R8], STACK_TOP - 8);
    assert_eq!(cpu.regs[R9], RETURN_SENTINEL);
    assert_eq!(cpu.regs[RCX], 40);
    assert_eq!(cpu.regs[RDX], (-5i64) as u64);
    assert_eq!(cpu.regs[RAX], 42);
    assert_eq!(cpu.regs[RBP], 0x1234);
    assert_eq!(cpu.regs[RSP], STACK_TOP);

    // No red zone: the stack below rsp is not the code's.
    let below = asm(|a| {
        a.mov(qword_ptr(rsp - 8), rdi)?;
        a.ret()
    });
    assert_eq!(
        exec(&below, &mut Cpu::new(), &mut TestBus::new()),
        Err(EmuError::Memory {
            rip: BASE,
            addr: STACK_TOP - 16,
            size: 8,
            write: true
        })
    );
    // The final ret must leave rsp where the call did.
    let unbalanced = asm(|a| a.ret_1(8));
    assert_eq!(
        exec(&unbalanced, &mut Cpu::new(), &mut TestBus::new()),
        Err(EmuError::CalleeSaved {
            rip: BASE,
            reg: RSP
        })
    );

    // Pushing forever runs off the bottom of the stack.
    let forever = asm(|a| {
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.push(rax)?;
        a.jmp(top)
    });
    let bottom = STACK_TOP - STACK_SIZE as u64;
    assert_eq!(
        run(
            &forever,
            BASE,
            0,
            &mut Cpu::new(),
            &mut TestBus::new(),
            100_000
        ),
        Err(EmuError::Memory {
            rip: BASE,
            addr: bottom - 8,
            size: 8,
            write: true
        })
    );
}

#[test]
fn internal_call_and_xchg() {
    let code = asm(|a| {
        let mut func = a.create_label();
        a.call(func)?;
        a.xchg(rax, rdi)?;
        a.ret()?;
        a.set_label(&mut func)?;
        a.lea(rax, qword_ptr(rdi + rsi))?;
        a.ret()
    });
    let mut cpu = args(5, 6);
    assert_eq!(exec(&code, &mut cpu, &mut TestBus::new()), Ok(5));
    assert_eq!(cpu.regs[RAX], 5);
    assert_eq!(cpu.regs[RDI], 11);
}

#[test]
fn atomics_on_memory() {
    let code = asm(|a| {
        a.lock().xadd(qword_ptr(rdi), rsi)?; // rsi = old, [rdi] += 10
        a.mov(eax, 99u32)?;
        a.lock().cmpxchg(dword_ptr(rdi + 8), ecx)?; // [rdi+8] == 99: replaced by ecx
        a.mov(eax, 1u32)?;
        a.lock().cmpxchg(qword_ptr(rdi + 16), rcx)?; // [rdi+16] = 4 != 1: rax = 4
        a.xchg(qword_ptr(rdi + 24), rdx)?;
        a.ret()
    });
    let mut bus = TestBus::new();
    bus.mem[0..8].copy_from_slice(&5u64.to_le_bytes());
    bus.mem[8..16].copy_from_slice(&99u64.to_le_bytes());
    bus.mem[16..24].copy_from_slice(&4u64.to_le_bytes());
    bus.mem[24..32].copy_from_slice(&8u64.to_le_bytes());
    let mut cpu = args(MEM, 10);
    cpu.regs[RCX] = 0x55;
    cpu.regs[RDX] = 0x66;
    exec(&code, &mut cpu, &mut bus).unwrap();
    assert_eq!(bus.u64_at(0), 15);
    assert_eq!(cpu.regs[RSI], 5);
    assert_eq!(bus.u64_at(8), 0x55);
    assert_eq!(bus.u64_at(16), 4);
    assert_eq!(cpu.regs[RAX], 4);
    assert_eq!(cpu.flags.zf, Some(false));
    assert_eq!(bus.u64_at(24), 0x66);
    assert_eq!(cpu.regs[RDX], 8);
}

#[test]
fn division() {
    let div64 = asm(|a| {
        a.div(rcx)?;
        a.ret()
    });
    let div32 = asm(|a| {
        a.div(ecx)?;
        a.ret()
    });
    let idiv64 = asm(|a| {
        a.mov(rax, rdi)?;
        a.cqo()?;
        a.idiv(qword_ptr(rsi))?;
        a.ret()
    });
    let run_div = |code: &[u8], low: u64, high: u64, divisor: u64| {
        let mut cpu = Cpu::new();
        (cpu.regs[RAX], cpu.regs[RDX], cpu.regs[RCX]) = (low, high, divisor);
        exec(code, &mut cpu, &mut TestBus::new()).map(|_| (cpu.regs[RAX], cpu.regs[RDX], cpu.flags))
    };
    assert_eq!(run_div(&div64, 100, 0, 7), Ok((14, 2, Flags::UNDEFINED)));
    assert_eq!(run_div(&div64, 0, 1, 2), Ok((1 << 63, 0, Flags::UNDEFINED)));
    assert_eq!(
        run_div(&div64, 5, 0, 0),
        Err(EmuError::Divide { rip: BASE })
    );
    assert_eq!(
        run_div(&div64, 0, 2, 2),
        Err(EmuError::Divide { rip: BASE })
    );
    // The 32-bit form ignores the upper halves and zero-extends both results.
    assert_eq!(
        run_div(&div32, 0xffff_0000_0000_0064, 0xffff_0000_0000_0000, 7).map(|r| (r.0, r.1)),
        Ok((14, 2))
    );
    assert_eq!(
        run_div(&div32, 0, 7, 7),
        Err(EmuError::Divide { rip: BASE })
    );

    let run_idiv = |a: i64, b: i64| {
        let mut bus = TestBus::new();
        bus.mem[0..8].copy_from_slice(&b.to_le_bytes());
        let mut cpu = args(a as u64, MEM);
        exec(&idiv64, &mut cpu, &mut bus).map(|_| (cpu.regs[RAX] as i64, cpu.regs[RDX] as i64))
    };
    assert_eq!(run_idiv(-7, 2), Ok((-3, -1)));
    assert_eq!(run_idiv(7, -2), Ok((-3, 1)));
    assert_eq!(
        run_idiv(i64::MIN, -1),
        Err(EmuError::Divide { rip: BASE + 5 })
    );
    assert_eq!(run_idiv(1, 0), Err(EmuError::Divide { rip: BASE + 5 }));
}

#[test]
fn multiplication() {
    let code = asm(|a| {
        a.mov(rax, rdi)?;
        a.mul(rsi)?; // rdx:rax
        a.mov(r8, rdi)?;
        a.imul_2(r8, rsi)?;
        a.ret()
    });
    let mut cpu = args(u64::MAX, 3);
    exec(&code, &mut cpu, &mut TestBus::new()).unwrap();
    assert_eq!((cpu.regs[RAX], cpu.regs[RDX]), (u64::MAX - 2, 2));
    assert_eq!(cpu.regs[R8], (-3i64) as u64);
    assert_eq!(cpu.flags, Flags::UNDEFINED);
}

/// Shifts by `cl` (64- and 32-bit): `mov ecx, esi; op rdi, cl; ret`.
fn shift_programs() -> &'static Vec<(&'static str, bool, Vec<u8>)> {
    static PROGRAMS: OnceLock<Vec<(&'static str, bool, Vec<u8>)>> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        let mut out = Vec::new();
        for wide in [true, false] {
            for name in ["shl", "shr", "sar", "rol", "ror"] {
                let code = asm(|a| {
                    a.mov(ecx, esi)?;
                    match (name, wide) {
                        ("shl", true) => a.shl(rdi, cl)?,
                        ("shl", false) => a.shl(edi, cl)?,
                        ("shr", true) => a.shr(rdi, cl)?,
                        ("shr", false) => a.shr(edi, cl)?,
                        ("sar", true) => a.sar(rdi, cl)?,
                        ("sar", false) => a.sar(edi, cl)?,
                        ("rol", true) => a.rol(rdi, cl)?,
                        ("rol", false) => a.rol(edi, cl)?,
                        ("ror", true) => a.ror(rdi, cl)?,
                        _ => a.ror(edi, cl)?,
                    }
                    a.ret()
                });
                out.push((name, wide, code));
            }
        }
        out
    })
}

fn check_shifts(v: u64, count: u8) {
    for (name, wide, code) in shift_programs() {
        let mut cpu = args(v, u64::from(count));
        exec(code, &mut cpu, &mut TestBus::new()).unwrap();
        // Rust's wrapping shifts mask the count like the hardware.
        let c = u32::from(count);
        let expected = match (*name, wide) {
            ("shl", true) => v.wrapping_shl(c),
            ("shr", true) => v.wrapping_shr(c),
            ("sar", true) => (v as i64).wrapping_shr(c) as u64,
            ("rol", true) => v.rotate_left(c & 63),
            ("ror", true) => v.rotate_right(c & 63),
            ("shl", false) => u64::from((v as u32).wrapping_shl(c)),
            ("shr", false) => u64::from((v as u32).wrapping_shr(c)),
            ("sar", false) => u64::from((v as i32).wrapping_shr(c) as u32),
            ("rol", false) => u64::from((v as u32).rotate_left(c & 31)),
            _ => u64::from((v as u32).rotate_right(c & 31)),
        };
        assert_eq!(
            cpu.regs[RDI], expected,
            "{name} wide={wide} {v:#x} by {count}"
        );
        assert_eq!(cpu.flags, Flags::UNDEFINED);
    }
}

#[test]
fn shifts_by_cl_on_edges() {
    for v in EDGES {
        for count in [0, 1, 7, 31, 32, 33, 63, 64, 65, 255] {
            check_shifts(v, count);
        }
    }
}

#[test]
fn shifts_by_immediates() {
    let code = asm(|a| {
        a.shl(rdi, 3)?;
        a.shr(esi, 1)?;
        a.sar(r8, 63)?;
        a.sar(r9d, 4)?;
        a.ret()
    });
    let mut cpu = args(0x2000_0000_0000_0001, 0xffff_ffff_ffff_fffe);
    cpu.regs[R8] = 1 << 63;
    cpu.regs[R9] = 0xffff_ffff_8000_0000;
    exec(&code, &mut cpu, &mut TestBus::new()).unwrap();
    assert_eq!(cpu.regs[RDI], 8);
    assert_eq!(cpu.regs[RSI], 0x7fff_ffff);
    assert_eq!(cpu.regs[R8], u64::MAX);
    assert_eq!(cpu.regs[R9], 0xf800_0000);
}

#[test]
fn byte_swaps() {
    let code = asm(|a| {
        a.bswap(edi)?;
        a.bswap(rsi)?;
        a.rol(dx, 8)?;
        a.ror(r8w, 8)?;
        a.ret()
    });
    let mut cpu = args(0xffff_ffff_1122_3344, 0x0102_0304_0506_0708);
    cpu.regs[RDX] = 0xaaaa_bbbb_cccc_1234;
    cpu.regs[R8] = 0xabcd;
    exec(&code, &mut cpu, &mut TestBus::new()).unwrap();
    assert_eq!(cpu.regs[RDI], 0x4433_2211);
    assert_eq!(cpu.regs[RSI], 0x0807_0605_0403_0201);
    assert_eq!(cpu.regs[RDX], 0xaaaa_bbbb_cccc_3412);
    assert_eq!(cpu.regs[R8], 0xcdab);
}

/// `sub rsp, 8` (or not) to align, then `call` the helper, then `ret`.
fn call_program(align: bool, target: u64) -> Vec<u8> {
    asm(|a| {
        if align {
            a.sub(rsp, 8)?;
        }
        a.mov(rax, target)?;
        a.call(rax)?;
        if align {
            a.lea(rsp, qword_ptr(rsp + 8))?; // leaves the flags alone
        }
        a.ret()
    })
}

#[test]
fn call_out_clobbers_caller_saved_registers() {
    let code = call_program(true, HELPER);
    let mut cpu = args(2, 3);
    cpu.regs[RDX] = 4;
    cpu.regs[R9] = 9;
    cpu.regs[RBX] = 0xb;
    cpu.regs[R15] = 0xf;
    let mut bus = TestBus::new();
    assert_eq!(exec(&code, &mut cpu, &mut bus), Ok(5));
    assert_eq!(bus.calls, vec![[2, 3, 4, 0, 0, 9]]);
    assert_eq!(cpu.regs[RAX], 5);
    for reg in [RCX, RDX, RSI, RDI, R8, R9, R10, R11] {
        assert_eq!(cpu.regs[reg], CLOBBER ^ reg as u64);
    }
    assert_eq!((cpu.regs[RBX], cpu.regs[R15]), (0xb, 0xf));
    assert_eq!(cpu.flags, Flags::UNDEFINED);

    // A direct `call rel32` out of the code does the same.
    let direct = asm(|a| {
        a.push(rbx)?;
        a.call(HELPER)?;
        a.pop(rbx)?;
        a.ret()
    });
    let mut cpu = args(20, 22);
    assert_eq!(exec(&direct, &mut cpu, &mut bus), Ok(4));
    assert_eq!(cpu.regs[RAX], 42);
}

#[test]
fn call_out_checks_alignment_and_target() {
    let code = call_program(false, HELPER);
    assert_eq!(
        exec(&code, &mut Cpu::new(), &mut TestBus::new()),
        Err(EmuError::Misaligned { rip: BASE + 10 })
    );
    let code = call_program(true, 0x6666_0000);
    assert_eq!(
        exec(&code, &mut Cpu::new(), &mut TestBus::new()),
        Err(EmuError::CallTarget {
            rip: BASE + 14,
            target: 0x6666_0000
        })
    );
}

#[test]
fn undefined_flags_are_never_read() {
    let je_first = asm(|a| {
        let mut l = a.create_label();
        a.je(l)?;
        a.set_label(&mut l)?;
        a.ret()
    });
    assert_eq!(
        exec(&je_first, &mut Cpu::new(), &mut TestBus::new()),
        Err(EmuError::FlagsUndefined { rip: BASE })
    );
    let after_call = asm(|a| {
        let mut l = a.create_label();
        a.push(rbx)?;
        a.cmp(rdi, rsi)?;
        a.call(HELPER)?;
        a.jne(l)?;
        a.set_label(&mut l)?;
        a.pop(rbx)?;
        a.ret()
    });
    assert_eq!(
        exec(&after_call, &mut Cpu::new(), &mut TestBus::new()),
        Err(EmuError::FlagsUndefined { rip: BASE + 9 })
    );
    let after_shift = asm(|a| {
        a.cmp(rdi, rsi)?;
        a.shl(rdi, 1)?;
        a.setb(al)?;
        a.ret()
    });
    assert_eq!(
        exec(&after_shift, &mut Cpu::new(), &mut TestBus::new()),
        Err(EmuError::FlagsUndefined { rip: BASE + 6 })
    );
    // inc keeps an undefined CF undefined, but defines ZF.
    let after_inc = |jcc: fn(&mut Asm, CodeLabel) -> Result<(), IcedError>| {
        asm(|a| {
            let mut l = a.create_label();
            a.inc(rdi)?;
            jcc(a, l)?;
            a.set_label(&mut l)?;
            a.ret()
        })
    };
    assert!(
        exec(
            &after_inc(|a, l| a.je(l)),
            &mut Cpu::new(),
            &mut TestBus::new()
        )
        .is_ok()
    );
    assert_eq!(
        exec(
            &after_inc(|a, l| a.jb(l)),
            &mut Cpu::new(),
            &mut TestBus::new()
        ),
        Err(EmuError::FlagsUndefined { rip: BASE + 3 })
    );
}

#[test]
fn step_limit() {
    let code = asm(|a| {
        a.nop()?;
        a.endbr64()?;
        a.ret()
    });
    assert_eq!(
        run(&code, BASE, 0, &mut Cpu::new(), &mut TestBus::new(), 3),
        Ok(3)
    );
    assert_eq!(
        run(&code, BASE, 0, &mut Cpu::new(), &mut TestBus::new(), 2),
        Err(EmuError::Steps)
    );
    // The entry point need not be the start.
    assert_eq!(
        run(&code, BASE, 1, &mut Cpu::new(), &mut TestBus::new(), 2),
        Ok(2)
    );
    let forever = asm(|a| {
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.jmp(top)
    });
    assert_eq!(
        run(
            &forever,
            BASE,
            0,
            &mut Cpu::new(),
            &mut TestBus::new(),
            1000
        ),
        Err(EmuError::Steps)
    );
}

#[test]
fn fetch_decode_and_unsupported() {
    let mut bus = TestBus::new();
    // Falling off the end of the code.
    let code = asm(|a| a.nop());
    assert_eq!(
        exec(&code, &mut Cpu::new(), &mut bus),
        Err(EmuError::Fetch { rip: BASE + 1 })
    );
    // Jumping out of it.
    let code = asm(|a| {
        a.mov(rax, 0x1234u64)?;
        a.jmp(rax)
    });
    assert_eq!(
        exec(&code, &mut Cpu::new(), &mut bus),
        Err(EmuError::Fetch { rip: 0x1234 })
    );
    // An instruction cut short by the end of the code.
    assert_eq!(
        exec(&[0x48, 0x8b], &mut Cpu::new(), &mut bus),
        Err(EmuError::Decode { rip: BASE })
    );
    // `lock` on a register destination (#UD).
    assert!(exec(&[0xf0, 0x48, 0x01, 0xc8, 0xc3], &mut Cpu::new(), &mut bus).is_err());
    // Valid, but not emulated.
    let code = asm(|a| {
        a.nop()?;
        a.cpuid()
    });
    assert_eq!(
        exec(&code, &mut Cpu::new(), &mut bus),
        Err(EmuError::Unsupported {
            rip: BASE + 1,
            text: "cpuid".into()
        })
    );
    let code = asm(|a| a.ud2());
    assert!(matches!(
        exec(&code, &mut Cpu::new(), &mut bus),
        Err(EmuError::Unsupported { .. })
    ));
}

#[test]
fn callee_saved_registers_are_checked() {
    let regs = [
        (RBX, rbx),
        (RBP, rbp),
        (R12, r12),
        (R13, r13),
        (R14, r14),
        (R15, r15),
    ];
    for (index, reg) in regs {
        let clobber = asm(|a| {
            a.xor(reg, 1)?;
            a.ret()
        });
        assert_eq!(
            exec(&clobber, &mut Cpu::new(), &mut TestBus::new()),
            Err(EmuError::CalleeSaved {
                rip: BASE + 4,
                reg: index
            })
        );
        let saved = asm(|a| {
            a.push(reg)?;
            a.xor(reg, 1)?;
            a.pop(reg)?;
            a.ret()
        });
        assert!(exec(&saved, &mut Cpu::new(), &mut TestBus::new()).is_ok());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn alu_matches_rust(a: u64, b: u64) {
        check_alu(a, b);
    }

    #[test]
    fn jcc_matches_rust(a: u64, b: u64, low in 0u64..4) {
        check_jcc(a, b);
        // Near-equal pairs, where the interesting conditions flip.
        check_jcc(a, a.wrapping_add(low));
    }

    #[test]
    fn shifts_match_rust(v: u64, count: u8) {
        check_shifts(v, count);
    }
}
