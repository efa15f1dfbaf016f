//! The end-of-stream control frame a traffic source sends after its last
//! packet: an Ethernet frame with EtherType [`END_ETHERTYPE`] whose payload
//! starts with [`END_MAGIC`]. Receivers check raw frames for it before
//! anything else looks at them.
#![forbid(unsafe_code)]

/// EtherType of Corral control frames (0x88B5, IEEE's "local experimental"
/// EtherType).
pub const END_ETHERTYPE: u16 = 0x88B5;
/// What an end-of-stream frame's payload starts with.
pub const END_MAGIC: &[u8] = b"CORRAL-END";
/// Bytes of an Ethernet header: destination MAC, source MAC, EtherType.
pub const ETHERNET_HEADER_BYTES: usize = 14;
/// Offset of the EtherType in an Ethernet header.
const ETHERTYPE_OFFSET: usize = 12;
/// Bytes of a MAC address.
#[cfg(test)]
const MAC_BYTES: usize = 6;
/// Shortest Ethernet frame (without FCS); shorter frames are padded.
#[cfg(test)]
const MIN_FRAME_BYTES: usize = 60;

/// Whether `frame` (an Ethernet frame, no FCS) is the end-of-stream
/// control frame.
pub fn is_end_of_stream(frame: &[u8]) -> bool {
    frame
        .get(ETHERTYPE_OFFSET..ETHERNET_HEADER_BYTES)
        .is_some_and(|t| t == END_ETHERTYPE.to_be_bytes())
        && frame
            .get(ETHERNET_HEADER_BYTES..)
            .is_some_and(|payload| payload.starts_with(END_MAGIC))
}

/// Writes an end-of-stream frame from `src` to `dst` into `buf`, padded to
/// the minimum Ethernet length; returns its length, or `None` if `buf` is
/// too short. (Traffic sources build their own, with a frame count after
/// the magic; this one is for tests.)
#[cfg(test)]
pub(crate) fn write_end_of_stream(buf: &mut [u8], dst: [u8; 6], src: [u8; 6]) -> Option<usize> {
    let frame = buf.get_mut(..MIN_FRAME_BYTES)?;
    frame.fill(0);
    frame[..MAC_BYTES].copy_from_slice(&dst);
    frame[MAC_BYTES..ETHERTYPE_OFFSET].copy_from_slice(&src);
    frame[ETHERTYPE_OFFSET..ETHERNET_HEADER_BYTES].copy_from_slice(&END_ETHERTYPE.to_be_bytes());
    frame[ETHERNET_HEADER_BYTES..ETHERNET_HEADER_BYTES + END_MAGIC.len()]
        .copy_from_slice(END_MAGIC);
    Some(MIN_FRAME_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [2, 0x43, 0, 0, 1, 0];
    const B: [u8; 6] = [2, 0x43, 0, 0, 2, 0];

    #[test]
    fn built_frames_are_recognised() {
        let mut buf = [0xffu8; 100];
        let len = write_end_of_stream(&mut buf, A, B).unwrap();
        assert_eq!(len, MIN_FRAME_BYTES);
        assert!(is_end_of_stream(&buf[..len]));
        assert_eq!(&buf[..6], &A);
        assert_eq!(&buf[6..12], &B);
        assert!(
            buf[ETHERNET_HEADER_BYTES + END_MAGIC.len()..len]
                .iter()
                .all(|&b| b == 0)
        );
        assert_eq!(write_end_of_stream(&mut [0; 59], A, B), None);
    }

    #[test]
    fn other_frames_are_not() {
        let mut buf = [0u8; 60];
        write_end_of_stream(&mut buf, A, B).unwrap();
        let mut ipv4 = buf;
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert!(!is_end_of_stream(&ipv4));
        let mut wrong = buf;
        wrong[14] = b'X';
        assert!(!is_end_of_stream(&wrong));
        assert!(!is_end_of_stream(&buf[..ETHERNET_HEADER_BYTES + 3]));
        assert!(!is_end_of_stream(&buf[..5]));
        assert!(!is_end_of_stream(&[]));
        assert!(is_end_of_stream(
            &buf[..ETHERNET_HEADER_BYTES + END_MAGIC.len()]
        ));
    }
}
