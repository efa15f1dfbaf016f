//! The host tool's one error type: a one-line message for the user, shown as
//! `corral: error: <message>`, with optional detail (build output, the tail
//! of the emulator's log) printed below it.

use std::fmt;

/// Something that stops the tool, said in words for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    message: String,
    detail: Option<String>,
}

/// Result with the tool's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error with a one-line message.
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            detail: None,
        }
    }

    /// Adds text shown below the message (several lines allowed).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        if !detail.trim().is_empty() {
            self.detail = Some(detail);
        }
        self
    }

    /// The one-line message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The detail text, if any.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
