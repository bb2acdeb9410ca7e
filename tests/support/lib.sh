# shellcheck shell=bash
# Helpers shared by the test-fixture scripts in tests/support/. Sourced, never
# run: every caller already has `set -euo pipefail`.

# Directory of the fixture scripts, so they can call each other no matter what
# the caller's working directory is.
TLP_SUPPORT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
export TLP_SUPPORT_DIR

# Logs go to stderr: stdout of the scripts is their result (a path, a list)
# and callers capture it with $(...).
tlp_log() {
	printf '%s: %s\n' "$(basename -- "$0")" "$*" >&2
}

tlp_die() {
	tlp_log "error: $*"
	exit 1
}

tlp_need_root() {
	[[ $(id -u) -eq 0 ]] || tlp_die "must run as root (loop devices, mounts, chroot)"
}

# Big artifacts live outside the repository so `git clean` and fresh work trees
# do not throw away minutes of building; TLP_CACHE moves them (CI, tmpfs...).
tlp_cache_dir() {
	local kind=$1 dir
	dir="${TLP_CACHE:-/var/cache/transactional-livepatch-tests}/$kind"
	mkdir -p -- "$dir"
	printf '%s\n' "$dir"
}

# Cache key: a short sha256 of everything on stdin (script text, package list,
# kernel ABI...). 16 hex digits are plenty to tell recipes apart.
tlp_hash() {
	sha256sum | cut -c1-16
}

# Take an exclusive flock on LOCKFILE and keep it until the calling process
# exits (the kernel drops it with the fd), so two concurrent test runs never
# build the same artifact twice: the second waits, then finds it built.
# Deliberately not a "run this command under the lock" wrapper: a function
# called as `f || ...` runs with errexit off, and a half-failed build would
# then carry on silently.
tlp_lock() {
	local lockfile=$1
	exec {TLP_LOCK_FD}>>"$lockfile"
	if ! flock -n "$TLP_LOCK_FD"; then
		tlp_log "waiting for $lockfile (another build is running)"
		flock "$TLP_LOCK_FD"
	fi
}

# Drop other cache entries of one kind that nobody used for a few days, so
# editing a recipe does not pile up 600 MB tarballs forever. Entries in use
# get their mtime refreshed by the scripts on every hit. Call with the lock
# held. Arguments: cache dir, name of the entry to keep.
tlp_prune_cache() {
	local dir=$1 keep=$2
	find "$dir" -mindepth 1 -maxdepth 1 ! -name "$keep" ! -name '.*' \
		-mtime +3 -exec rm -rf -- {} + 2>/dev/null || true
}

# The fstab of the test image, in SLE Micro's shape: the root snapshot is the
# btrfs default subvolume (no subvol= option, so a rollback is just a
# set-default), /.snapshots and /var are separate subvolumes that every
# snapshot shares. The VM's disk is virtio, hence /dev/vda.
tlp_fstab() {
	cat <<'FSTAB'
# Test image in SUSE SLE Micro layout (written by tests/support).
/dev/vda	/		btrfs	defaults			0 0
/dev/vda	/.snapshots	btrfs	subvol=@/.snapshots		0 0
/dev/vda	/var		btrfs	subvol=@/var			0 0
FSTAB
}
