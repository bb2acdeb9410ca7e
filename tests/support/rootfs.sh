#!/bin/bash
# Print the path of a cached Debian bookworm rootfs tarball for test images,
# building it first if needed (~1 min cold, instant warm).
#
# The rootfs is minbase + a kernel + dracut + rpm + zypper (for `check`/`update`
# against rpm-md repositories) + dbus, polkitd and gdbus (the VM tier's D-Bus
# scenario), made to look enough like an
# RPM-managed SUSE system for livepatch RPMs to install:
#   - the rpm database lives in /usr/lib/sysimage/rpm (SUSE's path; Debian's
#     rpm would otherwise use $HOME/.rpmdb), set by /etc/rpm/macros.dbpath,
#     with SUSE's /var/lib/rpm -> ../../usr/lib/sysimage/rpm link for libzypp;
#   - a tiny "base provides" RPM tells rpm that /bin/sh, kmod, dracut... exist,
#     because Debian's packages are not in the rpm db and scriptlets
#     auto-require /bin/sh;
#   - a dracut config for a small, fast, generic initrd;
#   - /.snapshots mountpoint and the fstab of make-image.sh's layout.
#
# Output (stdout): the path of the .tar.zst. Logs go to stderr.
# Cache: ${TLP_CACHE:-/var/cache/transactional-livepatch-tests}/rootfs/,
# keyed by this script + lib.sh + package list + kernel ABI + apt sources.
# Env:
#   TLP_CACHE                  cache root
#   TLP_KERNEL_ABI             pin the kernel ABI (see kernel-abi.sh)
#   TLP_ROOTFS_EXTRA_PACKAGES  more Debian packages (space or comma separated),
#                              e.g. "snapper"; part of the cache key
#   TLP_ROOTFS_TMPDIR          where mmdebstrap builds the ~900 MB chroot
#                              (default: /dev/shm if it is a usable tmpfs with
#                              room, else $TMPDIR or /tmp)
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

SUITE=bookworm
BASE_PROVIDES=tlp-test-base-provides

# ---------------------------------------------------------------------------
# Hooks. mmdebstrap calls this same script back ("__hook ...") so the hook
# code is ordinary, shellcheck-checked bash instead of strings in arguments.

# Runs after the Essential packages, BEFORE the kernel: the kernel's postinst
# runs dracut, and without this config it builds a 33 MB generic initrd with
# gzip in ~105 s instead of ~10 MB in a few seconds.
hook_essential() {
	local root=$1
	mkdir -p "$root/etc/dracut.conf.d"
	cat >"$root/etc/dracut.conf.d/10-test-image.conf" <<'CONF'
# Test image (tests/support/rootfs.sh). Not host-only: initrds are also built
# in a chroot on the build host, whose disks say nothing about the VM; instead
# a fixed, minimal driver set for a QEMU virtio disk holding btrfs.
hostonly="no"
drivers+=" virtio_blk virtio_pci btrfs "
# gzip is about 80 % of dracut's run time in the test VM: an uncompressed
# cpio keeps every initrd rebuild fast. Real systems keep their compression.
compress="cat"
# There is no binutils in the image ("Could not find 'strip'").
do_strip="no"
# systemd is in the image only because polkitd needs a logind (the VM tier's
# D-Bus scenario), and it brings dmsetup and cryptsetup libraries along; it
# is not the init. Initrds stay what they were before it came in: without
# this, dracut builds a systemd initrd with device-mapper and crypt support,
# 47 instead of 27 MB, slower to build and to boot.
omit_dracutmodules+=" systemd systemd-initrd dracut-systemd dm crypt "
CONF
}

# Runs after all packages are installed.
hook_customize() {
	local root=$1 base_rpm=$2 abi=$3
	# SUSE's rpm db location; the image's own rpm reads /etc/rpm/macros.*.
	mkdir -p "$root/etc/rpm" "$root/usr/lib/sysimage/rpm"
	echo '%_dbpath /usr/lib/sysimage/rpm' >"$root/etc/rpm/macros.dbpath"
	# Always the image's own rpm in a chroot: `rpm --root` from outside would
	# use the host's macros and write the db to the wrong place.
	local dbpath
	dbpath=$(chroot "$root" rpm --eval '%{_dbpath}')
	[[ $dbpath == /usr/lib/sysimage/rpm ]] || tlp_die "rpm in the rootfs uses _dbpath=$dbpath"
	chroot "$root" rpm --initdb
	# SUSE's compatibility link: libzypp (zypper) opens the db at /var/lib/rpm.
	rm -rf -- "$root/var/lib/rpm"
	ln -s ../../usr/lib/sysimage/rpm "$root/var/lib/rpm"
	install -m 0644 "$base_rpm" "$root/tmp/$BASE_PROVIDES.rpm"
	# Debian's rpm warns on stderr on every install ("use Alien"): not an error.
	chroot "$root" rpm -i --nosignature "/tmp/$BASE_PROVIDES.rpm" 2>/dev/null
	rm -f "$root/tmp/$BASE_PROVIDES.rpm"
	chroot "$root" rpm -q "$BASE_PROVIDES" >&2

	mkdir -p "$root/.snapshots"
	tlp_fstab >"$root/etc/fstab"

	# Fail the build now rather than at VM boot time.
	local f
	for f in "boot/vmlinuz-$abi" "boot/initrd.img-$abi" "lib/modules/$abi/modules.dep"; do
		[[ -s $root/$f ]] || tlp_die "rootfs lacks /$f"
	done
	tlp_log "initrd: $(du -h "$root/boot/initrd.img-$abi" | cut -f1), rootfs: $(du -sxh "$root" | cut -f1)"
}

if [[ ${1:-} == __hook ]]; then
	shift
	case $1 in
	essential) hook_essential "$2" ;;
	customize) hook_customize "$2" "$3" "$4" ;;
	*) tlp_die "unknown hook $1" ;;
	esac
	exit 0
fi

# ---------------------------------------------------------------------------

# The machine's own Debian sources as one-line "deb" entries, so the rootfs
# comes from the same mirror (or snapshot) as the host without naming a host
# here. Reads sources.list, *.list and deb822 *.sources; keeps only the
# bookworm main suites (not backports, not third-party repositories).
machine_sources() {
	local f
	{
		for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			[[ -f $f ]] || continue
			# Drop comments; keep "deb [opts] uri suite comps...".
			sed -e 's/#.*//' -- "$f" | awk '$1 == "deb"'
		done
		for f in /etc/apt/sources.list.d/*.sources; do
			[[ -f $f ]] || continue
			deb822_to_lines "$f"
		done
	} | awk -v suite="$SUITE" '{
		# Find the suite field (after the optional [options] block).
		i = 2
		if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
		s = $(i + 1)
		if (s == suite || s == suite "-updates" || s == suite "-security") {
			for (j = i + 2; j <= NF; j++) if ($j == "main") { print; break }
		}
	}' | sort -u
}

# deb822 stanza -> one "deb [signed-by=...] URI SUITE COMPONENTS" per URI and
# suite. An inline (multi-line) Signed-By key cannot be expressed that way and
# is dropped; apt then falls back to the trusted keyrings.
deb822_to_lines() {
	awk '
	function flush(   n, m, i, j, opt) {
		if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no" && uris != "" && suites != "") {
			opt = ""
			if (signed != "" && signed !~ / /) opt = " [signed-by=" signed "]"
			n = split(uris, U, " "); m = split(suites, S, " ")
			for (i = 1; i <= n; i++) for (j = 1; j <= m; j++)
				print "deb" opt " " U[i] " " S[j] " " comps
		}
		types = uris = suites = comps = signed = enabled = key = ""
	}
	/^[ \t]*#/ { next }
	/^[ \t]*$/ { flush(); next }
	/^[ \t]/ { if (key == "signed-by") signed = signed " " $0; next }
	{
		key = tolower(substr($0, 1, index($0, ":") - 1))
		val = substr($0, index($0, ":") + 1)
		gsub(/^[ \t]+|[ \t]+$/, "", val)
		if (key == "types") types = val
		else if (key == "uris") uris = val
		else if (key == "suites") suites = val
		else if (key == "components") comps = val
		else if (key == "signed-by") signed = val
		else if (key == "enabled") enabled = val
	}
	END { flush() }' "$1"
}

# The "base provides" RPM, built with the host's rpmbuild. No files, only
# Provides for what the Debian side of the image really has.
build_base_provides() {
	local top=$1
	mkdir -p "$top/SPECS"
	cat >"$top/SPECS/$BASE_PROVIDES.spec" <<SPEC
Name: $BASE_PROVIDES
Version: 1
Release: 1
Summary: What the Debian test rootfs provides, for rpm dependency checks
License: MIT
BuildArch: noarch
AutoReqProv: no
Provides: /bin/sh
Provides: /bin/bash
Provides: /usr/bin/sh
Provides: /usr/bin/bash
Provides: /sbin/depmod
Provides: /usr/sbin/depmod
Provides: kmod
Provides: dracut
Provides: coreutils
Provides: rpm

%description
Test fixture of transactional-livepatch: the image's shell, kmod, dracut,
coreutils and rpm come from Debian packages that the rpm database does not
know. This package declares them so livepatch RPMs with scriptlets install.

%files
SPEC
	rpmbuild --quiet -bb --define "_topdir $top" "$top/SPECS/$BASE_PROVIDES.spec" >&2
	printf '%s\n' "$top/RPMS/noarch/$BASE_PROVIDES-1-1.noarch.rpm"
}

# The build is disk-bound: dpkg unpacking ~900 MB on a busy disk took 110-130 s
# here, the same on tmpfs 50 s. The chroot is thrown away after tarring, so
# RAM is the right place when there is enough of it (exec and device nodes
# must work inside, hence no noexec/nodev).
build_tmpdir() {
	if [[ -n ${TLP_ROOTFS_TMPDIR:-} ]]; then
		printf '%s\n' "$TLP_ROOTFS_TMPDIR"
		return
	fi
	local fs avail_kb
	fs=$(findmnt -n -o FSTYPE,OPTIONS --target /dev/shm 2>/dev/null || true)
	if [[ $fs == tmpfs* && $fs != *noexec* && $fs != *nodev* ]]; then
		avail_kb=$(df --output=avail -k /dev/shm | tail -n 1)
		if ((avail_kb > 3 * 1024 * 1024)); then
			echo /dev/shm
			return
		fi
	fi
	printf '%s\n' "${TMPDIR:-/tmp}"
}

tlp_need_root
abi=$("$TLP_SUPPORT_DIR/kernel-abi.sh")

# dbus, polkitd and libglib2.0-bin (gdbus): the VM tier drives the D-Bus
# service on a real system bus with a real polkitd and a real client.
packages=("linux-image-$abi" dracut dracut-core kmod rpm btrfs-progs udev procps util-linux zypper
	dbus polkitd libglib2.0-bin)
extra=${TLP_ROOTFS_EXTRA_PACKAGES:-}
read -r -a extra_list <<<"${extra//,/ }"
packages+=("${extra_list[@]}")
include=$(IFS=,; echo "${packages[*]}")

sources=$(machine_sources)
[[ -n $sources ]] || tlp_die "no '$SUITE' main suites found in the machine's apt sources"

cache=$(tlp_cache_dir rootfs)
key=$({
	cat -- "$0" "$TLP_SUPPORT_DIR/lib.sh"
	printf '%s\n' "$SUITE" "$abi" "$include" "$sources"
} | tlp_hash)
out="$cache/rootfs-$key.tar.zst"

if [[ ! -s $out ]]; then
	tlp_lock "$cache/.lock"
fi
if [[ -s $out ]]; then
	# Fresh mtime = in use; see tlp_prune_cache.
	touch -- "$out"
	printf '%s\n' "$out"
	exit 0
fi

export TMPDIR
TMPDIR=$(build_tmpdir)
work=$(mktemp -d "$TMPDIR/tlp-rootfs.XXXXXX")
tmp_out="$cache/.building-$key.tar.zst"
cleanup() {
	rm -rf -- "$work"
	rm -f -- "$tmp_out"
}
trap cleanup EXIT

tlp_log "building rootfs $key (kernel $abi; packages: $include)"
start=$SECONDS
printf '%s\n' "$sources" >"$work/sources.list"
base_rpm=$(build_base_provides "$work/rpmbuild")

self=$(realpath -- "$0")
# "$1" stays literal on purpose: mmdebstrap runs the hook under sh with the
# chroot directory as $1.
# shellcheck disable=SC2016
printf -v essential_hook '%q __hook essential "$1"' "$self"
# shellcheck disable=SC2016
printf -v customize_hook '%q __hook customize "$1" %q %q' "$self" "$base_rpm" "$abi"

# force-unsafe-io: no fsync per unpacked file; the chroot is thrown away
# after tarring, so durability buys nothing and costs a lot on a busy disk.
# zstd honours these: multi-threaded, fast level; the tarball is a cache, and
# make-image.sh decompresses it on every image.
export ZSTD_CLEVEL=3 ZSTD_NBTHREADS=0
mmdebstrap \
	--mode=root \
	--variant=minbase \
	--architectures=amd64 \
	--include="$include" \
	--aptopt='Acquire::Languages "none"' \
	--dpkgopt=force-unsafe-io \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-exclude=/usr/share/info/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-exclude=/usr/share/lintian/*' \
	--essential-hook="$essential_hook" \
	--customize-hook="$customize_hook" \
	"$SUITE" "$tmp_out" "$work/sources.list" >&2

mv -f -- "$tmp_out" "$out"
tlp_prune_cache "$cache" "$(basename -- "$out")"
tlp_log "built $out ($(du -h "$out" | cut -f1)) in $((SECONDS - start)) s"
printf '%s\n' "$out"
