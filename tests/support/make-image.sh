#!/bin/bash
# make-image.sh IMAGE_FILE [SIZE]
#
# Create a sparse btrfs disk image (default 4G) holding the cached rootfs in
# SUSE SLE Micro's layout:
#   @                          top-level container subvolume
#   @/.snapshots               snapper's snapshot store (mounted at /.snapshots)
#   @/.snapshots/1/info.xml    snapper metadata of snapshot 1
#   @/.snapshots/1/snapshot    the root filesystem: read-only, DEFAULT subvolume
#   @/var                      shared by all snapshots (mounted at /var)
# so that the tool's snapshot / chroot / rollback logic meets the same shape
# as on the real system (e.g. a new snapshot has an empty /var until the
# shared one is mounted in).
#
# Env:
#   TLP_ROOTFS_TAR   use this rootfs tarball instead of rootfs.sh's
#   TLP_TOOL_RPM     the tool's own RPM (tests/support/tool-rpm.sh): installed
#                    by the snapshot's own rpm in a chroot, while the image is
#                    still being assembled (before its fstab exists, so the
#                    package's %posttrans leaves the initrds alone, as on an
#                    image build), so the package is what gets tested
#   TLP_INSTALL_CMD  shell command run (from the caller's cwd, via bash -c)
#                    with DESTDIR=<root snapshot> exported, before /var moves
#                    to @/var and before the snapshot becomes read-only; the
#                    tests use `make install DESTDIR=...` of the project here
#                    so the packaging is what gets tested.
# Output (stdout): the image path. The image is removed again on failure;
# mounts and loop devices are always released.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

(($# >= 1 && $# <= 2)) || { echo "usage: $0 IMAGE_FILE [SIZE]" >&2; exit 2; }
image=$1
size=${2:-4G}
tlp_need_root

tarball=${TLP_ROOTFS_TAR:-$("$TLP_SUPPORT_DIR/rootfs.sh")}
[[ -s $tarball ]] || tlp_die "rootfs tarball '$tarball' missing"

loop=""
top=""
ok=0
cleanup() {
	if [[ -n $top ]] && mountpoint -q -- "$top"; then
		umount -- "$top" || umount -l -- "$top" || true
	fi
	if [[ -n $loop ]]; then losetup -d "$loop" 2>/dev/null || true; fi
	if [[ -n $top ]]; then rmdir -- "$top" 2>/dev/null || true; fi
	# Never leave a half-built image that a later run could mistake for good.
	if ((!ok)); then
		rm -f -- "$image"
		tlp_log "failed; removed $image"
	fi
}
trap cleanup EXIT

start=$SECONDS
rm -f -- "$image"
truncate -s "$size" -- "$image"
# (stdout only carries mkfs's "default settings changed" notice)
mkfs.btrfs -q -L tlp-test-root -- "$image" >/dev/null
loop=$(losetup --find --show -- "$image")
top=$(mktemp -d "${TMPDIR:-/tmp}/tlp-image.XXXXXX")
# subvolid=5: the top level, so the whole @ tree can be laid out. zstd:1
# keeps the sparse image small at little CPU cost.
mount -o subvolid=5,compress=zstd:1 "$loop" "$top"

btrfs -q subvolume create "$top/@"
btrfs -q subvolume create "$top/@/.snapshots"
mkdir "$top/@/.snapshots/1"
btrfs -q subvolume create "$top/@/.snapshots/1/snapshot"
btrfs -q subvolume create "$top/@/var"
snap="$top/@/.snapshots/1/snapshot"

# --numeric-owner: the image's users are not the host's. Device nodes,
# xattrs (file capabilities) and ACLs as packed by mmdebstrap.
tar --zstd -x -p --numeric-owner --xattrs --xattrs-include='*' --acls \
	-f "$tarball" -C "$snap"
mkdir -p "$snap/.snapshots" "$snap/var"

if [[ -n ${TLP_TOOL_RPM:-} ]]; then
	[[ -s $TLP_TOOL_RPM ]] || tlp_die "TLP_TOOL_RPM '$TLP_TOOL_RPM' missing"
	tlp_log "installing ${TLP_TOOL_RPM##*/} with the image's rpm"
	cp -- "$TLP_TOOL_RPM" "$snap/tmp/tool.rpm"
	# mmdebstrap leaves a placeholder ("UNCONFIGURED FSTAB"); the real one
	# is written below, once the image is assembled.
	rm -f -- "$snap/etc/fstab"
	# The image's rpm database knows its Debian packages only through a
	# "provides" stub (rootfs.sh), not their sonames: --nodeps. Scriptlets
	# run for real, in a private mount namespace that vanishes with them.
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare --mount --propagation private -- sh -ec '
		r=$1
		mount --rbind /dev "$r/dev"
		mount -t proc proc "$r/proc"
		mount -t tmpfs tmpfs "$r/run"
		PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$r" rpm -U --nodeps --nosignature /tmp/tool.rpm
	' sh "$snap" >&2
	rm -f -- "$snap/tmp/tool.rpm"
fi
tlp_fstab >"$snap/etc/fstab"

if [[ -n ${TLP_INSTALL_CMD:-} ]]; then
	tlp_log "running TLP_INSTALL_CMD with DESTDIR=$snap"
	# Before /var moves out, so whatever it installs there lands in @/var.
	DESTDIR=$snap bash -c "$TLP_INSTALL_CMD" >&2
fi

# /var lives in the shared @/var subvolume; the snapshot keeps an empty
# directory as its mountpoint. (mv across subvolumes copies, like on SUSE's
# installer; /var is small in this image.)
find "$snap/var" -mindepth 1 -maxdepth 1 -exec mv -t "$top/@/var" -- {} +

# snapper's own metadata format for snapshot 1 (what the installer writes).
cat >"$top/@/.snapshots/1/info.xml" <<XML
<?xml version="1.0"?>
<snapshot>
  <type>single</type>
  <num>1</num>
  <date>$(date -u '+%Y-%m-%d %H:%M:%S')</date>
  <description>first root filesystem</description>
</snapshot>
XML

# Like the installed system: the running root snapshot is read-only and is
# what the bootloader/initrd mounts because it is the default subvolume.
btrfs property set -ts "$snap" ro true
btrfs subvolume set-default "$snap"

sync -f "$top"
umount -- "$top"
rmdir -- "$top"
top=""
losetup -d "$loop"
loop=""
ok=1
tlp_log "image $image ready in $((SECONDS - start)) s ($(du -h -- "$image" | cut -f1) allocated of $size)"
printf '%s\n' "$image"
