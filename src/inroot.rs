//! File operations on paths *inside* a snapshot, resolved the way the
//! snapshot itself sees them.
//!
//! A snapshot is untrusted ground: anything in it may be a symbolic link, and
//! `<snapshot>/boot/x` opened from the host follows `/boot -> /elsewhere` to
//! the host's `/elsewhere`, out of the snapshot. Every path this tool reads or
//! writes inside a snapshot goes through [`Root`] instead, which resolves with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: absolute symlinks and
//! `..` are resolved relative to the snapshot's root, exactly as a process
//! chrooted there (rpm, dracut) sees them, so the tool and the chroot always
//! agree on which file is meant, and no path ever leads out. Changes are made
//! with `*at` calls on a directory handle obtained that way; the last
//! component is never followed when creating, renaming or removing.
//!
//! Needs Linux 5.6 (openat2).

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat, openat2, renameat};
use nix::sys::stat::{Mode, SFlag, fstat, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A snapshot's root directory, as the root for path resolution.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// What [`Root::symlink_metadata`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Other,
}

fn kind_of_mode(mode: u32) -> FileKind {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => FileKind::File,
        SFlag::S_IFDIR => FileKind::Dir,
        SFlag::S_IFLNK => FileKind::Symlink,
        _ => FileKind::Other,
    }
}

/// The components of an inner path, without empty and `.` ones.
fn components(inner: &str) -> Vec<&str> {
    inner
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

fn io_err(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

impl Root {
    /// Use the directory `path` (a snapshot's root, trusted) as the root.
    pub fn open(path: &Path) -> Result<Root> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening {}", path.display()))?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host path of an inner path, for messages only: never open it.
    pub fn display(&self, inner: &str) -> String {
        self.path
            .join(inner.trim_start_matches('/'))
            .display()
            .to_string()
    }

    fn resolve(&self, inner: &str, flags: OFlag, mode: Mode) -> std::io::Result<OwnedFd> {
        let rel = components(inner).join("/");
        let rel = if rel.is_empty() { ".".to_string() } else { rel };
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .mode(mode)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        // EAGAIN: a concurrent rename raced the resolution of `..`; retry.
        let mut tries = 0;
        loop {
            match openat2(self.fd.as_fd(), rel.as_str(), how) {
                Err(Errno::EAGAIN) if tries < 16 => tries += 1,
                Err(Errno::ENOSYS) => {
                    return Err(std::io::Error::other(
                        "openat2 is not available (Linux 5.6 or later is required)",
                    ));
                }
                r => return r.map_err(io_err),
            }
        }
    }

    /// The directory holding `inner` (resolved in the root) and the last
    /// component, which is a plain name (never `.` or `..`).
    fn parent(&self, inner: &str) -> Result<(OwnedFd, String)> {
        let mut parts = components(inner);
        let Some(name) = parts.pop() else {
            bail!("{} has no file name", self.display(inner));
        };
        if name == ".." {
            bail!("{} ends in '..'", self.display(inner));
        }
        let dir = self
            .resolve(
                &parts.join("/"),
                OFlag::O_PATH | OFlag::O_DIRECTORY,
                Mode::empty(),
            )
            .with_context(|| format!("opening the directory of {}", self.display(inner)))?;
        Ok((dir, name.to_string()))
    }

    /// Open an existing file for reading (symlinks resolved inside the root).
    pub fn open_read(&self, inner: &str) -> std::io::Result<File> {
        self.resolve(inner, OFlag::O_RDONLY, Mode::empty())
            .map(File::from)
    }

    pub fn read_to_string(&self, inner: &str) -> std::io::Result<String> {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut self.open_read(inner)?, &mut s)?;
        Ok(s)
    }

    /// The kind of what `inner` names, without following a last-component
    /// symlink; None when it does not exist.
    pub fn symlink_metadata(&self, inner: &str) -> Result<Option<FileKind>> {
        let (dir, name) = match self.parent(inner) {
            Ok(p) => p,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        match fstatat(
            dir.as_fd(),
            name.as_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => Ok(Some(kind_of_mode(st.st_mode))),
            Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("inspecting {}", self.display(inner))),
        }
    }

    /// The kind of what `inner` resolves to (following symlinks inside the
    /// root); None when it does not exist.
    pub fn metadata(&self, inner: &str) -> Result<Option<FileKind>> {
        match self.resolve(inner, OFlag::O_PATH, Mode::empty()) {
            Ok(fd) => {
                let st = fstat(fd.as_fd())
                    .with_context(|| format!("inspecting {}", self.display(inner)))?;
                Ok(Some(kind_of_mode(st.st_mode)))
            }
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP)
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e).with_context(|| format!("inspecting {}", self.display(inner))),
        }
    }

    pub fn exists(&self, inner: &str) -> bool {
        self.metadata(inner).ok().flatten().is_some()
    }

    pub fn is_dir(&self, inner: &str) -> bool {
        self.metadata(inner).ok().flatten() == Some(FileKind::Dir)
    }

    /// Names in directory `inner` with their kinds (not following symlinks);
    /// None when the directory does not exist.
    pub fn read_dir(&self, inner: &str) -> Result<Option<Vec<(String, FileKind)>>> {
        let fd = match self.resolve(inner, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                return Ok(None);
            }
            Err(e) => return Err(e).with_context(|| format!("opening {}", self.display(inner))),
        };
        let dup = fd.try_clone().context("duplicating a directory handle")?;
        let mut dir = nix::dir::Dir::from_fd(dup)
            .with_context(|| format!("reading {}", self.display(inner)))?;
        let mut out = Vec::new();
        for e in dir.iter() {
            let e = e.with_context(|| format!("reading {}", self.display(inner)))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "." || name == ".." {
                continue;
            }
            let kind = match fstatat(
                fd.as_fd(),
                e.file_name(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(st) => kind_of_mode(st.st_mode),
                Err(_) => continue,
            };
            out.push((name, kind));
        }
        out.sort();
        Ok(Some(out))
    }

    /// `mkdir -p` inside the root, new directories with `mode`.
    pub fn create_dir_all(&self, inner: &str, mode: u32) -> Result<()> {
        let parts = components(inner);
        for i in 1..=parts.len() {
            let prefix = parts[..i].join("/");
            match self.resolve(&prefix, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()) {
                Ok(_) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("opening {}", self.display(&prefix)));
                }
            }
            let (dir, name) = self.parent(&prefix)?;
            match mkdirat(dir.as_fd(), name.as_str(), Mode::from_bits_truncate(mode)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("creating {}", self.display(&prefix)));
                }
            }
            // A dangling symlink makes mkdir say EEXIST: check it is a directory now.
            self.resolve(&prefix, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())
                .with_context(|| format!("creating {}", self.display(&prefix)))?;
        }
        Ok(())
    }

    /// Create (or truncate) a regular file; a symlink in its place is refused.
    pub fn create_file(&self, inner: &str, mode: u32) -> Result<File> {
        let (dir, name) = self.parent(inner)?;
        let fd = openat(
            dir.as_fd(),
            name.as_str(),
            OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_TRUNC
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .with_context(|| format!("creating {}", self.display(inner)))?;
        Ok(File::from(fd))
    }

    /// Write `bytes` to `inner` atomically and durably (temp file, fsync,
    /// rename, fsync of the directory), with exactly `mode`.
    pub fn write_atomic(&self, inner: &str, bytes: &[u8], mode: u32) -> Result<()> {
        let (dir, name) = self.parent(inner)?;
        let tmp = format!(".{name}.tmp");
        let _ = unlinkat(dir.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        let fd = openat(
            dir.as_fd(),
            tmp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .with_context(|| format!("creating {}", self.display(&format!("{inner}.tmp"))))?;
        let mut f = File::from(fd);
        let written = (|| -> Result<()> {
            f.write_all(bytes)?;
            nix::sys::stat::fchmod(f.as_fd(), Mode::from_bits_truncate(mode))?;
            f.sync_all()?;
            renameat(dir.as_fd(), tmp.as_str(), dir.as_fd(), name.as_str())?;
            Ok(())
        })();
        if let Err(e) = written {
            let _ = unlinkat(dir.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(e).with_context(|| format!("writing {}", self.display(inner)));
        }
        self.sync_dir(&dir);
        Ok(())
    }

    fn sync_dir(&self, dir: &OwnedFd) {
        // O_PATH handles cannot be fsynced: reopen the directory itself.
        if let Ok(d) = openat(
            dir.as_fd(),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            let _ = File::from(d).sync_all();
        }
    }

    /// Rename `from` to `to`, both inside the root; the last components are
    /// taken as names (a symlink is renamed or replaced, never followed).
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (fdir, fname) = self.parent(from)?;
        let (tdir, tname) = self.parent(to)?;
        renameat(fdir.as_fd(), fname.as_str(), tdir.as_fd(), tname.as_str())
            .with_context(|| format!("renaming {} to {}", self.display(from), self.display(to)))?;
        self.sync_dir(&tdir);
        Ok(())
    }

    /// Remove a file (or symlink) inside the root; missing is not an error.
    pub fn remove_file(&self, inner: &str) -> Result<()> {
        let (dir, name) = match self.parent(inner) {
            Ok(p) => p,
            Err(e) if not_found(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        match unlinkat(dir.as_fd(), name.as_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", self.display(inner))),
        }
    }
}

fn not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| matches!(io.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A root with /boot -> /elsewhere (absolute) and /up -> ../../.. (climbing),
    /// next to an "outside" directory that must never be touched.
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(root.join("elsewhere")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "host").unwrap();
        symlink("/elsewhere", root.join("boot")).unwrap();
        symlink("../../../../../../..", root.join("up")).unwrap();
        (d, root, outside)
    }

    #[test]
    fn absolute_and_climbing_symlinks_stay_inside() {
        let (_d, root, outside) = setup();
        let r = Root::open(&root).unwrap();
        r.write_atomic("/boot/initrd", b"new", 0o600).unwrap();
        assert_eq!(
            std::fs::read(root.join("elsewhere/initrd")).unwrap(),
            b"new"
        );
        // `up/<outside>/secret` would be the host file if followed from the host.
        let sneaky = format!("/up{}/secret", outside.display());
        assert!(r.open_read(&sneaky).is_err());
        assert!(!r.exists(&sneaky));
        r.create_dir_all(&format!("/up{}", outside.display()), 0o755)
            .unwrap();
        r.write_atomic(&sneaky, b"evil", 0o644).unwrap();
        assert_eq!(
            std::fs::read_to_string(outside.join("secret")).unwrap(),
            "host"
        );
        assert_eq!(
            r.read_to_string(&sneaky).unwrap(),
            "evil",
            "written inside the root instead"
        );
        assert!(
            root.join(outside.strip_prefix("/").unwrap())
                .join("secret")
                .exists()
        );
    }

    #[test]
    fn last_component_symlinks_are_not_followed_for_changes() {
        let (_d, root, outside) = setup();
        symlink(outside.join("secret"), root.join("elsewhere/link")).unwrap();
        let r = Root::open(&root).unwrap();
        assert_eq!(
            r.symlink_metadata("/boot/link").unwrap(),
            Some(FileKind::Symlink)
        );
        // Followed inside the root, the absolute target does not exist there.
        assert_eq!(r.metadata("/boot/link").unwrap(), None);
        assert!(r.create_file("/boot/link", 0o644).is_err());
        r.remove_file("/boot/link").unwrap();
        assert!(outside.join("secret").exists());
        r.write_atomic("/boot/x", b"1", 0o644).unwrap();
        r.rename("/boot/x", "/boot/y").unwrap();
        assert_eq!(r.read_to_string("/elsewhere/y").unwrap(), "1");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join("elsewhere/y"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        let listing = r.read_dir("/boot").unwrap().unwrap();
        assert_eq!(listing, vec![("y".to_string(), FileKind::File)]);
        assert_eq!(r.read_dir("/nonexistent").unwrap(), None);
        assert_eq!(r.symlink_metadata("/nonexistent/x").unwrap(), None);
    }
}
