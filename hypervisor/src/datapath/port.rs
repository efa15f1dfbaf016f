//! A VM's virtio-net port as the data path sees it: the device state behind its lock, where it is in its life, and the signals its VM waits on.
//!
//! A port's [`PortInner`] is touched by two cores: the core its VM runs on
//! (register accesses, creation, teardown) and the core polling its link;
//! both take the port's lock ([`Port`]). Its life:
//!
//! ```text
//!           attach (VM created)            DRIVER_OK, both rings check
//!  (any) ----------------------> Down ---------------------------------> Up
//!                                 ^  <--- reset, queues changed, detach ---'
//!  detach for good (VM ended) --> Gone      a ring broke the rules --> Broken
//! ```
//!
//! Frames for a port that is `Down` wait in the sender's ring; frames for
//! one that is `Gone` or `Broken` are dropped and counted. Whenever its
//! rings may have changed, its generation changes, so the poller forgets
//! any receive buffer it kept from the old ones. Guest memory is reached
//! through [`RawRam`], which exists only while the VM does (removed at
//! `detach`, under the lock, before the frames are freed).

use super::endpoint::{LinkEnd, Receiver};
use super::virtio::{VirtioRx, VirtioTx};
use crate::devices::virtio::error::RingError;
use crate::devices::virtio::mmio::{Transport, TransportConfig, WriteEffect};
use crate::devices::virtio::net::{NetDevice, RECEIVE_QUEUE, TRANSMIT_QUEUE};
use crate::devices::virtio::queue::{Chain, QueueError};
use crate::mem::raw::RawRam;
use core::sync::atomic::AtomicBool;
use spin::Mutex;
use vmm_abi::corral::devices::port_mac;

/// Where a port is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortState {
    /// Its VM is not running or its driver is not ready: frames for it wait.
    Down,
    /// Both queues are set up and checked: frames move.
    Up,
    /// Its VM ended for good: frames for it are dropped and counted.
    Gone,
    /// One of its rings broke the rules; its VM is being stopped.
    Broken,
}

/// The device state of one port.
pub struct PortInner {
    /// The virtio-mmio transport and net device.
    pub transport: Transport<NetDevice>,
    ram: Option<RawRam>,
    state: PortState,
    /// Changes whenever the rings may have changed (reset, restart).
    generation: u32,
    fault: Option<RingError>,
}

/// One net port of one VM.
pub struct Port {
    /// Manifest index of its VM.
    pub vm: u32,
    /// Port number on that VM.
    pub port: u8,
    pub(super) inner: Mutex<PortInner>,
}

/// Flags a polling core raises for a VM's core.
#[derive(Default)]
pub struct Signals {
    /// A pump completed buffers of this VM since it last waited.
    pub work: AtomicBool,
    /// One of its rings broke the rules (the port says which).
    pub fault: AtomicBool,
}

/// What a register write did to a port, for its VM's core.
pub enum PortEvent {
    /// Nothing to do.
    None,
    /// The driver is ready but a ring is unusable: stop the VM.
    BadRing(QueueError),
}

/// A fresh device for port `port` of VM `vm` with `memory` bytes.
fn device(vm: u32, port: u8, memory: u64) -> Transport<NetDevice> {
    Transport::new(
        NetDevice::new(port_mac(vm, port)),
        TransportConfig::new(memory),
    )
}

impl Port {
    /// Port `port` of VM `vm`, which has `memory` bytes; down, with no
    /// memory attached.
    pub fn new(vm: u32, port: u8, memory: u64) -> Port {
        Port {
            vm,
            port,
            inner: Mutex::new(PortInner {
                transport: device(vm, port, memory),
                ram: None,
                state: PortState::Down,
                generation: 0,
                fault: None,
            }),
        }
    }

    /// Runs `f` on its device state, under its lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut PortInner) -> R) -> R {
        f(&mut self.inner.lock())
    }

    /// Its VM's run begins: a fresh device over `ram` (the VM's `memory`
    /// bytes), down until the driver is ready, no fault.
    pub fn attach(&self, memory: u64, ram: RawRam) {
        let mut inner = self.inner.lock();
        inner.transport = device(self.vm, self.port, memory);
        inner.ram = Some(ram);
        inner.state = PortState::Down;
        inner.generation = inner.generation.wrapping_add(1);
        inner.fault = None;
    }

    /// Its VM's run ended (before its memory is freed): the memory is
    /// dropped, and the port goes down, or away for good.
    pub fn detach(&self, for_good: bool) {
        let mut inner = self.inner.lock();
        inner.ram = None;
        inner.state = if for_good {
            PortState::Gone
        } else {
            PortState::Down
        };
        inner.generation = inner.generation.wrapping_add(1);
    }
}

impl PortInner {
    /// Where it is in its life.
    pub fn state(&self) -> PortState {
        self.state
    }

    /// The generation of its rings.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The first ring fault recorded since its VM's run began.
    pub fn fault(&self) -> Option<RingError> {
        self.fault
    }

    /// Gives back receive buffer `buffer`, which a link kept from its ring
    /// of `generation` and lets go of unused: the driver finds it available
    /// again, if it is the one the ring handed out last. `false` if not
    /// (another was taken since: it stays taken until the ring is reset),
    /// or if the ring changed since (the buffer means nothing then).
    pub fn give_back_rx(&mut self, generation: u32, buffer: &Chain) -> bool {
        if self.generation != generation {
            return false;
        }
        match (self.transport.queue_mut(RECEIVE_QUEUE), self.ram.as_ref()) {
            (Some(queue), Some(ram)) => queue.unpop(ram, buffer.head()),
            _ => false,
        }
    }

    /// Runs `f` on its transport and its VM's memory, for a driver the
    /// hypervisor plays itself (an hvt guest's net device); `None` while
    /// the VM's memory is not attached.
    pub fn drive<R>(
        &mut self,
        f: impl FnOnce(&mut Transport<NetDevice>, &mut RawRam) -> R,
    ) -> Option<R> {
        let mut ram = self.ram?;
        Some(f(&mut self.transport, &mut ram))
    }

    /// Applies the effect of a register write: at `DRIVER_OK`, checks both
    /// rings, turns notifications off and brings the port up; at a reset,
    /// takes it down.
    pub fn after_write(&mut self, effect: WriteEffect) -> PortEvent {
        let bring_up = match effect {
            WriteEffect::None | WriteEffect::Notify(_) | WriteEffect::FeaturesRejected => {
                return PortEvent::None;
            }
            WriteEffect::DriverOk | WriteEffect::QueuesChanged => true,
            WriteEffect::Reset | WriteEffect::DriverFailed => false,
        };
        // The rings may have changed: whatever the poller holds from the old
        // ones is void, and frames wait until the new ones check.
        self.generation = self.generation.wrapping_add(1);
        if self.state == PortState::Up {
            self.state = PortState::Down;
        }
        let Some(mut ram) = self.ram.filter(|_| bring_up) else {
            return PortEvent::None;
        };
        for q in [RECEIVE_QUEUE, TRANSMIT_QUEUE] {
            let Some(queue) = self.transport.queue_mut(q) else {
                // A queue the driver did not set up: the port stays down
                // and its peer's frames wait.
                return PortEvent::None;
            };
            if let Err(e) = queue
                .check_rings(&mut ram)
                .and_then(|()| queue.set_no_notify(&mut ram, true))
            {
                return PortEvent::BadRing(e);
            }
        }
        self.state = PortState::Up;
        PortEvent::None
    }
}

impl LinkEnd for PortInner {
    type Frame = Chain;
    type Buffer = Chain;
    type Source<'a> = VirtioTx<'a, RawRam>;
    type Sink<'a> = VirtioRx<'a, RawRam>;

    #[inline]
    fn source(&mut self) -> Option<VirtioTx<'_, RawRam>> {
        if self.state != PortState::Up {
            return None;
        }
        // Borrowed in place: a view is a few hundred bytes, not worth a copy
        // per pass.
        let (Some(ram), Some(tx)) = (self.ram.as_mut(), self.transport.queue_mut(TRANSMIT_QUEUE))
        else {
            return None;
        };
        Some(VirtioTx::new(tx, ram))
    }

    #[inline]
    fn sink(&mut self) -> Option<(Receiver<VirtioRx<'_, RawRam>>, u32)> {
        let receiver = match (
            self.state,
            self.ram.as_mut(),
            self.transport.queue_mut(RECEIVE_QUEUE),
        ) {
            (PortState::Up, Some(ram), Some(rq)) => Receiver::Ready(VirtioRx::new(rq, ram)),
            (PortState::Gone | PortState::Broken, _, _) => Receiver::Gone,
            _ => return None,
        };
        Some((receiver, self.generation))
    }

    fn blame(&mut self, error: RingError) {
        self.state = PortState::Broken;
        self.fault.get_or_insert(error);
    }
}

#[cfg(test)]
mod tests;
