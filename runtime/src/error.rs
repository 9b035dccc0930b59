//! [`Error`]: setup failures (bad target, bind failure), as opposed to RPC outcomes, which are
//! a [`Status`](crate::Status).

use std::fmt;

/// A setup failure: an invalid target or configuration, or an I/O error while binding or
/// serving.
///
/// # Examples
///
/// ```
/// let err = grpc_runtime::client::Channel::new("unix:").unwrap_err();
/// assert!(err.is_invalid_target());
/// ```
pub struct Error {
    kind: Kind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    InvalidTarget,
    InvalidConfig,
    Io,
}

impl Error {
    pub(crate) fn invalid_target(target: &str, why: &str) -> Error {
        Error {
            kind: Kind::InvalidTarget,
            message: format!("invalid target {target:?}: {why}"),
            source: None,
        }
    }

    pub(crate) fn invalid_config(why: &str) -> Error {
        Error {
            kind: Kind::InvalidConfig,
            message: why.to_owned(),
            source: None,
        }
    }

    pub(crate) fn io(what: String, err: std::io::Error) -> Error {
        Error {
            kind: Kind::Io,
            message: what,
            source: Some(Box::new(err)),
        }
    }

    /// The target given to a channel could not be parsed or is not supported.
    pub fn is_invalid_target(&self) -> bool {
        self.kind == Kind::InvalidTarget
    }

    /// A setting was invalid.
    pub fn is_invalid_config(&self) -> bool {
        self.kind == Kind::InvalidConfig
    }

    /// An I/O operation (binding, accepting) failed; [`source`](std::error::Error::source)
    /// holds the `io::Error`.
    pub fn is_io(&self) -> bool {
        self.kind == Kind::Io
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
