//! A hook's program on the host: C compiled with clang for the BPF target,
//! and an ELF object turned into what the manifest carries, a flat program
//! (`vmm_abi::hook::Insn`s) and its map table, with `aya-obj` 0.3 parsing
//! the object (legacy `maps` and BTF-defined `.maps` sections alike).
//!
//! Map relocations are resolved to map indices: an `lddw` that loads a map
//! gets `src = BPF_PSEUDO_MAP_FD` and `imm` = the map's index in the table,
//! which lists the object's maps in name order. Objects with global data
//! (`.data`, `.rodata`, `.bss` maps) are refused: the hypervisor has no
//! such regions.

use crate::error::{Error, Result};
use crate::tools;
use aya_obj::{EbpfSectionKind, Map, Object, ProgramSection};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use vmm_abi::hook::{HookKind, Insn, MapDef, MapKind};

/// Flags clang compiles a hook's C source with (BTF maps need `-g`).
pub const CLANG_FLAGS: [&str; 6] = [
    "-O2",
    "-g",
    "-target",
    "bpf",
    "-I/usr/include/x86_64-linux-gnu",
    "-c",
];

/// A program taken out of an object, ready for the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookProgram {
    /// The program's name in the object (its function).
    pub program: String,
    /// Its instructions, map loads resolved to map indices.
    pub insns: Vec<Insn>,
    /// Its map table: each map's name in the object and its definition.
    pub maps: Vec<(String, MapDef)>,
}

/// The clang to compile hooks with: `clang` in `PATH`, else a versioned
/// `clang-N` that is there, else Debian's `clang` installed with apt-get.
pub fn clang(progress: &dyn Fn(&str)) -> Result<PathBuf> {
    if let Some(path) = tools::find_in_path("clang") {
        return Ok(path);
    }
    for version in (14..=21).rev() {
        if let Some(path) = tools::find_in_path(&format!("clang-{version}")) {
            return Ok(path);
        }
    }
    tools::ensure_program("clang", "clang", progress)
}

/// Compiles `source` into the object `out`; the error carries clang's
/// messages.
pub fn compile(clang: &Path, source: &Path, out: &Path) -> std::result::Result<(), String> {
    let output = Command::new(clang)
        .args(CLANG_FLAGS)
        .arg(source)
        .arg("-o")
        .arg(out)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", clang.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        let messages = String::from_utf8_lossy(&output.stderr);
        Err(format!(
            "clang failed ({}):\n{}",
            output.status,
            messages.trim_end()
        ))
    }
}

/// Compiles `source` into a fresh object in the system's temporary
/// directory (named after `name`) and returns its bytes.
pub fn compile_to_bytes(
    name: &str,
    source: &Path,
    progress: &dyn Fn(&str),
) -> std::result::Result<Vec<u8>, String> {
    let clang = clang(progress).map_err(|e| e.to_string())?;
    let out = std::env::temp_dir().join(format!(
        "corral-hook-{}-{name}-{}.o",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    ));
    compile(&clang, source, &out)?;
    let bytes = std::fs::read(&out).map_err(|e| format!("cannot read {}: {e}", out.display()));
    let _ = std::fs::remove_file(&out);
    bytes
}

/// The section kind's name, as a `program = "section/name"` would say it.
fn section_name(section: &ProgramSection) -> &'static str {
    match section {
        ProgramSection::Xdp { .. } => "xdp",
        ProgramSection::SchedClassifier => "tc",
        ProgramSection::SocketFilter => "socket",
        ProgramSection::KProbe | ProgramSection::KRetProbe => "kprobe",
        ProgramSection::TracePoint => "tracepoint",
        ProgramSection::RawTracePoint => "raw_tp",
        _ => "other",
    }
}

/// The section a program of `kind` must be in: XDP for packet hooks
/// (`SEC("xdp")`), a tracepoint for restart and exit hooks
/// (`SEC("tracepoint/corral/restart")`, `SEC("tracepoint/corral/exit")`:
/// aya-obj reads only the section kinds Linux has, and a tracepoint
/// program is the one that takes a context struct and returns a number).
fn section_for(kind: HookKind) -> (&'static str, &'static str) {
    match kind {
        HookKind::Packet => ("xdp", "an XDP program (SEC(\"xdp\"))"),
        HookKind::Restart => (
            "tracepoint",
            "a tracepoint program (SEC(\"tracepoint/corral/restart\"))",
        ),
        HookKind::Exit => (
            "tracepoint",
            "a tracepoint program (SEC(\"tracepoint/corral/exit\"))",
        ),
        HookKind::Slice => (
            "tracepoint",
            "a tracepoint program (SEC(\"tracepoint/corral/slice\"))",
        ),
    }
}

/// "a packet hook", "an exit hook", ...
pub fn a_hook(kind: HookKind) -> String {
    let article = if kind.name().starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {} hook", kind.name())
}

/// Picks the program of a `kind` hook named by `program` (`name` or
/// `section/name`), or the only one.
fn pick<'o>(
    obj: &'o Object,
    program: Option<&str>,
    kind: HookKind,
) -> std::result::Result<(&'o String, &'o aya_obj::Program), String> {
    let mut names: Vec<&String> = obj.programs.keys().collect();
    names.sort();
    let list = || {
        names
            .iter()
            .map(|n| format!("{}/{n}", section_name(&obj.programs[*n].section)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (name, prog) = match program {
        Some(wanted) => {
            let (section, name) = match wanted.rsplit_once('/') {
                Some((s, n)) => (Some(s), n),
                None => (None, wanted),
            };
            let Some((name, prog)) = obj.programs.get_key_value(name) else {
                return Err(format!(
                    "no program `{wanted}` in the object (it has: {})",
                    list()
                ));
            };
            if let Some(section) = section
                && section != section_name(&prog.section)
            {
                return Err(format!(
                    "program `{name}` is in a `{}` section, not `{section}` (the object has: {})",
                    section_name(&prog.section),
                    list()
                ));
            }
            (name, prog)
        }
        None => match names.as_slice() {
            [] => return Err("the object has no program".to_string()),
            [only] => (*only, &obj.programs[*only]),
            _ => {
                return Err(format!(
                    "the object has several programs ({}): say which with `program = \"section/name\"`",
                    list()
                ));
            }
        },
    };
    let (section, what) = section_for(kind);
    if section_name(&prog.section) != section {
        return Err(format!(
            "program `{name}` is a `{}` program; {} takes {what}",
            section_name(&prog.section),
            a_hook(kind)
        ));
    }
    Ok((name, prog))
}

/// A map's definition, or why the hypervisor cannot have it.
fn map_def(name: &str, map: &Map) -> std::result::Result<MapDef, String> {
    let kind = MapKind::from_u32(map.map_type()).ok_or_else(|| {
        format!(
            "map `{name}`: type {} is not one Corral has (hash = 1, array = 2, percpu_array = 6)",
            map.map_type()
        )
    })?;
    let def = MapDef {
        kind,
        key_size: map.key_size(),
        value_size: map.value_size(),
        max_entries: map.max_entries(),
    };
    def.validate().map_err(|e| format!("map `{name}`: {e}"))?;
    Ok(def)
}

/// Takes the program `program` (or the only one) of a `kind` hook out of
/// the BPF ELF object `bytes`: its instructions with map loads resolved,
/// and its map table.
pub fn load(
    bytes: &[u8],
    program: Option<&str>,
    kind: HookKind,
) -> std::result::Result<HookProgram, String> {
    let mut obj = Object::parse(bytes).map_err(|e| format!("not a BPF object: {e}"))?;
    let (name, prog) = pick(&obj, program, kind)?;
    let (name, key) = (name.clone(), prog.function_key());
    let program_sections: HashSet<usize> = obj.programs.values().map(|p| p.section_index).collect();
    let text_sections: HashSet<usize> = obj
        .functions
        .keys()
        .map(|&(section, _)| section)
        .filter(|s| !program_sections.contains(s))
        .collect();
    let mut maps: Vec<(String, Map)> = obj
        .maps
        .iter()
        .map(|(n, m)| (n.clone(), m.clone()))
        .collect();
    maps.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some((n, m)) = maps.iter().find(|(_, m)| {
        matches!(
            m.section_kind(),
            EbpfSectionKind::Data | EbpfSectionKind::Rodata | EbpfSectionKind::Bss
        )
    }) {
        return Err(format!(
            "the object has global data (`{n}`, a {:?} section): hooks may keep state only in maps",
            m.section_kind()
        ));
    }
    let mut defs = Vec::with_capacity(maps.len());
    for (n, m) in &maps {
        defs.push((n.clone(), map_def(n, m)?));
    }
    obj.relocate_maps(
        maps.iter()
            .enumerate()
            .map(|(i, (n, m))| (n.as_str(), i as i32, m)),
        &text_sections,
    )
    .map_err(|e| format!("map relocations: {e}"))?;
    obj.relocate_calls(&text_sections)
        .map_err(|e| format!("call relocations: {e}"))?;
    let function = obj
        .functions
        .get(&key)
        .ok_or_else(|| format!("program `{name}` has no code"))?;
    let insns = function
        .instructions
        .iter()
        .map(|i| Insn::new(i.code, i.dst_reg(), i.src_reg(), i.off, i.imm))
        .collect();
    Ok(HookProgram {
        program: name,
        insns,
        maps: defs,
    })
}

/// Reads the object at `path` (or compiles the C source there first) and
/// loads its program; errors say which file.
pub fn from_file(
    name: &str,
    path: &Path,
    is_source: bool,
    program: Option<&str>,
    kind: HookKind,
    progress: &dyn Fn(&str),
) -> Result<HookProgram> {
    let bytes = if is_source {
        compile_to_bytes(name, path, progress)
    } else {
        std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))
    }
    .map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
    load(&bytes, program, kind).map_err(|e| Error::new(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_abi::hook::insn::{BPF_PSEUDO_MAP_FD, LDDW};
    use vmm_abi::hook::{HookKind, verify};

    fn hooks_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/hooks")
    }

    fn compiled(file: &str) -> Vec<u8> {
        compile_to_bytes("test", &hooks_dir().join(file), &|m| eprintln!("{m}"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_example_hook_loads_and_verifies() {
        let p = load(&compiled("drop_port.bpf.c"), None, HookKind::Packet).unwrap();
        assert_eq!(p.program, "drop_port");
        let names: Vec<&str> = p.maps.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["drops", "ports"]);
        assert_eq!(p.maps[0].1.kind, MapKind::Array);
        assert_eq!((p.maps[1].1.kind, p.maps[1].1.key_size), (MapKind::Hash, 2));
        let loads: Vec<i32> = p
            .insns
            .iter()
            .filter(|i| i.code == LDDW && i.src == BPF_PSEUDO_MAP_FD)
            .map(|i| i.imm)
            .collect();
        assert!(loads.contains(&0) && loads.contains(&1), "{loads:?}");
        let defs: Vec<MapDef> = p.maps.iter().map(|(_, d)| *d).collect();
        verify(&p.insns, HookKind::Packet, &defs).unwrap();
        // Named explicitly, with or without its section.
        assert_eq!(
            load(
                &compiled("drop_port.bpf.c"),
                Some("xdp/drop_port"),
                HookKind::Packet
            )
            .unwrap(),
            p
        );
        let e = load(
            &compiled("drop_port.bpf.c"),
            Some("tc/drop_port"),
            HookKind::Packet,
        )
        .unwrap_err();
        assert!(e.contains("is in a `xdp` section, not `tc`"), "{e}");
        let e = load(&compiled("drop_port.bpf.c"), Some("nope"), HookKind::Packet).unwrap_err();
        assert!(e.contains("no program `nope`"), "{e}");
    }

    #[test]
    fn the_loop_is_refused_by_the_verifier() {
        let p = load(&compiled("loop.bpf.c"), None, HookKind::Packet).unwrap();
        let e = verify(&p.insns, HookKind::Packet, &[]).unwrap_err();
        assert!(e.to_string().contains("back edge"), "{e}");
    }

    #[test]
    fn restart_and_exit_hooks_load_from_tracepoint_sections() {
        for (file, kind, map) in [
            ("restart_twice.bpf.c", HookKind::Restart, "stops"),
            ("deny_hypercall.bpf.c", HookKind::Exit, "exits"),
        ] {
            let p = load(&compiled(file), None, kind).unwrap_or_else(|e| panic!("{file}: {e}"));
            let names: Vec<&str> = p.maps.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, [map]);
            let defs: Vec<MapDef> = p.maps.iter().map(|(_, d)| *d).collect();
            verify(&p.insns, kind, &defs).unwrap_or_else(|e| panic!("{file}: {e}"));
            // Not a packet hook, and a packet hook is not one of these.
            let e = load(&compiled(file), None, HookKind::Packet).unwrap_err();
            assert!(e.contains("a packet hook takes an XDP program"), "{e}");
        }
        let e = load(&compiled("drop_port.bpf.c"), None, HookKind::Exit).unwrap_err();
        assert!(
            e.contains("is a `xdp` program; an exit hook takes a tracepoint program (SEC(\"tracepoint/corral/exit\"))"),
            "{e}"
        );
    }

    #[test]
    fn not_an_object() {
        let e = load(b"hello", None, HookKind::Packet).unwrap_err();
        assert!(e.starts_with("not a BPF object"), "{e}");
    }
}
