//! What the `hello` image does, decided from its arguments and its VM name.
//!
//! Arguments (optional): `crash-clone=K` — the VM whose name ends with `-K`
//! (clone K of a fleet, see the manifest's `count`) prints a line and
//! triple-faults instead of greeting; `scribble-clone=K` — that clone writes
//! to its own code, which every clone of the image shares read-only, and must
//! be stopped for it. Every other VM greets as usual. Other words are ignored.

use guest_lib::args::{Args, parse_u64};

/// The argument key that picks the clone that crashes.
pub const CRASH_CLONE_KEY: &str = "crash-clone";
/// The argument key that picks the clone that writes to its shared code.
pub const SCRIBBLE_CLONE_KEY: &str = "scribble-clone";

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
    /// This VM is clone `clone`, the one told to write to its shared code.
    Scribble {
        /// Its clone index.
        clone: u32,
    },
}

/// A `…-clone=` argument has a value that is not a clone index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadClone<'a> {
    /// The argument key.
    pub key: &'static str,
    /// Its value.
    pub value: &'a str,
}

impl core::fmt::Display for BadClone<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "`{}={}` is not a clone index (a whole number below 2^32)",
            self.key, self.value
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

/// The clone index named by argument `key`, if given.
fn chosen<'a>(args: &'a str, key: &'static str) -> Result<Option<u32>, BadClone<'a>> {
    let Some(value) = Args::new(args).value(key) else {
        return Ok(None);
    };
    parse_u64(value)
        .and_then(|k| u32::try_from(k).ok())
        .map(Some)
        .ok_or(BadClone { key, value })
}

/// The plan for a VM named `name` with argument string `args`.
pub fn plan<'a>(args: &'a str, name: &str) -> Result<Plan, BadClone<'a>> {
    let crash = chosen(args, CRASH_CLONE_KEY)?;
    let scribble = chosen(args, SCRIBBLE_CLONE_KEY)?;
    Ok(match clone_index(name) {
        Some(clone) if Some(clone) == crash => Plan::Crash { clone },
        Some(clone) if Some(clone) == scribble => Plan::Scribble { clone },
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
    fn only_the_named_clone_scribbles() {
        assert_eq!(
            plan("scribble-clone=2", "web-2"),
            Ok(Plan::Scribble { clone: 2 })
        );
        assert_eq!(plan("scribble-clone=2", "web-1"), Ok(Plan::Greet));
        assert_eq!(
            plan("crash-clone=1 scribble-clone=2", "web-1"),
            Ok(Plan::Crash { clone: 1 })
        );
    }

    #[test]
    fn bad_values_are_refused() {
        let bad = |key, value| Err(BadClone { key, value });
        assert_eq!(plan("crash-clone=x", "a-1"), bad(CRASH_CLONE_KEY, "x"));
        assert_eq!(plan("crash-clone=", "a-1"), bad(CRASH_CLONE_KEY, ""));
        assert_eq!(
            plan("crash-clone=4294967296", "a-1"),
            bad(CRASH_CLONE_KEY, "4294967296")
        );
        assert_eq!(
            plan("scribble-clone=-1", "a-1"),
            bad(SCRIBBLE_CLONE_KEY, "-1")
        );
        let shown = alloc::format!(
            "{}",
            BadClone {
                key: CRASH_CLONE_KEY,
                value: "x"
            }
        );
        assert!(shown.contains("crash-clone=x"), "{shown}");
    }
}
