//! Typed D-Bus errors: one name per [`FailureKind`], so a D-Bus client tells
//! failures apart exactly as a script tells the CLI's exit codes apart.

use crate::error::{FailureKind, kind_of};
use zbus::message::{Header, Message};
use zbus::names::ErrorName;

/// The prefix of every error this service returns; the suffix is [`FailureKind::name`].
pub const ERROR_PREFIX: &str = "org.opensuse.TransactionalLivepatch1.Error";

/// The D-Bus error name of a failure kind, e.g.
/// `org.opensuse.TransactionalLivepatch1.Error.NotAuthorized`.
pub fn error_name(kind: FailureKind) -> String {
    format!("{ERROR_PREFIX}.{}", kind.name())
}

/// An error reply of a method call.
#[derive(Debug, Clone)]
pub struct DaemonError {
    pub kind: FailureKind,
    name: String,
    pub message: String,
}

impl DaemonError {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> DaemonError {
        DaemonError {
            kind,
            name: error_name(kind),
            message: message.into(),
        }
    }

    /// The typed root cause of an error chain, with the whole chain as the message.
    pub fn from_anyhow(err: &anyhow::Error) -> DaemonError {
        DaemonError::new(kind_of(err), format!("{err:#}"))
    }
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for DaemonError {}

impl From<zbus::Error> for DaemonError {
    fn from(e: zbus::Error) -> DaemonError {
        DaemonError::new(FailureKind::Internal, format!("D-Bus: {e}"))
    }
}

impl zbus::DBusError for DaemonError {
    fn create_reply(&self, call: &Header<'_>) -> zbus::Result<Message> {
        Message::error(call, self.name()).build(&self.message)
    }

    fn name(&self) -> ErrorName<'_> {
        // Valid by construction: a fixed prefix and a CamelCase kind name
        // (checked for every kind in the tests below).
        ErrorName::from_str_unchecked(&self.name)
    }

    fn description(&self) -> Option<&str> {
        Some(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_valid_distinct_error_name() {
        let mut seen = std::collections::HashSet::new();
        for k in FailureKind::ALL {
            let n = error_name(*k);
            ErrorName::try_from(n.as_str()).unwrap_or_else(|e| panic!("{n}: {e}"));
            assert!(seen.insert(n));
        }
        assert_eq!(
            error_name(FailureKind::NotAuthorized),
            "org.opensuse.TransactionalLivepatch1.Error.NotAuthorized"
        );
    }

    #[test]
    fn anyhow_chains_keep_their_kind() {
        use anyhow::Context;
        let e: anyhow::Result<()> = Err(crate::error::failure(FailureKind::Busy, "held"));
        let e = e.context("starting").unwrap_err();
        let d = DaemonError::from_anyhow(&e);
        assert_eq!(d.kind, FailureKind::Busy);
        assert_eq!(d.message, "starting: held");
    }
}
