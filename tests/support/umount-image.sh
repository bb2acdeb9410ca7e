#!/bin/bash
# umount-image.sh MOUNTPOINT
#
# Undo mount-image.sh: unmount MOUNTPOINT and everything below it (tests may
# have added /proc, /dev, bind mounts...), then detach the loop device(s)
# that backed it, so no loop device is leaked. A MOUNTPOINT that is not
# mounted is not an error (cleanup traps may call this twice).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

(($# == 1)) || { echo "usage: $0 MOUNTPOINT" >&2; exit 2; }
mnt=$1
tlp_need_root
mountpoint -q -- "$mnt" || exit 0

# Remember the loop devices before unmounting; findmnt prints btrfs sources
# as "/dev/loop3[/@/var]".
mapfile -t loops < <(findmnt -R -n -r -o SOURCE -- "$mnt" |
	sed -n 's/\[.*\]$//; /^\/dev\/loop[0-9]*$/p' | sort -u)

# On a host with shared mount propagation (systemd's default), a test's
# `mount --rbind /dev MOUNTPOINT/dev` joins the host's peer group, and
# unmounting it would propagate and unmount the host's /dev/pts too. Making
# the tree a slave first stops unmounts from travelling back.
mount --make-rslave -- "$mnt"
if ! umount -R -- "$mnt"; then
	# Something still holds a file open (a stray process in a chroot): lazy
	# unmount so the test run can go on; the loop device goes when released.
	tlp_log "umount -R $mnt failed; detaching lazily"
	umount -R -l -- "$mnt"
fi
for loop in "${loops[@]}"; do
	# If another mount still uses it, the kernel only marks it to go away
	# on last close (autoclear), which is what we want.
	losetup -d "$loop" 2>/dev/null || true
done
