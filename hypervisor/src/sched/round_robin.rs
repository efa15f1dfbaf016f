//! The round-robin policy with deficit accounting: VMs take turns in queue order; one that waits for work is passed over until it is ready; one that owes a whole slice sits a turn out while others wait.

use super::queue::RunQueue;
use super::{Next, Ran, RunView, Scheduler};

/// Round robin over one core's VMs.
pub struct RoundRobin<'a> {
    queue: RunQueue<'a>,
    /// The core's slice length in ticks.
    timeslice: u64,
    /// VMs passed over in a row because they still wait for work.
    passed: usize,
}

impl<'a> RoundRobin<'a> {
    /// Every VM of `slots` in order, slices of `timeslice` ticks.
    pub fn new(slots: &'a mut [u32], timeslice: u64) -> Self {
        RoundRobin {
            queue: RunQueue::full(slots),
            timeslice,
            passed: 0,
        }
    }

    /// The first `n` VMs of `slots` queued in order (the rest of `slots`
    /// is room for VMs admitted later), slices of `timeslice` ticks.
    pub fn with_first(slots: &'a mut [u32], n: usize, timeslice: u64) -> Self {
        RoundRobin {
            queue: RunQueue::first(slots, n),
            timeslice,
            passed: 0,
        }
    }
}

impl Scheduler for RoundRobin<'_> {
    fn next(&mut self, view: &mut impl RunView) -> Next {
        loop {
            let Some(vm) = self.queue.pop() else {
                return Next::Done;
            };
            if !view.ready(vm) {
                self.queue.push(vm);
                self.passed += 1;
                if self.passed >= self.queue.len() {
                    self.passed = 0;
                    return Next::Idle;
                }
                continue;
            }
            self.passed = 0;
            // A VM that owes a whole slice or more (its exits ran long past
            // its slices) sits this turn out while others wait, so however
            // long one exit takes, its core-mates get their share.
            let debt = view.debt(vm);
            if !self.queue.is_empty() && *debt >= self.timeslice {
                *debt -= self.timeslice;
                self.queue.push(vm);
                continue;
            }
            return Next::Run {
                vm,
                others_waiting: !self.queue.is_empty(),
            };
        }
    }

    fn result(&mut self, vm: u32, ran: Ran) -> bool {
        match ran {
            Ran::Preempted | Ran::Waiting | Ran::Restarting => self.queue.push(vm),
            Ran::Ended => true,
        }
    }

    fn admit(&mut self, vm: u32) -> bool {
        self.queue.push(vm)
    }

    fn remove(&mut self, vm: u32) -> bool {
        self.passed = 0;
        self.queue.remove(vm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// VMs by position: whether each is ready, and its debt.
    struct View {
        ready: Vec<bool>,
        debt: Vec<u64>,
        asked: Vec<u32>,
    }

    impl View {
        fn new(n: usize) -> Self {
            View {
                ready: std::vec![true; n],
                debt: std::vec![0; n],
                asked: Vec::new(),
            }
        }
    }

    impl RunView for View {
        fn ready(&mut self, vm: u32) -> bool {
            self.asked.push(vm);
            self.ready[vm as usize]
        }

        fn debt(&mut self, vm: u32) -> &mut u64 {
            &mut self.debt[vm as usize]
        }
    }

    const SLICE: u64 = 1000;

    fn run(vm: u32, others_waiting: bool) -> Next {
        Next::Run { vm, others_waiting }
    }

    #[test]
    fn vms_admitted_later_join_the_first_ones() {
        let mut slots = [0, 1, 7, 7];
        let mut rr = RoundRobin::with_first(&mut slots, 2, 10);
        let mut view = View::new(4);
        assert!(rr.admit(3));
        let mut order = Vec::new();
        for _ in 0..3 {
            if let Next::Run { vm, .. } = rr.next(&mut view) {
                order.push(vm);
                rr.result(vm, Ran::Ended);
            }
        }
        assert_eq!(order, [0, 1, 3]);
        assert_eq!(rr.next(&mut view), Next::Done);
    }

    #[test]
    fn an_operator_takes_a_vm_out_and_brings_an_ended_one_back() {
        let mut slots = [0, 1, 2];
        let mut s = RoundRobin::new(&mut slots, SLICE);
        let mut view = View::new(3);
        assert!(s.remove(1));
        assert!(!s.remove(1));
        assert_eq!(s.next(&mut view), run(0, true));
        assert!(s.result(0, Ran::Ended));
        assert_eq!(s.next(&mut view), run(2, false));
        assert!(s.admit(0));
        assert!(s.result(2, Ran::Preempted));
        assert_eq!(s.next(&mut view), run(0, true));
        assert_eq!(s.next(&mut view), run(2, false));
        assert!(s.result(2, Ran::Ended));
        assert_eq!(s.next(&mut view), Next::Done);
    }

    #[test]
    fn vms_take_turns_and_leave_when_they_end() {
        let mut slots = [0, 1, 2];
        let mut s = RoundRobin::new(&mut slots, SLICE);
        let mut view = View::new(3);
        let mut order = Vec::new();
        for round in 0..3 {
            for _ in 0..3 - round {
                let Next::Run { vm, .. } = s.next(&mut view) else {
                    panic!("a VM should run");
                };
                order.push(vm);
                // VM 2 ends first, then 1; 0 keeps running.
                let ends = (round == 0 && vm == 2) || (round == 1 && vm == 1);
                assert!(s.result(vm, if ends { Ran::Ended } else { Ran::Preempted }));
            }
        }
        assert_eq!(order, [0, 1, 2, 0, 1, 0]);
        assert_eq!(s.next(&mut view), run(0, false), "alone, nobody waits");
        assert!(s.result(0, Ran::Ended));
        assert_eq!(s.next(&mut view), Next::Done);
    }

    #[test]
    fn waiting_vms_are_passed_over_and_an_all_waiting_core_idles() {
        let mut slots = [0, 1];
        let mut s = RoundRobin::new(&mut slots, SLICE);
        let mut view = View::new(2);
        view.ready[0] = false;
        assert_eq!(s.next(&mut view), run(1, true), "0 waits, 1 runs");
        assert!(s.result(1, Ran::Waiting));
        view.ready[1] = false;
        assert_eq!(s.next(&mut view), Next::Idle);
        assert_eq!(view.asked, [0, 1, 0, 1], "each asked once per pass");
        view.ready[1] = true;
        assert_eq!(s.next(&mut view), run(1, true));
    }

    #[test]
    fn a_vm_that_owes_a_slice_sits_a_turn_out_but_not_when_alone() {
        let mut slots = [0, 1];
        let mut s = RoundRobin::new(&mut slots, SLICE);
        let mut view = View::new(2);
        view.debt[0] = 2 * SLICE + 5;
        assert_eq!(s.next(&mut view), run(1, true));
        assert_eq!(view.debt[0], SLICE + 5, "one slice paid off");
        assert!(s.result(1, Ran::Preempted));
        assert_eq!(s.next(&mut view), run(1, true), "still owes a whole slice");
        assert_eq!(view.debt[0], 5);
        assert!(s.result(1, Ran::Ended));
        view.debt[0] = 10 * SLICE;
        assert_eq!(
            s.next(&mut view),
            run(0, false),
            "alone it owes nobody a turn"
        );
    }

    #[test]
    fn a_restarting_vm_goes_to_the_back() {
        let mut slots = [0, 1];
        let mut s = RoundRobin::new(&mut slots, SLICE);
        let mut view = View::new(2);
        assert_eq!(s.next(&mut view), run(0, true));
        assert!(s.result(0, Ran::Restarting));
        assert_eq!(s.next(&mut view), run(1, true));
        assert!(s.result(1, Ran::Ended));
        assert_eq!(s.next(&mut view), run(0, false));
    }
}
