//! Layered TOML configuration.
//!
//! Fragments are read in order — `/usr/lib/transactional-livepatch/config.toml`
//! (vendor defaults), `/etc/transactional-livepatch/config.toml`, then
//! `/etc/transactional-livepatch/config.d/*.toml` sorted by name, then any file
//! given on the command line — each path taken relative to the managed root.
//! Tables are merged key by key, later wins; the merged document is then
//! validated into [`Config`], where unknown keys are an error.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const VENDOR_CONFIG: &str = "usr/lib/transactional-livepatch/config.toml";
pub const ADMIN_CONFIG: &str = "etc/transactional-livepatch/config.toml";
pub const ADMIN_CONFIG_DIR: &str = "etc/transactional-livepatch/config.d";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub snapshots: SnapshotConfig,
    pub livepatch: LivepatchConfig,
    pub initrd: InitrdConfig,
    pub packages: PackageConfig,
    pub update: UpdateConfig,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// snapper when a snapper configuration for the root exists, else btrfs.
    Auto,
    Snapper,
    Btrfs,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotConfig {
    pub backend: Backend,
    /// Name of the snapper configuration of the root filesystem.
    pub snapper_config: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LivepatchConfig {
    /// After this long in transition, report the tasks that block it.
    pub transition_grace_secs: u64,
    /// After this long in transition, give up and reverse the patch.
    pub transition_timeout_secs: u64,
    /// How long to wait for a reverse (disable) transition.
    pub reverse_timeout_secs: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InitrdConfig {
    /// Path of the initrd inside the snapshot; `{kver}` is replaced by the kernel
    /// release. Empty means: `/boot/initrd-{kver}` (SUSE) if it exists, else
    /// `/boot/initrd.img-{kver}` (Debian), else the SUSE name.
    pub path: String,
    /// Extra arguments for dracut.
    pub dracut_args: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PackageConfig {
    /// Refuse packages without a valid signature.
    pub require_signature: bool,
}

/// What an automatic run (`update --automatic`, the timer) does when the
/// repositories have a newer livepatch.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum UpdatePolicy {
    /// Apply it, as `update` does.
    Apply,
    /// Only check, and record (journal, history) that an update is available.
    Check,
}

impl UpdatePolicy {
    pub fn name(self) -> &'static str {
        match self {
            UpdatePolicy::Apply => "apply",
            UpdatePolicy::Check => "check",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UpdateConfig {
    /// false: automatic runs do nothing (the timer itself is shipped disabled;
    /// this switch stops it without touching systemd).
    pub enabled: bool,
    pub policy: UpdatePolicy,
    /// The livepatch packages to follow, by exact name. `{kernel}` is the
    /// running kernel release with dots as underscores (SUSE's naming:
    /// kernel-livepatch-5_14_21-150500_55_28-default), `{kernel_release}` the
    /// release as is.
    pub packages: Vec<String>,
    /// How many records of automatic runs that found nothing new (up to
    /// date) the history keeps, the newest; older ones are deleted when a run
    /// is recorded. At the timer's default of every 4 hours they would add
    /// some 2000 entries a year that `status`, `list` and D-Bus read each time.
    pub keep_up_to_date_runs: u32,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            enabled: true,
            policy: UpdatePolicy::Apply,
            packages: vec!["kernel-livepatch-{kernel}".into()],
            keep_up_to_date_runs: 10,
        }
    }
}

/// A package name zypper takes as a name and nothing else: rpm's name
/// characters, never starting with `-` (an option).
fn valid_package_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-~^".contains(c))
}

impl UpdateConfig {
    /// The package names for the running kernel `kernel_release`.
    pub fn package_names(&self, kernel_release: &str) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for pattern in &self.packages {
            let name = pattern
                .replace("{kernel_release}", kernel_release)
                .replace("{kernel}", &kernel_release.replace('.', "_"));
            if !valid_package_name(&name) {
                bail!(
                    "update.packages entry {pattern:?} gives {name:?} for kernel {kernel_release}, which is not a package name"
                );
            }
            if !out.contains(&name) {
                out.push(name);
            }
        }
        Ok(out)
    }

    fn validate(&self) -> Result<()> {
        if self.keep_up_to_date_runs == 0 {
            bail!(
                "update.keep_up_to_date_runs must be at least 1: the history keeps the last automatic run"
            );
        }
        if self.packages.is_empty() {
            bail!("update.packages is empty: name the livepatch packages to follow");
        }
        for p in &self.packages {
            let probe = p
                .replace("{kernel_release}", "1.0-1-default")
                .replace("{kernel}", "1_0-1-default");
            if !valid_package_name(&probe) {
                bail!(
                    "update.packages entry {p:?} is not a package name (placeholders: {{kernel}}, {{kernel_release}})"
                );
            }
        }
        Ok(())
    }
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            backend: Backend::Auto,
            snapper_config: "root".into(),
        }
    }
}

impl Default for LivepatchConfig {
    fn default() -> Self {
        // kpatch waits 15 s before it reports a stalled transition.
        LivepatchConfig {
            transition_grace_secs: 15,
            transition_timeout_secs: 60,
            reverse_timeout_secs: 60,
        }
    }
}

impl LivepatchConfig {
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.transition_grace_secs)
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.transition_timeout_secs)
    }
    pub fn reverse_timeout(&self) -> Duration {
        Duration::from_secs(self.reverse_timeout_secs)
    }
}

/// Merge `over` into `base`: tables recursively, any other value replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// The fragment files for a root, in the order they apply.
pub fn fragments(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = vec![root.join(VENDOR_CONFIG), root.join(ADMIN_CONFIG)];
    let dir = root.join(ADMIN_CONFIG_DIR);
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            let mut extra = Vec::new();
            for e in entries {
                let p = e
                    .with_context(|| format!("reading {}", dir.display()))?
                    .path();
                if p.extension().is_some_and(|x| x == "toml") {
                    extra.push(p);
                }
            }
            extra.sort();
            files.extend(extra);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    }
    Ok(files.into_iter().filter(|p| p.exists()).collect())
}

impl Config {
    /// Load the layered configuration of `root`, plus an optional extra file.
    pub fn load(root: &Path, extra: Option<&Path>) -> Result<Config> {
        let mut files = fragments(root)?;
        if let Some(x) = extra {
            if !x.exists() {
                bail!("configuration file {} does not exist", x.display());
            }
            files.push(x.to_path_buf());
        }
        let mut doc = toml::Table::new();
        for f in &files {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            let table: toml::Table =
                toml::from_str(&text).with_context(|| format!("parsing {}", f.display()))?;
            merge(&mut doc, table);
        }
        Self::from_table(doc).with_context(|| {
            let names: Vec<_> = files.iter().map(|f| f.display().to_string()).collect();
            format!("validating configuration from [{}]", names.join(", "))
        })
    }

    pub fn from_table(doc: toml::Table) -> Result<Config> {
        let cfg: Config = toml::Value::Table(doc).try_into()?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        let lp = &self.livepatch;
        if lp.transition_timeout_secs < lp.transition_grace_secs {
            bail!(
                "livepatch.transition_timeout_secs ({}) is shorter than transition_grace_secs ({})",
                lp.transition_timeout_secs,
                lp.transition_grace_secs
            );
        }
        if !self.initrd.path.is_empty() && !self.initrd.path.starts_with('/') {
            bail!("initrd.path must be absolute, got {:?}", self.initrd.path);
        }
        self.update.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn defaults_without_files() {
        let d = tempfile::tempdir().unwrap();
        let c = Config::load(d.path(), None).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.livepatch.transition_grace_secs, 15);
    }

    #[test]
    fn layers_merge_key_by_key() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            VENDOR_CONFIG,
            "[livepatch]\ntransition_grace_secs = 5\ntransition_timeout_secs = 30\n",
        );
        write(
            d.path(),
            ADMIN_CONFIG,
            "[livepatch]\ntransition_timeout_secs = 40\n",
        );
        write(
            d.path(),
            "etc/transactional-livepatch/config.d/50-test.toml",
            "[snapshots]\nbackend = \"btrfs\"\n",
        );
        let c = Config::load(d.path(), None).unwrap();
        assert_eq!(c.livepatch.transition_grace_secs, 5);
        assert_eq!(c.livepatch.transition_timeout_secs, 40);
        assert_eq!(c.snapshots.backend, Backend::Btrfs);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            ADMIN_CONFIG,
            "[livepatch]\ntransition_grace = 5\n",
        );
        let e = Config::load(d.path(), None).unwrap_err();
        assert!(format!("{e:#}").contains("unknown field"), "{e:#}");
        write(d.path(), ADMIN_CONFIG, "[nonsense]\n");
        assert!(Config::load(d.path(), None).is_err());
    }

    #[test]
    fn update_table_and_package_names() {
        let d = tempfile::tempdir().unwrap();
        let c = Config::load(d.path(), None).unwrap();
        assert!(c.update.enabled);
        assert_eq!(c.update.policy, UpdatePolicy::Apply);
        assert_eq!(c.update.keep_up_to_date_runs, 10);
        assert_eq!(
            c.update
                .package_names("5.14.21-150500.55.28-default")
                .unwrap(),
            ["kernel-livepatch-5_14_21-150500_55_28-default"]
        );
        write(
            d.path(),
            ADMIN_CONFIG,
            "[update]\nenabled = false\npolicy = \"check\"\npackages = [\"kernel-livepatch-tlp-cumulative\", \"lp-{kernel_release}\"]\n",
        );
        let c = Config::load(d.path(), None).unwrap();
        assert!(!c.update.enabled);
        assert_eq!(c.update.policy, UpdatePolicy::Check);
        assert_eq!(
            c.update.package_names("6.1.0-56-amd64").unwrap(),
            ["kernel-livepatch-tlp-cumulative", "lp-6.1.0-56-amd64"]
        );
        // A kernel release that would smuggle an option or a second word in.
        assert!(c.update.package_names("x --root=/").is_err());
        for bad in [
            "[update]\npolicy = \"sometimes\"\n",
            "[update]\npackages = []\n",
            "[update]\npackages = [\"--from=evil\"]\n",
            "[update]\npackages = [\"a b\"]\n",
            "[update]\nschedule = \"daily\"\n",
            "[update]\nkeep_up_to_date_runs = 0\n",
            "[update]\nkeep_up_to_date_runs = -1\n",
        ] {
            write(d.path(), ADMIN_CONFIG, bad);
            assert!(Config::load(d.path(), None).is_err(), "{bad}");
        }
    }

    #[test]
    fn inconsistent_values_are_rejected() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            ADMIN_CONFIG,
            "[livepatch]\ntransition_grace_secs = 50\ntransition_timeout_secs = 10\n",
        );
        assert!(Config::load(d.path(), None).is_err());
        write(d.path(), ADMIN_CONFIG, "[initrd]\npath = \"boot/x\"\n");
        assert!(Config::load(d.path(), None).is_err());
    }
}
