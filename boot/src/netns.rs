//! The host's network as the tap backend sees it: network namespaces that
//! `ip netns` names (`/run/netns/NAME`), the devices in them (asked of
//! `ip`), and commands run inside a namespace (`ip netns exec NAME ...`).
//!
//! `ip netns exec` enters the namespace and then replaces itself with the
//! program (`execvp`, no fork), so the child the tool spawns is the
//! program itself: killing it at the time bound kills the emulator.

use crate::toml_manifest::{DeviceState, HostNet, NETNS_DIR};
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// The program that manages namespaces and devices (Debian's iproute2).
pub const IP: &str = "ip";
/// The Debian package that provides it.
pub const IP_PACKAGE: &str = "iproute2";

/// A command that runs `program` in network namespace `netns`, or in the
/// tool's own namespace for `None`.
pub fn command(netns: Option<&str>, program: impl AsRef<OsStr>) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new(IP);
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// The arguments of `ip` that look at `device` in `netns` in detail.
pub fn link_show_args<'a>(netns: Option<&'a str>, device: &'a str) -> Vec<&'a str> {
    let mut args = Vec::new();
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["-d", "link", "show", "dev", device]);
    args
}

/// Reads `ip -d link show` of one device: a tap device says `tun type tap`
/// on its detail line; anything else is shown by that line (its third).
pub fn device_state(show: &str) -> DeviceState {
    if show.contains("tun type tap") {
        return DeviceState::Tap;
    }
    let detail = show
        .lines()
        .nth(2)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .unwrap_or("no `tun type tap`");
    DeviceState::Other(detail.to_string())
}

/// The real host: `/run/netns` and `ip`.
pub struct Host;

impl HostNet for Host {
    fn netns_exists(&self, name: &str) -> bool {
        Path::new(NETNS_DIR).join(name).exists()
    }

    fn device(&self, netns: Option<&str>, device: &str) -> Result<DeviceState, String> {
        let args = link_show_args(netns, device);
        let out = Command::new(IP)
            .args(&args)
            .output()
            .map_err(|e| format!("cannot run `{IP} {}`: {e}", args.join(" ")))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            Ok(device_state(&stdout))
        } else if stderr.contains("does not exist") {
            Ok(DeviceState::Missing)
        } else {
            let why = stderr.lines().rev().find(|l| !l.trim().is_empty());
            Err(format!(
                "`{IP} {}`: {}",
                args.join(" "),
                why.map_or_else(|| format!("exit status {}", out.status), str::to_string)
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_enter_the_namespace_only_when_asked() {
        let c = command(Some("corral-t1"), "bochs-bin");
        assert_eq!(c.get_program(), "ip");
        assert_eq!(
            c.get_args().collect::<Vec<_>>(),
            ["netns", "exec", "corral-t1", "bochs-bin"]
        );
        let c = command(None, "bochs-bin");
        assert_eq!(c.get_program(), "bochs-bin");
        assert_eq!(c.get_args().count(), 0);
    }

    #[test]
    fn link_show_names_the_namespace() {
        assert_eq!(
            link_show_args(Some("ns"), "t0"),
            ["-n", "ns", "-d", "link", "show", "dev", "t0"]
        );
        assert_eq!(
            link_show_args(None, "t0"),
            ["-d", "link", "show", "dev", "t0"]
        );
    }

    #[test]
    fn device_kinds_are_read_from_ip() {
        let tap = "2: ctap0: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN mode DEFAULT group default qlen 1000\n    link/ether ca:88:d1:cb:b8:00 brd ff:ff:ff:ff:ff:ff promiscuity 0  allmulti 0 minmtu 68 maxmtu 65521 \n    tun type tap pi off vnet_hdr off persist on addrgenmode eui64 numtxqueues 1\n";
        assert_eq!(device_state(tap), DeviceState::Tap);
        let tun = tap.replace("tun type tap", "tun type tun");
        assert_eq!(
            device_state(&tun),
            DeviceState::Other(
                "tun type tun pi off vnet_hdr off persist on addrgenmode eui64 numtxqueues 1"
                    .into()
            )
        );
        let lo = "1: lo: <LOOPBACK> mtu 65536\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n";
        assert_eq!(
            device_state(lo),
            DeviceState::Other("no `tun type tap`".into())
        );
    }

    #[test]
    fn the_host_answers() {
        let host = Host;
        assert!(!host.netns_exists("corral-no-such-namespace"));
        // `lo` exists in every namespace and is no tap; a made-up name is
        // missing (if `ip` is here at all).
        if crate::tools::find_in_path(IP).is_some() {
            assert!(matches!(host.device(None, "lo"), Ok(DeviceState::Other(_))));
            assert_eq!(host.device(None, "corral-nodev"), Ok(DeviceState::Missing));
        }
    }
}
