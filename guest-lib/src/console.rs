//! Formatted console output: [`print!`](crate::print!) and
//! [`println!`](crate::println!).
//!
//! Each macro call formats into a small buffer on the stack and hands it to
//! [`hypercall::console_write`](crate::hypercall::console_write) when the
//! buffer fills and at the end, so a typical line costs one hypercall (one VM
//! exit) however many pieces it is formatted from, and lines from one call
//! are not split across calls unless they are longer than the buffer.

use core::fmt::{self, Write};
use vmm_abi::corral::hypercall::MAX_CONSOLE_WRITE;

/// Bytes buffered per `print!` call before a console hypercall is made.
pub const BUFFER_SIZE: usize = 256;
const _: () = assert!(BUFFER_SIZE as u64 <= MAX_CONSOLE_WRITE);

/// A [`fmt::Write`] sink that collects bytes into `N`-byte pieces and passes
/// each full piece, and the rest on [`Buffered::flush`], to `sink`. Every
/// piece given to `sink` is non-empty and at most `N` bytes long.
pub struct Buffered<S: FnMut(&[u8]), const N: usize> {
    buf: [u8; N],
    len: usize,
    sink: S,
}

impl<S: FnMut(&[u8]), const N: usize> Buffered<S, N> {
    /// An empty buffer in front of `sink`.
    pub const fn new(sink: S) -> Self {
        const { assert!(N > 0, "a console buffer needs room") };
        Buffered {
            buf: [0; N],
            len: 0,
            sink,
        }
    }

    /// Appends `bytes`, passing on each piece that fills the buffer.
    pub fn write_bytes(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.len == N {
                self.flush();
            }
            let n = bytes.len().min(N - self.len);
            let (now, rest) = bytes.split_at(n);
            self.buf[self.len..self.len + n].copy_from_slice(now);
            self.len += n;
            bytes = rest;
        }
    }

    /// Passes on whatever is buffered.
    pub fn flush(&mut self) {
        if self.len > 0 {
            (self.sink)(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl<S: FnMut(&[u8]), const N: usize> Write for Buffered<S, N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Sends a piece of output: through the virtio-console when one is open
/// (feature `virtio-console`), otherwise with the console hypercall.
fn emit(bytes: &[u8]) {
    #[cfg(feature = "virtio-console")]
    if crate::virtio::console::write(bytes) {
        return;
    }
    crate::hypercall::console_write(bytes);
}

/// Formats `args` (and a newline when `newline`) to the console.
fn print_to_console(args: fmt::Arguments<'_>, newline: bool) {
    let mut out = Buffered::<_, BUFFER_SIZE>::new(emit);
    // Writing to `Buffered` never fails; an error could only come from a
    // `Display` impl, and then the output so far is still worth showing.
    let _ = out.write_fmt(args);
    if newline {
        out.write_bytes(b"\n");
    }
    out.flush();
}

/// Implementation of [`print!`](crate::print!); not public API.
#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    print_to_console(args, false);
}

/// Implementation of [`println!`](crate::println!); not public API.
#[doc(hidden)]
pub fn _println(args: fmt::Arguments<'_>) {
    print_to_console(args, true);
}

/// Prints to the guest's console, like `std::print!`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::console::_print(::core::format_args!($($arg)*))
    };
}

/// Prints to the guest's console with a newline, like `std::println!`.
#[macro_export]
macro_rules! println {
    () => {
        $crate::console::_print(::core::format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::console::_println(::core::format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn pieces<const N: usize>(write: impl FnOnce(&mut dyn Write)) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        {
            let mut out = Buffered::<_, N>::new(|p: &[u8]| got.push(p.to_vec()));
            write(&mut out);
            out.flush();
        }
        got
    }

    #[test]
    fn one_line_is_one_piece() {
        let got = pieces::<64>(|w| {
            let (name, index) = ("vm0", 3);
            write!(w, "Hello from {name} (index {index})").unwrap();
            w.write_str("\n").unwrap();
        });
        assert_eq!(got, [b"Hello from vm0 (index 3)\n".to_vec()]);
    }

    #[test]
    fn long_output_is_split_at_the_buffer_size() {
        let text: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let s = core::str::from_utf8(&text).unwrap();
        let got = pieces::<64>(|w| {
            for part in s.as_bytes().chunks(7) {
                w.write_str(core::str::from_utf8(part).unwrap()).unwrap();
            }
        });
        assert!(got.iter().all(|p| !p.is_empty() && p.len() <= 64));
        assert_eq!(got.len(), 1000usize.div_ceil(64));
        assert_eq!(got.concat(), text);
    }

    #[test]
    fn nothing_written_means_no_call() {
        assert!(pieces::<8>(|_| {}).is_empty());
        assert!(pieces::<8>(|w| w.write_str("").unwrap()).is_empty());
    }

    #[test]
    fn exact_fill_is_not_followed_by_an_empty_piece() {
        let got = pieces::<4>(|w| w.write_str("abcdefgh").unwrap());
        assert_eq!(got, [b"abcd".to_vec(), b"efgh".to_vec()]);
    }
}
