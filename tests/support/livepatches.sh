#!/bin/bash
# livepatches.sh OUTDIR
#
# Build the test livepatch modules against the host's
# /usr/src/linux-headers-<ABI> (the same ABI as the rootfs kernel, see
# kernel-abi.sh), package each as a binary x86_64 RPM in SUSE's layout
# (/lib/modules/<ABI>/livepatch/<module>.ko) and copy them to OUTDIR:
#   OUTDIR/*.rpm              the packages
#   OUTDIR/modules/*.ko       the bare modules (the VM test insmods
#                             tlp_stall_holder.ko from here)
#   OUTDIR/MANIFEST.tsv       one line per RPM: rpm package version module
#                             kind path marker (header line first)
# and print the manifest as a summary on stdout.
#
# Cache: ${TLP_CACHE:-/var/cache/transactional-livepatch-tests}/livepatches/,
# keyed by this script + lib.sh + livepatch-src/* + ABI + headers, gcc and
# rpm versions. Env: TLP_CACHE, TLP_KERNEL_ABI (see kernel-abi.sh).
#
# Every cmdline patch prints the REAL command line plus " tlp_marker=<m>":
# a fixed string would break dracut's initrd, which re-reads /proc/cmdline.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

(($# == 1)) || { echo "usage: $0 OUTDIR" >&2; exit 2; }
outdir=$1

src="$TLP_SUPPORT_DIR/livepatch-src"
abi=$("$TLP_SUPPORT_DIR/kernel-abi.sh")
headers="/usr/src/linux-headers-$abi"
[[ -f $headers/Makefile ]] || tlp_die "$headers missing: run tests/support/deps.sh"

# Modules that patch cmdline_proc_show, from the template
# livepatch-src/tlp_cmdline_patch.h: module marker replace
CMDLINE_MODULES=(
	"tlp_simple simple false"
	"tlp_cumul_1 cumul1 true"
	"tlp_cumul_2 cumul2 true"
	"tlp_stack_a stack_a false"
	"tlp_wrongkver wrongkver false"
	"tlp_outside outside false"
	"tlp_badscript badscript false"
)
# Modules with their own source file in livepatch-src/.
OWN_MODULES=(tlp_stack_b tlp_stall tlp_stall_holder tlp_notlp)

# The packages: name version module dir-under-/lib/modules scriptlets kind marker
#   scriptlets: depmod = %post/%postun depmod; failpre = %pre exits 1 (so
#   rpm really refuses the install; a failing %post only makes rpm return
#   non-zero after installing); none.
# kernel-livepatch-tlp-cumulative comes in versions 1 and 2 with different
# module names, like SUSE's cumulative livepatches: `rpm -U` of 2 replaces 1.
WRONG_KVER=9.9.9-1-default
PACKAGES=(
	"tlp-livepatch-simple 1 tlp_simple $abi/livepatch depmod livepatch simple"
	"kernel-livepatch-tlp-cumulative 1 tlp_cumul_1 $abi/livepatch depmod livepatch-cumulative cumul1"
	"kernel-livepatch-tlp-cumulative 2 tlp_cumul_2 $abi/livepatch depmod livepatch-cumulative cumul2"
	"tlp-livepatch-stack-a 1 tlp_stack_a $abi/livepatch depmod livepatch-stack stack_a"
	"tlp-livepatch-stack-b 1 tlp_stack_b $abi/livepatch depmod livepatch-stack stack_b"
	"tlp-livepatch-stall 1 tlp_stall $abi/livepatch depmod livepatch-stall -"
	"tlp-stall-holder 1 tlp_stall_holder $abi/extra depmod helper -"
	"tlp-notlp 1 tlp_notlp $abi/livepatch depmod bad-notlp -"
	"tlp-wrongkver 1 tlp_wrongkver $WRONG_KVER/livepatch depmod bad-wrongkver wrongkver"
	"tlp-outside 1 tlp_outside $abi/extra depmod bad-outside outside"
	"tlp-badscript 1 tlp_badscript $abi/livepatch failpre bad-badscript badscript"
	"tlp-nomodule 1 - - none bad-nomodule -"
)

# Build the modules in $1 (a scratch dir) and check their modinfo.
build_modules() {
	local dir=$1 line mod marker replace m
	mkdir -p "$dir"
	cp -- "$src"/*.h "$src"/*.c "$dir/"
	local objs=()
	for line in "${CMDLINE_MODULES[@]}"; do
		read -r mod marker replace <<<"$line"
		printf '#define TLP_MARKER "%s"\n#define TLP_REPLACE %s\n#include "tlp_cmdline_patch.h"\n' \
			"$marker" "$replace" >"$dir/$mod.c"
		objs+=("$mod.o")
	done
	for mod in "${OWN_MODULES[@]}"; do
		objs+=("$mod.o")
	done
	printf 'obj-m := %s\n' "${objs[*]}" >"$dir/Kbuild"

	# "Skipping BTF generation" (no vmlinux in the headers) is harmless.
	if ! make -C "$headers" M="$dir" -j"$(nproc)" modules >"$dir/build.log" 2>&1; then
		cat "$dir/build.log" >&2
		tlp_die "module build failed"
	fi

	# vermagic must name the guest kernel's release, or the load fails; the
	# .modinfo must say livepatch=Y exactly for the livepatches.
	for m in "${objs[@]}"; do
		mod=${m%.o}
		local ko="$dir/$mod.ko" vermagic livepatch want=Y
		[[ -f $ko ]] || tlp_die "$mod.ko was not built"
		vermagic=$(modinfo -F vermagic "$ko")
		[[ $vermagic == "$abi "* ]] || tlp_die "$mod.ko: vermagic '$vermagic' is not for $abi"
		livepatch=$(modinfo -F livepatch "$ko")
		case $mod in tlp_notlp | tlp_stall_holder) want="" ;; esac
		[[ $livepatch == "$want" ]] || tlp_die "$mod.ko: livepatch='$livepatch', want '$want'"
	done
}

# Write the spec for one PACKAGES entry and build it.
build_rpm() {
	local top=$1 name=$2 version=$3 mod=$4 dir=$5 scripts=$6 kind=$7
	local spec="$top/SPECS/$name-$version.spec" kver=${dir%%/*}
	mkdir -p "$top/SPECS"
	{
		cat <<'HEAD'
# Keep the .ko byte for byte: stripping would damage .modinfo/signatures,
# and there is nothing to debug-package.
%define _build_id_links none
%define debug_package %{nil}
%define __strip /bin/true
%global __os_install_post %{nil}
HEAD
		cat <<SPEC
Name: $name
Version: $version
Release: 1
Summary: transactional-livepatch test fixture ($kind)
License: GPL-2.0-only
# The test image's rpm db only knows the base-provides package: no
# generated requirements (scriptlets still require /bin/sh, provided there).
AutoReqProv: no

%description
Test fixture for transactional-livepatch, kind $kind.

%install
SPEC
		if [[ $mod == - ]]; then
			echo 'mkdir -p %{buildroot}/usr/share/tlp-nomodule'
			echo 'echo "tlp-nomodule: a package without any kernel module" > %{buildroot}/usr/share/tlp-nomodule/README'
		else
			echo "install -D -m 0644 %{_sourcedir}/$mod.ko %{buildroot}/lib/modules/$dir/$mod.ko"
		fi
		if [[ $scripts == failpre ]]; then
			printf '\n%%pre\necho "%s: refusing to install (test fixture)" >&2\nexit 1\n' "$name"
		fi
		if [[ $scripts == depmod || $scripts == failpre ]]; then
			# depmod for the release the module belongs to only, and only if
			# there is a depmod (tiny images, rpm --root from odd places).
			printf '\n%%post\nif command -v depmod >/dev/null 2>&1; then depmod -a %s; fi\n' "$kver"
			printf '\n%%postun\nif command -v depmod >/dev/null 2>&1; then depmod -a %s; fi\n' "$kver"
		fi
		printf '\n%%files\n'
		if [[ $mod == - ]]; then
			echo /usr/share/tlp-nomodule
		else
			echo "/lib/modules/$dir/$mod.ko"
		fi
	} >"$spec"
	rpmbuild --quiet -bb \
		--define "_topdir $top" --define "_sourcedir $top/modules" \
		"$spec" >&2
}

build_all() {
	local stage=$1 line name version mod dir scripts kind marker rpm path
	build_modules "$stage/src"
	mkdir -p "$stage/rpmbuild/modules" "$stage/out/modules"
	cp -- "$stage"/src/*.ko "$stage/rpmbuild/modules/"
	cp -- "$stage"/src/*.ko "$stage/out/modules/"
	printf 'rpm\tpackage\tversion\tmodule\tkind\tpath\tmarker\n' >"$stage/out/MANIFEST.tsv"
	for line in "${PACKAGES[@]}"; do
		read -r name version mod dir scripts kind marker <<<"$line"
		build_rpm "$stage/rpmbuild" "$name" "$version" "$mod" "$dir" "$scripts" "$kind"
		rpm="$name-$version-1.x86_64.rpm"
		mv -- "$stage/rpmbuild/RPMS/x86_64/$rpm" "$stage/out/"
		path=/usr/share/tlp-nomodule/README
		[[ $mod == - ]] || path="/lib/modules/$dir/$mod.ko"
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rpm" "$name" "$version" "$mod" "$kind" "$path" "$marker" \
			>>"$stage/out/MANIFEST.tsv"
	done
}

cache=$(tlp_cache_dir livepatches)
key=$({
	cat -- "$0" "$TLP_SUPPORT_DIR/lib.sh" "$src"/*
	printf '%s\n' "$abi"
	dpkg-query -W -f='${Version}\n' "linux-headers-$abi" gcc rpm 2>/dev/null || true
} | tlp_hash)
entry="$cache/$key"

if [[ ! -f $entry/MANIFEST.tsv ]]; then
	tlp_lock "$cache/.lock"
fi
if [[ ! -f $entry/MANIFEST.tsv ]]; then
	start=$SECONDS
	stage=$(mktemp -d "$cache/.building-$key.XXXXXX")
	trap 'rm -rf -- "$stage"' EXIT
	tlp_log "building test livepatches $key for $abi"
	build_all "$stage"
	rm -rf -- "$entry"
	mv -T -- "$stage/out" "$entry"
	tlp_prune_cache "$cache" "$key"
	tlp_log "built in $((SECONDS - start)) s"
fi
touch -- "$entry"

mkdir -p -- "$outdir/modules"
cp -f -- "$entry"/*.rpm "$entry/MANIFEST.tsv" "$outdir/"
cp -f -- "$entry"/modules/*.ko "$outdir/modules/"
column -t -s $'\t' "$entry/MANIFEST.tsv"
