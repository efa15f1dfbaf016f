//! The data path: frames moved across links by a polling core, as host-tested logic over endpoint traits.
//!
//! - [`endpoint`]: [`endpoint::FrameSource`] and [`endpoint::FrameSink`]
//!   (one direction's two ends) and [`endpoint::LinkEnd`] (a port of a
//!   link as the poller sees it). A virtio-net port implements them
//!   ([`virtio`], [`port`]); a NIC queue is the next implementation.
//! - [`direction`]: one direction of a link: the fast path between two
//!   virtio rings, the general path over any endpoints, the hold-time
//!   (stall) policy, the counters.
//! - [`policy`]: the per-frame policy point, where a packet hook judges
//!   the receiver's copy of each frame; [`policy::PassAll`] elsewhere.
//! - [`switch`]: a NIC's polling core as an L2 switch between the wire
//!   and the guest ports attached to it (delivery by MAC, anti-spoofing,
//!   every drop counted), over the [`switch::WireRx`]/[`switch::WireTx`]
//!   traits; [`nic`] puts any [`crate::nic::NicDevice`] behind them.
//! - [`port`]: a port's device state and life (down, up, gone, broken),
//!   its generation, and the signals its VM waits on.
//! - [`runtime`]: a link direction's place for a hook attached while a
//!   service run goes on, swapped at a pass boundary.
//! - [`poll`]: every port and link of the run and the polling loop:
//!   pacing, blame, wakeups, stall notices, the window, the records. It
//!   reaches the machine only through its `Tables` and `PollEnv` traits
//!   (`platform/net.rs` implements them).
#![forbid(unsafe_code)]

pub mod direction;
pub mod endpoint;
pub mod nic;
pub mod owned;
pub mod policy;
pub mod poll;
pub mod port;
pub(crate) mod rings;
pub mod runtime;
pub mod switch;
pub mod virtio;

#[cfg(test)]
mod testing;
