//! Reading the network functions' `key=value` arguments, with an error that names the offending word.

use core::fmt;
use core::net::Ipv4Addr;
use core::ops::RangeInclusive;
use guest_lib::args::{Args, parse_u64};

/// An argument a network function cannot use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgError<'a> {
    /// The key of the word (`nat_ip`, `deny`, ...).
    pub key: &'a str,
    /// Its value, `None` when a required key is missing.
    pub value: Option<&'a str>,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl<'a> ArgError<'a> {
    /// The word `key=value` is wrong for the reason `problem`.
    pub const fn bad(key: &'a str, value: &'a str, problem: &'static str) -> Self {
        ArgError {
            key,
            value: Some(value),
            problem,
        }
    }

    /// The required key `key` is missing.
    pub const fn missing(key: &'a str) -> Self {
        ArgError {
            key,
            value: None,
            problem: "is required",
        }
    }
}

impl fmt::Display for ArgError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value {
            Some(value) => write!(f, "`{}={}`: {}", self.key, value, self.problem),
            None => write!(f, "`{}=`: {}", self.key, self.problem),
        }
    }
}

/// Parses a dotted-quad IPv4 address (`10.0.0.1`).
pub fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    text.parse().ok()
}

/// The IPv4 address under `key`, `None` when the key is absent.
pub fn ipv4_value<'a>(args: &Args<'a>, key: &'a str) -> Result<Option<Ipv4Addr>, ArgError<'a>> {
    match args.value(key) {
        None => Ok(None),
        Some(text) => parse_ipv4(text).map(Some).ok_or(ArgError::bad(
            key,
            text,
            "is not a dotted IPv4 address",
        )),
    }
}

/// The number under `key` (decimal or `0x` hex), which must lie in `range`;
/// `None` when the key is absent.
pub fn number_value<'a>(
    args: &Args<'a>,
    key: &'a str,
    range: RangeInclusive<u64>,
    problem: &'static str,
) -> Result<Option<u64>, ArgError<'a>> {
    match args.value(key) {
        None => Ok(None),
        Some(text) => parse_u64(text)
            .filter(|n| range.contains(n))
            .map(Some)
            .ok_or(ArgError::bad(key, text, problem)),
    }
}

/// The UDP/TCP port under `key`, `None` when the key is absent.
pub fn port_value<'a>(args: &Args<'a>, key: &'a str) -> Result<Option<u16>, ArgError<'a>> {
    Ok(number_value(
        args,
        key,
        0..=u64::from(u16::MAX),
        "is not a port (0..=65535)",
    )?
    .and_then(|n| u16::try_from(n).ok()))
}

/// Longest IPv4 prefix.
const MAX_PREFIX: u64 = 32;

/// Parses `A.B.C.D/N` (an interface's address and prefix length), or says
/// what is wrong with it.
pub fn parse_cidr(text: &str) -> Result<(Ipv4Addr, u8), &'static str> {
    let (addr, prefix) = text
        .split_once('/')
        .ok_or("needs a prefix length, as in 10.0.2.15/24")?;
    let addr = parse_ipv4(addr).ok_or("is not a dotted IPv4 address")?;
    let prefix = guest_lib::args::parse_u64(prefix)
        .filter(|&p| p <= MAX_PREFIX)
        .ok_or("prefix length must be 0..=32")?;
    Ok((addr, prefix as u8))
}

/// Parses `aa:bb:cc:dd:ee:ff` (two hexadecimal digits per byte).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The MAC address under `key`, `None` when the key is absent.
pub fn mac_value<'a>(args: &Args<'a>, key: &'a str) -> Result<Option<[u8; 6]>, ArgError<'a>> {
    match args.value(key) {
        None => Ok(None),
        Some(text) => parse_mac(text).map(Some).ok_or(ArgError::bad(
            key,
            text,
            "is not a MAC address (aa:bb:cc:dd:ee:ff)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn cidrs_parse_or_say_why_not() {
        assert_eq!(
            parse_cidr("10.0.2.15/24"),
            Ok((Ipv4Addr::new(10, 0, 2, 15), 24))
        );
        assert_eq!(
            parse_cidr("10.0.2.15"),
            Err("needs a prefix length, as in 10.0.2.15/24")
        );
        assert_eq!(parse_cidr("10.0.2/24"), Err("is not a dotted IPv4 address"));
        assert_eq!(
            parse_cidr("10.0.2.15/33"),
            Err("prefix length must be 0..=32")
        );
        assert_eq!(
            parse_cidr("10.0.2.15/x"),
            Err("prefix length must be 0..=32")
        );
    }

    #[test]
    fn macs_parse_exactly() {
        assert_eq!(
            parse_mac("02:43:0a:FF:00:99"),
            Some([0x02, 0x43, 0x0a, 0xff, 0x00, 0x99])
        );
        for bad in [
            "",
            "02:43:0a:ff:00",
            "02:43:0a:ff:00:99:11",
            "2:43:0a:ff:00:99",
            "02:43:0a:ff:00:+9",
            "02-43-0a-ff-00-99",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
        let args = Args::new("src_mac=zz");
        assert_eq!(
            mac_value(&args, "src_mac").unwrap_err().to_string(),
            "`src_mac=zz`: is not a MAC address (aa:bb:cc:dd:ee:ff)"
        );
    }

    proptest::proptest! {
        #[test]
        fn a_printed_mac_parses_back(mac in proptest::prelude::any::<[u8; 6]>()) {
            let text = alloc::format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
            );
            proptest::prop_assert_eq!(parse_mac(&text), Some(mac));
        }

        #[test]
        fn any_text_is_a_cidr_or_refused(text in "[0-9./x]{0,24}") {
            if let Ok((addr, prefix)) = parse_cidr(&text) {
                proptest::prop_assert!(prefix <= 32);
                proptest::prop_assert_eq!(
                    parse_cidr(&alloc::format!("{addr}/{prefix}")),
                    Ok((addr, prefix))
                );
            }
        }

        #[test]
        fn any_text_is_a_mac_or_refused(text in "[0-9a-fA-F:x+ -]{0,20}") {
            let _ = parse_mac(&text);
        }
    }

    #[test]
    fn values_and_errors() {
        let args = Args::new("ip=10.0.0.1 bad=10.0.0 port=80 big=70000 n=0x10");
        assert_eq!(
            ipv4_value(&args, "ip"),
            Ok(Some(Ipv4Addr::new(10, 0, 0, 1)))
        );
        assert_eq!(ipv4_value(&args, "none"), Ok(None));
        let e = ipv4_value(&args, "bad").unwrap_err();
        assert_eq!(e.to_string(), "`bad=10.0.0`: is not a dotted IPv4 address");
        assert_eq!(port_value(&args, "port"), Ok(Some(80)));
        assert!(port_value(&args, "big").is_err());
        assert_eq!(number_value(&args, "n", 1..=16, "x"), Ok(Some(16)));
        assert!(number_value(&args, "n", 1..=15, "x").is_err());
        assert_eq!(
            ArgError::missing("count").to_string(),
            "`count=`: is required"
        );
    }

    #[test]
    fn addresses_are_strict() {
        assert_eq!(
            parse_ipv4("192.168.0.199"),
            Some(Ipv4Addr::new(192, 168, 0, 199))
        );
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.0.0.1", "a.b.c.d", " 1.2.3.4"] {
            assert_eq!(parse_ipv4(bad), None, "{bad}");
        }
    }
}
