//! One core's run queue: a fixed-capacity FIFO of VM positions.

/// A fixed-capacity FIFO of VM indices: one core's run queue.
pub struct RunQueue<'a> {
    slots: &'a mut [u32],
    head: usize,
    len: usize,
}

impl<'a> RunQueue<'a> {
    /// A queue holding every entry of `slots`, first to last.
    pub fn full(slots: &'a mut [u32]) -> Self {
        let len = slots.len();
        RunQueue {
            slots,
            head: 0,
            len,
        }
    }

    /// A queue holding the first `n` entries of `slots` (at most all),
    /// with room for the rest.
    pub fn first(slots: &'a mut [u32], n: usize) -> Self {
        let len = n.min(slots.len());
        RunQueue {
            slots,
            head: 0,
            len,
        }
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `vm`; `false` if the queue is full.
    pub fn push(&mut self, vm: u32) -> bool {
        if self.len == self.slots.len() {
            return false;
        }
        let at = (self.head + self.len) % self.slots.len();
        self.slots[at] = vm;
        self.len += 1;
        true
    }

    /// Takes `vm` out wherever it waits, keeping the others' order;
    /// `false` if it was not there.
    pub fn remove(&mut self, vm: u32) -> bool {
        let cap = self.slots.len();
        let Some(k) = (0..self.len).find(|&k| self.slots[(self.head + k) % cap] == vm) else {
            return false;
        };
        for j in k..self.len - 1 {
            self.slots[(self.head + j) % cap] = self.slots[(self.head + j + 1) % cap];
        }
        self.len -= 1;
        true
    }

    /// Takes the oldest entry.
    pub fn pop(&mut self) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let vm = self.slots[self.head];
        self.head = (self.head + 1) % self.slots.len();
        self.len -= 1;
        Some(vm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_is_fifo_and_bounded() {
        let mut slots = [1u32, 2, 3];
        let mut q = RunQueue::full(&mut slots);
        assert!(!q.push(4));
        assert_eq!(q.pop(), Some(1));
        assert!(q.push(4));
        assert_eq!(
            (q.pop(), q.pop(), q.pop(), q.pop()),
            (Some(2), Some(3), Some(4), None)
        );
        assert!(q.is_empty());
        let mut slots = [5u32, 6, 7, 8];
        let mut q = RunQueue::full(&mut slots);
        assert_eq!(q.pop(), Some(5));
        assert!(q.push(5));
        // 6 7 8 5, wrapped: take 8 out of the middle, then 9 is not there.
        assert!(q.remove(8));
        assert!(!q.remove(9));
        assert_eq!(
            (q.len(), q.pop(), q.pop(), q.pop(), q.pop()),
            (3, Some(6), Some(7), Some(5), None)
        );
        let mut slots = [5u32, 6];
        let mut q = RunQueue::full(&mut slots);
        assert_eq!(
            (q.len(), q.pop(), q.pop(), q.pop()),
            (2, Some(5), Some(6), None)
        );
    }
}
