//! A `smoltcp` network device over a [`NetPort`] (feature
//! `smoltcp`): [`SmoltcpPort`] implements `smoltcp::phy::Device`, watching
//! raw frames for the end-of-stream control frame before smoltcp sees them,
//! and [`timestamp`] turns the TSC into smoltcp's clock.
#![forbid(unsafe_code)]

use super::{NetError, NetPort, is_end_of_stream};
use ::smoltcp::phy::{self, DeviceCapabilities, Medium};
use ::smoltcp::time::Instant;
use ::smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Ipv4Address,
};
use vmm_abi::corral::devices::MAX_FRAME_BYTES;

/// TSC ticks per microsecond of smoltcp time: a nominal rate, the
/// emulator's (one tick per instruction at 100 M instructions per second).
/// smoltcp uses time only for its timers (ARP cache, retransmissions), so
/// on hardware with a faster TSC they merely run long.
pub const TICKS_PER_MICROSECOND: u64 = 100;

/// smoltcp's clock at TSC value `tsc`.
pub fn timestamp(tsc: u64) -> Instant {
    // Dividing first keeps any TSC value in range of i64.
    Instant::from_micros((tsc / TICKS_PER_MICROSECOND) as i64)
}

/// smoltcp's clock now.
pub fn now() -> Instant {
    timestamp(crate::time::rdtsc())
}

/// Bytes of a gratuitous ARP frame: an Ethernet header and an IPv4 ARP
/// packet, no padding (the NIC pads short frames).
pub const GRATUITOUS_ARP_LEN: usize = 14 + 28;

/// A gratuitous ARP request announcing that `ip` is at `mac`: broadcast,
/// sender and target address both `ip`. Switches and NAT gateways that
/// learn addresses only from ARP (an emulator's slirp does) can then reach
/// a server that has not spoken first.
pub fn gratuitous_arp(mac: [u8; 6], ip: Ipv4Address) -> [u8; GRATUITOUS_ARP_LEN] {
    let mut buf = [0u8; GRATUITOUS_ARP_LEN];
    let eth = EthernetRepr {
        src_addr: EthernetAddress(mac),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(mac),
        source_protocol_addr: ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: ip,
    };
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
    buf
}

/// Counts of what went through a [`SmoltcpPort`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames received (end-of-stream frames included).
    pub received: u64,
    /// Frames queued for transmission.
    pub sent: u64,
    /// Frames smoltcp built that could not be queued (ring full, too long).
    pub dropped: u64,
    /// Driver errors (see [`SmoltcpPort::take_error`]).
    pub errors: u64,
}

/// A [`NetPort`] as a smoltcp Ethernet device.
///
/// Received frames are checked for the end-of-stream control frame
/// ([`is_end_of_stream`]) before smoltcp sees them; such frames are
/// consumed here and raise [`SmoltcpPort::end_of_stream`]. Driver errors
/// cannot pass through smoltcp's `Device` interface: they are counted and
/// the last one is kept for [`SmoltcpPort::take_error`].
pub struct SmoltcpPort {
    port: NetPort,
    rx_frame: [u8; MAX_FRAME_BYTES],
    tx_frame: [u8; MAX_FRAME_BYTES],
    end_of_stream: bool,
    stats: PortStats,
    last_error: Option<NetError>,
}

impl SmoltcpPort {
    /// A smoltcp interface on this port with its MAC and the one address
    /// `ip`/`prefix`, its random seed from the TSC and `seed`; `None` if
    /// the address cannot be set.
    pub fn interface(
        &mut self,
        seed: u64,
        ip: core::net::Ipv4Addr,
        prefix: u8,
    ) -> Option<::smoltcp::iface::Interface> {
        let mut config = ::smoltcp::iface::Config::new(EthernetAddress(self.mac()).into());
        config.random_seed = crate::time::rdtsc() ^ seed;
        let mut iface = ::smoltcp::iface::Interface::new(config, self, now());
        let mut added = false;
        iface.update_ip_addrs(|addrs| {
            added = addrs
                .push(::smoltcp::wire::IpCidr::new(
                    ::smoltcp::wire::IpAddress::Ipv4(ip),
                    prefix,
                ))
                .is_ok();
        });
        added.then_some(iface)
    }

    /// Wraps an open port.
    pub fn new(port: NetPort) -> Self {
        SmoltcpPort {
            port,
            rx_frame: [0; MAX_FRAME_BYTES],
            tx_frame: [0; MAX_FRAME_BYTES],
            end_of_stream: false,
            stats: PortStats::default(),
            last_error: None,
        }
    }

    /// The port's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.port.mac()
    }

    /// Whether the end-of-stream control frame has arrived.
    pub fn end_of_stream(&self) -> bool {
        self.end_of_stream
    }

    /// What went through so far.
    pub fn stats(&self) -> PortStats {
        self.stats
    }

    /// The last driver error since the previous call, if any.
    pub fn take_error(&mut self) -> Option<NetError> {
        self.last_error.take()
    }

    /// The port underneath (to check [`NetPort::rx_pending`] or
    /// [`NetPort::tx_in_flight`]).
    pub fn port(&mut self) -> &mut NetPort {
        &mut self.port
    }

    /// Sends a gratuitous ARP for `ip` ([`gratuitous_arp`]); `false` if
    /// the transmit ring was full.
    pub fn announce(&mut self, ip: Ipv4Address) -> Result<bool, NetError> {
        let frame = gratuitous_arp(self.port.mac(), ip);
        let sent = self.port.send(&frame)?;
        if sent {
            self.stats.sent += 1;
        }
        Ok(sent)
    }

    /// Gives the port back.
    pub fn into_inner(self) -> NetPort {
        self.port
    }

    fn record(&mut self, e: NetError) {
        self.stats.errors += 1;
        self.last_error = Some(e);
    }
}

/// A received frame for smoltcp.
pub struct RxToken<'a> {
    frame: &'a [u8],
}

/// Room for one frame smoltcp transmits.
pub struct TxToken<'a> {
    port: &'a mut NetPort,
    frame: &'a mut [u8; MAX_FRAME_BYTES],
    stats: &'a mut PortStats,
    last_error: &'a mut Option<NetError>,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        // smoltcp asks for at most the MTU the capabilities state, which is
        // the buffer's size; a longer request gets the buffer and is dropped.
        let fits = len <= MAX_FRAME_BYTES;
        let buf = &mut self.frame[..len.min(MAX_FRAME_BYTES)];
        let result = f(buf);
        if !fits {
            self.stats.dropped += 1;
            self.stats.errors += 1;
            *self.last_error = Some(NetError::FrameTooLong {
                len,
                max: MAX_FRAME_BYTES,
            });
            return result;
        }
        match self.port.send(buf) {
            Ok(true) => self.stats.sent += 1,
            Ok(false) => self.stats.dropped += 1,
            Err(e) => {
                self.stats.dropped += 1;
                self.stats.errors += 1;
                *self.last_error = Some(e);
            }
        }
        result
    }
}

impl phy::Device for SmoltcpPort {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        // A frame is taken only when a reply could be queued, so a full
        // transmit ring holds frames back in the receive ring rather than
        // dropping replies.
        if self.port.tx_space() == 0 {
            return None;
        }
        // Skips end-of-stream frames and bad frames, one ring's worth at most.
        for _ in 0..super::QUEUE_SIZE {
            match self.port.recv(&mut self.rx_frame) {
                Ok(Some(len)) => {
                    self.stats.received += 1;
                    if is_end_of_stream(&self.rx_frame[..len]) {
                        self.end_of_stream = true;
                        continue;
                    }
                    return Some((
                        RxToken {
                            frame: &self.rx_frame[..len],
                        },
                        TxToken {
                            port: &mut self.port,
                            frame: &mut self.tx_frame,
                            stats: &mut self.stats,
                            last_error: &mut self.last_error,
                        },
                    ));
                }
                Ok(None) => return None,
                Err(e) => self.record(e),
            }
        }
        None
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        if self.port.tx_space() == 0 {
            return None;
        }
        Some(TxToken {
            port: &mut self.port,
            frame: &mut self.tx_frame,
            stats: &mut self.stats,
            last_error: &mut self.last_error,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME_BYTES;
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gratuitous_arp_announces_the_address_to_everyone() {
        let mac = [0x02, 0x43, 0, 0, 1, 0];
        let ip = Ipv4Address::new(10, 0, 2, 15);
        let buf = gratuitous_arp(mac, ip);
        let frame = EthernetFrame::new_checked(&buf[..]).unwrap();
        let eth = EthernetRepr::parse(&frame).unwrap();
        assert_eq!(eth.dst_addr, EthernetAddress::BROADCAST);
        assert_eq!(eth.src_addr, EthernetAddress(mac));
        assert_eq!(eth.ethertype, EthernetProtocol::Arp);
        let arp = ArpRepr::parse(&ArpPacket::new_checked(frame.payload()).unwrap()).unwrap();
        assert_eq!(
            arp,
            ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Request,
                source_hardware_addr: EthernetAddress(mac),
                source_protocol_addr: ip,
                target_hardware_addr: EthernetAddress([0; 6]),
                target_protocol_addr: ip,
            }
        );
    }

    #[test]
    fn time_is_monotonic_and_in_range() {
        assert_eq!(timestamp(0), Instant::from_micros(0));
        assert_eq!(
            timestamp(1_000 * TICKS_PER_MICROSECOND),
            Instant::from_millis(1)
        );
        assert!(timestamp(u64::MAX) > timestamp(u64::MAX / 2));
    }
}
