#!/bin/bash
# mount-image.sh IMAGE MOUNTPOINT
#
# Mount a make-image.sh image the way the running system sees itself:
#   MOUNTPOINT             the DEFAULT subvolume (no subvol= option, like the
#                          initrd does), i.e. the current root snapshot, which
#                          is read-only;
#   MOUNTPOINT/.snapshots  subvol=@/.snapshots
#   MOUNTPOINT/var         subvol=@/var
# All three share one loop device; umount-image.sh releases everything.
# On failure, whatever was already mounted is undone.
# Env: TLP_MOUNT_OPTS  extra mount options for all three (e.g. "ro").
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

(($# == 2)) || { echo "usage: $0 IMAGE MOUNTPOINT" >&2; exit 2; }
image=$1
mnt=$2
tlp_need_root
[[ -f $image ]] || tlp_die "no image file '$image'"
mkdir -p -- "$mnt"
! mountpoint -q -- "$mnt" || tlp_die "'$mnt' is already a mountpoint"

opts="compress=zstd:1${TLP_MOUNT_OPTS:+,$TLP_MOUNT_OPTS}"
loop=$(losetup --find --show -- "$image")
done_ok=0
undo() {
	((done_ok)) && return
	umount -R -- "$mnt" 2>/dev/null || true
	losetup -d "$loop" 2>/dev/null || true
}
trap undo EXIT

mount -o "$opts" "$loop" "$mnt"
# The root snapshot is read-only, so the mountpoints must already exist in
# it (make-image.sh creates them).
mount -o "$opts,subvol=@/.snapshots" "$loop" "$mnt/.snapshots"
mount -o "$opts,subvol=@/var" "$loop" "$mnt/var"
done_ok=1
