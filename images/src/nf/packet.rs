//! Ethernet II, IPv4 and UDP header parsing, bounds-checked, and the builder of the test traffic's tagged UDP frames.

use super::checksum;
use core::fmt;
use core::net::Ipv4Addr;
use core::ops::Range;

/// An Ethernet MAC address.
pub type Mac = [u8; 6];
/// The broadcast MAC address.
pub const BROADCAST: Mac = [0xff; 6];

/// Length of the Ethernet II header (no VLAN tag; frames carry no FCS).
pub const ETH_HEADER_LEN: usize = 14;
/// Length of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;
/// Length of the UDP header.
pub const UDP_HEADER_LEN: usize = 8;
/// Shortest Ethernet frame on the wire, without the FCS.
pub const MIN_FRAME_LEN: usize = 60;
/// Longest Ethernet frame (1500-byte MTU), without the FCS.
pub const MAX_FRAME_LEN: usize = 1514;

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// ICMP type of an echo request.
pub const ICMP_ECHO_REQUEST: u8 = 8;
/// ICMP type of an echo reply.
pub const ICMP_ECHO_REPLY: u8 = 0;
/// Length of an ICMP echo header (type, code, checksum, identifier,
/// sequence number).
pub const ICMP_ECHO_HEADER_LEN: usize = 8;
/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// TTL of the frames [`build_udp`] writes.
pub const TTL: u8 = 64;

/// IPv4 flags/fragment word: Don't Fragment.
const FLAG_DF: u16 = 0x4000;
/// IPv4 flags/fragment word: More Fragments.
const FLAG_MF: u16 = 0x2000;
/// IPv4 flags/fragment word: the fragment offset.
const FRAGMENT_OFFSET: u16 = 0x1fff;

/// Offset of the IPv4 header checksum within the IPv4 header.
pub const IPV4_CHECKSUM_AT: usize = 10;
/// Offset of the IPv4 source address within the IPv4 header.
pub const IPV4_SRC_AT: usize = 12;
/// Offset of the UDP checksum within the UDP header.
pub const UDP_CHECKSUM_AT: usize = 6;

/// Magic that opens the payload of every test frame.
pub const TAG_MAGIC: [u8; 4] = *b"CRLP";
/// Length of the payload tag: magic, flow id (u32) and sequence number
/// (u64), big-endian.
pub const TAG_LEN: usize = 16;
/// Shortest frame [`build_udp`] writes: headers and the tag.
pub const MIN_UDP_FRAME_LEN: usize = ETH_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN + TAG_LEN;

/// Why a frame is not a well-formed IPv4 (or UDP/IPv4) frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The frame ends before a header (or the IPv4 total length) does.
    Short,
    /// The EtherType is not IPv4.
    NotIpv4,
    /// EtherType IPv4 but the version field is not 4.
    BadVersion,
    /// The IPv4 header length field is below 5 words.
    BadIhl,
    /// The IPv4 total length or the UDP length contradicts the headers.
    BadLength,
    /// The IPv4 protocol is not UDP.
    NotUdp,
    /// An IPv4 fragment (More Fragments or a fragment offset): its
    /// transport header cannot be checked.
    Fragment,
    /// The IPv4 protocol is not ICMP, or the ICMP message is not an echo
    /// request or reply.
    NotIcmpEcho,
}

impl ParseError {
    /// A short name for counters and logs.
    pub const fn name(self) -> &'static str {
        match self {
            ParseError::Short => "short",
            ParseError::NotIpv4 => "not-ipv4",
            ParseError::BadVersion => "bad-version",
            ParseError::BadIhl => "bad-ihl",
            ParseError::BadLength => "bad-length",
            ParseError::NotUdp => "not-udp",
            ParseError::Fragment => "fragment",
            ParseError::NotIcmpEcho => "not-icmp-echo",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `N` bytes of `bytes` from `at`, if they are all there.
pub(super) fn array<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The big-endian u16 at `at`, if it is there.
pub(super) fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    array(bytes, at).map(u16::from_be_bytes)
}

/// Writes `src` into `bytes` at `at`; false (and nothing written) if it does
/// not fit.
pub(super) fn put(bytes: &mut [u8], at: usize, src: &[u8]) -> bool {
    match at
        .checked_add(src.len())
        .and_then(|end| bytes.get_mut(at..end))
    {
        Some(dst) => {
            dst.copy_from_slice(src);
            true
        }
        None => false,
    }
}

/// An Ethernet II header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ethernet {
    /// Destination MAC.
    pub dst: Mac,
    /// Source MAC.
    pub src: Mac,
    /// EtherType.
    pub ethertype: u16,
}

/// Reads the Ethernet header of `frame`.
pub fn parse_ethernet(frame: &[u8]) -> Result<Ethernet, ParseError> {
    match (array(frame, 0), array(frame, 6), be16(frame, 12)) {
        (Some(dst), Some(src), Some(ethertype)) => Ok(Ethernet {
            dst,
            src,
            ethertype,
        }),
        _ => Err(ParseError::Short),
    }
}

/// The EtherType of `frame`, `None` if it is shorter than a header.
pub fn ethertype(frame: &[u8]) -> Option<u16> {
    be16(frame, 12)
}

/// A checked IPv4 header; the header starts at [`ETH_HEADER_LEN`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4 {
    /// Header length in bytes (IHL × 4, options included).
    pub header_len: usize,
    /// Total length (header and payload) in bytes; the frame holds at least
    /// this much after the Ethernet header.
    pub total_len: usize,
    /// Identification.
    pub id: u16,
    /// Flags and fragment offset.
    pub flags_fragment: u16,
    /// Time to live.
    pub ttl: u8,
    /// Protocol number.
    pub protocol: u8,
    /// Header checksum as received.
    pub checksum: u16,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
}

impl Ipv4 {
    /// Offset of the IPv4 header in the frame.
    pub const OFFSET: usize = ETH_HEADER_LEN;

    /// Offset of the payload (the transport header) in the frame.
    pub const fn payload_offset(&self) -> usize {
        Self::OFFSET.saturating_add(self.header_len)
    }

    /// Length of the payload in bytes.
    pub const fn payload_len(&self) -> usize {
        self.total_len.saturating_sub(self.header_len)
    }

    /// Whether this is a fragment (More Fragments set or a nonzero offset).
    pub const fn is_fragment(&self) -> bool {
        self.flags_fragment & (FLAG_MF | FRAGMENT_OFFSET) != 0
    }

    /// Whether the header checksum of `frame` (the frame this was parsed
    /// from) is right.
    pub fn checksum_ok(&self, frame: &[u8]) -> bool {
        frame
            .get(Self::OFFSET..self.payload_offset())
            .is_some_and(|header| checksum::internet_checksum(header) == 0)
    }
}

/// Reads and checks the IPv4 header of `frame`: EtherType, version, IHL
/// (5..=15, all of it present) and total length (covers the header, present
/// in the frame; bytes after it are Ethernet padding).
pub fn parse_ipv4(frame: &[u8]) -> Result<Ipv4, ParseError> {
    if parse_ethernet(frame)?.ethertype != ETHERTYPE_IPV4 {
        return Err(ParseError::NotIpv4);
    }
    let fixed: [u8; IPV4_HEADER_LEN] = array(frame, Ipv4::OFFSET).ok_or(ParseError::Short)?;
    // Constant indices into a fixed-size array are checked at compile time.
    let version_ihl = fixed[0];
    if version_ihl >> 4 != 4 {
        return Err(ParseError::BadVersion);
    }
    let header_len = usize::from(version_ihl & 0x0f) * 4;
    if header_len < IPV4_HEADER_LEN {
        return Err(ParseError::BadIhl);
    }
    if frame.len() < Ipv4::OFFSET + header_len {
        return Err(ParseError::Short);
    }
    let total_len = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
    if total_len < header_len {
        return Err(ParseError::BadLength);
    }
    if frame.len() < Ipv4::OFFSET + total_len {
        return Err(ParseError::Short);
    }
    Ok(Ipv4 {
        header_len,
        total_len,
        id: u16::from_be_bytes([fixed[4], fixed[5]]),
        flags_fragment: u16::from_be_bytes([fixed[6], fixed[7]]),
        ttl: fixed[8],
        protocol: fixed[9],
        checksum: u16::from_be_bytes([fixed[10], fixed[11]]),
        src: Ipv4Addr::new(fixed[12], fixed[13], fixed[14], fixed[15]),
        dst: Ipv4Addr::new(fixed[16], fixed[17], fixed[18], fixed[19]),
    })
}

/// A checked UDP/IPv4 frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Udp {
    /// Its IPv4 header.
    pub ip: Ipv4,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// UDP length (header and payload), 8..=the IPv4 payload length.
    pub length: usize,
    /// Checksum as received (0: none).
    pub checksum: u16,
}

impl Udp {
    /// Offset of the UDP header in the frame.
    pub const fn offset(&self) -> usize {
        self.ip.payload_offset()
    }

    /// Where the UDP header and payload lie in the frame.
    pub const fn segment_range(&self) -> Range<usize> {
        self.offset()..self.offset().saturating_add(self.length)
    }

    /// Where the UDP payload lies in the frame.
    pub const fn payload_range(&self) -> Range<usize> {
        self.offset().saturating_add(UDP_HEADER_LEN)..self.offset().saturating_add(self.length)
    }

    /// The UDP payload of `frame` (the frame this was parsed from).
    pub fn payload<'f>(&self, frame: &'f [u8]) -> &'f [u8] {
        frame.get(self.payload_range()).unwrap_or(&[])
    }

    /// Whether the UDP checksum of `frame` is right (or absent, 0).
    pub fn checksum_ok(&self, frame: &[u8]) -> bool {
        self.checksum == 0
            || frame.get(self.segment_range()).is_some_and(|segment| {
                checksum::udp_checksum(self.ip.src, self.ip.dst, segment) == 0
            })
    }
}

/// Reads and checks a UDP/IPv4 frame: the IPv4 checks of [`parse_ipv4`],
/// protocol UDP, not a fragment, and a UDP length within the IPv4 payload.
pub fn parse_udp(frame: &[u8]) -> Result<Udp, ParseError> {
    let ip = parse_ipv4(frame)?;
    if ip.protocol != PROTO_UDP {
        return Err(ParseError::NotUdp);
    }
    if ip.is_fragment() {
        return Err(ParseError::Fragment);
    }
    if ip.payload_len() < UDP_HEADER_LEN {
        return Err(ParseError::BadLength);
    }
    let header: [u8; UDP_HEADER_LEN] =
        array(frame, ip.payload_offset()).ok_or(ParseError::Short)?;
    let [sp_hi, sp_lo, dp_hi, dp_lo, len_hi, len_lo, sum_hi, sum_lo] = header;
    let length = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    if length < UDP_HEADER_LEN || length > ip.payload_len() {
        return Err(ParseError::BadLength);
    }
    Ok(Udp {
        ip,
        src_port: u16::from_be_bytes([sp_hi, sp_lo]),
        dst_port: u16::from_be_bytes([dp_hi, dp_lo]),
        length,
        checksum: u16::from_be_bytes([sum_hi, sum_lo]),
    })
}

/// A checked ICMP echo request or reply over IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpEcho {
    /// Its IPv4 header.
    pub ip: Ipv4,
    /// [`ICMP_ECHO_REQUEST`] or [`ICMP_ECHO_REPLY`].
    pub kind: u8,
    /// The echo identifier.
    pub id: u16,
    /// The echo sequence number.
    pub seq: u16,
}

impl IcmpEcho {
    /// Where the ICMP message (header and data) lies in the frame.
    pub const fn message_range(&self) -> Range<usize> {
        self.ip.payload_offset()
            ..self
                .ip
                .payload_offset()
                .saturating_add(self.ip.payload_len())
    }

    /// The echo data of `frame` (the frame this was parsed from).
    pub fn payload<'f>(&self, frame: &'f [u8]) -> &'f [u8] {
        let r = self.message_range();
        frame
            .get(r.start.saturating_add(ICMP_ECHO_HEADER_LEN)..r.end)
            .unwrap_or(&[])
    }

    /// Whether the ICMP checksum of `frame` is right.
    pub fn checksum_ok(&self, frame: &[u8]) -> bool {
        frame
            .get(self.message_range())
            .is_some_and(|m| checksum::internet_checksum(m) == 0)
    }
}

/// Reads and checks an ICMP echo request or reply over IPv4: the IPv4
/// checks of [`parse_ipv4`], protocol ICMP, not a fragment, a whole echo
/// header of type 8 or 0 and code 0.
pub fn parse_icmp_echo(frame: &[u8]) -> Result<IcmpEcho, ParseError> {
    let ip = parse_ipv4(frame)?;
    if ip.protocol != PROTO_ICMP {
        return Err(ParseError::NotIcmpEcho);
    }
    if ip.is_fragment() {
        return Err(ParseError::Fragment);
    }
    if ip.payload_len() < ICMP_ECHO_HEADER_LEN {
        return Err(ParseError::BadLength);
    }
    let header: [u8; ICMP_ECHO_HEADER_LEN] =
        array(frame, ip.payload_offset()).ok_or(ParseError::Short)?;
    let [kind, code, _, _, id_hi, id_lo, seq_hi, seq_lo] = header;
    if code != 0 || !matches!(kind, ICMP_ECHO_REQUEST | ICMP_ECHO_REPLY) {
        return Err(ParseError::NotIcmpEcho);
    }
    Ok(IcmpEcho {
        ip,
        kind,
        id: u16::from_be_bytes([id_hi, id_lo]),
        seq: u16::from_be_bytes([seq_hi, seq_lo]),
    })
}

/// The tag at the start of every test frame's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    /// Flow id.
    pub flow: u32,
    /// Sequence number.
    pub seq: u64,
}

impl Tag {
    /// The tag at the start of `payload`, if it opens with [`TAG_MAGIC`].
    pub fn parse(payload: &[u8]) -> Option<Tag> {
        let bytes: [u8; TAG_LEN] = array(payload, 0)?;
        let [m0, m1, m2, m3, f0, f1, f2, f3, s @ ..] = bytes;
        ([m0, m1, m2, m3] == TAG_MAGIC).then(|| Tag {
            flow: u32::from_be_bytes([f0, f1, f2, f3]),
            seq: u64::from_be_bytes(s),
        })
    }

    /// The tag's bytes.
    pub fn to_bytes(self) -> [u8; TAG_LEN] {
        let mut out = [0; TAG_LEN];
        let (magic, rest) = out.split_at_mut(4);
        let (flow, seq) = rest.split_at_mut(4);
        magic.copy_from_slice(&TAG_MAGIC);
        flow.copy_from_slice(&self.flow.to_be_bytes());
        seq.copy_from_slice(&self.seq.to_be_bytes());
        out
    }
}

/// What [`build_udp`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpSpec {
    /// Source MAC.
    pub src_mac: Mac,
    /// Destination MAC.
    pub dst_mac: Mac,
    /// Source address.
    pub src_ip: Ipv4Addr,
    /// Destination address.
    pub dst_ip: Ipv4Addr,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Length of the whole Ethernet frame,
    /// [`MIN_UDP_FRAME_LEN`]..=[`MAX_FRAME_LEN`].
    pub frame_len: usize,
    /// The payload's tag; its sequence number's low 16 bits are also the
    /// IPv4 identification.
    pub tag: Tag,
}

/// Why [`build_udp`] wrote nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The requested frame length is outside
    /// [`MIN_UDP_FRAME_LEN`]..=[`MAX_FRAME_LEN`].
    FrameLen(usize),
    /// The buffer is shorter than the requested frame.
    BufferTooSmall,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::FrameLen(len) => write!(
                f,
                "frame length {len} is outside {MIN_UDP_FRAME_LEN}..={MAX_FRAME_LEN}"
            ),
            BuildError::BufferTooSmall => f.write_str("buffer too small for the frame"),
        }
    }
}

/// Ethernet, IPv4 and UDP headers together.
const HEADERS_LEN: usize = ETH_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN;

/// Writes a complete UDP/IPv4 frame of `spec.frame_len` bytes at the start
/// of `buf`: IPv4 without options, TTL 64, DF, correct header and UDP
/// checksums, a payload of the tag then filler bytes. Returns the length.
pub fn build_udp(buf: &mut [u8], spec: &UdpSpec) -> Result<usize, BuildError> {
    build(buf, spec, PROTO_UDP)
}

/// Writes an ICMP echo request of `spec.frame_len` bytes at the start of
/// `buf`, as [`build_udp`] writes a datagram: the same IPv4 header (with
/// protocol ICMP), an echo header in place of the UDP header (identifier
/// `spec.src_port`, sequence number the tag's low 16 bits; `dst_port` is
/// not used) and the same data. Returns the length.
pub fn build_icmp_echo(buf: &mut [u8], spec: &UdpSpec) -> Result<usize, BuildError> {
    build(buf, spec, PROTO_ICMP)
}

/// [`build_udp`] or [`build_icmp_echo`], by `protocol`.
fn build(buf: &mut [u8], spec: &UdpSpec, protocol: u8) -> Result<usize, BuildError> {
    let len = spec.frame_len;
    if !(MIN_UDP_FRAME_LEN..=MAX_FRAME_LEN).contains(&len) {
        return Err(BuildError::FrameLen(len));
    }
    let frame = buf.get_mut(..len).ok_or(BuildError::BufferTooSmall)?;
    let (headers, payload) = frame
        .split_first_chunk_mut::<HEADERS_LEN>()
        .ok_or(BuildError::BufferTooSmall)?;

    let (tag, filler) = payload.split_at_mut(TAG_LEN.min(payload.len()));
    tag.copy_from_slice(&spec.tag.to_bytes());
    let start = spec.tag.seq as u8;
    for (i, byte) in filler.iter_mut().enumerate() {
        *byte = start.wrapping_add(i as u8);
    }

    // Lengths fit in u16: the frame is at most MAX_FRAME_LEN bytes.
    let ip_len = (len - ETH_HEADER_LEN) as u16;
    let udp_len = (len - ETH_HEADER_LEN - IPV4_HEADER_LEN) as u16;

    headers[0..6].copy_from_slice(&spec.dst_mac);
    headers[6..12].copy_from_slice(&spec.src_mac);
    headers[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());

    let ip = &mut headers[ETH_HEADER_LEN..ETH_HEADER_LEN + IPV4_HEADER_LEN];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[4..6].copy_from_slice(&(spec.tag.seq as u16).to_be_bytes());
    ip[6..8].copy_from_slice(&FLAG_DF.to_be_bytes());
    ip[8] = TTL;
    ip[9] = protocol;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&spec.src_ip.octets());
    ip[16..20].copy_from_slice(&spec.dst_ip.octets());
    let ip_sum = checksum::internet_checksum(ip);
    ip[10..12].copy_from_slice(&ip_sum.to_be_bytes());

    let udp = &mut headers[ETH_HEADER_LEN + IPV4_HEADER_LEN..];
    if protocol == PROTO_ICMP {
        udp[0] = ICMP_ECHO_REQUEST;
        udp[1] = 0;
        udp[2..4].copy_from_slice(&[0, 0]);
        udp[4..6].copy_from_slice(&spec.src_port.to_be_bytes());
        udp[6..8].copy_from_slice(&(spec.tag.seq as u16).to_be_bytes());
        let sum = checksum::Sum::new().add_bytes(udp).add_bytes(payload);
        udp[2..4].copy_from_slice(&sum.checksum().to_be_bytes());
        return Ok(len);
    }
    udp[0..2].copy_from_slice(&spec.src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&spec.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    let sum = checksum::pseudo_header(spec.src_ip, spec.dst_ip, PROTO_UDP, udp_len)
        .add_bytes(udp)
        .add_bytes(payload);
    udp[6..8].copy_from_slice(&checksum::udp_wire_checksum(sum.checksum()).to_be_bytes());
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    pub(crate) fn spec(frame_len: usize, seq: u64) -> UdpSpec {
        UdpSpec {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: Ipv4Addr::new(10, 0, 0, 1),
            dst_ip: Ipv4Addr::new(10, 0, 0, 2),
            src_port: 10_000,
            dst_port: 7,
            frame_len,
            tag: Tag { flow: 3, seq },
        }
    }

    fn built(frame_len: usize, seq: u64) -> Vec<u8> {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let len = build_udp(&mut buf, &spec(frame_len, seq)).unwrap();
        buf[..len].to_vec()
    }

    #[test]
    fn built_frames_parse_and_verify() {
        for len in [MIN_UDP_FRAME_LEN, 60, 64, 65, 128, 1500, MAX_FRAME_LEN] {
            let frame = built(len, 0x1_2345_6789);
            assert_eq!(frame.len(), len);
            let eth = parse_ethernet(&frame).unwrap();
            assert_eq!(eth.dst, [2, 0, 0, 0, 0, 2]);
            assert_eq!(eth.src, [2, 0, 0, 0, 0, 1]);
            let udp = parse_udp(&frame).unwrap();
            assert_eq!(udp.ip.total_len, len - ETH_HEADER_LEN);
            assert_eq!(udp.ip.ttl, TTL);
            assert_eq!(udp.ip.id, 0x6789);
            assert_eq!(udp.ip.flags_fragment, FLAG_DF);
            assert!(!udp.ip.is_fragment());
            assert_eq!(udp.ip.src, Ipv4Addr::new(10, 0, 0, 1));
            assert_eq!(udp.ip.dst, Ipv4Addr::new(10, 0, 0, 2));
            assert_eq!((udp.src_port, udp.dst_port), (10_000, 7));
            assert_eq!(udp.length, len - ETH_HEADER_LEN - IPV4_HEADER_LEN);
            assert!(udp.ip.checksum_ok(&frame));
            assert!(udp.checksum_ok(&frame));
            assert_ne!(udp.checksum, 0);
            assert_eq!(
                Tag::parse(udp.payload(&frame)),
                Some(Tag {
                    flow: 3,
                    seq: 0x1_2345_6789
                })
            );
        }
    }

    #[test]
    fn echo_requests_parse_and_verify_and_other_frames_do_not() {
        for len in [MIN_UDP_FRAME_LEN, 64, 1500, MAX_FRAME_LEN] {
            let mut buf = [0u8; MAX_FRAME_LEN];
            let n = build_icmp_echo(&mut buf, &spec(len, 0x1_0203)).unwrap();
            let frame = &buf[..n];
            let echo = parse_icmp_echo(frame).unwrap();
            assert_eq!(echo.ip.protocol, PROTO_ICMP);
            assert_eq!(echo.ip.total_len, len - ETH_HEADER_LEN);
            assert_eq!(
                (echo.kind, echo.id, echo.seq),
                (ICMP_ECHO_REQUEST, 10_000, 0x0203)
            );
            assert!(echo.ip.checksum_ok(frame) && echo.checksum_ok(frame));
            assert_eq!(
                Tag::parse(echo.payload(frame)),
                Some(Tag {
                    flow: 3,
                    seq: 0x1_0203
                })
            );
            for byte in ETH_HEADER_LEN + IPV4_HEADER_LEN..n {
                let mut bad = frame.to_vec();
                bad[byte] ^= 0x10;
                let verified = parse_icmp_echo(&bad).is_ok_and(|e| e.checksum_ok(&bad));
                assert!(!verified, "byte {byte}");
            }
            for cut in 0..n {
                assert!(parse_icmp_echo(&frame[..cut]).is_err(), "cut {cut}");
            }
        }
        assert_eq!(parse_icmp_echo(&built(64, 1)), Err(ParseError::NotIcmpEcho));
        let mut buf = [0u8; MAX_FRAME_LEN];
        let n = build_icmp_echo(&mut buf, &spec(64, 1)).unwrap();
        buf[ETH_HEADER_LEN + IPV4_HEADER_LEN] = 3; // destination unreachable
        assert_eq!(parse_icmp_echo(&buf[..n]), Err(ParseError::NotIcmpEcho));
    }

    #[test]
    fn any_flipped_bit_is_caught_by_a_checksum() {
        let frame = built(64, 9);
        for byte in ETH_HEADER_LEN..frame.len() {
            for bit in 0..8 {
                let mut bad = frame.clone();
                bad[byte] ^= 1 << bit;
                let verified = parse_udp(&bad)
                    .is_ok_and(|udp| udp.ip.checksum_ok(&bad) && udp.checksum_ok(&bad));
                assert!(!verified, "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn builder_refuses_bad_lengths_and_small_buffers() {
        let mut buf = [0u8; 2000];
        for len in [0, 42, MIN_UDP_FRAME_LEN - 1, MAX_FRAME_LEN + 1] {
            assert_eq!(
                build_udp(&mut buf, &spec(len, 0)),
                Err(BuildError::FrameLen(len))
            );
        }
        assert_eq!(
            build_udp(&mut buf[..63], &spec(64, 0)),
            Err(BuildError::BufferTooSmall)
        );
        assert!(BuildError::FrameLen(3).to_string().contains('3'));
    }

    #[test]
    fn every_truncation_is_short() {
        let frame = built(64, 1);
        for cut in 0..frame.len() {
            let short = &frame[..cut];
            // The datagram fills the frame, so every cut truncates it.
            assert_eq!(parse_udp(short), Err(ParseError::Short), "cut {cut}");
            assert_eq!(
                Tag::parse(&short[short.len().min(42)..]).is_some(),
                cut >= 58
            );
        }
        assert_eq!(parse_ethernet(&frame[..13]), Err(ParseError::Short));
        assert_eq!(ethertype(&frame[..13]), None);
        assert_eq!(ethertype(&frame), Some(ETHERTYPE_IPV4));
    }

    #[test]
    fn padding_after_the_datagram_is_allowed() {
        let mut frame = built(MIN_UDP_FRAME_LEN, 1);
        frame.extend_from_slice(&[0; 2]);
        let udp = parse_udp(&frame).unwrap();
        assert!(udp.checksum_ok(&frame));
        assert_eq!(udp.payload(&frame).len(), TAG_LEN);
    }

    #[test]
    fn header_field_errors() {
        let frame = built(64, 1);
        let with = |at: usize, value: u8| {
            let mut f = frame.clone();
            f[at] = value;
            f
        };
        assert_eq!(parse_ipv4(&with(12, 0x86)), Err(ParseError::NotIpv4));
        assert_eq!(parse_ipv4(&with(14, 0x65)), Err(ParseError::BadVersion));
        for ihl in 0..5 {
            assert_eq!(parse_ipv4(&with(14, 0x40 | ihl)), Err(ParseError::BadIhl));
        }
        // IHL 15 needs 60 header bytes; the frame holds 50.
        assert_eq!(parse_ipv4(&with(14, 0x4f)), Err(ParseError::Short));
        // IHL 6 within a total length of 50: a valid header with an option,
        // whose UDP header then starts 4 bytes later.
        let ip = parse_ipv4(&with(14, 0x46)).unwrap();
        assert_eq!(ip.payload_offset(), 38);
        // Total length below the header, or past the frame.
        assert_eq!(parse_ipv4(&with(17, 19)), Err(ParseError::BadLength));
        assert_eq!(parse_ipv4(&with(17, 51)), Err(ParseError::Short));
        assert_eq!(parse_ipv4(&with(16, 1)), Err(ParseError::Short));
        assert_eq!(parse_udp(&with(23, PROTO_TCP)), Err(ParseError::NotUdp));
        assert_eq!(parse_udp(&with(20, 0x20)), Err(ParseError::Fragment));
        assert_eq!(parse_udp(&with(21, 1)), Err(ParseError::Fragment));
        // UDP length below 8 or past the IPv4 payload.
        assert_eq!(parse_udp(&with(39, 7)), Err(ParseError::BadLength));
        assert_eq!(parse_udp(&with(39, 31)), Err(ParseError::BadLength));
        assert!(parse_udp(&with(39, 8)).is_ok());
        // IPv4 payload too short for a UDP header.
        assert_eq!(parse_udp(&with(17, 27)), Err(ParseError::BadLength));
    }

    #[test]
    fn header_with_options_parses() {
        // Insert 4 bytes of options (NOP x4) into a built frame.
        let frame = built(64, 1);
        let mut f = frame[..34].to_vec();
        f.extend_from_slice(&[1, 1, 1, 1]);
        f.extend_from_slice(&frame[34..]);
        f[14] = 0x46;
        f[17] += 4;
        let udp = parse_udp(&f).unwrap();
        assert_eq!(udp.offset(), 38);
        assert!(udp.checksum_ok(&f));
        assert_eq!(Tag::parse(udp.payload(&f)).unwrap().seq, 1);
    }

    #[test]
    fn error_names() {
        use ParseError::*;
        let all = [
            Short, NotIpv4, BadVersion, BadIhl, BadLength, NotUdp, Fragment,
        ];
        let names: Vec<_> = all.iter().map(|e| e.name()).collect();
        assert_eq!(
            names,
            [
                "short",
                "not-ipv4",
                "bad-version",
                "bad-ihl",
                "bad-length",
                "not-udp",
                "fragment"
            ]
        );
        assert_eq!(Short.to_string(), "short");
    }

    #[test]
    fn tags() {
        let tag = Tag {
            flow: 7,
            seq: u64::MAX,
        };
        assert_eq!(Tag::parse(&tag.to_bytes()), Some(tag));
        let mut bad = tag.to_bytes();
        bad[0] = b'X';
        assert_eq!(Tag::parse(&bad), None);
        assert_eq!(Tag::parse(&tag.to_bytes()[..15]), None);
    }

    #[test]
    fn zero_udp_checksum_means_none() {
        let mut frame = built(64, 1);
        frame[40..42].copy_from_slice(&[0, 0]);
        assert!(parse_udp(&frame).unwrap().checksum_ok(&frame));
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
            at in 0usize..64,
            value in proptest::prelude::any::<u8>(),
        ) {
            let mut mutated = built(64, 1);
            mutated[at] = value;
            for f in [&bytes[..], &mutated[..]] {
                let _ = parse_ethernet(f);
                let _ = parse_ipv4(f);
                let _ = crate::nf::arp::Arp::parse(f);
                let _ = crate::nf::control::parse_end(f);
                if let Ok(udp) = parse_udp(f) {
                    proptest::prop_assert!(udp.segment_range().end <= f.len());
                    let _ = (udp.checksum_ok(f), udp.ip.checksum_ok(f));
                    let _ = Tag::parse(udp.payload(f));
                }
            }
        }
    }
}
