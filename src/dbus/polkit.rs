//! Authorization of changing calls by polkit.
//!
//! The subject is the *caller*: its unique bus name (`system-bus-name`), from
//! which polkitd itself looks up the caller's process and user through the bus.
//! The daemon's own uid (root) never decides anything. Fails closed: when
//! polkit cannot be asked, the call is not authorized.

use super::error::DaemonError;
use crate::error::FailureKind;
use std::collections::HashMap;
use zbus::{Connection, Variant, names::UniqueName};

/// One polkit action per changing operation (dbus/org.opensuse.transactionallivepatch.policy);
/// Update installs a package like Apply and is authorized by [`ACTION_APPLY`].
pub const ACTION_APPLY: &str = "org.opensuse.transactionallivepatch.apply";
pub const ACTION_ROLLBACK: &str = "org.opensuse.transactionallivepatch.rollback";
pub const ACTION_RECOVER: &str = "org.opensuse.transactionallivepatch.recover";
/// Inspect reads a file the caller names with the daemon's rights (root):
/// without authorization it would tell anyone facts about files only root
/// may read (their existence, digests, file lists).
pub const ACTION_INSPECT: &str = "org.opensuse.transactionallivepatch.inspect";
/// CheckUpdates makes the service contact the configured repositories (and
/// briefly creates a snapshot for zypper): not for anyone who asks.
pub const ACTION_CHECK: &str = "org.opensuse.transactionallivepatch.check";

/// CheckAuthorization flag: an authentication agent may ask the user.
const ALLOW_USER_INTERACTION: u32 = 1;

#[derive(Debug, serde::Deserialize, zbus::Type)]
struct AuthorizationResult {
    is_authorized: bool,
    is_challenge: bool,
    #[allow(dead_code)]
    details: HashMap<String, String>,
}

#[zbus::proxy(
    interface = "org.freedesktop.PolicyKit1.Authority",
    default_service = "org.freedesktop.PolicyKit1",
    default_path = "/org/freedesktop/PolicyKit1/Authority"
)]
trait Authority {
    fn check_authorization(
        &self,
        subject: &(&str, HashMap<&str, Variant<'_>>),
        action_id: &str,
        details: &HashMap<&str, &str>,
        flags: u32,
        cancellation_id: &str,
    ) -> zbus::Result<AuthorizationResult>;
}

/// Ok when polkit says `sender` may perform `action`; a typed NotAuthorized otherwise.
pub async fn authorize(
    conn: &Connection,
    sender: &UniqueName<'_>,
    action: &str,
) -> Result<(), DaemonError> {
    let denied = |why: String| {
        DaemonError::new(
            FailureKind::NotAuthorized,
            format!("{sender} is not authorized for {action}: {why}"),
        )
    };
    let authority = AuthorityProxy::new(conn)
        .await
        .map_err(|e| denied(format!("polkit is not reachable ({e})")))?;
    let subject = (
        "system-bus-name",
        HashMap::from([("name", Variant::from(sender.as_str()))]),
    );
    let r = authority
        .check_authorization(
            &subject,
            action,
            &HashMap::new(),
            ALLOW_USER_INTERACTION,
            "",
        )
        .await
        .map_err(|e| denied(format!("asking polkit failed ({e})")))?;
    if r.is_authorized {
        tracing::info!("{sender} authorized for {action}");
        Ok(())
    } else if r.is_challenge {
        Err(denied(
            "polkit requires authentication and no authentication agent provided it".into(),
        ))
    } else {
        Err(denied("polkit denied it".into()))
    }
}
