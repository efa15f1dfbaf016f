//! ARP for IPv4 over Ethernet (RFC 826): building requests and replies, parsing them, and answering for one's own address.

use super::packet::{BROADCAST, ETH_HEADER_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, MIN_FRAME_LEN, Mac};
use super::packet::{array, be16};
use core::net::Ipv4Addr;

/// Length of an IPv4-over-Ethernet ARP packet.
pub const ARP_LEN: usize = 28;
/// Length of the frames [`Arp::frame`] builds (padded to the Ethernet
/// minimum).
pub const ARP_FRAME_LEN: usize = MIN_FRAME_LEN;

/// ARP hardware type Ethernet.
const HTYPE_ETHERNET: u16 = 1;
/// Hardware address length of Ethernet.
const HLEN: u8 = 6;
/// Protocol address length of IPv4.
const PLEN: u8 = 4;

/// An ARP operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpOp {
    /// Who has `target_ip`? (1)
    Request,
    /// `sender_ip` is at `sender_mac` (2).
    Reply,
}

impl ArpOp {
    /// Its code on the wire.
    pub const fn code(self) -> u16 {
        match self {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
        }
    }
}

/// An IPv4-over-Ethernet ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    /// Request or reply.
    pub op: ArpOp,
    /// Sender hardware address.
    pub sender_mac: Mac,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (zero in a request).
    pub target_mac: Mac,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl Arp {
    /// A request from (`sender_mac`, `sender_ip`) for the MAC of `target_ip`.
    pub const fn request(sender_mac: Mac, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Arp {
        Arp {
            op: ArpOp::Request,
            sender_mac,
            sender_ip,
            target_mac: [0; 6],
            target_ip,
        }
    }

    /// The reply to this packet from a host at (`my_mac`, `my_ip`): `Some`
    /// only for a request for `my_ip`.
    pub fn answer(&self, my_mac: Mac, my_ip: Ipv4Addr) -> Option<Arp> {
        (self.op == ArpOp::Request && self.target_ip == my_ip).then_some(Arp {
            op: ArpOp::Reply,
            sender_mac: my_mac,
            sender_ip: my_ip,
            target_mac: self.sender_mac,
            target_ip: self.sender_ip,
        })
    }

    /// Reads an IPv4-over-Ethernet ARP request or reply; `None` for any
    /// other frame (other EtherType, hardware or protocol, unknown
    /// operation, truncated).
    pub fn parse(frame: &[u8]) -> Option<Arp> {
        if be16(frame, 12)? != ETHERTYPE_ARP {
            return None;
        }
        let at = |offset: usize| ETH_HEADER_LEN + offset;
        if be16(frame, at(0))? != HTYPE_ETHERNET
            || be16(frame, at(2))? != ETHERTYPE_IPV4
            || array(frame, at(4))? != [HLEN, PLEN]
        {
            return None;
        }
        let op = match be16(frame, at(6))? {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            _ => return None,
        };
        Some(Arp {
            op,
            sender_mac: array(frame, at(8))?,
            sender_ip: Ipv4Addr::from(array::<4>(frame, at(14))?),
            target_mac: array(frame, at(18))?,
            target_ip: Ipv4Addr::from(array::<4>(frame, at(24))?),
        })
    }

    /// The Ethernet frame carrying this packet, from `sender_mac` to the
    /// broadcast address (request) or to `target_mac` (reply), zero-padded
    /// to the Ethernet minimum.
    pub fn frame(&self) -> [u8; ARP_FRAME_LEN] {
        let mut f = [0u8; ARP_FRAME_LEN];
        let dst = match self.op {
            ArpOp::Request => BROADCAST,
            ArpOp::Reply => self.target_mac,
        };
        f[0..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&self.sender_mac);
        f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
        f[14..16].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        f[16..18].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        f[18] = HLEN;
        f[19] = PLEN;
        f[20..22].copy_from_slice(&self.op.code().to_be_bytes());
        f[22..28].copy_from_slice(&self.sender_mac);
        f[28..32].copy_from_slice(&self.sender_ip.octets());
        f[32..38].copy_from_slice(&self.target_mac);
        f[38..42].copy_from_slice(&self.target_ip.octets());
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A_MAC: Mac = [2, 0, 0, 0, 0, 0xa];
    const B_MAC: Mac = [2, 0, 0, 0, 0, 0xb];
    const A_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    #[test]
    fn request_reply_round_trip() {
        let req = Arp::request(A_MAC, A_IP, B_IP);
        let frame = req.frame();
        assert_eq!(&frame[0..6], &BROADCAST);
        assert_eq!(&frame[6..12], &A_MAC);
        assert_eq!(Arp::parse(&frame), Some(req));
        // Only the owner of the target address answers.
        assert_eq!(req.answer(A_MAC, A_IP), None);
        let reply = req.answer(B_MAC, B_IP).unwrap();
        assert_eq!(reply.op, ArpOp::Reply);
        assert_eq!((reply.sender_mac, reply.sender_ip), (B_MAC, B_IP));
        assert_eq!((reply.target_mac, reply.target_ip), (A_MAC, A_IP));
        let frame = reply.frame();
        assert_eq!(&frame[0..6], &A_MAC);
        assert_eq!(Arp::parse(&frame), Some(reply));
        // A reply is not answered.
        assert_eq!(reply.answer(A_MAC, A_IP), None);
    }

    #[test]
    fn bad_frames_are_refused() {
        let good = Arp::request(A_MAC, A_IP, B_IP).frame();
        for cut in 0..ETH_HEADER_LEN + ARP_LEN {
            assert_eq!(Arp::parse(&good[..cut]), None, "cut {cut}");
        }
        assert!(Arp::parse(&good[..ETH_HEADER_LEN + ARP_LEN]).is_some());
        for (at, value) in [
            (12, 0x86),
            (13, 0x00),
            (15, 6),
            (17, 0xdd),
            (18, 8),
            (19, 16),
            (21, 3),
            (21, 0),
        ] {
            let mut bad = good;
            bad[at] = value;
            assert_eq!(Arp::parse(&bad), None, "byte {at} = {value}");
        }
    }
}
