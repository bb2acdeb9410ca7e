//! Failpoints at the step boundaries of apply, rollback and recover.
//!
//! Built only with the `failpoints` cargo feature; configured through the
//! `FAILPOINTS` environment variable of the `fail` crate, e.g.
//! `FAILPOINTS=apply::after-snapshot=return(kill)`. The argument of `return`
//! picks what happens: `kill` sends SIGKILL to this process (a crash, no
//! cleanup code runs), `powercut` asks the kernel to reboot at once without
//! syncing (the VM tier's power cut), `hold:DIR` holds the process at the
//! failpoint (see [`hold`]), anything else is an ordinary error.

/// Every failpoint name. The fault-injection tests iterate over this list and
/// a unit test checks that each name is used in the code and vice versa.
pub const ALL: &[&str] = &[
    "apply::after-journal",
    "apply::after-snapshot",
    "apply::after-install",
    "apply::after-initrd",
    "apply::after-seal",
    "apply::after-live",
    "apply::after-default",
    "rollback::after-journal",
    "rollback::after-live",
    "rollback::after-default",
];

/// What a triggered failpoint does: the error to return, or None to go on.
pub fn hit(name: &str, arg: Option<String>) -> Option<anyhow::Error> {
    if let Some(dir) = arg.as_deref().and_then(|a| a.strip_prefix("hold:")) {
        return hold(name, std::path::Path::new(dir)).err();
    }
    Some(match arg.as_deref() {
        Some("kill") => {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            unreachable!("SIGKILL returned");
        }
        Some("powercut") => {
            // sysrq 'b': immediate reboot, no sync, no unmount.
            let _ = std::fs::write("/proc/sysrq-trigger", "b");
            std::thread::sleep(std::time::Duration::from_secs(60));
            anyhow::anyhow!("failpoint {name}: power cut did not happen")
        }
        other => anyhow::anyhow!("failpoint {name} triggered ({other:?})"),
    })
}

/// How long [`hold`] waits for its release before giving up with an error.
const HOLD_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

/// `hold:DIR`: when `DIR/arm` exists, claim it by renaming it to `DIR/held`
/// (atomic: of several processes passing the failpoint exactly one holds),
/// then wait until `DIR/release` exists and go on. Without `DIR/arm` the
/// failpoint does nothing, so one configuration (a daemon's environment)
/// serves many runs of which a test holds only the one it armed. A test thus
/// knows for certain that a transaction is in progress (`held` exists) and
/// for as long as it wants, without guessing at durations.
fn hold(name: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    match std::fs::rename(dir.join("arm"), dir.join("held")) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(e).with_context(|| format!("failpoint {name}: arming {}", dir.display()));
        }
    }
    let t = std::time::Instant::now();
    while !dir.join("release").exists() {
        if t.elapsed() > HOLD_LIMIT {
            anyhow::bail!("failpoint {name}: not released within {HOLD_LIMIT:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(())
}

/// Mark a step boundary. Expands to nothing without the `failpoints` feature.
/// `fail::eval` rather than `fail_point!`: a `hold` must be able to go on.
#[macro_export]
macro_rules! failpoint {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        if let Some(e) = fail::eval($name, |arg| $crate::failpoints::hit($name, arg)).flatten() {
            return Err(e);
        }
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn hold_waits_for_its_release_only_when_armed() {
        let d = tempfile::tempdir().unwrap();
        let arg = Some(format!("hold:{}", d.path().display()));
        // Not armed: goes on at once.
        assert!(super::hit("x", arg.clone()).is_none());
        assert!(!d.path().join("held").exists());
        std::fs::write(d.path().join("arm"), "").unwrap();
        let a = arg.clone();
        let t = std::thread::spawn(move || super::hit("x", a).map(|e| e.to_string()));
        // Held (the test waits for the event, not for a duration).
        while !d.path().join("held").exists() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!d.path().join("arm").exists());
        assert!(!t.is_finished());
        std::fs::write(d.path().join("release"), "").unwrap();
        assert_eq!(t.join().unwrap(), None);
        // The arm was used up: the next pass goes on.
        assert!(super::hit("x", arg).is_none());
        assert!(super::hit("x", Some("boom".into())).is_some());
    }

    #[test]
    fn every_failpoint_is_listed_and_used() {
        let src = concat!(include_str!("transaction.rs"), include_str!("recover.rs"));
        let mut used: Vec<&str> = src
            .match_indices("failpoint!(\"")
            .map(|(i, m)| {
                let rest = &src[i + m.len()..];
                &rest[..rest.find('"').unwrap()]
            })
            .collect();
        used.sort();
        used.dedup();
        let mut all = super::ALL.to_vec();
        all.sort();
        assert_eq!(
            used, all,
            "failpoints used in the code differ from failpoints::ALL"
        );
    }
}
