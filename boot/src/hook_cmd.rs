//! `corral hook attach|detach|maps`: hooks on a running host — packet hooks on its link directions, restart, exit and slice hooks on its VMs — uploaded in chunks over the control line, verified here first and again by the hypervisor, swapped in place when the place already has one.

use crate::error::{Error, Result};
use crate::hook_object;
use crate::service::{self, Answer, HookAt, HostDir};
use crate::table::{self, Align};
use crate::{cargo_build, toml_manifest};
use std::path::Path;
use vmm_abi::control::{self, CHUNK_BYTES, DIR_A_TO_B, DIR_B_TO_A, HookOn, Message, NIC_TX};
use vmm_abi::hook::insn::INSN_SIZE;
use vmm_abi::hook::{HookKind, MAX_INSNS, MapDef, verify};
use vmm_abi::manifest::{HookAttach, LinkDir, NicDir};

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
    /// Its place.
    pub on: HookAt,
    /// What runs it: `compiled` or `interpreted`.
    pub engine: &'static str,
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
            on,
            engine,
            counts: [runs, pass, dropped, faults, insns],
        } = a
        else {
            return None;
        };
        Some(HookCounts {
            name: name.clone(),
            on: on.clone(),
            engine: control::engine_name(*engine),
            runs: *runs,
            pass: *pass,
            dropped: *dropped,
            faults: *faults,
            insns: *insns,
        })
    }

    fn json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "name": self.name,
            "engine": self.engine,
            "runs": self.runs,
            "pass": self.pass,
            "dropped": self.dropped,
            "faults": self.faults,
            "instructions": self.insns,
        });
        match &self.on {
            HookAt::Link { link, dir } => {
                v["link"] = (*link).into();
                v["dir"] = dir_name(*dir).into();
            }
            HookAt::Nic { nic, dir } => {
                v["nic"] = (*nic).into();
                v["dir"] = nic_dir_name(*dir).into();
            }
            HookAt::Vm { vm, kind } => {
                v["vm"] = vm.as_str().into();
                v["kind"] = kind_name(*kind).into();
            }
        }
        v
    }

    fn line(&self) -> String {
        let (at, runs, pass, not) = match &self.on {
            HookAt::Link { link, dir } => (
                format!("link {link} {}", dir_name(*dir)),
                "runs",
                "passed",
                "not passed",
            ),
            HookAt::Nic { nic, dir } => (
                format!("nic {nic} {}", nic_dir_name(*dir)),
                "runs",
                "passed",
                "not passed",
            ),
            HookAt::Vm { vm, kind } => (
                format!("{vm}'s {} hook", kind_name(*kind)),
                "runs",
                "allowed",
                "other answers",
            ),
        };
        format!(
            "hook {}: {at}: {} {runs}, {} {pass}, {} {not}, {} faults, {} instructions ({})",
            self.name, self.runs, self.pass, self.dropped, self.faults, self.insns, self.engine
        )
    }
}

fn dir_name(dir: u8) -> &'static str {
    if dir == DIR_B_TO_A { "b->a" } else { "a->b" }
}

fn nic_dir_name(dir: u8) -> &'static str {
    if dir == NIC_TX { "tx" } else { "rx" }
}

fn kind_name(kind: u8) -> &'static str {
    HookKind::from_u32(u32::from(kind)).map_or("?", HookKind::name)
}

/// Where `hook attach` puts a hook: a link's direction (a packet hook) or
/// a VM (its restart, exit or slice hook).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Place {
    Link(u32, LinkDir),
    Nic(u32, NicDir),
    Vm(String),
}

impl Place {
    fn on(&self, kind: HookKind) -> HookOn<'_> {
        match self {
            Place::Link(link, dir) => HookOn::Link {
                link: *link,
                dir: match dir {
                    LinkDir::AToB => DIR_A_TO_B,
                    LinkDir::BToA => DIR_B_TO_A,
                },
            },
            Place::Nic(nic, dir) => HookOn::Nic {
                nic: *nic,
                dir: *dir as u8,
            },
            Place::Vm(vm) => HookOn::Vm {
                vm,
                kind: kind as u8,
            },
        }
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

/// The link direction or NIC queue `attach` names on a host behind an
/// endpoint: found among the links and NICs its `stats` lists
/// (`link:A->B` as the link `A<->B` a to b, or `B<->A` b to a).
fn resolve_listed(host: &HostDir, attach: &str) -> Result<Place> {
    let answers = answered(host, &Message::Stats)?;
    let flows = || {
        answers.iter().filter_map(|a| match a {
            Answer::Flow {
                kind, index, label, ..
            } => Some((*kind, *index, label.as_str())),
            _ => None,
        })
    };
    let not_found = |what: &str| Error::new(format!("`--attach {attach}`: the host has no {what}"));
    if let Some(rest) = attach.strip_prefix(toml_manifest::NIC_ATTACH_PREFIX) {
        let (nic, dir) = rest
            .rsplit_once(':')
            .ok_or_else(|| not_found("NIC queue named so (`nic:NAME:rx|tx`)"))?;
        let dir = match dir {
            "rx" => NicDir::Rx,
            "tx" => NicDir::Tx,
            _ => return Err(not_found("NIC queue named so (`nic:NAME:rx|tx`)")),
        };
        let (_, index, _) = flows()
            .find(|&(k, _, l)| k == control::FLOW_NIC && l == nic)
            .ok_or_else(|| not_found(&format!("NIC named {nic}")))?;
        return Ok(Place::Nic(index, dir));
    }
    let (a, b) = attach
        .strip_prefix("link:")
        .and_then(|r| r.split_once("->"))
        .ok_or_else(|| not_found("link named so (`link:VM.PORT->VM.PORT`)"))?;
    for (k, index, label) in flows() {
        if k != control::FLOW_LINK {
            continue;
        }
        if label == format!("{a}<->{b}") {
            return Ok(Place::Link(index, LinkDir::AToB));
        }
        if label == format!("{b}<->{a}") {
            return Ok(Place::Link(index, LinkDir::BToA));
        }
    }
    Err(not_found(&format!("link joining {a} and {b}")))
}

/// The link direction or NIC queue `attach` names in the manifest host
/// `host` was brought up from.
fn resolve(host: &HostDir, attach: &str) -> Result<Place> {
    if host.endpoint.is_some() {
        return resolve_listed(host, attach);
    }
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
    let place = if attach.starts_with(toml_manifest::NIC_ATTACH_PREFIX) {
        match toml_manifest::resolve_nic(attach, &manifest.nics) {
            Ok(HookAttach::Nic { nic, dir }) => Ok(Place::Nic(nic, dir)),
            Ok(_) => Err(format!("`{attach}` is not a NIC queue")),
            Err(e) => Err(e),
        }
    } else {
        toml_manifest::resolve_attach(attach, &manifest.links).map(|(l, d)| Place::Link(l, d))
    };
    place.map_err(|e| Error::new(format!("`--attach`: {e}")))
}

/// Where `attach` puts a hook of `kind`: `vm:NAME` for a VM hook (any VM
/// of the host, those started at runtime too), else a link's direction
/// named as in the manifest the host came from.
fn place(host: &HostDir, attach: &str, kind: HookKind) -> Result<Place> {
    let vm = attach.strip_prefix(toml_manifest::VM_ATTACH_PREFIX);
    match (vm, kind) {
        (Some(_), HookKind::Packet) => Err(Error::new(format!(
            "`--attach {attach}`: a packet hook goes on `link:<vm>.<port>-><vm>.<port>` or `nic:<name>:rx|tx`; a VM takes `--kind restart|exit|slice`"
        ))),
        (Some(""), _) => Err(Error::new("`--attach vm:`: give the VM's name")),
        (Some(vm), _) => Ok(Place::Vm(vm.to_string())),
        (None, HookKind::Packet) => resolve(host, attach),
        (None, _) => Err(Error::new(format!(
            "`--attach {attach}`: {} hooks go on a VM: `vm:NAME`",
            kind.name()
        ))),
    }
}

/// `corral hook attach NAME --attach link:A->B|vm:NAME [--kind K]
/// (--source F | --object F)`: loads and verifies the program, uploads it
/// in chunks and attaches it (in place of the runtime hook there, if there
/// is one).
pub fn attach(
    host: &HostDir,
    (name, kind): (&str, HookKind),
    attach: &str,
    from: Program<'_>,
    program: Option<&str>,
) -> Result<String> {
    if !host.running() && host.endpoint.is_none() {
        return Err(Error::new(format!(
            "host `{}` is not up (start it with `corral up MANIFEST --host {}`)",
            host.name, host.name
        )));
    }
    let at = place(host, attach, kind)?;
    let (path, is_source) = match from {
        Program::Source(p) => (p, true),
        Program::Object(p) => (p, false),
    };
    let progress = |line: &str| eprintln!("{line}");
    let prog = hook_object::from_file(name, path, is_source, program, kind, &progress)
        .map_err(|e| Error::new(format!("hook `{name}`: {e}")))?;
    if prog.insns.len() > MAX_INSNS {
        return Err(Error::new(format!(
            "hook `{name}`: {} instructions, at most {MAX_INSNS}",
            prog.insns.len()
        )));
    }
    let defs: Vec<MapDef> = prog.maps.iter().map(|(_, d)| *d).collect();
    verify(&prog.insns, kind, &defs).map_err(|e| {
        Error::new(format!(
            "program refused: hook `{name}`: {e} (in {}, program `{}`)",
            path.display(),
            prog.program
        ))
    })?;
    let maps: Vec<u8> = defs.iter().flat_map(|d| d.to_bytes()).collect();
    let code: Vec<u8> = prog.insns.iter().flat_map(|i| i.to_bytes()).collect();
    let (new, swapped) = match &host.endpoint {
        // One request, the program as its body.
        Some(url) => {
            let answers = crate::endpoint::attach_hook(url, name, at.on(kind), &code, &maps)?;
            if let Some(Answer::Error(text)) = answers.last() {
                return Err(Error::new(text.clone()));
            }
            attached_rows(&answers)
        }
        None => {
            upload(host, name, at.on(kind), &code, &maps)?;
            upload_commit(host, name)?
        }
    };
    let new = new.ok_or_else(|| {
        Error::new(format!(
            "hook `{name}`: host `{}` attached it but gave no row for it",
            host.name
        ))
    })?;
    let place = match &at {
        Place::Link(link, dir) => format!("link {link} {}", dir.name()),
        Place::Nic(nic, dir) => format!("nic {nic} {}", dir.name()),
        Place::Vm(vm) => format!("{vm}'s {} hook", kind.name()),
    };
    let mut text = format!(
        "hook {name}: attached on {attach} ({place}): {} instructions, {} maps, {}\n",
        prog.insns.len(),
        defs.len(),
        new.engine
    );
    if let Some(old) = swapped {
        text.push_str(&format!("in place of {}\n", old.line()));
    }
    Ok(text)
}

/// Sends the begin and every chunk of an upload (`code`: the program's
/// instruction bytes, `maps`: its map table's).
pub fn upload(host: &HostDir, name: &str, on: HookOn<'_>, code: &[u8], maps: &[u8]) -> Result<()> {
    answered(
        host,
        &Message::HookBegin {
            name,
            on,
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

/// Commits the upload `name`: the new hook's row (its engine), and the
/// counters of the hook it replaced, if any.
pub fn upload_commit(
    host: &HostDir,
    name: &str,
) -> Result<(Option<HookCounts>, Option<HookCounts>)> {
    let answers = answered(host, &Message::HookCommit { name })?;
    Ok(attached_rows(&answers))
}

/// An attach's answer rows: the new hook's first, then the replaced one's.
fn attached_rows(answers: &[Answer]) -> (Option<HookCounts>, Option<HookCounts>) {
    let mut rows = answers.iter().filter_map(HookCounts::of);
    (rows.next(), rows.next())
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
            on: HookAt::Link {
                link: 2,
                dir: DIR_B_TO_A,
            },
            engine: control::ENGINE_INTERPRETED,
            counts: [5, 4, 1, 0, 50],
        };
        let c = HookCounts::of(&a).unwrap();
        assert_eq!((c.runs, c.pass), (5, 4));
        assert!(c.line().contains("link 2 b->a: 5 runs, 4 passed"));
        assert!(c.line().ends_with("50 instructions (interpreted)"));
        assert_eq!(c.json()["dir"], "b->a");
        assert_eq!(c.json()["engine"], "interpreted");
        // An attach answers the new hook's row, then the replaced one's.
        let old = Answer::Hook {
            name: "old".into(),
            on: HookAt::Link {
                link: 2,
                dir: DIR_B_TO_A,
            },
            engine: control::ENGINE_COMPILED,
            counts: [7, 7, 0, 0, 70],
        };
        let (new, replaced) = attached_rows(&[a.clone(), old, Answer::Done]);
        assert_eq!(new.unwrap().name, "c");
        assert_eq!(replaced.unwrap().engine, "compiled");
        assert!(attached_rows(&[a.clone(), Answer::Done]).1.is_none());
        assert!(HookCounts::of(&Answer::Done).is_none());
        let v = Answer::Hook {
            name: "g".into(),
            on: HookAt::Vm {
                vm: "web-0".into(),
                kind: HookKind::Exit as u8,
            },
            engine: control::ENGINE_COMPILED,
            counts: [9, 7, 2, 1, 90],
        };
        let c = HookCounts::of(&v).unwrap();
        assert_eq!(
            c.line(),
            "hook g: web-0's exit hook: 9 runs, 7 allowed, 2 other answers, 1 faults, 90 instructions (compiled)"
        );
        assert_eq!(
            (c.json()["vm"].as_str(), c.json()["kind"].as_str()),
            (Some("web-0"), Some("exit"))
        );
    }
}
