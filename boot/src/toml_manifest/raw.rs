//! The manifest as TOML spells it: the serde model (unknown keys refused),
//! byte sizes such as `"256K"`, and TOML errors turned into `file:line:col`
//! messages.

use crate::error::Error;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManifest {
    #[serde(default)]
    pub run: RawRun,
    #[serde(default)]
    pub vm: Vec<RawVm>,
    #[serde(default)]
    pub link: Vec<RawLink>,
    #[serde(default)]
    pub nic: Vec<RawNic>,
    #[serde(default)]
    pub hook: Vec<RawHook>,
    #[serde(default)]
    pub block: Vec<RawBlock>,
}

/// A `[[block]]` table: a disk image a VM reads and writes in blocks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBlock {
    pub name: String,
    /// The disk image's host file (or `size` for a blank disk).
    pub file: Option<String>,
    pub size: Option<MemorySize>,
    pub block_size: Option<u32>,
    pub persist: Option<bool>,
}

/// A `[[hook]]` table: an operator's eBPF program and where it runs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHook {
    pub name: String,
    pub kind: String,
    pub attach: String,
    pub source: Option<String>,
    pub object: Option<String>,
    pub program: Option<String>,
    pub engine: Option<RawEngine>,
}

/// `engine = "jit" | "interpreter"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawEngine {
    Jit,
    Interpreter,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRun {
    pub cpu_model: Option<String>,
    pub cpus: Option<u32>,
    pub timeout: Option<u64>,
    pub memory: Option<u32>,
    pub timeslice: Option<u64>,
    pub mode: Option<RawMode>,
}

/// `mode = "batch" | "service"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawMode {
    Batch,
    Service,
}

/// A VM's image: a binary of the `images` crate by name, or an ELF file by
/// path (`{ elf = "path/to/app.hvt" }`, relative to the manifest).
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawImage {
    Name(String),
    File(RawImageFile),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawImageFile {
    pub elf: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVm {
    pub name: String,
    pub image: RawImage,
    pub cores: Option<Vec<u32>>,
    pub count: Option<u32>,
    pub memory: Option<MemorySize>,
    #[serde(default)]
    pub args: String,
    #[serde(default)]
    pub budget: u64,
    pub restart: Option<RawRestart>,
    pub restart_limit: Option<u32>,
    /// Virtio-net ports.
    #[serde(default)]
    pub net: u8,
    /// Whether it has a virtio-console.
    #[serde(default)]
    pub console: bool,
    /// Capabilities granted (`"control"`).
    #[serde(default)]
    pub caps: Vec<String>,
    /// Devices its Solo5 manifest declares, by name → what they are
    /// (`"block:NAME"`, `"net:N"`).
    pub devices: Option<BTreeMap<String, String>>,
    pub expect: Option<String>,
    /// Clone index (a TOML key, so text) → expectation for that clone.
    pub expect_clone: Option<BTreeMap<String, String>>,
}

/// A `[[link]]` table: two net ports (`"<vm>.<port>"`) and the core that
/// polls them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLink {
    pub a: String,
    pub b: String,
    pub core: Option<u32>,
    pub hold: Option<u64>,
    pub bridge: Option<bool>,
}

/// A `[[nic]]` table: a physical NIC (an emulated e1000 card) and its
/// emulator backend.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNic {
    pub name: String,
    pub pci: Option<String>,
    pub mac: Option<String>,
    pub mode: Option<RawNicMode>,
    pub core: Option<u32>,
    pub backend: Option<RawBackend>,
    pub forward: Option<Vec<String>>,
    pub tap: Option<String>,
    pub netns: Option<String>,
}

/// `mode = "shared" | "owned"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawNicMode {
    Shared,
    Owned,
}

/// `backend = "slirp" | "tap"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawBackend {
    Slirp,
    Tap,
}

/// `restart = "never" | "on-failure"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawRestart {
    Never,
    OnFailure,
}

/// A byte count written as an integer or as a string such as `"256K"`.
pub(super) struct MemorySize(pub u64);

impl<'de> Deserialize<'de> for MemorySize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Size;
        impl Visitor<'_> for Size {
            type Value = MemorySize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte count or a size such as \"256K\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<MemorySize, E> {
                Ok(MemorySize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<MemorySize, E> {
                u64::try_from(v)
                    .map(MemorySize)
                    .map_err(|_| E::custom(format!("memory size {v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<MemorySize, E> {
                parse_size(v).map(MemorySize).ok_or_else(|| {
                    E::custom(format!(
                        "memory size \"{v}\" is not a byte count or a number with a K, M or G suffix"
                    ))
                })
            }
        }
        d.deserialize_any(Size)
    }
}

/// Parses `4096`, `64K`, `2M`, `1G` (also `2MiB`, `2m`): binary multiples.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let (number, suffix) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let shift = match suffix.trim_start().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return None,
    };
    number.checked_mul(1u64 << shift)
}

/// The 1-based line and column of byte `offset` in `text`.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset.min(text.len()))];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// A TOML syntax or shape error as `origin:line:col: message`.
pub(super) fn toml_error(origin: &str, text: &str, e: &toml::de::Error) -> Error {
    let message = e.message().trim().replace('\n', "; ");
    match e.span() {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            Error::new(format!("{origin}:{line}:{col}: {message}"))
        }
        None => Error::new(format!("{origin}: {message}")),
    }
}
