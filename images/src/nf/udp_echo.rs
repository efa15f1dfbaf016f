//! A UDP echo server's frame logic without a TCP/IP stack (for unikernels that have none, like the Solo5 hvt echo image): ARP replies for its address, and each datagram to its address and port turned around in place (addresses and ports swapped, so both checksums still hold).

use super::arp::{ARP_FRAME_LEN, Arp};
use super::packet::{ETH_HEADER_LEN, Mac, parse_udp};
use core::net::Ipv4Addr;

/// Who the server is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Echo {
    /// Its MAC address.
    pub mac: Mac,
    /// Its IPv4 address.
    pub ip: Ipv4Addr,
    /// The UDP port it echoes on.
    pub port: u16,
}

/// What to do with a received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Send this ARP reply.
    Arp([u8; ARP_FRAME_LEN]),
    /// Send the first `len` bytes of the frame back (rewritten in place);
    /// `quit`: its payload was the quit word.
    Echo {
        /// Bytes of the reply (the frame without Ethernet padding).
        len: usize,
        /// The datagram held exactly the quit word.
        quit: bool,
    },
    /// Not for this server (or broken): nothing to send.
    Ignore,
}

impl Echo {
    /// The gratuitous ARP announcing its address (a request for its own
    /// address, so gateways that learn only from ARP can reach it).
    pub fn announcement(&self) -> [u8; ARP_FRAME_LEN] {
        Arp::request(self.mac, self.ip, self.ip).frame()
    }

    /// Answers `frame`: an ARP request for its address, or a UDP datagram
    /// to its address and port with good checksums (turned around in
    /// place); anything else is ignored. `quit` is the payload that ends
    /// the server.
    pub fn answer(&self, frame: &mut [u8], quit: Option<&[u8]>) -> Answer {
        if let Some(arp) = Arp::parse(frame) {
            return match arp.answer(self.mac, self.ip) {
                Some(reply) => Answer::Arp(reply.frame()),
                None => Answer::Ignore,
            };
        }
        let Ok(udp) = parse_udp(frame) else {
            return Answer::Ignore;
        };
        if udp.ip.dst != self.ip
            || udp.dst_port != self.port
            || !udp.ip.checksum_ok(frame)
            || !udp.checksum_ok(frame)
        {
            return Answer::Ignore;
        }
        let quit = quit.is_some_and(|word| udp.payload(frame) == word);
        let len = ETH_HEADER_LEN + udp.ip.total_len;
        let Some(reply) = frame.get_mut(..len) else {
            return Answer::Ignore;
        };
        // Ethernet: back to the sender, from this server.
        let (dst, src) = reply.split_at_mut(6);
        dst.copy_from_slice(&src[..6]);
        src[..6].copy_from_slice(&self.mac);
        // IPv4 source and destination, then the UDP ports: swapping each
        // pair leaves the one's-complement sums, so both checksums, as
        // they were.
        swap(reply, ETH_HEADER_LEN + 12, ETH_HEADER_LEN + 16, 4);
        let ports = udp.offset();
        swap(reply, ports, ports + 2, 2);
        Answer::Echo { len, quit }
    }
}

/// Swaps the `n` bytes at `a` with the `n` at `b` (`a + n <= b`, both in
/// `bytes`; the caller checked the headers are there).
fn swap(bytes: &mut [u8], a: usize, b: usize, n: usize) {
    for i in 0..n {
        bytes.swap(a + i, b + i);
    }
}

#[cfg(test)]
mod tests;
