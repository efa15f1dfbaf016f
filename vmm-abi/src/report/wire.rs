//! How a record line is written and read: the `key=value` codec of each
//! field type, and the macros that declare a record (or a group of
//! counters) once and generate its type, printer, parser and names.

use super::{EXIT_KINDS, ExitCounts, ExitKind, Hex, PortName, VmStatus};
use core::fmt;

/// A line that starts like a record but does not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordError {
    /// The key (or `"kind"`, or `"end of line"`) that is missing or
    /// malformed.
    pub key: &'static str,
    /// For a field written as several keys (a link direction's counters,
    /// `ab_frames`), the counter after the key and `_`.
    pub part: Option<&'static str>,
}

impl RecordError {
    /// A bad or missing `key`.
    pub(super) const fn key(key: &'static str) -> Self {
        RecordError { key, part: None }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed report record: bad or missing `")?;
        f.write_str(self.key)?;
        if let Some(part) = self.part {
            write!(f, "_{part}")?;
        }
        f.write_str("`")
    }
}

/// What is left of a record line after its kind: `key=value` fields in
/// order, separated by single spaces.
pub(super) struct Fields<'a> {
    rest: &'a str,
}

impl<'a> Fields<'a> {
    pub(super) fn new(rest: &'a str) -> Self {
        Fields { rest }
    }

    /// The value of the next field, which must be `key=` (`key_part=` with
    /// a part): up to the next space, and not empty.
    fn value(
        &mut self,
        key: &'static str,
        part: Option<&'static str>,
    ) -> Result<&'a str, RecordError> {
        let bad = RecordError { key, part };
        let mut after = self.rest.strip_prefix(key).ok_or(bad)?;
        if let Some(part) = part {
            after = after
                .strip_prefix('_')
                .and_then(|r| r.strip_prefix(part))
                .ok_or(bad)?;
        }
        let after = after.strip_prefix('=').ok_or(bad)?;
        let end = after.find(' ').unwrap_or(after.len());
        let (value, rest) = after.split_at(end);
        self.rest = rest.strip_prefix(' ').unwrap_or(rest);
        if value.is_empty() {
            Err(bad)
        } else {
            Ok(value)
        }
    }

    /// The value of `key=` to the end of the line (spaces and all, maybe
    /// empty).
    fn rest_of_line(&mut self, key: &'static str) -> Result<&'a str, RecordError> {
        let bad = RecordError::key(key);
        let value = self
            .rest
            .strip_prefix(key)
            .and_then(|r| r.strip_prefix('='))
            .ok_or(bad)?;
        self.rest = "";
        Ok(value)
    }

    /// Whether the whole line was read.
    pub(super) fn end(&self) -> Result<(), RecordError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(RecordError::key("end of line"))
        }
    }
}

/// How one field of a record is written (`key=value`, no surrounding
/// spaces) and read back. A field type is its own codec unless the record
/// declaration names another (`reason: &'a str as Rest`).
pub(super) trait Codec<'a> {
    /// The field's type in the record.
    type Value;
    /// Writes the field.
    fn put(value: &Self::Value, key: &'static str, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    /// Reads the field from the front of `fields`.
    fn take(fields: &mut Fields<'a>, key: &'static str) -> Result<Self::Value, RecordError>;
}

macro_rules! number_codec {
    ($($t:ty),*) => {$(
        impl<'a> Codec<'a> for $t {
            type Value = $t;
            fn put(value: &$t, key: &'static str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{key}={value}")
            }
            fn take(fields: &mut Fields<'a>, key: &'static str) -> Result<$t, RecordError> {
                fields.value(key, None)?.parse().map_err(|_| RecordError::key(key))
            }
        }
    )*};
}

number_codec!(u32, u64, i64);

/// A word: up to the next space, never empty (names).
impl<'a> Codec<'a> for &'a str {
    type Value = &'a str;
    fn put(value: &&'a str, key: &'static str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{key}={value}")
    }
    fn take(fields: &mut Fields<'a>, key: &'static str) -> Result<&'a str, RecordError> {
        fields.value(key, None)
    }
}

/// Text to the end of the line (a `reason`): the last field of its record.
pub(super) enum Rest {}

impl<'a> Codec<'a> for Rest {
    type Value = &'a str;
    fn put(value: &&'a str, key: &'static str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{key}={value}")
    }
    fn take(fields: &mut Fields<'a>, key: &'static str) -> Result<&'a str, RecordError> {
        fields.rest_of_line(key)
    }
}

impl<'a> Codec<'a> for VmStatus {
    type Value = VmStatus;
    fn put(value: &VmStatus, key: &'static str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{key}={}", value.name())
    }
    fn take(fields: &mut Fields<'a>, key: &'static str) -> Result<VmStatus, RecordError> {
        VmStatus::from_name(fields.value(key, None)?).ok_or(RecordError::key(key))
    }
}

impl<'a> Codec<'a> for PortName<'a> {
    type Value = PortName<'a>;
    fn put(value: &PortName<'a>, key: &'static str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{key}={value}")
    }
    fn take(fields: &mut Fields<'a>, key: &'static str) -> Result<PortName<'a>, RecordError> {
        PortName::parse(fields.value(key, None)?).ok_or(RecordError::key(key))
    }
}

/// Bytes as hex digits, or `-` for none.
impl<'a> Codec<'a> for Hex<'a> {
    type Value = Hex<'a>;
    fn put(value: &Hex<'a>, key: &'static str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{key}={value}")
    }
    fn take(fields: &mut Fields<'a>, key: &'static str) -> Result<Hex<'a>, RecordError> {
        let text = fields.value(key, None)?;
        let hex = text.len().is_multiple_of(2) && text.bytes().all(|c| c.is_ascii_hexdigit());
        if text == "-" || hex {
            Ok(Hex::Text(text))
        } else {
            Err(RecordError::key(key))
        }
    }
}

/// Exit counts: `kind:n` for each kind with n > 0, comma separated, or
/// `-` when there are none.
impl<'a> Codec<'a> for ExitCounts {
    type Value = ExitCounts;
    fn put(value: &ExitCounts, key: &'static str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{key}=")?;
        let mut first = true;
        for (kind, &n) in ExitKind::ALL.iter().zip(value) {
            if n > 0 {
                if !first {
                    f.write_str(",")?;
                }
                write!(f, "{}:{n}", kind.name())?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
    fn take(fields: &mut Fields<'a>, key: &'static str) -> Result<ExitCounts, RecordError> {
        let text = fields.value(key, None)?;
        let bad = RecordError::key(key);
        let mut counts = [0u64; EXIT_KINDS];
        if text == "-" {
            return Ok(counts);
        }
        for item in text.split(',') {
            let (name, n) = item.split_once(':').ok_or(bad)?;
            let kind = ExitKind::from_name(name).ok_or(bad)?;
            counts[kind as usize] = n.parse().map_err(|_| bad)?;
        }
        Ok(counts)
    }
}

/// Writes a set of counters: each as `key_counter=n`, in `names` order.
pub(super) fn put_counters(
    names: &[&str],
    values: &[u64],
    key: &'static str,
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    for (i, (name, n)) in names.iter().zip(values).enumerate() {
        let sep = if i == 0 { "" } else { " " };
        write!(f, "{sep}{key}_{name}={n}")?;
    }
    Ok(())
}

/// Reads a set of counters written by [`put_counters`].
pub(super) fn take_counters<'a, const N: usize>(
    fields: &mut Fields<'a>,
    key: &'static str,
    names: &[&'static str; N],
) -> Result<[u64; N], RecordError> {
    let mut values = [0u64; N];
    for (v, &name) in values.iter_mut().zip(names) {
        let bad = RecordError {
            key,
            part: Some(name),
        };
        *v = fields.value(key, Some(name))?.parse().map_err(|_| bad)?;
    }
    Ok(values)
}

/// The number of identifiers given.
macro_rules! count {
    () => { 0 };
    ($head:ident $($tail:ident)*) => { 1 + $crate::report::wire::count!($($tail)*) };
}

/// The codec of a field: its type, or the one named after `as`.
macro_rules! codec {
    ($ty:ty as $codec:ty) => {
        $codec
    };
    ($ty:ty) => {
        $ty
    };
}

/// Declares a group of `u64` counters once: the struct, the counters'
/// names (`FIELDS`, the order records list them in), and conversions to
/// and from an array in that order.
macro_rules! counters {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident: u64, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: u64, )*
        }

        impl $name {
            /// The counters' names, in the order records list them.
            pub const FIELDS: [&'static str; $crate::report::wire::count!($($field)*)] =
                [$(stringify!($field)),*];

            /// The counters, in [`Self::FIELDS`] order.
            pub const fn values(&self) -> [u64; $crate::report::wire::count!($($field)*)] {
                [$(self.$field),*]
            }

            /// Counters from their values in [`Self::FIELDS`] order.
            pub const fn from_values(
                values: [u64; $crate::report::wire::count!($($field)*)],
            ) -> Self {
                let [$($field),*] = values;
                $name { $($field),* }
            }
        }

        /// Each counter as `key_counter=n`, in [`Self::FIELDS`] order.
        impl<'a> $crate::report::wire::Codec<'a> for $name {
            type Value = $name;
            fn put(
                value: &$name,
                key: &'static str,
                f: &mut core::fmt::Formatter<'_>,
            ) -> core::fmt::Result {
                $crate::report::wire::put_counters(&$name::FIELDS, &value.values(), key, f)
            }
            fn take(
                fields: &mut $crate::report::wire::Fields<'a>,
                key: &'static str,
            ) -> Result<$name, $crate::report::RecordError> {
                $crate::report::wire::take_counters(fields, key, &$name::FIELDS)
                    .map($name::from_values)
            }
        }
    };
}

/// Declares the records once: each variant with its kind (the word after
/// [`super::RECORD_PREFIX`]) and its fields in line order, each field's
/// key being its name. Generates the enum, `KINDS`, `kind()`, the printer
/// (`Display`) and the parser (`parse_body`).
macro_rules! records {
    (
        $(#[$meta:meta])*
        pub enum $name:ident<$lt:lifetime> {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $kind:literal {
                    $( $(#[$fmeta:meta])* $field:ident: $ty:ty $(as $codec:ty)?, )*
                },
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name<$lt> {
            $(
                $(#[$vmeta])*
                $variant {
                    $( $(#[$fmeta])* $field: $ty, )*
                },
            )*
        }

        impl<$lt> $name<$lt> {
            /// Every record kind, as record lines spell it.
            pub const KINDS: [&'static str; $crate::report::wire::count!($($variant)*)] =
                [$($kind),*];

            /// This record's kind, as its line spells it.
            pub const fn kind(&self) -> &'static str {
                match self {
                    $( $name::$variant { .. } => $kind, )*
                }
            }

            /// Parses a record line without its prefix.
            fn parse_body(body: &$lt str) -> Result<Self, $crate::report::RecordError> {
                let (kind, rest) = body.split_once(' ').unwrap_or((body, ""));
                let mut fields = $crate::report::wire::Fields::new(rest);
                let record = match kind {
                    $(
                        $kind => $name::$variant {
                            $(
                                $field: <$crate::report::wire::codec!($ty $(as $codec)?)
                                    as $crate::report::wire::Codec<$lt>>::take(
                                    &mut fields,
                                    stringify!($field),
                                )?,
                            )*
                        },
                    )*
                    _ => return Err($crate::report::RecordError::key("kind")),
                };
                fields.end()?;
                Ok(record)
            }
        }

        impl<$lt> core::fmt::Display for $name<$lt> {
            /// The record line, without the trailing newline.
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str($crate::report::RECORD_PREFIX)?;
                match self {
                    $(
                        $name::$variant { $($field),* } => {
                            f.write_str($kind)?;
                            $(
                                f.write_str(" ")?;
                                <$crate::report::wire::codec!($ty $(as $codec)?)
                                    as $crate::report::wire::Codec<$lt>>::put(
                                    $field,
                                    stringify!($field),
                                    f,
                                )?;
                            )*
                        }
                    )*
                }
                Ok(())
            }
        }
    };
}

pub(super) use {codec, count, counters, records};
