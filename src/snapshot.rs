//! Root snapshots in SUSE's layout: `/.snapshots/N/snapshot`, with snapper's
//! `/.snapshots/N/info.xml` beside each.
//!
//! Two backends make and remove snapshots: snapper (when a snapper
//! configuration for the root exists, the SLE Micro case: the snapshot is
//! numbered by snapper and shows in `snapper list`) and plain btrfs ioctls (we
//! number it and write info.xml ourselves, so snapper can still read it). Both
//! mark a snapshot under construction with the userdata
//! `transactional-livepatch=in-progress`; `recover` deletes what still carries it.

use crate::btrfs;
use crate::cmd::{self, CommandRunExt};
use crate::config::Backend;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const SNAPSHOTS_DIR: &str = ".snapshots";
pub const USERDATA_KEY: &str = "transactional-livepatch";
pub const IN_PROGRESS: &str = "in-progress";

/// snapper's info.xml.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename = "snapshot")]
pub struct InfoXml {
    #[serde(rename = "type")]
    pub kind: String,
    pub num: u32,
    pub date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_num: Option<u32>,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<String>,
    #[serde(default, rename = "userdata", skip_serializing_if = "Vec::is_empty")]
    pub userdata: Vec<UserData>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UserData {
    pub key: String,
    pub value: String,
}

impl InfoXml {
    pub fn in_progress(&self) -> bool {
        self.userdata
            .iter()
            .any(|u| u.key == USERDATA_KEY && u.value == IN_PROGRESS)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub number: u32,
    /// Host path of the snapshot's root directory.
    #[serde(skip)]
    pub path: PathBuf,
    /// btrfs subvolume id.
    pub id: u64,
    pub readonly: bool,
    pub description: String,
    pub date: String,
    pub in_progress: bool,
}

/// The snapshots of the system mounted at `root`.
pub struct Snapshots {
    root: PathBuf,
    backend: Backend,
    snapper_config: String,
}

fn read_info(dir: &Path) -> Option<InfoXml> {
    let text = std::fs::read_to_string(dir.join("info.xml")).ok()?;
    quick_xml::de::from_str(&text).ok()
}

fn write_info(dir: &Path, info: &InfoXml) -> Result<()> {
    let body = quick_xml::se::to_string(info).context("serialising info.xml")?;
    let text = format!("<?xml version=\"1.0\"?>\n{body}\n");
    crate::journal::write_atomic(&dir.join("info.xml"), text.as_bytes())?;
    // snapper and users read info.xml; it holds nothing secret.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("info.xml"), std::fs::Permissions::from_mode(0o644))?;
    Ok(())
}

/// snapper's info.xml date: UTC, "2026-11-23 10:00:00".
const INFO_DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

impl Snapshots {
    pub fn new(root: &Path, backend: Backend, snapper_config: &str) -> Snapshots {
        let backend = match backend {
            Backend::Auto => {
                if root
                    .join("etc/snapper/configs")
                    .join(snapper_config)
                    .exists()
                    && Path::new("/usr/bin/snapper").exists()
                {
                    Backend::Snapper
                } else {
                    Backend::Btrfs
                }
            }
            b => b,
        };
        Snapshots {
            root: root.to_path_buf(),
            backend,
            snapper_config: snapper_config.to_string(),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn dir(&self) -> PathBuf {
        self.root.join(SNAPSHOTS_DIR)
    }

    fn snapshot_at(&self, number: u32) -> Result<Snapshot> {
        let path = self.dir().join(number.to_string()).join("snapshot");
        let info =
            btrfs::subvolume_info(&path).with_context(|| format!("reading snapshot {number}"))?;
        Ok(Self::snapshot_from(number, path, info))
    }

    fn snapshot_from(number: u32, path: PathBuf, info: btrfs::SubvolInfo) -> Snapshot {
        let xml = path.parent().and_then(read_info).unwrap_or_default();
        Snapshot {
            number,
            path,
            id: info.id,
            readonly: info.readonly,
            in_progress: xml.in_progress(),
            description: xml.description,
            date: xml.date,
        }
    }

    /// All numbered snapshots, by number.
    pub fn list(&self) -> Result<Vec<Snapshot>> {
        let dir = self.dir();
        let rd = std::fs::read_dir(&dir).with_context(|| {
            format!(
                "reading {} (is this a btrfs root in SUSE layout?)",
                dir.display()
            )
        })?;
        let mut out = Vec::new();
        for e in rd {
            let e = e?;
            let Some(number) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            // One open per snapshot: `status` lists hundreds of them.
            let path = e.path().join("snapshot");
            if let Some(info) = btrfs::subvolume_info_if_subvolume(&path)
                .with_context(|| format!("reading snapshot {number}"))?
            {
                out.push(Self::snapshot_from(number, path, info));
            }
        }
        out.sort_by_key(|s| s.number);
        Ok(out)
    }

    pub fn get(&self, number: u32) -> Result<Option<Snapshot>> {
        Ok(self.list()?.into_iter().find(|s| s.number == number))
    }

    /// The snapshot that is the btrfs default subvolume (what boots next).
    pub fn default_snapshot(&self) -> Result<Snapshot> {
        self.default_in(&self.list()?)
    }

    /// [`Self::default_snapshot`] among `list` (a [`Self::list`] result).
    pub fn default_in(&self, list: &[Snapshot]) -> Result<Snapshot> {
        let id = btrfs::default_subvolume(&self.root)?;
        list.iter().find(|s| s.id == id).cloned().with_context(|| {
            format!(
                "the default subvolume (id {id}) is not a numbered snapshot under {}",
                self.dir().display()
            )
        })
    }

    /// The snapshot mounted at the root (what is running), if it is one.
    pub fn booted(&self) -> Result<Option<Snapshot>> {
        self.booted_in(&self.list()?)
    }

    /// [`Self::booted`] among `list` (a [`Self::list`] result).
    pub fn booted_in(&self, list: &[Snapshot]) -> Result<Option<Snapshot>> {
        let id = btrfs::subvolume_info(&self.root)?.id;
        Ok(list.iter().find(|s| s.id == id).cloned())
    }

    /// Make a read-write snapshot of `base`, marked in progress.
    pub fn create(&self, base: &Snapshot, description: &str) -> Result<Snapshot> {
        match self.backend {
            Backend::Snapper => self.create_snapper(base, description),
            _ => self.create_btrfs(base, description),
        }
        .with_context(|| format!("creating a snapshot of snapshot {}", base.number))
    }

    fn create_btrfs(&self, base: &Snapshot, description: &str) -> Result<Snapshot> {
        let number = self.list()?.last().map_or(1, |s| s.number + 1);
        // A stale directory of a number never finished (no subvolume in it) is
        // taken over; anything else there is a conflict.
        let mut number = number;
        let dir = loop {
            let dir = self.dir().join(number.to_string());
            match std::fs::create_dir(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if !dir.join("snapshot").exists() {
                        break dir;
                    }
                    number += 1;
                }
                Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
            }
        };
        let info = InfoXml {
            kind: "single".into(),
            num: number,
            date: crate::journal::utc_now(INFO_DATE),
            pre_num: None,
            description: description.into(),
            cleanup: Some("number".into()),
            userdata: vec![UserData {
                key: USERDATA_KEY.into(),
                value: IN_PROGRESS.into(),
            }],
        };
        // The marker goes first, so a crash never leaves an unmarked partial snapshot.
        write_info(&dir, &info)?;
        btrfs::create_snapshot(&base.path, &dir, "snapshot", false)?;
        self.snapshot_at(number)
    }

    fn snapper(&self) -> std::process::Command {
        let mut c = cmd::command("snapper");
        c.args(["--no-dbus", "--root"]).arg(&self.root);
        c.args(["-c", &self.snapper_config]);
        c
    }

    fn create_snapper(&self, base: &Snapshot, description: &str) -> Result<Snapshot> {
        let out = self
            .snapper()
            .args([
                "create",
                "--type",
                "single",
                "--read-write",
                "--print-number",
            ])
            .args(["--from", &base.number.to_string()])
            .args(["--cleanup-algorithm", "number"])
            .args(["--description", description])
            .args(["--userdata", &format!("{USERDATA_KEY}={IN_PROGRESS}")])
            .run_stdout()?;
        let number: u32 = out
            .trim()
            .parse()
            .with_context(|| format!("snapper printed {out:?} instead of a snapshot number"))?;
        self.snapshot_at(number)
    }

    /// Make the snapshot read-only and clear the in-progress marker.
    pub fn seal(&self, snap: &Snapshot) -> Result<()> {
        btrfs::set_readonly(&snap.path, true)?;
        let dir = self.dir().join(snap.number.to_string());
        match self.backend {
            Backend::Snapper => self
                .snapper()
                .args(["modify", "--userdata", &format!("{USERDATA_KEY}=")])
                .arg(snap.number.to_string())
                .run_ok()?,
            _ => {
                let mut info = read_info(&dir).unwrap_or_default();
                info.userdata.retain(|u| u.key != USERDATA_KEY);
                write_info(&dir, &info)?;
            }
        }
        btrfs::sync(&snap.path).with_context(|| format!("sealing snapshot {}", snap.number))
    }

    /// Delete a snapshot and its directory. Never the default one.
    pub fn delete(&self, number: u32) -> Result<()> {
        let dir = self.dir().join(number.to_string());
        let path = dir.join("snapshot");
        if let Ok(info) = btrfs::subvolume_info(&path) {
            if info.id == btrfs::default_subvolume(&self.root)? {
                bail!("refusing to delete snapshot {number}: it is the default subvolume");
            }
            match self.backend {
                Backend::Snapper => self
                    .snapper()
                    .args(["delete", &number.to_string()])
                    .run_ok()?,
                _ => {
                    if info.readonly {
                        btrfs::set_readonly(&path, false)?;
                    }
                    btrfs::delete_subvolume(&path)?;
                }
            }
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        btrfs::sync(&self.dir()).with_context(|| format!("deleting snapshot {number}"))
    }

    /// Make `snap` the default subvolume, durably.
    pub fn set_default(&self, snap: &Snapshot) -> Result<()> {
        btrfs::set_default_subvolume(&self.root, snap.id)?;
        btrfs::sync(&self.root)
            .with_context(|| format!("making snapshot {} the default", snap.number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_xml_roundtrip_and_marker() {
        let info = InfoXml {
            kind: "single".into(),
            num: 7,
            date: "2026-11-23 10:00:00".into(),
            pre_num: None,
            description: "transactional-livepatch apply a & b".into(),
            cleanup: Some("number".into()),
            userdata: vec![UserData {
                key: USERDATA_KEY.into(),
                value: IN_PROGRESS.into(),
            }],
        };
        let d = tempfile::tempdir().unwrap();
        write_info(d.path(), &info).unwrap();
        let text = std::fs::read_to_string(d.path().join("info.xml")).unwrap();
        assert!(text.contains("<num>7</num>"), "{text}");
        assert!(text.contains("&amp;"), "{text}");
        let back = read_info(d.path()).unwrap();
        assert_eq!(back, info);
        assert!(back.in_progress());
    }

    #[test]
    fn info_date_is_snappers_form() {
        let d = crate::journal::utc_now(INFO_DATE);
        let shape: String = d
            .chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect();
        assert_eq!(shape, "9999-99-99 99:99:99", "{d}");
    }

    #[test]
    fn reads_snapper_written_info() {
        // As written by snapper 0.10 for a first root filesystem.
        let text = "<?xml version=\"1.0\"?>\n<snapshot>\n  <type>single</type>\n  <num>1</num>\n  <date>2026-11-01 08:00:00</date>\n  <description>first root filesystem</description>\n</snapshot>\n";
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("info.xml"), text).unwrap();
        let info = read_info(d.path()).unwrap();
        assert_eq!(info.num, 1);
        assert_eq!(info.description, "first root filesystem");
        assert!(!info.in_progress());
    }
}
