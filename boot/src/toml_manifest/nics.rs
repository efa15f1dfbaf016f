//! `[[nic]]` tables: a physical NIC the hypervisor drives (in the emulator,
//! an e1000 card the tool adds to the machine) and how the emulator
//! connects it to the host (slirp with port forwards, or a tap device,
//! perhaps in a network namespace the emulator then runs in).
//! Every field is checked here, with errors that name the file, the NIC
//! and the field; each NIC also gets its emulator slot, so `pci = "auto"`
//! becomes the concrete address the binary manifest carries.

use super::raw::{RawBackend, RawNic, RawNicMode};
use crate::error::{Error, Result};
use std::fmt;
use std::net::Ipv4Addr;
use vmm_abi::manifest::{MAX_CORES, MAX_NICS, NicMode, NicPci, NicSpec, PciAddress, is_unicast};

/// Most `forward` rules per NIC (Bochs's slirp takes at most 5 `hostfwd`).
pub const MAX_FORWARDS: usize = 5;
/// Longest tap device name (Linux's `IFNAMSIZ` less its NUL).
pub const MAX_TAP_NAME: usize = 15;
/// Longest network namespace name the manifest takes.
pub const MAX_NETNS_NAME: usize = 15;
/// Where `ip netns` keeps the namespaces it names.
pub const NETNS_DIR: &str = "/run/netns";
/// PCI slots the emulated machine has for e1000 cards (`slot1`..`slot4`).
pub const EMULATED_SLOTS: u8 = MAX_NICS as u8;

/// The PCI address Bochs's i440FX gives the card in slot `slot` (1-based):
/// bus 0, device `slot + 1`, function 0 (its `map_slot_to_dev` is 2).
pub const fn slot_address(slot: u8) -> PciAddress {
    PciAddress {
        bus: 0,
        device: slot + 1,
        function: 0,
    }
}

/// The MAC the tool gives emulated card `card` when its NIC sets none.
pub const fn generated_mac(card: u8) -> [u8; 6] {
    [0x52, 0x54, 0x00, 0x12, 0x34, 0x50 + card]
}

/// A MAC as `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// A transport protocol of a port forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl Proto {
    /// Its name in manifests and in slirp's `hostfwd`.
    pub const fn name(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// One slirp port forward: the host's 127.0.0.1:`host` to port `guest`
/// of the guest at `addr` on slirp's network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    /// Protocol.
    pub proto: Proto,
    /// Port on the host's 127.0.0.1.
    pub host: u16,
    /// The guest's address ([`DEFAULT_FORWARD_GUEST`] unless written).
    pub addr: Ipv4Addr,
    /// Port on the guest.
    pub guest: u16,
}

/// The guest a forward reaches unless it names one: slirp's first guest.
pub const DEFAULT_FORWARD_GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:", self.proto.name(), self.host)?;
        if self.addr != DEFAULT_FORWARD_GUEST {
            write!(f, "{}:", self.addr)?;
        }
        write!(f, "{}", self.guest)
    }
}

/// How the emulator connects a NIC to the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Bochs's user-mode network stack, with these port forwards.
    Slirp {
        /// Host-to-guest port forwards.
        forwards: Vec<Forward>,
    },
    /// A tap device of the host (needs root).
    Tap {
        /// Its name.
        device: String,
        /// The network namespace it lives in, which the emulator then
        /// runs in (`None`: the tool's own).
        netns: Option<String>,
    },
}

/// One NIC of the manifest, checked and given its emulator card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NicConfig {
    /// Unique NIC name.
    pub name: String,
    /// Its PCI address: as written, or the one its card gets for `auto`.
    pub pci: PciAddress,
    /// The MAC the manifest sets (`None`: the card's own).
    pub mac: Option<[u8; 6]>,
    /// Data mode.
    pub mode: NicMode,
    /// The core that polls it.
    pub core: u32,
    /// The emulator backend.
    pub backend: Backend,
    /// The emulated card (Bochs's `card=`, 0-based, in slot order).
    pub card: u8,
    /// Its PCI slot (1-based).
    pub slot: u8,
}

impl NicConfig {
    /// The vmm-abi working type for this NIC (always a concrete address:
    /// the tool made the card).
    pub fn spec(&self) -> NicSpec<'_> {
        NicSpec {
            name: &self.name,
            pci: NicPci::At(self.pci),
            mac: self.mac,
            mode: self.mode,
            core: self.core,
        }
    }

    /// The MAC the card has: the manifest's, or the one the tool gives it.
    pub fn card_mac(&self) -> [u8; 6] {
        self.mac.unwrap_or(generated_mac(self.card))
    }
}

/// Parses `"BB:DD.F"` (hexadecimal; `lspci`'s form).
pub fn parse_pci(text: &str) -> Option<PciAddress> {
    let (bus, rest) = text.split_once(':')?;
    let (device, function) = rest.split_once('.')?;
    let hex = |t: &str, digits: usize| {
        (t.len() == digits && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u8::from_str_radix(t, 16).ok())
            .flatten()
    };
    let a = PciAddress {
        bus: hex(bus, 2)?,
        device: hex(device, 2)?,
        function: hex(function, 1)?,
    };
    a.is_valid().then_some(a)
}

/// Parses `"52:54:00:12:34:56"`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Parses `"udp:5555:7"` (proto:hostport:guestport) or
/// `"tcp:8080:10.0.2.16:80"` (proto:hostport:guestaddr:guestport).
fn parse_forward(text: &str) -> std::result::Result<Forward, String> {
    let shape = || {
        format!(
            "`{text}` is not `proto:hostport:[guestaddr:]guestport` (such as `udp:5555:7` or `tcp:8080:10.0.2.16:80`)"
        )
    };
    let parts: Vec<&str> = text.split(':').collect();
    let (proto, host, addr, guest) = match parts[..] {
        [proto, host, guest] => (proto, host, None, guest),
        [proto, host, addr, guest] => (proto, host, Some(addr), guest),
        _ => return Err(shape()),
    };
    let addr = match addr {
        None => DEFAULT_FORWARD_GUEST,
        Some(a) => a
            .parse::<Ipv4Addr>()
            .ok()
            .filter(|ip| ip.octets()[..3] == DEFAULT_FORWARD_GUEST.octets()[..3])
            .ok_or_else(|| {
                format!("`{text}`: guest address `{a}` is not an address on slirp's 10.0.2.0/24")
            })?,
    };
    let proto = match proto {
        "udp" => Proto::Udp,
        "tcp" => Proto::Tcp,
        other => {
            return Err(format!(
                "`{text}`: protocol `{other}` is neither udp nor tcp"
            ));
        }
    };
    let port = |t: &str, which: &str| {
        let n: u32 = t
            .parse()
            .ok()
            .filter(|_| t.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(shape)?;
        u16::try_from(n)
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("`{text}`: {which} port {n} is outside 1..=65535"))
    };
    Ok(Forward {
        proto,
        host: port(host, "host")?,
        addr,
        guest: port(guest, "guest")?,
    })
}

/// Whether `name` is 1..=`max` bytes of letters, digits, `_`, `.` and `-`,
/// and not `.` or `..` (so it cannot break the bochsrc line, a command line
/// or a path).
fn is_plain_name(name: &str, max: usize) -> bool {
    (1..=max).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether `name` can be a tap device here.
fn is_tap_name(name: &str) -> bool {
    is_plain_name(name, MAX_TAP_NAME)
}

/// Whether `name` can be a network namespace here.
fn is_netns_name(name: &str) -> bool {
    is_plain_name(name, MAX_NETNS_NAME)
}

/// The backend of one `[[nic]]` table.
fn backend(raw: &RawNic, fail: &dyn Fn(&str, String) -> Error) -> Result<Backend> {
    match raw.backend.unwrap_or(RawBackend::Slirp) {
        RawBackend::Slirp => {
            if raw.tap.is_some() {
                return Err(fail(
                    "tap",
                    "only with `backend = \"tap\"` (this NIC uses slirp)".to_string(),
                ));
            }
            if raw.netns.is_some() {
                return Err(fail(
                    "netns",
                    "only with `backend = \"tap\"` (it names the network namespace of the tap device; this NIC uses slirp)"
                        .to_string(),
                ));
            }
            let list = raw.forward.as_deref().unwrap_or_default();
            if list.len() > MAX_FORWARDS {
                return Err(fail(
                    "forward",
                    format!(
                        "{} rules, at most {MAX_FORWARDS} per NIC (Bochs's slirp takes {MAX_FORWARDS})",
                        list.len()
                    ),
                ));
            }
            let mut forwards: Vec<Forward> = Vec::with_capacity(list.len());
            for text in list {
                let f = parse_forward(text).map_err(|e| fail("forward", e))?;
                if let Some(earlier) = forwards
                    .iter()
                    .find(|o| o.proto == f.proto && o.host == f.host)
                {
                    return Err(fail(
                        "forward",
                        format!(
                            "`{f}` forwards {} host port {} again (already `{earlier}`)",
                            f.proto.name(),
                            f.host
                        ),
                    ));
                }
                forwards.push(f);
            }
            Ok(Backend::Slirp { forwards })
        }
        RawBackend::Tap => {
            if raw.forward.is_some() {
                return Err(fail(
                    "forward",
                    "only with the slirp backend (a tap device is reached at its own address)"
                        .to_string(),
                ));
            }
            let Some(device) = &raw.tap else {
                return Err(fail(
                    "tap",
                    "missing: `backend = \"tap\"` needs `tap = \"<device>\"`".to_string(),
                ));
            };
            if !is_tap_name(device) {
                return Err(fail(
                    "tap",
                    format!(
                        "`{device}` is not a tap device name (1..={MAX_TAP_NAME} of A-Z a-z 0-9 _ . -, not `.` or `..`)"
                    ),
                ));
            }
            if let Some(ns) = &raw.netns
                && !is_netns_name(ns)
            {
                return Err(fail(
                    "netns",
                    format!(
                        "`{ns}` is not a network namespace name (1..={MAX_NETNS_NAME} of A-Z a-z 0-9 _ . -, not `.` or `..`)"
                    ),
                ));
            }
            Ok(Backend::Tap {
                device: device.clone(),
                netns: raw.netns.clone(),
            })
        }
    }
}

/// What one table says before the cards are placed.
struct Parsed {
    name: String,
    pci: NicPci,
    mac: Option<[u8; 6]>,
    mode: NicMode,
    core: u32,
    backend: Backend,
}

/// Checks every `[[nic]]` table, then gives each NIC its card: a NIC with
/// an address gets that slot, the others the free slots in manifest order;
/// cards are numbered in slot order (Bochs fills the e1000 slots with its
/// cards in card order).
pub(super) fn resolve(origin: &str, raw: &[RawNic], default_core: u32) -> Result<Vec<NicConfig>> {
    if raw.len() > MAX_NICS as usize {
        return Err(Error::new(format!(
            "{origin}: {} NICs, at most {MAX_NICS} allowed (the emulator has {MAX_NICS} e1000 cards)",
            raw.len()
        )));
    }
    let mut parsed: Vec<Parsed> = Vec::with_capacity(raw.len());
    for r in raw {
        let fail = |field: &str, e: String| {
            Error::new(format!("{origin}: nic `{}`: field `{field}`: {e}", r.name))
        };
        let spec_err = |e: vmm_abi::manifest::ManifestError| {
            Error::new(format!("{origin}: nic `{}`: {e}", r.name))
        };
        let pci = match r.pci.as_deref() {
            None | Some("auto") => NicPci::Auto,
            Some(text) => {
                let a = parse_pci(text).ok_or_else(|| {
                    fail(
                        "pci",
                        format!(
                            "`{text}` is not `auto` or a PCI address `BB:DD.F` (hexadecimal, device 00..1f, function 0..7, such as `00:02.0`)"
                        ),
                    )
                })?;
                let slots = (1..=EMULATED_SLOTS)
                    .map(|s| slot_address(s).to_string())
                    .collect::<Vec<_>>();
                if !(1..=EMULATED_SLOTS).any(|s| slot_address(s) == a) {
                    return Err(fail(
                        "pci",
                        format!(
                            "`{text}`: the emulated machine has e1000 cards only at {} (or say `auto`)",
                            slots.join(", ")
                        ),
                    ));
                }
                NicPci::At(a)
            }
        };
        let mac = match &r.mac {
            None => None,
            Some(text) => {
                let mac = parse_mac(text).ok_or_else(|| {
                    fail(
                        "mac",
                        format!(
                            "`{text}` is not a MAC `aa:bb:cc:dd:ee:ff` (six hexadecimal bytes, such as `52:54:00:12:34:56`)"
                        ),
                    )
                })?;
                if mac == [0; 6] || !is_unicast(mac) {
                    return Err(fail(
                        "mac",
                        format!(
                            "`{text}` is not a unicast MAC (all zero, or the low bit of the first byte set); leave `mac` out for the card's own"
                        ),
                    ));
                }
                Some(mac)
            }
        };
        let mode = match r.mode.unwrap_or(RawNicMode::Shared) {
            RawNicMode::Shared => NicMode::Shared,
            RawNicMode::Owned => NicMode::Owned,
        };
        let core = r.core.unwrap_or(default_core);
        if core >= MAX_CORES {
            return Err(fail(
                "core",
                format!(
                    "core {core} is outside 0..={} (a manifest can name {MAX_CORES} cores)",
                    MAX_CORES - 1
                ),
            ));
        }
        let backend = backend(r, &fail)?;
        let p = Parsed {
            name: r.name.clone(),
            pci,
            mac,
            mode,
            core,
            backend,
        };
        let i = parsed.len() as u32;
        NicSpec {
            name: &p.name,
            pci: p.pci,
            mac: p.mac,
            mode: p.mode,
            core: p.core,
        }
        .validate(i)
        .map_err(spec_err)?;
        if let Some(first) = parsed.iter().find(|o| o.name == p.name) {
            return Err(fail(
                "name",
                format!(
                    "another NIC is named `{}`; NIC names are unique",
                    first.name
                ),
            ));
        }
        if let (NicPci::At(a), Some(first)) = (
            p.pci,
            parsed
                .iter()
                .find(|o| o.pci == p.pci && p.pci != NicPci::Auto),
        ) {
            return Err(fail(
                "pci",
                format!("NIC `{}` is at {a} already", first.name),
            ));
        }
        if let (Some(mac), Some(first)) = (
            p.mac,
            parsed.iter().find(|o| o.mac == p.mac && p.mac.is_some()),
        ) {
            return Err(fail(
                "mac",
                format!("NIC `{}` has {} already", first.name, mac_text(mac)),
            ));
        }
        if let Backend::Slirp { forwards } = &p.backend {
            for f in forwards {
                let clash = parsed.iter().find(|o| match &o.backend {
                    Backend::Slirp { forwards } => forwards
                        .iter()
                        .any(|g| g.proto == f.proto && g.host == f.host),
                    Backend::Tap { .. } => false,
                });
                if let Some(other) = clash {
                    return Err(fail(
                        "forward",
                        format!(
                            "`{f}`: NIC `{}` forwards {} host port {} already",
                            other.name,
                            f.proto.name(),
                            f.host
                        ),
                    ));
                }
            }
        }
        if let Backend::Tap { device, netns } = &p.backend {
            if let Some(other) = parsed
                .iter()
                .find(|o| matches!(&o.backend, Backend::Tap { device: d, .. } if d == device))
            {
                return Err(fail(
                    "tap",
                    format!("NIC `{}` uses tap device `{device}` already", other.name),
                ));
            }
            // The emulator runs in one namespace: every tap NIC names the
            // same one, or none does.
            let other = parsed.iter().find_map(|o| match &o.backend {
                Backend::Tap { netns: theirs, .. } if theirs != netns => Some((o, theirs)),
                _ => None,
            });
            if let Some((other, theirs)) = other {
                let said = |ns: &Option<String>| {
                    ns.as_ref()
                        .map_or_else(|| "none".to_string(), |n| format!("`{n}`"))
                };
                return Err(fail(
                    "netns",
                    format!(
                        "{}, but tap NIC `{}` names {}; the emulator runs in one network namespace, so every tap NIC names the same one or none does",
                        netns
                            .as_ref()
                            .map_or_else(|| "left out".to_string(), |n| format!("`{n}`")),
                        other.name,
                        said(theirs)
                    ),
                ));
            }
        }
        parsed.push(p);
    }
    place_cards(origin, parsed)
}

/// Gives each NIC a slot and a card, and checks that no generated MAC is
/// one another NIC sets.
fn place_cards(origin: &str, parsed: Vec<Parsed>) -> Result<Vec<NicConfig>> {
    let mut slots: Vec<Option<u8>> = parsed
        .iter()
        .map(|p| match p.pci {
            NicPci::At(a) => Some(a.device - 1),
            NicPci::Auto => None,
        })
        .collect();
    let taken = slots.clone();
    let mut free = (1..=EMULATED_SLOTS).filter(|s| !taken.contains(&Some(*s)));
    for slot in &mut slots {
        if slot.is_none() {
            // At most four NICs, four slots: one is always free.
            *slot = free.next();
        }
    }
    let mut order: Vec<u8> = slots.iter().flatten().copied().collect();
    order.sort_unstable();
    let mut nics = Vec::with_capacity(parsed.len());
    for (p, slot) in parsed.into_iter().zip(slots) {
        let slot = slot.ok_or_else(|| Error::new("internal: a NIC without a slot"))?;
        let card = order.iter().position(|&s| s == slot).unwrap_or(0) as u8;
        nics.push(NicConfig {
            name: p.name,
            pci: slot_address(slot),
            mac: p.mac,
            mode: p.mode,
            core: p.core,
            backend: p.backend,
            card,
            slot,
        });
    }
    for nic in nics.iter().filter(|n| n.mac.is_none()) {
        let mac = nic.card_mac();
        if let Some(other) = nics.iter().find(|o| o.mac == Some(mac)) {
            return Err(Error::new(format!(
                "{origin}: nic `{}`: field `mac`: {} is the MAC the tool gives NIC `{}` (it sets no `mac`); choose another",
                other.name,
                mac_text(mac),
                nic.name
            )));
        }
    }
    Ok(nics)
}

/// Whether this process runs as root: the real user ID on the `Uid:` line
/// of `/proc/self/status` is 0 (`None` if that cannot be read).
pub fn running_as_root() -> Option<bool> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    let uid: u32 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(uid == 0)
}

/// Refuses a tap backend unless `root`: only root can open a tap device.
pub fn check_backends(origin: &str, nics: &[NicConfig], root: bool) -> Result<()> {
    for nic in nics {
        if let Backend::Tap { device, .. } = &nic.backend
            && !root
        {
            return Err(Error::new(format!(
                "{origin}: nic `{}`: field `backend`: the tap backend (device `{device}`) needs root, and this tool is not running as root; run it as root or use `backend = \"slirp\"`",
                nic.name
            )));
        }
    }
    Ok(())
}

/// The network namespace the emulator runs in: the one the tap NICs name
/// (they all name the same one, or none does), if any.
pub fn emulator_netns(nics: &[NicConfig]) -> Option<&str> {
    nics.iter().find_map(|n| match &n.backend {
        Backend::Tap { netns, .. } => netns.as_deref(),
        Backend::Slirp { .. } => None,
    })
}

/// What the host says about a tap NIC's device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceState {
    /// No device of that name.
    Missing,
    /// A tap device.
    Tap,
    /// A device of another kind; its `ip -d link show` detail line.
    Other(String),
}

/// Questions about the host's network the checks before boot ask (the
/// real answers come from `/run/netns` and `ip`; tests give their own).
pub trait HostNet {
    /// Whether network namespace `name` exists.
    fn netns_exists(&self, name: &str) -> bool;
    /// The device `device` in namespace `netns` (`None`: the tool's own).
    fn device(&self, netns: Option<&str>, device: &str)
    -> std::result::Result<DeviceState, String>;
}

/// Checks that each tap NIC's namespace and device exist and that the
/// device is a tap; the errors name the NIC and the field and say what to
/// run to create what is missing.
pub fn check_tap_devices(origin: &str, nics: &[NicConfig], host: &dyn HostNet) -> Result<()> {
    for nic in nics {
        let Backend::Tap { device, netns } = &nic.backend else {
            continue;
        };
        let fail = |field: &str, e: String| {
            Error::new(format!(
                "{origin}: nic `{}`: field `{field}`: {e}",
                nic.name
            ))
        };
        let (ip, place) = match netns {
            Some(ns) => (format!("ip -n {ns}"), format!("network namespace `{ns}`")),
            None => (
                "ip".to_string(),
                "this host's network namespace".to_string(),
            ),
        };
        let steps = format!(
            "`{ip} tuntap add dev {device} mode tap`, then give it an address and bring it up (`{ip} addr add 10.0.9.1/24 dev {device}`, `{ip} link set {device} up`)"
        );
        if let Some(ns) = netns
            && !host.netns_exists(ns)
        {
            return Err(fail(
                "netns",
                format!(
                    "no network namespace `{ns}` ({NETNS_DIR}/{ns} does not exist); create it with `ip netns add {ns}` and the tap device in it with {steps}"
                ),
            ));
        }
        match host.device(netns.as_deref(), device) {
            Ok(DeviceState::Tap) => {}
            Ok(DeviceState::Missing) => {
                return Err(fail(
                    "tap",
                    format!("no device `{device}` in {place}; create it with {steps}"),
                ));
            }
            Ok(DeviceState::Other(detail)) => {
                return Err(fail(
                    "tap",
                    format!(
                        "`{device}` in {place} is not a tap device (`{ip} -d link show {device}`: `{detail}`); name a tap device (`{ip} tuntap add dev NAME mode tap` makes one)"
                    ),
                ));
            }
            Err(e) => {
                return Err(fail(
                    "tap",
                    format!("cannot look for device `{device}` in {place}: {e}"),
                ));
            }
        }
    }
    Ok(())
}
