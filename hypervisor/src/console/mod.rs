//! Guest console text: bytes a guest writes are collected per VM into lines,
//! made safe to print (control bytes escaped), and emitted with the VM name
//! as prefix, so guest output can never pass for a hypervisor record.
//! [`quota`] decides how much of it a VM may print, [`history`] keeps its
//! recent lines for `corral logs`, [`queue`] holds what
//! waits for the UART.
#![forbid(unsafe_code)]

pub mod history;
pub mod queue;
pub mod quota;

/// Longest line kept before it is emitted unfinished.
pub const LINE_MAX: usize = 160;

/// One VM's pending console line.
pub struct LineBuffer {
    buf: [u8; LINE_MAX],
    len: usize,
    /// Where its VM's printed lines are also kept, in a service run.
    history: Option<&'static history::SharedHistory>,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl LineBuffer {
    /// An empty buffer.
    pub const fn new() -> Self {
        LineBuffer {
            buf: [0; LINE_MAX],
            len: 0,
            history: None,
        }
    }

    /// Keeps its VM's lines in `history` too (a service run's place).
    pub fn keep_in(&mut self, history: Option<&'static history::SharedHistory>) {
        self.history = history;
    }

    /// Where its VM's lines are kept, if anywhere.
    pub fn history(&self) -> Option<&'static history::SharedHistory> {
        self.history
    }

    /// Keeps a line about its VM (a start, a restart, its end) in its
    /// history, if it has one.
    pub fn note(&self, text: core::fmt::Arguments<'_>) {
        if let Some(h) = self.history {
            h.push(StackStr::<{ history::HISTORY_LINE_MAX }>::format(text).as_str());
        }
    }

    fn push_byte(&mut self, b: u8, emit: &mut impl FnMut(&str)) {
        let escaped = [
            b'\\',
            b'x',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ];
        let bytes: &[u8] = match b {
            b'\t' | 0x20..=0x7e => core::slice::from_ref(&b),
            _ => &escaped,
        };
        if self.len + bytes.len() > LINE_MAX {
            self.flush(emit);
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Adds guest bytes; calls `emit` with every completed line (no newline).
    pub fn push(&mut self, bytes: &[u8], emit: &mut impl FnMut(&str)) {
        for &b in bytes {
            match b {
                b'\n' => self.flush_line(emit),
                b'\r' => {}
                _ => self.push_byte(b, emit),
            }
        }
    }

    fn flush_line(&mut self, emit: &mut impl FnMut(&str)) {
        // Only printable ASCII is ever stored, so this cannot fail.
        emit(core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?"));
        self.len = 0;
    }

    /// Forgets the unfinished line; returns how many bytes it held.
    pub fn discard(&mut self) -> usize {
        core::mem::take(&mut self.len)
    }

    /// Emits the unfinished line, if any.
    pub fn flush(&mut self, emit: &mut impl FnMut(&str)) {
        if self.len > 0 {
            self.flush_line(emit);
        }
    }
}

/// A fixed-capacity string for formatting without an allocator; text that
/// does not fit is cut off (at a character boundary) rather than lost whole.
pub struct StackStr<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for StackStr<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> StackStr<N> {
    /// An empty string.
    pub const fn new() -> Self {
        StackStr {
            buf: [0; N],
            len: 0,
        }
    }

    /// Formats `args` into a new string.
    pub fn format(args: core::fmt::Arguments<'_>) -> Self {
        let mut s = Self::new();
        let _ = core::fmt::write(&mut s, args);
        s
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 characters are ever copied in.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> core::fmt::Write for StackStr<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for c in s.chars() {
            let mut tmp = [0u8; 4];
            let bytes = c.encode_utf8(&mut tmp).as_bytes();
            if self.len + bytes.len() > N {
                return Err(core::fmt::Error);
            }
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    fn run(chunks: &[&[u8]]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut lb = LineBuffer::new();
        let mut emit = |l: &str| lines.push(String::from(l));
        for c in chunks {
            lb.push(c, &mut emit);
        }
        lb.flush(&mut emit);
        lines
    }

    #[test]
    fn splits_lines_across_writes() {
        assert_eq!(run(&[b"hel", b"lo\nwor", b"ld\r\n"]), ["hello", "world"]);
        assert_eq!(run(&[b"\n"]), [""]);
        assert_eq!(run(&[b"tail"]), ["tail"]);
    }

    #[test]
    fn escapes_control_bytes_and_wraps_long_lines() {
        assert_eq!(run(&[b"a\x1b[31m\xff"]), ["a\\x1b[31m\\xff"]);
        let long = [b'x'; LINE_MAX + 5];
        let lines = run(&[&long]);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), LINE_MAX);
    }

    #[test]
    fn stack_str_truncates_at_char_boundary() {
        let s = StackStr::<8>::format(format_args!("ab{}", "cdé€xyz"));
        assert_eq!(s.as_str(), "abcdé");
        assert_eq!(
            StackStr::<16>::format(format_args!("{:#x}", 255)).as_str(),
            "0xff"
        );
    }

    proptest::proptest! {
        #[test]
        fn output_is_always_printable(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            for line in run(&[&bytes]) {
                proptest::prop_assert!(line.len() <= LINE_MAX);
                proptest::prop_assert!(line.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)));
            }
        }
    }
}
