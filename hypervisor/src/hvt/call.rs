//! An hvt guest's hypercalls: a 32-bit `out` to a hypercall port with EAX = the argument struct's address, checked against the guest's memory as Solo5's tender checks it (the struct and every buffer strictly inside memory), then carried out: `puts`, `walltime`, `poll` (the net devices with a frame waiting, or a wait of at most its timeout), `halt`, block calls on its disks, net calls on its ports' rings (`net`); block and net calls without such a device, and any other port or access, stop the guest by name.

use crate::block::{BlockError, Disk};
use crate::hvt::net::{self, NetFail, RingPlace};
use crate::hvt::ring::{self, RingShared};
use crate::mem::access::{Gpa, GuestRam, GuestRead};
use crate::mem::raw::RawRam;
use core::fmt;
use vmm_abi::corral::hypercall::MAX_WAIT;
use vmm_abi::hvt::{self, Hypercall};

/// Nanoseconds per second.
const NS: u128 = 1_000_000_000;
/// Bytes of console output read at once.
const PUTS_CHUNK: usize = 256;
/// Most bytes one `puts` reads: a VM's console allowance for its whole
/// run (`console::quota`), so nothing it could print is left unread, and
/// one exit cannot copy gigabytes while other VMs wait for the core.
pub const PUTS_MAX: u64 = crate::console::quota::CONSOLE_CAP;

/// A `net_write` waiting for a transmit slot looks again at least this
/// many times a second (a completion wakes it sooner).
const RETRY_PER_SECOND: u64 = 1000;
/// Seconds a call waits for the polling core before it gives up: a peer
/// that never takes frames (a link with `hold = 0`, a port its VM never
/// brought up) must not hold the guest for ever.
pub const RETRY_LIMIT_SECONDS: u64 = 1;

/// Most block devices one hvt VM may have attached.
pub const MAX_VM_BLOCKS: usize = 8;

/// A disk as a VM reaches it: set up at boot, never freed, locked for one
/// request at a time (only its VM and, after the run, the report use it).
pub type SharedDisk = spin::Mutex<Disk<'static, RawRam>>;

/// The block devices hvt VMs reach by handle: the run's disks, looked up
/// only by the calls that need one (so other calls carry one reference).
pub trait HvtDisks: Sync {
    /// VM `vm`'s disk with Solo5 handle `handle` (its index in the VM's
    /// manifest), if it has one.
    fn disk(&self, vm: u32, handle: u64) -> Option<&SharedDisk>;
    /// Whether VM `vm` has any block device.
    fn any(&self, vm: u32) -> bool;
}

/// A run without block devices.
pub struct NoDisks;

impl HvtDisks for NoDisks {
    fn disk(&self, _: u32, _: u64) -> Option<&SharedDisk> {
        None
    }
    fn any(&self, _: u32) -> bool {
        false
    }
}

/// An hvt VM's net devices: each one's Solo5 handle and where its rings
/// are.
pub type HvtNets = heapless::Vec<(u64, RingPlace), { net::MAX_VM_NETS }>;

/// What an hvt VM's hypercalls need from the hypervisor.
pub struct HvtEnv {
    /// The guest's memory (results are written back into it), with its
    /// net devices' rings above `memory`.
    pub ram: RawRam,
    /// Bytes of memory the guest sees (every buffer must lie inside).
    pub memory: u64,
    /// Its net devices.
    pub nets: HvtNets,
    /// Nanoseconds since the Unix epoch, now.
    pub wall_ns: u64,
    /// TSC ticks per second.
    pub tsc_hz: u64,
    /// The VM (its manifest index), for its block devices.
    pub vm: u32,
    /// The run's block devices.
    pub disks: &'static dyn HvtDisks,
    /// TSC ticks since this call first asked to run again ([`HvtDone::Retry`];
    /// 0 the first time): past [`RETRY_LIMIT_SECONDS`] it gives up.
    pub retrying: u64,
    /// Its shared net ring, if it was offered one (a VM with net
    /// devices): the driver lock of its devices, and requests still to
    /// serve at `halt`.
    pub ring: Option<&'static RingShared>,
}

/// One port access of the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortAccess {
    /// The port.
    pub port: u16,
    /// Bytes.
    pub size: u8,
    /// IN (true) or OUT.
    pub is_in: bool,
    /// INS/OUTS.
    pub string: bool,
}

/// What a hypercall leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HvtDone {
    /// Continue after the `out`.
    Advance,
    /// Run the `out` again once at most this many TSC ticks have passed,
    /// or sooner when a polling core completes one of the VM's buffers
    /// (`net_write` on a full transmit ring: Solo5's writes do not fail
    /// for want of room, so the guest waits as a blocking write would).
    Retry(u64),
    /// The guest halted with this exit status.
    Exit(i32),
}

/// Why an hvt guest is stopped at a port access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HvtCallError {
    /// Not a port of the hvt hypercalls at all.
    NotACall {
        /// The port.
        port: u16,
        /// A write.
        write: bool,
    },
    /// A hypercall port accessed other than by a 32-bit `out`.
    Access(PortAccess),
    /// The argument struct or a buffer is not inside guest memory.
    Buffer {
        /// The call.
        call: Hypercall,
        /// Its address.
        gpa: u64,
        /// Its bytes.
        len: u64,
    },
    /// A block or net call with no such device attached.
    NoDevice {
        /// The call.
        call: Hypercall,
    },
}

impl fmt::Display for HvtCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HvtCallError::NotACall { port, write } => write!(
                f,
                "Invalid guest port access: port={port:#x} ({}; an hvt guest may only `out` to the hypercall ports {:#x}..={:#x})",
                if *write { "out" } else { "in" },
                hvt::HYPERCALL_PIO_BASE + 1,
                hvt::HYPERCALL_PIO_BASE + hvt::HC_MAX - 1
            ),
            HvtCallError::Access(a) => write!(
                f,
                "Invalid guest port access: port={:#x} by {} {} of {} bytes (hypercalls are 4-byte `out`s)",
                a.port,
                if a.string { "a string" } else { "an" },
                if a.is_in { "in" } else { "out" },
                a.size
            ),
            HvtCallError::Buffer { call, gpa, len } => write!(
                f,
                "hvt {}: Invalid guest access: gpa={gpa:#x}, sz={len}",
                call.name()
            ),
            HvtCallError::NoDevice { call } => write!(
                f,
                "Invalid guest hypercall: {} (no such device is attached)",
                call.name()
            ),
        }
    }
}

impl HvtEnv {
    /// Whether the current call has waited its bound.
    fn gave_up(&self) -> bool {
        self.retrying >= self.tsc_hz.saturating_mul(RETRY_LIMIT_SECONDS)
    }
}

/// Whether `gpa .. gpa + len` lies strictly inside `size` bytes (the
/// tender refuses a range that ends exactly at the end of memory).
pub(crate) fn inside(gpa: u64, len: u64, size: u64) -> bool {
    gpa < size && gpa.checked_add(len).is_some_and(|end| end < size)
}

/// Handles the port access `io` with EAX = `eax`; console output goes to
/// `console`.
pub fn handle(
    io: PortAccess,
    eax: u32,
    env: &mut HvtEnv,
    mut console: impl FnMut(&[u8]),
) -> Result<HvtDone, HvtCallError> {
    let in_range =
        (hvt::HYPERCALL_PIO_BASE..hvt::HYPERCALL_PIO_BASE + hvt::HC_MAX).contains(&io.port);
    // A kick of the shared ring's service: it never sleeps (a polling core
    // serves the ring on every pass), so there is nothing to wake.
    if io.port == hvt::RING_KICK_PORT && env.ring.and_then(RingShared::gpa).is_some() {
        if io.size != hvt::HYPERCALL_SIZE || io.is_in || io.string {
            return Err(HvtCallError::Access(io));
        }
        return Ok(HvtDone::Advance);
    }
    if !in_range {
        return Err(HvtCallError::NotACall {
            port: io.port,
            write: !io.is_in,
        });
    }
    if io.size != hvt::HYPERCALL_SIZE || io.is_in || io.string {
        return Err(HvtCallError::Access(io));
    }
    let Some(call) = Hypercall::from_port(io.port) else {
        return Err(HvtCallError::NotACall {
            port: io.port,
            write: true,
        });
    };
    let gpa = u64::from(eax);
    let gave_up = env.gave_up();
    let ram = &mut env.ram;
    let size = env.memory;
    let need = |len: u64| {
        if inside(gpa, len, size) {
            Ok(())
        } else {
            Err(HvtCallError::Buffer { call, gpa, len })
        }
    };
    let fail = |len| HvtCallError::Buffer { call, gpa, len };
    match call {
        Hypercall::Puts => {
            need(hvt::PUTS_SIZE)?;
            let data = ram.read_u64(Gpa(gpa)).map_err(|_| fail(hvt::PUTS_SIZE))?;
            let len = ram
                .read_u64(Gpa(gpa + 8))
                .map_err(|_| fail(hvt::PUTS_SIZE))?;
            if !inside(data, len, size) {
                return Err(HvtCallError::Buffer {
                    call,
                    gpa: data,
                    len,
                });
            }
            let mut buf = [0u8; PUTS_CHUNK];
            let mut at = 0;
            while at < len.min(PUTS_MAX) {
                let n = (len.min(PUTS_MAX) - at).min(PUTS_CHUNK as u64) as usize;
                ram.read(Gpa(data + at), &mut buf[..n])
                    .map_err(|_| HvtCallError::Buffer {
                        call,
                        gpa: data,
                        len,
                    })?;
                console(&buf[..n]);
                at += n as u64;
            }
            Ok(HvtDone::Advance)
        }
        Hypercall::Walltime => {
            need(hvt::WALLTIME_SIZE)?;
            ram.write_u64(Gpa(gpa), env.wall_ns)
                .map_err(|_| fail(hvt::WALLTIME_SIZE))?;
            Ok(HvtDone::Advance)
        }
        Hypercall::Poll => {
            need(hvt::POLL_SIZE)?;
            let timeout = ram.read_u64(Gpa(gpa)).map_err(|_| fail(hvt::POLL_SIZE))?;
            // The devices with a frame waiting, by handle.
            let mut ready_set = 0u64;
            for &(handle, place) in &env.nets {
                // A ring that cannot be read has nothing to offer.
                if net::ready(ram, place).unwrap_or(false) {
                    ready_set |= 1u64.checked_shl(handle as u32).unwrap_or(0);
                }
            }
            ram.write_u64(Gpa(gpa + hvt::POLL_READY_SET), ready_set)
                .and_then(|()| ram.write_u32(Gpa(gpa + hvt::POLL_RET), ready_set.count_ones()))
                .map_err(|_| fail(hvt::POLL_SIZE))?;
            let ticks = u128::from(timeout) * u128::from(env.tsc_hz) / NS;
            let ticks = ticks.min(u128::from(MAX_WAIT)) as u64;
            // Nothing ready and time left: wait for device work or the rest
            // of the timeout, then poll again. So a poll returns with
            // something ready, or with nothing once its timeout has passed,
            // never early.
            if ready_set == 0 && env.retrying < ticks {
                return Ok(HvtDone::Retry(ticks - env.retrying));
            }
            Ok(HvtDone::Advance)
        }
        Hypercall::Halt => {
            need(hvt::HALT_SIZE)?;
            let cookie = ram.read_u64(Gpa(gpa)).map_err(|_| fail(hvt::HALT_SIZE))?;
            let status = ram
                .read_u32(Gpa(gpa + hvt::HALT_STATUS))
                .map_err(|_| fail(hvt::HALT_SIZE))? as i32;
            if cookie != 0 && !inside(cookie, hvt::HALT_COOKIE_MAX, size) {
                return Err(HvtCallError::Buffer {
                    call,
                    gpa: cookie,
                    len: hvt::HALT_COOKIE_MAX,
                });
            }
            // A frame `net_write` took is on its way, as with the tender's
            // tap: the guest stops once the polling core has taken them all
            // (usually soon: it drops what a stalled or gone receiver
            // leaves), its core free for other VMs meanwhile, or after
            // RETRY_LIMIT_SECONDS (a peer that never takes any).
            let in_flight = |&(_, place): &(u64, RingPlace)| !net::sent(ram, place).unwrap_or(true);
            // Requests still in its shared ring are on their way too.
            let queued = env
                .ring
                .and_then(RingShared::gpa)
                .is_some_and(|at| ring::pending(ram, at).unwrap_or(false));
            if queued || env.nets.iter().any(in_flight) {
                if !gave_up {
                    return Ok(HvtDone::Retry(env.tsc_hz / RETRY_PER_SECOND));
                }
                log::warn!(
                    "vm {}: halts with frames it sent still queued after {RETRY_LIMIT_SECONDS} s; they are dropped",
                    env.vm
                );
            }
            Ok(HvtDone::Exit(status))
        }
        Hypercall::BlockRead | Hypercall::BlockWrite if env.disks.any(env.vm) => {
            need(hvt::BLOCK_SIZE)?;
            let word = |off| {
                ram.read_u64(Gpa(gpa + off))
                    .map_err(|_| fail(hvt::BLOCK_SIZE))
            };
            let handle = word(0)?;
            let offset = word(hvt::BLOCK_OFFSET)?;
            let data = word(hvt::BLOCK_DATA)?;
            let len = word(hvt::BLOCK_LEN)?;
            let ret = match env.disks.disk(env.vm, handle) {
                // Not one of its block devices (a net device's handle, or
                // none): refused, as the tender refuses it.
                None => hvt::R_EINVAL,
                Some(d) => {
                    let mut disk = d.lock();
                    // The tender refuses a buffer not strictly inside
                    // memory; the disk then checks it is all there (and
                    // writable, for a read).
                    let buffer = HvtCallError::Buffer {
                        call,
                        gpa: data,
                        len,
                    };
                    let done = if disk.check(offset, len).is_ok() && !inside(data, len, size) {
                        Err(BlockError::Buffer { gpa: data, len })
                    } else if call == Hypercall::BlockRead {
                        disk.read(offset, len, ram, data)
                    } else {
                        disk.write(offset, len, &*ram, data)
                    };
                    match done {
                        Ok(()) => hvt::R_OK,
                        Err(BlockError::Buffer { .. }) => return Err(buffer),
                        Err(_) => hvt::R_EINVAL,
                    }
                }
            };
            ram.write_u32(Gpa(gpa + hvt::BLOCK_RET), ret as u32)
                .map_err(|_| fail(hvt::BLOCK_SIZE))?;
            Ok(HvtDone::Advance)
        }
        Hypercall::NetRead | Hypercall::NetWrite if !env.nets.is_empty() => {
            need(hvt::NET_SIZE)?;
            let word = |off| {
                ram.read_u64(Gpa(gpa + off))
                    .map_err(|_| fail(hvt::NET_SIZE))
            };
            let handle = word(0)?;
            let data = word(hvt::NET_DATA)?;
            let len = word(hvt::NET_LEN)?;
            let buffer = HvtCallError::Buffer {
                call,
                gpa: data,
                len,
            };
            let place = env.nets.iter().find(|(h, _)| *h == handle).map(|&(_, p)| p);
            let ret = match place {
                // Not one of its net devices (a block device's handle, or
                // none): refused, as the tender refuses it.
                None => hvt::R_EINVAL,
                Some(_) if !inside(data, len, size) => return Err(buffer),
                Some(place) => {
                    // The polling core serving its shared ring drives the
                    // same rings: one driver at a time.
                    let _driver = env.ring.map(RingShared::driver);
                    let done = if call == Hypercall::NetWrite {
                        net::send(ram, place, Gpa(data), len)
                    } else {
                        net::recv(ram, place, Gpa(data), len).and_then(|n| {
                            ram.write_u64(Gpa(gpa + hvt::NET_LEN), n)
                                .map_err(NetFail::Memory)
                        })
                    };
                    match done {
                        Ok(()) => hvt::R_OK,
                        // The polling core frees a slot before long (it
                        // drops what a stalled or gone receiver leaves);
                        // the wait is bounded all the same.
                        Err(NetFail::Again) if call == Hypercall::NetWrite && !gave_up => {
                            return Ok(HvtDone::Retry(env.tsc_hz / RETRY_PER_SECOND));
                        }
                        // Waited its bound: the write fails, and says so.
                        Err(NetFail::Again) if call == Hypercall::NetWrite => hvt::R_EUNSPEC,
                        Err(NetFail::Again) => hvt::R_AGAIN,
                        Err(NetFail::Length { .. }) => hvt::R_EINVAL,
                        // Inside memory but not writable (a read into the
                        // image's read-only pages): the guest's fault.
                        Err(NetFail::Memory(_)) => return Err(buffer),
                        Err(NetFail::BadUsed { .. }) => hvt::R_EUNSPEC,
                    }
                }
            };
            ram.write_u32(Gpa(gpa + hvt::NET_RET), ret as u32)
                .map_err(|_| fail(hvt::NET_SIZE))?;
            Ok(HvtDone::Advance)
        }
        Hypercall::BlockRead | Hypercall::BlockWrite | Hypercall::NetRead | Hypercall::NetWrite => {
            Err(HvtCallError::NoDevice { call })
        }
    }
}
