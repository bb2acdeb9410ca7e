//! A fake kernel over a temp-dir sysfs, for unit tests of the livepatch
//! state machine and of the transaction logic built on it. The real kernel is
//! exercised by the VM tier.

use super::*;
use std::cell::RefCell;
use std::fs;
use std::path::PathBuf;

/// How the fake kernel behaves on load.
#[derive(Clone, Copy, PartialEq)]
pub enum Behaviour {
    /// The transition finishes at once.
    Immediate,
    /// The transition never finishes; writing enabled=0 reverses it at once.
    Stall,
    /// finit_module fails.
    Refuse,
}

pub struct FakeKernel {
    pub root: PathBuf,
    pub behaviour: Behaviour,
    pub replace: bool,
    pub unloaded: RefCell<Vec<String>>,
}

impl FakeKernel {
    fn lp(&self) -> PathBuf {
        self.root.join("sys/kernel/livepatch")
    }
    pub fn add_patch(&self, name: &str, transition: bool) {
        let d = self.lp().join(name);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("enabled"), "1\n").unwrap();
        fs::write(d.join("transition"), if transition { "1\n" } else { "0\n" }).unwrap();
        let m = self.root.join("sys/module").join(name);
        fs::create_dir_all(&m).unwrap();
        fs::write(m.join("initstate"), "live\n").unwrap();
    }
    /// What the kernel does after enabled=0 was written: the reverse
    /// transition ends and the directory goes.
    pub fn settle_disables(&self) {
        for e in fs::read_dir(self.lp()).unwrap().flatten() {
            let en = fs::read_to_string(e.path().join("enabled")).unwrap();
            if en.trim() == "0" {
                fs::remove_dir_all(e.path()).unwrap();
            }
        }
    }
}

impl Kernel for FakeKernel {
    fn load_module(&self, file: &std::fs::File) -> Result<()> {
        use std::io::Read;
        let mut name = String::new();
        (&*file).read_to_string(&mut name).unwrap();
        let name = name.trim().to_string();
        match self.behaviour {
            Behaviour::Refuse => anyhow::bail!("Invalid module format"),
            Behaviour::Stall => self.add_patch(&name, true),
            Behaviour::Immediate => {
                if self.replace {
                    for e in fs::read_dir(self.lp()).unwrap().flatten() {
                        fs::remove_dir_all(e.path()).unwrap();
                    }
                }
                self.add_patch(&name, false)
            }
        }
        Ok(())
    }
    fn unload_module(&self, name: &str) -> Result<()> {
        self.settle_disables();
        if self.lp().join(name).exists() {
            anyhow::bail!("Resource temporarily unavailable (module in use)");
        }
        fs::remove_dir_all(self.root.join("sys/module").join(name)).unwrap();
        self.unloaded.borrow_mut().push(name.to_string());
        Ok(())
    }
}

pub fn setup(behaviour: Behaviour, replace: bool) -> (tempfile::TempDir, FakeKernel) {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir_all(d.path().join("sys/kernel/livepatch")).unwrap();
    fs::create_dir_all(d.path().join("proc/sys/kernel")).unwrap();
    fs::write(
        d.path().join("proc/sys/kernel/osrelease"),
        "6.1.0-56-amd64\n",
    )
    .unwrap();
    let k = FakeKernel {
        root: d.path().to_path_buf(),
        behaviour,
        replace,
        unloaded: RefCell::new(Vec::new()),
    };
    (d, k)
}

pub fn module_file(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(format!("{name}.ko"));
    fs::write(&p, name).unwrap();
    p
}

pub fn fast() -> Timing {
    Timing {
        grace: Duration::from_millis(50),
        timeout: Duration::from_millis(200),
        reverse_timeout: Duration::from_millis(200),
        poll: Duration::from_millis(10),
    }
}
