//! Shared checks for the short strings that cross the ABI (names, arguments).

/// Whether `s` is a valid VM or image name: 1.. bytes of `[A-Za-z0-9_.-]`,
/// starting with a letter or digit (so it can never look like a record line).
pub fn is_valid_name(s: &[u8]) -> bool {
    match s.first() {
        Some(c) if c.is_ascii_alphanumeric() => s
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')),
        _ => false,
    }
}

/// Whether `s` is printable ASCII (space to tilde), as guest arguments must be.
pub fn is_printable(s: &[u8]) -> bool {
    s.iter().all(|c| (0x20..0x7f).contains(c))
}

/// Splits a NUL-padded fixed field into its content, or `None` when a
/// non-NUL byte follows the first NUL (garbage after the terminator).
pub(crate) fn unpad(field: &[u8]) -> Option<&[u8]> {
    let len = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    if field[len..].iter().all(|&c| c == 0) {
        Some(&field[..len])
    } else {
        None
    }
}

/// Little-endian field readers and writers over byte slices whose bounds the
/// caller has already checked (a wrong offset is a bug in this crate, caught
/// by its tests).
pub(crate) mod le {
    pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
        let mut a = [0u8; 4];
        a.copy_from_slice(&b[off..off + 4]);
        u32::from_le_bytes(a)
    }
    pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[off..off + 8]);
        u64::from_le_bytes(a)
    }
    pub(crate) fn put_u32(b: &mut [u8], off: usize, v: u32) {
        b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn put_u64(b: &mut [u8], off: usize, v: u64) {
        b[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_name(b"hello"));
        assert!(is_valid_name(b"fw.0"));
        assert!(is_valid_name(b"a-b_c"));
        assert!(!is_valid_name(b""));
        assert!(!is_valid_name(b"@corral"));
        assert!(!is_valid_name(b"-x"));
        assert!(!is_valid_name(b"a b"));
        assert!(!is_valid_name(b"a\nb"));
    }

    #[test]
    fn padding() {
        assert_eq!(unpad(b"ab\0\0"), Some(&b"ab"[..]));
        assert_eq!(unpad(b"abcd"), Some(&b"abcd"[..]));
        assert_eq!(unpad(b"ab\0c"), None);
    }
}
