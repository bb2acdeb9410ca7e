#!/bin/bash
# Print the Debian kernel release the tests use, e.g. "6.1.0-56-amd64".
#
# The rootfs kernel (linux-image-<ABI>) and the host headers the livepatches are
# built against (linux-headers-<ABI>) must be the same ABI, or the modules'
# vermagic will not match the guest kernel. Debian moves the ABI with point
# releases, so it is resolved from apt metadata (what the linux-image-amd64
# metapackage depends on) instead of being hard-coded, and every fixture
# script asks this one script.
#
# Env:
#   TLP_KERNEL_ABI      use this release instead of asking apt (pinning)
#   TLP_NO_APT_UPDATE=1 never run `apt-get update` (deps.sh uses it to update
#                       at most once itself)
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

valid_abi() {
	[[ $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+-[0-9]+-amd64$ ]]
}

if [[ -n ${TLP_KERNEL_ABI:-} ]]; then
	valid_abi "$TLP_KERNEL_ABI" || tlp_die "TLP_KERNEL_ABI='$TLP_KERNEL_ABI' is not like 6.1.0-56-amd64"
	printf '%s\n' "$TLP_KERNEL_ABI"
	exit 0
fi

# `apt-cache depends` answers for the candidate version, the one apt would
# install, which is what mmdebstrap and deps.sh will get too. One call for
# both metapackages: each apt-cache run costs ~0.8 s of cache loading here.
resolve() {
	local out
	out=$(apt-cache depends linux-image-amd64 linux-headers-amd64 2>/dev/null || true)
	image_abi=$(awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { sub(/^linux-image-/, "", $2); print $2; exit }' <<<"$out")
	headers_abi=$(awk '$1 == "Depends:" && $2 ~ /^linux-headers-/ { sub(/^linux-headers-/, "", $2); print $2; exit }' <<<"$out")
}

resolve
if [[ -z $image_abi && ${TLP_NO_APT_UPDATE:-0} != 1 && $(id -u) -eq 0 ]]; then
	# A fresh machine has no package lists at all: fetch them once.
	tlp_log "no apt metadata for linux-image-amd64; running apt-get update"
	apt-get update -qq >&2
	resolve
fi

[[ -n $image_abi ]] || tlp_die "cannot resolve the kernel ABI from linux-image-amd64 (run apt-get update?)"
valid_abi "$image_abi" || tlp_die "unexpected kernel ABI '$image_abi' from linux-image-amd64"
# Both metapackages come from the same source package; a mismatch means the
# mirror is half-way through an update and the build would not be coherent.
[[ $headers_abi == "$image_abi" ]] ||
	tlp_die "linux-image-amd64 wants $image_abi but linux-headers-amd64 wants '${headers_abi}'"
printf '%s\n' "$image_abi"
