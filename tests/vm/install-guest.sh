#!/bin/bash
# Run by tests/support/make-image.sh (as TLP_INSTALL_CMD) with DESTDIR set to
# the root snapshot, before it is sealed read-only and before its /var moves to
# the shared @/var subvolume. Installs:
#   - this project: already installed from its RPM when TLP_TOOL_RPM is set
#     (make-image.sh did it, as tests/run-all.sh arranges), else by its own
#     `make install` (binary = VM_BIN, a failpoints build, without its debug
#     info), so the dracut module and units tested are the packaged ones;
#   - the guest init, /usr/lib/tlp-test/init;
#   - short livepatch transition timeouts (the stall scenario waits them out);
#   - the test RPMs and the stall helper module under /var/lib/tlp-test, on
#     the shared /var, so every snapshot (and a rollback) still has them.
#   - two rpm-md repositories of the cumulative livepatch made with
#     createrepo_c, repo-v1 (version 1) and repo-v2 (versions 1 and 2), also on
#     the shared /var, and a zypper repository /etc/zypp/repos.d/tlp-test.repo
#     with baseurl dir:///var/lib/tlp-test/repo (a symlink the guest's repo:
#     step points at one of them: "the server published v2"). dir://, without
#     signatures: the guest has no network, and HTTP transport plus
#     repository and package signatures are tested against the same zypper
#     on the host (tests/update.rs); here `update` must prove the live half.
#   - a machine id, which the system bus needs (the snapshot is read-only at
#     boot, and nothing in this init-less guest would create one).
#   - unless VM_FULL_IMAGE=1: a slimmer kernel module tree and initrd (below).
#   - a dracut configuration directory for a systemd initrd,
#     /usr/lib/tlp-test/dracut-systemd.conf.d, inert until dracut is pointed
#     at it (the systemd-initrd scenario passes it through the tool's
#     `[initrd] dracut_args`; see the end of this file).
# Env: DESTDIR, VM_BIN, VM_RPMS (a livepatches.sh output directory), VM_DIR,
# VM_REPO (exported by lib.sh), VM_FULL_IMAGE, TLP_TOOL_RPM.
set -euo pipefail
: "${DESTDIR:?}" "${VM_BIN:?}" "${VM_RPMS:?}" "${VM_DIR:?}" "${VM_REPO:?}"

if [[ -n ${TLP_TOOL_RPM:-} ]]; then
	# make-image.sh installed the tool from its RPM (a failpoints build).
	[[ -x $DESTDIR/usr/sbin/transactional-livepatch ]] || {
		echo "install-guest.sh: TLP_TOOL_RPM is set but the tool is not installed" >&2
		exit 1
	}
else
	# The debug build is >100 MB, nearly all DWARF; the guest reads it from a
	# compressed btrfs under emulation on every boot (that took 10-40 s).
	# Symbols stay, so backtraces still name functions.
	bin_dir=$(mktemp -d)
	trap 'rm -rf -- "$bin_dir"' EXIT
	strip --strip-debug -o "$bin_dir/transactional-livepatch" "$VM_BIN"
	# GEN: the docs generator of the same build (man pages, completions).
	make -s -C "$VM_REPO" install DESTDIR="$DESTDIR" BIN="$bin_dir/transactional-livepatch" \
		GEN="$(dirname -- "$VM_BIN")/tlp-gen-docs"
fi
install -D -m 0755 "$VM_DIR/guest/init" "$DESTDIR/usr/lib/tlp-test/init"

install -d -m 0755 "$DESTDIR/etc/transactional-livepatch/config.d"
cat >"$DESTDIR/etc/transactional-livepatch/config.d/50-vm-test.toml" <<'TOML'
# VM test tier: short transition timeouts, so a stalled transition is
# reported and reversed within seconds. Normal transitions take 1-2 s here.
[livepatch]
transition_grace_secs = 3
transition_timeout_secs = 15
reverse_timeout_secs = 30

# The test repository's cumulative livepatch (tests/vm.rs, update scenario).
[update]
packages = ["kernel-livepatch-tlp-cumulative"]
TOML

install -d -m 0755 "$DESTDIR/var/lib/tlp-test/rpms" "$DESTDIR/var/lib/tlp-test/modules"
cp -- "$VM_RPMS"/*.rpm "$VM_RPMS/MANIFEST.tsv" "$DESTDIR/var/lib/tlp-test/rpms/"
cp -- "$VM_RPMS/modules/tlp_stall_holder.ko" "$DESTDIR/var/lib/tlp-test/modules/"

# The patch server's two states, and `update` following the cumulative
# package (its name carries no kernel release, unlike SUSE's).
cumulative=kernel-livepatch-tlp-cumulative
for v in 1 2; do
	repo=$DESTDIR/var/lib/tlp-test/repo-v$v
	install -d -m 0755 "$repo"
	for i in $(seq 1 "$v"); do
		cp -- "$VM_RPMS/$cumulative-$i-1.x86_64.rpm" "$repo/"
	done
	createrepo_c --quiet "$repo"
done
install -d -m 0755 "$DESTDIR/etc/zypp/repos.d"
cat >"$DESTDIR/etc/zypp/repos.d/tlp-test.repo" <<'REPO'
[tlp-test]
name=tlp test livepatches
enabled=1
autorefresh=1
baseurl=dir:///var/lib/tlp-test/repo
type=rpm-md
gpgcheck=0
repo_gpgcheck=0
pkg_gpgcheck=0
REPO

if [[ ! -s $DESTDIR/etc/machine-id ]] || grep -qx uninitialized "$DESTDIR/etc/machine-id"; then
	rm -f -- "$DESTDIR/etc/machine-id"
	od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$DESTDIR/etc/machine-id"
	echo >>"$DESTDIR/etc/machine-id"
fi

# Speed under TCG. Every apply runs the RPM's %post `depmod -a` and dracut in
# the guest; with Debian's full module tree (~4900 modules, 390 MB) depmod
# alone takes 40-80 s and dracut 2-3 min per apply, which would put the tier
# far beyond its time budget. The VM has virtio and btrfs only, so the tree
# keeps what such a machine can load (file systems, libraries, crypto, block
# and virtio drivers) and the initrd leaves out dracut modules for hardware
# and features it does not have. The tool's work is the same: same rpm, same
# %post, same dracut with the same module of ours, same verification.
if [[ ${VM_FULL_IMAGE:-0} != 1 ]]; then
	shopt -s nullglob
	kdirs=("$DESTDIR"/usr/lib/modules/*/kernel)
	((${#kdirs[@]} == 1)) || { echo "install-guest.sh: expected one kernel in the rootfs" >&2; exit 1; }
	kernel_dir=${kdirs[0]}
	kver=$(basename "$(dirname "$kernel_dir")")
	for d in "$kernel_dir"/*; do
		case ${d##*/} in
		fs | lib | crypto | arch | block | mm | virt | drivers) ;;
		*) rm -rf -- "$d" ;;
		esac
	done
	for d in "$kernel_dir"/drivers/*; do
		case ${d##*/} in
		block | virtio | char | md) ;;
		*) rm -rf -- "$d" ;;
		esac
	done
	depmod -b "$DESTDIR" "$kver"
	# What the VM boots with must still be there, with its dependencies.
	for m in virtio_blk virtio_pci btrfs; do
		dep=$(grep -E "/$m\.ko(\.[a-z]+)?:" "$DESTDIR/usr/lib/modules/$kver/modules.dep") || {
			echo "install-guest.sh: module $m missing after slimming" >&2
			exit 1
		}
		for f in ${dep#*:}; do
			[[ -f $DESTDIR/usr/lib/modules/$kver/$f ]] || {
				echo "install-guest.sh: $m needs $f, removed by slimming" >&2
				exit 1
			}
		done
	done
	cat >"$DESTDIR/etc/dracut.conf.d/50-vm-test.conf" <<'CONF'
# VM test tier (tests/vm/install-guest.sh): only the dracut modules a QEMU
# virtio VM with a btrfs root needs (their dependencies come along), instead
# of checking and including all ~100; virtio_blk/virtio_pci/btrfs come from
# the drivers+= of 10-test-image.conf. transactional-livepatch adds its own
# module with --add, as on any system.
dracutmodules=" bash base rootfs-block btrfs kernel-modules udev-rules fs-lib "
CONF
fi

# SLE Micro's initrds are systemd initrds; this image's are shell initrds
# (rootfs.sh's 10-test-image.conf omits dracut's systemd modules, for speed).
# `dracut --confdir` with this directory reads the image's own configuration
# (links to every file of /etc/dracut.conf.d, so it stays the same set of
# drivers, modules and compression) and then 90-systemd-initrd.conf, which
# takes the systemd modules back in: the same initrd as every other scenario
# boots, but with systemd as its init and our hook run by
# dracut-pre-udev.service. A command-line option cannot do this: dracut's
# --add loses against an omit_dracutmodules of the configuration.
sd_conf=$DESTDIR/usr/lib/tlp-test/dracut-systemd.conf.d
install -d -m 0755 "$sd_conf"
for f in "$DESTDIR"/etc/dracut.conf.d/*.conf; do
	# Absolute inside the snapshot: dracut runs chrooted into it.
	ln -s "/etc/dracut.conf.d/${f##*/}" "$sd_conf/${f##*/}"
done
cat >"$sd_conf/90-systemd-initrd.conf" <<'CONF'
# tests/vm/install-guest.sh: a systemd initrd, as SLE Micro builds them. The
# omission of dm and crypt stays (nothing here needs them).
omit_dracutmodules=" dm crypt "
add_dracutmodules+=" systemd systemd-initrd dracut-systemd "
CONF
