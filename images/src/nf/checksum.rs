//! The Internet checksum (RFC 1071), its UDP pseudo-header, and its incremental update (RFC 1624).

use core::net::Ipv4Addr;

/// A running one's-complement sum of big-endian 16-bit words.
///
/// Bytes are added in order; only the last slice added may have an odd
/// length (its last byte is padded with a zero byte, RFC 1071 §4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sum(u64);

impl Sum {
    /// The empty sum.
    pub const fn new() -> Self {
        Sum(0)
    }

    /// Adds `bytes` as big-endian 16-bit words.
    #[must_use]
    pub fn add_bytes(self, bytes: &[u8]) -> Self {
        let mut chunks = bytes.chunks_exact(2);
        // A u64 cannot overflow: it would take 2^48 words.
        let mut sum = self.0;
        for pair in &mut chunks {
            if let [hi, lo] = pair {
                sum += u64::from(u16::from_be_bytes([*hi, *lo]));
            }
        }
        if let [last] = chunks.remainder() {
            sum += u64::from(u16::from_be_bytes([*last, 0]));
        }
        Sum(sum)
    }

    /// Adds one 16-bit word.
    #[must_use]
    pub fn add_u16(self, word: u16) -> Self {
        Sum(self.0 + u64::from(word))
    }

    /// Adds a 32-bit value as two 16-bit words.
    #[must_use]
    pub fn add_u32(self, value: u32) -> Self {
        Sum(self.0 + u64::from(value >> 16) + u64::from(value & 0xffff))
    }

    /// The 16-bit one's-complement sum (carries folded back in).
    pub fn fold(self) -> u16 {
        let mut sum = self.0;
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        // The loop leaves at most 16 bits.
        sum as u16
    }

    /// The checksum: the complement of the folded sum.
    pub fn checksum(self) -> u16 {
        !self.fold()
    }
}

/// The Internet checksum of `bytes` (RFC 1071). Over data that already holds
/// its checksum field the result is 0 when that field is right.
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    Sum::new().add_bytes(bytes).checksum()
}

/// The sum of the IPv4 pseudo-header (RFC 768): addresses, protocol and the
/// transport length.
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> Sum {
    Sum::new()
        .add_u32(src.to_bits())
        .add_u32(dst.to_bits())
        .add_u16(u16::from(protocol))
        .add_u16(length)
}

/// The checksum of a UDP datagram `segment` (header and payload, checksum
/// field included as it is) with its pseudo-header. To fill the field,
/// compute it with the field zeroed and send 0 as `0xffff`
/// ([`udp_wire_checksum`]); to verify, a nonzero field is right when this
/// returns 0.
pub fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) -> u16 {
    // A datagram longer than 65535 bytes cannot be a valid one; its sum is
    // merely some wrong value.
    let length = u16::try_from(segment.len()).unwrap_or(u16::MAX);
    pseudo_header(src, dst, super::packet::PROTO_UDP, length)
        .add_bytes(segment)
        .checksum()
}

/// A computed UDP checksum as it goes on the wire: 0 means "no checksum", so
/// a computed 0 is sent as `0xffff` (RFC 768).
pub const fn udp_wire_checksum(computed: u16) -> u16 {
    if computed == 0 { 0xffff } else { computed }
}

/// The checksum `hc` after a 16-bit word of the data changed from `old` to
/// `new` (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).
pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
    !Sum::new().add_u16(!hc).add_u16(!old).add_u16(new).fold()
}

/// The checksum `hc` after a 32-bit field (two aligned 16-bit words) of the
/// data changed from `old` to `new` (RFC 1624 eqn. 3, applied to both words).
pub fn update32(hc: u16, old: u32, new: u32) -> u16 {
    !Sum::new().add_u16(!hc).add_u32(!old).add_u32(new).fold()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The classic IPv4 header example, checksum field zeroed.
    const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn ipv4_header_vector() {
        assert_eq!(internet_checksum(&HEADER), 0xb861);
        let mut filled = HEADER;
        filled[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(internet_checksum(&filled), 0);
    }

    #[test]
    fn rfc1071_example_and_odd_lengths() {
        // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(Sum::new().add_bytes(&data).fold(), 0xddf2);
        assert_eq!(internet_checksum(&data), !0xddf2);
        assert_eq!(internet_checksum(&[0xab]), !0xab00);
        assert_eq!(internet_checksum(&[]), 0xffff);
        assert_eq!(Sum::new().add_bytes(&[0xff; 4]).fold(), 0xffff);
    }

    #[test]
    fn udp_vector() {
        // 10.0.0.1:1000 -> 10.0.0.2:2000, payload "hi".
        let mut seg = [0x03, 0xe8, 0x07, 0xd0, 0x00, 0x0a, 0x00, 0x00, b'h', b'i'];
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        // By hand: 0a00+0001+0a00+0002+0011+000a + 03e8+07d0+000a+0000+6869 = 0x8849.
        let sum = udp_checksum(src, dst, &seg);
        assert_eq!(sum, !0x8849);
        seg[6..8].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(udp_checksum(src, dst, &seg), 0);
        assert_eq!(udp_wire_checksum(0), 0xffff);
        assert_eq!(udp_wire_checksum(5), 5);
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 §4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285 gives 0x0000.
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    proptest! {
        #[test]
        fn incremental_matches_recomputation(
            mut data in proptest::collection::vec(any::<u8>(), 8..64),
            word in any::<usize>(),
            new16 in any::<u16>(),
            new32 in any::<u32>(),
        ) {
            // Word 0 stays nonzero, so the data never sums to zero and the
            // checksum has a single representation.
            data[0] |= 1;
            let words = data.len() / 2;
            let at = 2 * (1 + word % (words - 2));
            let hc = internet_checksum(&data);
            let old16 = u16::from_be_bytes([data[at], data[at + 1]]);
            data[at..at + 2].copy_from_slice(&new16.to_be_bytes());
            let full16 = internet_checksum(&data);
            prop_assert_eq!(update16(hc, old16, new16), full16);
            let old32 = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            data[at..at + 4].copy_from_slice(&new32.to_be_bytes());
            prop_assert_eq!(update32(full16, old32, new32), internet_checksum(&data));
        }
    }
}
