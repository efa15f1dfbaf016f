//! A VM's recent console lines, kept by the hypervisor in a fixed ring of bytes so `corral logs` shows what a VM printed even when nobody was watching: the newest lines win, each line numbered from the VM's first, the oldest dropped whole when room runs out.
//!
//! Lines are stored as a length byte and their bytes (at most
//! [`HISTORY_LINE_MAX`]; longer ones are cut on a character boundary).
//! Readers ask for the first line at or after a number and get it with
//! its own number, so a reader that fell behind learns how many lines it
//! missed.

use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

/// Bytes of one VM's history.
pub const HISTORY_BYTES: usize = 2048;
/// Longest line kept (longer lines are cut).
pub const HISTORY_LINE_MAX: usize = 255;

/// The ring itself.
pub struct History {
    buf: [u8; HISTORY_BYTES],
    /// Where the oldest line's length byte is.
    start: usize,
    /// Bytes in use.
    used: usize,
    /// The number of the oldest line kept.
    first: u64,
    /// The number the next line gets.
    next: u64,
}

/// One line read back: its number and its text.
pub type Line = (u64, heapless::String<HISTORY_LINE_MAX>);

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    /// An empty history.
    pub const fn new() -> Self {
        History {
            buf: [0; HISTORY_BYTES],
            start: 0,
            used: 0,
            first: 0,
            next: 0,
        }
    }

    /// Forgets every line (a new VM in the place); numbering starts over.
    pub fn clear(&mut self) {
        *self = History::new();
    }

    /// The number the next line gets (lines `first ..` that number are
    /// kept).
    pub fn next(&self) -> u64 {
        self.next
    }

    /// The number of the oldest line kept.
    pub fn first(&self) -> u64 {
        self.first
    }

    fn byte(&self, at: usize) -> u8 {
        self.buf[at % HISTORY_BYTES]
    }

    /// Drops the oldest line.
    fn pop(&mut self) {
        let len = usize::from(self.byte(self.start)) + 1;
        self.start = (self.start + len) % HISTORY_BYTES;
        self.used -= len;
        self.first += 1;
    }

    /// Keeps `text` as the next line, dropping the oldest lines it needs
    /// room from.
    pub fn push(&mut self, text: &str) {
        let mut len = text.len().min(HISTORY_LINE_MAX);
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        while self.used + 1 + len > HISTORY_BYTES {
            self.pop();
        }
        let mut at = (self.start + self.used) % HISTORY_BYTES;
        self.buf[at] = len as u8;
        for &b in &text.as_bytes()[..len] {
            at = (at + 1) % HISTORY_BYTES;
            self.buf[at] = b;
        }
        self.used += 1 + len;
        self.next += 1;
    }

    /// The first line kept whose number is `from` or later, with its
    /// number.
    pub fn line(&self, from: u64) -> Option<Line> {
        if from >= self.next {
            return None;
        }
        let mut at = self.start;
        for _ in self.first..from.max(self.first) {
            at = (at + usize::from(self.byte(at)) + 1) % HISTORY_BYTES;
        }
        let len = usize::from(self.byte(at));
        let mut bytes = [0u8; HISTORY_LINE_MAX];
        for (i, b) in bytes[..len].iter_mut().enumerate() {
            *b = self.byte(at + 1 + i);
        }
        // Pushed as whole characters, so always UTF-8.
        let text = core::str::from_utf8(&bytes[..len]).unwrap_or("");
        Some((from.max(self.first), heapless::String::try_from(text).ok()?))
    }
}

/// Lines added to any shared history so far: a reader of every place (an
/// event watcher) looks through them again only once this moved.
static ADDED: AtomicU64 = AtomicU64::new(0);

/// How many lines were added to shared histories so far (each counted
/// once it can be read).
pub fn lines_added() -> u64 {
    ADDED.load(Ordering::Acquire)
}

/// A VM place's history, shared by the core that runs its VM (which adds
/// lines, one lock per line) and the control channel (which reads them).
#[derive(Default)]
pub struct SharedHistory(Mutex<History>);

impl SharedHistory {
    /// An empty one.
    pub const fn new() -> Self {
        SharedHistory(Mutex::new(History::new()))
    }

    /// Adds a line.
    pub fn push(&self, text: &str) {
        self.0.lock().push(text);
        ADDED.fetch_add(1, Ordering::Release);
    }

    /// Forgets every line.
    pub fn clear(&self) {
        self.0.lock().clear();
    }

    /// As [`History::line`].
    pub fn line(&self, from: u64) -> Option<Line> {
        self.0.lock().line(from)
    }

    /// The number the next line added will have.
    pub fn next(&self) -> u64 {
        self.0.lock().next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use std::string::{String, ToString};
    use std::vec::Vec;

    fn all(h: &History, from: u64) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut at = from;
        while let Some((n, text)) = h.line(at) {
            out.push((n, text.as_str().to_string()));
            at = n + 1;
        }
        out
    }

    #[test]
    fn lines_come_back_numbered_and_the_oldest_go_first() {
        let mut h = History::new();
        assert_eq!(h.line(0), None);
        h.push("one");
        h.push("two");
        assert_eq!(all(&h, 0), [(0, "one".into()), (1, "two".into())]);
        assert_eq!(all(&h, 1), [(1, "two".into())]);
        assert_eq!(h.line(2), None);
        // Fill it: the oldest lines go, whole.
        let long = "x".repeat(200);
        for _ in 0..20 {
            h.push(&long);
        }
        assert!(h.first() > 0);
        assert_eq!(h.next(), 22);
        let kept = all(&h, 0);
        assert_eq!(kept[0].0, h.first(), "a reader behind gets the oldest kept");
        assert_eq!(kept.len() as u64, h.next() - h.first());
        assert!(kept.iter().all(|(_, t)| *t == long));
        h.clear();
        assert_eq!((h.first(), h.next(), h.line(0)), (0, 0, None));
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        let mut h = History::new();
        let text = "é".repeat(200);
        h.push(&text);
        let (_, got) = h.line(0).unwrap();
        assert!(got.len() <= HISTORY_LINE_MAX);
        assert!(text.starts_with(got.as_str()));
        assert_eq!(got.len(), 254);
        h.push("");
        assert_eq!(h.line(1).unwrap().1.as_str(), "");
    }

    proptest! {
        /// Against a model: the lines kept are the newest that fit, in
        /// order, numbered from the first ever pushed.
        #[test]
        fn it_keeps_the_newest_lines_that_fit(lines in proptest::collection::vec("[a-z ]{0,300}", 0..200)) {
            let mut h = History::new();
            let mut model: VecDeque<(u64, String)> = VecDeque::new();
            let mut bytes = 0usize;
            for (n, line) in lines.iter().enumerate() {
                let kept = &line[..line.len().min(HISTORY_LINE_MAX)];
                h.push(line);
                model.push_back((n as u64, kept.to_string()));
                bytes += 1 + kept.len();
                while bytes > HISTORY_BYTES {
                    let (_, old) = model.pop_front().unwrap();
                    bytes -= 1 + old.len();
                }
                prop_assert_eq!(all(&h, 0), model.iter().cloned().collect::<Vec<_>>());
            }
        }
    }
}
