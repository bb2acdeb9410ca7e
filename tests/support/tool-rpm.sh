#!/bin/bash
# tool-rpm.sh
#
# Build transactional-livepatch's own RPM the way it ships -- `make dist`,
# then `rpmbuild -bb` of transactional-livepatch.spec from that tarball with
# no network -- for the images of the privileged and VM tiers, which install
# the tool from it (make-image.sh, TLP_TOOL_RPM) so that the package is what
# gets tested. Two knobs of the spec differ from a release build, both for
# the tests' sake: `--with failpoints` (the VM tier cuts the power at named
# points) and the unoptimised dev profile (minutes faster to build); the
# Release is 0.test, below every real one, so tests/packaging.rs can still
# upgrade an image to its own release build.
#
# Output (stdout): the path of the binary RPM. Cached below
# ${CARGO_TARGET_DIR:-<repo>/target}/tmp/tool-rpm/, keyed by the content of
# every file `make dist` packs plus this script; an unchanged tree is a
# cache hit. The compiled crates are shared with tests/packaging.rs's builds.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

(($# == 0)) || { echo "usage: $0" >&2; exit 2; }
tlp_need_root
for tool in rpmbuild rpm git zstd unshare make tar cargo; do
	command -v "$tool" >/dev/null || tlp_die "$tool is missing (run tests/support/deps.sh as root)"
done

repo=$(cd -- "$TLP_SUPPORT_DIR/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
cache="$target/tmp/tool-rpm"
mkdir -p -- "$cache"

# The same file set as `make dist` (tracked and untracked-not-ignored files
# that exist), by content.
key=$({
	cat -- "$0"
	cd -- "$repo"
	git ls-files -z -c -o --exclude-standard |
		while IFS= read -r -d '' f; do
			if [[ -f $f ]]; then printf '%s\0' "$f"; fi
		done | LC_ALL=C sort -z | xargs -0 sha256sum
} | tlp_hash)
out="$cache/$key"

tlp_lock "$cache/.lock"
shopt -s nullglob
found=("$out"/transactional-livepatch-[0-9]*.rpm)
if ((${#found[@]} == 1)); then
	touch -- "$out" # in use: see tlp_prune_cache
	printf '%s\n' "${found[0]}"
	exit 0
fi

start=$SECONDS
top=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf -- "$top"' EXIT
mkdir -p -- "$top"/{SOURCES,SPECS,BUILD,RPMS,SRPMS}
tarball=$(make -s -C "$repo" dist | tail -n 1)
mv -- "$repo/$tarball" "$top/SOURCES/"
cp -- "$repo/transactional-livepatch.spec" "$top/SPECS/"

# BuildRequires name openSUSE packages the host's rpm database does not know:
# --nodeps. cargo comes from the machine's toolchain.
cargo_dir=$(dirname -- "$(command -v cargo)")
if ! log=$(PATH="$cargo_dir:$PATH" CARGO_TARGET_DIR="$target/tmp/packaging-rpm/cargo-target" \
	SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct) \
	unshare --net -- rpmbuild -bb --nodeps --with failpoints \
	--define "_topdir $top" \
	--define "tlp_cargo_profile dev" \
	--define "tlp_release 0.test" \
	"$top/SPECS/transactional-livepatch.spec" 2>&1); then
	printf '%s\n' "$log" | tail -n 40 >&2
	tlp_die "rpmbuild of the tool failed"
fi
built=("$top"/RPMS/*/transactional-livepatch-[0-9]*.rpm)
((${#built[@]} == 1)) || tlp_die "expected one transactional-livepatch RPM, found ${#built[@]}"

rm -rf -- "$out"
mkdir -p -- "$out.new"
mv -- "${built[0]}" "$out.new/"
mv -- "$out.new" "$out"
tlp_prune_cache "$cache" "$key"
tlp_log "built ${built[0]##*/} in $((SECONDS - start)) s"
printf '%s\n' "$out/${built[0]##*/}"
