//! The four hook kinds: each one's context struct (byte offsets by name, sizes asserted at compile time), the helpers it may call and its return contract.
//!
//! A program gets a pointer to its context in `r1`. The context is
//! read-only and may be loaded only field by field, each at its offset
//! with its exact size; the bytes between fields (padding that keeps the
//! 64-bit fields aligned) are not fields.

#![forbid(unsafe_code)]

use super::insn::{
    BPF_FUNC_GET_SMP_PROCESSOR_ID, BPF_FUNC_KTIME_GET_NS, BPF_FUNC_MAP_DELETE_ELEM,
    BPF_FUNC_MAP_LOOKUP_ELEM, BPF_FUNC_MAP_UPDATE_ELEM, BPF_FUNC_REDIRECT,
};
use core::fmt;

/// Where a hook is attached, which fixes its context and return contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HookKind {
    /// On one direction of a link or a NIC queue, once per frame: context
    /// [`XdpMd`], returns an XDP verdict ([`crate::hook::insn::XDP_PASS`]
    /// and the others). Unknown values count as `XDP_ABORTED`.
    Packet = 1,
    /// When a VM ends other than by exiting 0: context [`RestartCtx`],
    /// returns [`RESTART_RESTART`] or [`RESTART_STAY_DOWN`]; any other
    /// value is counted as a bad answer and the manifest's restart policy
    /// decides.
    Restart = 2,
    /// On a VM's exits, before the handler runs (seccomp-style): context
    /// [`ExitCtx`], returns [`EXIT_ALLOW`], [`EXIT_DENY`] (the VM is
    /// stopped naming the hook) or, for a hypercall, [`exit_fail`]`(code)`
    /// (the hypercall is not performed and the guest gets `code` in RAX).
    /// Any other value is counted as a bad answer and treated as
    /// [`EXIT_DENY`] (the filter fails closed).
    Exit = 3,
    /// When a VM is put on its core: context [`SliceCtx`], returns the
    /// slice length in instructions; 0 means the manifest's slice, and an
    /// answer outside the manifest's range is clamped into it and counted.
    Slice = 4,
}

impl HookKind {
    /// Every kind, in wire order.
    pub const ALL: [HookKind; 4] = [
        HookKind::Packet,
        HookKind::Restart,
        HookKind::Exit,
        HookKind::Slice,
    ];

    /// The kind a wire value names.
    pub const fn from_u32(raw: u32) -> Option<Self> {
        Some(match raw {
            1 => HookKind::Packet,
            2 => HookKind::Restart,
            3 => HookKind::Exit,
            4 => HookKind::Slice,
            _ => return None,
        })
    }

    /// Its name in manifests and messages.
    pub const fn name(self) -> &'static str {
        match self {
            HookKind::Packet => "packet",
            HookKind::Restart => "restart",
            HookKind::Exit => "exit",
            HookKind::Slice => "slice",
        }
    }

    /// Bytes in its context struct.
    pub const fn context_size(self) -> usize {
        match self {
            HookKind::Packet => XDP_MD_SIZE,
            HookKind::Restart => RESTART_CTX_SIZE,
            HookKind::Exit => EXIT_CTX_SIZE,
            HookKind::Slice => SLICE_CTX_SIZE,
        }
    }

    /// The fields of its context struct, in offset order.
    pub const fn fields(self) -> &'static [Field] {
        match self {
            HookKind::Packet => &XDP_MD_FIELDS,
            HookKind::Restart => &RESTART_FIELDS,
            HookKind::Exit => &EXIT_FIELDS,
            HookKind::Slice => &SLICE_FIELDS,
        }
    }

    /// The field at `offset` if it is `size` bytes long.
    pub fn field_at(self, offset: i64, size: usize) -> Option<&'static Field> {
        self.fields()
            .iter()
            .find(|f| i64::from(f.offset) == offset && usize::from(f.size) == size)
    }

    /// Whether a program of this kind may call helper `id`. Every kind may
    /// use maps, `ktime_get_ns` and `get_smp_processor_id`; only packet
    /// hooks may `redirect`.
    pub const fn allows(self, id: u32) -> bool {
        match id {
            BPF_FUNC_MAP_LOOKUP_ELEM
            | BPF_FUNC_MAP_UPDATE_ELEM
            | BPF_FUNC_MAP_DELETE_ELEM
            | BPF_FUNC_KTIME_GET_NS
            | BPF_FUNC_GET_SMP_PROCESSOR_ID => true,
            BPF_FUNC_REDIRECT => matches!(self, HookKind::Packet),
            _ => false,
        }
    }
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One field of a context struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Its name (the C member name).
    pub name: &'static str,
    /// Byte offset in the struct.
    pub offset: u16,
    /// Size in bytes (4 or 8).
    pub size: u8,
}

const fn field(name: &'static str, offset: usize, size: usize) -> Field {
    Field {
        name,
        offset: offset as u16,
        size: size as u8,
    }
}

/// Whether `fields` are in order, naturally aligned, do not overlap and end
/// inside `size` bytes (checked at compile time for every table).
const fn well_formed(fields: &[Field], size: usize) -> bool {
    let mut end = 0;
    let mut i = 0;
    while i < fields.len() {
        let f = fields[i];
        let (off, len) = (f.offset as usize, f.size as usize);
        if off < end || off % len != 0 || off + len > size {
            return false;
        }
        end = off + len;
        i += 1;
    }
    end == size
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    if let Some(d) = b.get_mut(at..at + 4) {
        d.copy_from_slice(&v.to_le_bytes());
    }
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    if let Some(d) = b.get_mut(at..at + 8) {
        d.copy_from_slice(&v.to_le_bytes());
    }
}

// ---------------------------------------------------------------- packet

/// `xdp_md.data`: address of the frame's first byte (u32).
pub const XDP_DATA: usize = 0;
/// `xdp_md.data_end`: address one past the frame's last byte (u32).
pub const XDP_DATA_END: usize = 4;
/// `xdp_md.data_meta`: address of the metadata before `data`; equal to
/// `data` (no metadata) (u32).
pub const XDP_DATA_META: usize = 8;
/// `xdp_md.ingress_ifindex`: the sender's port id (u32).
pub const XDP_INGRESS_IFINDEX: usize = 12;
/// `xdp_md.rx_queue_index`: the receive queue (u32).
pub const XDP_RX_QUEUE_INDEX: usize = 16;
/// `xdp_md.egress_ifindex`: the receiver's port id (u32).
pub const XDP_EGRESS_IFINDEX: usize = 20;
/// Bytes in `struct xdp_md`.
pub const XDP_MD_SIZE: usize = 24;

const XDP_MD_FIELDS: [Field; 6] = [
    field("data", XDP_DATA, 4),
    field("data_end", XDP_DATA_END, 4),
    field("data_meta", XDP_DATA_META, 4),
    field("ingress_ifindex", XDP_INGRESS_IFINDEX, 4),
    field("rx_queue_index", XDP_RX_QUEUE_INDEX, 4),
    field("egress_ifindex", XDP_EGRESS_IFINDEX, 4),
];
const _: () = assert!(well_formed(&XDP_MD_FIELDS, XDP_MD_SIZE));

/// The packet hook's context, Linux's `struct xdp_md`. The three
/// addresses are addresses in the program's virtual address space (they
/// fit 32 bits there), so a program compares and dereferences them as
/// XDP programs do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpMd {
    /// Address of the frame's first byte.
    pub data: u32,
    /// Address one past its last byte.
    pub data_end: u32,
    /// Address of the metadata (equal to `data`: there is none).
    pub data_meta: u32,
    /// The sending port's id.
    pub ingress_ifindex: u32,
    /// The receive queue index.
    pub rx_queue_index: u32,
    /// The receiving port's id.
    pub egress_ifindex: u32,
}

impl XdpMd {
    /// The context bytes a program sees.
    pub fn to_bytes(&self) -> [u8; XDP_MD_SIZE] {
        let mut b = [0; XDP_MD_SIZE];
        put_u32(&mut b, XDP_DATA, self.data);
        put_u32(&mut b, XDP_DATA_END, self.data_end);
        put_u32(&mut b, XDP_DATA_META, self.data_meta);
        put_u32(&mut b, XDP_INGRESS_IFINDEX, self.ingress_ifindex);
        put_u32(&mut b, XDP_RX_QUEUE_INDEX, self.rx_queue_index);
        put_u32(&mut b, XDP_EGRESS_IFINDEX, self.egress_ifindex);
        b
    }
}

// ---------------------------------------------------------------- restart

/// `vm`: the VM's index in the manifest (u32).
pub const RESTART_VM: usize = 0;
/// `clone`: which clone of it (u32).
pub const RESTART_CLONE: usize = 4;
/// `status`: how it ended, one of `STATUS_*` (u32).
pub const RESTART_STATUS: usize = 8;
/// `exit_code`: the code it passed to `exit`, if it exited (i64).
pub const RESTART_EXIT_CODE: usize = 16;
/// `reason`: the class of the stop, one of `REASON_*` (u32).
pub const RESTART_REASON: usize = 24;
/// `restarts`: how often it was restarted so far (u32).
pub const RESTART_RESTARTS: usize = 28;
/// `instructions`: guest instructions it ran in this life (u64).
pub const RESTART_INSTRUCTIONS: usize = 32;
/// Bytes in the restart context.
pub const RESTART_CTX_SIZE: usize = 40;

const RESTART_FIELDS: [Field; 7] = [
    field("vm", RESTART_VM, 4),
    field("clone", RESTART_CLONE, 4),
    field("status", RESTART_STATUS, 4),
    field("exit_code", RESTART_EXIT_CODE, 8),
    field("reason", RESTART_REASON, 4),
    field("restarts", RESTART_RESTARTS, 4),
    field("instructions", RESTART_INSTRUCTIONS, 8),
];
const _: () = assert!(well_formed(&RESTART_FIELDS, RESTART_CTX_SIZE));

/// Status: the guest called `exit` with a nonzero code.
pub const STATUS_EXITED: u32 = 0;
/// Status: the hypervisor stopped it (the reason class says why).
pub const STATUS_STOPPED: u32 = 1;
/// Status: it could not be started.
pub const STATUS_START_FAILED: u32 = 2;

/// Reason class: none (it exited).
pub const REASON_NONE: u32 = 0;
/// Reason class: a triple fault (any guest exception: guests have no IDT).
pub const REASON_TRIPLE_FAULT: u32 = 1;
/// Reason class: an access outside its memory (EPT violation).
pub const REASON_EPT_VIOLATION: u32 = 2;
/// Reason class: a malformed hypercall.
pub const REASON_BAD_HYPERCALL: u32 = 3;
/// Reason class: a denied instruction, MSR, port or control register.
pub const REASON_DENIED: u32 = 4;
/// Reason class: a device fault (MMIO access or a broken ring).
pub const REASON_DEVICE: u32 = 5;
/// Reason class: its instruction budget ran out.
pub const REASON_BUDGET: u32 = 6;
/// Reason class: it halted with interrupts off.
pub const REASON_HALTED: u32 = 7;
/// Reason class: an exit hook denied one of its exits.
pub const REASON_HOOK_DENIED: u32 = 8;
/// Reason class: anything else.
pub const REASON_OTHER: u32 = 9;

/// Restart hook answer: leave the VM down.
pub const RESTART_STAY_DOWN: u64 = 0;
/// Restart hook answer: restart it with fresh memory.
pub const RESTART_RESTART: u64 = 1;

/// The restart hook's context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestartCtx {
    /// The VM's index in the manifest.
    pub vm: u32,
    /// Which clone of it.
    pub clone: u32,
    /// How it ended (`STATUS_*`).
    pub status: u32,
    /// Its exit code, if it exited.
    pub exit_code: i64,
    /// The class of the stop (`REASON_*`).
    pub reason: u32,
    /// Restarts so far.
    pub restarts: u32,
    /// Guest instructions it ran in this life.
    pub instructions: u64,
}

impl RestartCtx {
    /// The context bytes a program sees (padding zero).
    pub fn to_bytes(&self) -> [u8; RESTART_CTX_SIZE] {
        let mut b = [0; RESTART_CTX_SIZE];
        put_u32(&mut b, RESTART_VM, self.vm);
        put_u32(&mut b, RESTART_CLONE, self.clone);
        put_u32(&mut b, RESTART_STATUS, self.status);
        put_u64(&mut b, RESTART_EXIT_CODE, self.exit_code as u64);
        put_u32(&mut b, RESTART_REASON, self.reason);
        put_u32(&mut b, RESTART_RESTARTS, self.restarts);
        put_u64(&mut b, RESTART_INSTRUCTIONS, self.instructions);
        b
    }
}

// ---------------------------------------------------------------- exit

/// `reason`: the VMX basic exit reason (Intel SDM Vol. 3 Appendix C) (u32).
pub const EXIT_REASON: usize = 0;
/// `qualification`: the exit qualification (u64).
pub const EXIT_QUALIFICATION: usize = 8;
/// `rip`: the guest's RIP at the exit (u64).
pub const EXIT_RIP: usize = 16;
/// `hypercall`: RAX for a VMCALL exit, else 0 (u64).
pub const EXIT_HYPERCALL: usize = 24;
/// `arg0`: RDI for a VMCALL exit, else 0 (u64).
pub const EXIT_ARG0: usize = 32;
/// `arg1`: RSI for a VMCALL exit, else 0 (u64).
pub const EXIT_ARG1: usize = 40;
/// `arg2`: RDX for a VMCALL exit, else 0 (u64).
pub const EXIT_ARG2: usize = 48;
/// `gpa`: the guest-physical address of an EPT exit, else 0 (u64).
pub const EXIT_GPA: usize = 56;
/// Bytes in the exit context.
pub const EXIT_CTX_SIZE: usize = 64;

const EXIT_FIELDS: [Field; 8] = [
    field("reason", EXIT_REASON, 4),
    field("qualification", EXIT_QUALIFICATION, 8),
    field("rip", EXIT_RIP, 8),
    field("hypercall", EXIT_HYPERCALL, 8),
    field("arg0", EXIT_ARG0, 8),
    field("arg1", EXIT_ARG1, 8),
    field("arg2", EXIT_ARG2, 8),
    field("gpa", EXIT_GPA, 8),
];
const _: () = assert!(well_formed(&EXIT_FIELDS, EXIT_CTX_SIZE));

/// VMX exit reason: triple fault.
pub const EXIT_REASON_TRIPLE_FAULT: u32 = 2;
/// VMX exit reason: CPUID.
pub const EXIT_REASON_CPUID: u32 = 10;
/// VMX exit reason: HLT.
pub const EXIT_REASON_HLT: u32 = 12;
/// VMX exit reason: VMCALL (a hypercall).
pub const EXIT_REASON_VMCALL: u32 = 18;
/// VMX exit reason: I/O instruction.
pub const EXIT_REASON_IO: u32 = 30;
/// VMX exit reason: RDMSR.
pub const EXIT_REASON_MSR_READ: u32 = 31;
/// VMX exit reason: WRMSR.
pub const EXIT_REASON_MSR_WRITE: u32 = 32;
/// VMX exit reason: EPT violation.
pub const EXIT_REASON_EPT_VIOLATION: u32 = 48;
/// VMX exit reason: VMX-preemption timer expired.
pub const EXIT_REASON_PREEMPTION_TIMER: u32 = 52;

/// Exit hook answer: let the handler run.
pub const EXIT_ALLOW: u64 = 0;
/// Exit hook answer: stop the VM (`hook <name> denied ...`).
pub const EXIT_DENY: u64 = 1;
/// Exit hook action (low 32 bits): fail the hypercall with the code in
/// the upper 32 bits; see [`exit_fail`].
pub const EXIT_FAIL: u32 = 2;

/// The exit hook answer that fails a hypercall: it is not performed and
/// the guest gets `code` (zero-extended) in RAX.
pub const fn exit_fail(code: u32) -> u64 {
    EXIT_FAIL as u64 | (code as u64) << 32
}

/// The exit hook's context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitCtx {
    /// The VMX basic exit reason.
    pub reason: u32,
    /// The exit qualification.
    pub qualification: u64,
    /// The guest's RIP.
    pub rip: u64,
    /// The hypercall number (VMCALL exits).
    pub hypercall: u64,
    /// The hypercall's three arguments (VMCALL exits).
    pub args: [u64; 3],
    /// The guest-physical address (EPT exits).
    pub gpa: u64,
}

impl ExitCtx {
    /// The context bytes a program sees (padding zero).
    pub fn to_bytes(&self) -> [u8; EXIT_CTX_SIZE] {
        let mut b = [0; EXIT_CTX_SIZE];
        put_u32(&mut b, EXIT_REASON, self.reason);
        put_u64(&mut b, EXIT_QUALIFICATION, self.qualification);
        put_u64(&mut b, EXIT_RIP, self.rip);
        put_u64(&mut b, EXIT_HYPERCALL, self.hypercall);
        put_u64(&mut b, EXIT_ARG0, self.args[0]);
        put_u64(&mut b, EXIT_ARG1, self.args[1]);
        put_u64(&mut b, EXIT_ARG2, self.args[2]);
        put_u64(&mut b, EXIT_GPA, self.gpa);
        b
    }
}

// ---------------------------------------------------------------- slice

/// `vm`: the VM's index in the manifest (u32).
pub const SLICE_VM: usize = 0;
/// `core`: the core it is put on (u32).
pub const SLICE_CORE: usize = 4;
/// `slices`: slices it had so far (u64).
pub const SLICE_SLICES: usize = 8;
/// `used`: instructions it used so far (u64).
pub const SLICE_USED: usize = 16;
/// `waited`: instructions it spent waiting (u64).
pub const SLICE_WAITED: usize = 24;
/// `last_exit`: the VMX basic reason of its last exit (u32).
pub const SLICE_LAST_EXIT: usize = 32;
/// Bytes in the slice context.
pub const SLICE_CTX_SIZE: usize = 40;

const SLICE_FIELDS: [Field; 6] = [
    field("vm", SLICE_VM, 4),
    field("core", SLICE_CORE, 4),
    field("slices", SLICE_SLICES, 8),
    field("used", SLICE_USED, 8),
    field("waited", SLICE_WAITED, 8),
    field("last_exit", SLICE_LAST_EXIT, 4),
];
// The struct is padded to a multiple of 8 after `last_exit`.
const _: () = assert!(well_formed(&SLICE_FIELDS, SLICE_LAST_EXIT + 4));
const _: () = assert!(SLICE_CTX_SIZE == SLICE_LAST_EXIT + 8);

/// Slice hook answer: the manifest's slice length.
pub const SLICE_DEFAULT: u64 = 0;

/// The slice hook's context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SliceCtx {
    /// The VM's index in the manifest.
    pub vm: u32,
    /// The core it is put on.
    pub core: u32,
    /// Slices so far.
    pub slices: u64,
    /// Instructions used so far.
    pub used: u64,
    /// Instructions spent waiting.
    pub waited: u64,
    /// The VMX basic reason of its last exit.
    pub last_exit: u32,
}

impl SliceCtx {
    /// The context bytes a program sees (padding zero).
    pub fn to_bytes(&self) -> [u8; SLICE_CTX_SIZE] {
        let mut b = [0; SLICE_CTX_SIZE];
        put_u32(&mut b, SLICE_VM, self.vm);
        put_u32(&mut b, SLICE_CORE, self.core);
        put_u64(&mut b, SLICE_SLICES, self.slices);
        put_u64(&mut b, SLICE_USED, self.used);
        put_u64(&mut b, SLICE_WAITED, self.waited);
        put_u32(&mut b, SLICE_LAST_EXIT, self.last_exit);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_lookup() {
        assert_eq!(HookKind::Packet.context_size(), 24);
        assert_eq!(HookKind::Restart.context_size(), 40);
        assert_eq!(HookKind::Exit.context_size(), 64);
        assert_eq!(HookKind::Slice.context_size(), 40);
        assert!(HookKind::Restart.field_at(16, 8).is_some());
        assert!(HookKind::Restart.field_at(12, 4).is_none(), "padding");
        assert!(
            HookKind::Restart.field_at(16, 4).is_none(),
            "part of a field"
        );
        for k in HookKind::ALL {
            assert_eq!(HookKind::from_u32(k as u32), Some(k));
        }
    }

    #[test]
    fn helpers_per_kind() {
        assert!(HookKind::Packet.allows(BPF_FUNC_REDIRECT));
        assert!(!HookKind::Exit.allows(BPF_FUNC_REDIRECT));
        assert!(HookKind::Slice.allows(BPF_FUNC_MAP_LOOKUP_ELEM));
        assert!(!HookKind::Packet.allows(12));
    }

    #[test]
    fn bytes_at_offsets() {
        let c = RestartCtx {
            exit_code: -3,
            restarts: 2,
            ..Default::default()
        };
        let b = c.to_bytes();
        assert_eq!(
            b[RESTART_EXIT_CODE..RESTART_EXIT_CODE + 8],
            (-3i64).to_le_bytes()
        );
        assert_eq!(b[RESTART_RESTARTS], 2);
        assert_eq!(exit_fail(5) >> 32, 5);
    }
}
