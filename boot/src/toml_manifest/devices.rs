//! The `devices` table of a `[[vm]]`: each Solo5 device name bound to a `[[block]]` (`block:NAME`) or to one of the VM's net ports (`net:N`), every mistake named with its VM and binding.

use super::raw::RawLink;
use super::{LinkConfig, LinkEnd, NIC_END_PREFIX, NicConfig, VmConfig};
use crate::error::{Error, Result};
use vmm_abi::corral::devices::MAX_NET_PORTS;
use vmm_abi::manifest::NicMode;
use vmm_abi::manifest::{DEVICE_NAME_MAX, MAX_VM_NET_DEVICES, NetDeviceSpec, is_device_name};

/// What a `devices` value that names a block device starts with.
pub const BLOCK_DEVICE_PREFIX: &str = "block:";

/// What a `devices` value that names one of the VM's net ports starts
/// with (then the port number, from 0).
pub const NET_DEVICE_PREFIX: &str = "net:";

/// What a `devices` value that links a Solo5 net device straight to a
/// NIC starts with (then the NIC's name): the VM gets a port of its own
/// for it, linked to the NIC.
pub const NIC_DEVICE_PREFIX: &str = NIC_END_PREFIX;

/// Turns each `NAME = "nic:UPLINK"` binding into a net port of its own,
/// after the VM's `net` ports in the order of the device names: the VM
/// gets the port, the binding becomes `net:P`, and a `[[link]]` from the
/// port to the NIC is added to `links` (polled by the NIC's core, as a
/// link written out would be).
pub(super) fn link_nic_bindings(
    origin: &str,
    vms: &mut [VmConfig],
    nics: &[NicConfig],
    links: &mut Vec<RawLink>,
) -> Result<()> {
    for vm in vms.iter_mut() {
        for (device, target) in vm.devices.iter_mut() {
            let Some(nic) = target.strip_prefix(NIC_DEVICE_PREFIX) else {
                continue;
            };
            let e = |why: &str| binding_error(origin, &vm.entry, device, target, why);
            if !nics.iter().any(|n| n.name == nic) {
                let known: Vec<&str> = nics.iter().map(|n| n.name.as_str()).collect();
                return Err(e(&if known.is_empty() {
                    format!("no NIC named `{nic}` (the manifest has no [[nic]] table)")
                } else {
                    format!("no NIC named `{nic}` (NICs: {})", known.join(", "))
                }));
            }
            let port = vm.net_ports;
            if port >= MAX_NET_PORTS {
                return Err(e(&format!(
                    "the VM would need net port {port} for it, and a VM has at most {MAX_NET_PORTS}"
                )));
            }
            vm.net_ports += 1;
            links.push(RawLink {
                a: format!("{}.{port}", vm.name),
                b: target.clone(),
                core: None,
                hold: None,
                bridge: None,
            });
            *target = format!("{NET_DEVICE_PREFIX}{port}");
        }
    }
    Ok(())
}

/// One net port's Solo5 device name, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetDeviceConfig {
    /// The VM (its index).
    pub vm: u32,
    /// Its net port (below the VM's `net`).
    pub port: u8,
    /// The port's NET_BASIC device name in the VM's Solo5 manifest.
    pub device: String,
}

impl NetDeviceConfig {
    /// The vmm-abi working type.
    pub fn spec(&self) -> NetDeviceSpec<'_> {
        NetDeviceSpec {
            vm: self.vm,
            port: self.port,
            device: &self.device,
        }
    }
}

/// A device name bound to a `[[block]]`, for `blocks` to resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct BlockBinding {
    /// The VM (its index).
    pub vm: u32,
    /// The VM's `[[vm]]` entry, for errors.
    pub entry: String,
    /// The device name in its Solo5 manifest.
    pub device: String,
    /// The `[[block]]` it names.
    pub block: String,
}

/// Every VM's `devices`, checked and split by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Bindings {
    /// Names bound to disks, in VM order, then name order.
    pub blocks: Vec<BlockBinding>,
    /// Names bound to net ports, in VM order, then name order.
    pub nets: Vec<NetDeviceConfig>,
}

/// The error about the binding `device = "target"` of the VM from the
/// `[[vm]]` entry `entry`.
pub(super) fn binding_error(
    origin: &str,
    entry: &str,
    device: &str,
    target: &str,
    why: &str,
) -> Error {
    Error::new(format!(
        "{origin}: vm `{entry}`: field `devices`: `{device} = \"{target}\"`: {why}"
    ))
}

/// Checks the `devices` of every VM: names Solo5 allows, values of a known
/// form, net ports the VM has, each port named once, at most
/// [`MAX_VM_NET_DEVICES`] net devices a VM, each on a port a `[[link]]`
/// reaches (the guest's writes and its halt wait for the frames it sent to
/// be taken, which only a link does).
pub(super) fn resolve(
    origin: &str,
    vms: &[VmConfig],
    links: &[LinkConfig],
    nics: &[NicConfig],
) -> Result<Bindings> {
    let mut bindings = Bindings::default();
    for (i, vm) in vms.iter().enumerate() {
        let index = i as u32;
        let nets = vm
            .devices
            .iter()
            .filter(|(_, t)| t.starts_with(NET_DEVICE_PREFIX))
            .count();
        if nets > MAX_VM_NET_DEVICES {
            return Err(Error::new(format!(
                "{origin}: vm `{}`: field `devices`: {nets} net devices, at most {MAX_VM_NET_DEVICES} per VM",
                vm.entry
            )));
        }
        let first_net = bindings.nets.len();
        for (device, target) in &vm.devices {
            let e = |why: &str| binding_error(origin, &vm.entry, device, target, why);
            if !is_device_name(device.as_bytes()) {
                return Err(e(&format!(
                    "a Solo5 device name is 1 to {DEVICE_NAME_MAX} letters and digits"
                )));
            }
            if let Some(block) = target.strip_prefix(BLOCK_DEVICE_PREFIX) {
                bindings.blocks.push(BlockBinding {
                    vm: index,
                    entry: vm.entry.clone(),
                    device: device.clone(),
                    block: block.to_string(),
                });
                continue;
            }
            let Some(number) = target.strip_prefix(NET_DEVICE_PREFIX) else {
                return Err(e(&format!(
                    "say `{BLOCK_DEVICE_PREFIX}NAME` for a [[block]], `{NET_DEVICE_PREFIX}N` for the VM's net port N or `{NIC_DEVICE_PREFIX}NAME` for a port linked to a [[nic]]"
                )));
            };
            let port = net_port(number, vm.net_ports).map_err(|why| e(&why))?;
            if let Some(other) = bindings.nets[first_net..].iter().find(|n| n.port == port) {
                return Err(e(&format!(
                    "port {port} is named `{}` already; a net port has one device name",
                    other.device
                )));
            }
            let linked =
                |end: &LinkEnd| matches!(end, LinkEnd::Vm(p) if p.vm == index && p.port == port);
            let Some(link) = links.iter().find(|l| linked(&l.a) || linked(&l.b)) else {
                return Err(e(&format!(
                    "port {port} is not linked: add a `[[link]]` with `{}.{port}` as an end",
                    vm.name
                )));
            };
            // The hypervisor's driver for the port keeps its buffers in
            // order, which an owned NIC (zero-copy, out of order) does not.
            let peer = if linked(&link.a) { &link.b } else { &link.a };
            if let LinkEnd::Nic { nic, name } = peer
                && nics
                    .get(*nic as usize)
                    .is_some_and(|n| n.mode == NicMode::Owned)
            {
                return Err(e(&format!(
                    "port {port} is linked to NIC `{name}` in `owned` mode; a Solo5 net device needs a `shared` NIC"
                )));
            }
            bindings.nets.push(NetDeviceConfig {
                vm: index,
                port,
                device: device.clone(),
            });
        }
    }
    Ok(bindings)
}

/// The port `number` (the text after `net:`) names on a VM with `ports`
/// net ports, or why it names none.
fn net_port(number: &str, ports: u8) -> std::result::Result<u8, String> {
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "not a port number: say `{NET_DEVICE_PREFIX}N` with N the VM's net port, from 0"
        ));
    }
    match number.parse::<u8>() {
        Ok(port) if port < ports => Ok(port),
        _ => Err(format!(
            "port {number} does not exist: the VM has {ports} net port{} (`net = K` gives a VM ports 0 to K-1)",
            if ports == 1 { "" } else { "s" }
        )),
    }
}
