//! Net device name records (section kind 10): the name a Solo5 guest's manifest gives a NET_BASIC device, bound to one of its VM's net ports (the port links and NICs reach as today).

use super::block::is_device_name;
use super::error::{Field, ManifestError, Problem};
use super::{Manifest, VmSpec, err};
use crate::hvt::MFT_NAME_SIZE;
use crate::text::{le, unpad};

/// Bytes in one net device record.
pub const NET_DEVICE_RECORD_SIZE: usize = 80;
/// Most net device records one manifest may hold.
pub const MAX_NET_DEVICES: u32 = 256;
/// Most net devices one VM may have (the hypervisor keeps each device's
/// rings in a 2 MiB reserve of the VM's memory).
pub const MAX_VM_NET_DEVICES: usize = 4;

const N_VM: usize = 0;
const N_PORT: usize = 4;
const N_RESERVED_1: usize = 5;
const N_DEVICE: usize = 8;
const N_RESERVED_2: usize = N_DEVICE + MFT_NAME_SIZE;
const _: () = assert!(N_PORT == N_VM + 4 && N_RESERVED_1 == N_PORT + 1);
const _: () = assert!(N_RESERVED_2 + 4 == NET_DEVICE_RECORD_SIZE);

/// One net device as the manifest describes it (the working type; see
/// [`NetDeviceSpec::encode`] and [`super::Manifest::net_devices`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetDeviceSpec<'a> {
    /// The VM whose port it is (its manifest index).
    pub vm: u32,
    /// The VM's net port (below its `net_ports`).
    pub port: u8,
    /// The device name in that VM's Solo5 manifest.
    pub device: &'a str,
}

impl<'a> NetDeviceSpec<'a> {
    /// Checks every field of this record against `vms`, the manifest's VMs
    /// in order; `index` is its record index, for the error.
    pub fn validate(&self, index: u32, vms: &[VmSpec<'_>]) -> Result<(), ManifestError> {
        let ports = |vm: u32| vms.get(vm as usize).map_or(0, |v| v.net_ports);
        self.check(index, vms.len() as u32, ports)
    }

    /// [`NetDeviceSpec::validate`] with the VMs as their count and a
    /// function giving VM `i`'s net ports (`i` below the count).
    fn check(&self, index: u32, vms: u32, ports: impl Fn(u32) -> u8) -> Result<(), ManifestError> {
        let e = |field, problem| Err(err(Some(index), field, problem));
        if self.vm >= vms {
            return e(
                Field::NetDeviceVm,
                Problem::NoVm {
                    found: self.vm,
                    vms,
                },
            );
        }
        let have = ports(self.vm);
        if self.port >= have {
            return e(Field::NetDevicePort, Problem::NoPort { ports: have });
        }
        if !is_device_name(self.device.as_bytes()) {
            return e(Field::NetDeviceName, Problem::DeviceName);
        }
        Ok(())
    }

    /// The wire record, after [`NetDeviceSpec::validate`].
    pub fn encode(
        &self,
        index: u32,
        vms: &[VmSpec<'_>],
    ) -> Result<[u8; NET_DEVICE_RECORD_SIZE], ManifestError> {
        self.validate(index, vms)?;
        let mut r = [0u8; NET_DEVICE_RECORD_SIZE];
        le::put_u32(&mut r, N_VM, self.vm);
        r[N_PORT] = self.port;
        r[N_DEVICE..N_DEVICE + self.device.len()].copy_from_slice(self.device.as_bytes());
        Ok(r)
    }

    /// Reads and checks record `index` (`r` is exactly one record) against
    /// `vms` VMs whose net ports `ports` gives.
    pub(super) fn decode(
        index: u32,
        r: &'a [u8],
        vms: u32,
        ports: impl Fn(u32) -> u8,
    ) -> Result<Self, ManifestError> {
        if r[N_RESERVED_1..N_DEVICE].iter().any(|&b| b != 0)
            || r[N_RESERVED_2..NET_DEVICE_RECORD_SIZE]
                .iter()
                .any(|&b| b != 0)
        {
            return Err(err(Some(index), Field::NetDeviceReserved, Problem::NotZero));
        }
        let device = unpad(&r[N_DEVICE..N_RESERVED_2])
            .and_then(|n| core::str::from_utf8(n).ok())
            .ok_or(err(Some(index), Field::NetDeviceName, Problem::DeviceName))?;
        let spec = NetDeviceSpec {
            vm: le::u32_at(r, N_VM),
            port: r[N_PORT],
            device,
        };
        spec.check(index, vms, ports)?;
        Ok(spec)
    }
}

/// Checks every net device record of `m` (whole records, count already in
/// range; its VMs and block devices already checked): each valid, at most
/// [`MAX_VM_NET_DEVICES`] per VM, and per VM each device name and each port
/// named once, and no name also one of its block devices'.
pub(super) fn check_net_devices(m: &Manifest<'_>) -> Result<(), ManifestError> {
    let records = m.net_devices;
    let vms = m.len() as u32;
    for (i, r) in records.chunks_exact(NET_DEVICE_RECORD_SIZE).enumerate() {
        let index = i as u32;
        let e = |field, problem| Err(err(Some(index), field, problem));
        let d = NetDeviceSpec::decode(index, r, vms, |vm| m.net_ports(vm))?;
        // Earlier records passed these checks, so their padding is
        // canonical and whole fields compare as their values do.
        let earlier = records.chunks_exact(NET_DEVICE_RECORD_SIZE).take(i);
        let mut same = earlier
            .enumerate()
            .filter(|(_, o)| o[N_VM..N_PORT] == r[N_VM..N_PORT]);
        if same.clone().count() >= MAX_VM_NET_DEVICES {
            return e(
                Field::NetDeviceVm,
                Problem::TooManyNetDevices {
                    max: MAX_VM_NET_DEVICES as u32,
                },
            );
        }
        let name = N_DEVICE..N_RESERVED_2;
        if let Some((j, _)) = same
            .clone()
            .find(|(_, o)| o[name.clone()] == r[name.clone()])
        {
            let first = j as u32;
            return e(Field::NetDeviceName, Problem::DuplicateDevice { first });
        }
        if let Some((j, _)) = same.find(|(_, o)| o[N_PORT] == r[N_PORT]) {
            let first = j as u32;
            return e(Field::NetDevicePort, Problem::PortNamed { first });
        }
        let mut blocks = m.blocks().enumerate();
        if let Some((j, _)) = blocks.find(|(_, b)| b.vm == d.vm && b.device == d.device) {
            let block = j as u32;
            return e(Field::NetDeviceName, Problem::BlockDeviceName { block });
        }
    }
    Ok(())
}
