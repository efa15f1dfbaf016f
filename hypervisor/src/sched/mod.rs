//! Scheduling without hardware: core assignment ([`assign`]), one core's run queue ([`queue`]), and the policy that picks the next VM behind the [`Scheduler`] trait ([`round_robin`]), so a policy hook can later choose slices.
//!
//! The shape follows Tock's scheduler: the core's run loop asks
//! [`Scheduler::next`] what to run, runs it, and tells the scheduler how
//! the slice ended with [`Scheduler::result`]. The scheduler sees VMs only
//! through [`RunView`], so host tests drive it with fakes.
#![forbid(unsafe_code)]

pub mod assign;
pub mod queue;
pub mod round_robin;

/// Most cores the scheduler handles (bits of a core mask): the manifest's.
pub const MAX_CORES: usize = vmm_abi::manifest::MAX_CORES as usize;

/// What a core does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Run VM `vm` (a position in the core's VM list) for a slice.
    Run {
        /// The VM.
        vm: u32,
        /// Other VMs wait for the core (the slice is timed; an idle or
        /// waiting VM gives the core away).
        others_waiting: bool,
    },
    /// Every VM waits for work: give the console and the CPU a moment and
    /// ask again.
    Idle,
    /// No VM is left on this core.
    Done,
}

/// How a slice ended, as the scheduler needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ran {
    /// The slice is over (or the VM went idle); it runs again in turn.
    Preempted,
    /// It waits for work; it runs again once [`RunView::ready`] says so.
    Waiting,
    /// It stopped and restarts: it runs again in turn, with fresh memory.
    Restarting,
    /// It stopped for good.
    Ended,
}

/// What a scheduler may ask about the VMs of its core.
pub trait RunView {
    /// Whether VM `vm` may run now: it does not wait for work, or its wait
    /// just ended.
    fn ready(&mut self, vm: u32) -> bool;
    /// VM `vm`'s debt (instructions it used beyond its slices), which the
    /// scheduler pays off by passing it over.
    fn debt(&mut self, vm: u32) -> &mut u64;
}

/// A core's scheduling policy.
pub trait Scheduler {
    /// The next thing the core does.
    fn next(&mut self, view: &mut impl RunView) -> Next;
    /// How VM `vm`'s slice ended. Returns `false` if it cannot run again
    /// (a restart that found no room in the queue: the VM ends).
    fn result(&mut self, vm: u32, ran: Ran) -> bool;
    /// VM `vm`, which had ended, runs again (an operator's restart);
    /// `false` if there is no room for it.
    fn admit(&mut self, vm: u32) -> bool;
    /// VM `vm` leaves for good wherever it waits (an operator's stop);
    /// `false` if it was not waiting.
    fn remove(&mut self, vm: u32) -> bool;
}
