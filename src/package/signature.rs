//! Signature policy: which packages are trusted.
//!
//! The trusted keys are the OpenPGP keys imported into the rpm database of the
//! *default* snapshot (`rpm --import`, the `gpg-pubkey-*` entries) — the same
//! keys zypper and rpm trust when that snapshot installs packages, and they
//! roll back with it. A key is trusted by importing it in a transaction
//! (`transactional-update shell`, then `rpm --import KEY`).
//!
//! * A **signed** package is always verified, whatever the configuration:
//!   `rpmkeys --checksig` against the default snapshot's keys, fed from the
//!   very file handle preflight read. A bad signature, or one by a key the
//!   snapshot does not trust (NOKEY), is refused with
//!   [`FailureKind::BadSignature`].
//! * An **unsigned** package is refused with `BadSignature` when
//!   `[packages] require_signature = true`, and otherwise accepted (its
//!   header and payload digests were verified by preflight).
//!
//! Nothing is changed: the check runs before the transaction begins.

use crate::error::{FailureKind, failure};
use crate::package::PackageFacts;
use anyhow::Result;
use std::fs::File;
use std::path::Path;
use std::process::Stdio;

/// Apply the policy to the package behind `file` (described by `facts`),
/// against the keys of the snapshot at `default_root` (number `default_no`).
pub fn check(
    default_root: &Path,
    default_no: u32,
    file: &File,
    facts: &PackageFacts,
    require_signature: bool,
) -> Result<()> {
    if !facts.signed {
        if require_signature {
            crate::bail_kind!(
                FailureKind::BadSignature,
                "{} is not signed, and the configuration requires signed packages ([packages] require_signature)",
                facts.nevra
            );
        }
        return Ok(());
    }
    // rpmkeys reads /dev/stdin, a fresh open of the same inode as our
    // handle: the bytes checked are the bytes preflight read and rpm installs.
    let stdin = file.try_clone().map_err(|e| {
        failure(
            FailureKind::Internal,
            format!("duplicating the package handle: {e}"),
        )
    })?;
    let out = super::rpmdb::rpm_command("rpmkeys", default_root)?
        .args(["--checksig", "--verbose", "/dev/stdin"])
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| failure(FailureKind::Internal, format!("starting rpmkeys: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    verdict(&text, &err, out.status.success(), &facts.nevra, default_no)
}

/// Decide from `rpmkeys --checksig --verbose` output.
fn verdict(text: &str, stderr: &str, ok: bool, nevra: &str, default_no: u32) -> Result<()> {
    let sig_lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("Signature"))
        .collect();
    let key = |l: &str| {
        l.split("key ID ")
            .nth(1)
            .and_then(|r| r.split(':').next())
            .unwrap_or("?")
            .to_string()
    };
    if let Some(l) = sig_lines.iter().find(|l| l.ends_with("NOKEY")) {
        crate::bail_kind!(
            FailureKind::BadSignature,
            "{nevra} is signed with key {}, which the default snapshot {default_no} does not trust (not imported in its rpm database)",
            key(l)
        );
    }
    if let Some(l) = sig_lines.iter().find(|l| !l.ends_with(": OK")) {
        crate::bail_kind!(
            FailureKind::BadSignature,
            "bad signature on {nevra}: {}",
            l.trim()
        );
    }
    if !ok {
        let bad: Vec<&str> = text
            .lines()
            .chain(stderr.lines())
            .map(str::trim)
            .filter(|l| l.contains(": ") && !l.ends_with(": OK") && !l.contains("GPG_TTY"))
            .collect();
        crate::bail_kind!(
            FailureKind::BadSignature,
            "signature check of {nevra} failed: {}",
            if bad.is_empty() {
                "rpmkeys reported an error".to_string()
            } else {
                bad.join("; ")
            }
        );
    }
    if sig_lines.is_empty() {
        crate::bail_kind!(
            FailureKind::BadSignature,
            "{nevra} carries a signature rpmkeys did not check"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::kind_of;

    const OK: &str = "/dev/stdin:\n    Header V4 RSA/SHA512 Signature, key ID e0723916: OK\n    Header SHA256 digest: OK\n    Payload SHA256 digest: OK\n";
    const NOKEY: &str = "/dev/stdin:\n    Header V4 RSA/SHA512 Signature, key ID e0723916: NOKEY\n    Header SHA256 digest: OK\n";
    const BAD: &str = "/dev/stdin:\n    Header V4 RSA/SHA512 Signature, key ID e0723916: BAD\n    Header SHA256 digest: OK\n";

    #[test]
    fn verdicts() {
        verdict(OK, "", true, "p-1-1.x86_64", 1).unwrap();
        let e = verdict(NOKEY, "", false, "p-1-1.x86_64", 3).unwrap_err();
        assert_eq!(kind_of(&e), FailureKind::BadSignature);
        let m = e.to_string();
        assert!(
            m.contains("e0723916") && m.contains("snapshot 3") && m.contains("trust"),
            "{m}"
        );
        let e = verdict(BAD, "", false, "p-1-1.x86_64", 1).unwrap_err();
        assert!(
            e.to_string().starts_with("bad signature on p-1-1.x86_64"),
            "{e}"
        );
        let e = verdict(
            "/dev/stdin:\n    Header SHA256 digest: OK\n",
            "",
            true,
            "p",
            1,
        )
        .unwrap_err();
        assert_eq!(kind_of(&e), FailureKind::BadSignature);
        let e = verdict("", "error: /dev/stdin: not an rpm package\n", false, "p", 1).unwrap_err();
        assert_eq!(kind_of(&e), FailureKind::BadSignature);
    }
}
