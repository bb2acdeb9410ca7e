#!/bin/bash
# Install every Debian package the test tiers need on the host, idempotently.
#
# Fast when everything is there (one dpkg-query, no network); `apt-get update`
# runs at most once and only when something is missing, so CI on a fresh
# machine works and a warm developer machine pays ~nothing.
#
# Output: one line per package installed (stdout), or a line saying all were
# present. Env: TLP_KERNEL_ABI pins the kernel ABI (see kernel-abi.sh).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
tlp_need_root

export DEBIAN_FRONTEND=noninteractive
updated=0

# Resolve the ABI without touching the network first; only a machine with no
# package lists needs the update here (and then it counts as our one update).
if ! abi=$(TLP_NO_APT_UPDATE=1 "$TLP_SUPPORT_DIR/kernel-abi.sh" 2>/dev/null); then
	tlp_log "apt metadata missing or stale: apt-get update"
	apt-get update -qq >&2
	updated=1
	abi=$("$TLP_SUPPORT_DIR/kernel-abi.sh")
fi

# What needs what:
#   btrfs-progs e2fsprogs util-linux   images, loop devices, flock, findmnt
#   mmdebstrap zstd                    rootfs.sh (tar.zst output)
#   rpm                                rpm + rpmbuild for the fixture RPMs
#   build-essential gcc kmod           building and checking livepatch modules
#   linux-headers-<ABI>-amd64          ...against the same ABI as the guest kernel
#   qemu-system-x86                    VM tests (TCG)
#   dracut-core cpio                   lsinitrd/dracut checks on the host
#   snapper dbus polkitd               snapper backend and D-Bus service tests
#   libglib2.0-bin                     gdbus, a D-Bus client that prints error names
#   busybox-static                     tiny static tools for initrd/VM stage scripts
#   createrepo-c gnupg python3         update tests: a signed rpm-md repository
#                                      served by `python3 -m http.server`
#   systemd                            systemd-analyze verify of the units; busctl
#   cockpit-ws cockpit-bridge          Cockpit tier: a real Cockpit with a headless
#   cockpit-system chromium sudo       Chromium (Playwright), login of a sudo user
#   fonts-liberation                   (node/npm for playwright-core are expected)
#   man-db zsh git                     packaging tier: man -l of the man pages, zsh -n of
#                                      the zsh completion, git ls-files for make dist
#   (the shellcheck package)           linting these scripts and the dracut module
packages=(
	btrfs-progs e2fsprogs util-linux
	mmdebstrap zstd
	rpm
	build-essential gcc kmod "linux-headers-$abi"
	qemu-system-x86
	dracut-core cpio
	snapper dbus polkitd libglib2.0-bin
	busybox-static
	createrepo-c gnupg python3
	systemd
	cockpit-ws cockpit-bridge cockpit-system chromium sudo fonts-liberation
	man-db zsh git
	shellcheck
)

# One dpkg-query for all: "install ok installed" is the only state that means
# the package is really unpacked and configured.
missing=()
for pkg in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	[[ $status == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
	echo "deps: all ${#packages[@]} packages present (kernel ABI $abi)"
	exit 0
fi

echo "deps: installing: ${missing[*]}"
if ((updated == 0)); then
	apt-get update -qq >&2
fi
# --no-install-recommends: recommends drag in e.g. a full GUI stack for qemu.
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
echo "deps: installed ${#missing[@]} package(s) (kernel ABI $abi)"
