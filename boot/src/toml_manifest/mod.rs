//! The TOML manifest a user writes: its checks (every error names the file
//! and, where it can, the line or the VM and field), the expansion of fleets
//! (`count`) into clones, and its translation to the binary manifest of
//! `vmm_abi::manifest`.
//!
//! `raw` holds the serde model, `entry` turns one `[[vm]]` entry into VMs,
//! `nics` checks the `[[nic]]` tables and places their emulated cards,
//! `links` resolves and checks the `[[link]]` tables, `hooks` the
//! `[[hook]]` tables (their programs compiled, loaded and verified),
//! `devices` the `devices` of VMs (Solo5 names for disks and net ports),
//! `blocks` the `[[block]]` tables those disks come from.

mod blocks;
mod devices;
mod entry;
mod hooks;
mod links;
mod nics;
mod raw;

use crate::bochs;
use crate::error::{Error, Result};
use crate::expect::Expectation;
use std::path::{Path, PathBuf};
use vmm_abi::manifest::{
    self, Field, LinkSpec, MAX_TIMESLICE, MAX_VMS, MIN_TIMESLICE, ManifestError, NicSpec, Place,
    Problem, Restart, VmSpec, validate_timeslice,
};

pub use blocks::BlockConfig;
pub use devices::{BLOCK_DEVICE_PREFIX, NET_DEVICE_PREFIX, NetDeviceConfig};
pub use entry::{DEFAULT_RESTART_LIMIT, DEFAULT_VM_MEMORY, clone_name, cores_mask, mask_cores};
pub use hooks::{
    HookConfig, LINK_ATTACH_PREFIX, NIC_ATTACH_PREFIX, VM_ATTACH_PREFIX, resolve_attach,
    resolve_nic,
};
pub use links::{DEFAULT_POLL_CORE, LinkConfig, LinkEnd, NIC_END_PREFIX, PortEnd, poll_cores};
pub use nics::{
    Backend, DEFAULT_FORWARD_GUEST, DeviceState, EMULATED_SLOTS, Forward, HostNet, MAX_FORWARDS,
    MAX_NETNS_NAME, NETNS_DIR, NicConfig, Proto, check_backends, check_tap_devices, emulator_netns,
    generated_mac, mac_text, parse_mac, parse_pci, running_as_root, slot_address,
};
pub use raw::parse_size;

/// Default Bochs CPU model.
pub const DEFAULT_CPU_MODEL: &str = "corei7_icelake_u";
/// Default wall-clock bound for the emulator, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 120;
/// Default emulated machine memory, in MiB.
pub const DEFAULT_MACHINE_MIB: u32 = 256;
/// Most emulated CPUs a run may ask for.
pub const MAX_CPUS: u32 = 16;
/// Smallest and largest emulated machine memory, in MiB.
pub const MACHINE_MIB_RANGE: (u32, u32) = (32, 2048);
/// Longest wall-clock bound, in seconds (a day).
pub const MAX_TIMEOUT_SECS: u64 = 86_400;

/// How the emulated machine is set up (`[run]`, or command-line overrides).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSettings {
    /// Bochs CPU model.
    pub cpu_model: String,
    /// Emulated CPUs.
    pub cpus: u32,
    /// Wall-clock bound for the emulator, in seconds.
    pub timeout_secs: u64,
    /// Emulated machine memory, in MiB.
    pub memory_mib: u32,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            cpu_model: DEFAULT_CPU_MODEL.to_string(),
            cpus: 1,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            memory_mib: DEFAULT_MACHINE_MIB,
        }
    }
}

impl RunSettings {
    /// Checks every setting; the error names the setting.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !bochs::CPU_MODELS.contains(&self.cpu_model.as_str()) {
            return Err(format!(
                "`cpu_model`: Bochs has no CPU model `{}` (known: {})",
                self.cpu_model,
                bochs::CPU_MODELS.join(", ")
            ));
        }
        if !(1..=MAX_CPUS).contains(&self.cpus) {
            return Err(format!("`cpus`: {} is outside 1..={MAX_CPUS}", self.cpus));
        }
        if !(1..=MAX_TIMEOUT_SECS).contains(&self.timeout_secs) {
            return Err(format!(
                "`timeout`: {} s is outside 1..={MAX_TIMEOUT_SECS}",
                self.timeout_secs
            ));
        }
        let (lo, hi) = MACHINE_MIB_RANGE;
        if !(lo..=hi).contains(&self.memory_mib) {
            return Err(format!(
                "`memory`: {} MiB is outside {lo}..={hi}",
                self.memory_mib
            ));
        }
        Ok(())
    }
}

/// One VM of the manifest, checked. An entry with `count = N` stands for N
/// of these, its clones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// Unique name (`<entry>-<i>` for clone i).
    pub name: String,
    /// The name of the `[[vm]]` entry it comes from.
    pub entry: String,
    /// Its clone index, if the entry has a `count`.
    pub clone: Option<u32>,
    /// Image: a binary of the `images` crate, or (with `image_file`) the
    /// module name of an ELF file given by path.
    pub image: String,
    /// The ELF file of an image given by path (`image = { elf = "..." }`).
    pub image_file: Option<PathBuf>,
    /// Cores it may run on (bit N = core N); 0 = not pinned.
    pub cores: u64,
    /// Guest memory in bytes.
    pub memory: u64,
    /// Argument string.
    pub args: String,
    /// Guest-instruction budget (0 = none).
    pub budget: u64,
    /// What the hypervisor does when it fails.
    pub restart: Restart,
    /// Most restarts (0 with [`Restart::Never`]).
    pub restart_limit: u32,
    /// Its virtio-net ports (`net`).
    pub net_ports: u8,
    /// Whether it has a virtio-console (`console`).
    pub console: bool,
    /// Whether it holds the control capability (`caps = ["control"]`).
    pub control: bool,
    /// Devices its Solo5 manifest declares, bound by name (`devices`):
    /// (device name, what it is bound to, such as `block:disk0`).
    pub devices: Vec<(String, String)>,
    /// How its final run should end.
    pub expect: Expectation,
}

impl VmConfig {
    /// The vmm-abi working type for this VM.
    pub fn spec(&self) -> VmSpec<'_> {
        VmSpec {
            name: &self.name,
            image: &self.image,
            args: &self.args,
            memory: self.memory,
            budget: self.budget,
            cores: self.cores,
            restart: self.restart,
            restart_limit: self.restart_limit,
            net_ports: self.net_ports,
            console: self.console,
            control: self.control,
            entry: if self.clone.is_some() {
                &self.entry
            } else {
                &self.name
            },
        }
    }

    /// The cores it may run on, lowest first (empty if not pinned).
    pub fn core_list(&self) -> Vec<u32> {
        mask_cores(self.cores)
    }
}

/// A checked manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Where it came from, as shown in messages.
    pub origin: String,
    /// Machine settings.
    pub run: RunSettings,
    /// Instructions per scheduling slice (0 = the hypervisor's default).
    pub timeslice: u64,
    /// `[run] mode = "service"`: the host keeps running and takes commands
    /// on COM2 (`corral up`); core 0 serves them and runs no VMs.
    pub service: bool,
    /// The VMs, in order, clones expanded.
    pub vms: Vec<VmConfig>,
    /// The links between VMs' net ports and NICs, in order.
    pub links: Vec<LinkConfig>,
    /// The NICs, in order (each with its emulated card).
    pub nics: Vec<NicConfig>,
    /// The hooks, in order (programs loaded and verified).
    pub hooks: Vec<HookConfig>,
    /// The block devices, in order (each bound to its VM).
    pub blocks: Vec<BlockConfig>,
    /// The Solo5 names of VMs' net ports, in VM order.
    pub net_devices: Vec<NetDeviceConfig>,
}

fn vm_error(origin: &str, name: &str, e: &ManifestError) -> Error {
    Error::new(format!("{origin}: vm `{name}`: {e}"))
}

/// Reads and checks the manifest at `path`; `known_images` are the images
/// that exist (the `images` crate's binaries).
pub fn load(path: &Path, known_images: &[String]) -> Result<Manifest> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::new(format!("cannot read manifest {origin}: {e}")))?;
    parse(&text, &origin, known_images)
}

/// Checks a manifest's text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str, known_images: &[String]) -> Result<Manifest> {
    let raw: raw::RawManifest =
        toml::from_str(text).map_err(|e| raw::toml_error(origin, text, &e))?;
    let defaults = RunSettings::default();
    let run = RunSettings {
        cpu_model: raw.run.cpu_model.unwrap_or(defaults.cpu_model),
        cpus: raw.run.cpus.unwrap_or(defaults.cpus),
        timeout_secs: raw.run.timeout.unwrap_or(defaults.timeout_secs),
        memory_mib: raw.run.memory.unwrap_or(defaults.memory_mib),
    };
    run.check()
        .map_err(|e| Error::new(format!("{origin}: [run] {e}")))?;
    let timeslice = raw.run.timeslice.unwrap_or(0);
    validate_timeslice(timeslice).map_err(|_| {
        Error::new(format!(
            "{origin}: [run] `timeslice`: {timeslice} is outside {MIN_TIMESLICE}..={MAX_TIMESLICE} instructions (0 = the hypervisor's default)"
        ))
    })?;
    if raw.vm.is_empty() {
        return Err(Error::new(format!(
            "{origin}: no [[vm]] table (a manifest runs at least one VM)"
        )));
    }
    if raw.vm.len() > MAX_VMS as usize {
        return Err(Error::new(format!(
            "{origin}: {} VMs, at most {MAX_VMS} allowed",
            raw.vm.len()
        )));
    }
    let mut vms: Vec<VmConfig> = Vec::with_capacity(raw.vm.len());
    for raw_vm in raw.vm {
        for config in entry::expand(origin, raw_vm, vms.len())? {
            check_vm(origin, &config, vms.len() as u32, &vms, known_images)?;
            vms.push(config);
        }
    }
    let service = raw.run.mode == Some(raw::RawMode::Service);
    let mut holders = vms.iter().filter(|v| v.control);
    if let Some(first) = holders.next() {
        if !service {
            return Err(Error::new(format!(
                "{origin}: vm `{}`: field `caps`: `control` needs a service run ([run] mode = \"service\")",
                first.name
            )));
        }
        if let Some(second) = holders.next() {
            return Err(Error::new(format!(
                "{origin}: vm `{}`: field `caps`: `control` is already held by vm `{}` (one VM holds the control channel)",
                second.name, first.name
            )));
        }
    }
    let nics = nics::resolve(origin, &raw.nic, DEFAULT_POLL_CORE)?;
    let mut raw_links = raw.link;
    devices::link_nic_bindings(origin, &mut vms, &nics, &mut raw_links)?;
    let links = links::resolve(origin, &raw_links, &vms, &nics)?;
    let base = Path::new(origin).parent().unwrap_or(Path::new("."));
    let progress = |m: &str| eprintln!("{m}");
    let hooks = hooks::resolve(origin, base, &raw.hook, (&vms, &links, &nics), &progress)?;
    let bindings = devices::resolve(origin, &vms, &links, &nics)?;
    let blocks = blocks::resolve(origin, base, &raw.block, &vms, &bindings.blocks)?;
    Ok(Manifest {
        origin: origin.to_string(),
        run,
        timeslice,
        service: raw.run.mode == Some(raw::RawMode::Service),
        vms,
        links,
        nics,
        hooks,
        blocks,
        net_devices: bindings.nets,
    })
}

/// Checks VM `index` against vmm-abi's rules, the VMs before it (`earlier`)
/// and the images that exist.
fn check_vm(
    origin: &str,
    config: &VmConfig,
    index: u32,
    earlier: &[VmConfig],
    known_images: &[String],
) -> Result<()> {
    config
        .spec()
        .validate(index)
        .map_err(|e| vm_error(origin, &config.name, &e))?;
    if let Some(first) = earlier.iter().position(|o| o.name == config.name) {
        let e = ManifestError {
            vm: Some(index),
            field: Field::Name,
            problem: Problem::Duplicate {
                first: first as u32,
            },
        };
        return Err(vm_error(origin, &config.name, &e));
    }
    if let Some(path) = &config.image_file {
        // One module name, one file.
        if let Some(other) = earlier
            .iter()
            .find(|o| o.image == config.image && o.image_file.as_ref() != Some(path))
        {
            return Err(Error::new(format!(
                "{origin}: vm `{}`: field `image`: `{}` and vm `{}`'s image would both be module `{}`; rename one file",
                config.entry,
                path.display(),
                other.entry,
                config.image
            )));
        }
        return Ok(());
    }
    if !known_images.contains(&config.image) {
        return Err(Error::new(format!(
            "{origin}: vm `{}`: field `image`: no image named `{}` (known images: {})",
            config.entry,
            config.image,
            known_images.join(", ")
        )));
    }
    Ok(())
}

impl Manifest {
    /// The binary manifest the hypervisor reads.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let vms: Vec<VmSpec<'_>> = self.vms.iter().map(VmConfig::spec).collect();
        let links: Vec<LinkSpec> = self.links.iter().map(LinkConfig::spec).collect();
        let nics: Vec<NicSpec<'_>> = self.nics.iter().map(NicConfig::spec).collect();
        let bytes: Vec<_> = self.hooks.iter().map(HookConfig::bytes).collect();
        let hooks: Vec<_> = self
            .hooks
            .iter()
            .zip(&bytes)
            .map(|(h, b)| h.spec(b))
            .collect();
        let blocks: Vec<_> = self.blocks.iter().map(BlockConfig::spec).collect();
        let nets: Vec<_> = self.net_devices.iter().map(NetDeviceConfig::spec).collect();
        let mut out = vec![
            0;
            manifest::encoded_len_full(
                vms.len(),
                nics.len(),
                links.len(),
                &hooks,
                blocks.len(),
                nets.len()
            )
        ];
        let encoded = manifest::encode_full(
            self.timeslice,
            &vms,
            &nics,
            &links,
            &hooks,
            &blocks,
            &nets,
            &mut out,
        )
        .and_then(|()| {
            if self.service {
                manifest::mark_service(&mut out)
            } else {
                Ok(())
            }
        });
        encoded.map_err(|e| match e.place() {
            Place::Vm(i) if let Some(vm) = self.vms.get(i as usize) => {
                vm_error(&self.origin, &vm.name, &e)
            }
            Place::Nic(i) if let Some(nic) = self.nics.get(i as usize) => {
                Error::new(format!("{}: nic `{}`: {e}", self.origin, nic.name))
            }
            Place::Hook(i) if let Some(hook) = self.hooks.get(i as usize) => {
                Error::new(format!("{}: hook `{}`: {e}", self.origin, hook.name))
            }
            Place::Block(i) if let Some(block) = self.blocks.get(i as usize) => {
                Error::new(format!("{}: block `{}`: {e}", self.origin, block.name))
            }
            Place::NetDevice(i)
                if let Some(vm) = self
                    .net_devices
                    .get(i as usize)
                    .and_then(|d| self.vms.get(d.vm as usize)) =>
            {
                Error::new(format!(
                    "{}: vm `{}`: field `devices`: {e}",
                    self.origin, vm.entry
                ))
            }
            _ => Error::new(format!("{}: encoded manifest refused: {e}", self.origin)),
        })?;
        Ok(out)
    }

    /// The ELF file of image `name` if it was given by path.
    pub fn image_file(&self, name: &str) -> Option<&Path> {
        self.vms
            .iter()
            .find(|v| v.image == name)
            .and_then(|v| v.image_file.as_deref())
    }

    /// Each block device's module name, host file (`None`: blank) and
    /// bytes, for the ISO.
    pub fn disks(&self) -> Vec<(&str, Option<&Path>, u64)> {
        self.blocks
            .iter()
            .map(|b| (b.name.as_str(), b.file.as_deref(), b.capacity))
            .collect()
    }

    /// Each image the VMs use, once, in order of first use.
    pub fn images(&self) -> Vec<&str> {
        let mut images: Vec<&str> = Vec::new();
        for vm in &self.vms {
            if !images.contains(&vm.image.as_str()) {
                images.push(&vm.image);
            }
        }
        images
    }

    /// Checks that every core a VM is pinned to or a link or NIC is polled
    /// on exists on a machine with `cpus` CPUs, and that polling leaves a
    /// core for VMs; the error names the manifest entry, link or NIC and the
    /// core.
    pub fn check_cores(&self, cpus: u32) -> Result<()> {
        if self.service && cpus < 2 {
            return Err(Error::new(format!(
                "{}: [run] `mode = \"service\"` needs at least 2 CPUs (core 0 serves the control channel and runs no VMs); this run has {cpus}",
                self.origin
            )));
        }
        for vm in &self.vms {
            if let Some(&core) = vm.core_list().iter().find(|&&c| c >= cpus) {
                return Err(Error::new(format!(
                    "{}: vm `{}`: field `cores`: core {core} does not exist: this run has {cpus} CPU{}",
                    self.origin,
                    vm.entry,
                    if cpus == 1 { "" } else { "s" }
                )));
            }
        }
        for h in &self.hooks {
            if let manifest::HookAttach::Core { core } = h.target
                && core >= cpus
            {
                return Err(Error::new(format!(
                    "{}: hook `{}`: field `attach`: core {core} does not exist: this run has {cpus} CPU{}",
                    self.origin,
                    h.name,
                    if cpus == 1 { "" } else { "s" }
                )));
            }
        }
        links::check_cores(&self.origin, &self.links, &self.nics, cpus)
    }

    /// Per VM, the name of its restart hook, if it has one.
    pub fn restart_hooks(&self) -> Vec<Option<String>> {
        (0..self.vms.len())
            .map(|i| {
                self.hooks
                    .iter()
                    .find(|h| {
                        h.kind == vmm_abi::hook::HookKind::Restart
                            && h.target == manifest::HookAttach::Vm { vm: i as u32 }
                    })
                    .map(|h| h.name.clone())
            })
            .collect()
    }

    /// The widest VM name (at least that of the hypervisor's source).
    pub fn name_width(&self) -> usize {
        self.vms
            .iter()
            .map(|vm| vm.name.len())
            .chain([vmm_abi::report::HYPERVISOR_SOURCE.len()])
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod link_tests;

#[cfg(test)]
mod hook_tests;

#[cfg(test)]
mod nic_tests;

#[cfg(test)]
mod block_tests;

#[cfg(test)]
mod devices_tests;
