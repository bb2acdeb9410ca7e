//! Typed root causes and the exit codes they map to.
//!
//! Every fallible function returns `anyhow::Result` with context; where the root
//! cause is something a caller (a script, the D-Bus daemon, Cockpit) must be able
//! to tell apart, the innermost error is a [`Failure`]. `main` walks the chain,
//! finds the first `Failure` and exits with its code; the D-Bus layer maps the
//! same kinds onto typed D-Bus errors.

use std::fmt;

/// A distinguishable reason for failing. The numeric codes are a public contract
/// (documented in the README and docs/contracts.md): never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// Anything without a more specific kind.
    Internal,
    /// The command line or configuration is invalid.
    Usage,
    /// The file is not an RPM, or is truncated or corrupt.
    InvalidPackage,
    /// The RPM carries no livepatch kernel module.
    NoLivepatch,
    /// The package lists a file outside the livepatch directories, or uses
    /// `..`, absolute tricks or links that point out of the root.
    UnsafePath,
    /// The target kernel is not installed, or is not the running kernel on a live apply.
    WrongKernel,
    /// The running kernel cannot load livepatches.
    KernelUnsupported,
    /// Another transaction holds the lock.
    Busy,
    /// Installing the package in the snapshot failed (rpm, a scriptlet, a dependency).
    InstallFailed,
    /// dracut failed, or the new initrd does not hold the livepatch.
    InitrdFailed,
    /// The kernel refused the module.
    LoadFailed,
    /// The livepatch transition did not finish; the patch was reversed.
    TransitionStalled,
    /// No space left on the filesystem holding the snapshots.
    NoSpace,
    /// The rollback target does not exist or is not a complete read-only snapshot.
    InvalidTarget,
    /// The caller is not allowed to do this (not root, or polkit said no).
    NotAuthorized,
    /// The package (same name, version and release), or a newer version of
    /// the same package, is already in the default snapshot (a downgrade
    /// needs `apply --allow-downgrade`).
    AlreadyApplied,
    /// The package's signature is bad or made with a key the default snapshot
    /// does not trust, or it is unsigned and policy requires a signature.
    BadSignature,
    /// A patch could not be removed from the running kernel.
    UnloadFailed,
    /// The package repositories could not be used: unreachable, invalid
    /// metadata, none configured, or the package is not in them.
    RepositoryFailed,
}

impl FailureKind {
    /// Process exit code. 1 is left to untyped errors and 2 to clap's usage errors.
    pub fn exit_code(self) -> i32 {
        match self {
            FailureKind::Internal => 1,
            FailureKind::Usage => 2,
            FailureKind::InvalidPackage => 10,
            FailureKind::NoLivepatch => 11,
            FailureKind::UnsafePath => 12,
            FailureKind::WrongKernel => 13,
            FailureKind::KernelUnsupported => 14,
            FailureKind::Busy => 15,
            FailureKind::InstallFailed => 16,
            FailureKind::InitrdFailed => 17,
            FailureKind::LoadFailed => 18,
            FailureKind::TransitionStalled => 19,
            FailureKind::NoSpace => 20,
            FailureKind::InvalidTarget => 21,
            FailureKind::NotAuthorized => 22,
            FailureKind::AlreadyApplied => 23,
            FailureKind::BadSignature => 24,
            FailureKind::UnloadFailed => 25,
            FailureKind::RepositoryFailed => 26,
        }
    }

    /// The kind a process exit code stands for (the D-Bus daemon reads its
    /// child's exit code with this).
    pub fn from_exit_code(code: i32) -> Option<FailureKind> {
        FailureKind::ALL
            .iter()
            .copied()
            .find(|k| k.exit_code() == code)
    }

    /// Every kind, for documentation and tests.
    pub const ALL: &'static [FailureKind] = &[
        FailureKind::Internal,
        FailureKind::Usage,
        FailureKind::InvalidPackage,
        FailureKind::NoLivepatch,
        FailureKind::UnsafePath,
        FailureKind::WrongKernel,
        FailureKind::KernelUnsupported,
        FailureKind::Busy,
        FailureKind::InstallFailed,
        FailureKind::InitrdFailed,
        FailureKind::LoadFailed,
        FailureKind::TransitionStalled,
        FailureKind::NoSpace,
        FailureKind::InvalidTarget,
        FailureKind::NotAuthorized,
        FailureKind::AlreadyApplied,
        FailureKind::BadSignature,
        FailureKind::UnloadFailed,
        FailureKind::RepositoryFailed,
    ];

    /// The name used in JSON output and as the D-Bus error suffix.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Internal => "Internal",
            FailureKind::Usage => "Usage",
            FailureKind::InvalidPackage => "InvalidPackage",
            FailureKind::NoLivepatch => "NoLivepatch",
            FailureKind::UnsafePath => "UnsafePath",
            FailureKind::WrongKernel => "WrongKernel",
            FailureKind::KernelUnsupported => "KernelUnsupported",
            FailureKind::Busy => "Busy",
            FailureKind::InstallFailed => "InstallFailed",
            FailureKind::InitrdFailed => "InitrdFailed",
            FailureKind::LoadFailed => "LoadFailed",
            FailureKind::TransitionStalled => "TransitionStalled",
            FailureKind::NoSpace => "NoSpace",
            FailureKind::InvalidTarget => "InvalidTarget",
            FailureKind::NotAuthorized => "NotAuthorized",
            FailureKind::AlreadyApplied => "AlreadyApplied",
            FailureKind::BadSignature => "BadSignature",
            FailureKind::UnloadFailed => "UnloadFailed",
            FailureKind::RepositoryFailed => "RepositoryFailed",
        }
    }
}

/// A typed failure with a one-line message. Put it at the bottom of an anyhow chain.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Build an `anyhow::Error` whose root cause is a typed [`Failure`].
pub fn failure(kind: FailureKind, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        kind,
        message: message.into(),
    })
}

/// A failure of `kind` — unless `message` (typically a subprocess's stderr,
/// rpm's or dracut's) says the disk is full: then it is [`FailureKind::NoSpace`],
/// which tells the administrator what to do about it.
pub fn failure_or_no_space(kind: FailureKind, message: impl Into<String>) -> anyhow::Error {
    let message = message.into();
    if message.contains("No space left on device") || message.contains("Disk quota exceeded") {
        failure(
            FailureKind::NoSpace,
            format!("out of disk space: {message}"),
        )
    } else {
        failure(kind, message)
    }
}

/// `bail!` for typed failures.
#[macro_export]
macro_rules! bail_kind {
    ($kind:expr, $($arg:tt)*) => {
        return Err($crate::error::failure($kind, format!($($arg)*)))
    };
}

/// The kind of an error chain: the first typed `Failure` in it, else ENOSPC
/// anywhere in it means `NoSpace`, else `Internal`.
pub fn kind_of(err: &anyhow::Error) -> FailureKind {
    for cause in err.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.kind;
        }
    }
    for cause in err.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.raw_os_error() == Some(libc::ENOSPC)
        {
            return FailureKind::NoSpace;
        }
        if let Some(errno) = cause.downcast_ref::<nix::errno::Errno>()
            && *errno == nix::errno::Errno::ENOSPC
        {
            return FailureKind::NoSpace;
        }
        if cause.to_string().contains("No space left on device") {
            return FailureKind::NoSpace;
        }
    }
    FailureKind::Internal
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn exit_codes_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for k in FailureKind::ALL {
            assert!(seen.insert(k.exit_code()), "duplicate exit code for {k:?}");
            assert_eq!(FailureKind::from_exit_code(k.exit_code()), Some(*k));
        }
        assert_eq!(FailureKind::from_exit_code(0), None);
    }

    #[test]
    fn kind_is_found_below_context() {
        let e: anyhow::Result<()> = Err(failure(FailureKind::NoLivepatch, "no module"));
        let e = e.context("reading package").context("apply").unwrap_err();
        assert_eq!(kind_of(&e), FailureKind::NoLivepatch);
        assert_eq!(format!("{e:#}"), "apply: reading package: no module");
    }

    #[test]
    fn enospc_maps_to_no_space() {
        let io = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let e = anyhow::Error::new(io).context("writing initrd");
        assert_eq!(kind_of(&e), FailureKind::NoSpace);
        let plain = anyhow::anyhow!("something else");
        assert_eq!(kind_of(&plain), FailureKind::Internal);
    }
}
