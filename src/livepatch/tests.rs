//! The load / reverse state machine against a temp-dir sysfs and a fake kernel.
//! (The real kernel is exercised by the VM tier.)

use super::fake::*;
use super::*;
use std::cell::RefCell;
use std::fs;

#[test]
fn unsupported_kernel_is_refused_with_its_kind() {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir_all(d.path().join("proc/sys/kernel")).unwrap();
    fs::write(d.path().join("proc/sys/kernel/osrelease"), "6.18.0\n").unwrap();
    let lp = Livepatch {
        sysfs: Sysfs::new(d.path()),
        kernel: &RealKernel,
        timing: fast(),
    };
    let e = lp.require_support().unwrap_err();
    assert_eq!(crate::error::kind_of(&e), FailureKind::KernelUnsupported);
    assert!(e.to_string().contains("6.18.0"), "{e}");
}

#[test]
fn immediate_load_succeeds() {
    let (d, k) = setup(Behaviour::Immediate, false);
    let lp = Livepatch {
        sysfs: Sysfs::new(d.path()),
        kernel: &k,
        timing: fast(),
    };
    let m = module_file(d.path(), "tlp_a");
    let replaced = lp.load(&m, "tlp_a", &|_| {}).unwrap();
    assert!(replaced.is_empty());
    let p = lp.sysfs.patch("tlp_a").unwrap().unwrap();
    assert!(p.enabled && !p.transition);
}

#[test]
fn cumulative_load_removes_replaced_modules() {
    let (d, k) = setup(Behaviour::Immediate, false);
    k.add_patch("tlp_cumul_1", false);
    let k2 = FakeKernel { replace: true, ..k };
    let lp = Livepatch {
        sysfs: Sysfs::new(d.path()),
        kernel: &k2,
        timing: fast(),
    };
    let m = module_file(d.path(), "tlp_cumul_2");
    let replaced = lp.load(&m, "tlp_cumul_2", &|_| {}).unwrap();
    assert_eq!(replaced, vec!["tlp_cumul_1".to_string()]);
    assert_eq!(*k2.unloaded.borrow(), vec!["tlp_cumul_1".to_string()]);
    assert!(!lp.sysfs.module_loaded("tlp_cumul_1"));
}

#[test]
fn stalled_transition_is_reported_reversed_and_removed() {
    let (d, k) = setup(Behaviour::Stall, false);
    // A task that never leaves the old code.
    let t = d.path().join("proc/42/task/43");
    fs::create_dir_all(&t).unwrap();
    fs::write(t.join("patch_state"), "0\n").unwrap();
    fs::write(t.join("comm"), "tlp_holder\n").unwrap();
    fs::write(
        t.join("stack"),
        "[<0>] tlp_holder_sleep+0x1a/0x40\n[<0>] kthread+0xe8/0x110\n",
    )
    .unwrap();
    // Another one that already switched.
    let t2 = d.path().join("proc/50/task/50");
    fs::create_dir_all(&t2).unwrap();
    fs::write(t2.join("patch_state"), "1\n").unwrap();
    fs::write(t2.join("comm"), "bash\n").unwrap();

    // The fake kernel reverses as soon as enabled=0 is written: emulate that
    // from the report callback, which runs while waiting.
    let lp = Livepatch {
        sysfs: Sysfs::new(d.path()),
        kernel: &k,
        timing: fast(),
    };
    let messages = RefCell::new(Vec::new());
    let report = |m: &str| {
        messages.borrow_mut().push(m.to_string());
        k.settle_disables();
    };
    let m = module_file(d.path(), "tlp_stall");
    let e = lp.load(&m, "tlp_stall", &report).unwrap_err();
    assert_eq!(
        crate::error::kind_of(&e),
        FailureKind::TransitionStalled,
        "{e:#}"
    );
    let text = e.to_string();
    assert!(
        text.contains("tlp_holder (pid 43) in tlp_holder_sleep"),
        "{text}"
    );
    assert!(!text.contains("bash"), "{text}");
    assert!(
        messages
            .borrow()
            .iter()
            .any(|m| m.contains("still in transition")),
        "{:?}",
        messages.borrow()
    );
    assert!(lp.sysfs.patch("tlp_stall").unwrap().is_none());
    assert_eq!(*k.unloaded.borrow(), vec!["tlp_stall".to_string()]);
    // Never forced.
    assert!(
        !d.path()
            .join("sys/kernel/livepatch/tlp_stall/force")
            .exists()
    );
}

#[test]
fn refused_module_is_load_failed() {
    let (d, k) = setup(Behaviour::Refuse, false);
    let lp = Livepatch {
        sysfs: Sysfs::new(d.path()),
        kernel: &k,
        timing: fast(),
    };
    let m = module_file(d.path(), "tlp_bad");
    let e = lp.load(&m, "tlp_bad", &|_| {}).unwrap_err();
    assert_eq!(crate::error::kind_of(&e), FailureKind::LoadFailed);
    assert!(e.to_string().contains("Invalid module format"), "{e}");
}

#[test]
fn disable_waits_for_the_directory_to_go_then_unloads() {
    let (d, k) = setup(Behaviour::Immediate, false);
    k.add_patch("tlp_b", false);
    let lp = Livepatch {
        sysfs: Sysfs::new(d.path()),
        kernel: &k,
        timing: fast(),
    };
    lp.disable("tlp_b", &|_| k.settle_disables()).unwrap();
    assert!(lp.sysfs.patch("tlp_b").unwrap().is_none());
    assert_eq!(*k.unloaded.borrow(), vec!["tlp_b".to_string()]);
}

#[test]
fn unload_is_retried_while_the_kernel_still_holds_the_module() {
    // delete_module says EAGAIN twice (the kernel's reference is dropped from
    // a work item after the disable finished), then succeeds.
    struct Busy<'a> {
        inner: &'a FakeKernel,
        refusals: std::cell::Cell<u32>,
    }
    impl Kernel for Busy<'_> {
        fn load_module(&self, f: &std::fs::File) -> Result<()> {
            self.inner.load_module(f)
        }
        fn unload_module(&self, name: &str) -> Result<()> {
            if self.refusals.get() > 0 {
                self.refusals.set(self.refusals.get() - 1);
                return Err(anyhow::Error::new(nix::errno::Errno::EAGAIN))
                    .with_context(|| format!("delete_module {name}"));
            }
            self.inner.unload_module(name)
        }
    }
    let (d, k) = setup(Behaviour::Immediate, false);
    k.add_patch("tlp_last", false);
    let busy = Busy {
        inner: &k,
        refusals: std::cell::Cell::new(2),
    };
    let lp = Livepatch {
        sysfs: Sysfs::new(d.path()),
        kernel: &busy,
        timing: fast(),
    };
    lp.disable("tlp_last", &|_| k.settle_disables()).unwrap();
    assert_eq!(busy.refusals.get(), 0);
    assert_eq!(*k.unloaded.borrow(), vec!["tlp_last".to_string()]);

    // A permanent refusal still fails, typed, after the bound.
    k.add_patch("tlp_stuck", false);
    let stuck = Busy {
        inner: &k,
        refusals: std::cell::Cell::new(u32::MAX),
    };
    let lp = Livepatch {
        sysfs: Sysfs::new(d.path()),
        kernel: &stuck,
        timing: fast(),
    };
    let e = lp
        .disable("tlp_stuck", &|_| k.settle_disables())
        .unwrap_err();
    assert_eq!(crate::error::kind_of(&e), FailureKind::UnloadFailed);
}
