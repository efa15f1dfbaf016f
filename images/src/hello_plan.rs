//! What the `hello` image does, decided from its arguments and its VM name.
//!
//! Argument: `crash-clone=K` (optional). A VM whose name ends with `-K` (clone
//! K of a fleet, see the manifest's `count`) prints a line and triple-faults
//! instead of greeting; every other VM greets as usual. Other words are
//! ignored.

use guest_lib::args::{Args, parse_u64};

/// The argument key that picks the clone that crashes.
pub const CRASH_CLONE_KEY: &str = "crash-clone";

/// What `hello` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Print the greeting and exit 0.
    Greet,
    /// This VM is clone `clone`, the one told to crash: triple-fault.
    Crash {
        /// Its clone index.
        clone: u32,
    },
}

/// `crash-clone=` has a value that is not a clone index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadCrashClone<'a>(pub &'a str);

impl core::fmt::Display for BadCrashClone<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "`{CRASH_CLONE_KEY}={}` is not a clone index (a whole number below 2^32)",
            self.0
        )
    }
}

/// The clone index at the end of a VM name (`web-3` → 3), if it has one.
pub fn clone_index(name: &str) -> Option<u32> {
    let (_, suffix) = name.rsplit_once('-')?;
    if suffix.is_empty() || !suffix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    suffix.parse().ok()
}

/// The plan for a VM named `name` with argument string `args`.
pub fn plan<'a>(args: &'a str, name: &str) -> Result<Plan, BadCrashClone<'a>> {
    let Some(text) = Args::new(args).value(CRASH_CLONE_KEY) else {
        return Ok(Plan::Greet);
    };
    let crash = parse_u64(text)
        .and_then(|k| u32::try_from(k).ok())
        .ok_or(BadCrashClone(text))?;
    Ok(match clone_index(name) {
        Some(clone) if clone == crash => Plan::Crash { clone },
        _ => Plan::Greet,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_indices_come_from_the_name() {
        assert_eq!(clone_index("hello-0"), Some(0));
        assert_eq!(clone_index("web-a-12"), Some(12));
        assert_eq!(clone_index("hello"), None);
        assert_eq!(clone_index("hello-"), None);
        assert_eq!(clone_index("hello-x1"), None);
        assert_eq!(clone_index("hello-+1"), None);
        assert_eq!(clone_index("hello-99999999999"), None);
    }

    #[test]
    fn only_the_named_clone_crashes() {
        assert_eq!(plan("", "hello-1"), Ok(Plan::Greet));
        assert_eq!(
            plan("crash-clone=1", "hello-1"),
            Ok(Plan::Crash { clone: 1 })
        );
        assert_eq!(
            plan("x crash-clone=1 y", "f-1"),
            Ok(Plan::Crash { clone: 1 })
        );
        assert_eq!(plan("crash-clone=1", "hello-0"), Ok(Plan::Greet));
        assert_eq!(plan("crash-clone=1", "hello-11"), Ok(Plan::Greet));
        assert_eq!(plan("crash-clone=1", "hello"), Ok(Plan::Greet));
        assert_eq!(
            plan("crash-clone=0x1", "hello-1"),
            Ok(Plan::Crash { clone: 1 })
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert_eq!(plan("crash-clone=x", "a-1"), Err(BadCrashClone("x")));
        assert_eq!(plan("crash-clone=", "a-1"), Err(BadCrashClone("")));
        assert_eq!(
            plan("crash-clone=4294967296", "a-1"),
            Err(BadCrashClone("4294967296"))
        );
        let shown = alloc::format!("{}", BadCrashClone("x"));
        assert!(shown.contains("crash-clone=x"), "{shown}");
    }
}
