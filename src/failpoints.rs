//! Failpoints at the step boundaries of apply, rollback and recover.
//!
//! Built only with the `failpoints` cargo feature; configured through the
//! `FAILPOINTS` environment variable of the `fail` crate, e.g.
//! `FAILPOINTS=apply::after-snapshot=return(kill)`. The argument of `return`
//! picks what happens: `kill` sends SIGKILL to this process (a crash, no
//! cleanup code runs), `powercut` asks the kernel to reboot at once without
//! syncing (the VM tier's power cut), anything else is an ordinary error.

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

/// What a triggered failpoint does; returns the error for `return(error)`.
pub fn hit(name: &str, arg: Option<String>) -> anyhow::Error {
    match arg.as_deref() {
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
    }
}

/// Mark a step boundary. Expands to nothing without the `failpoints` feature.
#[macro_export]
macro_rules! failpoint {
    ($name:literal) => {
        fail::fail_point!($name, |arg: Option<String>| {
            Err($crate::failpoints::hit($name, arg))
        })
    };
}

#[cfg(test)]
mod tests {
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
