//! The `.modinfo` section of a kernel module: NUL-separated `key=value` strings
//! (`name`, `vermagic`, `livepatch`, `license`, `depends`, …).

use object::{Architecture, Object, ObjectKind, ObjectSection};

/// The parsed `.modinfo` of one module, in section order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    pub fields: Vec<(String, String)>,
}

impl ModInfo {
    /// Parse the raw section bytes. Empty strings (alignment padding) and
    /// strings without `=` are skipped; invalid UTF-8 is replaced.
    pub fn parse(section: &[u8]) -> Self {
        let fields = section
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                let s = String::from_utf8_lossy(s);
                let (k, v) = s.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect();
        ModInfo { fields }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `livepatch=Y`, as modpost writes for `MODULE_INFO(livepatch, "Y")`.
    pub fn is_livepatch(&self) -> bool {
        self.get("livepatch") == Some("Y")
    }

    /// The kernel release a module was built for: the first word of `vermagic`.
    pub fn vermagic_release(&self) -> Option<&str> {
        self.get("vermagic")?.split_whitespace().next()
    }
}

/// What the ELF object of a module tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfModule {
    pub info: ModInfo,
    pub architecture: Architecture,
}

/// Read a kernel module image. The error is a short reason to put after
/// "module X …" ("is not an ELF object: …").
pub fn read_module(data: &[u8]) -> Result<ElfModule, String> {
    if !data.starts_with(b"\x7fELF") {
        return Err("is not an ELF object".into());
    }
    let file =
        object::File::parse(data).map_err(|e| format!("is not a readable ELF object ({e})"))?;
    if file.kind() != ObjectKind::Relocatable {
        return Err(format!(
            "is not a kernel module (ELF {:?}, not relocatable)",
            file.kind()
        ));
    }
    let section = file
        .section_by_name(".modinfo")
        .ok_or("has no .modinfo section")?;
    let bytes = section
        .data()
        .map_err(|e| format!("has an unreadable .modinfo section ({e})"))?;
    Ok(ElfModule {
        info: ModInfo::parse(bytes),
        architecture: file.architecture(),
    })
}

/// The ELF architecture modules for an RPM arch have, if known.
pub fn elf_architecture(rpm_arch: &str) -> Option<Architecture> {
    Some(match rpm_arch {
        "x86_64" => Architecture::X86_64,
        "aarch64" => Architecture::Aarch64,
        "s390x" => Architecture::S390x,
        "ppc64le" | "ppc64" => Architecture::PowerPc64,
        "riscv64" => Architecture::Riscv64,
        _ => return None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cmd::{self, CommandRunExt};

    pub(crate) const GOOD_MODINFO: &str =
        r"livepatch=Y\0vermagic=6.1.0-56-amd64 SMP preempt mod_unload modversions \0name=tlp_x";

    /// Compile a relocatable ELF whose `.modinfo` holds `modinfo` (C string
    /// syntax, `\0` separators). `None` when no C compiler is available.
    pub(crate) fn build_object(modinfo: &str) -> Option<Vec<u8>> {
        if cmd::command("cc").arg("--version").run_ok().is_err() {
            assert!(
                std::env::var_os("CI").is_none_or(|v| v != "true"),
                "cc (a C compiler) is required to build test kernel modules"
            );
            eprintln!("skipped: no C compiler (cc) to build a test module");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("m.c");
        let obj = dir.path().join("m.o");
        std::fs::write(
            &src,
            format!(
                "static const char m[] __attribute__((used, section(\".modinfo\"))) = \"{modinfo}\";\n\
                 int tlp_dummy(void) {{ return 0; }}\n"
            ),
        )
        .unwrap();
        cmd::command("cc")
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .run_ok()
            .unwrap();
        Some(std::fs::read(obj).unwrap())
    }

    #[test]
    fn parse_section_bytes() {
        let info = ModInfo::parse(
            b"\0\0license=GPL\0livepatch=Y\0\0\0vermagic=6.1.0-56-amd64 SMP mod_unload \0junk\0depends=\0name=tlp_x\0\0",
        );
        assert_eq!(info.get("license"), Some("GPL"));
        assert_eq!(info.get("depends"), Some(""));
        assert_eq!(info.get("name"), Some("tlp_x"));
        assert_eq!(info.get("junk"), None);
        assert!(info.is_livepatch());
        assert_eq!(info.vermagic_release(), Some("6.1.0-56-amd64"));
        assert_eq!(info.fields.len(), 5);
    }

    #[test]
    fn livepatch_must_be_y() {
        assert!(!ModInfo::parse(b"livepatch=N\0").is_livepatch());
        assert!(!ModInfo::parse(b"livepatch=\0").is_livepatch());
        assert!(!ModInfo::parse(b"xlivepatch=Y\0").is_livepatch());
        assert!(!ModInfo::parse(b"").is_livepatch());
        assert_eq!(ModInfo::parse(b"vermagic=\0").vermagic_release(), None);
        assert_eq!(
            ModInfo::parse(b"vermagic=\xff\0").vermagic_release(),
            Some("\u{FFFD}")
        );
    }

    #[test]
    fn reads_modinfo_from_a_real_object() {
        let Some(obj) = build_object(GOOD_MODINFO) else {
            return;
        };
        let m = read_module(&obj).unwrap();
        assert!(m.info.is_livepatch());
        assert_eq!(m.info.get("name"), Some("tlp_x"));
        assert_eq!(m.info.vermagic_release(), Some("6.1.0-56-amd64"));
        assert_eq!(
            Some(m.architecture),
            elf_architecture(crate::package::machine_rpm_arch())
        );
    }

    #[test]
    fn garbage_and_truncated_objects_are_reasons_not_panics() {
        assert_eq!(read_module(b"").unwrap_err(), "is not an ELF object");
        assert_eq!(
            read_module(b"hello world").unwrap_err(),
            "is not an ELF object"
        );
        let e = read_module(b"\x7fELF\x02\x01\x01").unwrap_err();
        assert!(e.contains("not a readable ELF object"), "{e}");
        let Some(obj) = build_object(GOOD_MODINFO) else {
            return;
        };
        for len in 0..obj.len() {
            // Must not panic; whatever it says is fine.
            let _ = read_module(&obj[..len]);
        }
        let mut garbled = obj.clone();
        for i in (0..garbled.len()).step_by(7) {
            garbled[i] ^= 0xa5;
            let _ = read_module(&garbled);
        }
    }

    #[test]
    fn object_without_modinfo_is_refused() {
        let Some(obj) = build_object("x") else {
            return;
        };
        // Rename the section in the string table: ".modinfo" -> ".modinfX".
        let pos = obj
            .windows(9)
            .position(|w| w == b".modinfo\0")
            .expect("section name in the object");
        let mut renamed = obj.clone();
        renamed[pos + 7] = b'X';
        assert_eq!(
            read_module(&renamed).unwrap_err(),
            "has no .modinfo section"
        );
    }
}
