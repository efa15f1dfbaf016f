//! Links made and unmade while a host runs (`corral link attach|detach`): a fixed table of places, polled by the control core, each link numbered after the manifest's and its kept receive buffers given back to their rings when it is unmade.
//!
//! Only the control core makes and unmakes links (it handles every
//! command), so the checks and the filling of a place cannot race with
//! another make. A place's lock is held by its polling core for a whole
//! pass, so a link is unmade between two passes; lock order: place, link
//! state, port `a`, port `b` (as for the manifest's links).

use super::{Link, LinkState, Net, PollEnv, VmLink, add_flow};
use core::sync::atomic::Ordering;
use spin::Mutex;
use vmm_abi::manifest::PortRef;
use vmm_abi::report::{LinkFlow, PortName, Record};

/// Most links made while a host runs that exist at once.
pub const MAX_MADE_LINKS: usize = 16;

/// A place for a link made at runtime: its number and the link, while it
/// exists.
#[derive(Default)]
pub struct LinkPlace(Mutex<Option<(u32, Link)>>);

/// Why a link cannot be made or unmade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MakeRefusal {
    /// The run has no places for links (a batch run).
    NotService,
    /// The VM has no such port.
    NoPort(PortRef),
    /// Both ends name the same port.
    SamePort,
    /// The port is linked already (to a port or a NIC): by the manifest's
    /// link of this index, or by a link made at runtime of this number.
    Linked(PortRef, u32),
    /// Every place is taken.
    Full,
    /// No link made at runtime joins the two ports (a manifest link stays
    /// for the run).
    NoLink,
}

/// A link made at runtime: its counters now, or when it was unmade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MadeLink {
    /// Its number: the manifest's links first, then one per link made.
    pub number: u32,
    /// Its ends.
    pub a: PortRef,
    /// Its ends.
    pub b: PortRef,
    /// The core polling it.
    pub core: u32,
    /// `a` to `b`.
    pub ab: LinkFlow,
    /// `b` to `a`.
    pub ba: LinkFlow,
    /// Instructions its core spent on it in passes that moved frames.
    pub busy: u64,
    /// Receive buffers it kept that could not go back to their rings when
    /// it was unmade (a redirect took a later one from the same ring):
    /// they stay taken until the guest resets the ring.
    pub kept_buffers: u32,
}

impl MadeLink {
    /// Its `link` record, VMs named by `name_of`.
    pub fn record<'n>(&self, name_of: &impl Fn(u32) -> &'n str) -> Record<'n> {
        Record::Link {
            link: self.number,
            a: PortName {
                vm: name_of(self.a.vm),
                port: self.a.port,
            },
            b: PortName {
                vm: name_of(self.b.vm),
                port: self.b.port,
            },
            core: self.core,
            ab: self.ab,
            ba: self.ba,
            busy: self.busy,
        }
    }

    fn of(number: u32, link: &Link) -> MadeLink {
        let st = link.state.lock();
        MadeLink {
            number,
            a: link.spec.a,
            b: link.spec.b,
            core: link.spec.core,
            ab: st.ab.flow,
            ba: st.ba.flow,
            busy: st.busy,
            kept_buffers: 0,
        }
    }
}

impl<'t> Net<'t> {
    /// Gives the run places for links made while it runs, polled by
    /// `core` (a service run's control core).
    pub fn set_made(&mut self, places: &'t [LinkPlace], core: u32) {
        self.made = places;
        self.made_core = core;
    }

    /// The link port `p` is on, if any: a manifest link's index (a link
    /// to a NIC too) or a made link's number.
    pub fn link_of(&self, p: PortRef) -> Option<u32> {
        if let Some(i) = self
            .links
            .iter()
            .position(|l| l.spec.a == p || l.spec.b == p)
        {
            return Some(i as u32);
        }
        self.made.iter().find_map(|place| {
            let held = place.0.lock();
            let (number, link) = held.as_ref()?;
            (link.spec.a == p || link.spec.b == p).then_some(*number)
        })
    }

    /// Links port `a` to port `b` from the next pass of the control core
    /// on; the new link's number. Control core only.
    pub fn make_link(&self, a: PortRef, b: PortRef) -> Result<u32, MakeRefusal> {
        if self.made.is_empty() {
            return Err(MakeRefusal::NotService);
        }
        for p in [a, b] {
            if self.port(p.vm, p.port).is_none() {
                return Err(MakeRefusal::NoPort(p));
            }
        }
        if a == b {
            return Err(MakeRefusal::SamePort);
        }
        for p in [a, b] {
            if let Some(number) = self.link_of(p) {
                return Err(MakeRefusal::Linked(p, number));
            }
        }
        let index = |p: PortRef| (self.first_port[p.vm as usize] + u32::from(p.port)) as usize;
        for place in self.made {
            let mut held = place.0.lock();
            if held.is_some() {
                continue;
            }
            let number = self.links.len() as u32 + self.made_count.fetch_add(1, Ordering::Relaxed);
            *held = Some((
                number,
                Link {
                    spec: VmLink {
                        a,
                        b,
                        core: self.made_core,
                        // Never stalled: a runtime link's receiver holds
                        // its sender up as long as it likes.
                        hold: 0,
                    },
                    a: index(a),
                    b: index(b),
                    nic: None,
                    state: Mutex::new(LinkState::default()),
                },
            ));
            return Ok(number);
        }
        Err(MakeRefusal::Full)
    }

    /// Unmakes the link made at runtime between ports `a` and `b` (in
    /// either order), after its polling core's pass: a receive buffer
    /// either direction kept for its next frame goes back to its ring,
    /// frames not taken wait in their senders' rings. Its final counters.
    /// Control core only.
    pub fn unmake_link(&self, a: PortRef, b: PortRef) -> Result<MadeLink, MakeRefusal> {
        let joins = |l: &Link| (l.spec.a, l.spec.b) == (a, b) || (l.spec.a, l.spec.b) == (b, a);
        for place in self.made {
            let mut held = place.0.lock();
            let Some((number, link)) = held.take_if(|(_, l)| joins(l)) else {
                continue;
            };
            drop(held);
            let mut gone = MadeLink::of(number, &link);
            let mut gone_buffers = 0;
            let mut guard = link.state.lock();
            let st = &mut *guard;
            for (dir, to) in [(&mut st.ab, link.b), (&mut st.ba, link.a)] {
                if let Some((generation, buffer)) = dir.take_spare()
                    && !self.ports[to].with(|p| p.give_back_rx(generation, buffer))
                {
                    gone_buffers += 1;
                }
            }
            drop(guard);
            gone.kept_buffers = gone_buffers;
            let mut unmade = self.unmade.lock();
            add_flow(&mut unmade, &gone.ab);
            add_flow(&mut unmade, &gone.ba);
            return Ok(gone);
        }
        if self.made.is_empty() {
            return Err(MakeRefusal::NotService);
        }
        Err(MakeRefusal::NoLink)
    }

    /// Unmakes every link made at runtime that reaches VM `vm` (its place
    /// goes to a new VM, which starts unlinked); `gone` gets each one's
    /// final counters. Control core only.
    pub fn unmake_links_of(&self, vm: u32, mut gone: impl FnMut(MadeLink)) {
        let reaching = || {
            self.made.iter().find_map(|place| {
                let held = place.0.lock();
                let (_, l) = held.as_ref()?;
                (l.spec.a.vm == vm || l.spec.b.vm == vm).then_some((l.spec.a, l.spec.b))
            })
        };
        while let Some((a, b)) = reaching() {
            match self.unmake_link(a, b) {
                Ok(m) => gone(m),
                // Only this core unmakes links: never happens.
                Err(_) => break,
            }
        }
    }

    /// The link made at runtime numbered `number`, now, if it exists.
    pub fn made_link(&self, number: u32) -> Option<MadeLink> {
        (0..self.made.len())
            .filter_map(|k| self.made_now(k))
            .find(|m| m.number == number)
    }

    /// The link in place `k` now, if there is one.
    pub fn made_now(&self, k: usize) -> Option<MadeLink> {
        let held = self.made.get(k)?.0.lock();
        let (number, link) = held.as_ref()?;
        Some(MadeLink::of(*number, link))
    }

    /// One pass over every link made at runtime (each place locked for
    /// its link's pass); frames handed over.
    #[inline(never)]
    pub(super) fn service_made(&self, env: &impl PollEnv) -> u32 {
        let mut moved = 0;
        for place in self.made {
            let held = place.0.lock();
            if let Some((_, link)) = held.as_ref() {
                moved += self.pass(link, env, [None, None]);
            }
        }
        moved
    }
}
