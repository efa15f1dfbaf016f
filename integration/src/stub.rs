//! A stand-in hypervisor for testing the host tool on its own: a tiny
//! 32-bit Multiboot2 ELF that prints a fixed text on COM1 and powers Bochs
//! off with a magic break, as the real hypervisor does at the end of a run.
//! It lets the tool's pipeline (ISO, Bochs, console, records, report) be
//! checked without depending on the real hypervisor.

/// Load (and link) address: 1 MiB, where Multiboot kernels live.
const BASE: u32 = 0x10_0000;
const ELF_HEADER: usize = 52;
const PROGRAM_HEADER: usize = 32;
/// The Multiboot2 header must be 8-byte aligned within the first 32 KiB.
const MULTIBOOT_OFFSET: usize = 88;
const MULTIBOOT_MAGIC: u32 = 0xE852_50D6;
const MULTIBOOT_LENGTH: u32 = 24;
const CODE_OFFSET: usize = MULTIBOOT_OFFSET + MULTIBOOT_LENGTH as usize;

/// 16550 UART registers of COM1 and the line-status bits the code polls.
const COM1_DATA: u16 = 0x3f8;
const COM1_LINE_STATUS: u16 = 0x3fd;
const LSR_THR_EMPTY: u8 = 0x20;
const LSR_TRANSMITTER_EMPTY: u8 = 0x40;

/// `mov dx, port`
fn mov_dx(code: &mut Vec<u8>, port: u16) {
    code.extend_from_slice(&[0x66, 0xba]);
    code.extend_from_slice(&port.to_le_bytes());
}

/// Spins until the line-status register has `bit` set (clobbers AL, DX).
fn wait_lsr(code: &mut Vec<u8>, bit: u8) {
    mov_dx(code, COM1_LINE_STATUS);
    // in al, dx ; test al, bit ; jz back to the `in`
    code.extend_from_slice(&[0xec, 0xa8, bit, 0x74, 0xfb]);
}

/// The machine code: print the NUL-terminated string at `text_address`,
/// wait until the UART has sent the last byte, then `xchg bx, bx` (Bochs's
/// magic break) and halt.
fn code(text_address: u32) -> Vec<u8> {
    let mut c = vec![0xbe]; // mov esi, text_address
    c.extend_from_slice(&text_address.to_le_bytes());
    let next_char = c.len();
    c.extend_from_slice(&[0xac, 0x84, 0xc0]); // lodsb ; test al, al
    c.extend_from_slice(&[0x74, 0x00]); // jz done (patched below)
    let jz_end = c.len();
    c.extend_from_slice(&[0x88, 0xc4]); // mov ah, al
    wait_lsr(&mut c, LSR_THR_EMPTY);
    c.extend_from_slice(&[0x88, 0xe0]); // mov al, ah
    mov_dx(&mut c, COM1_DATA);
    c.push(0xee); // out dx, al
    let back = next_char as isize - (c.len() as isize + 2);
    c.extend_from_slice(&[0xeb, back as i8 as u8]); // jmp next_char
    c[jz_end - 1] = (c.len() - jz_end) as u8;
    wait_lsr(&mut c, LSR_TRANSMITTER_EMPTY);
    c.extend_from_slice(&[0x66, 0x87, 0xdb]); // xchg bx, bx
    c.extend_from_slice(&[0xf4, 0xeb, 0xfd]); // hlt ; jmp hlt
    c
}

/// An ELF32 Multiboot2 kernel that prints `text` on COM1 and stops Bochs.
pub fn hypervisor(text: &str) -> Vec<u8> {
    let code_len = code(0).len();
    let text_address = BASE + (CODE_OFFSET + code_len) as u32;
    let mut body = code(text_address);
    body.extend_from_slice(text.as_bytes());
    body.push(0);
    let total = (CODE_OFFSET + body.len()) as u32;

    let mut elf = Vec::with_capacity(total as usize);
    // ELF header: 32-bit, little endian, version 1, executable, i386.
    elf.extend_from_slice(b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0");
    for half in [2u16, 3] {
        elf.extend_from_slice(&half.to_le_bytes());
    }
    for word in [1u32, BASE + CODE_OFFSET as u32, ELF_HEADER as u32, 0, 0] {
        elf.extend_from_slice(&word.to_le_bytes());
    }
    for half in [ELF_HEADER as u16, PROGRAM_HEADER as u16, 1, 0, 0, 0] {
        elf.extend_from_slice(&half.to_le_bytes());
    }
    // One loadable, read-write-execute segment: the whole file at BASE.
    for word in [1u32, 0, BASE, BASE, total, total, 7, 0x1000] {
        elf.extend_from_slice(&word.to_le_bytes());
    }
    elf.resize(MULTIBOOT_OFFSET, 0);
    // Multiboot2 header (i386 architecture) with only the end tag.
    let checksum = 0u32.wrapping_sub(MULTIBOOT_MAGIC + MULTIBOOT_LENGTH);
    for word in [MULTIBOOT_MAGIC, 0, MULTIBOOT_LENGTH, checksum, 0, 8] {
        elf.extend_from_slice(&word.to_le_bytes());
    }
    elf.extend_from_slice(&body);
    elf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_what_grub_needs() {
        let elf = hypervisor("hi\n");
        assert_eq!(&elf[..4], b"\x7fELF");
        assert_eq!(elf.len(), CODE_OFFSET + code(0).len() + 4);
        let word = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
        assert_eq!(word(24), BASE + CODE_OFFSET as u32);
        assert_eq!(word(MULTIBOOT_OFFSET), MULTIBOOT_MAGIC);
        let sum = (0..4).fold(0u32, |s, i| s.wrapping_add(word(MULTIBOOT_OFFSET + 4 * i)));
        assert_eq!(sum, 0);
        assert!(elf.ends_with(b"hi\n\0"));
    }

    #[test]
    fn jumps_land_on_instructions() {
        let c = code(0);
        // jz (ending at byte 10) skips to the final wait, `mov dx, 0x3fd`,
        // just after the loop's backward jmp to the lodsb at byte 5.
        let jz_end = 10;
        let target = jz_end + c[jz_end - 1] as usize;
        assert_eq!(&c[target..target + 4], &[0x66, 0xba, 0xfd, 0x03]);
        assert_eq!(c[target - 2], 0xeb);
        let back = (target as isize) + (c[target - 1] as i8 as isize);
        assert_eq!(back, 5);
    }
}
