//! The TOML manifest a user writes: its serde model, its checks (every error
//! names the file and, where it can, the line or the VM and field), and its
//! translation to the binary manifest of `vmm_abi::manifest`.

use crate::bochs;
use crate::error::{Error, Result};
use crate::expect::Expectation;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::path::Path;
use vmm_abi::manifest::{
    self, Field, MAX_VMS, ManifestError, Problem, RECORD_SIZE, VmSpec, encode_header,
};

/// Default Bochs CPU model.
pub const DEFAULT_CPU_MODEL: &str = "corei7_icelake_u";
/// Default wall-clock bound for the emulator, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 120;
/// Default emulated machine memory, in MiB.
pub const DEFAULT_MACHINE_MIB: u32 = 256;
/// Default guest memory, in bytes.
pub const DEFAULT_VM_MEMORY: u64 = 2 << 20;
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

/// One VM of the manifest, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// Unique name.
    pub name: String,
    /// Image (a binary of the `images` crate).
    pub image: String,
    /// Core to pin it to.
    pub core: u32,
    /// Guest memory in bytes.
    pub memory: u64,
    /// Argument string.
    pub args: String,
    /// Guest-instruction budget (0 = none).
    pub budget: u64,
    /// How it should end.
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
            core: self.core,
        }
    }
}

/// A checked manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Where it came from, as shown in messages.
    pub origin: String,
    /// Machine settings.
    pub run: RunSettings,
    /// The VMs, in order.
    pub vms: Vec<VmConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    run: RawRun,
    #[serde(default)]
    vm: Vec<RawVm>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRun {
    cpu_model: Option<String>,
    cpus: Option<u32>,
    timeout: Option<u64>,
    memory: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVm {
    name: String,
    image: String,
    #[serde(default)]
    core: u32,
    memory: Option<MemorySize>,
    #[serde(default)]
    args: String,
    #[serde(default)]
    budget: u64,
    expect: Option<String>,
}

/// A byte count written as an integer or as a string such as `"2M"`.
struct MemorySize(u64);

impl<'de> Deserialize<'de> for MemorySize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Size;
        impl Visitor<'_> for Size {
            type Value = MemorySize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte count or a size such as \"2M\"")
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
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset.min(text.len()))];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn toml_error(origin: &str, text: &str, e: &toml::de::Error) -> Error {
    let message = e.message().trim().replace('\n', "; ");
    match e.span() {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            Error::new(format!("{origin}:{line}:{col}: {message}"))
        }
        None => Error::new(format!("{origin}: {message}")),
    }
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
    let raw: RawManifest = toml::from_str(text).map_err(|e| toml_error(origin, text, &e))?;
    let defaults = RunSettings::default();
    let run = RunSettings {
        cpu_model: raw.run.cpu_model.unwrap_or(defaults.cpu_model),
        cpus: raw.run.cpus.unwrap_or(defaults.cpus),
        timeout_secs: raw.run.timeout.unwrap_or(defaults.timeout_secs),
        memory_mib: raw.run.memory.unwrap_or(defaults.memory_mib),
    };
    run.check()
        .map_err(|e| Error::new(format!("{origin}: [run] {e}")))?;
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
    for (i, vm) in raw.vm.into_iter().enumerate() {
        let index = i as u32;
        let expect = match vm.expect {
            None => Expectation::default(),
            Some(text) => Expectation::parse(&text).map_err(|e| {
                Error::new(format!("{origin}: vm `{}`: field `expect`: {e}", vm.name))
            })?,
        };
        let config = VmConfig {
            name: vm.name,
            image: vm.image,
            core: vm.core,
            memory: vm.memory.map_or(DEFAULT_VM_MEMORY, |m| m.0),
            args: vm.args,
            budget: vm.budget,
            expect,
        };
        config
            .spec()
            .validate(index)
            .map_err(|e| vm_error(origin, &config.name, &e))?;
        if let Some(first) = vms.iter().position(|o| o.name == config.name) {
            let e = ManifestError {
                vm: Some(index),
                field: Field::Name,
                problem: Problem::Duplicate {
                    first: first as u32,
                },
            };
            return Err(vm_error(origin, &config.name, &e));
        }
        if !known_images.contains(&config.image) {
            return Err(Error::new(format!(
                "{origin}: vm `{}`: field `image`: no image named `{}` (known images: {})",
                config.name,
                config.image,
                known_images.join(", ")
            )));
        }
        vms.push(config);
    }
    Ok(Manifest {
        origin: origin.to_string(),
        run,
        vms,
    })
}

impl Manifest {
    /// The binary manifest the hypervisor reads.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(manifest::HEADER_SIZE + self.vms.len() * RECORD_SIZE);
        out.extend_from_slice(&encode_header(self.vms.len() as u32));
        for (i, vm) in self.vms.iter().enumerate() {
            let record = vm
                .spec()
                .encode(i as u32)
                .map_err(|e| vm_error(&self.origin, &vm.name, &e))?;
            out.extend_from_slice(&record);
        }
        manifest::Manifest::parse(&out)
            .map_err(|e| Error::new(format!("{}: encoded manifest refused: {e}", self.origin)))?;
        Ok(out)
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

    /// Checks that every VM's core exists on a machine with `cpus` CPUs.
    pub fn check_cores(&self, cpus: u32) -> Result<()> {
        match self.vms.iter().find(|vm| vm.core >= cpus) {
            Some(vm) => Err(Error::new(format!(
                "{}: vm `{}`: field `core`: core {} does not exist on a machine with {cpus} CPU{}",
                self.origin,
                vm.name,
                vm.core,
                if cpus == 1 { "" } else { "s" }
            ))),
            None => Ok(()),
        }
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
mod tests {
    use super::*;

    fn images() -> Vec<String> {
        ["hello", "escape", "badcall"].map(String::from).to_vec()
    }

    fn ok(text: &str) -> Manifest {
        parse(text, "m.toml", &images()).unwrap()
    }

    fn err(text: &str) -> String {
        parse(text, "m.toml", &images()).unwrap_err().to_string()
    }

    #[test]
    fn defaults_fill_in() {
        let m = ok("[[vm]]\nname = \"hello\"\nimage = \"hello\"\n");
        assert_eq!(m.run, RunSettings::default());
        assert_eq!(
            m.vms,
            vec![VmConfig {
                name: "hello".into(),
                image: "hello".into(),
                core: 0,
                memory: 2 << 20,
                args: String::new(),
                budget: 0,
                expect: Expectation::Exit(0),
            }]
        );
        assert_eq!(m.name_width(), 5);
    }

    #[test]
    fn every_field_is_read() {
        let m = ok(r#"
[run]
cpu_model = "corei7_skylake_x"
cpus = 2
timeout = 30
memory = 512

[[vm]]
name = "a"
image = "badcall"
core = 1
memory = "4M"
args = "msr x=1"
budget = 1000
expect = "killed:MSR"

[[vm]]
name = "b"
image = "hello"
memory = 8388608
expect = "exit:3"
"#);
        assert_eq!(
            m.run,
            RunSettings {
                cpu_model: "corei7_skylake_x".into(),
                cpus: 2,
                timeout_secs: 30,
                memory_mib: 512
            }
        );
        let a = &m.vms[0];
        assert_eq!((a.core, a.memory, a.budget), (1, 4 << 20, 1000));
        assert_eq!(a.args, "msr x=1");
        assert_eq!(a.expect, Expectation::Killed(Some("MSR".into())));
        assert_eq!(m.vms[1].memory, 8 << 20);
        assert_eq!(m.vms[1].expect, Expectation::Exit(3));
        assert_eq!(m.images(), vec!["badcall", "hello"]);
        m.check_cores(2).unwrap();
        assert!(
            m.check_cores(1)
                .unwrap_err()
                .to_string()
                .contains("vm `a`: field `core`")
        );
    }

    #[test]
    fn encodes_what_vmm_abi_parses() {
        let m = ok(
            "[[vm]]\nname = \"x\"\nimage = \"hello\"\nargs = \"hi\"\n[[vm]]\nname = \"y\"\nimage = \"hello\"\n",
        );
        let bytes = m.encode().unwrap();
        let parsed = manifest::Manifest::parse(&bytes).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed.get(0), Some(m.vms[0].spec()));
        assert_eq!(parsed.get(1).map(|v| v.name), Some("y"));
    }

    #[test]
    fn missing_file_is_named() {
        let e = load(Path::new("/nonexistent/x.toml"), &images()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read manifest /nonexistent/x.toml"),
            "{e}"
        );
    }

    #[test]
    fn bad_toml_names_the_line() {
        let e = err("[[vm]]\nname = \"a\"\nimage = hello\n");
        assert!(e.starts_with("m.toml:3:"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = err("[[vm]]\nname = \"a\"\nimage = \"hello\"\ncolour = 1\n");
        assert!(
            e.starts_with("m.toml:4:") && e.contains("unknown field `colour`"),
            "{e}"
        );
        let e = err("[run]\nspeed = 1\n[[vm]]\nname = \"a\"\nimage = \"hello\"\n");
        assert!(e.contains("unknown field `speed`"), "{e}");
        let e = err("[machine]\n[[vm]]\nname = \"a\"\nimage = \"hello\"\n");
        assert!(e.contains("unknown field `machine`"), "{e}");
    }

    #[test]
    fn missing_required_fields_are_named() {
        assert!(err("[[vm]]\nname = \"a\"\n").contains("missing field `image`"));
        assert!(err("[[vm]]\nimage = \"hello\"\n").contains("missing field `name`"));
        assert!(err("").contains("no [[vm]]"));
    }

    #[test]
    fn bad_memory_is_refused() {
        let e = err("[[vm]]\nname = \"a\"\nimage = \"hello\"\nmemory = \"2X\"\n");
        assert!(e.starts_with("m.toml:4:") && e.contains("\"2X\""), "{e}");
        let e = err("[[vm]]\nname = \"a\"\nimage = \"hello\"\nmemory = -1\n");
        assert!(e.contains("negative"), "{e}");
        let e = err("[[vm]]\nname = \"a\"\nimage = \"hello\"\nmemory = true\n");
        assert!(e.contains("byte count"), "{e}");
        let e = err("[[vm]]\nname = \"a\"\nimage = \"hello\"\nmemory = \"4K\"\n");
        assert!(
            e.starts_with("m.toml: vm `a`: manifest vm 0: field `memory`: 4096 is outside"),
            "{e}"
        );
        let e = err("[[vm]]\nname = \"a\"\nimage = \"hello\"\nmemory = 2097153\n");
        assert!(
            e.contains("field `memory`") && e.contains("multiple"),
            "{e}"
        );
    }

    #[test]
    fn bad_names_and_fields_name_the_vm() {
        let e = err("[[vm]]\nname = \"a b\"\nimage = \"hello\"\n");
        assert!(
            e.starts_with("m.toml: vm `a b`: manifest vm 0: field `name`"),
            "{e}"
        );
        let e = err("[[vm]]\nname = \"a\"\nimage = \"hello\"\nargs = \"tab\\there\"\n");
        assert!(e.contains("vm `a`") && e.contains("field `args`"), "{e}");
        let e = err("[[vm]]\nname = \"a\"\nimage = \"hello\"\ncore = 999\n");
        assert!(e.contains("vm `a`") && e.contains("field `core`"), "{e}");
    }

    #[test]
    fn duplicate_names_are_refused() {
        let e = err(
            "[[vm]]\nname = \"a\"\nimage = \"hello\"\n[[vm]]\nname = \"a\"\nimage = \"hello\"\n",
        );
        assert_eq!(
            e,
            "m.toml: vm `a`: manifest vm 1: field `name`: same name as vm 0"
        );
    }

    #[test]
    fn bad_expect_is_refused() {
        let e = err("[[vm]]\nname = \"a\"\nimage = \"hello\"\nexpect = \"exit:zero\"\n");
        assert!(
            e.starts_with("m.toml: vm `a`: field `expect`:") && e.contains("exit:N"),
            "{e}"
        );
    }

    #[test]
    fn unknown_image_lists_known_ones() {
        let e = err("[[vm]]\nname = \"a\"\nimage = \"nope\"\n");
        assert_eq!(
            e,
            "m.toml: vm `a`: field `image`: no image named `nope` (known images: hello, escape, badcall)"
        );
    }

    #[test]
    fn bad_run_settings_are_refused() {
        let vm = "[[vm]]\nname = \"a\"\nimage = \"hello\"\n";
        let e = err(&format!("[run]\ncpu_model = \"z80\"\n{vm}"));
        assert!(
            e.contains("[run] `cpu_model`") && e.contains("corei7_icelake_u"),
            "{e}"
        );
        assert!(err(&format!("[run]\ncpus = 0\n{vm}")).contains("`cpus`"));
        assert!(err(&format!("[run]\ncpus = -1\n{vm}")).starts_with("m.toml:2:"));
        assert!(err(&format!("[run]\ntimeout = 0\n{vm}")).contains("`timeout`"));
        assert!(err(&format!("[run]\nmemory = 1\n{vm}")).contains("`memory`"));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("2m"), Some(2 << 20));
        assert_eq!(parse_size("2MiB"), Some(2 << 20));
        assert_eq!(parse_size(" 1G "), Some(1 << 30));
        assert_eq!(parse_size("3 M"), Some(3 << 20));
        for bad in [
            "",
            "M",
            "2X",
            "1.5M",
            "-2M",
            "2MM",
            "99999999999999999999G",
            "17179869184G",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn line_and_column_count_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 99), (1, 3));
    }
}
