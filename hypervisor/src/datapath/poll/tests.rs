//! Tests of the poller driven by fake guests' rings, a fake clock and fake tables: frames both ways, waiting, blame, restarts, stalls, pacing, wakeups, the window and the records.

use super::*;
use crate::datapath::port::PortEvent;
use crate::datapath::port::PortState;
use crate::datapath::testing::{FakeWire, Guest, SLOT, frame, reset};
use crate::devices::virtio::queue::QueueError;
use crate::devices::virtio::testing::MEM_SIZE;
use core::cell::{Cell, RefCell};
use vmm_abi::corral::devices::port_mac;
use vmm_abi::manifest::{LinkEndRef, NicMode, PortRef};

const MEMORY: u64 = MEM_SIZE as u64;

/// Tables on the test's heap, never freed (like the hypervisor's frames).
struct Heap;

impl Tables<'static> for Heap {
    fn slice<T: 'static>(
        &mut self,
        n: usize,
        init: impl FnMut(usize) -> T,
    ) -> Option<&'static [T]> {
        Some((0..n).map(init).collect::<Vec<_>>().leak())
    }
}

/// Tables with no room for anything but `left` slices.
struct Full {
    left: usize,
}

impl Tables<'static> for Full {
    fn slice<T: 'static>(
        &mut self,
        n: usize,
        init: impl FnMut(usize) -> T,
    ) -> Option<&'static [T]> {
        self.left = self.left.checked_sub(1)?;
        Heap.slice(n, init)
    }
}

/// A record the poller gave, kept.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kept {
    Link {
        link: u32,
        a: (String, u8),
        b: (String, u8),
        core: u32,
        ab: LinkFlow,
        ba: LinkFlow,
        busy: u64,
    },
    Window {
        frames: u64,
        exits: u64,
        busy: u64,
    },
    Nic {
        wire: NicFlow,
    },
    NicWindow {
        frames: u64,
        exits: u64,
        rx_busy: u64,
        tx_frames: u64,
        tx_busy: u64,
    },
    Other,
}

/// The machine, faked: a clock that moves one tick per reading (plus
/// what the test adds), an exit count the test sets, and everything the
/// poller says kept.
#[derive(Default)]
struct FakeEnv {
    now: Cell<u64>,
    exits: Cell<u64>,
    idles: Cell<u32>,
    stalls: RefCell<Vec<(usize, char, u64)>>,
    records: RefCell<Vec<Kept>>,
    nic_errors: RefCell<Vec<(usize, crate::nic::NicError)>>,
}

impl FakeEnv {
    fn advance(&self, ticks: u64) {
        self.now.set(self.now.get() + ticks);
    }
}

impl PollEnv for FakeEnv {
    fn now(&self) -> u64 {
        let t = self.now.get();
        self.now.set(t + 1);
        t
    }

    fn exits(&self) -> u64 {
        self.exits.get()
    }

    fn idle(&self) {
        self.idles.set(self.idles.get() + 1);
    }

    fn first_stall(&self, link: usize, end: char, hold: u64) {
        self.stalls.borrow_mut().push((link, end, hold));
    }

    fn nic_failed(&self, nic: usize, error: crate::nic::NicError) {
        self.nic_errors.borrow_mut().push((nic, error));
    }

    fn record(&self, record: &Record<'_>) {
        let kept = match *record {
            Record::Link {
                link,
                a,
                b,
                core,
                ab,
                ba,
                busy,
            } => Kept::Link {
                link,
                a: (a.vm.to_string(), a.port),
                b: (b.vm.to_string(), b.port),
                core,
                ab,
                ba,
                busy,
            },
            Record::Window {
                frames,
                exits,
                busy,
            } => Kept::Window {
                frames,
                exits,
                busy,
            },
            Record::Nic { wire, .. } => Kept::Nic { wire },
            Record::NicWindow {
                frames,
                exits,
                rx_busy,
                tx_frames,
                tx_busy,
                ..
            } => Kept::NicWindow {
                frames,
                exits,
                rx_busy,
                tx_frames,
                tx_busy,
            },
            _ => Kept::Other,
        };
        self.records.borrow_mut().push(kept);
    }
}

fn link(a: (u32, u8), b: (u32, u8), core: u32, hold: u64) -> LinkSpec {
    LinkSpec {
        a: LinkEndRef::Vm(PortRef { vm: a.0, port: a.1 }),
        b: LinkEndRef::Vm(PortRef { vm: b.0, port: b.1 }),
        core,
        hold,
        bridge: false,
    }
}

/// VMs with `ports` ports each and the links given.
fn build(ports: &[u8], links: &[LinkSpec]) -> Net<'static> {
    Net::build(
        &mut Heap,
        ports.len(),
        |i| (ports[i], MEMORY),
        links.iter().copied(),
        links.len(),
        core::iter::empty(),
        0,
    )
    .unwrap()
}

/// VM `vm` (re)starts with `g`'s memory and its driver gets ready.
fn running(net: &Net<'_>, vm: u32, g: &Guest) {
    net.attach(vm, 1, MEMORY, g.ram);
    let event = net.with_port(vm, 0, |p| g.bring_up(p)).unwrap();
    assert!(matches!(event, PortEvent::None));
}

/// Two VMs with one port each, linked (VM 0 is `a`), both running with
/// their drivers ready.
struct Two {
    net: Net<'static>,
    env: FakeEnv,
    a: Guest,
    b: Guest,
}

impl Two {
    fn new(hold: u64) -> Self {
        let net = build(&[1, 1], &[link((0, 0), (1, 0), 0, hold)]);
        let two = Two {
            net,
            env: FakeEnv::default(),
            a: Guest::new(),
            b: Guest::new(),
        };
        running(&two.net, 0, &two.a);
        running(&two.net, 1, &two.b);
        two
    }

    fn service(&self) -> u32 {
        self.net.service(&self.net.links[0], &self.env)
    }

    fn flows(&self) -> (LinkFlow, LinkFlow) {
        let st = self.net.links[0].state.lock();
        (st.ab.flow, st.ba.flow)
    }

    fn state(&self, vm: u32) -> PortState {
        self.net.with_port(vm, 0, |p| p.state()).unwrap()
    }

    /// Takes VM `vm`'s work flag, as its `wait_for_work` does.
    fn work(&self, vm: u32) -> bool {
        self.net.signals(vm).work.swap(false, Ordering::Acquire)
    }

    fn fault_flag(&self, vm: u32) -> bool {
        self.net.signals(vm).fault.load(Ordering::Acquire)
    }
}

#[test]
fn build_lays_out_ports_per_vm_and_links_between_them() {
    let net = build(
        &[2, 0, 1],
        &[link((0, 1), (2, 0), 1, 0), link((0, 0), (2, 0), 0, 0)],
    );
    assert_eq!(net.link_count(), 2);
    let p = net.port(0, 1).unwrap();
    assert_eq!((p.vm, p.port), (0, 1));
    let p = net.port(2, 0).unwrap();
    assert_eq!((p.vm, p.port), (2, 0));
    assert!(net.port(1, 0).is_none(), "VM 1 has no ports");
    assert!(net.port(0, 2).is_none());
    assert!(net.port(3, 0).is_none());
    assert_eq!((net.links[0].a, net.links[0].b), (1, 2));
    assert_eq!((net.links[1].a, net.links[1].b), (0, 2));
    // Every port starts down, with its own MAC.
    assert_eq!(net.with_port(0, 1, |p| p.state()), Some(PortState::Down));
    assert_eq!(
        net.with_port(2, 0, |p| p.transport.device().mac()),
        Some(vmm_abi::corral::devices::port_mac(2, 0))
    );
    assert_eq!(net.with_port(1, 0, |_| ()), None);
    // Each table that does not fit is named.
    let no_room = |left| {
        Net::build(
            &mut Full { left },
            1,
            |_| (1, MEMORY),
            core::iter::empty(),
            0,
            core::iter::empty(),
            0,
        )
        .err()
    };
    assert_eq!(no_room(0), Some("no memory for the port table"));
    assert_eq!(no_room(1), Some("no memory for the ports"));
    assert_eq!(no_room(2), Some("no memory for the links"));
    assert_eq!(no_room(3), Some("no memory for the NICs"));
    assert_eq!(no_room(4), Some("no memory for the VM signals"));
    assert!(no_room(5).is_none());
}

/// VMs 0 and 1 (one port each) linked to NIC 0 on core 1; VM 1 also
/// linked to VM 2.
fn with_nic() -> Net<'static> {
    let to_nic = |vm| LinkSpec {
        b: LinkEndRef::Nic(0),
        ..link((vm, 0), (vm, 0), 1, 0)
    };
    let links = [to_nic(0), link((2, 0), (3, 0), 0, 0), to_nic(1)];
    Net::build(
        &mut Heap,
        4,
        |_| (1, MEMORY),
        links.into_iter(),
        3,
        [("uplink", 1, NicMode::Shared)].into_iter(),
        1,
    )
    .unwrap()
}

#[test]
fn a_nic_switches_frames_for_the_ports_linked_to_it() {
    let net = with_nic();
    assert_eq!(net.nic_count(), 1);
    assert_eq!(net.nics_on(1).count(), 1);
    assert_eq!(net.nics_on(0).count(), 0);
    let mut guests = [Guest::new(), Guest::new()];
    for (vm, g) in guests.iter_mut().enumerate() {
        running(&net, vm as u32, g);
        g.post(SLOT);
    }
    let outside = [0x52, 0x55, 10, 0, 2, 2];
    let mut to_1 = frame(60, 4);
    to_1[..6].copy_from_slice(&port_mac(1, 0));
    let mut from_0 = frame(70, 5);
    from_0[6..12].copy_from_slice(&port_mac(0, 0));
    from_0[..6].copy_from_slice(&outside);
    guests[0].send(&from_0);
    let mut wire = Some(FakeWire::new(8));
    wire.as_mut().unwrap().arrive(to_1.clone());
    let env = FakeEnv::default();
    let passes = Cell::new(0);
    net.poll(1, &env, core::slice::from_mut(&mut wire), || {
        passes.set(passes.get() + 1);
        passes.get() > 2
    });
    assert_eq!(guests[1].received(), vec![to_1]);
    assert!(guests[0].received().is_empty());
    assert_eq!(wire.unwrap().sent, vec![from_0]);
    assert!(net.signals(1).work.load(Ordering::Acquire), "VM 1 woken");
    assert!(net.signals(0).work.load(Ordering::Acquire), "VM 0 woken");
    // Records: the VM link only as `link 1`, the NIC and its two ports.
    net.report(
        &env,
        |vm| ["a", "b", "c", "d"][vm as usize],
        |_, mut f| {
            f.rx_errors = 7;
            f
        },
    );
    let records = env.records.borrow();
    assert!(
        matches!(records[0], Kept::Link { link: 1, .. }),
        "{records:?}"
    );
    assert_eq!(records.len(), 4, "{records:?}");
    let Kept::Nic { wire } = &records[1] else {
        panic!("{records:?}");
    };
    assert_eq!(wire.rx_errors, 7, "the driver's own counters are added");
}

#[test]
fn a_nic_core_does_not_pump_links_to_its_nic_as_links() {
    let net = with_nic();
    let env = FakeEnv::default();
    let passes = Cell::new(0);
    let mut wires: [Option<FakeWire>; 0] = [];
    net.poll(1, &env, &mut wires, || {
        passes.set(passes.get() + 1);
        passes.get() > 2
    });
    assert_eq!(net.totals(), LinkFlow::default());
    assert_eq!(net.link_count(), 3);
}

#[test]
fn frames_cross_both_ways_counted_and_both_vms_are_woken() {
    let mut t = Two::new(0);
    let (to_b, to_a) = (
        [frame(60, 1), frame(100, 2), frame(200, 3)],
        [frame(64, 9), frame(90, 8)],
    );
    for f in &to_b {
        t.a.send(f);
        t.b.post(SLOT);
    }
    for f in &to_a {
        t.b.send(f);
        t.a.post(SLOT);
    }
    assert_eq!(t.service(), 5);
    assert_eq!(t.b.received(), to_b.to_vec());
    assert_eq!(t.a.received(), to_a.to_vec());
    assert_eq!((t.a.tx_used(), t.b.tx_used()), (3, 2));
    let (ab, ba) = t.flows();
    assert_eq!((ab.frames, ab.bytes), (3, 360));
    assert_eq!((ba.frames, ba.bytes), (2, 154));
    assert!(t.work(0) && t.work(1));
    assert!(!t.fault_flag(0) && !t.fault_flag(1));
    // A pass that moves nothing wakes nobody.
    assert_eq!(t.service(), 0);
    assert!(!t.work(0) && !t.work(1));
    let total = t.net.totals();
    assert_eq!((total.frames, total.bytes), (5, 514));
    assert_eq!(total.handed(), 5);
}

#[test]
fn frames_wait_while_either_end_is_down_and_move_once_both_are_up() {
    let net = build(&[1, 1], &[link((0, 0), (1, 0), 0, 0)]);
    let mut t = Two {
        net,
        env: FakeEnv::default(),
        a: Guest::new(),
        b: Guest::new(),
    };
    // VM 0 runs and sends; VM 1 is attached but its driver is not ready.
    running(&t.net, 0, &t.a);
    t.net.attach(1, 1, MEMORY, t.b.ram);
    t.a.send(&frame(60, 0));
    t.b.post(SLOT);
    assert_eq!(t.service(), 0);
    assert_eq!(t.a.tx_used(), 0, "the frame waits in the sender's ring");
    assert!(!t.work(0) && !t.work(1));
    // It gets ready: the frame goes.
    t.net.with_port(1, 0, |p| t.b.bring_up(p));
    assert_eq!(t.service(), 1);
    assert_eq!(t.b.received(), vec![frame(60, 0)]);
    // The sender resets its device and starts its rings over: its frames
    // wait until it is ready again.
    t.net.with_port(0, 0, reset);
    assert_eq!(t.state(0), PortState::Down);
    t.a.restart_driver();
    t.a.send(&frame(60, 1));
    t.b.post(SLOT);
    assert_eq!(t.service(), 0);
    t.net.with_port(0, 0, |p| t.a.bring_up(p));
    assert_eq!(t.service(), 1);
    assert_eq!(t.b.received(), vec![frame(60, 0), frame(60, 1)]);
}

#[test]
fn frames_for_a_vm_gone_for_good_are_completed_and_counted() {
    let mut t = Two::new(0);
    t.net.detach(1, 1, true);
    assert_eq!(t.state(1), PortState::Gone);
    for i in 0..4 {
        t.a.send(&frame(64, i));
    }
    assert_eq!(t.service(), 4);
    assert_eq!(t.a.tx_used(), 4, "the sender gets its buffers back");
    assert_eq!(t.flows().0.drop_peer, 4);
    assert!(t.work(0), "the sender is woken for its completions");
    assert!(t.b.received().is_empty());
}

#[test]
fn a_bad_transmit_ring_is_blamed_on_the_sender_alone() {
    let mut t = Two::new(0);
    t.b.post(SLOT);
    // A frame whose buffer lies past the end of the sender's memory.
    t.a.send_raw(MEMORY - 8, 64, 0);
    assert_eq!(t.service(), 0);
    assert_eq!(t.state(0), PortState::Broken);
    assert_eq!(t.state(1), PortState::Up);
    assert!(t.fault_flag(0) && !t.fault_flag(1));
    assert!(t.work(0) && t.work(1), "both are woken: one to be stopped");
    assert!(matches!(
        t.net.fault(0, 1),
        Some((0, RingError::Queue(QueueError::BufferOutsideMemory { .. })))
    ));
    assert_eq!(t.net.fault(1, 1), None);
    // Frames to the broken port are dropped, not left waiting.
    t.b.send(&frame(60, 0));
    assert_eq!(t.service(), 1);
    assert_eq!(t.flows().1.drop_peer, 1);
    assert_eq!(t.b.tx_used(), 1);
    assert!(t.a.received().is_empty());
}

#[test]
fn a_bad_receive_ring_is_blamed_on_the_receiver_alone() {
    let mut t = Two::new(0);
    t.b.post_flags(SLOT, 0);
    t.a.send(&frame(60, 0));
    assert_eq!(t.service(), 0);
    assert_eq!(t.state(1), PortState::Broken);
    assert_eq!(t.state(0), PortState::Up);
    assert!(t.fault_flag(1) && !t.fault_flag(0));
    assert_eq!(
        t.net.fault(1, 1),
        Some((0, RingError::ReadableInReceive { head: 0 }))
    );
    // The sender's frame is now dropped for the broken receiver's sake.
    assert_eq!(t.service(), 1);
    assert_eq!(t.flows().0.drop_peer, 1);
    assert_eq!(t.a.tx_used(), 1);
}

#[test]
fn a_restart_clears_the_fault_and_the_signals() {
    let mut t = Two::new(0);
    t.b.post_flags(SLOT, 0);
    t.a.send(&frame(60, 0));
    assert_eq!(t.service(), 0);
    assert!(t.fault_flag(1));
    assert!(t.net.fault(1, 1).is_some());
    // Its core stops it (the memory goes first) and starts it again.
    t.net.detach(1, 1, false);
    assert_eq!(t.state(1), PortState::Down);
    t.b = Guest::new();
    running(&t.net, 1, &t.b);
    assert!(!t.fault_flag(1) && !t.work(1));
    assert_eq!(t.net.fault(1, 1), None);
    assert_eq!(t.state(1), PortState::Up);
    // The frame that waited meanwhile is delivered to the new run.
    t.b.post(SLOT);
    assert_eq!(t.service(), 1);
    assert_eq!(t.b.received(), vec![frame(60, 0)]);
    assert!(t.work(0) && t.work(1));
}

#[test]
fn a_restart_forgets_a_buffer_kept_from_the_old_ring() {
    let mut t = Two::new(0);
    // A frame too large for the receiver's buffer: dropped, the buffer kept.
    t.b.post(64);
    t.a.send(&frame(100, 0));
    assert_eq!(t.service(), 1);
    assert_eq!(t.flows().0.drop_size, 1);
    assert!(t.net.links[0].state.lock().ab.keeps_buffer());
    // The receiver restarts with fresh memory and a new driver, which
    // posts a whole slot where the kept 64-byte buffer was.
    t.net.detach(1, 1, false);
    t.b = Guest::new();
    running(&t.net, 1, &t.b);
    t.b.post(SLOT);
    t.a.send(&frame(60, 7));
    assert_eq!(t.service(), 1);
    assert_eq!(
        t.b.received(),
        vec![frame(60, 7)],
        "not dropped as too large"
    );
    assert_eq!(t.flows().0.drop_size, 1);
    assert!(!t.net.links[0].state.lock().ab.keeps_buffer());
    assert_eq!(t.flows().0.handed(), 2);
}

#[test]
fn a_stalled_receiver_is_said_once_per_end_and_counted_every_time() {
    let mut t = Two::new(1000);
    t.a.send(&frame(60, 0));
    assert_eq!(t.service(), 0, "no buffer: the frame waits");
    t.env.advance(500);
    assert_eq!(t.service(), 0);
    t.env.advance(500);
    assert_eq!(t.service(), 1, "held for 1000 ticks: stalled, dropped");
    assert_eq!(t.flows().0.drop_stalled, 1);
    assert_eq!(t.flows().0.stalls, 1);
    assert_eq!(t.a.tx_used(), 1);
    assert!(t.work(0));
    assert_eq!(*t.env.stalls.borrow(), vec![(0, 'b', 1000)]);
    // It posts a buffer: delivery resumes at once.
    t.b.post(SLOT);
    t.a.send(&frame(60, 1));
    assert_eq!(t.service(), 1);
    assert_eq!(t.b.received(), vec![frame(60, 1)]);
    // It stalls again: counted, not said again.
    t.a.send(&frame(60, 2));
    assert_eq!(t.service(), 0);
    t.env.advance(2000);
    assert_eq!(t.service(), 1);
    assert_eq!(t.flows().0.stalls, 2);
    assert_eq!(t.env.stalls.borrow().len(), 1);
    // The other end stalls for the first time: said, for end a.
    t.b.send(&frame(60, 3));
    assert_eq!(t.service(), 0);
    t.env.advance(2000);
    assert_eq!(t.service(), 1);
    assert_eq!(*t.env.stalls.borrow(), vec![(0, 'b', 1000), (0, 'a', 1000)]);
    assert_eq!(t.net.totals().stalls, 3);
}

#[test]
fn a_pass_moves_at_most_a_batch_each_way() {
    let mut t = Two::new(0);
    for i in 0..100 {
        t.a.send(&frame(60, i));
        t.b.post(SLOT);
    }
    assert_eq!(t.service(), BATCH);
    assert_eq!(t.service(), 100 - BATCH);
    assert_eq!(t.b.received().len(), 100);
}

#[test]
fn a_small_burst_waits_and_a_full_pass_goes_again_at_once() {
    let net = build(&[1, 1], &[link((0, 0), (1, 0), 0, 0)]);
    let guests = RefCell::new([Guest::new(), Guest::new()]);
    {
        let mut g = guests.borrow_mut();
        let [a, b] = &mut *g;
        running(&net, 0, a);
        running(&net, 1, b);
        for i in 0..40 {
            a.send(&frame(60, i));
            b.post(SLOT);
        }
    }
    let env = FakeEnv::default();
    let calls = Cell::new(0);
    // Before each pass: what the passes so far did, and what comes next.
    net.poll(0, &env, &mut [] as &mut [Option<FakeWire>], || {
        let mut g = guests.borrow_mut();
        let [a, b] = &mut *g;
        let received = b.received().len();
        calls.set(calls.get() + 1);
        match calls.get() {
            1 => assert_eq!(received, 0),
            2 => {
                // A full pass (40 >= BURST): the next goes at once.
                assert_eq!(received, 40);
                for i in 0..5 {
                    a.send(&frame(60, i));
                    b.post(SLOT);
                }
            }
            3 => {
                // A small burst (5): the link waits BURST_WAIT.
                assert_eq!(received, 45);
                a.send(&frame(60, 9));
                b.post(SLOT);
            }
            4 => {
                assert_eq!(received, 45, "passed over");
                env.advance(BURST_WAIT);
            }
            _ => {
                assert_eq!(received, 46);
                return true;
            }
        }
        false
    });
    assert_eq!(calls.get(), 5);
    assert_eq!(env.idles.get(), 1, "the pass that skipped the link");
}

#[test]
fn the_poller_serves_only_its_own_cores_links_and_idles_until_finished() {
    let net = build(&[1, 1], &[link((0, 0), (1, 0), 1, 0)]);
    let (mut a, mut b) = (Guest::new(), Guest::new());
    running(&net, 0, &a);
    running(&net, 1, &b);
    a.send(&frame(60, 0));
    b.post(SLOT);
    let env = FakeEnv::default();
    let passes = Cell::new(0);
    net.poll(0, &env, &mut [] as &mut [Option<FakeWire>], || {
        passes.set(passes.get() + 1);
        passes.get() > 3
    });
    assert_eq!(env.idles.get(), 3, "core 0 has no links: every pass idle");
    assert!(b.received().is_empty());
    let passes = Cell::new(0);
    net.poll(1, &env, &mut [] as &mut [Option<FakeWire>], || {
        passes.set(passes.get() + 1);
        passes.get() > 1
    });
    assert_eq!(b.received(), vec![frame(60, 0)]);
    assert_eq!(env.idles.get(), 3);
    assert_eq!(a.tx_used(), 1);
}

#[test]
fn the_window_counts_exits_and_busy_time_over_link_0s_frames_and_is_reported() {
    let net = build(
        &[1, 1, 1],
        &[link((0, 0), (1, 0), 0, 0), link((2, 0), (1, 0), 1, 0)],
    );
    let guests = RefCell::new([Guest::new(), Guest::new()]);
    {
        let g = guests.borrow();
        for (vm, guest) in g.iter().enumerate() {
            running(&net, vm as u32, guest);
        }
    }
    let env = FakeEnv::default();
    let passes = Cell::new(0);
    // Before each pass: 64 frames (a whole batch) wait, 64 buffers too,
    // and every core took 3 more exits.
    net.poll(0, &env, &mut [] as &mut [Option<FakeWire>], || {
        let mut g = guests.borrow_mut();
        let [a, b] = &mut *g;
        if passes.get() == 25 {
            return true;
        }
        passes.set(passes.get() + 1);
        assert!(a.in_flight() == 0 && b.posted() == 0);
        for i in 0..64 {
            a.send(&frame(60, i));
            b.post(SLOT);
        }
        env.exits.set(env.exits.get() + 3);
        false
    });
    let frames = net.links[0].state.lock().ab.flow.frames;
    assert_eq!(frames, 25 * 64);
    // The window opened at the pass that reached frame 256 (the 4th) and
    // closed at the one that reached 1280 (the 20th): 16 passes later,
    // 16 * 3 exits, and the busy time of those 16 passes (each 1 tick on
    // the fake clock: one reading before, one after).
    net.report(&env, |vm| ["gen", "sink", "idle"][vm as usize], |_, f| f);
    let records = env.records.borrow();
    assert_eq!(records.len(), 3);
    assert_eq!(
        records[0],
        Kept::Link {
            link: 0,
            a: ("gen".into(), 0),
            b: ("sink".into(), 0),
            core: 0,
            ab: LinkFlow {
                frames: 25 * 64,
                bytes: 25 * 64 * 60,
                ..LinkFlow::default()
            },
            ba: LinkFlow::default(),
            busy: 25,
        }
    );
    assert!(matches!(
        &records[1],
        Kept::Link {
            link: 1,
            core: 1,
            busy: 0,
            ..
        }
    ));
    assert_eq!(
        records[2],
        Kept::Window {
            frames: WINDOW_FRAMES,
            exits: 16 * 3,
            busy: 16,
        }
    );
}

#[test]
fn no_window_record_while_the_window_is_open() {
    let t = Two::new(0);
    t.net.report(&t.env, |_| "vm", |_, f| f);
    assert_eq!(t.env.records.borrow().len(), 1, "the link record only");
}

#[test]
fn an_owned_nic_serves_exactly_one_port() {
    let to_nic = |vm| LinkSpec {
        b: LinkEndRef::Nic(0),
        ..link((vm, 0), (vm, 0), 1, 0)
    };
    let build = |links: &[LinkSpec]| {
        Net::build(
            &mut Heap,
            2,
            |_| (1, MEMORY),
            links.iter().copied(),
            links.len(),
            [("lan", 1, NicMode::Owned)].into_iter(),
            1,
        )
    };
    assert_eq!(
        build(&[to_nic(0), to_nic(1)]).err(),
        Some(super::NIC_OWNED_ONE_PORT)
    );
    assert_eq!(build(&[]).err(), Some(super::NIC_OWNED_ONE_PORT));
    let net = build(&[to_nic(1)]).unwrap();
    assert!(!net.nic_holds(1), "nothing given yet");
    // Its pump runs on its core: with a wire that has no caller-buffer
    // rings it keeps the driver's error and gives nothing.
    let g = Guest::new();
    running(&net, 1, &g);
    let env = FakeEnv::default();
    let passes = Cell::new(0);
    net.poll(1, &env, &mut [Some(FakeWire::new(1))], || {
        passes.set(passes.get() + 1);
        passes.get() > 2
    });
    assert!(net.owned_error(0).is_some());
    assert!(!net.nic_holds(1));
    // Said once, however many passes.
    assert_eq!(env.nic_errors.borrow().len(), 1);
    assert_eq!(env.nic_errors.borrow()[0].0, 0);
}

#[test]
fn a_nic_alone_has_a_window_and_its_halves_are_timed_apart() {
    // One VM port linked to a shared NIC on core 1, no link between VMs.
    let to_nic = LinkSpec {
        b: LinkEndRef::Nic(0),
        ..link((0, 0), (0, 0), 1, 0)
    };
    let net = Net::build(
        &mut Heap,
        1,
        |_| (1, MEMORY),
        [to_nic].into_iter(),
        1,
        [("uplink", 1, NicMode::Shared)].into_iter(),
        1,
    )
    .unwrap();
    let mut guest = Guest::new();
    running(&net, 0, &guest);
    let mut to_guest = frame(60, 1);
    to_guest[..6].copy_from_slice(&port_mac(0, 0));
    let mut from_guest = frame(60, 2);
    from_guest[6..12].copy_from_slice(&port_mac(0, 0));
    let mut wire = [Some(FakeWire::new(usize::MAX))];
    let env = FakeEnv::default();
    let one_pass = |wire: &mut [Option<FakeWire>]| {
        let done = Cell::new(false);
        net.poll(1, &env, wire, || done.replace(true));
    };
    // A lockstep echo: each round one frame from the wire and one from the
    // guest, and 2 more exits; every fourth round also an idle pass, which
    // costs nothing in the counts.
    let rounds = NIC_WINDOW_WARMUP + NIC_WINDOW_FRAMES + 10;
    for n in 0..rounds {
        env.exits.set(env.exits.get() + 2);
        if let Some(w) = wire[0].as_mut() {
            w.arrive(to_guest.clone());
        }
        guest.post(SLOT);
        guest.send(&from_guest);
        one_pass(&mut wire);
        if n % 4 == 3 {
            one_pass(&mut wire);
        }
    }
    assert_eq!(guest.received().len() as u64, rounds);
    net.report(&env, |_| "echo", |_, f| f);
    let records = env.records.borrow();
    let Some(Kept::Nic { wire }) = records.iter().find(|r| matches!(r, Kept::Nic { .. })) else {
        panic!("no nic record: {records:?}");
    };
    // Each half that did work is one fake tick (one clock reading on each
    // side of it); idle halves are not counted.
    assert_eq!((wire.rx_frames, wire.rx_busy), (rounds, rounds));
    assert_eq!((wire.tx_frames, wire.tx_busy), (rounds, rounds));
    // The window opened at the round that delivered frame 32 and closed
    // NIC_WINDOW_FRAMES rounds later.
    let window = records.iter().find(|r| matches!(r, Kept::NicWindow { .. }));
    assert_eq!(
        window,
        Some(&Kept::NicWindow {
            frames: NIC_WINDOW_FRAMES,
            exits: 2 * NIC_WINDOW_FRAMES,
            rx_busy: NIC_WINDOW_FRAMES,
            tx_frames: NIC_WINDOW_FRAMES,
            tx_busy: NIC_WINDOW_FRAMES,
        })
    );
    assert!(
        !records.iter().any(|r| matches!(r, Kept::Window { .. })),
        "no link window without links"
    );
}

/// Solo5 shared rings (one per VM) on the heap, for the poller.
fn rings(list: &[(u32, u32)]) -> &'static [RingSlot] {
    let slots: Vec<RingSlot> = list
        .iter()
        .map(|&(vm, core)| RingSlot {
            vm,
            core,
            shared: RingShared::default(),
        })
        .collect();
    Box::leak(slots.into_boxed_slice())
}

#[test]
fn shared_rings_are_served_by_their_own_core_and_a_bad_one_blames_its_vm() {
    use crate::mem::access::{Gpa, GuestRam, GuestRead};
    use vmm_abi::hvt;
    let mut net = build(&[1, 1], &[link((0, 0), (1, 0), 1, 0)]);
    assert_eq!(net.port_core(0, 0), Some(1));
    assert_eq!(net.port_core(1, 0), Some(1));
    assert_eq!(net.port_core(0, 1), None);
    net.set_rings(rings(&[(0, 1), (1, 1)]));
    assert!(net.ring(2).is_none());
    let (a, b) = (Guest::new(), Guest::new());
    net.attach(0, 1, MEMORY, a.ram);
    net.attach(1, 1, MEMORY, b.ram);
    const AT: u64 = 0x1000;
    for (vm, g) in [(0, &a), (1, &b)] {
        let shared = net.ring(vm).unwrap();
        shared.attach(g.ram, AT, Default::default(), 1000);
        assert_eq!(shared.gpa(), Some(AT));
    }
    // VM 0 asks to read from a device it does not have.
    let mut ram = a.ram;
    let entry = AT + hvt::RING_ENTRIES;
    ram.write_u32(Gpa(entry), hvt::RING_OP_NET_READ).unwrap();
    ram.write_u32(Gpa(entry + hvt::RING_ENTRY_HANDLE), 5)
        .unwrap();
    ram.write_u32(Gpa(entry + hvt::RING_ENTRY_ID), 77).unwrap();
    ram.write_u32(Gpa(AT + hvt::RING_ENT_TAIL), 1).unwrap();
    // VM 1's ring claims more requests than it holds.
    let mut ram_b = b.ram;
    ram_b
        .write_u32(Gpa(AT + hvt::RING_ENT_TAIL), hvt::RING_SIZE + 1)
        .unwrap();
    let env = FakeEnv::default();
    let once = |core| {
        let passes = Cell::new(0);
        net.poll(core, &env, &mut [] as &mut [Option<FakeWire>], || {
            passes.set(passes.get() + 1);
            passes.get() > 1
        });
    };
    // Not core 0's rings.
    once(0);
    assert_eq!(ram.read_u32(Gpa(AT + hvt::RING_COM_TAIL)).unwrap(), 0);
    assert!(!net.signals(0).work.load(Ordering::Acquire));
    once(1);
    // VM 0's read is answered (EINVAL) and VM 0 woken.
    let commit = AT + hvt::RING_COMMITS;
    assert_eq!(ram.read_u32(Gpa(AT + hvt::RING_COM_TAIL)).unwrap(), 1);
    assert_eq!(ram.read_u32(Gpa(commit)).unwrap(), 77);
    assert_eq!(
        ram.read_u32(Gpa(commit + hvt::RING_COMMIT_RET)).unwrap() as i32,
        hvt::R_EINVAL
    );
    assert!(net.signals(0).work.swap(false, Ordering::Acquire));
    assert!(!net.signals(0).fault.load(Ordering::Acquire));
    // VM 1 is stopped with the ring's error on its port 0.
    assert!(net.signals(1).fault.load(Ordering::Acquire));
    assert_eq!(
        net.fault(1, 1),
        Some((
            0,
            RingError::HvtRingIndices {
                head: 0,
                tail: hvt::RING_SIZE + 1
            }
        ))
    );
    // Once detached (its VM ended), a ring is left alone.
    assert_eq!(net.ring(0).unwrap().detach(), Some((0, 1)));
    ram.write_u32(Gpa(AT + hvt::RING_ENT_TAIL), 2).unwrap();
    once(1);
    assert_eq!(ram.read_u32(Gpa(AT + hvt::RING_ENT_HEAD)).unwrap(), 1);
    assert_eq!(net.ring(0).unwrap().gpa(), None);
}

/// `net` with `places` places for links made at runtime, polled by core 0.
fn with_places(mut net: Net<'static>, places: usize) -> Net<'static> {
    let places = Heap.slice(places, |_| LinkPlace::default()).unwrap();
    net.set_made(places, 0);
    net
}

fn pr(vm: u32, port: u8) -> PortRef {
    PortRef { vm, port }
}

#[test]
fn a_link_made_at_runtime_moves_frames_on_the_control_cores_passes_and_is_listed() {
    // VMs 0 and 1 linked by the manifest; 2 and 3 not linked.
    let net = with_places(build(&[1, 1, 1, 1], &[link((0, 0), (1, 0), 1, 0)]), 2);
    let (mut c, mut d) = (Guest::new(), Guest::new());
    running(&net, 2, &c);
    running(&net, 3, &d);
    c.send(&frame(60, 4));
    d.post(SLOT);
    let env = FakeEnv::default();
    let once = |net: &Net<'static>| {
        let passes = Cell::new(0);
        net.poll(0, &env, &mut [] as &mut [Option<FakeWire>], || {
            passes.set(passes.get() + 1);
            passes.get() > 1
        });
    };
    // Not linked: the frame waits in its sender's ring.
    once(&net);
    assert!(d.received().is_empty());
    assert_eq!(net.flow_count(), 1 + 2);
    assert!(net.flow_now(1).is_none(), "an empty place lists nothing");
    // Numbered after the manifest's one link.
    assert_eq!(net.make_link(pr(3, 0), pr(2, 0)), Ok(1));
    assert_eq!(net.link_of(pr(2, 0)), Some(1));
    assert_eq!(net.link_of(pr(0, 0)), Some(0));
    once(&net);
    assert_eq!(d.received(), vec![frame(60, 4)]);
    assert_eq!(c.tx_used(), 1);
    assert!(net.signals(3).work.load(Ordering::Acquire));
    match net.flow_now(1) {
        Some(FlowNow::Link {
            index, a, b, ba, ..
        }) => {
            assert_eq!((index, a, b), (1, pr(3, 0), pr(2, 0)));
            assert_eq!((ba.frames, ba.bytes), (1, 60), "c is b: b->a");
        }
        _ => panic!("no row for the made link"),
    }
    assert_eq!(net.totals().frames, 1);
    // Its record, numbered and named.
    let m = net.made_link(1).unwrap();
    env.record(&m.record(&|vm| ["w", "x", "y", "z"][vm as usize]));
    let records = env.records.borrow();
    assert!(
        matches!(&records[..], [Kept::Link { link: 1, a, b, .. }] if a == &("z".to_string(), 0) && b == &("y".to_string(), 0)),
        "{records:?}"
    );
    // Core 1 (the manifest link's) does not pass it.
    drop(records);
    c.send(&frame(70, 5));
    d.post(SLOT);
    let passes = Cell::new(0);
    net.poll(1, &env, &mut [] as &mut [Option<FakeWire>], || {
        passes.set(passes.get() + 1);
        passes.get() > 1
    });
    assert_eq!(d.received().len(), 1, "only the first frame");
}

#[test]
fn a_link_is_made_only_between_two_free_ports_that_exist_and_only_while_places_last() {
    let batch = build(&[1, 1], &[]);
    assert_eq!(
        batch.make_link(pr(0, 0), pr(1, 0)),
        Err(MakeRefusal::NotService)
    );
    let net = with_places(build(&[2, 1, 1, 1], &[link((0, 0), (1, 0), 0, 0)]), 1);
    assert_eq!(
        net.make_link(pr(0, 1), pr(2, 1)),
        Err(MakeRefusal::NoPort(pr(2, 1)))
    );
    assert_eq!(
        net.make_link(pr(9, 0), pr(2, 0)),
        Err(MakeRefusal::NoPort(pr(9, 0)))
    );
    assert_eq!(
        net.make_link(pr(2, 0), pr(2, 0)),
        Err(MakeRefusal::SamePort)
    );
    assert_eq!(
        net.make_link(pr(2, 0), pr(1, 0)),
        Err(MakeRefusal::Linked(pr(1, 0), 0))
    );
    assert_eq!(net.make_link(pr(0, 1), pr(2, 0)), Ok(1));
    assert_eq!(
        net.make_link(pr(3, 0), pr(2, 0)),
        Err(MakeRefusal::Linked(pr(2, 0), 1))
    );
    assert_eq!(
        net.make_link(pr(3, 0), pr(0, 1)).unwrap_err(),
        MakeRefusal::Linked(pr(0, 1), 1)
    );
    // One place, taken.
    let net2 = with_places(build(&[1, 1, 1, 1], &[]), 1);
    assert_eq!(net2.make_link(pr(0, 0), pr(1, 0)), Ok(0));
    assert_eq!(net2.make_link(pr(2, 0), pr(3, 0)), Err(MakeRefusal::Full));
    // A manifest link is not unmade; an unknown pair is refused.
    assert_eq!(
        net.unmake_link(pr(0, 0), pr(1, 0)),
        Err(MakeRefusal::NoLink)
    );
    assert_eq!(
        net.unmake_link(pr(0, 1), pr(3, 0)),
        Err(MakeRefusal::NoLink)
    );
    // Unmade (ends in either order), its place and ports are free again,
    // and the next link gets the next number.
    assert_eq!(net.unmake_link(pr(2, 0), pr(0, 1)).map(|m| m.number), Ok(1));
    assert_eq!(net.link_of(pr(2, 0)), None);
    assert_eq!(net.make_link(pr(2, 0), pr(3, 0)), Ok(2));
}

#[test]
fn an_unmade_link_gives_back_the_receive_buffer_it_kept_and_its_counters_stay_in_the_totals() {
    let net = with_places(build(&[1, 1], &[]), 1);
    let env = FakeEnv::default();
    let (mut a, mut b) = (Guest::new(), Guest::new());
    running(&net, 0, &a);
    running(&net, 1, &b);
    let pass = |net: &Net<'static>| {
        let passes = Cell::new(0);
        net.poll(0, &env, &mut [] as &mut [Option<FakeWire>], || {
            passes.set(passes.get() + 1);
            passes.get() > 1
        });
    };
    assert_eq!(net.make_link(pr(0, 0), pr(1, 0)), Ok(0));
    // Too large for b's one 64-byte buffer: dropped, the buffer kept.
    b.post(64);
    a.send(&frame(100, 0));
    pass(&net);
    let gone = net.unmake_link(pr(1, 0), pr(0, 0)).unwrap();
    assert_eq!((gone.number, gone.ab.drop_size, gone.ab.frames), (0, 1, 0));
    assert_eq!(net.totals().drop_size, 1, "kept after the link is gone");
    // Unlinked, frames wait.
    a.send(&frame(40, 7));
    pass(&net);
    assert!(b.received().is_empty());
    assert_eq!(a.tx_used(), 1);
    // Linked again: the frame goes into the buffer given back (b posted
    // no other), not lost with the old link.
    assert_eq!(net.make_link(pr(0, 0), pr(1, 0)), Ok(1));
    pass(&net);
    assert_eq!(b.received(), vec![frame(40, 7)]);
    assert_eq!(net.totals().frames, 1);
    assert_eq!(net.totals().drop_size, 1);
}

#[test]
fn a_link_hook_redirects_frames_to_another_vms_port_and_waits_for_it_a_while() {
    use crate::hooks::packet::tests::{bouncer, hook};
    // VMs 0 and 1 linked; VM 2's port (index 2) on no link.
    let mut net = build(&[1, 1, 1], &[link((0, 0), (1, 0), 0, 0)]);
    let hooks: &'static [PacketHook<'static>] = vec![hook(bouncer())].leak();
    net.set_hooks(hooks);
    let env = FakeEnv::default();
    let (mut a, mut b, mut c) = (Guest::new(), Guest::new(), Guest::new());
    running(&net, 0, &a);
    running(&net, 1, &b);
    running(&net, 2, &c);
    // bouncer(): [2, port, ..] is redirected to `port`.
    let to = |port: u8, len: usize, tag: u8| {
        let mut f = frame(len, tag);
        f[0] = 2;
        f[1] = port;
        f
    };
    let (to_c, to_b, nowhere, c_later) = (to(2, 60, 1), to(1, 60, 2), to(9, 60, 3), to(2, 60, 4));
    // The hook judges each frame in a buffer of the link's receiver.
    c.post(SLOT);
    for _ in 0..8 {
        b.post(SLOT);
    }
    for f in [&to_c, &to_b, &nowhere, &c_later] {
        a.send(f);
    }
    assert_eq!(
        net.service(&net.links[0], &env),
        5,
        "4 frames, 1 delivered on"
    );
    // To VM 2 (which had one buffer): delivered, VM 2 woken; to the
    // receiver: passed; to no port: unsent; to VM 2 again, with no buffer
    // left: it waits.
    assert_eq!(c.received(), vec![to_c.clone()]);
    assert_eq!(b.received(), vec![to_b]);
    assert!(net.signals(2).work.load(Ordering::Acquire));
    assert_eq!(a.tx_used(), 4);
    let counts = || {
        let f = hooks[0].flow();
        (f.redirect, f.sent, f.unsent)
    };
    assert_eq!(counts(), (4, 2, 1));
    assert!(hooks[0].lock().sends_back());
    // VM 2 posts a buffer: the waiting frame goes in, nothing lost.
    c.post(SLOT);
    net.service(&net.links[0], &env);
    assert_eq!(c.received(), vec![to_c.clone(), c_later.clone()]);
    assert_eq!(counts(), (4, 3, 1));
    // One VM 2 has no buffer for: given up after AWAY_HOLD, the link on.
    a.send(&to(2, 60, 5));
    net.service(&net.links[0], &env);
    assert_eq!(counts(), (5, 3, 1));
    env.advance(AWAY_HOLD);
    net.service(&net.links[0], &env);
    assert_eq!(counts(), (5, 3, 2));
    assert!(!hooks[0].lock().sends_back());
    // A frame too large for VM 2's buffer: unsent, the buffer back in its
    // ring for the next one.
    c.post(64);
    a.send(&to(2, 100, 6));
    net.service(&net.links[0], &env);
    let small = to(2, 40, 7);
    a.send(&small);
    net.service(&net.links[0], &env);
    assert_eq!(c.received(), vec![to_c, c_later, small]);
    assert_eq!(counts(), (7, 4, 3));
}

#[test]
fn an_unmade_link_keeps_a_buffer_a_redirect_was_given_after_it_rather_than_hand_one_out_twice() {
    use crate::hooks::packet::tests::{bouncer, hook};
    // Link 0 (VMs 0, 1) with the redirecting hook; VMs 2 and 3 linked at
    // runtime.
    let mut net = build(&[1, 1, 1, 1], &[link((0, 0), (1, 0), 0, 0)]);
    net.set_hooks(vec![hook(bouncer())].leak());
    let net = with_places(net, 1);
    let env = FakeEnv::default();
    let (mut a, mut b, mut c, mut d) = (Guest::new(), Guest::new(), Guest::new(), Guest::new());
    for (vm, g) in [(0, &a), (1, &b), (2, &c), (3, &d)] {
        running(&net, vm, g);
    }
    assert_eq!(net.make_link(pr(2, 0), pr(3, 0)), Ok(1));
    // VM 3 keeps its first (small) buffer for the next frame of link 1.
    d.post(64);
    c.send(&frame(100, 0));
    net.service_made(&env);
    // Link 0's hook redirects a frame to VM 3 (port 3): its next buffer.
    d.post(SLOT);
    b.post(SLOT);
    let mut f = frame(60, 1);
    f[0] = 2;
    f[1] = 3;
    a.send(&f);
    net.service(&net.links[0], &env);
    assert_eq!(d.received(), vec![f]);
    // The kept buffer is not the last VM 3's ring handed out: it stays
    // taken, said so, rather than be handed out again.
    let gone = net.unmake_link(pr(2, 0), pr(3, 0)).unwrap();
    assert_eq!(gone.kept_buffers, 1);
    assert_eq!(d.posted(), 1, "the kept buffer only");
}

#[test]
fn a_nic_transmit_hook_redirects_a_guests_frame_to_another_vms_port_not_the_wire() {
    use crate::hooks::packet::tests::{bouncer, nic_hook};
    use vmm_abi::manifest::NicDir;
    // VMs 0 and 1 on the NIC; VMs 2 and 3 linked to each other.
    let mut net = with_nic();
    let hooks: &'static [PacketHook<'static>] = vec![nic_hook(NicDir::Tx, bouncer())].leak();
    net.set_hooks(hooks);
    let mut guests: Vec<Guest> = (0..4).map(|_| Guest::new()).collect();
    for (vm, g) in guests.iter().enumerate() {
        running(&net, vm as u32, g);
    }
    guests[3].post(SLOT);
    // bouncer(): [2, port, ..] is redirected to `port` (VM 3's, index 3);
    // the source is VM 0's own address, as the switch checks first.
    let mut f = frame(60, 9);
    f[0] = 2;
    f[1] = 3;
    f[6..12].copy_from_slice(&port_mac(0, 0));
    guests[0].send(&f);
    let mut wire = Some(FakeWire::new(8));
    let env = FakeEnv::default();
    let passes = Cell::new(0);
    net.poll(1, &env, core::slice::from_mut(&mut wire), || {
        passes.set(passes.get() + 1);
        passes.get() > 2
    });
    assert_eq!(guests[3].received(), vec![f]);
    assert!(wire.unwrap().sent.is_empty(), "not onto the wire");
    assert!(net.signals(3).work.load(Ordering::Acquire), "VM 3 woken");
    assert_eq!(guests[0].tx_used(), 1);
    let h = hooks[0].flow();
    assert_eq!((h.redirect, h.sent, h.unsent), (1, 1, 0));
}
