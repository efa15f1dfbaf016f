//! Emulating one guest access to a device register page: fetch the instruction, decode it, perform it on the device, write the result back.
//!
//! A device page is absent from the guest's EPT, so every access to it is
//! an EPT violation. The exit gives the guest-physical address and whether
//! it was a read or a write, but not the value or the register: those come
//! from the instruction at RIP, fetched through the guest's own page tables
//! ([`crate::emulate::walk`]) and decoded ([`crate::emulate::decode`]).
//! Anything that is not a plain load or store of the kind a driver uses
//! stops the guest with a named [`MmioFault`].

use super::decode::{self, DecodeError, Op};
use super::walk::{self, MAX_INSTRUCTION};
use crate::devices::bus::{BusDevice, Effect};
use crate::devices::virtio::mmio::MmioError;
use crate::mem::access::GuestRead;
use crate::vcpu::regs::GuestRegs;
use crate::vmx::exit::Access;
use core::fmt;

/// Register number of RSP in the decoder's numbering (it lives in the VMCS).
const REG_RSP: u8 = 4;

/// Why an access to a device page could not be carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioFault {
    /// No instruction byte could be fetched at RIP.
    Fetch {
        /// The guest's RIP.
        rip: u64,
    },
    /// The instruction is not one the hypervisor emulates.
    Decode(DecodeError),
    /// The instruction reads where the exit says it wrote, or the reverse.
    AccessMismatch,
    /// The instruction uses RSP as its register operand.
    StackPointer,
    /// The device refused the access.
    Device(MmioError),
}

impl fmt::Display for MmioFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MmioFault::Fetch { rip } => write!(f, "cannot fetch the instruction at rip {rip:#x}"),
            MmioFault::Decode(e) => write!(f, "unsupported instruction: {e}"),
            MmioFault::AccessMismatch => {
                write!(f, "the instruction does not match the access that trapped")
            }
            MmioFault::StackPointer => write!(f, "RSP as a device access operand"),
            MmioFault::Device(e) => e.fmt(f),
        }
    }
}

fn reg_mut(regs: &mut GuestRegs, num: u8) -> Option<&mut u64> {
    Some(match num {
        0 => &mut regs.rax,
        1 => &mut regs.rcx,
        2 => &mut regs.rdx,
        3 => &mut regs.rbx,
        5 => &mut regs.rbp,
        6 => &mut regs.rsi,
        7 => &mut regs.rdi,
        8 => &mut regs.r8,
        9 => &mut regs.r9,
        10 => &mut regs.r10,
        11 => &mut regs.r11,
        12 => &mut regs.r12,
        13 => &mut regs.r13,
        14 => &mut regs.r14,
        15 => &mut regs.r15,
        _ => return None,
    })
}

/// Carries out the access at `rip` (guest page tables at `cr3`, memory
/// `mem`) to `offset` in `device`'s page, updating `regs` for a load.
/// Returns the instruction length, by which RIP must advance, and what a
/// write asked of the hypervisor.
pub fn emulate(
    mem: &impl GuestRead,
    cr3: u64,
    rip: u64,
    access: Access,
    regs: &mut GuestRegs,
    offset: u64,
    device: &mut (impl BusDevice + ?Sized),
) -> Result<(u8, Effect), MmioFault> {
    let mut bytes = [0u8; MAX_INSTRUCTION];
    let got = walk::fetch_instruction(mem, cr3, rip, &mut bytes);
    if got == 0 {
        return Err(MmioFault::Fetch { rip });
    }
    let decoded = decode::decode(&bytes[..got]).map_err(MmioFault::Decode)?;
    let uses_rsp = match decoded.op {
        Op::Load { reg, .. } => reg.num == REG_RSP && !reg.high_byte,
        Op::Store {
            src: decode::Source::Reg(reg),
        } => reg.num == REG_RSP && !reg.high_byte,
        Op::Store { .. } => false,
    };
    if uses_rsp {
        return Err(MmioFault::StackPointer);
    }
    let effect = match (decoded.op, access) {
        (Op::Load { reg, .. }, Access::Read) => {
            let value = device
                .read(offset, decoded.size)
                .map_err(MmioFault::Device)?;
            let slot = reg_mut(regs, reg.num).ok_or(MmioFault::StackPointer)?;
            *slot = decoded.apply_load(*slot, u64::from(value));
            Effect::None
        }
        (Op::Store { .. }, Access::Write) => {
            let snapshot = *regs;
            let value = decoded.store_value(&|n| {
                let mut r = snapshot;
                reg_mut(&mut r, n).map_or(0, |v| *v)
            });
            device
                .write(offset, decoded.size, value as u32)
                .map_err(MmioFault::Device)?
        }
        _ => return Err(MmioFault::AccessMismatch),
    };
    Ok((decoded.len, effect))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::guest::GuestMemory;
    use crate::mem::guest_tables;
    use vmm_abi::corral::layout::{DEVICE_BASE_GPA, IMAGE_BASE_GPA};

    const MEM: usize = 0x4_0000;

    /// A device that records accesses and answers reads with `value`.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<(u64, u8, u32)>,
        reads: Vec<(u64, u8)>,
        value: u32,
        refuse: bool,
    }

    impl BusDevice for Recorder {
        fn read(&mut self, offset: u64, size: u8) -> Result<u32, MmioError> {
            self.reads.push((offset, size));
            if self.refuse {
                return Err(MmioError::UnknownRegister { offset });
            }
            Ok(self.value)
        }

        fn write(&mut self, offset: u64, size: u8, value: u32) -> Result<Effect, MmioError> {
            self.writes.push((offset, size, value));
            if self.refuse {
                return Err(MmioError::UnknownRegister { offset });
            }
            Ok(Effect::None)
        }
    }

    /// Runs the instruction `code` (placed at the image base) as an access.
    fn run(
        code: &[u8],
        access: Access,
        regs: &mut GuestRegs,
        dev: &mut Recorder,
    ) -> Result<u8, MmioFault> {
        let mut backing = vec![0u8; MEM];
        let mut mem = GuestMemory::new(&mut backing);
        let cr3 = guest_tables::build(&mut mem).unwrap();
        mem.write(IMAGE_BASE_GPA, code).unwrap();
        emulate(&mem, cr3, IMAGE_BASE_GPA, access, regs, 0x70, dev).map(|(len, effect)| {
            assert_eq!(effect, Effect::None, "the recorder asks for nothing");
            len
        })
    }

    #[test]
    fn a_store_writes_the_register_value() {
        // mov dword [rdi], esi
        let mut regs = GuestRegs {
            rsi: 0x1234_5678_0000_000f,
            rdi: DEVICE_BASE_GPA + 0x70,
            ..GuestRegs::default()
        };
        let mut dev = Recorder::default();
        assert_eq!(
            run(&[0x89, 0x37], Access::Write, &mut regs, &mut dev),
            Ok(2)
        );
        assert_eq!(dev.writes, vec![(0x70, 4, 0xf)]);
    }

    #[test]
    fn a_load_updates_only_its_register() {
        // mov eax, dword [rdi] (zero-extends), movzx r9d, word [rdi]
        let mut regs = GuestRegs {
            rax: u64::MAX,
            r9: u64::MAX,
            ..GuestRegs::default()
        };
        let mut dev = Recorder {
            value: 0x7472_6976,
            ..Recorder::default()
        };
        assert_eq!(run(&[0x8b, 0x07], Access::Read, &mut regs, &mut dev), Ok(2));
        assert_eq!(regs.rax, 0x7472_6976);
        assert_eq!(
            run(&[0x44, 0x0f, 0xb7, 0x0f], Access::Read, &mut regs, &mut dev),
            Ok(4)
        );
        assert_eq!(regs.r9, 0x6976);
        assert_eq!(dev.reads, vec![(0x70, 4), (0x70, 2)]);
        assert_eq!(regs.rbx, 0);
    }

    #[test]
    fn an_immediate_store_needs_no_register() {
        // mov byte [rdi], 0x5a
        let mut regs = GuestRegs::default();
        let mut dev = Recorder::default();
        assert_eq!(
            run(&[0xc6, 0x07, 0x5a], Access::Write, &mut regs, &mut dev),
            Ok(3)
        );
        assert_eq!(dev.writes, vec![(0x70, 1, 0x5a)]);
    }

    #[test]
    fn bad_accesses_are_named_and_touch_nothing() {
        let mut regs = GuestRegs::default();
        let mut dev = Recorder::default();
        // add [rdi], eax: not a mov.
        assert!(matches!(
            run(&[0x01, 0x07], Access::Write, &mut regs, &mut dev),
            Err(MmioFault::Decode(_))
        ));
        // A load whose exit said write.
        assert_eq!(
            run(&[0x8b, 0x07], Access::Write, &mut regs, &mut dev),
            Err(MmioFault::AccessMismatch)
        );
        // mov [rdi], esp
        assert_eq!(
            run(&[0x89, 0x27], Access::Write, &mut regs, &mut dev),
            Err(MmioFault::StackPointer)
        );
        assert!(dev.writes.is_empty() && dev.reads.is_empty());
        dev.refuse = true;
        assert_eq!(
            run(&[0x8b, 0x07], Access::Read, &mut regs, &mut dev),
            Err(MmioFault::Device(MmioError::UnknownRegister {
                offset: 0x70
            }))
        );
        assert_eq!(regs, GuestRegs::default());
    }

    #[test]
    fn an_unmapped_rip_cannot_be_fetched() {
        let mut backing = vec![0u8; MEM];
        let mut mem = GuestMemory::new(&mut backing);
        let cr3 = guest_tables::build(&mut mem).unwrap();
        let mut regs = GuestRegs::default();
        let mut dev = Recorder::default();
        // Page 0 is not present in the guest's tables.
        assert_eq!(
            emulate(&mem, cr3, 0x10, Access::Read, &mut regs, 0, &mut dev),
            Err(MmioFault::Fetch { rip: 0x10 })
        );
    }
}
