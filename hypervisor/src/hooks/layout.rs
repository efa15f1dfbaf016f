//! The virtual address space a hook program sees: one region per 256 MiB below 4 GiB (context, stack, packet window, map values), so every address a program is handed fits the 32-bit pointer fields of `struct xdp_md`; nothing else is mapped, page 0 included.
//!
//! | region | base | bytes | access |
//! |---|---|---|---|
//! | context | [`CTX_BASE`] | the kind's context size | read |
//! | stack | [`STACK_BASE`] | 512 (`r10` = its end) | read, write |
//! | packet | [`PACKET_BASE`] | the frame (`data .. data_end`) | read, write |
//! | map `i`'s values | [`MAP_BASE`] + `i` << [`MAP_WINDOW_SHIFT`] | each present value | read, write |
//!
//! A map value's address is its window's base plus `slot * stride`; an
//! access must lie inside one present value. Map handles
//! ([`MAP_HANDLE_BASE`] + index) are not addresses at all.

#![forbid(unsafe_code)]

use vmm_abi::hook::context::XdpMd;

/// Bits of an address below its region number.
pub const REGION_SHIFT: u32 = 28;
/// Region number of the context.
pub const REGION_CTX: u64 = 1;
/// Region number of the stack.
pub const REGION_STACK: u64 = 2;
/// Region number of the packet.
pub const REGION_PACKET: u64 = 3;
/// Region number of the map values.
pub const REGION_MAPS: u64 = 4;

/// The context's first byte (`r1` at entry).
pub const CTX_BASE: u64 = REGION_CTX << REGION_SHIFT;
/// The stack's lowest byte; `r10` = `STACK_BASE + 512`.
pub const STACK_BASE: u64 = REGION_STACK << REGION_SHIFT;
/// The packet's first byte (`xdp_md.data`).
pub const PACKET_BASE: u64 = REGION_PACKET << REGION_SHIFT;
/// Map 0's value window.
pub const MAP_BASE: u64 = REGION_MAPS << REGION_SHIFT;
/// Bits of one map's value window (16 MiB, more than any map's values).
pub const MAP_WINDOW_SHIFT: u32 = 24;
/// The value of a map handle register for map 0 (`lddw src=1`); map `i`
/// is this plus `i`. Not an address of any region.
pub const MAP_HANDLE_BASE: u64 = 0xffff_4d41_5000_0000;
/// Largest packet a program may see.
pub const MAX_PACKET: usize = 1 << 16;

const _: () = assert!(
    (vmm_abi::hook::MAX_MAPS as u64) << MAP_WINDOW_SHIFT <= 1 << REGION_SHIFT,
    "every map window fits the maps region"
);

/// The packet hook's context for a frame of `len` bytes: `data` at
/// [`PACKET_BASE`], no metadata; `None` if the frame is larger than
/// [`MAX_PACKET`].
pub fn xdp_md(
    len: usize,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
) -> Option<XdpMd> {
    if len > MAX_PACKET {
        return None;
    }
    let data = PACKET_BASE as u32;
    Some(XdpMd {
        data,
        data_end: data + len as u32,
        data_meta: data,
        ingress_ifindex,
        rx_queue_index,
        egress_ifindex,
    })
}
