//! The manifest's NICs as Bochs e1000 cards: the `pci:` slot list, one
//! `e1000:` line per card and each slirp card's configuration file.
//!
//! Checked against Bochs 2.7 (see shared/PLATFORM.md, "Networking"): up to
//! four cards (`card=0..3`); the i440FX puts slot N at PCI 00:(N+1).0 and
//! fills the slots that name `e1000` with the cards in card order; the
//! slirp file's first line must be `# slirp config`, it takes at most 5
//! `hostfwd` rules of the form `proto:hostaddr:hostport-guestaddr:guestport`.

use crate::toml_manifest::{Backend, Forward, NicConfig, mac_text};
use std::path::{Path, PathBuf};

/// The host address every forward binds (never all interfaces).
pub const FORWARD_HOST: &str = "127.0.0.1";
/// The first line of a slirp configuration file Bochs accepts.
pub const SLIRP_HEADER: &str = "# slirp config";

/// How an emulated card reaches the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardBackend {
    /// Bochs's slirp, configured by the file at `script`.
    Slirp {
        /// The configuration file the tool writes.
        script: PathBuf,
        /// Its port forwards.
        forwards: Vec<Forward>,
    },
    /// A host tap device.
    Tap {
        /// Its name.
        device: String,
    },
}

/// One e1000 card of the emulated machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Card {
    /// Bochs's card number (0..=3).
    pub card: u8,
    /// The PCI slot it sits in (1..=4).
    pub slot: u8,
    /// Its MAC (in its EEPROM).
    pub mac: [u8; 6],
    /// Its backend.
    pub backend: CardBackend,
}

impl Card {
    /// The cards of `nics`, in card order; slirp files go into `dir`.
    pub fn for_nics(nics: &[NicConfig], dir: &Path) -> Vec<Card> {
        let mut cards: Vec<Card> = nics
            .iter()
            .map(|n| Card {
                card: n.card,
                slot: n.slot,
                mac: n.card_mac(),
                backend: match &n.backend {
                    Backend::Slirp { forwards } => CardBackend::Slirp {
                        script: dir.join(format!("slirp-{}.conf", n.card)),
                        forwards: forwards.clone(),
                    },
                    Backend::Tap { device, .. } => CardBackend::Tap {
                        device: device.clone(),
                    },
                },
            })
            .collect();
        cards.sort_by_key(|c| c.card);
        cards
    }

    /// Its `e1000:` bochsrc line.
    pub fn bochsrc_line(&self) -> String {
        let backend = match &self.backend {
            CardBackend::Slirp { script, .. } => {
                format!("ethmod=slirp, script={}", script.display())
            }
            CardBackend::Tap { device } => format!("ethmod=tuntap, ethdev=/dev/net/tun:{device}"),
        };
        format!(
            "e1000: card={}, enabled=1, mac={}, {backend}\n",
            self.card,
            mac_text(self.mac)
        )
    }
}

/// The `pci:` line: the i440FX with `e1000` in each card's slot.
pub fn pci_line(cards: &[Card]) -> String {
    let mut slots: Vec<u8> = cards.iter().map(|c| c.slot).collect();
    slots.sort_unstable();
    let named: String = slots.iter().map(|s| format!(", slot{s}=e1000")).collect();
    format!("pci: enabled=1, chipset=i440fx{named}\n")
}

/// The bochsrc lines for `cards`: the plugin and one line per card
/// (nothing without cards).
pub fn card_lines(cards: &[Card]) -> String {
    if cards.is_empty() {
        return String::new();
    }
    let mut text = "plugin_ctrl: e1000=1\n".to_string();
    for card in cards {
        text.push_str(&card.bochsrc_line());
    }
    text
}

/// A slirp card's configuration file: the header Bochs requires, then one
/// `hostfwd` per forward, host and guest addresses written out.
pub fn slirp_config(forwards: &[Forward]) -> String {
    let mut text =
        format!("{SLIRP_HEADER}\n# written by corral from the manifest's [[nic]] table\n");
    for f in forwards {
        text.push_str(&format!(
            "hostfwd = {}:{FORWARD_HOST}:{}-{}:{}\n",
            f.proto.name(),
            f.host,
            f.addr,
            f.guest
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toml_manifest::{DEFAULT_FORWARD_GUEST, Proto, slot_address};
    use vmm_abi::manifest::NicMode;

    fn nic(name: &str, card: u8, slot: u8, backend: Backend) -> NicConfig {
        NicConfig {
            name: name.into(),
            pci: slot_address(slot),
            mac: None,
            mode: NicMode::Shared,
            core: 0,
            backend,
            card,
            slot,
        }
    }

    #[test]
    fn cards_become_bochsrc_lines() {
        let forwards = vec![
            Forward {
                proto: Proto::Udp,
                host: 5555,
                addr: DEFAULT_FORWARD_GUEST,
                guest: 7,
            },
            Forward {
                proto: Proto::Tcp,
                host: 8080,
                addr: DEFAULT_FORWARD_GUEST,
                guest: 80,
            },
        ];
        let nics = [
            NicConfig {
                mac: Some([0x52, 0x54, 0, 0xab, 0xcd, 0xef]),
                ..nic(
                    "lan",
                    1,
                    3,
                    Backend::Tap {
                        device: "corral0".into(),
                        netns: Some("corral-t1".into()),
                    },
                )
            },
            nic(
                "up",
                0,
                1,
                Backend::Slirp {
                    forwards: forwards.clone(),
                },
            ),
        ];
        let cards = Card::for_nics(&nics, Path::new("/r"));
        assert_eq!(cards[0].card, 0);
        assert_eq!(
            cards[0].backend,
            CardBackend::Slirp {
                script: "/r/slirp-0.conf".into(),
                forwards
            }
        );
        assert_eq!(
            pci_line(&cards),
            "pci: enabled=1, chipset=i440fx, slot1=e1000, slot3=e1000\n"
        );
        assert_eq!(
            card_lines(&cards),
            "plugin_ctrl: e1000=1\n\
             e1000: card=0, enabled=1, mac=52:54:00:12:34:50, ethmod=slirp, script=/r/slirp-0.conf\n\
             e1000: card=1, enabled=1, mac=52:54:00:ab:cd:ef, ethmod=tuntap, ethdev=/dev/net/tun:corral0\n"
        );
        assert_eq!(pci_line(&[]), "pci: enabled=1, chipset=i440fx\n");
        assert_eq!(card_lines(&[]), "");
    }

    #[test]
    fn slirp_files_start_with_the_header_and_bind_loopback() {
        let text = slirp_config(&[
            Forward {
                proto: Proto::Udp,
                host: 5555,
                addr: DEFAULT_FORWARD_GUEST,
                guest: 7,
            },
            Forward {
                proto: Proto::Tcp,
                host: 8080,
                addr: DEFAULT_FORWARD_GUEST,
                guest: 80,
            },
        ]);
        assert_eq!(
            text,
            "# slirp config\n\
             # written by corral from the manifest's [[nic]] table\n\
             hostfwd = udp:127.0.0.1:5555-10.0.2.15:7\n\
             hostfwd = tcp:127.0.0.1:8080-10.0.2.15:80\n"
        );
        assert_eq!(text.lines().next(), Some(SLIRP_HEADER));
        assert_eq!(slirp_config(&[]).lines().count(), 2);
    }
}
