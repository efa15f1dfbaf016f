//! The end-of-stream control frame: a broadcast on EtherType 0x88B5 carrying `CORRAL-END` and the number of data frames the sender generated.

use super::packet::{BROADCAST, ETH_HEADER_LEN, MIN_FRAME_LEN, Mac, array, be16};

/// EtherType of Corral's control frames (IEEE 802 local experimental 1).
pub const ETHERTYPE_CONTROL: u16 = 0x88b5;
/// Magic that opens the end-of-stream payload.
pub const END_MAGIC: [u8; 10] = *b"CORRAL-END";
/// Length of the end-of-stream frame (padded to the Ethernet minimum).
pub const END_FRAME_LEN: usize = MIN_FRAME_LEN;

/// Offset of the count in the end-of-stream frame.
const COUNT_AT: usize = ETH_HEADER_LEN + END_MAGIC.len();

/// The end-of-stream frame from `src_mac` announcing that `count` data
/// frames were generated.
pub fn end_frame(src_mac: Mac, count: u64) -> [u8; END_FRAME_LEN] {
    let mut f = [0u8; END_FRAME_LEN];
    f[0..6].copy_from_slice(&BROADCAST);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&ETHERTYPE_CONTROL.to_be_bytes());
    f[ETH_HEADER_LEN..COUNT_AT].copy_from_slice(&END_MAGIC);
    f[COUNT_AT..COUNT_AT + 8].copy_from_slice(&count.to_be_bytes());
    f
}

/// Whether `frame` is a control frame (EtherType [`ETHERTYPE_CONTROL`]).
pub fn is_control(frame: &[u8]) -> bool {
    be16(frame, 12) == Some(ETHERTYPE_CONTROL)
}

/// The count of an end-of-stream frame; `None` for any other frame.
pub fn parse_end(frame: &[u8]) -> Option<u64> {
    if !is_control(frame) || array(frame, ETH_HEADER_LEN) != Some(END_MAGIC) {
        return None;
    }
    array(frame, COUNT_AT).map(u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for count in [0, 1, 1_000_000, u64::MAX] {
            let frame = end_frame([2, 0, 0, 0, 0, 1], count);
            assert_eq!(&frame[0..6], &BROADCAST);
            assert!(is_control(&frame));
            assert_eq!(parse_end(&frame), Some(count));
        }
    }

    #[test]
    fn other_frames_are_not_the_end() {
        let good = end_frame([2, 0, 0, 0, 0, 1], 5);
        for cut in 0..COUNT_AT + 8 {
            assert_eq!(parse_end(&good[..cut]), None, "cut {cut}");
        }
        assert_eq!(parse_end(&good[..COUNT_AT + 8]), Some(5));
        for at in [12, 13, 14, 23] {
            let mut bad = good;
            bad[at] ^= 1;
            assert_eq!(parse_end(&bad), None, "byte {at}");
        }
        assert!(!is_control(&[]));
    }
}
