//! Bookkeeping of a port's buffer slots: which pool slot each in-flight
//! descriptor chain (the token `virtio-drivers` returns, its head descriptor
//! index) carries, and which slots are free. Pure logic; the ids it is asked
//! about may come from the device and are checked, never trusted.
#![forbid(unsafe_code)]

/// Marks a token that carries no slot.
const UNBOUND: u16 = u16::MAX;

/// Token → slot map and free-slot stack for `N` slots and `N` tokens.
pub(crate) struct Slots<const N: usize> {
    /// The slot each token carries, or [`UNBOUND`].
    slot_of: [u16; N],
    /// Free slots, a stack: `free[..free_len]`.
    free: [u16; N],
    free_len: usize,
    /// Tokens currently bound.
    bound: usize,
}

impl<const N: usize> Slots<N> {
    /// Every slot free, no token bound.
    pub(crate) fn new() -> Self {
        const {
            assert!(
                N > 0 && N < UNBOUND as usize,
                "slot indices must fit in u16"
            )
        };
        let mut free = [0u16; N];
        // Pop order 0, 1, 2, ...: the stack's top is at the end.
        for (i, slot) in free.iter_mut().rev().enumerate() {
            *slot = i as u16;
        }
        Slots {
            slot_of: [UNBOUND; N],
            free,
            free_len: N,
            bound: 0,
        }
    }

    /// Takes a free slot, if there is one.
    pub(crate) fn take_free(&mut self) -> Option<usize> {
        self.free_len = self.free_len.checked_sub(1)?;
        Some(usize::from(self.free[self.free_len]))
    }

    /// Returns `slot` to the free stack. Only slots obtained from
    /// [`Slots::take_free`] (or [`Slots::unbind`]) and not yet returned may
    /// be released; anything else is ignored.
    pub(crate) fn release(&mut self, slot: usize) {
        if slot < N && self.free_len < N {
            self.free[self.free_len] = slot as u16;
            self.free_len += 1;
        }
    }

    /// Records that `token` now carries `slot`; `false` (and nothing
    /// recorded) if the token is out of range or already bound.
    pub(crate) fn bind(&mut self, token: u16, slot: usize) -> bool {
        match self.slot_of.get_mut(usize::from(token)) {
            Some(entry) if *entry == UNBOUND && slot < N => {
                *entry = slot as u16;
                self.bound += 1;
                true
            }
            _ => false,
        }
    }

    /// The slot `token` carries, if it is bound.
    pub(crate) fn lookup(&self, token: u16) -> Option<usize> {
        match *self.slot_of.get(usize::from(token))? {
            UNBOUND => None,
            slot => Some(usize::from(slot)),
        }
    }

    /// Forgets `token`'s binding and returns its slot, if it was bound.
    pub(crate) fn unbind(&mut self, token: u16) -> Option<usize> {
        let slot = self.lookup(token)?;
        self.slot_of[usize::from(token)] = UNBOUND;
        self.bound -= 1;
        Some(slot)
    }

    /// Tokens currently bound.
    pub(crate) fn bound(&self) -> usize {
        self.bound
    }

    /// Free slots.
    pub(crate) fn free(&self) -> usize {
        self.free_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_bind_unbind_release() {
        let mut s = Slots::<4>::new();
        assert_eq!(s.free(), 4);
        let a = s.take_free().unwrap();
        let b = s.take_free().unwrap();
        assert_eq!((a, b), (0, 1));
        assert!(s.bind(3, a));
        assert!(s.bind(0, b));
        assert_eq!(s.bound(), 2);
        assert_eq!(s.lookup(3), Some(a));
        assert_eq!(s.lookup(1), None);
        assert_eq!(s.unbind(3), Some(a));
        assert_eq!(s.unbind(3), None, "unbinding twice finds nothing");
        s.release(a);
        assert_eq!(s.free(), 3);
        assert_eq!(s.bound(), 1);
    }

    #[test]
    fn hostile_tokens_are_refused() {
        let mut s = Slots::<4>::new();
        assert_eq!(s.lookup(4), None);
        assert_eq!(s.lookup(u16::MAX), None);
        assert_eq!(s.unbind(999), None);
        assert!(!s.bind(4, 0));
        assert!(s.bind(2, 0));
        assert!(!s.bind(2, 1), "a bound token cannot be rebound");
        assert!(!s.bind(1, 4), "slot out of range");
        assert_eq!(s.bound(), 1);
    }

    #[test]
    fn runs_dry_and_refills() {
        let mut s = Slots::<3>::new();
        let got: std::vec::Vec<usize> = core::iter::from_fn(|| s.take_free()).collect();
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(s.take_free(), None);
        for slot in got {
            s.release(slot);
        }
        s.release(0);
        assert_eq!(s.free(), 3, "releasing into a full stack is ignored");
    }
}
