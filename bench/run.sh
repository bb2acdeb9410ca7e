#!/bin/bash
# bench/run.sh [-o FILE] [-n RUNS]
#
# What an apply costs, step by step, and what the tool adds to the same steps
# done by hand; preflight throughput; `status` with many snapshots; the D-Bus
# daemon; the live phase in the VM. Prints Markdown tables on stdout (progress
# goes to stderr). With -o FILE the tables are also written to FILE, keeping
# whatever follows the line `<!-- notes -->` of an existing FILE (the notes
# are written by hand).
#
# Runs as root on a loop-mounted btrfs image from tests/support (like the
# privileged tests); builds the release binary; installs nothing beyond
# tests/support/deps.sh. Times are reported, never judged: the exit status
# only says whether every measurement could be made. Not part of CI.
#
# Env:
#   BENCH_TMP        work directory (default target/bench); holds a 4G sparse
#                    image and the test packages, removed at the end
#   BENCH_RUNS       timed applies per variant (default 5; also -n)
#   BENCH_SNAPSHOTS  snapshot counts for the status table (default "5 100 1000")
#   BENCH_DRACUT_RUNS  runs per compressor in the dracut table (default 1)
#   BENCH_SECTIONS   which tables, in order (default
#                    "apply dracut vm preflight dbus status")
#   BENCH_KEEP=1     keep BENCH_TMP (the image is unmounted either way)
set -euo pipefail

BENCH_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd -- "$BENCH_DIR/.." && pwd)
SUPPORT=$REPO/tests/support
BIN=$REPO/target/release/transactional-livepatch

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# Time stamps are $EPOCHREALTIME (seconds, µs resolution, no fork); awk turns
# differences into ms.
export LC_ALL=C

# ---------------------------------------------------------------------------
# The bare sequence: the same steps as the tool's boot-only apply, by hand, in
# one script. Runs in its own mount namespace (as the tool does), called as
# `run.sh __bare MNT RPM KVER STACKLINE`; prints "<phase-end> <ms>" lines.
bare_apply() {
	local mnt=$1 rpm=$2 kver=$3 stackline=$4
	local n=2 dir snap
	local -a env=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C LANG=C)
	echo "start $EPOCHREALTIME"
	mount --make-rprivate /
	dir=$mnt/.snapshots/$n
	snap=$dir/snapshot
	mkdir "$dir"
	cat >"$dir/info.xml" <<XML
<?xml version="1.0"?>
<snapshot>
  <type>single</type>
  <num>$n</num>
  <date>$(date -u '+%Y-%m-%d %H:%M:%S')</date>
  <description>by hand</description>
</snapshot>
XML
	btrfs -q subvolume snapshot "$mnt/.snapshots/1/snapshot" "$snap"
	echo "snapshot $EPOCHREALTIME"
	mount --bind /dev "$snap/dev"
	mount -t proc proc "$snap/proc"
	mount --bind /sys "$snap/sys"
	mount -t tmpfs -o mode=0755 tmpfs "$snap/run"
	mount -t tmpfs -o mode=1777 tmpfs "$snap/tmp"
	mount --bind "$mnt/var" "$snap/var"
	cp -- "$rpm" "$snap/run/package.rpm"
	"${env[@]}" chroot "$snap" rpm -U --quiet /run/package.rpm 2>/dev/null
	mkdir -p "$snap/etc/transactional-livepatch/stack"
	printf '%s\n' "$stackline" >"$snap/etc/transactional-livepatch/stack/$kver"
	echo "install $EPOCHREALTIME"
	"${env[@]}" chroot "$snap" dracut --force --quiet --no-hostonly \
		--add transactional-livepatch --kver "$kver" "/boot/initrd.img-$kver" 2>/dev/null
	echo "dracut $EPOCHREALTIME"
	umount "$snap/var" "$snap/tmp" "$snap/run" "$snap/sys" "$snap/proc" "$snap/dev"
	echo "teardown $EPOCHREALTIME"
	btrfs property set -ts "$snap" ro true
	echo "seal $EPOCHREALTIME"
	btrfs subvolume set-default "$snap"
	btrfs -q filesystem sync "$mnt"
	echo "default $EPOCHREALTIME"
}

if [[ ${1:-} == __bare ]]; then
	shift
	bare_apply "$@"
	exit 0
fi

# ---------------------------------------------------------------------------
usage() {
	echo "usage: $0 [-o FILE] [-n RUNS]" >&2
	exit 2
}
ARGS="$*"
OUT=""
RUNS=${BENCH_RUNS:-5}
while getopts "o:n:h" opt; do
	case $opt in
	o) OUT=$OPTARG ;;
	n) RUNS=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
(($# == 0)) || usage
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number"
[[ $(id -u) -eq 0 ]] || die "must run as root (loop devices, mounts, chroot)"
COUNTS=${BENCH_SNAPSHOTS:-5 100 1000}
DRACUT_RUNS=${BENCH_DRACUT_RUNS:-1}
SECTIONS=${BENCH_SECTIONS:-apply dracut vm preflight dbus status}
COMMAND_LINE="bench/run.sh${ARGS:+ $ARGS}"

W=${BENCH_TMP:-$REPO/target/bench}
MNT=$W/root
BENCH_START=$SECONDS

cleanup() {
	if [[ -d $MNT ]]; then "$SUPPORT/umount-image.sh" "$MNT" || true; fi
	local pid
	for pid in "${DAEMON_PID:-}" "${POLKIT_PID:-}" "${BUS_PID:-}"; do
		if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi
	done
	if [[ ${POLICY_INSTALLED:-0} == 1 ]]; then rm -f -- "$POLKIT_ACTIONS/$POLKIT_POLICY"; fi
	if [[ ${BENCH_KEEP:-0} != 1 && -d $W ]]; then rm -rf -- "$W"; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------
# Statistics. Values (one per line) on stdin.

# "median min max"
stats() {
	sort -g | awk '{ a[NR] = $1 }
		END {
			if (NR == 0) { print "- - -"; exit }
			m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
			print m, a[1], a[NR]
		}'
}

# "p50 p99 max" (nearest rank)
percentiles() {
	sort -g | awk '{ a[NR] = $1 }
		END {
			if (NR == 0) { print "- - -"; exit }
			i50 = int(NR * 0.50 + 0.999999); i99 = int(NR * 0.99 + 0.999999)
			print a[i50], a[i99], a[NR]
		}'
}

# fmt_stat "median min max" DECIMALS -> "m (min–max)"
fmt_stat() {
	local m lo hi
	read -r m lo hi <<<"$1"
	[[ $m == - ]] && {
		echo "—"
		return
	}
	awk -v m="$m" -v lo="$lo" -v hi="$hi" -v d="${2:-0}" \
		'BEGIN { printf "%.*f (%.*f–%.*f)", d, m, d, lo, d, hi }'
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "-") printf "%.2f", a / b; else printf "—" }'
}

# ---------------------------------------------------------------------------
# Fixtures

section_start() { log "== $* ($((SECONDS - BENCH_START)) s)"; }

setup() {
	section_start "setup"
	"$SUPPORT/deps.sh" >&2
	export TLP_KERNEL_ABI
	TLP_KERNEL_ABI=${TLP_KERNEL_ABI:-$("$SUPPORT/kernel-abi.sh")}
	KVER=$TLP_KERNEL_ABI
	log "building the release binary"
	(cd "$REPO" && cargo build --release --locked --quiet) >&2
	rm -rf -- "$W"
	mkdir -p "$W"
	W=$(cd -- "$W" && pwd)
	MNT=$W/root
	"$SUPPORT/livepatches.sh" "$W/lp" >/dev/null
	RPM=$(ls "$W"/lp/tlp-livepatch-simple-*.rpm)
	KO=$W/lp/modules/tlp_simple.ko
	# The tool and its dracut module in the image by the project's own install.
	TLP_INSTALL_CMD="make -s -C $(printf '%q' "$REPO") install DESTDIR=\"\$DESTDIR\" BIN=$(printf '%q' "$BIN")" \
		"$SUPPORT/make-image.sh" "$W/disk.img" >/dev/null
	"$SUPPORT/mount-image.sh" "$W/disk.img" "$MNT"
	STACKLINE="tlp_simple /lib/modules/$KVER/livepatch/tlp_simple.ko tlp-livepatch-simple-1-1.x86_64"
}

# Back to snapshot 1 as the only snapshot and the default (untimed).
reset_image() {
	local d
	btrfs subvolume set-default "$MNT/.snapshots/1/snapshot" >/dev/null
	for d in "$MNT"/.snapshots/*/; do
		d=${d%/}
		[[ ${d##*/} == 1 ]] && continue
		if [[ -d $d/snapshot ]]; then btrfs -q subvolume delete "$d/snapshot"; fi
		rm -rf -- "$d"
	done
	# The commit wakes the cleaner: without it, waiting for the deleted
	# subvolumes to be cleaned takes up to the 30 s commit interval.
	btrfs -q filesystem sync "$MNT"
	btrfs -q subvolume sync "$MNT/.snapshots"
}

# ---------------------------------------------------------------------------
# 1. Apply phases

PHASES=(startup preflight snapshot install dracut verify teardown seal default journal total)
declare -A PHASE_LABEL=(
	[startup]="process start to first step"
	[preflight]="preflight (package checks, lock, rpm -q)"
	[snapshot]="snapshot (+ info.xml)"
	[install]="rpm -U in chroot (+ mounts, copy, stack file)"
	[dracut]="dracut"
	[verify]="initrd verification (one lsinitrd --unpack)"
	[teardown]="chroot teardown, rename into place"
	[seal]="seal (ro, info.xml, sync)"
	[default]="set-default + sync, close, exit"
	[journal]="journal fsyncs"
	[total]="**total**"
)

stamp_lines() {
	local l
	while IFS= read -r l; do printf '%s\t%s\n' "$EPOCHREALTIME" "$l"; done
}

# One timed apply by the tool; "phase ms" lines on stdout.
tool_apply() {
	local log=$W/tool-apply.log s e
	s=$EPOCHREALTIME
	{ NO_COLOR=1 TLP_LOG=tlp=debug "$BIN" --root "$MNT" --progress-json \
		apply --boot-only --json "$RPM" 2>&1 >/dev/null; } | stamp_lines >"$log" ||
		die "apply failed: $(cat "$log")"
	e=$EPOCHREALTIME
	awk -v S="$s" -v E="$e" -F'\t' '
		function num(s, key) {
			if (match(s, key "[0-9.]+")) return substr(s, RSTART + length(key), RLENGTH - length(key)) + 0
			return 0
		}
		{ t = ($1 - S) * 1000; l = $2 }
		l ~ /"event":"step"/ {
			title = l; sub(/.*"title":"/, "", title); sub(/".*/, "", title)
			ph = title ~ /^Checking/ ? "preflight" : title ~ /^Creating a snapshot/ ? "snapshot" : \
				title ~ /^Installing/ ? "install" : title ~ /^Building the initrd/ ? "initrd" : \
				title ~ /^Sealing/ ? "seal" : title ~ /^Making snapshot/ ? "default" : "other"
			order[++n] = ph; start[ph] = t; cur = ph
			next
		}
		l ~ /written durably/ && l ~ /\/transactions\// { j[cur] += num(l, "elapsed_ms="); jn++; next }
		l ~ /tlp::cmd: finished/ {
			if (l ~ / dracut /) dr += num(l, "elapsed_ms=")
			else if (l ~ / lsinitrd /) ls += num(l, "elapsed_ms=")
		}
		END {
			out["startup"] = start[order[1]]
			for (i = 1; i <= n; i++) {
				ph = order[i]
				stop = (i < n) ? start[order[i + 1]] : (E - S) * 1000
				out[ph] += stop - start[ph] - j[ph]
				jt += j[ph]
			}
			out["teardown"] = out["initrd"] - dr - ls; out["dracut"] = dr; out["verify"] = ls
			delete out["initrd"]
			out["journal"] = jt; out["total"] = (E - S) * 1000
			for (k in out) print k, out[k]
			print "journal_writes", jn
		}' "$log"
}

bare_apply_timed() {
	local s e
	s=$EPOCHREALTIME
	unshare --mount "$0" __bare "$MNT" "$RPM" "$KVER" "$STACKLINE" >"$W/bare.log" ||
		die "bare sequence failed"
	e=$EPOCHREALTIME
	awk -v S="$s" -v E="$e" '
		{ t[$1] = ($2 - S) * 1000; order[++n] = $1 }
		END {
			out["startup"] = t["start"]
			for (i = 2; i <= n; i++) out[order[i]] = t[order[i]] - t[order[i - 1]]
			out["default"] += (E - S) * 1000 - t[order[n]]
			out["total"] = (E - S) * 1000
			for (k in out) print k, out[k]
		}' "$W/bare.log"
}

phase_stats() { # variant phase
	local i
	for ((i = 1; i <= RUNS; i++)); do
		[[ -f $W/t1/$1.$i ]] && awk -v p="$2" '$1 == p { print $2 }' "$W/t1/$1.$i"
	done | stats
}

section_apply() {
	section_start "1. apply phases: $RUNS runs each, tool and bare interleaved, after one warm-up each"
	local i
	mkdir -p "$W/t1"
	for ((i = 0; i <= RUNS; i++)); do
		reset_image
		tool_apply >"$W/t1/tool.$i"
		reset_image
		bare_apply_timed >"$W/t1/bare.$i"
		log "run $i: tool $(awk '$1 == "total" { printf "%.0f", $2 }' "$W/t1/tool.$i") ms, bare $(awk '$1 == "total" { printf "%.0f", $2 }' "$W/t1/bare.$i") ms"
	done
	# A snapshot with the package installed, for the dracut runs below.
	reset_image
	tool_apply >/dev/null
	local p ts bs tm bm jn
	jn=$(awk '$1 == "journal_writes" { print $2 }' "$W/t1/tool.1")
	T1="| phase | tool, ms | bare, ms | tool / bare |
|---|---:|---:|---:|"
	for p in "${PHASES[@]}"; do
		ts=$(phase_stats tool "$p")
		bs=$(phase_stats bare "$p")
		tm=${ts%% *}
		bm=${bs%% *}
		local label=${PHASE_LABEL[$p]}
		[[ $p == journal ]] && label+=" ($jn atomic writes)"
		local r="—"
		if [[ $bm != - ]] && awk -v b="$bm" 'BEGIN { exit !(b >= 1) }'; then r=$(ratio "$tm" "$bm"); fi
		if [[ $p == total ]]; then
			T1+=$'\n'"| $label | **$(fmt_stat "$ts")** | **$(fmt_stat "$bs")** | **$r** |"
		else
			T1+=$'\n'"| $label | $(fmt_stat "$ts") | $(fmt_stat "$bs") | $r |"
		fi
	done
}

# dracut with other compressors on the same snapshot, lsinitrd on its result,
# and the floor: appending an early cpio with just our files to the existing
# initrd (reflink copy + append).
section_dracut() {
	section_start "1b. dracut compressors"
	local snap=$MNT/.snapshots/2/snapshot c s e i
	if [[ ! -d $snap ]]; then
		reset_image
		tool_apply >/dev/null
	fi
	# The snapshot the last tool apply made, read-write again for these runs.
	btrfs property set -ts "$snap" ro false
	local -a env=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C LANG=C)
	# Debian's zstd (the image has none): the host's, when it is bookworm's too.
	local zstd_ok=0
	if [[ -x /usr/bin/zstd ]] && grep -q '^VERSION_CODENAME=bookworm' /etc/os-release; then
		cp /usr/bin/zstd "$snap/usr/bin/zstd" && zstd_ok=1
	fi
	T1B="| initrd build | time, ms | initrd size |
|---|---:|---:|
| dracut, compress=cat (the tool's, table 1) | $(fmt_stat "$(phase_stats tool dracut)") | $(du -m --apparent-size "$snap/boot/initrd.img-$KVER" | cut -f1) MB |"
	cat >"$W/dracut-in-ns.sh" <<'SH'
set -euo pipefail
snap=$1 var=$2
shift 2
mount --make-rprivate /
mount --bind /dev "$snap/dev"; mount -t proc proc "$snap/proc"; mount --bind /sys "$snap/sys"
mount -t tmpfs tmpfs "$snap/run"; mount -t tmpfs -o mode=1777 tmpfs "$snap/tmp"
mount --bind "$var" "$snap/var"
exec "$@"
SH
	# Compressors as dracut runs them by default (gzip -9, zstd -15), and zstd
	# at a fast level. compress=cat is the tool's dracut in table 1.
	local -a variants=(gzip zstd "zstd -1 -q -T0")
	local v=0 label file
	for c in "${variants[@]}"; do
		v=$((v + 1))
		label="compress=$c"
		[[ $c == *" "* ]] && label="--compress '$c'"
		if [[ $c == zstd* && $zstd_ok == 0 ]]; then
			T1B+=$'\n'"| dracut, $label | not measured (no zstd for the image) | — |"
			continue
		fi
		file=$snap/boot/bench-initrd-$v
		for ((i = 1; i <= DRACUT_RUNS; i++)); do
			s=$EPOCHREALTIME
			unshare --mount bash "$W/dracut-in-ns.sh" "$snap" "$MNT/var" "${env[@]}" chroot "$snap" \
				dracut --force --quiet --no-hostonly --add transactional-livepatch \
				--compress "$c" --kver "$KVER" "/boot/bench-initrd-$v" 2>/dev/null
			e=$EPOCHREALTIME
			awk -v s="$s" -v e="$e" 'BEGIN { print (e - s) * 1000 }' >>"$W/dracut.$v"
			s=$EPOCHREALTIME
			unshare --mount bash "$W/dracut-in-ns.sh" "$snap" "$MNT/var" "${env[@]}" chroot "$snap" \
				lsinitrd "/boot/bench-initrd-$v" >/dev/null
			e=$EPOCHREALTIME
			awk -v s="$s" -v e="$e" 'BEGIN { print (e - s) * 1000 }' >>"$W/lsinitrd.$v"
		done
		T1B+=$'\n'"| dracut, $label | $(stats <"$W/dracut.$v" | { read -r x; fmt_stat "$x"; }) | $(du -m --apparent-size "$file" | cut -f1) MB |"
		T1B+=$'\n'"| lsinitrd (listing) of that initrd | $(stats <"$W/lsinitrd.$v" | { read -r x; fmt_stat "$x"; }) | |"
	done
	# What the package's own %post costs inside "rpm -U": depmod -a.
	rm -f -- "$W/depmod.ms"
	for ((i = 1; i <= 2; i++)); do
		s=$EPOCHREALTIME
		unshare --mount bash "$W/dracut-in-ns.sh" "$snap" "$MNT/var" "${env[@]}" chroot "$snap" \
			depmod -a "$KVER"
		e=$EPOCHREALTIME
		awk -v s="$s" -v e="$e" 'BEGIN { print (e - s) * 1000 }' >>"$W/depmod.ms"
	done
	T1B+=$'\n'"| (inside rpm -U: the package's %post \`depmod -a\`, $(find "$snap/usr/lib/modules/$KVER" -name '*.ko*' | wc -l) modules) | $(stats <"$W/depmod.ms" | { read -r x; fmt_stat "$x"; }) | |"
	# The floor: the patch's own bytes into the boot chain without rebuilding:
	# reflink the initrd, append a newc cpio with the module and the stack file.
	local stage=$W/append
	rm -rf -- "$stage"
	mkdir -p "$stage/usr/lib/modules/$KVER/livepatch" "$stage/etc/transactional-livepatch/stack"
	cp -- "$KO" "$stage/usr/lib/modules/$KVER/livepatch/"
	printf '%s\n' "$STACKLINE" >"$stage/etc/transactional-livepatch/stack/$KVER"
	rm -f -- "$W/append.ms"
	for ((i = 1; i <= 5; i++)); do
		s=$EPOCHREALTIME
		cp --reflink=always -- "$snap/boot/initrd.img-$KVER" "$snap/boot/bench-appended"
		(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >>"$snap/boot/bench-appended"
		sync -f "$snap/boot/bench-appended"
		e=$EPOCHREALTIME
		awk -v s="$s" -v e="$e" 'BEGIN { print (e - s) * 1000 }' >>"$W/append.ms"
	done
	T1B+=$'\n'"| floor: reflink initrd + append cpio of module and stack file, fsync | $(stats <"$W/append.ms" | { read -r x; fmt_stat "$x" 1; }) | +$(du -k "$KO" | cut -f1) KB |"
	rm -f -- "$snap"/boot/bench-*
	btrfs property set -ts "$snap" ro true
}

# ---------------------------------------------------------------------------
# 3. Preflight throughput

build_bench_rpm() { # name size_bytes [target-arch]
	local name=$1 size=$2 arch=${3:-} top=$W/rpmbuild
	mkdir -p "$top/SPECS" "$top/src"
	head -c "$size" /dev/urandom >"$top/src/filler.bin"
	cp -- "$KO" "$top/src/"
	cat >"$top/SPECS/$name.spec" <<SPEC
%define _build_id_links none
%define debug_package %{nil}
%define __strip /bin/true
%global __os_install_post %{nil}
Name: $name
Version: 1
Release: 1
Summary: transactional-livepatch benchmark package
License: GPL-2.0-only
AutoReqProv: no

%description
A real livepatch module plus an incompressible file, for bench/run.sh.

%install
install -D -m 0644 %{_sourcedir}/tlp_simple.ko %{buildroot}/lib/modules/$KVER/livepatch/tlp_simple.ko
install -D -m 0644 %{_sourcedir}/filler.bin %{buildroot}/usr/share/doc/$name/filler.bin

%files
/lib/modules/$KVER/livepatch/tlp_simple.ko
/usr/share/doc/$name/filler.bin
SPEC
	rpmbuild --quiet -bb ${arch:+--target "$arch"} \
		--define "_topdir $top" --define "_sourcedir $top/src" \
		--define "_binary_payload w3.zstdio" "$top/SPECS/$name.spec" >&2
	find "$top/RPMS" -name "$name-1-1.*.rpm" -exec mv -t "$W/pkgs" {} +
	rm -f -- "$top/src/filler.bin"
}

# "rchar read_bytes" of a command: a reaped child's I/O counts are added to
# its parent's, so read the subshell's own /proc/self/io around it.
io_of() {
	(
		io() {
			local k v
			while read -r k v; do
				case $k in rchar:) R=$v ;; read_bytes:) B=$v ;; esac
			done </proc/self/io
		}
		io
		local r0=$R b0=$B
		"$@" >/dev/null 2>&1 || true
		io
		echo "$((R - r0)) $((B - b0))"
	)
}

# Dirty pages cannot be dropped: write the file back first.
evict() {
	sync -- "$1"
	dd if="$1" iflag=nocache count=0 status=none
}

section_preflight() {
	section_start "3. preflight throughput"
	mkdir -p "$W/pkgs"
	local mb
	for mb in 1 50 200; do
		build_bench_rpm "tlp-bench-${mb}m" $((mb * 1000000 - 100000))
	done
	build_bench_rpm tlp-bench-200m-aarch64 $((200 * 1000000 - 100000)) aarch64 2>/dev/null ||
		log "could not build an aarch64 package: no header-refusal row"
	T3="| package | size | \`inspect\` warm, ms | throughput | bytes read (rchar) | cold: ms, read from disk | max RSS |
|---|---:|---:|---:|---:|---:|---:|"
	local f size i s e st med rc io cold coldio rss
	for f in "$W"/pkgs/tlp-bench-1m-*.x86_64.rpm "$W"/pkgs/tlp-bench-50m-*.x86_64.rpm \
		"$W"/pkgs/tlp-bench-200m-*.x86_64.rpm "$W"/pkgs/tlp-bench-200m-aarch64-*.rpm; do
		[[ -f $f ]] || continue
		size=$(stat -c %s "$f")
		"$BIN" inspect --json "$f" >/dev/null 2>&1 && rc=0 || rc=$?
		rm -f -- "$W/inspect.ms"
		for ((i = 0; i <= 5; i++)); do
			s=$EPOCHREALTIME
			"$BIN" inspect --json "$f" >/dev/null 2>&1 || true
			e=$EPOCHREALTIME
			((i > 0)) && awk -v s="$s" -v e="$e" 'BEGIN { print (e - s) * 1000 }' >>"$W/inspect.ms"
		done
		st=$(stats <"$W/inspect.ms")
		med=${st%% *}
		io=$(io_of "$BIN" inspect --json "$f")
		evict "$f"
		s=$EPOCHREALTIME
		coldio=$(io_of "$BIN" inspect --json "$f")
		e=$EPOCHREALTIME
		cold=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.0f", (e - s) * 1000 }')
		rss="—"
		if [[ -x /usr/bin/time ]]; then
			rss=$({ /usr/bin/time -f '%M' "$BIN" inspect --json "$f" 2>&1 >/dev/null || true; } | tail -n1)
			rss=$(awk -v k="$rss" 'BEGIN { printf "%.1f MiB", k / 1024 }')
		fi
		local what=${f##*/}
		((rc == 0)) || what+=" (refused, exit $rc)"
		T3+=$'\n'"$(awk -v w="$what" -v size="$size" -v st="$(fmt_stat "$st" 1)" -v med="$med" \
			-v io="$io" -v cold="$cold" -v coldio="$coldio" -v rss="$rss" 'BEGIN {
				split(io, a, " "); split(coldio, c, " ")
				tp = (w ~ /refused/) ? "—" : sprintf("%.0f MB/s", size / 1e6 / (med / 1000))
				printf "| %s | %.1f MB | %s | %s | %s (%.3f × size) | %s ms, %s | %s |",
					w, size / 1e6, st, tp, bytes(a[1]), a[1] / size, cold, bytes(c[2]), rss
			}
			function bytes(b) { return b >= 1e6 ? sprintf("%.1f MB", b / 1e6) : sprintf("%.0f KB", b / 1e3) }')"
	done
	local base
	base=$(io_of true)
	T3_NOTE="Bytes read are the process's rchar (every read(2)/pread(2)), measured through the parent's counters; a \`true\` reads ${base%% *} bytes the same way. Packages: tlp_simple.ko plus random bytes, payload zstd level 3. Cold = file evicted from the page cache first (dd iflag=nocache); read from disk = read_bytes."
}

# ---------------------------------------------------------------------------
# 4. status with many snapshots

make_snapshots() { # up to N snapshots in total (numbers 1..N)
	local want=$1 have i d
	have=$(find "$MNT/.snapshots" -mindepth 1 -maxdepth 1 -name '[0-9]*' | wc -l)
	for ((i = have + 1; i <= want; i++)); do
		d=$MNT/.snapshots/$i
		mkdir "$d"
		btrfs -q subvolume snapshot -r "$MNT/.snapshots/1/snapshot" "$d/snapshot"
		printf '<?xml version="1.0"?>\n<snapshot>\n  <type>single</type>\n  <num>%s</num>\n  <date>2026-01-01 00:00:00</date>\n  <description>bench</description>\n  <cleanup>number</cleanup>\n</snapshot>\n' "$i" >"$d/info.xml"
	done
}

make_journal() { # exactly N entries, copies of a real one with new ids
	local n=$1 dir=$MNT/var/lib/transactional-livepatch/transactions src id old i
	src=$(find "$dir" -name '*.json' | sort | tail -n1)
	[[ -n $src ]] || die "no journal entry to copy"
	cp -- "$src" "$W/entry.json"
	old=$(basename "$src" .json)
	find "$dir" -name '*.json' -delete
	for ((i = 0; i < n; i++)); do
		id=$(printf '20260101T%06d-000' "$i")
		sed "s/$old/$id/g" "$W/entry.json" >"$dir/$id.json"
		chmod 0600 "$dir/$id.json"
	done
}

time_cmd_ms() { # runs; prints "median min max" of the wall time of "$@"
	local runs=$1 i s e
	shift
	for ((i = 0; i < runs + 2; i++)); do
		s=$EPOCHREALTIME
		"$@" >/dev/null
		e=$EPOCHREALTIME
		((i >= 2)) && awk -v s="$s" -v e="$e" 'BEGIN { print (e - s) * 1000 }'
	done | stats
}

section_status() {
	section_start "4. status"
	reset_image
	# The default boots a livepatch, as on a patched system: snapshot 2,
	# applied by the tool; the other snapshots are copies of snapshot 1.
	tool_apply >/dev/null
	make_journal 100
	T4="| snapshots | \`status\`, ms | \`status --json\`, ms |
|---:|---:|---:|"
	local c last stack
	for c in $COUNTS; do
		log "status: $c snapshots"
		make_snapshots "$c"
		T4+=$'\n'"| $c | $(fmt_stat "$(time_cmd_ms 20 "$BIN" --root "$MNT" status)" 1) | $(fmt_stat "$(time_cmd_ms 20 "$BIN" --root "$MNT" status --json)" 1) |"
		last=$c
	done
	# The same with a boot stack written without the CVE record (as before
	# 6bc04e0): status then asks the default's rpm database, one rpm -q per
	# package. The default is unsealed for the rewrite and sealed again.
	stack=$MNT/.snapshots/2/snapshot/etc/transactional-livepatch/stack/$KVER
	if [[ -f $stack ]] && grep -q '^tlp_simple ' "$stack"; then
		btrfs -q property set -ts "$MNT/.snapshots/2/snapshot" ro false
		cp -- "$stack" "$W/stack.recorded"
		awk '/^#/ { print; next } { print $1, $2, $3 }' "$W/stack.recorded" >"$stack"
		btrfs -q property set -ts "$MNT/.snapshots/2/snapshot" ro true
		T4+=$'\n'"| $last, stack without recorded CVEs (one \`rpm -q\`) | $(fmt_stat "$(time_cmd_ms 20 "$BIN" --root "$MNT" status)" 1) | $(fmt_stat "$(time_cmd_ms 20 "$BIN" --root "$MNT" status --json)" 1) |"
		btrfs -q property set -ts "$MNT/.snapshots/2/snapshot" ro false
		cp -- "$W/stack.recorded" "$stack"
		btrfs -q property set -ts "$MNT/.snapshots/2/snapshot" ro true
	else
		T4+=$'\n'"| (no stack line for tlp_simple in the default: the apply did not record one) | | |"
	fi
	T4+=$'\n'"| (\`--version\`: process start and exit) | $(fmt_stat "$(time_cmd_ms 20 "$BIN" --version)" 1) | |"
	# Where the time goes at the largest count: the top syscalls by time.
	if command -v strace >/dev/null; then
		T4_PROFILE=$(strace -f -c -o "$W/strace.txt" "$BIN" --root "$MNT" status --json >/dev/null 2>&1 &&
			awk 'NR > 2 && $NF != "total" && $1 !~ /^-/ { print }' "$W/strace.txt" | sort -k2 -gr | head -n 6 |
			awk 'BEGIN { print "| syscall | calls | % time |"; print "|---|---:|---:|" }
				{ printf "| %s | %s | %s |\n", $NF, ($4 ~ /^[0-9]+$/ ? $4 : "?"), $1 }')
		# execve calls minus the tool's own: 0 when status ran no rpm.
		T4_EXECS=$(awk '$NF == "execve" { print ($4 ~ /^[0-9]+$/ ? $4 : $(NF - 1)) - 1 }' "$W/strace.txt")
	fi
}

# ---------------------------------------------------------------------------
# 2. Live phase in the VM, 5. D-Bus: measured once their harnesses exist.

# The live phase is the same code for apply (step "Loading the livepatch")
# and rollback (reconcile_live). Applies in the guest would rebuild the initrd
# under TCG (minutes each), so the snapshots are prepared on the host with
# boot-only applies, the VM boots snapshot 1 (no patches), and live rollbacks
# in the guest move the running kernel between them: each such step is
# exactly an apply's or a rollback's live phase.
section_vm() {
	section_start "2. live phase in the VM"
	local vm=$REPO/tests/vm/vm.sh missing
	if [[ ! -x $vm ]]; then
		T2="not measured yet: no VM harness (tests/vm/vm.sh)."
		return
	fi
	missing=$("$vm" prereqs)
	if [[ -n $missing ]]; then
		T2="not measured: VM prerequisites missing ($missing)."
		return
	fi
	local img=$W/vm.img vmnt=$W/vmroot
	"$vm" build "$img" "$BIN" >&2
	"$SUPPORT/mount-image.sh" "$img" "$vmnt"
	vm_host_apply() { # package file name prefix -> new snapshot number
		local f
		f=$(printf '%s\n' "$W"/lp/"$1"-[0-9]*.rpm | sort -V | sed -n "${2:-\$}p")
		"$BIN" --root "$vmnt" -q apply --boot-only --json "$f" | awk -F': ' '/"new_snapshot"/ { gsub(/[ ,]/, "", $2); print $2 }'
	}
	vm_default_1() { btrfs subvolume set-default "$vmnt/.snapshots/1/snapshot" >/dev/null; }
	local simple cumul1 cumul2 stacka stackb stall
	simple=$(vm_host_apply tlp-livepatch-simple)
	vm_default_1
	cumul1=$(vm_host_apply kernel-livepatch-tlp-cumulative 1)
	cumul2=$(vm_host_apply kernel-livepatch-tlp-cumulative 2)
	vm_default_1
	stacka=$(vm_host_apply tlp-livepatch-stack-a)
	stackb=$(vm_host_apply tlp-livepatch-stack-b)
	vm_default_1
	stall=$(vm_host_apply tlp-livepatch-stall)
	vm_default_1
	"$SUPPORT/umount-image.sh" "$vmnt"
	# A first load/unload pair, not reported: under TCG the first run of a
	# kernel or tool code path pays for its translation.
	local -a steps=("rollback:$stacka" rollback:1
		"rollback:$simple" rollback:1
		"rollback:$cumul1" "rollback:$cumul2" "rollback:$cumul1" rollback:1
		"rollback:$stackb" "rollback:$stacka" rollback:1
		insmod:tlp_stall_holder "rollback:$stall")
	local -a what=("" ""
		"simple|load tlp_simple" "simple|unload"
		"cumulative|load cumul_1" "cumulative|upgrade to cumul_2 (replace)" "cumulative|downgrade to cumul_1 (replace)" "cumulative|unload"
		"stacked|load stack_a + stack_b" "stacked|remove stack_b" "stacked|remove stack_a"
		"" "stalled|load tlp_stall, stalls, reversed")
	local list s0 e0
	list=$(
		IFS=,
		echo "${steps[*]}"
	)
	s0=$SECONDS
	"$vm" boot "$img" bench "$list" "$W/vm.log" 1200 || die "the VM boot failed (log: $W/vm.log)"
	e0=$SECONDS
	tr -d '\r' <"$W/vm.log" | sed -n 's/^.*TLP-RESULT //p' >"$W/vm.results"
	grep -q '^done=1' "$W/vm.results" || die "the guest did not finish (log: $W/vm.log)"
	T2="| scenario | live step | live phase, s | finit_module, s | transition wait, s | disabling / reversing, s | whole command, s | exit |
|---|---|---:|---:|---:|---:|---:|---:|"
	local i
	for ((i = 0; i < ${#steps[@]}; i++)); do
		[[ -n ${what[$i]} ]] || continue
		T2+=$'\n'"$(awk -v n="$((i + 1))" -v what="${what[$i]}" '
			function stamp(v) { sub(/^\+/, "", v); sub(/s .*/, "", v); return v + 0 }
			index($0, "step." n ".progress=") == 1 {
				v = substr($0, length("step." n ".progress=") + 1)
				t = stamp(v)
				if (v ~ /still in transition after/) next
				if (pending != "") { acc[pending] += t - pt; pending = "" }
				if (v ~ /\] Changing/) start = t
				else if (v ~ /transition stalled; reversing/) { pending = "disable"; pt = t }
				else if (v ~ /\] Making/) stop = t
				else if (v ~ /loading livepatch/) { pending = "finit"; pt = t }
				else if (v ~ /loaded, waiting for its transition/) { pending = "trans"; pt = t }
				else if (v ~ /disabling livepatch/) { pending = "disable"; pt = t }
			}
			index($0, "step." n ".secs=") == 1 { secs = substr($0, length("step." n ".secs=") + 1) + 0 }
			index($0, "step." n ".rc=") == 1 { rc = substr($0, length("step." n ".rc=") + 1) }
			END {
				if (pending != "") acc[pending] += (stop > 0 ? stop : secs) - pt
				if (stop == 0) stop = secs
				split(what, w, "|")
				printf "| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %s |", w[1], w[2], stop - start,
					acc["finit"], acc["trans"], acc["disable"], secs, rc
			}' "$W/vm.results")"
	done
	T2_NOTE="One run per step under QEMU/TCG, after one untimed load/unload pair (TCG translates a code path the first time it runs; without the pair the first unload took 5 s). $(awk -F= '$1 == "end.elapsed" { print $2 }' "$W/vm.results") s from init to the last step, $((e0 - s0)) s for the whole boot. Each step is a live \`rollback N\` in the guest to a snapshot prepared on the host by \`apply --boot-only\`, so it runs exactly the live phase of an apply or rollback (the same reconcile of the running kernel against the target boot stack). Times are the guest's stamps of the tool's progress lines (ms resolution; the transition is polled every 100 ms). The stalled case waits out the VM image's transition_timeout_secs = 15 and then reverses the patch (exit 19)."
}

# The daemon on a private system bus (dbus-daemon with a permissive policy
# plus the project's own bus policy), polkitd on it for the apply; clients are
# bench/dbus_latency.rs, one connection per client thread.
DBUS_NAME=org.opensuse.TransactionalLivepatch1
DBUS_PATH=/org/opensuse/TransactionalLivepatch1
DBUS_MANAGER=org.opensuse.TransactionalLivepatch1.Manager
POLKIT_ACTIONS=/usr/share/polkit-1/actions
POLKIT_POLICY=org.opensuse.transactionallivepatch.policy

rss_of() { awk '/^VmRSS:/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$1/status"; }

wait_until() { # seconds command...: poll until the command succeeds
	local t=$1 i
	shift
	for ((i = 0; i < t * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

no_active_transaction() {
	[[ $(busctl --address="$DBUS_ADDR" get-property "$DBUS_NAME" "$DBUS_PATH" "$DBUS_MANAGER" ActiveTransaction) == 'o "/"' ]]
}

section_dbus() {
	section_start "5. D-Bus"
	local polkitd=/usr/lib/polkit-1/polkitd
	if ! "$BIN" daemon --help >/dev/null 2>&1; then
		T5="not measured yet: no \`transactional-livepatch daemon\` in this build."
		return
	fi
	if ! command -v dbus-daemon >/dev/null || ! command -v busctl >/dev/null || [[ ! -x $polkitd ]]; then
		T5="not measured: dbus-daemon, busctl or polkitd missing (tests/support/deps.sh installs them)."
		return
	fi
	(cd "$REPO" && cargo build --release --locked --quiet --example dbus_latency) >&2
	local client=$REPO/target/release/examples/dbus_latency d=$W/dbus
	reset_image
	rm -rf -- "$d"
	mkdir -p "$d/policy"
	cp -- "$REPO"/dbus/*.conf "$d/policy/"
	DBUS_ADDR="unix:path=$d/bus"
	cat >"$d/bus.conf" <<XML
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>$DBUS_ADDR</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
  <includedir>$d/policy</includedir>
</busconfig>
XML
	dbus-daemon --config-file="$d/bus.conf" --nofork --nopidfile >"$d/bus.log" 2>&1 &
	BUS_PID=$!
	wait_until 10 test -S "$d/bus" || die "the private bus did not start"
	# The daemon asks polkit about Apply, also for root: polkitd on the private
	# bus, with our actions where it reads them (removed again after, unless
	# they were there before).
	POLICY_INSTALLED=0
	if [[ ! -e $POLKIT_ACTIONS/$POLKIT_POLICY ]]; then
		install -D -m 0644 "$REPO/dbus/$POLKIT_POLICY" "$POLKIT_ACTIONS/$POLKIT_POLICY"
		POLICY_INSTALLED=1
	fi
	DBUS_SYSTEM_BUS_ADDRESS=$DBUS_ADDR "$polkitd" --no-debug >"$d/polkitd.log" 2>&1 &
	POLKIT_PID=$!
	local s e
	s=$EPOCHREALTIME
	DBUS_STARTER_ADDRESS=$DBUS_ADDR "$BIN" --root "$MNT" daemon --idle-exit 0 >"$d/daemon.log" 2>&1 &
	DAEMON_PID=$!
	wait_until 20 busctl --address="$DBUS_ADDR" status "$DBUS_NAME" || die "the daemon did not come up: $(cat "$d/daemon.log")"
	e=$EPOCHREALTIME
	wait_until 20 busctl --address="$DBUS_ADDR" status org.freedesktop.PolicyKit1 || die "polkitd did not come up"
	sleep 1
	local rss_idle startup
	rss_idle=$(rss_of "$DAEMON_PID")
	startup=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.0f", (e - s) * 1000 }')
	T5="| clients | calls | \`Status()\` p50, ms | p99, ms | max, ms | bus floor (\`GetId\` of dbus-daemon) p50 / p99, ms |
|---:|---:|---:|---:|---:|---:|"
	local c n p f
	for c in 1 8 32; do
		n=$((3200 / c))
		((n > 500)) && n=500
		"$client" "$DBUS_ADDR" "$c" "$n" "$DBUS_NAME" "$DBUS_PATH" "$DBUS_MANAGER" Status >"$d/lat.$c"
		"$client" "$DBUS_ADDR" "$c" "$n" org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetId >"$d/floor.$c"
		p=$(percentiles <"$d/lat.$c")
		f=$(percentiles <"$d/floor.$c")
		T5+=$'\n'"$(awk -v c="$c" -v n="$((c * n))" -v p="$p" -v f="$f" 'BEGIN {
			split(p, a, " "); split(f, b, " ")
			printf "| %d | %d | %.2f | %.2f | %.2f | %.2f / %.2f |", c, n, a[1], a[2], a[3], b[1], b[2] }')"
	done
	local rss_calls rss_apply tx out
	rss_calls=$(rss_of "$DAEMON_PID")
	out=$(busctl --address="$DBUS_ADDR" call "$DBUS_NAME" "$DBUS_PATH" "$DBUS_MANAGER" Apply 'sa{sv}' "$RPM" 1 boot-only b true 2>&1) ||
		die "Apply over D-Bus failed: $out"
	tx=$(awk '{ print $2 }' <<<"$out" | tr -d '"')
	s=$EPOCHREALTIME
	sleep 1
	wait_until 300 no_active_transaction || die "the D-Bus apply did not end"
	e=$EPOCHREALTIME
	local ok
	ok=$(busctl --address="$DBUS_ADDR" get-property "$DBUS_NAME" "$tx" org.opensuse.TransactionalLivepatch1.Transaction Success 2>/dev/null || echo "?")
	rss_apply=$(rss_of "$DAEMON_PID")
	T5_RSS="Daemon RSS: $rss_idle idle after start (name on the bus in $startup ms), $rss_calls after the latency runs, $rss_apply after an \`Apply\` (boot-only, tlp-livepatch-simple, $(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.1f", e - s }') s, Success: ${ok#b }). \`Status()\` serves a status read within the last 2 s from memory (STATUS_TTL), so most calls here are the cached document (~$(wc -c <<<"$(busctl --address="$DBUS_ADDR" call "$DBUS_NAME" "$DBUS_PATH" "$DBUS_MANAGER" Status)") bytes of JSON) plus the round trip; the clients, the bus and the daemon share the machine's cores."
	kill "$DAEMON_PID" "$POLKIT_PID" "$BUS_PID" 2>/dev/null || true
	wait "$DAEMON_PID" "$POLKIT_PID" "$BUS_PID" 2>/dev/null || true
	DAEMON_PID="" BUS_PID="" POLKIT_PID=""
	if ((POLICY_INSTALLED)); then rm -f -- "$POLKIT_ACTIONS/$POLKIT_POLICY"; fi
	POLICY_INSTALLED=0
}

# ---------------------------------------------------------------------------
machine_line() {
	local cpu disk src dev drv
	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	src=$(df --output=source "$W" | tail -n1)
	dev=$(lsblk -no PKNAME "$src" 2>/dev/null | head -n1 || true)
	dev=${dev:-$(basename "$src")}
	if [[ -e /sys/block/$dev/queue/rotational ]]; then
		drv=$(readlink -f "/sys/block/$dev/device/driver" 2>/dev/null || true)
		disk="$dev ($(cat "/sys/block/$dev/device/model" 2>/dev/null || basename "${drv:-unknown}")"
		disk+=", queue/rotational=$(cat "/sys/block/$dev/queue/rotational"))"
	else
		disk=$src
	fi
	printf '%s cores (%s), kernel %s, work dir on %s (%s), image: loop-mounted btrfs file; load average at start %s' \
		"$(nproc)" "$cpu" "$(uname -r)" "$disk" "$(df --output=fstype "$W" | tail -n1 | tr -d ' ')" "$LOAD_START"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
setup
MACHINE=$(machine_line)
T1="not run" T1B="not run" T2="not run" T3="not run" T3_NOTE="" T4="not run" T5="not run"
for sec in $SECTIONS; do
	case $sec in
	apply | dracut | vm | preflight | status | dbus) "section_$sec" ;;
	*) die "unknown section '$sec'" ;;
	esac
done
ELAPSED=$((SECONDS - BENCH_START))

report() {
	cat <<EOF
# transactional-livepatch benchmarks

Produced by \`$COMMAND_LINE\` (as root) on $(date -u '+%Y-%m-%d %H:%M UTC') at $(cd "$REPO" && git describe --always --dirty 2>/dev/null || echo unknown), in $ELAPSED s.

**Machine:** $MACHINE; load average at the end $(cut -d' ' -f1-3 /proc/loadavg).

Values are median (min–max) over the runs. Times are reported, not judged.

## 1. Apply, boot-only, on the loop-btrfs image ($RUNS runs each)

The tool (\`apply --boot-only\` of tlp-livepatch-simple, phases from its
\`--progress-json\` step events stamped on arrival, subprocess and fsync times
from \`TLP_LOG=tlp=debug\`) against the bare sequence of the same steps by hand
in one script (btrfs snapshot, mounts, \`chroot rpm -U\`, stack file,
\`chroot dracut -f\` with the same arguments, umounts, \`property set ro true\`,
\`set-default\`, one \`filesystem sync\`). Tool and bare alternate, each on a
fresh snapshot of snapshot 1; one warm-up run of each is not counted.

$T1

### dracut and the initrd ($DRACUT_RUNS run(s) per compressor; $KVER kernel, the image's dracut config: no host-only, virtio + btrfs drivers)

$T1B

## 2. Live phase in the VM

$T2

${T2_NOTE:-}

## 3. Preflight (\`transactional-livepatch inspect --json PKG\`)

$T3

$T3_NOTE

## 4. \`status\` with many snapshots and 100 journal entries (20 runs each)

The default snapshot boots one livepatch (tlp_simple, applied by the tool).

$T4

Top syscalls of one \`status --json\` at the largest count (strace -c -f, which slows syscalls down; programs it ran: ${T4_EXECS:-?}):

${T4_PROFILE:-not profiled (no strace)}

## 5. D-Bus (the daemon on a private system bus)

$T5

${T5_RSS:-}
EOF
}

REPORT=$(report)
printf '%s\n' "$REPORT"
if [[ -n $OUT ]]; then
	notes=""
	if [[ -f $OUT ]] && grep -q '^<!-- notes -->' "$OUT"; then
		notes=$(sed -n '/^<!-- notes -->/,$p' "$OUT")
	fi
	{
		printf '%s\n' "$REPORT"
		if [[ -n $notes ]]; then printf '\n%s\n' "$notes"; fi
	} >"$OUT"
	log "wrote $OUT"
fi
log "done in $ELAPSED s"
