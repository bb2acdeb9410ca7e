//! Package preflight: read an RPM and decide, before anything changes, whether
//! it is a livepatch package this tool may apply.
//!
//! [`inspect`] works on a file handle the caller opened once (so nobody can
//! swap the file between the check and its use) and reads it exactly once,
//! front to back, with positional reads that leave the handle's offset alone:
//!
//! 1. the lead and both headers ([`header::read_layout`]; each header at most
//!    64 MiB, every index entry bounds-checked before the `rpm` crate parses it);
//! 2. the payload, streamed through the decompressor with a 64 KiB buffer;
//!    only kernel modules (at most [`MAX_MODULE_SIZE`] each) and files under
//!    `/usr/share/livepatch/info/` (at most 1 MiB each) are held in memory,
//!    everything else is hashed and dropped;
//! 3. whatever follows the end of the cpio archive, so that the SHA-256 of the
//!    whole file, the header digest and the payload digest cover every byte.
//!
//! Refusals are typed ([`FailureKind`]) with a one-line message. Verdicts on
//! module contents are given only after the digests have been verified, so a
//! corrupt package is always `InvalidPackage`, never a misleading `NoLivepatch`.

mod header;
pub mod modinfo;
pub mod paths;
pub mod rpmdb;
pub mod signature;

pub use paths::{Entry, EntryKind, ModulePath, PathPlan, check_paths};

use crate::bail_kind;
use crate::error::{FailureKind, failure};
use anyhow::{Context, Result};
use rpm::{FileType, IndexSignatureTag, IndexTag, PackageMetadata};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::rc::Rc;

pub use header::MAX_HEADER_SIZE;

/// Largest kernel module read into memory.
pub const MAX_MODULE_SIZE: u64 = 256 << 20;
/// Largest `/usr/share/livepatch/info/*` file scanned for CVE ids.
pub(crate) const MAX_INFO_SIZE: u64 = 1 << 20;
pub(crate) const INFO_DIR: &str = "/usr/share/livepatch/info/";
const READ_BUFFER: usize = 64 << 10;

/// One livepatch kernel module in the package.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModuleFacts {
    /// Absolute path in the package, e.g. `/lib/modules/6.1.0-56-amd64/livepatch/tlp_x.ko`.
    pub path: String,
    /// `name=` from `.modinfo`, else the file name without `.ko` and with
    /// `-` turned into `_`, as the kernel names it.
    pub name: String,
    /// The `<kver>` directory the module is installed under.
    pub kver: String,
    pub vermagic: String,
    pub livepatch: bool,
    /// SHA-256 of the module file as installed.
    pub sha256: String,
    pub size: u64,
}

/// Everything preflight learned about an acceptable livepatch package.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PackageFacts {
    pub name: String,
    /// 0 when the package has none.
    pub epoch: u32,
    pub version: String,
    pub release: String,
    pub arch: String,
    /// `name-[epoch:]version-release.arch`.
    pub nevra: String,
    /// SHA-256 of the whole package file.
    pub sha256: String,
    pub size: u64,
    /// The signature header carries an RSA, DSA or OpenPGP signature (not verified here).
    pub signed: bool,
    /// Every path the package lists, in header order.
    pub files: Vec<String>,
    pub modules: Vec<ModuleFacts>,
    /// The one kernel release all modules target.
    pub kernel_release: String,
    /// `CVE-YYYY-N` ids from summary, description, changelog and
    /// `/usr/share/livepatch/info/*`, sorted, without duplicates.
    pub cves: Vec<String>,
}

/// The RPM architecture name of the machine this runs on.
pub fn machine_rpm_arch() -> &'static str {
    match std::env::consts::ARCH {
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "x86" => "i686",
        other => other,
    }
}

/// Inspect a package for this machine; see [`inspect_for_arch`].
pub fn inspect(file: &File) -> Result<PackageFacts> {
    inspect_for_arch(file, machine_rpm_arch())
}

/// Read the package behind `file` and accept it only if it is a binary
/// livepatch package for `machine_arch` (an RPM arch name such as `x86_64`).
/// Never changes anything; the handle's file offset is not moved.
pub fn inspect_for_arch(file: &File, machine_arch: &str) -> Result<PackageFacts> {
    let file_len = file
        .metadata()
        .context("reading the package file's metadata")?
        .len();
    let layout = header::read_layout(file, file_len)?;
    let (header_start, payload_start) = (layout.header_start as u64, layout.payload_start as u64);
    let header_sha256 = hex::encode(Sha256::digest(&layout.prefix[layout.header_start..]));
    let mut whole = Sha256::new();
    whole.update(&layout.prefix);

    // Everything decided from the headers is decided before the payload is
    // touched. This parse is from memory; `PackageReader` parses again below.
    let state = Rc::new(RefCell::new(TeeState {
        offset: payload_start,
        whole,
        payload: Sha256::new(),
        io_error: None,
    }));
    let metadata = rpm_call(&state, "parse the package headers", || {
        PackageMetadata::parse(&mut io::Cursor::new(&layout.prefix))
    })?;
    let meta = &metadata;
    check_sizes(meta, file_len, header_start, payload_start)?;
    let expected_header =
        sig_string(meta, IndexSignatureTag::RPMSIGTAG_SHA256)?.ok_or_else(|| {
            failure(
                FailureKind::InvalidPackage,
                "the package has no SHA-256 header digest (built by rpm older than 4.14?)",
            )
        })?;
    if !expected_header.eq_ignore_ascii_case(&header_sha256) {
        bail_kind!(
            FailureKind::InvalidPackage,
            "corrupt RPM: the header does not match its SHA-256 digest"
        );
    }
    let expected_payload = header_strings(meta, IndexTag::RPMTAG_PAYLOADSHA256)?
        .and_then(|v| v.into_iter().next())
        .ok_or_else(|| {
            failure(
                FailureKind::InvalidPackage,
                "the package has no SHA-256 payload digest (built by rpm older than 4.14?)",
            )
        })?;

    let ident = Ident::read(meta)?;
    if layout.source_lead || meta.is_source_package() {
        bail_kind!(
            FailureKind::InvalidPackage,
            "{}-{}-{}.src is a source RPM, not a binary package",
            ident.name,
            ident.version,
            ident.release
        );
    }
    if ident.arch != "noarch" && ident.arch != machine_arch {
        bail_kind!(
            FailureKind::InvalidPackage,
            "{} is built for {}, this machine is {machine_arch}",
            ident.nevra,
            ident.arch
        );
    }
    if let Some(os) = header_string(meta, IndexTag::RPMTAG_OS)?
        && !os.eq_ignore_ascii_case("linux")
    {
        bail_kind!(
            FailureKind::InvalidPackage,
            "{} is built for the OS {}, not Linux",
            ident.nevra,
            paths::show(&os)
        );
    }
    let signed = [
        IndexSignatureTag::RPMSIGTAG_RSA,
        IndexSignatureTag::RPMSIGTAG_DSA,
        IndexSignatureTag::RPMSIGTAG_PGP,
        IndexSignatureTag::RPMSIGTAG_GPG,
        IndexSignatureTag::RPMSIGTAG_OPENPGP,
    ]
    .into_iter()
    .any(|t| meta.signature.entry_is_present(t));

    // File list: paths first, before a byte of payload is looked at.
    if meta.header.entry_is_present(IndexTag::RPMTAG_OLDFILENAMES)
        && !meta.header.entry_is_present(IndexTag::RPMTAG_BASENAMES)
    {
        bail_kind!(
            FailureKind::InvalidPackage,
            "unsupported RPM: it lists files in the pre-rpm-4 OLDFILENAMES form"
        );
    }
    let file_entries = rpm_call(&state, "read the file list", || meta.get_file_entries())?;
    let mut entries = Vec::with_capacity(file_entries.len());
    let mut digests = Vec::with_capacity(file_entries.len());
    for fe in &file_entries {
        if fe.basename().contains('/') {
            bail_kind!(
                FailureKind::UnsafePath,
                "file name {} in {} contains a '/'",
                paths::show(fe.basename()),
                paths::show(fe.dirname())
            );
        }
        let path = format!("{}{}", fe.dirname(), fe.basename());
        let kind = match fe.file_type() {
            FileType::Regular => EntryKind::Regular,
            FileType::Dir => EntryKind::Dir,
            FileType::SymbolicLink => EntryKind::Symlink(fe.linkto().unwrap_or("").to_string()),
            FileType::CharacterDevice => EntryKind::Other("character device".into()),
            FileType::BlockDevice => EntryKind::Other("block device".into()),
            FileType::Fifo => EntryKind::Other("FIFO".into()),
            FileType::Socket => EntryKind::Other("socket".into()),
            _ => EntryKind::Other("file of unknown type".into()),
        };
        entries.push(Entry {
            path,
            kind,
            mode: fe.permissions() & 0o7777,
            ghost: fe.flags().contains(rpm::FileFlags::GHOST),
        });
        digests.push(
            fe.digest()
                .filter(|d| d.algorithm() == rpm::DigestAlgorithm::Sha2_256)
                .map(|d| d.as_hex().to_ascii_lowercase()),
        );
    }
    let plan = check_paths(&entries)?;
    for m in &plan.modules {
        if let Some(comp) = m.compression {
            bail_kind!(
                FailureKind::NoLivepatch,
                "module {} is {comp}-compressed; compressed livepatch modules are not supported yet",
                paths::show(&m.path)
            );
        }
        let size = file_entries[m.index].size() as u64;
        if size > MAX_MODULE_SIZE {
            bail_kind!(
                FailureKind::InvalidPackage,
                "module {} is {size} bytes, larger than the {} MiB limit",
                m.path,
                MAX_MODULE_SIZE >> 20
            );
        }
    }
    let mut text = String::new();
    for tag in [IndexTag::RPMTAG_SUMMARY, IndexTag::RPMTAG_DESCRIPTION] {
        if let Ok(s) = meta.header.get_entry_data_as_i18n_string(tag) {
            text.push_str(s);
            text.push('\n');
        }
    }
    if let Ok(log) = meta.get_changelog_entries() {
        for c in log {
            text.push_str(&c.description);
            text.push('\n');
        }
    }
    drop(file_entries);

    // Payload: one streaming pass. The rpm crate reads the prefix from memory
    // and the payload through the tee, which hashes every byte it hands out.
    let tee = Tee {
        file: file
            .try_clone()
            .context("duplicating the package file handle")?,
        state: Rc::clone(&state),
    };
    let input =
        io::Cursor::new(layout.prefix).chain(io::BufReader::with_capacity(READ_BUFFER, tee));
    let mut reader = rpm_call(&state, "unpack the payload", || {
        rpm::PackageReader::parse(input)
    })?;
    let by_path: HashMap<&str, usize> = plan
        .modules
        .iter()
        .enumerate()
        .map(|(i, m)| (m.path.as_str(), i))
        .collect();
    let mut contents: Vec<Option<Vec<u8>>> = vec![None; plan.modules.len()];
    loop {
        let next = rpm_call(&state, "unpack the payload", || reader.next_file())?;
        let Some(mut f) = next else { break };
        let path = format!("{}{}", f.metadata.dirname(), f.metadata.basename());
        let regular = f.metadata.file_type() == FileType::Regular && f.has_payload();
        if let Some(&i) = by_path.get(path.as_str()).filter(|_| regular) {
            let mut buf = Vec::new();
            payload_io(&state, (&mut f).take(MAX_MODULE_SIZE).read_to_end(&mut buf))?;
            contents[i] = Some(buf);
        } else if regular && path.starts_with(INFO_DIR) {
            let mut buf = Vec::new();
            payload_io(&state, (&mut f).take(MAX_INFO_SIZE).read_to_end(&mut buf))?;
            text.push_str(&String::from_utf8_lossy(&buf));
            text.push('\n');
        }
        payload_io(&state, f.finish())?;
    }
    drop(reader);

    // Whatever follows the cpio trailer (compressed stream tail, anything
    // appended) is part of the file and of the payload digest.
    let mut st = state.borrow_mut();
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        let n = match file.read_at(&mut buf, st.offset) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading the package file"),
        };
        st.feed(&buf[..n]);
    }
    if st.offset != file_len {
        bail_kind!(
            FailureKind::InvalidPackage,
            "the package file changed size while it was being read"
        );
    }
    let payload_sha256 = hex::encode(st.payload.clone().finalize());
    let sha256 = hex::encode(st.whole.clone().finalize());
    drop(st);
    if !expected_payload.eq_ignore_ascii_case(&payload_sha256) {
        bail_kind!(
            FailureKind::InvalidPackage,
            "corrupt RPM: the payload does not match its SHA-256 digest"
        );
    }

    // Module verdicts, now that the bytes are known to be the packager's.
    let expected_elf = modinfo::elf_architecture(if ident.arch == "noarch" {
        machine_arch
    } else {
        &ident.arch
    });
    let mut modules = Vec::with_capacity(plan.modules.len());
    for (m, content) in plan.modules.iter().zip(contents) {
        let p = paths::show(&m.path);
        let Some(data) = content else {
            bail_kind!(
                FailureKind::InvalidPackage,
                "corrupt RPM: module {p} has no content in the payload"
            );
        };
        let sha = hex::encode(Sha256::digest(&data));
        if let Some(expected) = &digests[m.index]
            && *expected != sha
        {
            bail_kind!(
                FailureKind::InvalidPackage,
                "corrupt RPM: module {p} does not match its digest in the header"
            );
        }
        let elf = modinfo::read_module(&data)
            .map_err(|why| failure(FailureKind::NoLivepatch, format!("module {p} {why}")))?;
        if let Some(arch) = expected_elf
            && elf.architecture != arch
        {
            bail_kind!(
                FailureKind::WrongKernel,
                "module {p} is built for {:?}, the package is for {}",
                elf.architecture,
                ident.arch
            );
        }
        if !elf.info.is_livepatch() {
            bail_kind!(
                FailureKind::NoLivepatch,
                "module {p} is not a livepatch (its .modinfo lacks livepatch=Y)"
            );
        }
        let Some(release) = elf.info.vermagic_release() else {
            bail_kind!(
                FailureKind::WrongKernel,
                "module {p} has no vermagic, so its kernel is unknown"
            );
        };
        if release != m.kver {
            bail_kind!(
                FailureKind::WrongKernel,
                "module {p} has vermagic for kernel {} but is installed for kernel {}",
                paths::show(release),
                m.kver
            );
        }
        // The kernel's name for the module (it names /sys/kernel/livepatch/<name>).
        let name = match elf.info.get("name") {
            Some(n) if paths::is_module_name(n) => n.to_string(),
            Some(n) => bail_kind!(
                FailureKind::UnsafePath,
                "module {p} has the unusable name {} in its .modinfo",
                paths::show(n)
            ),
            None => m.stem.replace('-', "_"),
        };
        modules.push(ModuleFacts {
            path: m.path.clone(),
            name,
            kver: m.kver.clone(),
            vermagic: elf.info.get("vermagic").unwrap_or_default().to_string(),
            livepatch: true,
            sha256: sha,
            size: data.len() as u64,
        });
    }

    Ok(PackageFacts {
        name: ident.name,
        epoch: ident.epoch,
        version: ident.version,
        release: ident.release,
        arch: ident.arch,
        nevra: ident.nevra,
        sha256,
        size: file_len,
        signed,
        files: entries.into_iter().map(|e| e.path).collect(),
        modules,
        kernel_release: plan.kernel_release,
        cves: find_cves(&text),
    })
}

/// Shared between the tee the rpm crate owns and `inspect`.
struct TeeState {
    offset: u64,
    whole: Sha256,
    payload: Sha256,
    /// An I/O error from the file itself (not a format problem).
    io_error: Option<String>,
}

impl TeeState {
    fn feed(&mut self, bytes: &[u8]) {
        self.whole.update(bytes);
        self.payload.update(bytes);
        self.offset += bytes.len() as u64;
    }
}

/// Reads the payload part of the file by position and hashes what it reads.
struct Tee {
    file: File,
    state: Rc<RefCell<TeeState>>,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut st = self.state.borrow_mut();
        match self.file.read_at(buf, st.offset) {
            Ok(n) => {
                st.feed(&buf[..n]);
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    st.io_error = Some(e.to_string());
                }
                Err(e)
            }
        }
    }
}

/// One line, at most 200 characters, for embedding a library's error text.
fn one_line(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// Run an `rpm` crate call on untrusted data: its errors (and, defensively,
/// its panics) become `InvalidPackage`, unless the file itself failed to read.
fn rpm_call<T>(
    state: &Rc<RefCell<TeeState>>,
    what: &str,
    f: impl FnOnce() -> std::result::Result<T, rpm::Error>,
) -> Result<T> {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    if let Some(e) = state.borrow_mut().io_error.take() {
        return Err(anyhow::anyhow!("reading the package file: {e}"));
    }
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(failure(
            FailureKind::InvalidPackage,
            format!("corrupt RPM: cannot {what}: {}", one_line(&e.to_string())),
        )),
        Err(_) => Err(failure(
            FailureKind::InvalidPackage,
            format!("corrupt RPM: the rpm parser crashed trying to {what}"),
        )),
    }
}

fn payload_io<T>(state: &Rc<RefCell<TeeState>>, r: io::Result<T>) -> Result<T> {
    rpm_call(state, "unpack the payload", || r.map_err(rpm::Error::from))
}

/// Optional string tag of the main header; present-but-malformed is corrupt.
fn header_string(meta: &PackageMetadata, tag: IndexTag) -> Result<Option<String>> {
    match meta.header.get_entry_data_as_string(tag) {
        Ok(s) => Ok(Some(s.to_string())),
        Err(rpm::Error::TagNotFound(_)) => Ok(None),
        Err(e) => Err(bad_tag(tag, e)),
    }
}

fn header_strings(meta: &PackageMetadata, tag: IndexTag) -> Result<Option<Vec<String>>> {
    match meta.header.get_entry_data_as_string_array(tag) {
        Ok(v) => Ok(Some(v.into_iter().map(str::to_string).collect())),
        Err(rpm::Error::TagNotFound(_)) => Ok(None),
        Err(e) => Err(bad_tag(tag, e)),
    }
}

fn sig_string(meta: &PackageMetadata, tag: IndexSignatureTag) -> Result<Option<String>> {
    match meta.signature.get_entry_data_as_string(tag) {
        Ok(s) => Ok(Some(s.to_string())),
        Err(rpm::Error::TagNotFound(_)) => Ok(None),
        Err(e) => Err(bad_tag(tag, e)),
    }
}

fn bad_tag(tag: impl std::fmt::Debug, e: rpm::Error) -> anyhow::Error {
    failure(
        FailureKind::InvalidPackage,
        format!("corrupt RPM: bad {tag:?} tag: {}", one_line(&e.to_string())),
    )
}

/// The file length must be what the headers promise, so truncation and
/// appended data are named as such before the payload is touched.
fn check_sizes(
    meta: &PackageMetadata,
    file_len: u64,
    header_start: u64,
    payload_start: u64,
) -> Result<()> {
    let sig = &meta.signature;
    let promised = match sig.get_entry_data_as_u64(IndexSignatureTag::RPMSIGTAG_LONGSIZE) {
        Ok(n) => Some(header_start.saturating_add(n)),
        Err(_) => sig
            .get_entry_data_as_u32(IndexSignatureTag::RPMSIGTAG_SIZE)
            .ok()
            .map(|n| header_start + n as u64),
    }
    .or_else(|| {
        meta.header
            .get_entry_data_as_u64(IndexTag::RPMTAG_PAYLOADSIZE)
            .ok()
            .map(|n| payload_start.saturating_add(n))
    });
    match promised {
        Some(n) if file_len < n => bail_kind!(
            FailureKind::InvalidPackage,
            "truncated RPM: the headers promise {n} bytes, the file has {file_len}"
        ),
        Some(n) if file_len > n => bail_kind!(
            FailureKind::InvalidPackage,
            "corrupt RPM: {} bytes of unexpected data after the payload",
            file_len - n
        ),
        _ if file_len == payload_start => bail_kind!(
            FailureKind::InvalidPackage,
            "truncated RPM: the file ends where the payload should start"
        ),
        _ => Ok(()),
    }
}

/// Name, version, release and arch, checked to be plain tokens: they end up
/// in command lines, snapshot descriptions and file names.
struct Ident {
    name: String,
    epoch: u32,
    version: String,
    release: String,
    arch: String,
    nevra: String,
}

impl Ident {
    fn read(meta: &PackageMetadata) -> Result<Self> {
        let get = |tag: IndexTag, what: &str, extra: &str| -> Result<String> {
            let v = header_string(meta, tag)?.ok_or_else(|| {
                failure(
                    FailureKind::InvalidPackage,
                    format!("corrupt RPM: the header has no package {what}"),
                )
            })?;
            let ok = !v.is_empty()
                && v.len() <= 256
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._+~^".contains(c) || extra.contains(c));
            if !ok {
                bail_kind!(
                    FailureKind::InvalidPackage,
                    "package {what} {} contains characters rpm does not allow",
                    paths::show(&v)
                );
            }
            Ok(v)
        };
        let name = get(IndexTag::RPMTAG_NAME, "name", "-")?;
        let version = get(IndexTag::RPMTAG_VERSION, "version", "")?;
        let release = get(IndexTag::RPMTAG_RELEASE, "release", "")?;
        let arch = get(IndexTag::RPMTAG_ARCH, "arch", "")?;
        let epoch = match meta.header.get_entry_data_as_u32(IndexTag::RPMTAG_EPOCH) {
            Ok(e) => Some(e),
            Err(rpm::Error::TagNotFound(_)) => None,
            Err(e) => return Err(bad_tag(IndexTag::RPMTAG_EPOCH, e)),
        };
        let nevra = match epoch {
            Some(e) if e != 0 => format!("{name}-{e}:{version}-{release}.{arch}"),
            _ => format!("{name}-{version}-{release}.{arch}"),
        };
        Ok(Ident {
            name,
            epoch: epoch.unwrap_or(0),
            version,
            release,
            arch,
            nevra,
        })
    }
}

/// `CVE-<year>-<number>` ids (any case) in `text`, normalised, numerically
/// sorted, without duplicates.
pub fn find_cves(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut found = BTreeSet::new();
    let mut i = 0;
    while i + 4 <= b.len() {
        let starts = b[i..i + 4].eq_ignore_ascii_case(b"cve-")
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric());
        if !starts {
            i += 1;
            continue;
        }
        let y = digits(i + 4);
        let after_year = i + 4 + y;
        if y == 4 && b.get(after_year) == Some(&b'-') {
            let n = digits(after_year + 1);
            let end = after_year + 1 + n;
            if (4..=19).contains(&n) && b.get(end).is_none_or(|c| !c.is_ascii_alphanumeric()) {
                let year: u32 = text[i + 4..after_year].parse().unwrap_or(0);
                let num: u64 = text[after_year + 1..end].parse().unwrap_or(0);
                found.insert((year, num));
                i = end;
                continue;
            }
        }
        i += 4;
    }
    found
        .into_iter()
        .map(|(y, n)| format!("CVE-{y}-{n:04}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cves_are_found_normalised_and_sorted() {
        let text = "Fixes CVE-2024-26581 and cve-2023-1234, (CVE-2024-1086); again CVE-2024-26581.\n\
                    Not: XCVE-2024-1111, CVE-24-1, CVE-2024-12, CVE-2024-12345a, CVE-2024-";
        assert_eq!(
            find_cves(text),
            ["CVE-2023-1234", "CVE-2024-1086", "CVE-2024-26581"]
        );
        assert!(find_cves("").is_empty());
        assert_eq!(find_cves("CVE-2021-0001"), ["CVE-2021-0001"]);
        assert_eq!(find_cves("ünïcode CVE-2022-99999 ✓"), ["CVE-2022-99999"]);
    }

    #[test]
    fn one_line_flattens_and_cuts() {
        assert_eq!(one_line("a\nb\t c"), "a b c");
        assert_eq!(one_line(&"x".repeat(500)).chars().count(), 201);
    }

    #[test]
    fn machine_arch_is_an_rpm_name() {
        let a = machine_rpm_arch();
        assert!(!a.is_empty() && a != "powerpc64" && a != "x86");
    }

    #[test]
    fn garbage_files_are_invalid_packages() {
        use crate::error::kind_of;
        use std::io::Write;
        for bytes in [&b""[..], b"x", b"\xed\xab\xee\xdb", &[0u8; 4096]] {
            let mut f = tempfile::tempfile().unwrap();
            f.write_all(bytes).unwrap();
            let e = inspect(&f).unwrap_err();
            assert_eq!(kind_of(&e), FailureKind::InvalidPackage, "{e:#}");
            assert!(!format!("{e:#}").contains('\n'));
        }
    }
}
