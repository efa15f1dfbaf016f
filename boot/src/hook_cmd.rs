//! `corral hook attach|detach|maps`: packet hooks on a running host's link directions, uploaded in chunks over the control line, verified here first and again by the hypervisor, swapped in place when a direction already has one.

use crate::error::{Error, Result};
use crate::hook_object;
use crate::service::{self, Answer, HostDir};
use crate::table::{self, Align};
use crate::{cargo_build, toml_manifest};
use std::path::Path;
use vmm_abi::control::{CHUNK_BYTES, DIR_A_TO_B, DIR_B_TO_A, Message};
use vmm_abi::hook::insn::INSN_SIZE;
use vmm_abi::hook::{HookKind, MAX_INSNS, MapDef, verify};
use vmm_abi::manifest::LinkDir;

/// Where `hook attach` takes its program from.
#[derive(Clone, Copy, Debug)]
pub enum Program<'a> {
    /// A C file clang compiles.
    Source(&'a Path),
    /// A BPF ELF object.
    Object(&'a Path),
}

/// A hook's counters as the hypervisor answered them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookCounts {
    /// Its name.
    pub name: String,
    /// Its link's manifest index.
    pub link: u32,
    /// `a->b` or `b->a`.
    pub dir: &'static str,
    /// Frames it ran on.
    pub runs: u64,
    /// Frames it passed.
    pub pass: u64,
    /// Frames it did not pass.
    pub dropped: u64,
    /// Runs the interpreter aborted.
    pub faults: u64,
    /// Instructions it ran.
    pub insns: u64,
}

impl HookCounts {
    fn of(a: &Answer) -> Option<Self> {
        let Answer::Hook {
            name,
            link,
            dir,
            counts: [runs, pass, dropped, faults, insns],
        } = a
        else {
            return None;
        };
        Some(HookCounts {
            name: name.clone(),
            link: *link,
            dir: if *dir == DIR_B_TO_A { "b->a" } else { "a->b" },
            runs: *runs,
            pass: *pass,
            dropped: *dropped,
            faults: *faults,
            insns: *insns,
        })
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "link": self.link,
            "dir": self.dir,
            "runs": self.runs,
            "pass": self.pass,
            "dropped": self.dropped,
            "faults": self.faults,
            "instructions": self.insns,
        })
    }

    fn line(&self) -> String {
        format!(
            "hook {}: link {} {}: {} runs, {} passed, {} not passed, {} faults, {} instructions",
            self.name,
            self.link,
            self.dir,
            self.runs,
            self.pass,
            self.dropped,
            self.faults,
            self.insns
        )
    }
}

/// The answers of one command, or its error.
fn answered(host: &HostDir, msg: &Message<'_>) -> Result<Vec<Answer>> {
    let answers = service::send(host, msg)?;
    match answers.last() {
        Some(Answer::Error(text)) => Err(Error::new(text.clone())),
        _ => Ok(answers),
    }
}

/// The link and direction `attach` names in the manifest host `host` was
/// brought up from.
fn resolve(host: &HostDir, attach: &str) -> Result<(u32, LinkDir)> {
    let note = host.manifest_note();
    let path = std::fs::read_to_string(&note).map_err(|e| {
        Error::new(format!(
            "cannot read {} (written by `corral up`): {e}",
            note.display()
        ))
    })?;
    let root = cargo_build::workspace_root();
    let known = cargo_build::known_images(&root)?;
    let manifest = toml_manifest::load(Path::new(path.trim()), &known)?;
    toml_manifest::resolve_attach(attach, &manifest.links)
        .map_err(|e| Error::new(format!("`--attach`: {e}")))
}

/// `corral hook attach NAME --attach link:A->B (--source F | --object F)`:
/// loads and verifies the program, uploads it in chunks and attaches it
/// (in place of the runtime hook on that direction, if there is one).
pub fn attach(
    host: &HostDir,
    name: &str,
    attach: &str,
    from: Program<'_>,
    program: Option<&str>,
) -> Result<String> {
    if !host.running() {
        return Err(Error::new(format!(
            "host `{}` is not up (start it with `corral up MANIFEST --host {}`)",
            host.name, host.name
        )));
    }
    let (link, dir) = resolve(host, attach)?;
    let (path, is_source) = match from {
        Program::Source(p) => (p, true),
        Program::Object(p) => (p, false),
    };
    let progress = |line: &str| eprintln!("{line}");
    let prog = hook_object::from_file(name, path, is_source, program, HookKind::Packet, &progress)
        .map_err(|e| Error::new(format!("hook `{name}`: {e}")))?;
    if prog.insns.len() > MAX_INSNS {
        return Err(Error::new(format!(
            "hook `{name}`: {} instructions, at most {MAX_INSNS}",
            prog.insns.len()
        )));
    }
    let defs: Vec<MapDef> = prog.maps.iter().map(|(_, d)| *d).collect();
    verify(&prog.insns, HookKind::Packet, &defs).map_err(|e| {
        Error::new(format!(
            "program refused: hook `{name}`: {e} (in {}, program `{}`)",
            path.display(),
            prog.program
        ))
    })?;
    let maps: Vec<u8> = defs.iter().flat_map(|d| d.to_bytes()).collect();
    let code: Vec<u8> = prog.insns.iter().flat_map(|i| i.to_bytes()).collect();
    upload(host, name, link, dir, &code, &maps)?;
    let swapped = upload_commit(host, name)?;
    let mut text = format!(
        "hook {name}: attached on {attach} (link {link} {}): {} instructions, {} maps; interpreted (hooks attached at runtime are not JIT-compiled: the JIT's code area is sealed read-execute at boot)\n",
        dir.name(),
        prog.insns.len(),
        defs.len()
    );
    if let Some(old) = swapped {
        text.push_str(&format!("in place of {}\n", old.line()));
    }
    Ok(text)
}

/// Sends the begin and every chunk of an upload (`code`: the program's
/// instruction bytes, `maps`: its map table's).
pub fn upload(
    host: &HostDir,
    name: &str,
    link: u32,
    dir: LinkDir,
    code: &[u8],
    maps: &[u8],
) -> Result<()> {
    answered(
        host,
        &Message::HookBegin {
            name,
            link,
            dir: match dir {
                LinkDir::AToB => DIR_A_TO_B,
                LinkDir::BToA => DIR_B_TO_A,
            },
            insns: (code.len() / INSN_SIZE) as u32,
            maps,
        },
    )?;
    for (k, bytes) in code.chunks(CHUNK_BYTES).enumerate() {
        let offset = (k * CHUNK_BYTES / INSN_SIZE) as u32;
        answered(host, &Message::HookChunk { offset, bytes })?;
    }
    Ok(())
}

/// Commits the upload `name`: the counters of the hook it replaced, if any.
pub fn upload_commit(host: &HostDir, name: &str) -> Result<Option<HookCounts>> {
    let answers = answered(host, &Message::HookCommit { name })?;
    Ok(answers.iter().find_map(HookCounts::of))
}

/// `corral hook detach NAME [--json]`: its final counters.
pub fn detach(host: &HostDir, name: &str, json: bool) -> Result<String> {
    let answers = answered(host, &Message::HookDetach { name })?;
    let counts = answers
        .iter()
        .find_map(HookCounts::of)
        .ok_or_else(|| Error::new(format!("host `{}` gave no counters", host.name)))?;
    if json {
        return pretty(&counts.json());
    }
    Ok(format!("detached; final counters:\n{}\n", counts.line()))
}

/// `corral hook maps NAME [--json]`: its counters, then each map entry
/// whose value is not all zero.
pub fn maps(host: &HostDir, name: &str, json: bool) -> Result<String> {
    let answers = answered(host, &Message::HookMaps { name })?;
    let counts = answers
        .iter()
        .find_map(HookCounts::of)
        .ok_or_else(|| Error::new(format!("host `{}` gave no counters", host.name)))?;
    let entries: Vec<_> = answers
        .iter()
        .filter_map(|a| match a {
            Answer::Entry {
                map,
                core,
                key,
                value,
            } => Some((*map, *core, key.as_slice(), value.as_slice())),
            _ => None,
        })
        .collect();
    if json {
        let list: Vec<_> = entries
            .iter()
            .map(|&(map, core, key, value)| {
                serde_json::json!({
                    "map": map,
                    "core": core,
                    "key": hex(key),
                    "value": hex(value),
                    "number": number(value),
                })
            })
            .collect();
        return pretty(&serde_json::json!({ "hook": counts.json(), "entries": list }));
    }
    let mut t: Vec<Vec<String>> = vec![
        ["MAP", "CORE", "KEY", "VALUE", "NUMBER"]
            .map(str::to_string)
            .to_vec(),
    ];
    for &(map, core, key, value) in &entries {
        t.push(vec![
            map.to_string(),
            core.to_string(),
            hex(key),
            hex(value),
            number(value).map_or("-".to_string(), |n| n.to_string()),
        ]);
    }
    Ok(format!(
        "{}\n{}{} entries not all zero\n",
        counts.line(),
        table::text(
            &t,
            &[
                Align::Right,
                Align::Right,
                Align::Left,
                Align::Left,
                Align::Right
            ]
        ),
        entries.len()
    ))
}

fn pretty(v: &serde_json::Value) -> Result<String> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| Error::new(format!("cannot write JSON: {e}")))?;
    Ok(format!("{text}\n"))
}

/// Bytes as lowercase hex.
fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A value of 1 to 8 bytes as a little-endian number.
pub fn number(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 8 {
        return None;
    }
    let mut v = [0u8; 8];
    v[..b.len()].copy_from_slice(b);
    Some(u64::from_le_bytes(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_numbers_and_hex() {
        assert_eq!(number(&[1, 1]), Some(257));
        assert_eq!(number(&[]), None);
        assert_eq!(number(&[0; 9]), None);
        assert_eq!(hex(&[0, 0xab]), "00ab");
    }

    #[test]
    fn counters_come_from_hook_rows() {
        let a = Answer::Hook {
            name: "c".into(),
            link: 2,
            dir: DIR_B_TO_A,
            counts: [5, 4, 1, 0, 50],
        };
        let c = HookCounts::of(&a).unwrap();
        assert_eq!((c.dir, c.runs, c.pass), ("b->a", 5, 4));
        assert!(c.line().contains("link 2 b->a: 5 runs, 4 passed"));
        assert!(HookCounts::of(&Answer::Done).is_none());
    }
}
