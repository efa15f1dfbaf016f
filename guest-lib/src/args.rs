//! The argument string a manifest gives a VM (`BootInfo::args`), read as
//! whitespace-separated words, each either a flag (`write`) or a
//! `key=value` pair (`addr=0x400000`).

/// One word of an argument string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg<'a> {
    /// A word without `=`.
    Flag(&'a str),
    /// A word `key=value`, split at its first `=`.
    Pair(&'a str, &'a str),
}

/// A view of an argument string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Args<'a> {
    text: &'a str,
}

impl<'a> Args<'a> {
    /// Reads `text` as arguments.
    pub const fn new(text: &'a str) -> Self {
        Args { text }
    }

    /// Whether there are no words at all.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The words, in order.
    pub fn iter(&self) -> impl Iterator<Item = Arg<'a>> + 'a {
        self.text
            .split_ascii_whitespace()
            .map(|word| match word.split_once('=') {
                Some((key, value)) => Arg::Pair(key, value),
                None => Arg::Flag(word),
            })
    }

    /// Whether the flag `name` is present.
    pub fn flag(&self, name: &str) -> bool {
        self.iter().any(|arg| arg == Arg::Flag(name))
    }

    /// The value of the first `key=value` word with this key.
    pub fn value(&self, key: &str) -> Option<&'a str> {
        self.iter().find_map(|arg| match arg {
            Arg::Pair(k, v) if k == key => Some(v),
            _ => None,
        })
    }
}

/// Parses an unsigned number written in decimal or, with a `0x` prefix, in
/// hexadecimal; `_` may separate digits. `None` if it is not one or does not
/// fit in a `u64`.
pub fn parse_u64(text: &str) -> Option<u64> {
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    let mut value: u64 = 0;
    let mut any = false;
    for c in digits.chars() {
        if c == '_' && any {
            continue;
        }
        let digit = c.to_digit(radix)?;
        value = value
            .checked_mul(u64::from(radix))?
            .checked_add(u64::from(digit))?;
        any = true;
    }
    any.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn words_flags_and_pairs() {
        let args = Args::new("  write addr=0x1000  mode=a=b ");
        let words: Vec<Arg<'_>> = args.iter().collect();
        assert_eq!(
            words,
            [
                Arg::Flag("write"),
                Arg::Pair("addr", "0x1000"),
                Arg::Pair("mode", "a=b"),
            ]
        );
        assert!(args.flag("write"));
        assert!(!args.flag("addr"));
        assert_eq!(args.value("addr"), Some("0x1000"));
        assert_eq!(args.value("write"), None);
        assert_eq!(args.value("missing"), None);
        assert!(!args.is_empty());
    }

    #[test]
    fn empty_and_blank_are_empty() {
        assert!(Args::new("").is_empty());
        assert!(Args::new("   ").is_empty());
    }

    #[test]
    fn first_value_wins() {
        assert_eq!(Args::new("n=1 n=2").value("n"), Some("1"));
        assert_eq!(Args::new("n=").value("n"), Some(""));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("0"), Some(0));
        assert_eq!(parse_u64("4096"), Some(4096));
        assert_eq!(parse_u64("0x40_0000"), Some(0x40_0000));
        assert_eq!(parse_u64("0XfF"), Some(0xff));
        assert_eq!(parse_u64("0xffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_u64("0x1_0000_0000_0000_0000"), None);
        assert_eq!(parse_u64("18446744073709551616"), None);
        assert_eq!(parse_u64(""), None);
        assert_eq!(parse_u64("0x"), None);
        assert_eq!(parse_u64("_1"), None);
        assert_eq!(parse_u64("+1"), None);
        assert_eq!(parse_u64("-1"), None);
        assert_eq!(parse_u64("12a"), None);
        assert_eq!(parse_u64("0x12g"), None);
    }
}
