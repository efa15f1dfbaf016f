//! What a manifest expects of a VM (`exit:N`, `killed`, `killed:<text>`, `stopped`) and
//! whether a VM's outcome meets it.

use std::fmt;
use vmm_abi::report::VmStatus;

/// A VM's expected end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expectation {
    /// The guest exits by itself with this code.
    Exit(i64),
    /// The hypervisor stops the guest; if given, the reason contains this text.
    Killed(Option<String>),
    /// The operator stops it (a service run's `stop` or `down`).
    Stopped,
}

impl Default for Expectation {
    fn default() -> Self {
        Expectation::Exit(0)
    }
}

/// How to spell an expectation, for error messages.
pub const EXPECT_SYNTAX: &str =
    "use `exit:N`, `killed`, `killed:<part of the reason>` or `stopped`";

impl Expectation {
    /// Parses the manifest spelling; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "killed" {
            return Ok(Expectation::Killed(None));
        }
        if text == "stopped" {
            return Ok(Expectation::Stopped);
        }
        if let Some(part) = text.strip_prefix("killed:") {
            if part.is_empty() {
                return Err(format!(
                    "`{text}` has no text after `killed:`; {EXPECT_SYNTAX}"
                ));
            }
            return Ok(Expectation::Killed(Some(part.to_string())));
        }
        if let Some(code) = text.strip_prefix("exit:") {
            return code
                .trim()
                .parse()
                .map(Expectation::Exit)
                .map_err(|_| format!("`{code}` in `{text}` is not an exit code; {EXPECT_SYNTAX}"));
        }
        Err(format!("`{text}` is not an expectation; {EXPECT_SYNTAX}"))
    }

    /// Whether a VM that ended (or not) with `status`, exit `code` and
    /// `reason` ended as expected.
    pub fn is_met(&self, status: VmStatus, code: i64, reason: &str) -> bool {
        match self {
            Expectation::Exit(want) => status == VmStatus::Exited && code == *want,
            Expectation::Killed(None) => status == VmStatus::Killed,
            Expectation::Killed(Some(part)) => {
                status == VmStatus::Killed && reason.contains(part.as_str())
            }
            Expectation::Stopped => status == VmStatus::Stopped,
        }
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expectation::Exit(code) => write!(f, "exit:{code}"),
            Expectation::Killed(None) => f.write_str("killed"),
            Expectation::Killed(Some(part)) => write!(f, "killed:{part}"),
            Expectation::Stopped => f.write_str("stopped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outcome as the plain values `is_met` judges.
    struct Vm(VmStatus, i64, &'static str);

    fn vm(status: VmStatus, code: i64, reason: &'static str) -> Vm {
        Vm(status, code, reason)
    }

    impl Expectation {
        fn met(&self, v: &Vm) -> bool {
            self.is_met(v.0, v.1, v.2)
        }
    }

    #[test]
    fn parses_and_prints_every_form() {
        for (text, want) in [
            ("exit:0", Expectation::Exit(0)),
            ("exit:-3", Expectation::Exit(-3)),
            ("killed", Expectation::Killed(None)),
            ("stopped", Expectation::Stopped),
            (
                "killed:EPT violation",
                Expectation::Killed(Some("EPT violation".into())),
            ),
        ] {
            let e = Expectation::parse(text).unwrap();
            assert_eq!(e, want);
            assert_eq!(e.to_string(), text);
        }
    }

    #[test]
    fn refuses_bad_spellings() {
        for text in ["", "exit", "exit:", "exit:x", "killed:", "dead", "Exit:0"] {
            let e = Expectation::parse(text).unwrap_err();
            assert!(e.contains("exit:N"), "{text}: {e}");
        }
    }

    #[test]
    fn judges_outcomes() {
        let exited0 = vm(VmStatus::Exited, 0, "exited with code 0");
        let exited1 = vm(VmStatus::Exited, 1, "exited with code 1");
        let ept = vm(VmStatus::Killed, -1, "EPT violation: read at 0x200000");
        let running = vm(VmStatus::Running, 0, "");
        let exit0 = Expectation::Exit(0);
        assert!(exit0.met(&exited0));
        assert!(!exit0.met(&exited1));
        assert!(!exit0.met(&ept));
        assert!(!exit0.met(&running));
        assert!(Expectation::Killed(None).met(&ept));
        assert!(!Expectation::Killed(None).met(&exited0));
        assert!(Expectation::Killed(Some("EPT violation".into())).met(&ept));
        assert!(!Expectation::Killed(Some("triple fault".into())).met(&ept));
        assert!(!Expectation::Killed(Some("exited".into())).met(&exited0));
        let stopped = vm(VmStatus::Stopped, 0, "stopped by the operator");
        assert!(Expectation::Stopped.met(&stopped));
        assert!(!Expectation::Stopped.met(&running));
        assert!(!Expectation::Stopped.met(&ept));
        assert!(!exit0.met(&stopped));
    }
}
