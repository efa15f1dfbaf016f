//! The hypervisor's console as the host sees it: each COM1 line is cleaned
//! of terminal control codes, classified (report record, `<source> | text`
//! console line, or boot-loader noise) and rendered for the user.

use vmm_abi::report::{
    CONSOLE_SEPARATOR, HYPERVISOR_SOURCE, OPERATOR_RESTART, Record, RecordError, VmStatus,
    parse_line,
};

/// One console line, classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A report record (or a line that starts like one but is malformed).
    Record(Result<Record<'a>, RecordError>),
    /// `<source> | <text>`: a VM's or the hypervisor's own console output.
    Console {
        /// VM name or [`HYPERVISOR_SOURCE`].
        source: &'a str,
        /// The text after the separator.
        text: &'a str,
    },
    /// Anything else (BIOS, boot loader, a hypervisor that is not talking
    /// the protocol yet).
    Noise(&'a str),
    /// Nothing visible.
    Blank,
}

/// Removes terminal escape sequences and control characters (boot loaders
/// draw menus with them), keeping tabs.
pub fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            // CSI (ESC [) runs through parameters to a final byte; other
            // escapes are two characters long.
            '\u{1b}' => {
                if chars.next() == Some('[') {
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn is_source(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(c) if c.is_ascii_alphanumeric())
        && bytes.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Classifies one sanitized line.
pub fn classify(line: &str) -> Line<'_> {
    if let Some(record) = parse_line(line) {
        return Line::Record(record);
    }
    if line.trim().is_empty() {
        return Line::Blank;
    }
    match line.split_once(CONSOLE_SEPARATOR) {
        Some((source, text)) if is_source(source) => Line::Console { source, text },
        _ => Line::Noise(line),
    }
}

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[1;31m";
const PALETTE: [&str; 6] = [
    "\x1b[36m", "\x1b[32m", "\x1b[35m", "\x1b[33m", "\x1b[34m", "\x1b[96m",
];

/// Renders classified lines for the user.
#[derive(Clone, Debug)]
pub struct Renderer {
    names: Vec<String>,
    restart_limits: Vec<u32>,
    /// Per VM: the name of its restart hook, which decides instead of the
    /// limit.
    restart_hooks: Vec<Option<String>>,
    width: usize,
    colour: bool,
    verbose: bool,
    hypervisor_spoke: bool,
    /// Names of VMs started at runtime (not in the manifest), by id, from
    /// their `vm-start` records.
    runtime_names: std::collections::BTreeMap<u32, String>,
}

/// The metric a VM started at runtime reports when it reaches `main` (the
/// hypervisor's `platform::run::START_TO_MAIN`).
pub const START_TO_MAIN: &str = "start_to_main";
/// The metric the first VM of a command reports beside it: from the
/// control core taking the command (the hypervisor's
/// `platform::run::COMMAND_TO_MAIN`).
pub const COMMAND_TO_MAIN: &str = "command_to_main";
/// How that metric's line reads, up to its number.
pub const AT_MAIN: &str = "-- at main, ";

impl Renderer {
    /// A renderer for a manifest's VMs (`names`, in manifest order); sources
    /// are padded to `width`. `colour` adds ANSI colours; `verbose` shows
    /// records and boot-loader noise too.
    pub fn new(names: Vec<String>, width: usize, colour: bool, verbose: bool) -> Self {
        Renderer {
            names,
            restart_limits: Vec::new(),
            restart_hooks: Vec::new(),
            width,
            colour,
            verbose,
            hypervisor_spoke: false,
            runtime_names: std::collections::BTreeMap::new(),
        }
    }

    /// Each VM's restart limit, in manifest order, shown with its restarts.
    pub fn with_restart_limits(mut self, limits: Vec<u32>) -> Self {
        self.restart_limits = limits;
        self
    }

    /// Per VM, the name of its restart hook (if it has one): its restarts
    /// are shown as the hook's decision, not against a limit.
    pub fn with_restart_hooks(mut self, hooks: Vec<Option<String>>) -> Self {
        self.restart_hooks = hooks;
        self
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("{code}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    fn source_colour(&self, source: &str) -> &'static str {
        if source == HYPERVISOR_SOURCE {
            return DIM;
        }
        let index = self
            .names
            .iter()
            .position(|n| n == source)
            .unwrap_or_else(|| source.bytes().map(usize::from).sum::<usize>());
        PALETTE[index % PALETTE.len()]
    }

    fn prefixed(&self, source: &str, text: &str) -> String {
        let padded = format!("{source:>width$}", width = self.width);
        format!(
            "{}{CONSOLE_SEPARATOR}{text}",
            self.paint(self.source_colour(source), &padded)
        )
    }

    fn vm_name(&self, vm: u32) -> String {
        self.names
            .get(vm as usize)
            .or_else(|| self.runtime_names.get(&vm))
            .cloned()
            .unwrap_or_else(|| format!("vm{vm}"))
    }

    /// The text to print for `line` (`raw` is its sanitized text), or `None`
    /// to hide it.
    pub fn render(&mut self, raw: &str, line: &Line<'_>) -> Option<String> {
        match line {
            Line::Blank => None,
            Line::Noise(text) => {
                (self.verbose || self.hypervisor_spoke).then(|| self.paint(DIM, text))
            }
            Line::Console { source, text } => {
                self.hypervisor_spoke = true;
                Some(self.prefixed(source, text))
            }
            Line::Record(Err(e)) => {
                self.hypervisor_spoke = true;
                Some(self.prefixed(
                    HYPERVISOR_SOURCE,
                    &self.paint(RED, &format!("!! {e}: {raw}")),
                ))
            }
            Line::Record(Ok(record)) => {
                self.hypervisor_spoke = true;
                if let Record::VmStart { vm, name, .. } = *record
                    && vm as usize >= self.names.len()
                {
                    self.runtime_names.insert(vm, name.to_string());
                }
                if self.verbose {
                    return Some(self.paint(DIM, raw));
                }
                self.summarize(record)
            }
        }
    }

    fn summarize(&self, record: &Record<'_>) -> Option<String> {
        match *record {
            Record::VmStart {
                name,
                image,
                core,
                apic,
                memory,
                ..
            } => Some(self.prefixed(
                name,
                &format!(
                    "-- starting image {image} on core {core} (APIC {apic}) with {} KiB",
                    memory >> 10
                ),
            )),
            Record::VmRestart {
                vm,
                attempt,
                reason,
            } if reason == OPERATOR_RESTART => Some(self.prefixed(
                &self.vm_name(vm),
                &format!("-- restarting (restart {attempt}): {reason}"),
            )),
            Record::VmRestart {
                vm,
                attempt,
                reason,
            } => {
                let hook = self.restart_hooks.get(vm as usize).and_then(Option::as_ref);
                let of = match (hook, self.restart_limits.get(vm as usize)) {
                    (Some(h), _) => format!("{attempt}, as its restart hook `{h}` says"),
                    (None, Some(limit)) => format!("{attempt} of {limit}"),
                    (None, None) => attempt.to_string(),
                };
                Some(self.prefixed(
                    &self.vm_name(vm),
                    &self.paint(RED, &format!("-- restarting ({of}): {reason}")),
                ))
            }
            Record::VmEnd {
                vm,
                status,
                code,
                reason,
                ..
            } => {
                let text = match (status, reason.is_empty()) {
                    (VmStatus::Killed, false) => self.paint(RED, &format!("-- killed: {reason}")),
                    (_, false) => format!("-- {reason}"),
                    (_, true) => format!("-- {} (code {code})", status.name()),
                };
                Some(self.prefixed(&self.vm_name(vm), &text))
            }
            Record::Metric { vm, name, value } if name == START_TO_MAIN => Some(self.prefixed(
                &self.vm_name(vm),
                &format!("{AT_MAIN}{value} instructions after its core took the start"),
            )),
            Record::Fatal { reason } => Some(self.prefixed(
                HYPERVISOR_SOURCE,
                &self.paint(RED, &format!("!! fatal: {reason}")),
            )),
            // Links and the window are in the summary at the end.
            Record::Hypervisor { .. }
            | Record::Metric { .. }
            | Record::VmProgress { .. }
            | Record::Link { .. }
            | Record::Nic { .. }
            | Record::NicPort { .. }
            | Record::Hook { .. }
            | Record::VmHook { .. }
            | Record::HookMap { .. }
            | Record::HookEntry { .. }
            | Record::Window { .. }
            | Record::NicWindow { .. }
            | Record::Paging { .. }
            | Record::Block { .. }
            | Record::BlockData { .. }
            | Record::Done { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_strips_escapes_and_controls() {
        assert_eq!(sanitize("\x1b[2J\x1b[1;1HGNU GRUB\r"), "GNU GRUB");
        assert_eq!(sanitize("a\tb\x07c\x1b7d"), "a\tbcd");
        assert_eq!(sanitize("héllo"), "héllo");
        assert_eq!(sanitize("\x1b["), "");
    }

    #[test]
    fn lines_are_classified() {
        assert_eq!(
            classify("hello | Hello, world | again"),
            Line::Console {
                source: "hello",
                text: "Hello, world | again"
            }
        );
        assert_eq!(
            classify("hv | corral up"),
            Line::Console {
                source: "hv",
                text: "corral up"
            }
        );
        assert!(matches!(
            classify("@corral done vms=1"),
            Line::Record(Ok(Record::Done { vms: 1 }))
        ));
        assert!(matches!(classify("@corral done"), Line::Record(Err(_))));
        assert_eq!(
            classify("Booting `corral'"),
            Line::Noise("Booting `corral'")
        );
        assert_eq!(classify("a b | c"), Line::Noise("a b | c"));
        assert_eq!(classify(" | c"), Line::Noise(" | c"));
        assert_eq!(classify("   "), Line::Blank);
    }

    fn render(r: &mut Renderer, raw: &str) -> Option<String> {
        r.render(raw, &classify(raw))
    }

    #[test]
    fn rendering_pads_sources_and_summarizes_records() {
        let mut r = Renderer::new(vec!["hello".into(), "badcall".into()], 7, false, false);
        assert_eq!(render(&mut r, "GNU GRUB  version 2.06"), None);
        assert_eq!(
            render(&mut r, "hv | corral up").as_deref(),
            Some("     hv | corral up")
        );
        assert_eq!(render(&mut r, "late noise").as_deref(), Some("late noise"));
        assert_eq!(render(&mut r, "@corral hv abi=4 cores=1 free=1000"), None);
        assert_eq!(
            render(
                &mut r,
                "@corral vm-start vm=0 name=hello entry=hello image=hello core=1 apic=2 memory=262144"
            )
            .as_deref(),
            Some("  hello | -- starting image hello on core 1 (APIC 2) with 256 KiB")
        );
        assert_eq!(
            render(&mut r, "hello | Hello, world").as_deref(),
            Some("  hello | Hello, world")
        );
        assert_eq!(
            render(
                &mut r,
                "@corral vm-end vm=0 status=exited code=0 boot=5 restarts=0 slices=1 private=0 shared=0 overhead=0 exits=vmcall:2 console=0 console_dropped=0 reason=exited with code 0"
            )
            .as_deref(),
            Some("  hello | -- exited with code 0")
        );
        assert_eq!(
            render(
                &mut r,
                "@corral vm-end vm=1 status=killed code=-1 boot=5 restarts=0 slices=1 private=0 shared=0 overhead=0 exits=vmcall:2 console=0 console_dropped=0 reason=bad hypercall: unknown number 0xdead"
            )
            .as_deref(),
            Some("badcall | -- killed: bad hypercall: unknown number 0xdead")
        );
        assert_eq!(render(&mut r, "@corral metric vm=0 name=x value=1"), None);
        assert_eq!(
            render(&mut r, "@corral window frames=10 exits=0 busy=2500"),
            None
        );
        assert_eq!(
            render(
                &mut r,
                "@corral link link=0 a=hello.0 b=badcall.0 core=0 ab_frames=1 ab_bytes=64 ab_drop_peer=0 ab_drop_size=0 ab_drop_stalled=0 ab_stalls=0 ba_frames=0 ba_bytes=0 ba_drop_peer=0 ba_drop_size=0 ba_drop_stalled=0 ba_stalls=0 busy=300"
            ),
            None
        );
        assert_eq!(render(&mut r, "@corral done vms=2"), None);
        assert_eq!(
            render(&mut r, "@corral fatal reason=no VMX").as_deref(),
            Some("     hv | !! fatal: no VMX")
        );
        let bad = render(&mut r, "@corral done").unwrap();
        assert!(
            bad.contains("malformed report record") && bad.ends_with("@corral done"),
            "{bad}"
        );
    }

    #[test]
    fn vms_started_at_runtime_are_named_and_their_main_shown() {
        let mut r = Renderer::new(vec!["web".into()], 5, false, false);
        render(
            &mut r,
            "@corral vm-start vm=3 name=web-3 entry=web image=spin core=1 apic=1 memory=262144",
        );
        assert_eq!(
            render(&mut r, "@corral metric vm=3 name=start_to_main value=56000").as_deref(),
            Some("web-3 | -- at main, 56000 instructions after its core took the start")
        );
        // Other metrics stay in the report.
        assert_eq!(
            render(&mut r, "@corral metric vm=3 name=other value=1"),
            None
        );
        assert_eq!(
            render(
                &mut r,
                "@corral vm-end vm=3 status=stopped code=0 boot=5 restarts=0 slices=1 private=0 shared=0 overhead=0 exits=vmcall:2 console=0 console_dropped=0 reason=stopped by the operator"
            )
            .as_deref(),
            Some("web-3 | -- stopped by the operator")
        );
        // A VM never announced keeps its number.
        assert_eq!(
            render(
                &mut r,
                "@corral vm-end vm=9 status=stopped code=0 boot=5 restarts=0 slices=1 private=0 shared=0 overhead=0 exits=vmcall:2 console=0 console_dropped=0 reason=stopped"
            )
            .as_deref(),
            Some("  vm9 | -- stopped")
        );
    }

    #[test]
    fn restarts_show_the_attempt_and_the_limit() {
        let names = vec!["web-0".to_string(), "web-1".to_string()];
        let mut r = Renderer::new(names.clone(), 5, false, false).with_restart_limits(vec![0, 2]);
        assert_eq!(
            render(
                &mut r,
                "@corral vm-restart vm=1 attempt=1 reason=triple fault at rip 0x10003d"
            )
            .as_deref(),
            Some("web-1 | -- restarting (1 of 2): triple fault at rip 0x10003d")
        );
        let mut r = Renderer::new(names.clone(), 5, false, false);
        assert_eq!(
            render(&mut r, "@corral vm-restart vm=0 attempt=3 reason=x").as_deref(),
            Some("web-0 | -- restarting (3): x")
        );
        let mut r = Renderer::new(names, 5, false, false)
            .with_restart_limits(vec![0, 0])
            .with_restart_hooks(vec![None, Some("twice".to_string())]);
        assert_eq!(
            render(&mut r, "@corral vm-restart vm=1 attempt=2 reason=x").as_deref(),
            Some("web-1 | -- restarting (2, as its restart hook `twice` says): x")
        );
    }

    #[test]
    fn verbose_shows_everything_and_colour_is_optional() {
        let mut r = Renderer::new(vec!["hello".into()], 5, true, true);
        assert_eq!(
            render(&mut r, "GRUB").as_deref(),
            Some("\x1b[2mGRUB\x1b[0m")
        );
        assert_eq!(
            render(&mut r, "@corral done vms=1").as_deref(),
            Some("\x1b[2m@corral done vms=1\x1b[0m")
        );
        let line = render(&mut r, "hello | hi").unwrap();
        assert_eq!(line, format!("{}hello{RESET} | hi", PALETTE[0]));
    }
}
