#!/bin/bash
# The main job of transactional-livepatch, end to end, in a throwaway VM, told
# in plain words:
#
#   1. boot a SLE Micro-like btrfs system (read-only root snapshot as the
#      default subvolume, shared /var) under QEMU;
#   2. apply the tlp-livepatch-simple RPM: it is live at once (/proc/cmdline
#      gains " tlp_marker=simple") and a new snapshot is the default;
#   3. reboot: the initrd of the new default loads it before init runs;
#   4. roll back: the patch leaves the running kernel at once;
#   5. reboot: the old snapshot boots, without the patch.
#
# Needs root and QEMU (tests/support/deps.sh installs everything). Takes
# several minutes under TCG; everything it builds goes to a temporary
# directory that is removed at the end. Exits non-zero if any step did not
# behave. Env: TLP_DEMO_KEEP=1 keeps the directory (image and serial logs).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

PKG=tlp-livepatch-simple
start=$SECONDS
failures=0

say() { printf '%s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
bad() {
	printf '   NOT OK: %s\n' "$*"
	failures=$((failures + 1))
}

lacking=$(vm_missing_prereqs)
if [[ -n $lacking ]]; then
	say "Cannot run the demo here; missing: $lacking"
	say "(run tests/support/deps.sh as root first)"
	exit 1
fi

work=$(mktemp -d "${TLP_TEST_TMP:-/var/tmp}/tlp-demo.XXXXXX")
cleanup() {
	if [[ ${TLP_DEMO_KEEP:-0} == 1 ]]; then
		say "Kept $work (image and serial logs)."
	else
		rm -rf -- "$work"
	fi
}
trap cleanup EXIT

# Follow a boot's serial log while QEMU runs, telling what the guest does.
narrate() {
	local log=$1 pid=$2 line rc t0=$SECONDS
	while :; do
		if IFS= read -r -t 20 line; then
			line=${line%$'\r'}
			[[ $line == *"TLP-RESULT "* ]] || continue
			line=${line#*TLP-RESULT }
			case $line in
			early.uptime=*) say "   guest kernel up; init started at ${line#*=} s of kernel uptime" ;;
			step.bootcheck.rc=*) say "   boot check (what the boot unit runs) done, exit code ${line#*=}" ;;
			step.*.progress=*)
				local text=${line#*=}
				say "   guest: ${text#* }"
				;;
			esac
		else
			rc=$?
			((rc > 128)) || break
			say "   ... still working ($((SECONDS - t0)) s)"
		fi
	done < <(tail -n +1 --pid="$pid" -F "$log" 2>/dev/null)
}

# boot NAME STEPS: boot the image's default subvolume once, with progress.
boot() {
	local name=$1 steps=$2 log="$work/$1.log" pid rc=0
	: >"$log"
	vm_boot "$work/disk.img" "$name" "$steps" "$log" 1800 &
	pid=$!
	narrate "$log" "$pid"
	wait "$pid" || rc=$?
	if ((rc != 0)); then
		say "   QEMU failed (status $rc); serial log: $log"
		TLP_DEMO_KEEP=1
		exit 1
	fi
	LOG=$log
	if [[ $(vm_get "$log" "done") != 1 ]]; then
		bad "the guest did not finish its steps (serial log $log)"
		TLP_DEMO_KEEP=1
		exit 1
	fi
}
get() { vm_get "$LOG" "$1"; }
live() { get "$1"; }

say "== Building the tool (cargo build) ..."
(cd "$VM_REPO" && cargo build --quiet --locked)
say "== Building a test system: SLE Micro layout btrfs image, livepatch RPMs ..."
vm_build_image "$work/disk.img" "$VM_REPO/target/debug/transactional-livepatch"
say "   image ready ($((SECONDS - start)) s so far)"

say ""
say "== Booting the system and applying $PKG (dracut under emulation takes a while) ..."
boot 1-apply "facts:before,apply:$PKG,facts:applied"
before=$(get facts.before.cmdline)
after=$(get facts.applied.cmdline)
say "   /proc/cmdline before: $before"
say "   /proc/cmdline after:  $after"
if [[ $(get step.2.rc) == 0 && $(live facts.applied.patches) == "tlp_simple:1:0" &&
	$(get facts.applied.cmdline_marker) == simple ]]; then
	ok "applying $PKG: live now, /proc/cmdline shows 'tlp_marker=simple' (sysfs: tlp_simple enabled)"
else
	bad "$PKG is not live after apply (exit code $(get step.2.rc), live: '$(live facts.applied.patches)')"
fi
new=$(get facts.applied.default)
new=${new##*.snapshots/}
new=${new%%/*}
say "   the default subvolume is now snapshot $new; the running root is still snapshot 1"

say ""
say "== Rebooting into the new default, then rolling back ..."
boot 2-reboot "facts:booted,rollback,facts:rolled_back"
initrd_line=$(vm_results "$LOG" | sed -n 's/^early\.dmesg=//p' | grep -F -m1 'from the initrd' || true)
root=$(get early.root)
if [[ $(live early.patches) == "tlp_simple:1:0" && -n $initrd_line ]]; then
	ok "still live after reboot (loaded from the initrd, before init ran): $initrd_line"
else
	bad "after the reboot the patch was not loaded by the initrd (live at init: '$(live early.patches)')"
fi
if [[ $root == *"/.snapshots/$new/snapshot"* ]]; then
	ok "booted from snapshot $new: $root"
else
	bad "booted from $root, not snapshot $new"
fi
if [[ $(get step.2.rc) == 0 && -z $(live facts.rolled_back.patches) && -z $(get facts.rolled_back.cmdline_marker) ]]; then
	ok "gone after rollback: no livepatch in sysfs, /proc/cmdline is '$(get facts.rolled_back.cmdline)'"
else
	bad "rollback did not remove the patch (exit code $(get step.2.rc), live: '$(live facts.rolled_back.patches)')"
fi

say ""
say "== Rebooting once more ..."
boot 3-after-rollback "facts:final"
if [[ -z $(live early.patches) && $(get early.root) == *"/.snapshots/1/snapshot"* ]]; then
	ok "snapshot 1 boots again, without the livepatch"
else
	bad "after the rollback reboot: root $(get early.root), live '$(live early.patches)'"
fi

say ""
if ((failures == 0)); then
	say "Done in $((SECONDS - start)) s: apply was live at once, survived a reboot, and rollback undid it live and for boot."
else
	say "$failures step(s) did not behave (serial logs kept in $work)."
	TLP_DEMO_KEEP=1
	exit 1
fi
