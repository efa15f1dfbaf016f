//! The paravirtual devices a VM can have, where they sit and how they are named.
//!
//! A VM has up to [`MAX_NET_PORTS`] virtio-net ports, optionally one
//! virtio-console, and virtio-blk disks (the manifest's block devices bound
//! to it, in the order of their device names). They fill device slots in a
//! fixed order: net ports first (port N in slot N), then the console, then
//! the disks. Slot N is the virtio-mmio register
//! page at [`crate::corral::layout::device_gpa`]`(N)`; the boot info lists each
//! slot's [`DeviceKind`], so a guest never probes.
//!
//! Links and the polled mode: the manifest wires one VM's net port to
//! another's (`[[link]]`), and a hypervisor core polls both rings of each
//! link pinned to it, moving frames between them. The device therefore
//! sets `VIRTQ_USED_F_NO_NOTIFY` (or, with `VIRTIO_F_EVENT_IDX`, an
//! `avail_event` that suppresses kicks) and never interrupts: a guest polls
//! its used rings and calls [`crate::corral::hypercall::Hypercall::WaitForWork`]
//! only when it has nothing to do.

use crate::corral::layout::MAX_DEVICES;

/// Most virtio-net ports one VM may have.
pub const MAX_NET_PORTS: u8 = 4;
/// Bytes of every receive buffer a guest should post: a full Ethernet frame
/// (1514 bytes) after the 12-byte virtio-net header, rounded up. A frame
/// longer than the buffer the receiver posted is dropped and counted.
pub const RX_BUFFER_BYTES: usize = 2048;
/// Bytes of the virtio-net header in front of every frame (virtio 1.2
/// §5.1.6, with `VIRTIO_F_VERSION_1`).
pub const NET_HEADER_BYTES: usize = 12;
/// Largest Ethernet frame (without FCS) a link carries.
pub const MAX_FRAME_BYTES: usize = 1514;

/// What sits in a device slot (one byte in the boot info).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// Nothing; touching the slot stops the guest.
    None = 0,
    /// A virtio-net device (virtio device ID 1).
    Net = 1,
    /// A virtio-console device (virtio device ID 3).
    Console = 2,
    /// A virtio-blk device (virtio device ID 2): a disk.
    Block = 3,
}

impl DeviceKind {
    /// The kind with this boot-info byte.
    pub const fn from_raw(b: u8) -> Option<Self> {
        Some(match b {
            0 => DeviceKind::None,
            1 => DeviceKind::Net,
            2 => DeviceKind::Console,
            3 => DeviceKind::Block,
            _ => return None,
        })
    }

    /// A short name for logs.
    pub const fn name(self) -> &'static str {
        match self {
            DeviceKind::None => "none",
            DeviceKind::Net => "net",
            DeviceKind::Console => "console",
            DeviceKind::Block => "block",
        }
    }
}

/// The slots of a VM with `net_ports` net ports and, if `console`, a
/// virtio-console; `None` if they do not fit.
pub const fn slots(net_ports: u8, console: bool) -> Option<[DeviceKind; MAX_DEVICES]> {
    slots_with_disks(net_ports, console, 0)
}

/// The slots of a VM with `net_ports` net ports, a virtio-console if
/// `console`, and `disks` virtio-blk disks; `None` if they do not fit.
pub const fn slots_with_disks(
    net_ports: u8,
    console: bool,
    disks: usize,
) -> Option<[DeviceKind; MAX_DEVICES]> {
    if net_ports > MAX_NET_PORTS || net_ports as usize + console as usize + disks > MAX_DEVICES {
        return None;
    }
    let mut out = [DeviceKind::None; MAX_DEVICES];
    let mut i = 0;
    while i < net_ports as usize {
        out[i] = DeviceKind::Net;
        i += 1;
    }
    if console {
        out[i] = DeviceKind::Console;
        i += 1;
    }
    let mut d = 0;
    while d < disks {
        out[i + d] = DeviceKind::Block;
        d += 1;
    }
    Some(out)
}

/// The MAC address of port `port` of the VM with manifest index `vm`:
/// locally administered, unicast, and unique within a run.
pub const fn port_mac(vm: u32, port: u8) -> [u8; 6] {
    let v = vm.to_be_bytes();
    [0x02, 0x43, v[1], v[2], v[3], port]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_order() {
        let s = slots(2, true).unwrap();
        assert_eq!(
            &s[..4],
            &[
                DeviceKind::Net,
                DeviceKind::Net,
                DeviceKind::Console,
                DeviceKind::None
            ]
        );
        assert_eq!(slots(0, false).unwrap(), [DeviceKind::None; MAX_DEVICES]);
        assert!(slots(MAX_NET_PORTS, true).is_some());
        assert!(slots(MAX_NET_PORTS + 1, false).is_none());
        let s = slots_with_disks(1, true, 2).unwrap();
        assert_eq!(
            &s[..5],
            &[
                DeviceKind::Net,
                DeviceKind::Console,
                DeviceKind::Block,
                DeviceKind::Block,
                DeviceKind::None
            ]
        );
        assert!(slots_with_disks(MAX_NET_PORTS, true, 3).is_some());
        assert!(slots_with_disks(MAX_NET_PORTS, true, 4).is_none());
        assert!(slots_with_disks(0, false, MAX_DEVICES + 1).is_none());
    }

    #[test]
    fn kinds_round_trip() {
        for k in [
            DeviceKind::None,
            DeviceKind::Net,
            DeviceKind::Console,
            DeviceKind::Block,
        ] {
            assert_eq!(DeviceKind::from_raw(k as u8), Some(k));
        }
        assert_eq!(DeviceKind::from_raw(4), None);
    }

    #[test]
    fn macs_are_unique_unicast_and_local() {
        let a = port_mac(1, 0);
        assert_eq!(a[0] & 1, 0);
        assert_eq!(a[0] & 2, 2);
        assert_ne!(a, port_mac(1, 1));
        assert_ne!(a, port_mac(257, 0));
    }
}
