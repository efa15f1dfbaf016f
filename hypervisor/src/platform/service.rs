//! A service run's control plane on the machine: the control core serves COM2 through `control::Channel`; commands reach the core that owns a VM through that core's mailbox, which it drains between slices (no core touches another's VM state, no lock is held across a VM entry); each VM's status is published in atomics the `list` answer reads.

use super::com2;
use super::instr::rdtsc;
use super::memory;
use super::percpu::MAX_CORES;
use crate::control::{Channel, Fleet, Refusal, Request, Row, Text};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use heapless::Deque;
use spin::Mutex;
use vmm_abi::control::{NO_CORE, VM_RUNNING};
use vmm_abi::manifest::Manifest;

/// Requests one core's mailbox holds.
const MAILBOX: usize = 16;
/// Commands handed to cores and not yet answered, at most (so their
/// answers always have room).
const IN_FLIGHT: usize = 32;
/// Ticks the control core keeps sending after the run ended, at most
/// (the last answers: about 5 s of emulated time).
const FLUSH_TICKS: u64 = 500_000_000;

/// Per core: requests wait in its mailbox (read without the lock by a
/// core spinning for a lone VM's wait, which then gives the run loop a
/// moment).
static MAIL_WAITING: [AtomicBool; MAX_CORES] = [const { AtomicBool::new(false) }; MAX_CORES];

/// Whether requests wait for `core`.
#[inline]
pub fn mail_waiting(core: u32) -> bool {
    MAIL_WAITING
        .get(core as usize)
        .is_some_and(|f| f.load(Ordering::Relaxed))
}

/// One VM as the control plane sees it: where it lives (fixed) and its
/// status (written only by its core).
pub struct VmCell {
    /// Its core, or [`NO_CORE`].
    pub core: u32,
    /// Its position among its core's VMs.
    pub local: u32,
    status: AtomicU8,
    restarts: AtomicU32,
}

impl VmCell {
    /// A VM on `core` (or [`NO_CORE`]) at position `local`.
    pub fn new(core: u32, local: u32) -> Self {
        VmCell {
            core,
            local,
            status: AtomicU8::new(VM_RUNNING),
            restarts: AtomicU32::new(0),
        }
    }
}

/// A request in a core's mailbox.
#[derive(Clone, Copy, Debug)]
pub struct Mail {
    /// The VM's position among the core's VMs.
    pub local: u32,
    /// What to do.
    pub request: Request,
    /// The command's sequence number, for the answer.
    pub seq: u32,
}

/// The control plane of a service run.
pub struct ControlPlane {
    manifest: Manifest<'static>,
    cells: &'static [VmCell],
    mail: [Mutex<Deque<Mail, MAILBOX>>; MAX_CORES],
    answers: Mutex<Deque<(u32, Result<(), Text>), IN_FLIGHT>>,
    in_flight: AtomicU32,
    ending: AtomicBool,
    channel: Mutex<Channel>,
}

impl ControlPlane {
    /// The control plane over `manifest`'s VMs, placed by `place` (core or
    /// [`NO_CORE`], position; asked for each VM in manifest order); sets
    /// COM2 up.
    pub fn new(
        manifest: Manifest<'static>,
        mut place: impl FnMut(usize) -> (u32, u32),
    ) -> Result<Self, &'static str> {
        let cells = memory::leak_slice(
            manifest.len(),
            |i| {
                let (core, local) = place(i);
                Ok(VmCell::new(core, local))
            },
            "no memory for the control plane",
        )?;
        com2::init();
        Ok(ControlPlane {
            manifest,
            cells,
            mail: core::array::from_fn(|_| Mutex::new(Deque::new())),
            answers: Mutex::new(Deque::new()),
            in_flight: AtomicU32::new(0),
            ending: AtomicBool::new(false),
            channel: Mutex::new(Channel::new()),
        })
    }

    /// Whether the operator ended the run.
    pub fn ending(&self) -> bool {
        self.ending.load(Ordering::Acquire)
    }

    /// The next request for `core`'s VMs (its own core only).
    pub fn take_mail(&self, core: u32) -> Option<Mail> {
        let mut q = self.mail.get(core as usize)?.lock();
        let mail = q.pop_front();
        if q.is_empty()
            && let Some(f) = MAIL_WAITING.get(core as usize)
        {
            f.store(false, Ordering::Relaxed);
        }
        mail
    }

    /// A core carried out (or refused) command `seq`.
    pub fn answer(&self, seq: u32, result: Result<(), Text>) {
        // `post` admits at most IN_FLIGHT requests, so there is room.
        let _ = self.answers.lock().push_back((seq, result));
    }

    /// VM `vm` (manifest index) ended: `status` is a `VM_*`.
    pub fn set_status(&self, vm: u32, status: u8) {
        if let Some(c) = self.cells.get(vm as usize) {
            c.status.store(status, Ordering::Release);
        }
    }

    /// VM `vm` restarted (`restarts` times so far); it runs again.
    pub fn set_restarts(&self, vm: u32, restarts: u32) {
        if let Some(c) = self.cells.get(vm as usize) {
            c.restarts.store(restarts, Ordering::Release);
            c.status.store(VM_RUNNING, Ordering::Release);
        }
    }

    /// VM `vm`'s status (`VM_*`).
    pub fn status(&self, vm: u32) -> u8 {
        self.cells
            .get(vm as usize)
            .map_or(VM_RUNNING, |c| c.status.load(Ordering::Acquire))
    }

    /// One pass of the control core: answers from cores, bytes in, time,
    /// bytes out. Never waits.
    pub fn serve(&self) {
        let Some(mut ch) = self.channel.try_lock() else {
            return;
        };
        while ch.has_room() {
            let Some((seq, result)) = self.answers.lock().pop_front() else {
                break;
            };
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            ch.complete(seq, result.as_ref().map(|_| ()).map_err(|t| t.as_str()));
        }
        let mut fleet = Machine(self);
        while ch.wants_input() {
            let Some(b) = com2::read() else { break };
            ch.receive(b, rdtsc(), &mut fleet);
        }
        ch.tick(rdtsc(), &mut fleet);
        com2::send_ready(|| ch.pop_out());
    }

    /// After the run ended: sends what is left (every core's answers and
    /// the `end`'s), for at most [`FLUSH_TICKS`].
    pub fn flush(&self) {
        let start = rdtsc();
        loop {
            self.serve();
            let idle = self.in_flight.load(Ordering::Acquire) == 0
                && self.answers.lock().is_empty()
                && self.channel.lock().pending_out() == 0;
            if idle || rdtsc().wrapping_sub(start) > FLUSH_TICKS {
                return;
            }
            core::hint::spin_loop();
        }
    }
}

/// The run as the channel sees it.
struct Machine<'a>(&'a ControlPlane);

impl Fleet for Machine<'_> {
    fn count(&self) -> u32 {
        self.0.cells.len() as u32
    }

    fn row(&self, vm: u32) -> Option<Row<'_>> {
        let cell = self.0.cells.get(vm as usize)?;
        Some(Row {
            name: self.0.manifest.get(vm as usize)?.name,
            status: cell.status.load(Ordering::Acquire),
            core: cell.core,
            restarts: cell.restarts.load(Ordering::Acquire),
        })
    }

    fn find(&self, name: &str) -> Option<u32> {
        self.0
            .manifest
            .iter()
            .position(|s| s.name == name)
            .map(|i| i as u32)
    }

    fn post(&mut self, vm: u32, request: Request, seq: u32) -> Result<(), Refusal> {
        let cp = self.0;
        let cell = cp.cells.get(vm as usize).ok_or(Refusal::NoCore)?;
        if cell.core == NO_CORE {
            return Err(Refusal::NoCore);
        }
        if cp.in_flight.load(Ordering::Acquire) as usize >= IN_FLIGHT {
            return Err(Refusal::Busy {
                limit: IN_FLIGHT as u32,
            });
        }
        let mail = Mail {
            local: cell.local,
            request,
            seq,
        };
        let slot = cp.mail.get(cell.core as usize).ok_or(Refusal::NoCore)?;
        {
            let mut q = slot.lock();
            if q.push_back(mail).is_err() {
                return Err(Refusal::MailboxFull { core: cell.core });
            }
            if let Some(f) = MAIL_WAITING.get(cell.core as usize) {
                f.store(true, Ordering::Relaxed);
            }
        }
        cp.in_flight.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    fn end(&mut self) {
        self.0.ending.store(true, Ordering::Release);
        // Every core's run loop must see it, even one spinning in a lone
        // VM's wait.
        for f in &MAIL_WAITING {
            f.store(true, Ordering::Relaxed);
        }
    }

    fn free_bytes(&self) -> u64 {
        memory::free_bytes()
    }
}
