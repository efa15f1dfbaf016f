//! Tests of the device-access decoder: every form a driver uses, and named errors for everything else.
use super::*;
use std::vec::Vec;

const fn load(num: u8, size: u8, len: u8, to: u8) -> Decoded {
    Decoded {
        len,
        size,
        op: Op::Load {
            reg: Reg {
                num,
                high_byte: false,
            },
            zero_extend_to: to,
        },
    }
}

const fn store(src: Source, size: u8, len: u8) -> Decoded {
    Decoded {
        len,
        size,
        op: Op::Store { src },
    }
}

const fn r(num: u8) -> Reg {
    Reg {
        num,
        high_byte: false,
    }
}

const fn high(num: u8) -> Reg {
    Reg {
        num,
        high_byte: true,
    }
}

/// Real encodings with their meaning (checked against GNU objdump).
#[rustfmt::skip]
const KNOWN: &[(&[u8], Decoded)] = &[
    // mov eax, [rdi+0x10]
    (&[0x8b, 0x47, 0x10], load(0, 4, 3, 4)),
    // mov [0x1000], ecx  (SIB: no base, no index)
    (&[0x89, 0x0c, 0x25, 0x00, 0x10, 0x00, 0x00], store(Source::Reg(r(1)), 4, 7)),
    // mov rax, [rip+0x12345678]
    (&[0x48, 0x8b, 0x05, 0x78, 0x56, 0x34, 0x12], load(0, 8, 7, 8)),
    // mov dword [rdi+0x70], 1
    (&[0xc7, 0x47, 0x70, 0x01, 0x00, 0x00, 0x00], store(Source::Imm(1), 4, 7)),
    // mov [rdi+4], ax
    (&[0x66, 0x89, 0x47, 0x04], store(Source::Reg(r(0)), 2, 4)),
    // mov [rdi+1], ah
    (&[0x88, 0x67, 0x01], store(Source::Reg(high(0)), 1, 3)),
    // mov [rdi+1], sil
    (&[0x40, 0x88, 0x77, 0x01], store(Source::Reg(r(6)), 1, 4)),
    // mov [rdi+1], dh  (no REX: 6 means DH)
    (&[0x88, 0x77, 0x01], store(Source::Reg(high(2)), 1, 3)),
    // movzx eax, byte [rdi]
    (&[0x0f, 0xb6, 0x07], load(0, 1, 3, 4)),
    // movzx eax, word [rdi+2]
    (&[0x0f, 0xb7, 0x47, 0x02], load(0, 2, 4, 4)),
    // mov r13d, [rsp+8]
    (&[0x44, 0x8b, 0x6c, 0x24, 0x08], load(13, 4, 5, 4)),
    // mov eax, [r12*4+0]  (REX.X index 100 is r12; no base)
    (&[0x42, 0x8b, 0x04, 0xa5, 0x00, 0x00, 0x00, 0x00], load(0, 4, 8, 4)),
    // mov eax, [r13+0]  (r/m 101 with REX.B needs mod 01)
    (&[0x41, 0x8b, 0x45, 0x00], load(0, 4, 4, 4)),
    // mov eax, [r12]  (r/m 100 with REX.B still has a SIB)
    (&[0x41, 0x8b, 0x04, 0x24], load(0, 4, 4, 4)),
    // mov [r12+0x100], rax
    (&[0x49, 0x89, 0x84, 0x24, 0x00, 0x01, 0x00, 0x00], store(Source::Reg(r(0)), 8, 8)),
    // mov qword [rax+0xf0], -1
    (&[0x48, 0xc7, 0x80, 0xf0, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff],
     store(Source::Imm(u64::MAX), 8, 11)),
    // mov word [rdi], 0x1234
    (&[0x66, 0xc7, 0x07, 0x34, 0x12], store(Source::Imm(0x1234), 2, 5)),
    // mov byte [rdi+5], 0xff
    (&[0xc6, 0x47, 0x05, 0xff], store(Source::Imm(0xff), 1, 4)),
    // mov [rdi+3], r8b
    (&[0x44, 0x88, 0x47, 0x03], store(Source::Reg(r(8)), 1, 4)),
    // mov al, [rdi+2]
    (&[0x8a, 0x47, 0x02], load(0, 1, 3, 1)),
    // mov ah, [rdi+2]
    (&[0x8a, 0x67, 0x02], Decoded { len: 3, size: 1, op: Op::Load { reg: high(0), zero_extend_to: 1 } }),
    // mov spl, [rdi+2]
    (&[0x40, 0x8a, 0x67, 0x02], load(4, 1, 4, 1)),
    // movzx rax, byte [rdi+1]
    (&[0x48, 0x0f, 0xb6, 0x47, 0x01], load(0, 1, 5, 8)),
    // movzx ax, byte [rdi]
    (&[0x66, 0x0f, 0xb6, 0x07], load(0, 1, 4, 2)),
    // movzx esp, byte [rdi]  (destination is never a high byte)
    (&[0x0f, 0xb6, 0x27], load(4, 1, 3, 4)),
    // movzx r15d, word [r12]
    (&[0x45, 0x0f, 0xb7, 0x3c, 0x24], load(15, 2, 5, 4)),
    // ds mov eax, [rdi]
    (&[0x3e, 0x8b, 0x07], load(0, 4, 3, 4)),
    // cs mov [rdi], ax  (segment override before 66)
    (&[0x2e, 0x66, 0x89, 0x07], store(Source::Reg(r(0)), 2, 4)),
    // mov eax, [rcx+rdx*8+0x100]
    (&[0x8b, 0x84, 0xd1, 0x00, 0x01, 0x00, 0x00], load(0, 4, 7, 4)),
    // mov eax, [rcx+rdx*4-4]
    (&[0x8b, 0x44, 0x91, 0xfc], load(0, 4, 4, 4)),
    // mov rax, [rdi]  with 66: REX.W wins
    (&[0x66, 0x48, 0x8b, 0x07], load(0, 8, 4, 8)),
    // mov qword [rdi], 0x7fffffff  with 66: still imm32
    (&[0x66, 0x48, 0xc7, 0x07, 0xff, 0xff, 0xff, 0x7f], store(Source::Imm(0x7fff_ffff), 8, 8)),
    // mov [rdi], eax  with a REX that has no effect
    (&[0x40, 0x89, 0x07], store(Source::Reg(r(0)), 4, 3)),
    // mov byte [rip+0x10], 0x80
    (&[0xc6, 0x05, 0x10, 0x00, 0x00, 0x00, 0x80], store(Source::Imm(0x80), 1, 7)),
    // mov [rbp+0], bl  with 66 (no effect on byte moves)
    (&[0x66, 0x88, 0x5d, 0x00], store(Source::Reg(r(3)), 1, 4)),
];

#[test]
fn known_encodings() {
    for &(bytes, want) in KNOWN {
        assert_eq!(decode(bytes), Ok(want), "{bytes:02x?}");
        // Trailing bytes (the rest of the fetch) are not part of it.
        let mut fetched = bytes.to_vec();
        fetched.resize(MAX_INSTRUCTION, 0x0f);
        assert_eq!(decode(&fetched), Ok(want), "{bytes:02x?} + tail");
    }
}

#[test]
fn every_short_fetch_is_truncated() {
    for &(bytes, _) in KNOWN {
        assert_eq!(decode(&bytes[..0]), Err(DecodeError::Empty));
        for k in 1..bytes.len() {
            assert_eq!(
                decode(&bytes[..k]),
                Err(DecodeError::Truncated { fetched: k as u8 }),
                "{bytes:02x?} cut at {k}"
            );
        }
    }
}

// ---- Exhaustive forms, generated by a small assembler -----------------
//
// The expectations come from the instruction tables (one row per form
// below) and from the number of bytes the assembler emitted, not from the
// decoder's own logic.

#[derive(Clone, Copy)]
enum SizePrefix {
    None,
    OperandSize,
    RexW,
}

#[derive(Clone, Copy)]
enum Role {
    /// ModR/M reg is the source; `byte` if it names a byte register.
    Source { byte: bool },
    /// ModR/M reg is the destination.
    Dest { byte: bool },
    /// ModR/M reg is /0; an immediate of `bytes` follows.
    Imm { bytes: usize },
}

struct Row {
    opcode: &'static [u8],
    prefix: SizePrefix,
    role: Role,
    size: u8,
    dest: u8,
}

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // MOV r/m8, r8
    Row { opcode: &[0x88], prefix: SizePrefix::None, role: Role::Source { byte: true }, size: 1, dest: 0 },
    // MOV r/m16, r16; r/m32, r32; r/m64, r64
    Row { opcode: &[0x89], prefix: SizePrefix::OperandSize, role: Role::Source { byte: false }, size: 2, dest: 0 },
    Row { opcode: &[0x89], prefix: SizePrefix::None, role: Role::Source { byte: false }, size: 4, dest: 0 },
    Row { opcode: &[0x89], prefix: SizePrefix::RexW, role: Role::Source { byte: false }, size: 8, dest: 0 },
    // MOV r8, r/m8
    Row { opcode: &[0x8a], prefix: SizePrefix::None, role: Role::Dest { byte: true }, size: 1, dest: 1 },
    // MOV r16, r/m16; r32, r/m32; r64, r/m64
    Row { opcode: &[0x8b], prefix: SizePrefix::OperandSize, role: Role::Dest { byte: false }, size: 2, dest: 2 },
    Row { opcode: &[0x8b], prefix: SizePrefix::None, role: Role::Dest { byte: false }, size: 4, dest: 4 },
    Row { opcode: &[0x8b], prefix: SizePrefix::RexW, role: Role::Dest { byte: false }, size: 8, dest: 8 },
    // MOV r/m8, imm8
    Row { opcode: &[0xc6], prefix: SizePrefix::None, role: Role::Imm { bytes: 1 }, size: 1, dest: 0 },
    // MOV r/m16, imm16; r/m32, imm32; r/m64, imm32
    Row { opcode: &[0xc7], prefix: SizePrefix::OperandSize, role: Role::Imm { bytes: 2 }, size: 2, dest: 0 },
    Row { opcode: &[0xc7], prefix: SizePrefix::None, role: Role::Imm { bytes: 4 }, size: 4, dest: 0 },
    Row { opcode: &[0xc7], prefix: SizePrefix::RexW, role: Role::Imm { bytes: 4 }, size: 8, dest: 0 },
    // MOVZX r16, r/m8; r32, r/m8; r64, r/m8
    Row { opcode: &[0x0f, 0xb6], prefix: SizePrefix::OperandSize, role: Role::Dest { byte: false }, size: 1, dest: 2 },
    Row { opcode: &[0x0f, 0xb6], prefix: SizePrefix::None, role: Role::Dest { byte: false }, size: 1, dest: 4 },
    Row { opcode: &[0x0f, 0xb6], prefix: SizePrefix::RexW, role: Role::Dest { byte: false }, size: 1, dest: 8 },
    // MOVZX r16, r/m16; r32, r/m16; r64, r/m16
    Row { opcode: &[0x0f, 0xb7], prefix: SizePrefix::OperandSize, role: Role::Dest { byte: false }, size: 2, dest: 2 },
    Row { opcode: &[0x0f, 0xb7], prefix: SizePrefix::None, role: Role::Dest { byte: false }, size: 2, dest: 4 },
    Row { opcode: &[0x0f, 0xb7], prefix: SizePrefix::RexW, role: Role::Dest { byte: false }, size: 2, dest: 8 },
];

#[derive(Clone, Copy, Debug)]
enum Disp {
    None,
    D8(i8),
    D32(i32),
}

/// A memory operand as an assembler sees it.
#[derive(Clone, Copy, Debug)]
enum Addr {
    /// `[base + index*2^scale + disp]`; `scale` is also emitted when
    /// there is no index (the CPU ignores it then).
    Based {
        base: u8,
        index: Option<u8>,
        scale: u8,
        disp: Disp,
    },
    /// `[index*2^scale + disp32]` or `[disp32]`: SIB with no base.
    NoBase {
        index: Option<u8>,
        scale: u8,
        disp: i32,
    },
    /// `[rip + disp32]`.
    Rip(i32),
}

fn all_addresses() -> Vec<Addr> {
    let indexes: Vec<Option<u8>> = core::iter::once(None)
        .chain((0..16).filter(|&i| i != 4).map(Some))
        .collect();
    let mut out = Vec::new();
    for base in 0..16 {
        for &index in &indexes {
            for scale in 0..4 {
                for disp in [Disp::None, Disp::D8(-0x80), Disp::D32(0x1234_5678)] {
                    out.push(Addr::Based {
                        base,
                        index,
                        scale,
                        disp,
                    });
                }
            }
        }
    }
    for &index in &indexes {
        for scale in 0..4 {
            out.push(Addr::NoBase {
                index,
                scale,
                disp: -0x1000,
            });
        }
    }
    out.push(Addr::Rip(0x7f00_0000));
    out
}

/// Up to 16 bytes of assembled instruction.
struct Asm {
    buf: [u8; 16],
    len: usize,
}

impl Asm {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
}

/// Assembles `row` with ModR/M reg `reg` (0–15) and memory operand
/// `addr`; a REX prefix is emitted when needed or when `force_rex`.
/// Returns the bytes and whether a REX prefix was emitted.
fn assemble(row: &Row, reg: u8, addr: Addr, force_rex: bool, imm: u64) -> (Asm, bool) {
    const MOD00: u8 = 0b00 << 6;
    const MOD01: u8 = 0b01 << 6;
    const MOD10: u8 = 0b10 << 6;
    let mut rex_w = false;
    let mut out = Asm {
        buf: [0; 16],
        len: 0,
    };
    match row.prefix {
        SizePrefix::None => {}
        SizePrefix::OperandSize => out.put(&[0x66]),
        SizePrefix::RexW => rex_w = true,
    }
    // ModR/M, optional SIB, displacement; and REX.X / REX.B.
    let (mut x, mut b) = (false, false);
    let mut tail = Asm {
        buf: [0; 16],
        len: 0,
    };
    let reg_bits = (reg & 7) << 3;
    match addr {
        Addr::Rip(d) => {
            tail.put(&[MOD00 | reg_bits | 0b101]);
            tail.put(&d.to_le_bytes());
        }
        Addr::NoBase { index, scale, disp } => {
            let idx = index.unwrap_or(0b100);
            x = idx >= 8;
            tail.put(&[
                MOD00 | reg_bits | 0b100,
                (scale << 6) | ((idx & 7) << 3) | 0b101,
            ]);
            tail.put(&disp.to_le_bytes());
        }
        Addr::Based {
            base,
            index,
            scale,
            disp,
        } => {
            b = base >= 8;
            // [rbp]/[r13] have no mod-00 form: use disp8 0.
            let disp = match disp {
                Disp::None if base & 7 == 0b101 => Disp::D8(0),
                d => d,
            };
            let mode = match disp {
                Disp::None => MOD00,
                Disp::D8(_) => MOD01,
                Disp::D32(_) => MOD10,
            };
            if index.is_some() || base & 7 == 0b100 {
                let idx = index.unwrap_or(0b100);
                x = idx >= 8;
                tail.put(&[
                    mode | reg_bits | 0b100,
                    (scale << 6) | ((idx & 7) << 3) | (base & 7),
                ]);
            } else {
                tail.put(&[mode | reg_bits | (base & 7)]);
            }
            match disp {
                Disp::None => {}
                Disp::D8(d) => tail.put(&d.to_le_bytes()),
                Disp::D32(d) => tail.put(&d.to_le_bytes()),
            }
        }
    }
    let r = reg >= 8;
    let rex = force_rex || rex_w || r || x || b;
    if rex {
        out.put(&[0x40
            | (u8::from(rex_w) << 3)
            | (u8::from(r) << 2)
            | (u8::from(x) << 1)
            | u8::from(b)]);
    }
    out.put(row.opcode);
    out.put(&tail.buf[..tail.len]);
    if let Role::Imm { bytes } = row.role {
        out.put(&imm.to_le_bytes()[..bytes]);
    }
    (out, rex)
}

/// The register an encoding names, by the byte-register rule.
fn named_reg(reg: u8, byte: bool, rex: bool) -> Reg {
    if byte && !rex && (4..8).contains(&reg) {
        high(reg - 4)
    } else {
        r(reg)
    }
}

/// Decodes every form × register × addressing mode, with and without a
/// spare REX, fed both exactly and as a full 15-byte fetch.
fn check_forms(opcode: &[u8]) -> usize {
    let addrs = all_addresses();
    let mut checked = 0;
    for form in ROWS.iter().filter(|f| f.opcode == opcode) {
        let (regs, imms): (&[u8], &[u64]) = match form.role {
            Role::Imm { bytes: 1 } => (&[0], &[0x7f, 0x80]),
            Role::Imm { bytes: 2 } => (&[0], &[0x7ffe, 0x8001]),
            Role::Imm { .. } => (&[0], &[0x7fff_fffe, 0x8000_0001]),
            _ => (
                &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
                &[0],
            ),
        };
        for &reg in regs {
            for &imm in imms {
                for &addr in &addrs {
                    for force_rex in [false, true] {
                        let (asm, rex) = assemble(form, reg, addr, force_rex, imm);
                        let op = match form.role {
                            Role::Source { byte } => Op::Store {
                                src: Source::Reg(named_reg(reg, byte, rex)),
                            },
                            Role::Dest { byte } => Op::Load {
                                reg: named_reg(reg, byte, rex),
                                zero_extend_to: form.dest,
                            },
                            Role::Imm { .. } => {
                                let value = if form.size == 8 {
                                    imm as u32 as i32 as i64 as u64
                                } else {
                                    imm
                                };
                                Op::Store {
                                    src: Source::Imm(value),
                                }
                            }
                        };
                        let want = Ok(Decoded {
                            len: asm.len as u8,
                            size: form.size,
                            op,
                        });
                        let exact = &asm.buf[..asm.len];
                        assert_eq!(decode(exact), want, "{exact:02x?} {addr:?}");
                        let mut fetched = [0x8b; MAX_INSTRUCTION];
                        fetched[..asm.len].copy_from_slice(exact);
                        assert_eq!(decode(&fetched), want, "{exact:02x?} + tail");
                        checked += 1;
                    }
                }
            }
        }
    }
    checked
}

#[test]
fn every_mov_store_from_register() {
    // 88: 16 regs × addressing × REX or not; 89: also × 3 sizes.
    assert_eq!(check_forms(&[0x88]), 16 * all_addresses().len() * 2);
    assert_eq!(check_forms(&[0x89]), 3 * 16 * all_addresses().len() * 2);
}

#[test]
fn every_mov_load_to_register() {
    assert_eq!(check_forms(&[0x8a]), 16 * all_addresses().len() * 2);
    assert_eq!(check_forms(&[0x8b]), 3 * 16 * all_addresses().len() * 2);
}

#[test]
fn every_mov_store_immediate() {
    assert_eq!(check_forms(&[0xc6]), 2 * all_addresses().len() * 2);
    assert_eq!(check_forms(&[0xc7]), 3 * 2 * all_addresses().len() * 2);
}

#[test]
fn every_movzx() {
    assert_eq!(
        check_forms(&[0x0f, 0xb6]),
        3 * 16 * all_addresses().len() * 2
    );
    assert_eq!(
        check_forms(&[0x0f, 0xb7]),
        3 * 16 * all_addresses().len() * 2
    );
}

#[test]
fn ignored_segment_prefixes_in_any_order() {
    let body = [0x89, 0x47, 0x04]; // mov [rdi+4], eax
    for seg in [0x26, 0x2e, 0x36, 0x3e] {
        for bytes in [
            std::vec![seg, 0x89, 0x47, 0x04],
            std::vec![seg, 0x66, 0x89, 0x47, 0x04],
            std::vec![0x66, seg, 0x89, 0x47, 0x04],
            std::vec![seg, seg, 0x48, 0x89, 0x47, 0x04],
        ] {
            let d = decode(&bytes).unwrap();
            assert_eq!(usize::from(d.len), bytes.len(), "{bytes:02x?}");
            assert_eq!(
                d.op,
                Op::Store {
                    src: Source::Reg(r(0))
                }
            );
            let want_size = match bytes[bytes.len() - body.len() - 1] {
                0x48 => 8,
                _ if bytes.contains(&0x66) => 2,
                _ => 4,
            };
            assert_eq!(d.size, want_size, "{bytes:02x?}");
        }
    }
}

// ---- Errors -----------------------------------------------------------

#[test]
fn refused_prefixes_are_named() {
    for (p, name) in [
        (0xf0, "LOCK"),
        (0xf2, "REPNE"),
        (0xf3, "REP"),
        (0x64, "FS"),
        (0x65, "GS"),
        (0x67, "address-size"),
    ] {
        for bytes in [
            std::vec![p, 0x89, 0x07],
            std::vec![0x66, p, 0x89, 0x07],
            std::vec![0x3e, p, 0x48, 0x89, 0x07],
        ] {
            let e = decode(&bytes).unwrap_err();
            assert_eq!(e, DecodeError::UnsupportedPrefix(p));
            assert!(e.to_string().contains(name), "{e}");
        }
    }
}

#[test]
fn rex_must_directly_precede_the_opcode() {
    for rex in 0x40..=0x4f {
        for next in [
            0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x40, 0x48, 0x4f,
        ] {
            assert_eq!(
                decode(&[rex, next, 0x8b, 0x07]),
                Err(DecodeError::MisplacedRex(rex)),
                "{rex:02x} {next:02x}"
            );
        }
        // Directly before 0F is directly before the opcode.
        assert!(decode(&[rex, 0x0f, 0xb6, 0x07]).is_ok());
    }
}

const PREFIXES: [u8; 11] = [
    0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65,
];
const SUPPORTED: [u8; 7] = [0x88, 0x89, 0x8a, 0x8b, 0xc6, 0xc7, 0x0f];

#[test]
fn every_other_one_byte_opcode_is_refused() {
    let mut refused = 0;
    for op in 0..=0xffu8 {
        if PREFIXES.contains(&op) || SUPPORTED.contains(&op) || (0x40..=0x4f).contains(&op) {
            continue;
        }
        for bytes in [[op, 0x07, 0, 0, 0, 0], [0x48, op, 0x07, 0, 0, 0]] {
            assert_eq!(decode(&bytes), Err(DecodeError::UnsupportedOpcode(op)));
        }
        refused += 1;
    }
    assert_eq!(refused, 256 - 11 - 7 - 16);
}

#[test]
fn every_other_two_byte_opcode_is_refused() {
    for op in 0..=0xffu8 {
        let got = decode(&[0x0f, op, 0x07, 0, 0, 0, 0]);
        if op == 0xb6 || op == 0xb7 {
            assert!(got.is_ok());
        } else {
            assert_eq!(got, Err(DecodeError::UnsupportedOpcode0F(op)));
        }
    }
}

#[test]
fn group_11_members_other_than_mov_are_refused() {
    for opcode in [0xc6, 0xc7] {
        for modrm in 0..=0xffu8 {
            let ext = (modrm >> 3) & 7;
            let got = decode(&[opcode, modrm, 0, 0, 0, 0, 0, 0, 0, 0]);
            if ext != 0 {
                assert_eq!(got, Err(DecodeError::UnsupportedExtension { opcode, ext }));
                assert!(
                    got.unwrap_err()
                        .to_string()
                        .contains(&std::format!("/{ext}"))
                );
            }
        }
    }
}

#[test]
fn every_register_operand_is_refused() {
    let opcodes: [&[u8]; 8] = [
        &[0x88],
        &[0x89],
        &[0x8a],
        &[0x8b],
        &[0xc6],
        &[0xc7],
        &[0x0f, 0xb6],
        &[0x0f, 0xb7],
    ];
    for opcode in opcodes {
        for modrm in 0xc0..=0xffu8 {
            if (0xc6..=0xc7).contains(&opcode[0]) && modrm & 0x38 != 0 {
                continue; // not MOV; covered above
            }
            for rex in [None, Some(0x40), Some(0x4f)] {
                let mut bytes: Vec<u8> = rex.into_iter().collect();
                bytes.extend_from_slice(opcode);
                bytes.extend_from_slice(&[modrm, 0, 0, 0, 0]);
                assert_eq!(
                    decode(&bytes),
                    Err(DecodeError::RegisterOperand),
                    "{bytes:02x?}"
                );
            }
        }
    }
}

#[test]
fn longer_than_fifteen_bytes() {
    // 14 prefixes + opcode + ModR/M = 16 bytes.
    let mut bytes = [0x66; 16];
    bytes[14] = 0x8b;
    bytes[15] = 0x07;
    assert_eq!(decode(&bytes), Err(DecodeError::TooLong));
    assert_eq!(decode(&bytes[..15]), Err(DecodeError::TooLong));
    // Only 14 fetched: the instruction might still be 16 bytes long, but
    // what is known is that the fetch is short.
    assert_eq!(
        decode(&bytes[..14]),
        Err(DecodeError::Truncated { fetched: 14 })
    );
    // Fifteen prefixes.
    assert_eq!(decode(&[0x3e; 15]), Err(DecodeError::TooLong));
    // 10 prefixes + REX.W + C7 + ModR/M + SIB + disp32 + imm32 = 21 bytes.
    let mut long = std::vec![0x2e; 10];
    long.extend_from_slice(&[0x48, 0xc7, 0x84, 0x24, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(decode(&long), Err(DecodeError::TooLong));
    // Exactly 15 is fine: 4 prefixes + the 11-byte store.
    let mut fifteen = std::vec![0x3e; 4];
    fifteen.extend_from_slice(&[0x48, 0xc7, 0x80, 0xf0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(decode(&fifteen).map(|d| d.len), Ok(15));
}

#[test]
fn every_error_reads_well() {
    let errors = [
        DecodeError::Empty,
        DecodeError::Truncated { fetched: 3 },
        DecodeError::UnsupportedPrefix(0xf0),
        DecodeError::MisplacedRex(0x48),
        DecodeError::UnsupportedOpcode(0x90),
        DecodeError::UnsupportedOpcode0F(0xbe),
        DecodeError::UnsupportedExtension {
            opcode: 0xc7,
            ext: 7,
        },
        DecodeError::RegisterOperand,
        DecodeError::TooLong,
    ];
    let texts: Vec<std::string::String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        texts[1],
        "instruction continues past the 3 bytes that could be fetched"
    );
    assert_eq!(texts[2], "unsupported LOCK prefix 0xf0");
    assert_eq!(texts[5], "unsupported opcode 0x0f 0xbe");
    assert_eq!(texts[6], "unsupported opcode 0xc7 /7");
    assert_eq!(texts[8], "instruction longer than 15 bytes");
    for t in &texts {
        assert!(!t.is_empty() && !t.contains('\n'));
    }
}

// ---- Register semantics -----------------------------------------------

const OLD: u64 = 0x1111_2222_3333_4444;

fn decoded(bytes: &[u8]) -> Decoded {
    decode(bytes).unwrap()
}

#[test]
fn apply_load_follows_x86_register_writes() {
    #[rustfmt::skip]
    let cases: &[(&[u8], u64, u64)] = &[
        // mov eax, [rdi]: 32-bit writes zero-extend.
        (&[0x8b, 0x07], 0x8765_4321, 0x0000_0000_8765_4321),
        // mov rax, [rdi]
        (&[0x48, 0x8b, 0x07], 0x8765_4321_0fed_cba9, 0x8765_4321_0fed_cba9),
        // mov ax, [rdi]: 16-bit writes merge.
        (&[0x66, 0x8b, 0x07], 0xabcd, 0x1111_2222_3333_abcd),
        // mov al, [rdi]
        (&[0x8a, 0x07], 0xab, 0x1111_2222_3333_44ab),
        // mov ah, [rdi]: bits 15:8.
        (&[0x8a, 0x27], 0xab, 0x1111_2222_3333_ab44),
        // mov spl, [rdi]
        (&[0x40, 0x8a, 0x27], 0xab, 0x1111_2222_3333_44ab),
        // movzx eax, byte [rdi]: zero-extends to 64.
        (&[0x0f, 0xb6, 0x07], 0x80, 0x80),
        // movzx ax, byte [rdi]: a 16-bit destination merges.
        (&[0x66, 0x0f, 0xb6, 0x07], 0x80, 0x1111_2222_3333_0080),
        // movzx rax, word [rdi]
        (&[0x48, 0x0f, 0xb7, 0x07], 0xabcd, 0xabcd),
        // movzx eax, word [rdi]
        (&[0x0f, 0xb7, 0x07], 0xabcd, 0xabcd),
        // Only the low `size` bytes of the device value count.
        (&[0x8b, 0x07], 0xdead_beef_1234_5678, 0x1234_5678),
        (&[0x8a, 0x27], 0xfff1, 0x1111_2222_3333_f144),
        (&[0x0f, 0xb6, 0x07], 0x1ff, 0xff),
    ];
    for &(bytes, value, want) in cases {
        assert_eq!(decoded(bytes).apply_load(OLD, value), want, "{bytes:02x?}");
    }
    // A store leaves the register alone.
    assert_eq!(decoded(&[0x89, 0x07]).apply_load(OLD, 5), OLD);
}

#[test]
fn store_value_takes_the_right_bits() {
    let regs = |n: u8| 0x0102_0304_0506_0700 | u64::from(n) | (u64::from(n) << 56);
    #[rustfmt::skip]
    let cases: &[(&[u8], u64)] = &[
        // mov [rdi], ah: bits 15:8 of rax.
        (&[0x88, 0x27], 0x07),
        // mov [rdi], spl
        (&[0x40, 0x88, 0x27], 0x04),
        // mov [rdi], r9b
        (&[0x44, 0x88, 0x0f], 0x09),
        // mov [rdi], ecx
        (&[0x89, 0x0f], 0x0506_0701),
        // mov [rdi], cx
        (&[0x66, 0x89, 0x0f], 0x0701),
        // mov [rdi], r15
        (&[0x4c, 0x89, 0x3f], 0x0f02_0304_0506_070f),
        // mov qword [rdi], -1 (imm32 sign-extended)
        (&[0x48, 0xc7, 0x07, 0xff, 0xff, 0xff, 0xff], u64::MAX),
        // mov dword [rdi], -1
        (&[0xc7, 0x07, 0xff, 0xff, 0xff, 0xff], 0xffff_ffff),
        // mov word [rdi], 0xfffe
        (&[0x66, 0xc7, 0x07, 0xfe, 0xff], 0xfffe),
        // mov byte [rdi], 0x80
        (&[0xc6, 0x07, 0x80], 0x80),
        // A load writes nothing.
        (&[0x8b, 0x07], 0),
    ];
    for &(bytes, want) in cases {
        assert_eq!(decoded(bytes).store_value(&regs), want, "{bytes:02x?}");
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..24)) {
        match decode(&bytes) {
            Ok(d) => {
                let len = usize::from(d.len);
                proptest::prop_assert!(len <= bytes.len() && len <= MAX_INSTRUCTION);
                proptest::prop_assert!([1, 2, 4, 8].contains(&d.size));
                // The instruction alone decodes the same; any shorter
                // fetch of it is truncated.
                proptest::prop_assert_eq!(decode(&bytes[..len]), Ok(d));
                for k in 1..len {
                    proptest::prop_assert_eq!(
                        decode(&bytes[..k]),
                        Err(DecodeError::Truncated { fetched: k as u8 })
                    );
                }
            }
            Err(DecodeError::Truncated { fetched }) => {
                proptest::prop_assert!(bytes.len() < MAX_INSTRUCTION);
                proptest::prop_assert_eq!(usize::from(fetched), bytes.len());
            }
            Err(DecodeError::Empty) => proptest::prop_assert!(bytes.is_empty()),
            Err(_) => {}
        }
    }

    #[test]
    fn loads_keep_or_clear_exactly_the_right_bits(
        opcode in 0usize..9,
        old: u64,
        value: u64,
    ) {
        // (encoding, bits written, bits kept from `old`)
        let table: [(&[u8], u64, u64); 9] = [
            (&[0x8a, 0x07], 0xff, !0xff),
            (&[0x8a, 0x27], 0xff00, !0xff00),
            (&[0x66, 0x8b, 0x07], 0xffff, !0xffff),
            (&[0x8b, 0x07], 0xffff_ffff, 0),
            (&[0x48, 0x8b, 0x07], u64::MAX, 0),
            (&[0x0f, 0xb6, 0x07], 0xff, 0),
            (&[0x66, 0x0f, 0xb6, 0x07], 0xff, !0xffff),
            (&[0x0f, 0xb7, 0x07], 0xffff, 0),
            (&[0x48, 0x0f, 0xb7, 0x07], 0xffff, 0),
        ];
        let (bytes, written, kept) = table[opcode];
        let got = decoded(bytes).apply_load(old, value);
        proptest::prop_assert_eq!(got & kept, old & kept);
        let shift = written.trailing_zeros();
        proptest::prop_assert_eq!(got & written, (value << shift) & written);
        proptest::prop_assert_eq!(got & !kept & !written, 0);
    }
}
